"""A live ring's memory described: what :meth:`RingBuffer.layout` and
:meth:`UserRingBuffer.layout` return.

:func:`describe` reports both mappings of a ring with addresses and protections
as ``/proc/self/maps`` shows them, both positions, every record header between
them (offset, len, BUSY, DISCARD, pg_off), and the proof that the data pages are
mapped twice — the same bytes at ``data`` and ``data + size``, and, when
``/proc/self/pagemap`` may be read (root), the same physical frame behind both
addresses.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Dict, List, Optional, Tuple

from ..errors import BPFError
from .ringmem import BUSY, DISCARD, HDR_SIZE, LEN_MASK, PAGE_SIZE, RingMapping, record_size

_PFN_MASK = (1 << 55) - 1
_PRESENT = 1 << 63
_MAX_RECORDS = 256   # shown per state
_MAX_PFN_PAGES = 8

def proc_maps_line(address: int) -> Optional[str]:
    """The /proc/self/maps line of the mapping that starts at ``address``."""
    with open("/proc/self/maps") as f:
        for line in f:
            if int(line.split("-", 1)[0], 16) == address:
                return line.rstrip("\n")
    return None


def pagemap_pfn(address: int) -> Optional[int]:
    """Physical frame behind a virtual address (None if unknown: not root, not present)."""
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return None
    try:
        entry = struct.unpack("=Q", os.pread(fd, 8, (address // PAGE_SIZE) * 8))[0]
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
    pfn = entry & _PFN_MASK
    return pfn if entry & _PRESENT and pfn else None


def _mapping_entry(what: str, address: int, length: int, offset: int) -> Dict[str, Any]:
    line = proc_maps_line(address)
    return {"what": what, "address": address, "end": address + length, "length": length,
            "file_offset": offset, "prot": line.split()[1] if line else None,
            "proc_maps": line}


def walk(mapping: RingMapping, start: int, end: int,
         limit: int = _MAX_RECORDS) -> Tuple[List[Dict[str, Any]], bool]:
    """Every record header from position ``start`` to ``end`` (BUSY ones included).

    Returns the records and whether the list was cut at ``limit``."""
    hdr, size, mask = mapping.hdr, mapping.size, mapping.mask
    out: List[Dict[str, Any]] = []
    pos = start
    consumer_stops = False
    while pos < end:
        if len(out) >= limit:
            return out, True
        off = pos & mask
        word, pg_off = hdr[off >> 2], hdr[(off >> 2) + 1]
        length = word & LEN_MASK
        total = record_size(length)
        busy, discard = bool(word & BUSY), bool(word & DISCARD)
        payload = bytes(mapping.data[off + HDR_SIZE:off + HDR_SIZE + min(length, 16)])
        out.append({
            "pos": pos, "offset": off, "len": length, "busy": busy, "discard": discard,
            "pg_off": pg_off, "record_bytes": total, "wraps": off + total > size,
            "consumer_stops_here": busy and not consumer_stops, "head": payload.hex(),
        })
        consumer_stops = consumer_stops or busy
        if total > end - pos:   # not a whole record: the positions say otherwise
            break
        pos += total
    return out, False


def double_mapping_proof(mapping: RingMapping, data_address: int) -> Dict[str, Any]:
    """Same bytes at ``data`` and ``data + size``; same frames behind them when visible."""
    size = mapping.size
    same = mapping.data[:size] == mapping.data[size:]
    pages = []
    for page in range(min(size // PAGE_SIZE, _MAX_PFN_PAGES)):
        first = data_address + page * PAGE_SIZE
        pages.append({"page": page, "first": first, "second": first + size,
                      "pfn_first": pagemap_pfn(first), "pfn_second": pagemap_pfn(first + size)})
    return {"first_copy": data_address, "second_copy": data_address + size,
            "same_bytes": bool(same), "pages": pages,
            "same_frames": all(p["pfn_first"] is not None and p["pfn_first"] == p["pfn_second"]
                               for p in pages) if pages else None}


def describe(m: RingMapping) -> Dict[str, Any]:
    """Everything about a live ring's mapping: see the module docstring.  JSON-serialisable."""
    if m.closed:
        raise BPFError("cannot describe a closed ring")
    cons_addr, prod_addr = m.addresses()
    cons, prod = m.consumer[0], m.producer[0]
    records, cut = walk(m, cons, prod)
    user = m.user
    return {
        "map": {"name": m.ref.name, "id": m.ref.id, "fd": m.ref.fd, "size": m.size,
                "type": "BPF_MAP_TYPE_USER_RINGBUF" if user else "BPF_MAP_TYPE_RINGBUF"},
        "page_size": PAGE_SIZE,
        "mappings": [
            _mapping_entry("consumer page (consumer_pos)" + (" - kernel writes" if user else ""),
                           cons_addr, PAGE_SIZE, 0),
            _mapping_entry("producer page (producer_pos) + data x2"
                           + (" - we write" if user else ""),
                           prod_addr, PAGE_SIZE + 2 * m.size, PAGE_SIZE),
        ],
        "consumer_pos": cons, "producer_pos": prod, "in_flight": prod - cons,
        "free": m.size - (prod - cons),
        "data": double_mapping_proof(m, prod_addr + PAGE_SIZE),
        "records": records, "records_cut": cut,
    }
