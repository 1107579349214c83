"""struct_ops maps in the kernel: creation against the kernel's value type,
registration (map update, or a BPF_STRUCT_OPS link for ``.struct_ops.link``)
and unregistration.  The layout work is pure and lives in :mod:`pybpf.obj.struct_ops`.

``obj.struct_ops["name"]`` (also ``obj.maps["name"].struct_ops``) is a
:class:`StructOps`: before load() its data members (``["flags"]``, ``["name"]``)
and function pointers (``["ssthresh"] = obj.programs["other"]`` or None) may be
changed, as libbpf's skeleton lets them be; ``attach()`` registers it and
returns a Link whose close() unregisters it.
"""
from __future__ import annotations

import errno as _errno
import os
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ..kernel import syscall
from .. import uapi
from ..btf import BTF
from ..btf import types as T
from ..errors import AttachError, BPFError, ObjectError
from .hooks import Link, LinkInfo
from ..obj.struct_ops import KernelLayout, KernelValue, StructOpsSpec, build_value, is_func_pointer, kernel_layout, value_with_fds
from ..kernel.syscall import Fd

if TYPE_CHECKING:
    from ..maps import Map
    from ..programs import Program

_KEY = b"\0\0\0\0"


def _unregister(map_fd: Fd) -> None:
    if map_fd.closed:
        return
    try:
        syscall.map_delete(map_fd.fd, _KEY)         # False: not registered anymore
    except BPFError as e:
        if e.errno != _errno.EINPROGRESS:           # being unregistered already
            raise
    finally:
        map_fd.close()


class StructOpsLink(Link):
    """A legacy (``.struct_ops``) registration: there is no BPF link, and the kernel
    keeps the struct_ops registered until the map's element is deleted, even after
    every fd is closed.  close() deletes it; so does a normal interpreter exit or
    the garbage collection of an unclosed link (a killed process leaves it
    registered, as with libbpf: use ``.struct_ops.link`` for that)."""

    def __init__(self, map_fd: Fd, desc: str = ""):
        super().__init__(map_fd, desc=desc)
        self._finalizer = weakref.finalize(self, _unregister, map_fd)

    def close(self) -> None:
        self._finalizer()

    def detach(self) -> None:
        self.close()

    def _no_link(self, what: str) -> BPFError:
        return BPFError(f"{self.desc}: a .struct_ops registration has no BPF link to "
                        f"{what} (declare it in SEC(\".struct_ops.link\"))")

    def info(self) -> LinkInfo:
        raise self._no_link("describe")

    def pin(self, path: str) -> None:
        raise self._no_link("pin")


class StructOpsMapLink(Link):
    """A ``.struct_ops.link`` registration (a BPF_LINK_TYPE_STRUCT_OPS link)."""

    def __init__(self, fd: Fd, owner: "StructOps", desc: str = ""):
        super().__init__(fd, desc=desc)
        self.owner = owner

    def update_map(self, new: Any) -> None:
        """Swap the registered struct_ops for another ``.struct_ops.link`` map of the
        same type (libbpf's bpf_link__update_map), atomically for the kernel; the
        link then belongs to ``new`` (a StructOps or its Map)."""
        target = new.struct_ops if hasattr(new, "attach_struct_ops") else new
        if not isinstance(target, StructOps) or not target.is_link:
            raise AttachError(f"{self.desc}: update_map() takes a .struct_ops.link map, "
                              f"not {new!r}")
        where = f"updating {self.desc} to struct_ops {target.name!r}"
        try:
            target._set_value()
            syscall.link_update(self.fd, target.map.fd)
        except BPFError as e:
            raise AttachError(f"{where}: {e}", e.errno) from e
        if self in self.owner.links:
            self.owner.links.remove(self)
        target.links.append(self)
        self.owner = target
        self.desc = f"struct_ops {target.name!r} (struct {target.type_name})"


def kernel_btfs() -> Iterator[Tuple[Optional[str], BTF]]:
    """The running kernel's BTF, vmlinux first, then each module's (read lazily)."""
    from ..btf import kernel
    yield None, kernel.vmlinux()
    yield from kernel.modules().items()


