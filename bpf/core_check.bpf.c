// SPDX-License-Identifier: GPL-2.0
/* Fixture for `python -m pybpf check` and relocation without a kernel
 * (tests/test_check.py): CO-RE reads of our own struct and enum, which the
 * tests then relocate against BTF files they write themselves, with the
 * struct's fields renamed, moved, resized or missing, the enum changed, and
 * the tracepoints present or not.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct pybpf_chk {
	int pid;
	unsigned int flags;
	long long stamp;
	int only_in_first;
	int optional;
} __attribute__((preserve_access_index));

enum pybpf_chk_state {
	PYBPF_CHK_ERR = -4095,
	PYBPF_CHK_OK = 7,
};

__u64 out_pid, out_flags, out_stamp, out_first, out_optional, out_err, out_ok;

/* an unguarded read of every field but one (only_in_first first: of two
 * struct pybpf_chk in a target, it picks one), and an enum value */
SEC("tp/sched/sched_process_exec")
int chk_fields(void *ctx)
{
	struct pybpf_chk *c = (void *)bpf_get_current_task();

	out_first = BPF_CORE_READ(c, only_in_first);
	out_pid = BPF_CORE_READ(c, pid);
	out_flags = BPF_CORE_READ(c, flags);
	out_stamp = BPF_CORE_READ(c, stamp);
	out_err = bpf_core_enum_value(enum pybpf_chk_state, PYBPF_CHK_ERR);
	return 0;
}

/* reads pid again (a second section: candidates pruned by chk_fields stay
 * pruned), and a field only under bpf_core_field_exists() */
SEC("raw_tp/sched_switch")
int chk_guarded(void *ctx)
{
	struct pybpf_chk *c = (void *)bpf_get_current_task();

	out_pid = BPF_CORE_READ(c, pid);
	if (bpf_core_field_exists(c->optional))
		out_optional = BPF_CORE_READ(c, optional);
	if (bpf_core_enum_value_exists(enum pybpf_chk_state, PYBPF_CHK_OK))
		out_ok = bpf_core_enum_value(enum pybpf_chk_state, PYBPF_CHK_OK);
	return 0;
}
