"""What the link layer needs of a program: :class:`ProgramView`.

:class:`pybpf.Program` satisfies it; the link modules depend on this view, not on
the lifecycle layer above them (which calls into them).
"""
from __future__ import annotations

from typing import Optional, Protocol

from ..obj.sections import SecDef


class ProgramView(Protocol):
    """A loaded (or about to be loaded) program, as attach methods read it."""

    name: str
    section: str
    sec_def: Optional[SecDef]
    attach_target: str
    type: int
    expected_attach_type: int
    attach_btf_id: int
    attach_btf_obj_fd: int
    attach_prog_fd: int

    @property
    def fd(self) -> int:
        """The program fd (raises when not loaded)."""

    @property
    def loaded(self) -> bool:
        """Whether the program is loaded."""

    @property
    def type_name(self) -> str:
        """The program type, short (``tracepoint``)."""
