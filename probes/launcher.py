"""Restart Ollama the way it runs, follow its new log, and compare the verdict with the old one.

Three ways, chosen by `method(host)`:

* `simulator`  a sandbox root (the demo, the tests' VMs): run
  `python -m probes.sandbox.simulator serve --root DIR` and read DIR/var/log/ollama/ollama.log
  from the offset it had before the restart. Labelled a simulator everywhere.
* `systemd`    a live host whose Ollama is a systemd unit: note the journal cursor,
  `systemctl restart ollama.service`, then follow `journalctl -u ollama.service -f` after
  that cursor.
* `child`      a live host without a unit: Ollama as a child of the tool. The old child
  (its pid and start time in /var/lib/vgpu-tui/ollama.pid) is stopped (SIGTERM to its
  process group, SIGKILL after a grace period), and `ollama serve` is started in its own
  session with the launch environment (probes.fixes.launch_environment), its output
  appended to /var/lib/vgpu-tui/ollama-serve.log, which is followed from the old end.

Every log is followed through probes.logsource (FileSource / JournalSource read with its
synchronous SyncTail), so rotation, truncation, journalctl's command line and the
unavailable states are handled in one place. The new lines go through
probes.logs.LogParser until discovery has finished (an
`inference compute` or "no compatible GPUs" line, then a short quiet moment) or the time
is up. `iter_relaunch` yields progress events and finally the result; `relaunch` returns
the result; `relaunch_stream` is the async form for the TUI. Nothing runs through a shell.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Sequence, Tuple

from probes import fixes
from probes import journal as J
from probes import logsource as L
from probes.errors import ToolError
from probes.host import Host

SERVICE = fixes.SERVICE_NAME
SANDBOX_LOG = "/var/log/ollama/ollama.log"
PID_NAME = "ollama.pid"         # in the tool's state folder (probes.journal.state_dir)
CHILD_LOG_NAME = "ollama-serve.log"


def pid_file(host: Host) -> str:
    return J.state_dir(host) + "/" + PID_NAME


def child_log(host: Host) -> str:
    return J.state_dir(host) + "/" + CHILD_LOG_NAME
# Event kinds (probes.logsignatures) after which discovery has said its last word.
DISCOVERY_DONE_KINDS = ("inference-compute", "no-gpus")
QUIET_AFTER_DONE = 0.7  # seconds of silence after the verdict before we stop reading
STOP_GRACE = 10.0       # seconds between SIGTERM and SIGKILL for a child Ollama
READ_WAIT = 0.1         # seconds one read of the log waits for new lines
DRAIN_SECONDS = 5.0     # reading what an ended Ollama left in its log


@dataclasses.dataclass(frozen=True)
class RelaunchEvent:
    """Progress for the TUI: kind "status" (what is happening), "line" (a new log line),
    "result" (the end; `result` is set)."""

    kind: str
    text: str = ""
    result: Optional["RelaunchResult"] = None


@dataclasses.dataclass(frozen=True)
class RelaunchResult:
    method: str                  # "systemd" | "child" | "simulator"
    command: Tuple[str, ...]     # what was run to restart
    log: str                     # where the new log was read
    ok: bool                     # restarted and discovery finished
    discovery_finished: bool
    watched_seconds: float
    library_before: Optional[str]
    library_after: Optional[str]
    gpu_used_before: Optional[bool]
    gpu_used_after: Optional[bool]
    devices: Tuple[Any, ...]     # the new log's devices (probes.logs.LogDevice)
    gone: Tuple[str, ...]        # finding ids of the old log that the new log no longer has
    new: Tuple[str, ...]         # finding ids only the new log has
    pid: Optional[int] = None
    exit_status: Optional[int] = None   # when Ollama exited during the watch
    problem: Optional[str] = None
    trace: Any = None            # probes.trace.TraceReport with --trace
    before: Any = dataclasses.field(default=None, metadata={"json": False})
    after: Any = dataclasses.field(default=None, metadata={"json": False})

    def __json__(self) -> Dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("before", "after")}
        out["before"] = _brief(self.before)
        out["after"] = _brief(self.after)
        return out


def _brief(report: Any) -> Optional[Dict[str, Any]]:
    if report is None:
        return None
    return {"library": report.library, "gpu_used": report.gpu_used, "gpu_count": report.gpu_count,
            "ollama_version": report.ollama_version, "summary": getattr(report, "summary", ""),
            "findings": [f.id for f in report.findings], "lines": getattr(report, "lines", 0)}


# -- how Ollama runs here ----------------------------------------------------------------------

def method(host: Host) -> str:
    if host.is_sandbox:
        return "simulator"
    if not host.live:
        raise ToolError(f"--root {host.root} is not this machine: Ollama there cannot be restarted from here")
    if fixes.service_unit(host) is not None and fixes.systemd_running(host):
        return "systemd"
    return "child"


def _parser(source: str):
    from probes.logs import LogParser

    return LogParser(source)


def _parse_text(text: str, source: str):
    from probes.logs import parse_text

    return parse_text(text, source)


def _diff(before: Any, after: Any) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    old = [f.id for f in before.findings] if before is not None else []
    new = [f.id for f in after.findings]
    return tuple(i for i in old if i not in new), tuple(i for i in new if i not in old)


# -- following ---------------------------------------------------------------------------------

def _watch(tail: "L.SyncTail", parser, deadline: float, alive=None) -> Iterator[RelaunchEvent]:
    """Feed new lines to the parser until discovery is done, the process died, the log
    ended, or time is up.

    The last event yielded is a "status" whose text is "done", "exited", "ended" (the log
    source stopped: see tail.reason) or "timeout".
    """
    done_at: Optional[float] = None
    last_line = time.monotonic()
    while True:
        lines = tail.read(min(READ_WAIT, max(deadline - time.monotonic(), 0.0)))
        now = time.monotonic()
        for line in lines:
            last_line = now
            for ev in parser.feed(line):
                if ev.kind in DISCOVERY_DONE_KINDS:
                    done_at = now
            yield RelaunchEvent("line", line)
        if not lines:
            # a structured line is held by the parser until the next one; a pause releases it
            if any(ev.kind in DISCOVERY_DONE_KINDS for ev in parser.flush()):
                done_at = now
        if done_at is not None and now - last_line >= QUIET_AFTER_DONE:
            yield RelaunchEvent("status", "done")
            return
        if alive is not None and not alive():
            for line in tail.rest(DRAIN_SECONDS):
                parser.feed(line)
                yield RelaunchEvent("line", line)
            yield RelaunchEvent("status", "done" if done_at is not None else "exited")
            return
        if tail.finished:
            yield RelaunchEvent("status", "done" if done_at is not None else "ended")
            return
        if now >= deadline:
            yield RelaunchEvent("status", "done" if done_at is not None else "timeout")
            return


# -- the child-process launcher ----------------------------------------------------------------

_proc_start_time = J.process_start_time


def _read_pidfile(host: Host) -> Optional[Dict[str, Any]]:
    state = J.read_state(host, pid_file(host))
    if state.type != "file":
        return None
    try:
        rec = json.loads((state.data or b"").decode())
    except ValueError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
        return None
    if _proc_start_time(rec["pid"]) != rec.get("start_time"):
        return None  # gone, or the pid belongs to another process now
    return rec


def child_running(host: Host) -> Optional[int]:
    """The pid of the Ollama this tool started, when it is still running."""
    rec = _read_pidfile(host)
    return rec["pid"] if rec else None


def stop_child(host: Host, grace: float = STOP_GRACE) -> Optional[str]:
    """Stop the Ollama this tool started: SIGTERM to its process group, SIGKILL after `grace`
    seconds. Returns how it ended ("terminated", "killed"), or None when none was running."""
    import psutil

    rec = _read_pidfile(host)
    if rec is None:
        return None
    pid = rec["pid"]
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None

    def signal_group(sig: int) -> None:
        try:
            os.killpg(pid, sig)  # started with its own session: pgid == pid, runners included
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.send_signal(sig)

    signal_group(signal.SIGTERM)
    how = "terminated"
    try:
        proc.wait(grace)
    except psutil.TimeoutExpired:
        signal_group(signal.SIGKILL)
        how = "killed"
        try:
            proc.wait(5)
        except psutil.TimeoutExpired:
            raise ToolError(f"Ollama (pid {pid}) did not stop even after SIGKILL")
    _, real = J.real_location(host, pid_file(host))
    try:
        os.unlink(real)
    except OSError:
        pass
    return how


def _foreign_server(binary_real: str, own: Optional[int]) -> Optional[int]:
    """A running `serve` of the same binary that this tool did not start."""
    import psutil

    for p in psutil.process_iter(["pid", "cmdline", "exe"]):
        try:
            cmd = p.info.get("cmdline") or []
            if p.info["pid"] in (own, os.getpid()) or "serve" not in cmd[1:]:
                continue
            if own is not None and os.getpgid(p.info["pid"]) == own:
                continue  # ours, under strace
            exe = p.info.get("exe") or ""
            args = [os.path.realpath(a) for a in cmd[:2] if a.startswith("/")]
            if exe == binary_real or binary_real in args:
                return p.info["pid"]
        except (psutil.Error, OSError, IndexError):
            continue
    return None


def start_child(host: Host, binary: str, env: Dict[str, str], argv_prefix: Sequence[str] = ()) -> Tuple[int, str, int]:
    """Start `binary serve` in its own session, output appended to the tool's log file.

    Returns (pid, log file, offset at which its output starts)."""
    _, log_real = J.real_location(host, child_log(host))
    os.makedirs(os.path.dirname(log_real), exist_ok=True)
    fd = os.open(log_real, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    offset = os.fstat(fd).st_size
    try:
        # host.path: the same file on a live "/" host; the file inside the root otherwise
        proc = subprocess.Popen(list(argv_prefix) + [host.path(binary), "serve"], stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise ToolError(f"cannot start {binary} serve: {exc.strerror}", exit_code=1)
    finally:
        os.close(fd)
    rec = {"pid": proc.pid, "start_time": _proc_start_time(proc.pid), "binary": binary,
           "argv": list(argv_prefix) + [binary, "serve"], "log": child_log(host), "started": J.now_iso()}
    J.write_real_state(J.real_location(host, pid_file(host))[1],
                       J.PathState("file", data=json.dumps(rec).encode(), mode=0o644), "pid")
    _CHILDREN[proc.pid] = proc  # reaped by us while we live (no zombie in the tests)
    return proc.pid, log_real, offset


_CHILDREN: Dict[int, subprocess.Popen] = {}


def _alive(pid: int) -> bool:
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    return _proc_start_time(pid) is not None


def _binary(host: Host, install: Any) -> str:
    for attr in ("binary", "path", "exe"):
        value = getattr(install, attr, None) if install is not None else None
        if isinstance(value, str) and value:
            return value
    found = host.which("ollama")
    if found is None:
        raise ToolError("the Ollama binary was not found on PATH; name it with --ollama PATH")
    return found


# -- relaunch ---------------------------------------------------------------------------------

def iter_relaunch(host: Host, install: Any = None, *, watch_seconds: float = 30, trace: bool = False,
                  stop_grace: float = STOP_GRACE, readonly: bool = False) -> Iterator[RelaunchEvent]:
    """Restart Ollama and follow it; yields progress events, the last one carries the result."""
    if readonly:
        raise ToolError("--readonly: relaunching Ollama is refused")
    how = method(host)
    J.recover(host)

    def run(tracer: Any) -> Iterator[RelaunchEvent]:
        if how == "simulator":
            return _relaunch_simulator(host, watch_seconds)  # its trace is computed, not recorded
        if how == "systemd":
            return _relaunch_systemd(host, watch_seconds)
        return _relaunch_child(host, install, watch_seconds, stop_grace, tracer)

    tracer = None
    if trace:
        from probes import trace as T

        tracer = T.Tracer(host, how)
        yield RelaunchEvent("status", f"tracing on: {tracer.describe()}")
    result = None
    done: List[str] = []
    try:
        if tracer is not None:
            tracer.start()
        for ev in run(tracer):
            if ev.kind == "result":
                result = ev.result
            else:
                yield ev
    finally:  # tracing leaves the service's configuration even when interrupted
        if tracer is not None:
            done = tracer.finish()
    for msg in done:
        yield RelaunchEvent("status", msg)
    if tracer is not None and result is not None:
        result = dataclasses.replace(result, trace=tracer.report([result.pid] if result.pid else []))
        if how != "simulator":  # the traced server must not stay: start it once more, plainly
            yield RelaunchEvent("status", "restarting once more without tracing")
            for ev in run(None):
                if ev.kind == "result":
                    result = _untraced(result, ev.result)
    yield RelaunchEvent("result", "relaunched" if result and result.ok else "relaunch did not finish", result)


def _untraced(traced: RelaunchResult, plain: RelaunchResult) -> RelaunchResult:
    """The plain restart's outcome, compared with the state before the traced one."""
    gone, new = _diff(traced.before, plain.after)
    return dataclasses.replace(plain, trace=traced.trace, before=traced.before, library_before=traced.library_before,
                               gpu_used_before=traced.gpu_used_before, gone=gone, new=new)


