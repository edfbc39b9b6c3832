/* Fake cuda_v12/libggml-cuda.so. Like the real one it exports ggml_backend_init (and no
 * ggml_backend_score), needs libggml-base.so.0, libcudart.so.12, libcublas.so.12,
 * libcublasLt.so.12 and libcuda.so.1, and imports the eleven driver functions the vendored
 * ggml-cuda of Ollama 0.24 calls directly (reference §3.4). So dlopen(RTLD_NOW) of this file
 * fails for real when a shim libcuda.so.1 lacks one of them. */
#include <stddef.h>
#include "common.h"

typedef int CUresult;
typedef int CUdevice;
extern CUresult cuDeviceGet(CUdevice *, int);
extern CUresult cuDeviceGetAttribute(int *, int, CUdevice);
extern CUresult cuGetErrorString(CUresult, const char **);
extern CUresult cuMemAddressFree(unsigned long long, size_t);
extern CUresult cuMemAddressReserve(unsigned long long *, size_t, size_t, unsigned long long, unsigned long long);
extern CUresult cuMemCreate(unsigned long long *, size_t, const void *, unsigned long long);
extern CUresult cuMemGetAllocationGranularity(size_t *, const void *, int);
extern CUresult cuMemMap(unsigned long long, size_t, size_t, unsigned long long, unsigned long long);
extern CUresult cuMemRelease(unsigned long long);
extern CUresult cuMemSetAccess(unsigned long long, size_t, const void *, size_t);
extern CUresult cuMemUnmap(unsigned long long, size_t);
extern int cudaGetDeviceCount(int *);
extern int cudaDriverGetVersion(int *);
extern int cublasCreate_v2(void **);
extern int cublasLtCreate(void **);
extern void ggml_log_internal(int level, const char *format, ...);

struct fake_reg { int api_version; const char *name; };
static struct fake_reg reg = { 2, "CUDA" };

/* Never called at load time: it exists so that the imports above are real undefined
 * symbols of this library, bound at dlopen(RTLD_NOW). */
EXPORT int ggml_backend_cuda_vmm_touch(void) {
    unsigned long long p = 0, h = 0;
    size_t g = 0;
    const char *s = NULL;
    CUdevice d = 0;
    int v = 0;
    void *b = NULL;
    cuDeviceGet(&d, 0);
    cuDeviceGetAttribute(&v, 102, d);
    cuGetErrorString(0, &s);
    cuMemGetAllocationGranularity(&g, NULL, 0);
    cuMemAddressReserve(&p, g, 0, 0, 0);
    cuMemCreate(&h, g, NULL, 0);
    cuMemMap(p, g, 0, h, 0);
    cuMemSetAccess(p, g, NULL, 0);
    cuMemUnmap(p, g);
    cuMemRelease(h);
    cuMemAddressFree(p, g);
    cublasCreate_v2(&b);
    cublasLtCreate(&b);
    cudaDriverGetVersion(&v);
    return v;
}

EXPORT int ggml_backend_cuda_get_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != 0) return 0;
    return n;
}

EXPORT void *ggml_backend_cuda_reg(void) { return &reg; }

EXPORT void *ggml_backend_init(void) {
    int n = ggml_backend_cuda_get_device_count();
    ggml_log_internal(1, "fake CUDA backend: %d device(s)\n", n);
    return &reg;
}
