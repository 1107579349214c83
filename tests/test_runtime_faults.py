"""Issue 10, the runtime and command-line side: faults, signals and misuse end in a
clear word, never in a leak, a lost record or a guessed attachment.

Objects: bpf/fault_targets.bpf.c (programs that need a target, globals of every
kind), bpf/fault_burst.bpf.c (a burst that overruns a one-page ring),
bpf/fault_signal.bpf.c (the signal trials, with names no other object uses).
"""
from __future__ import annotations

import gc
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Set, Tuple

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.errors import BPFError
from pybpf.events.ringbuf import RingBuffer
from pybpf.study.producer import Producer

from conftest import ROOT, built, on_cpu, require_kernel


def _pybpf(*args: str, **kw: Any) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pybpf", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _ready(proc: subprocess.Popen) -> str:
    line = proc.stderr.readline()
    assert "reading" in line, f"loader did not start: {line}{proc.stderr.read()}"
    return line


def _finish(proc: subprocess.Popen) -> tuple:
    """(stdout, stderr) to the end, after _ready() (communicate() would miss what the
    stderr reader already buffered)."""
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=60)
    return out, err


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _ids(cmd: int) -> List[int]:
    ids, cur = [], 0
    while True:
        nxt = syscall.next_id(cmd, cur)
        if nxt is None:
            return ids
        ids.append(nxt)
        cur = nxt


def kernel_names(kind: str) -> Set[str]:
    """Names of every loaded program ("prog") or map ("map") of the machine."""
    cmd, get, info_t = {
        "prog": (uapi.BPF_PROG_GET_NEXT_ID, uapi.BPF_PROG_GET_FD_BY_ID, uapi.bpf_prog_info),
        "map": (uapi.BPF_MAP_GET_NEXT_ID, uapi.BPF_MAP_GET_FD_BY_ID, uapi.bpf_map_info),
    }[kind]
    names = set()
    for obj_id in _ids(cmd):
        try:
            with syscall.fd_by_id(get, obj_id) as fd:
                names.add(syscall.obj_info(fd.fd, info_t).name.decode())
        except BPFError:        # freed meanwhile
            continue
    return names


