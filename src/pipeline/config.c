/* pipeline/config.c — the configuration schema (every knob of the project,
 * its type, range, default, environment variable and help), typed setting
 * with provenance, the EK_* environment layer and the reloadable store.
 * The YAML file layer is in config_yaml.c.
 *
 * Why one table: defaults, parsing, range checks, `ek config show`, the
 * environment names and the misspelling suggestions all come from it, so
 * adding a knob is one line here plus its field in ek_config. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/config_int.h"

#define F(field) offsetof(ek_config, field), sizeof(((ek_config *)0)->field)

static const cfg_key KEYS[] = {
    {"threads", "EK_THREADS", K_INT, F(threads), 0, 1024, NULL, "0", "worker threads per command (0: all cores)"},
    {"dtype", "EK_DTYPE", K_ENUM, F(dtype), 0, 0, "f32|bf16|int8", "f32", "compute dtype of loaded models"},
    {"model", "EK_MODEL", K_STR, F(model), 0, 0, NULL, "", "default model (directory or registry reference)"},
    {"registry.home", "EK_REGISTRY_HOME", K_STR, F(registry_home), 0, 0, NULL, "", "model registry directory (empty: EK_HOME or ~/.local/share/embedkit)"},
    {"registry.verify_on_load", "EK_REGISTRY_VERIFY_ON_LOAD", K_ENUM, F(registry_verify_on_load), 0, 0, "off|signed|required", "off", "re-verify a registry version's signature and files when loaded (required: refuse unsigned ones too); the registry's own setting may be stricter"},
    {"device", "EK_DEVICE", K_DEVICE, F(device), 0, 0, NULL, "cpu", "where embedding runs: cpu, gpu, auto (a GPU for calls of at least gpu.auto_min_tokens tokens) or opencl:PLATFORM:DEVICE"},
    {"gpu.auto_min_tokens", "EK_GPU_AUTO_MIN_TOKENS", K_INT, F(gpu_auto_min_tokens), 0, 1 << 30, NULL, "0", "device auto: calls with fewer tokens stay on the CPU (0: the library default, 512)"},
    {"batch_size", "EK_BATCH_SIZE", K_INT, F(batch_size), 1, 4096, NULL, "32", "inputs per forward pass (and per deadline check)"},
    {"max_batch_tokens", "EK_MAX_BATCH_TOKENS", K_INT, F(max_batch_tokens), 1, 1048576, NULL, "8192", "tokens per forward pass"},
    {"max_length", "EK_MAX_LENGTH", K_INT, F(max_length), 0, 1048576, NULL, "0", "tokens per input (0: the model's max_seq_length)"},
    {"cache.max_bytes", "EK_CACHE_MAX_BYTES", K_BYTES, F(cache_max_bytes), 0, 1099511627776.0, NULL, "64MiB", "embedding cache budget (0: off)"},
    {"validation.max_text_bytes", "EK_VALIDATION_MAX_TEXT_BYTES", K_BYTES, F(validation_max_text_bytes), 1, 1073741824.0, NULL, "1MiB", "longest accepted text"},
    {"validation.max_batch", "EK_VALIDATION_MAX_BATCH", K_INT, F(validation_max_batch), 1, 10000000, NULL, "1024", "most texts in one batch command"},
    {"validation.allow_nul", "EK_VALIDATION_ALLOW_NUL", K_BOOL, F(validation_allow_nul), 0, 1, NULL, "true", "accept NUL bytes in texts (the tokenizer removes them, as Hugging Face's does)"},
    {"validation.allow_empty", "EK_VALIDATION_ALLOW_EMPTY", K_BOOL, F(validation_allow_empty), 0, 1, NULL, "true", "accept empty texts (embedded as [CLS] [SEP], as sentence-transformers does)"},
    {"rate_limit.rate", "EK_RATE_LIMIT_RATE", K_DOUBLE, F(ratelimit_rate), 0, 1e12, NULL, "0", "tokens per second: characters of a text, items of a batch (0: unlimited)"},
    {"rate_limit.burst", "EK_RATE_LIMIT_BURST", K_DOUBLE, F(ratelimit_burst), 0, 1e12, NULL, "0", "bucket size (0: one second of rate)"},
    {"rate_limit.per_caller", "EK_RATE_LIMIT_PER_CALLER", K_BOOL, F(ratelimit_per_caller), 0, 1, NULL, "false", "one bucket per caller instead of one global"},
    {"breaker.enabled", "EK_BREAKER_ENABLED", K_BOOL, F(breaker_enabled), 0, 1, NULL, "true", "circuit breaker per model version"},
    {"breaker.failure_rate_threshold", "EK_BREAKER_FAILURE_RATE_THRESHOLD", K_DOUBLE, F(breaker_failure_rate), 1, 100, NULL, "50", "percent of failed calls that opens the breaker"},
    {"breaker.slow_call_rate_threshold", "EK_BREAKER_SLOW_CALL_RATE_THRESHOLD", K_DOUBLE, F(breaker_slow_call_rate), 1, 100, NULL, "100", "percent of slow calls that opens the breaker"},
    {"breaker.slow_call_duration_s", "EK_BREAKER_SLOW_CALL_DURATION_S", K_DOUBLE, F(breaker_slow_call_s), 0.001, 86400, NULL, "60", "a call at least this long is slow"},
    {"breaker.wait_open_s", "EK_BREAKER_WAIT_OPEN_S", K_DOUBLE, F(breaker_wait_open_s), 0, 86400, NULL, "60", "time OPEN before trial calls"},
    {"breaker.half_open_calls", "EK_BREAKER_HALF_OPEN_CALLS", K_INT, F(breaker_half_open_calls), 1, 10000, NULL, "10", "trial calls in HALF_OPEN"},
    {"breaker.minimum_calls", "EK_BREAKER_MINIMUM_CALLS", K_INT, F(breaker_minimum_calls), 1, 100000, NULL, "100", "calls in the window before rates count"},
    {"breaker.window_size", "EK_BREAKER_WINDOW_SIZE", K_INT, F(breaker_window_size), 1, 100000, NULL, "100", "count-based sliding window"},
    {"bulkhead.max_concurrent", "EK_BULKHEAD_MAX_CONCURRENT", K_INT, F(bulkhead_max_concurrent), 0, 100000, NULL, "0", "commands in flight at once (0: unbounded)"},
    {"bulkhead.max_wait_s", "EK_BULKHEAD_MAX_WAIT_S", K_DOUBLE, F(bulkhead_max_wait_s), 0, 3600, NULL, "0", "wait for a slot (0: fail fast)"},
    {"retry.max_attempts", "EK_RETRY_MAX_ATTEMPTS", K_INT, F(retry_max_attempts), 1, 10, NULL, "3", "attempts for retryable errors (1: no retry)"},
    {"retry.base_backoff_s", "EK_RETRY_BASE_BACKOFF_S", K_DOUBLE, F(retry_base_backoff_s), 0, 60, NULL, "0.1", "first backoff"},
    {"retry.max_backoff_s", "EK_RETRY_MAX_BACKOFF_S", K_DOUBLE, F(retry_max_backoff_s), 0, 600, NULL, "2", "longest backoff"},
    {"retry.jitter", "EK_RETRY_JITTER", K_DOUBLE, F(retry_jitter), 0, 1, NULL, "0.5", "backoff randomisation (fraction)"},
    {"deadline.timeout_s", "EK_DEADLINE_TIMEOUT_S", K_DOUBLE, F(deadline_timeout_s), 0, 86400, NULL, "0", "default command deadline (0: none)"},
    {"log.level", "EK_LOG_LEVEL", K_ENUM, F(log_level), 0, 0, "debug|info|warn|error", "info", "least severe level logged"},
    {"log.format", "EK_LOG_FORMAT", K_ENUM, F(log_format), 0, 0, "auto|text|json", "auto", "auto: text on a terminal, JSON lines otherwise"},
    {"metrics.enabled", "EK_METRICS_ENABLED", K_BOOL, F(metrics_enabled), 0, 1, NULL, "true", "collect metrics"},
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

_Static_assert(sizeof KEYS / sizeof KEYS[0] <= EK_CONFIG_MAX_KEYS, "raise EK_CONFIG_MAX_KEYS");

int ek_config_key_count(void) { return N_KEYS; }
const cfg_key *ek_config_key_def(int i) { return i >= 0 && i < N_KEYS ? &KEYS[i] : NULL; }
const char *ek_config_key(int i) { return i >= 0 && i < N_KEYS ? KEYS[i].key : NULL; }
const char *ek_config_key_env(int i) { return i >= 0 && i < N_KEYS ? KEYS[i].env : NULL; }
const char *ek_config_key_help(int i) { return i >= 0 && i < N_KEYS ? KEYS[i].help : NULL; }

int ek_config_find_key(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].key, key)) return i;
    return -1;
}

void ek_config_errf(char *errs, size_t cap, const char *fmt, ...) {
    if (!errs || !cap) return;
    size_t at = strlen(errs);
    if (at + 2 >= cap) return;
    if (at) errs[at++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errs + at, cap - at, fmt, ap);
    va_end(ap);
}

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            /* transposition counts as one edit */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    return d[la][lb];
}

