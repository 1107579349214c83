// SPDX-License-Identifier: GPL-2.0
/* Reference consumer for tools/bench_ringbuf.py: libbpf's ring_buffer__consume
 * with a C callback doing the benchmark's per-record work (read {ts, seq}, sum
 * seq).  Benchmark only, never a pybpf dependency.
 *
 * usage: rb_consumer MAP_FD [cpu]   (the fd is inherited from the benchmark)
 * Each line on stdin drains the ring once; it answers "records nanoseconds sum",
 * nanoseconds of CLOCK_MONOTONIC, or with "cpu" of this process's CPU time. */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct event {
	unsigned long long ts;
	unsigned long long seq;
};

static unsigned long long seq_sum, ts_mix;

static int on_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;

	seq_sum += e->seq;
	ts_mix ^= e->ts;
	return 0;
}

static clockid_t clock_id = CLOCK_MONOTONIC;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(clock_id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct ring_buffer *rb;
	char line[64];

	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "cpu"))) {
		fprintf(stderr, "usage: %s MAP_FD [cpu]\n", argv[0]);
		return 2;
	}
	if (argc == 3)
		clock_id = CLOCK_PROCESS_CPUTIME_ID;
	rb = ring_buffer__new(atoi(argv[1]), on_event, NULL, NULL);
	if (!rb) {
		perror("ring_buffer__new");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		long long t0, t1;
		int n;

		seq_sum = 0;
		t0 = now_ns();
		n = ring_buffer__consume(rb);
		t1 = now_ns();
		printf("%d %lld %llu %llu\n", n, t1 - t0, seq_sum, ts_mix & 1);
	}
	ring_buffer__free(rb);
	return 0;
}
