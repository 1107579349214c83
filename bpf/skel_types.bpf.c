// SPDX-License-Identifier: GPL-2.0
/* Skeleton test: one event holding every kind of member the Python skeleton
 * generator maps (enums, enum64, nested and anonymous structs, an anonymous
 * union, a named union, arrays of structs, 2-D arrays, bitfields, bool, char
 * arrays), globals in .rodata / .data / .bss / .data.counters, and a hash map
 * keyed by a struct. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum skel_color { SKEL_RED = 1, SKEL_GREEN = 2, SKEL_BLUE = 4 };
enum skel_big { SKEL_BIG = 0x123456789aULL };

struct skel_inner {
	__u16 a;
	__u8 b;
	char name[6];
};

union skel_num {
	__u32 u;
	int i;
	__u8 bytes[4];
};

struct skel_rec {
	__u64 ts;
	enum skel_color color;
	struct skel_inner in;
	struct skel_inner arr[2];
	__u32 matrix[2][3];
	struct {
		__u32 x;
		__u32 y;
	} point;
	union {
		__u64 whole;
		__u32 halves[2];
	};
	union skel_num num;
	unsigned int lo : 3, mid : 7;
	int neg : 5;
	unsigned int hi : 17;
	bool ok;
	char comm[16];
	enum skel_big big;
	__s64 s;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} skel_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, struct skel_inner);
	__type(value, union skel_num);
} skel_by_inner SEC(".maps");

const struct skel_rec *unused_skel_rec __attribute__((unused));

const volatile int target_pid = 0;
const volatile enum skel_color want = SKEL_GREEN;
struct skel_inner skel_config = { .a = 7, .b = 8, .name = "cfg" };
__u64 counters[4] SEC(".data.counters");
__u32 fired;

SEC("tp/syscalls/sys_enter_getpgid")
int emit_rec(void *ctx)
{
	struct skel_rec *r;
	int i, j;

	if ((int)(bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	r = bpf_ringbuf_reserve(&skel_events, sizeof(*r), 0);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->ts = 0xfedcba9876543210ULL;
	r->color = want;
	r->in.a = skel_config.a;
	r->in.b = skel_config.b;
	__builtin_memcpy(r->in.name, "inner", 6);
	for (i = 0; i < 2; i++) {
		r->arr[i].a = 100 + i;
		r->arr[i].b = 200 + i;
		r->arr[i].name[0] = 'A' + i;
	}
	for (i = 0; i < 2; i++)
		for (j = 0; j < 3; j++)
			r->matrix[i][j] = i * 10 + j;
	r->point.x = 3;
	r->point.y = 4;
	r->halves[0] = 0x11111111;
	r->halves[1] = 0x22222222;
	r->num.i = -2;
	r->lo = 5;
	r->mid = 99;
	r->neg = -7;
	r->hi = 100000;
	r->ok = true;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	r->big = SKEL_BIG;
	r->s = -1234567890123LL;
	counters[0]++;
	fired++;
	bpf_ringbuf_submit(r, 0);
	return 0;
}
