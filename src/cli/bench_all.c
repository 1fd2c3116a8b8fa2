/* cli/bench_all.c — `ek bench all`: the whole benchmark suite as one JSON
 * document, and `ek bench all <name>` for one of the operation benchmarks
 * declared in bench_suite.h.
 *
 * Every benchmark runs in its own child process (this executable again,
 * with the benchmark's arguments): a crash or a failure is recorded instead
 * of ending the suite, and the child's resource usage gives that benchmark's
 * own peak RSS (a process's peak never goes down, so in one process every
 * figure after the largest benchmark would read the same).  The document:
 *   {"suite", "schema", "quick", "model", "started_at", "machine": {...},
 *    "benchmarks": {NAME: {"status": "ok" | "failed" | "skipped", "argv",
 *                          "wall_s", "peak_rss_bytes", "result": {...},
 *                          "stderr" (when not ok)}}, "failed": [NAME...]}
 * "skipped" is an optional benchmark that could not run here (a dtype the
 * CPU lacks, no GPU); only "failed" makes the exit status non-zero. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench_stats.h"
#include "cli/bench_suite.h"
#include "cli/cli.h"

#define ACMD "bench all"

/* A growing byte buffer for a child's output. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static int buf_read(buf *b, int fd) {
    if (b->cap - b->n < 4096) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        char *p = realloc(b->p, cap + 1);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    ssize_t r = read(fd, b->p + b->n, b->cap - b->n);
    if (r > 0) b->n += (size_t)r;
    b->p[b->n] = '\0';
    return r > 0 ? 1 : r == 0 ? 0 : errno == EINTR ? 1 : -1;
}

/* Runs `self args...`, collecting stdout and stderr; *status is the wait
 * status, *ru the child's resource usage.  Returns 0 when it ran. */
static int run_child(const char *self, char *const *args, buf *out, buf *err, int *status, struct rusage *ru) {
    int po[2], pe[2];
    if (pipe(po)) return -1;
    if (pipe(pe)) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        execv(self, args);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (buf_read(i ? err : out, fds[i].fd) <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);
    while (wait4(pid, status, 0, ru) < 0)
        if (errno != EINTR) return -1;
    return 0;
}

typedef struct step {
    const char *name;   /* key in "benchmarks" */
    int optional;       /* failure is "skipped", not "failed" */
    const char *args[24];
} step;

typedef struct suite {
    const char *self;
    int quick, json;
    cJSON *benchmarks, *failed;
} suite;

