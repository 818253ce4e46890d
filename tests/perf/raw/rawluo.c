// rawluo: the raw baseline of `make perf`, a minimal static PID 1 that does
// nothing but the live-update ioctls, so that luoinit's restore path can be
// measured against what the kernel itself costs in the same VM.
//
// Stage 1 (no rawluo.stage= on the command line): create rawluo.n= memfds of
// 4 KiB, each filled with a pattern of its index; CREATE_SESSION "rawluo",
// PRESERVE_FD each under tokens 1..n; kexec_file_load /boot/bzImage with
// /boot/initramfs2.cpio and the same command line plus rawluo.stage=2; then
// reboot(LINUX_REBOOT_CMD_KEXEC) with the session still open.
//
// Stage 2: mount devtmpfs, open /dev/liveupdate, RETRIEVE_SESSION, then
// RETRIEVE_FD of every token, read every byte of every fd and check the
// pattern, FINISH. Each step is stamped with CLOCK_BOOTTIME and printed as
//
//	LUOTEST:PERF raw n=N init_ns=.. device_ns=.. session_ns=.. fds_ns=.. verified_ns=.. finish_ns=..
//
// (all CLOCK_BOOTTIME, ns since this kernel started) and exec_ns, when the
// kernel ran /init (see init_exec_ns: what comes before main, measured
// the same way for every init), then LUOTEST:PASS, and the VM ends with
// reboot(RESTART).
//
// Startup (rawluo.startup=1, one boot, no kexec): what starting a program
// costs in this VM, with nothing of live update in it. The image holds
// STARTUP_COPIES copies of each of three programs: /startup/cK (rawluo,
// which returns at once when its first argument is "noop"), /startup/goK
// (an empty Go main: the Go runtime and nothing else) and /startup/luoinitK
// (luoinit's binary, `--help` with its output to /dev/null: the runtime
// and every package init of luoinit). Each copy is run once, taking turns,
// then copy 1 of each again, and each run is timed from fork to the exit
// seen by waitpid, on CLOCK_BOOTTIME:
//
//	LUOTEST:STARTUP c_cold1_ns=.. go_cold1_ns=.. luoinit_cold1_ns=.. ... c_warm_ns=.. go_warm_ns=.. luoinit_warm_ns=..
//
// A copy's first run is what a PID 1 pays after the kexec: under emulation
// its code is translated then (a copy is other pages, so translated anew);
// the warm run shows the rest.
//
// Build: gcc -static -O2 -I<dir holding linux/liveupdate.h> -o rawluo rawluo.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/liveupdate.h>
#include <linux/reboot.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FDSIZE 4096
#define SESSION "rawluo"

static long long boottime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void end(const char *kind, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("\nLUOTEST:%s %s\n", kind, msg);
	fflush(stdout);
	sync();
	usleep(100000);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

#define die(...) end("FAIL", __VA_ARGS__)

static char cmdline[4096];
static long long init_ns; // CLOCK_BOOTTIME at the first instruction of main

static void read_cmdline(void)
{
	int fd = open("/proc/cmdline", O_RDONLY);
	if (fd < 0)
		die("open /proc/cmdline: %s", strerror(errno));
	ssize_t n = read(fd, cmdline, sizeof(cmdline) - 64);
	if (n <= 0)
		die("read /proc/cmdline: %s", strerror(errno));
	close(fd);
	while (n > 0 && (cmdline[n - 1] == '\n' || cmdline[n - 1] == ' '))
		n--;
	cmdline[n] = 0;
}

// flag returns the value of key= on the command line, or NULL.
static const char *flag(const char *key)
{
	static char val[256];
	size_t kl = strlen(key);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ')
			p++;
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t vl = len - kl - 1;
			if (vl >= sizeof(val))
				vl = sizeof(val) - 1;
			memcpy(val, p + kl + 1, vl);
			val[vl] = 0;
			return val;
		}
		p += len;
	}
	return NULL;
}

static void fill(unsigned char *buf, unsigned long i)
{
	for (int k = 0; k < FDSIZE; k++)
		buf[k] = (unsigned char)(i * 131 + k * 7 + 1);
}