const char *ek_config_suggest(const char *key) {
    const char *best = NULL;
    size_t best_d = 99;
    for (int i = 0; i < N_KEYS; i++) {
        size_t d = edit_distance(key, KEYS[i].key);
        /* Also compare the last segment alone ("wait_opn_s" → breaker.wait_open_s). */
        const char *dot = strrchr(KEYS[i].key, '.');
        if (dot && !strchr(key, '.')) {
            size_t d2 = edit_distance(key, dot + 1) + 1;
            if (d2 < d) d = d2;
        }
        if (d < best_d) {
            best_d = d;
            best = KEYS[i].key;
        }
    }
    size_t len = strlen(key);
    size_t limit = len < 6 ? 2 : len / 3 + 1;
    return best && best_d <= limit ? best : NULL;
}

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) { *out = 1; return 0; }
        if (!strcasecmp(v, no[i])) { *out = 0; return 0; }
    }
    return -1;
}

/* Integers with an optional binary/decimal size suffix (KiB, MB, ...). */
static int parse_number(const char *v, int bytes, int integer, double *out) {
    errno = 0;
    char *end = NULL;
    double x = strtod(v, &end);
    if (end == v || errno || !isfinite(x)) return -1;
    while (*end == ' ') end++;
    if (*end && bytes) {
        static const struct { const char *s; double m; } sfx[] = {
            {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
            {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
        int found = 0;
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0] && !found; i++)
            if (!strcmp(end, sfx[i].s)) { x *= sfx[i].m; found = 1; }
        if (!found) return -1;
        end += strlen(end);
    }
    if (*end) return -1;
    if (integer && x != floor(x)) return -1;
    *out = x;
    return 0;
}

/* cpu, gpu, auto or opencl:P:D with P and D decimal numbers. */
static int device_spec_ok(const char *v) {
    if (!strcmp(v, "cpu") || !strcmp(v, "gpu") || !strcmp(v, "auto")) return 1;
    if (strncmp(v, "opencl:", 7)) return 0;
    const char *p = v + 7;
    size_t a = strspn(p, "0123456789");
    if (!a || a > 6 || p[a] != ':') return 0;
    size_t b = strspn(p + a + 1, "0123456789");
    return b && b <= 6 && p[a + 1 + b] == '\0';
}

int ek_config_apply(ek_config *cfg, int k, const char *value, ek_config_source src,
                    const char *origin, const char *where, char *errs, size_t cap) {
    const cfg_key *d = &KEYS[k];
    char *field = (char *)cfg + d->off;
    double x = 0;
    int b = 0;
    switch (d->type) {
    case K_INT:
    case K_BYTES:
    case K_DOUBLE:
        if (parse_number(value, d->type == K_BYTES, d->type != K_DOUBLE, &x)) {
            ek_config_errf(errs, cap, "%s: %s: \"%s\" is not %s", where, d->key, value,
                           d->type == K_DOUBLE ? "a number"
                           : d->type == K_BYTES ? "a byte size (e.g. 1048576, 64MiB)"
                                                : "an integer");
            return 1;
        }
        if (x < d->min || x > d->max) {
            char lo[32], hi[32];
            snprintf(lo, sizeof lo, "%.15g", d->min);
            snprintf(hi, sizeof hi, "%.15g", d->max);
            ek_config_errf(errs, cap, "%s: %s: %s is out of range %s..%s", where, d->key, value, lo, hi);
            return 1;
        }
        if (d->type == K_INT) *(int *)(void *)field = (int)x;
        else if (d->type == K_BYTES) *(int64_t *)(void *)field = (int64_t)x;
        else *(double *)(void *)field = x;
        break;
    case K_BOOL:
        if (parse_bool(value, &b)) {
            ek_config_errf(errs, cap, "%s: %s: \"%s\" is not a boolean (true or false)", where, d->key, value);
            return 1;
        }
        *(int *)(void *)field = b;
        break;
    case K_ENUM: {
        /* d->enums is "a|b|c" */
        size_t n = strlen(value);
        const char *p = d->enums;
        int ok = 0;
        while (*p && !ok) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            ok = len == n && !strncmp(p, value, n);
            p += len + (bar != NULL);
        }
        if (!ok) {
            ek_config_errf(errs, cap, "%s: %s: \"%s\" is not one of %s", where, d->key, value, d->enums);
            return 1;
        }
    } /* fall through */
    case K_DEVICE:
        if (d->type == K_DEVICE && !device_spec_ok(value)) {
            ek_config_errf(errs, cap, "%s: %s: \"%s\" is not cpu, gpu, auto or opencl:PLATFORM:DEVICE", where, d->key,
                           value);
            return 1;
        }
        /* fall through */
    case K_STR:
        if (strlen(value) >= d->size) {
            ek_config_errf(errs, cap, "%s: %s: value longer than %zu bytes", where, d->key, d->size - 1);
            return 1;
        }
        memcpy(field, value, strlen(value) + 1);
        break;
    }
    cfg->source[k] = src;
    snprintf(cfg->origin[k], sizeof cfg->origin[k], "%s", origin ? origin : "");
    return 0;
}

