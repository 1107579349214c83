"""UserRingBuffer: Python produces into a ``BPF_MAP_TYPE_USER_RINGBUF``; BPF drains it.

The mapping mirrors the kernel ring (:class:`~pybpf.events.ringmem.RingMapping`): the
consumer page is read-only here (the kernel's ``bpf_user_ringbuf_drain()``
advances it) and the producer page plus the doubly mapped data are ours to
write.  Records have the same 8-byte header: reserving writes ``len |
BUSY_BIT`` and publishes ``producer_pos`` (release); submitting clears BUSY
(``DISCARD_BIT`` set for a discard) with a release store.  The kernel stops
draining at a BUSY record, so reservations may be submitted in any order but
are consumed in reservation order.

One producer only (like libbpf's ``user_ring_buffer``): calls from several
threads must be serialised by the caller.

    urb = UserRingBuffer(obj.maps["user_rb"])
    with urb.reserve(16) as buf:     # submitted on exit, discarded on exception
        buf[:] = payload
    urb.write(b"...", timeout_ms=100) # reserve (waiting for space) + copy + submit
"""
from __future__ import annotations

import errno as _errno
import select
import time
from typing import Any, Dict, Optional, cast

from .. import uapi
from ..errors import BPFError
from .ringmem import BUSY, DISCARD, HDR_SIZE, Epoll, MapRef, RingMapping, record_size, release

#: the length field keeps 30 bits; the kernel further caps samples (dynptr size)
MAX_SAMPLE = (1 << 24) - 1


class Reservation:
    """A reserved record: ``buf`` is its writable payload, until submit()/discard()."""

    __slots__ = ("_ring", "offset", "size", "buf")

    def __init__(self, ring: "UserRingBuffer", offset: int, size: int, buf: memoryview):
        self._ring = ring
        self.offset = offset        # of the header, in the data area
        self.size = size
        self.buf: Optional[memoryview] = buf

    @property
    def pending(self) -> bool:
        return self.buf is not None

    def submit(self) -> None:
        self._ring._commit(self, 0)

    def discard(self) -> None:
        self._ring._commit(self, DISCARD)

    def __enter__(self) -> memoryview:
        return cast(memoryview, self.buf)   # a fresh reservation has its view

    def __exit__(self, exc_type: Optional[type], *exc: object) -> None:
        if self.pending:
            self._ring._commit(self, DISCARD if exc_type is not None else 0)


class UserRingBuffer:
    """Producer of a user ring buffer map (a Map, anything with ``.fd``, or an fd)."""

    def __init__(self, map: Any) -> None:
        ref = MapRef(map).expect(uapi.BPF_MAP_TYPE_USER_RINGBUF)
        self.mapping = RingMapping(ref)
        try:
            # Edge-triggered: the kernel wakes writers after each drain that
            # consumed something; level-triggered EPOLLOUT would stay ready
            # while any byte is free, too little for the record we wait for.
            self._epoll = Epoll()
            self._epoll.register(ref.fd, 0, select.EPOLLOUT | select.EPOLLET)
        except BaseException:
            self.mapping.close()
            raise

    name = property(lambda self: self.mapping.ref.name,
                    doc="The map's name.")
    size = property(lambda self: self.mapping.size,
                    doc='The data size of the ring in bytes.')
    consumer_pos = property(lambda self: self.mapping.consumer[0],
                            doc="The kernel's consumer position (bytes consumed, ever).")
    producer_pos = property(lambda self: self.mapping.producer[0],
                            doc='Our producer position (bytes reserved, ever).')

    @property
    def free(self) -> int:
        """Bytes that can be reserved now (headers and padding included)."""
        m = self.mapping
        return m.size - (m.producer[0] - m.consumer[0])

    def reserve(self, size: int) -> Reservation:
        """Reserve ``size`` payload bytes; BPFError ENOSPC when the ring is full."""
        m = self._open_mapping()
        if not 0 <= size <= MAX_SAMPLE or record_size(size) > m.size:
            raise BPFError(f"user ring {self.name!r}: cannot hold a {size}-byte sample "
                           f"(ring of {m.size} bytes)", _errno.E2BIG)
        total = record_size(size)
        cons = m.load_consumer()  # acquire: the kernel's reads of the space we reuse are done
        prod = m.producer[0]      # our own position: a plain load
        if total > m.size - (prod - cons):
            raise BPFError(f"user ring {self.name!r} is full", _errno.ENOSPC)
        off = prod & m.mask
        m.hdr[off >> 2] = size | BUSY
        m.hdr[(off >> 2) + 1] = 0
        m.store_producer(prod + total)  # release: the header before producer_pos
        return Reservation(self, off, size, m.data[off + HDR_SIZE:off + HDR_SIZE + size])

    def reserve_blocking(self, size: int, timeout_ms: Optional[int] = None) -> Reservation:
        """reserve(), waiting up to ``timeout_ms`` (None: forever) for the BPF side to
        drain; BPFError ETIMEDOUT when it does not in time."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            try:
                return self.reserve(size)
            except BPFError as e:
                if e.errno != _errno.ENOSPC:
                    raise
            left = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            if left is not None and left <= 0:
                raise BPFError(f"user ring {self.name!r}: no room for {size} bytes "
                               f"within {timeout_ms} ms", _errno.ETIMEDOUT)
            self._epoll.wait(left)

    def write(self, data: bytes, timeout_ms: Optional[int] = 0) -> None:
        """Reserve, copy ``data`` in, submit.  ``timeout_ms=0`` never waits."""
        res = self.reserve(len(data)) if timeout_ms == 0 else \
            self.reserve_blocking(len(data), timeout_ms)
        cast(memoryview, res.buf)[:] = data   # a fresh reservation has its view
        res.submit()

    def _commit(self, res: Reservation, flag: int) -> None:
        if res.buf is None:
            raise BPFError("reservation already submitted or discarded")
        m = self._open_mapping()
        release(res.buf)     # the caller's view must not outlive the record
        res.buf = None
        m.store_header(res.offset, res.size | flag)  # release: the payload before the header

    def _open_mapping(self) -> RingMapping:
        if self.mapping.closed:
            raise BPFError(f"user ring {self.name!r} is closed")
        return self.mapping

    def fileno(self) -> int:
        """Epoll fd, readable (EPOLLIN) when the BPF side has drained records."""
        return self._epoll.fileno()

    def layout(self) -> Dict[str, Any]:
        """The ring's memory as ``RingBuffer.layout()`` describes it: mappings, positions,
        headers."""
        from .memory import describe
        return describe(self._open_mapping())

    def close(self) -> None:
        """Unmap the ring and close its epoll fd; safe to call twice."""
        self.mapping.close()
        self._epoll.close()

    def __enter__(self) -> "UserRingBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
