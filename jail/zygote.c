/* The zygotes, seen from sandcelld; see zygote.h.
 *
 * One thread (the keeper) starts every zygote and waits on their pidfds: when
 * one dies (killed, out of memory, a bug) it is reaped and started again after
 * a pause that doubles with each failure in a row (jail/backoff.h).
 * Meanwhile sandboxes are started cold (jail/spawn.c): the same jail, only
 * slower. A zygote that does not answer is killed, and the sandbox it was
 * asked for starts cold with fresh pipes: a child of the zygote may exist with
 * the old ones, in the sandbox's cgroup, whose teardown then kills it. The keeper is also the
 * thread the zygotes' children die with (PR_SET_PDEATHSIG counts the thread
 * that made the zygote), and it lives as long as the executor.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jail/backoff.h"
#include "jail/zygote.h"

#define READY_TIMEOUT_MS 30000 /* imports under qemu without KVM take seconds */
#define REPLY_TIMEOUT_MS 5000

struct zygote {
	struct zygote_setup setup;
	pthread_mutex_t lock;     /* one request at a time; guards what follows */
	int sock;                 /* -1: not running */
	int pidfd;                /* -1: nothing to reap */
	pid_t pid;
	unsigned long forks;
	struct backoff retry;     /* after failures in a row */
};

static struct {
	pthread_t thread;
	bool started;
	int wake[2];
	struct zygote **zs;
	size_t n;
	pthread_mutex_t lock;
	pthread_cond_t started_all;  /* each zygote was tried once */
	bool tried_all;
} keeper = { .wake = { -1, -1 }, .lock = PTHREAD_MUTEX_INITIALIZER,
	     .started_all = PTHREAD_COND_INITIALIZER };

struct zygote *zygote_new(const struct zygote_setup *setup)
{
	struct zygote *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->setup = *setup;
	pthread_mutex_init(&z->lock, NULL);
	z->sock = -1;
	z->pidfd = -1;
	return z;
}

/* ---- the child that becomes a zygote (async-signal-safe: we are threaded) ------ */

static _Noreturn void report_start_failure(int sock, const char *what)
{
	struct zygote_ready r = { .err = errno ? errno : EINVAL };
	size_t n = strlen(what);
	if (n >= sizeof(r.message))
		n = sizeof(r.message) - 1;
	memcpy(r.message, what, n);
	fds_send(sock, &r, sizeof(r), NULL, 0);
	_exit(127);
}

/* 0 and 1 /dev/null, 2 the daemon's stderr (its log), the socket at
 * ZYGOTE_FD, its own binary next until exec, then sandcelld's for the
 * children's inits; nothing else. */
#define ZYGOTE_EXE_FD (ZYGOTE_FD + 1)
static int arrange_zygote_fds(int sock, int exe, int init)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int s = fcntl(sock, F_DUPFD_CLOEXEC, 10), e = fcntl(exe, F_DUPFD_CLOEXEC, 10);
	int i = fcntl(init, F_DUPFD_CLOEXEC, 10);
	if (null < 0 || s < 0 || e < 0 || i < 0 || dup3(null, 0, 0) != 0 || dup3(null, 1, 0) != 1 ||
	    dup3(s, ZYGOTE_FD, 0) != ZYGOTE_FD || dup3(e, ZYGOTE_EXE_FD, O_CLOEXEC) != ZYGOTE_EXE_FD ||
	    dup3(i, ZYGOTE_INIT_FD, 0) != ZYGOTE_INIT_FD)
		return -1;
	return syscall(SYS_close_range, ZYGOTE_INIT_FD + 1, ~0U, 0) == 0 ? 0 : -1;
}

static _Noreturn void zygote_child(const struct zygote_setup *s, int sock)
{
	const char *what = "reset signals";
	char *argv[] = { ZYGOTE_NAME, (char *)s->program, (char *)s->binary, NULL };

	if (enter_reset_signals() != 0)
		report_start_failure(sock, what);
	/* the zygote, and so every sandbox it makes, dies with the keeper */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		report_start_failure(sock, "set the parent-death signal");
	umask(022);
	if (mount_plan_apply_root(s->mounts, &what) != 0 || mount_scratch_tmp(&what) != 0)
		report_start_failure(sock, what);
	if (arrange_zygote_fds(sock, s->exe_fd, s->init_fd) != 0)
		report_start_failure(sock, "arrange descriptors");
	syscall(SYS_execveat, ZYGOTE_EXE_FD, "", argv, s->envp, AT_EMPTY_PATH);
	report_start_failure(ZYGOTE_FD, "exec " ZYGOTE_NAME);
}

/* ---- starting and stopping one ---------------------------------------------------- */

