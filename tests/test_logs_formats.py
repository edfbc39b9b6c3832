"""Formats and messages the corpus does not show, synthesised from the reference's quotes
(../shared/reference/ollama-discovery.md §5): every era, every prefix, broken input."""
from __future__ import annotations

import tracemalloc

from probes.logs import LogParser, classify, parse_lines, parse_text

T = "time=2026-05-20T10:00:00.000Z"
CFG_C = (T + ' level=INFO source=routes.go:1802 msg="server config" env="map[CUDA_VISIBLE_DEVICES:{cvd} '
         'OLLAMA_DEBUG:INFO OLLAMA_LLM_LIBRARY:{llm} OLLAMA_VULKAN:false ROCR_VISIBLE_DEVICES:]"')
LISTEN = T + ' level=INFO source=routes.go:1864 msg="Listening on 127.0.0.1:11434 (version {v})"'
DISC = T + ' level=INFO source=runner.go:67 msg="discovering available GPUs..."'
CPU_IC = (T + ' level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu compute="" name=cpu '
          'description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.3 GiB" available="29.8 GiB"')
GPU_IC = (T + ' level=INFO source=types.go:42 msg="inference compute" id=GPU-6f1e2a3b filter_id="" library=CUDA '
          'compute=8.6 name=CUDA0 description="NVIDIA A10" libdirs=ollama,cuda_v13 driver=13.0 '
          'pci_id=0000:00:05.0 type=discrete total="22.5 GiB" available="22.1 GiB"')
INIT0 = T + ' level=DEBUG source=runner.go:123 msg="evaluating which, if any, devices to filter out" initial_count=0'
BOOT2 = (T + ' level=DEBUG source=runner.go:433 msg="bootstrap discovery took" duration=412ms '
         'OLLAMA_LIBRARY_PATH="[/usr/local/lib/ollama /usr/local/lib/ollama/cuda_v12]" extra_envs=map[]')


def era_c(*middle, cvd="", llm="", version="0.24.0", end=CPU_IC):
    return [CFG_C.format(cvd=cvd, llm=llm), LISTEN.format(v=version), DISC, *middle, end]


def errors(r):
    return [f.category for f in r.findings if f.severity == "error"]


def test_sandbox_journald_short_prefix_and_the_demo_fault():
    lines = [f"Nov 29 19:34:12 vgpu-demo ollama[1234]: {ln}" for ln in era_c(
        T + ' level=DEBUG source=runner.go:98 msg="skipping available library at user\'s request" '
            'requested=cuda libDir=/usr/local/lib/ollama/cuda_v12', INIT0, llm="cuda")]
    r = parse_lines(lines, "sandbox")
    assert (r.ollama_version, r.era, r.library, r.gpu_used, r.gpu_count) == ("0.24.0", "C", "cpu", False, 0)
    assert errors(r) == ["wrong-library-override"]
    assert r.errors[0].evidence[0].startswith("line 1: time=")


def test_short_iso_prefix_ansi_crlf_and_docker_timestamps_give_the_same_verdict():
    base = era_c(GPU_IC.replace("inference compute", "x"), end=GPU_IC)
    variants = [
        [f"2026-05-20T10:00:00+0000 gpuvm ollama[77]: {ln}\r\n" for ln in base],
        [f"\x1b[32m{ln}\x1b[0m" for ln in base],
        [f"2026-05-20T10:00:00.123456789Z {ln}" for ln in base],
        [f"[pod/ollama-0/ollama] 2026-05-20T10:00:00.1Z {ln}" for ln in base],
        [f"ollama-1  | {ln}" for ln in base],
    ]
    for lines in variants:
        r = parse_lines(lines)
        assert (r.library, r.gpu_used, r.gpu_count) == ("cuda", True, 1), lines[0]
        assert r.devices[0].name == "NVIDIA A10" and r.devices[0].compute == "8.6"
        assert errors(r) == []


def test_binary_garbage_and_broken_lines_never_raise():
    junk = [b"\x00\x01\xff\xfe garbage \x1b[", b"time=", b"time=2026 level=", b'msg="unterminated',
            b"\xc3\x28" * 500, b"", b"   ", b"a" * 200000]
    r = parse_lines(junk + [ln.encode() for ln in era_c(INIT0, BOOT2)])
    assert r.library == "cpu" and r.gpu_used is False
    assert errors(r) == ["backend-lib-missing"]


