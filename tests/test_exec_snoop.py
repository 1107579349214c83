"""The exec snoop, three ways, against the real kernel: load, attach, spawn known
commands, read their exact filenames back, and leave nothing attached."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Callable, List, Tuple

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi

from conftest import built, require_kernel

Event = Tuple[int, str, str]        # pid, comm, filename


def _decode(data: memoryview) -> Event:
    pid = int.from_bytes(data[0:4], "little", signed=True)
    comm = bytes(data[4:20]).split(b"\0", 1)[0].decode()
    filename = bytes(data[20:532]).split(b"\0", 1)[0].decode()
    return pid, comm, filename


@pytest.fixture
def probes():
    """Distinct executables (copies of /bin/true) whose paths the test recognises."""
    tmp = tempfile.mkdtemp(prefix="pybpf-exec-")
    paths = []
    for i in range(5):
        path = os.path.join(tmp, f"probe-{i}-{os.getpid()}")
        shutil.copy("/bin/true", path)
        paths.append(path)
    yield paths
    shutil.rmtree(tmp)


def _spawn_all(paths: List[str]) -> List[int]:
    pids = []
    for path in paths:
        proc = subprocess.Popen([path])
        pids.append(proc.pid)
        proc.wait()
    return pids


def _collect(poll: Callable[[], None], events: List[Event], paths: List[str]) -> List[Event]:
    deadline = time.monotonic() + 10
    mine: List[Event] = []
    while time.monotonic() < deadline:
        poll()
        mine = [e for e in events if e[2] in paths]
        if len(mine) >= len(paths):
            break
    return mine


def eventually(cond: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _ids(cmd: int) -> set:
    ids, cur = set(), 0
    while True:
        cur = syscall.next_id(cmd, cur)
        if cur is None:
            return ids
        ids.add(cur)


def prog_ids() -> set:
    return _ids(uapi.BPF_PROG_GET_NEXT_ID)


def link_ids() -> set:
    return _ids(uapi.BPF_LINK_GET_NEXT_ID)


def named_prog_ids(name: str = "handle_exec") -> set:
    """Ids of loaded programs with this name (other programs on the machine, or
    loaded by anything else meanwhile, don't disturb the checks)."""
    out = set()
    for prog_id in prog_ids():
        try:
            with syscall.fd_by_id(uapi.BPF_PROG_GET_FD_BY_ID, prog_id) as fd:
                if syscall.obj_info(fd.fd, uapi.bpf_prog_info).name.decode() == name:
                    out.add(prog_id)
        except pybpf.BPFError:      # gone meanwhile
            continue
    return out


@pytest.mark.parametrize("name", ["exec.bpf.o", "ringbuf-output.bpf.o"])
def test_ringbuf_exec_snoop_in_order(name, probes):
    require_kernel()
    links_before = link_ids()
    events: List[Event] = []
    with pybpf.BPFObject.open(built(name)) as obj:
        obj.load()
        links = obj.attach()
        assert len(links) == 1
        prog_id = syscall.obj_info(obj.programs["handle_exec"].fd, uapi.bpf_prog_info).id
        assert prog_id in prog_ids()
        rb = pybpf.RingBuffer(obj.maps["rb"], lambda data: events.append(_decode(data)))
        try:
            pids = _spawn_all(probes)
            mine = _collect(lambda: rb.poll(timeout_ms=100), events, probes)
        finally:
            rb.close()
    # exact filenames, in spawn order (one shared ring keeps the order)
    assert [e[2] for e in mine] == probes
    assert [e[0] for e in mine] == pids
    assert [e[1] for e in mine] == [os.path.basename(p)[:15] for p in probes]
    # closing the object detached and unloaded everything it made: a link holds its
    # program, so the program's id going away proves the link went too (the kernel
    # may free ids a moment after the last fd goes: wait a little)
    assert eventually(lambda: prog_id not in prog_ids())
    assert eventually(lambda: not (link_ids() - links_before))


def test_perfbuf_exec_snoop(probes):
    require_kernel()
    events: List[Event] = []
    lost: List[Tuple[int, int]] = []
    with pybpf.BPFObject.open(built("perfbuf-output.bpf.o")) as obj:
        obj.load()
        pb_map = obj.maps["pb"]
        assert pb_map.max_entries == len(pybpf.kernel.sysinfo.possible_cpus())
        obj.attach()
        pb = pybpf.PerfBuffer(pb_map, lambda cpu, data: events.append(_decode(data)),
                              lost=lambda cpu, n: lost.append((cpu, n)), pages=8)
        try:
            pids = _spawn_all(probes)
            mine = _collect(lambda: pb.poll(timeout_ms=100), events, probes)
        finally:
            pb.close()
    # per-CPU buffers don't promise order across CPUs: compare as sets
    assert sorted(e[2] for e in mine) == sorted(probes)
    assert sorted(e[0] for e in mine) == sorted(pids)
    assert not lost


def test_target_pid_filter_through_rodata(probes):
    """A const volatile global set before load() filters in the kernel."""
    require_kernel()
    events: List[Event] = []
    with pybpf.BPFObject.open(built("exec.bpf.o")) as obj:
        obj.rodata["target_pid"] = 1          # init never execs during the test
        obj.load()
        assert obj.rodata["target_pid"] == 1  # read back from the frozen map
        with pytest.raises(pybpf.BPFError, match="read-only"):
            obj.rodata["target_pid"] = 2
        obj.attach()
        rb = pybpf.RingBuffer(obj.maps["rb"], lambda data: events.append(_decode(data)))
        try:
            _spawn_all(probes)
            time.sleep(0.2)
            rb.poll(timeout_ms=200)
        finally:
            rb.close()
    assert not [e for e in events if e[2] in probes]


def test_close_twice_and_fds_released():
    require_kernel()
    before = len(os.listdir("/proc/self/fd"))
    obj = pybpf.BPFObject.open(built("exec.bpf.o"))
    obj.load()
    obj.attach()
    assert len(os.listdir("/proc/self/fd")) > before
    obj.close()
    obj.close()
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(pybpf.BPFError, match="not loaded"):
        obj.programs["handle_exec"].fd


def test_failed_load_releases_fds():
    """A program the verifier refuses: VerifierError with the log, and no fd left."""
    require_kernel()
    before = len(os.listdir("/proc/self/fd"))
    obj = pybpf.BPFObject.open(built("exec.bpf.o"))
    obj.programs["handle_exec"].type = uapi.BPF_PROG_TYPE_SOCKET_FILTER  # wrong ctx/helpers
    with pytest.raises(pybpf.VerifierError) as e:
        obj.load()
    assert "cannot use helper" in e.value.log
    assert "handle_exec" in str(e.value)
    # the message names the failing source line, from line_info
    assert re.search(r"exec\.(h|bpf\.c):\d+: .*bpf_probe_read_str\(&e->filename", str(e.value))
    obj.close()
    assert len(os.listdir("/proc/self/fd")) == before