def relaunch(host: Host, install: Any = None, *, watch_seconds: float = 30, trace: bool = False,
             stop_grace: float = STOP_GRACE, readonly: bool = False) -> RelaunchResult:
    result = None
    for ev in iter_relaunch(host, install, watch_seconds=watch_seconds, trace=trace,
                            stop_grace=stop_grace, readonly=readonly):
        if ev.kind == "result":
            result = ev.result
    assert result is not None
    return result


async def relaunch_stream(host: Host, install: Any = None, *, watch_seconds: float = 30,
                          trace: bool = False, readonly: bool = False) -> AsyncIterator[RelaunchEvent]:
    """The same events, for an asyncio consumer (the TUI); the work runs in a thread."""
    gen = iter_relaunch(host, install, watch_seconds=watch_seconds, trace=trace, readonly=readonly)
    sentinel = object()
    try:
        while True:
            ev = await asyncio.to_thread(next, gen, sentinel)
            if ev is sentinel:
                return
            yield ev
    finally:
        # a consumer that stops early (the TUI closes the screen): stop following the log and
        # undo tracing now, not when the generator is collected
        try:
            await asyncio.to_thread(gen.close)
        except ValueError:
            pass  # a step still runs in its thread: the generator is closed when collected


def _result(how: str, command: Sequence[str], log: str, before: Any, after: Any, status: str,
            started: float, pid: Optional[int] = None, exit_status: Optional[int] = None,
            problem: Optional[str] = None) -> RelaunchResult:
    gone, new = _diff(before, after)
    finished = status == "done"
    if not finished and problem is None:
        problem = {"exited": "Ollama exited before discovery finished",
                   "ended": "the log ended before discovery finished"}.get(
            status, "discovery did not finish in the time given (try --watch with more seconds)")
    return RelaunchResult(
        how, tuple(command), log, finished and problem is None, finished, round(time.monotonic() - started, 2),
        before.library if before is not None else None, after.library,
        before.gpu_used if before is not None else None, after.gpu_used,
        tuple(after.devices), gone, new, pid, exit_status, problem, None, before, after)


