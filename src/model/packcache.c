/* model/packcache.c — reading, validating and atomically writing packed-
 * weight cache files (see packcache.h for the format and the reasons). */
#include "model/packcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char MAGIC[8] = {'E', 'K', 'P', 'A', 'C', 'K', '0', '1'};

/* ---- checksum ------------------------------------------------------------ */

/* Eight independent lanes over 64-byte blocks, so the multiplies pipeline;
 * each step (xor, rotate, multiply by an odd constant) is invertible, so
 * changing any one word always changes its lane. */
#define SUM_MUL 0x9e3779b97f4a7c15ull

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static void sum_block(ek_pc_sum *s, const unsigned char *b) {
    for (int j = 0; j < 8; j++) {
        uint64_t w;
        memcpy(&w, b + 8 * j, 8);
        s->lane[j] = rotl64(s->lane[j] ^ w, 29) * SUM_MUL;
    }
}

void ek_pc_sum_init(ek_pc_sum *s) {
    memset(s, 0, sizeof *s);
    for (int j = 0; j < 8; j++) s->lane[j] = 0x243f6a8885a308d3ull + (uint64_t)j * 0x13198a2e03707344ull;
}

void ek_pc_sum_add(ek_pc_sum *s, const void *p, size_t n) {
    const unsigned char *c = p;
    s->total += n;
    if (s->n_carry) {
        size_t take = 64 - s->n_carry < n ? 64 - s->n_carry : n;
        memcpy(s->carry + s->n_carry, c, take);
        s->n_carry += take, c += take, n -= take;
        if (s->n_carry < 64) return;
        sum_block(s, s->carry);
        s->n_carry = 0;
    }
    for (; n >= 64; c += 64, n -= 64) sum_block(s, c);
    memcpy(s->carry, c, n);
    s->n_carry = n;
}

uint64_t ek_pc_sum_final(const ek_pc_sum *s) {
    ek_pc_sum t = *s;
    if (t.n_carry) {
        memset(t.carry + t.n_carry, 0, 64 - t.n_carry);
        sum_block(&t, t.carry);
    }
    uint64_t h = t.total * SUM_MUL;
    for (int j = 0; j < 8; j++) {
        h = rotl64(h ^ t.lane[j], 31) * SUM_MUL;
        h ^= h >> 32;
    }
    return h;
}

static uint64_t sum_of(const void *p, size_t n) {
    ek_pc_sum s;
    ek_pc_sum_init(&s);
    ek_pc_sum_add(&s, p, n);
    return ek_pc_sum_final(&s);
}

/* ---- header ---------------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---- open -------------------------------------------------------------------- */

void ek_pc_unmap(ek_pc_map *m) {
    if (m->base) munmap((void *)m->base, m->size);
    m->base = NULL;
    m->size = 0;
}

/* Reads n bytes at off, retrying short reads. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

int ek_pc_open(const char *path, const unsigned char key[EK_PC_KEY_BYTES], uint64_t file_bytes,
               ek_pc_map *out, char *why, size_t cap) {
    out->base = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, cap, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
        return -1;
    }
    struct stat sb;
    unsigned char h[EK_PC_HEADER];
    unsigned char *buf = NULL;
    int rc = -1;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        snprintf(why, cap, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size != file_bytes) {
        snprintf(why, cap, "%s: %lld bytes, expected %llu (truncated or foreign)", path, (long long)sb.st_size,
                 (unsigned long long)file_bytes);
        goto out;
    }
    if (file_bytes < EK_PC_HEADER || pread_all(fd, h, sizeof h, 0)) {
        snprintf(why, cap, "%s: cannot read the header", path);
        goto out;
    }
    if (memcmp(h, MAGIC, 8) || get_u32(h + 8) != EK_PC_FORMAT || get_u32(h + 12) != EK_PC_HEADER) {
        snprintf(why, cap, "%s: not an embedkit packed-weight file of format %d", path, EK_PC_FORMAT);
        goto out;
    }
    if (get_u64(h + 64) != sum_of(h, 64)) {
        snprintf(why, cap, "%s: header checksum mismatch (damaged)", path);
        goto out;
    }
    if (get_u64(h + 16) != file_bytes || memcmp(h + 24, key, EK_PC_KEY_BYTES)) {
        snprintf(why, cap, "%s: the header's key or size is another model's", path);
        goto out;
    }
    /* The payload through read(), not the mapping: pages this process never
     * computes with (the fused f32 QKV kept for the GPU path) then stay out
     * of its page tables, and the page cache can drop them. */
    enum { CHUNK = 1 << 20 };
    buf = malloc(CHUNK);
    if (!buf) {
        snprintf(why, cap, "%s: out of memory", path);
        goto out;
    }
    ek_pc_sum s;
    ek_pc_sum_init(&s);
    for (uint64_t off = EK_PC_HEADER; off < file_bytes;) {
        size_t n = file_bytes - off < CHUNK ? (size_t)(file_bytes - off) : CHUNK;
        if (pread_all(fd, buf, n, off)) {
            snprintf(why, cap, "%s: read failed at byte %llu", path, (unsigned long long)off);
            goto out;
        }
        ek_pc_sum_add(&s, buf, n);
        off += n;
    }
    if (ek_pc_sum_final(&s) != get_u64(h + 56)) {
        snprintf(why, cap, "%s: payload checksum mismatch (damaged)", path);
        goto out;
    }
    void *m = mmap(NULL, (size_t)file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        snprintf(why, cap, "%s: mmap: %s", path, strerror(errno));
        goto out;
    }
    out->base = m;
    out->size = (size_t)file_bytes;
    rc = 0;
    /* The file's mtime records its last use, so `ek models gc` can prune
     * files no load has used for a while (ek_registry_gc_packed).  Best
     * effort: a cache directory shared read-only still serves. */
    (void)futimens(fd, NULL);
