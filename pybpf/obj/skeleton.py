"""Typed Python skeletons of BPF objects (``python -m pybpf gen skeleton OBJ``).

The counterpart of ``bpftool gen skeleton`` and cilium's bpf2go: ``generate(raw,
filename)`` returns the text of a Python module that embeds the object
(zlib + base64) and defines

- ``<Name>Skeleton``: ``open()`` / ``load()`` / ``attach()`` / ``close()`` and a
  context manager around :class:`pybpf.BPFObject`, with ``.maps.<map>``
  (``pybpf.Map``), ``.progs.<program>`` (``pybpf.Program``), one typed view per
  data section holding variables (``.rodata.target_pid: int``; ``.data``,
  ``.bss``, ``.data.NAME`` -> ``data_NAME``...), and per ring buffer / perf buffer
  map ``ringbuf_<map>(callback)`` / ``perfbuf_<map>(callback)`` delivering records
  as instances of their struct class when the BTF names it
  (:func:`pybpf.obj.records.record_type`);
- a class per struct, union and enum the maps, event records and globals use
  (:mod:`pybpf.btf.pytypes`).

Pure: parsing only, no kernel calls; the same object gives the same text.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import zlib
from typing import List, Optional, Tuple

from .. import uapi
from ..btf.pytypes import PyTypes, Val, doc_text, identifier, layout_format
from ..errors import ObjectError
from .records import anchored_structs, record_type
from .spec import MapSpec, ObjectSpec, data_variables, parse_object

_LINE = 76


def _camel(name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    camel = "".join(w[:1].upper() + w[1:] for w in words) or "Bpf"
    return camel if not camel[0].isdigit() else "Bpf" + camel


def _section_attr(name: str) -> str:
    """.rodata -> rodata, .data.counters -> data_counters."""
    return identifier(name.lstrip(".").replace(".", "_"), ("obj", "maps", "progs"))


def _embed(raw: bytes) -> List[str]:
    text = base64.b64encode(zlib.compress(raw, 9)).decode()
    return [f'    "{text[i:i + _LINE]}"' for i in range(0, len(text), _LINE)]


def _map_type_name(m: MapSpec) -> str:
    return uapi.short_name(uapi.bpf_map_type, m.type, "BPF_MAP_TYPE_", "type#{}")


class _Module:
    """Collects the parts of one skeleton module."""

    def __init__(self, spec: ObjectSpec, filename: str):
        self.spec = spec
        self.filename = filename
        base = _camel(spec.name)
        self.skel = base + "Skeleton"
        self.maps_cls, self.progs_cls = base + "Maps", base + "Programs"
        self.sections = [m for m in spec.maps if m.is_global_data
                         and m.name != ".kconfig"
                         and data_variables(spec.btf, m, spec.elf)]
        self.section_cls = {m.name: base + _camel(m.name) for m in self.sections}
        taken = [self.skel, self.maps_cls, self.progs_cls] + list(self.section_cls.values())
        self.types = PyTypes(spec.btf, taken) if spec.btf is not None else None

    def val(self, type_id: int, hint: str) -> Optional[Val]:
        if self.types is None or not type_id:
            return None
        return self.types.val(type_id, hint)

    # ------------------------------------------------------------------ parts

    def maps_class(self) -> List[str]:
        lines = [f"class {self.maps_cls}:",
                 f'    """The maps of {doc_text(self.spec.name)}, by name (pybpf.Map)."""', "",
                 '    __slots__ = ("_obj",)', "",
                 "    def __init__(self, obj: _pybpf.BPFObject) -> None:",
                 "        self._obj = obj"]
        taken: List[str] = []
        for m in self.spec.maps:
            if m.is_global_data:
                continue
            attr = identifier(m.name, taken)
            taken.append(attr)
            lines += ["", "    @property", f"    def {attr}(self) -> _pybpf.Map:",
                      f'        """{_map_type_name(m)} map {doc_text(repr(m.name))} (max_entries '
                      f'{m.max_entries})."""',
                      f"        return self._obj.maps[{m.name!r}]"]
        return lines

    def progs_class(self) -> List[str]:
        lines = [f"class {self.progs_cls}:",
                 f'    """The programs of {doc_text(self.spec.name)}, by name (pybpf.Program)."""', "",
                 '    __slots__ = ("_obj",)', "",
                 "    def __init__(self, obj: _pybpf.BPFObject) -> None:",
                 "        self._obj = obj"]
        taken: List[str] = []
        for p in self.spec.programs:
            attr = identifier(p.name, taken)
            taken.append(attr)
            lines += ["", "    @property", f"    def {attr}(self) -> _pybpf.Program:",
                      f'        """Program {doc_text(repr(p.name))} (SEC("{doc_text(p.section)}"))."""',
                      f"        return self._obj.programs[{p.name!r}]"]
        return lines

    def section_class(self, m: MapSpec) -> List[str]:
        name = self.section_cls[m.name]
        variables = data_variables(self.spec.btf, m, self.spec.elf)
        lines = [f"class {name}:",
                 f'    """The variables of {doc_text(m.name)}: before load() they edit the initial'
                 f' image, after load() the live map."""', "",
                 '    __slots__ = ("_data",)', ""]
        layouts: List[Tuple[str, str]] = []
        props: List[str] = []
        taken = ["raw"]
        for var, (_, size, type_id) in variables.items():
            attr = identifier(var, taken)
            taken.append(attr)
            val = self.val(type_id, var)
            if val is None:                       # no BTF: the bytes
                props += ["", "    @property", f"    def {attr}(self) -> bytes:",
                          f'        """{doc_text(var)} ({size} bytes, no BTF)."""',
                          f"        return self._data.raw({var!r})",
                          "", f"    @{attr}.setter",
                          f"    def {attr}(self, value: bytes) -> None:",
                          f"        self._data[{var!r}] = value"]
                continue
            fmt = layout_format(val.items, size, f"{m.name} variable {var}")
            layout = f"_layout_{len(layouts)}"
            layouts.append((layout, fmt))
            spelled = doc_text(self.spec.btf.type_name(type_id))  # type: ignore[union-attr]
            props += ["", "    @property", f"    def {attr}(self) -> {val.pytype}:",
                      f'        """{spelled} {doc_text(var)}."""',
                      f"        v = self.{layout}.unpack_from(self._data.raw({var!r}))",
                      f"        value: {val.pytype} = {val.expr('v', '0')}",
                      "        return value"]
            if not val.mutable or val.pytype.startswith("_t.List[") and \
                    "[" not in val.pytype[len("_t.List["):]:
                props += ["", f"    @{attr}.setter",
                          f"    def {attr}(self, value: {val.pytype}) -> None:",
                          f"        self._data[{var!r}] = value"]
        lines += [f"    {layout}: _t.ClassVar[_struct.Struct] = _struct.Struct({fmt!r})"
                  for layout, fmt in layouts]
        lines += ["", "    def __init__(self, data: _pybpf.GlobalData) -> None:",
                  "        self._data = data",
                  "", "    def raw(self, name: str) -> bytes:",
                  '        """The bytes of variable ``name``."""',
                  "        return self._data.raw(name)"]
        return lines + props

    def event_methods(self) -> List[str]:
        lines: List[str] = []
        for m in self.spec.maps:
            if m.type == uapi.BPF_MAP_TYPE_RINGBUF:
                kind = "ringbuf"
            elif m.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
                kind = "perfbuf"
            else:
                continue
            rid = record_type(self.spec, m)
            cls = self.types.record(rid).name if rid is not None and self.types else None
            rtype = cls or "memoryview"
            meth = identifier(f"{kind}_{m.name}")
            decode = f"{cls}.from_buffer(data)" if cls else "data"
            if kind == "ringbuf":
                lines += ["", f"    def {meth}(self, callback: _t.Callable[[{rtype}], None],"
                          " **options: _t.Any) -> _pybpf.RingBuffer:",
                          f'        """A RingBuffer on map {doc_text(repr(m.name))} calling ``callback`` with'
                          f' each record as a {rtype}."""',
                          "", "        def on_record(data: memoryview) -> None:",
                          f"            callback({decode})",
                          f"        return _pybpf.RingBuffer(self.obj.maps[{m.name!r}],"
                          " on_record, **options)"]
            else:
                lines += ["", f"    def {meth}(self, callback: _t.Callable[[int, {rtype}], None],"
                          " **options: _t.Any) -> _pybpf.PerfBuffer:",
                          f'        """A PerfBuffer on map {doc_text(repr(m.name))} calling ``callback(cpu,'
                          f' record)`` with each sample as a {rtype}."""',
                          "", "        def on_sample(cpu: int, data: memoryview) -> None:",
                          f"            callback(cpu, {decode})",
                          f"        return _pybpf.PerfBuffer(self.obj.maps[{m.name!r}],"
                          " on_sample, **options)"]
        return lines

    def skeleton_class(self) -> List[str]:
        spec = self.spec
        lines = [f"class {self.skel}:",
                 f'    """Skeleton of {doc_text(self.filename)}: open() -> configure -> load() ->'
                 ' attach() -> close() (or a with block)."""', "",
                 f"    name: _t.ClassVar[str] = {spec.name!r}",
                 "    object_bytes: _t.ClassVar[bytes] = _OBJECT", "",
                 "    def __init__(self, obj: _pybpf.BPFObject) -> None:",
                 "        self.obj = obj",
                 f"        self.maps = {self.maps_cls}(obj)",
                 f"        self.progs = {self.progs_cls}(obj)"]
        for m in self.sections:
            lines.append(f"        self.{_section_attr(m.name)} = "
                         f"{self.section_cls[m.name]}(obj.sections[{m.name!r}])")
        lines += ["", "    @classmethod",
                  f"    def open(cls, **options: _t.Any) -> {self.skel!r}:",
                  '        """Parse the embedded object (no kernel calls); options go to'
                  ' BPFObject.open()."""',
                  f"        return cls(_pybpf.BPFObject.open(_OBJECT, name={self.filename!r},"
                  " **options))",
                  "", f"    def load(self, log_level: int = 0) -> {self.skel!r}:",
                  '        """Create the maps and load the programs (``log_level``: the'
                  ' verifier\'s)."""',
                  "        self.obj.load(log_level)",
                  "        return self",
                  "", "    def attach(self) -> _t.List[_t.Any]:",
                  '        """Attach every program by its SEC() name; returns the links."""',
                  "        return self.obj.attach()",
                  "", "    def close(self) -> None:",
                  '        """Detach every link and close every fd."""',
                  "        self.obj.close()",
                  "", f"    def __enter__(self) -> {self.skel!r}:",
                  "        return self",
                  "", "    def __exit__(self, *exc: object) -> None:",
                  "        self.close()"]
        return lines + self.event_methods()

    def text(self, raw: bytes) -> str:
        spec = self.spec
        sections = [self.section_class(m) for m in self.sections]
        maps, progs = self.maps_class(), self.progs_class()
        skel = self.skeleton_class()
        if self.types is not None:      # map keys and values, anchored structs too
            for group in anchored_structs(spec):
                for tid in group:
                    self.types.record(tid)
            for m in spec.maps:
                if not m.is_global_data:
                    for tid, what in ((m.btf_key_type_id, "key"), (m.btf_value_type_id,
                                                                  "value")):
                        self.val(tid, f"{m.name}_{what}")
        digest = hashlib.sha256(raw).hexdigest()
        head = [f'"""Skeleton of {doc_text(self.filename)} (object {doc_text(repr(spec.name))}, sha256 {digest[:16]}).',
                "", "Generated by `python -m pybpf gen skeleton`: do not edit.",
                f"Use: ``with {self.skel}.open() as skel: skel.load(); skel.attach()``.",
                '"""', "from __future__ import annotations", "",
                "import base64 as _b64", "import enum as _enum", "import struct as _struct",
                "import typing as _t", "import zlib as _zlib", "", "import pybpf as _pybpf",
                "", "_OBJECT: bytes = _zlib.decompress(_b64.b64decode("]
        head += _embed(raw) + ["))"]
        types = self.types.source() if self.types is not None else ""
        blocks = ["\n".join(head)] + ([types] if types else []) + \
            ["\n".join(b) for b in sections + [maps, progs, skel]]
        return "\n\n\n".join(blocks) + "\n"


def generate(raw: bytes, filename: str) -> str:
    """The skeleton module of the object ``raw`` (named ``filename``) as Python source."""
    spec = parse_object(raw, os.path.basename(filename))
    if not spec.programs and not spec.maps:
        raise ObjectError(f"{filename}: no programs and no maps to make a skeleton of")
    return _Module(spec, os.path.basename(filename)).text(raw)


def module_name(filename: str) -> str:
    """The default skeleton module name: exec.bpf.o -> exec_skel."""
    return identifier(os.path.basename(filename).split(".")[0] + "_skel")

