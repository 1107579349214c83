"""RingBuffer: the consumer side of ``BPF_MAP_TYPE_RINGBUF`` maps, in pure Python.

The ring (kernel/bpf/ringbuf.c) is mapped in two pieces (:class:`~pybpf.events.ringmem.RingMapping`):
the consumer page (``u64 consumer_pos``, ours to write) and, read-only, the
producer page (``u64 producer_pos``) followed by the data pages *mapped twice*,
so a record that wraps the end of the ring is contiguous.  Every record is an
8-byte header — ``u32 len`` whose bit 31 is BPF_RINGBUF_BUSY_BIT (reserved,
not yet committed) and bit 30 BPF_RINGBUF_DISCARD_BIT, then ``u32 pg_off`` —
followed by ``len`` payload bytes, the whole rounded up to 8 bytes.  Positions
are free-running byte counters; ``pos & (size - 1)`` is the offset in the data.

One pass over a ring
--------------------
1. read ``producer_pos`` (acquire load) and our own ``consumer_pos``;
2. :func:`scan` walks the headers from one to the other — *the* per-record hot
   path, shared by every delivery mode — and returns *runs* ``(payload offset,
   count, stride, len)``: a run is a stretch of committed records of equal
   length.  The walk needs no masking (a pass covers at most one ring size from
   an offset below the size, and the data is mapped twice) and detects runs of
   equal-length records without a Python step per record: in CPython one
   strided view of their length words, compared in C with the expected
   pattern (binary search for the first mismatch); on PyPy a loop over a cffi
   view of the words (``RingMapping.words``), which the JIT compiles to plain
   loads.  A BUSY record stops the walk; a DISCARDed one is skipped but
   consumed;
3. a read fence (weakly ordered CPUs only): the length words before the
   payloads they cover;
4. the records are handed out as memoryview slices of the mapping (no copy);
5. ``consumer_pos`` is published once, after the records are handed out
   (release store) — also when a callback stops the pass or raises;
6. ``producer_pos`` is read again (acquire), after a store-load fence where
   the CPU needs one (x86-64): if it moved, another pass.  This closes the
   lost-wakeup race: the kernel wakes the consumer only when, at commit, it
   sees ``consumer_pos`` equal to the committed record's position, so a
   consumer whose store it did not see yet must see its record.

So each pass costs one fence: the ``mfence`` of step 6 on x86-64, the read
fence of step 3 on arm64 and riscv64, never one per record
(:mod:`pybpf.events.barriers` has the table).

Delivery modes (per ring, chosen in :meth:`RingBuffer.add`):

* ``callback(data: memoryview)`` per record; a truthy return stops the pass
  (``poll``/``consume`` then return a negative number, never a count: the value
  itself when it is a negative int, as libbpf returns the callback's error,
  else -1; ``RingBuffer.stopped`` holds the value).  A run is handed out by
  a plain ``for`` loop over its offsets, which both CPython (3.11+ inlines the
  call) and PyPy (JIT) run faster than a ``map`` chain built in C: the work per
  record is one slice of the mapping and the call.
* ``batch=True``: ``callback(RecordBatch)`` once per pass with every record
  found: no Python call per record inside the library.
* ``columns=`` a struct format, a BTF :class:`~pybpf.btf.codec.Codec` of a
  struct or a :class:`ColumnLayout`: the bulk path for fixed-size records.
  ``callback(Columns)`` once per run, each field a strided typed memoryview
  of the mapping (``sum(cols.seq)``, ``max(cols.ts)``, ``cols.pid.tolist()``
  run in C; char arrays come as lists of bytes): no Python code per record
  anywhere.  Records of another size go to ``odd(memoryview)``.
* ``struct=FORMAT``: fixed-size records as tuples: ``callback(rows)`` with an
  iterator decoded by ``struct.iter_unpack`` straight over each run of the
  mapping, using the format ``8x`` + FORMAT + tail padding (header and padding
  skipped by the format itself).  Records of another size go to ``odd``.

A memoryview, batch, columns or rows iterator handed out is valid only during
the callback: after it, the kernel may overwrite the bytes (``Columns.copy()``
keeps them).
"""
from __future__ import annotations

import array as _array
import re
import struct as _struct
import sys
from contextlib import closing
from functools import lru_cache
from itertools import chain, groupby, repeat
from operator import itemgetter, length_hint, methodcaller
import typing
from typing import (Any, AsyncIterator, Callable, Dict, Generator, Iterator, List, Optional,
                    Sequence, Tuple, Union)

from .. import uapi
from ..errors import BPFError
from .ringmem import (BUSY, FLAGS, HDR_SIZE, LEN_MASK, PYPY, Epoll, MapRef, RingMapping,
                      Words, record_size, stop_code)


#: (payload offset in the data area, record count, stride, payload length)
Run = Tuple[int, int, int, int]


# ------------------------------------------------------------------ the walk


#: length words compared per slice by :func:`_uniform_view`: its pattern (16 KiB)
#: stays in the L1 cache while the ring streams past, and a pass of a million
#: records allocates no million-word pattern
UNIFORM_CHUNK = 4096


