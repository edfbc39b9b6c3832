/* The name -> function table of the fake libcuda (generated in libcuda_stubs.c), used by
 * cuGetProcAddress. */
struct proc { const char *name; void *fn; };
extern const struct proc vgpu_procs[];
