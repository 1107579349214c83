"""attach_btf: resolving the BTF hook of tp_btf/fentry/fexit/fmod_ret/lsm/iter/
freplace programs against kernel BTF (and a target program's BTF), and
loading such programs for real where this kernel allows it."""
from __future__ import annotations

import errno
import os

import pytest

from conftest import built, require_kernel, skip_missing_feature
import pybpf
from pybpf.link import attach_btf
from pybpf.kernel import btf_objects
from pybpf.obj import sections
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.btf import BTF
from pybpf.btf import kernel as kbtf
from pybpf.btf import types as T
from pybpf.errors import AttachError, BPFError, ObjectError
from pybpf.programs import Program

VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.fixture(autouse=True)
def _needs_vmlinux_btf():
    if not os.access(VMLINUX, os.R_OK):
        pytest.skip(f"{VMLINUX} not readable")


def program(section: str) -> Program:
    sec_def, target = sections.find_sec_def(section)
    return Program("p", section, sec_def, target, bytearray())


def vmlinux_id(name: str, kind: int) -> int:
    ids = kbtf.vmlinux().find(name, kind)
    assert len(ids) == 1, (name, ids)
    return ids[0]


@pytest.mark.parametrize("section, name, kind", [
    ("tp_btf/sys_enter", "btf_trace_sys_enter", uapi.BTF_KIND_TYPEDEF),
    ("tp_btf/sched_switch", "btf_trace_sched_switch", uapi.BTF_KIND_TYPEDEF),
    ("fentry/do_nanosleep", "do_nanosleep", uapi.BTF_KIND_FUNC),
    ("fexit/do_nanosleep", "do_nanosleep", uapi.BTF_KIND_FUNC),
    ("fentry.s/do_nanosleep", "do_nanosleep", uapi.BTF_KIND_FUNC),
    ("fmod_ret/bpf_modify_return_test", "bpf_modify_return_test", uapi.BTF_KIND_FUNC),
    ("lsm/file_open", "bpf_lsm_file_open", uapi.BTF_KIND_FUNC),
    ("lsm.s/bprm_committed_creds", "bpf_lsm_bprm_committed_creds", uapi.BTF_KIND_FUNC),
    ("iter/task", "bpf_iter_task", uapi.BTF_KIND_FUNC),
    ("iter/bpf_map_elem", "bpf_iter_bpf_map_elem", uapi.BTF_KIND_FUNC),
    ("fentry/vmlinux:do_nanosleep", "do_nanosleep", uapi.BTF_KIND_FUNC),
])
def test_resolve_in_vmlinux(section, name, kind):
    assert attach_btf.resolve(program(section)) == (0, vmlinux_id(name, kind))


def test_tp_btf_target_is_the_typedef_not_the_event_struct():
    btf_id = attach_btf.resolve(program("tp_btf/sched_switch"))[1]
    assert kbtf.vmlinux()[btf_id].name == "btf_trace_sched_switch"
    assert kbtf.vmlinux().kind_of(btf_id) == uapi.BTF_KIND_TYPEDEF


@pytest.mark.parametrize("section, what", [
    ("fentry/pybpf_no_such_function", "kernel function 'pybpf_no_such_function'"),
    ("tp_btf/pybpf_no_such_tp", "tracepoint 'pybpf_no_such_tp'"),
    ("lsm/pybpf_no_such_hook", "LSM hook 'pybpf_no_such_hook'"),
    ("iter/pybpf_no_such_iter", "iterator 'pybpf_no_such_iter'"),
])
def test_missing_target_names_it(section, what):
    with pytest.raises(AttachError) as e:
        attach_btf.resolve(program(section))
    assert what in str(e.value) and repr(section) in str(e.value)
    assert "not found in vmlinux or module BTF" in str(e.value)
    assert e.value.errno == errno.ESRCH


def test_section_without_target_is_an_object_error():
    with pytest.raises(ObjectError, match=r"names no attach target.*SEC\(\"fentry/NAME\"\)"):
        attach_btf.resolve(program("fentry"))


def test_unknown_module_is_named():
    with pytest.raises(AttachError, match="not found in module pybpf_nomod"):
        attach_btf.resolve(program("fentry/pybpf_nomod:do_nanosleep"))


def test_module_btf_is_searched_after_vmlinux(monkeypatch):
    """A function only a module has: found in its split BTF, then the module's
    BTF object fd is looked up by name among the kernel's BTF objects."""
    split = BTF(base=kbtf.vmlinux())
    proto = split.add(T.FuncProto(return_type=0))
    func_id = split.add(T.Func("pybpf_mod_fn", type=proto))
    monkeypatch.setattr(kbtf, "modules", lambda: {"pybpf_fake_mod": split})
    require_kernel()
    with pytest.raises(AttachError, match="no BTF object for kernel module 'pybpf_fake_mod'"):
        attach_btf.resolve(program("fentry/pybpf_mod_fn"))
    # vmlinux wins over a module with the same name
    assert attach_btf.resolve(program("fentry/do_nanosleep"))[0] == 0
    assert func_id >= split.start_id


