"""Benchmark of the log parser and the live follow (issue: Ollama's logs, every era).

1. Parse speed on a realistic mixed journal log — mostly request lines, with model loads
   (llama.cpp loader chatter) and discovery bursts at each server start — next to
   `grep -c` over the same file (the floor: a C tool that only counts a pattern).
2. Follow: a separate writer process appends 10,000 lines/s to a file for a few seconds
   while FileSource + LogParser follow it; reports how far behind the follow ends and
   whether its memory grows.

Run: .venv/bin/python bench/bench_logs.py [--lines N] [--seconds S] [--rate R]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.logs import LogParser, parse_file  # noqa: E402
from probes.logsource import FileSource  # noqa: E402

PREFIX = "Nov 29 19:34:12 gpuvm ollama[1234]: "
T = "time=2026-11-29T19:34:12.123Z"
DISCOVERY = [
    T + ' level=INFO source=routes.go:1802 msg="server config" env="map[CUDA_VISIBLE_DEVICES: OLLAMA_DEBUG:INFO OLLAMA_LLM_LIBRARY: OLLAMA_VULKAN:false]"',
    T + ' level=INFO source=routes.go:1864 msg="Listening on 127.0.0.1:11434 (version 0.24.0)"',
    T + ' level=INFO source=runner.go:67 msg="discovering available GPUs..."',
    T + ' level=INFO source=server.go:433 msg="starting runner" cmd="/usr/local/bin/ollama runner --ollama-engine --port 43511"',
    T + ' level=DEBUG source=server.go:434 msg=subprocess PATH=/usr/bin LD_LIBRARY_PATH=/usr/local/lib/ollama:/usr/local/lib/ollama/cuda_v12 OLLAMA_LIBRARY_PATH=/usr/local/lib/ollama:/usr/local/lib/ollama/cuda_v12',
    "load_backend: loaded CPU backend from /usr/local/lib/ollama/libggml-cpu-icelake.so",
    T + ' level=DEBUG source=runner.go:433 msg="bootstrap discovery took" duration=47ms OLLAMA_LIBRARY_PATH="[/usr/local/lib/ollama /usr/local/lib/ollama/cuda_v12]" extra_envs=map[]',
    T + ' level=DEBUG source=runner.go:123 msg="evaluating which, if any, devices to filter out" initial_count=0',
    T + ' level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="23.5 GiB" available="23.1 GiB"',
    T + ' level=INFO source=routes.go:1914 msg="vram-based default context" total_vram="0 B" default_num_ctx=4096',
]
LOAD = [
    T + ' level=INFO source=server.go:400 msg="starting runner" cmd="/usr/local/bin/ollama runner --model /m/blobs/sha256-x --port 40123"',
    T + ' level=INFO source=sched.go:470 msg="loaded runners" count=1',
    T + ' level=INFO source=server.go:1290 msg="waiting for llama runner to start responding"',
] + ["llama_model_loader: - kv  %2d:  general.key_%d str = value" % (i, i) for i in range(30)] + [
    "load_tensors: offloaded 0/33 layers to GPU",
    T + ' level=INFO source=server.go:1328 msg="llama runner started in 2.01 seconds"',
]
REQUESTS = [
    '[GIN] 2026/11/29 - 19:34:12 | 200 |  %s |       127.0.0.1 | POST     "/api/generate"',
    '[GIN] 2026/11/29 - 19:34:12 | 200 |  %s |       127.0.0.1 | POST     "/api/chat"',
    '[GIN] 2026/11/29 - 19:34:12 | 200 |  %s |       127.0.0.1 | GET      "/api/tags"',
    T + ' level=DEBUG source=sched.go:580 msg="evaluating already loaded" model=/m/blobs/sha256-x',
    T + ' level=DEBUG source=server.go:1400 msg="completion request" images=0 prompt=%s format=""',
    T + ' level=DEBUG source=sched.go:348 msg="context for request finished"',
    T + ' level=DEBUG source=sched.go:360 msg="runner with non-zero duration has gone idle, adding timer" duration=5m0s',
]


def make_log(path: Path, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    out = []
    i = 0
    while i < n:
        if i % 20000 == 0:
            block = DISCOVERY
        elif i % 2000 == 0:
            block = LOAD
        else:
            r = REQUESTS[rnd.randrange(len(REQUESTS))]
            block = [r % ("%.3fms" % (rnd.random() * 900)) if "%s" in r else r]
        for line in block:
            out.append(PREFIX + line)
        i += len(block)
    path.write_text("\n".join(out[:n]) + "\n")


def bench_parse(path: Path, n: int) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    r = parse_file(str(path))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    g = subprocess.run(["grep", "-c", "inference compute", str(path)], capture_output=True, text=True)
    gdt = time.perf_counter() - t0
    size = path.stat().st_size / 1e6
    print(f"parse: {n} lines ({size:.1f} MB) in {dt:.2f} s = {n / dt:,.0f} lines/s "
          f"wall, {n / cpu:,.0f} lines per CPU-second "
          f"(verdict library={r.library} gpu_used={r.gpu_used}, {len(r.events)} events kept)")
    print(f"baseline grep -c 'inference compute': {gdt:.3f} s = {n / gdt:,.0f} lines/s (count {g.stdout.strip()})")


def bench_raw_worst_case(tmp: Path, n: int = 200_000) -> None:
    """Lines no memo helps with: unstructured text that is not llama.cpp loader chatter."""
    path = tmp / "raw.log"
    rnd = random.Random(3)
    words = "the of backend tensor buffer layer token cache graph node thread model vocab".split()
    path.write_text("\n".join(PREFIX + " ".join(rnd.choice(words) for _ in range(10)) + " %d" % i
                              for i in range(n)) + "\n")
    t0, c0 = time.perf_counter(), time.process_time()
    parse_file(str(path))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"worst case (unstructured, unknown text): {n / dt:,.0f} lines/s wall, {n / cpu:,.0f} per CPU-second")


WRITER = r"""
import sys, time
path, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
lines = open(sys.argv[4]).read().splitlines()
batch = max(1, rate // 100)
start = time.perf_counter()
i = 0
with open(path, "a", buffering=1 << 16) as fh:
    while True:
        target = int((time.perf_counter() - start) * rate)
        if target >= rate * seconds:
            target = int(rate * seconds)
        while i < target:
            fh.write(lines[i % len(lines)] + "\n")
            i += 1
        fh.flush()
        if i >= rate * seconds:
            break
        time.sleep(0.01)
print(i, time.perf_counter() - start)
"""


async def bench_follow(sample: Path, rate: int, seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    log = tmp / "ollama.log"
    log.write_text("")
    script = tmp / "writer.py"
    script.write_text(WRITER)
    total = int(rate * seconds)
    parser = LogParser("follow", max_events=200)  # the cap is reached early: memory must then stay flat
    src = FileSource(str(log), poll=0.02)
    tracemalloc.start()
    writer = await asyncio.create_subprocess_exec(sys.executable, str(script), str(log), str(rate), str(seconds),
                                                  str(sample), stdout=asyncio.subprocess.PIPE)
    t0, c0 = time.perf_counter(), time.process_time()
    got = 0
    mem_marks = []
    async for line in src:
        parser.feed(line)
        got += 1
        if got % (rate // 2) == 0:
            mem_marks.append(tracemalloc.get_traced_memory()[0])
        if got >= total:
            break
    t_end = time.perf_counter() - t0
    cpu = time.process_time() - c0
    out, _ = await writer.communicate()
    wrote, wdt = out.decode().split()
    await src.close()
    tracemalloc.stop()
    lag = t_end - float(wdt)
    half = len(mem_marks) // 2
    growth = (mem_marks[-1] - mem_marks[half]) / 1024 if len(mem_marks) > 2 else 0.0
    print(f"follow: writer {int(wrote):,} lines in {float(wdt):.2f} s ({int(wrote) / float(wdt):,.0f} lines/s); "
          f"follower had all {got:,} lines {lag * 1000:.0f} ms after the writer finished; "
          f"the follow used {cpu:.2f} CPU-s = {100 * cpu / float(wdt):.0f}% of one core")
    quarters = [mem_marks[min(len(mem_marks) - 1, i * len(mem_marks) // 4)] // 1024 for i in range(1, 5)]
    print(f"follow memory (traced KiB at 1/4, 1/2, 3/4, end): {quarters}; second half growth {growth:.0f} KiB; "
          f"events kept {len(parser.events)} (cap 200), tail {len(parser.tail)} (cap 200)")
    report = parser.report()
    print(f"follow verdict: library={report.library} gpu_used={report.gpu_used}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=6.0)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    path = tmp / "mixed.log"
    make_log(path, a.lines)
    bench_parse(path, a.lines)
    bench_raw_worst_case(tmp)
    sample = tmp / "sample.log"
    make_log(sample, 50_000, seed=2)
    asyncio.run(bench_follow(sample, a.rate, a.seconds))


if __name__ == "__main__":
    main()
