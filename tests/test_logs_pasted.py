"""Log lines as people paste them into issue threads: quoted, with the host, the date or the
time= field cut, localised journald months. Each shape below is copied from a public thread
(the thread is named); the parser must still read the message."""
from __future__ import annotations

from probes.logs import classify, parse_lines


def test_markdown_quote_and_journald_without_host():
    # github.com/ollama/ollama/issues/8845: "> 2月 06 14:10:03  ollama[29668]: time=..."
    r = parse_lines([
        '> 2月 06 14:10:03  ollama[29668]: time=2025-02-06T14:10:03.585+08:00 level=INFO source=routes.go:1237 '
        'msg="Listening on [::]:11434 (version 0.5.8-rc7)"',
        '> 2月 06 14:10:03  ollama[29668]: time=2025-02-06T14:10:03.585+08:00 level=INFO source=gpu.go:217 '
        'msg="looking for compatible GPUs"',
    ])
    assert r.ollama_version == "0.5.8-rc7"
    assert [e.kind for e in r.events] == ["version", "discovery-start"]


def test_hostless_journald_keeps_a_raw_ggml_line_readable():
    # github.com/ollama/ollama/issues/10369: "4月 23 17:39:18 ollama[2069]: ..." (host removed)
    assert classify("4月 23 17:39:18 ollama[2069]:   Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, "
                    "VMM: yes") == "cuda-device"
    # the identifier never swallows the slog line's time= field
    assert classify("Feb 06 14:10:03 ollama[29668]: time=2025-02-06T14:10:03.653+08:00 level=INFO "
                    'source=gpu.go:377 msg="no compatible GPUs were discovered"') == "no-gpus"


def test_go_logger_line_without_its_date():
    # github.com/ollama/ollama/issues/2266: " gpu.go:294: INFO Unable to load CUDA management library ..."
    line = (" gpu.go:294: INFO Unable to load CUDA management library /usr/lib/libnvidia-ml.so.535.146.02: "
            "Unable to load /usr/lib/libnvidia-ml.so.535.146.02 library to query for Nvidia GPUs: "
            "/usr/lib/libnvidia-ml.so.535.146.02: wrong ELF class: ELFCLASS32")
    assert classify(line) == "driver-lib-error"


def test_slog_line_pasted_from_its_level_on():
    # github.com/ollama/ollama/issues/6827 quoted "WARN source=gpu.go:222 msg=..." (time= and level= cut)
    r = parse_lines(['INFO source=gpu.go:377 msg="no compatible GPUs were discovered"'])
    assert (r.library, r.gpu_used) == ("cpu", False)
    # github.com/ollama/ollama/issues/15964 quoted "level=INFO source=..." lines (time= cut)
    r = parse_lines(['level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu compute="" '
                     'name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="31.0 GiB"'])
    assert (r.library, r.gpu_count) == ("cpu", 0)


def test_msg_whose_closing_quote_was_lost():
    # github.com/ollama/ollama/issues/1877: '... msg="Unable to load CUDA management library ...: nvml vram init failure: 999'
    r = parse_lines(['time=2024-03-11T13:14:33.744Z level=INFO source=gpu.go:249 msg="Unable to load CUDA management '
                     'library /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.14: nvml vram init failure: 999'])
    assert [e.kind for e in r.events] == ["driver-lib-error"]
    assert r.errors and r.errors[0].category == "cuda-init-failed"


def test_server_config_wrapped_mid_word_is_joined():
    # github.com/ollama/ollama/issues/13069: the env map was wrapped at a fixed width ("OL" / "LAMA_...")
    r = parse_lines([
        'time=2025-11-12T18:06:31.372+08:00 level=INFO source=routes.go:1525 msg="server config" '
        'env="map[CUDA_VISIBLE_DEVICES:0,1,2,3 GGML_VK_VISIBLE_DEVICES: OLLAMA_DEBUG:INFO OL',
        'LAMA_FLASH_ATTENTION:true OLLAMA_HOST:http://0.0.0.0:11434 OLLAMA_LLM_LIBRARY:gguf OLLAMA_MULTIUS',
        'ER_CACHE:false OLLAMA_SCHED_SPREAD:true ROCR_VISIBLE_DEVICES: http_proxy: https_proxy: no_proxy:]"',
        'time=2025-11-12T18:06:31.377+08:00 level=INFO source=images.go:522 msg="total blobs: 33"',
        'time=2025-11-12T18:06:31.380+08:00 level=INFO source=runner.go:67 msg="discovering available GPUs..."',
    ])
    assert [e.kind for e in r.events] == ["server-config", "discovery-start"]
    cfg = r.events[0]
    assert "OLLAMA_LLM_LIBRARY:gguf" in cfg.text and "OLLAMA_MULTIUSER_CACHE:false" in cfg.text


def test_go_logger_server_config_wrapped_is_joined():
    # github.com/ollama/ollama/issues/9181: "... OLLAMA_SCHED_SPREAD:false ROCR_VISIBL" / "E_DEVICES: ...]\""
    r = parse_lines([
        '2025/02/18 02:20:54 routes.go:1187: INFO server config env="map[CUDA_VISIBLE_DEVICES:0,1,2,3,4,5,6,7 '
        'OLLAMA_DEBUG:false OLLAMA_LLM_LIBRARY: OLLAMA_SCHED_SPREAD:false ROCR_VISIBL',
        'E_DEVICES: http_proxy: https_proxy: no_proxy:]"',
        '2025/02/18 02:20:54 routes.go:1238: INFO Listening on 127.0.0.1:11434 (version 0.5.11)',
    ])
    assert [e.kind for e in r.events] == ["server-config", "version"]
    assert r.events[0].text.endswith('no_proxy:]"') and r.ollama_version == "0.5.11"
