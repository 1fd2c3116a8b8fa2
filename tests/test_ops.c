/* tests/test_ops.c — the ops (ops.h), the attention kernel and the GEMM
 * wrappers against straightforward double-precision references on random
 * inputs, including odd sizes (1, 7, 33, 385). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "compute/attention.h"
#include "compute/cpu.h"
#include "compute/gemm.h"
#include "compute/lowp.h"
#include "compute/matmul.h"
#include "compute/vmath.h"
#include "embedkit.h"
#include "ops/ops.h"

static const int SIZES[] = {1, 7, 33, 385};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

/* Deterministic uniform floats in [lo, hi). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(float lo, float hi) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(rng_state >> 11) / 9007199254740992.0;
    return (float)(lo + (hi - lo) * u);
}
static float *rand_vec(size_t n, float lo, float hi) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = frand(lo, hi);
    return v;
}

/* |got - want| <= atol + rtol |want| for every element. */
static void expect_close(const float *got, const double *want, size_t n,
                         double atol, double rtol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i])))
            fail_msg("%s: element %zu: got %.9g want %.9g (err %.3g)", what, i,
                     (double)got[i], want[i], err);
    }
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* ---- element-wise and row ops ------------------------------------------- */

static void test_layernorm(void **state) {
    (void)state;
    const int rows = 3;
    for (int si = 0; si < NSIZES; si++) {
        int n = SIZES[si];
        for (int with_res = 0; with_res < 2; with_res++) {
            float *x = rand_vec((size_t)rows * n, -3, 5); /* mean far from 0 */
            float *res = rand_vec((size_t)rows * n, -1, 1);
            float *g = rand_vec(n, 0.5f, 1.5f), *b = rand_vec(n, -0.5f, 0.5f);
            double *want = malloc(sizeof(double) * rows * n);
            for (int r = 0; r < rows; r++) {
                double m = 0, v = 0;
                double *t = want + (size_t)r * n;
                for (int i = 0; i < n; i++) {
                    t[i] = (double)x[r * n + i] + (with_res ? res[r * n + i] : 0.0);
                    m += t[i];
                }
                m /= n;
                for (int i = 0; i < n; i++) v += (t[i] - m) * (t[i] - m);
                v /= n;
                for (int i = 0; i < n; i++)
                    t[i] = (t[i] - m) / sqrt(v + 1e-12) * g[i] + b[i];
            }
            ek_op_add_layernorm(x, with_res ? res : NULL, rows, n, g, b, 1e-12f);
            expect_close(x, want, (size_t)rows * n, 2e-5, 1e-5, "layernorm");
            free(x), free(res), free(g), free(b), free(want);
        }
    }
}

static void test_bias_act(void **state) {
    (void)state;
    for (int si = 0; si < NSIZES; si++) {
        int n = SIZES[si], rows = 2;
        for (int gelu = 0; gelu < 2; gelu++) {
            float *x = rand_vec((size_t)rows * n, -6, 6), *bias = rand_vec(n, -1, 1);
            double *want = malloc(sizeof(double) * rows * n);
            for (int i = 0; i < rows * n; i++) {
                double v = (double)x[i] + bias[i % n];
                want[i] = gelu ? gelu_ref(v) : v;
            }
            ek_op_bias_act(x, bias, rows, n, gelu);
            expect_close(x, want, (size_t)rows * n, 1e-6, 1e-6, "bias_act");
            free(x), free(bias), free(want);
        }
    }
    assert_float_equal(ek_op_gelu(0.0f), 0.0f, 0.0f);
    assert_float_equal(ek_op_gelu(1.0f), 0.8413447460685429, 1e-7);
    assert_float_equal(ek_op_gelu(-10.0f), 0.0f, 1e-7);
}

static void test_vexpf(void **state) {
    (void)state;
    double worst = 0;
    for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
        double want = exp((double)x), got = ek_vexpf(x);
        double rel = fabs(got - want) / want;
        worst = rel > worst ? rel : worst;
    }
    if (worst > 3e-7) fail_msg("ek_vexpf worst relative error %.3g", worst);
    assert_float_equal(ek_vexpf(0.0f), 1.0f, 0.0f);
    /* Far below the clamp: tiny, finite, not NaN. */
    float t = ek_vexpf(-1e6f);
    assert_true(t >= 0.0f && t < 1e-37f);
}

