/* search/topk.c — the bounded heap behind exact top-k (see topk.h).
 * Hand-written because it is tiny and on the hot path: a generic sort of N
 * scores would cost N log N and touch every score twice. */
#include "search/topk.h"

#include <stdlib.h>

void ek_topk_init(ek_topk *t, float *key, int64_t *idx, size_t k) {
    t->key = key;
    t->idx = idx;
    t->k = k;
    t->n = 0;
}

/* The heap keeps the worst entry at the root: parent is worse than child. */
static int worse(const ek_topk *t, size_t a, size_t b) {
    return ek_topk_better(t->key[b], t->idx[b], t->key[a], t->idx[a]);
}

static void swap(ek_topk *t, size_t a, size_t b) {
    float k = t->key[a];
    t->key[a] = t->key[b];
    t->key[b] = k;
    int64_t i = t->idx[a];
    t->idx[a] = t->idx[b];
    t->idx[b] = i;
}

static void sift_down(ek_topk *t, size_t i, size_t n) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(t, l, w)) w = l;
        if (r < n && worse(t, r, w)) w = r;
        if (w == i) return;
        swap(t, i, w);
        i = w;
    }
}

void ek_topk_push(ek_topk *t, float key, int64_t idx) {
    if (t->k == 0) return;
    if (t->n < t->k) {
        size_t i = t->n++;
        t->key[i] = key;
        t->idx[i] = idx;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(t, i, p)) break;
            swap(t, i, p);
            i = p;
        }
        return;
    }
    if (!ek_topk_better(key, idx, t->key[0], t->idx[0])) return;
    t->key[0] = key;
    t->idx[0] = idx;
    sift_down(t, 0, t->n);
}

void ek_topk_scan(ek_topk *t, const float *key, size_t n, int64_t base,
                  size_t (*first_above)(const float *, size_t, float)) {
    size_t i = 0;
    for (; i < n && t->n < t->k; i++) ek_topk_push(t, key[i], base + (int64_t)i);
    while (i < n) {
        i += first_above(key + i, n - i, ek_topk_floor(t));
        if (i == n) break;
        ek_topk_push(t, key[i], base + (int64_t)i);
        i++;
    }
}

void ek_topk_sort(ek_topk *t) {
    /* Heapsort: repeatedly move the worst to the end, giving best first. */
    for (size_t n = t->n; n > 1; n--) {
        swap(t, 0, n - 1);
        sift_down(t, 0, n - 1);
    }
}
