"""Ctrl-C before the command line is ready: no traceback.

``python -m pybpf`` imports the package (and what it imports) before
:func:`pybpf.cli.main` runs; a KeyboardInterrupt raised meanwhile would end
in a traceback.  :func:`quiet_startup` (called first thing by the package when
it is being imported for ``python -m``) lets SIGINT end the process the way it
ends a C tool, silently; :func:`cli_started` gives Python its usual
KeyboardInterrupt back once the command line handles it.
"""
from __future__ import annotations

import signal
import sys

_quiet = False


def quiet_startup() -> None:
    """While ``python -m pybpf`` imports (sys.argv[0] is "-m" then, as runpy documents),
    SIGINT kills the process (default action) instead of raising KeyboardInterrupt."""
    global _quiet
    if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _quiet = True


def cli_started() -> None:
    """The command line runs: SIGINT raises KeyboardInterrupt again (if we changed it)."""
    if _quiet:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def cli_finished() -> None:
    """The command is done (everything closed): under ``python -m pybpf`` a SIGINT
    from here on ends the process quietly again."""
    if _quiet:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
