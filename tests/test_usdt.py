"""USDT for real: objects built against libbpf's <bpf/usdt.bpf.h> attached to
Debian's /usr/bin/python3.11 (python:function__entry, semaphore-guarded) and to
tests/usdt/usdt_target (exec and PIE) and its shared library, through uprogbe-multi
links and through one perf-event uprobe per site, with and without BPF cookies
(the ip-to-spec-id map); every argument value bpf_usdt_arg() returns is checked."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import struct
import subprocess
from typing import Dict, Iterator, List, Tuple

import pytest
from elftools.elf.elffile import ELFFile

from conftest import built
from pybpf import BPFObject, RingBuffer, uapi
from pybpf.link import usdt
from pybpf.obj import usdt as usdt_notes
from pybpf.kernel.host import LiveHost
from pybpf.obj import sections
from pybpf.errors import AttachError

PYTHON = "/usr/bin/python3.11"
U64 = (1 << 64) - 1
REC = struct.Struct("<QQIiIi12q")           # struct usdt_rec
PY_REC = struct.Struct("<IiiiiIQ96s96s")     # struct py_call

# CPython 3.11 runs its dtrace hooks from its tracing path only: a profile function
# (any) turns that path on.  Line numbers below are these lines' numbers.
PY_SCRIPT = """\
import sys
sys.setprofile(lambda *a: None)
print("ready", flush=True)
sys.stdin.readline()
def outer(n):
    return inner(n) + 1
def inner(n):
    return n * 2
class K:
    def method(self):
        return outer(3)
for _ in range(3):
    K().method()
