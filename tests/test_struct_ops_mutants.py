"""struct_ops, the cases the mutants showed untested: exact error places (section and
offset) of relocation faults, relocations at the edges of a variable and against
programs past the start of their section, hand-made sections (NOBITS, several
variables, a non-variable DATASEC entry, bitfield members), kernel layouts with split
BTF and duplicate names, member-matching refusals, and the fd packing."""
from __future__ import annotations

import dataclasses
import struct
from typing import List, Optional, Tuple

import pytest

from pybpf import uapi as u
from pybpf.btf import BTF
from pybpf.btf import types as T
from pybpf.errors import AttachError, BPFError, ObjectError
from pybpf.obj import struct_ops as so
from pybpf.obj.elf import SHT_NOBITS, SHT_PROGBITS, ElfObject, Reloc, Section, Symbol

from test_struct_ops import Kern, bpf_side, open_obj

SO = u.BPF_PROG_TYPE_STRUCT_OPS


# ------------------------------------------------------------------ the built object



def _bitfield(member: T.Member, bits: int) -> T.Member:
    """The member as a bitfield of ``bits`` bits."""
    return T.Member(member.name, member.type, member.bit_offset, bits)

def _cc():
    obj = open_obj()
    elf, btf = obj.spec.elf, obj.spec.btf
    sec = elf.section(".struct_ops")
    progs = {(p.func.shndx, p.func.start): (p.name, p.sec_def.prog_type)
             for p in obj.spec.programs}
    return elf, btf, sec, progs


def _collect(elf, btf, sec, relocs, progs):
    variant = elf.replace(relocs={**elf.relocs, sec.index: relocs})
    return so.collect(variant, btf, progs)


def test_collected_specs_hold_every_field():
    elf, btf, _, progs = _cc()
    got = {s.name: s for s in so.collect(elf, btf, progs)}
    legacy, link, off = got["cc_legacy"], got["cc_link"], got["cc_off"]
    assert [s.section for s in (legacy, link, off)] == [".struct_ops", ".struct_ops.link",
                                                        "?.struct_ops"]
    assert [(s.flags, s.is_link, s.autocreate) for s in (legacy, link, off)] == [
        (0, False, True), (u.BPF_F_LINK, True, True), (0, False, False)]
    assert {s.offset for s in got.values()} == {0}
    tcp = btf.find("tcp_congestion_ops", u.BTF_KIND_STRUCT)
    assert {s.type_id for s in got.values()} == set(tcp)
    assert bytes(legacy.data) == elf.section(".struct_ops").data
    # member index -> program, as the relocations say (ssthresh is member 0)
    members = [m.name for m in btf[legacy.type_id].members]
    assert {members[i]: p for i, p in legacy.declared.items()} == legacy_bindings()
    assert legacy.declared == legacy.progs and legacy.declared is not legacy.progs
    assert {members[i]: p for i, p in off.declared.items()} == {
        "ssthresh": "pybpf_ssthresh", "cong_avoid": "pybpf_cong_avoid",
        "undo_cwnd": "pybpf_undo_cwnd", "init": "off_init"}


def legacy_bindings():
    return {"ssthresh": "pybpf_ssthresh", "cong_avoid": "pybpf_cong_avoid",
            "set_state": "pybpf_set_state", "cwnd_event": "pybpf_cwnd_event",
            "undo_cwnd": "pybpf_undo_cwnd", "init": "pybpf_init",
            "release": "pybpf_release"}


def _fault(elf, btf, sec, relocs, progs, message):
    with pytest.raises(ObjectError, match=message) as e:
        _collect(elf, btf, sec, relocs, progs)
    return e.value


