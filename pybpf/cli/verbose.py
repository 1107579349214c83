"""``load --verbose``: the steps of a load, one line each, on stderr.

What was created (maps with their geometry and memory), what was relocated
(ELF relocations and CO-RE relocations, counted per kind), what was loaded
(programs with their final instruction counts) and what was attached.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, TextIO

from .. import uapi
from ..asm import insn as I
from ..obj.elf import SHN_UNDEF
from ..obj.spec import ObjectSpec, is_data_section


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return ""


def relocation_counts(spec: ObjectSpec) -> Dict[str, int]:
    """ELF relocations of the executable sections by what they patch, and CO-RE
    relocations by kind (``core <kind>``), as the loader applies them."""
    counts: Counter[str] = Counter()
    elf = spec.elf
    for shndx, relocs in elf.relocs.items():
        sec = elf.sections[shndx]
        if not sec.is_exec:
            continue
        for rel in relocs:
            sym = rel.sym
            slot = rel.offset // I.INSN_SIZE
            code = I.decode(sec.data, slot).code if rel.offset + I.INSN_SIZE <= sec.size \
                else None
            if sym.shndx == SHN_UNDEF:
                counts["extern"] += 1
            elif code == I.CALL:
                counts["call"] += 1
            elif not 0 < sym.shndx < len(elf.sections):
                counts["other"] += 1
            else:
                target = elf.sections[sym.shndx]
                counts["callback" if target.is_exec else "map" if target.name == ".maps"
                       else "global data" if is_data_section(target) else "other"] += 1
    if spec.ext is not None:
        for relos in spec.ext.core_relos.values():
            for relo in relos:
                counts["core " + uapi.short_name(uapi.bpf_core_relo_kind, relo.kind,
                                                 "BPF_CORE_")] += 1
    return dict(sorted(counts.items()))


def steps(obj: Any, links: List[Any]) -> List[str]:
    """The lines describing a loaded and attached object."""
    spec = obj.spec
    out = [f"opened {obj.name}: {len(spec.programs)} program(s), {len(spec.maps)} map(s), "
           f"{len(spec.btf) - 1 if spec.btf else 0} BTF types"]
    for m in obj.maps.values():
        s = m.spec
        kind = uapi.short_name(uapi.bpf_map_type, s.type, "BPF_MAP_TYPE_")
        if s.type in (uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF):
            geometry = f"{_bytes(s.max_entries)} of ring"
        else:
            geometry = (f"key {s.key_size} B, value {s.value_size} B x {s.max_entries} "
                        f"({_bytes(s.value_size * s.max_entries)})")
        state = f"fd {m.fd}" if m.loaded else "not created"
        out.append(f"map {m.name}: {kind}, {geometry}, {state}")
    counts = relocation_counts(spec)
    out.append("relocations: " + (", ".join(f"{n} {k}" for k, n in counts.items())
                                  or "none"))
    for name, prog in obj.programs.items():
        linked = obj.linked.get(name)
        size = f"{len(linked.insns) // I.INSN_SIZE} instructions" if linked else "not linked"
        state = f"loaded (fd {prog.fd})" if prog.loaded else "not loaded"
        out.append(f"program {name}: {prog.type_name}, SEC(\"{prog.section}\"), {size}, "
                   f"{state}")
    for link in links:
        out.append(f"link: {getattr(link, 'desc', '') or type(link).__name__} "
                   f"(fd {link.fd})")
    return out


def report(obj: Any, links: List[Any], stream: TextIO) -> None:
    """Print ``steps`` to ``stream``, prefixed with ``pybpf:``."""
    for line in steps(obj, links):
        print(f"pybpf: {line}", file=stream)
