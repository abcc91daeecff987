/* The egress programs on the real kernel, with real sockets.
 *
 * The network rule (TESTING.md) holds by construction: before anything else
 * this process moves into a network namespace of its own, which has only
 * `lo` and no route out, and puts the addresses that play remote hosts on
 * that `lo` (10.1.2.3 a private host, 169.254.169.254 cloud metadata,
 * 198.51.100.7 a public host, two NAT64 forms). A packet whose block failed
 * can reach only our own listeners; the namespace dies with the process. It
 * also moves into a private mount namespace, so the bpffs egress_open()
 * mounts on /sys/fs/bpf (if none is there) is ours alone.
 *
 * Layout: a test parent cgroup under the v2 hierarchy with the programs
 * attached, children "a", "b", "c" with different policies and "none" with
 * none. A worker is a forked child that joins one of them and tries things;
 * the listeners stay in this (unconfined) process, and every check looks at
 * what they received, not only at the worker's errno.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include <bpf/bpf.h>

#include "bpf/egress.h"

#define POLICY_A 1 /* 198.51.100.7 tcp 80,8080 and udp 53, then the defaults */
#define POLICY_B 2 /* 10.1.2.3 tcp 5432, then the defaults */
#define POLICY_C 3 /* 198.51.100.7/32 tcp 5432 inside 198.51.100.0/24 tcp 80 */

#define TIMED_OUT 250 /* worker exit code: the call took too long */

static const char *const rules_a[] = {
	"allow 198.51.100.7/32 tcp 80,8080",
	"allow 198.51.100.7 udp 53",
};
static const char *const rules_b[] = { "allow 10.1.2.3/32 tcp 5432" };
static const char *const rules_c[] = {
	"allow 198.51.100.7/32 tcp 5432",
	"allow 198.51.100.0/24 tcp 80",
};

static struct {
	char parent[512], a[600], b[600], c[600], none[600];
	char pin_dir[256];
	uint64_t id_a, id_b, id_c, id_none;
	int tcp80, tcp5432, udp53, udp5353; /* listeners, dual-stack, non-blocking */
} T;

/* ---- small helpers ------------------------------------------------------ */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* addr "10.1.2.3" or "::1" or "::ffff:10.1.2.3" into a sockaddr. */
static socklen_t sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		return sizeof(*in4);
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1)
		abort();
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	return sizeof(*in6);
}

static int listener(int type, int port)
{
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int fd = socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), off = 0, on = 1;

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&any, sizeof(any)), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 64), 0);
	return fd;
}

/* Accepts whatever is queued; returns how many. local gets the last
 * connection's local address as text (which host the client reached). */
static int drain_tcp(int lfd, char *local, size_t len)
{
	struct sockaddr_in6 sa;
	socklen_t sl;
	int n = 0, fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		sl = sizeof(sa);
		if (local && getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
			inet_ntop(AF_INET6, &sa.sin6_addr, local, len);
		close(fd);
		n++;
	}
	return n;
}

static int drain_udp(int fd)
{
	char buf[64];
	int n = 0;

	usleep(20000);
	while (recv(fd, buf, sizeof(buf), 0) >= 0)
		n++;
	return n;
}

static int join_cgroup(const char *cg)
{
	char path[700];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = write(fd, "0\n", 2) == 2;
	close(fd);
	return ok ? 0 : -1;
}

/* ---- workers ------------------------------------------------------------ */

typedef int (*work_fn)(const void *arg, int in, int out);

struct worker {
	pid_t pid;
	int to_child, from_child;
};

/* Forks a worker into cgroup cg; fn's return value is its exit code. */
static struct worker start_worker(const char *cg, work_fn fn, const void *arg)
{
	int down[2], up[2];
	struct worker w;

	assert_int_equal(pipe2(down, O_CLOEXEC), 0);
	assert_int_equal(pipe2(up, O_CLOEXEC), 0);
	w.pid = fork();
	assert_true(w.pid >= 0);
	if (w.pid == 0) {
		alarm(20);
		close(down[1]);
		close(up[0]);
		if (join_cgroup(cg) < 0)
			_exit(201);
		_exit(fn(arg, down[0], up[1]) & 0xff);
	}
	close(down[0]);
	close(up[1]);
	w.to_child = down[1];
	w.from_child = up[0];
	return w;
}