def _relaunch_simulator(host: Host, watch_seconds: float) -> Iterator[RelaunchEvent]:
    _, log_real = J.real_location(host, SANDBOX_LOG)
    offset = os.path.getsize(log_real) if os.path.exists(log_real) else 0
    before = None
    if offset:
        with open(log_real, "rb") as fh:
            before = _parse_text(fh.read(offset), SANDBOX_LOG)
    argv = [sys.executable, "-m", "probes.sandbox.simulator", "serve", "--root", host.root]
    shown = ["python"] + argv[1:]
    yield RelaunchEvent("status", "restarting the simulated Ollama (sandbox): " + " ".join(shown))
    started = time.monotonic()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [_package_root(), env.get("PYTHONPATH", "")] if p)
    # opened at the old end before the restart, so a rotation meanwhile is followed
    tail = L.SyncTail(L.FileSource(log_real, offset=offset)).start()
    try:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=max(watch_seconds, 5), env=env)
            rc, err = proc.returncode, proc.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, err = None, "the simulator did not finish in time"
        parser = _parser(SANDBOX_LOG)
        for line in tail.rest(DRAIN_SECONDS):
            parser.feed(line)
            yield RelaunchEvent("line", line)
    finally:
        tail.close()
    after = parser.report()
    done = any(ev.kind in DISCOVERY_DONE_KINDS for ev in after.events)
    problem = None
    if rc != 0:
        problem = f"the simulator failed ({err.splitlines()[-1] if err else f'exit status {rc}'})"
    yield RelaunchEvent("result", result=_result("simulator", shown, SANDBOX_LOG, before, after,
                                                  "done" if done else "exited", started, None, rc, problem))


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child_base_env(host: Host) -> Dict[str, str]:
    """The environment a child-process Ollama starts with: the tool's own, with the
    `ollama.service` unit's configured environment applied when a unit exists but systemd does
    not run this machine (a container): the fix engine writes variables into the unit's
    drop-in whenever there is a unit, and the scanner models that environment, so the child
    must get it too."""
    from probes import systemd

    env = dict(host.env)
    unit = systemd.load_service(host, SERVICE)
    if unit is not None:
        for name in unit.unset:
            env.pop(name, None)
        env.update(unit.configured_env())
    return env


