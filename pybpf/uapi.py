"""Kernel uapi: constants, enums and struct layouts, named as in the headers.

Sources: ``linux/bpf.h``, ``linux/btf.h``, ``linux/perf_event.h`` of kernel
6.18 (the Debian 12 headers are 6.1; later additions are marked with the
release that added them).  One place for all of them, so that grepping for a
kernel name such as ``BPF_MAP_TYPE_RINGBUF`` lands here.  Every enum member is
also a module-level constant (a plain int), spelled out (no generated names: tools and
mypy see them).
"""
from __future__ import annotations

import ctypes
import os
from typing import Dict, Type

c_u8, c_u16, c_u32, c_u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64
c_s32, c_s64 = ctypes.c_int32, ctypes.c_int64

# ---------------------------------------------------------------- C enums

class CEnum:
    """A C enum of the headers: its members are int class attributes, in header order.

    Not an ``IntEnum``: making the nine enums below (~220 members) one cost ~3 ms
    of every start.  :func:`enum_name` and :func:`short_name` give names back,
    :func:`enum_members` every member."""


_BY_VALUE: Dict[Type[CEnum], Dict[int, str]] = {}


def enum_members(enum: Type[CEnum]) -> Dict[str, int]:
    """Every member of ``enum`` by name, in header order (aliases included)."""
    return {k: v for k, v in vars(enum).items() if isinstance(v, int) and not k.startswith("_")}


def enum_name(enum: Type[CEnum], value: int) -> str:
    """The name of ``value`` in ``enum`` (the first, for an aliased value); ValueError
    if it has none, as ``IntEnum`` would."""
    names = _BY_VALUE.get(enum)
    if names is None:
        names = _BY_VALUE[enum] = {}
        for name, member in enum_members(enum).items():
            names.setdefault(member, name)
    try:
        return names[value]
    except (KeyError, TypeError):
        raise ValueError(f"{value!r} is not a valid {enum.__name__}") from None


def short_name(enum: Type[CEnum], value: int, prefix: str, unknown: str = "#{}") -> str:
    """bpftool's spelling of a member: its name without ``prefix``, lower case
    ("BPF_MAP_TYPE_RINGBUF" -> "ringbuf"); ``unknown`` formatted with the value when
    ``enum`` has no such member."""
    try:
        return enum_name(enum, value)[len(prefix):].lower()
    except ValueError:
        return unknown.format(value)


# ---------------------------------------------------------------- linux/bpf.h enums

class bpf_cmd(CEnum):
    BPF_MAP_CREATE = 0
    BPF_MAP_LOOKUP_ELEM = 1
    BPF_MAP_UPDATE_ELEM = 2
    BPF_MAP_DELETE_ELEM = 3
    BPF_MAP_GET_NEXT_KEY = 4
    BPF_PROG_LOAD = 5
    BPF_OBJ_PIN = 6
    BPF_OBJ_GET = 7
    BPF_PROG_ATTACH = 8
    BPF_PROG_DETACH = 9
    BPF_PROG_TEST_RUN = 10
    BPF_PROG_RUN = 10
    BPF_PROG_GET_NEXT_ID = 11
    BPF_MAP_GET_NEXT_ID = 12
    BPF_PROG_GET_FD_BY_ID = 13
    BPF_MAP_GET_FD_BY_ID = 14
    BPF_OBJ_GET_INFO_BY_FD = 15
    BPF_PROG_QUERY = 16
    BPF_RAW_TRACEPOINT_OPEN = 17
    BPF_BTF_LOAD = 18
    BPF_BTF_GET_FD_BY_ID = 19
    BPF_TASK_FD_QUERY = 20
    BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
    BPF_MAP_FREEZE = 22
    BPF_BTF_GET_NEXT_ID = 23
    BPF_MAP_LOOKUP_BATCH = 24
    BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25
    BPF_MAP_UPDATE_BATCH = 26
    BPF_MAP_DELETE_BATCH = 27
    BPF_LINK_CREATE = 28
    BPF_LINK_UPDATE = 29
    BPF_LINK_GET_FD_BY_ID = 30
    BPF_LINK_GET_NEXT_ID = 31
    BPF_ENABLE_STATS = 32
    BPF_ITER_CREATE = 33
    BPF_LINK_DETACH = 34
    BPF_PROG_BIND_MAP = 35
    BPF_TOKEN_CREATE = 36  # 6.9

class bpf_map_type(CEnum):
    BPF_MAP_TYPE_UNSPEC = 0
    BPF_MAP_TYPE_HASH = 1
    BPF_MAP_TYPE_ARRAY = 2
    BPF_MAP_TYPE_PROG_ARRAY = 3
    BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
    BPF_MAP_TYPE_PERCPU_HASH = 5
    BPF_MAP_TYPE_PERCPU_ARRAY = 6
    BPF_MAP_TYPE_STACK_TRACE = 7
    BPF_MAP_TYPE_CGROUP_ARRAY = 8
    BPF_MAP_TYPE_LRU_HASH = 9
    BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
    BPF_MAP_TYPE_LPM_TRIE = 11
    BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
    BPF_MAP_TYPE_HASH_OF_MAPS = 13
    BPF_MAP_TYPE_DEVMAP = 14
    BPF_MAP_TYPE_SOCKMAP = 15
    BPF_MAP_TYPE_CPUMAP = 16
    BPF_MAP_TYPE_XSKMAP = 17
    BPF_MAP_TYPE_SOCKHASH = 18
    BPF_MAP_TYPE_CGROUP_STORAGE = 19
    BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
    BPF_MAP_TYPE_QUEUE = 22
    BPF_MAP_TYPE_STACK = 23
    BPF_MAP_TYPE_SK_STORAGE = 24
    BPF_MAP_TYPE_DEVMAP_HASH = 25
    BPF_MAP_TYPE_STRUCT_OPS = 26
    BPF_MAP_TYPE_RINGBUF = 27
    BPF_MAP_TYPE_INODE_STORAGE = 28
    BPF_MAP_TYPE_TASK_STORAGE = 29
    BPF_MAP_TYPE_BLOOM_FILTER = 30
    BPF_MAP_TYPE_USER_RINGBUF = 31
    BPF_MAP_TYPE_CGRP_STORAGE = 32  # 6.2
    BPF_MAP_TYPE_ARENA = 33  # 6.9

class bpf_prog_type(CEnum):
    BPF_PROG_TYPE_UNSPEC = 0
    BPF_PROG_TYPE_SOCKET_FILTER = 1
    BPF_PROG_TYPE_KPROBE = 2
    BPF_PROG_TYPE_SCHED_CLS = 3
    BPF_PROG_TYPE_SCHED_ACT = 4
    BPF_PROG_TYPE_TRACEPOINT = 5
    BPF_PROG_TYPE_XDP = 6
    BPF_PROG_TYPE_PERF_EVENT = 7
    BPF_PROG_TYPE_CGROUP_SKB = 8
    BPF_PROG_TYPE_CGROUP_SOCK = 9
    BPF_PROG_TYPE_LWT_IN = 10
    BPF_PROG_TYPE_LWT_OUT = 11
    BPF_PROG_TYPE_LWT_XMIT = 12
    BPF_PROG_TYPE_SOCK_OPS = 13
    BPF_PROG_TYPE_SK_SKB = 14
    BPF_PROG_TYPE_CGROUP_DEVICE = 15
    BPF_PROG_TYPE_SK_MSG = 16
    BPF_PROG_TYPE_RAW_TRACEPOINT = 17
    BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
    BPF_PROG_TYPE_LWT_SEG6LOCAL = 19
    BPF_PROG_TYPE_LIRC_MODE2 = 20
    BPF_PROG_TYPE_SK_REUSEPORT = 21
    BPF_PROG_TYPE_FLOW_DISSECTOR = 22
    BPF_PROG_TYPE_CGROUP_SYSCTL = 23
    BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE = 24
    BPF_PROG_TYPE_CGROUP_SOCKOPT = 25
    BPF_PROG_TYPE_TRACING = 26
    BPF_PROG_TYPE_STRUCT_OPS = 27
    BPF_PROG_TYPE_EXT = 28
    BPF_PROG_TYPE_LSM = 29
    BPF_PROG_TYPE_SK_LOOKUP = 30
    BPF_PROG_TYPE_SYSCALL = 31
    BPF_PROG_TYPE_NETFILTER = 32  # 6.4

