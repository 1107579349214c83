"""Links: a loaded program attached to its hook, and one attach method per kind.

:func:`attach_program` looks the method up in :data:`METHODS` by the
program's ``SecDef.attach`` (see :mod:`pybpf.obj.sections`), checks the options
against what that method accepts, and wraps every failure into an
:class:`~pybpf.errors.AttachError` naming the program and its section.

A :class:`Link` owns every fd of its attachment (a BPF link, plus the perf
event under a kprobe/uprobe/tracepoint link); ``close()`` detaches.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import io
import os
from operator import methodcaller
from typing import (TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, NamedTuple,
                    Optional, Sequence, Tuple, cast)

from ..kernel import syscall, fs as tracefs
from .. import uapi
from ..obj import uprobe as _uprobe
from ..errors import AttachError, BPFError, BPFPermissionError
from ..kernel.sigdefer import deferred
from ..kernel.syscall import Fd
from ..kernel.sysinfo import SYSCALL_PREFIX, interface_index, syscall_func_name
from .program import ProgramView

if TYPE_CHECKING:
    from ..programs import Program


Opts = Dict[str, Any]


class LinkInfo(NamedTuple):
    type: int
    id: int
    prog_id: int

    @property
    def type_name(self) -> str:
        return uapi.short_name(uapi.bpf_link_type, self.type, "BPF_LINK_TYPE_", "{}")


class Link:
    """One attachment; closing it (or leaving ``with``) detaches the program.

    Its fds are closed in order: the BPF link first, then what it sits on.
    """

    def __init__(self, fd: Fd, *held: Fd, desc: str = ""):
        self._fds: List[Fd] = [fd, *held]
        self.desc = desc

    @property
    def fd(self) -> int:
        """The BPF link's fd (or the perf event's, for perf-event based links)."""
        return self._fds[0].fd

    @property
    def closed(self) -> bool:
        """Whether the link has been closed (the program is detached)."""
        return self._fds[0].closed

    def close(self) -> None:
        """Detach by closing every fd; safe to call twice."""
        for fd in self._fds:
            fd.close()

    def detach(self) -> None:
        """Detach from the hook even if the link is pinned or shared elsewhere
        (BPF_LINK_DETACH), then close.  Kinds without BPF_LINK_DETACH just close."""
        if not self.closed:
            try:
                syscall.link_detach(self.fd)
            except BPFError as e:
                if e.errno not in (_errno.EOPNOTSUPP, _errno.EINVAL):
                    raise
        self.close()

    def info(self) -> LinkInfo:
        """The kernel's bpf_link_info head: link type, link id, program id."""
        info = syscall.obj_info(self.fd, uapi.bpf_link_info)
        return LinkInfo(info.type, info.id, info.prog_id)

    def pin(self, path: str) -> None:
        """Pin on a BPF filesystem so the attachment outlives this process;
        /sys/fs/bpf is mounted when missing."""
        tracefs.ensure_bpffs_for(path)
        syscall.obj_pin(self.fd, path)

    @classmethod
    def from_id(cls, link_id: int) -> "Link":
        """Open the BPF link ``link_id`` (an :class:`IterLink` for iterator links)."""
        from ..loaded import open_link
        return open_link(link_id)

    @classmethod
    def from_pinned(cls, path: str) -> "Link":
        """Re-open a pinned link (an :class:`IterLink` for iterator links)."""
        fd = syscall.obj_get(path)
        try:
            # every BPF object answers OBJ_GET_INFO_BY_FD: tell links by their inode
            if os.readlink(f"/proc/self/fd/{fd.fd}") != "anon_inode:bpf-link":
                raise AttachError(f"{path} is not a pinned BPF link")
            kind = syscall.obj_info(fd.fd, uapi.bpf_link_info).type
        except BaseException:
            fd.close()
            raise
        link_cls = IterLink if kind == uapi.BPF_LINK_TYPE_ITER else Link
        return link_cls(fd, desc=f"pinned {path}")

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fds[0].fd}"
        return f"<{type(self).__name__} {self.desc} {state}>"


