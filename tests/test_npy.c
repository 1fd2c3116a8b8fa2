/* tests/test_npy.c — NumPy .npy reading and writing (ek_npy_*): round trips
 * of every supported dtype in 1 and 2 dimensions, headers as numpy writes
 * them (format 1.0 with 64- and 16-byte alignment, 2.0, misaligned data),
 * and refusal of malformed files with the file and the problem named:
 * truncated file, wrong magic, Fortran order, unsupported descr, shape that
 * does not match the size, too many dimensions, missing keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "embedkit.h"
#include "embedkit_search.h"

static char dir[256];

static int setup(void **state) {
    (void)state;
    char *d = ts_mkdtemp();
    if (!d) return -1;
    snprintf(dir, sizeof dir, "%s", d);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return ts_rm_rf(dir);
}

static const char *path_of(const char *name) { return ts_path(dir, name); }

/* Writes magic + version + header dict (padded to `align` with spaces and a
 * newline) + data bytes. */
static const char *write_npy(const char *name, int major, const char *dict, size_t align, const void *data,
                             size_t bytes) {
    unsigned char buf[4096];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + align - 1) / align * align;
    size_t hlen = total - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    if (major != 1) buf[10] = buf[11] = 0;
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[total - 1] = '\n';
    memcpy(buf + total, data, bytes);
    const char *p = path_of(name);
    assert_int_equal(ts_write_file(p, buf, total + bytes), 0);
    return p;
}

static void test_round_trip_every_dtype(void **state) {
    (void)state;
    ek_ctx *c;
    assert_int_equal(ek_ctx_new(&c), EK_OK);
    const size_t item[] = {4, 2, 1, 1};
    const char *descr[] = {"'<f4'", "'<f2'", "'|i1'", "'|u1'"};
    for (int t = 0; t < 4; t++)
        for (int ndim = 1; ndim <= 2; ndim++) {
            size_t rows = ndim == 2 ? 7 : 1, cols = 13;
            size_t bytes = rows * cols * item[t];
            unsigned char *data = malloc(bytes);
            for (size_t i = 0; i < bytes; i++) data[i] = (unsigned char)(i * 37 + (size_t)t);
            char name[32];
            snprintf(name, sizeof name, "rt%d_%d.npy", t, ndim);
            const char *p = path_of(name);
            assert_int_equal(ek_npy_write(c, p, (ek_npy_dtype)t, ndim, rows, cols, data), EK_OK);
            /* the header is what numpy writes: 64-byte aligned, dict text */
            size_t len;
            char *raw = ts_read_file(p, &len);
            assert_non_null(raw);
            assert_memory_equal(raw, "\x93NUMPY\x01\x00", 8);
            size_t hlen = (size_t)(unsigned char)raw[8] | (size_t)(unsigned char)raw[9] << 8;
            assert_int_equal((10 + hlen) % 64, 0);
            assert_int_equal(len, 10 + hlen + bytes);
            assert_int_equal(raw[10 + hlen - 1], '\n');
            assert_non_null(strstr(raw + 10, descr[t]));
            assert_non_null(strstr(raw + 10, ndim == 2 ? "'shape': (7, 13)" : "'shape': (13,)"));
            free(raw);
            ek_npy *f;
            assert_int_equal(ek_npy_open(c, p, &f), EK_OK);
            ek_npy_info in;
            ek_npy_get_info(f, &in);
            assert_int_equal(in.dtype, t);
            assert_int_equal(in.ndim, ndim);
            assert_int_equal(in.rows, rows);
            assert_int_equal(in.cols, cols);
            assert_memory_equal(in.data, data, bytes);
            ek_npy_close(f);
            free(data);
        }
    ek_ctx_free(c);
}

