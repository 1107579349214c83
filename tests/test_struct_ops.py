"""struct_ops: the pure layout (sections, relocations, member matching, value
bytes) on built objects and hand-made BTF, and a TCP congestion control
registered for real, legacy (.struct_ops) and link-based (.struct_ops.link)."""
from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import struct
import threading
from typing import Iterator, List, Optional, Tuple

import pytest

import pybpf
from pybpf.obj import struct_ops as so
from pybpf import uapi as u
from pybpf.btf import BTF
from pybpf.btf import kernel as kbtf
from pybpf.btf import types as T
from pybpf.errors import AttachError, BPFError, ObjectError

from conftest import built
from test_links import prog_id, private_netns

OBJ = "struct_ops_cc.bpf.o"
AVAILABLE = "/proc/sys/net/ipv4/tcp_available_congestion_control"
# the `calls` counters of struct_ops_cc.bpf.c
SSTHRESH, CONG_AVOID, UNDO_CWND, INIT, SET_STATE, CWND_EVENT, RELEASE, OFF_INIT = range(8)


def open_obj() -> pybpf.BPFObject:
    return pybpf.BPFObject.open(built(OBJ))


# ------------------------------------------------------------------ parsing (no root)


def test_sections_become_struct_ops_maps():
    obj = open_obj()
    maps = {m.name: m for m in obj.spec.maps if m.struct_ops is not None}
    assert sorted(maps) == ["cc_legacy", "cc_link", "cc_off"]
    for m in maps.values():
        assert (m.type, m.key_size, m.max_entries) == (u.BPF_MAP_TYPE_STRUCT_OPS, 4, 1)
        assert m.value_size == 192 == len(m.struct_ops.data)    # BPF side until load
        assert m.struct_ops.type_name == "tcp_congestion_ops"
    assert maps["cc_legacy"].flags == 0 and maps["cc_link"].flags == u.BPF_F_LINK
    assert maps["cc_off"].struct_ops.section == "?.struct_ops"
    assert [m.struct_ops.autocreate for m in maps.values()] == [True, True, False]
    legacy = obj.struct_ops["cc_legacy"]
    assert legacy.programs == {
        "ssthresh": "pybpf_ssthresh", "cong_avoid": "pybpf_cong_avoid",
        "set_state": "pybpf_set_state", "cwnd_event": "pybpf_cwnd_event",
        "undo_cwnd": "pybpf_undo_cwnd", "init": "pybpf_init", "release": "pybpf_release"}
    assert obj.struct_ops["cc_off"].programs["init"] == "off_init"
    assert legacy["name"] == b"pybpf_legacy" and legacy["flags"] == 0
    assert obj.struct_ops["cc_link"]["flags"] == 1
    assert obj.maps["cc_link"].struct_ops is obj.struct_ops["cc_link"]
    assert obj.maps["calls"].struct_ops is None


def test_members_can_be_set_before_load():
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    cc["name"] = b"renamed"
    cc["flags"] = 7
    assert (cc["name"], cc["flags"]) == (b"renamed", 7)
    assert cc.spec.data[88:96] == b"renamed\0"
    assert struct.unpack_from("<I", cc.spec.data, 132) == (7,)
    cc["ssthresh"] = None
    cc["cwnd_event"] = obj.programs["off_init"]
    assert "ssthresh" not in cc.programs and cc.programs["cwnd_event"] == "off_init"
    assert cc.spec.declared[0] == "pybpf_ssthresh"          # the object's binding is kept
    with pytest.raises(KeyError, match="no member 'nope'"):
        cc["nope"] = 1
    with pytest.raises(BPFError, match="takes a program of this object"):
        cc["init"] = "no_such_program"
    with pytest.raises(BPFError, match="takes a program of this object"):
        cc["init"] = 42