def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """The kernel frees programs and maps from deferred work: wait for it, bounded."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ------------------------------------------------------------------ item 17: --set by BTF type

@pytest.mark.parametrize("name, text, want", [
    ("opt_flag", "true", True), ("opt_flag", "off", False), ("opt_flag", "1", True),
    ("opt_color", "TGT_GREEN", 2), ("opt_color", "TGT_BLUE", 0xFFFFFFFD),  # -3: an unsigned enum in BTF ("opt_color", "2", 2),
    ("opt_name", "abc", b"abc"), ("opt_name", "12345678", b"12345678"),
    ("opt_small", "0xff", 255), ("opt_small", "0b101", 5), ("opt_small", "A", 65),
    ("opt_signed", "-32768", -32768), ("opt_signed", "0o777", 511),
    ("opt_big", "0xffffffffffffffff", (1 << 64) - 1), ("opt_big", "1_000", 1000),
])
def test_text_values_are_parsed_by_btf_type(name, text, want):
    with pybpf.BPFObject.open(built("fault_targets.bpf.o")) as obj:
        obj.rodata[name] = text
        assert obj.rodata[name] == want


@pytest.mark.parametrize("name, text, words", [
    ("opt_flag", "maybe", ["opt_flag", "bool", "not a boolean"]),
    ("opt_color", "PURPLE", ["opt_color", "enum tgt_color", "TGT_RED, TGT_GREEN, TGT_BLUE"]),
    ("opt_name", "123456789", ["opt_name", "char[8]", "9 bytes", "holds 8"]),
    ("opt_small", "256", ["opt_small", "__u8", "out of range [0, 255]"]),
    ("opt_signed", "32768", ["opt_signed", "__s16", "[-32768, 32767]"]),
    ("opt_big", "-1", ["opt_big", "__u64", "out of range"]),
    ("opt_big", "abc", ["opt_big", "not an integer"]),
    ("opt_struct", "1", ["opt_struct", "cannot be set from text"]),
])
def test_text_value_errors_name_the_variable_and_its_type(name, text, words):
    with pybpf.BPFObject.open(built("fault_targets.bpf.o")) as obj:
        before = obj.rodata.raw(name)
        with pytest.raises(BPFError) as e:
            obj.rodata[name] = text
        assert all(w in str(e.value) for w in words), str(e.value)
        assert obj.rodata.raw(name) == before


def test_text_values_in_data_and_bss():
    with pybpf.BPFObject.open(built("fault_targets.bpf.o")) as obj:
        obj.data["data_int"] = "-7"
        obj.bss["bss_label"] = "ab"
        assert (obj.data["data_int"], obj.bss["bss_label"]) == (-7, b"ab")


def test_cli_set_refuses_text_for_an_int():
    require_kernel()
    proc = _pybpf("load", str(built("exec.bpf.o")), "--set", "target_pid=abc")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "target_pid" in err and "int" in err and "not an integer" in err
    assert "Traceback" not in err


def test_cli_set_enum_and_string(kernel):
    proc = _pybpf("load", str(built("fault_targets.bpf.o")), "--duration", "0",
                  "--set", "opt_color=TGT_BLUE", "--set", "opt_name=xyz", "--set", "opt_flag=yes")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


# ------------------------------------------------------------------ item 23: --duration, poll()

@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "soon"])
def test_cli_refuses_bad_durations(value):
    proc = _pybpf("load", str(built("exec.bpf.o")), f"--duration={value}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"argument --duration: {value!r} is not a duration" in err


def test_cli_duration_zero_loads_attaches_and_exits(kernel):
    proc = _pybpf("load", str(built("exec.bpf.o")), "--duration", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "1 attached; reading 1 buffer(s) for 0s" in err


def test_poll_tells_a_stop_from_a_count(kernel):
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, name="t_stop") as fd, \
            Producer(fd.fd) as prod:
        seen: List[bytes] = []

        def stop_at_first(data: memoryview) -> int:
            seen.append(bytes(data))
            return 1                          # "stop" spelled as a positive number
        with RingBuffer(fd.fd, stop_at_first) as rb:
            prod.output(b"a" * 8)
            prod.output(b"b" * 8)
            assert rb.poll(0) == -1           # a stop, never the count 1
            assert (rb.stopped, rb.stopped_after) == (1, 1)
        with RingBuffer(fd.fd, lambda data: None) as rb:
            assert rb.poll(0) == 1            # one record handled
            assert rb.stopped is None
        assert seen == [b"a" * 8]


# ------------------------------------------------------------------ item 22: quiet CLI

def test_cli_broken_pipe_ends_quietly(kernel):
    """``pybpf load ... | head -1``: the reader goes away after one line."""
    proc = _pybpf("load", str(built("fault_burst.bpf.o")), "--json",
                  "--set", f"target_pid={os.getpid()}", "--duration", "20")
    _ready(proc)
    os.getppid()                              # 200 records, far more than one line
    assert proc.stdout.readline().startswith("{")
    proc.stdout.close()
    os.getppid()
    err = proc.stderr.read()
    assert proc.wait(timeout=30) in (0, 141), err
    assert "Traceback" not in err and "BrokenPipeError" not in err


# ``python -m pybpf``, with a SIGINT from a timer started once the interpreter is up
# and the package imported: a signal during the interpreter's own start-up, or during
# ``import pybpf`` (the library's import, which leaves signals alone), is not the
# command line's to handle; from the first statement of pybpf.__main__ on, it is
_RUN_AS_MAIN = r"""
import os, runpy, signal, sys, threading
import pybpf
delay, obj = float(sys.argv[1]), sys.argv[2]
sys.argv = ["-m", "load", obj, "--duration", "0"]   # as runpy has it while importing
threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
runpy.run_module("pybpf", run_name="__main__", alter_sys=True)
"""


def test_cli_ctrl_c_while_importing_prints_no_traceback(kernel):
    rng = random.Random(10)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(16):
        delay = rng.uniform(0.01, 0.5)
        proc = subprocess.run([sys.executable, "-c", _RUN_AS_MAIN, str(delay),
                               str(built("exec.bpf.o"))], env=env, capture_output=True,
                              text=True, timeout=60)
        assert "Traceback" not in proc.stderr, (delay, proc.stderr)
        assert proc.returncode in (0, 130, -signal.SIGINT), (delay, proc.returncode,
                                                             proc.stderr)


# ------------------------------------------------------------------ item 6: no guessed targets

SKIPPED = {"tgt_cgroup_sock": "needs a cgroup", "tgt_cgroup_skb": "needs a cgroup",
           "tgt_sk_lookup": "needs a network namespace", "tgt_xdp": "needs a network interface",
           "tgt_uprobe": "needs a binary"}


def _linked_prog_names() -> Set[str]:
    """Names of the programs every BPF link of the machine holds."""
    names = set()
    for link_id in _ids(uapi.BPF_LINK_GET_NEXT_ID):
        try:
            with syscall.fd_by_id(uapi.BPF_LINK_GET_FD_BY_ID, link_id) as lfd:
                prog_id = syscall.obj_info(lfd.fd, uapi.bpf_link_info).prog_id
            with syscall.fd_by_id(uapi.BPF_PROG_GET_FD_BY_ID, prog_id) as pfd:
                names.add(syscall.obj_info(pfd.fd, uapi.bpf_prog_info).name.decode())
        except BPFError:        # gone meanwhile
            continue
    return names


def test_attach_skips_programs_that_need_a_target(kernel):
    with pybpf.BPFObject.open(built("fault_targets.bpf.o")) as obj:
        obj.load()
        links = obj.attach()
        assert [link.info().prog_id for link in links] == \
            [syscall.obj_info(obj.programs["tgt_tp"].fd, uapi.bpf_prog_info).id]
        assert set(obj.skipped) == set(SKIPPED)
        for name, why in SKIPPED.items():
            assert obj.skipped[name].startswith(why), obj.skipped[name]
        linked = _linked_prog_names()
        assert "tgt_tp" in linked and not linked & set(SKIPPED)


def test_cli_load_says_what_it_did_not_attach(kernel):
    proc = _pybpf("load", str(built("fault_targets.bpf.o")), "--duration", "1")
    head = _ready(proc)
    assert "6 program(s) loaded, 1 attached" in head
    assert not _linked_prog_names() & set(SKIPPED)
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("pybpf: not attached:")]
    assert sorted(line.split()[3] for line in lines) == sorted(SKIPPED), err
    assert all(SKIPPED[line.split()[3]] in line for line in lines)
    assert any("root cgroup" in line for line in lines)


# ------------------------------------------------------------------ item 11: ring overrun

def _burst_run(*extra: str) -> tuple:
    proc = _pybpf("load", str(built("fault_burst.bpf.o")), "--json",
                  "--set", f"target_pid={os.getpid()}", "--duration", "1.5", *extra)
    _ready(proc)
    os.getppid()                              # 200 records of 56 bytes into 4096 bytes
    time.sleep(0.5)
    os.getppid()
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    records = [line for line in out.splitlines()      # not the maps printed at exit
               if "entries" not in json.loads(line)]
    return records, err


def test_load_notices_a_ring_that_ran_full_once_and_counts(kernel):
    rows, err = _burst_run()
    assert 0 < len(rows) < 400
    notices = [line for line in err.splitlines() if "ran full" in line]
    assert len(notices) == 1, err
    assert "'burst_rb'" in notices[0] and "--ring-size" in notices[0]
    assert "drops=" in notices[0]             # the object's own counter, named
    summary = err.splitlines()[-1]
    assert f"burst_rb: {len(rows)} record(s) read" in summary
    assert f"drops={400 - len(rows)}" in summary


def test_ring_size_option_makes_room(kernel):
    rows, err = _burst_run("--ring-size", "65536")
    assert len(rows) == 400
    assert "ran full" not in err and "dropped" not in err


def test_ring_size_option_is_checked():
    proc = _pybpf("load", str(built("fault_burst.bpf.o")), "--ring-size", "5000")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "a ring size is a power of two" in err


# ------------------------------------------------------------------ item 10: raising callbacks

N, RAISE_AT = 100, 37


def _fill(prod: Producer, n: int = N) -> None:
    for i in range(n):
        prod.output(i.to_bytes(8, "little") * 2)


@pytest.mark.usefixtures("fast_paths")
@pytest.mark.parametrize("mode", ["batch-iter", "batch-unpack", "batch-rows", "rows"])
def test_a_raising_bulk_callback_keeps_what_it_did_not_take(kernel, mode):
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 16384, name="t_raise") as fd, \
            Producer(fd.fd) as prod:
        _fill(prod)
        got: List[int] = []

        def take(records) -> None:
            for rec in records:
                value = rec[0] if isinstance(rec, tuple) else int.from_bytes(rec[:8], "little")
                if value == RAISE_AT:
                    raise RuntimeError("at 37")
                got.append(value)
        kw = {"struct": "QQ"} if mode == "rows" else {"batch": True}
        getter = {"batch-iter": iter, "batch-unpack": lambda b: b.unpack("QQ"),
                  "batch-rows": lambda b: b.rows("QQ"), "rows": iter}[mode]
        with RingBuffer(fd.fd, lambda b: take(getter(b)), **kw) as rb:
            with pytest.raises(RuntimeError):
                rb.consume()
        rest: List[int] = []
        with RingBuffer(fd.fd, lambda d: rest.append(int.from_bytes(d[:8], "little"))) as rb:
            rb.consume()
        assert got == list(range(RAISE_AT))
        assert rest == list(range(RAISE_AT + 1, N))    # the raising record was handed out


def test_a_raising_columns_callback_leaves_its_run_in_the_ring(kernel):
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 16384, name="t_raise") as fd, \
            Producer(fd.fd) as prod:
        _fill(prod)

        def fail(cols) -> None:
            raise RuntimeError(f"after {sum(cols.f0)}")
        with RingBuffer(fd.fd, fail, columns="QQ") as rb:
            with pytest.raises(RuntimeError):
                rb.consume()
        rest: List[int] = []
        with RingBuffer(fd.fd, lambda d: rest.append(int.from_bytes(d[:8], "little"))) as rb:
            rb.consume()
        assert rest == list(range(N))


# ------------------------------------------------------------------ item 8: PerfBuffer's map

def test_perf_buffer_keeps_its_own_map_reference(kernel):
    """Closed after its map's owner, a PerfBuffer clears slots in its own map only,
    not in whatever map reuses the fd number."""
    from pybpf.events.perfbuf import PerfBuffer
    from pybpf.kernel.sysinfo import online_cpus, possible_cpus
    cpu = online_cpus()[0]
    first = syscall.map_create(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, len(possible_cpus()),
                               name="t_pb_a")
    number = first.fd
    pb_a = PerfBuffer(first.fd, lambda c, d: None, cpus=[cpu], pages=1)
    first.close()                             # the owner closes its map first
    second = syscall.map_create(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4,
                                len(possible_cpus()), name="t_pb_b")
    try:
        assert second.fd == number            # the number went to another map
        got: List[bytes] = []
        with Producer(second.fd) as prod, \
                PerfBuffer(second.fd, lambda c, d: got.append(bytes(d[:4])), cpus=[cpu],
                           pages=1) as pb_b:
            pb_a.close()
            with on_cpu(cpu):
                prod.perf_output(b"live" * 2)
            assert pb_b.consume() == 1 and got == [b"live"]
    finally:
        second.close()


# ------------------------------------------------------------------ items 7, 20: pins

@pytest.fixture
def pin_root():
    require_kernel()
    root = f"/sys/fs/bpf/pybpf-hrun-{os.getpid()}"
    os.makedirs(root, mode=0o700, exist_ok=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_failed_load_removes_the_pins_it_made(pin_root):
    with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=pin_root) as obj:
        prog = next(iter(obj.programs.values()))
        prog.expected_attach_type = 999      # the kernel refuses this program
        with pytest.raises(BPFError):
            obj.load()
        assert os.listdir(pin_root) == []


def test_a_failed_load_keeps_a_pin_it_reused(pin_root):
    with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=pin_root) as first:
        first.load()
        with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=pin_root) as again:
            next(iter(again.programs.values())).expected_attach_type = 999
            with pytest.raises(BPFError):
                again.load()
        assert os.listdir(pin_root) == ["pinned_counts"]


def test_pin_race_reuses_the_pin_that_won(pin_root, monkeypatch):
    """Another process pins the same name between our check and our pin (EEXIST):
    its map is used, as if it had been there before."""
    with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=pin_root) as winner:
        winner.load()
        winner.maps["pinned_counts"][1] = 41
        late = pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=pin_root)
        real = pybpf.BPFObject._reuse_pinned
        calls: List[str] = []

        def not_yet(self, m):                 # the first look happens before the winner pinned
            calls.append(m.name)
            return False if calls.count(m.name) == 1 else real(self, m)
        monkeypatch.setattr(pybpf.BPFObject, "_reuse_pinned", not_yet)
        with late:
            late.load()
            assert late.maps["pinned_counts"][1] == 41
            late.maps["pinned_counts"][2] = 7
            assert winner.maps["pinned_counts"][2] == 7
        assert calls.count("pinned_counts") == 2


# ------------------------------------------------------------------ item 21: use after close

def test_every_use_after_close_raises_bpferror(kernel):
    obj = pybpf.BPFObject.open(built("fault_targets.bpf.o"))
    obj.load()
    obj.close()
    for use in (lambda: obj.bss["tgt_hits"], lambda: obj.bss.__setitem__("tgt_hits", 1),
                lambda: obj.data["data_int"], lambda: obj.rodata.raw("opt_flag"),
                lambda: obj.maps[".bss"].lookup(0), lambda: obj.programs["tgt_tp"].fd):
        with pytest.raises(BPFError):
            use()


def test_use_from_another_thread_during_close_raises_only_bpferror(kernel):
    for _ in range(20):
        obj = pybpf.BPFObject.open(built("fault_targets.bpf.o"))
        obj.load()
        errors: List[BaseException] = []
        started = threading.Event()

        def hammer() -> None:
            started.set()
            try:
                while True:
                    obj.bss["tgt_hits"] = obj.bss["tgt_hits"] + 1
                    obj.data["data_int"] = obj.bss["bss_label"][:1] == b"" and 3 or 4
            except BaseException as e:       # noqa: B902 - what ended the loop is the point
                errors.append(e)
        t = threading.Thread(target=hammer)
        t.start()
        started.wait()
        obj.close()
        t.join(10)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], BPFError), repr(errors)
        assert "closed" in str(errors[0]), repr(errors)


# ------------------------------------------------------------------ item 15: out of fds

_LOW_FDS = r"""
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
import pybpf
from pybpf.errors import BPFError, VerifierError
obj_path = sys.argv[2]
results = []
base = len(os.listdir("/proc/self/fd"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
for extra in range(0, 24):
    resource.setrlimit(resource.RLIMIT_NOFILE, (base + extra, hard))
    try:
        with pybpf.BPFObject.open(obj_path) as obj:
            obj.load()
            obj.attach()
            for m in obj.maps.values():
                if m.type == 27:
                    pybpf.RingBuffer(m, lambda d: None).close()
        results.append("ok")
    except VerifierError as e:
        results.append("verifier: " + str(e).splitlines()[0])
    except BPFError as e:
        results.append("bpf: " + str(e).splitlines()[0])
    except BaseException as e:
        results.append("raw %s: %s" % (type(e).__name__, e))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
print(json.dumps(results))
"""


def test_running_out_of_fds_is_a_clear_bpferror(kernel):
    import json
    proc = subprocess.run([sys.executable, "-c", _LOW_FDS, str(ROOT), str(built("fault_signal.bpf.o"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results[-1] == "ok"
    bad = [r for r in results if r.startswith(("raw", "verifier"))]
    assert not bad, bad
    assert any("Too many open files" in r for r in results)


# ------------------------------------------------------------------ item 9: SIGINT anywhere

SIG_PROGS = {"sigt_tp", "sigt_raw"}
SIG_MAPS = {"sigt_rb", "sigt_urb", "sigt_pb", "sigt_hash"}
_PYBPF_DIR = os.path.dirname(pybpf.__file__)


def _sig_sequence() -> None:
    """Open, load, attach and build every kind of reader; leave and close it all."""
    from pybpf.events.perfbuf import PerfBuffer
    from pybpf.events.user_ringbuf import UserRingBuffer
    with pybpf.BPFObject.open(built("fault_signal.bpf.o")) as obj:
        obj.rodata["sigt_pid"] = os.getpid()
        obj.load()
        obj.attach()
        with RingBuffer(obj.maps["sigt_rb"], lambda d: None) as rb, \
                PerfBuffer(obj.maps["sigt_pb"], lambda c, d: None, pages=1) as pb, \
                UserRingBuffer(obj.maps["sigt_urb"]) as urb:
            rb.consume()
            pb.consume()
            urb.write(b"x" * 8)


def _bpf_mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum("anon_inode:bpf" in line for line in f)


def _settled(expected: Tuple[int, int]) -> Tuple[int, int]:
    """Let a signal sent meanwhile arrive; then (open fds, bpf mappings), collected
    for only while they differ from ``expected``: what only the GC frees counts as
    freed, but a collection after every trial, over the heap of a whole test run,
    made this test take minutes on PyPy."""
    for _ in range(3):
        try:
            time.sleep(0.001)
        except KeyboardInterrupt:
            pass
    now = (fd_count(), _bpf_mappings())
    for _ in range(3):          # PyPy runs finalizers (Fd.__del__) over several passes
        if now == expected:
            break
        gc.collect()
        now = (fd_count(), _bpf_mappings())
    return now


class _LineSignal:
    """A SIGINT delivered (to whatever handler SIGINT has then, as the kernel would)
    at the ``at``-th line pybpf executes: between two lines of any pybpf function."""

    def __init__(self, at: int):
        self.at, self.lines = at, 0

    def __call__(self, frame: Any, event: str, arg: Any) -> Optional[Callable]:
        if not frame.f_code.co_filename.startswith(_PYBPF_DIR):
            return None
        return self._line

    def _line(self, frame: Any, event: str, arg: Any) -> Optional[Callable]:
        if event == "line":
            self.lines += 1
            if self.lines == self.at:
                handler = signal.getsignal(signal.SIGINT)
                if callable(handler):
                    handler(signal.SIGINT, frame)
        return self._line


def _trial(run: Callable[[], None]) -> bool:
    """Run the sequence once; True if a KeyboardInterrupt cut it short."""
    try:
        run()
    except KeyboardInterrupt:
        return True
    return False


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler, also where the runner inherited SIGINT ignored (a
    background job of a non-interactive shell, as CI's parallel step is)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_sigint_anywhere_leaves_no_fd_and_no_kernel_object(kernel, default_sigint):
    """SIGINT at fixed-seed random points of load, attach and reader construction
    (RingBuffer, PerfBuffer, UserRingBuffer): between any two lines of pybpf, and at
    random times from another thread (so also during syscalls).  After each trial no
    fd and no mapping survives; at the end no program or map of the object does."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _sig_sequence()                                   # warm up: caches, lazy imports
    for _ in range(3):
        gc.collect()
    before = (fd_count(), _bpf_mappings())
    counter = _LineSignal(0)
    sys.settrace(counter)
    try:
        _sig_sequence()
    finally:
        sys.settrace(None)
    total = counter.lines
    assert total > 500
    rng = random.Random(9)
    cut = 0
    for at in sorted(rng.sample(range(1, total + 1), 60)):
        tracer = _LineSignal(at)
        sys.settrace(tracer)
        try:
            cut += _trial(_sig_sequence)
        finally:
            sys.settrace(None)
        assert _settled(before) == before, f"SIGINT at line {at} of {total}"
    assert cut >= 50        # most points were inside the sequence (a few in close paths)

    start = time.monotonic()
    _sig_sequence()
    span = time.monotonic() - start
    main = threading.get_ident()
    for i in range(40):
        delay = rng.uniform(0, span * 1.2)
        timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
        try:
            timer.start()
            cut += _trial(_sig_sequence)
            timer.join()
        except KeyboardInterrupt:
            timer.join()
        assert _settled(before) == before, f"SIGINT after {delay:.4f}s"
    assert eventually(lambda: not kernel_names("prog") & SIG_PROGS), "a program survived"
    assert eventually(lambda: not kernel_names("map") & SIG_MAPS), "a map survived"


_RACE_LOADS = r"""
import sys
sys.path.insert(0, sys.argv[1])
import pybpf
failures = []
for _ in range(25):
    try:
        with pybpf.BPFObject.open(sys.argv[2], pin_root=sys.argv[3]) as obj:
            obj.load()
            obj.maps["pinned_counts"][0] = 1
            try:                    # the next load, here or elsewhere, pins anew
                obj.maps["pinned_counts"].unpin()
            except OSError:
                pass
    except pybpf.BPFError as e:
        failures.append(str(e).splitlines()[0])
print(len(failures), failures[:1])
"""


def test_concurrent_loads_share_one_pinned_map(pin_root):
    """Processes loading one object with a pinned map at once: every load succeeds
    (EEXIST from a pin that another process made meanwhile means: use it)."""
    procs = [subprocess.Popen([sys.executable, "-c", _RACE_LOADS, str(ROOT),
                               str(built("loader_maps.bpf.o")), pin_root],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert out.startswith("0 "), out


def test_signals_are_held_back_until_the_owner_holds_the_object(default_sigint):
    """Pure: a signal that arrives while ``make`` runs reaches its handler only after
    make returned; a handler that raises makes ``undo`` release the result."""
    from pybpf.kernel.sigdefer import deferred
    calls: List[str] = []

    def make(deliver_now: Callable[[], None]) -> str:
        os.kill(os.getpid(), signal.SIGINT)       # "during the syscall"
        for _ in range(1000):                      # many bytecodes: the handler waits
            pass
        calls.append("made")
        return "fd"
    with pytest.raises(KeyboardInterrupt):
        deferred(make, lambda result: calls.append(f"undo {result}"))
    assert calls == ["made", "undo fd"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    calls.clear()
    old = signal.signal(signal.SIGINT, lambda s, f: calls.append("handler"))
    try:
        assert deferred(make, lambda result: calls.append("undo")) == "fd"
        assert calls == ["made", "handler"]       # a flag-setting handler: kept

        calls.clear()

        def interrupted(deliver_now: Callable[[], None]) -> str:
            os.kill(os.getpid(), signal.SIGINT)
            deliver_now()                          # EINTR: the handlers run before a retry
            calls.append("retried")
            return "fd"
        assert deferred(interrupted, lambda result: None) == "fd"
        assert calls == ["handler", "retried"]
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_ctrl_c_swallowed_by_a_callback_is_delivered_again(monkeypatch):
    """While a command runs, a KeyboardInterrupt that a weakref callback would swallow
    (importlib's module locks have such callbacks) is signalled again."""
    import gc
    import types
    import weakref
    from pybpf.cli import signals as S
    got, others = [], []
    monkeypatch.setattr(sys, "unraisablehook", others.append)
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        S.cli_started()
        assert sys.unraisablehook is S.redeliver
        S.cli_started()                         # twice: still one hook, the first kept
        class Held:
            pass
        held = Held()

        def callback(ref):
            raise KeyboardInterrupt
        ref = weakref.ref(held, callback)
        del held
        gc.collect()
        assert got == [signal.SIGINT] and others == []
        S.redeliver(types.SimpleNamespace(exc_type=ValueError, exc_value=ValueError("x")))
        assert len(others) == 1 and others[0].exc_type is ValueError and got == [signal.SIGINT]
        S.cli_finished()
        assert sys.unraisablehook == others.append and ref() is None
    finally:
        signal.signal(signal.SIGINT, old)
