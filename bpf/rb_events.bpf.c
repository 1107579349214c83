// SPDX-License-Identifier: GPL-2.0
/* Ring buffer producer for the tests: each run of `produce` emits `count`
 * records; record i carries {seq, size} and is padded to a size that cycles
 * through 8, 16, 24 ... 64 bytes, and every `discard_every`-th one is
 * reserved and then discarded.  `bench` emits `count` 16-byte records
 * {ktime_ns, seq} with BPF_RB_NO_WAKEUP through bpf_loop (the benchmark's
 * producer, compiled). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 65536);
} events SEC(".maps");

struct rb_rec {
	__u64 seq;
	__u64 size;
	__u8 pad[48];
};

__u32 count = 1;
__u32 discard_every;    /* 0: never */
__u64 next_seq;
__u64 dropped;          /* reservations refused (ring full) */

static __always_inline void emit(__u32 i)
{
	__u32 size = 8 * ((i % 8) + 1);
	struct rb_rec *r;

	/* the verifier wants a constant reservation size: one branch per size */
	switch (size) {
	case 8:  r = bpf_ringbuf_reserve(&events, 8, 0); break;
	case 16: r = bpf_ringbuf_reserve(&events, 16, 0); break;
	case 24: r = bpf_ringbuf_reserve(&events, 24, 0); break;
	case 32: r = bpf_ringbuf_reserve(&events, 32, 0); break;
	case 40: r = bpf_ringbuf_reserve(&events, 40, 0); break;
	case 48: r = bpf_ringbuf_reserve(&events, 48, 0); break;
	case 56: r = bpf_ringbuf_reserve(&events, 56, 0); break;
	default: r = bpf_ringbuf_reserve(&events, 64, 0); break;
	}
	if (!r) {
		dropped++;
		return;
	}
	r->seq = next_seq++;
	if (size >= 16)
		r->size = size;
	if (discard_every && i % discard_every == discard_every - 1)
		bpf_ringbuf_discard(r, 0);
	else
		bpf_ringbuf_submit(r, 0);
}

SEC("syscall")
int produce(void *ctx)
{
	for (__u32 i = 0; i < 256 && i < count; i++)
		emit(i);
	return 0;
}

struct rb_bench_rec {
	__u64 ts;
	__u64 seq;
};

static long bench_one(__u64 i, void *ctx)
{
	struct rb_bench_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r) {
		dropped++;
		return 1;       /* full: stop the loop */
	}
	r->seq = next_seq++;
	r->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("syscall")
int bench(void *ctx)
{
	bpf_loop(count, bench_one, NULL, 0);
	return 0;
}
