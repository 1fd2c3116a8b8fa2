/* tests/test_cli.c — the `ek` command-line contract other tools rely on:
 * output formats, stdin streaming (text, JSONL, CRLF), --output npy, error
 * messages naming the input, bad input (empty, NUL, invalid UTF-8, 1 MB line,
 * 100k inputs in flat memory), exit statuses; `ek search` runs through the
 * pipeline (the configuration's limits apply to its queries). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "support.h"

#define TINY "tiny-mean"

static char cmdbuf[16384];

static const char *model(void) { return ts_path(ts_models_dir(), TINY); }

/* Runs `ek ARGS` with stdin from the file (or /dev/null). */
static int ek(const char *args, const char *stdin_file, char **out, char **err) {
    const char *in = stdin_file ? stdin_file : "/dev/null";
    size_t n = strlen(ts_ek_bin()) + strlen(args) + strlen(in) + 16;
    char *full = malloc(n);
    assert_non_null(full);
    snprintf(full, n, "'%s' %s < '%s'", ts_ek_bin(), args, in);
    int rc = ts_run(full, out, err);
    free(full);
    return rc;
}

static const char *tmpfile_with(const char *data, size_t len) {
    char *dir = ts_mkdtemp();
    assert_non_null(dir);
    static char path[8][512];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 512, "%s/in", dir);
    assert_int_equal(ts_write_file(p, data, len), 0);
    return p;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

static void test_embed_args_jsonl(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' 'first text' '' 'third, longer text here'", model());
    int rc = ek(cmdbuf, NULL, &out, &err);
    if (rc) fail_msg("rc %d: %s", rc, err);
    assert_int_equal(count_lines(out), 3);
    char *line = out;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        assert_int_equal(cJSON_GetObjectItem(j, "index")->valueint, i);
        cJSON *emb = cJSON_GetObjectItem(j, "embedding");
        assert_int_equal(cJSON_GetArraySize(emb), 32);
        int tokens = cJSON_GetObjectItem(j, "tokens")->valueint;
        if (i == 1) assert_int_equal(tokens, 2); /* empty string: [CLS] [SEP] */
        else assert_true(tokens > 2);
        cJSON_Delete(j);
        line = nl + 1;
    }
    free(out);
    free(err);
}

static void test_stdin_text_crlf_and_jsonl_agree(void **state) {
    (void)state;
    const char *lf = "alpha beta\nGamma, delta!\n\nÜber café\n";
    const char *crlf = "alpha beta\r\nGamma, delta!\r\n\r\nÜber café\r\n";
    const char *jl = "{\"text\": \"alpha beta\"}\n{\"text\": \"Gamma, delta!\"}\n{\"text\": \"\"}\n"
                     "{\"text\": \"\\u00dcber caf\\u00e9\"}\n";
    char *o1, *o2, *o3, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s'", model());
    assert_int_equal(ek(cmdbuf, tmpfile_with(lf, strlen(lf)), &o1, &err), 0);
    free(err);
    assert_int_equal(ek(cmdbuf, tmpfile_with(crlf, strlen(crlf)), &o2, &err), 0);
    free(err);
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' --input jsonl", model());
    assert_int_equal(ek(cmdbuf, tmpfile_with(jl, strlen(jl)), &o3, &err), 0);
    free(err);
    assert_int_equal(count_lines(o1), 4);
    assert_string_equal(o1, o2);
    assert_string_equal(o1, o3);
    free(o1);
    free(o2);
    free(o3);
}

static void test_jsonl_errors_name_the_line(void **state) {
    (void)state;
    const char *jl = "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n";
    char *out, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' --input jsonl", model());
    int rc = ek(cmdbuf, tmpfile_with(jl, strlen(jl)), &out, &err);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(count_lines(err), 1);
    free(out);
    free(err);
    const char *bad = "{\"text\": \"ok\"}\nnot json\n";
    rc = ek(cmdbuf, tmpfile_with(bad, strlen(bad)), &out, &err);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "line 2"));
    free(out);
    free(err);
}

