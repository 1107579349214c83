"""USDT attachment, as libbpf's usdt.c does it, for objects built against libbpf's
``<bpf/usdt.bpf.h>`` (unchanged).

The BPF side reads its arguments through two maps the header declares:
``__bpf_usdt_specs`` (array: spec id -> ``struct __bpf_usdt_spec``) and
``__bpf_usdt_ip_to_spec_id`` (hash: probe address -> spec id, only used on
kernels without BPF cookies).  Attaching one probe name attaches the program to
every site of that probe in the binary (inlining makes several), each with the
spec of its own argument string; sites with the same argument string share a
spec id, and the spec id is each site's BPF cookie.

Where the kernel has uprobe-multi links, USDT programs are loaded with
expected attach type ``BPF_TRACE_UPROBE_MULTI`` (libbpf does the same) and all
sites go into one link; otherwise each site is a perf-event uprobe.  Semaphores
are counted by the kernel (``ref_ctr_offset``) while the probe is attached.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from ..kernel import syscall
from .. import uapi
from ..obj import uprobe as _uprobe
from ..errors import AttachError, BPFError, BPFPermissionError, ObjectError
from ..asm.insn import EXIT, Insn
from .hooks import Link, attach_uprobe, attach_uprobe_multi

if TYPE_CHECKING:
    from ..obj import usdt as notes
    from ..maps import Map
    from ..programs import Program

Opts = Dict[str, Any]

SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"
_REF_CTR_FORMAT = "/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset"


# ------------------------------------------------------------------ kernel features


@functools.lru_cache(maxsize=None)
def has_uprobe_multi_link() -> bool:
    """libbpf's FEAT_UPROBE_MULTI_LINK: BPF_TRACE_UPROBE_MULTI links exist and filter by
    process (not thread) id, the fix that came after them (6.6)."""
    mov_r0 = uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_K
    code = Insn(mov_r0, 0, 0, 0, 0).encode() + Insn(EXIT, 0, 0, 0, 0).encode()
    try:
        prog, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_KPROBE, code, "GPL",
                                    expected_attach_type=uapi.BPF_TRACE_UPROBE_MULTI)
    except BPFPermissionError:
        raise
    except BPFError:
        return False
    root = ctypes.create_string_buffer(b"/")
    offset = (ctypes.c_uint64 * 1)(0)
    with prog:
        for pid, want in ((0, _errno.EBADF), (0xFFFFFFFF, _errno.EINVAL)):
            # "/" is no regular file: EBADF; with pid -1, the fixed kernels check the
            # pid first: EINVAL
            try:
                syscall.link_create(prog.fd, 0, uapi.BPF_TRACE_UPROBE_MULTI, uprobe_multi={
                    "path": ctypes.addressof(root), "offsets": ctypes.addressof(offset),
                    "cnt": 1, "pid": pid}).close()
            except BPFError as e:
                if e.errno != want:
                    return False
            else:
                return False
    return True


def has_bpf_cookie() -> bool:
    """What ``LINUX_HAS_BPF_COOKIE`` reads in the program (libbpf's FEAT_BPF_COOKIE)."""
    from ..kernel.host import LiveHost
    return LiveHost().has_bpf_cookie()


def load_attach_type(prog: "Program") -> int:
    """The expected attach type a USDT program is loaded with: BPF_TRACE_UPROBE_MULTI
    when ``prog.uprobe_multi`` says so, or (None) when the kernel has such links."""
    multi = prog.uprobe_multi
    if multi is None:
        multi = has_uprobe_multi_link()
    return uapi.BPF_TRACE_UPROBE_MULTI if multi else 0


# ------------------------------------------------------------------ per-object state


class UsdtManager:
    """The USDT state of one object (libbpf's usdt_manager): its two maps and the
    spec ids in use.  Freed ids are reused first; new ones stay below the spec map's
    max_entries."""

    def __init__(self, maps: Mapping[str, "Map"]):
        self._maps = maps
        self._free: List[int] = []
        self._next = 0

    def maps(self) -> Tuple["Map", "Map"]:
        """(specs map, ip-to-spec-id map), checked against the header's layouts."""
        if SPECS_MAP not in self._maps or IP_MAP not in self._maps:
            raise AttachError(f"the object has no {SPECS_MAP} / {IP_MAP} maps: USDT programs "
                              "must #include <bpf/usdt.bpf.h>")
        from ..obj import usdt as notes     # the notes parser: only USDT objects pay
        specs, ips = self._maps[SPECS_MAP], self._maps[IP_MAP]
        if (specs.type, specs.key_size, specs.value_size) != \
                (uapi.BPF_MAP_TYPE_ARRAY, 4, notes.SPEC_SIZE):
            raise AttachError(f"map {SPECS_MAP}: want an array of {notes.SPEC_SIZE}-byte "
                              "struct __bpf_usdt_spec values by int key (as <bpf/usdt.bpf.h> "
                              f"declares it), found type {specs.type} key {specs.key_size} "
                              f"value {specs.value_size}")
        if (ips.key_size, ips.value_size) != (8, 4):
            raise AttachError(f"map {IP_MAP}: want long keys and int values, found key "
                              f"{ips.key_size} value {ips.value_size}")
        return specs, ips

    def allocate(self, limit: int) -> int:
        """A free spec id."""
        if self._free:
            return self._free.pop()
        if self._next >= limit:
            raise AttachError(f"all {limit} USDT spec ids of {SPECS_MAP} are in use (raise "
                              "BPF_USDT_MAX_SPEC_CNT or its max_entries)", _errno.E2BIG)
        self._next += 1
        return self._next - 1

    def release(self, ids: List[int]) -> None:
        """Give spec ids back for later attachments."""
        self._free.extend(ids)


class UsdtLink(Link):
    """One USDT attachment: every site of a probe, as one uprobe-multi link or one
    perf-event uprobe per site.  ``close()`` detaches them all, removes its
    ip-to-spec-id entries and gives its spec ids back."""

    def __init__(self, manager: UsdtManager, desc: str):
        self._manager = manager
        self.links: List[Link] = []
        self.spec_ids: List[int] = []
        self.ip_keys: List[bytes] = []
        self._ip_map: Optional["Map"] = None
        self._closed = False
        self.desc = desc
        self.sites: List[notes.Probe] = []
        #: whether the sites share one uprobe-multi link (else one uprobe per site)
        self.multi = False

    @property
    def fd(self) -> int:
        """The fd of the (first) underlying link."""
        if self._closed or not self.links:
            raise BPFError(f"USDT link {self.desc} is closed", _errno.EBADF)
        return self.links[0].fd

    @property
    def closed(self) -> bool:
        """Whether close() ran."""
        return self._closed

    def close(self) -> None:
        """Detach every site; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        links, self.links = self.links, []
        for link in links:
            link.close()
        ids, self.spec_ids = self.spec_ids, []
        self._manager.release(ids)
        keys, self.ip_keys = self.ip_keys, []
        if self._ip_map is not None and self._ip_map.loaded:
            for key in keys:
                syscall.map_delete(self._ip_map.fd, key)

    def detach(self) -> None:
        """Same as close(): the sites' links are this link's own."""
        self.close()

    def info(self) -> Any:
        """The head of the (first) link's bpf_link_info."""
        if not self.links:
            raise BPFError(f"USDT link {self.desc} is closed", _errno.EBADF)
        return self.links[0].info()

    def pin(self, path: str) -> None:
        """Refused: the attachment is pybpf state plus several kernel links."""
        raise AttachError(f"pinning USDT link {self.desc} at {path}: a USDT attachment is "
                          "several kernel objects plus pybpf state; pin the program instead",
                          _errno.EOPNOTSUPP)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.links)} link(s)"
        return f"<UsdtLink {self.desc} {len(self.sites)} site(s) {state}>"


