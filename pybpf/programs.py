"""Program: one BPF program of an object, before and after it is loaded."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, cast

from .kernel import syscall
from . import uapi
from .errors import BPFError
from .obj.sections import SecDef
from .kernel.syscall import Fd

if TYPE_CHECKING:
    from .link.hooks import Link
    from .link.usdt import UsdtManager


class Program:
    """A program from a SEC() of the object.

    Before load(): ``type``, ``expected_attach_type``, ``prog_flags``,
    ``attach_target`` and ``autoload`` may be changed.  After load(): ``fd``,
    ``insns`` (the instructions as loaded) and ``verifier_log``.
    """

    def __init__(self, name: str, section: str, sec_def: Optional[SecDef],
                 attach_target: str, insns: bytearray, autoload: bool = True):
        self.name = name
        self.section = section
        self.sec_def = sec_def
        self.attach_target = attach_target
        self.insns = insns                  # as loaded, after relocation and linking
        self.type = sec_def.prog_type if sec_def else uapi.BPF_PROG_TYPE_UNSPEC
        self.expected_attach_type = sec_def.attach_type if sec_def else 0
        self.prog_flags = 0
        self.attach_btf_id = 0
        self.attach_btf_obj_fd = 0          # module BTF fd (0: vmlinux)
        self.attach_prog_fd = 0             # freplace target
        self._autoload = autoload
        self._locked = False                # set once the object is loaded
        self.verifier_log = ""
        self.links: List["Link"] = []
        #: USDT programs: load for uprobe-multi links (True), for one perf-event uprobe
        #: per probe site (False), or as the kernel allows (None, libbpf's choice)
        self.uprobe_multi: Optional[bool] = None
        #: USDT programs: the object's USDT state (spec ids, maps), set by the object
        self.usdt_manager: Optional["UsdtManager"] = None
        self._fd: Optional[Fd] = None

    @property
    def fd(self) -> int:
        """The program's fd (BPFError before load())."""
        if self._fd is None or self._fd.closed:
            raise BPFError(f"program {self.name!r} is not loaded")
        return self._fd.fd

    @property
    def autoload(self) -> bool:
        """Whether the object's load() loads this program (libbpf's
        bpf_program__autoload); False by default for SEC("?...") programs."""
        return self._autoload

    @autoload.setter
    def autoload(self, value: bool) -> None:
        if self._locked:
            raise BPFError(f"program {self.name!r}: autoload can only be changed before "
                           "the object is loaded")
        self._autoload = bool(value)

    @property
    def loaded(self) -> bool:
        """Whether the program is loaded in the kernel."""
        return self._fd is not None and not self._fd.closed

    @property
    def type_name(self) -> str:
        """The program type as bpftool spells it (``tracepoint``, ``xdp``...)."""
        return uapi.short_name(uapi.bpf_prog_type, self.type, "BPF_PROG_TYPE_")

    @classmethod
    def from_id(cls, prog_id: int) -> "Program":
        """Open the loaded program ``prog_id`` (name and type from the kernel)."""
        from .loaded import open_program
        return open_program(prog_id)

    def attach(self, **opts: Any) -> "Link":
        """Attach by the SEC() convention (or ``opts``); the link is owned by the program
        and closed with it, unless the caller closes it first."""
        from .link.hooks import attach_program
        link = attach_program(self, **opts)
        self.links.append(link)
        return link

    def test_run(self, data: bytes = b"", ctx: bytes = b"", repeat: int = 0,
                 data_out_size: Optional[int] = None, ctx_out_size: int = 0,
                 flags: int = 0, cpu: int = 0) -> "syscall.TestRun":
        """Run the program once (or ``repeat`` times) in the kernel with BPF_PROG_TEST_RUN
        on ``data`` (packet programs) and/or ``ctx`` (syscall, raw_tp, ... programs)."""
        if data_out_size is None:
            data_out_size = len(data) + 256 if data else 0
        return syscall.TestRun(*syscall.prog_test_run(
            self.fd, data, data_out_size, ctx, ctx_out_size, repeat, flags, cpu))

    def close(self) -> None:
        """Detach every link made through attach(), then close the program fd."""
        links, self.links = self.links, []
        for link in links:
            link.close()
        if self._fd is not None:
            self._fd.close()

    def __repr__(self) -> str:
        state = f"fd={cast(Fd, self._fd).fd}" if self.loaded else "not loaded"
        return f"<Program {self.name} SEC({self.section!r}) {self.type_name} {state}>"
