/* registry/download.c — fetching a model's files from where it is
 * published: a local directory, or an http(s) URL with libcurl.
 *
 * Every byte is checked as it arrives: a file is never allowed to grow past
 * the size its (already verified) manifest gives, and its SHA-256 is
 * computed while it is written, so a wrong file is refused without a second
 * pass.  Over HTTP: redirects limited and restricted to http(s), connect and
 * stall timeouts, retries with exponential backoff on transient failures
 * (connection errors, timeouts, 408/429/5xx, short bodies), and resume with
 * a Range request from what the part file already holds; a server that
 * answers 200 to a Range request sends the whole file again, so the part is
 * restarted from zero.  Failures that retrying cannot fix (404, too many
 * bytes, a wrong digest, too many redirects) end at once. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry/reg.h"
#include "registry/sign.h"

struct reg_source {
    int local;
    char base[4096];          /* URL without a trailing '/', or a real path */
    reg_fetch_opts o;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    uint64_t bytes;           /* body bytes received, all files */
    int retries;
};

int reg_source_is_local(const reg_source *s) { return s->local; }
const char *reg_source_base(const reg_source *s) { return s->base; }
uint64_t reg_source_bytes(const reg_source *s) { return s->bytes; }
int reg_source_retries(const reg_source *s) { return s->retries; }

int reg_source_open(const char *base, const reg_fetch_opts *o, reg_source **out, ek_err *e) {
    *out = NULL;
    reg_source *s = calloc(1, sizeof *s);
    if (!s) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    if (o) s->o = *o;
    if (s->o.connect_timeout_ms <= 0) s->o.connect_timeout_ms = 10000;
    if (s->o.stall_timeout_s <= 0) s->o.stall_timeout_s = 30;
    if (s->o.min_rate <= 0) s->o.min_rate = 1000;
    if (s->o.max_retries == 0) s->o.max_retries = 5;
    if (s->o.max_retries < 0) s->o.max_retries = 0;
    if (s->o.backoff_ms <= 0) s->o.backoff_ms = 500;
    if (s->o.max_redirects <= 0) s->o.max_redirects = 5;
    int rc = EK_OK;
    if (!strncasecmp(base, "http://", 7) || !strncasecmp(base, "https://", 8)) {
        rc = reg_path(s->base, sizeof s->base, e, "%s", base);
        size_t n = strlen(s->base);
        while (!rc && n > 8 && s->base[n - 1] == '/') s->base[--n] = '\0';
        /* curl_global_init is reference counted and thread-safe in the
         * libcurl this links (>= 7.84). */
        if (!rc && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            rc = ek_err_set(e, EK_ERR_INTERNAL, "libcurl failed to initialise");
        if (!rc && !(s->curl = curl_easy_init())) {
            curl_global_cleanup();
            rc = ek_err_set(e, EK_ERR_INTERNAL, "libcurl failed to initialise");
        }
    } else {
        s->local = 1;
        struct stat sb;
        if (!realpath(base, s->base)) rc = ek_err_set(e, EK_ERR_IO, "%s: %s", base, strerror(errno));
        else if (stat(s->base, &sb) != 0 || !S_ISDIR(sb.st_mode))
            rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s: not a directory nor an http(s) URL", base);
    }
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return EK_OK;
}

void reg_source_close(reg_source *s) {
    if (!s) return;
    if (s->curl) {
        curl_easy_cleanup(s->curl);
        curl_global_cleanup();
    }
    free(s);
}

/* base + "/" + rel with every path segment percent-encoded. */
static int file_url(reg_source *s, const char *rel, char *out, size_t cap, ek_err *e) {
    if (reg_path(out, cap, e, "%s", s->base)) return e->status;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char *enc = curl_easy_escape(s->curl, p, (int)n);
        if (!enc) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        size_t have = strlen(out);
        int r = reg_path(out + have, cap - have, e, "/%s", enc);
        curl_free(enc);
        if (r) return r;
        p += n + (slash ? 1 : 0);
    }
    return EK_OK;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void emit(reg_source *s, const char *event, const reg_file_job *job, uint64_t done, const char *detail) {
    if (!s->o.progress) return;
    ek_pull_progress p = {event, job ? job->rel : "", done, job ? job->size : 0,
                          job ? job->all_done + done : 0, job ? job->all_total : 0,
                          job ? job->index : 0, job ? job->n_files : 0, detail ? detail : ""};
    s->o.progress(s->o.progress_arg, &p);
}

/* ---- one HTTP transfer ---- */

typedef struct xfer {
    reg_source *s;
    const reg_file_job *job;  /* NULL for a small file in memory */
    int fd;                   /* the part file, or -1 */
    char *mem;
    size_t mem_cap;
    uint64_t have;            /* bytes kept so far */
    uint64_t limit;           /* never more than this */
    uint64_t asked_from;      /* Range start asked for (0: none) */
    crypto_hash_sha256_state h;
    long status;
    long long cr_start;       /* first byte of the Content-Range answered, -1 none */
    int checked, error_body, overflow, bad_range, restarted, io_errno;
    int short_body;           /* the body ended cleanly before the size */
    uint64_t discarded;
    double last_emit;
} xfer;

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    xfer *x = arg;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) x->cr_start = -1; /* a new response (after a redirect) */
    else if (len > 14 && !strncasecmp(p, "Content-Range:", 14)) {
        unsigned long long a;
        char tail[64];
        size_t k = len - 14 < sizeof tail - 1 ? len - 14 : sizeof tail - 1;
        memcpy(tail, p + 14, k);
        tail[k] = '\0';
        if (sscanf(tail, " bytes %llu-", &a) == 1) x->cr_start = (long long)a;
    }
    return len;
}

