// SPDX-License-Identifier: GPL-2.0
/* CO-RE type and enum relocations: existence, sizes, ids, enumerator values.
 *
 * On a syscall entry of target_tgid, store what the relocations resolved to
 * in globals; the test compares them with the kernel BTF.  The enum64
 * values come from kernel BTF_KIND_ENUM64 types (clang 14 describes them
 * locally as 8-byte BTF_KIND_ENUM with truncated values).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* Local flavors: enumerators match the kernel's by name without the ___ suffix. */
enum bpf_map_type___local {
	BPF_MAP_TYPE_RINGBUF___local = 1000,
	BPF_MAP_TYPE_NO_SUCH___local = 1001,
};

/* A type no kernel has. */
struct pybpf_no_such_type {
	int x;
};

/* A flavor of a kernel struct: type relocations see the kernel's size and id. */
struct task_struct___local {
	int pid;
} __attribute__((preserve_access_index));

/* Field info needs no memory access: relocate against struct sk_buff, whose
 * dev and pkt_type sit inside anonymous unions/structs in the kernel. */
struct sk_buff___local {
	unsigned int len;
	struct net_device *dev;
	__u8 pkt_type: 3;
	char cb[48];
} __attribute__((preserve_access_index));

const volatile int target_tgid = 0;

int hits;
__u64 ev_ringbuf, ev_ringbuf_flavor, ev_blake2b_iv0, ev_perf_context_max, ev_perf_context_hv;
int ev_exists_ringbuf, ev_exists_flavor, ev_exists_missing;
int te_task, te_task_flavor, te_missing, te_pid_t, te_enum;
__u32 ts_task, ts_task_flavor, ts_missing, ts_pid_t, ts_enum, ts_list_head;
__u32 off_skb_len, off_skb_dev, off_skb_cb5, off_skb_pkt_type, size_skb_pkt_type;
__u64 lshift_skb_pkt_type, rshift_skb_pkt_type;
__u32 tid_task_kernel, tid_task_flavor_kernel, tid_missing_kernel, tid_task_local;

SEC("raw_tp/sys_enter")
int core_types(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	hits++;
	ev_ringbuf = bpf_core_enum_value(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF);
	ev_ringbuf_flavor = bpf_core_enum_value(enum bpf_map_type___local, BPF_MAP_TYPE_RINGBUF___local);
	ev_blake2b_iv0 = bpf_core_enum_value(enum blake2b_iv, BLAKE2B_IV0);
	ev_perf_context_max = bpf_core_enum_value(enum perf_callchain_context, PERF_CONTEXT_MAX);
	ev_perf_context_hv = bpf_core_enum_value(enum perf_callchain_context, PERF_CONTEXT_HV);
	ev_exists_ringbuf = bpf_core_enum_value_exists(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF);
	ev_exists_flavor = bpf_core_enum_value_exists(enum bpf_map_type___local, BPF_MAP_TYPE_RINGBUF___local);
	ev_exists_missing = bpf_core_enum_value_exists(enum bpf_map_type___local, BPF_MAP_TYPE_NO_SUCH___local);

	te_task = bpf_core_type_exists(struct task_struct);
	te_task_flavor = bpf_core_type_exists(struct task_struct___local);
	te_missing = bpf_core_type_exists(struct pybpf_no_such_type);
	te_pid_t = bpf_core_type_exists(pid_t);
	te_enum = bpf_core_type_exists(enum bpf_map_type);
	ts_task = bpf_core_type_size(struct task_struct);
	ts_task_flavor = bpf_core_type_size(struct task_struct___local);
	ts_missing = bpf_core_type_size(struct pybpf_no_such_type);
	ts_pid_t = bpf_core_type_size(pid_t);
	ts_enum = bpf_core_type_size(enum bpf_map_type);
	ts_list_head = bpf_core_type_size(struct list_head);
	tid_task_kernel = bpf_core_type_id_kernel(struct task_struct);
	tid_task_flavor_kernel = bpf_core_type_id_kernel(struct task_struct___local);
	tid_missing_kernel = bpf_core_type_id_kernel(struct pybpf_no_such_type);
	tid_task_local = bpf_core_type_id_local(struct task_struct___local);

	off_skb_len = bpf_core_field_offset(struct sk_buff___local, len);
	off_skb_dev = bpf_core_field_offset(struct sk_buff___local, dev);
	off_skb_cb5 = bpf_core_field_offset(struct sk_buff___local, cb[5]);
	off_skb_pkt_type = bpf_core_field_offset(struct sk_buff___local, pkt_type);
	size_skb_pkt_type = bpf_core_field_size(struct sk_buff___local, pkt_type);
	lshift_skb_pkt_type = __builtin_preserve_field_info(((struct sk_buff___local *)0)->pkt_type, BPF_FIELD_LSHIFT_U64);
	rshift_skb_pkt_type = __builtin_preserve_field_info(((struct sk_buff___local *)0)->pkt_type, BPF_FIELD_RSHIFT_U64);
	return 0;
}
