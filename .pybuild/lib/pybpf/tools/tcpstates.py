"""tcpstates: trace TCP state changes (with the time spent in the old state),
from sock:inet_sock_set_state."""
from __future__ import annotations

import argparse
import ipaddress
import socket
from typing import Any, Dict, List, Tuple

from . import common

#: include/net/tcp_states.h
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE"}
COLUMNS = [("SKADDR", 18), ("C-PID", 7), ("C-COMM", 16), ("LADDR", 15), ("LPORT", 5),
           ("RADDR", 15), ("RPORT", 5), ("OLDSTATE", 11), ("->", 2), ("NEWSTATE", 11),
           ("MS", 0)]


def state_name(state: int) -> str:
    """ESTABLISHED for 1, or the number."""
    return STATES.get(state, str(state))


def endpoints(ep: Dict[str, Any]) -> Tuple[str, int, str, int]:
    """(local address, port, remote address, port) of a ``struct tcp_endpoints``."""
    size = 4 if ep["family"] == socket.AF_INET else 16
    src = str(ipaddress.ip_address(bytes(ep["saddr"][:size])))
    dst = str(ipaddress.ip_address(bytes(ep["daddr"][:size])))
    return src, ep["sport"], dst, ep["dport"]


def add_tcp_filters(p: argparse.ArgumentParser) -> None:
    """-4 / -6, -L PORT, -D PORT."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-4", "--ipv4", action="store_true", help="only IPv4")
    g.add_argument("-6", "--ipv6", action="store_true", help="only IPv6")
    p.add_argument("-L", "--localport", type=int, default=0, metavar="PORT",
                   help="only this local port")
    p.add_argument("-D", "--remoteport", type=int, default=0, metavar="PORT",
                   help="only this remote port")


def tcp_rodata(args: argparse.Namespace) -> Dict[str, int]:
    """The filters of :func:`add_tcp_filters` as the objects' globals."""
    family = socket.AF_INET if args.ipv4 else socket.AF_INET6 if args.ipv6 else 0
    return {"targ_family": int(family), "targ_sport": args.localport,
            "targ_dport": args.remoteport}


def main(argv: List[str]) -> int:
    """Run tcpstates."""
    p = common.parser("tcpstates", __doc__ or "")
    add_tcp_filters(p)
    args = common.parse(p, argv)
    with common.open_tool("tcpstates", args, **tcp_rodata(args)) as obj:
        common.load_and_attach(obj)
        out = common.Writer(args, COLUMNS)

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            laddr, lport, raddr, rport = endpoints(e["ep"])
            old, new = state_name(e["oldstate"]), state_name(e["newstate"])
            if out.json:
                out.row({"skaddr": e["skaddr"], "pid": e["pid"], "comm": e["comm"],
                         "family": e["ep"]["family"], "laddr": laddr, "lport": lport,
                         "raddr": raddr, "rport": rport, "oldstate": old, "newstate": new,
                         "delta_ns": e["delta_ns"]}, e["ts"])
                return
            out.row({"SKADDR": f"{e['skaddr']:x}", "C-PID": e["pid"], "C-COMM": e["comm"],
                     "LADDR": laddr, "LPORT": lport, "RADDR": raddr, "RPORT": rport,
                     "OLDSTATE": old, "->": "->", "NEWSTATE": new,
                     "MS": f"{e['delta_ns'] / 1e6:.3f}"}, e["ts"])
        return common.run_events(obj, args, handle, "TCP state changes")
