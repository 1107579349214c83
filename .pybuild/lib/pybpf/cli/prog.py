"""python -m pybpf prog: list / show loaded programs; dump one's translated
instructions (as the verifier left them) with its source lines, as bpftool does."""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple

from ..asm import insn as I
from .. import loaded, uapi
from ..btf import types as T
from ..btf.cdump import CDumper
from .format import SELECTOR_HELP, add_json, select_ids, take_selector, wants_json, when, write_json

_FIELDS = {"name": lambda p: p.name, "tag": lambda p: p.tag}
_KINDS = ("id", "name", "tag", "pinned")


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``prog list | show | dump``."""
    p = subparsers.add_parser("prog", help="loaded BPF programs (as bpftool prog)")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "show"):
        q = sub.add_parser(verb, help=f"describe programs: all, or one ({SELECTOR_HELP}"
                                      " | tag TAG)")
        q.add_argument("target", nargs="*", help=f"{SELECTOR_HELP} | tag TAG")
        add_json(q)
    d = sub.add_parser("dump", help="translated instructions with source lines")
    d.add_argument("target", nargs="+", help=f"[xlated] {SELECTOR_HELP} | tag TAG")
    add_json(d)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run one ``prog`` verb."""
    out = out if out is not None else sys.stdout
    tokens = list(args.target)
    if args.verb == "dump":
        if tokens[:1] == ["xlated"]:
            tokens.pop(0)
        return _dump(args, tokens, out)
    progs = _select(tokens) if tokens else list(loaded.programs())
    if wants_json(args):
        write_json(args, [prog_json(p) for p in progs], out)
    else:
        out.write("".join(prog_text(p) for p in progs))
    return 0


def _select(tokens: List[str]) -> List[loaded.LoadedProg]:
    sel = take_selector(tokens, _KINDS)
    return select_ids(sel, "prog", loaded.programs, loaded.prog_info, _FIELDS)


def prog_json(p: loaded.LoadedProg) -> Dict[str, Any]:
    """One program as bpftool's ``prog list -j`` has it."""
    row: Dict[str, Any] = {"id": p.id, "type": p.type_name, "name": p.name, "tag": p.tag,
                           "gpl_compatible": p.gpl_compatible}
    if p.run_time_ns or p.run_cnt:
        row.update(run_time_ns=p.run_time_ns, run_cnt=p.run_cnt)
    if p.recursion_misses:
        row["recursion_misses"] = p.recursion_misses
    row.update(loaded_at=int(p.loaded_at), uid=p.uid, bytes_xlated=p.xlated_len,
               jited=bool(p.jited_len), bytes_jited=p.jited_len, bytes_memlock=p.memlock,
               map_ids=p.map_ids)
    if p.btf_id:
        row["btf_id"] = p.btf_id
    row["verified_insns"] = p.verified_insns
    return row


def prog_text(p: loaded.LoadedProg) -> str:
    """One program as bpftool's ``prog list`` prints it."""
    head = f"{p.id}: {p.type_name}  name {p.name}  tag {p.tag}"
    if p.gpl_compatible:
        head += "  gpl"
    if p.run_time_ns or p.run_cnt:
        head += f"  run_time_ns {p.run_time_ns} run_cnt {p.run_cnt}"
    if p.recursion_misses:
        head += f"  recursion_misses {p.recursion_misses}"
    lines = [head, f"\tloaded_at {when(p.loaded_at)}  uid {p.uid}"]
    sizes = f"\txlated {p.xlated_len}B"
    sizes += f"  jited {p.jited_len}B" if p.jited_len else "  not jited"
    sizes += f"  memlock {p.memlock}B"
    if p.map_ids:
        sizes += "  map_ids " + ",".join(map(str, p.map_ids))
    lines.append(sizes)
    extra = []
    if p.btf_id:
        extra.append(f"btf_id {p.btf_id}")
    if p.verified_insns:
        extra.append(f"verified_insns {p.verified_insns}")
    if extra:
        lines.append("\t" + "  ".join(extra))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ dump

@functools.lru_cache(maxsize=1)
def _kernel_symbols() -> Tuple[int, Dict[int, str]]:
    """(address of __bpf_call_base, address -> function name) from /proc/kallsyms;
    (0, {}) when addresses are hidden (not root)."""
    from ..kernel.host import LiveHost
    by_addr: Dict[int, str] = {}
    base = 0
    for line in LiveHost().kallsyms():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in "tTwW":
            continue
        try:
            addr = int(parts[0], 16)
        except ValueError:
            continue
        if addr:
            by_addr.setdefault(addr, parts[2])
            if parts[2] == "__bpf_call_base":
                base = addr
    return base, by_addr


