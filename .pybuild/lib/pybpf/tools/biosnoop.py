"""biosnoop: one line per block I/O: task, device, operation, sector, bytes,
time queued and device latency, from the block_rq_insert/issue/complete BTF
tracepoints."""
from __future__ import annotations

from typing import Any, Dict, List

from . import blockdev, common

COLUMNS = [("COMM", 16), ("PID", 7), ("DISK", 8), ("T", 3), ("SECTOR", 12), ("BYTES", 8),
           ("QUE(ms)", 8), ("LAT(ms)", 0)]


def main(argv: List[str]) -> int:
    """Run biosnoop."""
    p = common.parser("biosnoop", __doc__ or "")
    p.add_argument("-d", "--device", default="", metavar="DEV",
                   help="only this device (loop0, /dev/sda, 8:0)")
    args = common.parse(p, argv)
    dev = blockdev.dev_of(args.device) if args.device else 0
    with common.open_tool("biosnoop", args, targ_dev=dev) as obj:
        common.load_and_attach(obj)
        out = common.Writer(args, COLUMNS)

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            disk = blockdev.dev_name(e["dev"])
            if out.json:
                out.row({"comm": e["comm"], "pid": e["pid"], "disk": disk, "dev": e["dev"],
                         "op": blockdev.op_name(e["cmd_flags"]),
                         "rwbs": blockdev.rwbs(e["cmd_flags"]), "sector": e["sector"],
                         "bytes": e["len"], "queued_ns": e["queued_ns"],
                         "latency_ns": e["latency_ns"], "error": e["error"]}, e["ts"])
                return
            out.row({"COMM": e["comm"], "PID": e["pid"], "DISK": disk,
                     "T": blockdev.rwbs(e["cmd_flags"]), "SECTOR": e["sector"],
                     "BYTES": e["len"], "QUE(ms)": f"{e['queued_ns'] / 1e6:.3f}",
                     "LAT(ms)": f"{e['latency_ns'] / 1e6:.3f}"}, e["ts"])
        return common.run_events(obj, args, handle, "block I/O")