static int x_write(xfer *x, const char *p, size_t len) {
    if (x->fd < 0) {
        if (x->have + len + 1 > x->mem_cap) {
            size_t cap = x->mem_cap ? x->mem_cap : 4096;
            while (cap < x->have + len + 1) cap *= 2;
            char *m = realloc(x->mem, cap);
            if (!m) {
                x->io_errno = ENOMEM;
                return -1;
            }
            x->mem = m;
            x->mem_cap = cap;
        }
        memcpy(x->mem + x->have, p, len);
        x->mem[x->have + len] = '\0';
        return 0;
    }
    while (len) {
        ssize_t w = write(x->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            x->io_errno = errno;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
    xfer *x = arg;
    size_t len = size * n;
    if (!x->checked) {
        x->checked = 1;
        curl_easy_getinfo(x->s->curl, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status == 206) {
            if (!x->asked_from || x->cr_start != (long long)x->asked_from) {
                x->bad_range = 1;
                return 0;
            }
        } else if (x->status == 200) {
            if (x->asked_from) {
                /* The server ignored the Range: what follows is the file
                 * from its first byte. */
                if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
                    x->io_errno = errno;
                    return 0;
                }
                crypto_hash_sha256_init(&x->h);
                x->have = 0;
                x->restarted = 1;
            }
        } else {
            x->error_body = 1;
        }
    }
    if (x->error_body) {
        x->discarded += len;
        return x->discarded > (1u << 16) ? 0 : len; /* error pages are not endless either */
    }
    if (len > x->limit - x->have) {
        x->overflow = 1;
        return 0;
    }
    if (x_write(x, p, len) != 0) return 0;
    crypto_hash_sha256_update(&x->h, (const unsigned char *)p, len);
    x->have += len;
    x->s->bytes += len;
    if (x->job && x->s->o.progress) {
        double t = now_s();
        if (t - x->last_emit >= 0.1) {
            x->last_emit = t;
            emit(x->s, "progress", x->job, x->have, NULL);
        }
    }
    return len;
}

static CURLcode perform(reg_source *s, const char *url, xfer *x) {
    CURL *c = s->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    char range[48];
    s->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "embedkit/" "0.1");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)s->o.max_redirects);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)s->o.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)s->o.min_rate);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->o.stall_timeout_s);
    if (s->o.timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)s->o.timeout_s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    if (x->asked_from) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)x->asked_from);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(c);
    if (!x->checked) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
    return rc;
}

/* Failures worth another try: the network, the server's load, a body cut
 * short.  Everything else (a refused redirect, a bad URL, TLS trust) is not
 * going to change. */
