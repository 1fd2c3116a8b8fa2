/* base/file.h — reading small files whole and mapping large ones read-only.
 * Errors name the path and the OS reason. */
#ifndef EK_BASE_FILE_H
#define EK_BASE_FILE_H

#include <stddef.h>
#include "base/err.h"

/* Reads path into a malloc'd NUL-terminated buffer (*len bytes, excluding the
 * NUL).  Files larger than max_bytes are refused (config files are small). */
int ek_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                 ek_err *e);
/* Maps path read-only and shared (processes share the page cache).  An empty
 * file maps to (NULL, 0). */
int ek_map_file(const char *path, void **map, size_t *size, ek_err *e);
void ek_unmap_file(void *map, size_t size);
int ek_file_exists(const char *path);
int ek_dir_exists(const char *path);
/* snprintf(dst, cap, "%s/%s") that reports truncation as an error. */
int ek_path_join(char *dst, size_t cap, const char *a, const char *b, ek_err *e);

#endif