def test_lines_run_together_by_journald_are_split():
    glued = ("Sep 04 13:18:12 HOST ollama[1]: " + LISTEN.format(v="0.3.9") +
             "Sep 04 13:18:12 HOST ollama[1]: " + T +
             ' level=INFO source=gpu.go:396 msg="no compatible GPUs were discovered"')
    r = parse_lines([glued])
    assert r.ollama_version == "0.3.9" and r.library == "cpu" and r.gpu_used is False


def test_era_b_cgo_init_failure_and_shim_symbol():
    r = parse_lines([LISTEN.format(v="0.12.3"),
                     T + ' level=INFO source=gpu.go:217 msg="looking for compatible GPUs"',
                     T + ' level=INFO source=gpu.go:631 msg="Unable to load cudart library '
                         '/usr/local/lib/ollama/libcuda.so.1: cuda driver library init failure: 999"',
                     T + ' level=INFO source=gpu.go:396 msg="no compatible GPUs were discovered"'])
    assert (r.era, r.library, r.gpu_used) == ("B", "cpu", False)
    assert errors(r) == ["cuda-init-failed"] and "999" in r.errors[0].detail
    r = parse_lines([LISTEN.format(v="0.3.10"),
                     T + ' level=INFO source=gpu.go:568 msg="unable to load cuda driver library" '
                         'library=/opt/vgpu/lib/libcuda.so.1 error="symbol lookup for cuCtxCreate_v3 failed: '
                         'undefined symbol: cuCtxCreate_v3"'])
    assert errors(r) == ["shim-incomplete"] and "cuCtxCreate_v3" in r.errors[0].title
    r = parse_lines([T + ' level=INFO source=gpu.go:568 msg="unable to load cuda driver library" '
                         'library=/usr/lib64/libcuda.so.460.106.00 error="symbol lookup for cuCtxCreate_v3 failed"'])
    assert errors(r) == ["driver-too-old"]


def test_era_d_load_backend_failures_name_the_missing_piece():
    def d(msg):
        return [LISTEN.format(v="0.33.0"), DISC, msg, CPU_IC]
    cases = {
        "load_backend: failed to load /usr/local/lib/ollama/cuda_v13/libggml-cuda.so: libcuda.so.1: "
        "cannot open shared object file: No such file or directory": "driver-lib-not-found",
        "load_backend: failed to load /usr/local/lib/ollama/cuda_v13/libggml-cuda.so: libcublas.so.13: "
        "cannot open shared object file: No such file or directory": "backend-lib-missing",
        "load_backend: failed to load /usr/local/lib/ollama/cuda_v13/libggml-cuda.so: /opt/vgpu/lib/libcuda.so.1: "
        "undefined symbol: cuMemCreate": "shim-incomplete",
        T + ' level=WARN source=cuda_compat.go:80 msg="NVIDIA driver too old" device=0 compute=8.6 driver=535 '
            'required_driver="550 or newer"': "driver-too-old",
        T + ' level=INFO source=runner.go:522 msg="failure during llama-server GPU discovery" '
            'OLLAMA_LIBRARY_PATH="[/usr/local/lib/ollama /usr/local/lib/ollama/cuda_v13]" extra_envs=map[] '
            'error="context deadline exceeded" detail=""': "discovery-timeout",
    }
    for line, category in cases.items():
        r = parse_lines(d(line))
        assert (r.era, r.gpu_used) == ("D", False)
        assert errors(r) == [category], line


def test_cuda_loads_but_init_fails():
    loaded = "load_backend: loaded CUDA backend from /usr/local/lib/ollama/cuda_v12/libggml-cuda.so"
    r = parse_lines(era_c(BOOT2, "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected",
                          loaded, INIT0))
    assert errors(r) == ["cuda-init-failed"]
    r = parse_lines(era_c(BOOT2, "ggml_cuda_init: failed to initialize CUDA: CUDA driver version is insufficient "
                                 "for CUDA runtime version", loaded, INIT0))
    assert errors(r) == ["driver-too-old"]


