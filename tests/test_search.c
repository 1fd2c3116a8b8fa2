/* tests/test_search.c — similarity and search (include/embedkit_search.h,
 * src/search/): every SIMD kernel level against the scalar reference on
 * random sizes (odd dimensions included), top-k against a sort-based
 * reference with ties, metrics against double-precision references, zero
 * vectors, NaN / Inf rows and dimension mismatches refused with the row in
 * the message, sentence-transformers' int8 calibration and binary packing
 * (expected values from its quantize_embeddings, and by hand), recall of
 * binary + rescoring on clustered data, Matryoshka, EK_ISA, and the CLI
 * (`ek quantize` then `ek search --json`; `ek search --model`).  No timings
 * are asserted. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "embedkit.h"
#include "embedkit_search.h"
#include "search/kernels.h"
#include "search/quant.h"
#include "search/topk.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float unif(void) { return (float)((double)(rnd() >> 11) * 0x1p-53 * 2.0 - 1.0); }
static size_t below(size_t n) { return (size_t)(rnd() % n); }

static float *rand_matrix(size_t n, size_t d) {
    float *x = malloc((n * d + 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n * d; i++) x[i] = unif();
    return x;
}

/* Hits compare by field (the struct has padding). */
static void assert_hits_equal(const ek_hit *a, const ek_hit *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].index, b[i].index);
        assert_true(a[i].score == b[i].score);
    }
}

static ek_ctx *new_ctx(int threads) {
    ek_ctx *c = NULL;
    assert_int_equal(ek_ctx_new(&c), EK_OK);
    assert_int_equal(ek_ctx_set_threads(c, threads), EK_OK);
    return c;
}

/* Reference metric in double; cosine of a zero vector is 0. */
static double ref_metric(ek_metric m, const float *a, const float *b, size_t d) {
    double dot = 0, na = 0, nb = 0, l2 = 0;
    for (size_t j = 0; j < d; j++) {
        dot += (double)a[j] * b[j];
        na += (double)a[j] * a[j];
        nb += (double)b[j] * b[j];
        l2 += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    }
    if (m == EK_METRIC_DOT) return dot;
    if (m == EK_METRIC_L2) return l2;
    return na > 0 && nb > 0 ? dot / sqrt(na * nb) : 0.0;
}

static const size_t DIMS[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 383, 384, 385};
#define NDIMS (sizeof DIMS / sizeof DIMS[0])

/* ---- kernels: every level against scalar -------------------------------- */

static void test_kernels_match_scalar(void **state) {
    (void)state;
    const ek_kern *ref = &ek_kern_scalar;
    int cpu = ek_isa_cpu_level();
    int tested = 0;
    for (int level = EK_ISA_AVX2; level <= cpu; level++) {
        const ek_kern *k = ek_kern_for_level(level);
        assert_int_equal(k->level, level);
        tested++;
        for (size_t di = 0; di < NDIMS; di++) {
            size_t d = DIMS[di], n = 1 + below(37), stride = d + below(3);
            float *q = rand_matrix(1, d), *x = rand_matrix(n, stride);
            float *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2);
            uint16_t *h = malloc(n * stride * sizeof *h), *bf = malloc(n * stride * sizeof *bf);
            for (size_t i = 0; i < n * stride; i++) {
                h[i] = ek_f32_to_f16(x[i]);
                bf[i] = ek_f32_to_bf16(x[i]);
            }
            double bound = 0; /* rounding scale: sum |q||x| <= d */
            for (size_t j = 0; j < d; j++) bound += fabsf(q[j]);
            double tol = 4e-6 * (bound + 1);
#define CMP(CALL)                                                              \
    do {                                                                       \
        ref->CALL;                                                             \
        float *t_ = o1;                                                        \
        o1 = o2;                                                               \
        o2 = t_;                                                               \
        k->CALL;                                                               \
        for (size_t i = 0; i < n; i++)                                         \
            if (fabs((double)o1[i] - o2[i]) > tol)                             \
                fail_msg("%s %s d=%zu n=%zu row %zu: %g vs scalar %g", k->name, #CALL, d, n, i, o1[i], o2[i]); \
    } while (0)
            CMP(dot_f32(q, x, stride, n, d, o1));
            CMP(dot_f16(q, h, stride, n, d, o1));
            CMP(dot_bf16(q, bf, stride, n, d, o1));
            tol *= 4;
            CMP(l2_f32(q, x, stride, n, d, o1));
#undef CMP
            /* conversions are exact */
            float *c1 = malloc(n * stride * sizeof *c1), *c2 = malloc(n * stride * sizeof *c2);
            ref->f16_to_f32(h, n * stride, c1);
            k->f16_to_f32(h, n * stride, c2);
            assert_memory_equal(c1, c2, n * stride * sizeof *c1);
            ref->bf16_to_f32(bf, n * stride, c1);
            k->bf16_to_f32(bf, n * stride, c2);
            assert_memory_equal(c1, c2, n * stride * sizeof *c1);
            /* first_above: same answer for every floor */
            for (int t = 0; t < 5; t++) {
                float floor = unif();
                assert_int_equal(ref->first_above(x, n * stride, floor), k->first_above(x, n * stride, floor));
            }
            assert_true(fabsf(ref->stream_read(x, n * stride) - k->stream_read(x, n * stride)) < 1e-3f);
            /* integer scores to keys: same operations, same floats */
            int32_t *iv = malloc(n * stride * sizeof *iv);
            for (size_t i = 0; i < n * stride; i++) iv[i] = (int32_t)(rnd() % 200001) - 100000;
            float a = unif(), cc = unif();
            ref->i32_to_key(iv, n * stride, a, cc, c1);
            k->i32_to_key(iv, n * stride, a, cc, c2);
            assert_memory_equal(c1, c2, n * stride * sizeof *c1);
            free(iv);
            free(c1);
            free(c2);
            free(q);
            free(x);
            free(o1);
            free(o2);
            free(h);
            free(bf);
        }
        /* int8 and binary blocked kernels are integer: exact equality */
        for (size_t di = 0; di < NDIMS; di++) {
            size_t d = DIMS[di], n = 1 + below(70), nq = 1 + below(9);
            size_t G = (d + 3) / 4, nblk = (n + 15) / 16, W = (d + 63) / 64, nbb = (n + 7) / 8;
            int8_t *codes = malloc(n * d), *blk = malloc(nblk * G * 64), *r8 = calloc(nq * G * 4, 1);
            for (size_t i = 0; i < n * d; i++) codes[i] = (int8_t)(rnd() & 0xff); /* includes -128 */
            for (size_t i = 0; i < nq; i++)
                for (size_t j = 0; j < d; j++) r8[i * G * 4 + j] = (int8_t)((int)below(255) - 127);
            ek_q_block_int8(codes, n, d, d, blk);
            size_t ldo = nblk * 16 + 3;
            int32_t *i1 = calloc(nq * ldo, 4), *i2 = calloc(nq * ldo, 4);
            ref->dot_i8_blk(r8, nq, blk, nblk, G, i1, ldo);
            k->dot_i8_blk(r8, nq, blk, nblk, G, i2, ldo);
            for (size_t qi = 0; qi < nq; qi++)
                for (size_t i = 0; i < n; i++) {
                    int32_t want = 0;
                    for (size_t j = 0; j < d; j++) want += (int32_t)codes[i * d + j] * r8[qi * G * 4 + j];
                    assert_int_equal(i1[qi * ldo + i], want);
                    assert_int_equal(i2[qi * ldo + i], want);
                }
            size_t nb = (d + 7) / 8;
            uint8_t *packed = malloc(n * nb), *qp = malloc(nq * nb);
            for (size_t i = 0; i < n * nb; i++) packed[i] = (uint8_t)rnd();
            for (size_t i = 0; i < nq * nb; i++) qp[i] = (uint8_t)rnd();
            uint64_t *bb = malloc(nbb * W * 8 * sizeof *bb), *qw = malloc(nq * W * sizeof *qw);
            ek_q_block_binary(packed, n, nb, d, bb);
            for (size_t qi = 0; qi < nq; qi++) ek_q_words(qp + qi * nb, d, qw + qi * W);
            ldo = nbb * 8 + 1;
            int32_t *h1 = calloc(nq * ldo, 4), *h2 = calloc(nq * ldo, 4);
            ref->hamming_blk(qw, nq, bb, nbb, W, h1, ldo);
            k->hamming_blk(qw, nq, bb, nbb, W, h2, ldo);
            for (size_t qi = 0; qi < nq; qi++)
                for (size_t i = 0; i < n; i++) {
                    int want = 0; /* bit by bit over the first d dims */
                    for (size_t j = 0; j < d; j++)
                        want += ((packed[i * nb + j / 8] ^ qp[qi * nb + j / 8]) >> (7 - j % 8)) & 1;
                    assert_int_equal(h1[qi * ldo + i], want);
                    assert_int_equal(h2[qi * ldo + i], want);
                }
            free(codes);
            free(blk);
            free(r8);
            free(i1);
            free(i2);
            free(packed);
            free(qp);
            free(bb);
            free(qw);
            free(h1);
            free(h2);
        }
    }
    if (!tested) print_message("note: this CPU runs only the scalar kernels\n");
}

