"""pybpf.maps, value by value: geometry rules, key/value sizes and codecs, per-CPU
layout, map-in-map and prog-array ids, walks, pins, and GlobalData of every shape
(struct, array, string and signed globals through BTF, sections of more than a
page, sections read through the map, no-BTF images).

Kernel tests create bare maps from a MapSpec (no object, no BTF: int keys are
packed little-endian) or load bpf/maps_globals.bpf.c.
"""
from __future__ import annotations

import errno
import mmap
import os
import struct
from typing import Iterator

import pytest

from conftest import built
from pybpf import BPFObject, uapi
from pybpf.errors import BPFError, ObjectError
from pybpf.kernel import syscall
from pybpf.kernel.sysinfo import possible_cpus
from pybpf.maps import GlobalData, Map, _Codec, _MapValue
from pybpf.obj.spec import MapSpec

u = uapi
PAGE = mmap.PAGESIZE
NCPU = len(possible_cpus())


def spec(type_: int = u.BPF_MAP_TYPE_HASH, key: int = 4, value: int = 8,
         entries: int = 4, name: str = "mm", **kw) -> MapSpec:
    return MapSpec(name, type_, key, value, entries, **kw)


@pytest.fixture
def made(kernel) -> Iterator:
    """made(spec) -> a created Map, closed at the end of the test."""
    maps = []

    def make(s: MapSpec, **create) -> Map:
        m = Map(s)
        m.create(**create)
        maps.append(m)
        return m
    yield make
    for m in maps:
        m.close()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------------ geometry (pure)


def test_geometry_reads_through_to_the_spec_and_unknown_attributes_fail():
    s = spec(btf_key_type_id=3, btf_value_type_id=7)
    m = Map(s)
    assert (m.type, m.key_size, m.value_size, m.max_entries, m.flags) == \
        (u.BPF_MAP_TYPE_HASH, 4, 8, 4, 0)
    assert (m.btf_key_type_id, m.btf_value_type_id) == (3, 7)
    assert not hasattr(m, "no_such_attribute")
    with pytest.raises(AttributeError, match="^map_extra$"):
        m.map_extra
    s.max_entries = 9               # the spec stays the one truth
    assert m.max_entries == 9


def test_geometry_setters_convert_and_round_ring_sizes():
    m = Map(spec())
    m.max_entries = "12"            # as from a command line
    assert m.spec.max_entries == 12 and type(m.spec.max_entries) is int
    assert "max_entries" not in m.__dict__
    m.max_entries = 5000            # not a ring: kept as given
    assert m.spec.max_entries == 5000
    m.value_size = 16
    assert m.spec.value_size == 16
    rb = Map(spec(u.BPF_MAP_TYPE_RINGBUF, 0, 0, PAGE))
    rb.max_entries = 5000           # as libbpf: rounded up to a power-of-two of pages
    assert rb.spec.max_entries == 2 * PAGE
    urb = Map(spec(u.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, PAGE))
    urb.max_entries = 3 * PAGE
    assert urb.spec.max_entries == 4 * PAGE
    m.other = 5                     # any other attribute is a plain one
    assert m.__dict__["other"] == 5 and m.spec.name == "mm"


def test_global_data_size_is_fixed_but_entries_are_not():
    from pybpf.obj.elf import Section
    s = spec(u.BPF_MAP_TYPE_ARRAY, 4, 16, 1, name=".data")
    s.section = Section.__new__(Section)
    m = Map(s)
    with pytest.raises(BPFError, match=r"^map '\.data': a global data section's size is "
                                       r"fixed$"):
        m.value_size = 32
    assert s.value_size == 16
    m.key_size = 4
    m.max_entries = 1
    assert s.max_entries == 1


def test_type_name_and_repr_before_create():
    assert Map(spec(u.BPF_MAP_TYPE_PERCPU_ARRAY)).type_name == "percpu_array"
    assert Map(spec(u.BPF_MAP_TYPE_HASH)).type_name == "hash"
    assert Map(spec(9999)).type_name == "type#9999"
    m = Map(spec())
    assert repr(m) == "<Map mm hash key=4 value=8 max_entries=4 not created>"
    assert not m.loaded
    with pytest.raises(BPFError, match=r"^map 'mm' is not created \(load the object first\)$"):
        m.fd


@pytest.mark.parametrize("type_, per_cpu", [
    (u.BPF_MAP_TYPE_PERCPU_HASH, True), (u.BPF_MAP_TYPE_PERCPU_ARRAY, True),
    (u.BPF_MAP_TYPE_LRU_PERCPU_HASH, True), (u.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, True),
    (u.BPF_MAP_TYPE_HASH, False), (u.BPF_MAP_TYPE_ARRAY, False),
    (u.BPF_MAP_TYPE_LRU_HASH, False), (u.BPF_MAP_TYPE_CGROUP_STORAGE, False),
])
def test_per_cpu_types(type_, per_cpu):
    assert Map(spec(type_)).per_cpu is per_cpu


