/* cli/bench_stats.c — the shared latency histogram, measuring loop, memory
 * figures and machine description of the benchmarks (see bench_stats.h). */
#include "cli/bench_stats.h"

#include <curl/curl.h>
#include <malloc.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>
#include <yaml.h>

#include "compute/cpu.h"
#include "embedkit.h"

/* ---- histogram ------------------------------------------------------------ */

void bench_hist_init(bench_hist *h) { memset(h, 0, sizeof *h); }

static int msb64(uint64_t v) { return 63 - __builtin_clzll(v); }

int bench_hist_bucket(uint64_t v) {
    if (v < 2 * BENCH_SUB) return (int)v;
    int e = msb64(v);
    if (e > BENCH_MAX_MSB) return BENCH_BUCKETS - 1;
    int shift = e - BENCH_SUB_BITS;
    /* (v >> shift) is in [SUB, 2 SUB): its low bits pick the sub-bucket. */
    return 2 * BENCH_SUB + (shift - 1) * BENCH_SUB + (int)((v >> shift) - BENCH_SUB);
}

void bench_hist_range(int b, uint64_t *lo, uint64_t *hi) {
    if (b < 2 * BENCH_SUB) {
        *lo = *hi = (uint64_t)b;
        return;
    }
    int j = b - 2 * BENCH_SUB, shift = j / BENCH_SUB + 1;
    *lo = (uint64_t)(BENCH_SUB + j % BENCH_SUB) << shift;
    *hi = *lo + ((uint64_t)1 << shift) - 1;
}

void bench_hist_record(bench_hist *h, uint64_t v) {
    if (!h->count || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->count++;
    h->sum += (double)v;
    h->sumsq += (double)v * (double)v;
    h->bucket[bench_hist_bucket(v)]++;
}

uint64_t bench_hist_percentile(const bench_hist *h, double p) {
    if (!h->count) return 0;
    if (p >= 100) return h->max;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count), seen = 0;
    if (rank < 1) rank = 1;
    for (int b = 0; b < BENCH_BUCKETS; b++) {
        seen += h->bucket[b];
        if (seen >= rank) {
            uint64_t lo, hi;
            bench_hist_range(b, &lo, &hi);
            return hi > h->max ? h->max : hi < h->min ? h->min : hi;
        }
    }
    return h->max;
}

double bench_hist_mean(const bench_hist *h) { return h->count ? h->sum / (double)h->count : 0; }

double bench_hist_cv(const bench_hist *h) {
    if (h->count < 2) return 0;
    double n = (double)h->count, mean = h->sum / n;
    double var = (h->sumsq - n * mean * mean) / (n - 1);
    return mean > 0 && var > 0 ? sqrt(var) / mean : 0;
}

cJSON *bench_num(cJSON *obj, const char *key, double v) {
    cJSON_AddNumberToObject(obj, key, v);
    return obj;
}

cJSON *bench_str(cJSON *obj, const char *key, const char *v) {
    cJSON_AddStringToObject(obj, key, v ? v : "");
    return obj;
}

cJSON *bench_hist_json(const bench_hist *h, const char *unit, int with_buckets) {
    cJSON *o = cJSON_CreateObject();
    bench_str(o, "unit", unit);
    bench_num(o, "count", (double)h->count);
    bench_num(o, "min", (double)(h->count ? h->min : 0));
    bench_num(o, "p50", (double)bench_hist_percentile(h, 50));
    bench_num(o, "p90", (double)bench_hist_percentile(h, 90));
    bench_num(o, "p99", (double)bench_hist_percentile(h, 99));
    bench_num(o, "p99_9", (double)bench_hist_percentile(h, 99.9));
    bench_num(o, "max", (double)h->max);
    bench_num(o, "mean", bench_hist_mean(h));
    bench_num(o, "cv", bench_hist_cv(h));
    if (with_buckets) {
        cJSON *a = cJSON_AddArrayToObject(o, "buckets");
        for (int b = 0; b < BENCH_BUCKETS; b++) {
            if (!h->bucket[b]) continue;
            uint64_t lo, hi;
            bench_hist_range(b, &lo, &hi);
            double row[3] = {(double)lo, (double)hi, (double)h->bucket[b]};
            cJSON_AddItemToArray(a, cJSON_CreateDoubleArray(row, 3));
        }
    }
    return o;
}

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- measuring ------------------------------------------------------------- */