static int send_hello(const struct zygote *z, int sock)
{
	struct zygote_hello *h = calloc(1, sizeof(*h));
	const struct zygote_setup *s = &z->setup;
	if (!h || s->n_limits > ZYGOTE_MAX_LIMITS || s->seccomp->len > ZYGOTE_MAX_FILTER) {
		free(h);
		errno = EINVAL;
		return -1;
	}
	h->n_limits = (uint32_t)s->n_limits;
	memcpy(h->limits, s->limits, s->n_limits * sizeof(*s->limits));
	snprintf(h->tmp_options, sizeof(h->tmp_options), "%s", s->mounts->tmp_options);
	snprintf(h->preload, sizeof(h->preload), "%s", s->preload ? s->preload : "");
	h->n_filter = s->seccomp->len;
	memcpy(h->filter, s->seccomp->filter, s->seccomp->len * sizeof(*h->filter));
	int rc = fds_send(sock, h, sizeof(*h), NULL, 0);
	free(h);
	return rc;
}

static int await_ready(int sock, char *err, size_t errlen)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	struct zygote_ready r;
	size_t n;
	int fd;

	if (poll(&p, 1, READY_TIMEOUT_MS) != 1) {
		snprintf(err, errlen, "not ready within %d ms", READY_TIMEOUT_MS);
		return -1;
	}
	ssize_t got = fds_recv(sock, &r, sizeof(r), &fd, &n, 0);
	if (got != (ssize_t)sizeof(r)) {
		snprintf(err, errlen, "exited while starting");
		return -1;
	}
	r.message[sizeof(r.message) - 1] = '\0';
	if (r.err != 0) {
		snprintf(err, errlen, "%s: %s", r.message, strerror(r.err));
		return -1;
	}
	return 0;
}

static void reap(int pidfd)
{
	siginfo_t info;
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	waitid(P_PIDFD, pidfd, &info, WEXITED);
	close(pidfd);
}

