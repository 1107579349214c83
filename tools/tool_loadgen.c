// SPDX-License-Identifier: GPL-2.0
/* Load generator for tools/bench_tools.py: makes events for the pybpf tools at
 * a fixed rate. Benchmark only.
 *
 * usage: tool_loadgen MODE RATE SECONDS   (MODE: open kill exec exit tcp)
 * Waits for a line on stdin, runs, prints "operations seconds".
 * tcp: a loopback connection accepted and reset (SO_LINGER 0: no TIME_WAIT). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int listener = -1;
static struct sockaddr_in server;

static void listen_loopback(void)
{
	socklen_t len = sizeof(server);

	server.sin_family = AF_INET;
	server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&server, sizeof(server)) ||
	    listen(listener, 4096) || getsockname(listener, (struct sockaddr *)&server, &len)) {
		perror("listen");
		exit(1);
	}
}

static void tcp_once(void)
{
	struct linger reset = { 1, 0 };
	int c = socket(AF_INET, SOCK_STREAM, 0), a;

	if (c < 0)
		return;
	if (!connect(c, (struct sockaddr *)&server, sizeof(server))) {
		a = accept(listener, NULL, NULL);
		setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(c);
		if (a >= 0)
			close(a);
		return;
	}
	close(c);
}

static void one(const char *mode)
{
	static char *const argv[] = { "/nonexistent-pybpf-bench", NULL };
	pid_t pid;

	if (!strcmp(mode, "open")) {
		int fd = open("/nonexistent-pybpf-bench", O_RDONLY);

		if (fd >= 0)
			close(fd);
	} else if (!strcmp(mode, "kill")) {
		kill(getpid(), 0);
	} else if (!strcmp(mode, "tcp")) {
		tcp_once();
	} else {
		pid = vfork();
		if (pid == 0) {
			if (!strcmp(mode, "exec"))
				execve(argv[0], argv, NULL);
			_exit(3);
		}
		waitpid(pid, NULL, 0);
	}
}

int main(int argc, char **argv)
{
	char line[16];
	double rate, secs, start, t;
	long n = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: %s open|kill|exec|exit RATE SECONDS\n", argv[0]);
		return 2;
	}
	rate = atof(argv[2]);
	secs = atof(argv[3]);
	if (!strcmp(argv[1], "tcp"))
		listen_loopback();
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	start = now();
	while ((t = now()) - start < secs) {
		double due = start + n / rate;

		if (t < due) {
			struct timespec d = { 0, (long)((due - t) * 1e9) };

			nanosleep(&d, NULL);
			continue;
		}
		for (int i = 0; i < 64 && n < rate * secs; i++, n++)
			one(argv[1]);
	}
	printf("%ld %f\n", n, now() - start);
	return 0;
}
