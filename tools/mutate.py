#!/usr/bin/env python3
"""Mutation testing for pybpf's core modules: do the tests catch planted bugs?

Each mutant is one small, seeded change to one module (a flipped comparison, an
off-by-one constant or slice bound, a removed statement, a swapped struct format,
an early return, and the extra operators below).  A mutant is run against the tests
that execute the mutated line (found once by tracing the suite, cached per test
file), fastest first, stopping at the first failure:

  killed     a test failed (or the module no longer imports)
  timeout    the tests ran past 2x their traced time + 60 s, and again when the test
             it stopped in ran alone (4x + 60 s) and the list once more (3x the
             limit): a hang the mutant causes; counted as killed
  survived   every covering test passed; "no test covers it" is a survivor too
  equivalent the mutant cannot change behaviour; each one is listed in EQUIVALENT
             below with the reason, and is left out of the score

Score = (killed + timeout) / (mutants - equivalent).  Not part of CI (it takes tens
of minutes); run it before saying the issue is resolved:

    python3 tools/mutate.py [--seed N] [--sample K | --all] [--ops cmp,const,...]
                            [--jobs J] [--module pybpf/btf/parse.py ...]
    python3 tools/mutate.py --list --module pybpf/btf/parse.py   # mutants only

Mutants run in copies of the tree in a temporary folder (never in the checkout), with
bytecode writing off so that no stale .pyc of an earlier mutant is ever imported.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
STATE = ROOT / "build" / "mutate"

#: The modules whose score issue 13 sets (the eight core ones, then the ones the
#: struct_ops, USDT and skeleton work added or reshaped), then the kernel BTF index
#: cache and the record base that issue 8's start-up work added.
MODULES: Tuple[str, ...] = (
    "pybpf/btf/parse.py",
    "pybpf/btf/core.py",
    "pybpf/obj/relocate.py",
    "pybpf/events/ringbuf.py",
    "pybpf/events/perfbuf.py",
    "pybpf/obj/elf.py",
    "pybpf/maps.py",
    "pybpf/link/hooks.py",
    "pybpf/obj/struct_ops.py",
    "pybpf/link/struct_ops.py",
    "pybpf/obj/usdt.py",
    "pybpf/link/usdt.py",
    "pybpf/obj/skeleton.py",
    "pybpf/btf/cache.py",
    "pybpf/record.py",
)

OPERATORS: Tuple[str, ...] = ("cmp", "const", "slice", "remove", "struct", "return",
                              "bool", "arith")

#: Mutants that cannot change behaviour, per module, keyed by (operator, the original
#: line stripped, the replacement text as --list prints it), each with the reason.  The
#: key holds no line number so that it survives edits elsewhere in the module.
EQUIVALENT: Dict[str, Dict[Tuple[str, str, str], str]] = {

    # ---- pybpf/btf/parse.py
    "pybpf/btf/parse.py": {
        ("struct", '_LAYOUT = struct.Struct("<BBH")         # struct btf_layout', "'<BBh'"):
            "only the flags field changes sign, and check_layout ignores flags (_flags)",
        ("struct", '_LAYOUT = struct.Struct("<BBH")         # struct btf_layout', "'>BBH'"):
            "only the flags field changes byte order (B fields have none), and flags are "
            "ignored; the size stays 4",
        ("cmp", "last = offsets[-1] if off > len(w) else off", "(off >= len(w))"):
            "reached only when off != len(w), where > and >= agree",
        ("const", "if st not in (1, 2, 4, 8, 16) or bits > 128 or bit_off + bits > 8 * st \\",
         "(129)"):
            "bits == 129 is refused anyway: bit_off + bits > 8 * st, st being at most 16",
    },

    # ---- pybpf/btf/core.py
    "pybpf/btf/core.py": {
        ("const", "out.narrow = local.btf[local.accessors[0].type_id].kind == uapi.BTF_KIND_ENUM",
         "(-1)"): "an ENUMVAL spec has exactly one accessor (corematch.parse_spec): [-1] is [0]",
        ("const", 'f"[{relo.type_id}] {type_name}", 0, 0, where=where)', "(1)"):
            "_patch() assigns res.orig and res.new before anything reads them; when it is not "
            "reached apply() raises and the Result is dropped",
        ("const", 'f"[{relo.type_id}] {type_name}", 0, 0, where=where)', "(-1)"):
            "_patch() assigns res.orig and res.new before anything reads them; when it is not "
            "reached apply() raises and the Result is dropped",
        ("const", "self._modules = self._given[1:]", "(0)"):
            "modules are searched only when the first target has no candidate, so searching "
            "it again among them finds nothing more",
        ("bool", "if kind in FIELD_KINDS and lv.mem_size != tv.mem_size:",
         "(kind in FIELD_KINDS or lv.mem_size != tv.mem_size)"):
            "mem_size is non-zero only for FIELD_BYTE_OFFSET (corematch.field_value): for other "
            "kinds both are 0 and the second operand is False too",
        ("bool", "out.resize_ok = bool(lv.mem_size and tv.mem_size) and resize_is_safe(",
         "(bool(lv.mem_size and tv.mem_size) or resize_is_safe(local.btf, lv.mem_type, "
         "cast(Spec, targ).btf, tv.mem_type))"):
            "a 0 mem_size comes with mem_type 0 (void), for which resize_is_safe() is False: "
            "the first operand only saves the call",
        ("bool", "out.resize_ok = bool(lv.mem_size and tv.mem_size) and resize_is_safe(",
         "(lv.mem_size or tv.mem_size)"):
            "a 0 mem_size comes with mem_type 0 (void), for which resize_is_safe() is False: "
            "the first operand only saves the call",
        ("const", "signed = out.new - (1 << 64) if out.new >> 63 else out.new", "(62)"):
            "values in [2**62, 2**63) are out of the s32 range whether read as positive or as "
            "negative: both refuse them",
        ("remove", "self.reason = reason            # read only when poisoned", "pass"):
            "_Outcome.reason is read only when poisoned, and both places that poison set it",
    },

    # ---- pybpf/obj/relocate.py
    "pybpf/obj/relocate.py": {
        ("remove", "Slot = Tuple[int, int]      # (section index, instruction slot within it)",
         "pass"):
            "Slot is only named in annotations, never evaluated (from __future__ import "
            "annotations; no module imports it)",
        ("remove", "return None", "pass"):
            "the last statement of origin(): falling off the end returns None as well",
        ("remove", "break", "pass"):
            "line_info is sorted by slot (built sorted by _rebase_ext): after the first line "
            "past the slot no later one can be at or before it, so the loop only runs longer",
        ("const", "i = 0", "(-1)"):
            "placed holds only the program when the walk starts: placed[-1] is placed[0], so "
            "the program's calls are rebased twice, with the same values, before the rest",
    },

    # ---- pybpf/events/ringbuf.py
    "pybpf/events/ringbuf.py": {
        ("cmp", "if prod == cons or total >= limit:", "(total > limit)"):
            "at total == limit the mutant makes one more pass, whose scan with a limit of 0 "
            "stops where it starts, so drain returns the same total at once",
        ("const", "if len(its) == 1:           # the usual case: no chain between the user and C",
         "(0)"):
            "one run wrapped in chain.from_iterable yields the same rows in the same order "
            "(the cursor counts through ``starts``, not through what is returned)",
        ("remove", "self.done = 0", "pass"):
            "done is only read while a pass is in progress, and every pass assigns it with "
            "pass_ before delivering (drain, iterate)",
        ("const", "self.done = 0", "(-1)"):
            "the initial done is never read: every pass assigns it with pass_ first",
        ("slice", "found = self._rings[key:key + 1] if key >= 0 else []", "((key + 1) + 1)"):
            "only found[0] is used: a slice one longer starts at the same ring",
        ("const", "@lru_cache(maxsize=64)", "(63)"):
            "the size of a cache of pure functions (row_format, _format_layout): results "
            "are the same, only how many are kept changes",
        ("const", "@lru_cache(maxsize=64)", "(65)"):
            "the size of a cache of pure functions: same results",
        ("const", "return starts[0] if len(starts) == 1 else chain.from_iterable(starts)",
         "(-1)"):
            "starts[-1] of a one-element list is starts[0]",
        ("const", "return starts[0] if len(starts) == 1 else chain.from_iterable(starts)",
         "(0)"):
            "the one-run shortcut skipped: chain() over one iterator yields the same offsets "
            "and pulls from the same cursor iterator (taken() unchanged)",
        ("const", "found = self._rings[key:key + 1] if key >= 0 else []", "(2)"):
            "a two-element slice: only found[0], the same ring, is used",
        ("const", "found = self._rings[key:key + 1] if key >= 0 else []", "(-1)"):
            "key -1 would slice [-1:0], empty: the same 'no ring' error as the else branch",
        ("remove", "Field = Tuple[str, int, str, int]", "pass"):
            "a type alias used only in annotations (postponed by `from __future__ import "
            "annotations`): never evaluated",
        ("remove", "Cursor = List[Tuple[int, Iterator[Any]]]", "pass"):
            "a type alias used only in annotations (postponed): never evaluated",
        ("remove", 'Deliver = Callable[["Ring", List[Run], int], Tuple[int, Any]]', "pass"):
            "a type alias used only in annotations (postponed): never evaluated",
    },

    # ---- pybpf/events/perfbuf.py
    "pybpf/events/perfbuf.py": {
        ("struct", '_HDR = struct.Struct("=I2xH")       # perf_event_header: type, (misc), size',
         "'=i2xH'"):
            "the record type is a small number (2, 9, ...), never 2**31 or more: signed or "
            "not, the same value",
        ("cmp", "if size < _HDR.size:", "(size <= _HDR.size)"):
            "no record of these events is 8 bytes (a RAW sample is >= 16, LOST 24)",
        ("remove", "return 0, None      # nothing new: data_tail is left as it is", "pass"):
            "without the early return the loop does not run and the finally block stores "
            "data_tail's own value back: the kernel sees the same data_tail",
        ("struct", '_U64 = struct.Struct("=Q")', "'=q'"):
            "_U64 only reads a LOST record's count, which never reaches 2**63",
        ("const", "_U64_MASK = (1 << 64) - 1", "(2)"):
            "(2 << 64) - 1: the 'bytes ever written' bound becomes the ring size, and a ring "
            "not yet full holds zeros past what was written (the walk stops at that size-0 "
            "header either way); (1 << 64) - 2: positions and their differences are multiples "
            "of 8, bit 0 is never set",
        ("const", "_U64_MASK = (1 << 64) - 1", "(63)"):
            "2**63 - 1: written bytes and head differences are far below 2**63, the masked "
            "values are unchanged",
        ("const", "_U64_MASK = (1 << 64) - 1", "(65)"):
            "2**65 - 1: as (2 << 64) - 1 (the ring size bound, then zeros stop the walk; "
            "the head difference is positive and below 2**64)",
        ("remove", "SampleCallback = Callable[[int, memoryview], Any]", "pass"):
            "a type alias used only in annotations (postponed by `from __future__ import "
            "annotations`): never evaluated",
        ("remove", "LostCallback = Callable[[int, int], Any]", "pass"):
            "a type alias used only in annotations (postponed): never evaluated",
        ("const", "raw = _U32.unpack_from(self.data, (off + 8) & self.mask)[0]", "(-1)"):
            "[-1] of a one-element tuple is [0]",
        ("const", "lost(self.cpu, _U64.unpack_from(self.data, (off + 16) & self.mask)[0])",
         "(-1)"):
            "[-1] of a one-element tuple is [0]",
        ("const", 'syscall.ioctl(self.fd.fd, uapi.PERF_EVENT_IOC_PAUSE_OUTPUT, 1, "pausing a '
                  'perf ring")', "(2)"):
            "the kernel takes the argument of PERF_EVENT_IOC_PAUSE_OUTPUT as a boolean "
            "(rb_toggle_paused(rb, !!arg))",
        ("cmp", "if size < _HDR.size or pos + size > limit:", "(size <= _HDR.size)"):
            "no record of these events is 8 bytes (a RAW sample is >= 16, LOST 24): a size "
            "of exactly 8 never occurs",
        ("arith", "self._epoll.register(ring.fd.fd, len(self._rings) - 1)",
         "(len(self._rings) + 1)"):
            "the epoll token is never read: poll() reads every ring whatever epoll names "
            "(see its docstring)",
        ("const", "self._epoll.register(ring.fd.fd, len(self._rings) - 1)", "(0)"):
            "the epoll token is never read (see poll())",
        ("const", "self._epoll.register(ring.fd.fd, len(self._rings) - 1)", "(2)"):
            "the epoll token is never read (see poll())",
        ("const", 'syscall.ioctl(ring.fd.fd, uapi.PERF_EVENT_IOC_ENABLE, 0, "enabling a perf '
                  'event")', "(-1)"):
            "the only flag of PERF_EVENT_IOC_ENABLE is PERF_IOC_FLAG_GROUP, and each event "
            "is the only member of its own group: enabling the group enables just it",
        ("const", 'syscall.ioctl(ring.fd.fd, uapi.PERF_EVENT_IOC_ENABLE, 0, "enabling a perf '
                  'event")', "(1)"):
            "PERF_IOC_FLAG_GROUP on an event that is alone in its group: the same event",
    },

    # ---- pybpf/obj/elf.py
    "pybpf/obj/elf.py": {
        ("remove", "self._by_name = {}              # built by the first section() call",
         "pass"):
            "section() assigns _by_name before its first read (_indexed starts at -1, never a "
            "section count), so the initial value is never seen",
        ("const", "self._indexed = -1", "(0)"):
            "a start of 0 skips building the index only for an object with no sections, "
            "where the empty initial _by_name gives the same None",
        ("const", "self._indexed = -1", "(2)"):
            "-2 is never a section count either: the first section() call builds the index",
        ("remove", "self._indexed = len(self.sections)", "pass"):
            "only the cache: the index is then rebuilt on every call, from the same sections",
        ("const", "chunk = os.read(fd, min(1 << 20, limit + 1 - size))", "(2)"):
            "the chunk size (1 or 2 MiB) or one more byte allowed per read: every chunk is "
            "still checked with size > limit right after it, so the bytes and errors match",
        ("const", "chunk = os.read(fd, min(1 << 20, limit + 1 - size))", "(19)"):
            "chunk size only (512 KiB instead of 1 MiB): same bytes, same size check",
        ("const", "chunk = os.read(fd, min(1 << 20, limit + 1 - size))", "(21)"):
            "chunk size only (2 MiB instead of 1 MiB): same bytes, same size check",
        ("arith", "chunk = os.read(fd, min(1 << 20, limit + 1 - size))",
         "(limit + 1 + size)"):
            "only lets a read ask for more bytes: the size > limit check after each chunk "
            "refuses the same files, and a file under the limit is read to its end alike",
        ("cmp", "if off >= len(table) or end < 0:", "(off > len(table))"):
            "at off == len(table), table.find(b'\\0', off) is -1, so end < 0 refuses it anyway",
    },

    # ---- pybpf/maps.py
    "pybpf/maps.py": {
        ("remove", "self._value_codec: Optional[_Codec] = None", "pass"):
            "only read by _codecs(), which assigns it with _key_codec before any read",
        ("const", 'return value.to_bytes(self.size, "little", signed=value < 0)', "(1)"):
            "signed=value < 1 differs only for 0, whose bytes are zeros either way",
        ("const", 'raw = value.to_bytes(size, "little", signed=value < 0)', "(1)"):
            "signed=value < 1 differs only for 0, whose bytes are zeros either way",
        ("cmp", 'return value.to_bytes(self.size, "little", signed=value < 0)', "(value <= 0)"):
            "signed=value <= 0 differs only for 0, whose bytes are zeros either way",
        ("cmp", 'raw = value.to_bytes(size, "little", signed=value < 0)', "(value <= 0)"):
            "signed=value <= 0 differs only for 0, whose bytes are zeros either way",
        ("const", "if size < page or size % page or size & (size - 1):", "(2)"):
            "only page multiples get there (bits 0-11 clear): size-1 and size-2 differ "
            "in bit 0 alone, which size & ... clears anyway",
        ("const", "prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)", "(1)"):
            "PROT_READ is 1: PROT_READ | 1 == PROT_READ",
        ("struct", 'return struct.unpack("<I", raw)[0]     # the kernel answers with an id',
         "'<i'"):
            "map and program ids are allocated in [1, INT_MAX] (idr_alloc_cyclic): "
            "signed and unsigned decode them alike",
    },

    # ---- pybpf/link/hooks.py
    "pybpf/link/hooks.py": {
        ("const", 'return any(line.rstrip("\\n").split(" ")[2:3] == [symbol] for line in f)', "(4)"):
            "a kallsyms line splits on ' ' into exactly 3 fields (a module name follows a "
            "tab): [2:4] == [2:3]",
        ("bool", 'wrapped = bool(prefix) and _kallsyms_has(f"__{prefix}_sys_bpf")',
         "(bool(prefix) or _kallsyms_has(f'__{prefix}_sys_bpf'))"):
            "without a prefix the symbol asked for is __None_sys_bpf, which no kernel has",
        ("const", 'if len(p) >= 3 and p[1] in "tT"]', "(2)"):
            "every /proc/kallsyms line has 3 fields or more",
        ("const", 'pid = int(opts.get("pid", -1))', "(2)"):
            "any negative pid means every process (pid < 0 below): -2 acts as -1",
        ("const", 'pid = int(opts.get("pid", 0))', "(-1)"):
            "pid if pid > 0 else 0 below turns -1 into the same 0",
        ("cmp", '"pid": pid if pid > 0 else 0})', "(pid >= 0)"):
            "pid 0 maps to 0 on either branch",
        ("remove", "names: List[str] = []", "pass"):
            "assigned again on both paths (the try's read or the except's) before any read",
    },

    # ---- pybpf/obj/struct_ops.py
    "pybpf/obj/struct_ops.py": {
        ('remove', 'assert isinstance(datasec, T.Datasec)', 'pass'):
            "find(name, BTF_KIND_DATASEC) returns DATASEC ids only: the assert narrows the "
            "type for mypy and cannot fail",
        ('remove', 'assert isinstance(struct_t, T.Struct)', 'pass'):
            "owner.type_id was checked to be a Struct in _section_maps: the assert only "
            "narrows the type for mypy",
        ('remove', 'assert isinstance(vtype, T.Struct)', 'pass'):
            "values come from find(..., BTF_KIND_STRUCT): the assert only narrows the type",
        ('remove', 'assert isinstance(kstruct, T.Struct) and isinstance(struct_t, T.Struct)',
         'pass'):
            "the layout's type was found by BTF_KIND_STRUCT and the spec's type checked in "
            "_section_maps: the assert only narrows the types for mypy",
        ('bool', 'assert isinstance(kstruct, T.Struct) and isinstance(struct_t, T.Struct)',
         '(isinstance(kstruct, T.Struct) or isinstance(struct_t, T.Struct))'):
            "both operands are always true (see the previous entry): and/or alike",
    },

    # ---- pybpf/link/struct_ops.py
    "pybpf/link/struct_ops.py": {
        ('remove', 'assert map_.spec.struct_ops is not None', 'pass'):
            "BPFObject builds a StructOps only for maps whose spec has struct_ops (object.py): "
            "the assert narrows the Optional for mypy",
    },

    # ---- pybpf/obj/usdt.py
    "pybpf/obj/usdt.py": {
        ('slice', 'pos += len(text[pos:]) - len(text[pos:].lstrip())', '((pos) + 1)'):
            "pos is at a blank or the end after a spec (each form ends in a lookahead for "
            "one): skipping one blank less leaves it to the next spec's leading \\s*, and at "
            "the end both slices are empty",
        ('const', 'align: int = 4, section: str = NOTE_SECTION) -> List[Note]:', '(3)'):
            "the first line of parse_notes makes every alignment but 8 into 4",
        ('const', 'align: int = 4, section: str = NOTE_SECTION) -> List[Note]:', '(5)'):
            "the first line of parse_notes makes every alignment but 8 into 4",
        ('slice', 'spec_text = text[pos:m.end()].strip()', '((m.end()) + 1)'):
            "every form ends in a lookahead for a blank or the end: the extra character is a "
            "blank (or none) and strip() removes it",
        ('const', 'spec = ArgSpec(kind, abs(size), size < 0, value,', '(1)'):
            "size is nonzero here (0 was refused above): size < 1 and size < 0 alike",
        ('struct', 'return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,', "'<Qih?b'"):
            "arg_type's word is below 2**24 (type:8, idx_reg_off:12, scale:4): I and i pack alike",
        ('struct', 'return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,', "'<QIH?b'"):
            "reg_off is a pt_regs offset, 0..248: h and H pack alike",
        ('struct', 'return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,', "'<QIh?B'"):
            "arg_bitshift is 64 - 8 * size, one of 0, 32, 48, 56: b and B pack alike",
        ('struct', 'return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,', "'>Qih?b'"):
            "arg_type's word is below 2**24 (type:8, idx_reg_off:12, scale:4): I and i pack alike",
        ('struct', 'return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,', "'>QIH?b'"):
            "reg_off is a pt_regs offset, 0..248: h and H pack alike",
        ('struct', 'return struct.pack("<QIh?b" if little else ">QIh?b", self.val_off & (1 << 64) - 1,', "'>QIh?B'"):
            "arg_bitshift is 64 - 8 * size, one of 0, 32, 48, 56: b and B pack alike",
        ('struct', 'tail = "<Qh6x" if byteorder == "little" else ">Qh6x"', "'<QH6x'"):
            "arg_cnt is 0..12 (pack_spec refuses more): h and H pack alike",
        ('struct', 'tail = "<Qh6x" if byteorder == "little" else ">Qh6x"', "'>QH6x'"):
            "arg_cnt is 0..12 (pack_spec refuses more): h and H pack alike",
        ('cmp', 'spec = ArgSpec(kind, abs(size), size < 0, value,', '(size <= 0)'):
            "a size of 0 was refused just above (abs(size) must be 1, 2, 4 or 8)",
        ('const', '@functools.lru_cache(maxsize=8)', '(7)'):
            "cache capacity only: entries are keyed by (path, dev, inode, mtime), a miss "
            "reads the same file again with the same result",
        ('const', '@functools.lru_cache(maxsize=8)', '(9)'):
            "cache capacity only: entries are keyed by (path, dev, inode, mtime), a miss "
            "reads the same file again with the same result",
    },

    # ---- pybpf/link/usdt.py
    "pybpf/link/usdt.py": {
        ('const', 'offset = (ctypes.c_uint64 * 1)(0)', '(2)'):
            "the probe passes cnt=1: the kernel reads one offset, a longer array is never read",
        ('cmp', '"cookies": site_ids, "pid": pid if pid > 0 else 0}))', '(pid >= 0)'):
            "pid is -1 or a positive pid here (0 became os.getpid() above): > 0 and >= 0 alike",
        ('const', '"cookies": site_ids, "pid": pid if pid > 0 else 0}))', '(-1)'):
            "attach_uprobe_multi (link/hooks.py) clamps a pid <= 0 to 0 itself: -1 and 0 alike",
    },

    # ---- pybpf/obj/skeleton.py
    "pybpf/obj/skeleton.py": {
    },

    # ---- pybpf/record.py
    "pybpf/record.py": {
        ("remove", 'R = TypeVar("R", bound="Record")', "pass"):
            "R appears only in annotations, which this module never evaluates "
            "(from __future__ import annotations): it exists for mypy",
        ("remove", "__hash__ = None         # type: ignore[assignment]", "pass"):
            "a class that defines __eq__ and no __hash__ gets __hash__ = None from Python "
            "itself: the line only says so",
    },

    # ---- pybpf/btf/cache.py
    "pybpf/btf/cache.py": {
        ("struct", '_BOOT_KEY = struct.Struct("=4s16sQI")         # "boot", boot id, size, '
         'CRC-32: 32 bytes', "'=4s16sqI'"):
            "the size packed signed: the same 8 bytes for every blob under 2**63 bytes",
        ("struct", '_CRC = struct.Struct("=I")    # zlib.crc32 of everything before it',
         "'>I'"):
            "the checksum is written and read with the same struct, in a file whose name "
            "holds the host's byte order: any byte order of it round-trips",
    },

}

# ---------------------------------------------------------------- mutant generation


@dataclass(frozen=True)
class Mutant:
    """One planted change: replace source bytes [start, end) of the module."""

    module: str
    op: str
    line: int                 # first line of the mutated code (1-based, original)
    end_line: int
    start: int                # byte offsets into the module's source
    end: int
    before: str               # original code of the span
    after: str                # its replacement
    in_function: bool         # False: module or class level (runs at import)

    @property
    def key(self) -> str:
        """Stable identity across runs with the same source."""
        return f"{self.module}:{self.start}:{self.end}:{self.op}:{self.after}"


_CMP_SWAPS = {
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE), ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
_ARITH_SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.LShift: ast.RShift,
    ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr, ast.Pow: ast.Mult,
}
_STRUCT_CALLS = {"Struct", "pack", "unpack", "unpack_from", "pack_into", "calcsize",
                 "iter_unpack", "cast"}
_STRUCT_RE = re.compile(r"^[@=<>!]?(?:\s*\d*[xcbB?hHiIlLqQnNefdspP])+\s*$")
_SIZE_SWAP = {"B": "H", "H": "I", "I": "Q", "Q": "I", "L": "I", "b": "h", "h": "i",
              "i": "q", "q": "i", "l": "i", "f": "d", "d": "f", "x": "", "s": "x"}
_SIGN_SWAP = {"B": "b", "b": "B", "H": "h", "h": "H", "I": "i", "i": "I", "Q": "q",
              "q": "Q", "L": "l", "l": "L"}


class _Source:
    """A module's source with byte offsets for (line, column) positions."""

    def __init__(self, text: str) -> None:
        self.data = text.encode()
        self.line_starts = [0]
        for i, b in enumerate(self.data):
            if b == 0x0A:
                self.line_starts.append(i + 1)

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> Tuple[int, int]:
        return (self.offset(node.lineno, node.col_offset),                # type: ignore[attr-defined]
                self.offset(node.end_lineno, node.end_col_offset))        # type: ignore[attr-defined]

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode()

    def line_text(self, line: int) -> str:
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.data)
        return self.data[self.line_starts[line - 1]:end].decode().rstrip("\n")