static int finish_worker(struct worker w)
{
	int status;

	close(w.to_child);
	close(w.from_child);
	assert_int_equal(waitpid(w.pid, &status, 0), w.pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int run_in(const char *cg, work_fn fn, const void *arg)
{
	return finish_worker(start_worker(cg, fn, arg));
}

static void say(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		abort();
}

static char hear(int fd)
{
	char c = 0;

	return read(fd, &c, 1) == 1 ? c : 0;
}

/* What a worker tries. */
struct attempt {
	const char *addr;
	int port;
	int type;       /* SOCK_STREAM or SOCK_DGRAM */
	int how;        /* below */
};

enum { CONNECT, SENDTO, SENDMMSG, FASTOPEN };

/* 0 on success, else the errno; TIMED_OUT if the call took over a second
 * (a block must be an immediate EPERM, not a timeout). */
static int try_attempt(const void *arg, int in, int out)
{
	const struct attempt *a = arg;
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(a->addr, a->port, &ss);
	struct timeval tv = { .tv_sec = 3 };
	char payload[] = "hello";
	double t0;
	int fd, rc;

	fd = socket(ss.ss_family, a->type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	t0 = now_ms();
	if (a->how == CONNECT) {
		rc = connect(fd, (struct sockaddr *)&ss, sl);
	} else if (a->how == SENDTO) {
		rc = sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&ss, sl) < 0 ? -1 : 0;
	} else if (a->how == FASTOPEN) {
		rc = sendto(fd, payload, sizeof(payload), MSG_FASTOPEN, (struct sockaddr *)&ss, sl) <
		     0 ? -1 : 0;
	} else {
		struct iovec iov = { payload, sizeof(payload) };
		struct mmsghdr m[2] = {
			{ .msg_hdr = { .msg_name = &ss, .msg_namelen = sl, .msg_iov = &iov,
				       .msg_iovlen = 1 } },
			{ .msg_hdr = { .msg_name = &ss, .msg_namelen = sl, .msg_iov = &iov,
				       .msg_iovlen = 1 } },
		};

		rc = sendmmsg(fd, m, 2, 0);
		rc = rc == 2 ? 0 : -1;
	}
	rc = rc < 0 ? errno : 0;
	if (now_ms() - t0 > 1000)
		rc = TIMED_OUT;
	close(fd);
	return rc;
}

static int attempt_in(const char *cg, const char *addr, int port, int type, int how)
{
	struct attempt a = { addr, port, type, how };

	return run_in(cg, try_attempt, &a);
}

/* A refused TCP connect: EPERM at once, and nothing reached the listener. */
static void assert_connect_refused(const char *cg, const char *addr, int port, int lfd)
{
	int rc = attempt_in(cg, addr, port, SOCK_STREAM, CONNECT);

	if (rc != EPERM)
		fail_msg("connect to [%s]:%d from %s: got %d (%s), want EPERM", addr, port, cg, rc,
			 rc == TIMED_OUT ? "timed out" : strerror(rc));
	assert_int_equal(drain_tcp(lfd, NULL, 0), 0);
}

/* An allowed TCP connect: it succeeded and the listener has it, reached on
 * the address asked for (as IPv6 text, IPv4 mapped). */
static void assert_connect_allowed(const char *cg, const char *addr, int port, int lfd,
				   const char *local_want)
{
	char local[INET6_ADDRSTRLEN] = "";
	int rc = attempt_in(cg, addr, port, SOCK_STREAM, CONNECT);

	if (rc != 0)
		fail_msg("connect to [%s]:%d from %s: %s", addr, port, cg, strerror(rc));
	assert_int_equal(drain_tcp(lfd, local, sizeof(local)), 1);
	assert_string_equal(local, local_want);
}

/* ---- set-up ------------------------------------------------------------- */

static int private_namespaces(void)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0)
		return -1;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	/* Only lo, no route out: every address below lives on it. */
	return system("ip link set lo up && "
		      "ip addr add 10.1.2.3/32 dev lo && "
		      "ip addr add 169.254.169.254/32 dev lo && "
		      "ip addr add 198.51.100.7/32 dev lo && "
		      "ip -6 addr add 64:ff9b::a01:203/128 dev lo && "     /* NAT64 of 10.1.2.3 */
		      "ip -6 addr add 64:ff9b::c633:6407/128 dev lo && "   /* of 198.51.100.7 */
		      /* Let root make ping sockets here, so that only the program refuses. */
		      "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && "
		      "test \"$(ip route show default)\" = '' && "
		      "test \"$(ip -6 route show default)\" = ''");
}

static size_t policy_from(const char *const *text, size_t n, struct egress_rule *out, size_t max)
{
	const struct egress_rule *defaults;
	size_t n_out = 0, n_def;
	char err[256];

	for (size_t i = 0; i < n; i++) {
		int k = egress_parse_rule(text[i], out + n_out, max - n_out, err, sizeof(err));

		if (k < 0)
			fail_msg("%s: %s", text[i], err);
		n_out += (size_t)k;
	}
	defaults = egress_default_rules(&n_def);
	assert_true(n_out + n_def <= max);
	memcpy(out + n_out, defaults, n_def * sizeof(*out));
	return n_out + n_def;
}

static void install(uint32_t id, const char *const *text, size_t n)
{
	struct egress_rule rules[128];
	size_t n_rules = policy_from(text, n, rules, 128);
	char err[256] = "";

	if (egress_set_policy(id, rules, n_rules, err, sizeof(err)) < 0)
		fail_msg("egress_set_policy(%u): %s", id, err);
}

static void make_cgroup(char *path, size_t len, const char *parent, const char *name,
			uint64_t *id)
{
	snprintf(path, len, "%s/%s", parent, name);
	assert_int_equal(mkdir(path, 0755), 0);
	if (id)
		assert_int_equal(egress_cgroup_id(path, id), 0);
}

