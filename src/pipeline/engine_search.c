/* pipeline/engine_search.c — the SEARCH handler: query texts embedded with
 * the command's model (in chunks, with the deadline checked between them and
 * the stage timings recorded, as EMBED_BATCH does), or query vectors given
 * as they are, then exact top-k over the caller's index
 * (include/embedkit_search.h).  The index belongs to the caller: the engine
 * neither builds nor keeps one. */
#include <stdlib.h>
#include <string.h>

#include "embedkit_search.h"
#include "pipeline/engine_int.h"

/* Checks the arguments that do not depend on the model. */
static ek_status check_args(const ek_search_args *a, ek_cmd_ctx *cx) {
    if (!a->index) return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "search: index is NULL");
    if (!a->n) return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "search: no queries (n is 0)");
    if (!a->texts && (!a->vectors || !a->dim))
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "search: give texts, or vectors with their dim");
    if (a->texts && a->vectors)
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "search: texts and vectors are exclusive");
    if (a->k < 1) return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "search: k must be >= 1");
    size_t rows = ek_index_rows(a->index);
    size_t per = a->k < rows ? a->k : rows;
    if (!a->hits || a->n * per > a->hits_cap)
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "hits: capacity %zu, %zu x %zu needed", a->hits_cap,
                           a->n, per);
    return EK_OK;
}

/* Embeds the query texts into *queries (the caller's query_out, else
 * *owned, allocated here). */
static ek_status embed_queries(ek_engine *e, ek_cmd *cmd, ek_cmd_ctx *cx, float **queries, float **owned) {
    ek_search_args *a = &cmd->u.search;
    ek_model_ref *r = ek_eng_acquire(e, cmd->model);
    if (!r) return ek_eng_not_loaded(cx, cmd->model);
    ek_status st = ek_eng_fault(e, cmd, cx);
    ek_embed_options o;
    ek_eng_embed_defaults(e, a->opts, &o);
    int dim = ek_embed_dim(r->m, &o);
    size_t need = a->n * (size_t)(dim > 0 ? dim : 0);
    if (st == EK_OK && dim <= 0)
        st = ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "options give no output dimension");
    if (st == EK_OK && a->query_out && need > a->query_out_cap)
        st = ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "query_out: capacity %zu floats, %zu x %d needed",
                         a->query_out_cap, a->n, dim);
    *queries = a->query_out;
    if (st == EK_OK && !a->query_out) {
        *queries = *owned = malloc(need * sizeof **owned);
        if (!*owned) st = ek_cmd_fail(cx, "handler", EK_ERR_NOMEM, "out of memory for %zu query vectors", a->n);
    }
    if (st == EK_OK) st = ek_eng_embed_chunks(e, r, cx, a->texts, a->lens, a->n, &o, *queries, dim, NULL, &a->stages);
    if (st == EK_OK) a->query_dim = dim;
    ek_eng_unref(e, r);
    return st;
}

ek_status ek_eng_h_search(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_search_args *a = &cmd->u.search;
    ek_status st = ek_eng_need_ctx(cx);
    if (st == EK_OK) st = check_args(a, cx);
    if (st) return st;
    const float *queries = a->vectors;
    size_t qdim = a->dim;
    float *q = NULL, *owned = NULL;
    if (a->texts) {
        if ((st = embed_queries(e, cmd, cx, &q, &owned)) != EK_OK) {
            free(owned);
            return st;
        }
        queries = q;
        qdim = (size_t)a->query_dim;
        if ((st = ek_cmd_ctx_check(cx, "search")) != EK_OK) {
            free(owned);
            return st;
        }
    }
    ek_search_options so = {a->k, a->rescore};
    st = ek_index_search(cx->ek, a->index, queries, a->n, qdim, &so, a->hits, &a->per_query);
    if (st != EK_OK) ek_eng_lib_fail(cx, st);
    free(owned);
    return st;
}
