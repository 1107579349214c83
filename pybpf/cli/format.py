"""What the bpftool-like commands (prog, map, link, btf, feature) share: object
selectors (``id N``, ``name X``, ``tag T``, ``pinned PATH``), byte arguments
(``key 0 0 0 1``, ``key hex 00 00 00 01``, ``key json 1``), JSON output, and the
spelling of bytes and values in text and JSON as bpftool has them."""
from __future__ import annotations

import argparse
import errno as _errno
import json
import time
from typing import Any, Callable, Dict, Iterable, List, Sequence, TextIO, Tuple

from ..kernel import syscall
from .. import uapi
from ..btf.codec import jsonable as jsonable
from ..errors import BPFError

SELECTOR_HELP = "id N | name NAME | pinned PATH (or a bare id)"


def add_json(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag (``-j`` as bpftool spells it) and ``--pretty`` (``-p``)."""
    parser.add_argument("-j", "--json", action="store_true", help="JSON output")
    parser.add_argument("-p", "--pretty", action="store_true", help="indented JSON output")


def write_json(args: argparse.Namespace, value: Any, out: TextIO) -> None:
    """One JSON document (indented with ``--pretty``) and a newline."""
    out.write(json.dumps(value, indent=4 if getattr(args, "pretty", False) else None))
    out.write("\n")


def wants_json(args: argparse.Namespace) -> bool:
    """``--json`` or ``--pretty`` given."""
    return bool(getattr(args, "json", False) or getattr(args, "pretty", False))


def value_text(value: Any) -> str:
    """One-line spelling of a decoded value (JSON, so nested structs stay readable)."""
    return json.dumps(jsonable(value), separators=(", ", ": "))


def hex_json(data: bytes) -> List[str]:
    """bpftool's JSON spelling of raw bytes: ["0x00", "0x2a"]."""
    return [f"0x{b:02x}" for b in data]


def hex_text(data: bytes) -> str:
    """bpftool's text spelling of raw bytes: "00 2a"."""
    return " ".join(f"{b:02x}" for b in data)


def when(epoch: float) -> str:
    """bpftool's load time spelling: 2026-12-02T02:50:12+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(epoch))


# ------------------------------------------------------------------ selectors

class Selector:
    """Which object(s) a command is about: by id, name, tag or pinned path."""

    def __init__(self, kind: str, value: str):
        self.kind, self.value = kind, value

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


def take_selector(tokens: List[str], kinds: Sequence[str] = ("id", "name", "pinned")
                  ) -> Selector:
    """Pop a selector off the front of ``tokens`` (a bare number means ``id``)."""
    if not tokens:
        raise BPFError(f"missing object: {SELECTOR_HELP}", _errno.EINVAL)
    head = tokens.pop(0)
    if head.isdigit():
        return Selector("id", head)
    if head not in kinds:
        raise BPFError(f"expected one of {', '.join(kinds)} (or an id), got {head!r}",
                       _errno.EINVAL)
    if not tokens:
        raise BPFError(f"{head}: missing value", _errno.EINVAL)
    value = tokens.pop(0)
    if head == "id" and not value.isdigit():
        raise BPFError(f"id: {value!r} is not a number", _errno.EINVAL)
    return Selector(head, value)


def select_ids(sel: Selector, want: str, infos: Callable[[], Iterable[Any]],
               describe: Callable[[int], Any], fields: Dict[str, Callable[[Any], str]]
               ) -> List[Any]:
    """The descriptions of the objects ``sel`` names (several for a shared name)."""
    if sel.kind == "pinned":
        from ..loaded import open_pinned
        with open_pinned(sel.value, want) as fd:
            return [describe(fd.fd)]
    if sel.kind == "id":
        cmd = {"map": uapi.BPF_MAP_GET_FD_BY_ID, "prog": uapi.BPF_PROG_GET_FD_BY_ID,
               "link": uapi.BPF_LINK_GET_FD_BY_ID, "btf": uapi.BPF_BTF_GET_FD_BY_ID}[want]
        try:
            with syscall.fd_by_id(cmd, int(sel.value)) as fd:
                return [describe(fd.fd)]
        except BPFError as e:
            if e.errno == _errno.ENOENT:
                raise BPFError(f"no {want} with id {sel.value}", _errno.ENOENT) from None
            raise
    get = fields[sel.kind]
    found = [info for info in infos() if get(info) == sel.value]
    if not found:
        raise BPFError(f"no {want} with {sel}", _errno.ENOENT)
    return found


# ------------------------------------------------------------------ byte arguments

def take_bytes(tokens: List[str], stop: Iterable[str] = ()) -> Tuple[str, List[str]]:
    """Pop the value tokens after ``key``/``value``: ("hex"|"json"|"", tokens)."""
    stops = set(stop)
    mode = ""
    if tokens and tokens[0] in ("hex", "json"):
        mode = tokens.pop(0)
    taken: List[str] = []
    while tokens and tokens[0] not in stops:
        taken.append(tokens.pop(0))
        if mode == "json":
            break
    if not taken:
        raise BPFError("missing bytes after key/value", _errno.EINVAL)
    return mode, taken


def parse_bytes(mode: str, tokens: Sequence[str], size: int, what: str) -> bytes:
    """bpftool's byte list (each token a byte; ``hex`` mode: base 16, or one run of
    hex digits) to exactly ``size`` bytes."""
    if mode == "hex" and len(tokens) == 1 and len(tokens[0]) == 2 * size > 2:
        try:
            return bytes.fromhex(tokens[0])
        except ValueError:
            raise BPFError(f"{what}: {tokens[0]!r} is not hex", _errno.EINVAL) from None
    out = bytearray()
    for tok in tokens:
        try:
            b = int(tok, 16) if mode == "hex" else int(tok, 0)
        except ValueError:
            raise BPFError(f"{what}: {tok!r} is not a byte", _errno.EINVAL) from None
        if not 0 <= b <= 255:
            raise BPFError(f"{what}: {tok!r} does not fit a byte", _errno.EINVAL)
        out.append(b)
    if len(out) != size:
        raise BPFError(f"{what}: expected {size} bytes, got {len(out)}", _errno.EINVAL)
    return bytes(out)


def parse_json_value(token: str, what: str) -> Any:
    """A ``json`` key or value argument, parsed."""
    try:
        return json.loads(token)
    except ValueError:
        raise BPFError(f"{what}: {token!r} is not JSON", _errno.EINVAL) from None