static int setup(void **state)
{
	char v2[256], err[512] = "";

	if (geteuid() != 0) {
		fprintf(stderr, "test_egress: needs root (BPF, cgroups, namespaces): skipped\n");
		exit(77);
	}
	if (private_namespaces() != 0) {
		fprintf(stderr, "test_egress: cannot make a private network namespace\n");
		return -1;
	}
	if (egress_cgroup2_mount(v2, sizeof(v2)) < 0) {
		fprintf(stderr, "test_egress: no cgroup v2 hierarchy\n");
		return -1;
	}
	snprintf(T.parent, sizeof(T.parent), "%s/sandcell-test-egress.%d", v2, (int)getpid());
	snprintf(T.pin_dir, sizeof(T.pin_dir), "/sys/fs/bpf/sandcell-test-egress-%d", (int)getpid());
	if (mkdir(T.parent, 0755) < 0)
		return -1;
	make_cgroup(T.a, sizeof(T.a), T.parent, "a", &T.id_a);
	make_cgroup(T.b, sizeof(T.b), T.parent, "b", &T.id_b);
	make_cgroup(T.c, sizeof(T.c), T.parent, "c", &T.id_c);
	make_cgroup(T.none, sizeof(T.none), T.parent, "none", &T.id_none);
	if (egress_open(T.parent, T.pin_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "test_egress: egress_open: %s\n", err);
		return -1;
	}
	install(POLICY_A, rules_a, 2);
	install(POLICY_B, rules_b, 1);
	install(POLICY_C, rules_c, 2);
	assert_int_equal(egress_assign(T.id_a, POLICY_A), 0);
	assert_int_equal(egress_assign(T.id_b, POLICY_B), 0);
	assert_int_equal(egress_assign(T.id_c, POLICY_C), 0);
	T.tcp80 = listener(SOCK_STREAM, 80);
	T.tcp5432 = listener(SOCK_STREAM, 5432);
	T.udp53 = listener(SOCK_DGRAM, 53);
	T.udp5353 = listener(SOCK_DGRAM, 5353);
	return 0;
}

/* A socket created in "a" once the programs are gone: proves the denials
 * came from them (and that detaching really detaches). */
static int create_tcp_socket(const void *arg, int in, int out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Kills whatever a failed test left running in the test cgroups (each
 * worker also has an alarm) and removes the cgroups. */
static int remove_cgroups(void)
{
	const char *dirs[] = { T.a, T.b, T.c, T.none, T.parent };
	char kill_path[600];
	int fd, left = 0;

	snprintf(kill_path, sizeof(kill_path), "%s/cgroup.kill", T.parent);
	fd = open(kill_path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			fprintf(stderr, "test_egress: %s: %s\n", kill_path, strerror(errno));
		close(fd);
	}
	for (int tries = 0; tries < 200; tries++) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		left = 0;
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
			if (rmdir(dirs[i]) < 0 && errno != ENOENT)
				left++;
		if (!left)
			return 0;
		usleep(10000);
	}
	fprintf(stderr, "test_egress: could not remove %s\n", T.parent);
	return -1;
}

static int teardown(void **state)
{
	struct stat sb;
	int rc = 0, status;
	pid_t pid;

	char err[256];

	/* A test that failed between egress_close() and egress_open() left the
	 * pins closed: adopt them, to detach them. */
	egress_open(T.parent, T.pin_dir, err, sizeof(err));
	egress_detach_and_unpin();
	if (stat(T.pin_dir, &sb) == 0 || errno != ENOENT) {
		fprintf(stderr, "test_egress: %s left behind\n", T.pin_dir);
		rc = -1;
	}
	/* With the programs detached, "none" may create sockets again. */
	pid = fork();
	if (pid == 0)
		_exit(join_cgroup(T.none) == 0 ? create_tcp_socket(NULL, -1, -1) : 201);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "test_egress: sockets still refused after detach\n");
		rc = -1;
	}
	if (remove_cgroups() < 0)
		rc = -1;
	return rc;
}

/* ---- tests: rules as text ----------------------------------------------- */

static void assert_parses_to(const char *text, const char *const *want, int n_want)
{
	struct egress_rule r[8];
	char err[256] = "", buf[128];
	int n = egress_parse_rule(text, r, 8, err, sizeof(err));

	if (n < 0)
		fail_msg("%s: %s", text, err);
	assert_int_equal(n, n_want);
	for (int i = 0; i < n; i++) {
		egress_rule_format(&r[i], buf, sizeof(buf));
		assert_string_equal(buf, want[i]);
	}
}

static void assert_parse_error(const char *text)
{
	struct egress_rule r[8];
	char err[256] = "";

	if (egress_parse_rule(text, r, 8, err, sizeof(err)) >= 0)
		fail_msg("accepted: %s", text);
	assert_true(err[0] != '\0');
}

