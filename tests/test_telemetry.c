/* tests/test_telemetry.c — the metrics registry and its Prometheus text
 * rendering: naming rules, bounded label cardinality, cumulative histogram
 * buckets, escaping; the rendering passes `promtool check metrics` (Debian
 * package prometheus; skipped with a message when promtool is missing) and
 * the checks promtool does not make: unique series, +Inf bucket == _count,
 * HELP and TYPE before samples, one group per metric.  The same checks on a
 * real engine's metrics after embedding, searching and a registry health
 * check (stage histograms, model-health gauges). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "embedkit_registry.h"
#include "embedkit_search.h"
#include "support.h"

static void test_naming_rules(void **state) {
    (void)state;
    ek_metrics *m = NULL;
    assert_int_equal(ek_metrics_new(&m), EK_OK);
    const char *lbl[] = {"model"};
    const char *le[] = {"le"};
    const double b[] = {1, 2};
    const double bad_b[] = {2, 1};
    assert_int_equal(ek_metrics_add(m, EK_COUNTER, "other_total", "", 0, NULL, 1, NULL, 0, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_metrics_add(m, EK_COUNTER, "embedkit_requests", "", 0, NULL, 1, NULL, 0, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_metrics_add(m, EK_GAUGE, "embedkit_x_total", "", 0, NULL, 1, NULL, 0, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_metrics_add(m, EK_GAUGE, "embedkit_bad-name", "", 0, NULL, 1, NULL, 0, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_metrics_add(m, EK_HISTOGRAM, "embedkit_h_seconds", "", 1, le, 4, b, 2, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_metrics_add(m, EK_HISTOGRAM, "embedkit_h_seconds", "", 0, NULL, 1, bad_b, 2, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_metrics_add(m, EK_COUNTER, "embedkit_ok_total", "", 1, lbl, 4, NULL, 0, NULL), EK_OK);
    /* duplicate name */
    assert_int_equal(ek_metrics_add(m, EK_COUNTER, "embedkit_ok_total", "", 1, lbl, 4, NULL, 0, NULL), EK_ERR_INVALID_ARG);
    ek_metrics_free(m);
}

static void test_bounded_cardinality(void **state) {
    (void)state;
    ek_metrics *m = NULL;
    ek_metric_family *c = NULL;
    assert_int_equal(ek_metrics_new(&m), EK_OK);
    const char *lbl[] = {"caller"};
    assert_int_equal(ek_metrics_add(m, EK_COUNTER, "embedkit_calls_total", "Calls.", 1, lbl, 3, NULL, 0, &c), EK_OK);
    for (int i = 0; i < 100; i++) {
        char who[16];
        snprintf(who, sizeof who, "u%d", i);
        const char *v[] = {who};
        ek_series_add(ek_metric_series(c, v), 1);
    }
    char *text = NULL;
    assert_int_equal(ek_metrics_render(m, &text, NULL), EK_OK);
    assert_non_null(strstr(text, "embedkit_calls_total{caller=\"u0\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_calls_total{caller=\"u2\"} 1\n"));
    assert_null(strstr(text, "u3\""));
    assert_non_null(strstr(text, "embedkit_calls_total{caller=\"other\"} 97\n"));
    free(text);
    ek_metrics_free(m);
}

static ek_metric_family *hist;
static void *observe_many(void *arg) {
    (void)arg;
    const char *v[] = {"embed_batch"};
    ek_series *s = ek_metric_series(hist, v);
    for (int i = 0; i < 50000; i++) ek_series_observe(s, (i % 7) * 0.01);
    return NULL;
}

/* A registry with every kind, awkward label values and concurrent updates. */
static ek_metrics *sample_registry(void) {
    ek_metrics *m = NULL;
    assert_int_equal(ek_metrics_new(&m), EK_OK);
    ek_metric_family *c = NULL, *g = NULL;
    const char *two[] = {"command", "outcome"};
    const char *one[] = {"command"};
    const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1};
    assert_int_equal(ek_metrics_add(m, EK_COUNTER, "embedkit_commands_total",
                                    "Commands by type and outcome.\nSecond line \\ backslash.", 2, two, 16,
                                    NULL, 0, &c), EK_OK);
    assert_int_equal(ek_metrics_add(m, EK_HISTOGRAM, "embedkit_command_duration_seconds",
                                    "Latency.", 1, one, 4, buckets, 5, &hist), EK_OK);
    assert_int_equal(ek_metrics_add(m, EK_GAUGE, "embedkit_cache_bytes", "Bytes.", 0, NULL, 1, NULL, 0, &g), EK_OK);
    ek_series_add(ek_metric_series(c, (const char *const[]){"embed_text", "ok"}), 3);
    ek_series_add(ek_metric_series(c, (const char *const[]){"embed \"quoted\"\n\\", "io"}), 1);
    ek_series_set(ek_metric_series(g, NULL), 1.5e9);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, observe_many, NULL);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    ek_series_observe(ek_metric_series(hist, (const char *const[]){"tokenize"}), 99);
    return m;
}

