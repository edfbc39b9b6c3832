"""The load probe's child: the only code of vgpu-tui that dlopen()s a suspect library.

Run by probes.loadprobe as `python -m probes.loadprobe_child` in its own process (and
process group), with the environment Ollama's runner would have. It reads one JSON
request on stdin and appends one JSON record per line to the file the request names,
*before* and *after* every risky call, so that a crash (signal) or a hang (the parent
kills it) still leaves behind which step it was in. The libraries' own output goes to
this process's stdout/stderr, which the parent keeps apart from the records.

Stages (request "stage"):
  driver  - dlopen libcuda.so.1 RTLD_NOW; cuInit, cuDriverGetVersion, cuDeviceGetCount,
            per device name, compute capability, UUID, memory, PCI bus id
  nvml    - dlopen libnvidia-ml.so.1 RTLD_NOW; nvmlInit_v2, driver version, count,
            per device name/UUID/memory, and whether the CUDA UUIDs are accepted
  backend - dlopen libggml-base.so, then libggml-cuda.so RTLD_NOW|RTLD_LOCAL (the exact
            dlerror ggml discards), then its ggml_backend_init and device count
Only the standard library is used; nothing of the tool is imported.
"""
from __future__ import annotations

import ctypes
import json
import os
import sys

RTLD_LAZY = 0x1
RTLD_NOW = 0x2
RTLD_GLOBAL = 0x100
RTLD_LOCAL = 0
RTLD_DI_LINKMAP = 2

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76

_out_fd = -1


def record(**fields) -> None:
    """Append one record; os.write reaches the kernel at once, so a crash keeps it."""
    line = (json.dumps(fields, default=str) + "\n").encode("utf-8", "replace")
    os.write(_out_fd, line)


class Dl:
    """libc's dlopen/dlsym/dlerror/dlinfo, called directly for exact flags and messages."""

    def __init__(self):
        lib = ctypes.CDLL(None)
        try:
            lib.dlopen
        except AttributeError:  # glibc < 2.34 keeps them in libdl
            lib = ctypes.CDLL("libdl.so.2")
        self.dlopen = lib.dlopen
        self.dlopen.restype = ctypes.c_void_p
        self.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.dlsym_ = lib.dlsym
        self.dlsym_.restype = ctypes.c_void_p
        self.dlsym_.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.dlerror_ = lib.dlerror
        self.dlerror_.restype = ctypes.c_char_p
        self.dlinfo = getattr(lib, "dlinfo", None)
        if self.dlinfo is not None:
            self.dlinfo.restype = ctypes.c_int
            self.dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]

    def error(self):
        msg = self.dlerror_()
        return msg.decode("utf-8", "replace") if msg else None

    def open(self, name: str, flags: int):
        self.dlerror_()  # clear a stale message
        handle = self.dlopen(name.encode(), flags)
        return handle, (None if handle else self.error() or "dlopen failed")

    def open_self(self):
        self.dlerror_()
        return self.dlopen(None, RTLD_LAZY), None

    def sym(self, handle, name: str):
        self.dlerror_()
        addr = self.dlsym_(handle, name.encode())
        return addr, (None if addr else self.error() or f"undefined symbol: {name}")

    def link_chain(self, handle):
        """Every object of the link-map chain `handle` is on, named as the loader found it."""
        if self.dlinfo is None or not handle:
            return []
        lm = ctypes.c_void_p()
        if self.dlinfo(handle, RTLD_DI_LINKMAP, ctypes.byref(lm)) != 0 or not lm.value:
            return []
        word = ctypes.sizeof(ctypes.c_void_p)
        node = lm.value
        for _ in range(100000):  # back to the head (l_prev is the 5th word)
            prev = ctypes.c_void_p.from_address(node + 4 * word).value
            if not prev:
                break
            node = prev
        names = []
        while node and len(names) < 100000:
            name = ctypes.c_char_p.from_address(node + word).value
            if name:
                names.append(name.decode("utf-8", "surrogateescape"))
            node = ctypes.c_void_p.from_address(node + 3 * word).value  # l_next
        return names

    def mapped_name(self, handle):
        """The file the loader mapped for this handle (its link_map l_name)."""
        if self.dlinfo is None:
            return None
        lm = ctypes.c_void_p()
        if self.dlinfo(handle, RTLD_DI_LINKMAP, ctypes.byref(lm)) != 0 or not lm.value:
            return None
        # struct link_map { ElfW(Addr) l_addr; char *l_name; ... }
        name_ptr = ctypes.c_char_p.from_address(lm.value + ctypes.sizeof(ctypes.c_void_p))
        return name_ptr.value.decode("utf-8", "surrogateescape") if name_ptr.value else None


