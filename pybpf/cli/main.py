"""python -m pybpf: load / inspect / ringbuf-layout."""
from __future__ import annotations

import argparse
import importlib
import math
import mmap
import os
import select
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, TextIO

from .. import uapi
from ..errors import BPFError
from ..object import BPFObject
from .rows import RecordTypes, RowPrinter

if TYPE_CHECKING:
    from .map_report import MapReport
    from .ring_watch import RingWatch



# ------------------------------------------------------------------ load

def _apply_set(obj: BPFObject, assignment: str) -> None:
    name, sep, value = assignment.partition("=")
    if not sep:
        raise BPFError(f"--set {assignment!r}: expected NAME=VALUE")
    for view in obj.sections.values():
        if name in view:
            try:
                view[name] = value          # parsed by the variable's BTF type
            except BPFError as e:
                raise BPFError(f"--set {e}") from None
            return
    known = sorted(v for view in obj.sections.values() for v in view)
    raise BPFError(f"--set {name}: no such global variable (known: {', '.join(known) or 'none'})")


def _readers(obj: BPFObject, printer: RowPrinter, watch: "RingWatch",
             readers: List[Any]) -> None:
    """A RingBuffer for every ring buffer map, a PerfBuffer for every perf event
    array, into ``readers`` as soon as each exists (so that they are closed)."""
    from ..events.ringbuf import RingBuffer
    ring: Optional[RingBuffer] = None
    for m in obj.maps.values():
        if m.type == uapi.BPF_MAP_TYPE_RINGBUF:
            def on_ring(batch: Any, name: str = m.name) -> None:
                watch.seen_runs(name, batch.runs)
                printer.batch(name, batch)
            if ring is None:
                ring = RingBuffer(m, on_ring, batch=True)
                readers.append(ring)
                watch.add(ring.ring(0))
            else:
                watch.add(ring.add(m, on_ring, batch=True))
        elif m.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            from ..events.perfbuf import PerfBuffer

            def on_sample(cpu: int, data: memoryview, name: str = m.name) -> None:
                printer.record(name, data, cpu, slack=7)

            def on_lost(cpu: int, count: int, name: str = m.name) -> None:
                watch.lost_samples(name, count)
                print(f"{name}: lost {count} samples on CPU {cpu}", file=sys.stderr)
            readers.append(PerfBuffer(m, on_sample, lost=on_lost, pages=8))


def _poll_all(readers: Sequence[Any], timeout_ms: int, watch: "RingWatch") -> None:
    """Wait up to ``timeout_ms`` for any reader, look at the rings' fill (before
    reading empties them), then read every reader."""
    select.select(readers, [], [], timeout_ms / 1000)
    watch.check()
    for reader in readers:
        reader.consume()


