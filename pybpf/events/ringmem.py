"""Memory shared with the kernel's BPF rings: mappings and waiting.

The three event transports (:mod:`pybpf.events.ringbuf`, :mod:`pybpf.events.user_ringbuf`,
:mod:`pybpf.events.perfbuf`) share what is here: resolving a map argument, the two
mmaps of a ``BPF_MAP_TYPE_{USER_,}RINGBUF`` map with acquire/release access
to its positions (memory ordering: :mod:`pybpf.events.barriers`), the address of a
Python buffer, and an epoll set whose wait returns on a signal.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import select
import sys
import typing
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

from . import barriers
from ..kernel import syscall
from ..kernel.sigdefer import deferred
from .. import uapi
from ..errors import BPFError, from_errno

# Record headers (kernel/bpf/ringbuf.c): length word with two flag bits, then pg_off.
HDR_SIZE = uapi.BPF_RINGBUF_HDR_SZ
BUSY = uapi.BPF_RINGBUF_BUSY_BIT
DISCARD = uapi.BPF_RINGBUF_DISCARD_BIT
FLAGS = BUSY | DISCARD
LEN_MASK = 0xFFFFFFFF & ~FLAGS     # the length bits of a record header


def record_size(length: int) -> int:
    """Bytes a record of ``length`` payload bytes takes in the ring."""
    return (length + HDR_SIZE + 7) & ~7


PAGE_SIZE = mmap.PAGESIZE
PYPY = sys.implementation.name == "pypy"

#: u32 words indexable by int: a memoryview, or on PyPy a cffi array
Words = Sequence[int]

_libc = ctypes.CDLL(None, use_errno=True)

# ------------------------------------------------------------------ buffers


def _cpython_buffer_address() -> Callable[[object], int]:
    """CPython: PyObject_GetBuffer + PyBuffer_Release, which leaves no export behind."""

    class Py_buffer(ctypes.Structure):
        _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.py_object),
                    ("len", ctypes.c_ssize_t), ("itemsize", ctypes.c_ssize_t),
                    ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                    ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p),
                    ("strides", ctypes.c_void_p), ("suboffsets", ctypes.c_void_p),
                    ("internal", ctypes.c_void_p)]

    api = ctypes.pythonapi

    def address(obj: object) -> int:
        view = Py_buffer()
        api.PyObject_GetBuffer(ctypes.py_object(obj), ctypes.byref(view), 0)
        try:
            return int(view.buf)
        finally:
            api.PyBuffer_Release(ctypes.byref(view))
    return address


#: PyPy's built-in cffi (PyPy has no ctypes.pythonapi); None in CPython
_FFI: Any = None
if not hasattr(ctypes, "pythonapi"):
    import cffi
    _FFI = cffi.FFI()
    _FFI.typeof("uintptr_t")        # parsed now: its parser is imported lazily


def _cffi_buffer_address() -> Callable[[object], int]:
    """PyPy: the address through cffi, the export released at once."""
    ffi = _FFI
    uintptr = ffi.typeof("uintptr_t")

    def address(obj: object) -> int:
        ptr = ffi.from_buffer(obj)
        try:
            return int(ffi.cast(uintptr, ptr))
        finally:
            ffi.release(ptr)
    return address


_raw_address: Callable[[object], int] = (
    _cpython_buffer_address() if _FFI is None else _cffi_buffer_address())


def words_of(data: memoryview, words: memoryview) -> Words:
    """The u32 ``words`` of ``data`` for the header walk: the memoryview itself in
    CPython; on PyPy a cffi array over ``data``, which its JIT reads with plain
    loads (a memoryview item costs ~60 ns there).  :func:`release_words` ends it."""
    if _FFI is None:
        return words
    return typing.cast(Words, _FFI.from_buffer("uint32_t[]", data))


def release_words(words: Words) -> None:
    """Release what :func:`words_of` made (memoryviews are released by their owner)."""
    if _FFI is not None and not isinstance(words, memoryview):
        _FFI.release(words)


def buffer_address(obj: object) -> int:
    """Address of the first byte of a buffer (read-only mmaps included).  Signals are
    held back meanwhile: a KeyboardInterrupt between taking the buffer and releasing
    it would leave an export that keeps the mapping from ever being closed."""
    return deferred(lambda _deliver: _raw_address(obj), _nothing)


def _nothing(_: int) -> None:
    pass


def release(*views: Optional[memoryview]) -> None:
    """Release views; one still exported elsewhere is left to the GC."""
    for view in views:
        if view is not None:
            try:
                view.release()
            except BufferError:
                pass


def close_mmap(mm: Optional[mmap.mmap]) -> None:
    """Unmap now, or (when a caller kept a record view) once the GC frees it."""
    if mm is not None:
        try:
            mm.close()
        except BufferError:
            pass


def _mmap(fd: int, length: int, prot: int, offset: int, what: str) -> mmap.mmap:
    try:
        return mmap.mmap(fd, length, mmap.MAP_SHARED, prot, offset=offset)
    except OSError as e:
        raise from_errno(e.errno or _errno.EINVAL, f"mmap of {what}") from None


# ------------------------------------------------------------------ maps


class MapRef:
    """What the rings need to know about a map: the fd, and the kernel's view of it.

    Accepts a ``Map`` (anything with ``.fd``, optionally ``.name``) or a raw
    map fd.  The fd stays owned by the caller.
    """

    __slots__ = ("fd", "name", "type", "max_entries", "id")

    def __init__(self, m: Any) -> None:
        fd = m if isinstance(m, int) else getattr(m, "fd", None)
        if not isinstance(fd, int):
            raise BPFError(f"expected a map or a map fd, got {type(m).__name__}")
        try:
            info = syscall.obj_info(fd, uapi.bpf_map_info)
        except BPFError as e:
            raise BPFError(f"fd {fd} is not a BPF map: {e}", e.errno) from None
        self.fd = fd
        self.type = info.type
        self.max_entries: int = info.max_entries
        self.id = info.id
        self.name = getattr(m, "name", None) or info.name.decode(errors="replace")

    def expect(self, *types: int) -> "MapRef":
        if self.type not in types:
            want = " or ".join(uapi.enum_name(uapi.bpf_map_type, t) for t in types)
            raise BPFError(f"map {self.name!r} is {_type_name(self.type)}, expected {want}")
        return self


def _type_name(t: int) -> str:
    try:
        return uapi.enum_name(uapi.bpf_map_type, t)
    except ValueError:
        return f"map type {t}"


def stop_code(value: object) -> int:
    """What poll()/consume() return when a callback stopped the pass with ``value``:
    a negative int as it is (libbpf's ``ring_buffer__poll`` returns the callback's
    negative error), -1 for any other truthy value, so that a stop never reads as
    a count of records (>= 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return value
    return -1


def unmapped(*_: int) -> NoReturn:
    raise BPFError("the ring is closed (unmapped)")


class RingMapping:
    """The two mmaps of a ``BPF_MAP_TYPE_RINGBUF`` / ``BPF_MAP_TYPE_USER_RINGBUF`` map.

    * offset 0, one page: ``consumer_pos`` — writable by the consumer only
      (user space for a kernel ring, the kernel for a user ring);
    * offset ``PAGE_SIZE``, ``PAGE_SIZE + 2 * size`` bytes: ``producer_pos``,
      then the data pages mapped twice in a row, so a record that wraps the end
      of the ring is contiguous in our address space.

    ``consumer`` / ``producer`` are one-element u64 views of the positions,
    ``data`` the 2*size bytes, ``hdr`` the same as u32 words (record headers),
    ``words`` the same again for reading only, as the interpreter reads fastest.
    The ordered accesses to the positions are ``load_producer()`` /
    ``load_consumer()`` (acquire) and ``store_consumer(v)`` / ``store_producer(v)``
    (release), with the fences of ``order`` (:class:`pybpf.events.barriers.Ordering`).
    """

    _cons_mm: Optional[mmap.mmap]
    _prod_mm: Optional[mmap.mmap]

    def __init__(self, ref: MapRef, producer_side: bool = False) -> None:
        ref.expect(uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF)
        self.ref = ref
        self.size = ref.max_entries
        self.mask = self.size - 1
        self.user = ref.type == uapi.BPF_MAP_TYPE_USER_RINGBUF
        rw, ro = mmap.PROT_READ | mmap.PROT_WRITE, mmap.PROT_READ
        self._cons_mm = _mmap(ref.fd, PAGE_SIZE, ro if self.user else rw, 0,
                              f"{ref.name} consumer page")
        try:
            self._prod_mm = _mmap(ref.fd, PAGE_SIZE + 2 * self.size,
                                  rw if self.user else ro, PAGE_SIZE,
                                  f"{ref.name} producer page and data")
        except BaseException:
            self._cons_mm.close()
            raise
        self.consumer = memoryview(self._cons_mm).cast("Q")
        self.producer = memoryview(self._prod_mm).cast("Q")
        self.data = memoryview(self._prod_mm)[PAGE_SIZE:]
        self.hdr = self.data.cast("I")
        self.words = words_of(self.data, self.hdr)   # the same words, for the header walk
        self._casts: Dict[str, memoryview] = {}
        self.order = order = barriers.ORDER
        cons_addr, prod_addr = self.addresses()
        self.data_addr = prod_addr + PAGE_SIZE
        self.load_producer = order.loader(self.producer, 0, prod_addr)
        self.load_consumer = order.loader(self.consumer, 0, cons_addr)
        self.store_consumer = order.storer(self.consumer, 0, cons_addr)
        self.store_producer = order.storer(self.producer, 0, prod_addr)

    def store_header(self, off: int, value: int) -> None:
        """Release store of the u32 length word of the record header at data offset ``off``."""
        self.order.store32(self.hdr, off >> 2, self.data_addr, value)

    def cast(self, fmt: str) -> memoryview:
        """The data area viewed as an array of ``fmt`` items (cached)."""
        view = self._casts.get(fmt)
        if view is None:
            # typeshed types memoryview.cast for literal formats only
            view = self._casts[fmt] = self.data.cast(fmt)  # type: ignore[call-overload]
        return view

    def addresses(self) -> Tuple[int, int]:
        """(consumer page address, producer page address); data follows the latter."""
        return buffer_address(self._cons_mm), buffer_address(self._prod_mm)

    @property
    def closed(self) -> bool:
        return self._cons_mm is None

    def close(self) -> None:
        if self._cons_mm is None:
            return
        # the accessors may call code with the mapping's addresses: never after the unmap
        self.load_producer = self.load_consumer = unmapped
        self.store_consumer = self.store_producer = unmapped
        release_words(self.words)
        self.words = self.hdr       # released below: a stray walk raises, never reads
        release(self.hdr, self.data, self.consumer, self.producer, *self._casts.values())
        self._casts.clear()
        close_mmap(self._cons_mm)
        close_mmap(self._prod_mm)
        self._cons_mm = self._prod_mm = None


# ------------------------------------------------------------------ epoll


_epoll_wait = _libc.epoll_wait
_epoll_wait.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_epoll_wait.restype = ctypes.c_int
_epoll_ctl = _libc.epoll_ctl
_epoll_ctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]


