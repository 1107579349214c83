// SPDX-License-Identifier: GPL-2.0
/* Perf buffer producer for the tests: each XDP test run emits `count`
 * samples {seq, cpu} of 16 bytes on the current CPU. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} events SEC(".maps");

struct pb_sample {
	__u64 seq;
	__u64 cpu;
};

__u32 count = 1;
__u64 next_seq;

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	struct pb_sample s;

	for (__u32 i = 0; i < 64 && i < count; i++) {
		s.seq = next_seq++;
		s.cpu = bpf_get_smp_processor_id();
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &s, sizeof(s));
	}
	return XDP_PASS;
}
