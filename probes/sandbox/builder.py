"""Build sandbox VMs: a root folder that looks, to every probe, like a Linux VM with a stub
GPU, a shim libcuda.so.1 and an Ollama 0.24.0 install — healthy, or with named faults.

`build_vm(dir, faults=(...))` starts from the HEALTHY VM (see the brief's sandbox contract)
and applies each named fault of the FAULTS table in order. The primitives below
(`add_library`, `symlink`, `write_unit`, `write_dropin`, `set_running_env`,
`rebuild_ld_cache`, ...) are public: tests compose their own situations with them.

Nothing here needs root or a compiler: the ELF files are copied from prebuilt/ (built from
csrc/ by scripts/build_demo_libs.sh), `/etc/ld.so.cache` is written by
`probes.ldcache.write_ld_cache`, and device nodes are regular files described in
`.vgpu-sandbox/devnodes.json`. Every sandbox is marked as simulated in
`.vgpu-sandbox/sandbox.json`.

All paths of a SandboxVM are *inspected* paths ("/usr/local/lib/ollama"); `vm.real(p)`
gives the file on this machine.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from probes.sandbox import libbuild
from probes.sandbox.stubgpu import PCI_IDS_TEXT, STUB_GPU

PREBUILT = libbuild.PREBUILT
STATE_DIR = "/.vgpu-sandbox"
SIMULATOR_LABEL = "ollama 0.24.0"
HOSTNAME = "vgpu-demo"
SERVICE_USER = "ollama"
SERVICE_HOME = "/usr/share/ollama"
UNIT_PATH = "/etc/systemd/system/ollama.service"
DROPIN_DIR = "/etc/systemd/system/ollama.service.d"
INSTALL_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHIM_DIR = "/opt/vgpu/lib"
SYSTEM_LIB_DIR = "/lib/x86_64-linux-gnu"

# ld.so.conf.d of an Ubuntu 24.04 VM, plus the shim's folder (vgpu.conf).
LD_CONF_FILES = (
    ("libc.conf", "# libc default configuration\n/usr/local/lib\n"),
    ("x86_64-linux-gnu.conf", "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n"
                              "/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n"),
    ("vgpu.conf", "# vGPU shim (CUDA driver API forwarding)\n" + SHIM_DIR + "\n"),
)
# Folders ldconfig scans besides the conf ones (its built-in trusted folders on x86-64).
LDCONFIG_TRUSTED = ("/lib64", "/usr/lib64")

# The libraries of the real system the fake ones need (copied from this machine when it has
# them, so the loader cache and the loader model see a complete system).
SYSTEM_LIBS = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1")

# Device nodes of a GPU VM (../shared/data/real-driver/h200-vm-facts.txt).
DEVICE_NODES = {
    "/dev/nvidia0": {"type": "c", "major": 195, "minor": 0, "mode": "0666", "owner": "root", "group": "root"},
    "/dev/nvidiactl": {"type": "c", "major": 195, "minor": 255, "mode": "0666", "owner": "root", "group": "root"},
    "/dev/nvidia-uvm": {"type": "c", "major": 238, "minor": 0, "mode": "0666", "owner": "root", "group": "root"},
    "/dev/nvidia-uvm-tools": {"type": "c", "major": 238, "minor": 1, "mode": "0666", "owner": "root", "group": "root"},
    "/dev/nvidia-caps/nvidia-cap1": {"type": "c", "major": 241, "minor": 1, "mode": "0400", "owner": "root", "group": "root"},
    "/dev/nvidia-caps/nvidia-cap2": {"type": "c", "major": 241, "minor": 2, "mode": "0444", "owner": "root", "group": "root"},
}

# PCI devices besides the GPU: a host bridge, virtio block and network, like a real VM.
OTHER_PCI = (
    {"slot": "0000:00:00.0", "vendor": 0x8086, "device": 0x1237, "class": 0x060000, "sv": 0x1AF4, "sd": 0x1100, "driver": None},
    {"slot": "0000:00:01.0", "vendor": 0x1AF4, "device": 0x1042, "class": 0x018000, "sv": 0x1AF4, "sd": 0x1100, "driver": "virtio-pci"},
    {"slot": "0000:00:03.0", "vendor": 0x1AF4, "device": 0x1041, "class": 0x020000, "sv": 0x1AF4, "sd": 0x1100, "driver": "virtio-pci"},
)

CPU_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx "
             "fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology "
             "cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt "
             "tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch "
             "cpuid_fault invpcid_single ssbd ibrs ibpb stibp fsgsbase tsc_adjust bmi1 avx2 smep bmi2 "
             "erms invpcid rdseed adx smap clflushopt xsaveopt xsavec xgetbv1 xsaves arat umip md_clear "
             "arch_capabilities")
MEM_TOTAL_KB = 32 * 1024 * 1024 - 412 * 1024
MEM_AVAILABLE_KB = 30 * 1024 * 1024 + 240 * 1024


@dataclasses.dataclass(frozen=True)
class SandboxVM:
    """Key paths of a sandbox (inspected paths) and what it was built with."""

    root: str                      # the folder on this machine
    kind: str = "test"
    version: str = "0.24.0"
    faults: Tuple[str, ...] = ()
    binary: str = "/usr/local/bin/ollama"
    lib_dir: str = "/usr/local/lib/ollama"
    backend_dir: str = "/usr/local/lib/ollama/cuda_v12"
    shim_dir: str = SHIM_DIR
    unit: str = UNIT_PATH
    dropin_dir: str = DROPIN_DIR
    log: str = "/var/log/ollama/ollama.log"
    ld_cache: str = "/etc/ld.so.cache"
    ld_conf: str = "/etc/ld.so.conf"
    state_dir: str = STATE_DIR
    run_dir: str = STATE_DIR + "/run"
    gpu_slot: str = STUB_GPU["pci_slot"]

    def real(self, inspected: str) -> str:
        """The file on this machine for an inspected path (no symlink followed)."""
        return os.path.join(self.root, inspected.lstrip("/"))

    @property
    def host(self):
        from probes.host import Host
        return Host(self.root)


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    description: str
    category: Optional[str]              # the contract category a diagnosis should give
    apply: Callable[[SandboxVM], None]
    works: bool = False                  # the GPU is still used (a note or warning at most)
    also: Tuple[str, ...] = ()           # other categories that are a correct diagnosis
    relaunch_fixes: bool = False         # the running server is stale: a restart alone fixes it
    log_library: Optional[str] = None    # the simulated log's library= when not the plain "cpu"/"CUDA"


# --- small file primitives -----------------------------------------------------------------

def write_file(vm: SandboxVM, path: str, text, mode: int = 0o644, mtime: Optional[float] = None) -> str:
    real = vm.real(path)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    if os.path.islink(real):
        os.unlink(real)
    data = text.encode() if isinstance(text, str) else text
    with open(real, "wb") as fh:
        fh.write(data)
    os.chmod(real, mode)
    if mtime is not None:
        os.utime(real, (mtime, mtime))
    return real


def remove(vm: SandboxVM, path: str) -> None:
    real = vm.real(path)
    if os.path.islink(real) or os.path.isfile(real):
        os.unlink(real)
    elif os.path.isdir(real):
        shutil.rmtree(real)


def symlink(vm: SandboxVM, link: str, target: str) -> None:
    """Create (or replace) the symlink `link` -> `target` (target written as given)."""
    real = vm.real(link)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    if os.path.islink(real) or os.path.isfile(real):
        os.unlink(real)
    os.symlink(target, real)


def add_library(vm: SandboxVM, prebuilt_name: str, dest: str, mode: int = 0o755) -> str:
    """Copy a prebuilt ELF file to the inspected path `dest`."""
    src = os.path.join(PREBUILT, prebuilt_name)
    if not os.path.isfile(src):
        raise FileNotFoundError(f"{src}: missing prebuilt file (run scripts/build_demo_libs.sh)")
    real = vm.real(dest)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    if os.path.islink(real) or os.path.exists(real):
        os.unlink(real)
    shutil.copyfile(src, real)
    os.chmod(real, mode)
    return real


def add_versioned_library(vm: SandboxVM, folder: str, prebuilt_name: str, links: Sequence[str]) -> None:
    """A library file plus its chain of symlinks, as the Ollama tarball ships it
    (libcudart.so.12 -> libcudart.so.12.8.90)."""
    add_library(vm, prebuilt_name, f"{folder}/{prebuilt_name}")
    target = prebuilt_name
    for name in links:
        symlink(vm, f"{folder}/{name}", target)
        target = name


# --- the loader cache ------------------------------------------------------------------------

def ld_conf_folders(vm: SandboxVM) -> List[str]:
    """The folders ld.so.conf names (includes followed), in order, then ldconfig's trusted ones."""
    from probes.ldcache import read_conf
    _, folders = read_conf(vm.host, vm.ld_conf)
    out: List[str] = []
    for f, _conf in folders:
        if f not in out:
            out.append(f)
    for f in LDCONFIG_TRUSTED:
        if f not in out:
            out.append(f)
    return out