static void test_half_conversions(void **state) {
    (void)state;
    assert_true(ek_f16_to_f32(0x3c00) == 1.0f);
    assert_true(ek_f16_to_f32(0xc000) == -2.0f);
    assert_true(ek_f16_to_f32(0x0001) == 0x1p-24f); /* smallest subnormal */
    assert_true(ek_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(ek_f16_to_f32(0x7c00)));
    assert_int_equal(ek_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(ek_f32_to_f16(65520.0f), 0x7c00);  /* rounds to inf */
    assert_int_equal(ek_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
    assert_int_equal(ek_f32_to_bf16(1.0f), 0x3f80);
    assert_true(ek_bf16_to_f32(0x3f80) == 1.0f);
    /* every finite half survives half -> float -> half */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        assert_int_equal(ek_f32_to_f16(ek_f16_to_f32((uint16_t)h)), h);
    }
}

/* ---- top-k -------------------------------------------------------------- */

typedef struct kv {
    float key;
    int64_t idx;
} kv;

static int kv_cmp(const void *a, const void *b) {
    const kv *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void test_topk_matches_sort_with_ties(void **state) {
    (void)state;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + below(300), k = 1 + below(n);
        float *key = malloc(n * sizeof *key);
        kv *ref = malloc(n * sizeof *ref);
        int levels = trial % 3 == 0 ? 3 : 1000; /* many ties, or few */
        for (size_t i = 0; i < n; i++) {
            key[i] = (float)below((size_t)levels);
            ref[i] = (kv){key[i], (int64_t)i};
        }
        qsort(ref, n, sizeof *ref, kv_cmp);
        float *hk = malloc(k * sizeof *hk);
        int64_t *hi = malloc(k * sizeof *hi);
        ek_topk t;
        ek_topk_init(&t, hk, hi, k);
        /* the scan in two chunks, as tiles arrive */
        size_t cut = below(n + 1);
        ek_topk_scan(&t, key, cut, 0, ek_kern_scalar.first_above);
        ek_topk_scan(&t, key + cut, n - cut, (int64_t)cut, ek_kern_for_level(ek_isa_cpu_level())->first_above);
        ek_topk_sort(&t);
        assert_int_equal(t.n, k);
        for (size_t j = 0; j < k; j++) {
            assert_true(hk[j] == ref[j].key);
            assert_int_equal(hi[j], ref[j].idx);
        }
        free(key);
        free(ref);
        free(hk);
        free(hi);
    }
}

/* ---- similarity --------------------------------------------------------- */

static void test_similarity_metrics(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    const size_t shapes[][3] = {{1, 1, 7}, {1, 50, 33}, {3, 5, 384}, {9, 12, 17}, {20, 40, 100}};
    for (size_t s = 0; s < 5; s++) {
        size_t na = shapes[s][0], nb = shapes[s][1], d = shapes[s][2];
        float *a = rand_matrix(na, d), *b = rand_matrix(nb, d), *o = malloc(na * nb * sizeof *o);
        memset(b, 0, d * sizeof *b); /* b row 0 is a zero vector */
        for (int m = 0; m < 3; m++) {
            assert_int_equal(ek_similarity(c, (ek_metric)m, a, na, d, b, nb, d, o), EK_OK);
            for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++) {
                    double want = ref_metric((ek_metric)m, a + i * d, b + j * d, d);
                    double tol = 1e-5 * (m == EK_METRIC_COSINE ? 1 : (double)d);
                    if (isnan(o[i * nb + j]) || fabs(o[i * nb + j] - want) > tol)
                        fail_msg("%s %zux%zu d=%zu [%zu,%zu]: %g want %g", ek_metric_name((ek_metric)m), na, nb, d,
                                 i, j, o[i * nb + j], want);
                }
            if (m == EK_METRIC_COSINE)
                for (size_t i = 0; i < na; i++) assert_true(o[i * nb] == 0.0f); /* zero vector: 0, not NaN */
        }
        free(a);
        free(b);
        free(o);
    }
    /* both zero: cosine 0 */
    float z[4] = {0}, out = 1;
    assert_int_equal(ek_similarity(c, EK_METRIC_COSINE, z, 1, 4, z, 1, 4, &out), EK_OK);
    assert_true(out == 0.0f);
    ek_ctx_free(c);
}

