// SPDX-License-Identifier: GPL-2.0
/* tcpstates: every TCP state change with the time spent in the old state,
 * from sock:inet_sock_set_state. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

struct event {
	__u64 ts;
	__u64 skaddr;
	__u64 delta_ns;		/* time in oldstate, 0 when first seen */
	struct tcp_endpoints ep;
	__s32 oldstate;
	__s32 newstate;
	__u32 pid;
	char comm[TASK_COMM_LEN];
};
const struct event *unused_event __attribute__((unused));

EVENTS_RINGBUF(1 << 20);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, __u64);
} last SEC(".maps");

SEC("tp/sock/inet_sock_set_state")
int set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr, now = bpf_ktime_get_ns(), *prev;
	struct event *e;

	e = EVENT_RESERVE(sizeof(*e));
	if (!e)
		return 0;
	if (!tcp_endpoints(ctx, &e->ep) || !current_wanted()) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	prev = bpf_map_lookup_elem(&last, &sk);
	e->delta_ns = prev ? now - *prev : 0;
	e->ts = now;
	e->skaddr = sk;
	e->oldstate = ctx->oldstate;
	e->newstate = ctx->newstate;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	if (ctx->newstate == TCP_CLOSE)
		bpf_map_delete_elem(&last, &sk);
	else
		bpf_map_update_elem(&last, &sk, &now, BPF_ANY);
	return 0;
}
