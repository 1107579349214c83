"""bpftool's daily verbs in pure Python (prog, map, link, btf, feature) and the
library calls under them (pybpf.loaded, Map.from_id/from_pinned, Program.from_id,
Link.from_id), against objects loaded here and against bpftool's own JSON."""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
from typing import Any

import pytest

import pybpf
from pybpf import loaded, uapi
from pybpf.kernel import syscall, fs as tracefs
from pybpf.kernel.sysinfo import interface_index
from pybpf.btf import kernel
from pybpf.cli.main import main
from pybpf.errors import BPFError
from pybpf.link.hooks import Link

from conftest import built, skip_missing_feature
from test_links import (_iter_task_insns, counter, counter_insns, load, private_netns,
                        target_bins, udp_to_self, vmlinux)

FIXTURES = (counter, target_bins, vmlinux)      # pytest finds them by name here

BPFTOOL = shutil.which("bpftool") or ("/usr/sbin/bpftool"
                                      if os.path.exists("/usr/sbin/bpftool") else None)


def bpftool(*args: str) -> Any:
    if BPFTOOL is None:
        pytest.skip("bpftool (a test-time reference) missing")
    res = subprocess.run([BPFTOOL, "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def sorted_if_list(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


def pybpf_cli(capsys, *args: str) -> str:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def pybpf_json(capsys, *args: str) -> Any:
    return json.loads(pybpf_cli(capsys, *args, "--json"))


def cli_error(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 1
    return capsys.readouterr().err


@pytest.fixture
def pin_dir(kernel):
    path = f"{tracefs.BPFFS_DIR}/pybpf-verbs-{os.getpid()}"
    yield path
    if os.path.isdir(path):
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)


@pytest.fixture
def maps_obj(pin_dir):
    with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=pin_dir) as obj:
        obj.load()
        obj.maps["points"][3] = {"x": 1, "y": -2, "tag": b"abc"}
        obj.maps["points"][7] = {"x": 5, "y": 6, "tag": b"zz"}
        obj.maps["percpu"][1] = [41, 42]
        yield obj


@pytest.fixture
def exec_obj(kernel):
    with pybpf.BPFObject.open(built("exec.bpf.o")) as obj:
        obj.rodata["target_pid"] = 4242
        obj.load()
        obj.attach()
        yield obj


def map_id(obj: pybpf.BPFObject, name: str) -> int:
    return obj.maps[name].info().id


def prog_id(obj: pybpf.BPFObject, name: str) -> int:
    return loaded.prog_info(obj.programs[name].fd).id


# ------------------------------------------------------------------ library

def test_iterators_see_what_we_loaded(exec_obj):
    pid = prog_id(exec_obj, "handle_exec")
    progs = {p.id: p for p in loaded.programs()}
    assert progs[pid].name == "handle_exec" and progs[pid].type_name == "tracepoint"
    assert sorted(progs[pid].map_ids) == sorted(map_id(exec_obj, m) for m in ("rb", ".rodata"))
    maps = {m.id: m for m in loaded.maps()}
    rb = maps[map_id(exec_obj, "rb")]
    assert (rb.type_name, rb.max_entries, rb.key_size) == ("ringbuf", 1 << 18, 0)
    assert maps[map_id(exec_obj, ".rodata")].frozen
    links = [ln for ln in loaded.links() if ln.prog_id == pid]
    assert len(links) == 1 and links[0].type_name == "perf_event"
    assert links[0].details == {"event_type": "tracepoint", "tracepoint": "sched_process_exec",
                                "cookie": 0}
    btfs = {b.id: b for b in loaded.btfs()}
    assert btfs[1].name == "vmlinux" and btfs[1].kernel
    assert not btfs[progs[pid].btf_id].kernel


def test_map_from_id_and_pinned_decode_through_btf(maps_obj, pin_dir):
    m = pybpf.Map.from_id(map_id(maps_obj, "points"))
    try:
        assert dict(m.items()) == {3: {"x": 1, "y": -2, "tag": b"abc"},
                                   7: {"x": 5, "y": 6, "tag": b"zz"}}
        m[9] = {"x": 9, "y": 9, "tag": b"n"}
        assert maps_obj.maps["points"][9]["tag"] == b"n"
    finally:
        m.close()
    pinned = pybpf.Map.from_pinned(f"{pin_dir}/pinned_counts")
    try:
        assert pinned.info().id == map_id(maps_obj, "pinned_counts")
        pinned[2] = 77
        assert maps_obj.maps["pinned_counts"][2] == 77
    finally:
        pinned.close()
    rodata = pybpf.Map.from_id(map_id(maps_obj, ".bss"))
    try:
        assert rodata[0] == {"tail_hits": 0}
    finally:
        rodata.close()


def test_program_and_link_from_id(exec_obj):
    pid = prog_id(exec_obj, "handle_exec")
    prog = pybpf.Program.from_id(pid)
    try:
        assert (prog.name, prog.type_name) == ("handle_exec", "tracepoint")
        code = loaded.prog_code(prog.fd)
        assert len(code.insns) == loaded.prog_info(prog.fd).xlated_len
        assert code.lines[0].line.startswith("int handle_exec(")
        assert code.lines[0].file_name.endswith("exec.bpf.c")
        assert code.btf is not None and code.btf[code.funcs[0]].name == "handle_exec"
    finally:
        prog.close()
    link_id = next(ln.id for ln in loaded.links() if ln.prog_id == pid)
    with Link.from_id(link_id) as again:
        assert again.info().prog_id == pid
    assert any(ln.id == link_id for ln in loaded.links())   # closing a copy detaches nothing


def test_missing_and_wrong_objects_are_clear_errors(maps_obj, pin_dir, tmp_path):
    with pytest.raises(BPFError) as err:
        pybpf.Map.from_id(0x7FFFFFF0)
    assert err.value.errno == 2
    path = f"{pin_dir}/a_prog"
    syscall.obj_pin(maps_obj.programs["tail_target"].fd, path)
    with pytest.raises(BPFError, match="is not a pinned BPF map"):
        pybpf.Map.from_pinned(path)


def test_link_info_layout_matches_the_running_kernel():
    """uapi.bpf_link_info_union against the kernel's own struct bpf_link_info."""
    btf = kernel.vmlinux()
    info = btf[btf.find_one("bpf_link_info", uapi.BTF_KIND_STRUCT)]
    union = btf[btf.resolve(info.members[3].type)]
    assert info.members[3].bit_offset == 128
    assert union.size == ctypes.sizeof(uapi.bpf_link_info_union)
    for member in union.members:
        ours = getattr(uapi.bpf_link_info_union, member.name)
        assert ours.size == btf.size_of(member.type), member.name
        sub = btf[btf.resolve(member.type)]
        ours_type = dict(uapi.bpf_link_info_union._fields_)[member.name]
        names = [f[0] for f in ours_type._fields_]
        for m in sub.members:
            if m.name:
                assert m.name in names, (member.name, m.name)
                assert getattr(ours_type, m.name).offset * 8 == m.bit_offset, (member.name,
                                                                               m.name)


# ------------------------------------------------------------------ prog

def test_prog_list_equals_bpftool(capsys, exec_obj, maps_obj):
    mine = {p["id"]: p for p in pybpf_json(capsys, "prog", "list")}
    theirs = {p["id"]: p for p in bpftool("prog", "list")}
    ours = [prog_id(exec_obj, "handle_exec"), prog_id(maps_obj, "tail_target")]
    for pid in ours:
        for key in ("id", "type", "name", "tag", "gpl_compatible", "uid", "bytes_xlated",
                    "jited", "bytes_jited", "bytes_memlock", "map_ids", "btf_id"):
            assert mine[pid][key] == theirs[pid][key], key
        assert abs(mine[pid]["loaded_at"] - theirs[pid]["loaded_at"]) <= 1
    text = pybpf_cli(capsys, "prog", "show", "id", str(ours[0]))
    assert text.startswith(f"{ours[0]}: tracepoint  name handle_exec  tag "
                           f"{mine[ours[0]]['tag']}  gpl\n")
    by_name = pybpf_json(capsys, "prog", "show", "name", "handle_exec")
    assert ours[0] in [p["id"] for p in by_name]
    by_tag = pybpf_json(capsys, "prog", "show", "tag", mine[ours[1]]["tag"])
    assert ours[1] in [p["id"] for p in by_tag]


def test_prog_dump_of_subprograms(capsys, kernel):
    with pybpf.BPFObject.open(built("loader_subprogs.bpf.o")) as obj:
        obj.load()
        pid = str(prog_id(obj, "on_getppid"))
        mine = pybpf_json(capsys, "prog", "dump", "id", pid)
        theirs = bpftool("prog", "dump", "xlated", "id", pid)
        assert [(i, r["proto"].replace(" ", "")) for i, r in enumerate(mine) if "proto" in r] \
            == [(i, r["proto"].replace(" ", "")) for i, r in enumerate(theirs) if "proto" in r]
        calls = [r["disasm"] for r in mine if "call pc" in r["disasm"]]
        want = [r["disasm"].split(") ", 1)[1].split("#")[0] for r in theirs
                if "call pc" in r["disasm"]]
        assert [c.split(" (")[0] for c in calls] == want
        assert calls[0].endswith("(twice)")


def test_prog_dump_names_a_tail_call(capsys, maps_obj):
    text = pybpf_cli(capsys, "prog", "dump", "id", str(prog_id(maps_obj, "entry")))
    want = bpftool("prog", "dump", "xlated", "id", str(prog_id(maps_obj, "entry")))
    assert "call bpf_tail_call" in text
    assert any("call bpf_tail_call#12" in r["disasm"] for r in want)


def test_prog_dump_equals_bpftool_xlated(capsys, exec_obj):
    pid = str(prog_id(exec_obj, "handle_exec"))
    mine = pybpf_json(capsys, "prog", "dump", "xlated", "id", pid)
    theirs = bpftool("prog", "dump", "xlated", "id", pid)
    assert len(mine) == len(theirs)
    assert [r.get("src") for r in mine] == [r.get("src") for r in theirs]
    assert mine[0]["proto"].replace(" ", "") == theirs[0]["proto"].replace(" ", "")
    for a, b in zip(mine, theirs):
        if "call " in b["disasm"]:
            assert a["disasm"].split("call ")[1] == b["disasm"].split("call ")[1].split("#")[0]
        if "map[id:" in b["disasm"]:
            assert a["disasm"] == b["disasm"].split(") ", 1)[1]
    text = pybpf_cli(capsys, "prog", "dump", "id", pid)
    assert text.splitlines()[0] == mine[0]["proto"] + ":"
    assert "call bpf_ringbuf_reserve" in text and f"; {mine[0]['src']}" in text


# ------------------------------------------------------------------ map

def test_map_list_equals_bpftool(capsys, maps_obj):
    """Per map with ``map show``: bpftool 7.1's ``map list`` carries the btf_id of
    one map over to the next map that has none."""
    mine = {m["id"]: m for m in pybpf_json(capsys, "map", "list")}
    for name in ("points", "percpu", "pinned_counts", "outer", ".bss"):
        mid = map_id(maps_obj, name)
        theirs = bpftool("map", "show", "id", str(mid))
        for key in ("type", "name", "flags", "bytes_key", "bytes_value", "max_entries",
                    "bytes_memlock", "frozen", "btf_id"):
            assert mine[mid].get(key) == theirs.get(key), (name, key)
        assert pybpf_json(capsys, "map", "show", "id", str(mid)) == [mine[mid]]


@pytest.mark.parametrize("name", ["points", "percpu", ".bss", "pinned_counts", "outer"])
def test_map_dump_equals_bpftool(capsys, maps_obj, name):
    mid = str(map_id(maps_obj, name))
    assert pybpf_json(capsys, "map", "dump", "id", mid) == bpftool("map", "dump", "id", mid)


def test_map_dump_text_and_selectors(capsys, maps_obj, pin_dir):
    text = pybpf_cli(capsys, "map", "dump", "name", "points")
    lines = text.splitlines()                       # hash order: any
    assert sorted(lines[:2]) == ['key: 3  value: {"x": 1, "y": -2, "tag": "abc"}',
                                 'key: 7  value: {"x": 5, "y": 6, "tag": "zz"}']
    assert lines[2:] == ["Found 2 elements"]
    text = pybpf_cli(capsys, "map", "dump", "pinned", f"{pin_dir}/pinned_counts")
    assert text.endswith("Found 4 elements\n")
    percpu = pybpf_cli(capsys, "map", "dump", "name", "percpu")
    assert "key: 1\nvalue (CPU 00): 41\nvalue (CPU 01): 42\n" in percpu
    assert "no map with name nope" in cli_error(capsys, "map", "dump", "name", "nope")
    assert "no map with id 2147483632" in cli_error(capsys, "map", "dump", "id", "2147483632")
    assert "expected one of id, name, pinned" in cli_error(capsys, "map", "dump", "by", "x")


def test_perf_event_array_entries_are_errors_as_in_bpftool(capsys, kernel):
    with pybpf.BPFObject.open(built("pb_events.bpf.o")) as obj:
        obj.load()
        mid = str(map_id(obj, "events"))
        mine = pybpf_json(capsys, "map", "dump", "id", mid)
        assert mine == bpftool("map", "dump", "id", mid)
        assert mine[0]["value"] == {"error": os.strerror(524)}
        assert pybpf_cli(capsys, "map", "dump", "id", mid).endswith("Found 0 elements\n")


def test_ring_buffer_has_no_entries_to_dump(capsys, exec_obj):
    err = cli_error(capsys, "map", "dump", "id", str(map_id(exec_obj, "rb")))
    assert "is a ringbuf: it has no keys" in err


def test_map_lookup_update_delete(capsys, maps_obj):
    points = maps_obj.maps["points"]
    out = pybpf_cli(capsys, "map", "lookup", "name", "points", "key", "3", "0", "0", "0")
    assert out == 'key: 3  value: {"x": 1, "y": -2, "tag": "abc"}\n'
    row = pybpf_json(capsys, "map", "lookup", "name", "points", "key", "hex", "07", "00",
                     "00", "00")
    assert row == bpftool("map", "lookup", "name", "points", "key", "hex", "07", "00", "00",
                          "00")
    pybpf_cli(capsys, "map", "update", "name", "points", "key", "json", "9", "value", "json",
              '{"x": 9, "y": -9, "tag": "nine"}', "noexist")
    assert points[9] == {"x": 9, "y": -9, "tag": b"nine"}
    pybpf_cli(capsys, "map", "update", "name", "points", "key", "hex", "0a000000", "value",
              *(["1"] + ["0"] * 15))
    assert points[10] == {"x": 1, "y": 0, "tag": b""}
    assert "exists" in cli_error(capsys, "map", "update", "name", "points", "key", "json",
                                 "9", "value", "json", '{"x": 1}', "noexist").lower()
    pybpf_cli(capsys, "map", "delete", "name", "points", "key", "json", "9")
    assert 9 not in points
    assert "not found" in cli_error(capsys, "map", "delete", "name", "points", "key",
                                    "json", "9")
    assert "expected 4 bytes, got 1" in cli_error(capsys, "map", "lookup", "name", "points",
                                                  "key", "1")
    pybpf_cli(capsys, "map", "update", "name", "percpu", "key", "json", "2", "value", "json",
              "5")
    assert maps_obj.maps["percpu"][2] == [5, 5]


def test_map_pin(capsys, maps_obj, pin_dir):
    path = f"{pin_dir}/points_again"
    pybpf_cli(capsys, "map", "pin", "id", str(map_id(maps_obj, "points")), path)
    m = pybpf.Map.from_pinned(path)
    try:
        assert m[7]["x"] == 5
    finally:
        m.close()


# ------------------------------------------------------------------ link

def test_link_list_and_show(capsys, exec_obj):
    pid = prog_id(exec_obj, "handle_exec")
    mine = [ln for ln in pybpf_json(capsys, "link", "list") if ln["prog_id"] == pid]
    theirs = [ln for ln in bpftool("link", "list") if ln["prog_id"] == pid]
    assert [(ln["id"], ln["type"]) for ln in mine] == [(ln["id"], ln["type"])
                                                        for ln in theirs]
    assert mine[0]["tracepoint"] == "sched_process_exec"
    text = pybpf_cli(capsys, "link", "show", "id", str(mine[0]["id"]))
    assert text == (f"{mine[0]['id']}: perf_event  prog {pid}\n"
                    "\tevent_type tracepoint  tracepoint sched_process_exec\n")


def test_xdp_and_tcx_link_details_and_detach(capsys, kernel):
    with pybpf.BPFObject.open(built("attach_net.bpf.o")) as obj:
        obj.load()
        with private_netns():
            lo = interface_index("lo")
            xdp = obj.programs["count_xdp"].attach(ifindex=lo)
            tcx = obj.programs["count_tcx"].attach(ifindex=lo)
            xdp_id, tcx_id = xdp.info().id, tcx.info().id
            rows = {ln["id"]: ln for ln in pybpf_json(capsys, "link", "list")}
            assert rows[xdp_id]["ifindex"] == lo and rows[xdp_id]["type"] == "xdp"
            assert rows[tcx_id]["attach_type"] == "tcx_ingress"
            assert rows[tcx_id]["devname"] == "lo"
            udp_to_self(2)
            before = obj.bss["xdp_packets"]
            assert before >= 2
            pybpf_cli(capsys, "link", "detach", "id", str(xdp_id))
            udp_to_self(2)
            assert obj.bss["xdp_packets"] == before      # detached though our fd is open
            assert loaded.link_info(xdp.fd).details["ifindex"] == 0
            xdp.close()
            tcx.close()


def test_raw_tracepoint_uprobe_multi_and_iter_link_details(capsys, counter, target_bins,
                                                          vmlinux):
    raw_tp = counter.prog("raw_tp/sys_enter")
    path = target_bins["nopie"]
    multi = load(f"uprobe.multi/{path}:pybpf_target_?", counter_insns(counter.map.fd))
    counter.progs.append(multi)
    it = load("iter/task", _iter_task_insns(),
              attach_btf_id=vmlinux.find("bpf_iter_task", uapi.BTF_KIND_FUNC)[0])
    counter.progs.append(it)
    with raw_tp.attach() as a, multi.attach() as b, it.attach(tid=os.getpid()) as c:
        rows = {ln["id"]: ln for ln in pybpf_json(capsys, "link", "list")}
        assert rows[a.info().id]["tp_name"] == "sys_enter"
        um = rows[b.info().id]
        assert (um["type"], um["path"], um["func_cnt"], um["retprobe"]) == (
            "uprobe_multi", path, 2, False)
        assert len(um["offsets"]) == 2 and all(um["offsets"])
        itr = rows[c.info().id]
        assert (itr["target_name"], itr["tid"]) == ("task", os.getpid())
        text = pybpf_cli(capsys, "link", "show", "id", str(b.info().id))
        assert f"path {path}" in text and "func_cnt 2" in text


def test_netns_link_details_and_detach(capsys, counter):
    prog = counter.prog("sk_lookup", ret=1)
    with private_netns():
        ino = os.stat("/proc/thread-self/ns/net").st_ino
        with prog.attach() as link:
            link_id = link.info().id
            row = next(ln for ln in pybpf_json(capsys, "link", "list") if ln["id"] == link_id)
            assert (row["type"], row["netns_ino"], row["attach_type"]) == (
                "netns", ino, "sk_lookup")
            pybpf_cli(capsys, "link", "detach", "id", str(link_id))
            assert loaded.link_info(link.fd).details["netns_ino"] == 0


NFPROTO_IPV4, NF_INET_LOCAL_IN = 2, 1


def test_netfilter_link_details(capsys, kernel):
    from pybpf.kernel.probes import _EXIT, _MOV_K, _insn
    fd, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_NETFILTER, _insn(_MOV_K, 0, imm=1) +
                              _insn(_EXIT), "GPL", "nf_accept",
                              expected_attach_type=uapi.BPF_NETFILTER)
    with fd, private_netns():
        with syscall.link_create(fd.fd, 0, uapi.BPF_NETFILTER, netfilter={
                "pf": NFPROTO_IPV4, "hooknum": NF_INET_LOCAL_IN, "priority": -128}) as link:
            info = loaded.link_info(link.fd)
            assert (info.type_name, info.details) == ("netfilter", {
                "pf": NFPROTO_IPV4, "hook": NF_INET_LOCAL_IN, "prio": -128, "flags": 0})
            text = pybpf_cli(capsys, "link", "show", "id", str(info.id))
            assert text.endswith("\tpf 2  hook 1  prio -128  flags 0\n")