class bpf_attach_type(CEnum):
    BPF_CGROUP_INET_INGRESS = 0
    BPF_CGROUP_INET_EGRESS = 1
    BPF_CGROUP_INET_SOCK_CREATE = 2
    BPF_CGROUP_SOCK_OPS = 3
    BPF_SK_SKB_STREAM_PARSER = 4
    BPF_SK_SKB_STREAM_VERDICT = 5
    BPF_CGROUP_DEVICE = 6
    BPF_SK_MSG_VERDICT = 7
    BPF_CGROUP_INET4_BIND = 8
    BPF_CGROUP_INET6_BIND = 9
    BPF_CGROUP_INET4_CONNECT = 10
    BPF_CGROUP_INET6_CONNECT = 11
    BPF_CGROUP_INET4_POST_BIND = 12
    BPF_CGROUP_INET6_POST_BIND = 13
    BPF_CGROUP_UDP4_SENDMSG = 14
    BPF_CGROUP_UDP6_SENDMSG = 15
    BPF_LIRC_MODE2 = 16
    BPF_FLOW_DISSECTOR = 17
    BPF_CGROUP_SYSCTL = 18
    BPF_CGROUP_UDP4_RECVMSG = 19
    BPF_CGROUP_UDP6_RECVMSG = 20
    BPF_CGROUP_GETSOCKOPT = 21
    BPF_CGROUP_SETSOCKOPT = 22
    BPF_TRACE_RAW_TP = 23
    BPF_TRACE_FENTRY = 24
    BPF_TRACE_FEXIT = 25
    BPF_MODIFY_RETURN = 26
    BPF_LSM_MAC = 27
    BPF_TRACE_ITER = 28
    BPF_CGROUP_INET4_GETPEERNAME = 29
    BPF_CGROUP_INET6_GETPEERNAME = 30
    BPF_CGROUP_INET4_GETSOCKNAME = 31
    BPF_CGROUP_INET6_GETSOCKNAME = 32
    BPF_XDP_DEVMAP = 33
    BPF_CGROUP_INET_SOCK_RELEASE = 34
    BPF_XDP_CPUMAP = 35
    BPF_SK_LOOKUP = 36
    BPF_XDP = 37
    BPF_SK_SKB_VERDICT = 38
    BPF_SK_REUSEPORT_SELECT = 39
    BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = 40
    BPF_PERF_EVENT = 41
    BPF_TRACE_KPROBE_MULTI = 42
    BPF_LSM_CGROUP = 43
    BPF_STRUCT_OPS = 44  # 6.4 and later
    BPF_NETFILTER = 45
    BPF_TCX_INGRESS = 46
    BPF_TCX_EGRESS = 47
    BPF_TRACE_UPROBE_MULTI = 48
    BPF_CGROUP_UNIX_CONNECT = 49
    BPF_CGROUP_UNIX_SENDMSG = 50
    BPF_CGROUP_UNIX_RECVMSG = 51
    BPF_CGROUP_UNIX_GETPEERNAME = 52
    BPF_CGROUP_UNIX_GETSOCKNAME = 53
    BPF_NETKIT_PRIMARY = 54
    BPF_NETKIT_PEER = 55
    BPF_TRACE_KPROBE_SESSION = 56
    BPF_TRACE_UPROBE_SESSION = 57

class bpf_link_type(CEnum):
    BPF_LINK_TYPE_UNSPEC = 0
    BPF_LINK_TYPE_RAW_TRACEPOINT = 1
    BPF_LINK_TYPE_TRACING = 2
    BPF_LINK_TYPE_CGROUP = 3
    BPF_LINK_TYPE_ITER = 4
    BPF_LINK_TYPE_NETNS = 5
    BPF_LINK_TYPE_XDP = 6
    BPF_LINK_TYPE_PERF_EVENT = 7
    BPF_LINK_TYPE_KPROBE_MULTI = 8
    BPF_LINK_TYPE_STRUCT_OPS = 9
    BPF_LINK_TYPE_NETFILTER = 10  # 6.4 and later
    BPF_LINK_TYPE_TCX = 11
    BPF_LINK_TYPE_UPROBE_MULTI = 12
    BPF_LINK_TYPE_NETKIT = 13
    BPF_LINK_TYPE_SOCKMAP = 14

class bpf_core_relo_kind(CEnum):
    BPF_CORE_FIELD_BYTE_OFFSET = 0
    BPF_CORE_FIELD_BYTE_SIZE = 1
    BPF_CORE_FIELD_EXISTS = 2
    BPF_CORE_FIELD_SIGNED = 3
    BPF_CORE_FIELD_LSHIFT_U64 = 4
    BPF_CORE_FIELD_RSHIFT_U64 = 5
    BPF_CORE_TYPE_ID_LOCAL = 6
    BPF_CORE_TYPE_ID_TARGET = 7
    BPF_CORE_TYPE_EXISTS = 8
    BPF_CORE_TYPE_SIZE = 9
    BPF_CORE_ENUMVAL_EXISTS = 10
    BPF_CORE_ENUMVAL_VALUE = 11
    BPF_CORE_TYPE_MATCHES = 12

