"""pybpf.record: a dataclass's repr, == and replace() without dataclasses, and every
record class of pybpf built on it the way replace() needs (no root needed)."""
from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil

import pytest

import pybpf
from pybpf.btf import types as T
from pybpf.btf.sanitize import Features
from pybpf.obj.elf import ElfObject, Reloc, Section, Symbol
from pybpf.obj.spec import MapSpec
from pybpf.obj.usdt import ARG_REG, ArgSpec
from pybpf.record import FrozenRecord, Record


def _sym(**changes):
    return Symbol(3, "main", 16, 8, 2, 1, 0, 4).replace(**changes)


def test_repr_names_the_fields_in_order():
    assert repr(_sym()) == ("Symbol(index=3, name='main', value=16, size=8, type=2, bind=1, "
                            "visibility=0, shndx=4)")
    sec = Section(1, ".text", 1, 6, 0, 8, b"\x95")
    assert repr(Reloc(8, _sym(), 1)) == f"Reloc(offset=8, sym={_sym()!r}, type=1)"
    # private caches are not fields
    assert repr(ElfObject("x.o", [sec], [])) == f"ElfObject(path='x.o', sections=[{sec!r}], " \
        "symbols=[], relocs={})"


def test_equality_is_same_class_and_equal_fields():
    assert _sym() == _sym() and _sym() is not _sym()
    assert _sym() != _sym(value=17)
    assert _sym() != (3, "main", 16, 8, 2, 1, 0, 4)
    assert _sym().__eq__(Section(3, "main", 16, 8, 2, 1, b"")) is NotImplemented
    a, b = ElfObject("x.o", [], []), ElfObject("x.o", [], [])
    a.section("none")                       # fills a's cache: not compared
    assert a._indexed == 0 and b._indexed == -1 and a == b


def test_mutable_records_are_unhashable():
    with pytest.raises(TypeError, match="unhashable"):
        hash(_sym())
    with pytest.raises(TypeError, match="unhashable"):
        {MapSpec("m", 1)}


def test_replace_copies_through_init():
    old = MapSpec("m", 1, key_size=4, init_slots={0: "f"})
    new = old.replace(max_entries=8)
    assert (new.name, new.type, new.key_size, new.max_entries) == ("m", 1, 4, 8)
    assert new.init_slots is old.init_slots and old.max_entries == 0
    assert type(new) is MapSpec and new == MapSpec("m", 1, 4, 0, 8, init_slots={0: "f"})
    with pytest.raises(TypeError, match="colour"):
        old.replace(colour=1)


def test_replace_starts_fresh_caches():
    """Unlike dataclasses.replace(), which passed the private caches on (a same-length
    section list then found the old sections)."""
    text, data = Section(1, ".text", 1, 6, 0, 8, b""), Section(2, ".data", 1, 3, 0, 8, b"")
    elf = ElfObject("x.o", [text, data], [])
    assert elf.section(".data") is data
    other = Section(2, ".data", 1, 3, 4, 8, b"abcd")
    assert elf.replace(sections=[text, other]).section(".data") is other


def test_default_containers_are_fresh_and_given_ones_kept():
    a, b = MapSpec("a", 1), MapSpec("b", 1)
    a.init_slots[1] = "x"
    assert b.init_slots == {}
    given: dict = {}
    assert MapSpec("c", 1, init_slots=given).init_slots is given


def test_frozen_records_are_immutable_and_hashable():
    spec = ArgSpec(ARG_REG, 8, True, reg="rdi", reg_off=112, text="-8@%rdi")
    with pytest.raises(AttributeError, match="frozen: cannot set 'size'"):
        spec.size = 4
    with pytest.raises(AttributeError, match="frozen: cannot delete 'reg'"):
        del spec.reg
    with pytest.raises(AttributeError):
        spec.other = 1
    same = ArgSpec(ARG_REG, 8, True, 0, "rdi", 112, "", 0, 0, "-8@%rdi")
    assert spec == same and hash(spec) == hash(same) and len({spec, same}) == 1
    assert spec.replace(size=4).size == 4 and spec.size == 8
    assert Features().complete() and not Features(float=False).complete()
    assert {Features(): 1}[Features()] == 1


def test_copy_and_pickle_keep_every_field():
    for rec in (_sym(), ArgSpec(ARG_REG, 4, False, reg="rax", text="4@%eax"), Features(False)):
        for dup in (copy.copy(rec), copy.deepcopy(rec), pickle.loads(pickle.dumps(rec))):
            assert dup == rec and dup is not rec


def _records():
    for info in pkgutil.walk_packages(pybpf.__path__, "pybpf."):
        importlib.import_module(info.name)
    todo, seen = [Record], []
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen and sub.__module__.startswith("pybpf."):
                seen.append(sub)
                todo.append(sub)
    return [cls for cls in seen if cls is not FrozenRecord]


def test_every_record_takes_its_fields_in_order():
    """replace() calls __init__ with the fields by name: they must be its parameters."""
    records = _records()
    assert len(records) >= 60
    bad = [cls.__qualname__ for cls in records
           if tuple(inspect.signature(cls.__init__).parameters)[1:] != cls._fields]
    assert not bad


def test_records_have_slots_but_btf_types():
    """Every record but the BTF types (copied through their __dict__) has no __dict__."""
    with_dict = sorted(cls.__qualname__ for cls in _records()
                       if any("__dict__" in vars(k) for k in cls.__mro__))
    assert with_dict == sorted(cls.__qualname__ for cls in _records()
                               if issubclass(cls, (T.Type, T.Member, T.Param, T.VarSecinfo)))
    assert not hasattr(_sym(), "__dict__")
    with pytest.raises(AttributeError):
        _sym().colour = 1


def test_a_record_without_fields():
    """The base itself (no fields): an empty repr, equal to its like, copied by replace."""
    from pybpf.record import Record

    class Empty(Record):
        __slots__ = ()
    assert repr(Empty()).endswith(".Empty()") and Empty() == Empty() and Empty() != Record()
    assert type(Empty().replace()) is Empty