# ------------------------------------------------------------------ attach


def parse_target(target: str) -> Tuple[str, str, str]:
    """SEC("usdt/PATH:PROVIDER:NAME") -> (path, provider, name)."""
    parts = target.split(":")
    if len(parts) != 3 or not all(parts):
        raise AttachError(f"USDT target {target!r} must be BINARY:PROVIDER:NAME")
    return parts[0], parts[1], parts[2]


def _where(target: str, opts: Opts) -> Tuple[str, str, str]:
    if opts.get("binary") or opts.get("provider") or opts.get("name"):
        missing = [k for k in ("binary", "provider", "name") if not opts.get(k)]
        if missing:
            raise AttachError(f"USDT attach needs binary=, provider= and name= (missing "
                              f"{', '.join(missing)})")
        return str(opts["binary"]), str(opts["provider"]), str(opts["name"])
    if not target:
        raise AttachError("USDT programs need a target: SEC(\"usdt/BINARY:PROVIDER:NAME\") or "
                          "attach(binary=, provider=, name=)")
    return parse_target(target)


def _read(path: str) -> notes.ProbeFile:
    from ..obj import usdt as notes
    try:
        pf = notes.read_probes(path)
    except ObjectError as e:
        raise AttachError(f"USDT: {e}") from None
    host = os.uname().machine
    if pf.machine != host or pf.elf_class != ctypes.sizeof(ctypes.c_void_p) * 8 \
            or pf.little_endian != (sys.byteorder == "little"):
        raise AttachError(f"USDT: {path} is a {pf.elf_class}-bit "
                          f"{'little' if pf.little_endian else 'big'}-endian {pf.machine} "
                          f"binary; this is {host}")
    return pf


