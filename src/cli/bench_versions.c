/* cli/bench_versions.c — `ek bench versions`: serving many versions of one
 * model at once through the model pool.  Loads V versions (timing each
 * load), then runs the same requests twice: all on one version, and round
 * robin across the V versions, each request acquiring its version from the
 * pool, embedding a small batch and releasing it.  relative_throughput is
 * many / one: what serving V versions costs against serving one.  Versions
 * imported from the same files share blobs (hard links), so the weights
 * each load maps share page cache (pss_bytes), and the pool maps their
 * packed weights from one file under HOME/packed (packed_mapped_versions;
 * private_packed_bytes is what versions without it hold privately). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "embedkit_registry.h"

#define BCMD "bench versions"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A field of /proc/self/<file> in kB, as bytes; -1 when absent.  RssFile
 * counts a shared page once per mapping, so pss (each page divided among
 * its mappings) is the honest figure for versions sharing blobs. */
static long long proc_bytes(const char *file, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/%s", file);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') kb = atoll(line + n + 1);
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static const char *const texts[] = {
    "How do I serve several versions of one model at once?",
    "A canary version runs beside the current one.",
    "Rollback targets stay loaded until the memory budget needs room.",
    "Per-tenant models share a pool.",
    "Round robin across twelve versions.",
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings exactly as sentence-transformers computes them.",
    "Idle versions are unloaded least recently used first.",
};
#define N_TEXTS (sizeof texts / sizeof texts[0])

struct run {
    ek_pool *pool;
    char (*refs)[96];
    int n_refs;           /* versions this run cycles through */
    atomic_long next;     /* next request number */
    long total;
    atomic_int failed;
    char err[512];
    pthread_mutex_t err_mu;
};

static void *worker(void *arg) {
    struct run *r = arg;
    ek_ctx *ctx;
    if (ek_ctx_new(&ctx)) {
        atomic_fetch_add(&r->failed, 1);
        return NULL;
    }
    ek_ctx_set_threads(ctx, 1);
    ek_embed_options o;
    ek_embed_options_init(&o);
    float *out = NULL;
    long i;
    while ((i = atomic_fetch_add(&r->next, 1)) < r->total) {
        ek_pool_handle *h;
        int rc = (int)ek_pool_acquire(ctx, r->pool, r->refs[i % r->n_refs], &h);
        if (!rc) {
            const ek_model *m = ek_pool_model(h);
            if (!out) out = malloc(sizeof *out * N_TEXTS * (size_t)ek_embed_dim(m, &o));
            rc = out ? (int)ek_embed(ctx, m, texts, NULL, N_TEXTS, &o, out, NULL) : EK_ERR_NOMEM;
            ek_pool_release(h);
        }
        if (rc) {
            pthread_mutex_lock(&r->err_mu);
            if (!atomic_fetch_add(&r->failed, 1))
                snprintf(r->err, sizeof r->err, "%s", ek_ctx_last_error(ctx));
            pthread_mutex_unlock(&r->err_mu);
        }
    }
    free(out);
    ek_ctx_free(ctx);
    return NULL;
}

/* Requests per second of total requests over n_refs versions. */
static double run_once(ek_pool *pool, char (*refs)[96], int n_refs, long total, int threads, char *err,
                       size_t cap) {
    struct run r = {.pool = pool, .refs = refs, .n_refs = n_refs, .total = total};
    atomic_init(&r.next, 0);
    atomic_init(&r.failed, 0);
    pthread_mutex_init(&r.err_mu, NULL);
    pthread_t *t = malloc(sizeof *t * (size_t)threads);
    if (!t) return -1;
    double t0 = now_s();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, &r);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    free(t);
    pthread_mutex_destroy(&r.err_mu);
    if (atomic_load(&r.failed)) {
        snprintf(err, cap, "%d requests failed: %s", atomic_load(&r.failed), r.err);
        return -1;
    }
    return (double)total / dt;
}