static void test_similarity_errors(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(1);
    float *a = rand_matrix(5, 8), *b = rand_matrix(4, 8), o[20];
    assert_int_equal(ek_similarity(c, EK_METRIC_DOT, a, 5, 8, b, 4, 7, o), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "dimension mismatch"));
    b[3 * 8 + 2] = NAN;
    assert_int_equal(ek_similarity(c, EK_METRIC_DOT, a, 5, 8, b, 4, 8, o), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "b row 3"));
    b[3 * 8 + 2] = 0;
    a[4 * 8] = INFINITY;
    assert_int_equal(ek_similarity(c, EK_METRIC_COSINE, a, 5, 8, b, 4, 8, o), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "a row 4"));
    free(a);
    free(b);
    ek_ctx_free(c);
}

/* ---- exact search ------------------------------------------------------- */

/* Checks hits against the double-precision reference: each reported score
 * is the true score of its row, scores are in order, and the rows are the
 * true top-k (wherever the reference is not a near-tie). */
static void check_hits(ek_metric m, const float *x, size_t n, size_t d, const float *q, const ek_hit *h, size_t k,
                       double tol, const char *what) {
    kv *ref = malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++) {
        double s = ref_metric(m, q, x + i * d, d);
        ref[i] = (kv){(float)(m == EK_METRIC_L2 ? -s : s), (int64_t)i};
    }
    qsort(ref, n, sizeof *ref, kv_cmp);
    for (size_t j = 0; j < k; j++) {
        double truth = ref_metric(m, q, x + (size_t)h[j].index * d, d);
        if (fabs(truth - h[j].score) > tol)
            fail_msg("%s rank %zu row %lld: score %g, true %g", what, j, (long long)h[j].index, h[j].score, truth);
        double want = m == EK_METRIC_L2 ? -ref[j].key : ref[j].key;
        if (fabs(want - h[j].score) > tol) fail_msg("%s rank %zu: score %g, reference %g", what, j, h[j].score, want);
        if (j) {
            int ordered = m == EK_METRIC_L2 ? h[j].score >= h[j - 1].score - tol : h[j].score <= h[j - 1].score + tol;
            if (!ordered) fail_msg("%s rank %zu out of order", what, j);
        }
    }
    free(ref);
}

static void test_search_float_types_and_metrics(void **state) {
    (void)state;
    ek_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    size_t n = 3000, d = 45, nq = 11, k = 7;
    float *x = rand_matrix(n, d), *q = rand_matrix(nq, d);
    memset(x + 17 * d, 0, d * sizeof *x); /* a zero row */
    uint16_t *h = malloc(n * d * sizeof *h);
    float *xh = malloc(n * d * sizeof *xh);
    for (size_t i = 0; i < n * d; i++) {
        h[i] = ek_f32_to_f16(x[i]);
        xh[i] = ek_f16_to_f32(h[i]);
    }
    for (int m = 0; m < 3; m++) {
        for (int t = 0; t < 3; t++) {
            ek_vec_type type = t == 0 ? EK_VEC_F32 : t == 1 ? EK_VEC_F16 : EK_VEC_BF16;
            ek_matrix mx = {t == 1 ? EK_VEC_F16 : EK_VEC_F32, t == 1 ? (const void *)h : x, n, d, 0};
            ek_index_options o;
            ek_index_options_init(&o);
            o.metric = (ek_metric)m;
            o.type = type;
            ek_index *ix1, *ix2;
            assert_int_equal(ek_index_new(c1, &mx, &o, &ix1), EK_OK);
            assert_int_equal(ek_index_new(c2, &mx, &o, &ix2), EK_OK);
            assert_int_equal(ek_index_rows(ix1), n);
            ek_hit *a = malloc(nq * k * sizeof *a), *b = malloc(nq * k * sizeof *b);
            /* 1 query at a time (row kernels) and all at once (sgemm path) */
            ek_search_options so = {k, 0};
            for (size_t qi = 0; qi < nq; qi++)
                assert_int_equal(ek_index_search(c1, ix1, q + qi * d, 1, d, &so, a + qi * k, NULL), EK_OK);
            size_t per = 0;
            assert_int_equal(ek_index_search(c2, ix2, q, nq, d, &so, b, &per), EK_OK);
            assert_int_equal(per, k);
            const float *ref = t == 1 ? xh : x;
            double tol = t == 2 ? 0.05 : (m == EK_METRIC_COSINE ? 2e-5 : 2e-4);
            float *xb = NULL;
            if (t == 2) { /* bf16 reference rows */
                xb = malloc(n * d * sizeof *xb);
                for (size_t i = 0; i < n * d; i++) xb[i] = ek_bf16_to_f32(ek_f32_to_bf16(x[i]));
                ref = xb;
                tol = m == EK_METRIC_COSINE ? 2e-5 : 2e-4;
            }
            char what[64];
            snprintf(what, sizeof what, "%s/%s", ek_vec_type_name(type), ek_metric_name((ek_metric)m));
            for (size_t qi = 0; qi < nq; qi++) {
                check_hits((ek_metric)m, ref, n, d, q + qi * d, a + qi * k, k, tol, what);
                check_hits((ek_metric)m, ref, n, d, q + qi * d, b + qi * k, k, tol, what);
            }
            free(xb);
            free(a);
            free(b);
            ek_index_free(ix1);
            ek_index_free(ix2);
        }
    }
    free(x);
    free(q);
    free(h);
    free(xh);
    ek_ctx_free(c1);
    ek_ctx_free(c2);
}

