/* Fake libcublasLt.so.12 (symbols versioned libcublasLt.so.12). */
#include "common.h"
EXPORT int cublasLtCreate(void **h) { *h = (void *)0; return 0; }
EXPORT int cublasLtDestroy(void *h) { (void)h; return 0; }
EXPORT int cublasLtMatmul(void) { return 0; }
EXPORT unsigned long cublasLtGetVersion(void) { return 120804; }
