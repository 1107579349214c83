"""What is loaded in the kernel now: programs, maps, links and BTF objects, by id.

The kernel numbers every BPF object; ``BPF_*_GET_NEXT_ID`` walks the numbers,
``BPF_*_GET_FD_BY_ID`` opens one, ``BPF_OBJ_GET_INFO_BY_FD`` describes it.
:func:`programs`, :func:`maps`, :func:`links` and :func:`btfs` yield one
description per object (objects freed during the walk are passed over); the
``*_info(fd)`` functions describe one open fd; :func:`prog_code` fetches a
program's translated instructions with its func/line info and BTF.
``Program.from_id``, ``Map.from_id``/``from_pinned`` and ``Link.from_id`` open
owning handles (see :func:`open_map`, :func:`open_program`, :func:`open_link`).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, TypeVar

from .kernel import syscall
from . import uapi
from .kernel.btf_objects import btf_info as kernel_btf_info, btf_raw
from .btf import BTF, LineInfo
from .errors import BPFError
from .kernel.syscall import Fd
from .record import Record

if TYPE_CHECKING:
    from .link.hooks import Link
    from .maps import Map
    from .programs import Program

R = TypeVar("R")


def prog_type_name(value: int) -> str:
    """bpftool's spelling of a program type: "tracepoint", "sched_cls"."""
    return uapi.short_name(uapi.bpf_prog_type, value, "BPF_PROG_TYPE_", "type {}")


def map_type_name(value: int) -> str:
    """bpftool's spelling of a map type: "hash", "ringbuf"."""
    return uapi.short_name(uapi.bpf_map_type, value, "BPF_MAP_TYPE_", "type {}")


def link_type_name(value: int) -> str:
    """bpftool's spelling of a link type: "perf_event", "tcx"."""
    return uapi.short_name(uapi.bpf_link_type, value, "BPF_LINK_TYPE_", "type {}")


def attach_type_name(value: int) -> str:
    """bpftool's spelling of an attach type: "cgroup_inet_ingress", "tcx_ingress"."""
    return uapi.short_name(uapi.bpf_attach_type, value, "BPF_", "type {}")


# ------------------------------------------------------------------ walking ids

def ids(next_cmd: int) -> Iterator[int]:
    """Every id the kernel has for one object class (``BPF_PROG_GET_NEXT_ID``...)."""
    cur = 0
    while True:
        nxt = syscall.next_id(next_cmd, cur)
        if nxt is None:
            return
        yield nxt
        cur = nxt


def _walk(next_cmd: int, fd_cmd: int, describe: Callable[[int], R]) -> Iterator[R]:
    for obj_id in ids(next_cmd):
        try:
            with syscall.fd_by_id(fd_cmd, obj_id) as fd:
                yield describe(fd.fd)
        except BPFError as e:
            if e.errno != _errno.ENOENT:       # freed while we walked the list
                raise


