/* tests/test_model.c — loading model directories: a valid generated model
 * loads with the right shape, and every required file missing or corrupted in
 * turn is refused with an error naming the file and the field (never a crash,
 * never a silent default). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedkit.h"
#include "support.h"

#define TINY "tiny-mean"

/* A fresh copy of a generated model to damage. */
static char *copy_model(const char *name) {
    char *tmp = ts_mkdtemp();
    assert_non_null(tmp);
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/m", tmp);
    assert_int_equal(ts_copy_dir(ts_path(ts_models_dir(), name), dir), 0);
    return dir;
}

static char *copy_tiny(void) { return copy_model(TINY); }

static void cleanup(const char *dir) {
    char parent[512];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = '\0';
    ts_rm_rf(parent);
}

/* Loads dir and asserts failure with status st and a message containing each
 * of the given fragments. */
static void expect_fail(const char *dir, ek_status st, const char *frag1, const char *frag2) {
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_model *m = NULL;
    ek_status got = ek_model_load(ctx, dir, &m);
    const char *msg = ek_ctx_last_error(ctx);
    if (got != st || (frag1 && !strstr(msg, frag1)) || (frag2 && !strstr(msg, frag2)))
        fail_msg("expected %s with \"%s\"/\"%s\", got %s: %s", ek_status_name(st), frag1 ? frag1 : "",
                 frag2 ? frag2 : "", ek_status_name(got), msg);
    assert_null(m);
    ek_ctx_free(ctx);
}

static void edit_json(const char *path, const char *field, cJSON *value) {
    char *text = ts_read_file(path, NULL);
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    if (value) {
        if (cJSON_GetObjectItemCaseSensitive(j, field))
            cJSON_ReplaceItemInObjectCaseSensitive(j, field, value);
        else
            cJSON_AddItemToObject(j, field, value);
    } else
        cJSON_DeleteItemFromObjectCaseSensitive(j, field);
    char *out = cJSON_Print(j);
    assert_int_equal(ts_write_file(path, out, strlen(out)), 0);
    free(out);
    cJSON_Delete(j);
}

static void test_valid_model_loads(void **state) {
    (void)state;
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_model *m = NULL;
    ek_status st = ek_model_load(ctx, ts_path(ts_models_dir(), TINY), &m);
    if (st) fail_msg("%s", ek_ctx_last_error(ctx));
    ek_model_info in;
    assert_int_equal(ek_model_get_info(m, &in), EK_OK);
    assert_string_equal(in.model_type, "bert");
    assert_int_equal(in.hidden_size, 32);
    assert_int_equal(in.num_layers, 2);
    assert_int_equal(in.num_heads, 4);
    assert_int_equal(in.intermediate_size, 64);
    assert_int_equal(in.vocab_size, 30522);
    assert_int_equal(in.embedding_dim, 32);
    assert_int_equal(in.pooling_mask, 1u << EK_POOL_MEAN);
    assert_true(in.generated_random);
    assert_non_null(strstr(in.note, "random"));
    ek_model_free(m);
    ek_ctx_free(ctx);
}

static void test_missing_dir(void **state) {
    (void)state;
    expect_fail("/nonexistent/model", EK_ERR_IO, "/nonexistent/model", "not a directory");
}