static void test_output_npy_matches_jsonl(void **state) {
    (void)state;
    const char *in = "one\ntwo words\nthree words here\n";
    char *js, *npy, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s'", model());
    assert_int_equal(ek(cmdbuf, tmpfile_with(in, strlen(in)), &js, &err), 0);
    free(err);
    char *dir = ts_mkdtemp();
    char npath[512];
    snprintf(npath, sizeof npath, "%s/e.npy", dir);
    snprintf(cmdbuf, sizeof cmdbuf, "( '%s' embed --model '%s' --output npy < '%s' > '%s' )", ts_ek_bin(), model(),
             tmpfile_with(in, strlen(in)), npath);
    assert_int_equal(ts_run(cmdbuf, NULL, &err), 0);
    free(err);
    size_t len;
    npy = ts_read_file(npath, &len);
    assert_non_null(npy);
    assert_memory_equal(npy, "\x93NUMPY\x01\x00", 8);
    size_t hl = (unsigned char)npy[8] | (size_t)(unsigned char)npy[9] << 8;
    assert_int_equal((10 + hl) % 64, 0);
    assert_non_null(strstr(npy + 10, "'descr': '<f4'"));
    assert_non_null(strstr(npy + 10, "'shape': (3, 32)"));
    assert_int_equal(len, 10 + hl + 3 * 32 * 4);
    const float *v = (const float *)(npy + 10 + hl);
    char *line = js;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        cJSON *emb = cJSON_GetObjectItem(j, "embedding");
        for (int d = 0; d < 32; d++) {
            float want = (float)cJSON_GetArrayItem(emb, d)->valuedouble;
            float got;
            memcpy(&got, &v[i * 32 + d], 4);
            assert_float_equal(got, want, 1e-7);
        }
        cJSON_Delete(j);
        line = nl + 1;
    }
    free(js);
    free(npy);
    ts_rm_rf(dir);
}

static void test_truncate_none_names_index(void **state) {
    (void)state;
    char *out, *err;
    static char longtext[4000];
    for (size_t i = 0; i + 1 < sizeof longtext; i++) longtext[i] = "word "[i % 5];
    longtext[sizeof longtext - 1] = '\0';
    size_t l = strlen(longtext);
    char *in = malloc(l + 16);
    snprintf(in, l + 16, "short\n%s\n", longtext);
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' --truncate none", model());
    int rc = ek(cmdbuf, tmpfile_with(in, strlen(in)), &out, &err);
    assert_int_not_equal(rc, 0);
    if (!strstr(err, "input 1")) fail_msg("error does not name input 1: %s", err);
    free(out);
    free(err);
    /* Truncation (default right) embeds it at max_seq_length tokens. */
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s'", model());
    rc = ek(cmdbuf, tmpfile_with(in, strlen(in)), &out, &err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"tokens\":128}"));
    free(out);
    free(err);
    free(in);
}

static void test_bad_bytes(void **state) {
    (void)state;
    char *out, *err;
    /* Invalid UTF-8 in the second input, at byte 3 of the line. */
    const char bad[] = "fine\nabc\xff\xfe tail\n";
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s'", model());
    int rc = ek(cmdbuf, tmpfile_with(bad, sizeof bad - 1), &out, &err);
    assert_int_not_equal(rc, 0);
    /* Named by the pipeline's validation: input index and byte offset. */
    if (!strstr(err, "texts[1]") || !strstr(err, "byte offset 3")) fail_msg("unexpected error: %s", err);
    assert_int_equal(count_lines(err), 1);
    free(out);
    free(err);
    /* NUL bytes are characters (removed by the normalizer), not string ends. */
    const char nul[] = "a\0b c\n";
    rc = ek(cmdbuf, tmpfile_with(nul, sizeof nul - 1), &out, &err);
    if (rc) fail_msg("NUL input failed: %s", err);
    assert_int_equal(count_lines(out), 1);
    free(out);
    free(err);
    /* Whitespace only embeds like the empty string. */
    const char ws[] = " \t  \n\n";
    rc = ek(cmdbuf, tmpfile_with(ws, sizeof ws - 1), &out, &err);
    assert_int_equal(rc, 0);
    char *second = strchr(out, '\n') + 1;
    second[-1] = '\0';
    char *end = strchr(second, '\n');
    if (end) *end = '\0';
    assert_string_equal(strchr(out, '['), strchr(second, '['));
    free(out);
    free(err);
}

static void test_one_megabyte_line(void **state) {
    (void)state;
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = "lorem ipsum dolor sit amet, consectetur "[i % 40];
    big[n] = '\n';
    char *out, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s'", model());
    int rc = ek(cmdbuf, tmpfile_with(big, n + 1), &out, &err);
    if (rc) fail_msg("1 MB line failed: %s", err);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "\"tokens\":128}"));
    free(out);
    free(err);
    free(big);
}

static long child_maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_maxrss;
}

