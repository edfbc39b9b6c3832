"""The simulated GPU of every sandbox VM, as data: one table read by the builder (sysfs,
/proc/driver/nvidia), the simulator (the log's `inference compute` line) and the generator
of the C shim (`csrc/stubgpu.h`), so the three always agree.

The device is deliberately a *stub*: its name says so, its PCI device ID is not one NVIDIA
uses, and its UUID spells "VGPU" "ST" "UB" in hex. Driver facts copy a real 580.159.04 VM
(../shared/data/real-driver/h200-vm-facts.txt).
"""
from __future__ import annotations

STUB_GPU = {
    "name": "VGPU-STUB",                 # cuDeviceGetName / nvmlDeviceGetName / description=
    "pci_slot": "0000:00:06.0",          # where the real H200 VM had its GPU
    "vendor_id": 0x10DE,                 # bound to nvidia, so NVIDIA's vendor ID
    "device_id": 0x2FFF,                 # not a real NVIDIA product ID
    "subsystem_vendor_id": 0x10DE,
    "subsystem_device_id": 0x0001,
    "pci_class": 0x030200,               # 3D controller, as a data-centre GPU
    "uuid": "GPU-56475055-5354-5542-0000-000000000001",
    "compute_major": 9,
    "compute_minor": 0,
    "total_memory": 80 * 1024 ** 3,      # 80 GiB
    "free_memory": 80 * 1024 ** 3 - 512 * 1024 ** 2,
    "driver_version": "580.159.04",      # nvmlSystemGetDriverVersion, /proc/driver/nvidia/version
    "cuda_driver_api": 13000,            # cuDriverGetVersion (CUDA 13.0, as driver 580 reports)
    "irq": 41,
    "iommu_group": 6,
    "numa_node": -1,
    "vbios": "96.00.a5.00.1a",
}

# pci.ids lines the sandbox ships (/usr/share/misc/pci.ids) so tools name its devices.
PCI_IDS_TEXT = """\
# Minimal pci.ids of a vgpu-tui sandbox VM (the stub GPU is simulated).
1af4  Red Hat, Inc.
\t1041  Virtio 1.0 network device
\t1042  Virtio 1.0 block device
8086  Intel Corporation
\t1237  440FX - 82441FX PMC [Natoma]
10de  NVIDIA Corporation
\t2fff  VGPU-STUB [simulated vGPU]
"""


def c_header() -> str:
    """`csrc/stubgpu.h`: the same facts as C macros for the fake driver libraries."""
    g = STUB_GPU
    lines = [
        "/* Generated from probes/sandbox/stubgpu.py by scripts/build_demo_libs.sh. */",
        "#define STUB_NAME \"%s\"" % g["name"],
        "#define STUB_UUID \"%s\"" % g["uuid"],
        "#define STUB_PCI_BUS_ID \"%s\"" % g["pci_slot"].upper(),
        "#define STUB_PCI_DOMAIN 0x%x" % int(g["pci_slot"].split(":")[0], 16),
        "#define STUB_PCI_BUS 0x%x" % int(g["pci_slot"].split(":")[1], 16),
        "#define STUB_PCI_DEVICE 0x%x" % int(g["pci_slot"].split(":")[2].split(".")[0], 16),
        "#define STUB_PCI_DEVICE_ID 0x%04x%04xu" % (g["device_id"], g["vendor_id"]),
        "#define STUB_CC_MAJOR %d" % g["compute_major"],
        "#define STUB_CC_MINOR %d" % g["compute_minor"],
        "#define STUB_TOTAL_MEM %dULL" % g["total_memory"],
        "#define STUB_FREE_MEM %dULL" % g["free_memory"],
        "#define STUB_DRIVER_VERSION \"%s\"" % g["driver_version"],
        "#define STUB_CUDA_DRIVER_API %d" % g["cuda_driver_api"],
        "",
    ]
    return "\n".join(lines)
