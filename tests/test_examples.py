"""examples/ and the README's Python blocks, built with clang into a tmp dir and run
as root against the kernel: they print the execs they see and the map's counts."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import BUILD, ROOT, built, require_kernel

EXAMPLES = ROOT / "examples"


def _python_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.fixture
def examples_dir(tmp_path):
    """examples/ copied and built (make: clang + gen skeleton) in a tmp dir."""
    if shutil.which("clang") is None:
        pytest.fail("clang missing: run 'make deps'")
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    shutil.copy(built("vmlinux.h"), work / "vmlinux.h")    # what `make` would dump
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(["make", "-C", str(work)], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (work / "hello.bpf.o").exists() and (work / "hello_skel.py").exists()
    return work


def _run_tracing(cmd, cwd, probe_dir, wait_for_stderr=True):
    """Run ``cmd`` (a tracer) and exec a uniquely named probe while it traces: once
    after it says so on stderr, or (for README blocks, which say nothing) every
    0.2 s until it exits.  Returns its stdout and the probe's name."""
    probe = probe_dir / f"probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + str(cwd))
    out_path = probe_dir / f"out-{os.getpid()}.txt"
    with open(out_path, "w") as out_file:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out_file,
                                stderr=subprocess.PIPE, text=True)
        if wait_for_stderr:
            line = proc.stderr.readline()
            assert "tracing" in line, line + proc.stderr.read()
            subprocess.run([str(probe)], check=True)
        else:
            while proc.poll() is None:
                subprocess.run([str(probe)], check=True)
                time.sleep(0.2)
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, err
    return out_path.read_text(), probe.name


def test_example_hello_library(examples_dir, tmp_path):
    require_kernel()
    out, probe = _run_tracing([sys.executable, "hello.py", "2"], examples_dir, tmp_path)
    mine = [line for line in out.splitlines() if f"comm={probe}" in line]
    assert len(mine) == 1 and f"file={tmp_path / probe}" in mine[0] and "uid=0" in mine[0]
    counts = [line for line in out.splitlines() if line.startswith("uid 0: ")]
    assert counts and int(counts[0].split()[2]) >= 1


def test_example_hello_skeleton(examples_dir, tmp_path):
    require_kernel()
    out, probe = _run_tracing([sys.executable, "hello_typed.py", "2"], examples_dir, tmp_path)
    mine = [line for line in out.splitlines() if f"comm={probe}" in line]
    assert len(mine) == 1 and f"file={tmp_path / probe}" in mine[0]
    assert any(line.startswith("uid 0: ") for line in out.splitlines())
    res = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                          "--cache-dir", str(tmp_path / "mypy"), "hello_typed.py",
                          "hello_skel.py"], cwd=examples_dir, capture_output=True, text=True,
                         env=dict(os.environ, MYPYPATH=str(ROOT)))
    if "No module named mypy" not in res.stderr:
        assert res.returncode == 0, res.stdout + res.stderr


def test_readme_library_block_prints_execs(tmp_path):
    require_kernel()
    block = next(b for b in _python_blocks() if "build/exec.bpf.o" in b)
    script = tmp_path / "readme_library.py"
    script.write_text(block)
    built("exec.bpf.o")
    out, probe = _run_tracing([sys.executable, str(script)], ROOT, tmp_path,
                              wait_for_stderr=False)
    mine = [line.split() for line in out.splitlines() if probe in line]
    assert mine and all(m[1] == probe and m[2] == str(tmp_path / probe) for m in mine)


def test_readme_tour_blocks_run(examples_dir, tmp_path):
    require_kernel()
    blocks = [b for b in _python_blocks() if "hello" in b]
    assert len(blocks) == 2
    for k, block in enumerate(blocks):
        script = examples_dir / f"readme_tour_{k}.py"
        script.write_text(block)
        out, probe = _run_tracing([sys.executable, script.name], examples_dir, tmp_path,
                                  wait_for_stderr=False)
        mine = [line.split() for line in out.splitlines() if probe in line]
        assert mine and mine[0][2] == probe, out
        assert "uid 0: " in out if k == 0 else "{0: " in out


def test_example_sources_are_in_the_sdist_manifest():
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "recursive-include examples" in manifest
    assert sorted(p.name for p in EXAMPLES.iterdir()) == \
        ["Makefile", "hello.bpf.c", "hello.py", "hello_typed.py"]
    assert BUILD.name == "build"
