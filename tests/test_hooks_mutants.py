"""pybpf.link.hooks, value by value: what each attach method hands the kernel (perf
event attrs, link_create unions, pids and cpus), bpf cookies arriving in the
program, close() disabling a perf event another fd still holds, no swallowed
failure after perf_event_open, error messages and errno, fds never leaked.

Kernel paths run against the kernel.  Where this kernel cannot run one (kprobes:
CONFIG_KPROBES is off; fentry/freplace: no trampolines) or the argument a method
builds is not observable from user space, the syscall layer is wrapped (the real
call still runs where it can) or faked, and the test says so.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import pathlib
import platform
import subprocess
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from conftest import built, skip_missing_feature
from test_links import (TARGET_C, XDP_PASS, Counter, counter_insns, links_of, load,  # noqa: F401
                        private_netns, prog_id, run_target, target_bins, wait_prog_freed)
import pybpf
from pybpf import uapi
from pybpf.errors import AttachError, BPFError, BPFPermissionError
from pybpf.kernel import syscall, fs as tracefs
from pybpf.link import hooks
from pybpf.link.hooks import (IterLink, Link, LinkInfo, PerfEventLink, attach_program,
                              auto_attach_skip)
from pybpf.obj import sections
from pybpf.programs import Program

u = uapi
PERF_COUNT_SW_PAGE_FAULTS = 2           # <linux/perf_event.h> enum perf_sw_ids


def fds() -> List[str]:
    return sorted(os.listdir("/proc/self/fd"))


@pytest.fixture
def counter(kernel) -> Iterator[Counter]:
    c = Counter()
    yield c
    c.close()


def fake_prog(section: str) -> Program:
    """A Program that looks loaded (its fd is /dev/null): for the paths that fail, or
    are faked, before the kernel sees the program."""
    sec_def, target = sections.find_sec_def(section)
    prog = Program("p", section, sec_def, target, bytearray(8))
    prog._fd = syscall.Fd(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
    return prog


class Spy:
    """Record the calls of syscall.NAME; then run the real call, or raise ``fail``,
    or return ``result()``."""

    def __init__(self, monkeypatch, name: str, fail: Optional[BaseException] = None,
                 result: Optional[Callable[[], Any]] = None):
        self.real = getattr(syscall, name)
        self.calls: List[Tuple[tuple, dict]] = []

        def spy(*a: Any, **kw: Any) -> Any:
            self.calls.append((a, kw))
            if fail is not None:
                raise fail
            if result is not None:
                return result()
            return self.real(*a, **kw)
        monkeypatch.setattr(syscall, name, spy)


def null_fd() -> syscall.Fd:
    return syscall.Fd(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))


# ------------------------------------------------------------------ Link objects


def test_link_info_type_names():
    assert LinkInfo(u.BPF_LINK_TYPE_PERF_EVENT, 1, 2).type_name == "perf_event"
    assert LinkInfo(u.BPF_LINK_TYPE_RAW_TRACEPOINT, 1, 2).type_name == "raw_tracepoint"
    assert LinkInfo(9999, 1, 2).type_name == "9999"


def test_link_close_closes_every_fd_in_order_and_repr():
    a, b = null_fd(), null_fd()
    link = Link(a, b, desc="thing")
    assert link.fd == a.fd and not link.closed
    assert repr(link) == f"<Link thing fd={a.fd}>"
    with link as same:
        assert same is link
    assert a.closed and b.closed and link.closed
    assert repr(link) == "<Link thing closed>"
    link.close()
    a, b = null_fd(), null_fd()
    link = Link(a, b)
    a.close()                   # the BPF link gone: closed, whatever it sat on
    assert link.closed and repr(link) == "<Link  closed>"
    link.close()
    assert b.closed


def test_detach_swallows_only_unsupported(monkeypatch):
    for err in (errno.EOPNOTSUPP, errno.EINVAL):
        spy = Spy(monkeypatch, "link_detach", fail=BPFError("no", err))
        link = Link(null_fd())
        link.detach()
        assert link.closed and len(spy.calls) == 1
        link.detach()                       # closed: the kernel is not asked again
        assert len(spy.calls) == 1
    Spy(monkeypatch, "link_detach", fail=BPFError("busy", errno.EBUSY))
    link = Link(null_fd())
    with pytest.raises(BPFError, match="busy"):
        link.detach()
    assert not link.closed
    link.close()
    ok = Spy(monkeypatch, "link_detach", result=lambda: None)
    fd = null_fd()
    n = fd.fd
    link = Link(fd)
    link.detach()
    assert link.closed and ok.calls == [((n,), {})]


def test_perf_event_link_close_disables_and_swallows_ioctl_errors(monkeypatch):
    seen = []

    def ioctl(fd, request, arg=0, what="ioctl"):
        seen.append((fd, request))
        raise BPFError("gone", errno.EBADF)
    monkeypatch.setattr(syscall, "ioctl", ioctl)
    fd = null_fd()
    n = fd.fd
    link = PerfEventLink(fd, desc="pe")
    link.detach()                           # detach is close
    assert seen == [(n, u.PERF_EVENT_IOC_DISABLE)] and link.closed
    link.close()
    assert len(seen) == 1                   # closed: no ioctl on a stale fd number
    link = PerfEventLink(null_fd())
    with pytest.raises(AttachError, match=r"^link info: attached with PERF_EVENT_IOC_SET_BPF, "
                                          r"not a BPF link$") as e:
        link.info()
    assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(AttachError, match=r"^pinning at /sys/fs/bpf/x: attached with "
                                          r"PERF_EVENT_IOC_SET_BPF") as e:
        link.pin("/sys/fs/bpf/x")
    assert e.value.errno == errno.EOPNOTSUPP
    link.close()


def _fault_pages(n: int) -> None:
    m = mmap.mmap(-1, n * mmap.PAGESIZE)
    for i in range(n):
        m[i * mmap.PAGESIZE] = 1
    m.close()


def test_perf_event_link_close_disables_the_event_the_caller_keeps(counter):
    """The event stays open through the caller's fd: closing the ioctl-attached link
    must disable it, or the program would keep running on every page fault."""
    prog = counter.prog("perf_event")
    attr = syscall.fill(u.perf_event_attr(), type=u.PERF_TYPE_SOFTWARE,
                        config=PERF_COUNT_SW_PAGE_FAULTS, sample_period=1)
    with syscall.perf_event_open(attr, pid=0, cpu=-1) as pfd:
        link = attach_program(prog, method="perf_event", perf_event_fd=pfd.fd,
                              force_ioctl_attach=True)
        assert isinstance(link, PerfEventLink)
        assert link.desc == f"perf event fd {pfd.fd}"
        _fault_pages(32)
        assert counter.value >= 32
        link.close()
        seen = counter.value    # after close: faults while closing (PyPy's GC) are counted
        _fault_pages(32)
        assert counter.value == seen
    assert_detached(counter, prog)


def assert_detached(counter: Counter, prog: Program) -> None:
    pid = prog_id(prog)
    assert links_of(pid) == []
    counter.progs.remove(prog)
    prog.close()
    assert wait_prog_freed(pid)


def test_link_pin_from_pinned_and_iter(counter, tmp_path):
    prog = counter.prog("tp/syscalls/sys_enter_getppid", pid=os.getpid())
    path = f"/sys/fs/bpf/pybpf_hooks_{os.getpid()}"
    link = prog.attach()
    try:
        mounted = []
        real_ensure = tracefs.ensure_bpffs_for
        tracefs.ensure_bpffs_for = lambda p: (mounted.append(p), real_ensure(p))[1]
        try:
            link.pin(path)
        finally:
            tracefs.ensure_bpffs_for = real_ensure
        assert mounted == [path]
        again = Link.from_pinned(path)
        assert type(again) is Link and again.desc == f"pinned {path}"
        assert again.info() == link.info()
        info = link.info()
        assert (info.type, info.prog_id) == (u.BPF_LINK_TYPE_PERF_EVENT, prog_id(prog))
        assert info.id > 0
        by_id = Link.from_id(info.id)
        assert by_id.info().id == info.id
        by_id.close()
        again.close()
    finally:
        os.unlink(path)
        link.close()
    m = syscall.map_create(u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    mpath = f"/sys/fs/bpf/pybpf_hooks_map_{os.getpid()}"
    syscall.obj_pin(m.fd, mpath)
    try:
        before = fds()
        with pytest.raises(AttachError, match=rf"^{mpath} is not a pinned BPF link$"):
            Link.from_pinned(mpath)
        assert fds() == before
    finally:
        os.unlink(mpath)
        m.close()


def test_iter_open_failure_closes_the_iterator_fd(monkeypatch):
    """fdopen failing (out of memory, say) must not leak the BPF_ITER_CREATE fd."""
    made = []

    def iter_create(link_fd):
        made.append(null_fd())
        return made[-1]

    def fdopen(fd, mode):
        raise MemoryError("no memory")
    monkeypatch.setattr(syscall, "iter_create", iter_create)
    link = IterLink(null_fd(), desc="iter x")
    before = fds()
    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(MemoryError):
        link.open()
    monkeypatch.undo()
    assert fds() == before and len(made) == 1
    link.close()


def test_pinned_iter_link_is_an_iter_link(kernel):
    from pybpf.btf import BTF
    from test_links import _iter_task_insns
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        btf_id = BTF.parse(f.read()).find("bpf_iter_task", u.BTF_KIND_FUNC)[0]
    prog = load("iter/task", _iter_task_insns(), attach_btf_id=btf_id)
    path = f"/sys/fs/bpf/pybpf_hooks_iter_{os.getpid()}"
    try:
        with prog.attach() as link:
            assert link.desc == "iter task"
            link.pin(path)
            try:
                with Link.from_pinned(path) as again:
                    assert isinstance(again, IterLink)
                    assert again.read().startswith(b"task\n")
            finally:
                os.unlink(path)
    finally:
        prog.close()


# ------------------------------------------------------------------ helpers


def test_small_helpers():
    assert hooks._u64_array([]) is None
    arr = hooks._u64_array([1, 1 << 63])
    assert list(arr) == [1, 1 << 63]
    assert hooks._addr(None) == 0 and hooks._addr(arr) == ctypes.addressof(arr)
    assert hooks._ifindex({"ifindex": "7"}, "XDP") == 7
    assert hooks._ifindex({"ifindex": 0, "interface": "lo"}, "XDP") == 1
    with pytest.raises(AttachError, match=r"^XDP needs ifindex= or interface=$"):
        hooks._ifindex({}, "XDP")
    with pytest.raises(AttachError, match=r"^no network interface named 'nosuch0'$"):
        hooks._ifindex({"interface": "nosuch0"}, "tcx")
    with pytest.raises(AttachError, match=r"opening cgroup /nonexistent/x") as e:
        hooks._open_path("/nonexistent/x", os.O_RDONLY, "cgroup")
    assert e.value.errno == errno.ENOENT
    with hooks._open_path("/", os.O_RDONLY | os.O_DIRECTORY, "cgroup") as fd:
        assert fd.fd > 2


# ------------------------------------------------------------------ perf event attach


def test_perf_link_failure_other_than_unsupported_closes_the_event(monkeypatch, kernel):
    """link_create failing with, e.g., EPERM is not a reason to fall back: it is
    raised, and the perf event opened for the attachment is closed."""
    prog = fake_prog("tp/syscalls/sys_enter_getppid")
    try:
        Spy(monkeypatch, "link_create", fail=BPFError("denied", errno.EPERM))
        ioctls = Spy(monkeypatch, "ioctl")
        before = fds()
        with pytest.raises(AttachError, match="denied") as e:
            attach_program(prog)
        assert e.value.errno == errno.EPERM
        assert "attaching program 'p'" in str(e.value)
        assert ioctls.calls == [] and fds() == before
    finally:
        prog.close()


@pytest.mark.parametrize("err", [errno.EINVAL, errno.EOPNOTSUPP])
def test_no_perf_links_falls_back_to_ioctl_unless_a_cookie_is_asked(monkeypatch, counter,
                                                                      err):
    prog = counter.prog("tp/syscalls/sys_enter_getppid", pid=os.getpid())
    Spy(monkeypatch, "link_create", fail=BPFError("old kernel", err))
    before = fds()
    with pytest.raises(AttachError, match=r"a bpf cookie needs BPF perf links \(kernel "
                                          r"5\.15\+\)$"):
        attach_program(prog, cookie=5)
    assert fds() == before
    link = attach_program(prog)
    assert isinstance(link, PerfEventLink)
    assert link.desc == "tracepoint syscalls/sys_enter_getppid"
    os.getppid()
    os.getppid()
    assert counter.value == 2
    link.close()
    os.getppid()
    assert counter.value == 2 and fds() == before


def test_perf_attach_ioctls(monkeypatch, counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid", pid=os.getpid())
    spy = Spy(monkeypatch, "ioctl")
    with attach_program(prog) as link:
        pfd = link._fds[1].fd
        assert spy.calls == [((pfd, u.PERF_EVENT_IOC_ENABLE, 0, "enabling perf event"), {})]
    spy.calls.clear()
    with attach_program(prog, force_ioctl_attach=True) as link:
        pfd = link.fd
        assert spy.calls == [
            ((pfd, u.PERF_EVENT_IOC_SET_BPF, prog.fd, "PERF_EVENT_IOC_SET_BPF"), {}),
            ((pfd, u.PERF_EVENT_IOC_ENABLE, 0, "enabling perf event"), {})]
        os.getppid()
        assert counter.value == 1
    assert spy.calls[-1] == ((pfd, u.PERF_EVENT_IOC_DISABLE), {})


def test_forced_ioctl_attach_refuses_a_cookie(counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid")
    before = fds()
    with pytest.raises(AttachError, match="a bpf cookie needs BPF perf links"):
        attach_program(prog, cookie=1, force_ioctl_attach=True)
    assert fds() == before


def test_enable_failure_after_the_perf_link_closes_everything(monkeypatch, counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid", pid=os.getpid())
    real = syscall.ioctl

    def ioctl(fd, request, arg=0, what="ioctl"):
        if request == u.PERF_EVENT_IOC_ENABLE:
            raise BPFError(what, errno.EIO)
        return real(fd, request, arg, what)
    monkeypatch.setattr(syscall, "ioctl", ioctl)
    before = fds()
    for force in (False, True):
        with pytest.raises(AttachError, match="enabling perf event") as e:
            attach_program(prog, force_ioctl_attach=force)
        assert e.value.errno == errno.EIO
        assert fds() == before
    assert links_of(prog_id(prog)) == []
    os.getppid()
    assert counter.value == 0


def test_set_bpf_failure_closes_the_event(monkeypatch, counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid")

    def ioctl(fd, request, arg=0, what="ioctl"):
        raise BPFError(what, errno.EEXIST)
    monkeypatch.setattr(syscall, "ioctl", ioctl)
    before = fds()
    with pytest.raises(AttachError, match="PERF_EVENT_IOC_SET_BPF") as e:
        attach_program(prog, force_ioctl_attach=True)
    assert e.value.errno == errno.EEXIST and fds() == before


def test_tracepoint_event_is_opened_on_all_pids_cpu_0(monkeypatch, counter):
    prog = counter.prog("tracepoint")
    spy = Spy(monkeypatch, "perf_event_open")
    with attach_program(prog, tracepoint="syscalls/sys_enter_getppid") as link:
        (attr,), kw = spy.calls[0]
        assert kw == {"pid": -1, "cpu": 0,
                      "what": "opening tracepoint syscalls/sys_enter_getppid"}
        assert attr.type == u.PERF_TYPE_TRACEPOINT
        assert attr.config == tracefs.tracepoint_id("syscalls", "sys_enter_getppid")
        assert link.desc == "tracepoint syscalls/sys_enter_getppid"
    for bad in ("sched/", "/sched_switch", "nocategory"):
        with pytest.raises(AttachError, match=r"must be CATEGORY/NAME"):
            attach_program(prog, tracepoint=bad)


@pytest.fixture
def cookie_obj(kernel) -> Iterator[pybpf.BPFObject]:
    with pybpf.BPFObject.open(str(built("hooks_cookie.bpf.o"))) as obj:
        obj.rodata["target_pid"] = os.getpid()
        yield obj


def test_cookies_reach_tracepoint_and_tp_btf_programs(cookie_obj):
    obj = cookie_obj
    obj.load()
    with obj.programs["cookie_tp"].attach(cookie=0x1122334455) as tp, \
            obj.programs["cookie_tp_btf"].attach(cookie=0xABCDEF0123) as btf:
        assert tp.info().type == u.BPF_LINK_TYPE_PERF_EVENT
        assert btf.desc == "tp_btf/sys_enter"
        os.getppid()
        assert obj.bss["tp_cookie"] == 0x1122334455 and obj.bss["tp_runs"] == 1
        assert obj.bss["btf_cookie"] == 0xABCDEF0123 and obj.bss["btf_runs"] >= 1
    with obj.programs["cookie_tp"].attach() as tp:       # no cookie: 0
        os.getppid()
        assert obj.bss["tp_cookie"] == 0 and obj.bss["tp_runs"] == 2


def test_tracing_attach_falls_back_to_raw_tracepoint_open_only_without_cookie(
        cookie_obj, monkeypatch):
    """Kernels before 5.19 answer EINVAL to link_create for tp_btf and fentry: the
    older BPF_RAW_TRACEPOINT_OPEN works, but carries no cookie: a cookie asked for
    is an error, never silently dropped."""
    obj = cookie_obj
    obj.load()
    prog = obj.programs["cookie_tp_btf"]
    creates = Spy(monkeypatch, "link_create", fail=BPFError("old", errno.EINVAL))
    opens = Spy(monkeypatch, "raw_tracepoint_open")
    before = fds()
    with pytest.raises(AttachError, match="old") as e:
        prog.attach(cookie=3)
    assert e.value.errno == errno.EINVAL and opens.calls == [] and fds() == before
    (pfd, target_fd, attach_type, flags), kw = creates.calls[0]
    assert (pfd, target_fd, attach_type, flags) == (prog.fd, 0, u.BPF_TRACE_RAW_TP, 0)
    assert kw["tracing"] == {"target_btf_id": 0, "cookie": 3}
    with prog.attach() as link:
        assert opens.calls == [((None, prog.fd), {})]
        assert link.info().type == u.BPF_LINK_TYPE_RAW_TRACEPOINT
        os.getppid()
        assert obj.bss["btf_runs"] >= 1 and obj.bss["btf_cookie"] == 0
    Spy(monkeypatch, "link_create", fail=BPFError("denied", errno.EPERM))
    with pytest.raises(AttachError, match="denied"):
        prog.attach()
    assert len(opens.calls) == 1


def test_freeplace_target_and_no_fallback(monkeypatch):
    """freplace needs trampolines (not on this kernel): the BTF id of the target
    function goes into link_create with the target fd; EINVAL is not retried."""
    from pybpf.link import attach_btf
    prog = fake_prog("freplace/handler")
    try:
        looked = []
        monkeypatch.setattr(attach_btf, "prog_func_btf_id",
                            lambda fd, func: looked.append((fd, func)) or 42)
        creates = Spy(monkeypatch, "link_create", fail=BPFError("no", errno.EINVAL))
        opens = Spy(monkeypatch, "raw_tracepoint_open", result=null_fd)
        with pytest.raises(AttachError, match="no"):
            attach_program(prog, target_fd=9)
        assert looked == [(9, "handler")]
        (_, target_fd, attach_type, _), kw = creates.calls[0]
        assert target_fd == 9 and attach_type == prog.expected_attach_type and kw["tracing"] == {"target_btf_id": 42, "cookie": 0}
        with pytest.raises(AttachError):
            attach_program(prog, target_fd=9, func_name="other")
        assert looked[-1] == (9, "other") and opens.calls == []
        creates2 = Spy(monkeypatch, "link_create", result=null_fd)
        with attach_program(prog, target_fd=0) as link:
            assert link.desc == "freplace/handler"
        assert creates2.calls[0][1]["tracing"] == {"target_btf_id": 0, "cookie": 0}
        assert looked[-1] == (9, "other")          # no target fd: no lookup
    finally:
        prog.close()


def test_cookie_reaches_a_perf_event_program(cookie_obj):
    obj = cookie_obj
    obj.load()
    prog = obj.programs["cookie_perf_event"]
    attr = syscall.fill(u.perf_event_attr(), type=u.PERF_TYPE_SOFTWARE,
                        config=PERF_COUNT_SW_PAGE_FAULTS, sample_period=1)
    with syscall.perf_event_open(attr, pid=0, cpu=-1) as pfd:
        with attach_program(prog, method="perf_event", perf_event_fd=pfd.fd,
                            cookie=0x7777) as link:
            assert link.info().type == u.BPF_LINK_TYPE_PERF_EVENT
            _fault_pages(4)
            assert obj.bss["pe_runs"] >= 4 and obj.bss["pe_cookie"] == 0x7777


def test_perf_event_attr_from_options(monkeypatch, counter):
    prog = counter.prog("perf_event")
    spy = Spy(monkeypatch, "perf_event_open")
    with attach_program(prog, method="perf_event", sample_period=123456, pid=os.getpid(),
                        cpu=-1) as link:
        (attr,), kw = spy.calls[-1]
        assert (attr.type, attr.config, attr.sample_period, attr.flags) == (
            u.PERF_TYPE_SOFTWARE, u.PERF_COUNT_SW_CPU_CLOCK, 123456, 0)
        assert kw == {"pid": os.getpid(), "cpu": -1, "what": "opening perf event"}
        assert link.desc == (f"perf event type {u.PERF_TYPE_SOFTWARE} config "
                             f"{u.PERF_COUNT_SW_CPU_CLOCK} pid {os.getpid()} cpu -1")
    with attach_program(prog, method="perf_event", sample_freq=99, type=u.PERF_TYPE_SOFTWARE,
                        config=PERF_COUNT_SW_PAGE_FAULTS, sample_period=5):
        (attr,), kw = spy.calls[-1]
        assert (attr.config, attr.sample_period, attr.flags) == (
            PERF_COUNT_SW_PAGE_FAULTS, 99, u.PERF_ATTR_FLAG_FREQ)
        assert (kw["pid"], kw["cpu"]) == (-1, 0)
    before = fds()
    with pytest.raises(AttachError, match=r"perf_event_fd 987654") as e:
        attach_program(prog, method="perf_event", perf_event_fd=987654)
    assert e.value.errno == errno.EBADF and fds() == before


# ------------------------------------------------------------------ raw_tp, iter


def test_raw_tracepoint_name_and_desc(monkeypatch, counter):
    prog = counter.prog("raw_tp")
    with pytest.raises(AttachError, match=r"raw tracepoint name missing \(SEC\(\"raw_tp/NAME"
                                          r"\"\) or tracepoint=\)$"):
        attach_program(prog)
    spy = Spy(monkeypatch, "raw_tracepoint_open")
    with attach_program(prog, tracepoint="sys_enter") as link:
        assert spy.calls == [(("sys_enter", prog.fd), {})]
        assert link.desc == "raw_tp sys_enter"
    prog2 = counter.prog("raw_tp/sys_exit")
    with prog2.attach() as link:
        assert spy.calls[-1] == (("sys_exit", prog2.fd), {}) and link.desc == "raw_tp sys_exit"


def _iter_info(kw: Dict[str, Any]) -> Optional[u.bpf_iter_link_info]:
    it = kw["iter"]
    if not it["iter_info"]:
        assert it["iter_info_len"] == 0
        return None
    assert it["iter_info_len"] == ctypes.sizeof(u.bpf_iter_link_info)
    return u.bpf_iter_link_info.from_buffer_copy(
        ctypes.string_at(it["iter_info"], it["iter_info_len"]))


def test_iter_link_info_from_options(monkeypatch):
    """What bpf_iter_link_info holds for each option (read back from the address
    handed to link_create; the link itself is faked: no iterator program here)."""
    prog = fake_prog("iter/task")
    infos = []

    def create(prog_fd, target_fd, attach_type, flags=0, **kw):
        assert (target_fd, attach_type, flags) == (0, u.BPF_TRACE_ITER, 0)
        infos.append(_iter_info(kw))
        return null_fd()
    monkeypatch.setattr(syscall, "link_create", create)
    try:
        for opts in ({}, {"map_fd": 5}, {"tid": 3}, {"pid": 4}, {"pid_fd": 6},
                     {"cgroup_fd": 7}, {"cgroup_id": 8, "order": 2}):
            with attach_program(prog, **opts) as link:
                assert link.desc == "iter task" and isinstance(link, IterLink)
        none, m, tid, pid, pid_fd, cg_fd, cg_id = infos
        assert none is None
        assert m.map.map_fd == 5
        assert (tid.task.tid, tid.task.pid, tid.task.pid_fd) == (3, 0, 0)
        assert (pid.task.tid, pid.task.pid, pid.task.pid_fd) == (0, 4, 0)
        assert (pid_fd.task.tid, pid_fd.task.pid, pid_fd.task.pid_fd) == (0, 0, 6)
        assert (cg_fd.cgroup.cgroup_fd, cg_fd.cgroup.cgroup_id, cg_fd.cgroup.order) == \
            (7, 0, u.BPF_CGROUP_ITER_ORDER_UNSPEC)
        assert (cg_id.cgroup.cgroup_fd, cg_id.cgroup.cgroup_id, cg_id.cgroup.order) == (0, 8, 2)
    finally:
        prog.close()


# ------------------------------------------------------------------ kprobes (no CONFIG_KPROBES)


def test_kprobe_without_the_pmu_names_the_missing_config(counter):
    if os.path.exists("/sys/bus/event_source/devices/kprobe"):
        pytest.skip("this kernel has the kprobe PMU: test_links runs kprobes for real")
    prog = counter.prog("kprobe/do_exit")
    with pytest.raises(AttachError, match=r"kprobe PMU absent \(/sys/bus/event_source/devices/"
                                          r"kprobe missing\) - kernel built without "
                                          r"CONFIG_KPROBES\?$"):
        prog.attach()


@pytest.fixture
def fake_kprobe_pmu(monkeypatch):
    """The kprobe PMU as a kernel with CONFIG_KPROBES shows it (type 6, retprobe at
    config bit 0); perf_event_open recorded and refused (nothing to probe here)."""
    real_type, real_shift = tracefs.pmu_type, tracefs.pmu_format_shift
    monkeypatch.setattr(tracefs, "pmu_type",
                        lambda pmu, why="": 6 if pmu == "kprobe" else real_type(pmu, why))
    monkeypatch.setattr(tracefs, "pmu_format_shift",
                        lambda pmu, f: 0 if pmu == "kprobe" else real_shift(pmu, f))
    seen = []

    def open_(attr, pid=-1, cpu=0, what=""):
        seen.append((attr.type, attr.config, ctypes.string_at(attr.config1), attr.config2,
                     pid, cpu, what))
        raise BPFError(what, errno.ENOENT)
    monkeypatch.setattr(syscall, "perf_event_open", open_)
    return seen


@pytest.mark.parametrize("section, opts, want", [
    ("kprobe/do_exit", {}, (6, 0, b"do_exit", 0, "creating kprobe on do_exit")),
    ("kprobe/do_exit+0x10", {}, (6, 0, b"do_exit", 16, "creating kprobe on do_exit")),
    ("kretprobe/do_exit", {}, (6, 1, b"do_exit", 0, "creating kretprobe on do_exit")),
    ("kprobe", {"func_name": "vfs_read", "offset": 4},
     (6, 0, b"vfs_read", 4, "creating kprobe on vfs_read")),
    ("kprobe", {"func_name": "vfs_read", "retprobe": True},
     (6, 1, b"vfs_read", 0, "creating kretprobe on vfs_read")),
    ("kretprobe/do_exit", {"retprobe": False},
     (6, 0, b"do_exit", 0, "creating kprobe on do_exit")),
])
def test_kprobe_attr(fake_kprobe_pmu, section, opts, want):
    prog = fake_prog(section)
    try:
        with pytest.raises(AttachError, match=want[-1]) as e:
            attach_program(prog, **opts)
        assert e.value.errno == errno.ENOENT
        typ, config, name, offset, pid, cpu, what = fake_kprobe_pmu[0]
        assert (typ, config, name, offset, what) == want and (pid, cpu) == (-1, 0)
    finally:
        prog.close()


def test_kprobe_link_desc(fake_kprobe_pmu, monkeypatch):
    """The perf event opened goes to the common perf attach with its description."""
    got = []
    monkeypatch.setattr(syscall, "perf_event_open", lambda attr, pid=-1, cpu=0, what="":
                        null_fd())
    monkeypatch.setattr(hooks, "_attach_perf_event",
                        lambda prog, pfd, opts, desc: got.append(desc) or Link(pfd, desc=desc))
    prog, ret = fake_prog("kprobe/do_exit+0x10"), fake_prog("kretprobe/vfs_read")
    try:
        for p in (prog, ret):
            with attach_program(p) as link:
                assert link.desc == got[-1]
        assert got == ["kprobe do_exit+0x10", "kretprobe vfs_read+0x0"]
    finally:
        prog.close()
        ret.close()


def test_kallsyms_unreadable_is_false(monkeypatch):
    def refuse(*a, **kw):
        raise PermissionError(errno.EACCES, "no")
    monkeypatch.setattr(hooks, "open", refuse, raising=False)
    assert hooks._kallsyms_has("pybpf_unreadable_probe") is False


def test_ksyscall_names_the_wrapped_syscall(fake_kprobe_pmu):
    if platform.machine() != "x86_64":
        pytest.skip("syscall wrapper names checked for x86_64")
    assert hooks._kallsyms_has("__x64_sys_bpf") is True
    assert hooks._kallsyms_has("pybpf_no_such_symbol") is False
    prog = fake_prog("ksyscall/getppid")
    ret = fake_prog("kretsyscall/getppid")
    bare = fake_prog("ksyscall")
    try:
        for p, opts in ((prog, {}), (ret, {}), (bare, {"syscall_name": "openat"}),
                        (prog, {"retprobe": True})):
            with pytest.raises(AttachError):
                attach_program(p, **opts)
        assert [(c[1], c[2], c[3]) for c in fake_kprobe_pmu] == [
            (0, b"__x64_sys_getppid", 0), (1, b"__x64_sys_getppid", 0),
            (0, b"__x64_sys_openat", 0), (1, b"__x64_sys_getppid", 0)]
        with pytest.raises(AttachError, match=r"syscall name missing \(SEC\(\"ksyscall/NAME"
                                              r"\"\) or syscall_name=\)"):
            attach_program(bare)
    finally:
        for p in (prog, ret, bare):
            p.close()


def test_kernel_functions_from_tracefs_and_kallsyms(kernel, monkeypatch):
    names = hooks.kernel_functions("bpf_map_lookup_e?em")
    assert names == ["bpf_map_lookup_elem"]
    assert hooks.kernel_functions("pybpf_nothing_*") == []
    assert hooks.kernel_functions("vfs_rea?") == ["vfs_read"]

    def no_tracefs():
        raise AttachError("no tracefs")
    monkeypatch.setattr(tracefs, "tracefs", no_tracefs)
    assert hooks.kernel_functions("bpf_map_lookup_elem") == ["bpf_map_lookup_elem"]
    data = hooks.kernel_functions("bpf_map_*")
    assert data == sorted(set(data)) and "bpf_map_lookup_elem" in data
    assert hooks.kernel_functions("__start__bpf_raw_t?") == []     # a data symbol (D)


def test_kernel_functions_from_available_filter_functions(tmp_path, monkeypatch):
    """Kernels with ftrace list traceable functions in tracefs (this one refuses to
    read it): the file's format, first word of each line, module after it."""
    (tmp_path / "available_filter_functions").write_text(
        "vfs_write [ext4]\nvfs_read\n\nksys_read\nvfs_read\n")
    monkeypatch.setattr(tracefs, "tracefs", lambda: str(tmp_path))
    assert hooks.kernel_functions("vfs_*") == ["vfs_read", "vfs_write"]
    assert hooks.kernel_functions("*read") == ["ksys_read", "vfs_read"]


