"""Live sources of Ollama's log, behind one async interface.

Each source is an async iterator of text lines (no trailing newline) with a `state`:
"starting", "running", "ended" or "unavailable", and a one-line `reason` when it is not
running ("no journald", "permission denied", "no unit ollama", "exited with code 1").
Memory is bounded however long a source runs: lines are read from a pipe or a file as the
consumer asks for them (the pipe applies back-pressure), and an over-long line is cut.

* `JournalSource(unit, since)` — `journalctl -u UNIT -f -o short-iso` as an asynchronous
  subprocess (`--since` after a relaunch; `files=`/`directory=` read saved journals).
* `FileSource(path)` — a file followed with aiofiles, surviving rotation (rename + a new
  file) and truncation.
* `ProcessSource(argv or proc)` — the output of an Ollama this tool started.

`service_log_source(host)` picks the right one for a Host; `recent_service_lines(host)`
reads the recent lines once, for `vgpu-tui logs` without FILE. `journal_argv` is the one
place a journalctl command line is built.

`SyncTail(source)` reads any of them from synchronous code (the relaunch watch): bounded,
non-blocking reads that run the async source in a private event loop, so rotation,
truncation, journalctl and the unavailable states have one implementation.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import shutil
import time
from typing import AsyncIterator, Deque, List, Mapping, Optional, Sequence, Tuple, Union

import aiofiles

from probes.errors import ToolError

MAX_LINE = 64 * 1024  # longer lines are cut (a runaway line must not grow memory)
JOURNAL_OUTPUT = "short-iso"  # journald's prefix with a year and zone; probes.logs reads it
SANDBOX_LOG = "/var/log/ollama/ollama.log"
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
JOURNALD_SOCKET = "/run/systemd/journal"

STARTING, RUNNING, ENDED, UNAVAILABLE = "starting", "running", "ended", "unavailable"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r\n")


class LogSource:
    """The common interface: `async for line in source`, `state`, `reason`, `close()`."""

    name = "log"

    def __init__(self) -> None:
        self.state = STARTING
        self.reason: Optional[str] = None
        self.lines_read = 0
        self._gen: Optional[AsyncIterator[str]] = None

    def __aiter__(self) -> AsyncIterator[str]:
        # one iterator per source: a consumer may stop (`break`) and resume where it was
        if self._gen is None:
            self._gen = self._lines()
        return self._gen

    async def _lines(self) -> AsyncIterator[str]:  # pragma: no cover - overridden
        if False:
            yield ""

    async def start(self) -> None:
        """Open the file or start the process now (idempotent); iteration does it otherwise."""

    def stop_following(self) -> None:
        """Read what is there now, then end (a file); a process or journal ends on its own."""

    async def close(self) -> None:
        if self.state in (STARTING, RUNNING):
            self.state = ENDED

    def _unavailable(self, reason: str) -> None:
        self.state = UNAVAILABLE
        self.reason = reason

    def describe(self) -> str:
        return self.name + (f" ({self.state}: {self.reason})" if self.reason else f" ({self.state})")

    async def __aenter__(self) -> "LogSource":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class UnavailableSource(LogSource):
    """A source that cannot run here; it yields nothing and says why."""

    def __init__(self, reason: str, name: str = "log") -> None:
        super().__init__()
        self.name = name
        self._unavailable(reason)

    async def _lines(self) -> AsyncIterator[str]:
        return
        yield ""  # pragma: no cover


async def _stream_lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Lines of a stream; an over-long line is cut to MAX_LINE instead of growing the buffer."""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                yield exc.partial[:MAX_LINE]
            return
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.read(exc.consumed)
            yield chunk[:MAX_LINE]
            # drop the rest of that line
            while True:
                try:
                    await reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as e2:
                    await reader.read(e2.consumed)
                except asyncio.IncompleteReadError:
                    return
            continue
        yield line