def _elf_soname(real: str) -> Tuple[Optional[str], int]:
    """(SONAME, cache flags) of a shared object, or (None, 0) when it is not one."""
    from probes.elf import read_elf_real
    info = read_elf_real(real, symbols=False)
    if not info.is_elf or info.type != "DYN":
        return None, 0
    if info.elf_class == 64 and info.machine_code == 62:
        return info.soname, 0x0303                   # libc6,x86-64
    return info.soname, 0x0003 if "libc.so.6" in info.needed else 0x0001  # libc6 / ELF


def cache_entries(vm: SandboxVM, folders: Optional[Sequence[str]] = None,
                  make_links: bool = True) -> List[Tuple[str, str, int]]:
    """What `ldconfig` would put in the cache for these folders (default: ld.so.conf's).

    As ldconfig does: a library is listed under its SONAME at FOLDER/SONAME (that link is
    created when missing, unless make_links is false); a `libX.so` development link is
    listed under its own name.
    """
    entries: List[Tuple[str, str, int]] = []
    for folder in folders if folders is not None else ld_conf_folders(vm):
        real_folder = vm.real(folder)
        if not os.path.isdir(real_folder):
            continue
        for name in sorted(os.listdir(real_folder)):
            if not name.startswith(("lib", "ld-")) or ".so" not in name:
                continue
            target = vm.host.resolve(f"{folder}/{name}")
            if not target.ok or not vm.host.isfile(target.final):
                continue
            soname, flags = _elf_soname(vm.host.path(target.final))
            if not flags:
                continue
            soname = soname or name
            if name == soname:
                entries.append((name, f"{folder}/{name}", flags))
            elif name.endswith(".so") and os.path.islink(os.path.join(real_folder, name)):
                entries.append((name, f"{folder}/{name}", flags))  # a development link
            else:
                link = os.path.join(real_folder, soname)
                if not os.path.lexists(link):
                    if not make_links:
                        continue
                    os.symlink(name, link)
                entries.append((soname, f"{folder}/{soname}", flags))
    seen = set()
    out = []
    for e in entries:
        if (e[0], e[1]) not in seen:
            seen.add((e[0], e[1]))
            out.append(e)
    return out


