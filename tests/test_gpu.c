/* tests/test_gpu.c — the OpenCL backend against the CPU reference, on every
 * OpenCL device present (PoCL's CPU device in CI): each device op on random
 * inputs (batch 1, sequence length 1, sizes that are not multiples of the
 * work-group sizes, all-padding / fully masked rows, large batches), the
 * whole encoder on the generated MiniLM-shaped model, cosine and top-k,
 * the kernel cache, and memory pressure (tiny budgets, injected allocation
 * failures).  With no OpenCL runtime every test reports skipped; a child
 * run with OCL_ICD_VENDORS pointing at an empty directory checks that. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#include "embedkit_gpu.h"
#include "gpu/gpu.h"
#include "model/forward.h"
#include "model/model.h"
#include "ops/ops.h"

/* ---- fixtures ----------------------------------------------------------- */

typedef struct env {
    ek_ctx *ctx;
    ek_gpu_device dev[8];
    size_t n_dev;
    char cache[512];
} env;

static int setup(void **state) {
    env *v = calloc(1, sizeof *v);
    assert_non_null(v);
    assert_int_equal(ek_ctx_new(&v->ctx), EK_OK);
    assert_int_equal(ek_gpu_list(v->ctx, v->dev, 8, &v->n_dev), EK_OK);
    if (v->n_dev > 8) v->n_dev = 8;
    snprintf(v->cache, sizeof v->cache, "%s", ts_mkdtemp());
    *state = v;
    return 0;
}

static int teardown(void **state) {
    env *v = *state;
    ts_rm_rf(v->cache);
    ek_ctx_free(v->ctx);
    free(v);
    return 0;
}

static int open_dev(env *v, size_t i, size_t budget, ek_gpu_alloc_hook hook, void *user, ek_gpu **g) {
    char spec[64];
    snprintf(spec, sizeof spec, "opencl:%d:%d", v->dev[i].platform, v->dev[i].device);
    ek_gpu_options o;
    ek_gpu_options_init(&o);
    o.device = spec;
    o.cache_dir = v->cache;
    o.mem_budget = budget;
    o.alloc_hook = hook;
    o.alloc_user = user;
    ek_status s = ek_gpu_open(v->ctx, &o, g);
    if (s != EK_OK) fprintf(stderr, "open %s: %s\n", spec, ek_ctx_last_error(v->ctx));
    return s;
}

#define NEED_DEVICE(v)                                                          \
    do {                                                                        \
        if ((v)->n_dev == 0) {                                                  \
            print_message("no OpenCL device: GPU test skipped\n");              \
            skip();                                                             \
        }                                                                       \
    } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(float lo, float hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((double)(rng >> 11) / 9007199254740992.0);
}
static int irand(int n) { return (int)frand(0.0f, (float)n) % n; }
static float *rnd(size_t n, float lo, float hi) {
    float *p = malloc(sizeof *p * (n ? n : 1));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
    return p;
}

/* Device buffers for a test: taken from the pool, given back at the end. */
typedef struct bufs {
    ek_gbuf *b[32];
    int n;
} bufs;

static cl_mem up(ek_gpu *g, bufs *bs, const void *p, size_t bytes) {
    ek_err e;
    ek_gbuf *b;
    assert_int_equal(ek_gpool_take(g, bytes ? bytes : 4, &b, &e), EK_OK);
    bs->b[bs->n++] = b;
    if (p) assert_int_equal(ek_gpu_upload(g, b->mem, 0, p, bytes, &e), EK_OK);
    return b->mem;
}
static void down(ek_gpu *g, cl_mem m, void *p, size_t bytes) {
    ek_err e;
    assert_int_equal(ek_gpu_finish(g, &e), EK_OK);
    assert_int_equal(ek_gpu_download(g, m, 0, p, bytes, &e), EK_OK);
}
static void give(ek_gpu *g, bufs *bs) {
    for (int i = 0; i < bs->n; i++) ek_gpool_give(g, bs->b[i]);
    bs->n = 0;
}

static double max_err(const float *a, const float *b, size_t n, int relative) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (relative) d /= fmax(1.0, fabs((double)b[i]));
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

/* ---- ops ------------------------------------------------------------------ */

