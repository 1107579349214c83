"""Map: one BPF map of an object, and GlobalData, the live view of .data/.rodata/.bss.

Keys and values are ``bytes`` always; where the map carries BTF they may also
be Python values (int, bytes for char arrays, dict for structs), encoded and
decoded through :mod:`pybpf.btf.codec`.  Per-CPU maps read as a list with one
value per possible CPU.
"""
from __future__ import annotations

import errno
import mmap
import os
import struct
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, cast

from .kernel import syscall
from . import uapi
from .btf import BTF
from .errors import BPFError, ObjectError
from .obj.map_rules import ringbuf_size
from .events.ringmem import close_mmap
from .obj.spec import MapSpec, kernel_map_name
from .kernel.syscall import Fd
from .kernel.sysinfo import possible_cpus

if TYPE_CHECKING:
    from .link.hooks import Link
    from .link.struct_ops import StructOps
    from .kernel.arena import ArenaMemory
    from .btf.codec import Codec

PER_CPU_TYPES = frozenset({uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_PERCPU_ARRAY,
                           uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                           uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})
#: maps whose value is a file descriptor (or an object with .fd) on update, an id on lookup
FD_VALUE_TYPES = frozenset({uapi.BPF_MAP_TYPE_PROG_ARRAY, uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                            uapi.BPF_MAP_TYPE_HASH_OF_MAPS,
                            uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                            uapi.BPF_MAP_TYPE_CGROUP_ARRAY})
#: maps that are not key/value stores (read with their own readers)
_NO_KV_TYPES = frozenset({uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF})

_LOADED_ATTRS = ("type", "key_size", "value_size", "max_entries", "flags")