def test_kprobe_multi_link_create(monkeypatch):
    """kprobe.multi needs fprobes (absent here): what link_create gets."""
    seen = []

    def create(prog_fd, target_fd, attach_type, flags=0, **kw):
        assert (target_fd, flags) == (0, 0)
        km = kw["kprobe_multi"]
        ptrs = (ctypes.c_void_p * km["cnt"]).from_address(km["syms"])
        cookies = list((ctypes.c_uint64 * km["cnt"]).from_address(km["cookies"])) \
            if km["cookies"] else None
        seen.append((attach_type, km["flags"], [ctypes.string_at(p) for p in ptrs], cookies))
        return null_fd()
    monkeypatch.setattr(syscall, "link_create", create)
    monkeypatch.setattr(hooks, "kernel_functions", lambda pattern: {
        "vfs_*": ["vfs_read", "vfs_write"]}.get(pattern, []))
    progs = {s: fake_prog(s) for s in ("kprobe.multi/vfs_*", "kretprobe.multi/vfs_*",
                                       "kprobe.multi", "kprobe.session/vfs_*")}
    try:
        with attach_program(progs["kprobe.multi/vfs_*"]) as link:
            assert link.desc == "kprobe.multi 2 functions"
        with attach_program(progs["kretprobe.multi/vfs_*"], cookies=[5, 6]):
            pass
        with attach_program(progs["kprobe.multi"], syms=["a"], retprobe=True):
            pass
        with attach_program(progs["kprobe.multi"], pattern="vfs_*"):
            pass
        with attach_program(progs["kprobe.session/vfs_*"]) as link:
            assert link.desc == "kprobe.session 2 functions"
        multi, ret = u.BPF_TRACE_KPROBE_MULTI, u.BPF_F_KPROBE_MULTI_RETURN
        assert seen == [(multi, 0, [b"vfs_read", b"vfs_write"], None),
                        (multi, ret, [b"vfs_read", b"vfs_write"], [5, 6]),
                        (multi, ret, [b"a"], None),
                        (multi, 0, [b"vfs_read", b"vfs_write"], None),
                        (u.BPF_TRACE_KPROBE_SESSION, 0, [b"vfs_read", b"vfs_write"], None)]
        with pytest.raises(AttachError, match=r"kprobe\.session programs run on entry and "
                                              r"return: retprobe= does not apply"):
            attach_program(progs["kprobe.session/vfs_*"], retprobe=True)
        with pytest.raises(AttachError, match=r"kprobe\.multi needs a pattern"):
            attach_program(progs["kprobe.multi"])
        with pytest.raises(AttachError, match=r"^attaching .*: no kernel function matches "
                                              r"'zz\*'$"):
            attach_program(progs["kprobe.multi"], pattern="zz*")
        assert len(seen) == 5
    finally:
        for p in progs.values():
            p.close()


