"""ELF facts of one file: class, machine, dynamic section, exports and imports with versions.

`read_elf(host, path)` never raises for a bad file: whatever is wrong (not ELF, truncated,
a folder, unreadable, a FIFO) comes back as `ElfInfo.error`, one clear line.

Only the bytes that are needed are read (headers, the dynamic segment, `.dynsym`, the
string table and the three version tables), with `os.pread` on a descriptor: a 750 MB
`libcublasLt.so.12` costs a few megabytes of reads. pyelftools decodes symbol tables one
entry at a time (about 19k symbols/s, measured in the peers note), which alone would blow
the tree's time budget, so the fixed-layout tables are decoded here in bulk with
`struct.iter_unpack`; the test suite checks every answer against `readelf`.

Results are cached by (device, inode, size, mtime, ctime) in memory and on disk
(`probes.elfcache`), so a second look and a second start cost almost nothing.

Naming (readelf-like, documented for the JSON):
  machine      short name of e_machine as `uname -m` spells it ("x86_64", "aarch64",
               "i386"); `machine_code` is the number, `machine_name` the EM_* name.
  type         "DYN", "EXEC", "REL", "CORE" (readelf's Type column without "(...)").
  osabi        "SYSV", "GNU", "FreeBSD", ... as readelf's "OS/ABI" short names.
  byte_order   "little" or "big".
  exports      every .dynsym entry but the null one whose Ndx is not UND and whose binding
               is not LOCAL; `version` the version name, `default_version` true for `@@`
               (and for unversioned symbols), false for a hidden `@` version. A version-node
               symbol (ABS, named as its own version) has no version, as readelf prints it.
  imports      every .dynsym entry but the null one whose Ndx is UND.
"""
from __future__ import annotations

import dataclasses
import os
import stat as stat_mod
import struct
from typing import Dict, List, NamedTuple, Optional, Tuple

# --- tables (knowledge as data) -------------------------------------------------------

# e_machine -> (uname-style name, EM_* name). The ones a GPU VM may meet, and a few more.
MACHINES: Dict[int, Tuple[str, str]] = {
    0: ("none", "EM_NONE"),
    2: ("sparc", "EM_SPARC"),
    3: ("i386", "EM_386"),
    8: ("mips", "EM_MIPS"),
    20: ("ppc", "EM_PPC"),
    21: ("ppc64", "EM_PPC64"),
    22: ("s390", "EM_S390"),
    40: ("arm", "EM_ARM"),
    42: ("sh", "EM_SH"),
    43: ("sparc64", "EM_SPARCV9"),
    50: ("ia64", "EM_IA_64"),
    62: ("x86_64", "EM_X86_64"),
    183: ("aarch64", "EM_AARCH64"),
    190: ("cuda", "EM_CUDA"),
    224: ("amdgpu", "EM_AMDGPU"),
    243: ("riscv", "EM_RISCV"),
    247: ("bpf", "EM_BPF"),
    258: ("loongarch", "EM_LOONGARCH"),
}

ELF_TYPES = {0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}

OSABIS = {
    0: "SYSV", 1: "HPUX", 2: "NetBSD", 3: "GNU", 6: "Solaris", 7: "AIX", 8: "IRIX",
    9: "FreeBSD", 10: "TRU64", 11: "Modesto", 12: "OpenBSD", 97: "ARM", 255: "Standalone",
}

SYMBOL_TYPES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON",
                6: "TLS", 10: "IFUNC"}
SYMBOL_BINDS = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}

# Dynamic tags, section types and flags this module reads.
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ = 0, 1, 4, 5, 6, 10
DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS = 14, 15, 29, 30
DT_GNU_HASH, DT_VERSYM, DT_FLAGS_1 = 0x6FFFFEF5, 0x6FFFFFF0, 0x6FFFFFFB
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DF_1_NODEFLIB = 0x800
DF_ORIGIN = 0x1
SHT_DYNAMIC, SHT_DYNSYM = 6, 11
SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
SHN_UNDEF, SHN_ABS, SHN_XINDEX = 0, 0xFFF1, 0xFFFF
VER_FLG_BASE = 0x1
VERSYM_HIDDEN = 0x8000

# Sanity limits: a corrupt header must not make us read gigabytes.
MAX_TABLE_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 4 * 1024 * 1024
MAX_STRING = 64 * 1024

