"""Structural attacks (issue 10): type cycles of every kind, zero-size arrays with
huge counts, deep nesting, exponential type graphs, lying section and ELF
headers, special files.  Each one runs through open, inspect, codecs, CO-RE
against itself, sanitize, encode and link in a child process bounded in memory
and CPU (see hostile.py), and must end there by itself: ``ok`` or a pybpf error.
"""
from __future__ import annotations

import os
import re
from typing import Callable, Dict

import pytest

from conftest import built
from hostile import (ARRAY, CONST, DATASEC, ENUM, ENUM64, EXEC_IDS, FUNC_PROTO, PTR,
                     RESTRICT, STRUCT, TYPE_TAG, TYPEDEF, UNION, VAR, VOLATILE, RawBTF,
                     exec_object, info,
                     renamed, replace_section, run_attacks, run_paths, section_data, set_ehdr,
                     set_shdr, shdr, with_btf)

REF_KINDS = {"ptr": PTR, "typedef": TYPEDEF, "const": CONST, "volatile": VOLATILE,
             "restrict": RESTRICT, "type_tag": TYPE_TAG}
ERROR = re.compile(r"^(ObjectError|CodecError|BPFError): ")
OUTCOME = re.compile(r"^(ok|(ObjectError|CodecError|BPFError): .*)$")
DEEP = 100_000


def _btf() -> RawBTF:
    return RawBTF(section_data(exec_object(), ".BTF"))


def _use(btf: RawBTF, where: str, type_id: int) -> bytes:
    """The object with the map ``rb`` ("map") or global ``target_pid`` ("global")
    declared with type ``type_id``."""
    var = EXEC_IDS["rb" if where == "map" else "target_pid"]
    btf.set(var, 2, type_id)
    return with_btf(exec_object(), btf)


# ---------------------------------------------------------------- type graphs

def self_ref(kind: int) -> Callable[[RawBTF], int]:
    def build(btf: RawBTF) -> int:
        tid = btf.add(0, info(kind), 0)
        btf.set(tid, 2, tid)
        return tid
    return build


def two_cycle(btf: RawBTF) -> int:
    a = btf.add(0, info(CONST), 0)
    b = btf.add(btf.name("loop_t"), info(TYPEDEF), a)
    btf.set(a, 2, b)
    return a


def proto_returns_itself(btf: RawBTF) -> int:
    tid = btf.add(0, info(FUNC_PROTO), 0)            # the 12-byte record of the issue
    btf.set(tid, 2, tid)
    return tid


def proto_params_itself(btf: RawBTF) -> int:
    tid = btf.add(0, info(FUNC_PROTO, 2), 0, 0, 0, 0, 0)
    for word in (2, 4, 6):
        btf.set(tid, word, tid)
    return tid


def array_of_itself(btf: RawBTF) -> int:
    tid = btf.add(0, info(ARRAY), 0, 0, EXEC_IDS["int"], 4)
    btf.set(tid, 3, tid)
    return tid


def struct_holding_itself(named: bool) -> Callable[[RawBTF], int]:
    def build(btf: RawBTF) -> int:
        tid = btf.add(btf.name("selfish"), info(STRUCT, 1), 4,
                      btf.name("me") if named else 0, 0, 0)
        btf.set(tid, 4, tid)
        return tid
    return build


def var_of_itself(btf: RawBTF) -> int:
    tid = btf.add(btf.name("v"), info(VAR), 0, 1)
    btf.set(tid, 2, tid)
    return tid


def datasec_of_itself(btf: RawBTF) -> int:
    tid = btf.add(btf.name(".data.loop"), info(DATASEC, 1), 4, 0, 0, 4)
    btf.set(tid, 3, tid)
    return tid


def zero_size_matrix(btf: RawBTF) -> int:            # int[0][0xffffffff]
    inner = btf.add(0, info(ARRAY), 0, EXEC_IDS["int"], 4, 0)
    return btf.add(0, info(ARRAY), 0, inner, 4, 0xFFFFFFFF)