def _runtime_ips(pf: notes.ProbeFile, sites: List[notes.Probe], pid: int) -> List[int]:
    """The probes' addresses as the BPF program sees them (PT_REGS_IP), for the
    ip-to-spec-id map: the link-time ones in an executable, from /proc/PID/maps in
    a PIE or shared library (which then needs a pid)."""
    from ..obj import usdt as notes
    if not pf.shared:
        return [s.address for s in sites]
    if pid < 0:
        raise AttachError(f"USDT in {pf.path} (position-independent) without BPF cookies "
                          "(kernel < 5.15) needs pid= to find where it is mapped",
                          _errno.EOPNOTSUPP)
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except OSError as e:
        raise AttachError(f"reading /proc/{pid}/maps: {e.strerror}", e.errno) from None
    mappings = notes.executable_mappings(text, os.path.realpath(pf.path))
    ips = []
    for site in sites:
        ip = notes.runtime_address(site.offset, mappings)
        if ip is None:
            raise AttachError(f"USDT {site.full_name}: {pf.path} offset {site.offset:#x} is "
                              f"not mapped executable in process {pid}", _errno.ESRCH)
        ips.append(ip)
    return ips


def attach_usdt(prog: "Program", target: str, opts: Opts) -> UsdtLink:
    """Attach a USDT program to every site of BINARY's PROVIDER:NAME probe (options:
    binary=, provider=, name=, pid= (-1 every process, 0 this one), cookie= (what
    bpf_usdt_cookie() returns))."""
    binary, provider, name = _where(target, opts)
    pid = int(opts.get("pid", -1))
    pid = os.getpid() if pid == 0 else max(pid, -1)
    cookie = int(opts.get("cookie", 0))
    from ..obj import usdt as notes
    path = _uprobe.resolve_binary(binary)
    pf = _read(path)
    sites = pf.find(provider, name)
    if not sites:
        known = sorted({p.full_name for p in pf.probes})
        raise AttachError(f"no USDT probe {provider}:{name} in {path} (it has "
                          f"{', '.join(known) if known else 'no .note.stapsdt probes'})",
                          _errno.ENOENT)
    specs: Dict[str, bytes] = {}
    for site in sites:
        if site.args not in specs:
            try:
                args = notes.parse_args(site.args, pf.machine)
            except notes.ArgError as e:
                raise AttachError(f"USDT {site.full_name} at {site.address:#x} in {path}: "
                                  f"{e}") from None
            specs[site.args] = notes.pack_spec(args, cookie)
    if any(s.semaphore for s in sites) and not os.path.exists(_REF_CTR_FORMAT):
        raise AttachError(f"USDT {provider}:{name} in {path} has a semaphore, and this kernel "
                          "cannot count it (no uprobe ref_ctr_offset, kernel < 4.20)",
                          _errno.EOPNOTSUPP)
    manager: Optional[UsdtManager] = prog.usdt_manager
    if manager is None:
        raise AttachError("USDT programs attach through their object (no USDT state)")
    specs_map, ip_map = manager.maps()
    cookies = has_bpf_cookie()
    multi = prog.expected_attach_type == uapi.BPF_TRACE_UPROBE_MULTI
    ips = [] if cookies else _runtime_ips(pf, sites, pid)
    link = UsdtLink(manager, f"usdt {path}:{provider}:{name}")
    link.sites, link.multi = list(sites), multi
    try:
        ids: Dict[str, int] = {}
        for args_text, value in specs.items():
            spec_id = manager.allocate(specs_map.max_entries)
            link.spec_ids.append(spec_id)
            ids[args_text] = spec_id
            syscall.map_update(specs_map.fd, bytes(ctypes.c_int(spec_id)), value)
        site_ids = [ids[s.args] for s in sites]
        if not cookies:
            link._ip_map = ip_map
            for ip, spec_id in zip(ips, site_ids):
                key = ctypes.c_long(ip)
                val = ctypes.c_int(spec_id)
                try:
                    syscall.map_update(ip_map.fd, bytes(key), bytes(val), uapi.BPF_NOEXIST)
                except BPFError as e:
                    if e.errno == _errno.EEXIST:
                        raise AttachError(f"USDT {provider}:{name}: address {ip:#x} is "
                                          f"already attached in {IP_MAP}", e.errno) from None
                    raise
                link.ip_keys.append(bytes(key))
        if multi:
            link.links.append(attach_uprobe_multi(prog, "", {
                "binary": path, "offsets": [s.offset for s in sites],
                "ref_ctr_offsets": [s.semaphore_offset for s in sites],
                "cookies": site_ids, "pid": pid if pid > 0 else 0}))
        else:
            for site, spec_id in zip(sites, site_ids):
                link.links.append(attach_uprobe(prog, "", {
                    "binary": path, "offset": site.offset, "pid": pid,
                    "ref_ctr_offset": site.semaphore_offset,
                    "cookie": spec_id if cookies else 0}))
    except BaseException:
        link.close()
        raise
    return link