static void test_parse_rules(void **state)
{
	struct egress_rule r[4];
	char err[64];

	assert_parses_to("allow 10.1.2.3/32 tcp 5432",
			 (const char *const[]){ "allow 10.1.2.3/32 tcp 5432" }, 1);
	assert_parses_to("  deny\t169.254.0.0/16 ",
			 (const char *const[]){ "deny 169.254.0.0/16 any" }, 1);
	assert_parses_to("allow ::/0 tcp 80,443",
			 (const char *const[]){ "allow ::/0 tcp 80", "allow ::/0 tcp 443" }, 2);
	assert_parses_to("allow 8.8.8.8 udp 53", (const char *const[]){ "allow 8.8.8.8/32 udp 53" }, 1);
	assert_parses_to("deny fe80::/10 tcp+udp 1000-2000",
			 (const char *const[]){ "deny fe80::/10 any 1000-2000" }, 1);
	/* IPv4 lives in the IPv6 space: /8 is /104 there. */
	assert_int_equal(egress_parse_rule("deny 10.0.0.0/8", r, 4, err, sizeof(err)), 1);
	assert_int_equal(r[0].prefixlen, 104);
	assert_int_equal(r[0].addr[10], 0xff);
	assert_int_equal(r[0].addr[12], 10);
	assert_int_equal(egress_parse_rule("allow ::ffff:10.0.0.0/104", r, 4, err, sizeof(err)), 1);
	assert_int_equal(r[0].prefixlen, 104);

	assert_parse_error("");
	assert_parse_error("allow");
	assert_parse_error("permit 10.0.0.0/8");
	assert_parse_error("allow 10.0.0.0/33");
	assert_parse_error("allow 10.1.2.3/8");        /* host bits set: a typo */
	assert_parse_error("allow 10.0.0.256");
	assert_parse_error("allow ::/0 icmp");
	assert_parse_error("allow ::/0 tcp 65536");
	assert_parse_error("allow ::/0 tcp 443-80");
	assert_parse_error("allow ::/0 tcp 80,");
	assert_parse_error("allow ::/0 tcp 80,,443");
	assert_parse_error("allow ::/0 tcp ,80");
	assert_parse_error("allow ::/0 tcp -80");
	assert_parse_error("allow ::/0 tcp 80-");
	assert_parse_error("allow ::/0 tcp 80 extra");
	assert_int_equal(egress_parse_rule("allow ::/0 tcp 1,2,3,4,5", r, 4, err, sizeof(err)), -1);
}

static void test_default_rules(void **state)
{
	size_t n;
	const struct egress_rule *d = egress_default_rules(&n);
	char buf[128];
	bool saw_metadata = false, saw_ula = false, saw_allow443 = false;

	assert_true(n > 20);
	for (size_t i = 0; i < n; i++) {
		egress_rule_format(&d[i], buf, sizeof(buf));
		saw_metadata |= strcmp(buf, "deny 169.254.0.0/16 any") == 0;
		saw_ula |= strcmp(buf, "deny fc00::/7 any") == 0;
		saw_allow443 |= strcmp(buf, "allow 2000::/3 tcp 443") == 0;
	}
	assert_true(saw_metadata && saw_ula && saw_allow443);
}

/* ---- tests: the kernel -------------------------------------------------- */

static void test_check_reports_support(void **state)
{
	char report[1024];

	if (egress_check(report, sizeof(report)) != 0)
		fail_msg("egress_check:\n%s", report);
	assert_non_null(strstr(report, "attach"));
}

static void test_allowed_connect(void **state)
{
	assert_connect_allowed(T.a, "198.51.100.7", 80, T.tcp80, "::ffff:198.51.100.7");
	/* NAT64 of an allowed IPv4: judged as that IPv4. */
	assert_connect_allowed(T.a, "64:ff9b::c633:6407", 80, T.tcp80, "64:ff9b::c633:6407");
	/* A /32 rule for one port does not hide its /24's rule for another. */
	assert_connect_allowed(T.c, "198.51.100.7", 80, T.tcp80, "::ffff:198.51.100.7");
	assert_connect_allowed(T.c, "198.51.100.7", 5432, T.tcp5432, "::ffff:198.51.100.7");
}

static void test_denied_connects(void **state)
{
	assert_connect_refused(T.a, "198.51.100.7", 5432, T.tcp5432); /* port not allowed */
	assert_connect_refused(T.a, "10.1.2.3", 80, T.tcp80);
	assert_connect_refused(T.a, "169.254.169.254", 80, T.tcp80);
	assert_connect_refused(T.a, "127.0.0.1", 80, T.tcp80);
	assert_connect_refused(T.a, "0.0.0.0", 80, T.tcp80);
	assert_connect_refused(T.a, "::1", 80, T.tcp80);
	assert_connect_refused(T.a, "::", 80, T.tcp80);
	assert_connect_refused(T.a, "::ffff:10.1.2.3", 80, T.tcp80);
	assert_connect_refused(T.a, "::ffff:127.0.0.1", 80, T.tcp80);
	assert_connect_refused(T.a, "64:ff9b::a01:203", 80, T.tcp80); /* NAT64 of 10.1.2.3 */
	/* "c" has no defaults' allow: a public-looking address outside its rules. */
	assert_connect_refused(T.c, "169.254.169.254", 80, T.tcp80);
}

