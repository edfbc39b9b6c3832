/* Fake libggml-base.so (SONAME libggml-base.so.0): a few of the real library's exports. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "common.h"

typedef void (*ggml_log_callback)(int level, const char *text, void *user_data);
static ggml_log_callback log_cb;
static void *log_ud;

EXPORT void ggml_log_set(ggml_log_callback cb, void *user_data) { log_cb = cb; log_ud = user_data; }

EXPORT void ggml_log_internal(int level, const char *format, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, format);
    vsnprintf(buf, sizeof buf, format, ap);
    va_end(ap);
    if (log_cb) log_cb(level, buf, log_ud); else fputs(buf, stderr);
}

EXPORT void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "%s:%d: GGML_ASSERT failed: %s\n", file, line, fmt);
    abort();
}

EXPORT size_t ggml_backend_dev_count(void) { return 0; }
EXPORT size_t ggml_backend_reg_count(void) { return 0; }
EXPORT void *ggml_init(void *params) { (void)params; return NULL; }
EXPORT void ggml_free(void *ctx) { (void)ctx; }
