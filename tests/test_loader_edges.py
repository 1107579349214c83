"""Loader edge cases, each as libbpf 1.5 handles it: SEC("?") autoload, data map
mmapability and __hidden globals, internal map names, ring buffer sizes, pinning
values, arena maps and __arena globals, exception callbacks, .rodata bound to
every program, SEC() names added from libbpf's table."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.btf import BTF
from pybpf.btf import types as T
from pybpf.obj.exception_cb import ExceptionTags, find_exception_callback
from pybpf.obj.map_rules import check_pinning, datasec_is_mmapable, internal_map_name, ringbuf_size
from pybpf.obj.sections import SLEEPABLE, find_sec_def
from pybpf.obj.spec import ARENA_SEC, FuncSpec

from conftest import built, require_kernel, skip_missing_feature
from hostile import renamed

PAGE = mmap.PAGESIZE


def open_obj(name: str) -> pybpf.BPFObject:
    return pybpf.BPFObject.open(built(name))


# ------------------------------------------------------------------ SEC("?...")

def test_question_mark_programs_parse_with_autoload_off():
    with open_obj("loader_autoload.bpf.o") as obj:
        progs = obj.programs
        assert {n: p.autoload for n, p in progs.items()} == {
            "always_on": True, "optional_on": False, "never_valid": False}
        # the '?' is not part of the SEC() name (libbpf's bpf_program__section_name)
        assert progs["optional_on"].section == "tp/syscalls/sys_enter_getppid"
        assert progs["never_valid"].section == "raw_tp/sys_enter"
        assert progs["never_valid"].type == uapi.BPF_PROG_TYPE_RAW_TRACEPOINT
        assert progs["optional_on"].attach_target == "syscalls/sys_enter_getppid"


def test_plain_load_skips_question_mark_programs_and_attach_skips_them():
    require_kernel()
    with open_obj("loader_autoload.bpf.o") as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.load()                  # never_valid would be refused by the verifier
        assert [p.loaded for p in obj.programs.values()] == [True, False, False]
        links = obj.attach()
        assert len(links) == 1
        for _ in range(3):
            os.getppid()
        assert obj.bss["always_calls"] == 3 and obj.bss["optional_calls"] == 0
        with pytest.raises(pybpf.BPFError, match="before the object is loaded"):
            obj.programs["optional_on"].autoload = True


def test_autoload_enabled_before_load():
    require_kernel()
    with open_obj("loader_autoload.bpf.o") as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.programs["optional_on"].autoload = True
        obj.programs["always_on"].autoload = False
        obj.load()
        assert [p.loaded for p in obj.programs.values()] == [False, True, False]
        obj.attach()
        os.getppid()
        assert obj.bss["always_calls"] == 0 and obj.bss["optional_calls"] == 1


def test_autoloading_an_invalid_question_mark_program_fails_the_load():
    require_kernel()
    with open_obj("loader_autoload.bpf.o") as obj:
        obj.programs["never_valid"].autoload = True
        with pytest.raises(pybpf.VerifierError, match="never_valid"):
            obj.load()
        assert not any(p.loaded for p in obj.programs.values())


# ------------------------------------------------------------------ data maps

def test_mmapable_only_with_a_non_static_variable():
    with open_obj("loader_datasec.bpf.o") as obj:
        flags = {n: m.flags for n, m in obj.maps.items()}
    mm, ro = uapi.BPF_F_MMAPABLE, uapi.BPF_F_RDONLY_PROG
    assert flags == {".bss": mm, ".data.locked": 0, ".data.hidden": 0,
                     ".data.statics": 0, ".data.vislock": mm, ".data": mm,
                     ".rodata.str1.1": ro}


def test_hidden_globals_are_static_in_btf():
    with open_obj("loader_datasec.bpf.o") as obj:
        btf = obj.btf
        linkage = {btf[v.type].name: btf[v.type].linkage
                   for t in btf if isinstance(t, T.Datasec) for v in t.vars}
    assert linkage["visible_count"] == uapi.BTF_VAR_GLOBAL_ALLOCATED
    for name in ("hidden_count", "lock", "locked_total", "hidden_only", "static_only"):
        assert linkage[name] == uapi.BTF_VAR_STATIC, name


def test_unmmapable_data_maps_load_and_read_through_the_map():
    """A spin lock in a data section: the kernel refuses mmap, libbpf does not ask."""
    require_kernel()
    with open_obj("loader_datasec.bpf.o") as obj:
        obj.bss["match"] = b"pybpf"
        obj.sections[".data.hidden"]["hidden_only"] = 100
        obj.load()
        for _ in range(2):
            assert obj.programs["bump"].test_run().retval == 0
        views = obj.sections
        assert {n: v.mmaped for n, v in views.items()} == {
            ".bss": True, ".data.locked": False, ".data.hidden": False,
            ".data.statics": False, ".data.vislock": False, ".data": True,
            ".rodata.str1.1": False}
        # mmapable by libbpf's rule, but the kernel refuses to mmap a spin lock
        assert views[".data.vislock"]["vis_total"] == 14
        assert views[".data.locked"]["locked_total"] == 10
        assert views[".data.hidden"]["hidden_only"] == 102
        assert views[".data.statics"]["static_only"] == 13
        assert obj.bss["visible_count"] == 2 and obj.bss["hidden_count"] == 4
        assert obj.data["literal_cmp"] == 0     # bpf_strncmp against .rodata.str1.1
        views[".data.hidden"]["hidden_only"] = 1    # written through a map update
        obj.programs["bump"].test_run()
        assert views[".data.hidden"]["hidden_only"] == 2
        for m in obj.maps.values():
            assert m.info().map_flags == m.flags


def test_kernel_map_names_as_libbpf():
    require_kernel()
    with open_obj("loader_datasec.bpf.o") as obj:
        obj.load()
        names = {n: m.info().name.decode() for n, m in obj.maps.items()}
    assert names == {".bss": "loader_d.bss", ".data": "loader_d.data",
                     ".data.locked": ".data.locked", ".data.hidden": ".data.hidden",
                     ".data.statics": ".data.statics", ".data.vislock": ".data.vislock",
                     ".rodata.str1.1": ".rodata.str1.1"}


@pytest.mark.parametrize("obj_name, section, expected", [
    ("biolatency", ".bss", "biolaten.bss"),
    ("biolatency", ".rodata", "biolaten.rodata"),
    ("biolatency", ".kconfig", "biolate.kconfig"),     # 8-char suffix: 7 of the prefix
    ("ab", ".data", "ab.data"),
    ("my-obj+x", ".bss", "my_obj_x.bss"),             # characters the kernel refuses
    ("biolatency", ".rodata.str1.1", ".rodata.str1.1"),   # custom: no object prefix
    ("biolatency", ".data.counters", ".data.counters"),
    ("biolatency", ".rodata.abracadabra", ".rodata.abracad"),   # 15 characters at most
    ("x", ".data.a-b", ".data.a_b"),
])
def test_internal_map_name(obj_name, section, expected):
    assert internal_map_name(obj_name, section) == expected


def test_internal_map_names_of_built_objects():
    with open_obj("extern_kconfig.bpf.o") as obj:
        names = {n: m.kernel_name for n, m in obj.maps.items() if m.spec.is_global_data}
    assert names[".kconfig"] == "extern_.kconfig"
    for name, kernel_name in names.items():
        if name != ".kconfig" and name.count(".") == 1:
            assert kernel_name == "extern_k" + name


def test_mmapable_rule_without_btf_or_datasec():
    assert not datasec_is_mmapable(None, 3)
    btf = BTF()
    int_id = btf.add(T.Int("int", 4, 0, 0, 32))
    static = btf.add(T.Var("s", int_id, uapi.BTF_VAR_STATIC))
    glob = btf.add(T.Var("g", int_id, uapi.BTF_VAR_GLOBAL_ALLOCATED))
    only_static = btf.add(T.Datasec(".data.a", 4, [T.VarSecinfo(static, 0, 4)]))
    mixed = btf.add(T.Datasec(".data.b", 8, [T.VarSecinfo(static, 0, 4),
                                             T.VarSecinfo(glob, 4, 4)]))
    assert not datasec_is_mmapable(btf, 0)
    assert not datasec_is_mmapable(btf, int_id)        # not a DATASEC
    assert not datasec_is_mmapable(btf, only_static)
    assert datasec_is_mmapable(btf, mixed)


# ------------------------------------------------------------------ ring buffers

@pytest.mark.parametrize("size, expected", [
    (0, 0), (1, PAGE), (PAGE, PAGE), (PAGE + 1, 2 * PAGE), (3 * PAGE, 4 * PAGE),
    (4 * PAGE, 4 * PAGE), (5 * PAGE - 7, 8 * PAGE), (1 << 24, 1 << 24),
    (0xFFFFFFFF, 0xFFFFFFFF),       # no power-of-two multiple fits: left to the kernel
])
def test_ringbuf_size(size, expected):
    assert ringbuf_size(size) == expected


def test_ringbuf_sizes_rounded_from_definition_and_setter():
    with open_obj("loader_ringbufs.bpf.o") as obj:
        maps = obj.maps
        assert maps["odd_ring"].max_entries == 4 * PAGE          # declared 3 pages
        assert maps["tiny_user_ring"].max_entries == PAGE        # declared 100 bytes
        maps["odd_ring"].max_entries = 5 * PAGE + 1
        assert maps["odd_ring"].max_entries == 8 * PAGE
        maps["tiny_user_ring"].max_entries = 2 * PAGE
        assert maps["tiny_user_ring"].max_entries == 2 * PAGE


def test_rounded_ring_buffers_are_created():
    require_kernel()
    with open_obj("loader_ringbufs.bpf.o") as obj:
        obj.load()
        assert obj.maps["odd_ring"].info().max_entries == 4 * PAGE
        assert obj.maps["tiny_user_ring"].info().max_entries == PAGE


# ------------------------------------------------------------------ pinning

def test_invalid_pinning_value_refused():
    with pytest.raises(pybpf.ObjectError, match=r"map 'pinned_wrong': invalid pinning "
                       r"value 2") as e:
        open_obj("loader_badpin.bpf.o")
    assert e.value.section == ".maps"


def test_pinning_rules():
    assert check_pinning("m", 0, inner=False) == 0
    assert check_pinning("m", 1, inner=False) == 1
    with pytest.raises(pybpf.ObjectError, match="invalid pinning value 3"):
        check_pinning("m", 3, inner=False)
    with pytest.raises(pybpf.ObjectError, match="inner map definition can't be pinned"):
        check_pinning("m.inner", 1, inner=True)


# ------------------------------------------------------------------ arena

def test_arena_globals_parsed():
    with open_obj("loader_arena.bpf.o") as obj:
        spec = obj.maps["arena"].spec
        assert spec.type == uapi.BPF_MAP_TYPE_ARENA and spec.arena is not None
        assert spec.arena.name == ARENA_SEC
        view = obj.sections[ARENA_SEC]
        assert dict(view.items()) == {"arena_counter": 7, "arena_values": [1, 2, 3, 4]}


@pytest.mark.parametrize("name, address", [("loader_arena.bpf.o", 0),
                                           ("loader_arena_fixed.bpf.o", 1 << 44)])
def test_arena_mapped_and_globals_placed(name, address):
    require_kernel()
    with open_obj(name) as obj:
        arena = obj.maps["arena"]
        view = obj.sections[ARENA_SEC]
        view["arena_counter"] = 100                 # before load: the initial value
        obj.load()
        assert arena.arena is not None and arena.arena.size == 4 * PAGE
        if address:
            assert arena.arena.address == address   # map_extra fixes the mapping
        assert view.mmaped and view["arena_counter"] == 100
        prog = obj.programs["arena_bump"]
        assert prog.test_run().retval == 101
        assert obj.bss["seen_counter"] == 100
        assert view["arena_counter"] == 101 and view["arena_values"] == [1, 2, 30, 4]
        # user space writes land in the memory the program reads
        view["arena_counter"] = 500
        assert prog.test_run().retval == 501
        counter_off = view.variables["arena_counter"][0]
        raw = bytes(arena.arena.buffer[counter_off:counter_off + 4])
        assert int.from_bytes(raw, "little") == 501
    assert arena.arena is None


@pytest.mark.parametrize("name", ["loader_arena.bpf.o", "loader_arena_fixed.bpf.o"])
def test_arena_pointers_are_user_addresses(name):
    """A page the program allocates (bpf_arena_alloc_pages) is seen by user space at
    the address the program's pointer holds, inside the mapping."""
    require_kernel()
    with open_obj(name) as obj:
        obj.load()
        arena = obj.maps["arena"].arena
        assert obj.programs["arena_alloc"].test_run().retval == 0
        off = obj.bss["page_address"] - arena.address
        assert PAGE <= off < arena.size and off % PAGE == 0   # page 0 holds the globals
        page = bytes(arena.buffer[off:off + 16])
        assert page == (0xfeedbeefcafe).to_bytes(8, "little") + (7).to_bytes(8, "little")