int bench_measure(bench_fn fn, void *arg, const bench_plan *plan, bench_result *r) {
    bench_hist_init(&r->hist);
    r->iters = 0;
    r->seconds = 0;
    r->heap_bytes_per_call = 0;
    int rc;
    for (int i = 0; i < plan->warmup; i++)
        if ((rc = fn(arg))) return rc;
    size_t heap0 = bench_heap_in_use();
    uint64_t budget = (uint64_t)(plan->min_seconds * 1e9), spent = 0;
    while (r->iters < plan->max_iters && (r->iters < plan->min_iters || spent < budget)) {
        uint64_t t0 = bench_now_ns();
        if ((rc = fn(arg))) return rc;
        uint64_t dt = bench_now_ns() - t0;
        bench_hist_record(&r->hist, dt);
        spent += dt;
        r->iters++;
    }
    size_t heap1 = bench_heap_in_use();
    r->seconds = (double)spent * 1e-9;
    r->heap_bytes_per_call = r->iters ? ((double)heap1 - (double)heap0) / (double)r->iters : 0;
    return 0;
}

cJSON *bench_result_json(const bench_result *r, int with_buckets) {
    cJSON *o = cJSON_CreateObject();
    bench_num(o, "iters", (double)r->iters);
    bench_num(o, "seconds", r->seconds);
    double mean = bench_hist_mean(&r->hist);
    bench_num(o, "per_s", mean > 0 ? 1e9 / mean : 0);
    cJSON_AddItemToObject(o, "latency", bench_hist_json(&r->hist, "ns", with_buckets));
    bench_num(o, "heap_bytes_per_call", r->heap_bytes_per_call);
    return o;
}

/* ---- memory ---------------------------------------------------------------- */

long long bench_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return -1;
    return (long long)ru.ru_maxrss * 1024; /* Linux reports kB */
}

long long bench_proc_status(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') kb = atoll(line + n + 1);
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

size_t bench_heap_in_use(void) {
    /* uordblks: bytes in use in the arenas; hblkhd: bytes in mmap'd chunks
     * (large allocations bypass the arenas). */
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ---- machine --------------------------------------------------------------- */

/* The value of the first "key<spaces>: value" line of a /proc-style file. */
static int read_field(const char *path, const char *key, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[8192];
    size_t n = strlen(key);
    int found = -1;
    while (found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) || (line[n] != ' ' && line[n] != '\t' && line[n] != ':')) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = '\0';
        snprintf(out, cap, "%s", c);
        found = 0;
    }
    fclose(f);
    return found;
}

/* PRETTY_NAME="Debian GNU/Linux 12 (bookworm)" -> the value. */
static void os_release(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/etc/os-release", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "PRETTY_NAME=", 12)) continue;
        char *v = line + 12;
        v[strcspn(v, "\n")] = '\0';
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v[n - 1] = '\0', v++;
        snprintf(out, cap, "%s", v);
        break;
    }
    if (f) fclose(f);
}

/* The flags a reader of an embedkit benchmark cares about, of those the CPU
 * lists (the full list is hundreds of words). */
