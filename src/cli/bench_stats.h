/* cli/bench_stats.h — what every operation benchmark of `ek bench` shares:
 *   - a fixed-bucket latency histogram in the HDR style (values below 128 ns
 *     exact, then 64 sub-buckets per power of two, so a recorded value is
 *     known to within 1/64 = 1.6%), with p50 / p90 / p99 / p99.9 / max,
 *     mean and coefficient of variation read from it, and the non-empty
 *     buckets themselves for the JSON;
 *   - a measuring loop: warm-up calls (never recorded), then timed calls
 *     until a count and a time are both reached, with the heap in use
 *     (mallinfo2) read around the timed calls;
 *   - memory figures from the kernel (peak RSS, RSS, anonymous / file RSS);
 *   - a description of the machine (CPU model and flags, cores, memory, OS,
 *     compiler, library versions, ISA level, GPU) for every result file.
 * Results are cJSON objects so `ek bench all` assembles one document.
 * Nothing here is global: every histogram and result is caller memory. */
#ifndef EK_CLI_BENCH_STATS_H
#define EK_CLI_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define BENCH_SUB_BITS 6
#define BENCH_SUB (1 << BENCH_SUB_BITS)
#define BENCH_MAX_MSB 47 /* values up to 2^48 ns (78 hours); larger ones clamp */
#define BENCH_BUCKETS (2 * BENCH_SUB + (BENCH_MAX_MSB - BENCH_SUB_BITS) * BENCH_SUB)

typedef struct bench_hist {
    uint64_t count, min, max; /* exact */
    double sum, sumsq;        /* exact mean and CV, not from the buckets */
    uint64_t bucket[BENCH_BUCKETS];
} bench_hist;

void bench_hist_init(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t v);
/* Bucket of a value, and the [lo, hi] range of values a bucket holds. */
int bench_hist_bucket(uint64_t v);
void bench_hist_range(int bucket, uint64_t *lo, uint64_t *hi);
/* Nearest-rank percentile (p in 0..100): the highest value of the bucket
 * holding that rank, clipped to [min, max] (never under-reports; exact for
 * values below 128 and for p = 100).  0 when empty. */
uint64_t bench_hist_percentile(const bench_hist *h, double p);
double bench_hist_mean(const bench_hist *h);
/* Standard deviation over mean (0 when fewer than two values). */
double bench_hist_cv(const bench_hist *h);
/* {"unit", "count", "min", "p50", "p90", "p99", "p99_9", "max", "mean",
 * "cv", "buckets": [[lo, hi, count], ...]} (buckets only when with_buckets;
 * empty buckets are left out). */
cJSON *bench_hist_json(const bench_hist *h, const char *unit, int with_buckets);

uint64_t bench_now_ns(void);

/* One call of the operation under test; non-zero means it failed. */
typedef int (*bench_fn)(void *arg);

typedef struct bench_plan {
    int warmup;          /* calls before timing starts (not recorded) */
    int min_iters;       /* timed calls at least ... */
    int max_iters;       /* ... and at most */
    double min_seconds;  /* keep going until this much time has passed */
} bench_plan;

typedef struct bench_result {
    bench_hist hist;           /* ns per call */
    long iters;
    double seconds;            /* sum of the timed calls */
    /* Heap bytes in use after the timed calls minus before, per call: what
     * a call keeps (0 is the aim; transient allocations freed within the
     * call do not show here: ek-perfcheck counts those). */
    double heap_bytes_per_call;
} bench_result;

/* Runs fn as the plan says; returns fn's first failure, else 0. */
int bench_measure(bench_fn fn, void *arg, const bench_plan *plan, bench_result *r);
/* {"iters", "seconds", "latency": bench_hist_json(ns), "heap_bytes_per_call"}
 * plus "per_s" (calls per second by the mean). */
cJSON *bench_result_json(const bench_result *r, int with_buckets);

/* Kernel memory figures, in bytes (-1 when unavailable). */
long long bench_peak_rss(void);                 /* getrusage ru_maxrss */
long long bench_proc_status(const char *field); /* /proc/self/status: VmRSS, RssAnon... */
size_t bench_heap_in_use(void);                 /* malloc'd bytes (mallinfo2) */

/* The machine and the build: see the top of this file.  isa_in_use names
 * the level embedkit's kernels run at (may be NULL: read from the CPU and
 * EK_ISA). */
cJSON *bench_machine_json(const char *isa_in_use);

/* Adds a number/string/object to obj; returns obj (cJSON's own adders return
 * the item, which chains badly). */
cJSON *bench_num(cJSON *obj, const char *key, double v);
cJSON *bench_str(cJSON *obj, const char *key, const char *v);
/* Prints obj (unformatted, one line) on stdout and frees it; returns 0, or
 * 1 when printing failed. */
int bench_emit(cJSON *obj);

#endif
