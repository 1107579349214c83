"""The one narrow door to the kernel: bpf(2), perf_event_open(2) and ioctl(2).

Each wrapper fills one ``bpf_attr`` member from :mod:`pybpf.uapi`, makes the
call, and turns a failure into a :class:`~pybpf.errors.BPFError` that carries
``errno``.  Nothing here keeps state except :class:`Fd`, the owner of one
kernel file descriptor.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import typing
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Type, TypeVar

from .. import uapi
from ..errors import BPFError, VerifierError, from_errno
from ..limits import KERNEL_NAME_CHARS
from .sigdefer import deferred

#: errors that say the process (or the system) ran out of file descriptors
FD_EXHAUSTED = (_errno.EMFILE, _errno.ENFILE)

# (bpf, perf_event_open, membarrier) syscall numbers per architecture.
_SYSCALL_NUMBERS = {
    "x86_64": (321, 298, 324), "aarch64": (280, 241, 283), "riscv64": (280, 241, 283),
    "loongarch64": (280, 241, 283), "s390x": (351, 331, 356), "ppc64le": (361, 319, 365),
    "ppc64": (361, 319, 365), "armv7l": (386, 364, 389), "i686": (357, 336, 375),
    "i386": (357, 336, 375), "mips64": (5315, 5296, 5318),
}
_NR_BPF, _NR_PERF_EVENT_OPEN, NR_MEMBARRIER = _SYSCALL_NUMBERS.get(os.uname().machine,
                                                                   (None, None, None))

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_ioctl = _libc.ioctl
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]


class Fd:
    """Owns one kernel fd: closed exactly once, by close(), ``with`` or GC."""

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int):
        self._fd = fd

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise BPFError("file descriptor already closed", _errno.EBADF)
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        """Close the fd (once).  Signals are held back meanwhile: a KeyboardInterrupt
        between giving up the number and closing it would leak the fd."""
        if self._fd >= 0:
            deferred(self._close_now, _ignore)

    def _close_now(self, _deliver: Callable[[], None]) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach(self) -> int:
        """Give up ownership and return the raw fd."""
        fd, self._fd = self._fd, -1
        return fd

    def __enter__(self) -> "Fd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"Fd({self._fd})"


def _ignore(_: object) -> None:
    pass


# ------------------------------------------------------------------ checked layouts

_Layout = typing.Union[ctypes.Structure, ctypes.Union]
S = TypeVar("S", bound=_Layout)
_INT_CODES = "bBhHiIlLqQ"


def _range(field: Tuple[Any, ...]) -> Optional[Tuple[int, int, str]]:
    """(lowest, highest, "u32"-like name) of an integer ``_fields_`` entry (a
    bitfield's width included), else None."""
    code = getattr(field[1], "_type_", None)
    if not isinstance(code, str) or code not in _INT_CODES:
        return None
    bits = field[2] if len(field) > 2 else 8 * ctypes.sizeof(field[1])
    if code.islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1, f"s{bits}"
    return 0, (1 << bits) - 1, f"u{bits}"


#: layout -> field name -> its integer range (None: not an integer field)
_FIELDS: Dict[type, Dict[str, Optional[Tuple[int, int, str]]]] = {}


def _ranges(cls: Type[ctypes.Structure]) -> Dict[str, Optional[Tuple[int, int, str]]]:
    ranges = _FIELDS.get(cls)
    if ranges is None:
        ranges = _FIELDS[cls] = {f[0]: _range(f) for f in cls._fields_}
    return ranges


def _check(cls: type, values: Dict[str, Any]) -> None:
    """Refuse any integer value its field of ``cls`` cannot hold (dicts: nested layouts)."""
    ranges = _ranges(cls)
    for name, value in values.items():
        try:
            bounds = ranges[name]
        except KeyError:
            raise BPFError(f"{cls.__name__} has no field {name!r}", _errno.EINVAL) from None
        if bounds is None:
            continue
        lo, hi, what = bounds
        if not isinstance(value, int):
            raise BPFError(f"{cls.__name__}.{name} = {value!r}: not an integer", _errno.EINVAL)
        if not lo <= value <= hi:
            raise BPFError(f"{cls.__name__}.{name} = {value}: out of range for {what}"
                           f" [{lo}, {hi}]", _errno.ERANGE)


def fill(layout: S, **values: Any) -> S:
    """Set fields of a uapi layout, refusing any value its field cannot hold.

    ctypes would silently keep the low bits (``max_entries = (1 << 32) + 16`` would
    make a 16-entry map): every value written into a kernel struct goes through
    here.  A dict value fills a nested struct or union member the same way."""
    _check(type(layout), values)
    for name, value in values.items():
        if isinstance(value, dict):
            fill(getattr(layout, name), **value)
        else:
            setattr(layout, name, value)
    return layout


def _attr(cls: Type[S], **values: Any) -> S:
    """A new uapi layout with range-checked fields (see ``fill``)."""
    _check(cls, values)
    return cls(**values)


def _addr(buf: Optional[ctypes._CData]) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _check_arch() -> None:
    if _NR_BPF is None:
        raise BPFError(f"bpf(2) syscall number unknown for {os.uname().machine}",
                       _errno.ENOSYS)


def bpf(cmd: int, attr: ctypes.Structure, what: str = "",
        on_interrupt: Optional[Callable[[], None]] = None) -> int:
    """Raw bpf(2): returns the result, raises BPFError on failure.

    EINTR and EAGAIN (the kernel returns EAGAIN from BPF_PROG_LOAD when a signal
    interrupts verification) are retried a bounded number of times, after
    ``on_interrupt()`` (see :func:`pybpf.kernel.sigdefer.deferred`: the held-back signal
    handlers run then, and may raise).
    """
    _check_arch()
    for _ in range(5):
        ret: int = _syscall(_NR_BPF, ctypes.c_int(cmd), ctypes.byref(attr),
                       ctypes.c_uint(ctypes.sizeof(attr)))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        if err not in (_errno.EINTR, _errno.EAGAIN) or cmd == uapi.BPF_MAP_LOOKUP_ELEM:
            break
        if on_interrupt is not None:
            on_interrupt()
    raise from_errno(err, what or uapi.enum_name(uapi.bpf_cmd, cmd))


def _close_fd(fd: Fd) -> None:
    fd.close()


def owned(make: Callable[[], int], what: str) -> Fd:
    """An fd made by ``make()`` (a syscall returning it), wrapped into its Fd before any
    signal handler can run (:func:`pybpf.kernel.sigdefer.deferred`); OSError -> BPFError."""
    def wrap(deliver_now: Callable[[], None]) -> Fd:
        try:
            return Fd(make())
        except OSError as e:
            raise from_errno(e.errno or _errno.EIO, what) from None
    return deferred(wrap, _close_fd)


def bpf_fd(cmd: int, attr: ctypes.Structure, what: str = "") -> Fd:
    """A bpf(2) command that returns a new fd, owned before any signal handler runs."""
    return deferred(lambda deliver_now: Fd(bpf(cmd, attr, what, deliver_now)), _close_fd)


def dup(fd: int, what: str = "duplicating an fd") -> Fd:
    """A close-on-exec duplicate of ``fd``, owned."""
    return owned(lambda: os.dup(fd), what)      # os.dup: close-on-exec (PEP 446)


def open_fd(path: str, flags: int, what: str = "") -> Fd:
    """os.open(path, flags | O_CLOEXEC), owned; BPFError naming ``what`` on failure."""
    return owned(lambda: os.open(path, flags | os.O_CLOEXEC), what or f"opening {path}")


# ------------------------------------------------------------------ maps

def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "", btf_fd: int = 0,
               btf_key_type_id: int = 0, btf_value_type_id: int = 0,
               inner_map_fd: int = 0, map_extra: int = 0, numa_node: int = 0,
               ifindex: int = 0, btf_vmlinux_value_type_id: int = 0,
               value_type_btf_obj_fd: int = 0) -> Fd:
    attr = _attr(
        uapi.bpf_attr_map_create,
        map_type=map_type, key_size=key_size, value_size=value_size,
        max_entries=max_entries, map_flags=flags, inner_map_fd=inner_map_fd,
        numa_node=numa_node, map_name=_obj_name(name),
        map_ifindex=ifindex, btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra,
        value_type_btf_obj_fd=value_type_btf_obj_fd)
    return bpf_fd(uapi.BPF_MAP_CREATE, attr, f"creating map {name!r}{name_hint(name)}")