void ek_config_defaults(ek_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int k = 0; k < N_KEYS; k++) ek_config_apply(cfg, k, KEYS[k].def, EK_SRC_DEFAULT, "", "default", NULL, 0);
}

void ek_config_value_text(const ek_config *cfg, int k, char *buf, size_t cap) {
    if (k < 0 || k >= N_KEYS || !cap) return;
    const cfg_key *d = &KEYS[k];
    const char *field = (const char *)cfg + d->off;
    switch (d->type) {
    case K_INT: snprintf(buf, cap, "%d", *(const int *)(const void *)field); break;
    case K_BYTES: snprintf(buf, cap, "%lld", (long long)*(const int64_t *)(const void *)field); break;
    case K_DOUBLE: snprintf(buf, cap, "%.15g", *(const double *)(const void *)field); break;
    case K_BOOL: snprintf(buf, cap, "%s", *(const int *)(const void *)field ? "true" : "false"); break;
    default: snprintf(buf, cap, "%s", field); break;
    }
}

int ek_config_set(ek_config *cfg, const char *key, const char *value, ek_config_source src,
                  const char *origin, char *errs, size_t cap) {
    const char *where = origin && *origin ? origin : "flag";
    int k = ek_config_find_key(key ? key : "");
    if (k < 0) {
        const char *s = ek_config_suggest(key ? key : "");
        ek_config_errf(errs, cap, "%s: unknown key \"%s\"%s%s%s", where, key ? key : "",
                       s ? " (did you mean \"" : "", s ? s : "", s ? "\"?)" : "");
        return 1;
    }
    if (!value) {
        ek_config_errf(errs, cap, "%s: %s: needs a value", where, key);
        return 1;
    }
    return ek_config_apply(cfg, k, value, src, origin, where, errs, cap);
}

