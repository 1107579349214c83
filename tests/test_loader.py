"""Loader features against the real kernel: subprograms, global data, maps."""
from __future__ import annotations

import os
import shutil

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi

from conftest import built, require_kernel

PIN_ROOT = "/sys/fs/bpf/pybpf-tests"


@pytest.fixture
def subprogs():
    require_kernel()
    obj = pybpf.BPFObject.open(built("loader_subprogs.bpf.o"))
    obj.rodata["target_tgid"] = os.getpid()
    obj.load()
    obj.attach()
    yield obj
    obj.close()


def test_static_global_subprograms_and_callbacks(subprogs):
    obj = subprogs
    for _ in range(3):
        os.getppid()
    os.getpgid(0)
    assert obj.bss["bss_calls"] == [3, 1]
    # 3 x (twice(5) + scaled(10)) + twice(100): the static subprogram is appended to
    # both programs, the global one is verified on its own
    assert obj.bss["bss_sum"] == 3 * (10 + 3 * 10) + 200
    assert obj.bss["bss_loop_total"] == 3 * 6          # bpf_loop callback (BPF_PSEUDO_FUNC)
    linked = obj.linked["on_getppid"]
    names = [func.name for func, _ in linked.placed]
    assert names[0] == "on_getppid" and set(names[1:]) == {"twice", "scaled", "add_index"}
    assert len(linked.func_info) == len(names)


def test_hidden_global_function_verified_as_static(subprogs):
    """pick() is __hidden: its BTF linkage becomes static, so the verifier checks it
    with the caller's constant index (as a global function it would be refused)."""
    btf = subprogs.btf
    func = btf[btf.find("pick", uapi.BTF_KIND_FUNC)[0]]
    assert func.linkage == uapi.BTF_FUNC_STATIC
    assert btf[btf.find("scaled", uapi.BTF_KIND_FUNC)[0]].linkage == uapi.BTF_FUNC_GLOBAL
    os.getpgid(0)
    assert subprogs.bss["bss_hidden"] == 33


def test_global_data_sections_live(subprogs):
    obj = subprogs
    assert set(obj.sections) == {".rodata", ".data", ".bss", ".data.custom", ".rodata.str"}
    assert obj.sections[".rodata.str"]["greeting"] == b"hello"
    assert obj.data["data_counter"] == 7
    os.getppid()
    assert obj.data["data_counter"] == 8                 # read through the mmap, live
    assert obj.sections[".data.custom"]["custom_value"] == 42 + ord("h")
    obj.data["data_counter"] = 100                       # write into the kernel's memory
    os.getppid()
    assert obj.data["data_counter"] == 101
    with pytest.raises(pybpf.BPFError, match="read-only"):
        obj.rodata["multiplier"] = 5
    maps = {m.name: syscall.obj_info(m.fd, uapi.bpf_map_info) for m in obj.maps.values()}
    assert maps[".rodata"].map_flags & uapi.BPF_F_RDONLY_PROG
    assert maps[".rodata"].name == b"loader_s.rodata"[:15]


def test_rodata_configures_code(subprogs):
    """multiplier is read by the global subprogram: 7 before load changes the sum."""
    require_kernel()
    with pybpf.BPFObject.open(built("loader_subprogs.bpf.o")) as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.rodata["multiplier"] = 7
        obj.load()
        obj.attach()
        os.getppid()
        assert obj.bss["bss_sum"] == 10 + 70


@pytest.fixture
def maps_obj():
    require_kernel()
    shutil.rmtree(PIN_ROOT, ignore_errors=True)
    obj = pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=PIN_ROOT)
    obj.rodata["target_tgid"] = os.getpid()
    obj.maps["points"].max_entries = 128                 # resize before load
    obj.load()
    obj.attach()
    yield obj
    obj.close()
    shutil.rmtree(PIN_ROOT, ignore_errors=True)


def test_map_dict_api_with_btf_codecs(maps_obj):
    points = maps_obj.maps["points"]
    assert points.info().max_entries == 128
    with pytest.raises(pybpf.BPFError, match="before load"):
        points.max_entries = 4
    points[3] = {"x": 1, "y": -2, "tag": b"abc"}
    points[4] = {"x": 5}                                 # missing members are zero
    points[b"\x05\0\0\0"] = b"\x01\0\0\0\x02\0\0\0" + b"xyz".ljust(8, b"\0")
    assert points[3] == {"x": 1, "y": -2, "tag": b"abc"}
    assert points[4] == {"x": 5, "y": 0, "tag": b""}
    assert points[5]["tag"] == b"xyz"
    assert 3 in points and 6 not in points
    assert sorted(points.keys()) == [3, 4, 5]
    assert dict(points.items())[3]["y"] == -2
    del points[3]
    assert 3 not in points and len(points) == 2
    with pytest.raises(KeyError):
        points[3]
    with pytest.raises(KeyError):
        del points[3]
    assert points.lookup(3, "absent") == "absent"
    with pytest.raises(pybpf.BPFError):
        points[1] = {"x": 1 << 40}                      # out of range for int


