/* registry/pool.c — the model pool: loaded models keyed by (name, version),
 * shared by threads.
 *
 * One mutex guards the table; one condition variable wakes threads waiting
 * for a load another thread started (single flight: the first thread to ask
 * loads, outside the lock, and the rest wait for it rather than load the
 * same weights again).  A handle is the table entry itself with its
 * reference count raised, so acquiring a loaded version allocates nothing.
 * Unloading happens only to entries with no references, least recently
 * used first, and the model is freed after the lock is dropped.
 *
 * References are resolved through the registry at every acquire: moving an
 * alias is a committed row, and the next acquire sees it, while threads
 * holding the old version keep it until they release it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/reg.h"
#include "runtime/ctx.h"

enum { ENT_LOADING, ENT_LOADED, ENT_FAILED };

struct ek_pool_handle {
    struct ek_pool_handle *next;
    struct ek_pool *pool;
    char name[EK_REGISTRY_NAME_MAX + 1];
    int64_t version;
    ek_model *model;
    uint64_t bytes;
    int refs;          /* callers holding it (the loader counts as one) */
    int waiters;       /* threads waiting for its load */
    int state;
    ek_err err;        /* why the load failed */
    uint64_t last_used;
};

struct ek_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ek_pool_handle *head;
    uint64_t budget, bytes, clock;
    ek_pool_stats st;
    pthread_mutex_t reg_mu;   /* the registry connection is used by one thread at a time */
    ek_registry *reg;
    ek_sig_policy verify;     /* at least this (under reg_mu); the registry setting may be stricter */
};

