"""uprobe targets without the kernel: ``binary:symbol+offset`` parsing, binary
lookup (PATH, LD_LIBRARY_PATH, /etc/ld.so.cache) and ELF symbol -> file
offset resolution on binaries compiled here."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.obj import uprobe
from pybpf.errors import AttachError
from pybpf.obj.uprobe import Target, parse_target

# ------------------------------------------------------------------ target strings


@pytest.mark.parametrize("text, want", [
    ("/usr/bin/foo:main", Target("/usr/bin/foo", "main", 0)),
    ("/proc/self/exe:pybpf_f+0x10", Target("/proc/self/exe", "pybpf_f", 16)),
    ("libc.so.6:malloc+8", Target("libc.so.6", "malloc", 8)),
    ("libc.so.6:0x1234", Target("libc.so.6", "", 0x1234)),
    ("libc.so.6:4660", Target("libc.so.6", "", 4660)),
    ("libc.so.6:010", Target("libc.so.6", "", 8)),
    ("libc.so.6:malloc@@GLIBC_2.2.5", Target("libc.so.6", "malloc@@GLIBC_2.2.5", 0)),
    ("libc.so.6:realpath@GLIBC_2.2.5+4", Target("libc.so.6", "realpath@GLIBC_2.2.5", 4)),
    ("./rel/bin:f.cold", Target("./rel/bin", "f.cold", 0)),
])
def test_parse_target(text, want):
    assert parse_target(text) == want


@pytest.mark.parametrize("text", ["", "/bin/true", ":main", "/bin/true:", "/bin/true:f+",
                                  "/bin/true:f+0xzz", "/bin/true:f g"])
def test_parse_target_rejects(text):
    with pytest.raises(AttachError):
        parse_target(text)


def test_uretprobe_takes_no_offset():
    assert parse_target("/bin/true:main", retprobe=True).offset == 0
    with pytest.raises(AttachError, match="uretprobes take no offset"):
        parse_target("/bin/true:main+4", retprobe=True)


@pytest.mark.parametrize("pattern, yes, no", [
    ("pybpf_*", ["pybpf_", "pybpf_a_b"], ["pybpf", "xpybpf_a"]),
    ("f?o", ["foo", "f.o"], ["fo", "fooo"]),
    ("a.b[1]", ["a.b[1]"], ["axb1", "a.b1"]),
    ("*", ["", "anything"], []),
])
def test_glob(pattern, yes, no):
    rx = uprobe.glob(pattern)
    assert all(rx.fullmatch(n) for n in yes) and not any(rx.fullmatch(n) for n in no)


# ------------------------------------------------------------------ /etc/ld.so.cache


def ld_cache(entries, old_entries: int = -1) -> bytes:
    """A glibc ld.so.cache ("1.1" format), optionally after an old libc5 table."""
    strings, offsets = b"", []
    head = 48 + 24 * len(entries)
    for soname, path in entries:
        offsets.append((head + len(strings), head + len(strings) + len(soname) + 1))
        strings += soname.encode() + b"\0" + path.encode() + b"\0"
    new = struct.pack("<20sIIB3xI12x", b"glibc-ld.so.cache1.1", len(entries), len(strings),
                      2, 0)
    for (flags, _), (key, value) in zip([(0x0303, 0)] * len(entries), offsets):
        new += struct.pack("<iIIIQ", flags, key, value, 0, 0)
    new += strings
    if old_entries < 0:
        return new
    old = b"ld.so-1.7.0\0" + struct.pack("<I", old_entries) + bytes(12 * old_entries)
    return old + bytes(-len(old) % 8) + new


def test_parse_ld_so_cache():
    data = ld_cache([("libfoo.so.1", "/opt/lib/libfoo.so.1.2"),
                     ("libbar.so", "/usr/lib/libbar.so")])
    assert uprobe.parse_ld_so_cache(data) == {
        "libfoo.so.1": [(0x0303, "/opt/lib/libfoo.so.1.2")],
        "libbar.so": [(0x0303, "/usr/lib/libbar.so")]}


def test_parse_ld_so_cache_after_old_table():
    data = ld_cache([("libfoo.so.1", "/x/libfoo.so.1")], old_entries=3)
    assert uprobe.parse_ld_so_cache(data) == {"libfoo.so.1": [(0x0303, "/x/libfoo.so.1")]}


@pytest.mark.parametrize("data", [b"", b"garbage" * 10, b"glibc-ld.so.cache1.1",
                                  b"ld.so-1.7.0\0\xff\xff\xff\xff"])
def test_parse_ld_so_cache_garbage(data):
    assert uprobe.parse_ld_so_cache(data) == {}


def test_parse_ld_so_cache_truncated_keeps_whole_entries():
    data = ld_cache([("liba.so", "/a"), ("libb.so", "/b")])
    strings = 48 + 2 * 24
    assert uprobe.parse_ld_so_cache(data[:strings + len("liba.so\0/a\0libb")]) == {
        "liba.so": [(0x0303, "/a")]}
    assert uprobe.parse_ld_so_cache(data[:48 + 24 + 10]) == {}


def test_real_ld_so_cache_finds_libc():
    if not os.path.exists("/etc/ld.so.cache"):
        pytest.skip("no /etc/ld.so.cache")
    with open("/etc/ld.so.cache", "rb") as f:
        paths = [p for _, p in uprobe.parse_ld_so_cache(f.read()).get("libc.so.6", [])]
    assert paths and all(os.path.exists(p) for p in paths)


# ------------------------------------------------------------------ finding binaries


def test_resolve_binary_paths_and_path_search(monkeypatch, tmp_path):
    assert uprobe.resolve_binary("/proc/self/exe") == "/proc/self/exe"
    with pytest.raises(AttachError, match="does not exist"):
        uprobe.resolve_binary(str(tmp_path / "nope"))
    tool = tmp_path / "pybpf-tool"
    tool.write_bytes(b"")
    monkeypatch.setenv("PATH", f"/nonexistent:{tmp_path}")
    assert uprobe.resolve_binary("pybpf-tool") == str(tool)
    with pytest.raises(AttachError, match=r"'pybpf-none' not found \(searched PATH"):
        uprobe.resolve_binary("pybpf-none")


def test_resolve_library_by_name(monkeypatch, tmp_path):
    lib = tmp_path / "libpybpf.so.1"
    lib.write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert uprobe.resolve_binary("libpybpf.so.1") == str(lib)
    monkeypatch.delenv("LD_LIBRARY_PATH")
    libc = uprobe.resolve_binary("libc.so.6")           # ld.so.cache or /lib/<triple>
    with open(libc, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    with pytest.raises(AttachError, match="/etc/ld.so.cache"):
        uprobe.resolve_binary("libpybpf_nothing.so.7")


# ------------------------------------------------------------------ ELF symbols -> file offsets

MARKED_C = r"""
__attribute__((naked, used)) void pybpf_marker(void)
{
	asm(".byte 0xde, 0xad, 0xbe, 0xef, 0xc3");
}
__attribute__((noinline)) int pybpf_plain(int x) { asm volatile(""); return x + 1; }
int main(void) { pybpf_marker(); return pybpf_plain(0) != 1; }
"""

VERSIONED_C = r"""
int pybpf_v1(void) { return 1; }
int pybpf_v2(void) { return 2; }
__asm__(".symver pybpf_v1, pybpf_ver@VERS_1");
__asm__(".symver pybpf_v2, pybpf_ver@@VERS_2");
"""
VERSION_SCRIPT = "VERS_1 { global: pybpf_ver; local: *; };\nVERS_2 { global: pybpf_ver; } VERS_1;\n"

DUP_C = "static __attribute__((noinline, used)) int pybpf_dup(int x) { return x + %d; }\n" \
        "int use%d(int x) { return pybpf_dup(x); }\n"


def gcc(*args: str) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    subprocess.run(["gcc", "-O1", *args], check=True)


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    d = tmp_path_factory.mktemp("elf")
    (d / "marked.c").write_text(MARKED_C)
    (d / "ver.c").write_text(VERSIONED_C)
    (d / "ver.map").write_text(VERSION_SCRIPT)
    (d / "dup1.c").write_text(DUP_C % (1, 1))
    (d / "dup2.c").write_text(DUP_C % (2, 2) + "int main(void) { return 0; }\n")
    out = {k: str(d / k) for k in ("pie", "nopie", "stripped", "lib.so", "dup")}
    gcc("-fPIE", "-pie", "-o", out["pie"], str(d / "marked.c"))
    gcc("-fno-PIE", "-no-pie", "-o", out["nopie"], str(d / "marked.c"))
    gcc("-rdynamic", "-o", out["stripped"], str(d / "marked.c"))
    subprocess.run(["strip", out["stripped"]], check=True)
    gcc("-shared", "-fPIC", f"-Wl,--version-script={d / 'ver.map'}", "-o", out["lib.so"],
        str(d / "ver.c"))
    gcc("-o", out["dup"], str(d / "dup1.c"), str(d / "dup2.c"))
    return out


def section_offset(path: str, name: str) -> int:
    """libbpf's way, as an independent check: st_value - sh_addr + sh_offset."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for table in (elf.get_section_by_name(".symtab"), elf.get_section_by_name(".dynsym")):
            for sym in table.iter_symbols() if table is not None else ():
                if sym.name == name and sym["st_info"]["type"] == "STT_FUNC":
                    sec = elf.get_section(sym["st_shndx"])
                    return sym["st_value"] - sec["sh_addr"] + sec["sh_offset"]
    raise AssertionError(f"{name} not in {path}")