static void test_missing_files(void **state) {
    (void)state;
    static const struct { const char *file; const char *frag; } cases[] = {
        {"config.json", "config.json"},
        {"model.safetensors", "model.safetensors"},
        {"1_Pooling/config.json", "1_Pooling/config.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = copy_tiny();
        assert_int_equal(unlink(ts_path(dir, cases[i].file)), 0);
        expect_fail(dir, EK_ERR_IO, cases[i].frag, NULL);
        cleanup(dir);
    }
    /* No tokenizer.json: vocab.txt is used; without both, a clear error. */
    char *dir = copy_tiny();
    assert_int_equal(unlink(ts_path(dir, "tokenizer.json")), 0);
    assert_int_equal(unlink(ts_path(dir, "vocab.txt")), 0);
    expect_fail(dir, EK_ERR_IO, "vocab.txt", NULL);
    cleanup(dir);
}

static void test_tokenizer_fallback_to_vocab_txt(void **state) {
    (void)state;
    char *dir = copy_tiny();
    assert_int_equal(unlink(ts_path(dir, "tokenizer.json")), 0);
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_model *m = NULL, *ref = NULL;
    if (ek_model_load(ctx, dir, &m)) fail_msg("%s", ek_ctx_last_error(ctx));
    assert_int_equal(ek_model_load(ctx, ts_path(ts_models_dir(), TINY), &ref), EK_OK);
    const char *text = "Héllo, wörld! Tokenizers' fallback: vocab.txt";
    float a[32], b[32];
    assert_int_equal(ek_embed(ctx, m, &text, NULL, 1, NULL, a, NULL), EK_OK);
    assert_int_equal(ek_embed(ctx, ref, &text, NULL, 1, NULL, b, NULL), EK_OK);
    assert_memory_equal(a, b, sizeof a);
    ek_model_free(m);
    ek_model_free(ref);
    ek_ctx_free(ctx);
    cleanup(dir);
}

static void test_config_errors(void **state) {
    (void)state;
    char *dir = copy_tiny();
    const char *cfg = ts_path(dir, "config.json");
    assert_int_equal(ts_write_file(cfg, "{\"model_type\": \"bert\", ", 24), 0);
    expect_fail(dir, EK_ERR_FORMAT, "config.json", "not valid JSON");
    cleanup(dir);

    dir = copy_tiny();
    edit_json(ts_path(dir, "config.json"), "model_type", cJSON_CreateString("gpt2"));
    expect_fail(dir, EK_ERR_UNSUPPORTED, "config.json", "model_type");
    cleanup(dir);

    dir = copy_tiny();
    edit_json(ts_path(dir, "config.json"), "hidden_size", NULL);
    expect_fail(dir, EK_ERR_FORMAT, "config.json", "hidden_size: missing");
    cleanup(dir);

    dir = copy_tiny();
    edit_json(ts_path(dir, "config.json"), "num_attention_heads", cJSON_CreateString("four"));
    expect_fail(dir, EK_ERR_FORMAT, "config.json", "num_attention_heads");
    cleanup(dir);

    /* A shape that does not match the tensors. */
    dir = copy_tiny();
    edit_json(ts_path(dir, "config.json"), "intermediate_size", cJSON_CreateNumber(128));
    expect_fail(dir, EK_ERR_FORMAT, "intermediate.dense.weight", "does not match config.json");
    cleanup(dir);

    dir = copy_tiny();
    edit_json(ts_path(dir, "config.json"), "hidden_act", cJSON_CreateString("swish"));
    expect_fail(dir, EK_ERR_UNSUPPORTED, "config.json", "hidden_act");
    cleanup(dir);
}

static void test_safetensors_errors(void **state) {
    (void)state;
    /* Truncated file: the last tensors' offsets run past the end. */
    char *dir = copy_tiny();
    const char *st = ts_path(dir, "model.safetensors");
    size_t len = 0;
    char *data = ts_read_file(st, &len);
    assert_non_null(data);
    assert_int_equal(ts_write_file(st, data, len - 4096), 0);
    expect_fail(dir, EK_ERR_FORMAT, "model.safetensors", "run past");
    cleanup(dir);

    /* Header length larger than the file. */
    dir = copy_tiny();
    st = ts_path(dir, "model.safetensors");
    char bad[8] = {(char)0xff, (char)0xff, (char)0xff, 0x7f, 0, 0, 0, 0};
    memcpy(data, bad, 8);
    assert_int_equal(ts_write_file(st, data, len), 0);
    expect_fail(dir, EK_ERR_FORMAT, "model.safetensors", "header length");
    cleanup(dir);

    /* A dtype embedkit cannot compute with (same element size, so the header
     * stays consistent): refused naming the tensor. */
    dir = copy_tiny();
    st = ts_path(dir, "model.safetensors");
    char *fresh = ts_read_file(ts_path(ts_path(ts_models_dir(), TINY), "model.safetensors"), &len);
    assert_non_null(fresh);
    char *f32 = strstr(fresh + 8, "\"F32\"");
    assert_non_null(f32);
    f32[1] = 'I';
    assert_int_equal(ts_write_file(st, fresh, len), 0);
    expect_fail(dir, EK_ERR_UNSUPPORTED, "model.safetensors", "I32");
    cleanup(dir);

    /* Garbage instead of a header. */
    dir = copy_tiny();
    st = ts_path(dir, "model.safetensors");
    memset(fresh + 8, 'x', 64);
    assert_int_equal(ts_write_file(st, fresh, len), 0);
    expect_fail(dir, EK_ERR_FORMAT, "model.safetensors", "not a JSON object");
    cleanup(dir);
    free(fresh);
    free(data);
}

static void test_module_errors(void **state) {
    (void)state;
    char *dir = copy_tiny();
    edit_json(ts_path(dir, "1_Pooling/config.json"), "word_embedding_dimension", cJSON_CreateNumber(64));
    expect_fail(dir, EK_ERR_FORMAT, "1_Pooling/config.json", "word_embedding_dimension");
    cleanup(dir);

    dir = copy_tiny();
    edit_json(ts_path(dir, "1_Pooling/config.json"), "pooling_mode", cJSON_CreateString("median"));
    expect_fail(dir, EK_ERR_UNSUPPORTED, "1_Pooling/config.json", "median");
    cleanup(dir);

    dir = copy_tiny();
    edit_json(ts_path(dir, "1_Pooling/config.json"), "include_prompt", cJSON_CreateString("yes"));
    expect_fail(dir, EK_ERR_FORMAT, "1_Pooling/config.json", "include_prompt");
    cleanup(dir);

    dir = copy_model("tiny-dense");
    edit_json(ts_path(dir, "2_Dense/config.json"), "in_features", cJSON_CreateNumber(7));
    expect_fail(dir, EK_ERR_FORMAT, "2_Dense/config.json", "in_features");
    cleanup(dir);

    dir = copy_model("tiny-dense");
    edit_json(ts_path(dir, "2_Dense/config.json"), "activation_function", cJSON_CreateString("my.Swish"));
    expect_fail(dir, EK_ERR_UNSUPPORTED, "2_Dense/config.json", "activation_function");
    cleanup(dir);

    dir = copy_model("tiny-dense");
    assert_int_equal(unlink(ts_path(dir, "2_Dense/model.safetensors")), 0);
    expect_fail(dir, EK_ERR_IO, "2_Dense/model.safetensors", NULL);
    cleanup(dir);

    dir = copy_tiny();
    const char *mods = "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
                       "{\"idx\":1,\"name\":\"1\",\"path\":\"1_CNN\",\"type\":\"sentence_transformers.models.CNN\"}]";
    assert_int_equal(ts_write_file(ts_path(dir, "modules.json"), mods, strlen(mods)), 0);
    expect_fail(dir, EK_ERR_UNSUPPORTED, "modules.json", "CNN");
    cleanup(dir);

    dir = copy_tiny();
    assert_int_equal(ts_write_file(ts_path(dir, "modules.json"), "{}", 2), 0);
    expect_fail(dir, EK_ERR_FORMAT, "modules.json", "array");
    cleanup(dir);

    dir = copy_tiny();
    const char *sb = "{\"max_seq_length\": 4096}";
    assert_int_equal(ts_write_file(ts_path(dir, "sentence_bert_config.json"), sb, strlen(sb)), 0);
    expect_fail(dir, EK_ERR_FORMAT, "max_seq_length", "max_position_embeddings");
    cleanup(dir);

    dir = copy_tiny();
    assert_int_equal(ts_write_file(ts_path(dir, "tokenizer.json"), "[1,2", 4), 0);
    expect_fail(dir, EK_ERR_FORMAT, "tokenizer.json", NULL);
    cleanup(dir);
}

static void test_no_modules_json_means_mean_pooling(void **state) {
    (void)state;
    char *dir = copy_tiny();
    assert_int_equal(unlink(ts_path(dir, "modules.json")), 0);
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_model *m = NULL;
    if (ek_model_load(ctx, dir, &m)) fail_msg("%s", ek_ctx_last_error(ctx));
    ek_model_info in;
    ek_model_get_info(m, &in);
    assert_int_equal(in.pooling_mask, 1u << EK_POOL_MEAN);
    assert_int_equal(in.normalize, 0);
    ek_model_free(m);
    ek_ctx_free(ctx);
    cleanup(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_model_loads),
        cmocka_unit_test(test_missing_dir),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_tokenizer_fallback_to_vocab_txt),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_safetensors_errors),
        cmocka_unit_test(test_module_errors),
        cmocka_unit_test(test_no_modules_json_means_mean_pooling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