int ek_config_load_env(ek_config *cfg, char *const *envp, char *errs, size_t cap) {
    int n_err = 0;
    if (!envp) return 0;
    for (char *const *e = envp; *e; e++) {
        if (strncmp(*e, "EK_", 3)) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        size_t nlen = (size_t)(eq - *e);
        for (int k = 0; k < N_KEYS; k++)
            if (strlen(KEYS[k].env) == nlen && !strncmp(KEYS[k].env, *e, nlen))
                n_err += ek_config_apply(cfg, k, eq + 1, EK_SRC_ENV, KEYS[k].env, KEYS[k].env, errs, cap);
    }
    return n_err;
}

int ek_config_check(const ek_config *cfg, const char *where, char *errs, size_t cap) {
    int n = 0;
    if (cfg->retry_max_backoff_s < cfg->retry_base_backoff_s) {
        ek_config_errf(errs, cap, "%s: retry.max_backoff_s (%g) is below retry.base_backoff_s (%g)", where,
                       cfg->retry_max_backoff_s, cfg->retry_base_backoff_s);
        n++;
    }
    return n;
}

const char *ek_config_source_name(ek_config_source s) {
    static const char *n[] = {"default", "file", "env", "flag"};
    return (unsigned)s <= EK_SRC_FLAG ? n[s] : "unknown";
}