class PerfEventLink(Link):
    """A program attached to a perf event with PERF_EVENT_IOC_SET_BPF (kernels
    without BPF perf links): there is no BPF link, only the perf event fd."""

    def close(self) -> None:
        if not self.closed:
            try:
                syscall.ioctl(self.fd, uapi.PERF_EVENT_IOC_DISABLE)
            except BPFError:
                pass        # closing the event detaches the program anyway
        super().close()

    def detach(self) -> None:
        self.close()

    def _no_link(self, what: str) -> BPFError:
        return AttachError(f"{what}: attached with PERF_EVENT_IOC_SET_BPF, not a BPF link",
                           _errno.EOPNOTSUPP)

    def info(self) -> LinkInfo:
        raise self._no_link("link info")

    def pin(self, path: str) -> None:
        raise self._no_link(f"pinning at {path}")


class IterLink(Link):
    """A BPF iterator: each :meth:`open` starts a new pass over the objects."""

    def open(self) -> io.BufferedReader:
        """A file whose read() returns what the program printed (BPF_ITER_CREATE)."""
        fd = syscall.iter_create(self.fd)

        def make(deliver_now: Callable[[], None]) -> io.BufferedReader:
            raw = fd.detach()
            try:
                return os.fdopen(raw, "rb")
            except BaseException:
                os.close(raw)
                raise
        return deferred(make, methodcaller("close"))

    def read(self) -> bytes:
        """One whole pass of the iterator."""
        with self.open() as f:
            return f.read()


# ------------------------------------------------------------------ helpers


def _u64_array(values: Sequence[int]) -> Optional[ctypes.Array[ctypes.c_uint64]]:
    return (ctypes.c_uint64 * len(values))(*values) if values else None


def _addr(buf: Optional[ctypes.Array[Any]]) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _ifindex(opts: Opts, what: str) -> int:
    if opts.get("ifindex"):
        return int(opts["ifindex"])
    name = opts.get("interface")
    if not name:
        raise AttachError(f"{what} needs ifindex= or interface=")
    index = interface_index(name)
    if not index:
        raise AttachError(f"no network interface named {name!r}")
    return index


def _open_path(path: str, flags: int, what: str) -> Fd:
    try:
        return syscall.open_fd(path, flags, f"opening {what} {path}")
    except BPFError as e:
        raise AttachError(str(e), e.errno) from None


def _attach_perf_event(prog: ProgramView, pfd: Fd, opts: Opts, desc: str) -> Link:
    """Attach to an open perf event (taking ownership of pfd): a BPF perf link,
    or PERF_EVENT_IOC_SET_BPF where the kernel refuses perf links."""
    cookie = int(opts.get("cookie", 0))
    try:
        if not opts.get("force_ioctl_attach"):
            try:
                lfd = syscall.link_create(prog.fd, pfd.fd, uapi.BPF_PERF_EVENT,
                                          perf_event={"bpf_cookie": cookie})
            except BPFError as e:
                if e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP):
                    raise
            else:
                link = Link(lfd, pfd, desc=desc)
                try:
                    syscall.ioctl(pfd.fd, uapi.PERF_EVENT_IOC_ENABLE, 0, "enabling perf event")
                except BaseException:
                    link.close()
                    raise
                return link
        if cookie:
            raise AttachError("a bpf cookie needs BPF perf links (kernel 5.15+)")
        syscall.ioctl(pfd.fd, uapi.PERF_EVENT_IOC_SET_BPF, prog.fd, "PERF_EVENT_IOC_SET_BPF")
        syscall.ioctl(pfd.fd, uapi.PERF_EVENT_IOC_ENABLE, 0, "enabling perf event")
    except BaseException:
        pfd.close()
        raise
    return PerfEventLink(pfd, desc=desc)


def _link(prog: ProgramView, target_fd: int, attach_type: int, desc: str, flags: int = 0,
          **extra: Any) -> Link:
    return Link(syscall.link_create(prog.fd, target_fd, attach_type, flags, **extra),
                desc=desc)


# ------------------------------------------------------------------ tracepoints