static int transient(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static long backoff(reg_source *s, int attempt) {
    long ms = s->o.backoff_ms;
    for (int i = 0; i < attempt && ms < 30000; i++) ms *= 2;
    if (ms > 30000) ms = 30000;
    return ms + (long)randombytes_uniform((uint32_t)(ms / 4 + 1)); /* jitter: clients do not retry in step */
}

/* Outcome of one attempt. */
enum { X_DONE, X_RETRY, X_FAIL };

static int classify(reg_source *s, const char *url, const char *rel, CURLcode c, xfer *x, char *why, size_t cap,
                    ek_verify_code *code, ek_err *e) {
    if (x->io_errno)
        return *code = EK_VERIFY_DOWNLOAD,
               ek_err_set(e, EK_ERR_IO, "%s: cannot store the download: %s%s", rel, strerror(x->io_errno),
                          x->io_errno == ENOSPC ? " (disk full)" : ""),
               X_FAIL;
    if (x->overflow)
        return *code = EK_VERIFY_TOO_LARGE,
               ek_err_set(e, EK_ERR_FORMAT, "%s: %s sent more than the %llu bytes the manifest lists; refused",
                          rel, url, (unsigned long long)x->limit),
               X_FAIL;
    if (x->bad_range) {
        snprintf(why, cap, "%.400s: answered a Range request from byte %llu with a range starting at %lld", url,
                 (unsigned long long)x->asked_from, x->cr_start);
        return X_RETRY;
    }
    if (c == CURLE_OK || (c == CURLE_WRITE_ERROR && x->error_body)) {
        long st = x->status;
        if (st == 200 || st == 206) {
            if (x->have == x->limit || !x->job) return X_DONE;
            x->short_body = 1;
            snprintf(why, cap, "%.400s: the server sent %llu of %llu bytes", url, (unsigned long long)x->have,
                     (unsigned long long)x->limit);
            return X_RETRY;
        }
        if (st == 404 || st == 410)
            return *code = EK_VERIFY_MISSING_FILE,
                   ek_err_set(e, EK_ERR_IO, "%s: not found at %s (HTTP %ld)", rel, url, st), X_FAIL;
        if (st == 416)
            return *code = EK_VERIFY_SIZE_MISMATCH,
                   ek_err_set(e, EK_ERR_FORMAT,
                              "%s: %s has fewer bytes than the %llu already received of the %llu the manifest "
                              "lists (HTTP 416): the server's file is truncated", rel, url,
                              (unsigned long long)x->asked_from, (unsigned long long)x->limit),
                   X_FAIL;
        if (st == 408 || st == 429 || st >= 500) {
            snprintf(why, cap, "%.400s: HTTP %ld", url, st);
            return X_RETRY;
        }
        return *code = EK_VERIFY_DOWNLOAD, ek_err_set(e, EK_ERR_IO, "%s: %s: HTTP %ld", rel, url, st), X_FAIL;
    }
    const char *msg = *s->errbuf ? s->errbuf : curl_easy_strerror(c);
    if (transient(c)) {
        snprintf(why, cap, "%.400s: %.500s", url, msg);
        return X_RETRY;
    }
    return *code = EK_VERIFY_DOWNLOAD, ek_err_set(e, EK_ERR_IO, "%s: %s: %s", rel, url, msg), X_FAIL;
}

/* Hashes what part already holds (the resume point) into h. */
static int hash_prefix(int fd, uint64_t limit, crypto_hash_sha256_state *h, uint64_t *have) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) return -1;
    crypto_hash_sha256_init(h);
    *have = 0;
    if ((uint64_t)sb.st_size > limit) {
        /* Longer than the file can be: a leftover of something else. */
        if (ftruncate(fd, 0) != 0) return -1;
        return lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
    }
    unsigned char buf[1 << 16];
    uint64_t off = 0;
    while (off < (uint64_t)sb.st_size) {
        ssize_t r = pread(fd, buf, sizeof buf, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        crypto_hash_sha256_update(h, buf, (unsigned long long)r);
        off += (uint64_t)r;
    }
    *have = off;
    return lseek(fd, (off_t)off, SEEK_SET) == (off_t)off ? 0 : -1;
}

