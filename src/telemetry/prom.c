/* telemetry/prom.c — renders the registry in the Prometheus text exposition
 * format 0.0.4: per metric one group (# HELP, # TYPE, samples); histograms
 * as cumulative _bucket lines ending with le="+Inf", then _sum and _count.
 *
 * _count is computed from the same bucket reads as the +Inf line, so the two
 * agree even while other threads keep observing. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/metrics_int.h"

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if ((size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
}

/* Shortest text that reads back as the same double; +Inf/-Inf/NaN spelled
 * as Prometheus expects. */
static void fmt_num(double v, char *buf, size_t cap) {
    if (isnan(v)) { snprintf(buf, cap, "NaN"); return; }
    if (isinf(v)) { snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf"); return; }
    if (v == floor(v) && fabs(v) < 1e15) { snprintf(buf, cap, "%.0f", v); return; } /* counts */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Label values escape backslash, double quote and newline; HELP text
 * escapes backslash and newline. */
static void sb_escaped(sbuf *b, const char *s, int quote) {
    for (; *s; s++) {
        if (*s == '\\') sb_printf(b, "\\\\");
        else if (*s == '\n') sb_printf(b, "\\n");
        else if (quote && *s == '"') sb_printf(b, "\\\"");
        else sb_printf(b, "%c", *s);
    }
}

static void sb_labels(sbuf *b, const ek_metric_family *x, const ek_series *s, const char *le) {
    if (!x->n_labels && !le) return;
    sb_printf(b, "{");
    for (int i = 0; i < x->n_labels; i++) {
        sb_printf(b, "%s%s=\"", i ? "," : "", x->labels[i]);
        sb_escaped(b, s->values[i], 1);
        sb_printf(b, "\"");
    }
    if (le) sb_printf(b, "%sle=\"%s\"", x->n_labels ? "," : "", le);
    sb_printf(b, "}");
}

static void render_metric(sbuf *b, const ek_metric_family *x) {
    static const char *types[] = {"counter", "gauge", "histogram"};
    sb_printf(b, "# HELP %s ", x->name);
    sb_escaped(b, x->help, 0);
    sb_printf(b, "\n# TYPE %s %s\n", x->name, types[x->kind]);
    int n = __atomic_load_n(&x->n_series, __ATOMIC_ACQUIRE);
    char num[40];
    for (int i = 0; i <= n; i++) {
        /* The "other" series (index max_series) only once it is used. */
        const ek_series *s = i < n ? &x->series[i] : &x->series[x->max_series];
        if (i == n && !x->overflowed) break;
        if (x->kind != EK_HISTOGRAM) {
            sb_printf(b, "%s", x->name);
            sb_labels(b, x, s, NULL);
            fmt_num(ek_series_bits_value(&s->value_bits), num, sizeof num);
            sb_printf(b, " %s\n", num);
            continue;
        }
        uint64_t cum = 0;
        for (int k = 0; k <= x->n_buckets; k++) {
            cum += __atomic_load_n(&s->buckets[k], __ATOMIC_RELAXED);
            char le[40];
            if (k < x->n_buckets) fmt_num(x->bounds[k], le, sizeof le);
            else snprintf(le, sizeof le, "+Inf");
            sb_printf(b, "%s_bucket", x->name);
            sb_labels(b, x, s, le);
            sb_printf(b, " %llu\n", (unsigned long long)cum);
        }
        sb_printf(b, "%s_sum", x->name);
        sb_labels(b, x, s, NULL);
        fmt_num(ek_series_bits_value(&s->sum_bits), num, sizeof num);
        sb_printf(b, " %s\n", num);
        sb_printf(b, "%s_count", x->name);
        sb_labels(b, x, s, NULL);
        sb_printf(b, " %llu\n", (unsigned long long)cum);
    }
}

ek_status ek_metrics_render(const ek_metrics *m, char **text, size_t *len) {
    if (!m || !text) return EK_ERR_INVALID_ARG;
    sbuf b = {0};
    sb_printf(&b, "%s", "");
    pthread_mutex_lock((pthread_mutex_t *)&m->mu);
    for (int i = 0; i < m->n; i++) render_metric(&b, m->metrics[i]);
    pthread_mutex_unlock((pthread_mutex_t *)&m->mu);
    if (b.oom) {
        free(b.p);
        return EK_ERR_NOMEM;
    }
    *text = b.p;
    if (len) *len = b.n;
    return EK_OK;
}