def fdinfo(fd: int) -> Dict[str, str]:
    """/proc/self/fdinfo of a BPF fd (memlock, frozen, prog_tag...)."""
    out: Dict[str, str] = {}
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def _boot_epoch() -> float:
    """Wall-clock time of boot (load_time is nanoseconds since boot)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


# ------------------------------------------------------------------ programs

class LoadedProg(Record):
    """A loaded program, as BPF_OBJ_GET_INFO_BY_FD describes it."""

    _fields = ("id", "type", "name", "tag", "gpl_compatible", "load_time_ns", "uid", "map_ids",
               "btf_id", "xlated_len", "jited_len", "memlock", "run_time_ns", "run_cnt",
               "recursion_misses", "verified_insns", "attach_btf_obj_id", "attach_btf_id",
               "ifindex", "nr_func_info", "nr_line_info")
    __slots__ = _fields
    id: int
    type: int
    name: str
    tag: str                    # hex, as bpftool prints it
    gpl_compatible: bool
    load_time_ns: int           # since boot
    uid: int
    map_ids: List[int]
    btf_id: int
    xlated_len: int
    jited_len: int
    memlock: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    attach_btf_obj_id: int
    attach_btf_id: int
    ifindex: int
    nr_func_info: int
    nr_line_info: int

    def __init__(self, id: int, type: int, name: str, tag: str, gpl_compatible: bool,
                 load_time_ns: int, uid: int, map_ids: List[int], btf_id: int,
                 xlated_len: int, jited_len: int, memlock: int, run_time_ns: int,
                 run_cnt: int, recursion_misses: int, verified_insns: int,
                 attach_btf_obj_id: int, attach_btf_id: int, ifindex: int,
                 nr_func_info: int, nr_line_info: int) -> None:
        self.id = id
        self.type = type
        self.name = name
        self.tag = tag
        self.gpl_compatible = gpl_compatible
        self.load_time_ns = load_time_ns
        self.uid = uid
        self.map_ids = map_ids
        self.btf_id = btf_id
        self.xlated_len = xlated_len
        self.jited_len = jited_len
        self.memlock = memlock
        self.run_time_ns = run_time_ns
        self.run_cnt = run_cnt
        self.recursion_misses = recursion_misses
        self.verified_insns = verified_insns
        self.attach_btf_obj_id = attach_btf_obj_id
        self.attach_btf_id = attach_btf_id
        self.ifindex = ifindex
        self.nr_func_info = nr_func_info
        self.nr_line_info = nr_line_info

    @property
    def type_name(self) -> str:
        """"tracepoint", "xdp"..."""
        return prog_type_name(self.type)

    @property
    def loaded_at(self) -> float:
        """Load time as seconds since the epoch."""
        return _boot_epoch() + self.load_time_ns / 1e9

    def open(self) -> "Program":
        """A Program owning a new fd of this program."""
        return open_program(self.id)


def prog_info(fd: int) -> LoadedProg:
    """Describe a program fd (two calls: counts, then the map id array)."""
    info = syscall.obj_info(fd, uapi.bpf_prog_info)
    n = info.nr_map_ids
    map_ids = (ctypes.c_uint32 * max(n, 1))()
    if n:
        again = uapi.bpf_prog_info(nr_map_ids=n, map_ids=ctypes.addressof(map_ids))
        syscall.obj_info(fd, uapi.bpf_prog_info, again)
        n = min(n, again.nr_map_ids)
    memlock = fdinfo(fd).get("memlock", "0")
    return LoadedProg(
        id=info.id, type=info.type, name=info.name.decode(errors="replace"),
        tag=bytes(info.tag).hex(), gpl_compatible=bool(info.gpl_compatible),
        load_time_ns=info.load_time, uid=info.created_by_uid, map_ids=list(map_ids[:n]),
        btf_id=info.btf_id, xlated_len=info.xlated_prog_len, jited_len=info.jited_prog_len,
        memlock=int(memlock) if memlock.isdigit() else 0, run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt, recursion_misses=info.recursion_misses,
        verified_insns=info.verified_insns, attach_btf_obj_id=info.attach_btf_obj_id,
        attach_btf_id=info.attach_btf_id, ifindex=info.ifindex,
        nr_func_info=info.nr_func_info, nr_line_info=info.nr_line_info)


def programs() -> Iterator[LoadedProg]:
    """Every program loaded in the kernel, by id."""
    return _walk(uapi.BPF_PROG_GET_NEXT_ID, uapi.BPF_PROG_GET_FD_BY_ID, prog_info)


class ProgCode(Record):
    """A program's translated instructions as the kernel keeps them (after the
    verifier's rewrites: map fds became map ids, helper calls kernel addresses),
    its functions (insn offset -> BTF FUNC id), its lines and its BTF."""

    _fields = ("insns", "funcs", "lines", "btf")
    __slots__ = _fields
    insns: bytes
    funcs: Dict[int, int]
    lines: List[LineInfo]       # insn_off counts instructions here, not bytes
    btf: Optional[BTF]

    def __init__(self, insns: bytes, funcs: Dict[int, int], lines: List[LineInfo],
                 btf: Optional[BTF]) -> None:
        self.insns = insns
        self.funcs = funcs
        self.lines = lines
        self.btf = btf


def prog_code(fd: int) -> ProgCode:
    """BPF_OBJ_GET_INFO_BY_FD with xlated_prog_insns, func_info and line_info."""
    info = syscall.obj_info(fd, uapi.bpf_prog_info)
    if info.xlated_prog_len == 0:
        raise BPFError(f"program {info.id}: the kernel shows no instructions "
                       "(needs CAP_SYS_ADMIN / bpf_dump_raw_ok)", _errno.EPERM)
    insns = ctypes.create_string_buffer(info.xlated_prog_len)
    nf, fsz = info.nr_func_info, info.func_info_rec_size or 8
    nl, lsz = info.nr_line_info, info.line_info_rec_size or 16
    fbuf = ctypes.create_string_buffer(max(nf * fsz, 1))
    lbuf = ctypes.create_string_buffer(max(nl * lsz, 1))
    again = uapi.bpf_prog_info(
        xlated_prog_len=info.xlated_prog_len, xlated_prog_insns=ctypes.addressof(insns),
        nr_func_info=nf, func_info_rec_size=fsz, func_info=ctypes.addressof(fbuf),
        nr_line_info=nl, line_info_rec_size=lsz, line_info=ctypes.addressof(lbuf))
    syscall.obj_info(fd, uapi.bpf_prog_info, again)
    size = min(info.xlated_prog_len, again.xlated_prog_len)
    btf = fetch_btf(info.btf_id) if info.btf_id else None
    funcs = {}
    for i in range(min(nf, again.nr_func_info)):
        off, type_id = struct.unpack_from("<II", fbuf.raw, i * fsz)
        funcs[off] = type_id
    lines = []
    if btf is not None:
        strings = btf._strtab
        for i in range(min(nl, again.nr_line_info)):
            off, file_off, line_off, line_col = struct.unpack_from("<IIII", lbuf.raw, i * lsz)
            lines.append(LineInfo(off, strings.get(file_off), strings.get(line_off),
                                  line_col >> 10, line_col & 0x3FF))   # BPF_LINE_INFO_*
    return ProgCode(insns.raw[:size], funcs, lines, btf)


# ------------------------------------------------------------------ maps

class LoadedMap(Record):
    """A map in the kernel, as BPF_OBJ_GET_INFO_BY_FD describes it."""

    _fields = ("id", "type", "name", "key_size", "value_size", "max_entries", "flags",
               "map_extra", "btf_id", "btf_key_type_id", "btf_value_type_id",
               "btf_vmlinux_value_type_id", "ifindex", "memlock", "frozen")
    __slots__ = _fields
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    map_extra: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    ifindex: int
    memlock: int
    frozen: bool

    def __init__(self, id: int, type: int, name: str, key_size: int, value_size: int,
                 max_entries: int, flags: int, map_extra: int, btf_id: int,
                 btf_key_type_id: int, btf_value_type_id: int,
                 btf_vmlinux_value_type_id: int, ifindex: int, memlock: int,
                 frozen: bool) -> None:
        self.id = id
        self.type = type
        self.name = name
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.map_extra = map_extra
        self.btf_id = btf_id
        self.btf_key_type_id = btf_key_type_id
        self.btf_value_type_id = btf_value_type_id
        self.btf_vmlinux_value_type_id = btf_vmlinux_value_type_id
        self.ifindex = ifindex
        self.memlock = memlock
        self.frozen = frozen

    @property
    def type_name(self) -> str:
        """"hash", "ringbuf"..."""
        return map_type_name(self.type)

    def open(self) -> "Map":
        """A Map owning a new fd of this map."""
        return open_map(self.id)


def map_info(fd: int) -> LoadedMap:
    """Describe a map fd."""
    info = syscall.obj_info(fd, uapi.bpf_map_info)
    extra = fdinfo(fd)
    memlock = extra.get("memlock", "0")
    return LoadedMap(
        id=info.id, type=info.type, name=info.name.decode(errors="replace"),
        key_size=info.key_size, value_size=info.value_size, max_entries=info.max_entries,
        flags=info.map_flags, map_extra=info.map_extra, btf_id=info.btf_id,
        btf_key_type_id=info.btf_key_type_id, btf_value_type_id=info.btf_value_type_id,
        btf_vmlinux_value_type_id=info.btf_vmlinux_value_type_id, ifindex=info.ifindex,
        memlock=int(memlock) if memlock.isdigit() else 0,
        frozen=extra.get("frozen", "0") not in ("0", ""))


def maps() -> Iterator[LoadedMap]:
    """Every map in the kernel, by id."""
    return _walk(uapi.BPF_MAP_GET_NEXT_ID, uapi.BPF_MAP_GET_FD_BY_ID, map_info)


def _map_from_fd(fd: Fd, where: str) -> "Map":
    from .maps import Map
    from .obj.spec import MapSpec
    try:
        info = map_info(fd.fd)
        btf = fetch_btf(info.btf_id) if info.btf_id else None
    except BaseException:
        fd.close()
        raise
    spec = MapSpec(info.name, info.type, info.key_size, info.value_size, info.max_entries,
                   info.flags, map_extra=info.map_extra,
                   btf_key_type_id=info.btf_key_type_id if btf is not None else 0,
                   btf_value_type_id=info.btf_value_type_id if btf is not None else 0)
    m = Map(spec, btf)
    m.adopt(fd)
    if where:
        m.pin_path = where
    return m


def open_map(map_id: int) -> "Map":
    """A Map owning a new fd of the kernel map ``map_id``, with its BTF when it has one."""
    return _map_from_fd(syscall.fd_by_id(uapi.BPF_MAP_GET_FD_BY_ID, map_id), "")


def open_pinned_map(path: str) -> "Map":
    """A Map owning an fd of the map pinned at ``path``."""
    return _map_from_fd(open_pinned(path, "map"), path)


def open_pinned(path: str, want: str) -> Fd:
    """An fd of the object pinned at ``path``, checked to be a ``want`` ("map",
    "prog", "link"): every BPF object answers OBJ_GET_INFO_BY_FD, so the kind
    is told by the fd's anon inode name."""
    fd = syscall.obj_get(path)
    try:
        target = os.readlink(f"/proc/self/fd/{fd.fd}")
    except OSError:
        target = ""
    if target != f"anon_inode:bpf-{want}":
        fd.close()
        kind = target[len("anon_inode:"):] if target.startswith("anon_inode:") else "unknown"
        raise BPFError(f"{path} is not a pinned BPF {want} (it is a {kind})", _errno.EINVAL)
    return fd


