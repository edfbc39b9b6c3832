"""More layouts nobody had tried: where the binary really is, what systemd really applies, and
where glibc's loader really looks. Truth from Ollama v0.24.0 (ml/path.go, ggml.go OnceLoad),
systemd's unit rules and glibc's search order; each test names the line that decides it.
"""
import os

import pytest

builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not there yet")

from probes import fixes  # noqa: E402
from probes.host import Host  # noqa: E402
from tests.test_generalise_layouts import _errors, _report  # noqa: E402 - the same VM runner

LIB = "/usr/local/lib/ollama"
CUDA = LIB + "/cuda_v12"


def _works(r):
    assert not _errors(r), [(x.category, x.title) for x in _errors(r)]
    assert r.verdict.gpu_ready and r.log.library == "cuda"


def _broken(r, category):
    errs = _errors(r)
    assert errs and errs[0].category == category, [(x.category, x.title) for x in errs]
    assert not r.verdict.gpu_ready and r.log.library == "cpu"
    return errs[0]


def _apply(vm, finding):
    host = Host(vm.root)
    fixes.apply(host, fixes.plan(host, finding.fix))


@pytest.fixture
def vm(tmp_path):
    return builder.build_vm(str(tmp_path / "vm"))


def _shim_off_cache(vm):
    builder.remove(vm, "/etc/ld.so.conf.d/vgpu.conf")
    builder.rebuild_ld_cache(vm)


def _move_shim(vm, folder):
    os.makedirs(vm.real(folder), exist_ok=True)
    for name in ("libcuda.so.1", "libnvidia-ml.so.1"):
        os.replace(vm.real("/opt/vgpu/lib/" + name), vm.real(f"{folder}/{name}"))


# --- where the binary is ------------------------------------------------------------------------

def test_binary_folder_with_backend_subfolders_but_no_lib_ollama(vm):
    # ml/path.go: no <exeDir>/../lib/ollama -> LibOllamaPath = <exeDir>; the glob finds
    # <exeDir>/cuda_v12, but ggml.go OnceLoad skips an entry that is not <exeDir> and has no
    # "lib/ollama" in it ("skipping path which is not part of ollama"): CPU.
    def change(vm):
        os.makedirs(vm.real("/opt/ollama"))
        os.replace(vm.real("/usr/local/bin/ollama"), vm.real("/opt/ollama/ollama"))
        for name in os.listdir(vm.real(LIB)):
            os.replace(vm.real(f"{LIB}/{name}"), vm.real(f"/opt/ollama/{name}"))
        builder.write_unit(vm, "/opt/ollama/ollama")
    r = _report(vm, change)
    first = _broken(r, "lib-dir-not-found")
    assert "/opt/lib/ollama" in first.title
    row = next(b for b in r.backends if b["dir"] == "/opt/ollama/cuda_v12")
    assert row["probed"] and not row["would_load"] and "not part of ollama" in row["reason"]
    assert first.fix.args["steps"][0] == "mkdir -p /opt/lib && ln -s /opt/ollama /opt/lib/ollama"
    os.makedirs(vm.real("/opt/lib"))
    os.symlink("/opt/ollama", vm.real("/opt/lib/ollama"))  # the fix, by hand
    _works(_report(vm))


def test_hard_link_in_usr_bin_reads_usr_lib_ollama(vm):
    # a hard link is not resolved back: /proc/self/exe is the path it was started by (§1.1)
    def change(vm):
        os.makedirs(vm.real("/usr/bin"), exist_ok=True)
        os.link(vm.real("/usr/local/bin/ollama"), vm.real("/usr/bin/ollama"))
        builder.write_unit(vm, "/usr/bin/ollama")
    _broken(_report(vm, change), "lib-dir-not-found")


def test_usr_local_bin_link_to_a_binary_in_usr_bin(vm):
    # the kernel resolves the link: exeDir is /usr/bin, so /usr/lib/ollama (missing) is used
    def change(vm):
        os.makedirs(vm.real("/usr/bin"), exist_ok=True)
        os.replace(vm.real("/usr/local/bin/ollama"), vm.real("/usr/bin/ollama"))
        builder.symlink(vm, "/usr/local/bin/ollama", "/usr/bin/ollama")
    first = _broken(_report(vm, change), "lib-dir-not-found")
    _apply(vm, first)
    _works(_report(vm))


# --- what systemd applies -----------------------------------------------------------------------

