// SPDX-License-Identifier: GPL-2.0
/* tcplife: one event per TCP session when it closes: endpoints, duration,
 * bytes received and sent (tcp_sock, CO-RE), and the process that
 * connected or closed it (recorded in syscall context: SYN_SENT, FIN_WAIT1,
 * LAST_ACK), from sock:inet_sock_set_state. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

#define RCV_SHUTDOWN_ 1

struct ident {
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct event {
	__u64 ts;
	__u64 span_ns;
	__u64 rx_bytes;
	__u64 tx_bytes;
	struct tcp_endpoints ep;
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
} birth SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct ident);
} idents SEC(".maps");

SEC("tp/sock/inet_sock_set_state")
int set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr, now = bpf_ktime_get_ns(), *start;
	struct tcp_sock *tp = (struct tcp_sock *)ctx->skaddr;
	int state = ctx->newstate;
	struct ident id = {}, *known;
	struct event *e;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (state < TCP_FIN_WAIT1)
		bpf_map_update_elem(&birth, &sk, &now, BPF_NOEXIST);
	if (state == TCP_SYN_SENT || state == TCP_FIN_WAIT1 || state == TCP_LAST_ACK) {
		id.pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(id.comm, sizeof(id.comm));
		bpf_map_update_elem(&idents, &sk, &id, BPF_NOEXIST);
	}
	if (state != TCP_CLOSE)
		return 0;
	start = bpf_map_lookup_elem(&birth, &sk);
	if (!start)
		goto out;
	known = bpf_map_lookup_elem(&idents, &sk);
	if (known)
		id = *known;
	if (!task_wanted(id.pid, id.comm))
		goto out;
	e = EVENT_RESERVE(sizeof(*e));
	if (!e)
		goto out;
	if (!tcp_endpoints(ctx, &e->ep)) {
		bpf_ringbuf_discard(e, 0);
		goto out;
	}
	e->ts = now;
	e->span_ns = now - *start;
	/* a received FIN advances rcv_nxt, and bytes_received, by one (RCV_SHUTDOWN:
	 * the FIN, or a local shutdown(SHUT_RD), which may then count one less) */
	e->rx_bytes = BPF_CORE_READ(tp, bytes_received);
	if (e->rx_bytes && (BPF_CORE_READ(&tp->inet_conn.icsk_inet.sk, sk_shutdown) & RCV_SHUTDOWN_))
		e->rx_bytes--;
	/* payload sent once: bytes_acked would count the SYN and FIN too */
	e->tx_bytes = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
	e->pid = id.pid;
	__builtin_memcpy(e->comm, id.comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
out:
	bpf_map_delete_elem(&birth, &sk);
	bpf_map_delete_elem(&idents, &sk);
	return 0;
}
