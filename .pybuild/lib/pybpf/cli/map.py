"""python -m pybpf map: list / show maps; dump, lookup, update, delete entries;
pin a map.  Maps are named as bpftool names them (``id N``, ``name X``,
``pinned PATH``); keys and values are bytes as bpftool takes them
(``key 1 0 0 0``, ``key hex 01 00 00 00``) or values decoded through the
map's BTF (``key json 1``, ``value json '{"x": 1, "y": 2}'``)."""
from __future__ import annotations

import argparse
import errno as _errno
import os
import struct
import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple, Union

from .. import loaded, uapi
from ..kernel import syscall
from ..btf import types as T
from .format import (SELECTOR_HELP, add_json, hex_json, hex_text, jsonable, parse_bytes,
                    parse_json_value, select_ids, take_bytes, take_selector, value_text,
                    wants_json, write_json)
from ..errors import BPFError
from ..maps import FD_VALUE_TYPES, PER_CPU_TYPES, Map
from ..kernel.sysinfo import possible_cpus

_FIELDS = {"name": lambda m: m.name}
_UPDATE_FLAGS = {"any": uapi.BPF_ANY, "noexist": uapi.BPF_NOEXIST, "exist": uapi.BPF_EXIST}
_NO_KEYS = frozenset({uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF,
                      uapi.BPF_MAP_TYPE_QUEUE, uapi.BPF_MAP_TYPE_STACK,
                      uapi.BPF_MAP_TYPE_BLOOM_FILTER, uapi.BPF_MAP_TYPE_STRUCT_OPS,
                      uapi.BPF_MAP_TYPE_ARENA})


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``map list | show | dump | lookup | update | delete | pin``."""
    p = subparsers.add_parser("map", help="BPF maps in the kernel (as bpftool map)")
    sub = p.add_subparsers(dest="verb", required=True)
    usage = {
        "list": "[MAP]", "show": "[MAP]", "dump": "MAP", "lookup": "MAP key BYTES",
        "update": "MAP key BYTES value BYTES [any|noexist|exist]",
        "delete": "MAP key BYTES", "pin": "MAP PATH"}
    for verb, shape in usage.items():
        q = sub.add_parser(verb, help=f"map {verb} {shape}; MAP: {SELECTOR_HELP}; BYTES: "
                                      "b0 b1 ... | hex 00 01 ... | json VALUE")
        q.add_argument("target", nargs="*" if verb in ("list", "show") else "+",
                       help=shape)
        add_json(q)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Run one ``map`` verb."""
    out = out if out is not None else sys.stdout
    tokens = list(args.target)
    if args.verb in ("list", "show"):
        infos = _select(tokens) if tokens else list(loaded.maps())
        if wants_json(args):
            write_json(args, [map_json(m) for m in infos], out)
        else:
            out.write("".join(map_text(m) for m in infos))
        return 0
    m = open_selected(tokens)
    try:
        return _VERBS[args.verb](args, m, tokens, out)
    finally:
        m.close()


def _select(tokens: List[str]) -> List[loaded.LoadedMap]:
    return select_ids(take_selector(tokens), "map", loaded.maps, loaded.map_info, _FIELDS)


def open_selected(tokens: List[str]) -> Map:
    """The one map the selector at the front of ``tokens`` names, opened."""
    sel = take_selector(tokens)
    if sel.kind == "pinned":
        return Map.from_pinned(sel.value)
    found = select_ids(sel, "map", loaded.maps, loaded.map_info, _FIELDS)
    if len(found) > 1:
        raise BPFError(f"{len(found)} maps are named {sel.value!r} (ids "
                       f"{', '.join(str(m.id) for m in found)}): pick one with id N",
                       _errno.EINVAL)
    return Map.from_id(found[0].id)


def map_json(m: loaded.LoadedMap) -> Dict[str, Any]:
    """One map as bpftool's ``map list -j`` has it."""
    row: Dict[str, Any] = {"id": m.id, "type": m.type_name, "name": m.name, "flags": m.flags,
                           "bytes_key": m.key_size, "bytes_value": m.value_size,
                           "max_entries": m.max_entries, "bytes_memlock": m.memlock,
                           "frozen": int(m.frozen)}
    if m.btf_id:
        row["btf_id"] = m.btf_id
    return row


