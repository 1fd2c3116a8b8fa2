/* tests/http_server.c — see http_server.h. */
#include "http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RULES 4096 /* every path requested gets a counter */

typedef struct rule {
    char path[512];
    hs_fault f;
    long arg;
    int times;
    int hits, range_hits;
} rule;

struct hs_server {
    struct MHD_Daemon *d;
    char root[1024];
    char url[64];
    pthread_mutex_t mu;
    rule rules[MAX_RULES];
    int n;
    volatile int stopping;
};

/* The rule (counter) of path, created when absent; under mu. */
static rule *rule_of(hs_server *s, const char *path) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->rules[i].path, path)) return &s->rules[i];
    if (s->n == MAX_RULES) return NULL;
    rule *r = &s->rules[s->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    return r;
}

typedef struct body {
    hs_server *s;
    char *data;          /* what is served, from the range start */
    size_t len;
    hs_fault f;
    long arg;
} body;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    body *b = cls;
    if (b->s->stopping) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (b->f == HS_DROP && pos >= (uint64_t)b->arg) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= b->len) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = b->len - (size_t)pos;
    if (n > max) n = max;
    if (b->f == HS_DROP && pos + n > (uint64_t)b->arg) n = (size_t)((uint64_t)b->arg - pos);
    if (b->f == HS_SLOW) {
        sleep_ms(100);
        if (b->s->stopping) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (n > (size_t)b->arg) n = (size_t)b->arg;
    }
    memcpy(buf, b->data + pos, n);
    return (ssize_t)n;
}

static void body_free(void *cls) {
    body *b = cls;
    free(b->data);
    free(b);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static enum MHD_Result queue_empty(struct MHD_Connection *c, unsigned status, const char *hdr, const char *val) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (hdr) MHD_add_response_header(r, hdr, val);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    (void)upload;
    (void)upload_size;
    hs_server *s = cls;
    if (!*state) { /* first call: headers only */
        *state = (void *)1;
        return MHD_YES;
    }
    if (strcmp(method, "GET")) return queue_empty(c, 405, NULL, NULL);
    if (!strncmp(url, "/hop/", 5)) {
        char *end;
        long n = strtol(url + 5, &end, 10);
        if (*end != '/') return queue_empty(c, 404, NULL, NULL);
        char loc[1024];
        if (n > 0) snprintf(loc, sizeof loc, "/hop/%ld%s", n - 1, end);
        else snprintf(loc, sizeof loc, "%s", end);
        return queue_empty(c, 302, "Location", loc);
    }
    if (strstr(url, "..")) return queue_empty(c, 403, NULL, NULL);
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    pthread_mutex_lock(&s->mu);
    rule *r = rule_of(s, url);
    hs_fault f = HS_NONE;
    long arg = 0;
    if (r) {
        r->hits++;
        if (range) r->range_hits++;
        if (r->f != HS_NONE && r->times != 0) {
            f = r->f;
            arg = r->arg;
            if (r->times > 0 && --r->times == 0) r->f = HS_NONE;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (f == HS_STATUS) return queue_empty(c, (unsigned)arg, NULL, NULL);
    char path[2048];
    snprintf(path, sizeof path, "%s%s", s->root, url);
    size_t len;
    char *data = slurp(path, &len);
    if (!data) return queue_empty(c, 404, NULL, NULL);
    if (f == HS_TRUNCATE && (size_t)arg < len) len = (size_t)arg;
    if (f == HS_CORRUPT && (size_t)arg < len) data[arg] ^= 0x5a;
    if (f == HS_OVERFLOW) {
        char *more = realloc(data, len + (size_t)arg);
        if (!more) {
            free(data);
            return MHD_NO;
        }
        data = more;
        memset(data + len, 'X', (size_t)arg);
        len += (size_t)arg;
    }
    unsigned status = 200;
    unsigned long long from = 0;
    char cr[128] = "";
    if (range && f != HS_NO_RANGE && sscanf(range, "bytes=%llu-", &from) == 1) {
        if (from >= len) {
            free(data);
            snprintf(cr, sizeof cr, "bytes */%zu", len);
            return queue_empty(c, 416, "Content-Range", cr);
        }
        status = 206;
        snprintf(cr, sizeof cr, "bytes %llu-%zu/%zu", from, len - 1, len);
        memmove(data, data + from, len - (size_t)from);
        len -= (size_t)from;
    }
    body *b = malloc(sizeof *b);
    if (!b) {
        free(data);
        return MHD_NO;
    }
    *b = (body){s, data, len, f, arg};
    struct MHD_Response *resp = MHD_create_response_from_callback(len, 32 * 1024, reader, b, body_free);
    if (!resp) {
        body_free(b);
        return MHD_NO;
    }
    if (*cr) MHD_add_response_header(resp, "Content-Range", cr);
    MHD_add_response_header(resp, "Accept-Ranges", "bytes");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

hs_server *hs_start(const char *root) {
    hs_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->root, sizeof s->root, "%s", root);
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                            handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30, MHD_OPTION_END);
    if (!s->d) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", info ? (unsigned)info->port : 0u);
    return s;
}

const char *hs_url(const hs_server *s) { return s->url; }

void hs_fault_set(hs_server *s, const char *path, hs_fault f, long arg, int times) {
    pthread_mutex_lock(&s->mu);
    rule *r = rule_of(s, path);
    if (r) {
        r->f = f;
        r->arg = arg;
        r->times = times;
    }
    pthread_mutex_unlock(&s->mu);
}

void hs_faults_clear(hs_server *s) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) s->rules[i].f = HS_NONE;
    pthread_mutex_unlock(&s->mu);
}

static int count(hs_server *s, const char *path, int ranges) {
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->rules[i].path, path)) n = ranges ? s->rules[i].range_hits : s->rules[i].hits;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int hs_hits(hs_server *s, const char *path) { return count(s, path, 0); }
int hs_range_hits(hs_server *s, const char *path) { return count(s, path, 1); }

void hs_stop(hs_server *s) {
    if (!s) return;
    s->stopping = 1;
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
