"""python -m pybpf: load / inspect / ringbuf-layout."""
from __future__ import annotations

import argparse
import json
import select
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from .. import uapi
from ..btf import BTF
from ..btf import types as T
from ..errors import BPFError
from ..object import BPFObject


# ------------------------------------------------------------------ record decoding

class RecordDecoder:
    """Decodes event records through the object's BTF.

    The record type is the struct named with ``--type``, or else the object's
    own named struct whose size matches the record (the perf buffer pads raw
    samples to 8 bytes, so up to 7 extra bytes are allowed there).  Structs the
    kernel defines too (tracepoint contexts and the like) are passed over."""

    def __init__(self, btf: Optional[BTF], type_name: Optional[str] = None):
        self.btf = btf
        self._by_size: Dict[int, Optional[Any]] = {}
        self._forced = None
        self.candidates: List[int] = []
        if btf is None:
            if type_name:
                raise BPFError("--type needs BTF in the object (build with clang -g)")
            return
        from ..btf import codec
        self._codec = codec
        if type_name:
            ids = [i for i in btf.find(type_name) if isinstance(btf[i], (T.Struct, T.Union))]
            if not ids:
                raise BPFError(f"no struct or union {type_name!r} in the object's BTF")
            self._forced = codec.compile(btf, ids[0])
            return
        self.candidates = [i for i in range(btf.start_id, len(btf))
                           if isinstance(btf[i], T.Struct) and btf[i].name
                           and not _is_kernel_struct(btf[i].name)]
        # prefer names that say what they are
        self.candidates.sort(key=lambda i: "event" not in btf[i].name.lower())

    @property
    def template(self) -> Optional[Dict[str, Any]]:
        """A zero record (names and value kinds of the columns), when the record
        type is known before the first record arrives."""
        comp = self._forced or (self._compile(self.candidates[0])
                                if len(self.candidates) == 1 else None)
        if comp is None:
            return None
        value = comp.decode(bytes(comp.size))
        return value if isinstance(value, dict) else {"value": value}

    def _compile(self, type_id: int):
        return self._codec.compile(self.btf, type_id)

    def codec_for(self, size: int, slack: int) -> Optional[Any]:
        if self._forced is not None:
            return self._forced
        key = size * 8 + slack
        if key not in self._by_size:
            match = [i for i in self.candidates
                     if 0 <= size - self.btf.size_of(i) <= slack]
            self._by_size[key] = self._compile(match[0]) if match else None
        return self._by_size[key]

    def decode(self, data: memoryview, slack: int = 0) -> Dict[str, Any]:
        comp = self.codec_for(len(data), slack) if self.btf is not None else None
        if comp is None:
            return {"data": bytes(data).hex()}
        value = comp.decode(bytes(data[:comp.size]))
        return value if isinstance(value, dict) else {"value": value}


def _is_kernel_struct(name: str) -> bool:
    try:
        from ..btf import kernel
        return bool(kernel.vmlinux().find(name, uapi.BTF_KIND_STRUCT))
    except (BPFError, OSError):
        return False


def _cell(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return value.split(b"\0", 1)[0].decode(errors="replace")
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return _cell(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class Printer:
    """One row (or JSON object) per record, to ``out``: numbers in 7 columns,
    strings in 16 (as the seed's exec snoop), the last column unpadded."""

    def __init__(self, out: TextIO, as_json: bool, template: Optional[Dict[str, Any]]):
        self.out, self.as_json = out, as_json
        self.columns: Optional[List[str]] = None
        self.widths: Dict[str, int] = {}
        if template and not as_json:
            self._header(template)

    def _header(self, template: Dict[str, Any]) -> None:
        self.columns = list(template)
        for name, value in template.items():
            self.widths[name] = 7 if isinstance(value, int) else 16
        self.widths[self.columns[-1]] = 0
        self.out.write(" ".join(["TIME    "] + [c.upper().ljust(self.widths[c])
                                              for c in self.columns]).rstrip() + "\n")

    def row(self, source: str, record: Dict[str, Any], cpu: Optional[int] = None) -> None:
        now = time.time()
        if self.as_json:
            obj = {"time": round(now, 6), "map": source}
            if cpu is not None:
                obj["cpu"] = cpu
            obj.update(_jsonable(record))
            self.out.write(json.dumps(obj) + "\n")
        else:
            if self.columns is None:
                self._header(record)
            stamp = time.strftime("%H:%M:%S", time.localtime(now))
            cells = [_cell(record.get(c, "")).ljust(self.widths[c]) for c in self.columns]
            self.out.write(" ".join([stamp] + cells).rstrip() + "\n")
        self.out.flush()


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


def _readers(obj: BPFObject, printer: Printer, decoder: RecordDecoder) -> List[Any]:
    from ..events.perfbuf import PerfBuffer
    from ..events.ringbuf import RingBuffer
    readers: List[Any] = []
    ring: Optional[RingBuffer] = None
    for m in obj.maps.values():
        if m.type == uapi.BPF_MAP_TYPE_RINGBUF:
            def on_ring(data: memoryview, name: str = m.name) -> None:
                printer.row(name, decoder.decode(data))
            if ring is None:
                ring = RingBuffer(m, on_ring)
                readers.append(ring)
            else:
                ring.add(m, on_ring)
        elif m.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            def on_sample(cpu: int, data: memoryview, name: str = m.name) -> None:
                printer.row(name, decoder.decode(data, slack=7), cpu)

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
        decoder = RecordDecoder(obj.btf, args.type)
        printer = Printer(out, args.json, decoder.template)
        readers = _readers(obj, printer, decoder)
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
                else:
                    time.sleep(remaining / 1000)
            for reader in readers:
                reader.consume()
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

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pybpf",
                                     description="pure-Python eBPF loader")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load, attach and print events from every "
                                       "ring buffer and perf buffer")
    load.add_argument("object")
    load.add_argument("--set", action="append", metavar="NAME=VALUE",
                      help="set a global (const volatile) variable before load")
    load.add_argument("--duration", type=float, metavar="SECONDS")
    load.add_argument("--json", action="store_true", help="one JSON object per record")
    load.add_argument("--type", metavar="STRUCT", help="record type (default: found in BTF)")
    inspect = sub.add_parser("inspect", help="describe an object without loading it")
    inspect.add_argument("object")
    inspect.add_argument("--json", action="store_true")
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
