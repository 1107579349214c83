"""``python -m pybpf usdt BINARY [PATTERN]``: the USDT probes of a binary, one row
per probe site (as ``readelf -n`` / ``bpftrace -l 'usdt:BINARY:*'`` list them),
with the file offsets a uprobe uses and the argument specs decoded."""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

from ..obj import uprobe
from ..obj import usdt as usdt_notes
from ..errors import AttachError

_KIND = usdt_notes.ARG_KIND_NAMES


def add_parser(subparsers: Any) -> None:
    """Register the ``usdt`` command."""
    p = subparsers.add_parser("usdt", help="list the USDT probes of a binary")
    p.add_argument("binary", help="path, or a name looked up like a uprobe binary")
    p.add_argument("pattern", nargs="?", default="*",
                   help="glob on PROVIDER:NAME (default: every probe)")
    p.add_argument("--json", action="store_true", help="one JSON object per probe site")


def _arg(spec: usdt_notes.ArgSpec) -> Dict[str, Any]:
    out: Dict[str, Any] = {"spec": spec.text, "kind": _KIND[spec.kind], "size": spec.size,
                           "signed": spec.signed}
    if spec.kind in (usdt_notes.ARG_CONST, usdt_notes.ARG_REG_DEREF, usdt_notes.ARG_SIB):
        out["value" if spec.kind == usdt_notes.ARG_CONST else "offset"] = spec.val_off
    if spec.reg:
        out["reg"] = spec.reg
    if spec.index_reg:
        out.update(index_reg=spec.index_reg, scale=1 << spec.scale_shift)
    return out


def run(args: argparse.Namespace) -> int:
    """List the probes; 1 when none matches."""
    path = uprobe.resolve_binary(args.binary)
    pf = usdt_notes.read_probes(path)
    match = uprobe.glob(args.pattern).fullmatch
    sites = [p for p in pf.probes if match(p.full_name)]
    rows: List[Dict[str, Any]] = []
    for p in sites:
        row: Dict[str, Any] = {"binary": path, "provider": p.provider, "name": p.name,
                               "address": p.address, "offset": p.offset,
                               "semaphore": p.semaphore,
                               "semaphore_offset": p.semaphore_offset, "args": p.args}
        try:
            row["arg_specs"] = [_arg(a) for a in usdt_notes.parse_args(p.args, pf.machine)]
        except usdt_notes.ArgError as e:
            row["error"] = str(e)
        rows.append(row)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        kind = "shared object/PIE" if pf.shared else "executable"
        print(f"{path}: {pf.machine} {kind}, {len(sites)} of {len(pf.probes)} probe sites")
        if rows:
            width = max(len(f"{r['provider']}:{r['name']}") for r in rows)
            print(f"{'PROBE':<{width}}  {'ADDRESS':>12}  {'OFFSET':>10}  {'SEMAPHORE':>12}  ARGS")
        for r in rows:
            sema = f"{r['semaphore']:#x}" if r["semaphore"] else "-"
            line = (f"{r['provider'] + ':' + r['name']:<{width}}  {r['address']:>#12x}  "
                    f"{r['offset']:>#10x}  {sema:>12}  {r['args']}")
            print(line + (f"  [{r['error']}]" if "error" in r else ""))
    if not sites:
        raise AttachError(f"no USDT probe matching {args.pattern!r} in {path}")
    return 0
