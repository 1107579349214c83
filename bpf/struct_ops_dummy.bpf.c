// SPDX-License-Identifier: GPL-2.0
/* struct_ops test object for the kernel's bpf_dummy_ops (the struct_ops type
 * that BPF_PROG_TEST_RUN can call without registering): a local, flavored
 * definition of the struct that declares only some of its members, in another
 * order, and a sleepable SEC("struct_ops.s") callback. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* the kernel's struct bpf_dummy_ops, seen through a flavor: test_2 is left out */
struct bpf_dummy_ops___pybpf {
	int (*test_sleepable)(struct bpf_dummy_ops_state *cb);
	int (*test_1)(struct bpf_dummy_ops_state *cb);
};

__u64 test_1_calls = 0;
__u64 sleepable_calls = 0;

SEC("struct_ops")
int BPF_PROG(dummy_test_1, struct bpf_dummy_ops_state *state)
{
	test_1_calls++;
	return state ? state->val + 1000 : 7;
}

SEC("struct_ops.s/test_sleepable")
int BPF_PROG(dummy_sleepable, struct bpf_dummy_ops_state *state)
{
	sleepable_calls++;
	return 0;
}

SEC(".struct_ops")
struct bpf_dummy_ops___pybpf dummy = {
	.test_1		= (void *)dummy_test_1,
	.test_sleepable	= (void *)dummy_sleepable,
};