def test_arena_too_small_for_its_globals():
    require_kernel()
    with open_obj("loader_arena.bpf.o") as obj:
        obj.maps["arena"].max_entries = 0
        with pytest.raises(pybpf.ObjectError, match="too small to hold the __arena"):
            obj.load()


def test_arena_at_an_address_in_use_is_refused_cleanly():
    require_kernel()
    with open_obj("loader_arena_fixed.bpf.o") as first, \
            open_obj("loader_arena_fixed.bpf.o") as second:
        first.load()
        with pytest.raises(pybpf.BPFError, match="already in use"):
            second.load()
        assert not second.maps["arena"].loaded
        assert first.programs["arena_bump"].test_run().retval == 8


# ------------------------------------------------------------------ exceptions

def test_exception_callback_appended_only_where_tagged():
    require_kernel()
    with open_obj("loader_exceptions.bpf.o") as obj:
        obj.load()
        placed = {n: [f.name for f, _ in linked.placed] for n, linked in obj.linked.items()}
        assert placed == {"throw_long": ["throw_long", "check_len", "catch_all"],
                          "throw_plain": ["throw_plain"]}
        # one func_info per placed function, the callback's included
        assert len(obj.linked["throw_long"].func_info) == 3


def test_exception_callback_return_value():
    require_kernel()
    with open_obj("loader_exceptions.bpf.o") as obj:
        obj.load()
        long_ = obj.programs["throw_long"]
        assert long_.test_run(data=bytes(64)).retval == 64             # no throw
        assert long_.test_run(data=bytes(150)).retval == 2 * 150 + 1   # the callback's
        assert obj.bss["callback_cookie"] == 150
        plain = obj.programs["throw_plain"]
        assert plain.test_run(data=bytes(64)).retval == 1
        assert plain.test_run(data=bytes(150)).retval == 7     # default: the cookie