def _unparse(node: ast.AST) -> str:
    return "(" + ast.unparse(node) + ")"


def _skipped_nodes(tree: ast.AST) -> Set[int]:
    """ids of nodes never mutated: annotations, docstrings, f-string parts,
    `if TYPE_CHECKING:` bodies and __all__."""
    skip: Set[int] = set()

    def skip_tree(node: Optional[ast.AST]) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip_tree(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                skip_tree(a.annotation)
            for extra in (node.args.vararg, node.args.kwarg):
                if extra is not None:
                    skip_tree(extra.annotation)
        if isinstance(node, ast.AnnAssign):
            skip_tree(node.annotation)
        if isinstance(node, ast.JoinedStr):
            skip_tree(node)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                skip_tree(body[0])
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            skip_tree(node)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            skip_tree(node)
    return skip


def _struct_variants(fmt: str) -> Iterator[str]:
    order = fmt[:1] if fmt[:1] in "@=<>!" else ""
    body = fmt[len(order):]
    yield (">" if order in ("", "@", "=", "<") else "<") + body
    seen: Set[str] = set()
    for i, ch in enumerate(body):
        if ch in seen:
            continue
        seen.add(ch)
        for table in (_SIZE_SWAP, _SIGN_SWAP):
            if ch in table:
                yield order + body[:i] + table[ch] + body[i + 1:]


def _is_struct_format(node: ast.Constant, parent: Optional[ast.AST], grand: Optional[ast.AST]) -> bool:
    value = node.value
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not isinstance(text, str) or not text.strip() or not _STRUCT_RE.match(text):
        return False
    if isinstance(parent, ast.Call):
        f = parent.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name in _STRUCT_CALLS:
            return True
    # a format kept in a constant or a table: needs an explicit byte order or size digits
    return text[:1] in "<>=!@" and len(text) > 1


def generate(module: str, text: str, ops: Sequence[str]) -> List[Mutant]:
    """Every mutant of one module for the given operators, in source order."""
    src = _Source(text)
    tree = ast.parse(text)
    skip = _skipped_nodes(tree)
    parents: Dict[int, ast.AST] = {}
    func_of: Dict[int, bool] = {}

    def index(node: ast.AST, parent: Optional[ast.AST], in_func: bool) -> None:
        if parent is not None:
            parents[id(node)] = parent
        func_of[id(node)] = in_func
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # only the body runs when the function is called; decorators and
            # default values run where the function is defined
            body = node.body if isinstance(node.body, list) else [node.body]
            inner = {id(b) for b in body}
            for child in ast.iter_child_nodes(node):
                index(child, node, True if id(child) in inner else in_func)
            return
        for child in ast.iter_child_nodes(node):
            index(child, node, in_func)

    index(tree, None, False)
    out: List[Mutant] = []

    def add(op: str, node: ast.AST, after: str, start: Optional[int] = None,
            end: Optional[int] = None) -> None:
        s, e = src.span(node)
        s = s if start is None else start
        e = e if end is None else end
        out.append(Mutant(module, op, node.lineno, node.end_lineno or node.lineno,  # type: ignore[attr-defined]
                          s, e, src.text(s, e), after, func_of.get(id(node), False)))

    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        parent = parents.get(id(node))
        if "cmp" in ops and isinstance(node, ast.Compare):
            for i, o in enumerate(node.ops):
                for new in _CMP_SWAPS.get(type(o), ()):
                    cmp_node = copy.deepcopy(node)
                    cmp_node.ops[i] = new()
                    add("cmp", node, _unparse(cmp_node))
        if "const" in ops and isinstance(node, ast.Constant) and type(node.value) is int:
            for v in (node.value + 1, node.value - 1):
                add("const", node, f"({v})")
        if "slice" in ops and isinstance(node, ast.Slice):
            for bound in (node.lower, node.upper):
                if bound is not None and not isinstance(bound, ast.Constant) and id(bound) not in skip:
                    seg = src.text(*src.span(bound))
                    for d in ("+ 1", "- 1"):
                        add("slice", bound, f"(({seg}) {d})")
            if node.lower is None and node.upper is not None:
                add("slice", node, f"1:{src.text(*src.span(node.upper))}",
                    start=src.span(node)[0], end=src.span(node)[1])
        if "struct" in ops and isinstance(node, ast.Constant) \
                and isinstance(node.value, (str, bytes)) \
                and _is_struct_format(node, parent, parents.get(id(parent)) if parent else None):
            value = node.value
            for variant in _struct_variants(value.decode("latin-1") if isinstance(value, bytes) else value):
                new_value: object = variant.encode("latin-1") if isinstance(value, bytes) else variant
                add("struct", node, repr(new_value))
        if "bool" in ops:
            if isinstance(node, ast.BoolOp):
                bool_node = copy.deepcopy(node)
                bool_node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
                add("bool", node, _unparse(bool_node))
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                add("bool", node, _unparse(node.operand))
        if "arith" in ops and isinstance(node, (ast.BinOp, ast.AugAssign)):
            new_op = _ARITH_SWAPS.get(type(node.op))
            strings = [n for n in ast.walk(node) if isinstance(n, (ast.JoinedStr,))
                       or (isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)))]
            if new_op is not None and not strings:
                arith_node = copy.deepcopy(node)
                arith_node.op = new_op()
                # an augmented assignment is a statement: no parentheses around it
                add("arith", node, _unparse(arith_node) if isinstance(node, ast.BinOp)
                    else ast.unparse(arith_node))
        if "remove" in ops and isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign,
                                                 ast.Raise, ast.Return, ast.Delete, ast.Assert,
                                                 ast.Continue, ast.Break)):
            if isinstance(node, ast.AnnAssign) and node.value is None:
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue
            line = src.line_text(node.lineno)
            last = src.line_text(node.end_lineno or node.lineno)
            if line[:node.col_offset].strip() or last[node.end_col_offset or 0:].split("#")[0].strip():
                continue              # shares its line with other code
            lines = (node.end_lineno or node.lineno) - node.lineno
            add("remove", node, "pass" + "\n" * lines)
        if "return" in ops and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = [s for s in node.body if id(s) not in skip]
            if not body or body[0].lineno == node.lineno or all(
                    isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                    for s in body):
                continue              # one-line or empty bodies: nothing to return early from
            first = body[0]
            s = src.offset(first.lineno, 0)
            indent = src.line_text(first.lineno)[:first.col_offset]
            out.append(Mutant(module, "return", first.lineno, first.lineno, s, s, "",
                              f"{indent}return None\n", True))
    # Drop mutants that do not compile or change nothing; keep one of each result.
    seen: Set[bytes] = set()
    result: List[Mutant] = []
    for mutant in sorted(out, key=lambda m: (m.start, m.end, m.op, m.after)):
        data = mutated(src.data, mutant)
        if data in seen or data == src.data:
            continue
        try:
            ast.parse(data)
        except SyntaxError:
            continue
        seen.add(data)
        result.append(mutant)
    return result