@pytest.mark.parametrize("kind", ["pie", "nopie", "stripped"])
def test_func_offset_points_at_the_code(bins, kind):
    path = bins[kind]
    off = uprobe.func_offset(path, "pybpf_marker")
    with open(path, "rb") as f:
        f.seek(off)
        assert f.read(4) == b"\xde\xad\xbe\xef"
    if kind != "stripped":
        assert off == section_offset(path, "pybpf_marker")
        assert uprobe.func_offset(path, "pybpf_plain") == section_offset(path, "pybpf_plain")


def test_fixed_address_binary_maps_vaddr_to_offset(bins):
    with open(bins["nopie"], "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name("pybpf_marker")[0]
        vaddr = sym["st_value"]
    off = uprobe.func_offset(bins["nopie"], "pybpf_marker")
    assert vaddr >= 0x400000 and off < vaddr       # a file offset, not the address


def test_stripped_binary_without_the_symbol(bins, tmp_path):
    stripped = tmp_path / "nodyn"
    shutil.copy(bins["pie"], stripped)
    subprocess.run(["strip", str(stripped)], check=True)
    with pytest.raises(AttachError, match="'pybpf_marker' not found"):
        uprobe.func_offset(str(stripped), "pybpf_marker")


def test_symbol_versions(bins):
    lib = bins["lib.so"]
    v1 = section_offset(lib, "pybpf_v1")
    v2 = section_offset(lib, "pybpf_v2")
    assert v1 != v2
    assert uprobe.func_offset(lib, "pybpf_ver") == v2              # the default version
    assert uprobe.func_offset(lib, "pybpf_ver@@VERS_2") == v2
    assert uprobe.func_offset(lib, "pybpf_ver@VERS_1") == v1
    with pytest.raises(AttachError, match="not found"):
        uprobe.func_offset(lib, "pybpf_ver@VERS_9")


def test_ambiguous_local_functions(bins):
    with pytest.raises(AttachError, match="'pybpf_dup' is ambiguous"):
        uprobe.func_offset(bins["dup"], "pybpf_dup")


def test_pattern_offsets(bins):
    found = uprobe.pattern_offsets(bins["pie"], "pybpf_*")
    assert sorted(name for name, _ in found) == ["pybpf_marker", "pybpf_plain"]
    assert dict(found)["pybpf_plain"] == uprobe.func_offset(bins["pie"], "pybpf_plain")
    with pytest.raises(AttachError, match=r"no function matching 'nothing_\*'"):
        uprobe.pattern_offsets(bins["pie"], "nothing_*")


@pytest.mark.parametrize("content", [b"", b"not an elf at all", b"\x7fELF" + b"\xff" * 60])
def test_malformed_binaries_are_attach_errors(tmp_path, content):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(AttachError, match="not a valid ELF file|reading symbols"):
        uprobe.func_offset(str(path), "main")


def test_truncated_elf_is_an_attach_error(bins, tmp_path):
    with open(bins["pie"], "rb") as f:
        data = f.read()
    for cut in (64, 1000, len(data) // 2):
        path = tmp_path / f"cut{cut}"
        path.write_bytes(data[:cut])
        with pytest.raises(AttachError):
            uprobe.func_offset(str(path), "pybpf_plain")


@pytest.mark.parametrize("edit, symtab_left", [
    ({"e_phoff": (1 << 63) - 64}, False),        # program headers: lseek EINVAL
    ({".shstrtab": (1 << 63) - 8}, False),       # section names: lseek EINVAL
    ({".dynsym": (1 << 63) - 24}, True),         # the symbols themselves
    ({".shstrtab": (1 << 64) - 8}, False)])      # past what seek takes at all
def test_header_offsets_past_any_file(bins, tmp_path, edit, symtab_left):
    from hostile import set_ehdr, set_shdr
    from pybpf.obj.symbols import ElfSymbols
    with open(bins["pie"], "rb") as f:
        data = f.read()
    (name, value), = edit.items()
    data = set_ehdr(data, **edit) if name.startswith("e_") else \
        set_shdr(data, name, sh_offset=value)
    path = tmp_path / "far"
    path.write_bytes(data)
    with pytest.raises(AttachError, match=r"far is not a valid ELF file: "
                                          r"(an offset in its headers is out of range|"
                                          r"cannot fit 'int')"):
        uprobe.func_offset(str(path), "pybpf_plain")
    # the symbolizer takes .symtab, still whole when only .dynsym lies
    assert bool(ElfSymbols(str(path)).funcs) is symtab_left


@pytest.mark.parametrize("kind", ["a FIFO", "a directory", "a character device"])
def test_special_files_refused_without_reading(tmp_path, kind):
    """Opened O_NONBLOCK and fstat-checked first: a FIFO nobody writes to would block
    the open (and the read) forever."""
    from pybpf.obj import usdt
    from pybpf.obj.symbols import ElfSymbols
    from pybpf.errors import ObjectError
    path = {"a directory": str(tmp_path), "a character device": "/dev/zero"}.get(kind)
    if path is None:
        path = str(tmp_path / f"fifo{os.getpid()}")
        os.mkfifo(path)
    why = f"not a regular file \\({kind}\\)"
    with pytest.raises(AttachError, match=f"cannot open uprobe binary {path}: {why}"):
        uprobe.func_offset(path, "main")
    with pytest.raises(ObjectError, match=f"cannot open {path}: {why}"):
        usdt.read_probes(path)
    assert ElfSymbols(path).funcs == []


def test_missing_binary():
    with pytest.raises(AttachError, match="cannot open uprobe binary"):
        uprobe.func_offset("/nonexistent/pybpf", "main")