static void test_softmax(void **state) {
    (void)state;
    for (int si = 0; si < NSIZES; si++) {
        int n = SIZES[si];
        float *x = rand_vec(n, -40, 40);
        double *want = malloc(sizeof(double) * n);
        double m = -INFINITY, s = 0;
        for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
        for (int i = 0; i < n; i++) s += want[i] = exp(x[i] - m);
        for (int i = 0; i < n; i++) want[i] /= s;
        ek_op_softmax(x, n);
        expect_close(x, want, n, 1e-9, 2e-6, "softmax");
        free(x), free(want);
    }
    float one[1] = {-1e30f};
    ek_op_softmax(one, 1);
    assert_float_equal(one[0], 1.0f, 0.0f);
}

static void test_dense(void **state) {
    (void)state;
    for (int si = 0; si < NSIZES; si++)
        for (int so = 0; so < NSIZES; so++)
            for (int act = 0; act <= 4; act++) {
                int in = SIZES[si], out = SIZES[so];
                float *w = rand_vec((size_t)out * in, -0.2f, 0.2f);
                float *b = rand_vec(out, -1, 1), *x = rand_vec(in, -2, 2);
                float *y = malloc(sizeof(float) * out);
                double *want = malloc(sizeof(double) * out);
                for (int o = 0; o < out; o++) {
                    double v = b[o];
                    for (int i = 0; i < in; i++) v += (double)w[o * in + i] * x[i];
                    want[o] = act == 1 ? tanh(v) : act == 2 ? (v > 0 ? v : 0)
                              : act == 3 ? gelu_ref(v) : act == 4 ? 1 / (1 + exp(-v))
                                                                  : v;
                }
                ek_op_dense(w, b, out, in, act, x, y);
                expect_close(y, want, out, 2e-6, 2e-6, "dense");
                free(w), free(b), free(x), free(y), free(want);
            }
}

static void test_l2_normalize(void **state) {
    (void)state;
    for (int si = 0; si < NSIZES; si++) {
        int n = SIZES[si];
        float *v = rand_vec(n, -3, 3);
        double *want = malloc(sizeof(double) * n), ss = 0;
        for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
        for (int i = 0; i < n; i++) want[i] = v[i] / sqrt(ss);
        ek_op_l2_normalize(v, n);
        expect_close(v, want, n, 1e-7, 1e-6, "l2_normalize");
        free(v), free(want);
    }
    float z[7] = {0};
    ek_op_l2_normalize(z, 7);
    for (int i = 0; i < 7; i++) assert_true(z[i] == 0.0f && !signbit(z[i]));
    /* Below the 1e-12 floor the vector is divided by 1e-12, not its norm. */
    float tiny[2] = {1e-14f, 0.0f};
    ek_op_l2_normalize(tiny, 2);
    assert_float_equal(tiny[0], 0.01f, 1e-8);
}

/* ---- pooling ------------------------------------------------------------ */

/* sentence-transformers' Pooling.forward for one sequence, with the mask
 * spelled out over all L positions as the PyTorch code has it. */
static void pool_ref(int mode, const float *h, int L, int H, int from,
                     const float *wts, double *out) {
    for (int c = 0; c < H; c++) {
        double sum = 0, msum = 0, mx = -INFINITY;
        for (int t = 0; t < L; t++) {
            double mask = t >= from ? 1.0 : 0.0, v = h[t * H + c];
            double w = mode == EK_POOL_WEIGHTED_MEAN ? (t + 1) * mask
                       : mode == EK_POOL_ATTENTION   ? wts[t] * mask
                                                     : mask;
            sum += v * w;
            msum += w;
            double mv = mask ? v : -1e9;
            mx = mv > mx ? mv : mx;
        }
        switch (mode) {
        /* sentence-transformers 6.2: the first token after the masked
         * prompt (checked against it by test_parity's tiny-prompt-multi). */
        case EK_POOL_CLS: out[c] = h[(from < L ? from : L - 1) * H + c]; break;
        case EK_POOL_LAST_TOKEN: out[c] = h[(L - 1) * H + c]; break;
        case EK_POOL_MAX: out[c] = mx; break;
        case EK_POOL_MEAN_SQRT_LEN: out[c] = sum / sqrt(msum > 1e-9 ? msum : 1e-9); break;
        case EK_POOL_ATTENTION: out[c] = msum != 0 ? sum / msum : 0; break;
        default: out[c] = sum / (msum > 1e-9 ? msum : 1e-9); break;
        }
    }
}

