"""The on-disk cache of big BTF blobs' record index (pybpf.btf.cache): hits give the
very BTF a scan gives; changed, corrupted, foreign or unsafe files are ignored."""
import os
import stat
import struct
import zlib

import pytest

from pybpf import cachedir
from pybpf.btf import cache, parse, spec
from pybpf.btf import types as T
from pybpf import uapi
from pybpf.errors import ObjectError


def _big_blob(extra: str = "") -> bytes:
    """A BTF blob past the cache's size threshold: structs of ints, names repeated."""
    btf = spec.BTF()
    ints = [btf.add(T.Int(f"int{n}{extra}", 4, 1, 0, 32)) for n in range(64)]
    btf.add(T.Struct(f"task___v2{extra}", 0, []))
    btf.add(T.Struct("a___b", 0, []))
    for n in range(9000):
        btf.add(T.Struct(f"s{n % 4000}", 8, [T.Member("a", ints[n % 64], 0),
                                            T.Member("b", ints[(n + 1) % 64], 32)]))
    blob = btf.encode()
    assert len(blob) >= spec.MIN_CACHED_BLOB
    return blob


@pytest.fixture(scope="module")
def blob() -> bytes:
    return _big_blob()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv(cachedir.CACHE_ENV, str(path))
    return path


@pytest.fixture
def scans(monkeypatch):
    """How many times BTF.parse walked a blob's records."""
    count = [0]
    real = spec.scan

    def counting(*args):
        count[0] += 1
        return real(*args)
    monkeypatch.setattr(spec, "scan", counting)
    return count


def _cached(blob: bytes) -> spec.BTF:
    return spec.BTF.parse(blob, cache_key=cache.key(blob))


def _files(folder) -> list:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _same(a: spec.BTF, b: spec.BTF) -> None:
    assert len(a) == len(b)
    assert list(a._offsets) == list(b._offsets) and a._name_offs == b._name_offs
    for name in ("s17", "int3", "s3999", "absent"):
        assert a.find(name) == b.find(name)
    assert [a[i] for i in range(1, len(a))] == [b[i] for i in range(1, len(b))]


def test_a_hit_is_the_btf_a_scan_gives(blob, folder, scans):
    first = _cached(blob)
    assert scans[0] == 1 and len(_files(folder)) == 1
    name, = _files(folder)
    assert name == f"btf-{cache.key(blob).hex()}-{os.sys.byteorder}.idx"
    mode = os.stat(folder / name).st_mode
    assert stat.S_IMODE(mode) == 0o600 and stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    second = _cached(blob)
    assert scans[0] == 1                       # from the cache
    _same(second, first)
    _same(second, spec.BTF.parse(blob))
    assert second.find("s17") == [67 + 17, 67 + 4017, 67 + 8017]     # s0 is id 67


def test_a_changed_blob_is_scanned_again(blob, folder, scans):
    _cached(blob)
    other = _big_blob("x")
    got = _cached(other)
    assert scans[0] == 2 and len(_files(folder)) == 2
    assert got.find("int5x") == [6] and got.find("int5") == []


def test_small_blobs_and_uncached_parses_never_touch_the_cache(folder, scans):
    btf = spec.BTF()
    btf.add(T.Int("int", 4, 1, 0, 32))
    _cached(btf.encode())
    spec.BTF.parse(_big_blob())
    assert _files(folder) == [] and scans[0] == 2


