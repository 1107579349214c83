"""BTF parsing, encoding and lookup: round trips on real blobs, every kind, malformed input."""
from __future__ import annotations

import os
import struct

import pytest
from elftools.elf.elffile import ELFFile

from conftest import BUILD, built
from pybpf.kernel import syscall
from pybpf.btf import BTF, kernel
from pybpf.btf import types as T
from pybpf.btf.sanitize import ENUM64_PLACEHOLDER, Features, sanitize
from pybpf.kernel.features import probe_features
from pybpf.errors import ObjectError
from pybpf.uapi import (BTF_KIND_DATASEC, BTF_KIND_FUNC, BTF_KIND_INT, BTF_KIND_STRUCT,
                        BTF_KIND_TYPEDEF, BTF_FUNC_GLOBAL, BTF_VAR_GLOBAL_ALLOCATED)

VMLINUX = "/sys/kernel/btf/vmlinux"
OBJECTS = sorted(p.name for p in BUILD.glob("*.bpf.o")) or ["exec.bpf.o"]


def elf_section(name: str, section: str) -> bytes:
    with open(built(name), "rb") as f:
        return ELFFile(f).get_section_by_name(section).data()


def vmlinux_bytes() -> bytes:
    if not os.access(VMLINUX, os.R_OK):
        pytest.skip(f"{VMLINUX} not readable")
    with open(VMLINUX, "rb") as f:
        return f.read()


def assert_round_trip(btf: BTF, base: BTF = None) -> None:
    blob = btf.encode()
    again = BTF.parse(blob, base=base, validate=True)
    assert len(again) == len(btf)
    for type_id in range(btf.start_id, len(btf)):
        assert again[type_id] == btf[type_id], type_id
    assert again.encode() == blob


def every_kind() -> BTF:
    """A hand-made BTF with one type of each of the 19 kinds."""
    btf = BTF()
    i32 = btf.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    u8 = btf.add(T.Int("unsigned char", 1, 0, 0, 8))
    ptr = btf.add(T.Pointer("", i32))
    arr = btf.add(T.Array("", u8, i32, 16))
    st = btf.add(T.Struct("pair", 24, [T.Member("a", i32, 0), T.Member("flag", u8, 32, 3),
                                       T.Member("name", arr, 64)]))
    btf.add(T.Union("either", 4, [T.Member("i", i32, 0), T.Member("c", u8, 0)]))
    btf.add(T.Enum("color", 4, [("RED", 0), ("NEG", -5)], signed=True))
    btf.add(T.Enum64("big", 8, [("HUGE", 1 << 40), ("MAX", (1 << 64) - 1)]))
    btf.add(T.Fwd("later", is_union=True))
    td = btf.add(T.Typedef("pair_t", st))
    vol = btf.add(T.Volatile("", i32))
    const = btf.add(T.Const("", vol))
    btf.add(T.Restrict("", ptr))
    proto = btf.add(T.FuncProto("", i32, [T.Param("p", td), T.Param("", 0)]))
    func = btf.add(T.Func("handler", proto, BTF_FUNC_GLOBAL))
    var = btf.add(T.Var("counter", const, BTF_VAR_GLOBAL_ALLOCATED))
    btf.add(T.Datasec(".data", 4, [T.VarSecinfo(var, 0, 4)]))
    btf.add(T.Float("double", 8))
    btf.add(T.DeclTag("my_tag", func, 0))
    btf.add(T.DeclTag("attr_tag", st, -1, attr=True))
    btf.add(T.TypeTag("user", ptr))
    return btf


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("obj", OBJECTS)
def test_object_btf_round_trip(obj):
    btf = BTF.parse(elf_section(obj, ".BTF"), validate=True)
    assert btf.find("LICENSE")
    assert_round_trip(btf)


def test_vmlinux_round_trip_covers_kinds():
    btf = BTF.parse(vmlinux_bytes(), validate=True)
    kinds = {type(t) for t in btf}
    assert len(kinds) >= 17          # this kernel has all 19; older ones lack a few
    assert_round_trip(btf)


