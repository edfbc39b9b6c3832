/* Fake shim libcuda.so.1 of the vgpu-tui sandbox: ONE SIMULATED GPU ("VGPU-STUB", see
 * stubgpu.h). It exports the driver API names of the real 580 driver (libcuda_stubs.c is
 * generated from libcuda.exports); the functions below behave like a tiny driver with one
 * device, every other one returns CUDA_ERROR_NOT_SUPPORTED. Variants leave names out with
 * -DOMIT_<name> (the sandbox's broken shims). CUDA_VISIBLE_DEVICES is honoured as the real
 * driver does: unset, "0" or the device's UUID shows it; anything else hides it.
 * An optional behaviour file (VGPU_STUB_CONF, else ../etc/stub.conf next to this library's
 * real folder, links followed, so it works under --root) makes the stub fail at RUN time like a broken shim:
 * cuinit=<code>|hang|crash, driver_version=<api>, compute=<major>.<minor>, memory=<bytes>.
 * No file: the healthy stub. Read once, at cuInit (or the first cuDriverGetVersion).
 * Built with -DNO_LIBC for the 32-bit variant (no 32-bit libc on the build machine). */
#ifndef NO_LIBC
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#endif
#include "common.h"
#include "stubgpu.h"
#include "procs.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long u64;
enum {
    CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_NO_DEVICE = 100, CUDA_ERROR_INVALID_DEVICE = 101, CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_SUPPORTED = 801
};

static int initialised;

/* The behaviour of this stub: defaults = the healthy VGPU-STUB of stubgpu.h. */
enum { INIT_CODE = 0, INIT_HANG = 1, INIT_CRASH = 2 };
static struct {
    int loaded, init_mode, init_code, driver_api, cc_major, cc_minor;
    unsigned long long total_mem, free_mem;
} conf = {0, INIT_CODE, 0, STUB_CUDA_DRIVER_API, STUB_CC_MAJOR, STUB_CC_MINOR, STUB_TOTAL_MEM, STUB_FREE_MEM};

#ifndef NO_LIBC
static void conf_line(char *line) {
    char *eq = strchr(line, '='), *val, *end;
    if (line[0] == '#' || !eq) return;
    *eq = 0;
    val = eq + 1;
    end = val + strlen(val);
    while (end > val && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) *--end = 0;
    if (!strcmp(line, "cuinit")) {
        if (!strcmp(val, "hang")) conf.init_mode = INIT_HANG;
        else if (!strcmp(val, "crash")) conf.init_mode = INIT_CRASH;
        else conf.init_code = atoi(val);
    } else if (!strcmp(line, "driver_version")) {
        conf.driver_api = atoi(val);
    } else if (!strcmp(line, "compute")) {
        conf.cc_major = atoi(val);
        conf.cc_minor = strchr(val, '.') ? atoi(strchr(val, '.') + 1) : 0;
    } else if (!strcmp(line, "memory")) {
        conf.total_mem = strtoull(val, 0, 10);
        if (conf.free_mem > conf.total_mem) conf.free_mem = conf.total_mem;
    }
}

static void load_conf(void) {
    char path[4096], line[256];
    const char *env = getenv("VGPU_STUB_CONF");
    Dl_info info;
    FILE *fh;
    if (conf.loaded) return;
    conf.loaded = 1;
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else if (dladdr((void *)load_conf, &info) && info.dli_fname) {
        /* the library's real file (links followed: a link farm or a symlink in lib/ollama) */
        char *real = realpath(info.dli_fname, 0);
        const char *file = real ? real : info.dli_fname;
        const char *slash = strrchr(file, '/');
        snprintf(path, sizeof path, "%.*s/../etc/stub.conf", slash ? (int)(slash - file) : 1, slash ? file : ".");
        free(real);
    } else {
        return;
    }
    fh = fopen(path, "r");
    if (!fh) return;
    while (fgets(line, sizeof line, fh)) conf_line(line);
    fclose(fh);
}
#else
static void load_conf(void) { conf.loaded = 1; }
#endif

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

static int visible(void) {
#ifdef NO_LIBC
    return 1;
#else
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    int n = 0, i;
    if (!v) return 1;
    while (v[n] && v[n] != ',') n++;           /* only the first entry matters: one device */
    if (n == 1 && v[0] == '0') return 1;
    if (n < 5) return 0;                        /* "", "-1", "1", ...: hidden */
    for (i = 0; i < n; i++)                     /* the UUID or a prefix of it ("GPU-5647...") */
        if (!STUB_UUID[i] || STUB_UUID[i] != v[i]) return 0;
    return 1;
#endif
}

static void copy(char *dst, int len, const char *src) {
    int i = 0;
    if (len <= 0) return;
    for (; i < len - 1 && src[i]; i++) dst[i] = src[i];
    dst[i] = 0;
}

