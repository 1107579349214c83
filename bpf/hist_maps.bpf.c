// SPDX-License-Identifier: GPL-2.0
/* Histograms and counters in the three layouts pybpf.hist recognises, fed by
 * the sleeps of one process (clock_nanosleep's requested duration, in usecs):
 *   sleep_hist   array u32 -> u64, the key is the slot (rule 3)
 *   by_clock     hash of struct hist keyed by clock id (rule 1, slots[] + sum)
 *   sleep_linear hash keyed by {clock, slot}, linear 1 ms buckets (rule 2)
 *   calls        a plain counter (u32 -> u64) */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} sleep_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct hist);
} by_clock SEC(".maps");

struct linear_key {
	__u32 clock;
	__u32 slot;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct linear_key);
	__type(value, __u64);
} sleep_linear SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("tp/syscalls/sys_enter_clock_nanosleep")
int on_sleep(struct trace_event_raw_sys_enter *ctx)
{
	struct __kernel_timespec ts;
	struct linear_key lk;
	__u32 slot, zero = 0, clock = ctx->args[0];
	__u64 us, *v, one = 1;
	struct hist *h;

	if (!current_wanted())
		return 0;
	if (bpf_probe_read_user(&ts, sizeof(ts), (void *)ctx->args[2]))
		return 0;
	us = (ts.tv_sec * 1000000000ULL + ts.tv_nsec) / 1000;
	slot = log2_slot(us);
	v = bpf_map_lookup_elem(&sleep_hist, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
	h = hist_get(&by_clock, &clock);
	if (h) {
		if (!h->comm[0])
			bpf_get_current_comm(h->comm, sizeof(h->comm));
		hist_add(h, us);
	}
	lk.clock = clock;
	lk.slot = us / 1000;
	v = bpf_map_lookup_elem(&sleep_linear, &lk);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&sleep_linear, &lk, &one, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&calls, &zero);
	if (v)
		*v += 1;
	return 0;
}
