/* Feeding a sandbox and collecting its output; see collect.h.
 *
 * One poll() loop per run watches: the program's stdin (written without
 * blocking, then closed so the runner sees EOF), its stdout and stderr (kept
 * up to the output limit), the runner's result pipe (the program is done:
 * answer now, the interpreter's teardown happens after the answer) and the
 * pidfd (the program ended without a result: it died, or exec'd, or closed
 * fd 3) and, for a run that has one, the client's connection (nginx closes
 * it when its client goes away: nobody waits for the answer any more, so
 * the run is killed then instead of at its deadline). Refused system
 * calls are the supervisor's (jail/supervisor.c). The loop ends when the program has exited and both outputs reached
 * EOF; a deadline, an output overflow, a client gone or a host fault kill
 * the whole cgroup.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jail/collect.h"

/* After the program exits, how long its outputs may take to reach EOF. */
#define DRAIN_GRACE_MS 1000
/* After SIGKILL, how long to wait for the exit before giving up on it (a task
 * stuck in the kernel): the request is answered, the pool's teardown goes on. */
#define KILL_GRACE_MS 5000

struct stream {
	int fd;
	char *buf;
	size_t len, cap, limit;
	bool overflow;
};

struct run_state {
	struct spawned *s;
	struct cgroup_run *cg;
	const struct collect_input *in;
	size_t part, offset;          /* next input byte to write */
	struct stream out, errout;
	bool exited, killed, client_gone;
	double killed_at;
	int client_fd;                /* the client's connection, or -1 */
	bool framed;                  /* the runner reported the end on fd 3 */
	int framed_status;
	unsigned hits;
	siginfo_t init_status;         /* of the jail's init (pid 1), only reaped */
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void kill_sandbox(struct run_state *st)
{
	if (st->killed)
		return;
	st->killed = true;
	st->killed_at = now_ms();
	cgroup_run_kill(st->cg);
	syscall(SYS_pidfd_send_signal, st->s->pidfd, SIGKILL, NULL, 0);
}

static void close_stdin(struct run_state *st)
{
	if (st->s->stdin_fd >= 0)
		close(st->s->stdin_fd);
	st->s->stdin_fd = -1;
}

static int write_input(struct run_state *st)
{
	const struct collect_input *in = st->in;

	while (st->part < 3) {
		size_t left = in->lens[st->part] - st->offset;
		if (left == 0) {
			st->part++;
			st->offset = 0;
			continue;
		}
		ssize_t n = write(st->s->stdin_fd, in->parts[st->part] + st->offset, left);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			/* EPIPE: the program stopped reading; its exit tells the rest */
			break;
		}
		st->offset += n;
	}
	close_stdin(st);
	return 0;
}

/* Reads what is there; returns false at EOF. Past the limit, bytes are
 * dropped and the sandbox is killed: a flood must not cost more than that. */
static bool read_stream(struct run_state *st, struct stream *sm)
{
	char scratch[65536];
	ssize_t n = read(sm->fd, scratch, sizeof(scratch));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;
	size_t keep = (size_t)n;
	if (sm->len + keep > sm->limit) {
		keep = sm->limit - sm->len;
		sm->overflow = true;
		st->hits |= JAIL_HIT_OUTPUT;
		kill_sandbox(st);
	}
	if (sm->len + keep > sm->cap) {
		size_t cap = sm->cap ? sm->cap : 65536;
		while (cap < sm->len + keep)
			cap *= 2;
		if (cap > sm->limit)
			cap = sm->limit;
		char *buf = realloc(sm->buf, cap);
		if (!buf) {
			kill_sandbox(st);
			return true;
		}
		sm->buf = buf;
		sm->cap = cap;
	}
	memcpy(sm->buf + sm->len, scratch, keep);
	sm->len += keep;
	return true;
}

static void close_stream(struct stream *sm)
{
	if (sm->fd >= 0)
		close(sm->fd);
	sm->fd = -1;
}

/* Called when the pidfd says the init exited (or, with WNOHANG, to try). */
static void reap(struct run_state *st, int flags)
{
	memset(&st->init_status, 0, sizeof(st->init_status));
	if (waitid(P_PIDFD, st->s->pidfd, &st->init_status, WEXITED | flags) == 0 &&
	    st->init_status.si_pid != 0)
		st->exited = true;
}

/* The runner writes "<status>\n" to its fd 3 once the program is done
 * (after its threads and exit handlers). EOF without it: the program closed
 * fd 3 or died; its exit then tells. */
static void read_frame(struct run_state *st)
{
	char buf[16];
	ssize_t n = read(st->s->result_fd, buf, sizeof(buf) - 1);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		buf[n] = '\0';
		char *end;
		long status = strtol(buf, &end, 10);
		if (end != buf && *end == '\n' && status >= 0 && status <= 255) {
			st->framed = true;
			st->framed_status = (int)status;
		}
	}
	close(st->s->result_fd);
	st->s->result_fd = -1;
}

/* Everything the program wrote before its frame is in the pipes already. */
static void drain_stream(struct run_state *st, struct stream *sm)
{
	while (sm->fd >= 0) {
		size_t before = sm->len;
		if (!read_stream(st, sm)) {
			close_stream(sm);
			return;
		}
		if (sm->len == before && !sm->overflow)
			return; /* EAGAIN: nothing more */
		if (sm->overflow)
			return;
	}
}

