"""python -m pybpf feature: what this kernel supports (program types, map types,
helpers per program type, link types), probed as ``bpftool feature probe`` does."""
from __future__ import annotations

import argparse
import errno as _errno
import sys
from typing import Any, Dict, List, Optional, TextIO

from ..kernel import probes as features
from .format import add_json, wants_json, write_json
from ..errors import BPFError


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``feature [probe] [kernel]``."""
    p = subparsers.add_parser("feature", help="probe what this kernel supports "
                                              "(as bpftool feature probe kernel)")
    p.add_argument("words", nargs="*", metavar="probe kernel",
                   help="accepted for bpftool compatibility")
    p.add_argument("--full", action="store_true",
                   help="also probe helpers that write to the kernel log (trace_printk...)")
    p.add_argument("--no-helpers", action="store_true", help="skip the helper probes")
    p.add_argument("--no-cache", action="store_true",
                   help="probe again even if this boot's answer is cached")
    add_json(p)
    p.set_defaults(run=run)


def as_bpftool_json(result: Dict[str, Any]) -> Dict[str, Any]:
    """The probe result keyed as ``bpftool feature probe kernel --json``."""
    out: Dict[str, Any] = {
        "program_types": {f"have_{k}_prog_type": v for k, v in result["program_types"].items()},
        "map_types": {f"have_{k}_map_type": v for k, v in result["map_types"].items()},
        "link_types": result["link_types"],
        "misc": {f"have_{k}": v for k, v in result["misc"].items()}}
    if "helpers" in result:
        out["helpers"] = {f"{k}_available_helpers": v for k, v in result["helpers"].items()}
    return out


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Probe (or read this boot's cached answer) and print it."""
    out = out if out is not None else sys.stdout
    extra = [w for w in args.words if w not in ("probe", "kernel")]
    if extra:
        raise BPFError(f"feature: unexpected {' '.join(extra)!r} (only this kernel is "
                       "probed: 'feature probe kernel')", _errno.EINVAL)
    result = features.probe(helpers=not args.no_helpers, full=args.full,
                            use_cache=not args.no_cache)
    if wants_json(args):
        write_json(args, as_bpftool_json(result), out)
        return 0
    lines: List[str] = ["Scanning eBPF program types..."]
    lines += [f"eBPF program_type {k} is {'available' if v else 'NOT available'}"
              for k, v in result["program_types"].items()]
    lines += ["", "Scanning eBPF map types..."]
    lines += [f"eBPF map_type {k} is {'available' if v else 'NOT available'}"
              for k, v in result["map_types"].items()]
    if "helpers" in result:
        lines += ["", "Scanning eBPF helper functions..."]
        for prog_type, names in result["helpers"].items():
            lines.append(f"eBPF helpers supported for program type {prog_type}:")
            lines += [f"\t- {name}" for name in names]
    lines += ["", "Scanning miscellaneous eBPF features..."]
    lines += [f"{k.replace('_', ' ')} is {'available' if v else 'NOT available'}"
              for k, v in result["misc"].items()]
    lines += ["", "Scanning BPF link types..."]
    lines += [f"link_type {k} is defined by this kernel" for k in result["link_types"]]
    out.write("\n".join(lines) + "\n")
    return 0
