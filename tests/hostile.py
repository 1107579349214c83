"""Structural attacks on BPF objects, and the bounded subprocess that runs them.

Attacks are built from a real object (build/exec.bpf.o): its .BTF gets raw
type records appended (string offsets stay valid, so .BTF.ext still parses)
and existing records re-pointed at them; ELF headers are edited at their
known offsets.  ``run_attack`` writes the bytes to a file and runs
``exercise`` on it in a child with RLIMIT_AS 1 GiB, RLIMIT_CPU and a
timeout, which prints one line: ``ok`` or ``<ErrorClass>: message``, and the
peak RSS.  Anything else (a traceback, a kill, a timeout) fails the test.
"""
from __future__ import annotations

import io
import pathlib
import re
import struct
import subprocess
import sys
from typing import Dict, List

ROOT = pathlib.Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- ELF editing

_SHDR = struct.Struct("<IIQQQQIIQQ")
SHDR_FIELDS = ("sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size",
               "sh_link", "sh_info", "sh_addralign", "sh_entsize")
# ELF64 header fields: name -> (offset, struct format)
EHDR_FIELDS = {"e_phoff": (32, "<Q"), "e_shoff": (40, "<Q"), "e_phentsize": (54, "<H"),
               "e_phnum": (56, "<H"), "e_shentsize": (58, "<H"), "e_shnum": (60, "<H"),
               "e_shstrndx": (62, "<H")}


def section_index(raw: bytes, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(raw))
    for i, sec in enumerate(elf.iter_sections()):
        if sec.name == name:
            return i
    raise KeyError(name)


def _shdr_offset(raw: bytes, index: int) -> int:
    shoff = struct.unpack_from("<Q", raw, 40)[0]
    return shoff + index * _SHDR.size


def shdr(raw: bytes, name: str) -> Dict[str, int]:
    return dict(zip(SHDR_FIELDS, _SHDR.unpack_from(raw, _shdr_offset(raw, section_index(raw, name)))))


def set_shdr(raw: bytes, name: str, **fields: int) -> bytes:
    """The object with fields of section ``name``'s header replaced."""
    pos = _shdr_offset(raw, section_index(raw, name))
    values = dict(zip(SHDR_FIELDS, _SHDR.unpack_from(raw, pos)))
    values.update(fields)
    out = bytearray(raw)
    _SHDR.pack_into(out, pos, *(values[f] for f in SHDR_FIELDS))
    return bytes(out)


def set_ehdr(raw: bytes, **fields: int) -> bytes:
    out = bytearray(raw)
    for name, value in fields.items():
        off, fmt = EHDR_FIELDS[name]
        struct.pack_into(fmt, out, off, value)
    return bytes(out)


def replace_section(raw: bytes, name: str, blob: bytes) -> bytes:
    """The object with section ``name``'s contents moved to a new blob at the end."""
    pad = (-len(raw)) % 8
    return set_shdr(raw + b"\0" * pad + blob, name, sh_offset=len(raw) + pad,
                    sh_size=len(blob))


def rename_symbol(raw: bytes, old: str, new: str) -> bytes:
    """The object with symbol ``old`` called ``new`` (appended to its string table)."""
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(raw))
    symtab = elf.get_section_by_name(".symtab")
    index = next(i for i, sym in enumerate(symtab.iter_symbols()) if sym.name == old)
    strtab = elf.get_section(symtab["sh_link"])
    name_off = strtab["sh_size"]
    raw = replace_section(raw, strtab.name, strtab.data() + new.encode() + b"\0")
    out = bytearray(raw)
    struct.pack_into("<I", out, symtab["sh_offset"] + 24 * index, name_off)
    return bytes(out)


def renamed(raw: bytes, renames: Dict[bytes, bytes]) -> bytes:
    """The object with names changed in its ELF and BTF string tables alike, each
    to one of the same length (every string offset stays right)."""
    for old, new in renames.items():
        assert len(old) == len(new) and raw.count(b"\0" + old + b"\0") >= 2, old
        raw = raw.replace(b"\0" + old + b"\0", b"\0" + new + b"\0")
    return raw


def section_data(raw: bytes, name: str) -> bytes:
    h = shdr(raw, name)
    return raw[h["sh_offset"]:h["sh_offset"] + h["sh_size"]]