def mutated(data: bytes, m: Mutant) -> bytes:
    """The module's source with the mutant applied."""
    return data[:m.start] + m.after.encode() + data[m.end:]


def equivalence(m: Mutant, text: str) -> Optional[str]:
    """The recorded reason why this mutant is equivalent, if it is."""
    line = text.splitlines()[m.line - 1].strip()
    return EQUIVALENT.get(m.module, {}).get((m.op, line, m.after.strip()))


# ---------------------------------------------------------------- coverage by test

#: Bumped when the tracing changes: caches of an older tracer are traced again.
_TRACER_VERSION = 2

_TRACER = r'''
"""Per-test line coverage of the mutated modules (written by tools/mutate.py)."""
import atexit, json, os, sys, threading
TARGETS = set(json.loads(os.environ["MUTATE_TARGETS"]))
HITS = set()
def _local(frame, event, arg):
    if event == "line":
        HITS.add((frame.f_code.co_filename, frame.f_lineno))
    return _local
def _global(frame, event, arg):
    if frame.f_code.co_filename in TARGETS:
        HITS.add((frame.f_code.co_filename, frame.f_lineno))
        return _local
    return None
def start():
    sys.settrace(_global)
    threading.settrace(_global)
def drain():
    hits = sorted(HITS)
    HITS.clear()
    return hits
'''

