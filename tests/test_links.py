"""Attaching programs: every attach kind this kernel has, for real, plus the
dispatch, option checking and error paths.

Most kernel tests use tiny hand-assembled programs that count their runs in
a one-slot array map (so they do not depend on the loader); the tests at the
end load bpf/attach_*.bpf.c through BPFObject.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Iterator, List, Optional

import pytest

from conftest import built, skip_missing_feature
from pybpf.obj import sections
from pybpf.kernel import syscall, fs as tracefs
from pybpf import uapi
from pybpf.errors import AttachError, BPFError
from pybpf.asm.insn import Insn
from pybpf.link.hooks import (METHODS, IterLink, Link, PerfEventLink, attach_program,
                         auto_attachable, parse_kprobe_target)
from pybpf.kernel.sysinfo import interface_index, syscall_func_name
from pybpf.programs import Program

u = uapi

# ------------------------------------------------------------------ program builders


def _i(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return Insn(code, dst, src, off, imm).encode()


def _exit(ret: int) -> bytes:
    return _i(u.BPF_ALU64 | u.BPF_MOV | u.BPF_K, 0, imm=ret) + _i(u.BPF_JMP | u.BPF_EXIT)


def counter_insns(map_fd: int, ret: int = 0, pid: Optional[int] = None) -> bytes:
    """Add 1 to slot 0 of an array map (only when the current tgid is pid, if given),
    then return ret."""
    body = (_i(u.BPF_ST | u.BPF_MEM | u.BPF_W, 10, off=-4, imm=0)
            + _i(u.BPF_ALU64 | u.BPF_MOV | u.BPF_X, 2, 10)
            + _i(u.BPF_ALU64 | u.BPF_ADD | u.BPF_K, 2, imm=-4)
            + _i(u.BPF_LD | u.BPF_IMM | u.BPF_DW, 1, u.BPF_PSEUDO_MAP_FD, imm=map_fd) + _i(0)
            + _i(u.BPF_JMP | u.BPF_CALL, imm=u.BPF_FUNC_map_lookup_elem)
            + _i(u.BPF_JMP | u.BPF_JEQ | u.BPF_K, 0, off=2, imm=0)
            + _i(u.BPF_ALU64 | u.BPF_MOV | u.BPF_K, 1, imm=1)
            + _i(u.BPF_STX | u.BPF_ATOMIC | u.BPF_DW, 0, 1, imm=u.BPF_ADD))
    if pid is not None:
        body = (_i(u.BPF_JMP | u.BPF_CALL, imm=u.BPF_FUNC_get_current_pid_tgid)
                + _i(u.BPF_ALU64 | u.BPF_RSH | u.BPF_K, 0, imm=32)
                + _i(u.BPF_JMP | u.BPF_JNE | u.BPF_K, 0, off=len(body) // 8, imm=pid)
                + body)
    return body + _exit(ret)


def load(section: str, insns: bytes, name: str = "t", attach_btf_id: int = 0) -> Program:
    """A Program for SEC(section), loaded straight through syscall.prog_load."""
    sec_def, target = sections.find_sec_def(section)
    prog = Program(name, section, sec_def, target, bytearray(insns))
    prog._fd, _ = syscall.prog_load(prog.type, insns, "GPL", name,
                                    expected_attach_type=prog.expected_attach_type,
                                    attach_btf_id=attach_btf_id)
    return prog


class Counter:
    """A one-slot u64 array map and programs that count into it."""

    def __init__(self) -> None:
        self.map = syscall.map_create(u.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="count")
        self.progs: List[Program] = []

    def prog(self, section: str, ret: int = 0, pid: Optional[int] = None,
             name: str = "t") -> Program:
        prog = load(section, counter_insns(self.map.fd, ret, pid), name)
        self.progs.append(prog)
        return prog

    @property
    def value(self) -> int:
        return struct.unpack("<Q", syscall.map_lookup(self.map.fd, b"\0" * 4, 8))[0]

    def close(self) -> None:
        for prog in self.progs:
            prog.close()
        self.map.close()


@pytest.fixture
def counter(kernel) -> Iterator[Counter]:
    c = Counter()
    yield c
    c.close()


def prog_id(prog: Program) -> int:
    return syscall.obj_info(prog.fd, u.bpf_prog_info).id


def links_of(pid: int) -> List[int]:
    """Ids of every BPF link in the system attached to program id pid."""
    found, link_id = [], 0
    while True:
        link_id = syscall.next_id(u.BPF_LINK_GET_NEXT_ID, link_id)
        if link_id is None:
            return found
        try:
            with syscall.fd_by_id(u.BPF_LINK_GET_FD_BY_ID, link_id) as fd:
                if syscall.obj_info(fd.fd, u.bpf_link_info).prog_id == pid:
                    found.append(link_id)
        except BPFError as e:
            if e.errno != errno.ENOENT:
                raise


def prog_exists(pid: int) -> bool:
    try:
        syscall.fd_by_id(u.BPF_PROG_GET_FD_BY_ID, pid).close()
        return True
    except BPFError as e:
        assert e.errno == errno.ENOENT
        return False


def wait_prog_freed(pid: int) -> bool:
    """Programs are freed after an RCU grace period: poll a bounded number of times."""
    for _ in range(200):
        if not prog_exists(pid):
            return True
        time.sleep(0.01)
    return False


def assert_fully_detached(counter: Optional[Counter], prog: Program) -> None:
    """Nothing refers to prog any more once our fds are gone: no link, and the
    program itself is freed (an attachment would hold a reference)."""
    pid = prog_id(prog)
    assert links_of(pid) == []
    if counter is not None:
        counter.progs.remove(prog)
    prog.close()
    assert wait_prog_freed(pid), f"program id {pid} still referenced after detach"


# ------------------------------------------------------------------ dispatch (no kernel)


def _unloaded(section: str) -> Program:
    sec_def, target = sections.find_sec_def(section)
    return Program("p", section, sec_def, target, bytearray(_exit(0)))


def test_every_attach_name_in_the_sec_table_has_a_method():
    names = {d.attach for d in sections.SECTION_DEFS if d.attach}
    assert names <= set(METHODS), names - set(METHODS)


@pytest.mark.parametrize("section, why", [
    ("no_such_section", "matches no SEC() convention"),
    ("socket", "socket_filter programs have no automatic attachment"),
])
def test_not_auto_attachable_names_program_and_section(section, why):
    with pytest.raises(AttachError) as e:
        attach_program(_unloaded(section))
    assert "'p'" in str(e.value) and repr(section) in str(e.value) and why in str(e.value)


def test_unknown_option_is_refused_before_any_kernel_call():
    with pytest.raises(AttachError, match=r"unexpected option\(s\) bogus for tracepoint"):
        attach_program(_unloaded("tp/sched/sched_switch"), bogus=1)


def test_unloaded_program_is_refused():
    with pytest.raises(AttachError, match="not loaded"):
        attach_program(_unloaded("tp/sched/sched_switch"))


@pytest.mark.parametrize("section, auto", [
    ("tp/sched/sched_switch", True), ("tracepoint", False), ("kprobe/do_exit", True),
    ("kprobe", False), ("uprobe", False), ("uprobe//bin/true:main", True),
    ("xdp", False), ("tc/ingress", False), ("cgroup/sock_create", False),
    ("iter/task", True), ("tp_btf/sys_enter", True), ("sk_lookup", False),
    ("perf_event", False), ("socket", False), ("usdt/libc.so.6:p:q", True),
    ("usdt", False), ("usdt.s//bin/x:p:q", True),
])
def test_auto_attachable(section, auto):
    assert auto_attachable(_unloaded(section)) is auto


@pytest.mark.parametrize("target, retprobe, want", [
    ("do_sys_open", False, ("do_sys_open", 0)),
    ("do_sys_open+0x10", False, ("do_sys_open", 16)),
    ("tcp_v4_rcv.cold+8", False, ("tcp_v4_rcv.cold", 8)),
    ("do_exit", True, ("do_exit", 0)),
])
def test_parse_kprobe_target(target, retprobe, want):
    assert parse_kprobe_target(target, retprobe) == want


@pytest.mark.parametrize("target, retprobe", [
    ("", False), ("f+", False), ("f+zz", False), ("a/b", False), ("do_exit+4", True),
])
def test_parse_kprobe_target_rejects(target, retprobe):
    with pytest.raises(AttachError, match="kprobe target|kretprobes take no offset"):
        parse_kprobe_target(target, retprobe)


@pytest.mark.parametrize("name, machine, wrapped, want", [
    ("openat", "x86_64", True, "__x64_sys_openat"),
    ("openat", "aarch64", True, "__arm64_sys_openat"),
    ("openat", "s390x", True, "__s390x_sys_openat"),
    ("openat", "x86_64", False, "sys_openat"),
    ("openat", "sparc64", True, "sys_openat"),
])
def test_syscall_func_name(name, machine, wrapped, want):
    assert syscall_func_name(name, machine, wrapped) == want


def test_usdt_outside_an_object_is_refused(counter):
    prog = counter.prog("kprobe/x")
    with pytest.raises(AttachError, match="USDT target 'x' must be BINARY:PROVIDER:NAME"):
        attach_program(prog, method="usdt")
    with pytest.raises(AttachError, match="USDT programs need a target"):
        attach_program(counter.prog("kprobe"), method="usdt")
    with pytest.raises(AttachError, match="attach through their object"):
        attach_program(prog, method="usdt", binary=str(built("usdt_target")),
                       provider="pybpf", name="consts")


# ------------------------------------------------------------------ tracepoints


def test_tracepoint_link_counts_and_detaches(counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid", pid=os.getpid())
    with prog.attach() as link:
        assert not isinstance(link, PerfEventLink)
        info = link.info()
        assert (info.type, info.prog_id) == (u.BPF_LINK_TYPE_PERF_EVENT, prog_id(prog))
        assert info.type_name == "perf_event"
        for _ in range(7):
            os.getppid()
        assert counter.value == 7
    assert link.closed
    link.close()                    # idempotent
    os.getppid()
    assert counter.value == 7
    assert_fully_detached(counter, prog)


def test_tracepoint_target_from_options_and_ioctl_fallback(counter):
    prog = counter.prog("tracepoint", pid=os.getpid())
    link = attach_program(prog, tracepoint="syscalls/sys_enter_getppid",
                          force_ioctl_attach=True)
    assert isinstance(link, PerfEventLink)
    with pytest.raises(AttachError, match="not a BPF link"):
        link.info()
    os.getppid()
    os.getppid()
    assert counter.value == 2
    link.close()
    os.getppid()
    assert counter.value == 2
    assert_fully_detached(counter, prog)


@pytest.mark.parametrize("section, msg", [
    ("tp/nosuchcat/nosuchtp", r"tracepoint nosuchcat/nosuchtp does not exist"),
    ("tp/sched", r"must be CATEGORY/NAME"),
    ("tp/../x", r"invalid tracepoint name"),
])
def test_bad_tracepoint_names_the_program(counter, section, msg):
    prog = counter.prog(section)
    with pytest.raises(AttachError, match=msg) as e:
        prog.attach()
    assert f"SEC {section!r}" in str(e.value)


def test_tracefs_is_found_or_mounted(kernel):
    path = tracefs.tracefs()
    assert os.path.isdir(os.path.join(path, "events"))
    assert tracefs.tracepoint_id("sched", "sched_switch") > 0


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:4 master:1 - cgroup2 cgroup2 rw
50 23 0:40 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw
51 27 0:41 /sub /mnt/with\\040space rw - bpf bpf rw
52 51 0:42 / /mnt/with\\040space/inner rw - tmpfs tmpfs rw
garbage line
"""