def test_env_wrapper_in_exec_start_sets_the_variable(vm):
    # ExecStart=/usr/bin/env NAME=VALUE /usr/local/bin/ollama serve: env sets it, then execs ollama
    def change(vm):
        text = builder.unit_text().replace(
            "ExecStart=/usr/local/bin/ollama serve",
            "ExecStart=/usr/bin/env OLLAMA_LLM_LIBRARY=cuda /usr/local/bin/ollama serve")
        builder.write_file(vm, vm.unit, text)
    r = _report(vm, change)
    first = _broken(r, "wrong-library-override")
    assert r.ollama["binary"] == "/usr/local/bin/ollama"
    assert first.fix.kind == "manual" and "ExecStart=" in first.fix.args["steps"][0]


def test_env_wrapper_setting_the_shim_path_works(vm):
    def change(vm):
        _shim_off_cache(vm)
        text = builder.unit_text().replace(
            "ExecStart=/usr/local/bin/ollama serve",
            "ExecStart=/usr/bin/env LD_LIBRARY_PATH=/opt/vgpu/lib /usr/local/bin/ollama serve")
        builder.write_file(vm, vm.unit, text)
    _works(_report(vm, change))


def test_unquoted_environment_line_with_two_assignments(vm):
    def change(vm):
        _shim_off_cache(vm)
        builder.write_file(vm, vm.dropin_dir + "/o.conf",
                           "[Service]\nEnvironment=OLLAMA_DEBUG=1 LD_LIBRARY_PATH=/opt/vgpu/lib\n")
    _works(_report(vm, change))


def test_dollar_variable_in_environment_is_not_expanded_and_harmless(vm):
    def change(vm):
        _shim_off_cache(vm)
        builder.write_dropin(vm, "o.conf", {"LD_LIBRARY_PATH": "/opt/vgpu/lib:$LD_LIBRARY_PATH"})
    _works(_report(vm, change))


@pytest.mark.parametrize("name,text", [
    ("override.conf.bak", '[Service]\nEnvironment="LD_LIBRARY_PATH=/opt/vgpu/lib"\n'),  # not *.conf
    ("o.conf", '[Unit]\nEnvironment="LD_LIBRARY_PATH=/opt/vgpu/lib"\n'),  # wrong section
])
def test_a_dropin_systemd_ignores_does_not_give_the_shim(vm, name, text):
    def change(vm):
        _shim_off_cache(vm)
        builder.write_file(vm, f"{vm.dropin_dir}/{name}", text)
    first = _broken(_report(vm, change), "driver-lib-not-found")
    _apply(vm, first)
    _works(_report(vm))


# --- where glibc's loader looks -----------------------------------------------------------------

def test_shim_in_a_default_folder_without_ldconfig_works(vm):
    # glibc searches its system folders after the cache even when the cache lacks the file
    def change(vm):
        _shim_off_cache(vm)
        _move_shim(vm, "/usr/lib/x86_64-linux-gnu")
    _works(_report(vm, change))


@pytest.mark.parametrize("folder,category", [
    ("/usr/local/lib", "driver-lib-not-found"),  # in libc.conf but not a default folder: needs ldconfig
    ("/usr/lib64", "driver-lib-not-found"),      # not a system folder of a Debian-built glibc
])
def test_shim_in_a_folder_only_the_cache_would_give(vm, folder, category):
    def change(vm):
        _shim_off_cache(vm)
        _move_shim(vm, folder)
    first = _broken(_report(vm, change), category)
    _apply(vm, first)
    _works(_report(vm))


def test_shim_file_not_readable_by_the_service_user(vm):
    # ldconfig runs as root and caches it; the runner (User=ollama) gets EACCES from open()
    first = _broken(_report(vm, lambda vm: os.chmod(vm.real("/opt/vgpu/lib/libcuda.so.1"), 0o640)),
                    "driver-lib-not-found")
    assert first.fix.args["steps"][0] == "chmod a+r /opt/vgpu/lib/libcuda.so.1"
    os.chmod(vm.real("/opt/vgpu/lib/libcuda.so.1"), 0o644)
    _works(_report(vm))


def test_a_dropin_that_resets_exec_start_to_another_binary(vm):
    # ExecStart= (empty) clears the list; the drop-in's binary is the one started
    def change(vm):
        builder.add_library(vm, "ollama", "/usr/bin/ollama")
        builder.write_file(vm, vm.dropin_dir + "/exec.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/ollama serve\n")
    r = _report(vm, change)
    _broken(r, "lib-dir-not-found")
    assert r.ollama["binary"] == "/usr/bin/ollama"


def test_a_unit_only_in_the_vendor_folder_works(vm):
    def change(vm):
        os.makedirs(vm.real("/usr/lib/systemd/system"), exist_ok=True)
        os.replace(vm.real(vm.unit), vm.real("/usr/lib/systemd/system/ollama.service"))
    _works(_report(vm, change))