def map_text(m: loaded.LoadedMap) -> str:
    """One map as bpftool's ``map list`` prints it."""
    head = f"{m.id}: {m.type_name}  name {m.name}  flags 0x{m.flags:x}"
    body = (f"\tkey {m.key_size}B  value {m.value_size}B  max_entries {m.max_entries}"
            f"  memlock {m.memlock}B")
    if m.btf_id:
        body += f"\n\tbtf_id {m.btf_id}"
    if m.frozen:
        body += "\n\tfrozen"
    return f"{head}\n{body}\n"


# ------------------------------------------------------------------ entries

class _Entries:
    """Raw access to one map's entries, with its BTF codecs for decoding."""

    def __init__(self, m: Map, info: loaded.LoadedMap):
        self.map = m
        self.info = info
        self.per_cpu = info.type in PER_CPU_TYPES
        self.ncpu = len(possible_cpus()) if self.per_cpu else 1
        self.stride = (info.value_size + 7) & ~7 if self.per_cpu else info.value_size
        self.key_codec = self._codec(info.btf_key_type_id)
        self.value_codec = self._codec(info.btf_value_type_id)

    def _codec(self, type_id: int) -> Any:
        if self.map.btf is None or not type_id:
            return None
        from ..btf import codec
        return codec.compile(self.map.btf, type_id)

    def values(self, raw: bytes) -> List[bytes]:
        """A lookup's bytes, one value per CPU for per-CPU maps."""
        if not self.per_cpu:
            return [raw]
        size = self.info.value_size
        return [raw[i * self.stride:i * self.stride + size] for i in range(self.ncpu)]

    def lookup(self, key: bytes) -> Optional[bytes]:
        """The raw value(s) at ``key``; None when absent."""
        return syscall.map_lookup(self.map.fd, key, self.stride * self.ncpu)

    def decode_value(self, raw: bytes) -> Any:
        """One value decoded (a map id / prog id for fd maps; a DATASEC nested as
        bpftool nests it); None without BTF."""
        if self.info.type in FD_VALUE_TYPES:
            return struct.unpack("<I", raw[:4])[0]
        if self.value_codec is None:
            return None
        value = self.value_codec.decode(raw)
        btf = self.map.btf
        if btf is not None and isinstance(btf[btf.resolve(self.info.btf_value_type_id)],
                                          T.Datasec):
            sec = btf[btf.resolve(self.info.btf_value_type_id)]
            return {sec.name: [{k: v} for k, v in value.items()]}   # as bpftool nests it
        return value

    def row_json(self, key: bytes, raw: bytes) -> Dict[str, Any]:
        """One entry as bpftool's ``map dump -j`` has it."""
        row: Dict[str, Any] = {"key": hex_json(key)}
        formatted: Dict[str, Any] = {}
        if self.key_codec is not None and self.info.btf_key_type_id:
            formatted["key"] = jsonable(self.key_codec.decode(key))
        vals = self.values(raw)
        if self.per_cpu:
            row["values"] = [{"cpu": i, "value": hex_json(v)} for i, v in enumerate(vals)]
            if self.value_codec is not None:
                formatted["values"] = [{"cpu": i, "value": jsonable(self.decode_value(v))}
                                       for i, v in enumerate(vals)]
        else:
            row["value"] = hex_json(raw)
            decoded = self.decode_value(raw)
            if decoded is not None:
                formatted["value"] = jsonable(decoded)
        if formatted and self.info.type not in FD_VALUE_TYPES:   # ids, not values
            row["formatted"] = formatted
        return row

    def key_text(self, key: bytes) -> str:
        """``key: ...`` decoded where BTF allows, bytes otherwise."""
        if self.key_codec is not None:
            return f"key: {value_text(self.key_codec.decode(key))}"
        return f"key: {hex_text(key)}"

    def row_text(self, key: bytes, raw: bytes) -> str:
        """One entry as text: decoded where BTF allows, bytes otherwise."""
        head = self.key_text(key)
        vals = self.values(raw)
        parts = []
        for cpu, v in enumerate(vals):
            decoded = self.decode_value(v)
            text = value_text(decoded) if decoded is not None else hex_text(v)
            parts.append(f"value (CPU {cpu:02d}): {text}" if self.per_cpu else
                         f"value: {text}")
        sep = "\n" if self.per_cpu else "  "
        return head + sep + sep.join(parts)

    def parse(self, tokens: List[str], what: str, stop: Tuple[str, ...]) -> bytes:
        """Bytes of a key or value given on the command line."""
        mode, taken = take_bytes(tokens, stop)
        is_key = what == "key"
        size = self.info.key_size if is_key else self.info.value_size
        if mode != "json":
            return parse_bytes(mode, taken, size, what)
        value = parse_json_value(taken[0], what)
        codec = self.key_codec if is_key else self.value_codec
        if codec is None:
            if isinstance(value, int) and size in (1, 2, 4, 8):
                return value.to_bytes(size, "little", signed=value < 0)
            raise BPFError(f"{what}: the map has no BTF for {what}s: give bytes",
                           _errno.EINVAL)
        return bytes(codec.encode(value))

    def keys(self) -> List[bytes]:
        """Every key, raw, in the kernel's order."""
        return list(self.map.raw_keys())


