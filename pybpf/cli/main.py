"""python -m pybpf: load / inspect / ringbuf-layout."""
from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, TextIO

from .. import uapi
from ..errors import BPFError
from ..object import BPFObject
from .rows import RecordTypes, RowPrinter


# ------------------------------------------------------------------ load

def _parse_value(text: str) -> Any:
    try:
        return int(text, 0)
    except ValueError:
        return text.encode()


def _apply_set(obj: BPFObject, assignment: str) -> None:
    name, sep, value = assignment.partition("=")
    if not sep:
        raise BPFError(f"--set {assignment!r}: expected NAME=VALUE")
    for view in obj.sections.values():
        if name in view:
            view[name] = _parse_value(value)
            return
    known = sorted(v for view in obj.sections.values() for v in view)
    raise BPFError(f"--set {name}: no such global variable (known: {', '.join(known) or 'none'})")


def _readers(obj: BPFObject, printer: RowPrinter) -> List[Any]:
    from ..events.perfbuf import PerfBuffer
    from ..events.ringbuf import RingBuffer
    readers: List[Any] = []
    ring: Optional[RingBuffer] = None
    for m in obj.maps.values():
        if m.type == uapi.BPF_MAP_TYPE_RINGBUF:
            def on_ring(batch: Any, name: str = m.name) -> None:
                printer.batch(name, batch)
            if ring is None:
                ring = RingBuffer(m, on_ring, batch=True)
                readers.append(ring)
            else:
                ring.add(m, on_ring, batch=True)
        elif m.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            def on_sample(cpu: int, data: memoryview, name: str = m.name) -> None:
                printer.record(name, data, cpu, slack=7)

            def on_lost(cpu: int, count: int, name: str = m.name) -> None:
                print(f"{name}: lost {count} samples on CPU {cpu}", file=sys.stderr)
            readers.append(PerfBuffer(m, on_sample, lost=on_lost, pages=8))
    return readers


def _poll_all(readers: Sequence[Any], timeout_ms: int) -> None:
    if len(readers) == 1:
        readers[0].poll(timeout_ms)
        return
    ready, _, _ = select.select(readers, [], [], timeout_ms / 1000)
    for reader in ready:
        reader.consume()


def cmd_load(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    stop = _install_stop_signals()
    with BPFObject.open(args.object) as obj:
        for assignment in args.set or []:
            _apply_set(obj, assignment)
        obj.load()
        links = obj.attach()
        if args.verbose:
            from .verbose import report
            report(obj, links, sys.stderr)
        printer = RowPrinter(out, args.json, RecordTypes(obj, args.type))
        readers = _readers(obj, printer)
        print(f"pybpf: {obj.name}: {len(obj.programs)} program(s) loaded, {len(links)} "
              f"attached; reading {len(readers)} buffer(s)"
              + (f" for {args.duration:g}s" if args.duration else "; Ctrl-C to stop"),
              file=sys.stderr)
        deadline = time.monotonic() + args.duration if args.duration else None
        try:
            while not stop():
                remaining = 100 if deadline is None else \
                    int(min(100, max(0.0, deadline - time.monotonic()) * 1000))
                if deadline is not None and remaining <= 0:
                    break
                if readers:
                    _poll_all(readers, remaining)
                    printer.flush()
                else:
                    time.sleep(remaining / 1000)
            for reader in readers:
                reader.consume()
            printer.flush()
        except KeyboardInterrupt:
            pass
        finally:
            for reader in readers:
                reader.close()
    return 0


def _install_stop_signals() -> Callable[[], bool]:
    """SIGINT / SIGTERM set a flag the loop checks, so the object closes cleanly."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return lambda: flag["stop"]


# ------------------------------------------------------------------ inspect

def cmd_inspect(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from .describe import describe
    with BPFObject.open(args.object) as obj:
        out.write(describe(obj, as_json=args.json))
    return 0


def cmd_ringbuf_layout(args: argparse.Namespace, rest: List[str]) -> int:
    from ..study.layout import main as layout_main
    return layout_main(rest)


# ------------------------------------------------------------------ entry

def prog_name(argv0: str) -> str:
    """How the user started us: ``python -m pybpf`` or the script's name."""
    base = os.path.basename(argv0)
    return "python -m pybpf" if base in ("__main__.py", "-m", "") else base


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = argparse.ArgumentParser(prog=prog_name(sys.argv[0] if sys.argv else ""),
                                     description="pure-Python eBPF loader")
    parser.add_argument("--version", action="version", version=f"pybpf {__version__}",
                        help="print pybpf's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load, attach and print events from every "
                                       "ring buffer and perf buffer")
    load.add_argument("object", help="the BPF object file (clang -O2 -g -target bpf)")
    load.add_argument("--set", action="append", metavar="NAME=VALUE",
                      help="set a global (const volatile) variable before load")
    load.add_argument("--duration", type=float, metavar="SECONDS",
                      help="stop after this many seconds (default: at Ctrl-C / SIGTERM)")
    load.add_argument("--json", action="store_true", help="one JSON object per record")
    load.add_argument("--type", metavar="STRUCT", help="record type (default: found in BTF)")
    load.add_argument("-v", "--verbose", action="store_true",
                      help="show the steps on stderr: maps created, relocations applied, "
                           "programs loaded, links made")
    inspect = sub.add_parser("inspect", help="describe an object without loading it")
    inspect.add_argument("object", help="the BPF object file")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser("ringbuf-layout", help="show a ring buffer's memory layout, live",
                   add_help=False)
    from . import gen
    gen.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["ringbuf-layout"]:
        return _run(lambda: cmd_ringbuf_layout(argparse.Namespace(), argv[1:]))
    args = parser.parse_args(argv)
    from . import gen
    command = {"load": cmd_load, "inspect": cmd_inspect, "gen": gen.run}[args.command]
    return _run(lambda: command(args))


def _run(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except BPFError as e:
        print(f"pybpf: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