def test_struct_ops_attach_on_another_map_is_refused():
    with pytest.raises(BPFError, match=r"^map 'mm' is a hash map, not a struct_ops map of "
                                       r"an object$"):
        Map(spec()).attach_struct_ops()


def test_struct_ops_attach_goes_to_the_registration():
    class Registration:
        def attach(self):
            return "the link"
    m = Map(spec(u.BPF_MAP_TYPE_STRUCT_OPS))
    m.struct_ops = Registration()
    assert m.attach_struct_ops() == "the link"


# ------------------------------------------------------------------ codecs (pure)


def test_codec_without_btf_packs_ints_and_checks_byte_sizes():
    for size, value, want in [(1, 5, b"\x05"), (2, 0x102, b"\x02\x01"),
                              (4, -1, b"\xff" * 4), (8, 1 << 40, (1 << 40).to_bytes(8, "little")),
                              (4, 0x80000000, b"\0\0\0\x80")]:
        c = _Codec(None, 0, size, None, "a key")
        assert c.compiled is None
        assert c.encode(value) == want
        assert c.decode(want) == want          # bytes pass through
        assert c.encode(bytearray(want)) == want
        assert c.encode(memoryview(want)) == want
    c = _Codec(None, 0, 4, None, "map 'm': a key")
    with pytest.raises(BPFError, match=r"^map 'm': a key of 3 bytes, the map's have 4 \(the "
                                       r"size the kernel reads\)$"):
        c.encode(b"abc")
    with pytest.raises(BPFError, match="a key of 5 bytes, the map's have 4"):
        c.encode(b"abcde")
    with pytest.raises(BPFError, match=r"^cannot encode int into 3 bytes without BTF: "
                                       r"pass bytes$"):
        _Codec(None, 0, 3, None, "k").encode(1)
    with pytest.raises(BPFError, match=r"^cannot encode str into 4 bytes without BTF"):
        c.encode("1")
    from pybpf.btf import codec
    assert _Codec(None, 3, 4, codec, "k").compiled is None     # a type id, but no BTF
    assert _Codec(None, 3, 4, codec, "k").encode(1) == b"\1\0\0\0"


def test_codec_with_btf_but_no_type_id_is_raw():
    with BPFObject.open(str(built("maps_globals.bpf.o"))) as obj:
        assert _Codec(obj.btf, 0, 4, None, "k").compiled is None
        from pybpf.btf import codec
        tid = obj.sections[".data"].variables["pair"][2]
        c = _Codec(obj.btf, tid, 12, codec, "v")
        assert c.encode({"a": 1, "b": -2, "c": 3, "tag": b"x"}) == \
            struct.pack("<IhB5s", 1, -2, 3, b"x")
        assert c.decode(struct.pack("<IhB5s", 7, 8, 9, b"ab"))["a"] == 7


# ------------------------------------------------------------------ create (kernel)


def test_create_hash_update_lookup_delete_without_btf(made):
    m = made(spec())
    assert m.loaded and m.fd > 2
    assert repr(m) == f"<Map mm hash key=4 value=8 max_entries=4 fd={m.fd}>"
    m[1] = 7                                   # int key and value, little-endian
    m.update(2, b"\x01" * 8)
    m.update(-1, 3)
    assert m[1] == (7).to_bytes(8, "little")
    assert m.lookup(b"\x02\0\0\0") == b"\x01" * 8
    assert m.lookup(b"\xff\xff\xff\xff") == (3).to_bytes(8, "little")
    assert m.lookup(9) is None and m.lookup(9, "dflt") == "dflt"
    assert 1 in m and 9 not in m
    assert len(m) == 3
    assert sorted(m.raw_keys()) == [b"\x01\0\0\0", b"\x02\0\0\0", b"\xff\xff\xff\xff"]
    assert sorted(m) == sorted(m.keys()) == sorted(m.raw_keys())
    assert sorted(m.items()) == [(b"\x01\0\0\0", (7).to_bytes(8, "little")),
                                 (b"\x02\0\0\0", b"\x01" * 8),
                                 (b"\xff\xff\xff\xff", (3).to_bytes(8, "little"))]
    assert sorted(m.values()) == sorted(v for _, v in m.items())
    with pytest.raises(KeyError):
        m[9]
    assert m.delete(2) is True and m.delete(2) is False
    del m[1]
    with pytest.raises(KeyError):
        del m[1]
    assert list(m.raw_keys()) == [b"\xff\xff\xff\xff"]
    with pytest.raises(BPFError) as e:
        m.update(5, 1, u.BPF_EXIST)            # flags reach the kernel
    assert e.value.errno == errno.ENOENT
    m.update(-1, 4, u.BPF_EXIST)
    assert m[-1] == (4).to_bytes(8, "little")
    with pytest.raises(BPFError) as e:
        m.update(-1, 4, u.BPF_NOEXIST)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(BPFError, match="a value of 4 bytes, the map's have 8"):
        m[3] = b"abcd"                         # a short buffer is refused, never over-read
    with pytest.raises(BPFError, match="a key of 8 bytes, the map's have 4"):
        m.lookup(b"\0" * 8)
    info = m.info()
    assert (info.type, info.key_size, info.value_size, info.max_entries, info.btf_id) == \
        (u.BPF_MAP_TYPE_HASH, 4, 8, 4, 0)
    assert info.name.rstrip(b"\0") == b"mm"