def _entries(m: Map) -> _Entries:
    info = loaded.map_info(m.fd)
    if info.type in _NO_KEYS:
        raise BPFError(f"map {info.id} ({info.name}) is a {info.type_name}: it has no "
                       "keys to dump or look up", _errno.EOPNOTSUPP)
    return _Entries(m, info)


def _dump(args: argparse.Namespace, m: Map, tokens: List[str], out: TextIO) -> int:
    """Every entry; one the kernel will not show (a perf event array's) is an
    ``error`` row, as bpftool has it."""
    ent = _entries(m)
    rows: List[Tuple[bytes, Union[bytes, str]]] = []
    for key in ent.keys():
        try:
            raw = ent.lookup(key)
        except BPFError as e:
            rows.append((key, os.strerror(e.errno) if e.errno else str(e)))
            continue
        if raw is not None:             # deleted while we walked
            rows.append((key, raw))
    found = sum(1 for _, v in rows if isinstance(v, bytes))
    if wants_json(args):
        write_json(args, [ent.row_json(k, v) if isinstance(v, bytes) else
                          {"key": hex_json(k), "value": {"error": v}} for k, v in rows], out)
    else:
        out.write("".join((ent.row_text(k, v) if isinstance(v, bytes) else
                           f"{ent.key_text(k)}  value: <error: {v}>") + "\n"
                          for k, v in rows))
        out.write(f"Found {found} element{'s' if found != 1 else ''}\n")
    return 0


def _expect(tokens: List[str], word: str) -> None:
    if not tokens or tokens[0] != word:
        raise BPFError(f"expected '{word}', got {tokens[0]!r}" if tokens else
                       f"missing '{word}'", _errno.EINVAL)
    tokens.pop(0)


def _done(tokens: List[str]) -> None:
    if tokens:
        raise BPFError(f"unexpected arguments: {' '.join(tokens)}", _errno.EINVAL)


def _lookup(args: argparse.Namespace, m: Map, tokens: List[str], out: TextIO) -> int:
    ent = _entries(m)
    _expect(tokens, "key")
    key = ent.parse(tokens, "key", ())
    _done(tokens)
    raw = ent.lookup(key)
    if raw is None:
        raise BPFError(f"key {hex_text(key)} not found in map {ent.info.id}", _errno.ENOENT)
    if wants_json(args):
        write_json(args, ent.row_json(key, raw), out)
    else:
        out.write(ent.row_text(key, raw) + "\n")
    return 0


def _update(args: argparse.Namespace, m: Map, tokens: List[str], out: TextIO) -> int:
    ent = _entries(m)
    _expect(tokens, "key")
    key = ent.parse(tokens, "key", ("value",))
    _expect(tokens, "value")
    value = ent.parse(tokens, "value", tuple(_UPDATE_FLAGS))
    flags = _UPDATE_FLAGS[tokens.pop(0)] if tokens and tokens[0] in _UPDATE_FLAGS else 0
    _done(tokens)
    if ent.per_cpu:     # one value given: the same on every CPU, as bpftool does
        value = b"".join(value.ljust(ent.stride, b"\0") for _ in range(ent.ncpu))
    syscall.map_update(m.fd, key, value, flags)
    return 0


def _delete(args: argparse.Namespace, m: Map, tokens: List[str], out: TextIO) -> int:
    ent = _entries(m)
    _expect(tokens, "key")
    key = ent.parse(tokens, "key", ())
    _done(tokens)
    if not syscall.map_delete(m.fd, key):
        raise BPFError(f"key {hex_text(key)} not found in map {ent.info.id}", _errno.ENOENT)
    return 0


def _pin(args: argparse.Namespace, m: Map, tokens: List[str], out: TextIO) -> int:
    if len(tokens) != 1:
        raise BPFError("map pin MAP PATH: one path expected", _errno.EINVAL)
    m.pin(tokens[0])
    return 0


_VERBS = {"dump": _dump, "lookup": _lookup, "update": _update, "delete": _delete, "pin": _pin}
