"""libbpf-style externs: ``__kconfig`` values, ``__ksym`` variables and kfunc calls.

An extern is an undefined ELF symbol whose BTF VAR (or FUNC) sits in the DATASEC
``.kconfig`` or ``.ksyms``.  The work follows libbpf's three steps:

* :func:`collect` (at open, pure): the externs of an object, and the layout of
  the ``.kconfig`` map (sorted by alignment, size and name, as libbpf lays it
  out), written into the object's DATASEC.
* :func:`resolve` (at load): their values from the running kernel, asked of a
  :class:`Host` (Kconfig, kernel version, kallsyms, kernel BTF);
  :class:`pybpf.kernel.host.LiveHost` reads the real system, tests pass their own.
* :func:`relocate` (at link, pure): ``ld_imm64`` of a kconfig extern -> the
  ``.kconfig`` map value; of a typed ksym -> ``BPF_PSEUDO_BTF_ID``; of an untyped
  one -> its kallsyms address; a kfunc call -> ``BPF_PSEUDO_KFUNC_CALL``.

:func:`btf_for_kernel` rewrites what the kernel's BTF checker refuses (extern
linkage, FUNCs in a DATASEC, unnamed kfunc parameters) as libbpf does.
"""
from __future__ import annotations

import enum
import re
import warnings
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, cast

from ..asm import insn as I
from .. import uapi
from ..btf import BTF
from ..btf import types as T
from .elf import (R_BPF_64_32, R_BPF_64_64, SHN_UNDEF, SHT_NOBITS, SHT_SYMTAB, STB_GLOBAL,
                  STB_WEAK, STT_NOTYPE, ElfObject, Reloc, Section)
from ..errors import BPFPermissionError, ObjectError
from ..record import Record

KCONFIG_SEC = ".kconfig"
KSYMS_SEC = ".ksyms"
#: libbpf's POISON_CALL_KFUNC_BASE: an unresolved __weak kfunc call becomes
#: ``call unknown#(base + extern index)``, harmless in code the verifier prunes
POISON_KFUNC_BASE = 2002000000
_POISON_KFUNC = re.compile(r"invalid func unknown#(2002\d{6})")
_NO_KSYM_ADDR = re.compile(r"ldimm64 failed to find the address for kernel symbol '([^']*)'")
DUMMY_KSYM = "dummy_ksym"
TRI_NO, TRI_YES, TRI_MODULE = 0, 1, 2          # enum libbpf_tristate
_U64 = (1 << 64) - 1


class Kcfg(enum.Enum):
    """How a ``__kconfig`` extern's C type takes Kconfig values (libbpf's kcfg_type)."""

    CHAR = "char"
    BOOL = "bool"
    INT = "integer"
    TRISTATE = "tristate"
    CHAR_ARRAY = "char array"


class Extern(Record):
    """One ``__kconfig`` / ``__ksym`` extern or kfunc: its symbol, BTF and layout."""

    _fields = ("name", "symbol", "btf_id", "weak", "section", "index", "kcfg", "size", "align",
               "signed", "offset", "type_id", "is_func")
    __slots__ = _fields
    name: str
    symbol: int             # ELF symbol index
    btf_id: int             # its VAR or FUNC in the object's BTF
    weak: bool
    section: str            # KCONFIG_SEC or KSYMS_SEC
    index: int              # position in Externs.items (names poisoned kfunc calls)
    # .kconfig
    kcfg: Optional[Kcfg]
    size: int
    align: int
    signed: bool
    offset: int             # within the .kconfig map
    # .ksyms
    type_id: int            # local type: a kfunc's FUNC_PROTO; 0 for an untyped ksym
    is_func: bool

    def __init__(self, name: str, symbol: int, btf_id: int, weak: bool, section: str,
                 index: int = 0, kcfg: Optional[Kcfg] = None, size: int = 0,
                 align: int = 1, signed: bool = False, offset: int = 0,
                 type_id: int = 0, is_func: bool = False) -> None:
        self.name = name
        self.symbol = symbol
        self.btf_id = btf_id
        self.weak = weak
        self.section = section
        self.index = index
        self.kcfg = kcfg
        self.size = size
        self.align = align
        self.signed = signed
        self.offset = offset
        self.type_id = type_id
        self.is_func = is_func

    @property
    def is_kconfig(self) -> bool:
        return self.section == KCONFIG_SEC

    def error(self, message: str) -> ObjectError:
        kind = "kcfg" if self.is_kconfig else "func ksym" if self.is_func else "ksym"
        return ObjectError(f"extern ({kind}) {self.name!r}: {message}", section=self.section)


