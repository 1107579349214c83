"""Histograms and counters kept in BPF maps: detection from BTF, reading, rendering.

Pure: reads maps only through their dict-like interface (``items()``), makes no
system call itself.  Rendering follows bcc's ``print_log2_hist`` /
``print_linear_hist`` (header, ``low -> high : count |stars|`` rows, a 40-column
bar scaled to the largest bucket).

Slot conventions
----------------
- log2: slot ``i`` counts values in ``[2**i, 2**(i+1) - 1]``, slot 0 counts 0 and 1
  (the BPF side computes ``slot = floor(log2(v))``, 0 for 0), as libbpf-tools do.
- linear: slot ``i`` counts values in ``[base + i*step, base + (i+1)*step - 1]``.

How a map is recognised as a histogram (:func:`detect`), first rule that fits:

1. its value is a struct with a member ``slots``, an array of integers: one
   histogram per key (the key and the value's other scalar members, e.g. a
   ``comm``, label it); a ``sum`` integer member, when present, is the sum of the
   recorded values;
2. its key is a struct with an integer member ``slot`` or ``bucket`` and its value
   an integer: the bucket comes from that member, one histogram per value of the
   key's other members;
3. its key and value are integers and its name contains ``hist``: the key is the
   bucket, one histogram.

A histogram is linear when the map's name contains ``linear`` (base 0, step 1
unless given), log2 otherwise.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from ..btf import BTF
from ..btf import types as T
from ..record import Record

STARS = 40
SLOT_FIELDS = ("slot", "bucket")
Label = Tuple[Tuple[str, Any], ...]


class Layout(NamedTuple):
    """Where a map keeps its buckets (see the module docstring for the rules)."""

    kind: str                          # "log2" or "linear"
    slots_field: Optional[str] = None  # rule 1: the value member with the slot array
    bucket_field: Optional[str] = None  # rule 2: the key member with the bucket index
    nslots: int = 0                    # 0: as many as the data has
    sum_field: Optional[str] = None    # rule 1: the value member with the sum


class Histogram(Record):
    """One histogram: its bucket counts, how they map to values, and its label
    (key fields, empty for a map holding a single histogram)."""

    _fields = ("counts", "kind", "label", "base", "step", "sum")
    __slots__ = _fields
    counts: List[int]
    kind: str
    label: Dict[str, Any]
    base: int
    step: int
    sum: Optional[int]

    def __init__(self, counts: List[int], kind: str = "log2",
                 label: Optional[Dict[str, Any]] = None, base: int = 0, step: int = 1,
                 sum: Optional[int] = None) -> None:
        self.counts = counts
        self.kind = kind
        self.label = {} if label is None else label
        self.base = base
        self.step = step
        self.sum = sum

    def bounds(self, slot: int) -> Tuple[int, int]:
        """The smallest and largest value slot ``slot`` counts."""
        if self.kind == "linear":
            low = self.base + slot * self.step
            return low, low + self.step - 1
        return (0 if slot == 0 else 1 << slot), (1 << (slot + 1)) - 1

    def buckets(self) -> List[Tuple[int, int, int]]:
        """(low, high, count) of every slot."""
        return [self.bounds(i) + (c,) for i, c in enumerate(self.counts)]

    @property
    def total(self) -> int:
        """Number of values recorded."""
        return sum(self.counts)

    def estimated_sum(self) -> int:
        """The recorded ``sum`` or, without one, the sum of each bucket's lower bound
        times its count (a lower estimate)."""
        if self.sum is not None:
            return self.sum
        return sum(low * count for low, _, count in self.buckets())

    def render(self, unit: str = "value") -> str:
        """bcc's text form (empty when nothing was recorded)."""
        if self.kind == "linear":
            return render_linear(self.counts, self.base, self.step, unit)
        return render_log2(self.counts, unit)


def stars(value: int, value_max: int, width: int = STARS) -> str:
    """The bar of one bucket, ``width`` columns for ``value_max``; a value above the
    maximum ends in ``+`` (as bcc draws it)."""
    if value_max <= 0:
        return " " * width
    n = min(value, value_max) * width // value_max
    bar = "*" * n
    if value > value_max:
        bar = bar[:-1] + "+"
    return bar.ljust(width)


