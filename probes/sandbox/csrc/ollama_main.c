/* The sandbox's stand-in for /usr/local/bin/ollama: a small ELF executable that carries a
 * real-format Go build-info blob (buildinfo.h, from probes.gobuildinfo.make_blob) recording
 * the Ollama version, so version detection reads it like the real binary. Run, it only says
 * what it is: the sandbox's Ollama is `python -m probes.sandbox.simulator serve --root DIR`. */
#include <stdio.h>
#include "buildinfo.h"

__attribute__((used, aligned(16), section(".go.buildinfo")))
static const unsigned char go_buildinfo[] = GO_BUILDINFO_BYTES;

int main(int argc, char **argv) {
    (void)argc;
    printf("%s: vgpu-tui simulator stand-in for Ollama %s (not a real Ollama).\n"
           "The sandbox's simulated Ollama runs as: python -m probes.sandbox.simulator serve --root DIR\n",
           argv[0], GO_VERSION_STRING);
    return (int)(go_buildinfo[0] != 0xff);
}
