/* Fake libcudart.so.12 (symbols versioned libcudart.so.12 like the real runtime). As the
 * real runtime does, it opens libcuda.so.1 at run time (not through DT_NEEDED) and asks the
 * driver for its devices. */
#include <dlfcn.h>
#include <stddef.h>
#include "common.h"

enum { cudaSuccess = 0, cudaErrorInsufficientDriver = 35, cudaErrorNoDevice = 100 };
typedef int (*fn_init)(unsigned);
typedef int (*fn_count)(int *);
typedef int (*fn_ver)(int *);

static void *driver(void) {
    static void *h;
    if (!h) h = dlopen("libcuda.so.1", RTLD_NOW);
    return h;
}

EXPORT int cudaDriverGetVersion(int *v) {
    void *h = driver();
    fn_ver f = h ? (fn_ver)dlsym(h, "cuDriverGetVersion") : NULL;
    *v = 0;
    return f ? f(v) : cudaSuccess;
}

EXPORT int cudaRuntimeGetVersion(int *v) { *v = 12080; return cudaSuccess; }

EXPORT int cudaGetDeviceCount(int *n) {
    void *h = driver();
    fn_init init;
    fn_count count;
    *n = 0;
    if (!h) return cudaErrorInsufficientDriver;
    init = (fn_init)dlsym(h, "cuInit");
    count = (fn_count)dlsym(h, "cuDeviceGetCount");
    if (!init || !count) return cudaErrorInsufficientDriver;
    if (init(0) != 0) return cudaErrorNoDevice;
    return count(n) == 0 ? cudaSuccess : cudaErrorNoDevice;
}

EXPORT const char *cudaGetErrorString(int e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
    }
}

EXPORT int cudaSetDevice(int d) { return d == 0 ? cudaSuccess : 101; }
EXPORT int cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
EXPORT int cudaMalloc(void **p, size_t n) { (void)n; *p = NULL; return 2; }
EXPORT int cudaFree(void *p) { (void)p; return cudaSuccess; }
EXPORT int cudaMemGetInfo(size_t *f, size_t *t) { *f = 0; *t = 0; return cudaSuccess; }
EXPORT int cudaDeviceSynchronize(void) { return cudaSuccess; }
EXPORT int cudaGetDeviceProperties_v2(void *prop, int d) { (void)prop; (void)d; return cudaSuccess; }