static void test_search_ties_threads_and_k(void **state) {
    (void)state;
    /* 5000 rows, only 4 distinct vectors: every score is a tie many times
     * over; results must be the lowest indices, whatever the thread count. */
    size_t n = 5000, d = 19;
    float *base = rand_matrix(4, d), *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n; i++) memcpy(x + i * d, base + (i * 7 % 4) * d, d * sizeof *x);
    ek_matrix mx = {EK_VEC_F32, x, n, d, 0};
    for (int m = 0; m < 3; m++) {
        ek_index_options o;
        ek_index_options_init(&o);
        o.metric = (ek_metric)m;
        ek_hit hits[3][40];
        for (int th = 1; th <= 3; th++) {
            ek_ctx *c = new_ctx(th);
            ek_index *ix;
            assert_int_equal(ek_index_new(c, &mx, &o, &ix), EK_OK);
            ek_search_options so = {40, 0};
            assert_int_equal(ek_index_search(c, ix, base + d, 1, d, &so, hits[th - 1], NULL), EK_OK);
            ek_index_free(ix);
            ek_ctx_free(c);
        }
        /* reference: sort all rows by (exact score, index); rows holding the
         * same vector have identical scores, so ties are exact */
        kv *ref = malloc(n * sizeof *ref);
        for (size_t i = 0; i < n; i++) {
            double s = ref_metric((ek_metric)m, base + d, x + i * d, d);
            ref[i] = (kv){(float)(m == EK_METRIC_L2 ? -s : s), (int64_t)i};
        }
        qsort(ref, n, sizeof *ref, kv_cmp);
        for (size_t j = 0; j < 40; j++) assert_int_equal(hits[0][j].index, ref[j].idx);
        free(ref);
        assert_hits_equal(hits[0], hits[1], 40);
        assert_hits_equal(hits[0], hits[2], 40);
    }
    /* k larger than the rows: all rows; k = 0: error */
    ek_ctx *c = new_ctx(2);
    ek_matrix small = {EK_VEC_F32, x, 5, d, 0};
    ek_index *ix;
    assert_int_equal(ek_index_new(c, &small, NULL, &ix), EK_OK);
    ek_hit h[5];
    size_t per = 0;
    ek_search_options so = {100, 0};
    assert_int_equal(ek_index_search(c, ix, x, 1, d, &so, h, &per), EK_OK);
    assert_int_equal(per, 5);
    assert_int_equal(h[0].index, 0);
    so.k = 0;
    assert_int_equal(ek_index_search(c, ix, x, 1, d, &so, h, &per), EK_ERR_INVALID_ARG);
    ek_index_free(ix);
    ek_ctx_free(c);
    free(base);
    free(x);
}

static void test_search_errors(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    size_t n = 100, d = 16;
    float *x = rand_matrix(n, d), *q = rand_matrix(3, d);
    ek_index *ix = NULL;
    x[57 * d + 3] = NAN;
    ek_matrix mx = {EK_VEC_F32, x, n, d, 0};
    assert_int_equal(ek_index_new(c, &mx, NULL, &ix), EK_ERR_INVALID_ARG);
    assert_null(ix);
    assert_non_null(strstr(ek_ctx_last_error(c), "row 57"));
    x[57 * d + 3] = -INFINITY;
    assert_int_equal(ek_index_new(c, &mx, NULL, &ix), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "row 57"));
    x[57 * d + 3] = 0;
    assert_int_equal(ek_index_new(c, &mx, NULL, &ix), EK_OK);
    ek_hit h[30];
    ek_search_options so = {10, 0};
    assert_int_equal(ek_index_search(c, ix, q, 1, d - 1, &so, h, NULL), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "dimension"));
    q[2 * d + 5] = NAN;
    assert_int_equal(ek_index_search(c, ix, q, 3, d, &so, h, NULL), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "query row 2"));
    ek_index_free(ix);
    /* int8 input without ranges; Matryoshka beyond the dimension */
    int8_t codes[16] = {0};
    ek_matrix mc = {EK_VEC_INT8, codes, 1, 16, 0};
    ek_index_options o;
    ek_index_options_init(&o);
    assert_int_equal(ek_index_new(c, &mc, &o, &ix), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "ranges"));
    o.dimensions = 17;
    assert_int_equal(ek_index_new(c, &mx, &o, &ix), EK_ERR_INVALID_ARG);
    free(x);
    free(q);
    ek_ctx_free(c);
}

static void test_isa_env(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    size_t n = 700, d = 37;
    float *x = rand_matrix(n, d), *q = rand_matrix(4, d);
    ek_matrix mx = {EK_VEC_F32, x, n, d, 0};
    const char *names[] = {"scalar", "avx2", "avx512"};
    ek_hit ref[4 * 5], got[4 * 5];
    ek_search_options so = {5, 0};
    for (int level = 0; level <= ek_isa_cpu_level(); level++) {
        setenv("EK_ISA", names[level], 1);
        ek_index *ix;
        assert_int_equal(ek_index_new(c, &mx, NULL, &ix), EK_OK);
        assert_string_equal(ek_index_isa(ix), names[level]);
        assert_int_equal(ek_index_search(c, ix, q, 4, d, &so, level ? got : ref, NULL), EK_OK);
        for (int i = 0; level && i < 20; i++) {
            assert_int_equal(got[i].index, ref[i].index);
            assert_true(fabsf(got[i].score - ref[i].score) < 1e-5f);
        }
        ek_index_free(ix);
    }
    setenv("EK_ISA", "sse9", 1);
    ek_index *ix = NULL;
    assert_int_equal(ek_index_new(c, &mx, NULL, &ix), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(c), "EK_ISA"));
    unsetenv("EK_ISA");
    free(x);
    free(q);
    ek_ctx_free(c);
}

/* ---- quantization: sentence-transformers' formulas ----------------------- */

/* E and the expected codes come from sentence-transformers 5
 * (util/quantization.py, quantize_embeddings) run on exactly these float32
 * values:  quantize_embeddings(E, "int8"), (E, "ubinary"), (E, "binary"),
 * and (E, "int8", calibration_embeddings=E[:2]). */