def test_parse_mountinfo_and_mount_of():
    table = tracefs.parse_mountinfo(MOUNTINFO)
    assert [m.fstype for m in table] == ["proc", "ext4", "tmpfs", "cgroup2", "tracefs", "bpf",
                                         "tmpfs"]
    assert table[5] == tracefs.Mount("/mnt/with space", "bpf", "/sub")
    assert tracefs.mount_of("/mnt/with space/pin", table).fstype == "bpf"
    assert tracefs.mount_of("/mnt/with space/inner/x", table).fstype == "tmpfs"
    assert tracefs.mount_of("/mnt/with spacex", table).fstype == "ext4"
    assert tracefs.mount_of("/sys/fs/cgroup/unified", table).fstype == "cgroup2"


@pytest.mark.parametrize("text, shift", [("config:0", 0), ("config:32-63", 32)])
def test_pmu_format_shift(text, shift):
    assert tracefs.parse_format_shift(text) == shift


def test_pmu_format_garbage():
    with pytest.raises(AttachError, match="unexpected PMU format"):
        tracefs.parse_format_shift("config1:0-63")


def test_unmountable_tracefs_says_what_to_mount(monkeypatch):
    def refuse(fstype, target, options=""):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), target)
    monkeypatch.setattr(tracefs, "mounts", lambda: tracefs.parse_mountinfo(MOUNTINFO)[:3])
    monkeypatch.setattr(tracefs, "_mount", refuse)
    with pytest.raises(AttachError, match="run: mount -t tracefs tracefs /sys/kernel/tracing"):
        tracefs.tracefs()
    with pytest.raises(AttachError, match="run: mount -t bpf -o mode=0700 bpf /sys/fs/bpf"):
        tracefs.ensure_bpffs_for("/sys/fs/bpf/pybpf/link")