# enum bpf_func_id: plain ints (an IntEnum of this size is slow to import);
# func_name() gives the name back.
BPF_FUNC_unspec = 0
BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_map_update_elem = 2
BPF_FUNC_map_delete_elem = 3
BPF_FUNC_probe_read = 4
BPF_FUNC_ktime_get_ns = 5
BPF_FUNC_trace_printk = 6
BPF_FUNC_get_prandom_u32 = 7
BPF_FUNC_get_smp_processor_id = 8
BPF_FUNC_skb_store_bytes = 9
BPF_FUNC_l3_csum_replace = 10
BPF_FUNC_l4_csum_replace = 11
BPF_FUNC_tail_call = 12
BPF_FUNC_clone_redirect = 13
BPF_FUNC_get_current_pid_tgid = 14
BPF_FUNC_get_current_uid_gid = 15
BPF_FUNC_get_current_comm = 16
BPF_FUNC_get_cgroup_classid = 17
BPF_FUNC_skb_vlan_push = 18
BPF_FUNC_skb_vlan_pop = 19
BPF_FUNC_skb_get_tunnel_key = 20
BPF_FUNC_skb_set_tunnel_key = 21
BPF_FUNC_perf_event_read = 22
BPF_FUNC_redirect = 23
BPF_FUNC_get_route_realm = 24
BPF_FUNC_perf_event_output = 25
BPF_FUNC_skb_load_bytes = 26
BPF_FUNC_get_stackid = 27
BPF_FUNC_csum_diff = 28
BPF_FUNC_skb_get_tunnel_opt = 29
BPF_FUNC_skb_set_tunnel_opt = 30
BPF_FUNC_skb_change_proto = 31
BPF_FUNC_skb_change_type = 32
BPF_FUNC_skb_under_cgroup = 33
BPF_FUNC_get_hash_recalc = 34
BPF_FUNC_get_current_task = 35
BPF_FUNC_probe_write_user = 36
BPF_FUNC_current_task_under_cgroup = 37
BPF_FUNC_skb_change_tail = 38
BPF_FUNC_skb_pull_data = 39
BPF_FUNC_csum_update = 40
BPF_FUNC_set_hash_invalid = 41
BPF_FUNC_get_numa_node_id = 42
BPF_FUNC_skb_change_head = 43
BPF_FUNC_xdp_adjust_head = 44
BPF_FUNC_probe_read_str = 45
BPF_FUNC_get_socket_cookie = 46
BPF_FUNC_get_socket_uid = 47
BPF_FUNC_set_hash = 48
BPF_FUNC_setsockopt = 49
BPF_FUNC_skb_adjust_room = 50
BPF_FUNC_redirect_map = 51
BPF_FUNC_sk_redirect_map = 52
BPF_FUNC_sock_map_update = 53
BPF_FUNC_xdp_adjust_meta = 54
BPF_FUNC_perf_event_read_value = 55
BPF_FUNC_perf_prog_read_value = 56
BPF_FUNC_getsockopt = 57
BPF_FUNC_override_return = 58
BPF_FUNC_sock_ops_cb_flags_set = 59
BPF_FUNC_msg_redirect_map = 60
BPF_FUNC_msg_apply_bytes = 61
BPF_FUNC_msg_cork_bytes = 62
BPF_FUNC_msg_pull_data = 63
BPF_FUNC_bind = 64
BPF_FUNC_xdp_adjust_tail = 65
BPF_FUNC_skb_get_xfrm_state = 66
BPF_FUNC_get_stack = 67
BPF_FUNC_skb_load_bytes_relative = 68
BPF_FUNC_fib_lookup = 69
BPF_FUNC_sock_hash_update = 70
BPF_FUNC_msg_redirect_hash = 71
BPF_FUNC_sk_redirect_hash = 72
BPF_FUNC_lwt_push_encap = 73
BPF_FUNC_lwt_seg6_store_bytes = 74
BPF_FUNC_lwt_seg6_adjust_srh = 75
BPF_FUNC_lwt_seg6_action = 76
BPF_FUNC_rc_repeat = 77
BPF_FUNC_rc_keydown = 78
BPF_FUNC_skb_cgroup_id = 79
BPF_FUNC_get_current_cgroup_id = 80
BPF_FUNC_get_local_storage = 81
BPF_FUNC_sk_select_reuseport = 82
BPF_FUNC_skb_ancestor_cgroup_id = 83
BPF_FUNC_sk_lookup_tcp = 84
BPF_FUNC_sk_lookup_udp = 85
BPF_FUNC_sk_release = 86
BPF_FUNC_map_push_elem = 87
BPF_FUNC_map_pop_elem = 88
BPF_FUNC_map_peek_elem = 89
BPF_FUNC_msg_push_data = 90
BPF_FUNC_msg_pop_data = 91
BPF_FUNC_rc_pointer_rel = 92
BPF_FUNC_spin_lock = 93
BPF_FUNC_spin_unlock = 94
BPF_FUNC_sk_fullsock = 95
BPF_FUNC_tcp_sock = 96
BPF_FUNC_skb_ecn_set_ce = 97
BPF_FUNC_get_listener_sock = 98
BPF_FUNC_skc_lookup_tcp = 99
BPF_FUNC_tcp_check_syncookie = 100
BPF_FUNC_sysctl_get_name = 101
BPF_FUNC_sysctl_get_current_value = 102
BPF_FUNC_sysctl_get_new_value = 103
BPF_FUNC_sysctl_set_new_value = 104
BPF_FUNC_strtol = 105
BPF_FUNC_strtoul = 106
BPF_FUNC_sk_storage_get = 107
BPF_FUNC_sk_storage_delete = 108
BPF_FUNC_send_signal = 109
BPF_FUNC_tcp_gen_syncookie = 110
BPF_FUNC_skb_output = 111
BPF_FUNC_probe_read_user = 112
BPF_FUNC_probe_read_kernel = 113
BPF_FUNC_probe_read_user_str = 114
BPF_FUNC_probe_read_kernel_str = 115
BPF_FUNC_tcp_send_ack = 116
BPF_FUNC_send_signal_thread = 117
BPF_FUNC_jiffies64 = 118
BPF_FUNC_read_branch_records = 119
BPF_FUNC_get_ns_current_pid_tgid = 120
BPF_FUNC_xdp_output = 121
BPF_FUNC_get_netns_cookie = 122
BPF_FUNC_get_current_ancestor_cgroup_id = 123
BPF_FUNC_sk_assign = 124
BPF_FUNC_ktime_get_boot_ns = 125
BPF_FUNC_seq_printf = 126
BPF_FUNC_seq_write = 127
BPF_FUNC_sk_cgroup_id = 128
BPF_FUNC_sk_ancestor_cgroup_id = 129
BPF_FUNC_ringbuf_output = 130
BPF_FUNC_ringbuf_reserve = 131
BPF_FUNC_ringbuf_submit = 132
BPF_FUNC_ringbuf_discard = 133
BPF_FUNC_ringbuf_query = 134
BPF_FUNC_csum_level = 135
BPF_FUNC_skc_to_tcp6_sock = 136
BPF_FUNC_skc_to_tcp_sock = 137
BPF_FUNC_skc_to_tcp_timewait_sock = 138
BPF_FUNC_skc_to_tcp_request_sock = 139
BPF_FUNC_skc_to_udp6_sock = 140
BPF_FUNC_get_task_stack = 141
BPF_FUNC_load_hdr_opt = 142
BPF_FUNC_store_hdr_opt = 143
BPF_FUNC_reserve_hdr_opt = 144
BPF_FUNC_inode_storage_get = 145
BPF_FUNC_inode_storage_delete = 146
BPF_FUNC_d_path = 147
BPF_FUNC_copy_from_user = 148
BPF_FUNC_snprintf_btf = 149
BPF_FUNC_seq_printf_btf = 150
BPF_FUNC_skb_cgroup_classid = 151
BPF_FUNC_redirect_neigh = 152
BPF_FUNC_per_cpu_ptr = 153
BPF_FUNC_this_cpu_ptr = 154
BPF_FUNC_redirect_peer = 155
BPF_FUNC_task_storage_get = 156
BPF_FUNC_task_storage_delete = 157
BPF_FUNC_get_current_task_btf = 158
BPF_FUNC_bprm_opts_set = 159
BPF_FUNC_ktime_get_coarse_ns = 160
BPF_FUNC_ima_inode_hash = 161
BPF_FUNC_sock_from_file = 162
BPF_FUNC_check_mtu = 163
BPF_FUNC_for_each_map_elem = 164
BPF_FUNC_snprintf = 165
BPF_FUNC_sys_bpf = 166
BPF_FUNC_btf_find_by_name_kind = 167
BPF_FUNC_sys_close = 168
BPF_FUNC_timer_init = 169
BPF_FUNC_timer_set_callback = 170
BPF_FUNC_timer_start = 171
BPF_FUNC_timer_cancel = 172
BPF_FUNC_get_func_ip = 173
BPF_FUNC_get_attach_cookie = 174
BPF_FUNC_task_pt_regs = 175
BPF_FUNC_get_branch_snapshot = 176
BPF_FUNC_trace_vprintk = 177
BPF_FUNC_skc_to_unix_sock = 178
BPF_FUNC_kallsyms_lookup_name = 179
BPF_FUNC_find_vma = 180
BPF_FUNC_loop = 181
BPF_FUNC_strncmp = 182
BPF_FUNC_get_func_arg = 183
BPF_FUNC_get_func_ret = 184
BPF_FUNC_get_func_arg_cnt = 185
BPF_FUNC_get_retval = 186
BPF_FUNC_set_retval = 187
BPF_FUNC_xdp_get_buff_len = 188
BPF_FUNC_xdp_load_bytes = 189
BPF_FUNC_xdp_store_bytes = 190
BPF_FUNC_copy_from_user_task = 191
BPF_FUNC_skb_set_tstamp = 192
BPF_FUNC_ima_file_hash = 193
BPF_FUNC_kptr_xchg = 194
BPF_FUNC_map_lookup_percpu_elem = 195
BPF_FUNC_skc_to_mptcp_sock = 196
BPF_FUNC_dynptr_from_mem = 197
BPF_FUNC_ringbuf_reserve_dynptr = 198
BPF_FUNC_ringbuf_submit_dynptr = 199
BPF_FUNC_ringbuf_discard_dynptr = 200
BPF_FUNC_dynptr_read = 201
BPF_FUNC_dynptr_write = 202
BPF_FUNC_dynptr_data = 203
BPF_FUNC_tcp_raw_gen_syncookie_ipv4 = 204
BPF_FUNC_tcp_raw_gen_syncookie_ipv6 = 205
BPF_FUNC_tcp_raw_check_syncookie_ipv4 = 206
BPF_FUNC_tcp_raw_check_syncookie_ipv6 = 207
BPF_FUNC_ktime_get_tai_ns = 208
BPF_FUNC_user_ringbuf_drain = 209

