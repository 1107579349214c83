"""The BTF header as the kernel reads it: 24 bytes, kernel 7.1's 32 bytes (the
kind layout section: layout_off, layout_len), shorter or longer headers, and
every way the layout section can be malformed.  Pure: blobs built here."""
from __future__ import annotations

import struct

import pytest

from pybpf.btf import BTF
from pybpf.btf import types as T
from pybpf.btf.parse import LAYOUT_HEADER_SIZE, RECORD_SHAPE
from pybpf.errors import ObjectError
from pybpf.uapi import BTF_INT_SIGNED, BTF_KIND_ENUM64, BTF_KIND_STRUCT


def sample() -> BTF:
    btf = BTF()
    i32 = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    btf.add(T.Struct("s", 8, [T.Member("x", i32, 0), T.Member("y", i32, 32)]))
    btf.add(T.Enum64("e", 8, [("A", 1 << 40)]))
    return btf


def assert_sample(btf: BTF) -> None:
    assert len(btf) == 4
    assert [m.name for m in btf[2].members] == ["x", "y"]
    assert btf[3].values == [("A", 1 << 40)]


def header(blob: bytes) -> list:
    hdr_len = struct.unpack_from("<I", blob, 4)[0]
    return list(struct.unpack_from(f"<{(hdr_len - 8) // 4}I", blob, 8))


def rebuild(blob: bytes, hdr_len: int, fields: list, tail: bytes = b"") -> bytes:
    """The same body under another header: hdr_len bytes, ``fields`` after the
    preamble (zero padded), ``tail`` bytes after them."""
    old = struct.unpack_from("<I", blob, 4)[0]
    pre = blob[:4] + struct.pack("<I", hdr_len)
    rest = struct.pack(f"<{len(fields)}I", *fields) + tail
    return pre + rest.ljust(hdr_len - 8, b"\0")[:hdr_len - 8] + blob[old:]


def test_24_byte_header():
    blob = sample().encode()
    assert struct.unpack_from("<I", blob, 4)[0] == 24
    assert_sample(BTF.parse(blob, validate=True))


def test_32_byte_header_with_layout_section():
    blob = sample().encode(layout=True)
    fields = header(blob)
    assert struct.unpack_from("<I", blob, 4)[0] == LAYOUT_HEADER_SIZE
    type_off, type_len, str_off, str_len, layout_off, layout_len = fields
    assert layout_len == 4 * (max(RECORD_SHAPE) + 1) and layout_off == 0
    assert type_off == layout_len and str_off == type_off + type_len
    assert len(blob) == 32 + str_off + str_len            # no gap between sections
    assert struct.unpack_from("<BBH", blob, 32 + layout_off + 4 * BTF_KIND_STRUCT) == (0, 12, 0)
    assert struct.unpack_from("<BBH", blob, 32 + layout_off + 4 * BTF_KIND_ENUM64) == (0, 12, 0)
    assert_sample(BTF.parse(blob, validate=True))


def test_32_byte_header_without_layout():
    blob = sample().encode()
    assert_sample(BTF.parse(rebuild(blob, 32, header(blob) + [0, 0]), validate=True))


def test_28_byte_header_reads_layout_len_as_0():
    blob = sample().encode()
    assert_sample(BTF.parse(rebuild(blob, 28, header(blob) + [0]), validate=True))
    with pytest.raises(ObjectError, match="layout section at offset 4 is empty"):
        BTF.parse(rebuild(blob, 28, header(blob) + [4]))


def test_longer_header_zero_tail_accepted_non_zero_refused():
    blob = sample().encode(layout=True)
    fields = header(blob)
    assert_sample(BTF.parse(rebuild(blob, 48, fields), validate=True))
    with pytest.raises(ObjectError, match="unknown non-zero fields in BTF header"):
        BTF.parse(rebuild(blob, 48, fields, tail=b"\0" * 12 + b"\x01"))
    with pytest.raises(ObjectError, match="unknown non-zero fields"):
        BTF.parse(rebuild(blob, 36, fields + [7]))


@pytest.mark.parametrize("change,message", [
    (lambda f, body: f.__setitem__(4, f[4] + 2), "not 4-byte aligned"),
    (lambda f, body: f.__setitem__(5, f[5] - 2), "whole number"),
    (lambda f, body: f.__setitem__(5, (body // 4 + 1) * 4), "runs past the end"),
    (lambda f, body: f.__setitem__(4, f[0]), "overlaps the type section"),
    (lambda f, body: f.__setitem__(slice(4, 6), [f[2], 4]), "overlaps the string section"),
])
def test_malformed_layout_section(change, message):
    blob = sample().encode(layout=True)
    fields = header(blob)
    change(fields, len(blob) - 32)
    with pytest.raises(ObjectError, match=message):
        BTF.parse(rebuild(blob, 32, fields))


def test_layout_must_agree_with_known_kinds_and_may_list_more():
    blob = sample().encode(layout=True)
    off = 32 + header(blob)[4]
    bad = bytearray(blob)
    struct.pack_into("<BBH", bad, off + 4 * BTF_KIND_STRUCT, 0, 8, 0)
    with pytest.raises(ObjectError, match="layout of kind 4: info_sz 0, elem_sz 8"):
        BTF.parse(bytes(bad))
    # a newer encoder lists a kind pybpf does not know yet (and flags): accepted
    # (here after the strings, past a gap)
    table = blob[off:off + header(blob)[5]] + struct.pack("<BBH", 4, 8, 1)
    plain = sample().encode()
    body = plain[24:] + bytes(-len(plain[24:]) % 4)
    fields = header(plain) + [len(body), len(table)]
    assert_sample(BTF.parse(rebuild(plain[:24] + body + table, 32, fields), validate=True))


def test_every_truncation_of_a_layout_blob_is_refused():
    blob = sample().encode(layout=True)
    for cut in range(len(blob)):
        with pytest.raises(ObjectError):
            BTF.parse(blob[:cut], validate=True)
