/* model/head.c — the sentence-transformers modules after Pooling, shared by
 * every backend (CPU runtime, OpenCL): Dense and Normalize in modules.json
 * order, the caller's normalisation override, then Matryoshka truncation with
 * renormalisation of the kept prefix. */
#include <string.h>

#include "model/model.h"
#include "ops/ops.h"

void ek_model_head(const struct ek_model *m, int normalize, float *a, float *b, int d, float *out, int dim) {
    int normalized_last = 0;
    for (int s = 0; s < m->n_steps; s++) {
        int k = m->steps[s];
        if (k < 0) {
            if (normalize != 0) ek_op_l2_normalize(a, d);
            normalized_last = 1;
            continue;
        }
        const ek_dense_layer *D = &m->dense[k];
        ek_op_dense(D->w, D->b, D->out, D->in, D->act, a, b);
        d = D->out;
        float *t = a;
        a = b;
        b = t;
        normalized_last = 0;
    }
    int norm = normalize == 1 || (normalize == -1 && m->normalize);
    if (normalize == 1 && !normalized_last) ek_op_l2_normalize(a, d);
    if (dim < d && norm) ek_op_l2_normalize(a, dim); /* Matryoshka: renormalise the prefix */
    memcpy(out, a, sizeof(float) * (size_t)dim);
}
