// SPDX-License-Identifier: GPL-2.0
/* A burst of ring buffer records from one syscall, for the overrun checks of
 * `pybpf load`: each getppid() of target_pid writes `burst` records, faster
 * than any reader, into a one-page ring; the records the ring refused are
 * counted in `drops` (the idiom of docs/drop-accounting.md). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

const volatile int target_pid = 0;
const volatile __u32 burst = 200;

struct burst_event {
	__u64 seq;
	__u64 pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} burst_rb SEC(".maps");

DROP_COUNTER(drops);

__u64 next_seq = 0;

SEC("tp/syscalls/sys_enter_getppid")
int burst_out(void *ctx)
{
	struct burst_event e = {};

	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	for (__u32 i = 0; i < burst && i < 4096; i++) {
		e.seq = __sync_fetch_and_add(&next_seq, 1);
		if (bpf_ringbuf_output(&burst_rb, &e, sizeof(e), 0))
			count_drop(&drops);
	}
	return 0;
}
