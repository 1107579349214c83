"""Will this object load on that kernel?  Answered from the kernel's BTF alone.

For each target kernel BTF, :func:`check` relocates the object as the loader
would (:func:`pybpf.obj.offline.relocate`, the loader's own Linker) and reports
per program: every CO-RE relocation's result, the poisoned ones with their
source line and whether the verifier could reach them, the attach target
(tracepoint, raw tracepoint, kernel function, LSM hook, iterator) present
or not, the externs it uses (kfuncs, ksyms, Kconfig) resolved or not, and a
verdict.

Reaching a poisoned instruction is what fails a load: guarded code
(``if (bpf_core_field_exists(...))``) is removed by the verifier once the
guard's relocation made it a constant.  :func:`reachable` follows the code
with the constants the relocations wrote (moves, 64-bit immediates, compares
of known registers) the way the verifier prunes dead branches; anything it
cannot decide counts as reachable.

Pure: no syscalls, no root.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

from . import externs as externs_mod
from ..asm import insn as I
from .. import uapi
from ..btf import BTF
from .elf import SHN_UNDEF
from ..errors import BPFError, ObjectError
from .offline import BTFSource, ProgramRelocation, Relocation, module_name, relocate
from ..record import Record
from .sections import KERNEL_BTF_TARGETS
from .spec import ObjectSpec, ProgramSpec
from .struct_ops import kernel_layout

_U64 = (1 << 64) - 1
Regs = Tuple[Optional[int], ...]        # r0..r10: a known u64 value, or None


class Finding(Record):
    """One reason a program fails (``fatal``) or might misbehave on a kernel."""

    _fields = ("fatal", "message")
    __slots__ = _fields
    fatal: bool
    message: str

    def __init__(self, fatal: bool, message: str) -> None:
        self.fatal = fatal
        self.message = message


class ProgramCheck(Record):
    """One program on one kernel."""

    _fields = ("name", "section", "relocation", "unreachable", "attach", "externs", "findings")
    __slots__ = _fields
    name: str
    section: str
    relocation: ProgramRelocation
    unreachable: Set[int]                   # poisoned slots never reached
    attach: str                             # what the attach check found
    externs: List[Tuple[str, str, str]]     # (name, kind, status)
    findings: List[Finding]

    def __init__(self, name: str, section: str, relocation: ProgramRelocation,
                 unreachable: Optional[Set[int]] = None, attach: str = "",
                 externs: Optional[List[Tuple[str, str, str]]] = None,
                 findings: Optional[List[Finding]] = None) -> None:
        self.name = name
        self.section = section
        self.relocation = relocation
        self.unreachable = set() if unreachable is None else unreachable
        self.attach = attach
        self.externs = [] if externs is None else externs
        self.findings = [] if findings is None else findings

    @property
    def ok(self) -> bool:
        return not any(f.fatal for f in self.findings)

    @property
    def verdict(self) -> str:
        """``ok`` or ``fails: <reasons>``."""
        fatal = [f.message for f in self.findings if f.fatal]
        return "ok" if not fatal else "fails: " + "; ".join(fatal)


class TargetCheck(Record):
    """Every program of the object on one kernel; ``error`` if none can be checked."""

    _fields = ("target", "programs", "error")
    __slots__ = _fields
    target: str
    programs: List[ProgramCheck]
    error: str

    def __init__(self, target: str, programs: Optional[List[ProgramCheck]] = None,
                 error: str = "") -> None:
        self.target = target
        self.programs = [] if programs is None else programs
        self.error = error

    @property
    def ok(self) -> bool:
        return not self.error and all(p.ok for p in self.programs)


def check(spec: ObjectSpec, targets: Sequence[BTFSource], kconfig: Optional[str] = None,
          kernel_version: int = 0) -> List[TargetCheck]:
    """One TargetCheck per kernel BTF in ``targets`` (each a vmlinux BTF);
    ``kconfig`` and ``kernel_version`` as for ``offline.relocate``."""
    out = []
    for target in targets:
        name = target.section if isinstance(target, BTF) else str(target)
        try:
            rel = relocate(spec, target, kconfig=kconfig, kernel_version=kernel_version,
                           strict=False)
        except BPFError as e:       # malformed BTF, ambiguous CO-RE...
            out.append(TargetCheck(name, error=str(e)))
            continue
        known = _Known(kconfig is not None, bool(kernel_version))
        out.append(TargetCheck(rel.target, [_check_program(spec, p, rel, known)
                                            for p in spec.programs]))
    return out


class _Known(Record):
    """What the caller told about the targets that their BTF does not say."""

    _fields = ("kconfig", "version")
    __slots__ = _fields
    kconfig: bool
    version: bool

    def __init__(self, kconfig: bool, version: bool) -> None:
        self.kconfig = kconfig
        self.version = version


def _check_program(spec: ObjectSpec, prog: ProgramSpec, rel: Relocation,
                   known: _Known) -> ProgramCheck:
    pr = rel.programs[prog.name]
    pc = ProgramCheck(prog.name, prog.section, pr)
    live = reachable(pr.insns)
    for c in pr.poisoned:
        if c.slot not in live:
            pc.unreachable.add(c.slot)
            continue
        r = c.result
        where = f" at {c.source}" if c.source else f" at insn {c.slot}"
        pc.findings.append(Finding(True, f"CO-RE relocation #{r.index} <{r.kind_name}> "
                                         f"{r.access} poisoned{where} ({r.reason})"))
    pc.attach, missing = attach_target(prog, rel.targets)
    if missing:
        pc.findings.append(Finding(missing == "fatal", pc.attach))
    if prog.sec_def is not None and prog.sec_def.prog_type == uapi.BPF_PROG_TYPE_EXT:
        pc.findings.append(Finding(False, "freplace: the program it replaces into is only "
                                          "known at load (attach_btf.set_attach_target)"))
    if prog.sec_def is not None and prog.sec_def.prog_type == uapi.BPF_PROG_TYPE_STRUCT_OPS:
        pc.findings.extend(_struct_ops_findings(spec, prog.name, rel.targets))
    _check_externs(spec, prog, pr, rel, live, pc, known)
    return pc


def _struct_ops_findings(spec: ObjectSpec, name: str, targets: Sequence[BTF]
                         ) -> List[Finding]:
    """A struct_ops program loads only as a member of a struct_ops map whose kernel
    type (``struct bpf_struct_ops_<type>``) the target has."""
    bound = [m.struct_ops for m in spec.maps
             if m.struct_ops is not None and name in m.struct_ops.progs.values()]
    if not bound:
        return [Finding(True, "struct_ops program bound to no struct_ops map: nothing "
                              "names the struct and member it implements")]
    out = []
    for so in bound:
        try:
            kernel_layout(so.kernel_type_name, [(None, t) for t in targets])
        except ObjectError as e:
            out.append(Finding(True, f"struct_ops map {so.name!r}: {e}"))
    return out


def _check_externs(spec: ObjectSpec, prog: ProgramSpec, pr: ProgramRelocation,
                   rel: Relocation, live: Set[int], pc: ProgramCheck, known: _Known) -> None:
    """The externs the program's code names (its functions' relocations against
    undefined symbols), each resolved, absent-but-weak, or missing.  A Kconfig
    value (or LINUX_KERNEL_VERSION) missing only because no Kconfig (version)
    was given is a warning, not a failure."""
    used: Dict[str, externs_mod.Extern] = {}
    for func, _ in pr.linked.placed:
        lo, hi = func.start * I.INSN_SIZE, (func.start + func.count) * I.INSN_SIZE
        for r in spec.elf.relocs.get(func.shndx, []):
            if r.sym.shndx == SHN_UNDEF and lo <= r.offset < hi:
                ext = spec.externs.by_symbol(r.sym.index)
                if ext is not None:
                    used.setdefault(ext.name, ext)
    poisoned_calls = {ins.imm for slot, ins in enumerate(I.iterate(pr.insns))
                      if slot in live and ins.code == I.CALL and ins.src == 0}
    res = rel.externs
    for ext in used.values():
        kind = "kfunc" if ext.is_func else "kconfig" if ext.is_kconfig else "ksym"
        if not ext.is_kconfig and not ext.type_id:
            status = "address from /proc/kallsyms at load (not in BTF)"
            if not ext.weak:
                pc.findings.append(Finding(False, f"untyped ksym {ext.name!r}: its address "
                                                  "is only known to the running kernel"))
        elif ext.name in res.missing:
            given = known.version if ext.name == "LINUX_KERNEL_VERSION" else known.kconfig
            status = "missing" if given or not ext.is_kconfig else "unknown"
            pc.findings.append(Finding(status == "missing", f"{kind} {ext.name!r} {status}: "
                                                            f"{res.missing[ext.name]}"))
        elif ext.is_kconfig or ext.name in res.ksyms:
            status = "found" if not ext.is_kconfig else "set (a __weak one unset reads 0)"
        else:
            status = "absent (__weak)"
            if ext.is_func and externs_mod.POISON_KFUNC_BASE + ext.index in poisoned_calls:
                pc.findings.append(Finding(True, f"kfunc {ext.name!r} is absent and its "
                                                 "call is reachable (guard it with "
                                                 "bpf_ksym_exists())"))
        pc.externs.append((ext.name, kind, status))


# ------------------------------------------------------------------ attach targets

def _has(targets: Sequence[BTF], name: str, kind: int, module: str = "") -> bool:
    for n, btf in enumerate(targets):
        if module and (n == 0 or module_name(btf) != module):
            continue
        if any(n == 0 or i >= btf.start_id for i in btf.find(name, kind)):
            return True
    return False


def _syscall_funcs(name: str) -> List[str]:
    return [f"__{arch}_sys_{name}" for arch in ("x64", "arm64", "riscv", "s390x", "powerpc")] \
        + [f"__se_sys_{name}", f"__do_sys_{name}", f"sys_{name}"]


def attach_target(prog: ProgramSpec, targets: Sequence[BTF]) -> Tuple[str, str]:
    """(what was looked for and found or not, "" / "fatal" / "warn").

    tracepoints: ``btf_trace_<name>`` or ``trace_event_raw_<name>`` (syscall
    tracepoints: the syscall's function); raw_tp / tp_btf: ``btf_trace_<name>``;
    fentry/fexit/fmod_ret, lsm (``bpf_lsm_<hook>``), iter (``bpf_iter_<name>``):
    the FUNC (in MODULE's BTF for ``MODULE:name``); kprobes and ksyscalls: the
    function in BTF (a warning only: kprobes also reach functions BTF lacks)."""
    sec_def, target = prog.sec_def, prog.attach_target
    if sec_def is None or not target:
        return "", ""
    base = sec_def.prefix.rstrip("+")
    if sec_def.attach_type in KERNEL_BTF_TARGETS and sec_def.prog_type != uapi.BPF_PROG_TYPE_EXT:
        prefix, kind, what = KERNEL_BTF_TARGETS[sec_def.attach_type]
        module, _, func = target.rpartition(":")
        found = _has(targets, prefix + func, kind, module)
        where = f" in module {module}" if module else ""
        return (f"{what} {func!r}{where}: {prefix + func} "
                f"{'found' if found else 'missing from this kernel'}", "" if found else "fatal")
    if sec_def.prog_type == uapi.BPF_PROG_TYPE_TRACEPOINT:
        category, _, event = target.partition("/")
        if category == "syscalls" and event.startswith(("sys_enter_", "sys_exit_")):
            call = event.split("_", 2)[2]
            found = any(_has(targets, f, uapi.BTF_KIND_FUNC) for f in _syscall_funcs(call))
            return (f"tracepoint {target}: syscall {call!r} "
                    f"{'found' if found else 'missing from this kernel'}",
                    "" if found else "fatal")
        found = _has(targets, "btf_trace_" + event, uapi.BTF_KIND_TYPEDEF) or \
            _has(targets, "trace_event_raw_" + event, uapi.BTF_KIND_STRUCT)
        return (f"tracepoint {target}: btf_trace_{event} / trace_event_raw_{event} "
                f"{'found' if found else 'missing from this kernel'}", "" if found else "fatal")
    if sec_def.prog_type in (uapi.BPF_PROG_TYPE_RAW_TRACEPOINT,
                             uapi.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE):
        found = _has(targets, "btf_trace_" + target, uapi.BTF_KIND_TYPEDEF)
        return (f"raw tracepoint {target}: btf_trace_{target} "
                f"{'found' if found else 'missing from this kernel'}", "" if found else "fatal")
    if base in ("kprobe", "kretprobe", "ksyscall", "kretsyscall"):
        func = target.split("+", 1)[0]
        names = _syscall_funcs(func) if base.endswith("syscall") else [func]
        found = any(_has(targets, f, uapi.BTF_KIND_FUNC) for f in names)
        return (f"kernel function {func!r} {'found' if found else 'not in BTF'}"
                + ("" if found else " (it may still exist without BTF)"),
                "" if found else "warn")
    return "", ""


# ------------------------------------------------------------------ reachability

def reachable(insns: bytes) -> Set[int]:
    """Slots the verifier could reach, pruning branches decided by constants.

    Registers hold a known value after ``mov imm``, ``mov reg`` of a known one
    and ``ld_imm64``; any other write, a load, or a call (r0-r5) makes them
    unknown.  A conditional jump whose operands are known takes one edge only.
    Subprogram calls and callbacks (``ld_imm64`` of a function) also reach
    their target, with unknown arguments."""
    n = I.count(insns)
    states: Dict[int, Regs] = {}
    unknown: Regs = (None,) * _NREGS
    work: List[Tuple[int, Regs]] = [(0, unknown)]
    while work:
        slot, regs = work.pop()
        if not 0 <= slot < n:
            continue
        old = states.get(slot)
        if old is not None:
            merged = tuple(a if a == b else None for a, b in zip(old, regs))
            if merged == old:
                continue
            regs = merged
        states[slot] = regs
        for nxt in _step(insns, slot, regs, unknown):
            work.append(nxt)
    return set(states)


#: one per value of the 4-bit register fields: r11-r15 do not exist (the verifier
#: refuses them), but a malformed program names them and is still walked
_NREGS = 16


def _step(insns: bytes, slot: int, regs: Regs, unknown: Regs) -> List[Tuple[int, Regs]]:
    ins = I.decode(insns, slot)
    cls, op = ins.cls, ins.code & 0xF0
    r = list(regs)
    if ins.code == I.LD_IMM64:
        if ins.src == uapi.BPF_PSEUDO_FUNC:
            r[ins.dst] = None
            return [(slot + 2, tuple(r)), (slot + ins.imm + 1, unknown)]
        r[ins.dst] = I.imm64(insns, slot) if ins.src == 0 and slot + 1 < I.count(insns) \
            else None
        return [(slot + 2, tuple(r))]
    if cls in (uapi.BPF_ALU, uapi.BPF_ALU64):
        if op == uapi.BPF_MOV and not ins.off:
            value = regs[ins.src] if ins.code & uapi.BPF_X else ins.imm & _U64
            if value is not None and cls == uapi.BPF_ALU:
                value &= 0xFFFFFFFF
            r[ins.dst] = value
        else:
            r[ins.dst] = None
        return [(slot + 1, tuple(r))]
    if cls in (uapi.BPF_LDX, uapi.BPF_LD):
        r[ins.dst] = None
        if cls == uapi.BPF_LD:          # legacy packet loads clobber r0
            r[0] = None
        return [(slot + 1, tuple(r))]
    if cls in (uapi.BPF_ST, uapi.BPF_STX):
        fetch = ins.code & 0xE0 == uapi.BPF_ATOMIC and ins.imm & uapi.BPF_FETCH
        if cls == uapi.BPF_STX and fetch:
            r[0 if ins.imm == uapi.BPF_CMPXCHG else ins.src] = None   # fetch variants
        return [(slot + 1, tuple(r))]
    if cls not in (uapi.BPF_JMP, uapi.BPF_JMP32):
        return [(slot + 1, tuple(r))]
    if ins.code == I.EXIT:
        return []
    if op == uapi.BPF_CALL:
        out = [(slot + 1, tuple([None] * 6 + r[6:]))]
        if ins.src == uapi.BPF_PSEUDO_CALL:
            out.append((slot + ins.imm + 1, unknown))
        return out
    if op == uapi.BPF_JA:
        return [(slot + 1 + (ins.imm if cls == uapi.BPF_JMP32 else ins.off), tuple(r))]
    taken, fall = (slot + 1 + ins.off, tuple(r)), (slot + 1, tuple(r))
    a = regs[ins.dst]
    b = regs[ins.src] if ins.code & uapi.BPF_X else ins.imm & _U64
    decided = None if a is None or b is None else _compare(op, a, b, cls == uapi.BPF_JMP32)
    if decided is None:
        return [taken, fall]
    return [taken] if decided else [fall]


def _compare(op: int, a: int, b: int, narrow: bool) -> Optional[bool]:
    bits = 32 if narrow else 64
    a, b = a & ((1 << bits) - 1), b & ((1 << bits) - 1)
    sa = a - (1 << bits) if a >> (bits - 1) else a
    sb = b - (1 << bits) if b >> (bits - 1) else b
    table = {uapi.BPF_JEQ: a == b, uapi.BPF_JNE: a != b, uapi.BPF_JGT: a > b,
             uapi.BPF_JGE: a >= b, uapi.BPF_JLT: a < b, uapi.BPF_JLE: a <= b,
             uapi.BPF_JSET: bool(a & b), uapi.BPF_JSGT: sa > sb, uapi.BPF_JSGE: sa >= sb,
             uapi.BPF_JSLT: sa < sb, uapi.BPF_JSLE: sa <= sb}
    return table.get(op)