static void test_pool(void **state) {
    (void)state;
    const int Ls[] = {1, 7, 33};
    for (int mode = 0; mode < EK_POOL_COUNT; mode++)
        for (int li = 0; li < 3; li++)
            for (int si = 0; si < NSIZES; si++) {
                int L = Ls[li], H = SIZES[si];
                const int froms[] = {0, 2, L};
                for (int fi = 0; fi < 3; fi++) {
                    int from = froms[fi] > L ? L : froms[fi];
                    float *h = rand_vec((size_t)L * H, -2, 2);
                    float *w = rand_vec(L, 0.0f, 1.0f);
                    float *out = malloc(sizeof(float) * H);
                    double *want = malloc(sizeof(double) * H);
                    pool_ref(mode, h, L, H, from, w, want);
                    ek_op_pool(mode, h, L, H, from, w, out);
                    expect_close(out, want, H, 1e-6, 1e-6, ek_pooling_name(mode));
                    free(h), free(w), free(out), free(want);
                }
            }
}

/* ---- attention kernel --------------------------------------------------- */

static void test_attention_head(void **state) {
    (void)state;
    const int Ls[] = {1, 7, 33, 130}, ds[] = {8, 20, 32, 64};
    for (int li = 0; li < 4; li++)
        for (int di = 0; di < 4; di++) {
            int L = Ls[li], d = ds[di], heads = 3, H = heads * d, ld = 3 * H;
            float *qkv = rand_vec((size_t)L * ld, -1.5f, 1.5f);
            float *out = calloc((size_t)L * H, sizeof(float));
            float *p0 = malloc(sizeof(float) * L);
            float *ws = aligned_alloc(64, (ek_attention_scratch(L, d) * 4 + 63) / 64 * 64);
            double *want = malloc(sizeof(double) * L * d), *pw = malloc(sizeof(double) * L);
            double *wp0 = malloc(sizeof(double) * L);
            int h = 1;
            const float *q = qkv + h * d;
            float scale = 1.0f / sqrtf((float)d);
            for (int i = 0; i < L; i++) {
                double m = -INFINITY, s = 0;
                for (int j = 0; j < L; j++) {
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += (double)q[i * ld + c] * q[j * ld + H + c];
                    pw[j] = dot / sqrt((double)d);
                    m = pw[j] > m ? pw[j] : m;
                }
                for (int j = 0; j < L; j++) s += pw[j] = exp(pw[j] - m);
                for (int j = 0; j < L; j++) pw[j] /= s;
                if (i == 0) memcpy(wp0, pw, sizeof(double) * L);
                for (int c = 0; c < d; c++) {
                    double acc = 0;
                    for (int j = 0; j < L; j++) acc += pw[j] * q[j * ld + 2 * H + c];
                    want[i * d + c] = acc;
                }
            }
            /* The dispatched kernel (AVX-512 where available) and the
             * portable one. */
            for (int path = 0; path < 2; path++) {
                memset(out, 0, sizeof(float) * L * H);
                (path ? ek_attention_head_generic : ek_attention_head)(
                    q, ld, H, L, d, scale, out + h * d, H, p0, ws);
                for (int i = 0; i < L; i++)
                    expect_close(out + i * H + h * d, want + i * d, d, 2e-6, 1e-5,
                                 path ? "attention (generic)" : "attention");
                expect_close(p0, wp0, L, 1e-8, 1e-5, "attention p0");
                /* The other head's columns are untouched. */
                for (int i = 0; i < L; i++) {
                    for (int c = 0; c < d; c++) assert_true(out[i * H + c] == 0.0f);
                    for (int c = 2 * d; c < H; c++) assert_true(out[i * H + c] == 0.0f);
                }
            }
            /* The bf16 kernel (bf16 / int8 dtypes): Q, K, V and P rounded
             * to bf16 (relative 2^-9 each), so outputs within ~1e-2 of
             * values of size ~1; p0 is the f32 softmax of bf16 scores.
             * Other heads' columns untouched. */
            if (ek_cpu_detect() >= EK_ISA_AVX512_BF16) {
                memset(out, 0, sizeof(float) * L * H);
                ek_attention_head_lowp(EK_ISA_AVX512_BF16, q, ld, H, L, d, scale, out + h * d, H, p0, ws);
                double max_err = 0;
                for (int i = 0; i < L; i++)
                    for (int c = 0; c < d; c++) {
                        double e = fabs(out[i * H + h * d + c] - want[i * d + c]);
                        max_err = e > max_err ? e : max_err;
                        assert_true(out[i * H + c] == 0.0f);
                        assert_true(out[i * H + 2 * d + c] == 0.0f);
                    }
                for (int j = 0; j < L; j++) assert_true(fabs(p0[j] - wp0[j]) < 2e-2);
                if (max_err >= 2e-2) fail_msg("bf16 attention L=%d d=%d: max |error| %g", L, d, max_err);
            }
            free(qkv), free(out), free(p0), free(ws), free(want), free(pw), free(wp0);
        }
}