def test_visible_devices_and_old_go_logger_config():
    r = parse_lines(era_c(INIT0, cvd="-1"))
    assert errors(r) == ["visible-devices-env"]
    assert r.errors[0].fix.command == "vgpu-tui fix unset CUDA_VISIBLE_DEVICES"
    r = parse_lines(['2025/02/09 17:56:22 routes.go:1187: INFO server config env="map[CUDA_VISIBLE_DEVICES:-1 '
                     'OLLAMA_DEBUG:false]"',
                     T + ' level=INFO source=routes.go:1238 msg="Listening on 127.0.0.1:11434 (version 0.5.12)"',
                     T + ' level=INFO source=gpu.go:377 msg="no compatible GPUs were discovered"'])
    assert r.ollama_version == "0.5.12" and errors(r) == ["visible-devices-env"]


def test_model_runner_crash_and_offload_decide_gpu_used():
    start = T + ' level=INFO source=server.go:400 msg="starting runner" cmd="/usr/local/bin/ollama runner --model x --port 1"'
    r = parse_lines(era_c(end=GPU_IC) + [start, "load_tensors: offloaded 33/33 layers to GPU"])
    assert (r.gpu_used, errors(r)) == (True, [])
    r = parse_lines(era_c(end=GPU_IC) + [start, "load_tensors: offloaded 0/33 layers to GPU"])
    assert (r.gpu_used, errors(r)) == (False, ["oom-or-vram"])
    r = parse_lines(era_c(end=GPU_IC) + [start, "CUDA error: an illegal memory access was encountered",
                                         T + ' level=ERROR source=sched.go:1 msg="error loading llama server" '
                                             'error="llama runner process has terminated: exit status 2"'])
    assert (r.library, r.gpu_used, errors(r)) == ("cuda", False, ["runner-crash"])


def test_verdict_is_the_last_server_start():
    before = era_c(INIT0)
    after = era_c(end=GPU_IC)
    r = parse_lines(before + after)
    assert r.sessions == 2 and (r.library, r.gpu_used, errors(r)) == ("cuda", True, [])
    r = parse_lines(after + before)
    assert r.sessions == 2 and (r.library, r.gpu_used) == ("cpu", False)


def test_incremental_parser_matches_whole_parse_and_wraps_lines():
    lines = ["time=2025-04-10T23:03:40.162+09:00 level=INFO source=types.go:130 msg=\"inference compute\"",
             " id=GPU-1 library=cuda variant=v12 compute=7.5 driver=12.6",
             ' name="NVIDIA GeForce GTX 1650" total="4.0 GiB" available="3.2 GiB"']
    p = LogParser("live")
    got = []
    for ln in lines:
        got.extend(p.feed(ln))
    got.extend(p.flush())
    assert [e.kind for e in got] == ["inference-compute"]
    assert got[0].fields["name"] == "NVIDIA GeForce GTX 1650"
    assert p.report().gpu_count == parse_lines(lines).gpu_count == 1


def test_follow_memory_stays_bounded():
    p = LogParser("live", max_events=500, tail=100)
    burst = era_c(INIT0, BOOT2)
    gin = '[GIN] 2026/11/29 - 18:39:35 | 200 |      95.551µs |       127.0.0.1 | POST     "/api/generate"'
    tracemalloc.start()
    for i in range(20000):
        p.feed(burst[i % len(burst)] if i % 50 < len(burst) else gin)
    first, _ = tracemalloc.get_traced_memory()
    for i in range(60000):
        p.feed(burst[i % len(burst)] if i % 50 < len(burst) else gin)
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(p.events) == 500 and len(p.tail) == 100
    assert second - first < 512 * 1024, (first, second)
    assert p.report().gpu_used is False


def test_classify_for_the_log_pane():
    assert classify("Nov 29 19:34:12 vm ollama[1]: " + INIT0) == "initial-count"
    assert classify("load_backend: loaded CUDA backend from /x/cuda_v12/libggml-cuda.so") == "backend-loaded"
    assert classify("  Device 0: NVIDIA H200, compute capability 9.0, VMM: yes, ID: GPU-9ce4") == "cuda-device"
    assert classify('[GIN] 2026/11/29 - 18:39:35 | 200 | 95.551µs | 127.0.0.1 | GET "/api/version"') is None
    assert classify(T + ' level=INFO source=images.go:517 msg="total blobs: 0"') is None