static void run_step(suite *s, const step *st) {
    char *argv[28];
    int n = 0;
    argv[n++] = "ek";
    argv[n++] = "bench";
    for (int i = 0; st->args[i] && n < 26; i++) argv[n++] = (char *)st->args[i];
    argv[n] = NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *av = cJSON_AddArrayToObject(o, "argv");
    for (int i = 1; i < n; i++) cJSON_AddItemToArray(av, cJSON_CreateString(argv[i]));
    buf out = {0}, err = {0};
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (!s->json) {
        fprintf(stderr, "ek bench all: %s ...\n", st->name);
    }
    uint64_t t0 = bench_now_ns();
    int ran = run_child(s->self, argv, &out, &err, &status, &ru) == 0;
    double wall = (double)(bench_now_ns() - t0) * 1e-9;
    cJSON *res = ran && out.p ? cJSON_Parse(out.p) : NULL;
    int ok = ran && WIFEXITED(status) && WEXITSTATUS(status) == 0 && res;
    const char *verdict = ok ? "ok" : st->optional ? "skipped" : "failed";
    bench_str(o, "status", verdict);
    bench_num(o, "wall_s", wall);
    bench_num(o, "peak_rss_bytes", (double)ru.ru_maxrss * 1024);
    bench_num(o, "cpu_s", (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6);
    if (res) cJSON_AddItemToObject(o, "result", res);
    if (!ok) {
        char why[4200];
        if (!ran) snprintf(why, sizeof why, "could not start %s", s->self);
        else if (WIFSIGNALED(status)) snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
        else if (WEXITSTATUS(status)) snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
        else snprintf(why, sizeof why, "its output is not one JSON object");
        bench_str(o, "why", why);
        bench_str(o, "stderr", err.p ? err.p : "");
        if (!st->optional) cJSON_AddItemToArray(s->failed, cJSON_CreateString(st->name));
    }
    if (!s->json)
        fprintf(stderr, "ek bench all: %-12s %-7s %7.1f s  peak RSS %7.1f MB%s%s", st->name, verdict, wall,
                (double)ru.ru_maxrss / 1024.0, ok ? "" : "  ", ok ? "\n" : err.p ? err.p : "\n");
    cJSON_AddItemToObject(s->benchmarks, st->name, o);
    free(out.p);
    free(err.p);
}

static int usage(void) {
    puts("usage: ek bench all [--model DIR] [--quick] [--threads T] [--only A,B] [--out FILE] [--json]\n"
         "                    [--gpu-device gpu|any|opencl:P:D]\n"
         "       ek bench all <tokenize|embed|ops|model> [options]   (one benchmark; --help)\n"
         "  runs every benchmark in its own process: tokenize, embed (forward grid per dtype),\n"
         "  forward (32 x 128 per dtype), ops (pooling, normalise, quantize, similarity, top-k),\n"
         "  model (load, import, alias, manifest, signatures), search, pipeline, gpu, and\n"
         "  prints one JSON document with the machine's description.  --quick: small sizes\n"
         "  and f32 only (CI).  DIR defaults to $EK_MODELS/default, else build/models/default.\n"
         "  --threads T: worker threads of embed, forward, ops and search (0 = all cores).\n"
         "  --gpu-device: the OpenCL device of the gpu benchmark (default gpu; any also takes a\n"
         "  CPU device such as PoCL, whose figures are then not GPU numbers: is_gpu false).");
    return 0;
}

/* Whether name is selected by --only (a comma-separated list; NULL = all). */
static int selected(const char *only, const char *name) {
    if (!only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        size_t k = strcspn(p, ",");
        /* "embed" selects embed_f32, embed_bf16...: match up to an underscore */
        if (k <= n && !strncmp(p, name, k) && (name[k] == '\0' || name[k] == '_')) return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

int ek_bench_all(int argc, char **argv) {
    if (argc >= 2) {
        const char *a = argv[1];
        if (!strcmp(a, "tokenize")) return ek_bench_tokenize(argc - 1, argv + 1);
        if (!strcmp(a, "embed")) return ek_bench_embed(argc - 1, argv + 1);
        if (!strcmp(a, "ops")) return ek_bench_ops(argc - 1, argv + 1);
        if (!strcmp(a, "model")) return ek_bench_model(argc - 1, argv + 1);
    }
    const char *model = NULL, *only = NULL, *outfile = NULL, *threads = "0", *gpu_device = "gpu";
    int quick = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage();
        else if (!v) return cli_usage(ACMD, "%s needs a value (or is unknown)", a);
        else if (!strcmp(a, "--model")) model = v, i++;
        else if (!strcmp(a, "--only")) only = v, i++;
        else if (!strcmp(a, "--out")) outfile = v, i++;
        else if (!strcmp(a, "--gpu-device")) gpu_device = v, i++;
        else if (!strcmp(a, "--threads")) {
            int t;
            if (cli_int(ACMD, a, v, 0, 1024, &t)) return 2;
            threads = v, i++;
        }
        else return cli_usage(ACMD, "unknown option %s", a);
    }
    char model_buf[4096];
    if (!model) {
        const char *m = getenv("EK_MODELS");
        snprintf(model_buf, sizeof model_buf, "%s/default", m && *m ? m : "build/models");
        model = model_buf;
    }
    struct stat st;
    if (stat(model, &st) || !S_ISDIR(st.st_mode))
        return cli_usage(ACMD, "model directory %s not found (--model DIR; `make models` makes build/models/default)",
                         model);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) return cli_fail(ACMD, "cannot find this executable (/proc/self/exe)");
    self[sl] = '\0';

    const char *q = quick ? "--quick" : NULL;
    /* Sizes: --quick keeps the suite to seconds for CI; the full run takes
     * a few minutes on two cores. */
    const char *search_n = quick ? "20000" : "200000", *repeat = quick ? "3" : "5";
    const char *pipe_iters = quick ? "20000" : "200000";
    step steps[] = {
        {"tokenize", 0, {"all", "tokenize", "--model", model, "--json", q}},
        {"embed_f32", 0, {"all", "embed", "--model", model, "--dtype", "f32", "--threads", threads, "--json", q}},
        {"embed_bf16", 1, {"all", "embed", "--model", model, "--dtype", "bf16", "--threads", threads, "--json", q}},
        {"embed_int8", 1, {"all", "embed", "--model", model, "--dtype", "int8", "--threads", threads, "--json", q}},
        {"forward_f32", 0, {"forward", "--model", model, "--dtype", "f32", "--batch", "32", "--seq", "128", "--iters", "10", "--threads", threads, "--json"}},
        {"forward_bf16", 1, {"forward", "--model", model, "--dtype", "bf16", "--batch", "32", "--seq", "128", "--iters", "10", "--threads", threads, "--json"}},
        {"forward_int8", 1, {"forward", "--model", model, "--dtype", "int8", "--batch", "32", "--seq", "128", "--iters", "10", "--threads", threads, "--json"}},
        {"ops", 0, {"all", "ops", "--threads", threads, "--json", q}},
        {"model", 0, {"all", "model", "--model", model, "--json", q}},
        {"search", 0, {"search", "--n", search_n, "--queries", "1,64", "--repeat", repeat, "--threads", threads, "--json"}},
        {"pipeline", 0, {"pipeline", "--iterations", pipe_iters, "--json"}},
        {"gpu", 1, {"gpu", "--model", model, "--device", gpu_device, "--reps", repeat,
                    "--batches", quick ? "1,8" : "1,8,32,128",
                    "--rows-1n", quick ? "20000" : "1000000", "--rows-nm", quick ? "5000" : "100000",
                    "--queries", quick ? "64" : "1000", "--json"}},
    };
    suite s = {self, quick, json, NULL, NULL};
    cJSON *doc = cJSON_CreateObject();
    bench_str(doc, "suite", "embedkit-bench");
    bench_num(doc, "schema", 1);
    cJSON_AddBoolToObject(doc, "quick", quick);
    bench_str(doc, "model", model);
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    bench_str(doc, "started_at", when);
    cJSON_AddItemToObject(doc, "machine", bench_machine_json(NULL));
    s.benchmarks = cJSON_AddObjectToObject(doc, "benchmarks");
    s.failed = cJSON_AddArrayToObject(doc, "failed");
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        /* --quick: f32 only, and the 32 x 128 forward pass is left to the full run. */
        if (quick && (strstr(steps[i].name, "bf16") || strstr(steps[i].name, "int8") ||
                      !strncmp(steps[i].name, "forward", 7)))
            continue;
        if (selected(only, steps[i].name)) run_step(&s, &steps[i]);
    }
    bench_num(doc, "wall_s", (double)(bench_now_ns() - t0) * 1e-9);
    int n_failed = cJSON_GetArraySize(s.failed);
    int rc = n_failed ? 1 : 0;
    if (outfile) {
        char *text = cJSON_Print(doc);
        FILE *f = fopen(outfile, "w");
        if (!text || !f || fputs(text, f) < 0 || fputc('\n', f) < 0) rc = cli_fail(ACMD, "cannot write %s", outfile);
        if (f && fclose(f)) rc = cli_fail(ACMD, "cannot write %s", outfile);
        cJSON_free(text);
    }
    if (json) {
        if (bench_emit(doc)) rc = 1;
    } else {
        cJSON_Delete(doc);
        printf("ek bench all: %s (%s)\n", n_failed ? "some benchmarks failed" : "done",
               outfile ? outfile : "--json or --out FILE for the results");
    }
    return rc;
}