def render_log2(counts: Sequence[int], unit: str = "value") -> str:
    """A log2 histogram as bcc prints it: every slot up to the last non-empty one."""
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    if last < 0:
        return ""
    wide = last > 32
    width, num, stars_w = (29, 20, STARS // 2) if wide else (19, 10, STARS)
    vmax = max(counts)
    lines = [f"{'':{15 if wide else 5}}{unit:<{width}} : count     distribution"]
    h = Histogram(list(counts))
    for i in range(last + 1):
        low, high = h.bounds(i)
        lines.append(f"{low:>{num}} -> {high:<{num}} : {counts[i]:<8} "
                     f"|{stars(counts[i], vmax, stars_w)}|")
    return "\n".join(lines) + "\n"


def render_linear(counts: Sequence[int], base: int = 0, step: int = 1,
                  unit: str = "value") -> str:
    """A linear histogram as bcc prints it: non-empty slots, by their lower bound."""
    used = [i for i, c in enumerate(counts) if c]
    if not used:
        return ""
    vmax = max(counts)
    lines = [f"     {unit:<13} : count     distribution"]
    for i in range(used[0], used[-1] + 1):
        if counts[i]:
            lines.append(f"        {base + i * step:<10} : {counts[i]:<8} "
                         f"|{stars(counts[i], vmax)}|")
    return "\n".join(lines) + "\n"


def label_text(label: Dict[str, Any]) -> str:
    """``pid = 12, comm = bash``: a keyed histogram's section header."""
    return ", ".join(f"{k} = {_text(v)}" for k, v in label.items())


def render(hists: Iterable[Histogram], unit: str = "value") -> str:
    """Every histogram, each keyed one under its label line."""
    parts = []
    for h in hists:
        body = h.render(unit)
        if not body:
            continue
        parts.append((f"\n{label_text(h.label)}\n" if h.label else "") + body)
    return "".join(parts)


# ------------------------------------------------------------------ BTF detection

def _strip(btf: BTF, type_id: int) -> T.Type:
    return btf[btf.resolve(type_id)]


def _is_int(btf: BTF, type_id: int) -> bool:
    t = _strip(btf, type_id)
    return isinstance(t, (T.Int, T.Enum)) and not (isinstance(t, T.Int) and t.is_bool)


def _int_array_len(btf: BTF, type_id: int) -> int:
    t = _strip(btf, type_id)
    if isinstance(t, T.Array) and _is_int(btf, t.type):
        return t.nelems
    return 0


def _member(btf: BTF, type_id: int, names: Sequence[str]) -> Optional[T.Member]:
    t = _strip(btf, type_id) if type_id else None
    if not isinstance(t, T.Struct) or isinstance(t, T.Union):
        return None
    return next((m for m in t.members if m.name in names), None)


def detect(name: str, btf: Optional[BTF], key_type_id: int, value_type_id: int,
           max_entries: int = 0) -> Optional[Layout]:
    """The histogram layout of a map from its name and key/value BTF types, or None
    when it is not a histogram by the module's rules."""
    if btf is None or not value_type_id:
        return None
    kind = "linear" if "linear" in name.lower() else "log2"
    slots = _member(btf, value_type_id, ("slots",))
    if slots is not None and _int_array_len(btf, slots.type):
        total = _member(btf, value_type_id, ("sum",))
        return Layout(kind, slots_field="slots", nslots=_int_array_len(btf, slots.type),
                      sum_field="sum" if total is not None and _is_int(btf, total.type)
                      else None)
    if not _is_int(btf, value_type_id) or not key_type_id:
        return None
    bucket = _member(btf, key_type_id, SLOT_FIELDS)
    if bucket is not None and _is_int(btf, bucket.type):
        return Layout(kind, bucket_field=bucket.name)
    if _is_int(btf, key_type_id) and "hist" in name.lower():
        return Layout(kind, nslots=max_entries)
    return None


def map_layout(m: Any) -> Optional[Layout]:
    """:func:`detect` for a :class:`pybpf.Map`."""
    spec = m.spec
    return detect(m.name, m.btf, spec.btf_key_type_id, spec.btf_value_type_id,
                  spec.max_entries)


# ------------------------------------------------------------------ reading

def _fold_cpus(value: Any) -> Any:
    """Per-CPU values (a list of one value per CPU) summed into one."""
    if not isinstance(value, list):
        return value
    if all(isinstance(v, int) for v in value):
        return sum(value)
    if value and all(isinstance(v, dict) for v in value):
        out: Dict[str, Any] = {}
        for v in value:
            for k, x in v.items():
                out[k] = _add(out[k], x) if k in out else x
        return out
    return value[0] if value else value


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return [_add(x, y) for x, y in zip(a, b)]
    return a


def _label(value: Any, name: str = "key") -> Dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {name: value}


def histograms(items: Iterable[Tuple[Any, Any]], layout: Layout, base: int = 0,
               step: int = 1) -> List[Histogram]:
    """Histograms from decoded (key, value) pairs laid out as ``layout``, sorted by
    label (one unlabeled histogram for rule 3)."""
    found: Dict[Label, Histogram] = {}

    def hist(label: Dict[str, Any]) -> Histogram:
        k = tuple(label.items())
        if k not in found:
            found[k] = Histogram([0] * layout.nslots, layout.kind, label, base, step)
        return found[k]

    for key, value in items:
        value = _fold_cpus(value)
        if layout.slots_field is not None:
            extra = {k: v for k, v in value.items()
                     if k not in (layout.slots_field, layout.sum_field)
                     and isinstance(v, (int, bytes))}
            h = hist({**_label(key), **extra})
            h.counts = [a + b for a, b in zip(h.counts, value[layout.slots_field])]
            if layout.sum_field is not None:
                h.sum = (h.sum or 0) + value[layout.sum_field]
            continue
        if layout.bucket_field is not None:
            rest = {k: v for k, v in key.items() if k != layout.bucket_field}
            slot = key[layout.bucket_field]
            h = hist(rest)
        else:
            slot, h = key, hist({})
        if slot < 0 or slot > 4096:
            continue                        # not a bucket index: ignore
        if slot >= len(h.counts):
            h.counts.extend([0] * (slot + 1 - len(h.counts)))
        h.counts[slot] += value
    if not found and layout.bucket_field is None and layout.slots_field is None:
        found[()] = Histogram([0] * layout.nslots, layout.kind, {}, base, step)
    return [found[k] for k in sorted(found, key=_sort_key)]


def _sort_key(label: Label) -> Tuple[Any, ...]:
    return tuple((k, str(v)) if not isinstance(v, int) else (k, "", v) for k, v in label)


def _read(m: Any, kind: Optional[str], base: int, step: int) -> List[Histogram]:
    layout = map_layout(m)
    if layout is None:
        raise ValueError(f"map {m.name!r} is not a histogram (see pybpf.metrics.hist: a value "
                         "struct with slots[N], a key struct with a slot/bucket member, "
                         "or an integer map named *hist*)")
    if kind is not None:
        layout = Layout(kind, layout.slots_field, layout.bucket_field, layout.nslots,
                        layout.sum_field)
    return histograms(m.items(), layout, base, step)


def log2(m: Any) -> List[Histogram]:
    """The log2 histograms of a loaded map (one per key for keyed histograms)."""
    return _read(m, "log2", 0, 1)


def linear(m: Any, base: int = 0, step: int = 1) -> List[Histogram]:
    """The linear histograms of a loaded map, slot ``i`` at ``base + i*step``."""
    return _read(m, "linear", base, step)


def read(m: Any) -> List[Histogram]:
    """The histograms of a loaded map, log2 or linear as its name says."""
    return _read(m, None, 0, 1)


# ------------------------------------------------------------------ counters

def is_counter_type(btf: Optional[BTF], type_id: int) -> bool:
    """An integer, an array of integers, or a struct of those with at most one char
    array (a comm naming the row): a map value worth printing as counters."""
    if btf is None or not type_id:
        return False
    t = _strip(btf, type_id)
    if isinstance(t, T.Struct) and not isinstance(t, T.Union):
        strings = sum(1 for m in t.members if _is_chars(btf, m.type))
        return strings <= 1 and len(t.members) > strings and all(
            _is_chars(btf, m.type) or _is_numeric(btf, m.type) for m in t.members)
    return _is_numeric(btf, type_id)


def value_fields(btf: Optional[BTF], type_id: int) -> List[str]:
    """The numeric members (integers, integer arrays) of a struct value type, in
    order; ``[""]`` for a value that is itself numeric."""
    t = _strip(btf, type_id) if btf is not None and type_id else None
    if isinstance(t, T.Struct) and not isinstance(t, T.Union):
        assert btf is not None
        return [m.name for m in t.members if _is_numeric(btf, m.type)]
    return [""]


def _is_chars(btf: BTF, type_id: int) -> bool:
    t = _strip(btf, type_id)
    if not isinstance(t, T.Array):
        return False
    elem = _strip(btf, t.type)
    return isinstance(elem, T.Int) and (elem.is_char or "char" in elem.name)


def _is_numeric(btf: BTF, type_id: int) -> bool:
    t = _strip(btf, type_id)
    if isinstance(t, T.Array):
        return not _is_chars(btf, type_id) and _is_numeric(btf, t.type)
    return isinstance(t, (T.Int, T.Enum))


def _nonzero(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_nonzero(v) for v in value.values())
    if isinstance(value, list):
        return any(_nonzero(v) for v in value)
    return bool(value)


def counters(items: Iterable[Tuple[Any, Any]]) -> List[Tuple[Any, Any]]:
    """(key, value) pairs with per-CPU values summed, zero values dropped, by key."""
    rows = [(k, _fold_cpus(v)) for k, v in items]
    rows = [(k, v) for k, v in rows if _nonzero(v)]
    rows.sort(key=lambda kv: _sort_key(tuple(_label(kv[0]).items())))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value).split(b"\0", 1)[0].decode(errors="replace")
        return raw.encode("unicode_escape").decode()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


def render_counters(rows: Sequence[Tuple[Any, Any]]) -> str:
    """A table: one column per key field and per value field (``key`` / ``value``
    for plain integers), widths fitted to the data."""
    if not rows:
        return ""
    table = [{**_label(k, "key"), **_label(v, "value")} for k, v in rows]
    columns: List[str] = []
    for row in table:
        columns.extend(c for c in row if c not in columns)
    cells = [[_text(row.get(c, "")) for c in columns] for row in table]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), int) for row in table) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric)).rstrip()
    return "\n".join([line([c.upper() for c in columns])] + [line(r) for r in cells]) + "\n"
