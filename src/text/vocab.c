/* text/vocab.c — the WordPiece vocabulary: token bytes <-> id.
 *
 * Lookup is the hot path of WordPiece (several probes per word piece), so it
 * is an open-addressing table keyed by a 32-bit FNV-1a hash stored next to
 * the id; the hash of "##" + piece is computed incrementally by the caller,
 * without building the key string. */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>

uint32_t ek_vocab_hash_init(void) { return 2166136261u; }

uint32_t ek_vocab_hash_bytes(uint32_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int key_eq(const ek_vocab *v, int32_t id, const char *pre, size_t pn,
                  const char *s, size_t n) {
    if (v->len[id] != pn + n) return 0;
    const char *tok = v->pool + v->off[id];
    return memcmp(tok, pre, pn) == 0 && memcmp(tok + pn, s, n) == 0;
}

int32_t ek_vocab_find(const ek_vocab *v, uint32_t h, const char *pre, size_t pn,
                      const char *s, size_t n) {
    if (!v->n_slots) return -1;
    size_t mask = v->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int32_t id = v->slot_id[i];
        if (id < 0) return -1;
        if (v->slot_hash[i] == h && key_eq(v, id, pre, pn, s, n)) return id;
    }
}

int32_t ek_vocab_get(const ek_vocab *v, const char *s, size_t n) {
    return ek_vocab_find(v, ek_vocab_hash_bytes(ek_vocab_hash_init(), s, n), "", 0, s, n);
}

int ek_vocab_reserve_ids(ek_vocab *v, int32_t n_ids) {
    if (n_ids <= v->n_ids) return EK_OK;
    uint32_t *off = realloc(v->off, (size_t)n_ids * sizeof *off);
    if (!off) return EK_ERR_NOMEM;
    v->off = off;
    uint32_t *len = realloc(v->len, (size_t)n_ids * sizeof *len);
    if (!len) return EK_ERR_NOMEM;
    v->len = len;
    for (int32_t i = v->n_ids; i < n_ids; i++) {
        v->off[i] = UINT32_MAX;
        v->len[i] = 0;
    }
    v->n_ids = n_ids;
    return EK_OK;
}

static int grow_slots(ek_vocab *v) {
    size_t ns = v->n_slots ? v->n_slots * 2 : 1024;
    int32_t *ids = malloc(ns * sizeof *ids);
    uint32_t *hs = malloc(ns * sizeof *hs);
    if (!ids || !hs) {
        free(ids);
        free(hs);
        return EK_ERR_NOMEM;
    }
    for (size_t i = 0; i < ns; i++) ids[i] = -1;
    for (size_t i = 0; i < v->n_slots; i++) {
        if (v->slot_id[i] < 0) continue;
        size_t j = v->slot_hash[i] & (ns - 1);
        while (ids[j] >= 0) j = (j + 1) & (ns - 1);
        ids[j] = v->slot_id[i];
        hs[j] = v->slot_hash[i];
    }
    free(v->slot_id);
    free(v->slot_hash);
    v->slot_id = ids;
    v->slot_hash = hs;
    v->n_slots = ns;
    return EK_OK;
}

static int count_chars(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

int ek_vocab_name(ek_vocab *v, const char *tok, size_t n, int32_t id) {
    if (id < 0 || id >= v->n_ids || n > UINT32_MAX / 2) return EK_ERR_INVALID_ARG;
    if (v->pool_len + n + 1 > v->pool_cap) {
        size_t cap = v->pool_cap ? v->pool_cap : 4096;
        while (cap < v->pool_len + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return EK_ERR_NOMEM;
        char *p = realloc(v->pool, cap);
        if (!p) return EK_ERR_NOMEM;
        v->pool = p;
        v->pool_cap = cap;
    }
    if (n) memcpy(v->pool + v->pool_len, tok, n);
    v->pool[v->pool_len + n] = '\0'; /* so id -> token can return a C string */
    v->off[id] = (uint32_t)v->pool_len;
    v->len[id] = (uint32_t)n;
    v->pool_len += n + 1;
    return EK_OK;
}

int ek_vocab_put(ek_vocab *v, const char *tok, size_t n, int32_t id, int32_t *dup_id) {
    *dup_id = -1;
    if ((v->count + 1) * 2 > v->n_slots) {
        int rc = grow_slots(v);
        if (rc) return rc;
    }
    int rc = ek_vocab_name(v, tok, n, id);
    if (rc) return rc;
    int nc = count_chars(tok, n);
    if (nc > v->max_chars) v->max_chars = nc;

    uint32_t h = ek_vocab_hash_bytes(ek_vocab_hash_init(), tok, n);
    size_t mask = v->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int32_t old = v->slot_id[i];
        if (old < 0) {
            v->slot_id[i] = id;
            v->slot_hash[i] = h;
            v->count++;
            return EK_OK;
        }
        if (v->slot_hash[i] == h && old != id && key_eq(v, old, "", 0, tok, n)) {
            *dup_id = old;
            v->slot_id[i] = id;
            return EK_OK;
        }
    }
}

void ek_vocab_free(ek_vocab *v) {
    free(v->pool);
    free(v->off);
    free(v->len);
    free(v->slot_id);
    free(v->slot_hash);
    memset(v, 0, sizeof *v);
}