class _Elf:
    """The part of an ElfObject find_exception_callback reads."""

    class _Sec:
        def __init__(self, name: str):
            self.name = name

    class _Sym:
        def __init__(self, name: str, shndx: int, bind: int, visibility: int):
            self.name, self.shndx, self.bind, self.visibility = name, shndx, bind, visibility
            self.type = 2       # STT_FUNC

    def __init__(self, syms):
        self.sections = [self._Sec(""), self._Sec(".text"), self._Sec("tc")]
        self.symbols = [self._Sym(*s) for s in syms]


def _tagged_btf(tag: str, target_linkage: int = uapi.BTF_FUNC_GLOBAL) -> BTF:
    btf = BTF()
    int_id = btf.add(T.Int("int", 4, 0, 0, 32))
    proto = btf.add(T.FuncProto("", int_id, []))
    prog = btf.add(T.Func("prog", proto, target_linkage))
    btf.add(T.DeclTag(tag, prog, -1))
    return btf


FUNCS = [FuncSpec("cb", 1, 0, 4, True), FuncSpec("prog", 2, 0, 4, True)]
GLOBAL_CB = [("cb", 1, 1, 0), ("prog", 2, 1, 0)]


def _find(btf, syms, prog="prog"):
    return find_exception_callback(_Elf(syms), ExceptionTags.of(btf), FUNCS, prog, "tc")


