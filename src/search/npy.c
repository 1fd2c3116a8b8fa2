/* search/npy.c — reading and writing NumPy .npy files (format 1.0, 2.0 and
 * 3.0), the exchange format of numpy, faiss and sentence-transformers.
 *
 * Hand-written because the format is small and a dependency would be larger:
 * magic "\x93NUMPY", version bytes, a little-endian header length (2 bytes in
 * 1.0, 4 in 2.0/3.0), then a Python dict literal
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }
 * padded with spaces to a multiple of 64 bytes and ended by '\n', then the
 * data.  Only what embedkit searches is accepted: float32, float16, int8,
 * uint8 in C order with 1 or 2 dimensions and exactly the bytes the shape
 * needs; every refusal names the file and the problem. */
#include "search/npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "runtime/ctx.h"

size_t ek_npy_itemsize(ek_npy_dtype t) {
    return t == EK_NPY_F32 ? 4 : t == EK_NPY_F16 ? 2 : 1;
}

/* ---- header dict parser ------------------------------------------------- */

typedef struct hp {
    const char *start, *p, *end, *name;
    ek_err *e;
} hp;

static void ws(hp *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')) h->p++;
}

static int expect(hp *h, char c) {
    ws(h);
    if (h->p >= h->end || *h->p != c)
        return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: expected '%c' at header byte %zu",
                          h->name, c, (size_t)(h->p - h->start));
    h->p++;
    return 0;
}

/* A quoted Python string (no escapes needed for the keys and dtypes we read). */
static int str(hp *h, char *out, size_t cap) {
    ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: expected a quoted string", h->name);
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (n + 1 >= cap)
            return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: string too long", h->name);
        out[n++] = *h->p++;
    }
    if (h->p >= h->end) return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: unterminated string", h->name);
    h->p++;
    out[n] = '\0';
    return 0;
}

static int word(hp *h, const char *w) {
    ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) >= n && !memcmp(h->p, w, n)) {
        h->p += n;
        return 1;
    }
    return 0;
}

/* A tuple of non-negative integers: (), (n,), (n, d), ... */
static int tuple(hp *h, uint64_t *dims, int *ndim) {
    if (expect(h, '(')) return EK_ERR_FORMAT;
    *ndim = 0;
    for (;;) {
        ws(h);
        if (h->p < h->end && *h->p == ')') {
            h->p++;
            return 0;
        }
        if (h->p >= h->end || *h->p < '0' || *h->p > '9')
            return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: shape is not a tuple of integers", h->name);
        uint64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            if (v > (UINT64_MAX - 9) / 10)
                return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: shape value too large", h->name);
            v = v * 10 + (uint64_t)(*h->p++ - '0');
        }
        if (h->p < h->end && *h->p == 'L') h->p++; /* Python 2 long */
        if (*ndim == 8)
            return ek_err_set(h->e, EK_ERR_UNSUPPORTED, "%s: npy shape has more than 8 dimensions", h->name);
        dims[(*ndim)++] = v;
        ws(h);
        if (h->p < h->end && *h->p == ',') h->p++;
    }
}

static int parse_dict(hp *h, char *descr, size_t dcap, int *fortran, uint64_t *dims, int *ndim) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (expect(h, '{')) return EK_ERR_FORMAT;
    for (;;) {
        ws(h);
        if (h->p < h->end && *h->p == '}') {
            h->p++;
            break;
        }
        char key[32];
        if (str(h, key, sizeof key) || expect(h, ':')) return EK_ERR_FORMAT;
        if (!strcmp(key, "descr")) {
            ws(h);
            if (h->p < h->end && *h->p == '[')
                return ek_err_set(h->e, EK_ERR_UNSUPPORTED, "%s: npy descr is a structured dtype; "
                                  "need float32, float16, int8 or uint8", h->name);
            if (str(h, descr, dcap)) return EK_ERR_FORMAT;
            seen_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (word(h, "True")) *fortran = 1;
            else if (word(h, "False")) *fortran = 0;
            else return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: fortran_order is not True or False", h->name);
            seen_fortran = 1;
        } else if (!strcmp(key, "shape")) {
            if (tuple(h, dims, ndim)) return EK_ERR_FORMAT;
            seen_shape = 1;
        } else {
            return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: unexpected key '%s'", h->name, key);
        }
        ws(h);
        if (h->p < h->end && *h->p == ',') h->p++;
    }
    ws(h);
    if (h->p != h->end)
        return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: trailing characters after the dict", h->name);
    if (!seen_descr || !seen_fortran || !seen_shape)
        return ek_err_set(h->e, EK_ERR_FORMAT, "%s: npy header: missing key '%s'", h->name,
                          !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    return 0;
}