def call_target(ins: I.Insn) -> str:
    """The kernel function a translated helper/kfunc call jumps to
    (``__bpf_call_base + imm``); a tail call keeps its helper number
    (bpf_tail_call); ``helper#imm`` when kallsyms hides the address."""
    base, names = _kernel_symbols()
    name = names.get(base + ins.imm) if base else None
    if name:
        return name
    if ins.src == 0 and 0 < ins.imm < uapi.__BPF_FUNC_MAX_ID and uapi.func_name(ins.imm):
        return f"bpf_{uapi.func_name(ins.imm)}"
    return f"{'kfunc' if ins.src == uapi.BPF_PSEUDO_KFUNC_CALL else 'helper'}#{ins.imm}"


def xlated_text(buf: bytes, idx: int, func_names: Optional[Dict[int, str]] = None) -> str:
    """One translated instruction: map references by map id, helper and kfunc
    calls by the kernel symbol they reach, bpf-to-bpf calls by their offset
    (the verifier moved it to ``off``; ``imm`` is now the subprogram's number)
    and callee name (``func_names``: insn offset -> name); the rest as
    :func:`pybpf.asm.insn.disasm_one`."""
    ins = I.decode(buf, idx)
    if ins.code == I.LD_IMM64 and ins.src in (uapi.BPF_PSEUDO_MAP_FD,
                                               uapi.BPF_PSEUDO_MAP_VALUE):
        off = I.decode(buf, idx + 1).imm
        ref = f"map[id:{ins.imm}]"
        if ins.src == uapi.BPF_PSEUDO_MAP_VALUE:
            ref += f"[0]+{off}"
        return f"r{ins.dst} = {ref}"
    if ins.code == I.CALL and ins.src == uapi.BPF_PSEUDO_CALL:
        callee = (func_names or {}).get(idx + ins.off + 1)
        return f"call pc{ins.off:+d}" + (f" ({callee})" if callee else "")
    if ins.code == I.CALL:
        return f"call {call_target(ins)}"
    return I.disasm_one(buf, idx)


def func_proto_text(btf: Any, func_id: int) -> str:
    """``int handle_exec(struct foo *ctx)`` for a BTF FUNC."""
    func = btf[func_id]
    proto = btf[func.type] if isinstance(func, T.Func) else None
    if not isinstance(proto, T.FuncProto):
        return str(func.name)
    dumper = CDumper(btf)
    params = ", ".join("..." if not p.type else dumper.decl(p.type, p.name, 0)
                       for p in proto.params) or "void"
    return dumper.decl(proto.return_type, f"{func.name}({params})", 0)


def dump_rows(code: loaded.ProgCode) -> List[Dict[str, Any]]:
    """One row per instruction: index, opcode, text; "proto" where a function
    starts, "src"/"file"/"line" where a source line starts."""
    lines = {ln.insn_off: ln for ln in code.lines}
    names = {off: code.btf[type_id].name for off, type_id in code.funcs.items()} \
        if code.btf is not None else {}
    rows: List[Dict[str, Any]] = []
    buf = code.insns
    idx, n = 0, I.count(buf)
    while idx < n:
        row: Dict[str, Any] = {}
        if idx in code.funcs and code.btf is not None:
            row["proto"] = func_proto_text(code.btf, code.funcs[idx])
        ln = lines.get(idx)
        if ln is not None:
            row.update(src=ln.line.strip(), file=ln.file_name, line=ln.line_num, col=ln.col)
        row.update(insn=idx, opcode=f"0x{buf[idx * I.INSN_SIZE]:02x}",
                   disasm=xlated_text(buf, idx, names))
        rows.append(row)
        idx += 2 if buf[idx * I.INSN_SIZE] == I.LD_IMM64 else 1
    return rows


def _dump(args: argparse.Namespace, tokens: List[str], out: TextIO) -> int:
    for p in _select(tokens):
        prog = loaded.open_program(p.id)
        try:
            code = loaded.prog_code(prog.fd)
        finally:
            prog.close()
        rows = dump_rows(code)
        if wants_json(args):
            write_json(args, rows, out)
            continue
        text: List[str] = []
        for row in rows:
            if "proto" in row:
                text.append(f"{row['proto']}:")
            if "src" in row:
                text.append(f"; {row['src']}")
            text.append(f"{row['insn']:4d}: ({row['opcode'][2:]}) {row['disasm']}")
        out.write("\n".join(text) + "\n")
    return 0