MOUNT_NS_SCRIPT = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x00020000) == 0                      # CLONE_NEWNS
assert libc.mount(None, b"/", None, 16384 | (1 << 18), None) == 0   # MS_REC | MS_PRIVATE
from pybpf.kernel import fs as tracefs
for m in reversed(tracefs.mounts()):
    if m.fstype in ("tracefs", "bpf"):
        assert libc.umount2(m.point.encode(), 2) == 0      # MNT_DETACH
assert not any(m.fstype in ("tracefs", "bpf") for m in tracefs.mounts())
print(tracefs.tracefs(), tracefs.tracepoint_id("sched", "sched_switch") > 0)
tracefs.ensure_bpffs_for("/sys/fs/bpf/pybpf-ns/link")
print(tracefs.mount_of("/sys/fs/bpf/pybpf-ns").fstype)
"""


def test_tracefs_and_bpffs_are_mounted_when_missing(kernel):
    """In a private mount namespace with neither mounted: both get mounted."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", MOUNT_NS_SCRIPT, root], check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["/sys/kernel/tracing", "True", "bpf"]


def test_raw_tracepoint(counter):
    prog = counter.prog("raw_tp/sys_enter", pid=os.getpid())
    with prog.attach() as link:
        assert link.info().type == u.BPF_LINK_TYPE_RAW_TRACEPOINT
        os.getppid()
        assert counter.value >= 1
    seen = counter.value
    os.getppid()
    assert counter.value == seen
    assert_fully_detached(counter, prog)