@lru_cache(maxsize=32)
def _length_pattern(length: int) -> memoryview:
    """UNIFORM_CHUNK copies of the u32 ``length``, as a view of native words."""
    return memoryview(_struct.pack("=I", length) * UNIFORM_CHUNK).cast("I")


def _uniform_view(hdr: Words, off: int, stride: int, length: int, count: int) -> int:
    """How many of the ``count`` records from ``off`` have the committed length ``length``.

    The record at ``off`` is known to match; the length words at ``off + i * stride``
    are strided views, a chunk of UNIFORM_CHUNK at a time, compared in C with the
    expected pattern (memoryview equality compares item by item: no gathered copy
    of the words).  Only the prefix up to the first mismatch is trusted: past it
    the words are not headers.
    """
    words = typing.cast(memoryview, hdr)
    step = stride >> 2
    pattern = _length_pattern(length)
    first = off >> 2
    done = 0
    while done < count:
        n = min(count - done, UNIFORM_CHUNK)
        want = pattern if n == UNIFORM_CHUNK else pattern[:n]
        if words[first:first + n * step:step] != want:
            return done + _first_mismatch(words, first, step, want)
        done += n
        first += n * step
    return count


def _first_mismatch(words: memoryview, first: int, step: int, want: memoryview) -> int:
    """Index of the first of the strided words from ``first`` that differs from
    ``want`` (some does), by bisection: each probe one strided comparison in C."""
    lo, hi = 0, len(want)  # words before lo match; the first mismatch lies in [lo, hi)
    while hi - lo > 1:  # (words sliced afresh: PyPy 7.3 misreads a slice of a strided view)
        mid = (lo + hi) >> 1
        if words[first + lo * step:first + mid * step:step] == want[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _uniform_loop(hdr: Words, off: int, stride: int, length: int, count: int) -> int:
    """:func:`_uniform_view` as a loop over the words: what PyPy's JIT turns into plain
    loads (its memoryview comparisons cost ~150 ns an item, this ~3 ns)."""
    step = stride >> 2
    first = off >> 2
    for k in range(1, count):
        if hdr[first + k * step] != length:
            return k
    return count


_uniform = _uniform_loop if PYPY else _uniform_view


def scan(hdr: Words, start: int, end: int, limit: int = sys.maxsize) -> Tuple[List[Run], int]:
    """Walk the record headers from data offset ``start`` to ``end``.

    ``hdr`` is the data area as u32 words (``RingMapping.words``).  Returns the
    runs of committed, non-discarded records (at most ``limit`` records) and the
    offset where the walk stopped: ``end``, a BUSY record, or the record after
    the limit.
    """
    runs: List[Run] = []
    append = runs.append
    off = start
    while off < end and limit > 0:
        length = hdr[off >> 2]
        if length & FLAGS:
            if length & BUSY:
                break
            nxt = off + (((length & LEN_MASK) + 15) & ~7)  # discarded: skipped, but consumed
            if nxt > end:
                break
            off = nxt
            continue
        stride = (length + 15) & ~7
        count = (end - off) // stride
        if count == 0:          # longer than what was produced: not a record
            break
        if count > 1 and hdr[(off + stride) >> 2] == length:
            count = _uniform(hdr, off, stride, length, min(count, limit))
        else:
            count = 1
        append((off + HDR_SIZE, count, stride, length))
        off += count * stride
        limit -= count
    return runs, off


def _run_views(data: memoryview, run: Run, starts: Optional[Iterator[int]] = None
               ) -> Iterator[memoryview]:
    """One memoryview per record of a run, made in C (``starts`` may be a shared iterator)."""
    off, count, stride, length = run
    stop = off + count * stride
    return map(data.__getitem__, map(slice, range(off, stop, stride) if starts is None else starts,
                                     range(off + length, stop + length, stride)))


def _run_end(run: Run) -> int:
    """Data offset just past a run."""
    return run[0] - HDR_SIZE + run[1] * run[2]


# ------------------------------------------------------------------ struct formats

_TOKEN = re.compile(r"\s*(\d*)([xcbB?hHiIlLqQnNefdspP])")


@lru_cache(maxsize=None)
def _item_struct(code: str) -> _struct.Struct:
    """One native item of a column (as ``memoryview.cast(code)`` reads it)."""
    return _struct.Struct(code)


@lru_cache(maxsize=256)
def record_struct(fmt: str, stride: int) -> _struct.Struct:
    """A struct for whole records of ``stride`` bytes whose payload starts with ``fmt``:
    ``8x`` (the header) + fmt + padding to the stride, for ``iter_unpack`` over a run."""
    order = fmt[:1] if fmt[:1] in "@=<>!" else ""
    try:
        pad = stride - HDR_SIZE - _struct.calcsize(fmt)
        whole = _struct.Struct(f"{order}8x{fmt[len(order):]}{pad}x")
    except _struct.error as e:
        raise BPFError(f"bad struct format {fmt!r}: {e}") from None
    if whole.size != stride:
        raise BPFError(f"struct format {fmt!r}: alignment makes a record "
                       f"{whole.size} bytes, expected {stride}")
    return whole


def row_length(fmt: str) -> int:
    """The payload length of records that are exactly ``fmt`` (checked: a bad
    format or one whose alignment does not fit a record raises BPFError)."""
    try:
        length = _struct.calcsize(fmt)
    except _struct.error as e:
        raise BPFError(f"bad struct format {fmt!r}: {e}") from None
    record_struct(fmt, record_size(length))
    return length


_NATIVE = {("u", 1): "B", ("s", 1): "b", ("u", 2): "H", ("s", 2): "h", ("u", 4): "I",
           ("s", 4): "i", ("u", 8): "Q", ("s", 8): "q", ("f", 4): "f", ("f", 8): "d"}

#: (name, offset in the payload, memoryview cast code or "s" for byte strings, size)
Field = Tuple[str, int, str, int]


class ColumnLayout:
    """How fixed-size records split into columns: from a struct format or a BTF codec.

    ``fields`` are the named fields; numeric ones become strided typed views of
    the mapping, ``Ns`` byte strings lists of bytes (cut at the first NUL when
    they are C strings of a BTF type).
    """

    __slots__ = ("length", "fields", "by_name", "cut", "what")

    def __init__(self, spec: Union[str, Any], names: Optional[Sequence[str]] = None):
        fmt: Optional[str]
        if isinstance(spec, str):
            fmt, self.cut, self.what = spec, False, repr(spec)
        else:  # a pybpf.btf.codec.Codec of a struct
            fmt, self.what = getattr(spec, "struct_format", None), getattr(spec, "name", "?")
            self.cut = True
            if names is None:
                names = getattr(spec, "field_names", None)
            if fmt is None or names is None:
                raise BPFError(f"columns: {self.what} has no flat layout (a struct whose "
                               "members are scalars or char arrays, no bitfields or unions)")
        self.length = row_length(fmt)
        self.fields = _fields(fmt, names)
        self.by_name = {field[0]: field for field in self.fields}


def _fields(fmt: str, names: Optional[Sequence[str]]) -> Tuple[Field, ...]:
    order = fmt[:1] if fmt[:1] in "@=<>!" else ""
    if order in (">", "!") and sys.byteorder == "little" or order == "<" and sys.byteorder == "big":
        raise BPFError(f"columns need native byte order, not {fmt!r}")
    fields, done, pos = [], order, len(order)
    while pos < len(fmt):
        m = _TOKEN.match(fmt, pos)
        if m is None:
            if not fmt[pos:].strip():
                break                   # trailing white space, as struct allows
            raise BPFError(f"bad struct format {fmt!r} at {pos}")
        pos = m.end()
        count, code = int(m.group(1) or 1), m.group(2)
        if code == "x":
            done += m.group(0).strip()
            continue
        if code in "p?cnNeP":
            raise BPFError(f"columns: field type {code!r} of {fmt!r} is not numeric")
        off = _struct.calcsize(f"{done}0{code}")  # "0X" aligns as X would be
        if code == "s":
            fields.append((off, "s", count))
            done += m.group(0).strip()
            continue
        kind = "f" if code in "fd" else ("s" if code.islower() else "u")
        size = _struct.calcsize(order + code)
        for i in range(count):
            fields.append((off + i * size, _NATIVE[kind, size], size))
            done += code
    if names is None:
        names = [f"f{i}" for i in range(len(fields))]
    if len(names) != len(fields):
        raise BPFError(f"columns: {len(names)} names for the {len(fields)} fields of {fmt!r}")
    for (off, code, size), name in zip(fields, names):
        if code != "s" and off % size:
            raise BPFError(f"columns: field {name!r} at offset {off} of {fmt!r} is not "
                           "naturally aligned")
    return tuple((name, off, code, size) for name, (off, code, size) in zip(names, fields))


@lru_cache(maxsize=64)
def _format_layout(fmt: str) -> ColumnLayout:
    return ColumnLayout(fmt)


def as_layout(spec: Any, names: Optional[Sequence[str]] = None) -> ColumnLayout:
    """A ColumnLayout from a layout, a struct format (cached when unnamed) or a BTF codec."""
    if isinstance(spec, ColumnLayout):
        return spec
    if isinstance(spec, str) and names is None:
        return _format_layout(spec)
    return ColumnLayout(spec, names)


class ListColumn(List[Any]):
    """A numeric column on PyPy: the values as a list, with the ``format``,
    ``itemsize``, ``tolist()`` and ``tobytes()`` of the memoryview CPython gives.

    PyPy iterates a strided memoryview at ~120 ns an item, where its JIT builds
    this list from ``unpack_from`` at ~10, so ``sum()`` and ``max()`` stay fast."""

    __slots__ = ("format", "itemsize")

    def __init__(self, values: List[Any], code: str):
        super().__init__(values)
        self.format, self.itemsize = code, _struct.calcsize(code)

    def tolist(self) -> List[Any]:
        """The values as a plain list."""
        return list(self)

    def tobytes(self) -> bytes:
        """The values packed in native order, as ``memoryview.tobytes()`` gives them."""
        return _struct.pack(f"{len(self)}{self.format}", *self)


Column = Union[memoryview, ListColumn, List[bytes]]


class Columns:
    """The records of one run, column by column, with no Python code per record.

    ``cols[i]``, ``cols["name"]`` or ``cols.name`` is a numeric field as a strided
    typed memoryview of the mapping (``sum()``, ``max()``, ``tolist()`` run in C;
    on PyPy a :class:`ListColumn`, see there) or a byte-string field as a list of
    bytes; iterating gives the columns in order (``ts, seq = cols``).
    ``len(cols)`` is the record count.  The views are valid only during the
    callback: ``copy()`` gives ``array.array`` columns that outlive it.
    """

    __slots__ = ("_data", "_cast", "_run", "_layout")

    def __init__(self, data: memoryview, cast: Callable[[str], memoryview], run: Run,
                 layout: ColumnLayout):
        self._data, self._cast, self._run, self._layout = data, cast, run, layout

    def __len__(self) -> int:
        return self._run[1]

    @property
    def names(self) -> List[str]:
        """The field names, in layout order."""
        return [f[0] for f in self._layout.fields]

    def _column(self, field: Field) -> Column:
        _, foff, code, size = field
        off, count, stride, _ = self._run
        first = off + foff
        if PYPY and code != "s":
            read, data = _item_struct(code).unpack_from, self._data
            return ListColumn([read(data, i)[0] for i in range(first, first + count * stride,
                                                                  stride)], code)
        if code == "s":
            data = self._data
            values = list(map(bytes, map(data.__getitem__, map(
                slice, range(first, first + count * stride, stride),
                range(first + size, first + size + count * stride, stride)))))
            if self._layout.cut:
                values = list(map(itemgetter(0), map(methodcaller("partition", b"\0"), values)))
            return values
        step = stride // size
        start = first // size
        return self._cast(code)[start:start + count * step:step]

    def __getitem__(self, key: Union[int, str]) -> Column:
        layout = self._layout
        field = layout.fields[key] if isinstance(key, int) else layout.by_name.get(key)
        if field is not None:
            return self._column(field)
        raise KeyError(f"no field {key!r} in {self._layout.what} (fields: {', '.join(self.names)})")

    def __getattr__(self, name: str) -> Column:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(e.args[0]) from None

    def __iter__(self) -> Iterator[Column]:
        return map(self._column, self._layout.fields)

    def copy(self) -> Dict[str, Any]:
        """The columns by name, copied out of the ring (``array.array`` or lists of bytes)."""
        out: Dict[str, Any] = {}
        for field in self._layout.fields:
            col = self._column(field)
            if isinstance(col, ListColumn):
                out[field[0]] = _array.array(col.format, col)
            else:
                out[field[0]] = col if isinstance(col, list) else _array.array(col.format,
                                                                               col.tobytes())
        return out


#: iterators handed out over records, with the record count of each, in order:
#: how far a callback got is ``taken(cursor)``
Cursor = List[Tuple[int, Iterator[Any]]]


def taken(cursor: Cursor) -> int:
    """Records pulled from a cursor's iterators (they are pulled in order)."""
    return sum(count - length_hint(it) for count, it in cursor)


def _offset_after(runs: Sequence[Run], k: int, start: int) -> int:
    """Data offset just past the first ``k`` records of ``runs`` (``start`` for none)."""
    pos = start
    for off, count, stride, _ in runs:
        if k <= 0:
            break
        step = min(k, count)
        pos = off - HDR_SIZE + step * stride
        k -= step
    return pos


def _rows(data: memoryview, runs: Sequence[Run], fmt: str,
          cursor: Optional[Cursor] = None) -> Iterator[Tuple[Any, ...]]:
    """The first ``calcsize(fmt)`` bytes of every record decoded as tuples, with one
    struct per stride (header and padding in the format; tracked in ``cursor``):
    ``iter_unpack`` over each run in CPython, ``unpack_from`` per record on PyPy,
    whose JIT compiles that loop but not its ``iter_unpack`` of a memoryview."""
    its: List[Tuple[int, Iterator[Any]]]
    if PYPY:
        starts = [(count, iter(range(off - HDR_SIZE, off - HDR_SIZE + count * stride, stride)))
                  for off, count, stride, _ in runs]
        its = [(count, map(record_struct(fmt, run[2]).unpack_from, repeat(data), it))
               for (count, it), run in zip(starts, runs)]
    else:
        starts = its = [(count, record_struct(fmt, stride).iter_unpack(
                            data[off - HDR_SIZE:off - HDR_SIZE + count * stride]))
                        for off, count, stride, _ in runs]
    if cursor is not None:
        cursor.extend(starts)
    if len(its) == 1:           # the usual case: no chain between the user and C
        return its[0][1]
    return chain.from_iterable(it for _, it in its)


class RecordBatch:
    """Every record one pass found in one ring, handed out at once, zero-copy.

    ``buffer`` is the ring's data area (both copies), ``runs`` the records as
    :data:`Run` tuples.  Iterating gives one memoryview per record; ``offsets()``
    / ``sizes()`` locate records in ``buffer``; ``unpack``, ``rows`` and
    ``columns`` decode without a Python loop per record.  Valid only during the
    callback.
    """

    __slots__ = ("buffer", "runs", "_len", "_cast", "_cursors")

    def __init__(self, buffer: memoryview, runs: List[Run],
                 cast: Optional[Callable[[str], memoryview]] = None):
        self.buffer = buffer
        self.runs = runs
        self._cast = cast or typing.cast("Callable[[str], memoryview]", buffer.cast)
        self._len = sum(run[1] for run in runs)
        self._cursors: List[Cursor] = []

    def __len__(self) -> int:
        return self._len

    def taken(self) -> int:
        """Records handed out one by one so far (by iteration, offsets(), unpack()
        or rows()): the furthest any of these iterators got."""
        return max(map(taken, self._cursors), default=0)

    def _starts(self) -> List[Iterator[int]]:
        cursor: Cursor = [(k, iter(range(o, o + k * s, s))) for o, k, s, _ in self.runs]
        self._cursors.append(cursor)
        return [it for _, it in cursor]

    def __iter__(self) -> Iterator[memoryview]:
        data = self.buffer
        return chain.from_iterable(_run_views(data, run, starts)
                                   for run, starts in zip(self.runs, self._starts()))

    def offsets(self) -> Iterator[int]:
        starts = self._starts()
        return starts[0] if len(starts) == 1 else chain.from_iterable(starts)

    def sizes(self) -> Iterator[int]:
        return chain.from_iterable(repeat(n, k) for _, k, _, n in self.runs)

    def unpack(self, fmt: Union[str, _struct.Struct]) -> Iterator[Tuple[Any, ...]]:
        """Decode the first ``calcsize(fmt)`` bytes of every record (any record size)."""
        st = fmt if isinstance(fmt, _struct.Struct) else _struct.Struct(fmt)
        short = [n for _, _, _, n in self.runs if n < st.size]
        if short:
            raise BPFError(f"record of {short[0]} bytes is shorter than {st.format!r}")
        cursor: Cursor = []
        self._cursors.append(cursor)
        return _rows(self.buffer, self.runs, st.format, cursor)

    def rows(self, fmt: str) -> Iterator[Tuple[Any, ...]]:
        """Fixed-size records, decoded by ``iter_unpack`` over each run."""
        length = row_length(fmt)
        odd = [n for _, _, _, n in self.runs if n != length]
        if odd:
            raise BPFError(f"record of {odd[0]} bytes does not match {fmt!r} ({length} bytes)")
        cursor: Cursor = []
        self._cursors.append(cursor)
        return _rows(self.buffer, self.runs, fmt, cursor)

    def columns(self, spec: Union[str, Any], names: Optional[Sequence[str]] = None
                ) -> List[Columns]:
        """Per run, the records as :class:`Columns` (``spec``: a struct format or the
        :class:`~pybpf.btf.codec.Codec` of a struct; ``names`` name a format's fields).

        Every numeric field must be naturally aligned within the record (the
        payload starts 8 bytes into a record whose size is a multiple of 8) and
        in native byte order.
        """
        layout = as_layout(spec, names)
        out = []
        for run in self.runs:
            if run[3] != layout.length:
                raise BPFError(f"record of {run[3]} bytes does not match {layout.what} "
                               f"({layout.length} bytes)")
            out.append(Columns(self.buffer, self._cast, run, layout))
        return out


# ------------------------------------------------------------------ delivery

Deliver = Callable[["Ring", List[Run], int], Tuple[int, Any]]


def _deliver_each(ring: "Ring", runs: List[Run], end: int,
                  callback: Optional[Callable[..., Any]] = None) -> Tuple[int, Any]:
    """callback(memoryview) per record; ``ring.done`` follows what was handed out.

    A ValueError from slicing means the callback closed the RingBuffer (the
    views are released): delivery stops there."""
    cb = typing.cast("Callable[..., Any]", callback or ring.callback)  # this mode has one
    data = ring.mapping.data
    n = 0
    try:
        for run in runs:
            off, count, stride, length = run
            if count == 1:
                view = data[off:off + length]
                ring.done = off - HDR_SIZE + stride
                n += 1
                ret = cb(view)
                if ret:
                    return n, ret
                continue
            ring.run = run
            ring.starts = starts = iter(range(off, off + count * stride, stride))
            ret = None
            try:
                for pos in starts:      # a Python loop: the interpreter inlines the call
                    ret = cb(data[pos:pos + length])
                    if ret:
                        break
            except ValueError:
                if not ring.mapping.closed:
                    raise
                return n + count - length_hint(starts) - 1, None
            finally:
                ring.starts = None
                taken = count - length_hint(starts)
                ring.done = off - HDR_SIZE + taken * stride
            n += taken
            if ret:
                return n, ret
    except ValueError:
        if not ring.mapping.closed:
            raise
        return n, None
    ring.done = end
    return n, None


def _call(ring: "Ring", obj: Any, runs: Sequence[Run], progress: Callable[[], int]) -> Any:
    """ring.callback(obj) for the records of ``runs``.  If it raises, only the records
    it pulled one by one (``progress()``, the one it raised on included) are consumed:
    the others stay in the ring for the next call."""
    start = ring.done
    ring.done = _run_end(runs[-1])   # also what close() from the callback publishes
    try:
        return typing.cast("Callable[..., Any]", ring.callback)(obj)
    except BaseException:
        if ring.pass_ is not None:
            ring.done = _offset_after(runs, progress(), start)
        raise


def _deliver_batch(ring: "Ring", runs: List[Run], end: int) -> Tuple[int, Any]:
    if not runs:                # a pass of discarded records only: no batch to hand out
        ring.done = end
        return 0, None
    batch = RecordBatch(ring.mapping.data, runs, ring.mapping.cast)
    ret = _call(ring, batch, runs, batch.taken)
    ring.done = end
    return len(batch), ret or None


#: what a fixed-size mode hands out for a stretch of matching runs:
#: (object for the callback, its runs, how many records the callback pulled)
Pieces = Callable[[RingMapping, List[Run]], Iterator[Tuple[Any, List[Run], Callable[[], int]]]]


def _none_pulled() -> int:
    return 0


def _row_pieces(fmt: str) -> Pieces:
    def pieces(m: RingMapping, stretch: List[Run]
               ) -> Iterator[Tuple[Any, List[Run], Callable[[], int]]]:
        cursor: Cursor = []
        yield _rows(m.data, stretch, fmt, cursor), stretch, lambda: taken(cursor)
    return pieces


def _column_pieces(layout: ColumnLayout) -> Pieces:
    def pieces(m: RingMapping, stretch: List[Run]
               ) -> Iterator[Tuple[Any, List[Run], Callable[[], int]]]:
        for run in stretch:     # a run at once: if the callback raises, it stays
            yield Columns(m.data, m.cast, run, layout), [run], _none_pulled
    return pieces


def _deliver_fixed(ring: "Ring", runs: List[Run], end: int) -> Tuple[int, Any]:
    """callback(rows or columns) per stretch of records of the fixed size; others to ``odd``."""
    length, what, pieces = typing.cast("Tuple[int, str, Pieces]", ring.fixed)
    n, ret = 0, None
    for matching, group in groupby(runs, key=lambda run: run[3] == length):
        stretch = list(group)
        if matching:
            for obj, piece, progress in pieces(ring.mapping, stretch):
                ret = _call(ring, obj, piece, progress)
                n += sum(r[1] for r in piece)
                if ret or ring.mapping.closed:
                    return n, ret
        elif ring.odd is not None:
            k, ret = _deliver_each(ring, stretch, _run_end(stretch[-1]), ring.odd)
            n += k
        else:
            off, _, stride, size = stretch[0]
            ring.done = off - HDR_SIZE + stride
            raise BPFError(f"ring {ring.name!r}: record of {size} bytes does not match "
                           f"{what} ({length} bytes) and no odd= callback")
        if ret or ring.mapping.closed:
            return n, ret
    ring.done = end
    return n, None


def _fixed_mode(struct: Optional[str], columns: Any) -> Optional[Tuple[int, str, Pieces]]:
    """(payload length, description, pieces) of the ``struct=`` or ``columns=`` mode."""
    if struct:
        length = row_length(struct)
        return length, f"struct {struct!r}", _row_pieces(struct)
    if columns is None:
        return None
    layout = as_layout(columns)
    return layout.length, f"columns {layout.what}", _column_pieces(layout)


class Ring:
    """One map of a :class:`RingBuffer`: its mapping, callback and positions."""

    def __init__(self, index: int, ref: MapRef, callback: Optional[Callable[..., Any]],
                 deliver: Deliver, fixed: Optional[Tuple[int, str, Pieces]],
                 odd: Optional[Callable[..., Any]]) -> None:
        self.index = index
        self.ref = ref
        self.mapping = RingMapping(ref)
        self.callback = callback
        self.deliver = deliver
        self.fixed = fixed
        self.odd = odd
        # the pass in progress: (consumer_pos, data offset) at its start, how far
        # records were handed out (done), and the run being handed out in C
        self.pass_: Optional[Tuple[int, int]] = None
        self.done = 0
        self.run: Optional[Run] = None
        self.starts: Optional[Iterator[int]] = None
        self.epoch = 0      # bumped when a suspended iterate() pass is settled

    name = property(lambda self: self.ref.name)
    size = property(lambda self: self.mapping.size, doc="data bytes (max_entries)")
    consumer_pos = property(lambda self: self.mapping.consumer[0])
    producer_pos = property(lambda self: self.mapping.producer[0])

    @property
    def avail(self) -> int:
        """Bytes produced and not yet consumed (committed or not)."""
        m = self.mapping
        return m.load_producer() - m.consumer[0]

    def publish(self) -> None:
        """Store consumer_pos for every record handed out in the current pass."""
        cons, start = typing.cast("Tuple[int, int]", self.pass_)   # only called inside a pass
        done = self.done
        if self.starts is not None:          # inside a run handed out in C
            off, count, stride, _ = typing.cast(Run, self.run)
            done = off - HDR_SIZE + (count - length_hint(self.starts)) * stride
        self.mapping.store_consumer(cons + (done - start))  # release: after the record reads

    def settle(self) -> None:
        """Publish the records a suspended :meth:`iterate` handed out, and end it."""
        if self.pass_ is not None:
            self.publish()
            self.pass_ = None
            self.epoch += 1

    def close(self) -> None:
        """Unmap; a pass in progress (close() from a callback) is published first."""
        if self.pass_ is not None and not self.mapping.closed:
            self.publish()
            self.pass_ = None
        self.mapping.close()

    def drain(self, limit: int) -> Tuple[int, Any]:
        """Passes over the ring until it is empty, a callback stops, or ``limit`` records."""
        m = self.mapping
        load_prod, cons_v, hdr, mask, size = m.load_producer, m.consumer, m.words, m.mask, m.size
        read_fence, recheck_fence = m.order.read_fence, m.order.recheck_fence
        total = 0
        self.settle()
        prod = load_prod()  # acquire: producer_pos before the headers it covers
        budget = size  # bytes: bounds one call under a producer that never stops
        while True:
            cons = cons_v[0]  # our own position: a plain load
            if prod == cons or total >= limit:
                return total, None
            start = cons & mask
            end = start + min(prod - cons, size)
            runs, stop = scan(hdr, start, end, limit - total)
            if stop == start:
                return total, None          # a BUSY record at the head
            if read_fence is not None:
                read_fence()  # the committed length words before the payloads
            self.pass_, self.done = (cons, start), start
            try:
                n, ret = self.deliver(self, runs, stop)
            finally:
                if self.pass_ is not None:  # else a callback closed the ring, publishing
                    self.publish()
                    self.pass_ = None
            total += n
            if ret or m.closed:
                return total, ret
            budget -= stop - start
            if recheck_fence is not None:
                recheck_fence()  # our consumer_pos store before the re-read (lost wakeup)
            new_prod = load_prod()
            if new_prod == prod or budget <= 0:
                return total, None
            prod = new_prod

    def iterate(self) -> Generator[memoryview, None, None]:
        """Records one by one (each valid until the next).

        consumer_pos is published when the pass ends, or by the next consuming call
        on this ring if the generator was left suspended (:meth:`settle`): then this
        generator ends, and what it handed out counts as consumed, once."""
        self.settle()
        epoch = self.epoch
        m = self.mapping
        cons = m.consumer[0]
        prod = m.load_producer()
        if prod == cons:
            return
        start = cons & m.mask
        runs, stop = scan(m.words, start, start + min(prod - cons, m.size))
        if m.order.read_fence is not None:
            m.order.read_fence()
        self.pass_, self.done = (cons, start), start
        data = m.data
        try:
            for off, count, stride, length in runs:
                for pos in range(off, off + count * stride, stride):
                    self.done = pos - HDR_SIZE + stride
                    yield data[pos:pos + length]
                    if self.epoch != epoch:
                        return              # settled by another call meanwhile
            self.done = stop
        finally:
            if self.pass_ is not None and self.epoch == epoch:
                self.publish()
                self.pass_ = None
                if m.order.recheck_fence is not None:
                    m.order.recheck_fence()  # before the caller re-reads producer_pos


# ------------------------------------------------------------------ the consumer


class RingBuffer:
    """Consumer of one or more BPF ring buffer maps, waited on with one epoll.

    A ring has one consumer: use a RingBuffer from one thread at a time.

    ``RingBuffer(map, callback)`` then ``add(map2, callback2)``; ``map`` is a
    :class:`~pybpf.maps.Map` or anything with an ``.fd`` of a
    ``BPF_MAP_TYPE_RINGBUF`` map (a plain fd works too).  See the module
    docstring for the delivery modes.
    """

    def __init__(self, map: Any = None, callback: Optional[Callable[..., Any]] = None, *,
                 batch: bool = False, struct: Optional[str] = None, columns: Any = None,
                 odd: Optional[Callable[..., Any]] = None) -> None:
        self._rings: List[Ring] = []
        #: the value a callback stopped the last consume()/poll() with (None: not stopped)
        self.stopped: Any = None
        self.stopped_after = 0
        self._epoll = Epoll()
        if map is not None:
            try:
                self.add(map, callback, batch=batch, struct=struct, columns=columns, odd=odd)
            except BaseException:
                self.close()
                raise

    def add(self, map: Any, callback: Optional[Callable[..., Any]] = None, *,
            batch: bool = False, struct: Optional[str] = None, columns: Any = None,
            odd: Optional[Callable[..., Any]] = None) -> Ring:
        """Add a ring; returns its :class:`Ring` (positions, size, avail).

        Modes: a callback per record (default), ``batch=True``, ``struct=FORMAT``
        (rows) or ``columns=`` a struct format, a BTF :class:`~pybpf.btf.codec.Codec`
        or a :class:`ColumnLayout` (the bulk path: :class:`Columns` per run).
        """
        if self._epoll.closed:
            raise BPFError("RingBuffer is closed")
        if sum((bool(batch), bool(struct), columns is not None)) > 1:
            raise BPFError("choose one of batch=True, struct=FORMAT and columns=")
        fixed = _fixed_mode(struct, columns)
        if odd is not None and fixed is None:
            raise BPFError("odd= only applies with struct= or columns=")
        deliver = _deliver_batch if batch else _deliver_fixed if fixed else _deliver_each
        ref = MapRef(map).expect(uapi.BPF_MAP_TYPE_RINGBUF)
        if any(r.ref.id == ref.id for r in self._rings):
            raise BPFError(f"map {ref.name!r} (id {ref.id}) is already in this RingBuffer")
        ring = Ring(len(self._rings), ref, callback, deliver, fixed, odd)
        try:
            self._epoll.register(ref.fd, ring.index)
        except BaseException:
            ring.close()
            raise
        self._rings.append(ring)
        return ring

    # -- queries ---------------------------------------------------------------

    @property
    def rings(self) -> List[Ring]:
        """The rings read by this RingBuffer, in the order they were added."""
        return list(self._rings)

    def ring(self, key: Union[int, str, Any] = 0) -> Ring:
        """A ring by index (an int), map name, or the Map it was added with."""
        if isinstance(key, int):
            found = self._rings[key:key + 1] if key >= 0 else []
        elif isinstance(key, str):
            found = [r for r in self._rings if r.name == key]
        else:
            found = [r for r in self._rings if r.ref.fd == getattr(key, "fd", None)]
        if not found:
            raise BPFError(f"no ring {key!r} in this RingBuffer")
        return found[0]

    def avail(self, key: Union[int, str, Any] = 0) -> int:
        """Bytes waiting in one ring."""
        return self.ring(key).avail

    def ring_size(self, key: Union[int, str, Any] = 0) -> int:
        """The data size in bytes of one ring (by index, map name or map)."""
        return typing.cast(int, self.ring(key).size)   # an untyped property

    def fileno(self) -> int:
        """The epoll fd: readable when a ring has data (for select/asyncio)."""
        return self._epoll.fileno()

    def layout(self, key: Union[int, str, Any] = 0) -> Dict[str, Any]:
        """The ring laid bare: see :func:`pybpf.events.memory.describe`."""
        from .memory import describe
        return describe(self.ring(key).mapping)

    # -- consuming -------------------------------------------------------------

    def _pending(self) -> bool:
        return any(ring.avail for ring in self._rings)

    def _consume(self, limit: int) -> int:
        total = 0
        self.stopped = None
        for ring in self._rings:
            if ring.callback is None:
                raise BPFError(f"ring {ring.name!r} has no callback: use records()")
            try:
                n, ret = ring.drain(limit - total)
            except ValueError:          # the views were released under us: close()
                if not ring.mapping.closed:
                    raise
                raise BPFError(f"ring {ring.name!r} was closed during the read") from None
            total += n
            if ret:
                self.stopped, self.stopped_after = ret, total
                return stop_code(ret)
            if self._epoll.closed:      # a callback closed the RingBuffer: the count stands
                return total
        return total

    def consume(self) -> int:
        """Handle what every ring holds, without waiting.

        Returns the number of records handled (>= 0), or, when a callback stopped
        the pass by returning a truthy value, a negative number: that value if it
        is a negative int (libbpf's convention), else -1.  ``stopped`` then holds
        the value itself and ``stopped_after`` the records handled (the stopping
        one included); ``stopped`` is None after a call no callback stopped."""
        self._check_open()
        return self._consume(sys.maxsize)

    def consume_n(self, n: int) -> int:
        """Handle at most ``n`` records (rings in the order they were added)."""
        self._check_open()
        return self._consume(n)

    def poll(self, timeout_ms: Optional[int] = 100) -> int:
        """Wait up to ``timeout_ms`` (None: forever) for data, then consume every ring;
        returns what :meth:`consume` returns.

        A signal ends the wait early (the count is then usually 0), like libbpf's
        -EINTR; an exception raised by the signal handler propagates."""
        self._check_open()
        if not self._pending():
            self._epoll.wait(timeout_ms)
        return self._consume(sys.maxsize)

    def records(self, timeout_ms: Optional[int] = 100) -> Iterator[memoryview]:
        """Every record of every ring, as memoryviews valid until the next one.

        Waits up to ``timeout_ms`` whenever the rings are empty and stops when a
        wait brings nothing.  Callbacks are not called."""
        self._check_open()
        while True:
            if not self._pending():
                self._epoll.wait(timeout_ms)
            got = False
            for ring in self._rings:
                # closed here, not when collected: closing records() publishes what it
                # handed out at once on every interpreter (PyPy collects late)
                with closing(ring.iterate()) as recs:
                    for rec in recs:
                        got = True
                        yield rec
            if not got:
                return

    # -- asyncio ---------------------------------------------------------------

    async def _readable(self, timeout: Optional[float]) -> None:
        import asyncio      # here, not at the top: it costs 20 ms to import pybpf otherwise
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = self.fileno()
        loop.add_reader(fd, lambda: None if ready.done() else ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)

    async def poll_async(self, timeout_ms: Optional[int] = 100) -> int:
        """poll() for asyncio: waits with ``loop.add_reader`` on the epoll fd."""
        self._check_open()
        if not self._pending():
            await self._readable(None if timeout_ms is None else timeout_ms / 1000)
        return self._consume(sys.maxsize)

    async def arecords(self) -> AsyncIterator[memoryview]:
        """``async for rec in rb.arecords()``: every record, forever; each view is
        valid until the next step."""
        self._check_open()
        while True:
            for ring in self._rings:
                with closing(ring.iterate()) as recs:
                    for rec in recs:
                        yield rec
            if self._pending():
                import asyncio
                await asyncio.sleep(0)      # a BUSY record at a head: let others run
            else:
                await self._readable(None)

    def __aiter__(self) -> AsyncIterator[memoryview]:
        return self.arecords()

    # -- lifetime --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._epoll.closed:
            raise BPFError("RingBuffer is closed")

    def close(self) -> None:
        """Unmap every ring and close the epoll fd (the maps stay open)."""
        for ring in self._rings:
            ring.close()
        self._epoll.close()

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(r.name for r in self._rings)
        return f"RingBuffer({names})"
