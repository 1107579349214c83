"""Build hook: compile the pybpf tools' BPF objects (``make tools-bpf``) before
the Python files are collected, so that the wheel ships them as package data.

The wheel stays pure Python (py3-none-any).  setuptools' own build directory is
moved out of ``build/`` (which holds the BPF test objects), into a directory of
its own per run under ``.setuptools-build/``: two builds of one tree at the same
time (two interpreters' test runs) must not copy over each other's files."""
import atexit
import os
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS_BPF = os.path.join(HERE, "pybpf", "tools", "bpf")


class build_py_with_bpf(build_py):
    """build_py that first builds pybpf/tools/bpf/*.bpf.o with clang (make)."""

    def run(self) -> None:
        sources = [f for f in os.listdir(TOOLS_BPF) if f.endswith(".bpf.c")]
        if sources:
            if shutil.which("make") is None or shutil.which("clang") is None:
                missing = [f for f in sources
                           if not os.path.exists(os.path.join(TOOLS_BPF, f[:-2] + ".o"))]
                if missing:
                    raise SystemExit("building pybpf needs clang and make for the tools' "
                                     f"BPF objects ({', '.join(missing)}): apt-get install "
                                     "clang llvm bpftool make")
            else:
                subprocess.run(["make", "-C", HERE, "tools-bpf"], check=True)
        super().run()


# build/ holds the BPF objects (Makefile, tests/conftest.py): setuptools works elsewhere,
# in a directory of this run's own, removed when the run ends
os.makedirs(os.path.join(HERE, ".setuptools-build"), exist_ok=True)
WORK = os.path.relpath(tempfile.mkdtemp(prefix="run-", dir=os.path.join(HERE, ".setuptools-build")),
                       HERE)
atexit.register(shutil.rmtree, os.path.join(HERE, WORK), True)
setup(cmdclass={"build_py": build_py_with_bpf},
      options={"build": {"build_base": WORK}, "egg_info": {"egg_base": WORK}})
