"""Exception callbacks: the ``exception_callback:NAME`` BTF decl tag (pure).

A program that may call ``bpf_throw()`` names its exception callback with
``__attribute__((btf_decl_tag("exception_callback:NAME")))`` on its own
function.  Nothing calls the callback, so a linker that appends only called
subprograms would leave it out; libbpf (bpf_prog_assign_exc_cb) appends it to
the program after the called ones, and the verifier finds it by the tag.
The same checks as libbpf: the tag must sit on a global function (a main
program), name a global, non-hidden function in .text, and only one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional

from .. import uapi
from ..btf import BTF
from ..btf import types as T
from .elf import STB_LOCAL, STT_FUNC, STV_HIDDEN, ElfObject
from ..errors import ObjectError
from ..record import Record

if TYPE_CHECKING:
    from .spec import FuncSpec

TAG_PREFIX = "exception_callback:"


class ExceptionTags(Record):
    """The exception_callback: decl tags of an object's BTF, read once."""

    _fields = ("by_program", "misplaced")
    __slots__ = _fields
    by_program: Dict[str, List[str]]    # FUNC -> callbacks
    misplaced: List[str]                # tags not on a global FUNC

    def __init__(self, by_program: Optional[Dict[str, List[str]]] = None,
                 misplaced: Optional[List[str]] = None) -> None:
        self.by_program = {} if by_program is None else by_program
        self.misplaced = [] if misplaced is None else misplaced

    @classmethod
    def of(cls, btf: Optional[BTF]) -> "ExceptionTags":
        out = cls()
        if btf is None:
            return out
        for type_id in range(btf.start_id, len(btf)):
            tag = btf[type_id]
            if not isinstance(tag, T.DeclTag) or tag.component_idx != -1 \
                    or not tag.name.startswith(TAG_PREFIX):
                continue
            func = btf[tag.type] if 0 < tag.type < len(btf) else None
            if isinstance(func, T.Func) and func.linkage == uapi.BTF_FUNC_GLOBAL:
                out.by_program.setdefault(func.name, []).append(tag.name[len(TAG_PREFIX):])
            else:
                out.misplaced.append(tag.name)
        return out


def find_exception_callback(elf: ElfObject, tags: ExceptionTags, functions: List[FuncSpec],
                            prog_name: str, section: str) -> Optional[FuncSpec]:
    """The subprogram to append to program ``prog_name`` as its exception callback
    (checked, as libbpf does, only for programs that are loaded)."""
    if tags.misplaced:
        raise ObjectError(f"decl tag {tags.misplaced[0]!r} is not on a main program (a "
                          "global function)", section=".BTF")
    names = tags.by_program.get(prog_name, [])
    if len(names) != 1:         # several: the verifier refuses the program
        return None
    if not names[0]:
        raise ObjectError(f"program {prog_name!r}: exception_callback decl tag names "
                          "no function", section=section)
    return _callback(elf, functions, prog_name, names[0], section)


def _callback(elf: ElfObject, functions: List[FuncSpec], prog_name: str, cb_name: str,
              section: str) -> FuncSpec:
    candidates = [f for f in functions if f.name == cb_name
                  and elf.sections[f.shndx].name == ".text"]
    if not candidates:
        raise ObjectError(f"program {prog_name!r}: cannot find exception callback "
                          f"{cb_name!r} among the .text functions", section=section)
    if len(candidates) > 1:
        raise ObjectError(f"program {prog_name!r}: several .text functions are named "
                          f"{cb_name!r}, the exception callback", section=section)
    cb = candidates[0]
    sym = next((s for s in elf.symbols if s.type == STT_FUNC and s.name == cb_name
                and s.shndx == cb.shndx), None)
    if sym is None or sym.bind == STB_LOCAL or sym.visibility == STV_HIDDEN:
        raise ObjectError(f"program {prog_name!r}: exception callback {cb_name!r} must be "
                          "a global, non-hidden function", section=".text")
    return cb