def test_exception_callback_lookup_rules():
    assert _find(_tagged_btf("exception_callback:cb"), GLOBAL_CB) is FUNCS[0]
    assert _find(_tagged_btf("exception_callback:cb"), GLOBAL_CB, "other") is None
    assert _find(None, GLOBAL_CB) is None
    two = _tagged_btf("exception_callback:cb")
    two.add(T.DeclTag("exception_callback:prog", 3, -1))
    assert _find(two, GLOBAL_CB) is None        # two callbacks: left to the verifier
    cases = [
        (_tagged_btf("exception_callback:"), GLOBAL_CB, "names no function"),
        (_tagged_btf("exception_callback:nope"), GLOBAL_CB, "cannot find exception callback"),
        (_tagged_btf("exception_callback:cb"), [("cb", 1, 0, 0)], "global, non-hidden"),
        (_tagged_btf("exception_callback:cb"), [("cb", 1, 1, 2)], "global, non-hidden"),
        (_tagged_btf("exception_callback:cb", uapi.BTF_FUNC_STATIC), GLOBAL_CB,
         "not on a main program"),
    ]
    for btf, syms, msg in cases:
        with pytest.raises(pybpf.ObjectError, match=msg):
            _find(btf, syms)
    # a misplaced tag fails every program that is loaded, as in libbpf
    with pytest.raises(pybpf.ObjectError, match="not on a main program"):
        _find(_tagged_btf("exception_callback:cb", uapi.BTF_FUNC_STATIC), GLOBAL_CB, "other")


