"""Prometheus text exposition of an object's counters and histograms.

Pure: reads maps through their dict-like interface only.  Every map that
:mod:`pybpf.cli.map_report` would print becomes metrics, unless a config says
otherwise:

- a histogram map (:func:`pybpf.metrics.hist.detect`) -> one Prometheus histogram,
  cumulative ``_bucket{le=...}`` series (``le`` is each slot's highest value),
  ``_sum`` (the recorded ``sum`` member, else the buckets' lower bounds) and
  ``_count``, one series set per key (key fields as labels);
- a counter map -> ``NAME_total`` (integer values) or one ``NAME_FIELD_total`` per
  integer member of a struct value; key fields become labels.

The config (a dict, from JSON or TOML)::

    {"prefix": "pybpf_",            # before every default name
     "only_configured": false,      # true: export only the maps listed below
     "metrics": [{"map": "counts", "name": "syscalls_total", "help": "...",
                  "type": "counter" | "gauge" | "histogram",
                  "value": "count",                 # struct member (counters)
                  "labels": {"nr": "key", "comm": "comm"},  # label <- key/value field
                  "scale": 1e-6}]}                  # multiply values and bounds
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from . import hist
from ..btf.strtab import shown
from ..errors import BPFError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BAD_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_TYPES = ("counter", "gauge", "histogram")


class ConfigError(BPFError):
    """A malformed exporter config (the message names the entry at fault)."""


def metric_name(text: str) -> str:
    """A valid Prometheus metric name from arbitrary text."""
    name = _BAD_NAME.sub("_", text)
    return name if name and not name[0].isdigit() else "_" + name


def help_text(text: str) -> str:
    """A HELP line's text: backslash and line feed escaped, as the format asks (a
    map name holding a line feed must not start a line of its own)."""
    return shown(text).replace("\\", "\\\\").replace("\n", "\\n")


def label_value(value: Any) -> str:
    """A label value as exposition text: C strings to their NUL, escaped."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).split(b"\0", 1)[0].decode(errors="replace")
    return help_text(str(value)).replace("\"", "\\\"")


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def load_config(path: str) -> Dict[str, Any]:
    """Read a JSON or (Python 3.11+) TOML config file, checked."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"config {path}: {e.strerror}") from None
    if path.endswith(".toml"):
        try:
            import tomllib
        except ImportError:
            raise ConfigError(f"config {path}: TOML needs Python 3.11+ (tomllib); "
                              "use JSON") from None
        try:
            config = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config {path}: {e}") from None
    else:
        try:
            config = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"config {path}: {e}") from None
    return check_config(config, path)


def check_config(config: Any, where: str = "config") -> Dict[str, Any]:
    """Validate a config dict; ConfigError names the bad entry."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected an object at the top level")
    unknown = set(config) - {"prefix", "only_configured", "metrics"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    metrics = config.get("metrics", [])
    if not isinstance(metrics, list):
        raise ConfigError(f"{where}: 'metrics' must be a list")
    for i, m in enumerate(metrics):
        at = f"{where}: metrics[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("map"), str):
            raise ConfigError(f"{at}: needs a 'map' name")
        bad = set(m) - {"map", "name", "help", "type", "value", "labels", "scale"}
        if bad:
            raise ConfigError(f"{at}: unknown key(s) {', '.join(sorted(bad))}")
        if "type" in m and m["type"] not in _TYPES:
            raise ConfigError(f"{at}: type must be one of {', '.join(_TYPES)}")
        if "name" in m and (not isinstance(m["name"], str) or metric_name(m["name"]) != m["name"]):
            raise ConfigError(f"{at}: {m.get('name')!r} is not a valid metric name")
        labels = m.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ConfigError(f"{at}: 'labels' maps label names to key/value field names")
        for label in labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) or label == "le":
                raise ConfigError(f"{at}: {label!r} is not a usable label name")
        if "scale" in m and not isinstance(m["scale"], (int, float)):
            raise ConfigError(f"{at}: 'scale' must be a number")
    return config


def _fields(value: Any, name: str) -> Dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {name: value}


def _labels(key: Any, value: Any, spec: Optional[Dict[str, str]]) -> List[Tuple[str, Any]]:
    """Label pairs: configured ones from key/value fields, else every key field
    and the value's string members (e.g. a comm)."""
    fields = {**_fields(value, "value"), **_fields(key, "key")}
    if spec is None:
        keys = _fields(key, "key")
        return [(metric_name(k), v) for k, v in fields.items()
                if (k in keys and isinstance(v, (int, bytes))) or isinstance(v, bytes)]
    out = []
    for label, field in spec.items():
        if field not in fields:
            raise ConfigError(f"label {label!r}: no field {field!r} (there are: "
                              f"{', '.join(fields)})")
        out.append((label, fields[field]))
    return out