def rebuild_ld_cache(vm: SandboxVM, mtime: Optional[float] = None, exclude: Sequence[str] = ()) -> None:
    """`ldconfig` for the sandbox: write /etc/ld.so.cache from the conf folders' libraries."""
    from probes.ldcache import write_ld_cache
    entries = [e for e in cache_entries(vm) if os.path.dirname(e[1]) not in exclude]
    real = vm.real(vm.ld_cache)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    write_ld_cache(entries, real, generator="vgpu-tui sandbox builder (simulated ldconfig)")
    if mtime is not None:
        os.utime(real, (mtime, mtime))


# --- systemd -------------------------------------------------------------------------------------

def unit_text(binary: str = "/usr/local/bin/ollama") -> str:
    """The unit install.sh writes (reference §7)."""
    return (
        "[Unit]\nDescription=Ollama Service\nAfter=network-online.target\n\n"
        f"[Service]\nExecStart={binary} serve\nUser=ollama\nGroup=ollama\nRestart=always\n"
        f'RestartSec=3\nEnvironment="PATH={INSTALL_PATH_ENV}"\n\n'
        "[Install]\nWantedBy=default.target\n"
    )


def write_unit(vm: SandboxVM, binary: str = "/usr/local/bin/ollama") -> None:
    write_file(vm, vm.unit, unit_text(binary))


def write_dropin(vm: SandboxVM, name: str, env: Dict[str, str], mtime: Optional[float] = None) -> str:
    """A drop-in `ollama.service.d/NAME` setting `env` (as `systemctl edit` would write it)."""
    lines = ["[Service]"] + [f'Environment="{k}={v}"' for k, v in env.items()]
    path = f"{vm.dropin_dir}/{name}"
    write_file(vm, path, "\n".join(lines) + "\n", mtime=mtime)
    return path


def service_env(vm: SandboxVM) -> Dict[str, str]:
    """The environment systemd gives the service: its own variables, then the unit's."""
    env = {"LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
           "HOME": SERVICE_HOME, "LOGNAME": SERVICE_USER, "USER": SERVICE_USER, "SHELL": "/bin/false",
           "INVOCATION_ID": "5f2c9a81d3b44c0e9e7a6b1d2c3e4f50", "JOURNAL_STREAM": "8:21934"}
    try:
        from probes.systemd import load_service
        unit = load_service(vm.host, "ollama.service")
    except ImportError:  # pragma: no cover - probes.systemd ships with the project
        unit = None
    if unit is not None:
        env.update(unit.configured_env())
    return env


def service_binary(vm: SandboxVM) -> str:
    try:
        from probes.systemd import load_service
        unit = load_service(vm.host, "ollama.service")
        if unit is not None and unit.exec_start:
            return unit.exec_start[0].path
    except ImportError:  # pragma: no cover
        pass
    return vm.binary


def set_running_env(vm: SandboxVM, env: Optional[Dict[str, str]] = None, exe: Optional[str] = None,
                    pid: Optional[int] = None) -> None:
    """Record the running server: environ (NUL-separated), exe, pid (absent when None)."""
    env = service_env(vm) if env is None else env
    exe = exe or service_binary(vm)
    data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())
    write_file(vm, f"{vm.run_dir}/ollama.environ", data)
    write_file(vm, f"{vm.run_dir}/ollama.exe", vm.host.resolve(exe).final + "\n")
    pid_path = vm.real(f"{vm.run_dir}/ollama.pid")
    if pid is None:
        if os.path.exists(pid_path):
            os.unlink(pid_path)
    else:
        write_file(vm, f"{vm.run_dir}/ollama.pid", f"{pid}\n")


