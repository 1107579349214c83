"""Ctrl-C before the command line is ready: no traceback.

``python -m pybpf`` and the ``pybpf`` script import the command line (and all
it imports) before :func:`pybpf.cli.main.main` runs; a KeyboardInterrupt
raised meanwhile would end in a traceback.  :func:`quiet_startup` (called
first thing by the entry point; under ``python -m pybpf`` the first statement of
``pybpf.__main__`` already made the switch) lets SIGINT end the process the way
it ends a C tool, silently; :func:`cli_started` gives
Python its usual KeyboardInterrupt back once the command line handles it.

A command still imports modules as it needs them, and a KeyboardInterrupt raised
while importlib runs one of its weakref callbacks is swallowed there ("Exception
ignored in: weakref callback", a traceback, and the Ctrl-C lost): while a command
runs, :func:`redeliver` raises SIGINT again, so that it arrives where it is handled.
"""
from __future__ import annotations

import signal
import sys
from typing import Any, Callable, Optional

_quiet = False
_previous_hook: Optional[Callable[[Any], None]] = None


def redeliver(unraisable: Any) -> None:
    """``sys.unraisablehook`` while a command runs: a KeyboardInterrupt that could not
    be raised (it came during a callback) is signalled again, to be raised at the next
    bytecode of ordinary code; anything else goes to the hook before ours."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
        return
    (_previous_hook or sys.__unraisablehook__)(unraisable)


def quiet_startup(already: bool = False) -> None:
    """While the command line imports, SIGINT kills the process (default action)
    instead of raising KeyboardInterrupt (unless someone installed a handler).
    ``already``: the caller made that switch itself, earlier (``python -m pybpf``)."""
    global _quiet
    if already or signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _quiet = True


def cli_started() -> None:
    """The command line runs: SIGINT raises KeyboardInterrupt again (if we changed it),
    and one that lands in a callback is delivered again (:func:`redeliver`)."""
    global _previous_hook
    if _quiet:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.unraisablehook is not redeliver:
        _previous_hook, sys.unraisablehook = sys.unraisablehook, redeliver


def cli_finished() -> None:
    """The command is done (everything closed): under ``python -m pybpf`` a SIGINT
    from here on ends the process quietly again."""
    global _previous_hook
    if sys.unraisablehook is redeliver:
        sys.unraisablehook, _previous_hook = _previous_hook or sys.__unraisablehook__, None
    if _quiet:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
