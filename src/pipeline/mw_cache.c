/* pipeline/mw_cache.c — the embedding cache: an LRU bounded by bytes, keyed
 * by a BLAKE2b digest (libsodium crypto_generichash) of everything that
 * decides an embedding: the model identity (name@version and its weights
 * digest), the compute dtype, the embed options (pooling, normalisation,
 * max length, truncation, dimensions, prompt) and the text.
 *
 * A batch is looked up item by item; only the misses go down the chain (as
 * one smaller batch, written compactly into the caller's output) and are
 * then spread back to their input positions, with the hits copied in
 * between, so the output keeps input order.  A command whose every text hits
 * never reaches the handler (EK_MW_SHORT_CIRCUITS). */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"

#define KEY_BYTES 16

typedef struct entry {
    uint8_t key[KEY_BYTES];
    struct entry *hnext;           /* hash chain */
    struct entry *prev, *next;     /* LRU list, most recent first */
    int dim;
    int32_t tokens;
    float v[];
} entry;

struct ek_cache {
    size_t max_bytes, bytes, entries;
    ek_model_resolver resolver;
    pthread_mutex_t mu;
    entry **buckets;
    size_t n_buckets;              /* power of two */
    entry *head, *tail;
    uint64_t hits, misses, evictions;
    ek_series *m_hit, *m_miss, *m_evict, *m_bytes, *m_entries;
};

static size_t entry_bytes(int dim) { return sizeof(entry) + (size_t)dim * sizeof(float); }

ek_status ek_cache_new(size_t max_bytes, const ek_model_resolver *resolver,
                       ek_metrics *metrics, ek_cache **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    if (sodium_init() < 0) return EK_ERR_INTERNAL;
    ek_cache *c = calloc(1, sizeof *c);
    if (!c) return EK_ERR_NOMEM;
    c->max_bytes = max_bytes;
    if (resolver) c->resolver = *resolver;
    /* About one bucket per 512 cached bytes, 1 Ki .. 1 Mi buckets. */
    size_t nb = 1024;
    while (nb < max_bytes / 512 && nb < ((size_t)1 << 20)) nb <<= 1;
    c->n_buckets = nb;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return EK_ERR_NOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    if (metrics) {
        static const char *const lbl[] = {"result"};
        ek_metric_family *req = NULL, *ev = NULL, *by = NULL, *en = NULL;
        ek_metrics_add(metrics, EK_COUNTER, "embedkit_cache_requests_total",
                       "Embedding cache lookups by result.", 1, lbl, 2, NULL, 0, &req);
        ek_metrics_add(metrics, EK_COUNTER, "embedkit_cache_evictions_total",
                       "Embeddings evicted from the cache for room.", 0, NULL, 1, NULL, 0, &ev);
        ek_metrics_add(metrics, EK_GAUGE, "embedkit_cache_bytes",
                       "Bytes held by the embedding cache.", 0, NULL, 1, NULL, 0, &by);
        ek_metrics_add(metrics, EK_GAUGE, "embedkit_cache_entries",
                       "Embeddings held by the embedding cache.", 0, NULL, 1, NULL, 0, &en);
        c->m_hit = ek_metric_series(req, (const char *const[]){"hit"});
        c->m_miss = ek_metric_series(req, (const char *const[]){"miss"});
        c->m_evict = ek_metric_series(ev, NULL);
        c->m_bytes = ek_metric_series(by, NULL);
        c->m_entries = ek_metric_series(en, NULL);
    }
    *out = c;
    return EK_OK;
}