# ------------------------------------------------------------------ uprobes


def test_probe_event_attr_for_uprobes(kernel):
    typ = int(pathlib.Path("/sys/bus/event_source/devices/uprobe/type").read_text())
    attr = hooks._probe_event("uprobe", True, 11, 22, ref_ctr_offset=0x30)
    ret = tracefs.pmu_format_shift("uprobe", "retprobe")
    ref = tracefs.pmu_format_shift("uprobe", "ref_ctr_offset")
    assert (attr.type, attr.config, attr.config1, attr.config2) == \
        (typ, (1 << ret) | (0x30 << ref), 11, 22)
    attr = hooks._probe_event("uprobe", False, 1, 2)
    assert (attr.type, attr.config) == (typ, 0)


def test_uprobe_where_and_errors(kernel, target_bins):
    from pybpf.obj.uprobe import func_offset
    path = target_bins["pie"]
    off_a = func_offset(path, "pybpf_target_a")
    assert hooks._uprobe_where("", {"binary": path, "func_name": "pybpf_target_a",
                                    "offset": 4}, False) == \
        (path, off_a + 4, f"{path}:pybpf_target_a+{off_a + 4:#x}")
    assert hooks._uprobe_where("", {"binary": path, "func_name": "pybpf_target_a"}, True) == \
        (path, off_a, f"{path}:pybpf_target_a+{off_a:#x}")
    assert hooks._uprobe_where("", {"binary": path, "offset": 0x20}, False) == \
        (path, 0x20, f"{path}:+0x20")
    assert hooks._uprobe_where(f"{path}:pybpf_target_a", {}, False) == \
        (path, off_a, f"{path}:pybpf_target_a+{off_a:#x}")
    with pytest.raises(AttachError, match=r"^uprobe needs a target: SEC\(\"uprobe/BINARY:"
                                          r"FUNCTION\"\) or binary= with func_name= or "
                                          r"offset=$"):
        hooks._uprobe_where("", {}, False)
    with pytest.raises(AttachError, match=rf"^uprobe on {path}: give a function name or a "
                                          r"non-zero offset$"):
        hooks._uprobe_where("", {"binary": path}, False)