# bpf_cmd members as module constants
BPF_MAP_CREATE = bpf_cmd.BPF_MAP_CREATE
BPF_MAP_LOOKUP_ELEM = bpf_cmd.BPF_MAP_LOOKUP_ELEM
BPF_MAP_UPDATE_ELEM = bpf_cmd.BPF_MAP_UPDATE_ELEM
BPF_MAP_DELETE_ELEM = bpf_cmd.BPF_MAP_DELETE_ELEM
BPF_MAP_GET_NEXT_KEY = bpf_cmd.BPF_MAP_GET_NEXT_KEY
BPF_PROG_LOAD = bpf_cmd.BPF_PROG_LOAD
BPF_OBJ_PIN = bpf_cmd.BPF_OBJ_PIN
BPF_OBJ_GET = bpf_cmd.BPF_OBJ_GET
BPF_PROG_ATTACH = bpf_cmd.BPF_PROG_ATTACH
BPF_PROG_DETACH = bpf_cmd.BPF_PROG_DETACH
BPF_PROG_TEST_RUN = bpf_cmd.BPF_PROG_TEST_RUN
BPF_PROG_RUN = bpf_cmd.BPF_PROG_RUN
BPF_PROG_GET_NEXT_ID = bpf_cmd.BPF_PROG_GET_NEXT_ID
BPF_MAP_GET_NEXT_ID = bpf_cmd.BPF_MAP_GET_NEXT_ID
BPF_PROG_GET_FD_BY_ID = bpf_cmd.BPF_PROG_GET_FD_BY_ID
BPF_MAP_GET_FD_BY_ID = bpf_cmd.BPF_MAP_GET_FD_BY_ID
BPF_OBJ_GET_INFO_BY_FD = bpf_cmd.BPF_OBJ_GET_INFO_BY_FD
BPF_PROG_QUERY = bpf_cmd.BPF_PROG_QUERY
BPF_RAW_TRACEPOINT_OPEN = bpf_cmd.BPF_RAW_TRACEPOINT_OPEN
BPF_BTF_LOAD = bpf_cmd.BPF_BTF_LOAD
BPF_BTF_GET_FD_BY_ID = bpf_cmd.BPF_BTF_GET_FD_BY_ID
BPF_TASK_FD_QUERY = bpf_cmd.BPF_TASK_FD_QUERY
BPF_MAP_LOOKUP_AND_DELETE_ELEM = bpf_cmd.BPF_MAP_LOOKUP_AND_DELETE_ELEM
BPF_MAP_FREEZE = bpf_cmd.BPF_MAP_FREEZE
BPF_BTF_GET_NEXT_ID = bpf_cmd.BPF_BTF_GET_NEXT_ID
BPF_MAP_LOOKUP_BATCH = bpf_cmd.BPF_MAP_LOOKUP_BATCH
BPF_MAP_LOOKUP_AND_DELETE_BATCH = bpf_cmd.BPF_MAP_LOOKUP_AND_DELETE_BATCH
BPF_MAP_UPDATE_BATCH = bpf_cmd.BPF_MAP_UPDATE_BATCH
BPF_MAP_DELETE_BATCH = bpf_cmd.BPF_MAP_DELETE_BATCH
BPF_LINK_CREATE = bpf_cmd.BPF_LINK_CREATE
BPF_LINK_UPDATE = bpf_cmd.BPF_LINK_UPDATE
BPF_LINK_GET_FD_BY_ID = bpf_cmd.BPF_LINK_GET_FD_BY_ID
BPF_LINK_GET_NEXT_ID = bpf_cmd.BPF_LINK_GET_NEXT_ID
BPF_ENABLE_STATS = bpf_cmd.BPF_ENABLE_STATS
BPF_ITER_CREATE = bpf_cmd.BPF_ITER_CREATE
BPF_LINK_DETACH = bpf_cmd.BPF_LINK_DETACH
BPF_PROG_BIND_MAP = bpf_cmd.BPF_PROG_BIND_MAP
BPF_TOKEN_CREATE = bpf_cmd.BPF_TOKEN_CREATE
# bpf_map_type members as module constants
BPF_MAP_TYPE_UNSPEC = bpf_map_type.BPF_MAP_TYPE_UNSPEC
BPF_MAP_TYPE_HASH = bpf_map_type.BPF_MAP_TYPE_HASH
BPF_MAP_TYPE_ARRAY = bpf_map_type.BPF_MAP_TYPE_ARRAY
BPF_MAP_TYPE_PROG_ARRAY = bpf_map_type.BPF_MAP_TYPE_PROG_ARRAY
BPF_MAP_TYPE_PERF_EVENT_ARRAY = bpf_map_type.BPF_MAP_TYPE_PERF_EVENT_ARRAY
BPF_MAP_TYPE_PERCPU_HASH = bpf_map_type.BPF_MAP_TYPE_PERCPU_HASH
BPF_MAP_TYPE_PERCPU_ARRAY = bpf_map_type.BPF_MAP_TYPE_PERCPU_ARRAY
BPF_MAP_TYPE_STACK_TRACE = bpf_map_type.BPF_MAP_TYPE_STACK_TRACE
BPF_MAP_TYPE_CGROUP_ARRAY = bpf_map_type.BPF_MAP_TYPE_CGROUP_ARRAY
BPF_MAP_TYPE_LRU_HASH = bpf_map_type.BPF_MAP_TYPE_LRU_HASH
BPF_MAP_TYPE_LRU_PERCPU_HASH = bpf_map_type.BPF_MAP_TYPE_LRU_PERCPU_HASH
BPF_MAP_TYPE_LPM_TRIE = bpf_map_type.BPF_MAP_TYPE_LPM_TRIE
BPF_MAP_TYPE_ARRAY_OF_MAPS = bpf_map_type.BPF_MAP_TYPE_ARRAY_OF_MAPS
BPF_MAP_TYPE_HASH_OF_MAPS = bpf_map_type.BPF_MAP_TYPE_HASH_OF_MAPS
BPF_MAP_TYPE_DEVMAP = bpf_map_type.BPF_MAP_TYPE_DEVMAP
BPF_MAP_TYPE_SOCKMAP = bpf_map_type.BPF_MAP_TYPE_SOCKMAP
BPF_MAP_TYPE_CPUMAP = bpf_map_type.BPF_MAP_TYPE_CPUMAP
BPF_MAP_TYPE_XSKMAP = bpf_map_type.BPF_MAP_TYPE_XSKMAP
BPF_MAP_TYPE_SOCKHASH = bpf_map_type.BPF_MAP_TYPE_SOCKHASH
BPF_MAP_TYPE_CGROUP_STORAGE = bpf_map_type.BPF_MAP_TYPE_CGROUP_STORAGE
BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = bpf_map_type.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = bpf_map_type.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
BPF_MAP_TYPE_QUEUE = bpf_map_type.BPF_MAP_TYPE_QUEUE
BPF_MAP_TYPE_STACK = bpf_map_type.BPF_MAP_TYPE_STACK
BPF_MAP_TYPE_SK_STORAGE = bpf_map_type.BPF_MAP_TYPE_SK_STORAGE
BPF_MAP_TYPE_DEVMAP_HASH = bpf_map_type.BPF_MAP_TYPE_DEVMAP_HASH
BPF_MAP_TYPE_STRUCT_OPS = bpf_map_type.BPF_MAP_TYPE_STRUCT_OPS
BPF_MAP_TYPE_RINGBUF = bpf_map_type.BPF_MAP_TYPE_RINGBUF
BPF_MAP_TYPE_INODE_STORAGE = bpf_map_type.BPF_MAP_TYPE_INODE_STORAGE
BPF_MAP_TYPE_TASK_STORAGE = bpf_map_type.BPF_MAP_TYPE_TASK_STORAGE
BPF_MAP_TYPE_BLOOM_FILTER = bpf_map_type.BPF_MAP_TYPE_BLOOM_FILTER
BPF_MAP_TYPE_USER_RINGBUF = bpf_map_type.BPF_MAP_TYPE_USER_RINGBUF
BPF_MAP_TYPE_CGRP_STORAGE = bpf_map_type.BPF_MAP_TYPE_CGRP_STORAGE
BPF_MAP_TYPE_ARENA = bpf_map_type.BPF_MAP_TYPE_ARENA
# bpf_prog_type members as module constants
BPF_PROG_TYPE_UNSPEC = bpf_prog_type.BPF_PROG_TYPE_UNSPEC
BPF_PROG_TYPE_SOCKET_FILTER = bpf_prog_type.BPF_PROG_TYPE_SOCKET_FILTER
BPF_PROG_TYPE_KPROBE = bpf_prog_type.BPF_PROG_TYPE_KPROBE
BPF_PROG_TYPE_SCHED_CLS = bpf_prog_type.BPF_PROG_TYPE_SCHED_CLS
BPF_PROG_TYPE_SCHED_ACT = bpf_prog_type.BPF_PROG_TYPE_SCHED_ACT
BPF_PROG_TYPE_TRACEPOINT = bpf_prog_type.BPF_PROG_TYPE_TRACEPOINT
BPF_PROG_TYPE_XDP = bpf_prog_type.BPF_PROG_TYPE_XDP
BPF_PROG_TYPE_PERF_EVENT = bpf_prog_type.BPF_PROG_TYPE_PERF_EVENT
BPF_PROG_TYPE_CGROUP_SKB = bpf_prog_type.BPF_PROG_TYPE_CGROUP_SKB
BPF_PROG_TYPE_CGROUP_SOCK = bpf_prog_type.BPF_PROG_TYPE_CGROUP_SOCK
BPF_PROG_TYPE_LWT_IN = bpf_prog_type.BPF_PROG_TYPE_LWT_IN
BPF_PROG_TYPE_LWT_OUT = bpf_prog_type.BPF_PROG_TYPE_LWT_OUT
BPF_PROG_TYPE_LWT_XMIT = bpf_prog_type.BPF_PROG_TYPE_LWT_XMIT
BPF_PROG_TYPE_SOCK_OPS = bpf_prog_type.BPF_PROG_TYPE_SOCK_OPS
BPF_PROG_TYPE_SK_SKB = bpf_prog_type.BPF_PROG_TYPE_SK_SKB
BPF_PROG_TYPE_CGROUP_DEVICE = bpf_prog_type.BPF_PROG_TYPE_CGROUP_DEVICE
BPF_PROG_TYPE_SK_MSG = bpf_prog_type.BPF_PROG_TYPE_SK_MSG
BPF_PROG_TYPE_RAW_TRACEPOINT = bpf_prog_type.BPF_PROG_TYPE_RAW_TRACEPOINT
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = bpf_prog_type.BPF_PROG_TYPE_CGROUP_SOCK_ADDR
BPF_PROG_TYPE_LWT_SEG6LOCAL = bpf_prog_type.BPF_PROG_TYPE_LWT_SEG6LOCAL
BPF_PROG_TYPE_LIRC_MODE2 = bpf_prog_type.BPF_PROG_TYPE_LIRC_MODE2
BPF_PROG_TYPE_SK_REUSEPORT = bpf_prog_type.BPF_PROG_TYPE_SK_REUSEPORT
BPF_PROG_TYPE_FLOW_DISSECTOR = bpf_prog_type.BPF_PROG_TYPE_FLOW_DISSECTOR
BPF_PROG_TYPE_CGROUP_SYSCTL = bpf_prog_type.BPF_PROG_TYPE_CGROUP_SYSCTL
BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE = bpf_prog_type.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE
BPF_PROG_TYPE_CGROUP_SOCKOPT = bpf_prog_type.BPF_PROG_TYPE_CGROUP_SOCKOPT
BPF_PROG_TYPE_TRACING = bpf_prog_type.BPF_PROG_TYPE_TRACING
BPF_PROG_TYPE_STRUCT_OPS = bpf_prog_type.BPF_PROG_TYPE_STRUCT_OPS
BPF_PROG_TYPE_EXT = bpf_prog_type.BPF_PROG_TYPE_EXT
BPF_PROG_TYPE_LSM = bpf_prog_type.BPF_PROG_TYPE_LSM
BPF_PROG_TYPE_SK_LOOKUP = bpf_prog_type.BPF_PROG_TYPE_SK_LOOKUP
BPF_PROG_TYPE_SYSCALL = bpf_prog_type.BPF_PROG_TYPE_SYSCALL
BPF_PROG_TYPE_NETFILTER = bpf_prog_type.BPF_PROG_TYPE_NETFILTER
# bpf_attach_type members as module constants
BPF_CGROUP_INET_INGRESS = bpf_attach_type.BPF_CGROUP_INET_INGRESS
BPF_CGROUP_INET_EGRESS = bpf_attach_type.BPF_CGROUP_INET_EGRESS
BPF_CGROUP_INET_SOCK_CREATE = bpf_attach_type.BPF_CGROUP_INET_SOCK_CREATE
BPF_CGROUP_SOCK_OPS = bpf_attach_type.BPF_CGROUP_SOCK_OPS
BPF_SK_SKB_STREAM_PARSER = bpf_attach_type.BPF_SK_SKB_STREAM_PARSER
BPF_SK_SKB_STREAM_VERDICT = bpf_attach_type.BPF_SK_SKB_STREAM_VERDICT
BPF_CGROUP_DEVICE = bpf_attach_type.BPF_CGROUP_DEVICE
BPF_SK_MSG_VERDICT = bpf_attach_type.BPF_SK_MSG_VERDICT
BPF_CGROUP_INET4_BIND = bpf_attach_type.BPF_CGROUP_INET4_BIND
BPF_CGROUP_INET6_BIND = bpf_attach_type.BPF_CGROUP_INET6_BIND
BPF_CGROUP_INET4_CONNECT = bpf_attach_type.BPF_CGROUP_INET4_CONNECT
BPF_CGROUP_INET6_CONNECT = bpf_attach_type.BPF_CGROUP_INET6_CONNECT
BPF_CGROUP_INET4_POST_BIND = bpf_attach_type.BPF_CGROUP_INET4_POST_BIND
BPF_CGROUP_INET6_POST_BIND = bpf_attach_type.BPF_CGROUP_INET6_POST_BIND
BPF_CGROUP_UDP4_SENDMSG = bpf_attach_type.BPF_CGROUP_UDP4_SENDMSG
BPF_CGROUP_UDP6_SENDMSG = bpf_attach_type.BPF_CGROUP_UDP6_SENDMSG
BPF_LIRC_MODE2 = bpf_attach_type.BPF_LIRC_MODE2
BPF_FLOW_DISSECTOR = bpf_attach_type.BPF_FLOW_DISSECTOR
BPF_CGROUP_SYSCTL = bpf_attach_type.BPF_CGROUP_SYSCTL
BPF_CGROUP_UDP4_RECVMSG = bpf_attach_type.BPF_CGROUP_UDP4_RECVMSG
BPF_CGROUP_UDP6_RECVMSG = bpf_attach_type.BPF_CGROUP_UDP6_RECVMSG
BPF_CGROUP_GETSOCKOPT = bpf_attach_type.BPF_CGROUP_GETSOCKOPT
BPF_CGROUP_SETSOCKOPT = bpf_attach_type.BPF_CGROUP_SETSOCKOPT
BPF_TRACE_RAW_TP = bpf_attach_type.BPF_TRACE_RAW_TP
BPF_TRACE_FENTRY = bpf_attach_type.BPF_TRACE_FENTRY
BPF_TRACE_FEXIT = bpf_attach_type.BPF_TRACE_FEXIT
BPF_MODIFY_RETURN = bpf_attach_type.BPF_MODIFY_RETURN
BPF_LSM_MAC = bpf_attach_type.BPF_LSM_MAC
BPF_TRACE_ITER = bpf_attach_type.BPF_TRACE_ITER
BPF_CGROUP_INET4_GETPEERNAME = bpf_attach_type.BPF_CGROUP_INET4_GETPEERNAME
BPF_CGROUP_INET6_GETPEERNAME = bpf_attach_type.BPF_CGROUP_INET6_GETPEERNAME
BPF_CGROUP_INET4_GETSOCKNAME = bpf_attach_type.BPF_CGROUP_INET4_GETSOCKNAME
BPF_CGROUP_INET6_GETSOCKNAME = bpf_attach_type.BPF_CGROUP_INET6_GETSOCKNAME
BPF_XDP_DEVMAP = bpf_attach_type.BPF_XDP_DEVMAP
BPF_CGROUP_INET_SOCK_RELEASE = bpf_attach_type.BPF_CGROUP_INET_SOCK_RELEASE
BPF_XDP_CPUMAP = bpf_attach_type.BPF_XDP_CPUMAP
BPF_SK_LOOKUP = bpf_attach_type.BPF_SK_LOOKUP
BPF_XDP = bpf_attach_type.BPF_XDP
BPF_SK_SKB_VERDICT = bpf_attach_type.BPF_SK_SKB_VERDICT
BPF_SK_REUSEPORT_SELECT = bpf_attach_type.BPF_SK_REUSEPORT_SELECT
BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = bpf_attach_type.BPF_SK_REUSEPORT_SELECT_OR_MIGRATE
BPF_PERF_EVENT = bpf_attach_type.BPF_PERF_EVENT
BPF_TRACE_KPROBE_MULTI = bpf_attach_type.BPF_TRACE_KPROBE_MULTI
BPF_LSM_CGROUP = bpf_attach_type.BPF_LSM_CGROUP
BPF_STRUCT_OPS = bpf_attach_type.BPF_STRUCT_OPS
BPF_NETFILTER = bpf_attach_type.BPF_NETFILTER
BPF_TCX_INGRESS = bpf_attach_type.BPF_TCX_INGRESS
BPF_TCX_EGRESS = bpf_attach_type.BPF_TCX_EGRESS
BPF_TRACE_UPROBE_MULTI = bpf_attach_type.BPF_TRACE_UPROBE_MULTI
BPF_CGROUP_UNIX_CONNECT = bpf_attach_type.BPF_CGROUP_UNIX_CONNECT
BPF_CGROUP_UNIX_SENDMSG = bpf_attach_type.BPF_CGROUP_UNIX_SENDMSG
BPF_CGROUP_UNIX_RECVMSG = bpf_attach_type.BPF_CGROUP_UNIX_RECVMSG
BPF_CGROUP_UNIX_GETPEERNAME = bpf_attach_type.BPF_CGROUP_UNIX_GETPEERNAME
BPF_CGROUP_UNIX_GETSOCKNAME = bpf_attach_type.BPF_CGROUP_UNIX_GETSOCKNAME
BPF_NETKIT_PRIMARY = bpf_attach_type.BPF_NETKIT_PRIMARY
BPF_NETKIT_PEER = bpf_attach_type.BPF_NETKIT_PEER
BPF_TRACE_KPROBE_SESSION = bpf_attach_type.BPF_TRACE_KPROBE_SESSION
BPF_TRACE_UPROBE_SESSION = bpf_attach_type.BPF_TRACE_UPROBE_SESSION
# bpf_link_type members as module constants
BPF_LINK_TYPE_UNSPEC = bpf_link_type.BPF_LINK_TYPE_UNSPEC
BPF_LINK_TYPE_RAW_TRACEPOINT = bpf_link_type.BPF_LINK_TYPE_RAW_TRACEPOINT
BPF_LINK_TYPE_TRACING = bpf_link_type.BPF_LINK_TYPE_TRACING
BPF_LINK_TYPE_CGROUP = bpf_link_type.BPF_LINK_TYPE_CGROUP
BPF_LINK_TYPE_ITER = bpf_link_type.BPF_LINK_TYPE_ITER
BPF_LINK_TYPE_NETNS = bpf_link_type.BPF_LINK_TYPE_NETNS
BPF_LINK_TYPE_XDP = bpf_link_type.BPF_LINK_TYPE_XDP
BPF_LINK_TYPE_PERF_EVENT = bpf_link_type.BPF_LINK_TYPE_PERF_EVENT
BPF_LINK_TYPE_KPROBE_MULTI = bpf_link_type.BPF_LINK_TYPE_KPROBE_MULTI
BPF_LINK_TYPE_STRUCT_OPS = bpf_link_type.BPF_LINK_TYPE_STRUCT_OPS
BPF_LINK_TYPE_NETFILTER = bpf_link_type.BPF_LINK_TYPE_NETFILTER
BPF_LINK_TYPE_TCX = bpf_link_type.BPF_LINK_TYPE_TCX
BPF_LINK_TYPE_UPROBE_MULTI = bpf_link_type.BPF_LINK_TYPE_UPROBE_MULTI
BPF_LINK_TYPE_NETKIT = bpf_link_type.BPF_LINK_TYPE_NETKIT
BPF_LINK_TYPE_SOCKMAP = bpf_link_type.BPF_LINK_TYPE_SOCKMAP
# bpf_core_relo_kind members as module constants
BPF_CORE_FIELD_BYTE_OFFSET = bpf_core_relo_kind.BPF_CORE_FIELD_BYTE_OFFSET
BPF_CORE_FIELD_BYTE_SIZE = bpf_core_relo_kind.BPF_CORE_FIELD_BYTE_SIZE
BPF_CORE_FIELD_EXISTS = bpf_core_relo_kind.BPF_CORE_FIELD_EXISTS
BPF_CORE_FIELD_SIGNED = bpf_core_relo_kind.BPF_CORE_FIELD_SIGNED
BPF_CORE_FIELD_LSHIFT_U64 = bpf_core_relo_kind.BPF_CORE_FIELD_LSHIFT_U64
BPF_CORE_FIELD_RSHIFT_U64 = bpf_core_relo_kind.BPF_CORE_FIELD_RSHIFT_U64
BPF_CORE_TYPE_ID_LOCAL = bpf_core_relo_kind.BPF_CORE_TYPE_ID_LOCAL
BPF_CORE_TYPE_ID_TARGET = bpf_core_relo_kind.BPF_CORE_TYPE_ID_TARGET
BPF_CORE_TYPE_EXISTS = bpf_core_relo_kind.BPF_CORE_TYPE_EXISTS
BPF_CORE_TYPE_SIZE = bpf_core_relo_kind.BPF_CORE_TYPE_SIZE
BPF_CORE_ENUMVAL_EXISTS = bpf_core_relo_kind.BPF_CORE_ENUMVAL_EXISTS
BPF_CORE_ENUMVAL_VALUE = bpf_core_relo_kind.BPF_CORE_ENUMVAL_VALUE
BPF_CORE_TYPE_MATCHES = bpf_core_relo_kind.BPF_CORE_TYPE_MATCHES

