/* tests/support.c — see support.h. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *env_or_die(const char *k) {
    const char *v = getenv(k);
    if (!v || !*v) {
        fprintf(stderr, "test environment variable %s is not set (run under ctest)\n", k);
        exit(2);
    }
    return v;
}

const char *ts_source_dir(void) { return env_or_die("EK_SOURCE_DIR"); }
const char *ts_models_dir(void) { return env_or_die("EK_MODELS"); }
const char *ts_ek_bin(void) { return env_or_die("EK_BIN"); }

const char *ts_path(const char *a, const char *b) {
    static char buf[8][4096];
    static int i;
    char *p = buf[i++ & 7];
    snprintf(p, 4096, "%s/%s", a, b);
    return p;
}

char *ts_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int ts_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

char *ts_mkdtemp(void) {
    static char buf[8][256];
    static int i;
    char *p = buf[i++ & 7];
    const char *tmp = getenv("TMPDIR");
    snprintf(p, 256, "%s/ektest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(p);
}

static int run_simple(const char *fmt, const char *a, const char *b) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

int ts_copy_dir(const char *from, const char *to) {
    return run_simple("cp -r '%s' '%s'", from, to);
}

int ts_rm_rf(const char *path) { return run_simple("rm -rf '%s'%s", path, ""); }

int ts_run(const char *cmd, char **out, char **err) {
    char *dir = ts_mkdtemp();
    if (!dir) return -1;
    char o[512], e[512], full[16384];
    snprintf(o, sizeof o, "%s/out", dir);
    snprintf(e, sizeof e, "%s/err", dir);
    /* A subshell, so the capture applies to the whole command line. */
    snprintf(full, sizeof full, "( %s ) >'%s' 2>'%s'", cmd, o, e);
    int st = system(full);
    int rc = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    if (out) *out = ts_read_file(o, NULL);
    if (err) *err = ts_read_file(e, NULL);
    ts_rm_rf(dir);
    return rc;
}