def write_sandbox_json(vm: SandboxVM) -> None:
    data = {"kind": vm.kind, "simulator": SIMULATOR_LABEL, "simulated": True,
            "faults": list(vm.faults), "version": vm.version,
            "note": "a sandbox VM built by vgpu-tui: the GPU, the driver and Ollama are simulated"}
    write_file(vm, f"{vm.state_dir}/sandbox.json", json.dumps(data, indent=1) + "\n")


def write_devnodes(vm: SandboxVM, nodes: Optional[Dict[str, dict]] = None) -> None:
    """The device nodes: regular files standing in, and their real attributes in JSON."""
    nodes = DEVICE_NODES if nodes is None else nodes
    for path in nodes:
        write_file(vm, path, b"", mode=0o644)
    write_file(vm, f"{vm.state_dir}/devnodes.json", json.dumps({"nodes": nodes}, indent=1) + "\n")


def remove_devnodes(vm: SandboxVM) -> None:
    for path in DEVICE_NODES:
        remove(vm, path)
    remove(vm, "/dev/nvidia-caps")
    write_file(vm, f"{vm.state_dir}/devnodes.json", json.dumps({"nodes": {}}, indent=1) + "\n")


# --- the base VM --------------------------------------------------------------------------------

def _system_lib_sources() -> Dict[str, str]:
    """Where this machine's own glibc libraries are (from the maps of this process)."""
    found: Dict[str, str] = {}
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            for line in fh:
                p = line.split()[-1]
                if p.startswith("/") and os.path.basename(p) in ("libc.so.6", "libm.so.6"):
                    found.setdefault(os.path.basename(p), p)
    except OSError:
        pass
    folder = os.path.dirname(found.get("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"))
    for name in SYSTEM_LIBS + ("ld-linux-x86-64.so.2",):
        p = os.path.join(folder, name)
        if name not in found and os.path.isfile(p):
            found[name] = p
    return found


def _system(vm: SandboxVM) -> None:
    write_file(vm, "/etc/hostname", HOSTNAME + "\n")
    write_file(vm, "/etc/os-release", 'PRETTY_NAME="Ubuntu 24.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n')
    write_file(vm, "/etc/passwd",
               "root:x:0:0:root:/root:/bin/bash\n"
               "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
               "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"
               "ollama:x:998:998::/usr/share/ollama:/bin/false\n")
    write_file(vm, "/etc/group",
               "root:x:0:\nadm:x:4:ubuntu\nvideo:x:44:ollama\nrender:x:991:ollama\n"
               "ubuntu:x:1000:\nollama:x:998:ubuntu\n")
    os.makedirs(vm.real(SERVICE_HOME + "/.ollama/models"), exist_ok=True)
    write_file(vm, "/usr/share/misc/pci.ids", PCI_IDS_TEXT)
    os.makedirs(vm.real("/usr/share/hwdata"), exist_ok=True)
    # ld.so.conf and the system libraries
    write_file(vm, "/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n\n")
    for name, text in LD_CONF_FILES:
        write_file(vm, f"/etc/ld.so.conf.d/{name}", text)
    for folder in ("/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib/x86_64-linux-gnu",
                   SYSTEM_LIB_DIR, "/lib64", "/var/log/ollama"):
        os.makedirs(vm.real(folder), exist_ok=True)
    from probes.elf import read_elf_real
    for name, src in sorted(_system_lib_sources().items()):
        info = read_elf_real(src, symbols=False)
        if not (info.is_elf and info.elf_class == 64 and info.machine_code == 62):
            continue  # this machine's glibc is not x86-64: the VM goes without (the fakes don't need it)
        dest = "/lib64/" + name if name.startswith("ld-linux") else f"{SYSTEM_LIB_DIR}/{name}"
        real = vm.real(dest)
        try:
            os.link(src, real)  # cheap when on the same file system
        except OSError:
            shutil.copyfile(src, real)
        os.chmod(real, 0o755)
    # /proc
    cpus = []
    for i in range(4):
        cpus.append(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
            f"model name\t: Intel Xeon Processor (Cascadelake)\nstepping\t: 7\ncpu MHz\t\t: 2593.906\n"
            f"cache size\t: 16384 KB\nphysical id\t: {i}\nsiblings\t: 1\ncore id\t\t: 0\ncpu cores\t: 1\n"
            f"flags\t\t: {CPU_FLAGS}\nbogomips\t: 5187.81\naddress sizes\t: 46 bits physical, 57 bits virtual\n")
    write_file(vm, "/proc/cpuinfo", "\n".join(cpus) + "\n")
    write_file(vm, "/proc/meminfo", f"MemTotal:       {MEM_TOTAL_KB} kB\nMemFree:        {MEM_AVAILABLE_KB - 900000} kB\n"
                                    f"MemAvailable:   {MEM_AVAILABLE_KB} kB\n")
    write_file(vm, "/proc/version", "Linux version 6.8.0-60-generic (buildd@lcy02-amd64-017) "
                                    "(x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0) #63-Ubuntu SMP\n")