# Struct layouts per (class, byte order): ehdr tail, phdr, shdr, dyn, sym.
_LAYOUT = {}
for _cls in (32, 64):
    for _bo, _ch in (("little", "<"), ("big", ">")):
        if _cls == 64:
            _LAYOUT[(_cls, _bo)] = dict(
                ehdr=struct.Struct(_ch + "HHIQQQIHHHHHH"),
                phdr=struct.Struct(_ch + "IIQQQQQQ"),   # type flags off vaddr paddr filesz memsz align
                shdr=struct.Struct(_ch + "IIQQQQIIQQ"),  # name type flags addr off size link info align entsize
                dyn=struct.Struct(_ch + "qQ"),
                sym=struct.Struct(_ch + "IBBHQQ"),       # name info other shndx value size
            )
        else:
            _LAYOUT[(_cls, _bo)] = dict(
                ehdr=struct.Struct(_ch + "HHIIIIIHHHHHH"),
                phdr=struct.Struct(_ch + "IIIIIIII"),    # type off vaddr paddr filesz memsz flags align
                shdr=struct.Struct(_ch + "IIIIIIIIII"),
                dyn=struct.Struct(_ch + "iI"),
                sym=struct.Struct(_ch + "IIIBBH"),       # name value size info other shndx
            )


# --- facts ------------------------------------------------------------------------------

class ElfSymbol(NamedTuple):
    """One exported dynamic symbol (a NamedTuple: tens of thousands are built per tree)."""

    name: str
    version: Optional[str]
    default_version: bool
    type: str
    bind: str

    def __json__(self):
        return {"name": self.name, "version": self.version, "default_version": self.default_version,
                "type": self.type, "bind": self.bind}


class ElfImport(NamedTuple):
    """One undefined dynamic symbol: what the file needs from its dependencies."""

    name: str
    version: Optional[str]
    bind: str = "GLOBAL"

    def __json__(self):
        return {"name": self.name, "version": self.version, "weak": self.bind == "WEAK"}


@dataclasses.dataclass(frozen=True)
class ElfInfo:
    """What one file is, as far as the dynamic loader and `readelf -d --dyn-syms` care."""

    path: str
    is_elf: bool
    error: Optional[str] = None
    elf_class: Optional[int] = None
    byte_order: Optional[str] = None
    machine: Optional[str] = None
    machine_code: Optional[int] = None
    machine_name: Optional[str] = None
    osabi: Optional[str] = None
    type: Optional[str] = None
    soname: Optional[str] = None
    needed: Tuple[str, ...] = ()
    rpath: Tuple[str, ...] = ()
    runpath: Tuple[str, ...] = ()
    nodeflib: bool = False
    interpreter: Optional[str] = None
    exports: Tuple[ElfSymbol, ...] = ()
    imports: Tuple[ElfImport, ...] = ()
    version_definitions: Tuple[str, ...] = ()
    version_needs: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    has_dynamic: bool = False
    size: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.is_elf and self.error is None

    @property
    def is_shared_object(self) -> bool:
        return self.is_elf and self.type == "DYN"

    def compatible_with(self, other: "ElfInfo") -> bool:
        """Whether the loader would accept this object for `other`: class, byte order, machine."""
        return (self.is_elf and other.is_elf and self.elf_class == other.elf_class
                and self.byte_order == other.byte_order and self.machine_code == other.machine_code)

    def summary(self) -> str:
        """One line like `file` would say: 'ELF 64-bit LSB DYN x86_64, SONAME libx.so.1'."""
        if not self.is_elf:
            return self.error or "not an ELF file"
        if self.elf_class is None:  # the header itself could not be read: no "None-bit MSB None"
            return f"ELF ({self.error or 'unreadable header'})"
        bits = f"ELF {self.elf_class}-bit {'LSB' if self.byte_order == 'little' else 'MSB'} {self.type} {self.machine}"
        if self.soname:
            bits += f", SONAME {self.soname}"
        if self.error:
            bits += f" ({self.error})"
        return bits


class _Bad(Exception):
    """A structural problem in the file; its text becomes ElfInfo.error."""


# --- public API -------------------------------------------------------------------------

def read_elf(host, path: str, *, cache: bool = True, symbols: bool = True) -> ElfInfo:
    """The ELF facts of an inspected path (symlinks followed inside the host's root).

    `symbols=False` skips the symbol tables (exports/imports come back empty) for callers
    that need only the header and the dynamic section, e.g. a scan of a whole lib folder.
    """
    r = host.resolve(path)
    if not r.ok:
        why = {"dangling": f"no such file ({r.final} does not exist)",
               "loop": "too many levels of symbolic links (symlink loop)",
               "not-dir": f"no such file ({r.final} is not a folder)"}.get(r.status, r.error or r.status)
        return ElfInfo(path=path, is_elf=False, error=why)
    return dataclasses.replace(read_elf_real(host.path(r.final), cache=cache, symbols=symbols), path=path)


