"""``python -m pybpf inspect``: what an object declares, without loading it."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Type

from ..asm import insn as I
from .. import uapi
from ..object import BPFObject

if TYPE_CHECKING:
    from ..obj.offline import Relocation


def summary(obj: BPFObject) -> Dict[str, Any]:
    spec = obj.spec
    ext = spec.ext
    programs: List[Dict[str, Any]] = []
    for p in spec.programs:
        prog = obj.programs[p.name]
        programs.append({
            "name": p.name, "section": p.section,
            "type": uapi.short_name(uapi.bpf_prog_type, prog.type, "BPF_PROG_TYPE_"),
            "attach": p.sec_def.attach if p.sec_def else None,
            "target": p.attach_target or None,
            "insns": p.func.count,
            "core_relos": len(ext.core_relos.get(p.section, [])) if ext else 0,
        })
    maps = [{"name": m.name, "type": uapi.short_name(uapi.bpf_map_type, m.type, "BPF_MAP_TYPE_"),
             "key_size": m.key_size, "value_size": m.value_size,
             "max_entries": m.max_entries, "flags": m.flags,
             "key_type": spec.btf.type_name(m.btf_key_type_id)
             if spec.btf and m.btf_key_type_id else None,
             "value_type": spec.btf.type_name(m.btf_value_type_id)
             if spec.btf and m.btf_value_type_id and not m.is_global_data else None}
            for m in spec.maps]
    globals_ = {name: {var: _plain(view[var]) for var in view}
                for name, view in obj.sections.items()}
    externs = [{"name": e.name, "section": e.section, "weak": e.weak,
                "kind": "kfunc" if e.is_func else "kconfig" if e.kcfg else "ksym"}
               for e in spec.externs.items]
    struct_ops = [{"name": so.name, "type": so.type_name, "section": so.spec.section,
                   "autocreate": so.autocreate, "programs": so.programs}
                  for so in obj.struct_ops.values()]
    return {"name": obj.name, "license": spec.license, "programs": programs, "maps": maps,
            "globals": globals_, "externs": externs, "struct_ops": struct_ops,
            "btf_types": len(spec.btf) - 1 if spec.btf else 0}


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.hex() if any(value) else ""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def describe(obj: BPFObject, as_json: bool = False,
             relocated: Optional["Relocation"] = None) -> str:
    """The report; with ``relocated`` (``obj.relocate(...)``), the code shown is
    each program as it would be loaded on that kernel, CO-RE results marked."""
    info = summary(obj)
    if relocated is not None:
        info["relocated"] = {"target": relocated.target, "programs": {
            name: {"insns": list(I.disasm(p.insns)),
                   "core": [{"insn": c.slot, "result": str(c.result)} for c in p.core]}
            for name, p in relocated.programs.items()}}
    if as_json:
        return json.dumps(info, indent=2) + "\n"
    lines = [f"object {info['name']}  license {info['license']!r}  "
             f"BTF types {info['btf_types']}", "", "programs:"]
    for p in info["programs"]:
        lines.append(f"  {p['name']:<24} SEC({p['section']!r})  {p['type']}  "
                     f"{p['insns']} insns  attach={p['attach'] or '-'}"
                     + (f" target={p['target']}" if p["target"] else "")
                     + (f"  CO-RE relocations: {p['core_relos']}" if p["core_relos"] else ""))
    lines += ["", "maps:"]
    for m in info["maps"]:
        types = "".join(f"  {k}={m[k]}" for k in ("key_type", "value_type") if m[k])
        lines.append(f"  {m['name']:<24} {m['type']:<18} key={m['key_size']} "
                     f"value={m['value_size']} max_entries={m['max_entries']} "
                     f"flags={m['flags']:#x}{types}")
    if info["struct_ops"]:
        lines += ["", "struct_ops:"]
        for st in info["struct_ops"]:
            lines.append(f"  {st['name']:<24} struct {st['type']}  SEC({st['section']!r})"
                         + ("" if st["autocreate"] else "  (not created unless asked)"))
            lines += [f"    {member} -> {prog}" for member, prog in st["programs"].items()]
    if info["externs"]:
        lines += ["", "externs:"]
        lines += [f"  {e['name']:<24} {e['kind']:<8} {e['section']}"
                  + ("  __weak" if e["weak"] else "") for e in info["externs"]]
    for section, variables in info["globals"].items():
        lines += ["", f"{section}:"]
        lines += [f"  {name} = {value!r}" for name, value in variables.items()]
    if relocated is not None:
        lines += ["", f"code relocated for {relocated.target}:"]
        for name, prog in info["relocated"]["programs"].items():
            notes = {c["insn"]: c["result"] for c in prog["core"]}
            lines.append(f"  {name}:")
            for line in prog["insns"]:
                slot = int(line.split(":", 1)[0])
                lines.append(f"    {line}" + (f"    ; {notes[slot]}" if slot in notes else ""))
        return "\n".join(lines) + "\n"
    lines += ["", "code:"]
    for p in obj.spec.programs:
        lines.append(f"  {p.name}:")
        code = obj.spec.elf.sections[p.func.shndx].data
        body = code[p.func.start * I.INSN_SIZE:(p.func.start + p.func.count) * I.INSN_SIZE]
        lines += [f"    {line}" for line in I.disasm(body)]
    return "\n".join(lines) + "\n"