def test_parse_text_handles_cr_only_and_wsl_paths():
    text = ("\r".join([LISTEN.format(v="0.3.0"),
                       T + ' level=DEBUG source=gpu.go:326 msg="discovered GPU libraries" '
                           'paths="[/usr/lib/wsl/lib/libcuda.so.1]"',
                       "cuInit err: 500",
                       T + ' level=INFO source=gpu.go:396 msg="no compatible GPUs were discovered"']))
    r = parse_text(text)
    assert r.ollama_version == "0.3.0" and errors(r) == ["cuda-init-failed"]
    assert "wsl" in [f.category for f in r.findings if f.severity == "warning"]


def test_model_load_failures_of_older_eras():
    ic_b = (T + ' level=INFO source=types.go:130 msg="inference compute" id=GPU-1 library=cuda variant=v12 '
            'compute=6.1 driver=12.2 name="NVIDIA GeForce GTX 1080" total="7.9 GiB" available="7.8 GiB"')
    start = T + ' level=INFO source=server.go:376 msg="starting llama server" cmd="/usr/lib/ollama/runners/{}/ollama_llama_server runner --model x"'
    r = parse_lines([LISTEN.format(v="0.5.4"), ic_b, start.format("cuda_v12_avx"),
                     "CUDA error: no kernel image is available for execution on the device",
                     T + ' level=ERROR source=sched.go:455 msg="error loading llama server" '
                         'error="llama runner process has terminated: CUDA error"'])
    assert (r.era, r.library, r.gpu_used, errors(r)) == ("A", "cuda", False, ["unsupported-compute"])
    r = parse_lines([LISTEN.format(v="0.5.4"), ic_b, start.format("cuda_v12_avx"),
                     "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000.00 MiB on device 0: "
                     "cudaMalloc failed: out of memory",
                     "llama_model_load: error loading model: unable to allocate CUDA0 buffer"])
    assert (r.gpu_used, errors(r)) == (False, ["oom-or-vram"])
    r = parse_lines([LISTEN.format(v="0.3.12"), ic_b,
                     T + ' level=INFO source=memory.go:326 msg="offload to cpu" layers.requested=-1 layers.model=33 '
                         'layers.offload=0 layers.split="" memory.available="[7.8 GiB]"',
                     start.format("cpu_avx2")])
    assert (r.library, r.gpu_used, errors(r)) == ("cuda", False, ["oom-or-vram"])


def test_container_and_installer_messages():
    r = parse_lines(["ollama  | Failed to initialize NVML: Unknown Error",
                     "ollama  | " + T + ' level=INFO source=gpu.go:377 msg="no compatible GPUs were discovered"'])
    assert errors(r) == ["container-runtime"]
    r = parse_lines([">>> The Ollama API is now available at 127.0.0.1:11434.",
                     "WARNING: No NVIDIA/AMD GPU detected. Ollama will run in CPU-only mode."])
    assert (r.gpu_used, errors(r)) == (False, ["no-device"])


def test_docker_desktop_prefix_localised_journal_month_and_windows_paths():
    r = parse_lines(["2024-06-03 21:43:35 2024/06/03 13:43:35 routes.go:1007: INFO server config "
                     'env="map[CUDA_VISIBLE_DEVICES: OLLAMA_DEBUG:true OLLAMA_LLM_LIBRARY:]"',
                     "2024-06-03 21:43:35 " + LISTEN.format(v="0.1.41"),
                     "jan 27 17:06:44 desktop ollama[1646734]: " + T +
                     ' level=DEBUG source=gpu.go:574 msg="Unable to load cudart library '
                     'C:\\\\Users\\\\x\\\\cuda_v12\\\\cudart64_12.dll: cudart init failure: 100"',
                     "cudaSetDevice err: 100",
                     T + ' level=INFO source=gpu.go:377 msg="no compatible GPUs were discovered"'])
    assert (r.ollama_version, r.library, r.gpu_used) == ("0.1.41", "cpu", False)
    assert errors(r) == ["cuda-init-failed"] and "100" in r.errors[0].detail
    assert r.sessions == 1  # the config and the version line belong to one server start


