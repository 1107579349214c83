// SPDX-License-Identifier: GPL-2.0
/* Seed claims on throughput and notification control
 * (tools/seed_claims.py throughput, docs/seed-claims.md), in the shape of the
 * kernel's benchs/bench_ringbufs.c: every getpgid() of the producer process
 * emits `batch_cnt` records {u64 ts, u64 seq} (the record of
 * tools/bench_ringbuf.py, 24 bytes in the ring).
 *
 * The kernel benchmark hooks fentry/sys_getpgid; BPF trampolines are not
 * available here, so the hook is the syscall tracepoint.  seq counts the
 * records written (a plain increment: the one producer process runs one
 * syscall at a time), so what the consumer receives is exactly 0..seq-1;
 * failures go to `dropped`.
 *
 * The *_big programs write the seed article's exec event instead (exec.h's
 * struct event, 532 bytes: more than the BPF stack holds): reserve/submit
 * builds it in the ring, bpf_ringbuf_output() and bpf_perf_event_output()
 * build it in the per-CPU scratch slot and copy it, as the article's three
 * examples do. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "transport_maps.h"
#include "exec.h"

char LICENSE[] SEC("license") = "GPL";

#define MAX_BATCH 512

enum { NOTIFY_DEFAULT = 0, NOTIFY_NONE = 1, NOTIFY_SAMPLED = 2 };

struct bench_rec {
	__u64 ts;
	__u64 seq;
};

RINGBUF_MAP(rb, 512 * 1024);
PERF_ARRAY_MAP(pb);

EXEC_SCRATCH_MAP(heap);

const volatile __u32 batch_cnt = 500;
const volatile __u32 use_output;        /* bpf_ringbuf_output() instead of reserve/submit */
const volatile __u32 notify;            /* NOTIFY_* */
const volatile __u32 sample_rate = 500; /* NOTIFY_SAMPLED: force a wakeup every N records */

__u32 producer_tgid;
__u64 next_seq;
__u64 dropped;

static __always_inline __u64 rb_flags(__u64 seq)
{
	if (notify == NOTIFY_NONE)
		return BPF_RB_NO_WAKEUP;
	if (notify == NOTIFY_SAMPLED)
		return (seq + 1) % sample_rate ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
	return 0;
}

static __always_inline int ours(void)
{
	return producer_tgid && bpf_get_current_pid_tgid() >> 32 == producer_tgid;
}

SEC("tp/syscalls/sys_enter_getpgid")
int bench_rb(void *ctx)
{
	struct bench_rec rec;

	if (!ours())
		return 0;
	rec.ts = bpf_ktime_get_ns();
	for (__u32 i = 0; i < MAX_BATCH && i < batch_cnt; i++) {
		__u64 seq = next_seq;

		if (use_output) {
			rec.seq = seq;
			if (bpf_ringbuf_output(&rb, &rec, sizeof(rec), rb_flags(seq))) {
				dropped++;
				continue;
			}
		} else {
			struct bench_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);

			if (!r) {
				dropped++;
				continue;
			}
			r->ts = rec.ts;
			r->seq = seq;
			bpf_ringbuf_submit(r, rb_flags(seq));
		}
		next_seq = seq + 1;
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_getpgid")
int bench_pb(void *ctx)
{
	struct bench_rec rec;

	if (!ours())
		return 0;
	rec.ts = bpf_ktime_get_ns();
	for (__u32 i = 0; i < MAX_BATCH && i < batch_cnt; i++) {
		rec.seq = next_seq;
		if (bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &rec, sizeof(rec)))
			dropped++;
		else
			next_seq++;
	}
	return 0;
}

/* The same fields written in both paths: the pid slot carries seq, the
 * filename is left as it is (only the copy differs between the paths). */
static __always_inline void fill_big(struct event *e, __u64 seq)
{
	e->pid = seq;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

SEC("tp/syscalls/sys_enter_getpgid")
int bench_rb_big(void *ctx)
{
	int zero = 0;
	struct event *e;

	if (!ours())
		return 0;
	for (__u32 i = 0; i < MAX_BATCH && i < batch_cnt; i++) {
		__u64 seq = next_seq;

		if (use_output) {
			e = bpf_map_lookup_elem(&heap, &zero);
			if (!e)
				return 0;
			fill_big(e, seq);
			if (bpf_ringbuf_output(&rb, e, sizeof(*e), rb_flags(seq))) {
				dropped++;
				continue;
			}
		} else {
			e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
			if (!e) {
				dropped++;
				continue;
			}
			fill_big(e, seq);
			bpf_ringbuf_submit(e, rb_flags(seq));
		}
		next_seq = seq + 1;
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_getpgid")
int bench_pb_big(void *ctx)
{
	int zero = 0;
	struct event *e = bpf_map_lookup_elem(&heap, &zero);

	if (!e || !ours())
		return 0;
	for (__u32 i = 0; i < MAX_BATCH && i < batch_cnt; i++) {
		fill_big(e, next_seq);
		if (bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, e, sizeof(*e)))
			dropped++;
		else
			next_seq++;
	}
	return 0;
}
