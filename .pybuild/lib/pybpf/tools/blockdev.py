"""Block devices for biolatency and biosnoop: kernel dev_t <-> names (through
/sys/dev/block), and request operation + flags as bcc's rwbs letters, with the
flag bits read from the running kernel's BTF (enum req_op, enum req_flag_bits)."""
from __future__ import annotations

import functools
import os
from typing import Dict, Tuple

from ..errors import BPFError

MINORBITS = 20


def kernel_dev(major: int, minor: int) -> int:
    """The kernel's internal dev_t (MAJOR << 20 | MINOR), as BPF reads it."""
    return (major << MINORBITS) | minor


def split_dev(dev: int) -> Tuple[int, int]:
    """(major, minor) of a kernel dev_t."""
    return dev >> MINORBITS, dev & ((1 << MINORBITS) - 1)


def dev_of(name: str) -> int:
    """The kernel dev_t of a block device given as ``loop0``, ``/dev/loop0`` or
    ``7:0``."""
    if ":" in name:
        major, _, minor = name.partition(":")
        if major.isdigit() and minor.isdigit():
            return kernel_dev(int(major), int(minor))
    path = name if name.startswith("/") else os.path.join("/dev", name)
    try:
        rdev = os.stat(path).st_rdev
    except OSError as e:
        raise BPFError(f"block device {name!r}: {e.strerror}") from None
    return kernel_dev(os.major(rdev), os.minor(rdev))


def dev_name(dev: int) -> str:
    """``loop0`` for a kernel dev_t (``MAJ:MIN`` when /sys does not know it)."""
    major, minor = split_dev(dev)
    try:
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return f"{major}:{minor}"


@functools.lru_cache(maxsize=1)
def _request_bits() -> Tuple[Dict[int, str], Dict[str, int], int]:
    """(op number -> name, flag name -> bit, op mask) from vmlinux BTF."""
    from ..btf import kernel, types as T
    ops: Dict[int, str] = {}
    bits: Dict[str, int] = {}
    try:
        btf = kernel.vmlinux()
        for type_id in btf.find("req_op"):
            t = btf[type_id]
            if isinstance(t, T.Enum):
                ops = {v: n[len("REQ_OP_"):] for n, v in t.values if n.startswith("REQ_OP_")}
        for type_id in btf.find("req_flag_bits"):
            t = btf[type_id]
            if isinstance(t, T.Enum):
                bits = {n[len("__REQ_"):]: v for n, v in t.values if n.startswith("__REQ_")}
    except (BPFError, OSError):
        pass
    if not ops:
        ops = {0: "READ", 1: "WRITE", 2: "FLUSH", 3: "DISCARD"}
    op_bits = bits.get("FAILFAST_DEV", 8)        # the first flag bit follows the op bits
    return ops, bits, (1 << op_bits) - 1


def op_name(cmd_flags: int) -> str:
    """The request operation: READ, WRITE, FLUSH, DISCARD, ..."""
    ops, _, mask = _request_bits()
    return ops.get(cmd_flags & mask, str(cmd_flags & mask))


def rwbs(cmd_flags: int) -> str:
    """bcc's letters: F (preflush), W/R/D/E/N, F (FUA), S (sync), M (meta)."""
    ops, bits, mask = _request_bits()
    op = ops.get(cmd_flags & mask, "")

    def has(flag: str) -> bool:
        return flag in bits and bool(cmd_flags >> bits[flag] & 1)
    out = "F" if has("PREFLUSH") else ""
    out += {"WRITE": "W", "READ": "R", "DISCARD": "D", "SECURE_ERASE": "E",
            "WRITE_ZEROES": "Z", "FLUSH": "F" if not out else ""}.get(op, "N")
    if has("FUA"):
        out += "F"
    if has("SYNC"):
        out += "S"
    if has("META"):
        out += "M"
    return out
