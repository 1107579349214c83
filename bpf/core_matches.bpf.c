// SPDX-License-Identifier: GPL-2.0
/* CO-RE kinds that need clang >= 15 to be emitted: TYPE_MATCHES, and local
 * ENUM64 types for ENUMVAL_EXISTS / ENUMVAL_VALUE.  Built with clang-16 (see the
 * Makefile); results land in globals the tests compare with the kernel's BTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;

/* Matches: a subset of task_struct's members, with the kernel's types. */
struct task_struct___ok {
	pid_t pid;
	pid_t tgid;
	struct task_struct___ok *real_parent;
};

/* Does not match: pid has another size than the kernel's. */
struct task_struct___bad_size {
	long pid;
};

/* Does not match: a member the kernel's task_struct lacks. */
struct task_struct___bad_member {
	int pid;
	int pybpf_no_such_member;
};

/* Matches: enumerators are a subset of the kernel's (values may differ). */
enum pid_type___ok { PIDTYPE_PID___ok, PIDTYPE_TGID___ok };

/* Does not match: an enumerator name the kernel lacks. */
enum pid_type___bad { PYBPF_NO_SUCH_PIDTYPE };

/* A local ENUM64, flavored; its values are placeholders the loader replaces. */
enum blake2b_iv___local { BLAKE2B_IV1___local = 0x1122334455667788ULL, PYBPF_NOPE = 1ULL << 40 };

int matches_ok, matches_bad_size, matches_bad_member, enum_matches_ok, enum_matches_bad;
__u64 iv1_value, iv1_exists, nope_exists;
int hits;

SEC("raw_tp/sys_enter")
int core_matches(void *ctx)
{
	if ((int)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	matches_ok = bpf_core_type_matches(struct task_struct___ok);
	matches_bad_size = bpf_core_type_matches(struct task_struct___bad_size);
	matches_bad_member = bpf_core_type_matches(struct task_struct___bad_member);
	enum_matches_ok = bpf_core_type_matches(enum pid_type___ok);
	enum_matches_bad = bpf_core_type_matches(enum pid_type___bad);
	iv1_exists = bpf_core_enum_value_exists(enum blake2b_iv___local, BLAKE2B_IV1___local);
	nope_exists = bpf_core_enum_value_exists(enum blake2b_iv___local, PYBPF_NOPE);
	if (bpf_core_enum_value_exists(enum blake2b_iv___local, BLAKE2B_IV1___local))
		iv1_value = bpf_core_enum_value(enum blake2b_iv___local, BLAKE2B_IV1___local);
	hits++;
	return 0;
}
