"""The ring laid bare: a live BPF ring buffer's memory, and a scenario that drives one.

:func:`describe` reports, for any mapped ring (a :class:`~pybpf.events.ringbuf.RingBuffer`
ring or a :class:`~pybpf.events.user_ringbuf.UserRingBuffer`): its two mappings with
addresses and protections as ``/proc/self/maps`` shows them, both positions,
every record header between them (offset, len, BUSY, DISCARD, pg_off), and
the proof that the data pages are mapped twice — the same bytes at ``data``
and ``data + size``, and, when ``/proc/self/pagemap`` may be read (root), the
same physical frame behind both addresses.

``main(argv)`` (``python -m pybpf ringbuf-layout [--size BYTES] [--json] [--svg
FILE]``) creates a small ring, drives a hand-assembled BPF producer
(:mod:`pybpf.study.producer`) through records of several sizes, a discarded
one and one that wraps the end, consumes them with :class:`RingBuffer`, then
shows a BUSY record — which a kernel producer never leaves visible — through
a user ring buffer reservation that is not yet submitted.
"""
from __future__ import annotations

import argparse
import json
import sys
from html import escape
from typing import Any, Dict, List, Sequence, Tuple, cast

from ..kernel import syscall
from .. import uapi
from ..errors import BPFError
from ..events.memory import describe as _describe
from ..events.ringbuf import RingBuffer
from ..events.ringmem import HDR_SIZE, PAGE_SIZE, RingMapping
from ..events.user_ringbuf import UserRingBuffer

# ------------------------------------------------------------------ introspection


def _mapping_of(ring: Any) -> RingMapping:
    if isinstance(ring, RingMapping):
        return ring
    if isinstance(ring, RingBuffer):
        return ring.ring(0).mapping
    mapping = getattr(ring, "mapping", None)
    if isinstance(mapping, RingMapping):
        return mapping
    raise BPFError(f"cannot describe a {type(ring).__name__}: not a mapped ring")


def describe(ring: Any) -> Dict[str, Any]:
    """Everything about a live ring (a RingBuffer, UserRingBuffer or RingMapping):
    :func:`pybpf.events.memory.describe` of its mapping."""
    return _describe(_mapping_of(ring))


# ------------------------------------------------------------------ the scenario


