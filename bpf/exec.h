/* The event shared by the three exec-snoop programs (after the seed article). */
#ifndef PYBPF_EXEC_H
#define PYBPF_EXEC_H

#define TASK_COMM_LEN 16
#define MAX_FILENAME_LEN 512

/* Bigger than the 512-byte BPF stack, on purpose. */
struct event {
	int pid;
	char comm[TASK_COMM_LEN];
	char filename[MAX_FILENAME_LEN];
};

#endif