# ------------------------------------------------------------------ .rodata binding

def _map_ids(prog_fd: int):
    info = syscall.obj_info(prog_fd, uapi.bpf_prog_info)
    ids = (ctypes.c_uint32 * info.nr_map_ids)()
    again = uapi.bpf_prog_info(nr_map_ids=info.nr_map_ids, map_ids=ctypes.addressof(ids))
    syscall.obj_info(prog_fd, uapi.bpf_prog_info, again)
    return set(ids)


def test_rodata_bound_to_programs_that_do_not_use_it():
    require_kernel()
    with open_obj("loader_secnames.bpf.o") as obj:
        obj.load()
        rodata_id = obj.maps[".rodata"].info().id
        bss_id = obj.maps[".bss"].info().id
        # on_session reads no const volatile: .rodata is bound, .bss is its own use
        assert _map_ids(obj.programs["on_session"].fd) == {rodata_id, bss_id}
        assert rodata_id in _map_ids(obj.programs["on_entry_sleepable"].fd)


# ------------------------------------------------------------------ SEC() names

@pytest.mark.parametrize("section, attach_type, sleepable", [
    ("kprobe.session/do_nanosleep", uapi.BPF_TRACE_KPROBE_SESSION, False),
    ("uprobe.multi.s/libc.so.6:getpid", uapi.BPF_TRACE_UPROBE_MULTI, True),
    ("uretprobe.multi.s", uapi.BPF_TRACE_UPROBE_MULTI, True),
    ("usdt.s/libc.so.6:libc:setjmp", 0, True),
    ("uprobe.session/libc.so.6:getpid", uapi.BPF_TRACE_UPROBE_SESSION, False),
    ("uprobe.session.s", uapi.BPF_TRACE_UPROBE_SESSION, True),
])
def test_added_section_names(section, attach_type, sleepable):
    sec_def, _ = find_sec_def(section)
    assert sec_def is not None and sec_def.prog_type == uapi.BPF_PROG_TYPE_KPROBE
    assert sec_def.attach_type == attach_type
    assert bool(sec_def.flags & SLEEPABLE) == sleepable


def test_sleepable_uprobe_multi_attached():
    require_kernel()
    with open_obj("loader_secnames.bpf.o") as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.load()
        for name in ("on_entry_sleepable", "on_return_sleepable"):
            obj.programs[name].attach(binary="libc.so.6", syms=["getpid"])
        for _ in range(5):
            os.getpid()
        assert obj.bss["sleepable_entries"] == 5 and obj.bss["sleepable_returns"] == 5


def test_uprobe_session_runs_on_entry_and_return():
    require_kernel()
    with open_obj("loader_secnames.bpf.o") as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.load()
        prog = obj.programs["on_uprobe_session"]
        assert prog.expected_attach_type == uapi.BPF_TRACE_UPROBE_SESSION
        with pytest.raises(pybpf.AttachError, match="retprobe= does not apply"):
            prog.attach(binary="libc.so.6", syms=["getpid"], retprobe=True)
        with prog.attach(binary="libc.so.6", syms=["getpid"]) as link:
            assert link.info().type == uapi.BPF_LINK_TYPE_UPROBE_MULTI
            for _ in range(4):
                os.getpid()
        os.getpid()                         # detached: not counted
        assert obj.bss["session_entries"] == 4 and obj.bss["session_returns"] == 4