def _relaunch_child(host: Host, install: Any, watch_seconds: float, grace: float,
                    tracer: Any) -> Iterator[RelaunchEvent]:
    binary = _binary(host, install)
    real_bin = os.path.realpath(host.path(binary))
    own = child_running(host)
    other = _foreign_server(real_bin, own)
    if other is not None:
        raise ToolError(f"{binary} serve is already running as pid {other}, not started by vgpu-tui; "
                        f"stop it first (or run it as a systemd service)", exit_code=1)
    _, log_real = J.real_location(host, child_log(host))
    before = None
    if os.path.exists(log_real) and os.path.getsize(log_real):
        with open(log_real, "rb") as fh:
            before = _parse_text(fh.read(), child_log(host))
    if own is not None:
        yield RelaunchEvent("status", f"stopping Ollama (pid {own})")
        how = stop_child(host, grace)
        yield RelaunchEvent("status", f"the old Ollama was {how}")
    env = fixes.launch_environment(host, _child_base_env(host))
    prefix: Sequence[str] = ()
    if tracer is not None:
        env = tracer.environment(env)
        prefix = tracer.command_prefix()
    yield RelaunchEvent("status", f"starting {binary} serve (output: {child_log(host)})")
    started = time.monotonic()
    pid, log_real, offset = start_child(host, binary, env, prefix)
    parser = _parser(child_log(host))
    status = "timeout"
    exit_status = None
    tail = L.SyncTail(L.FileSource(log_real, offset=offset)).start()
    try:
        for ev in _watch(tail, parser, started + watch_seconds, lambda: _alive(pid)):
            if ev.kind == "status":
                status = ev.text
            else:
                yield ev
        if not _alive(pid):
            proc = _CHILDREN.get(pid)
            exit_status = proc.returncode if proc is not None else None
            for line in tail.rest(DRAIN_SECONDS):
                parser.feed(line)
                yield RelaunchEvent("line", line)
            if status == "done":
                status = "exited"
    finally:
        tail.close()
    after = parser.report()
    problem = None
    if exit_status is not None:
        problem = f"{binary} serve exited with status {exit_status} (see {child_log(host)})"
    yield RelaunchEvent("result", result=_result("child", [binary, "serve"], child_log(host), before, after, status,
                                                  started, pid, exit_status, problem))


