"""gen skeleton: typed Python modules for every built object, checked against the
BTF codec, mypy --strict, and the kernel (typed events from the exec snoop)."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import random
import subprocess
import sys
import time
from typing import Any

import pytest

from conftest import BUILD, ROOT, built, parseable_objects, require_kernel
from pybpf.btf import codec
from pybpf.btf.pytypes import identifier
from pybpf.btf import types as T
from pybpf.errors import ObjectError
from pybpf.obj.spec import ARENA_SEC
from pybpf.obj.records import anchored_structs, hint, record_type
from pybpf.obj.skeleton import generate, module_name
from pybpf.obj.spec import parse_object

OBJECTS = parseable_objects()


def _load_module(path: Any, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, str(path))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _skeleton(tmp_path: Any, obj: str) -> Any:
    raw = built(obj).read_bytes()
    name = module_name(obj) + f"_{os.getpid()}"
    path = tmp_path / (name + ".py")
    path.write_text(generate(raw, obj))
    return _load_module(path, name)


def _plain(value: Any) -> Any:
    """A generated instance as the codec's dict (enums as ints)."""
    if hasattr(type(value), "__slots__") and hasattr(value, "from_buffer"):
        return {a.rstrip("_"): _plain(getattr(value, a)) for a in type(value).__slots__}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def _codec_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.rstrip("_"): _codec_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_codec_plain(v) for v in value]
    return value


@pytest.mark.parametrize("obj", OBJECTS)
def test_every_object_generates_imports_and_is_deterministic(tmp_path, obj):
    raw = built(obj).read_bytes()
    text = generate(raw, obj)
    assert generate(raw, obj) == text                  # same object, same bytes
    mod = _skeleton(tmp_path, obj)
    spec = parse_object(raw, obj)
    skel_cls = next(getattr(mod, n) for n in dir(mod) if n.endswith("Skeleton"))
    assert skel_cls.object_bytes == raw                # runs without the .o
    skel = skel_cls.open()
    try:
        assert all(getattr(skel.progs, identifier(p.name)) is skel.obj.programs[p.name]
                   for p in spec.programs)
        assert all(getattr(skel.maps, identifier(m.name)) is skel.obj.maps[m.name]
                   for m in spec.maps if not m.is_global_data)
        for section, view in skel.obj.sections.items():
            if section == ARENA_SEC:    # __arena globals: through obj.sections only
                continue
            if not len(view) or section == ".kconfig":
                assert not hasattr(skel, section.lstrip(".").replace(".", "_")) \
                    or section == ".kconfig"
                continue
            typed = getattr(skel, section.lstrip(".").replace(".", "_"))
            for var in view:               # typed getters read what GlobalData reads
                got = getattr(typed, identifier(var, ("raw",)))
                assert typed.raw(var) == view.raw(var)
                if isinstance(got, (int, bytes, float)):
                    assert got == view[var]
    finally:
        skel.close()


@pytest.mark.parametrize("obj", OBJECTS)
def test_struct_classes_decode_as_the_codec(tmp_path, obj):
    """Random bytes through every generated struct class equal the BTF codec's dict."""
    raw = built(obj).read_bytes()
    spec = parse_object(raw, obj)
    if spec.btf is None:
        pytest.skip("no BTF")
    mod = _skeleton(tmp_path, obj)
    rng = random.Random(obj)
    checked = 0
    for type_id in range(spec.btf.start_id, len(spec.btf)):
        t = spec.btf[type_id]
        if not isinstance(t, T.Struct) or isinstance(t, T.Union) or not t.name:
            continue
        cls = getattr(mod, t.name, None)
        if cls is None or not hasattr(cls, "_from_values"):
            continue
        assert cls.size == t.size
        comp = codec.compile(spec.btf, type_id)
        for _ in range(20):
            data = bytes(rng.getrandbits(8) for _ in range(t.size))
            assert _plain(cls.from_buffer(memoryview(data))) == _codec_plain(comp.decode(data))
            assert _plain(cls.from_buffer(b"xx" + data, 2)) == _codec_plain(comp.decode(data))
        checked += 1
    classes = [n for n in dir(mod) if hasattr(getattr(mod, n), "_from_values")]
    assert checked == len([c for c in classes if not c.startswith(("_", "anon"))
                           and getattr(mod, c).__doc__.startswith("struct ")])


