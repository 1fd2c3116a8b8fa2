/* gpu/cl_api.c — dlopen of libOpenCL / libclblast and the error names (see
 * cl_api.h for why run-time loading). */
#include "gpu/cl_api.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int ek_cl_api_load(ek_cl_api *api, ek_err *e) {
    memset(api, 0, sizeof *api);
    const char *name = getenv("EK_OPENCL_LIB");
    if (!name || !*name) name = "libOpenCL.so.1";
    api->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!api->lib)
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "no OpenCL runtime (%s could not be loaded)", name);
    /* dlsym returns void *; the cast through a union-free memcpy keeps
     * -Wpedantic-style object/function pointer warnings away. */
#define EK_CL_SYM(f)                                                          \
    {                                                                         \
        void *p = dlsym(api->lib, #f);                                        \
        if (!p) {                                                             \
            ek_cl_api_unload(api);                                            \
            return ek_err_set(e, EK_ERR_UNSUPPORTED,                          \
                              "OpenCL runtime %s lacks %s", name, #f);        \
        }                                                                     \
        memcpy(&api->f, &p, sizeof p);                                        \
    }
    EK_CL_FUNCS(EK_CL_SYM)
#undef EK_CL_SYM
    return EK_OK;
}

int ek_cl_api_load_blas(ek_cl_api *api) {
    if (api->blas_lib) return 0;
    const char *name = getenv("EK_CLBLAST_LIB");
    if (!name || !*name) name = "libclblast.so.1";
    api->blas_lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!api->blas_lib) return -1;
    void *p = dlsym(api->blas_lib, "CLBlastSgemm");
    if (!p) {
        dlclose(api->blas_lib);
        api->blas_lib = NULL;
        return -1;
    }
    memcpy(&api->blas_sgemm, &p, sizeof p);
    return 0;
}

void ek_cl_api_unload(ek_cl_api *api) {
    if (api->blas_lib) dlclose(api->blas_lib);
    if (api->lib) dlclose(api->lib);
    memset(api, 0, sizeof *api);
}

const char *ek_cl_error_name(cl_int err) {
    switch (err) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case -1001: /* CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no platform */ return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "CL_ERROR";
    }
}

int ek_cl_is_pressure(cl_int err) {
    return err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
           err == CL_OUT_OF_HOST_MEMORY;
}
