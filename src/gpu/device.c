/* gpu/device.c — OpenCL devices: listing, choosing one from a spec ("gpu",
 * "any", "opencl:P:D"), opening it (context, in-order queue, program,
 * memory budget) and closing it; statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/gpu.h"
#include "runtime/ctx.h"

double ek_gpu_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void ek_gpu_options_init(ek_gpu_options *o) {
    memset(o, 0, sizeof *o);
    o->device = "gpu";
    o->gemm = EK_GPU_GEMM_AUTO;
}

static void describe(const ek_cl_api *cl, cl_platform_id p, cl_device_id d, int pi, int di,
                     ek_gpu_device *out) {
    memset(out, 0, sizeof *out);
    out->platform = pi;
    out->device = di;
    cl_device_type type = 0;
    cl_ulong mem = 0, alloc = 0;
    cl_uint cu = 0;
    cl->clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    cl->clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    cl->clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    cl->clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    cl->clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof out->name - 1, out->name, NULL);
    cl->clGetDeviceInfo(d, CL_DRIVER_VERSION, sizeof out->driver - 1, out->driver, NULL);
    cl->clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof out->platform_name - 1, out->platform_name, NULL);
    out->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    out->global_mem = mem;
    out->max_alloc = alloc;
    out->compute_units = (int)cu;
}

/* Calls fn for every device until it returns non-zero; returns that. */
typedef int (*visit_fn)(void *user, const ek_cl_api *cl, cl_platform_id p, cl_device_id d,
                        const ek_gpu_device *info);

static int visit_devices(const ek_cl_api *cl, visit_fn fn, void *user) {
    cl_uint np = 0;
    /* No platform (ICD loader without vendors) is "no devices", not an error. */
    if (cl->clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0) return 0;
    cl_platform_id plats[16];
    if (np > 16) np = 16;
    if (cl->clGetPlatformIDs(np, plats, NULL) != CL_SUCCESS) return 0;
    for (cl_uint pi = 0; pi < np; pi++) {
        cl_uint nd = 0;
        if (cl->clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS) continue;
        cl_device_id devs[16];
        if (nd > 16) nd = 16;
        if (cl->clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, nd, devs, NULL) != CL_SUCCESS) continue;
        for (cl_uint di = 0; di < nd; di++) {
            ek_gpu_device info;
            describe(cl, plats[pi], devs[di], (int)pi, (int)di, &info);
            int rc = fn(user, cl, plats[pi], devs[di], &info);
            if (rc) return rc;
        }
    }
    return 0;
}

typedef struct list_acc {
    ek_gpu_device *out;
    size_t cap, n;
} list_acc;

static int list_one(void *user, const ek_cl_api *cl, cl_platform_id p, cl_device_id d,
                    const ek_gpu_device *info) {
    (void)cl, (void)p, (void)d;
    list_acc *a = user;
    if (a->n < a->cap) a->out[a->n] = *info;
    a->n++;
    return 0;
}

ek_status ek_gpu_list(ek_ctx *ctx, ek_gpu_device *out, size_t cap, size_t *n) {
    if (!ctx || !n || (cap && !out)) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    *n = 0;
    ek_cl_api cl;
    ek_err tmp;
    if (ek_cl_api_load(&cl, &tmp) != EK_OK) return EK_OK; /* no runtime: no devices */
    list_acc a = {out, cap, 0};
    visit_devices(&cl, list_one, &a);
    ek_cl_api_unload(&cl);
    *n = a.n;
    return EK_OK;
}

/* Which device a spec selects. */
typedef struct pick {
    int want_p, want_d; /* >= 0: exact */
    int any;            /* any type; else GPU only */
    cl_platform_id p;
    cl_device_id d;
    ek_gpu_device info;
} pick;

static int pick_one(void *user, const ek_cl_api *cl, cl_platform_id p, cl_device_id d,
                    const ek_gpu_device *info) {
    (void)cl;
    pick *k = user;
    if (k->want_p >= 0 ? (info->platform != k->want_p || info->device != k->want_d)
                       : (!k->any && !info->is_gpu))
        return 0;
    k->p = p;
    k->d = d;
    k->info = *info;
    return 1;
}

static int parse_spec(const char *spec, pick *k, ek_err *e) {
    memset(k, 0, sizeof *k);
    k->want_p = k->want_d = -1;
    if (!spec || !*spec || !strcmp(spec, "gpu")) return EK_OK;
    if (!strcmp(spec, "any")) {
        k->any = 1;
        return EK_OK;
    }
    int p, d, used = 0;
    if (sscanf(spec, "opencl:%d:%d%n", &p, &d, &used) == 2 && spec[used] == '\0' && p >= 0 && d >= 0) {
        k->want_p = p;
        k->want_d = d;
        return EK_OK;
    }
    return ek_err_set(e, EK_ERR_INVALID_ARG,
                      "device: \"%s\" is not gpu, any or opencl:PLATFORM:DEVICE", spec);
}

