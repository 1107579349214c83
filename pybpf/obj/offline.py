"""Relocating an object against a kernel's BTF file, without that kernel.

libbpf's ``btf_custom_path`` plus ``bpf_object__prepare``, minus the kernel:
every relocation the loader would do (CO-RE against the given BTF, externs,
global data and map references, subprogram linking) runs through the same
:class:`pybpf.obj.relocate.Linker` that ``BPFObject.load()`` uses, with the
kernel questions answered from the BTF files instead of the running system
(:class:`OfflineHost`).  No syscalls, no root: map references hold fd -1.

Pure: reads files, imports nothing that talks to the kernel.
"""
from __future__ import annotations

import io
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union, cast

from . import externs as externs_mod
from .. import uapi
from ..btf import BTF, LineInfo
from ..btf.core import Result
from ..btf import types as T
from ..errors import BPFError, ObjectError
from ..record import Record
from .elf import MAX_OBJECT_SIZE, SHF_COMPRESSED, read_regular_file
from .relocate import LinkedProgram, Linker
from .spec import ObjectSpec

BTFSource = Union[str, "os.PathLike[str]", BTF]


def load_btf(source: BTFSource, base: Optional[BTF] = None) -> BTF:
    """A kernel BTF: a ``BTF`` as is, or a file (raw .BTF as in /sys/kernel/btf,
    or an ELF vmlinux/module carrying a .BTF section); ``base`` for module BTF."""
    if isinstance(source, BTF):
        return source
    path = os.fspath(source)
    data = read_regular_file(path, MAX_OBJECT_SIZE, "kernel BTF")
    if data[:4] == b"\x7fELF":
        data = _elf_btf(data, path)
    return BTF.parse(data, base=base, section=path)


def _elf_btf(data: bytes, path: str) -> bytes:
    """The .BTF section of an ELF file of any machine (a vmlinux, a .ko)."""
    from elftools.elf.elffile import ELFFile
    from .uprobe import elf_faults, fault_text
    try:
        sec = ELFFile(io.BytesIO(data)).get_section_by_name(".BTF")
        if sec is not None and sec["sh_flags"] & SHF_COMPRESSED:
            # as libbpf, which reads .BTF raw: pyelftools would inflate whatever
            # size the compression header claims
            raise ObjectError(f"{path}: .BTF is compressed (SHF_COMPRESSED)", ".BTF")
        found = sec.data() if sec is not None else None
    except elf_faults() as exc:
        raise ObjectError(f"{path}: malformed ELF file: {fault_text(exc)}") from None
    if found is None:
        raise ObjectError(f"{path}: ELF file without a .BTF section")
    return bytes(found)


class OfflineHost(externs_mod.Host):
    """What ``externs.resolve`` asks of a kernel, answered from its BTF files
    (``targets[0]`` is vmlinux, the rest module BTF named by their path's file
    name) and what the caller knows: Kconfig text and the kernel version."""

    def __init__(self, targets: Sequence[BTF], kconfig: Optional[str] = None,
                 kernel_version: int = 0):
        if not targets:
            raise BPFError("relocating without a kernel needs at least one target BTF")
        self.targets = list(targets)
        self._kconfig = kconfig
        self._version = kernel_version

    def kernel_version(self) -> int:
        return self._version

    def kconfig(self) -> Optional[str]:
        """The Kconfig given, or none at all ("": every CONFIG_ value unknown)."""
        return self._kconfig or ""

    def kallsyms(self) -> List[str]:
        """No addresses are known without the kernel: untyped ksyms stay unresolved."""
        return []

    def has_bpf_cookie(self) -> bool:
        """Whether the kernel knows bpf_get_attach_cookie(): its helper id is in
        the target's ``enum bpf_func_id`` (the runtime probe asks the verifier)."""
        return any(name == "BPF_FUNC_get_attach_cookie"
                   for tid in self.targets[0].find("bpf_func_id", uapi.BTF_KIND_ENUM)
                   for name, _ in cast(T.Enum, self.targets[0][tid]).values)

    def has_syscall_wrapper(self) -> bool:
        """Whether an arch syscall wrapper (``__x64_sys_bpf``...) is a function."""
        return any(self.targets[0].find(f"__{arch}_sys_bpf", uapi.BTF_KIND_FUNC)
                   for arch in ("x64", "arm64", "riscv", "s390x", "s390", "powerpc"))

    def find(self, name: str, kind: int) -> Optional[Tuple[BTF, int, str]]:
        for n, btf in enumerate(self.targets):
            ids = [i for i in btf.find(name, kind) if n == 0 or i >= btf.start_id]
            if ids:
                return btf, ids[0], "" if n == 0 else module_name(btf)
        return None

    def module_btf_fd(self, module: str) -> int:
        """No BTF object exists in a kernel without a kernel: fd -1."""
        return -1