def attach_tracepoint(prog: ProgramView, target: str, opts: Opts) -> Link:
    tp = opts.get("tracepoint") or target
    category, sep, name = tp.partition("/")
    if not sep or not category or not name:
        raise AttachError(f"tracepoint {tp!r} must be CATEGORY/NAME (as SEC(\"tp/sched/"
                          "sched_switch\"))")
    attr = syscall.fill(uapi.perf_event_attr(), type=uapi.PERF_TYPE_TRACEPOINT,
                        config=tracefs.tracepoint_id(category, name))
    pfd = syscall.perf_event_open(attr, pid=-1, cpu=0, what=f"opening tracepoint {tp}")
    return _attach_perf_event(prog, pfd, opts, f"tracepoint {tp}")


def attach_raw_tracepoint(prog: ProgramView, target: str, opts: Opts) -> Link:
    # BPF_RAW_TRACEPOINT_OPEN: link_create has no way to name the tracepoint
    # for BPF_PROG_TYPE_RAW_TRACEPOINT programs.
    tp = opts.get("tracepoint") or target
    if not tp:
        raise AttachError("raw tracepoint name missing (SEC(\"raw_tp/NAME\") or tracepoint=)")
    return Link(syscall.raw_tracepoint_open(tp, prog.fd), desc=f"raw_tp {tp}")


# ------------------------------------------------------------------ BTF-based tracing


def attach_tracing(prog: ProgramView, target: str, opts: Opts) -> Link:
    """tp_btf/fentry/fexit/fmod_ret/lsm (and freplace): the hook was fixed at load
    time by attach_btf_id; older kernels only take BPF_RAW_TRACEPOINT_OPEN."""
    cookie = int(opts.get("cookie", 0))
    target_fd = int(opts.get("target_fd", 0))
    btf_id = 0
    if target_fd:
        from .attach_btf import prog_func_btf_id
        func = opts.get("func_name") or target
        btf_id = prog_func_btf_id(target_fd, func)
    desc = prog.section
    try:
        return _link(prog, target_fd, prog.expected_attach_type, desc,
                     tracing={"target_btf_id": btf_id, "cookie": cookie})
    except BPFError as e:
        if e.errno != _errno.EINVAL or cookie or target_fd:
            raise
    return Link(syscall.raw_tracepoint_open(None, prog.fd), desc=desc)


def attach_iter(prog: ProgramView, target: str, opts: Opts) -> IterLink:
    info = uapi.bpf_iter_link_info()
    if "map_fd" in opts:
        info.map.map_fd = int(opts["map_fd"])
    for key in ("tid", "pid", "pid_fd"):
        if key in opts:
            setattr(info.task, key, int(opts[key]))
    if "cgroup_fd" in opts or "cgroup_id" in opts:
        info.cgroup.cgroup_fd = int(opts.get("cgroup_fd", 0))
        info.cgroup.cgroup_id = int(opts.get("cgroup_id", 0))
        info.cgroup.order = int(opts.get("order", uapi.BPF_CGROUP_ITER_ORDER_UNSPEC))
    given = bool(bytes(info).strip(b"\0"))
    lfd = syscall.link_create(prog.fd, 0, uapi.BPF_TRACE_ITER, iter={
        "iter_info": ctypes.addressof(info) if given else 0,
        "iter_info_len": ctypes.sizeof(info) if given else 0})
    return IterLink(lfd, desc=f"iter {target}")


# ------------------------------------------------------------------ kprobes

KPROBE_PMU_HINT = " - kernel built without CONFIG_KPROBES?"


def parse_kprobe_target(target: str, retprobe: bool = False) -> Tuple[str, int]:
    """"func" or "func+OFFSET" (libbpf's %[a-zA-Z0-9_.]+%li) -> (func, offset)."""
    func, plus, off = target.partition("+")
    offset = _uprobe.parse_number(off) if plus else 0
    if not func or offset is None or not all(c.isalnum() or c in "_." for c in func):
        raise AttachError(f"kprobe target {target!r} must be FUNCTION[+OFFSET]")
    if retprobe and offset:
        raise AttachError(f"kprobe target {target!r}: kretprobes take no offset")
    return func, offset