def _pci_device(vm: SandboxVM, slot: str, vendor: int, device: int, klass: int, sv: int, sd: int,
                driver: Optional[str], iommu: int, irq: int) -> None:
    dev = f"/sys/devices/pci0000:00/{slot}"
    for name, value in (("vendor", f"0x{vendor:04x}"), ("device", f"0x{device:04x}"),
                        ("class", f"0x{klass:06x}"), ("subsystem_vendor", f"0x{sv:04x}"),
                        ("subsystem_device", f"0x{sd:04x}"), ("numa_node", str(STUB_GPU["numa_node"])),
                        ("irq", str(irq)), ("enable", "1"), ("revision", "0xa1" if vendor == 0x10DE else "0x00"),
                        ("modalias", f"pci:v{vendor:08X}d{device:08X}sv{sv:08X}sd{sd:08X}bc{klass >> 16:02X}"
                                     f"sc{(klass >> 8) & 0xff:02X}i{klass & 0xff:02X}")):
        write_file(vm, f"{dev}/{name}", value + "\n")
    uevent = [f"PCI_CLASS={klass:X}", f"PCI_ID={vendor:04X}:{device:04X}", f"PCI_SUBSYS_ID={sv:04X}:{sd:04X}",
              f"PCI_SLOT_NAME={slot}"]
    if driver:
        uevent.insert(0, f"DRIVER={driver}")
        os.makedirs(vm.real(f"/sys/bus/pci/drivers/{driver}"), exist_ok=True)
        symlink(vm, f"{dev}/driver", f"../../../bus/pci/drivers/{driver}")
        symlink(vm, f"/sys/bus/pci/drivers/{driver}/{slot}", f"../../../../devices/pci0000:00/{slot}")
    write_file(vm, f"{dev}/uevent", "\n".join(uevent) + "\n")
    os.makedirs(vm.real(f"/sys/kernel/iommu_groups/{iommu}/devices"), exist_ok=True)
    symlink(vm, f"{dev}/iommu_group", f"../../../kernel/iommu_groups/{iommu}")
    symlink(vm, f"/sys/kernel/iommu_groups/{iommu}/devices/{slot}", f"../../../../devices/pci0000:00/{slot}")
    symlink(vm, f"/sys/bus/pci/devices/{slot}", f"../../../devices/pci0000:00/{slot}")


def add_stub_gpu(vm: SandboxVM) -> None:
    g = STUB_GPU
    _pci_device(vm, g["pci_slot"], g["vendor_id"], g["device_id"], g["pci_class"], g["subsystem_vendor_id"],
                g["subsystem_device_id"], "nvidia", g["iommu_group"], g["irq"])
    symlink(vm, "/sys/bus/pci/drivers/nvidia/module", "../../../../module/nvidia")
    info = (f"Model: \t\t {g['name']}\nIRQ:   \t\t {g['irq']}\nGPU UUID: \t {g['uuid']}\n"
            f"Video BIOS: \t {g['vbios']}\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\n"
            f"Bus Location: \t {g['pci_slot']}\nDevice Minor: \t 0\nGPU Firmware: \t {g['driver_version']}\n"
            f"GPU Excluded:\t No\n")
    write_file(vm, f"/proc/driver/nvidia/gpus/{g['pci_slot']}/information", info)


def remove_stub_gpu(vm: SandboxVM) -> None:
    slot = STUB_GPU["pci_slot"]
    for p in (f"/sys/bus/pci/devices/{slot}", f"/sys/devices/pci0000:00/{slot}",
              f"/sys/bus/pci/drivers/nvidia/{slot}", f"/sys/kernel/iommu_groups/{STUB_GPU['iommu_group']}",
              f"/proc/driver/nvidia/gpus/{slot}"):
        remove(vm, p)


def _driver(vm: SandboxVM) -> None:
    g = STUB_GPU
    write_file(vm, "/proc/driver/nvidia/version",
               f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {g['driver_version']}  Release Build  "
               f"(dvs-builder@U22-I3-AF03-09-1)  Thu Oct  2 10:09:11 UTC 2025\n"
               "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04) \n")
    for mod, extra in (("nvidia", g["driver_version"]), ("nvidia_uvm", g["driver_version"])):
        write_file(vm, f"/sys/module/{mod}/initstate", "live\n")
        write_file(vm, f"/sys/module/{mod}/version", extra + "\n")
        write_file(vm, f"/sys/module/{mod}/refcnt", "0\n")
    write_file(vm, "/proc/modules",
               "nvidia_uvm 1830912 0 - Live 0xffffffffc080c000 (O)\n"
               "nvidia 14299136 1 nvidia_uvm, Live 0xffffffffc0400000 (O)\n"
               "virtio_net 77824 0 - Live 0xffffffffc0123000\n")
    write_devnodes(vm)


