"""USDT probes of an ELF file: its ``.note.stapsdt`` notes, where each probe is
in the file, and what its argument specs mean (no syscalls).

A SystemTap SDT probe (``<sys/sdt.h>``, ``DTRACE_PROBE*``) is a nop in the code
and an ELF note (owner "stapsdt", type 3) whose description holds three
addresses (the probe, the link-time address of ``.stapsdt.base``, the
semaphore or 0) and three strings: provider, name and the argument specs, e.g.
``-4@%edi 8@16(%rsp) 4@$5``.  As libbpf's usdt.c: the probe address moves by
``.stapsdt.base``'s address minus the recorded one (prelink), and addresses
become file offsets through the PT_LOAD program headers (the uprobe wants a
file offset; the semaphore's is the uprobe's ``ref_ctr_offset``).

Argument specs are parsed for x86-64 (also scale-index-base operands),
arm64, riscv64 and s390x into the ``struct __bpf_usdt_arg_spec`` layout of
libbpf's ``<bpf/usdt.bpf.h>``; :func:`pack_spec` builds one
``struct __bpf_usdt_spec`` value of its ``__bpf_usdt_specs`` map.
"""
from __future__ import annotations

import functools
import os
import re
import struct
import sys
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import ObjectError
from ..record import FrozenRecord
from ..files import open_regular
from .elf import SHF_COMPRESSED
from .uprobe import Segment, elf_faults, fault_text, load_segments, segment_at

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

NOTE_SECTION = ".note.stapsdt"
BASE_SECTION = ".stapsdt.base"
NT_STAPSDT = 3
NOTE_OWNER = b"stapsdt"
MAX_ARGS = 12                   # BPF_USDT_MAX_ARG_CNT

# enum __bpf_usdt_arg_type
ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SIB = 0, 1, 2, 3
ARG_KIND_NAMES = {ARG_CONST: "const", ARG_REG: "reg", ARG_REG_DEREF: "deref", ARG_SIB: "sib"}



# ====================================================================== notes


class Note(NamedTuple):
    """One stapsdt note as written in the file (link-time addresses)."""

    provider: str
    name: str
    args: str           # the argument specs, "" when the probe has none
    pc: int             # the probe's nop
    base: int           # .stapsdt.base as linked (0: no adjustment)
    semaphore: int      # the semaphore's address (0: none)
    offset: int         # where the note starts in the section


def _cstr(desc: bytes, start: int, what: str,
          fail: Callable[[str], ObjectError]) -> Tuple[str, int]:
    end = desc.find(b"\0", start)
    if end < 0:
        raise fail(f"{what} is not NUL-terminated")
    return desc[start:end].decode("utf-8", "surrogateescape"), end + 1