def test_uprobe_pid_and_cpu(monkeypatch, counter, target_bins):
    from pybpf.obj.uprobe import func_offset
    path = target_bins["pie"]
    prog = counter.prog("uprobe")
    spy = Spy(monkeypatch, "perf_event_open")
    with attach_program(prog, binary=path, func_name="pybpf_target_a") as link:
        assert link.desc.startswith(f"uprobe {path}:pybpf_target_a+0x")
        run_target(path, 2)
    with attach_program(prog, binary=path, func_name="pybpf_target_a", pid=0):
        run_target(path, 2)                 # pid 0: this process only
    with attach_program(prog, binary=path, func_name="pybpf_target_a", retprobe=True) as link:
        assert link.desc.startswith(f"uretprobe {path}:pybpf_target_a+0x")
        run_target(path, 1)
    assert [(kw["pid"], kw["cpu"]) for _, kw in spy.calls] == [(-1, 0), (0, -1), (-1, 0)]
    ret_bit = 1 << tracefs.pmu_format_shift("uprobe", "retprobe")
    assert [a[0].config for a, _ in spy.calls] == [0, 0, ret_bit]
    assert [a[0].config2 for a, _ in spy.calls] == [func_offset(path, "pybpf_target_a")] * 3
    assert spy.calls[0][1]["what"].startswith(f"creating uprobe on {path}:pybpf_target_a+0x")
    assert spy.calls[2][1]["what"].startswith("creating uretprobe on ")
    assert counter.value == 3


