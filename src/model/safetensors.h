/* model/safetensors.h — reading .safetensors files (single or sharded) by
 * mapping them read-only.  Every header field is checked: dtype, shape,
 * data_offsets inside the file, offsets consistent with dtype x shape. */
#ifndef EK_MODEL_SAFETENSORS_H
#define EK_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

/* EK_DT_OTHER: a dtype embedkit cannot compute with (I64 position_ids
 * buffers, F64...): kept in the table, refused only if a needed tensor. */
typedef enum { EK_DT_F32 = 0, EK_DT_F16 = 1, EK_DT_BF16 = 2, EK_DT_OTHER = 3 } ek_dtype;

typedef struct ek_st_tensor {
    char *name;
    ek_dtype dtype;
    char dtype_name[8];    /* as written in the header */
    int ndim;
    int64_t shape[4];
    const void *data;      /* inside the mapping */
    size_t nbytes;
    int file;              /* index of the shard it lives in */
} ek_st_tensor;

typedef struct ek_st_file {
    char path[4096];
    void *map;
    size_t size;
} ek_st_file;

typedef struct ek_safetensors {
    ek_st_file *files;
    int n_files;
    ek_st_tensor *t;
    int n;
} ek_safetensors;

/* Opens dir/model.safetensors, or dir/model.safetensors.index.json and its
 * shards.  (fname: base name to look for, e.g. "model.safetensors".) */
int ek_st_open_dir(const char *dir, const char *fname, ek_safetensors *st,
                   ek_err *e);
int ek_st_open_file(const char *path, ek_safetensors *st, ek_err *e);
void ek_st_close(ek_safetensors *st);
const ek_st_tensor *ek_st_find(const ek_safetensors *st, const char *name);
const char *ek_dtype_name(ek_dtype d);

#endif