static void test_gemm(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    static const int shapes[][3] = {{1, 1, 1}, {1, 384, 384}, {37, 53, 29}, {130, 70, 384}, {65, 1537, 64}, {300, 96, 17}};
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            for (int mode = 0; mode < 3; mode++) { /* plain, bias+gelu, accumulate */
                float *A = rnd((size_t)M * K, -1, 1), *B = rnd((size_t)N * K, -1, 1), *bias = rnd(N, -0.5f, 0.5f);
                float *C0 = rnd((size_t)M * N, -1, 1), *C = malloc(sizeof *C * M * N), *ref = malloc(sizeof *ref * M * N);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        double acc = 0;
                        for (int k = 0; k < K; k++) acc += (double)A[(size_t)m * K + k] * B[(size_t)n * K + k];
                        if (mode == 1) acc = ek_op_gelu((float)(acc + bias[n]));
                        if (mode == 2) acc += C0[(size_t)m * N + n];
                        ref[(size_t)m * N + n] = (float)acc;
                    }
                bufs bs = {{0}, 0};
                ek_err e;
                cl_mem a = up(g, &bs, A, sizeof(float) * M * K), b = up(g, &bs, B, sizeof(float) * N * K);
                cl_mem bb = up(g, &bs, bias, sizeof(float) * N), c = up(g, &bs, C0, sizeof(float) * M * N);
                assert_int_equal(ek_gop_gemm_nt(g, M, N, K, 1.0f, a, 0, K, b, 0, K, mode == 1 ? bb : NULL, c, 0, N,
                                                mode == 1 ? 3 : 0, mode == 2, &e),
                                 EK_OK);
                down(g, c, C, sizeof(float) * M * N);
                double err = max_err(C, ref, (size_t)M * N, 1);
                if (err > 1e-4) fail_msg("gemm %dx%dx%d mode %d: max err %g", M, N, K, mode, err);
                give(g, &bs);
                free(A), free(B), free(bias), free(C0), free(C), free(ref);
            }
        }
        ek_gpu_close(g);
    }
}

static void test_layernorm_embed(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    static const int Hs[] = {1, 37, 129, 384};
    static const int rows_list[] = {1, 3, 257};
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        for (size_t hi = 0; hi < 4; hi++)
            for (size_t ri = 0; ri < 3; ri++) {
                int H = Hs[hi], R = rows_list[ri];
                float *x = rnd((size_t)R * H, -3, 5), *res = rnd((size_t)R * H, -1, 1);
                float *gm = rnd(H, 0.5f, 1.5f), *bt = rnd(H, -0.2f, 0.2f), *out = malloc(sizeof *out * R * H);
                for (int with_res = 0; with_res < 2; with_res++) {
                    bufs bs = {{0}, 0};
                    ek_err e;
                    cl_mem xb = up(g, &bs, x, sizeof(float) * R * H), rb = up(g, &bs, res, sizeof(float) * R * H);
                    cl_mem gb = up(g, &bs, gm, sizeof(float) * H), bb = up(g, &bs, bt, sizeof(float) * H);
                    assert_int_equal(ek_gop_layernorm(g, xb, with_res ? rb : NULL, R, H, gb, bb, 1e-12f, &e), EK_OK);
                    down(g, xb, out, sizeof(float) * R * H);
                    float *ref = malloc(sizeof *ref * R * H);
                    memcpy(ref, x, sizeof *ref * R * H);
                    ek_op_add_layernorm(ref, with_res ? res : NULL, R, H, gm, bt, 1e-12f);
                    double err = max_err(out, ref, (size_t)R * H, 1);
                    if (err > 1e-4) fail_msg("layernorm H %d rows %d res %d: %g", H, R, with_res, err);
                    free(ref);
                    give(g, &bs);
                }
                /* embeddings + LayerNorm */
                int vocab = 50, maxp = 40;
                float *word = rnd((size_t)vocab * H, -1, 1), *pos = rnd((size_t)maxp * H, -1, 1), *typ = rnd(2 * (size_t)H, -1, 1);
                int32_t *ids = malloc(sizeof *ids * R), *tys = malloc(sizeof *tys * R), *ps = malloc(sizeof *ps * R);
                for (int r = 0; r < R; r++) ids[r] = irand(vocab), tys[r] = irand(2), ps[r] = irand(maxp);
                bufs bs = {{0}, 0};
                ek_err e;
                cl_mem xb = up(g, &bs, NULL, sizeof(float) * R * H);
                cl_mem ib = up(g, &bs, ids, sizeof(int32_t) * R), tb = up(g, &bs, tys, sizeof(int32_t) * R);
                cl_mem pb = up(g, &bs, ps, sizeof(int32_t) * R), wb = up(g, &bs, word, sizeof(float) * vocab * H);
                cl_mem tyb = up(g, &bs, typ, sizeof(float) * 2 * H), pob = up(g, &bs, pos, sizeof(float) * maxp * H);
                cl_mem gb = up(g, &bs, gm, sizeof(float) * H), bb = up(g, &bs, bt, sizeof(float) * H);
                assert_int_equal(ek_gop_embed_ln(g, xb, R, H, ib, tb, pb, wb, tyb, pob, gb, bb, 1e-12f, &e), EK_OK);
                down(g, xb, out, sizeof(float) * R * H);
                float *ref = malloc(sizeof *ref * R * H);
                for (int r = 0; r < R; r++) {
                    for (int c = 0; c < H; c++)
                        ref[(size_t)r * H + c] = (word[(size_t)ids[r] * H + c] + typ[(size_t)tys[r] * H + c]) +
                                                 pos[(size_t)ps[r] * H + c];
                    ek_op_add_layernorm(ref + (size_t)r * H, NULL, 1, H, gm, bt, 1e-12f);
                }
                double err = max_err(out, ref, (size_t)R * H, 1);
                if (err > 1e-4) fail_msg("embed_ln H %d rows %d: %g", H, R, err);
                give(g, &bs);
                free(ref), free(word), free(pos), free(typ), free(ids), free(tys), free(ps);
                free(x), free(res), free(gm), free(bt), free(out);
            }
        ek_gpu_close(g);
    }
}

