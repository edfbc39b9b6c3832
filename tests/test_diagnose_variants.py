"""Broken VMs built here by hand with the builder's primitives, not its named faults: other
folders, other names, other backend versions. The rules read facts, so they must name each
situation and give a fix that works just the same (the hidden VMs are built independently).
"""
import os
from pathlib import Path

import pytest

builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not there yet")

from probes import fixes  # noqa: E402
from probes.sandbox import simulator  # noqa: E402
from probes import report as rep  # noqa: E402
from probes.host import Host  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _serve(root):
    # the simulator's own entry point, in-process (test_report_cli runs it as a command)
    simulator.serve(root)


def _report(root):
    return rep.build_report(Host(root), rep.ReportOptions(no_probe=True))


def _first_error(report):
    errs = [x for x in report.findings if x.severity == "error"]
    assert errs, [(x.id, x.severity) for x in report.findings]
    return errs[0]


def _fix_and_see_gpu(root, finding):
    host = Host(root)
    fixes.apply(host, fixes.plan(host, finding.fix))
    _serve(root)
    after = _report(root)
    assert not [x for x in after.findings if x.severity == "error"], [x.title for x in after.findings]
    assert after.verdict.gpu_ready and after.log.library == "cuda"


def _vm(tmp_path):
    return builder.build_vm(str(tmp_path / "vm"))


def test_a_shim_in_another_folder_off_every_path_is_linked_from_there(tmp_path):
    vm = _vm(tmp_path)
    os.makedirs(vm.real("/usr/local/vgpu/lib64"))
    for name in ("libcuda.so.1", "libnvidia-ml.so.1"):
        os.replace(vm.real(f"/opt/vgpu/lib/{name}"), vm.real(f"/usr/local/vgpu/lib64/{name}"))
    builder.remove(vm, "/etc/ld.so.conf.d/vgpu.conf")
    builder.rebuild_ld_cache(vm)
    _serve(vm.root)
    first = _first_error(_report(vm.root))
    assert first.category == "driver-lib-not-found"
    assert first.fix.kind == "symlink" and first.fix.args["target"] == "/usr/local/vgpu/lib64/libcuda.so.1"
    _fix_and_see_gpu(vm.root, first)


def test_a_cuda_v13_folder_missing_cublas_takes_the_copy_the_system_has(tmp_path):
    vm = _vm(tmp_path)
    lib = vm.lib_dir
    os.replace(vm.real(vm.backend_dir), vm.real(lib + "/cuda_v13"))
    os.makedirs(vm.real("/usr/local/cuda/lib64"), exist_ok=True)  # a CUDA toolkit, not in ld.so.conf
    for name in os.listdir(vm.real(lib + "/cuda_v13")):
        if name.startswith("libcublas.so"):
            os.replace(vm.real(f"{lib}/cuda_v13/{name}"), vm.real(f"/usr/local/cuda/lib64/{name}"))
    _serve(vm.root)
    first = _first_error(_report(vm.root))
    assert first.category == "backend-lib-missing" and "libcublas.so.12" in first.title
    assert first.fix.kind == "symlink" and first.fix.args["link"] == lib + "/cuda_v13/libcublas.so.12"
    _fix_and_see_gpu(vm.root, first)


def test_a_copied_binary_without_a_twin_gets_its_own_lib_dir_linked_to_the_prepared_tree(tmp_path):
    vm = _vm(tmp_path)
    builder.add_library(vm, "ollama", "/usr/bin/ollama")
    builder.remove(vm, "/usr/local/bin/ollama")  # only the operator's lib tree is left there
    builder.write_unit(vm, "/usr/bin/ollama")
    builder.set_running_env(vm)
    _serve(vm.root)
    first = _first_error(_report(vm.root))
    assert first.category == "lib-dir-not-found"
    assert first.fix.kind == "symlink" and first.fix.args == {"link": "/usr/lib/ollama", "target": "/usr/local/lib/ollama"}
    _fix_and_see_gpu(vm.root, first)


