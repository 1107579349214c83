"""``python -m pybpf``; :func:`run` is also the ``pybpf`` script."""
import sys

from .cli.signals import quiet_startup


def run() -> int:
    """The command line: Ctrl-C stays quiet while it imports, then main() handles it."""
    quiet_startup()
    from .cli.main import main
    return main()


if __name__ == "__main__":
    sys.exit(run())
