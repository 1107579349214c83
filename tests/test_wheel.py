"""End to end: build the wheel (the tools' BPF objects compiled by the build
step, shipped as package data, py3-none-any), install it into a fresh virtual
environment outside the repository, and run a tool from there."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, assert_build_left_alone, build_stamps
from tooltest import ToolRun, records
from pybpf import tools


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp(f"pybpf-wheel-{os.getpid()}")
    before = build_stamps()
    # two builds of the tree at once (as two interpreters' test runs do in CI): each
    # must finish, with the same wheel, however their setuptools steps interleave
    outs = [out / "a", out / "b"]
    logs = [out / "a.log", out / "b.log"]
    builds = []
    for o, log in zip(outs, logs):
        with open(log, "w") as err:
            builds.append(subprocess.Popen(
                [sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(o), "--no-deps",
                 "--no-build-isolation", "-q"], cwd=str(out), stderr=err))
    codes = [b.wait() for b in builds]
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]
    wheels = [next(o.glob("*.whl")) for o in outs]
    names = [sorted(zipfile.ZipFile(w).namelist()) for w in wheels]
    assert names[0] == names[1]
    assert_build_left_alone(before)
    return wheels[0]


def test_wheel_is_pure_and_ships_every_tool(wheel):
    assert wheel.name.endswith("-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for tool in tools.TOOLS:
        assert f"pybpf/tools/bpf/{tool}.bpf.o" in names
        assert f"pybpf/tools/{tool}.py" in names
    assert "pybpf/tools/bpf/tools.h" in names
    assert not any(n.endswith((".so", ".pyd")) for n in names)


def test_installed_wheel_runs_execsnoop(kernel, wheel, tmp_path):
    # no PYTHONPATH (a mutation run points it at its tree): the wheel's pybpf only
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True,
                   cwd=str(tmp_path), env=env)
    where = subprocess.run([py, "-c", "import pybpf; print(pybpf.__file__)"],
                           capture_output=True, text=True, check=True, cwd=str(tmp_path),
                           env=env)
    assert where.stdout.startswith(str(venv)), where.stdout
    tag = f"pybpf-wheel-{os.getpid()}"
    run = ToolRun("execsnoop", "-c", "echo", python=py, cwd=str(tmp_path), isolated=True)
    child = subprocess.Popen(["/bin/echo", tag], stdout=subprocess.DEVNULL)
    child.wait()
    recs = records(run.stop())
    assert [(r["pid"], r["argv"]) for r in recs if r["argv"] == [tag]] == [(child.pid, [tag])]
