/* tests/support.h — helpers shared by the cmocka tests: paths from the CTest
 * environment, reading files, temporary directories, running the CLI. */
#ifndef EK_TESTS_SUPPORT_H
#define EK_TESTS_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* $EK_SOURCE_DIR / $EK_MODELS (generated models) / $EK_BIN; abort if unset. */
const char *ts_source_dir(void);
const char *ts_models_dir(void);
const char *ts_ek_bin(void);
/* Joins into a static rotating buffer (valid for the next 8 calls). */
const char *ts_path(const char *a, const char *b);
/* Reads a whole file (NUL-terminated, length in *len); NULL on failure. */
char *ts_read_file(const char *path, size_t *len);
int ts_write_file(const char *path, const void *data, size_t len);
/* Makes a fresh temporary directory; returns its path (static buffer). */
char *ts_mkdtemp(void);
/* Copies a directory tree (cp -r). */
int ts_copy_dir(const char *from, const char *to);
int ts_rm_rf(const char *path);
/* Runs a shell command; captures stdout and stderr (malloc'd, may be NULL
 * pointers to skip).  Returns the exit status (or -1). */
int ts_run(const char *cmd, char **out, char **err);

#endif
