"""pybpf.obj.skeleton piece by piece: names, the embedded object, the parts of the
generated module (on synthetic objects without BTF and on built ones), refusals."""
from __future__ import annotations

import base64
import importlib.util
import os
import re
import sys
import zlib
from typing import Any

import pytest

from conftest import built
from pybpf import uapi
from pybpf.errors import ObjectError
from pybpf.obj import skeleton as S
from pybpf.obj.spec import MapSpec, parse_object

from test_elf_mutants import (SHF_ALLOC, SHF_EXEC, SHF_WRITE, SHT_PROGBITS, SHT_STRTAB,
                              SHT_SYMTAB, Obj, Sec, strtab, sym)

MOV_EXIT = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


def no_btf_object(code: bool = True, data: bool = True, rodata_syms: bool = True,
                  more: tuple = ()) -> bytes:
    """xdp program ``prog`` (if ``code``), .data (16 bytes, no variable symbol),
    .rodata with ``class`` (4 at 0), ``ro`` (4 at 4) and ``raw`` (8 at 8)."""
    sections, syms = [], []
    if code:
        sections.append(Sec("xdp", SHT_PROGBITS, SHF_ALLOC | SHF_EXEC, MOV_EXIT))
        syms.append(("prog", 0x12, len(sections), 0, 16))
    if data:
        sections.append(Sec(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, bytes(16)))
        sections.append(Sec(".rodata", SHT_PROGBITS, SHF_ALLOC, bytes(range(100, 116))))
        if rodata_syms:
            ro = len(sections)
            syms += [("class", 0x11, ro, 0, 4), ("ro", 0x11, ro, 4, 4), ("raw", 0x11, ro, 8, 8)]
            syms += [(name, 0x11, ro, off, size) for name, off, size in more]
    strs, offs = strtab(*[s[0] for s in syms])
    table = sym(0) + b"".join(sym(o, s[1], 0, s[2], s[3], s[4]) for o, s in zip(offs, syms))
    sections.append(Sec(".strtab", SHT_STRTAB, data=strs, align=1))
    sections.append(Sec(".symtab", SHT_SYMTAB, data=table, link=len(sections), info=1,
                        entsize=24))
    return Obj(sections).build()


_loaded = 0


def load_text(tmp_path: Any, text: str) -> Any:
    global _loaded
    _loaded += 1
    name = f"skel_mut_{os.getpid()}_{_loaded}"
    path = tmp_path / (name + ".py")
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, str(path))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name,camel", [
    ("exec", "Exec"), ("ringbuf-output", "RingbufOutput"), ("a_b.c", "ABC"),
    ("__x__y", "XY"), ("", "Bpf"), ("--", "Bpf"), ("9lives", "Bpf9lives"),
    ("abc9", "Abc9"), ("x1_2y", "X12y"), ("mIxed_CASE", "MIxedCASE")])
def test_camel(name, camel):
    assert S._camel(name) == camel


@pytest.mark.parametrize("name,attr", [
    (".rodata", "rodata"), (".data", "data"), (".bss", "bss"),
    (".data.counters", "data_counters"), (".rodata.str1.1", "rodata_str1_1"),
    (".maps", "maps_"), (".obj", "obj_"), (".progs", "progs_"), ("..data", "data"),
    (".data.class", "data_class")])
def test_section_attr(name, attr):
    assert S._section_attr(name) == attr


@pytest.mark.parametrize("path,name", [
    ("exec.bpf.o", "exec_skel"), ("/a.b/c.d/ringbuf-output.bpf.o", "ringbuf_output_skel"),
    ("class.o", "class_skel"), ("noext", "noext_skel"), ("9x.bpf.o", "_9x_skel")])
def test_module_name(path, name):
    assert S.module_name(path) == name


def test_map_type_names():
    assert S._map_type_name(MapSpec("m", uapi.BPF_MAP_TYPE_RINGBUF)) == "ringbuf"
    assert S._map_type_name(MapSpec("m", uapi.BPF_MAP_TYPE_PERCPU_ARRAY)) == "percpu_array"
    assert S._map_type_name(MapSpec("m", 1000)) == "type#1000"