def _obj_bytes(name: str) -> bytes:
    """A name from the object as the kernel gets it: its bytes, those that are not
    UTF-8 included (ELF and BTF names are decoded with ``surrogateescape``)."""
    return name.encode("utf-8", "surrogateescape")


def _obj_name(name: str) -> bytes:
    """A map or program name as the kernel's ``*_name`` fields take it, cut to
    BPF_OBJ_NAME_LEN - 1 bytes."""
    return _obj_bytes(name)[:uapi.BPF_OBJ_NAME_LEN - 1]


def name_hint(name: str) -> str:
    """Why the kernel may refuse a name with EINVAL, which it does not say itself:
    it takes only letters, digits, '_' and '.' in the bytes it keeps."""
    kept = _obj_name(name).decode("utf-8", "surrogateescape")
    if all(c in KERNEL_NAME_CHARS for c in kept):
        return ""
    return (" (the kernel takes only letters, digits, '_' and '.' in the first "
            f"{uapi.BPF_OBJ_NAME_LEN - 1} bytes of a name)")


def _elem_attr(fd: int, key: Optional[ctypes._CData], value: Optional[ctypes._CData],
               flags: int) -> uapi.bpf_attr_map_elem:
    return _attr(uapi.bpf_attr_map_elem, map_fd=fd, key=_addr(key), value=_addr(value), flags=flags)


