"""The tools' shipped BPF objects, without the kernel: each parses, uses only
tracepoints / BTF tracepoints / perf events (no kprobes, no trampolines), has
the shared filters, and (event tools) a BTF ``struct event`` the Python side
decodes; the CLI's tool registry and help; Python 3.9 syntax of the new code."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT
from pybpf import BPFObject, uapi
from pybpf.tools import TOOLS, available, common

ALLOWED = {uapi.BPF_PROG_TYPE_TRACEPOINT, uapi.BPF_PROG_TYPE_TRACING,
           uapi.BPF_PROG_TYPE_PERF_EVENT, uapi.BPF_PROG_TYPE_RAW_TRACEPOINT}
EVENT_TOOLS = ["execsnoop", "opensnoop", "exitsnoop", "killsnoop", "biosnoop", "tcpstates",
               "tcplife"]


def test_every_tool_is_available():
    assert available() == list(TOOLS)


@pytest.mark.parametrize("tool", list(TOOLS))
def test_tool_object_parses_with_filters(tool):
    with BPFObject.open(common.object_path(tool)) as obj:
        assert obj.programs and {p.type for p in obj.programs.values()} <= ALLOWED
        for p in obj.programs.values():
            if p.type == uapi.BPF_PROG_TYPE_TRACING:
                assert p.section.startswith("tp_btf/"), p.section   # not fentry/fexit
        assert "targ_tgid" in obj.rodata and "targ_comm" in obj.rodata
        assert obj.license == "GPL"
        if tool in EVENT_TOOLS:
            dec = common.EventDecoder(obj)
            event, raw = dec(memoryview(bytes(dec.size // 2)))   # short records are padded
            assert set(event) >= {"ts"} and len(raw) == dec.size // 2
            assert obj.maps["events"].type == uapi.BPF_MAP_TYPE_RINGBUF
            assert "events_dropped" in obj.bss


def test_missing_object_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "BPF_DIR", str(tmp_path))
    with pytest.raises(Exception, match="make tools-bpf"):
        common.object_path("execsnoop")


def test_tool_help_lists_the_usual_options():
    out = subprocess.run([sys.executable, "-m", "pybpf", "tool", "runqlat", "--help"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.startswith("usage: pybpf tool runqlat")
    for opt in ("-p PID", "-c COMM", "-T, --time", "-t, --timestamp", "--json",
                "-m, --milliseconds", "-u, --microseconds", "interval", "count"):
        assert opt in out, opt
    bad = subprocess.run([sys.executable, "-m", "pybpf", "tool", "execsnoop", "--nope"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unrecognized arguments: --nope" in bad.stderr


def test_the_package_is_python39_syntax():
    files = sorted((ROOT / "pybpf").rglob("*.py"))
    assert len(files) > 60
    for path in files:
        ast.parse(pathlib.Path(path).read_text(), str(path), feature_version=(3, 9))