def test_geometry_is_frozen_after_create_and_fd_fails_after_close(made):
    m = made(spec())
    for attr in ("type", "key_size", "value_size", "max_entries", "flags"):
        with pytest.raises(BPFError, match=rf"^map 'mm': {attr} can only be changed "
                                           r"before load\(\)$"):
            setattr(m, attr, 1)
    assert m.spec.max_entries == 4
    m.close()
    assert not m.loaded
    with pytest.raises(BPFError, match=r"^map 'mm' is closed$") as e:
        m.fd
    assert e.value.errno == errno.EBADF
    assert repr(m).endswith(" not created>")
    m.close()                                   # twice is fine


def _changing_walk(m: Map) -> int:
    """Walk m while each step deletes the key just returned and adds another:
    GET_NEXT_KEY of a missing key restarts at the first, so the walk never ends by
    itself.  Returns how many keys it yielded."""
    m[0] = 0
    n = 0
    for key in m.raw_keys():
        n += 1
        assert n < 100
        k = int.from_bytes(key, "little")
        del m[k]
        m[k + 1] = 0
    return n


@pytest.mark.parametrize("entries", [1, 2, 4])
def test_walk_of_a_map_changing_under_it_stops(made, entries):
    """It stops after twice max_entries keys (plus the one that crossed the bound)."""
    assert _changing_walk(made(spec(entries=entries))) == 2 * entries + 1


def test_walk_bound_when_the_spec_has_no_entries(made):
    """A spec with max_entries 0 (the kernel's choice, as for perf event arrays before
    create) still bounds the walk: by one entry."""
    real = made(spec(entries=1))
    m = Map(spec(entries=0))
    m.adopt(syscall.dup(real.fd))
    try:
        assert _changing_walk(m) == 3
    finally:
        m.close()


def test_full_map_walk_yields_every_key(made):
    m = made(spec(entries=4))
    for k in range(4):
        m[k] = k
    assert sorted(int.from_bytes(k, "little") for k in m.raw_keys()) == [0, 1, 2, 3]
    assert len(m) == 4
    one = made(spec(entries=1))
    one[5] = 1
    assert list(one.raw_keys()) == [b"\x05\0\0\0"]


@pytest.mark.parametrize("value_size", [1, 4, 8, 9, 12])
def test_per_cpu_values_one_per_possible_cpu(made, value_size):
    m = made(spec(u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, value_size, 2))
    step = (value_size + 7) // 8 * 8
    assert m._value_buf_size() == step * NCPU
    values = [bytes([i + 1]) * value_size for i in range(NCPU)]
    m.update(1, values)
    assert m[1] == values
    raw = syscall.map_lookup(m.fd, b"\x01\0\0\0", step * NCPU)
    assert raw == b"".join(v.ljust(step, b"\0") for v in values)
    m[0] = b"\x09" * value_size                  # one value: on every CPU
    assert m[0] == [b"\x09" * value_size] * NCPU
    m[1] = tuple(values[::-1])
    assert m.lookup(1) == values[::-1]
    with pytest.raises(BPFError, match=rf"^map 'mm': {NCPU + 1} values for a per-CPU value "
                                       rf"\({NCPU} CPUs x {step} bytes\)$"):
        m[1] = values + [values[0]]
    with pytest.raises(BPFError, match=f"a value of {value_size + 1} bytes"):
        m[1] = [b"\0" * (value_size + 1)] * NCPU
    assert m[1] == values[::-1]


def test_per_cpu_hash_update_and_delete(made):
    m = made(spec(u.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4))
    m.update(3, [i * 10 for i in range(NCPU)])
    assert m[3] == [(i * 10).to_bytes(8, "little") for i in range(NCPU)]
    assert list(m.items()) == [(b"\x03\0\0\0", m[3])]
    assert m.delete(3) and len(m) == 0


def test_queue_maps_keep_a_zero_key_size(made):
    m = made(spec(u.BPF_MAP_TYPE_QUEUE, 0, 8, 4))
    assert (m.info().key_size, m.info().value_size) == (0, 8)


def test_perf_event_array_defaults(made):
    m = made(spec(u.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 0, 0, 0))
    assert (m.spec.key_size, m.spec.value_size, m.spec.max_entries) == (4, 4, NCPU)
    info = m.info()
    assert (info.key_size, info.value_size, info.max_entries) == (4, 4, NCPU)
    one = made(spec(u.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1))
    assert one.info().max_entries == 1
    assert one.type_name == "perf_event_array"