_CHILD = r'''
import os
if os.environ.get("MUTATE_CONTEXT"):
    import atexit, json, _mutate_tracer
    _mutate_tracer.start()
    def _dump():
        path = os.path.join(os.environ["MUTATE_OUT"], "child-%d.json" % os.getpid())
        with open(path, "w") as f:
            json.dump({"context": os.environ["MUTATE_CONTEXT"], "hits": _mutate_tracer.drain()}, f)
    atexit.register(_dump)
'''

_PLUGIN = r'''
"""pytest plugin: trace each test's lines in the mutated modules (tools/mutate.py)."""
import glob, json, os, time
import pytest
import _mutate_tracer
OUT = os.environ["MUTATE_OUT"]
RESULTS = {}
EARLY = []
def _children(nodeid):
    hits = []
    for path in glob.glob(os.path.join(OUT, "child-*.json")):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if data.get("context") == nodeid:
            hits.extend(tuple(h) for h in data["hits"])
        os.unlink(path)
    return hits
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    EARLY.extend(_mutate_tracer.drain())     # collection: imports of the modules
    # Python drops a trace function that raised (a RecursionError deep in a test, or a
    # test's own settrace: hypothesis' scrutineer): arm it again for every test.
    _mutate_tracer.start()
    os.environ["MUTATE_CONTEXT"] = item.nodeid
    RESULTS[item.nodeid] = {"outcome": "passed", "duration": 0.0}
    t0 = time.monotonic()
    yield
    os.environ.pop("MUTATE_CONTEXT", None)
    entry = RESULTS[item.nodeid]
    entry["duration"] = time.monotonic() - t0
    entry["hits"] = _mutate_tracer.drain() + _children(item.nodeid)
def pytest_runtest_logreport(report):
    entry = RESULTS.get(report.nodeid)
    if entry is not None and report.outcome != "passed" and entry["outcome"] != "failed":
        entry["outcome"] = report.outcome
def pytest_sessionfinish(session):
    # a function only called at import (a table builder) runs before any test: it
    # counts as run by every test that reaches its module, as module-level code does
    early = {}
    for filename, line in EARLY:
        early.setdefault(filename, set()).add(line)
    for entry in RESULTS.values():
        reached = {h[0] for h in entry.get("hits", ())} & set(early)
        entry.setdefault("hits", []).extend((f, n) for f in reached for n in early[f])
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(RESULTS, f)
_mutate_tracer.start()
'''


