/*
 * sdstore: a daemon that keeps its memory in the service manager's fd
 * store, using nothing but systemd's documented protocol (sd_notify(3),
 * sd_listen_fds(3)); no libsystemd, no luoinit code. It is the workload of
 * the TestSystemdFDStore VM scenario and the example of
 * docs/unmodified-software.md.
 *
 * Started without fds (a cold boot), it makes two memfds with patterned
 * data ("arena", 4 MiB, and "journal", 64 KiB and sealed against resizing),
 * a socket ("conn") and a memfd it removes again ("scratch"), stores them
 * with FDSTORE=1 / FDNAME=, writes a stamp into the arena after storing it
 * (the store holds the same memory, not a copy), and says READY=1.
 *
 * Started with fds (LISTEN_PID is its pid), it checks that exactly "arena"
 * and "journal" came, at fds 3 and 4, with every byte, the stamp and the
 * seals, counts the restore in the arena (it stores nothing again: the
 * store keeps what it has) and says READY=1.
 *
 * Markers on stdout (the console): LUOTEST:SDSTORE_STORED,
 * LUOTEST:SDSTORE_RESTORED, LUOTEST:SDSTORE_FAIL. The verdict also goes to
 * /run/sdstore.result for the scenario's driver.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -o sdstore sdstore.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ARENA_SIZE (4 << 20)
#define JOURNAL_SIZE (64 << 10)
#define STAMP "written after FDSTORE=1"
#define HEADER 64       /* the arena's first bytes: the stamp, then the restore count */
#define COUNT_AT 32

/* notify sends one sd_notify(3) datagram to $NOTIFY_SOCKET, with fds
 * attached (SCM_RIGHTS) if n_fds > 0. Returns 0 if there is no socket, 1
 * if sent, -errno on failure. The kernel adds the sender's credentials. */
