/* tests/test_config.c — configuration: defaults (resilience4j breaker
 * values among them), the YAML file with nested sections and per-key
 * provenance, errors naming the file line and key (unknown keys with a
 * suggestion, wrong types, out-of-range values, duplicates, syntax),
 * EK_* environment, flags, precedence defaults < file < env < flags,
 * reload refusing an invalid file, and the `ek config` CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "support.h"

static char *tmp;

static int setup(void **state) {
    (void)state;
    tmp = strdup(ts_mkdtemp());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ts_rm_rf(tmp);
    free(tmp);
    return 0;
}

static const char *write_tmp(const char *name, const char *text) {
    const char *p = ts_path(tmp, name);
    assert_int_equal(ts_write_file(p, text, strlen(text)), 0);
    return p;
}

static int key_index(const char *key) {
    for (int i = 0; i < ek_config_key_count(); i++)
        if (!strcmp(ek_config_key(i), key)) return i;
    fail_msg("no key %s", key);
    return -1;
}

static void test_defaults(void **state) {
    (void)state;
    ek_config c;
    ek_config_defaults(&c);
    assert_int_equal(c.threads, 0);
    assert_string_equal(c.dtype, "f32");
    assert_int_equal(c.batch_size, 32);
    assert_true(c.cache_max_bytes == 64 << 20);
    assert_true(c.breaker_failure_rate == 50 && c.breaker_slow_call_rate == 100);
    assert_true(c.breaker_wait_open_s == 60 && c.breaker_slow_call_s == 60);
    assert_int_equal(c.breaker_half_open_calls, 10);
    assert_int_equal(c.breaker_minimum_calls, 100);
    assert_int_equal(c.breaker_window_size, 100);
    assert_string_equal(c.log_level, "info");
    for (int i = 0; i < ek_config_key_count(); i++) {
        assert_int_equal(c.source[i], EK_SRC_DEFAULT);
        assert_non_null(ek_config_key_help(i));
        assert_int_equal(strncmp(ek_config_key_env(i), "EK_", 3), 0);
    }
    assert_string_equal(ek_config_key_env(key_index("breaker.wait_open_s")), "EK_BREAKER_WAIT_OPEN_S");
}

static void test_file_values_and_lines(void **state) {
    (void)state;
    const char *p = write_tmp("ok.yaml",
                              "# embedkit\n"
                              "threads: 2\n"
                              "dtype: bf16\n"
                              "breaker:\n"
                              "  wait_open_s: 30.5\n"
                              "  enabled: no\n"
                              "cache:\n"
                              "  max_bytes: 16MiB\n"
                              "model: \"models/mini\"\n");
    ek_config c;
    ek_config_defaults(&c);
    char errs[2048] = "";
    assert_int_equal(ek_config_load_file(&c, p, errs, sizeof errs), 0);
    assert_string_equal(errs, "");
    assert_int_equal(c.threads, 2);
    assert_string_equal(c.dtype, "bf16");
    assert_true(c.breaker_wait_open_s == 30.5);
    assert_int_equal(c.breaker_enabled, 0);
    assert_true(c.cache_max_bytes == 16 << 20);
    assert_string_equal(c.model, "models/mini");
    int k = key_index("breaker.wait_open_s");
    assert_int_equal(c.source[k], EK_SRC_FILE);
    char want[1200];
    snprintf(want, sizeof want, "%s:5", p);
    assert_string_equal(c.origin[k], want);
    char v[64];
    ek_config_value_text(&c, key_index("cache.max_bytes"), v, sizeof v);
    assert_string_equal(v, "16777216");
}

static void test_file_errors(void **state) {
    (void)state;
    const char *p = write_tmp("bad.yaml",
                              "threads: many\n"                  /* 1: wrong type */
                              "breaker:\n"
                              "  failur_rate_threshold: 40\n"    /* 3: misspelt */
                              "  half_open_calls: 0\n"           /* 4: out of range */
                              "retry: 3\n"                       /* 5: section as value */
                              "batch_size: [1, 2]\n"             /* 6: list */
                              "log:\n"
                              "  level: loud\n"                  /* 8: enum */
                              "threds: 4\n"                      /* 9: misspelt top level */
                              "threads: 3\n"                     /* 10: duplicate (after bad 1) */
                              "completely_unknown: 1\n");        /* 11: no suggestion */
    ek_config c;
    ek_config_defaults(&c);
    char errs[4096] = "";
    int n = ek_config_load_file(&c, p, errs, sizeof errs);
    char line[1200];
#define HAS(fmt, ...)                                         \
    do {                                                      \
        snprintf(line, sizeof line, fmt, __VA_ARGS__);        \
        if (!strstr(errs, line)) fail_msg("missing \"%s\" in:\n%s", line, errs); \
    } while (0)
    HAS("%s:1: threads: \"many\" is not an integer", p);
    HAS("%s:3: unknown key \"breaker.failur_rate_threshold\" (did you mean \"breaker.failure_rate_threshold\"?)", p);
    HAS("%s:4: breaker.half_open_calls: 0 is out of range 1..10000", p);
    HAS("%s:5: retry: is a section, expected a mapping of its keys", p);
    HAS("%s:6: batch_size: expected a value, found a list", p);
    HAS("%s:8: log.level: \"loud\" is not one of debug|info|warn|error", p);
    HAS("%s:9: unknown key \"threds\" (did you mean \"threads\"?)", p);
    HAS("%s:10: threads: duplicate key", p);
    HAS("%s:11: unknown key \"completely_unknown\"", p);
    assert_string_equal(errs + strlen(errs) - strlen(line), line); /* no suggestion */
    assert_int_equal(n, 9);
    /* syntax error and missing file */
    p = write_tmp("syntax.yaml", "threads: 2\n  bad: [\n");
    errs[0] = '\0';
    assert_int_equal(ek_config_load_file(&c, p, errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "YAML syntax error"));
    errs[0] = '\0';
    assert_int_equal(ek_config_load_file(&c, ts_path(tmp, "absent.yaml"), errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "cannot open"));
}

