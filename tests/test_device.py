"""The device pane on sandbox roots that mirror a real GPU VM, and on this machine.

The sandbox sysfs is generated from the real listing of an H200 VM in
../shared/data/real-driver/h200-vm-facts.txt (PCI devices, /proc/driver/nvidia, the device
nodes as `ls -l` printed them), so what `device` reports can be compared with that VM.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probes import device, pciids
from probes.errors import ToolError
from probes.facts import to_plain
from probes.host import Host

ROOT = Path(__file__).resolve().parents[1]
FACTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-driver" / "h200-vm-facts.txt"


def _section(name: str) -> str:
    text = FACTS.read_text()
    return text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def _w(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def build_h200_vm(root: Path, nodes=None, drop=(), extra_pci=(), uvm=True) -> Path:
    """A sandbox root shaped like the real H200 VM (sysfs, /proc, /dev, users)."""
    _w(root, "/.vgpu-sandbox/sandbox.json", json.dumps({"kind": "test", "faults": []}))
    lines = _section("pci").splitlines() + list(extra_pci)
    for line in lines:
        m = re.match(r"(\S+) v=0x(\w+) d=0x(\w+) c=0x(\w+) sv=0x(\w+) sd=0x(\w+) drv=(\S*) iommu=(\S*) numa=(\S+)", line)
        if not m or m.group(1) in drop:
            continue
        slot, v, d, c, sv, sd, drv, iommu, numa = m.groups()
        real = f"/sys/devices/pci0000:00/{slot}"
        for name, value in (("vendor", v), ("device", d), ("class", c), ("subsystem_vendor", sv),
                            ("subsystem_device", sd)):
            _w(root, f"{real}/{name}", f"0x{value}\n")
        _w(root, f"{real}/numa_node", numa + "\n")
        link = root / "sys/bus/pci/devices" / slot
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../../devices/pci0000:00/{slot}", link)
        if drv:
            (root / "sys/bus/pci/drivers" / drv).mkdir(parents=True, exist_ok=True)
            os.symlink(f"../../../bus/pci/drivers/{drv}", root / real.lstrip("/") / "driver")
        if iommu:
            (root / "sys/kernel/iommu_groups" / iommu).mkdir(parents=True, exist_ok=True)
            os.symlink(f"../../../kernel/iommu_groups/{iommu}", root / real.lstrip("/") / "iommu_group")
    proc = _section("nvidia proc").splitlines()
    _w(root, "/proc/driver/nvidia/version", "\n".join(proc[:2]) + "\n")
    _w(root, "/proc/driver/nvidia/gpus/0000:00:06.0/information", "\n".join(proc[3:]) + "\n")
    modules = "nvidia_uvm 1830912 - - Live 0xffffffffc080c000 (O)\n" if uvm else ""
    _w(root, "/proc/modules", modules + "nvidia 14299136 - - Live 0xffffffffc0400000 (O)\n")
    _w(root, "/sys/module/nvidia/version", "580.159.04\n")
    if uvm:
        _w(root, "/sys/module/nvidia_uvm/initstate", "live\n")
    _w(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nollama:x:998:996::/usr/share/ollama:/bin/false\n")
    _w(root, "/etc/group", "root:x:0:\nvideo:x:44:ollama\nollama:x:996:\n")
    table = {}
    for line in _section("dev").splitlines():  # "crw-rw-rw- 1 root root 195,   0 Nov 29 18:28 /dev/nvidia0"
        m = re.match(r"(c\S{9}) \d+ (\S+) (\S+) +(\d+), +(\d+) .* (\S+)$", line)
        if m:
            mode, owner, group, major, minor, name = m.groups()
            path = name if name.startswith("/") else f"/dev/nvidia-caps/{name}"
            table[path] = {"type": "c", "major": int(major), "minor": int(minor), "mode": mode,
                           "owner": owner, "group": group}
    if nodes is not None:
        table = nodes(table)
    for path in table:
        _w(root, path, "")
    _w(root, "/.vgpu-sandbox/devnodes.json", json.dumps({"nodes": table}))
    _w(root, "/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon\n"
                              "flags\t\t: fpu sse4_2 avx f16c fma bmi2 avx2 hypervisor\n\n"
                              "processor\t: 1\nflags\t\t: fpu sse4_2 avx\n")
    return root


@pytest.fixture
def vm(tmp_path):
    return build_h200_vm(tmp_path / "vm")


def _errors(facts):
    return [f for f in facts.findings if f.severity == "error"]


def test_h200_vm_is_reported_like_the_real_listing(vm):
    facts = device.collect(Host(str(vm)))
    assert [d.slot for d in facts.pci] == [f"0000:00:0{i}.0" for i in range(7)]
    gpu, = facts.gpus
    assert (gpu.slot, gpu.vendor_id, gpu.device_id, gpu.class_code) == ("0000:00:06.0", "10de", "2335", "030200")
    assert (gpu.subsystem_vendor_id, gpu.subsystem_device_id, gpu.driver) == ("10de", "18bf", "nvidia")
    assert gpu.name == "GH100 [H200 SXM 141GB]" and gpu.vendor == "NVIDIA Corporation"  # built-in excerpt
    assert gpu.numa_node is None and gpu.iommu_group is None  # numa=-1, no IOMMU in that VM
    assert facts.pci_ids is None
    assert facts.driver.version == "580.159.04" and facts.driver.module_type == "open"
    g, = facts.driver.gpus
    assert (g.model, g.uuid, g.minor, g.bus_location) == (
        "NVIDIA H200", "GPU-96453395-928a-3b05-6381-46be0041de7d", 0, "0000:00:06.0")
    loaded = {m.name for m in facts.modules if m.loaded}
    assert {"nvidia", "nvidia_uvm"} <= loaded and "nouveau" not in loaded
    assert _errors(facts) == []


def test_device_nodes_and_service_user_access(vm):
    facts = device.collect(Host(str(vm)))
    nodes = {n.path: n for n in facts.nodes}
    assert list(nodes)[:4] == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0"]
    n = nodes["/dev/nvidia0"]
    assert (n.char_device, n.major, n.minor, n.mode, n.source) == (True, 195, 0, "0666", "devnodes.json")
    assert nodes["/dev/nvidiactl"].minor == 255 and nodes["/dev/nvidia-uvm"].major == 238
    assert n.service_user_access is True
    cap1 = nodes["/dev/nvidia-caps/nvidia-cap1"]
    assert cap1.mode == "0400" and cap1.service_user_access is False and not cap1.required
    assert facts.service_user.uid == 998 and "video" in facts.service_user.groups


def test_nodes_root_only_are_an_error_for_the_service_user(tmp_path):
    def restrict(t):
        for info in t.values():
            info["mode"] = "0660"
        return t
    facts = device.collect(Host(str(build_h200_vm(tmp_path / "vm", nodes=restrict))))
    bad = [f for f in _errors(facts) if f.category == "device-nodes-missing"]
    # one finding for one cause, naming every node the service user cannot open
    assert len(bad) == 1 and bad[0].title.startswith("User ollama cannot open ")
    assert "/dev/nvidia0" in bad[0].title and "/dev/nvidiactl" in bad[0].title
    assert bad[0].fix.args["command"].startswith("chmod 0666 ") and "/dev/nvidia0" in bad[0].fix.args["command"]


def test_group_membership_grants_access(tmp_path):
    def video(t):
        for info in t.values():
            info.update(mode="0660", group="video")
        return t
    facts = device.collect(Host(str(build_h200_vm(tmp_path / "vm", nodes=video))))
    assert {n.path: n.service_user_access for n in facts.nodes}["/dev/nvidia0"] is True
    assert not [f for f in facts.findings if f.category == "device-nodes-missing"]


def test_missing_nodes_and_uvm(tmp_path):
    facts = device.collect(Host(str(build_h200_vm(
        tmp_path / "vm", nodes=lambda t: {k: v for k, v in t.items() if "uvm" not in k}, uvm=False))))
    ids = {f.id for f in facts.findings}
    assert "nvidia-nodes-missing" in ids and "nvidia-uvm-not-loaded" in ids
    missing = next(f for f in facts.findings if f.id == "nvidia-nodes-missing")
    assert missing.title == "/dev/nvidia-uvm is missing"
    uvm = {n.path: n for n in facts.nodes}["/dev/nvidia-uvm"]
    assert not uvm.exists and uvm.required


def test_regular_file_without_description_is_not_a_device(tmp_path):
    root = build_h200_vm(tmp_path / "vm")
    data = json.loads((root / ".vgpu-sandbox/devnodes.json").read_text())
    del data["nodes"]["/dev/nvidia0"]
    (root / ".vgpu-sandbox/devnodes.json").write_text(json.dumps(data))
    facts = device.collect(Host(str(root)))
    f = next(f for f in facts.findings if f.id == "nvidia-nodes-not-char")
    assert f.severity == "error" and "(regular file)" in f.evidence[0]


def test_no_gpu_suggests_declaring_a_stub(tmp_path):
    stub = "0000:00:07.0 v=0x1234 d=0x5678 c=0x030000 sv=0x1234 sd=0x0001 drv= iommu= numa=-1"
    root = build_h200_vm(tmp_path / "vm", drop=("0000:00:06.0",), extra_pci=(stub,))
    facts = device.collect(Host(str(root)))
    f = next(f for f in facts.findings if f.category == "no-device")
    assert f.severity == "error" and "--gpu 1234:5678" in f.detail
    declared = device.collect(Host(str(root)), gpu_ids=["0x1234:0x5678"])
    assert [d.slot for d in declared.gpus] == ["0000:00:07.0"] and declared.gpus[0].declared
    assert not [f for f in declared.findings if f.category == "no-device"]


def test_config_file_declares_the_stub(tmp_path):
    stub = "0000:00:07.0 v=0x1234 d=0x5678 c=0x030000 sv=0x1234 sd=0x0001 drv=vgpu_stub iommu=7 numa=0"
    root = build_h200_vm(tmp_path / "vm", drop=("0000:00:06.0",), extra_pci=(stub,))
    _w(root, "/etc/vgpu-tui.conf", json.dumps({"gpu": "1234:5678", "device_nodes": ["/dev/vgpu0"]}))
    facts = device.collect(Host(str(root)))
    gpu, = facts.gpus
    assert gpu.declared and gpu.driver == "vgpu_stub" and gpu.iommu_group == "7" and gpu.numa_node == 0
    assert facts.config == "/etc/vgpu-tui.conf"
    vgpu0 = {n.path: n for n in facts.nodes}["/dev/vgpu0"]
    assert vgpu0.kind == "declared" and not vgpu0.exists
    _w(root, "/etc/vgpu-tui.conf", "{not json")
    facts = device.collect(Host(str(root)))
    assert any("not valid JSON" in n for n in facts.notes) and facts.gpus == ()


def test_bad_gpu_id_is_a_usage_error():
    with pytest.raises(ToolError):
        device.parse_gpu_id("nvidia")
    assert device.parse_gpu_id("10DE:2335") == "10de:2335"


def test_pci_ids_of_the_root_name_the_devices(vm):
    _w(vm, "/usr/share/hwdata/pci.ids",
       "# test excerpt\n10de  NVIDIA Corporation\n\t2335  GH100 [H200 SXM 141GB]\n"
       "\t\t10de 18bf  H200 141GB HBM3e\n1af4  Red Hat, Inc.\n\t1041  Virtio 1.0 network device\n"
       "C 03  Display controller\n\t02  3D controller\n")
    facts = device.collect(Host(str(vm)))
    gpu, = facts.gpus
    assert facts.pci_ids == "/usr/share/hwdata/pci.ids"
    assert gpu.subsystem_name == "H200 141GB HBM3e" and gpu.class_name == "3D controller"


def test_cpu_vector_extensions_and_ollama_gate(vm):
    from probes import cpu
    facts = device.collect(Host(str(vm)))
    assert facts.cpu.avx2 and facts.cpu.ggml_cpu_variants[0] == "haswell" and facts.cpu.count == 2
    old = cpu.parse_cpuinfo("processor : 0\nflags : fpu sse4_2\n")
    assert old.avx is False and old.ggml_cpu_variants[0] == "sse42"
    assert cpu.findings(old)[0].category == "cpu-lacks-avx"
    assert cpu.gpu_gate((0, 5, 1)) and cpu.gpu_gate((0, 1, 23)) and cpu.gpu_gate((0, 5, 2)) is None


def test_this_machine_matches_sysfs():
    """The real thing: every PCI device of this machine, with the IDs sysfs gives."""
    base = Path("/sys/bus/pci/devices")
    if not base.is_dir():
        pytest.skip("no sysfs here")
    facts = device.collect(Host.local())
    assert [d.slot for d in facts.pci] == sorted(os.listdir(base))
    for d in facts.pci:
        assert "0x" + d.vendor_id == (base / d.slot / "vendor").read_text().strip()
        assert "0x" + d.class_code == (base / d.slot / "class").read_text().strip()
    flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    assert facts.cpu.avx == (" avx " in flags + " ")


def test_device_command_json_and_text(vm):
    out = subprocess.run([sys.executable, "-m", "tui", "device", "--root", str(vm), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"pci", "nodes", "modules", "driver", "findings"}
    gpu = next(d for d in data["pci"] if d["gpu"])
    assert set(gpu) >= {"slot", "vendor_id", "device_id", "class", "subsystem_vendor_id",
                        "subsystem_device_id", "vendor", "name", "driver", "gpu"}
    assert gpu["class"] == "030200"
    assert {"path", "exists", "char_device", "major", "minor", "mode"} <= set(data["nodes"][0])
    assert data["driver"] == to_plain(device.collect(Host(str(vm))).driver)
    text = subprocess.run([sys.executable, "-m", "tui", "device", "--root", str(vm)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "0000:00:06.0  10de:2335" in text.stdout and "580.159.04" in text.stdout
    bad = subprocess.run([sys.executable, "-m", "tui", "device", "--root", str(vm), "--gpu", "zz"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("vgpu-tui: --gpu") and bad.stderr.count("\n") == 1


def test_builtin_names_parse():
    names = pciids.builtin_names()
    assert names.device("10de", "2335").startswith("GH100")
    parsed = pciids.parse_pci_ids("10de  NVIDIA Corporation\n\t2335  GH100\nC 03  Display controller\n")
    assert parsed.vendor("0x10DE") == "NVIDIA Corporation" and parsed.class_name("030200") == "Display controller"
