"""The machine being inspected: a root folder, an environment, and a way to run commands.

Every probe reads the system through a Host, never through bare `open("/etc/...")`:

* `Host.live()` is this machine (`/`), with the tool's own environment, where commands
  such as `systemctl` or `journalctl` may be run.
* `Host(root=DIR)` is a system image or sandbox unpacked at DIR (`--root DIR`, the demo,
  the tests). Every path a probe names (`/sys/bus/pci/devices`, `/etc/ld.so.cache`,
  `/usr/local/lib/ollama`) is read inside DIR, absolute symlink targets are resolved
  inside DIR as a chroot would, and no command of the real machine is consulted for
  facts about DIR (`run` refuses unless the caller says the command is root-aware).

Paths handed to and returned by a Host are *inspected* paths: absolute POSIX strings as
the inspected system sees them. `host.path(p)` gives the file on this machine.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import stat as stat_mod
import subprocess
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

MAX_SYMLINKS = 40  # the kernel's limit (ELOOP) for one path walk
SANDBOX_MARKER = "/.vgpu-sandbox"  # folder that marks a root built by probes.sandbox


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a command did. `error` says why it could not run at all (then rc is None)."""

    argv: Tuple[str, ...]
    returncode: Optional[int]
    stdout: str = ""
    stderr: str = ""
    error: Optional[str] = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Where a path really leads inside the host's root.

    `hops` lists each symlink met as (link path, target as written). `status` is "ok",
    "dangling" (the final target does not exist), "loop" (more than 40 links, ELOOP),
    "not-dir" (a middle component is not a folder) or "error" (permission and the like,
    in `error`). `final` is the inspected path reached (the missing one when dangling).
    `clamped` is true when a `..` tried to climb above the root and stayed there.
    """

    path: str
    final: str
    status: str
    hops: Tuple[Tuple[str, str], ...] = ()
    clamped: bool = False
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _norm(path: str) -> str:
    """An absolute, lexically clean POSIX path ('.' and empty parts removed, '..' kept)."""
    if not path.startswith("/"):
        path = "/" + path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


class Host:
    """One inspected system: `root` on this machine, its environment, its commands."""

    def __init__(
        self,
        root: str = "/",
        env: Optional[Mapping[str, str]] = None,
        live: Optional[bool] = None,
    ):
        real_root = os.path.realpath(os.fsdecode(root))
        self.root = real_root
        self.live = (real_root == "/") if live is None else live
        if env is None:
            env = dict(os.environ) if self.live else {}
        self.env: Dict[str, str] = dict(env)

    # -- construction -------------------------------------------------------------
    @classmethod
    def local(cls) -> "Host":
        """This machine, with the tool's own environment."""
        return cls("/", dict(os.environ), live=True)

    def with_env(self, env: Mapping[str, str]) -> "Host":
        """The same system seen with another environment."""
        return Host(self.root, env, live=self.live)

    def __repr__(self) -> str:
        return f"Host(root={self.root!r}, live={self.live})"

    @property
    def is_sandbox(self) -> bool:
        """True for a root built by probes.sandbox (the demo VM and the tests' VMs)."""
        return self.isdir(SANDBOX_MARKER)

    # -- paths ----------------------------------------------------------------------
    def path(self, inspected: str) -> str:
        """The file on this machine that holds the inspected path (no symlinks followed)."""
        p = _norm(os.fsdecode(inspected))
        if self.root == "/":
            return p
        return self.root + p if p != "/" else self.root

    def inspected(self, real: str) -> str:
        """The inspected path of a file on this machine that lies inside the root."""
        real = os.fsdecode(real)
        if self.root == "/":
            return _norm(real)
        if real == self.root:
            return "/"
        if real.startswith(self.root + "/"):
            return _norm(real[len(self.root):])
        raise ValueError(f"{real} is outside the inspected root {self.root}")

    def resolve(self, inspected: str) -> Resolved:
        """Follow every symlink in the path inside the root, as the kernel would in a chroot."""
        start = _norm(os.fsdecode(inspected))
        todo: List[str] = [p for p in start.split("/") if p]
        done: List[str] = []
        hops: List[Tuple[str, str]] = []
        clamped = False
        links = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                else:
                    clamped = True
                continue
            current = "/" + "/".join(done + [part])
            try:
                st = os.lstat(self.path(current))
            except FileNotFoundError:
                rest = "/".join([part] + todo)
                final = _norm("/" + "/".join(done) + "/" + rest)
                return Resolved(start, final, "dangling", tuple(hops), clamped)
            except NotADirectoryError:
                return Resolved(start, current, "not-dir", tuple(hops), clamped)
            except OSError as exc:
                return Resolved(start, current, "error", tuple(hops), clamped, exc.strerror)
            if stat_mod.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    return Resolved(start, current, "loop", tuple(hops), clamped)
                try:
                    target = os.readlink(self.path(current))
                except OSError as exc:
                    return Resolved(start, current, "error", tuple(hops), clamped, exc.strerror)
                hops.append((current, target))
                new_parts = [p for p in target.split("/") if p and p != "."]
                if target.startswith("/"):
                    done = []
                todo = new_parts + todo
                continue
            if todo and not stat_mod.S_ISDIR(st.st_mode):
                return Resolved(start, current, "not-dir", tuple(hops), clamped)
            done.append(part)
        return Resolved(start, "/" + "/".join(done), "ok", tuple(hops), clamped)

    # -- reading ----------------------------------------------------------------------
    def lstat(self, inspected: str) -> Optional[os.stat_result]:
        try:
            return os.lstat(self.path(inspected))
        except OSError:
            return None

    def stat(self, inspected: str) -> Optional[os.stat_result]:
        """stat() following symlinks inside the root; None when it leads nowhere."""
        r = self.resolve(inspected)
        if not r.ok:
            return None
        try:
            return os.stat(self.path(r.final))
        except OSError:
            return None

    def exists(self, inspected: str) -> bool:
        return self.stat(inspected) is not None

    def isdir(self, inspected: str) -> bool:
        st = self.stat(inspected)
        return st is not None and stat_mod.S_ISDIR(st.st_mode)

    def isfile(self, inspected: str) -> bool:
        st = self.stat(inspected)
        return st is not None and stat_mod.S_ISREG(st.st_mode)

    def islink(self, inspected: str) -> bool:
        st = self.lstat(inspected)
        return st is not None and stat_mod.S_ISLNK(st.st_mode)

    def readlink(self, inspected: str) -> Optional[str]:
        try:
            return os.readlink(self.path(inspected))
        except OSError:
            return None

    def listdir(self, inspected: str) -> List[str]:
        """Names in a folder (symlinks followed inside the root), sorted; [] when unreadable."""
        r = self.resolve(inspected)
        if not r.ok:
            return []
        try:
            return sorted(os.listdir(self.path(r.final)))
        except OSError:
            return []

    def real_path(self, inspected: str) -> Optional[str]:
        """The file on this machine after following links inside the root, or None."""
        r = self.resolve(inspected)
        return self.path(r.final) if r.ok else None

    def read_bytes(self, inspected: str, limit: Optional[int] = None) -> Optional[bytes]:
        """The file's bytes (at most `limit`), following links inside the root; None if unreadable."""
        real = self.real_path(inspected)
        if real is None:
            return None
        try:
            with open(real, "rb") as fh:
                return fh.read() if limit is None else fh.read(limit)
        except OSError:
            return None

    def read_text(self, inspected: str, limit: Optional[int] = None) -> Optional[str]:
        data = self.read_bytes(inspected, limit)
        return None if data is None else data.decode("utf-8", "replace")

    # -- commands -------------------------------------------------------------------
    def which(self, name: str, search_path: Optional[str] = None) -> Optional[str]:
        """An executable on PATH (the host's, or `search_path`), as an inspected path."""
        search = search_path if search_path is not None else self.env.get(
            "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        )
        for folder in search.split(":"):
            if not folder.startswith("/"):
                continue
            candidate = _norm(folder + "/" + name)
            real = self.real_path(candidate)
            if real and os.path.isfile(real) and os.access(real, os.X_OK):
                return candidate
        return None

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 10.0,
        env: Optional[Mapping[str, str]] = None,
        input_text: Optional[str] = None,
        root_aware: bool = False,
    ) -> CommandResult:
        """Run a command of this machine (never through a shell).

        On a host that is not live, commands are refused unless `root_aware` says the
        command is pointed at the root explicitly (e.g. `ldconfig -r DIR`): a command of
        this machine would otherwise describe the wrong system.
        """
        argv = tuple(os.fsdecode(a) for a in argv)
        if not self.live and not root_aware:
            return CommandResult(argv, None, error=f"not run: --root {self.root} is not this machine")
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=(env or self.env).get("PATH"))
        if exe is None:
            return CommandResult(argv, None, error=f"{argv[0]}: command not found")
        try:
            proc = subprocess.run(
                (exe,) + argv[1:],
                input=input_text,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                env=dict(env if env is not None else self.env),
                stdin=None if input_text is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return CommandResult(argv, None, out, "", f"timed out after {timeout:g} s", True)
        except OSError as exc:
            return CommandResult(argv, None, error=f"{argv[0]}: {exc.strerror}")
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)