ek_status ek_pool_new(ek_ctx *ctx, const char *home, uint64_t budget, ek_pool **out) {
    if (!ctx || !out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    struct ek_pool *p = calloc(1, sizeof *p);
    if (!p) return ek_err_set(&ctx->err, EK_ERR_NOMEM, "out of memory");
    int rc = (int)ek_registry_open(ctx, home, NULL, &p->reg);
    if (rc) {
        free(p);
        return (ek_status)rc;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->reg_mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->budget = budget;
    *out = p;
    return EK_OK;
}

void ek_pool_free(ek_pool *p) {
    if (!p) return;
    struct ek_pool_handle *h = p->head;
    while (h) {
        struct ek_pool_handle *next = h->next;
        ek_model_free(h->model);
        free(h);
        h = next;
    }
    ek_registry_close(p->reg);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->reg_mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void unlink_entry(struct ek_pool *p, struct ek_pool_handle *h) {
    for (struct ek_pool_handle **pp = &p->head; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            return;
        }
}

/* Unloads idle versions, least recently used first, until need more bytes
 * fit the budget.  Called with the lock held; the evicted entries are
 * chained on *dead to be freed after it is released. */
static void make_room(struct ek_pool *p, uint64_t need, struct ek_pool_handle **dead) {
    if (!p->budget) return;
    while (p->bytes + need > p->budget) {
        struct ek_pool_handle *lru = NULL;
        for (struct ek_pool_handle *h = p->head; h; h = h->next)
            if (h->state == ENT_LOADED && h->refs == 0 && h->waiters == 0 &&
                (!lru || h->last_used < lru->last_used))
                lru = h;
        if (!lru) return; /* everything is in use: go over budget, never fail a caller */
        unlink_entry(p, lru);
        p->bytes -= lru->bytes;
        p->st.evictions++;
        lru->next = *dead;
        *dead = lru;
    }
}

static void free_dead(struct ek_pool_handle *dead) {
    while (dead) {
        struct ek_pool_handle *next = dead->next;
        ek_model_free(dead->model);
        free(dead);
        dead = next;
    }
}

ek_status ek_pool_acquire(ek_ctx *ctx, ek_pool *p, const char *ref, ek_pool_handle **out) {
    if (!ctx || !p || !ref || !out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    ek_err *e = &ctx->err;
    ek_reg_version v;
    pthread_mutex_lock(&p->reg_mu);
    int rc = (int)ek_registry_lookup(ctx, p->reg, ref, &v);
    pthread_mutex_unlock(&p->reg_mu);
    if (rc || (rc = reg_require_ready(&v, e))) return (ek_status)rc;
    struct ek_pool_handle *dead = NULL, *h;
    int waited = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (h = p->head; h; h = h->next)
            if (h->version == v.version && !strcmp(h->name, v.name)) break;
        if (!h) break;
        if (h->state == ENT_LOADED) {
            h->refs++;
            h->last_used = ++p->clock;
            if (!waited) p->st.hits++;
            pthread_mutex_unlock(&p->mu);
            *out = h;
            return EK_OK;
        }
        /* Another thread is loading it (or just failed to): wait for it. */
        h->waiters++;
        p->st.waits++;
        waited = 1;
        while (h->state == ENT_LOADING) pthread_cond_wait(&p->cv, &p->mu);
        h->waiters--;
        if (h->state == ENT_FAILED) {
            *e = h->err;
            if (h->waiters == 0 && h->refs == 0) {
                unlink_entry(p, h);
                free(h);
            }
            pthread_mutex_unlock(&p->mu);
            return (ek_status)e->status;
        }
    }
    h = calloc(1, sizeof *h);
    if (!h) {
        pthread_mutex_unlock(&p->mu);
        return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    }
    h->pool = p;
    snprintf(h->name, sizeof h->name, "%s", v.name);
    h->version = v.version;
    h->bytes = v.total_bytes;
    h->refs = 1;
    h->state = ENT_LOADING;
    h->next = p->head;
    p->head = h;
    make_room(p, h->bytes, &dead);
    p->bytes += h->bytes; /* reserved now so concurrent loads see it */
    pthread_mutex_unlock(&p->mu);
    free_dead(dead);

    ek_model *m = NULL;
    rc = reg_load_version(ctx, p->reg, &p->reg_mu, &v, p->verify, NULL, &m);

    pthread_mutex_lock(&p->mu);
    if (rc) {
        h->state = ENT_FAILED;
        h->err = ctx->err;
        h->refs = 0;
        p->bytes -= h->bytes;
        if (h->waiters == 0) {
            unlink_entry(p, h);
            free(h);
        }
    } else {
        h->model = m;
        h->state = ENT_LOADED;
        h->last_used = ++p->clock;
        p->st.loads++;
        *out = h;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return (ek_status)rc;
}

void ek_pool_set_verify(ek_pool *p, ek_sig_policy verify) {
    if (!p) return;
    pthread_mutex_lock(&p->reg_mu);
    p->verify = verify;
    pthread_mutex_unlock(&p->reg_mu);
}

const ek_model *ek_pool_model(const ek_pool_handle *h) { return h ? h->model : NULL; }
const char *ek_pool_handle_name(const ek_pool_handle *h) { return h ? h->name : NULL; }
int64_t ek_pool_handle_version(const ek_pool_handle *h) { return h ? h->version : 0; }

void ek_pool_release(ek_pool_handle *h) {
    if (!h) return;
    struct ek_pool *p = h->pool;
    struct ek_pool_handle *dead = NULL;
    pthread_mutex_lock(&p->mu);
    h->refs--;
    h->last_used = ++p->clock;
    /* Over budget because everything was busy earlier: catch up now. */
    if (p->budget && p->bytes > p->budget) make_room(p, 0, &dead);
    pthread_mutex_unlock(&p->mu);
    free_dead(dead);
}

void ek_pool_get_stats(ek_pool *p, ek_pool_stats *out) {
    if (!p || !out) return;
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->budget = p->budget;
    out->bytes = 0;
    out->loaded = out->in_use = 0;
    for (struct ek_pool_handle *h = p->head; h; h = h->next) {
        if (h->state != ENT_LOADED) continue;
        out->loaded++;
        out->in_use += h->refs > 0;
        out->bytes += h->bytes;
    }
    pthread_mutex_unlock(&p->mu);
}