_FUNC_NAMES: Dict[int, str] = {}


def func_name(func_id: int) -> str:
    """'ringbuf_output' for BPF_FUNC_ringbuf_output's number; '' if unknown."""
    if not _FUNC_NAMES:
        _FUNC_NAMES.update((v, k[len("BPF_FUNC_"):]) for k, v in globals().items()
                           if k.startswith("BPF_FUNC_") and isinstance(v, int))
    return _FUNC_NAMES.get(func_id, "")


# ---------------------------------------------------------------- linux/bpf.h flags

BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4

# map_flags of BPF_MAP_CREATE
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_CLONE = 1 << 9
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12
BPF_F_LINK = 1 << 13
BPF_F_PATH_FD = 1 << 14
BPF_F_VTYPE_BTF_OBJ_FD = 1 << 15

# prog_flags of BPF_PROG_LOAD
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6  # 6.3

# attach flags (BPF_PROG_ATTACH / cgroup)
BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2
# mprog attach flags (tcx, netkit; 6.6): position relative to another program or link
BPF_F_BEFORE = 1 << 3
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5

# BPF_LINK_CREATE with BPF_TRACE_UPROBE_MULTI / KPROBE_MULTI
BPF_F_KPROBE_MULTI_RETURN = 1 << 0
BPF_F_UPROBE_MULTI_RETURN = 1 << 0