def open_program(prog_id: int) -> "Program":
    """A Program owning a new fd of the loaded program ``prog_id``."""
    from .programs import Program
    fd = syscall.fd_by_id(uapi.BPF_PROG_GET_FD_BY_ID, prog_id)
    try:
        info = prog_info(fd.fd)
    except BaseException:
        fd.close()
        raise
    prog = Program(info.name, "", None, "", bytearray())
    prog.type = info.type
    prog._fd = fd
    return prog


# ------------------------------------------------------------------ BTF objects

class LoadedBtf(Record):
    """A BTF object in the kernel (vmlinux, a module's, or one a loader loaded)."""

    _fields = ("id", "name", "size", "kernel")
    __slots__ = _fields
    id: int
    name: str
    size: int
    kernel: bool

    def __init__(self, id: int, name: str, size: int, kernel: bool) -> None:
        self.id = id
        self.name = name
        self.size = size
        self.kernel = kernel


def btf_info(fd: int) -> LoadedBtf:
    """Describe a BTF fd."""
    info, name = kernel_btf_info(fd)
    return LoadedBtf(info.id, name, info.btf_size, bool(info.kernel_btf))


def btfs() -> Iterator[LoadedBtf]:
    """Every BTF object in the kernel, by id."""
    return _walk(uapi.BPF_BTF_GET_NEXT_ID, uapi.BPF_BTF_GET_FD_BY_ID, btf_info)