def _probe_event(pmu: str, retprobe: bool, config1: int, config2: int,
                 ref_ctr_offset: int = 0) -> uapi.perf_event_attr:
    pmu_type = tracefs.pmu_type(pmu, KPROBE_PMU_HINT if pmu == "kprobe" else "")
    config = 0
    if retprobe:
        config |= 1 << tracefs.pmu_format_shift(pmu, "retprobe")
    if ref_ctr_offset:
        config |= ref_ctr_offset << tracefs.pmu_format_shift(pmu, "ref_ctr_offset")
    return syscall.fill(uapi.perf_event_attr(), type=pmu_type, config=config,
                        config1=config1, config2=config2)


def _kprobe(prog: ProgramView, func: str, offset: int, retprobe: bool, opts: Opts) -> Link:
    name = ctypes.create_string_buffer(func.encode())
    attr = _probe_event("kprobe", retprobe, ctypes.addressof(name), offset)
    kind = "kretprobe" if retprobe else "kprobe"
    pfd = syscall.perf_event_open(attr, pid=-1, cpu=0, what=f"creating {kind} on {func}")
    return _attach_perf_event(prog, pfd, opts, f"{kind} {func}+{offset:#x}")


def attach_kprobe(prog: ProgramView, target: str, opts: Opts) -> Link:
    retprobe = bool(opts.get("retprobe", prog.section.startswith("kretprobe")))
    if opts.get("func_name"):
        func, offset = opts["func_name"], int(opts.get("offset", 0))
    else:
        func, offset = parse_kprobe_target(target, retprobe)
    return _kprobe(prog, func, offset, retprobe, opts)


@functools.lru_cache(maxsize=None)
def _kallsyms_has(symbol: str) -> bool:
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip("\n").split(" ")[2:3] == [symbol] for line in f)
    except OSError:
        return False


def attach_ksyscall(prog: ProgramView, target: str, opts: Opts) -> Link:
    name = opts.get("syscall_name") or target
    if not name:
        raise AttachError("syscall name missing (SEC(\"ksyscall/NAME\") or syscall_name=)")
    machine = os.uname().machine
    prefix = SYSCALL_PREFIX.get(machine)
    wrapped = bool(prefix) and _kallsyms_has(f"__{prefix}_sys_bpf")
    retprobe = bool(opts.get("retprobe", prog.section.startswith("kretsyscall")))
    return _kprobe(prog, syscall_func_name(name, machine, wrapped), 0, retprobe, opts)


def kernel_functions(pattern: str) -> List[str]:
    """Traceable kernel functions matching a glob: <tracefs>/available_filter_functions,
    else the text symbols of /proc/kallsyms."""
    names: List[str] = []
    try:
        with open(os.path.join(tracefs.tracefs(), "available_filter_functions")) as f:
            names = [line.split()[0] for line in f if line.strip()]
    except (OSError, AttachError):
        with open("/proc/kallsyms") as f:
            names = [p[2] for p in (line.split() for line in f)
                     if len(p) >= 3 and p[1] in "tT"]
    match = _uprobe.glob(pattern).fullmatch
    return sorted({n for n in names if match(n)})


def attach_kprobe_multi(prog: ProgramView, target: str, opts: Opts) -> Link:
    """kprobe.multi / kretprobe.multi, and kprobe.session (entry and return in one
    program, as libbpf's attach_kprobe_session: no retprobe flag)."""
    session = prog.expected_attach_type == uapi.BPF_TRACE_KPROBE_SESSION
    retprobe = bool(opts.get("retprobe", prog.section.startswith("kretprobe.multi")))
    if session and retprobe:
        raise AttachError("kprobe.session programs run on entry and return: retprobe= "
                          "does not apply")
    syms = list(opts.get("syms") or ())
    if not syms:
        pattern = opts.get("pattern") or target
        if not pattern:
            raise AttachError("kprobe.multi needs a pattern (SEC(\"kprobe.multi/PATTERN\")"
                              ", pattern= or syms=)")
        syms = kernel_functions(pattern)
        if not syms:
            raise AttachError(f"no kernel function matches {pattern!r}")
    names = [ctypes.create_string_buffer(s.encode()) for s in syms]
    ptrs = (ctypes.c_void_p * len(names))(*[ctypes.addressof(n) for n in names])
    cookies = _u64_array(list(opts.get("cookies") or ()))
    attach_type = uapi.BPF_TRACE_KPROBE_SESSION if session else uapi.BPF_TRACE_KPROBE_MULTI
    lfd = syscall.link_create(prog.fd, 0, attach_type, kprobe_multi={
        "flags": uapi.BPF_F_KPROBE_MULTI_RETURN if retprobe else 0, "cnt": len(syms),
        "syms": ctypes.addressof(ptrs), "cookies": _addr(cookies)})
    kind = "kprobe.session" if session else "kprobe.multi"
    return Link(lfd, desc=f"{kind} {len(syms)} functions")