def test_raw_tracepoint_unknown_name(counter):
    prog = counter.prog("raw_tp")
    with pytest.raises(AttachError, match="no_such_tp"):
        attach_program(prog, tracepoint="no_such_tp")


# ------------------------------------------------------------------ BTF-based: tp_btf, iter


@pytest.fixture(scope="module")
def vmlinux():
    from pybpf.btf import BTF
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        return BTF.parse(f.read())


def test_tp_btf_link(counter, vmlinux):
    btf_id = vmlinux.find("btf_trace_sys_enter", u.BTF_KIND_TYPEDEF)[0]
    insns = counter_insns(counter.map.fd, 0, os.getpid())
    sec_def, target = sections.find_sec_def("tp_btf/sys_enter")
    prog = Program("t", "tp_btf/sys_enter", sec_def, target, bytearray(insns))
    prog._fd, _ = syscall.prog_load(prog.type, insns, "GPL", "t",
                                    expected_attach_type=u.BPF_TRACE_RAW_TP,
                                    attach_btf_id=btf_id)
    counter.progs.append(prog)
    with prog.attach() as link:
        assert link.info().type in (u.BPF_LINK_TYPE_TRACING, u.BPF_LINK_TYPE_RAW_TRACEPOINT)
        os.getppid()
        assert counter.value >= 1
    assert_fully_detached(counter, prog)


def _iter_task_insns() -> bytes:
    """For each task: bpf_seq_write(meta->seq, "task\\n", 5)."""
    text = int.from_bytes(b"task\n\0\0\0", "little")
    return (_i(u.BPF_LDX | u.BPF_MEM | u.BPF_DW, 2, 1, off=8)           # r2 = ctx->task
            + _i(u.BPF_JMP | u.BPF_JEQ | u.BPF_K, 2, off=9, imm=0)
            + _i(u.BPF_LDX | u.BPF_MEM | u.BPF_DW, 1, 1, off=0)         # r1 = ctx->meta
            + _i(u.BPF_LDX | u.BPF_MEM | u.BPF_DW, 1, 1, off=0)         # r1 = meta->seq
            + _i(u.BPF_LD | u.BPF_IMM | u.BPF_DW, 3, imm=text & 0xFFFFFFFF)
            + _i(0, imm=text >> 32)
            + _i(u.BPF_STX | u.BPF_MEM | u.BPF_DW, 10, 3, off=-8)
            + _i(u.BPF_ALU64 | u.BPF_MOV | u.BPF_X, 2, 10)
            + _i(u.BPF_ALU64 | u.BPF_ADD | u.BPF_K, 2, imm=-8)
            + _i(u.BPF_ALU64 | u.BPF_MOV | u.BPF_K, 3, imm=5)
            + _i(u.BPF_JMP | u.BPF_CALL, imm=u.BPF_FUNC_seq_write)
            + _exit(0))


def test_iter_link_reads_one_line_per_task(kernel, vmlinux):
    btf_id = vmlinux.find("bpf_iter_task", u.BTF_KIND_FUNC)[0]
    prog = load("iter/task", _iter_task_insns(), attach_btf_id=btf_id)
    try:
        with prog.attach() as link:
            assert isinstance(link, IterLink)
            assert link.info().type == u.BPF_LINK_TYPE_ITER
            with link.open() as f:
                first = f.read()
            assert first.count(b"task\n") >= 2 and set(first.split(b"\n")) == {b"task", b""}
            assert link.read().startswith(b"task\n")       # every open() is a new pass
            with attach_program(prog, tid=os.getpid()) as one:    # iter_info: one task
                assert one.read() == b"task\n"
        assert_fully_detached(None, prog)
    finally:
        prog.close()


# ------------------------------------------------------------------ perf events


def test_perf_event_sampling(counter):
    prog = counter.prog("perf_event")
    with pytest.raises(AttachError, match="need perf_event_fd="):
        prog.attach()
    with attach_program(prog, method="perf_event", sample_period=20000, pid=os.getpid(),
                        cpu=-1) as link:
        assert link.info().type == u.BPF_LINK_TYPE_PERF_EVENT
        for _ in range(2000):                   # burn CPU until a sample lands
            sum(range(20000))
            if counter.value:
                break
        assert counter.value > 0


