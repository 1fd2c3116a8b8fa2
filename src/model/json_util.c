/* model/json_util.c — see json_util.h. */
#include "model/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

int ek_json_load(const char *path, int want_array, cJSON **root, ek_err *e) {
    *root = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = ek_read_file(path, 256u << 20, &text, &len, e);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: not valid JSON (error near byte %zu)", path, at);
    }
    free(text);
    if (want_array ? !cJSON_IsArray(j) : !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: top level must be a JSON %s", path,
                          want_array ? "array" : "object");
    }
    *root = j;
    return EK_OK;
}

static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
}

int ek_json_int(const cJSON *o, const char *file, const char *field, long max, int *out,
                ek_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v) return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: missing", file, field);
    if (!is_int(v) || v->valuedouble < 1 || v->valuedouble > (double)max)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: must be an integer in 1..%ld", file,
                          field, max);
    *out = (int)v->valuedouble;
    return EK_OK;
}

int ek_json_int_opt(const cJSON *o, const char *file, const char *field, long min, long max,
                    int *out, ek_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return EK_OK;
    if (!is_int(v) || v->valuedouble < (double)min || v->valuedouble > (double)max)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: must be an integer in %ld..%ld", file,
                          field, min, max);
    *out = (int)v->valuedouble;
    return EK_OK;
}

int ek_json_bool_opt(const cJSON *o, const char *file, const char *field, int *out, ek_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return EK_OK;
    if (!cJSON_IsBool(v))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: must be true or false", file, field);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return EK_OK;
}

int ek_json_double_opt(const cJSON *o, const char *file, const char *field, double *out,
                       ek_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return EK_OK;
    if (!cJSON_IsNumber(v))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: must be a number", file, field);
    *out = v->valuedouble;
    return EK_OK;
}

int ek_json_str_opt(const cJSON *o, const char *file, const char *field, char *buf, size_t cap,
                    ek_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return EK_OK;
    if (!cJSON_IsString(v))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: must be a string", file, field);
    if (strlen(v->valuestring) >= cap)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: longer than %zu bytes", file, field,
                          cap - 1);
    snprintf(buf, cap, "%s", v->valuestring);
    return EK_OK;
}