def _found(cmd: int, attr: ctypes.Structure) -> bool:
    """Run a map command; False where the kernel says the key is absent (ENOENT)."""
    try:
        bpf(cmd, attr)
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return False
        raise
    return True


def map_lookup(fd: int, key: bytes, value_size: int, flags: int = 0) -> Optional[bytes]:
    """Value for key, or None when the key is absent."""
    kbuf = ctypes.create_string_buffer(key, len(key))
    vbuf = ctypes.create_string_buffer(value_size)
    return vbuf.raw if _found(uapi.BPF_MAP_LOOKUP_ELEM, _elem_attr(fd, kbuf, vbuf, flags)) \
        else None


def map_update(fd: int, key: bytes, value: bytes, flags: int = uapi.BPF_ANY) -> None:
    kbuf = ctypes.create_string_buffer(key, len(key))
    vbuf = ctypes.create_string_buffer(value, len(value))
    bpf(uapi.BPF_MAP_UPDATE_ELEM, _elem_attr(fd, kbuf, vbuf, flags))


def map_delete(fd: int, key: bytes) -> bool:
    """Delete key; False when it was absent."""
    kbuf = ctypes.create_string_buffer(key, len(key))
    return _found(uapi.BPF_MAP_DELETE_ELEM, _elem_attr(fd, kbuf, None, 0))


def map_get_next_key(fd: int, key: Optional[bytes], key_size: int) -> Optional[bytes]:
    """Key after ``key`` (the first key when None); None at the end."""
    kbuf = ctypes.create_string_buffer(key, key_size) if key is not None else None
    nbuf = ctypes.create_string_buffer(key_size)
    return nbuf.raw if _found(uapi.BPF_MAP_GET_NEXT_KEY, _elem_attr(fd, kbuf, nbuf, 0)) \
        else None


def map_freeze(fd: int) -> None:
    bpf(uapi.BPF_MAP_FREEZE, _attr(uapi.bpf_attr_fd, fd=fd))


# ------------------------------------------------------------------ BTF and programs

LogAttr = TypeVar("LogAttr", uapi.bpf_attr_btf_load, uapi.bpf_attr_prog_load)
LOG_START_SIZE = 1 << 16