def test_uprobe_cookie(cookie_obj, target_bins):
    path = target_bins["pie"]
    child = subprocess.Popen([path, "3", "wait"], stdin=subprocess.PIPE)
    try:
        obj = cookie_obj
        obj.rodata["target_pid"] = child.pid
        obj.load()
        with obj.programs["cookie_uprobe"].attach(binary=path, func_name="pybpf_target_b",
                                                  cookie=0x5151), \
                obj.programs["cookie_uprobe_multi"].attach(
                    binary=path, syms=["pybpf_target_a", "pybpf_target_b"], cookies=[3, 40]):
            child.communicate(b"go\n")
        assert child.returncode == 0
        assert (obj.bss["up_runs"], obj.bss["up_cookie"]) == (3, 0x5151)
        assert (obj.bss["multi_runs"], obj.bss["multi_cookie_sum"]) == (6, 3 * (3 + 40))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_uprobe_multi_link_create(monkeypatch, counter, target_bins):
    from pybpf.obj.uprobe import func_offset
    path = target_bins["nopie"]
    off_a, off_b = func_offset(path, "pybpf_target_a"), func_offset(path, "pybpf_target_b")
    seen = []
    real = syscall.link_create

    def create(prog_fd, target_fd, attach_type, flags=0, **kw):
        assert (target_fd, flags) == (0, 0)
        um = kw["uprobe_multi"]
        n = um["cnt"]

        def arr(addr):
            return list((ctypes.c_uint64 * n).from_address(addr)) if addr else None
        seen.append((attach_type, ctypes.string_at(um["path"]).decode(), arr(um["offsets"]),
                     arr(um["cookies"]), arr(um["ref_ctr_offsets"]), um["flags"], um["pid"]))
        return real(prog_fd, target_fd, attach_type, flags, **kw)
    monkeypatch.setattr(syscall, "link_create", create)
    prog = load("uprobe.multi", counter_insns(counter.map.fd))
    ret = load("uretprobe.multi", counter_insns(counter.map.fd))
    counter.progs += [prog, ret]
    with attach_program(prog, binary=path, func_pattern="pybpf_target_?") as link:
        assert link.desc == f"uprobe.multi {path} (2 offsets)"
    with attach_program(prog, binary=path, offsets=[off_b], pid=os.getpid()):
        pass
    with attach_program(ret, binary=path, syms=["pybpf_target_a"], cookies=[9],
                        pid=-5):
        run_target(path, 2)
    assert counter.value == 2
    multi = u.BPF_TRACE_UPROBE_MULTI
    assert seen == [
        (multi, path, sorted([off_a, off_b]) if seen[0][2] == sorted(seen[0][2])
         else [off_a, off_b], None, None, 0, 0),
        (multi, path, [off_b], None, None, 0, os.getpid()),
        (multi, path, [off_a], [9], None, u.BPF_F_UPROBE_MULTI_RETURN, 0)]
    assert sorted(seen[0][2]) == sorted([off_a, off_b])
    with pytest.raises(AttachError, match=r"uprobe\.multi needs SEC\(\"uprobe\.multi/BINARY:"
                                          r"PATTERN\"\) or binary="):
        attach_program(prog)
    with pytest.raises(AttachError, match=rf"uprobe\.multi on {path}: give a function "
                                          r"pattern, syms= or offsets="):
        attach_program(prog, binary=path)
    assert len(seen) == 3


