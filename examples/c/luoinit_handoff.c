/* luoinit_handoff.c: the workload's side of luoinit's handoff protocol
 * (docs/handoff.md) in C, with libc only.
 *
 *   luoinit_handoff push SOCKET WORKLOAD NAME=TEXT...
 *       before a kexec: make a memfd per NAME holding TEXT and push them
 *       to luoinit prepare at SOCKET (default /run/luoinit/prepare.sock).
 *   luoinit_handoff pull WORKLOAD
 *       after it: take the fds from LUOINIT_HANDOFF_FD and print each as
 *       NAME=TEXT. No LUOINIT_HANDOFF_FD: exit 3 (start fresh).
 *
 * A real workload pushes the memfds it already has and keeps what it
 * pulls. Each exchange has one deadline for all of its calls, and retries
 * what the protocol says may be retried (a refused connect, a first
 * ECONNRESET) until then. Build: gcc -static -O2 -o luoinit_handoff luoinit_handoff.c
 * The unit tests of package handoff build this file and run it against
 * luoinit's Go side, so it is kept working. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { HELLO = 1, FDS = 2, DONE = 3, ACK = 4, ERROR = 5 };
enum { PUSH = 1, PULL = 2 };
#define MAGIC 0x484F554Cu /* "LUOH" */
#define HDR 12
#define MAX_PAYLOAD 32768
#define MAX_BATCH 64
#define MAX_FILES 16384
#define TIMEOUT_MS 5000 /* the whole exchange, connect to ACK */

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static uint16_t get16(const uint8_t *p) { return p[0] | p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline; /* CLOCK_MONOTONIC ms by which the exchange is done */

/* wait_for polls s for events until the deadline: 0, or -1 with errno. */
static int wait_for(int s, short events)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = { .fd = s, .events = events };
		if (left <= 0)
			return errno = ETIMEDOUT, -1;
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* send_msg sends one message with fds attached (SCM_RIGHTS). */
static int send_msg(int s, uint16_t type, const uint8_t *payload, uint32_t len, const int *fds, int nfds)
{
	static uint8_t m[HDR + MAX_PAYLOAD];
	union { struct cmsghdr h; char b[CMSG_SPACE(MAX_BATCH * sizeof(int))]; } c;
	struct iovec iov = { m, HDR + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	put32(m, MAGIC); put16(m + 4, 1); put16(m + 6, type); put32(m + 8, len);
	memcpy(m + HDR, payload, len);
	if (nfds > 0) {
		memset(&c, 0, sizeof c);
		mh.msg_control = c.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(h), fds, nfds * sizeof(int));
	}
	for (;;) {
		if (sendmsg(s, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		if (wait_for(s, POLLOUT) < 0)
			return -1;
	}
}

/* recv_msg receives one message into buf, and its fds (close-on-exec)
 * into fds. Returns its length, 0 if the peer closed, -1 with errno. A
 * first ECONNRESET is read past: what the peer sent before it closed
 * (its ACK error or ERROR) comes after it. */
static ssize_t recv_msg(int s, uint8_t *buf, int *fds, int *nfds, int *truncated)
{
	int resets = 0;
	*nfds = 0;
	*truncated = 0;
	for (;;) {
		union { struct cmsghdr h; char b[CMSG_SPACE(MAX_BATCH * sizeof(int))]; } c;
		struct iovec iov = { buf, HDR + MAX_PAYLOAD };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof c.b };
		ssize_t n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ECONNRESET && resets++ == 0)
				continue;
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			if (wait_for(s, POLLIN) < 0)
				return -1;
			continue;
		}
		/* Take every fd that came, whatever else is wrong, so that the
		 * caller can close them all. */
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
				for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= h->cmsg_len && *nfds < MAX_BATCH; i++)
					memcpy(&fds[(*nfds)++], CMSG_DATA(h) + i * sizeof(int), sizeof(int));
		*truncated = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
		return n;
	}
}

/* closed tells the end of the connection from an empty message: recvmsg
 * returns 0 for both. */
static int closed(int s)
{
	struct pollfd p = { .fd = s, .events = POLLIN | POLLRDHUP };
	return poll(&p, 1, 0) < 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* valid_name is the protocol's rule for an fd name (docs/handoff.md#limits). */
static int valid_name(const uint8_t *p, int len)
{
	if (len < 1 || len > 255 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
		return 0;
	for (int i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/' || p[i] == ':')
			return 0;
	return 1; /* a full client also checks that it is valid UTF-8 */
}

static int hello(int s, int direction, const char *workload)
{
	uint8_t p[4 + 55];
	size_t w = strlen(workload);
	if (w < 1 || w > 55)
		return errno = EINVAL, -1;
	put16(p, 1); p[2] = direction; p[3] = w;
	memcpy(p + 4, workload, w);
	return send_msg(s, HELLO, p, 4 + w, NULL, 0);
}

/* ack sends ACK ok (why == NULL) or ACK error naming fd (may be NULL). */
static void ack(int s, const char *fd, const char *why)
{
	uint8_t p[4 + 255 + 4096];
	size_t fl = fd ? strlen(fd) : 0, tl = why ? strlen(why) : 0;
	p[0] = why != NULL; p[1] = fl; put16(p + 2, tl);
	memcpy(p + 4, fd ? fd : "", fl);
	memcpy(p + 4 + fl, why ? why : "", tl);
	send_msg(s, ACK, p, 4 + fl + tl, NULL, 0); /* a failure ends the exchange anyway */
}

/* connect_until connects to path, retrying while luoinit prepare is not
 * listening yet (ENOENT, ECONNREFUSED) or its backlog is full (EAGAIN). */
static int connect_until(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof a.sun_path)
		return errno = ENAMETOOLONG, -1;
	strcpy(a.sun_path, path);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (s < 0)
			return -1;
		if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
			return s;
		int e = errno;
		close(s);
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR) || now_ms() + 50 > deadline)
			return errno = e, -1;
		usleep(50 * 1000);
	}
}

