""".BTF.ext parsing: real objects, header variants, odd record sizes, malformed input."""
from __future__ import annotations

import struct
from typing import Dict, List, Sequence, Tuple

import pytest
from elftools.elf.elffile import ELFFile

from conftest import built
from pybpf.btf import BTF, BTFExt, CoreRelo, FuncInfo, LineInfo
from pybpf.btf import types as T
from pybpf.btf.ext import pack_func_info, pack_line_info
from pybpf.errors import ObjectError
from pybpf.uapi import BPF_CORE_FIELD_BYTE_OFFSET, BTF_KIND_FUNC

SEC = "tp/sched/sched_process_exec"


def elf_sections(name: str) -> Tuple[bytes, bytes]:
    with open(built(name), "rb") as f:
        elf = ELFFile(f)
        return (elf.get_section_by_name(".BTF").data(),
                elf.get_section_by_name(".BTF.ext").data())


@pytest.mark.parametrize("obj", ["exec.bpf.o", "ringbuf-output.bpf.o", "perfbuf-output.bpf.o"])
def test_real_object(obj):
    raw_btf, raw_ext = elf_sections(obj)
    btf = BTF.parse(raw_btf)
    ext = BTFExt.parse(raw_ext, btf)
    assert (ext.func_info_rec_size, ext.line_info_rec_size, ext.core_relo_rec_size) == (8, 16, 16)
    [func] = ext.func_info[SEC]
    assert func.insn_off == 0
    assert btf[func.type_id].name == "handle_exec" and btf.kind_of(func.type_id) == BTF_KIND_FUNC
    lines = ext.line_info[SEC]
    assert lines[0].insn_off == 0 and lines[0].file_name.endswith(obj.replace(".o", ".c"))
    assert "handle_exec" in lines[0].line and lines[0].line_num > 0
    assert all(line.insn_off % 8 == 0 for line in lines)
    assert [r.insn_off for r in lines] == sorted(r.insn_off for r in lines)
    relos = ext.core_relos[SEC]
    assert any(r.access_str == "0:1" and r.kind == BPF_CORE_FIELD_BYTE_OFFSET and
               btf[r.type_id].name == "trace_event_raw_sched_process_exec" for r in relos)


# ---------------------------------------------------------------- hand-made blobs

Block = Tuple[str, List[Sequence[int]]]


def make_btf() -> Tuple[BTF, Dict[str, int]]:
    btf = BTF()
    proto = btf.add(T.FuncProto("", 0, []))
    btf.add(T.Func("prog_a", proto))
    btf.add(T.Func("prog_b", proto))
    blob, offs = btf.encode_with_strings(["sec_a", "sec_b", "a.c", "x = 1;", "0:2"])
    return BTF.parse(blob), offs


def info_section(rec_size: int, blocks: List[Block], offs: Dict[str, int]) -> bytes:
    out = struct.pack("<I", rec_size)
    for sec, records in blocks:
        out += struct.pack("<II", offs[sec], len(records))
        for rec in records:
            raw = struct.pack(f"<{len(rec)}I", *rec)
            out += raw + b"\xaa" * (rec_size - len(raw))     # unknown trailing fields
    return out


