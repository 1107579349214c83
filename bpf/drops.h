/* The drop-accounting idiom (docs/drop-accounting.md, bpf/drops.bpf.c).
 * Include after vmlinux.h and bpf_helpers.h.
 *
 * A record the ring (or a perf buffer) refused is counted in slot 0 of a
 * PERCPU_ARRAY of __u64: one slot per CPU, so CPUs that all hit a full ring
 * at once do not share a cache line; the add is atomic anyway, so a program
 * interrupting another on the same CPU cannot lose an increment. */
#ifndef PYBPF_DROPS_H
#define PYBPF_DROPS_H

#define DROP_COUNTER(name)					\
	struct {						\
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);	\
		__uint(max_entries, 1);				\
		__type(key, __u32);				\
		__type(value, __u64);				\
	} name SEC(".maps")

static __always_inline void count_drop(void *counter)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(counter, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

#endif
