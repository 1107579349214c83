"""The layout's rules: the pure packages (asm, btf, obj, uapi, errors) never reach the
kernel side, statically (no import of it anywhere, lazy ones included) and at run time
(parsing, linking and CO-RE relocating every built object with the kernel side blocked);
and no module of pybpf pulls in ``dataclasses`` or ``inspect`` (start-up time)."""
from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

from conftest import BUILD, ROOT

PKG = ROOT / "pybpf"
PURE = ("asm", "btf", "obj")
PURE_MODULES = ("uapi.py", "errors.py", "limits.py", "record.py", "cachedir.py", "files.py")
KERNEL_SIDE = ("kernel", "link", "events", "study", "cli", "maps", "object", "programs")


def _module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
    """Absolute names of every module a file imports, at any depth of its code."""
    here = _module_of(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            yield mod, node.lineno
            for alias in node.names:
                yield f"{mod}.{alias.name}", node.lineno


def _pure_files():
    for name in PURE:
        yield from sorted((PKG / name).rglob("*.py"))
    for name in PURE_MODULES:
        yield PKG / name


def test_pure_packages_import_nothing_of_the_kernel_side():
    bad = []
    for path in _pure_files():
        for mod, line in _imports(path):
            parts = mod.split(".")
            if parts[0] == "pybpf" and len(parts) > 1 and parts[1] in KERNEL_SIDE:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_rule_sees_a_lazy_kernel_import(tmp_path, monkeypatch):
    """The scan above must catch an import hidden in a function body."""
    fake = PKG / "obj" / "_layout_rule_probe.py"
    fake.write_text("def f():\n    from ..kernel import syscall\n    return syscall\n")
    try:
        found = [m for m, _ in _imports(fake)]
    finally:
        fake.unlink()
    assert "pybpf.kernel.syscall" in found


_BLOCKED_RUN = r"""
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        parts = name.split(".")
        if parts[0] == "pybpf" and len(parts) > 1 and parts[1] in BLOCKED:
            raise ImportError(f"kernel side imported: {{name}}")
        return None
sys.meta_path.insert(0, Block())
import ctypes, os, pathlib
from pybpf.asm import insn
from pybpf.btf import BTF
from pybpf.btf.kernel import vmlinux
from pybpf.obj.relocate import Linker
from pybpf.errors import ObjectError
from pybpf.obj.spec import parse_object
target = vmlinux()
linked = objects = 0
for path in sorted(pathlib.Path({build!r}).glob("*.bpf.o")):
    try:
        spec = parse_object(str(path))
    except ObjectError:
        continue                  # the deliberately malformed objects of other tests
    if len(spec.externs):
        continue                  # externs need a host description: tested elsewhere
    fds = {{m.name: 1000 + i for i, m in enumerate(spec.maps)}}
    linker = Linker(spec, fds, [target])
    for prog in spec.programs:
        code = linker.link(prog).insns
        assert len(code) % insn.INSN_SIZE == 0 and code
        assert all(insn.disasm(bytes(code)))
        linked += 1
    objects += 1
leaked = [m for m in sys.modules if m.split(".")[:2][-1] in BLOCKED and m.startswith("pybpf.")]
print(objects, linked, leaked)
"""


def test_pure_side_parses_links_and_relocates_with_the_kernel_side_blocked():
    code = _BLOCKED_RUN.format(blocked=KERNEL_SIDE, build=str(BUILD))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    objects, linked, leaked = out.stdout.split(" ", 2)
    assert int(objects) >= 15 and int(linked) >= 40, out.stdout
    assert leaked.strip() == "[]"


#: what ``python -m pybpf load OBJ`` imports (``python -X importtime`` lists it): the CLI,
#: the object, its readers and what its lazy imports bring
LOAD_PATH = ("pybpf.__main__", "pybpf.cli.main", "pybpf.cli.ring_watch", "pybpf.cli.map_report",
             "pybpf.cli.signals", "pybpf.object", "pybpf.events.ringbuf", "pybpf.events.perfbuf",
             "pybpf.btf.core", "pybpf.btf.sanitize", "pybpf.kernel.host", "pybpf.kernel.features")
#: slow to import: dataclasses pulls inspect, which pulls ast, dis and tokenize;
#: pyelftools pulls both (through pprint and pdb) and costs ~20 ms of its own
SLOW = ("dataclasses", "inspect", "elftools")

_IMPORTER_RUN = r"""
import importlib, json, sys, sysconfig      # not importlib.abc: it imports inspect (3.13)
paths = sysconfig.get_paths()
STDLIB = paths["stdlib"]
SITE = (paths["purelib"], paths["platlib"])
SLOW = {slow!r}
importers = {{}}

def _stdlib(file):
    return file.startswith("<") or (file.startswith(STDLIB) and not file.startswith(SITE))

class Watch:
    # a meta path finder that names, for each slow module, the innermost non-stdlib
    # module importing it
    def find_spec(self, name, path=None, target=None):
        if name in SLOW and name not in importers:
            frame = sys._getframe(1)
            while frame is not None and _stdlib(frame.f_code.co_filename):
                frame = frame.f_back
            importers[name] = frame.f_globals.get("__name__") if frame else None
        return None

assert not [m for m in SLOW if m in sys.modules], "imported before the watch"
sys.meta_path.insert(0, Watch())
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps({{"importers": importers,
                  "pybpf": sorted(m for m in sys.modules if m.startswith("pybpf"))}}))
"""


def _import_watch(modules):
    code = _IMPORTER_RUN.format(slow=SLOW, modules=modules)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_the_load_path_imports_no_dataclasses_inspect_nor_pyelftools():
    """Nothing the load command imports brings in dataclasses, inspect or pyelftools
    (BPF objects are decoded with struct; pyelftools reads host binaries only)."""
    got = _import_watch(LOAD_PATH)
    # PyPy only: ringmem reaches mapped memory through PyPy's cffi, which imports inspect
    pypy = {"inspect": "pybpf.events.ringmem"} if sys.implementation.name == "pypy" else {}
    assert got["importers"] == pypy
    assert "pybpf.obj.elf" in got["pybpf"] and "pybpf.btf.core" in got["pybpf"]


def test_the_import_watch_names_a_pybpf_importer():
    """The watch above must see a slow import made by a pybpf module."""
    probe = PKG / "obj" / f"_slow_import_probe_{os.getpid()}.py"
    probe.write_text("import dataclasses\nimport inspect\nimport elftools\n")
    try:
        got = _import_watch((f"pybpf.obj.{probe.stem}",))
    finally:
        probe.unlink()
    # inspect comes first from dataclasses (before 3.13), which is stdlib: the innermost
    # module of ours is still the probe
    assert got["importers"] == {slow: f"pybpf.obj.{probe.stem}" for slow in SLOW}


def test_no_module_of_pybpf_imports_dataclasses_or_inspect():
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in sorted(PKG.rglob("*.py"))
           for mod, line in _imports(path) if mod.split(".")[0] in ("dataclasses", "inspect")]
    assert not bad, bad


def _runtime_subscript_casts(tree: ast.AST):
    """Lines where a function body evaluates a typing subscript as cast()'s first
    argument (``cast(Tuple[int, str], x)``): typing builds or looks it up on every call."""
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and node.args and \
                    isinstance(node.args[0], ast.Subscript) and \
                    (getattr(node.func, "id", None) == "cast" or
                     getattr(node.func, "attr", None) == "cast"):
                yield node.lineno


def test_no_function_evaluates_a_typing_subscript_to_cast():
    """A ``typing.cast(Tuple[int, str, Pieces], x)`` in the ring buffer's delivery cost
    7 us a pass; cast to a string (or an alias made once) instead."""
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in sorted(PKG.rglob("*.py"))
           for line in _runtime_subscript_casts(ast.parse(path.read_text(), str(path)))]
    assert not bad, bad


def test_the_cast_rule_sees_a_subscript_cast():
    code = ("import typing\nfrom typing import cast, List\n"
            "X = cast(List[int], [])\n"                      # module level: once
            "def f(x):\n    return typing.cast(List[int], x)\n"
            "def g(x):\n    return cast('List[int]', x) or cast(List[int], x)\n")
    assert list(_runtime_subscript_casts(ast.parse(code))) == [5, 7]
