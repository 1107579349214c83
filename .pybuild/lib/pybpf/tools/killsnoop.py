"""killsnoop: trace signals sent with kill(), tkill() and tgkill(): sender,
target, signal and result, from the syscalls' enter/exit tracepoints."""
from __future__ import annotations

import errno as _errno
import signal
from typing import Any, Dict, List

from . import common
from .exitsnoop import signal_name

COLUMNS = [("PID", 7), ("COMM", 16), ("SIG", 8), ("TPID", 7), ("CALL", 6), ("RESULT", 0)]
CALLS = {0: "kill", 1: "tkill", 2: "tgkill"}


def parse_signal(text: str) -> int:
    """``9``, ``KILL`` or ``SIGKILL`` -> 9."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    try:
        return int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError:
        raise SystemExit(f"pybpf tool killsnoop: unknown signal {text!r}") from None


def main(argv: List[str]) -> int:
    """Run killsnoop."""
    p = common.parser("killsnoop", __doc__ or "")
    p.add_argument("-x", "--failed", action="store_true", help="only failed sends")
    p.add_argument("-s", "--signal", default="", metavar="SIG",
                   help="only this signal (number or name)")
    args = p.parse_args(argv)
    sig = parse_signal(args.signal) if args.signal else 0
    with common.open_tool("killsnoop", args, targ_failed=args.failed, targ_sig=sig) as obj:
        common.load_and_attach(obj)
        out = common.Writer(args, COLUMNS)

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            ret = e["ret"]
            result = "0" if ret == 0 else _errno.errorcode.get(-ret, str(ret))
            call = CALLS.get(int(e["call"]), str(e["call"]))
            if out.json:
                out.row({"pid": e["pid"], "tid": e["tid"], "comm": e["comm"], "sig": e["sig"],
                         "signal_name": signal_name(e["sig"]) if e["sig"] else "0",
                         "tpid": e["tpid"], "tgid": e["tgid"], "call": call, "ret": ret},
                        e["ts"])
                return
            out.row({"PID": e["pid"], "COMM": e["comm"],
                     "SIG": signal_name(e["sig"]) if e["sig"] else "0", "TPID": e["tpid"],
                     "CALL": call, "RESULT": result}, e["ts"])
        return common.run_events(obj, args, handle, "signals")
