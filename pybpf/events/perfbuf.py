"""PerfBuffer: per-CPU perf rings fed by ``bpf_perf_event_output()``.

For each selected CPU (online ones by default; a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``
is indexed by CPU) a ``PERF_COUNT_SW_BPF_OUTPUT`` software event is opened with
``PERF_SAMPLE_RAW``, its ring mapped (one metadata page + 2^n data pages),
its fd stored in the map at key = cpu, and the event enabled; one epoll waits
on all of them.

Reading a ring: ``data_head`` is read (acquire), records between
``data_tail`` and it are handed out, ``data_tail`` is stored once (release).
The data pages are mapped once, so sample data that wraps the end is copied
out; all other sample data is a slice of the mapping.  Records:
``PERF_RECORD_SAMPLE`` → ``callback(cpu, memoryview)`` with the raw bytes (the
kernel pads them so that size + 4 is a multiple of 8: the view may be up to 7
bytes longer than what the program wrote, as with libbpf), and
``PERF_RECORD_LOST`` → ``lost(cpu, count)``.  A truthy callback return stops
the read (``poll``/``consume`` then return a negative number, as for RingBuffer).

Overwritable mode (``overwrite=True``): the events write backward
(``write_backward``) into a read-only mapping, so the kernel never waits for
the reader and keeps the newest records.  A read pauses the ring
(``PERF_EVENT_IOC_PAUSE_OUTPUT``), walks from ``data_head`` — the newest
record — towards older ones, stops at what was read last time, at a record
the writer has partly overwritten, or at never-written space, and resumes.
Callbacks then see records newest first.
"""
from __future__ import annotations

import mmap
import struct
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..kernel import syscall
from .. import uapi
from ..errors import BPFError, from_os_error
from . import barriers
from .ringmem import (PAGE_SIZE, Epoll, MapRef, buffer_address, close_mmap, release,
                      stop_code, unmapped)
from ..kernel.sysinfo import online_cpus

_HEAD = uapi.PERF_MMAP_PAGE_DATA_HEAD // 8
_TAIL = uapi.PERF_MMAP_PAGE_DATA_TAIL // 8
_HDR = struct.Struct("=I2xH")       # perf_event_header: type, (misc), size
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_U64_MASK = (1 << 64) - 1

SampleCallback = Callable[[int, memoryview], Any]
LostCallback = Callable[[int, int], Any]