def test_cgroup_link_details(capsys, kernel):
    cg = os.path.join(tracefs.cgroup2_root(), f"pybpf-verbs-{os.getpid()}")
    os.mkdir(cg)
    try:
        with pybpf.BPFObject.open(built("attach_net.bpf.o")) as obj:
            obj.load()
            with obj.programs["count_sock"].attach(cgroup=cg) as link:
                row = next(ln for ln in pybpf_json(capsys, "link", "list")
                           if ln["id"] == link.info().id)
                assert row["type"] == "cgroup"
                assert row["attach_type"] == "cgroup_inet_sock_create"
                assert row["cgroup_id"] == os.stat(cg).st_ino
    finally:
        os.rmdir(cg)


# ------------------------------------------------------------------ btf

def test_btf_list_and_dump_equal_bpftool(capsys, exec_obj, tmp_path):
    pid = prog_id(exec_obj, "handle_exec")
    btf_id = loaded.prog_info(exec_obj.programs["handle_exec"].fd).btf_id
    mine = {b["id"]: b for b in pybpf_json(capsys, "btf", "list")}
    theirs = {b["id"]: b for b in bpftool("btf", "list")}
    assert mine[1] == theirs[1]
    assert pid in mine[btf_id]["prog_ids"]
    for key in ("size", "kernel", "prog_ids", "map_ids"):
        assert sorted_if_list(mine[btf_id][key]) == sorted_if_list(theirs[btf_id][key]), key
    raw = pybpf_cli(capsys, "btf", "dump", "id", str(btf_id))
    want = subprocess.run([BPFTOOL, "btf", "dump", "id", str(btf_id), "format", "raw"],
                          capture_output=True, text=True, check=True).stdout
    assert raw == want
    header = tmp_path / "prog.h"
    pybpf_cli(capsys, "btf", "dump", "prog", "id", str(pid), "format", "c", "-o", str(header))
    assert "struct event {" in header.read_text()
    clang = shutil.which("clang")
    if clang:
        subprocess.run([clang, "-target", "bpf", "-fsyntax-only", "-x", "c", str(header)],
                       check=True)


