"""execsnoop: trace exec() calls (execve, execveat) with arguments, return value
and parent pid, from the syscalls' enter/exit tracepoints."""
from __future__ import annotations

from typing import Any, Dict, List

from . import common

COLUMNS = [("PCOMM", 16), ("PID", 7), ("PPID", 7), ("RET", 4), ("ARGS", 0)]


def args_of(event: Dict[str, Any], raw: bytes, offset: int) -> List[str]:
    """The NUL-separated filename and arguments of an event record."""
    tail = raw[offset:offset + event["args_size"]]
    return [a.decode(errors="replace") for a in tail.split(b"\0")[:event["args_count"]]]


def main(argv: List[str]) -> int:
    """Run execsnoop."""
    p = common.parser("execsnoop", __doc__ or "")
    p.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    p.add_argument("-q", "--quote", action="store_true",
                   help="quote arguments (shell style)")
    args = p.parse_args(argv)
    with common.open_tool("execsnoop", args, targ_failed=args.fails) as obj:
        common.load_and_attach(obj)
        out = common.Writer(args, COLUMNS)
        decode = common.EventDecoder(obj)
        at = decode.offsets["args"]

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            argl = args_of(e, raw, at)
            shown = argl[1:] if len(argl) > 1 else argl
            if args.quote:
                import shlex
                text = " ".join(shlex.quote(a) for a in [argl[0]] + argl[1:])
            else:
                text = " ".join([argl[0]] + argl[1:]) if argl else ""
            if e["truncated"]:
                text += " ..."
            out.row({"PCOMM": e["comm"], "PID": e["pid"], "PPID": e["ppid"],
                     "RET": e["retval"], "ARGS": text} if not out.json else
                    {"comm": e["comm"], "pid": e["pid"], "tid": e["tid"], "ppid": e["ppid"],
                     "uid": e["uid"], "ret": e["retval"], "filename": argl[0] if argl else "",
                     "argv": shown if len(argl) > 1 else [], "truncated": bool(e["truncated"])},
                    e["ts"])
        return common.run_events(obj, args, handle, "exec()s", decode)