# ------------------------------------------------------------------ uprobes


def _uprobe_where(target: str, opts: Opts, retprobe: bool) -> Tuple[str, int, str]:
    """(binary path, file offset, description) from opts or the SEC target."""
    if opts.get("binary"):
        binary, func = opts["binary"], opts.get("func_name") or ""
        offset = int(opts.get("offset", 0))
    elif target:
        binary, func, offset = _uprobe.parse_target(target, retprobe)
    else:
        raise AttachError("uprobe needs a target: SEC(\"uprobe/BINARY:FUNCTION\") or "
                          "binary= with func_name= or offset=")
    path = _uprobe.resolve_binary(binary)
    if func:
        offset += _uprobe.func_offset(path, func)
    elif not offset:
        raise AttachError(f"uprobe on {path}: give a function name or a non-zero offset")
    return path, offset, f"{path}:{func or ''}+{offset:#x}"


def attach_uprobe(prog: ProgramView, target: str, opts: Opts) -> Link:
    retprobe = bool(opts.get("retprobe", prog.section.startswith("uretprobe")))
    path, offset, where = _uprobe_where(target, opts, retprobe)
    pid = int(opts.get("pid", -1))
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    attr = _probe_event("uprobe", retprobe, ctypes.addressof(pbuf), offset,
                        int(opts.get("ref_ctr_offset", 0)))
    kind = "uretprobe" if retprobe else "uprobe"
    pfd = syscall.perf_event_open(attr, pid=-1 if pid < 0 else pid, cpu=0 if pid < 0 else -1,
                                  what=f"creating {kind} on {where}")
    return _attach_perf_event(prog, pfd, opts, f"{kind} {where}")


def attach_uprobe_multi(prog: ProgramView, target: str, opts: Opts) -> Link:
    retprobe = bool(opts.get("retprobe", prog.section.startswith("uretprobe.multi")))
    if opts.get("binary"):
        binary, pattern = opts["binary"], opts.get("func_pattern") or ""
    else:
        binary, _, pattern = target.partition(":")
    if not binary:
        raise AttachError("uprobe.multi needs SEC(\"uprobe.multi/BINARY:PATTERN\") or binary=")
    path = _uprobe.resolve_binary(binary)
    offsets = list(opts.get("offsets") or ())
    if opts.get("syms"):
        offsets = [_uprobe.func_offset(path, s) for s in opts["syms"]]
    elif not offsets:
        if not pattern:
            raise AttachError(f"uprobe.multi on {path}: give a function pattern, syms= or "
                              "offsets=")
        offsets = [off for _, off in _uprobe.pattern_offsets(path, pattern)]
    off_arr = _u64_array(offsets)
    cookies = _u64_array(list(opts.get("cookies") or ()))
    ref_ctrs = _u64_array(list(opts.get("ref_ctr_offsets") or ()))
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    pid = int(opts.get("pid", 0))
    session = prog.expected_attach_type == uapi.BPF_TRACE_UPROBE_SESSION
    if session and retprobe:
        raise AttachError("uprobe.session programs run on entry and return: retprobe= "
                          "does not apply")
    attach_type = uapi.BPF_TRACE_UPROBE_SESSION if session else uapi.BPF_TRACE_UPROBE_MULTI
    lfd = syscall.link_create(prog.fd, 0, attach_type, uprobe_multi={
        "path": ctypes.addressof(pbuf), "offsets": _addr(off_arr), "cnt": len(offsets),
        "cookies": _addr(cookies), "ref_ctr_offsets": _addr(ref_ctrs),
        "flags": uapi.BPF_F_UPROBE_MULTI_RETURN if retprobe else 0,
        "pid": pid if pid > 0 else 0})
    return Link(lfd, desc=f"uprobe.multi {path} ({len(offsets)} offsets)")


