"""python -m pybpf end to end, in a subprocess."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import List

import pytest

from conftest import ROOT, built, require_kernel
from test_exec_snoop import _spawn_all, eventually, named_prog_ids, probes  # noqa: F401


def _pybpf(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pybpf", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_ready(proc: subprocess.Popen) -> str:
    """Wait until the loader says it is reading (programs attached)."""
    line = proc.stderr.readline()
    assert "reading" in line, f"loader did not start: {line}{proc.stderr.read()}"
    return line


def test_inspect_exec_object():
    proc = _pybpf("inspect", str(built("exec.bpf.o")))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "handle_exec" in out and "SEC('tp/sched/sched_process_exec')" in out
    assert "rb" in out and "ringbuf" in out
    assert "target_pid = 0" in out
    assert "call bpf_ringbuf_reserve" in out


def test_inspect_json():
    proc = _pybpf("inspect", "--json", str(built("perfbuf-output.bpf.o")))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    info = json.loads(out)
    assert [p["name"] for p in info["programs"]] == ["handle_exec"]
    assert {m["name"]: m["type"] for m in info["maps"]} == \
        {"pb": "perf_event_array", "heap": "percpu_array"}


def test_inspect_malformed_object(tmp_path):
    bad = tmp_path / "bad.bpf.o"
    bad.write_bytes(built("exec.bpf.o").read_bytes()[:500])
    proc = _pybpf("inspect", str(bad))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("pybpf: error:") and "Traceback" not in err


def test_names_that_are_not_utf8_print_as_their_bytes(tmp_path):
    raw = built("skel_types.bpf.o").read_bytes().replace(b"skel_inner", b"skel_\xffnner")
    obj = tmp_path / "ff.bpf.o"
    obj.write_bytes(raw)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8:strict")
    for argv in (["inspect", str(obj)], ["btf", "dump", "file", str(obj), "format", "c"]):
        p = subprocess.run([sys.executable, "-m", "pybpf", *argv], capture_output=True,
                           env=env, timeout=60)
        assert p.returncode == 0 and p.stderr == b"", p.stderr.decode(errors="replace")
        assert b"struct skel_\xffnner" in p.stdout


@pytest.mark.parametrize("argv, message", [
    (["check", "@OBJ", "--btf", "/sys/kernel/btf/vmlinux", "--kconfig", "@MISSING"],
     "cannot read --kconfig @MISSING: No such file or directory"),
    (["check", "@OBJ", "--btf", "/sys/kernel/btf/vmlinux", "--kconfig", "@DIR"],
     "cannot read --kconfig @DIR: not a regular file (a directory)"),
    (["check", "@OBJ", "--btf", "/sys/kernel/btf/vmlinux", "--kconfig", "@FIFO"],
     "cannot read --kconfig @FIFO: not a regular file (a FIFO)"),
    (["gen", "skeleton", "@FIFO"], "cannot read @FIFO: not a regular file (a FIFO)"),
    (["btf", "dump", "file", "@FIFO"], "cannot read @FIFO: not a regular file (a FIFO)"),
    (["gen", "skeleton", "@OBJ", "-o", "@MISSING/x_skel.py"],
     "cannot write @MISSING/x_skel.py: No such file or directory"),
    (["btf", "dump", "file", "@OBJ", "-o", "@DIR"], "cannot write @DIR: Is a directory")])
def test_files_named_on_the_command_line_fail_in_one_line(tmp_path, capsys, argv, message):
    from pybpf.cli.main import main
    fifo = tmp_path.parent / f"fifo{os.getpid()}_{tmp_path.name}"  # never opened: no hang
    os.mkfifo(fifo)
    names = {"@OBJ": str(built("exec.bpf.o")), "@MISSING": str(tmp_path / "missing"),
             "@DIR": str(tmp_path), "@FIFO": str(fifo)}
    for key, value in names.items():
        argv = [a.replace(key, value) for a in argv]
        message = message.replace(key, value)
    try:
        assert main(argv) == 1
    finally:
        os.unlink(fifo)
    assert capsys.readouterr().err == f"pybpf: error: {message}\n"
    assert os.listdir(tmp_path) == []          # no temporary file left behind


@pytest.mark.parametrize("name", ["exec.bpf.o", "ringbuf-output.bpf.o", "perfbuf-output.bpf.o"])
def test_load_json_prints_every_exec(name, probes):
    require_kernel()
    before = named_prog_ids()
    proc = _pybpf("load", str(built(name)), "--duration", "3", "--json")
    _wait_ready(proc)
    pids = _spawn_all(probes)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    mine = [r for r in rows if r["filename"] in probes]
    if name == "perfbuf-output.bpf.o":
        mine.sort(key=lambda r: probes.index(r["filename"]))
    assert [r["filename"] for r in mine] == probes
    assert [r["pid"] for r in mine] == pids
    assert [r["comm"] for r in mine] == [os.path.basename(p)[:15] for p in probes]
    assert eventually(lambda: not (named_prog_ids() - before)), "a program stayed loaded"


def test_load_table_output(probes):
    require_kernel()
    proc = _pybpf("load", str(built("exec.bpf.o")), "--duration", "2")
    _wait_ready(proc)
    _spawn_all(probes[:2])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "PID", "COMM", "FILENAME"]
    rows = [line.split() for line in lines[1:] if probes[0] in line or probes[1] in line]
    assert [r[-1] for r in rows] == probes[:2]
    assert all(len(r[0]) == 8 and r[0].count(":") == 2 for r in rows)


def test_load_set_filters_in_kernel(probes):
    require_kernel()
    proc = _pybpf("load", str(built("exec.bpf.o")), "--duration", "1.5", "--json",
                  "--set", "target_pid=1")
    _wait_ready(proc)
    _spawn_all(probes)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not [line for line in out.splitlines() if "probe-" in line]


def test_load_unknown_set_name():
    require_kernel()
    proc = _pybpf("load", str(built("exec.bpf.o")), "--set", "nope=1")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "no such global variable" in err and "target_pid" in err


def test_sigint_detaches_cleanly(probes):
    require_kernel()
    before = named_prog_ids()
    proc = _pybpf("load", str(built("exec.bpf.o")), "--json")
    _wait_ready(proc)
    ours = named_prog_ids() - before
    assert ours, "the loader's program is not loaded"
    _spawn_all(probes[:1])
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert probes[0] in out
    assert eventually(lambda: not (named_prog_ids() & ours))


def test_missing_privileges_one_line():
    """Root without capabilities (bounding set cleared): one line naming what is needed."""
    require_kernel()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
                           sys.executable, "-m", "pybpf", "load", str(built("exec.bpf.o")),
                           "--duration", "1"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "CAP_BPF" in lines[0] and "CAP_PERFMON" in lines[0] and "root" in lines[0]


def test_inspect_lists_externs():
    proc = _pybpf("inspect", "--json", str(built("extern_ksyms.bpf.o")))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    externs = {e["name"]: e for e in json.loads(out)["externs"]}
    assert externs["bpf_task_acquire"]["kind"] == "kfunc"
    assert externs["_text"]["kind"] == "ksym" and not externs["_text"]["weak"]
    assert externs["pybpf_no_such_symbol"]["weak"]