def _relaunch_systemd(host: Host, watch_seconds: float) -> Iterator[RelaunchEvent]:
    source_name = f"journalctl -u {SERVICE}"
    lines, cursor, problem = L.journal_lines(host, SERVICE, 3000, cursor=True)
    before = _parse_text("\n".join(lines), source_name) if lines or problem is None else None
    # without a cursor (an empty journal), from the second before the restart
    since = None if cursor else L.journal_since_now()
    argv = ["systemctl", "restart", SERVICE]
    yield RelaunchEvent("status", "$ " + " ".join(argv))
    started = time.monotonic()
    res = host.run(argv, timeout=120)
    if not res.ok:
        raise ToolError(f"systemctl restart {SERVICE} failed: "
                        f"{res.error or (res.stderr.strip().splitlines() or ['exit status %s' % res.returncode])[-1]}",
                        exit_code=1)
    # systemd runs (method() checked), so journald does: journalctl says why when it can't read
    source = L.JournalSource(SERVICE, follow=True, after_cursor=cursor, since=since, env=host.env,
                             check_journald=False)
    yield RelaunchEvent("status", "$ " + " ".join(source.argv))
    parser = _parser(source_name)
    status = "timeout"
    tail = L.SyncTail(source).start()
    try:
        for ev in _watch(tail, parser, started + watch_seconds):
            if ev.kind == "status":
                status = ev.text
            else:
                yield ev
    finally:
        tail.close()
    problem = None
    if status == "ended":
        problem = f"the journal could not be followed: {tail.reason or 'journalctl ended'}"
    after = parser.report()
    yield RelaunchEvent("result", result=_result("systemd", argv, source_name, before, after,
                                                  status, started, problem=problem))
