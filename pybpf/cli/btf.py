"""python -m pybpf btf: list the kernel's BTF objects; dump one (by id, from a file,
or a map's / program's) as bpftool's raw text or as a C header (vmlinux.h)."""
from __future__ import annotations

import argparse
import errno as _errno
import os
import sys
from typing import Dict, List, Optional, TextIO, Tuple

from .. import loaded
from ..btf import BTF
from ..btf.cdump import dump_header
from ..btf.rawdump import dump_raw, type_lines
from . import write_output
from .format import add_json, select_ids, take_selector, wants_json, write_json
from ..errors import BPFError

_BTF_MAGIC = b"\x9f\xeb"


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``btf list | show | dump``."""
    p = subparsers.add_parser("btf", help="BTF objects in the kernel; BTF as raw text or C")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "show"):
        q = sub.add_parser(verb, help="list BTF objects (show ID: one)")
        q.add_argument("target", nargs="*", help="id N (show only)")
        add_json(q)
    d = sub.add_parser("dump", help="dump BTF: id N | file PATH | map MAP | prog PROG "
                                    "[format raw|c]")
    d.add_argument("source", nargs="+", help="id N | file PATH | map SEL [key|value|kv|all]"
                                             " | prog SEL | N | PATH, then optionally "
                                             "'format raw|c'")
    d.add_argument("--format", choices=("raw", "c"), help="raw (default) or c")
    d.add_argument("--base", metavar="FILE", help="base BTF of a split BTF file "
                                                   "(default: vmlinux for /sys/kernel/btf)")
    d.add_argument("-o", "--output", metavar="FILE", help="write to FILE")
    d.add_argument("--guard", default="__VMLINUX_H__", help="include guard of a C header")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run one ``btf`` verb."""
    out = out if out is not None else sys.stdout
    if args.verb in ("list", "show"):
        return _list(args, out)
    return _dump(args, out)


def _list(args: argparse.Namespace, out: TextIO) -> int:
    tokens = list(args.target)
    if tokens:
        sel = take_selector(tokens, ("id",))
        infos = select_ids(sel, "btf", loaded.btfs, loaded.btf_info, {})
    else:
        infos = list(loaded.btfs())
    progs: Dict[int, List[int]] = {}
    maps: Dict[int, List[int]] = {}
    for p in loaded.programs():
        if p.btf_id:
            progs.setdefault(p.btf_id, []).append(p.id)
    for m in loaded.maps():
        if m.btf_id:
            maps.setdefault(m.btf_id, []).append(m.id)
    if wants_json(args):
        rows = []
        for b in infos:
            row = {"id": b.id, "size": b.size, "prog_ids": progs.get(b.id, []),
                   "map_ids": maps.get(b.id, []), "kernel": b.kernel}
            if b.name:
                row["name"] = b.name
            rows.append(row)
        write_json(args, rows, out)
        return 0
    for b in infos:
        name = f"[{b.name}]" if b.kernel else (b.name or "<anon>")
        line = f"{b.id}: name {name}  size {b.size}B"
        if b.id in progs:
            line += "  prog_ids " + ",".join(map(str, progs[b.id]))
        if b.id in maps:
            line += "  map_ids " + ",".join(map(str, maps[b.id]))
        out.write(line + "\n")
    return 0


def _dump(args: argparse.Namespace, out: TextIO) -> int:
    tokens = list(args.source)
    fmt = args.format
    if len(tokens) >= 2 and tokens[-2] == "format":
        fmt = tokens[-1]
        del tokens[-2:]
        if fmt not in ("raw", "c"):
            raise BPFError(f"format {fmt!r}: expected raw or c", _errno.EINVAL)
    btf, roots = _source(tokens, args.base)
    if roots is None and btf.base is not None:     # a split BTF: its own types
        roots = list(range(btf.start_id, len(btf)))
    if fmt == "c":      # the roots and every type they need
        text = dump_header(btf, args.guard, roots)
    elif roots is not None:
        text = "".join(line + "\n" for type_id in roots for line in type_lines(btf, type_id))
    else:
        text = "".join(line + "\n" for line in dump_raw(btf))
    if args.output:
        write_output(args.output, text)
    else:
        out.write(text)
    return 0


_MAP_PARTS = ("key", "value", "kv", "all")


def _source(tokens: List[str], base_path: Optional[str]) -> Tuple[BTF, Optional[List[int]]]:
    """The BTF that ``tokens`` name (id N, file PATH, map SEL [key|value|kv|all],
    prog SEL, N, PATH) and the types to dump (None: all).  For a map, as
    bpftool: its key and value types unless ``all`` is asked for."""
    if not tokens:
        raise BPFError("btf dump: what? (id N | file PATH | map SEL | prog SEL)",
                       _errno.EINVAL)
    head, rest = tokens[0], tokens[1:]
    if head == "map":
        part = rest.pop() if rest and rest[-1] in _MAP_PARTS else "kv"
        sel = take_selector(rest, ("id", "name", "pinned"))
        m = select_ids(sel, "map", loaded.maps, loaded.map_info, {"name": lambda i: i.name})[0]
        if not m.btf_id:
            raise BPFError(f"map {sel} has no BTF", _errno.ENOENT)
        roots = {"key": [m.btf_key_type_id], "value": [m.btf_value_type_id],
                 "kv": [m.btf_key_type_id, m.btf_value_type_id], "all": None}[part]
        return loaded.fetch_btf(m.btf_id), [r for r in roots if r] if roots else None
    if head == "prog":
        sel = take_selector(rest, ("id", "name", "tag", "pinned"))
        p = select_ids(sel, "prog", loaded.programs, loaded.prog_info,
                       {"name": lambda i: i.name, "tag": lambda i: i.tag})[0]
        if not p.btf_id:
            raise BPFError(f"prog {sel} has no BTF", _errno.ENOENT)
        return loaded.fetch_btf(p.btf_id), None
    if head == "id" or (head.isdigit() and len(tokens) == 1):
        sel = take_selector(list(tokens), ("id",))
        return loaded.fetch_btf(int(sel.value)), None
    path = rest[0] if head == "file" and rest else head
    return read_btf_file(path, base_path), None


def read_btf_file(path: str, base_path: Optional[str] = None) -> BTF:
    """BTF from a raw .BTF file (such as /sys/kernel/btf/*) or an ELF object's .BTF
    section; module files under /sys/kernel/btf are split on vmlinux."""
    from ..btf import kernel
    from ..obj.elf import MAX_OBJECT_SIZE, read_elf, read_regular_file
    data = read_regular_file(path, MAX_OBJECT_SIZE)
    if data[:4] == b"\x7fELF":
        sec = read_elf(data, path).section(".BTF")
        if sec is None:
            raise BPFError(f"{path} has no .BTF section (build with clang -g)", _errno.ENOENT)
        data = sec.data
    elif data[:2] != _BTF_MAGIC:
        raise BPFError(f"{path} is neither BTF nor an ELF object", _errno.EINVAL)
    base = None
    if base_path:
        base = read_btf_file(base_path)
    elif os.path.dirname(os.path.abspath(path)) == kernel.SYSFS_BTF and \
            os.path.basename(path) != "vmlinux":
        base = kernel.vmlinux()
    return BTF.parse(data, base=base, section=path)

