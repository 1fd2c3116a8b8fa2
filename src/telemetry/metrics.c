/* telemetry/metrics.c — the metrics registry: counters, gauges and
 * histograms with labels of bounded cardinality.
 *
 * Why this shape: updates happen on every command, so a series, once
 * looked up, is updated with atomics only (no lock).  Looking a series up by
 * label values scans the published series without a lock; only creating a
 * new series takes the metric's mutex.  Each metric holds at most
 * max_series label sets; further ones share a single "other" series, so a
 * caller-controlled label can never grow memory or the exposition without
 * bound.  Rendering lives in telemetry/prom.c. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/metrics_int.h"

static int name_ok(const char *s, int allow_colon) {
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (allow_colon && c == ':');
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

ek_status ek_metrics_new(ek_metrics **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    ek_metrics *m = calloc(1, sizeof *m);
    if (!m) return EK_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return EK_OK;
}

void ek_metrics_free(ek_metrics *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        pthread_mutex_destroy(&m->metrics[i]->mu);
        free(m->metrics[i]->series);
        free(m->metrics[i]);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

ek_metric_family *ek_metrics_find(ek_metrics *m, const char *name) {
    if (!m || !name) return NULL;
    pthread_mutex_lock(&m->mu);
    ek_metric_family *found = NULL;
    for (int i = 0; i < m->n && !found; i++)
        if (!strcmp(m->metrics[i]->name, name)) found = m->metrics[i];
    pthread_mutex_unlock(&m->mu);
    return found;
}

ek_status ek_metrics_add(ek_metrics *m, ek_metric_kind kind, const char *name,
                         const char *help, int n_labels, const char *const *label_names,
                         int max_series, const double *buckets, int n_buckets,
                         ek_metric_family **out) {
    if (!m || !name || (unsigned)kind > EK_HISTOGRAM) return EK_ERR_INVALID_ARG;
    /* Naming rules (Prometheus + this project): embedkit_ prefix, counters
     * end in _total, histograms have ascending finite bounds. */
    if (!name_ok(name, 1) || strncmp(name, "embedkit_", 9) || strlen(name) >= EK_METRIC_NAME_MAX)
        return EK_ERR_INVALID_ARG;
    if (kind == EK_COUNTER && !ends_with(name, "_total")) return EK_ERR_INVALID_ARG;
    if (kind != EK_COUNTER && ends_with(name, "_total")) return EK_ERR_INVALID_ARG;
    if (n_labels < 0 || n_labels > EK_METRIC_MAX_LABELS || (n_labels && !label_names))
        return EK_ERR_INVALID_ARG;
    for (int i = 0; i < n_labels; i++) {
        if (!name_ok(label_names[i], 0) || !strncmp(label_names[i], "__", 2) ||
            strlen(label_names[i]) >= EK_LABEL_MAX)
            return EK_ERR_INVALID_ARG;
        if (kind == EK_HISTOGRAM && !strcmp(label_names[i], "le")) return EK_ERR_INVALID_ARG;
    }
    if (kind == EK_HISTOGRAM) {
        if (n_buckets < 1 || n_buckets > EK_METRIC_MAX_BUCKETS || !buckets) return EK_ERR_INVALID_ARG;
        for (int i = 0; i < n_buckets; i++)
            if (buckets[i] != buckets[i] || buckets[i] > 1e300 || (i && buckets[i] <= buckets[i - 1]))
                return EK_ERR_INVALID_ARG;
    }
    if (max_series <= 0) max_series = 1;
    if (n_labels == 0) max_series = 1;
    ek_metric_family *x = calloc(1, sizeof *x);
    if (!x) return EK_ERR_NOMEM;
    /* One extra slot for the shared "other" series. */
    x->series = calloc((size_t)max_series + 1, sizeof *x->series);
    if (!x->series) {
        free(x);
        return EK_ERR_NOMEM;
    }
    pthread_mutex_init(&x->mu, NULL);
    x->kind = kind;
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->help, sizeof x->help, "%s", help ? help : "");
    x->n_labels = n_labels;
    for (int i = 0; i < n_labels; i++) snprintf(x->labels[i], sizeof x->labels[i], "%s", label_names[i]);
    x->max_series = max_series;
    x->n_buckets = kind == EK_HISTOGRAM ? n_buckets : 0;
    for (int i = 0; i < x->n_buckets; i++) x->bounds[i] = buckets[i];
    for (int i = 0; i < n_labels; i++) snprintf(x->series[max_series].values[i], EK_LABEL_VALUE_MAX, "other");
    x->series[max_series].metric = x;

    pthread_mutex_lock(&m->mu);
    int dup = 0;
    for (int i = 0; i < m->n; i++) dup |= !strcmp(m->metrics[i]->name, name);
    if (dup || m->n >= EK_MAX_METRICS) {
        pthread_mutex_unlock(&m->mu);
        pthread_mutex_destroy(&x->mu);
        free(x->series);
        free(x);
        return EK_ERR_INVALID_ARG;
    }
    m->metrics[m->n++] = x;
    pthread_mutex_unlock(&m->mu);
    /* A label-less metric has its one series from the start (renders 0). */
    if (n_labels == 0) ek_metric_series(x, NULL);
    if (out) *out = x;
    return EK_OK;
}

