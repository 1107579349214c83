"""tcplife: one line per closed TCP session: process, endpoints, bytes
received and sent, duration; from sock:inet_sock_set_state (bytes from the
tcp_sock, read with CO-RE)."""
from __future__ import annotations

from typing import Any, Dict, List

from . import common
from .tcpstates import add_tcp_filters, endpoints, tcp_rodata

COLUMNS = [("PID", 7), ("COMM", 16), ("LADDR", 15), ("LPORT", 5), ("RADDR", 15),
           ("RPORT", 5), ("TX_KB", 6), ("RX_KB", 6), ("MS", 0)]


def main(argv: List[str]) -> int:
    """Run tcplife."""
    p = common.parser("tcplife", __doc__ or "")
    add_tcp_filters(p)
    args = common.parse(p, argv)
    with common.open_tool("tcplife", args, **tcp_rodata(args)) as obj:
        common.load_and_attach(obj)
        out = common.Writer(args, COLUMNS)

        def handle(e: Dict[str, Any], raw: bytes) -> None:
            laddr, lport, raddr, rport = endpoints(e["ep"])
            if out.json:
                out.row({"pid": e["pid"], "comm": e["comm"], "family": e["ep"]["family"],
                         "laddr": laddr, "lport": lport, "raddr": raddr, "rport": rport,
                         "tx_bytes": e["tx_bytes"], "rx_bytes": e["rx_bytes"],
                         "span_ns": e["span_ns"]}, e["ts"])
                return
            out.row({"PID": e["pid"], "COMM": e["comm"], "LADDR": laddr, "LPORT": lport,
                     "RADDR": raddr, "RPORT": rport, "TX_KB": e["tx_bytes"] // 1024,
                     "RX_KB": e["rx_bytes"] // 1024, "MS": f"{e['span_ns'] / 1e6:.2f}"},
                    e["ts"])
        return common.run_events(obj, args, handle, "TCP sessions")