def test_arrays_keep_their_sizes(made):
    m = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 24, 3))
    assert (m.spec.key_size, m.spec.value_size, m.spec.max_entries) == (4, 24, 3)


@pytest.mark.parametrize("size, ok", [(PAGE, True), (2 * PAGE, True), (PAGE // 2, False),
                                      (3 * PAGE, False), (PAGE + 8, False), (0, False)])
def test_ring_sizes_are_checked_before_the_kernel(made, size, ok):
    s = spec(u.BPF_MAP_TYPE_RINGBUF, 0, 0, size, name="rb")
    if ok:
        assert made(s).info().max_entries == size
        return
    before = fd_count()
    with pytest.raises(BPFError, match=rf"^ring buffer 'rb': max_entries={size} must be a "
                                       rf"power of two and a multiple of the page size "
                                       rf"\({PAGE}\)$") as e:
        Map(s).create()
    assert e.value.errno is None or e.value.errno == 0
    assert fd_count() == before


def test_ring_maps_are_not_dicts(made):
    rb = made(spec(u.BPF_MAP_TYPE_RINGBUF, 0, 0, PAGE, name="rb"))
    msg = r"^map 'rb' is a ringbuf: read it with pybpf.RingBuffer, not as a dict$"
    for call in (lambda: rb.lookup(0), lambda: rb.update(0, 0), lambda: rb.delete(0),
                 lambda: list(rb.raw_keys())):
        with pytest.raises(BPFError, match=msg):
            call()


def test_map_in_map_and_prog_array_values_are_ids(made):
    inner = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="inner"))
    outer = made(spec(u.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 2, name="outer"),
                 inner_map_fd=inner.fd)
    other = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="other"))
    outer[0] = inner                            # an object with .fd
    outer[1] = other.fd                         # or a plain fd
    assert outer[0] == inner.info().id
    assert outer[1] == other.info().id
    assert outer.lookup(0) != outer.lookup(1)
    for bad in (-1, 1 << 32):               # not an fd: refused before the kernel
        with pytest.raises(struct.error):
            outer[0] = bad
    assert outer[0] == inner.info().id
    hom = made(spec(u.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 2, name="hom"), inner_map_fd=inner.fd)
    hom[7] = other
    assert hom[7] == other.info().id and list(hom.raw_keys()) == [b"\x07\0\0\0"]


def test_btf_of_a_map_and_retry_without_it(made):
    """BTF key/value ids reach the kernel; when the kernel refuses them (a value type
    of the wrong size) the map is created again without BTF, as libbpf does."""
    with BPFObject.open(str(built("maps_globals.bpf.o"))) as obj:
        obj.load()
        btf_fd = obj._btf_fd.fd
        btf = obj.btf
        u32 = next(i for i, t in enumerate(btf, 1) if getattr(t, "name", "") == "__u32")
        pair = obj.sections[".data"].variables["pair"][2]
        assert btf[pair].name == "mg_pair" and btf[u32].name == "__u32"
        ok = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 12, 1, btf_key_type_id=u32,
                       btf_value_type_id=pair), btf_fd=btf_fd)
        info = ok.info()
        assert info.btf_id != 0
        assert (info.btf_key_type_id, info.btf_value_type_id) == (u32, pair)
        data = obj.maps[".data"].spec        # keyless BTF: a DATASEC value only
        value_only = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, data.value_size, 1,
                               btf_value_type_id=data.btf_value_type_id), btf_fd=btf_fd)
        info = value_only.info()
        assert info.btf_id != 0
        assert (info.btf_key_type_id, info.btf_value_type_id) == (0, data.btf_value_type_id)
        no_fd = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 12, 1, btf_value_type_id=pair))
        assert no_fd.info().btf_id == 0
        no_ids = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 12, 1), btf_fd=btf_fd)
        assert no_ids.info().btf_id == 0
        before = fd_count()
        wrong = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 16, 1, btf_value_type_id=pair),
                     btf_fd=btf_fd)             # 12-byte type for 16-byte values
        info = wrong.info()
        assert info.btf_id == 0 and info.value_size == 16
        assert fd_count() == before + 1


@pytest.mark.parametrize("err", [errno.EPERM, errno.EACCES])
def test_no_retry_without_btf_on_permission_errors(monkeypatch, err):
    """EPERM/EACCES is not about BTF: creating again without it would only hide the
    cause (the kernel cannot be made to answer so as root: a fake of the syscall)."""
    calls = []

    def refuse(**kw):
        calls.append(kw)
        raise BPFError("denied", err)
    monkeypatch.setattr(syscall, "map_create", refuse)
    with pytest.raises(BPFError, match="^denied$"):
        Map(spec(btf_value_type_id=3)).create(btf_fd=5)
    assert len(calls) == 1 and calls[0]["btf_fd"] == 5 and calls[0]["btf_value_type_id"] == 3
    for create in ({"btf_fd": 0}, {}):      # no BTF fd: the type ids are not sent
        calls.clear()
        with pytest.raises(BPFError):
            Map(spec(btf_value_type_id=3)).create(**create)
        assert len(calls) == 1
        assert (calls[0]["btf_fd"], calls[0]["btf_key_type_id"],
                calls[0]["btf_value_type_id"], calls[0]["inner_map_fd"]) == (0, 0, 0, 0)