def test_perf_event_fd_stays_with_the_caller(counter):
    prog = counter.prog("perf_event")
    attr = u.perf_event_attr(type=u.PERF_TYPE_SOFTWARE, config=u.PERF_COUNT_SW_CPU_CLOCK,
                             sample_period=1000000)
    with syscall.perf_event_open(attr, pid=os.getpid(), cpu=-1) as pfd:
        for force in (False, True):
            link = attach_program(prog, method="perf_event", perf_event_fd=pfd.fd,
                                  force_ioctl_attach=force)
            assert isinstance(link, PerfEventLink) is force
            link.close()
            os.fstat(pfd.fd)                        # still open: the link closed a dup
    assert_fully_detached(counter, prog)


def test_perf_event_needs_a_source(counter):
    prog = counter.prog("perf_event")
    with pytest.raises(AttachError, match="perf_event_fd= or sample_period="):
        attach_program(prog, method="perf_event")


# ------------------------------------------------------------------ kprobes


def _need_kprobe_pmu() -> None:
    if not os.path.exists(tracefs.pmu_dir("kprobe")):
        skip_missing_feature("CONFIG_KPROBES: kprobe PMU absent "
                             f"({tracefs.pmu_dir('kprobe')} missing)")


@pytest.mark.parametrize("section, opts", [
    ("kprobe/do_nanosleep", {}), ("kretprobe/do_nanosleep", {}),
    ("kprobe", {"func_name": "do_nanosleep"}), ("ksyscall/nanosleep", {}),
    ("kretsyscall/nanosleep", {}),
])
def test_kprobe(counter, section, opts):
    prog = counter.prog(section, pid=os.getpid())
    if not os.path.exists(tracefs.pmu_dir("kprobe")):
        with pytest.raises(AttachError, match="kprobe PMU absent"):
            attach_program(prog, **opts)
    _need_kprobe_pmu()
    with attach_program(prog, **opts):
        time.sleep(0.001)
        assert counter.value >= 1


def test_kprobe_multi(counter):
    prog = counter.prog("kprobe.multi/do_nanosl*", pid=os.getpid())
    if not os.path.exists(tracefs.pmu_dir("kprobe")):
        with pytest.raises(AttachError, match="KPROBE_MULTI") as e:
            prog.attach()
        assert e.value.errno == errno.EOPNOTSUPP
    _need_kprobe_pmu()
    with prog.attach():
        time.sleep(0.001)
        assert counter.value >= 1


def test_kernel_functions_glob(kernel):
    from pybpf.link.hooks import kernel_functions
    assert "do_nanosleep" in kernel_functions("do_nanosl*")
    assert kernel_functions("pybpf_no_such_function_*") == []


# ------------------------------------------------------------------ uprobes