int ek_config_find_file(char *const *envp, const char *flag_path, char *buf, size_t cap) {
    if (flag_path && *flag_path) {
        snprintf(buf, cap, "%s", flag_path);
        return 1;
    }
    const char *xdg = NULL, *home = NULL;
    for (char *const *e = envp; e && *e; e++) {
        if (!strncmp(*e, "EK_CONFIG=", 10) && (*e)[10]) {
            snprintf(buf, cap, "%s", *e + 10);
            return 1;
        }
        if (!strncmp(*e, "XDG_CONFIG_HOME=", 16)) xdg = *e + 16;
        if (!strncmp(*e, "HOME=", 5)) home = *e + 5;
    }
    if (xdg && *xdg) snprintf(buf, cap, "%s/embedkit/config.yaml", xdg);
    else if (home && *home) snprintf(buf, cap, "%s/.config/embedkit/config.yaml", home);
    else return 0;
    FILE *f = fopen(buf, "r");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* ---- the reloadable store -------------------------------------------------- */

typedef struct flag_kv { char key[64]; char value[512]; char origin[64]; } flag_kv;

struct ek_config_store {
    pthread_mutex_t mu;
    ek_config current;
    uint64_t generation;
    flag_kv flags[EK_CONFIG_MAX_KEYS];
    int n_flags;
};

ek_status ek_config_store_new(ek_config_store **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    ek_config_store *s = calloc(1, sizeof *s);
    if (!s) return EK_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    ek_config_defaults(&s->current);
    *out = s;
    return EK_OK;
}

void ek_config_store_free(ek_config_store *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

ek_status ek_config_store_flag(ek_config_store *s, const char *key, const char *value, const char *origin) {
    if (!s || !key || !value || s->n_flags >= EK_CONFIG_MAX_KEYS) return EK_ERR_INVALID_ARG;
    flag_kv *f = &s->flags[s->n_flags++];
    snprintf(f->key, sizeof f->key, "%s", key);
    snprintf(f->value, sizeof f->value, "%s", value);
    snprintf(f->origin, sizeof f->origin, "%s", origin ? origin : "--set");
    return EK_OK;
}

ek_status ek_config_store_load(ek_config_store *s, const char *path, char *const *envp, char *errs, size_t cap) {
    if (!s) return EK_ERR_INVALID_ARG;
    if (errs && cap) errs[0] = '\0';
    ek_config *next = malloc(sizeof *next);
    if (!next) return EK_ERR_NOMEM;
    ek_config_defaults(next);
    int n = 0;
    if (path) n += ek_config_load_file(next, path, errs, cap);
    n += ek_config_load_env(next, envp, errs, cap);
    for (int i = 0; i < s->n_flags; i++)
        n += ek_config_set(next, s->flags[i].key, s->flags[i].value, EK_SRC_FLAG, s->flags[i].origin, errs, cap);
    if (!n) n += ek_config_check(next, path ? path : "configuration", errs, cap);
    if (n) {
        free(next); /* the configuration in force stays */
        return EK_ERR_FORMAT;
    }
    pthread_mutex_lock(&s->mu);
    s->current = *next;
    s->generation++;
    pthread_mutex_unlock(&s->mu);
    free(next);
    return EK_OK;
}

uint64_t ek_config_store_get(ek_config_store *s, ek_config *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->current;
    uint64_t g = s->generation;
    pthread_mutex_unlock(&s->mu);
    return g;
}