def test_every_kind_round_trip():
    btf = every_kind()
    assert {type(t) for t in btf} == set(T.KIND_CLASSES.values())
    parsed = BTF.parse(btf.encode(), validate=True)
    assert [parsed[i] for i in range(1, len(parsed))] == [btf[i] for i in range(1, len(btf))]
    assert parsed[7].values == [("RED", 0), ("NEG", -5)]
    assert parsed[8].values[1][1] == (1 << 64) - 1
    assert_round_trip(parsed)


def test_strings_are_deduplicated():
    btf = BTF()
    i32 = btf.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    for _ in range(3):
        btf.add(T.Typedef("same", i32))
    blob = btf.encode()
    assert blob.count(b"same\0") == 1 and blob.count(b"int\0") == 1


def test_names_survive_any_bytes():
    btf = BTF()
    btf.add(T.Int("caf\xe9 \udcff", 4, 0, 0, 32))
    assert BTF.parse(btf.encode())[1].name == "caf\xe9 \udcff"


# ---------------------------------------------------------------- lookup API

@pytest.fixture(scope="module")
def vmlinux():
    return BTF.parse(vmlinux_bytes())


def test_vmlinux_lookup(vmlinux):
    assert vmlinux.start_id == 1 and vmlinux.base is None
    assert len(vmlinux) > 1000
    ts = vmlinux.find_one("task_struct", BTF_KIND_STRUCT)
    assert vmlinux.find("task_struct", BTF_KIND_STRUCT) == [ts]
    assert vmlinux.type_name(ts) == "struct task_struct"
    members = {m.name: m for m in vmlinux[ts].members}
    comm = members["comm"].type
    assert vmlinux.type_name(comm) == "char[16]"
    assert vmlinux.size_of(comm) == 16
    assert vmlinux.size_of(ts) == vmlinux[ts].size
    pid_t = vmlinux.find_one("pid_t", BTF_KIND_TYPEDEF)
    assert vmlinux.type_name(vmlinux.resolve(pid_t)) == "int"
    assert vmlinux.size_of(pid_t) == 4
    assert vmlinux.find("no_such_type_anywhere") == []
    assert vmlinux[ts] is vmlinux[ts]          # decoded once, then cached


def test_find_matches_a_full_scan(vmlinux):
    for name in ("int", "task_struct", "list_head", "bpf_prog", "sk_buff"):
        expect = [i for i in range(1, len(vmlinux)) if vmlinux.kind_of(i) and
                  vmlinux[i].name == name]
        assert vmlinux.find(name) == expect, name


def test_find_with_duplicates_and_added_types():
    btf = every_kind()
    parsed = BTF.parse(btf.encode())
    extra = parsed.add(T.Typedef("pair_t", 1))
    ids = parsed.find("pair_t")
    assert ids == [10, extra]
    assert parsed.find("pair_t", BTF_KIND_TYPEDEF) == ids
    assert parsed.find("pair_t", BTF_KIND_INT) == []
    with pytest.raises(ObjectError, match="2 BTF types named pair_t"):
        parsed.find_one("pair_t")
    with pytest.raises(KeyError, match="no BTF type nope"):
        parsed.find_one("nope")
    assert parsed.find_one("handler", BTF_KIND_FUNC) == 15


def test_names_containing():
    btf = BTF.parse(every_kind().encode())
    btf.add(T.Struct("pair___v2", 4, []))
    assert btf.names_containing("pair") == ["pair", "pair_t", "pair___v2"]
    assert btf.names_containing("___") == ["pair___v2"]
    assert btf.names_containing("zzz") == [] and btf.names_containing("") == []
    split = BTF(btf)
    split.add(T.Typedef("mine___x", 1))
    assert split.names_containing("___") == ["mine___x"]


def test_bad_ids_raise_key_error():
    btf = BTF.parse(every_kind().encode())
    assert isinstance(btf[0], T.Void)
    for bad in (-1, len(btf), 10 ** 9, "1"):
        with pytest.raises(KeyError):
            btf[bad]


