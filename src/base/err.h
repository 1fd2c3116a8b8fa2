/* base/err.h — the error record every internal function fills in.
 *
 * Internal code never prints and never aborts on bad input: it returns an
 * EK_* status (see include/embedkit.h) and writes a one-line message that names
 * what was wrong and where (file, field, input index, byte offset).  The public
 * handles copy this record into their "last error" slot. */
#ifndef EK_BASE_ERR_H
#define EK_BASE_ERR_H

#include <stddef.h>
#include "embedkit.h"

typedef struct ek_err {
    int status;      /* EK_OK or an ek_status error code */
    char msg[1024];  /* one line, no trailing newline */
} ek_err;

/* Sets the error (printf-style) and returns status, so callers can write
 * `return ek_err_set(e, EK_ERR_FORMAT, "config.json: field %s ...", f);`.
 * e may be NULL (the message is then dropped). */
int ek_err_set(ek_err *e, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends "prefix: " to an existing message (e.g. the file being read). */
void ek_err_prefix(ek_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void ek_err_clear(ek_err *e);

#endif
