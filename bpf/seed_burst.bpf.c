// SPDX-License-Identifier: GPL-2.0
/* Seed claim "one shared ring absorbs bursts that per-CPU buffers of the same
 * total size drop" (tools/seed_claims.py memory, docs/seed-claims.md).
 *
 * Two raw_tp programs, run with BPF_PROG_TEST_RUN and BPF_F_TEST_RUN_ON_CPU
 * (raw_tp is the program type whose test run takes a CPU): each run writes
 * `burst` records (at most MAX_BURST) on that CPU.  Records take 72 bytes in
 * either buffer: 64 payload bytes + the ring's 8-byte header, or 60 raw bytes
 * + the perf sample's 8-byte header and 4-byte raw size (4 + 60 is a multiple
 * of 8: no padding).  Failures are counted per CPU, BPF side (bpf/drops.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "transport_maps.h"
#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

#define MAX_BURST 128
#define PB_RAW_SIZE 60

struct burst_rec {
	__u64 seq;
	__u64 cpu;
	__u8 fill[48];
};

RINGBUF_MAP(rb, 1 << 16);
PERF_ARRAY_MAP(pb);

/* per CPU: ringbuf reservations refused / bpf_perf_event_output() errors */
DROP_COUNTER(rb_drops);
DROP_COUNTER(pb_drops);

__u32 burst;
__u64 next_seq;

SEC("raw_tp")
int burst_rb(void *ctx)
{
	for (__u32 i = 0; i < MAX_BURST && i < burst; i++) {
		struct burst_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);

		if (!r) {
			count_drop(&rb_drops);
			continue;
		}
		r->seq = __sync_fetch_and_add(&next_seq, 1);
		r->cpu = bpf_get_smp_processor_id();
		bpf_ringbuf_submit(r, 0);
	}
	return 0;
}

SEC("raw_tp")
int burst_pb(void *ctx)
{
	struct burst_rec r = {};

	r.cpu = bpf_get_smp_processor_id();
	for (__u32 i = 0; i < MAX_BURST && i < burst; i++) {
		r.seq = __sync_fetch_and_add(&next_seq, 1);
		if (bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &r, PB_RAW_SIZE))
			count_drop(&pb_drops);
	}
	return 0;
}