def test_relocation_faults_name_the_relocation_section_and_offset():
    elf, btf, sec, progs = _cc()
    first = elf.relocs[sec.index][0]           # ssthresh at offset 0 -> pybpf_ssthresh
    sym = first.sym
    cases = [
        (first.replace(offset=4), r"^struct_ops 'cc_legacy': no member of "
         r"struct tcp_congestion_ops starts at offset 4 \(section \.rel\.struct_ops, "
         r"offset 0x4\)$"),
        (first.replace(offset=192), r"^relocation outside every struct_ops "
         r"variable \(section \.rel\.struct_ops, offset 0xc0\)$"),
        (first.replace(offset=88), r"^struct_ops 'cc_legacy': member 'name' "
         r"\(char\[16\]\) is not a function pointer \(section \.rel\.struct_ops, "
         r"offset 0x58\)$"),
        (first.replace(sym=sym.replace(value=12)),
         r"^struct_ops 'cc_legacy': relocation target 'pybpf_ssthresh' at 0xc is not at an "
         r"instruction boundary \(section \.rel\.struct_ops, offset 0x0\)$"),
        (first.replace(sym=sym.replace(shndx=0)),
         r"^struct_ops 'cc_legacy': relocation against 'pybpf_ssthresh', which is not a "
         r"function of this object \(section \.rel\.struct_ops, offset 0x0\)$"),
        (first.replace(sym=sym.replace(shndx=len(elf.sections))),
         "which is not a function of this object"),
        (first.replace(offset=8, sym=sym.replace(value=16)),
         r"^struct_ops 'cc_legacy': member 'cong_avoid' points to 'pybpf_ssthresh' in "
         r"section 'struct_ops/pybpf_ssthresh', which is not a program \(section "
         r"\.rel\.struct_ops, offset 0x8\)$"),
        (first.replace(sym=sym.replace(value=8, name="")),
         r"member 'ssthresh' points to 'a symbol' in section 'struct_ops/pybpf_ssthresh'"),
    ]
    for reloc, message in cases:
        e = _fault(elf, btf, sec, [reloc], progs, message)
        assert (e.section, e.offset) == (".rel.struct_ops", reloc.offset)
    as_xdp = {k: (name, u.BPF_PROG_TYPE_XDP) for k, (name, _) in progs.items()}
    e = _fault(elf, btf, sec, [first.replace(offset=8)], as_xdp,
               r"^struct_ops 'cc_legacy': member 'cong_avoid' points to program "
               r"'pybpf_ssthresh', which is not a SEC\(\"struct_ops\"\) program")
    assert e.offset == 8


