"""The Prometheus exporter: exposition text of a live object fed with known
sleeps (cumulative buckets, _sum, _count, counters), the config (names, labels,
scale, errors), scraping ``python -m pybpf export`` over HTTP, and promtool."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Dict, List, Tuple

import pytest

from conftest import ROOT, built
from test_hist import SLEEPS_US, _sleep_us
from pybpf import BPFObject
from pybpf.metrics.exporter import ConfigError, Exporter, check_config, label_value, load_config
from pybpf.cli.map_report import reported_maps

Sample = Tuple[str, Dict[str, str], float]
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Tuple[List[Sample], Dict[str, str]]:
    """Samples and # TYPE lines of an exposition text (every line must parse)."""
    samples: List[Sample] = []
    types: Dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = _LINE.match(line)
        assert m, f"unparsable exposition line {line!r}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples, types


def value(samples: List[Sample], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == x
                                                            for k, x in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_label_escaping_and_config_checks(tmp_path):
    assert label_value(b'a"b\\c\nd\0junk') == 'a\\"b\\\\c\\nd'
    with pytest.raises(ConfigError, match=r"metrics\[0\]: needs a 'map'"):
        check_config({"metrics": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="not a valid metric name"):
        check_config({"metrics": [{"map": "m", "name": "bad-name"}]})
    with pytest.raises(ConfigError, match="'le' is not a usable label name"):
        check_config({"metrics": [{"map": "m", "labels": {"le": "key"}}]})
    with pytest.raises(ConfigError, match="unknown key"):
        check_config({"metric": []})
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="bad.json"):
        load_config(str(bad))
    toml = tmp_path / "c.toml"
    toml.write_text('prefix = "x_"\n[[metrics]]\nmap = "calls"\nname = "calls_total"\n')
    if sys.version_info >= (3, 11):
        assert load_config(str(toml)) == {"prefix": "x_", "metrics": [
            {"map": "calls", "name": "calls_total"}]}
    else:
        with pytest.raises(ConfigError, match="tomllib"):
            load_config(str(toml))


def test_exposition_of_a_live_object(kernel):
    with BPFObject.open(built("hist_maps.bpf.o")) as obj:
        obj.rodata["targ_tgid"] = os.getpid()
        obj.load()
        obj.attach()
        for us in SLEEPS_US:
            _sleep_us(us)
        exp = Exporter(reported_maps(obj))
        samples, types = parse(exp.render())
        with pytest.raises(ConfigError, match="lacks"):
            Exporter(reported_maps(obj), {"metrics": [{"map": "nosuch"}]})
        cfg = Exporter(reported_maps(obj), {"only_configured": True, "metrics": [
            {"map": "by_clock", "name": "sleep_seconds", "type": "histogram",
             "labels": {"clock": "key"}, "scale": 1e-6},
            {"map": "calls", "name": "sleep_calls_total", "help": "sleeps"}]})
        csamples, ctypes_ = parse(cfg.render())
    assert types == {"pybpf_sleep_hist": "histogram", "pybpf_by_clock": "histogram",
                     "pybpf_sleep_linear": "histogram", "pybpf_calls_total": "counter"}
    h = "pybpf_sleep_hist"
    assert value(samples, h + "_bucket", le="1") == 0
    assert value(samples, h + "_bucket", le="511") == 2
    assert value(samples, h + "_bucket", le="4095") == 5
    assert value(samples, h + "_bucket", le="32767") == 6
    assert value(samples, h + "_bucket", le="+Inf") == 6
    assert value(samples, h + "_count") == 6
    # no sum member: the lower bounds (256*2 + 2048*3 + 16384)
    assert value(samples, h + "_sum") == 256 * 2 + 2048 * 3 + 16384
    assert value(samples, "pybpf_by_clock_sum", key="1") == sum(SLEEPS_US)
    assert value(samples, "pybpf_sleep_linear_bucket", clock="1", le="3") == 5
    assert value(samples, "pybpf_calls_total", key="0") == 6
    buckets = [v for n, lab, v in samples if n == h + "_bucket"]
    assert buckets == sorted(buckets)            # cumulative
    assert ctypes_ == {"sleep_seconds": "histogram", "sleep_calls_total": "counter"}
    assert value(csamples, "sleep_seconds_sum", clock="1") == pytest.approx(sum(SLEEPS_US) * 1e-6)
    assert value(csamples, "sleep_seconds_bucket", clock="1", le=repr(4095 * 1e-6)) == 5
    assert value(csamples, "sleep_calls_total", key="0") == 6


class Served:
    def __init__(self, *argv: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "pybpf", "export", *argv,
                                      "--listen", "127.0.0.1:0"], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline()
        m = re.search(r"(http://\S+/metrics)", line)
        if not m:
            self.proc.kill()
            pytest.fail(line + self.proc.communicate()[1])
        self.url = m.group(1)

    def scrape(self) -> Tuple[str, str]:
        with urllib.request.urlopen(self.url, timeout=30) as r:
            return r.headers["Content-Type"], r.read().decode()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err


def test_export_command_serves_configured_metrics(kernel, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"prefix": "t_", "metrics": [
        {"map": "sleep_linear", "name": "sleep_ms", "labels": {"clock_id": "clock"}}]}))
    srv = Served(str(built("hist_maps.bpf.o")), "--set", f"targ_tgid={os.getpid()}",
                 "--config", str(cfg))
    try:
        for us in SLEEPS_US:
            _sleep_us(us)
        ctype, text = srv.scrape()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(srv.url.replace("/metrics", "/nope"), timeout=30)
    finally:
        srv.close()
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = parse(text)
    assert types["sleep_ms"] == "histogram" and types["t_calls_total"] == "counter"
    assert value(samples, "sleep_ms_count", clock_id="1") == 6
    assert value(samples, "t_sleep_hist_bucket", le="4095") == 5