def _load_with_log(cmd: int, attr: LogAttr,
                   set_log: Callable[[LogAttr, Optional[ctypes._CData], int, int], None],
                   true_size: Callable[[LogAttr], int], what: str,
                   log_level: int, deliver_now: Callable[[], None]) -> Tuple[Fd, str]:
    """Run a load command; on failure repeat it with a verifier log that grows.

    Returns (fd, log); call it inside :func:`pybpf.kernel.sigdefer.deferred`, which passes
    ``deliver_now`` (run before an interrupted attempt is repeated).  The first
    attempt runs without a log (fast path, as libbpf does) unless ``log_level`` asks for one.  On failure the log buffer
    starts at LOG_START_SIZE (64 KiB) and grows to the kernel's ``log_true_size`` (6.4+) or by
    x4, at most 5 times, up to ``BPF_LOG_MAX_SIZE``.
    """
    size = LOG_START_SIZE
    level = log_level
    for _ in range(6):
        buf = ctypes.create_string_buffer(size) if level else None
        set_log(attr, buf, size if level else 0, level)
        _check_arch()
        ret = _syscall(_NR_BPF, ctypes.c_int(cmd), ctypes.byref(attr),
                       ctypes.c_uint(ctypes.sizeof(attr)))
        err = ctypes.get_errno() if ret < 0 else 0
        log = buf.value.decode(errors="replace") if buf is not None else ""
        if ret >= 0:
            return Fd(ret), log
        if err in (_errno.EINTR, _errno.EAGAIN):
            deliver_now()
            continue
        if err in FD_EXHAUSTED:
            raise from_errno(err, what)
        if not level:            # first failure: retry with a log to explain it
            level = 1
            continue
        if err == _errno.ENOSPC and size < uapi.BPF_LOG_MAX_SIZE:
            size = min(max(true_size(attr) + 1, size * 4), uapi.BPF_LOG_MAX_SIZE)
            continue
        break
    if err in (_errno.EPERM, _errno.EACCES) and not log.strip():
        raise from_errno(err, what)
    raise VerifierError(f"{what}: {os.strerror(err)}"
                        + (f"\n{_tail(log)}" if log else ""), log, err)


def _tail(log: str, lines: int = 8) -> str:
    return "\n".join(log.rstrip().splitlines()[-lines:])


def _set_btf_log(attr: uapi.bpf_attr_btf_load, buf: Optional[ctypes._CData], size: int,
                 level: int) -> None:
    fill(attr, btf_log_buf=_addr(buf), btf_log_size=size, btf_log_level=level)


def _set_prog_log(attr: uapi.bpf_attr_prog_load, buf: Optional[ctypes._CData], size: int,
                  level: int) -> None:
    fill(attr, log_buf=_addr(buf), log_size=size, log_level=level)


def btf_load(data: bytes, log_level: int = 0) -> Fd:
    """BPF_BTF_LOAD; VerifierError (with the BTF verifier log) on rejection."""
    raw = ctypes.create_string_buffer(data, len(data))
    attr = _attr(uapi.bpf_attr_btf_load, btf=_addr(raw), btf_size=len(data))
    fd, _ = deferred(lambda deliver_now: _load_with_log(
        uapi.BPF_BTF_LOAD, attr, _set_btf_log, lambda a: a.btf_log_true_size, "loading BTF",
        log_level, deliver_now), _close_first)
    return fd