def fetch_btf(btf_id: int) -> BTF:
    """Parse the BTF object ``btf_id`` (split BTF of a module goes on vmlinux's)."""
    with syscall.fd_by_id(uapi.BPF_BTF_GET_FD_BY_ID, btf_id) as fd:
        raw = btf_raw(fd.fd)
        info = btf_info(fd.fd)
    base = None
    if info.kernel and info.name != "vmlinux":
        from .btf import kernel
        base = kernel.vmlinux()
    return BTF.parse(raw, base=base, section=f"BTF object {btf_id} ({info.name or 'user'})")


# ------------------------------------------------------------------ links

class LoadedLink(Record):
    """A BPF link, with what bpftool shows for its type in ``details``
    (attach_type, ifindex, tp_name, cgroup_id, map_id, ...)."""

    _fields = ("id", "type", "prog_id", "details")
    __slots__ = _fields
    id: int
    type: int
    prog_id: int
    details: Dict[str, Any]

    def __init__(self, id: int, type: int, prog_id: int,
                 details: Optional[Dict[str, Any]] = None) -> None:
        self.id = id
        self.type = type
        self.prog_id = prog_id
        self.details = {} if details is None else details

    @property
    def type_name(self) -> str:
        """"perf_event", "xdp"..."""
        return link_type_name(self.type)

    def open(self) -> "Link":
        """A Link owning a new fd of this link."""
        return open_link(self.id)


