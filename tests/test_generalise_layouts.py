"""Layouts nobody had tried, each built with the sandbox builder's primitives and judged against
Ollama v0.24.0's own rules (the reference §1, §2.2, §3, §8; the source lines are named per test)
and glibc's loader. Working layouts must give no error finding; broken ones the right category.
"""
import os

import pytest

builder = pytest.importorskip("probes.sandbox.builder", reason="the sandbox builder is not there yet")

from probes import fixes  # noqa: E402
from probes import report as rep  # noqa: E402
from probes.host import Host  # noqa: E402
from probes.sandbox import simulator  # noqa: E402

LIB = "/usr/local/lib/ollama"
CUDA = LIB + "/cuda_v12"
STUB_UUID = "GPU-56475055-5354-5542-0000-000000000001"


def _report(vm, change=None):
    if change is not None:
        change(vm)
    builder.set_running_env(vm)
    simulator.serve(vm.root)
    return rep.build_report(Host(vm.root), rep.ReportOptions(no_probe=True))


def _errors(r):
    return [x for x in r.findings if x.severity == "error"]


def _vm(tmp_path):
    return builder.build_vm(str(tmp_path / "vm"))


def _works(r, folder=CUDA):
    assert not _errors(r), [(x.category, x.title) for x in _errors(r)]
    assert r.verdict.gpu_ready and r.log.library == "cuda"
    row = next(b for b in r.backends if b["dir"] == folder)
    assert row["probed"] and row["would_load"], row


def _broken(r, category):
    errs = _errors(r)
    assert errs, [(x.id, x.severity) for x in r.findings]
    assert errs[0].category == category, [(x.category, x.title) for x in errs]
    assert not r.verdict.gpu_ready
    return errs[0]


# --- working layouts: no error -----------------------------------------------------------------

def test_binary_reached_through_a_symlink_uses_the_real_binary_tree(tmp_path):
    # os.Executable() is readlink(/proc/self/exe): the kernel gives /usr/local/bin/ollama (§1.1)
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: (builder.symlink(vm, "/usr/bin/ollama", "/usr/local/bin/ollama"),
                                   builder.write_unit(vm, "/usr/bin/ollama"))))


def test_symlinked_binary_into_opt_with_its_own_tree_works(tmp_path):
    vm = _vm(tmp_path)

    def move(vm):
        os.makedirs(vm.real("/opt/ollama/bin"))
        os.makedirs(vm.real("/opt/ollama/lib"))
        os.replace(vm.real("/usr/local/bin/ollama"), vm.real("/opt/ollama/bin/ollama"))
        os.replace(vm.real(LIB), vm.real("/opt/ollama/lib/ollama"))
        builder.symlink(vm, "/usr/local/bin/ollama", "/opt/ollama/bin/ollama")
    _works(_report(vm, move), "/opt/ollama/lib/ollama/cuda_v12")


def test_lib_ollama_itself_a_symlink_works(tmp_path):
    # ml/path.go: os.Stat of <exeDir>/../lib/ollama follows links; the link string is kept (§1.2)
    vm = _vm(tmp_path)

    def move(vm):
        os.makedirs(vm.real("/opt/ollama-libs"))
        os.replace(vm.real(LIB), vm.real("/opt/ollama-libs/ollama"))
        builder.symlink(vm, LIB, "/opt/ollama-libs/ollama")
    _works(_report(vm, move))


def test_backend_folder_a_symlink_to_a_folder_elsewhere_works(tmp_path):
    # Go's Glob os.Stat's the directory part: a symlinked subfolder counts (§2.2 step 1)
    vm = _vm(tmp_path)

    def move(vm):
        os.makedirs(vm.real("/srv/gpu"))
        os.replace(vm.real(CUDA), vm.real("/srv/gpu/cuda_v12"))
        builder.symlink(vm, CUDA, "/srv/gpu/cuda_v12")
    _works(_report(vm, move))