# bpf_perf_event_output() flags
BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK

# BPF_PROG_TEST_RUN flags
BPF_F_TEST_RUN_ON_CPU = 1 << 0
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1

# XDP attach flags (linux/if_link.h)
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4

# Ring buffer: bpf_ringbuf_{output,submit,discard}() flags, bpf_ringbuf_query() keys,
# and the 8-byte record header's length-word bits.
BPF_RB_NO_WAKEUP = 1 << 0
BPF_RB_FORCE_WAKEUP = 1 << 1
BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS, BPF_RB_PROD_POS = 0, 1, 2, 3
BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8

# log_level of BPF_PROG_LOAD / BPF_BTF_LOAD
BPF_LOG_LEVEL1, BPF_LOG_LEVEL2, BPF_LOG_STATS = 1, 2, 4
BPF_LOG_MIN_SIZE = 128               # kernel refuses smaller log buffers
BPF_LOG_MAX_SIZE = (1 << 30) - 1     # UINT_MAX >> 2

# ---------------------------------------------------------------- instruction set

# instruction classes
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = range(8)
# size field (ld/st)
BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18
# mode field (ld/st)
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_MEMSX, BPF_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
# alu/jmp operation field
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70)
BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH, BPF_END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70)
BPF_CALL, BPF_EXIT, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
BPF_K, BPF_X = 0x00, 0x08
# atomic operations (imm of BPF_STX|BPF_ATOMIC): BPF_FETCH modifier, compare-exchange
BPF_FETCH, BPF_CMPXCHG = 0x01, 0xF1
# src_reg of BPF_LD|BPF_IMM|BPF_DW (ld_imm64) and of BPF_CALL
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2

# ---------------------------------------------------------------- linux/btf.h

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1


class btf_kind(CEnum):
    BTF_KIND_UNKN = 0
    BTF_KIND_INT = 1
    BTF_KIND_PTR = 2
    BTF_KIND_ARRAY = 3
    BTF_KIND_STRUCT = 4
    BTF_KIND_UNION = 5
    BTF_KIND_ENUM = 6
    BTF_KIND_FWD = 7
    BTF_KIND_TYPEDEF = 8
    BTF_KIND_VOLATILE = 9
    BTF_KIND_CONST = 10
    BTF_KIND_RESTRICT = 11
    BTF_KIND_FUNC = 12
    BTF_KIND_FUNC_PROTO = 13
    BTF_KIND_VAR = 14
    BTF_KIND_DATASEC = 15
    BTF_KIND_FLOAT = 16
    BTF_KIND_DECL_TAG = 17
    BTF_KIND_TYPE_TAG = 18
    BTF_KIND_ENUM64 = 19


class btf_func_linkage(CEnum):
    BTF_FUNC_STATIC = 0
    BTF_FUNC_GLOBAL = 1
    BTF_FUNC_EXTERN = 2


class btf_var_linkage(CEnum):
    BTF_VAR_STATIC = 0
    BTF_VAR_GLOBAL_ALLOCATED = 1
    BTF_VAR_GLOBAL_EXTERN = 2


# btf_kind members as module constants
BTF_KIND_UNKN = btf_kind.BTF_KIND_UNKN
BTF_KIND_INT = btf_kind.BTF_KIND_INT
BTF_KIND_PTR = btf_kind.BTF_KIND_PTR
BTF_KIND_ARRAY = btf_kind.BTF_KIND_ARRAY
BTF_KIND_STRUCT = btf_kind.BTF_KIND_STRUCT
BTF_KIND_UNION = btf_kind.BTF_KIND_UNION
BTF_KIND_ENUM = btf_kind.BTF_KIND_ENUM
BTF_KIND_FWD = btf_kind.BTF_KIND_FWD
BTF_KIND_TYPEDEF = btf_kind.BTF_KIND_TYPEDEF
BTF_KIND_VOLATILE = btf_kind.BTF_KIND_VOLATILE
BTF_KIND_CONST = btf_kind.BTF_KIND_CONST
BTF_KIND_RESTRICT = btf_kind.BTF_KIND_RESTRICT
BTF_KIND_FUNC = btf_kind.BTF_KIND_FUNC
BTF_KIND_FUNC_PROTO = btf_kind.BTF_KIND_FUNC_PROTO
BTF_KIND_VAR = btf_kind.BTF_KIND_VAR
BTF_KIND_DATASEC = btf_kind.BTF_KIND_DATASEC
BTF_KIND_FLOAT = btf_kind.BTF_KIND_FLOAT
BTF_KIND_DECL_TAG = btf_kind.BTF_KIND_DECL_TAG
BTF_KIND_TYPE_TAG = btf_kind.BTF_KIND_TYPE_TAG
BTF_KIND_ENUM64 = btf_kind.BTF_KIND_ENUM64
# btf_func_linkage members as module constants
BTF_FUNC_STATIC = btf_func_linkage.BTF_FUNC_STATIC
BTF_FUNC_GLOBAL = btf_func_linkage.BTF_FUNC_GLOBAL
BTF_FUNC_EXTERN = btf_func_linkage.BTF_FUNC_EXTERN
# btf_var_linkage members as module constants
BTF_VAR_STATIC = btf_var_linkage.BTF_VAR_STATIC
BTF_VAR_GLOBAL_ALLOCATED = btf_var_linkage.BTF_VAR_GLOBAL_ALLOCATED
BTF_VAR_GLOBAL_EXTERN = btf_var_linkage.BTF_VAR_GLOBAL_EXTERN

# btf_type.info bits; BTF_KIND_INT encoding bits
BTF_INFO_VLEN_MASK = 0xFFFF
BTF_INFO_KIND_SHIFT = 24
BTF_INFO_KIND_MASK = 0x1F
BTF_INFO_KFLAG_SHIFT = 31
BTF_INT_SIGNED, BTF_INT_CHAR, BTF_INT_BOOL = 1 << 0, 1 << 1, 1 << 2
BTF_MAX_VLEN = 0xFFFF

# Fixed header sizes of .BTF and .BTF.ext (the latter grows: core_relo fields
# came later, so len(hdr) decides what is present).
BTF_HEADER_SIZE = 24
BTF_EXT_HEADER_MIN_SIZE = 24     # through line_info
BTF_EXT_HEADER_CORE_SIZE = 32    # with core_relo_off/len

# ---------------------------------------------------------------- linux/perf_event.h

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_TRACEPOINT = 0, 1, 2
PERF_TYPE_HW_CACHE, PERF_TYPE_RAW, PERF_TYPE_BREAKPOINT = 3, 4, 5
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_NO_GROUP = 1 << 0
PERF_FLAG_FD_OUTPUT = 1 << 1
PERF_FLAG_PID_CGROUP = 1 << 2
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_SIZE_VER8 = 136

# perf_event_attr flag bits (the bitfield after read_format)
PERF_ATTR_FLAG_DISABLED = 1 << 0
PERF_ATTR_FLAG_INHERIT = 1 << 1
PERF_ATTR_FLAG_EXCLUDE_USER = 1 << 4
PERF_ATTR_FLAG_EXCLUDE_KERNEL = 1 << 5
PERF_ATTR_FLAG_FREQ = 1 << 10
PERF_ATTR_FLAG_WATERMARK = 1 << 14
PERF_ATTR_FLAG_WRITE_BACKWARD = 1 << 27

# perf_event_header.type
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_RECORD_LOST_SAMPLES = 13