static void unlink_lru(ek_cache *c, entry *e) {
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(ek_cache *c, entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static entry **slot_of(ek_cache *c, const uint8_t *key) {
    uint64_t h;
    memcpy(&h, key, sizeof h);
    entry **s = &c->buckets[h & (c->n_buckets - 1)];
    while (*s && memcmp((*s)->key, key, KEY_BYTES)) s = &(*s)->hnext;
    return s;
}

static void remove_entry(ek_cache *c, entry *e) {
    entry **s = slot_of(c, e->key);
    *s = e->hnext;
    unlink_lru(c, e);
    c->bytes -= entry_bytes(e->dim);
    c->entries--;
    free(e);
}

static void publish_gauges(ek_cache *c) {
    if (c->m_bytes) ek_series_set(c->m_bytes, (double)c->bytes);
    if (c->m_entries) ek_series_set(c->m_entries, (double)c->entries);
}

size_t ek_cache_clear(ek_cache *c) {
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->entries;
    while (c->head) remove_entry(c, c->head);
    publish_gauges(c);
    pthread_mutex_unlock(&c->mu);
    return n;
}

void ek_cache_free(ek_cache *c) {
    if (!c) return;
    ek_cache_clear(c);
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c);
}

void ek_cache_get_stats(ek_cache *c, ek_cache_stats *o) {
    pthread_mutex_lock(&c->mu);
    o->hits = c->hits;
    o->misses = c->misses;
    o->evictions = c->evictions;
    o->entries = c->entries;
    o->bytes = c->bytes;
    o->max_bytes = c->max_bytes;
    pthread_mutex_unlock(&c->mu);
}

/* Lock held. */
static void insert(ek_cache *c, const uint8_t *key, const float *v, int dim, int32_t tokens) {
    size_t need = entry_bytes(dim);
    if (need > c->max_bytes) return;
    entry **s = slot_of(c, key);
    if (*s) { /* another thread inserted it meanwhile */
        unlink_lru(c, *s);
        push_front(c, *s);
        return;
    }
    while (c->tail && c->bytes + need > c->max_bytes) {
        remove_entry(c, c->tail);
        c->evictions++;
        if (c->m_evict) ek_series_add(c->m_evict, 1);
    }
    entry *e = malloc(need);
    if (!e) return; /* a cache that cannot grow just misses */
    memcpy(e->key, key, KEY_BYTES);
    e->dim = dim;
    e->tokens = tokens;
    memcpy(e->v, v, (size_t)dim * sizeof(float));
    s = slot_of(c, key); /* eviction may have changed the chain */
    e->hnext = *s;
    *s = e;
    push_front(c, e);
    c->bytes += need;
    c->entries++;
}

static void hash_i32(crypto_generichash_state *h, int v) {
    int32_t x = v;
    crypto_generichash_update(h, (const unsigned char *)&x, sizeof x);
}

static void hash_str(crypto_generichash_state *h, const char *s) {
    size_t n = s ? strlen(s) : 0;
    uint64_t len = s ? n : UINT64_MAX; /* NULL and "" differ */
    crypto_generichash_update(h, (const unsigned char *)&len, sizeof len);
    if (n) crypto_generichash_update(h, (const unsigned char *)s, n);
}

/* The digest state after everything but the text. */
static void key_prefix(crypto_generichash_state *h, const ek_model_identity *id,
                       const ek_embed_options *opts) {
    ek_embed_options d;
    if (!opts) {
        ek_embed_options_init(&d);
        opts = &d;
    }
    crypto_generichash_init(h, NULL, 0, KEY_BYTES);
    hash_str(h, "embedkit-cache-v1");
    hash_str(h, id->key);
    hash_str(h, id->digest);
    hash_i32(h, id->dtype);
    hash_i32(h, opts->pooling);
    hash_i32(h, opts->normalize);
    hash_i32(h, opts->max_length);
    hash_i32(h, (int)opts->truncate);
    hash_i32(h, opts->dimensions);
    hash_str(h, opts->prompt);
}

static ek_status cache_mw(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_cache *c = state;
    ek_embed_args *e = &cmd->u.embed;
    ek_model_identity id;
    memset(&id, 0, sizeof id);
    if (!c->max_bytes || !e->n || !e->out || !c->resolver.identify ||
        c->resolver.identify(c->resolver.arg, cmd->model, &id))
        return ek_next_run(next, cmd, cx); /* off, or unknown model: the handler reports it */
    size_t n = e->n;
    crypto_generichash_state prefix;
    key_prefix(&prefix, &id, e->opts);

    /* Scratch per command: keys, the miss list (with its texts), the hits'
     * vectors.  One allocation; the pipeline core itself never allocates. */
    size_t scratch = n * (KEY_BYTES + sizeof(size_t) + sizeof(char *) + sizeof(size_t) + sizeof(int32_t) + 1);
    unsigned char *mem = malloc(scratch);
    if (!mem) return ek_cmd_fail(cx, "cache", EK_ERR_NOMEM, "cache: out of memory for %zu keys", n);
    uint8_t *keys = mem;
    size_t *miss = (size_t *)(void *)(mem + n * KEY_BYTES);
    const char **mtexts = (const char **)(void *)(miss + n);
    size_t *mlens = (size_t *)(void *)(mtexts + n);
    int32_t *htokens = (int32_t *)(void *)(mlens + n);
    uint8_t *is_hit = (uint8_t *)(htokens + n);
    float *hits = NULL;
    int dim = 0;
    size_t n_miss = 0, n_hit = 0;
    ek_status st = EK_OK;

    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = ek_cmd_text_at(cmd, i, &len);
        crypto_generichash_state h = prefix;
        crypto_generichash_update(&h, (const unsigned char *)t, len);
        crypto_generichash_final(&h, keys + i * KEY_BYTES, KEY_BYTES);
    }
    memset(is_hit, 0, n);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        entry *hit = *slot_of(c, keys + i * KEY_BYTES);
        if (hit && (!dim || hit->dim == dim)) {
            if (!hits) {
                dim = hit->dim;
                hits = malloc(n * (size_t)dim * sizeof(float));
                if (!hits) break;
            }
            /* Copied now: the entry may be evicted before we write out. */
            memcpy(hits + i * (size_t)dim, hit->v, (size_t)dim * sizeof(float));
            htokens[i] = hit->tokens;
            is_hit[i] = 1;
            unlink_lru(c, hit);
            push_front(c, hit);
            n_hit++;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!is_hit[i]) {
            miss[n_miss] = i;
            mtexts[n_miss] = ek_cmd_text_at(cmd, i, &mlens[n_miss]);
            n_miss++;
        }
    c->hits += n_hit;
    c->misses += n_miss;
    pthread_mutex_unlock(&c->mu);
    if (c->m_hit && n_hit) ek_series_add(c->m_hit, (double)n_hit);
    if (c->m_miss && n_miss) ek_series_add(c->m_miss, (double)n_miss);

    if (n_miss) {
        ek_cmd sub = *cmd;
        ek_embed_args *s = &sub.u.embed;
        s->texts = mtexts;
        s->lens = mlens;
        s->n = n_miss;
        st = ek_next_run(next, &sub, cx);
        e->stages = s->stages; /* the model ran for the misses only */
        if (st != EK_OK) goto done;
        if (dim && s->dim != dim) {
            st = ek_cmd_fail(cx, "cache", EK_ERR_INTERNAL,
                             "cache: model %s returned dimension %d, cached entries have %d",
                             id.key, s->dim, dim);
            goto done;
        }
        dim = s->dim;
    }
    if ((size_t)dim * n > e->out_cap) {
        st = ek_cmd_fail(cx, "cache", EK_ERR_INVALID_ARG,
                         "out: capacity %zu floats, %zu x %d needed", e->out_cap, n, dim);
        goto done;
    }
    if (n_miss) {
        pthread_mutex_lock(&c->mu);
        for (size_t j = 0; j < n_miss; j++)
            insert(c, keys + miss[j] * KEY_BYTES, e->out + j * (size_t)dim, dim,
                   e->token_counts ? e->token_counts[j] : 0);
        publish_gauges(c);
        pthread_mutex_unlock(&c->mu);
        /* Spread the compact miss rows to their input positions, last
         * first: miss[j] >= j, so no row is overwritten before it moved. */
        for (size_t j = n_miss; j-- > 0;) {
            if (miss[j] == j) continue;
            memmove(e->out + miss[j] * (size_t)dim, e->out + j * (size_t)dim, (size_t)dim * sizeof(float));
            if (e->token_counts) e->token_counts[miss[j]] = e->token_counts[j];
        }
    }
    for (size_t i = 0; i < n; i++)
        if (is_hit[i]) {
            memcpy(e->out + i * (size_t)dim, hits + i * (size_t)dim, (size_t)dim * sizeof(float));
            if (e->token_counts) e->token_counts[i] = htokens[i];
        }
    e->dim = dim;
    e->cache_hits = n_hit;
    e->cache_misses = n_miss;
done:
    free(hits);
    free(mem);
    return st;
}

ek_middleware ek_cache_middleware(ek_cache *c) {
    ek_middleware m = {"cache", EK_MW_PREPROCESS, EK_SCOPE_EMBED, EK_MW_SHORT_CIRCUITS, cache_mw, c, NULL};
    return m;
}