# ---------------------------------------------------------------- BTF editing

# kinds
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)


def info(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    return kflag << 31 | kind << 24 | vlen


class RawBTF:
    """A .BTF blob as editable u32 words: append records, rewrite words of any type."""

    def __init__(self, blob: bytes):
        from pybpf.btf.parse import parse_header, scan, words
        hdr = parse_header(blob, ".BTF", split=False)
        tstart = hdr.hdr_len + hdr.type_off
        self.words: List[int] = list(words(blob[tstart:tstart + hdr.type_len]))
        self.offsets: List[int] = scan(self.words, ".BTF", tstart)
        sstart = hdr.hdr_len + hdr.str_off
        self.strings = bytearray(blob[sstart:sstart + hdr.str_len])

    def add(self, *record: int) -> int:
        """Append one record (its words); returns its type id."""
        self.offsets.append(len(self.words))
        self.words.extend(record)
        return len(self.offsets)

    def set(self, type_id: int, word: int, value: int) -> None:
        """Word ``word`` of type ``type_id``'s record (0 name_off, 1 info, 2 size/type...)."""
        self.words[self.offsets[type_id - 1] + word] = value

    def get(self, type_id: int, word: int) -> int:
        return self.words[self.offsets[type_id - 1] + word]

    def name(self, text: str) -> int:
        off = len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def encode(self) -> bytes:
        types = struct.pack(f"<{len(self.words)}I", *self.words)
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                          len(self.strings))
        return hdr + types + bytes(self.strings)


# the types of build/exec.bpf.o an attack re-points (checked by test_hostile's first test)
EXEC_IDS = {"int": 2, "rb": 8, "target_pid": 27, "unused_event": 33, ".bss": 34, ".maps": 35,
            ".rodata": 36, "trace_entry": 11}


def exec_object() -> bytes:
    return (ROOT / "build" / "exec.bpf.o").read_bytes()


def with_btf(raw: bytes, btf: RawBTF) -> bytes:
    return replace_section(raw, ".BTF", btf.encode())


# ---------------------------------------------------------------- the bounded run

RUNNER = r"""
import os, resource, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from hostile import exercise
from pybpf.errors import BPFError
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for path in sys.argv[2:]:
    start = cpu()
    try:
        exercise(path)
        line = "ok"
    except BPFError as e:
        line = f"{type(e).__name__}: {e}".replace("\n", " ")
    print(f"{os.path.basename(path)}\t{cpu() - start:.3f}\t{line}", flush=True)
# VmHWM, not ru_maxrss: the latter carries the forking parent's peak across exec()
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(f"maxrss_kib {hwm}")
"""

MEMORY_LIMIT = 1 << 30           # RLIMIT_AS of the child
RSS_LIMIT_KIB = 200 * 1024       # what the objects may cost (the peak over all of them)
CPU_PER_OBJECT_S = 10.0          # CPU seconds one object may take (2 s, with room for PyPy)


def run_paths(paths: List[str]) -> Dict[str, str]:
    """Run ``exercise`` on each path in one bounded child: {file name: result line}.

    The child has RLIMIT_AS 1 GiB and RLIMIT_CPU for all objects; each must end
    by itself with ``ok`` or a pybpf error within CPU_PER_OBJECT_S of CPU time,
    and the child's peak RSS must stay under RSS_LIMIT_KIB."""
    import resource
    cpu_limit = int(CPU_PER_OBJECT_S * len(paths)) + 10

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit))

    try:
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT), *paths],
                              capture_output=True, text=True, timeout=4 * cpu_limit,
                              preexec_fn=limits, cwd=str(ROOT))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"still running after {4 * cpu_limit} s; done:\n{e.stdout}") \
            from None
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == len(paths) + 1, \
        f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    rss = int(lines[-1].split()[1])
    assert rss < RSS_LIMIT_KIB, f"peak RSS {rss} KiB"
    out = {}
    for line in lines[:-1]:
        name, cpu, result = line.split("\t", 2)
        assert float(cpu) < CPU_PER_OBJECT_S, f"{name}: {cpu} s of CPU"
        out[name] = result
    return out


