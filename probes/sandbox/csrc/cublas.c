/* Fake libcublas.so.12 (symbols versioned libcublas.so.12; needs libcublasLt.so.12). */
#include "common.h"
extern int cublasLtCreate(void **);
EXPORT int cublasCreate_v2(void **h) { return cublasLtCreate(h); }
EXPORT int cublasDestroy_v2(void *h) { (void)h; return 0; }
EXPORT int cublasSgemm_v2(void) { return 0; }
EXPORT int cublasGemmEx(void) { return 0; }
EXPORT int cublasGetVersion_v2(void *h, int *v) { (void)h; *v = 120804; return 0; }