static void test_many_inputs_stream_in_flat_memory(void **state) {
    (void)state;
    char *dir = ts_mkdtemp();
    char small[512], large[512];
    snprintf(small, sizeof small, "%s/10k", dir);
    snprintf(large, sizeof large, "%s/100k", dir);
    snprintf(cmdbuf, sizeof cmdbuf,
             "seq 1 10000 | sed 's/$/ the quick brown fox/' > '%s' && "
             "seq 1 100000 | sed 's/$/ the quick brown fox/' > '%s'", small, large);
    assert_int_equal(ts_run(cmdbuf, NULL, NULL), 0);
    char *out, *err;
    /* ASan's quarantine would keep up to 256 MB of freed memory resident in
     * a sanitized build and hide what this test measures; it is harmless
     * for a normal build. */
    snprintf(cmdbuf, sizeof cmdbuf, "ASAN_OPTIONS=quarantine_size_mb=0:detect_leaks=0 '%s' embed --model '%s' < '%s' | wc -l",
             ts_ek_bin(), model(), small);
    assert_int_equal(ts_run(cmdbuf, &out, &err), 0);
    assert_int_equal(atoi(out), 10000);
    free(out);
    free(err);
    long rss_small = child_maxrss_kb();
    snprintf(cmdbuf, sizeof cmdbuf, "ASAN_OPTIONS=quarantine_size_mb=0:detect_leaks=0 '%s' embed --model '%s' < '%s' | wc -l",
             ts_ek_bin(), model(), large);
    int rc = ts_run(cmdbuf, &out, &err);
    if (rc || atoi(out) != 100000) fail_msg("100k inputs: rc %d, %s lines, stderr: %s", rc, out, err);
    long rss_large = child_maxrss_kb();
    /* Ten times the input must not need much more memory (streamed in chunks). */
    if (rss_large > rss_small + rss_small / 2 + 16384)
        fail_msg("max RSS grew from %ld kB (10k inputs) to %ld kB (100k inputs)", rss_small, rss_large);
    free(out);
    free(err);
    ts_rm_rf(dir);
}

static void test_tokenize_output(void **state) {
    (void)state;
    char *out, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "tokenize --model '%s' 'Hello, world!'", model());
    int rc = ek(cmdbuf, NULL, &out, &err);
    if (rc) fail_msg("%s", err);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    cJSON *ids = cJSON_GetObjectItem(j, "ids"), *toks = cJSON_GetObjectItem(j, "tokens"),
          *offs = cJSON_GetObjectItem(j, "offsets");
    int n = cJSON_GetArraySize(ids);
    assert_true(n >= 5);
    assert_int_equal(cJSON_GetArraySize(toks), n);
    assert_int_equal(cJSON_GetArraySize(offs), n);
    assert_string_equal(cJSON_GetArrayItem(toks, 0)->valuestring, "[CLS]");
    assert_string_equal(cJSON_GetArrayItem(toks, n - 1)->valuestring, "[SEP]");
    assert_string_equal(cJSON_GetArrayItem(toks, 1)->valuestring, "hello");
    cJSON *o1 = cJSON_GetArrayItem(offs, 1);
    assert_int_equal(cJSON_GetArrayItem(o1, 0)->valueint, 0);
    assert_int_equal(cJSON_GetArrayItem(o1, 1)->valueint, 5);
    cJSON_Delete(j);
    free(out);
    free(err);
}

static void test_info_and_usage_errors(void **state) {
    (void)state;
    char *out, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "info --json --model '%s'", model());
    assert_int_equal(ek(cmdbuf, NULL, &out, &err), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "hidden_size")->valueint, 32);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "random_weights")));
    cJSON_Delete(j);
    free(out);
    free(err);
    snprintf(cmdbuf, sizeof cmdbuf, "info --model '%s'", model());
    assert_int_equal(ek(cmdbuf, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "RANDOM weights"));
    free(out);
    free(err);

    static const char *bad[] = {"embed 'x'", "embed --model /nonexistent 'x'", "embed --model . --pooling nope x",
                                "embed --model . --truncate sideways x", "frobnicate"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ek(bad[i], NULL, &out, &err);
        assert_int_not_equal(rc, 0);
        assert_true(count_lines(err) >= 1);
        assert_non_null(strstr(err, "error"));
        free(out);
        free(err);
    }
}