static cJSON *cpu_flags(void) {
    static const char *const wanted[] = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                         "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
                                         "avx512_vpopcntdq", "avx512_fp16", "amx_tile", "amx_bf16",
                                         "amx_int8", "popcnt", "sha_ni"};
    cJSON *a = cJSON_CreateArray();
    char *flags = malloc(8192);
    if (flags && !read_field("/proc/cpuinfo", "flags", flags, 8192)) {
        for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
            size_t n = strlen(wanted[i]);
            for (const char *p = flags; (p = strstr(p, wanted[i])); p += n)
                if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
                    cJSON_AddItemToArray(a, cJSON_CreateString(wanted[i]));
                    break;
                }
        }
    }
    free(flags);
    return a;
}

/* A GPU as the kernel shows it: the NVIDIA driver's version file, else the
 * DRM devices' PCI vendor ids.  OpenCL devices are the GPU benchmark's. */
static cJSON *gpu_json(void) {
    cJSON *g = cJSON_CreateObject();
    char line[512] = "";
    FILE *f = fopen("/proc/driver/nvidia/version", "r");
    if (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        cJSON_AddBoolToObject(g, "present", 1);
        bench_str(g, "driver", line);
    } else {
        int found = 0;
        for (int i = 0; i < 8 && !found; i++) {
            char path[96], vendor[32];
            snprintf(path, sizeof path, "/sys/class/drm/card%d/device/vendor", i);
            FILE *v = fopen(path, "r");
            if (v && fgets(vendor, sizeof vendor, v)) {
                vendor[strcspn(vendor, "\n")] = '\0';
                bench_str(g, "pci_vendor", vendor);
                found = 1;
            }
            if (v) fclose(v);
        }
        cJSON_AddBoolToObject(g, "present", found);
    }
    if (f) fclose(f);
    return g;
}

cJSON *bench_machine_json(const char *isa_in_use) {
    cJSON *m = cJSON_CreateObject();
    char buf[512];
    bench_str(m, "cpu", read_field("/proc/cpuinfo", "model name", buf, sizeof buf) ? "unknown" : buf);
    cJSON_AddItemToObject(m, "cpu_flags", cpu_flags());
    bench_num(m, "cores_online", (double)sysconf(_SC_NPROCESSORS_ONLN));
    long long mem_kb = read_field("/proc/meminfo", "MemTotal", buf, sizeof buf) ? -1 : atoll(buf);
    bench_num(m, "memory_bytes", mem_kb < 0 ? -1 : (double)mem_kb * 1024);
    struct utsname u;
    char kernel[256] = "unknown";
    if (!uname(&u)) snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release, u.machine);
    bench_str(m, "kernel", kernel);
    os_release(buf, sizeof buf);
    bench_str(m, "os", buf);
#if defined(__clang__)
    bench_str(m, "compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
    bench_str(m, "compiler", "gcc " __VERSION__);
#else
    bench_str(m, "compiler", "unknown");
#endif
    cJSON *lib = cJSON_AddObjectToObject(m, "libraries");
    bench_str(lib, "embedkit", ek_version());
    const dnnl_version_t *dv = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", dv->major, dv->minor, dv->patch);
    bench_str(lib, "onednn", buf);
    bench_str(lib, "cjson", cJSON_Version());
    bench_str(lib, "utf8proc", utf8proc_version());
    bench_str(lib, "sqlite", sqlite3_libversion());
    bench_str(lib, "libsodium", sodium_version_string());
    bench_str(lib, "libyaml", yaml_get_version_string());
    bench_str(lib, "libcurl", curl_version_info(CURLVERSION_NOW)->version);
    int bad = 0;
    ek_isa level = ek_cpu_level(&bad);
    bench_str(m, "isa_cpu", ek_isa_name(ek_cpu_detect()));
    bench_str(m, "isa_in_use", isa_in_use ? isa_in_use : ek_isa_name(level));
    const char *env = getenv("EK_ISA");
    bench_str(m, "ek_isa_env", env ? env : "");
    cJSON_AddItemToObject(m, "gpu", gpu_json());
    return m;
}

int bench_emit(cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s) return 1;
    int rc = puts(s) < 0 || fflush(stdout) ? 1 : 0;
    cJSON_free(s);
    return rc;
}