def test_relocations_must_bind_function_pointers_to_struct_ops_programs():
    obj = open_obj()
    elf, btf = obj.spec.elf, obj.spec.btf
    sec = elf.section(".struct_ops")
    progs = {(p.func.shndx, p.func.start): (p.name, p.sec_def.prog_type)
             for p in obj.spec.programs}
    good = elf.relocs[sec.index]

    def collect_with(relocs, programs=progs) -> List[so.StructOpsSpec]:
        variant = elf.replace(relocs={**elf.relocs, sec.index: relocs})
        return so.collect(variant, btf, programs)

    assert len(collect_with(good)) == 3
    first = good[0]
    cases = [
        ([first.replace(offset=4)], "no member of struct tcp_congestion_ops "
         "starts at offset 4"),
        ([first.replace(offset=88)], "member 'name' \\(char\\[16\\]\\) is not "
         "a function pointer"),
        ([first.replace(offset=0x400)], "outside every struct_ops variable"),
        ([first.replace(sym=first.sym.replace(value=4))],
         "not at an instruction boundary"),
        ([first.replace(sym=first.sym.replace(value=8))],
         "which is not a program"),
        ([first.replace(sym=first.sym.replace(shndx=0))],
         "not a function of this object"),
    ]
    for relocs, msg in cases:
        with pytest.raises(ObjectError, match=msg) as e:
            collect_with(relocs)
        assert ".rel.struct_ops" in str(e.value)
    as_xdp = {k: (name, u.BPF_PROG_TYPE_XDP) for k, (name, _) in progs.items()}
    with pytest.raises(ObjectError, match="not a SEC\\(\"struct_ops\"\\) program"):
        collect_with(good, as_xdp)


def test_malformed_struct_ops_sections():
    obj = open_obj()
    elf, btf = obj.spec.elf, obj.spec.btf
    with pytest.raises(ObjectError, match="struct_ops maps need BTF"):
        so.collect(elf, None, {})
    progs = {(p.func.shndx, p.func.start): (p.name, p.sec_def.prog_type)
             for p in obj.spec.programs}
    sec = elf.section(".struct_ops")
    short = sec.replace(data=sec.data[:100])
    variant = elf.replace(sections=[short if s is sec else s for s in elf.sections])
    with pytest.raises(ObjectError, match="past the end of the section"):
        so.collect(variant, btf, progs)
    renamed = sec.replace(name=".struct_ops.other")
    variant = elf.replace(sections=[renamed if s is sec else s for s in elf.sections])
    assert ".struct_ops.other" not in [m.section for m in so.collect(variant, btf, progs)]
    with pytest.raises(ObjectError, match="no DATASEC '.struct_ops' in BTF"):
        so.collect(elf, BTF(), progs)
    assert so.is_struct_ops_section("?.struct_ops.link")
    assert not so.is_struct_ops_section(".struct_ops.x")


@pytest.mark.parametrize("make_type, msg", [
    (lambda b, i32: i32, "'ops' is int, not a struct"),
    (lambda b, i32: b.add(T.Union("u", 4, [T.Member("a", i32, 0)])), "not a struct"),
    (lambda b, i32: b.add(T.Struct("", 4, [T.Member("a", i32, 0)])), "anonymous struct"),
])
def test_struct_ops_variables_must_be_named_structs(make_type, msg):
    from pybpf.obj.elf import ElfObject, Section, SHT_PROGBITS
    btf = BTF()
    i32 = btf.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    var = btf.add(T.Var("ops", make_type(btf, i32), u.BTF_VAR_GLOBAL_ALLOCATED))
    btf.add(T.Datasec(".struct_ops", 4, [T.VarSecinfo(var, 0, 4)]))
    elf = ElfObject("x.o", [Section(0, "", 0, 0, 0, 0, b""),
                            Section(1, ".struct_ops", SHT_PROGBITS, 3, 4, 8, bytes(4))], [])
    with pytest.raises(ObjectError, match=msg):
        so.collect(elf, btf, {})


# ------------------------------------------------------------------ kernel layout (no root)


