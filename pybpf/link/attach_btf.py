"""attach_btf_id: the kernel (or BPF program) BTF type that a BTF-attached
program (tp_btf, fentry/fexit/fmod_ret, lsm, iter, freplace) hooks.

The loader calls :func:`resolve` before BPF_PROG_LOAD for programs whose
SecDef has ``ATTACH_BTF``.  The hook's name comes from the SEC() target
(``fentry/do_unlinkat``, or ``fentry/MODULE:func`` to pick a module), or from
:func:`set_attach_target` (libbpf's ``bpf_program__set_attach_target``).
"""
from __future__ import annotations

import errno as _errno
from typing import Optional, Tuple

from ..kernel import syscall
from .. import uapi
from ..errors import AttachError, ObjectError
from ..obj.sections import KERNEL_BTF_TARGETS
from ..kernel.btf_objects import btf_raw, module_btf_fd as module_btf_fd
from .program import ProgramView




def set_attach_target(prog: ProgramView, attach_prog_fd: int = 0,
                      func_name: Optional[str] = None) -> None:
    """Choose the hook before load(): a function of another BPF program
    (``attach_prog_fd`` + ``func_name``, as freplace needs) or a kernel one."""
    if prog.loaded:
        raise AttachError(f"program {prog.name!r}: set the attach target before load()")
    if attach_prog_fd and not func_name:
        raise AttachError(f"program {prog.name!r}: attach_prog_fd needs func_name")
    if not attach_prog_fd and not func_name:
        raise AttachError(f"program {prog.name!r}: give attach_prog_fd/func_name")
    prog.attach_prog_fd = attach_prog_fd
    prog.attach_target = func_name or ""
    prog.attach_btf_id = 0
    prog.attach_btf_obj_fd = 0


def resolve(prog: ProgramView) -> Tuple[int, int]:
    """(btf_obj_fd, btf_id) for BPF_PROG_LOAD: btf_obj_fd is 0 for vmlinux and for a
    target program (then prog.attach_prog_fd is what the loader passes)."""
    where = f"program {prog.name!r} (SEC {prog.section!r})"
    name = prog.attach_target
    if not name:
        raise ObjectError(f"{where}: the section names no attach target "
                          f"(e.g. SEC(\"{prog.section.split('/')[0]}/NAME\"))", prog.section)
    if prog.attach_prog_fd:
        return 0, prog_func_btf_id(prog.attach_prog_fd, name, where)
    if prog.type == uapi.BPF_PROG_TYPE_EXT:
        raise AttachError(f"{where}: freplace needs the program to replace into: call "
                          "attach_btf.set_attach_target(prog, attach_prog_fd, func_name) "
                          "before load()")
    try:
        prefix, kind, what = KERNEL_BTF_TARGETS[prog.expected_attach_type]
    except KeyError:
        raise ObjectError(f"{where}: attach type {prog.expected_attach_type} takes no BTF "
                          "target", prog.section) from None
    module, _, func = name.rpartition(":")
    return find_kernel_type(prefix + func, kind, f"{what} {func!r}", module or None, where)


def find_kernel_type(name: str, kind: int, what: str, module: Optional[str] = None,
                     where: str = "") -> Tuple[int, int]:
    """(btf_obj_fd, type id) of a kernel type: vmlinux first, then module BTF
    (only ``module``'s when given)."""
    from ..btf import kernel
    if module is None or module == "vmlinux":
        ids = kernel.vmlinux().find(name, kind)
        if ids:
            return 0, ids[0]
    for mod_name, btf in kernel.modules().items():
        if module is not None and mod_name != module:
            continue
        ids = [i for i in btf.find(name, kind) if i >= btf.start_id]  # not vmlinux's
        if ids:
            return module_btf_fd(mod_name).fd, ids[0]
    scope = f"module {module}" if module else "vmlinux or module BTF"
    raise AttachError(f"{where + ': ' if where else ''}{what} not found in {scope} "
                      f"(no {uapi.enum_name(uapi.btf_kind, kind)[9:]} {name!r})", _errno.ESRCH)


def prog_func_btf_id(prog_fd: int, func: str, where: str = "") -> int:
    """Type id of FUNC ``func`` in a loaded BPF program's BTF (freplace/fentry targets)."""
    from ..btf import BTF
    head = f"{where}: " if where else ""
    btf_id = syscall.obj_info(prog_fd, uapi.bpf_prog_info).btf_id
    if not btf_id:
        raise AttachError(f"{head}target program (fd {prog_fd}) has no BTF; it must be "
                          "built with -g to be a freplace/fentry target")
    with syscall.fd_by_id(uapi.BPF_BTF_GET_FD_BY_ID, btf_id) as fd:
        btf = BTF.parse(btf_raw(fd.fd), section=f"BTF of program fd {prog_fd}")
    ids = btf.find(func, uapi.BTF_KIND_FUNC)
    if not ids:
        raise AttachError(f"{head}function {func!r} not found in the BTF of target program "
                          f"(fd {prog_fd})", _errno.ESRCH)
    return ids[0]