static void cache_dir(const char *opt, char *out, size_t cap) {
    out[0] = '\0';
    if (opt) {
        snprintf(out, cap, "%s", opt);
        return;
    }
    const char *v = getenv("EK_CACHE_DIR");
    if (v && *v) {
        snprintf(out, cap, "%s/kernels", v);
        return;
    }
    v = getenv("XDG_CACHE_HOME");
    if (v && *v) {
        snprintf(out, cap, "%s/embedkit/kernels", v);
        return;
    }
    v = getenv("HOME");
    if (v && *v) snprintf(out, cap, "%s/.cache/embedkit/kernels", v);
}

void ek_gpu_close(ek_gpu *g) {
    if (!g) return;
    if (g->queue) g->cl.clFinish(g->queue);
    ek_gpool_free(g);
    for (int i = 0; i < EK_K_COUNT; i++)
        if (g->k[i]) g->cl.clReleaseKernel(g->k[i]);
    if (g->program) g->cl.clReleaseProgram(g->program);
    if (g->queue) g->cl.clReleaseCommandQueue(g->queue);
    if (g->context) g->cl.clReleaseContext(g->context);
    ek_cl_api_unload(&g->cl);
    free(g->host_i);
    free(g);
}

static int open_device(const ek_gpu_options *o, ek_gpu **out, ek_err *e) {
    *out = NULL;
    pick k;
    int rc = parse_spec(o->device, &k, e);
    if (rc) return rc;
    ek_gpu *g = calloc(1, sizeof *g);
    if (!g) return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
    rc = ek_cl_api_load(&g->cl, e);
    if (rc) {
        free(g);
        return rc;
    }
    if (!visit_devices(&g->cl, pick_one, &k)) {
        ek_gpu_close(g);
        if (k.want_p >= 0)
            return ek_err_set(e, EK_ERR_UNSUPPORTED, "device: no OpenCL device %d on platform %d",
                              k.want_d, k.want_p);
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "device: no OpenCL %sdevice found",
                          k.any ? "" : "GPU ");
    }
    g->platform = k.p;
    g->device = k.d;
    g->dev = k.info;
    g->hook = o->alloc_hook;
    g->hook_user = o->alloc_user;
    cl_int err = CL_SUCCESS;
    g->context = g->cl.clCreateContext(NULL, 1, &g->device, NULL, NULL, &err);
    if (!g->context) {
        ek_gpu_close(g);
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "device %s: clCreateContext failed (%s)", k.info.name,
                          ek_cl_error_name(err));
    }
    g->queue = g->cl.clCreateCommandQueue(g->context, g->device, 0, &err);
    if (!g->queue) {
        ek_gpu_close(g);
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "device %s: clCreateCommandQueue failed (%s)",
                          k.info.name, ek_cl_error_name(err));
    }
    size_t maxwg = 0;
    g->cl.clGetDeviceInfo(g->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof maxwg, &maxwg, NULL);
    g->wg = 128;
    while (g->wg > 1 && g->wg > maxwg) g->wg /= 2;
    g->max_alloc = (size_t)k.info.max_alloc;
    double frac = o->mem_fraction > 0 && o->mem_fraction <= 1 ? o->mem_fraction : 0.75;
    g->pool.budget = o->mem_budget ? o->mem_budget : (size_t)((double)k.info.global_mem * frac);
    g->st.budget = g->pool.budget;
    cache_dir(o->cache_dir, g->cache_dir, sizeof g->cache_dir);
    rc = ek_gpu_build(g, e);
    if (rc) {
        ek_gpu_close(g);
        return rc;
    }
    const char *gm = getenv("EK_GPU_GEMM");
    int want = o->gemm;
    if (gm && !strcmp(gm, "clblast")) want = EK_GPU_GEMM_CLBLAST;
    if (gm && !strcmp(gm, "own")) want = EK_GPU_GEMM_OWN;
    /* AUTO: CLBlast when it is installed — measured faster than our tiled
     * kernel on the device we could measure (PoCL, see docs/GPU.md); our
     * kernel remains for machines without it and for the fused epilogues. */
    g->use_blas = want != EK_GPU_GEMM_OWN && ek_cl_api_load_blas(&g->cl) == 0;
    g->st.clblast = g->use_blas;
    *out = g;
    return EK_OK;
}

ek_status ek_gpu_open(ek_ctx *ctx, const ek_gpu_options *opts, ek_gpu **out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!out) return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "ek_gpu_open: NULL out");
    ek_gpu_options d;
    if (!opts) {
        ek_gpu_options_init(&d);
        opts = &d;
    }
    return (ek_status)open_device(opts, out, &ctx->err);
}

void ek_gpu_get_device(const ek_gpu *g, ek_gpu_device *out) {
    if (g && out) *out = g->dev;
}

void ek_gpu_get_stats(const ek_gpu *g, ek_gpu_stats *out) {
    if (!g || !out) return;
    *out = g->st;
    out->budget = g->pool.budget;
    out->in_use = g->pool.used;
    out->peak = g->pool.peak;
}

void ek_gpu_reset_stats(ek_gpu *g) {
    if (!g) return;
    int blas = g->st.clblast;
    memset(&g->st, 0, sizeof g->st);
    g->st.clblast = blas;
    g->pool.peak = g->pool.used;
}
