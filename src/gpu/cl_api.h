/* gpu/cl_api.h — the OpenCL (and optional CLBlast) entry points embedkit
 * uses, loaded at run time with dlopen.
 *
 * Why dlopen instead of linking libOpenCL: a machine without any OpenCL
 * runtime is a normal place to run embedkit, so the binary must start there
 * and simply report "no OpenCL" when asked for a GPU.  The table is owned by
 * one ek_gpu handle (no process-wide state); dlopen itself reference-counts
 * the library, so several handles cost nothing extra.
 *
 * CLBlast is loaded the same way (libclblast.so.1), after OpenCL: it links
 * libOpenCL itself, so linking it at build time would defeat the point. */
#ifndef EK_GPU_CL_API_H
#define EK_GPU_CL_API_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include "base/err.h"

/* X-macro: every OpenCL function we call.  The pointer types come from the
 * headers' own prototypes, so a mistyped call is a compile error. */
#define EK_CL_FUNCS(X)                                                         \
    X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs)                 \
    X(clGetDeviceInfo) X(clCreateContext) X(clReleaseContext)                  \
    X(clCreateCommandQueue) X(clReleaseCommandQueue)                           \
    X(clCreateProgramWithSource) X(clCreateProgramWithBinary)                  \
    X(clBuildProgram) X(clGetProgramBuildInfo) X(clGetProgramInfo)             \
    X(clReleaseProgram) X(clCreateKernel) X(clReleaseKernel)                   \
    X(clSetKernelArg) X(clEnqueueNDRangeKernel) X(clCreateBuffer)              \
    X(clReleaseMemObject) X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer)       \
    X(clEnqueueFillBuffer) X(clEnqueueCopyBuffer) X(clFinish)                  \
    X(clWaitForEvents) X(clReleaseEvent) X(clGetEventProfilingInfo)

typedef struct ek_cl_api {
    void *lib;      /* dlopen handle of libOpenCL */
    void *blas_lib; /* dlopen handle of libclblast, or NULL */
#define EK_CL_PTR(f) __typeof__(&f) f;
    EK_CL_FUNCS(EK_CL_PTR)
#undef EK_CL_PTR
    /* CLBlastSgemm, or NULL when CLBlast is absent. */
    int (*blas_sgemm)(int layout, int ta, int tb, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                      size_t b_off, size_t ldb, float beta, cl_mem c,
                      size_t c_off, size_t ldc, cl_command_queue *q,
                      cl_event *ev);
} ek_cl_api;

/* Loads libOpenCL.so.1 (or $EK_OPENCL_LIB).  EK_ERR_UNSUPPORTED with
 * "no OpenCL runtime" when it is absent: callers treat that as "no GPU". */
int ek_cl_api_load(ek_cl_api *api, ek_err *e);
/* Also loads CLBlast; returns 0 when it is there. */
int ek_cl_api_load_blas(ek_cl_api *api);
void ek_cl_api_unload(ek_cl_api *api);

/* "CL_OUT_OF_RESOURCES" etc. */
const char *ek_cl_error_name(cl_int err);
/* The three errors that mean "this much does not fit now": the caller
 * shrinks the batch, retries, then falls back to the CPU. */
int ek_cl_is_pressure(cl_int err);

#endif
