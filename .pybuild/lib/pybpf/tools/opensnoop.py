"""opensnoop: trace open(), openat() and openat2(): path, flags, mode, result
(a file descriptor, or an errno), from the syscalls' enter/exit tracepoints."""
from __future__ import annotations

import errno as _errno
import functools
import os
from typing import Any, Dict, List

from . import common

COLUMNS = [("PID", 7), ("COMM", 16), ("FD", 4), ("ERR", 3), ("FLAGS", 8), ("PATH", 0)]
#: O_* names of this platform, for --extended flags
FLAG_NAMES = sorted(((getattr(os, n), n) for n in dir(os)
                     if n.startswith("O_") and n not in ("O_RDONLY", "O_ACCMODE", "O_RSYNC",
                                                         "O_NDELAY", "O_FSYNC")
                     and getattr(os, n)), reverse=True)


@functools.lru_cache(maxsize=256)
def flag_names(flags: int) -> str:
    """``O_WRONLY|O_CREAT|...``: an open flags word by name."""
    acc = flags & 3
    names = [{0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(acc, "O_ACCMODE")]
    rest = flags & ~3
    for value, name in FLAG_NAMES:
        if value & ~3 and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def main(argv: List[str]) -> int:
    """Run opensnoop."""
    p = common.parser("opensnoop", __doc__ or "")
    p.add_argument("-x", "--failed", action="store_true", help="only failed opens")
    p.add_argument("-e", "--extended", action="store_true",
                   help="flags by name instead of octal")
    p.add_argument("-n", "--name", default="", metavar="SUBSTRING",
                   help="only paths containing SUBSTRING")
    args = p.parse_args(argv)
    with common.open_tool("opensnoop", args, targ_failed=args.failed) as obj:
        skip = [] if common.tracepoint_exists("syscalls", "sys_enter_open") else \
            ["open_enter", "open_exit"]
        common.load_and_attach(obj, skip)
        out = common.Writer(args, COLUMNS)

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            path = e["fname"].decode(errors="replace")
            if args.name and args.name not in path:
                return
            ret = e["ret"]
            fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
            if out.json:
                out.row({"pid": e["pid"], "tid": e["tid"], "uid": e["uid"], "comm": e["comm"],
                         "fd": fd, "errno": err,
                         "error": _errno.errorcode.get(err, str(err)) if err else "",
                         "flags": e["flags"], "flag_names": flag_names(e["flags"]),
                         "mode": e["mode"], "dfd": e["dfd"], "path": path}, e["ts"])
                return
            out.row({"PID": e["pid"], "COMM": e["comm"], "FD": fd, "ERR": err,
                     "FLAGS": flag_names(e["flags"]) if args.extended else f"{e['flags']:o}",
                     "PATH": path}, e["ts"])
        return common.run_events(obj, args, handle, "open()s")