def test_einval_with_btf_retries_once_without_it(monkeypatch):
    calls = []

    def fake(**kw):
        calls.append(kw)
        if kw.get("btf_fd"):
            raise BPFError("bad btf", errno.EINVAL)
        return syscall.Fd(os.open("/dev/null", os.O_RDONLY))
    monkeypatch.setattr(syscall, "map_create", fake)
    m = Map(spec(btf_key_type_id=2))
    m.create(btf_fd=5)
    assert [c.get("btf_fd") for c in calls] == [5, None]
    assert calls[1]["key_size"] == 4 and calls[1]["value_size"] == 8
    m.close()
    calls.clear()
    with pytest.raises(BPFError, match="bad btf"):      # without BTF: no retry
        monkeypatch.setattr(syscall, "map_create",
                            lambda **kw: calls.append(kw) or (_ for _ in ()).throw(
                                BPFError("bad btf", errno.EINVAL)))
        Map(spec()).create(btf_fd=5)
    assert len(calls) == 1


def test_create_passes_every_geometry_field(monkeypatch):
    seen = {}

    def fake(**kw):
        seen.update(kw)
        return syscall.Fd(os.open("/dev/null", os.O_RDONLY))
    monkeypatch.setattr(syscall, "map_create", fake)
    m = Map(spec(u.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 16, flags=u.BPF_F_NO_PREALLOC,
                 map_extra=3, numa_node=0, btf_key_type_id=4, btf_value_type_id=6),
            obj_name="objname")
    m.create(btf_fd=9, inner_map_fd=11)
    assert seen == dict(map_type=u.BPF_MAP_TYPE_BLOOM_FILTER, key_size=0, value_size=8,
                        max_entries=16, flags=u.BPF_F_NO_PREALLOC, name="mm",
                        inner_map_fd=11, map_extra=3, numa_node=0, btf_fd=9,
                        btf_key_type_id=4, btf_value_type_id=6)
    m.close()


def test_unpin_without_pin_does_nothing():
    m = Map(spec())
    assert m.pin_path is None
    m.unpin()
    assert m.pin_path is None


def test_pin_unpin_and_adopt(made):
    path = f"/sys/fs/bpf/pybpf_maps_mutants_{os.getpid()}"
    m = made(spec())
    m[1] = 2
    m.pin(path)
    try:
        assert m.pin_path == path and os.path.exists(path)
        again = Map.from_pinned(path)
        try:
            assert again.info().id == m.info().id and again[1] == m[1]
        finally:
            again.close()
        adopted = Map(spec())
        adopted.adopt(syscall.obj_get(path))
        assert adopted.loaded and adopted[1] == (2).to_bytes(8, "little")
        adopted.close()
        by_id = Map.from_id(m.info().id)
        assert by_id.info().id == m.info().id
        by_id.close()
        m.unpin()
        assert m.pin_path is None and not os.path.exists(path)
        m.unpin()                       # nothing pinned: nothing to do
        assert m[1] == (2).to_bytes(8, "little")   # the map lives on
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_pin_mounts_the_bpffs_first(made, monkeypatch):
    from pybpf.kernel import fs
    path = f"/sys/fs/bpf/pybpf_maps_mnt_{os.getpid()}"
    seen = []
    monkeypatch.setattr(fs, "ensure_bpffs_for", seen.append)
    m = made(spec())
    m.pin(path)
    try:
        assert seen == [path]
    finally:
        m.unpin()
    assert not os.path.exists(path)


def test_freeze_makes_the_map_read_only_for_user_space(made):
    m = made(spec(u.BPF_MAP_TYPE_ARRAY, 4, 8, 1))
    m[0] = 1
    m.freeze()
    with pytest.raises(BPFError) as e:
        m[0] = 2
    assert e.value.errno == errno.EPERM
    assert m[0] == (1).to_bytes(8, "little")


def test_histogram_dispatch(monkeypatch):
    from pybpf.metrics import hist
    seen = []
    monkeypatch.setattr(hist, "linear", lambda m, base, step: seen.append(("linear", base, step)))
    monkeypatch.setattr(hist, "log2", lambda m: seen.append("log2"))
    monkeypatch.setattr(hist, "read", lambda m: seen.append("read"))
    m = Map(spec())
    m.histogram()
    m.histogram("log2")
    m.histogram("linear", 5, 3)
    m.histogram("linear")
    assert seen == ["read", "log2", ("linear", 5, 3), ("linear", 0, 1)]


