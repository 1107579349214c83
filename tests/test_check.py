"""Relocating without a kernel (pybpf.obj.offline, BPFObject.relocate) and
``python -m pybpf check``: no root, against kernel BTF files these tests write
with pybpf's own encoder (a struct's fields renamed, moved, resized, missing;
enum values changed or lacking signedness; tracepoints, functions, kfuncs
missing), and against this machine's /sys/kernel/btf/vmlinux."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

import pytest

from conftest import built
from pybpf import BPFObject
from pybpf.asm import insn as I
from pybpf import uapi
from pybpf.btf import BTF, core
from pybpf.btf import types as T
from pybpf.obj.check import check, reachable
from pybpf.cli.check import render
from pybpf import errors as pybpf_errors
from pybpf.errors import ObjectError
from pybpf.obj.spec import parse_object

VMLINUX = "/sys/kernel/btf/vmlinux"
OBJ = "core_check.bpf.o"
SIGNED = uapi.BTF_INT_SIGNED
Field = Tuple[str, str, int]          # (name, type: "int" "uint" "u16" "s64", byte offset)
BASE: List[Field] = [("pid", "int", 0), ("flags", "uint", 4), ("stamp", "s64", 8),
                     ("only_in_first", "int", 16), ("optional", "int", 20)]


def kernel_btf(structs: Optional[List[List[Field]]] = None,
               enum: Optional[List[Tuple[str, int]]] = None, enum_signed: bool = True,
               tracepoints: Tuple[str, ...] = ("sched_process_exec", "sched_switch"),
               funcs: Tuple[str, ...] = ()) -> BTF:
    """A kernel BTF with our struct (one per entry of ``structs``), our enum,
    the btf_trace_* typedefs of ``tracepoints`` and FUNCs ``funcs``."""
    btf = BTF()
    ints = {"int": btf.add(T.Int("int", 4, SIGNED, 0, 32)),
            "uint": btf.add(T.Int("unsigned int", 4, 0, 0, 32)),
            "u16": btf.add(T.Int("unsigned short", 2, 0, 0, 16)),
            "s64": btf.add(T.Int("long long", 8, SIGNED, 0, 64)),
            "u64": btf.add(T.Int("unsigned long long", 8, 0, 0, 64))}
    for fields in [BASE] if structs is None else structs:
        size = max(off + btf.size_of(ints[t]) for _, t, off in fields) if fields else 0
        btf.add(T.Struct("pybpf_chk", -(-size // 8) * 8,
                         [T.Member(n, ints[t], off * 8) for n, t, off in fields]))
    if enum is not False:
        btf.add(T.Enum("pybpf_chk_state", 4,
                       enum if enum is not None else [("PYBPF_CHK_ERR", -4095),
                                                      ("PYBPF_CHK_OK", 7)], enum_signed))
    proto = btf.add(T.FuncProto("", ints["int"], [T.Param("", ints["u64"])]))
    ptr = btf.add(T.Pointer("", proto))
    for tp in tracepoints:
        btf.add(T.Typedef("btf_trace_" + tp, ptr))
    for name in funcs:
        btf.add(T.Func(name, proto, uapi.BTF_FUNC_GLOBAL))
    return btf


def write(tmp_path, name: str, btf: BTF, layout: bool = False) -> str:
    path = tmp_path / name
    path.write_bytes(btf.encode(layout=layout))
    return str(path)


def results(rel, prog: str) -> Dict[str, core.Result]:
    """access expression -> result, for one program (first of each)."""
    out: Dict[str, core.Result] = {}
    for c in rel.programs[prog].core:
        out.setdefault(f"{c.result.kind_name} {c.result.access}", c.result)
    return out


def slot_value(insns: bytes, slot: int) -> int:
    ins = I.decode(insns, slot)
    if ins.code == I.LD_IMM64:
        return I.imm64(insns, slot)
    if ins.cls in (uapi.BPF_LDX, uapi.BPF_ST, uapi.BPF_STX):
        return ins.off
    return ins.imm & (2 ** 64 - 1)


# ------------------------------------------------------------------ relocate without a kernel

def test_relocate_against_a_written_btf_file_patches_every_offset(tmp_path, monkeypatch):
    moved = [("pid", "int", 24), ("flags", "u16", 4), ("stamp", "s64", 8),
             ("only_in_first", "int", 16), ("optional", "int", 40)]
    path = write(tmp_path, "moved.btf", kernel_btf([moved]))
    import pybpf.kernel.syscall as sc

    def no_syscalls(*a, **k):
        raise AssertionError("relocating without a kernel made a bpf() syscall")
    monkeypatch.setattr(sc, "bpf", no_syscalls)
    with BPFObject.open(built(OBJ), btf_custom_path=path) as obj:
        rel = obj.relocate()
    assert rel.target == path
    res = results(rel, "chk_fields")
    assert (res["byte_off struct pybpf_chk.pid"].orig, res["byte_off struct pybpf_chk.pid"].new) \
        == (0, 24)
    assert res["byte_off struct pybpf_chk.flags"].new == 4          # resized: same offset
    assert res["byte_off struct pybpf_chk.stamp"].new == 8
    assert not any(r.poisoned for r in res.values())
    prog = rel.programs["chk_fields"]
    for c in prog.core:             # the relocated code holds the new values
        assert slot_value(prog.insns, c.slot) == c.result.new
        assert c.line is not None and c.line.file_name.endswith("core_check.bpf.c")
    assert results(rel, "chk_guarded")["byte_off struct pybpf_chk.optional"].new == 40
    assert len(prog.insns) % 8 == 0 and len(prog.insns) >= 8 * 10


def test_relocate_default_target_and_sequence(tmp_path):
    a = write(tmp_path, "a.btf", kernel_btf())
    obj = parse_object(built(OBJ))
    from pybpf.obj.offline import relocate
    rel = relocate(obj, [a], programs=["chk_guarded"])
    assert list(rel.programs) == ["chk_guarded"]
    with pytest.raises(ObjectError, match="cannot read kernel BTF"):
        relocate(obj, str(tmp_path / "missing.btf"))


def test_enum_values_are_sign_extended_as_libbpf(tmp_path):
    """BTF from before signed enums (no kind_flag) holds -4095 as 0xfffff001:
    libbpf widens the __s32, so the patched 64-bit value is (u64)-4095."""
    old = write(tmp_path, "old.btf", kernel_btf(enum=[("PYBPF_CHK_ERR", 0xFFFFF001),
                                                      ("PYBPF_CHK_OK", 9)], enum_signed=False))
    rel = BPFObject.open(built(OBJ)).relocate(old)
    err = results(rel, "chk_fields")["enumval_value enum pybpf_chk_state::PYBPF_CHK_ERR"]
    assert err.new == 2 ** 64 - 4095
    assert results(rel, "chk_guarded")["enumval_value enum pybpf_chk_state::PYBPF_CHK_OK"].new \
        == 9


def test_enum_sign_extension_against_alu_immediates():
    """A 32-bit ALU64 immediate takes the sign-extended value (it would not hold
    the zero-extended 0xfffff001); ld_imm64 gets all 64 bits."""
    from test_core import Types, ld_imm64, mov, relo, run, EXIT
    loc = Types()
    le = loc.add(T.Enum("st", 4, [("E", -4095)], signed=True))
    tgt = Types()
    tgt.add(T.Enum("st", 4, [("E", 0xFFFFF001)], signed=False))
    buf, res = run(loc.btf, [tgt.btf], mov(-4095) + ld_imm64(-4095) + EXIT,
                   [relo(0, le, "0", K_ENUMVAL), relo(1, le, "0", K_ENUMVAL)])
    assert I.decode(buf, 0).imm == -4095
    assert I.imm64(buf, 1) == 2 ** 64 - 4095
    assert res[0].new == res[1].new == 2 ** 64 - 4095
    # the immediate is checked as libbpf does: the s32 widened to 64 bits
    l64 = loc.add(T.Enum64("st64", 8, [("H", 0x8000_0000)]))
    tgt.add(T.Enum64("st64", 8, [("H", 5)]))
    with pytest.raises(ObjectError, match="holds -2147483648, expected 2147483648"):
        run(loc.btf, [tgt.btf], mov(-2 ** 31) + EXIT, [relo(0, l64, "0", K_ENUMVAL)])


K_ENUMVAL = uapi.bpf_core_relo_kind.BPF_CORE_ENUMVAL_VALUE


def test_candidate_cache_is_per_object(tmp_path):
    """Two different struct pybpf_chk in the target: chk_fields reads
    only_in_first, which only the first has, so that is the one; chk_guarded
    (another section) then reads pid from it, as libbpf's per-object cache
    does.  Relocated alone (a per-section cache), pid is ambiguous."""
    first = BASE
    second = [("pid", "int", 8), ("flags", "uint", 4), ("stamp", "s64", 16),
              ("optional", "int", 0)]
    path = write(tmp_path, "two.btf", kernel_btf([first, second]))
    rel = BPFObject.open(built(OBJ)).relocate(path)
    pid = results(rel, "chk_guarded")["byte_off struct pybpf_chk.pid"]
    assert pid.new == 0 and pid.target.startswith("[6] struct pybpf_chk.pid")
    spec = parse_object(built(OBJ))
    sec = "raw_tp/sched_switch"
    code = bytearray(spec.elf.section(sec).data)
    with pytest.raises(ObjectError, match="ambiguous"):
        core.relocate(code, spec.ext.core_relos[sec], spec.btf, [BTF.parse(open(path, "rb")
                                                                           .read())])


# ------------------------------------------------------------------ check

def verdicts(targets) -> Dict[Tuple[int, str], str]:
    return {(n, p.name): p.verdict for n, t in enumerate(targets) for p in t.programs}


def test_check_variants(tmp_path):
    spec = parse_object(built(OBJ))
    renamed = [("tgid" if n == "pid" else n, t, o) for n, t, o in BASE]
    no_optional = [f for f in BASE if f[0] != "optional"]
    no_first = [f for f in BASE if f[0] != "only_in_first"]
    files = [write(tmp_path, "ok.btf", kernel_btf()),
             write(tmp_path, "renamed.btf", kernel_btf([renamed])),
             write(tmp_path, "no_optional.btf", kernel_btf([no_optional],
                                                          enum=[("PYBPF_CHK_ERR", -4095)])),
             write(tmp_path, "no_first.btf", kernel_btf([no_first])),
             write(tmp_path, "no_tp.btf", kernel_btf(tracepoints=("sched_switch",))),
             write(tmp_path, "no_enum.btf", kernel_btf(enum=False))]
    out = check(spec, files)
    v = verdicts(out)
    assert v[(0, "chk_fields")] == v[(0, "chk_guarded")] == "ok"
    assert out[0].ok
    # renamed: both unguarded pid reads are poisoned and reached, at their source line
    assert v[(1, "chk_fields")].startswith("fails: CO-RE relocation #1 <byte_off> "
                                           "struct pybpf_chk.pid poisoned at ")
    assert "core_check.bpf.c:" in v[(1, "chk_fields")]
    assert "has no field 'pid'" in v[(1, "chk_fields")]
    assert v[(1, "chk_guarded")].startswith("fails:")
    # guarded field / enum value missing: poisoned, unreachable, ok
    assert v[(2, "chk_guarded")] == "ok"
    guarded = out[2].programs[1]
    poisoned = [c for c in guarded.relocation.core if c.result.poisoned]
    assert len(poisoned) == 2 and {c.slot for c in poisoned} == guarded.unreachable
    assert v[(3, "chk_fields")].count("poisoned") == 1 and "only_in_first" in v[(3, "chk_fields")]
    assert v[(3, "chk_guarded")] == "ok"
    # tracepoint type missing
    assert v[(4, "chk_fields")] == ("fails: tracepoint sched/sched_process_exec: "
                                    "btf_trace_sched_process_exec / "
                                    "trace_event_raw_sched_process_exec missing from this "
                                    "kernel")
    assert v[(4, "chk_guarded")] == "ok"
    # the enum gone: unguarded value poisoned, guarded one pruned
    assert "enum pybpf_chk_state::PYBPF_CHK_ERR poisoned" in v[(5, "chk_fields")]
    assert v[(5, "chk_guarded")] == "ok"
    text = render(out)
    assert "relo #1 <field_exists> struct pybpf_chk.optional: 1 -> 0" in text
    assert "poisoned, unreachable" in text and "POISONED" in text


def test_check_fentry_lsm_and_kfuncs_against_a_kernel_without_them(tmp_path):
    bare = write(tmp_path, "bare.btf", kernel_btf(funcs=("do_nanosleep",)))
    out = check(parse_object(built("attach_btf.bpf.o")), [bare])
    v = verdicts(out)
    assert v[(0, "on_nanosleep_entry")] == "ok"
    assert v[(0, "on_file_open")] == ("fails: LSM hook 'file_open': bpf_lsm_file_open "
                                      "missing from this kernel")
    ks = check(parse_object(built("extern_ksyms.bpf.o")), [bare])[0]
    kf = next(p for p in ks.programs if p.name == "kfuncs")
    assert not kf.ok
    status = {name: s for name, _, s in kf.externs}
    assert status["bpf_task_acquire"] == "missing"
    assert status["bpf_pybpf_no_such_kfunc"] == "absent (__weak)"
    assert "kfunc 'bpf_task_acquire' missing" in kf.verdict
    typed = next(p for p in ks.programs if p.name == "typed_ksym")
    assert "ksym 'runqueues' missing" in typed.verdict


def test_check_against_the_real_vmlinux_and_a_written_one(tmp_path):
    if not os.path.exists(VMLINUX):
        pytest.skip("kernel feature missing: CONFIG_DEBUG_INFO_BTF")
    mine = write(tmp_path, "mine.btf", kernel_btf(), layout=True)      # a 7.1-style header
    out = check(parse_object(built("exec.bpf.o")), [VMLINUX, mine])
    assert out[0].ok and out[0].programs[0].verdict == "ok"
    assert "trace_event_raw_sched_process_exec" in out[1].programs[0].verdict
    ks = check(parse_object(built("extern_ksyms.bpf.o")), [VMLINUX])[0]
    assert {n: s for n, _, s in next(p for p in ks.programs if p.name == "kfuncs").externs}[
        "bpf_task_acquire"] == "found"
    mine_out = check(parse_object(built(OBJ)), [VMLINUX, mine])
    assert not mine_out[0].ok and mine_out[1].ok


def test_check_command_exit_status_and_json(tmp_path):
    ok = write(tmp_path, "ok.btf", kernel_btf())
    bad = write(tmp_path, "bad.btf", kernel_btf(tracepoints=()))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    run = [sys.executable, "-m", "pybpf", "check", built(OBJ), "--btf"]
    p = subprocess.run(run + [ok], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "chk_fields SEC('tp/sched/sched_process_exec'): ok" in p.stdout
    p = subprocess.run(run + [ok, bad, "--json"], capture_output=True, text=True, env=env)
    assert p.returncode == 1
    data = json.loads(p.stdout)
    assert [t["ok"] for t in data] == [True, False]
    fields = data[0]["programs"][0]
    assert fields["name"] == "chk_fields" and fields["verdict"] == "ok"
    pid = next(r for r in fields["relocations"] if r["access"] == "struct pybpf_chk.pid")
    assert (pid["kind"], pid["old"], pid["new"], pid["poisoned"]) == ("byte_off", 0, 0, False)
    assert pid["local"].startswith("[") and "struct pybpf_chk.pid (0:0 @ offset 0)" in pid["local"]
    assert data[1]["programs"][1]["verdict"].startswith("fails: raw tracepoint sched_switch")
    garbage = tmp_path / "garbage.btf"
    garbage.write_bytes(b"\x9f\xeb\x01\x00" + bytes(4))
    p = subprocess.run(run + [str(garbage)], capture_output=True, text=True, env=env)
    assert p.returncode == 1 and "cannot relocate" in p.stdout


def test_inspect_shows_relocated_code(tmp_path):
    moved = [("pid", "int", 28)] + BASE[1:]
    path = write(tmp_path, "moved.btf", kernel_btf([moved]))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    p = subprocess.run([sys.executable, "-m", "pybpf", "inspect", built(OBJ), "--btf", path],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert f"code relocated for {path}:" in p.stdout
    line = next(ln for ln in p.stdout.splitlines()
                if "struct pybpf_chk.pid" in ln and "; relo" in ln)
    assert line.split(";")[0].rstrip().endswith("= 28")
    assert ": 0 -> 28 via" in line
    p = subprocess.run([sys.executable, "-m", "pybpf", "inspect", built(OBJ), "--btf", path,
                        "--json"], capture_output=True, text=True, env=env)
    data = json.loads(p.stdout)["relocated"]
    assert data["target"] == path
    core_pid = [c for c in data["programs"]["chk_fields"]["core"]
                if "struct pybpf_chk.pid" in c["result"]]
    assert core_pid and ": 0 -> 28" in core_pid[0]["result"]


# ------------------------------------------------------------------ reachability

def _j(op: int, dst: int, imm: int, off: int) -> bytes:
    return I.Insn(uapi.BPF_JMP | op | uapi.BPF_K, dst, 0, off, imm).encode()


def test_reachable_prunes_constant_branches():
    mov = lambda imm, dst=1: I.Insn(uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_K, dst, 0, 0,
                                    imm).encode()
    poison = I.Insn(I.CALL, 0, 0, 0, core.POISON_IMM).encode()
    exit_ = I.Insn(I.EXIT, 0, 0, 0, 0).encode()
    code = (mov(0) + _j(uapi.BPF_JEQ, 1, 0, 1) + poison      # 0..2: skipped
            + mov(5, 2) + _j(uapi.BPF_JSGT, 2, -1, 1) + poison   # 3..5: 5 > -1 signed: skip
            + _j(uapi.BPF_JGT, 3, 0, 1) + poison                 # 6..7: r3 unknown
            + exit_)
    live = reachable(code)
    assert 2 not in live and 5 not in live and 7 in live and 8 in live
    call = I.Insn(I.CALL, 0, 0, 0, 1).encode()
    code = mov(0) + call + _j(uapi.BPF_JEQ, 1, 0, 1) + poison + exit_   # r1 clobbered
    assert 3 in reachable(code)


def test_reachable_walks_registers_past_r10():
    # the 4-bit fields name r11-r15, which the verifier refuses; the walk still ends
    r15 = 15
    exit_ = I.Insn(I.EXIT, 0, 0, 0, 0).encode()
    poison = I.Insn(I.CALL, 0, 0, 0, core.POISON_IMM).encode()
    ld = I.Insn(I.LD_IMM64, r15, 0, 0, 7).encode() + I.Insn(0, 0, 0, 0, 0).encode()
    mov_x = I.Insn(uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_X, 14, r15, 0, 0).encode()
    fetch = I.Insn(uapi.BPF_STX | uapi.BPF_DW | uapi.BPF_ATOMIC, 10, 13, -8,
                   uapi.BPF_ADD | uapi.BPF_FETCH).encode()
    code = (ld + mov_x + fetch + _j(uapi.BPF_JEQ, 14, 7, 1) + poison   # r14 = r15 = 7
            + _j(uapi.BPF_JEQ, 13, 0, 1) + poison + exit_)             # r13 fetched
    assert reachable(code) == {0, 2, 3, 4, 6, 7, 8}


def test_check_kconfig_externs_need_the_targets_kconfig(tmp_path):
    spec = parse_object(built("extern_kconfig.bpf.o"))
    bare = write(tmp_path, "bare.btf", kernel_btf())
    prog = check(spec, [bare])[0].programs[0]           # no Kconfig, no version given
    status = {n: s for n, _, s in prog.externs}
    assert status["CONFIG_HZ"] == status["LINUX_KERNEL_VERSION"] == "unknown"
    assert prog.verdict == "ok"
    assert any("kconfig 'CONFIG_HZ' unknown" in f.message for f in prog.findings)
    assert status["CONFIG_PHYSICAL_START"].startswith("set")          # __weak
    from pybpf.obj.externs import kernel_version_code
    prog = check(spec, [bare], "CONFIG_HZ=100\n", kernel_version_code("5.10.1"))[0].programs[0]
    status = {n: s for n, _, s in prog.externs}
    assert status["CONFIG_BPF_JIT"] == "missing" and status["CONFIG_HZ"].startswith("set")
    assert "kconfig 'CONFIG_BPF_JIT' missing" in prog.verdict
    kconfig = "CONFIG_HZ=250\nCONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\n"
    prog = check(spec, [bare], kconfig, kernel_version_code("5.10.1"))[0].programs[0]
    assert prog.verdict == "ok"
    # the values land in the .kconfig image the relocated code reads
    rel = BPFObject.open(built("extern_kconfig.bpf.o"))
    from pybpf.obj.offline import relocate
    res = relocate(rel.spec, bare, kconfig=kconfig, kernel_version=kernel_version_code("5.10.1"))
    hz = next(e for e in rel.spec.externs if e.name == "CONFIG_HZ")
    assert int.from_bytes(res.externs.kconfig[hz.offset:hz.offset + 4], "little") == 250
    with pytest.raises(ObjectError, match="LINUX_KERNEL_VERSION.*kernel_version="):
        relocate(rel.spec, bare)
    with pytest.raises(ObjectError, match="CONFIG_BPF_SYSCALL.*not found in the kernel.s Kconfig"):
        relocate(rel.spec, bare, kernel_version=kernel_version_code("5.10.1"))


def test_kernel_btf_from_elf_files_and_bad_files(tmp_path):
    from pybpf.obj.offline import load_btf
    btf = load_btf(built("exec.bpf.o"))             # any ELF with a .BTF section
    assert btf.find("trace_event_raw_sched_process_exec", uapi.BTF_KIND_STRUCT)
    with pytest.raises(ObjectError, match="ELF file without a .BTF section"):
        load_btf(os.path.realpath(sys.executable))   # an x86-64 (or other) ELF, no BTF
    broken = tmp_path / "broken.elf"
    broken.write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(ObjectError, match="broken.elf"):
        load_btf(str(broken))
    fifo = tmp_path / f"btf_fifo{os.getpid()}"      # refused before an open that would wait
    os.mkfifo(fifo)
    with pytest.raises(ObjectError, match=f"^cannot read kernel BTF {fifo}: not a regular "
                                          r"file \(a FIFO\)$"):
        load_btf(str(fifo))


@pytest.mark.parametrize("attack, message", [
    ("compressed", r"\.BTF is compressed \(SHF_COMPRESSED\) \(section \.BTF\)"),
    (".strtab", "malformed ELF file: an offset in its headers is out of range"),
    (".BTF", "malformed ELF file: an offset in its headers is out of range")])
def test_kernel_btf_elf_files_with_lying_headers(tmp_path, attack, message):
    """A compressed .BTF claiming 1 TiB inflated is refused before pyelftools inflates
    it (libbpf reads .BTF raw); offsets past what BytesIO seeks are ObjectErrors."""
    import struct
    import zlib
    from hostile import replace_section, set_shdr, shdr
    from pybpf.obj.offline import load_btf
    raw = built("exec.bpf.o").read_bytes()
    if attack == "compressed":
        raw = replace_section(raw, ".BTF", struct.pack("<IIQQ", 1, 0, 1 << 40, 8)
                              + zlib.compress(bytes(1 << 20)))
        raw = set_shdr(raw, ".BTF", sh_flags=shdr(raw, ".BTF")["sh_flags"] | 0x800)
    else:
        raw = set_shdr(raw, attack, sh_offset=(1 << 64) - 8)
    path = tmp_path / "vmlinux"
    path.write_bytes(raw)
    with pytest.raises(ObjectError, match=message):
        load_btf(str(path))


def test_btf_custom_path_is_used_by_load(kernel, tmp_path):
    """libbpf's btf_custom_path: load() relocates CO-RE against that file."""
    with BPFObject.open(built("exec.bpf.o"), btf_custom_path=VMLINUX) as obj:
        assert obj.relocate().target == VMLINUX
        obj.load()
        assert obj.programs["handle_exec"].fd > 0
    moved = write(tmp_path, "no_exec_tp.btf", kernel_btf())
    with BPFObject.open(built("exec.bpf.o"), btf_custom_path=moved) as obj:
        with pytest.raises(pybpf_errors.VerifierError, match="trace_event_raw_sched_process_exec"):
            obj.load()