def _digest(*paths: pathlib.Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:20]


@dataclass
class TestInfo:
    """What tracing one test found."""

    duration: float
    lines: Dict[str, Set[int]] = field(default_factory=dict)   # module -> lines


def _test_files() -> List[pathlib.Path]:
    return sorted((ROOT / "tests").glob("test_*.py"))


def _support_digest() -> str:
    """Digest of the test support files every test file depends on."""
    return _digest(*sorted(p for p in (ROOT / "tests").glob("*.py") if not p.name.startswith("test_")))


def coverage_map(modules: Sequence[str], files: Sequence[pathlib.Path],
                 log: bool = True) -> Dict[str, TestInfo]:
    """nodeid -> the lines it runs in the modules; passing tests only.

    Cached per test file in build/mutate/cov/; a file is traced again when it, the
    test support files, or a module it covered has changed."""
    cache_dir = STATE / "cov"
    cache_dir.mkdir(parents=True, exist_ok=True)
    module_hash = {m: _digest(ROOT / m) for m in MODULES}
    support = _support_digest()
    stale: List[pathlib.Path] = []
    cached: Dict[pathlib.Path, Dict[str, Any]] = {}
    for tf in files:
        entry_path = cache_dir / (tf.stem + ".json")
        entry: Dict[str, Any] = {}
        if entry_path.exists():
            try:
                entry = json.loads(entry_path.read_text())
            except ValueError:
                entry = {}
        fresh = bool(entry) and entry.get("tracer") == _TRACER_VERSION \
            and entry["file"] == _digest(tf) and entry["support"] == support
        if fresh:
            for m in modules:
                covered = any(m in t["lines"] for t in entry["tests"].values())
                if entry["modules"].get(m) != module_hash[m] and (covered or m not in entry["modules"]):
                    fresh = False
        if fresh:
            cached[tf] = entry
        else:
            stale.append(tf)
    if stale:
        if log:
            print(f"tracing {len(stale)} test file(s) for coverage ...", file=sys.stderr, flush=True)
        results = _trace(stale)
        for tf in stale:
            rel = str(tf.relative_to(ROOT))
            tests = {nid: r for nid, r in results.items() if nid.split("::")[0] == rel}
            entry = {"tracer": _TRACER_VERSION, "file": _digest(tf), "support": support,
                     "modules": module_hash,
                     "tests": tests}
            (cache_dir / (tf.stem + ".json")).write_text(json.dumps(entry))
            cached[tf] = entry
    out: Dict[str, TestInfo] = {}
    for entry in cached.values():
        for nid, t in entry["tests"].items():
            if t["outcome"] == "passed":
                out[nid] = TestInfo(t["duration"], {m: set(v) for m, v in t["lines"].items()})
    return out


