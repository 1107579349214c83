"""pybpf: a pure-Python eBPF loader (ELF, BTF, CO-RE, maps, programs, links, ring buffers).

The public surface (docs/api.md): BPFObject, Map, Program, RingBuffer,
PerfBuffer, UserRingBuffer and the BPFError family.  Names are imported on
first use, so ``import pybpf`` costs almost nothing.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from .errors import from_os_error

if TYPE_CHECKING:       # "X as X": re-exported for type checkers (mypy --strict)
    from .errors import AttachError as AttachError, BPFError as BPFError
    from .errors import BPFPermissionError as BPFPermissionError
    from .errors import ObjectError as ObjectError, VerifierError as VerifierError
    from .events.perfbuf import PerfBuffer as PerfBuffer
    from .events.ringbuf import ColumnLayout as ColumnLayout, Columns as Columns
    from .events.ringbuf import RingBuffer as RingBuffer
    from .events.user_ringbuf import UserRingBuffer as UserRingBuffer
    from .maps import GlobalData as GlobalData, Map as Map
    from .object import BPFObject as BPFObject
    from .programs import Program as Program

#: public name -> the module that defines it
_HOMES: Dict[str, str] = {
    "AttachError": ".errors", "BPFError": ".errors", "BPFPermissionError": ".errors",
    "ObjectError": ".errors", "VerifierError": ".errors",
    "BPFObject": ".object", "GlobalData": ".maps", "Map": ".maps", "Program": ".programs",
    "ColumnLayout": ".events.ringbuf", "Columns": ".events.ringbuf",
    "RingBuffer": ".events.ringbuf", "PerfBuffer": ".events.perfbuf",
    "UserRingBuffer": ".events.user_ringbuf",
}

__all__ = sorted(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pybpf' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(home, __name__), name)
    except OSError as e:        # out of fds, say: the module file cannot be read
        raise from_os_error(e, f"importing pybpf.{name}") from e
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_HOMES))
