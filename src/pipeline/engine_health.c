/* pipeline/engine_health.c — the HEALTH handler: liveness, a loaded model's
 * readiness (its breaker is not OPEN) and, when the command names a registry
 * reference, the registry's health check of that version, exported as
 * metrics:
 *
 *   embedkit_model_health{model,version,state}   1 for the state of the last
 *       check, 0 for the other two (state = healthy | degraded | unhealthy):
 *       Prometheus' idiom for an enumeration (one series per state), so
 *       `embedkit_model_health{state="unhealthy"} == 1` alerts and
 *       `sum by (state)` counts versions per state
 *   embedkit_model_health_check_timestamp_seconds{model,version}  unix time
 *       the last check finished
 *   embedkit_model_health_check_duration_seconds{model,version}   how long
 *       it took (registry lookup, reload, canaries, re-hash, signature)
 *
 * Checks are rare and slow (they reload the model), so series are looked up
 * per check; cardinality is bounded by max_series like every metric. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_registry.h"
#include "pipeline/engine_int.h"

#define MAX_VERSIONS 64 /* model versions with their own series */

static const char *const STATES[] = {"healthy", "degraded", "unhealthy"};

struct ek_health_metrics {
    ek_metric_family *state, *timestamp, *duration;
};

ek_status ek_eng_health_metrics_new(ek_metrics *metrics, ek_health_metrics **out) {
    *out = NULL;
    if (!metrics) return EK_OK;
    ek_health_metrics *h = calloc(1, sizeof *h);
    if (!h) return EK_ERR_NOMEM;
    static const char *const three[] = {"model", "version", "state"};
    ek_status st = ek_metrics_add(metrics, EK_GAUGE, "embedkit_model_health",
                                  "Result of the last registry health check: 1 for its state, 0 for the others.",
                                  3, three, 3 * MAX_VERSIONS, NULL, 0, &h->state);
    if (!st)
        st = ek_metrics_add(metrics, EK_GAUGE, "embedkit_model_health_check_timestamp_seconds",
                            "Unix time the last registry health check of a model version finished.", 2, three,
                            MAX_VERSIONS, NULL, 0, &h->timestamp);
    if (!st)
        st = ek_metrics_add(metrics, EK_GAUGE, "embedkit_model_health_check_duration_seconds",
                            "Duration of the last registry health check of a model version.", 2, three,
                            MAX_VERSIONS, NULL, 0, &h->duration);
    if (st) {
        free(h);
        return st;
    }
    *out = h;
    return EK_OK;
}

void ek_eng_health_metrics_free(ek_health_metrics *h) { free(h); }

static void export(ek_health_metrics *m, const ek_reg_version *v, const char *result, double wall_s,
                   double secs) {
    if (!m) return;
    char version[24];
    snprintf(version, sizeof version, "%lld", (long long)v->version);
    for (size_t i = 0; i < sizeof STATES / sizeof *STATES; i++) {
        const char *labels[] = {v->name, version, STATES[i]};
        ek_series *s = ek_metric_series(m->state, labels);
        if (s) ek_series_set(s, !strcmp(result, STATES[i]) ? 1.0 : 0.0);
    }
    const char *labels[] = {v->name, version};
    ek_series *ts = ek_metric_series(m->timestamp, labels), *d = ek_metric_series(m->duration, labels);
    if (ts) ek_series_set(ts, wall_s);
    if (d) ek_series_set(d, secs);
}

/* The registry check with the command's options, strengthened by the
 * configuration's registry.verify_on_load as loading is. */
static ek_status registry_check(ek_engine *e, ek_health_args *h, ek_cmd_ctx *cx) {
    ek_status st = ek_eng_need_ctx(cx);
    if (st) return st;
    if (!h->check)
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "health: check is NULL (a registry check of %s needs "
                                                              "an ek_health for its result)", h->ref);
    ek_sig_policy policy = EK_SIG_OFF;
    if (ek_sig_policy_parse(e->cfg.registry_verify_on_load, &policy)) policy = EK_SIG_OFF;
    ek_check_options co = {.rehash = h->rehash,
                           .verify_signature = h->verify_signature || h->require_signature || policy != EK_SIG_OFF,
                           .require_signature = h->require_signature || policy == EK_SIG_REQUIRED};
    const char *home = h->home ? h->home : e->cfg.registry_home[0] ? e->cfg.registry_home : NULL;
    char dflt[3072];
    if (!home && (st = ek_registry_default_home(cx->ek, dflt, sizeof dflt)) != EK_OK) return ek_eng_lib_fail(cx, st);
    if (!home) home = dflt;
    int64_t t0 = e->clock.now_ns(e->clock.arg);
    ek_registry *reg = NULL;
    ek_reg_version v;
    if ((st = ek_registry_open(cx->ek, home, NULL, &reg)) == EK_OK &&
        (st = ek_registry_lookup(cx->ek, reg, h->ref, &v)) == EK_OK)
        st = ek_registry_check_opts(cx->ek, reg, h->ref, &co, h->check);
    ek_registry_close(reg);
    if (st != EK_OK) return ek_eng_lib_fail(cx, st);
    double secs = (double)(e->clock.now_ns(e->clock.arg) - t0) / 1e9;
    const char *result = h->check->result;
    snprintf(h->check_model, sizeof h->check_model, "%s", v.name);
    h->check_version = v.version;
    h->ready = strcmp(result, "unhealthy") != 0;
    int n = snprintf(h->detail, sizeof h->detail, "%s@%lld: %s%s%s", v.name, (long long)v.version, result,
                     h->check->reason[0] ? ": " : "", h->check->reason);
    if (n >= (int)sizeof h->detail) memcpy(h->detail + sizeof h->detail - 4, "...", 4); /* long reason cut */
    export(e->health, &v, result, (double)e->clock.wall_ns(e->clock.arg) / 1e9, secs);
    return EK_OK;
}

ek_status ek_eng_h_health(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_health_args *h = &cmd->u.health;
    h->live = 1; /* liveness never depends on models */
    if (h->ref) return registry_check(e, h, cx);
    ek_model_identity id;
    memset(&id, 0, sizeof id);
    if (ek_eng_identify(e, cmd->model, &id)) {
        h->ready = 0;
        snprintf(h->detail, sizeof h->detail, "model %s is not loaded", cmd->model ? cmd->model : "(default)");
        return EK_OK;
    }
    ek_breaker_state bs = e->br ? ek_breaker_get_state(e->br, id.key) : EK_BREAKER_CLOSED;
    h->ready = bs != EK_BREAKER_OPEN;
    snprintf(h->detail, sizeof h->detail, "model %s loaded, breaker %s", id.key, ek_breaker_state_name(bs));
    return EK_OK;
}