def test_uprobe_multi_pids_cookies_ref_ctrs(monkeypatch):
    """pid > 0 filters on that process (even init), anything else is every process;
    cookies and reference counter offsets go one per offset."""
    prog = fake_prog("uprobe.multi")
    seen = []

    def create(prog_fd, target_fd, attach_type, **kw):
        um = kw["uprobe_multi"]

        def arr(addr):
            return list((ctypes.c_uint64 * um["cnt"]).from_address(addr)) if addr else None
        seen.append((um["pid"], arr(um["offsets"]), arr(um["cookies"]),
                     arr(um["ref_ctr_offsets"])))
        return null_fd()
    monkeypatch.setattr(syscall, "link_create", create)
    try:
        for pid in (1, 0, -1):
            with attach_program(prog, binary="/bin/true", offsets=[0x40], pid=pid):
                pass
        with attach_program(prog, binary="/bin/true", offsets=[0x40, 0x80], cookies=[1, 2],
                            ref_ctr_offsets=[0x10, 0x18]):
            pass
        assert seen == [(1, [0x40], None, None), (0, [0x40], None, None),
                        (0, [0x40], None, None), (0, [0x40, 0x80], [1, 2], [0x10, 0x18])]
    finally:
        prog.close()


def test_uprobe_session_takes_no_retprobe(monkeypatch):
    prog = fake_prog("uprobe.session")
    creates = Spy(monkeypatch, "link_create", result=null_fd)
    try:
        with pytest.raises(AttachError, match=r"uprobe\.session programs run on entry and "
                                              r"return: retprobe= does not apply"):
            attach_program(prog, binary="/bin/true", offsets=[0x40], retprobe=True)
        assert creates.calls == []
        with attach_program(prog, binary="/bin/true", offsets=[0x40]):
            pass
        (_, _, attach_type), kw = creates.calls[0]
        assert attach_type == u.BPF_TRACE_UPROBE_SESSION
        assert kw["uprobe_multi"]["flags"] == 0 and kw["uprobe_multi"]["cnt"] == 1
    finally:
        prog.close()