def empty_structs(btf: RawBTF) -> int:               # struct empty[0xffffffff]
    empty = btf.add(btf.name("empty"), info(STRUCT), 0)
    return btf.add(0, info(ARRAY), 0, empty, 4, 0xFFFFFFFF)


def huge_matrix(btf: RawBTF) -> int:                 # int[0xffffffff][0xffffffff]
    inner = btf.add(0, info(ARRAY), 0, EXEC_IDS["int"], 4, 0xFFFFFFFF)
    return btf.add(0, info(ARRAY), 0, inner, 4, 0xFFFFFFFF)


def chain(make: Callable[[RawBTF, int], int], depth: int = DEEP) -> Callable[[RawBTF], int]:
    """depth types, each made by make(btf, next id) (the next one is added right after)."""
    def build(btf: RawBTF) -> int:
        first = len(btf.offsets) + 1
        for i in range(depth):
            nxt = first + i + 1 if i + 1 < depth else EXEC_IDS["int"]
            assert make(btf, nxt) == first + i
        return first
    return build


def nested_anon_struct(btf: RawBTF, nxt: int) -> int:
    return btf.add(0, info(STRUCT, 1), 4, 0, nxt, 0)


def nested_named_struct(btf: RawBTF, nxt: int) -> int:
    return btf.add(0, info(STRUCT, 1), 4, btf.name("m") if nxt else 0, nxt, 0)


def nested_ref(kind: int) -> Callable[[RawBTF, int], int]:
    return lambda btf, nxt: btf.add(0, info(kind), nxt)


def nested_array(btf: RawBTF, nxt: int) -> int:
    return btf.add(0, info(ARRAY), 0, nxt, 4, 1)


def nested_proto(btf: RawBTF, nxt: int) -> int:
    return btf.add(0, info(FUNC_PROTO, 1), nxt, 0, nxt)


def fan_out(kind: int, named: bool, depth: int = 30) -> Callable[[RawBTF], int]:
    """A DAG with 2**depth paths (within the depth the kernel follows): each level
    holds the next one twice."""
    def build(btf: RawBTF) -> int:
        first = len(btf.offsets) + 1
        a, b = (btf.name("a"), btf.name("b")) if named else (0, 0)
        for i in range(depth):
            nxt = first + i + 1 if i + 1 < depth else EXEC_IDS["int"]
            if kind == FUNC_PROTO:
                btf.add(0, info(FUNC_PROTO, 2), nxt, a, nxt, b, nxt)
            else:
                btf.add(btf.name(f"fan{i}"), info(kind, 2), 4, a, nxt, 0, b, nxt, 0)
        return first
    return build


def wide_struct(btf: RawBTF) -> int:
    """Structs of 80,000 int members in all (960 KB), lifted into one: walks stay linear."""
    name, int_id = btf.name("m"), EXEC_IDS["int"]
    first = btf.add(btf.name("wide"), info(STRUCT, 0xFFFF), 4, *([name, int_id, 0] * 0xFFFF))
    rest = 80_000 - 0xFFFF
    second = btf.add(btf.name("wide2"), info(STRUCT, rest), 4, *([name, int_id, 0] * rest))
    return btf.add(0, info(STRUCT, 2), 8, 0, first, 0, 0, second, 0)


