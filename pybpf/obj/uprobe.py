"""Where a uprobe goes: ``binary:symbol+offset`` targets, binary lookup, and
ELF symbol -> file offset resolution (what the uprobe PMU wants).

Pure except for reading files: no syscalls.  Follows libbpf's conventions:
``SEC("uprobe/BINARY:FUNC[+OFFSET]")`` or ``SEC("uprobe/BINARY:RAW_OFFSET")``;
a BINARY without '/' is looked up like the dynamic linker would (a shared
library by name via LD_LIBRARY_PATH, /etc/ld.so.cache and the standard
library directories; an executable via PATH); FUNC may carry a symbol
version (``malloc@GLIBC_2.2.5``).
"""
from __future__ import annotations

import functools
import os
import re
import struct
from typing import (TYPE_CHECKING, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple,
                    Type, cast)

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerSymSection
    from elftools.elf.sections import SymbolTableSection

from ..errors import AttachError
from ..files import open_regular


class Target(NamedTuple):
    binary: str
    func: str          # "" for a raw offset
    offset: int        # added to the function's offset, or the raw file offset


_FUNC_OFF = re.compile(r"^([^+\s]+?)(?:\+(0[xX][0-9a-fA-F]+|\d+))?$")


def parse_number(text: str) -> Optional[int]:
    """C-style integer (0x.., 0.. octal, decimal) or None."""
    try:
        return int(text, 0) if not re.fullmatch(r"0\d+", text) else int(text, 8)
    except ValueError:
        return None


def parse_target(target: str, retprobe: bool = False) -> Target:
    """Parse the part of SEC("uprobe/...") after the prefix: BINARY:FUNC[+OFF] or
    BINARY:RAW_OFFSET.  AttachError names what is malformed."""
    binary, sep, spec = target.partition(":")
    if not sep or not binary or not spec:
        raise AttachError(f"uprobe target {target!r} must look like BINARY:FUNCTION[+OFFSET]"
                          " or BINARY:OFFSET")
    raw = parse_number(spec)
    if raw is not None:
        return Target(binary, "", raw)
    m = _FUNC_OFF.match(spec)
    if m is None:
        raise AttachError(f"uprobe target {target!r}: bad function {spec!r}")
    offset = parse_number(m.group(2)) if m.group(2) else 0
    if retprobe and offset:
        raise AttachError(f"uprobe target {target!r}: uretprobes take no offset")
    return Target(binary, m.group(1), offset or 0)