def test_kprobe_session_loads_and_attaches_where_kprobes_exist():
    require_kernel()
    with open_obj("loader_secnames.bpf.o") as obj:
        obj.load()
        prog = obj.programs["on_session"]
        assert prog.expected_attach_type == uapi.BPF_TRACE_KPROBE_SESSION
        with pytest.raises(pybpf.AttachError, match="retprobe= does not apply"):
            prog.attach(retprobe=True)
        try:
            link = prog.attach()
        except pybpf.BPFError as e:
            if e.errno in (95, 2, 524):     # EOPNOTSUPP / ENOENT / ENOTSUPP
                skip_missing_feature(f"CONFIG_KPROBES (kprobe.session link: {e})")
            raise
        with link:
            assert link.info().type == uapi.BPF_LINK_TYPE_KPROBE_MULTI


# ------------------------------------------------------------------ refused sections

def _renamed_section(name: str, old: str, new: str) -> bytes:
    """The object with section name ``old`` renamed ``new`` (same length) in .shstrtab."""
    import io
    from elftools.elf.elffile import ELFFile
    raw = bytearray(built(name).read_bytes())
    shstrtab = ELFFile(io.BytesIO(bytes(raw))).get_section(
        ELFFile(io.BytesIO(bytes(raw)))["e_shstrndx"])
    start = shstrtab["sh_offset"]
    table = bytes(raw[start:start + shstrtab["sh_size"]])
    at = table.index(b"\0" + old.encode() + b"\0") + 1
    assert len(old) == len(new)
    raw[start + at:start + at + len(new)] = new.encode()
    return bytes(raw)


def _function_made_notype(name: str, func: str) -> bytes:
    import io
    from elftools.elf.elffile import ELFFile
    raw = bytearray(built(name).read_bytes())
    symtab = ELFFile(io.BytesIO(bytes(raw))).get_section_by_name(".symtab")
    for index, sym in enumerate(symtab.iter_symbols()):
        if sym.name == func:
            info = symtab["sh_offset"] + index * symtab["sh_entsize"] + 4
            raw[info] &= 0xF0           # STT_FUNC -> STT_NOTYPE, binding kept
            return bytes(raw)
    raise AssertionError(func)


def test_legacy_maps_section_refused_even_beside_dot_maps():
    raw = _renamed_section("loader_ringbufs.bpf.o", ".llvm_addrsig", "maps" + "\0" * 9)
    with pytest.raises(pybpf.ObjectError, match="legacy 'maps' section") as e:
        pybpf.BPFObject.open(raw)
    assert e.value.section == "maps"


def test_code_without_function_symbol_refused():
    raw = _function_made_notype("loader_ringbufs.bpf.o", "emit")
    with pytest.raises(pybpf.ObjectError, match="code but no function symbol") as e:
        pybpf.BPFObject.open(raw)
    assert e.value.section == "syscall"


def test_datasec_without_elf_section_refused():
    raw = _renamed_section("loader_datasec.bpf.o", ".data.hidden", ".data.hiddex")
    with pytest.raises(pybpf.ObjectError, match="DATASEC '.data.hidden' has no ELF section"):
        pybpf.BPFObject.open(raw)


def test_arena_globals_without_arena_map_refused():
    raw = _renamed_section("loader_arena.bpf.o", ".maps", ".mapx")
    with pytest.raises(pybpf.ObjectError) as e:
        pybpf.BPFObject.open(raw)
    assert "ARENA map" in str(e.value) or ".maps" in str(e.value)