def test_btf_dump_of_a_map_is_its_key_and_value_as_in_bpftool(capsys, maps_obj):
    mid = str(map_id(maps_obj, "points"))
    for part in ([], ["key"], ["value"], ["all"]):
        mine = pybpf_cli(capsys, "btf", "dump", "map", "id", mid, *part)
        theirs = subprocess.run([BPFTOOL, "btf", "dump", "map", "id", mid, *part],
                                capture_output=True, text=True, check=True).stdout
        assert mine == theirs, part
    c = pybpf_cli(capsys, "btf", "dump", "map", "name", "points", "value", "format", "c")
    assert "struct point {" in c and "struct inner" not in c


def test_btf_dump_file_formats(capsys, tmp_path):
    obj = str(built("exec.bpf.o"))
    raw = pybpf_cli(capsys, "btf", "dump", "file", obj)
    assert raw.startswith("[1] ")
    c = pybpf_cli(capsys, "btf", "dump", obj, "--format", "c")
    assert "struct event {" in c and c.startswith("#ifndef __VMLINUX_H__")
    bad = tmp_path / "junk"
    bad.write_bytes(b"not btf")
    assert "neither BTF nor an ELF object" in cli_error(capsys, "btf", "dump", "file", str(bad))


def test_module_btf_dumps_split(capsys):
    mods = [n for n in sorted(os.listdir(kernel.SYSFS_BTF)) if n != "vmlinux"]
    if not mods:
        skip_missing_feature("kernel module BTF: no module with BTF is loaded")
    raw = pybpf_cli(capsys, "btf", "dump", "file", f"{kernel.SYSFS_BTF}/{mods[0]}")
    first = int(raw.split("]", 1)[0][1:])
    assert first == len(kernel.vmlinux())          # split: ids continue vmlinux's


# ------------------------------------------------------------------ feature

def test_feature_probe_equals_bpftool(capsys, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("PYBPF_CACHE_DIR", str(tmp_path))
    mine = pybpf_json(capsys, "feature", "probe", "kernel")
    theirs = bpftool("feature", "probe", "kernel")
    for section in ("program_types", "map_types"):
        common = set(mine[section]) & set(theirs[section])
        assert len(common) >= 30
        assert {k: mine[section][k] for k in common} == {k: theirs[section][k]
                                                         for k in common}
    common = set(mine["helpers"]) & set(theirs["helpers"])
    assert "kprobe_available_helpers" in common
    for key in common:
        assert set(mine["helpers"][key]) == set(theirs["helpers"][key]), key
    assert {"xdp", "tcx", "perf_event", "cgroup"} <= set(mine["link_types"])
    assert mine["misc"] == theirs["misc"]
    assert os.listdir(tmp_path)                      # cached for this boot
    text = pybpf_cli(capsys, "feature")              # from the cache
    assert "eBPF program_type xdp is available" in text