def _trace(files: Sequence[pathlib.Path]) -> Dict[str, Dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="pybpf-mutate-trace-") as tmp:
        d = pathlib.Path(tmp)
        (d / "_mutate_tracer.py").write_text(_TRACER)
        (d / "_mutate_plugin.py").write_text(_PLUGIN)
        (d / "sitecustomize.py").write_text(_CHILD)
        targets = {str(ROOT / m): m for m in MODULES}
        env = dict(os.environ, MUTATE_TARGETS=json.dumps(sorted(targets)), MUTATE_OUT=tmp,
                   PYTHONPATH=os.pathsep.join([tmp, str(ROOT)]))
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "_mutate_plugin",
                        "-p", "no:cacheprovider", "--hypothesis-seed=0",
                        *[str(f) for f in files]], cwd=ROOT, env=env,
                       stdout=sys.stderr, stderr=subprocess.DEVNULL)   # pytest's progress
        try:
            raw = json.loads((d / "results.json").read_text())
        except (OSError, ValueError):
            raise SystemExit("mutate: the traced test run wrote no results (did pytest crash?)")
    results: Dict[str, Dict[str, Any]] = {}
    for nid, r in raw.items():
        lines: Dict[str, List[int]] = {}
        for filename, line in r.get("hits", []):
            m = targets.get(filename)
            if m is not None:
                lines.setdefault(m, []).append(line)
        results[nid] = {"outcome": r["outcome"], "duration": r["duration"],
                        "lines": {m: sorted(set(v)) for m, v in lines.items()}}
    return results