def glob(pattern: str) -> "re.Pattern[str]":
    """libbpf's glob as a regex (use .fullmatch): '*' any run, '?' any one
    character, everything else literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.S)


# ------------------------------------------------------------------ finding the binary

_LDCACHE_MAGIC = b"glibc-ld.so.cache1.1"
_LDCACHE_OLD_MAGIC = b"ld.so-1.7.0"
_LDCACHE_HDR = struct.Struct("<20sIIB3xI12x")        # magic+version, nlibs, len_strings, ...
_LDCACHE_ENTRY = struct.Struct("<iIIIQ")             # flags, key, value, osversion, hwcap
_LDCACHE_OLD_ENTRY_SIZE = 12

# ld.so.cache entry flags (glibc ldconfig.h) of libraries the running interpreter can load.
_FLAG_ELF_LIBC6 = 0x0003
_LDCACHE_ARCH_FLAGS = {
    "x86_64": 0x0300 | _FLAG_ELF_LIBC6, "aarch64": 0x0a00 | _FLAG_ELF_LIBC6,
    "ppc64le": 0x0500 | _FLAG_ELF_LIBC6, "ppc64": 0x0500 | _FLAG_ELF_LIBC6,
    "s390x": 0x0400 | _FLAG_ELF_LIBC6, "i686": _FLAG_ELF_LIBC6, "i386": _FLAG_ELF_LIBC6,
    "armv7l": 0x0900 | _FLAG_ELF_LIBC6,
}


def parse_ld_so_cache(data: bytes) -> Dict[str, List[Tuple[int, str]]]:
    """soname -> [(flags, path)] from /etc/ld.so.cache (the glibc "1.1" format, alone
    or after the old libc5 table).  Unknown or damaged input yields what parsed."""
    start = 0
    if data.startswith(_LDCACHE_OLD_MAGIC):
        nold = struct.unpack_from("<I", data, 12)[0] if len(data) >= 16 else 0
        start = data.find(_LDCACHE_MAGIC, 16 + nold * _LDCACHE_OLD_ENTRY_SIZE)
    if start < 0 or not data.startswith(_LDCACHE_MAGIC, start):
        return {}
    try:
        _, nlibs, _, _, _ = _LDCACHE_HDR.unpack_from(data, start)
    except struct.error:
        return {}
    out: Dict[str, List[Tuple[int, str]]] = {}
    pos = start + _LDCACHE_HDR.size

    def cstr(off: int) -> Optional[str]:
        end = data.find(b"\0", start + off)
        return data[start + off:end].decode(errors="replace") if end >= 0 else None

    for _ in range(nlibs):
        if pos + _LDCACHE_ENTRY.size > len(data):
            break
        flags, key, value, _, _ = _LDCACHE_ENTRY.unpack_from(data, pos)
        pos += _LDCACHE_ENTRY.size
        soname, path = cstr(key), cstr(value)
        if soname and path:
            out.setdefault(soname, []).append((flags, path))
    return out


def _ld_cache_lookup(soname: str) -> Optional[str]:
    try:
        with open("/etc/ld.so.cache", "rb") as f:
            entries = parse_ld_so_cache(f.read()).get(soname, [])
    except OSError:
        return None
    want = _LDCACHE_ARCH_FLAGS.get(os.uname().machine)
    for flags, path in entries:
        if want is None or flags == want:
            return path
    return None


def _arch_lib_dirs() -> List[str]:
    triple = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
              "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
              "riscv64": "riscv64-linux-gnu", "armv7l": "arm-linux-gnueabihf",
              "i686": "i386-linux-gnu"}.get(os.uname().machine)
    return [f"/lib/{triple}", f"/usr/lib/{triple}"] if triple else []


def _search(name: str, dirs: List[str]) -> Optional[str]:
    for d in dirs:
        path = os.path.join(d, name)
        if d and os.path.isfile(path):
            return path
    return None


def resolve_binary(name: str) -> str:
    """Full path of a uprobe binary given as a path or a bare name."""
    if "/" in name:
        if not os.path.exists(name):
            raise AttachError(f"uprobe binary {name} does not exist")
        return name
    if name.endswith(".so") or ".so." in name:
        env = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
        path = (_search(name, env) or _ld_cache_lookup(name)
                or _search(name, _arch_lib_dirs() + ["/lib64", "/usr/lib64", "/lib",
                                                     "/usr/lib"]))
        where = "LD_LIBRARY_PATH, /etc/ld.so.cache, the standard library directories"
    else:
        dirs = [d for d in os.environ.get("PATH", "").split(":") if d]
        path = _search(name, dirs + ["/usr/bin", "/usr/sbin"])
        where = "PATH, /usr/bin, /usr/sbin"
    if path is None:
        raise AttachError(f"uprobe binary {name!r} not found (searched {where})")
    return path


# ------------------------------------------------------------------ ELF symbols -> offsets

class _Sym(NamedTuple):
    name: str          # without any @VERSION
    version: str       # "" when unversioned
    hidden: bool       # only reachable with an explicit version
    weak: bool
    offset: int        # file offset


class Segment(NamedTuple):
    """A PT_LOAD program header: ``size`` file-backed bytes at ``start`` in memory,
    read from file offset ``offset``."""

    start: int
    size: int          # p_filesz
    offset: int
    executable: bool   # PF_X


_PF_X = 0x1


def elf_faults() -> Tuple[Type[Exception], ...]:
    """What pyelftools raises on a malformed host binary: its own ELFError, and
    what its decoding lets through (a bad string, a short read, a missing table
    entry, an offset the file system cannot seek to: EINVAL or OverflowError)."""
    from elftools.common.exceptions import ELFError
    return (ELFError, ValueError, struct.error, KeyError, IndexError, OSError,
            OverflowError)


def fault_text(e: Exception) -> str:
    """What an :func:`elf_faults` exception says about the file."""
    if isinstance(e, (OSError, OverflowError)):
        return f"an offset in its headers is out of range ({e})"
    return str(e)


def load_segments(elf: ELFFile) -> List[Segment]:
    """The PT_LOAD segments of an ELF file, in program header order."""
    return [Segment(s["p_vaddr"], s["p_filesz"], s["p_offset"], bool(s["p_flags"] & _PF_X))
            for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]


def segment_at(vaddr: int, segments: Sequence[Segment]) -> Optional[Segment]:
    """The segment whose file-backed part holds ``vaddr``, or None."""
    return next((s for s in segments if s.start <= vaddr < s.start + s.size), None)


def _vaddr_to_offset(vaddr: int, segments: Sequence[Segment]) -> Optional[int]:
    seg = segment_at(vaddr, segments)
    return vaddr - seg.start + seg.offset if seg is not None else None


def _version_names(elf: ELFFile) -> Dict[int, str]:
    verdef = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_GNU_verdef"), None)
    if verdef is None:
        return {}
    return {v["vd_ndx"]: next(iter(auxs)).name
            for v, auxs in cast("GNUVerDefSection", verdef).iter_versions()}


def _symbols(elf: ELFFile, sh_type: str) -> Iterator[_Sym]:
    """Defined STT_FUNC symbols of the first section of sh_type, with file offsets."""
    table = next((s for s in elf.iter_sections() if s["sh_type"] == sh_type), None)
    if table is None:
        return
    segments = load_segments(elf)
    versym = names = None
    if sh_type == "SHT_DYNSYM":
        versym = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_GNU_versym"),
                      None)
        names = _version_names(elf)
    for idx, sym in enumerate(cast("SymbolTableSection", table).iter_symbols()):
        if sym["st_info"]["type"] != "STT_FUNC" or sym["st_shndx"] == "SHN_UNDEF":
            continue
        offset = _vaddr_to_offset(sym["st_value"], segments)
        if offset is None:
            continue
        name, _, version = sym.name.partition("@")
        hidden = False
        if versym is not None and names is not None:
            ndx = cast("GNUVerSymSection", versym).get_symbol(idx)["ndx"]
            if isinstance(ndx, int):
                hidden = bool(ndx & 0x8000)
                version = names.get(ndx & 0x7FFF, "") if ndx & 0x7FFF > 1 else ""
        yield _Sym(name, version.lstrip("@"), hidden,
                   sym["st_info"]["bind"] == "STB_WEAK", offset)


_SH_TYPES = ("SHT_DYNSYM", "SHT_SYMTAB")


@functools.lru_cache(maxsize=8)
def _read_symbols(path: str, _identity: Tuple[int, int, int]) -> Dict[str, List[_Sym]]:
    from elftools.elf.elffile import ELFFile          # pyelftools: only for uprobes
    fd = open_regular(path, lambda why, err: AttachError(
        f"cannot open uprobe binary {path}: {why}", err))
    with os.fdopen(fd, "rb") as f:
        try:
            elf = ELFFile(f)
            return {t: list(_symbols(elf, t)) for t in _SH_TYPES}
        except elf_faults() as e:
            raise AttachError(f"uprobe binary {path} is not a valid ELF file: "
                              f"{fault_text(e)}") from None


def symbols(path: str) -> Dict[str, List[_Sym]]:
    """The function symbols of .dynsym and .symtab, cached while the file is unchanged."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise AttachError(f"cannot open uprobe binary {path}: {e.strerror}", e.errno) from None
    return _read_symbols(os.path.realpath(path), (st.st_dev, st.st_ino, st.st_mtime_ns))


