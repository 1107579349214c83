"""``python -m pybpf tool NAME [options]`` and ``tool --list``: the pybpf tools."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BPFError


def add_parser(subparsers: Any) -> None:
    """Register the ``tool`` command."""
    p = subparsers.add_parser("tool", help="run a tracing tool (execsnoop, opensnoop, ...)",
                              description="run one of pybpf's tracing tools; "
                              "'tool NAME --help' lists its options", add_help=True)
    p.add_argument("--list", action="store_true", help="list the tools")
    p.add_argument("name", nargs="?", help="tool to run")
    p.add_argument("options", nargs=argparse.REMAINDER, help="the tool's options")


def run(args: argparse.Namespace) -> int:
    """List the tools or run one."""
    from .. import tools
    if args.list or not args.name:
        names = tools.available()
        width = max(len(n) for n in names)
        for name in names:
            sys.stdout.write(f"{name.ljust(width)}  {tools.TOOLS[name]}\n")
        return 0 if args.list else 2
    if args.name not in tools.available():
        raise BPFError(f"no tool named {args.name!r} (tool --list shows them)")
    return tools.main(args.name, args.options)
