"""Externs: __kconfig values, __ksym variables (typed and untyped) and kfunc calls.

Pure tests cover the Kconfig value rules, the kernel version code, kallsyms
parsing, extern collection and the .kconfig layout (checked against libbpf's),
resolution against a fake host, relocation and the BTF rewrite for the kernel.
Kernel tests load bpf/extern_*.bpf.c, run them, and compare what the programs
saw with what user space reads from uname, the kernel config and kallsyms."""
from __future__ import annotations

import copy
import errno
import gzip
import io
import os
import re
import warnings
from typing import Dict, List, Optional

import pytest
from elftools.elf.elffile import ELFFile

import pybpf
from pybpf.obj import externs
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.asm import insn as I
from pybpf.btf import BTF
from pybpf.btf import kernel as kbtf
from pybpf.btf import types as T
from pybpf.obj.elf import STB_GLOBAL, read_elf
from pybpf.errors import BPFError, BPFPermissionError, ObjectError, VerifierError
from pybpf.obj.externs import Extern, Kcfg
from pybpf.obj.spec import parse_object
from pybpf.obj.relocate import Linker

from conftest import built, require_kernel, skip_missing_feature

KCONFIG_OBJ, KSYMS_OBJ = "extern_kconfig.bpf.o", "extern_ksyms.bpf.o"
VMLINUX = "/sys/kernel/btf/vmlinux"


def kext(kcfg: Kcfg, size: int = 4, signed: bool = False, name: str = "CONFIG_X") -> Extern:
    return Extern(name, 0, 0, False, externs.KCONFIG_SEC, kcfg=kcfg, size=size, signed=signed)


@pytest.fixture
def vmlinux() -> BTF:
    if not os.access(kbtf.vmlinux_path(), os.R_OK):
        pytest.skip(f"{kbtf.vmlinux_path()} not readable")
    return kbtf.vmlinux()


class FakeHost(externs.Host):
    """A kernel described by the test: its Kconfig, kallsyms and BTF."""

    def __init__(self, kconfig: Optional[str] = "", kallsyms: str = "",
                 version: int = 0x6122C, kernel: Optional[BTF] = None,
                 modules: Optional[Dict[str, str]] = None):
        self._kconfig, self._kallsyms, self.version = kconfig, kallsyms, version
        self.kernel = kernel
        self.modules = modules or {}        # symbol -> the (fake) module holding it
        self.kconfig_reads = 0

    def kernel_version(self) -> int:
        return self.version

    def kconfig(self) -> Optional[str]:
        self.kconfig_reads += 1
        return self._kconfig

    def kallsyms(self) -> List[str]:
        return self._kallsyms.splitlines()

    def has_bpf_cookie(self) -> bool:
        return True

    def has_syscall_wrapper(self) -> bool:
        return False

    def find(self, name, kind):
        ids = self.kernel.find(name, kind) if self.kernel is not None else []
        return (self.kernel, ids[0], self.modules.get(name, "")) if ids else None

    def module_btf_fd(self, module: str) -> int:
        return 100 + sorted(set(self.modules.values())).index(module)