def test_empty_setting_turns_the_cache_off(blob, tmp_path, monkeypatch, scans):
    monkeypatch.setenv(cachedir.CACHE_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cachedir.directory() is None
    _cached(blob)
    _cached(blob)
    assert scans[0] == 2 and os.listdir(tmp_path) == []


def test_default_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(cachedir.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cachedir.directory() == str(tmp_path / "xdg" / "pybpf")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cachedir.directory() == str(tmp_path / ".cache" / "pybpf")


def _stored(blob, folder):
    _cached(blob)
    name, = _files(folder)
    return folder / name


def _rewrite(path, body: bytes, crc: bool = True) -> None:
    """The file with ``body`` and, with ``crc``, a checksum that matches it."""
    path.write_bytes(body + (struct.pack("=I", zlib.crc32(body)) if crc else b""))


@pytest.mark.parametrize("fault", ["flipped payload", "truncated", "empty", "short header",
                                   "bad magic", "other key", "lying count", "first offset",
                                   "last offset", "too big"])
def test_damaged_files_are_ignored_and_rewritten(blob, folder, scans, fault):
    path = _stored(blob, folder)
    raw = path.read_bytes()
    body, head = raw[:-4], struct.Struct("=8s32sII")
    magic, digest, count, flavored = head.unpack_from(raw)
    offsets = raw[head.size:head.size + 4 * count]
    names = raw[head.size + 4 * count:-4]          # and the two arrays of the name order
    assert len(raw) == head.size + 16 * count + 4 * flavored + 4 and flavored == 2
    if fault == "flipped payload":
        path.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    elif fault == "truncated":
        path.write_bytes(raw[:-9])
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "short header":
        path.write_bytes(raw[:20])
    elif fault == "bad magic":
        _rewrite(path, b"pybpfBI3" + body[8:])        # the format before the flavors
    elif fault == "other key":
        _rewrite(path, head.pack(magic, bytes(32), count, flavored) + body[head.size:])
    elif fault == "lying count":
        _rewrite(path, head.pack(magic, digest, count + 1, flavored) + body[head.size:])
    elif fault == "first offset":
        _rewrite(path, head.pack(magic, digest, count, flavored) + struct.pack("=I", 3) + offsets[4:]
                 + names)
    elif fault == "last offset":
        words = len(parse.words(blob[24:24 + struct.unpack_from("=I", blob, 12)[0]]))
        _rewrite(path, head.pack(magic, digest, count, flavored) + offsets[:-4]
                 + struct.pack("=I", words - 2) + names)
    elif fault == "too big":
        _rewrite(path, body + bytes(20 * count))
    got = _cached(blob)
    assert scans[0] == 2                                # not trusted: scanned
    _same(got, spec.BTF.parse(blob))
    assert path.read_bytes() == raw                     # and stored again, whole
    _cached(blob)
    assert scans[0] == 3                                # (the uncached parse above)


@pytest.mark.parametrize("record, shift", [(5000, "past the end"), (5000, 7)])
def test_an_index_not_of_record_starts_is_an_object_error(blob, folder, record, shift):
    # a checksummed index that does not match the blob (forged, or a bug): an offset
    # past the words, or into a record (there, the member offset 32 reads as kind 0)
    path = _stored(blob, folder)
    index = cache.load(cache.key(blob), 1 << 30)
    offsets = index.offsets
    words = len(parse.words(blob[24:24 + struct.unpack_from("=I", blob, 12)[0]]))
    offsets[record] = words - 1 if shift == "past the end" else offsets[record] + shift
    cache.store(cache.key(blob), index._replace(offsets=offsets))
    btf = _cached(blob)
    type_id = btf.start_id + record
    with pytest.raises(ObjectError, match=r"no BTF type record starts here \(the record "
                                          r"index from the cache does not match the blob\)"
                                          rf".*offset {24 + 4 * offsets[record]:#x}\)"):
        btf[type_id]
    assert btf[type_id + 1] == spec.BTF.parse(blob)[type_id + 1]   # the others decode


def test_files_others_could_write_are_not_trusted(blob, folder, scans):
    path = _stored(blob, folder)
    os.chmod(path, 0o620)                               # group-writable
    _cached(blob)
    assert scans[0] == 2
    os.chmod(path, 0o600)
    os.chmod(folder, 0o777)                             # a directory anyone can write
    _cached(blob)
    _cached(blob)
    assert scans[0] == 4 and stat.S_IMODE(os.stat(folder).st_mode) == 0o777
    os.chmod(folder, 0o700)
    _cached(blob)
    assert scans[0] == 4


def test_symlinks_are_not_followed(blob, folder, tmp_path, scans, monkeypatch):
    path = _stored(blob, folder)
    real = tmp_path / "elsewhere.idx"
    os.rename(path, real)
    os.symlink(real, path)
    _cached(blob)
    assert scans[0] == 2 and os.path.islink(path) is False      # replaced by a file
    linked = tmp_path / "linked"
    os.symlink(folder, linked)                          # the directory itself a symlink
    monkeypatch.setenv(cachedir.CACHE_ENV, str(linked))
    _cached(blob)
    assert scans[0] == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_files_of_another_user_are_not_trusted(blob, folder, scans):
    path = _stored(blob, folder)
    try:
        os.chown(path, 65534, 65534)
    except PermissionError:                # root without CAP_CHOWN (the unprivileged pass)
        pytest.skip("chown needs CAP_CHOWN")
    _cached(blob)
    assert scans[0] == 2 and os.stat(path).st_uid == os.geteuid()   # rewritten as ours


def test_an_unusable_directory_is_no_error(blob, tmp_path, monkeypatch, scans):
    plain = tmp_path / "file"
    plain.write_bytes(b"")
    monkeypatch.setenv(cachedir.CACHE_ENV, str(plain / "cache"))   # under a regular file
    _same(_cached(blob), spec.BTF.parse(blob))
    monkeypatch.setenv(cachedir.CACHE_ENV, str(plain))              # a file, not a directory
    _cached(blob)
    assert scans[0] == 3 and plain.read_bytes() == b""


def test_a_malformed_blob_is_never_stored(blob, folder):
    raw = bytearray(blob)
    struct.pack_into("=I", raw, 24 + 16 * 5, 1 << 30)   # int #6's name offset: past the strings
    with pytest.raises(ObjectError, match="name offset 1073741824 of type 6 is past"):
        _cached(bytes(raw))
    assert _files(folder) == []


def test_stale_temporary_file_of_our_pid_is_replaced(blob, folder):
    os.makedirs(folder, mode=0o700)
    final = os.path.join(folder, f"btf-{cache.key(blob).hex()}-{os.sys.byteorder}.idx")
    with open(f"{final}.{os.getpid()}.tmp", "wb") as f:
        f.write(b"left over")
    _cached(blob)
    assert _files(folder) == [os.path.basename(final)]


def test_kernel_btf_goes_through_the_cache(folder, monkeypatch):
    from pybpf.btf import kernel
    path = kernel.vmlinux_path()
    if not os.path.exists(path):
        pytest.skip(f"no kernel BTF at {path} (CONFIG_DEBUG_INFO_BTF)")
    monkeypatch.setattr(kernel, "_vmlinux", {})
    first = kernel.vmlinux()
    with open(path, "rb") as f:
        data = f.read()
    assert _files(folder) == [f"btf-{cache.key(data, True).hex()}-{os.sys.byteorder}.idx"]
    monkeypatch.setattr(kernel, "_vmlinux", {})
    monkeypatch.setattr(spec, "scan", lambda *a: pytest.fail("scanned despite the cache"))
    again = kernel.vmlinux()
    assert again.find("task_struct") == first.find("task_struct") != []
    assert again[again.find_one("task_struct")] == first[first.find_one("task_struct")]


def test_kernel_btf_is_mapped_other_files_are_read(tmp_path, monkeypatch, folder):
    """sysfs vmlinux is mapped read-only (no copy) where the kernel allows it, and read
    where it does not; a PYBPF_VMLINUX file is always read (it could shrink)."""
    import mmap
    from pybpf.btf import kernel
    path = os.path.join(kernel.SYSFS_BTF, "vmlinux")
    if not os.path.exists(path):
        pytest.skip(f"no kernel BTF at {path} (CONFIG_DEBUG_INFO_BTF)")
    with open(path, "rb") as f:
        data = f.read()
    try:
        with open(path, "rb") as f:
            mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ).close()
        mappable = True
    except OSError:                    # kernels before vmlinux BTF could be mapped
        mappable = False
    blob = kernel._read(path)
    assert isinstance(blob, mmap.mmap) == mappable and blob[:] == data
    refused = []

    def no_mmap(*args, **kw):
        refused.append(args)
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(mmap, "mmap", no_mmap)
    assert kernel._read(path) == data and len(refused) == 1
    copy = tmp_path / "vmlinux"
    copy.write_bytes(data)
    assert kernel._read(str(copy)) == data and len(refused) == 1    # not even tried
    monkeypatch.setenv(kernel.VMLINUX_ENV, str(copy))
    monkeypatch.setattr(kernel, "_vmlinux", {})
    assert isinstance(kernel.vmlinux()._strtab.data, bytes)


def test_keys(blob, monkeypatch, tmp_path):
    import hashlib
    assert cache.key(blob) == hashlib.sha256(blob).digest()
    boot = tmp_path / "boot_id"
    boot.write_bytes(b"1913163b-8efd-4f8b-8905-09cdc71db978\n")
    monkeypatch.setattr(cachedir, "BOOT_ID", str(boot))
    assert cachedir.boot_id() == bytes.fromhex("1913163b8efd4f8b890509cdc71db978")
    k = cache.key(blob, running_kernel=True)
    assert len(k) == 32 and k == struct.pack("=4s16sQI", b"boot",
                                             bytes.fromhex("1913163b8efd4f8b890509cdc71db978"),
                                             len(blob), zlib.crc32(blob))
    assert cache.key(blob[:-1] + b"x", running_kernel=True) != k        # contents
    boot.write_bytes(b"2913163b-8efd-4f8b-8905-09cdc71db978\n")
    assert cache.key(blob, running_kernel=True) != k                    # another boot
    for bad in (b"", b"not a uuid", b"1913163b-8efd-4f8b-8905-09cdc71db97",
                b"1913163b-8efd-4f8b-8905-09cdc71db9zz", b"\xff" * 36):
        boot.write_bytes(bad)                                # no boot id: the SHA-256
        assert cachedir.boot_id() is None
        assert cache.key(blob, running_kernel=True) == cache.key(blob)
    boot.unlink()
    assert cachedir.boot_id() is None
    assert cache.key(blob, running_kernel=True) == cache.key(blob)


def test_kernel_start_needs_no_openssl():
    """A load start keys the kernel's BTF without hashlib (loading OpenSSL costs ~5 ms)."""
    import subprocess
    import sys
    from pybpf.btf import kernel
    if not os.path.exists(os.path.join(kernel.SYSFS_BTF, "vmlinux")):
        pytest.skip("no kernel BTF in sysfs (CONFIG_DEBUG_INFO_BTF)")
    code = ("import sys; from pybpf.btf import kernel; kernel.vmlinux(); "
            "print('hashlib' in sys.modules, '_hashlib' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYBPF_VMLINUX"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.split() == ["False", "False"]


def test_feature_probes_share_the_cache_directory(tmp_path, monkeypatch):
    from pybpf.kernel import probes
    boot = tmp_path / "boot_id"
    boot.write_bytes(b"1913163b-8efd-4f8b-8905-09cdc71db978\n")
    monkeypatch.setattr(cachedir, "BOOT_ID", str(boot))
    monkeypatch.setenv(cachedir.CACHE_ENV, str(tmp_path / "c"))
    assert probes.cache_path() == str(tmp_path / "c" / "features-1913163b8efd4f8b890509cdc71db978.json")
    monkeypatch.setenv(cachedir.CACHE_ENV, "")
    assert probes.cache_path() is None                  # caching off
    monkeypatch.setenv(cachedir.CACHE_ENV, str(tmp_path / "c"))
    boot.unlink()
    assert probes.cache_path() is None                  # no boot id: nothing per boot


def test_lookups_by_name_hash_match_the_scans(blob, folder):
    """Names found through the cached name hashes are the ones the scans find: several
    types of one name, names no type has, and a name_off pointing into the middle of
    another string (legal BTF: the string there is what counts)."""
    raw = bytearray(blob)
    btf = spec.BTF.parse(blob)
    s17 = btf._strtab.offsets_of("s17")[0]
    rec = 24 + 16 * 64 + 12 * 2 + 36 * 5          # the record of s5 (id 72)
    assert struct.unpack_from("=I", raw, rec)[0] == btf._strtab.offsets_of("s5")[0]
    struct.pack_into("=I", raw, rec, s17 + 1)     # now named "17", the tail of "s17"
    plain, cached = spec.BTF.parse(bytes(raw)), _cached(bytes(raw))
    again = _cached(bytes(raw))
    assert cached._by_hash is not None and again._by_hash is not None and plain._by_hash is None
    names = ["17", "s17", "s5", "s3999", "int0", "int63", "", "nothing", "s", "7"]
    for name in names:
        assert again.find(name) == cached.find(name) == plain.find(name), name
    assert again.find("17") == [72] and again.find("s5") == [4072, 8072]
    assert again.find("s17", uapi.BTF_KIND_STRUCT) == [84, 4084, 8084]
    assert again.find("int0", uapi.BTF_KIND_STRUCT) == []


def test_hash_collisions_are_told_apart_by_the_strings(blob, folder, monkeypatch):
    """Every name hashing alike (the worst CRC-32 could do) still finds exactly the
    types of each name."""
    monkeypatch.setattr(cache, "name_hash", lambda name: 7)
    _cached(blob)
    btf = _cached(blob)
    assert set(btf._by_hash[1]) == {7}
    plain = spec.BTF.parse(blob)
    for name in ("s17", "s5", "int3", "nothing", ""):
        assert btf.find(name) == plain.find(name), name


def test_flavored_names_come_from_the_index(blob, folder, monkeypatch):
    """The strings holding "___" (CO-RE flavors) are kept in the index: a cached parse
    answers names_containing("___") without searching the strings."""
    first = _cached(blob)
    assert sorted(first.names_containing("___")) == ["a___b", "task___v2"]
    monkeypatch.setattr(type(first._strtab), "offsets_containing",
                        lambda *a: pytest.fail("searched the strings"))
    again = _cached(blob)
    assert again.names_containing("___") == first.names_containing("___")
    again.add(T.Struct("added___x", 0, []))
    assert sorted(again.names_containing("___")) == ["a___b", "added___x", "task___v2"]
    from pybpf.btf import core
    assert core._flavors(again) == {"task": ["task___v2"], "a": ["a___b"], "added": ["added___x"]}


def _blob_of(types, strings_pad: int = 0) -> bytes:
    btf = spec.BTF()
    for t in types:
        btf.add(t)
    blob, _ = btf.encode_with_strings(["x" * 200 + str(n) for n in range(strings_pad)])
    assert len(blob) >= spec.MIN_CACHED_BLOB
    return blob


def test_smallest_records_and_flavors_fit_the_size_bound(folder, scans):
    """Every record 3 words (pointers) and flavored strings too: the file is as big as
    an index may be, and is still trusted."""
    types = [T.Pointer("", 0)] * 30000 + [T.Struct(f"f___{n}", 0, []) for n in range(3)]
    blob = _blob_of(types)
    words = struct.unpack_from("=I", blob, 12)[0] // 4
    first = _cached(blob)
    assert len(first) - 1 == 30003 and words == 30003 * 3
    again = _cached(blob)
    assert scans[0] == 1 and again.find("f___2") == [30003]
    assert sorted(again.names_containing("___")) == ["f___0", "f___1", "f___2"]


def test_an_index_of_no_types_is_trusted(folder, scans):
    """A big blob of strings alone: its index is empty, the file no more than its head
    and checksum, and still a hit."""
    blob = _blob_of([], strings_pad=1400)
    assert len(_cached(blob)) == 1
    assert _cached(blob).find("x") == [] and scans[0] == 1