static void test_bias_gelu(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        int R = 33, N = 1537;
        float *x = rnd((size_t)R * N, -6, 6), *bias = rnd(N, -1, 1), *out = malloc(sizeof *out * R * N);
        bufs bs = {{0}, 0};
        ek_err e;
        cl_mem xb = up(g, &bs, x, sizeof(float) * R * N), bb = up(g, &bs, bias, sizeof(float) * N);
        assert_int_equal(ek_gop_bias_act(g, xb, bb, R, N, 3, &e), EK_OK);
        down(g, xb, out, sizeof(float) * R * N);
        ek_op_bias_act(x, bias, R, N, 1);
        double err = max_err(out, x, (size_t)R * N, 1);
        if (err > 1e-5) fail_msg("bias+gelu: %g", err);
        give(g, &bs);
        free(x), free(bias), free(out);
        ek_gpu_close(g);
    }
}

/* Attention reference in double over one packed batch. */
static void attention_ref(const float *qkv, int R, int H, int heads, const int32_t *st, int n_seq, const int32_t *mask,
                          float *ctx, float *hp) {
    int d = H / heads;
    double scale = 1.0 / sqrt((double)d);
    double *p = malloc(sizeof *p * (R + 1));
    for (int s = 0; s < n_seq; s++) {
        int start = st[s], L = st[s + 1] - start;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < L; i++) {
                const float *q = qkv + (size_t)(start + i) * 3 * H + h * d;
                double m = -INFINITY, sum = 0;
                for (int t = 0; t < L; t++) {
                    if (mask && !mask[start + t]) {
                        p[t] = -INFINITY;
                        continue;
                    }
                    const float *k = qkv + (size_t)(start + t) * 3 * H + H + h * d;
                    double a = 0;
                    for (int c = 0; c < d; c++) a += (double)q[c] * k[c];
                    p[t] = a * scale;
                    if (p[t] > m) m = p[t];
                }
                for (int t = 0; t < L; t++) {
                    p[t] = m == -INFINITY ? 0 : exp(p[t] - m);
                    sum += p[t];
                }
                for (int t = 0; t < L; t++) p[t] = sum > 0 ? p[t] / sum : 0;
                for (int c = 0; c < d; c++) {
                    double o = 0;
                    for (int t = 0; t < L; t++) o += p[t] * qkv[(size_t)(start + t) * 3 * H + 2 * H + h * d + c];
                    ctx[(size_t)(start + i) * H + h * d + c] = (float)o;
                }
                if (i == 0 && hp)
                    for (int t = 0; t < L; t++) hp[(size_t)h * R + start + t] = (float)p[t];
            }
    }
    free(p);
}