def test_export_a_tool(kernel):
    srv = Served("syscount")
    try:
        os.getppid()
        _, text = srv.scrape()
    finally:
        srv.close()
    samples, types = parse(text)
    assert types == {"pybpf_syscalls_total": "counter"}
    assert value(samples, "pybpf_syscalls_total", nr="110") >= 1     # getppid on x86_64


def test_promtool_accepts_the_exposition(kernel):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus): the exposition "
                    "is parsed by the other tests; this one adds Prometheus' own linter")
    for source in (str(built("hist_maps.bpf.o")), "runqlat", "syscount", "biolatency"):
        srv = Served(source, *(["--set", f"targ_tgid={os.getpid()}"] if "/" in source else []))
        try:
            for us in SLEEPS_US:
                _sleep_us(us)
            _, text = srv.scrape()
        finally:
            srv.close()
        assert "# TYPE pybpf_" in text
        res = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True)
        assert res.returncode == 0, f"{source}: {res.stdout}{res.stderr}\n{text[:2000]}"


class _Rows:
    """A map's name and BTF with given contents (no kernel)."""

    def __init__(self, real, rows, name=None):
        self.name, self.btf, self.spec, self._rows = name or real.name, real.btf, real.spec, rows

    def items(self):
        return iter(self._rows)


def test_struct_counters_named_from_btf_on_every_scrape():
    from pybpf.tools.common import object_path
    with BPFObject.open(object_path("syscount")) as obj:
        counts = obj.maps["counts"]
        full = Exporter([_Rows(counts, [(59, {"count": 3, "total_ns": 10, "max_ns": 5,
                                              "comm": b"sh\0"})])]).render()
        empty = Exporter([_Rows(counts, [])]).render()
    samples, types = parse(full)
    assert types == {"pybpf_counts_count_total": "counter",
                     "pybpf_counts_total_ns_total": "counter",
                     "pybpf_counts_max_ns_total": "counter"}
    assert value(samples, "pybpf_counts_count_total", key="59", comm="sh") == 3
    assert value(samples, "pybpf_counts_max_ns_total", key="59") == 5
    assert parse(empty)[1] == types                       # same names with no rows yet
    assert parse(empty)[0] == []


_SYSCOUNT_ROW = (59, {"count": 3, "total_ns": 10, "max_ns": 5, "comm": b"sh\0"})


def test_names_that_would_break_the_exposition_are_escaped():
    # a map name with a line feed started a line of its own in HELP, and one with a
    # byte that is not UTF-8 (surrogateescape) made the scrape end in UnicodeEncodeError
    with BPFObject.open(built("hist_maps.bpf.o")) as obj:
        text = Exporter([_Rows(obj.maps["calls"], [(0, 5)], name='rq\nx\\"\udcff')]).render()
    text.encode("utf-8")                                  # strict: nothing unencodable
    samples, types = parse(text)
    assert types == {"pybpf_rq_x____total": "counter"}
    assert value(samples, "pybpf_rq_x____total", key="0") == 5
    help_line, = [line for line in text.splitlines() if line.startswith("# HELP")]
    assert help_line == '# HELP pybpf_rq_x____total BPF map rq\\nx\\\\"\\\\udcff'
    assert label_value("a\udcff\n") == "a\\\\udcff\\n"
    promtool = shutil.which("promtool")
    if promtool is not None:
        res = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True)
        assert res.returncode == 0, res.stdout + res.stderr


def test_two_maps_giving_one_metric_name_are_refused():
    from pybpf.tools.common import object_path
    with BPFObject.open(object_path("syscount")) as obj:
        counts = obj.maps["counts"]
        with pytest.raises(ConfigError, match="maps 'a-b' and 'a_b' both give the metric "
                                              "'pybpf_a_b_count_total'"):
            Exporter([_Rows(counts, [], "a-b"), _Rows(counts, [], "a_b")])
        named = Exporter([_Rows(counts, [], "a-b"), _Rows(counts, [], "a_b")],
                         {"metrics": [{"map": "a-b", "name": "ab"}]})
        assert sorted(parse(named.render())[1]) == [
            "ab_count_total", "ab_max_ns_total", "ab_total_ns_total", "pybpf_a_b_count_total",
            "pybpf_a_b_max_ns_total", "pybpf_a_b_total_ns_total"]
    with BPFObject.open(built("hist_maps.bpf.o")) as obj:
        sleep_hist, calls = obj.maps["sleep_hist"], obj.maps["calls"]
        # a gauge named as a histogram's _count series
        with pytest.raises(ConfigError, match="'pybpf_sleep_hist_count'"):
            Exporter([_Rows(sleep_hist, []), _Rows(calls, [], "sleep_hist_count")],
                     {"metrics": [{"map": "sleep_hist_count", "type": "gauge"}]})
        # what a map becomes is settled before the first scrape
        with pytest.raises(ConfigError, match="'calls' is configured as a histogram"):
            Exporter([_Rows(calls, [])], {"metrics": [{"map": "calls", "type": "histogram"}]})


def test_a_failed_scrape_says_why_in_any_script(kernel, tmp_path):
    # the reason went into the HTTP status line, which must be Latin-1: a field name
    # outside it ended the request in a traceback and an empty reply
    from pybpf.tools.common import object_path
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"only_configured": True, "metrics": [
        {"map": "counts", "value": "żółw"}]}))
    srv = Served(object_path("syscount"), "--config", str(cfg))
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            for _ in range(50):             # until a syscall has been counted
                os.getppid()
                srv.scrape()
                time.sleep(0.05)
        body = e.value.read().decode()
    finally:
        srv.close()
    assert e.value.code == 500
    assert "map 'counts': the value has no field 'żółw'" in body