SYSTEM_KCONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
CONFIG_HZ=250
CONFIG_PHYSICAL_START=0x1000000
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT=y
CONFIG_BPF_EVENTS=y
CONFIG_DEFAULT_HOSTNAME="(none)"
# CONFIG_KPROBES is not set
"""


# ====================================================================== Kconfig value rules

def test_parse_kconfig_skips_comments_and_first_line_wins():
    values = externs.parse_kconfig(SYSTEM_KCONFIG + "CONFIG_HZ=1000\nLOCALVERSION=x\n")
    assert values["CONFIG_HZ"] == "250"
    assert values["CONFIG_DEFAULT_HOSTNAME"] == '"(none)"'
    assert "CONFIG_KPROBES" not in values and "LOCALVERSION" not in values


@pytest.mark.parametrize("line, what", [("CONFIG_FOO", "no separator"),
                                        ("CONFIG_FOO=", "no value")])
def test_parse_kconfig_malformed_line(line, what):
    with pytest.raises(ObjectError, match=f"line 2 '{line}': {what}"):
        externs.parse_kconfig(f"CONFIG_A=y\n{line}\n")


@pytest.mark.parametrize("kcfg, size, value, expected", [
    (Kcfg.BOOL, 1, "y", b"\x01"), (Kcfg.BOOL, 1, "n", b"\x00"),
    (Kcfg.TRISTATE, 4, "y", (1).to_bytes(4, "little")),
    (Kcfg.TRISTATE, 4, "m", (2).to_bytes(4, "little")),
    (Kcfg.TRISTATE, 4, "n", bytes(4)),
    (Kcfg.CHAR, 1, "y", b"y"), (Kcfg.CHAR, 1, "m", b"m"), (Kcfg.CHAR, 1, "65", b"A"),
    (Kcfg.INT, 4, "250", (250).to_bytes(4, "little")),
    (Kcfg.INT, 8, "0xdead000000000000", (0xdead000000000000).to_bytes(8, "little")),
    (Kcfg.INT, 4, "017", (15).to_bytes(4, "little")),
    (Kcfg.INT, 2, "0", bytes(2)),
    (Kcfg.INT, 8, "18446744073709551615", b"\xff" * 8),
])
def test_kconfig_values(kcfg, size, value, expected):
    assert externs.encode_kconfig_value(kext(kcfg, size), value) == expected


def test_negative_numbers_fit_signed_integers_only():
    assert externs.encode_kconfig_value(kext(Kcfg.INT, 4, signed=True), "-5") == \
        (-5).to_bytes(4, "little", signed=True)
    assert externs.encode_kconfig_value(kext(Kcfg.INT, 2, signed=True), "-32768") == \
        b"\x00\x80"
    with pytest.raises(ObjectError, match="'CONFIG_X': value 18446744073709551611 "
                                          "doesn't fit in 4 bytes"):
        externs.encode_kconfig_value(kext(Kcfg.INT, 4), "-5")
    with pytest.raises(ObjectError, match="doesn't fit in 2 bytes"):
        externs.encode_kconfig_value(kext(Kcfg.INT, 2, signed=True), "32768")


def test_strings_into_char_arrays():
    ext = kext(Kcfg.CHAR_ARRAY, 8)
    assert externs.encode_kconfig_value(ext, '"(none)"') == b"(none)\0\0"
    assert externs.encode_kconfig_value(ext, '""') == bytes(8)
    with pytest.warns(UserWarning, match="truncated to 7 bytes"):
        assert externs.encode_kconfig_value(ext, '"-Wimplicit"') == b"-Wimpli\0"


@pytest.mark.parametrize("kcfg, size, value, message", [
    (Kcfg.BOOL, 1, "m", "value 'm' implies a tristate or char type"),
    (Kcfg.INT, 4, "y", "value 'y' implies a bool, tristate or char type"),
    (Kcfg.CHAR_ARRAY, 8, "y", "value 'y' implies a bool, tristate or char type"),
    (Kcfg.BOOL, 1, "1", "value '1' implies an integer type, not bool"),
    (Kcfg.TRISTATE, 4, "2", "implies an integer type, not tristate"),
    (Kcfg.CHAR_ARRAY, 8, "12", "implies an integer type, not char array"),
    (Kcfg.INT, 4, '"250"', "implies a char array"),
    (Kcfg.CHAR_ARRAY, 8, '"open', "invalid string value"),
    (Kcfg.CHAR_ARRAY, 8, '"', "invalid string value"),
    (Kcfg.INT, 4, "12abc", "isn't a valid integer"),
    (Kcfg.INT, 4, "250 ", "isn't a valid integer"),
    (Kcfg.INT, 4, "0x", "isn't a valid integer"),
    (Kcfg.INT, 4, "08", "isn't a valid integer"),
    (Kcfg.INT, 8, "18446744073709551616", "does not fit in 64 bits"),
    (Kcfg.INT, 1 * 2, "65536", "doesn't fit in 2 bytes"),
    (Kcfg.CHAR, 1, "256", "doesn't fit in 1 bytes"),
])
def test_kconfig_value_errors_name_the_extern(kcfg, size, value, message):
    with pytest.raises(ObjectError) as e:
        externs.encode_kconfig_value(kext(kcfg, size), value)
    assert "extern (kcfg) 'CONFIG_X'" in str(e.value) and message in str(e.value)
    assert e.value.section == ".kconfig"


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("0x1F", 31), ("0X1f", 31), ("0755", 0o755), (" 7", 7),
    ("+3", 3), ("-1", (1 << 64) - 1), ("18446744073709551615", (1 << 64) - 1)])
def test_parse_u64_reads_like_strtoull(text, value):
    assert externs.parse_u64(text) == value


def test_bool_numbers_for_virtual_externs():
    ext = kext(Kcfg.BOOL, 1, name="LINUX_HAS_BPF_COOKIE")
    assert externs.encode_number(ext, 1) == b"\x01"
    with pytest.raises(ObjectError, match="isn't boolean compatible"):
        externs.encode_number(ext, 2)
    with pytest.raises(ObjectError, match="implies an integer, char or bool type"):
        externs.encode_number(kext(Kcfg.TRISTATE), 1)


# ====================================================================== kernel version, kallsyms

@pytest.mark.parametrize("release, version, signature, code", [
    ("6.18.44-fc-v769", "#1 SMP PREEMPT_DYNAMIC @0", "", 0x6122C),
    ("5.4.300", "", "", (5 << 16) + (4 << 8) + 255),            # patch level saturates
    ("4.19.0-22-amd64", "#1 SMP Debian 4.19.260-1 (2022-09-29)", "", 0x413FF),
    ("6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "",
     (6 << 16) + (1 << 8) + 76),
    ("5.15.0-91-generic", "#101-Ubuntu SMP", "Ubuntu 5.15.0-91.101-generic 5.15.131\n",
     (5 << 16) + (15 << 8) + 131),
    ("6.18", "", "", 0),
    ("weird", "", "", 0),
])
def test_kernel_version_code(release, version, signature, code):
    assert externs.kernel_version_code(release, version, signature) == code


KALLSYMS = """\
ffffffff81000000 T _text
ffffffff81000000 T _stext
ffffffff814f1030 T __x64_sys_bpf
ffffffffc0a01000 t helper_fn\t[some_module]
ffffffff82000010 d counter.llvm.123456
ffffffff82000020 d twice
ffffffff82000020 d twice
"""


def test_kallsyms_addresses():
    found = externs.kallsyms_addresses(KALLSYMS.splitlines(),
                                       ["_text", "helper_fn", "counter", "twice", "absent"])
    assert found == {"_text": 0xffffffff81000000, "helper_fn": 0xffffffffc0a01000,
                     "counter": 0xffffffff82000010, "twice": 0xffffffff82000020}


def test_kallsyms_ambiguous_symbol():
    lines = KALLSYMS.splitlines() + ["ffffffff82000040 d twice"]
    with pytest.raises(ObjectError, match="'twice': resolution is ambiguous: "
                                          "0xffffffff82000020 or 0xffffffff82000040"):
        externs.kallsyms_addresses(lines, ["twice"])


# ====================================================================== collection

# libbpf's layout of bpf/extern_kconfig.bpf.c (bpftool -d prints the same offsets):
# descending alignment, then ascending size, then name.
KCONFIG_LAYOUT = [
    ("CONFIG_PHYSICAL_START", 0, 8, Kcfg.INT), ("CONFIG_BPF_SYSCALL", 8, 4, Kcfg.TRISTATE),
    ("CONFIG_HZ", 12, 4, Kcfg.INT), ("CONFIG_PYBPF_NO_SUCH_OPTION", 16, 4, Kcfg.INT),
    ("LINUX_KERNEL_VERSION", 20, 4, Kcfg.INT), ("LINUX_PYBPF_UNKNOWN", 24, 4, Kcfg.INT),
    ("CONFIG_BPF_EVENTS", 28, 1, Kcfg.CHAR), ("CONFIG_BPF_JIT", 29, 1, Kcfg.BOOL),
    ("CONFIG_KPROBES", 30, 1, Kcfg.BOOL), ("LINUX_HAS_BPF_COOKIE", 31, 1, Kcfg.BOOL),
    ("LINUX_HAS_SYSCALL_WRAPPER", 32, 1, Kcfg.BOOL),
    ("CONFIG_DEFAULT_HOSTNAME", 33, 16, Kcfg.CHAR_ARRAY),
]


def test_kconfig_externs_are_laid_out_like_libbpf():
    spec = parse_object(built(KCONFIG_OBJ))
    got = [(e.name, e.offset, e.size, e.kcfg) for e in spec.externs]
    assert got == KCONFIG_LAYOUT
    assert [e.index for e in spec.externs] == list(range(len(KCONFIG_LAYOUT)))
    weak = {e.name for e in spec.externs if e.weak}
    assert weak == {"CONFIG_PHYSICAL_START", "CONFIG_BPF_EVENTS", "CONFIG_DEFAULT_HOSTNAME",
                    "CONFIG_KPROBES", "CONFIG_PYBPF_NO_SUCH_OPTION", "LINUX_PYBPF_UNKNOWN"}
    assert spec.externs.kconfig_size == 49
    datasec = spec.btf[spec.externs.kconfig_btf_id]
    assert datasec.name == ".kconfig" and datasec.size == 49
    assert [(spec.btf[v.type].name, v.offset, v.size) for v in datasec.vars] == \
        [(name, off, size) for name, off, size, _ in KCONFIG_LAYOUT]


def test_kconfig_map_is_read_only_global_data():
    obj = pybpf.BPFObject.open(built(KCONFIG_OBJ))
    m = obj.maps[".kconfig"]
    assert m.kernel_name == "extern_.kconfig"               # libbpf's name for it
    assert (m.type, m.key_size, m.value_size, m.max_entries) == \
        (uapi.BPF_MAP_TYPE_ARRAY, 4, 49, 1)
    assert m.flags == uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_MMAPABLE
    assert m.btf_value_type_id == obj.spec.externs.kconfig_btf_id
    kconfig = obj.sections[".kconfig"]
    assert set(kconfig) == {name for name, *_ in KCONFIG_LAYOUT}
    assert kconfig["CONFIG_HZ"] == 0 and kconfig["CONFIG_DEFAULT_HOSTNAME"] == b""


def test_ksyms_externs():
    spec = parse_object(built(KSYMS_OBJ))
    btf = spec.btf
    got = {e.name: (e.is_func, bool(e.type_id), e.weak) for e in spec.externs}
    assert got == {
        "runqueues": (False, True, False), "pybpf_no_such_var": (False, True, True),
        "_text": (False, False, False), "pybpf_no_such_symbol": (False, False, True),
        "bpf_task_acquire": (True, True, False), "bpf_task_release": (True, True, False),
        "bpf_rcu_read_lock": (True, True, True), "bpf_pybpf_no_such_kfunc": (True, True, True),
    }
    assert [e.name for e in spec.externs] == sorted(got)     # ksyms sort by name
    by_name = {e.name: e for e in spec.externs}
    assert btf.type_name(by_name["runqueues"].type_id) == "struct rq"
    assert isinstance(btf[by_name["bpf_task_acquire"].type_id], T.FuncProto)
    assert not spec.externs.kconfig_size and ".kconfig" not in {m.name for m in spec.maps}


def elf_and_btf(name: str):
    elf = read_elf(str(built(name)))
    return elf, BTF.parse(elf.section(".BTF").data)


def var_id(btf: BTF, name: str) -> int:
    return next(i for i in btf.find(name) if btf.kind_of(i) in
                (uapi.BTF_KIND_VAR, uapi.BTF_KIND_FUNC))


def datasec(btf: BTF, name: str) -> T.Datasec:
    return btf[btf.find(name, uapi.BTF_KIND_DATASEC)[0]]


def break_unsupported_type(btf: BTF) -> None:
    btf[var_id(btf, "CONFIG_HZ")].type = btf.find("rq", uapi.BTF_KIND_STRUCT)[0] \
        if btf.find("rq", uapi.BTF_KIND_STRUCT) else btf.add(T.Struct("s", 8, []))


def break_linkage(btf: BTF) -> None:
    btf[var_id(btf, "CONFIG_HZ")].linkage = uapi.BTF_VAR_GLOBAL_ALLOCATED


def break_no_datasec(btf: BTF) -> None:
    sec = datasec(btf, ".kconfig")
    sec.vars = [v for v in sec.vars if btf[v.type].name != "CONFIG_HZ"]


def break_stray_entry(btf: BTF) -> None:
    datasec(btf, ".kconfig").vars.append(
        T.VarSecinfo(btf.add(T.Var("CONFIG_STRAY", 1, uapi.BTF_VAR_GLOBAL_EXTERN)), 0, 4))


def break_other_datasec(btf: BTF) -> None:
    datasec(btf, ".kconfig").name = ".data.externs"


def break_no_btf_var(btf: BTF) -> None:
    btf[var_id(btf, "CONFIG_HZ")] = T.Int("CONFIG_HZ", 4, 0, 0, 32)


@pytest.mark.parametrize("obj, breaker, message", [
    (KCONFIG_OBJ, break_unsupported_type, "extern (kcfg) 'CONFIG_HZ': type struct"),
    (KCONFIG_OBJ, break_linkage, "extern 'CONFIG_HZ': its BTF VAR is not declared extern"),
    (KCONFIG_OBJ, break_no_datasec, "extern 'CONFIG_HZ': no DATASEC holds its BTF type"),
    (KCONFIG_OBJ, break_stray_entry, ".kconfig entry 'CONFIG_STRAY' (VAR) has no extern"),
    (KCONFIG_OBJ, break_other_datasec, "is in DATASEC '.data.externs': only .kconfig"),
    (KCONFIG_OBJ, break_no_btf_var, "extern 'CONFIG_HZ': no BTF VAR or FUNC of that name"),
])
def test_malformed_extern_btf(obj, breaker, message):
    elf, btf = elf_and_btf(obj)
    breaker(btf)
    with pytest.raises(ObjectError) as e:
        externs.collect(elf, btf)
    assert message in str(e.value)


def test_function_declared_in_kconfig():
    elf, btf = elf_and_btf(KSYMS_OBJ)
    ksyms = datasec(btf, ".ksyms")
    func = var_id(btf, "bpf_pybpf_no_such_kfunc")
    btf.add(T.Datasec(".kconfig", 0, [v for v in ksyms.vars if v.type == func]))
    ksyms.vars = [v for v in ksyms.vars if v.type != func]
    with pytest.raises(ObjectError, match=r"extern \(kcfg\) 'bpf_pybpf_no_such_kfunc': a "
                                          r"function cannot be declared in \.kconfig"):
        externs.collect(elf, btf)


def renamed_section(data: bytes, old: str, new: bytes) -> bytes:
    """The object with section ``old`` renamed (``new`` of the same length) in place."""
    elf = ELFFile(io.BytesIO(data))
    name_at = elf.get_section(elf["e_shstrndx"])["sh_offset"] + \
        elf.get_section_by_name(old)["sh_name"]
    return data[:name_at] + new + data[name_at + len(new):]


def test_extern_without_btf_is_an_object_error():
    data = renamed_section(built(KSYMS_OBJ).read_bytes(), ".BTF", b".XTF")
    with pytest.raises(ObjectError, match="extern '.*' needs BTF to be resolved: build "
                                          "with clang -g.*section .symtab"):
        pybpf.BPFObject.open(data, name="extern_ksyms")


# ====================================================================== resolution (fake host)

def test_resolve_kconfig_from_the_system_config():
    spec = parse_object(built(KCONFIG_OBJ))
    host = FakeHost(SYSTEM_KCONFIG)
    res = externs.resolve(spec.externs, spec.btf, host)
    values = {e.name: res.kconfig[e.offset:e.offset + e.size] for e in spec.externs}
    assert values["CONFIG_HZ"] == (250).to_bytes(4, "little")
    assert values["CONFIG_PHYSICAL_START"] == (0x1000000).to_bytes(8, "little")
    assert values["CONFIG_BPF_SYSCALL"] == (1).to_bytes(4, "little")
    assert values["CONFIG_BPF_JIT"] == b"\1" and values["CONFIG_BPF_EVENTS"] == b"y"
    assert values["CONFIG_DEFAULT_HOSTNAME"] == b"(none)".ljust(16, b"\0")
    assert values["LINUX_KERNEL_VERSION"] == (0x6122C).to_bytes(4, "little")
    assert values["LINUX_HAS_BPF_COOKIE"] == b"\1"
    assert values["LINUX_HAS_SYSCALL_WRAPPER"] == b"\0"
    for weak_missing in ("CONFIG_KPROBES", "CONFIG_PYBPF_NO_SUCH_OPTION", "LINUX_PYBPF_UNKNOWN"):
        assert not any(values[weak_missing])
    assert not res.ksyms and not res.fd_array


def test_extra_kconfig_comes_first_and_spares_the_system_read():
    spec = parse_object(built(KCONFIG_OBJ))
    every = SYSTEM_KCONFIG.replace("CONFIG_HZ=250", "CONFIG_HZ=1000") + \
        "CONFIG_PYBPF_NO_SUCH_OPTION=-7\nCONFIG_KPROBES=n\n"
    host = FakeHost(None)
    res = externs.resolve(spec.externs, spec.btf, host, every)
    assert host.kconfig_reads == 0
    hz = next(e for e in spec.externs if e.name == "CONFIG_HZ")
    assert res.kconfig[hz.offset:hz.offset + 4] == (1000).to_bytes(4, "little")
    host = FakeHost(SYSTEM_KCONFIG)
    res = externs.resolve(spec.externs, spec.btf, host, "CONFIG_HZ=100\n")
    assert host.kconfig_reads == 1        # the rest came from the system's config
    assert res.kconfig[hz.offset:hz.offset + 4] == (100).to_bytes(4, "little")


def test_strong_kconfig_extern_missing():
    spec = parse_object(built(KCONFIG_OBJ))
    with pytest.raises(ObjectError, match=r"extern \(kcfg\) 'CONFIG_HZ': not found in the "
                                          r"kernel's Kconfig \(declare it __weak"):
        externs.resolve(spec.externs, spec.btf,
                        FakeHost(SYSTEM_KCONFIG.replace("CONFIG_HZ=250\n", "")))


def test_no_kernel_config_at_all():
    spec = parse_object(built(KCONFIG_OBJ))
    with pytest.raises(ObjectError, match="no kernel config to resolve CONFIG_PHYSICAL_START, "
                                          "CONFIG_BPF_SYSCALL, CONFIG_HZ"):
        externs.resolve(spec.externs, spec.btf, FakeHost(None))


def test_bad_kernel_version_and_unknown_strong_virtual():
    spec = parse_object(built(KCONFIG_OBJ))
    with pytest.raises(ObjectError, match="'LINUX_KERNEL_VERSION': cannot tell the kernel "
                                          "version"):
        externs.resolve(spec.externs, spec.btf, FakeHost(SYSTEM_KCONFIG, version=0))
    unknown = next(e for e in spec.externs if e.name == "LINUX_PYBPF_UNKNOWN")
    strong = externs.Externs([dataclass_replace(unknown, weak=False)], 4)
    with pytest.raises(ObjectError, match="'LINUX_PYBPF_UNKNOWN': unrecognized virtual extern"):
        externs.resolve(strong, spec.btf, FakeHost(SYSTEM_KCONFIG))
    other = externs.Externs([dataclass_replace(unknown, name="MY_SETTING", weak=True)], 4)
    with pytest.raises(ObjectError, match="'MY_SETTING': unrecognized virtual extern"):
        externs.resolve(other, spec.btf, FakeHost(SYSTEM_KCONFIG))


def dataclass_replace(ext: Extern, **changes) -> Extern:
    new = copy.copy(ext)
    for k, v in changes.items():
        setattr(new, k, v)
    return new


def ksyms_host(vmlinux: BTF, **kw) -> FakeHost:
    return FakeHost(kallsyms="ffffffff81000000 T _text\n", kernel=vmlinux, **kw)


def vm_id(btf: BTF, name: str, kind: int) -> int:
    return btf.find(name, kind)[0]


def test_resolve_ksyms(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    res = externs.resolve(spec.externs, spec.btf, ksyms_host(vmlinux))
    assert set(res.ksyms) == {"runqueues", "_text", "bpf_task_acquire", "bpf_task_release",
                              "bpf_rcu_read_lock"}      # the __weak missing ones stay out
    assert res.ksyms["_text"].addr == 0xffffffff81000000
    assert res.ksyms["runqueues"].btf_id == vm_id(vmlinux, "runqueues", uapi.BTF_KIND_VAR)
    acquire = res.ksyms["bpf_task_acquire"]
    assert acquire.btf_id == vm_id(vmlinux, "bpf_task_acquire", uapi.BTF_KIND_FUNC)
    assert (acquire.btf_obj_fd, acquire.fd_index) == (0, 0) and res.fd_array == []


def test_module_ksyms_go_through_fd_array(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    host = ksyms_host(vmlinux, modules={"bpf_task_release": "mod_a", "runqueues": "mod_b",
                                        "bpf_rcu_read_lock": "mod_a"})
    res = externs.resolve(spec.externs, spec.btf, host)
    assert res.fd_array == [0, 100]          # index 0 stands for vmlinux
    release, rcu = res.ksyms["bpf_task_release"], res.ksyms["bpf_rcu_read_lock"]
    assert (release.btf_obj_fd, release.fd_index) == (100, 1) == (rcu.btf_obj_fd, rcu.fd_index)
    assert (res.ksyms["runqueues"].btf_obj_fd, res.ksyms["runqueues"].fd_index) == (101, 0)


def test_strong_ksyms_missing(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    with pytest.raises(ObjectError, match=r"extern \(ksym\) '_text': not found in "
                                          "/proc/kallsyms"):
        externs.resolve(spec.externs, spec.btf, FakeHost(kernel=vmlinux))
    empty = BTF()
    with pytest.raises(ObjectError, match=r"extern \(func ksym\) 'bpf_task_acquire': not "
                                          "found in kernel BTF"):
        externs.resolve(spec.externs, spec.btf, ksyms_host(empty))


def test_incompatible_typed_ksym(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    host = ksyms_host(vmlinux)
    real_find = host.find
    host.find = lambda name, kind: real_find("bpf_prog_active" if name == "runqueues"
                                             else name, kind)
    with pytest.raises(ObjectError, match=r"extern \(ksym\) 'runqueues': incompatible types: "
                                          r"declared struct rq \[\d+\], but vmlinux has int"):
        externs.resolve(spec.externs, spec.btf, host)


def test_incompatible_kfunc(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    host = ksyms_host(vmlinux)
    real_find = host.find
    swap = {"bpf_task_acquire": "bpf_rcu_read_lock", "bpf_rcu_read_lock": "bpf_task_acquire"}
    host.find = lambda name, kind: real_find(swap.get(name, name), kind)
    with pytest.raises(ObjectError, match=r"extern \(func ksym\) 'bpf_task_acquire': declared "
                                          r"struct task_struct \*\(struct task_struct \*\), "
                                          r"incompatible with vmlinux's void \(void\)"):
        externs.resolve(spec.externs, spec.btf, host)
    # a __weak kfunc with the wrong prototype just stays unresolved, as in libbpf
    acquire = next(e for e in spec.externs if e.name == "bpf_task_acquire")
    rcu = next(e for e in spec.externs if e.name == "bpf_rcu_read_lock")
    res = externs.resolve(externs.Externs([dataclass_replace(acquire, weak=True), rcu]),
                          spec.btf, host)
    assert not res.ksyms


def test_kallsyms_without_addresses_needs_root(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    host = FakeHost(kallsyms="0000000000000000 T _text\n", kernel=vmlinux)
    with pytest.raises(BPFPermissionError, match="'_text': /proc/kallsyms shows address 0"):
        externs.resolve(spec.externs, spec.btf, host)


# ====================================================================== relocation

def relocated(name: str, res: Optional[externs.Resolution], fds: Dict[str, int]):
    """Linker over the object; {extern name: [(code, slot)]} of its extern relocations."""
    spec = parse_object(built(name))
    linker = Linker(spec, fds, None, res)
    sites: Dict[str, list] = {}
    for shndx, rels in spec.elf.relocs.items():
        for rel in rels:
            if rel.sym.shndx == 0:
                sites.setdefault(rel.sym.name, []).append((linker.code[shndx],
                                                           rel.offset // I.INSN_SIZE))
    return spec, sites


def test_relocate_kconfig_loads_the_map_value():
    spec = parse_object(built(KCONFIG_OBJ))
    res = externs.resolve(spec.externs, spec.btf, FakeHost(SYSTEM_KCONFIG))
    spec, sites = relocated(KCONFIG_OBJ, res, {".kconfig": 77, ".bss": 5})
    offsets = {e.name: e.offset for e in spec.externs}
    assert set(sites) == set(offsets)
    for name, places in sites.items():
        for code, slot in places:
            ins = I.decode(code, slot)
            assert (ins.code, ins.src, ins.imm) == (I.LD_IMM64, uapi.BPF_PSEUDO_MAP_VALUE, 77)
            assert I.decode(code, slot + 1).imm == offsets[name]


def test_relocate_ksyms_and_kfuncs(vmlinux):
    spec = parse_object(built(KSYMS_OBJ))
    host = ksyms_host(vmlinux, modules={"bpf_task_release": "mod_a"})
    res = externs.resolve(spec.externs, spec.btf, host)
    spec, sites = relocated(KSYMS_OBJ, res, {".bss": 5, ".data": 6})
    index = {e.name: e.index for e in spec.externs}

    def one(name):
        (code, slot), = sites[name]
        return code, slot, I.decode(code, slot)

    code, slot, ins = one("runqueues")
    assert (ins.src, ins.imm, I.decode(code, slot + 1).imm) == \
        (uapi.BPF_PSEUDO_BTF_ID, vm_id(vmlinux, "runqueues", uapi.BTF_KIND_VAR), 0)
    code, slot, ins = one("_text")
    assert ins.src == 0 and I.imm64(code, slot) == 0xffffffff81000000
    for missing in ("pybpf_no_such_symbol", "pybpf_no_such_var"):
        code, slot, ins = one(missing)
        assert ins.src == 0 and I.imm64(code, slot) == 0
    code, slot, ins = one("bpf_rcu_read_lock")               # bpf_ksym_exists(kfunc)
    assert (ins.code, ins.src, ins.imm) == \
        (I.LD_IMM64, uapi.BPF_PSEUDO_BTF_ID, vm_id(vmlinux, "bpf_rcu_read_lock",
                                                  uapi.BTF_KIND_FUNC))
    code, slot, ins = one("bpf_task_acquire")
    assert (ins.code, ins.src, ins.off, ins.imm) == \
        (I.CALL, uapi.BPF_PSEUDO_KFUNC_CALL, 0,
         vm_id(vmlinux, "bpf_task_acquire", uapi.BTF_KIND_FUNC))
    code, slot, ins = one("bpf_task_release")                # in a "module": fd_array[1]
    assert (ins.src, ins.off) == (uapi.BPF_PSEUDO_KFUNC_CALL, 1) and res.fd_array == [0, 100]
    calls = [I.decode(code, s) for code, s in sites["bpf_pybpf_no_such_kfunc"]]
    (poisoned,) = [c for c in calls if c.code == I.CALL]
    assert poisoned == I.Insn(I.CALL, 0, 0, 0,
                              externs.POISON_KFUNC_BASE + index["bpf_pybpf_no_such_kfunc"])
    (guard,) = [c for c in calls if c.code == I.LD_IMM64]
    assert guard.src == 0 and guard.imm == 0
    kfuncs = next(p for p in spec.programs if p.name == "kfuncs")
    linked = Linker(spec, {}, None, res).link(kfuncs)
    assert [func.name for func, _ in linked.placed] == ["kfuncs"]     # no bogus subprogram


def test_relocation_without_resolution():
    with pytest.raises(ObjectError, match="extern '.*' is not resolved"):
        relocated(KSYMS_OBJ, None, {})


def test_relocation_mismatches():
    spec = parse_object(built(KSYMS_OBJ))
    res = externs.Resolution()
    rel = next(r for rels in spec.elf.relocs.values() for r in rels
               if r.sym.name == "_text")
    code = bytearray(I.Insn(I.CALL, 0, 1, 0, -1).encode())
    with pytest.raises(ObjectError, match="call to extern '_text', which is not a kfunc"):
        externs.relocate(code, 0, dataclass_replace(rel, type=10), spec.externs, res, 0, "s")
    code = bytearray(I.Insn(I.EXIT, 0, 0, 0, 0).encode() * 2)
    with pytest.raises(ObjectError, match="against extern '_text' on instruction 0x95"):
        externs.relocate(code, 0, rel, spec.externs, res, 0, "s")
    stray = dataclass_replace(rel, sym=dataclass_replace(rel.sym, index=9999, name="zz"))
    with pytest.raises(ObjectError, match="undefined symbol 'zz', which is not a "
                                          "__kconfig/__ksym extern"):
        externs.relocate(code, 0, stray, spec.externs, res, 0, "s")


def test_verifier_notes():
    spec = parse_object(built(KSYMS_OBJ))
    index = next(e.index for e in spec.externs if e.name == "bpf_pybpf_no_such_kfunc")
    log = f"35: (85) call unknown#{externs.POISON_KFUNC_BASE + index}\n" \
          f"invalid func unknown#{externs.POISON_KFUNC_BASE + index}\n"
    assert "kfunc 'bpf_pybpf_no_such_kfunc' is called but does not exist" in \
        externs.verifier_note(log, spec.externs)
    log = "ldimm64 failed to find the address for kernel symbol 'runqueues'.\n"
    assert "CONFIG_KALLSYMS_ALL" in externs.verifier_note(log, spec.externs)
    assert externs.verifier_note("R1 invalid mem access 'scalar'\n", spec.externs) is None


# ====================================================================== BTF for the kernel

def test_btf_for_kernel_rewrites_externs_in_a_copy():
    spec = parse_object(built(KSYMS_OBJ))
    before = spec.btf.encode()
    out = externs.btf_for_kernel(spec.btf)
    assert spec.btf.encode() == before                  # the object's BTF is untouched
    sec = datasec(out, ".ksyms")
    assert [(v.offset, v.size) for v in sec.vars] == [(4 * i, 4) for i in range(len(sec.vars))]
    assert sec.size == 4 * len(sec.vars)
    for vsi in sec.vars:
        var = out[vsi.type]
        assert isinstance(var, T.Var) and var.linkage == uapi.BTF_VAR_GLOBAL_ALLOCATED
        assert out.size_of(var.type) == 4
    assert any(out[v.type].name == externs.DUMMY_KSYM for v in sec.vars)
    for name in ("bpf_task_acquire", "bpf_task_release", "bpf_pybpf_no_such_kfunc"):
        func = out[var_id(out, name)]
        assert func.linkage == uapi.BTF_FUNC_GLOBAL
        assert all(p.name for p in out[func.type].params)
    kspec = parse_object(built(KCONFIG_OBJ))
    kout = externs.btf_for_kernel(kspec.btf)
    assert all(kout[v.type].linkage == uapi.BTF_VAR_GLOBAL_ALLOCATED
               for v in datasec(kout, ".kconfig").vars)
    BTF.parse(out.encode(), validate=True)
    plain = parse_object(built("loader_subprogs.bpf.o")).btf
    assert externs.btf_for_kernel(plain) is plain


@pytest.mark.parametrize("name", [KCONFIG_OBJ, KSYMS_OBJ])
def test_kernel_refuses_extern_btf_that_btf_for_kernel_fixes(kernel, name):
    btf = parse_object(built(name)).btf
    with pytest.raises(VerifierError):
        syscall.btf_load(btf.encode()).close()
    syscall.btf_load(externs.btf_for_kernel(btf).encode()).close()


# ====================================================================== against the kernel

def system_kconfig() -> Dict[str, str]:
    for path in (f"/boot/config-{os.uname().release}", "/proc/config.gz"):
        if os.path.exists(path):
            with open(path, "rb") as f:
                raw = f.read()
            text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
            return dict(line.split("=", 1) for line in text.splitlines()
                        if line.startswith("CONFIG_"))
    skip_missing_feature("CONFIG_IKCONFIG_PROC: no /proc/config.gz nor /boot/config-*")
    return {}


def user_space_kernel_version() -> int:
    uts = os.uname()
    text = uts.release
    if os.path.exists("/proc/version_signature"):
        with open("/proc/version_signature") as f:
            text = f.read().split()[2]
    elif "Debian " in uts.version:
        text = uts.version.split("Debian ", 1)[1]
    a, b, c = map(int, re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())
    return (a << 16) + (b << 8) + min(c, 255)


def kallsyms() -> Dict[str, int]:
    with open("/proc/kallsyms") as f:
        return {p[2]: int(p[0], 16) for p in (line.split() for line in f)}


@pytest.fixture
def load_obj():
    require_kernel()
    objs = []

    def load(name: str, data: Optional[bytes] = None, **configure) -> pybpf.BPFObject:
        obj = pybpf.BPFObject.open(data if data is not None else built(name), name=name)
        objs.append(obj)
        for prog, autoload in configure.pop("autoload", {}).items():
            obj.programs[prog].autoload = autoload
        for attr, value in configure.items():
            setattr(obj, attr, value)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # e.g. the kernel refusing our BTF
            obj.load()
        return obj

    yield load
    for obj in objs:
        obj.close()


def test_kconfig_externs_in_the_kernel(load_obj):
    cfg = system_kconfig()
    obj = load_obj(KCONFIG_OBJ)
    syscall.prog_test_run(obj.programs["read_kconfig"].fd, repeat=0)
    bss = obj.bss
    assert bss["kernel_version"] == user_space_kernel_version()
    assert bss["hz"] == int(cfg["CONFIG_HZ"])
    assert bss["physical_start"] == int(cfg.get("CONFIG_PHYSICAL_START", "0"), 0)
    assert bss["bpf_syscall"] == {"y": 1, "m": 2}[cfg["CONFIG_BPF_SYSCALL"]]
    assert bss["bpf_jit"] == (cfg.get("CONFIG_BPF_JIT") == "y")
    assert bss["bpf_events"] == ord(cfg.get("CONFIG_BPF_EVENTS", "\0")[0])
    assert bss["hostname"] == cfg.get("CONFIG_DEFAULT_HOSTNAME", '""').strip('"').encode()[:15]
    assert bss["kprobes"] == (cfg.get("CONFIG_KPROBES") == "y")
    assert bss["no_such_option"] == 0 and bss["unknown_virtual"] == 0
    wrappers = [n for n in kallsyms() if re.fullmatch(r"__[a-z0-9]+_sys_bpf", n)]
    assert bss["has_syscall_wrapper"] == bool(wrappers)
    assert bss["has_bpf_cookie"] == (tuple(map(int, os.uname().release.split(".")[:2]))
                                     >= (5, 15))
    kconfig = obj.sections[".kconfig"]                  # the map, read through its mmap
    assert kconfig["CONFIG_HZ"] == bss["hz"]
    assert kconfig["LINUX_KERNEL_VERSION"] == bss["kernel_version"]
    assert kconfig["CONFIG_DEFAULT_HOSTNAME"] == bss["hostname"]


def test_kconfig_map_is_frozen_and_read_only(load_obj):
    obj = load_obj(KCONFIG_OBJ)
    m = obj.maps[".kconfig"]
    info = syscall.obj_info(m.fd, uapi.bpf_map_info)
    assert info.name == b"extern_.kconfig"
    assert info.map_flags == uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_MMAPABLE
    assert info.btf_id and info.btf_value_type_id == obj.spec.externs.kconfig_btf_id
    with pytest.raises(BPFError, match="read-only"):
        obj.sections[".kconfig"]["CONFIG_HZ"] = 1
    with pytest.raises(BPFError) as e:
        syscall.map_update(m.fd, bytes(4), bytes(m.value_size))
    assert e.value.errno == errno.EPERM                 # frozen


def test_extra_kconfig_overrides_the_system(load_obj):
    obj = load_obj(KCONFIG_OBJ, kconfig="CONFIG_HZ=1234\nCONFIG_PYBPF_NO_SUCH_OPTION=0x10\n")
    syscall.prog_test_run(obj.programs["read_kconfig"].fd, repeat=0)
    assert (obj.bss["hz"], obj.bss["no_such_option"]) == (1234, 16)
    assert obj.bss["bpf_jit"] == (system_kconfig().get("CONFIG_BPF_JIT") == "y")


def with_strong_symbol(name: str, symbol: str) -> bytes:
    """The object with __weak extern ``symbol`` made strong (STB_GLOBAL)."""
    data = bytearray(built(name).read_bytes())
    symtab = ELFFile(io.BytesIO(bytes(data))).get_section_by_name(".symtab")
    index = next(i for i, s in enumerate(symtab.iter_symbols()) if s.name == symbol)
    at = symtab["sh_offset"] + index * symtab["sh_entsize"] + 4      # st_info
    data[at] = (STB_GLOBAL << 4) | (data[at] & 0xF)
    return bytes(data)


@pytest.mark.parametrize("name, symbol, message", [
    (KCONFIG_OBJ, "CONFIG_PYBPF_NO_SUCH_OPTION",
     r"extern \(kcfg\) 'CONFIG_PYBPF_NO_SUCH_OPTION': not found in the kernel's Kconfig"),
    (KSYMS_OBJ, "pybpf_no_such_symbol",
     r"extern \(ksym\) 'pybpf_no_such_symbol': not found in /proc/kallsyms"),
    (KSYMS_OBJ, "bpf_pybpf_no_such_kfunc",
     r"extern \(func ksym\) 'bpf_pybpf_no_such_kfunc': not found in kernel BTF"),
])
def test_strong_extern_missing_fails_the_load(load_obj, name, symbol, message):
    with pytest.raises(ObjectError, match=message):
        load_obj(name, with_strong_symbol(name, symbol))


def test_untyped_ksyms(load_obj):
    obj = load_obj(KSYMS_OBJ, autoload={"typed_ksym": False, "kfuncs": False})
    syscall.prog_test_run(obj.programs["untyped_ksym"].fd, repeat=0)
    assert obj.bss["text_addr"] == kallsyms()["_text"] != 0
    assert obj.data["missing_symbol_addr"] == 0
    assert obj.data["missing_var_exists"] == 0


def test_kfunc_calls_and_bpf_ksym_exists(load_obj):
    obj = load_obj(KSYMS_OBJ, autoload={"typed_ksym": False, "untyped_ksym": False})
    obj.bss["target_pid"] = os.getpid()
    link = obj.programs["kfuncs"].attach()
    try:
        os.getppid()
    finally:
        link.close()
    assert obj.bss["task_tgid"] == os.getpid()          # through bpf_task_acquire()
    assert obj.bss["kfunc_exists"] == 1
    assert obj.data["missing_kfunc_exists"] == 0
    assert obj.bss["missing_kfunc_called"] == 0
    insns = obj.programs["kfuncs"].insns
    kfunc_ids = {i.imm for i in I.iterate(insns)
                 if i.code == I.CALL and i.src == uapi.BPF_PSEUDO_KFUNC_CALL}
    vm = kbtf.vmlinux()
    assert kfunc_ids == {vm_id(vm, "bpf_task_acquire", uapi.BTF_KIND_FUNC),
                         vm_id(vm, "bpf_task_release", uapi.BTF_KIND_FUNC)}


def without_ksym_exists_guard(name: str, section: str, kfunc: str) -> bytes:
    """The object with the branch that skips the call of ``kfunc`` (the
    ``if (bpf_ksym_exists(kfunc))`` guard) turned into a no-op."""
    data = bytearray(built(name).read_bytes())
    spec = parse_object(bytes(data), name)
    sec = spec.elf.section(section)
    call = next(r.offset // I.INSN_SIZE for r in spec.elf.relocs[sec.index]
                if r.sym.name == kfunc and I.decode(sec.data, r.offset // 8).code == I.CALL)
    branch = next(s for s in range(call - 1, -1, -1)
                  if I.decode(sec.data, s).code == uapi.BPF_JMP | uapi.BPF_JEQ | uapi.BPF_K
                  and s + 1 + I.decode(sec.data, s).off > call)
    at = ELFFile(io.BytesIO(bytes(data))).get_section_by_name(section)["sh_offset"]
    data[at + branch * 8:at + branch * 8 + 8] = I.Insn(uapi.BPF_JMP | uapi.BPF_JA, 0, 0, 0,
                                                       0).encode()
    return bytes(data)


def test_reachable_missing_kfunc_is_explained(load_obj):
    patched = without_ksym_exists_guard(KSYMS_OBJ, "tp_btf/sys_enter",
                                        "bpf_pybpf_no_such_kfunc")
    with pytest.raises(VerifierError) as e:
        load_obj(KSYMS_OBJ, patched, autoload={"typed_ksym": False, "untyped_ksym": False})
    poison = externs.POISON_KFUNC_BASE + next(
        ext.index for ext in parse_object(built(KSYMS_OBJ)).externs
        if ext.name == "bpf_pybpf_no_such_kfunc")
    assert f"invalid func unknown#{poison}" in e.value.log
    assert "kfunc 'bpf_pybpf_no_such_kfunc' is called but does not exist" in str(e.value)


def test_typed_ksym_per_cpu_variable(load_obj):
    if "runqueues" not in kallsyms():
        skip_missing_feature("CONFIG_KALLSYMS_ALL: per-CPU variables such as runqueues "
                             "are not in kallsyms, so the kernel refuses typed ksyms")
    if os.cpu_count() < 2:
        pytest.skip("needs 2 CPUs")
    obj = load_obj(KSYMS_OBJ, autoload={"untyped_ksym": False, "kfuncs": False})
    syscall.prog_test_run(obj.programs["typed_ksym"].fd, repeat=0)
    assert obj.data["rq_cpu"] == 1


def test_typed_ksym_without_kallsyms_address_is_explained(load_obj):
    if "runqueues" in kallsyms():
        pytest.skip("this kernel has CONFIG_KALLSYMS_ALL: typed ksyms load")
    with pytest.raises(VerifierError) as e:
        load_obj(KSYMS_OBJ, autoload={"untyped_ksym": False, "kfuncs": False})
    assert "failed to find the address for kernel symbol 'runqueues'" in e.value.log
    assert "typed __ksym variables need a kernel built with CONFIG_KALLSYMS_ALL" in str(e.value)
