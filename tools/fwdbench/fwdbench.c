/* tools/fwdbench/fwdbench.c — forward-pass throughput on a MiniLM-L6-shaped
 * BERT (6 layers, hidden 384, 12 heads, FFN 1536) with random weights.
 * Not part of the build; compile by hand against the static library
 * (`ek bench forward` is the supported benchmark).  Prints ms per forward and
 * GFLOP/s for batches of n_seq x seq_len tokens, with the weights packed
 * once for the compute dtype (model/prepack.h), as a loaded model has them.
 *   usage: fwdbench [threads] [f32|bf16|int8] [n_seq seq_len]...
 *          (default 2 f32  32 128  1 16) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/forward.h"
#include "model/prepack.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *rnd(size_t n, float s, unsigned *seed) {
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = s * ((float)rand_r(seed) / RAND_MAX - 0.5f);
    return v;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *dt = argc > 2 ? argv[2] : "f32";
    int dtype = !strcmp(dt, "bf16") ? EK_FWD_BF16 : !strcmp(dt, "int8") ? EK_FWD_INT8 : EK_FWD_F32;
    int shapes[16][2] = {{32, 128}, {1, 16}}, ns = 2;
    if (argc > 4) {
        ns = 0;
        for (int i = 3; i + 1 < argc && ns < 16; i += 2, ns++)
            shapes[ns][0] = atoi(argv[i]), shapes[ns][1] = atoi(argv[i + 1]);
    }
    const int H = 384, I = 1536, NL = 6, V = 30522, P = 512;
    unsigned seed = 42;
    ek_bert_weights w;
    memset(&w, 0, sizeof w);
    w.cfg = (ek_bert_config){"bert", "gelu", H, NL, 12, I, P, 2, V, 1e-12f, 0, EK_FWD_F32};
    w.word_emb = rnd((size_t)V * H, 1, &seed);
    w.pos_emb = rnd((size_t)P * H, 1, &seed);
    w.type_emb = rnd(2 * (size_t)H, 1, &seed);
    float *ones = malloc(sizeof(float) * I);
    for (int i = 0; i < I; i++) ones[i] = 1;
    float *zeros = calloc(I, sizeof(float));
    w.ln_emb = (ek_layernorm){ones, zeros, H};
    ek_bert_layer layers[6];
    for (int l = 0; l < NL; l++) {
        float s = 2.0f / sqrtf(H);
        layers[l].qkv = (ek_linear){rnd(3 * (size_t)H * H, s, &seed), rnd(3 * H, 0.1f, &seed), 3 * H, H};
        layers[l].attn_out = (ek_linear){rnd((size_t)H * H, s, &seed), rnd(H, 0.1f, &seed), H, H};
        layers[l].ffn_in = (ek_linear){rnd((size_t)I * H, s, &seed), rnd(I, 0.1f, &seed), I, H};
        layers[l].ffn_out = (ek_linear){rnd((size_t)H * I, 2.0f / sqrtf(I), &seed), rnd(H, 0.1f, &seed), H, I};
        layers[l].ln_attn = layers[l].ln_ffn = (ek_layernorm){ones, zeros, H};
    }
    w.layer = layers;
    ek_err pe = {0};
    if (ek_bert_runtime_create(&w, dtype, &w.rt, &pe)) {
        fprintf(stderr, "packing failed: %s\n", pe.msg);
        return 1;
    }
    w.cfg.compute_dtype = dtype;

    for (int si = 0; si < ns; si++) {
        int n = shapes[si][0], L = shapes[si][1], R = n * L;
        int32_t *ids = malloc(sizeof(int32_t) * R), *st = malloc(sizeof(int32_t) * (n + 1));
        for (int i = 0; i < R; i++) ids[i] = rand_r(&seed) % V;
        for (int s = 0; s <= n; s++) st[s] = s * L;
        ek_fwd_batch b = {ids, NULL, st, n};
        size_t sz = ek_bert_forward_scratch_size(&w.cfg, R, L, threads);
        void *scratch = aligned_alloc(64, (sz + 63) / 64 * 64);
        float *out = malloc(sizeof(float) * R * H), *attn = malloc(sizeof(float) * R);
        ek_err e = {0};
        double times[200];
        int reps = 0;
        double t_end = now() + 3.0;
        if (ek_bert_forward(&w, &b, out, attn, scratch, threads, &e)) { /* warm-up */
            fprintf(stderr, "forward failed: %s\n", e.msg);
            return 1;
        }
        while (reps < 200 && (reps < 5 || now() < t_end)) {
            double t0 = now();
            ek_bert_forward(&w, &b, out, attn, scratch, threads, &e);
            times[reps++] = now() - t0;
        }
        qsort(times, reps, sizeof times[0], cmp);
        double flops = (double)NL * (2.0 * R * (4.0 * H * H + 2.0 * H * I) + 4.0 * n * L * L * H);
        double med = times[reps / 2];
        printf("%s %3d x %4d tokens, %d threads: median %.2f ms (min %.2f, %d runs), %.1f GFLOP/s, %.0f tokens/s, %.1f seq/s\n",
               dt, n, L, threads, med * 1e3, times[0] * 1e3, reps, flops / med * 1e-9, R / med, n / med);
        free(ids), free(st), free(scratch), free(out), free(attn);
    }
    ek_bert_runtime_free(w.rt);
    return 0;
}