# ---------------------------------------------------------------- running mutants


def _make_copy(n: int) -> pathlib.Path:
    """A copy of the tracked tree for worker n, sharing build/ outputs by symlink.

    Outside the checkout (a temporary folder per run and worker): a copy inside
    build/ would link build/ into itself, a loop for anything walking the tree."""
    dest = pathlib.Path(tempfile.mkdtemp(prefix=f"pybpf-mutate-{n}-"))
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for rel in ("build", ".tools-build"):
        if (ROOT / rel).exists():
            (dest / rel).symlink_to(ROOT / rel)
    for obj in (ROOT / "pybpf" / "tools" / "bpf").glob("*.bpf.o"):
        shutil.copy2(obj, dest / "pybpf" / "tools" / "bpf" / obj.name)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest / "pybpf"),
                    str(dest / "tests")], check=True, stdout=subprocess.DEVNULL)
    return dest


def _env(tree: pathlib.Path) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    for k in ("MUTATE_TARGETS", "MUTATE_OUT", "MUTATE_CONTEXT"):
        env.pop(k, None)
    return env


#: Heap limit of a mutant's test run: a mutant that loops appending to a list (a
#: removed ``off += step``) fails with MemoryError instead of filling the host's RAM.
_DATA_LIMIT = 6 << 30


def _limit_memory() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_DATA, (_DATA_LIMIT, _DATA_LIMIT))


def _pytest(tree: pathlib.Path, nodeids: Sequence[str], timeout: float,
            mutant: bool = False) -> Tuple[str, str]:
    """Run the tests in a tree: ('passed'|'failed'|'timeout', first failing test).

    With ``mutant``, tests that no longer collect (exit 4/5: the mutant broke an
    import) are a kill, not the tool's fault."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-v", "-p", "no:cacheprovider",
           "--hypothesis-seed=0", "--no-header", "-rf", *nodeids]
    proc = subprocess.Popen(cmd, cwd=tree, env=_env(tree), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_limit_memory)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return "timeout", _running(out.decode(errors="replace"), nodeids)
    if proc.returncode == 0:
        return "passed", ""
    text = out.decode(errors="replace")
    if proc.returncode in (4, 5) and mutant:
        # a test file no longer imports (the mutated module fails at import), or tests
        # the unmutated tree has are gone (parametrized over the objects that parse):
        # pytest finds no collectors for the node ids, exit 4; that is a kill
        first = next((ln.strip("_ ").split(" ", 1)[1] for ln in text.splitlines()
                      if "ERROR collecting" in ln or "ERROR: not found:" in ln),
                     f"collection (exit {proc.returncode})")
        return "failed", first
    if proc.returncode in (4, 5):     # usage error / nothing collected: the tool's fault
        raise SystemExit(f"mutate: pytest could not run the selected tests in {tree}:\n"
                         + text[-2000:])
    first = next((ln.split(" ", 1)[1].split(" - ")[0] for ln in text.splitlines()
                  if ln.startswith(("FAILED ", "ERROR "))), f"exit {proc.returncode}")
    return "failed", first


def _running(output: str, nodeids: Sequence[str]) -> str:
    """The test pytest -v had started but not finished when it was stopped."""
    wanted = set(nodeids)
    last = ""
    for line in output.splitlines():
        head = line.split(" ", 1)[0]
        if head in wanted:
            last = head if not re.search(r" (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", line) else ""
    return last


def _confirm_timeout(tree: pathlib.Path, tests: Sequence[str], hung: str, limit: float,
                     cov: Dict[str, TestInfo]) -> Tuple[str, str]:
    """A run past its limit may only be a slow machine: give the test it stopped in a
    run of its own with a wide margin, then (if that passes) the whole list with a
    three times wider limit.  Only a second overrun counts as a timeout."""
    if hung:
        status, by = _pytest(tree, [hung], 4 * cov[hung].duration + 60, mutant=True)
        if status != "passed":
            return status, by or hung
    return _pytest(tree, tests, 3 * limit, mutant=True)


def _covering(m: Mutant, cov: Dict[str, TestInfo]) -> List[str]:
    lines = set(range(m.line, m.end_line + 1))
    if m.in_function:
        hit = [n for n, t in cov.items() if lines & t.lines.get(m.module, set())]
    else:                         # runs at import: every test that reaches the module
        hit = [n for n, t in cov.items() if t.lines.get(m.module)]
    return sorted(hit, key=lambda n: (cov[n].duration, n))


@dataclass
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    status: str                   # killed | timeout | survived | uncovered | equivalent
    by: str = ""
    reason: str = ""


def run_module(module: str, cov: Dict[str, TestInfo], mutants: Sequence[Mutant],
               text: str, trees: Sequence[pathlib.Path]) -> List[Outcome]:
    """Run a module's mutants over the worker trees; one Outcome per mutant."""
    data = text.encode()
    todo: List[Tuple[Mutant, List[str]]] = []
    results: List[Outcome] = []
    for m in mutants:
        why = equivalence(m, text)
        if why is not None:
            results.append(Outcome(m, "equivalent", reason=why))
            continue
        tests = _covering(m, cov)
        if not tests:
            results.append(Outcome(m, "uncovered"))
            continue
        todo.append((m, tests))
    # The covering tests must pass on the unmutated module first.
    union = sorted({t for _, ts in todo for t in ts}, key=lambda n: (cov[n].duration, n))
    bad = _baseline(trees[0], union, cov)
    if bad:
        print(f"  {len(bad)} covering test(s) fail without a mutant, left out: "
              + ", ".join(sorted(bad)[:5]), file=sys.stderr)
    lock = threading.Lock()
    queue = list(todo)
    done = [0]

    def worker(tree: pathlib.Path) -> None:
        target = tree / module
        pyc_dir = target.parent / "__pycache__"
        while True:
            with lock:
                if not queue:
                    return
                m, tests = queue.pop(0)
            tests = [t for t in tests if t not in bad]
            for pyc in pyc_dir.glob(target.stem + ".*.pyc"):
                pyc.unlink()
            target.write_bytes(mutated(data, m))
            try:
                if not tests:
                    outcome = Outcome(m, "uncovered")
                else:
                    # + 60 s: pytest start-up alone takes that long on a loaded machine
                    limit = 2 * sum(cov[t].duration for t in tests) + 60
                    status, by = _pytest(tree, tests, limit, mutant=True)
                    if status == "timeout":
                        status, by = _confirm_timeout(tree, tests, by, limit, cov)
                    outcome = Outcome(m, {"passed": "survived", "failed": "killed",
                                          "timeout": "timeout"}[status], by)
            finally:
                target.write_bytes(data)
            with lock:
                results.append(outcome)
                done[0] += 1
                mark = {"killed": ".", "timeout": "T", "survived": "S", "uncovered": "U"}
                print(mark[outcome.status], end="", file=sys.stderr, flush=True)

    errors: List[BaseException] = []

    def guarded(tree: pathlib.Path) -> None:
        try:
            worker(tree)
        except BaseException as e:    # SystemExit too: a thread would swallow it
            with lock:
                errors.append(e)
                queue.clear()

    threads = [threading.Thread(target=guarded, args=(t,)) for t in trees]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    print(file=sys.stderr)
    return sorted(results, key=lambda o: (o.mutant.line, o.mutant.start, o.mutant.op, o.mutant.after))