static int dtype_of(const char *d, ek_npy_dtype *t) {
    /* Byte order: '<' little, '=' native (little on every CPU embedkit
     * runs on), '|' not applicable (1-byte types); '>' only fits 1 byte. */
    char order = d[0];
    if (order != '<' && order != '|' && order != '=' && order != '>') return -1;
    const char *s = d + 1;
    if (!strcmp(s, "f4")) *t = EK_NPY_F32;
    else if (!strcmp(s, "f2")) *t = EK_NPY_F16;
    else if (!strcmp(s, "i1")) *t = EK_NPY_I8;
    else if (!strcmp(s, "u1")) *t = EK_NPY_U8;
    else return -1;
    int wide = *t == EK_NPY_F32 || *t == EK_NPY_F16;
    return wide && (order == '>' || order == '|') ? -1 : 0;
}

int ek_npy_parse(const void *buf, size_t size, const char *name,
                 ek_npy_info *info, ek_err *e) {
    const unsigned char *b = buf;
    memset(info, 0, sizeof *info);
    if (size < 10 || memcmp(b, "\x93NUMPY", 6))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: not a .npy file (%s)", name,
                          size < 6 ? "shorter than the magic string" : "wrong magic, expected \\x93NUMPY");
    int major = b[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return ek_err_set(e, EK_ERR_FORMAT, "%s: npy file truncated in the header length", name);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: npy format version %d.%d not supported (need 1.0, 2.0 or 3.0)",
                          name, major, b[7]);
    }
    if (hlen > size - hstart)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: npy file truncated: header needs %zu bytes, file has %zu",
                          name, hstart + hlen, size);
    char descr[16] = "";
    int fortran = 0, ndim = 0;
    uint64_t dims[8];
    hp h = {(const char *)b + hstart, (const char *)b + hstart, (const char *)b + hstart + hlen, name, e};
    if (parse_dict(&h, descr, sizeof descr, &fortran, dims, &ndim)) return e ? e->status : EK_ERR_FORMAT;
    ek_npy_dtype t;
    if (dtype_of(descr, &t))
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: npy descr '%s' not supported (need float32 '<f4', "
                          "float16 '<f2', int8 '|i1' or uint8 '|u1')", name, descr);
    if (fortran)
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: npy array is in Fortran order; save it in C order "
                          "(np.ascontiguousarray)", name);
    if (ndim < 1 || ndim > 2)
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: npy array has %d dimensions; need 1 (one vector) "
                          "or 2 (rows x dims)", name, ndim);
    uint64_t rows = ndim == 2 ? dims[0] : 1, cols = ndim == 2 ? dims[1] : dims[0];
    size_t item = ek_npy_itemsize(t), data_off = hstart + hlen, have = size - data_off;
    if (cols && rows > (uint64_t)SIZE_MAX / cols / item)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: npy shape too large", name);
    size_t need = (size_t)(rows * cols) * item;
    if (need != have)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: npy shape (%llu, %llu) of %zu-byte items needs %zu data bytes, "
                          "file has %zu%s", name, (unsigned long long)rows, (unsigned long long)cols, item,
                          need, have, have < need ? " (truncated)" : "");
    info->dtype = t;
    info->ndim = ndim;
    info->rows = (size_t)rows;
    info->cols = (size_t)cols;
    info->data = b + data_off;
    return EK_OK;
}

/* ---- public API --------------------------------------------------------- */