def test_type_names():
    btf = every_kind()
    names = {i: btf.type_name(i) for i in range(len(btf))}
    assert names[0] == "void"
    assert names[3] == "int *"
    assert names[4] == "unsigned char[16]"
    assert names[5] == "struct pair"
    assert names[6] == "union either"
    assert names[9] == "union later"
    assert names[12] == "const volatile int"
    assert names[13] == "int *restrict"
    assert names[14] == "int (pair_t, ...)"
    ptr_arr = btf.add(T.Pointer("", 4))
    assert btf.type_name(ptr_arr) == "unsigned char (*)[16]"
    assert btf.type_name(btf.add(T.Pointer("", ptr_arr))) == "unsigned char (**)[16]"
    assert btf.type_name(btf.add(T.Pointer("", 14))) == "int (*)(pair_t, ...)"
    assert btf.type_name(btf.add(T.Const("", 3))) == "int *const"


def test_size_of_and_resolve():
    btf = every_kind()
    assert btf.size_of(4) == 16 and btf.size_of(3) == 8 and btf.size_of(10) == 24
    assert btf.size_of(16) == 4                                   # var -> its type
    assert btf.resolve(12) == 1 and btf.resolve(10) == 5 and btf.resolve(1) == 1
    outer = btf.add(T.Array("", 4, 1, 3))
    assert btf.size_of(outer) == 48
    for no_size in (0, 9, 14, 15):      # void, fwd, proto, func
        with pytest.raises(ObjectError, match="has no size"):
            btf.size_of(no_size)
    loop = len(btf)
    btf.add(T.Typedef("a", loop + 1))
    btf.add(T.Typedef("b", loop))
    with pytest.raises(ObjectError, match="loop"):
        btf.resolve(loop)
    with pytest.raises(ObjectError, match="loop"):
        btf.size_of(loop)


def test_in_place_fixups_are_encoded():
    btf = BTF.parse(elf_section("exec.bpf.o", ".BTF"))
    sec = btf[btf.find_one(".rodata", BTF_KIND_DATASEC)]
    sec.size = 4
    sec.vars[0].offset = 0
    again = BTF.parse(btf.encode())
    assert again[again.find_one(".rodata", BTF_KIND_DATASEC)].size == 4


def test_split_btf():
    base = BTF.parse(every_kind().encode())
    split = BTF(base)
    assert split.start_id == len(base) and split.base is base
    ptr = split.add(T.Pointer("", 5))
    td = split.add(T.Typedef("pair_t", ptr))          # a name the base has too
    split.add(T.Typedef("only_here", td))
    blob = split.encode()
    assert b"pair\0" not in blob                      # only its own part is encoded
    parsed = BTF.parse(blob, base=base, validate=True)
    assert len(parsed) == len(base) + 3
    assert parsed.find("pair_t") == [10, td]
    assert parsed.find_one("only_here") == td + 1
    assert parsed[3] == base[3]
    assert parsed.type_name(td) == "pair_t" and parsed.size_of(td) == 8
    assert parsed.type_name(ptr) == "struct pair *"
    assert_round_trip(parsed, base)
    with pytest.raises(ObjectError):           # names and ids point past a smaller base
        BTF.parse(blob, base=BTF(), validate=True)


def test_copy_is_deep():
    btf = every_kind()
    dup = btf.copy()
    dup[5].members[0].name = "changed"
    assert btf[5].members[0].name == "a"
    assert len(dup) == len(btf)


# ---------------------------------------------------------------- malformed input

def small_blob() -> bytes:
    btf = BTF()
    i32 = btf.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    btf.add(T.Struct("s", 8, [T.Member("x", i32, 0), T.Member("y", i32, 32)]))
    btf.add(T.Enum("e", 4, [("A", 1)]))
    return btf.encode()


