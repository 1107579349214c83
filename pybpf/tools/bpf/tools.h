/* Shared by the pybpf tools (pybpf/tools/bpf/NAME.bpf.c): target filters set from
 * user space as const volatile globals, log2 slots, the event ring buffer.
 * Include after vmlinux.h, bpf_helpers.h, bpf_core_read.h. */
#ifndef PYBPF_TOOLS_H
#define PYBPF_TOOLS_H

#define TASK_COMM_LEN 16
/* log2 histograms: slot i counts [2^i, 2^(i+1)-1], slot 0 counts 0 and 1. */
#define MAX_SLOTS 27
#define AF_INET_ 2

/* -p PID: only this process (tgid); 0: every process. */
const volatile __u32 targ_tgid = 0;
/* -c COMM: only tasks with this comm; empty: every comm. */
const volatile char targ_comm[TASK_COMM_LEN] = {};

static __always_inline bool comm_wanted(const char *comm)
{
	if (!targ_comm[0])
		return true;
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return false;
		if (!comm[i])
			return true;
	}
	return true;
}

/* Whether a task (by tgid and comm) passes the -p / -c filters. */
static __always_inline bool task_wanted(__u32 tgid, const char *comm)
{
	if (targ_tgid && tgid != targ_tgid)
		return false;
	return comm_wanted(comm);
}

/* The filters applied to the current task. */
static __always_inline bool current_wanted(void)
{
	char comm[TASK_COMM_LEN];

	if (targ_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) != targ_tgid)
		return false;
	if (!targ_comm[0])
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	return comm_wanted(comm);
}

/* floor(log2(v)), 0 for 0: the slot of v. */
static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r < MAX_SLOTS ? r : MAX_SLOTS - 1;
}

/* A log2 histogram as pybpf.hist reads it (a value struct with slots[] and sum). */
struct hist {
	__u64 slots[MAX_SLOTS];
	__u64 sum;
	char comm[TASK_COMM_LEN];
};

/* Divisor of recorded nanoseconds: 1000 for -u (usecs), 1000000 for -m (msecs). */
const volatile __u64 targ_unit_ns = 1000;

static __always_inline void hist_add(struct hist *h, __u64 value)
{
	__sync_fetch_and_add(&h->slots[log2_slot(value)], 1);
	__sync_fetch_and_add(&h->sum, value);
}

/* The histogram at *key in a hash map of struct hist, created empty on first
 * use (the caller names it: comm). */
static const struct hist zero_hist = {};

static __always_inline struct hist *hist_get(void *map, const void *key)
{
	struct hist *h = bpf_map_lookup_elem(map, key);

	if (h)
		return h;
	bpf_map_update_elem(map, key, &zero_hist, BPF_NOEXIST);
	h = bpf_map_lookup_elem(map, key);
	return h;
}

/* The device of a block request, as the kernel's dev_t (MAJOR << 20 | MINOR):
 * its partition's, or its disk's. */
static __always_inline __u32 request_dev(struct request *rq)
{
	struct gendisk *disk;

	if (BPF_CORE_READ(rq, part))
		return BPF_CORE_READ(rq, part, bd_dev);
	disk = BPF_CORE_READ(rq, q, disk);
	return disk ? ((__u32)BPF_CORE_READ(disk, major) << 20) | BPF_CORE_READ(disk, first_minor) : 0;
}

/* -d DEV: only this device (kernel dev_t); 0: every device. */
const volatile __u32 targ_dev = 0;

/* The addresses and ports of an inet_sock_set_state event, by family. */
struct tcp_endpoints {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
};

/* -4 / -6: only this address family (AF_INET 2, AF_INET6 10); -L / -D ports. */
const volatile __u16 targ_family = 0;
const volatile __u16 targ_sport = 0;
const volatile __u16 targ_dport = 0;

static __always_inline bool
tcp_endpoints(struct trace_event_raw_inet_sock_set_state *ctx, struct tcp_endpoints *ep)
{
	if (ctx->protocol != IPPROTO_TCP)
		return false;
	ep->family = ctx->family;
	ep->sport = ctx->sport;
	ep->dport = ctx->dport;
	if (targ_family && ep->family != targ_family)
		return false;
	if (targ_sport && ep->sport != targ_sport)
		return false;
	if (targ_dport && ep->dport != targ_dport)
		return false;
	/* helper copies: the verifier refuses a ctx pointer moved by a branch */
	if (ep->family == AF_INET_) {
		bpf_probe_read_kernel(ep->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(ep->daddr, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(ep->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(ep->daddr, 16, ctx->daddr_v6);
	}
	return true;
}

#define EVENTS_RINGBUF(bytes)					\
	struct {						\
		__uint(type, BPF_MAP_TYPE_RINGBUF);		\
		__uint(max_entries, bytes);			\
	} events SEC(".maps");					\
	/* events lost to a full ring (user space reports it) */	\
	__u64 events_dropped = 0

/* bpf_ringbuf_reserve on the events ring, counting a failure as a drop. */
#define EVENT_RESERVE(size)						\
	({								\
		void *__r = bpf_ringbuf_reserve(&events, (size), 0);	\
		if (!__r)						\
			__sync_fetch_and_add(&events_dropped, 1);	\
		__r;							\
	})

/* tgid of the parent of the current task (CO-RE). */
static __always_inline __u32 current_ppid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid);
}

#endif
