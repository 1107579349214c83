"""load's output (pybpf/cli/rows.py), --verbose, --version, help texts: pure checks on
every built object's structs, and the CLI against the kernel."""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT, built, parseable_objects, require_kernel
from pybpf.btf import codec
from pybpf.btf import types as T
from pybpf.cli import main as cli
from pybpf.cli.rows import compile_formatter, jsonable, text
from pybpf.cli.verbose import relocation_counts
from pybpf.obj.spec import parse_object

OBJECTS = parseable_objects()


def _structs(spec):
    for type_id in range(spec.btf.start_id, len(spec.btf)):
        t = spec.btf[type_id]
        if isinstance(t, T.Struct) and t.name and t.size:
            try:
                codec.compile(spec.btf, type_id)
            except Exception:
                continue
            yield type_id, t


def _has_float(btf, type_id, depth=0):
    t = btf[btf.resolve(type_id)]
    if isinstance(t, T.Float):
        return True
    if isinstance(t, T.Array):
        return _has_float(btf, t.type, depth + 1)
    if isinstance(t, T.Struct) and depth < 32:
        return any(_has_float(btf, m.type, depth + 1) for m in t.members)
    return False


@pytest.mark.parametrize("obj", OBJECTS)
def test_json_rows_equal_the_codec_and_table_rows_stay_one_line(obj):
    spec = parse_object(built(obj).read_bytes(), obj)
    if spec.btf is None:
        pytest.skip("no BTF")
    rng = random.Random(obj)
    checked = 0
    for type_id, t in _structs(spec):
        if _has_float(spec.btf, type_id):
            continue
        comp = codec.compile(spec.btf, type_id)
        as_json = compile_formatter(spec.btf, type_id, True)
        table = compile_formatter(spec.btf, type_id, False)
        for _ in range(5):
            data = bytes(rng.getrandbits(8) for _ in range(t.size))
            line = as_json.row(data, '{"time": 1.5, "map": "m", ')
            assert line.endswith("}\n") and line.count("\n") == 1
            expect = {"time": 1.5, "map": "m"}
            value = jsonable(comp.decode(data))
            expect.update(value if isinstance(value, dict) else {"value": value})
            assert json.loads(line) == expect
            row = table.row(data, "12:00:00")
            assert row.startswith("12:00:00 ") and row.count("\n") == 1 and row.endswith("\n")
            # the batch path gives the same lines
            buf = b"\0" * 8 + data + data
            assert as_json.rows(buf, range(8, 8 + 2 * t.size, t.size), "P") == \
                [as_json.row(data, "P")] * 2
            assert table.rows(buf, range(8, 8 + 2 * t.size, t.size), "P") == \
                [table.row(data, "P")] * 2
        assert [c for c, _ in table.columns] and all(w >= len(c) for c, w in table.columns)
        checked += 1
    assert checked or obj in {"attach_net.bpf.o"} or not list(_structs(spec))


def test_text_escapes_control_characters():
    assert text(b"a\tb\nc\x01\x7f\0garbage") == "a\\tb\\nc\\x01\\x7f"
    assert text(b"caf\xc3\xa9\xff\0") == "caf\u00e9\\xff"
    assert text(b"plain") == "plain" and text(b"\0") == ""


def test_table_columns_fit_their_types():
    spec = parse_object(built("skel_types.bpf.o").read_bytes(), "skel_types.bpf.o")
    tid = spec.btf.find("skel_rec")[0]
    table = compile_formatter(spec.btf, tid, False)
    widths = dict(table.columns)
    assert widths["ts"] == 20                 # u64: 18446744073709551615
    assert widths["s"] == 20                  # s64: -9223372036854775808
    assert widths["in.a"] == 5                # u16, nested struct flattened
    assert widths["color"] == len("SKEL_GREEN")
    assert widths["point.x"] == 10 and widths["comm"] == 16
    rec = bytearray(136)
    rec[8:12] = (2).to_bytes(4, "little")     # color = SKEL_GREEN
    rec[97:101] = b"a\nb\0"                   # comm (at 97) with a newline
    row = table.row(bytes(rec), "T")
    assert "SKEL_GREEN" in row and "a\\nb" in row and row.count("\n") == 1
    assert "[[0,0,0],[0,0,0]]" in row


def test_relocation_counts_per_kind():
    spec = parse_object(built("exec.bpf.o").read_bytes(), "exec.bpf.o")
    assert relocation_counts(spec) == {"core field_byte_offset": 1, "global data": 1,
                                       "map": 1}
    spec = parse_object(built("loader_subprogs.bpf.o").read_bytes(), "loader_subprogs.bpf.o")
    assert relocation_counts(spec).get("call", 0) >= 1


