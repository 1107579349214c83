"""``python -m pybpf``; :func:`run` is also the ``pybpf`` script."""
import signal

#: under ``python -m pybpf`` a Ctrl-C is made quiet by this module's first statement,
#: before the command line's packages are even looked up (see pybpf.cli.signals)
_QUIET_FROM_START = __name__ == "__main__" and \
    signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _QUIET_FROM_START:
    signal.signal(signal.SIGINT, signal.SIG_DFL)

import gc  # noqa: E402
import sys  # noqa: E402

from .cli.signals import quiet_startup  # noqa: E402


def run() -> int:
    """The command line: Ctrl-C stays quiet while it imports, then main() handles it."""
    quiet_startup(already=_QUIET_FROM_START)
    # names from objects and kernel BTF that are not UTF-8 are decoded with
    # surrogateescape: printed back as those bytes (as bpftool prints them) in any
    # locale, where a strict stdout (en_US.UTF-8) would raise UnicodeEncodeError
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")
    from .cli.main import main
    try:
        return main()
    finally:
        # The process ends here: what it made needs no cyclic collection at exit (the
        # interpreter's last passes over every object cost a short run ~7 ms).  Every
        # kernel object was closed by the command itself; atexit still runs.  (PyPy,
        # whose collector works otherwise, has no gc.freeze.)
        freeze = getattr(gc, "freeze", None)
        if freeze is not None:
            freeze()


if __name__ == "__main__":
    sys.exit(run())
