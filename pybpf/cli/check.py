"""``python -m pybpf check OBJ --btf FILE [FILE ...]``: will OBJ load on these kernels?

For each kernel BTF file and each program: every CO-RE relocation (kind,
access, local -> target type, old -> new value), the poisoned ones with
their source line (and whether the verifier could reach them), the attach
target, the externs, and a one-line verdict.  Exit status 1 when any
program would fail on any kernel.  No kernel needed, no root.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, TextIO

from ..obj.check import ProgramCheck, TargetCheck, check
from ..obj.elf import MAX_OBJECT_SIZE, read_regular_file
from ..errors import BPFError
from ..obj.externs import kernel_version_code
from ..obj.spec import parse_object


def add_parser(subparsers: Any) -> None:
    """Register the ``check`` command."""
    p = subparsers.add_parser("check", help="relocate against kernel BTF files and tell "
                                            "which programs would fail there (no kernel "
                                            "needed)")
    p.add_argument("object", help="the BPF object file")
    p.add_argument("--btf", nargs="+", required=True, metavar="FILE",
                   help="vmlinux BTF of each target kernel (raw .BTF or ELF)")
    p.add_argument("--kconfig", metavar="FILE", help="Kconfig of the targets, for "
                                                      "__kconfig externs")
    p.add_argument("--kernel-version", metavar="X.Y.Z", help="release of the targets, for "
                                                              "LINUX_KERNEL_VERSION")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Check, print, and return 1 if any program fails on any target."""
    kconfig = None
    if args.kconfig:
        kconfig = read_regular_file(args.kconfig, MAX_OBJECT_SIZE, "--kconfig").decode(
            "utf-8", "surrogateescape")
    version = kernel_version_code(args.kernel_version) if args.kernel_version else 0
    if args.kernel_version and not version:
        raise BPFError(f"--kernel-version {args.kernel_version!r}: expected X.Y.Z")
    results = check(parse_object(args.object), args.btf, kconfig, version)
    if args.json:
        out.write(json.dumps([_target_json(t) for t in results], indent=2) + "\n")
    else:
        out.write(render(results))
    return 0 if all(t.ok for t in results) else 1


def render(results: List[TargetCheck]) -> str:
    """The text report: per target, per program, its relocations and verdict."""
    lines: List[str] = []
    for t in results:
        lines.append(f"target {t.target}")
        if t.error:
            lines += [f"  cannot relocate: {t.error}", ""]
            continue
        for p in t.programs:
            lines.append(f"  {p.name} SEC({p.section!r}): {p.verdict}")
            for r in _relocations(p):
                state = ("poisoned, unreachable" if r["reachable"] is False else "POISONED") \
                    if r["poisoned"] else f"{r['old']} -> {r['new']}"
                lines.append(f"    relo #{r['index']} <{r['kind']}> {r['access']}: {state}"
                             + (f" via {r['target']}" if r["target"] else "")
                             + (f" ({r['reason']})" if r["poisoned"] else ""))
                if r["line"] and r["poisoned"]:
                    lines.append(f"      at {r['line']}")
            if p.attach:
                lines.append(f"    attach: {p.attach}")
            lines += [f"    {kind} {name}: {status}" for name, kind, status in p.externs]
            lines += [f"    warning: {f.message}" for f in p.findings
                      if not f.fatal and f.message != p.attach]
        lines.append("")
    return "\n".join(lines)


def _relocations(p: ProgramCheck) -> List[Dict[str, Any]]:
    out = []
    for c in p.relocation.core:
        r = c.result
        out.append({"index": r.index, "insn": c.slot, "kind": r.kind_name, "access": r.access,
                    "local": r.spec, "target": r.target, "old": r.orig, "new": r.new,
                    "poisoned": r.poisoned, "reason": r.reason,
                    "reachable": (c.slot not in p.unreachable) if r.poisoned else None,
                    "line": c.source})
    return out


def _target_json(t: TargetCheck) -> Dict[str, Any]:
    return {"target": t.target, "ok": t.ok, "error": t.error or None,
            "programs": [{"name": p.name, "section": p.section, "ok": p.ok,
                          "verdict": p.verdict, "relocations": _relocations(p),
                          "attach": p.attach or None,
                          "externs": [{"name": n, "kind": k, "status": s}
                                      for n, k, s in p.externs],
                          "findings": [{"fatal": f.fatal, "message": f.message}
                                       for f in p.findings]}
                         for p in t.programs]}
