/* model/safetensors.c — the safetensors container: header parsing and
 * validation over a read-only mapping.  Nothing is copied: tensors point into
 * the mapping, so several processes loading one model share its pages.
 *
 * Format: u64 little-endian header size N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to the end of the header. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

static const struct { const char *name; ek_dtype dt; size_t size; } k_dtypes[] = {
    {"F32", EK_DT_F32, 4}, {"F16", EK_DT_F16, 2}, {"BF16", EK_DT_BF16, 2},
    {"F64", EK_DT_OTHER, 8}, {"I64", EK_DT_OTHER, 8}, {"I32", EK_DT_OTHER, 4},
    {"I16", EK_DT_OTHER, 2}, {"I8", EK_DT_OTHER, 1}, {"U8", EK_DT_OTHER, 1},
    {"BOOL", EK_DT_OTHER, 1}, {"F8_E4M3", EK_DT_OTHER, 1}, {"F8_E5M2", EK_DT_OTHER, 1},
    {"U16", EK_DT_OTHER, 2}, {"U32", EK_DT_OTHER, 4}, {"U64", EK_DT_OTHER, 8},
};

const char *ek_dtype_name(ek_dtype d) {
    switch (d) {
    case EK_DT_F32: return "F32";
    case EK_DT_F16: return "F16";
    case EK_DT_BF16: return "BF16";
    default: return "other";
    }
}

/* Parses one mapped file's header and appends its tensors to st. */
static int parse_header(ek_safetensors *st, int file_idx, ek_err *e) {
    const ek_st_file *f = &st->files[file_idx];
    const unsigned char *p = f->map;
    if (f->size < 8)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header",
                          f->path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen < 2 || hlen > f->size - 8 || hlen > (100u << 20))
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: header length %llu does not fit in the %zu-byte file",
                          f->path, (unsigned long long)hlen, f->size);
    size_t data_start = 8 + (size_t)hlen, data_len = f->size - data_start;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: header is not a JSON object", f->path);
    }
    int count = cJSON_GetArraySize(root);
    ek_st_tensor *nt = realloc(st->t, sizeof *nt * (size_t)(st->n + count));
    if (!nt) {
        cJSON_Delete(root);
        return ek_err_set(e, EK_ERR_NOMEM, "%s: out of memory", f->path);
    }
    st->t = nt;
    int rc = EK_OK;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (!strcmp(name, "__metadata__")) continue;
        if (!cJSON_IsObject(it)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: tensor %s: entry is not an object", f->path, name);
            break;
        }
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2) {
            rc = ek_err_set(e, EK_ERR_FORMAT,
                            "%s: tensor %s: needs dtype (string), shape (array), data_offsets ([begin, end])",
                            f->path, name);
            break;
        }
        ek_st_tensor t;
        memset(&t, 0, sizeof t);
        size_t esize = 0;
        for (size_t k = 0; k < sizeof k_dtypes / sizeof k_dtypes[0]; k++)
            if (!strcmp(dt->valuestring, k_dtypes[k].name)) {
                t.dtype = k_dtypes[k].dt;
                esize = k_dtypes[k].size;
            }
        if (!esize) {
            rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: tensor %s: unknown dtype \"%.16s\"", f->path,
                            name, dt->valuestring);
            break;
        }
        snprintf(t.dtype_name, sizeof t.dtype_name, "%s", dt->valuestring);
        t.ndim = cJSON_GetArraySize(sh);
        if (t.ndim > 4) {
            rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: tensor %s: %d dimensions (at most 4)", f->path,
                            name, t.ndim);
            break;
        }
        uint64_t elems = 1;
        int k = 0, bad = 0;
        for (cJSON *d = sh->child; d; d = d->next, k++) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
                d->valuedouble != (double)(int64_t)d->valuedouble) {
                bad = 1;
                break;
            }
            t.shape[k] = (int64_t)d->valuedouble;
            elems *= (uint64_t)t.shape[k];
            if (elems > (1ull << 40)) bad = 1;
        }
        double b0 = cJSON_GetArrayItem(off, 0)->valuedouble, b1 = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (bad || !cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1))) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: tensor %s: invalid shape or data_offsets", f->path, name);
            break;
        }
        if (b0 < 0 || b1 < b0 || b1 > (double)data_len) {
            rc = ek_err_set(e, EK_ERR_FORMAT,
                            "%s: tensor %s: data_offsets [%.0f, %.0f] run past the %zu data bytes of the file",
                            f->path, name, b0, b1, data_len);
            break;
        }
        size_t begin = (size_t)b0, end = (size_t)b1;
        if ((uint64_t)(end - begin) != elems * esize) {
            rc = ek_err_set(e, EK_ERR_FORMAT,
                            "%s: tensor %s: data_offsets span %zu bytes but dtype %s x shape needs %llu",
                            f->path, name, end - begin, t.dtype_name,
                            (unsigned long long)(elems * esize));
            break;
        }
        t.name = strdup(name);
        if (!t.name) {
            rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
            break;
        }
        t.data = p + data_start + begin;
        t.nbytes = end - begin;
        t.file = file_idx;
        st->t[st->n++] = t;
    }
    cJSON_Delete(root);
    return rc;
}

