"""Signals held back while a kernel object changes hands.

A Python signal handler (``KeyboardInterrupt`` from SIGINT, or any handler that
raises) runs in the main thread between two bytecodes.  A signal that arrives
while a syscall creates an fd makes the handler run right after the syscall
returns, before the number is wrapped into its owner: the fd would leak, and
with it a program, a map or an attachment.  :func:`deferred` holds such
signals back for the few bytecodes between the syscall and the owner: the
handlers are replaced by one that records the signal, and the recorded
signals are handed to the original handlers once the owner holds the object
(``finish`` runs then and closes it again if a handler raises).

Only signals with a Python handler are touched (SIG_DFL / SIG_IGN act in the
kernel, not between bytecodes), and only in the main thread (the only one
where Python handlers run).
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable, Dict, List, Tuple, TypeVar

try:    # the C module: signal.getsignal() wraps every answer in an enum lookup (~8 us)
    import _signal as _handlers
except ImportError:     # an interpreter without it
    _handlers = signal

T = TypeVar("T")

#: the signals whose Python handlers may run during a syscall of ours
_SIGNALS = tuple(getattr(signal, name) for name in (
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGUSR1", "SIGUSR2",
    "SIGVTALRM", "SIGPROF", "SIGCHLD", "SIGPIPE", "SIGWINCH", "SIGXCPU")
    if hasattr(signal, name))


def _nothing() -> None:
    pass


def deferred(make: Callable[[Callable[[], None]], T], undo: Callable[[T], None]) -> T:
    """``make(deliver_now)`` with the Python signal handlers held back until it returned.

    The signals that came meanwhile are then handed to their handlers; if one
    raises, ``undo(result)`` releases what ``make`` created and the exception
    propagates.  ``make`` itself must leave nothing behind when it raises.
    ``deliver_now()`` hands the signals held back so far to their handlers at
    once, for a ``make`` that owns nothing at that moment: a syscall that failed
    with EINTR/EAGAIN calls it before it tries again (a handler that raises
    then ends the attempt, as it would without us)."""
    if threading.current_thread() is not threading.main_thread():
        return make(_nothing)
    pending: List[int] = []

    def record(signum: int, frame: Any) -> None:
        pending.append(signum)

    saved: List[Tuple[int, Any]] = []
    done = False
    try:
        for sig in _SIGNALS:
            handler = _handlers.getsignal(sig)
            if callable(handler):
                _handlers.signal(sig, record)
                saved.append((sig, handler))
        result = make(lambda: _deliver(pending, dict(saved)))
        done = True
    finally:
        for sig, handler in reversed(saved):
            _handlers.signal(sig, handler)
        if not done:            # make() raised: nothing to undo, the signals still count
            _deliver(pending, dict(saved))
    try:
        _deliver(pending, dict(saved))
    except BaseException:
        undo(result)
        raise
    return result


def _deliver(pending: List[int], handlers: Dict[int, Any]) -> None:
    """Run the original handler of each recorded signal (once each, in order)."""
    while pending:
        signum = pending.pop(0)
        handler = handlers.get(signum)
        if callable(handler):
            handler(signum, None)
