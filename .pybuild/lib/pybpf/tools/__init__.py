"""pybpf tools: tracing tools written from the kernel's tracepoints and BTF, run as
``python -m pybpf tool NAME [options]``.

Each tool is a module of this package (``main(argv) -> int``) with its BPF
object built from ``bpf/NAME.bpf.c`` and shipped next to it as package data.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Dict, List, Optional

#: tool name -> one-line description
TOOLS: Dict[str, str] = {
    "execsnoop": "trace exec() calls: arguments, return value, parent",
    "opensnoop": "trace open() calls: path, flags, result",
    "exitsnoop": "trace process exits: exit code, signal, lifetime",
    "killsnoop": "trace signals sent by kill(), tkill(), tgkill()",
    "syscount": "count system calls and their latency, per syscall or process",
    "runqlat": "run queue (scheduler) latency as a histogram",
    "biolatency": "block I/O latency as a histogram",
    "biosnoop": "trace block I/O: device, sector, size, latency",
    "tcpstates": "trace TCP state changes",
    "tcplife": "trace TCP sessions: duration and bytes",
    "profile": "sample CPU stacks at a frequency (folded output for flame graphs)",
}


def available() -> List[str]:
    """The tools whose module exists in this installation."""
    return [n for n in TOOLS if importlib.util.find_spec(f"{__name__}.{n}") is not None]


def main(name: str, argv: Optional[List[str]] = None) -> int:
    """Run tool ``name`` (one of :func:`available`) with its own arguments."""
    module = importlib.import_module(f"{__name__}.{name}")
    return int(module.main(list(argv or [])))