class StructOps:
    """One struct_ops map of an object: its members before load, its registration after."""

    def __init__(self, map_: "Map", btf: BTF, programs: Mapping[str, "Program"]):
        assert map_.spec.struct_ops is not None
        self.map = map_
        self.spec: StructOpsSpec = map_.spec.struct_ops
        self.btf = btf
        self._programs = programs
        struct_t = btf[self.spec.type_id]
        assert isinstance(struct_t, T.Struct)
        self._members = {m.name: (i, m) for i, m in enumerate(struct_t.members) if m.name}
        self.value: Optional[KernelValue] = None     # after load()
        self.links: List[Link] = []
        #: whether obj.attach() registers it (libbpf's bpf_map__set_autoattach)
        self.autoattach = True

    @property
    def name(self) -> str:
        """The variable's name, which is the map's."""
        return self.spec.name

    @property
    def type_name(self) -> str:
        """The BPF-side struct's name, flavor included."""
        return self.spec.type_name

    @property
    def is_link(self) -> bool:
        """Registered through a BPF link (``.struct_ops.link``), not a map update."""
        return self.spec.is_link

    @property
    def autocreate(self) -> bool:
        """Whether load() creates the map (False for ``?.struct_ops`` until set)."""
        return self.spec.autocreate

    @autocreate.setter
    def autocreate(self, value: bool) -> None:
        self._check_open("autocreate")
        self.spec.autocreate = bool(value)

    @property
    def programs(self) -> Dict[str, str]:
        """Function-pointer member -> the program bound to it now."""
        struct_t = self.btf[self.spec.type_id]
        assert isinstance(struct_t, T.Struct)
        return {struct_t.members[i].name: prog for i, prog in sorted(self.spec.progs.items())}

    def members(self) -> List[str]:
        """The BPF-side struct's member names, in declaration order."""
        return list(self._members)

    def _check_open(self, what: str) -> None:
        if self.value is not None or self.map.loaded:
            raise BPFError(f"struct_ops {self.name!r}: {what} can only be changed before "
                           "load()")

    def _member(self, name: str) -> Tuple[int, T.Member]:
        try:
            return self._members[name]
        except KeyError:
            raise KeyError(f"struct {self.type_name} has no member {name!r} (it has: "
                           f"{', '.join(self._members)})") from None

    def __getitem__(self, name: str) -> Any:
        """A data member's value (BPF-side image) or a function pointer's program name."""
        index, member = self._member(name)
        if is_func_pointer(self.btf, member.type):
            return self.spec.progs.get(index)
        from ..btf import codec
        off = member.bit_offset // 8
        raw = bytes(self.spec.data[off:off + self.btf.size_of(member.type)])
        return codec.decode(self.btf, member.type, raw)

    def __setitem__(self, name: str, value: Any) -> None:
        """Set a data member, or bind a function pointer to a struct_ops program
        (a Program, its name, or None to leave the member unset)."""
        self._check_open(f"member {name!r}")
        index, member = self._member(name)
        if is_func_pointer(self.btf, member.type):
            self._bind(index, name, value)
            return
        if member.bitfield_size:
            raise BPFError(f"struct_ops {self.name!r}: bitfield member {name!r} cannot be set")
        from ..btf import codec
        size = self.btf.size_of(member.type)
        if isinstance(value, (bytes, bytearray)) and len(value) <= size:
            raw = bytes(value).ljust(size, b"\0")
        else:
            raw = codec.encode(self.btf, member.type, value)
        off = member.bit_offset // 8
        self.spec.data[off:off + size] = raw

    def _bind(self, index: int, member: str, value: Any) -> None:
        if value is None:
            self.spec.progs.pop(index, None)
            return
        name = value if isinstance(value, str) else getattr(value, "name", None)
        prog = self._programs.get(name) if isinstance(name, str) else None
        if prog is None or (not isinstance(value, str) and prog is not value):
            raise BPFError(f"struct_ops {self.name!r}: member {member!r} takes a program "
                           f"of this object, not {value!r}")
        if prog.type != uapi.BPF_PROG_TYPE_STRUCT_OPS:
            raise BPFError(f"struct_ops {self.name!r}: program {prog.name!r} is "
                           f"{prog.type_name}, not struct_ops")
        self.spec.progs[index] = prog.name

    # ---------------------------------------------------------------- load

    def prepare(self, layout: Optional[KernelLayout] = None) -> KernelValue:
        """Resolve the kernel layout (running kernel unless ``layout`` is given), size
        the map, and give each bound program its attach BTF id and member index."""
        if layout is None:
            layout = kernel_layout(self.spec.kernel_type_name, kernel_btfs())
        value = build_value(self.spec, self.btf, layout)
        btf_obj_fd = self._module_fd(layout)
        for slot in value.slots:
            prog = self._programs[slot.program]
            if prog.type != uapi.BPF_PROG_TYPE_STRUCT_OPS:
                raise ObjectError(f"struct_ops {self.name!r}: program {prog.name!r} bound "
                                  f"to {slot.member!r} is {prog.type_name}, not struct_ops",
                                  section=self.spec.section)
            if not prog.attach_btf_id:
                prog.attach_btf_id = layout.type_id
                prog.expected_attach_type = slot.kernel_index
                prog.attach_btf_obj_fd = btf_obj_fd
            elif (prog.attach_btf_id, prog.expected_attach_type) != \
                    (layout.type_id, slot.kernel_index):
                raise ObjectError(f"struct_ops {self.name!r}: program {prog.name!r} is "
                                  f"bound to member {slot.member!r} (struct "
                                  f"{self.spec.kernel_type_name} member #{slot.kernel_index})"
                                  " but already to another struct_ops member (type id "
                                  f"{prog.attach_btf_id} member #{prog.expected_attach_type})"
                                  ": a program serves one member of one struct type",
                                  section=self.spec.section)
        self.map.spec.value_size = layout.value_size
        self.value = value
        return value

    @staticmethod
    def _module_fd(layout: KernelLayout) -> int:
        if layout.module is None:
            return 0
        from .attach_btf import module_btf_fd
        return module_btf_fd(layout.module).fd

    def create(self, btf_fd: int) -> None:
        """BPF_MAP_CREATE of the struct_ops map (after prepare())."""
        if self.value is None:
            raise BPFError(f"struct_ops {self.name!r}: prepare() before create()")
        if not btf_fd:
            raise BPFError(f"struct_ops map {self.name!r} needs the object's BTF in the "
                           "kernel, and the kernel refused it")
        layout, spec = self.value.layout, self.map.spec
        module_fd = self._module_fd(layout)
        flags = spec.flags | (uapi.BPF_F_VTYPE_BTF_OBJ_FD if module_fd else 0)
        self.map.adopt(syscall.map_create(
            uapi.BPF_MAP_TYPE_STRUCT_OPS, spec.key_size, layout.value_size, spec.max_entries,
            flags, self.map.kernel_name, btf_fd=btf_fd,
            btf_vmlinux_value_type_id=layout.value_type_id,
            value_type_btf_obj_fd=module_fd))

    # ---------------------------------------------------------------- attach

    def image(self) -> bytes:
        """The map value with the program fds, as the kernel receives it."""
        if self.value is None:
            raise BPFError(f"struct_ops {self.name!r} is not loaded")
        fds: Dict[str, int] = {}
        for slot in self.value.slots:
            prog = self._programs[slot.program]
            if not prog.loaded:
                raise AttachError(f"struct_ops {self.name!r}: program {prog.name!r} bound "
                                  f"to member {slot.member!r} is not loaded")
            fds[prog.name] = prog.fd
        return value_with_fds(self.value, fds)

    def _set_value(self, image: Optional[bytes] = None) -> None:
        """Give a .struct_ops.link map its value (once: the kernel then refuses changes)."""
        if not self.map.loaded:
            raise AttachError(f"struct_ops {self.name!r}: its map is not created")
        try:
            syscall.map_update(self.map.fd, _KEY, image if image is not None else self.image())
        except BPFError as e:
            if e.errno != _errno.EBUSY:             # set once already: it cannot change
                raise

    def attach(self) -> Link:
        """Register (libbpf's bpf_map__attach_struct_ops); closing the Link unregisters."""
        where = f"struct_ops {self.name!r} (struct {self.type_name})"
        if not self.map.loaded:
            raise AttachError(f"cannot attach {where}: its map is not created (load() the "
                              "object; ?.struct_ops maps need autocreate = True)")
        image = self.image()
        try:
            if not self.is_link:
                fd = Fd(os.dup(self.map.fd))        # owned before it can be registered
                try:
                    syscall.map_update(fd.fd, _KEY, image)
                except BaseException:
                    fd.close()
                    raise
                link: Link = StructOpsLink(fd, desc=where)
            else:
                self._set_value(image)
                link = StructOpsMapLink(
                    syscall.link_create(self.map.fd, 0, uapi.BPF_STRUCT_OPS), self, where)
        except BPFError as e:
            hint = ""
            if e.errno == _errno.EBUSY and not self.is_link:
                hint = (" (a .struct_ops map registers once: it is registered, or was "
                        "and is spent; load the object again, or use .struct_ops.link)")
            elif e.errno == _errno.EEXIST:
                hint = " (the kernel already has one by this name)"
            raise AttachError(f"registering {where}: {e}{hint}", e.errno) from e
        self.links.append(link)
        return link

    def kernel_value(self) -> Dict[str, Any]:
        """The map's value as the kernel reports it, decoded with the kernel's BTF:
        ``common`` (refcnt, state) and ``data``, where function pointers read as the
        ids of the programs behind them (as bpftool struct_ops dump shows)."""
        if self.value is None or not self.map.loaded:
            raise BPFError(f"struct_ops {self.name!r} is not loaded")
        from ..btf import codec
        layout = self.value.layout
        raw = syscall.map_lookup(self.map.fd, _KEY, layout.value_size)
        if raw is None:
            raise BPFError(f"struct_ops {self.name!r}: the kernel returned no value")
        decoded: Dict[str, Any] = codec.decode(layout.btf, layout.value_type_id, raw)
        return decoded

    def close(self) -> None:
        """Unregister: close every Link made by attach()."""
        links, self.links = self.links, []
        for link in links:
            link.close()

    def __repr__(self) -> str:
        kind = ".struct_ops.link" if self.is_link else ".struct_ops"
        return f"<StructOps {self.name} struct {self.type_name} {kind} {self.programs}>"
