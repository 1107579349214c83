/* Shared by the pybpf tools (pybpf/tools/bpf/NAME.bpf.c): target filters set from
 * user space as const volatile globals, log2 slots, the event ring buffer.
 * Include after vmlinux.h, bpf_helpers.h, bpf_core_read.h. */
#ifndef PYBPF_TOOLS_H
#define PYBPF_TOOLS_H

#define TASK_COMM_LEN 16
/* log2 histograms: slot i counts [2^i, 2^(i+1)-1], slot 0 counts 0 and 1. */
#define MAX_SLOTS 27

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

#define EVENTS_RINGBUF(bytes)					\
	struct {						\
		__uint(type, BPF_MAP_TYPE_RINGBUF);		\
		__uint(max_entries, bytes);			\
	} events SEC(".maps")

/* tgid of the parent of the current task (CO-RE). */
static __always_inline __u32 current_ppid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid);
}

#endif