/* answer reads luoinit's ACK (or ERROR) and reports it: 0 for ok. */
static int answer(int s)
{
	static uint8_t b[HDR + MAX_PAYLOAD];
	int fds[MAX_BATCH], nfds, trunc;
	ssize_t n = recv_msg(s, b, fds, &nfds, &trunc);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (n < 0)
		return fprintf(stderr, "push: waiting for the ACK: %s\n", strerror(errno)), -1;
	if (n < HDR + 4 || get32(b) != MAGIC || get32(b + 8) != (uint32_t)(n - HDR) || trunc)
		return fprintf(stderr, "push: luoinit closed or answered with a bad message\n"), -1;
	const uint8_t *p = b + HDR;
	if (get16(b + 6) == ERROR)
		return fprintf(stderr, "push: luoinit sent ERROR: %.*s\n", (int)(n - HDR), (const char *)p), -1;
	if (get16(b + 6) != ACK || n < HDR + 4 + p[1] + get16(p + 2))
		return fprintf(stderr, "push: unexpected answer\n"), -1;
	if (p[0] == 0)
		return 0;
	fprintf(stderr, "push: luoinit refused fd \"%.*s\": %.*s\n", p[1], (const char *)p + 4, get16(p + 2), (const char *)p + 4 + p[1]);
	return -1;
}

/* push sends n fds with their names and waits for the ACK. */
static int push(const char *path, const char *workload, char **names, int *fds, int n)
{
	static uint8_t p[MAX_PAYLOAD];
	uint8_t done[4];
	int s = connect_until(path), rc = -1;
	if (s < 0)
		return fprintf(stderr, "push: connecting to %s: %s\n", path, strerror(errno)), -1;
	if (hello(s, PUSH, workload) < 0)
		goto broken;
	for (int start = 0; start < n; start += MAX_BATCH) {
		int k = n - start < MAX_BATCH ? n - start : MAX_BATCH, off = 2;
		put16(p, k);
		for (int i = start; i < start + k; i++) {
			size_t l = strlen(names[i]);
			p[off] = l;
			memcpy(p + off + 1, names[i], l);
			off += 1 + l;
		}
		if (send_msg(s, FDS, p, off, fds + start, k) < 0)
			goto broken;
	}
	put32(done, n);
	if (send_msg(s, DONE, done, 4, NULL, 0) < 0)
		goto broken;
	rc = answer(s);
	close(s);
	return rc;
broken:
	/* luoinit may have answered and closed before all was sent: its
	 * answer says more than the broken pipe. */
	if (errno == EPIPE || errno == ECONNRESET) {
		rc = answer(s);
		if (rc == 0)
			fprintf(stderr, "push: the connection broke, yet luoinit said ok\n"), rc = -1;
	} else {
		fprintf(stderr, "push: sending: %s\n", strerror(errno));
	}
	close(s);
	return rc;
}

/* seen_add adds name to the names received so far and returns 1, or 0 if
 * it is there already (a hash set, for handoffs of thousands of fds);
 * reset empties it first. The names must stay put while the set is used. */
static int seen_add(const char *name, int reset)
{
	static const char *set[2 * MAX_FILES]; /* at most half full */
	if (reset)
		memset(set, 0, sizeof set);
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *c = name; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	for (uint32_t i = h % (2 * MAX_FILES);; i = (i + 1) % (2 * MAX_FILES)) {
		if (!set[i])
			return set[i] = name, 1;
		if (strcmp(set[i], name) == 0)
			return 0;
	}
}

/* pull receives this workload's fds over the socket LUOINIT_HANDOFF_FD
 * names, into fds and names; returns how many, or -1. On any failure it
 * closes every fd received and answers ACK error, as the protocol says. */
