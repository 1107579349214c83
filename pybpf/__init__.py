"""pybpf: a pure-Python eBPF loader (ELF, BTF, CO-RE, maps, programs, links, ring buffers).

The public surface (see API.md): BPFObject, Map, Program, RingBuffer,
PerfBuffer and the BPFError family.
"""
from . import cli_signals as _cli_signals

_cli_signals.quiet_startup()        # python -m pybpf: Ctrl-C while importing ends quietly

from .errors import (AttachError, BPFError, BPFPermissionError, ObjectError,
                     VerifierError)
from .maps import GlobalData, Map
from .object import BPFObject
from .perfbuf import PerfBuffer
from .programs import Program
from .ringbuf import ColumnLayout, Columns, RingBuffer
from .user_ringbuf import UserRingBuffer

__all__ = ["AttachError", "BPFError", "BPFObject", "BPFPermissionError", "ColumnLayout", "Columns",
           "GlobalData",
           "Map", "ObjectError", "PerfBuffer", "Program", "RingBuffer", "UserRingBuffer",
           "VerifierError"]
__version__ = "0.1.0"