static void test_udp(void **state)
{
	/* Allowed first, so that the listeners are shown to hear. */
	assert_int_equal(attempt_in(T.a, "198.51.100.7", 53, SOCK_DGRAM, SENDTO), 0);
	assert_int_equal(drain_udp(T.udp53), 1);
	assert_int_equal(attempt_in(T.a, "198.51.100.7", 53, SOCK_DGRAM, SENDMMSG), 0);
	assert_int_equal(drain_udp(T.udp53), 2);

	assert_int_equal(attempt_in(T.a, "10.1.2.3", 5353, SOCK_DGRAM, SENDTO), EPERM);
	assert_int_equal(attempt_in(T.a, "10.1.2.3", 5353, SOCK_DGRAM, SENDMMSG), EPERM);
	assert_int_equal(attempt_in(T.a, "::ffff:10.1.2.3", 5353, SOCK_DGRAM, SENDTO), EPERM);
	assert_int_equal(attempt_in(T.a, "::1", 5353, SOCK_DGRAM, SENDMMSG), EPERM);
	assert_int_equal(attempt_in(T.a, "10.1.2.3", 53, SOCK_DGRAM, CONNECT), EPERM);
	assert_int_equal(attempt_in(T.a, "198.51.100.7", 5353, SOCK_DGRAM, SENDTO), EPERM);
	assert_int_equal(drain_udp(T.udp5353), 0);
	assert_int_equal(drain_udp(T.udp53), 0);
}

/* TCP fast open carries data in the SYN and connects from sendto(): the
 * kernel runs the connect4/6 hook for it as well (tcp_sendmsg_fastopen ->
 * __inet_stream_connect -> pre_connect), so it is refused with EPERM before
 * any SYN, like connect(). */
static void test_fastopen(void **state)
{
	char local[INET6_ADDRSTRLEN] = "";

	assert_int_equal(attempt_in(T.a, "198.51.100.7", 80, SOCK_STREAM, FASTOPEN), 0);
	assert_int_equal(drain_tcp(T.tcp80, local, sizeof(local)), 1);
	assert_int_equal(attempt_in(T.a, "10.1.2.3", 80, SOCK_STREAM, FASTOPEN), EPERM);
	assert_int_equal(attempt_in(T.a, "::ffff:169.254.169.254", 80, SOCK_STREAM, FASTOPEN), EPERM);
	assert_int_equal(drain_tcp(T.tcp80, NULL, 0), 0);
}

static int try_bind(const void *arg, int in, int out)
{
	const struct attempt *a = arg;
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(a->addr, a->port, &ss);
	int fd = socket(ss.ss_family, a->type | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return 100;
	rc = bind(fd, (struct sockaddr *)&ss, sl) < 0 ? errno : 0;
	close(fd);
	return rc;
}

static void test_bind(void **state)
{
	struct attempt port0 = { "0.0.0.0", 0, SOCK_DGRAM, 0 };
	struct attempt port0_v6 = { "::", 0, SOCK_STREAM, 0 };
	struct attempt tcp = { "0.0.0.0", 8080, SOCK_STREAM, 0 };
	struct attempt tcp6 = { "::", 8080, SOCK_STREAM, 0 };
	struct attempt udp = { "127.0.0.1", 9999, SOCK_DGRAM, 0 };

	assert_int_equal(run_in(T.a, try_bind, &port0), 0);
	assert_int_equal(run_in(T.a, try_bind, &port0_v6), 0);
	assert_int_equal(run_in(T.a, try_bind, &tcp), EPERM);
	assert_int_equal(run_in(T.a, try_bind, &tcp6), EPERM);
	assert_int_equal(run_in(T.a, try_bind, &udp), EPERM);
}

/* listen() on an unbound socket takes an ephemeral port without any bind
 * hook; the ingress program must keep everyone from connecting to it. */
static int listen_unbound(const void *arg, int in, int out)
{
	struct sockaddr_in6 sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint16_t port;

	if (fd < 0 || listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return 100;
	port = ntohs(sa.sin6_port);
	if (write(out, &port, sizeof(port)) != sizeof(port))
		return 101;
	hear(in); /* the parent has tried to connect */
	if (accept(fd, NULL, NULL) >= 0)
		return 102; /* someone got in */
	return errno == EAGAIN ? 0 : 103;
}

static void test_listen_unreachable(void **state)
{
	struct worker w = start_worker(T.a, listen_unbound, NULL);
	struct sockaddr_storage src, dst;
	socklen_t src_len, dst_len, el;
	struct pollfd pfd;
	uint16_t port = 0;
	int fd, err = 0, on = 1;

	assert_int_equal(read(w.from_child, &port, sizeof(port)), sizeof(port));
	assert_true(port != 0);
	/* The client's source is one policy "a" allows (198.51.100.7 tcp 8080),
	 * so the listener's SYN-ACK would pass the egress backstop: only the
	 * ingress program stands between the client and the sandbox. */
	src_len = sockaddr_of("198.51.100.7", 8080, &src);
	dst_len = sockaddr_of("198.51.100.7", port, &dst);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&src, src_len), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&dst, dst_len), -1);
	assert_int_equal(errno, EINPROGRESS);
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	poll(&pfd, 1, 600);
	el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	/* Not connected: still waiting (SYN dropped) or refused. */
	assert_false(pfd.revents & POLLOUT && err == 0);
	close(fd);
	say(w.to_child, 'x');
	assert_int_equal(finish_worker(w), 0);
}

