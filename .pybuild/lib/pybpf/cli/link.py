"""python -m pybpf link: list / show BPF links with what each link type tells
(hook, interface, cgroup, tracepoint...), and detach one."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, TextIO

from .. import loaded
from .format import add_json, select_ids, take_selector, wants_json, write_json
from ..link.hooks import Link

_KINDS = ("id", "pinned")


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``link list | show | detach``."""
    p = subparsers.add_parser("link", help="BPF links in the kernel (as bpftool link)")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "show"):
        q = sub.add_parser(verb, help="describe links: all, or one (id N | pinned PATH)")
        q.add_argument("target", nargs="*", help="id N | pinned PATH")
        add_json(q)
    d = sub.add_parser("detach", help="detach a link from its hook (id N | pinned PATH)")
    d.add_argument("target", nargs="+", help="id N | pinned PATH")
    add_json(d)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run one ``link`` verb."""
    out = out if out is not None else sys.stdout
    tokens = list(args.target)
    if args.verb == "detach":
        sel = take_selector(tokens, _KINDS)
        if sel.kind == "pinned":
            link = Link(loaded.open_pinned(sel.value, "link"), desc=f"pinned {sel.value}")
        else:
            link = Link.from_id(int(sel.value))
        link.detach()
        return 0
    links = select_ids(take_selector(tokens, _KINDS), "link", loaded.links, loaded.link_info,
                       {}) if tokens else list(loaded.links())
    if wants_json(args):
        write_json(args, [link_json(ln) for ln in links], out)
    else:
        out.write("".join(link_text(ln) for ln in links))
    return 0


def link_json(ln: loaded.LoadedLink) -> Dict[str, Any]:
    """One link as bpftool's ``link list -j`` has it: id, type, prog_id, then the
    fields of its type."""
    row: Dict[str, Any] = {"id": ln.id, "type": ln.type_name, "prog_id": ln.prog_id}
    row.update(ln.details)
    return row


def link_text(ln: loaded.LoadedLink) -> str:
    """One link as text: ``ID: TYPE  prog ID`` then its fields, one line."""
    lines = [f"{ln.id}: {ln.type_name}  prog {ln.prog_id}"]
    parts: List[str] = []
    for key, value in ln.details.items():
        if value in ("", [], None) or (key == "cookie" and not value):
            continue
        if isinstance(value, list):
            value = ",".join(f"0x{v:x}" if key in ("addrs", "offsets") else str(v)
                             for v in value)
        elif isinstance(value, bool):
            if not value:
                continue
            parts.append(key)
            continue
        parts.append(f"{key} {value}")
    if parts:
        lines.append("\t" + "  ".join(parts))
    return "\n".join(lines) + "\n"