static void test_render_shape(void **state) {
    (void)state;
    ek_metrics *m = sample_registry();
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ek_metrics_render(m, &text, &len), EK_OK);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "# HELP embedkit_commands_total Commands by type and outcome.\\nSecond line \\\\ backslash.\n"
                                 "# TYPE embedkit_commands_total counter\n"));
    assert_non_null(strstr(text, "embedkit_commands_total{command=\"embed \\\"quoted\\\"\\n\\\\\",outcome=\"io\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_cache_bytes 1500000000\n"));
    assert_non_null(strstr(text, "embedkit_command_duration_seconds_bucket{command=\"embed_batch\",le=\"+Inf\"} 100000\n"));
    assert_non_null(strstr(text, "embedkit_command_duration_seconds_count{command=\"embed_batch\"} 100000\n"));
    assert_non_null(strstr(text, "embedkit_command_duration_seconds_bucket{command=\"tokenize\",le=\"0.1\"} 0\n"));
    assert_non_null(strstr(text, "embedkit_command_duration_seconds_sum{command=\"tokenize\"} 99\n"));
    /* i % 7 * 0.01 <= 0.005: only the zeros (1 in 7). */
    char want[128];
    snprintf(want, sizeof want, "embedkit_command_duration_seconds_bucket{command=\"embed_batch\",le=\"0.005\"} %d\n",
             2 * ((50000 + 6) / 7));
    assert_non_null(strstr(text, want));
    free(text);
    ek_metrics_free(m);
}

/* The checks promtool does not make, on any rendering. */
static void check_exposition(const char *text) {
    char *copy = strdup(text);
    char *series[512];
    int n_series = 0;
    char families[64][128];
    int n_fam = 0;
    char current[128] = "";
    int help_seen = 0, type_seen = 0;
    double inf_value = -1;
    char inf_key[512] = "";
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "# HELP ", 7)) {
            char name[128];
            sscanf(line + 7, "%127s", name);
            for (int i = 0; i < n_fam; i++) assert_string_not_equal(families[i], name); /* one group */
            snprintf(families[n_fam++], sizeof families[0], "%s", name);
            snprintf(current, sizeof current, "%s", name);
            help_seen = 1;
            type_seen = 0;
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            assert_true(help_seen);
            type_seen = 1;
            continue;
        }
        assert_true(help_seen && type_seen);          /* HELP and TYPE come first */
        assert_int_equal(strncmp(line, current, strlen(current)), 0); /* in its group */
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        for (int i = 0; i < n_series; i++) assert_string_not_equal(series[i], line); /* unique */
        series[n_series++] = line;
        double v = strtod(sp + 1, NULL);
        char *le = strstr(line, "le=\"+Inf\"");
        if (le) {
            inf_value = v;
            /* The _count series of the same label set, without le. */
            snprintf(inf_key, sizeof inf_key, "%.*s", (int)(le - line), line);
            char *b = strstr(inf_key, "_bucket");
            memmove(b, b + 7, strlen(b + 7) + 1);
            size_t k = strlen(inf_key);
            if (inf_key[k - 1] == ',') inf_key[k - 1] = '\0';
            else if (inf_key[k - 1] == '{') inf_key[k - 1] = '\0';
        }
        if (strstr(line, "_count") && inf_value >= 0) {
            /* name_count{labels} vs name{labels} from the +Inf line */
            char base[512];
            snprintf(base, sizeof base, "%s", line);
            char *cnt = strstr(base, "_count");
            memmove(cnt, cnt + 6, strlen(cnt + 6) + 1);
            size_t k = strlen(base);
            if (base[k - 1] == '}') {
                char *brace = strchr(base, '{');
                if (strlen(brace) > 1) base[k - 1] = '\0';
            }
            assert_string_equal(base, inf_key);
            assert_true(v == inf_value);
            inf_value = -1;
        }
    }
    assert_true(inf_value < 0); /* every +Inf line was followed by its _count */
    free(copy);
}

static void test_exposition_invariants(void **state) {
    (void)state;
    ek_metrics *m = sample_registry();
    char *text = NULL;
    assert_int_equal(ek_metrics_render(m, &text, NULL), EK_OK);
    check_exposition(text);
    free(text);
    ek_metrics_free(m);
}

static int have_promtool(void) {
    if (ts_run("command -v promtool", NULL, NULL) == 0) return 1;
    fprintf(stderr, "SKIP promtool check: promtool not found (apt-get install -y prometheus)\n");
    return 0;
}