class _Buffers:
    """Buffers the kernel fills on the second BPF_OBJ_GET_INFO_BY_FD call."""

    def __init__(self) -> None:
        self.bufs: Dict[str, "ctypes.Array[ctypes.c_char]"] = {}

    def make(self, key: str, size: int) -> int:
        """A zeroed buffer of ``size`` bytes under ``key``; its address."""
        buf = self.bufs[key] = ctypes.create_string_buffer(max(size, 1))
        return ctypes.addressof(buf)

    def text(self, key: str) -> str:
        """The NUL-terminated string the kernel wrote under ``key``."""
        buf = self.bufs.get(key)
        return buf.value.decode(errors="replace") if buf is not None else ""

    def u64s(self, key: str, count: int) -> List[int]:
        """The ``count`` u64s the kernel wrote under ``key``."""
        buf = self.bufs.get(key)
        return list(struct.unpack_from(f"<{count}Q", buf.raw)) if buf is not None else []


def link_info(fd: int) -> LoadedLink:
    """Describe a link fd, names and arrays included (a second call fills them)."""
    info = syscall.obj_info(fd, uapi.bpf_link_info)
    u = uapi.bpf_link_info_union.from_buffer(info.extra)
    bufs = _Buffers()
    kind = info.type
    if _prepare_buffers(kind, u, bufs):
        syscall.obj_info(fd, uapi.bpf_link_info, info)
    return LoadedLink(info.id, kind, info.prog_id, _details(kind, u, bufs))