def prog_load(prog_type: int, insns: bytes, license: str, name: str = "",
              expected_attach_type: int = 0, prog_flags: int = 0, kern_version: int = 0,
              btf_fd: int = 0, func_info: bytes = b"", func_info_rec_size: int = 0,
              line_info: bytes = b"", line_info_rec_size: int = 0,
              attach_btf_id: int = 0, attach_prog_fd: int = 0, ifindex: int = 0,
              log_level: int = 0, fd_array: Sequence[int] = ()) -> Tuple[Fd, str]:
    """BPF_PROG_LOAD; returns (fd, verifier log) or raises VerifierError.

    ``fd_array``: the fds that kfunc calls name by index (insn->off), e.g. module BTF."""
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    fds = (ctypes.c_int * len(fd_array))(*fd_array) if fd_array else None
    lic = ctypes.create_string_buffer(license.encode())
    fbuf = ctypes.create_string_buffer(func_info, len(func_info)) if func_info else None
    lbuf = ctypes.create_string_buffer(line_info, len(line_info)) if line_info else None
    attr = _attr(
        uapi.bpf_attr_prog_load,
        prog_type=prog_type, insn_cnt=len(insns) // 8, insns=_addr(ibuf),
        license=_addr(lic), kern_version=kern_version, prog_flags=prog_flags,
        prog_name=_obj_name(name), prog_ifindex=ifindex,
        expected_attach_type=expected_attach_type, prog_btf_fd=btf_fd,
        attach_btf_id=attach_btf_id, attach_prog_fd=attach_prog_fd)
    if fbuf is not None:
        fill(attr, func_info_rec_size=func_info_rec_size, func_info=_addr(fbuf),
             func_info_cnt=len(func_info) // func_info_rec_size)
    if lbuf is not None:
        fill(attr, line_info_rec_size=line_info_rec_size, line_info=_addr(lbuf),
             line_info_cnt=len(line_info) // line_info_rec_size)
    if fds is not None:
        fill(attr, fd_array=_addr(fds))
    return deferred(lambda deliver_now: _load_with_log(
        uapi.BPF_PROG_LOAD, attr, _set_prog_log, lambda a: a.log_true_size,
        f"loading program {name!r}{name_hint(name)}", log_level, deliver_now), _close_first)


def _close_first(result: Tuple[Fd, str]) -> None:
    result[0].close()


class TestRun(NamedTuple):
    retval: int
    data_out: bytes
    ctx_out: bytes
    duration_ns: int


def prog_test_run(prog_fd: int, data_in: bytes = b"", data_out_size: int = 0,
                  ctx_in: bytes = b"", ctx_out_size: int = 0, repeat: int = 0,
                  flags: int = 0, cpu: int = 0) -> Tuple[int, bytes, bytes, int]:
    """BPF_PROG_TEST_RUN; returns (retval, data_out, ctx_out, duration_ns).

    ``repeat`` 0 runs once (the kernel refuses any other value for raw_tp and
    syscall programs)."""
    din = ctypes.create_string_buffer(data_in, len(data_in)) if data_in else None
    dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
    cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = _attr(
        uapi.bpf_attr_test_run,
        prog_fd=prog_fd, data_size_in=len(data_in), data_size_out=data_out_size,
        data_in=_addr(din), data_out=_addr(dout), repeat=repeat,
        ctx_size_in=len(ctx_in), ctx_size_out=ctx_out_size, ctx_in=_addr(cin),
        ctx_out=_addr(cout), flags=flags, cpu=cpu)
    bpf(uapi.BPF_PROG_TEST_RUN, attr)
    return (attr.retval, dout.raw[:attr.data_size_out] if dout is not None else b"",
            cout.raw[:attr.ctx_size_out] if cout is not None else b"", attr.duration)


# ------------------------------------------------------------------ attachment

def link_create(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0,
                **extra: Any) -> Fd:
    """BPF_LINK_CREATE.  ``extra`` sets the per-type union, e.g.
    ``perf_event={"bpf_cookie": 1}`` or ``target_btf_id=5``."""
    attr = _attr(uapi.bpf_attr_link_create, prog_fd=prog_fd, target_fd=target_fd,
                                     attach_type=attach_type, flags=flags)
    fill(attr.u, **extra)
    return bpf_fd(uapi.BPF_LINK_CREATE, attr,
                  f"creating {uapi.enum_name(uapi.bpf_attach_type, attach_type)} link")


def prog_bind_map(prog_fd: int, map_fd: int) -> None:
    """BPF_PROG_BIND_MAP: the program holds a reference on the map until it goes."""
    attr = uapi.bpf_attr_prog_bind_map(prog_fd=prog_fd, map_fd=map_fd)
    bpf(uapi.BPF_PROG_BIND_MAP, attr, "binding a map to a program")


def link_detach(link_fd: int) -> None:
    bpf(uapi.BPF_LINK_DETACH, _attr(uapi.bpf_attr_fd, fd=link_fd))


def link_update(link_fd: int, new_fd: int, flags: int = 0, old_fd: int = 0) -> None:
    """BPF_LINK_UPDATE: a new program (or struct_ops map) behind a link; with
    BPF_F_REPLACE only if ``old_fd`` is the one there now."""
    bpf(uapi.BPF_LINK_UPDATE, uapi.bpf_attr_link_update(
        link_fd=link_fd, new_prog_fd=new_fd, flags=flags, old_prog_fd=old_fd))


def raw_tracepoint_open(name: Optional[str], prog_fd: int) -> Fd:
    """BPF_RAW_TRACEPOINT_OPEN (name None for tp_btf/fentry/fexit/lsm programs)."""
    nbuf = ctypes.create_string_buffer(_obj_bytes(name)) if name else None
    attr = _attr(uapi.bpf_attr_raw_tracepoint_open, name=_addr(nbuf), prog_fd=prog_fd)
    return bpf_fd(uapi.BPF_RAW_TRACEPOINT_OPEN, attr,
                  f"opening raw tracepoint {name or '(from BTF)'}")


def prog_attach(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = _attr(uapi.bpf_attr_prog_attach, target_fd=target_fd, attach_bpf_fd=prog_fd,
                                     attach_type=attach_type, attach_flags=flags)
    bpf(uapi.BPF_PROG_ATTACH, attr, f"attaching to {uapi.enum_name(uapi.bpf_attach_type, attach_type)}")


def prog_detach(prog_fd: int, target_fd: int, attach_type: int) -> None:
    attr = _attr(uapi.bpf_attr_prog_attach, target_fd=target_fd, attach_bpf_fd=prog_fd,
                                     attach_type=attach_type)
    bpf(uapi.BPF_PROG_DETACH, attr)


def iter_create(link_fd: int) -> Fd:
    return bpf_fd(uapi.BPF_ITER_CREATE, _attr(uapi.bpf_attr_iter_create, link_fd=link_fd))


# ------------------------------------------------------------------ objects, ids, pinning

def obj_pin(fd: int, path: str) -> None:
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    bpf(uapi.BPF_OBJ_PIN, _attr(uapi.bpf_attr_obj_pin, pathname=_addr(pbuf), bpf_fd=fd),
        f"pinning at {path}")


def obj_get(path: str, flags: int = 0) -> Fd:
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    return bpf_fd(uapi.BPF_OBJ_GET, _attr(uapi.bpf_attr_obj_pin, pathname=_addr(pbuf),
                                                          file_flags=flags),
                  f"opening pinned object {path}")


def next_id(cmd: int, start_id: int) -> Optional[int]:
    """BPF_{PROG,MAP,LINK,BTF}_GET_NEXT_ID: next id after start_id, None at the end."""
    attr = _attr(uapi.bpf_attr_get_id, start_id=start_id)
    return attr.next_id if _found(cmd, attr) else None


def fd_by_id(cmd: int, obj_id: int) -> Fd:
    """BPF_{PROG,MAP,LINK,BTF}_GET_FD_BY_ID."""
    return bpf_fd(cmd, _attr(uapi.bpf_attr_get_id, start_id=obj_id))


Info = TypeVar("Info", bound=ctypes.Structure)


def obj_info(fd: int, info_type: Type[Info], info: Optional[Info] = None) -> Info:
    """BPF_OBJ_GET_INFO_BY_FD into a fresh (or the given) info struct."""
    info = info if info is not None else info_type()
    attr = _attr(uapi.bpf_attr_info_by_fd, bpf_fd=fd, info_len=ctypes.sizeof(info),
                                    info=ctypes.addressof(info))
    bpf(uapi.BPF_OBJ_GET_INFO_BY_FD, attr)
    return info


# ------------------------------------------------------------------ perf events

def perf_event_open(attr: uapi.perf_event_attr, pid: int = -1, cpu: int = 0,
                    group_fd: int = -1, flags: int = uapi.PERF_FLAG_FD_CLOEXEC,
                    what: str = "perf_event_open") -> Fd:
    if _NR_PERF_EVENT_OPEN is None:
        raise BPFError(f"perf_event_open number unknown for {os.uname().machine}",
                       _errno.ENOSYS)
    fill(attr, size=ctypes.sizeof(attr))

    def make(deliver_now: Callable[[], None]) -> Fd:
        ret = _syscall(_NR_PERF_EVENT_OPEN, ctypes.byref(attr), ctypes.c_int(pid),
                       ctypes.c_int(cpu), ctypes.c_int(group_fd), ctypes.c_ulong(flags))
        if ret < 0:
            raise from_errno(ctypes.get_errno(), what)
        return Fd(ret)
    return deferred(make, _close_fd)


def ioctl(fd: int, request: int, arg: int = 0, what: str = "ioctl") -> int:
    ret: int = _ioctl(fd, request, arg)
    if ret < 0:
        raise from_errno(ctypes.get_errno(), what)
    return ret