static int start_one(struct zygote *z, char *err, size_t errlen)
{
	int sv[2], pidfd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	/* its own empty network namespace: a zygote never needs the network */
	struct clone_args args = {
		.flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	pid_t pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		zygote_child(&z->setup, sv[1]);
	close(sv[1]);
	if (pid < 0) {
		snprintf(err, errlen, "clone3: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	if (send_hello(z, sv[0]) != 0) {
		snprintf(err, errlen, "setup message: %s", strerror(errno));
		close(sv[0]);
		reap(pidfd);
		return -1;
	}
	if (await_ready(sv[0], err, errlen) != 0) {
		close(sv[0]);
		reap(pidfd);
		return -1;
	}
	pthread_mutex_lock(&z->lock);
	z->sock = sv[0];
	z->pid = pid;
	z->pidfd = pidfd;
	pthread_mutex_unlock(&z->lock);
	return 0;
}

/* Called locked: the zygote is no longer asked; the keeper reaps it. */
static void mark_gone(struct zygote *z)
{
	if (z->sock >= 0)
		close(z->sock);
	z->sock = -1;
	if (z->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0);
}

/* ---- the keeper ------------------------------------------------------------------- */

static void note_failure(struct zygote *z, const char *what, const char *err)
{
	long long pause = backoff_failed(&z->retry);
	fprintf(stderr, "level=warn msg=\"zygote %s; sandboxes start cold meanwhile\" language=\"%s\" "
		"failures=%u retry_in_ms=%lld error=\"%s\"\n", what, z->setup.name, z->retry.failures, pause, err);
}

/* A zygote whose pidfd is readable has exited: reap it, plan a restart. */
static void reap_if_exited(struct zygote *z, const struct pollfd *p)
{
	if (!(p->revents & (POLLIN | POLLHUP)))
		return;
	pthread_mutex_lock(&z->lock);
	mark_gone(z);
	siginfo_t info = { 0 };
	waitid(P_PIDFD, z->pidfd, &info, WEXITED);
	close(z->pidfd);
	z->pidfd = -1;
	pthread_mutex_unlock(&z->lock);
	char why[64];
	snprintf(why, sizeof(why), "%s %d", info.si_code == CLD_EXITED ? "exit status" : "signal",
		 info.si_status);
	note_failure(z, "exited", why);
}

static void start_if_due(struct zygote *z, long long now)
{
	char err[600];
	if (z->pidfd >= 0 || z->retry.retry_at > now)
		return;
	if (start_one(z, err, sizeof(err)) != 0) {
		note_failure(z, "could not start", err);
		return;
	}
	if (z->retry.failures)
		fprintf(stderr, "level=info msg=\"zygote running again\" language=\"%s\"\n", z->setup.name);
	backoff_reset(&z->retry);
}

static void *keeper_main(void *arg)
{
	(void)arg;
	struct pollfd *p = calloc(keeper.n + 1, sizeof(*p));
	if (!p)
		return NULL;
	for (;;) {
		long long now = monotonic_ms(), timeout = -1;
		for (size_t i = 0; i < keeper.n; i++)
			start_if_due(keeper.zs[i], now);
		pthread_mutex_lock(&keeper.lock);
		keeper.tried_all = true;
		pthread_cond_broadcast(&keeper.started_all);
		pthread_mutex_unlock(&keeper.lock);
		p[0] = (struct pollfd){ .fd = keeper.wake[0], .events = POLLIN };
		for (size_t i = 0; i < keeper.n; i++) {
			struct zygote *z = keeper.zs[i];
			p[i + 1] = (struct pollfd){ .fd = z->pidfd, .events = POLLIN };
			if (z->pidfd < 0 && (timeout < 0 || z->retry.retry_at - now < timeout))
				timeout = z->retry.retry_at > now ? z->retry.retry_at - now : 0;
		}
		if (poll(p, keeper.n + 1, (int)timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		for (size_t i = 0; i < keeper.n; i++)
			if (p[i + 1].fd >= 0)
				reap_if_exited(keeper.zs[i], &p[i + 1]);
	}
	free(p);
	return NULL;
}

int zygotes_start(struct zygote *const *zs, size_t n, char *err, size_t errlen)
{
	keeper.zs = calloc(n ? n : 1, sizeof(*keeper.zs));
	if (!keeper.zs || pipe2(keeper.wake, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "starting the zygotes: %s", strerror(errno));
		free(keeper.zs);
		keeper.zs = NULL;
		return -1;
	}
	memcpy(keeper.zs, zs, n * sizeof(*zs));
	keeper.n = n;
	int rc = pthread_create(&keeper.thread, NULL, keeper_main, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "starting the zygotes' thread: %s", strerror(rc));
		return -1;
	}
	keeper.started = true;
	/* serve once they run: a Python sandbox from a zygote is cheaper than
	 * one started cold while the zygote competes for the CPU */
	pthread_mutex_lock(&keeper.lock);
	while (!keeper.tried_all)
		pthread_cond_wait(&keeper.started_all, &keeper.lock);
	pthread_mutex_unlock(&keeper.lock);
	return 0;
}

void zygotes_stop(void)
{
	if (keeper.started) {
		(void)!write(keeper.wake[1], "x", 1);
		pthread_join(keeper.thread, NULL);
		keeper.started = false;
	}
	keeper.tried_all = false;
	for (size_t i = 0; i < keeper.n; i++) {
		struct zygote *z = keeper.zs[i];
		if (z->sock >= 0)
			close(z->sock);
		if (z->pidfd >= 0)
			reap(z->pidfd);
		pthread_mutex_destroy(&z->lock);
		free(z);
	}
	for (int i = 0; i < 2; i++)
		if (keeper.wake[i] >= 0)
			close(keeper.wake[i]);
	keeper.wake[0] = keeper.wake[1] = -1;
	free(keeper.zs);
	keeper.zs = NULL;
	keeper.n = 0;
}

/* ---- asking one ------------------------------------------------------------------- */

static pid_t ask(struct zygote *z, const struct zygote_request *req, const int *fds, int *pidfd)
{
	struct zygote_reply reply;
	struct pollfd p = { .fd = z->sock, .events = POLLIN };
	size_t n;

	if (fds_send(z->sock, req, sizeof(*req), fds, ZREQ_CHANNELS + req->n_procs + req->has_netns) != 0 ||
	    poll(&p, 1, REPLY_TIMEOUT_MS) != 1 ||
	    fds_recv(z->sock, &reply, sizeof(reply), pidfd, &n, 1) != (ssize_t)sizeof(reply))
		return -1;
	if (reply.err != 0 || reply.pid <= 0 || n != 1) {
		if (n == 1)
			reap(*pidfd);
		reply.what[sizeof(reply.what) - 1] = '\0';
		fprintf(stderr, "level=warn msg=\"zygote could not fork; starting cold\" language=\"%s\" "
			"error=\"%s: %s\"\n", z->setup.name, reply.what, strerror(reply.err));
		return 0;
	}
	return reply.pid;
}

pid_t zygote_fork(struct zygote *z, uid_t uid, const int *channels, const int *procs, size_t n_procs,
		  int netns_fd, int *pidfd)
{
	struct zygote_request req = { .uid = uid, .n_procs = (uint32_t)n_procs, .has_netns = netns_fd >= 0 };
	int fds[ZREQ_MAX_FDS];

	if (n_procs < 1 || n_procs > ZREQ_MAX_PROCS)
		return 0;
	memcpy(fds, channels, ZREQ_CHANNELS * sizeof(int));
	memcpy(fds + ZREQ_CHANNELS, procs, n_procs * sizeof(int));
	fds[ZREQ_CHANNELS + n_procs] = netns_fd;
	pthread_mutex_lock(&z->lock);
	pid_t pid = z->sock >= 0 ? ask(z, &req, fds, pidfd) : 0;
	if (pid < 0) {
		fprintf(stderr, "level=warn msg=\"zygote did not answer; starting cold, restarting it\" language=\"%s\"\n",
			z->setup.name);
		mark_gone(z);
	}
	if (pid > 0)
		z->forks++;
	pthread_mutex_unlock(&z->lock);
	return pid;
}

bool zygote_running(struct zygote *z)
{
	pthread_mutex_lock(&z->lock);
	bool running = z->sock >= 0;
	pthread_mutex_unlock(&z->lock);
	return running;
}

unsigned long zygote_forks(struct zygote *z)
{
	pthread_mutex_lock(&z->lock);
	unsigned long n = z->forks;
	pthread_mutex_unlock(&z->lock);
	return n;
}
