// SPDX-License-Identifier: GPL-2.0
/* The drop-accounting idiom for BPF ring buffers (docs/drop-accounting.md).
 *
 * A ring buffer has no "lost samples" record: when the ring is full,
 * bpf_ringbuf_reserve() returns NULL (bpf_ringbuf_output() an error) and the
 * record is gone.  Only the BPF program knows, so it counts, per CPU
 * (drops.h); user space sums the per-CPU values and reports them next to
 * what it consumed.
 *
 * `produce` (SEC("syscall"), run with BPF_PROG_TEST_RUN) writes `count`
 * records {seq, 56 bytes} through reserve/submit, or through
 * bpf_ringbuf_output() when `use_output` is set. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

struct drop_rec {
	__u64 seq;
	__u8 data[56];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

DROP_COUNTER(drops);

__u32 count;
__u32 use_output;
__u64 next_seq;

static __always_inline void emit_reserve(void)
{
	struct drop_rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);

	if (!r) {               /* full: nothing was built yet, nothing wasted */
		count_drop(&drops);
		return;
	}
	r->seq = next_seq++;
	__builtin_memset(r->data, 0xab, sizeof(r->data));
	bpf_ringbuf_submit(r, 0);
}

static __always_inline void emit_output(void)
{
	struct drop_rec r = { .seq = next_seq };

	__builtin_memset(r.data, 0xab, sizeof(r.data));
	if (bpf_ringbuf_output(&rb, &r, sizeof(r), 0)) {
		count_drop(&drops);
		return;
	}
	next_seq++;
}

static long emit_one(__u64 i, void *ctx)
{
	if (use_output)
		emit_output();
	else
		emit_reserve();
	return 0;
}

SEC("syscall")
int produce(void *ctx)
{
	bpf_loop(count, emit_one, NULL, 0);
	return 0;
}
