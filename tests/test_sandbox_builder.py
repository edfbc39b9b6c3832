"""The sandbox builder: the healthy VM and each named fault, checked with the real tools
(readelf, ldconfig -p -C, the file system) and with the simulated Ollama's verdict."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from probes.host import Host
from probes.sandbox import builder, simulator
from probes.sandbox.builder import FAULTS, build_vm
from probes.sandbox.stubgpu import STUB_GPU

needs_ldconfig = pytest.mark.skipif(shutil.which("ldconfig") is None and not os.path.exists("/sbin/ldconfig"),
                                    reason="ldconfig not installed")
LDCONFIG = shutil.which("ldconfig") or "/sbin/ldconfig"


def cache_lines(vm) -> list:
    out = subprocess.run([LDCONFIG, "-p", "-C", vm.real(vm.ld_cache)], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return [l.strip() for l in out.splitlines()[1:] if "=>" in l]


def verdict(vm) -> str:
    out = simulator.serve(vm.root, seed=3)
    return re.findall(r'msg="inference compute" id=\S+ (?:filter_id="" )?library=(\w+)', out)[-1]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    return build_vm(str(tmp_path_factory.mktemp("healthy") / "vm"))


def test_healthy_vm_is_marked_as_a_simulated_sandbox(healthy):
    data = json.loads(open(healthy.real("/.vgpu-sandbox/sandbox.json")).read())
    assert data["kind"] == "test" and data["simulator"] == "ollama 0.24.0" and data["faults"] == []
    assert Host(healthy.root).is_sandbox


def test_healthy_install_layout_is_the_tarballs(healthy):
    lib = healthy.real(healthy.lib_dir)
    assert os.readlink(os.path.join(lib, "libggml-base.so")) == "libggml-base.so.0"
    assert os.readlink(os.path.join(lib, "libggml-base.so.0")) == "libggml-base.so.0.0.0"
    assert sorted(n for n in os.listdir(lib) if n.startswith("libggml-cpu-")) == sorted(
        f"libggml-cpu-{v}.so" for v in ("x64", "sse42", "sandybridge", "haswell", "skylakex", "icelake", "alderlake"))
    cuda = os.listdir(healthy.real(healthy.backend_dir))
    assert {"libggml-cuda.so", "libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12"} <= set(cuda)
    assert os.access(healthy.real(healthy.binary), os.X_OK)


@needs_ldconfig
def test_healthy_cache_lists_the_shim_like_real_ldconfig(healthy, tmp_path):
    lines = cache_lines(healthy)
    assert "libcuda.so.1 (libc6,x86-64) => /opt/vgpu/lib/libcuda.so.1" in lines
    assert "libnvidia-ml.so.1 (libc6,x86-64) => /opt/vgpu/lib/libnvidia-ml.so.1" in lines
    conf = tmp_path / "ld.so.conf"
    conf.write_text("\n".join(healthy.real(f) for f in builder.ld_conf_folders(healthy)) + "\n")
    subprocess.run([LDCONFIG, "-X", "-C", str(tmp_path / "cache"), "-f", str(conf)], check=True)
    out = subprocess.run([LDCONFIG, "-p", "-C", str(tmp_path / "cache")], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    real = sorted(l.strip().replace(healthy.root, "") for l in out.splitlines() if healthy.root in l)
    assert sorted(lines) == real


def test_healthy_sysfs_proc_dev_and_users(healthy):
    h = Host(healthy.root)
    dev = f"/sys/bus/pci/devices/{STUB_GPU['pci_slot']}"
    assert h.read_text(dev + "/vendor").strip() == "0x10de"
    assert h.read_text(dev + "/class").strip() == "0x030200"
    assert h.resolve(dev + "/driver").final == "/sys/bus/pci/drivers/nvidia"
    assert h.islink(dev + "/iommu_group") and h.read_text(dev + "/numa_node").strip() == "-1"
    assert len(h.listdir("/sys/bus/pci/devices")) == 4  # host bridge, virtio block and net, the GPU
    assert "VGPU-STUB" in h.read_text("/usr/share/misc/pci.ids")
    assert "580.159.04" in h.read_text("/proc/driver/nvidia/version")
    assert STUB_GPU["uuid"] in h.read_text(f"/proc/driver/nvidia/gpus/{STUB_GPU['pci_slot']}/information")
    assert " avx2 " in h.read_text("/proc/cpuinfo")
    assert h.isdir("/sys/module/nvidia") and h.isdir("/sys/module/nvidia_uvm")
    nodes = json.loads(h.read_text("/.vgpu-sandbox/devnodes.json"))["nodes"]
    assert nodes["/dev/nvidiactl"] == {"type": "c", "major": 195, "minor": 255, "mode": "0666", "owner": "root",
                                       "group": "root"}
    assert all(h.exists(p) for p in nodes)
    assert re.search(r"^video:x:44:.*ollama", h.read_text("/etc/group"), re.M)
    assert re.search(r"^render:x:\d+:.*ollama", h.read_text("/etc/group"), re.M)


def test_healthy_unit_and_running_record(healthy):
    unit = open(healthy.real(healthy.unit)).read()
    assert "ExecStart=/usr/local/bin/ollama serve" in unit and "User=ollama" in unit
    env = open(healthy.real("/.vgpu-sandbox/run/ollama.environ"), "rb").read().split(b"\0")
    assert b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert open(healthy.real("/.vgpu-sandbox/run/ollama.exe")).read().strip() == "/usr/local/bin/ollama"
    assert not os.path.exists(healthy.real("/.vgpu-sandbox/run/ollama.pid"))


def test_healthy_vm_runs_on_the_gpu(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), simulate=True)
    log = open(vm.real(vm.log)).read()
    assert "library=CUDA compute=9.0" in log and "description=VGPU-STUB" in log
    assert "libdirs=ollama,cuda_v12" in log
    assert " level=DEBUG " not in log  # the unit sets no OLLAMA_DEBUG: INFO only


def _state(vm):
    """What each fault must have changed, checked with the real tools."""
    h = Host(vm.root)
    lines = cache_lines(vm) if shutil.which("ldconfig") or os.path.exists("/sbin/ldconfig") else None
    cuda_in_cache = lines is not None and any(l.startswith("libcuda.so.1 (libc6,x86-64)") for l in lines)
    return h, lines, cuda_in_cache


CHECKS = {
    "ggml-cuda-top-level-only": lambda vm, h, lines, c: h.isfile(vm.lib_dir + "/libggml-cuda.so")
    and not h.exists(vm.backend_dir + "/libggml-cuda.so") and h.exists(vm.backend_dir + "/libcudart.so.12"),
    "ggml-cuda-dangling": lambda vm, h, lines, c: h.resolve(vm.backend_dir + "/libggml-cuda.so").status == "dangling",
    "cublas-missing": lambda vm, h, lines, c: not h.exists(vm.backend_dir + "/libcublas.so.12")
    and not any("libcublas.so.12 " in l for l in lines or []),
    "libcuda-not-on-path": lambda vm, h, lines, c: h.isfile("/opt/vgpu/lib/libcuda.so.1") and not c
    and not h.exists("/etc/ld.so.conf.d/vgpu.conf"),
    "ldcache-stale": lambda vm, h, lines, c: not c and h.stat("/etc/ld.so.conf.d/vgpu.conf").st_mtime
    > h.stat("/etc/ld.so.cache").st_mtime,
    "shim-missing-fatal": lambda vm, h, lines, c: c,
    "shim-missing-getprocaddress-v2": lambda vm, h, lines, c: c,
    "shim-wrong-soname": lambda vm, h, lines, c: not c and "libcuda.so (libc6,x86-64) => /opt/vgpu/lib/libcuda.so" in lines,
    "shim-wrong-class": lambda vm, h, lines, c: "libcuda.so.1 (libc6) => /opt/vgpu/lib/libcuda.so.1" in lines,
    "llm-library-no-match": lambda vm, h, lines, c: 'OLLAMA_LLM_LIBRARY=cuda"' in h.read_text(vm.dropin_dir + "/override.conf"),
    "visible-devices-hidden": lambda vm, h, lines, c: 'CUDA_VISIBLE_DEVICES=-1"' in h.read_text(vm.dropin_dir + "/override.conf"),
    "no-gpu": lambda vm, h, lines, c: not any(
        (h.read_text(f"/sys/bus/pci/devices/{s}/vendor") or "").strip() == "0x10de" for s in h.listdir("/sys/bus/pci/devices")),
    "no-device-nodes": lambda vm, h, lines, c: not any(n.startswith("nvidia") for n in h.listdir("/dev")),
    "device-nodes-no-access": lambda vm, h, lines, c: json.loads(h.read_text("/.vgpu-sandbox/devnodes.json"))["nodes"]["/dev/nvidia0"]["mode"] == "0660",
    "binary-in-usr-bin": lambda vm, h, lines, c: "ExecStart=/usr/bin/ollama serve" in h.read_text(vm.unit)
    and not h.exists("/usr/lib/ollama") and h.isdir(vm.lib_dir),
    "preload-missing": lambda vm, h, lines, c: not h.exists(h.read_text("/etc/ld.so.preload").strip()),
    "dropin-not-applied": lambda vm, h, lines, c: b"LD_LIBRARY_PATH" not in h.read_bytes("/.vgpu-sandbox/run/ollama.environ")
    and "LD_LIBRARY_PATH=/opt/vgpu/lib" in h.read_text(vm.dropin_dir + "/10-shim-path.conf")
    and "library=cpu" in h.read_text(vm.log),
    "ggml-cuda-versioned-name": lambda vm, h, lines, c: h.isfile(vm.backend_dir + "/libggml-cuda.so.1")
    and not h.exists(vm.backend_dir + "/libggml-cuda.so"),
    "ggml-cuda-two-deep": lambda vm, h, lines, c: h.isfile(vm.lib_dir + "/nvidia/cuda_v12/libggml-cuda.so")
    and not h.exists(vm.backend_dir),
    "flat-layout": lambda vm, h, lines, c: h.isfile(vm.lib_dir + "/libggml-cuda.so") and not h.exists(vm.backend_dir),
    "top-level-symlinks": lambda vm, h, lines, c: h.readlink(vm.lib_dir + "/libggml-cuda.so") == "cuda_v12/libggml-cuda.so"
    and h.isfile(vm.backend_dir + "/libggml-cuda.so"),
    # run-time faults of the shim: the files stay healthy, the behaviour file says what cuInit does
    "shim-cuinit-fails": lambda vm, h, lines, c: c and "cuinit=100" in h.read_text("/opt/vgpu/etc/stub.conf"),
    "shim-cuinit-hangs": lambda vm, h, lines, c: c and "cuinit=hang" in h.read_text("/opt/vgpu/etc/stub.conf"),
    "shim-cuinit-crashes": lambda vm, h, lines, c: c and "cuinit=crash" in h.read_text("/opt/vgpu/etc/stub.conf"),
    "shim-old-driver-api": lambda vm, h, lines, c: c and "driver_version=11080" in h.read_text("/opt/vgpu/etc/stub.conf"),
    "shim-unsupported-compute": lambda vm, h, lines, c: c and "compute=8.7" in h.read_text("/opt/vgpu/etc/stub.conf"),
    "shim-zero-memory": lambda vm, h, lines, c: c and "memory=0" in h.read_text("/opt/vgpu/etc/stub.conf"),
}


def test_every_fault_has_a_check_and_a_contract_category():
    assert set(CHECKS) == set(FAULTS)
    cats = {"no-device", "device-nodes-missing", "driver-lib-not-found", "shim-incomplete", "preload-broken",
            "lib-dir-not-found", "backend-lib-not-scanned", "backend-lib-missing", "wrong-library-override",
            "visible-devices-env", "cuda-init-failed", "discovery-timeout", "runner-crash", "driver-too-old",
            "unsupported-compute", "oom-or-vram", None}
    for f in FAULTS.values():
        assert f.category in cats and set(f.also) <= cats and f.description


@needs_ldconfig
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_is_planted_and_gives_the_real_outcome(tmp_path, name):
    vm = build_vm(str(tmp_path / "vm"), faults=(name,))
    h, lines, c = _state(vm)
    assert CHECKS[name](vm, h, lines, c)
    assert json.loads(h.read_text("/.vgpu-sandbox/sandbox.json"))["faults"] == [name]
    # the simulated (re)start: a stale server is fixed by the restart itself
    expected = FAULTS[name].log_library or ("CUDA" if FAULTS[name].works or FAULTS[name].relaunch_fixes else "cpu")
    assert verdict(vm) == expected


def test_unknown_fault_and_non_empty_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown sandbox fault"):
        build_vm(str(tmp_path / "a"), faults=("no-such-fault",))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        build_vm(str(tmp_path / "b"))


def test_faults_compose(tmp_path):
    vm = build_vm(str(tmp_path / "vm"), faults=("visible-devices-hidden", "llm-library-no-match"))
    text = open(vm.real(vm.dropin_dir + "/override.conf")).read()
    assert "CUDA_VISIBLE_DEVICES=-1" in text and "OLLAMA_LLM_LIBRARY=cuda" in text
    assert verdict(vm) == "cpu"