TARGET_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) int pybpf_target_a(int x) { asm volatile(""); return x + 1; }
__attribute__((noinline)) int pybpf_target_b(int x) { asm volatile(""); return x * 2; }

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1, s = 0;
	char line[8];

	if (argc > 2 && !fgets(line, sizeof(line), stdin))   /* wait for the probes */
		return 2;
	for (int i = 0; i < n; i++)
		s += pybpf_target_a(i) + pybpf_target_b(i) + (getpid() == 0);
	return s < 0;
}
"""


@pytest.fixture(scope="module")
def target_bins(tmp_path_factory):
    """The uprobe target compiled as PIE and as a fixed-address executable."""
    d = tmp_path_factory.mktemp("uprobe")
    (d / "target.c").write_text(TARGET_C)
    out = {}
    for kind, flags in (("pie", ["-fPIE", "-pie"]), ("nopie", ["-fno-PIE", "-no-pie"])):
        path = d / f"target_{kind}"
        subprocess.run(["gcc", "-O1", *flags, "-o", str(path), str(d / "target.c")],
                       check=True)
        out[kind] = str(path)
    return out


def run_target(path: str, n: int) -> None:
    assert subprocess.run([path, str(n)]).returncode == 0


@pytest.mark.parametrize("kind", ["pie", "nopie"])
def test_uprobe_from_section(counter, target_bins, kind):
    path = target_bins[kind]
    prog = counter.prog(f"uprobe/{path}:pybpf_target_a")
    with prog.attach() as link:
        assert link.info().type == u.BPF_LINK_TYPE_PERF_EVENT
        run_target(path, 5)
        assert counter.value == 5
    run_target(path, 5)
    assert counter.value == 5
    assert_fully_detached(counter, prog)


def test_uretprobe_offset_and_ioctl(counter, target_bins):
    from pybpf.obj.uprobe import func_offset
    path = target_bins["pie"]
    ret = counter.prog(f"uretprobe/{path}:pybpf_target_b")
    raw = counter.prog("uprobe")
    with ret.attach(), attach_program(raw, binary=path, offset=func_offset(
            path, "pybpf_target_b"), force_ioctl_attach=True) as ioctl_link:
        assert isinstance(ioctl_link, PerfEventLink)
        run_target(path, 3)
        assert counter.value == 6
    assert_fully_detached(counter, ret)


def test_uprobe_pid_filter(counter, target_bins):
    path = target_bins["pie"]
    prog = counter.prog("uprobe")
    child = subprocess.Popen([path, "4", "wait"], stdin=subprocess.PIPE)
    try:
        with attach_program(prog, binary=path, func_name="pybpf_target_a", pid=child.pid), \
                attach_program(prog, binary=path, func_name="pybpf_target_b",
                               pid=os.getpid()):
            child.communicate(b"go\n")
            assert child.returncode == 0
            assert counter.value == 4        # only the probe for the child's pid fired
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_uprobe_on_shared_library_by_name(counter, target_bins):
    prog = counter.prog("uprobe/libc.so.6:getpid")
    child = subprocess.Popen([target_bins["pie"], "6", "wait"], stdin=subprocess.PIPE)
    try:
        with attach_program(prog, pid=child.pid):
            child.communicate(b"go\n")
        assert counter.value >= 6
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_uprobe_on_proc_self_exe(counter):
    """/proc/self/exe is resolved in the attaching process: our python binary.  The
    probe goes on its ELF entry point (``_start``, by raw file offset): every
    interpreter has one, stripped or not."""
    from elftools.elf.elffile import ELFFile
    exe = os.readlink("/proc/self/exe")
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        entry = elf.header.e_entry
        seg = next(s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"
                   and s["p_vaddr"] <= entry < s["p_vaddr"] + s["p_filesz"])
        offset = entry - seg["p_vaddr"] + seg["p_offset"]
    prog = counter.prog(f"uprobe//proc/self/exe:{offset:#x}")
    with prog.attach():
        subprocess.run([exe, "-c", "pass"], check=True)
        assert counter.value >= 1        # other processes may run this binary too


def test_uprobe_multi(counter, target_bins):
    path = target_bins["nopie"]
    prog = load(f"uprobe.multi/{path}:pybpf_target_?", counter_insns(counter.map.fd))
    counter.progs.append(prog)
    with prog.attach() as link:
        assert link.info().type == u.BPF_LINK_TYPE_UPROBE_MULTI
        run_target(path, 3)
        assert counter.value == 6          # a and b, 3 times each
    with attach_program(prog, binary=path, syms=["pybpf_target_b"]):
        run_target(path, 2)
        assert counter.value == 8
    assert_fully_detached(counter, prog)


@pytest.mark.parametrize("section, msg", [
    ("uprobe//nonexistent/bin:f", "does not exist"),
    ("uprobe/libnosuch.so.9:f", "not found"),
    ("uprobe//bin/true:no_such_function_xyz", "'no_such_function_xyz' not found"),
    ("uprobe//bin/true", "BINARY:FUNCTION"),
    ("uretprobe//bin/true:main+4", "uretprobes take no offset"),
])
def test_uprobe_bad_targets(counter, section, msg):
    prog = counter.prog(section)
    with pytest.raises(AttachError, match=msg) as e:
        prog.attach()
    assert repr(section) in str(e.value)


# ------------------------------------------------------------------ networking

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def private_netns() -> Iterator[None]:
    """Run the block in a new, empty network namespace (this thread only) with lo up."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            pytest.fail(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original netns")
    finally:
        os.close(home)


def udp_to_self(n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for _ in range(n):
            s.sendto(b"pybpf", s.getsockname())
            assert s.recv(16) == b"pybpf"


XDP_PASS, TCX_NEXT = 2, -1


def test_xdp_on_lo_in_private_netns(counter):
    prog = counter.prog("xdp", ret=XDP_PASS)
    with private_netns():
        with pytest.raises(AttachError, match="ifindex= or interface="):
            prog.attach()
        with prog.attach(interface="lo") as link:
            info = link.info()
            assert (info.type, info.prog_id) == (u.BPF_LINK_TYPE_XDP, prog_id(prog))
            udp_to_self(4)
            assert counter.value >= 4
        seen = counter.value
        udp_to_self(2)
        assert counter.value == seen
        with pytest.raises(AttachError, match="no network interface named 'nope0'"):
            prog.attach(interface="nope0")
    assert_fully_detached(counter, prog)


@pytest.mark.parametrize("section", ["tc/ingress", "tcx/egress"])
def test_tcx_on_lo_in_private_netns(counter, section):
    prog = counter.prog(section, ret=TCX_NEXT)
    with private_netns():
        with prog.attach(ifindex=interface_index("lo")) as link:
            assert link.info().type == u.BPF_LINK_TYPE_TCX
            udp_to_self(3)
            assert counter.value == 3
        udp_to_self(1)
        assert counter.value == 3
    assert_fully_detached(counter, prog)


def test_xdp_detach_while_pinned(counter, tmp_path):
    prog = counter.prog("xdp", ret=XDP_PASS)
    pin = f"{tracefs.BPFFS_DIR}/pybpf-test-{os.getpid()}/xdp_link"
    with private_netns():
        link = prog.attach(interface="lo")
        try:
            link.pin(pin)
            again = Link.from_pinned(pin)
            assert again.info() == link.info()
            link.close()
            udp_to_self(1)
            assert counter.value == 1          # the pin keeps it attached
            again.detach()                     # BPF_LINK_DETACH: gone despite the pin
            udp_to_self(1)
            assert counter.value >= 1        # other processes may run this binary too
        finally:
            link.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pin)
            os.rmdir(os.path.dirname(pin))
    assert_fully_detached(counter, prog)


