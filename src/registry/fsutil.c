/* registry/fsutil.c — the file system side of the registry: directories made
 * and synced, trees removed, files copied while hashed (SHA-256, libsodium),
 * and the per-version import locks.
 *
 * Durability rule used throughout: data is fsync'd before the name that
 * points at it is created, and the directory holding a new name is fsync'd
 * before the database records it. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/reg.h"

int reg_path(char *dst, size_t cap, ek_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "path too long (%d bytes, at most %zu): %.200s...",
                          n, cap - 1, dst);
    return EK_OK;
}

int reg_mkdirs(const char *path, ek_err *e) {
    char p[4096];
    if (reg_path(p, sizeof p, e, "%s", path)) return e->status;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return ek_err_set(e, EK_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return ek_err_set(e, EK_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ek_err_set(e, EK_ERR_IO, "%s: exists and is not a directory", p);
    return EK_OK;
}

int reg_fsync_dir(const char *path, ek_err *e) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL)
        return ek_err_set(e, EK_ERR_IO, "%s: fsync of directory failed: %s", path, strerror(err));
    return EK_OK;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP) return rmdir(path) != 0 && errno != ENOENT;
    return unlink(path) != 0 && errno != ENOENT;
}

int reg_rm_tree(const char *path, ek_err *e) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return EK_OK;
    if (!S_ISDIR(sb.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return ek_err_set(e, EK_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return EK_OK;
    }
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return ek_err_set(e, EK_ERR_IO, "%s: cannot remove the whole tree: %s", path, strerror(errno));
    return EK_OK;
}

static void to_hex(const unsigned char *d, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}

/* write() all of buf, retrying short writes and EINTR. */
static int write_all(int fd, const unsigned char *buf, size_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Streams src through SHA-256, also writing it to dst_fd when >= 0. */
static int hash_stream(const char *src, int dst_fd, const char *dst, char *hex, uint64_t *size,
                       ek_err *e) {
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    unsigned char buf[1 << 16];
    uint64_t total = 0;
    int rc = EK_OK;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = ek_err_set(e, EK_ERR_IO, "%s: read error: %s", src, strerror(errno));
            break;
        }
        if (r == 0) break;
        crypto_hash_sha256_update(&h, buf, (unsigned long long)r);
        if (dst_fd >= 0 && write_all(dst_fd, buf, (size_t)r) != 0) {
            rc = ek_err_set(e, EK_ERR_IO, "%s: write failed: %s%s", dst, strerror(errno),
                            errno == ENOSPC ? " (disk full)" : "");
            break;
        }
        total += (uint64_t)r;
    }
    close(fd);
    if (rc) return rc;
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&h, d);
    to_hex(d, hex);
    if (size) *size = total;
    return EK_OK;
}

int reg_hash_file(const char *path, char *hex, uint64_t *size, ek_err *e) {
    return hash_stream(path, -1, NULL, hex, size, e);
}

int reg_copy_hash(const char *src, const char *dst, char *hex, uint64_t *size, ek_err *e) {
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
    int rc = hash_stream(src, fd, dst, hex, size, e);
    if (!rc && fsync(fd) != 0)
        rc = ek_err_set(e, EK_ERR_IO, "%s: fsync failed: %s%s", dst, strerror(errno),
                        errno == ENOSPC ? " (disk full)" : "");
    if (close(fd) != 0 && !rc)
        rc = ek_err_set(e, EK_ERR_IO, "%s: close failed: %s", dst, strerror(errno));
    if (rc) unlink(dst);
    return rc;
}

static int lock_path(struct ek_registry *r, const char *name, int64_t version, char *p, size_t cap,
                     ek_err *e) {
    return reg_path(p, cap, e, "%s/locks/%s@%lld.lock", r->home, name, (long long)version);
}

/* flock (not fcntl) locks: they belong to the open file, so a second
 * importer in the same process (another thread) is refused too, and the
 * kernel drops them when the process dies, which is what recovery tests. */
int reg_lock_try(struct ek_registry *r, const char *name, int64_t version, int *fd, ek_err *e) {
    char p[4096];
    *fd = -1;
    if (lock_path(r, name, version, p, sizeof p, e)) return -1;
    int f = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        ek_err_set(e, EK_ERR_IO, "%s: cannot open lock: %s", p, strerror(errno));
        return -1;
    }
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(f);
        if (err == EWOULDBLOCK) return 0;
        ek_err_set(e, EK_ERR_IO, "%s: cannot lock: %s", p, strerror(err));
        return -1;
    }
    *fd = f;
    return 1;
}

void reg_lock_release(struct ek_registry *r, const char *name, int64_t version, int fd) {
    char p[4096];
    if (fd < 0) return;
    /* Unlink while still holding the lock so nobody locks a file about to go. */
    if (!lock_path(r, name, version, p, sizeof p, NULL)) unlink(p);
    close(fd);
}