def test_a_library_override_naming_the_old_folder_is_unset(tmp_path):
    vm = _vm(tmp_path)
    os.replace(vm.real(vm.backend_dir), vm.real(vm.lib_dir + "/cuda_v13"))
    builder.write_dropin(vm, "20-gpu.conf", {"OLLAMA_LLM_LIBRARY": "cuda_v12"})
    builder.set_running_env(vm)
    _serve(vm.root)
    first = _first_error(_report(vm.root))
    assert first.category == "wrong-library-override" and "cuda_v12" in first.title
    assert first.fix.kind == "unset"
    _fix_and_see_gpu(vm.root, first)


def test_ld_preload_in_the_service_environment_naming_nothing(tmp_path):
    vm = _vm(tmp_path)
    builder.write_dropin(vm, "30-intercept.conf", {"LD_PRELOAD": "/opt/hami/libvgpu.so"})
    builder.set_running_env(vm)
    _serve(vm.root)
    report = _report(vm.root)
    found = [x for x in report.findings if x.category == "preload-broken"]
    assert found and found[0].fix is not None and found[0].fix.kind == "unset"
    assert found[0].fix.args == {"name": "LD_PRELOAD"}


# -- what only a GPU can say: a fake load-probe result (no GPU here), on a real sandbox's facts --
def _fake_gpu_probe(compute, total):
    from probes import loadprobe as lp
    dev = lp.CudaDevice(0, "FAKE-GPU", compute, "GPU-00000000-0000-0000-0000-000000000000", total)
    cuda = lp.LibcudaResult("/opt/vgpu/lib/libcuda.so.1", True, None, 0, 13000, 1, (dev,))
    nvml = lp.NvmlResult("/opt/vgpu/lib/libnvidia-ml.so.1", True, None, 0, 1, "580.159.04")
    return lp.ProbeResult(cuda, nvml, (), False, None, False, ())


@pytest.mark.parametrize("compute,total,category", [("3.5", 80 << 30, "unsupported-compute"),
                                                    ("9.0", 0, "oom-or-vram")])
def test_what_the_driver_reports_about_the_device_is_judged(tmp_path, compute, total, category):
    import dataclasses
    from probes import diagnose
    vm = _vm(tmp_path)
    facts = _report(vm.root).facts
    found = diagnose.diagnose(dataclasses.replace(facts, probe=_fake_gpu_probe(compute, total)))
    errs = [x for x in found if x.severity == "error"]
    assert errs and errs[0].category == category and "FAKE-GPU" in errs[0].title
    assert not [x for x in diagnose.diagnose(dataclasses.replace(facts, probe=_fake_gpu_probe("9.0", 80 << 30)))
                if x.severity == "error"]


def test_a_library_override_choosing_the_broken_folder_over_a_working_one(tmp_path):
    import shutil
    vm = _vm(tmp_path)
    broken = vm.lib_dir + "/cuda_v13"
    shutil.copytree(vm.real(vm.backend_dir), vm.real(broken), symlinks=True)
    for name in os.listdir(vm.real(broken)):
        if name.startswith("libcudart.so"):
            os.unlink(vm.real(f"{broken}/{name}"))
    builder.write_dropin(vm, "20-gpu.conf", {"OLLAMA_LLM_LIBRARY": "cuda_v13"})
    builder.set_running_env(vm)
    _serve(vm.root)
    report = _report(vm.root)
    first = _first_error(report)
    assert first.category in ("wrong-library-override", "backend-lib-missing")
    ids = [x.id for x in report.findings]
    assert "llm-library-wrong-folder" in ids, ids
    override = next(x for x in report.findings if x.id == "llm-library-wrong-folder")
    assert "cuda_v12" in override.title and override.fix.kind == "unset"
    _fix_and_see_gpu(vm.root, override)
