"""CO-RE relocations: patch a program's instructions for the running kernel.

``relocate()`` takes the relocations clang recorded in ``.BTF.ext`` (each
names an instruction, a local BTF type and an access string such as
``0:1:3``), finds the target types with the same essential name (ignoring
``___flavor`` suffixes) in the kernel's BTF, matches the access against each
(by field name, see ``corematch``) and patches the immediate or offset the
compiler left in the instruction.  A relocation with no matching target
poisons its instruction, as libbpf does: an unreachable instruction (guarded
by ``bpf_core_field_exists()`` and friends) is removed by the verifier, a
reachable one makes it fail on ``call unknown#195896080`` which the loader
turns into ``poison_message()``.  Pure: no syscalls (the default targets come
from ``pybpf.btf.kernel``, which reads files).
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union, cast

from ..asm import insn as _insn
from .. import uapi
from ..errors import BPFError, ObjectError
from ..record import Record
from ..uapi import bpf_core_relo_kind as K
from .corematch import (ENUMVAL_KINDS, FIELD_KINDS, FLAVOR_SEP, KIND_NAMES, CoreError,
                        Poison, Spec, access_expr, c_name, essential_name, format_spec,
                        kind_family, match, parse_spec, resize_is_safe, shorten, value_of)

if TYPE_CHECKING:
    from .ext import CoreRelo
    from .spec import BTF

__all__ = ["relocate", "Result", "Candidates", "poison_message", "is_poisoned", "POISON_IMM",
           "essential_name", "KIND_NAMES"]

#: imm of the helper call that replaces an unresolvable instruction (libbpf's "bad relo").
POISON_IMM = 0xBAD2310

_U64 = (1 << 64) - 1
_SIZE_BYTES = {uapi.BPF_B: 1, uapi.BPF_H: 2, uapi.BPF_W: 4, uapi.BPF_DW: 8}
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}
_POISON_SLOT = _insn.Insn(_insn.CALL, 0, 0, 0, POISON_IMM).encode()


class Result(Record):
    """What one relocation did."""
    _fields = ("index", "insn", "kind", "type_id", "type_name", "access", "spec", "orig", "new",
               "poisoned", "target", "reason", "where")
    __slots__ = _fields
    index: int              # position in the relocation list
    insn: int               # slot index in the instructions passed to relocate()
    kind: int                # a bpf_core_relo_kind
    type_id: int            # local root type
    type_name: str          # "struct task_struct___local"
    access: str             # as C: "struct task_struct___local.comm[2]"
    spec: str               # libbpf notation: "[7] struct task_struct___local.pid (0:1 @ offset 4)"
    orig: int               # the value the compiler wrote (for the local types)
    new: int                # the value patched in (meaningless when poisoned)
    poisoned: bool
    target: str             # the matching target spec, "" when none matched
    reason: str             # why the instruction was poisoned
    where: str              # describe(insn), or "insn #N"

    def __init__(self, index: int, insn: int, kind: int, type_id: int, type_name: str,
                 access: str, spec: str, orig: int, new: int, poisoned: bool = False,
                 target: str = "", reason: str = "", where: str = "") -> None:
        self.index = index
        self.insn = insn
        self.kind = kind
        self.type_id = type_id
        self.type_name = type_name
        self.access = access
        self.spec = spec
        self.orig = orig
        self.new = new
        self.poisoned = poisoned
        self.target = target
        self.reason = reason
        self.where = where

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    def __str__(self) -> str:
        head = f"relo #{self.index} <{self.kind_name}> {self.spec} at {self.where}"
        if self.poisoned:
            return f"{head}: poisoned ({self.reason})"
        return f"{head}: {self.orig} -> {self.new}" + (f" via {self.target}" if self.target else "")


def is_poisoned(insns: Union[bytes, bytearray, memoryview], idx: int) -> bool:
    """Whether slot idx is the poison call relocate() writes."""
    return bytes(insns[idx * _insn.INSN_SIZE:(idx + 1) * _insn.INSN_SIZE]) == _POISON_SLOT


def poison_message(result: Result, line: Optional[str] = None) -> str:
    """The explanation for a verifier failure on a poisoned instruction
    (``line``: its source line, when the loader knows it)."""
    if result.kind in FIELD_KINDS:
        what, guard = "field", "bpf_core_field_exists()"
    elif result.kind in ENUMVAL_KINDS:
        what, guard = "enum value", "bpf_core_enum_value_exists()"
    else:
        what, guard = "type", "bpf_core_type_exists()"
    msg = (f"CO-RE relocation #{result.index} ({result.kind_name}) for {what} "
           f"`{result.access}` could not be applied: {result.reason}. "
           f"The instruction at {result.where} was poisoned and the verifier reached it; "
           f"guard the access with {guard} or adjust the local type.")
    if line:
        msg += f"\n    {line.strip()}"
    return msg


# ------------------------------------------------------------------ target candidates

Cand = Tuple["BTF", int]      # (target BTF, type id)
#: local root type id -> its target candidates, pruned as relocations match them
#: (libbpf's per-object cand_cache); valid for one local BTF and one target set.
Candidates = Dict[int, List[Cand]]

# target BTF -> (essential name, kind family) -> ids.  A target BTF must not
# change once used (types added later are not seen).
_CANDS: "weakref.WeakKeyDictionary[BTF, Dict[Tuple[str, int], Tuple[int, ...]]]" = \
    weakref.WeakKeyDictionary()


def _cands_in(btf: "BTF", name: str, family: int) -> Tuple[int, ...]:
    """Types of btf (its own, not its base's) named ``name`` or ``name___*`` of the family."""
    per_btf = _CANDS.get(btf)
    if per_btf is None:
        per_btf = _CANDS[btf] = {}
    key = (name, family)
    found = per_btf.get(key)
    if found is None:
        found = per_btf[key] = tuple(_search(btf, name, family))
    return found


def _search(btf: "BTF", name: str, family: int) -> List[int]:
    kinds = (uapi.BTF_KIND_ENUM, uapi.BTF_KIND_ENUM64) if family == uapi.BTF_KIND_ENUM \
        else (family,)
    ids: Set[int] = set()
    for full in [name] + _flavors(btf).get(name, []):
        for kind in kinds:
            ids.update(i for i in btf.find(full, kind) if i >= btf.start_id)
    return sorted(ids)


# BTF -> essential name -> the flavored names ("foo___v2") it has.
_FLAVORS: "weakref.WeakKeyDictionary[BTF, Dict[str, List[str]]]" = weakref.WeakKeyDictionary()


def _flavors(btf: "BTF") -> Dict[str, List[str]]:
    """Every flavored name of btf (and its base), by essential name.

    BTF.find() only looks up exact names, so this indexes the strings
    containing "___" once per BTF: one C-speed pass over the string section
    (vmlinux has a few dozen such strings)."""
    index = _FLAVORS.get(btf)
    if index is None:
        index = {}
        if btf.base is not None:
            for essential, names in _flavors(btf.base).items():
                index[essential] = list(names)
        for full in btf.names_containing(FLAVOR_SEP):
            essential = essential_name(full)
            if essential != full:
                index.setdefault(essential, []).append(full)
        _FLAVORS[btf] = index
    return index


class _Targets:
    """Where candidates come from: the main BTF first; modules only if it has none."""

    def __init__(self, targets: Optional[Sequence["BTF"]]):
        self._given = list(targets) if targets is not None else None
        self._main: Optional["BTF"] = None
        self._modules: Optional[List["BTF"]] = None

    def main(self) -> Optional["BTF"]:
        if self._main is None:
            if self._given is not None:
                self._main = self._given[0] if self._given else None
            else:
                from . import kernel
                self._main = kernel.vmlinux()
        return self._main

    def modules(self) -> List["BTF"]:
        if self._modules is None:
            if self._given is not None:
                self._modules = self._given[1:]
            else:
                from . import kernel
                self._modules = list(kernel.modules().values())
        return self._modules

    def candidates(self, name: str, family: int) -> List[Cand]:
        main = self.main()
        if main is not None:
            found = [(main, i) for i in _cands_in(main, name, family)]
            if found:
                return found
        return [(mod, i) for mod in self.modules() for i in _cands_in(mod, name, family)]


# ------------------------------------------------------------------ relocation

class _Outcome(Record):
    """One relocation's values: the local one, the target's, and how to patch them."""

    _fields = ("orig", "new", "validate", "poisoned", "reason", "orig_size", "new_size",
               "resize_ok", "narrow")
    __slots__ = _fields
    orig: int
    new: int
    validate: bool
    poisoned: bool
    reason: str             # set with poisoned
    orig_size: int          # direct load/store width of the field (0: n/a)
    new_size: int
    resize_ok: bool         # whether the load/store may change width
    narrow: bool            # local value is a clang<15 32-bit truncation of an enum64

    def __init__(self, orig: int, new: int = 0, validate: bool = True,
                 poisoned: bool = False, reason: str = "", orig_size: int = 0,
                 new_size: int = 0, resize_ok: bool = True, narrow: bool = False) -> None:
        self.orig = orig
        self.new = new
        self.validate = validate
        self.poisoned = poisoned
        self.reason = reason            # read only when poisoned
        self.orig_size = orig_size
        self.new_size = new_size
        self.resize_ok = resize_ok
        self.narrow = narrow


def _outcome(local: Spec, targ: Optional[Spec], kind: int) -> _Outcome:
    lv = value_of(local, kind)
    out = _Outcome(lv.value, validate=lv.validate)
    if kind in ENUMVAL_KINDS:
        out.narrow = local.btf[local.accessors[0].type_id].kind == uapi.BTF_KIND_ENUM
    try:
        tv = value_of(targ, kind)
    except Poison as e:
        out.poisoned, out.reason = True, str(e)
        return out
    out.new = tv.value
    if kind in FIELD_KINDS and lv.mem_size != tv.mem_size:
        out.orig_size, out.new_size = lv.mem_size, tv.mem_size
        out.resize_ok = bool(lv.mem_size and tv.mem_size) and resize_is_safe(
            local.btf, lv.mem_type, cast(Spec, targ).btf, tv.mem_type)   # a field was found
    return out


class _Run:
    """One relocate() call: the candidate lists, pruned as relocations match."""

    def __init__(self, insns: bytearray, local: "BTF", targets: _Targets, insn_base: int,
                 describe: Optional[Callable[[int], str]], cands: Optional["Candidates"]):
        self.insns = insns
        self.local = local
        self.targets = targets
        self.insn_base = insn_base
        self.describe = describe
        self.cands: Candidates = cands if cands is not None else {}

    def apply(self, n: int, relo: "CoreRelo") -> Result:
        idx, where = self._slot(n, relo)
        kind = relo.kind
        if kind not in KIND_NAMES:
            raise ObjectError(f"CO-RE relocation #{n} at {where}: unknown kind {kind}")
        local = self.local
        try:
            local[relo.type_id]
            type_name = c_name(local, relo.type_id)
        except (BPFError, IndexError, KeyError):
            raise ObjectError(f"CO-RE relocation #{n} ({KIND_NAMES[kind]}) at {where}: "
                              f"type id {relo.type_id} is not in the local BTF") from None
        res = Result(n, idx, kind, relo.type_id, type_name, type_name,
                     f"[{relo.type_id}] {type_name}", 0, 0, where=where)
        try:
            spec = parse_spec(local, relo.type_id, relo.access_str, kind)
            res.access, res.spec = access_expr(spec), format_spec(spec)
            out = self._compute(spec, res)
            self._patch(idx, out, res)
        except (CoreError, ObjectError) as e:     # ObjectError: malformed BTF met on the way
            raise ObjectError(f"CO-RE relocation #{n} <{KIND_NAMES[kind]}> {res.spec} "
                              f"(access {shorten(relo.access_str)!r}) at {where}: {e}") from None
        return res

    def _slot(self, n: int, relo: "CoreRelo") -> Tuple[int, str]:
        off = relo.insn_off
        idx = off // _insn.INSN_SIZE - self.insn_base
        if off % _insn.INSN_SIZE or not 0 <= idx < len(self.insns) // _insn.INSN_SIZE:
            raise ObjectError(f"CO-RE relocation #{n}: instruction offset {off} is not an "
                              f"instruction of this program")
        return idx, self.describe(idx) if self.describe else f"insn #{idx}"

    def _compute(self, spec: Spec, res: Result) -> _Outcome:
        kind = spec.kind
        if kind == K.BPF_CORE_TYPE_ID_LOCAL:
            return _Outcome(spec.root_id, spec.root_id, validate=False)
        name = self.local[spec.root_id].name
        if not name:
            raise CoreError("relocations against anonymous types are not supported")
        cands = self._candidates(spec.root_id, name)
        chosen: Optional[Tuple[_Outcome, Spec]] = None
        kept: List[Cand] = []
        misses: List[str] = []
        for tbtf, tid in cands:
            targ, why = match(spec, tbtf, tid)
            if targ is None:
                misses.append(f"[{tid}] {why}")
                continue
            out = _outcome(spec, targ, kind)
            if chosen is None:
                chosen = (out, targ)
            elif targ.bit_offset != chosen[1].bit_offset or out.poisoned != chosen[0].poisoned \
                    or out.new != chosen[0].new:
                raise CoreError(
                    f"ambiguous: candidates {format_spec(chosen[1])} and {format_spec(targ)} "
                    f"give {_show(chosen[0])} and {_show(out)}")
            kept.append((tbtf, tid))
        if chosen is None:
            out = _outcome(spec, None, kind)
            if out.poisoned:
                out.reason = _why_missing(name, misses)
            return out
        cands[:] = kept         # later relocations of this type only consider these
        res.target = format_spec(chosen[1])
        if chosen[1].btf is not self.targets.main():
            res.target += f" in {chosen[1].btf.section}"
        return chosen[0]

    def _candidates(self, type_id: int, name: str) -> List[Cand]:
        found = self.cands.get(type_id)
        if found is None:
            family = kind_family(self.local[type_id].kind)
            found = self.cands[type_id] = self.targets.candidates(essential_name(name), family)
        return found

    # -------------------------------------------------------------- patching

    def _patch(self, idx: int, out: _Outcome, res: Result) -> None:
        res.orig, res.new = out.orig, out.new
        if out.poisoned:
            self._poison(idx, res, out.reason)
            return
        buf = self.insns
        ins = _insn.decode(buf, idx)
        cls = ins.cls
        if cls in (uapi.BPF_ALU, uapi.BPF_ALU64):
            if ins.code & uapi.BPF_X or ins.code & 0xF0 == uapi.BPF_END:
                raise CoreError(f"instruction {_insn.disasm_one(buf, idx)!r} has no "
                                f"immediate operand to relocate")
            if out.validate and ins.imm & _U64 != out.orig:     # the s32, widened: libbpf's test
                raise CoreError(f"instruction {_insn.disasm_one(buf, idx)!r} holds {ins.imm}, "
                                f"expected {out.orig}")
            signed = out.new - (1 << 64) if out.new >> 63 else out.new
            top = 1 << 31 if cls == uapi.BPF_ALU64 else 1 << 32
            if not -(1 << 31) <= signed < top:
                raise CoreError(f"value {out.new:#x} does not fit the 32-bit immediate of "
                                f"{_insn.disasm_one(buf, idx)!r}")
            res.orig = ins.imm
            _insn.set_imm(buf, idx, out.new)
        elif cls in (uapi.BPF_LDX, uapi.BPF_ST, uapi.BPF_STX):
            if out.validate and ins.off != out.orig:
                raise CoreError(f"instruction {_insn.disasm_one(buf, idx)!r} has offset "
                                f"{ins.off}, expected {out.orig}")
            if out.new > 0x7FFF:
                raise CoreError(f"offset {out.new} does not fit the 16-bit offset of "
                                f"{_insn.disasm_one(buf, idx)!r}")
            if not out.resize_ok:
                self._poison(idx, res, f"the field is {out.new_size} bytes in the target, "
                             f"{out.orig_size} locally, and only pointers and unsigned "
                             f"integers can be loaded or stored with another width")
                return
            res.orig = ins.off
            _insn.set_off(buf, idx, out.new)
            if out.new_size != out.orig_size:
                self._resize(idx, ins, out)
        elif ins.code == _insn.LD_IMM64:
            if not self._plain_ld_imm64(idx, ins):
                raise CoreError(f"ld_imm64 at {res.where} has an unexpected form")
            imm = _insn.imm64(buf, idx)
            mask = 0xFFFFFFFF if out.narrow else _U64
            if out.validate and (imm ^ out.orig) & mask:
                raise CoreError(f"instruction {_insn.disasm_one(buf, idx)!r} holds {imm:#x}, "
                                f"expected {out.orig:#x}")
            res.orig = imm
            _insn.set_imm64(buf, idx, out.new)
        else:
            raise CoreError(f"can't relocate instruction {_insn.disasm_one(buf, idx)!r} "
                            f"(code {ins.code:#x})")

    def _resize(self, idx: int, ins: _insn.Insn, out: _Outcome) -> None:
        width = _SIZE_BYTES[ins.code & 0x18]
        if width != out.orig_size:
            raise CoreError(f"instruction accesses {width} bytes of a {out.orig_size}-byte field")
        size = _BYTES_SIZE.get(out.new_size)
        if size is None:
            raise CoreError(f"the target field is {out.new_size} bytes: "
                            f"no load/store has that width")
        _insn.set_code(self.insns, idx, (ins.code & ~0x18) | size)

    def _plain_ld_imm64(self, idx: int, ins: _insn.Insn) -> bool:
        if idx + 1 >= len(self.insns) // _insn.INSN_SIZE or ins.src or ins.off:
            return False
        nxt = _insn.decode(self.insns, idx + 1)
        return not (nxt.code or nxt.dst or nxt.src or nxt.off)

    def _poison(self, idx: int, res: Result, reason: str) -> None:
        """Turn the instruction (both slots of a ld_imm64) into the poison call."""
        res.poisoned, res.reason = True, reason
        size = _insn.INSN_SIZE
        slots = 2 if self.insns[idx * size] == _insn.LD_IMM64 else 1
        for i in range(idx, min(idx + slots, len(self.insns) // size)):
            self.insns[i * size:(i + 1) * size] = _POISON_SLOT


def _why_missing(name: str, misses: List[str]) -> str:
    if not misses:
        return f"the target has no type named {essential_name(name)!r} (or a ___flavor of it)"
    more = f"; and {len(misses) - 3} more candidates" if len(misses) > 3 else ""
    return "; ".join(misses[:3]) + more


def _show(out: _Outcome) -> str:
    return "poison" if out.poisoned else str(out.new)


def relocate(insns: bytearray, relos: Sequence["CoreRelo"], local: "BTF",
             targets: Optional[Sequence["BTF"]] = None, *, insn_base: int = 0,
             describe: Optional[Callable[[int], str]] = None,
             cands: Optional[Candidates] = None) -> List[Result]:
    """Apply the CO-RE relocations ``relos`` to ``insns`` in place.

    ``relo.insn_off // 8 - insn_base`` is the slot of each relocation.  Target
    candidates come from ``targets[0]`` (default: the kernel's vmlinux BTF),
    or, when it has none for a type, from ``targets[1:]`` (default: the
    kernel modules' BTF).  ``describe(slot)`` names an instruction in errors.
    ``cands``: the candidate cache to use and update; pass the same dict for
    every section of one object (as libbpf's per-object cache: a type's
    candidates pruned by one section's relocations stay pruned for the next),
    with the same ``local`` and ``targets``.  Default: a fresh one.
    Raises ObjectError for malformed or ambiguous relocations.
    """
    run = _Run(insns, local, _Targets(targets), insn_base, describe, cands)
    return [run.apply(n, relo) for n, relo in enumerate(relos)]
