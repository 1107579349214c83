"""pybpf/uapi.py against the installed kernel headers: every name both define has the
same value (the headers are older than the running kernel, so uapi.py may hold more),
and every constant is an explicit module-level definition."""
from __future__ import annotations

import ast
import pathlib
import re
from typing import Dict

import pytest

from pybpf import uapi

HEADERS = [pathlib.Path("/usr/include/linux") / name
           for name in ("bpf.h", "btf.h", "perf_event.h")]
_ENUM = re.compile(r"\benum\s+(\w*)\s*\{(.*?)\}\s*;", re.S)
_DEFINE = re.compile(r"^#define\s+([A-Z][A-Z0-9_]+)\s+(.+?)\s*$", re.M)


def _c_value(expr: str, known: Dict[str, int]) -> int:
    expr = re.sub(r"/\*.*?\*/", "", expr)
    expr = re.sub(r"(?<=[0-9a-fA-F])(?:ULL|UL|U|LL|L)\b", "", expr).strip()
    expr = re.sub(r"\(\s*(?:__u64|__u32|unsigned\s+int|int)\s*\)", "", expr)
    if not re.fullmatch(r"[\w\s()<>|&~+\-*]+", expr):
        raise ValueError(expr)
    return int(eval(expr, {"__builtins__": {}}, dict(known)))


def header_constants() -> Dict[str, int]:
    """NAME -> value of every enum member and numeric #define of the headers."""
    out: Dict[str, int] = {}
    for path in HEADERS:
        text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
        for _, body in _ENUM.findall(text):
            nxt = 0
            for item in body.split(","):
                item = re.sub(r"#.*", "", item).strip()
                if not item:
                    continue
                name, _, expr = item.partition("=")
                name = name.strip()
                if not re.fullmatch(r"\w+", name):
                    continue
                try:
                    value = _c_value(expr, out) if expr.strip() else nxt
                except (ValueError, SyntaxError, NameError, TypeError):
                    continue
                out[name] = value
                nxt = value + 1
        mapper = re.search(r"#define __BPF_FUNC_MAPPER\(FN\)(.*?)\n\s*\n", text, re.S)
        if mapper:            # enum bpf_func_id: FN(name) or FN(name, number), in order
            for number, (func, given) in enumerate(
                    re.findall(r"\bFN\((\w+)(?:,\s*(\d+))?", mapper.group(1))):
                out[f"BPF_FUNC_{func}"] = int(given or number)
        for name, expr in _DEFINE.findall(text):
            try:
                out.setdefault(name, _c_value(expr, out))
            except (ValueError, SyntaxError, NameError, TypeError):
                pass
    return out


@pytest.mark.skipif(not HEADERS[0].exists(), reason="linux uapi headers not installed")
def test_values_match_the_installed_headers():
    headers = header_constants()
    ours = {k: v for k, v in vars(uapi).items()
            if k.startswith(("BPF_", "BTF_", "PERF_")) and isinstance(v, int)}
    common = sorted(set(headers) & set(ours))
    assert len(common) > 400, f"only {len(common)} names in common: header parsing broke?"
    wrong = [f"{k}: uapi.py {int(ours[k])}, header {headers[k]}" for k in common
             if int(ours[k]) != headers[k]]
    assert not wrong, "\n".join(wrong)


def test_no_generated_names():
    """Every constant is a definition tools can see: no globals()/setattr tricks."""
    tree = ast.parse(pathlib.Path(uapi.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Call) \
                and getattr(node.func.value.func, "id", "") == "globals" \
                and node.func.attr in ("update", "__setitem__", "setdefault"):
            raise AssertionError(f"uapi.py:{node.lineno} defines names through globals()")
    enums = [cls for cls in vars(uapi).values()
             if isinstance(cls, type) and issubclass(cls, uapi.CEnum) and cls is not uapi.CEnum]
    assert len(enums) == 9
    members = {name for cls in enums for name in uapi.enum_members(cls)}
    defined = {t.id for node in tree.body if isinstance(node, ast.Assign)
               for t in node.targets if isinstance(t, ast.Name)}
    defined |= {e.id for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Tuple) for e in t.elts
                if isinstance(e, ast.Name)}
    assert members - defined == set(), sorted(members - defined)[:10]


def test_enum_names_back():
    """enum_name/short_name give names as IntEnum did: the first of aliases, ValueError
    (or the ``unknown`` text) for a value that is no member."""
    assert uapi.enum_name(uapi.bpf_cmd, 10) == "BPF_PROG_TEST_RUN"      # BPF_PROG_RUN too
    assert uapi.enum_members(uapi.bpf_cmd)["BPF_PROG_RUN"] == 10
    assert list(uapi.enum_members(uapi.btf_kind))[:3] == ["BTF_KIND_UNKN", "BTF_KIND_INT",
                                                          "BTF_KIND_PTR"]
    assert uapi.enum_name(uapi.bpf_map_type, uapi.BPF_MAP_TYPE_RINGBUF) == "BPF_MAP_TYPE_RINGBUF"
    with pytest.raises(ValueError, match="9999 is not a valid bpf_map_type"):
        uapi.enum_name(uapi.bpf_map_type, 9999)
    with pytest.raises(ValueError):
        uapi.enum_name(uapi.bpf_map_type, "2")              # type: ignore[arg-type]
    assert uapi.short_name(uapi.bpf_map_type, 27, "BPF_MAP_TYPE_") == "ringbuf"
    assert uapi.short_name(uapi.bpf_attach_type, uapi.BPF_TCX_INGRESS, "BPF_") == "tcx_ingress"
    assert uapi.short_name(uapi.bpf_map_type, 9999, "BPF_MAP_TYPE_") == "#9999"
    assert uapi.short_name(uapi.bpf_prog_type, 9999, "BPF_PROG_TYPE_", "type {}") == "type 9999"
    assert type(uapi.BPF_MAP_TYPE_HASH) is int and uapi.BPF_MAP_TYPE_HASH == 1
