"""Object parsing without the kernel: the built objects and malformed variants."""
from __future__ import annotations

import io
import struct

import pytest
from elftools.elf.elffile import ELFFile

import pybpf
from pybpf.asm import insn as I
from pybpf import uapi
from pybpf.errors import ObjectError
from pybpf.obj.spec import parse_object
from pybpf.obj.relocate import Linker

from conftest import built

EXEC_OBJECTS = ["exec.bpf.o", "ringbuf-output.bpf.o", "perfbuf-output.bpf.o"]


def test_exec_object_spec():
    obj = pybpf.BPFObject.open(built("exec.bpf.o"))
    assert obj.name == "exec"
    assert obj.license == "Dual BSD/GPL"
    prog = obj.programs["handle_exec"]
    assert prog.section == "tp/sched/sched_process_exec"
    assert prog.type == uapi.BPF_PROG_TYPE_TRACEPOINT
    assert prog.sec_def.attach == "tracepoint"
    assert prog.attach_target == "sched/sched_process_exec"
    rb = obj.maps["rb"]
    assert (rb.type, rb.key_size, rb.value_size, rb.max_entries) == \
        (uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 256 * 1024)
    ro = obj.maps[".rodata"]
    assert ro.type == uapi.BPF_MAP_TYPE_ARRAY and ro.max_entries == 1
    assert ro.flags & uapi.BPF_F_RDONLY_PROG and ro.flags & uapi.BPF_F_MMAPABLE
    assert ro.kernel_name == "exec.rodata"
    assert obj.rodata["target_pid"] == 0
    assert set(obj.rodata) == {"target_pid"}


def test_perfbuf_object_maps():
    obj = pybpf.BPFObject.open(built("perfbuf-output.bpf.o"))
    pb, heap = obj.maps["pb"], obj.maps["heap"]
    assert (pb.type, pb.key_size, pb.value_size, pb.max_entries) == \
        (uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 0)
    assert heap.type == uapi.BPF_MAP_TYPE_PERCPU_ARRAY
    assert (heap.key_size, heap.value_size, heap.max_entries) == (4, 4 + 16 + 512, 1)
    btf = obj.btf
    assert btf.type_name(heap.btf_value_type_id) == "struct event"


def test_configure_before_load():
    obj = pybpf.BPFObject.open(built("exec.bpf.o"))
    obj.rodata["target_pid"] = 1234
    assert obj.rodata["target_pid"] == 1234
    assert obj.rodata.raw("target_pid") == struct.pack("<i", 1234)
    obj.maps["rb"].max_entries = 1 << 20
    assert obj.maps["rb"].max_entries == 1 << 20
    with pytest.raises(KeyError, match="no variable 'nope'"):
        obj.rodata["nope"] = 1
    with pytest.raises(KeyError, match="no map named 'nope'"):
        obj.maps["nope"]


@pytest.mark.parametrize("name", EXEC_OBJECTS)
def test_relocations_resolved_without_kernel(name):
    """Map references become BPF_PSEUDO_MAP_FD with the fd we hand in."""
    spec = parse_object(str(built(name)))
    fds = {m.name: 100 + i for i, m in enumerate(spec.maps)}
    from pybpf.btf import kernel
    linker = Linker(spec, fds, [kernel.vmlinux()])
    linked = linker.link(spec.programs[0])
    pseudo = [(ins.src, ins.imm) for ins in I.iterate(linked.insns)
              if ins.code == I.LD_IMM64 and ins.src]
    assert pseudo, "no map reference was relocated"
    for src, imm in pseudo:
        assert src in (uapi.BPF_PSEUDO_MAP_FD, uapi.BPF_PSEUDO_MAP_VALUE)
        assert imm in fds.values()
    assert linked.func_info and linked.func_info[0][0] == 0
    assert linked.line_info and linked.line_info[0][0] == 0


def test_core_relocation_of_data_loc_filename():
    """ctx->__data_loc_filename is a CO-RE field access: its offset comes from vmlinux."""
    from pybpf.btf import kernel
    spec = parse_object(str(built("exec.bpf.o")))
    vm = kernel.vmlinux()
    sid = vm.find("trace_event_raw_sched_process_exec", uapi.BTF_KIND_STRUCT)[0]
    member = [m for m in vm[sid].members if m.name == "__data_loc_filename"][0]
    linker = Linker(spec, {m.name: 3 for m in spec.maps}, [vm])
    results = [r for rs in linker.core_results.values() for r in rs]
    assert results and not any(r.poisoned for r in results)
    assert member.bit_offset // 8 in {r.new for r in results}