def _baseline(tree: pathlib.Path, tests: Sequence[str], cov: Dict[str, TestInfo]) -> Set[str]:
    """The tests that fail in the unmutated tree (flaky or environment-bound)."""
    bad: Set[str] = set()
    remaining = list(tests)
    while remaining:
        limit = 3 * sum(cov[t].duration for t in remaining) + 30
        status, first = _pytest(tree, remaining, limit)
        if status == "passed":
            break
        if status == "timeout" or first not in remaining:
            bad.update(remaining)      # cannot tell which: leave them all out
            break
        bad.add(first)
        remaining = remaining[remaining.index(first) + 1:]
    return bad


# ---------------------------------------------------------------- report


def report(module: str, outcomes: Sequence[Outcome]) -> Dict[str, object]:
    """Counts and score of one module."""
    count = {s: sum(1 for o in outcomes if o.status == s)
             for s in ("killed", "timeout", "survived", "uncovered", "equivalent")}
    scored = len(outcomes) - count["equivalent"]
    score = 100.0 * (count["killed"] + count["timeout"]) / scored if scored else 100.0
    return dict(module=module, mutants=len(outcomes), score=score, **count)


def print_table(rows: Sequence[Dict[str, object]], seed: int, ops: Sequence[str]) -> None:
    print(f"seed {seed}, operators {','.join(ops)}")
    print(f"{'module':28} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} "
          f"{'uncovered':>9} {'equiv':>5} {'score':>7}")
    for r in rows:
        print(f"{r['module']:28} {r['mutants']:>7} {r['killed']:>6} {r['timeout']:>7} "
              f"{r['survived']:>8} {r['uncovered']:>9} {r['equivalent']:>5} {r['score']:>6.1f}%")


def print_details(outcomes: Sequence[Outcome], text: str) -> None:
    """Survivors by line, then the equivalent mutants with their reasons."""
    lines = text.splitlines()
    for o in outcomes:
        if o.status in ("survived", "uncovered"):
            m = o.mutant
            tag = "no test covers it" if o.status == "uncovered" else "survived"
            print(f"  {m.module}:{m.line} [{m.op}] {tag}: {lines[m.line - 1].strip()}")
            print(f"      {m.before.strip() or '(insert)'!s}  ->  {m.after.strip()}")
            print(f"      key {(m.op, lines[m.line - 1].strip(), m.after.strip())!r}")
    for o in outcomes:
        if o.status == "equivalent":
            m = o.mutant
            print(f"  {m.module}:{m.line} [{m.op}] equivalent: {lines[m.line - 1].strip()}"
                  f"  ->  {m.after.strip()}\n      because {o.reason}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", help="module path (default: all of MODULES)")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--sample", type=int, default=60, help="mutants per module (default 60)")
    ap.add_argument("--all", action="store_true", help="every mutant, no sampling")
    ap.add_argument("--ops", default=",".join(OPERATORS),
                    help=f"operators (default all: {','.join(OPERATORS)})")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    ap.add_argument("--trace", action="store_true",
                    help="bring the per-test coverage cache up to date and stop")
    ap.add_argument("--json", help="write the outcomes to this file")
    ap.add_argument("--tests", nargs="+", type=pathlib.Path,
                    help="test files to draw covering tests from (default: all of tests/)")
    args = ap.parse_args(argv)
    ops = [o for o in args.ops.split(",") if o]
    unknown = set(ops) - set(OPERATORS)
    if unknown:
        ap.error(f"unknown operators: {', '.join(sorted(unknown))}")
    modules = args.module or list(MODULES)
    for m in modules:
        if m not in MODULES:
            ap.error(f"{m} is not one of: {', '.join(MODULES)}")
    files = [p.resolve() for p in args.tests] if args.tests else _test_files()
    if args.trace:
        print(f"{len(coverage_map(modules, files))} passing tests traced", file=sys.stderr)
        return 0
    chosen: Dict[str, List[Mutant]] = {}
    texts: Dict[str, str] = {}
    rng = random.Random(args.seed)
    for m in modules:
        texts[m] = (ROOT / m).read_text()
        every = generate(m, texts[m], ops)
        pick = every if args.all or args.sample >= len(every) else \
            sorted(rng.sample(every, args.sample), key=lambda x: (x.start, x.op, x.after))
        chosen[m] = pick
        if args.list:
            for x in pick:
                print(f"{m}:{x.line} [{x.op}] {x.before.strip() or '(insert)'} -> {x.after.strip()}")
    if args.list:
        return 0
    cov = coverage_map(modules, files)
    trees = [_make_copy(n) for n in range(max(1, args.jobs))]
    rows: List[Dict[str, object]] = []
    all_outcomes: List[Outcome] = []
    try:
        for m in modules:
            print(f"{m}: {len(chosen[m])} mutants", file=sys.stderr, flush=True)
            outcomes = run_module(m, cov, chosen[m], texts[m], trees)
            rows.append(report(m, outcomes))
            all_outcomes.extend(outcomes)
            print_details(outcomes, texts[m])
            r = rows[-1]
            print(f"{m}: score {r['score']:.1f}% ({r['killed']} killed, {r['timeout']} timeout, "
                  f"{r['survived']} survived, {r['uncovered']} uncovered, "
                  f"{r['equivalent']} equivalent)", flush=True)
    finally:
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
    print_table(rows, args.seed, ops)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            [dict(status=o.status, by=o.by, reason=o.reason, **o.mutant.__dict__)
             for o in all_outcomes], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
