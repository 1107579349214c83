"""What every pybpf tool shares: the object shipped next to this module, the
options users expect (``-p``, ``-c``, ``-T``/``-t``, ``--json``, interval and
count, ``-m``/``-u``), filters written into ``.rodata``, the event loop over the
``events`` ring buffer and the table/JSON writer."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from ..btf import codec
from ..btf.codec import jsonable
from ..errors import BPFError
from ..object import BPFObject

BPF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf")
NSEC_PER_SEC = 1_000_000_000


def object_path(tool: str) -> str:
    """Path of the tool's BPF object (package data, built by ``make tools-bpf``)."""
    path = os.path.join(BPF_DIR, f"{tool}.bpf.o")
    if not os.path.exists(path):
        raise BPFError(f"{path} is missing: build the tools' BPF objects with "
                       "'make tools-bpf' (a wheel ships them built)")
    return path


# ------------------------------------------------------------------ options

def parser(name: str, description: str, *, periodic: bool = False, units: bool = False,
           timestamps: bool = True, filters: bool = True) -> argparse.ArgumentParser:
    """An ArgumentParser with the options shared by the tools: ``-p PID``,
    ``-c COMM``, ``-T``/``-t`` (event tools), ``interval [count]`` (periodic
    tools), ``-m``/``-u`` (histogram tools), ``--json``, ``--duration``."""
    p = argparse.ArgumentParser(prog=f"pybpf tool {name}", description=description)
    if filters:
        p.add_argument("-p", "--pid", type=int, default=0, metavar="PID",
                       help="only this process (thread group id)")
        p.add_argument("-c", "--comm", default="", metavar="COMM",
                       help="only tasks with this command name (up to 15 characters)")
    if timestamps:
        g = p.add_mutually_exclusive_group()
        g.add_argument("-T", "--time", action="store_true",
                       help="a wall clock time column (HH:MM:SS)")
        g.add_argument("-t", "--timestamp", action="store_true",
                       help="a column of seconds since tracing started")
    if periodic:
        p.add_argument("interval", nargs="?", type=float, default=None,
                       help="print every INTERVAL seconds (default: once, at the end)")
        p.add_argument("count", nargs="?", type=int, default=None,
                       help="stop after COUNT intervals")
        p.add_argument("-i", "--interval", dest="interval_opt", type=float, default=None,
                       metavar="SECONDS", help="the interval, as an option")
    if units:
        g = p.add_mutually_exclusive_group()
        g.add_argument("-m", "--milliseconds", action="store_true",
                       help="histogram in milliseconds")
        g.add_argument("-u", "--microseconds", action="store_true",
                       help="histogram in microseconds (the default)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after SECONDS (default: Ctrl-C)")
    return p