def _prepare_buffers(kind: int, u: uapi.bpf_link_info_union, bufs: _Buffers) -> bool:
    """Point the union's name/array fields at buffers sized from the first answer."""
    if kind == uapi.BPF_LINK_TYPE_RAW_TRACEPOINT and u.raw_tracepoint.tp_name_len:
        rt = u.raw_tracepoint
        rt.tp_name = bufs.make("name", rt.tp_name_len)
    elif kind == uapi.BPF_LINK_TYPE_ITER and u.iter.target_name_len:
        u.iter.target_name = bufs.make("name", u.iter.target_name_len)
    elif kind == uapi.BPF_LINK_TYPE_KPROBE_MULTI and u.kprobe_multi.count:
        km = u.kprobe_multi
        km.addrs = bufs.make("addrs", 8 * km.count)
        km.cookies = bufs.make("cookies", 8 * km.count)
    elif kind == uapi.BPF_LINK_TYPE_UPROBE_MULTI and (u.uprobe_multi.count or
                                                       u.uprobe_multi.path_size):
        um = u.uprobe_multi
        um.path = bufs.make("name", um.path_size)
        um.offsets = bufs.make("offsets", 8 * um.count)
        um.ref_ctr_offsets = bufs.make("ref_ctr_offsets", 8 * um.count)
        um.cookies = bufs.make("cookies", 8 * um.count)
    elif kind == uapi.BPF_LINK_TYPE_PERF_EVENT:
        pe = u.perf_event
        sub = _perf_sub(pe)
        if sub is None or not sub.name_len:
            return False
        name_field = {"uprobe": "file_name", "kprobe": "func_name",
                      "tracepoint": "tp_name"}[_perf_kind(pe.type)]
        setattr(sub, name_field, bufs.make("name", sub.name_len))
    else:
        return False
    return True


def _perf_kind(perf_type: int) -> str:
    return {uapi.BPF_PERF_EVENT_UPROBE: "uprobe", uapi.BPF_PERF_EVENT_URETPROBE: "uprobe",
            uapi.BPF_PERF_EVENT_KPROBE: "kprobe", uapi.BPF_PERF_EVENT_KRETPROBE: "kprobe",
            uapi.BPF_PERF_EVENT_TRACEPOINT: "tracepoint",
            uapi.BPF_PERF_EVENT_EVENT: "event"}.get(perf_type, "")


def _perf_sub(pe: Any) -> Any:
    kind = _perf_kind(pe.type)
    return getattr(pe.u, kind) if kind and kind != "event" else None


_PERF_EVENT_TYPE_NAMES = {
    uapi.BPF_PERF_EVENT_UPROBE: "uprobe", uapi.BPF_PERF_EVENT_URETPROBE: "uretprobe",
    uapi.BPF_PERF_EVENT_KPROBE: "kprobe", uapi.BPF_PERF_EVENT_KRETPROBE: "kretprobe",
    uapi.BPF_PERF_EVENT_TRACEPOINT: "tracepoint", uapi.BPF_PERF_EVENT_EVENT: "event"}


def _ifname(ifindex: int) -> str:
    from .kernel.sysinfo import interface_name
    return interface_name(ifindex)


