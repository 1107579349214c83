"""An on-disk cache of the record index of big BTF blobs (vmlinux, modules).

``BTF.parse`` walks every record once to find where each starts and its name
offset: ~15 ms for the ~126k types of vmlinux, a sixth of what a whole ``load``
may cost, and finding a name searches megabytes of strings (~1 ms each).  The
walk's result, with the types ordered by the CRC-32 of their names (so that a
name is found by binary search, then checked against the strings) and the
strings of CO-RE flavors (``task_struct___v2``: another search of the strings,
~3 ms), is stored as u32 arrays under a key of the blob's contents
(:func:`key`), so a changed blob is a different key and its index is rebuilt,
never reused.

The cache is trusted the way Python trusts ``__pycache__``, and no further: a
directory or file is used only if it is owned by the effective user and writable
by no one else, a file is opened without following symlinks, and it must hold
the very key it is stored under, a size that fits the blob and a CRC-32 of its
whole contents, so a truncated, corrupted or swapped file is ignored (and
rewritten).  Failing to read or write the cache is never an error: the blob is
then scanned, as without a cache.

The directory is pybpf's cache directory (:mod:`pybpf.cachedir`: ``PYBPF_CACHE_DIR``;
empty, no cache).
"""
from __future__ import annotations

import os
import stat
import struct
import sys
import zlib
from array import array
from typing import NamedTuple, Optional

from ..cachedir import boot_id, directory as cache_directory, is_private, write
from .strtab import Blob, StringTable

_BOOT_KEY = struct.Struct("=4s16sQI")         # "boot", boot id, size, CRC-32: 32 bytes
_MAGIC = b"pybpfBI4"          # the file format (bump on any change)
_HEAD = struct.Struct("=8s32sII")  # magic, blob digest, record count, flavored strings
_CRC = struct.Struct("=I")    # zlib.crc32 of everything before it

_ARRAYS = 4                   # u32 arrays of one entry per record


class Index(NamedTuple):
    """What a walk over a blob's records yields, as u32 arrays of one entry per record."""

    offsets: "array[int]"        # word offset of each record, in id order
    names: "array[int]"          # name_off of each record, in id order
    by_hash: "array[int]"        # record indexes ordered by name_hash (stable: ids ascend)
    hashes: "array[int]"         # the name_hash of each of those, ascending
    flavored: "array[int]"       # offsets of the strings holding corematch.FLAVOR_SEP


def name_hash(name: bytes) -> int:
    """What :attr:`Index.hashes` orders names by: their CRC-32 (any collision is
    resolved by comparing the strings themselves)."""
    return zlib.crc32(name)


def index_of(offsets: "array[int]", names: "array[int]", strings: StringTable) -> Index:
    """The full index from a walk's two arrays and the blob's strings: hashing and
    ordering the names costs ~0.1 s on vmlinux, paid once, when the index is stored."""
    from .corematch import FLAVOR_SEP
    hashes = [name_hash(strings.raw(off)) for off in names]
    by_hash = array("I", sorted(range(len(hashes)), key=hashes.__getitem__))
    return Index(offsets, names, by_hash, array("I", map(hashes.__getitem__, by_hash)),
                 array("I", strings.offsets_containing(FLAVOR_SEP)))


def key(blob: Blob, running_kernel: bool = False) -> bytes:
    """What the index of ``blob`` is stored under: 32 bytes.

    For the running kernel's own BTF (``running_kernel``: read from sysfs), which
    cannot change before the next boot: this boot's id, the blob's size and its
    CRC-32, so that a start needs neither OpenSSL (~5 ms to load) nor a SHA-256 of
    ~5 MB.  For any other blob, its SHA-256."""
    if running_kernel:
        boot = boot_id()
        if boot is not None:
            return _BOOT_KEY.pack(b"boot", boot, len(blob), zlib.crc32(blob))
    import hashlib
    return hashlib.sha256(blob).digest()


def _path(folder: str, digest: bytes) -> str:
    return os.path.join(folder, f"btf-{digest.hex()}-{sys.byteorder}.idx")


def load(digest: bytes, words: int) -> Optional[Index]:
    """The stored index of the blob with this digest, whose type section has ``words``
    u32 words; None if there is none or it cannot be trusted."""
    folder = cache_directory()
    if folder is None:
        return None
    try:
        if not is_private(os.lstat(folder), stat.S_IFDIR):
            return None
        fd = os.open(_path(folder, digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # a record is at least 3 words: more entries than that is a lie
        limit = _HEAD.size + 4 * (_ARRAYS + 1) * (words // 3) + _CRC.size
        if not is_private(st, stat.S_IFREG) or st.st_size > limit:
            return None
        raw = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _decode(raw, digest, words)


def _decode(raw: bytes, digest: bytes, words: int) -> Optional[Index]:
    if len(raw) < _HEAD.size + _CRC.size:
        return None
    magic, stored, count, flavored = _HEAD.unpack_from(raw)
    end = _HEAD.size + 4 * (_ARRAYS * count + flavored)
    if magic != _MAGIC or stored != digest or len(raw) != end + _CRC.size \
            or zlib.crc32(memoryview(raw)[:end]) != _CRC.unpack_from(raw, end)[0]:
        return None
    parts, view = [], memoryview(raw)
    for k in range(_ARRAYS + 1):
        part = array("I")
        part.frombytes(view[_HEAD.size + 4 * count * k:
                            _HEAD.size + 4 * count * k + 4 * (count if k < _ARRAYS else flavored)])
        parts.append(part)
    index = Index(*parts)
    if count and (index.offsets[0] != 0 or index.offsets[-1] + 3 > words):
        return None
    return index


def store(digest: bytes, index: Index) -> None:
    """Write the index (:func:`pybpf.cachedir.write`: atomic, private, silent on failure)."""
    folder = cache_directory()
    if folder is None:
        return
    body = _HEAD.pack(_MAGIC, digest, len(index.offsets), len(index.flavored)) + b"".join(
        part.tobytes() for part in index)
    write(_path(folder, digest), body + _CRC.pack(zlib.crc32(body)))