static void raise_nofile(long n)
{
	struct rlimit rl = { .rlim_cur = n + 64, .rlim_max = n + 64 };
	if (rl.rlim_cur < 1024)
		rl.rlim_cur = rl.rlim_max = 1024;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit(RLIMIT_NOFILE, %ld): %s", (long)rl.rlim_max, strerror(errno));
}

static void stage1(long n)
{
	unsigned char buf[FDSIZE];
	int dev = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("open /dev/liveupdate: %s", strerror(errno));
	struct liveupdate_ioctl_create_session cs = { .size = sizeof(cs), .fd = -1 };
	strcpy((char *)cs.name, SESSION);
	if (ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &cs) < 0)
		die("CREATE_SESSION: %s", strerror(errno));
	long long t0 = boottime();
	for (long i = 0; i < n; i++) {
		int m = memfd_create("raw", MFD_CLOEXEC);
		if (m < 0)
			die("memfd_create #%ld: %s", i, strerror(errno));
		fill(buf, i);
		if (pwrite(m, buf, FDSIZE, 0) != FDSIZE)
			die("pwrite #%ld: %s", i, strerror(errno));
		struct liveupdate_session_preserve_fd p = { .size = sizeof(p), .fd = m, .token = i + 1 };
		if (ioctl(cs.fd, LIVEUPDATE_SESSION_PRESERVE_FD, &p) < 0)
			die("PRESERVE_FD token %ld: %s", i + 1, strerror(errno));
		close(m); // the session holds the file now
	}
	printf("\nLUOTEST:INFO rawluo preserved %ld memfds in %lld us\n", n, (boottime() - t0) / 1000);
	close(dev);

	int k = open("/boot/bzImage", O_RDONLY | O_CLOEXEC);
	int r = open("/boot/initramfs2.cpio", O_RDONLY | O_CLOEXEC);
	if (k < 0 || r < 0)
		die("open /boot/bzImage or /boot/initramfs2.cpio: %s", strerror(errno));
	strcat(cmdline, " rawluo.stage=2");
	if (syscall(SYS_kexec_file_load, k, r, strlen(cmdline) + 1, cmdline, 0UL) < 0)
		die("kexec_file_load: %s", strerror(errno));
	printf("\nLUOTEST:KEXEC rawluo\n");
	fflush(stdout);
	sync();
	reboot(LINUX_REBOOT_CMD_KEXEC);
	die("reboot(KEXEC): %s", strerror(errno));
}

// mark writes a record to /dev/kmsg and returns CLOCK_BOOTTIME at the
// middle of the write.
static long long mark(const char *tag)
{
	char rec[64];
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int n = snprintf(rec, sizeof(rec), "<6>rawluo: clock mark %s\n", tag);
	long long before = boottime();
	ssize_t w = write(fd, rec, n);
	long long after = boottime();
	close(fd);
	return w == n ? (before + after) / 2 : -1;
}

// init_exec_ns returns when the kernel ran /init, on CLOCK_BOOTTIME: its
// "Run /init as init process" line is stamped on the printk clock, which
// under emulation drifts from CLOCK_BOOTTIME, so two records written a
// second apart map the one clock onto the other (as luotest's
// initExecBoottime does). -1 if it cannot tell.
static long long init_exec_ns(void)
{
	long long t1 = mark("1");
	sleep(1);
	long long t2 = mark("2");
	long long p0 = 0, p1 = 0, p2 = 0;
	char rec[2048];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || t1 < 0 || t2 < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		char *msg = strchr(rec, ';');
		unsigned long long us;
		if (!msg || sscanf(rec, "%*u,%*u,%llu", &us) != 1)
			continue;
		msg++;
		if (strncmp(msg, "Run /init as init process", 25) == 0)
			p0 = (long long)us * 1000;
		else if (strncmp(msg, "rawluo: clock mark 1", 20) == 0)
			p1 = (long long)us * 1000;
		else if (strncmp(msg, "rawluo: clock mark 2", 20) == 0)
			p2 = (long long)us * 1000;
	}
	close(fd);
	if (!p0 || !p1 || p2 <= p1)
		return -1;
	return t1 + (long long)((double)(p0 - p1) * (double)(t2 - t1) / (double)(p2 - p1));
}

