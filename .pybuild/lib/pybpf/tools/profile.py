"""profile: sample CPU stacks at a frequency on every CPU (a cpu-clock software
perf event), kernel symbols from /proc/kallsyms and user symbols from the ELF
symbol tables of each process's mappings; folded output (-f) for flame graphs."""
from __future__ import annotations

import errno as _errno
import json
import struct
import sys
from typing import Any, Dict, List, Tuple

from . import common
from ..obj.symbols import Symbolizer
from ..kernel.sysinfo import online_cpus

MAX_DEPTH = 127


def stack(stacks: Any, stack_id: int) -> List[int]:
    """The addresses to symbolize of a stack map entry, innermost first ([] for
    none): the sampled address, then each return address minus one (a call that
    ends a function returns to the start of the next one)."""
    if stack_id < 0:
        return []
    raw = stacks.lookup(struct.pack("<I", stack_id))
    if raw is None:
        return []
    addrs = struct.unpack(f"<{len(raw) // 8}Q", raw)
    if 0 in addrs:
        addrs = addrs[:addrs.index(0)]
    return [a if i == 0 else a - 1 for i, a in enumerate(addrs)]


def main(argv: List[str]) -> int:
    """Run profile."""
    p = common.parser("profile", __doc__ or "", timestamps=False)
    p.add_argument("-F", "--frequency", type=int, default=49, metavar="HZ",
                   help="samples per second on each CPU (default 49)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-U", "--user-stacks-only", action="store_true", help="user stacks only")
    g.add_argument("-K", "--kernel-stacks-only", action="store_true",
                   help="kernel stacks only")
    p.add_argument("-I", "--include-idle", action="store_true", help="include the idle task")
    p.add_argument("-f", "--folded", action="store_true",
                   help="folded output: comm;outer;...;inner COUNT (for flamegraph.pl)")
    p.add_argument("duration_pos", nargs="?", type=float, metavar="duration",
                   help="seconds to profile (as --duration)")
    args = common.parse(p, argv)
    if args.duration_pos is not None:
        args.duration = args.duration_pos
    if args.frequency <= 0:
        p.error("-F must be positive")
    with common.open_tool("profile", args, targ_user_only=args.user_stacks_only,
                          targ_kernel_only=args.kernel_stacks_only,
                          targ_idle=args.include_idle) as obj:
        obj.load()
        prog = obj.programs["sample"]
        links = []
        try:
            for cpu in online_cpus():
                links.append(prog.attach(sample_freq=args.frequency, cpu=cpu))
            common.run_periodic(args, lambda: None, f"CPU stacks at {args.frequency} Hz")
            report(obj, args, sys.stdout)
        finally:
            for link in links:
                link.close()
    return 0


def collect(obj: Any) -> List[Tuple[Dict[str, Any], int, List[str], List[str]]]:
    """(key, count, kernel frames, user frames; innermost first), most frequent
    first."""
    sym = Symbolizer()
    stacks = obj.maps["stacks"]
    rows = []
    for key, count in obj.maps["counts"].items():
        kernel = [sym.kernel_name(a) for a in stack(stacks, key["kstack"])]
        user = [sym.user_name(key["pid"], a) for a in stack(stacks, key["ustack"])]
        rows.append((key, count, kernel, user))
    rows.sort(key=lambda r: -r[1])
    return rows


def report(obj: Any, args: Any, out: Any) -> None:
    """Print the samples: folded, JSON, or bcc's stack blocks."""
    rows = collect(obj)
    lost = sum(c for k, c, _, _ in rows if k["ustack"] == -_errno.EEXIST
               or k["kstack"] == -_errno.EEXIST)
    if args.folded:
        folded: Dict[str, int] = {}
        for key, count, kernel, user in rows:
            frames = [common.text(key["comm"])] + user[::-1] + kernel[::-1]
            line = ";".join(f.replace(";", ":") for f in frames)
            folded[line] = folded.get(line, 0) + count
        for line, count in sorted(folded.items(), key=lambda kv: -kv[1]):
            out.write(f"{line} {count}\n")
    elif args.json:
        for key, count, kernel, user in rows:
            out.write(json.dumps({"pid": key["pid"], "comm": common.text(key["comm"]),
                                  "count": count, "kernel": kernel, "user": user}) + "\n")
    else:
        for key, count, kernel, user in rows:
            lines = [f"    {f}" for f in kernel]
            if kernel and user:
                lines.append("    --")
            lines += [f"    {f}" for f in user]
            lines.append(f"    -                {common.text(key['comm'])} ({key['pid']})")
            lines.append(f"        {count}\n")
            out.write("\n".join(lines) + "\n")
    if lost:
        sys.stderr.write(f"WARNING: {lost} samples lost their stack (stack map full: "
                         "raise its size)\n")
    out.flush()
