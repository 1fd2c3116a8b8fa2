/* search/topk.h — exact top-k selection: a bounded heap per query that keeps
 * the k best (key, index) pairs seen so far.
 *
 * Keys are "higher is better" (distances are negated by the caller).  Order:
 * a higher key wins; equal keys are broken by the lower index, so results do
 * not depend on the thread count or the tile size.  The heap's root is its
 * worst entry, so a candidate costs one comparison unless it gets in. */
#ifndef EK_SEARCH_TOPK_H
#define EK_SEARCH_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct ek_topk {
    float *key;
    int64_t *idx;
    size_t k, n; /* capacity, entries held */
} ek_topk;

/* Uses caller storage for k keys and k indices (no allocation). */
void ek_topk_init(ek_topk *t, float *key, int64_t *idx, size_t k);
/* 1 if (ka, ia) ranks strictly before (kb, ib). */
static inline int ek_topk_better(float ka, int64_t ia, float kb, int64_t ib) {
    return ka > kb || (ka == kb && ia < ib);
}
/* Offers one candidate. */
void ek_topk_push(ek_topk *t, float key, int64_t idx);
/* The key a candidate must beat to enter (-inf while not full).  Within one
 * ascending scan an equal key never enters (its index is higher). */
static inline float ek_topk_floor(const ek_topk *t) {
    return t->n < t->k ? -__builtin_inff() : t->key[0];
}
/* Offers n candidates with keys key[i] and indices base + i: the scan loop
 * of every search.  first_above (kernels.h) skips the keys that cannot get
 * in. */
void ek_topk_scan(ek_topk *t, const float *key, size_t n, int64_t base,
                  size_t (*first_above)(const float *, size_t, float));
/* Sorts the held entries best first (destroys the heap order). */
void ek_topk_sort(ek_topk *t);

#endif