static int same_values(const ek_series *s, int n, const char *const *v) {
    for (int i = 0; i < n; i++)
        if (strncmp(s->values[i], v[i] ? v[i] : "", EK_LABEL_VALUE_MAX - 1)) return 0;
    return 1;
}

ek_series *ek_metric_series(ek_metric_family *x, const char *const *values) {
    if (!x) return NULL;
    int published = __atomic_load_n(&x->n_series, __ATOMIC_ACQUIRE);
    for (int i = 0; i < published; i++)
        if (same_values(&x->series[i], x->n_labels, values)) return &x->series[i];
    pthread_mutex_lock(&x->mu);
    ek_series *s = NULL;
    for (int i = 0; i < x->n_series && !s; i++)
        if (same_values(&x->series[i], x->n_labels, values)) s = &x->series[i];
    if (!s && x->n_series < x->max_series) {
        s = &x->series[x->n_series];
        for (int i = 0; i < x->n_labels; i++)
            snprintf(s->values[i], EK_LABEL_VALUE_MAX, "%s", values[i] ? values[i] : "");
        s->metric = x;
        __atomic_store_n(&x->n_series, x->n_series + 1, __ATOMIC_RELEASE);
    }
    if (!s) {
        s = &x->series[x->max_series];
        x->overflowed = 1;
    }
    pthread_mutex_unlock(&x->mu);
    return s;
}

/* Doubles updated atomically through their bit pattern (C11 has no atomic
 * add for double; a compare-exchange loop is lock-free on x86-64). */
static void atomic_add_double(uint64_t *bits, double v) {
    uint64_t old = __atomic_load_n(bits, __ATOMIC_RELAXED), upd;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += v;
        memcpy(&upd, &d, sizeof upd);
    } while (!__atomic_compare_exchange_n(bits, &old, upd, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

double ek_series_bits_value(const uint64_t *bits) {
    uint64_t b = __atomic_load_n(bits, __ATOMIC_RELAXED);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

void ek_series_add(ek_series *s, double v) {
    if (!s || s->metric->kind == EK_HISTOGRAM) return;
    if (s->metric->kind == EK_COUNTER && !(v >= 0)) return; /* counters never go down */
    atomic_add_double(&s->value_bits, v);
}

void ek_series_set(ek_series *s, double v) {
    if (!s || s->metric->kind != EK_GAUGE) return;
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    __atomic_store_n(&s->value_bits, b, __ATOMIC_RELAXED);
}

void ek_series_observe(ek_series *s, double v) {
    if (!s || s->metric->kind != EK_HISTOGRAM || v != v) return;
    const ek_metric_family *x = s->metric;
    int b = 0;
    while (b < x->n_buckets && v > x->bounds[b]) b++; /* le: v <= bound */
    __atomic_add_fetch(&s->buckets[b], 1, __ATOMIC_RELAXED);
    atomic_add_double(&s->sum_bits, v);
}

double ek_series_value(const ek_series *s) {
    if (!s) return 0;
    if (s->metric->kind != EK_HISTOGRAM) return ek_series_bits_value(&s->value_bits);
    uint64_t n = 0;
    for (int b = 0; b <= s->metric->n_buckets; b++) n += __atomic_load_n(&s->buckets[b], __ATOMIC_RELAXED);
    return (double)n;
}