def attach_usdt(prog: ProgramView, target: str, opts: Opts) -> Link:
    """SEC("usdt/BINARY:PROVIDER:NAME") or binary=, provider=, name= (see pybpf.link.usdt)."""
    from .usdt import attach_usdt as attach
    return attach(cast("Program", prog), target, opts)   # USDT state lives on a Program


# ------------------------------------------------------------------ perf events


def attach_perf_event(prog: ProgramView, target: str, opts: Opts) -> Link:
    """To a perf event: perf_event_fd= (duplicated, the caller keeps its fd), or one
    opened here from sample_period=/sample_freq= with type=, config=, pid=, cpu=."""
    if "perf_event_fd" in opts:
        try:
            pfd = syscall.dup(int(opts["perf_event_fd"]), f"perf_event_fd {opts['perf_event_fd']}")
        except BPFError as e:
            raise AttachError(str(e), e.errno) from None
        desc = f"perf event fd {opts['perf_event_fd']}"
    elif opts.get("sample_period") or opts.get("sample_freq"):
        attr = syscall.fill(
            uapi.perf_event_attr(), type=int(opts.get("type", uapi.PERF_TYPE_SOFTWARE)),
            config=int(opts.get("config", uapi.PERF_COUNT_SW_CPU_CLOCK)),
            sample_period=int(opts.get("sample_freq") or opts["sample_period"]),
            flags=uapi.PERF_ATTR_FLAG_FREQ if opts.get("sample_freq") else 0)
        pid, cpu = int(opts.get("pid", -1)), int(opts.get("cpu", 0))
        pfd = syscall.perf_event_open(attr, pid=pid, cpu=cpu, what="opening perf event")
        desc = f"perf event type {attr.type} config {attr.config} pid {pid} cpu {cpu}"
    else:
        raise AttachError("perf_event programs need perf_event_fd= or sample_period= / "
                          "sample_freq=")
    return _attach_perf_event(prog, pfd, opts, desc)


# ------------------------------------------------------------------ networking, cgroups


def attach_xdp(prog: ProgramView, target: str, opts: Opts) -> Link:
    ifindex = _ifindex(opts, "XDP")
    return _link(prog, ifindex, uapi.BPF_XDP, f"xdp ifindex {ifindex}",
                 int(opts.get("flags", 0)))


def _mprog(prog: ProgramView, opts: Opts, what: str) -> Link:
    """tcx and netkit: multi-program attachment, optionally ordered (BPF_F_BEFORE...)."""
    ifindex = _ifindex(opts, what)
    flags = int(opts.get("flags", 0))
    relative = int(opts.get("relative_fd", 0) or opts.get("relative_id", 0))
    if opts.get("relative_id"):
        flags |= uapi.BPF_F_ID
    kind = uapi.enum_name(uapi.bpf_attach_type, prog.expected_attach_type)
    return _link(prog, ifindex, prog.expected_attach_type, f"{kind} ifindex {ifindex}", flags,
                 tcx={"relative_fd": relative,
                      "expected_revision": int(opts.get("expected_revision", 0))})


def attach_tcx(prog: ProgramView, target: str, opts: Opts) -> Link:
    return _mprog(prog, opts, "tcx")


def attach_netkit(prog: ProgramView, target: str, opts: Opts) -> Link:
    return _mprog(prog, opts, "netkit")