/* ---- GEMM --------------------------------------------------------------- */

static void gemm_ref(int M, int N, int K, const float *A, const float *B,
                     int bt, double *C) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[i * K + k] * (bt ? B[j * K + k] : B[k * N + j]);
            C[i * N + j] = s;
        }
}

static void test_gemm(void **state) {
    (void)state;
    for (int mi = 0; mi < NSIZES; mi++)
        for (int ni = 0; ni < 3; ni++)
            for (int ki = 0; ki < 3; ki++) {
                int M = SIZES[mi], N = SIZES[ni], K = SIZES[ki];
                float *A = rand_vec((size_t)M * K, -1, 1), *B = rand_vec((size_t)N * K, -1, 1);
                float *C = rand_vec((size_t)M * N, -1, 1);
                double *want = malloc(sizeof(double) * M * N);
                gemm_ref(M, N, K, A, B, 1, want);
                for (int i = 0; i < M * N; i++) want[i] = 0.5 * want[i] + 2.0 * C[i];
                ek_gemm_nt(M, N, K, 0.5f, A, K, B, K, 2.0f, C, N);
                expect_close(C, want, (size_t)M * N, 1e-5, 1e-5, "gemm_nt");
                gemm_ref(M, N, K, A, B, 0, want);
                ek_gemm_nn(M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
                expect_close(C, want, (size_t)M * N, 1e-5, 1e-5, "gemm_nn");
                free(A), free(B), free(C), free(want);
            }
}

static void test_dense_plan(void **state) {
    (void)state;
    ek_compute comp;
    assert_int_equal(ek_compute_open(&comp), 0);
    const int Ms[] = {1, 7, 33, 100};
    for (unsigned flags = 0; flags < 8; flags++)
        for (int mi = 0; mi < 4; mi++) {
            int M = Ms[mi], N = 37, K = 65;
            float *A = rand_vec((size_t)M * K, -1, 1), *W = rand_vec((size_t)N * K, -1, 1);
            float *b = rand_vec(N, -1, 1), *C = rand_vec((size_t)M * N, -1, 1);
            double *want = malloc(sizeof(double) * M * N);
            gemm_ref(M, N, K, A, W, 1, want);
            for (int i = 0; i < M * N; i++) {
                double v = want[i] + ((flags & EK_DENSE_BIAS) ? b[i % N] : 0.0);
                if (flags & EK_DENSE_ACCUMULATE) v += C[i];
                want[i] = (flags & EK_DENSE_GELU) ? gelu_ref(v) : v;
            }
            ek_dense_plan p;
            assert_int_equal(ek_dense_plan_init(&p, &comp, M, N, K, K, N, flags), 0);
            assert_int_equal(ek_dense_plan_run(&p, A, W, b, C), 0);
            ek_dense_plan_free(&p);
            expect_close(C, want, (size_t)M * N, 2e-5, 2e-5, "dense plan");

            /* Row invariance: rows 3.. of this product, computed alone, are
             * bitwise the same as within the larger M. */
            if (M > 3 && !(flags & EK_DENSE_ACCUMULATE)) {
                float *C2 = malloc(sizeof(float) * (M - 3) * N);
                assert_int_equal(ek_dense_plan_init(&p, &comp, M - 3, N, K, K, N, flags), 0);
                assert_int_equal(ek_dense_plan_run(&p, A + 3 * K, W, b, C2), 0);
                ek_dense_plan_free(&p);
                assert_memory_equal(C2, C + 3 * N, sizeof(float) * (M - 3) * N);
                free(C2);
            }
            free(A), free(W), free(b), free(C), free(want);
        }
    /* Strided operands: lda > K, ldc > N. */
    {
        int M = 5, N = 9, K = 11, lda = 16, ldc = 13;
        float *A = rand_vec((size_t)M * lda, -1, 1), *W = rand_vec((size_t)N * K, -1, 1);
        float *C = calloc((size_t)M * ldc, sizeof(float));
        ek_dense_plan p;
        assert_int_equal(ek_dense_plan_init(&p, &comp, M, N, K, lda, ldc, 0), 0);
        assert_int_equal(ek_dense_plan_run(&p, A, W, NULL, C), 0);
        ek_dense_plan_free(&p);
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)A[i * lda + k] * W[j * K + k];
                assert_float_equal(C[i * ldc + j], s, 1e-5);
            }
            for (int j = N; j < ldc; j++) assert_true(C[i * ldc + j] == 0.0f);
        }
        free(A), free(W), free(C);
    }
    ek_dense_plan p;
    assert_int_equal(ek_dense_plan_init(&p, &comp, 0, 4, 4, 4, 4, 0), -1);
    ek_compute_close(&comp);
}

