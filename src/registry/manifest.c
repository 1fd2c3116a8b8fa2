/* registry/manifest.c — the model manifest: name, version and every file's
 * path, size and SHA-256, in one canonical byte form so that the same
 * directory always yields the same manifest (and so the same signature).
 *
 * Canonical form (docs/SIGNING.md):
 *   {
 *     "format": "embedkit-manifest-1",
 *     "name": "NAME",
 *     "version": N,
 *     "files": [
 *       {"path": "a/b.json", "size": 12, "sha256": "<64 lowercase hex>"},
 *       ...
 *     ]
 *   }
 * two-space indent, files sorted by path bytes, a final newline.  Parsing is
 * strict: the bytes must re-serialise to themselves, which rules out
 * duplicate keys, unknown fields and any second spelling of the same data. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/reg.h"
#include "registry/sign.h"
#include "runtime/ctx.h"

#define MAX_FILES 100000
#define MAX_DEPTH 16
#define MAX_PATH_BYTES 1000

void reg_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, (unsigned long long)len);
    sodium_bin2hex(hex, 65, d, sizeof d);
}

void reg_manifest_free(reg_manifest *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free(m->files[i].path);
    free(m->files);
    m->files = NULL;
    m->n = 0;
}

/* ---- canonical bytes ---- */

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* JSON string: '"' and '\' escaped, control bytes as \u00XX, everything
 * else (UTF-8 included) as is. */
static void put_json_str(buf *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            put(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            put(b, esc, 6);
        } else {
            put(b, (const char *)c, 1);
        }
    }
    put(b, "\"", 1);
}

char *reg_manifest_serialize(const reg_manifest *m, size_t *len) {
    buf b = {0};
    char num[64];
    puts_(&b, "{\n  \"format\": \"" REG_MANIFEST_FORMAT "\",\n  \"name\": ");
    put_json_str(&b, m->name);
    snprintf(num, sizeof num, ",\n  \"version\": %lld,\n  \"files\": [", (long long)m->version);
    puts_(&b, num);
    for (size_t i = 0; i < m->n; i++) {
        puts_(&b, i ? ",\n    {\"path\": " : "\n    {\"path\": ");
        put_json_str(&b, m->files[i].path);
        snprintf(num, sizeof num, ", \"size\": %llu, \"sha256\": \"", (unsigned long long)m->files[i].size);
        puts_(&b, num);
        puts_(&b, m->files[i].sha256);
        puts_(&b, "\"}");
    }
    puts_(&b, m->n ? "\n  ]\n}\n" : "]\n}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}

/* ---- validation ---- */

int reg_manifest_path_ok(const char *path, const char *what, ek_err *e) {
    size_t n = strlen(path);
    if (n == 0) return ek_err_set(e, EK_ERR_FORMAT, "%s: a file path is empty", what);
    if (n > MAX_PATH_BYTES)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: file path \"%.80s...\" is longer than %d bytes", what, path,
                          MAX_PATH_BYTES);
    if (path[0] == '/')
        return ek_err_set(e, EK_ERR_FORMAT, "%s: file path \"%s\" is absolute", what, path);
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '\\')
            return ek_err_set(e, EK_ERR_FORMAT, "%s: file path \"%s\" has a forbidden byte 0x%02x", what, path,
                              *c);
    /* Every component non-empty and neither "." nor "..": the path cannot
     * leave the model directory nor name one file two ways. */
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return ek_err_set(e, EK_ERR_FORMAT, "%s: file path \"%s\" has an empty, \".\" or \"..\" component",
                              what, path);
        if (!slash) break;
        p = slash + 1;
    }
    if (!strcmp(path, REG_MANIFEST) || !strcmp(path, REG_MINISIG))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: the manifest cannot list %s itself", what, path);
    return EK_OK;
}

