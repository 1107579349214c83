"""biolatency and biosnoop on a loop device this test sets up (direct I/O with
dd), tcpstates and tcplife on TCP connections over loopback in a network
namespace this test creates."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tooltest import ToolRun, matching, run_tool
from pybpf.tools import blockdev

pytestmark = pytest.mark.usefixtures("kernel")


@pytest.fixture
def loopdev():
    if shutil.which("losetup") is None:
        pytest.fail("losetup (util-linux) is needed for the block I/O tests")
    fd, path = tempfile.mkstemp(prefix=f"pybpf-blk-{os.getpid()}-", dir="/tmp")
    os.ftruncate(fd, 8 << 20)
    os.close(fd)
    dev = subprocess.run(["losetup", "-f", "--show", path], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)
        os.unlink(path)


def _dd(dev: str, write: bool, count: int, skip: int = 0) -> int:
    io = ["if=/dev/zero", f"of={dev}", "oflag=direct", f"seek={skip}"] if write else \
        [f"if={dev}", "of=/dev/null", "iflag=direct", f"skip={skip}"]
    p = subprocess.Popen(["dd", "bs=4k", f"count={count}", *io], stderr=subprocess.DEVNULL)
    assert p.wait() == 0
    return p.pid


def test_blockdev_names_and_flags(loopdev):
    dev = blockdev.dev_of(loopdev)
    st = os.stat(loopdev).st_rdev
    assert blockdev.split_dev(dev) == (os.major(st), os.minor(st))
    assert blockdev.dev_name(dev) == os.path.basename(loopdev)
    assert blockdev.dev_of(f"{os.major(st)}:{os.minor(st)}") == dev
    assert blockdev.op_name(1) == "WRITE" and blockdev.rwbs(0) == "R"


def test_biosnoop_direct_io(loopdev):
    pids = {}

    def work():
        pids["w"] = _dd(loopdev, True, 6, skip=10)
        pids["r"] = _dd(loopdev, False, 4, skip=2)
    recs = run_tool("biosnoop", "-d", loopdev, workload=work)
    disk = os.path.basename(loopdev)
    assert {r["disk"] for r in recs} == {disk}
    writes = matching(recs, pid=pids["w"])
    assert [r["sector"] for r in writes] == [(10 + i) * 8 for i in range(6)]
    assert all(r["op"] == "WRITE" and r["bytes"] == 4096 and r["comm"] == "dd"
               and r["rwbs"].startswith("W") and r["latency_ns"] > 0 for r in writes)
    reads = matching(recs, pid=pids["r"])
    assert [r["sector"] for r in reads] == [(2 + i) * 8 for i in range(4)]
    assert all(r["op"] == "READ" and r["rwbs"].startswith("R") for r in reads)


def test_biolatency_per_disk_and_flag(loopdev):
    def work():
        _dd(loopdev, True, 12)
        _dd(loopdev, False, 5)
    recs = run_tool("biolatency", "-D", "-F", "-d", loopdev, workload=work)
    disk = os.path.basename(loopdev)
    assert {r["disk"] for r in recs} == {disk}
    by_op = {r["flags"][0]: r for r in recs}
    assert by_op["W"]["count"] == 12 and by_op["R"]["count"] == 5
    assert by_op["W"]["unit"] == "usecs" and by_op["W"]["sum"] > 0


def test_biolatency_text_ms(loopdev):
    run = ToolRun("biolatency", "-m", "-d", loopdev, json_output=False)
    _dd(loopdev, True, 3)
    out = run.stop()
    assert "     msecs               : count     distribution" in out
    counts = [int(line.split(":")[1].split()[0]) for line in out.splitlines() if "->" in line]
    assert sum(counts) == 3


@pytest.fixture
def netns():
    name = f"pybpf-tools-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


# server: accept one connection, read 1000 bytes, send 3000, wait for the client to close
SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
got = b""
while len(got) < 1000:
    got += c.recv(4096)
c.sendall(b"y" * 3000)
while c.recv(4096):
    pass
c.close(); s.close()
"""
CLIENT = r"""
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"x" * 1000)
got = b""
while len(got) < 3000:
    got += c.recv(4096)
c.close()
"""


def _session(ns: str, port: int) -> dict:
    pids = {}
    server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER,
                               str(port)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "listening\n"
    client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT,
                               str(port)])
    assert client.wait() == 0 and server.wait() == 0
    pids["client"], pids["server"] = client.pid, server.pid
    return pids


def test_tcpstates_connection_lifecycle(netns):
    port = 20000 + os.getpid() % 20000
    recs = run_tool("tcpstates", "-4", "-D", str(port), workload=lambda: _session(netns, port))
    assert recs and {r["rport"] for r in recs} == {port}     # -D: the client side only
    client = [r for r in recs if r["laddr"] == "127.0.0.1"]
    steps = [(r["oldstate"], r["newstate"]) for r in client]
    assert steps[:2] == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")], steps
    assert steps[-1][1] == "CLOSE"
    assert client[0]["comm"] == "python3" or client[0]["comm"].startswith("python")
    assert client[1]["delta_ns"] > 0 and client[0]["delta_ns"] == 0

    listen = run_tool("tcpstates", "-L", str(port), workload=lambda: _session(netns, port))
    assert {r["lport"] for r in listen} == {port}
    assert ("CLOSE", "LISTEN") in [(r["oldstate"], r["newstate"]) for r in listen]


def test_tcplife_bytes_and_processes(netns):
    port = 20000 + (os.getpid() + 7) % 20000
    pids: dict = {}
    recs = run_tool("tcplife", "-4", workload=lambda: pids.update(_session(netns, port)))
    client = matching(recs, rport=port)
    assert len(client) == 1
    assert client[0]["tx_bytes"] == 1000 and client[0]["rx_bytes"] == 3000
    # the exec'd python keeps the pid of "ip netns exec"
    assert client[0]["pid"] == pids["client"] and client[0]["span_ns"] > 0
    served = [r for r in recs if r["lport"] == port and r["rport"] != 0]
    assert len(served) == 1
    assert served[0]["tx_bytes"] == 3000 and served[0]["rx_bytes"] == 1000
    assert served[0]["pid"] == pids["server"]