class Kern:
    """A hand-made kernel BTF with ``struct demo_ops`` and its struct_ops value type."""

    def __init__(self, btf: BTF, module: bool = False):
        self.btf = btf
        self.u32 = btf.add(T.Int("u32", 4, 0, 0, 32))
        char = btf.add(T.Int("char", 1, T.BTF_INT_SIGNED, 0, 8))
        name = btf.add(T.Array("", char, self.u32, 16))
        proto = btf.add(T.FuncProto("", self.u32, [T.Param("", self.u32)]))
        fptr = btf.add(T.Pointer("", proto))
        self.ops = btf.add(T.Struct("demo_ops", 40, [
            T.Member("op_a", fptr, 0), T.Member("flags", self.u32, 64),
            T.Member("name", name, 96), T.Member("op_b", fptr, 256)]))
        common = btf.add(T.Struct("bpf_struct_ops_common_value", 16, []))
        self.value = btf.add(T.Struct("bpf_struct_ops_demo_ops", 56, [
            T.Member("common", common, 0), T.Member("data", self.ops, 128)]))


def bpf_side(type_name: str = "demo_ops", flags_size: int = 4,
             extra: int = 0) -> Tuple[BTF, so.StructOpsSpec]:
    """The BPF object's view: members in another order, one the kernel lacks."""
    btf = BTF()
    u32 = btf.add(T.Int("unsigned int", 4, 0, 0, 32))
    flags = u32 if flags_size == 4 else btf.add(T.Int("u64", 8, 0, 0, 64))
    char = btf.add(T.Int("char", 1, T.BTF_INT_SIGNED, 0, 8))
    name = btf.add(T.Array("", char, u32, 16))
    proto = btf.add(T.FuncProto("", u32, [T.Param("", u32)]))
    fptr = btf.add(T.Typedef("demo_fn", btf.add(T.Pointer("", proto))))
    sid = btf.add(T.Struct(type_name, 56, [
        T.Member("name", name, 0), T.Member("op_b", fptr, 128),
        T.Member("flags", flags, 192), T.Member("op_a", fptr, 256),
        T.Member("extra", u32, 320)]))
    data = bytearray(56)
    data[0:5] = b"demo\0"
    data[24:24 + flags_size] = (0x11).to_bytes(flags_size, "little")
    struct.pack_into("<I", data, 40, extra)
    spec = so.StructOpsSpec("ops", ".struct_ops", sid, type_name, 0, data,
                            declared={1: "prog_b", 3: "prog_a"},
                            progs={1: "prog_b", 3: "prog_a"})
    return btf, spec


def test_layout_and_value_by_member_name():
    kern = Kern(BTF())
    layout = so.kernel_layout("demo_ops", [(None, kern.btf)])
    assert (layout.module, layout.type_id, layout.value_type_id) == (None, kern.ops, kern.value)
    assert (layout.value_size, layout.data_offset) == (56, 16)
    btf, spec = bpf_side()
    value = so.build_value(spec, btf, layout)
    assert len(value.image) == 56
    assert value.image[16 + 12:16 + 17] == b"demo\0"           # name: kernel offset 12
    assert struct.unpack_from("<I", value.image, 16 + 8) == (0x11,)   # flags: offset 8
    assert sorted(value.slots, key=lambda s: s.offset) == [
        so.Slot("op_a", 0, 16, "prog_a"), so.Slot("op_b", 3, 16 + 32, "prog_b")]
    image = so.value_with_fds(value, {"prog_a": 7, "prog_b": 9})
    assert struct.unpack_from("<QI", image, 16) == (7, 0x11)
    assert struct.unpack_from("<Q", image, 48) == (9,)
    assert image[:16] == bytes(16)


def test_flavored_bpf_type_and_module_btf():
    base = BTF()
    base.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    module = Kern(BTF(base=base))
    btf, spec = bpf_side("demo_ops___v2")
    assert spec.kernel_type_name == "demo_ops"
    layout = so.kernel_layout(spec.kernel_type_name, [(None, base), ("demo_mod", module.btf)])
    assert (layout.module, layout.type_id) == ("demo_mod", module.ops)
    assert layout.type_id >= module.btf.start_id
    assert [s.kernel_index for s in so.build_value(spec, btf, layout).slots] == [3, 0]


