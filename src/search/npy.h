/* search/npy.h — NumPy .npy files: header parsing and validation, read-only
 * mapping, writing.  The public wrappers are ek_npy_* in embedkit_search.h;
 * these internal forms fill an ek_err. */
#ifndef EK_SEARCH_NPY_H
#define EK_SEARCH_NPY_H

#include <stddef.h>

#include "base/err.h"
#include "embedkit_search.h"

struct ek_npy {
    void *map;          /* the whole file, mapped read-only */
    size_t map_size;
    void *copy;         /* data copied when the mapping is misaligned */
    ek_npy_info info;
};

/* Parses an in-memory .npy image (header + data); name is used in messages.
 * On success info->data points into buf. */
int ek_npy_parse(const void *buf, size_t size, const char *name,
                 ek_npy_info *info, ek_err *e);
size_t ek_npy_itemsize(ek_npy_dtype t);

#endif
