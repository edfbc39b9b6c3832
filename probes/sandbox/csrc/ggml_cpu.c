/* Fake libggml-cpu-<variant>.so: exports ggml_backend_init and ggml_backend_score like the
 * real CPU variants; the score follows ggml's rule (0 when a feature the variant was built
 * for is missing, else 1 + the sum of the feature bits). Built once per variant with
 * -DVARIANT=... (see scripts/build_demo_libs.sh). */
#include "common.h"

extern void ggml_log_internal(int level, const char *format, ...);

struct fake_reg { int api_version; const char *name; };
static struct fake_reg reg = { 2, "CPU" };

EXPORT void *ggml_backend_init(void) {
    ggml_log_internal(1, "fake CPU backend (%s)\n", VARIANT);
    return &reg;
}

#define NEED(feature, bit) do { if (!__builtin_cpu_supports(feature)) return 0; score += (bit); } while (0)

EXPORT int ggml_backend_score(void) {
    int score = 1;
    __builtin_cpu_init();
#ifdef USE_SSE42
    NEED("sse4.2", 4);
#endif
#ifdef USE_AVX
    NEED("avx", 16);
#endif
#ifdef USE_F16C
    NEED("f16c", 2);
#endif
#ifdef USE_FMA
    NEED("fma", 1);
#endif
#ifdef USE_BMI2
    NEED("bmi2", 8);
#endif
#ifdef USE_AVX2
    NEED("avx2", 32);
#endif
#ifdef USE_AVX_VNNI
    NEED("avxvnni", 64);
#endif
#ifdef USE_AVX512
    NEED("avx512f", 128);
#endif
#ifdef USE_AVX512_VBMI
    NEED("avx512vbmi", 256);
#endif
#ifdef USE_AVX512_VNNI
    NEED("avx512vnni", 1024);
#endif
    return score;
}
