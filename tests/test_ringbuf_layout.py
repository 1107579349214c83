"""The ring laid bare: describe() of live rings, the scenario, text/json/svg output."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pybpf.study import layout as ringbuf_layout
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.events.ringbuf import RingBuffer
from pybpf.study.producer import Producer
from pybpf.events.ringmem import PAGE_SIZE

from conftest import require_kernel


@pytest.fixture(scope="module")
def steps():
    require_kernel()
    return ringbuf_layout.scenario(2 * PAGE_SIZE)


def test_describe_a_live_ring():
    require_kernel()
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, PAGE_SIZE, name="t_lay") as fd, \
            Producer(fd.fd) as prod, RingBuffer(fd.fd, lambda mv: None) as rb:
        prod.output(b"abc")
        prod.reserve(b"z" * 16, discard=True)
        d = rb.layout()
        cons_map, prod_map = d["mappings"]
        assert (cons_map["prot"], cons_map["file_offset"], cons_map["length"]) == \
            ("rw-s", 0, PAGE_SIZE)
        assert (prod_map["prot"], prod_map["file_offset"], prod_map["length"]) == \
            ("r--s", PAGE_SIZE, 3 * PAGE_SIZE)
        assert "bpf-map" in prod_map["proc_maps"]
        assert prod_map["proc_maps"].startswith(f"{prod_map['address']:x}-{prod_map['end']:x}")
        assert (d["consumer_pos"], d["producer_pos"], d["in_flight"]) == (0, 40, 40)
        recs = [(r["offset"], r["len"], r["busy"], r["discard"], r["record_bytes"], r["head"])
                for r in d["records"]]
        assert recs == [(0, 3, False, False, 16, "616263"), (16, 16, False, True, 24, "7a" * 16)]
        assert d["records"][0]["pg_off"] == d["records"][1]["pg_off"] > 0
        data = d["data"]
        assert data["first_copy"] == prod_map["address"] + PAGE_SIZE
        assert data["second_copy"] == data["first_copy"] + PAGE_SIZE
        assert data["same_bytes"] is True
        assert data["same_frames"] is True           # root: pagemap shows the frames
        assert data["pages"][0]["pfn_first"] == data["pages"][0]["pfn_second"]
        json.dumps(d)
        rb.consume()
        assert rb.layout()["records"] == []


def test_scenario_shows_discard_wrap_and_busy(steps):
    recs = [(i, r) for i, s in enumerate(steps) for r in s["state"]["records"]]
    assert any(r["discard"] for _, r in recs)
    wrapped = [r for _, r in recs if r["wraps"]]
    assert wrapped and wrapped[0]["offset"] + wrapped[0]["record_bytes"] > \
        steps[0]["state"]["map"]["size"]
    busy = [r for _, r in recs if r["busy"]]
    assert len(busy) == 1 and busy[0]["consumer_stops_here"]
    kinds = {s["state"]["map"]["type"] for s in steps}
    assert kinds == {"BPF_MAP_TYPE_RINGBUF", "BPF_MAP_TYPE_USER_RINGBUF"}
    assert any("contents intact" in s["note"] for s in steps)
    user = [s["state"] for s in steps if s["state"]["map"]["type"].endswith("USER_RINGBUF")]
    assert [m["prot"] for m in user[0]["mappings"]] == ["r--s", "rw-s"]
    assert all(s["state"]["data"]["same_bytes"] for s in steps)


def test_text_json_and_svg(steps, tmp_path, capsys):
    text = ringbuf_layout.render_text(steps)
    for needle in ("DISCARD", "WRAPS", "BUSY", "<- consumer stops", "/proc/self/maps:",
                   "hold the same bytes: yes", "consumer_pos", "producer_pos"):
        assert needle in text
    svg = ringbuf_layout.render_svg(steps)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    rects = root.findall(".//{http://www.w3.org/2000/svg}rect")
    colors = {r.get("fill") for r in rects}
    assert {"#4caf50", "#9e9e9e", "#ff9800"} <= colors
    # the wrapping record is drawn in one piece across the end of the data pages,
    # into the second mapping (the dashed purple bar), and echoed faded at the start
    second = min(float(r.get("x")) for r in rects if r.get("stroke") == "#6a1b9a"
                 and r.get("fill") == "#f3e5f5")
    committed = [r for r in rects if r.get("fill") == "#4caf50"]
    assert any(float(r.get("x")) < second < float(r.get("x")) + float(r.get("width"))
               for r in committed if r.get("opacity") is None)
    assert any(r.get("opacity") for r in committed)
    # the CLI entry point
    out = tmp_path / "ring.svg"
    assert ringbuf_layout.main(["--json", "--svg", str(out), "--size", str(PAGE_SIZE)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["steps"][0]["state"]["map"]["size"] == PAGE_SIZE
    ET.parse(out)
    assert ringbuf_layout.main([]) == 0
    assert "step 1: empty ring" in capsys.readouterr().out


def test_bad_size_is_reported(capsys):
    require_kernel()
    assert ringbuf_layout.main(["--size", "12288"]) == 1
    assert "power-of-2 multiple" in capsys.readouterr().err
