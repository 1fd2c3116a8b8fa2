/* gpu/program.c — the kernels: the embedded OpenCL C (generated from
 * src/gpu/kernels/NAME.cl at build time) compiled for the device once, and the
 * device binary cached on disk so later processes skip the compiler.
 *
 * Cache key: device name, platform, driver version, build options and the
 * sources' SHA-256 (computed by CMake), hashed into the file name; a
 * changed driver or kernel therefore misses instead of loading a stale
 * binary.  Files are written to a temporary name and renamed, so
 * concurrent processes never read half a file.  Any cache trouble just
 * means a compile. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu/gpu.h"

extern const char ek_gpu_kernel_source[];
extern const size_t ek_gpu_kernel_source_len;
extern const char ek_gpu_kernel_digest[];

static const char *const kernel_names[EK_K_COUNT] = {
    "ek_embed_ln", "ek_layernorm", "ek_bias_act", "ek_attention", "ek_head_mean", "ek_gemm_nt",
    "ek_pool", "ek_l2_normalize", "ek_inv_norm", "ek_cos_scale", "ek_cos_1n", "ek_topk_chunk"};

/* No -cl-fast-relaxed-math: results are compared with the CPU's within
 * 1e-4, and erf / exp / sqrt must keep their full-precision forms. */
static const char build_opts[] = "-cl-std=CL1.2";

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ^ 0xff; /* field separator */
}

static void cache_path(const ek_gpu *g, char *out, size_t cap) {
    uint64_t h = 14695981039346656037ull;
    h = fnv1a(h, g->dev.name);
    h = fnv1a(h, g->dev.platform_name);
    h = fnv1a(h, g->dev.driver);
    h = fnv1a(h, build_opts);
    h = fnv1a(h, ek_gpu_kernel_digest);
    snprintf(out, cap, "%s/%016llx.bin", g->cache_dir, (unsigned long long)h);
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static cl_program from_cache(ek_gpu *g, const char *path) {
    size_t len = 0;
    unsigned char *bin = read_all(path, &len);
    if (!bin) return NULL;
    const unsigned char *bins[1] = {bin};
    cl_int status = CL_SUCCESS, err = CL_SUCCESS;
    cl_program p = g->cl.clCreateProgramWithBinary(g->context, 1, &g->device, &len, bins, &status, &err);
    free(bin);
    if (!p) return NULL;
    if (status != CL_SUCCESS || g->cl.clBuildProgram(p, 1, &g->device, build_opts, NULL, NULL) != CL_SUCCESS) {
        g->cl.clReleaseProgram(p);
        return NULL;
    }
    return p;
}

static void to_cache(ek_gpu *g, cl_program p, const char *path) {
    size_t len = 0;
    if (g->cl.clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS || !len) return;
    unsigned char *bin = malloc(len);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (g->cl.clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS &&
        make_dirs(g->cache_dir) == 0) {
        char tmp[1200];
        snprintf(tmp, sizeof tmp, "%.1100s.%ld.tmp", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(bin, 1, len, f) == len;
            ok = fclose(f) == 0 && ok;
            if (!ok || rename(tmp, path)) remove(tmp);
        }
    }
    free(bin);
}

static int from_source(ek_gpu *g, cl_program *out, ek_err *e) {
    const char *src = ek_gpu_kernel_source;
    size_t len = ek_gpu_kernel_source_len;
    cl_int err = CL_SUCCESS;
    cl_program p = g->cl.clCreateProgramWithSource(g->context, 1, &src, &len, &err);
    if (!p) return ek_err_set(e, EK_ERR_INTERNAL, "gpu: clCreateProgramWithSource: %s", ek_cl_error_name(err));
    err = g->cl.clBuildProgram(p, 1, &g->device, build_opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[768] = "";
        g->cl.clGetProgramBuildInfo(p, g->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        for (char *c = log; *c; c++)
            if (*c == '\n') *c = ' ';
        g->cl.clReleaseProgram(p);
        return ek_err_set(e, EK_ERR_INTERNAL, "gpu: building the kernels for %s failed (%s): %s", g->dev.name,
                          ek_cl_error_name(err), log);
    }
    *out = p;
    return EK_OK;
}

int ek_gpu_build(ek_gpu *g, ek_err *e) {
    char path[1100] = "";
    if (g->cache_dir[0]) cache_path(g, path, sizeof path);
    g->program = path[0] ? from_cache(g, path) : NULL;
    if (g->program) {
        g->st.kernel_cache_hits++;
    } else {
        int rc = from_source(g, &g->program, e);
        if (rc) return rc;
        if (path[0]) to_cache(g, g->program, path);
    }
    for (int i = 0; i < EK_K_COUNT; i++) {
        cl_int err = CL_SUCCESS;
        g->k[i] = g->cl.clCreateKernel(g->program, kernel_names[i], &err);
        if (!g->k[i])
            return ek_err_set(e, EK_ERR_INTERNAL, "gpu: kernel %s: %s", kernel_names[i], ek_cl_error_name(err));
    }
    return EK_OK;
}