def test_every_option_has_help_and_prog_name():
    parser = cli.build_parser()

    def walk(p: argparse.ArgumentParser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, subparser in action.choices.items():
                    if name != "ringbuf-layout":        # its own parser has the options
                        yield from walk(subparser)
            else:
                yield p.prog, action
    missing = [(prog, a.dest) for prog, a in walk(parser) if not a.help]
    assert not missing
    assert cli.prog_name("/usr/lib/python3/site-packages/pybpf/__main__.py") == \
        "python -m pybpf"
    assert cli.prog_name("/usr/local/bin/pybpf") == "pybpf"


def _run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), **kw)


def test_version_and_help_name_how_we_started():
    import pybpf
    res = _run("-m", "pybpf", "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"pybpf {pybpf.__version__}"
    res = _run("-m", "pybpf", "load", "--help")
    assert res.stdout.startswith("usage: python -m pybpf load")
    assert "--verbose" in res.stdout and "--ring-size" in res.stdout


def _load_with_getpgid(obj: str, *extra: str):
    """Run load on ``obj`` with target_pid = a child that calls getpgid() twice."""
    child = subprocess.Popen([sys.executable, "-c", "import os,sys; sys.stdin.readline(); "
                              "os.getpgid(0); os.getpgid(0)"], stdin=subprocess.PIPE, text=True)
    loader = subprocess.Popen([sys.executable, "-m", "pybpf", "load", str(built(obj)),
                               "--set", f"target_pid={child.pid}", "--duration", "1.5",
                               *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    err_lines = []
    while True:
        line = loader.stderr.readline()
        err_lines.append(line)
        if "reading" in line or not line:
            break
    child.communicate("go\n")
    out, err = loader.communicate(timeout=30)
    return loader.returncode, out, "".join(err_lines) + err, child.pid


def test_kernel_unanchored_record_gets_a_hint():
    require_kernel()
    rc, out, err, pid = _load_with_getpgid("rb_unanchored.bpf.o")
    assert rc == 0, err
    hints = [line for line in err.splitlines() if "no struct of 16 bytes" in line]
    assert len(hints) == 1                      # once, not per record
    assert "hidden_rb" in hints[0] and "const struct event *unused" in hints[0]
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "DATA"]
    expect = pid.to_bytes(4, "little").hex() + "cdab0000" + b"a\tb\nc\x01\0\0".hex()
    assert [line.split()[1] for line in lines[1:]] == [expect, expect]
    rc, out, err, _ = _load_with_getpgid("rb_unanchored.bpf.o", "--type", "hidden_event")
    assert rc == 1 and "no struct or union 'hidden_event'" in err
    assert "'const struct hidden_event *unused __attribute__((unused));'" in err


def test_kernel_table_and_json_rows():
    require_kernel()
    rc, out, err, pid = _load_with_getpgid("skel_types.bpf.o")
    assert rc == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["TIME", "TS", "COLOR", "IN.A", "IN.B", "IN.NAME"]
    assert len(rows) == 2
    cells = rows[0].split()
    assert cells[1:6] == ["18364758544493064720", "SKEL_GREEN", "7", "8", "inner"]
    assert cells[-1] == "-1234567890123"
    rc, out, err, pid = _load_with_getpgid("skel_types.bpf.o", "--json")
    assert rc == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 2 and recs[0]["map"] == "skel_events"
    r = recs[0]
    assert r["color"] == 2 and r["in"] == {"a": 7, "b": 8, "name": "inner"}
    assert r["matrix"] == [[0, 1, 2], [10, 11, 12]] and r["ok"] is True
    assert (r["lo"], r["mid"], r["neg"], r["hi"]) == (5, 99, -7, 100000)


def test_kernel_verbose_shows_the_steps():
    require_kernel()
    res = _run("-m", "pybpf", "load", str(built("exec.bpf.o")), "--verbose",
               "--duration", "0.2", timeout=60)
    assert res.returncode == 0, res.stderr
    err = res.stderr.splitlines()
    assert err[0].startswith("pybpf: opened exec: 1 program(s), 3 map(s)")
    assert "pybpf: map rb: ringbuf, 256.0 KiB of ring, fd " in res.stderr
    assert "pybpf: map .rodata: array, key 4 B, value 4 B x 1 (4 B), fd " in res.stderr
    assert "pybpf: relocations: 1 core field_byte_offset, 1 global data, 1 map" in err
    progs = [line for line in err if line.startswith("pybpf: program handle_exec: "
                                                     "tracepoint, SEC(\"tp/sched/")]
    assert len(progs) == 1 and "instructions, loaded (fd " in progs[0]
    assert any(line.startswith("pybpf: link: tracepoint sched/sched_process_exec (fd ")
               for line in err)