static void test_attention(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    static const int cfgs[][2] = {{48, 4}, {256, 2}, {30, 3}, {384, 12}};
    static const int lens[] = {1, 5, 0, 130, 17, 2, 64};
    const int n_seq = 7;
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        for (size_t ci = 0; ci < 4; ci++)
            for (int masked = 0; masked < 2; masked++) {
                int H = cfgs[ci][0], heads = cfgs[ci][1];
                int32_t st[8], seq_of[300], mask[300];
                st[0] = 0;
                for (int s = 0; s < n_seq; s++) st[s + 1] = st[s] + lens[s];
                int R = st[n_seq], max_len = 130;
                for (int s = 0; s < n_seq; s++)
                    for (int r = st[s]; r < st[s + 1]; r++) {
                        seq_of[r] = s;
                        /* sequence 1 fully masked (all padding); others: random keys off */
                        mask[r] = s == 1 ? 0 : (irand(4) != 0 || r == st[s]);
                    }
                float *qkv = rnd((size_t)R * 3 * H, -2, 2), *ctx = malloc(sizeof *ctx * R * H);
                float *ref = calloc((size_t)R * H, sizeof *ref), *hp = calloc((size_t)R * heads, sizeof *hp);
                float *hpr = calloc((size_t)R * heads, sizeof *hpr);
                attention_ref(qkv, R, H, heads, st, n_seq, masked ? mask : NULL, ref, hpr);
                bufs bs = {{0}, 0};
                ek_err e;
                cl_mem qb = up(g, &bs, qkv, sizeof(float) * R * 3 * H), cb = up(g, &bs, NULL, sizeof(float) * R * H);
                cl_mem sb = up(g, &bs, seq_of, sizeof(int32_t) * R), stb = up(g, &bs, st, sizeof st);
                cl_mem mb = up(g, &bs, mask, sizeof(int32_t) * R), hb = up(g, &bs, hp, sizeof(float) * R * heads);
                assert_int_equal(ek_gop_attention(g, qb, cb, sb, stb, masked ? mb : NULL, R, H, heads, max_len, hb, &e),
                                 EK_OK);
                down(g, cb, ctx, sizeof(float) * R * H);
                down(g, hb, hp, sizeof(float) * R * heads);
                double err = max_err(ctx, ref, (size_t)R * H, 1), err2 = max_err(hp, hpr, (size_t)R * heads, 0);
                if (err > 1e-4 || err2 > 1e-5)
                    fail_msg("attention H %d heads %d masked %d: ctx %g probs %g", H, heads, masked, err, err2);
                if (masked)
                    for (int r = st[1]; r < st[2]; r++)
                        for (int c = 0; c < H; c++) assert_true(ctx[(size_t)r * H + c] == 0.0f);
                give(g, &bs);
                free(qkv), free(ctx), free(ref), free(hp), free(hpr);
            }
        ek_gpu_close(g);
    }
}

static void test_pool_l2(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    static const int lens[] = {0, 1, 7, 300, 3};
    static const int mask_froms[] = {0, 2, 500};
    static const int Hs[] = {37, 384};
    const int n_seq = 5;
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        for (int hi = 0; hi < 2; hi++) {
            int H = Hs[hi];
            int32_t st[6];
            st[0] = 0;
            for (int s = 0; s < n_seq; s++) st[s + 1] = st[s] + lens[s];
            int R = st[n_seq];
            float *h = rnd((size_t)R * H, -3, 3), *w = rnd(R, 0.0f, 1.0f);
            float *out = malloc(sizeof *out * n_seq * H), *ref = malloc(sizeof *ref * n_seq * H);
            bufs bs = {{0}, 0};
            cl_mem hb = up(g, &bs, h, sizeof(float) * R * H), sb = up(g, &bs, st, sizeof st);
            cl_mem wb = up(g, &bs, w, sizeof(float) * R), ob = up(g, &bs, NULL, sizeof(float) * n_seq * H);
            for (int mode = 0; mode < EK_POOL_COUNT; mode++)
                for (int mi = 0; mi < 3; mi++) {
                    ek_err e;
                    assert_int_equal(ek_gop_pool(g, mode, hb, H, sb, n_seq, mask_froms[mi], wb, ob, H, 0, &e), EK_OK);
                    down(g, ob, out, sizeof(float) * n_seq * H);
                    for (int s = 0; s < n_seq; s++)
                        ek_op_pool(mode, h + (size_t)st[s] * H, lens[s], H, mask_froms[mi], w + st[s], ref + (size_t)s * H);
                    double err = max_err(out, ref, (size_t)n_seq * H, 1);
                    if (err > 1e-5) fail_msg("pool mode %d H %d mask_from %d: %g", mode, H, mask_froms[mi], err);
                    /* and L2 normalisation of the pooled rows (zero rows stay zero) */
                    if (mode == EK_POOL_MEAN) {
                        assert_int_equal(ek_gop_l2_normalize(g, ob, n_seq, H, &e), EK_OK);
                        down(g, ob, out, sizeof(float) * n_seq * H);
                        for (int s = 0; s < n_seq; s++) ek_op_l2_normalize(ref + (size_t)s * H, H);
                        err = max_err(out, ref, (size_t)n_seq * H, 0);
                        if (err > 1e-6) fail_msg("l2 H %d: %g", H, err);
                    }
                }
            give(g, &bs);
            free(h), free(w), free(out), free(ref);
        }
        ek_gpu_close(g);
    }
}

/* ---- similarity --------------------------------------------------------- */