static int add_file(ek_safetensors *st, const char *path, ek_err *e) {
    ek_st_file *nf = realloc(st->files, sizeof *nf * (size_t)(st->n_files + 1));
    if (!nf) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    st->files = nf;
    ek_st_file *f = &st->files[st->n_files];
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    int rc = ek_map_file(path, &f->map, &f->size, e);
    if (rc) return rc;
    st->n_files++;
    return parse_header(st, st->n_files - 1, e);
}

int ek_st_open_file(const char *path, ek_safetensors *st, ek_err *e) {
    memset(st, 0, sizeof *st);
    int rc = add_file(st, path, e);
    if (rc) ek_st_close(st);
    return rc;
}

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}.
 * Every shard is opened once; every tensor named in weight_map must be in the
 * shard the index says. */
static int open_sharded(const char *dir, const char *index_path, ek_safetensors *st, ek_err *e) {
    char *text = NULL;
    int rc = ek_read_file(index_path, 64u << 20, &text, NULL, e);
    if (rc) return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!root || !cJSON_IsObject(wm) || !wm->child) {
        cJSON_Delete(root);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: field weight_map: missing, empty or not an object",
                          index_path);
    }
    for (cJSON *it = wm->child; it && !rc; it = it->next) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || it->valuestring[0] == '.') {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: weight_map.%s: not a shard file name", index_path,
                            it->string);
            break;
        }
        int seen = 0;
        for (int i = 0; i < st->n_files; i++) {
            const char *base = strrchr(st->files[i].path, '/');
            if (!strcmp(base ? base + 1 : st->files[i].path, it->valuestring)) seen = 1;
        }
        if (seen) continue;
        char path[4096];
        rc = ek_path_join(path, sizeof path, dir, it->valuestring, e);
        if (!rc) rc = add_file(st, path, e);
    }
    for (cJSON *it = wm->child; it && !rc; it = it->next) {
        const ek_st_tensor *t = ek_st_find(st, it->string);
        const char *base = t ? strrchr(st->files[t->file].path, '/') + 1 : NULL;
        if (!t || strcmp(base, it->valuestring))
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: weight_map.%s: tensor not found in shard %s",
                            index_path, it->string, it->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

int ek_st_open_dir(const char *dir, const char *fname, ek_safetensors *st, ek_err *e) {
    memset(st, 0, sizeof *st);
    char path[4096], index[4096];
    int rc = ek_path_join(path, sizeof path, dir, fname, e);
    if (rc) return rc;
    if (snprintf(index, sizeof index, "%s.index.json", path) >= (int)sizeof index)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "path too long: %s", path);
    if (ek_file_exists(path))
        rc = add_file(st, path, e);
    else if (ek_file_exists(index))
        rc = open_sharded(dir, index, st, e);
    else
        rc = ek_err_set(e, EK_ERR_IO, "%s: missing (and no %s.index.json for a sharded model)", path,
                        fname);
    if (rc) ek_st_close(st);
    return rc;
}

void ek_st_close(ek_safetensors *st) {
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < st->n_files; i++) ek_unmap_file(st->files[i].map, st->files[i].size);
    free(st->t);
    free(st->files);
    memset(st, 0, sizeof *st);
}

const ek_st_tensor *ek_st_find(const ek_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}