class Externs(Record):
    """Every extern of an object, in libbpf's order (kconfig ones first)."""

    _fields = ("items", "kconfig_size", "kconfig_btf_id", "symtab_index")
    __slots__ = _fields
    items: List[Extern]
    kconfig_size: int
    kconfig_btf_id: int         # the DATASEC '.kconfig' (the map's value type)
    symtab_index: int           # libbpf's section index for the .kconfig map

    def __init__(self, items: Optional[List[Extern]] = None, kconfig_size: int = 0,
                 kconfig_btf_id: int = 0, symtab_index: int = 0) -> None:
        self.items = [] if items is None else items
        self.kconfig_size = kconfig_size
        self.kconfig_btf_id = kconfig_btf_id
        self.symtab_index = symtab_index

    def __iter__(self) -> Iterator[Extern]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def by_symbol(self, index: int) -> Optional[Extern]:
        return next((e for e in self.items if e.symbol == index), None)

    def kconfig_section(self) -> Section:
        """A stand-in ELF section for the .kconfig map (it has none in the file)."""
        return Section(self.symtab_index, KCONFIG_SEC, SHT_NOBITS, 0, self.kconfig_size, 8, b"")


# ====================================================================== collect (pure)

def collect(elf: ElfObject, btf: Optional[BTF]) -> Externs:
    """The externs of an object; lays out the .kconfig DATASEC of ``btf`` in place."""
    symtab = next((s.index for s in elf.sections if s.type == SHT_SYMTAB), 0)
    out = Externs(symtab_index=symtab)
    homes: Dict[int, str] = {}          # VAR/FUNC id -> the DATASEC holding it
    for t in btf or ():
        if isinstance(t, T.Datasec):
            for vsi in t.vars:
                homes.setdefault(vsi.type, t.name)
    for sym in elf.symbols:
        if sym.shndx != SHN_UNDEF or sym.type != STT_NOTYPE or not sym.name \
                or sym.bind not in (STB_GLOBAL, STB_WEAK):
            continue
        if btf is None:
            raise ObjectError(f"extern {sym.name!r} needs BTF to be resolved: build with "
                              "clang -g", section=".symtab", offset=sym.index * 24)
        out.items.append(_describe(btf, homes, sym.name, sym.index, sym.bind == STB_WEAK))
    if not out.items:
        return out
    # kconfig ones first, by descending alignment, then size, then name (libbpf's order)
    out.items.sort(key=lambda e: (0, -e.align, e.size, e.name) if e.is_kconfig
                   else (1, 0, 0, e.name))
    for index, ext in enumerate(out.items):
        ext.index = index
    btf = cast(BTF, btf)        # an extern without BTF raised above
    _layout_kconfig(btf, out)
    _check_datasec(btf, KSYMS_SEC, out)
    return out