def module_name(btf: BTF) -> str:
    """A module BTF's name: its file name (/sys/kernel/btf/nf_tables -> nf_tables)."""
    return os.path.basename(btf.section) or btf.section


class CoreResult(Record):
    """One CO-RE relocation of a program, in the program's own instruction slots."""

    _fields = ("result", "slot", "line")
    __slots__ = _fields
    result: Result          # kind, access, local/target spec, orig -> new, poisoned, reason
    slot: int               # instruction slot in ProgramRelocation.insns
    line: Optional[LineInfo]

    def __init__(self, result: Result, slot: int, line: Optional[LineInfo] = None) -> None:
        self.result = result
        self.slot = slot
        self.line = line

    @property
    def source(self) -> str:
        """``file:line: text`` of the relocated instruction, '' without line info."""
        if self.line is None:
            return ""
        return f"{self.line.file_name}:{self.line.line_num}: {self.line.line.strip()}"


class ProgramRelocation(Record):
    """A program relocated for one target kernel, as it would be loaded."""

    _fields = ("name", "section", "linked", "core")
    __slots__ = _fields
    name: str
    section: str
    linked: LinkedProgram
    core: List[CoreResult]

    def __init__(self, name: str, section: str, linked: LinkedProgram,
                 core: Optional[List[CoreResult]] = None) -> None:
        self.name = name
        self.section = section
        self.linked = linked
        self.core = [] if core is None else core

    @property
    def insns(self) -> bytes:
        """The final instructions (map references hold fd -1)."""
        return bytes(self.linked.insns)

    @property
    def poisoned(self) -> List[CoreResult]:
        return [c for c in self.core if c.result.poisoned]


class Relocation(Record):
    """Every program of an object relocated against one kernel's BTF."""

    _fields = ("target", "programs", "externs", "targets")
    __slots__ = _fields
    target: str                                     # the vmlinux BTF's name (its path)
    programs: Dict[str, ProgramRelocation]
    externs: externs_mod.Resolution
    targets: List[BTF]

    def __init__(self, target: str, programs: Dict[str, ProgramRelocation],
                 externs: externs_mod.Resolution, targets: Optional[List[BTF]] = None) -> None:
        self.target = target
        self.programs = programs
        self.externs = externs
        self.targets = [] if targets is None else targets


def relocate(spec: ObjectSpec, target: Union[BTFSource, Sequence[BTFSource]], *,
             kconfig: Optional[str] = None, kernel_version: int = 0,
             strict: bool = True, programs: Optional[Sequence[str]] = None) -> Relocation:
    """Relocate every program of ``spec`` (or those named in ``programs``) for
    the kernel whose BTF is ``target`` (a path or BTF; or a sequence: vmlinux
    first, then module BTF files) without loading anything.

    ``kconfig``: Kconfig text for ``__kconfig`` externs; ``kernel_version``:
    LINUX_KERNEL_VERSION (``externs.kernel_version_code("5.15.0")``; a BTF file
    does not say which release it describes).
    ``strict=False`` leaves strong externs the kernel lacks unresolved (listed
    in ``Relocation.externs.missing``) instead of raising ObjectError."""
    sources = [target] if isinstance(target, (str, os.PathLike, BTF)) else list(target)
    if not sources:
        raise BPFError("relocate: no target BTF given")
    vmlinux = load_btf(sources[0])
    targets = [vmlinux] + [load_btf(s, base=vmlinux) for s in sources[1:]]
    host = OfflineHost(targets, kconfig, kernel_version)
    res = externs_mod.resolve(spec.externs, spec.btf, host, kconfig, strict=strict)
    linker = Linker(spec, {}, targets, res)
    out: Dict[str, ProgramRelocation] = {}
    wanted = set(programs) if programs is not None else None
    for prog in spec.programs:
        if wanted is None or prog.name in wanted:
            linked = linker.link(prog)
            out[prog.name] = ProgramRelocation(prog.name, prog.section, linked,
                                               _core_results(linker, linked))
    return Relocation(vmlinux.section, out, res, targets)


def _core_results(linker: Linker, linked: LinkedProgram) -> List[CoreResult]:
    """The section-level CO-RE results that landed in this program, in its slots."""
    out = []
    for func, base in linked.placed:
        for res in linker.core_results.get(func.shndx, []):
            if func.start <= res.insn < func.start + func.count:
                slot = base + res.insn - func.start
                out.append(CoreResult(res, slot, linked.source_line(slot)))
    out.sort(key=lambda c: c.slot)
    return out

