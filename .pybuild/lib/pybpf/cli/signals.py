"""Ctrl-C before the command line is ready: no traceback.

``python -m pybpf`` and the ``pybpf`` script import the command line (and all
it imports) before :func:`pybpf.cli.main.main` runs; a KeyboardInterrupt
raised meanwhile would end in a traceback.  :func:`quiet_startup` (called
first thing by ``pybpf.cli``, which only the command line imports) lets SIGINT
end the process the way it ends a C tool, silently; :func:`cli_started` gives
Python its usual KeyboardInterrupt back once the command line handles it.
"""
from __future__ import annotations

import signal

_quiet = False


def quiet_startup() -> None:
    """While the command line imports, SIGINT kills the process (default action)
    instead of raising KeyboardInterrupt (unless someone installed a handler)."""
    global _quiet
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
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