static void stage2(long n)
{
	unsigned char want[FDSIZE], got[FDSIZE];
	long long init = init_ns;
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	int dev = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("open /dev/liveupdate: %s", strerror(errno));
	long long tdev = boottime();
	struct liveupdate_ioctl_retrieve_session rs = { .size = sizeof(rs), .fd = -1 };
	strcpy((char *)rs.name, SESSION);
	if (ioctl(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &rs) < 0)
		die("RETRIEVE_SESSION: %s", strerror(errno));
	long long tsess = boottime();
	int *fds = malloc(sizeof(int) * (n ? n : 1));
	for (long i = 0; i < n; i++) {
		struct liveupdate_session_retrieve_fd r = { .size = sizeof(r), .fd = -1, .token = i + 1 };
		if (ioctl(rs.fd, LIVEUPDATE_SESSION_RETRIEVE_FD, &r) < 0)
			die("RETRIEVE_FD token %ld: %s", i + 1, strerror(errno));
		fds[i] = r.fd;
	}
	long long tfds = boottime();
	for (long i = 0; i < n; i++) {
		fill(want, i);
		if (pread(fds[i], got, FDSIZE, 0) != FDSIZE || memcmp(want, got, FDSIZE) != 0)
			die("token %ld: data differs", i + 1);
	}
	long long tver = boottime();
	struct liveupdate_session_finish f = { .size = sizeof(f) };
	if (ioctl(rs.fd, LIVEUPDATE_SESSION_FINISH, &f) < 0)
		die("FINISH: %s", strerror(errno));
	long long tfin = boottime();
	printf("\nLUOTEST:PERF raw n=%ld exec_ns=%lld init_ns=%lld device_ns=%lld session_ns=%lld fds_ns=%lld verified_ns=%lld finish_ns=%lld\n",
	       n, init_exec_ns(), init, tdev, tsess, tfds, tver, tfin);
	end("PASS", "rawluo: %ld fds retrieved, read and verified, session finished", n);
}

// run_ns forks, runs path with argv and its output on /dev/null, and
// returns fork to the exit seen by waitpid on CLOCK_BOOTTIME.
static long long run_ns(const char *path, char *const argv[])
{
	long long t0 = boottime();
	pid_t pid = fork();
	if (pid < 0)
		die("fork for %s: %s", path, strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(path, argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid %s: %s", path, strerror(errno));
	long long t1 = boottime();
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s exited with status %#x", path, st);
	return t1 - t0;
}

#define STARTUP_COPIES 3

static void startup(void)
{
	static const char *prog[] = { "c", "go", "luoinit" };
	static const char *arg1[] = { "noop", NULL, "--help" };
	char path[64], out[1024];
	int len = 0;
	for (int k = 1; k <= STARTUP_COPIES + 1; k++) {
		for (int p = 0; p < 3; p++) {
			snprintf(path, sizeof path, "/startup/%s%d", prog[p], k <= STARTUP_COPIES ? k : 1);
			char *argv[] = { path, (char *)arg1[p], NULL };
			long long t = run_ns(path, argv);
			if (k <= STARTUP_COPIES)
				len += snprintf(out + len, sizeof out - len, " %s_cold%d_ns=%lld", prog[p], k, t);
			else
				len += snprintf(out + len, sizeof out - len, " %s_warm_ns=%lld", prog[p], t);
		}
	}
	printf("\nLUOTEST:STARTUP%s\n", out);
	end("PASS", "rawluo: startup of C, Go and luoinit timed");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "noop") == 0)
		return 0;
	init_ns = boottime();
	mkdir("/proc", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	read_cmdline();
	const char *ns = flag("rawluo.n");
	long n = ns ? strtol(ns, NULL, 10) : 1;
	if (n < 0 || n > 1000000)
		die("rawluo.n=%ld out of range", n);
	raise_nofile(n);
	if (flag("rawluo.startup")) {
		mkdir("/dev", 0755);
		mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
		startup();
	}
	const char *stage = flag("rawluo.stage");
	if (stage && strcmp(stage, "2") == 0) {
		printf("\nLUOTEST:STAGE 2\n");
		stage2(n);
	}
	printf("\nLUOTEST:STAGE 1\n");
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	stage1(n);
	return 0;
}
