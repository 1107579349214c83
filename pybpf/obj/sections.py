"""The SEC() table: how a program's ELF section name maps to its kernel type.

Data, not logic: one :class:`SecDef` row per libbpf section convention.  A
row whose prefix ends in ``+`` matches the bare prefix or ``prefix/anything``
(the part after the slash is the attach target, e.g. ``sched/sched_process_exec``);
other rows match exactly.  ``attach`` names the attach method in
:mod:`pybpf.link.hooks` (None: the program can't be auto-attached, as in libbpf).
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

from .. import uapi as u

# SecDef.flags
ATTACHABLE = 1 << 0      # pass attach_type as expected_attach_type at load
ATTACH_BTF = 1 << 1      # needs attach_btf_id resolved from kernel BTF at load
SLEEPABLE = 1 << 2       # BPF_F_SLEEPABLE
XDP_FRAGS = 1 << 3       # BPF_F_XDP_HAS_FRAGS


class SecDef(NamedTuple):
    prefix: str
    prog_type: int
    attach_type: int = 0
    flags: int = 0
    attach: Optional[str] = None

    @property
    def slashed(self) -> bool:
        return self.prefix.endswith("+")

    def match(self, section: str) -> Optional[str]:
        """The attach target ('' for none) if section matches this row, else None."""
        if not self.slashed:
            return "" if section == self.prefix else None
        base = self.prefix[:-1]
        if section == base:
            return ""
        if section.startswith(base + "/"):
            return section[len(base) + 1:]
        return None


def _d(prefix: str, prog_type: int, attach_type: int = 0, flags: int = 0,
       attach: Optional[str] = None) -> SecDef:
    return SecDef(prefix, prog_type, attach_type, flags, attach)


_CG_ADDR = u.BPF_PROG_TYPE_CGROUP_SOCK_ADDR
_CG_SOCK = u.BPF_PROG_TYPE_CGROUP_SOCK

SECTION_DEFS: Tuple[SecDef, ...] = (
    _d("socket", u.BPF_PROG_TYPE_SOCKET_FILTER),
    _d("sk_reuseport/migrate", u.BPF_PROG_TYPE_SK_REUSEPORT,
       u.BPF_SK_REUSEPORT_SELECT_OR_MIGRATE, ATTACHABLE),
    _d("sk_reuseport", u.BPF_PROG_TYPE_SK_REUSEPORT, u.BPF_SK_REUSEPORT_SELECT, ATTACHABLE),
    _d("kprobe+", u.BPF_PROG_TYPE_KPROBE, attach="kprobe"),
    _d("uprobe+", u.BPF_PROG_TYPE_KPROBE, attach="uprobe"),
    _d("uprobe.s+", u.BPF_PROG_TYPE_KPROBE, flags=SLEEPABLE, attach="uprobe"),
    _d("kretprobe+", u.BPF_PROG_TYPE_KPROBE, attach="kprobe"),
    _d("uretprobe+", u.BPF_PROG_TYPE_KPROBE, attach="uprobe"),
    _d("uretprobe.s+", u.BPF_PROG_TYPE_KPROBE, flags=SLEEPABLE, attach="uprobe"),
    _d("kprobe.multi+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_KPROBE_MULTI, attach="kprobe_multi"),
    _d("kretprobe.multi+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_KPROBE_MULTI,
       attach="kprobe_multi"),
    _d("kprobe.session+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_KPROBE_SESSION,
       attach="kprobe_multi"),
    _d("uprobe.multi+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_UPROBE_MULTI, attach="uprobe_multi"),
    _d("uretprobe.multi+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_UPROBE_MULTI,
       attach="uprobe_multi"),
    _d("uprobe.session+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_UPROBE_SESSION,
       attach="uprobe_multi"),
    _d("uprobe.multi.s+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_UPROBE_MULTI, SLEEPABLE,
       "uprobe_multi"),
    _d("uretprobe.multi.s+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_UPROBE_MULTI, SLEEPABLE,
       "uprobe_multi"),
    _d("uprobe.session.s+", u.BPF_PROG_TYPE_KPROBE, u.BPF_TRACE_UPROBE_SESSION, SLEEPABLE,
       "uprobe_multi"),
    _d("ksyscall+", u.BPF_PROG_TYPE_KPROBE, attach="ksyscall"),
    _d("kretsyscall+", u.BPF_PROG_TYPE_KPROBE, attach="ksyscall"),
    _d("usdt+", u.BPF_PROG_TYPE_KPROBE, attach="usdt"),
    _d("usdt.s+", u.BPF_PROG_TYPE_KPROBE, flags=SLEEPABLE, attach="usdt"),
    _d("tc/ingress", u.BPF_PROG_TYPE_SCHED_CLS, u.BPF_TCX_INGRESS, attach="tcx"),
    _d("tc/egress", u.BPF_PROG_TYPE_SCHED_CLS, u.BPF_TCX_EGRESS, attach="tcx"),
    _d("tcx/ingress", u.BPF_PROG_TYPE_SCHED_CLS, u.BPF_TCX_INGRESS, attach="tcx"),
    _d("tcx/egress", u.BPF_PROG_TYPE_SCHED_CLS, u.BPF_TCX_EGRESS, attach="tcx"),
    _d("tc", u.BPF_PROG_TYPE_SCHED_CLS),
    _d("classifier", u.BPF_PROG_TYPE_SCHED_CLS),
    _d("action", u.BPF_PROG_TYPE_SCHED_ACT),
    _d("netkit/primary", u.BPF_PROG_TYPE_SCHED_CLS, u.BPF_NETKIT_PRIMARY, attach="netkit"),
    _d("netkit/peer", u.BPF_PROG_TYPE_SCHED_CLS, u.BPF_NETKIT_PEER, attach="netkit"),
    _d("tracepoint+", u.BPF_PROG_TYPE_TRACEPOINT, attach="tracepoint"),
    _d("tp+", u.BPF_PROG_TYPE_TRACEPOINT, attach="tracepoint"),
    _d("raw_tracepoint+", u.BPF_PROG_TYPE_RAW_TRACEPOINT, attach="raw_tracepoint"),
    _d("raw_tp+", u.BPF_PROG_TYPE_RAW_TRACEPOINT, attach="raw_tracepoint"),
    _d("raw_tracepoint.w+", u.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, attach="raw_tracepoint"),
    _d("raw_tp.w+", u.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, attach="raw_tracepoint"),
    _d("tp_btf+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_RAW_TP, ATTACH_BTF, "tracing"),
    _d("fentry+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_FENTRY, ATTACH_BTF, "tracing"),
    _d("fmod_ret+", u.BPF_PROG_TYPE_TRACING, u.BPF_MODIFY_RETURN, ATTACH_BTF, "tracing"),
    _d("fexit+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_FEXIT, ATTACH_BTF, "tracing"),
    _d("fentry.s+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_FENTRY, ATTACH_BTF | SLEEPABLE,
       "tracing"),
    _d("fmod_ret.s+", u.BPF_PROG_TYPE_TRACING, u.BPF_MODIFY_RETURN, ATTACH_BTF | SLEEPABLE,
       "tracing"),
    _d("fexit.s+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_FEXIT, ATTACH_BTF | SLEEPABLE,
       "tracing"),
    _d("freplace+", u.BPF_PROG_TYPE_EXT, 0, ATTACH_BTF, "freplace"),
    _d("lsm+", u.BPF_PROG_TYPE_LSM, u.BPF_LSM_MAC, ATTACH_BTF, "lsm"),
    _d("lsm.s+", u.BPF_PROG_TYPE_LSM, u.BPF_LSM_MAC, ATTACH_BTF | SLEEPABLE, "lsm"),
    _d("lsm_cgroup+", u.BPF_PROG_TYPE_LSM, u.BPF_LSM_CGROUP, ATTACH_BTF),
    _d("iter+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_ITER, ATTACH_BTF, "iter"),
    _d("iter.s+", u.BPF_PROG_TYPE_TRACING, u.BPF_TRACE_ITER, ATTACH_BTF | SLEEPABLE, "iter"),
    _d("syscall", u.BPF_PROG_TYPE_SYSCALL, flags=SLEEPABLE),
    _d("xdp.frags/devmap", u.BPF_PROG_TYPE_XDP, u.BPF_XDP_DEVMAP, ATTACHABLE | XDP_FRAGS),
    _d("xdp/devmap", u.BPF_PROG_TYPE_XDP, u.BPF_XDP_DEVMAP, ATTACHABLE),
    _d("xdp.frags/cpumap", u.BPF_PROG_TYPE_XDP, u.BPF_XDP_CPUMAP, ATTACHABLE | XDP_FRAGS),
    _d("xdp/cpumap", u.BPF_PROG_TYPE_XDP, u.BPF_XDP_CPUMAP, ATTACHABLE),
    _d("xdp.frags", u.BPF_PROG_TYPE_XDP, u.BPF_XDP, ATTACHABLE | XDP_FRAGS, "xdp"),
    _d("xdp", u.BPF_PROG_TYPE_XDP, u.BPF_XDP, ATTACHABLE, "xdp"),
    _d("perf_event", u.BPF_PROG_TYPE_PERF_EVENT, attach="perf_event"),
    _d("lwt_in", u.BPF_PROG_TYPE_LWT_IN),
    _d("lwt_out", u.BPF_PROG_TYPE_LWT_OUT),
    _d("lwt_xmit", u.BPF_PROG_TYPE_LWT_XMIT),
    _d("lwt_seg6local", u.BPF_PROG_TYPE_LWT_SEG6LOCAL),
    _d("sockops", u.BPF_PROG_TYPE_SOCK_OPS, u.BPF_CGROUP_SOCK_OPS, ATTACHABLE, "cgroup"),
    _d("sk_skb/stream_parser", u.BPF_PROG_TYPE_SK_SKB, u.BPF_SK_SKB_STREAM_PARSER, ATTACHABLE),
    _d("sk_skb/stream_verdict", u.BPF_PROG_TYPE_SK_SKB, u.BPF_SK_SKB_STREAM_VERDICT,
       ATTACHABLE),
    _d("sk_skb/verdict", u.BPF_PROG_TYPE_SK_SKB, u.BPF_SK_SKB_VERDICT, ATTACHABLE),
    _d("sk_skb", u.BPF_PROG_TYPE_SK_SKB),
    _d("sk_msg", u.BPF_PROG_TYPE_SK_MSG, u.BPF_SK_MSG_VERDICT, ATTACHABLE),
    _d("lirc_mode2", u.BPF_PROG_TYPE_LIRC_MODE2, u.BPF_LIRC_MODE2, ATTACHABLE),
    _d("flow_dissector", u.BPF_PROG_TYPE_FLOW_DISSECTOR, u.BPF_FLOW_DISSECTOR, ATTACHABLE,
       "netns"),
    _d("cgroup_skb/ingress", u.BPF_PROG_TYPE_CGROUP_SKB, u.BPF_CGROUP_INET_INGRESS,
       ATTACHABLE, "cgroup"),
    _d("cgroup_skb/egress", u.BPF_PROG_TYPE_CGROUP_SKB, u.BPF_CGROUP_INET_EGRESS,
       ATTACHABLE, "cgroup"),
    _d("cgroup/skb", u.BPF_PROG_TYPE_CGROUP_SKB),
    _d("cgroup/sock_create", _CG_SOCK, u.BPF_CGROUP_INET_SOCK_CREATE, ATTACHABLE, "cgroup"),
    _d("cgroup/sock_release", _CG_SOCK, u.BPF_CGROUP_INET_SOCK_RELEASE, ATTACHABLE, "cgroup"),
    _d("cgroup/sock", _CG_SOCK, u.BPF_CGROUP_INET_SOCK_CREATE, ATTACHABLE, "cgroup"),
    _d("cgroup/post_bind4", _CG_SOCK, u.BPF_CGROUP_INET4_POST_BIND, ATTACHABLE, "cgroup"),
    _d("cgroup/post_bind6", _CG_SOCK, u.BPF_CGROUP_INET6_POST_BIND, ATTACHABLE, "cgroup"),
    _d("cgroup/bind4", _CG_ADDR, u.BPF_CGROUP_INET4_BIND, ATTACHABLE, "cgroup"),
    _d("cgroup/bind6", _CG_ADDR, u.BPF_CGROUP_INET6_BIND, ATTACHABLE, "cgroup"),
    _d("cgroup/connect4", _CG_ADDR, u.BPF_CGROUP_INET4_CONNECT, ATTACHABLE, "cgroup"),
    _d("cgroup/connect6", _CG_ADDR, u.BPF_CGROUP_INET6_CONNECT, ATTACHABLE, "cgroup"),
    _d("cgroup/connect_unix", _CG_ADDR, u.BPF_CGROUP_UNIX_CONNECT, ATTACHABLE, "cgroup"),
    _d("cgroup/sendmsg4", _CG_ADDR, u.BPF_CGROUP_UDP4_SENDMSG, ATTACHABLE, "cgroup"),
    _d("cgroup/sendmsg6", _CG_ADDR, u.BPF_CGROUP_UDP6_SENDMSG, ATTACHABLE, "cgroup"),
    _d("cgroup/sendmsg_unix", _CG_ADDR, u.BPF_CGROUP_UNIX_SENDMSG, ATTACHABLE, "cgroup"),
    _d("cgroup/recvmsg4", _CG_ADDR, u.BPF_CGROUP_UDP4_RECVMSG, ATTACHABLE, "cgroup"),
    _d("cgroup/recvmsg6", _CG_ADDR, u.BPF_CGROUP_UDP6_RECVMSG, ATTACHABLE, "cgroup"),
    _d("cgroup/recvmsg_unix", _CG_ADDR, u.BPF_CGROUP_UNIX_RECVMSG, ATTACHABLE, "cgroup"),
    _d("cgroup/getpeername4", _CG_ADDR, u.BPF_CGROUP_INET4_GETPEERNAME, ATTACHABLE, "cgroup"),
    _d("cgroup/getpeername6", _CG_ADDR, u.BPF_CGROUP_INET6_GETPEERNAME, ATTACHABLE, "cgroup"),
    _d("cgroup/getpeername_unix", _CG_ADDR, u.BPF_CGROUP_UNIX_GETPEERNAME, ATTACHABLE,
       "cgroup"),
    _d("cgroup/getsockname4", _CG_ADDR, u.BPF_CGROUP_INET4_GETSOCKNAME, ATTACHABLE, "cgroup"),
    _d("cgroup/getsockname6", _CG_ADDR, u.BPF_CGROUP_INET6_GETSOCKNAME, ATTACHABLE, "cgroup"),
    _d("cgroup/getsockname_unix", _CG_ADDR, u.BPF_CGROUP_UNIX_GETSOCKNAME, ATTACHABLE,
       "cgroup"),
    _d("cgroup/sysctl", u.BPF_PROG_TYPE_CGROUP_SYSCTL, u.BPF_CGROUP_SYSCTL, ATTACHABLE,
       "cgroup"),
    _d("cgroup/getsockopt", u.BPF_PROG_TYPE_CGROUP_SOCKOPT, u.BPF_CGROUP_GETSOCKOPT,
       ATTACHABLE, "cgroup"),
    _d("cgroup/setsockopt", u.BPF_PROG_TYPE_CGROUP_SOCKOPT, u.BPF_CGROUP_SETSOCKOPT,
       ATTACHABLE, "cgroup"),
    _d("cgroup/dev", u.BPF_PROG_TYPE_CGROUP_DEVICE, u.BPF_CGROUP_DEVICE, ATTACHABLE, "cgroup"),
    _d("struct_ops+", u.BPF_PROG_TYPE_STRUCT_OPS),
    _d("struct_ops.s+", u.BPF_PROG_TYPE_STRUCT_OPS, flags=SLEEPABLE),
    _d("sk_lookup", u.BPF_PROG_TYPE_SK_LOOKUP, u.BPF_SK_LOOKUP, ATTACHABLE, "netns"),
    _d("netfilter", u.BPF_PROG_TYPE_NETFILTER, u.BPF_NETFILTER),
)


#: BTF-attached hooks in the kernel, by expected_attach_type: (the BTF name's
#: prefix before the SEC() target, its BTF kind, what the target names)
KERNEL_BTF_TARGETS: Dict[int, Tuple[str, int, str]] = {
    u.BPF_TRACE_RAW_TP: ("btf_trace_", u.BTF_KIND_TYPEDEF, "tracepoint"),
    u.BPF_TRACE_FENTRY: ("", u.BTF_KIND_FUNC, "kernel function"),
    u.BPF_TRACE_FEXIT: ("", u.BTF_KIND_FUNC, "kernel function"),
    u.BPF_MODIFY_RETURN: ("", u.BTF_KIND_FUNC, "kernel function"),
    u.BPF_LSM_MAC: ("bpf_lsm_", u.BTF_KIND_FUNC, "LSM hook"),
    u.BPF_LSM_CGROUP: ("bpf_lsm_", u.BTF_KIND_FUNC, "LSM hook"),
    u.BPF_TRACE_ITER: ("bpf_iter_", u.BTF_KIND_FUNC, "iterator"),
}


def find_sec_def(section: str) -> Tuple[Optional[SecDef], str]:
    """(row, attach target) for a section name; (None, "") when no row matches."""
    for sec_def in SECTION_DEFS:
        target = sec_def.match(section)
        if target is not None:
            return sec_def, target
    return None, ""
