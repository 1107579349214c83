"""Packaging: the sdist carries what testing needs, the wheel is typed and licensed,
and building does not write into the BPF objects' build/ directory."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import ROOT, assert_build_left_alone, build_stamps

try:
    import setuptools
    _SETUPTOOLS = tuple(int(x) for x in setuptools.__version__.split(".")[:1])
except ImportError:           # pragma: no cover
    _SETUPTOOLS = (0,)


@pytest.fixture
def new_setuptools():
    if _SETUPTOOLS < (77,):
        pytest.skip("needs setuptools>=77 (the SPDX license field): "
                    "pip install 'setuptools>=77'")


def test_wheel_is_typed_licensed_and_leaves_build_alone(tmp_path, new_setuptools):
    before = build_stamps()
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_build_left_alone(before)
    wheel = next(tmp_path.glob("pybpf-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "pybpf/py.typed" in names and "pybpf/obj/skeleton.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "bpf/", "build/")) for n in names)
    assert "License-Expression: MIT" in meta
    assert "Classifier: Operating System :: POSIX :: Linux" in meta
    assert "Requires-Dist: pyelftools" in meta


def test_sdist_carries_what_testing_needs(tmp_path, new_setuptools):
    before = build_stamps()
    code = ("import sys; from setuptools import build_meta; "
            "print(build_meta.build_sdist(sys.argv[1]))")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_build_left_alone(before)
    sdist = tmp_path / res.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for need in ("LICENSE", "README.md", "Makefile", "pyproject.toml", "MANIFEST.in",
                 "tests/conftest.py", "tests/test_skeleton.py", "bpf/exec.bpf.c", "bpf/exec.h",
                 "tools/bench_cli.py", "docs/api.md", "examples/hello.bpf.c",
                 "examples/Makefile", "pybpf/py.typed", "pybpf/cli/gen.py"):
        assert need in members, need
    assert set(os.listdir(ROOT / "bpf")) <= {m.split("/", 1)[1] for m in members
                                            if m.startswith("bpf/")}
    assert not [m for m in members if m.endswith((".o", ".pyc")) or m.startswith("build/")]


def test_readme_points_at_the_contract_in_the_repo():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "docs/api.md" in readme
    api = (ROOT / "docs" / "api.md").read_text()
    for name in ("BPFObject.open", "RingBuffer", "gen skeleton", "--verbose", "UserRingBuffer"):
        assert name in api
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