def read_elf_real(real_path: str, *, cache: bool = True, symbols: bool = True) -> ElfInfo:
    """The ELF facts of a file of this machine (symlinks followed by the kernel)."""
    real_path = os.fsdecode(real_path)
    try:
        fd = os.open(real_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno is not None and os.path.isdir(real_path):
            return ElfInfo(real_path, False, "is a directory")
        return ElfInfo(real_path, False, _oserror(exc))
    try:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            return ElfInfo(real_path, False, _oserror(exc))
        if stat_mod.S_ISDIR(st.st_mode):
            return ElfInfo(real_path, False, "is a directory")
        if not stat_mod.S_ISREG(st.st_mode):
            return ElfInfo(real_path, False, f"not a regular file ({_kind(st.st_mode)})")
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if cache:
            from probes import elfcache
            hit = elfcache.get(key, light=not symbols)
            if hit is not None:
                return dataclasses.replace(hit, path=real_path)
        info = _parse_fd(fd, real_path, st.st_size, symbols)
        if cache and not symbols:
            elfcache.put_light(key, info)
        elif cache:
            from probes import elfcache
            elfcache.put(key, info)
        return info
    finally:
        os.close(fd)


def parse_bytes(data: bytes, path: str = "<bytes>") -> ElfInfo:
    """The facts of an in-memory image (the fuzzer's entry point; no cache)."""
    return _parse(_BytesReader(data), path, len(data))


# --- parsing -------------------------------------------------------------------------------

def _oserror(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)


def _kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISFIFO, "a FIFO"), (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device"), (stat_mod.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "special file"


class _FdReader:
    def __init__(self, fd: int):
        self.fd = fd

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)


class _BytesReader:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, offset: int, size: int) -> bytes:
        return self.data[offset:offset + size]


def _parse_fd(fd: int, path: str, size: int, symbols: bool = True) -> ElfInfo:
    return _parse(_FdReader(fd), path, size, symbols)


def _parse(reader, path: str, size: int, symbols: bool = True) -> ElfInfo:
    try:
        head = reader.read(0, 64)
    except OSError as exc:
        return ElfInfo(path, False, _oserror(exc), size=size)
    if len(head) < 4 or head[:4] != b"\x7fELF":
        return ElfInfo(path, False, "not an ELF file" if head else "not an ELF file (empty)", size=size)
    if len(head) < 16:
        return ElfInfo(path, True, "truncated ELF header", size=size)
    cls = {1: 32, 2: 64}.get(head[4])
    bo = {1: "little", 2: "big"}.get(head[5])
    if cls is None:
        return ElfInfo(path, True, f"bad ELF class byte {head[4]}", size=size)
    if bo is None:
        return ElfInfo(path, True, f"bad ELF byte-order byte {head[5]}", size=size, elf_class=cls)
    p = _Parser(reader, path, size, cls, bo, head)
    p.want_symbols = symbols
    try:
        p.run()
    except _Bad as exc:
        p.error = str(exc)
    except (struct.error, ValueError, IndexError, OverflowError, MemoryError, OSError) as exc:
        p.error = f"corrupt ELF file ({type(exc).__name__}: {exc})"
    except Exception as exc:  # never raise for a bad file; the fuzzer found none of these
        p.error = f"corrupt ELF file (unexpected {type(exc).__name__}: {exc})"
    return p.info()


