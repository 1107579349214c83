"""What this kernel supports, probed as ``bpftool feature probe`` (libbpf's
libbpf_probe_bpf_*) does: load a minimal program of each type, create a
minimal map of each type, load a program of each type calling each helper and
read the verifier's verdict.  Link types are the kernel's own ``enum
bpf_link_type`` (from its BTF): there is no link probe short of attaching.

Probing all helpers costs a few thousand program loads (seconds), so
:func:`probe` caches its result per boot (``/proc/sys/kernel/random/boot_id``)
in pybpf's cache directory (:mod:`pybpf.cachedir`).
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from typing import Any, Dict, List, Optional

from . import syscall
from .. import cachedir, uapi
from ..btf import BTF
from ..btf import types as T
from ..errors import BPFError, VerifierError

ENOTSUPP = 524          # the kernel's internal "not supported" errno, seen by user space
_MOV_K = uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_K
_EXIT = uapi.BPF_JMP | uapi.BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


_RET0_EXIT = _insn(_MOV_K) + _insn(_EXIT)
#: helpers bpftool leaves out unless asked (they print to the kernel log when probed)
NOISY_HELPERS = frozenset({uapi.BPF_FUNC_trace_printk, uapi.BPF_FUNC_probe_write_user,
                           uapi.BPF_FUNC_trace_vprintk})
_NEEDS_BTF_ID = frozenset({uapi.BPF_PROG_TYPE_TRACING, uapi.BPF_PROG_TYPE_LSM,
                           uapi.BPF_PROG_TYPE_EXT, uapi.BPF_PROG_TYPE_STRUCT_OPS})
_EXPECTED_ATTACH: Dict[int, int] = {
    uapi.BPF_PROG_TYPE_CGROUP_SOCK_ADDR: uapi.BPF_CGROUP_INET4_CONNECT,
    uapi.BPF_PROG_TYPE_CGROUP_SOCKOPT: uapi.BPF_CGROUP_GETSOCKOPT,
    uapi.BPF_PROG_TYPE_SK_LOOKUP: uapi.BPF_SK_LOOKUP,
    uapi.BPF_PROG_TYPE_LIRC_MODE2: uapi.BPF_LIRC_MODE2,
    uapi.BPF_PROG_TYPE_NETFILTER: uapi.BPF_NETFILTER,
}


def _load(prog_type: int, insns: bytes) -> None:
    """Load and close a probe program; raises what the kernel says."""
    kern_version = 0
    if prog_type == uapi.BPF_PROG_TYPE_KPROBE:
        from ..obj.externs import kernel_version_code
        uts = os.uname()
        kern_version = kernel_version_code(uts.release, uts.version)
    fd, _ = syscall.prog_load(
        prog_type, insns, "GPL", expected_attach_type=_EXPECTED_ATTACH.get(prog_type, 0),
        prog_flags=uapi.BPF_F_SLEEPABLE if prog_type == uapi.BPF_PROG_TYPE_SYSCALL else 0,
        kern_version=kern_version)
    fd.close()


def probe_prog_type(prog_type: int) -> bool:
    """Can a program of this type be loaded?  Types that must name a BTF target
    (tracing, lsm, ext, struct_ops) count when the kernel gets as far as asking
    for that target (EINVAL or ENOTSUPP rather than an unknown type)."""
    try:
        _load(prog_type, _RET0_EXIT)
    except BPFError as e:
        if prog_type in _NEEDS_BTF_ID:
            return e.errno == ENOTSUPP
        return False
    return prog_type not in _NEEDS_BTF_ID


def probe_helper(prog_type: int, func_id: int) -> bool:
    """Does the verifier know helper ``func_id`` for this program type?  As libbpf:
    only "invalid func" / "unknown func" in the verifier log mean no; any other
    verdict (even a failed argument check) means the helper exists there.
    Programs that need a BTF target (tracing, lsm, ext, struct_ops) fail before
    the verifier looks at any call: their helpers cannot be probed and count as
    absent (bpftool lists them empty)."""
    if prog_type in _NEEDS_BTF_ID:
        return False
    insns = _insn(uapi.BPF_JMP | uapi.BPF_CALL, imm=func_id) + _insn(_EXIT)
    try:
        _load(prog_type, insns)
    except VerifierError as e:
        return "invalid func " not in e.log and "unknown func " not in e.log
    except BPFError:
        return True
    return True


def _loads(prog_type: int, insns: bytes) -> bool:
    try:
        _load(prog_type, insns)
    except BPFError:
        return False
    return True


BPF_MAXINSNS = 4096
_CACHE_FORMAT = 1       # bump when probe()'s answer changes shape


def probe_misc() -> Dict[str, bool]:
    """bpftool's "misc" probes: programs over 4096 instructions, bounded loops,
    the v2 ISA (JLT/JLE/JSLT/JSLE), the v3 ISA (32-bit jumps)."""
    t = uapi
    large = _insn(_MOV_K, 0, imm=1) * (BPF_MAXINSNS + 1) + _insn(_EXIT)
    loop = (_insn(_MOV_K, 0, imm=10) + _insn(t.BPF_ALU64 | t.BPF_SUB | t.BPF_K, 0, imm=1)
            + _insn(t.BPF_JMP | t.BPF_JNE | t.BPF_K, 0, off=-2, imm=0) + _insn(_EXIT))
    v2 = (_insn(_MOV_K, 0, imm=0) + _insn(t.BPF_JMP | t.BPF_JLT | t.BPF_K, 0, off=1, imm=1)
          + _insn(_MOV_K, 0, imm=1) + _insn(_EXIT))
    v3 = (_insn(_MOV_K, 0, imm=0) + _insn(t.BPF_JMP32 | t.BPF_JLT | t.BPF_K, 0, off=1, imm=1)
          + _insn(_MOV_K, 0, imm=1) + _insn(_EXIT))
    sf = t.BPF_PROG_TYPE_SOCKET_FILTER
    return {"large_insn_limit": _loads(t.BPF_PROG_TYPE_SCHED_CLS, large),
            "bounded_loops": _loads(sf, loop), "v2_isa_extension": _loads(sf, v2),
            "v3_isa_extension": _loads(sf, v3)}


def _local_storage_btf() -> syscall.Fd:
    """BTF for the local-storage map probes: int, struct bpf_spin_lock, struct val."""
    btf = BTF()
    int_id = btf.add(T.Int("int", 4, uapi.BTF_INT_SIGNED, 0, 32))
    lock = btf.add(T.Struct("bpf_spin_lock", 4, [T.Member("val", int_id, 0)]))
    btf.add(T.Struct("val", 8, [T.Member("cnt", int_id, 0), T.Member("l", lock, 32)]))
    return syscall.btf_load(btf.encode())


def probe_map_type(map_type: int) -> bool:
    """Can a map of this type be created (with libbpf's probe geometry)?"""
    key, value, entries, flags = 4, 4, 1, 0
    extra: Dict[str, Any] = {}
    held: List[syscall.Fd] = []
    expect_errno = 0
    t = uapi
    if map_type == t.BPF_MAP_TYPE_STACK_TRACE:
        value = 8
    elif map_type == t.BPF_MAP_TYPE_LPM_TRIE:
        key, value, flags = 8, 8, t.BPF_F_NO_PREALLOC
    elif map_type in (t.BPF_MAP_TYPE_CGROUP_STORAGE, t.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE):
        key, value, entries = 16, 8, 0          # sizeof(struct bpf_cgroup_storage_key)
    elif map_type in (t.BPF_MAP_TYPE_QUEUE, t.BPF_MAP_TYPE_STACK,
                      t.BPF_MAP_TYPE_BLOOM_FILTER):
        key = 0
    elif map_type in (t.BPF_MAP_TYPE_SK_STORAGE, t.BPF_MAP_TYPE_INODE_STORAGE,
                      t.BPF_MAP_TYPE_TASK_STORAGE, t.BPF_MAP_TYPE_CGRP_STORAGE):
        value, entries, flags = 8, 0, t.BPF_F_NO_PREALLOC
        try:
            held.append(_local_storage_btf())
        except BPFError:
            return False
        extra = dict(btf_fd=held[0].fd, btf_key_type_id=1, btf_value_type_id=3)
    elif map_type in (t.BPF_MAP_TYPE_RINGBUF, t.BPF_MAP_TYPE_USER_RINGBUF):
        key, value, entries = 0, 0, mmap.PAGESIZE
    elif map_type == t.BPF_MAP_TYPE_STRUCT_OPS:
        extra = dict(btf_vmlinux_value_type_id=1)   # not a struct_ops type: ENOTSUPP
        expect_errno = ENOTSUPP
    elif map_type == t.BPF_MAP_TYPE_ARENA:
        key, value, entries, flags = 0, 0, 1, t.BPF_F_MMAPABLE
    elif map_type in (t.BPF_MAP_TYPE_ARRAY_OF_MAPS, t.BPF_MAP_TYPE_HASH_OF_MAPS):
        try:
            held.append(syscall.map_create(t.BPF_MAP_TYPE_HASH, 4, 4, 1))
        except BPFError:
            return False
        extra = dict(inner_map_fd=held[0].fd)
    try:
        syscall.map_create(map_type, key, value, entries, flags, **extra).close()
    except BPFError as e:
        return bool(expect_errno) and e.errno == expect_errno
    else:
        return not expect_errno
    finally:
        for fd in held:
            fd.close()


def link_types() -> List[str]:
    """The link types this kernel defines (its BTF's enum bpf_link_type), by name."""
    from ..btf import kernel
    btf = kernel.vmlinux()
    ids = btf.find("bpf_link_type", uapi.BTF_KIND_ENUM)
    if not ids:
        return []
    enum = btf[ids[0]]
    if not isinstance(enum, T.Enum):
        return []
    prefix = "BPF_LINK_TYPE_"
    return [name[len(prefix):].lower() for name, value in enum.values
            if name.startswith(prefix) and value and not name.startswith("MAX_")]


def cache_path() -> Optional[str]:
    """Where :func:`probe` keeps its answer for this boot (None: no boot id, or
    caching off)."""
    boot, root = cachedir.boot_id(), cachedir.directory()
    if boot is None or root is None:
        return None
    return os.path.join(root, f"features-{boot.hex()}.json")


def probe(helpers: bool = True, full: bool = False, use_cache: bool = True
          ) -> Dict[str, Any]:
    """Every program type, map type, helper per supported program type, link type:
    ``{"program_types": {name: bool}, "map_types": {name: bool},
    "helpers": {prog type: [helper names]}, "link_types": [names],
    "misc": {probe: bool}}``.
    ``full`` probes the helpers that write to the kernel log too."""
    path = cache_path() if use_cache else None
    key = f"v{_CACHE_FORMAT} helpers={int(helpers)} full={int(full)}"
    if path is not None:
        try:
            with open(path) as f:
                cached = json.load(f)
            if key in cached:
                answer: Dict[str, Any] = cached[key]
                return answer
        except (OSError, ValueError):
            cached = {}
    else:
        cached = {}
    prog_types = uapi.enum_members(uapi.bpf_prog_type)
    progs = {name[len("BPF_PROG_TYPE_"):].lower(): probe_prog_type(t)
             for name, t in prog_types.items() if t != uapi.BPF_PROG_TYPE_UNSPEC}
    maps = {name[len("BPF_MAP_TYPE_"):].lower(): probe_map_type(t)
            for name, t in uapi.enum_members(uapi.bpf_map_type).items()
            if t != uapi.BPF_MAP_TYPE_UNSPEC}
    result: Dict[str, Any] = {"program_types": progs, "map_types": maps,
                              "link_types": link_types(), "misc": probe_misc()}
    if helpers:
        table: Dict[str, List[str]] = {}
        for name, t in prog_types.items():
            name = name[len("BPF_PROG_TYPE_"):].lower()
            if not progs.get(name):
                continue
            table[name] = [f"bpf_{uapi.func_name(f)}" for f in range(1, uapi.__BPF_FUNC_MAX_ID)
                           if uapi.func_name(f) and (full or f not in NOISY_HELPERS)
                           and probe_helper(t, f)]
        result["helpers"] = table
    if path is not None:
        cached[key] = result
        cachedir.write(path, json.dumps(cached).encode())   # a read-only home: probe again
    return result