def install_ollama(vm: SandboxVM, prefix: str = "/usr/local") -> None:
    """bin/ollama and lib/ollama as the 0.24.0 tarball lays them out (with cuda_v12/)."""
    add_library(vm, "ollama", f"{prefix}/bin/ollama")
    lib = f"{prefix}/lib/ollama"
    add_versioned_library(vm, lib, libbuild.GGML_BASE_FILE, ("libggml-base.so.0", "libggml-base.so"))
    for v in libbuild.CPU_VARIANTS:
        add_library(vm, f"libggml-cpu-{v}.so", f"{lib}/libggml-cpu-{v}.so")
    cuda = f"{lib}/cuda_v12"
    add_library(vm, "libggml-cuda.so", f"{cuda}/libggml-cuda.so")
    add_versioned_library(vm, cuda, libbuild.CUDART_FILE, ("libcudart.so.12",))
    add_versioned_library(vm, cuda, libbuild.CUBLAS_FILE, ("libcublas.so.12",))
    add_versioned_library(vm, cuda, libbuild.CUBLASLT_FILE, ("libcublasLt.so.12",))


def install_shim(vm: SandboxVM, libcuda: str = "libcuda.so.1") -> None:
    """The shim in /opt/vgpu/lib: libcuda.so.1 (a prebuilt variant) and libnvidia-ml.so.1."""
    add_library(vm, libcuda, f"{vm.shim_dir}/libcuda.so.1")
    add_library(vm, "libnvidia-ml.so.1", f"{vm.shim_dir}/libnvidia-ml.so.1")


def build_healthy(vm: SandboxVM) -> None:
    _system(vm)
    for p in OTHER_PCI:
        _pci_device(vm, p["slot"], p["vendor"], p["device"], p["class"], p["sv"], p["sd"], p["driver"],
                    int(p["slot"][-3]), 10 + int(p["slot"][-3]))
    add_stub_gpu(vm)
    _driver(vm)
    install_ollama(vm)
    install_shim(vm)
    write_unit(vm)
    os.makedirs(vm.real(vm.dropin_dir), exist_ok=True)
    rebuild_ld_cache(vm)


# --- the faults -------------------------------------------------------------------------------

def _top_level_only(vm: SandboxVM) -> None:
    os.replace(vm.real(vm.backend_dir + "/libggml-cuda.so"), vm.real(vm.lib_dir + "/libggml-cuda.so"))


def _dangling(vm: SandboxVM) -> None:
    remove(vm, vm.backend_dir + "/libggml-cuda.so")
    symlink(vm, vm.backend_dir + "/libggml-cuda.so", "/opt/ollama-cuda/libggml-cuda.so")


def _cublas_missing(vm: SandboxVM) -> None:
    remove(vm, vm.backend_dir + "/libcublas.so.12")
    remove(vm, vm.backend_dir + "/" + libbuild.CUBLAS_FILE)


def _not_on_path(vm: SandboxVM) -> None:
    remove(vm, "/etc/ld.so.conf.d/vgpu.conf")
    rebuild_ld_cache(vm)


def _ldcache_stale(vm: SandboxVM) -> None:
    before = time.time() - 3 * 86400
    rebuild_ld_cache(vm, mtime=before, exclude=(vm.shim_dir,))
    conf = vm.real("/etc/ld.so.conf.d/vgpu.conf")
    os.utime(conf, (before + 3600, before + 3600))


def _shim_variant(name: str) -> Callable[[SandboxVM], None]:
    def apply(vm: SandboxVM) -> None:
        add_library(vm, name, f"{vm.shim_dir}/libcuda.so.1")
        rebuild_ld_cache(vm)
    return apply


STUB_CONF = "/opt/vgpu/etc/stub.conf"  # the shim reads <its folder>/../etc/stub.conf at cuInit


def _stub_behaviour(conf: Dict[str, str]) -> Callable[[SandboxVM], None]:
    """The shim fails at RUN time (csrc/libcuda.c reads this file): the files look healthy."""
    def apply(vm: SandboxVM) -> None:
        write_file(vm, STUB_CONF, "# vGPU stub behaviour (simulated runtime fault)\n"
                   + "".join(f"{k}={v}\n" for k, v in conf.items()))
    return apply


def _dropin(env: Dict[str, str], name: str = "override.conf") -> Callable[[SandboxVM], None]:
    def apply(vm: SandboxVM) -> None:
        path = vm.real(f"{vm.dropin_dir}/{name}")
        current: Dict[str, str] = {}
        if os.path.exists(path):  # several faults may add to the same drop-in
            from probes.systemd import parse_environment_line
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Environment="):
                        current.update(parse_environment_line(line.strip()[len("Environment="):]))
        current.update(env)
        write_dropin(vm, name, current)
    return apply


