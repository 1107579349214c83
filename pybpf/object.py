"""BPFObject: open -> configure -> load -> attach -> close, as libbpf's bpf_object.

``open()`` only parses (see :mod:`pybpf.obj.spec`).  ``load()`` loads BTF, creates
maps (pinning, global data, map-in-map), relocates and loads programs.
``close()`` (or leaving the ``with`` block) detaches every link and closes
every fd the object owns, exactly once, also after a failed load.
"""
from __future__ import annotations

import errno
import os
import re
import warnings
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence,
                    TypeVar, Union)

from .obj import externs
from .kernel import syscall
from . import uapi
from .btf import BTF, FuncInfo
from .btf.ext import pack_func_info, pack_line_info
from .obj.elf import SHT_NOBITS
from .asm.insn import INSN_SIZE
from .errors import BPFError, BPFPermissionError, ObjectError, VerifierError, from_os_error
from .maps import GlobalData, Map
from .programs import Program
from .obj.relocate import LinkedProgram, Linker
from .obj.sections import ATTACH_BTF, SLEEPABLE, XDP_FRAGS
from .obj.spec import (ARENA_SEC, LIBBPF_PIN_BY_NAME, ObjectSpec, check_arena_size,
                       data_variables, parse_object, section_variables)
from .link.usdt import UsdtManager, load_attach_type as usdt_attach_type
from .kernel.prog_bind import bind_rodata
from .kernel.sigdefer import deferred
from .kernel.syscall import Fd

if TYPE_CHECKING:
    from .btf.core import Result
    from .link.struct_ops import StructOps
    from .obj.offline import Relocation

V = TypeVar("V")
DEFAULT_PIN_ROOT = "/sys/fs/bpf"
_TRAMPOLINE_TYPES = frozenset({uapi.BPF_PROG_TYPE_TRACING, uapi.BPF_PROG_TYPE_LSM,
                               uapi.BPF_PROG_TYPE_EXT})
_POISON_CALL = re.compile(r"^(\d+): \(85\) call unknown#195896080$", re.M)
_LAST_INSN = re.compile(r"^(\d+): \(", re.M)
_PIN_TRIES = 8          # pin / reuse rounds against other processes pinning the same name


