/* search/quant.h — embedding quantization as sentence-transformers'
 * quantize_embeddings does it, and the blocked layouts the kernels read.
 *
 * int8 (sentence-transformers "int8"): per dimension d, with ranges
 * [2][dim] = (min_d, max_d) over calibration embeddings,
 *     step_d = (max_d - min_d) / 255   (1 when that is 0)
 *     code   = clip(floor((x - min_d) / step_d), 0, 255) - 128
 * in float32 arithmetic, exactly as numpy evaluates it.  A code decodes to
 * min_d + step_d * (code + 128).
 *
 * binary ("ubinary"): np.packbits(x > 0): dimension j is bit 7 - j % 8 of byte
 * j / 8 (the first dimension is the most significant bit); the last byte is
 * zero-padded.  sentence-transformers' "binary" is the same bytes minus 128
 * as int8. */
#ifndef EK_SEARCH_QUANT_H
#define EK_SEARCH_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ranges[0][j] = min, ranges[1][j] = max over n rows of x (row stride ld). */
void ek_q_ranges(const float *x, size_t n, size_t dim, size_t ld, float *ranges);
/* Codes for n rows of dim values (row stride ld) into out (n x dim). */
void ek_q_int8(const float *x, size_t n, size_t dim, size_t ld,
               const float *ranges, int8_t *out);
/* step_d as above, for dims [0, dim). */
void ek_q_steps(const float *ranges, size_t dim, float *step);
/* Packed sign bits of n rows into out (n x ceil(dim/8)). */
void ek_q_binary(const float *x, size_t n, size_t dim, size_t ld, uint8_t *out);

/* Blocked int8 layout (kernels.h) of the first d dims of n rows of codes
 * (row stride ld bytes).  out holds ceil(n/16) * G * 64 bytes, G = ceil(d/4);
 * padding is zero. */
void ek_q_block_int8(const int8_t *codes, size_t n, size_t ld, size_t d,
                     int8_t *out);
/* Blocked binary layout of the first d bits of n packed rows (ld bytes per
 * row).  out holds ceil(n/8) * W * 8 words, W = ceil(d/64); bits past d and
 * padding rows are zero. */
void ek_q_block_binary(const uint8_t *packed, size_t n, size_t ld, size_t d,
                       uint64_t *out);
/* The first d bits of one packed row as W 64-bit words, in the order the
 * blocked layout uses (bit j of the row is bit 63 - j % 64 of word j / 64). */
void ek_q_words(const uint8_t *packed, size_t d, uint64_t *words);

#endif