# ioctls: _IO('$', n) and _IOW('$', n, u32)
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408
PERF_EVENT_IOC_PAUSE_OUTPUT = 0x40042409

# struct perf_event_mmap_page: offsets of the fields a ring reader needs
PERF_MMAP_PAGE_DATA_HEAD = 1024
PERF_MMAP_PAGE_DATA_TAIL = 1032
PERF_MMAP_PAGE_DATA_OFFSET = 1040
PERF_MMAP_PAGE_DATA_SIZE = 1048
PERF_EVENT_HEADER_SIZE = 8  # struct perf_event_header { u32 type; u16 misc; u16 size; }

# ---------------------------------------------------------------- linux/eventpoll.h, membarrier.h

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
MEMBARRIER_CMD_PRIVATE_EXPEDITED = 1 << 3
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4

# ---------------------------------------------------------------- struct layouts


class _Attr(ctypes.Structure):
    """Base of the bpf_attr union members; each command passes its own member."""



class bpf_attr_map_create(_Attr):
    _fields_ = [
        ("map_type", c_u32), ("key_size", c_u32), ("value_size", c_u32),
        ("max_entries", c_u32), ("map_flags", c_u32), ("inner_map_fd", c_u32),
        ("numa_node", c_u32), ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("map_ifindex", c_u32), ("btf_fd", c_u32), ("btf_key_type_id", c_u32),
        ("btf_value_type_id", c_u32), ("btf_vmlinux_value_type_id", c_u32),
        ("map_extra", c_u64),
        ("value_type_btf_obj_fd", c_s32),  # 6.9
        ("map_token_fd", c_s32),           # 6.9
    ]


class bpf_attr_map_elem(_Attr):
    """BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM, GET_NEXT_KEY (value doubles as next_key)."""

    _fields_ = [("map_fd", c_u32), ("key", c_u64), ("value", c_u64), ("flags", c_u64)]


class bpf_attr_prog_load(_Attr):
    _fields_ = [
        ("prog_type", c_u32), ("insn_cnt", c_u32), ("insns", c_u64), ("license", c_u64),
        ("log_level", c_u32), ("log_size", c_u32), ("log_buf", c_u64),
        ("kern_version", c_u32), ("prog_flags", c_u32),
        ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("prog_ifindex", c_u32),
        ("expected_attach_type", c_u32), ("prog_btf_fd", c_u32),
        ("func_info_rec_size", c_u32), ("func_info", c_u64), ("func_info_cnt", c_u32),
        ("line_info_rec_size", c_u32), ("line_info", c_u64), ("line_info_cnt", c_u32),
        ("attach_btf_id", c_u32),
        ("attach_prog_fd", c_u32),  # union with attach_btf_obj_fd
        ("core_relo_cnt", c_u32), ("fd_array", c_u64), ("core_relos", c_u64),
        ("core_relo_rec_size", c_u32),
        ("log_true_size", c_u32),   # 6.4
    ]


class bpf_attr_obj_pin(_Attr):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [("pathname", c_u64), ("bpf_fd", c_u32), ("file_flags", c_u32),
                ("path_fd", c_s32)]


class bpf_attr_prog_attach(_Attr):
    """BPF_PROG_ATTACH / BPF_PROG_DETACH (legacy, non-link attachment)."""

    _fields_ = [("target_fd", c_u32), ("attach_bpf_fd", c_u32), ("attach_type", c_u32),
                ("attach_flags", c_u32), ("replace_bpf_fd", c_u32)]


class bpf_attr_test_run(_Attr):
    _fields_ = [
        ("prog_fd", c_u32), ("retval", c_u32), ("data_size_in", c_u32),
        ("data_size_out", c_u32), ("data_in", c_u64), ("data_out", c_u64),
        ("repeat", c_u32), ("duration", c_u32), ("ctx_size_in", c_u32),
        ("ctx_size_out", c_u32), ("ctx_in", c_u64), ("ctx_out", c_u64),
        ("flags", c_u32), ("cpu", c_u32), ("batch_size", c_u32),
    ]


class bpf_attr_get_id(_Attr):
    """BPF_*_GET_NEXT_ID (start_id/next_id) and BPF_*_GET_FD_BY_ID (id)."""

    _fields_ = [("start_id", c_u32), ("next_id", c_u32), ("open_flags", c_u32)]


class bpf_attr_info_by_fd(_Attr):
    _fields_ = [("bpf_fd", c_u32), ("info_len", c_u32), ("info", c_u64)]


class bpf_attr_raw_tracepoint_open(_Attr):
    _fields_ = [("name", c_u64), ("prog_fd", c_u32), ("_pad", c_u32), ("cookie", c_u64)]


class bpf_attr_btf_load(_Attr):
    _fields_ = [
        ("btf", c_u64), ("btf_log_buf", c_u64), ("btf_size", c_u32),
        ("btf_log_size", c_u32), ("btf_log_level", c_u32),
        ("btf_log_true_size", c_u32),  # 6.4
    ]


class bpf_attr_fd(_Attr):
    """Commands whose attr is one fd: BPF_MAP_FREEZE, BPF_LINK_DETACH."""

    _fields_ = [("fd", c_u32)]


class _link_create_tracing(ctypes.Structure):
    _fields_ = [("target_btf_id", c_u32), ("cookie", c_u64)]


class _link_create_iter(ctypes.Structure):
    _fields_ = [("iter_info", c_u64), ("iter_info_len", c_u32)]


class _link_create_perf_event(ctypes.Structure):
    _fields_ = [("bpf_cookie", c_u64)]


class _link_create_kprobe_multi(ctypes.Structure):
    _fields_ = [("flags", c_u32), ("cnt", c_u32), ("syms", c_u64), ("addrs", c_u64),
                ("cookies", c_u64)]


class _link_create_tcx(ctypes.Structure):
    """Also the layout of the netkit member."""

    _fields_ = [("relative_fd", c_u32), ("expected_revision", c_u64)]


class _link_create_uprobe_multi(ctypes.Structure):
    _fields_ = [("path", c_u64), ("offsets", c_u64), ("ref_ctr_offsets", c_u64),
                ("cookies", c_u64), ("cnt", c_u32), ("flags", c_u32), ("pid", c_u32)]


class _link_create_netfilter(ctypes.Structure):
    _fields_ = [("pf", c_u32), ("hooknum", c_u32), ("priority", c_s32), ("flags", c_u32)]


class _link_create_extra(ctypes.Union):
    _fields_ = [("target_btf_id", c_u32), ("iter", _link_create_iter),
                ("perf_event", _link_create_perf_event),
                ("kprobe_multi", _link_create_kprobe_multi),
                ("tracing", _link_create_tracing), ("netfilter", _link_create_netfilter),
                ("tcx", _link_create_tcx), ("uprobe_multi", _link_create_uprobe_multi)]


class bpf_attr_link_create(_Attr):
    _fields_ = [("prog_fd", c_u32), ("target_fd", c_u32),  # target_fd: also target_ifindex
                ("attach_type", c_u32), ("flags", c_u32), ("u", _link_create_extra)]


# enum bpf_cgroup_iter_order (6.1)
BPF_CGROUP_ITER_ORDER_UNSPEC, BPF_CGROUP_ITER_SELF_ONLY = 0, 1
BPF_CGROUP_ITER_DESCENDANTS_PRE, BPF_CGROUP_ITER_DESCENDANTS_POST = 2, 3
BPF_CGROUP_ITER_ANCESTORS_UP = 4


class _iter_link_info_map(ctypes.Structure):
    _fields_ = [("map_fd", c_u32)]


class _iter_link_info_cgroup(ctypes.Structure):
    _fields_ = [("order", c_u32), ("cgroup_fd", c_u32), ("cgroup_id", c_u64)]


class _iter_link_info_task(ctypes.Structure):
    _fields_ = [("tid", c_u32), ("pid", c_u32), ("pid_fd", c_u32)]


class bpf_iter_link_info(ctypes.Union):
    """Pointed to by link_create.iter.iter_info: which map/cgroup/task to iterate."""

    _fields_ = [("map", _iter_link_info_map), ("cgroup", _iter_link_info_cgroup),
                ("task", _iter_link_info_task)]


class bpf_attr_iter_create(_Attr):
    _fields_ = [("link_fd", c_u32), ("flags", c_u32)]


class bpf_prog_info(ctypes.Structure):
    _fields_ = [
        ("type", c_u32), ("id", c_u32), ("tag", c_u8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_u32), ("xlated_prog_len", c_u32),
        ("jited_prog_insns", c_u64), ("xlated_prog_insns", c_u64),
        ("load_time", c_u64), ("created_by_uid", c_u32), ("nr_map_ids", c_u32),
        ("map_ids", c_u64), ("name", ctypes.c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_u32), ("gpl_compatible", c_u32), ("netns_dev", c_u64),
        ("netns_ino", c_u64), ("nr_jited_ksyms", c_u32), ("nr_jited_func_lens", c_u32),
        ("jited_ksyms", c_u64), ("jited_func_lens", c_u64), ("btf_id", c_u32),
        ("func_info_rec_size", c_u32), ("func_info", c_u64), ("nr_func_info", c_u32),
        ("nr_line_info", c_u32), ("line_info", c_u64), ("jited_line_info", c_u64),
        ("nr_jited_line_info", c_u32), ("line_info_rec_size", c_u32),
        ("jited_line_info_rec_size", c_u32), ("nr_prog_tags", c_u32),
        ("prog_tags", c_u64), ("run_time_ns", c_u64), ("run_cnt", c_u64),
        ("recursion_misses", c_u64), ("verified_insns", c_u32),
        ("attach_btf_obj_id", c_u32), ("attach_btf_id", c_u32),
    ]


