"""runqlat: run queue latency (how long runnable tasks wait for a CPU) as a
log2 histogram, from the sched_wakeup, sched_wakeup_new and sched_switch
BTF tracepoints."""
from __future__ import annotations

from typing import List

from . import common

#: ``python -m pybpf export runqlat``: one histogram, in seconds
EXPORT = {"only_configured": True, "metrics": [
    {"map": "hists", "name": "pybpf_runqueue_latency_seconds", "type": "histogram",
     "help": "time runnable tasks waited for a CPU", "labels": {}, "scale": 1e-6}]}


def main(argv: List[str]) -> int:
    """Run runqlat."""
    p = common.parser("runqlat", __doc__ or "", periodic=True, units=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-P", "--pids", action="store_true", help="a histogram per process")
    g.add_argument("-L", "--tids", action="store_true", help="a histogram per thread")
    args = common.parse(p, argv)
    unit_label, _ = common.unit(args)
    with common.open_tool("runqlat", args, targ_per_process=args.pids,
                          targ_per_thread=args.tids) as obj:
        common.load_and_attach(obj)
        hists = obj.maps["hists"]
        out = common.Writer(args, [])

        def report() -> None:
            found = common.keyed_histograms(hists, "tid" if args.tids else "pid")
            common.clear(hists)
            common.print_histograms(out, found, unit_label, "run queue latency")
        return common.run_periodic(args, report, "run queue latency")