def run_attacks(tmp_path: pathlib.Path, attacks: Dict[str, bytes]) -> Dict[str, str]:
    """Write each attack to tmp_path/NAME and run them all bounded: {name: result line}."""
    paths = []
    for name, raw in attacks.items():
        path = tmp_path / name
        path.write_bytes(raw)
        paths.append(str(path))
    return run_paths(paths)


# ---------------------------------------------------------------- what a consumer does

def exercise(path: str) -> None:
    """Everything pybpf does with an object short of the kernel: open, inspect
    (text and JSON), codecs of every type, CO-RE of every named type against
    the object itself, sanitizing for an old kernel, encoding, linking.
    Only BPFError (ObjectError, CodecError...) may come out."""
    from pybpf.cli import describe
    from pybpf.asm import insn
    from pybpf import uapi
    from pybpf.btf import BTF, CoreRelo, codec, core, sanitize
    from pybpf.errors import BPFError
    from pybpf.object import BPFObject
    from pybpf.obj.relocate import Linker

    obj = BPFObject.open(path)
    describe.describe(obj)
    describe.describe(obj, as_json=True)
    spec = obj.spec
    btf = spec.btf
    if btf is not None:
        relos = []
        # every type of a real object; of a huge one, the first and last few thousand
        ids = range(len(btf)) if len(btf) <= 6000 else \
            list(range(4000)) + list(range(len(btf) - 2000, len(btf)))
        for type_id in ids:
            t = btf[type_id]
            btf.type_name(type_id)
            try:
                btf.size_of(type_id)
            except BPFError:
                pass
            try:
                c = codec.compile(btf, type_id)
                if c.size <= 1 << 16:
                    c.decode(bytes(c.size))
                    c.encode(c.decode(bytes(c.size)))
            except BPFError:
                pass
            if t.name and type_id:
                K = uapi.bpf_core_relo_kind
                for kind, access in ((K.BPF_CORE_TYPE_EXISTS, "0"),
                                     (K.BPF_CORE_TYPE_MATCHES, "0"),
                                     (K.BPF_CORE_TYPE_SIZE, "0"),
                                     (K.BPF_CORE_FIELD_BYTE_OFFSET, "0:0"),
                                     (K.BPF_CORE_FIELD_EXISTS, "0:0:0"),
                                     (K.BPF_CORE_ENUMVAL_EXISTS, "0")):
                    relos.append(CoreRelo(8 * len(relos), type_id, access, kind))
        mov = insn.Insn(uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_K, 0, 0, 0, 0).encode()
        for relo in relos:
            try:
                core.relocate(bytearray(mov * len(relos)), [relo], btf, [btf])
            except BPFError:
                pass
        clean = sanitize.sanitize(btf, sanitize.Features(
            func=False, func_global=False, datasec=False, qmark_datasec=False, float=False,
            decl_tag=False, type_tag=False, enum64=False))
        BTF.parse(clean.encode(), validate=True)
        BTF.parse(btf.encode(), validate=True)
    linker = Linker(spec, {m.name: 3 for m in spec.maps}, [btf] if btf is not None else [])
    for prog in spec.programs:
        linker.link(prog)
    _text_formats(path, obj)


class _NoRows:
    """A map as the exporter reads it (name, BTF, spec), holding nothing yet."""

    def __init__(self, m):
        self.name, self.btf, self.spec = m.name, m.btf, m.spec

    def items(self):
        return iter(())


def _text_formats(path: str, obj) -> None:
    """The text the object's names end up in: a skeleton module that compiles, and
    metrics exposition that is UTF-8 (two maps giving one metric: a ConfigError)."""
    from pybpf.cli.map_report import reported_maps
    from pybpf.metrics.exporter import Exporter
    from pybpf.obj.skeleton import generate
    with open(path, "rb") as f:
        compile(generate(f.read(), path.rsplit("/", 1)[-1]), path, "exec")
    text = Exporter([_NoRows(m) for m in reported_maps(obj)]).render()
    text.encode("utf-8")
    for line in text.splitlines():          # no name may start a line of its own
        if not line.startswith(("# HELP pybpf_", "# TYPE pybpf_")) and \
                not re.fullmatch(r'pybpf_[a-zA-Z0-9_:]*(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? \S+',
                                 line):
            raise AssertionError(f"exposition line {line!r}")