def _describe(btf: BTF, homes: Dict[int, str], name: str, symbol: int, weak: bool) -> Extern:
    ids = sorted(i for i in btf.find(name)
                 if btf.kind_of(i) in (uapi.BTF_KIND_VAR, uapi.BTF_KIND_FUNC))
    if not ids:
        raise ObjectError(f"extern {name!r}: no BTF VAR or FUNC of that name", section=".BTF")
    btf_id = ids[0]
    t = cast("T.Var | T.Func", btf[btf_id])
    extern_linkage = uapi.BTF_VAR_GLOBAL_EXTERN if isinstance(t, T.Var) \
        else uapi.BTF_FUNC_EXTERN
    if t.linkage != extern_linkage:
        raise ObjectError(f"extern {name!r}: its BTF {type(t).__name__.upper()} is not "
                          f"declared extern (linkage {t.linkage})", section=".BTF")
    section = homes.get(btf_id)
    if section is None:
        raise ObjectError(f"extern {name!r}: no DATASEC holds its BTF type [{btf_id}] "
                          "(declare it __kconfig or __ksym)", section=".BTF")
    ext = Extern(name, symbol, btf_id, weak, section)
    if section == KSYMS_SEC:
        ext.is_func = isinstance(t, T.Func)
        ext.type_id = btf.resolve(t.type)
    elif section == KCONFIG_SEC:
        if isinstance(t, T.Func):
            raise ext.error(f"a function cannot be declared in {KCONFIG_SEC}")
        ext.size = btf.size_of(t.type)
        if ext.size <= 0:
            raise ext.error(f"type {btf.type_name(t.type)} has no size")
        ext.kcfg, ext.signed = kcfg_type(btf, t.type)
        if ext.kcfg is None:
            raise ext.error(f"type {btf.type_name(t.type)} is unsupported (use a bool, "
                            "char, integer, enum libbpf_tristate or char array)")
        ext.align = 1 if ext.kcfg == Kcfg.CHAR_ARRAY else ext.size
    else:
        raise ObjectError(f"extern {name!r} is in DATASEC {section!r}: only "
                          f"{KCONFIG_SEC} and {KSYMS_SEC} externs are supported",
                          section=".BTF")
    return ext


def kcfg_type(btf: BTF, type_id: int) -> Tuple[Optional[Kcfg], bool]:
    """(how the type takes Kconfig values or None, whether it is signed)."""
    t = btf[btf.resolve(type_id)]
    if isinstance(t, T.Int):
        if t.is_bool:
            return (Kcfg.BOOL if t.size == 1 else None), False
        if t.size == 1:
            return Kcfg.CHAR, t.signed
        return (Kcfg.INT if t.size in (2, 4, 8) else None), t.signed
    if isinstance(t, T.Enum):       # and Enum64
        ok = t.name == "libbpf_tristate" and (t.size == 4 or isinstance(t, T.Enum64))
        return (Kcfg.TRISTATE if ok else None), False
    if isinstance(t, T.Array):      # of chars only: the element is not followed further
        elem = btf[btf.resolve(t.type)]
        ok = t.nelems > 0 and isinstance(elem, T.Int) and elem.size == 1 and not elem.is_bool
        return (Kcfg.CHAR_ARRAY if ok else None), False
    return None, False