def test_arena_mapping_size_and_close(kernel):
    """An arena map is mmapped max_entries pages; close() unmaps it."""
    m = Map(spec(u.BPF_MAP_TYPE_ARENA, 0, 0, 3, flags=u.BPF_F_MMAPABLE, name="ar"))
    try:
        m.create()
    except BPFError as e:
        pytest.skip(f"kernel feature missing: BPF arena ({e})")
    try:
        arena = m.map_arena()
        assert m.arena is arena and arena.size == 3 * PAGE
    finally:
        m.close()
    assert m.arena is None and not m.loaded


# ------------------------------------------------------------------ GlobalData (pure)


def _gd(value_size: int = 16, initial: bytes = b"", readonly: bool = False) -> GlobalData:
    flags = u.BPF_F_RDONLY_PROG if readonly else 0
    m = Map(spec(u.BPF_MAP_TYPE_ARRAY, 4, value_size, 1, name=".data", flags=flags,
                 initial=initial or bytes(value_size)))
    return GlobalData(m, {"a": (0, 4, 0), "b": (4, 2, 0), "c": (8, 8, 0), "d": (6, 1, 0)})


def test_global_data_without_btf():
    g = _gd(initial=bytes(range(16)))
    assert g.raw("a") == bytes(range(4)) and g["b"] == b"\x04\x05" and g["c"] == bytes(range(8, 16))
    g["a"] = -2
    assert g.image[:4] == b"\xfe\xff\xff\xff"
    g["b"] = 0x1234
    assert g.image[4:6] == b"\x34\x12"
    g["c"] = b"xy"                          # shorter bytes: NUL-padded
    assert g.image[8:16] == b"xy" + bytes(6)
    g["d"] = bytearray(b"\x80")
    assert g.image[6] == 0x80
    g["d"] = 0x7f
    assert g.image[6] == 0x7f
    g["c"] = -(1 << 63)
    assert g.image[8:16] == b"\0" * 7 + b"\x80"
    g["c"] = (1 << 64) - 1
    assert g.image[8:16] == b"\xff" * 8
    g["a"] = 0xFFFFFFFF
    assert g.image[:4] == b"\xff" * 4
    g["a"] = -1
    assert g.image[:4] == b"\xff" * 4
    g["a"] = 0
    assert g.image[:4] == bytes(4)
    g["a"] = b"wxyz"
    assert g["a"] == b"wxyz"
    g["a"] = "0x10"                         # text: an integer
    assert g.image[:4] == b"\x10\0\0\0"
    g["b"] = "-3"
    assert g.image[4:6] == b"\xfd\xff"
    with pytest.raises(BPFError, match=r"^a \(4 bytes, no BTF\): '1x' is not an integer "
                                       r"that fits; pass bytes$"):
        g["a"] = "1x"
    with pytest.raises(BPFError, match=r"is not an integer that fits"):
        g["d"] = "300"
    with pytest.raises(ObjectError, match=r"^cannot store 1.5 in 'a' \(4 bytes\)$"):
        g["a"] = 1.5
    with pytest.raises(ObjectError, match=r"^cannot store b'12345' in 'a' \(4 bytes\)$"):
        g["a"] = b"12345"
    three = GlobalData(g.map, {"t": (0, 3, 0)})
    with pytest.raises(ObjectError, match=r"^cannot store 1 in 't' \(3 bytes\)$"):
        three["t"] = 1
    with pytest.raises(KeyError, match=r"\.data has no variable 'zz' \(it has: a, b, c, d\)"):
        g["zz"]
    with pytest.raises(KeyError):
        g["zz"] = 1
    assert GlobalData(g.map, {})._var.__self__ is not None
    with pytest.raises(KeyError, match=r"it has: none"):
        GlobalData(g.map, {}).raw("x")
    assert list(g) == g.keys() == ["a", "b", "c", "d"]
    assert len(g) == 4 and "a" in g and "zz" not in g
    assert [n for n, _ in g.items()] == ["a", "b", "c", "d"]
    assert repr(g).startswith("<GlobalData .data {'a': b'\\x10\\x00\\x00\\x00', 'b': ")
    assert not g.mmaped


def test_global_data_with_type_ids_but_no_btf():
    """Variables that name BTF types while the map has no BTF (an object whose BTF
    was dropped): handled as bytes and plain integers."""
    m = Map(spec(u.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name=".data", initial=bytes(8)))
    g = GlobalData(m, {"x": (0, 4, 7), "y": (4, 4, 0)})
    g["x"] = 258
    assert g["x"] == b"\x02\x01\0\0" and g.raw("x") == b"\x02\x01\0\0"
    g["x"] = "-1"
    assert g["x"] == b"\xff" * 4
    g["y"] = 0
    assert g["y"] == bytes(4)