static int hex64_ok(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Sorted order, no duplicates, and no path that is also a directory of
 * another ("a" and "a/b"). */
static int check_order(const reg_manifest *m, const char *what, ek_err *e) {
    for (size_t i = 1; i < m->n; i++) {
        const char *a = m->files[i - 1].path, *b = m->files[i].path;
        if (!strcmp(a, b)) return ek_err_set(e, EK_ERR_FORMAT, "%s: file %s is listed twice", what, a);
        size_t la = strlen(a);
        if (!strncmp(a, b, la) && b[la] == '/')
            return ek_err_set(e, EK_ERR_FORMAT, "%s: %s is both a file and a directory", what, a);
    }
    return EK_OK;
}

static int only_keys(const cJSON *o, const char *const *keys, size_t nk, const char *what, ek_err *e) {
    for (const cJSON *c = o->child; c; c = c->next) {
        size_t k = 0;
        while (k < nk && strcmp(c->string, keys[k])) k++;
        if (k == nk) return ek_err_set(e, EK_ERR_FORMAT, "%s: unknown field \"%s\"", what, c->string);
    }
    return EK_OK;
}

static int json_uint(const cJSON *v, double max, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > max || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

int reg_manifest_parse(const char *bytes, size_t len, const char *what, reg_manifest *m, ek_err *e) {
    memset(m, 0, sizeof *m);
    if (memchr(bytes, '\0', len))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: manifest holds a NUL byte", what);
    cJSON *j = cJSON_ParseWithLength(bytes, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: not a JSON object", what);
    }
    static const char *const top[] = {"format", "name", "version", "files"};
    static const char *const fk[] = {"path", "size", "sha256"};
    int rc = only_keys(j, top, 4, what, e);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
    uint64_t v = 0;
    if (rc) goto out;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, REG_MANIFEST_FORMAT)) {
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: \"format\" must be \"%s\"", what, REG_MANIFEST_FORMAT);
        goto out;
    }
    if (!cJSON_IsString(name)) {
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: \"name\" must be a string", what);
        goto out;
    }
    if ((rc = reg_name_check("model", name->valuestring, e))) {
        ek_err_prefix(e, "%s", what);
        goto out;
    }
    snprintf(m->name, sizeof m->name, "%s", name->valuestring);
    if (!json_uint(ver, 9007199254740992.0, &v) || v == 0) {
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: \"version\" must be a positive integer", what);
        goto out;
    }
    m->version = (int64_t)v;
    if (!cJSON_IsArray(files)) {
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: \"files\" must be an array", what);
        goto out;
    }
    int nf = cJSON_GetArraySize(files);
    if (nf > MAX_FILES) {
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: more than %d files", what, MAX_FILES);
        goto out;
    }
    m->files = calloc(nf ? (size_t)nf : 1, sizeof *m->files);
    if (!m->files) {
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory reading %s", what);
        goto out;
    }
    for (const cJSON *f = files->child; f; f = f->next) {
        size_t i = m->n;
        if (!cJSON_IsObject(f)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: files[%zu] is not an object", what, i);
            goto out;
        }
        if ((rc = only_keys(f, fk, 3, what, e))) goto out;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(f, "path");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(f, "size");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(f, "sha256");
        if (!cJSON_IsString(p) || !cJSON_IsString(sh) || !json_uint(sz, 9007199254740992.0, &m->files[i].size)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: files[%zu] needs a string path, a size and a sha256", what, i);
            goto out;
        }
        if ((rc = reg_manifest_path_ok(p->valuestring, what, e))) goto out;
        if (!hex64_ok(sh->valuestring)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: %s: sha256 must be 64 lowercase hex digits", what,
                            p->valuestring);
            goto out;
        }
        m->files[i].path = strdup(p->valuestring);
        if (!m->files[i].path) {
            rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory reading %s", what);
            goto out;
        }
        memcpy(m->files[i].sha256, sh->valuestring, 65);
        m->n++;
    }
    if ((rc = check_order(m, what, e))) goto out;
    size_t clen;
    char *canon = reg_manifest_serialize(m, &clen);
    if (!canon) {
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory reading %s", what);
        goto out;
    }
    if (clen != len || memcmp(canon, bytes, len))
        rc = ek_err_set(e, EK_ERR_FORMAT,
                        "%s: not in canonical form (files sorted by path, fixed layout; write it with "
                        "`ek models manifest`)", what);
    free(canon);
out:
    cJSON_Delete(j);
    if (rc) reg_manifest_free(m);
    return rc;
}

long reg_manifest_find(const reg_manifest *m, const char *path) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(m->files[mid].path, path);
        if (!c) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* ---- listing a directory ---- */

typedef struct plist {
    char **v;
    size_t n, cap;
} plist;

static int plist_add(plist *l, const char *p, ek_err *e) {
    if (l->n == MAX_FILES) return ek_err_set(e, EK_ERR_INVALID_ARG, "more than %d files", MAX_FILES);
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return ek_err_set(e, EK_ERR_NOMEM, "out of memory listing files");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(p))) return ek_err_set(e, EK_ERR_NOMEM, "out of memory listing files");
    l->n++;
    return EK_OK;
}

/* Collects the regular files under root/rel (symlinks followed, as in a
 * Hugging Face snapshot, whose files link into its blob cache). */