GRAPHS: Dict[str, Callable[[RawBTF], int]] = {
    **{f"{name}_loop": self_ref(kind) for name, kind in REF_KINDS.items()},
    "const_typedef_loop": two_cycle,
    "func_proto_returns_itself": proto_returns_itself,
    "func_proto_params_itself": proto_params_itself,
    "array_of_itself": array_of_itself,
    "struct_named_member_itself": struct_holding_itself(True),
    "struct_anon_member_itself": struct_holding_itself(False),
    "var_of_itself": var_of_itself,
    "datasec_of_itself": datasec_of_itself,
    "int_0_x_ffffffff": zero_size_matrix,
    "empty_struct_x_ffffffff": empty_structs,
    "int_ffffffff_x_ffffffff": huge_matrix,
    "deep_anon_structs": chain(nested_anon_struct),
    "deep_named_structs": chain(nested_named_struct),
    "deep_pointers": chain(nested_ref(PTR)),
    "deep_typedefs": chain(nested_ref(TYPEDEF)),
    "deep_arrays": chain(nested_array),
    "deep_func_protos": chain(nested_proto),
    "fan_out_named_structs": fan_out(STRUCT, True),
    "fan_out_anon_unions": fan_out(UNION, False),
    "fan_out_func_protos": fan_out(FUNC_PROTO, True),
    "wide_structs_80k_members": wide_struct,
    "enum_of_4g_bytes": lambda btf: btf.add(btf.name("e4g"), info(ENUM, 1), 0xFFFFFFFF,
                                            btf.name("A"), 1),
    "signed_enum_of_0_bytes": lambda btf: btf.add(btf.name("e0"), info(ENUM, 1, 1), 0,
                                                  btf.name("A"), 1),
    "enum64_of_3_bytes": lambda btf: btf.add(btf.name("e3"), info(ENUM64, 1), 3,
                                             btf.name("A"), 1, 0),
}
#: graphs that are harmless where they are put (the loop is in entries that are skipped)
HARMLESS = {("datasec_of_itself", "global")}


@pytest.fixture(scope="module")
def graph_outcomes(tmp_path_factory) -> Dict[str, str]:
    """Every graph as the map definition and as a global's type, run in one bounded child."""
    built("exec.bpf.o")
    attacks = {}
    for graph, make in GRAPHS.items():
        for where in ("map", "global"):
            btf = _btf()
            attacks[f"{graph}-{where}"] = _use(btf, where, make(btf))
    return run_attacks(tmp_path_factory.mktemp("graphs"), attacks)


@pytest.mark.parametrize("where", ["map", "global"])
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_type_graph_attack(graph_outcomes, graph, where):
    line = graph_outcomes[f"{graph}-{where}"]
    assert OUTCOME.match(line), line
    if (graph, where) not in HARMLESS:
        assert ERROR.match(line), line
    assert len(line) < 1000, line          # one readable line, however deep the types


def test_exec_ids_are_what_the_attacks_repoint():
    from pybpf.btf import BTF
    btf = BTF.parse(section_data(built("exec.bpf.o").read_bytes(), ".BTF"))
    for name, type_id in EXEC_IDS.items():
        assert btf[type_id].name == name


@pytest.mark.parametrize("graph", ["func_proto_returns_itself", "func_proto_params_itself"])
def test_cycle_in_map_definition_is_named(graph_outcomes, graph):
    """Item 1: a FUNC_PROTO made of itself as a map definition: a one-line
    ObjectError naming the map, at once."""
    line = graph_outcomes[f"{graph}-map"]
    assert line.startswith("ObjectError: map 'rb': definition is "), line
    assert "not a struct" in line


@pytest.mark.parametrize("graph", ["func_proto_params_itself", "fan_out_func_protos"])
def test_prototype_cycle_in_global_is_refused(graph_outcomes, graph):
    """Item 1: the same cycle in a global's type: inspect refuses it at once."""
    line = graph_outcomes[f"{graph}-global"]
    assert line.startswith("ObjectError: cannot encode/decode "), line
    assert "funcproto has no value" in line


@pytest.mark.parametrize("graph", ["int_0_x_ffffffff", "empty_struct_x_ffffffff"])
def test_zero_size_elements_refused(graph_outcomes, graph):
    """Item 2: int[0][0xffffffff] or struct empty[0xffffffff] as a global: no
    4-billion-element list."""
    line = graph_outcomes[f"{graph}-global"]
    assert line.startswith("ObjectError: cannot encode/decode "), line
    assert "0 bytes would decode into 4294967296 values" in line


@pytest.mark.parametrize("graph", ["enum_of_4g_bytes", "signed_enum_of_0_bytes",
                                   "enum64_of_3_bytes"])