EXPORT CUresult cuInit(unsigned flags) {
    (void)flags;
    load_conf();
#ifndef NO_LIBC
    if (conf.init_mode == INIT_HANG) for (;;) pause();
    if (conf.init_mode == INIT_CRASH) raise(SIGSEGV);
#endif
    if (conf.init_code) return conf.init_code;
    if (!visible()) return CUDA_ERROR_NO_DEVICE;
    initialised = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDriverGetVersion(int *v) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    load_conf();
    *v = conf.driver_api;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *n) {
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    *n = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    if (!initialised) return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    copy(name, len, STUB_NAME);
    return CUDA_SUCCESS;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

EXPORT CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice d) {
    const char *p = STUB_UUID + 4;
    int i = 0;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    while (*p && i < 16) {
        if (*p == '-') { p++; continue; }
        uuid[i++] = (unsigned char)(hexval(p[0]) << 4 | hexval(p[1]));
        p += 2;
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetUuid_v2(unsigned char *uuid, CUdevice d) { return cuDeviceGetUuid(uuid, d); }

EXPORT CUresult cuDeviceTotalMem_v2(unsigned long *bytes, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = (unsigned long)conf.total_mem;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = 0xffffffffu;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
    case 75: *v = conf.cc_major; break;   /* COMPUTE_CAPABILITY_MAJOR */
    case 76: *v = conf.cc_minor; break;   /* COMPUTE_CAPABILITY_MINOR */
    case 16: *v = 132; break;             /* MULTIPROCESSOR_COUNT */
    case 33: *v = STUB_PCI_BUS; break;    /* PCI_BUS_ID */
    case 34: *v = STUB_PCI_DEVICE; break; /* PCI_DEVICE_ID */
    case 50: *v = STUB_PCI_DOMAIN; break; /* PCI_DOMAIN_ID */
    case 102: *v = 1; break;              /* VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED */
    default: *v = 0;
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *major = conf.cc_major;
    *minor = conf.cc_minor;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    copy(id, len, STUB_PCI_BUS_ID);
    return CUDA_SUCCESS;
}

static int ctx_token;
static void *current;

EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice d) {
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *ctx = &ctx_token;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxCreate_v2(void **ctx, unsigned flags, CUdevice d) {
    (void)flags;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *ctx = current = &ctx_token;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxDestroy_v2(void *ctx) { (void)ctx; current = 0; return CUDA_SUCCESS; }
EXPORT CUresult cuCtxSetCurrent(void *ctx) { current = ctx; return CUDA_SUCCESS; }
EXPORT CUresult cuCtxGetCurrent(void **ctx) { *ctx = current; return CUDA_SUCCESS; }

EXPORT CUresult cuMemGetInfo_v2(unsigned long *free_b, unsigned long *total_b) {
    *free_b = (unsigned long)conf.free_mem;
    *total_b = (unsigned long)conf.total_mem;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorString(CUresult e, const char **s) {
    switch (e) {
    case CUDA_SUCCESS: *s = "no error"; break;
    case CUDA_ERROR_NO_DEVICE: *s = "no CUDA-capable device is detected"; break;
    case CUDA_ERROR_NOT_SUPPORTED: *s = "operation not supported"; break;
    default: *s = "unknown error";
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorName(CUresult e, const char **s) {
    switch (e) {
    case CUDA_SUCCESS: *s = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_NO_DEVICE: *s = "CUDA_ERROR_NO_DEVICE"; break;
    case CUDA_ERROR_NOT_SUPPORTED: *s = "CUDA_ERROR_NOT_SUPPORTED"; break;
    default: *s = "CUDA_ERROR_UNKNOWN";
    }
    return CUDA_SUCCESS;
}

/* No private export tables: a stub that does not forward to a real driver has none. */
EXPORT CUresult cuGetExportTable(const void **table, const void *uuid) {
    (void)uuid;
    *table = 0;
    return CUDA_ERROR_NOT_SUPPORTED;
}

static void *lookup(const char *symbol) {
    const struct proc *p;
    for (p = vgpu_procs; p->name; p++)
        if (streq(p->name, symbol)) return p->fn;
    return 0;
}

#ifndef OMIT_cuGetProcAddress_v2
EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, u64 flags, int *status) {
    (void)version; (void)flags;
    *pfn = symbol && *symbol ? lookup(symbol) : 0;
    if (status) *status = *pfn ? 0 : 1;   /* CU_GET_PROC_ADDRESS_SUCCESS / SYMBOL_NOT_FOUND */
    return *pfn || !symbol || !*symbol ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}
#endif

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int version, u64 flags) {
    (void)version; (void)flags;
    *pfn = lookup(symbol);
    return *pfn ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}