static int walk(const char *root, const char *rel, int depth, unsigned flags, plist *l, ek_err *e) {
    char dir[4096];
    if (reg_path(dir, sizeof dir, e, "%s%s%s", root, *rel ? "/" : "", rel)) return e->status;
    if (depth > MAX_DEPTH) return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return ek_err_set(e, EK_ERR_IO, "%s: cannot read directory: %s", dir, strerror(errno));
    int rc = EK_OK;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
        if ((flags & REG_WALK_SKIP_MANIFEST) && !*rel && (!strcmp(n, REG_MANIFEST) || !strcmp(n, REG_MINISIG)))
            continue;
        if (flags & REG_WALK_NO_CONTROL)
            for (const unsigned char *c = (const unsigned char *)n; *c && !rc; c++)
                if (*c < 0x20 || *c == 0x7f)
                    rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s: a file name has control character 0x%02x",
                                    dir, *c);
        char sub[4096], full[4096];
        if (rc || reg_path(sub, sizeof sub, e, "%s%s%s", rel, *rel ? "/" : "", n) ||
            reg_path(full, sizeof full, e, "%s/%s", root, sub)) {
            rc = rc ? rc : e->status;
            break;
        }
        struct stat sb;
        if (stat(full, &sb) != 0) rc = ek_err_set(e, EK_ERR_IO, "%s: %s", full, strerror(errno));
        else if (S_ISDIR(sb.st_mode)) rc = walk(root, sub, depth + 1, flags, l, e);
        else if (S_ISREG(sb.st_mode)) rc = plist_add(l, sub, e);
        else rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s: not a regular file or directory", full);
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void reg_free_paths(char **paths, size_t n) {
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int reg_list_files(const char *dir, char ***paths, size_t *n, ek_err *e) {
    return reg_walk_files(dir, REG_WALK_SKIP_MANIFEST, paths, n, e);
}

int reg_walk_files(const char *dir, unsigned flags, char ***paths, size_t *n, ek_err *e) {
    plist l = {0};
    *paths = NULL;
    *n = 0;
    int rc = walk(dir, "", 0, flags, &l, e);
    if (rc) {
        reg_free_paths(l.v, l.n);
        return rc;
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_str);
    *paths = l.v;
    *n = l.n;
    return EK_OK;
}

/* ---- writing ---- */

/* Writes bytes to dir/name through a temporary file in the same directory,
 * fsync, rename, fsync of the directory: readers see the old file or the
 * new one, never a torn one. */
static int install_file(const char *dir, const char *name, const char *bytes, size_t len, ek_err *e) {
    char tmp[4096], dst[4096];
    if (reg_path(tmp, sizeof tmp, e, "%s/.%s.tmp-%ld", dir, name, (long)getpid()) ||
        reg_path(dst, sizeof dst, e, "%s/%s", dir, name))
        return e->status;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = EK_OK;
    for (size_t off = 0; off < len && !rc;) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) rc = ek_err_set(e, EK_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        else off += (size_t)w;
    }
    if (!rc && fsync(fd) != 0) rc = ek_err_set(e, EK_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc) rc = ek_err_set(e, EK_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, dst) != 0) rc = ek_err_set(e, EK_ERR_IO, "%s: cannot rename: %s", dst, strerror(errno));
    if (rc) unlink(tmp);
    else rc = reg_fsync_dir(dir, e);
    return rc;
}

ek_status ek_manifest_write(ek_ctx *ctx, const char *dir, const char *name, int64_t version, char *sha256_hex) {
    if (!ctx || !dir) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (sodium_init() < 0) return ek_err_set(e, EK_ERR_INTERNAL, "libsodium failed to initialise");
    int rc = reg_name_check("model", name, e);
    if (rc) return (ek_status)rc;
    if (version <= 0 || version > (1LL << 53))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "version %lld: must be a positive integer", (long long)version);
    reg_manifest m = {0};
    snprintf(m.name, sizeof m.name, "%s", name);
    m.version = version;
    char **paths = NULL;
    size_t n = 0;
    if ((rc = reg_list_files(dir, &paths, &n, e))) return (ek_status)rc;
    if (n == 0) {
        reg_free_paths(paths, n);
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no files to list", dir);
    }
    m.files = calloc(n, sizeof *m.files);
    if (!m.files) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        char full[4096];
        if ((rc = reg_manifest_path_ok(paths[i], dir, e))) break;
        if ((rc = reg_path(full, sizeof full, e, "%s/%s", dir, paths[i]))) break;
        if ((rc = reg_hash_file(full, m.files[i].sha256, &m.files[i].size, e))) break;
        m.files[i].path = paths[i];
        paths[i] = NULL;
        m.n++;
    }
    reg_free_paths(paths, n);
    char *bytes = NULL;
    size_t len = 0;
    if (!rc && !(bytes = reg_manifest_serialize(&m, &len))) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    if (!rc) rc = install_file(dir, REG_MANIFEST, bytes, len, e);
    if (!rc && sha256_hex) reg_sha256_hex(bytes, len, sha256_hex);
    free(bytes);
    reg_manifest_free(&m);
    return (ek_status)rc;
}