def patched(blob: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


HDR = 24            # the blobs above: header, then types at 24, strings after


@pytest.mark.parametrize("offset,fmt,value,message", [
    (0, "<H", 0x1234, "bad BTF magic"),
    (0, "<H", 0x9FEB, "big-endian"),
    (2, "<B", 2, "unsupported BTF version"),
    (3, "<B", 1, "unsupported BTF flags"),
    (4, "<I", 10_000, "bad BTF header length"),
    (4, "<I", 8, "bad BTF header length"),
    (12, "<I", 10_000, "run past the end"),
    (20, "<I", 10_000, "run past the end"),
    (16, "<I", 2, "string section"),
    (8, "<I", 2, "not 4-byte aligned"),
    (HDR, "<I", 10_000, "name offset 10000 of type 1"),       # int's name_off
    (HDR + 4, "<I", 25 << 24, "unknown BTF kind 25"),
    (HDR + 4, "<I", 1 << 24 | 1 << 20, "reserved bits"),
    (HDR + 4, "<I", 1 << 24 | 1, "vlen 1 on BTF kind 1"),
    (HDR + 4, "<I", 1 << 24 | 1 << 31, "kind_flag set"),
    (HDR + 16 + 4, "<I", 4 << 24 | 200, "runs past the end"),  # struct vlen
])
def test_malformed_header_and_framing(offset, fmt, value, message):
    with pytest.raises(ObjectError, match=message) as info:
        BTF.parse(patched(small_blob(), offset, fmt, value))
    assert info.value.section == ".BTF" and info.value.offset is not None


@pytest.mark.parametrize("offset,value,message", [
    (HDR + 16 + 12, 10_000, "string offset 10000"),             # member name_off
    (HDR + 16 + 16, 99, "reference to type id 99"),             # member type
    (HDR + 12, 64, "invalid BTF int"),                           # int bits
])
def test_malformed_records_found_lazily_or_by_validate(offset, value, message):
    bad = patched(small_blob(), offset, "<I", value)
    btf = BTF.parse(bad)                       # framing is fine
    with pytest.raises(ObjectError, match=message):
        btf.validate()
    with pytest.raises(ObjectError, match=message):
        BTF.parse(bad, validate=True)


def test_truncated_at_every_byte():
    blob = small_blob()
    for cut in range(len(blob)):
        with pytest.raises(ObjectError):
            BTF.parse(blob[:cut], validate=True)


def test_trailing_header_bytes_must_be_zero():
    blob = small_blob()      # past the 32 bytes of kernel 7.1's header (tests/test_btf_header.py)
    longer = patched(blob[:HDR], 4, "<I", HDR + 12) + bytes(12) + blob[HDR:]
    assert len(BTF.parse(longer, validate=True)) == 4
    with pytest.raises(ObjectError, match="non-zero fields"):
        BTF.parse(patched(longer, HDR + 8, "<I", 1))


# ---------------------------------------------------------------- sanitizing for old kernels


FEATURE_NAMES = [name for name in Features._fields if name != "btf"]


def sanitizable() -> BTF:
    btf = every_kind()
    del btf[14].params[1:]        # variadic: as an enumerator (no FUNC) it would lack a name
    var = btf.find_one("counter")
    btf.add(T.Datasec("?.maps.opt", 4, [T.VarSecinfo(var, 0, 4)]))
    return btf


#: kinds each missing feature removes from the sanitized BTF
GONE = {"datasec": (T.Var, T.Datasec), "decl_tag": (T.DeclTag,), "float": (T.Float,),
        "func": (T.Func, T.FuncProto), "type_tag": (T.TypeTag,), "enum64": (T.Enum64,)}


@pytest.mark.parametrize("missing", FEATURE_NAMES + ["all"])
def test_sanitize_rewrites_without_moving_ids(missing):
    btf = sanitizable()
    features = Features(**{name: missing not in (name, "all") for name in FEATURE_NAMES})
    out = sanitize(btf, features)
    assert out is not btf and btf[17] == every_kind()[17]        # the original is untouched
    assert len(out) in (len(btf), len(btf) + 1)
    kinds = {type(t) for t in out}
    for feature, gone in GONE.items():
        if not getattr(features, feature):
            assert not kinds & set(gone), feature
    if not features.func_global and features.func:
        assert out[15].linkage == 0
    if not features.qmark_datasec or not features.datasec:
        assert not any(t.name.startswith("?") for t in out)
    if not features.enum64:
        assert out[len(out) - 1].name == ENUM64_PLACEHOLDER
        assert out[7] == T.Enum("color", 4, [("RED", 0), ("NEG", 2 ** 32 - 5)], signed=False)
        assert [m.name for m in out[8].members] == ["HUGE", "MAX"]
    if not features.datasec:
        assert out[17] == T.Struct("_data", 4, [T.Member("counter", 16, 0)])
    assert_round_trip(out)


def test_sanitize_complete_features_changes_nothing():
    btf = sanitizable()
    assert Features().complete()
    assert sanitize(btf, Features()).encode() == btf.encode()


def test_probe_features_on_this_kernel(kernel):
    features = probe_features()
    assert features.complete()            # kernel 6.18 has every BTF feature
    assert probe_features() is features   # probed once per process


@pytest.mark.parametrize("missing", FEATURE_NAMES + ["all"])
def test_sanitized_btf_loads_into_the_kernel(kernel, missing):
    features = Features(**{name: missing not in (name, "all") for name in FEATURE_NAMES})
    blob = sanitize(sanitizable(), features).encode()
    with syscall.btf_load(blob) as fd:
        assert fd.fd >= 0


# ---------------------------------------------------------------- kernel BTF (vmlinux, modules)


@pytest.fixture
def fake_kernel(tmp_path, monkeypatch):
    """A directory laid out like /sys/kernel/btf: a small vmlinux and two modules."""
    base_blob = every_kind().encode()
    (tmp_path / "vmlinux").write_bytes(base_blob)
    base = BTF.parse(base_blob)
    for module, name in (("mod_a", "pair_t"), ("mod_b", "only_b")):
        split = BTF(base)
        split.add(T.Typedef(name, split.add(T.Pointer("", 5))))
        (tmp_path / module).write_bytes(split.encode())
    (tmp_path / "mod_broken").write_bytes(b"\x9f\xeb\x01\x00garbage")
    monkeypatch.setenv(kernel.VMLINUX_ENV, str(tmp_path / "vmlinux"))
    kernel.clear_cache()
    yield tmp_path
    kernel.clear_cache()


def test_kernel_modules_and_find(fake_kernel, monkeypatch):
    vm = kernel.vmlinux()
    assert kernel.vmlinux() is vm and len(vm) == len(every_kind())
    with pytest.warns(UserWarning, match="skipping BTF of kernel module mod_broken"):
        mods = kernel.modules(str(fake_kernel))
    assert sorted(mods) == ["mod_a", "mod_b"]
    assert mods["mod_a"].base is vm and mods["mod_a"].start_id == len(vm)
    assert kernel.modules(str(fake_kernel))["mod_b"] is mods["mod_b"]   # cached
    monkeypatch.setattr(kernel, "SYSFS_BTF", str(fake_kernel))
    hits = kernel.find_in_kernel("pair_t")
    assert [(btf is vm, tid) for btf, tid in hits] == [(True, 10), (False, len(vm) + 1)]
    assert hits[1][0] is kernel.modules()["mod_a"]
    assert [tid for _, tid in kernel.find_in_kernel("pair_t", BTF_KIND_TYPEDEF)] == \
        [10, len(vm) + 1]
    assert kernel.find_in_kernel("nothing") == []


def test_kernel_missing_vmlinux(tmp_path, monkeypatch):
    monkeypatch.setenv(kernel.VMLINUX_ENV, str(tmp_path / "absent"))
    kernel.clear_cache()
    with pytest.raises(ObjectError, match="cannot read kernel BTF"):
        kernel.vmlinux()
    kernel.clear_cache()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_kernel_btf_that_is_no_regular_file_is_refused_unread(tmp_path, monkeypatch, kind):
    path = tmp_path / "vmlinux"
    if kind == "fifo":
        os.mkfifo(path)           # opened plainly, it would wait for a writer forever
    else:
        path.mkdir()
    monkeypatch.setenv(kernel.VMLINUX_ENV, str(path))
    kernel.clear_cache()
    want = "a FIFO" if kind == "fifo" else "a directory"
    with pytest.raises(ObjectError, match=f"^cannot read kernel BTF {path}: not a regular "
                                          f"file \\({want}\\)$"):
        kernel.vmlinux()
    kernel.clear_cache()


def test_real_vmlinux(monkeypatch):
    vmlinux_bytes()
    monkeypatch.delenv(kernel.VMLINUX_ENV, raising=False)
    vm = kernel.vmlinux()
    assert kernel.vmlinux() is vm
    [(btf, tid)] = kernel.find_in_kernel("task_struct", BTF_KIND_STRUCT)
    assert btf is vm and vm.type_name(tid) == "struct task_struct"