def test_skel_types_layout(tmp_path):
    mod = _skeleton(tmp_path, "skel_types.bpf.o")
    rec = mod.skel_rec
    assert rec.size == 136
    assert rec.__slots__ == ("ts", "color", "in_", "arr", "matrix", "point", "whole",
                             "halves", "num", "lo", "mid", "neg", "hi", "ok", "comm", "big",
                             "s")
    assert issubclass(mod.skel_color, int) and mod.skel_color.SKEL_BLUE == 4
    # clang 16 records this 8-byte enum as BTF_KIND_ENUM, with 32-bit values
    spec = parse_object(built("skel_types.bpf.o").read_bytes(), "skel_types.bpf.o")
    big = spec.btf[spec.btf.find("skel_big")[0]]
    assert mod.skel_big.SKEL_BIG == big.values[0][1] and big.size == 8
    assert mod.skel_color(3).name == "3"               # unknown values still decode
    assert rec.__annotations__["matrix"] == "_t.List[_t.List[int]]"
    zero = rec()
    assert zero.arr == [mod.skel_inner(), mod.skel_inner()] and zero.color == 0
    assert repr(mod.skel_inner(a=1, name=b"x")) == "skel_inner(a=1, b=0, name=b'x')"
    spec = parse_object(built("skel_types.bpf.o").read_bytes(), "skel_types.bpf.o")
    rb = next(m for m in spec.maps if m.name == "skel_events")
    assert spec.btf[record_type(spec, rb)].name == "skel_rec"
    pointed, held = anchored_structs(spec)
    assert [spec.btf[i].name for i in pointed] == ["skel_rec"]
    assert [spec.btf[i].name for i in held] == ["skel_inner"]
    skel = mod.SkelTypesSkeleton.open()
    try:          # before load(): the initial image, typed
        assert skel.data.skel_config == mod.skel_inner(a=7, b=8, name=b"cfg")
        assert skel.rodata.want == mod.skel_color.SKEL_GREEN
        assert isinstance(skel.rodata.want, mod.skel_color)
        skel.rodata.target_pid = 42
        assert skel.obj.rodata["target_pid"] == 42
        assert skel.data_counters.counters == [0, 0, 0, 0]
    finally:
        skel.close()


def test_mypy_strict_on_generated_modules(tmp_path):
    pytest.importorskip("mypy")
    paths = []
    for obj in ("exec.bpf.o", "skel_types.bpf.o", "loader_maps.bpf.o", "core_task.bpf.o",
                "pb_events.bpf.o"):
        path = tmp_path / (module_name(obj) + ".py")
        path.write_text(generate(built(obj).read_bytes(), obj))
        paths.append(str(path))
    env = dict(os.environ, MYPYPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                          "--no-incremental", "--cache-dir", str(tmp_path / "cache")] + paths,
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Success: no issues found in 5 source files" in res.stdout


