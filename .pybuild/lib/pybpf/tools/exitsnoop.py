"""exitsnoop: trace process exits with their exit code, terminating signal and
lifetime, from sched_process_exit (task fields read with CO-RE)."""
from __future__ import annotations

import signal
from typing import Any, Dict, List

from . import common

COLUMNS = [("PCOMM", 16), ("PID", 7), ("PPID", 7), ("TID", 7), ("AGE(s)", 8),
           ("EXIT_CODE", 0)]


def signal_name(sig: int) -> str:
    """SIGKILL for 9, or the number."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def describe(e: Dict[str, Any]) -> str:
    """``0``, ``code 3`` or ``signal 9 (SIGKILL), core dumped``."""
    if e["sig"]:
        return f"signal {e['sig']} ({signal_name(e['sig'])})" + \
            (", core dumped" if e["core"] else "")
    return str(e["code"]) if not e["code"] else f"code {e['code']}"


def main(argv: List[str]) -> int:
    """Run exitsnoop."""
    p = common.parser("exitsnoop", __doc__ or "")
    p.add_argument("-x", "--failed", action="store_true",
                   help="only exits with a non-zero code or by a signal")
    p.add_argument("--threads", action="store_true",
                   help="every thread's exit, not only the process's")
    args = p.parse_args(argv)
    with common.open_tool("exitsnoop", args, targ_failed=args.failed,
                          targ_threads=args.threads) as obj:
        common.load_and_attach(obj)
        out = common.Writer(args, COLUMNS)

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            age = e["lifetime_ns"] / common.NSEC_PER_SEC
            if out.json:
                out.row({"comm": e["comm"], "pid": e["pid"], "ppid": e["ppid"],
                         "tid": e["tid"], "age_s": round(age, 6), "exit_code": e["code"],
                         "signal": e["sig"], "signal_name": signal_name(e["sig"])
                         if e["sig"] else "", "core_dumped": bool(e["core"]),
                         "status": e["exit_code"]}, e["ts"])
                return
            out.row({"PCOMM": e["comm"], "PID": e["pid"], "PPID": e["ppid"], "TID": e["tid"],
                     "AGE(s)": f"{age:.2f}", "EXIT_CODE": describe(e)}, e["ts"])
        return common.run_events(obj, args, handle, "process exits")