static const float ST_E[4][9] = {
    {0.10f, -0.50f, 0.30f, 0.00f, 2.00f, -1.25f, 0.7f, 0.01f, -0.02f},
    {0.40f, 0.25f, -0.30f, 0.00f, 1.00f, 0.75f, -0.7f, 0.33f, 0.5f},
    {-0.20f, 0.05f, 0.90f, 0.00f, -3.0f, 0.125f, 0.1f, -0.6f, 0.0f},
    {0.33f, -0.11f, 0.12f, 0.00f, 0.5f, -0.5f, 0.2f, 0.9f, -0.9f}};
static const int8_t ST_INT8[4][9] = {{-1, -128, -1, -128, 126, -128, 127, -25, 32},
                                     {127, 127, -128, -128, 76, 126, -128, 30, 127},
                                     {-128, 59, 127, -128, -128, 47, 17, -128, 35},
                                     {97, 4, -39, -128, 50, -33, 35, 127, -128}};
static const int8_t ST_INT8_CAL[4][9] = {{-128, -128, 127, -128, 126, -128, 127, -128, -128},
                                         {127, 127, -128, -128, -128, 126, -128, 126, 127},
                                         {-128, 59, 127, -128, -128, 47, 17, -128, -119},
                                         {67, 4, 50, -128, -128, -33, 35, 127, -128}};
static const uint8_t ST_UBINARY[4][2] = {{171, 0}, {205, 128}, {102, 0}, {171, 0}};
static const int8_t ST_BINARY[4][2] = {{43, -128}, {77, 0}, {-26, -128}, {43, -128}};

static void test_int8_matches_sentence_transformers(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(1);
    float ranges[18];
    int8_t codes[36];
    assert_int_equal(ek_quantize_ranges(c, &ST_E[0][0], 4, 9, ranges), EK_OK);
    /* ranges = vstack(min over rows, max over rows) */
    assert_true(ranges[0] == -0.20f && ranges[9] == 0.40f);
    assert_true(ranges[3] == 0.0f && ranges[12] == 0.0f);
    assert_int_equal(ek_quantize_int8(c, &ST_E[0][0], 4, 9, ranges, codes), EK_OK);
    assert_memory_equal(codes, ST_INT8, sizeof codes);
    /* By hand, column 0: min -0.2, max 0.4, step = 0.6 / 255 = 0.00235294;
     * 0.1 -> floor((0.1 + 0.2) / step) = floor(127.5) = 127 -> 127 - 128 = -1,
     * 0.33 -> floor(225.25) = 225 -> 97.  Column 3 is constant: step 0 is
     * replaced by 1, so 0 -> floor(0) - 128 = -128. */
    assert_int_equal(codes[0], -1);
    assert_int_equal(codes[27], 97);
    assert_int_equal(codes[3], -128);
    /* calibration on the first two rows; values outside are clipped */
    assert_int_equal(ek_quantize_ranges(c, &ST_E[0][0], 2, 9, ranges), EK_OK);
    assert_int_equal(ek_quantize_int8(c, &ST_E[0][0], 4, 9, ranges, codes), EK_OK);
    assert_memory_equal(codes, ST_INT8_CAL, sizeof codes);
    ek_ctx_free(c);
}

static void test_binary_packing_matches_packbits(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(1);
    uint8_t packed[8];
    assert_int_equal(ek_quantize_binary(c, &ST_E[0][0], 4, 9, packed), EK_OK);
    assert_memory_equal(packed, ST_UBINARY, sizeof packed);
    /* "binary" is the same bytes - 128 as int8 */
    for (int i = 0; i < 8; i++) assert_int_equal((int8_t)(packed[i] ^ 0x80), (&ST_BINARY[0][0])[i]);
    /* By hand, row 0: signs 1 0 1 0 1 0 1 1 | 0 -> 0b10101011 = 171, the
     * first dimension in the most significant bit; the 9th dim is bit 7 of
     * byte 1 (0 > 0 is false: zero packs as 0). */
    float one[10] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_int_equal(ek_quantize_binary(c, one, 1, 10, packed), EK_OK);
    assert_int_equal(packed[0], 0);
    assert_int_equal(packed[1], 0x80);
    ek_ctx_free(c);
}

/* ---- quantized search --------------------------------------------------- */

static void test_int8_search_scores(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    size_t n = 2000, d = 50, nq = 5, k = 10;
    float *x = rand_matrix(n, d), *q = rand_matrix(nq, d), ranges[100];
    int8_t *codes = malloc(n * d);
    assert_int_equal(ek_quantize_ranges(c, x, n, d, ranges), EK_OK);
    assert_int_equal(ek_quantize_int8(c, x, n, d, ranges, codes), EK_OK);
    /* dequantized rows: what an int8 index scores against */
    float *dq = malloc(n * d * sizeof *dq), step[50];
    ek_q_steps(ranges, d, step);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) dq[i * d + j] = ranges[j] + step[j] * (float)(codes[i * d + j] + 128);
    ek_matrix mc = {EK_VEC_INT8, codes, n, d, 0}, mf = {EK_VEC_F32, x, n, d, 0};
    for (int m = 0; m < 3; m++) {
        ek_index_options o;
        ek_index_options_init(&o);
        o.metric = (ek_metric)m;
        o.ranges = ranges;
        o.type = EK_VEC_INT8;
        ek_index *from_codes, *from_floats;
        assert_int_equal(ek_index_new(c, &mc, &o, &from_codes), EK_OK);
        assert_int_equal(ek_index_new(c, &mf, &o, &from_floats), EK_OK); /* quantized inside */
        ek_hit a[50], b[50];
        ek_search_options so = {k, 0};
        assert_int_equal(ek_index_search(c, from_codes, q, nq, d, &so, a, NULL), EK_OK);
        assert_int_equal(ek_index_search(c, from_floats, q, nq, d, &so, b, NULL), EK_OK);
        assert_hits_equal(a, b, nq * k);
        /* scores: the metric against the dequantized rows, up to the 8-bit
         * rounding of the query */
        for (size_t qi = 0; qi < nq; qi++)
            for (size_t j = 0; j < k; j++) {
                double truth = ref_metric((ek_metric)m, q + qi * d, dq + (size_t)a[qi * k + j].index * d, d);
                double tol = m == EK_METRIC_COSINE ? 0.01 : m == EK_METRIC_DOT ? 0.1 : 0.2;
                if (fabs(truth - a[qi * k + j].score) > tol)
                    fail_msg("int8 %s: score %g, dequantized %g", ek_metric_name((ek_metric)m), a[qi * k + j].score, truth);
            }
        /* rescoring: on the float originals (index from floats) the scores
         * are exact; on decoded rows (index from codes) they are the
         * dequantized metric */
        so.rescore = 100;
        assert_int_equal(ek_index_search(c, from_floats, q, nq, d, &so, b, NULL), EK_OK);
        assert_int_equal(ek_index_search(c, from_codes, q, nq, d, &so, a, NULL), EK_OK);
        for (size_t qi = 0; qi < nq; qi++)
            for (size_t j = 0; j < k; j++) {
                double tf = ref_metric((ek_metric)m, q + qi * d, x + (size_t)b[qi * k + j].index * d, d);
                double td = ref_metric((ek_metric)m, q + qi * d, dq + (size_t)a[qi * k + j].index * d, d);
                assert_true(fabs(tf - b[qi * k + j].score) < 1e-4);
                assert_true(fabs(td - a[qi * k + j].score) < 1e-4);
            }
        ek_index_free(from_codes);
        ek_index_free(from_floats);
    }
    free(x);
    free(q);
    free(codes);
    free(dq);
    ek_ctx_free(c);
}

