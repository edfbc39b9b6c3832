/* Shared by the fake libraries of the vgpu-tui sandbox (see scripts/build_demo_libs.sh).
 * They are real, small ELF shared objects with the real names, SONAMEs, DT_NEEDED entries and
 * exported symbols, so readelf, ldconfig, ld.so and dlopen() treat them like the real ones.
 * They do no GPU work. */
#ifndef VGPU_SANDBOX_COMMON_H
#define VGPU_SANDBOX_COMMON_H
#define EXPORT __attribute__((visibility("default")))
#endif
