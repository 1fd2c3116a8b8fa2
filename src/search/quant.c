/* search/quant.c — sentence-transformers' int8 and binary quantization, and
 * the conversion of codes into the blocked layouts of kernels.h. */
#include "search/quant.h"

#include <math.h>
#include <string.h>

#include "search/kernels.h"

void ek_q_ranges(const float *x, size_t n, size_t dim, size_t ld, float *ranges) {
    float *mn = ranges, *mx = ranges + dim;
    for (size_t j = 0; j < dim; j++) mn[j] = mx[j] = n ? x[j] : 0.0f;
    for (size_t i = 1; i < n; i++) {
        const float *r = x + i * ld;
        for (size_t j = 0; j < dim; j++) {
            if (r[j] < mn[j]) mn[j] = r[j];
            if (r[j] > mx[j]) mx[j] = r[j];
        }
    }
}

void ek_q_steps(const float *ranges, size_t dim, float *step) {
    for (size_t j = 0; j < dim; j++) {
        /* float32 arithmetic, as numpy: (max - min) / 255, 0 becomes 1 */
        float s = (ranges[dim + j] - ranges[j]) / 255.0f;
        step[j] = s == 0.0f ? 1.0f : s;
    }
}

void ek_q_int8(const float *x, size_t n, size_t dim, size_t ld,
               const float *ranges, int8_t *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * ld;
        for (size_t j = 0; j < dim; j++) {
            float s = (ranges[dim + j] - ranges[j]) / 255.0f;
            if (s == 0.0f) s = 1.0f;
            float v = floorf((r[j] - ranges[j]) / s);
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            out[i * dim + j] = (int8_t)((int)v - 128);
        }
    }
}

void ek_q_binary(const float *x, size_t n, size_t dim, size_t ld, uint8_t *out) {
    size_t nb = (dim + 7) / 8;
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * ld;
        uint8_t *o = out + i * nb;
        memset(o, 0, nb);
        for (size_t j = 0; j < dim; j++)
            if (r[j] > 0.0f) o[j / 8] |= (uint8_t)(0x80u >> (j % 8));
    }
}

void ek_q_block_int8(const int8_t *codes, size_t n, size_t ld, size_t d,
                     int8_t *out) {
    size_t G = (d + 3) / 4, nblk = (n + EK_I8_BLOCK - 1) / EK_I8_BLOCK;
    memset(out, 0, nblk * G * 64);
    for (size_t i = 0; i < n; i++) {
        size_t b = i / EK_I8_BLOCK, r = i % EK_I8_BLOCK;
        const int8_t *row = codes + i * ld;
        for (size_t j = 0; j < d; j++)
            out[((b * G + j / 4) * EK_I8_BLOCK + r) * 4 + j % 4] = row[j];
    }
}

void ek_q_words(const uint8_t *packed, size_t d, uint64_t *words) {
    size_t W = (d + 63) / 64;
    for (size_t w = 0; w < W; w++) {
        uint64_t v = 0;
        for (size_t byte = 0; byte < 8; byte++) {
            size_t j = w * 64 + byte * 8; /* first bit of this byte */
            uint8_t b = j < d ? packed[j / 8] : 0;
            if (j + 8 > d && j < d) b &= (uint8_t)(0xffu << (8 - (d - j))); /* bits past d */
            v = (v << 8) | b;
        }
        words[w] = v;
    }
}

void ek_q_block_binary(const uint8_t *packed, size_t n, size_t ld, size_t d,
                       uint64_t *out) {
    size_t W = (d + 63) / 64, nblk = (n + EK_BIN_BLOCK - 1) / EK_BIN_BLOCK;
    uint64_t words[64];
    memset(out, 0, nblk * W * EK_BIN_BLOCK * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        size_t b = i / EK_BIN_BLOCK, r = i % EK_BIN_BLOCK;
        for (size_t w0 = 0; w0 < W; w0 += 64) {
            /* 64 words (4096 bits) at a time keeps the buffer on the stack */
            size_t dd = d - w0 * 64 < 4096 ? d - w0 * 64 : 4096;
            ek_q_words(packed + i * ld + w0 * 8, dd, words);
            for (size_t w = 0; w < (dd + 63) / 64; w++)
                out[(b * W + w0 + w) * EK_BIN_BLOCK + r] = words[w];
        }
    }
}