class _Scenario:
    """Drives a kernel ring (and a user ring, for BUSY) and records a state per step."""

    def __init__(self, size: int):
        if size < PAGE_SIZE or size & (size - 1) or size % PAGE_SIZE:
            raise BPFError(f"--size must be a power-of-2 multiple of the page size "
                           f"({PAGE_SIZE}), got {size}")
        self.size = size
        self.steps: List[Dict[str, Any]] = []
        self.consumed: List[bytes] = []

    def _step(self, title: str, ring: Any, note: str = "") -> None:
        self.steps.append({"title": title, "note": note, "state": describe(ring)})

    def run(self) -> List[Dict[str, Any]]:
        from .producer import Producer
        size = self.size
        with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, size, name="layout_rb") as fd, \
                Producer(fd.fd) as prod, \
                RingBuffer(fd.fd, lambda mv: self.consumed.append(bytes(mv))) as rb:
            self._step("empty ring", rb, f"a {size}-byte ring: both positions at 0")
            prod.output(b"hello, ring!")
            self._step("bpf_ringbuf_output(12 bytes)", rb,
                       "header (len, pg_off) + 12 bytes, padded to 24")
            prod.output(bytes(range(100)))
            prod.reserve(b"D" * 40, discard=True)
            prod.reserve(b"S" * 24)
            self._step("output(100) + reserve(40)/discard + reserve(24)/submit", rb,
                       "the discarded record keeps its place, flagged DISCARD")
            n = rb.consume()
            self._step(f"RingBuffer.consume() -> {n}", rb,
                       "DISCARD skipped but consumed; consumer_pos published once")
            # move the positions near the end of the data area with small records
            left = size - (rb.ring().producer_pos & (size - 1))
            fillers = max(0, (left - 64) // 24)
            prod.seq(fillers, flags=0)
            rb.consume()
            self.consumed.clear()
            left = size - (rb.ring().producer_pos & (size - 1))
            self._step(f"{fillers} filler records produced and consumed", rb,
                       f"{left} bytes left before the end of the data area")
            wrap = bytes((i * 7) & 0xFF for i in range(left - HDR_SIZE + 48))
            prod.output(wrap)
            self._step(f"output({len(wrap)}): a record that wraps", rb,
                       "it starts near the end and continues at offset 0; the second "
                       "mapping of the data pages makes it contiguous")
            rb.consume()
            ok = self.consumed[-1:] == [wrap]
            self._step("consume() the wrapped record", rb,
                       f"one memoryview slice, no copy: contents {'intact' if ok else 'WRONG'}")
        with syscall.map_create(uapi.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, size,
                                name="layout_urb") as fd, UserRingBuffer(fd.fd) as urb:
            held = urb.reserve(32)
            cast(memoryview, held.buf)[:] = b"B" * 32   # a fresh reservation
            urb.write(b"after the busy one")
            self._step("user ring: reserve(32) held, then write(18)", urb,
                       "BUSY until submitted: bpf_user_ringbuf_drain (and any consumer) "
                       "stops at it, the committed record behind it waits")
            held.submit()
            self._step("submit() the held reservation", urb, "BUSY cleared: both records ready")
        return self.steps


def scenario(size: int = 2 * PAGE_SIZE) -> List[Dict[str, Any]]:
    """Run the scenario on a fresh ring of ``size`` bytes; one state per step."""
    return _Scenario(size).run()


# ------------------------------------------------------------------ rendering


def _flags(rec: Dict[str, Any]) -> str:
    flags = [f for f, on in (("BUSY", rec["busy"]), ("DISCARD", rec["discard"]),
                             ("WRAPS", rec["wraps"])) if on]
    return ",".join(flags) or "-"


def render_state(state: Dict[str, Any]) -> List[str]:
    lines = [f"  consumer_pos {state['consumer_pos']}  producer_pos {state['producer_pos']}  "
             f"({state['in_flight']} bytes in flight, {state['free']} free)"]
    recs = state["records"]
    if recs:
        lines.append("    pos       offset   len   flags          pg_off  bytes  payload")
        for r in recs:
            mark = "  <- consumer stops (BUSY)" if r["consumer_stops_here"] else ""
            lines.append(f"    {r['pos']:<9} {r['offset']:#07x}  {r['len']:<5} "
                         f"{_flags(r):<14} {r['pg_off']:<7} {r['record_bytes']:<6} "
                         f"{r['head'][:24]}{'...' if r['len'] > 12 else ''}{mark}")
        if state["records_cut"]:
            lines.append(f"    ... (first {len(recs)} records shown)")
    return lines


def render_mappings(state: Dict[str, Any]) -> List[str]:
    m = state["map"]
    lines = [f"{m['type']} {m['name']!r} (id {m['id']}): {m['size']} data bytes, "
             f"page size {state['page_size']}"]
    for mp in state["mappings"]:
        lines.append(f"  {mp['address']:#x}-{mp['end']:#x} {mp['prot'] or '?'} "
                     f"file offset {mp['file_offset']:#x}  {mp['what']}")
        if mp["proc_maps"]:
            lines.append(f"    /proc/self/maps: {mp['proc_maps']}")
    d = state["data"]
    lines.append(f"  data pages mapped twice: {d['first_copy']:#x} and {d['second_copy']:#x} "
                 f"hold the same bytes: {'yes' if d['same_bytes'] else 'NO'}")
    for p in d["pages"]:
        pfn = (f"frame {p['pfn_first']:#x} / {p['pfn_second']:#x}"
               if p["pfn_first"] is not None else "frames not visible (needs root)")
        lines.append(f"    page {p['page']}: {p['first']:#x} and {p['second']:#x}: {pfn}")
    return lines


def render_text(steps: Sequence[Dict[str, Any]]) -> str:
    out: List[str] = []
    shown = set()
    for i, step in enumerate(steps, 1):
        state = step["state"]
        if state["map"]["id"] not in shown:
            shown.add(state["map"]["id"])
            out.extend([""] * bool(out) + render_mappings(state) + [""])
        out.append(f"step {i}: {step['title']}")
        if step["note"]:
            out.append(f"  {step['note']}")
        out.extend(render_state(state))
    return "\n".join(out) + "\n"


_COLORS = {"committed": "#4caf50", "discard": "#9e9e9e", "busy": "#ff9800"}


class _Axis:
    """Byte offsets of the doubly mapped data area -> x, on a broken axis.

    Two windows of ``window`` bytes each side of the break: the start of the
    data pages, and the end of the data pages followed, contiguous in virtual
    memory, by the start of their second mapping.  A record that wraps is drawn
    as the consumer sees it, one piece across the end; offsets between the
    windows fall into the break."""

    GAP = 36

    def __init__(self, size: int, left: float, width: float, window: int = 512):
        self.size, self.left = size, left
        self.window = min(window, size // 2)
        self.scale = (width - self.GAP) / (3 * self.window)
        self.split = left + self.window * self.scale            # end of the first window
        self.second = self.split + self.GAP                     # start of the second one

    def x(self, offset: int) -> float:
        """x of a virtual offset in [0, 2 * size]."""
        if offset <= self.window:
            return self.left + offset * self.scale
        if offset < self.size - self.window:
            return self.split + self.GAP / 2                    # inside the break
        return self.second + (offset - (self.size - self.window)) * self.scale

    def spans(self, start: int, end: int) -> List[Tuple[float, float]]:
        """Visible x ranges of the virtual byte range [start, end)."""
        out = []
        for lo, hi in ((0, self.window), (self.size - self.window, self.size + self.window)):
            a, b = max(start, lo), min(end, hi)
            if a < b:
                out.append((self.x(a), self.x(b)))
        return out


def render_svg(steps: Sequence[Dict[str, Any]]) -> str:
    """One bar per step over the doubly mapped data area: records coloured by
    state, a wrapping record shown whole across the end (and, faded, where its
    tail's bytes live at the start), consumer and producer positions marked."""
    width, left, bar_w, row_h, top = 1000, 20, 960, 84, 124
    height = top + row_h * len(steps) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="20" y="24" font-size="16">BPF ring buffer, laid bare</text>']
    legend_x = 20
    for name, color in _COLORS.items():
        out.append(f'<rect x="{legend_x}" y="36" width="12" height="12" fill="{color}"/>'
                   f'<text x="{legend_x + 16}" y="46">{name}</text>')
        legend_x += 110
    if steps:
        out.extend(_svg_axis_header(steps[0]["state"], left, bar_w))
    for i, step in enumerate(steps):
        out.extend(_svg_step(i, step, top + i * row_h, left, bar_w))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_axis_header(state: Dict[str, Any], left: float, bar_w: float) -> List[str]:
    size = state["map"]["size"]
    axis = _Axis(size, left, bar_w)
    d = state["data"]
    w = axis.window
    second_at = axis.x(size)
    proof = (f'same bytes: {"yes" if d["same_bytes"] else "no"}'
             + (f', same frames: {"yes" if d.get("same_frames") else "no"}'
                if d.get("same_frames") is not None else ""))
    return [
        f'<text x="{left}" y="70">data pages @ {d["first_copy"]:#x}</text>',
        f'<text x="{axis.second}" y="70">... end of data pages</text>',
        f'<text x="{second_at + 4:.2f}" y="70" fill="#6a1b9a">2nd mapping @ '
        f'{d["second_copy"]:#x}</text>',
        f'<text x="{left}" y="86" fill="#555">[0, {w:#x})</text>',
        f'<text x="{axis.second}" y="86" fill="#555">[{size - w:#x}, {size:#x})</text>',
        f'<text x="{second_at + 4:.2f}" y="86" fill="#6a1b9a">= [0, {w:#x}) again</text>',
        f'<text x="{left}" y="104" fill="#6a1b9a">the kernel maps the data pages twice, '
        f'back to back: {proof}</text>',
    ]


def _svg_step(i: int, step: Dict[str, Any], y: float, left: float, bar_w: float) -> List[str]:
    state = step["state"]
    size = state["map"]["size"]
    axis = _Axis(size, left, bar_w)
    second_at = axis.x(size)
    right = axis.x(size + axis.window)
    out = [f'<text x="{left}" y="{y + 12}">{i + 1}. {escape(step["title"])} '
           f'({escape(state["map"]["name"])})</text>',
           f'<rect x="{left}" y="{y + 20}" width="{axis.split - left:.2f}" height="24" '
           f'fill="#f4f4f4" stroke="#555"/>',
           f'<text x="{axis.split + axis.GAP / 2:.2f}" y="{y + 37}" text-anchor="middle">'
           '&#8230;</text>',
           f'<rect x="{axis.second:.2f}" y="{y + 20}" width="{second_at - axis.second:.2f}" '
           'height="24" fill="#f4f4f4" stroke="#555"/>',
           f'<rect x="{second_at:.2f}" y="{y + 20}" width="{right - second_at:.2f}" '
           'height="24" fill="#f3e5f5" stroke="#6a1b9a" stroke-dasharray="4 2"/>']
    for rec in state["records"]:
        color = _COLORS["busy" if rec["busy"] else "discard" if rec["discard"] else "committed"]
        start, end = rec["offset"], rec["offset"] + rec["record_bytes"]
        title = f'<title>pos {rec["pos"]} len {rec["len"]} {_flags(rec)}</title>'
        for x0, x1 in axis.spans(start, end):
            out.append(f'<rect x="{x0:.2f}" y="{y + 22}" width="{max(x1 - x0, 1):.2f}" '
                       f'height="20" fill="{color}" stroke="white" stroke-width="0.5">'
                       f'{title}</rect>')
        if end > size:      # the wrapped tail's bytes, where they physically are
            for x0, x1 in axis.spans(0, end - size):
                out.append(f'<rect x="{x0:.2f}" y="{y + 22}" width="{max(x1 - x0, 1):.2f}" '
                           f'height="20" fill="{color}" opacity="0.35" stroke="#6a1b9a" '
                           f'stroke-dasharray="2 2"><title>the same bytes: tail of the '
                           f'wrapped record at pos {rec["pos"]}</title></rect>')
    for name, pos, color, dy in (("cons", state["consumer_pos"], "#1565c0", 58),
                                 ("prod", state["producer_pos"], "#c62828", 71)):
        x = axis.x(pos % size)
        anchor = ' text-anchor="end"' if x > left + bar_w * 0.8 else ""
        tx = x - 3 if anchor else x + 3
        out.append(f'<line x1="{x:.2f}" y1="{y + 18}" x2="{x:.2f}" y2="{y + 48}" '
                   f'stroke="{color}" stroke-width="2"/>'
                   f'<text x="{tx:.2f}" y="{y + dy}" fill="{color}"{anchor}>{name} {pos}</text>')
    return out


# ------------------------------------------------------------------ command line


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pybpf ringbuf-layout",
        description="drive a small BPF ring buffer through a scenario and show its memory")
    parser.add_argument("--size", type=lambda s: int(s, 0), default=2 * PAGE_SIZE,
                        help="ring size in bytes: a power-of-2 multiple of the page size")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON")
    parser.add_argument("--svg", metavar="FILE", help="also write an SVG picture of the steps")
    args = parser.parse_args(argv)
    try:
        steps = scenario(args.size)
    except BPFError as e:
        print(f"ringbuf-layout: {e}", file=sys.stderr)
        return 1
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(render_svg(steps))
    sys.stdout.write(json.dumps({"steps": steps}, indent=1) + "\n" if args.json
                     else render_text(steps))
    return 0