def _shim_off_cache(vm):
    builder.remove(vm, "/etc/ld.so.conf.d/vgpu.conf")
    builder.rebuild_ld_cache(vm)


def test_shim_found_through_ld_library_path_of_a_dropin(tmp_path):
    # the runner's LD_LIBRARY_PATH = dirs + the inherited value (llm/server.go StartRunner, §2.2)
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: (_shim_off_cache(vm),
                                   builder.write_dropin(vm, "10-shim.conf", {"LD_LIBRARY_PATH": "/opt/vgpu/lib"}))))


def test_shim_found_through_an_environment_file(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        _shim_off_cache(vm)
        builder.write_file(vm, "/etc/default/ollama", "LD_LIBRARY_PATH=/opt/vgpu/lib\n")
        builder.write_file(vm, vm.dropin_dir + "/20-envfile.conf", "[Service]\nEnvironmentFile=/etc/default/ollama\n")
    _works(_report(vm, change))


def test_libcuda_link_inside_the_backend_folder_works(tmp_path):
    # cuda_v12 is on the runner's LD_LIBRARY_PATH, searched before the cache
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: (_shim_off_cache(vm),
                                   builder.symlink(vm, CUDA + "/libcuda.so.1", "/opt/vgpu/lib/libcuda.so.1"))))


def test_cuda_v12_and_a_broken_cuda_v13_one_works(tmp_path):
    # each libDir is probed by its own runner; devices from any of them count (§2.2 steps 4, 11)
    vm = _vm(tmp_path)
    r = _report(vm, lambda vm: builder.add_library(vm, "libggml-cuda.so", LIB + "/cuda_v13/libggml-cuda.so"))
    _works(r)
    v13 = next(b for b in r.backends if b["dir"] == LIB + "/cuda_v13")
    assert v13["probed"] and not v13["would_load"] and "libcudart.so.12" in v13["reason"]


def test_a_folder_named_cuda_works(tmp_path):
    # the name matters only for filters in 0.24 (§8 #2; corpus README: cuda/ works like cuda_v13/)
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: os.replace(vm.real(CUDA), vm.real(LIB + "/cuda"))), LIB + "/cuda")


def test_llm_library_naming_the_backend_folder_works(tmp_path):
    # discover/runner.go: skip only when OLLAMA_LLM_LIBRARY != filepath.Base(dir)
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: builder.write_dropin(vm, "o.conf", {"OLLAMA_LLM_LIBRARY": "cuda_v12"})))


def test_llm_library_matching_a_symlinked_folder_name_skips_the_real_one(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        os.replace(vm.real(CUDA), vm.real(LIB + "/real12"))
        builder.symlink(vm, CUDA, "real12")
        builder.write_dropin(vm, "o.conf", {"OLLAMA_LLM_LIBRARY": "cuda_v12"})
    r = _report(vm, change)
    _works(r)
    real = next(b for b in r.backends if b["dir"] == LIB + "/real12")
    assert not real["probed"] and "does not match" in real["reason"]


@pytest.mark.parametrize("value", ["0", "0,1", STUB_UUID, STUB_UUID[:12]])
def test_visible_devices_naming_the_gpu_works(tmp_path, value):
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: builder.write_dropin(vm, "o.conf", {"CUDA_VISIBLE_DEVICES": value})))


def test_junk_files_in_lib_ollama_are_harmless(tmp_path):
    # ggml: variants need prefix libggml-cuda- and extension exactly .so; the base name is exact
    vm = _vm(tmp_path)

    def change(vm):
        builder.write_file(vm, LIB + "/README", "notes\n")
        builder.write_file(vm, LIB + "/libggml-cuda.so.bak", "junk")
        builder.add_library(vm, "libggml-cuda.so", CUDA + "/libggml-cuda.so.bak")
        builder.add_library(vm, "libggml-cuda.so", CUDA + "/libggml-cuda-extra.so")  # no score: skipped
    _works(_report(vm, change))


