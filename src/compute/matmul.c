/* compute/matmul.c — dense layers on pre-packed weights (see matmul.h):
 * packing at load (oneDNN reorder into the layout the matmul primitive
 * asks for), primitives per row class, and running them. */
#include "compute/matmul.h"

#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ek_mm_row_class(int M) { return M <= 16 ? 16 : (M + 7) / 8 * 8; }

size_t ek_mm_type_size(ek_mm_type t) {
    switch (t) {
    case EK_MM_BF16: return 2;
    case EK_MM_S8:
    case EK_MM_U8: return 1;
    default: return 4;
    }
}

static dnnl_data_type_t dt(ek_mm_type t) {
    switch (t) {
    case EK_MM_BF16: return dnnl_bf16;
    case EK_MM_S8: return dnnl_s8;
    case EK_MM_U8: return dnnl_u8;
    case EK_MM_S32: return dnnl_s32;
    default: return dnnl_f32;
    }
}

static ek_mm_type src_type(ek_mm_type wt) { return wt == EK_MM_S8 ? EK_MM_U8 : wt; }

static int md2(dnnl_memory_desc_t *md, int rows, int cols, ek_mm_type t) {
    dnnl_dims_t dims = {rows, cols};
    return dnnl_memory_desc_init_by_tag(md, 2, dims, dt(t), dnnl_ab) == dnnl_success ? 0 : -1;
}

static int make_attr(dnnl_primitive_attr_t *attr, unsigned flags) {
    if (dnnl_primitive_attr_create(attr) != dnnl_success) return -1;
    /* Each caller brings its scratchpad (see ek_mm_io in matmul.h). */
    if (dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user) != dnnl_success) return -1;
    if (!(flags & (EK_MM_GELU | EK_MM_ACCUMULATE))) return 0;
    dnnl_post_ops_t po;
    if (dnnl_post_ops_create(&po) != dnnl_success) return -1;
    int ok = 1;
    /* Post-ops run in order: the sum reads the old C, then the eltwise. */
    if (flags & EK_MM_ACCUMULATE) ok &= dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
    if (flags & EK_MM_GELU)
        ok &= dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f) ==
              dnnl_success;
    ok &= dnnl_primitive_attr_set_post_ops(*attr, po) == dnnl_success;
    dnnl_post_ops_destroy(po);
    return ok ? 0 : -1;
}

/* A primitive descriptor for M rows; wmd: the packed weights, or NULL to
 * let oneDNN choose (format `any`). */
static dnnl_primitive_desc_t make_pd(dnnl_engine_t eng, int M, int N, int K, ek_mm_type wt,
                                     const dnnl_memory_desc_t *wmd, int has_bias, ek_mm_type dst,
                                     unsigned flags) {
    dnnl_memory_desc_t a_md, w_md, b_md, c_md;
    dnnl_dims_t wd = {K, N};
    if (md2(&a_md, M, K, src_type(wt)) || md2(&b_md, 1, N, EK_MM_F32) || md2(&c_md, M, N, dst))
        return NULL;
    if (wmd)
        w_md = *wmd;
    else if (dnnl_memory_desc_init_by_tag(&w_md, 2, wd, dt(wt), dnnl_format_tag_any) != dnnl_success)
        return NULL;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &a_md, &w_md, has_bias ? &b_md : NULL, &c_md) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (!make_attr(&attr, flags) &&
        dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL) != dnnl_success)
        pd = NULL;
    if (attr) dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* The packed layout oneDNN wants for M rows (a copy), or -1. */