static void test_cosine_topk(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    static const int dims[] = {37, 384};
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        for (int dd = 0; dd < 2; dd++) {
            size_t d = (size_t)dims[dd], N = 10007, nq = 13;
            float *x = rnd(N * d, -1, 1), *q = rnd(nq * d, -1, 1);
            memset(x + 5 * d, 0, sizeof(float) * d);        /* a zero row scores 0 */
            memcpy(x + 9 * d, x + 4 * d, sizeof(float) * d); /* a tie: row 4 before 9 */
            memcpy(q + 2 * d, x + 4 * d, sizeof(float) * d);
            ek_gpu_matrix *m;
            assert_int_equal(ek_gpu_matrix_new(v->ctx, g, x, N, d, &m), EK_OK);
            float *out = malloc(sizeof *out * nq * N), *ref = malloc(sizeof *ref * nq * N);
            assert_int_equal(ek_similarity(v->ctx, EK_METRIC_COSINE, q, nq, d, x, N, d, ref), EK_OK);
            assert_int_equal(ek_gpu_cosine(v->ctx, g, q, nq, m, out), EK_OK); /* N:M */
            double err = max_err(out, ref, nq * N, 0);
            if (err > 1e-5) fail_msg("cosine N:M d %zu: %g", d, err);
            assert_int_equal(ek_gpu_cosine(v->ctx, g, q + d, 1, m, out), EK_OK); /* 1:N */
            err = max_err(out, ref + N, N, 0);
            if (err > 1e-5) fail_msg("cosine 1:N d %zu: %g", d, err);
            assert_true(out[5] == 0.0f);
            size_t k = 10;
            ek_hit *hits = malloc(sizeof *hits * nq * k);
            assert_int_equal(ek_gpu_topk(v->ctx, g, q, nq, m, k, hits), EK_OK);
            for (size_t i = 0; i < nq; i++) {
                /* The k-th GPU score must equal the CPU's k-th best within
                 * tolerance, and every hit's score the CPU score of its row. */
                float *r = ref + i * N;
                for (size_t j = 0; j < k; j++) {
                    assert_true(hits[i * k + j].index >= 0 && hits[i * k + j].index < (int64_t)N);
                    assert_true(fabsf(hits[i * k + j].score - r[hits[i * k + j].index]) <= 1e-5f);
                    if (j) assert_true(hits[i * k + j - 1].score >= hits[i * k + j].score);
                }
                size_t better = 0;
                for (size_t t = 0; t < N; t++) better += r[t] > hits[i * k + k - 1].score + 1e-5f;
                assert_true(better < k);
            }
            assert_int_equal(hits[2 * k].index, 4); /* the tie, lower row first */
            assert_int_equal(hits[2 * k + 1].index, 9);
            ek_gpu_matrix_free(m);
            free(x), free(q), free(out), free(ref), free(hits);
        }
        ek_gpu_close(g);
    }
}

/* ---- the whole model ------------------------------------------------------ */

typedef struct batch {
    int32_t *ids;
    size_t *start;
    int *order;
    size_t n;
} batch;

static void make_inputs(batch *b, size_t n, int vocab, int max_len) {
    b->n = n;
    b->start = malloc(sizeof *b->start * (n + 1));
    b->order = malloc(sizeof *b->order * n);
    b->start[0] = 0;
    for (size_t i = 0; i < n; i++) b->start[i + 1] = b->start[i] + 1 + (size_t)irand(max_len);
    b->ids = malloc(sizeof *b->ids * b->start[n]);
    for (size_t t = 0; t < b->start[n]; t++) b->ids[t] = 1 + irand(vocab - 1);
    /* longest first, as ek_embed orders them */
    for (size_t i = 0; i < n; i++) b->order[i] = (int)i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && b->start[b->order[j] + 1] - b->start[b->order[j]] >
                                         b->start[b->order[j - 1] + 1] - b->start[b->order[j - 1]];
             j--) {
            int t = b->order[j];
            b->order[j] = b->order[j - 1];
            b->order[j - 1] = t;
        }
}

static void free_inputs(batch *b) { free(b->ids), free(b->start), free(b->order); }

/* CPU reference: ek_bert_forward per input, then ek_op_pool + normalise. */
static void cpu_pooled(const ek_model *m, const batch *b, const ek_gpu_pool_req *req, float *out) {
    int H = m->w.cfg.hidden;
    size_t P = (size_t)req->n_modes * H;
    for (size_t i = 0; i < b->n; i++) {
        int L = (int)(b->start[i + 1] - b->start[i]);
        int32_t st[2] = {0, L};
        ek_fwd_batch fb = {b->ids + b->start[i], NULL, st, 1};
        size_t sz = ek_bert_forward_scratch_size(&m->w.cfg, L, L, 2);
        void *scratch = aligned_alloc(64, (sz + 63) / 64 * 64);
        float *hid = malloc(sizeof *hid * L * H), *att = malloc(sizeof *att * L);
        ek_err e;
        assert_int_equal(ek_bert_forward(&m->w, &fb, hid, att, scratch, 2, &e), EK_OK);
        for (int k = 0; k < req->n_modes; k++)
            ek_op_pool(req->modes[k], hid, L, H, req->mask_from, att, out + i * P + (size_t)k * H);
        if (req->normalize) ek_op_l2_normalize(out + i * P, (int)P);
        free(scratch), free(hid), free(att);
    }
}