def test_global_data_initial_image_and_final_close():
    m = Map(spec(u.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name=".bss", initial=b"\1\2\3\4"))
    g = GlobalData(m, {"v": (0, 4, 0)})
    assert g.image == bytearray(b"\1\2\3\4")
    g2 = GlobalData(m, {"v": (0, 4, 0)}, initial=b"\5\6\7\x08")
    assert g2["v"] == b"\5\6\7\x08"
    g.close()                               # not final: back on the image
    assert g["v"] == b"\1\2\3\4"
    g.close(final=True)
    for call in (lambda: g["v"], lambda: g.raw("v"), lambda: g.__setitem__("v", 1)):
        with pytest.raises(BPFError, match=r"^\.bss: the object is closed$") as e:
            call()
        assert e.value.errno == errno.EBADF


def test_readonly_image_is_writable_before_load():
    g = _gd(readonly=True)
    g["a"] = 7
    assert g["a"] == b"\x07\0\0\0"


def test_attach_buffer_and_unmapped_meanwhile():
    g = _gd()
    buf = bytearray(16)
    g.attach_buffer(buf)
    g["a"] = 9
    assert buf[:4] == b"\x09\0\0\0" and g.image[:4] == bytes(4)
    assert g.mmaped
    mm = mmap.mmap(-1, PAGE)
    g.attach_buffer(mm)
    g["b"] = 1
    assert mm[4:6] == b"\x01\0"
    mm.close()                              # unmapped by someone else, still live
    with pytest.raises(ValueError):
        g["a"]
    with pytest.raises(ValueError):
        g["a"] = 1
    g._closed = True                        # close() from another thread, meanwhile
    with pytest.raises(BPFError, match="the object is closed"):
        g["a"]
    with pytest.raises(BPFError, match="the object is closed"):
        g["a"] = 1


# ------------------------------------------------------------------ GlobalData (kernel)


@pytest.fixture
def globals_obj(kernel) -> Iterator[BPFObject]:
    with BPFObject.open(str(built("maps_globals.bpf.o"))) as obj:
        yield obj


def _expected_sum(obj: BPFObject) -> int:
    p = obj.data["pair"]
    return (p["a"] + p["b"] + p["c"] + sum(obj.data["arr"]) + obj.bss["big"][0]
            + obj.bss["big"][8183] + obj.sections[".data.mg_mid"]["mid"][4096]
            + obj.rodata["cpair"]["a"] + obj.data["name"][0] + obj.data["small"]
            + obj.sections[".data.mg_hidden"]["hid_a"] + obj.sections[".data.mg_hidden"]["hid_b"])


def test_globals_of_every_shape_before_load(globals_obj):
    obj = globals_obj
    assert obj.data["pair"] == {"a": 1, "b": -2, "c": 3, "tag": b"abc"}
    assert obj.data["arr"] == [10, 20, 30]
    assert obj.data["name"] == b"init"
    assert obj.data["small"] == -1
    assert obj.rodata["cpair"] == {"a": 5, "b": 0, "c": 0, "tag": b""}
    obj.data["pair"] = {"a": 100, "b": -300, "c": 255, "tag": b"wxyz"}
    assert obj.data.raw("pair") == struct.pack("<IhB5s", 100, -300, 255, b"wxyz")
    obj.data["arr"] = [1, 2, 3]
    assert obj.data.raw("arr") == struct.pack("<3I", 1, 2, 3)
    obj.data["name"] = "hey"                 # text through the BTF type: a string
    assert obj.data.raw("name") == b"hey" + bytes(5)
    obj.data["name"] = b"12345678"           # bytes of the exact size
    assert obj.data.raw("name") == b"12345678"
    obj.data["small"] = "-7"
    assert obj.data.raw("small") == b"\xf9"
    obj.data["small"] = -8
    assert obj.data.raw("small") == b"\xf8"
    obj.rodata["cpair"] = {"a": 9}
    assert obj.rodata["cpair"]["a"] == 9
    with pytest.raises(BPFError, match="small"):
        obj.data["small"] = "300"
    with pytest.raises(BPFError, match="struct mg_pair needs a dict, not bytes"):
        obj.data["pair"] = b"1" * 13         # longer than the variable: through BTF
    assert obj.data.raw("pair") == struct.pack("<IhB5s", 100, -300, 255, b"wxyz")