out:
    free(buf);
    close(fd);
    return rc;
}

/* ---- write ------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

static int write_zeros(int fd, uint64_t n, ek_pc_sum *s) {
    static const unsigned char z[4096];
    while (n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        if (write_all(fd, z, k)) return -1;
        ek_pc_sum_add(s, z, k);
        n -= k;
    }
    return 0;
}

int ek_pc_write(const char *dir, const char *path, const unsigned char key[EK_PC_KEY_BYTES],
                uint64_t file_bytes, const ek_pc_piece *pieces, int n, const char *text, char *why,
                size_t cap) {
    if (mkdir(dir, 0755) && errno != EEXIST) {
        snprintf(why, cap, "cache directory %s: %s", dir, strerror(errno));
        return -1;
    }
    /* Unique per process, call and thread (the address of this frame):
     * concurrent writers never share a temporary file. */
    static const char hexd[] = "0123456789abcdef";
    char tmp[4200], tag[17];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int i = 0; i < 8; i++) tag[2 * i] = hexd[key[i] >> 4], tag[2 * i + 1] = hexd[key[i] & 15];
    tag[16] = '\0';
    int len = snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%ld-%lx-%ld.ekpack", dir, tag, (long)getpid(),
                       (unsigned long)(uintptr_t)tmp, (long)ts.tv_nsec);
    if (len < 0 || (size_t)len >= sizeof tmp) {
        snprintf(why, cap, "cache directory %s: path too long", dir);
        return -1;
    }
    /* 0444 like the registry's blobs: the file is never edited in place. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) {
        snprintf(why, cap, "creating %s: %s", tmp, strerror(errno));
        return -1;
    }
    unsigned char h[EK_PC_HEADER];
    memset(h, 0, sizeof h);
    memcpy(h, MAGIC, 8);
    put_u32(h + 8, EK_PC_FORMAT);
    put_u32(h + 12, EK_PC_HEADER);
    put_u64(h + 16, file_bytes);
    memcpy(h + 24, key, EK_PC_KEY_BYTES);
    snprintf((char *)h + 72, sizeof h - 72, "%s", text ? text : "");
    /* The header goes last (pwrite at 0) once the payload sum is known. */
    ek_pc_sum s;
    ek_pc_sum_init(&s);
    int bad = lseek(fd, EK_PC_HEADER, SEEK_SET) != EK_PC_HEADER;
    uint64_t at = EK_PC_HEADER;
    for (int i = 0; i < n && !bad; i++) {
        if (pieces[i].offset < at || pieces[i].offset + pieces[i].len > file_bytes) {
            snprintf(why, cap, "packed-weight file %s: piece %d out of order (internal)", path, i);
            bad = 2;
            break;
        }
        bad = write_zeros(fd, pieces[i].offset - at, &s) || write_all(fd, pieces[i].data, pieces[i].len);
        ek_pc_sum_add(&s, pieces[i].data, pieces[i].len);
        at = pieces[i].offset + pieces[i].len;
    }
    if (!bad) bad = write_zeros(fd, file_bytes - at, &s);
    if (!bad) {
        put_u64(h + 56, ek_pc_sum_final(&s));
        put_u64(h + 64, sum_of(h, 64));
        bad = pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h;
    }
    if (!bad) bad = fsync(fd) != 0;
    int err = errno;
    if (close(fd) && !bad) bad = 1, err = errno;
    if (!bad && rename(tmp, path)) bad = 1, err = errno;
    if (bad) {
        if (bad == 1) snprintf(why, cap, "writing %s: %s", tmp, strerror(err));
        unlink(tmp);
        return -1;
    }
    /* The rename is durable once the directory is synced; a failure here
     * only risks the file's disappearing after a crash (it is a cache). */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd)) { /* ignored: see above */
        }
        close(dfd);
    }
    return 0;
}
