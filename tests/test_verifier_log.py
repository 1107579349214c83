"""The verifier log: grown until it is whole, and kept in VerifierError."""
from __future__ import annotations

import re

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi

from conftest import built, require_kernel


def _rejected_log() -> str:
    obj = pybpf.BPFObject.open(built("exec.bpf.o"))
    obj.programs["handle_exec"].type = uapi.BPF_PROG_TYPE_SOCKET_FILTER
    with pytest.raises(pybpf.VerifierError) as e:
        obj.load()
    obj.close()
    return e.value.log


def _addresses_out(log: str) -> str:
    return re.sub(r"[0-9a-f]{12,16}", "ADDR", log)


def test_log_grows_from_a_tiny_buffer(monkeypatch):
    """Starting at the kernel's minimum (128 bytes), the log still comes back whole:
    the buffer grows to log_true_size (6.4+) or x4, within a bounded number of tries."""
    require_kernel()
    full = _rejected_log()
    assert len(full) > 1024
    monkeypatch.setattr(syscall, "LOG_START_SIZE", uapi.BPF_LOG_MIN_SIZE)
    grown = _rejected_log()
    # identical but for the kernel addresses of the maps of each load
    assert _addresses_out(grown) == _addresses_out(full)
    assert grown.rstrip().splitlines()[-1].startswith("processed ")


def test_requested_log_on_success():
    """log_level=1 on a good program returns the verifier's statistics."""
    require_kernel()
    with pybpf.BPFObject.open(built("exec.bpf.o")) as obj:
        obj.load(log_level=uapi.BPF_LOG_LEVEL1 | uapi.BPF_LOG_STATS)
        log = obj.programs["handle_exec"].verifier_log
    assert "processed" in log and "insns" in log