def test_globals_after_load_mmaped_and_through_the_map(globals_obj):
    obj = globals_obj
    obj.data["pair"] = {"a": 100, "b": -300, "c": 255, "tag": b"t"}
    obj.bss["big"] = b"\x02" + bytes(8182) + b"\x03"
    obj.sections[".data.mg_mid"]["mid"] = bytes(4096) + b"\x04"
    obj.sections[".data.mg_hidden"]["hid_a"] = 1000
    obj.rodata["cpair"] = {"a": 50}
    obj.load()
    views = obj.sections
    assert {n: v.mmaped for n, v in views.items()} == {
        ".data": True, ".rodata": True, ".data.mg_hidden": False, ".bss": True,
        ".data.mg_mid": True}
    assert obj.bss["big"][8183] == 3 and obj.bss["big"][0] == 2
    assert views[".data.mg_mid"]["mid"][4096] == 4
    assert views[".data.mg_hidden"]["hid_a"] == 1000
    assert views[".data.mg_hidden"]["hid_b"] == 0x22222222
    with pytest.raises(BPFError, match=r"^\.rodata is read-only after load\(\): "
                                       r"set 'cpair' before load\(\)$"):
        obj.rodata["cpair"] = {"a": 1}
    assert obj.rodata["cpair"]["a"] == 50
    want = _expected_sum(obj)
    assert obj.programs["mg_run"].test_run().retval == 0
    assert obj.bss["sum"] == want
    assert obj.bss["big"][4097] == 0x5a                     # written by the program
    assert views[".data.mg_mid"]["mid"][4096] == 0x77      # the page and a byte
    assert views[".data.mg_hidden"]["hid_b"] == 0x22222223
    assert syscall.map_lookup(obj.maps[".bss"].fd, bytes(4), 8192)[4097] == 0x5a  # the same memory
    # writes after load: the kernel's copy, read back by the program
    obj.data["arr"] = [7, 8, 9]
    obj.data["small"] = "5"
    views[".data.mg_hidden"]["hid_a"] = 1       # read-modify-write of the value
    assert views[".data.mg_hidden"]["hid_b"] == 0x22222223
    raw = syscall.map_lookup(obj.maps[".data.mg_hidden"].fd, b"\0" * 4, 8)
    assert raw == struct.pack("<II", 1, 0x22222223)
    obj.bss["big"] = bytes(8184)
    obj.sections[".data.mg_mid"]["mid"] = b""
    want = _expected_sum(obj)
    obj.programs["mg_run"].test_run()
    assert obj.bss["sum"] == want == 100 - 300 + 255 + 24 + 50 + ord("i") + 5 + 1 + 0x22222223
    assert obj.data.raw("arr") == struct.pack("<3I", 7, 8, 9)


def test_map_value_view_slices(globals_obj):
    obj = globals_obj
    obj.load()
    view = _MapValue(obj.maps[".data.mg_hidden"])
    assert view[:] == struct.pack("<II", 0x11111111, 0x22222222)
    assert view[4:8] == struct.pack("<I", 0x22222222)
    view[0:2] = b"\xaa\xbb"
    assert view[:] == b"\xaa\xbb\x11\x11" + struct.pack("<I", 0x22222222)


def test_global_data_after_close_raises(globals_obj):
    obj = globals_obj
    obj.load()
    data = obj.data
    obj.close()
    with pytest.raises(BPFError, match="the object is closed"):
        data["pair"]
    assert not data.mmaped


def test_unmmapable_fallback_when_the_kernel_refuses(globals_obj, monkeypatch):
    """A BPF_F_MMAPABLE map the kernel will not mmap: read through the map instead."""
    obj = globals_obj
    real = mmap.mmap

    def refuse(*a, **kw):
        raise OSError(errno.EPERM, "no")
    obj.load()
    data = obj.data
    data.close()
    monkeypatch.setattr(mmap, "mmap", refuse)
    data.attach_mmap(writable=True)
    monkeypatch.setattr(mmap, "mmap", real)
    assert not data.mmaped and isinstance(data._live, _MapValue)
    assert data["arr"] == [10, 20, 30]
    data["arr"] = [4, 5, 6]
    assert syscall.map_lookup(obj.maps[".data"].fd, bytes(4), 33)[12:24] == struct.pack("<3I", 4, 5, 6)


def test_mmap_size_and_protection(globals_obj, monkeypatch):
    obj = globals_obj
    obj.load()
    seen = []
    real = mmap.mmap

    def spy(fd, size, flags, prot):
        seen.append((size, flags, prot))
        return real(fd, size, flags, prot)
    monkeypatch.setattr(mmap, "mmap", spy)
    for name, writable in ((".bss", True), (".data.mg_mid", True), (".data", True),
                           (".rodata", False)):
        view = obj.sections[name]
        mm = view._mm
        view.close()
        assert mm.closed and view._mm is None and not view.mmaped
        view.attach_mmap(writable)
        assert view.mmaped
    hidden = obj.sections[".data.mg_hidden"]
    hidden.close()
    hidden.attach_mmap(True)                # not BPF_F_MMAPABLE: never mmapped
    assert not hidden.mmaped and hidden["hid_a"] == 0x11111111
    ro = mmap.PROT_READ
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    assert seen == [(2 * PAGE, mmap.MAP_SHARED, rw), (2 * PAGE, mmap.MAP_SHARED, rw),
                    (PAGE, mmap.MAP_SHARED, rw), (PAGE, mmap.MAP_SHARED, ro)]
