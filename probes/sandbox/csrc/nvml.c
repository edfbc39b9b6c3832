/* Fake shim libnvidia-ml.so.1 of the vgpu-tui sandbox: ONE SIMULATED GPU ("VGPU-STUB").
 * Exports the real 580 driver's NVML names (nvml_stubs.c, generated from nvml.exports);
 * the functions below answer for the stub device, the others return NOT_SUPPORTED. */
#include "common.h"
#include "stubgpu.h"

typedef int nvmlReturn_t;
enum { NVML_SUCCESS = 0, NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_INVALID_ARGUMENT = 2,
       NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_NOT_FOUND = 6, NVML_ERROR_INSUFFICIENT_SIZE = 7 };
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

static int device_token;
static int initialised;

static int put(char *dst, unsigned len, const char *src) {
    unsigned i = 0;
    for (; src[i]; i++) if (i + 1 >= len) return NVML_ERROR_INSUFFICIENT_SIZE;
    for (i = 0; src[i]; i++) dst[i] = src[i];
    dst[i] = 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { initialised = 1; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned flags) { (void)flags; return nvmlInit_v2(); }
EXPORT nvmlReturn_t nvmlShutdown(void) { initialised = 0; return NVML_SUCCESS; }

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned len) { return put(v, len, STUB_DRIVER_VERSION); }
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) { *v = STUB_CUDA_DRIVER_API; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = STUB_CUDA_DRIVER_API; return NVML_SUCCESS; }

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *n) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *n = 1;
    return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned *n) { return nvmlDeviceGetCount_v2(n); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, void **dev) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (i != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *dev = &device_token;
    return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned i, void **dev) { return nvmlDeviceGetHandleByIndex_v2(i, dev); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, void **dev) {
    const char *u = STUB_UUID;
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    while (*u && *uuid == *u) { u++; uuid++; }
    if (*u || *uuid) return NVML_ERROR_NOT_FOUND;
    *dev = &device_token;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(void *dev, char *name, unsigned len) {
    if (dev != &device_token) return NVML_ERROR_INVALID_ARGUMENT;
    return put(name, len, STUB_NAME);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(void *dev, char *uuid, unsigned len) {
    if (dev != &device_token) return NVML_ERROR_INVALID_ARGUMENT;
    return put(uuid, len, STUB_UUID);
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(void *dev, nvmlMemory_t *m) {
    if (dev != &device_token) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = STUB_TOTAL_MEM;
    m->free = STUB_FREE_MEM;
    m->used = STUB_TOTAL_MEM - STUB_FREE_MEM;
    return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    default: return "Unknown Error";
    }
}