class Epoll:
    """An epoll set of (fd, token) pairs.

    ``wait()`` calls epoll_wait(2) directly (ctypes releases the GIL) rather
    than through :mod:`select`, because ``select.epoll.poll`` retries after a
    signal (PEP 475): here a signal makes ``wait`` return ``[]`` at once, as
    libbpf's ``ring_buffer__poll`` returns ``-EINTR``, so a loop that checks a
    flag set by a signal handler stops promptly.
    """

    def __init__(self) -> None:
        try:
            self._ep = select.epoll()
        except OSError as e:
            raise from_errno(e.errno or _errno.EINVAL, "epoll_create") from None
        self._events = (uapi.epoll_event * 8)()

    def register(self, fd: int, token: int, events: int = select.EPOLLIN) -> None:
        # select.epoll.register would put the fd in epoll_event.data; we want the token.
        ev = uapi.epoll_event(events=events, data=token)
        if _epoll_ctl(self._ep.fileno(), uapi.EPOLL_CTL_ADD, fd, ctypes.byref(ev)) != 0:
            raise from_errno(ctypes.get_errno(), f"epoll_ctl(ADD, fd {fd})")
        if len(self._events) < token + 1:
            self._events = (uapi.epoll_event * (2 * (token + 1)))()

    def wait(self, timeout_ms: Optional[int]) -> List[int]:
        """Tokens of the ready fds; [] on timeout or signal.  None waits forever."""
        timeout = -1 if timeout_ms is None or timeout_ms < 0 else int(timeout_ms)
        events = self._events
        n = _epoll_wait(self._ep.fileno(), events, len(events), timeout)
        if n < 0:
            err = ctypes.get_errno()
            if err == _errno.EINTR:
                return []
            raise from_errno(err, "epoll_wait")
        return [events[i].data for i in range(n)]

    def fileno(self) -> int:
        return self._ep.fileno()

    @property
    def closed(self) -> bool:
        return self._ep.closed

    def close(self) -> None:
        self._ep.close()