def ext_blob(offs: Dict[str, int], func: List[Block] = (), line: List[Block] = (),
             core: List[Block] = (), sizes=(8, 16, 16), hdr_len: int = 32) -> bytes:
    parts = [info_section(size, blocks, offs) if blocks else b""
             for size, blocks in zip(sizes, (func, line, core))]
    fields, pos = [], 0
    for part in parts[:3 if hdr_len >= 32 else 2]:
        fields += [pos, len(part)]
        pos += len(part)
    header = struct.pack("<HBBI", 0xEB9F, 1, 0, hdr_len) + struct.pack(f"<{len(fields)}I", *fields)
    header += b"\0" * (hdr_len - len(header))
    return header + b"".join(parts[:len(fields) // 2])


def sample(offs: Dict[str, int], **kw) -> bytes:
    return ext_blob(offs,
                    func=[("sec_a", [(0, 2)]), ("sec_b", [(0, 3), (64, 2)])],
                    line=[("sec_a", [(8, offs["a.c"], offs["x = 1;"], 7 << 10 | 5)])],
                    core=[("sec_b", [(16, 1, offs["0:2"], 0)])], **kw)


def test_hand_made():
    btf, offs = make_btf()
    ext = BTFExt.parse(sample(offs), btf)
    assert ext.func_info == {"sec_a": [FuncInfo(0, 2)], "sec_b": [FuncInfo(0, 3), FuncInfo(64, 2)]}
    assert ext.line_info == {"sec_a": [LineInfo(8, "a.c", "x = 1;", 7, 5)]}
    assert ext.core_relos == {"sec_b": [CoreRelo(16, 1, "0:2", 0)]}


def test_header_without_core_relo_fields():
    btf, offs = make_btf()
    ext = BTFExt.parse(sample(offs, hdr_len=24), btf)
    assert ext.core_relos == {} and ext.core_relo_rec_size == 0
    assert ext.func_info["sec_b"][1] == FuncInfo(64, 2)


def test_larger_records_are_read_for_their_known_prefix():
    btf, offs = make_btf()
    ext = BTFExt.parse(sample(offs, sizes=(12, 24, 20)), btf)
    assert (ext.func_info_rec_size, ext.line_info_rec_size, ext.core_relo_rec_size) == (12, 24, 20)
    assert ext.func_info["sec_b"] == [FuncInfo(0, 3), FuncInfo(64, 2)]
    assert ext.line_info["sec_a"] == [LineInfo(8, "a.c", "x = 1;", 7, 5)]
    assert ext.core_relos["sec_b"] == [CoreRelo(16, 1, "0:2", 0)]


def test_blocks_of_one_section_are_merged_and_empty_sections_allowed():
    btf, offs = make_btf()
    ext = BTFExt.parse(ext_blob(offs, func=[("sec_a", [(0, 2)]), ("sec_a", [(8, 3)])]), btf)
    assert ext.func_info == {"sec_a": [FuncInfo(0, 2), FuncInfo(8, 3)]}
    assert ext.line_info == {} and ext.line_info_rec_size == 0


def test_pack_for_prog_load():
    assert pack_func_info([FuncInfo(16, 7)]) == struct.pack("<II", 2, 7)
    offs = {"a.c": 10, "x": 20}
    assert pack_line_info([LineInfo(8, "a.c", "x", 3, 4)], offs.__getitem__) == \
        struct.pack("<IIII", 1, 10, 20, 3 << 10 | 4)


def corrupt(blob: bytes, offset: int, value: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


FUNC_SEC = 32                     # the func_info section starts right after the header


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b"\x00\x00" + b[2:], "bad .BTF.ext magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unsupported .BTF.ext version"),
    (lambda b: b[:3] + b"\x01" + b[4:], "unsupported .BTF.ext flags"),
    (lambda b: corrupt(b, 4, 16), "bad .BTF.ext header length"),
    (lambda b: corrupt(b, 4, 4096), "bad .BTF.ext header length"),
    (lambda b: corrupt(b, 12, 4096), "out of bounds"),                 # func_info_len
    (lambda b: corrupt(b, 8, 2), "not 4-byte aligned"),                 # func_info_off
    (lambda b: corrupt(b, FUNC_SEC, 4), "record size 4 is invalid"),
    (lambda b: corrupt(b, FUNC_SEC, 10), "record size 10 is invalid"),
    (lambda b: corrupt(b, FUNC_SEC + 4, 9999), "string offset 9999"),   # sec_name_off
    (lambda b: corrupt(b, FUNC_SEC + 8, 0), "has no records"),
    (lambda b: corrupt(b, FUNC_SEC + 8, 1000), "run past the end"),
    (lambda b: corrupt(b, FUNC_SEC + 16, 77), "type id 77 does not exist"),
    (lambda b: corrupt(b, 12, 8), "truncated block header"),
])
def test_malformed(mutate, message):
    btf, offs = make_btf()
    with pytest.raises(ObjectError, match=message) as info:
        BTFExt.parse(mutate(sample(offs)), btf)
    assert info.value.section == ".BTF.ext"


def test_truncated_at_every_byte():
    btf, offs = make_btf()
    blob = sample(offs)
    for cut in range(len(blob)):
        with pytest.raises(ObjectError):
            BTFExt.parse(blob[:cut], btf)