def test_cli_gen_skeleton(tmp_path):
    out = tmp_path / "exec_skel.py"
    res = subprocess.run([sys.executable, "-m", "pybpf", "gen", "skeleton",
                          str(built("exec.bpf.o")), "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == generate(built("exec.bpf.o").read_bytes(), "exec.bpf.o")
    assert f"wrote {out}" in res.stderr
    res = subprocess.run([sys.executable, "-m", "pybpf", "gen", "skeleton",
                          str(tmp_path / "missing.o")], capture_output=True, text=True,
                         cwd=ROOT)
    assert res.returncode == 1 and "cannot read" in res.stderr and "missing.o" in res.stderr


# same-length replacements (string offsets stay): quotes that would end a docstring,
# a backslash, a newline, a byte that is not UTF-8 (BTF-only and section-only names)
_HOSTILE_NAMES = {b"skel_inner": b'"""\\\n\xffxyz_', b"target_pid": b'tp"""\\\n___',
                  b"sys_enter_getpgid": b'sys_"""\\\xff_getpgid',
                  b"skel_events": b'ev"""\\\n____'}


def test_names_that_would_break_the_module_are_escaped(tmp_path):
    raw = built("skel_types.bpf.o").read_bytes()
    for old, new in _HOSTILE_NAMES.items():
        raw = raw.replace(old, new)
    filename = 'we"""ird\udcff.bpf.o'              # an undecodable byte of a file name
    text = generate(raw, filename)
    name = f"hostile_skel_{os.getpid()}"
    path = tmp_path / (name + ".py")
    path.write_bytes(text.encode("utf-8"))         # surrogates would not encode
    mod = _load_module(path, name)
    spec = parse_object(raw, filename)
    prog, = spec.programs
    assert prog.section.startswith('tp/syscalls/sys_"""\\')
    assert prog.section.endswith("\udcff_getpgid")        # decoded as BTF names are
    shown = prog.section.replace("\udcff", "\\udcff")       # shown escaped
    assert mod.WeIrdPrograms.emit_rec.__doc__ == f"Program 'emit_rec' (SEC(\"{shown}\"))."
    inner = next(getattr(mod, n) for n in dir(mod) if n.endswith("xyz_"))
    assert inner.__doc__ == 'struct """\\\n\\udcffxyz_ (10 bytes).'   # shown escaped
    ring = 'ev"""\\\n____'
    assert getattr(mod.WeIrdMaps, identifier(ring)).__doc__ == \
        f"ringbuf map {ring!r} (max_entries 65536)."
    assert mod.WeIrdSkeleton.name == 'we"""ird\udcff'
    assert mod.__doc__.startswith('Skeleton of we"""ird\\udcff.bpf.o (object ')


def test_identifiers_are_ascii():
    # '\u00b2' is \\w but no identifier character; U+FB01 NFKC-folds to "fi"
    assert [identifier(n) for n in ("a\u00b2", "\ufb01le", "caf\u00e9", "\udcffx")] == \
        ["a_", "_le", "caf_", "_x"]


def test_generate_rejects_garbage():
    with pytest.raises(ObjectError):
        generate(b"\x7fELF" + bytes(60), "bad.o")
    assert "'const struct event *unused __attribute__((unused));'" in hint()
    assert "'const struct rec *unused" in hint("rec") and "your record" not in hint("rec")


def test_kernel_typed_events_from_skel_types(tmp_path):
    require_kernel()
    mod = _skeleton(tmp_path, "skel_types.bpf.o")
    got = []
    with mod.SkelTypesSkeleton.open() as skel:
        skel.rodata.target_pid = os.getpid()
        skel.load()
        links = skel.attach()
        assert len(links) == 1
        rb = skel.ringbuf_skel_events(got.append)
        try:
            os.getpgid(0)
            rb.poll(1000)
        finally:
            rb.close()
        assert skel.bss.fired == 1
        assert skel.data_counters.counters == [1, 0, 0, 0]
    assert len(got) == 1
    r = got[0]
    assert isinstance(r, mod.skel_rec)
    assert r.ts == 0xfedcba9876543210 and r.color is mod.skel_color.SKEL_GREEN
    assert r.in_ == mod.skel_inner(a=7, b=8, name=b"inner")
    assert r.arr == [mod.skel_inner(a=100, b=200, name=b"A"), mod.skel_inner(a=101, b=201,
                                                                             name=b"B")]
    assert r.matrix == [[0, 1, 2], [10, 11, 12]]
    assert (r.point.x, r.point.y) == (3, 4)
    assert r.halves == [0x11111111, 0x22222222] and r.whole == 0x2222222211111111
    assert r.num.i == -2 and r.num.u == 0xfffffffe and r.num.bytes_ == [0xfe, 0xff, 0xff, 0xff]
    assert (r.lo, r.mid, r.neg, r.hi) == (5, 99, -7, 100000)
    assert r.ok is True and r.comm == pathlib.Path("/proc/self/comm").read_bytes().strip()[:15]
    assert r.big == 0x123456789a and isinstance(r.big, mod.skel_big)
    assert r.s == -1234567890123


def test_kernel_exec_snoop_skeleton(tmp_path):
    require_kernel()
    mod = _skeleton(tmp_path, "exec.bpf.o")
    events = []
    with mod.ExecSkeleton.open() as skel:
        skel.load()
        skel.attach()
        with skel.ringbuf_rb(events.append) as rb:
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and \
                    not any(e.pid == child.pid for e in events):
                rb.poll(100)
    mine = [e for e in events if e.pid == child.pid]
    assert mine and all(isinstance(e, mod.event) for e in events)
    assert mine[0].filename == b"/bin/true" and mine[0].comm == b"true"


def test_kernel_perf_buffer_skeleton_typed_samples(tmp_path):
    """perfbuf-output builds its event in a per-CPU scratch map: that map's value
    type is the record type of the perf buffer."""
    require_kernel()
    spec = parse_object(built("perfbuf-output.bpf.o").read_bytes(), "perfbuf-output.bpf.o")
    pb = next(m for m in spec.maps if m.name == "pb")
    assert spec.btf[record_type(spec, pb)].name == "event"
    mod = _skeleton(tmp_path, "perfbuf-output.bpf.o")
    samples = []
    with mod.PerfbufOutputSkeleton.open() as skel:
        skel.load()
        skel.attach()
        with skel.perfbuf_pb(lambda cpu, e: samples.append((cpu, e))) as buf:
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and \
                    not any(e.pid == child.pid for _, e in samples):
                buf.poll(100)
    mine = [(cpu, e) for cpu, e in samples if e.pid == child.pid]
    assert mine and isinstance(mine[0][1], mod.event) and mine[0][1].filename == b"/bin/true"
    assert 0 <= mine[0][0] < os.cpu_count()


def test_pytypes_rejects_malformed_btf_with_object_errors():
    from pybpf.btf import BTF
    from pybpf.btf.pytypes import PyTypes
    from pybpf.uapi import BTF_INT_SIGNED
    btf = BTF()
    i32 = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    overlap = btf.add(T.Struct("overlap", 8, [T.Member("a", i32, 0), T.Member("b", i32, 16)]))
    short = btf.add(T.Struct("short", 2, [T.Member("a", i32, 0)]))
    loop = len(btf)
    assert btf.add(T.Struct("loop", 4, [T.Member("me", loop, 0)])) == loop
    bitptr = btf.add(T.Struct("bitptr", 8, [T.Member("p", btf.add(T.Pointer("", i32)), 0, 3)]))
    ok = btf.add(T.Struct("ok", 8, [T.Member("class", i32, 0), T.Member("size", i32, 32)]))
    for type_id, words in ((overlap, "overlap at byte 2"), (short, "past its 2 bytes"),
                           (loop, "contains itself"), (bitptr, "not an integer")):
        with pytest.raises(ObjectError, match=words):
            PyTypes(btf).record(type_id)
    src = PyTypes(btf).record(ok).source
    assert "__slots__ = ('class_', 'size_')" in src      # keywords and class attributes
    ns: dict = {}
    exec("import struct as _struct, typing as _t, enum as _enum\n" + src, ns)
    assert ns["ok"].from_buffer(b"\1\0\0\0\2\0\0\0").size_ == 2 and ns["ok"].size == 8