static int notify(const char *state, const int *fds, size_t n_fds)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len;
	int fd, r = 1;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */

	char control[CMSG_SPACE(sizeof(int) * 253)];
	struct iovec iov = {.iov_base = (char *)state, .iov_len = strlen(state)};
	struct msghdr mh = {
		.msg_name = &sa,
		.msg_namelen = offsetof(struct sockaddr_un, sun_path) + len,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	if (n_fds > 253)
		return -E2BIG;
	if (n_fds > 0) {
		struct cmsghdr *c;
		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* store puts one fd in the fd store under name. */
static int store(int fd, const char *name)
{
	char state[300];
	snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
	return notify(state, &fd, 1);
}

/* listen_fds is sd_listen_fds_with_names(3): the number of fds passed
 * from fd 3 on, and their names split out of LISTEN_FDNAMES; 0 unless
 * LISTEN_PID is this process. Marks the fds close-on-exec. */
static int listen_fds(char names[][256], int max)
{
	const char *e = getenv("LISTEN_PID");
	char *end;
	long n;

	if (!e || strtol(e, &end, 10) != getpid() || *end)
		return 0;
	e = getenv("LISTEN_FDS");
	if (!e)
		return 0;
	n = strtol(e, &end, 10);
	if (*end || n < 0 || n > max)
		return -EINVAL;
	e = getenv("LISTEN_FDNAMES");
	for (int i = 0; i < n; i++) {
		size_t l = 0;
		while (e && e[l] && e[l] != ':' && l < 255)
			l++;
		memcpy(names[i], e ? e : "", l);
		names[i][l] = 0;
		if (e)
			e = e[l] == ':' ? e + l + 1 : NULL;
		fcntl(3 + i, F_SETFD, FD_CLOEXEC);
	}
	return (int)n;
}

static void mark(const char *kind, const char *fmt, ...)
{
	va_list ap;
	printf("\nLUOTEST:%s ", kind);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void result(const char *fmt, ...)
{
	FILE *f = fopen("/run/sdstore.result", "w");
	va_list ap;
	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mark("SDSTORE_FAIL", "%s", msg);
	result("FAIL %s\n", msg);
	exit(1);
}

static unsigned char pattern(size_t i, unsigned seed)
{
	return (unsigned char)((i * 2654435761u) >> 13 ^ seed);
}

static int make_memfd(const char *name, size_t size, unsigned seed, unsigned flags)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);
	unsigned char *p;

	if (fd < 0 || ftruncate(fd, size) < 0)
		fail("memfd %s: %s", name, strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		fail("mmap %s: %s", name, strerror(errno));
	for (size_t i = 0; i < size; i++)
		p[i] = pattern(i, seed);
	munmap(p, size);
	return fd;
}

/* check verifies a memfd's size and pattern; the arena also carries the
 * stamp written after it was stored. */
static const char *check(int fd, size_t size, unsigned seed, int stamped)
{
	static char why[160];
	struct stat st;
	unsigned char *p;
	size_t from = stamped ? HEADER : 0;

	if (fstat(fd, &st) < 0 || (size_t)st.st_size != size) {
		snprintf(why, sizeof(why), "size %lld, want %zu", (long long)st.st_size, size);
		return why;
	}
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return "mmap failed";
	if (stamped && memcmp(p, STAMP, sizeof(STAMP)) != 0) {
		munmap(p, size);
		return "the stamp written after FDSTORE=1 is missing";
	}
	for (size_t i = from; i < size; i++)
		if (p[i] != pattern(i, seed)) {
			snprintf(why, sizeof(why), "byte %zu is %u, want %u", i, p[i], pattern(i, seed));
			munmap(p, size);
			return why;
		}
	munmap(p, size);
	return NULL;
}

static void fresh(void)
{
	int arena = make_memfd("arena", ARENA_SIZE, 21, 0);
	int journal = make_memfd("journal", JOURNAL_SIZE, 22, MFD_ALLOW_SEALING);
	int scratch = make_memfd("scratch", 4096, 23, 0);
	int pair[2];
	int r;

	if (fcntl(journal, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		fail("sealing journal: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		fail("socketpair: %s", strerror(errno));
	if ((r = store(arena, "arena")) <= 0 || (r = store(journal, "journal")) <= 0 ||
	    (r = store(pair[0], "conn")) <= 0 || (r = store(scratch, "scratch")) <= 0)
		fail("FDSTORE=1: %s", r == 0 ? "no NOTIFY_SOCKET" : strerror(-r));
	if ((r = notify("FDSTOREREMOVE=1\nFDNAME=scratch", NULL, 0)) <= 0)
		fail("FDSTOREREMOVE=1: %d", r);
	/* The store holds this very memory: what is written now comes along. */
	unsigned char header[HEADER] = {0};
	memcpy(header, STAMP, sizeof(STAMP));
	if (pwrite(arena, header, HEADER, 0) != HEADER)
		fail("stamping the arena: %s", strerror(errno));
	notify("READY=1\nSTATUS=fresh: arena, journal, conn stored", NULL, 0);
	mark("SDSTORE_STORED", "arena journal conn (scratch stored and removed)");
	result("stored\n");
}

static void restored(int n, char names[][256])
{
	char list[1024] = "";
	const char *why;
	int seals;

	for (int i = 0; i < n; i++) {
		strncat(list, i ? ":" : "", sizeof(list) - strlen(list) - 1);
		strncat(list, names[i], sizeof(list) - strlen(list) - 1);
	}
	if (n != 2 || strcmp(names[0], "arena") != 0 || strcmp(names[1], "journal") != 0)
		fail("LISTEN_FDNAMES=%s (%d fds), want arena:journal", list, n);
	if ((why = check(3, ARENA_SIZE, 21, 1)) != NULL)
		fail("arena: %s", why);
	if ((why = check(4, JOURNAL_SIZE, 22, 0)) != NULL)
		fail("journal: %s", why);
	seals = fcntl(4, F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		fail("journal: seals %#x, want shrink and grow", seals);
	if (fcntl(5, F_GETFD) >= 0)
		fail("fd 5 is open: more fds than LISTEN_FDS");
	unsigned count = 0;
	if (pread(3, &count, sizeof(count), COUNT_AT) != sizeof(count))
		fail("arena: reading the restore count: %s", strerror(errno));
	count++;
	if (pwrite(3, &count, sizeof(count), COUNT_AT) != sizeof(count))
		fail("arena: writing the restore count: %s", strerror(errno));
	notify("READY=1\nSTATUS=restored arena and journal", NULL, 0);
	mark("SDSTORE_RESTORED", "LISTEN_FDNAMES=%s restores=%u LISTEN_PID=%d arena=%d:ok journal=%d:ok seals=ok", list, count, getpid(),
	     ARENA_SIZE, JOURNAL_SIZE);
	result("ok LISTEN_FDNAMES=%s restores=%u\n", list, count);
}

int main(void)
{
	char names[16][256];
	int n = listen_fds(names, 16);

	if (n < 0)
		fail("LISTEN_FDS=%s is not valid", getenv("LISTEN_FDS"));
	if (n == 0)
		fresh();
	else
		restored(n, names);
	for (;;)
		pause(); /* SIGTERM ends it */
}