def _series(name: str, labels: Sequence[Tuple[str, Any]], value: Any) -> str:
    inner = ",".join(f'{k}="{label_value(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"


def _scaled(value: Any, scale: Optional[float]) -> Any:
    return value if scale is None else value * scale


class _Family(NamedTuple):
    """One metric family: its name, type, HELP text and, for a counter or gauge,
    the value field it reads ("" for a value that is itself the number)."""
    name: str
    kind: str
    help: str
    field: str


def _series_names(family: _Family) -> Tuple[str, ...]:
    """The names a family's samples and TYPE line take: a histogram's too."""
    if family.kind == "histogram":
        return tuple(family.name + s for s in ("", "_bucket", "_sum", "_count"))
    return (family.name,)


class Exporter:
    """Renders the exposition text of a set of maps under a config.

    What each map becomes (histogram or counters, the metric names) is settled at
    construction; two maps or fields that would give one metric name are refused
    there, since the exposition would be invalid."""

    def __init__(self, maps: Iterable[Any], config: Optional[Dict[str, Any]] = None):
        self.config = check_config(config or {})
        prefix = self.config.get("prefix", "pybpf_")
        specs = {m["map"]: m for m in self.config.get("metrics", [])}
        self.maps: List[Tuple[Any, Dict[str, Any], Optional[hist.Layout], List[_Family]]] = []
        owner: Dict[str, str] = {}
        for m in maps:
            spec = specs.pop(m.name, None)
            if spec is None and self.config.get("only_configured"):
                continue
            spec = dict(spec or {})
            spec.setdefault("name", metric_name(prefix + m.name))
            layout = hist.map_layout(m)
            families = self._families(m, spec, layout)
            for f in families:
                for series in _series_names(f):
                    if series in owner:
                        raise ConfigError(
                            f"maps {owner[series]!r} and {m.name!r} both give the metric "
                            f"{series!r}: give one of them a 'name' in the config")
                    owner[series] = m.name
            self.maps.append((m, spec, layout, families))
        if specs:
            raise ConfigError(f"config names map(s) the object lacks or that hold no "
                              f"counters/histograms: {', '.join(sorted(specs))}")

    @staticmethod
    def _families(m: Any, spec: Dict[str, Any], layout: Optional[hist.Layout]) -> List[_Family]:
        kind = spec.get("type") or ("histogram" if layout is not None else "counter")
        if kind == "histogram":
            if layout is None:
                raise ConfigError(f"map {m.name!r} is configured as a histogram but "
                                  "holds none (see pybpf.metrics.hist)")
            return [_Family(spec["name"], kind, help_text(spec.get(
                "help", f"{layout.kind} histogram of BPF map {m.name}")), "")]
        suffix = "_total" if kind == "counter" else ""
        fields = [spec["value"]] if "value" in spec else \
            hist.value_fields(m.btf, m.spec.btf_value_type_id)
        out = []
        for field in fields:
            name = spec["name"] if "value" in spec or not field \
                else f"{spec['name']}_{metric_name(field)}"
            if suffix and not name.endswith(suffix):
                name += suffix
            out.append(_Family(name, kind, help_text(spec.get(
                "help", f"BPF map {m.name}" + (f" field {field}" if field else ""))), field))
        return out

    def render(self) -> str:
        """The whole exposition text, read from the maps now."""
        out: List[str] = []
        for m, spec, layout, families in self.maps:
            if layout is not None and families[0].kind == "histogram":
                self._histogram(out, m, layout, spec, families[0])
            else:
                self._counter(out, m, spec, families)
        return "\n".join(out) + "\n" if out else ""

    def _head(self, out: List[str], family: _Family) -> None:
        out.append(f"# HELP {family.name} {family.help}")
        out.append(f"# TYPE {family.name} {family.kind}")

    def _histogram(self, out: List[str], m: Any, layout: hist.Layout,
                   spec: Dict[str, Any], family: _Family) -> None:
        name, scale = family.name, spec.get("scale")
        self._head(out, family)
        for h in hist.histograms(m.items(), layout):
            labels = _labels(h.label, {}, spec["labels"]) if "labels" in spec \
                else [(metric_name(k), v) for k, v in h.label.items()]
            running = 0
            for low, high, count in h.buckets():
                running += count
                out.append(_series(f"{name}_bucket",
                                   labels + [("le", _number(_scaled(high, scale)))], running))
            out.append(_series(f"{name}_bucket", labels + [("le", "+Inf")], running))
            out.append(_series(f"{name}_sum", labels, _scaled(h.estimated_sum(), scale)))
            out.append(_series(f"{name}_count", labels, running))

    def _counter(self, out: List[str], m: Any, spec: Dict[str, Any],
                 families: List[_Family]) -> None:
        """One metric per numeric value field (from BTF, so names stay the same on
        every scrape); an integer array field gives one series per ``index``."""
        rows = hist.counters(m.items())
        scale = spec.get("scale")
        for family in families:
            field, name = family.field, family.name
            self._head(out, family)
            for key, value in rows:
                if field and (not isinstance(value, dict) or field not in value):
                    raise ConfigError(f"map {m.name!r}: the value has no field {field!r}")
                v = value[field] if field else value
                labels = _labels(key, value if isinstance(value, dict) else {},
                                 spec.get("labels"))
                if isinstance(v, list) and all(isinstance(x, int) for x in v):
                    out.extend(_series(name, labels + [("index", i)], _scaled(x, scale))
                               for i, x in enumerate(v))
                elif isinstance(v, int):
                    out.append(_series(name, labels, _scaled(v, scale)))
                else:
                    raise ConfigError(f"map {m.name!r}: value field {field!r} is not an "
                                      "integer")