/* The retry loop shared by files and small documents. */
static int http_fetch(reg_source *s, const char *rel, xfer *x, ek_verify_code *code, ek_err *e) {
    char url[8192], why[1024] = "";
    int rc = file_url(s, rel, url, sizeof url, e);
    if (rc) return rc;
    for (int attempt = 0;; attempt++) {
        if (x->fd >= 0) {
            if (hash_prefix(x->fd, x->limit, &x->h, &x->have) != 0)
                return *code = EK_VERIFY_DOWNLOAD,
                       ek_err_set(e, EK_ERR_IO, "%s: cannot read the partial download: %s", x->job->part,
                                  strerror(errno));
            if (x->have == x->limit) return EK_OK; /* complete already (an earlier run) */
        } else {
            crypto_hash_sha256_init(&x->h);
            x->have = 0;
        }
        x->asked_from = x->have;
        x->status = 0;
        x->cr_start = -1;
        x->checked = x->error_body = x->overflow = x->bad_range = x->restarted = x->short_body = 0;
        x->discarded = 0;
        CURLcode c = perform(s, url, x);
        int out = classify(s, url, rel, c, x, why, sizeof why, code, e);
        if (out == X_DONE) return EK_OK;
        if (out == X_FAIL) return e->status;
        if (x->bad_range && x->fd >= 0 && (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0))
            return *code = EK_VERIFY_DOWNLOAD, ek_err_set(e, EK_ERR_IO, "%s: %s", x->job->part, strerror(errno));
        if (attempt >= s->o.max_retries) {
            *code = x->short_body ? EK_VERIFY_SIZE_MISMATCH : EK_VERIFY_DOWNLOAD;
            return ek_err_set(e, EK_ERR_IO, "%s: gave up after %d attempt%s: %s%s", rel, attempt + 1,
                              attempt ? "s" : "", why,
                              *code == EK_VERIFY_SIZE_MISMATCH ? " (truncated)" : "");
        }
        s->retries++;
        emit(s, "retry", x->job, x->have, why);
        sleep_ms(backoff(s, attempt));
    }
}

/* ---- local directories ---- */

