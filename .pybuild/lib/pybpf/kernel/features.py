"""Feature probes of the running kernel, each asked once per process."""
from __future__ import annotations

from typing import Optional

from ..btf.sanitize import PROBES, Features
from ..errors import BPFError, BPFPermissionError
from . import syscall

_probed: Optional[Features] = None


def _loads(blob: bytes) -> bool:
    try:
        with syscall.btf_load(blob):
            return True
    except BPFPermissionError:
        raise
    except BPFError:
        return False


def probe_features() -> Features:
    """Probe the running kernel once per process (needs CAP_BPF / root)."""
    global _probed
    if _probed is None:
        _probed = Features(**{name: _loads(make().encode()) for name, make in PROBES.items()})
    return _probed