def parse_notes(data: bytes, addr_size: int = 8, little_endian: bool = True,
                align: int = 4, section: str = NOTE_SECTION) -> List[Note]:
    """Every note of a ``.note.stapsdt`` section's bytes.

    ``addr_size`` is 8 for ELFCLASS64, 4 for ELFCLASS32; ``align`` the note
    alignment (4, or 8 for a section aligned to 8).  A truncated note, sizes
    running past the section, another owner or type, or a description without
    its three addresses and three strings is an :class:`ObjectError` naming
    the section and the note's offset."""
    if addr_size not in (4, 8):
        raise ObjectError(f"USDT notes: address size {addr_size} is neither 4 nor 8", section)
    align = 8 if align == 8 else 4
    order = "<" if little_endian else ">"
    header = struct.Struct(order + "III")
    addrs = struct.Struct(order + ("QQQ" if addr_size == 8 else "III"))
    notes: List[Note] = []
    pos = 0
    while pos < len(data):
        start = pos

        def fail(msg: str, at: int = start) -> ObjectError:
            return ObjectError(f"USDT note: {msg}", section, at)

        if len(data) - pos < header.size:
            raise fail(f"truncated note header ({len(data) - pos} of {header.size} bytes)")
        namesz, descsz, ntype = header.unpack_from(data, pos)
        name_at = pos + header.size
        desc_at = name_at + -(-namesz // align) * align
        end = desc_at + -(-descsz // align) * align
        if desc_at + descsz > len(data):
            raise fail(f"name size {namesz} and description size {descsz} run past the end "
                       f"of the section ({len(data)} bytes)")
        owner = data[name_at:name_at + namesz]
        if owner.rstrip(b"\0") != NOTE_OWNER:
            raise fail(f"owner {owner.rstrip(bytes(1))!r} is not 'stapsdt'")
        if ntype != NT_STAPSDT:
            raise fail(f"note type {ntype} is not NT_STAPSDT ({NT_STAPSDT})")
        desc = data[desc_at:desc_at + descsz]
        if len(desc) < addrs.size + 3:
            raise fail(f"description of {descsz} bytes is shorter than three addresses and "
                       "three strings")
        pc, base, sema = addrs.unpack_from(desc, 0)
        provider, at = _cstr(desc, addrs.size, "provider", fail)
        if at >= len(desc) or desc[at] == 0:
            raise fail(f"provider {provider!r}: probe name missing or empty")
        name, at = _cstr(desc, at, "probe name", fail)
        if at >= len(desc):
            raise fail(f"probe {provider}:{name}: argument string missing")
        args, _ = _cstr(desc, at, f"argument string of {provider}:{name}", fail)
        if args.startswith(":"):
            args = ""
        notes.append(Note(provider, name, args, pc, base, sema, start))
        pos = min(end, len(data))
    return notes


# ====================================================================== argument specs


class ArgSpec(FrozenRecord):
    """One USDT argument: where its value is and how wide it is.

    ``kind`` is ARG_CONST (``val_off`` is the value), ARG_REG (the register),
    ARG_REG_DEREF (memory at register + ``val_off``) or ARG_SIB (memory at
    base + index << scale_shift + ``val_off``, x86-64).  Register offsets are
    offsets in the architecture's ``struct pt_regs``."""

    _fields = ("kind", "size", "signed", "val_off", "reg", "reg_off", "index_reg",
               "index_reg_off", "scale_shift", "text")
    __slots__ = _fields
    kind: int
    size: int                   # bytes: 1, 2, 4 or 8
    signed: bool
    val_off: int
    reg: str
    reg_off: int
    index_reg: str
    index_reg_off: int
    scale_shift: int
    text: str                   # the spec as written

    def __init__(self, kind: int, size: int, signed: bool, val_off: int = 0,
                 reg: str = "", reg_off: int = 0, index_reg: str = "",
                 index_reg_off: int = 0, scale_shift: int = 0, text: str = "") -> None:
        self._init(kind, size, signed, val_off, reg, reg_off, index_reg, index_reg_off,
                   scale_shift, text)

    @property
    def bitshift(self) -> int:
        """Bits to clear (and sign-extend) to widen the value to 64 bits."""
        return 64 - self.size * 8

    def pack(self, byteorder: str = sys.byteorder) -> bytes:
        """``struct __bpf_usdt_arg_spec`` (16 bytes) in ``byteorder`` ("little" or
        "big": the BPF side's, the host's by default).  The SIB fields are bitfields
        of the 32-bit word after ``val_off``, allocated from its low bits on a
        little-endian target and from its high bits on a big-endian one."""
        word = self.kind
        little = byteorder == "little"
        if self.kind == ARG_SIB:
            if little:
                word |= self.index_reg_off << 8 | self.scale_shift << 20
            else:
                word |= self.scale_shift << 8 | self.index_reg_off << 12
        return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,
                           word, self.reg_off, self.signed, self.bitshift)


ARG_SPEC_SIZE = 16
SPEC_SIZE = MAX_ARGS * ARG_SPEC_SIZE + 16       # args[12], usdt_cookie, arg_cnt, padding


def pack_spec(args: Sequence[ArgSpec], cookie: int = 0,
              byteorder: str = sys.byteorder) -> bytes:
    """``struct __bpf_usdt_spec``: the value libbpf's ``__bpf_usdt_specs`` map holds
    (in ``byteorder``, the host's by default)."""
    if len(args) > MAX_ARGS:
        raise ValueError(f"{len(args)} USDT arguments (at most {MAX_ARGS})")
    body = b"".join(a.pack(byteorder) for a in args) + \
        bytes(ARG_SPEC_SIZE * (MAX_ARGS - len(args)))
    tail = "<Qh6x" if byteorder == "little" else ">Qh6x"
    return body + struct.pack(tail, cookie & (1 << 64) - 1, len(args))


def _regs(names: str, start: int = 0, step: int = 8) -> Dict[str, int]:
    return {n: start + i * step for i, n in enumerate(names.split())}


# struct pt_regs (x86-64): each row lists the 64/32/16/8-bit names of one register
_X86_64_ROWS = [
    ("r15 r15d r15w r15b", 0), ("r14 r14d r14w r14b", 8), ("r13 r13d r13w r13b", 16),
    ("r12 r12d r12w r12b", 24), ("rbp ebp bp bpl", 32), ("rbx ebx bx bl", 40),
    ("r11 r11d r11w r11b", 48), ("r10 r10d r10w r10b", 56), ("r9 r9d r9w r9b", 64),
    ("r8 r8d r8w r8b", 72), ("rax eax ax al", 80), ("rcx ecx cx cl", 88),
    ("rdx edx dx dl", 96), ("rsi esi si sil", 104), ("rdi edi di dil", 112),
    ("rip eip", 128), ("rsp esp sp spl", 152),
]
X86_64_REGS = {name: off for names, off in _X86_64_ROWS for name in names.split()}
# struct user_pt_regs (arm64): regs[31], sp, pc, pstate
AARCH64_REGS = dict(_regs(" ".join(f"x{i}" for i in range(31))), sp=248)
# struct user_regs_struct (riscv64), the head of its pt_regs
RISCV64_REGS = {k: v for k, v in _regs(
    "pc ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 "
    "t3 t4 t5 t6").items() if k != "pc"}
# user_pt_regs (s390x): psw (mask, addr), gprs[16]
S390X_REGS = _regs(" ".join(f"%r{i}" for i in range(16)), start=16)

_NUM = r"([+-]?\d+)"
_SIZE = r"\s*([+-]?\d+)\s*@\s*"
_X86_REG = r"%([^\s,()]{1,15})"
_END = r"\s*(?=\s|$)"


def _rx(*parts: str) -> str:
    return _SIZE + r"\s*".join(parts) + _END


# (kind, regex) per architecture, tried in order as libbpf's sscanf() formats.
# Groups: size, then in this order whichever apply: offset/value, reg, index reg, scale.
# The regexes are compiled on first use (re's cache keeps them): most loads have no USDT.
_FORMS: Dict[str, List[Tuple[int, str, str]]] = {
    "x86_64": [
        (ARG_SIB, "ORIS", _rx(_NUM, r"\(", _X86_REG, ",", _X86_REG, ",", _NUM, r"\)")),
        (ARG_SIB, "RIS", _rx(r"\(", _X86_REG, ",", _X86_REG, ",", _NUM, r"\)")),
        (ARG_SIB, "ORI", _rx(_NUM, r"\(", _X86_REG, ",", _X86_REG, r"\)")),
        (ARG_SIB, "RI", _rx(r"\(", _X86_REG, ",", _X86_REG, r"\)")),
        (ARG_REG_DEREF, "OR", _rx(_NUM, r"\(", _X86_REG, r"\)")),
        (ARG_REG_DEREF, "R", _rx(r"\(", _X86_REG, r"\)")),
        (ARG_REG, "R", _rx(r"%(\S{1,15})")),
        (ARG_CONST, "O", _rx(r"\$" + _NUM)),
    ],
    "aarch64": [
        (ARG_REG_DEREF, "RO", _rx(r"\[", r"([a-z0-9]{1,15})", ",", _NUM, r"\]")),
        (ARG_REG_DEREF, "R", _rx(r"\[", r"([a-z0-9]{1,15})", r"\]")),
        (ARG_CONST, "O", _rx(_NUM)),
        (ARG_REG, "R", _rx(r"([a-z0-9]{1,15})")),
    ],
    "riscv64": [
        (ARG_REG_DEREF, "OR", _rx(_NUM, r"\(", r"([a-z0-9]{1,15})", r"\)")),
        (ARG_CONST, "O", _rx(_NUM)),
        (ARG_REG, "R", _rx(r"([a-z0-9]{1,15})")),
    ],
    "s390x": [
        (ARG_REG_DEREF, "OR", _rx(_NUM, r"\(", r"(%r\d+)", r"\)")),
        (ARG_REG, "R", _rx(r"(%r\d+)")),
        (ARG_CONST, "O", _rx(_NUM)),
    ],
}
REGISTERS: Dict[str, Dict[str, int]] = {"x86_64": X86_64_REGS, "aarch64": AARCH64_REGS,
                                        "riscv64": RISCV64_REGS, "s390x": S390X_REGS}
#: e_machine -> the architecture names used here (platform.machine() spelling)
MACHINES = {62: "x86_64", 183: "aarch64", 243: "riscv64", 22: "s390x"}
_SCALES = {1: 0, 2: 1, 4: 2, 8: 3}


class ArgError(ObjectError):
    """An argument spec that cannot be parsed (the message names the argument)."""


def _reg_off(arch: str, reg: str, index: int, text: str) -> int:
    regs = REGISTERS[arch]
    if reg not in regs:
        raise ArgError(f"argument #{index} {text!r}: unknown {arch} register {reg!r}")
    return regs[reg]


def _parse_one(arch: str, index: int, text: str, pos: int) -> Tuple[ArgSpec, int]:
    for kind, layout, rx in _FORMS[arch]:
        m = re.compile(rx).match(text, pos)
        if m is None:
            continue
        spec_text = text[pos:m.end()].strip()
        fields = dict(zip(layout, m.groups()[1:]))
        try:
            size, value, scale = (int(t) for t in (m.group(1), fields.get("O", "0"),
                                                   fields.get("S", "1")))
        except ValueError:      # more digits than int() converts (4300): no 64-bit number
            raise ArgError(f"argument #{index} {spec_text[:40]!r}... ({len(spec_text)} "
                           "characters): a number too long for 64 bits") from None
        if not -(1 << 63) <= value < 1 << 64:
            raise ArgError(f"argument #{index} {spec_text!r}: {value} does not fit 64 bits")
        reg = fields.get("R", "")
        idx = fields.get("I", "")
        if abs(size) not in (1, 2, 4, 8):
            raise ArgError(f"argument #{index} {spec_text!r}: size {abs(size)} is not 1, 2, "
                           "4 or 8")
        if scale not in _SCALES:
            raise ArgError(f"argument #{index} {spec_text!r}: scale {scale} is not 1, 2, 4 "
                           "or 8")
        if kind == ARG_REG_DEREF or kind == ARG_SIB:
            if not -(1 << 63) <= value < 1 << 63:
                raise ArgError(f"argument #{index} {spec_text!r}: offset {value} does not "
                               "fit 64 bits")
        spec = ArgSpec(kind, abs(size), size < 0, value,
                       reg, _reg_off(arch, reg, index, spec_text) if reg else 0,
                       idx, _reg_off(arch, idx, index, spec_text) if idx else 0,
                       _SCALES[scale], spec_text)
        return spec, m.end()
    word = text[pos:].split(None, 1)[0]          # parse_args() skipped the blanks
    raise ArgError(f"argument #{index} {word!r}: not a {arch} USDT argument spec "
                   "(SIZE@LOCATION)")


def parse_args(text: str, arch: str) -> List[ArgSpec]:
    """The argument specs of a note's argument string, for ``arch`` (``x86_64``,
    ``aarch64``, ``riscv64`` or ``s390x``).  :class:`ArgError` names the first
    argument that is malformed, too wide, or reads an unknown register."""
    if arch not in _FORMS:
        raise ArgError(f"USDT arguments of {arch} binaries are not supported (supported: "
                       f"{', '.join(_FORMS)})")
    out: List[ArgSpec] = []
    pos = len(text) - len(text.lstrip())
    while pos < len(text):
        if len(out) >= MAX_ARGS:
            raise ArgError(f"more than {MAX_ARGS} arguments in {text!r}")
        spec, pos = _parse_one(arch, len(out), text, pos)
        out.append(spec)
        pos += len(text[pos:]) - len(text[pos:].lstrip())
    return out


# ====================================================================== probes of a file


class Probe(NamedTuple):
    """A USDT probe site of a file, its addresses resolved as libbpf does."""

    provider: str
    name: str
    args: str
    address: int            # the probe's virtual address after the .stapsdt.base adjustment
    offset: int             # its file offset: where the uprobe goes
    semaphore: int          # the semaphore's virtual address (0: none)
    semaphore_offset: int   # its file offset: the uprobe's ref_ctr_offset (0: none)

    @property
    def full_name(self) -> str:
        """PROVIDER:NAME."""
        return f"{self.provider}:{self.name}"


class ProbeFile(NamedTuple):
    """The USDT probes of one ELF file."""

    path: str
    machine: str            # "x86_64", "aarch64", ... or "EM_<n>" when unknown here
    elf_class: int          # 32 or 64
    little_endian: bool
    shared: bool            # ET_DYN (PIE or shared library): addresses are relative
    probes: List[Probe]

    def find(self, provider: str, name: str) -> List[Probe]:
        """The sites of one probe, in note order."""
        return [p for p in self.probes if p.provider == provider and p.name == name]


def resolve_note(note: Note, base_addr: int, segments: Sequence[Segment],
                 where: str) -> Probe:
    """A note's addresses as file offsets (libbpf's collect_usdt_targets)."""
    address = note.pc
    if base_addr and note.base:
        address += base_addr - note.base
    full = f"{note.provider}:{note.name}"
    seg = segment_at(address, segments)
    if seg is None:
        raise ObjectError(f"USDT probe {full}: address {address:#x} is in no loadable "
                          f"segment of {where}", NOTE_SECTION, note.offset)
    if not seg.executable:
        raise ObjectError(f"USDT probe {full}: address {address:#x} is in a segment of "
                          f"{where} that is not executable", NOTE_SECTION, note.offset)
    sema_off = 0
    if note.semaphore:
        sseg = segment_at(note.semaphore, segments)
        if sseg is None:
            raise ObjectError(f"USDT probe {full}: semaphore address {note.semaphore:#x} is "
                              f"in no file-backed loadable segment of {where}",
                              NOTE_SECTION, note.offset)
        if sseg.executable:
            raise ObjectError(f"USDT probe {full}: semaphore address {note.semaphore:#x} is "
                              f"in an executable segment of {where}", NOTE_SECTION,
                              note.offset)
        sema_off = note.semaphore - sseg.start + sseg.offset
    return Probe(note.provider, note.name, note.args, address,
                 address - seg.start + seg.offset, note.semaphore, sema_off)


def probes_of_elf(elf: ELFFile, where: str) -> ProbeFile:
    """The probes of an opened ELF file (executable, PIE or shared library)."""
    e_type = elf.header["e_type"]
    if e_type not in ("ET_EXEC", "ET_DYN"):
        raise ObjectError(f"{where}: ELF type {e_type} has no USDT probes to attach to "
                          "(only executables and shared libraries)")
    machine_num = elf.header["e_machine"]
    if isinstance(machine_num, str):
        from elftools.elf.enums import ENUM_E_MACHINE
        machine_num = ENUM_E_MACHINE.get(machine_num, -1)
    machine = MACHINES.get(machine_num, f"EM_{machine_num}")
    notes_sec = elf.get_section_by_name(NOTE_SECTION)
    notes: List[Note] = []
    if notes_sec is not None:
        if notes_sec["sh_type"] != "SHT_NOTE":
            raise ObjectError(f"{where}: {NOTE_SECTION} is {notes_sec['sh_type']}, not "
                              "SHT_NOTE", NOTE_SECTION)
        size, offset = notes_sec["sh_size"], notes_sec["sh_offset"]
        if notes_sec["sh_flags"] & SHF_COMPRESSED:
            raise ObjectError(f"{where}: {NOTE_SECTION} is compressed (SHF_COMPRESSED)",
                              NOTE_SECTION)
        # checked before reading: pyelftools would allocate sh_size bytes first
        if offset + size > elf.stream.seek(0, os.SEEK_END):
            raise ObjectError(f"{where}: {NOTE_SECTION} of {size} bytes at file offset "
                              f"{offset:#x} runs past the end of the file", NOTE_SECTION)
        data = notes_sec.data()
        notes = parse_notes(data, elf.elfclass // 8, elf.little_endian,
                            notes_sec["sh_addralign"])
    base_sec = elf.get_section_by_name(BASE_SECTION)
    base_addr = base_sec["sh_addr"] if base_sec is not None else 0
    segments = load_segments(elf) if notes else []
    if notes and not segments:
        raise ObjectError(f"{where}: no PT_LOAD program headers to place USDT probes in")
    probes = [resolve_note(n, base_addr, segments, where) for n in notes]
    return ProbeFile(where, machine, elf.elfclass, elf.little_endian, e_type == "ET_DYN",
                     probes)


@functools.lru_cache(maxsize=8)
def _read_probes(path: str, _identity: Tuple[int, int, int]) -> ProbeFile:
    from elftools.elf.elffile import ELFFile          # pyelftools: only for USDT
    fd = open_regular(path, lambda why, _errno: ObjectError(f"cannot open {path}: {why}"))
    with os.fdopen(fd, "rb") as f:
        try:
            return probes_of_elf(ELFFile(f), path)
        except elf_faults() as e:
            raise ObjectError(f"{path} is not a valid ELF file: {fault_text(e)}") from None


def read_probes(path: str) -> ProbeFile:
    """The USDT probes of the ELF file at ``path``, cached while it is unchanged."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ObjectError(f"cannot open {path}: {e.strerror}") from None
    return _read_probes(os.path.realpath(path), (st.st_dev, st.st_ino, st.st_mtime_ns))


# ====================================================================== /proc/PID/maps


class Mapping(NamedTuple):
    """One line of /proc/PID/maps: [start, end) maps the file from ``offset``."""

    start: int
    end: int
    offset: int


def executable_mappings(maps_text: str, path: str) -> List[Mapping]:
    """The executable mappings of ``path`` in a /proc/PID/maps text."""
    out: List[Mapping] = []
    for line in maps_text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or parts[5] != path or "x" not in parts[1]:
            continue
        lo, _, hi = parts[0].partition("-")
        try:
            out.append(Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16)))
        except ValueError:
            pass                        # a malformed line: skipped
    return sorted(out)


def runtime_address(offset: int, mappings: Sequence[Mapping]) -> Optional[int]:
    """The address a file offset is mapped at, or None."""
    for m in mappings:
        if m.offset <= offset < m.offset + (m.end - m.start):
            return m.start - m.offset + offset
    return None