class NamedCollection(Mapping[str, V]):
    """Read-only name -> item mapping with a helpful KeyError."""

    def __init__(self, kind: str, items: Dict[str, V]):
        self._kind, self._items = kind, items

    def __getitem__(self, name: str) -> V:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no {self._kind} named {name!r} (there are: "
                           f"{', '.join(self._items) or 'none'})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._items.items())}}}"


class BPFObject:
    """One BPF object file, as libbpf's ``bpf_object``: ``BPFObject.open(path)``
    parses it (no kernel calls); then configure it (``rodata[...]``, map
    ``max_entries``, ``kconfig``), ``load()`` (BTF, maps, relocation, programs),
    ``attach()`` (every program by its SEC() name) and ``close()`` (or leave the
    ``with`` block): every link is detached and every fd closed, exactly once.

    ``maps``, ``programs`` and ``sections`` (global data by section name) are
    read-only name -> object mappings; ``links`` holds what ``attach()`` made.
    """

    def __init__(self, spec: ObjectSpec, pin_root: str = DEFAULT_PIN_ROOT,
                 core_targets: Optional[Sequence[BTF]] = None):
        self.spec = spec
        self.name = spec.name
        self.pin_root = pin_root
        self.core_targets = core_targets
        self._maps: Dict[str, Map] = {m.name: Map(m, spec.btf, spec.name) for m in spec.maps}
        self.maps: NamedCollection[Map] = NamedCollection("map", self._maps)
        self._programs: Dict[str, Program] = {
            p.name: Program(p.name, p.sec_name, p.sec_def, p.attach_target, bytearray(),
                            p.autoload)
            for p in spec.programs}
        self.programs: NamedCollection[Program] = NamedCollection("program", self._programs)
        usdt = UsdtManager(self.maps)
        for prog in self._programs.values():
            prog.usdt_manager = usdt
        self._globals: Dict[str, GlobalData] = {
            m.name: GlobalData(self._maps[m.name], data_variables(spec.btf, m, spec.elf))
            for m in spec.maps if m.is_global_data}
        for m in spec.maps:
            if m.arena is not None:     # __arena globals: obj.sections[".addr_space.1"]
                initial = m.arena.data if m.arena.type != SHT_NOBITS else bytes(m.arena.size)
                self._globals[ARENA_SEC] = GlobalData(
                    self._maps[m.name], section_variables(spec.btf, m.arena, spec.elf), initial)
        self.sections: NamedCollection[GlobalData] = NamedCollection("data section",
                                                                     self._globals)
        self._struct_ops: Dict[str, StructOps] = {}
        for m in spec.maps:
            if m.struct_ops is not None and spec.btf is not None:
                from .link.struct_ops import StructOps    # only objects with struct_ops
                so = self._struct_ops[m.name] = StructOps(self._maps[m.name], spec.btf,
                                                          self._programs)
                self._maps[m.name].struct_ops = so
        #: struct_ops maps by name (libbpf's skeleton struct_ops): members before load()
        self.struct_ops: NamedCollection[StructOps] = NamedCollection("struct_ops map",
                                                                      self._struct_ops)
        self.links: List[Any] = []
        self.linked: Dict[str, LinkedProgram] = {}
        self._btf_fd: Optional[Fd] = None
        self._btf_strings: Dict[str, int] = {}
        self._linker: Optional[Linker] = None
        #: extra Kconfig lines ("CONFIG_X=y\n"), read before the system's for __kconfig
        #: externs (libbpf's kconfig open option); set before load()
        self.kconfig: Optional[str] = None
        self._externs: Optional[externs.Resolution] = None
        self._loaded = False
        self._closed = False
        self._new_pins: List[Map] = []      # maps this load pinned: unpinned if it fails
        #: programs the last attach() left alone, with the reason (what they need)
        self.skipped: Dict[str, str] = {}

    # ---------------------------------------------------------------- open

    @classmethod
    def open(cls, source: Union[str, bytes, "os.PathLike[str]"], *, name: str = "",
             pin_root: str = DEFAULT_PIN_ROOT,
             core_targets: Optional[Sequence[BTF]] = None,
             btf_custom_path: Optional[str] = None) -> "BPFObject":
        """Parse an object file (path or bytes): no kernel calls.

        ``btf_custom_path`` (as libbpf's open option): a kernel BTF file (raw
        .BTF or an ELF vmlinux) that CO-RE relocations use instead of
        /sys/kernel/btf, at load() and in relocate()."""
        if btf_custom_path is not None:
            from .obj.offline import load_btf
            core_targets = [load_btf(btf_custom_path)]
        return cls(parse_object(source, name), pin_root, core_targets)

    @property
    def license(self) -> str:
        """The object's license string (SEC("license")); GPL-only helpers need a
        GPL-compatible one."""
        return self.spec.license

    @property
    def btf(self) -> Optional[BTF]:
        """The object's own BTF (None when built without -g)."""
        return self.spec.btf

    def _section_data(self, name: str) -> GlobalData:
        if name not in self._globals:
            raise KeyError(f"{self.name} has no {name} section (no such globals)")
        return self._globals[name]

    @property
    def rodata(self) -> GlobalData:
        """The variables of .rodata (``const volatile`` globals): set them before load()."""
        return self._section_data(".rodata")

    @property
    def data(self) -> GlobalData:
        """The variables of .data (initialized globals), live after load()."""
        return self._section_data(".data")

    @property
    def bss(self) -> GlobalData:
        """The variables of .bss (zero-initialized globals), live after load()."""
        return self._section_data(".bss")

    # ---------------------------------------------------------------- load

    @property
    def loaded(self) -> bool:
        """Whether load() has succeeded (maps created, programs loaded)."""
        return self._loaded

    def load(self, log_level: int = 0) -> "BPFObject":
        """Create maps and load programs; on any failure everything is closed again."""
        if self._closed:
            raise BPFError(f"object {self.name!r} is closed")
        if self._loaded:
            raise BPFError(f"object {self.name!r} is already loaded")
        try:
            from .kernel.host import LiveHost
            self._externs = externs.resolve(self.spec.externs, self.spec.btf,
                                            LiveHost(), self.kconfig)
            if self._externs.kconfig:
                self._globals[externs.KCONFIG_SEC].image[:] = self._externs.kconfig
            self._prepare_struct_ops()
            self._load_btf()
            self._create_maps()
            linker = self._linker = Linker(
                self.spec, {n: m.fd for n, m in self._maps.items() if m.loaded},
                self.core_targets, self._externs,
                [p.name for p in self._programs.values() if not p.autoload])
            for prog in self._programs.values():
                if prog.autoload:
                    self._load_program(prog, linker, log_level)
            self._init_slots()
            self._loaded = True
        except BaseException as e:
            self._loaded = False
            self._close_kernel_objects()
            if isinstance(e, OSError):
                raise from_os_error(e, f"loading {self.name!r}") from e
            raise
        for prog in self._programs.values():
            prog._locked = True
        return self

    def _load_btf(self) -> None:
        btf = self.spec.btf
        if btf is None:
            return
        from .btf import sanitize
        from .kernel.features import probe_features
        try:
            ext = self.spec.ext
            lines = {s for recs in (ext.line_info.values() if ext else ())
                     for rec in recs for s in (rec.file_name, rec.line)}
            sanitized = sanitize.sanitize(externs.btf_for_kernel(btf),
                                          probe_features())
            data, self._btf_strings = sanitized.encode_with_strings(lines)
            self._btf_fd = syscall.btf_load(data)
        except VerifierError as e:
            warnings.warn(f"{self.name}: kernel refused the object's BTF, loading without "
                          f"it (no BTF for maps, no func/line info): {e}")

    def _prepare_struct_ops(self) -> None:
        """As libbpf: a struct_ops program that struct_ops maps name is loaded if and
        only if a created one binds it (whatever its autoload said); one that no
        map names keeps its autoload, and needs an attach_btf_id to load.  Each
        created map gets the kernel's layout."""
        named = {prog for so in self._struct_ops.values()
                 for prog in (*so.spec.declared.values(), *so.spec.progs.values())}
        used = {prog for so in self._struct_ops.values() if so.autocreate
                for prog in so.spec.progs.values()}
        for prog in self._programs.values():
            if prog.type != uapi.BPF_PROG_TYPE_STRUCT_OPS:
                continue
            if prog.name in named:
                prog.autoload = prog.name in used
            elif prog.autoload and not prog.attach_btf_id:
                raise ObjectError(f"struct_ops program {prog.name!r} is bound to no "
                                  "struct_ops map, so nothing names the struct and member "
                                  "it implements: bind it in a SEC(\".struct_ops\") "
                                  "variable, or set its autoload to False",
                                  section=prog.section)
        for so in self._struct_ops.values():
            if so.autocreate:
                so.prepare()

    def _create_maps(self) -> None:
        btf_fd = self._btf_fd.fd if self._btf_fd is not None else 0
        for m in self._maps.values():
            if m.struct_ops is not None:
                if m.struct_ops.autocreate:
                    m.struct_ops.create(btf_fd)
                continue
            if m.spec.pinning == LIBBPF_PIN_BY_NAME and self._reuse_pinned(m):
                continue
            if m.spec.arena is not None:
                check_arena_size(m.spec)    # max_entries may have changed since open()
            inner_fd: Optional[Fd] = None
            if m.spec.inner is not None:
                inner = Map(m.spec.inner, self.spec.btf, self.name)
                inner.create(btf_fd)
                inner_fd = inner._fd
            try:
                m.create(btf_fd, inner_fd.fd if inner_fd is not None else 0)
            finally:
                if inner_fd is not None:
                    inner_fd.close()
            if m.spec.is_global_data:
                self._init_global_data(m)
            if m.spec.type == uapi.BPF_MAP_TYPE_ARENA:
                self._init_arena(m)
            if m.spec.pinning == LIBBPF_PIN_BY_NAME:
                self._pin_new(m)

    def _pin_new(self, m: Map) -> None:
        """Pin a map this load created (a failed load removes the pin again).  If
        another process pinned the same name meanwhile (EEXIST), that map is used
        instead when it is compatible, as if it had been there before; if that pin
        is gone again by then, ours is pinned (a bounded number of tries)."""
        path = self._pin_path(m)

        def pin(deliver_now: Any) -> None:
            m.pin(path)
            self._new_pins.append(m)
        for _ in range(_PIN_TRIES):
            try:
                deferred(pin, lambda _: None)
                return
            except BPFError as e:
                if e.errno != errno.EEXIST:
                    raise
                failure = e
            ours = m._fd
            if self._reuse_pinned(m):
                if m.name in self._globals:
                    self._globals[m.name].close()
                if ours is not None:
                    ours.close()
                return
        raise failure

    def _init_global_data(self, m: Map) -> None:
        view = self._globals[m.name]
        syscall.map_update(m.fd, b"\0\0\0\0", bytes(view.image))
        if m.spec.readonly:
            m.freeze()
        view.attach_mmap(writable=not m.spec.readonly)

    def _init_arena(self, m: Map) -> None:
        """mmap the arena before any program is loaded (the kernel resolves
        __arena global references against the mapping) and copy the __arena
        globals' initial values to its start, as libbpf 1.5 does."""
        arena = m.map_arena()
        if m.spec.arena is None:
            return
        view = self._globals[ARENA_SEC]
        arena.buffer[:len(view.image)] = bytes(view.image)
        view.attach_buffer(arena.buffer)

    def _pin_path(self, m: Map) -> str:
        from .kernel.fs import ensure_bpffs_for
        if not m.name or m.name in (".", "..") or "/" in m.name or "\0" in m.name:
            raise BPFError(f"map {m.name!r} cannot be pinned: not a plain file name (a pin"
                           f" is {self.pin_root}/NAME, NAME without '/', NUL, '.' or '..')")
        path = os.path.join(self.pin_root, m.name)
        ensure_bpffs_for(path)
        return path

    def _reuse_pinned(self, m: Map) -> bool:
        """Use the map pinned at the map's pin path, if there is one (and it is
        compatible); False if there is none, also when it vanished meanwhile (another
        process's failed load removes the pin it made)."""
        path = self._pin_path(m)
        try:
            fd = syscall.obj_get(path)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        info = syscall.obj_info(fd.fd, uapi.bpf_map_info)
        spec = m.spec
        want = (spec.type, spec.key_size, spec.value_size, spec.max_entries, spec.flags)
        have = (info.type, info.key_size, info.value_size, info.max_entries, info.map_flags)
        if want != have:
            fd.close()
            raise BPFError(f"map {m.name!r}: pinned map at {path} is incompatible "
                           f"(type/key/value/max_entries/flags {have} != {want})")
        m.adopt(fd)
        m.pin_path = path
        return True

    def _init_slots(self) -> None:
        """Fill prog arrays and map-in-maps declared with initial values in .maps."""
        for m in self._maps.values():
            for index, sym_name in m.spec.init_slots.items():
                target = self._programs.get(sym_name) or self._maps.get(sym_name)
                if target is None or not target.loaded:
                    raise ObjectError(f"map {m.name!r}: initial value {sym_name!r} at slot "
                                      f"{index} is not a loaded program or map", section=".maps")
                m.update(index, target)

    def _load_program(self, prog: Program, linker: Linker, log_level: int) -> None:
        spec = next(p for p in self.spec.programs if p.name == prog.name)
        linked = linker.link(spec)
        self.linked[prog.name] = linked
        prog.insns = linked.insns
        sec_def = prog.sec_def
        if prog.type == uapi.BPF_PROG_TYPE_UNSPEC:
            raise ObjectError(f"program {prog.name!r}: section {prog.section!r} matches no "
                              "known SEC() convention; set program.type before load()",
                              section=prog.section)
        flags = prog.prog_flags
        if sec_def is not None and sec_def.attach == "usdt":
            prog.expected_attach_type = usdt_attach_type(prog)
        if sec_def is not None:
            flags |= (uapi.BPF_F_SLEEPABLE if sec_def.flags & SLEEPABLE else 0)
            flags |= (uapi.BPF_F_XDP_HAS_FRAGS if sec_def.flags & XDP_FRAGS else 0)
            if sec_def.flags & ATTACH_BTF and not prog.attach_btf_id:
                from .link.attach_btf import resolve
                prog.attach_btf_obj_fd, prog.attach_btf_id = resolve(prog)
        func_info, line_info = self._ext_records(linked)
        try:
            fd, log = syscall.prog_load(
                prog.type, bytes(linked.insns), self.license, prog.name,
                expected_attach_type=prog.expected_attach_type, prog_flags=flags,
                kern_version=self.spec.kern_version,
                btf_fd=self._btf_fd.fd if self._btf_fd is not None and func_info else 0,
                func_info=func_info, func_info_rec_size=8 if func_info else 0,
                line_info=line_info, line_info_rec_size=16 if line_info else 0,
                attach_btf_id=prog.attach_btf_id,
                attach_prog_fd=prog.attach_prog_fd or prog.attach_btf_obj_fd,
                fd_array=self._externs.fd_array if self._externs else (),
                log_level=log_level)
        except VerifierError as e:
            raise self._explain(prog, linked, e) from None
        except BPFPermissionError as e:
            if prog.type in _TRAMPOLINE_TYPES:
                raise BPFPermissionError(f"{e} (program {prog.name!r} needs a BPF "
                                         "trampoline: fentry/fexit/fmod_ret/lsm/freplace)",
                                         e.errno) from None
            raise
        prog._fd, prog.verifier_log = fd, log
        bind_rodata(prog, self._maps.values())

    def _ext_records(self, linked: LinkedProgram) -> "tuple[bytes, bytes]":
        """Kernel bpf_func_info / bpf_line_info arrays for a linked program."""
        if self._btf_fd is None or not linked.func_info:
            return b"", b""
        func_info = pack_func_info(FuncInfo(slot * INSN_SIZE, type_id)
                                   for slot, type_id in linked.func_info)
        line_info = pack_line_info((rec._replace(insn_off=slot * INSN_SIZE)
                                    for slot, rec in linked.line_info),
                                   self._btf_strings.__getitem__)
        return func_info, line_info

    def _explain(self, prog: Program, linked: LinkedProgram, err: VerifierError) -> VerifierError:
        """Add what the verifier log alone does not say: the source line of the
        failing instruction and, for a poisoned CO-RE relocation, which one."""
        log = err.log
        notes: List[str] = []
        extern_note = externs.verifier_note(log, self.spec.externs)
        if extern_note:
            notes.append(extern_note)
        poisoned = _POISON_CALL.findall(log)
        if poisoned:
            from .btf import core
            slot = int(poisoned[-1])
            origin = linked.origin(slot)
            for res in self.linker_results(origin):
                line = linked.source_line(slot)
                notes.append(core.poison_message(res, _line_text(line)))
        else:
            insns = _LAST_INSN.findall(log)
            if insns:
                line = linked.source_line(int(insns[-1]))
                if line is not None:
                    notes.append(f"failing instruction {insns[-1]} is at {_line_text(line)}")
        message = str(err).split("\n", 1)
        reason = message[0].split(": ", 1)[-1]
        if log.strip():
            head = f"program {prog.name!r} (SEC {prog.section!r}) rejected by the verifier: " \
                   f"{reason}"
        else:       # refused before the verifier ran (attributes, name, BTF, license)
            head = f"program {prog.name!r} (SEC {prog.section!r}) refused by the kernel " \
                   f"before verification: {reason}{syscall.name_hint(prog.name)}"
        body = "\n".join(notes + message[1:])
        return VerifierError(f"{head}\n{body}" if body else head, log, err.errno)

    def linker_results(self, origin: Optional["tuple[int, int]"]) -> List["Result"]:
        """The CO-RE relocation results of the instruction at ``origin`` ((section index,
        slot)), for error messages."""
        if origin is None or self._linker is None:
            return []
        shndx, slot = origin
        return [r for r in self._linker.core_results.get(shndx, []) if r.insn == slot]

    def relocate(self, target_btf: Union[None, str, "os.PathLike[str]", BTF,
                                         Sequence[Union[str, "os.PathLike[str]", BTF]]] = None,
                 *, strict: bool = True) -> "Relocation":
        """Do every relocation load() does, against a kernel's BTF, without a kernel.

        ``target_btf``: vmlinux BTF (a path or BTF; or a sequence: vmlinux, then
        module BTF), default the ``core_targets`` / ``btf_custom_path`` given at
        open, else this machine's vmlinux BTF file.  No syscalls, no root: maps
        are not created (their references hold fd -1).  Returns per program the
        relocated instructions and every CO-RE result (``pybpf.obj.offline``);
        ``strict=False`` reports strong externs the kernel lacks instead of
        raising.  ``obj.kconfig`` supplies __kconfig values."""
        from .obj.offline import relocate
        if target_btf is None:
            if self.core_targets:
                target_btf = list(self.core_targets)
            else:
                from .btf.kernel import vmlinux_path
                target_btf = vmlinux_path()
        return relocate(self.spec, target_btf, kconfig=self.kconfig, strict=strict)

    # ---------------------------------------------------------------- attach

    def attach(self) -> List[Any]:
        """Attach every loaded program whose SEC() names its hook completely (as
        libbpf's skeleton does: xdp, tc, cgroup, sk_lookup, perf_event or a bare
        uprobe need a target and are left to ``program.attach(...)``) and register every
        created struct_ops map (unless its ``autoattach`` is False); returns the new
        links.  ``skipped`` then maps each program left alone to the reason.

        If one fails, the ones attached by this call are detached again."""
        if not self._loaded:
            raise BPFError(f"object {self.name!r}: load() before attach()")
        new: List[Any] = []
        self.skipped = {}
        try:
            from .link.hooks import auto_attach_skip
            for prog in self._programs.values():
                why = auto_attach_skip(prog) if prog.loaded else None
                if why is not None:
                    self.skipped[prog.name] = why
                elif prog.loaded:
                    new.append(prog.attach())
            for so in self._struct_ops.values():
                if so.map.loaded and so.autoattach:
                    new.append(so.attach())
        except BaseException as e:
            for link in new:
                link.close()
            if isinstance(e, OSError):
                raise from_os_error(e, f"attaching {self.name!r}") from e
            raise
        self.links.extend(new)
        return new

    # ---------------------------------------------------------------- close

    def _close_kernel_objects(self) -> None:
        for so in self._struct_ops.values():
            so.close()
        pins, self._new_pins = self._new_pins, []
        if not self._loaded:        # a failed load leaves no pin behind (as libbpf)
            for m in pins:
                try:
                    m.unpin()
                except OSError:
                    m.pin_path = None
        for prog in self._programs.values():
            prog.close()
        self.links.clear()
        for view in self._globals.values():
            view.close()
        for m in self._maps.values():
            m.close()
        if self._btf_fd is not None:
            self._btf_fd.close()
            self._btf_fd = None

    def close(self) -> None:
        """Detach every link, close every program, map and BTF fd (idempotent)."""
        if not self._closed:
            deferred(self._close_all, lambda _: None)   # a Ctrl-C waits until all is closed

    def _close_all(self, _deliver: Callable[[], None]) -> None:
        self._closed = True
        self._close_kernel_objects()
        for view in self._globals.values():
            view.close(final=True)

    def __enter__(self) -> "BPFObject":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "loaded" if self._loaded else "opened"
        return (f"<BPFObject {self.name} {state}: programs={list(self._programs)} "
                f"maps={list(self._maps)}>")


def _line_text(line: Any) -> Optional[str]:
    if line is None:
        return None
    return f"{line.file_name}:{line.line_num}: {line.line.strip()}"