def test_element_buffers_have_exactly_the_maps_sizes(maps_obj):
    """The kernel reads key_size / value_size bytes from whatever buffer it gets: a
    short one must be refused, not over-read (and a long one is a caller's mistake);
    the error names the size expected, with BTF or without."""
    from pybpf.kernel import syscall
    points = maps_obj.maps["points"]
    assert (points.key_size, points.value_size) == (4, 16)
    for bad in (b"\1\0\0\0\2\0\0\0", b"\0" * 17):
        with pytest.raises(pybpf.BPFError, match=r"a value of \d+ bytes, the map's have 16"):
            points[7] = bad
    with pytest.raises(pybpf.BPFError, match="a key of 2 bytes, the map's have 4"):
        points[b"\7\0"] = b"\0" * 16
    assert 7 not in points                              # nothing was written
    with syscall.map_create(uapi.BPF_MAP_TYPE_HASH, 4, 16, 8, name="t_sizes") as fd:
        raw = pybpf.Map.from_id(syscall.obj_info(fd.fd, uapi.bpf_map_info).id)
        try:
            assert raw.btf is None
            with pytest.raises(pybpf.BPFError, match="a value of 8 bytes, the map's have 16"):
                raw[b"\1\0\0\0"] = b"\0" * 8
            with pytest.raises(pybpf.BPFError, match="a key of 2 bytes, the map's have 4"):
                raw.lookup(b"\1\0")
            with pytest.raises(pybpf.BPFError, match="a key of 5 bytes"):
                del raw[b"\1" * 5]
            raw[b"\1\0\0\0"] = b"\2" * 16
            assert raw[b"\1\0\0\0"] == b"\2" * 16
        finally:
            raw.close()
    percpu = maps_obj.maps["percpu"]
    ncpus = len(pybpf.kernel.sysinfo.possible_cpus())
    for count in (ncpus - 1, ncpus + 1):      # a short list was an over-read before
        with pytest.raises(pybpf.BPFError, match=rf"{count} values for a per-CPU value "
                                                 rf"\({ncpus} CPUs"):
            percpu[1] = [1] * count


def test_percpu_pinned_map_in_map_and_tail_calls(maps_obj):
    obj = maps_obj
    for _ in range(3):
        os.getsid(0)
    percpu = obj.maps["percpu"][1]
    assert isinstance(percpu, list) and len(percpu) == len(pybpf.kernel.sysinfo.possible_cpus())
    assert sum(percpu) == 3
    assert obj.maps["pinned_counts"][1] == 3
    assert os.path.exists(os.path.join(PIN_ROOT, "pinned_counts"))
    assert obj.maps["inner_b"][0] == 15                 # reached through outer[1]
    assert obj.maps["inner_a"][0] == 0
    # tail_target runs attached to the tracepoint itself and through the prog array
    assert obj.bss["tail_hits"] == 6
    ids = [syscall.obj_info(obj.maps[n].fd, uapi.bpf_map_info).id for n in ("inner_a", "inner_b")]
    assert obj.maps["outer"][1] == ids[1]               # lookups of map-in-maps give ids


def test_pinned_map_is_reused(maps_obj):
    os.getsid(0)
    assert maps_obj.maps["pinned_counts"][1] == 1
    with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=PIN_ROOT) as again:
        again.load()
        assert again.maps["pinned_counts"][1] == 1      # the same kernel map
        again.maps["pinned_counts"][2] = 9
    assert maps_obj.maps["pinned_counts"][2] == 9


def test_incompatible_pinned_map_refused(maps_obj):
    with pybpf.BPFObject.open(built("loader_maps.bpf.o"), pin_root=PIN_ROOT) as other:
        other.maps["pinned_counts"].max_entries = 8
        with pytest.raises(pybpf.BPFError, match="incompatible"):
            other.load()


def test_ring_buffer_size_rounded_then_checked_before_create():
    """Setting max_entries rounds up as libbpf's bpf_map__set_max_entries (3 pages
    -> 4); 0, which libbpf leaves to the kernel to refuse, is refused before."""
    require_kernel()
    with pybpf.BPFObject.open(built("exec.bpf.o")) as obj:
        obj.maps["rb"].max_entries = 3 * 4096
        assert obj.maps["rb"].max_entries == 4 * 4096
        obj.maps["rb"].max_entries = 0
        with pytest.raises(pybpf.BPFError, match="power of two"):
            obj.load()


def test_program_test_run():
    """Program.test_run: BPF_PROG_TEST_RUN on a packet program (XDP_PASS = 2)."""
    require_kernel()
    with pybpf.BPFObject.open(built("attach_net.bpf.o")) as obj:
        obj.load()
        xdp = [p for p in obj.programs.values() if p.type == uapi.BPF_PROG_TYPE_XDP][0]
        run = xdp.test_run(data=bytes(64), repeat=10)
        assert run.retval == 2 and len(run.data_out) == 64 and run.duration_ns >= 0