# what check cannot know from BTF: (object, program) -> why
_NOT_FROM_BTF = {
    ("attach_btf.bpf.o", "replace_decide"): "freplace: its target program is given at load",
    ("extern_ksyms.bpf.o", "typed_ksym"): "typed ksym VAR addresses need CONFIG_KALLSYMS_ALL",
    ("loader_maps.bpf.o", "entry"): "prog-array initial values need the other program loaded",
    ("loader_autoload.bpf.o", "never_valid"): "written to fail the verifier, which BTF cannot tell",
}


def test_check_verdicts_agree_with_real_loads(kernel):
    """Each program of every built object, alone: check's verdict against this
    kernel's BTF says what loading it here does (trampoline programs, which
    this kernel refuses with EPERM, aside)."""
    import glob
    import warnings
    from pybpf.errors import BPFError, BPFPermissionError
    compared = fails = 0
    for path in sorted(glob.glob(os.path.join(os.path.dirname(built(OBJ)), "*.bpf.o"))):
        try:
            spec = parse_object(path)
        except ObjectError:          # malformed on purpose: open() refuses it too
            with pytest.raises(ObjectError):
                BPFObject.open(path)
            continue
        target = check(spec, [VMLINUX])[0]
        assert not target.error, (path, target.error)
        for prog in target.programs:
            if (os.path.basename(path), prog.name) in _NOT_FROM_BTF:
                continue
            with warnings.catch_warnings(), BPFObject.open(path) as obj:
                warnings.simplefilter("ignore")
                for other in obj.programs.values():
                    other.autoload = other.name == prog.name
                try:
                    obj.load()
                    loaded = True
                except BPFPermissionError:
                    continue
                except BPFError:
                    loaded = False
            assert loaded == prog.ok, (path, prog.name, prog.verdict)
            compared += 1
            fails += not loaded
    assert compared >= 30 and fails >= 3


