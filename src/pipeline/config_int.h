/* pipeline/config_int.h — the configuration schema shared by the loaders
 * (config.c: flags, env, store; config_yaml.c: the file). */
#ifndef EK_PIPELINE_CONFIG_INT_H
#define EK_PIPELINE_CONFIG_INT_H

#include <stddef.h>

#include "embedkit_pipeline.h"

/* K_DEVICE: a device spec as ek_ctx_set_device takes it (cpu, gpu, auto,
 * opencl:P:D), checked when read so a bad one names its file line. */
typedef enum cfg_type { K_INT, K_BYTES, K_DOUBLE, K_BOOL, K_STR, K_ENUM, K_DEVICE } cfg_type;

typedef struct cfg_key {
    const char *key;       /* dotted name in the file */
    const char *env;       /* EK_* variable */
    cfg_type type;
    size_t off, size;      /* field in ek_config */
    double min, max;       /* numbers */
    const char *enums;     /* "a|b|c" */
    const char *def;       /* default, as text */
    const char *help;
} cfg_key;

const cfg_key *ek_config_key_def(int i);
int ek_config_find_key(const char *key);
/* Closest known key to a misspelt one, or NULL. */
const char *ek_config_suggest(const char *key);
/* Parses value into key k; where prefixes error lines.  Returns 0 or 1 (errors). */
int ek_config_apply(ek_config *cfg, int k, const char *value, ek_config_source src,
                    const char *origin, const char *where, char *errs, size_t cap);
/* Appends one error line. */
void ek_config_errf(char *errs, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Checks across keys; returns the number of errors. */
int ek_config_check(const ek_config *cfg, const char *where, char *errs, size_t cap);

#endif