def attach_cgroup(prog: ProgramView, target: str, opts: Opts) -> Link:
    """To cgroup= (a cgroup v2 directory; default the hierarchy's root) or cgroup_fd=."""
    kind = uapi.enum_name(uapi.bpf_attach_type, prog.expected_attach_type)
    if "cgroup_fd" in opts:
        return _link(prog, int(opts["cgroup_fd"]), prog.expected_attach_type,
                     f"{kind} cgroup fd {opts['cgroup_fd']}", int(opts.get("flags", 0)))
    path = opts.get("cgroup") or tracefs.cgroup2_root()
    with _open_path(path, os.O_RDONLY | os.O_DIRECTORY, "cgroup") as cg:
        return _link(prog, cg.fd, prog.expected_attach_type, f"{kind} cgroup {path}",
                     int(opts.get("flags", 0)))


def attach_netns(prog: ProgramView, target: str, opts: Opts) -> Link:
    """flow_dissector / sk_lookup: to netns= (default this process's) or netns_fd=."""
    kind = uapi.enum_name(uapi.bpf_attach_type, prog.expected_attach_type)
    if "netns_fd" in opts:
        return _link(prog, int(opts["netns_fd"]), prog.expected_attach_type,
                     f"{kind} netns fd {opts['netns_fd']}")
    path = opts.get("netns") or "/proc/self/ns/net"
    with _open_path(path, os.O_RDONLY, "network namespace") as ns:
        return _link(prog, ns.fd, prog.expected_attach_type, f"{kind} netns {path}")


# ------------------------------------------------------------------ the table

AttachFn = Callable[[ProgramView, str, Opts], Link]


class Method(NamedTuple):
    fn: AttachFn
    auto: str                   # "always", "target" (needs a SEC target) or "never"
    opts: FrozenSet[str]        # options it accepts


def _m(fn: AttachFn, auto: str, *opts: str) -> Method:
    return Method(fn, auto, frozenset(opts))


_PERF = ("cookie", "force_ioctl_attach")

METHODS: Dict[str, Method] = {
    "tracepoint": _m(attach_tracepoint, "target", "tracepoint", *_PERF),
    "raw_tracepoint": _m(attach_raw_tracepoint, "target", "tracepoint"),
    "tracing": _m(attach_tracing, "always", "cookie"),
    "lsm": _m(attach_tracing, "always", "cookie"),
    "freplace": _m(attach_tracing, "always", "target_fd", "func_name"),
    "iter": _m(attach_iter, "always", "map_fd", "tid", "pid", "pid_fd", "cgroup_fd",
               "cgroup_id", "order"),
    "kprobe": _m(attach_kprobe, "target", "func_name", "offset", "retprobe", *_PERF),
    "ksyscall": _m(attach_ksyscall, "target", "syscall_name", "retprobe", *_PERF),
    "kprobe_multi": _m(attach_kprobe_multi, "target", "pattern", "syms", "cookies",
                       "retprobe"),
    "uprobe": _m(attach_uprobe, "target", "binary", "func_name", "offset", "pid", "retprobe",
                 "ref_ctr_offset", *_PERF),
    "uprobe_multi": _m(attach_uprobe_multi, "target", "binary", "func_pattern", "syms",
                       "offsets", "cookies", "ref_ctr_offsets", "pid", "retprobe"),
    "usdt": _m(attach_usdt, "target", "binary", "provider", "name", "pid", "cookie"),
    "perf_event": _m(attach_perf_event, "never", "perf_event_fd", "sample_period",
                     "sample_freq", "type", "config", "pid", "cpu", *_PERF),
    "xdp": _m(attach_xdp, "never", "ifindex", "interface", "flags"),
    "tcx": _m(attach_tcx, "never", "ifindex", "interface", "flags", "relative_fd",
              "relative_id", "expected_revision"),
    "netkit": _m(attach_netkit, "never", "ifindex", "interface", "flags", "relative_fd",
                 "relative_id", "expected_revision"),
    "cgroup": _m(attach_cgroup, "never", "cgroup", "cgroup_fd", "flags"),
    "netns": _m(attach_netns, "never", "netns", "netns_fd"),
}