def parse(p: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    """Parse a tool's arguments (``-i`` sets the interval too)."""
    args = p.parse_args(argv)
    if getattr(args, "interval_opt", None) is not None:
        args.interval = args.interval_opt
    if getattr(args, "interval", None) is not None and args.interval <= 0:
        p.error("the interval must be positive")
    return args


def unit(args: argparse.Namespace) -> Tuple[str, int]:
    """(label, nanoseconds per unit) from ``-m`` / ``-u``."""
    if getattr(args, "milliseconds", False):
        return "msecs", 1_000_000
    return "usecs", 1_000


def open_tool(tool: str, args: argparse.Namespace, **rodata: Any) -> BPFObject:
    """Open the tool's object and set its filters (``targ_tgid`` from ``-p``,
    ``targ_comm`` from ``-c``, units from ``-m``/``-u``) and ``rodata``."""
    obj = BPFObject.open(object_path(tool))
    try:
        ro = obj.rodata
        if getattr(args, "pid", 0):
            ro["targ_tgid"] = args.pid
        if getattr(args, "comm", ""):
            comm = args.comm.encode()
            if len(comm) > 15:
                raise BPFError(f"-c {args.comm!r}: a command name has at most 15 bytes")
            ro["targ_comm"] = comm
        if "targ_unit_ns" in ro:
            ro["targ_unit_ns"] = unit(args)[1]
        for name, value in rodata.items():
            ro[name] = value
    except BaseException:
        obj.close()
        raise
    return obj


def load_and_attach(obj: BPFObject, skip: Sequence[str] = ()) -> None:
    """Load and attach every program except those named in ``skip`` (not loaded)."""
    for name in skip:
        obj.programs[name].autoload = False
    obj.load()
    obj.attach()


def tracepoint_exists(category: str, name: str) -> bool:
    """Whether this kernel has the tracepoint (some syscalls exist per arch only)."""
    from ..kernel.fs import tracepoint_id
    try:
        tracepoint_id(category, name)
    except (BPFError, OSError):
        return False
    return True


def ready(what: str, out: TextIO = sys.stderr) -> None:
    """The line saying tracing has started (tests wait for it)."""
    out.write(f"Tracing {what}... Hit Ctrl-C to end.\n")
    out.flush()


# ------------------------------------------------------------------ running

class Stop:
    """SIGINT / SIGTERM / ``--duration`` end a tool's loop."""

    def __init__(self, duration: Optional[float]):
        self.deadline = time.monotonic() + duration if duration else None
        self.signalled = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signalled = True

    def __bool__(self) -> bool:
        return self.signalled or (self.deadline is not None
                                  and time.monotonic() >= self.deadline)

    def wait_ms(self, most: int = 100) -> int:
        """How long the loop may block now (0 when time is up)."""
        if self.deadline is None:
            return most
        return int(min(most, max(0.0, self.deadline - time.monotonic()) * 1000))

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking for a stop; True when stopped."""
        end = time.monotonic() + seconds
        while not self:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.1, left, self.wait_ms(100) / 1000 or 0.001))
        return True


class EventDecoder:
    """Decodes the tool's ``struct event`` records (shorter records, sent with a
    variable-length tail, are padded with zeros)."""

    def __init__(self, obj: BPFObject, type_name: str = "event"):
        btf = obj.btf
        if btf is None:
            raise BPFError(f"{obj.name}: the tool's object has no BTF")
        type_id = btf.find_one(type_name)
        self.codec = codec.compile(btf, type_id)
        self.size = self.codec.size
        struct_ = btf[btf.resolve(type_id)]
        #: byte offset of each member (for variable-length tails read raw)
        self.offsets = {m.name: m.bit_offset // 8 for m in getattr(struct_, "members", [])}

    def __call__(self, data: memoryview) -> Tuple[Dict[str, Any], bytes]:
        """(decoded event, the record's bytes)."""
        raw = bytes(data)
        full = raw[:self.size] if len(raw) >= self.size else raw + bytes(self.size - len(raw))
        return self.codec.decode(full), raw


Handler = Callable[[Dict[str, Any], bytes], None]


def run_events(obj: BPFObject, args: argparse.Namespace, handle: Handler, what: str,
               decode: Optional[EventDecoder] = None) -> int:
    """Read the ``events`` ring buffer, handing each record to ``handle`` (decoded
    through the object's ``struct event``, and raw) until stopped."""
    from ..events.ringbuf import RingBuffer
    decode = decode or EventDecoder(obj)
    stop = Stop(args.duration)

    def on_record(data: memoryview) -> None:
        handle(*decode(data))
    rb = RingBuffer(obj.maps["events"], on_record)
    try:
        ready(what)
        while not stop:
            if rb.poll(stop.wait_ms()):
                sys.stdout.flush()
        rb.consume()
    finally:
        rb.close()
        sys.stdout.flush()
    dropped = obj.bss["events_dropped"] if "events_dropped" in obj.bss else 0
    if dropped:
        sys.stderr.write(f"pybpf: {dropped} event(s) lost: the ring buffer was full\n")
    return 0


def run_periodic(args: argparse.Namespace, report: Callable[[], None], what: str) -> int:
    """Call ``report`` every ``interval`` seconds (``count`` times at most), or once
    at the end without an interval."""
    stop = Stop(args.duration)
    ready(what)
    done = 0
    interval = getattr(args, "interval", None)
    while True:
        if interval is None:
            while not stop.sleep(3600):
                pass
            report()
            return 0
        stopped = stop.sleep(interval)
        report()
        done += 1
        if stopped or (getattr(args, "count", None) is not None and done >= args.count):
            return 0


# ------------------------------------------------------------------ output

def text(value: Any) -> str:
    """A cell: C strings up to their NUL, control characters escaped."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).split(b"\0", 1)[0].decode(errors="replace")
    s = str(value)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in s):
        s = s.encode("unicode_escape").decode()
    return s


class Writer:
    """Rows under a header (``columns``: name and width, the last unpadded), or one
    JSON object per row; optional TIME column from ``-T`` / ``-t``."""

    def __init__(self, args: argparse.Namespace, columns: Sequence[Tuple[str, int]],
                 out: Optional[TextIO] = None):
        self.out = out or sys.stdout
        self.json = bool(getattr(args, "json", False))
        self.clock = "T" if getattr(args, "time", False) else \
            "t" if getattr(args, "timestamp", False) else ""
        self.start_ns = time.monotonic_ns()
        self.columns = list(columns)
        self._head = [("TIME", 8)] if self.clock == "T" else \
            [("TIME(s)", 9)] if self.clock == "t" else []
        if not self.json and self.columns:
            cols = self._head + self.columns
            self._line([n for n, _ in cols], cols)

    def _line(self, cells: Sequence[str], cols: Sequence[Tuple[str, int]]) -> None:
        parts = [c.ljust(w) if i < len(cols) - 1 else c
                 for i, (c, (_, w)) in enumerate(zip(cells, cols))]
        self.out.write(" ".join(parts).rstrip() + "\n")

    def row(self, values: Dict[str, Any], ts_ns: Optional[int] = None) -> None:
        """One row; ``values`` by column name (extra keys go only to JSON).  Not
        flushed: the event loop flushes once per batch."""
        if self.json:
            record = {k: jsonable(v) for k, v in values.items()}
            if ts_ns is not None:
                record.setdefault("ts_ns", ts_ns)
            self.out.write(json.dumps(record) + "\n")
        else:
            cells = []
            if self.clock == "T":
                cells.append(time.strftime("%H:%M:%S"))
            elif self.clock == "t":
                now = ts_ns if ts_ns is not None else time.monotonic_ns()
                cells.append(f"{(now - self.start_ns) / NSEC_PER_SEC:.3f}")
            cells += [text(values.get(n, "")) for n, _ in self.columns]
            self._line(cells, self._head + self.columns)

    def raw(self, text_: str) -> None:
        """Free text (histograms, section headers); not in JSON mode."""
        self.out.write(text_)
        self.out.flush()


def clear(m: Any) -> None:
    """Delete every entry of a hash map (the per-interval reset)."""
    for key in list(m.raw_keys()):
        m.delete(key)


def keyed_histograms(m: Any, key_name: str) -> List[Any]:
    """The histograms of a map of ``struct hist`` keyed by an integer, the key
    labelled ``key_name`` (one unlabelled histogram for key 0)."""
    from ..metrics import hist
    layout = hist.map_layout(m)
    if layout is None:
        raise BPFError(f"map {m.name!r} holds no histogram")
    out = []
    for h in hist.histograms(m.items(), layout):
        key = h.label.pop("key", 0)
        comm = h.label.pop("comm", b"")
        h.label = {key_name: key, "comm": comm} if key else {}
        out.append(h)
    return out


def print_histograms(writer: Writer, hists: List[Any], unit_label: str,
                     label_name: str = "") -> None:
    """Histograms as text, or one JSON object per histogram."""
    from ..metrics import hist
    if writer.json:
        for h in hists:
            writer.out.write(json.dumps({"unit": unit_label, **jsonable(h.label),
                                         "buckets": [{"low": lo, "high": hi, "count": c}
                                                     for lo, hi, c in h.buckets()],
                                         "count": h.total, "sum": h.sum}) + "\n")
        writer.out.flush()
        return
    if writer.clock == "T":
        writer.raw(time.strftime("%H:%M:%S") + "\n")
    writer.raw(hist.render(hists, unit_label) or f"(no {label_name or 'values'} recorded)\n")