def test_syscall_tracepoints_and_virtual_externs_from_btf(tmp_path):
    spec = parse_object(built("loader_subprogs.bpf.o"))
    prog = next(p for p in spec.programs if p.section == "tp/syscalls/sys_enter_getppid")
    for funcs, ok in ((("__do_sys_getppid",), True), (("__x64_sys_getppid",), True),
                      ((), False)):
        path = write(tmp_path, f"sys{len(funcs)}{ok}.btf", kernel_btf(funcs=funcs))
        found = next(p for p in check(spec, [path])[0].programs if p.name == prog.name)
        assert found.ok is ok, found.verdict
        assert "syscall 'getppid'" in found.attach
    from pybpf.obj.externs import kernel_version_code
    from pybpf.obj.offline import relocate
    kc = parse_object(built("extern_kconfig.bpf.o"))
    text = "CONFIG_HZ=250\nCONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\n"
    at = {e.name: e.offset for e in kc.externs}
    bare = write(tmp_path, "bare.btf", kernel_btf())
    image = relocate(kc, bare, kconfig=text, kernel_version=kernel_version_code("5.4.2"))\
        .externs.kconfig
    assert image[at["LINUX_HAS_BPF_COOKIE"]] == image[at["LINUX_HAS_SYSCALL_WRAPPER"]] == 0
    assert int.from_bytes(image[at["LINUX_KERNEL_VERSION"]:at["LINUX_KERNEL_VERSION"] + 4],
                          "little") == (5 << 16) + (4 << 8) + 2
    if os.path.exists(VMLINUX):
        image = relocate(kc, VMLINUX, kconfig=text, kernel_version=1).externs.kconfig
        assert image[at["LINUX_HAS_BPF_COOKIE"]] == image[at["LINUX_HAS_SYSCALL_WRAPPER"]] == 1