def test_enum_sizes_are_the_kernels(graph_outcomes, graph):
    line = graph_outcomes[f"{graph}-global"]
    assert re.match(r"ObjectError: invalid BTF enum size \d+", line), line


def test_size_overflowing_u32_refused(graph_outcomes):
    line = graph_outcomes["int_ffffffff_x_ffffffff-global"]
    assert "is larger than 4294967295 bytes" in line, line


@pytest.mark.parametrize("graph", ["struct_anon_member_itself", "deep_anon_structs",
                                   "struct_named_member_itself", "deep_named_structs"])
def test_nesting_is_an_object_error(graph_outcomes, graph):
    """Item 3: no RecursionError for a struct holding itself (as an anonymous
    member too), or for 100,000 nested (anonymous) structs."""
    line = graph_outcomes[f"{graph}-global"]
    assert line.startswith("ObjectError: "), line
    assert re.search(r"contains itself|nested deeper than 32", line), line


@pytest.mark.parametrize("graph", ["fan_out_named_structs", "fan_out_anon_unions"])
def test_fan_out_is_refused_at_once(graph_outcomes, graph):
    line = graph_outcomes[f"{graph}-global"]
    assert re.search(r"would decode into \d+ values|more than \d+ steps", line), line


def test_map_in_map_holding_itself(tmp_path):
    """An outer map whose inner template is the outer map itself: ObjectError, not
    RecursionError (libbpf refuses multi-level inner maps too)."""
    raw = built("loader_maps.bpf.o").read_bytes()
    btf = RawBTF(section_data(raw, ".BTF"))
    outer = btf.get(21, 2)                       # the Var 'outer' -> its struct
    assert btf.get(18, 1) >> 24 == PTR
    btf.set(18, 2, outer)                        # values: array of pointers to itself
    line = run_attacks(tmp_path, {"outer": with_btf(raw, btf)})["outer"]
    assert line.startswith("ObjectError: map 'outer.inner': an inner map cannot hold"), line


# ---------------------------------------------------------------- lying headers

def _exec_with(**edits: Dict[str, int]) -> bytes:
    raw = exec_object()
    for sec, fields in edits.items():
        raw = set_shdr(raw, sec.replace("_", ".", 1) if sec.startswith("_") else sec,
                       **fields)
    return raw


def _first_code_insn_off() -> int:
    h = shdr(exec_object(), "tp/sched/sched_process_exec")
    return h["sh_offset"]


HEADERS: Dict[str, Callable[[], bytes]] = {
    "bss_4g": lambda: _exec_with(_bss={"sh_size": 0xFFFFFFFF}),
    "bss_2_63": lambda: _exec_with(_bss={"sh_size": 1 << 63}),
    "bss_2_64_minus_1": lambda: _exec_with(_bss={"sh_size": (1 << 64) - 1}),
    "rodata_past_eof": lambda: _exec_with(_rodata={"sh_size": 1 << 40}),
    "rodata_offset_2_63": lambda: _exec_with(_rodata={"sh_offset": 1 << 63}),
    "btf_size_2_64_minus_1": lambda: _exec_with(_BTF={"sh_size": (1 << 64) - 1}),
    "symtab_entsize_0": lambda: _exec_with(_symtab={"sh_entsize": 0}),
    "symtab_entsize_1": lambda: _exec_with(_symtab={"sh_entsize": 1}),
    "rel_entsize_1": lambda: set_shdr(exec_object(), ".reltp/sched/sched_process_exec",
                                      sh_entsize=1),
    "shentsize_0": lambda: set_ehdr(exec_object(), e_shentsize=0),
    "shnum_0_huge_count": lambda: set_ehdr(set_shdr(exec_object(), "", sh_size=1 << 40),
                                           e_shnum=0),
    "shnum_65535": lambda: set_ehdr(exec_object(), e_shnum=0xFFFF),
    "shoff_2_63": lambda: set_ehdr(exec_object(), e_shoff=1 << 63),
    "shstrndx_out_of_range": lambda: set_ehdr(exec_object(), e_shstrndx=0xFEFF),
    "phnum_65535": lambda: set_ehdr(exec_object(), e_phoff=64, e_phnum=0xFFFF, e_phentsize=56),
    "phoff_2_63": lambda: set_ehdr(exec_object(), e_phoff=1 << 63, e_phnum=3, e_phentsize=56),
    "symtab_40k_symbols": lambda: _many_symbols(40_000),
    "strtab_truncated": lambda: set_shdr(exec_object(), ".strtab", sh_size=3),
}