static int try_socket(const void *arg, int in, int out)
{
	const int *spec = arg;
	int fd = socket(spec[0], spec[1] | SOCK_CLOEXEC, spec[2]);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int socket_in(const char *cg, int family, int type, int protocol)
{
	int spec[3] = { family, type, protocol };

	return run_in(cg, try_socket, spec);
}

static void test_socket_kinds(void **state)
{
	/* The worker is root with CAP_NET_RAW: only the program refuses. */
	assert_int_equal(socket_in(T.a, AF_INET, SOCK_STREAM, 0), 0);
	assert_int_equal(socket_in(T.a, AF_INET6, SOCK_DGRAM, 0), 0);
	assert_int_equal(socket_in(T.a, AF_INET6, SOCK_STREAM, IPPROTO_TCP), 0);
	assert_int_equal(socket_in(T.a, AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
	assert_int_equal(socket_in(T.a, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6), EPERM);
	assert_int_equal(socket_in(T.a, AF_INET, SOCK_RAW, IPPROTO_RAW), EPERM);
	assert_int_equal(socket_in(T.a, AF_INET, SOCK_DGRAM, IPPROTO_ICMP), EPERM); /* ping */
	assert_int_equal(socket_in(T.a, AF_INET, SOCK_STREAM, IPPROTO_MPTCP), EPERM);
	assert_int_equal(socket_in(T.a, AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE), EPERM);
	/* sock_create sees inet sockets only: packet (and unix, netlink) sockets
	 * are the seccomp policy's to refuse. Pinned here so that a kernel that
	 * starts to show them to the program is noticed. */
	assert_int_equal(socket_in(T.a, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)), 0);
}

static void test_no_policy_denies_everything(void **state)
{
	assert_int_equal(socket_in(T.none, AF_INET, SOCK_STREAM, 0), EPERM);
	assert_int_equal(socket_in(T.none, AF_INET, SOCK_DGRAM, 0), EPERM);
	assert_int_equal(socket_in(T.none, AF_INET6, SOCK_STREAM, 0), EPERM);
	assert_int_equal(socket_in(T.none, AF_INET6, SOCK_DGRAM, 0), EPERM);
	/* The parent itself is below the programs too, and has no policy. */
	assert_int_equal(socket_in(T.parent, AF_INET, SOCK_STREAM, 0), EPERM);
}

/* Both at once, each with its own policy: neither sees the other's. */
static int connect_pair(const void *arg, int in, int out)
{
	const struct attempt *a = arg; /* [0] must succeed, [1] must be EPERM */
	int first, second;

	if (hear(in) != 'g')
		return 100;
	first = try_attempt(&a[0], in, out);
	second = try_attempt(&a[1], in, out);
	return first == 0 && second == EPERM ? 0 : 110;
}

static void test_two_policies_at_once(void **state)
{
	struct attempt for_a[2] = { { "198.51.100.7", 80, SOCK_STREAM, CONNECT },
				    { "10.1.2.3", 5432, SOCK_STREAM, CONNECT } };
	struct attempt for_b[2] = { { "10.1.2.3", 5432, SOCK_STREAM, CONNECT },
				    { "198.51.100.7", 80, SOCK_STREAM, CONNECT } };
	struct worker wa = start_worker(T.a, connect_pair, for_a);
	struct worker wb = start_worker(T.b, connect_pair, for_b);
	char local[INET6_ADDRSTRLEN];

	say(wa.to_child, 'g');
	say(wb.to_child, 'g');
	assert_int_equal(finish_worker(wa), 0);
	assert_int_equal(finish_worker(wb), 0);
	assert_int_equal(drain_tcp(T.tcp80, local, sizeof(local)), 1);
	assert_string_equal(local, "::ffff:198.51.100.7");
	assert_int_equal(drain_tcp(T.tcp5432, local, sizeof(local)), 1);
	assert_string_equal(local, "::ffff:10.1.2.3");
}

/* The backstop: a connection made while allowed carries no more data once
 * the policy is gone (cgroup_skb/egress drops it). Also the way a policy
 * change under a running sandbox takes effect. */
static int connect_then_send(const void *arg, int in, int out)
{
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of("198.51.100.7", 80, &ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0)
		return 100;
	say(out, 'c');
	if (hear(in) != 's')
		return 101;
	if (send(fd, "after", 5, MSG_NOSIGNAL) != 5) /* queued; the drop is silent */
		return 102;
	say(out, 'd');
	hear(in);
	close(fd);
	return 0;
}

static void test_backstop_drops_after_unassign(void **state)
{
	struct worker w = start_worker(T.a, connect_then_send, NULL);
	struct pollfd pfd;
	char buf[16];
	int conn;

	assert_int_equal(hear(w.from_child), 'c');
	usleep(20000);
	conn = accept4(T.tcp80, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(conn >= 0);
	assert_int_equal(egress_unassign(T.id_a), 0);
	say(w.to_child, 's');
	assert_int_equal(hear(w.from_child), 'd');
	pfd = (struct pollfd){ .fd = conn, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 400), 0); /* nothing arrives */
	assert_int_equal(recv(conn, buf, sizeof(buf), 0), -1);
	assert_int_equal(errno, EAGAIN);
	/* Given back, the retransmission gets through: the drop was the policy. */
	assert_int_equal(egress_assign(T.id_a, POLICY_A), 0);
	assert_true(poll(&pfd, 1, 5000) == 1);
	assert_int_equal(recv(conn, buf, sizeof(buf), 0), 5);
	say(w.to_child, 'q');
	close(conn);
	assert_int_equal(finish_worker(w), 0);
}

/* ---- visibility --------------------------------------------------------- */

struct seen {
	int connect4_private, connect6_mapped, sendmsg4, bind4, sock_create_none, skb_egress;
	int n;
};

static bool addr_is(const uint8_t a[16], const char *text)
{
	struct in6_addr want;

	inet_pton(AF_INET6, text, &want);
	return memcmp(a, &want, 16) == 0;
}

static void note_event(const struct egress_event *ev, void *ctx)
{
	struct seen *s = ctx;

	s->n++;
	if (ev->cgroup_id == T.id_a && ev->hook == EGRESS_HOOK_CONNECT4 &&
	    addr_is(ev->addr, "::ffff:10.1.2.3") && ev->port == 80 && ev->protocol == IPPROTO_TCP)
		s->connect4_private = (int)ev->count;
	if (ev->cgroup_id == T.id_a && ev->hook == EGRESS_HOOK_CONNECT6 &&
	    addr_is(ev->addr, "::ffff:10.1.2.3") && ev->port == 80)
		s->connect6_mapped = (int)ev->count;
	if (ev->cgroup_id == T.id_a && ev->hook == EGRESS_HOOK_SENDMSG4 &&
	    addr_is(ev->addr, "::ffff:10.1.2.3") && ev->port == 5353 && ev->protocol == IPPROTO_UDP)
		s->sendmsg4 = (int)ev->count;
	if (ev->cgroup_id == T.id_a && ev->hook == EGRESS_HOOK_BIND4 && ev->port == 8080)
		s->bind4 = (int)ev->count;
	if (ev->cgroup_id == T.id_none && ev->hook == EGRESS_HOOK_SOCK_CREATE &&
	    ev->family == AF_INET6 && ev->type == SOCK_DGRAM)
		s->sock_create_none = (int)ev->count;
	if (ev->cgroup_id == T.id_a && ev->hook == EGRESS_HOOK_SKB_EGRESS &&
	    addr_is(ev->addr, "::ffff:198.51.100.7") && ev->port == 80)
		s->skb_egress = (int)ev->count;
}

static void test_events_and_counters(void **state)
{
	struct seen ring = { 0 }, counted = { 0 };
	int n;

	/* Two more of one kind: counters count every attempt. */
	assert_connect_refused(T.a, "10.1.2.3", 80, T.tcp80);
	assert_connect_refused(T.a, "10.1.2.3", 80, T.tcp80);
	while ((n = egress_poll_events(100, note_event, &ring)) > 0)
		;
	assert_true(n == 0);
	assert_true(ring.connect4_private >= 1);
	assert_true(ring.connect6_mapped >= 1);
	assert_true(ring.sendmsg4 >= 1);
	assert_true(ring.bind4 >= 1);
	assert_true(ring.sock_create_none >= 1);
	assert_true(ring.skb_egress >= 1);

	assert_true(egress_blocked(0, note_event, &counted) > 0);
	/* test_denied_connects, test_events_and_counters twice (and
	 * test_backstop... not this key): exactly 3 connect4 to 10.1.2.3:80, +1
	 * from the fast-open test (also connect4). */
	assert_int_equal(counted.connect4_private, 4);
	/* Only "none"'s own counters when asked for "none". */
	memset(&counted, 0, sizeof(counted));
	assert_true(egress_blocked(T.id_none, note_event, &counted) > 0);
	assert_int_equal(counted.connect4_private, 0);
	assert_true(counted.sock_create_none >= 1);
}

/* A slot's cgroup serves run after run: once forgotten, its attempts count
 * from 1 again (an event at 1), and other cgroups keep theirs. */
static void test_forget_blocked(void **state)
{
	struct seen ring = { 0 }, counted = { 0 };

	assert_true(egress_forget_blocked(T.id_none) > 0);
	assert_int_equal(egress_blocked(T.id_none, note_event, &counted), 0);
	assert_int_equal(egress_forget_blocked(T.id_none), 0);
	assert_true(egress_blocked(T.id_a, note_event, &counted) > 0);
	assert_int_equal(counted.connect4_private, 4);

	while (egress_poll_events(0, note_event, &ring) > 0)
		;
	memset(&ring, 0, sizeof(ring));
	assert_int_equal(socket_in(T.none, AF_INET6, SOCK_DGRAM, 0), EPERM);
	while (egress_poll_events(100, note_event, &ring) > 0)
		;
	assert_int_equal(ring.sock_create_none, 1);
	memset(&counted, 0, sizeof(counted));
	assert_true(egress_blocked(T.id_none, note_event, &counted) > 0);
	assert_int_equal(counted.sock_create_none, 1);
}

/* ---- restart ------------------------------------------------------------ */

static int n_assigned;

static void count_assigned(uint64_t cgroup_id, uint32_t policy_id, void *ctx)
{
	if ((cgroup_id == T.id_a && policy_id == POLICY_A) ||
	    (cgroup_id == T.id_b && policy_id == POLICY_B) ||
	    (cgroup_id == T.id_c && policy_id == POLICY_C))
		n_assigned++;
}

static uint32_t pinned_link_prog_id(const char *name)
{
	char path[512];
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	int fd;

	snprintf(path, sizeof(path), "%s/link_%s", T.pin_dir, name);
	fd = bpf_obj_get(path);
	assert_true(fd >= 0);
	memset(&info, 0, sizeof(info));
	assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
	close(fd);
	return info.prog_id;
}

static void test_pins_survive_restart(void **state)
{
	char err[512] = "";
	uint32_t prog_before = pinned_link_prog_id("egress_connect4");

	/* The daemon is gone: the pins alone enforce. */
	egress_close();
	assert_connect_refused(T.a, "10.1.2.3", 80, T.tcp80);
	assert_connect_allowed(T.a, "198.51.100.7", 80, T.tcp80, "::ffff:198.51.100.7");
	assert_int_equal(socket_in(T.none, AF_INET, SOCK_STREAM, 0), EPERM);

	/* A new daemon adopts them: same maps and contents, new programs. */
	if (egress_open(T.parent, T.pin_dir, err, sizeof(err)) < 0)
		fail_msg("egress_open again: %s", err);
	assert_true(pinned_link_prog_id("egress_connect4") != prog_before);
	n_assigned = 0;
	assert_int_equal(egress_for_each_assigned(count_assigned, NULL), 3);
	assert_int_equal(n_assigned, 3);
	assert_connect_refused(T.a, "10.1.2.3", 80, T.tcp80);
	assert_connect_allowed(T.a, "198.51.100.7", 80, T.tcp80, "::ffff:198.51.100.7");
	assert_connect_allowed(T.b, "10.1.2.3", 5432, T.tcp5432, "::ffff:10.1.2.3");

	/* A second open while open is refused, not stacked. */
	assert_int_equal(egress_open(T.parent, T.pin_dir, err, sizeof(err)), -1);
}

/* A failed start leaves no pin of its own (a first start: nothing at all), and
 * keeps the pins an earlier sandcelld left, which still enforce. */
static void test_failed_open_leaves_no_pins(void **state)
{
	char err[512] = "", fresh[300], missing[600], link[300];

	snprintf(fresh, sizeof(fresh), "%s-fresh", T.pin_dir);
	snprintf(missing, sizeof(missing), "%s/no-such-cgroup", T.parent);
	snprintf(link, sizeof(link), "%s/link_egress_connect4", T.pin_dir);
	egress_close();

	/* the maps are pinned when the programs load, before the attach fails */
	assert_int_equal(egress_open(missing, fresh, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no-such-cgroup"));
	assert_int_equal(access(fresh, F_OK), -1);

	assert_int_equal(egress_open(missing, T.pin_dir, err, sizeof(err)), -1);
	assert_int_equal(access(link, F_OK), 0);
	assert_connect_refused(T.a, "10.1.2.3", 80, T.tcp80);
	assert_connect_allowed(T.a, "198.51.100.7", 80, T.tcp80, "::ffff:198.51.100.7");

	if (egress_open(T.parent, T.pin_dir, err, sizeof(err)) < 0)
		fail_msg("egress_open again: %s", err);
}

static void test_replace_and_delete_policy(void **state)
{
	static const char *const only_5432[] = { "allow 198.51.100.7/32 tcp 5432" };
	struct egress_rule r[4];
	char err[256];

	/* Replacing policy C drops its /24 prefix: port 80 is gone. */
	assert_int_equal(egress_parse_rule(only_5432[0], r, 4, err, sizeof(err)), 1);
	assert_int_equal(egress_set_policy(POLICY_C, r, 1, err, sizeof(err)), 0);
	assert_connect_refused(T.c, "198.51.100.7", 80, T.tcp80);
	assert_connect_allowed(T.c, "198.51.100.7", 5432, T.tcp5432, "::ffff:198.51.100.7");
	assert_int_equal(egress_delete_policy(POLICY_C), 0);
	assert_connect_refused(T.c, "198.51.100.7", 5432, T.tcp5432);
	/* Policy A untouched. */
	assert_connect_allowed(T.a, "198.51.100.7", 80, T.tcp80, "::ffff:198.51.100.7");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_rules),
		cmocka_unit_test(test_default_rules),
		cmocka_unit_test(test_check_reports_support),
		cmocka_unit_test(test_allowed_connect),
		cmocka_unit_test(test_denied_connects),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_fastopen),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_listen_unreachable),
		cmocka_unit_test(test_socket_kinds),
		cmocka_unit_test(test_no_policy_denies_everything),
		cmocka_unit_test(test_two_policies_at_once),
		cmocka_unit_test(test_backstop_drops_after_unassign),
		cmocka_unit_test(test_events_and_counters),
		cmocka_unit_test(test_forget_blocked),
		cmocka_unit_test(test_pins_survive_restart),
		cmocka_unit_test(test_failed_open_leaves_no_pins),
		cmocka_unit_test(test_replace_and_delete_policy),
	};

	return cmocka_run_group_tests_name("egress", tests, setup, teardown);
}