def test_pin_outside_bpffs_says_what_to_mount(counter, tmp_path):
    prog = counter.prog("tp/sched/sched_switch")
    with prog.attach() as link:
        with pytest.raises(AttachError, match="mount -t bpf bpf /sys/fs/bpf"):
            link.pin(str(tmp_path / "link"))


def test_pinned_tracepoint_link_survives_close(counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid", pid=os.getpid())
    pin = f"{tracefs.BPFFS_DIR}/pybpf-tp-{os.getpid()}"
    link = prog.attach()
    try:
        link.pin(pin)
        link.close()
        os.getppid()
        assert counter.value >= 1        # other processes may run this binary too
        again = Link.from_pinned(pin)
        assert again.info().prog_id == prog_id(prog)
        os.unlink(pin)
        again.detach()              # perf links have no BPF_LINK_DETACH: closes
        assert again.closed
        os.getppid()
        assert counter.value >= 1        # other processes may run this binary too
    finally:
        link.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pin)
    assert_fully_detached(counter, prog)


def test_from_pinned_rejects_non_links(kernel, tmp_path):
    path = f"{tracefs.BPFFS_DIR}/pybpf-map-{os.getpid()}"
    tracefs.ensure_bpffs_for(path)
    with syscall.map_create(u.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as m:
        syscall.obj_pin(m.fd, path)
    try:
        with pytest.raises(AttachError, match="not a pinned BPF link"):
            Link.from_pinned(path)
    finally:
        os.unlink(path)


SK_PASS = 1
BPF_FLOW_DISSECTOR_CONTINUE = 129


@pytest.mark.parametrize("section, ret", [("sk_lookup", SK_PASS),
                                          ("flow_dissector", BPF_FLOW_DISSECTOR_CONTINUE)])
def test_netns_links(counter, section, ret):
    prog = counter.prog(section, ret=ret)
    with private_netns():
        with prog.attach() as link:
            assert link.info().type == u.BPF_LINK_TYPE_NETNS
            if section == "sk_lookup":
                udp_to_self(2)
                assert counter.value >= 2
        with open("/proc/thread-self/ns/net") as ns:
            link = prog.attach(netns_fd=ns.fileno())
        link.detach()
        assert link.closed
    assert_fully_detached(counter, prog)


# ------------------------------------------------------------------ cgroups


@pytest.fixture
def child_cgroup(kernel) -> Iterator[str]:
    path = os.path.join(tracefs.cgroup2_root(), f"pybpf-test-{os.getpid()}")
    os.mkdir(path)
    try:
        yield path
    finally:
        os.rmdir(path)


def in_cgroup(cgroup: str, code: str) -> None:
    """Run python code in a child process that first moves itself into cgroup."""
    script = (f"import os\nwith open({os.path.join(cgroup, 'cgroup.procs')!r}, 'w') as f:\n"
              f"    f.write(str(os.getpid()))\n{code}")
    subprocess.run([sys.executable, "-c", script], check=True)


def test_cgroup_sock_create(counter, child_cgroup):
    prog = counter.prog("cgroup/sock_create", ret=1)
    make3 = "import socket\nfor _ in range(3): socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
    with prog.attach(cgroup=child_cgroup) as link:
        assert link.info().type == u.BPF_LINK_TYPE_CGROUP
        in_cgroup(child_cgroup, make3)
        assert counter.value == 3
        socket.socket().close()             # this process is not in the cgroup
        assert counter.value == 3
    in_cgroup(child_cgroup, make3)
    assert counter.value == 3
    assert_fully_detached(counter, prog)


def test_cgroup_skb_egress_and_detach(counter, child_cgroup):
    prog = counter.prog("cgroup_skb/egress", ret=1)
    with prog.attach(cgroup=child_cgroup):
        in_cgroup(child_cgroup, f"{_UDP_SRC}\nudp(2)")
        assert counter.value >= 2
    seen = counter.value
    with prog.attach(cgroup=child_cgroup) as link:
        link.detach()
        in_cgroup(child_cgroup, f"{_UDP_SRC}\nudp(2)")
    assert counter.value == seen
    assert_fully_detached(counter, prog)


_UDP_SRC = """import socket
def udp(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    for _ in range(n):
        s.sendto(b"x", s.getsockname()); s.recv(4)
"""


def test_cgroup_defaults_to_the_v2_root(counter):
    prog = counter.prog("cgroup/sock_create", ret=1)     # allows everything
    with prog.attach() as link:
        assert link.info().type == u.BPF_LINK_TYPE_CGROUP
        socket.socket().close()
        assert counter.value >= 1


def test_cgroup_bad_path(counter, tmp_path):
    prog = counter.prog("cgroup/sock_create", ret=1)
    with pytest.raises(AttachError, match="opening cgroup"):
        prog.attach(cgroup=str(tmp_path / "nope"))


# ------------------------------------------------------------------ leak check


def test_attach_failures_leave_no_fds(counter):
    prog = counter.prog("tp/syscalls/sys_enter_getppid")
    xdp = counter.prog("xdp", ret=XDP_PASS)
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(AttachError):
            attach_program(prog, tracepoint="nosuch/nosuch")
        with pytest.raises(AttachError):
            attach_program(prog, method="perf_event", perf_event_fd=987654)
        with pytest.raises(AttachError):
            attach_program(xdp, ifindex=999999)
    assert set(os.listdir("/proc/self/fd")) == before


# ------------------------------------------------------------------ end to end: BPF C objects

GETPPID_NR = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "loongarch64": 173,
              "s390x": 64, "ppc64le": 64}


