"""Address -> symbol name: kernel addresses through /proc/kallsyms, user
addresses through /proc/PID/maps and the ELF symbol tables of the mapped files
(.symtab, else .dynsym; pyelftools).  Pure: reads files, makes no BPF calls."""
from __future__ import annotations

import bisect
import functools
import os
from typing import Dict, List, NamedTuple, Optional, Tuple

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from ..errors import ObjectError
from ..files import open_regular
from .uprobe import elf_faults

UNKNOWN = "[unknown]"


class KernelSymbols:
    """/proc/kallsyms, sorted: the function containing an address."""

    def __init__(self, path: str = "/proc/kallsyms"):
        entries: List[Tuple[int, str]] = []
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3 or parts[1] not in "tTwW":
                        continue
                    addr = int(parts[0], 16)
                    if addr:
                        name = parts[2] + (f" [{parts[3].strip('[]')}]" if len(parts) > 3
                                           else "")
                        entries.append((addr, name))
        except OSError:
            pass
        entries.sort()
        self.addrs = [a for a, _ in entries]
        self.names = [n for _, n in entries]

    def name(self, addr: int) -> str:
        """The name of the function at or before ``addr`` ([unknown] if none)."""
        i = bisect.bisect_right(self.addrs, addr) - 1
        return self.names[i] if i >= 0 else UNKNOWN


class _Func(NamedTuple):
    start: int
    end: int
    name: str


class ElfSymbols:
    """The function symbols of one ELF file, by virtual address, and its PT_LOAD
    segments to turn file offsets into virtual addresses."""

    def __init__(self, path: str):
        self.funcs: List[_Func] = []
        self.segments: List[Tuple[int, int, int]] = []   # (offset, vaddr, filesz)
        try:
            fd = open_regular(path, lambda why, _errno: ObjectError(why))
            with os.fdopen(fd, "rb") as f:
                elf = ELFFile(f)
                self.segments = [(s["p_offset"], s["p_vaddr"], s["p_filesz"])
                                 for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
                for sh_type in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    table = next((s for s in elf.iter_sections()
                                  if s["sh_type"] == sh_type), None)
                    if not isinstance(table, SymbolTableSection):
                        continue
                    funcs = [_Func(s["st_value"], s["st_value"] + max(s["st_size"], 1),
                                   s.name.split("@", 1)[0])
                             for s in table.iter_symbols()
                             if s["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC")
                             and s["st_shndx"] != "SHN_UNDEF" and s["st_value"]]
                    if funcs:
                        self.funcs = sorted(funcs)
                        break
        except (ObjectError,) + elf_faults():      # not a regular file, malformed
            pass
        self.starts = [fn.start for fn in self.funcs]

    def vaddr(self, file_offset: int) -> Optional[int]:
        """The virtual address of a file offset (None outside every segment)."""
        for off, vaddr, size in self.segments:
            if off <= file_offset < off + size:
                return vaddr + file_offset - off
        return None

    def name(self, vaddr: int) -> Optional[str]:
        """The function containing ``vaddr``, or None."""
        i = bisect.bisect_right(self.starts, vaddr) - 1
        while i >= 0:
            fn = self.funcs[i]
            if fn.start <= vaddr < fn.end:
                return fn.name
            if fn.start < vaddr - (1 << 20):
                break
            i -= 1
        return None


@functools.lru_cache(maxsize=64)
def _elf(path: str, identity: Tuple[int, int, int]) -> ElfSymbols:
    return ElfSymbols(path)


def elf_symbols(path: str) -> ElfSymbols:
    """The symbols of ``path``, cached while the file is unchanged."""
    try:
        st = os.stat(path)
    except OSError:
        return ElfSymbols("")
    return _elf(path, (st.st_dev, st.st_ino, st.st_mtime_ns))


class Mapping(NamedTuple):
    """One executable file mapping of /proc/PID/maps."""

    start: int
    end: int
    offset: int
    path: str


def parse_maps(text: str) -> List[Mapping]:
    """The executable file-backed mappings of a /proc/PID/maps text."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        start, _, end = parts[0].partition("-")
        out.append(Mapping(int(start, 16), int(end, 16), int(parts[2], 16),
                           parts[5].rstrip().removesuffix(" (deleted)")))
    return sorted(out)


class ProcessSymbols:
    """User addresses of one process, through its mappings (read once, at
    creation: the process must still be alive)."""

    def __init__(self, pid: int):
        self.pid = pid
        try:
            with open(f"/proc/{pid}/maps") as f:
                self.maps = parse_maps(f.read())
        except OSError:
            self.maps = []
        self.starts = [m.start for m in self.maps]

    def name(self, addr: int) -> str:
        """``function`` or ``[file+0xOFF]``, ``[unknown]`` outside every mapping."""
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0 or addr >= self.maps[i].end:
            return UNKNOWN
        m = self.maps[i]
        file_offset = addr - m.start + m.offset
        syms = elf_symbols(f"/proc/{self.pid}/root{m.path}")
        vaddr = syms.vaddr(file_offset)
        found = syms.name(vaddr) if vaddr is not None else None
        return found or f"[{os.path.basename(m.path)}+{file_offset:#x}]"


class Symbolizer:
    """Kernel and per-process user symbols, cached per pid."""

    def __init__(self) -> None:
        self.kernel = KernelSymbols()
        self._procs: Dict[int, ProcessSymbols] = {}

    def kernel_name(self, addr: int) -> str:
        """The kernel function at ``addr``."""
        return self.kernel.name(addr)

    def user_name(self, pid: int, addr: int) -> str:
        """The function at ``addr`` in process ``pid`` (its maps read on first use)."""
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = ProcessSymbols(pid)
        return proc.name(addr)