static int pull(const char *workload, int *fds, char names[][256])
{
	static uint8_t b[HDR + MAX_PAYLOAD];
	const char *env = getenv("LUOINIT_HANDOFF_FD");
	int s, n = 0, type = 0;
	socklen_t len = sizeof type;
	const char *why = NULL;

	if (!env)
		return errno = ENOENT, -1;
	s = atoi(env);
	unsetenv("LUOINIT_HANDOFF_FD"); /* no child sees a stale number */
	/* Check before using (or closing) it: it might be stdin. */
	if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return fprintf(stderr, "pull: LUOINIT_HANDOFF_FD=%d is not a SOCK_SEQPACKET socket\n", s), -1;
	if (hello(s, PULL, workload) < 0) {
		fprintf(stderr, "pull: sending HELLO: %s\n", strerror(errno));
		close(s);
		return -1;
	}
	for (;;) {
		int got[MAX_BATCH], ngot, trunc;
		ssize_t m = recv_msg(s, b, got, &ngot, &trunc);
		for (int i = 0; i < ngot; i++)
			if (n < MAX_FILES)
				fds[n++] = got[i];
			else
				close(got[i]), why = "more than 16384 fds";
		if (m < 0 || (m == 0 && ngot == 0 && closed(s))) {
			fprintf(stderr, "pull: %s\n", m == 0 ? "luoinit closed the connection" : strerror(errno));
			goto fail_quiet;
		}
		const uint8_t *p = b + HDR;
		int plen = m - HDR, base = n - ngot;
		if (why || m < HDR || trunc || get32(b) != MAGIC || get32(b + 8) != (uint32_t)plen) {
			why = why ? why : "bad message (size, magic or truncated)";
			goto fail;
		}
		if (get16(b + 4) > 1) {
			const char *t = "unsupported protocol version (this side speaks 1)";
			send_msg(s, ERROR, (const uint8_t *)t, strlen(t), NULL, 0);
			fprintf(stderr, "pull: %s\n", t);
			goto fail_quiet;
		}
		switch (get16(b + 6)) {
		case FDS: {
			int count = plen >= 2 ? get16(p) : 0, off = 2;
			if (count < 1 || count > MAX_BATCH || count != ngot) {
				why = "FDS: the number of names differs from the fds attached";
				goto fail;
			}
			for (int i = 0; i < count; i++) {
				int l = off < plen ? p[off] : 0;
				if (off + 1 + l > plen || !valid_name(p + off + 1, l)) {
					why = "FDS: bad fd name";
					goto fail;
				}
				memcpy(names[base + i], p + off + 1, l);
				names[base + i][l] = 0;
				if (!seen_add(names[base + i], base + i == 0)) {
					why = "FDS: fd name sent twice";
					goto fail;
				}
				off += 1 + l;
			}
			if (off != plen) {
				why = "FDS: bytes after the names";
				goto fail;
			}
			break;
		}
		case DONE:
			if (ngot != 0 || plen != 4 || get32(p) != (uint32_t)n) {
				why = "DONE: the count differs from the fds received";
				goto fail;
			}
			ack(s, NULL, NULL);
			close(s);
			return n; /* zero fds is a valid handoff: a cold boot */
		case ERROR:
			fprintf(stderr, "pull: luoinit sent ERROR: %.*s\n", plen, (const char *)p);
			goto fail_quiet;
		default:
			why = "unexpected message";
			goto fail;
		}
	}
fail:
	ack(s, NULL, why);
	fprintf(stderr, "pull: %s\n", why);
fail_quiet:
	for (int i = 0; i < n; i++)
		close(fds[i]); /* luoinit keeps its copies */
	close(s);
	return -1;
}

int main(int argc, char **argv)
{
	static int fds[MAX_FILES];
	static char names[MAX_FILES][256];

	deadline = now_ms() + TIMEOUT_MS;
	if (argc >= 4 && strcmp(argv[1], "push") == 0) {
		int n = argc - 4;
		char **nv = argv + 4;
		if (n > MAX_FILES)
			return fprintf(stderr, "push: at most %d fds\n", MAX_FILES), 2;
		for (int i = 0; i < n; i++) {
			char *eq = strchr(nv[i], '=');
			if (!eq)
				return fprintf(stderr, "push: %s is not NAME=TEXT\n", nv[i]), 2;
			*eq = 0;
			/* A memfd LUO can keep: not MFD_HUGETLB. Its size is frozen
			 * once preserved, so make it as large as it must ever be. */
			fds[i] = memfd_create(nv[i], MFD_CLOEXEC);
			if (fds[i] < 0 || write(fds[i], eq + 1, strlen(eq + 1)) < 0)
				return perror("memfd"), 1;
		}
		if (push(argv[2], argv[3], nv, fds, n) < 0)
			return 1;
		printf("pushed %d fds\n", n);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "pull") == 0) {
		int n = pull(argv[2], fds, names);
		if (n < 0)
			return errno == ENOENT && !getenv("LUOINIT_HANDOFF_FD") ? 3 : 1;
		for (int i = 0; i < n; i++) {
			char text[4096];
			ssize_t l = pread(fds[i], text, sizeof text, 0);
			printf("%s=%.*s\n", names[i], l > 0 ? (int)l : 0, text);
		}
		return 0;
	}
	fprintf(stderr, "usage: %s push SOCKET WORKLOAD NAME=TEXT... | pull WORKLOAD\n", argv[0]);
	return 2;
}