enum { PF_STDIN, PF_STDOUT, PF_STDERR, PF_RESULT, PF_PID, PF_CLIENT, PF_COUNT };

/* The peer closed (or broke) the connection. Data it sent, if any, is not
 * a hang-up: only POLLRDHUP/POLLHUP/POLLERR are. */
static void watch_client(struct run_state *st, short revents)
{
	if (!(revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return;
	st->client_fd = -1; /* once is enough; its owner closes it */
	st->client_gone = true;
	kill_sandbox(st);
}

static int poll_once(struct run_state *st, int timeout)
{
	struct pollfd p[PF_COUNT] = {
		[PF_STDIN] = { st->s->stdin_fd, POLLOUT, 0 },
		[PF_STDOUT] = { st->out.fd, POLLIN, 0 },
		[PF_STDERR] = { st->errout.fd, POLLIN, 0 },
		[PF_RESULT] = { st->s->result_fd, POLLIN, 0 },
		[PF_PID] = { st->exited ? -1 : st->s->pidfd, POLLIN, 0 },
		[PF_CLIENT] = { st->client_fd, POLLRDHUP, 0 },
	};
	int n = poll(p, PF_COUNT, timeout);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (p[PF_STDIN].revents)
		write_input(st);
	if (p[PF_STDOUT].revents && !read_stream(st, &st->out))
		close_stream(&st->out);
	if (p[PF_STDERR].revents && !read_stream(st, &st->errout))
		close_stream(&st->errout);
	if (p[PF_RESULT].revents)
		read_frame(st);
	if (p[PF_PID].revents)
		reap(st, 0);
	if (p[PF_CLIENT].revents)
		watch_client(st, p[PF_CLIENT].revents);
	return 0;
}

/* The program's own status comes from the jail's init; without it (the
 * init was killed first) the program was killed too. */
static void read_program_status(struct run_state *st, struct run_result *res)
{
	int status;

	res->exit_code = -1;
	res->signal = SIGKILL;
	if (read(st->s->status_fd, &status, sizeof(status)) != (ssize_t)sizeof(status))
		return;
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
		res->signal = 0;
	} else if (WIFSIGNALED(status)) {
		res->signal = WTERMSIG(status);
	}
}

static void judge(struct run_state *st, struct run_result *res)
{
	if (st->framed) {
		res->exit_code = st->framed_status;
		res->signal = 0;
	} else {
		read_program_status(st, res);
	}
	if (st->killed)
		res->exit_code = -1;
	if (res->signal == SIGSYS)
		st->hits |= JAIL_HIT_SECCOMP;
	if (res->signal == SIGXFSZ)
		st->hits |= JAIL_HIT_FSIZE;
	if (res->signal == SIGXCPU)
		st->hits |= JAIL_HIT_TIMEOUT;
	res->hits = st->hits;
	res->client_gone = st->client_gone;
}

int collect_run(struct spawned *s, struct cgroup_run *cg, const struct collect_input *in,
		size_t output_limit, unsigned timeout_ms, int client_fd, struct run_result *res,
		char *err, size_t errlen)
{
	struct run_state st = {
		.s = s, .cg = cg, .in = in, .client_fd = client_fd,
		.out = { .fd = s->stdout_fd, .limit = output_limit },
		.errout = { .fd = s->stderr_fd, .limit = output_limit },
	};
	s->stdout_fd = s->stderr_fd = -1; /* owned by the streams now */
	double start = now_ms(), deadline = start + timeout_ms, drain_until = 0;
	int rc = 0;

	fcntl(s->stdin_fd, F_SETFL, O_NONBLOCK);
	fcntl(st.out.fd, F_SETFL, O_NONBLOCK);
	fcntl(st.errout.fd, F_SETFL, O_NONBLOCK);
	write_input(&st);
	while (!st.exited || st.out.fd >= 0 || st.errout.fd >= 0) {
		if (st.framed && !st.killed) {
			drain_stream(&st, &st.out);
			drain_stream(&st, &st.errout);
			break; /* the interpreter's teardown is the pool's business */
		}
		double now = now_ms();
		if (now >= deadline && !st.exited && !st.killed) {
			st.hits |= JAIL_HIT_TIMEOUT;
			kill_sandbox(&st);
		}
		if (st.exited && drain_until == 0)
			drain_until = now + DRAIN_GRACE_MS;
		if (drain_until && now >= drain_until)
			break; /* something still holds the pipes: give up on them */
		if (st.killed && !st.exited && now - st.killed_at >= KILL_GRACE_MS)
			break; /* it does not die: give up on it */
		double until = st.exited ? drain_until : (st.killed ? now + 1000 : deadline);
		int timeout = until > now ? (int)(until - now) + 1 : 0;
		if (poll_once(&st, timeout) != 0) {
			snprintf(err, errlen, "collecting the run: poll: %s", strerror(errno));
			kill_sandbox(&st);
			rc = -1;
			break;
		}
	}
	if (!st.exited && !st.framed) {
		kill_sandbox(&st);
		reap(&st, WNOHANG); /* else the pool's teardown reaps it */
	}
	res->duration_ms = now_ms() - start;
	close_stdin(&st);
	close_stream(&st.out);
	close_stream(&st.errout);
	res->out = st.out.buf;
	res->out_len = st.out.len;
	res->err = st.errout.buf;
	res->err_len = st.errout.len;
	judge(&st, res);
	return rc;
}