# ------------------------------------------------------------------ networking, cgroups


def test_net_and_cgroup_link_create_arguments(monkeypatch, tmp_path):
    creates = Spy(monkeypatch, "link_create", result=null_fd)
    xdp, tcx, kit = fake_prog("xdp"), fake_prog("tcx/ingress"), fake_prog("netkit/primary")
    cg, ns = fake_prog("cgroup/sock_create"), fake_prog("sk_lookup")
    try:
        with attach_program(xdp, ifindex=1, flags=u.XDP_FLAGS_SKB_MODE) as link:
            assert link.desc == "xdp ifindex 1"
        with attach_program(xdp, interface="lo"):
            pass
        assert creates.calls[-1][0][3] == 0
        del creates.calls[-1]
        with attach_program(tcx, interface="lo", relative_fd=5, expected_revision=3) as link:
            assert link.desc == "BPF_TCX_INGRESS ifindex 1"
        with attach_program(tcx, ifindex=1, relative_id=8, flags=u.BPF_F_BEFORE):
            pass
        with attach_program(kit, ifindex=1) as link:
            assert link.desc == "BPF_NETKIT_PRIMARY ifindex 1"
        with attach_program(cg, cgroup_fd=14):
            pass
        assert creates.calls[-1][0][1] == 14 and creates.calls[-1][0][3] == 0
        del creates.calls[-1]
        with attach_program(cg, cgroup_fd=12, flags=u.BPF_F_ALLOW_MULTI) as link:
            assert link.desc == "BPF_CGROUP_INET_SOCK_CREATE cgroup fd 12"
        with attach_program(cg, cgroup=str(tmp_path)) as link:
            assert link.desc == f"BPF_CGROUP_INET_SOCK_CREATE cgroup {tmp_path}"
        with attach_program(ns, netns_fd=13) as link:
            assert link.desc == "BPF_SK_LOOKUP netns fd 13"
        with attach_program(ns) as link:
            assert link.desc == "BPF_SK_LOOKUP netns /proc/self/ns/net"
        got = [(a[1], a[2], a[3] if len(a) > 3 else kw.get("flags", 0),
                kw.get("tcx")) for a, kw in creates.calls]
        assert got[0] == (1, u.BPF_XDP, u.XDP_FLAGS_SKB_MODE, None)
        assert got[1] == (1, u.BPF_TCX_INGRESS, 0, {"relative_fd": 5, "expected_revision": 3})
        assert got[2] == (1, u.BPF_TCX_INGRESS, u.BPF_F_BEFORE | u.BPF_F_ID,
                          {"relative_fd": 8, "expected_revision": 0})
        assert got[3] == (1, u.BPF_NETKIT_PRIMARY, 0, {"relative_fd": 0, "expected_revision": 0})
        assert got[4] == (12, u.BPF_CGROUP_INET_SOCK_CREATE, u.BPF_F_ALLOW_MULTI, None)
        assert got[5][1:] == (u.BPF_CGROUP_INET_SOCK_CREATE, 0, None) and got[5][0] > 2
        assert got[6] == (13, u.BPF_SK_LOOKUP, 0, None)
        assert got[7][1] == u.BPF_SK_LOOKUP and got[7][0] > 2
        with pytest.raises(AttachError, match=r"^tcx needs ifindex= or interface="):
            hooks.attach_tcx(tcx, "", {})
        with pytest.raises(AttachError, match=r"^netkit needs ifindex= or interface="):
            hooks.attach_netkit(kit, "", {})
        with pytest.raises(AttachError, match="opening network namespace /nonexistent"):
            attach_program(ns, netns="/nonexistent")
        plain = tmp_path / "file"
        plain.write_text("")
        before = len(creates.calls)
        with pytest.raises(AttachError, match=f"opening cgroup {plain}") as e:
            attach_program(cg, cgroup=str(plain))       # O_DIRECTORY: not a cgroup
        assert e.value.errno == errno.ENOTDIR and len(creates.calls) == before
    finally:
        for p in (xdp, tcx, kit, cg, ns):
            p.close()


