// SPDX-License-Identifier: GPL-2.0
/* struct_ops test object: a Reno-like TCP congestion control built on the
 * kernel's own reno kfuncs, registered twice: as a legacy struct_ops map
 * (.struct_ops: map update registers it) and as a link-based one
 * (.struct_ops.link: BPF_LINK_CREATE registers it).  Both share the same
 * callbacks; each callback counts its calls in the `calls` array. The map in
 * ?.struct_ops is not created unless asked for, and its only callback is not
 * loaded then. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

enum { C_SSTHRESH, C_CONG_AVOID, C_UNDO_CWND, C_INIT, C_SET_STATE, C_CWND_EVENT,
       C_RELEASE, C_OFF_INIT, C_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

extern __u32 tcp_reno_ssthresh(struct sock *sk) __ksym;
extern void tcp_reno_cong_avoid(struct sock *sk, __u32 ack, __u32 acked) __ksym;
extern __u32 tcp_reno_undo_cwnd(struct sock *sk) __ksym;

static void count(__u32 which)
{
	__u64 *slot = bpf_map_lookup_elem(&calls, &which);

	if (slot)
		__sync_fetch_and_add(slot, 1);
}

SEC("struct_ops/pybpf_ssthresh")
__u32 BPF_PROG(pybpf_ssthresh, struct sock *sk)
{
	count(C_SSTHRESH);
	return tcp_reno_ssthresh(sk);
}

SEC("struct_ops/pybpf_cong_avoid")
void BPF_PROG(pybpf_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	count(C_CONG_AVOID);
	tcp_reno_cong_avoid(sk, ack, acked);
}

SEC("struct_ops/pybpf_undo_cwnd")
__u32 BPF_PROG(pybpf_undo_cwnd, struct sock *sk)
{
	count(C_UNDO_CWND);
	return tcp_reno_undo_cwnd(sk);
}

SEC("struct_ops/pybpf_init")
void BPF_PROG(pybpf_init, struct sock *sk)
{
	count(C_INIT);
}

SEC("struct_ops/pybpf_set_state")
void BPF_PROG(pybpf_set_state, struct sock *sk, __u8 new_state)
{
	count(C_SET_STATE);
}

SEC("struct_ops/pybpf_cwnd_event")
void BPF_PROG(pybpf_cwnd_event, struct sock *sk, enum tcp_ca_event ev)
{
	count(C_CWND_EVENT);
}

SEC("struct_ops/pybpf_release")
void BPF_PROG(pybpf_release, struct sock *sk)
{
	count(C_RELEASE);
}

SEC("struct_ops/off_init")
void BPF_PROG(off_init, struct sock *sk)
{
	count(C_OFF_INIT);
}

SEC(".struct_ops")
struct tcp_congestion_ops cc_legacy = {
	.init		= (void *)pybpf_init,
	.ssthresh	= (void *)pybpf_ssthresh,
	.cong_avoid	= (void *)pybpf_cong_avoid,
	.undo_cwnd	= (void *)pybpf_undo_cwnd,
	.set_state	= (void *)pybpf_set_state,
	.cwnd_event	= (void *)pybpf_cwnd_event,
	.release	= (void *)pybpf_release,
	.name		= "pybpf_legacy",
};

SEC(".struct_ops.link")
struct tcp_congestion_ops cc_link = {
	.init		= (void *)pybpf_init,
	.ssthresh	= (void *)pybpf_ssthresh,
	.cong_avoid	= (void *)pybpf_cong_avoid,
	.undo_cwnd	= (void *)pybpf_undo_cwnd,
	.name		= "pybpf_link",
	.flags		= 0x1,	/* TCP_CONG_NON_RESTRICTED */
};

SEC("?.struct_ops")
struct tcp_congestion_ops cc_off = {
	.init		= (void *)off_init,
	.ssthresh	= (void *)pybpf_ssthresh,
	.cong_avoid	= (void *)pybpf_cong_avoid,
	.undo_cwnd	= (void *)pybpf_undo_cwnd,
	.name		= "pybpf_off",
};