static void test_binary_search_hamming(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    size_t n = 1500, d = 70, nq = 4, k = 12, nb = 9;
    float *x = rand_matrix(n, d), *q = rand_matrix(nq, d);
    memcpy(x + 900 * d, x + 300 * d, d * sizeof *x); /* a tie at distance 0 */
    memcpy(q, x + 300 * d, d * sizeof *x);
    uint8_t *packed = malloc(n * nb), qp[9];
    assert_int_equal(ek_quantize_binary(c, x, n, d, packed), EK_OK);
    ek_matrix mb = {EK_VEC_BINARY, packed, n, d, 0};
    ek_index_options o;
    ek_index_options_init(&o);
    ek_index *ix;
    assert_int_equal(ek_index_new(c, &mb, &o, &ix), EK_OK);
    ek_hit h[48];
    ek_search_options so = {k, 0};
    assert_int_equal(ek_index_search(c, ix, q, nq, d, &so, h, NULL), EK_OK);
    assert_int_equal(h[0].index, 300); /* lower index first */
    assert_int_equal(h[1].index, 900);
    assert_true(h[0].score == 0.0f && h[1].score == 0.0f);
    for (size_t qi = 0; qi < nq; qi++) {
        assert_int_equal(ek_quantize_binary(c, q + qi * d, 1, d, qp), EK_OK);
        /* reference: sort all rows by (Hamming distance, index) */
        kv *ref = malloc(n * sizeof *ref);
        for (size_t i = 0; i < n; i++) {
            int hd = 0;
            for (size_t b = 0; b < nb; b++) hd += __builtin_popcount((unsigned)(packed[i * nb + b] ^ qp[b]));
            ref[i] = (kv){(float)-hd, (int64_t)i};
        }
        qsort(ref, n, sizeof *ref, kv_cmp);
        for (size_t j = 0; j < k; j++) {
            assert_int_equal(h[qi * k + j].index, ref[j].idx);
            assert_true(h[qi * k + j].score == -ref[j].key);
        }
        free(ref);
    }
    /* rescoring without originals: sentence-transformers' rescoring, the
     * float query against the bits as 0 / 1 (dot metric) */
    ek_index_free(ix);
    o.metric = EK_METRIC_DOT;
    assert_int_equal(ek_index_new(c, &mb, &o, &ix), EK_OK);
    so.rescore = 40;
    assert_int_equal(ek_index_search(c, ix, q + d, 1, d, &so, h, NULL), EK_OK);
    for (size_t j = 0; j < k; j++) {
        double s = 0;
        for (size_t b = 0; b < d; b++)
            if (packed[(size_t)h[j].index * nb + b / 8] & (0x80 >> (b % 8))) s += q[d + b];
        assert_true(fabs(s - h[j].score) < 1e-4);
    }
    ek_index_free(ix);
    free(x);
    free(q);
    free(packed);
    ek_ctx_free(c);
}

/* Clustered data: 400 centres of 20 rows each, rows = centre + noise.
 * Binary codes with f32 rescoring of 100 candidates must find nearly all of
 * the exact top 10 (the Hamming candidates hold the query's cluster). */
static void test_recall_binary_rescore_clustered(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    size_t n = 8000, d = 96, nq = 50, k = 10, nc = 400;
    float *cent = rand_matrix(nc, d), *x = malloc(n * d * sizeof *x), *q = malloc(nq * d * sizeof *q);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = cent[(i % nc) * d + j] + 0.4f * unif();
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < d; j++) q[i * d + j] = cent[(i * 7 % nc) * d + j] + 0.4f * unif();
    ek_matrix mx = {EK_VEC_F32, x, n, d, 0};
    ek_index_options o;
    ek_index_options_init(&o);
    ek_index *exact, *bin, *i8;
    assert_int_equal(ek_index_new(c, &mx, &o, &exact), EK_OK);
    o.type = EK_VEC_BINARY;
    assert_int_equal(ek_index_new(c, &mx, &o, &bin), EK_OK);
    o.type = EK_VEC_INT8;
    assert_int_equal(ek_index_new(c, &mx, &o, &i8), EK_OK);
    ek_hit *t = malloc(nq * k * sizeof *t), *h = malloc(nq * k * sizeof *h);
    ek_search_options so = {k, 0};
    assert_int_equal(ek_index_search(c, exact, q, nq, d, &so, t, NULL), EK_OK);
    double rec[3];
    for (int v = 0; v < 3; v++) {
        so.rescore = v == 0 ? 100 : 0;
        assert_int_equal(ek_index_search(c, v == 2 ? i8 : bin, q, nq, d, &so, h, NULL), EK_OK);
        size_t hit = 0;
        for (size_t i = 0; i < nq * k; i++)
            for (size_t j = 0; j < k; j++)
                if (h[i].index == t[(i / k) * k + j].index) hit++;
        rec[v] = (double)hit / (double)(nq * k);
    }
    print_message("recall@10: binary+rescore(100) %.3f, binary %.3f, int8 %.3f\n", rec[0], rec[1], rec[2]);
    assert_true(rec[0] >= 0.9);
    assert_true(rec[0] > rec[1]);
    assert_true(rec[2] >= 0.9);
    ek_index_free(exact);
    ek_index_free(bin);
    ek_index_free(i8);
    free(cent);
    free(x);
    free(q);
    free(t);
    free(h);
    ek_ctx_free(c);
}