/* Packed matmuls in each type: against a double reference (f32 tight,
 * bf16 / int8 to their precision), and row invariance: rows computed with
 * M = 16 are bitwise those of the same rows inside M = 256 (and, for int8,
 * exact integer sums, checked against an integer reference). */
static void test_packed_matmul(void **state) {
    (void)state;
    if (ek_cpu_detect() < EK_ISA_AVX512_BF16) skip();
    ek_compute comp;
    assert_int_equal(ek_compute_open(&comp), 0);
    const int N = 80, K = 96, MB = 256, MS = 16;
    float *W = rand_vec((size_t)N * K, -1, 1), *b = rand_vec(N, -1, 1);
    float *A = rand_vec((size_t)MB * K, -1, 1);
    static const ek_mm_type types[] = {EK_MM_F32, EK_MM_BF16, EK_MM_S8};
    for (int ti = 0; ti < 3; ti++) {
        ek_mm_type t = types[ti];
        ek_mm_weights pw;
        assert_int_equal(ek_mm_weights_pack(&pw, comp.engine, t, W, b, N, K), 0);
        ek_mm_type dst = t == EK_MM_S8 ? EK_MM_S32 : EK_MM_F32;
        unsigned flags = t == EK_MM_S8 ? 0 : EK_MM_BIAS | EK_MM_GELU;
        ek_mm_prim big, small;
        ek_mm_io iob, ios;
        assert_int_equal(ek_mm_prim_init(&big, comp.engine, MB, &pw, dst, flags), 0);
        assert_int_equal(ek_mm_prim_init(&small, comp.engine, MS, &pw, dst, flags), 0);
        assert_int_equal(ek_mm_io_init(&iob, comp.engine, &big), 0);
        assert_int_equal(ek_mm_io_init(&ios, comp.engine, &small), 0);
        /* Sources in the type: f32 as is, bf16 rounded, int8 quantized per row. */
        size_t es = ek_mm_type_size(t == EK_MM_S8 ? EK_MM_U8 : t);
        unsigned char *src = malloc((size_t)MB * K * es);
        float *rs = malloc(sizeof(float) * MB);
        ek_lowp_kernels k = ek_lowp_select(ek_cpu_detect());
        if (t == EK_MM_F32) memcpy(src, A, sizeof(float) * MB * K);
        if (t == EK_MM_BF16) k.to_bf16(A, MB, K, K, (uint16_t *)src);
        if (t == EK_MM_S8) k.quant_u8(A, MB, K, K, src, rs);
        float *Cb = calloc((size_t)MB * N, 4), *Cs = calloc((size_t)MS * N, 4);
        assert_int_equal(ek_mm_run(&big, &iob, comp.stream, src, &pw, Cb), 0);
        const int r0 = 48; /* rows r0 .. r0 + 15 alone */
        assert_int_equal(ek_mm_run(&small, &ios, comp.stream, src + (size_t)r0 * K * es, &pw, Cs), 0);
        assert_memory_equal(Cs, Cb + (size_t)r0 * N, sizeof(float) * MS * N);
        double max_err = 0;
        for (int i = 0; i < MB; i++)
            for (int j = 0; j < N; j++) {
                double got;
                if (t == EK_MM_S8) {
                    const int32_t *acc = (const int32_t *)Cb;
                    got = (double)(acc[(size_t)i * N + j] - 128 * pw.colsum[j]) * rs[i] * pw.scale[j] + b[j];
                } else {
                    got = Cb[(size_t)i * N + j];
                }
                double s = b[j];
                for (int q = 0; q < K; q++) s += (double)A[(size_t)i * K + q] * W[(size_t)j * K + q];
                double want = t == EK_MM_S8 ? s : gelu_ref(s);
                double err = fabs(got - want);
                if (err > max_err) max_err = err;
            }
        /* Sums of K = 96 products of U(-1, 1) values: bf16 rounds each
         * operand to 2^-9 relative, int8 to 1/254 of the row / channel
         * maximum (so its errors are larger). */
        double tol = t == EK_MM_F32 ? 1e-4 : t == EK_MM_BF16 ? 0.08 : 0.25;
        print_message("packed matmul type %d: max |error| %.2e (tolerance %.0e)\n", (int)t, max_err, tol);
        assert_true(max_err < tol);
        free(src), free(rs), free(Cb), free(Cs);
        ek_mm_io_free(&iob), ek_mm_io_free(&ios);
        ek_mm_prim_free(&big), ek_mm_prim_free(&small);
        ek_mm_weights_free(&pw);
    }
    free(W), free(b), free(A);
    ek_compute_close(&comp);
}

