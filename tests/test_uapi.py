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
    members = {name for cls in vars(uapi).values()
               if isinstance(cls, type) and issubclass(cls, int) and hasattr(cls, "__members__")
               for name in cls.__members__}
    defined = {t.id for node in tree.body if isinstance(node, ast.Assign)
               for t in node.targets if isinstance(t, ast.Name)}
    defined |= {e.id for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Tuple) for e in t.elts
                if isinstance(e, ast.Name)}
    assert members - defined == set(), sorted(members - defined)[:10]
