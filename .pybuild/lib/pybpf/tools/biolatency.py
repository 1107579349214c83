"""biolatency: block I/O latency (issue -> completion, or with -Q from the OS
queue) as log2 histograms, per disk (-D) or operation (-F) on request, from the
block_rq_insert/issue/complete BTF tracepoints."""
from __future__ import annotations

from typing import List

from . import blockdev, common

#: ``python -m pybpf export biolatency``: one histogram, in seconds
EXPORT = {"only_configured": True, "metrics": [
    {"map": "hists", "name": "pybpf_block_io_latency_seconds", "type": "histogram",
     "help": "block I/O latency, issue to completion", "labels": {}, "scale": 1e-6}]}


def main(argv: List[str]) -> int:
    """Run biolatency."""
    p = common.parser("biolatency", __doc__ or "", periodic=True, units=True, filters=False)
    p.add_argument("-Q", "--queued", action="store_true", help="include OS queued time")
    p.add_argument("-D", "--disk", action="store_true", help="a histogram per disk")
    p.add_argument("-F", "--flag", action="store_true", help="a histogram per operation")
    p.add_argument("-d", "--device", default="", metavar="DEV",
                   help="only this device (loop0, /dev/sda, 8:0)")
    args = common.parse(p, argv)
    unit_label, _ = common.unit(args)
    dev = blockdev.dev_of(args.device) if args.device else 0
    with common.open_tool("biolatency", args, targ_queued=args.queued,
                          targ_per_disk=args.disk, targ_per_flag=args.flag,
                          targ_dev=dev) as obj:
        common.load_and_attach(obj)
        hists = obj.maps["hists"]
        out = common.Writer(args, [])

        def report() -> None:
            from ..metrics import hist
            layout = hist.map_layout(hists)
            found = hist.histograms(hists.items(), layout) if layout else []
            common.clear(hists)
            for h in found:
                label = {}
                if args.disk:
                    label["disk"] = blockdev.dev_name(h.label["dev"])
                if args.flag:
                    label["flags"] = blockdev.rwbs(h.label["cmd_flags"])
                h.label = label
            common.print_histograms(out, found, unit_label, "block I/O")
        return common.run_periodic(args, report, "block device I/O")