static void test_numpy_headers(void **state) {
    (void)state;
    ek_ctx *c;
    assert_int_equal(ek_ctx_new(&c), EK_OK);
    float v[6] = {1, 2, 3, 4, 5, 6};
    struct {
        int major;
        size_t align;
        const char *dict;
    } cases[] = {
        {1, 64, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
        {1, 16, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"}, /* numpy < 1.9 */
        {2, 64, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
        {1, 64, "{\"shape\": (2,3), \"descr\": \"<f4\", \"fortran_order\": False}"}, /* any key order */
        {1, 7, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},  /* data misaligned */
        {1, 64, "{'descr': '=f4', 'fortran_order': False, 'shape': (2L, 3L), }"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "h%zu.npy", i);
        const char *p = write_npy(name, cases[i].major, cases[i].dict, cases[i].align, v, sizeof v);
        ek_npy *f;
        if (ek_npy_open(c, p, &f)) fail_msg("case %zu: %s", i, ek_ctx_last_error(c));
        ek_npy_info in;
        ek_npy_get_info(f, &in);
        assert_int_equal(in.rows, 2);
        assert_int_equal(in.cols, 3);
        assert_int_equal((uintptr_t)in.data % 4, 0);
        assert_memory_equal(in.data, v, sizeof v);
        /* the matrix view: float32 as F32, but not as INT8 */
        ek_matrix m;
        assert_int_equal(ek_npy_matrix(c, f, EK_VEC_F32, &m), EK_OK);
        assert_int_equal(m.rows, 2);
        assert_int_equal(m.dim, 3);
        assert_int_not_equal(ek_npy_matrix(c, f, EK_VEC_INT8, &m), EK_OK);
        ek_npy_close(f);
    }
    /* uint8 as packed binary: 8 dims per byte */
    unsigned char bits[4] = {0xff, 0, 1, 2};
    const char *p = write_npy("u8.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", 64, bits, 4);
    ek_npy *f;
    assert_int_equal(ek_npy_open(c, p, &f), EK_OK);
    ek_matrix m;
    assert_int_equal(ek_npy_matrix(c, f, EK_VEC_BINARY, &m), EK_OK);
    assert_int_equal(m.dim, 16);
    ek_npy_close(f);
    ek_ctx_free(c);
}

/* Opens path, expects status and a message naming the file and containing
 * each of the words. */
static void expect_refused(ek_ctx *c, const char *p, ek_status st, const char *w1, const char *w2) {
    ek_npy *f = (ek_npy *)(uintptr_t)1;
    ek_status got = ek_npy_open(c, p, &f);
    const char *msg = ek_ctx_last_error(c);
    if (got != st) fail_msg("%s: status %s, want %s (%s)", p, ek_status_name(got), ek_status_name(st), msg);
    assert_null(f);
    if (!strstr(msg, p)) fail_msg("message does not name the file: %s", msg);
    if (w1 && !strstr(msg, w1)) fail_msg("message lacks \"%s\": %s", w1, msg);
    if (w2 && !strstr(msg, w2)) fail_msg("message lacks \"%s\": %s", w2, msg);
}

static void test_malformed_files_refused(void **state) {
    (void)state;
    ek_ctx *c;
    assert_int_equal(ek_ctx_new(&c), EK_OK);
    float v[16] = {0}; /* 12 used, 4 more for the "extra bytes" case */
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    /* truncated data: 3 x 4 floats need 48 bytes */
    expect_refused(c, write_npy("trunc.npy", 1, ok, 64, v, 40), EK_ERR_FORMAT, "truncated", "48");
    /* extra bytes after the data */
    expect_refused(c, write_npy("extra.npy", 1, ok, 64, v, 48 + 4), EK_ERR_FORMAT, "shape (3, 4)", "52");
    /* shape / size mismatch */
    expect_refused(c, write_npy("shape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", 64, v,
                                48),
                   EK_ERR_FORMAT, "shape (4, 4)", "truncated");
    /* header cut short: the file ends inside the header */
    char raw[40];
    memcpy(raw, "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran", 36);
    assert_int_equal(ts_write_file(path_of("hcut.npy"), raw, 36), 0);
    expect_refused(c, path_of("hcut.npy"), EK_ERR_FORMAT, "truncated", "header");
    /* tiny file */
    assert_int_equal(ts_write_file(path_of("tiny.npy"), "\x93NUM", 4), 0);
    expect_refused(c, path_of("tiny.npy"), EK_ERR_FORMAT, "not a .npy", NULL);
    /* wrong magic */
    const char *p = write_npy("magic.npy", 1, ok, 64, v, 48);
    char *b = ts_read_file(p, NULL);
    b[1] = 'X';
    assert_int_equal(ts_write_file(p, b, 64 + 48), 0);
    free(b);
    expect_refused(c, p, EK_ERR_FORMAT, "magic", NULL);
    /* unsupported format version */
    p = write_npy("v4.npy", 1, ok, 64, v, 48);
    b = ts_read_file(p, NULL);
    b[6] = 4;
    assert_int_equal(ts_write_file(p, b, 64 + 48), 0);
    free(b);
    expect_refused(c, p, EK_ERR_UNSUPPORTED, "version 4.0", NULL);
    /* Fortran order */
    expect_refused(c, write_npy("fortran.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", 64, v, 48),
                   EK_ERR_UNSUPPORTED, "Fortran", NULL);
    /* unsupported dtypes: float64, big-endian float32, structured, int16 */
    expect_refused(c, write_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", 64, v, 48),
                   EK_ERR_UNSUPPORTED, "descr '<f8'", NULL);
    expect_refused(c, write_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", 64, v, 48),
                   EK_ERR_UNSUPPORTED, "descr '>f4'", NULL);
    expect_refused(c, write_npy("rec.npy", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (12,), }", 64,
                                v, 48),
                   EK_ERR_UNSUPPORTED, "structured", NULL);
    expect_refused(c, write_npy("i2.npy", 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3, 8), }", 64, v, 48),
                   EK_ERR_UNSUPPORTED, "descr '<i2'", NULL);
    /* dimensions: 3-D and 0-D */
    expect_refused(c, write_npy("3d.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 3), }", 64, v, 48),
                   EK_ERR_UNSUPPORTED, "3 dimensions", NULL);
    expect_refused(c, write_npy("0d.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 64, v, 4),
                   EK_ERR_UNSUPPORTED, "0 dimensions", NULL);
    /* missing key, garbage header */
    expect_refused(c, write_npy("nokey.npy", 1, "{'descr': '<f4', 'shape': (3, 4), }", 64, v, 48), EK_ERR_FORMAT,
                   "missing key 'fortran_order'", NULL);
    expect_refused(c, write_npy("junk.npy", 1, "not a dict", 64, v, 48), EK_ERR_FORMAT, "header", NULL);
    /* a file that does not exist */
    expect_refused(c, path_of("absent.npy"), EK_ERR_IO, "cannot open", NULL);
    ek_ctx_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_dtype),
        cmocka_unit_test(test_numpy_headers),
        cmocka_unit_test(test_malformed_files_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