def mapped_files():
    """Shared objects mapped in this process now (from /proc/self/maps)."""
    files = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                    path = parts[5].strip()
                    if path not in files:
                        files.append(path)
    except OSError:
        pass
    return files


def fn(dl, handle, name, restype, *argtypes):
    addr, err = dl.sym(handle, name)
    if not addr:
        return None, err
    return ctypes.CFUNCTYPE(restype, *argtypes)(addr), None


def step(name, call):
    """Record the start, run, record the result; the result dict is returned."""
    record(step=name, status="start")
    data = call()
    record(step=name, status="done", data=data)
    return data


def load(dl, stage, name, flags):
    before = mapped_files()
    self_handle, _ = dl.open_self()
    chain_before = set(dl.link_chain(self_handle))

    def do():
        handle, err = dl.open(name, flags)
        if not handle:
            return {"name": name, "loaded": False, "error": err}
        mapped = dl.mapped_name(handle)
        after = [p for p in mapped_files() if p not in before]
        found = [n for n in dl.link_chain(handle) if n not in chain_before]
        return {"name": name, "loaded": True, "error": None, "mapped": mapped,
                "real_path": os.path.realpath(mapped) if mapped else None, "new_mappings": after,
                "new_objects": found, "handle": handle}
    return step(f"{stage}:dlopen", do)


def error_name(dl, handle, code):
    f, _ = fn(dl, handle, "cuGetErrorName", ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p))
    if f is None:
        return None
    s = ctypes.c_char_p()
    return s.value.decode() if f(code, ctypes.byref(s)) == 0 and s.value else None


def stage_driver(dl, req):
    lib = load(dl, "libcuda", req.get("libcuda", "libcuda.so.1"), RTLD_NOW)
    if not lib["loaded"]:
        return
    h = lib["handle"]
    c_int, p_int = ctypes.c_int, ctypes.POINTER(ctypes.c_int)

    def call(label, name, restype, argtypes, args_fn):
        f, err = fn(dl, h, name, restype, *argtypes)
        if f is None:
            record(step=label, status="done", data={"symbol": name, "missing": True, "error": err})
            return None
        record(step=label, status="start")
        args = args_fn()
        rc = f(*args)
        data = {"symbol": name, "result": rc}
        if rc != 0:
            data["driver_name"] = error_name(dl, h, rc)
        return data, args

    r = call("cuInit", "cuInit", c_int, (ctypes.c_uint,), lambda: (0,))
    if r is None:
        return
    record(step="cuInit", status="done", data=r[0])
    if r[0]["result"] != 0:
        return
    r = call("cuDriverGetVersion", "cuDriverGetVersion", c_int, (p_int,), lambda: (c_int(0),))
    if r is not None:
        data, args = r
        data["value"] = args[0].value if data["result"] == 0 else None
        record(step="cuDriverGetVersion", status="done", data=data)
    r = call("cuDeviceGetCount", "cuDeviceGetCount", c_int, (p_int,), lambda: (c_int(0),))
    if r is None:
        return
    data, args = r
    data["value"] = args[0].value if data["result"] == 0 else None
    record(step="cuDeviceGetCount", status="done", data=data)
    for index in range(min(data["value"] or 0, 64)):
        step(f"device{index}", lambda: device_facts(dl, h, index))


