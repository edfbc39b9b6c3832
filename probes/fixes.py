"""Changes to the inspected system: plan → preview → journaled, atomic apply → undo.

Change kinds (the contract's `fix.kind`):

* `symlink`  create, re-point or remove (`remove: true`) a symlink. The new link is made
  under a temporary name in the same folder and renamed over the old one. Replacing a
  regular file, a link outside the Ollama tree (and not a library name), or a target that
  is missing, outside the root, or neither in the Ollama tree nor a shared library, needs
  `force`.
* `env` / `unset`  a variable of the Ollama service. With a systemd unit: a drop-in of the
  tool's own (`ollama.service.d/zz-vgpu-tui.conf`, named to sort after `override.conf` so
  it wins), quoted by systemd's rules (probes.systemd), then `systemctl daemon-reload` on
  a live host with systemd running; the unit file is never edited. Without a unit: the
  launch environment file /etc/vgpu-tui/ollama.env that probes.launcher uses.
* `ldconfig`  rebuild the loader cache (`ldconfig -X`: the cache only, no link updates, so
  undo can restore the old cache byte for byte); under --root `ldconfig -X -r DIR` (needs
  root), and in a sandbox the tool's own cache writer (probes.ldcache.write_ld_cache).

Every change is journaled (probes.journal) with the exact previous state before anything
is touched, so `undo` restores it byte for byte and an interrupted change is rolled back
at the next start. No command is ever run through a shell.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from probes import journal as J
from probes.errors import ToolError
from probes.host import Host

SERVICE_NAME = "ollama.service"
DROPIN_DIR = "/etc/systemd/system/" + SERVICE_NAME + ".d"
DROPIN_NAME = "zz-vgpu-tui.conf"  # sorts after override.conf and NN-*.conf: the tool's value wins
DROPIN_PATH = DROPIN_DIR + "/" + DROPIN_NAME
ENV_FILE_DIR = "/etc/vgpu-tui"
ENV_FILE = ENV_FILE_DIR + "/ollama.env"
LD_CACHE = "/etc/ld.so.cache"
SANDBOX_LDCACHE_CMD = "@ldcache-rebuild"  # an in-process step, not a program

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LIBNAME_RE = re.compile(r"^lib[^/]*\.so(\.[^/]*)?$")
_HEADER = "# Written by vgpu-tui. Undo with `vgpu-tui undo`; see `vgpu-tui journal`.\n"


class NothingToDo(ToolError):
    """The system is already as asked (exit 0)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=0)


@dataclasses.dataclass(frozen=True)
class PlannedOp:
    """One path a change touches: its state now and after (None: a command regenerates it)."""

    path: str
    before: J.PathState
    after: Optional[J.PathState]


@dataclasses.dataclass(frozen=True)
class Plan:
    kind: str
    args: Mapping[str, Any]
    summary: str
    preview: str  # the exact unified diff and/or commands
    ops: Tuple[PlannedOp, ...] = dataclasses.field(default=(), metadata={"json": False})
    commands: Tuple[Tuple[str, ...], ...] = ()
    undo_commands: Tuple[Tuple[str, ...], ...] = ()
    notes: Tuple[str, ...] = ()
    temporary: bool = False


# -- the Ollama tree and the service ---------------------------------------------------------

def _in_ollama_tree(inspected: str, host: Optional[Host] = None) -> bool:
    """Inside a lib/ollama folder (any prefix: /usr/local, /usr, /opt/...), or inside the
    library folder the installed Ollama uses (probes.ollama), wherever that is."""
    if "/lib/ollama/" in inspected.rstrip("/") + "/":
        return True
    if host is None:
        return False
    try:
        from probes import ollama

        lib_dir = ollama.find_install(host).lib_dir
    except Exception:  # a broken install must not break the safety check; it just says no
        return False
    return bool(lib_dir) and (inspected + "/").startswith(lib_dir.rstrip("/") + "/")


def service_unit(host: Host) -> Optional[str]:
    """The Ollama unit file (inspected path), or None when Ollama is not a systemd service."""
    from probes import systemd

    return systemd.find_unit_file(host, SERVICE_NAME)


def systemd_running(host: Host) -> bool:
    """systemd manages this machine (so daemon-reload and restart make sense)."""
    return host.live and os.path.isdir("/run/systemd/system") and host.which("systemctl") is not None


# -- validation ----------------------------------------------------------------------------