def test_layout_errors():
    kern = Kern(BTF())
    with pytest.raises(ObjectError, match="struct nope_ops is not in the kernel's BTF "
                       "\\(searched vmlinux, m1\\)"):
        so.kernel_layout("nope_ops", [(None, kern.btf), ("m1", BTF())])
    no_value = BTF()
    no_value.add(T.Struct("demo_ops", 8, []))
    with pytest.raises(ObjectError, match="no struct bpf_struct_ops_demo_ops"):
        so.kernel_layout("demo_ops", [(None, no_value)])
    no_data = BTF()
    no_data.add(T.Struct("demo_ops", 8, []))
    no_data.add(T.Struct("bpf_struct_ops_demo_ops", 8, []))
    with pytest.raises(ObjectError, match="has no member of type struct demo_ops"):
        so.kernel_layout("demo_ops", [(None, no_data)])


@pytest.mark.parametrize("change, msg", [
    (dict(extra=5), "member 'extra' is not in the kernel's struct demo_ops and is not zero"),
    (dict(flags_size=8), "member 'flags' is 8 bytes here, 4 in the kernel"),
])
def test_value_errors(change, msg):
    layout = so.kernel_layout("demo_ops", [(None, Kern(BTF()).btf)])
    btf, spec = bpf_side(**change)
    with pytest.raises(ObjectError, match=msg):
        so.build_value(spec, btf, layout)


def test_value_member_rules():
    layout = so.kernel_layout("demo_ops", [(None, Kern(BTF()).btf)])
    btf, spec = bpf_side()
    spec.progs[4] = "prog_x"            # bound to a member the kernel lacks
    with pytest.raises(ObjectError, match="'extra' is not in the kernel's struct demo_ops "
                       "and is bound to program 'prog_x'"):
        so.build_value(spec, btf, layout)
    btf, spec = bpf_side()
    del spec.progs[1]                   # an unset function pointer stays NULL
    assert [s.member for s in so.build_value(spec, btf, layout).slots] == ["op_a"]
    btf, spec = bpf_side()
    spec.data[16:24] = (0xdead).to_bytes(8, "little")   # op_b's slot, set by hand
    with pytest.raises(ObjectError, match="pointer member 'op_b' holds 0xdead"):
        so.build_value(spec, btf, layout)
    btf, spec = bpf_side()
    st = btf[spec.type_id]
    st.members[2] = T.Member("flags", btf.add(T.Pointer("", 0)), 192)
    with pytest.raises(ObjectError, match="member 'flags' is void \\* here but u32 in the "
                       "kernel"):
        so.build_value(spec, btf, layout)