"""
PY_WANT = [("K", 9)] + [("method", 10), ("outer", 5), ("inner", 7)] * 3   # K: its class body


def _need_python() -> None:
    if not os.path.exists(PYTHON):
        pytest.skip(f"{PYTHON} (Debian's python3.11 with USDT probes) is not installed")


def _read_u16(pid: int, addr: int) -> int:
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return struct.unpack("<H", f.read(2))[0]


@contextlib.contextmanager
def waiting_child(argv: List[str]) -> Iterator[subprocess.Popen]:
    """A child that says "ready" (it is exec'd, its libraries are mapped), then waits
    for one stdin line before it fires its probes."""
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for f in (child.stdin, child.stdout):
            if f is not None:
                f.close()


def go(child: subprocess.Popen) -> bytes:
    out, _ = child.communicate(b"go\n")
    assert child.returncode == 0
    return out


# ------------------------------------------------------------------ python3.11


@pytest.mark.parametrize("multi", [True, False], ids=["uprobe_multi", "perf_uprobe"])
def test_python_function_entry(kernel, tmp_path, multi):
    _need_python()
    if multi and not usdt.has_uprobe_multi_link():
        pytest.skip("kernel feature missing: uprobe-multi links (6.6)")
    script = tmp_path / f"traced_{os.getpid()}.py"
    script.write_text(PY_SCRIPT)
    entry = usdt_notes.read_probes(PYTHON).find("python", "function__entry")[0]
    obj = BPFObject.open(str(built("usdt_python.bpf.o")))
    with obj:
        prog = obj.programs["py_entry"]
        prog.uprobe_multi = multi
        obj.load()
        assert prog.expected_attach_type == (uapi.BPF_TRACE_UPROBE_MULTI if multi else 0)
        with waiting_child([PYTHON, str(script)]) as child:
            before = _read_u16(child.pid, entry.semaphore)
            link = prog.attach(binary=PYTHON, provider="python", name="function__entry",
                               pid=child.pid, cookie=77)
            assert link.multi is multi and len(link.sites) == 1
            assert link.info().type == (uapi.BPF_LINK_TYPE_UPROBE_MULTI if multi
                                        else uapi.BPF_LINK_TYPE_PERF_EVENT)
            assert (before, _read_u16(child.pid, entry.semaphore)) == (0, 1)
            recs = []
            ring = RingBuffer(obj.maps["py_calls"], lambda d: recs.append(PY_REC.unpack(d)))
            go(child)
            ring.consume()
            ring.close()
        ours = [r for r in recs if r[7].split(b"\0")[0] == os.fsencode(script)]
        assert [(r[8].split(b"\0")[0].decode(), r[1]) for r in ours] == PY_WANT
        # the kernel filtered by pid: nothing from this (python3.11) test process
        assert {r[0] for r in recs} == {child.pid}
        assert all(r[2] == 3 and r[6] == 77 for r in recs)          # arg count, cookie
        assert all(r[3] == len(os.fsencode(script)) + 1 for r in ours)
        assert obj.bss["dropped"] == 0
    assert link.closed and prog.links == []


def test_python_auto_attach_by_section_name(kernel, tmp_path):
    """SEC("usdt//usr/bin/python3.11:python:function__return"), attached to every
    process by obj.attach(); the program itself keeps only the child's returns."""
    _need_python()
    script = tmp_path / f"traced_{os.getpid()}.py"
    script.write_text(PY_SCRIPT)
    with BPFObject.open(str(built("usdt_python.bpf.o"))) as obj, \
            waiting_child([PYTHON, str(script)]) as child:
        obj.rodata["target_pid"] = child.pid
        obj.load()
        links = obj.attach()
        assert [link.desc for link in links] == \
            [f"usdt {PYTHON}:python:function__return"]
        go(child)
        assert obj.bss["returns"] >= len(PY_WANT)


# ------------------------------------------------------------------ the C target

ROUNDS = 3
REC_FIELDS = ("cookie", "ip", "pid", "arg_cnt", "failed", "past_end")


def _s(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def expected(i: int) -> Dict[int, List[Tuple[int, ...]]]:
    """cookie -> the argument lists the probes fire with in round i."""
    rec = (-5, 250, -3000, 60000, -100000, 4000000000, -(1 << 40) - i, 0xFEDCBA9876543210)
    return {1: [(42, -7, 200, -300, 65535, -1)], 2: [rec], 3: [rec],
            4: [(1, 100 + i), (2, 200 + i), (1, 300 + i)], 5: [(i,)],
            6: [(-1000000000000 - i, -2 - i)]}


PROBES = [(1, "pybpf", "consts"), (2, "pybpf", "regs"), (3, "pybpf", "mem"),
          (4, "pybpf", "multi"), (5, "pybpf", "guarded")]


def run_target(obj: BPFObject, binary: str, links_out: Dict[int, "usdt.UsdtLink"],
               typed: bool = True) -> List[dict]:
    """Attach usdt_record to every probe of binary and its library (cookie = key of
    expected()), and usdt_typed and usdt_sleepable to the library's probe too; run
    ROUNDS rounds, return the records."""
    lib = str(built("libusdt_target.so"))
    prog = obj.programs["usdt_record"]
    with waiting_child([binary, str(ROUNDS), "wait"]) as child:
        pid = child.pid
        for cookie, provider, name in PROBES:
            links_out[cookie] = prog.attach(binary=binary, provider=provider, name=name,
                                            pid=pid, cookie=cookie)
        links_out[6] = prog.attach(binary=lib, provider="pybpf_lib", name="fire", pid=pid,
                                   cookie=6)
        if typed:
            for key, name in ((7, "usdt_typed"), (8, "usdt_sleepable")):
                links_out[key] = obj.programs[name].attach(binary=lib, provider="pybpf_lib",
                                                           name="fire", pid=pid)
        recs: List[dict] = []

        def keep(data: memoryview) -> None:
            vals = REC.unpack(data)
            recs.append(dict(zip(REC_FIELDS, vals[:6]), args=list(vals[6:])))
        ring = RingBuffer(obj.maps["usdt_recs"], keep)
        out = go(child)
        ring.consume()
        ring.close()
    assert out.strip() == f"guarded={ROUNDS} lib={ROUNDS}".encode()   # semaphores were set
    return [r for r in recs if r["pid"] == child.pid]


def check_records(recs: List[dict], binary: str) -> None:
    want: Dict[int, List[Tuple[int, ...]]] = {}
    for i in range(ROUNDS):
        for cookie, args in expected(i).items():
            want.setdefault(cookie, []).extend(args)
    got: Dict[int, List[Tuple[int, ...]]] = {}
    for r in recs:
        assert r["failed"] == 0 and r["past_end"] == -errno.ENOENT, r
        assert r["args"][r["arg_cnt"]:] == [0] * (12 - r["arg_cnt"])
        got.setdefault(r["cookie"], []).append(tuple(r["args"][:r["arg_cnt"]]))
    assert sorted(got) == sorted(want)
    for cookie in want:
        assert [tuple(_s(v) for v in args) for args in got[cookie]] == \
            [tuple(_s(v) for v in args) for args in want[cookie]], cookie
    # the address the program saw is the probe's, in the executable's own mapping
    pf = usdt_notes.read_probes(binary)
    addrs = {p.address for p in pf.probes}
    for r in recs:
        if r["cookie"] != 6:
            assert (r["ip"] in addrs) if not pf.shared else (r["ip"] & 0xFFF in
                                                              {a & 0xFFF for a in addrs})


@pytest.mark.parametrize("binary", ["usdt_target", "usdt_target_pie"])
@pytest.mark.parametrize("multi", [True, False], ids=["uprobe_multi", "perf_uprobe"])
def test_every_argument_kind(kernel, binary, multi):
    if multi and not usdt.has_uprobe_multi_link():
        pytest.skip("kernel feature missing: uprobe-multi links (6.6)")
    path = str(built(binary))
    links: Dict[int, usdt.UsdtLink] = {}
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        for p in obj.programs.values():
            p.uprobe_multi = multi
        obj.load()
        check_records(run_target(obj, path, links), path)
        lsum = sum(-1000000000000 - i + -2 - i for i in range(ROUNDS))
        assert (obj.bss["typed_calls"], obj.bss["typed_sum"]) == (ROUNDS, lsum)
        assert obj.bss["sleepable_sum"] == lsum                 # SEC("usdt.s")
        multi_link = links[4]
        assert len(multi_link.sites) == 3 and len(multi_link.spec_ids) == 2  # shared spec
        assert len(multi_link.links) == (1 if multi else 3)
        assert {len(links[c].links) for c in (1, 2, 3, 5, 6)} == {1}
        used = sorted(i for link in links.values() for i in link.spec_ids)
        assert used == list(range(len(used))) == list(range(9))
        for link in links.values():
            link.close()
        assert all(link.closed and link.spec_ids == [] for link in links.values())
        # freed spec ids are reused
        again = obj.programs["usdt_record"].attach(binary=path, provider="pybpf",
                                                   name="consts")
        assert again.spec_ids[0] in used
        spec = obj.maps["__bpf_usdt_specs"][again.spec_ids[0]]
        assert spec["arg_cnt"] == 6 and spec["args"][0]["val_off"] == 42


@pytest.mark.parametrize("binary", ["usdt_target", "usdt_target_pie"])
def test_without_bpf_cookies_the_ip_map_is_used(kernel, monkeypatch, binary):
    """LINUX_HAS_BPF_COOKIE false (a kernel before 5.15): the BPF side looks the spec id
    up by the probe address; PIE and library addresses come from /proc/PID/maps."""
    monkeypatch.setattr(LiveHost, "has_bpf_cookie", lambda self: False)
    path = str(built(binary))
    links: Dict[int, usdt.UsdtLink] = {}
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        for p in obj.programs.values():
            p.uprobe_multi = False
        obj.load()
        recs = run_target(obj, path, links, typed=False)
        check_records(recs, path)
        ips = obj.maps["__bpf_usdt_ip_to_spec_id"]
        by_ip = dict(ips.items())
        assert len(by_ip) == sum(len(link.sites) for link in links.values()) == 8
        assert {r["ip"] for r in recs} <= set(by_ip)
        for link in links.values():
            link.close()
        assert list(ips.keys()) == []
        # as in libbpf: without cookies, one address can serve one attachment only
        lib = str(built("libusdt_target.so"))
        with waiting_child([path, "1", "wait"]) as child:
            with obj.programs["usdt_record"].attach(binary=lib, provider="pybpf_lib",
                                                    name="fire", pid=child.pid):
                with pytest.raises(AttachError, match=r"address 0x[0-9a-f]+ is already "
                                                      "attached"):
                    obj.programs["usdt_typed"].attach(binary=lib, provider="pybpf_lib",
                                                      name="fire", pid=child.pid)
            go(child)
        if binary == "usdt_target_pie":
            with pytest.raises(AttachError, match="needs pid= to find where it is mapped"):
                obj.programs["usdt_record"].attach(binary=path, provider="pybpf",
                                                   name="consts")


@pytest.mark.parametrize("multi", [True, False], ids=["uprobe_multi", "perf_uprobe"])
def test_auto_attach_from_the_attach_target(kernel, multi):
    """No pid: every process running the binary (the program keeps the child's)."""
    path = str(built("usdt_target_pie"))
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        obj.programs["usdt_record"].attach_target = f"{path}:pybpf:multi"
        obj.programs["usdt_record"].uprobe_multi = multi
        with waiting_child([path, str(ROUNDS), "wait"]) as child:
            obj.rodata["target_pid"] = child.pid
            obj.load()
            links = obj.attach()          # usdt_typed has no target: left alone
            assert [link.desc for link in links] == [f"usdt {path}:pybpf:multi"]
            recs: List[tuple] = []
            ring = RingBuffer(obj.maps["usdt_recs"], lambda d: recs.append(REC.unpack(d)))
            go(child)
            ring.consume()
            ring.close()
        assert [r[6:8] for r in recs] == [a for i in range(ROUNDS) for a in expected(i)[4]]
        obj.close()
        assert links[0].closed


@pytest.mark.parametrize("multi", [True, False], ids=["uprobe_multi", "perf_uprobe"])
def test_semaphore_follows_attachment(kernel, multi):
    """The kernel sets the semaphore while attached and clears it on detach: closing
    the link, and closing the object."""
    path = str(built("usdt_target"))
    guarded = usdt_notes.read_probes(path).find("pybpf", "guarded")[0]
    with waiting_child([path, "1", "wait"]) as child:
        obj = BPFObject.open(str(built("usdt_args.bpf.o")))
        with obj:
            obj.programs["usdt_record"].uprobe_multi = multi
            obj.load()
            prog = obj.programs["usdt_record"]
            sema = [_read_u16(child.pid, guarded.semaphore)]
            with prog.attach(binary=path, provider="pybpf", name="guarded", pid=child.pid):
                sema.append(_read_u16(child.pid, guarded.semaphore))
            sema.append(_read_u16(child.pid, guarded.semaphore))
            link = prog.attach(binary=path, provider="pybpf", name="guarded", pid=child.pid)
            sema.append(_read_u16(child.pid, guarded.semaphore))
        sema.append(_read_u16(child.pid, guarded.semaphore))
        assert sema == [0, 1, 0, 1, 0] and link.closed
        assert go(child).strip() == b"guarded=0 lib=0"


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("target, want", [
    ("/usr/bin/python3.11:python:function__entry",
     ("/usr/bin/python3.11", "python", "function__entry")),
    ("libfoo.so.1:prov:name", ("libfoo.so.1", "prov", "name")),
])
def test_parse_section_target(target, want):
    assert usdt.parse_target(target) == want


def test_load_attach_type_follows_uprobe_multi():
    obj = BPFObject.open(str(built("usdt_args.bpf.o")))
    prog = obj.programs["usdt_record"]
    assert prog.sec_def is not None and prog.sec_def.attach == "usdt"
    assert prog.usdt_manager is obj.programs["usdt_typed"].usdt_manager is not None
    prog.uprobe_multi = True
    assert usdt.load_attach_type(prog) == uapi.BPF_TRACE_UPROBE_MULTI
    prog.uprobe_multi = False
    assert usdt.load_attach_type(prog) == 0
    assert obj.programs["usdt_sleepable"].sec_def.flags & sections.SLEEPABLE


@pytest.mark.parametrize("target", ["", "a:b", "a:b:c:d", ":b:c", "a::c", "a:b:"])
def test_parse_section_target_rejects(target):
    with pytest.raises(AttachError, match="must be BINARY:PROVIDER:NAME"):
        usdt.parse_target(target)


def test_attach_errors(kernel, tmp_path):
    path = str(built("usdt_target"))
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        obj.maps["__bpf_usdt_specs"].max_entries = 2
        obj.load()
        prog = obj.programs["usdt_record"]
        with pytest.raises(AttachError, match=r"no USDT probe pybpf:nope in .* \(it has "
                                              r"pybpf:consts, pybpf:guarded, pybpf:mem"):
            prog.attach(binary=path, provider="pybpf", name="nope")
        with pytest.raises(AttachError, match="missing provider, name"):
            prog.attach(binary=path)
        with pytest.raises(AttachError, match="it has no .note.stapsdt probes"):
            prog.attach(binary="/bin/true", provider="a", name="b")
        with pytest.raises(AttachError, match="uprobe binary /nonexistent does not exist"):
            prog.attach(binary="/nonexistent", provider="a", name="b")
        bad = tmp_path / f"bad_{os.getpid()}"
        shutil.copyfile(path, bad)
        with open(bad, "r+b") as f:
            off = ELFFile(f).get_section_by_name(".note.stapsdt")["sh_offset"]
            f.seek(off + 4)
            f.write(struct.pack("<I", 0x7FFF0000))
        with pytest.raises(AttachError, match=r"run past the end .*section \.note\.stapsdt"):
            prog.attach(binary=str(bad), provider="pybpf", name="consts")
        # spec ids: 2 in the map; multi takes both, consts finds none, then reuses one
        multi = prog.attach(binary=path, provider="pybpf", name="multi")
        with pytest.raises(AttachError, match="all 2 USDT spec ids"):
            prog.attach(binary=path, provider="pybpf", name="consts")
        assert len(prog.links) == 1
        multi.close()
        assert prog.attach(binary=path, provider="pybpf", name="consts").spec_ids in ([0],
                                                                                      [1])


def test_bad_section_target(kernel):
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        obj.programs["usdt_record"].attach_target = "a.out:only-two"
        obj.load()
        with pytest.raises(AttachError, match="must be BINARY:PROVIDER:NAME"):
            obj.attach()


def test_object_without_usdt_maps(kernel):
    path = str(built("usdt_target"))
    with BPFObject.open(str(built("attach_uprobe.bpf.o"))) as obj:
        obj.load()
        prog = obj.programs["enter_a"]
        with pytest.raises(AttachError, match=r"must #include <bpf/usdt.bpf.h>"):
            prog.attach(method="usdt", binary=path, provider="pybpf", name="consts")
