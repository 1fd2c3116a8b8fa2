/* pipeline/mw_telemetry.c — metrics and one structured log record per
 * command: commands by type and outcome, latency histograms per type,
 * texts embedded, commands in flight.
 *
 * Series are resolved once per (command, outcome) and kept in a table of
 * atomically published pointers, so the per-command cost is a few atomic
 * adds and two clock reads. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"

#define OUTCOMES 48

struct ek_telemetry_mw {
    ek_metrics *metrics;
    ek_logger *log;
    ek_clock clock;
    ek_metric_family *commands, *duration;
    ek_series *latency[EK_CMD_COUNT];
    ek_series *texts[EK_CMD_COUNT];
    ek_series *outcome[EK_CMD_COUNT][OUTCOMES];
    ek_series *in_flight;
    char outcome_name[OUTCOMES][24];
};

static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

ek_status ek_telemetry_mw_new(ek_metrics *metrics, ek_logger *log, const ek_clock *clock,
                              ek_telemetry_mw **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    ek_telemetry_mw *t = calloc(1, sizeof *t);
    if (!t) return EK_ERR_NOMEM;
    t->metrics = metrics;
    t->log = log;
    t->clock = clock ? *clock : ek_clock_system();
    for (int s = 0; s < OUTCOMES; s++) {
        /* "ok", then status names in lower case without the EK_ERR_ prefix. */
        const char *n = s == 0 ? "ok" : ek_pipe_status_name(s);
        if (!strncmp(n, "EK_ERR_", 7)) n += 7;
        size_t k = 0;
        for (; n[k] && k + 1 < sizeof t->outcome_name[s]; k++) t->outcome_name[s][k] = (char)tolower((unsigned char)n[k]);
        t->outcome_name[s][k] = '\0';
    }
    if (metrics) {
        static const char *const two[] = {"command", "outcome"};
        static const char *const one[] = {"command"};
        ek_metric_family *texts = NULL, *inflight = NULL;
        if (ek_metrics_add(metrics, EK_COUNTER, "embedkit_commands_total",
                           "Commands executed through the pipeline, by type and outcome.", 2, two,
                           EK_CMD_COUNT * 12, NULL, 0, &t->commands) ||
            ek_metrics_add(metrics, EK_HISTOGRAM, "embedkit_command_duration_seconds",
                           "Command latency through the pipeline.", 1, one, EK_CMD_COUNT,
                           latency_buckets, (int)(sizeof latency_buckets / sizeof *latency_buckets),
                           &t->duration) ||
            ek_metrics_add(metrics, EK_COUNTER, "embedkit_texts_total",
                           "Input texts carried by successful commands.", 1, one, EK_CMD_COUNT,
                           NULL, 0, &texts) ||
            ek_metrics_add(metrics, EK_GAUGE, "embedkit_commands_in_flight",
                           "Commands currently inside the pipeline.", 0, NULL, 1, NULL, 0, &inflight)) {
            free(t);
            return EK_ERR_INVALID_ARG;
        }
        for (int c = 0; c < EK_CMD_COUNT; c++) {
            const char *v[] = {ek_cmd_type_name(c)};
            t->latency[c] = ek_metric_series(t->duration, v);
            t->texts[c] = ek_metric_series(texts, v);
        }
        t->in_flight = ek_metric_series(inflight, NULL);
    }
    *out = t;
    return EK_OK;
}

void ek_telemetry_mw_free(ek_telemetry_mw *t) { free(t); }

static ek_series *outcome_series(ek_telemetry_mw *t, int type, int st) {
    int o = st >= 0 && st < OUTCOMES ? st : EK_ERR_INTERNAL;
    ek_series *s = __atomic_load_n(&t->outcome[type][o], __ATOMIC_ACQUIRE);
    if (!s) {
        const char *v[] = {ek_cmd_type_name(type), t->outcome_name[o]};
        s = ek_metric_series(t->commands, v);
        __atomic_store_n(&t->outcome[type][o], s, __ATOMIC_RELEASE);
    }
    return s;
}

static ek_status telemetry(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_telemetry_mw *t = state;
    int type = (int)cmd->type;
    int64_t t0 = t->clock.now_ns(t->clock.arg);
    if (t->in_flight) ek_series_add(t->in_flight, 1);
    ek_status st = ek_next_run(next, cmd, cx);
    int64_t t1 = t->clock.now_ns(t->clock.arg);
    double secs = (double)(t1 - t0) / 1e9;
    size_t items = ek_cmd_text_count(cmd);
    if (t->metrics) {
        ek_series_add(t->in_flight, -1);
        ek_series_observe(t->latency[type], secs);
        ek_series_add(outcome_series(t, type, st), 1);
        if (st == EK_OK && items) ek_series_add(t->texts[type], (double)items);
    }
    ek_log_level lvl = st == EK_OK ? EK_LOG_INFO
                       : (st == EK_ERR_INVALID_ARG || st == EK_ERR_UTF8 || st == EK_ERR_TOO_LONG ||
                          st == EK_ERR_RATE_LIMITED || st == EK_ERR_CANCELLED)
                           ? EK_LOG_WARN
                           : EK_LOG_ERROR;
    if (ek_logger_enabled(t->log, lvl)) {
        int o = st >= 0 && st < OUTCOMES ? st : EK_ERR_INTERNAL;
        ek_log_field f[10];
        int n = 0;
        f[n++] = (ek_log_field){"request_id", NULL, (double)cx->request_id};
        if (cx->correlation_id[0]) f[n++] = (ek_log_field){"correlation_id", cx->correlation_id, 0};
        if (cx->caller[0]) f[n++] = (ek_log_field){"caller", cx->caller, 0};
        f[n++] = (ek_log_field){"command", ek_cmd_type_name(type), 0};
        f[n++] = (ek_log_field){"model", cmd->model ? cmd->model : "default", 0};
        if (items) f[n++] = (ek_log_field){"items", NULL, (double)items};
        f[n++] = (ek_log_field){"duration_s", NULL, secs};
        f[n++] = (ek_log_field){"outcome", t->outcome_name[o], 0};
        if (st != EK_OK) {
            f[n++] = (ek_log_field){"origin", cx->origin, 0};
            f[n++] = (ek_log_field){"error", cx->message, 0};
        }
        ek_log(t->log, lvl, "command", f, n);
    }
    return st;
}

ek_middleware ek_telemetry_middleware(ek_telemetry_mw *t) {
    /* Registered in the outermost class so it sees every command, including
     * those that validation, rate limiting or the breaker turn away. */
    ek_middleware m = {"telemetry", EK_MW_AUTH, EK_SCOPE_ALL, 0, telemetry, t, NULL};
    return m;
}