def test_cgroup_default_is_the_v2_root(monkeypatch):
    seen = []
    monkeypatch.setattr(tracefs, "cgroup2_root", lambda: "/")
    monkeypatch.setattr(syscall, "link_create",
                        lambda fd, target, at, flags=0, **kw: seen.append(
                            os.readlink(f"/proc/self/fd/{target}")) or null_fd())
    prog = fake_prog("cgroup/sock_create")
    try:
        with attach_program(prog) as link:
            assert link.desc == "BPF_CGROUP_INET_SOCK_CREATE cgroup /"
        assert seen == ["/"]
    finally:
        prog.close()


# ------------------------------------------------------------------ dispatch and wrapping


def test_auto_attach_skip_reasons():
    def why(section):
        return auto_attach_skip(fake_prog(section))
    assert why("tp/sched/sched_switch") is None
    assert why("tp_btf/sys_enter") is None               # "always"
    assert why("tracepoint") == "needs a tracepoint: SEC(\"tp/CATEGORY/NAME\") or tracepoint="
    assert why("xdp") == "needs a network interface (interface= or ifindex=)"
    assert why("perf_event") == \
        "needs a perf event (perf_event_fd=, or sample_period= / sample_freq=)"
    assert why("socket") == "socket_filter programs have no automatic attachment"
    assert why("nosuchsection") == "SEC('nosuchsection') names no hook"


def test_attach_program_messages(monkeypatch):
    prog = fake_prog("tp/syscalls/sys_enter_getppid")
    so = fake_prog("struct_ops/x")
    try:
        where = "program 'p' (SEC 'tp/syscalls/sys_enter_getppid')"
        with pytest.raises(AttachError, match=rf"^cannot attach {where}: unknown attach "
                                              r"method 'bogus'$".replace("(", r"\(")
                           .replace(")", r"\)")):
            attach_program(prog, method="bogus")
        with pytest.raises(AttachError) as e:
            attach_program(prog, bogus=1, other=2)
        assert str(e.value) == (f"cannot attach {where}: unexpected option(s) bogus, other "
                                "for tracepoint (accepted: cookie, force_ioctl_attach, "
                                "tracepoint)")
        with pytest.raises(AttachError) as e:
            attach_program(so)
        assert "registered with the struct_ops map that binds them" in str(e.value)
        assert str(e.value).endswith("; use method= or attach it through its fd")

        def perm(*a, **kw):
            raise BPFPermissionError("no caps", errno.EPERM)
        monkeypatch.setattr(hooks, "attach_tracepoint", perm)
        monkeypatch.setitem(hooks.METHODS, "tracepoint",
                            hooks.METHODS["tracepoint"]._replace(fn=perm))
        with pytest.raises(BPFPermissionError) as e:
            attach_program(prog)
        assert str(e.value) == f"attaching {where}: no caps" and e.value.errno == errno.EPERM

        def oserr(*a, **kw):
            raise FileNotFoundError(errno.ENOENT, "gone")
        monkeypatch.setitem(hooks.METHODS, "tracepoint",
                            hooks.METHODS["tracepoint"]._replace(fn=oserr))
        with pytest.raises(AttachError) as e:
            attach_program(prog)
        assert str(e.value).startswith(f"attaching {where}: ") and e.value.errno == errno.ENOENT

        def bad(*a, **kw):
            raise TypeError("int() argument")
        monkeypatch.setitem(hooks.METHODS, "tracepoint",
                            hooks.METHODS["tracepoint"]._replace(fn=bad))
        with pytest.raises(AttachError) as e:
            attach_program(prog)
        assert str(e.value) == f"attaching {where}: bad option value: int() argument"
        monkeypatch.setitem(hooks.METHODS, "tracepoint",
                            hooks.METHODS["tracepoint"]._replace(
                                fn=lambda *a: (_ for _ in ()).throw(ValueError("v"))))
        with pytest.raises(AttachError, match="bad option value: v$"):
            attach_program(prog)
    finally:
        prog.close()
        so.close()


def test_perf_event_without_a_source_is_refused():
    prog = fake_prog("perf_event")
    try:
        with pytest.raises(AttachError) as e:
            attach_program(prog, method="perf_event", pid=1)
        assert str(e.value) == ("attaching program 'p' (SEC 'perf_event'): perf_event "
                                "programs need perf_event_fd= or sample_period= / "
                                "sample_freq=")
    finally:
        prog.close()


def test_options_of_the_wrong_type_are_attach_errors(counter):
    prog = counter.prog("perf_event")
    with pytest.raises(AttachError, match="bad option value"):
        attach_program(prog, method="perf_event", sample_period="x")