static void test_matryoshka(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(2);
    size_t n = 900, d = 64, D = 24, nq = 3, k = 8;
    float *x = rand_matrix(n, d), *q = rand_matrix(nq, d), *xt = malloc(n * D * sizeof *xt);
    float *qt = malloc(nq * D * sizeof *qt);
    for (size_t i = 0; i < n; i++) memcpy(xt + i * D, x + i * d, D * sizeof *x);
    for (size_t i = 0; i < nq; i++) memcpy(qt + i * D, q + i * d, D * sizeof *q);
    for (int t = 0; t < 3; t++) {
        ek_vec_type type = t == 0 ? EK_VEC_F32 : t == 1 ? EK_VEC_INT8 : EK_VEC_BINARY;
        ek_index_options o;
        ek_index_options_init(&o);
        o.type = type;
        float ranges[128], rt[48];
        if (type == EK_VEC_INT8) { /* the same ranges on both sides */
            assert_int_equal(ek_quantize_ranges(c, x, n, d, ranges), EK_OK);
            for (size_t j = 0; j < D; j++) {
                rt[j] = ranges[j];
                rt[D + j] = ranges[d + j];
            }
        }
        o.ranges = type == EK_VEC_INT8 ? ranges : NULL;
        o.dimensions = D;
        ek_matrix full = {EK_VEC_F32, x, n, d, 0}, cut = {EK_VEC_F32, xt, n, D, 0};
        ek_index *a, *b;
        assert_int_equal(ek_index_new(c, &full, &o, &a), EK_OK);
        assert_int_equal(ek_index_dim(a), D);
        o.dimensions = 0;
        o.ranges = type == EK_VEC_INT8 ? rt : NULL;
        assert_int_equal(ek_index_new(c, &cut, &o, &b), EK_OK);
        ek_hit ha[24], hb[24], hc[24];
        ek_search_options so = {k, type == EK_VEC_F32 ? 0 : 30};
        assert_int_equal(ek_index_search(c, a, q, nq, d, &so, ha, NULL), EK_OK);  /* full queries */
        assert_int_equal(ek_index_search(c, a, qt, nq, D, &so, hc, NULL), EK_OK); /* cut queries */
        assert_int_equal(ek_index_search(c, b, qt, nq, D, &so, hb, NULL), EK_OK);
        for (size_t i = 0; i < nq * k; i++) {
            assert_int_equal(ha[i].index, hb[i].index);
            assert_int_equal(hc[i].index, hb[i].index);
            assert_true(fabsf(ha[i].score - hb[i].score) < 1e-5f);
        }
        ek_index_free(a);
        ek_index_free(b);
    }
    free(x);
    free(q);
    free(xt);
    free(qt);
    ek_ctx_free(c);
}

/* ---- CLI ---------------------------------------------------------------- */

static cJSON **parse_lines(char *out, size_t *n) {
    static cJSON *lines[64];
    *n = 0;
    for (char *s = strtok(out, "\n"); s && *n < 64; s = strtok(NULL, "\n")) {
        lines[*n] = cJSON_Parse(s);
        if (!lines[*n]) fail_msg("not JSON: %s", s);
        (*n)++;
    }
    return lines;
}