def test_a_vulkan_folder_without_ollama_vulkan_is_skipped_quietly(tmp_path):
    vm = _vm(tmp_path)
    r = _report(vm, lambda vm: builder.write_file(vm, LIB + "/vulkan/libggml-vulkan.so", "not an ELF"))
    _works(r)
    vk = next(b for b in r.backends if b["dir"] == LIB + "/vulkan")
    assert not vk["probed"] and "OLLAMA_VULKAN" in vk["reason"]


def test_an_existing_preload_library_is_harmless(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        src = next(n for n in os.listdir(vm.real("/lib/x86_64-linux-gnu")) if n.startswith("libm.so"))
        builder.symlink(vm, "/opt/hook/libm-hook.so", "/lib/x86_64-linux-gnu/" + src)
        builder.write_file(vm, "/etc/ld.so.preload", "/opt/hook/libm-hook.so\n")
    _works(_report(vm, change))


def test_dropins_override_each_other_in_name_order(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.write_dropin(vm, "10-a.conf", {"CUDA_VISIBLE_DEVICES": "-1"})
        builder.write_dropin(vm, "20-b.conf", {"CUDA_VISIBLE_DEVICES": "0"})
    _works(_report(vm, change))


def test_unset_environment_and_an_empty_environment_line_clear_a_bad_value(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.write_dropin(vm, "10-a.conf", {"CUDA_VISIBLE_DEVICES": "-1", "OLLAMA_LLM_LIBRARY": "cuda"})
        builder.write_file(vm, vm.dropin_dir + "/20-unset.conf", "[Service]\nUnsetEnvironment=CUDA_VISIBLE_DEVICES\n")
        builder.write_file(vm, vm.dropin_dir + "/30-reset.conf", "[Service]\nEnvironment=\n")
    _works(_report(vm, change))


def test_a_same_name_dropin_in_etc_masks_the_vendor_one(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.write_file(vm, "/usr/lib/systemd/system/ollama.service.d/50-gpu.conf",
                           '[Service]\nEnvironment="CUDA_VISIBLE_DEVICES=-1"\n')
        builder.write_file(vm, vm.dropin_dir + "/50-gpu.conf", '[Service]\nEnvironment="OLLAMA_DEBUG=1"\n')
    _works(_report(vm, change))


def test_a_user_ollama_library_path_is_ignored_but_said(tmp_path):
    # 0.24 replaces OLLAMA_LIBRARY_PATH for every runner (corpus case f_library_path_somedir)
    vm = _vm(tmp_path)
    r = _report(vm, lambda vm: builder.write_dropin(vm, "o.conf", {"OLLAMA_LIBRARY_PATH": "/opt/extra"}))
    _works(r)
    assert any("OLLAMA_LIBRARY_PATH" in x.title for x in r.findings if x.severity != "error")


# --- broken layouts: the right category -------------------------------------------------------

@pytest.mark.parametrize("mode", [0o700, 0o711])
def test_backend_folder_the_service_user_cannot_list(tmp_path, mode):
    # Go's filepath.Glob ignores an os.Open error: the folder is no libDir; ggml's
    # directory_iterator skips it too (skip_permission_denied). The runner runs as User=ollama.
    vm = _vm(tmp_path)
    first = _broken(_report(vm, lambda vm: os.chmod(vm.real(CUDA), mode)), "backend-lib-missing")
    assert CUDA in first.title and "chmod a+rx " + CUDA in first.fix.args["steps"][0]
    row = next(b for b in _report(vm).backends if b["dir"] == CUDA)
    assert not row["probed"] and "cannot open this folder" in row["reason"]
    os.chmod(vm.real(CUDA), 0o755)  # the fix, by hand
    _works(_report(vm))


def test_backend_folder_linked_into_a_private_home(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        os.makedirs(vm.real("/root/gpu"))
        os.replace(vm.real(CUDA), vm.real("/root/gpu/cuda_v12"))
        builder.symlink(vm, CUDA, "/root/gpu/cuda_v12")
        os.chmod(vm.real("/root"), 0o700)
    first = _broken(_report(vm, change), "backend-lib-missing")
    assert "chmod a+rx /root" == first.fix.args["steps"][0]


def test_backend_library_not_readable_by_the_service_user(tmp_path):
    vm = _vm(tmp_path)
    first = _broken(_report(vm, lambda vm: os.chmod(vm.real(CUDA + "/libggml-cuda.so"), 0o600)),
                    "backend-lib-missing")
    assert "Permission denied" in first.title
    assert first.fix.args["steps"][0] == f"chmod a+r {CUDA}/libggml-cuda.so"


def test_shim_folder_not_searchable_by_the_service_user(tmp_path):
    vm = _vm(tmp_path)
    first = _broken(_report(vm, lambda vm: os.chmod(vm.real("/opt/vgpu"), 0o700)), "driver-lib-not-found")
    assert first.fix.kind == "manual" and first.fix.args["steps"][0] == "chmod a+rx /opt/vgpu"
    os.chmod(vm.real("/opt/vgpu"), 0o755)
    _works(_report(vm))


def test_cublaslt_a_dangling_symlink(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.remove(vm, CUDA + "/libcublasLt.so.12")
        builder.symlink(vm, CUDA + "/libcublasLt.so.12", "libcublasLt.so.12.9.9")
    first = _broken(_report(vm, change), "backend-lib-missing")
    assert "libcublasLt.so.12" in first.title


def test_cudart_of_the_wrong_class(tmp_path):
    # glibc skips a wrong-class candidate on the search path and finds no other
    vm = _vm(tmp_path)

    def change(vm):
        real = os.path.realpath(vm.real(CUDA + "/libcudart.so.12"))
        builder.remove(vm, CUDA + "/" + os.path.basename(real))
        builder.add_library(vm, "libcuda-32bit.so.1", CUDA + "/" + os.path.basename(real))
    first = _broken(_report(vm, change), "backend-lib-missing")
    assert "libcudart.so.12" in first.title


def test_shim_link_in_a_loop(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.remove(vm, "/opt/vgpu/lib/libcuda.so.1")
        builder.symlink(vm, "/opt/vgpu/lib/libcuda.so.1", "libcuda.so.1")
        builder.rebuild_ld_cache(vm)
    _broken(_report(vm, change), "driver-lib-not-found")


def test_ld_library_path_shadows_the_good_shim_with_a_broken_one(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.add_library(vm, "libcuda-no-memcreate.so.1", "/opt/old-vgpu/libcuda.so.1")
        builder.write_dropin(vm, "10-ld.conf", {"LD_LIBRARY_PATH": "/opt/old-vgpu"})
    first = _broken(_report(vm, change), "shim-incomplete")
    assert "/opt/old-vgpu/libcuda.so.1" in first.title and "cuMemCreate" in first.title
    host = Host(vm.root)
    fixes.apply(host, fixes.plan(host, first.fix))  # a link in lib/ollama comes first on the path
    _works(_report(vm))


def test_preload_naming_a_missing_library(tmp_path):
    vm = _vm(tmp_path)
    _broken(_report(vm, lambda vm: builder.write_file(vm, "/etc/ld.so.preload", "/opt/vgpu/lib/nope.so\n")),
            "preload-broken")


def test_two_trees_where_the_binary_tree_lacks_the_backend(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.install_ollama(vm, "/usr")
        builder.remove(vm, "/usr/lib/ollama/cuda_v12")
        builder.write_unit(vm, "/usr/bin/ollama")
    _broken(_report(vm, change), "lib-dir-not-found")


def test_symlinked_binary_whose_real_tree_lacks_the_backend(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        os.makedirs(vm.real("/opt/ollama/bin"))
        os.replace(vm.real("/usr/local/bin/ollama"), vm.real("/opt/ollama/bin/ollama"))
        builder.install_ollama(vm, "/opt/ollama")
        builder.remove(vm, "/opt/ollama/lib/ollama/cuda_v12")
        builder.symlink(vm, "/usr/local/bin/ollama", "/opt/ollama/bin/ollama")
    _broken(_report(vm, change), "lib-dir-not-found")


@pytest.mark.parametrize("value", ["", "1,0", "GPU-8c4b7a1e-2f3d-4e5a-9b6c-1d2e3f4a5b6c"])
def test_visible_devices_that_name_no_gpu(tmp_path, value):
    # the driver reads the list in order and stops at the first entry naming no device
    vm = _vm(tmp_path)
    first = _broken(_report(vm, lambda vm: builder.write_dropin(vm, "o.conf", {"CUDA_VISIBLE_DEVICES": value})),
                    "visible-devices-env")
    assert first.fix.kind == "unset"
    host = Host(vm.root)
    fixes.apply(host, fixes.plan(host, first.fix))
    _works(_report(vm))


def test_dropins_override_each_other_the_last_one_breaks(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        builder.write_dropin(vm, "10-a.conf", {"OLLAMA_LLM_LIBRARY": "cuda_v12"})
        builder.write_dropin(vm, "20-b.conf", {"OLLAMA_LLM_LIBRARY": "cuda"})
    first = _broken(_report(vm, change), "wrong-library-override")
    assert "OLLAMA_LLM_LIBRARY=cuda " in first.title


def test_libggml_base_missing(tmp_path):
    vm = _vm(tmp_path)

    def change(vm):
        for n in os.listdir(vm.real(LIB)):
            if n.startswith("libggml-base"):
                builder.remove(vm, LIB + "/" + n)
    first = _broken(_report(vm, change), "backend-lib-missing")
    assert "libggml-base" in first.title


@pytest.mark.parametrize("folder", [CUDA, LIB])
def test_a_symlink_loop_in_a_scanned_folder_aborts_the_runner(tmp_path, folder):
    # ggml-backend-reg.cpp ggml_backend_load_best calls entry.is_regular_file() on every entry;
    # libstdc++ stats a symlink and throws filesystem_error on ELOOP; nothing catches it (checked
    # with g++ here: "terminate called after throwing ... Too many levels of symbolic links").
    vm = _vm(tmp_path)
    r = _report(vm, lambda vm: builder.symlink(vm, folder + "/libcuda.so.1", "libcuda.so.1"))
    first = _broken(r, "runner-crash")
    assert folder + "/libcuda.so.1" in first.title
    row = next(b for b in r.backends if b["dir"] == CUDA)
    assert row["probed"] and not row["would_load"] and "aborts" in row["reason"]
    host = Host(vm.root)
    fixes.apply(host, fixes.plan(host, first.fix))
    _works(_report(vm))


def test_a_dangling_extra_link_in_lib_ollama_is_harmless(tmp_path):
    # a dangling link stats to "not found": is_regular_file() is false, no throw
    vm = _vm(tmp_path)
    _works(_report(vm, lambda vm: builder.symlink(vm, LIB + "/libcuda.so.1", "/nowhere/libcuda.so.1")))


def _top_level_only_vm(tmp_path):
    return builder.build_vm(str(tmp_path / "vm"), faults=("ggml-cuda-top-level-only",))


def test_top_level_backend_works_when_a_stray_ggml_name_makes_cuda_v12_a_libdir(tmp_path):
    # the glob needs only "ggml-" in a name: cuda_v12 is probed, so it is on LD_LIBRARY_PATH and
    # the top-level libggml-cuda.so (base-name fallback in lib/ollama) finds its cudart there
    vm = _top_level_only_vm(tmp_path)
    _works(_report(vm, lambda vm: builder.write_file(vm, CUDA + "/libggml-cuda.so.bak", "junk")), LIB)


def test_top_level_backend_works_when_its_runtime_folder_is_in_the_cache(tmp_path):
    vm = _top_level_only_vm(tmp_path)
    _works(_report(vm, lambda vm: (builder.write_file(vm, "/etc/ld.so.conf.d/ollama.conf", CUDA + "\n"),
                                   builder.rebuild_ld_cache(vm))), LIB)
