/* bench/perfcheck.c — ek-perfcheck: the driver of `make perf-check`.
 *
 * Runs each hot path on a small fixed input a fixed number of times, on one
 * thread, and reports per call what does not depend on a noisy machine:
 *   - instructions, counted by valgrind's callgrind: every case is bracketed
 *     by callgrind client requests (zero, collect, dump named after the
 *     case), so setup and warm-up are not counted; bench/perfcheck.py reads
 *     the dumps;
 *   - heap allocations and bytes allocated, counted by the malloc wrappers
 *     below (zero is the aim on the hot paths).
 * Cases: tokenize, forward (tiny model, token ids in), embed_text (one
 * sentence end to end), pool (mean over 128 x 384), cosine_1n (1 x 2000 x
 * 384), topk_f32 / topk_int8 (k = 10 over 2000 x 384), pipeline (8
 * pass-through middleware around a no-op handler).
 *
 * (The pipeline case lives in perfcheck_pipeline.c.)
 *
 * Usage: ek-perfcheck MODELS_DIR   (MODELS_DIR/tiny-mean from
 * tools/make_test_models.sh).  Prints one JSON object: the toolchain the
 * figures depend on and, per case, calls and allocation counts.  Outside
 * valgrind it runs the same code (the client requests do nothing). */
#include <gnu/libc-version.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu.h"
#include "embedkit.h"
#include "embedkit_search.h"
#include "ops/ops.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define HAVE_CALLGRIND 0
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(s) ((void)(s))
#endif

/* ---- allocation counting ---------------------------------------------------
 * This executable's malloc family wraps glibc's, so every allocation in the
 * process (embedkit, oneDNN, libgomp) is counted.  The counters are the
 * process's own accounting, which is why they are global; sanitizer builds
 * keep their own allocator and count nothing. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

static unsigned long long g_allocs, g_alloc_bytes;

#if COUNT_ALLOCS
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

static void counted(size_t n) {
    __atomic_fetch_add(&g_allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_alloc_bytes, n, __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
    counted(n);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    counted(n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    counted(n);
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n) {
    counted(n);
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n) {
    counted(n);
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n) {
    counted(n);
    void *p = __libc_memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
#endif

/* ---- cases -------------------------------------------------------------------- */

typedef struct state {
    ek_ctx *ctx;
    ek_model *tiny;
    float *x, *q, *out;
    ek_index *f32, *i8;
    void *pipe;
    ek_encoding enc;
    int32_t ids[4 * 32], lens[4];
} state;

typedef int (*case_fn)(state *s);

static const char *const sentences[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings turn unbelievably long sentences into vectors, don't they?",
    "Élève naïve à Zürich: 東京で検索 — привет мир 🙂 3.14159",
    "A man is eating a piece of bread.",
};

static int c_tokenize(state *s) {
    for (int i = 0; i < 4; i++)
        if (ek_tokenize(s->ctx, s->tiny, sentences[i], strlen(sentences[i]), NULL, 0, NULL, &s->enc)) return 1;
    return 0;
}

static int c_forward(state *s) {
    ek_embed_options o;
    ek_embed_options_init(&o);
    return ek_embed_ids(s->ctx, s->tiny, s->ids, s->lens, 4, &o, s->out) != EK_OK;
}

static int c_embed_text(state *s) {
    ek_embed_options o;
    ek_embed_options_init(&o);
    return ek_embed(s->ctx, s->tiny, sentences, NULL, 1, &o, s->out, NULL) != EK_OK;
}

static int c_pool(state *s) {
    ek_op_pool(EK_POOL_MEAN, s->x, 128, 384, 0, NULL, s->out);
    return 0;
}

static int c_cosine(state *s) {
    return ek_similarity(s->ctx, EK_METRIC_COSINE, s->q, 1, 384, s->x, 2000, 384, s->out) != EK_OK;
}

static int search(state *s, const ek_index *ix) {
    ek_search_options so = {10, 0};
    ek_hit hits[10];
    return ek_index_search(s->ctx, ix, s->q, 1, 384, &so, hits, NULL) != EK_OK;
}

static int c_topk_f32(state *s) { return search(s, s->f32); }
static int c_topk_i8(state *s) { return search(s, s->i8); }

/* perfcheck_pipeline.c */
void *perfcheck_pipeline_new(void);
int perfcheck_pipeline_run(void *pipe, ek_ctx *ctx, int commands);
void perfcheck_pipeline_free(void *pipe);

static int c_pipeline(state *s) { return perfcheck_pipeline_run(s->pipe, s->ctx, 100); }

typedef struct pcase {
    const char *name;
    case_fn fn;
    int calls;
    const char *what; /* one call is ... */
} pcase;