def device_facts(dl, h, index):
    c_int = ctypes.c_int
    out = {"index": index}
    get, err = fn(dl, h, "cuDeviceGet", c_int, ctypes.POINTER(c_int), c_int)
    if get is None:
        out["error"] = err
        return out
    dev = c_int(0)
    rc = get(ctypes.byref(dev), index)
    if rc != 0:
        out["error"] = f"cuDeviceGet returned {rc}"
        out["result"] = rc
        return out
    name_f, _ = fn(dl, h, "cuDeviceGetName", c_int, ctypes.c_char_p, c_int, c_int)
    if name_f is not None:
        buf = ctypes.create_string_buffer(256)
        if name_f(buf, 256, dev) == 0:
            out["name"] = buf.value.decode("utf-8", "replace")
    attr, _ = fn(dl, h, "cuDeviceGetAttribute", c_int, ctypes.POINTER(c_int), c_int, c_int)
    if attr is not None:
        major, minor = c_int(-1), c_int(-1)
        if (attr(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev) == 0
                and attr(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev) == 0):
            out["compute"] = f"{major.value}.{minor.value}"
    for uuid_name in ("cuDeviceGetUuid_v2", "cuDeviceGetUuid"):
        uf, _ = fn(dl, h, uuid_name, c_int, ctypes.c_void_p, c_int)
        if uf is not None:
            raw = (ctypes.c_ubyte * 16)()
            if uf(ctypes.cast(raw, ctypes.c_void_p), dev) == 0:
                b = bytes(raw)
                out["uuid"] = "GPU-%s-%s-%s-%s-%s" % (b[0:4].hex(), b[4:6].hex(), b[6:8].hex(),
                                                      b[8:10].hex(), b[10:16].hex())
                out["uuid_symbol"] = uuid_name
            break
    for mem_name in ("cuDeviceTotalMem_v2", "cuDeviceTotalMem"):
        mf, _ = fn(dl, h, mem_name, c_int, ctypes.POINTER(ctypes.c_size_t), c_int)
        if mf is not None:
            total = ctypes.c_size_t(0)
            if mf(ctypes.byref(total), dev) == 0:
                out["total_memory"] = total.value
            break
    bf, _ = fn(dl, h, "cuDeviceGetPCIBusId", c_int, ctypes.c_char_p, c_int, c_int)
    if bf is not None:
        buf = ctypes.create_string_buffer(64)
        if bf(buf, 64, dev) == 0:
            out["pci_bus_id"] = buf.value.decode("ascii", "replace")
    return out


class NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def stage_nvml(dl, req):
    lib = load(dl, "nvml", req.get("nvml", "libnvidia-ml.so.1"), RTLD_NOW)
    if not lib["loaded"]:
        return
    h = lib["handle"]
    c_int, c_uint = ctypes.c_int, ctypes.c_uint
    init, err = fn(dl, h, "nvmlInit_v2", c_int)
    if init is None:
        record(step="nvmlInit_v2", status="done", data={"symbol": "nvmlInit_v2", "missing": True, "error": err})
        return
    step("nvmlInit_v2", lambda: {"symbol": "nvmlInit_v2", "result": init()})
    ver, err = fn(dl, h, "nvmlSystemGetDriverVersion", c_int, ctypes.c_char_p, c_uint)

    def driver_version():
        if ver is None:
            return {"symbol": "nvmlSystemGetDriverVersion", "missing": True, "error": err}
        buf = ctypes.create_string_buffer(96)
        rc = ver(buf, 96)
        return {"symbol": "nvmlSystemGetDriverVersion", "result": rc,
                "value": buf.value.decode("ascii", "replace") if rc == 0 else None}
    step("nvmlSystemGetDriverVersion", driver_version)
    count_f, err = fn(dl, h, "nvmlDeviceGetCount_v2", c_int, ctypes.POINTER(c_uint))

    def count():
        if count_f is None:
            return {"symbol": "nvmlDeviceGetCount_v2", "missing": True, "error": err}
        n = c_uint(0)
        rc = count_f(ctypes.byref(n))
        return {"symbol": "nvmlDeviceGetCount_v2", "result": rc, "value": n.value if rc == 0 else None}
    n = step("nvmlDeviceGetCount_v2", count).get("value") or 0
    by_index, _ = fn(dl, h, "nvmlDeviceGetHandleByIndex_v2", c_int, c_uint, ctypes.POINTER(ctypes.c_void_p))
    name_f, _ = fn(dl, h, "nvmlDeviceGetName", c_int, ctypes.c_void_p, ctypes.c_char_p, c_uint)
    uuid_f, _ = fn(dl, h, "nvmlDeviceGetUUID", c_int, ctypes.c_void_p, ctypes.c_char_p, c_uint)
    mem_f, _ = fn(dl, h, "nvmlDeviceGetMemoryInfo", c_int, ctypes.c_void_p, ctypes.POINTER(NvmlMemory))

    def describe(dev):
        out = {}
        buf = ctypes.create_string_buffer(96)
        if name_f is not None and name_f(dev, buf, 96) == 0:
            out["name"] = buf.value.decode("utf-8", "replace")
        if uuid_f is not None and uuid_f(dev, buf, 96) == 0:
            out["uuid"] = buf.value.decode("ascii", "replace")
        mem = NvmlMemory()
        if mem_f is not None:
            rc = mem_f(dev, ctypes.byref(mem))
            out["memory_result"] = rc
            if rc == 0:
                out["total_memory"] = mem.total
        return out

    for i in range(min(n, 64) if by_index is not None else 0):
        def one(i=i):
            dev = ctypes.c_void_p()
            rc = by_index(i, ctypes.byref(dev))
            return dict({"index": i, "result": rc}, **(describe(dev) if rc == 0 else {}))
        step(f"nvml-device{i}", one)
    # Ollama 0.12.6-0.24 asks NVML for memory by the "GPU-..." UUID cudart derives.
    by_uuid, err = fn(dl, h, "nvmlDeviceGetHandleByUUID", c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
    for uuid in req.get("uuids", []):
        def lookup(uuid=uuid):
            if by_uuid is None:
                return {"uuid": uuid, "missing": True, "error": err}
            dev = ctypes.c_void_p()
            return {"uuid": uuid, "result": by_uuid(uuid.encode(), ctypes.byref(dev))}
        step(f"nvml-uuid:{uuid}", lookup)
    shut, _ = fn(dl, h, "nvmlShutdown", c_int)
    if shut is not None:
        step("nvmlShutdown", lambda: {"symbol": "nvmlShutdown", "result": shut()})


def stage_backend(dl, req):
    base = req.get("base")
    base_handle = None
    if base:
        b = load(dl, "base", base, RTLD_NOW | RTLD_LOCAL)
        base_handle = b.get("handle")
    lib = load(dl, "backend", req["backend"], RTLD_NOW | RTLD_LOCAL)
    if not lib["loaded"]:
        return
    h = lib["handle"]
    score, _ = dl.sym(h, "ggml_backend_score")
    init_addr, err = dl.sym(h, "ggml_backend_init")
    record(step="backend:symbols", status="done",
           data={"ggml_backend_init": bool(init_addr), "ggml_backend_score": bool(score),
                 "error": None if init_addr else err})
    if not init_addr or not req.get("init", True):
        return
    init = ctypes.CFUNCTYPE(ctypes.c_void_p)(init_addr)

    def do_init():
        reg = init()
        out = {"reg": bool(reg)}
        if reg and base_handle:
            count, _ = fn(dl, base_handle, "ggml_backend_reg_dev_count", ctypes.c_size_t, ctypes.c_void_p)
            name, _ = fn(dl, base_handle, "ggml_backend_reg_name", ctypes.c_char_p, ctypes.c_void_p)
            if count is not None:
                out["devices"] = count(reg)
            if name is not None:
                raw = name(reg)
                out["name"] = raw.decode("utf-8", "replace") if raw else None
        return out
    step("backend:init", do_init)


def drop_privileges(spec) -> None:
    """Become the service user (the parent passes uid, gid, groups) before loading anything."""
    os.setgroups([int(g) for g in spec.get("groups", [])])
    os.setgid(int(spec["gid"]))
    os.setuid(int(spec["uid"]))


def main() -> int:
    global _out_fd
    req = json.loads(sys.stdin.read() or "{}")
    _out_fd = os.open(req["out"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if req.get("as_user"):
        try:
            drop_privileges(req["as_user"])
        except OSError as exc:
            record(step="setuid", status="done", data={"error": f"cannot become {req['as_user']}: {exc}"})
            return 3
        record(step="setuid", status="done", data={"uid": os.getuid(), "gid": os.getgid(),
                                                   "groups": os.getgroups()})
    record(step="begin", status="done", data={"pid": os.getpid(), "euid": os.geteuid(),
                                              "ld_library_path": os.environ.get("LD_LIBRARY_PATH")})
    dl = Dl()
    {"driver": stage_driver, "nvml": stage_nvml, "backend": stage_backend}[req["stage"]](dl, req)
    record(step="end", status="done", data={})
    return 0


if __name__ == "__main__":
    sys.exit(main())
