/* model/packcache.h — the packed-weight cache file: the bytes a model's
 * dense layers are packed into (model/prepack.h), kept in a file so every
 * model and process using the same weights maps one read-only copy instead
 * of packing a private one.
 *
 * The file is named by its key, a BLAKE2b-256 digest of everything the bytes
 * depend on (prepack.c computes it: format version, compute dtype, ISA
 * levels, oneDNN version, the packed layouts, and the weights' content).
 * Layout: a 4096-byte header, then the payload (offsets are computed by the
 * reader from the same shapes, so the file holds no table to trust):
 *
 *   off  0  magic "EKPACK01"
 *   off  8  u32 format (EK_PC_FORMAT), u32 header bytes (4096)
 *   off 16  u64 file bytes
 *   off 24  key (32 bytes)
 *   off 56  u64 checksum of the payload
 *   off 64  u64 checksum of bytes 0..63
 *   off 72  a NUL-terminated line for people (dtype, shapes, ISA, oneDNN)
 *
 * Files are written to a temporary name, fsync'ed and renamed into place
 * (concurrent writers each rename a complete file; the last one wins), and
 * never modified afterwards, so a mapping of one never changes under a
 * reader.  Deleting them is always safe: a mapped file lives on until
 * unmapped, and a missing one is packed and written again.
 *
 * Validation on open (a miss is never an error: the caller repacks and
 * rewrites): regular file, size, magic, format, header checksum, key, and
 * the payload checksum.  The payload checksum is a 64-bit multiply-xor sum
 * over 8 lanes (~10 GB/s, a few ms for a MiniLM) rather than a
 * cryptographic digest (~0.8 GB/s): it is there to catch torn or damaged
 * files, and anyone able to write the directory could recompute any digest
 * anyway, so a slower one would buy nothing. */
#ifndef EK_MODEL_PACKCACHE_H
#define EK_MODEL_PACKCACHE_H

#include <stddef.h>
#include <stdint.h>

#define EK_PC_FORMAT 1
#define EK_PC_HEADER 4096
#define EK_PC_KEY_BYTES 32

/* What the cache did for one model (copied into ek_packed_cache_info). */
enum { EK_PC_OFF = 0, EK_PC_HIT = 1, EK_PC_WRITTEN = 2, EK_PC_FALLBACK = 3 };

typedef struct ek_pc_info {
    int state;                 /* EK_PC_* */
    char path[4096];           /* the cache file (empty when OFF) */
    char reason[512];          /* WRITTEN: why there was no usable file;
                                  FALLBACK: why the packed weights are in
                                  private memory */
    uint64_t file_bytes;
    int weights_hashed;        /* 1: the tensors were hashed for the key;
                                  0: the caller's weights digest was used */
    double key_ms, open_ms, pack_ms, write_ms;
} ek_pc_info;

/* A validated cache file mapped PROT_READ / MAP_SHARED. */
typedef struct ek_pc_map {
    const unsigned char *base;
    size_t size;
} ek_pc_map;

/* One piece of the payload for ek_pc_write: len bytes of data at offset
 * (from the start of the file; pieces sorted, not overlapping, gaps are
 * zeros). */
typedef struct ek_pc_piece {
    uint64_t offset;
    const void *data;
    size_t len;
} ek_pc_piece;

/* Opens and validates path for key with exactly file_bytes bytes, and maps
 * it.  Returns 0, or -1 with why (cap bytes) saying what did not match
 * ("no such file" included). */
int ek_pc_open(const char *path, const unsigned char key[EK_PC_KEY_BYTES], uint64_t file_bytes,
               ek_pc_map *out, char *why, size_t cap);
void ek_pc_unmap(ek_pc_map *m);

/* Writes the file atomically (temporary name in dir, fsync, rename, fsync
 * of dir), creating dir (one level) when missing.  text: the header line.
 * Returns 0, or -1 with why. */
int ek_pc_write(const char *dir, const char *path, const unsigned char key[EK_PC_KEY_BYTES],
                uint64_t file_bytes, const ek_pc_piece *pieces, int n, const char *text, char *why,
                size_t cap);

/* The payload checksum, streamed (exposed for the tests). */
typedef struct ek_pc_sum {
    uint64_t lane[8];
    unsigned char carry[64];
    size_t n_carry;
    uint64_t total;
} ek_pc_sum;

void ek_pc_sum_init(ek_pc_sum *s);
void ek_pc_sum_add(ek_pc_sum *s, const void *p, size_t n);
uint64_t ek_pc_sum_final(const ek_pc_sum *s);

#endif