class CpuRing:
    """The perf ring of one CPU: its event fd (owned), mapping and read state."""

    def __init__(self, cpu: int, pages: int, attr: uapi.perf_event_attr,
                 overwrite: bool) -> None:
        self.cpu = cpu
        self.overwrite = overwrite
        self.fd = syscall.perf_event_open(attr, pid=-1, cpu=cpu,
                                          what=f"perf_event_open(BPF_OUTPUT, cpu {cpu})")
        prot = mmap.PROT_READ if overwrite else mmap.PROT_READ | mmap.PROT_WRITE
        try:
            self._mm: Optional[mmap.mmap] = mmap.mmap(self.fd.fd, (1 + pages) * PAGE_SIZE,
                                                      mmap.MAP_SHARED, prot)
        except OSError as e:
            self.fd.close()
            raise BPFError(f"mmap of the perf ring of CPU {cpu} ({pages} pages): "
                           f"{e.strerror}; check ulimit -l / perf_event_mlock_kb",
                           e.errno) from None
        self.page = memoryview(self._mm).cast("Q")
        order, addr = barriers.ORDER, buffer_address(self._mm)
        self.load_head = order.loader(self.page, _HEAD, addr + uapi.PERF_MMAP_PAGE_DATA_HEAD)
        self.store_tail = order.storer(self.page, _TAIL, addr + uapi.PERF_MMAP_PAGE_DATA_TAIL)
        self.size = pages * PAGE_SIZE
        self.mask = self.size - 1
        self.data = memoryview(self._mm)[PAGE_SIZE:]
        self.last_head: Optional[int] = None      # overwrite mode: head of the last read

    def _view(self, pos: int, size: int) -> memoryview:
        """``size`` bytes at ring position ``pos``: a slice of the mapping, or a copy
        of the two pieces when they wrap the end."""
        off = pos & self.mask
        end = off + size
        if end <= self.size:
            return self.data[off:end]
        return memoryview(bytes(self.data[off:]) + bytes(self.data[:end - self.size]))

    def _deliver(self, off: int, rtype: int, cb: SampleCallback,
                 lost: Optional[LostCallback]) -> Tuple[int, Any]:
        # the header is 8-aligned: its u32 / u64 fields never wrap, a sample's data may
        if rtype == uapi.PERF_RECORD_SAMPLE:
            raw = _U32.unpack_from(self.data, (off + 8) & self.mask)[0]
            return 1, cb(self.cpu, self._view(off + 12, raw))
        if rtype == uapi.PERF_RECORD_LOST and lost is not None:
            lost(self.cpu, _U64.unpack_from(self.data, (off + 16) & self.mask)[0])
        return 0, None

    def read(self, cb: SampleCallback, lost: Optional[LostCallback]) -> Tuple[int, Any]:
        return self._read_backward(cb, lost) if self.overwrite else self._read_forward(cb, lost)

    def _read_forward(self, cb: SampleCallback, lost: Optional[LostCallback]) -> Tuple[int, Any]:
        page = self.page
        head, tail = self.load_head(), page[_TAIL]  # acquire: data_head before the records
        if head == tail:
            return 0, None      # nothing new: data_tail is left as it is
        data, mask, n, ret = self.data, self.mask, 0, None
        try:
            while tail < head and not ret:
                off = tail & mask
                rtype, size = _HDR.unpack_from(data, off)
                if size < _HDR.size:
                    raise BPFError(f"perf ring of CPU {self.cpu}: corrupt record at {off}")
                tail += size
                k, ret = self._deliver(off, rtype, cb, lost)
                n += k
        finally:
            self.store_tail(tail)  # release: the reads are done before data_tail moves
        return n, ret

    def _read_backward(self, cb: SampleCallback, lost: Optional[LostCallback]) -> Tuple[int, Any]:
        syscall.ioctl(self.fd.fd, uapi.PERF_EVENT_IOC_PAUSE_OUTPUT, 1, "pausing a perf ring")
        try:
            head = self.load_head()
            limit = min(self.size, -head & _U64_MASK)      # -head: bytes ever written
            if self.last_head is not None:
                limit = min(limit, (self.last_head - head) & _U64_MASK)
            self.last_head = head
            n, ret, pos = 0, None, 0
            while pos < limit and not ret:
                off = (head + pos) & self.mask
                rtype, size = _HDR.unpack_from(self.data, off)
                if size < _HDR.size or pos + size > limit:
                    break  # never written, or the oldest record, partly overwritten
                k, ret = self._deliver(off, rtype, cb, lost)
                n += k
                pos += size
            return n, ret
        finally:
            syscall.ioctl(self.fd.fd, uapi.PERF_EVENT_IOC_PAUSE_OUTPUT, 0, "resuming a perf ring")

    def close(self) -> None:
        if self._mm is not None:
            self.load_head = self.store_tail = unmapped
            release(self.page, self.data)
            close_mmap(self._mm)
            self._mm = None
        self.fd.close()


