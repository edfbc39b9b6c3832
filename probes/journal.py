"""The change journal: every change is written down, with the exact previous state, before it is made.

A change is a list of *operations* on paths of the inspected system (a symlink, a file, a
folder, or a file a command regenerates such as /etc/ld.so.cache) plus *commands* to run
afterwards (`systemctl daemon-reload`, `ldconfig`). Each operation records the previous
state of its path exactly: the link target, or the file's bytes, mode and owner, or
"absent". The record is written and synced (status "pending") before anything is touched,
marked "applied" once done, "undoing" while it is being reverted and "undone" afterwards.

`recover(host)` (run at start) finishes what a killed process left: a "pending" change is
rolled back to its previous state, an "undoing" one is undone to the end, and a temporary
change (the tracing variables of `relaunch --trace`) is undone. Restoring a state is
idempotent and atomic (a temporary name in the same folder, renamed over), so a crash
during recovery is recovered by running it again.

Everything happens inside the host's root: folders are resolved like a chroot would
(`host.resolve`), only the last component is operated on, and the journal itself lives in
the inspected system at /var/lib/vgpu-tui/journal.
"""
from __future__ import annotations

import base64
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import stat as stat_mod
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from probes.errors import ToolError
from probes.host import Host

STATE_DIR = "/var/lib/vgpu-tui"
JOURNAL_DIR = STATE_DIR + "/journal"
# On a live host the tool's state may live elsewhere (tests, or a read-only /var).
STATE_DIR_ENV = "VGPU_TUI_STATE_DIR"


def state_dir(host: Host) -> str:
    """Where the tool keeps its journal, pid file and child log (an inspected path)."""
    if host.live and host.env.get(STATE_DIR_ENV, "").startswith("/"):
        return host.env[STATE_DIR_ENV].rstrip("/")
    return STATE_DIR

# Test hooks: the step names a change passes are appended to VGPU_TUI_STEP_LOG, and the
# process kills itself with SIGKILL on reaching the step named in VGPU_TUI_CRASH_AT.
CRASH_ENV = "VGPU_TUI_CRASH_AT"
STEP_LOG_ENV = "VGPU_TUI_STEP_LOG"

STATUSES = ("pending", "applied", "undoing", "undone", "rolled-back")


def step(name: str) -> None:
    """A point at which a crash is survivable; the test hooks act here."""
    log = os.environ.get(STEP_LOG_ENV)
    if log:
        with open(log, "a") as fh:
            fh.write(name + "\n")
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# -- states of a path ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PathState:
    """What is at a path: "absent", "symlink" (target), "file" (data, mode, owner) or "dir"."""

    type: str
    target: Optional[str] = None
    data: Optional[bytes] = dataclasses.field(default=None, metadata={"json": False})
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None

    def describe(self) -> str:
        if self.type == "symlink":
            return f"symlink -> {self.target}"
        if self.type == "file":
            return f"file ({len(self.data or b'')} bytes, mode {self.mode:04o})"
        if self.type == "dir":
            return "folder"
        return self.type

    def same_content(self, other: "PathState") -> bool:
        """Equal as far as a user sees it (type, target, bytes, mode); owners are compared too
        where both are known."""
        if self.type != other.type:
            return False
        if self.type == "symlink":
            return self.target == other.target
        if self.type == "file":
            return self.data == other.data and self.mode == other.mode
        return True

    def digest(self) -> str:
        h = hashlib.sha256(self.type.encode())
        if self.target is not None:
            h.update(b"\0" + self.target.encode("utf-8", "surrogateescape"))
        if self.data is not None:
            h.update(b"\0" + self.data)
        if self.mode is not None and self.type == "file":
            h.update(b"\0%o" % self.mode)
        return h.hexdigest()

    def to_record(self) -> Dict[str, Any]:
        rec: Dict[str, Any] = {"type": self.type}
        if self.target is not None:
            rec["target"] = self.target
        if self.data is not None:
            rec["data_b64"] = base64.b64encode(self.data).decode("ascii")
            rec["sha256"] = hashlib.sha256(self.data).hexdigest()
        for key in ("mode", "uid", "gid"):
            if getattr(self, key) is not None:
                rec[key] = getattr(self, key)
        return rec

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "PathState":
        data = base64.b64decode(rec["data_b64"]) if "data_b64" in rec else None
        return cls(rec["type"], rec.get("target"), data, rec.get("mode"), rec.get("uid"), rec.get("gid"))


ABSENT = PathState("absent")


def real_location(host: Host, inspected: str) -> Tuple[str, str]:
    """(inspected path with its folder resolved inside the root, file on this machine).

    The folder part is resolved like a chroot would, so an absolute symlink among the
    folders never leads out of the root; the last component is not followed.
    """
    inspected = os.path.normpath("/" + inspected.lstrip("/"))
    parent, name = os.path.split(inspected)
    if not name:
        raise ToolError(f"{inspected}: not a file name")
    r = host.resolve(parent)
    if r.status not in ("ok", "dangling"):
        raise ToolError(f"{parent}: {r.status}{': ' + r.error if r.error else ''}")
    canonical = (r.final.rstrip("/") or "") + "/" + name
    return canonical, host.path(canonical)


