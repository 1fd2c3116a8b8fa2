/* base/err.c — see err.h. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ek_err_set(ek_err *e, int status, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->status = status;
    }
    return status;
}

void ek_err_prefix(ek_err *e, const char *fmt, ...) {
    if (!e) return;
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t at = (size_t)n < sizeof e->msg - 1 ? (size_t)n : sizeof e->msg - 1;
    /* Append ": old" by hand: the result is cut at the buffer size anyway. */
    const char *sep = ": ";
    for (const char *p = sep; *p && at < sizeof e->msg - 1; p++) e->msg[at++] = *p;
    for (const char *p = old; *p && at < sizeof e->msg - 1; p++) e->msg[at++] = *p;
    e->msg[at] = '\0';
}

void ek_err_clear(ek_err *e) {
    if (!e) return;
    e->status = EK_OK;
    e->msg[0] = '\0';
}
