// SPDX-License-Identifier: GPL-2.0
/* Reference consumer for tools/bench_tools.py: drains a tool's ring buffer with
 * libbpf (ring_buffer__poll, a C callback counting records), the least any C
 * tool built on the same BPF object pays in user space. Benchmark only.
 *
 * usage: tool_drain MAP_FD   (inherited); runs until SIGTERM, prints the count. */
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t stop;
static unsigned long long records;

static void on_term(int sig)
{
	stop = 1;
}

static int on_event(void *ctx, void *data, size_t size)
{
	records++;
	return 0;
}

int main(int argc, char **argv)
{
	struct ring_buffer *rb;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MAP_FD\n", argv[0]);
		return 2;
	}
	signal(SIGTERM, on_term);
	rb = ring_buffer__new(atoi(argv[1]), on_event, NULL, NULL);
	if (!rb)
		return 1;
	fprintf(stderr, "Tracing\n");
	while (!stop)
		ring_buffer__poll(rb, 100);
	ring_buffer__consume(rb);
	printf("%llu\n", records);
	ring_buffer__free(rb);
	return 0;
}