def _no_gpu(vm: SandboxVM) -> None:
    remove_stub_gpu(vm)


def _nodes_no_access(vm: SandboxVM) -> None:
    nodes = {p: dict(v, mode="0660") for p, v in DEVICE_NODES.items()}
    write_devnodes(vm, nodes)


def _binary_in_usr_bin(vm: SandboxVM) -> None:
    add_library(vm, "ollama", "/usr/bin/ollama")
    write_unit(vm, "/usr/bin/ollama")


def _preload_missing(vm: SandboxVM) -> None:
    write_file(vm, "/etc/ld.so.preload", SHIM_DIR + "/libvgpu-intercept.so\n")


def _dropin_not_applied(vm: SandboxVM) -> None:
    # The shim is off the cache; the drop-in that fixes it came after the server started.
    _not_on_path(vm)
    from probes.sandbox import simulator
    simulator.serve(vm.root)
    later = time.time() + 1
    write_dropin(vm, "10-shim-path.conf", {"LD_LIBRARY_PATH": SHIM_DIR}, mtime=later)


def _versioned_name(vm: SandboxVM) -> None:
    os.replace(vm.real(vm.backend_dir + "/libggml-cuda.so"), vm.real(vm.backend_dir + "/libggml-cuda.so.1"))


def _two_deep(vm: SandboxVM) -> None:
    os.makedirs(vm.real(vm.lib_dir + "/nvidia"), exist_ok=True)
    os.replace(vm.real(vm.backend_dir), vm.real(vm.lib_dir + "/nvidia/cuda_v12"))


def _flat_layout(vm: SandboxVM) -> None:
    for name in os.listdir(vm.real(vm.backend_dir)):
        os.replace(vm.real(f"{vm.backend_dir}/{name}"), vm.real(f"{vm.lib_dir}/{name}"))
    os.rmdir(vm.real(vm.backend_dir))


def _top_level_symlinks(vm: SandboxVM) -> None:
    for name in ("libggml-cuda.so", "libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12"):
        symlink(vm, f"{vm.lib_dir}/{name}", f"cuda_v12/{name}")