def test_a_working_visible_devices_value_is_not_the_diagnosis():
    r = parse_lines(era_c(end=GPU_IC, cvd="0"))
    assert (r.gpu_used, errors(r)) == (True, [])
    r = parse_lines(era_c(INIT0, BOOT2, cvd="0"))
    assert errors(r) == ["backend-lib-missing"]
    assert "visible-devices-env" in [f.category for f in r.findings if f.severity == "warning"]


def test_era_a0_nvml_llama_json_and_upstream_llama_server_lines():
    r = parse_lines([
        "2024/02/01 10:00:00 routes.go:1019: Listening on 127.0.0.1:11434 (version 0.1.22)",
        T + ' level=INFO source=gpu.go:265 msg="Searching for GPU management library libnvidia-ml.so"',
        T + ' level=INFO source=gpu.go:311 msg="Discovered GPU libraries: [/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.545.23.06]"',
        T + ' level=INFO source=gpu.go:323 msg="Unable to load CUDA management library '
            '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.545.23.06: nvml vram init failure: 9"',
        '{"timestamp":1701274708,"level":"ERROR","function":"load_model","line":1,"message":"unable to load model"}',
    ])
    assert (r.ollama_version, r.era) == ("0.1.22", "A0")
    assert errors(r) == ["cuda-init-failed"]
    assert any(e.kind == "runner-crash" and e.level == "ERROR" for e in r.events)
    r = parse_lines([LISTEN.format(v="0.31.0"), DISC,
                     "0.01.234.567 E load_backend: failed to load /usr/local/lib/ollama/cuda_v13/libggml-cuda.so: "
                     "libcudart.so.13: cannot open shared object file: No such file or directory", CPU_IC])
    assert (r.era, errors(r)) == ("D", ["backend-lib-missing"])
    ev = [e for e in r.events if e.kind == "backend-load-failed"][0]
    assert ev.level == "ERROR" and ev.fields["path"].endswith("libggml-cuda.so")
    assert "libcudart.so.13" in ev.fields["error"]


def test_the_raw_precheck_never_hides_a_signature():
    """Every body the full table recognises passes the cheap pre-check (corpus + this file's lines)."""
    import re
    from pathlib import Path

    from probes import logsignatures as sig
    from probes.logs import _SLOG, _unquote, clean, split_logical, strip_prefix

    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    texts = [ln for p in sorted(corpus.glob("*/*.log")) for ln in p.read_text(errors="replace").splitlines()]
    texts += re.findall(r'"([^"\n]{8,})"', Path(__file__).read_text())
    checked = 0
    for raw in texts:
        for piece in split_logical(strip_prefix(clean(raw))):
            m = _SLOG.match(piece)
            body = _unquote(m.group("msg")) if m else piece
            if sig.classify(body) is not None:
                checked += 1
                assert sig.raw_candidate(body), body
    assert checked > 100


def test_preload_device_nodes_lib_dir_container_and_era_b_override():
    r = parse_lines(["ERROR: ld.so: object '/opt/vgpu/libvgpu.so' from /etc/ld.so.preload cannot be preloaded "
                     "(cannot open shared object file): ignored."] + era_c(INIT0))
    assert errors(r) == ["preload-broken"] and "/opt/vgpu/libvgpu.so" in r.errors[0].title
    r = parse_lines(["failed to open /dev/nvidia-uvm: Permission denied", "cuInit err: 304",
                     T + ' level=INFO source=gpu.go:377 msg="no compatible GPUs were discovered"'])
    assert errors(r) == ["device-nodes-missing"]
    r = parse_lines(era_c(T + ' level=DEBUG source=runner.go:433 msg="bootstrap discovery took" duration=30ms '
                              'OLLAMA_LIBRARY_PATH=[/usr/bin] extra_envs=map[]', INIT0))
    assert errors(r) == ["lib-dir-not-found"] and "/usr/bin" in r.errors[0].title
    r = parse_lines(["ollama  | " + LISTEN.format(v="0.5.7"),
                     "ollama  | " + T + ' level=INFO source=gpu.go:226 msg="looking for compatible GPUs"',
                     "ollama  | " + T + ' level=INFO source=gpu.go:392 msg="no compatible GPUs were discovered"'])
    assert errors(r) == ["container-runtime"]
    r = parse_lines([T + ' level=INFO source=routes.go:1238 msg="server config" env="map[CUDA_VISIBLE_DEVICES: '
                         'OLLAMA_LLM_LIBRARY:cuda]"', LISTEN.format(v="0.9.6"),
                     T + ' level=INFO source=types.go:130 msg="inference compute" id=GPU-1 library=cuda variant=v12 '
                         'compute=8.6 driver=12.4 name="NVIDIA A10" total="22 GiB" available="21 GiB"',
                     T + ' level=DEBUG source=server.go:291 msg="compatible gpu libraries" compatible=[]',
                     "load_tensors: offloaded 0/29 layers to GPU"])
    assert (r.era, r.gpu_used, errors(r)) == ("B", False, ["wrong-library-override"])


