"""The command line (``python -m pybpf``, ``pybpf``): :func:`pybpf.cli.main.main`
dispatches to a module per command."""
from __future__ import annotations

import os as _os

from ..errors import BPFError as _BPFError


def write_output(path: str, text: str) -> None:
    """Write a command's output file whole or not at all (a temporary file renamed
    over ``path``); a file that cannot be written is a BPFError naming it."""
    tmp = f"{path}.{_os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        _os.replace(tmp, path)
    except OSError as e:
        try:
            _os.unlink(tmp)
        except OSError:
            pass
        raise _BPFError(f"cannot write {path}: {e.strerror}", e.errno) from None