def test_core_relocations_of_programs_not_loaded_are_not_applied():
    """As libbpf: a program with autoload off keeps its code unrelocated, so a
    CO-RE relocation of it cannot fail the object's load."""
    from pybpf.btf import kernel
    from pybpf.obj.spec import parse_object
    from pybpf.obj.relocate import Linker
    spec = parse_object(built("core_task.bpf.o"))
    fds = {m.name: 3 for m in spec.maps}
    task = next(p for p in spec.programs if p.name == "core_task")
    everything = Linker(spec, fds, [kernel.vmlinux()])
    skipped = Linker(spec, fds, [kernel.vmlinux()], not_loaded=["core_task"])
    assert task.func.shndx in everything.core_results
    assert task.func.shndx not in skipped.core_results
    assert set(skipped.core_results) == set(everything.core_results) - {task.func.shndx}
    raw = spec.elf.sections[task.func.shndx].data
    assert bytes(skipped.code[task.func.shndx]) != bytes(everything.code[task.func.shndx])
    assert bytes(skipped.code[task.func.shndx])[:8] == raw[:8]


def test_failed_load_can_be_retried_with_the_values_set_before():
    require_kernel()
    with open_obj("loader_autoload.bpf.o") as obj:
        obj.rodata["target_tgid"] = os.getpid()
        obj.programs["never_valid"].autoload = True
        with pytest.raises(pybpf.VerifierError):
            obj.load()
        assert obj.rodata["target_tgid"] == os.getpid()
        obj.programs["never_valid"].autoload = False
        obj.load()
        obj.attach()
        os.getppid()
        assert obj.bss["always_calls"] == 1


# ------------------------------------------------------------------ names not UTF-8

def _renamed(old: bytes, new: bytes) -> bytes:
    """exec.bpf.o with a name changed (hostile.renamed)."""
    return renamed(built("exec.bpf.o").read_bytes(), {old: new})


def _map_renamed(raw_name: bytes) -> bytes:
    """exec.bpf.o with its ring buffer map 'rb' renamed."""
    return _renamed(b"rb", raw_name)


@pytest.mark.parametrize("raw_name", [b"\xff\xfe", b"r\xa9"])
def test_map_names_that_are_not_utf8_parse_alike_in_elf_and_btf(raw_name):
    # ELF names were decoded with "replace", BTF names with "surrogateescape": the
    # map's BTF variable then found no ELF symbol and the object was refused
    name = raw_name.decode("utf-8", "surrogateescape")
    with pybpf.BPFObject.open(_map_renamed(raw_name)) as obj:
        assert list(obj.maps) == [name, ".rodata", ".bss"]
        assert obj.maps[name].type == uapi.BPF_MAP_TYPE_RINGBUF


def test_map_name_bytes_reach_the_kernel_unchanged():
    # the kernel's ctype takes Latin-1 letters (0xfe, 0xff) in names, as libbpf finds
    require_kernel()
    with pybpf.BPFObject.open(_map_renamed(b"\xff\xfe")) as obj:
        obj.load()
        assert obj.maps["\udcff\udcfe"].info().name == b"\xff\xfe"


def test_map_name_the_kernel_refuses_says_why():
    require_kernel()
    with pybpf.BPFObject.open(_map_renamed(b"r\xa9")) as obj:
        with pytest.warns(UserWarning, match="kernel refused the object's BTF"), \
                pytest.raises(pybpf.BPFError) as e:
            obj.load()
    assert e.value.errno == errno.EINVAL
    assert "creating map 'r\\udca9'" in str(e.value)
    assert "takes only letters, digits, '_' and '.'" in str(e.value)


def test_program_name_the_kernel_refuses_says_why():
    require_kernel()
    with pybpf.BPFObject.open(_renamed(b"handle_exec", b"handle\xa9exec")) as obj:
        assert list(obj.programs) == ["handle\udca9exec"]
        with pytest.warns(UserWarning, match="kernel refused the object's BTF"), \
                pytest.raises(pybpf.VerifierError) as e:
            obj.load()
    assert e.value.errno == errno.EINVAL
    assert str(e.value).startswith("program 'handle\\udca9exec' (SEC "
                                   "'tp/sched/sched_process_exec') refused by the kernel "
                                   "before verification: Invalid argument (the kernel takes "
                                   "only letters, digits")


def test_name_hint_only_for_names_the_kernel_may_refuse():
    assert syscall.name_hint("events.x_1") == ""
    assert syscall.name_hint("a" * 15 + "-") == ""          # past the bytes kept
    assert "letters, digits" in syscall.name_hint("my-map")
    assert "letters, digits" in syscall.name_hint("réseau")