def _layout_kconfig(btf: BTF, externs: Externs) -> None:
    off = 0
    for ext in externs:
        if ext.is_kconfig:
            ext.offset = -(-off // ext.align) * ext.align
            off = ext.offset + ext.size
    externs.kconfig_size = off
    datasec = _check_datasec(btf, KCONFIG_SEC, externs)
    if datasec is None:
        return
    externs.kconfig_btf_id = btf.find(KCONFIG_SEC, uapi.BTF_KIND_DATASEC)[0]
    by_name = {e.name: e for e in externs if e.is_kconfig}
    datasec.size = off
    for vsi in datasec.vars:
        ext = by_name[btf[vsi.type].name]
        vsi.offset, vsi.size = ext.offset, ext.size
    datasec.vars.sort(key=lambda v: v.offset)


def _check_datasec(btf: BTF, name: str, externs: Externs) -> Optional[T.Datasec]:
    """The DATASEC ``name``; each of its entries must be one of the externs."""
    ids = btf.find(name, uapi.BTF_KIND_DATASEC)
    if not ids:
        return None
    datasec = cast(T.Datasec, btf[ids[0]])
    names = {e.name for e in externs if e.section == name}
    for vsi in datasec.vars:
        t = btf[vsi.type]
        if t.name not in names:
            raise ObjectError(f"{name} entry {t.name!r} ({type(t).__name__.upper()}) has no "
                              "extern symbol in the ELF symbol table", section=".BTF")
    return datasec


# ====================================================================== Kconfig values (pure)

def parse_kconfig(text: str) -> Dict[str, str]:
    """NAME -> raw value of each ``CONFIG_NAME=value`` line (the first one wins).

    As libbpf: other lines ("# CONFIG_X is not set", blanks) are skipped, only the
    final newline is trimmed, and a CONFIG_ line without '=' or value is an error."""
    out: Dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.startswith("CONFIG_"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not value:
            raise ObjectError(f"Kconfig line {lineno} {line!r}: "
                              f"{'no value' if sep else 'no separator'}", section=KCONFIG_SEC)
        out.setdefault(name, value)
    return out


def parse_u64(text: str) -> int:
    """An integer as C's strtoull(text, &end, 0) reads it, all of ``text`` consumed:
    decimal, 0x hex or 0 octal; a '-' wraps around 2^64.  ValueError otherwise."""
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if m is None:
        raise ValueError(f"{text!r} is not an integer")
    digits = m.group(2)
    value = int(digits, 16 if digits[:2] in ("0x", "0X") else 8 if digits[0] == "0" else 10)
    if value > _U64:
        raise ValueError(f"{text!r} does not fit in 64 bits")
    return (-value) & _U64 if m.group(1) == "-" else value


def encode_kconfig_value(ext: Extern, value: str) -> bytes:
    """The bytes a Kconfig value puts in ``ext`` (libbpf's rules for y/n/m, quoted
    strings and numbers), or ObjectError naming the extern."""
    first = value[:1]
    if first in ("y", "n", "m"):
        return _encode_tristate(ext, first)
    if first == '"':
        return _encode_string(ext, value)
    try:
        number = parse_u64(value)
    except ValueError as e:
        raise ext.error(f"value {value!r} isn't a valid integer ({e})") from None
    if ext.kcfg not in (Kcfg.INT, Kcfg.CHAR):
        raise ext.error(f"value {value!r} implies an integer type, not "
                        f"{cast(Kcfg, ext.kcfg).value}")
    return encode_number(ext, number)


def _encode_tristate(ext: Extern, value: str) -> bytes:
    if ext.kcfg == Kcfg.BOOL:
        if value == "m":
            raise ext.error("value 'm' implies a tristate or char type, not bool")
        return bytes([value == "y"])
    if ext.kcfg == Kcfg.TRISTATE:
        tri = {"y": TRI_YES, "m": TRI_MODULE, "n": TRI_NO}[value]
        return tri.to_bytes(ext.size, "little")
    if ext.kcfg == Kcfg.CHAR:
        return value.encode()
    raise ext.error(f"value {value!r} implies a bool, tristate or char type, "
                    f"not {ext.kcfg.value if ext.kcfg else 'unknown'}")


def _encode_string(ext: Extern, value: str) -> bytes:
    if ext.kcfg != Kcfg.CHAR_ARRAY:
        raise ext.error(f"value {value} implies a char array")
    if len(value) < 2 or not value.endswith('"'):
        raise ext.error(f"invalid string value {value}")
    raw = value[1:-1].encode(errors="surrogateescape")
    if len(raw) >= ext.size:
        warnings.warn(f"extern (kcfg) {ext.name!r}: string {value} ({len(raw)} bytes) "
                      f"truncated to {ext.size - 1} bytes")
        raw = raw[:ext.size - 1]
    return raw.ljust(ext.size, b"\0")


def encode_number(ext: Extern, value: int) -> bytes:
    """A number (a u64, as C holds it) into an int, char or bool extern."""
    if ext.kcfg not in (Kcfg.INT, Kcfg.CHAR, Kcfg.BOOL):
        raise ext.error(f"value {value} implies an integer, char or bool type")
    if ext.kcfg == Kcfg.BOOL and value > 1:
        raise ext.error(f"value {value} isn't boolean compatible")
    bits = ext.size * 8
    fits = bits == 64 or ((value + (1 << (bits - 1))) & _U64 < 1 << bits if ext.signed
                          else value >> bits == 0)
    if not fits:
        raise ext.error(f"value {value} doesn't fit in {ext.size} bytes")
    return (value & ((1 << bits) - 1)).to_bytes(ext.size, "little")


def kernel_version_code(release: str, version: str = "", signature: str = "") -> int:
    """LINUX_KERNEL_VERSION as libbpf computes it: KERNEL_VERSION(a, b, c) from
    Ubuntu's /proc/version_signature ("Ubuntu 5.15.0-91.101-generic 5.15.131"),
    else a Debian uname version ("#1 SMP Debian 6.1.76-1 ..."), else the uname
    release; 0 when none parses."""
    number = r"\s*(\d+)\.(\d+)\.(\d+)"
    fields = signature.split(None, 2)
    m = re.match(number, fields[2]) if len(fields) == 3 else None
    if m is None and "Debian " in version:
        m = re.match("Debian " + number, version[version.index("Debian "):])
    if m is None:
        m = re.match(number, release)
    if m is None:
        return 0
    major, minor, patch = (int(g) for g in m.groups())
    return ((major << 16) + (minor << 8) + min(patch, 255)) & 0xFFFFFFFF


def kallsyms_addresses(lines: Iterable[str], names: Iterable[str]) -> Dict[str, int]:
    """Address of each of ``names`` in /proc/kallsyms text; ObjectError when one has
    two different addresses.  A data symbol renamed by LTO (``name.llvm.NNN``)
    counts as ``name``, as in libbpf."""
    wanted = set(names)
    found: Dict[str, int] = {}
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) < 3:
            continue
        addr, kind, name = parts[:3]
        if kind == "d" and ".llvm." in name:
            name = name[:name.index(".llvm.")]
        if name not in wanted:
            continue
        try:
            value = int(addr, 16)
        except ValueError:
            raise ObjectError(f"/proc/kallsyms: malformed line {line.strip()!r}") from None
        if found.setdefault(name, value) != value:
            raise ObjectError(f"extern (ksym) {name!r}: resolution is ambiguous: "
                              f"{found[name]:#x} or {value:#x}", section=KSYMS_SEC)
    return found


# ====================================================================== the running system

class Host:
    """What resolving externs asks of the running system (override for tests)."""

    def kernel_version(self) -> int:
        raise NotImplementedError

    def kconfig(self) -> Optional[str]:
        """The running kernel's Kconfig text, None if there is none to read."""
        raise NotImplementedError

    def kallsyms(self) -> Iterable[str]:
        raise NotImplementedError

    def has_bpf_cookie(self) -> bool:
        raise NotImplementedError

    def has_syscall_wrapper(self) -> bool:
        raise NotImplementedError

    def find(self, name: str, kind: int) -> Optional[Tuple[BTF, int, str]]:
        """(kernel BTF, type id, module name or "" for vmlinux) of a named type."""
        raise NotImplementedError

    def module_btf_fd(self, module: str) -> int:
        raise NotImplementedError


# ====================================================================== resolve

class KsymTarget(Record):
    """Where a resolved ksym points in the kernel."""

    _fields = ("btf_id", "btf_obj_fd", "fd_index", "addr")
    __slots__ = _fields
    btf_id: int             # typed ksym / kfunc: its VAR or FUNC in kernel BTF
    btf_obj_fd: int         # the module BTF object holding it (0: vmlinux)
    fd_index: int           # kfunc calls: index of btf_obj_fd in fd_array (0: vmlinux)
    addr: int               # untyped ksym: its kallsyms address

    def __init__(self, btf_id: int = 0, btf_obj_fd: int = 0, fd_index: int = 0,
                 addr: int = 0) -> None:
        self.btf_id = btf_id
        self.btf_obj_fd = btf_obj_fd
        self.fd_index = fd_index
        self.addr = addr


class Resolution(Record):
    """The values of an object's externs in one kernel."""

    _fields = ("kconfig", "ksyms", "fd_array", "missing")
    __slots__ = _fields
    kconfig: bytes                      # the .kconfig map's value
    ksyms: Dict[str, KsymTarget]        # resolved ksyms only
    fd_array: List[int]                 # BPF_PROG_LOAD fd_array
    #: strong externs left unresolved, name -> why (only with ``strict=False``)
    missing: Dict[str, str]

    def __init__(self, kconfig: bytes = b"",
                 ksyms: Optional[Dict[str, KsymTarget]] = None,
                 fd_array: Optional[List[int]] = None,
                 missing: Optional[Dict[str, str]] = None) -> None:
        self.kconfig = kconfig
        self.ksyms = {} if ksyms is None else ksyms
        self.fd_array = [] if fd_array is None else fd_array
        self.missing = {} if missing is None else missing


def resolve(externs: Externs, btf: Optional[BTF], host: Host,
            extra_kconfig: Optional[str] = None, strict: bool = True) -> Resolution:
    """Resolve every extern against ``host`` (libbpf's bpf_object__resolve_externs).

    ``extra_kconfig`` (libbpf's ``kconfig`` open option) is read before the
    system's Kconfig, which is then only read for CONFIG_ values still missing.
    A strong extern left unresolved is an ObjectError (with ``strict=False``: it
    is listed in ``Resolution.missing`` and left as a __weak one); a __weak one
    reads as 0."""
    res = Resolution(bytes(externs.kconfig_size))
    if not externs.items:
        return res
    assert btf is not None      # collect() refuses externs without BTF
    image = bytearray(res.kconfig)
    done = set()
    config = [e for e in externs if e.is_kconfig and e.name.startswith("CONFIG_")]
    for ext in externs:
        if ext.is_kconfig and not ext.name.startswith("CONFIG_"):
            try:
                value = _virtual(ext, host)
            except ObjectError as e:
                if strict:
                    raise
                res.missing[ext.name] = str(e)
                continue
            if value is not None:
                _store(image, ext, encode_number(ext, value))
                done.add(ext.name)
    for text in ([extra_kconfig] if extra_kconfig is not None else []) + [None]:
        missing = [e for e in config if e.name not in done]
        if not missing:
            break
        if text is None:                    # the system's, once nothing else is left
            text = host.kconfig()
            if text is None:
                raise ObjectError("no kernel config to resolve "
                                  f"{', '.join(e.name for e in missing)}: neither "
                                  "/boot/config-$(uname -r) nor /proc/config.gz "
                                  "(pass the values in BPFObject.kconfig)", KCONFIG_SEC)
        values = parse_kconfig(text)
        for ext in missing:
            if ext.name in values:
                _store(image, ext, encode_kconfig_value(ext, values[ext.name]))
                done.add(ext.name)
    _resolve_ksyms(externs, btf, host, res, strict)
    done.update(res.ksyms)
    for ext in externs:
        if ext.name not in done and not ext.weak and ext.name not in res.missing:
            where = "in the kernel's Kconfig" if ext.is_kconfig else \
                "in kernel BTF" if ext.type_id else "in /proc/kallsyms"
            err = ext.error(f"not found {where} (declare it __weak to default to 0)")
            if strict:
                raise err
            res.missing[ext.name] = str(err)
    res.kconfig = bytes(image)
    return res


def _store(image: bytearray, ext: Extern, value: bytes) -> None:
    image[ext.offset:ext.offset + ext.size] = value


def _virtual(ext: Extern, host: Host) -> Optional[int]:
    """The LINUX_* externs libbpf fills itself; None for an unknown __weak one."""
    if ext.name == "LINUX_KERNEL_VERSION":
        version = host.kernel_version()
        if not version:
            raise ext.error("cannot tell the kernel version (from uname; without a kernel: "
                            "kernel_version=)")
        return version
    if ext.name == "LINUX_HAS_BPF_COOKIE":
        return int(host.has_bpf_cookie())
    if ext.name == "LINUX_HAS_SYSCALL_WRAPPER":
        return int(host.has_syscall_wrapper())
    if ext.name.startswith("LINUX_") and ext.weak:
        return None
    raise ext.error("unrecognized virtual extern: __kconfig names are CONFIG_* or "
                    "LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE, LINUX_HAS_SYSCALL_WRAPPER")


def _resolve_ksyms(externs: Externs, btf: BTF, host: Host, res: Resolution,
                   strict: bool = True) -> None:
    untyped = [e for e in externs if not e.is_kconfig and not e.type_id]
    if untyped:
        addrs = kallsyms_addresses(host.kallsyms(), [e.name for e in untyped])
        for name, addr in addrs.items():
            if not addr:
                raise BPFPermissionError(f"extern (ksym) {name!r}: /proc/kallsyms shows "
                                         "address 0: reading kernel addresses needs root "
                                         "(kernel.kptr_restrict)")
            res.ksyms[name] = KsymTarget(addr=addr)
    modules: Dict[str, int] = {}         # module -> its fd_array index
    for ext in externs:
        if ext.is_kconfig or not ext.type_id:
            continue
        try:
            target = _resolve_func(ext, btf, host) if ext.is_func \
                else _resolve_var(ext, btf, host)
        except ObjectError as e:
            if strict:
                raise
            res.missing[ext.name] = str(e)
            continue
        if target is None:
            continue
        hit, module = target
        if module:
            hit.btf_obj_fd = host.module_btf_fd(module)
            if ext.is_func:
                if module not in modules:
                    if len(res.fd_array) >= 0x7FFF:
                        raise ext.error("too many module BTF objects for insn->off")
                    res.fd_array = res.fd_array or [0]   # index 0 means vmlinux
                    modules[module] = len(res.fd_array)
                    res.fd_array.append(hit.btf_obj_fd)
                hit.fd_index = modules[module]
        res.ksyms[ext.name] = hit


def _compatible(ext: Extern, btf: BTF, kbtf: BTF, kernel_type: int) -> bool:
    from ..btf.corematch import CoreError, types_are_compat   # only objects with ksyms pay
    try:
        return types_are_compat(btf, ext.type_id, kbtf, kernel_type)
    except CoreError as e:
        raise ext.error(f"cannot compare with the kernel's type: {e}") from None


def _resolve_var(ext: Extern, btf: BTF, host: Host) -> Optional[Tuple[KsymTarget, str]]:
    found = host.find(ext.name, uapi.BTF_KIND_VAR)
    if found is None:
        return None
    kbtf, var_id, module = found
    kernel_type = kbtf.resolve(cast(T.Var, kbtf[var_id]).type)
    if not _compatible(ext, btf, kbtf, kernel_type):
        raise ext.error(f"incompatible types: declared {btf.type_name(ext.type_id)} "
                        f"[{ext.type_id}], but {module or 'vmlinux'} has "
                        f"{kbtf.type_name(kernel_type)} [{kernel_type}]")
    return KsymTarget(btf_id=var_id), module


def _resolve_func(ext: Extern, btf: BTF, host: Host) -> Optional[Tuple[KsymTarget, str]]:
    from ..btf.corematch import essential_name
    found = host.find(essential_name(ext.name), uapi.BTF_KIND_FUNC)
    if found is None:
        return None
    kbtf, func_id, module = found
    proto = cast(T.Func, kbtf[func_id]).type
    if not _compatible(ext, btf, kbtf, proto):
        if ext.weak:
            return None
        raise ext.error(f"declared {btf.type_name(ext.type_id)}, incompatible with "
                        f"{module or 'vmlinux'}'s {kbtf.type_name(proto)} [{proto}]")
    return KsymTarget(btf_id=func_id), module


# ====================================================================== relocate (pure)

def relocate(code: bytearray, slot: int, rel: Reloc, externs: Externs,
             res: Optional[Resolution], kconfig_fd: int, section: str) -> None:
    """Patch the instruction at ``slot`` that ``rel`` (against an undefined symbol) names."""
    ext = externs.by_symbol(rel.sym.index)
    if ext is None:
        raise ObjectError(f"relocation against undefined symbol {rel.sym.name!r}, which is "
                          "not a __kconfig/__ksym extern", section=section, offset=rel.offset)
    if res is None:
        raise ObjectError(f"extern {ext.name!r} is not resolved (BPFObject.load() resolves "
                          "externs)", section=section, offset=rel.offset)
    ins = I.decode(code, slot)
    target = res.ksyms.get(ext.name)
    if ins.code == I.CALL and rel.type == R_BPF_64_32:
        if not ext.is_func:
            raise ObjectError(f"call to extern {ext.name!r}, which is not a kfunc",
                              section=section, offset=rel.offset)
        if target is not None:
            I.set_src(code, slot, uapi.BPF_PSEUDO_KFUNC_CALL)
            I.set_imm(code, slot, target.btf_id)
            I.set_off(code, slot, target.fd_index)
        else:       # unresolved __weak kfunc: fails only if the verifier reaches it
            code[slot * I.INSN_SIZE:(slot + 1) * I.INSN_SIZE] = \
                I.Insn(I.CALL, 0, 0, 0, POISON_KFUNC_BASE + ext.index).encode()
        return
    if ins.code != I.LD_IMM64 or rel.type != R_BPF_64_64 or slot + 1 >= I.count(code):
        raise ObjectError(f"relocation of type {rel.type} against extern {ext.name!r} on "
                          f"instruction {ins.code:#04x}, expected ld_imm64 or call",
                          section=section, offset=rel.offset)
    if ext.is_kconfig:
        I.set_src(code, slot, uapi.BPF_PSEUDO_MAP_VALUE)
        I.set_imm(code, slot, kconfig_fd)
        I.set_imm(code, slot + 1, ext.offset + ins.imm)
    elif ext.type_id and target is not None:
        I.set_src(code, slot, uapi.BPF_PSEUDO_BTF_ID)
        I.set_imm(code, slot, target.btf_id)
        I.set_imm(code, slot + 1, target.btf_obj_fd)
    else:           # untyped ksym: its address; unresolved __weak: 0
        I.set_src(code, slot, 0)
        I.set_imm64(code, slot, target.addr if target is not None else 0)


def verifier_note(log: str, externs: Externs) -> Optional[str]:
    """What a verifier log means for an extern, when it is about one: a reachable
    call of an unresolved __weak kfunc, or a typed ksym the kernel has no address
    for (it looks them up in kallsyms)."""
    m = _POISON_KFUNC.search(log)
    index = int(m.group(1)) - POISON_KFUNC_BASE if m else -1
    if 0 <= index < len(externs.items):
        return (f"kfunc {externs.items[index].name!r} is called but does not exist in "
                "this kernel: guard the call with bpf_ksym_exists()")
    m = _NO_KSYM_ADDR.search(log)
    if m:
        return (f"the kernel has BTF for ksym {m.group(1)!r} but kallsyms has no address "
                "for it: typed __ksym variables need a kernel built with "
                "CONFIG_KALLSYMS_ALL")
    return None


# ====================================================================== BTF for the kernel (pure)

def btf_for_kernel(btf: BTF) -> BTF:
    """``btf`` as the kernel's BTF checker accepts it (a copy when anything changes):
    extern VARs become allocated ones (.ksyms ones as 4-byte ints at offsets 0, 4,
    ...), extern FUNCs global with named parameters, and .ksyms entries for FUNCs
    point at one dummy int variable, as libbpf rewrites them."""
    if not btf.find(KCONFIG_SEC, uapi.BTF_KIND_DATASEC) and \
            not btf.find(KSYMS_SEC, uapi.BTF_KIND_DATASEC):
        return btf
    out = btf.copy()
    for type_id in out.find(KCONFIG_SEC, uapi.BTF_KIND_DATASEC):
        for vsi in cast(T.Datasec, out[type_id]).vars:
            cast("T.Var | T.Func", out[vsi.type]).linkage = uapi.BTF_VAR_GLOBAL_ALLOCATED
    for type_id in out.find(KSYMS_SEC, uapi.BTF_KIND_DATASEC):
        _fix_ksyms(out, cast(T.Datasec, out[type_id]))
    return out


def _fix_ksyms(btf: BTF, datasec: T.Datasec) -> None:
    i32 = next((i for i in range(1, len(btf)) if btf.kind_of(i) == uapi.BTF_KIND_INT
                and cast(T.Int, btf[i]).bits == 32), 0) \
        or btf.add(T.Int("int", 4, uapi.BTF_INT_SIGNED, 0, 32))
    dummy = 0
    for n, vsi in enumerate(datasec.vars):
        t = btf[vsi.type]
        if isinstance(t, T.Func):
            dummy = dummy or btf.add(T.Var(DUMMY_KSYM, i32, uapi.BTF_VAR_GLOBAL_ALLOCATED))
            t.linkage = uapi.BTF_FUNC_GLOBAL
            proto = btf[t.type]
            if isinstance(proto, T.FuncProto):
                for param in proto.params:
                    if param.type and not param.name:
                        param.name = DUMMY_KSYM
            vsi.type = dummy
        elif isinstance(t, T.Var):
            t.linkage, t.type = uapi.BTF_VAR_GLOBAL_ALLOCATED, i32
        vsi.offset, vsi.size = 4 * n, 4
    datasec.size = 4 * len(datasec.vars)