def test_kernel_btf_objects_lists_vmlinux(kernel):
    names = [name for _, name in btf_objects.kernel_btf_objects()]
    assert "vmlinux" in names
    with pytest.raises(AttachError, match="no BTF object for kernel module"):
        btf_objects.module_btf_fd("pybpf_no_such_module")


def test_btf_raw_of_vmlinux_matches_sysfs(kernel):
    vmlinux_obj = next(i for i, name in btf_objects.kernel_btf_objects() if name == "vmlinux")
    with syscall.fd_by_id(uapi.BPF_BTF_GET_FD_BY_ID, vmlinux_obj) as fd:
        with open(VMLINUX, "rb") as f:
            assert btf_objects.btf_raw(fd.fd) == f.read()


# ------------------------------------------------------------------ freplace / set_attach_target


def test_freplace_needs_a_target_program():
    with pytest.raises(AttachError, match="set_attach_target"):
        attach_btf.resolve(program("freplace/decide"))


def test_set_attach_target_checks():
    prog = program("freplace/decide")
    with pytest.raises(AttachError, match="attach_prog_fd needs func_name"):
        attach_btf.set_attach_target(prog, attach_prog_fd=5)
    with pytest.raises(AttachError, match="give attach_prog_fd/func_name"):
        attach_btf.set_attach_target(prog)
    attach_btf.set_attach_target(prog, func_name="do_nanosleep")
    fentry = program("fentry/x")
    attach_btf.set_attach_target(fentry, func_name="do_nanosleep")
    assert attach_btf.resolve(fentry) == (0, vmlinux_id("do_nanosleep", uapi.BTF_KIND_FUNC))


@pytest.fixture
def xdp_target(kernel):
    """attach_btf.bpf.o's xdp_main (calling the global function decide()), loaded."""
    obj = pybpf.BPFObject.open(built("attach_btf.bpf.o"))
    for name, prog in obj.programs.items():
        prog.autoload = name == "xdp_main"
    obj.load()
    yield obj.programs["xdp_main"]
    obj.close()


def test_freplace_target_resolved_in_the_programs_btf(xdp_target):
    prog = program("freplace/decide")
    attach_btf.set_attach_target(prog, xdp_target.fd, "decide")
    btf_obj_fd, btf_id = attach_btf.resolve(prog)
    info = syscall.obj_info(xdp_target.fd, uapi.bpf_prog_info)
    with syscall.fd_by_id(uapi.BPF_BTF_GET_FD_BY_ID, info.btf_id) as fd:
        btf = BTF.parse(btf_objects.btf_raw(fd.fd))
    assert btf_obj_fd == 0
    assert btf[btf_id].name == "decide" and btf.kind_of(btf_id) == uapi.BTF_KIND_FUNC
    attach_btf.set_attach_target(prog, xdp_target.fd, "pybpf_nope")
    with pytest.raises(AttachError, match="'pybpf_nope' not found in the BTF of target"):
        attach_btf.resolve(prog)


def test_program_without_btf_cannot_be_a_target(kernel):
    insns = bytes.fromhex("b700000000000000" "9500000000000000")
    fd, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_XDP, insns, "GPL")
    with fd:
        with pytest.raises(AttachError, match="has no BTF"):
            attach_btf.prog_func_btf_id(fd.fd, "decide")


# ------------------------------------------------------------------ loading for real


def _load_only(obj: "pybpf.BPFObject", name: str) -> None:
    for other, prog in obj.programs.items():
        prog.autoload = other == name
    try:
        obj.load()
    except BPFError as e:
        if e.errno == errno.EPERM:
            skip_missing_feature(f"BPF trampolines (fentry/fexit) refused by this kernel: "
                                 f"EPERM loading {name}")
        raise


@pytest.mark.parametrize("name", ["on_nanosleep_entry", "on_nanosleep_exit", "on_file_open"])
def test_trampoline_programs_load_and_attach(kernel, name):
    with pybpf.BPFObject.open(built("attach_btf.bpf.o")) as obj:
        prog = obj.programs[name]
        _load_only(obj, name)
        info = syscall.obj_info(prog.fd, uapi.bpf_prog_info)
        assert info.attach_btf_id == attach_btf.resolve(prog)[1]
        with prog.attach() as link:
            assert link.info().type == uapi.BPF_LINK_TYPE_TRACING


def test_freplace_loads_and_attaches(xdp_target):
    with pybpf.BPFObject.open(built("attach_btf.bpf.o")) as obj:
        prog = obj.programs["replace_decide"]
        attach_btf.set_attach_target(prog, xdp_target.fd, "decide")
        _load_only(obj, "replace_decide")
        packet = bytes(64)
        assert syscall.prog_test_run(xdp_target.fd, packet, 128)[0] == 2    # XDP_PASS
        with prog.attach():
            assert syscall.prog_test_run(xdp_target.fd, packet, 128)[0] == 1  # XDP_DROP
        assert syscall.prog_test_run(xdp_target.fd, packet, 128)[0] == 2