static int packed_md(dnnl_engine_t eng, int M, int N, int K, ek_mm_type wt, dnnl_memory_desc_t *out) {
    dnnl_primitive_desc_t pd = make_pd(eng, M, N, K, wt, NULL, 0, wt == EK_MM_S8 ? EK_MM_S32 : EK_MM_F32, 0);
    if (!pd) return -1;
    *out = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static int reorder(dnnl_engine_t eng, dnnl_memory_t from, dnnl_memory_t to, const float *scales, int N) {
    const dnnl_memory_desc_t *fmd, *tmd;
    dnnl_memory_get_memory_desc(from, &fmd);
    dnnl_memory_get_memory_desc(to, &tmd);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_stream_t s = NULL;
    int rc = -1;
    if (dnnl_primitive_attr_create(&attr)) goto out;
    /* Weights are K x N: per output channel = mask over dimension 1. */
    if (scales && dnnl_primitive_attr_set_output_scales(attr, N, 1 << 1, scales)) goto out;
    if (dnnl_reorder_primitive_desc_create(&pd, fmd, eng, tmd, eng, attr)) {
        pd = NULL;
        goto out;
    }
    if (dnnl_primitive_create(&r, pd) || dnnl_stream_create(&s, eng, dnnl_stream_default_flags)) goto out;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    if (dnnl_primitive_execute(r, s, 2, args) || dnnl_stream_wait(s)) goto out;
    rc = 0;
out:
    if (s) dnnl_stream_destroy(s);
    if (r) dnnl_primitive_destroy(r);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* The layout for a mid-size M; the same layout must serve every row class
 * (checked at both ends), or results could depend on M. */
static int weights_md(dnnl_engine_t eng, ek_mm_type type, int N, int K, dnnl_memory_desc_t *wmd) {
    if (N <= 0 || K <= 0 || (type != EK_MM_F32 && type != EK_MM_BF16 && type != EK_MM_S8)) return -1;
    dnnl_memory_desc_t other;
    if (packed_md(eng, 64, N, K, type, wmd)) return -1;
    static const int probe[] = {16, 256};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++)
        if (packed_md(eng, probe[i], N, K, type, &other) || !dnnl_memory_desc_equal(wmd, &other))
            return -1;
    return 0;
}

static int bias_mem(ek_mm_weights *pw, dnnl_engine_t eng, const float *bias) {
    dnnl_memory_desc_t b_md;
    if (!bias) return 0;
    if (md2(&b_md, 1, pw->N, EK_MM_F32) || dnnl_memory_create(&pw->bias, &b_md, eng, (void *)bias)) {
        pw->bias = NULL;
        return -1;
    }
    return 0;
}

int ek_mm_weights_pack(ek_mm_weights *pw, dnnl_engine_t eng, ek_mm_type type, const float *W,
                       const float *bias, int N, int K) {
    memset(pw, 0, sizeof *pw);
    pw->N = N, pw->K = K, pw->type = type, pw->bias_ptr = bias;
    dnnl_memory_desc_t wmd;
    if (weights_md(eng, type, N, K, &wmd)) return -1;
    dnnl_memory_desc_t src_md;
    dnnl_dims_t wd = {K, N}, strides = {1, K}; /* torch's [N][K] seen as K x N */
    dnnl_memory_t src = NULL;
    float *q = NULL;
    int rc = -1;
    if (dnnl_memory_desc_init_by_strides(&src_md, 2, wd, dnnl_f32, strides)) goto out;
    if (dnnl_memory_create(&src, &src_md, eng, (void *)W)) {
        src = NULL;
        goto out;
    }
    if (dnnl_memory_create(&pw->w, &wmd, eng, DNNL_MEMORY_ALLOCATE)) {
        pw->w = NULL;
        goto out;
    }
    pw->bytes = dnnl_memory_desc_get_size(&wmd);
    if (type == EK_MM_S8) {
        /* Symmetric per output channel: q = round(W / scale), |q| <= 127. */
        pw->scale = malloc(sizeof *pw->scale * (size_t)N);
        pw->colsum = malloc(sizeof *pw->colsum * (size_t)N);
        q = malloc(sizeof *q * (size_t)N);
        if (!pw->scale || !pw->colsum || !q) goto out;
        for (int n = 0; n < N; n++) {
            float mx = 0.0f;
            for (int k = 0; k < K; k++) mx = fmaxf(mx, fabsf(W[(size_t)n * K + k]));
            pw->scale[n] = mx > 0.0f ? mx / 127.0f : 1.0f;
            q[n] = 1.0f / pw->scale[n];
        }
    }
    if (reorder(eng, src, pw->w, q, N)) goto out;
    if (type == EK_MM_S8) {
        /* The column sums must be of exactly the values the reorder stored
         * (its rounding is oneDNN's): read them back through a plain
         * reorder. */
        dnnl_memory_desc_t plain;
        dnnl_memory_t back = NULL;
        int8_t *buf = malloc((size_t)N * K);
        int ok = buf && !dnnl_memory_desc_init_by_strides(&plain, 2, wd, dnnl_s8, strides) &&
                 !dnnl_memory_create(&back, &plain, eng, buf) && !reorder(eng, pw->w, back, NULL, N);
        if (ok)
            for (int n = 0; n < N; n++) {
                int32_t cs = 0;
                for (int k = 0; k < K; k++) cs += buf[(size_t)n * K + k];
                pw->colsum[n] = cs;
            }
        if (back) dnnl_memory_destroy(back);
        free(buf);
        if (!ok) goto out;
    }
    if (bias_mem(pw, eng, bias)) goto out;
    rc = 0;
out:
    free(q);
    if (src) dnnl_memory_destroy(src);
    if (rc) ek_mm_weights_free(pw);
    return rc;
}

void ek_mm_weights_free(ek_mm_weights *pw) {
    if (pw->w) dnnl_memory_destroy(pw->w);
    if (pw->bias) dnnl_memory_destroy(pw->bias);
    if (!pw->borrowed) {
        free(pw->scale);
        free(pw->colsum);
    }
    memset(pw, 0, sizeof *pw);
}

const void *ek_mm_weights_data(const ek_mm_weights *pw) {
    void *p = NULL;
    if (!pw->w || dnnl_memory_get_data_handle(pw->w, &p) != dnnl_success) return NULL;
    return p;
}

int ek_mm_layout_init(ek_mm_layout *l, dnnl_engine_t eng, ek_mm_type type, int N, int K) {
    memset(l, 0, sizeof *l);
    dnnl_memory_desc_t *md = malloc(sizeof *md);
    if (!md || weights_md(eng, type, N, K, md)) {
        free(md);
        return -1;
    }
    l->md = md;
    l->bytes = dnnl_memory_desc_get_size(md);
    l->type = type, l->N = N, l->K = K;
    return 0;
}

void ek_mm_layout_free(ek_mm_layout *l) {
    free(l->md);
    memset(l, 0, sizeof *l);
}

/* Appends printf output at *len; returns -1 once the buffer is full. */
static int put(char *buf, size_t cap, size_t *len, const char *fmt, long long v) {
    int n = snprintf(buf + *len, cap - *len, fmt, v);
    if (n < 0 || (size_t)n >= cap - *len) return -1;
    *len += (size_t)n;
    return 0;
}

int ek_mm_layout_describe(const ek_mm_layout *l, char *buf, size_t cap) {
    /* Field by field: the struct has padding and a union whose unused bytes
     * are not defined, so its raw bytes cannot be compared or hashed. */
    const dnnl_memory_desc_t *md = l->md;
    size_t len = 0;
    int bad = !md || !cap;
    if (!bad) buf[0] = '\0';
    bad = bad || put(buf, cap, &len, "dt %lld", (long long)md->data_type) ||
          put(buf, cap, &len, " kind %lld", (long long)md->format_kind) ||
          put(buf, cap, &len, " off0 %lld", (long long)md->offset0) ||
          put(buf, cap, &len, " bytes %lld", (long long)l->bytes);
    for (int d = 0; !bad && d < md->ndims; d++)
        bad = put(buf, cap, &len, " [dim %lld", (long long)md->dims[d]) ||
              put(buf, cap, &len, " pad %lld", (long long)md->padded_dims[d]) ||
              put(buf, cap, &len, " poff %lld", (long long)md->padded_offsets[d]) ||
              put(buf, cap, &len, " stride %lld]",
                  md->format_kind == dnnl_blocked ? (long long)md->format_desc.blocking.strides[d] : -1LL);
    if (!bad && md->format_kind == dnnl_blocked) {
        const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
        bad = put(buf, cap, &len, " blocks %lld", (long long)b->inner_nblks);
        for (int i = 0; !bad && i < b->inner_nblks; i++)
            bad = put(buf, cap, &len, " %lld", (long long)b->inner_blks[i]) ||
                  put(buf, cap, &len, "@%lld", (long long)b->inner_idxs[i]);
    }
    if (!bad)
        bad = put(buf, cap, &len, " extra %lld", (long long)md->extra.flags) ||
              put(buf, cap, &len, " %lld", (long long)md->extra.compensation_mask) ||
              put(buf, cap, &len, " %lld", (long long)md->extra.asymm_compensation_mask) ||
              put(buf, cap, &len, " %lld", (long long)(md->extra.scale_adjust * 1e6f));
    return bad ? -1 : 0;
}

int ek_mm_weights_wrap(ek_mm_weights *pw, dnnl_engine_t eng, const ek_mm_layout *l, const void *packed,
                       const float *scale, const int32_t *colsum, const float *bias) {
    memset(pw, 0, sizeof *pw);
    if (!l->md || !packed || (l->type == EK_MM_S8 && (!scale || !colsum))) return -1;
    pw->N = l->N, pw->K = l->K, pw->type = l->type, pw->bias_ptr = bias;
    pw->bytes = l->bytes;
    pw->borrowed = 1;
    /* The struct fields are not const (packing fills them); borrowed ones
     * are only read, see ek_mm_weights_wrap in matmul.h. */
    pw->scale = (float *)scale;
    pw->colsum = (int32_t *)colsum;
    if (dnnl_memory_create(&pw->w, l->md, eng, (void *)packed) != dnnl_success) {
        pw->w = NULL;
        ek_mm_weights_free(pw);
        return -1;
    }
    if (bias_mem(pw, eng, bias)) {
        ek_mm_weights_free(pw);
        return -1;
    }
    return 0;
}

int ek_mm_prim_init(ek_mm_prim *p, dnnl_engine_t eng, int M, const ek_mm_weights *pw, ek_mm_type dst,
                    unsigned flags) {
    memset(p, 0, sizeof *p);
    if (M <= 0 || !pw->w) return -1;
    if (pw->type == EK_MM_S8 && (dst != EK_MM_S32 || (flags & ~(unsigned)EK_MM_BIAS))) return -1;
    const dnnl_memory_desc_t *wmd;
    dnnl_memory_get_memory_desc(pw->w, &wmd);
    int has_bias = (flags & EK_MM_BIAS) && pw->bias && pw->type != EK_MM_S8;
    dnnl_primitive_desc_t pd = make_pd(eng, M, pw->N, pw->K, pw->type, wmd, has_bias, dst, flags);
    if (!pd) return -1;
    p->scratch_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    int rc = dnnl_primitive_create(&p->prim, pd) == dnnl_success ? 0 : -1;
    dnnl_primitive_desc_destroy(pd);
    if (rc) {
        p->prim = NULL;
        return -1;
    }
    p->M = M, p->N = pw->N, p->K = pw->K;
    p->src = src_type(pw->type), p->dst = dst;
    p->flags = has_bias ? flags : flags & ~(unsigned)EK_MM_BIAS;
    return 0;
}

void ek_mm_prim_free(ek_mm_prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    memset(p, 0, sizeof *p);
}

int ek_mm_io_init(ek_mm_io *io, dnnl_engine_t eng, const ek_mm_prim *p) {
    memset(io, 0, sizeof *io);
    dnnl_memory_desc_t a_md, c_md;
    if (md2(&a_md, p->M, p->K, p->src) || md2(&c_md, p->M, p->N, p->dst)) return -1;
    if (dnnl_memory_create(&io->src, &a_md, eng, DNNL_MEMORY_NONE)) io->src = NULL;
    if (dnnl_memory_create(&io->dst, &c_md, eng, DNNL_MEMORY_NONE)) io->dst = NULL;
    if (p->scratch_bytes) {
        dnnl_memory_desc_t s_md;
        dnnl_dims_t n = {(dnnl_dim_t)p->scratch_bytes};
        if (dnnl_memory_desc_init_by_tag(&s_md, 1, n, dnnl_u8, dnnl_a) ||
            dnnl_memory_create(&io->scratch, &s_md, eng, DNNL_MEMORY_ALLOCATE))
            io->scratch = NULL;
    }
    if (!io->src || !io->dst || (p->scratch_bytes && !io->scratch)) {
        ek_mm_io_free(io);
        return -1;
    }
    return 0;
}

void ek_mm_io_free(ek_mm_io *io) {
    if (io->src) dnnl_memory_destroy(io->src);
    if (io->dst) dnnl_memory_destroy(io->dst);
    if (io->scratch) dnnl_memory_destroy(io->scratch);
    memset(io, 0, sizeof *io);
}

int ek_mm_run(const ek_mm_prim *p, ek_mm_io *io, dnnl_stream_t s, const void *A, const ek_mm_weights *pw,
              void *C) {
    /* oneDNN takes non-const handles; it only reads the source. */
    if (dnnl_memory_set_data_handle(io->src, (void *)A) || dnnl_memory_set_data_handle(io->dst, C)) return -1;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, io->src}, {DNNL_ARG_WEIGHTS, pw->w}, {DNNL_ARG_DST, io->dst}};
    int nargs = 3;
    if (p->flags & EK_MM_BIAS) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, pw->bias};
    if (io->scratch) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, io->scratch};
    if (dnnl_primitive_execute(p->prim, s, nargs, args) != dnnl_success) return -1;
    return dnnl_stream_wait(s) == dnnl_success ? 0 : -1;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ek_mm_peak_gflops(ek_mm_type type, int M, int N, int K, int reps) {
    if (reps < 1 || reps > 1000) reps = 10;
    dnnl_engine_t eng = NULL;
    dnnl_stream_t s = NULL;
    float *W = malloc(sizeof(float) * (size_t)N * K);
    void *A = calloc((size_t)M * K, 4), *C = calloc((size_t)M * N, 4);
    double *t = malloc(sizeof(double) * (size_t)reps), gf = -1.0;
    ek_mm_weights pw;
    ek_mm_prim p;
    ek_mm_io io;
    memset(&pw, 0, sizeof pw), memset(&p, 0, sizeof p), memset(&io, 0, sizeof io);
    if (!W || !A || !C || !t || dnnl_engine_create(&eng, dnnl_cpu, 0)) goto out;
    if (dnnl_stream_create(&s, eng, dnnl_stream_default_flags)) {
        s = NULL;
        goto out;
    }
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    /* Non-zero sources: 0x3c (u8 60, a small positive f32/bf16 pattern). */
    memset(A, 0x3c, (size_t)M * K * ek_mm_type_size(src_type(type)));
    if (ek_mm_weights_pack(&pw, eng, type, W, NULL, N, K) ||
        ek_mm_prim_init(&p, eng, M, &pw, type == EK_MM_S8 ? EK_MM_S32 : EK_MM_F32, 0) ||
        ek_mm_io_init(&io, eng, &p) || ek_mm_run(&p, &io, s, A, &pw, C))
        goto out;
    for (int r = 0; r < reps; r++) {
        double t0 = seconds();
        if (ek_mm_run(&p, &io, s, A, &pw, C)) goto out;
        t[r] = seconds() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    gf = 2.0 * M * N * K / t[reps / 2] * 1e-9;
out:
    ek_mm_io_free(&io);
    ek_mm_prim_free(&p);
    ek_mm_weights_free(&pw);
    if (s) dnnl_stream_destroy(s);
    if (eng) dnnl_engine_destroy(eng);
    free(W), free(A), free(C), free(t);
    return gf;
}
