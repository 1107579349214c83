"""What ``python -m pybpf load`` prints of an object's non-event maps: histograms
(by :func:`pybpf.metrics.hist.detect`'s rules) and counters (maps whose values are
integers or structs of integers), on exit or every ``--interval`` seconds."""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, TextIO

from .. import uapi
from ..btf.codec import jsonable

#: key/value map types whose contents are printed
REPORTED_TYPES = frozenset({uapi.BPF_MAP_TYPE_HASH, uapi.BPF_MAP_TYPE_ARRAY,
                            uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_PERCPU_ARRAY,
                            uapi.BPF_MAP_TYPE_LRU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH})


def reported_maps(obj: Any) -> List[Any]:
    """The maps of a loaded object worth printing: key/value maps (not global data)
    that hold a histogram or counters."""
    out = []
    for m in obj.maps.values():
        spec = m.spec
        if spec.type not in REPORTED_TYPES or spec.is_global_data:
            continue
        from ..metrics import hist         # only objects with key/value maps pay for it
        if hist.map_layout(m) is not None or hist.is_counter_type(m.btf,
                                                                   spec.btf_value_type_id):
            out.append(m)
    return out


def snapshot(m: Any) -> Dict[str, Any]:
    """One map's contents as data: ``{"map", "histograms": [...]}`` or
    ``{"map", "entries": [...]}``."""
    from ..metrics import hist
    layout = hist.map_layout(m)
    if layout is not None:
        return {"map": m.name, "kind": layout.kind, "histograms": [
            {"label": jsonable(h.label), "buckets": h.buckets(), "count": h.total,
             **({"sum": h.sum} if h.sum is not None else {})}
            for h in hist.histograms(m.items(), layout)]}
    return {"map": m.name, "entries": [{"key": jsonable(k), "value": jsonable(v)}
                                       for k, v in hist.counters(m.items())]}


def render(m: Any, unit: str = "value") -> str:
    """One map's contents as text, under a ``map NAME:`` line."""
    from ..metrics import hist
    layout = hist.map_layout(m)
    if layout is not None:
        body = hist.render(hist.histograms(m.items(), layout), unit)
    else:
        body = hist.render_counters(hist.counters(m.items()))
    return f"map {m.name}:\n" + (body or "(empty)\n")


class MapReport:
    """Prints the reported maps of ``obj`` every ``interval`` seconds (``tick()``
    from the event loop) and once more at the end (``final()``)."""

    def __init__(self, obj: Any, out: TextIO, interval: Optional[float] = None,
                 as_json: bool = False):
        self.maps = reported_maps(obj)
        self.out, self.interval, self.as_json = out, interval, as_json
        self._next = time.monotonic() + interval if interval else None

    def timeout_ms(self, default: int) -> int:
        """How long the event loop may wait before the next report is due."""
        if self._next is None:
            return default
        return int(min(default, max(0.0, self._next - time.monotonic()) * 1000))

    def tick(self) -> None:
        """Print when the interval has passed."""
        if self._next is not None and time.monotonic() >= self._next and self.interval:
            self._next += self.interval
            self.print()

    def final(self) -> None:
        """Print at exit."""
        self.print()

    def print(self) -> None:
        """Print every reported map now."""
        if not self.maps:
            return
        if self.as_json:
            import json
            for m in self.maps:
                self.out.write(json.dumps({"time": round(time.time(), 6),
                                           **snapshot(m)}) + "\n")
        else:
            self.out.write(time.strftime("%H:%M:%S") + "\n")
            for m in self.maps:
                self.out.write(render(m))
        self.out.flush()