static void test_similarity(void **state) {
    (void)state;
    char *out, *err;
    snprintf(cmdbuf, sizeof cmdbuf, "similarity --json --model '%s' 'a cat' 'a cat' 'stock markets fell'", model());
    assert_int_equal(ek(cmdbuf, NULL, &out, &err), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    double s01 = cJSON_GetArrayItem(cJSON_GetArrayItem(j, 0), 1)->valuedouble;
    double s00 = cJSON_GetArrayItem(cJSON_GetArrayItem(j, 0), 0)->valuedouble;
    double s02 = cJSON_GetArrayItem(cJSON_GetArrayItem(j, 0), 2)->valuedouble;
    assert_true(fabs(s00 - 1) < 1e-5 && fabs(s01 - 1) < 1e-5);
    assert_true(s02 < 1 - 1e-5);
    cJSON_Delete(j);
    free(out);
    free(err);
}

/* `ek search` is a pipeline command: validation and rate limits from the
 * environment apply to its query texts / vectors; results are unchanged. */
static void test_search_through_pipeline(void **state) {
    (void)state;
    char *dir = ts_mkdtemp();
    char npy[512], *out = NULL, *err = NULL;
    snprintf(npy, sizeof npy, "%s/corpus.npy", dir);
    snprintf(cmdbuf, sizeof cmdbuf, "'%s' embed --model '%s' --output npy 'hello world' 'a cat' 'stock markets' > '%s'",
             ts_ek_bin(), model(), npy);
    if (ts_run(cmdbuf, NULL, &err)) fail_msg("embed: %s", err);
    free(err);
    snprintf(cmdbuf, sizeof cmdbuf, "'%s' search --index '%s' --model '%s' -k 2 'a cat' < /dev/null", ts_ek_bin(), npy,
             model());
    assert_int_equal(ts_run(cmdbuf, &out, &err), 0);
    assert_non_null(strstr(out, "query 0: a cat\n    1.          1 "));
    free(out);
    free(err);
    snprintf(cmdbuf, sizeof cmdbuf,
             "EK_VALIDATION_MAX_TEXT_BYTES=5 '%s' search --index '%s' --model '%s' 'a cat' 'hello world' < /dev/null",
             ts_ek_bin(), npy, model());
    assert_int_equal(ts_run(cmdbuf, &out, &err), 1);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "ek search: error: validation: query[1]: 11 bytes exceed the limit of 5"));
    free(out);
    free(err);
    /* three query vectors cost three tokens: more than a burst of 2 */
    snprintf(cmdbuf, sizeof cmdbuf,
             "EK_RATE_LIMIT_RATE=1 EK_RATE_LIMIT_BURST=2 '%s' search --index '%s' --query-npy '%s' < /dev/null",
             ts_ek_bin(), npy, npy);
    assert_int_equal(ts_run(cmdbuf, &out, &err), 1);
    assert_non_null(strstr(err, "ek search: error: ratelimit: command costs 3 tokens"));
    free(out);
    free(err);
    ts_rm_rf(dir);
}

/* `ek embed --device`: checked as a configuration value, applied to the
 * engine's commands (a device that does not exist fails naming it). */
static void test_embed_device_flag(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' --device tpu 'x'", model());
    assert_int_equal(ek(cmdbuf, NULL, &out, &err), 1);
    assert_non_null(strstr(err, "ek embed: error: configuration: --device: device: \"tpu\" is not cpu, gpu, auto"));
    free(out);
    free(err);
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' --device opencl:97:0 'x'", model());
    assert_int_equal(ek(cmdbuf, NULL, &out, &err), 1);
    assert_non_null(strstr(err, "opencl:97:0"));
    free(out);
    free(err);
    char *want = NULL;
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' 'x'", model());
    assert_int_equal(ek(cmdbuf, NULL, &want, NULL), 0);
    snprintf(cmdbuf, sizeof cmdbuf, "embed --model '%s' --device cpu 'x'", model());
    assert_int_equal(ek(cmdbuf, NULL, &out, NULL), 0);
    assert_string_equal(out, want);
    free(out);
    free(want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_args_jsonl),
        cmocka_unit_test(test_stdin_text_crlf_and_jsonl_agree),
        cmocka_unit_test(test_jsonl_errors_name_the_line),
        cmocka_unit_test(test_output_npy_matches_jsonl),
        cmocka_unit_test(test_truncate_none_names_index),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_one_megabyte_line),
        cmocka_unit_test(test_many_inputs_stream_in_flat_memory),
        cmocka_unit_test(test_tokenize_output),
        cmocka_unit_test(test_info_and_usage_errors),
        cmocka_unit_test(test_similarity),
        cmocka_unit_test(test_search_through_pipeline),
        cmocka_unit_test(test_embed_device_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