def _many_symbols(count: int) -> bytes:
    """A symbol table of ``count`` copies of a local symbol: a bulk of under 1 MiB."""
    raw = exec_object()
    table = section_data(raw, ".symtab")
    return replace_section(raw, ".symtab", table + table[24:48] * count)


#: header lies pybpf never acts on (BPF objects have no segments): may open fine
UNREAD = {"shstrndx_out_of_range", "phnum_65535", "phoff_2_63", "symtab_40k_symbols"}


@pytest.fixture(scope="module")
def header_outcomes(tmp_path_factory) -> Dict[str, str]:
    built("exec.bpf.o")
    return run_attacks(tmp_path_factory.mktemp("headers"),
                       {name: make() for name, make in HEADERS.items()})


@pytest.mark.parametrize("attack", sorted(HEADERS))
def test_lying_header(header_outcomes, attack):
    line = header_outcomes[attack]
    assert OUTCOME.match(line), line
    if attack not in UNREAD:
        assert ERROR.match(line), line


def test_huge_bss_refused_before_allocating():
    """Item 4: a NOBITS .bss of 0xffffffff bytes (or 2**63) is checked against the
    kernel's limit for a map value, naming the section, before anything is allocated."""
    from pybpf.errors import ObjectError
    from pybpf.obj.spec import parse_object
    for size in (0xFFFFFFFF, 1 << 63, (1 << 64) - 1):
        with pytest.raises(ObjectError, match=r"\.bss.*bytes") as info_:
            parse_object(_exec_with(_bss={"sh_size": size}))
        assert info_.value.section == ".bss"


def test_ld_imm64_as_last_instruction(tmp_path):
    """Item 12: a function whose last slot starts a 16-byte ld_imm64: inspect shows
    it, nothing raises struct.error."""
    from pybpf.cli import describe
    from pybpf.object import BPFObject
    raw = bytearray(exec_object())
    h = shdr(bytes(raw), "tp/sched/sched_process_exec")
    raw[h["sh_offset"] + h["sh_size"] - 8] = 0x18          # the last insn: exit -> ld_imm64
    text = describe.describe(BPFObject.open(bytes(raw)))
    assert re.search(r"  35: r0 = <ld_imm64 missing its second slot>", text), text
    line = run_attacks(tmp_path, {"ld_imm64_last": bytes(raw)})["ld_imm64_last"]
    assert OUTCOME.match(line), line


def test_two_code_sections_of_one_name():
    """.BTF.ext names code sections: a second section of the same name (its header's
    sh_name re-pointed) is an ObjectError, not the linker's KeyError."""
    from pybpf.errors import ObjectError
    from pybpf.obj.spec import parse_object
    raw = built("struct_ops_cc.bpf.o").read_bytes()
    same = shdr(raw, "struct_ops/pybpf_cwnd_event")["sh_name"]
    raw = set_shdr(raw, "struct_ops/pybpf_ssthresh", sh_name=same)
    with pytest.raises(ObjectError, match=r"executable sections 3 and 13 have the same name: "
                                          r"\.BTF\.ext records could not tell them apart "
                                          r"\(section struct_ops/pybpf_cwnd_event\)"):
        parse_object(raw)