def test_object_attach_tracepoint_raw_tp_tp_btf(kernel):
    import platform
    import pybpf
    nr = GETPPID_NR.get(platform.machine())
    if nr is None:
        pytest.skip(f"getppid syscall number unknown for {platform.machine()}")
    with pybpf.BPFObject.open(built("attach_trace.bpf.o")) as obj:
        obj.rodata["target_pid"] = os.getpid()
        obj.rodata["target_nr"] = nr
        obj.load()
        links = obj.attach()
        assert len(links) == 3
        ids = [prog_id(p) for p in obj.programs.values()]
        assert sorted(link.info().prog_id for link in links) == sorted(ids)
        for _ in range(5):
            os.getppid()
        assert (obj.bss["tp_hits"], obj.bss["raw_tp_hits"], obj.bss["tp_btf_hits"]) == (5, 5, 5)
    assert all(link.closed for link in links)
    for pid in ids:
        assert links_of(pid) == [] and wait_prog_freed(pid)


def test_iter_task_lists_this_process(kernel):
    import pybpf
    with pybpf.BPFObject.open(built("attach_iter.bpf.o")) as obj:
        obj.load()
        link = obj.programs["dump_task"].attach()
        assert isinstance(link, IterLink)
        rows = [line.split(" ", 2) for line in link.read().decode().splitlines()]
        me = str(os.getpid())
        with open("/proc/self/comm") as f:
            comm = f.read().strip()
        assert [me, me, comm] in rows
        assert len(rows) > 2


@pytest.mark.parametrize("kind", ["pie", "nopie"])
def test_uprobe_object_sees_arguments_and_return_values(kernel, target_bins, kind):
    """Probes at the right address read the right argument and return value."""
    import pybpf
    path = target_bins[kind]
    with pybpf.BPFObject.open(built("attach_uprobe.bpf.o")) as obj:
        obj.load()
        progs = obj.programs
        progs["enter_a"].attach(binary=path, func_name="pybpf_target_a")
        progs["exit_b"].attach(binary=path, func_name="pybpf_target_b")
        progs["enter_any"].attach(binary=path, func_pattern="pybpf_target_*")
        run_target(path, 4)
        assert obj.bss["a_calls"] == 4
        assert obj.bss["a_arg_sum"] == 0 + 1 + 2 + 3
        assert obj.bss["b_ret_sum"] == 2 * (0 + 1 + 2 + 3)
        assert obj.bss["multi_calls"] == 8


def test_net_object_xdp_tcx_cgroup(kernel, child_cgroup):
    import pybpf
    with pybpf.BPFObject.open(built("attach_net.bpf.o")) as obj:
        obj.load()
        progs = obj.programs
        with private_netns():
            with progs["count_xdp"].attach(interface="lo"), \
                    progs["count_tcx"].attach(interface="lo"):
                udp_to_self(3)
        with progs["count_sock"].attach(cgroup=child_cgroup):
            in_cgroup(child_cgroup, "import socket\nsocket.socket().close()")
        assert obj.bss["xdp_packets"] >= 3 and obj.bss["tcx_packets"] >= 3
        assert obj.bss["sockets_created"] == 1