/* `promtool check metrics` accepts the rendering. */
static void promtool_ok(const char *text, size_t len) {
    char *dir = ts_mkdtemp();
    const char *path = ts_path(dir, "metrics.txt");
    assert_int_equal(ts_write_file(path, text, len), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    char *out = NULL, *err = NULL;
    int rc = ts_run(cmd, &out, &err);
    if (rc != 0) fprintf(stderr, "promtool: %s%s\n", out ? out : "", err ? err : "");
    assert_int_equal(rc, 0);
    free(out);
    free(err);
    ts_rm_rf(dir);
}

static void test_promtool(void **state) {
    (void)state;
    if (!have_promtool()) skip();
    ek_metrics *m = sample_registry();
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ek_metrics_render(m, &text, &len), EK_OK);
    promtool_ok(text, len);
    free(text);
    ek_metrics_free(m);
}

/* A real engine's metrics: commands of several types, the stage histogram
 * and the model-health gauges of two versions. */
static void test_engine_metrics(void **state) {
    (void)state;
    char model[512], home[512];
    snprintf(model, sizeof model, "%s", ts_path(ts_models_dir(), "tiny-mean"));
    snprintf(home, sizeof home, "%s", ts_mkdtemp());
    ek_ctx *ctx;
    ek_registry *reg;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_registry_open(ctx, home, NULL, &reg), EK_OK);
    assert_int_equal(ek_registry_import(ctx, reg, model, "tm", NULL, NULL), EK_OK);
    assert_int_equal(ek_registry_import(ctx, reg, model, "tm", NULL, NULL), EK_OK);
    ek_registry_close(reg);

    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.threads = 1;
    ek_engine_options o = {&cfg, NULL, NULL, NULL, NULL};
    ek_engine *e;
    assert_int_equal(ek_engine_new(ctx, &o, &e), EK_OK);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "m");
    cmd.u.load.ref = model;
    ek_cmd_ctx_init(&cx, ctx);
    assert_int_equal(ek_engine_execute(e, &cmd, &cx), EK_OK);
    const char *texts[] = {"one text", "another text", "a third"};
    float v[3 * 32];
    int dim = 0;
    assert_int_equal(ek_embed_texts(e, ctx, "m", texts, NULL, 3, v, 3 * 32, &dim), EK_OK);
    assert_int_equal(dim, 32);
    assert_int_equal(ek_embed_text(e, ctx, "m", "", 0, v, 32, NULL), EK_OK); /* allowed by default */
    ek_matrix mx = {EK_VEC_F32, v, 3, 32, 32};
    ek_index *idx;
    ek_hit hits[2];
    assert_int_equal(ek_index_new(ctx, &mx, NULL, &idx), EK_OK);
    ek_cmd_search_texts(&cmd, "m", idx, texts, NULL, 1, 2, hits, 2);
    ek_cmd_ctx_init(&cx, ctx);
    assert_int_equal(ek_engine_execute(e, &cmd, &cx), EK_OK);
    for (int ver = 1; ver <= 2; ver++) {
        ek_health h;
        char ref[16];
        snprintf(ref, sizeof ref, "tm@%d", ver);
        ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
        cmd.u.health.ref = ref;
        cmd.u.health.home = home;
        cmd.u.health.check = &h;
        ek_cmd_ctx_init(&cx, ctx);
        assert_int_equal(ek_engine_execute(e, &cmd, &cx), EK_OK);
        assert_string_equal(h.result, "healthy");
    }
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ek_metrics_render(ek_engine_metrics(e), &text, &len), EK_OK);
    assert_non_null(strstr(text, "\n# TYPE embedkit_stage_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "\nembedkit_stage_duration_seconds_count{stage=\"forward\"} 3\n"));
    assert_non_null(strstr(text, "\n# TYPE embedkit_model_health gauge\n"));
    assert_non_null(strstr(text, "\nembedkit_model_health{model=\"tm\",version=\"2\",state=\"healthy\"} 1\n"));
    assert_non_null(strstr(text, "\nembedkit_model_health{model=\"tm\",version=\"2\",state=\"unhealthy\"} 0\n"));
    check_exposition(text);
    if (have_promtool()) promtool_ok(text, len);
    free(text);
    ek_index_free(idx);
    ek_engine_free(e);
    ek_ctx_free(ctx);
    ts_rm_rf(home);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naming_rules),
        cmocka_unit_test(test_bounded_cardinality),
        cmocka_unit_test(test_render_shape),
        cmocka_unit_test(test_exposition_invariants),
        cmocka_unit_test(test_promtool),
        cmocka_unit_test(test_engine_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
