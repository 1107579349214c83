"""Issue 10, the values side: CO-RE access strings with absurd indices (item 14),
range checks on every uapi field (item 16), pin paths that stay inside a bpffs
(item 18) and the mode of the bpffs pybpf mounts (item 19)."""
from __future__ import annotations

import ctypes
import os
import shutil
import stat

import pytest

import pybpf
from conftest import built, require_kernel
from hostile import RawBTF, rename_symbol, section_data, with_btf
from pybpf.kernel import syscall, fs as tracefs
from pybpf import uapi
from pybpf.btf import BTF, CoreRelo, core
from pybpf.errors import AttachError, BPFError, ObjectError

K = uapi.bpf_core_relo_kind


# ---------------------------------------------------------------- item 14

@pytest.mark.parametrize("access", ["1" * 5000, "0:" + "9" * 11, "0:2147483648"],
                         ids=["5000-digits", "11-digits", "2**31"])
def test_core_access_index_out_of_range(access):
    btf = BTF.parse(section_data(built("exec.bpf.o").read_bytes(), ".BTF"))
    event = btf.find_one("event")
    insns = bytearray(b"\x07" + b"\0" * 7)          # r0 += 0
    with pytest.raises(ObjectError, match=r"has an index past 2147483647") as info:
        core.relocate(insns, [CoreRelo(0, event, access, K.BPF_CORE_FIELD_BYTE_OFFSET)],
                      btf, [btf])
    assert len(str(info.value)) < 400                # the 5000 digits are not repeated


# ---------------------------------------------------------------- item 16

@pytest.mark.parametrize("field,value", [("max_entries", (1 << 32) + 16),
                                         ("key_size", -1), ("value_size", 1 << 32),
                                         ("flags", 1 << 40)])
def test_map_create_fields_are_range_checked(field, value):
    """Refused before any syscall (so also without privileges), naming the field."""
    args = dict(map_type=uapi.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    args[field] = value
    name = "map_flags" if field == "flags" else field
    with pytest.raises(BPFError, match=rf"bpf_attr_map_create\.{name} = {value}: out of "
                                       rf"range for u32 \[0, 4294967295\]"):
        syscall.map_create(**args)


def test_nested_uapi_fields_are_range_checked():
    with pytest.raises(BPFError, match=r"_link_create_perf_event\.bpf_cookie = "
                                       r"18446744073709551616: out of range for u64"):
        syscall.link_create(3, 4, uapi.BPF_PERF_EVENT, perf_event={"bpf_cookie": 1 << 64})
    with pytest.raises(BPFError, match=r"target_btf_id = -1: out of range"):
        syscall.link_create(3, 4, uapi.BPF_TRACE_FENTRY, target_btf_id=-1)


def test_fill_checks_and_sets():
    attr = syscall.fill(uapi.bpf_attr_map_create(), max_entries=0xFFFFFFFF,
                        map_name=b"x", map_extra=1 << 63)
    assert (attr.max_entries, attr.map_name, attr.map_extra) == (0xFFFFFFFF, b"x", 1 << 63)
    with pytest.raises(BPFError, match="has no field 'nope'"):
        syscall.fill(uapi.bpf_attr_map_create(), nope=1)


def test_object_max_entries_past_u32_refused_at_load():
    """(1 << 32) + 16 entries must not become a 16-entry map."""
    require_kernel()
    with pybpf.BPFObject.open(built("loader_maps.bpf.o")) as obj:
        obj.maps["points"].max_entries = (1 << 32) + 16
        with pytest.raises(BPFError, match=r"max_entries = 4294967312: out of range"):
            obj.load()
        assert not obj.maps["points"].loaded


# ---------------------------------------------------------------- item 18

def _renamed_pinned_map(name: str) -> bytes:
    raw = built("loader_maps.bpf.o").read_bytes()
    btf = RawBTF(section_data(raw, ".BTF"))
    parsed = BTF.parse(section_data(raw, ".BTF"))
    btf.set(parsed.find_one("pinned_counts", uapi.BTF_KIND_VAR), 0, btf.name(name))
    return rename_symbol(with_btf(raw, btf), "pinned_counts", name)


@pytest.mark.filterwarnings("ignore:.*kernel refused the object.s BTF")
@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "."])
def test_pin_name_cannot_leave_pin_root(name):
    """A map name with '/' or '..' (from the object's BTF) is refused before any
    directory is made or anything pinned."""
    require_kernel()
    root = f"/sys/fs/bpf/pybpf-hparse-{os.getpid()}/root"
    shutil.rmtree(os.path.dirname(root), ignore_errors=True)
    try:
        with pybpf.BPFObject.open(_renamed_pinned_map(name), pin_root=root) as obj:
            obj.rodata["target_tgid"] = os.getpid()
            with pytest.raises(BPFError, match=r"cannot be pinned: not a plain file name"):
                obj.load()
        assert not os.path.exists(os.path.dirname(root))
    finally:
        shutil.rmtree(os.path.dirname(root), ignore_errors=True)


def test_pin_directories_only_inside_bpffs(tmp_path):
    """Outside a bpffs nothing is created (no 0777 directory chain before the refusal)."""
    target = tmp_path / "a" / "b" / "pin"
    with pytest.raises(AttachError, match="is not on a BPF filesystem"):
        tracefs.ensure_bpffs_for(str(target))
    assert not (tmp_path / "a").exists()


def test_pin_directories_in_bpffs_are_private():
    require_kernel()
    top = f"/sys/fs/bpf/pybpf-hparse-{os.getpid()}"
    try:
        tracefs.ensure_bpffs_for(f"{top}/x/y/pin")
        for d in (top, f"{top}/x", f"{top}/x/y"):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------------------- item 19

def test_mounted_bpffs_is_private(tmp_path):
    """The bpffs pybpf mounts is mode 0700, as bpftool mounts it."""
    require_kernel()
    target = tmp_path / "bpffs"
    target.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        tracefs.ensure_bpffs(str(target))
        assert tracefs.mount_of(str(target)).fstype == "bpf"
        assert stat.S_IMODE(os.stat(target).st_mode) & 0o777 == 0o700    # (+ sticky)
    finally:
        libc.umount2(os.fsencode(str(target)), 0)