static const pcase cases[] = {
    {"tokenize", c_tokenize, 20, "4 sentences (en, en, mixed scripts, en)"},
    {"forward", c_forward, 5, "tiny model, 4 x 32 token ids, pooled + normalised"},
    {"embed_text", c_embed_text, 5, "tiny model, one sentence end to end"},
    {"pool", c_pool, 20, "mean pooling of 128 x 384"},
    {"cosine_1n", c_cosine, 5, "cosine of 1 x 384 against 2000 x 384"},
    {"topk_f32", c_topk_f32, 5, "k = 10, 1 query, f32 index of 2000 x 384"},
    {"topk_int8", c_topk_i8, 5, "k = 10, 1 query, int8 index of 2000 x 384"},
    {"pipeline", c_pipeline, 5, "100 commands through 8 pass-through middleware"},
};

static void fill(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 40) * 0x1p-23 - 1.0);
    }
}

static int setup(state *s, const char *models) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny-mean", models);
    if (ek_ctx_new(&s->ctx) || ek_ctx_set_threads(s->ctx, 1)) return -1;
    if (ek_model_load(s->ctx, dir, &s->tiny)) {
        fprintf(stderr, "ek-perfcheck: %s\n", ek_ctx_last_error(s->ctx));
        return -1;
    }
    for (int i = 0; i < 4 * 32; i++) s->ids[i] = 5 + (i * 7919) % 30000;
    for (int b = 0; b < 4; b++) s->lens[b] = 32;
    s->x = malloc(sizeof(float) * 2000 * 384);
    s->q = malloc(sizeof(float) * 384);
    s->out = malloc(sizeof(float) * 2000);
    if (!s->x || !s->q || !s->out) return -1;
    fill(s->x, 2000 * 384, 1);
    fill(s->q, 384, 2);
    ek_matrix m = {EK_VEC_F32, s->x, 2000, 384, 384};
    ek_index_options io;
    ek_index_options_init(&io);
    if (ek_index_new(s->ctx, &m, &io, &s->f32)) return -1;
    io.type = EK_VEC_INT8;
    if (ek_index_new(s->ctx, &m, &io, &s->i8)) return -1;
    if (!(s->pipe = perfcheck_pipeline_new())) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: ek-perfcheck MODELS_DIR [CASE...]  (run under valgrind --tool=callgrind "
                        "--collect-atstart=no; see bench/perfcheck.py)\n");
        return 2;
    }
    state s;
    memset(&s, 0, sizeof s);
    if (setup(&s, argv[1])) {
        fprintf(stderr, "ek-perfcheck: setup failed: %s\n", s.ctx ? ek_ctx_last_error(s.ctx) : "out of memory");
        return 1;
    }
    const dnnl_version_t *dv = dnnl_version();
    printf("{\"toolchain\":{\"compiler\":\"%s %s\",\"optimized\":%s,\"glibc\":\"%s\",\"onednn\":\"%d.%d.%d\","
           "\"isa\":\"%s\",\"callgrind_requests\":%s,\"counts_allocations\":%s},\"cases\":[",
#if defined(__clang__)
           "clang", __clang_version__,
#else
           "gcc", __VERSION__,
#endif
#if defined(__OPTIMIZE__)
           "true",
#else
           "false",
#endif
           gnu_get_libc_version(), dv->major, dv->minor, dv->patch, ek_isa_name(ek_cpu_level(NULL)),
           HAVE_CALLGRIND ? "true" : "false", COUNT_ALLOCS ? "true" : "false");
    int rc = 0, first = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pcase *c = &cases[i];
        int wanted = argc == 2;
        for (int a = 2; a < argc; a++) wanted |= !strcmp(argv[a], c->name);
        if (!wanted) continue;
        /* Two warm-up calls: first-use work (primitive creation, scratch
         * buffers growing) is not what a call costs. */
        if (c->fn(&s) || c->fn(&s)) {
            fprintf(stderr, "ek-perfcheck: %s failed: %s\n", c->name, ek_ctx_last_error(s.ctx));
            rc = 1;
            continue;
        }
        unsigned long long a0 = g_allocs, b0 = g_alloc_bytes;
        CALLGRIND_ZERO_STATS;
        CALLGRIND_TOGGLE_COLLECT;
        for (int k = 0; k < c->calls && !rc; k++) rc = c->fn(&s);
        CALLGRIND_TOGGLE_COLLECT;
        CALLGRIND_DUMP_STATS_AT(c->name);
        printf("%s{\"name\":\"%s\",\"calls\":%d,\"what\":\"%s\",\"allocs_per_call\":%.2f,"
               "\"alloc_bytes_per_call\":%.1f}",
               first ? "" : ",", c->name, c->calls, c->what, (double)(g_allocs - a0) / c->calls,
               (double)(g_alloc_bytes - b0) / c->calls);
        first = 0;
    }
    printf("]}\n");
    ek_encoding_free(&s.enc);
    perfcheck_pipeline_free(s.pipe);
    ek_index_free(s.f32);
    ek_index_free(s.i8);
    free(s.x);
    free(s.q);
    free(s.out);
    ek_model_free(s.tiny);
    ek_ctx_free(s.ctx);
    return rc;
}