static void test_cli_quantize_then_search(void **state) {
    (void)state;
    ek_ctx *c = new_ctx(1);
    char *dir = ts_mkdtemp();
    assert_non_null(dir);
    size_t n = 600, d = 40, nq = 3;
    float *x = rand_matrix(n, d), *q = malloc(nq * d * sizeof *q);
    size_t rows[3] = {5, 123, 599};
    for (size_t i = 0; i < nq; i++) memcpy(q + i * d, x + rows[i] * d, d * sizeof *q);
    char e[512], qq[512], qi8[512], qb[512], ids[512], cmd[4096];
    snprintf(e, sizeof e, "%s/E.npy", dir);
    snprintf(qq, sizeof qq, "%s/queries.npy", dir);
    snprintf(qi8, sizeof qi8, "%s/Q8.npy", dir);
    snprintf(qb, sizeof qb, "%s/QB.npy", dir);
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    assert_int_equal(ek_npy_write(c, e, EK_NPY_F32, 2, n, d, x), EK_OK);
    assert_int_equal(ek_npy_write(c, qq, EK_NPY_F32, 2, nq, d, q), EK_OK);
    FILE *f = fopen(ids, "w");
    for (size_t i = 0; i < n; i++) fprintf(f, "doc-%zu\n", i);
    fclose(f);
    char *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' quantize --in '%s' --out '%s' --type int8", ts_ek_bin(), e, qi8);
    if (ts_run(cmd, &out, &err)) fail_msg("quantize int8: %s", err);
    free(out);
    free(err);
    /* the codes and the ranges file next to them match the library */
    char rp[600];
    snprintf(rp, sizeof rp, "%s/Q8.ranges.npy", dir);
    ek_npy *cf, *rf;
    assert_int_equal(ek_npy_open(c, qi8, &cf), EK_OK);
    assert_int_equal(ek_npy_open(c, rp, &rf), EK_OK);
    ek_npy_info ci, ri;
    ek_npy_get_info(cf, &ci);
    ek_npy_get_info(rf, &ri);
    assert_int_equal(ci.dtype, EK_NPY_I8);
    assert_int_equal(ri.rows, 2);
    assert_int_equal(ri.cols, d);
    float ranges[80];
    int8_t *codes = malloc(n * d);
    ek_quantize_ranges(c, x, n, d, ranges);
    ek_quantize_int8(c, x, n, d, ranges, codes);
    assert_memory_equal(ri.data, ranges, sizeof ranges);
    assert_memory_equal(ci.data, codes, n * d);
    ek_npy_close(cf);
    ek_npy_close(rf);
    snprintf(cmd, sizeof cmd, "'%s' quantize --in '%s' --out '%s' --type binary", ts_ek_bin(), e, qb);
    if (ts_run(cmd, &out, &err)) fail_msg("quantize binary: %s", err);
    free(out);
    free(err);

    const char *variants[] = {"--index '%s' --ids '%s'", "--index '%s' --ids '%s' --type int8",
                              "--index '%s' --ids '%s' --rescore 50 --originals '%s'",
                              "--index '%s' --ids '%s' --type binary --rescore 50"};
    const char *index_of[] = {e, qi8, qb, e};
    for (int v = 0; v < 4; v++) {
        char opt[2048];
        snprintf(opt, sizeof opt, variants[v], index_of[v], ids, e);
        snprintf(cmd, sizeof cmd, "'%s' search %s --query-npy '%s' -k 4 --json", ts_ek_bin(), opt, qq);
        if (ts_run(cmd, &out, &err)) fail_msg("search %s: %s", opt, err);
        size_t nl;
        cJSON **lines = parse_lines(out, &nl);
        assert_int_equal(nl, nq);
        for (size_t i = 0; i < nl; i++) {
            assert_int_equal(cJSON_GetObjectItem(lines[i], "query")->valueint, (int)i);
            cJSON *res = cJSON_GetObjectItem(lines[i], "results");
            assert_int_equal(cJSON_GetArraySize(res), 4);
            cJSON *top = cJSON_GetArrayItem(res, 0);
            /* each query is a row of the index: it finds itself first */
            assert_int_equal(cJSON_GetObjectItem(top, "index")->valueint, (int)rows[i]);
            char want[32];
            snprintf(want, sizeof want, "doc-%zu", rows[i]);
            assert_string_equal(cJSON_GetObjectItem(top, "id")->valuestring, want);
            double prev = INFINITY;
            for (int j = 0; j < 4; j++) {
                double s = cJSON_GetObjectItem(cJSON_GetArrayItem(res, j), "score")->valuedouble;
                assert_true(s <= prev + 1e-6); /* cosine: best first */
                prev = s;
            }
            if (v != 1) assert_true(fabs(cJSON_GetObjectItem(top, "score")->valuedouble - 1.0) < 1e-5);
            cJSON_Delete(lines[i]);
        }
        free(out);
        free(err);
    }
    /* l2: smallest distance first, the row itself at 0 */
    snprintf(cmd, sizeof cmd, "'%s' search --index '%s' --query-npy '%s' -k 3 --metric l2 --json", ts_ek_bin(), e, qq);
    assert_int_equal(ts_run(cmd, &out, &err), 0);
    size_t nl;
    cJSON **lines = parse_lines(out, &nl);
    cJSON *res = cJSON_GetObjectItem(lines[0], "results");
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "score")->valuedouble == 0.0);
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "score")->valuedouble > 0.0);
    for (size_t i = 0; i < nl; i++) cJSON_Delete(lines[i]);
    free(out);
    free(err);
    /* a NaN query is refused, naming the row */
    q[2 * d + 1] = NAN;
    assert_int_equal(ek_npy_write(c, qq, EK_NPY_F32, 2, nq, d, q), EK_OK);
    snprintf(cmd, sizeof cmd, "'%s' search --index '%s' --query-npy '%s' -k 3 --json", ts_ek_bin(), e, qq);
    assert_int_not_equal(ts_run(cmd, &out, &err), 0);
    assert_non_null(strstr(err, "query row 2"));
    free(out);
    free(err);
    /* a query of the wrong dimension is refused */
    assert_int_equal(ek_npy_write(c, qq, EK_NPY_F32, 2, 1, d - 1, x), EK_OK);
    assert_int_not_equal(ts_run(cmd, &out, &err), 0);
    assert_non_null(strstr(err, "dimension"));
    free(out);
    free(err);
    ts_rm_rf(dir);
    free(x);
    free(q);
    free(codes);
    ek_ctx_free(c);
}

/* `ek search --model`: the query texts are embedded with the model; each
 * text finds its own embedding (computed by `ek embed`) first. */
static void test_cli_search_with_model(void **state) {
    (void)state;
    const char *model = ts_path(ts_models_dir(), "tiny-mean");
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/config.json", model);
    FILE *f = fopen(probe, "r");
    if (!f) skip(); /* generated models not there (run under ctest) */
    fclose(f);
    char *dir = ts_mkdtemp();
    assert_non_null(dir);
    char texts[512], npy[512], cmd[8192];
    snprintf(texts, sizeof texts, "%s/texts.txt", dir);
    snprintf(npy, sizeof npy, "%s/corpus.npy", dir);
    const char *t = "alpha beta\ngamma delta epsilon\nhello world\nthe cat sat on the mat\n";
    assert_int_equal(ts_write_file(texts, t, strlen(t)), 0);
    char *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' embed --model '%s' --output npy < '%s' > '%s'", ts_ek_bin(), model, texts, npy);
    if (ts_run(cmd, &out, &err)) fail_msg("embed: %s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' search --index '%s' --model '%s' -k 2 --json 'hello world' 'the cat sat on the mat'",
             ts_ek_bin(), npy, model);
    if (ts_run(cmd, &out, &err)) fail_msg("search: %s", err);
    size_t nl;
    cJSON **lines = parse_lines(out, &nl);
    assert_int_equal(nl, 2);
    for (size_t i = 0; i < nl; i++) {
        cJSON *top = cJSON_GetArrayItem(cJSON_GetObjectItem(lines[i], "results"), 0);
        assert_int_equal(cJSON_GetObjectItem(top, "index")->valueint, i == 0 ? 2 : 3);
        assert_true(fabs(cJSON_GetObjectItem(top, "score")->valuedouble - 1.0) < 1e-5);
        cJSON_Delete(lines[i]);
    }
    free(out);
    free(err);
    ts_rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_match_scalar),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_topk_matches_sort_with_ties),
        cmocka_unit_test(test_similarity_metrics),
        cmocka_unit_test(test_similarity_errors),
        cmocka_unit_test(test_search_float_types_and_metrics),
        cmocka_unit_test(test_search_ties_threads_and_k),
        cmocka_unit_test(test_search_errors),
        cmocka_unit_test(test_isa_env),
        cmocka_unit_test(test_int8_matches_sentence_transformers),
        cmocka_unit_test(test_binary_packing_matches_packbits),
        cmocka_unit_test(test_int8_search_scores),
        cmocka_unit_test(test_binary_search_hamming),
        cmocka_unit_test(test_recall_binary_rescore_clustered),
        cmocka_unit_test(test_matryoshka),
        cmocka_unit_test(test_cli_quantize_then_search),
        cmocka_unit_test(test_cli_search_with_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
