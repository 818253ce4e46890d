// perfwork: the workload of `make perf` in C, so that a workload's own
// start (a Go runtime's, under emulation, is a large part of the blackout)
// does not hide luoinit's share. It speaks the handoff protocol through
// the functions of the documented C client, examples/c/luoinit_handoff.c,
// included here, and holds the same memfds as rawluo: 4 KiB each, memfd i
// filled with rawluo's pattern for i.
//
//   perfwork NAME COUNT
//   perfwork --later SECONDS PROGRAM ARG...
//
// Without LUOINIT_HANDOFF_FD (before the live update): make COUNT memfds
// named m000, m001..., wait for luoinit prepare's socket, push them, and
// wait for SIGTERM. With it (after): pull, which acknowledges; then read
// every byte of every fd against the pattern, print
//
//	LUOTEST:RESTORED NAME COUNT verified_ns=N
//
// (N: CLOCK_BOOTTIME once every fd was read and compared, the same clock
// and the same work as rawluo's verified_ns)
// and wait for SIGTERM. Anything wrong prints LUOTEST:FAIL and exits 1.
//
// --later sleeps, then runs PROGRAM in its place: make perf starts its
// reporter (luotest's checker, a Go program) so, so that the reporter's
// own start does not take the CPU from the workloads being measured.
//
// Build: gcc -static -O2 -o perfwork perfwork.c
#define main luoinit_handoff_main
#include "../../../examples/c/luoinit_handoff.c"
#undef main

#include <sys/stat.h>

#define FDSIZE 4096

static void fill(unsigned char *buf, unsigned long i)
{
	for (int k = 0; k < FDSIZE; k++)
		buf[k] = (unsigned char)(i * 131 + k * 7 + 1);
}

static int fail(const char *name, const char *what)
{
	printf("\nLUOTEST:FAIL perfwork %s: %s\n", name, what);
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv)
{
	static int fds[MAX_FILES];
	static char names[MAX_FILES][256];
	static char *nv[MAX_FILES];
	unsigned char want[FDSIZE], got[FDSIZE];
	if (argc >= 4 && strcmp(argv[1], "--later") == 0) {
		sleep(atoi(argv[2]));
		execv(argv[3], argv + 3);
		return fail(argv[3], strerror(errno));
	}
	if (argc != 3)
		return fprintf(stderr, "usage: %s NAME COUNT | --later SECONDS PROGRAM ARG...\n", argv[0]), 2;
	const char *name = argv[1];
	long n = strtol(argv[2], NULL, 10);
	if (n < 1 || n > MAX_FILES)
		return fail(name, "COUNT out of range");
	setvbuf(stdout, NULL, _IONBF, 0);
	if (getenv("LUOINIT_HANDOFF_FD")) {
		deadline = now_ms() + 60000;
		int got_n = pull(name, fds, names);
		if (got_n != n)
			return fail(name, got_n < 0 ? "pull failed" : "a different number of fds came back");
		for (long i = 0; i < n; i++) {
			unsigned long idx;
			if (sscanf(names[i], "m%lu", &idx) != 1 || idx >= (unsigned long)n)
				return fail(name, "an fd name that is not mNNN");
			fill(want, idx);
			if (pread(fds[i], got, FDSIZE, 0) != FDSIZE || memcmp(want, got, FDSIZE) != 0)
				return fail(names[i], "data differs");
		}
		struct timespec ts;
		clock_gettime(CLOCK_BOOTTIME, &ts);
		printf("\nLUOTEST:RESTORED %s %ld verified_ns=%lld\n", name, n, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
		for (;;)
			pause();
	}
	for (long i = 0; i < n; i++) {
		nv[i] = names[i];
		snprintf(names[i], sizeof names[i], "m%03ld", i);
		fds[i] = memfd_create(names[i], MFD_CLOEXEC);
		fill(want, i);
		if (fds[i] < 0 || pwrite(fds[i], want, FDSIZE, 0) != FDSIZE)
			return fail(name, "memfd");
	}
	const char *sock = "/run/luoinit/prepare.sock";
	struct stat st;
	while (stat(sock, &st) != 0)
		usleep(10000); /* prepare has not started yet */
	deadline = now_ms() + 120000;
	if (push(sock, name, nv, fds, n) < 0)
		return fail(name, "push failed");
	for (;;)
		pause();
}