ek_status ek_npy_open(ek_ctx *ctx, const char *path, ek_npy **out) {
    if (!ctx || !path || !out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    ek_err_clear(&ctx->err);
    ek_npy *n = calloc(1, sizeof *n);
    if (!n) return ek_ctx_fail(ctx, &(ek_err){EK_ERR_NOMEM, "out of memory"});
    int rc = ek_map_file(path, &n->map, &n->map_size, &ctx->err);
    if (!rc) rc = ek_npy_parse(n->map, n->map_size, path, &n->info, &ctx->err);
    if (!rc && ((uintptr_t)n->info.data % ek_npy_itemsize(n->info.dtype))) {
        /* The format pads headers to 16 or 64 bytes; a writer that did not
         * gets its data copied so every element is aligned. */
        size_t bytes = n->info.rows * n->info.cols * ek_npy_itemsize(n->info.dtype);
        n->copy = malloc(bytes ? bytes : 1);
        if (!n->copy) rc = ek_err_set(&ctx->err, EK_ERR_NOMEM, "%s: out of memory", path);
        else {
            memcpy(n->copy, n->info.data, bytes);
            n->info.data = n->copy;
        }
    }
    if (rc) {
        ek_npy_close(n);
        return (ek_status)rc;
    }
    *out = n;
    return EK_OK;
}

void ek_npy_get_info(const ek_npy *npy, ek_npy_info *info) {
    if (npy && info) *info = npy->info;
}

void ek_npy_close(ek_npy *npy) {
    if (!npy) return;
    ek_unmap_file(npy->map, npy->map_size);
    free(npy->copy);
    free(npy);
}

ek_status ek_npy_write(ek_ctx *ctx, const char *path, ek_npy_dtype dtype, int ndim,
                       size_t rows, size_t cols, const void *data) {
    if (!ctx || !path || (!data && rows != 0 && cols != 0) || (unsigned)dtype > EK_NPY_U8 || ndim < 1 || ndim > 2 ||
        (ndim == 1 && rows != 1))
        return ctx ? ek_ctx_fail(ctx, &(ek_err){EK_ERR_INVALID_ARG, "ek_npy_write: invalid arguments"})
                   : EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    static const char *descr[] = {"<f4", "<f2", "|i1", "|u1"};
    char dict[256];
    int dl = ndim == 2
                 ? snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }",
                            descr[dtype], rows, cols)
                 : snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }",
                            descr[dtype], cols);
    /* Pad with spaces so magic + version + length + dict + '\n' is a
     * multiple of 64 (format 1.0: 10-byte preamble). */
    unsigned char head[320];
    size_t total = (10 + (size_t)dl + 1 + 63) / 64 * 64, hlen = total - 10;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)dl);
    memset(head + 10 + dl, ' ', hlen - (size_t)dl - 1);
    head[total - 1] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return (ek_status)ek_err_set(&ctx->err, EK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t bytes = rows * cols * ek_npy_itemsize(dtype);
    int ok = fwrite(head, 1, total, f) == total && (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
    ok &= fclose(f) == 0;
    if (!ok) return (ek_status)ek_err_set(&ctx->err, EK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return EK_OK;
}

ek_status ek_npy_matrix(ek_ctx *ctx, const ek_npy *npy, ek_vec_type type, ek_matrix *out) {
    if (!ctx || !npy || !out) return EK_ERR_INVALID_ARG;
    const ek_npy_info *i = &npy->info;
    static const int want[] = {[EK_VEC_F32] = EK_NPY_F32, [EK_VEC_F16] = EK_NPY_F16, [EK_VEC_BF16] = -1,
                               [EK_VEC_INT8] = EK_NPY_I8, [EK_VEC_BINARY] = EK_NPY_U8};
    static const char *npy_names[] = {"float32", "float16", "int8", "uint8"};
    if ((unsigned)type > EK_VEC_BINARY || want[type] != (int)i->dtype)
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "npy array of %s cannot be read as %s vectors",
                                     npy_names[i->dtype], ek_vec_type_name(type));
    out->type = type;
    out->data = i->data;
    out->rows = i->rows;
    out->dim = type == EK_VEC_BINARY ? i->cols * 8 : i->cols;
    out->stride = i->cols;
    return EK_OK;
}
