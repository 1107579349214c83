"""CO-RE against the running kernel: load the bpf/core_*.bpf.c programs (relocated
against /sys/kernel/btf/vmlinux by the loader), trigger them, and compare what
they read with what user space knows and with offsets walked in the kernel BTF."""
from __future__ import annotations

import os
import resource
import subprocess

import pytest

import pybpf
from pybpf.errors import VerifierError
from pybpf import uapi

from conftest import built, require_kernel
from test_core import bit_offset_of, offsetof, struct_id, vmlinux  # noqa: F401 (fixture)


@pytest.fixture
def loaded(request):
    """Open, configure (target_tgid = this process), load and attach an object."""
    require_kernel()
    objs = []

    def load(name: str) -> pybpf.BPFObject:
        obj = pybpf.BPFObject.open(str(built(name)))
        objs.append(obj)
        obj.rodata["target_tgid"] = os.getpid()
        obj.load()
        obj.attach()
        return obj

    yield load
    for obj in objs:
        obj.close()


def spawn_true() -> int:
    proc = subprocess.Popen(["/bin/true"])
    proc.wait()
    return proc.pid


def test_task_fields_read_through_flavors(loaded, vmlinux):
    obj = loaded("core_task.bpf.o")
    os.getppid()                              # any syscall of this process triggers it
    bss = obj.bss
    assert bss["hits"] > 0
    threads = {int(t) for t in os.listdir("/proc/self/task")}
    assert bss["got_pid"] in threads
    assert bss["got_tgid"] == os.getpid()
    assert bss["got_ppid"] == os.getppid()
    with open(f"/proc/self/task/{bss['got_pid']}/comm", "rb") as f:
        comm = f.read().rstrip(b"\n")
    assert bss["got_comm"] == comm and bss["got_comm2"] == comm[2]
    assert (bss["got_nofile_cur"], bss["got_nofile_max"]) == \
        resource.getrlimit(resource.RLIMIT_NOFILE)
    assert bss["got_in_execve"] == 0
    assert obj.data["got_missing"] == -1      # guarded by bpf_core_field_exists(): never read
    assert (bss["exists_pid"], bss["exists_missing"], bss["exists_bad"]) == (1, 0, 0)
    assert bss["off_pid"] == offsetof(vmlinux, "task_struct", "pid")
    assert bss["off_tgid"] == offsetof(vmlinux, "task_struct", "tgid")
    assert bss["off_comm"] == offsetof(vmlinux, "task_struct", "comm")
    assert bss["off_comm2"] == bss["off_comm"] + 2
    assert bss["off_real_parent"] == offsetof(vmlinux, "task_struct", "real_parent")
    assert bss["off_rlim_cur"] == offsetof(vmlinux, "signal_struct", "rlim", 7, "rlim_cur")
    assert (bss["size_pid"], bss["size_comm"], bss["size_real_parent"]) == (4, 16, 8)
    assert (bss["signed_pid"], bss["signed_in_execve"]) == (1, 0)
    bit, _ = bit_offset_of(vmlinux, "task_struct", "in_execve")
    word = bit // 8 // bss["size_in_execve"] * bss["size_in_execve"]
    assert bss["lshift_in_execve"] == 64 - (bit + 1 - 8 * word)
    assert bss["rshift_in_execve"] == 63


def test_bitfield_during_exec(loaded):
    """current->in_execve is 1 while the kernel runs the exec tracepoint."""
    obj = loaded("core_task.bpf.o")
    pid = spawn_true()
    bss = obj.bss
    assert bss["exec_hits"] == 1
    assert bss["exec_pid"] == pid
    assert bss["exec_in_execve"] == 1
    assert bss["exec_comm"] == b"true"


def test_types_and_enums_in_kernel(loaded, vmlinux):
    obj = loaded("core_types.bpf.o")
    os.getppid()
    bss = obj.bss
    assert bss["hits"] > 0

    def enumval(enum: str, name: str) -> int:
        ids = vmlinux.find(enum, uapi.BTF_KIND_ENUM) + vmlinux.find(enum, uapi.BTF_KIND_ENUM64)
        return dict(vmlinux[ids[0]].values)[name] & (2 ** 64 - 1)

    ringbuf = enumval("bpf_map_type", "BPF_MAP_TYPE_RINGBUF")
    assert ringbuf == uapi.BPF_MAP_TYPE_RINGBUF
    assert bss["ev_ringbuf"] == bss["ev_ringbuf_flavor"] == ringbuf
    assert bss["ev_blake2b_iv0"] == enumval("blake2b_iv", "BLAKE2B_IV0") == 0x6A09E667F3BCC908
    assert bss["ev_perf_context_max"] == enumval("perf_callchain_context", "PERF_CONTEXT_MAX")
    assert bss["ev_perf_context_hv"] == enumval("perf_callchain_context", "PERF_CONTEXT_HV")
    assert (bss["ev_exists_ringbuf"], bss["ev_exists_flavor"],
            bss["ev_exists_missing"]) == (1, 1, 0)
    assert (bss["te_task"], bss["te_task_flavor"], bss["te_missing"], bss["te_pid_t"],
            bss["te_enum"]) == (1, 1, 0, 1, 1)
    task = struct_id(vmlinux, "task_struct")
    assert bss["ts_task"] == bss["ts_task_flavor"] == vmlinux.size_of(task)
    assert (bss["ts_missing"], bss["ts_pid_t"], bss["ts_enum"],
            bss["ts_list_head"]) == (0, 4, 4, 16)
    assert bss["tid_task_kernel"] == bss["tid_task_flavor_kernel"] == task
    assert bss["tid_missing_kernel"] == 0
    assert obj.btf[bss["tid_task_local"]].name == "task_struct___local"
    assert bss["off_skb_len"] == offsetof(vmlinux, "sk_buff", "len")
    assert bss["off_skb_dev"] == offsetof(vmlinux, "sk_buff", "dev")
    assert bss["off_skb_cb5"] == offsetof(vmlinux, "sk_buff", "cb") + 5
    bit, _ = bit_offset_of(vmlinux, "sk_buff", "pkt_type")
    assert (bss["off_skb_pkt_type"], bss["size_skb_pkt_type"]) == (bit // 8, 1)
    assert bss["lshift_skb_pkt_type"] == 64 - (bit % 8 + 3)
    assert bss["rshift_skb_pkt_type"] == 61


def test_direct_bitfield_and_resized_load(loaded):
    """tp_btf: direct loads, one narrowed from 8 to 4 bytes by the relocation."""
    obj = loaded("core_direct.bpf.o")
    pid = spawn_true()
    bss = obj.bss
    assert bss["hits"] == 1 and bss["got_pid"] == pid
    assert bss["got_in_execve"] == 1
    assert bss["got_flags"] == bss["kernel_flags"] != 0


def test_reachable_poisoned_relocation_is_explained():
    require_kernel()
    with pybpf.BPFObject.open(str(built("core_poison.bpf.o"))) as obj:
        with pytest.raises(VerifierError) as err:
            obj.load()
    msg = str(err.value)
    for part in ("CO-RE relocation", "struct task_struct___poison.pybpf_no_such_field",
                 "has no field 'pybpf_no_such_field'", "bpf_core_field_exists()",
                 "core_poison.bpf.c"):
        assert part in msg, (part, msg)
    assert "unknown#195896080" in err.value.log