class PerfBuffer:
    """Reader of a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``: one perf ring per CPU.

    ``pages`` (a power of 2) per CPU; ``cpus`` restricts the CPUs (default: the
    online ones the map has slots for); a wakeup every ``wakeup_events``
    samples, or when ``watermark`` bytes are waiting; ``overwrite`` as in the
    module docstring.
    """

    def __init__(self, map: Any, callback: SampleCallback, lost: Optional[LostCallback] = None,
                 pages: int = 8, *, cpus: Optional[Sequence[int]] = None,
                 wakeup_events: int = 1, watermark: Optional[int] = None,
                 overwrite: bool = False) -> None:
        if pages <= 0 or pages & (pages - 1):
            raise BPFError(f"pages must be a power of 2, got {pages}")
        self._ref = MapRef(map).expect(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY)
        self._rings: List[CpuRing] = []
        #: the value a callback stopped the last read with (None: not stopped)
        self.stopped: Any = None
        self.stopped_after = 0
        # our own reference to the map: the slots are ours to clear at close(), in
        # this map, even if its owner closed its fd (and the number went elsewhere)
        self._map_fd = syscall.dup(self._ref.fd, f"duplicating the fd of map {self._ref.name!r}")
        try:
            self.callback = callback
            self.lost = lost
            slots = self._ref.max_entries
            online = set(online_cpus())
            if cpus is None:
                cpus = [c for c in sorted(online) if c < slots]
            bad = [c for c in cpus if c >= slots or c not in online]
            if bad:
                raise BPFError(f"CPUs {bad} are offline or beyond the {slots} slots of "
                               f"map {self._ref.name!r}")
            self._epoll = Epoll()
            for cpu in cpus:
                ring = CpuRing(cpu, pages, self._attr(wakeup_events, watermark, overwrite),
                               overwrite)
                self._rings.append(ring)
                syscall.map_update(self._map_fd.fd, _U32.pack(cpu), _U32.pack(ring.fd.fd))
                self._epoll.register(ring.fd.fd, len(self._rings) - 1)
                syscall.ioctl(ring.fd.fd, uapi.PERF_EVENT_IOC_ENABLE, 0, "enabling a perf event")
        except BaseException as e:
            self.close()
            if isinstance(e, OSError):
                raise from_os_error(e, f"perf buffer of map {self._ref.name!r}") from e
            raise

    @staticmethod
    def _attr(wakeup_events: int, watermark: Optional[int],
              overwrite: bool) -> uapi.perf_event_attr:
        attr = uapi.perf_event_attr(type=uapi.PERF_TYPE_SOFTWARE,
                                    config=uapi.PERF_COUNT_SW_BPF_OUTPUT,
                                    sample_type=uapi.PERF_SAMPLE_RAW, sample_period=1,
                                    flags=uapi.PERF_ATTR_FLAG_DISABLED)
        if watermark is not None:
            attr.flags |= uapi.PERF_ATTR_FLAG_WATERMARK
            syscall.fill(attr, wakeup_events=watermark)     # the union's wakeup_watermark
        else:
            syscall.fill(attr, wakeup_events=wakeup_events)
        if overwrite:
            attr.flags |= uapi.PERF_ATTR_FLAG_WRITE_BACKWARD
        return attr

    @property
    def cpus(self) -> List[int]:
        """The CPUs this buffer has a ring on."""
        return [r.cpu for r in self._rings]

    def fileno(self) -> int:
        """The epoll fd: readable when a ring has samples (for select / asyncio)."""
        return self._epoll.fileno()

    def _read(self, rings: Sequence[CpuRing]) -> int:
        total = 0
        self.stopped = None
        for ring in rings:
            n, ret = ring.read(self.callback, self.lost)
            total += n
            if ret:
                self.stopped, self.stopped_after = ret, total
                return stop_code(ret)
        return total

    def consume(self) -> int:
        """Read every CPU's ring without waiting: records handled (>= 0), or a negative
        number when a callback stopped (as :meth:`pybpf.RingBuffer.consume`:
        ``stopped`` holds its value, ``stopped_after`` the records handled)."""
        self._check_open()
        return self._read(self._rings)

    def consume_cpu(self, cpu: int) -> int:
        """Read every sample of ``cpu``'s ring without waiting; returns how many."""
        self._check_open()
        return self._read([r for r in self._rings if r.cpu == cpu])

    def poll(self, timeout_ms: Optional[int] = 100) -> int:
        """Read what is there; if nothing, wait up to ``timeout_ms`` (None: forever;
        a signal ends it) and read again.

        Every CPU's ring is read, not only those epoll names: a perf event's
        readiness is cleared by whoever polls it first (an outer epoll or select
        holding ``fileno()`` does), so the head/tail check (a few loads per CPU)
        is what decides, never the wakeup alone."""
        self._check_open()
        handled = self._read(self._rings)
        if handled:
            return handled
        self._epoll.wait(timeout_ms)
        return self._read(self._rings)

    def _check_open(self) -> None:
        if self._map_fd.closed:
            raise BPFError("PerfBuffer is closed")

    def close(self) -> None:
        """Disable and close every event, empty the map slots, close the epoll fd
        and our reference to the map."""
        rings, self._rings = self._rings, []
        try:
            for ring in rings:
                try:
                    if not self._map_fd.closed:
                        syscall.map_delete(self._map_fd.fd, _U32.pack(ring.cpu))
                finally:
                    ring.close()
        finally:
            epoll = getattr(self, "_epoll", None)
            if epoll is not None:
                epoll.close()
            self._map_fd.close()

    def __enter__(self) -> "PerfBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PerfBuffer({self._ref.name}, cpus={self.cpus})"