def func_offset(path: str, func: str) -> int:
    """File offset of function ``func`` (``name``, ``name@VER`` or ``name@@VER``).

    .dynsym is searched first, then .symtab (a stripped binary only has the
    former, a static one only the latter).  Without a version, hidden (non-
    default) versions are ignored when a default one exists; a weak definition
    yields to a global one; two different global definitions are ambiguous.
    """
    name, _, version = func.partition("@")
    version = version.lstrip("@")
    tables = symbols(path)
    for sh_type in _SH_TYPES:
        found = [s for s in tables[sh_type] if s.name == name
                 and (not version or s.version == version)]
        if not version and any(not s.hidden for s in found):
            found = [s for s in found if not s.hidden]
        strong = {s.offset for s in found if not s.weak}
        if len(strong) > 1:
            raise AttachError(f"function {func!r} is ambiguous in {path} (offsets "
                              f"{', '.join(hex(o) for o in sorted(strong))}); add "
                              "@VERSION or use an offset")
        offsets = strong or {s.offset for s in found}
        if offsets:
            return min(offsets)
    raise AttachError(f"function {func!r} not found in {path}")


def pattern_offsets(path: str, pattern: str) -> List[Tuple[str, int]]:
    """(name, file offset) of every function whose name matches a glob, from .symtab
    or, when that has none, .dynsym (as libbpf's uprobe.multi)."""
    tables, match = symbols(path), glob(pattern).fullmatch
    for sh_type in reversed(_SH_TYPES):
        seen: Dict[int, str] = {}
        for s in tables[sh_type]:
            if match(s.name):
                seen.setdefault(s.offset, s.name)
        if seen:
            return sorted(((n, o) for o, n in seen.items()), key=lambda t: t[1])
    raise AttachError(f"no function matching {pattern!r} in {path}")