def test_tcp_congestion_ops_against_this_kernel_btf():
    obj = open_obj()
    spec = obj.struct_ops["cc_legacy"].spec
    layout = so.kernel_layout(spec.kernel_type_name, [(None, kbtf.vmlinux())])
    vtype = kbtf.vmlinux()[layout.value_type_id]
    assert vtype.name == "bpf_struct_ops_tcp_congestion_ops"
    assert layout.value_size == vtype.size
    value = so.build_value(spec, obj.spec.btf, layout)
    kstruct = kbtf.vmlinux()[layout.type_id]
    koff = {m.name: (i, m.bit_offset // 8) for i, m in enumerate(kstruct.members)}
    name_at = layout.data_offset + koff["name"][1]
    assert value.image[name_at:name_at + 13] == b"pybpf_legacy\0"
    assert {s.member: (s.kernel_index, s.offset - layout.data_offset) for s in value.slots} \
        == {m: koff[m] for m in ("ssthresh", "cong_avoid", "set_state", "cwnd_event",
                                  "undo_cwnd", "init", "release")}


def test_struct_ops_layout_module_is_pure():
    """pybpf/struct_ops.py imports nothing that talks to the kernel."""
    import ast
    tree = ast.parse(pathlib.Path(so.__file__).read_text())
    imported = {("." * n.level) + (n.module or "") for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    kernel_side = {".syscall", ".links", ".maps", ".object", ".programs", ".attach_btf",
                   ".struct_ops_map", ".btf.kernel", ".tracefs", ".sysinfo"}
    assert imported and not imported & kernel_side, imported


def test_inspect_lists_struct_ops():
    from pybpf.cli.describe import describe, summary
    info = summary(open_obj())
    st = {s["name"]: s for s in info["struct_ops"]}
    assert st["cc_link"] == {"name": "cc_link", "type": "tcp_congestion_ops",
                             "section": ".struct_ops.link", "autocreate": True,
                             "programs": {"ssthresh": "pybpf_ssthresh",
                                          "cong_avoid": "pybpf_cong_avoid",
                                          "undo_cwnd": "pybpf_undo_cwnd",
                                          "init": "pybpf_init"}}
    assert st["cc_off"]["autocreate"] is False
    text = describe(open_obj())
    assert "struct_ops:" in text and "cc_legacy" in text and "init -> pybpf_init" in text


# ------------------------------------------------------------------ kernel


def available() -> List[str]:
    with open(AVAILABLE) as f:
        return f.read().split()


def cc_name(tag: str) -> str:
    name = f"pyb{tag}{os.getpid()}"
    assert len(name) < 16
    return name


def tcp_transfer(cc: str, size: int = 4 << 20) -> None:
    """A TCP connection over loopback with congestion control ``cc`` on both ends."""
    with socket.socket() as srv:
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        got: List[int] = []

        def receive() -> None:
            conn, _ = srv.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION,
                                       16).rstrip(b"\0") == cc.encode()
                n = 0
                while True:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        break
                    n += len(chunk)
                got.append(n)

        reader = threading.Thread(target=receive)
        reader.start()
        try:
            with socket.socket() as cli:
                cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
                cli.connect(srv.getsockname())
                assert cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION,
                                      16).rstrip(b"\0") == cc.encode()
                cli.sendall(b"x" * size)
        finally:
            reader.join(10)
        assert got == [size]


@contextlib.contextmanager
def loaded(keep: str, name: str) -> Iterator[pybpf.BPFObject]:
    obj = open_obj()
    try:
        for other in ("cc_legacy", "cc_link"):
            obj.struct_ops[other].autocreate = other == keep
        obj.struct_ops[keep]["name"] = name.encode()
        obj.load()
        yield obj
    finally:
        obj.close()


@pytest.mark.parametrize("variant", ["cc_legacy", "cc_link"])
def test_congestion_control_registers_and_runs(kernel, variant):
    name = cc_name("L" if variant == "cc_legacy" else "K")
    with loaded(variant, name) as obj:
        progs = obj.programs
        assert not progs["off_init"].loaded
        only_legacy = ("pybpf_set_state", "pybpf_cwnd_event", "pybpf_release")
        assert all(progs[p].loaded == (variant == "cc_legacy") for p in only_legacy)
        init = progs["pybpf_init"]
        assert init.type == u.BPF_PROG_TYPE_STRUCT_OPS and init.expected_attach_type == 16
        assert kbtf.vmlinux()[init.attach_btf_id].name == "tcp_congestion_ops"
        m = obj.maps[variant]
        info = m.info()
        assert (info.type, info.value_size) == (u.BPF_MAP_TYPE_STRUCT_OPS, m.value_size)
        assert kbtf.vmlinux()[info.btf_vmlinux_value_type_id].name == \
            "bpf_struct_ops_tcp_congestion_ops"
        assert name not in available()
        links = obj.attach()
        assert len(links) == 1
        assert name in available()
        if variant == "cc_link":
            assert links[0].info().type == u.BPF_LINK_TYPE_STRUCT_OPS
        kvalue = obj.struct_ops[variant].kernel_value()
        assert kvalue["common"]["state"] == (1 if variant == "cc_legacy" else 3)  # INUSE/READY
        assert kvalue["data"]["name"] == name.encode()
        assert kvalue["data"]["flags"] == (0 if variant == "cc_legacy" else 1)
        for member, prog in obj.struct_ops[variant].programs.items():
            assert kvalue["data"][member] == prog_id(progs[prog]), member
        assert kvalue["data"]["cong_control"] == 0
        with private_netns():
            tcp_transfer(name)
        calls = obj.maps["calls"]
        assert calls[INIT] >= 2                 # both ends of the connection
        assert calls[CONG_AVOID] > 0
        if variant == "cc_legacy":
            assert calls[RELEASE] >= 2 and calls[CWND_EVENT] > 0
        assert calls[OFF_INIT] == 0
    assert name not in available()


def test_attach_struct_ops_link_closes_and_registers_once(kernel):
    name = cc_name("M")
    with loaded("cc_legacy", name) as obj:
        m = obj.maps["cc_legacy"]
        with pytest.raises(BPFError, match="not a struct_ops map"):
            obj.maps["calls"].attach_struct_ops()
        link = m.attach_struct_ops()
        assert name in available()
        with pytest.raises(AttachError, match="registering struct_ops 'cc_legacy'.*"
                           "registers once"):
            m.attach_struct_ops()
        with pytest.raises(BPFError, match="no BPF link to pin"):
            link.pin("/sys/fs/bpf/nope")
        link.close()
        link.close()
        assert name not in available()
        with pytest.raises(AttachError, match="cannot attach struct_ops 'cc_off'"):
            obj.struct_ops["cc_off"].attach()
        with pytest.raises(AttachError, match="registered with the struct_ops map"):
            obj.programs["pybpf_init"].attach()


def test_link_variant_can_register_again_after_detach(kernel):
    name = cc_name("R")
    with loaded("cc_link", name) as obj:
        for _ in range(2):
            with obj.maps["cc_link"].attach_struct_ops():
                assert name in available()
            assert name not in available()


def test_failed_attach_leaves_nothing_registered(kernel):
    name = cc_name("D")
    obj = open_obj()
    with obj:
        for m in ("cc_legacy", "cc_link"):
            obj.struct_ops[m]["name"] = name.encode()     # the second one must fail
        obj.load()
        with pytest.raises(AttachError, match="registering struct_ops 'cc_link'") as e:
            obj.attach()
        assert e.value.errno == 17                        # EEXIST: the name is taken
        assert name not in available()
        assert obj.links == []
        with pytest.raises(AttachError, match="registers once"):
            obj.maps["cc_legacy"].attach_struct_ops()   # spent by the rollback
        obj.struct_ops["cc_legacy"].autoattach = False
        assert [link.desc for link in obj.attach()] == [
            "struct_ops 'cc_link' (struct tcp_congestion_ops)"]
        assert name in available()
    with pytest.raises(BPFError, match="only be changed before load"):
        obj.struct_ops["cc_legacy"]["flags"] = 0


def test_autocreate_brings_in_its_programs(kernel):
    name = cc_name("O")
    obj = open_obj()
    with obj:
        for m in ("cc_legacy", "cc_link"):
            obj.struct_ops[m].autocreate = False
        obj.struct_ops["cc_off"].autocreate = True
        obj.struct_ops["cc_off"]["name"] = name.encode()
        obj.struct_ops["cc_off"]["init"] = None            # unbound: off_init not loaded
        obj.load()
        assert not obj.programs["off_init"].loaded
        assert obj.programs["pybpf_ssthresh"].loaded
        assert not obj.maps["cc_legacy"].loaded
        obj.attach()
        assert name in available()
    assert name not in available()


def test_legacy_registration_ends_when_the_link_is_collected(kernel):
    import gc
    name = cc_name("G")
    with loaded("cc_legacy", name) as obj:
        link = obj.maps["cc_legacy"].attach_struct_ops()
        obj.struct_ops["cc_legacy"].links.clear()       # forget it without closing
        assert name in available()
        del link
        gc.collect()
        assert name not in available()


# ------------------------------------------------------------------ bpf_dummy_ops: test_run


def run_dummy(prog: pybpf.Program, val: Optional[int]) -> int:
    import ctypes
    state = ctypes.c_int(val or 0)
    arg = ctypes.addressof(state) if val is not None else 0
    return prog.test_run(ctx=struct.pack("<Q", arg)).retval


def test_flavored_partial_struct_and_sleepable_callback(kernel):
    with pybpf.BPFObject.open(built("struct_ops_dummy.bpf.o")) as obj:
        dummy = obj.struct_ops["dummy"]
        assert (dummy.type_name, dummy.spec.kernel_type_name) == \
            ("bpf_dummy_ops___pybpf", "bpf_dummy_ops")
        obj.load()
        test_1, sleepable = obj.programs["dummy_test_1"], obj.programs["dummy_sleepable"]
        kstruct = kbtf.vmlinux()[test_1.attach_btf_id]
        assert kstruct.name == "bpf_dummy_ops"
        names = [m.name for m in kstruct.members]
        assert test_1.expected_attach_type == names.index("test_1")
        assert sleepable.expected_attach_type == names.index("test_sleepable")
        assert obj.maps["dummy"].value_size == \
            kbtf.vmlinux()[kbtf.vmlinux().find("bpf_struct_ops_bpf_dummy_ops")[0]].size
        assert run_dummy(test_1, 41) == 1041 and run_dummy(test_1, None) == 7
        assert run_dummy(sleepable, 1) == 0
        assert (obj.bss["test_1_calls"], obj.bss["sleepable_calls"]) == (2, 1)
        with pytest.raises(AttachError, match="registering struct_ops .dummy."):
            obj.attach()                    # bpf_dummy_ops cannot be registered
        assert obj.links == []


def test_sleepable_callback_on_a_member_that_refuses_it(kernel):
    """struct_ops.s really loads sleepable: bpf_dummy_ops refuses it for test_1."""
    with pybpf.BPFObject.open(built("struct_ops_dummy.bpf.o")) as obj:
        dummy = obj.struct_ops["dummy"]
        dummy["test_sleepable"] = None
        dummy["test_1"] = obj.programs["dummy_sleepable"]
        with pytest.raises(pybpf.VerifierError, match="(?s)dummy_sleepable.*unsupported member test_1"):
            obj.load()
        assert not obj.programs["dummy_test_1"].loaded


def test_link_update_map_swaps_the_registered_struct_ops(kernel):
    name = cc_name("U")
    with loaded("cc_link", name) as first, loaded("cc_link", name) as second:
        link = first.maps["cc_link"].attach_struct_ops()
        with pytest.raises(AttachError, match="takes a .struct_ops.link map"):
            link.update_map(second.maps["calls"])
        link.update_map(second.maps["cc_link"])
        assert link.owner is second.struct_ops["cc_link"] and first.struct_ops["cc_link"].links == []
        assert link.info().type == u.BPF_LINK_TYPE_STRUCT_OPS
        first.close()                           # the registration now is second's
        assert name in available()
        with private_netns():
            tcp_transfer(name, 1 << 20)
        assert second.maps["calls"][INIT] >= 2
    assert name not in available()


def test_a_struct_ops_program_no_map_binds_is_refused_until_disabled(kernel):
    with pybpf.BPFObject.open(built("struct_ops_unbound.bpf.o")) as obj:
        with pytest.raises(ObjectError, match="struct_ops program 'orphan' is bound to no "
                           "struct_ops map.*set its autoload to False") as e:
            obj.load()
        assert "struct_ops/orphan" in str(e.value)
        assert not obj.programs["tick"].loaded
    with pybpf.BPFObject.open(built("struct_ops_unbound.bpf.o")) as obj:
        obj.programs["orphan"].autoload = False
        obj.load()
        assert obj.programs["tick"].loaded and not obj.programs["orphan"].loaded


def test_autoload_follows_the_maps_that_bind_a_program(kernel):
    with open_obj() as obj:
        for m in ("cc_link", "cc_off"):
            obj.struct_ops[m].autocreate = False
        obj.struct_ops["cc_legacy"]["name"] = cc_name("A").encode()
        obj.programs["pybpf_init"].autoload = False      # bound: libbpf loads it anyway
        obj.programs["off_init"].autoload = True         # bound by cc_off only: not loaded
        obj.struct_ops["cc_legacy"]["release"] = None    # unbound: pybpf_release not loaded
        obj.load()
        loaded_now = sorted(p.name for p in obj.programs.values() if p.loaded)
        assert loaded_now == ["pybpf_cong_avoid", "pybpf_cwnd_event", "pybpf_init",
                              "pybpf_set_state", "pybpf_ssthresh", "pybpf_undo_cwnd"]


# ------------------------------------------------------------------ fuzzing (no root)


def _struct_ops_regions() -> Tuple[bytes, List[Tuple[int, int]]]:
    """The bytes of struct_ops_cc.bpf.o and where its struct_ops data, relocations and
    symbols are."""
    import io
    from elftools.elf.elffile import ELFFile
    raw = built(OBJ).read_bytes()
    elf = ELFFile(io.BytesIO(raw))
    regions = [(sec["sh_offset"], sec["sh_size"]) for sec in elf.iter_sections()
               if "struct_ops" in sec.name and not sec["sh_flags"] & 0x4
               or sec["sh_type"] == "SHT_SYMTAB"]
    return raw, regions


def _mutations():
    from hypothesis import strategies as st
    return st.tuples(st.integers(0, 1 << 20), st.integers(0, 1 << 20),
                     st.lists(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255),
                              min_size=1, max_size=8))


