/* base/file.c — see file.h. */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ek_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                 ek_err *e) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ek_err_set(e, EK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ek_err_set(e, EK_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(f);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: file is %lld bytes, more than the %zu allowed",
                          path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return ek_err_set(e, EK_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t r = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (r != n || bad) {
        free(buf);
        return ek_err_set(e, EK_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return EK_OK;
}

int ek_map_file(const char *path, void **map, size_t *size, ek_err *e) {
    *map = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ek_err_set(e, EK_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return EK_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) return ek_err_set(e, EK_ERR_IO, "%s: mmap failed: %s", path, strerror(err));
    *map = p;
    *size = (size_t)st.st_size;
    return EK_OK;
}

void ek_unmap_file(void *map, size_t size) {
    if (map && size) munmap(map, size);
}

int ek_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ek_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ek_path_join(char *dst, size_t cap, const char *a, const char *b, ek_err *e) {
    int n = snprintf(dst, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "path too long: %s/%s", a, b);
    return EK_OK;
}