/* The low-precision helpers: bf16 rounding to nearest even, per-row
 * quantization, the int8 epilogue's GELU against erf, at every ISA level
 * this CPU offers (all levels give the same bits for conversions and
 * quantization; GELU agrees to 1e-6). */
static void test_lowp(void **state) {
    (void)state;
    const float x[6] = {1.0f, 1.00390625f, 1.01171875f, -2.5f, 0.0f, 3.0e-3f};
    for (int isa = EK_ISA_GENERIC; isa <= (int)ek_cpu_detect(); isa++) {
        ek_lowp_kernels k = ek_lowp_select((ek_isa)isa);
        uint16_t y[6];
        k.to_bf16(x, 1, 6, 6, y);
        /* 1 + 2^-8 is a tie: even mantissa (1.0); 1 + 3 * 2^-8 rounds up. */
        assert_int_equal(y[0], 0x3f80);
        assert_int_equal(y[1], 0x3f80);
        assert_int_equal(y[2], 0x3f82);
        assert_int_equal(y[3], 0xc020);
        assert_int_equal(y[4], 0);
        uint8_t q[6];
        float rs;
        k.quant_u8(x, 1, 6, 6, q, &rs);
        assert_float_equal(rs, 2.5f / 127.0f, 1e-9);
        assert_int_equal(q[3], 128 - 127);
        assert_int_equal(q[4], 128);
        assert_int_equal(q[0], 128 + 51); /* 1 / (2.5 / 127) = 50.8 */
        float zero[3] = {0, 0, 0};
        k.quant_u8(zero, 1, 3, 3, q, &rs);
        assert_float_equal(rs, 1.0f, 0);
        assert_int_equal(q[0], 128);
    }
    double max_err = 0;
    for (float v = -8.0f; v <= 8.0f; v += 0.01f) {
        double err = fabs(ek_lowp_gelu(v) - gelu_ref(v));
        if (err > max_err) max_err = err;
    }
    print_message("int8 epilogue GELU: max |error| vs erf %.2e\n", max_err);
    assert_true(max_err < 1e-6 * 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_matmul), cmocka_unit_test(test_lowp),
        cmocka_unit_test(test_layernorm),   cmocka_unit_test(test_bias_act),
        cmocka_unit_test(test_vexpf),       cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_dense),       cmocka_unit_test(test_l2_normalize),
        cmocka_unit_test(test_pool),        cmocka_unit_test(test_attention_head),
        cmocka_unit_test(test_gemm),        cmocka_unit_test(test_dense_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
