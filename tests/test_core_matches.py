"""CO-RE kinds clang 14 cannot emit, from bpf/core_matches.bpf.c (built with clang-16):
TYPE_MATCHES on structs and enums, ENUMVAL_EXISTS / ENUMVAL_VALUE on a local ENUM64."""
from __future__ import annotations

import os

import pybpf
from pybpf import uapi
from pybpf.obj.spec import parse_object
from pybpf.obj.relocate import Linker

from conftest import built, require_kernel

K = uapi.bpf_core_relo_kind


def _kernel_enum_value(enum: str, name: str) -> int:
    from pybpf.btf import kernel
    vm = kernel.vmlinux()
    t = vm[vm.find(enum)[0]]
    return dict(t.values)[name]


def test_relocations_without_the_kernel():
    """The relocation results, computed purely against the vmlinux BTF."""
    spec = parse_object(str(built("core_matches.bpf.o")))
    linker = Linker(spec, {m.name: 3 for m in spec.maps})
    results = [r for rs in linker.core_results.values() for r in rs]
    by_kind = {}
    for r in results:
        by_kind.setdefault(r.kind, []).append((r.type_name, r.new))
    assert sorted(by_kind[K.BPF_CORE_TYPE_MATCHES]) == [
        ("enum pid_type___bad", 0), ("enum pid_type___ok", 1),
        ("struct task_struct___bad_member", 0), ("struct task_struct___bad_size", 0),
        ("struct task_struct___ok", 1)]
    assert sorted(v for _, v in by_kind[K.BPF_CORE_ENUMVAL_EXISTS]) == [0, 1]
    # a 64-bit value: patched into an ld_imm64, not a 32-bit immediate
    assert by_kind[K.BPF_CORE_ENUMVAL_VALUE] == [
        ("enum blake2b_iv___local", _kernel_enum_value("blake2b_iv", "BLAKE2B_IV1"))]
    assert not any(r.poisoned for r in results)


def test_results_in_the_kernel():
    require_kernel()
    with pybpf.BPFObject.open(built("core_matches.bpf.o")) as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.load()
        obj.attach()
        os.getppid()
        bss = dict(obj.bss.items())
    assert bss["hits"] >= 1
    assert (bss["matches_ok"], bss["matches_bad_size"], bss["matches_bad_member"]) == (1, 0, 0)
    assert (bss["enum_matches_ok"], bss["enum_matches_bad"]) == (1, 0)
    assert (bss["iv1_exists"], bss["nope_exists"]) == (1, 0)
    assert bss["iv1_value"] == _kernel_enum_value("blake2b_iv", "BLAKE2B_IV1") > 1 << 32
