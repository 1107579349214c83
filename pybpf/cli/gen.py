"""python -m pybpf gen skeleton OBJ [-o FILE]: a typed Python module for OBJ."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from . import write_output


def add_parser(subparsers: Any) -> None:
    """Register ``gen skeleton``."""
    gen = subparsers.add_parser("gen", help="generate code from an object")
    kinds = gen.add_subparsers(dest="gen_kind", required=True)
    skel = kinds.add_parser("skeleton", help="a typed Python module embedding the object "
                                             "(like bpftool gen skeleton)")
    skel.add_argument("object", help="the BPF object file (clang -g -target bpf)")
    skel.add_argument("-o", "--output", metavar="FILE",
                      help="write here ('-' for stdout; default: NAME_skel.py in the "
                           "current directory)")


def run(args: argparse.Namespace) -> int:
    """Write the skeleton of ``args.object``."""
    from ..obj.elf import MAX_OBJECT_SIZE, read_regular_file
    from ..obj.skeleton import generate, module_name
    raw = read_regular_file(args.object, MAX_OBJECT_SIZE)
    text = generate(raw, args.object)
    out = args.output or module_name(args.object) + ".py"
    if out == "-":
        sys.stdout.write(text)
        return 0
    write_output(out, text)
    print(f"pybpf: wrote {out}", file=sys.stderr)
    return 0