#: why attach() leaves a program of an attach method alone: what it needs
NEEDS = {
    "xdp": "a network interface (interface= or ifindex=)",
    "tcx": "a network interface (interface= or ifindex=)",
    "netkit": "a netkit device (interface= or ifindex=)",
    "cgroup": "a cgroup (cgroup=PATH or cgroup_fd=): attach() never picks the root "
              "cgroup, where it would act on every process",
    "netns": "a network namespace (netns=PATH or netns_fd=): attach() never picks one",
    "perf_event": "a perf event (perf_event_fd=, or sample_period= / sample_freq=)",
    "tracepoint": "a tracepoint: SEC(\"tp/CATEGORY/NAME\") or tracepoint=",
    "raw_tracepoint": "a tracepoint: SEC(\"raw_tp/NAME\") or tracepoint=",
    "kprobe": "a kernel function: SEC(\"kprobe/FUNCTION\") or func_name=",
    "ksyscall": "a syscall: SEC(\"ksyscall/NAME\") or syscall_name=",
    "kprobe_multi": "kernel functions: SEC(\"kprobe.multi/PATTERN\"), pattern= or syms=",
    "uprobe": "a binary and function: SEC(\"uprobe/BINARY:FUNCTION\") or binary=",
    "uprobe_multi": "a binary: SEC(\"uprobe.multi/BINARY:PATTERN\") or binary=",
    "usdt": "a binary and probe: SEC(\"usdt/BINARY:PROVIDER:NAME\")",
}


def method_name(prog: ProgramView) -> Optional[str]:
    return prog.sec_def.attach if prog.sec_def is not None else None


def auto_attach_skip(prog: ProgramView) -> Optional[str]:
    """Why attach() without options must leave ``prog`` alone (None: it can attach it),
    as libbpf's skeleton attach decides: a hook that needs a target the SEC() name
    does not give (an interface, a cgroup, a binary...) is never guessed."""
    name = method_name(prog)
    method = METHODS.get(name or "")
    if method is None:
        return (f"SEC({prog.section!r}) names no hook" if prog.sec_def is None
                else f"{prog.type_name} programs have no automatic attachment")
    if method.auto == "always" or (method.auto == "target" and prog.attach_target):
        return None
    return f"needs {NEEDS.get(name or '', 'options')}"


def auto_attachable(prog: ProgramView) -> bool:
    """Whether attach() without options can work: the object's attach() skips
    programs for which this is False (see :func:`auto_attach_skip`)."""
    return auto_attach_skip(prog) is None


def attach_program(prog: ProgramView, method: Optional[str] = None, **opts: Any) -> Link:
    """Attach a loaded program by its SEC() convention (``method`` overrides the
    kind, e.g. ``method="perf_event"`` for SEC("perf_event") programs)."""
    where = f"program {prog.name!r} (SEC {prog.section!r})"
    name = method or method_name(prog)
    if name is None:
        why = ("its section matches no SEC() convention" if prog.sec_def is None
               else "struct_ops programs are registered with the struct_ops map that "
               "binds them (obj.attach() or map.attach_struct_ops()), not one by one"
               if prog.type == uapi.BPF_PROG_TYPE_STRUCT_OPS
               else f"{prog.type_name} programs have no automatic attachment")
        raise AttachError(f"cannot attach {where}: {why}; use method= or attach it "
                          "through its fd")
    spec = METHODS.get(name)
    if spec is None:
        raise AttachError(f"cannot attach {where}: unknown attach method {name!r}")
    unknown = sorted(set(opts) - spec.opts)
    if unknown:
        raise AttachError(f"cannot attach {where}: unexpected option(s) {', '.join(unknown)} "
                          f"for {name} (accepted: {', '.join(sorted(spec.opts)) or 'none'})")
    if not prog.loaded:
        raise AttachError(f"cannot attach {where}: it is not loaded")
    try:
        return spec.fn(prog, prog.attach_target, opts)
    except BPFPermissionError as e:
        raise BPFPermissionError(f"attaching {where}: {e}", e.errno) from e
    except BPFError as e:
        raise AttachError(f"attaching {where}: {e}", e.errno) from e
    except OSError as e:
        raise AttachError(f"attaching {where}: {e}", e.errno) from e
    except (TypeError, ValueError) as e:       # an option of the wrong type
        raise AttachError(f"attaching {where}: bad option value: {e}") from e
