"""``python -m pybpf export OBJ|TOOL --listen HOST:PORT``: serve an object's counters
and histograms as Prometheus metrics (standard library HTTP server)."""
from __future__ import annotations

import argparse
import http.server
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, Optional, Tuple

from ..errors import BPFError


def add_parser(subparsers: Any) -> None:
    """Register the ``export`` command."""
    p = subparsers.add_parser("export", help="serve an object's counters and histograms "
                              "as Prometheus metrics")
    p.add_argument("object", help="a BPF object file, or a pybpf tool's name")
    p.add_argument("--listen", default="127.0.0.1:9435", metavar="HOST:PORT",
                   help="address to serve /metrics on (default 127.0.0.1:9435; port 0: any)")
    p.add_argument("--config", metavar="FILE",
                   help="metric names and labels (JSON, or TOML with Python 3.11+)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="set a global (const volatile) variable before load")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after SECONDS (default: Ctrl-C / SIGTERM)")


def parse_listen(text: str) -> Tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise BPFError(f"--listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def object_source(name: str) -> Tuple[str, Optional[Dict[str, Any]]]:
    """A file path as given, or the shipped object of the pybpf tool ``name`` with
    the tool's default export config (its ``EXPORT``)."""
    if os.path.exists(name):
        return name, None
    from .. import tools
    if name in tools.available():
        import importlib
        from ..tools.common import object_path
        module = importlib.import_module(f"{tools.__name__}.{name}")
        return object_path(name), getattr(module, "EXPORT", None)
    raise BPFError(f"{name}: no such file, and not a pybpf tool (tool --list)")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    render: Any = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        """/metrics (and /): the exposition text, read from the maps now."""
        from ..metrics.exporter import CONTENT_TYPE
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served")
            return
        try:
            body = self.server.render().encode()
        except BPFError as e:       # the reason in the body: a status line is Latin-1
            self.send_error(500, "the maps could not be read", str(e))
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per scrape."""


def run(args: argparse.Namespace) -> int:
    """Load, attach, serve until stopped, detach."""
    from .main import _apply_set
    from ..metrics.exporter import Exporter, load_config
    from .map_report import reported_maps
    from ..object import BPFObject
    host, port = parse_listen(args.listen)
    source, tool_config = object_source(args.object)
    config = load_config(args.config) if args.config else tool_config
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with BPFObject.open(source) as obj:
        for assignment in args.set or []:
            _apply_set(obj, assignment)
        obj.load()
        obj.attach()
        exporter = Exporter(reported_maps(obj), config)
        lock = threading.Lock()

        def render() -> str:
            with lock:
                return exporter.render()
        try:
            server = _Server((host, port), _Handler)
        except OSError as e:
            raise BPFError(f"--listen {args.listen}: {e.strerror}", e.errno) from None
        server.render = render
        thread = threading.Thread(target=server.serve_forever, name="pybpf-export",
                                  daemon=True)
        thread.start()
        try:
            bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
            print(f"pybpf: serving {len(exporter.maps)} map(s) of {obj.name} on "
                  f"http://{bound_host}:{bound_port}/metrics", file=sys.stderr, flush=True)
            deadline: Optional[float] = time.monotonic() + args.duration \
                if args.duration else None
            while not stop.wait(0.2):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    return 0