def test_mutated_struct_ops_sections_fail_cleanly():
    from hypothesis import HealthCheck, given, settings
    from pybpf.obj.spec import parse_object
    raw, regions = _struct_ops_regions()
    layout = so.kernel_layout("tcp_congestion_ops", [(None, kbtf.vmlinux())])

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations())
    def check(mutation):
        pick, offset, values = mutation
        start, size = regions[pick % len(regions)]
        data = bytearray(raw)
        at = start + offset % size
        data[at:at + len(values)] = bytes(values)[:max(0, len(raw) - at)]
        try:
            spec = parse_object(bytes(data))
            for m in spec.maps:
                if m.struct_ops is not None and m.struct_ops.kernel_type_name == \
                        "tcp_congestion_ops":
                    so.build_value(m.struct_ops, spec.btf, layout)
        except ObjectError:
            pass

    check()


def test_prepare_sets_attach_ids_and_refuses_a_program_on_two_members():
    obj = open_obj()
    layout = so.kernel_layout("tcp_congestion_ops", [(None, kbtf.vmlinux())])
    cc = obj.struct_ops["cc_legacy"]
    value = cc.prepare(layout)
    assert obj.maps["cc_legacy"].value_size == layout.value_size
    init = obj.programs["pybpf_init"]
    assert (init.attach_btf_id, init.expected_attach_type, init.attach_btf_obj_fd) == \
        (layout.type_id, 16, 0)
    assert {s.program for s in value.slots} == set(cc.programs.values())
    assert obj.struct_ops["cc_link"].prepare(layout).slots   # same programs, same members
    other = open_obj()
    other.struct_ops["cc_legacy"]["release"] = other.programs["pybpf_init"]
    with pytest.raises(ObjectError, match="program 'pybpf_init' is bound to member "
                       "'release'.*already to another struct_ops member"):
        other.struct_ops["cc_legacy"].prepare(layout)
    with pytest.raises(BPFError, match="only be changed before load"):
        cc["flags"] = 1


def test_bare_struct_ops_section_is_a_struct_ops_program():
    obj = pybpf.BPFObject.open(built("struct_ops_dummy.bpf.o"))
    prog = obj.programs["dummy_test_1"]
    assert (prog.section, prog.type) == ("struct_ops", u.BPF_PROG_TYPE_STRUCT_OPS)
    assert obj.struct_ops["dummy"].programs == {"test_sleepable": "dummy_sleepable",
                                                "test_1": "dummy_test_1"}