def check_name(name: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise ToolError(f"{name!r} is not a valid environment variable name (letters, digits, _; not starting with a digit)")


def check_value(name: str, value: str) -> None:
    if "\x00" in value:
        raise ToolError(f"the value of {name} contains a NUL byte; refused")
    if "\n" in value or "\r" in value:
        raise ToolError(f"the value of {name} contains a newline; refused")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ToolError(f"the value of {name} is not valid UTF-8; refused")


# -- symlinks --------------------------------------------------------------------------------

def _plan_symlink(host: Host, link: str, target: Optional[str], force: bool) -> Plan:
    if not link or not link.startswith("/"):
        raise ToolError(f"{link!r}: give the link as an absolute path")
    if "\x00" in link or (target is not None and ("\x00" in target or "\n" in target)):
        raise ToolError("a path with a NUL byte or newline is refused")
    canonical, real = J.real_location(host, link)
    if not os.path.isdir(os.path.dirname(real)):
        raise ToolError(f"{os.path.dirname(canonical)}: no such folder")
    before = J.read_real_state(real)
    if before.type == "dir":
        raise ToolError(f"{canonical} is a folder; refusing to replace it")
    needs_force: List[str] = []
    if target is None:  # remove
        if before.type == "absent":
            raise NothingToDo(f"{canonical} does not exist; nothing to remove")
        if before.type != "symlink":
            raise ToolError(f"{canonical} is a regular file, not a symlink; refusing to remove it")
        after = J.ABSENT
        summary = f"remove symlink {canonical} (-> {before.target})"
        preview = f"rm {canonical}\n- {canonical} -> {before.target}\n"
        return Plan("symlink", {"link": canonical, "remove": True}, summary, preview,
                    (PlannedOp(canonical, before, after),))
    if not target:
        raise ToolError("give the link's target")
    if before.type == "file":
        needs_force.append(f"{canonical} is a regular file (its bytes would be journaled and replaced)")
    if not _LIBNAME_RE.match(os.path.basename(canonical)) and not _in_ollama_tree(canonical, host):
        needs_force.append(f"{canonical} is outside the Ollama tree and not a library name")
    # Where the target leads, as the loader would see it inside the root.
    joined = target if target.startswith("/") else os.path.dirname(canonical) + "/" + target
    r = host.resolve(joined)
    if r.clamped or (not host.live and _escapes(os.path.dirname(canonical), target)):
        needs_force.append(f"the target {target} climbs out of the root {host.root}")
    if r.status != "ok":
        needs_force.append(f"the target {target} is {r.status} ({r.final})")
    else:
        is_lib = _LIBNAME_RE.match(os.path.basename(r.final)) and _is_elf(host, r.final)
        if not is_lib and not _in_ollama_tree(r.final, host):
            needs_force.append(f"the target {r.final} is neither in the Ollama tree nor a shared library")
    if needs_force and not force:
        raise ToolError("refused without --force: " + "; ".join(needs_force))
    after = J.PathState("symlink", target, uid=before.uid if before.type == "symlink" else None,
                        gid=before.gid if before.type == "symlink" else None)
    if before.type == "symlink" and before.target == target:
        raise NothingToDo(f"{canonical} already points to {target}")
    if before.type == "absent":
        summary = f"create symlink {canonical} -> {target}"
        preview = f"ln -s {target} {canonical}\n+ {canonical} -> {target}\n"
    elif before.type == "symlink":
        summary = f"re-point symlink {canonical} -> {target} (was {before.target})"
        preview = f"ln -sfn {target} {canonical}\n- {canonical} -> {before.target}\n+ {canonical} -> {target}\n"
    else:
        summary = f"replace file {canonical} with symlink -> {target}"
        preview = (f"ln -sfn {target} {canonical}\n- {canonical}: {before.describe()}\n"
                   f"+ {canonical} -> {target}\n")
    notes = tuple("forced: " + n for n in needs_force)
    return Plan("symlink", {"link": canonical, "target": target}, summary, preview,
                (PlannedOp(canonical, before, after),), notes=notes)


def _escapes(folder: str, target: str) -> bool:
    """A relative target whose `..` climb above `/` (above the root, under --root)."""
    if target.startswith("/"):
        return False
    depth = len([p for p in folder.split("/") if p])
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _is_elf(host: Host, inspected: str) -> bool:
    return (host.read_bytes(inspected, 4) or b"") == b"\x7fELF"


# -- environment -------------------------------------------------------------------------------

@dataclasses.dataclass
class _EnvSpec:
    sets: Dict[str, str]
    unsets: List[str]


def _parse_dropin(text: str) -> _EnvSpec:
    from probes import systemd

    spec = _EnvSpec({}, [])
    for section, key, value, _ in systemd.parse_unit_text(text):
        if section != "Service":
            continue
        if key == "Environment" and value:
            pairs, _w = systemd.parse_environment_value(value, SERVICE_NAME)
            spec.sets.update(pairs)
        elif key == "UnsetEnvironment":
            spec.unsets.extend(w for w in systemd.iter_words(value)[0] if w not in spec.unsets)
    return spec


def _render_dropin(spec: _EnvSpec) -> bytes:
    from probes import systemd

    lines = [_HEADER, "[Service]\n"]
    for name in sorted(spec.sets):
        lines.append(systemd.format_environment({name: spec.sets[name]}) + "\n")
    for name in spec.unsets:
        lines.append(f"UnsetEnvironment={name}\n")
    return "".join(lines).encode()


_UNSET_MARK = "# vgpu-tui: unset "


def parse_env_file(text: str) -> _EnvSpec:
    """The launch environment file: systemd EnvironmentFile= lines, plus unset marks."""
    from probes import systemd

    spec = _EnvSpec({}, [])
    for name, value, _ in systemd.parse_env_file(text)[0]:
        spec.sets[name] = value
    for line in text.splitlines():
        if line.startswith(_UNSET_MARK):
            spec.unsets.append(line[len(_UNSET_MARK):].strip())
    return spec


def _quote_env_file(value: str) -> str:
    return '"' + "".join("\\" + c if c in '"\\`$' else c for c in value) + '"'


def _render_env_file(spec: _EnvSpec) -> bytes:
    lines = [_HEADER, "# The environment `vgpu-tui relaunch` gives `ollama serve` (EnvironmentFile= syntax).\n"]
    for name in sorted(spec.sets):
        lines.append(f"{name}={_quote_env_file(spec.sets[name])}\n")
    for name in spec.unsets:
        lines.append(f"{_UNSET_MARK}{name}\n")
    return "".join(lines).encode()


def launch_environment(host: Host, base: Mapping[str, str]) -> Dict[str, str]:
    """`base` with the launch environment file applied (for a child-process Ollama)."""
    env = dict(base)
    state = J.read_state(host, ENV_FILE)
    if state.type == "file":
        spec = parse_env_file((state.data or b"").decode("utf-8", "replace"))
        env.update(spec.sets)
        for name in spec.unsets:
            env.pop(name, None)
    return env


def _plan_env(host: Host, name: str, value: Optional[str], temporary: bool = False,
              kind: Optional[str] = None) -> Plan:
    return _plan_env_many(host, {name: value}, temporary, kind)


def _plan_env_many(host: Host, changes: Mapping[str, Optional[str]], temporary: bool = False,
                   kind: Optional[str] = None) -> Plan:
    """Set (value) or unset (None) several variables in one change."""
    for name, value in changes.items():
        check_name(name)
        if value is not None:
            check_value(name, value)
    unit = service_unit(host)
    if unit is not None:
        folder, path, parse, render = DROPIN_DIR, DROPIN_PATH, _parse_dropin, _render_dropin
        where = f"the systemd drop-in {DROPIN_PATH}"
    else:
        folder, path, parse, render = ENV_FILE_DIR, ENV_FILE, parse_env_file, _render_env_file
        where = f"the launch environment {ENV_FILE} (Ollama is not a systemd service here)"
    dcanon, dreal = J.real_location(host, folder)
    fcanon, freal = J.real_location(host, path)
    dbefore = J.read_real_state(dreal)
    fbefore = J.read_real_state(freal)
    if dbefore.type not in ("dir", "absent"):
        raise ToolError(f"{dcanon} is not a folder; refusing to touch it")
    if fbefore.type not in ("file", "absent"):
        raise ToolError(f"{fcanon} is a {fbefore.type}, not a file; refusing to touch it")
    old_text = (fbefore.data or b"").decode("utf-8", "replace") if fbefore.type == "file" else ""
    spec = parse(old_text)
    ours_unset = set(spec.unsets)
    spec = _EnvSpec(dict(spec.sets), list(spec.unsets))
    notes: List[str] = []
    if unit is not None:
        from probes import systemd

        svc = systemd.load_service(host, SERVICE_NAME)
        effective = svc.configured_env() if svc else {}
        for name, value in changes.items():
            if value is not None and svc is not None and name in svc.unset and name not in ours_unset:
                notes.append(f"another drop-in has UnsetEnvironment={name}: systemd will still unset it")
    else:
        effective = launch_environment(host, {})
    words = []
    for name, value in changes.items():
        if value is None:
            spec.sets.pop(name, None)
            if name not in spec.unsets:
                spec.unsets.append(name)
            words.append(f"unset {name}")
        else:
            spec.sets[name] = value
            if name in spec.unsets:
                spec.unsets.remove(name)
            words.append(f"{name}={value}")
    new_data = render(spec)
    if not spec.sets and not spec.unsets:
        new_data = b""
    if fbefore.type == "file" and fbefore.data == new_data:
        raise NothingToDo(f"{fcanon} already says so")
    if all((v is None and n not in effective and n not in spec.sets) for n, v in changes.items()) \
            and fbefore.type == "absent":
        raise NothingToDo(" ".join(sorted(changes)) + " is not set for the service; nothing to unset")
    ops: List[PlannedOp] = []
    if dbefore.type == "absent":
        ops.append(PlannedOp(dcanon, dbefore, J.PathState("dir", mode=0o755)))
    if not new_data:
        after = J.ABSENT  # nothing left to say: remove the tool's file rather than leave an empty one
    else:
        after = J.PathState("file", data=new_data, mode=fbefore.mode if fbefore.type == "file" else 0o644,
                            uid=fbefore.uid, gid=fbefore.gid)
    ops.append(PlannedOp(fcanon, fbefore, after))
    commands: Tuple[Tuple[str, ...], ...] = ()
    if unit is not None and systemd_running(host):
        commands = (("systemctl", "daemon-reload"),)
    diff = "".join(difflib.unified_diff(
        old_text.splitlines(True), new_data.decode().splitlines(True),
        fromfile=("a" + fcanon) if fbefore.type == "file" else "/dev/null",
        tofile=("b" + fcanon) if after.type == "file" else "/dev/null"))
    preview = diff + "".join("$ " + " ".join(c) + "\n" for c in commands)
    kind = kind or ("unset" if all(v is None for v in changes.values()) else "env")
    summary = ("unset " if kind == "unset" else "set ") + ", ".join(
        n if kind == "unset" else f"{n}={v}" for n, v in changes.items()) + f" in {where}"
    if kind not in ("env", "unset"):
        summary = f"{kind}: " + ", ".join(words) + f" in {where}"
    notes.append("takes effect when Ollama is restarted (`vgpu-tui relaunch`)")
    args: Dict[str, Any] = {"name": next(iter(changes))} if len(changes) == 1 else {"names": list(changes)}
    if len(changes) == 1 and kind == "env":
        args["value"] = next(iter(changes.values()))
    return Plan(kind, args, summary, preview, tuple(ops), commands, commands, tuple(notes), temporary)


# -- ldconfig --------------------------------------------------------------------------------

def _plan_ldconfig(host: Host) -> Plan:
    canonical, real = J.real_location(host, LD_CACHE)
    before = J.read_real_state(real)
    if before.type not in ("file", "absent"):
        raise ToolError(f"{canonical} is a {before.type}; refusing to rebuild it")
    if host.is_sandbox:
        cmd: Tuple[str, ...] = (SANDBOX_LDCACHE_CMD,)
        preview = (f"rebuild {canonical} from /etc/ld.so.conf with the tool's own cache writer "
                   f"(sandbox; what `ldconfig -X -r {host.root}` would write)\n")
    elif host.live:
        exe = host.which("ldconfig") or "/sbin/ldconfig"
        cmd = (exe, "-X")
        preview = "$ " + " ".join(cmd) + "\n"
    else:
        if os.geteuid() != 0:
            raise ToolError(f"refreshing the cache of --root {host.root} needs `ldconfig -r`, which needs root")
        exe = Host.local().which("ldconfig") or "/sbin/ldconfig"
        cmd = (exe, "-X", "-r", host.root)
        preview = "$ " + " ".join(cmd) + "\n"
    summary = f"rebuild the loader cache {canonical}"
    return Plan("ldconfig", {}, summary, preview + f"(the current {canonical}: {before.describe()}, journaled)\n",
                (PlannedOp(canonical, before, None),), (cmd,), ())


# Folders ldconfig always scans after ld.so.conf's (x86-64 Debian/Fedora layouts).
TRUSTED_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")


def sandbox_cache_entries(host: Host) -> List[Tuple[str, str, int]]:
    """(soname, path, flags) for every shared library in ld.so.conf's folders and the
    trusted ones, as `ldconfig -X` would list them (first folder wins for a name).

    probes.sandbox.builder.cache_entries does the same for building a VM, but creates the
    missing SONAME links, which a journaled change must not do behind the journal's back."""
    from probes import ldcache
    from probes.elf import read_elf

    _, conf_folders = ldcache.read_conf(host)
    folders: List[str] = []
    for folder in [f for f, _ in conf_folders] + list(TRUSTED_DIRS):
        r = host.resolve(folder)
        if r.ok and host.isdir(folder) and r.final not in folders:
            folders.append(r.final)
    entries: Dict[Tuple[str, int], Tuple[str, str, int]] = {}
    for folder in folders:
        for name in host.listdir(folder):
            if not (name.startswith("lib") and ".so" in name):
                continue
            info = read_elf(host, f"{folder}/{name}", symbols=False)
            if not info.is_elf or info.error or info.type != "DYN":
                continue
            soname = info.soname or name
            accepted = ldcache.accepted_flags_for(info) or (ldcache.DEFAULT_FLAGS,)
            flags = next((f for f in accepted if f & 0xFF == 0x03), accepted[0])  # libc6 kind
            # as `ldconfig -X`: listed at FOLDER/SONAME even when that link is missing (no
            # link is made: a journaled change touches only the cache)
            entries.setdefault((soname, flags), (soname, f"{folder}/{soname}", flags))
            if name != soname and name.endswith(".so") and host.islink(f"{folder}/{name}"):
                entries.setdefault((name, flags), (name, f"{folder}/{name}", flags))  # a development link
    return list(entries.values())


def run_follow_up(host: Host, argv: Sequence[str]) -> Optional[str]:
    """Run one follow-up command of a change; returns a problem, or None when it worked."""
    if list(argv) == [SANDBOX_LDCACHE_CMD]:
        try:
            from probes import ldcache

            _, real = J.real_location(host, LD_CACHE)
            ldcache.write_ld_cache(sandbox_cache_entries(host), real, generator="vgpu-tui fix ldconfig (sandbox)")
        except ImportError as exc:
            return f"the sandbox cache writer is not available ({exc})"
        except (OSError, ValueError, ToolError) as exc:
            return f"rebuilding the cache failed: {exc}"
        return None
    # Only `ldconfig -r ROOT` is pointed at a --root; anything else runs on a live host only.
    root_aware = os.path.basename(argv[0]) == "ldconfig" and "-r" in argv
    res = host.run(list(argv), timeout=120, root_aware=root_aware)
    if not res.ok:
        why = res.error or (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        return f"{' '.join(argv)}: {why}"
    return None


# -- the public API --------------------------------------------------------------------------

def plan(host: Host, fix: Union[Any, str], args: Optional[Mapping[str, Any]] = None, *,
         force: bool = False) -> Plan:
    """The change a Fix (probes.facts.Fix) or kind+args describes, with its exact preview.

    Nothing is touched. Raises ToolError for a refused change, NothingToDo when the system
    already is as asked.
    """
    if isinstance(fix, str):
        kind, a = fix, dict(args or {})
    else:
        kind, a = fix.kind, dict(fix.args)
    force = force or bool(a.get("force"))
    if kind == "symlink":
        return _plan_symlink(host, str(a.get("link", "")), None if a.get("remove") else a.get("target"), force)
    if kind == "env":
        if "name" not in a and "assignment" in a:
            a["name"], _, a["value"] = str(a["assignment"]).partition("=")
        if "name" not in a or "value" not in a:
            raise ToolError("an env fix needs a name and a value")
        return _plan_env(host, str(a["name"]), str(a["value"]))
    if kind == "unset":
        return _plan_env(host, str(a.get("name", "")), None)
    if kind == "ldconfig":
        return _plan_ldconfig(host)
    if kind == "trace-env":
        return _plan_env_many(host, dict(a["changes"]), temporary=True, kind="trace-env")
    raise ToolError(f"a {kind!r} fix cannot be applied by the tool")


def apply(host: Host, plan: Plan, *, journal: Any = None, readonly: bool = False) -> J.ChangeRecord:
    """Journal the plan (synced), make the change atomically, mark it applied.

    The state is checked again first: if a path changed since the plan was made, nothing
    is touched. If a follow-up command fails, the change is rolled back and ToolError
    raised (exit 1).
    """
    if readonly:
        raise ToolError("--readonly: changes are refused")
    with J.lock(host):
        for op in plan.ops:
            now = J.read_state(host, op.path)
            if not now.same_content(op.before):
                raise ToolError(f"{op.path} changed since the preview ({now.describe()}); run the fix again")
        seq, change_id = J.next_id(host)
        rec: Dict[str, Any] = {
            "id": change_id, "seq": seq, "time": J.now_iso(), "kind": plan.kind,
            "summary": plan.summary, "args": dict(plan.args), "status": "pending",
            "temporary": plan.temporary, "root": host.root, "tool_pid": os.getpid(),
            "tool_start": J.process_start_time(os.getpid()),
            "ops": [{"path": op.path, "before": op.before.to_record(),
                     "after": op.after.to_record() if op.after is not None else None}
                    for op in plan.ops],
            "commands": [list(c) for c in plan.commands],
            "undo_commands": [list(c) for c in plan.undo_commands],
        }
        J.write_record(host, rec)
        J.step("apply-journaled")
        try:
            for i, op in enumerate(plan.ops):
                if op.after is not None:
                    J.write_real_state(host.path(op.path), op.after, f"{change_id}-{i}", step_prefix=f"apply-op{i}-")
            J.step("apply-files-written")
            problem = None
            for argv in plan.commands:
                problem = run_follow_up(host, argv)
                if problem:
                    break
        except OSError as exc:
            problem = f"{exc.filename or 'a file'}: {exc.strerror}"
        if problem:
            try:
                J.restore_previous(host, rec, "rollback")
            except OSError as exc:  # left "pending": the next start rolls it back
                raise ToolError(f"{problem}; rolling back failed too ({exc.strerror}); "
                                f"run `vgpu-tui journal` to retry", exit_code=1)
            rec["status"] = "rolled-back"
            rec["error"] = problem
            J.write_record(host, rec)
            raise ToolError(f"{problem}; the change was rolled back, nothing changed", exit_code=1)
        J.step("apply-commands-run")
        for op in rec["ops"]:
            op["after_sha"] = J.read_state(host, op["path"]).digest()
        rec["status"] = "applied"
        J.write_record(host, rec)
        J.step("apply-done")
        return J.to_change(rec)


def undo(host: Host, change_id: Optional[str] = None, *, force: bool = False,
         readonly: bool = False) -> J.ChangeRecord:
    """Restore the state before a change (the last applied one, or `change_id`), exactly.

    Refused when a path was changed since by something else (a later change or a hand
    edit), unless `force`: undo later changes first (in reverse order).
    """
    if readonly:
        raise ToolError("--readonly: changes are refused")
    J.recover(host)
    with J.lock(host):
        records = [r for r in J._load_records(host)]
        if change_id is None:
            applied = [r for r in records if r["status"] == "applied"]
            if not applied:
                raise ToolError("nothing to undo: no applied change in the journal", exit_code=1)
            rec = applied[-1]
        else:
            rec = J.get_record(host, change_id)
            if rec["status"] != "applied":
                raise ToolError(f"{change_id} is {rec['status']}; only an applied change can be undone", exit_code=1)
        if not force:
            for op in rec["ops"]:
                now = J.read_state(host, op["path"])
                if op.get("after_sha") and now.digest() != op["after_sha"]:
                    later = [r["id"] for r in records if r["seq"] > rec["seq"] and r["status"] == "applied"
                             and any(o["path"] == op["path"] for o in r["ops"])]
                    by = f"by {', '.join(later)}" if later else "by hand or another program"
                    raise ToolError(f"{op['path']} was changed after {rec['id']} ({by}); "
                                    f"undo {'that' if later else 'it'} first, or use --force", exit_code=1)
        rec["status"] = "undoing"
        J.write_record(host, rec)
        J.step("undo-journaled")
        problems = J.restore_previous(host, rec, "undo")
        rec["status"] = "undone"
        rec["undone_time"] = J.now_iso()
        if problems:
            rec["undo_problems"] = problems
        J.write_record(host, rec)
        J.step("undo-done")
        if problems:
            raise ToolError(f"{rec['id']} undone, but: " + "; ".join(problems), exit_code=1)
        return J.to_change(rec)
