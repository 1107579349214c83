"""syscount: count system calls, per syscall or per process (-P), with their
latency (-L), from the raw_syscalls sys_enter/sys_exit tracepoints."""
from __future__ import annotations

import errno as _errno
import time
from typing import Any, Dict, List

from . import common
from .syscall_names import syscall_name

#: ``python -m pybpf export syscount``: calls per syscall number
EXPORT = {"only_configured": True, "metrics": [
    {"map": "counts", "name": "pybpf_syscalls_total", "value": "count",
     "help": "system calls made, by syscall number", "labels": {"nr": "key"}}]}


def parse_errno(text: str) -> int:
    """``2`` or ``ENOENT`` -> 2."""
    if text.isdigit():
        return int(text)
    value = getattr(_errno, text.upper(), None)
    if not isinstance(value, int):
        raise SystemExit(f"pybpf tool syscount: unknown errno {text!r}")
    return value


def main(argv: List[str]) -> int:
    """Run syscount."""
    p = common.parser("syscount", __doc__ or "", periodic=True, units=True, timestamps=False)
    p.add_argument("-T", "--top", type=int, default=10, metavar="N",
                   help="print the N most frequent (default 10; 0: all)")
    p.add_argument("-L", "--latency", action="store_true", help="measure latency too")
    p.add_argument("-P", "--process", action="store_true", help="count per process")
    p.add_argument("-x", "--failures", action="store_true", help="only failed calls")
    p.add_argument("-e", "--errno", default="", metavar="ERRNO",
                   help="only calls failing with ERRNO (number or name)")
    args = common.parse(p, argv)
    unit_label, unit_ns = common.unit(args)
    with common.open_tool("syscount", args, targ_per_process=args.process,
                          targ_latency=args.latency, targ_failed=args.failures,
                          targ_errno=parse_errno(args.errno) if args.errno else 0) as obj:
        common.load_and_attach(obj)
        counts = obj.maps["counts"]
        out = common.Writer(args, [])

        def report() -> None:
            rows = sorted(counts.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
            common.clear(counts)
            if args.top:
                rows = rows[:args.top]
            if out.json:
                for key, d in rows:
                    rec: Dict[str, Any] = {"pid": key, "comm": d["comm"]} if args.process \
                        else {"nr": key, "syscall": syscall_name(key)}
                    rec["count"] = d["count"]
                    if args.latency:
                        rec.update(total_ns=d["total_ns"], max_ns=d["max_ns"])
                    out.row(rec)
                return
            first = "PID    COMM            " if args.process else "SYSCALL                 "
            head = f"{first}{'COUNT':>10}"
            if args.latency:
                head += f" {'TOTAL ' + unit_label:>16} {'AVG ' + unit_label:>12}"
            lines = [f"[{time.strftime('%H:%M:%S')}]", head]
            for key, d in rows:
                name = f"{key:<6} {common.text(d['comm']):<16}" if args.process \
                    else f"{syscall_name(key):<23} "
                line = f"{name}{d['count']:>10}"
                if args.latency:
                    line += f" {d['total_ns'] / unit_ns:>16.3f}" \
                            f" {d['total_ns'] / unit_ns / max(d['count'], 1):>12.3f}"
                lines.append(line)
            out.raw("\n".join(lines) + "\n\n")
        return common.run_periodic(args, report, "syscalls")
