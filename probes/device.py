"""The device pane's facts: PCI devices, /dev/nvidia* nodes, kernel modules, driver, CPU.

Everything is read through the Host (sysfs, /dev, /proc/driver/nvidia, /proc/modules,
/etc/passwd and /etc/group of the inspected system), so the same code runs on this
machine, on a `--root` image and on the sandbox VMs.

Declaring a stub GPU: a user-built virtual device (the user's `VGPU-STUB`) can carry any
PCI IDs. It is treated as the GPU when named by `--gpu VENDOR:DEVICE` (repeatable) or
by the configuration file `/etc/vgpu-tui.conf` of the inspected system, JSON:

    {"gpu": ["1234:1111"], "device_nodes": ["/dev/vgpu0"], "service_user": "ollama"}

(`gpu` is a list or one string; `device_nodes` are extra nodes the stub's shim opens;
`service_user` is the user Ollama runs as). On this machine (not under --root/--demo)
`$XDG_CONFIG_HOME/vgpu-tui/config.json` (default ~/.config/...) is read as well.

Sandbox roots: their /dev/nvidia* are regular files; `/.vgpu-sandbox/devnodes.json`
gives the type, major/minor, mode, owner and group the real nodes would have.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import stat as stat_mod
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from probes import cpu as cpu_mod
from probes import pciids
from probes.errors import ToolError
from probes.facts import Finding, Fix
from probes.host import Host

NVIDIA = "10de"
PCI_DEVICES = "/sys/bus/pci/devices"
SYSTEM_CONFIG = "/etc/vgpu-tui.conf"
DEVNODES_JSON = "/.vgpu-sandbox/devnodes.json"

# Class codes (first 2 or 4 hex digits) of a compute GPU: display controllers,
# processing accelerators and co-processors.
GPU_CLASSES = ("03", "1200", "0b40")

# The hypervisors' emulated display adapters: never a CUDA device.
EMULATED_DISPLAY = {
    ("1234", "1111"): "QEMU/Bochs standard VGA",
    ("1013", "00b8"): "QEMU Cirrus VGA",
    ("1af4", "1050"): "virtio-gpu",
    ("1b36", "0100"): "QXL",
    ("15ad", "0405"): "VMware SVGA II",
    ("1414", "5353"): "Hyper-V video",
    ("1d0f", "1111"): "Amazon EC2 VGA",
}

# Drivers that mean "this VM cannot use the GPU with CUDA" when bound to an NVIDIA device.
FOREIGN_DRIVERS = {
    "nouveau": "the open-source nouveau driver has it, so NVIDIA's driver cannot bind and CUDA sees nothing",
    "vfio-pci": "vfio-pci has it: reserved for passthrough into another VM, not usable here",
    "pci-stub": "pci-stub has it: reserved, not usable here",
    "nvidia-vgpu-vfio": "the host-side vGPU manager has it: this looks like the hypervisor, not the guest",
}

# (node name pattern, kind, needed by CUDA, access CUDA needs)
NODE_KINDS = (
    (r"nvidiactl", "control", True, "rw"),
    (r"nvidia-uvm", "uvm", True, "rw"),
    (r"nvidia-uvm-tools", "uvm-tools", False, "rw"),
    (r"nvidia-modeset", "modeset", False, "rw"),
    (r"nvidia\d+", "gpu", True, "rw"),
    (r"nvidia-caps/.+", "caps", False, "r"),
)

MODULES = ("nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm", "nvidia_peermem",
           "nouveau", "vfio", "vfio_pci", "vfio_iommu_type1")


@dataclasses.dataclass(frozen=True)
class PciDevice:
    slot: str
    vendor_id: str  # lower-case hex, no 0x: "10de"
    device_id: str
    class_code: str  # 6 hex digits: "030200"
    subsystem_vendor_id: Optional[str]
    subsystem_device_id: Optional[str]
    revision: Optional[str]
    vendor: Optional[str]
    name: Optional[str]
    class_name: Optional[str]
    subsystem_name: Optional[str]
    driver: Optional[str]
    gpu: bool
    declared: bool  # named by --gpu or the config file
    gpu_reason: Optional[str]
    iommu_group: Optional[str]
    numa_node: Optional[int]
    sysfs: str

    def __json__(self) -> dict:
        # The contract names the field "class" (a Python keyword), next to the IDs.
        return {("class" if f.name == "class_code" else f.name): getattr(self, f.name)
                for f in dataclasses.fields(self)}

    @property
    def ids(self) -> str:
        return f"{self.vendor_id}:{self.device_id}"


@dataclasses.dataclass(frozen=True)
class DeviceNode:
    path: str
    exists: bool
    char_device: bool
    major: Optional[int]
    minor: Optional[int]
    mode: Optional[str]  # "0666"
    kind: str
    required: bool
    owner: Optional[str]
    group: Optional[str]
    service_user_access: Optional[bool]  # None: unknown (no such user, or no node)
    access_reason: Optional[str]
    source: str  # "stat", "devnodes.json", "missing"


@dataclasses.dataclass(frozen=True)
class KernelModule:
    name: str
    loaded: bool
    version: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class DriverGpu:
    """One GPU as /proc/driver/nvidia/gpus/*/information describes it."""

    bus_location: Optional[str]
    model: Optional[str]
    uuid: Optional[str]
    minor: Optional[int]
    video_bios: Optional[str]
    excluded: Optional[bool]


@dataclasses.dataclass(frozen=True)
class DriverInfo:
    version: Optional[str]
    source: Optional[str]
    module_type: Optional[str] = None  # "open" or "proprietary"
    gpus: Tuple[DriverGpu, ...] = ()


@dataclasses.dataclass(frozen=True)
class ServiceUser:
    name: str
    exists: bool
    uid: Optional[int]
    gid: Optional[int]
    groups: Tuple[str, ...]  # primary and supplementary group names


@dataclasses.dataclass(frozen=True)
class DeviceFacts:
    pci: Tuple[PciDevice, ...]
    nodes: Tuple[DeviceNode, ...]
    modules: Tuple[KernelModule, ...]
    driver: DriverInfo
    cpu: cpu_mod.CpuFacts
    service_user: ServiceUser
    declared_gpus: Tuple[str, ...]
    config: Optional[str]  # the config file that was read, if any
    pci_ids: Optional[str]  # the pci.ids that named the devices (None: built-in excerpt)
    findings: Tuple[Finding, ...]
    notes: Tuple[str, ...] = ()

    @property
    def gpus(self) -> Tuple[PciDevice, ...]:
        return tuple(d for d in self.pci if d.gpu)


# ----------------------------------------------------------------------------- IDs
def parse_gpu_id(text: str) -> str:
    """'10de:2335', '0x10DE:0x2335' -> '10de:2335'; ToolError on anything else."""
    m = re.fullmatch(r"\s*(?:0x)?([0-9a-fA-F]{1,4}):(?:0x)?([0-9a-fA-F]{1,4})\s*", text or "")
    if not m:
        raise ToolError(f"--gpu {text!r}: expected VENDOR:DEVICE in hex, e.g. 10de:2335")
    return f"{m.group(1).lower().zfill(4)}:{m.group(2).lower().zfill(4)}"


def _hexid(text: Optional[str], width: int = 4) -> Optional[str]:
    if text is None:
        return None
    t = text.strip().lower()
    t = t[2:] if t.startswith("0x") else t
    return t.zfill(width) if re.fullmatch(r"[0-9a-f]+", t) else None


# -------------------------------------------------------------------------- config
def read_config(host: Host) -> Tuple[dict, Optional[str], List[str]]:
    """The merged configuration, the file(s) read, and problems found (never raises)."""
    merged: dict = {}
    used: List[str] = []
    problems: List[str] = []
    sources: List[Tuple[str, Optional[str]]] = [(SYSTEM_CONFIG, host.read_text(SYSTEM_CONFIG, limit=65536))]
    if host.live:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        user_file = os.path.join(base, "vgpu-tui", "config.json")
        try:
            with open(user_file, encoding="utf-8") as fh:
                sources.append((user_file, fh.read(65536)))
        except OSError:
            pass
    for name, text in sources:
        if text is None:
            continue
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            problems.append(f"{name}: ignored, not valid JSON ({exc})")
            continue
        used.append(name)
        for key, value in data.items():
            if key in ("gpu", "device_nodes") and key in merged:
                merged[key] = _as_list(merged[key]) + _as_list(value)
            else:
                merged[key] = value
    return merged, (", ".join(used) or None), problems


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# ----------------------------------------------------------------------- users
def _passwd(host: Host) -> Dict[str, Tuple[int, int]]:
    users: Dict[str, Tuple[int, int]] = {}
    for line in (host.read_text("/etc/passwd", limit=4 * 1024 * 1024) or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            users.setdefault(parts[0], (int(parts[2]), int(parts[3])))
    return users


def _groups(host: Host) -> List[Tuple[str, int, Tuple[str, ...]]]:
    out = []
    for line in (host.read_text("/etc/group", limit=4 * 1024 * 1024) or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit():
            out.append((parts[0], int(parts[2]), tuple(m for m in parts[3].split(",") if m)))
    return out


def lookup_user(host: Host, name: str) -> ServiceUser:
    users = _passwd(host)
    if name not in users:
        return ServiceUser(name, False, None, None, ())
    uid, gid = users[name]
    names = [g for g, g_id, members in _groups(host) if g_id == gid or name in members]
    return ServiceUser(name, True, uid, gid, tuple(names))


# ------------------------------------------------------------------------- PCI
def _read(host: Host, path: str) -> Optional[str]:
    text = host.read_text(path, limit=4096)
    return text.strip() if text is not None else None


def _link_name(host: Host, path: str) -> Optional[str]:
    r = host.resolve(path)
    if r.ok:
        return r.final.rstrip("/").rsplit("/", 1)[-1]
    target = host.readlink(path)
    return target.rstrip("/").rsplit("/", 1)[-1] if target else None


def _gpu_reason(vendor: str, device: str, class_code: str, declared: bool) -> Tuple[bool, Optional[str]]:
    if declared:
        return True, "declared as the GPU (--gpu or config)"
    is_gpu_class = any(class_code.startswith(c) for c in GPU_CLASSES)
    if vendor == NVIDIA and is_gpu_class:
        return True, "NVIDIA display/3D/accelerator function"
    if is_gpu_class and (vendor, device) not in EMULATED_DISPLAY and class_code.startswith("0302"):
        return True, "3D controller (a vGPU or stub device)"
    return False, None


def pci_devices(host: Host, names: pciids.PciNames, declared: Sequence[str]) -> Tuple[PciDevice, ...]:
    out = []
    for slot in host.listdir(PCI_DEVICES):
        base = f"{PCI_DEVICES}/{slot}"
        vendor = _hexid(_read(host, base + "/vendor"))
        device = _hexid(_read(host, base + "/device"))
        if vendor is None or device is None:
            continue
        class_code = _hexid(_read(host, base + "/class"), 6) or "000000"
        sv = _hexid(_read(host, base + "/subsystem_vendor"))
        sd = _hexid(_read(host, base + "/subsystem_device"))
        numa = _read(host, base + "/numa_node")
        numa_node = int(numa) if numa and re.fullmatch(r"-?\d+", numa) and int(numa) >= 0 else None
        is_declared = f"{vendor}:{device}" in declared
        gpu, reason = _gpu_reason(vendor, device, class_code, is_declared)
        out.append(PciDevice(
            slot=slot, vendor_id=vendor, device_id=device, class_code=class_code,
            subsystem_vendor_id=sv, subsystem_device_id=sd,
            revision=_hexid(_read(host, base + "/revision"), 2),
            vendor=names.vendor(vendor), name=names.device(vendor, device),
            class_name=names.class_name(class_code),
            subsystem_name=names.subsystem(vendor, device, sv, sd) if sv and sd else None,
            driver=_link_name(host, base + "/driver") if host.lstat(base + "/driver") else None,
            gpu=gpu, declared=is_declared, gpu_reason=reason,
            iommu_group=_link_name(host, base + "/iommu_group") if host.lstat(base + "/iommu_group") else None,
            numa_node=numa_node, sysfs=base,
        ))
    return tuple(out)


# --------------------------------------------------------------------- driver
def driver_info(host: Host) -> DriverInfo:
    text = host.read_text("/proc/driver/nvidia/version", limit=65536)
    version = module_type = source = None
    if text:
        m = re.search(r"NVRM version:.*?\s(\d+\.\d+(?:\.\d+)?)\s", text + " ")
        if m:
            version, source = m.group(1), "/proc/driver/nvidia/version"
            module_type = "open" if "Open Kernel Module" in text else "proprietary"
    if version is None:
        v = _read(host, "/sys/module/nvidia/version")
        if v:
            version, source = v, "/sys/module/nvidia/version"
    gpus = []
    for bus in host.listdir("/proc/driver/nvidia/gpus"):
        info = host.read_text(f"/proc/driver/nvidia/gpus/{bus}/information", limit=65536) or ""
        fields = {}
        for line in info.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                fields[k.strip()] = v.strip()
        minor = fields.get("Device Minor")
        gpus.append(DriverGpu(
            bus_location=fields.get("Bus Location", bus), model=fields.get("Model"),
            uuid=fields.get("GPU UUID"), minor=int(minor) if minor and minor.isdigit() else None,
            video_bios=fields.get("Video BIOS"),
            excluded=(fields["GPU Excluded"].lower() == "yes") if "GPU Excluded" in fields else None,
        ))
    return DriverInfo(version, source, module_type, tuple(gpus))


def kernel_modules(host: Host) -> Tuple[KernelModule, ...]:
    listed = set()
    for line in (host.read_text("/proc/modules", limit=4 * 1024 * 1024) or "").splitlines():
        if line.strip():
            listed.add(line.split()[0])
    out = []
    for name in MODULES:
        in_sys = host.isdir(f"/sys/module/{name}")
        loaded = name in listed or (in_sys and (
            host.exists(f"/sys/module/{name}/initstate") or host.isdir(f"/sys/module/{name}/parameters")
            or host.exists(f"/sys/module/{name}/version")))
        out.append(KernelModule(name, bool(loaded), _read(host, f"/sys/module/{name}/version") if loaded else None))
    return tuple(out)


# ----------------------------------------------------------------------- nodes
def _devnodes_table(host: Host) -> Dict[str, dict]:
    """The sandbox's description of its device nodes, keyed by inspected path."""
    if not host.is_sandbox:
        return {}
    text = host.read_text(DEVNODES_JSON, limit=1024 * 1024)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if isinstance(data, dict) and isinstance(data.get("nodes"), (list, dict)):
        data = data["nodes"]
    table: Dict[str, dict] = {}
    items: Iterable = data.items() if isinstance(data, dict) else (
        (e.get("path"), e) for e in data if isinstance(e, dict))
    for path, info in items:
        if isinstance(path, str) and isinstance(info, dict):
            table["/" + path.lstrip("/") if path.startswith("/") else "/dev/" + path] = info
    return table


def _mode_bits(value) -> Optional[int]:
    if isinstance(value, int):
        return value & 0o7777
    if isinstance(value, str):
        v = value.strip()
        if re.fullmatch(r"0?o?[0-7]{3,4}", v):
            return int(v.replace("o", ""), 8) & 0o7777
        if re.fullmatch(r"[cbd-][rwxsStT-]{9}", v):  # ls -l form
            bits = 0
            for i, ch in enumerate(v[1:]):
                if ch not in "-ST":
                    bits |= 1 << (8 - i)
            return bits
    return None


def _access(user: ServiceUser, uid: Optional[int], gid: Optional[int], mode: Optional[int],
            owner: Optional[str], group: Optional[str], need: str) -> Tuple[Optional[bool], str]:
    """Whether `user` may open the node with the access CUDA needs, judged by mode bits."""
    if not user.exists or mode is None:
        return None, "unknown (no such user)" if not user.exists else "unknown mode"
    if user.uid == 0:
        return True, "root"
    want = (4 if "r" in need else 0) | (2 if "w" in need else 0)
    if (uid is not None and uid == user.uid) or (uid is None and owner == user.name):
        bits, who = (mode >> 6) & 7, f"owner {owner}"
    elif (gid is not None and gid == user.gid) or (group is not None and group in user.groups):
        bits, who = (mode >> 3) & 7, f"group {group}"
    else:
        bits, who = mode & 7, "others"
    ok = (bits & want) == want
    return ok, f"{'may' if ok else 'may not'} open it {need} as {who} (mode {mode:04o})"


def _node_kind(rel: str) -> Tuple[str, bool, str]:
    for pattern, kind, required, need in NODE_KINDS:
        if re.fullmatch(pattern, rel):
            return kind, required, need
    return "other", False, "rw"


def device_nodes(host: Host, user: ServiceUser, expected: Sequence[str],
                 extra: Sequence[str] = ()) -> Tuple[DeviceNode, ...]:
    table = _devnodes_table(host)
    uids = {uid: name for name, (uid, _) in _passwd(host).items()}
    gids = {gid: name for name, gid, _ in _groups(host)}
    names = [n for n in host.listdir("/dev") if n.startswith("nvidia") and n != "nvidia-caps"]
    names += ["nvidia-caps/" + n for n in host.listdir("/dev/nvidia-caps")]
    paths = ["/dev/" + n for n in names]
    paths += [p for p in list(expected) + list(extra) + sorted(table) if p not in paths]
    order = {kind: i for i, (_, kind, _, _) in enumerate(NODE_KINDS)}
    out = []
    for path in paths:
        rel = path[len("/dev/"):] if path.startswith("/dev/") else path
        kind, required, need = _node_kind(rel)
        if path in extra:
            kind, required = "declared", True
        required = required and (path in expected or kind == "declared")
        info = table.get(path)
        st = host.lstat(path)
        if info is not None and st is not None:
            mode = _mode_bits(info.get("mode"))
            typ = str(info.get("type", "c")).lower()
            owner = info.get("owner", info.get("user"))
            group = info.get("group")
            uid = owner if isinstance(owner, int) else None
            gid = group if isinstance(group, int) else None
            owner = uids.get(uid, str(uid)) if uid is not None else owner
            group = gids.get(gid, str(gid)) if gid is not None else group
            ok, why = _access(user, uid, gid, mode, owner, group, need)
            out.append(DeviceNode(path, True, typ.startswith("c"), _int(info.get("major")),
                                  _int(info.get("minor")), f"{mode:04o}" if mode is not None else None,
                                  kind, required, owner, group, ok, why, "devnodes.json"))
        elif st is not None:
            real = host.stat(path) or st
            is_char = stat_mod.S_ISCHR(real.st_mode)
            mode = stat_mod.S_IMODE(real.st_mode)
            owner = uids.get(real.st_uid, str(real.st_uid))
            group = gids.get(real.st_gid, str(real.st_gid))
            ok, why = _access(user, real.st_uid, real.st_gid, mode, owner, group, need)
            out.append(DeviceNode(path, True, is_char,
                                  os.major(real.st_rdev) if is_char else None,
                                  os.minor(real.st_rdev) if is_char else None,
                                  f"{mode:04o}", kind, required, owner, group,
                                  ok if is_char else None, why if is_char else "not a device node",
                                  "stat"))
        else:
            out.append(DeviceNode(path, False, False, None, None, None, kind, required,
                                  None, None, None, None, "missing"))
    out.sort(key=lambda n: (order.get(n.kind, 99), _natural(n.path)))
    return tuple(out)


def _int(v) -> Optional[int]:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _ls_line(n: DeviceNode) -> str:
    if not n.exists:
        return f"{n.path}: missing"
    t = "c" if n.char_device else "-"
    mm = f"{n.major}, {n.minor}" if n.char_device else "(regular file)"
    return f"{t}{n.mode or '????'} {n.owner}:{n.group} {mm} {n.path}"


# -------------------------------------------------------------------- collect
def collect(host: Host, gpu_ids: Sequence[str] = (), service_user: str = "ollama") -> DeviceFacts:
    """Everything the device pane shows, with its findings."""
    declared = [parse_gpu_id(g) for g in gpu_ids]
    config, config_used, notes = read_config(host)
    for g in _as_list(config.get("gpu")):
        try:
            declared.append(parse_gpu_id(str(g)))
        except ToolError:
            notes.append(f"{config_used}: ignored gpu entry {g!r} (expected VENDOR:DEVICE)")
    user_name = service_user or str(config.get("service_user") or "ollama")
    if service_user == "ollama" and config.get("service_user"):
        user_name = str(config["service_user"])
    names = pciids.load(host)
    pci = pci_devices(host, names, declared)
    driver = driver_info(host)
    modules = kernel_modules(host)
    user = lookup_user(host, user_name)
    loaded = {m.name for m in modules if m.loaded}
    nvidia_in_use = ("nvidia" in loaded or driver.version is not None
                     or any(d.driver == "nvidia" for d in pci if d.gpu))
    expected: List[str] = []
    if nvidia_in_use:
        minors = [g.minor for g in driver.gpus if g.minor is not None]
        if not minors:
            minors = list(range(sum(1 for d in pci if d.gpu and d.driver == "nvidia")))
        expected = ["/dev/nvidiactl", "/dev/nvidia-uvm"] + [f"/dev/nvidia{m}" for m in minors]
    extra = [str(p) for p in _as_list(config.get("device_nodes"))]
    nodes = device_nodes(host, user, expected, extra)
    cpu = cpu_mod.collect(host)
    found = _findings(host, pci, nodes, modules, driver, user, declared, nvidia_in_use) + cpu_mod.findings(cpu)
    if not host.live:
        found = tuple(_elsewhere(f) for f in found)
    if not user.exists:
        notes.append(f"user {user.name!r} is not in the inspected system's /etc/passwd: "
                     "who may open the device nodes was not judged")
    return DeviceFacts(pci, nodes, modules, driver, cpu, user, tuple(declared),
                       config_used, names.source, tuple(found), tuple(notes))


ELSEWHERE = "on the inspected system itself, not on this machine"


def _elsewhere(f: Finding) -> Finding:
    """Under --root a manual command (chmod /dev/..., rm /dev/..., modprobe) is for the VM the
    image belongs to: typed here it would act on THIS machine's devices."""
    if f.fix is None or f.fix.kind != "manual" or not f.fix.args.get("command"):
        return f
    args = dict(f.fix.args)
    args["hint"] = ELSEWHERE
    return dataclasses.replace(f, fix=dataclasses.replace(f.fix, args=args))


def _findings(host, pci, nodes, modules, driver, user, declared, nvidia_in_use) -> Tuple[Finding, ...]:
    out: List[Finding] = []
    gpus = [d for d in pci if d.gpu]
    loaded = {m.name for m in modules if m.loaded}
    if not pci:
        out.append(Finding(
            "pci-bus-not-visible", "container-runtime", "warning",
            "No PCI devices are visible",
            f"{PCI_DEVICES} is empty or unreadable: a container without /sys, or sysfs not mounted. "
            "The GPU, if any, must be passed in by the container runtime.",
            (f"{PCI_DEVICES}: no entries",)))
    elif not gpus:
        display = [d for d in pci if d.class_code.startswith("03")]
        hint = [d for d in display if (d.vendor_id, d.device_id) not in EMULATED_DISPLAY]
        detail = "No NVIDIA display/3D controller and no declared stub device is on the PCI bus."
        if hint:
            detail += (" If your virtual GPU is %s, declare it: --gpu %s (or \"gpu\" in %s)."
                       % (hint[0].slot, hint[0].ids, SYSTEM_CONFIG))
        elif declared:
            detail += " Declared IDs not found: %s." % ", ".join(declared)
        out.append(Finding(
            "no-gpu-on-pci-bus", "no-device", "error", "No GPU on the PCI bus", detail,
            tuple(f"{d.slot} {d.ids} class {d.class_code} {d.name or d.class_name or ''} driver={d.driver}".rstrip()
                  for d in display) or (f"{len(pci)} PCI devices, none of display/3D class",),
            Fix("manual", {"hint": "pass the GPU (or the stub device) through to this VM; a stub device "
                                   "with IDs of its own: declare it with --gpu VENDOR:DEVICE "
                                   "(`vgpu-tui device --all` lists every PCI device)"})))
    for d in gpus:
        ev = (f"{d.slot} {d.ids} {d.name or ''} driver={d.driver or 'none'}".replace("  ", " "),)
        if d.vendor_id == NVIDIA and d.driver in FOREIGN_DRIVERS:
            out.append(Finding(f"gpu-driver-{d.driver}", "driver-missing", "error",
                               f"GPU {d.slot} is bound to {d.driver}", FOREIGN_DRIVERS[d.driver], ev,
                               Fix("manual", {"hint": "bind the device to the nvidia driver (blacklist nouveau, install NVIDIA's driver)"})))
        elif d.driver is None and (d.vendor_id == NVIDIA or not nvidia_in_use):
            out.append(Finding("gpu-no-driver", "driver-missing", "error" if d.vendor_id == NVIDIA else "warning",
                               f"GPU {d.slot} is not bound to any driver",
                               "No kernel driver has claimed the device, so no /dev/nvidia* node serves it."
                               + (" A stub device may not need a kernel driver if its shim talks to it another way."
                                  if d.vendor_id != NVIDIA else ""), ev,
                               Fix("manual", {"command": "modprobe nvidia"})))
    if any(d.vendor_id == NVIDIA for d in gpus) and "nvidia" not in loaded and driver.version is None:
        out.append(Finding("nvidia-module-not-loaded", "driver-missing", "error",
                           "The nvidia kernel module is not loaded",
                           "An NVIDIA GPU is present but neither /proc/driver/nvidia nor /sys/module/nvidia exists.",
                           ("/proc/driver/nvidia/version: missing", "/sys/module/nvidia: missing"),
                           Fix("manual", {"command": "modprobe nvidia"})))
    if nvidia_in_use and "nvidia_uvm" not in loaded:
        out.append(Finding("nvidia-uvm-not-loaded", "driver-missing", "warning",
                           "The nvidia_uvm module is not loaded",
                           "CUDA needs nvidia_uvm; cuInit fails without it unless nvidia-modprobe (setuid) loads "
                           "it on first use. A service started before it was loaded may keep failing.",
                           ("/sys/module/nvidia_uvm: missing",),
                           Fix("manual", {"command": "nvidia-modprobe -u -c=0"})))
    out.extend(_node_findings(nodes, user))
    return tuple(out)


def _node_findings(nodes, user) -> List[Finding]:
    """One finding per cause (missing, not a device, not openable by the service user),
    listing every node it affects: three missing nodes are one problem with one fix."""
    missing = [n for n in nodes if n.required and not n.exists]
    not_char = [n for n in nodes if n.exists and not n.char_device and (n.required or n.kind != "other")]
    no_access = [n for n in nodes if n.exists and n.char_device is not False and n.required
                 and n.service_user_access is False and n not in not_char]
    out: List[Finding] = []
    if missing:
        names = ", ".join(n.path for n in missing)
        out.append(Finding(
            "nvidia-nodes-missing", "device-nodes-missing", "error",
            f"{names} {'is' if len(missing) == 1 else 'are'} missing",
            "CUDA opens these device nodes; without them cuInit fails (often CUDA_ERROR_NO_DEVICE "
            "or CUDA_ERROR_UNKNOWN).", tuple(_ls_line(n) for n in missing),
            Fix("manual", {"command": "nvidia-modprobe -u -c=0"})))
    if not_char:
        names = ", ".join(n.path for n in not_char)
        out.append(Finding(
            "nvidia-nodes-not-char", "device-nodes-missing", "error",
            f"{names}: not a character device",
            "A regular file or folder stands where the device node should be; "
            "the driver cannot be reached through it.", tuple(_ls_line(n) for n in not_char),
            Fix("manual", {"command": "rm " + " ".join(n.path for n in not_char) + " && nvidia-modprobe -u -c=0"})))
    if no_access:
        names = ", ".join(n.path for n in no_access)
        groups = sorted({n.group for n in no_access if n.group not in (None, "root")})
        command = (f"usermod -aG {','.join(groups)} {user.name}" if groups
                   else "chmod 0666 " + " ".join(n.path for n in no_access))
        if not groups:  # nvidia-modprobe recreates the nodes at boot with the module's mode
            command += ("  # until the next boot; to keep it: options nvidia NVreg_DeviceFileMode=0666 "
                        "in /etc/modprobe.d/nvidia.conf")
        out.append(Finding(
            "nvidia-nodes-no-access", "device-nodes-missing", "error",
            f"User {user.name} cannot open {names}",
            f"{user.name} {no_access[0].access_reason}. Ollama's service runs as {user.name}, so its "
            "runners see no GPU although root does.",
            tuple(_ls_line(n) for n in no_access) + (f"{user.name}: uid={user.uid} groups={','.join(user.groups)}",),
            Fix("manual", {"command": command})))
    return out
