"""pybpf.metrics.hist: bucket bounds, bcc's rendering, layout detection from BTF (pure),
and the histograms and counters of a live object fed with known sleeps, through
the library and through ``python -m pybpf load``."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, built
from pybpf import BPFObject
from pybpf.metrics import hist
from pybpf.cli.map_report import reported_maps


def test_log2_bounds_and_render_like_bcc():
    h = hist.Histogram([0, 3, 10, 2, 0, 1])
    assert [h.bounds(i) for i in range(4)] == [(0, 1), (2, 3), (4, 7), (8, 15)]
    assert h.total == 16 and h.estimated_sum() == 3 * 2 + 10 * 4 + 2 * 8 + 32
    lines = h.render("usecs").splitlines()
    assert lines[0] == "     usecs               : count     distribution"
    assert lines[1] == "         0 -> 1          : 0        |" + " " * 40 + "|"
    assert lines[3] == "         4 -> 7          : 10       |" + "*" * 40 + "|"
    assert lines[2] == "         2 -> 3          : 3        |" + "*" * 12 + " " * 28 + "|"
    assert len(lines) == 7            # up to the last non-empty slot


def test_log2_wide_form_past_slot_32():
    counts = [0] * 40
    counts[35] = 1
    lines = hist.render_log2(counts, "nsecs").splitlines()
    assert lines[0].startswith(" " * 15 + "nsecs") and lines[0].endswith(": count     distribution")
    assert lines[-1].endswith("|" + "*" * 20 + "|")
    assert lines[-1].split()[:3] == [str(1 << 35), "->", str((1 << 36) - 1)]


def test_linear_render_and_empty():
    text = hist.render_linear([0, 0, 4, 0, 8], base=10, step=5, unit="msecs")
    lines = text.splitlines()
    assert lines[0] == "     msecs         : count     distribution"
    assert lines[1] == "        20         : 4        |" + "*" * 20 + " " * 20 + "|"
    assert lines[2].split()[0] == "30" and len(lines) == 3
    assert hist.render_log2([0, 0]) == "" and hist.render_linear([]) == ""
    assert hist.stars(5, 4, 8) == "*******+"


def test_keyed_render_and_counters_table():
    hs = [hist.Histogram([1], label={"pid": 7, "comm": b"sh"})]
    assert hist.render(hs).startswith("\npid = 7, comm = sh\n     value")
    rows = hist.counters([({"pid": 2, "comm": b"a\tb"}, [1, 2]), ({"pid": 1, "comm": b"x"}, [0, 0]),
                          ({"pid": 10, "comm": b"c"}, [5, 5])])
    assert [k["pid"] for k, _ in rows] == [2, 10]     # zero dropped, per-CPU summed, sorted
    table = hist.render_counters(rows).splitlines()
    assert table[0].split() == ["PID", "COMM", "VALUE"]
    assert table[1].split() == ["2", "a\\tb", "3"]   # control characters escaped
    assert table[2].split() == ["10", "c", "10"]


def test_detect_layouts_from_btf():
    obj = BPFObject.open(built("hist_maps.bpf.o"))
    with obj:
        layouts = {n: hist.map_layout(m) for n, m in obj.maps.items()}
    assert layouts["sleep_hist"] == hist.Layout("log2", nslots=27)
    assert layouts["by_clock"] == hist.Layout("log2", slots_field="slots", nslots=27,
                                              sum_field="sum")
    assert layouts["sleep_linear"] == hist.Layout("linear", bucket_field="slot")
    assert layouts["calls"] is None and layouts[".rodata"] is None


def test_histograms_from_items_rules():
    layout = hist.Layout("log2", bucket_field="slot")
    items = [({"cpu": 1, "slot": 2}, 5), ({"cpu": 0, "slot": 0}, 1), ({"cpu": 1, "slot": 0}, 2)]
    hs = hist.histograms(items, layout)
    assert [(h.label, h.counts) for h in hs] == [({"cpu": 0}, [1]), ({"cpu": 1}, [2, 0, 5])]
    one = hist.histograms([(3, 4), (1, 1)], hist.Layout("log2", nslots=5))
    assert [h.counts for h in one] == [[0, 1, 0, 4, 0]]
    empty = hist.histograms([], hist.Layout("log2", nslots=3))
    assert [h.counts for h in empty] == [[0, 0, 0]]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(None, use_errno=True)
SLEEPS_US = [3000, 3000, 3000, 500, 500, 20000]


def _sleep_us(us: int) -> None:
    ts = _Timespec(us // 1_000_000, us % 1_000_000 * 1000)
    assert _libc.clock_nanosleep(1, 0, ctypes.byref(ts), None) == 0   # CLOCK_MONOTONIC, relative


def test_histograms_of_a_live_object(kernel):
    with BPFObject.open(built("hist_maps.bpf.o")) as obj:
        obj.rodata["targ_tgid"] = os.getpid()
        obj.load()
        obj.attach()
        for us in SLEEPS_US:
            _sleep_us(us)
        (log,) = hist.read(obj.maps["sleep_hist"])
        assert log.kind == "log2" and log.label == {}
        assert {i: c for i, c in enumerate(log.counts) if c} == {8: 2, 11: 3, 14: 1}
        assert "      2048 -> 4095       : 3        |" + "*" * 40 + "|" in log.render("usecs")
        (clock,) = obj.maps["by_clock"].histogram()
        assert clock.label["key"] == 1 and clock.label["comm"].startswith(b"python")
        assert clock.sum == sum(SLEEPS_US) and clock.counts[11] == 3
        (lin,) = hist.read(obj.maps["sleep_linear"])
        assert lin.kind == "linear" and lin.label == {"clock": 1}
        assert {i: c for i, c in enumerate(lin.counts) if c} == {0: 2, 3: 3, 20: 1}
        (by10,) = hist.linear(obj.maps["sleep_linear"], base=0, step=1000)
        assert by10.bounds(3) == (3000, 3999)
        assert [n.name for n in reported_maps(obj)] == ["sleep_hist", "by_clock",
                                                        "sleep_linear", "calls"]
        assert hist.counters(obj.maps["calls"].items()) == [(0, len(SLEEPS_US))]
        with pytest.raises(ValueError, match="not a histogram"):
            hist.read(obj.maps["calls"])


def _load(*opts: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "pybpf", "load", str(built("hist_maps.bpf.o")),
                             "--set", f"targ_tgid={os.getpid()}", *opts],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stderr.readline()
    assert "attached" in line, line + proc.stderr.read()
    return proc


def test_load_prints_maps_on_exit(kernel):
    proc = _load()
    for us in SLEEPS_US:
        _sleep_us(us)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "map sleep_hist:\n     value               : count     distribution\n" in out
    assert "      2048 -> 4095       : 3        |" + "*" * 40 + "|" in out
    assert "\nkey = 1, comm = python" in out
    assert "map calls:\nKEY  VALUE\n  0      6\n" in out
    assert "\nclock = 1\n     value         : count     distribution\n" in out


def test_load_interval_json(kernel):
    proc = _load("--interval", "0.2", "--json")
    for us in SLEEPS_US:
        _sleep_us(us)
    first = json.loads(proc.stdout.readline())        # an interval report, before the end
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reports = [first] + [json.loads(line) for line in out.splitlines()]
    assert {r["map"] for r in reports} == {"sleep_hist", "by_clock", "sleep_linear", "calls"}
    last = {r["map"]: r for r in reports[-4:]}
    buckets = last["sleep_hist"]["histograms"][0]["buckets"]
    assert [b for b in buckets if b[2]] == [[256, 511, 2], [2048, 4095, 3], [16384, 32767, 1]]
    assert last["by_clock"]["histograms"][0]["sum"] == sum(SLEEPS_US)
    assert last["calls"]["entries"] == [{"key": 0, "value": 6}]