static void compare_embeddings(const float *a, const float *b, size_t n, size_t P, const char *what) {
    double worst = 0, worst_cos = 1;
    for (size_t i = 0; i < n; i++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t c = 0; c < P; c++) {
            double d = fabs((double)a[i * P + c] - b[i * P + c]);
            if (!(d <= worst)) worst = d;
            dot += (double)a[i * P + c] * b[i * P + c];
            na += (double)a[i * P + c] * a[i * P + c];
            nb += (double)b[i * P + c] * b[i * P + c];
        }
        double cs = na == 0 && nb == 0 ? 1.0 : dot / sqrt(na * nb); /* all masked: both zero */
        if (!(cs >= worst_cos)) worst_cos = cs;
    }
    print_message("%s: max |diff| %.3g, min cosine %.8f\n", what, worst, worst_cos);
    if (!(worst <= 1e-4) || !(worst_cos >= 0.99999)) fail_msg("%s: max |diff| %g, min cosine %.8f", what, worst, worst_cos);
}

static ek_model *load_default(env *v) {
    ek_model *m = NULL;
    const char *dir = ts_path(ts_models_dir(), "default");
    if (ek_model_load(v->ctx, dir, &m) != EK_OK) fail_msg("load %s: %s", dir, ek_ctx_last_error(v->ctx));
    return m;
}

static void test_model_parity(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    ek_model *m = load_default(v);
    batch b;
    make_inputs(&b, 40, m->w.cfg.vocab, 128);
    /* batch 1 and sequence length 1 too */
    b.start[1] = b.start[0] + 1;
    ek_gpu_pool_req reqs[3] = {{{EK_POOL_MEAN}, 1, 0, 1},
                               {{EK_POOL_CLS, EK_POOL_MAX, EK_POOL_MEAN_SQRT_LEN, EK_POOL_WEIGHTED_MEAN,
                                 EK_POOL_LAST_TOKEN, EK_POOL_ATTENTION},
                                6, 0, 1},
                               {{EK_POOL_MEAN, EK_POOL_ATTENTION}, 2, 2, 1}};
    int H = m->w.cfg.hidden;
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
        for (int r = 0; r < 3; r++) {
            size_t P = (size_t)reqs[r].n_modes * H;
            float *gpu = malloc(sizeof *gpu * b.n * P), *cpu = malloc(sizeof *cpu * b.n * P);
            cpu_pooled(m, &b, &reqs[r], cpu);
            ek_err e;
            /* batch 1: input 0 alone (one token long) */
            int first = 0;
            assert_int_equal(ek_gpu_pool_inputs(g, &m->w, b.ids, NULL, b.start, &first, 1, 1, 8192, &reqs[r], gpu, &e),
                             EK_OK);
            compare_embeddings(gpu, cpu, 1, P, "model parity, batch 1");
            /* everything, batches of 16 */
            assert_int_equal(
                ek_gpu_pool_inputs(g, &m->w, b.ids, NULL, b.start, b.order, b.n, 16, 8192, &reqs[r], gpu, &e), EK_OK);
            compare_embeddings(gpu, cpu, b.n, P, "model parity, batches of 16");
            free(gpu), free(cpu);
        }
        ek_gpu_close(g);
    }
    free_inputs(&b);
    ek_model_free(m);
}

/* ---- memory pressure ------------------------------------------------------- */

typedef struct inject {
    int calls, fail_every;
    size_t fail_above;
} inject;

static int inject_hook(void *user, size_t bytes) {
    inject *in = user;
    in->calls++;
    if (in->fail_above && bytes > in->fail_above) return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    if (in->fail_every && in->calls % in->fail_every == 0) return CL_OUT_OF_RESOURCES;
    return 0;
}