static void test_precedence_env_flags(void **state) {
    (void)state;
    const char *p = write_tmp("prec.yaml", "threads: 2\nbatch_size: 8\nlog:\n  level: warn\n");
    ek_config_store *s = NULL;
    assert_int_equal(ek_config_store_new(&s), EK_OK);
    assert_int_equal(ek_config_store_flag(s, "threads", "4", "--threads"), EK_OK);
    char *env[] = {"EK_THREADS=3", "EK_BATCH_SIZE=16", "EK_MODELS=/ignored", "PATH=/bin", NULL};
    char errs[2048];
    assert_int_equal(ek_config_store_load(s, p, env, errs, sizeof errs), EK_OK);
    ek_config c;
    assert_int_equal(ek_config_store_get(s, &c), 1);
    assert_int_equal(c.threads, 4);       /* flag beats env beats file */
    assert_int_equal(c.batch_size, 16);   /* env beats file */
    assert_string_equal(c.log_level, "warn"); /* file beats default */
    assert_int_equal(c.source[key_index("threads")], EK_SRC_FLAG);
    assert_string_equal(c.origin[key_index("threads")], "--threads");
    assert_int_equal(c.source[key_index("batch_size")], EK_SRC_ENV);
    assert_string_equal(c.origin[key_index("batch_size")], "EK_BATCH_SIZE");
    assert_int_equal(c.source[key_index("dtype")], EK_SRC_DEFAULT);

    /* Reload with an invalid file: refused, the old configuration stays. */
    const char *bad = write_tmp("prec_bad.yaml", "threads: 2\nbatch_size: 0\n");
    assert_int_equal(ek_config_store_load(s, bad, env, errs, sizeof errs), EK_ERR_FORMAT);
    assert_non_null(strstr(errs, ":2: batch_size: 0 is out of range 1..4096"));
    assert_int_equal(ek_config_store_get(s, &c), 1);
    assert_int_equal(c.batch_size, 16);
    /* A bad env value is refused too, naming the variable. */
    char *bad_env[] = {"EK_RETRY_JITTER=2", NULL};
    assert_int_equal(ek_config_store_load(s, p, bad_env, errs, sizeof errs), EK_ERR_FORMAT);
    assert_non_null(strstr(errs, "EK_RETRY_JITTER: retry.jitter: 2 is out of range 0..1"));
    /* A valid reload takes effect. */
    const char *good = write_tmp("prec_good.yaml", "batch_size: 64\n");
    assert_int_equal(ek_config_store_load(s, good, NULL, errs, sizeof errs), EK_OK);
    assert_int_equal(ek_config_store_get(s, &c), 2);
    assert_int_equal(c.batch_size, 64);
    assert_int_equal(c.threads, 4);
    ek_config_store_free(s);

    /* Flags: unknown keys suggested; cross-key check. */
    ek_config_defaults(&c);
    errs[0] = '\0';
    assert_int_equal(ek_config_set(&c, "cache.max_byte", "1", EK_SRC_FLAG, "--set", errs, sizeof errs), 1);
    assert_string_equal(errs, "--set: unknown key \"cache.max_byte\" (did you mean \"cache.max_bytes\"?)");
    assert_int_equal(ek_config_set(&c, "retry.max_backoff_s", "0.01", EK_SRC_FLAG, "--set", errs, sizeof errs), 0);
    errs[0] = '\0';
    assert_int_equal(ek_config_check(&c, "flags", errs, sizeof errs), 1);
    assert_non_null(strstr(errs, "retry.max_backoff_s"));
}

static void test_cli(void **state) {
    (void)state;
    const char *good = write_tmp("cli.yaml", "threads: 2\nbreaker:\n  wait_open_s: 5\n");
    const char *bad = write_tmp("cli_bad.yaml", "threads: 2\nbreaker:\n  wait_opn_s: 5\n");
    char cmd[4096];
    char *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' config validate '%s'", ts_ek_bin(), good);
    assert_int_equal(ts_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "ok (2 keys set)"));
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' config validate '%s'", ts_ek_bin(), bad);
    assert_int_equal(ts_run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, ":3: unknown key \"breaker.wait_opn_s\" (did you mean \"breaker.wait_open_s\"?)"));
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "EK_BATCH_SIZE=7 '%s' config show --json --config '%s' --log-level debug --set retry.jitter=0.25",
             ts_ek_bin(), good);
    assert_int_equal(ts_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "\"threads\":{\"value\":2,\"source\":\"file\""));
    assert_non_null(strstr(out, "\"batch_size\":{\"value\":7,\"source\":\"env\",\"origin\":\"EK_BATCH_SIZE\""));
    assert_non_null(strstr(out, "\"log.level\":{\"value\":\"debug\",\"source\":\"flag\",\"origin\":\"--log-level\""));
    assert_non_null(strstr(out, "\"retry.jitter\":{\"value\":0.25,\"source\":\"flag\""));
    assert_non_null(strstr(out, "\"dtype\":{\"value\":\"f32\",\"source\":\"default\""));
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "EK_CONFIG='%s' '%s' config show", good, ts_ek_bin());
    assert_int_equal(ts_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "breaker.wait_open_s"));
    assert_non_null(strstr(out, "cli.yaml:3"));
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' config show --config '%s'", ts_ek_bin(), bad);
    assert_int_equal(ts_run(cmd, &out, &err), 1);
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_values_and_lines),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_precedence_env_flags),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