def read_state(host: Host, inspected: str) -> PathState:
    """The exact state of a path (the last component not followed)."""
    _, real = real_location(host, inspected)
    return read_real_state(real)


def read_real_state(real: str) -> PathState:
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return ABSENT
    except OSError as exc:
        raise ToolError(f"{real}: {exc.strerror}")
    if stat_mod.S_ISLNK(st.st_mode):
        return PathState("symlink", os.readlink(real), None, None, st.st_uid, st.st_gid)
    if stat_mod.S_ISDIR(st.st_mode):
        return PathState("dir", None, None, stat_mod.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    if stat_mod.S_ISREG(st.st_mode):
        try:
            with open(real, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ToolError(f"{real}: {exc.strerror}")
        return PathState("file", None, data, stat_mod.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    raise ToolError(f"{real}: not a file, symlink or folder; refusing to change it")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(real: str, tag: str) -> str:
    folder, name = os.path.split(real)
    return os.path.join(folder, f".{name}.vgpu-tui-{tag}.tmp")


def _chown(path: str, uid: Optional[int], gid: Optional[int], follow: bool = True) -> None:
    if uid is None or gid is None:
        return
    try:
        if follow:
            os.chown(path, uid, gid)
        else:
            os.lchown(path, uid, gid)
    except PermissionError:
        pass  # not root: the new file keeps our owner (the previous owner is still journaled)


def write_real_state(real: str, state: PathState, tag: str, step_prefix: str = "") -> None:
    """Make `real` be `state`, atomically: built under a temporary name beside it, then renamed."""
    folder = os.path.dirname(real)
    tmp = temp_name(real, tag)
    _remove_quietly(tmp)
    if state.type == "absent":
        current = read_real_state(real)
        if current.type == "dir":
            try:
                os.rmdir(real)
            except OSError:
                pass  # not empty: something else lives there now; leave it
        elif current.type != "absent":
            os.unlink(real)
        _fsync_dir(folder)
        step(step_prefix + "removed")
        return
    if state.type == "dir":
        current = read_real_state(real)
        if current.type != "dir":
            if current.type != "absent":
                os.unlink(real)
            os.mkdir(real, state.mode if state.mode is not None else 0o755)
        if state.mode is not None:
            os.chmod(real, state.mode)
        _chown(real, state.uid, state.gid)
        _fsync_dir(folder)
        step(step_prefix + "dir-made")
        return
    if state.type == "symlink":
        os.symlink(state.target, tmp)
        _chown(tmp, state.uid, state.gid, follow=False)
    elif state.type == "file":
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, state.data or b"")
            os.fchmod(fd, state.mode if state.mode is not None else 0o644)
            if state.uid is not None and state.gid is not None:
                try:
                    os.fchown(fd, state.uid, state.gid)
                except PermissionError:
                    pass
            os.fsync(fd)
        finally:
            os.close(fd)
    else:
        raise ToolError(f"cannot write a {state.type} state")
    _fsync_dir(folder)
    step(step_prefix + "temp-written")
    if read_real_state(real).type == "dir":
        raise ToolError(f"{real} is a folder; refusing to replace it")
    os.rename(tmp, real)
    _fsync_dir(folder)
    step(step_prefix + "renamed")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- records -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ChangeRecord:
    """One journaled change, as `vgpu-tui journal --json` lists it (the contract's fields first)."""

    id: str
    time: str
    kind: str
    summary: str
    undone: bool
    status: str = "applied"
    temporary: bool = False
    paths: Tuple[str, ...] = ()
    commands: Tuple[Tuple[str, ...], ...] = ()
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, metadata={"json": False},
                                               compare=False, repr=False)


def _journal_real_dir(host: Host, create: bool) -> Optional[str]:
    _, real = real_location(host, state_dir(host) + "/journal")
    if not os.path.isdir(real):
        if not create:
            return None
        try:
            os.makedirs(real, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ToolError(f"cannot create the change journal {real}: {exc.strerror}")
    return real


class _Lock:
    """One change at a time per inspected system (an flock on the journal folder)."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, ".lock")
        self.fd: Optional[int] = None

    def __enter__(self) -> "_Lock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise ToolError("another vgpu-tui is changing this system right now; try again when it is done")
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def lock(host: Host) -> _Lock:
    return _Lock(_journal_real_dir(host, create=True))


def _record_file(folder: str, change_id: str) -> str:
    return os.path.join(folder, change_id + ".json")


def write_record(host: Host, rec: Dict[str, Any]) -> None:
    """Write a record atomically and durably (temp file, fsync, rename, fsync of the folder)."""
    folder = _journal_real_dir(host, create=True)
    path = _record_file(folder, rec["id"])
    tmp = path + ".tmp"
    data = json.dumps(rec, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    _fsync_dir(folder)


def _load_records(host: Host) -> List[Dict[str, Any]]:
    folder = _journal_real_dir(host, create=False)
    if folder is None:
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name), "rb") as fh:
                rec = json.loads(fh.read())
        except (OSError, ValueError):
            continue  # a torn temp file never has the .json name; anything else is not ours
        if isinstance(rec, dict) and "id" in rec and "seq" in rec:
            out.append(rec)
    out.sort(key=lambda r: r["seq"])
    return out


def next_id(host: Host) -> Tuple[int, str]:
    seq = max([r["seq"] for r in _load_records(host)] + [0]) + 1
    return seq, f"c{seq:04d}"


def to_change(rec: Mapping[str, Any]) -> ChangeRecord:
    return ChangeRecord(
        id=rec["id"], time=rec["time"], kind=rec["kind"], summary=rec["summary"],
        undone=rec["status"] in ("undone", "rolled-back"), status=rec["status"],
        temporary=bool(rec.get("temporary")),
        paths=tuple(op["path"] for op in rec.get("ops", [])),
        commands=tuple(tuple(c) for c in rec.get("commands", [])),
        raw=rec,
    )


def list_changes(host: Host) -> List[ChangeRecord]:
    """Every journaled change, oldest first."""
    return [to_change(r) for r in _load_records(host)]


def get_record(host: Host, change_id: str) -> Dict[str, Any]:
    for rec in _load_records(host):
        if rec["id"] == change_id:
            return rec
    raise ToolError(f"no change {change_id!r} in the journal (see `vgpu-tui journal`)")


def journal_json(host: Host) -> Dict[str, Any]:
    """The contract's journal object."""
    from probes.facts import to_plain

    return {"changes": [to_plain(c) for c in list_changes(host)]}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- performing, reverting, recovering ------------------------------------------------------

def _run_commands(host: Host, commands: Sequence[Sequence[str]], what: str) -> List[str]:
    """Run the follow-up commands of a change (never through a shell); returns problems."""
    from probes import fixes  # the command runner knows the sandbox's stand-ins

    problems = []
    for argv in commands:
        problem = fixes.run_follow_up(host, list(argv))
        if problem:
            problems.append(f"{what}: {problem}")
    return problems


def restore_previous(host: Host, rec: Dict[str, Any], prefix: str) -> List[str]:
    """Put every path of a change back to its previous state (last op first), then run the
    change's follow-up commands again so the service and the cache see the old files."""
    for i, op in reversed(list(enumerate(rec["ops"]))):
        real = host.path(op["path"])
        want = PathState.from_record(op["before"])
        _remove_quietly(temp_name(real, f"{rec['id']}-{i}"))
        current = read_real_state(real)
        if current.same_content(want) and (want.type != "file" or current.uid == want.uid or want.uid is None):
            continue
        write_real_state(real, want, f"{rec['id']}-{i}u", step_prefix=f"{prefix}-op{i}-")
    step(f"{prefix}-restored")
    return _run_commands(host, rec.get("undo_commands", []), "after restoring")


def recover(host: Host) -> List[str]:
    """Complete or roll back what an interrupted run left; returns one line per repair."""
    if _journal_real_dir(host, create=False) is None:
        return []
    messages: List[str] = []
    with lock(host):
        for rec in _load_records(host):
            status = rec["status"]
            if status == "pending":
                restore_previous(host, rec, "recover")
                rec["status"] = "rolled-back"
                rec["recovered"] = now_iso()
                write_record(host, rec)
                messages.append(f"{rec['id']} ({rec['summary']}) was interrupted; rolled back to the previous state")
            elif status == "undoing" or (status == "applied" and rec.get("temporary")
                                         and not owner_alive(rec)):
                restore_previous(host, rec, "recover")
                rec["status"] = "undone"
                rec["recovered"] = now_iso()
                write_record(host, rec)
                messages.append(f"{rec['id']} ({rec['summary']}) undone on recovery")
    return messages


def process_start_time(pid: int) -> Optional[str]:
    """Field 22 of /proc/PID/stat: tells a reused pid from the process that wrote a record."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return data.rsplit(")", 1)[-1].split()[19]


def owner_alive(rec: Mapping[str, Any]) -> bool:
    """The tool that made a temporary change is still running (it will undo it itself)."""
    pid = rec.get("tool_pid")
    return isinstance(pid, int) and rec.get("tool_start") is not None \
        and process_start_time(pid) == rec.get("tool_start")


def pending(host: Host) -> List[ChangeRecord]:
    """Changes recovery would act on (for --readonly, which only reports them)."""
    return [c for c in list_changes(host)
            if c.status in ("pending", "undoing")
            or (c.status == "applied" and c.temporary and not owner_alive(c.raw))]