static void test_pressure(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    ek_model *m = load_default(v);
    batch b;
    make_inputs(&b, 48, m->w.cfg.vocab, 100);
    ek_gpu_pool_req req = {{EK_POOL_MEAN}, 1, 0, 1};
    int H = m->w.cfg.hidden;
    float *ref = malloc(sizeof *ref * b.n * H), *out = malloc(sizeof *out * b.n * H);
    cpu_pooled(m, &b, &req, ref);
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        ek_err e;
        ek_gpu_stats st;
        /* 1. A tiny budget: nothing fits; pressure, no crash, no output. */
        assert_int_equal(open_dev(v, di, 64 << 10, NULL, NULL, &g), EK_OK);
        for (size_t i = 0; i < b.n * H; i++) out[i] = -7.0f;
        assert_int_equal(ek_gpu_pool_inputs(g, &m->w, b.ids, NULL, b.start, b.order, b.n, 32, 8192, &req, out, &e),
                         EK_GPU_PRESSURE);
        ek_gpu_get_stats(g, &st);
        assert_true(st.in_use <= st.budget);
        ek_gpu_close(g);

        /* 2. Room for the embeddings, one layer's weights and small batches
         *    only: batches are split, layer weights evicted and uploaded
         *    again, results unchanged. */
        size_t weights = 0;
        {
            const ek_bert_config *c = &m->w.cfg;
            size_t Hs = (size_t)c->hidden, I = (size_t)c->intermediate;
            weights = ((size_t)c->vocab + c->max_pos + c->type_vocab) * Hs * 4 +
                      (4 * Hs * Hs + 2 * Hs * I + 10 * Hs + I) * 4;
        }
        size_t budget = weights + ek_gpu_encode_bytes(&m->w, 300, 4, H) + (2u << 20);
        assert_int_equal(open_dev(v, di, budget, NULL, NULL, &g), EK_OK);
        assert_int_equal(ek_gpu_pool_inputs(g, &m->w, b.ids, NULL, b.start, b.order, b.n, 32, 8192, &req, out, &e),
                         EK_OK);
        ek_gpu_get_stats(g, &st);
        print_message("budget %zu: %llu splits, %llu evictions, peak %llu\n", budget,
                      (unsigned long long)st.batch_splits, (unsigned long long)st.evictions,
                      (unsigned long long)st.peak);
        assert_true(st.batch_splits > 0);
        assert_true(st.peak <= budget);
        compare_embeddings(out, ref, b.n, (size_t)H, "pressure: split batches");
        ek_gpu_close(g);

        /* 3. Injected failures: large allocations fail (as a driver out of
         *    memory would) -> split; every 5th allocation fails -> retried. */
        inject in = {0, 0, (size_t)2 << 20};
        assert_int_equal(open_dev(v, di, 0, inject_hook, &in, &g), EK_OK);
        /* Weights larger than 2 MB can never be allocated: pressure. */
        assert_int_equal(ek_gpu_pool_inputs(g, &m->w, b.ids, NULL, b.start, b.order, b.n, 32, 8192, &req, out, &e),
                         EK_GPU_PRESSURE);
        ek_gpu_get_stats(g, &st);
        assert_true(st.alloc_failures > 0);
        ek_gpu_close(g);
        inject in2 = {0, 5, 0};
        assert_int_equal(open_dev(v, di, 0, inject_hook, &in2, &g), EK_OK);
        int rc = ek_gpu_pool_inputs(g, &m->w, b.ids, NULL, b.start, b.order, b.n, 32, 8192, &req, out, &e);
        assert_true(rc == EK_OK || rc == EK_GPU_PRESSURE);
        if (rc == EK_OK) compare_embeddings(out, ref, b.n, (size_t)H, "pressure: injected failures");
        ek_gpu_get_stats(g, &st);
        assert_true(st.alloc_failures > 0);
        ek_gpu_close(g);
    }
    free(ref), free(out);
    free_inputs(&b);
    ek_model_free(m);
}

/* Cosine falls back to the CPU (counted) when the matrix cannot be placed. */
static void test_pressure_cosine(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    size_t N = 5000, d = 64;
    float *x = rnd(N * d, -1, 1), *q = rnd(3 * d, -1, 1);
    float *ref = malloc(sizeof *ref * 3 * N), *out = malloc(sizeof *out * 3 * N);
    assert_int_equal(ek_similarity(v->ctx, EK_METRIC_COSINE, q, 3, d, x, N, d, ref), EK_OK);
    for (size_t di = 0; di < v->n_dev; di++) {
        ek_gpu *g;
        assert_int_equal(open_dev(v, di, 256 << 10, NULL, NULL, &g), EK_OK);
        ek_gpu_matrix *m;
        assert_int_equal(ek_gpu_matrix_new(v->ctx, g, x, N, d, &m), EK_OK);
        assert_int_equal(ek_gpu_cosine(v->ctx, g, q, 3, m, out), EK_OK);
        ek_gpu_stats st;
        ek_gpu_get_stats(g, &st);
        assert_true(st.cpu_fallbacks == 1);
        assert_true(max_err(out, ref, 3 * N, 0) <= 1e-5);
        ek_gpu_matrix_free(m);
        ek_gpu_close(g);
    }
    free(x), free(q), free(ref), free(out);
}

/* ---- ek_gpu_embed ---------------------------------------------------------- */