static int local_open(reg_source *s, const char *rel, int *fd, struct stat *sb, ek_err *e) {
    char p[8192];
    if (reg_path(p, sizeof p, e, "%s/%s", s->base, rel)) return e->status;
    *fd = open(p, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return errno == ENOENT ? 1 : ek_err_set(e, EK_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
    if (fstat(*fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        close(*fd);
        return ek_err_set(e, EK_ERR_IO, "%s: not a regular file", p);
    }
    return EK_OK;
}

/* Copies at most limit + 1 bytes of fd into x (so "longer than the
 * manifest says" is seen without reading an endless file). */
static int local_copy(int fd, xfer *x, const char *rel, ek_verify_code *code, ek_err *e) {
    char buf[1 << 16];
    crypto_hash_sha256_init(&x->h);
    x->have = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return *code = EK_VERIFY_DOWNLOAD, ek_err_set(e, EK_ERR_IO, "%s: read error: %s", rel, strerror(errno));
        if (r == 0) return EK_OK;
        if ((uint64_t)r > x->limit - x->have)
            return *code = x->job ? EK_VERIFY_SIZE_MISMATCH : EK_VERIFY_TOO_LARGE,
                   ek_err_set(e, EK_ERR_FORMAT, "%s: longer than the %llu bytes %s", rel,
                              (unsigned long long)x->limit, x->job ? "the manifest lists" : "allowed");
        if (x_write(x, buf, (size_t)r) != 0)
            return *code = EK_VERIFY_DOWNLOAD,
                   ek_err_set(e, EK_ERR_IO, "%s: cannot store the copy: %s%s", rel, strerror(x->io_errno),
                              x->io_errno == ENOSPC ? " (disk full)" : "");
        crypto_hash_sha256_update(&x->h, (const unsigned char *)buf, (unsigned long long)r);
        x->have += (uint64_t)r;
        x->s->bytes += (uint64_t)r;
    }
}

/* ---- the two entry points ---- */

int reg_source_get_small(reg_source *s, const char *rel, size_t max, char **buf, size_t *len,
                         ek_verify_code *code, ek_err *e) {
    *buf = NULL;
    *len = 0;
    xfer x = {.s = s, .fd = -1, .limit = max};
    int rc;
    if (s->local) {
        int fd;
        struct stat sb;
        if ((rc = local_open(s, rel, &fd, &sb, e))) return rc;
        rc = local_copy(fd, &x, rel, code, e);
        close(fd);
    } else {
        rc = http_fetch(s, rel, &x, code, e);
        if (rc && *code == EK_VERIFY_MISSING_FILE) {
            free(x.mem);
            ek_err_clear(e);
            *code = EK_VERIFY_OK;
            return 1;
        }
        if (rc && *code == EK_VERIFY_TOO_LARGE) ek_err_set(e, EK_ERR_FORMAT, "%s: larger than %zu bytes; refused", rel, max);
    }
    if (rc) {
        free(x.mem);
        return rc;
    }
    if (!x.mem && !(x.mem = calloc(1, 1))) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    *buf = x.mem;
    *len = (size_t)x.have;
    return EK_OK;
}

int reg_source_get_file(reg_source *s, const reg_file_job *job, ek_verify_code *code, ek_err *e) {
    *code = EK_VERIFY_OK;
    emit(s, "file", job, 0, NULL);
    int src = -1;
    if (s->local) {
        struct stat sb;
        int rc = local_open(s, job->rel, &src, &sb, e);
        if (rc == 1)
            return *code = EK_VERIFY_MISSING_FILE,
                   ek_err_set(e, EK_ERR_IO, "%s: missing from %s (the manifest lists it)", job->rel, s->base);
        if (rc) return *code = EK_VERIFY_DOWNLOAD, rc;
        if ((uint64_t)sb.st_size != job->size) {
            close(src);
            return *code = EK_VERIFY_SIZE_MISMATCH,
                   ek_err_set(e, EK_ERR_FORMAT, "%s: %llu bytes, the manifest says %llu", job->rel,
                              (unsigned long long)sb.st_size, (unsigned long long)job->size);
        }
    }
    int fd = open(job->part, O_RDWR | O_CREAT | O_CLOEXEC | (s->local ? O_TRUNC : 0), 0600);
    if (fd < 0) {
        if (src >= 0) close(src);
        return *code = EK_VERIFY_DOWNLOAD,
               ek_err_set(e, EK_ERR_IO, "%s: cannot create: %s", job->part, strerror(errno));
    }
    xfer x = {.s = s, .job = job, .fd = fd, .limit = job->size};
    int rc;
    if (s->local) {
        rc = local_copy(src, &x, job->rel, code, e);
        close(src);
    } else {
        rc = http_fetch(s, job->rel, &x, code, e);
    }
    if (!rc && x.have != job->size) {
        *code = EK_VERIFY_SIZE_MISMATCH;
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: %llu bytes, the manifest says %llu", job->rel,
                        (unsigned long long)x.have, (unsigned long long)job->size);
    }
    if (!rc) {
        unsigned char d[crypto_hash_sha256_BYTES];
        char hex[65];
        crypto_hash_sha256_final(&x.h, d);
        sodium_bin2hex(hex, sizeof hex, d, sizeof d);
        if (strcmp(hex, job->sha256)) {
            *code = EK_VERIFY_DIGEST_MISMATCH;
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: SHA-256 %s, the signed manifest says %s", job->rel, hex,
                            job->sha256);
        }
    }
    if (!rc && fsync(fd) != 0) {
        *code = EK_VERIFY_DOWNLOAD;
        rc = ek_err_set(e, EK_ERR_IO, "%s: fsync failed: %s%s", job->part, strerror(errno),
                        errno == ENOSPC ? " (disk full)" : "");
    }
    close(fd);
    /* A part whose bytes are wrong is worthless; a network failure keeps
     * it, so the next attempt resumes. */
    if (rc && *code != EK_VERIFY_DOWNLOAD) unlink(job->part);
    if (!rc) emit(s, "verified", job, job->size, NULL);
    return rc;
}