def _details(kind: int, u: uapi.bpf_link_info_union, bufs: _Buffers) -> Dict[str, Any]:
    L = uapi
    if kind == L.BPF_LINK_TYPE_RAW_TRACEPOINT:
        return {"tp_name": bufs.text("name"), "cookie": u.raw_tracepoint.cookie}
    if kind == L.BPF_LINK_TYPE_TRACING:
        t = u.tracing
        return {"attach_type": attach_type_name(t.attach_type), "target_obj_id":
                t.target_obj_id, "target_btf_id": t.target_btf_id, "cookie": t.cookie}
    if kind == L.BPF_LINK_TYPE_CGROUP:
        return {"cgroup_id": u.cgroup.cgroup_id,
                "attach_type": attach_type_name(u.cgroup.attach_type)}
    if kind == L.BPF_LINK_TYPE_ITER:
        it = u.iter
        out: Dict[str, Any] = {"target_name": bufs.text("name")}
        target = out["target_name"]
        if target in ("bpf_map_elem", "bpf_sk_storage_map"):
            out["map_id"] = it.map_id
        elif target == "cgroup":
            out["cgroup_id"] = it.target.cgroup.cgroup_id
            out["order"] = it.target.cgroup.order
        elif target in ("task", "task_file", "task_vma"):
            out["tid"], out["pid"] = it.target.task.tid, it.target.task.pid
        return out
    if kind == L.BPF_LINK_TYPE_NETNS:
        return {"netns_ino": u.netns.netns_ino,
                "attach_type": attach_type_name(u.netns.attach_type)}
    if kind == L.BPF_LINK_TYPE_XDP:
        return {"ifindex": u.xdp.ifindex, "devname": _ifname(u.xdp.ifindex)}
    if kind == L.BPF_LINK_TYPE_STRUCT_OPS:
        return {"map_id": u.struct_ops.map_id}
    if kind == L.BPF_LINK_TYPE_NETFILTER:
        nf = u.netfilter
        return {"pf": nf.pf, "hook": nf.hooknum, "prio": nf.priority, "flags": nf.flags}
    if kind == L.BPF_LINK_TYPE_KPROBE_MULTI:
        km = u.kprobe_multi
        return {"retprobe": bool(km.flags & L.BPF_F_KPROBE_MULTI_RETURN), "func_cnt": km.count,
                "missed": km.missed, "addrs": bufs.u64s("addrs", km.count),
                "cookies": bufs.u64s("cookies", km.count)}
    if kind == L.BPF_LINK_TYPE_UPROBE_MULTI:
        um = u.uprobe_multi
        return {"path": bufs.text("name"), "func_cnt": um.count, "pid": um.pid,
                "retprobe": bool(um.flags & L.BPF_F_UPROBE_MULTI_RETURN),
                "offsets": bufs.u64s("offsets", um.count),
                "ref_ctr_offsets": bufs.u64s("ref_ctr_offsets", um.count),
                "cookies": bufs.u64s("cookies", um.count)}
    if kind == L.BPF_LINK_TYPE_PERF_EVENT:
        return _perf_details(u.perf_event, bufs)
    if kind in (L.BPF_LINK_TYPE_TCX, L.BPF_LINK_TYPE_NETKIT):
        sub = u.tcx if kind == L.BPF_LINK_TYPE_TCX else u.netkit
        return {"ifindex": sub.ifindex, "devname": _ifname(sub.ifindex),
                "attach_type": attach_type_name(sub.attach_type)}
    if kind == L.BPF_LINK_TYPE_SOCKMAP:
        return {"map_id": u.sockmap.map_id,
                "attach_type": attach_type_name(u.sockmap.attach_type)}
    return {}


def _perf_details(pe: Any, bufs: _Buffers) -> Dict[str, Any]:
    out: Dict[str, Any] = {"event_type": _PERF_EVENT_TYPE_NAMES.get(pe.type, str(pe.type))}
    kind = _perf_kind(pe.type)
    if kind == "uprobe":
        up = pe.u.uprobe
        out.update(file=bufs.text("name"), offset=up.offset, cookie=up.cookie,
                   ref_ctr_offset=up.ref_ctr_offset)
    elif kind == "kprobe":
        kp = pe.u.kprobe
        out.update(func=bufs.text("name"), offset=kp.offset, addr=kp.addr, missed=kp.missed,
                   cookie=kp.cookie)
    elif kind == "tracepoint":
        out.update(tracepoint=bufs.text("name"), cookie=pe.u.tracepoint.cookie)
    elif kind == "event":
        ev = pe.u.event
        out.update(type=ev.type, config=ev.config, cookie=ev.cookie)
    return out


def links() -> Iterator[LoadedLink]:
    """Every BPF link in the kernel, by id."""
    return _walk(uapi.BPF_LINK_GET_NEXT_ID, uapi.BPF_LINK_GET_FD_BY_ID, link_info)


def open_link(link_id: int) -> "Link":
    """A Link owning a new fd of link ``link_id`` (an IterLink for iterators).
    Closing it does not detach what another fd or a pin holds; ``detach()`` does."""
    from .link.hooks import IterLink, Link
    fd = syscall.fd_by_id(uapi.BPF_LINK_GET_FD_BY_ID, link_id)
    try:
        kind = syscall.obj_info(fd.fd, uapi.bpf_link_info).type
    except BaseException:
        fd.close()
        raise
    cls = IterLink if kind == uapi.BPF_LINK_TYPE_ITER else Link
    return cls(fd, desc=f"id {link_id}")