class _Parser:
    """One pass over one file; fills its fields, stops at the first structural problem."""

    def __init__(self, reader, path, size, cls, bo, head):
        self.r, self.path, self.size, self.cls, self.bo, self.head = reader, path, size, cls, bo, head
        self.L = _LAYOUT[(cls, bo)]
        self.u16 = struct.Struct(("<" if bo == "little" else ">") + "H")
        self.u32 = struct.Struct(("<" if bo == "little" else ">") + "I")
        self.error: Optional[str] = None
        self.fields: Dict[str, object] = {}
        self.loads: List[Tuple[int, int, int]] = []   # (vaddr, filesz, offset)
        self.sections: List[tuple] = []

    def info(self) -> ElfInfo:
        return ElfInfo(path=self.path, is_elf=True, error=self.error, elf_class=self.cls,
                       byte_order=self.bo, size=self.size, **self.fields)

    # reading helpers, bounded by the file size
    def read(self, off: int, n: int, what: str) -> bytes:
        if off < 0 or n < 0 or n > MAX_TABLE_BYTES:
            raise _Bad(f"corrupt {what} (offset {off}, size {n})")
        if off + n > self.size:
            raise _Bad(f"truncated: {what} ends at byte {off + n}, the file has {self.size}")
        data = self.r.read(off, n)
        if len(data) != n:
            raise _Bad(f"truncated: {what} could not be read whole")
        return data

    def vaddr_to_offset(self, addr: int) -> Optional[int]:
        for vaddr, filesz, off in self.loads:
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + off
        return None

    def run(self) -> None:
        L = self.L
        ehsize = 52 if self.cls == 32 else 64
        if self.size < ehsize or len(self.head) < ehsize:
            raise _Bad(f"truncated ELF header ({self.size} bytes)")
        (e_type, e_machine, _ver, _entry, e_phoff, e_shoff, _flags, _ehsz, e_phentsize, e_phnum,
         e_shentsize, e_shnum, e_shstrndx) = L["ehdr"].unpack_from(self.head, 16)
        names = MACHINES.get(e_machine, (f"machine-{e_machine}", f"EM_{e_machine}"))
        self.fields.update(machine=names[0], machine_name=names[1], machine_code=e_machine,
                           osabi=OSABIS.get(self.head[7], f"osabi-{self.head[7]}"),
                           type=ELF_TYPES.get(e_type, f"type-{e_type:#x}"))
        self._program_headers(e_phoff, e_phentsize, e_phnum)
        self._section_headers(e_shoff, e_shentsize, e_shnum)
        dyn = self._dynamic()
        if dyn is not None and getattr(self, "want_symbols", True):
            self._symbols(dyn)

    def _program_headers(self, off, entsize, num) -> None:
        if num == 0:
            return
        ph = self.L["phdr"]
        if entsize != ph.size:
            raise _Bad(f"corrupt program header size {entsize} (expected {ph.size})")
        data = self.read(off, entsize * num, "program headers")
        interp = None
        self.dynamic_seg = None
        for fields in ph.iter_unpack(data):
            if self.cls == 64:
                p_type, _fl, p_off, p_vaddr, _pa, p_filesz, _mem, _al = fields
            else:
                p_type, p_off, p_vaddr, _pa, p_filesz, _mem, _fl, _al = fields
            if p_type == PT_LOAD:
                self.loads.append((p_vaddr, p_filesz, p_off))
            elif p_type == PT_DYNAMIC and self.dynamic_seg is None:
                self.dynamic_seg = (p_off, p_filesz)
            elif p_type == PT_INTERP and interp is None:
                interp = (p_off, p_filesz)
        if interp is not None:
            raw = self.read(interp[0], min(interp[1], MAX_STRING), "interpreter path")
            self.fields["interpreter"] = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def _section_headers(self, off, entsize, num) -> None:
        if off == 0:
            return
        sh = self.L["shdr"]
        if entsize != sh.size:
            if num == 0:
                return
            raise _Bad(f"corrupt section header size {entsize} (expected {sh.size})")
        if num == 0:  # extended numbering: the real count is in section 0's sh_size
            first = sh.unpack(self.read(off, sh.size, "section header 0"))
            num = first[5]
            if num == 0:
                return
        if num > 65535 * 16:
            raise _Bad(f"corrupt section count {num}")
        data = self.read(off, sh.size * num, "section headers")
        self.sections = list(sh.iter_unpack(data))

    # -- dynamic section ------------------------------------------------------------------
    def _dynamic(self):
        seg = getattr(self, "dynamic_seg", None)
        if seg is None:
            for s in self.sections:
                if s[1] == SHT_DYNAMIC:
                    seg = (s[4], s[5])
                    break
        if seg is None:
            return None
        off, size = seg
        dn = self.L["dyn"]
        size -= size % dn.size
        data = self.read(off, min(size, MAX_ENTRIES * dn.size), "dynamic section")
        tags: Dict[int, int] = {}
        lists: Dict[int, List[int]] = {DT_NEEDED: [], DT_RPATH: [], DT_RUNPATH: []}
        for tag, val in dn.iter_unpack(data):
            if tag == DT_NULL:
                break
            if tag in lists:
                lists[tag].append(val)
            elif tag not in tags:
                tags[tag] = val
        self.fields["has_dynamic"] = True
        strtab = self._dynstr(tags)
        get = self._stringer(strtab, "dynamic string table")
        self.fields["needed"] = tuple(get(v) for v in lists[DT_NEEDED])
        if DT_SONAME in tags:
            self.fields["soname"] = get(tags[DT_SONAME])
        # Several DT_RPATH entries are unusual; glibc uses the first. So do we.
        if lists[DT_RPATH]:
            self.fields["rpath"] = tuple(get(lists[DT_RPATH][0]).split(":"))
        if lists[DT_RUNPATH]:
            self.fields["runpath"] = tuple(get(lists[DT_RUNPATH][0]).split(":"))
        self.fields["nodeflib"] = bool(tags.get(DT_FLAGS_1, 0) & DF_1_NODEFLIB)
        self.dyn_strtab = strtab
        return tags

    def _dynstr(self, tags) -> bytes:
        """The dynamic string table, located as the loader does: DT_STRTAB through PT_LOAD."""
        if DT_STRTAB in tags:
            off = self.vaddr_to_offset(tags[DT_STRTAB])
            size = tags.get(DT_STRSZ, 0)
            if off is not None and size:
                size = min(size, max(0, self.size - off))
                return self.read(off, size, "dynamic string table")
        for s in self.sections:  # no usable DT_STRTAB: the section the dynamic section links
            if s[1] == SHT_DYNAMIC and 0 < s[6] < len(self.sections):
                link = self.sections[s[6]]
                return self.read(link[4], link[5], "dynamic string table")
        if tags:
            raise _Bad("corrupt dynamic section (no string table)")
        return b""

    @staticmethod
    def _stringer(table: bytes, what: str):
        def get(off: int) -> str:
            if off >= len(table):
                raise _Bad(f"corrupt {what} reference ({off} beyond {len(table)} bytes)")
            end = table.find(b"\0", off)
            raw = table[off:] if end < 0 else table[off:end]
            return raw.decode("utf-8", "surrogateescape")
        return get

    # -- symbols and versions -------------------------------------------------------------------
    def _section(self, sh_type):
        for i, s in enumerate(self.sections):
            if s[1] == sh_type:
                return i, s
        return None, None

    def _symbols(self, tags) -> None:
        idx, dynsym = self._section(SHT_DYNSYM)
        sym = self.L["sym"]
        if dynsym is None:
            return  # readelf --dyn-syms also lists nothing without a .dynsym section
        off, size, link, entsize = dynsym[4], dynsym[5], dynsym[6], dynsym[9]
        if entsize != sym.size:
            raise _Bad(f"corrupt .dynsym entry size {entsize}")
        count = size // sym.size
        if count > MAX_ENTRIES:
            raise _Bad(f"corrupt .dynsym size {size}")
        data = self.read(off, count * sym.size, ".dynsym")
        if not 0 < link < len(self.sections):
            raise _Bad(f"corrupt .dynsym string table link {link}")
        ls = self.sections[link]
        strtab = self.read(ls[4], ls[5], ".dynsym string table")
        versions = self._versions(count)
        exports: List[ElfSymbol] = []
        imports: List[ElfImport] = []
        is64 = self.cls == 64
        tlen = len(strtab)
        find = strtab.find
        for i, fields in enumerate(sym.iter_unpack(data)):
            if i == 0:
                continue
            if is64:
                st_name, st_info, _other, shndx = fields[0], fields[1], fields[2], fields[3]
            else:
                st_name, st_info, _other, shndx = fields[0], fields[3], fields[4], fields[5]
            if st_name >= tlen:
                if st_name == 0 and tlen == 0:
                    name = ""
                else:
                    raise _Bad(f"corrupt symbol name offset {st_name} (string table has {tlen} bytes)")
            else:
                end = find(b"\0", st_name)
                name = (strtab[st_name:] if end < 0 else strtab[st_name:end]).decode("utf-8", "surrogateescape")
            bind = st_info >> 4
            ver = versions(i, shndx != SHN_UNDEF) if versions is not None else None
            if shndx == SHN_UNDEF:
                imports.append(ElfImport(name, ver[0] if ver else None, SYMBOL_BINDS.get(bind, str(bind))))
            elif bind != 0:
                if ver is not None and shndx == SHN_ABS and ver[0] == name:
                    ver = None  # a version-node symbol: readelf and nm print it bare
                exports.append(ElfSymbol(
                    name, ver[0] if ver else None, ver[1] if ver else True,
                    SYMBOL_TYPES.get(st_info & 0xF, str(st_info & 0xF)), SYMBOL_BINDS.get(bind, str(bind))))
        self.fields["exports"] = tuple(exports)
        self.fields["imports"] = tuple(imports)

    def _versions(self, count: int):
        """Per symbol index a function giving (version name, is default) or None, with readelf's rules."""
        _, vs = self._section(SHT_GNU_VERSYM)
        if vs is None:
            return None
        n = min(count, vs[5] // 2)
        raw = self.read(vs[4], n * 2, ".gnu.version")
        versym = [v[0] for v in self.u16.iter_unpack(raw)]
        defs = self._verdef()
        needs = self._verneed()
        memo: Dict[Tuple[int, bool], Optional[Tuple[str, bool]]] = {}

        def lookup(i: int, defined: bool) -> Optional[Tuple[str, bool]]:
            v = versym[i] if i < n else 0
            if v == 0:
                return None
            key = (v, defined)
            if key in memo:
                return memo[key]
            ndx = v & 0x7FFF
            res = None
            d = defs.get(ndx)
            # readelf: a defined symbol takes its verdef name (0x8001 excepted; the base
            # version means "unversioned"), otherwise (or undefined) the verneed name.
            if defined and v != 0x8001 and d is not None:
                res = None if (ndx == 1 and d[1] & VER_FLG_BASE) else (d[0], not (v & VERSYM_HIDDEN))
            elif ndx in needs:
                res = (needs[ndx], False)
            memo[key] = res
            return res
        return lookup

    def _verdef(self) -> Dict[int, Tuple[str, int]]:
        _, sec = self._section(SHT_GNU_VERDEF)
        res: Dict[int, Tuple[str, int]] = {}
        if sec is None:
            return res
        data = self.read(sec[4], sec[5], ".gnu.version_d")
        get = self._stringer(self._linked_strtab(sec), "version string")
        off, seen = 0, 0
        names = []
        while off + 20 <= len(data) and seen < 65536:
            seen += 1
            vd_version, vd_flags, vd_ndx, vd_cnt = struct.unpack_from(self.u16.format[0] + "HHHH", data, off)
            vd_aux, vd_next = struct.unpack_from(self.u16.format[0] + "II", data, off + 12)
            if vd_cnt and off + vd_aux + 8 <= len(data):
                name = get(self.u32.unpack_from(data, off + vd_aux)[0])
                res.setdefault(vd_ndx, (name, vd_flags))
                names.append(name)
            if vd_next == 0:
                break
            off += vd_next
        self.fields["version_definitions"] = tuple(names)
        return res

    def _verneed(self) -> Dict[int, str]:
        _, sec = self._section(SHT_GNU_VERNEED)
        res: Dict[int, str] = {}
        if sec is None:
            return res
        data = self.read(sec[4], sec[5], ".gnu.version_r")
        get = self._stringer(self._linked_strtab(sec), "version string")
        ch = self.u16.format[0]
        off, seen = 0, 0
        needs = []
        while off + 16 <= len(data) and seen < 65536:
            seen += 1
            _v, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from(ch + "HHIII", data, off)
            file_versions = []
            aoff = off + vn_aux
            for _ in range(min(vn_cnt, 65536)):
                if aoff + 16 > len(data):
                    break
                _hash, _flags, other, vna_name, vna_next = struct.unpack_from(ch + "IHHII", data, aoff)
                name = get(vna_name)
                res.setdefault(other & 0x7FFF, name)
                file_versions.append(name)
                if vna_next == 0:
                    break
                aoff += vna_next
            needs.append((get(vn_file), tuple(file_versions)))
            if vn_next == 0:
                break
            off += vn_next
        self.fields["version_needs"] = tuple(needs)
        return res

    def _linked_strtab(self, sec) -> bytes:
        link = sec[6]
        if not 0 < link < len(self.sections):
            raise _Bad(f"corrupt version section string table link {link}")
        ls = self.sections[link]
        if ls[4] == getattr(self, "_last_str_off", None):
            return self._last_str
        data = self.read(ls[4], ls[5], "version string table")
        self._last_str_off, self._last_str = ls[4], data
        return data


def readelf_style(sym: ElfSymbol) -> str:
    """`name@@VER`, `name@VER` or `name`, as readelf --dyn-syms prints an export."""
    if sym.version is None:
        return sym.name
    return f"{sym.name}{'@@' if sym.default_version else '@'}{sym.version}"