# ------------------------------------------------------------------ malformed variants

def _raw(name: str) -> bytes:
    return built(name).read_bytes()


def _section_offset(raw: bytes, name: str) -> int:
    return ELFFile(io.BytesIO(raw)).get_section_by_name(name)["sh_offset"]


def _patch(raw: bytes, offset: int, data: bytes) -> bytes:
    return raw[:offset] + data + raw[offset + len(data):]


def test_not_elf():
    with pytest.raises(ObjectError, match="not an ELF"):
        pybpf.BPFObject.open(b"hello world, not an object")


def test_missing_file():
    with pytest.raises(ObjectError, match="cannot read"):
        pybpf.BPFObject.open("/nonexistent/x.bpf.o")


@pytest.mark.parametrize("cut", [16, 64, 100, 1000, 2000, 4000, 6000, 7000, 8000])
def test_truncated(cut):
    raw = _raw("exec.bpf.o")
    with pytest.raises(ObjectError):
        pybpf.BPFObject.open(raw[:cut])


def test_truncated_every_section_header_boundary():
    raw = _raw("perfbuf-output.bpf.o")
    for cut in range(0, len(raw), 97):
        try:
            pybpf.BPFObject.open(raw[:cut])
        except ObjectError:
            continue


def test_bad_btf_magic():
    raw = _raw("exec.bpf.o")
    bad = _patch(raw, _section_offset(raw, ".BTF"), b"\x00\x00")
    with pytest.raises(ObjectError) as e:
        pybpf.BPFObject.open(bad)
    assert e.value.section == ".BTF"
    assert "magic" in str(e.value)


@pytest.mark.parametrize("field_offset,value", [(12, 0x7FFFFFF0), (20, 0x10000000)],
                         ids=["type_len", "str_len"])
def test_btf_lengths_past_section(field_offset, value):
    raw = _raw("exec.bpf.o")
    off = _section_offset(raw, ".BTF")
    bad = _patch(raw, off + field_offset, struct.pack("<I", value))
    with pytest.raises(ObjectError) as e:
        pybpf.BPFObject.open(bad)
    assert e.value.section == ".BTF"


def test_bad_symbol_index_in_relocation():
    raw = _raw("perfbuf-output.bpf.o")
    rel_name = ".reltp/sched/sched_process_exec"
    off = _section_offset(raw, rel_name)
    r_offset, r_info = struct.unpack_from("<QQ", raw, off)
    bad = _patch(raw, off + 8, struct.pack("<Q", (9999 << 32) | (r_info & 0xFFFFFFFF)))
    with pytest.raises(ObjectError) as e:
        pybpf.BPFObject.open(bad)
    assert e.value.section == rel_name
    assert "9999" in str(e.value)


def test_relocation_offset_past_section():
    raw = _raw("perfbuf-output.bpf.o")
    off = _section_offset(raw, ".reltp/sched/sched_process_exec")
    bad = _patch(raw, off, struct.pack("<Q", 0x100000))
    with pytest.raises(ObjectError, match="past the end"):
        pybpf.BPFObject.open(bad)


def test_wrong_machine():
    raw = _raw("exec.bpf.o")
    bad = _patch(raw, 18, struct.pack("<H", 62))      # EM_X86_64
    with pytest.raises(ObjectError, match="EM_BPF"):
        pybpf.BPFObject.open(bad)


def test_section_data_past_file():
    raw = _raw("exec.bpf.o")
    elf = ELFFile(io.BytesIO(raw))
    idx = [i for i, s in enumerate(elf.iter_sections()) if s.name == ".maps"][0]
    shdr = elf["e_shoff"] + idx * elf["e_shentsize"]
    bad = _patch(raw, shdr + 24, struct.pack("<Q", len(raw) + 100))   # sh_offset
    with pytest.raises(ObjectError) as e:
        pybpf.BPFObject.open(bad)
    assert e.value.section == ".maps"