@pytest.mark.parametrize("line", ['Environment=OLLAMA_LLM_LIBRARY="cuda_v12"', 'Environment="OLLAMA_LLM_LIBRARY="'])
def test_llm_library_quoted_or_empty_works(vm, line):
    # envconfig.Var trims spaces, then quotes; an empty value filters nothing
    _works(_report(vm, lambda vm: builder.write_file(vm, vm.dropin_dir + "/o.conf", f"[Service]\n{line}\n")))


def test_vulkan_enabled_with_a_broken_vulkan_folder_still_uses_cuda(vm):
    def change(vm):
        builder.write_file(vm, "/usr/local/lib/ollama/vulkan/libggml-vulkan.so", "not an ELF")
        builder.write_dropin(vm, "o.conf", {"OLLAMA_VULKAN": "1"})
    _works(_report(vm, change))


def test_cublas_from_a_registered_cuda_toolkit_works(vm):
    # corpus README: a missing bundled libcublas is invisible when the loader cache has one
    def change(vm):
        cuda = "/usr/local/lib/ollama/cuda_v12"
        os.makedirs(vm.real("/usr/local/cuda/lib64"))
        for name in os.listdir(vm.real(cuda)):
            if name.startswith("libcublas.so"):
                os.replace(vm.real(f"{cuda}/{name}"), vm.real(f"/usr/local/cuda/lib64/{name}"))
        builder.write_file(vm, "/etc/ld.so.conf.d/cuda.conf", "/usr/local/cuda/lib64\n")
        builder.rebuild_ld_cache(vm)
    _works(_report(vm, change))


@pytest.mark.parametrize("how", ["LD_PRELOAD", "ld.so.preload"])
def test_a_preloaded_shim_satisfies_libcuda_by_soname(vm, how):
    # glibc: a DT_NEEDED whose SONAME matches an object already loaded (a preload) is not searched
    def change(vm):
        _shim_off_cache(vm)
        if how == "LD_PRELOAD":
            builder.write_dropin(vm, "o.conf", {"LD_PRELOAD": "/opt/vgpu/lib/libcuda.so.1"})
        else:
            builder.write_file(vm, "/etc/ld.so.preload", "/opt/vgpu/lib/libcuda.so.1\n")
    _works(_report(vm, change))


def test_a_preloaded_incomplete_shim_shadows_the_good_one(vm):
    def change(vm):
        builder.add_library(vm, "libcuda-no-memcreate.so.1", "/opt/hami/libcuda.so.1")
        builder.write_dropin(vm, "o.conf", {"LD_PRELOAD": "/opt/hami/libcuda.so.1"})
    first = _broken(_report(vm, change), "shim-incomplete")
    assert "cuMemCreate" in first.title


@pytest.mark.parametrize("name,value", [("NVIDIA_VISIBLE_DEVICES", "none"), ("NVIDIA_VISIBLE_DEVICES", "void"),
                                        ("GPU_DEVICE_ORDINAL", "-1"), ("HIP_VISIBLE_DEVICES", "-1")])
def test_visible_device_lookalikes_the_cuda_driver_ignores(vm, name, value):
    # NVIDIA_VISIBLE_DEVICES: container runtime only; GPU_DEVICE_ORDINAL/HIP_*: AMD
    # (Ollama 0.24 envconfig: "Set which AMD devices are visible by numeric ID")
    r = _report(vm, lambda vm: builder.write_dropin(vm, "o.conf", {name: value}))
    _works(r)


def test_a_vendor_dropin_sorted_last_wins_over_an_etc_one(vm):
    # systemd sorts drop-ins of all folders by file name: 90-vendor.conf comes after 10-fix.conf
    def change(vm):
        builder.write_file(vm, "/usr/lib/systemd/system/ollama.service.d/90-vendor.conf",
                           '[Service]\nEnvironment="CUDA_VISIBLE_DEVICES=-1"\n')
        builder.write_dropin(vm, "10-fix.conf", {"CUDA_VISIBLE_DEVICES": "0"})
    first = _broken(_report(vm, change), "visible-devices-env")
    _apply(vm, first)  # UnsetEnvironment= is applied last, whatever the order
    _works(_report(vm))


@pytest.mark.parametrize("path", ["/run/systemd/system/ollama.service.d/20-run.conf",
                                  "/etc/systemd/system/service.d/10-all.conf"])
def test_dropins_in_the_runtime_and_all_services_folders_apply(vm, path):
    first = _broken(_report(vm, lambda vm: builder.write_file(
        vm, path, '[Service]\nEnvironment="OLLAMA_LLM_LIBRARY=cuda"\n')), "wrong-library-override")
    _apply(vm, first)
    _works(_report(vm))