FAULTS: Dict[str, Fault] = {f.name: f for f in (
    Fault("ggml-cuda-top-level-only",
          "libggml-cuda.so moved to the top of lib/ollama; cuda_v12/ keeps only the runtime libraries, so no "
          "folder matches the discovery glob and libcudart.so.12 is not on the runner's library path",
          "backend-lib-missing", _top_level_only, also=("backend-lib-not-scanned",)),
    Fault("ggml-cuda-dangling", "cuda_v12/libggml-cuda.so is a dangling symlink",
          "backend-lib-missing", _dangling),
    Fault("cublas-missing", "cuda_v12/libcublas.so.12 removed, and none anywhere else on the runner's path",
          "backend-lib-missing", _cublas_missing),
    Fault("libcuda-not-on-path", "the shim exists in /opt/vgpu/lib but is neither in the loader cache nor on "
          "any path the runner's loader searches", "driver-lib-not-found", _not_on_path),
    Fault("ldcache-stale", "/etc/ld.so.conf.d/vgpu.conf names /opt/vgpu/lib, but the cache was built before it "
          "(older mtime, no entry)", "driver-lib-not-found", _ldcache_stale),
    Fault("shim-missing-fatal", "the shim lacks cuMemCreate, which libggml-cuda.so imports",
          "shim-incomplete", _shim_variant("libcuda-no-memcreate.so.1")),
    Fault("shim-missing-getprocaddress-v2", "the shim lacks only cuGetProcAddress_v2 (cudart falls back to "
          "looking entry points up by name: it works)", None, _shim_variant("libcuda-no-getprocaddress-v2.so.1"),
          works=True, also=("shim-incomplete",)),
    Fault("shim-wrong-soname", "the shim's SONAME is libcuda.so, not libcuda.so.1", "shim-incomplete",
          _shim_variant("libcuda-wrong-soname.so.1"), also=("driver-lib-not-found",)),
    Fault("shim-wrong-class", "the shim is a 32-bit ELF file", "shim-incomplete",
          _shim_variant("libcuda-32bit.so.1"), also=("driver-lib-not-found",)),
    Fault("llm-library-no-match", "a drop-in sets OLLAMA_LLM_LIBRARY=cuda: no backend folder has that name, so "
          "no discovery runner starts", "wrong-library-override", _dropin({"OLLAMA_LLM_LIBRARY": "cuda"})),
    Fault("visible-devices-hidden", "a drop-in sets CUDA_VISIBLE_DEVICES=-1", "visible-devices-env",
          _dropin({"CUDA_VISIBLE_DEVICES": "-1"})),
    Fault("no-gpu", "no NVIDIA or stub display device on the PCI bus", "no-device", _no_gpu),
    Fault("no-device-nodes", "/dev/nvidia* absent", "device-nodes-missing", remove_devnodes),
    Fault("device-nodes-no-access", "/dev/nvidia* are mode 0660 root:root, so user ollama cannot open them",
          "device-nodes-missing", _nodes_no_access),
    Fault("binary-in-usr-bin", "the unit runs /usr/bin/ollama (a copy), so Ollama looks in /usr/lib/ollama, "
          "while the operator's tree is /usr/local/lib/ollama", "lib-dir-not-found", _binary_in_usr_bin),
    Fault("preload-missing", "/etc/ld.so.preload names a missing library (the loader prints an error in every "
          "process and ignores it: the GPU is still found)", "preload-broken", _preload_missing, works=True),
    Fault("dropin-not-applied", "a drop-in sets LD_LIBRARY_PATH=/opt/vgpu/lib (the shim is not in the cache), but "
          "the running server's environment predates it", "driver-lib-not-found", _dropin_not_applied,
          relaunch_fixes=True),
    Fault("ggml-cuda-versioned-name", "cuda_v12/libggml-cuda.so is named libggml-cuda.so.1",
          "backend-lib-not-scanned", _versioned_name),
    Fault("ggml-cuda-two-deep", "the backend folder is lib/ollama/nvidia/cuda_v12/ (two levels deep)",
          "backend-lib-not-scanned", _two_deep),
    Fault("flat-layout", "the backend and its runtime libraries directly in lib/ollama, no subfolder (works)",
          None, _flat_layout, works=True),
    Fault("shim-cuinit-fails", "the shim's cuInit returns CUDA_ERROR_NO_DEVICE (100)", "cuda-init-failed",
          _stub_behaviour({"cuinit": "100"})),
    Fault("shim-cuinit-hangs", "the shim's cuInit never returns (the discovery runner times out)",
          "discovery-timeout", _stub_behaviour({"cuinit": "hang"})),
    Fault("shim-cuinit-crashes", "the shim's cuInit crashes (SIGSEGV)", "runner-crash",
          _stub_behaviour({"cuinit": "crash"})),
    Fault("shim-old-driver-api", "the shim's cuDriverGetVersion reports 11080 (CUDA 11.8) while the backend "
          "is cuda_v12", "driver-too-old", _stub_behaviour({"driver_version": "11080"})),
    Fault("shim-unsupported-compute", "the device reports compute capability 8.7, not compiled into cuda_v12",
          "unsupported-compute", _stub_behaviour({"compute": "8.7"})),
    Fault("shim-zero-memory", "the device reports 0 bytes of memory (0.24 still lists it, total=\"0 B\": "
          "no layer fits, models run on the CPU)", "oom-or-vram", _stub_behaviour({"memory": "0"}),
          log_library="CUDA"),
    Fault("top-level-symlinks", "top-level symlinks in lib/ollama to the files of an intact cuda_v12/ (the "
          "backend loads twice; works)", None, _top_level_symlinks, works=True),
)}


def build_vm(dir: str, faults: Iterable[str] = (), version: str = "0.24.0", kind: str = "test",
             simulate: bool = False) -> SandboxVM:
    """Build a sandbox VM in `dir` (created; must be empty or absent) with the named faults.

    `simulate=True` also runs the simulated Ollama once, so the service log holds a start.
    """
    faults = tuple(faults)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown sandbox fault(s): {', '.join(unknown)} (known: {', '.join(FAULTS)})")
    if version != "0.24.0":
        raise ValueError(f"the sandbox simulates Ollama 0.24.0 only, not {version}")
    root = os.path.abspath(dir)
    if os.path.isdir(root) and os.listdir(root):
        raise ValueError(f"{root}: not empty; build a sandbox in a new folder")
    os.makedirs(root, exist_ok=True)
    vm = SandboxVM(root=root, kind=kind, version=version, faults=faults)
    os.makedirs(vm.real(vm.run_dir), exist_ok=True)
    write_sandbox_json(vm)
    build_healthy(vm)
    set_running_env(vm)
    for name in faults:
        if name == "dropin-not-applied":
            continue
        FAULTS[name].apply(vm)
    if "dropin-not-applied" in faults:
        FAULTS["dropin-not-applied"].apply(vm)  # last: it starts the server, then edits
    else:
        set_running_env(vm)
        if simulate:
            from probes.sandbox import simulator
            simulator.serve(vm.root)
    return vm


def load_vm(dir: str) -> SandboxVM:
    """The SandboxVM of an existing sandbox folder."""
    root = os.path.abspath(dir)
    with open(os.path.join(root, STATE_DIR.lstrip("/"), "sandbox.json"), encoding="utf-8") as fh:
        data = json.load(fh)
    return SandboxVM(root=root, kind=data.get("kind", "test"), version=data.get("version", "0.24.0"),
                     faults=tuple(data.get("faults", ())))