int ek_bench_versions(int argc, char **argv) {
    const char *name = NULL, *home = NULL, *from = NULL;
    int versions = 12, threads = 2, requests = 0, rounds = 3, json = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench versions --model NAME [--versions V] [--threads T] [--requests N]\n"
                 "                         [--rounds R] [--from DIR] [--home DIR] [--json]\n"
                 "  NAME is a registry model with at least V READY versions (the highest V are used);\n"
                 "  --from DIR imports DIR as more versions of NAME until there are V.");
            return 0;
        } else if (!v) return cli_usage(BCMD, "%s needs a value", a);
        else if (!strcmp(a, "--model")) name = v, i++;
        else if (!strcmp(a, "--home")) home = v, i++;
        else if (!strcmp(a, "--from")) from = v, i++;
        else if (!strcmp(a, "--versions")) { if ((rc = cli_int(BCMD, a, v, 1, 1000, &versions))) return rc; i++; }
        else if (!strcmp(a, "--threads")) { if ((rc = cli_int(BCMD, a, v, 1, 1024, &threads))) return rc; i++; }
        else if (!strcmp(a, "--requests")) { if ((rc = cli_int(BCMD, a, v, 1, 100000000, &requests))) return rc; i++; }
        else if (!strcmp(a, "--rounds")) { if ((rc = cli_int(BCMD, a, v, 1, 100, &rounds))) return rc; i++; }
        else return cli_usage(BCMD, "unknown option %s", a);
    }
    if (!name) return cli_usage(BCMD, "--model NAME is required");
    ek_ctx *ctx;
    if (ek_ctx_new(&ctx)) return cli_fail(BCMD, "out of memory");
    char h[3072];
    ek_registry *reg = NULL;
    ek_pool *pool = NULL;
    ek_reg_version *list = NULL;
    char (*refs)[96] = NULL;
    ek_pool_handle **held = NULL;
    size_t n = 0;
    rc = 0;
    if (!home) {
        if (ek_registry_default_home(ctx, h, sizeof h)) { rc = cli_fail(BCMD, "%s", ek_ctx_last_error(ctx)); goto out; }
        home = h;
    }
    if (ek_registry_open(ctx, home, NULL, &reg) || ek_registry_list(ctx, reg, name, &list, &n)) {
        rc = cli_fail(BCMD, "%s", ek_ctx_last_error(ctx));
        goto out;
    }
    size_t ready = 0;
    for (size_t i = 0; i < n; i++) ready += !strcmp(list[i].status, "READY");
    for (; from && ready < (size_t)versions; ready++)
        if (ek_registry_import(ctx, reg, from, name, NULL, NULL)) {
            rc = cli_fail(BCMD, "%s", ek_ctx_last_error(ctx));
            goto out;
        }
    free(list);
    list = NULL;
    if (ek_registry_list(ctx, reg, name, &list, &n)) { rc = cli_fail(BCMD, "%s", ek_ctx_last_error(ctx)); goto out; }
    refs = calloc((size_t)versions, sizeof *refs);
    held = calloc((size_t)versions, sizeof *held);
    if (!refs || !held) { rc = cli_fail(BCMD, "out of memory"); goto out; }
    int k = 0;
    uint64_t sum_bytes = 0;
    for (size_t i = n; i-- > 0 && k < versions;)
        if (!strcmp(list[i].status, "READY")) {
            snprintf(refs[k++], sizeof refs[0], "%s@%lld", list[i].name, (long long)list[i].version);
            sum_bytes += list[i].total_bytes;
        }
    if (k < versions) {
        rc = cli_fail(BCMD, "%s has %d READY versions, --versions %d needs more (ek models add DIR --name %s, "
                            "or --from DIR)", name, k, versions, name);
        goto out;
    }
    if (ek_pool_new(ctx, home, 0, &pool)) { rc = cli_fail(BCMD, "%s", ek_ctx_last_error(ctx)); goto out; }
    /* Load every version (timed), keeping them loaded for the runs. */
    double t0 = now_s();
    for (int i = 0; i < versions; i++)
        if (ek_pool_acquire(ctx, pool, refs[i], &held[i])) {
            rc = cli_fail(BCMD, "%s", ek_ctx_last_error(ctx));
            goto out;
        }
    double load_ms = (now_s() - t0) * 1e3 / versions;
    if (!requests) requests = 200 * threads;
    char err[600];
    double one = 0, many = 0;
    /* Warm up, then alternate so drift (turbo, neighbours) hits both. */
    if (run_once(pool, refs, versions, versions, threads, err, sizeof err) < 0) {
        rc = cli_fail(BCMD, "%s", err);
        goto out;
    }
    for (int r = 0; r < rounds; r++) {
        double a = run_once(pool, refs, 1, requests, threads, err, sizeof err);
        double b = a < 0 ? -1 : run_once(pool, refs, versions, requests, threads, err, sizeof err);
        if (a < 0 || b < 0) {
            rc = cli_fail(BCMD, "%s", err);
            goto out;
        }
        if (a > one) one = a;
        if (b > many) many = b;
    }
    long long rss = proc_bytes("status", "VmRSS"), anon = proc_bytes("status", "RssAnon");
    long long file = proc_bytes("status", "RssFile"), pss = proc_bytes("smaps_rollup", "Pss");
    ek_pool_stats st;
    ek_pool_get_stats(pool, &st);
    int mapped = 0;
    uint64_t private_packed = 0;
    for (int i = 0; i < versions; i++) {
        ek_packed_cache_info pci;
        if (ek_model_packed_cache_info(ek_pool_model(held[i]), &pci)) continue;
        mapped += pci.state == EK_PACKED_CACHE_HIT || pci.state == EK_PACKED_CACHE_WRITTEN;
        private_packed += pci.private_bytes;
    }
    if (json)
        printf("{\"model\":\"%s\",\"versions\":%d,\"threads\":%d,\"requests\":%d,\"texts_per_request\":%zu,"
               "\"rounds\":%d,\"requests_per_s_one_version\":%.2f,\"requests_per_s_round_robin\":%.2f,"
               "\"relative_throughput\":%.4f,\"load_ms_per_version\":%.3f,\"rss_bytes\":%lld,"
               "\"rss_anon_bytes\":%lld,\"rss_file_bytes\":%lld,\"pss_bytes\":%lld,"
               "\"sum_model_bytes\":%llu,\"pool_loads\":%llu,\"packed_mapped_versions\":%d,"
               "\"private_packed_bytes\":%llu}\n",
               name, versions, threads, requests, N_TEXTS, rounds, one, many, many / one, load_ms, rss, anon,
               file, pss, (unsigned long long)sum_bytes, (unsigned long long)st.loads, mapped,
               (unsigned long long)private_packed);
    else
        printf("%d versions of %s, %d threads, %d requests of %zu texts (best of %d)\n"
               "  one version:  %.1f requests/s\n  round robin:  %.1f requests/s (relative %.3f)\n"
               "  load:         %.2f ms per version\n"
               "  memory:       rss %.1f MB (anon %.1f, file %.1f), pss %.1f MB for %.1f MB of model files\n"
               "  packed:       %d of %d versions mapped from HOME/packed, %.1f MB private\n",
               versions, name, threads, requests, N_TEXTS, rounds, one, many, many / one, load_ms,
               (double)rss / 1e6, (double)anon / 1e6, (double)file / 1e6, (double)pss / 1e6,
               (double)sum_bytes / 1e6, mapped, versions, (double)private_packed / 1e6);
out:
    if (held)
        for (int i = 0; i < versions; i++) ek_pool_release(held[i]);
    free(held);
    free(refs);
    free(list);
    ek_pool_free(pool);
    ek_registry_close(reg);
    ek_ctx_free(ctx);
    return rc;
}
