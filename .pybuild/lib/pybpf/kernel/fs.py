"""The kernel pseudo-filesystems that attaching needs: tracefs (tracepoint ids),
bpffs (pinning), cgroup2 (default cgroup target) and the perf PMUs in sysfs.

Mount lookup parses /proc/self/mountinfo (pure, :func:`parse_mountinfo`);
missing tracefs/bpffs are mounted with mount(2) through libc, never a
subprocess.  Failures become :class:`~pybpf.errors.AttachError` telling the
user the exact ``mount`` command to run.
"""
from __future__ import annotations

import ctypes
import os
import re
from typing import List, NamedTuple, Optional

from ..errors import AttachError, from_os_error

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
BPFFS_DIR = "/sys/fs/bpf"
PMU_DIR = "/sys/bus/event_source/devices"


class Mount(NamedTuple):
    point: str
    fstype: str
    root: str


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> List[Mount]:
    """Mounts from /proc/PID/mountinfo text, in mount order; bad lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            mounts.append(Mount(_unescape(fields[4]), fields[sep + 1], _unescape(fields[3])))
        except (ValueError, IndexError):
            continue
    return mounts


def mounts() -> List[Mount]:
    """This process's mounts; BPFError when /proc/self/mountinfo cannot be read
    (out of fds, no /proc)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return parse_mountinfo(f.read())
    except OSError as e:
        raise from_os_error(e, "reading the mount table") from None


def mount_of(path: str, table: Optional[List[Mount]] = None) -> Optional[Mount]:
    """The mount holding path: the last-mounted one with the longest matching prefix."""
    path = os.path.abspath(path)
    best: Optional[Mount] = None
    for m in table if table is not None else mounts():
        point = m.point.rstrip("/") or "/"
        inside = path == point or path.startswith(point if point == "/" else point + "/")
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = m
    return best


def _mount(fstype: str, target: str, options: str = "") -> None:
    """mount -t fstype -o options fstype target, through libc; OSError on failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_ulong, ctypes.c_char_p]
    if libc.mount(fstype.encode(), os.fsencode(target), fstype.encode(), 0,
                  options.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _ensure_fs(fstype: str, target: str, what: str, options: str = "") -> str:
    """target (already holding fstype, or now mounted with it and ``options``)."""
    m = mount_of(target)
    if m is not None and m.fstype == fstype and m.point == target:
        return target
    try:
        _mount(fstype, target, options)
    except OSError as e:
        opts = f" -o {options}" if options else ""
        raise AttachError(f"{what}: {target} is not a {fstype} mount and mounting it "
                          f"failed ({e.strerror}); run: mount -t {fstype}{opts} {fstype} "
                          f"{target}", e.errno) from None
    return target


# ------------------------------------------------------------------ tracefs

def tracefs() -> str:
    """The tracefs mount point, mounting it at /sys/kernel/tracing if none is."""
    table = mounts()
    for d in TRACEFS_DIRS:
        m = mount_of(d, table)
        if m is not None and m.fstype == "tracefs":
            return d
    for m in table:
        if m.fstype == "tracefs":
            return m.point
    return _ensure_fs("tracefs", TRACEFS_DIRS[0], "tracefs is needed for tracepoints")


_TP_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint category/name from <tracefs>/events/CAT/NAME/id."""
    for part in (category, name):
        if not _TP_PART.match(part) or part in (".", ".."):
            raise AttachError(f"invalid tracepoint name {category}/{name}")
    path = os.path.join(tracefs(), "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise AttachError(f"tracepoint {category}/{name} does not exist (no {path})") from None
    except (OSError, ValueError) as e:
        raise AttachError(f"reading tracepoint id {path}: {e}") from None


# ------------------------------------------------------------------ bpffs

#: the mode of the bpffs pybpf mounts and of the directories it creates in one
#: (bpftool mounts with mode=0700: pins are only for their owner unless shared on purpose)
BPFFS_MODE = 0o700


def ensure_bpffs(target: str = BPFFS_DIR) -> str:
    """A bpffs at target: the one already mounted there, or a new one of mode 0700."""
    return _ensure_fs("bpf", target, f"pinning under {target}", f"mode={BPFFS_MODE:04o}")


def ensure_bpffs_for(path: str) -> None:
    """Make sure pinning at path can work: the parent directory exists on a bpffs.

    /sys/fs/bpf is mounted when it isn't yet.  Missing parent directories are
    created (mode 0700) only below an existing directory of a bpffs: nothing is
    created anywhere else, and symlinks out of the bpffs are seen through."""
    parent = os.path.dirname(os.path.abspath(path))
    if parent == BPFFS_DIR or parent.startswith(BPFFS_DIR + "/"):
        ensure_bpffs(BPFFS_DIR)
    missing: List[str] = []
    existing = parent
    while not os.path.isdir(existing):
        if os.path.lexists(existing):
            raise AttachError(f"pinning at {path}: {existing} is not a directory")
        missing.append(existing)
        existing = os.path.dirname(existing)
    m = mount_of(os.path.realpath(existing))
    if m is None or m.fstype != "bpf":
        raise AttachError(f"pinning at {path}: {existing} is not on a BPF filesystem; pin "
                          f"under {BPFFS_DIR} (mount -t bpf bpf {BPFFS_DIR})")
    for directory in reversed(missing):
        try:
            os.mkdir(directory, BPFFS_MODE)
        except FileExistsError:
            pass                # made at the same time by another loader
        except OSError as e:
            raise AttachError(f"pinning at {path}: cannot create {directory}: {e.strerror}",
                              e.errno) from None


# ------------------------------------------------------------------ cgroup v2

def cgroup2_root() -> str:
    """Mount point of the cgroup v2 hierarchy (e.g. /sys/fs/cgroup or .../unified)."""
    for m in mounts():
        if m.fstype == "cgroup2":
            return m.point
    raise AttachError("no cgroup v2 hierarchy is mounted; run: "
                      "mount -t cgroup2 none /sys/fs/cgroup (or pass cgroup=PATH)")


# ------------------------------------------------------------------ perf PMUs

def pmu_dir(pmu: str) -> str:
    return os.path.join(PMU_DIR, pmu)


def pmu_type(pmu: str, why: str = "") -> int:
    """perf_event_attr.type of a dynamic PMU such as "kprobe" or "uprobe"."""
    path = os.path.join(pmu_dir(pmu), "type")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        raise AttachError(f"{pmu} PMU absent ({pmu_dir(pmu)} missing){why}") from None


def pmu_format_shift(pmu: str, field: str) -> int:
    """Bit position of a PMU format field: "config:0" -> 0, "config:32-63" -> 32."""
    path = os.path.join(pmu_dir(pmu), "format", field)
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        raise AttachError(f"{pmu} PMU has no {field!r} format ({path} missing)") from None
    return parse_format_shift(text, path)


def parse_format_shift(text: str, where: str = "") -> int:
    m = re.fullmatch(r"config:(\d+)(?:-\d+)?", text)
    if m is None:
        raise AttachError(f"unexpected PMU format {text!r} in {where}")
    return int(m.group(1))