def test_model_runner_without_cuda_backend_means_cpu():
    system = (T + ' level=INFO source=ggml.go:104 msg=system CPU.0.AVX2=1 CPU.0.LLAMAFILE=1 compiler=cgo(gcc)')
    r = parse_lines(era_c(end=GPU_IC) + [
        T + ' level=INFO source=server.go:400 msg="starting runner" cmd="/usr/local/bin/ollama runner --model x"',
        "load_backend: loaded CPU backend from /usr/local/lib/ollama/libggml-cpu-haswell.so", system])
    assert (r.library, r.gpu_used, errors(r)) == ("cuda", False, ["backend-lib-missing"])


def test_rocm_devices_new_engine_load_request_and_old_driver_text():
    r = parse_lines(["ggml_cuda_init: found 1 ROCm devices:",
                     "  Device 0: AMD Radeon RX 6700 XT, gfx1030 (0x1030), VMM: no, Wave Size: 32, ID: 0",
                     "load_backend: loaded ROCm backend from /usr/lib/ollama/libggml-hip.so"])
    assert (r.library, r.gpu_count, r.gpu_used) == ("rocm", 1, True)
    load = (T + ' level=INFO source=runner.go:1222 msg=load request="{Operation:alloc LoraPath:[] Parallel:1 '
            'BatchSize:512 FlashAttention:true KvSize:4096 GPULayers:@ MultiUserCache:false}"')
    r = parse_lines(era_c(end=GPU_IC) + [load.replace("@", "37[ID:0 Layers:37(0..36)]")])
    assert r.gpu_used is True
    r = parse_lines(era_c(end=GPU_IC) + [load.replace("@", "[]")])
    assert (r.gpu_used, errors(r)) == (False, ["oom-or-vram"])
    r = parse_lines([T + ' level=INFO source=gpu.go:611 msg="Unable to load cudart library '
                         '/tmp/ollama1/runners/cuda_v11/libcudart.so.11.0: your nvidia driver is too old or missing. '
                         'please upgrade to run ollama"',
                     T + ' level=INFO source=gpu.go:377 msg="no compatible GPUs were discovered"'])
    assert errors(r) == ["driver-too-old"]


def test_a_0_24_gpu_listed_with_zero_memory_is_oom_or_vram():
    """Ollama 0.12+ lists a GPU whose shim reports no memory with total="0 B": nothing fits."""
    from probes.logs import parse_lines

    line = ('time=2026-11-29T19:00:02.000Z level=INFO source=types.go:42 msg="inference compute" '
            'id=GPU-56475055-5354-5542-0000-000000000001 filter_id="" library=CUDA compute=9.0 name=CUDA0 '
            'description="VGPU-STUB" libdirs=ollama,cuda_v12 driver=13.0 pci_id=0000:00:06.0 type=discrete '
            'total="0 B" available="0 B"')
    report = parse_lines([line])
    errors = [f for f in report.findings if f.severity == "error"]
    assert [f.category for f in errors] == ["oom-or-vram"]
    healthy = parse_lines([line.replace('total="0 B" available="0 B"', 'total="80.0 GiB" available="79.5 GiB"')])
    assert not [f for f in healthy.findings if f.severity == "error"]