class Map:
    """A BPF map.  Geometry (``max_entries``, ``flags``, ...) may be changed until the
    object is loaded; afterwards the map is a dict-like view of the kernel map."""

    def __init__(self, spec: MapSpec, btf: Optional[BTF] = None, obj_name: str = ""):
        self.spec = spec
        self.name = spec.name
        self.kernel_name = kernel_map_name(obj_name, spec)
        self.btf = btf
        self.pin_path: Optional[str] = None
        #: an ARENA map's user-space mapping, from load() to close()
        self.arena: Optional["ArenaMemory"] = None
        self._fd: Optional[Fd] = None
        self._key_codec: Optional[_Codec] = None
        self._value_codec: Optional[_Codec] = None
        #: the members and registration of a struct_ops map (set by its BPFObject)
        self.struct_ops: Optional["StructOps"] = None

    # ---------------------------------------------------------------- geometry

    def __getattr__(self, attr: str) -> Any:
        if attr in _LOADED_ATTRS or attr in ("btf_key_type_id", "btf_value_type_id"):
            return getattr(self.__dict__["spec"], attr)
        raise AttributeError(attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr in _LOADED_ATTRS:
            if self.loaded:
                raise BPFError(f"map {self.name!r}: {attr} can only be changed before load()")
            if attr == "value_size" and self.spec.is_global_data:
                raise BPFError(f"map {self.name!r}: a global data section's size is fixed")
            value = int(value)
            if attr == "max_entries" and self.spec.type in _NO_KV_TYPES:
                value = ringbuf_size(value)     # as libbpf's bpf_map__set_max_entries
            setattr(self.spec, attr, value)
            return
        object.__setattr__(self, attr, value)

    @property
    def fd(self) -> int:
        """The map's fd (BPFError before load() and after close())."""
        fd = self._fd
        if fd is None:
            raise BPFError(f"map {self.name!r} is not created (load the object first)")
        if fd.closed:
            raise BPFError(f"map {self.name!r} is closed", errno.EBADF)
        return fd.fd

    @property
    def loaded(self) -> bool:
        """Whether the kernel map exists (created or adopted from a pin)."""
        fd = self.__dict__.get("_fd")
        return fd is not None and not fd.closed

    @property
    def per_cpu(self) -> bool:
        """Whether values are per CPU (lookup returns a list, one value per possible CPU)."""
        return self.spec.type in PER_CPU_TYPES

    @property
    def type_name(self) -> str:
        """The map type as bpftool spells it (``hash``, ``ringbuf``...)."""
        return uapi.short_name(uapi.bpf_map_type, self.spec.type, "BPF_MAP_TYPE_", "type#{}")

    # ---------------------------------------------------------------- kernel

    def create(self, btf_fd: int = 0, inner_map_fd: int = 0) -> None:
        """BPF_MAP_CREATE with the spec's geometry; retried without BTF where the
        kernel refuses BTF for this map type (as libbpf does)."""
        spec = self.spec
        if spec.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY and not spec.max_entries:
            spec.max_entries = len(possible_cpus())
        if spec.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            spec.key_size = spec.key_size or 4
            spec.value_size = spec.value_size or 4
        if spec.type in _NO_KV_TYPES:
            _check_ring_size(self.name, spec.max_entries)
        args: Dict[str, Any] = dict(
            map_type=spec.type, key_size=spec.key_size, value_size=spec.value_size,
            max_entries=spec.max_entries, flags=spec.flags, name=self.kernel_name,
            inner_map_fd=inner_map_fd, map_extra=spec.map_extra, numa_node=spec.numa_node)
        has_btf = btf_fd and (spec.btf_key_type_id or spec.btf_value_type_id)
        try:
            self._fd = syscall.map_create(
                **args, btf_fd=btf_fd if has_btf else 0,
                btf_key_type_id=spec.btf_key_type_id if has_btf else 0,
                btf_value_type_id=spec.btf_value_type_id if has_btf else 0)
        except BPFError as e:
            if not has_btf or e.errno in (1, 13):   # EPERM/EACCES: no point retrying
                raise
            self._fd = syscall.map_create(**args)

    def attach_struct_ops(self) -> "Link":
        """Register a struct_ops map (libbpf's bpf_map__attach_struct_ops); closing
        the returned Link unregisters it."""
        if self.struct_ops is None:
            raise BPFError(f"map {self.name!r} is a {self.type_name} map, not a struct_ops "
                           "map of an object")
        return self.struct_ops.attach()

    def map_arena(self) -> "ArenaMemory":
        """mmap an ARENA map (max_entries pages, at map_extra if set), as libbpf
        does right after creating it."""
        from .kernel.arena import ArenaMemory
        self.arena = ArenaMemory(self.fd, self.spec.max_entries * mmap.PAGESIZE,
                                 self.spec.map_extra, self.name)
        return self.arena

    @classmethod
    def from_id(cls, map_id: int) -> "Map":
        """Open the kernel map ``map_id`` (its BTF too, for decoded keys and values)."""
        from .loaded import open_map
        return open_map(map_id)

    @classmethod
    def from_pinned(cls, path: str) -> "Map":
        """Open the map pinned at ``path`` on a BPF filesystem."""
        from .loaded import open_pinned_map
        return open_pinned_map(path)

    def adopt(self, fd: Fd) -> None:
        """Use an existing kernel map (a pinned one) instead of creating one."""
        self._fd = fd

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: user space can no longer write the map."""
        syscall.map_freeze(self.fd)

    def pin(self, path: str) -> None:
        """Pin the map at ``path`` on a bpffs (mounted at /sys/fs/bpf if needed)."""
        from .kernel.fs import ensure_bpffs_for
        ensure_bpffs_for(path)
        syscall.obj_pin(self.fd, path)
        self.pin_path = path

    def unpin(self) -> None:
        """Remove the pin made by pin() (the map lives on while fds hold it)."""
        if self.pin_path:
            os.unlink(self.pin_path)
            self.pin_path = None

    def close(self) -> None:
        """Close the map's fd (the object calls this on close)."""
        if self.arena is not None:
            self.arena.close()
            self.arena = None
        if self._fd is not None:
            self._fd.close()

    def info(self) -> uapi.bpf_map_info:
        """The kernel's ``struct bpf_map_info`` of this map (BPF_OBJ_GET_INFO_BY_FD)."""
        return syscall.obj_info(self.fd, uapi.bpf_map_info)

    # ---------------------------------------------------------------- key/value

    def _codecs(self) -> Tuple[_Codec, _Codec]:
        if self._key_codec is None:
            from .btf import codec
            self._key_codec = _Codec(self.btf, self.spec.btf_key_type_id, self.spec.key_size,
                                     codec, f"map {self.name!r}: a key")
            self._value_codec = _Codec(self.btf, self.spec.btf_value_type_id,
                                       self.spec.value_size, codec,
                                       f"map {self.name!r}: a value")
        return self._key_codec, cast(_Codec, self._value_codec)   # set with the key's

    def _value_buf_size(self) -> int:
        if self.per_cpu:
            return _round8(self.spec.value_size) * len(possible_cpus())
        return self.spec.value_size

    def _check_kv(self) -> None:
        if self.spec.type in _NO_KV_TYPES:
            raise BPFError(f"map {self.name!r} is a {self.type_name}: read it with "
                           "pybpf.RingBuffer, not as a dict")

    def lookup(self, key: Any, default: Any = None) -> Any:
        """The value at ``key`` decoded through BTF (a list per CPU for per-CPU maps), or
        ``default``."""
        self._check_kv()
        kc, vc = self._codecs()
        raw = syscall.map_lookup(self.fd, kc.encode(key), self._value_buf_size())
        if raw is None:
            return default
        if self.per_cpu:
            step = _round8(self.spec.value_size)
            return [vc.decode(raw[i:i + self.spec.value_size])
                    for i in range(0, len(raw), step)]
        if self.spec.type in FD_VALUE_TYPES:
            return struct.unpack("<I", raw)[0]     # the kernel answers with an id
        return vc.decode(raw)

    def update(self, key: Any, value: Any, flags: int = uapi.BPF_ANY) -> None:
        """Store ``value`` at ``key`` (encoded through BTF; ``flags``: BPF_ANY, BPF_NOEXIST,
        BPF_EXIST)."""
        self._check_kv()
        kc, vc = self._codecs()
        if self.per_cpu:
            values = value if isinstance(value, (list, tuple)) else \
                [value] * len(possible_cpus())
            step = _round8(self.spec.value_size)
            if len(values) != len(possible_cpus()):
                raise BPFError(f"map {self.name!r}: {len(values)} values for a per-CPU value "
                               f"({len(possible_cpus())} CPUs x {step} bytes)")
            raw = b"".join(vc.encode(v).ljust(step, b"\0") for v in values)
        elif self.spec.type in FD_VALUE_TYPES:
            raw = struct.pack("<I", value.fd if hasattr(value, "fd") else value)
        else:
            raw = vc.encode(value)
        syscall.map_update(self.fd, kc.encode(key), raw, flags)

    def delete(self, key: Any) -> bool:
        """Delete ``key``; False if it was not there."""
        self._check_kv()
        kc, _ = self._codecs()
        return syscall.map_delete(self.fd, kc.encode(key))

    def __getitem__(self, key: Any) -> Any:
        value = self.lookup(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self.lookup(key, _MISSING) is not _MISSING

    def raw_keys(self) -> Iterator[bytes]:
        """Every key as bytes (BPF_MAP_GET_NEXT_KEY), restarting if the map changes under the
        walk."""
        self._check_kv()
        key: Optional[bytes] = None
        seen = 0
        while True:
            key = syscall.map_get_next_key(self.fd, key, self.spec.key_size)
            if key is None:
                return
            yield key
            seen += 1
            if seen > max(self.spec.max_entries, 1) * 2:    # a map mutating under us
                return

    def keys(self) -> Iterator[Any]:
        """Every key, decoded through BTF."""
        kc, _ = self._codecs()
        return (kc.decode(k) for k in self.raw_keys())

    def items(self) -> Iterator[Tuple[Any, Any]]:
        """(key, value) of every entry, decoded through BTF."""
        kc, _ = self._codecs()
        for raw in self.raw_keys():
            value = self.lookup(raw, _MISSING)
            if value is not _MISSING:
                yield kc.decode(raw), value

    def values(self) -> Iterator[Any]:
        """Every value, decoded through BTF."""
        return (v for _, v in self.items())

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def histogram(self, kind: Optional[str] = None, base: int = 0, step: int = 1) -> List[Any]:
        """The histograms this map holds (:mod:`pybpf.metrics.hist`: layout found from BTF;
        ``kind`` "log2" or "linear" overrides the name rule)."""
        from .metrics import hist
        if kind == "linear":
            return hist.linear(self, base, step)
        return hist.log2(self) if kind == "log2" else hist.read(self)

    def __len__(self) -> int:
        return sum(1 for _ in self.raw_keys())

    def __repr__(self) -> str:
        state = f"fd={cast(Fd, self._fd).fd}" if self.loaded else "not created"
        return (f"<Map {self.name} {self.type_name} key={self.spec.key_size} "
                f"value={self.spec.value_size} max_entries={self.spec.max_entries} {state}>")


_MISSING = object()


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _check_ring_size(name: str, size: int) -> None:
    page = mmap.PAGESIZE
    if size < page or size % page or size & (size - 1):
        raise BPFError(f"ring buffer {name!r}: max_entries={size} must be a power of two "
                       f"and a multiple of the page size ({page})")


class _Codec:
    """Key or value conversion: bytes pass through; other values go through BTF,
    or through little-endian packing for plain integers when there is no BTF.
    Bytes must have exactly the map's size: the kernel reads that many from the
    buffer it is given, so a shorter one would be over-read."""

    def __init__(self, btf: Optional[BTF], type_id: int, size: int,
                 codec_mod: ModuleType, what: str) -> None:
        self.size, self.what = size, what
        self.compiled: Optional[Codec] = \
            codec_mod.compile(btf, type_id) if btf is not None and type_id else None

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) != self.size:
                raise BPFError(f"{self.what} of {len(raw)} bytes, the map's have "
                               f"{self.size} (the size the kernel reads)")
            return raw
        if self.compiled is not None:
            return self.compiled.encode(value)
        if isinstance(value, int) and self.size in (1, 2, 4, 8):
            return value.to_bytes(self.size, "little", signed=value < 0)
        raise BPFError(f"cannot encode {type(value).__name__} into {self.size} bytes "
                       "without BTF: pass bytes")

    def decode(self, raw: bytes) -> Any:
        if self.compiled is not None:
            return self.compiled.decode(raw)
        return raw


class _MapValue:
    """Slices of a one-element array map's value, read and written through
    BPF_MAP_LOOKUP_ELEM / UPDATE_ELEM: the live view of a data map that is not
    mmapable (libbpf only mmaps data maps with a non-static variable; the kernel
    refuses mmap for values holding spin locks, timers, kptrs, graph roots).
    A write is read-modify-write of the whole value, not atomic against the
    programs."""

    _KEY = b"\0\0\0\0"

    def __init__(self, map_: Map):
        self.map = map_

    def __getitem__(self, where: slice) -> bytes:
        raw = syscall.map_lookup(self.map.fd, self._KEY, self.map.spec.value_size)
        return (raw or bytes(self.map.spec.value_size))[where]

    def __setitem__(self, where: slice, raw: bytes) -> None:
        value = bytearray(self[:])
        value[where] = raw
        syscall.map_update(self.map.fd, self._KEY, bytes(value))


class GlobalData:
    """The variables of one global data section (.data, .rodata, .bss, .data.NAME,
    or the __arena globals), by name.  Before load() they edit the initial image;
    after load() they read and write the kernel's memory: through an mmap of the
    map where libbpf makes it mmapable, else through map lookups and updates.
    After the object is closed every use raises :class:`BPFError`."""

    def __init__(self, map_: Map, variables: Dict[str, Tuple[int, int, int]],
                 initial: Optional[bytes] = None):
        self.map = map_
        self.variables = variables          # name -> (offset, size, btf type id)
        self.image = bytearray(map_.spec.initial if initial is None else initial)
        self._mm: Optional[mmap.mmap] = None    # an mmap this view owns
        self._live: Any = None              # the kernel-side buffer after load()
        self._closed = False
        self._codecs: Dict[str, Any] = {}   # variable -> compiled BTF codec, built once

    def _buffer(self) -> Any:
        live = self._live
        if live is not None:
            return live
        if self._closed:
            raise BPFError(f"{self.map.name}: the object is closed", errno.EBADF)
        return self.image

    def _closed_meanwhile(self, e: Exception) -> BPFError:
        """The error for an access that failed because close() unmapped the section
        under it (from another thread); re-raises anything else."""
        if self._closed or self._live is None:
            return BPFError(f"{self.map.name}: the object is closed", errno.EBADF)
        raise e

    @property
    def mmaped(self) -> bool:
        """Whether the live values are read straight from mapped memory."""
        return self._live is not None and not isinstance(self._live, _MapValue)

    def attach_mmap(self, writable: bool) -> None:
        """Go live on the map: mmap it if it is BPF_F_MMAPABLE, else (or if the
        kernel refuses the mmap) through map lookups and updates.  The image is
        kept: a failed load() can be retried with the values set before it."""
        if self.map.spec.flags & uapi.BPF_F_MMAPABLE:
            size = max(_round_page(self.map.spec.value_size), mmap.PAGESIZE)
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            try:
                self._mm = self._live = mmap.mmap(self.map.fd, size, mmap.MAP_SHARED, prot)
                return
            except OSError:
                pass
        self._live = _MapValue(self.map)

    def attach_buffer(self, buffer: Any) -> None:
        """Go live on memory owned by someone else (an arena's mapping)."""
        self._live = buffer

    def close(self, final: bool = False) -> None:
        """Unmap; ``final`` (the object is closed): every later use raises BPFError."""
        if final:
            self._closed = True
        self._live = None
        mm, self._mm = self._mm, None
        close_mmap(mm)

    def _var(self, name: str) -> Tuple[int, int, int]:
        try:
            return self.variables[name]
        except KeyError:
            raise KeyError(f"{self.map.name} has no variable {name!r} "
                           f"(it has: {', '.join(sorted(self.variables)) or 'none'})") from None

    def _codec(self, name: str, type_id: int) -> Any:
        codec = self._codecs.get(name)
        if codec is None:
            from .btf import codec as codec_mod
            codec = self._codecs[name] = codec_mod.compile(cast(BTF, self.map.btf), type_id)
        return codec

    def raw(self, name: str) -> bytes:
        """The bytes of variable ``name`` (KeyError naming the known variables)."""
        off, size, _ = self._var(name)
        return self._read(off, size)

    def _read(self, off: int, size: int) -> bytes:
        try:
            return bytes(self._buffer()[off:off + size])
        except ValueError as e:         # unmapped meanwhile
            raise self._closed_meanwhile(e) from None

    def __getitem__(self, name: str) -> Any:
        off, size, type_id = self._var(name)
        raw = self._read(off, size)
        if self.map.btf is None or not type_id:
            return raw
        return self._codec(name, type_id).decode(raw)

    def __setitem__(self, name: str, value: Any) -> None:
        off, size, type_id = self._var(name)
        buf = self._buffer()
        if buf is not self.image and self.map.spec.readonly:
            raise BPFError(f"{self.map.name} is read-only after load(): set "
                           f"{name!r} before load()")
        if isinstance(value, str):      # text, as on the command line: by the BTF type
            value = self._from_text(name, type_id, size, value)
        if isinstance(value, (bytes, bytearray)) and len(value) <= size:
            raw = bytes(value).ljust(size, b"\0")
        elif self.map.btf is not None and type_id:
            raw = self._codec(name, type_id).encode(value)
        elif isinstance(value, int) and size in (1, 2, 4, 8):
            raw = value.to_bytes(size, "little", signed=value < 0)
        else:
            raise ObjectError(f"cannot store {value!r} in {name!r} ({size} bytes)")
        try:
            buf[off:off + size] = raw
        except (ValueError, TypeError) as e:     # unmapped meanwhile
            raise self._closed_meanwhile(e) from None

    def _from_text(self, name: str, type_id: int, size: int, text: str) -> Any:
        if self.map.btf is not None and type_id:
            from .obj.setvalue import parse_value
            return parse_value(self.map.btf, type_id, text, name)
        try:
            return int(text, 0).to_bytes(size, "little", signed=text.lstrip().startswith("-"))
        except (ValueError, OverflowError):
            raise BPFError(f"{name} ({size} bytes, no BTF): {text!r} is not an integer "
                           "that fits; pass bytes") from None

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def keys(self) -> List[str]:
        """The variable names, in section order."""
        return list(self.variables)

    def items(self) -> List[Tuple[str, Any]]:
        """(name, decoded value) of every variable."""
        return [(name, self[name]) for name in self.variables]

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        return f"<GlobalData {self.map.name} {dict(self.items())!r}>"


def _round_page(n: int) -> int:
    return (n + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1)
