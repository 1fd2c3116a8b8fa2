/* tests/http_server.h — a loopback HTTP file server for the download tests
 * (libmicrohttpd, an ephemeral port on 127.0.0.1) that can inject faults per
 * path: cut connections, truncated or corrupted bodies, bodies longer than
 * the file, error statuses, a crawling server, ignored Range headers.
 *
 * It serves ROOT/<path> for GET /<path>, honours "Range: bytes=N-" (206 or
 * 416), and redirects /hop/<n>/<rest> to /hop/<n-1>/<rest>, /hop/0/<rest>
 * to /<rest>.  One thread per connection, so a slow answer does not stall
 * the others.  Nothing here is reachable from outside the machine. */
#ifndef EK_TESTS_HTTP_SERVER_H
#define EK_TESTS_HTTP_SERVER_H

typedef enum hs_fault {
    HS_NONE = 0,
    HS_DROP,      /* send arg bytes of the body, then cut the connection */
    HS_TRUNCATE,  /* serve only the first arg bytes (with a matching length) */
    HS_CORRUPT,   /* same size, byte at offset arg flipped */
    HS_OVERFLOW,  /* the file followed by arg more bytes (length says so) */
    HS_STATUS,    /* answer with status arg and an empty body */
    HS_SLOW,      /* arg bytes every 100 ms */
    HS_NO_RANGE   /* ignore Range: always 200 with the whole file */
} hs_fault;

typedef struct hs_server hs_server;

/* NULL when the server cannot start. */
hs_server *hs_start(const char *root);
/* "http://127.0.0.1:PORT" */
const char *hs_url(const hs_server *s);
/* Applies fault to the next `times` GETs of path ("/m/model.safetensors";
 * times < 0: every one).  Replaces an earlier fault on the same path. */
void hs_fault_set(hs_server *s, const char *path, hs_fault f, long arg, int times);
void hs_faults_clear(hs_server *s);
/* GETs of path so far, and how many of them carried a Range header. */
int hs_hits(hs_server *s, const char *path);
int hs_range_hits(hs_server *s, const char *path);
void hs_stop(hs_server *s);

#endif
