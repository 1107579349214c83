/* Transport map declarations shared by the study programs (bpf/seed_*.bpf.c).
 * The exec-snoop examples spell them out, as the seed article does. */
#ifndef PYBPF_TRANSPORT_MAPS_H
#define PYBPF_TRANSPORT_MAPS_H

/* A BPF ring buffer of `bytes` bytes (a power-of-2 multiple of the page size). */
#define RINGBUF_MAP(name, bytes)			\
	struct {					\
		__uint(type, BPF_MAP_TYPE_RINGBUF);	\
		__uint(max_entries, bytes);		\
	} name SEC(".maps")

/* A perf event array; max_entries 0: the loader sizes it to the possible CPUs. */
#define PERF_ARRAY_MAP(name)					\
	struct {						\
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);	\
		__uint(key_size, sizeof(int));			\
		__uint(value_size, sizeof(int));		\
	} name SEC(".maps")

#endif