class bpf_map_info(ctypes.Structure):
    _fields_ = [
        ("type", c_u32), ("id", c_u32), ("key_size", c_u32), ("value_size", c_u32),
        ("max_entries", c_u32), ("map_flags", c_u32),
        ("name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("ifindex", c_u32),
        ("btf_vmlinux_value_type_id", c_u32), ("netns_dev", c_u64), ("netns_ino", c_u64),
        ("btf_id", c_u32), ("btf_key_type_id", c_u32), ("btf_value_type_id", c_u32),
        ("btf_vmlinux_id", c_u32), ("map_extra", c_u64),
    ]


class bpf_btf_info(ctypes.Structure):
    _fields_ = [("btf", c_u64), ("btf_size", c_u32), ("id", c_u32), ("name", c_u64),
                ("name_len", c_u32), ("kernel_btf", c_u32)]


class bpf_link_info(ctypes.Structure):
    """Only the common head; the per-type union is read as raw bytes."""

    _fields_ = [("type", c_u32), ("id", c_u32), ("prog_id", c_u32), ("_pad", c_u32),
                ("extra", c_u8 * 64)]


class bpf_func_info(ctypes.Structure):
    _fields_ = [("insn_off", c_u32), ("type_id", c_u32)]


class bpf_line_info(ctypes.Structure):
    _fields_ = [("insn_off", c_u32), ("file_name_off", c_u32), ("line_off", c_u32),
                ("line_col", c_u32)]


class bpf_core_relo(ctypes.Structure):
    _fields_ = [("insn_off", c_u32), ("type_id", c_u32), ("access_str_off", c_u32),
                ("kind", c_u32)]


class epoll_event(ctypes.Structure):
    """x86-64 packs it (12 bytes, __EPOLL_PACKED); other architectures align it (16)."""

    _fields_ = [("events", c_u32), ("data", c_u64)]
    if os.uname().machine == "x86_64":
        _pack_ = 1


class perf_event_attr(ctypes.Structure):
    _fields_ = [
        ("type", c_u32), ("size", c_u32), ("config", c_u64),
        ("sample_period", c_u64),      # union with sample_freq
        ("sample_type", c_u64), ("read_format", c_u64), ("flags", c_u64),
        ("wakeup_events", c_u32),      # union with wakeup_watermark
        ("bp_type", c_u32),
        ("config1", c_u64),            # bp_addr / kprobe_func / uprobe_path
        ("config2", c_u64),            # bp_len / kprobe_addr / probe_offset
        ("branch_sample_type", c_u64), ("sample_regs_user", c_u64),
        ("sample_stack_user", c_u32), ("clockid", c_s32), ("sample_regs_intr", c_u64),
        ("aux_watermark", c_u32), ("sample_max_stack", c_u16), ("_reserved_2", c_u16),
        ("aux_sample_size", c_u32), ("_reserved_3", c_u32), ("sig_data", c_u64),
        ("config3", c_u64),
    ]


assert ctypes.sizeof(perf_event_attr) == PERF_ATTR_SIZE_VER8
assert bpf_attr_link_create.u.offset == 16

# ---------------------------------------------------------------- more bpf_attr layouts

class bpf_attr_link_update(_Attr):
    """BPF_LINK_UPDATE; struct_ops links: new_prog_fd is new_map_fd, old_prog_fd old_map_fd."""

    _fields_ = [("link_fd", c_u32), ("new_prog_fd", c_u32), ("flags", c_u32),
                ("old_prog_fd", c_u32)]


class bpf_attr_prog_bind_map(_Attr):
    """BPF_PROG_BIND_MAP (5.10): keep a map alive with a program that does not use it."""

    _fields_ = [("prog_fd", c_u32), ("map_fd", c_u32), ("flags", c_u32)]

# ---------------------------------------------------------------- bpf_link_info per link type

# enum bpf_perf_event_type (bpf_link_info.perf_event.type)
BPF_PERF_EVENT_UNSPEC = 0
BPF_PERF_EVENT_UPROBE = 1
BPF_PERF_EVENT_URETPROBE = 2
BPF_PERF_EVENT_KPROBE = 3
BPF_PERF_EVENT_KRETPROBE = 4
BPF_PERF_EVENT_TRACEPOINT = 5
BPF_PERF_EVENT_EVENT = 6
__BPF_FUNC_MAX_ID = 212


class _link_info_raw_tracepoint(ctypes.Structure):
    _fields_ = [("tp_name", c_u64), ("tp_name_len", c_u32), ("cookie", c_u64)]


class _link_info_tracing(ctypes.Structure):
    _fields_ = [("attach_type", c_u32), ("target_obj_id", c_u32), ("target_btf_id", c_u32),
                ("cookie", c_u64)]


class _link_info_cgroup(ctypes.Structure):
    _fields_ = [("cgroup_id", c_u64), ("attach_type", c_u32)]


class _link_info_iter_cgroup(ctypes.Structure):
    _fields_ = [("cgroup_id", c_u64), ("order", c_u32)]


class _link_info_iter_task(ctypes.Structure):
    _fields_ = [("tid", c_u32), ("pid", c_u32)]


class _link_info_iter_target(ctypes.Union):
    _fields_ = [("cgroup", _link_info_iter_cgroup), ("task", _link_info_iter_task)]


class _link_info_iter(ctypes.Structure):
    _fields_ = [("target_name", c_u64), ("target_name_len", c_u32), ("map_id", c_u32),
                ("target", _link_info_iter_target)]


class _link_info_netns(ctypes.Structure):
    _fields_ = [("netns_ino", c_u32), ("attach_type", c_u32)]


class _link_info_xdp(ctypes.Structure):
    _fields_ = [("ifindex", c_u32)]


class _link_info_struct_ops(ctypes.Structure):
    _fields_ = [("map_id", c_u32)]


class _link_info_netfilter(ctypes.Structure):
    _fields_ = [("pf", c_u32), ("hooknum", c_u32), ("priority", c_s32), ("flags", c_u32)]


class _link_info_kprobe_multi(ctypes.Structure):
    _fields_ = [("addrs", c_u64), ("count", c_u32), ("flags", c_u32), ("missed", c_u64),
                ("cookies", c_u64)]


class _link_info_uprobe_multi(ctypes.Structure):
    _fields_ = [("path", c_u64), ("offsets", c_u64), ("ref_ctr_offsets", c_u64),
                ("cookies", c_u64), ("path_size", c_u32), ("count", c_u32), ("flags", c_u32),
                ("pid", c_u32)]


class _link_info_perf_uprobe(ctypes.Structure):
    _fields_ = [("file_name", c_u64), ("name_len", c_u32), ("offset", c_u32),
                ("cookie", c_u64), ("ref_ctr_offset", c_u64)]


class _link_info_perf_kprobe(ctypes.Structure):
    _fields_ = [("func_name", c_u64), ("name_len", c_u32), ("offset", c_u32),
                ("addr", c_u64), ("missed", c_u64), ("cookie", c_u64)]


class _link_info_perf_tracepoint(ctypes.Structure):
    _fields_ = [("tp_name", c_u64), ("name_len", c_u32), ("cookie", c_u64)]


class _link_info_perf_event_event(ctypes.Structure):
    _fields_ = [("config", c_u64), ("type", c_u32), ("cookie", c_u64)]


class _link_info_perf_kind(ctypes.Union):
    _fields_ = [("uprobe", _link_info_perf_uprobe), ("kprobe", _link_info_perf_kprobe),
                ("tracepoint", _link_info_perf_tracepoint),
                ("event", _link_info_perf_event_event)]


class _link_info_perf_event(ctypes.Structure):
    _fields_ = [("type", c_u32), ("u", _link_info_perf_kind)]


class _link_info_ifindex_attach(ctypes.Structure):
    """tcx and netkit."""

    _fields_ = [("ifindex", c_u32), ("attach_type", c_u32)]


class _link_info_sockmap(ctypes.Structure):
    _fields_ = [("map_id", c_u32), ("attach_type", c_u32)]


class bpf_link_info_union(ctypes.Union):
    """The per-type union of struct bpf_link_info (6.18), at offset 16: view it over
    ``bpf_link_info.extra`` with ``from_buffer``."""

    _fields_ = [("raw_tracepoint", _link_info_raw_tracepoint),
                ("tracing", _link_info_tracing), ("cgroup", _link_info_cgroup),
                ("iter", _link_info_iter), ("netns", _link_info_netns),
                ("xdp", _link_info_xdp), ("struct_ops", _link_info_struct_ops),
                ("netfilter", _link_info_netfilter), ("kprobe_multi", _link_info_kprobe_multi),
                ("uprobe_multi", _link_info_uprobe_multi),
                ("perf_event", _link_info_perf_event), ("tcx", _link_info_ifindex_attach),
                ("netkit", _link_info_ifindex_attach), ("sockmap", _link_info_sockmap)]


assert ctypes.sizeof(bpf_link_info_union) == 48
