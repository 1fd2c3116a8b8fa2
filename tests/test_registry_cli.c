/* tests/test_registry_cli.c — `ek models` and `ek bench versions` from the
 * command line: the subcommands, --json output, exit statuses, and errors
 * that name what was wrong; `models check --metrics` (a pipeline command)
 * writes the model-health metrics, accepted by promtool. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static char g_home[256];

static int ek(const char *args, char **out, char **err) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s --home '%s' < /dev/null", ts_ek_bin(), args, g_home);
    return ts_run(cmd, out, err);
}

static void ok(const char *args, char **out) {
    char *err = NULL;
    int rc = ek(args, out, &err);
    if (rc) fail_msg("ek %s: rc %d: %s", args, rc, err ? err : "");
    free(err);
}

static void test_models_cli(void **state) {
    (void)state;
    snprintf(g_home, sizeof g_home, "%s", ts_mkdtemp());
    char args[4096], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "models add '%s' --name cli", ts_path(ts_models_dir(), "tiny-mean"));
    ok(args, &out);
    assert_non_null(strstr(out, "cli@1 READY"));
    free(out);
    snprintf(args, sizeof args, "models add '%s' --name cli --version 4", ts_path(ts_models_dir(), "tiny-cls"));
    ok(args, NULL);
    ok("models alias cli production 1", NULL);

    ok("models list --json", &out);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON *v1 = cJSON_GetArrayItem(j, 0), *v4 = cJSON_GetArrayItem(j, 1);
    assert_string_equal(cJSON_GetObjectItem(v1, "status")->valuestring, "READY");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(v1, "aliases"), 0)->valuestring, "production");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(v4, "latest")));
    cJSON_Delete(j);
    free(out);

    ok("models show cli@production --json", &out);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "version")->valueint, 1);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "file_list")) >= 5);
    cJSON_Delete(j);
    free(out);

    ok("models check cli --json", &out);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "result")->valuestring, "healthy");
    cJSON_Delete(j);
    free(out);

    /* check through the pipeline, its metrics in a file (textfile collector) */
    char mfile[512];
    snprintf(mfile, sizeof mfile, "%s/ek.prom", g_home);
    snprintf(args, sizeof args, "models check cli@1 --count 2 --every 1 --metrics '%s'", mfile);
    ok(args, &out);
    assert_non_null(strstr(out, "cli@1: healthy (load "));
    free(out);
    char *prom = ts_read_file(mfile, NULL);
    assert_non_null(prom);
    assert_non_null(strstr(prom, "\nembedkit_model_health{model=\"cli\",version=\"1\",state=\"healthy\"} 1\n"));
    assert_non_null(strstr(prom, "\nembedkit_model_health{model=\"cli\",version=\"1\",state=\"degraded\"} 0\n"));
    assert_non_null(strstr(prom, "embedkit_model_health_check_timestamp_seconds{model=\"cli\",version=\"1\"} "));
    assert_non_null(strstr(prom, "\nembedkit_commands_total{command=\"health\",outcome=\"ok\"} 2\n"));
    free(prom);
    if (ts_run("command -v promtool", NULL, NULL) == 0) {
        char pcmd[1024];
        snprintf(pcmd, sizeof pcmd, "promtool check metrics < '%s'", mfile);
        if (ts_run(pcmd, &out, &err)) fail_msg("promtool: %s%s", out ? out : "", err ? err : "");
        free(out);
        free(err);
    }
    assert_int_equal(ek("models check nosuch", NULL, &err), 1);
    assert_non_null(strstr(err, "ek models: error: check: no model \"nosuch\""));
    free(err);

    ok("models verify cli@1", NULL);
    /* Bad names: usage-level errors naming the problem, nothing imported. */
    snprintf(args, sizeof args, "models add '%s' --name ../evil", ts_path(ts_models_dir(), "tiny-mean"));
    assert_int_equal(ek(args, NULL, &err), 1);
    assert_non_null(strstr(err, "ek models: error: add: model name"));
    free(err);
    assert_int_equal(ek("models show nosuch", NULL, &err), 1);
    assert_non_null(strstr(err, "no model \"nosuch\""));
    free(err);
    assert_int_equal(ek("models frobnicate", NULL, &err), 2);
    free(err);

    assert_int_equal(ek("models rm cli@1", NULL, &err), 1);
    assert_non_null(strstr(err, "production"));
    free(err);
    ok("models rm cli@1 --force", NULL);
    ok("models gc", &out);
    assert_non_null(strstr(out, "removed "));
    free(out);
    ok("models log cli --json", &out);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    assert_true(lines >= 6);
    assert_non_null(strstr(out, "\"action\":\"rm\""));
    free(out);

    /* The bench, small. */
    snprintf(args, sizeof args, "bench versions --model cli --versions 3 --threads 2 --requests 30 --rounds 1 "
                                "--from '%s' --json", ts_path(ts_models_dir(), "tiny-mean"));
    ok(args, &out);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_true(cJSON_GetObjectItem(j, "relative_throughput")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(j, "load_ms_per_version")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(j, "rss_bytes")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(j, "sum_model_bytes")->valuedouble > 3e6);
    /* Every version's packed weights come from HOME/packed. */
    assert_int_equal(cJSON_GetObjectItem(j, "packed_mapped_versions")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(j, "private_packed_bytes")->valuedouble, 0);
    cJSON_Delete(j);
    free(out);
    ts_rm_rf(g_home);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
