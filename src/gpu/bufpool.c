/* gpu/bufpool.c — device memory under a budget.  Every device buffer is
 * made here and stays in the pool after use, so steady-state calls reuse
 * allocations instead of paying the driver each time.  When a new buffer
 * would exceed the budget, idle buffers are released least recently used
 * first — idle scratch and unpinned resident data (weights, matrices) alike;
 * resident data is uploaded again when next needed.  If nothing idle is
 * left, the request fails with EK_GPU_PRESSURE and the caller splits its
 * batch.  A handle is used by one thread at a time (as ek_ctx), so there is
 * no lock. */
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"

static void release(ek_gpu *g, int i) {
    ek_gbuf *b = g->pool.b[i];
    g->cl.clReleaseMemObject(b->mem);
    g->pool.used -= b->size;
    free(b);
    g->pool.b[i] = g->pool.b[--g->pool.n];
    g->st.evictions++;
}

/* Releases the least recently used idle buffer; 0 if there was none. */
static int evict_one(ek_gpu *g) {
    int best = -1;
    for (int i = 0; i < g->pool.n; i++) {
        ek_gbuf *b = g->pool.b[i];
        if (b->busy) continue;
        if (best < 0 || b->last_use < g->pool.b[best]->last_use) best = i;
    }
    if (best < 0) return 0;
    release(g, best);
    return 1;
}

/* A new buffer of bytes, within the budget; EK_GPU_PRESSURE otherwise. */
static int create(ek_gpu *g, size_t bytes, const void *key, ek_gbuf **out, ek_err *e) {
    if (bytes > g->max_alloc && g->max_alloc)
        return ek_err_set(e, EK_GPU_PRESSURE, "gpu: %zu bytes exceed the device's largest buffer (%zu)", bytes,
                          g->max_alloc);
    while (g->pool.used + bytes > g->pool.budget)
        if (!evict_one(g))
            return ek_err_set(e, EK_GPU_PRESSURE, "gpu: %zu bytes do not fit the device budget (%zu of %zu in use)",
                              bytes, g->pool.used, g->pool.budget);
    if (g->pool.n == g->pool.cap) {
        int nc = g->pool.cap ? g->pool.cap * 2 : 32;
        ek_gbuf **nb = realloc(g->pool.b, sizeof *nb * (size_t)nc);
        if (!nb) return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
        g->pool.b = nb;
        g->pool.cap = nc;
    }
    ek_gbuf *b = calloc(1, sizeof *b);
    if (!b) return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
    cl_int err = g->hook ? g->hook(g->hook_user, bytes) : CL_SUCCESS;
    if (err == CL_SUCCESS) b->mem = g->cl.clCreateBuffer(g->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS || !b->mem) {
        free(b);
        if (err == CL_SUCCESS) err = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        return ek_gpu_check(g, err, "clCreateBuffer", e);
    }
    b->size = bytes;
    b->key = key;
    b->busy = 1;
    b->last_use = ++g->pool.tick;
    g->pool.b[g->pool.n++] = b;
    g->pool.used += bytes;
    if (g->pool.used > g->pool.peak) g->pool.peak = g->pool.used;
    g->st.allocations++;
    *out = b;
    return EK_OK;
}

/* Buffers are sized in 64 KiB steps so that batches of slightly different
 * sizes reuse one another's buffers. */
static size_t granule(size_t bytes) {
    size_t g = (size_t)64 << 10;
    return bytes < 4096 ? 4096 : (bytes + g - 1) / g * g;
}

int ek_gpool_take(ek_gpu *g, size_t bytes, ek_gbuf **out, ek_err *e) {
    bytes = granule(bytes);
    int best = -1;
    for (int i = 0; i < g->pool.n; i++) {
        ek_gbuf *b = g->pool.b[i];
        if (b->busy || b->key || b->size < bytes || b->size > 2 * bytes) continue;
        if (best < 0 || b->size < g->pool.b[best]->size) best = i;
    }
    if (best >= 0) {
        ek_gbuf *b = g->pool.b[best];
        b->busy = 1;
        b->last_use = ++g->pool.tick;
        g->st.reuses++;
        *out = b;
        return EK_OK;
    }
    return create(g, bytes, NULL, out, e);
}

int ek_gpool_resident(ek_gpu *g, const void *key, size_t bytes, ek_gbuf **out, int *fresh, ek_err *e) {
    for (int i = 0; i < g->pool.n; i++) {
        ek_gbuf *b = g->pool.b[i];
        if (b->key != key || b->size < bytes) continue;
        b->busy = 1;
        b->last_use = ++g->pool.tick;
        g->st.reuses++;
        *fresh = !b->valid;
        *out = b;
        return EK_OK;
    }
    *fresh = 1;
    return create(g, bytes, key, out, e);
}

void ek_gpool_give(ek_gpu *g, ek_gbuf *b) {
    if (!b) return;
    b->busy = 0;
    b->last_use = ++g->pool.tick;
}

void ek_gpool_forget(ek_gpu *g, const void *key) {
    for (int i = 0; i < g->pool.n;) {
        if (g->pool.b[i]->key == key && !g->pool.b[i]->busy) {
            release(g, i);
            g->st.evictions--; /* not an eviction: the owner let it go */
        } else {
            i++;
        }
    }
}

void ek_gpool_trim(ek_gpu *g) {
    for (int i = 0; i < g->pool.n;) {
        if (!g->pool.b[i]->busy) {
            release(g, i);
            g->st.evictions--;
        } else {
            i++;
        }
    }
}

void ek_gpool_free(ek_gpu *g) {
    for (int i = 0; i < g->pool.n; i++) {
        g->cl.clReleaseMemObject(g->pool.b[i]->mem);
        free(g->pool.b[i]);
    }
    free(g->pool.b);
    memset(&g->pool.b, 0, sizeof g->pool.b);
    g->pool.n = g->pool.cap = 0;
    g->pool.used = 0;
}