def cmd_load(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from .ring_watch import RingWatch, resize_rings
    stop = _install_stop_signals()
    with BPFObject.open(args.object) as obj:
        for assignment in args.set or []:
            _apply_set(obj, assignment)
        if args.ring_size is not None:
            resize_rings(obj, args.ring_size)
        obj.load()
        links = obj.attach()
        if args.verbose:
            from .verbose import report as verbose_report
            verbose_report(obj, links, sys.stderr)
        printer = RowPrinter(out, args.json, RecordTypes(obj, args.type))
        watch = RingWatch(obj, sys.stderr)
        readers: List[Any] = []
        try:
            _readers(obj, printer, watch, readers)
            print(f"pybpf: {obj.name}: {len(obj.programs)} program(s) loaded, {len(links)} "
                  f"attached; reading {len(readers)} buffer(s)"
                  + (f" for {args.duration:g}s" if args.duration is not None
                     else "; Ctrl-C to stop"), file=sys.stderr)
            for name, why in obj.skipped.items():
                print(f"pybpf: not attached: {name} (SEC {obj.programs[name].section!r}) "
                      f"{why}", file=sys.stderr)
            from .map_report import MapReport
            report = MapReport(obj, out, args.interval, args.json)
            _read_until(stop, args.duration, readers, watch, report, printer.flush)
            report.final()
        except KeyboardInterrupt:
            pass
        finally:
            for reader in readers:
                reader.close()
            watch.summary()
    return 0


def _read_until(stop: Callable[[], bool], duration: Optional[float], readers: List[Any],
                watch: "RingWatch", report: "MapReport", flush: Callable[[], None]) -> None:
    """Read until a stop signal or the end of ``duration`` (None: no end; 0: one
    drain of what is there, then out), printing the maps every ``--interval``;
    then drain once more."""
    deadline = time.monotonic() + duration if duration is not None else None
    while not stop():
        remaining = 100 if deadline is None else \
            int(min(100, max(0.0, deadline - time.monotonic()) * 1000))
        if deadline is not None and remaining <= 0:
            break
        remaining = report.timeout_ms(remaining)
        watch.check()
        if readers:
            _poll_all(readers, remaining, watch)
            flush()
        else:
            time.sleep(remaining / 1000)
        report.tick()
    watch.check()
    for reader in readers:
        reader.consume()
    flush()


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
        relocated = obj.relocate(args.btf, strict=False) if args.btf else None
        out.write(describe(obj, as_json=args.json, relocated=relocated))
    return 0


def cmd_ringbuf_layout(args: argparse.Namespace, rest: List[str]) -> int:
    from ..study.layout import main as layout_main
    return layout_main(rest)


# ------------------------------------------------------------------ entry

def prog_name(argv0: str) -> str:
    """How the user started us: ``python -m pybpf`` or the script's name."""
    base = os.path.basename(argv0)
    return "python -m pybpf" if base in ("__main__.py", "-m", "") else base


#: the commands that live in a module of their own (add_parser(sub), run(args)): a
#: command's module is imported only when it runs (or when help lists them all)
COMMANDS: Dict[str, str] = {
    "check": ".check", "gen": ".gen", "usdt": ".usdt", "prog": ".prog", "map": ".map",
    "link": ".link", "btf": ".btf", "feature": ".feature", "tool": ".tool",
    "export": ".export"}


def _command_module(name: str) -> Any:
    return importlib.import_module(COMMANDS[name], __package__)


def build_parser(wanted: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole parser; with ``wanted`` (the command about to run), that command's
    alone: the others' modules are not imported, nor their parsers made (each costs
    ~0.2 ms of a start)."""
    from .. import __version__
    parser = argparse.ArgumentParser(prog=prog_name(sys.argv[0] if sys.argv else ""),
                                     description="pure-Python eBPF loader")
    parser.add_argument("--version", action="version", version=f"pybpf {__version__}",
                        help="print pybpf's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    if wanted in (None, "load"):
        _add_load(sub)
    if wanted in (None, "inspect"):
        inspect = sub.add_parser("inspect", help="describe an object without loading it")
        inspect.add_argument("object", help="the BPF object file")
        inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
        inspect.add_argument("--btf", metavar="FILE", help="show the code relocated against "
                                                            "this kernel BTF file (no kernel "
                                                            "needed)")
    if wanted is None:
        sub.add_parser("ringbuf-layout", help="show a ring buffer's memory layout, live",
                       add_help=False)
    for name in COMMANDS:
        if wanted in (None, name):
            _command_module(name).add_parser(sub)
    return parser


def _add_load(sub: Any) -> None:
    load = sub.add_parser("load", help="load, attach and print events from every "
                                       "ring buffer and perf buffer")
    load.add_argument("object", help="the BPF object file (clang -O2 -g -target bpf)")
    load.add_argument("--set", action="append", metavar="NAME=VALUE",
                      help="set a global (const volatile) variable before load")
    load.add_argument("--duration", type=_duration, metavar="SECONDS",
                      help="stop after SECONDS (0: load, attach, read what is there, "
                           "detach and exit)")
    load.add_argument("--ring-size", type=_ring_size, metavar="BYTES",
                      help="give every ring buffer map BYTES (a power of two, a multiple "
                           "of the page size) before load")
    load.add_argument("--json", action="store_true", help="one JSON object per record")
    load.add_argument("--type", metavar="STRUCT", help="record type (default: found in BTF)")
    load.add_argument("-v", "--verbose", action="store_true",
                      help="show the steps on stderr: maps created, relocations applied, "
                           "programs loaded, links made")
    load.add_argument("--interval", type=float, metavar="SECONDS",
                      help="print counter and histogram maps every SECONDS (always on exit)")


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give a finite number of seconds >= 0")
    return value


def _ring_size(text: str) -> int:
    page = mmap.PAGESIZE
    try:
        value = int(text, 0)
    except ValueError:
        value = 0
    if value < page or value & (value - 1) or value > 1 << 31:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a ring size is a power of two from {page} (the page size) to 2^31")
    return value


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def command() -> int:
        if argv[:1] == ["ringbuf-layout"]:
            return cmd_ringbuf_layout(argparse.Namespace(), argv[1:])
        first = next((a for a in argv if not a.startswith("-")), None)
        wanted = first if first in COMMANDS or first in ("load", "inspect") else None
        args = build_parser(wanted).parse_args(argv)
        if hasattr(args, "run"):            # commands whose subcommands set run=
            return int(args.run(args))
        if args.command in COMMANDS:
            return int(_command_module(args.command).run(args))
        return {"load": cmd_load, "inspect": cmd_inspect}[args.command](args)
    return _run(command)


def _run(fn: Callable[[], int]) -> int:
    from .signals import cli_finished, cli_started
    try:
        cli_started()
        return fn()
    except BPFError as e:
        print(f"pybpf: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``| head``): end quietly, as a C tool killed by
        # SIGPIPE would; what is still buffered for stdout goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    finally:
        cli_finished()