class ProcessSource(LogSource):
    """The merged stdout/stderr of a process: an argv to start, or an asyncio Process."""

    name = "process"

    def __init__(self, proc_or_argv: Union[Sequence[str], "asyncio.subprocess.Process"],
                 env: Optional[dict] = None, cwd: Optional[str] = None) -> None:
        super().__init__()
        self._argv: Optional[List[str]] = None
        self.proc: Optional[asyncio.subprocess.Process] = None
        if isinstance(proc_or_argv, (list, tuple)):
            self._argv = [os.fsdecode(a) for a in proc_or_argv]
            self.name = f"process {os.path.basename(self._argv[0])}"
        else:
            self.proc = proc_or_argv
            self.name = f"process {getattr(proc_or_argv, 'pid', '?')}"
        self._env = env
        self._cwd = cwd
        self.returncode: Optional[int] = None

    _STDERR = asyncio.subprocess.STDOUT  # merged: Ollama logs on stderr

    @property
    def argv(self) -> List[str]:
        """The command line it runs (empty for a process given as such)."""
        return list(self._argv or [])

    async def start(self) -> None:
        if self.proc is not None or self._argv is None:
            return
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self._argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=self._STDERR, env=self._env, cwd=self._cwd, limit=MAX_LINE)
        except FileNotFoundError:
            self._unavailable(f"{self._argv[0]}: command not found")
        except PermissionError:
            self._unavailable(f"{self._argv[0]}: permission denied")
        except OSError as exc:
            self._unavailable(f"{self._argv[0]}: {exc.strerror or exc}")

    async def _lines(self) -> AsyncIterator[str]:
        await self.start()
        proc = self.proc
        if proc is None:
            return
        self.state = RUNNING
        streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
        if len(streams) == 1:
            async for raw in _stream_lines(streams[0]):
                self.lines_read += 1
                yield _decode(raw)
        elif streams:
            async for raw in _merge(streams):
                self.lines_read += 1
                yield _decode(raw)
        self.returncode = await proc.wait()
        self._ended()

    def _ended(self) -> None:
        if self.state != UNAVAILABLE:
            self.state = ENDED
            if self.returncode:
                self.reason = f"exited with code {self.returncode}" if self.returncode > 0 else \
                    f"killed by signal {-self.returncode}"

    async def close(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None and self._argv is not None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if proc is not None:
            self.returncode = proc.returncode
        await super().close()


async def _merge(streams: Sequence[asyncio.StreamReader]) -> AsyncIterator[bytes]:
    """Lines of several streams as they come, through a small bounded queue."""
    queue: "asyncio.Queue[Optional[bytes]]" = asyncio.Queue(maxsize=256)

    async def pump(reader: asyncio.StreamReader) -> None:
        try:
            async for line in _stream_lines(reader):
                await queue.put(line)
        finally:
            await queue.put(None)

    tasks = [asyncio.ensure_future(pump(s)) for s in streams]
    open_streams = len(tasks)
    try:
        while open_streams:
            item = await queue.get()
            if item is None:
                open_streams -= 1
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()


def journal_argv(unit: str = "ollama", *, follow: bool = False, since: Optional[str] = None,
                 after_cursor: Optional[str] = None, lines: Optional[int] = None,
                 output: str = JOURNAL_OUTPUT, show_cursor: bool = False, files: Sequence[str] = (),
                 directory: Optional[str] = None, journalctl: str = "journalctl") -> List[str]:
    """The journalctl command line for the unit's log (the only place one is built)."""
    argv = [journalctl, "--no-pager", "-u", unit, "-o", output]
    if follow:
        argv.append("-f")
    if after_cursor:
        argv += ["--after-cursor", after_cursor]
    elif since:
        argv += ["--since", since]
    if lines is not None:
        argv += ["-n", str(lines)]
    elif after_cursor or since:
        # -f implies -n 10, which keeps only the last 10 entries after a cursor (measured with
        # journalctl 252): a relaunch must see every line from the restart on
        argv += ["-n", "all"]
    else:
        argv += ["-n", "200"] if follow else ["-n", "all"]
    if show_cursor:
        argv.append("--show-cursor")
    for f in files:
        argv += ["--file", os.path.abspath(f)]  # -f cannot watch a relative --file
    if directory:
        argv += ["--directory", os.path.abspath(directory)]
    return argv


class JournalSource(ProcessSource):
    """`journalctl -u UNIT [-f] -o short-iso`, asynchronously; `since` or `after_cursor` for a
    relaunch. `env` is the environment journalctl runs with (its PATH finds journalctl);
    `check_journald=False` skips the is-journald-running check (a caller that knows systemd runs)."""

    _STDERR = asyncio.subprocess.PIPE  # kept apart: it says why nothing came (permissions)
    # journalctl's own messages that are not log lines
    _MARKERS = ("-- No entries --", "-- Logs begin", "-- Journal begins", "-- Boot ", "-- Reboot --")

    def __init__(self, unit: str = "ollama", since: Optional[str] = None, follow: bool = True,
                 lines: Optional[int] = None, output: str = JOURNAL_OUTPUT,
                 files: Sequence[str] = (), directory: Optional[str] = None,
                 journalctl: str = "journalctl", after_cursor: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None, check_journald: Optional[bool] = None) -> None:
        self.unit = unit
        path = (env if env is not None else os.environ).get("PATH", os.defpath)
        exe = journalctl if "/" in journalctl else (shutil.which(journalctl, path=path) or journalctl)
        argv = journal_argv(unit, follow=follow, since=since, after_cursor=after_cursor, lines=lines,
                            output=output, files=files, directory=directory, journalctl=exe)
        super().__init__(argv, env=dict(env) if env is not None else None)
        self.name = f"journal {unit}"
        self._check = (not files and not directory) if check_journald is None else check_journald

    async def start(self) -> None:
        if self.proc is not None or self.state == UNAVAILABLE:
            return
        exe = self._argv[0] if self._argv else "journalctl"
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            self._unavailable("no journald (journalctl not found)")
            return
        if self._check and not _journald_running():
            self._unavailable("no journald (systemd-journald is not running)")
            return
        await super().start()

    async def _lines(self) -> AsyncIterator[str]:
        await self.start()
        proc = self.proc
        if proc is None:
            return
        self.state = RUNNING
        err_task = asyncio.ensure_future(proc.stderr.read(8192)) if proc.stderr else None
        try:
            async for raw in _stream_lines(proc.stdout):
                line = _decode(raw)
                if line.startswith(self._MARKERS):
                    continue
                self.lines_read += 1
                yield line
            self.returncode = await proc.wait()
            err = _decode(await err_task) if err_task is not None else ""
        finally:
            if err_task is not None and not err_task.done():
                err_task.cancel()  # the consumer stopped early (close, cancel)
        problem = _journal_problem(err)
        if problem:
            self._unavailable(problem)
        elif self.returncode:
            self._unavailable(err.splitlines()[0] if err.strip() else f"journalctl exited with code {self.returncode}")
        else:
            self._ended()


def _journal_problem(stderr: str) -> Optional[str]:
    low = stderr.lower()
    if "insufficient permissions" in low or "permission denied" in low or "not seeing messages" in low:
        return "permission denied (add the user to the systemd-journal or adm group, or use sudo)"
    if "no journal files were found" in low:
        return "no journald (no journal files)"
    return None


class FileSource(LogSource):
    """A log file followed like `tail -F`: survives rotation (rename + new file) and truncation.

    Where reading starts: `offset` (a byte offset; negative: that many bytes before the end,
    from the next whole line), else the start (`from_start`) or the end. A file that appears
    only later is read from its start. `stop_following()` makes it read to the end and stop.
    """

    name = "file"

    def __init__(self, path: str, from_start: bool = True, follow: bool = True, poll: float = 0.05,
                 chunk: int = 256 * 1024, offset: Optional[int] = None) -> None:
        super().__init__()
        self.path = path
        self.name = f"file {path}"
        self.from_start = from_start
        self.follow = follow
        self.poll = poll
        self.chunk = chunk
        self.offset = offset
        self.rotations = 0
        self.truncations = 0
        self._closed = False
        self._started = False
        self._fh = None  # opened by start(), handed to the reading generator
        self._st: Optional[os.stat_result] = None
        self._skip_first = False

    def stop_following(self) -> None:
        self.follow = False

    async def close(self) -> None:
        self._closed = True
        if self._fh is not None:
            await self._fh.close()
            self._fh = None
        await super().close()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        fh, st = await self._open()
        if fh is None:
            return
        size = st.st_size
        if self.offset is not None:
            pos = self.offset if self.offset >= 0 else max(0, size + self.offset)
            if pos > size:
                pos = 0  # shorter than where we were told to start: it was truncated since
            if self.offset < 0 and pos > 0:
                self._skip_first = os.pread(fh.fileno(), 1, pos - 1) != b"\n"
        else:
            pos = 0 if self.from_start else size
        await fh.seek(pos)
        self._fh, self._st = fh, st

    async def _open(self):
        try:
            fh = await aiofiles.open(self.path, "rb")
        except FileNotFoundError:
            self._unavailable(f"{self.path}: no such file")
            return None, None
        except PermissionError:
            self._unavailable(f"{self.path}: permission denied")
            return None, None
        except IsADirectoryError:
            self._unavailable(f"{self.path}: is a folder")
            return None, None
        except OSError as exc:
            self._unavailable(f"{self.path}: {exc.strerror or exc}")
            return None, None
        st = os.fstat(fh.fileno())
        self.state = RUNNING
        self.reason = None
        return fh, st

    @staticmethod
    def _split(partial: bytes, data: bytes, drop: bool) -> Tuple[List[str], bytes, bool]:
        """Complete lines of partial+data, the new partial line, and whether the rest of a
        line is being dropped (a runaway line cut at MAX_LINE, or the line a negative offset
        fell into)."""
        if drop:
            nl = data.find(b"\n")
            if nl < 0:
                return [], b"", True
            data, drop = data[nl + 1:], False
        *complete, partial = (partial + data).split(b"\n")
        out = [_decode(raw[:MAX_LINE]) for raw in complete]
        if len(partial) > MAX_LINE:
            out.append(_decode(partial[:MAX_LINE]))
            partial, drop = b"", True
        return out, partial, drop

    async def _lines(self) -> AsyncIterator[str]:
        await self.start()
        fh, st = self._fh, self._st
        self._fh = None  # the generator owns it now
        while fh is None:  # created later: read from its start
            if self._closed:
                return
            if not self.follow:
                fh, st = await self._open()  # one last look (stop_following after a wait)
                if fh is None:
                    return
                break
            await asyncio.sleep(self.poll)
            fh, st = await self._open()
        partial = b""
        mark = b""  # the last bytes read: a rewrite after a truncation changes them
        drop = self._skip_first
        idle = False
        try:
            while not self._closed:
                if idle:
                    change = await self._changed(fh, st, mark)
                    if change == "rotated":
                        # renamed away and replaced: drain the old file, then read the new one
                        while True:
                            data = await fh.read(self.chunk)
                            if not data:
                                break
                            lines, partial, drop = self._split(partial, data, drop)
                            for line in lines:
                                self.lines_read += 1
                                yield line
                        if partial and not drop:
                            self.lines_read += 1
                            yield _decode(partial)
                        partial, mark, drop = b"", b"", False
                        await fh.close()
                        fh, st = await self._open()
                        if fh is None:
                            fh, st = await self._wait_reopen()
                            if fh is None:
                                return
                        self.rotations += 1
                    elif change == "truncated":
                        self.truncations += 1
                        partial, mark, drop = b"", b"", False
                        await fh.seek(0)
                data = await fh.read(self.chunk)
                if data:
                    # a short read reached the end: check for rotation before the next read,
                    # since the consumer may pause for any time between two lines
                    idle = len(data) < self.chunk
                    mark = (mark + data)[-32:]
                    lines, partial, drop = self._split(partial, data, drop)
                    for line in lines:
                        self.lines_read += 1
                        yield line
                    continue
                if not self.follow:
                    if idle:
                        break
                    idle = True  # one last look for a rotation before stopping
                    continue
                await asyncio.sleep(self.poll)
                idle = True
            if partial and not drop:
                self.lines_read += 1
                yield _decode(partial)
        finally:
            if fh is not None:
                await fh.close()
            if self.state == RUNNING:
                self.state = ENDED

    async def _changed(self, fh, st, mark: bytes) -> Optional[str]:
        """"rotated" (a new file at the path), "truncated" (emptied, maybe rewritten) or None."""
        try:
            now = os.stat(self.path)
        except OSError:
            return None  # renamed away, no new file yet: keep reading the old one
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
            return "rotated"
        pos = await fh.tell()
        if now.st_size < pos:
            return "truncated"
        if mark and pos >= len(mark):
            try:
                if os.pread(fh.fileno(), len(mark), pos - len(mark)) != mark:
                    return "truncated"
            except OSError:
                return None
        return None

    async def _wait_reopen(self):
        while not self._closed and self.follow:
            await asyncio.sleep(self.poll)
            fh, st = await self._open()
            if fh is not None:
                return fh, st
        return None, None


# -- choosing a source for a host --------------------------------------------------------------
def unit_exists(host, unit: str = "ollama") -> bool:
    name = unit if unit.endswith(".service") else unit + ".service"
    return any(host.exists(f"{d}/{name}") for d in UNIT_DIRS)


def journald_available(host) -> Optional[str]:
    """None when journald can be read on this live host, else why not."""
    if host.which("journalctl") is None and shutil.which("journalctl") is None:
        return "no journald (journalctl not found)"
    if not _journald_running():
        return "no journald (systemd-journald is not running)"
    return None


def _journald_running() -> bool:
    """journald's socket exists, or journal files were left to read (a stopped journald)."""
    if os.path.exists(JOURNALD_SOCKET):
        return True
    for d in ("/var/log/journal", "/run/log/journal"):
        try:
            for sub in os.listdir(d):
                p = os.path.join(d, sub)
                if sub.endswith(".journal") or (os.path.isdir(p) and os.listdir(p)):
                    return True
        except OSError:
            continue
    return False


def service_log_source(host, unit: str = "ollama", since: Optional[str] = None, follow: bool = True) -> LogSource:
    """The live log of the Ollama service on `host`: the sandbox's file, the journal, or why not."""
    if host.is_sandbox:
        return FileSource(host.path(SANDBOX_LOG), follow=follow)
    if not host.live:
        if host.isfile(SANDBOX_LOG):
            return FileSource(host.path(SANDBOX_LOG), follow=follow)
        return UnavailableSource(f"--root {host.root} is not this machine and has no {SANDBOX_LOG}", "journal")
    problem = journald_available(host)
    if problem:
        return UnavailableSource(problem, f"journal {unit}")
    if not unit_exists(host, unit):
        return UnavailableSource(f"no unit {unit}", f"journal {unit}")
    return JournalSource(unit, since=since, follow=follow)


def journal_since_now() -> str:
    """A `--since` value for "from now on" (used before a relaunch)."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def journal_lines(host, unit: str = "ollama", limit: int = 5000,
                  cursor: bool = False) -> Tuple[List[str], Optional[str], Optional[str]]:
    """The unit's last `limit` journal lines, read once on a live host with its environment:
    (lines, the cursor after the last one when `cursor`, why nothing could be read or None)."""
    res = host.run(journal_argv(unit, lines=limit, show_cursor=cursor), timeout=30)
    if res.error:
        return [], None, f"journalctl: {res.error}"
    lines = res.stdout.splitlines()
    after = None
    if cursor and lines and lines[-1].startswith("-- cursor: "):
        after = lines.pop()[len("-- cursor: "):].strip()
    lines = [ln for ln in lines if not ln.startswith(JournalSource._MARKERS)]
    problem = _journal_problem(res.stderr)
    if problem is None and res.returncode and not lines:
        err = res.stderr.strip().splitlines()
        problem = err[0] if err else f"journalctl exited with code {res.returncode}"
    return lines, after, problem


def recent_service_lines(host, limit: int = 5000, unit: str = "ollama") -> Tuple[str, List[str]]:
    """(source name, the last `limit` lines) of the service log, read once; ToolError if none."""
    if host.is_sandbox or (not host.live and host.isfile(SANDBOX_LOG)):
        text = host.read_text(SANDBOX_LOG)
        if text is None:
            raise ToolError(f"{host.path(SANDBOX_LOG)}: no service log yet (start Ollama first)")
        tail: Deque[str] = collections.deque(text.splitlines(), maxlen=limit)
        return host.path(SANDBOX_LOG), list(tail)
    if not host.live:
        raise ToolError(f"no service log under --root {host.root}; give a FILE")
    problem = journald_available(host)
    if problem:
        raise ToolError(f"cannot read the service log: {problem}; give a FILE")
    if not unit_exists(host, unit):
        raise ToolError(f"cannot read the service log: no unit {unit}; give a FILE")
    lines, _, problem = journal_lines(host, unit, limit)
    if problem and not lines:
        raise ToolError(f"cannot read the service log: {problem}")
    return f"journalctl -u {unit}", lines


# -- reading a source from synchronous code ----------------------------------------------------
class SyncTail:
    """A LogSource read from synchronous code (the relaunch watch) in a private event loop.

    `read(wait)` returns the lines that arrive within `wait` seconds (at most `max_lines`; it
    returns as soon as some came), never blocking longer; between calls nothing is read, so a
    pipe applies back-pressure and memory stays bounded. `rest(timeout)` stops following and
    returns what is left. `state`, `reason` and `finished` mirror the source. Close it (or
    use `with`). Called from a thread that runs an event loop, it runs its loop on a helper
    thread (blocking the caller all the same).
    """

    LINGER = 0.01  # after a first line, how long to wait for more of the same burst

    def __init__(self, source: LogSource, max_lines: int = 2000) -> None:
        self.source = source
        self.max_lines = max_lines
        self.finished = False  # the source has no more lines (ended or unavailable)
        self._loop = asyncio.new_event_loop()
        self._queue: Optional["asyncio.Queue[Optional[str]]"] = None
        self._pump: Optional["asyncio.Future[None]"] = None

    @property
    def state(self) -> str:
        return self.source.state

    @property
    def reason(self) -> Optional[str]:
        return self.source.reason

    @property
    def name(self) -> str:
        return self.source.name

    def describe(self) -> str:
        return self.source.describe()

    def _run(self, coro):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(self._loop.run_until_complete, coro).result()

    def start(self) -> "SyncTail":
        """Open the file / start the process now, before what is to be followed begins."""
        if not self._loop.is_closed():
            self._run(self.source.start())
        return self

    async def _pump_lines(self) -> None:
        # runs only while a read() runs the loop; a full queue stops it (back-pressure)
        assert self._queue is not None
        try:
            async for line in self.source:
                await self._queue.put(line)
        except Exception as exc:  # a source must not raise; if one does, it ends with a reason
            self.source._unavailable(f"reading failed: {exc}")
        finally:
            try:
                self._queue.put_nowait(None)  # wakes a waiting read; when full, read sees pump done
            except asyncio.QueueFull:
                pass

    async def _collect(self, wait: float) -> List[str]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.max_lines)
            self._pump = asyncio.ensure_future(self._pump_lines())
        queue = self._queue
        out: List[str] = []
        while len(out) < self.max_lines:
            if not queue.empty():
                item = queue.get_nowait()
            elif self._pump is not None and self._pump.done():
                item = None
            else:
                try:
                    item = await asyncio.wait_for(queue.get(), self.LINGER if out else wait)
                except asyncio.TimeoutError:
                    break
            if item is None:
                self.finished = True
                break
            out.append(item)
        return out

    def read(self, wait: float = 0.1) -> List[str]:
        if self.finished or self._loop.is_closed():
            return []
        return self._run(self._collect(max(wait, 0.0)))

    def rest(self, timeout: float = 5.0) -> List[str]:
        """Stop following and return the remaining lines (a file: up to its end, including a
        last line without a newline), waiting at most `timeout` seconds in all."""
        self.source.stop_following()
        out: List[str] = []
        deadline = time.monotonic() + timeout
        while not self.finished and not self._loop.is_closed():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            out += self.read(min(left, 0.5))
        return out

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.finished = True

        async def shut() -> None:
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()  # the source's generator ends at its await (finally runs)
                await asyncio.gather(self._pump, return_exceptions=True)
            await self.source.close()
            await asyncio.sleep(0)  # let the pipes of an ended process close

        try:
            self._run(shut())
            self._run(self._loop.shutdown_asyncgens())
            self._run(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    def __enter__(self) -> "SyncTail":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