def test_data_section_entry_not_a_var(tmp_path):
    """Item 13: a .rodata DATASEC entry that is an INT: ObjectError, not AttributeError."""
    btf = _btf()
    ds = EXEC_IDS[".rodata"]
    btf.set(ds, 3, EXEC_IDS["int"])
    line = run_attacks(tmp_path, {"rodata_int": with_btf(exec_object(), btf)})["rodata_int"]
    assert line.startswith("ObjectError: "), line
    assert "not a variable" in line and ".rodata" in line


# ---------------------------------------------------------------- special files

SPECIAL = ["/dev/zero", "/dev/urandom", "fifo", "directory", "symlink_to_zero",
           "symlink_to_fifo"]


@pytest.fixture(scope="module")
def special_outcomes(tmp_path_factory) -> Dict[str, str]:
    tmp = tmp_path_factory.mktemp("special")
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    os.mkdir(tmp / "directory")
    os.symlink("/dev/zero", tmp / "symlink_to_zero")
    os.symlink(fifo, tmp / "symlink_to_fifo")
    return run_paths([t if t.startswith("/") else str(tmp / t) for t in SPECIAL])


@pytest.mark.parametrize("target", SPECIAL)
def test_special_file_refused(special_outcomes, target):
    """Item 5: only regular files are read; FIFOs, devices and directories are
    refused without blocking or reading."""
    line = special_outcomes[os.path.basename(target)]
    assert line.startswith("ObjectError: cannot read "), line
    assert "not a regular file" in line, line


def test_btf_past_the_kernels_limit(monkeypatch):
    from pybpf.obj import spec as spec_mod
    from pybpf.errors import ObjectError
    monkeypatch.setattr(spec_mod, "BTF_MAX_SIZE", 1024)
    with pytest.raises(ObjectError, match=r"\.BTF is \d+ bytes: the kernel loads at most 1024"):
        spec_mod.parse_object(exec_object())


def test_object_size_limit(tmp_path, monkeypatch):
    from pybpf.obj import elf
    from pybpf.errors import ObjectError
    path = tmp_path / "big.o"
    path.write_bytes(exec_object())
    monkeypatch.setattr(elf, "MAX_OBJECT_SIZE", 1024)
    with pytest.raises(ObjectError, match="larger than"):
        elf.read_elf(str(path))


# ------------------------------------------------------------------ names

#: same-length names (every string offset stays) for maps, a program and a global
#: of hist_maps.bpf.o, in its ELF and BTF string tables alike: what would end a line,
#: a string or a docstring, bytes that are not UTF-8, names the exporter would merge
NAMES = {
    "line_feed": {b"sleep_hist": b"sleep\nhist", b"on_sleep": b"on\nsleep"},
    "quotes": {b"sleep_hist": b'sl"""\\hist', b"targ_tgid": b"targ'''\\d"},
    "not_utf8": {b"sleep_hist": b"sleep\xffhist", b"calls": b"c\xa9lls",
                 b"on_sleep": b"on\xc3sleep", b"targ_tgid": b"targ\x80tgid"},
    "one_metric": {b"sleep_linear": b"by_clock_sum"},     # by_clock's _sum series
    "control": {b"calls": b"\x1b[2J\x07", b"by_clock": b"by\tclock"},
}


@pytest.fixture(scope="module")
def name_outcomes(tmp_path_factory) -> Dict[str, str]:
    raw = built("hist_maps.bpf.o").read_bytes()
    return run_attacks(tmp_path_factory.mktemp("names"),
                       {attack: renamed(raw, renames) for attack, renames in NAMES.items()})


@pytest.mark.parametrize("attack", sorted(NAMES))
def test_hostile_names_open_and_reach_every_text_format(name_outcomes, attack):
    # open, inspect, link, a skeleton that compiles, UTF-8 exposition
    line = name_outcomes[attack]
    if attack == "one_metric":
        assert line == ("ConfigError: maps 'by_clock' and 'by_clock_sum' both give the "
                        "metric 'pybpf_by_clock_sum': give one of them a 'name' in the config")
    else:
        assert line == "ok", line