def test_embedded_object_exact():
    raw = os.urandom(300) + bytes(3000)
    lines = S._embed(raw)
    text = base64.b64encode(zlib.compress(raw, 9)).decode()
    assert "".join(ln.strip()[1:-1] for ln in lines) == text
    assert all(ln.startswith('    "') and ln.endswith('"') for ln in lines)
    assert [len(ln) for ln in lines[:-1]] == [4 + 2 + 76] * (len(lines) - 1)
    assert 0 < len(lines[-1]) - 6 <= 76 and len(lines) == -(-len(text) // 76)
    exact = base64.b64encode(zlib.compress(b"x" * 57, 9)).decode()
    assert S._embed(b"x" * 57) == [f'    "{exact}"']
    assert S._embed(b"") == [f'    "{base64.b64encode(zlib.compress(b"", 9)).decode()}"']


# ---------------------------------------------------------------- a module without BTF

def test_skeleton_without_btf(tmp_path):
    raw = no_btf_object()
    text = S.generate(raw, "/some/dir/my-obj.bpf.o")
    assert S.generate(raw, "/some/dir/my-obj.bpf.o") == text
    digest = __import__("hashlib").sha256(raw).hexdigest()[:16]
    assert text.startswith(f'"""Skeleton of my-obj.bpf.o (object \'my-obj\', sha256 {digest}).\n')
    assert "Use: ``with MyObjSkeleton.open() as skel: skel.load(); skel.attach()``." in text
    # .data holds no variable: no class for it
    assert "MyObjData" not in text and "self.data =" not in text
    assert "        self.rodata = MyObjRodata(obj.sections['.rodata'])\n" in text
    assert text.endswith("        self.close()\n")
    mod = load_text(tmp_path, text)
    assert mod._OBJECT == raw and mod.MyObjSkeleton.object_bytes == raw
    assert mod.MyObjSkeleton.name == "my-obj"
    assert [n for n in vars(mod.MyObjMaps) if not n.startswith("__")] == ["_obj"]
    assert mod.MyObjRodata.__doc__ == ("The variables of .rodata: before load() they edit the "
                                       "initial image, after load() the live map.")
    with mod.MyObjSkeleton.open() as skel:
        assert skel.obj.name == "my-obj"
        assert skel.progs.prog is skel.obj.programs["prog"]
        ro = skel.rodata
        assert (ro.class_, ro.ro, ro.raw_) == (bytes(range(100, 104)), bytes(range(104, 108)),
                                               bytes(range(108, 116)))
        assert ro.raw("ro") == bytes(range(104, 108))
        ro.ro = b"abcd"
        ro.raw_ = b"12345678"
        assert skel.obj.sections[".rodata"].raw("ro") == b"abcd"
        assert skel.obj.sections[".rodata"].raw("raw") == b"12345678"
        assert ro.class_ == bytes(range(100, 104))
        assert type(skel).__doc__.startswith("Skeleton of my-obj.bpf.o: open()")
    doc = mod.MyObjRodata.ro.__doc__
    assert doc == "ro (4 bytes, no BTF)."


def test_no_programs_and_no_maps():
    with pytest.raises(ObjectError) as info:
        S.generate(no_btf_object(code=False, data=False), "/d/empty.o")
    assert str(info.value) == "/d/empty.o: no programs and no maps to make a skeleton of"
    only_maps = S.generate(no_btf_object(code=False), "m.o")
    assert "class MObjSkeleton" not in only_maps and "class MSkeleton:" in only_maps
    assert "    def prog(self)" not in only_maps
    only_code = S.generate(no_btf_object(data=False), "c.o")
    assert "class CSkeleton:" in only_code and "self.rodata" not in only_code
    assert "    def prog(self) -> _pybpf.Program:\n" in only_code
    # data sections with no variables at all: no section classes
    bare = S.generate(no_btf_object(rodata_syms=False), "b.o")
    assert "_pybpf.GlobalData" not in bare


# ---------------------------------------------------------------- built objects

def test_maps_and_programs_classes_of_exec():
    raw = built("exec.bpf.o").read_bytes()
    text = S.generate(raw, "exec.bpf.o")
    assert ('    @property\n    def rb(self) -> _pybpf.Map:\n'
            '        """ringbuf map \'rb\' (max_entries 262144)."""\n'
            "        return self._obj.maps['rb']\n") in text
    assert ('    @property\n    def handle_exec(self) -> _pybpf.Program:\n'
            '        """Program \'handle_exec\' (SEC("tp/sched/sched_process_exec"))."""\n'
            "        return self._obj.programs['handle_exec']\n") in text
    maps_cls = text[text.index("class ExecMaps:"):text.index("class ExecPrograms:")]
    assert "rodata" not in maps_cls and "bss" not in maps_cls      # global data: no
    assert ('    def ringbuf_rb(self, callback: _t.Callable[[event], None], **options: _t.Any)'
            ' -> _pybpf.RingBuffer:\n') in text
    assert "            callback(event.from_buffer(data))\n" in text


def test_clashing_names_get_distinct_attributes():
    spec = parse_object(built("loader_maps.bpf.o").read_bytes(), "loader_maps.bpf.o")
    plain = [m for m in spec.maps if not m.is_global_data]
    assert len(plain) >= 2 and len(spec.programs) >= 2
    plain[0].name, plain[1].name = "class", "class_"
    spec.programs[0].name, spec.programs[1].name = "def", "def_"
    mod = S._Module(spec, "loader_maps.bpf.o")
    maps_text = "\n".join(mod.maps_class())
    assert "    def class_(self) -> _pybpf.Map:" in maps_text
    assert "    def class__(self) -> _pybpf.Map:" in maps_text
    assert "return self._obj.maps['class']" in maps_text
    assert "return self._obj.maps['class_']" in maps_text
    progs_text = "\n".join(mod.progs_class())
    assert "    def def_(self) -> _pybpf.Program:" in progs_text
    assert "    def def__(self) -> _pybpf.Program:" in progs_text


def test_kconfig_section_left_out():
    text = S.generate(built("extern_kconfig.bpf.o").read_bytes(), "extern_kconfig.bpf.o")
    spec = parse_object(built("extern_kconfig.bpf.o").read_bytes(), "extern_kconfig.bpf.o")
    assert ".kconfig" in [m.name for m in spec.maps]
    assert "'.kconfig'" not in text and "self.kconfig" not in text
    assert "class ExternKconfigKconfig" not in text


def test_perf_buffer_method_and_untyped_records(tmp_path):
    text = S.generate(built("perfbuf-output.bpf.o").read_bytes(), "perfbuf-output.bpf.o")
    assert ('    def perfbuf_pb(self, callback: _t.Callable[[int, event], None], **options: '
            '_t.Any) -> _pybpf.PerfBuffer:\n') in text
    assert "            callback(cpu, event.from_buffer(data))\n" in text
    assert "        return _pybpf.PerfBuffer(self.obj.maps['pb'], on_sample, **options)" in text
    text = S.generate(built("rb_unanchored.bpf.o").read_bytes(), "rb_unanchored.bpf.o")
    methods = re.findall(r"    def (ringbuf_\w+)\(self, callback: _t.Callable\[\[(\w+)\]", text)
    assert methods and ("memoryview" in {t for _, t in methods})


@pytest.mark.parametrize("clash", ["ExecSkeleton", "ExecMaps", "ExecPrograms", "ExecRodata",
                                   "ExecBss"])
def test_struct_named_like_a_skeleton_class(tmp_path, clash):
    raw = built("exec.bpf.o").read_bytes()
    spec = parse_object(raw, "exec.bpf.o")
    spec.btf[spec.btf.find("event")[0]].name = clash
    text = S._Module(spec, "exec.bpf.o").text(raw)
    classes = re.findall(r"^class (\w+)", text, re.M)
    assert sorted(classes) == sorted(["ExecSkeleton", "ExecMaps", "ExecPrograms",
                                      "ExecRodata", "ExecBss", clash + "_"])
    assert f"callback: _t.Callable[[{clash}_], None]" in text
    mod = load_text(tmp_path, text)
    assert getattr(mod, clash + "_").size == getattr(mod, clash + "_").size > 0


def test_global_setters_only_for_values_not_views(tmp_path):
    raw = built("skel_types.bpf.o").read_bytes()
    text = S.generate(raw, "skel_types.bpf.o")
    assert "    @target_pid.setter\n" in text and "    @want.setter\n" in text
    assert "    @counters.setter\n" in text and "    @fired.setter\n" in text
    assert "@skel_config.setter" not in text
    assert ("    @property\n    def counters(self) -> _t.List[int]:\n"
            '        """__u64[4] counters."""\n') in text
    assert "    _layout_0: _t.ClassVar[_struct.Struct] = _struct.Struct('<QQQQ')\n" in text
    bss = text[text.index("class SkelTypesBss:"):]
    bss = bss[:bss.index("\n\n\nclass ")]
    assert re.findall(r"_layout_\d+(?=:)", bss) == ["_layout_0", "_layout_1"]
    assert sorted(re.findall(r"self\.(_layout_\d+)\.unpack_from", bss)) == \
        ["_layout_0", "_layout_1"]
    mod = load_text(tmp_path, text)
    with mod.SkelTypesSkeleton.open() as skel:
        skel.data_counters.counters = [1, 2, 3, 1 << 63]
        assert skel.obj.sections[".data.counters"]["counters"] == [1, 2, 3, 1 << 63]
        assert skel.data_counters.counters == [1, 2, 3, 1 << 63]
        skel.rodata.want = mod.skel_color.SKEL_BLUE
        assert skel.obj.rodata["want"] == 4
        with pytest.raises(AttributeError):
            skel.data.skel_config = mod.skel_inner()
        cfg = skel.data.skel_config
        assert (cfg.a, cfg.b, cfg.name) == (7, 8, b"cfg")
        assert skel.data.raw("skel_config") == skel.obj.sections[".data"].raw("skel_config")


def test_classes_of_anchored_structs_and_map_keys_and_values(tmp_path):
    """struct_ops_dummy's struct_ops type is reached only through anchored_structs,
    loader_maps' 'point' and hist_maps' 'linear_key' only as map keys / values."""
    for obj, cls in (("struct_ops_dummy.bpf.o", "bpf_dummy_ops___pybpf"),
                     ("loader_maps.bpf.o", "point"), ("hist_maps.bpf.o", "linear_key")):
        text = S.generate(built(obj).read_bytes(), obj)
        assert f"\nclass {cls}:\n" in text, (obj, cls)
        mod = load_text(tmp_path, text)
        assert getattr(mod, cls).size > 0


def test_event_methods_only_for_ring_and_perf_buffers():
    text = S.generate(built("skel_types.bpf.o").read_bytes(), "skel_types.bpf.o")
    assert re.findall(r"    def ((?:ringbuf|perfbuf)_\w+)\(", text) == ["ringbuf_skel_events"]
    assert ("        return _pybpf.RingBuffer(self.obj.maps['skel_events'], on_record, "
            "**options)\n") in text
    assert ('        """A RingBuffer on map \'skel_events\' calling ``callback`` with each '
            'record as a skel_rec."""\n') in text
    text = S.generate(built("rb_unanchored.bpf.o").read_bytes(), "rb_unanchored.bpf.o")
    untyped = [m for m, t in re.findall(
        r"    def (ringbuf_\w+)\(self, callback: _t.Callable\[\[(\w+)\]", text)
        if t == "memoryview"]
    assert untyped
    at = text.index(f"    def {untyped[0]}(")
    assert "            callback(data)\n" in text[at:at + 600]


def test_embedding_is_zlib_level_9_of_a_real_object():
    raw = built("exec.bpf.o").read_bytes()
    assert zlib.compress(raw, 9) != zlib.compress(raw, 8)
    text = "".join(ln.strip()[1:-1] for ln in S._embed(raw))
    assert base64.b64decode(text) == zlib.compress(raw, 9)


def test_variables_whose_identifiers_clash(tmp_path):
    raw = no_btf_object(more=(("class_", 12, 4),))
    text = S.generate(raw, "v.o")
    assert "    def class_(self) -> bytes:\n" in text
    assert "    def class__(self) -> bytes:\n" in text
    mod = load_text(tmp_path, text)
    with mod.VSkeleton.open() as skel:
        assert skel.rodata.class_ == bytes(range(100, 104))
        assert skel.rodata.class__ == bytes(range(112, 116))
