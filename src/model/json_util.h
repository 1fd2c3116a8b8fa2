/* model/json_util.h — typed field access on cJSON objects with errors that
 * name the file and the field ("config.json: field hidden_size: ..."). */
#ifndef EK_MODEL_JSON_UTIL_H
#define EK_MODEL_JSON_UTIL_H

#include <cjson/cJSON.h>
#include "base/err.h"

/* Reads and parses a JSON file; the root must be an object (or an array when
 * want_array).  *root must be freed with cJSON_Delete. */
int ek_json_load(const char *path, int want_array, cJSON **root, ek_err *e);
/* Required positive integer field (1..max). */
int ek_json_int(const cJSON *o, const char *file, const char *field, long max, int *out,
                ek_err *e);
/* Optional integer: returns EK_OK and leaves *out when absent or null. */
int ek_json_int_opt(const cJSON *o, const char *file, const char *field, long min, long max,
                    int *out, ek_err *e);
int ek_json_bool_opt(const cJSON *o, const char *file, const char *field, int *out, ek_err *e);
int ek_json_double_opt(const cJSON *o, const char *file, const char *field, double *out,
                       ek_err *e);
/* Optional string copied into buf (cap bytes). */
int ek_json_str_opt(const cJSON *o, const char *file, const char *field, char *buf, size_t cap,
                    ek_err *e);

#endif