def test_relocations_at_the_edges_of_the_variable():
    elf, btf, sec, progs = _cc()
    first = elf.relocs[sec.index][0]
    st = btf[btf.find("tcp_congestion_ops", u.BTF_KIND_STRUCT)[0]]
    last = max((m for m in st.members if so.is_func_pointer(btf, m.type)),
               key=lambda m: m.bit_offset)
    # the variable's first byte and its last function pointer both bind
    (spec, *_) = _collect(elf, btf, sec,
                          [first, first.replace(offset=last.bit_offset // 8)], progs)
    names = [m.name for m in st.members]
    assert {names[i]: p for i, p in spec.progs.items()} == {"ssthresh": "pybpf_ssthresh",
                                                          last.name: "pybpf_ssthresh"}


def test_a_program_past_the_start_of_its_section():
    """The program is found by (section, instruction slot): byte offset / 8."""
    elf, btf, sec, progs = _cc()
    first = elf.relocs[sec.index][0]
    later = {**progs, (first.sym.shndx, 3): ("later", SO)}
    moved = first.replace(sym=first.sym.replace(value=24))
    (spec, *_) = _collect(elf, btf, sec, [moved], later)
    assert spec.progs == spec.declared == {0: "later"}
    _fault(elf, btf, sec, [first.replace(sym=first.sym.replace(value=16))], later,
           "which is not a program")


# ------------------------------------------------------------------ hand-made objects


def _hand(vars_: List[Tuple[str, int, int]], section: str = ".struct_ops",
          data: Optional[bytes] = None, sec_type: int = SHT_PROGBITS,
          relocs: Optional[List[Reloc]] = None,
          bitfield: bool = False) -> Tuple[ElfObject, BTF, int]:
    """One struct_ops section with variables (name, offset, type: 0 demo struct, 1 int)
    of ``struct hand_ops { fn_t *op; u32 flags:3 (or u32 flags); u64 op2_at_16 }``."""
    btf = BTF()
    u32 = btf.add(T.Int("u32", 4, 0, 0, 32))
    proto = btf.add(T.FuncProto("", u32, []))
    fptr = btf.add(T.Pointer("", proto))
    st = btf.add(T.Struct("hand_ops", 24, [
        T.Member("op", fptr, 0), T.Member("flags", u32, 64, 3 if bitfield else 0),
        T.Member("op2", fptr, 128)]))
    infos = []
    for name, off, kind in vars_:
        var = btf.add(T.Var(name, st if kind == 0 else u32, u.BTF_VAR_GLOBAL_ALLOCATED))
        infos.append(T.VarSecinfo(var, off, 24))
    btf.add(T.Datasec(section, 48, infos))
    body = data if data is not None else bytes(range(48))
    prog_sec = Section(2, "struct_ops/p", SHT_PROGBITS, 6, 16, 8, bytes(16))
    elf = ElfObject("hand.o", [Section(0, "", 0, 0, 0, 0, b""),
                               Section(1, section, sec_type, 3, len(body), 8,
                                       b"" if sec_type == SHT_NOBITS else body), prog_sec],
                    [], relocs={1: relocs or []})
    return elf, btf, st


def _sym(value: int = 0, name: str = "p") -> Symbol:
    return Symbol(1, name, value, 16, 2, 1, 0, 2)


def test_two_variables_in_one_section():
    relocs = [Reloc(24, _sym(0), 2), Reloc(40, _sym(8, "q"), 2)]
    elf, btf, st = _hand([("a", 0, 0), ("b", 24, 0)], relocs=relocs)
    a, b = so.collect(elf, btf, {(2, 0): ("p", SO), (2, 1): ("q", SO)})
    assert (a.name, a.offset, bytes(a.data)) == ("a", 0, bytes(range(24)))
    assert (b.name, b.offset, bytes(b.data)) == ("b", 24, bytes(range(24, 48)))
    assert (a.progs, b.progs) == ({}, {0: "p", 2: "q"})
    assert a.type_id == b.type_id == st and a.type_name == "hand_ops"
    # a relocation one byte before the second variable belongs to the first
    elf, btf, _ = _hand([("a", 0, 0), ("b", 24, 0)], relocs=[Reloc(23, _sym(0), 2)])
    with pytest.raises(ObjectError, match="^struct_ops 'a': no member of struct hand_ops "
                       "starts at offset 23"):
        so.collect(elf, btf, {(2, 0): ("p", SO)})


def test_a_variable_ending_exactly_at_the_section_end():
    elf, btf, _ = _hand([("a", 24, 0)])
    (a,) = so.collect(elf, btf, {})
    assert bytes(a.data) == bytes(range(24, 48))
    elf, btf, _ = _hand([("a", 25, 0)])
    with pytest.raises(ObjectError, match=r"^struct_ops variable 'a' \(24 bytes at 0x19\) is "
                       r"past the end of the section \(section \.struct_ops, offset 0x19\)$"):
        so.collect(elf, btf, {})


def test_hand_made_section_faults():
    elf, btf, _ = _hand([("a", 0, 0)], sec_type=SHT_NOBITS)
    with pytest.raises(ObjectError, match=r"^a struct_ops section must hold data \(PROGBITS\) "
                       r"\(section \.struct_ops\)$"):
        so.collect(elf, btf, {})
    elf, btf, _ = _hand([("a", 0, 0), ("n", 24, 1)], section=".struct_ops.link")
    with pytest.raises(ObjectError, match=r"^struct_ops variable 'n' is u32, not a struct "
                       r"\(section \.struct_ops\.link, offset 0x18\)$"):
        so.collect(elf, btf, {})
    # a DATASEC entry that is no VAR
    elf, btf, st = _hand([("a", 0, 0)])
    ds = btf[btf.find(".struct_ops", u.BTF_KIND_DATASEC)[0]]
    ds.vars.append(T.VarSecinfo(st, 24, 24))
    with pytest.raises(ObjectError, match=r"^DATASEC entry of kind 4 is not a variable "
                       r"\(section \.struct_ops, offset 0x18\)$"):
        so.collect(elf, btf, {})


def test_the_optional_link_section_is_not_autocreated():
    elf, btf, _ = _hand([("a", 0, 0)], section="?.struct_ops.link")
    (a,) = so.collect(elf, btf, {})
    assert (a.section, a.autocreate, a.flags, a.is_link) == ("?.struct_ops.link", False,
                                                             u.BPF_F_LINK, True)
    assert so.is_struct_ops_section("?.struct_ops") and so.is_struct_ops_section(".struct_ops")
    assert not so.is_struct_ops_section("?struct_ops") and not so.is_struct_ops_section(
        "..struct_ops")


def test_a_relocation_on_a_bitfield_offset_finds_no_member():
    elf, btf, _ = _hand([("a", 0, 0)], bitfield=True, relocs=[Reloc(8, _sym(0), 2)])
    with pytest.raises(ObjectError, match="no member of struct hand_ops starts at offset 8"):
        so.collect(elf, btf, {(2, 0): ("p", SO)})


def test_func_pointer_through_typedefs_and_qualifiers():
    btf = BTF()
    i = btf.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    proto = btf.add(T.FuncProto("", i, []))
    const_proto = btf.add(T.Const("", btf.add(T.Typedef("fn_t", proto))))
    ptr = btf.add(T.Pointer("", const_proto))
    assert so.is_func_pointer(btf, btf.add(T.Typedef("fp_t", ptr)))
    assert not so.is_func_pointer(btf, btf.add(T.Pointer("", i)))
    assert not so.is_func_pointer(btf, proto) and not so.is_func_pointer(btf, i)


# ------------------------------------------------------------------ kernel layout


def test_layout_in_a_module_skips_the_base_copy():
    """A module's split BTF also finds its base's types: the struct must be its own."""
    base = BTF()
    base.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    base.add(T.Struct("demo_ops", 8, []))              # a same-named struct in vmlinux
    module = Kern(BTF(base=base))
    layout = so.kernel_layout("demo_ops", [("demo_mod", module.btf)])
    assert (layout.module, layout.type_id, layout.value_type_id) == ("demo_mod", module.ops,
                                                                     module.value)
    assert layout.btf is module.btf and layout.data_offset == 16 and layout.value_size == 56
    # only the base has it: not this module's
    with pytest.raises(ObjectError, match=r"searched m2\)"):
        so.kernel_layout("demo_ops", [("m2", BTF(base=base))])


def test_layout_of_a_module_struct_that_is_its_first_type():
    base = BTF()
    base.add(T.Int("int", 4, T.BTF_INT_SIGNED, 0, 32))
    mod = BTF(base=base)
    first = mod.add(T.Struct("first_ops", 8, []))
    assert first == mod.start_id
    value = mod.add(T.Struct("bpf_struct_ops_first_ops", 24, [
        T.Member("refcnt", 1, 0), T.Member("data", first, 64)]))
    layout = so.kernel_layout("first_ops", [(None, base), ("mod", mod)])
    assert (layout.type_id, layout.value_type_id, layout.data_offset) == (first, value, 8)


def test_layout_takes_the_first_of_duplicate_names():
    btf = BTF()
    kern = Kern(btf)
    dup = btf.add(T.Struct("demo_ops", 4, []))
    dup_value = btf.add(T.Struct("bpf_struct_ops_demo_ops", 8, [T.Member("data", dup, 0)]))
    layout = so.kernel_layout("demo_ops", [(None, btf)])
    assert (layout.type_id, layout.value_type_id, layout.value_size) == (kern.ops, kern.value,
                                                                        56)
    assert dup_value != layout.value_type_id


def test_layout_messages():
    with pytest.raises(ObjectError, match=r"^struct_ops type struct x_ops is not in the "
                       r"kernel's BTF \(searched nothing\)$"):
        so.kernel_layout("x_ops", [])
    mod = BTF(base=BTF())
    mod.add(T.Struct("demo_ops", 8, []))
    with pytest.raises(ObjectError, match=r"^struct demo_ops in m BTF is not a struct_ops "
                       r"type: there is no struct bpf_struct_ops_demo_ops"):
        so.kernel_layout("demo_ops", [("m", mod)])
    with pytest.raises(ObjectError, match=r"^struct demo_ops in vmlinux BTF is not"):
        so.kernel_layout("demo_ops", [(None, mod)])


def test_value_type_data_member_found_by_type():
    btf = BTF()
    ops = btf.add(T.Struct("demo_ops", 8, []))
    other = btf.add(T.Struct("other", 8, []))
    value = btf.add(T.Struct("bpf_struct_ops_demo_ops", 24, [
        T.Member("common", other, 0), T.Member("data", ops, 128)]))
    layout = so.kernel_layout("demo_ops", [(None, btf)])
    assert (layout.value_type_id, layout.data_offset, layout.value_size) == (value, 16, 24)


# ------------------------------------------------------------------ building the value


def _layout(kern: Kern) -> so.KernelLayout:
    return so.kernel_layout("demo_ops", [(None, kern.btf)])


def test_value_errors_name_the_section():
    kern = Kern(BTF())
    btf, spec = bpf_side(extra=1)
    spec.section = "?.struct_ops.link"
    with pytest.raises(ObjectError, match=r"^struct_ops 'ops' \(struct demo_ops\): member "
                       r"'extra' is not in the kernel's struct demo_ops and is not zero "
                       r"\(section \?\.struct_ops\.link\)$") as e:
        so.build_value(spec, btf, _layout(kern))
    assert e.value.section == "?.struct_ops.link"


@pytest.mark.parametrize("side", ["bpf", "kernel"])
def test_bitfield_members_are_refused(side):
    kern = Kern(BTF())
    btf, spec = bpf_side()
    if side == "bpf":
        st = btf[spec.type_id]
        st.members[2] = _bitfield(st.members[2], 5)
    else:
        ks = kern.btf[kern.ops]
        ks.members[1] = _bitfield(ks.members[1], 5)
    with pytest.raises(ObjectError, match=r"member 'flags' is a bitfield: not supported"):
        so.build_value(spec, btf, _layout(kern))


def test_kernel_member_that_is_no_function_pointer():
    kern = Kern(BTF())
    ks = kern.btf[kern.ops]
    ks.members[3] = T.Member("op_b", kern.btf.add(T.Pointer("", kern.u32)), 256)
    btf, spec = bpf_side()
    with pytest.raises(ObjectError, match=r"^struct_ops 'ops' \(struct demo_ops\): kernel "
                       r"member 'op_b' is not a function pointer \(section \.struct_ops\)$"):
        so.build_value(spec, btf, _layout(kern))
    del spec.progs[1]                      # unbound: the kernel's pointer stays NULL
    assert [s.member for s in so.build_value(spec, btf, _layout(kern)).slots] == ["op_a"]


def test_anonymous_members_are_not_matched():
    """An unnamed BPF-side member is never the kernel's unnamed member: not zero, refused;
    zero, skipped (and the kernel's unnamed member stays zero)."""
    kern = Kern(BTF())
    ks = kern.btf[kern.ops]
    ks.members.append(T.Member("", kern.u32, 288))
    btf, spec = bpf_side()
    st = btf[spec.type_id]
    st.members[4] = T.Member("", st.members[4].type, 320)
    struct.pack_into("<I", spec.data, 40, 9)
    with pytest.raises(ObjectError, match="member '' is not in the kernel's struct demo_ops "
                       "and is not zero"):
        so.build_value(spec, btf, _layout(kern))
    struct.pack_into("<I", spec.data, 40, 0)
    value = so.build_value(spec, btf, _layout(kern))
    assert value.image[16 + 36:16 + 40] == bytes(4)


def test_value_image_bytes_exactly():
    kern = Kern(BTF())
    btf, spec = bpf_side()
    spec.data[0:16] = b"fifteen-chars!!\0"
    struct.pack_into("<I", spec.data, 24, 0xA1B2C3D4)
    value = so.build_value(spec, btf, _layout(kern))
    want = bytearray(56)
    struct.pack_into("<I", want, 16 + 8, 0xA1B2C3D4)
    want[16 + 12:16 + 28] = b"fifteen-chars!!\0"
    assert value.image == bytes(want)
    assert value.layout == _layout(kern)
    assert value.slots == [so.Slot("op_b", 3, 48, "prog_b"), so.Slot("op_a", 0, 16, "prog_a")]


def test_fds_are_packed_as_u64():
    kern = Kern(BTF())
    btf, spec = bpf_side()
    value = so.build_value(spec, btf, _layout(kern))
    image = so.value_with_fds(value, {"prog_a": (1 << 63) + 5, "prog_b": 0x1_0000_0003})
    assert image[16:24] == ((1 << 63) + 5).to_bytes(8, "little")
    assert image[48:56] == (0x1_0000_0003).to_bytes(8, "little")
    assert image[24:48] == value.image[24:48] and image[:16] == bytes(16)
    assert value.image[16:24] == bytes(8)            # the value itself is left alone


# ------------------------------------------------------------------ StructOps before load


def test_struct_ops_view_before_load():
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    assert (cc.name, cc.type_name, cc.is_link, cc.autocreate, cc.autoattach) == (
        "cc_legacy", "tcp_congestion_ops", False, True, True)
    assert obj.struct_ops["cc_link"].is_link and not obj.struct_ops["cc_off"].autocreate
    st = obj.spec.btf[cc.spec.type_id]
    assert cc.members() == [m.name for m in st.members if m.name]
    assert list(cc.programs) == [m.name for m in st.members if m.name in legacy_bindings()]
    assert cc.programs == legacy_bindings()
    assert repr(cc) == f"<StructOps cc_legacy struct tcp_congestion_ops .struct_ops {cc.programs}>"
    assert repr(obj.struct_ops["cc_link"]).startswith(
        "<StructOps cc_link struct tcp_congestion_ops .struct_ops.link {")
    assert cc["ssthresh"] == "pybpf_ssthresh" and cc["cong_control"] is None
    assert cc["key"] == 0 and cc["owner"] == 0
    with pytest.raises(KeyError, match=r"struct tcp_congestion_ops has no member 'nope' "
                       r"\(it has: ssthresh, cong_avoid, "):
        cc["nope"]
    cc.autocreate = 0
    assert cc.autocreate is False and cc.spec.autocreate is False


def test_struct_ops_setters_before_load():
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    name_at = next(m.bit_offset // 8 for m in obj.spec.btf[cc.spec.type_id].members
                   if m.name == "name")
    cc["name"] = bytearray(b"ab")                        # shorter bytes: zero-padded
    assert bytes(cc.spec.data[name_at:name_at + 16]) == b"ab" + bytes(14)
    cc["name"] = b"x" * 16                               # exactly the member's size
    assert bytes(cc.spec.data[name_at:name_at + 16]) == b"x" * 16
    from pybpf.btf.codec import CodecError
    with pytest.raises(CodecError, match="17 bytes do not fit in char\\[16\\]"):
        cc["name"] = b"y" * 17
    assert len(cc.spec.data) == 192 and bytes(cc.spec.data[name_at:name_at + 16]) == b"x" * 16
    cc["release"] = "off_init"                           # a program by name
    assert cc.programs["release"] == "off_init"
    cc["release"] = None
    cc["release"] = None                                 # unbinding twice is fine
    assert "release" not in cc.programs
    other = open_obj()
    with pytest.raises(BPFError, match=r"^struct_ops 'cc_legacy': member 'init' takes a program "
                       r"of this object, not <"):
        cc["init"] = other.programs["pybpf_init"]        # same name, another object
    with pytest.raises(BPFError, match=r"^struct_ops 'cc_legacy': program 'calls' is "):
        pass_prog = dataclasses.make_dataclass("P", ["name", "type", "type_name"])
        cc._programs = {**cc._programs, "calls": pass_prog("calls", u.BPF_PROG_TYPE_XDP, "xdp")}
        cc["init"] = "calls"
    with pytest.raises(BPFError, match="not struct_ops"):
        cc["init"] = "calls"
    assert cc.programs["init"] == "pybpf_init"


def test_struct_ops_bitfield_member_cannot_be_set():
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    st = obj.spec.btf[cc.spec.type_id]
    i = next(i for i, m in enumerate(st.members) if m.name == "flags")
    cc._members["flags"] = (i, _bitfield(st.members[i], 3))
    with pytest.raises(BPFError, match=r"^struct_ops 'cc_legacy': bitfield member 'flags' "
                       "cannot be set$"):
        cc["flags"] = 1


def test_struct_ops_calls_out_of_order():
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    with pytest.raises(BPFError, match=r"^struct_ops 'cc_legacy': prepare\(\) before create\(\)$"):
        cc.create(3)
    for call in (cc.image, cc.kernel_value):
        with pytest.raises(BPFError, match=r"^struct_ops 'cc_legacy' is not loaded$"):
            call()
    with pytest.raises(AttachError, match=r"^struct_ops 'cc_legacy': its map is not created$"):
        cc._set_value(b"")
    layout = so.kernel_layout("tcp_congestion_ops", [(None, kbtf_vmlinux())])
    cc.prepare(layout)
    with pytest.raises(BPFError, match=r"^struct_ops map 'cc_legacy' needs the object's BTF in "
                       r"the kernel, and the kernel refused it$"):
        cc.create(0)
    with pytest.raises(AttachError, match=r"^struct_ops 'cc_legacy': program 'pybpf_ssthresh' "
                       r"bound to member 'ssthresh' is not loaded$"):
        cc.image()
    with pytest.raises(BPFError, match="is not loaded"):
        cc.kernel_value()                      # prepared, but its map is not created
    with pytest.raises(BPFError, match="autocreate can only be changed before load"):
        cc.autocreate = False
    with pytest.raises(BPFError, match=r"^struct_ops 'cc_legacy': member 'flags' can only be "
                       r"changed before load\(\)$"):
        cc["flags"] = 1
    with pytest.raises(BPFError, match="member 'init' can only be changed"):
        cc["init"] = None
    assert obj.maps["cc_legacy"].spec.value_size == layout.value_size != 192


def test_prepare_refuses_a_program_that_is_no_longer_struct_ops():
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    obj.programs["pybpf_init"].type = u.BPF_PROG_TYPE_XDP
    layout = so.kernel_layout("tcp_congestion_ops", [(None, kbtf_vmlinux())])
    with pytest.raises(ObjectError, match=r"^struct_ops 'cc_legacy': program 'pybpf_init' bound "
                       r"to 'init' is xdp, not struct_ops \(section \.struct_ops\)$"):
        cc.prepare(layout)


def test_prepare_for_a_module_type_takes_its_btf_fd(monkeypatch):
    from pybpf.link import attach_btf
    from pybpf.link import struct_ops as link_so
    obj = open_obj()
    cc = obj.struct_ops["cc_legacy"]
    layout = so.kernel_layout("tcp_congestion_ops", [(None, kbtf_vmlinux())])
    layout = layout._replace(module="some_mod")
    calls = []

    class FakeFd:
        fd = 42

    monkeypatch.setattr(attach_btf, "module_btf_fd", lambda m: calls.append(m) or FakeFd())
    value = cc.prepare(layout)
    init = obj.programs["pybpf_init"]
    assert (init.attach_btf_id, init.attach_btf_obj_fd) == (layout.type_id, 42)
    assert calls == ["some_mod"] and value.layout.module == "some_mod"
    assert link_so.StructOps._module_fd(layout._replace(module=None)) == 0


def test_kernel_btfs_vmlinux_first():
    from pybpf.btf import kernel
    from pybpf.link.struct_ops import kernel_btfs
    it = kernel_btfs()
    assert next(it) == (None, kernel.vmlinux())
    rest = list(it)
    assert rest == list(kernel.modules().items())


def kbtf_vmlinux():
    from pybpf.btf import kernel
    return kernel.vmlinux()


# ------------------------------------------------------------------ registration internals


def _devnull_fd():
    import os
    from pybpf.kernel.syscall import Fd
    return Fd(os.open(os.devnull, os.O_RDONLY))


def test_unregister_tolerates_only_einprogress(monkeypatch):
    import errno
    from pybpf.link import struct_ops as link_so
    calls = []

    def delete(fd, key, err=None):
        calls.append((fd, key))
        if err_box:
            raise BPFError("busy", err_box[0])
        return False
    err_box: List[int] = []
    monkeypatch.setattr(link_so.syscall, "map_delete", delete)
    fd = _devnull_fd()
    number = fd.fd
    link_so._unregister(fd)
    assert calls == [(number, b"\0\0\0\0")] and fd.closed
    link_so._unregister(fd)                      # closed: nothing to delete
    assert len(calls) == 1
    err_box.append(errno.EINPROGRESS)
    fd = _devnull_fd()
    link_so._unregister(fd)
    assert fd.closed
    err_box[0] = errno.EPERM
    fd = _devnull_fd()
    with pytest.raises(BPFError, match="busy"):
        link_so._unregister(fd)
    assert fd.closed                             # closed even when the delete failed


def test_legacy_link_has_no_bpf_link(monkeypatch):
    from pybpf.link import struct_ops as link_so
    monkeypatch.setattr(link_so.syscall, "map_delete", lambda fd, key: False)
    fd = _devnull_fd()
    link = link_so.StructOpsLink(fd, desc="struct_ops 'x' (struct y)")
    with pytest.raises(BPFError, match=r"^struct_ops 'x' \(struct y\): a \.struct_ops "
                       r"registration has no BPF link to describe \(declare it in "
                       r"SEC\(\"\.struct_ops\.link\"\)\)$"):
        link.info()
    with pytest.raises(BPFError, match="no BPF link to pin"):
        link.pin("/sys/fs/bpf/x")
    link.detach()
    assert fd.closed and link.closed


def _fd_count() -> int:
    import os
    return len(os.listdir("/proc/self/fd"))


def test_registration_details(kernel, monkeypatch):
    import errno
    from test_struct_ops import available, cc_name, loaded
    from pybpf.link import struct_ops as link_so
    name = cc_name("X")
    with loaded("cc_link", name) as first, loaded("cc_link", name) as second:
        one, two = first.struct_ops["cc_link"], second.struct_ops["cc_link"]
        value = one.kernel_value()            # created, its value not given yet
        assert value["data"]["name"] == b"" and value["common"]["state"] == 0
        def refuse(err):
            def update(fd, key, value):
                raise BPFError("refused", err)
            return update
        real_update = link_so.syscall.map_update
        monkeypatch.setattr(link_so.syscall, "map_update", refuse(errno.EBUSY))
        assert one._set_value(b"") is None      # set once already: the kernel keeps it
        monkeypatch.setattr(link_so.syscall, "map_update", refuse(errno.EINVAL))
        with pytest.raises(BPFError, match="^refused$") as e:
            one._set_value(b"")
        assert e.value.errno == errno.EINVAL
        with pytest.raises(AttachError, match=r"^registering struct_ops 'cc_link' \(struct "
                           r"tcp_congestion_ops\): refused$"):
            one.attach()
        monkeypatch.setattr(link_so.syscall, "map_update", real_update)
        link = one.attach()
        assert one.links == [link] and link.owner is one
        assert one.kernel_value()["common"]["state"] == 3          # READY
        real = link_so.syscall.link_update
        monkeypatch.setattr(link_so.syscall, "link_update",
                            lambda fd, map_fd: (_ for _ in ()).throw(BPFError("no", errno.EINVAL)))
        with pytest.raises(AttachError, match=r"^updating struct_ops 'cc_link' \(struct "
                           r"tcp_congestion_ops\) to struct_ops 'cc_link': no$") as e:
            link.update_map(two)
        assert e.value.errno == errno.EINVAL and link.owner is one and one.links == [link]
        monkeypatch.setattr(link_so.syscall, "link_update", real)
        with pytest.raises(AttachError, match=r"takes a \.struct_ops\.link map, not <StructOps "
                           "cc_legacy"):
            link.update_map(second.struct_ops["cc_legacy"])
        link.update_map(two.map)                # the Map does as well as its StructOps
        assert (link.owner, two.links, one.links) == (two, [link], [])
        monkeypatch.setattr(link_so.syscall, "map_lookup", lambda fd, key, size: None)
        with pytest.raises(BPFError, match=r"^struct_ops 'cc_link': the kernel returned no "
                           r"value$"):
            two.kernel_value()
        monkeypatch.undo()
        assert link.desc == "struct_ops 'cc_link' (struct tcp_congestion_ops)"
        assert name in available()
        with pytest.raises(AttachError, match=r"^registering struct_ops 'cc_link' \(struct "
                           r"tcp_congestion_ops\): .* \(the kernel already has one by this "
                           r"name\)$") as e:
            one.attach()                       # a .struct_ops.link map: EEXIST, no EBUSY hint
        assert e.value.errno == errno.EEXIST and one.links == []
        two.close()
        assert link.closed and two.links == [] and name not in available()
    assert name not in available()


def test_failed_legacy_registration_leaks_no_fd(kernel):
    from test_struct_ops import available, cc_name, loaded
    name = cc_name("F")
    with loaded("cc_legacy", name) as obj:
        cc = obj.struct_ops["cc_legacy"]
        with cc.attach():
            pass
        assert name not in available()
        before = _fd_count()
        for _ in range(3):
            with pytest.raises(AttachError, match=r"^registering struct_ops 'cc_legacy' \(struct "
                               r"tcp_congestion_ops\): .*\(a \.struct_ops map registers once: "):
                cc.attach()
        assert _fd_count() == before and len(cc.links) == 1 and cc.links[0].closed


def test_the_first_datasec_of_the_name_is_the_section():
    elf, btf, _ = _hand([("a", 0, 0)])
    btf.add(T.Datasec(".struct_ops", 0, []))           # a later, empty namesake
    assert [s.name for s in so.collect(elf, btf, {})] == ["a"]