static void test_embed_api(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    static const char *texts[] = {"Hello world", "a", "The quick brown fox jumps over the lazy dog, again and again.",
                                  "", "GPU or CPU: the same embedding", "x y z"};
    const size_t n = sizeof texts / sizeof texts[0];
    static const char *models[] = {"default", "tiny-mean"};
    for (int mi = 0; mi < 2; mi++) {
        ek_model *m = NULL;
        assert_int_equal(ek_model_load(v->ctx, ts_path(ts_models_dir(), models[mi]), &m), EK_OK);
        ek_embed_options o;
        ek_embed_options_init(&o);
        o.normalize = 1;
        int dim = ek_embed_dim(m, &o);
        float *ref = malloc(sizeof *ref * n * dim), *out = malloc(sizeof *out * n * dim);
        int32_t tc_ref[6], tc[6];
        assert_int_equal(ek_embed(v->ctx, m, texts, NULL, n, &o, ref, tc_ref), EK_OK);
        for (size_t di = 0; di < v->n_dev; di++) {
            ek_gpu *g;
            assert_int_equal(open_dev(v, di, 0, NULL, NULL, &g), EK_OK);
            assert_int_equal(ek_gpu_embed(v->ctx, g, m, texts, NULL, n, &o, out, tc), EK_OK);
            compare_embeddings(out, ref, n, (size_t)dim, models[mi]);
            assert_memory_equal(tc, tc_ref, sizeof tc);
            ek_gpu_stats st;
            ek_gpu_get_stats(g, &st);
            assert_int_equal(st.cpu_fallbacks, 0);
            ek_gpu_close(g);
            /* Nothing fits: the call runs on the CPU, counted, same result. */
            assert_int_equal(open_dev(v, di, 16 << 10, NULL, NULL, &g), EK_OK);
            assert_int_equal(ek_gpu_embed(v->ctx, g, m, texts, NULL, n, &o, out, tc), EK_OK);
            assert_memory_equal(out, ref, sizeof *out * n * dim);
            ek_gpu_get_stats(g, &st);
            assert_int_equal(st.cpu_fallbacks, 1);
            ek_gpu_close(g);
        }
        free(ref), free(out);
        ek_model_free(m);
    }
}

/* ---- cache, no runtime ----------------------------------------------------- */

static void test_kernel_cache(void **state) {
    env *v = *state;
    NEED_DEVICE(v);
    ek_gpu *g;
    ek_gpu_stats st;
    assert_int_equal(open_dev(v, 0, 0, NULL, NULL, &g), EK_OK);
    ek_gpu_close(g);
    assert_int_equal(open_dev(v, 0, 0, NULL, NULL, &g), EK_OK); /* the cache is warm by now */
    ek_gpu_get_stats(g, &st);
    assert_int_equal(st.kernel_cache_hits, 1);
    ek_gpu_close(g);
}

static void test_bad_spec(void **state) {
    env *v = *state;
    ek_gpu *g = NULL;
    ek_gpu_options o;
    ek_gpu_options_init(&o);
    o.device = "opencl:x";
    ek_status s = ek_gpu_open(v->ctx, &o, &g);
    /* A malformed spec is an argument error only when OpenCL is present to
     * be asked at all; the parse happens first either way. */
    assert_int_equal(s, EK_ERR_INVALID_ARG);
    o.device = "opencl:99:0";
    s = ek_gpu_open(v->ctx, &o, &g);
    assert_int_equal(s, EK_ERR_UNSUPPORTED);
    assert_null(g);
}

static void test_no_runtime(void **state) {
    (void)state;
    if (getenv("EK_GPU_TEST_CHILD")) skip(); /* the child itself */
    /* The whole suite again, with an ICD loader that finds no vendor and
     * with no loadable libOpenCL: every GPU test must skip, nothing fail. */
    char *dir = ts_mkdtemp(), cmd[2048], *out = NULL;
    char empty[512];
    snprintf(empty, sizeof empty, "%s", dir);
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(cmd, sizeof cmd, "EK_GPU_TEST_CHILD=1 OCL_ICD_VENDORS=%s OCL_ICD_FILENAMES= %s 2>&1", empty, self);
    int rc = ts_run(cmd, &out, NULL);
    if (rc != 0 || !strstr(out, "no OpenCL device")) fail_msg("no-ICD child: rc %d\n%s", rc, out ? out : "");
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd, "EK_GPU_TEST_CHILD=1 EK_OPENCL_LIB=/nonexistent/libOpenCL.so.1 %s 2>&1", self);
    rc = ts_run(cmd, &out, NULL);
    if (rc != 0 || !strstr(out, "no OpenCL device")) fail_msg("no-libOpenCL child: rc %d\n%s", rc, out ? out : "");
    free(out);
    ts_rm_rf(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),           cmocka_unit_test(test_layernorm_embed),
        cmocka_unit_test(test_bias_gelu),      cmocka_unit_test(test_attention),
        cmocka_unit_test(test_pool_l2),        cmocka_unit_test(test_cosine_topk),
        cmocka_unit_test(test_model_parity),   cmocka_unit_test(test_pressure),
        cmocka_unit_test(test_pressure_cosine), cmocka_unit_test(test_embed_api),
        cmocka_unit_test(test_kernel_cache),
        cmocka_unit_test(test_bad_spec),       cmocka_unit_test(test_no_runtime),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
