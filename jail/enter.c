/* Entering a sandbox; see enter.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/enter.h"

#define MAX_PASSED_FDS 16

_Noreturn void enter_fail(int error_fd, const char *what)
{
	struct child_error ce = { .err = errno };
	size_t n = strlen(what);
	if (n >= sizeof(ce.what))
		n = sizeof(ce.what) - 1;
	memcpy(ce.what, what, n);
	ce.what[n] = '\0';
	(void)!write(error_fd, &ce, sizeof(ce));
	_exit(127);
}

int enter_wait_for_go(struct child_fds *f, int netns_fd, const char **what)
{
	char go;

	*what = "wait for the parent";
	if (read(f->go, &go, 1) != 1)
		return -1;
	close(f->go);
	f->go = -1;
	*what = "join the network namespace";
	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0)
		return -1;
	return 0;
}

int enter_arrange_fds(struct child_fds *f)
{
	int fixed[FD_COUNT] = { f->stdio[0], f->stdio[1], f->stdio[2], f->result, f->error, f->notify,
				f->status, f->exe };
	int top = f->exe >= 0 ? FD_COUNT : FD_EXE;

	/* first lift them all above FD_COUNT so that dup3 below never clobbers one */
	for (int i = 0; i < top; i++) {
		fixed[i] = fcntl(fixed[i], F_DUPFD_CLOEXEC, FD_COUNT);
		if (fixed[i] < 0)
			return -1;
	}
	for (int i = 0; i < top; i++)
		if (dup3(fixed[i], i, i <= FD_RESULT ? 0 : O_CLOEXEC) != i)
			return -1;
	f->result = FD_RESULT;
	f->error = FD_ERROR;
	f->notify = FD_NOTIFY;
	f->status = FD_STATUS;
	f->exe = f->exe >= 0 ? FD_EXE : -1;
	return syscall(SYS_close_range, top, ~0U, 0) == 0 ? 0 : -1;
}

static int set_limits(const struct spawn_limit *limits, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct rlimit r = { limits[i].soft, limits[i].hard };
		if (setrlimit(limits[i].resource, &r) != 0)
			return -1;
	}
	return 0;
}

static int drop_privileges(uid_t uid)
{
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		return -1;
	/* changing all uids away from 0 clears the permitted and effective sets.
	 * Raw system calls: glibc's wrappers would try to signal the daemon's
	 * other threads, which do not exist in this child. */
	if (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setresgid, uid, uid, uid) != 0 ||
	    syscall(SYS_setresuid, uid, uid, uid) != 0)
		return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static int load_seccomp(const struct sock_fprog *prog, int notify_sock)
{
	int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			       prog);
	if (listener < 0)
		return -1;
	/* the sandbox must not keep the listener: it could answer its own calls */
	int rc = fds_send(notify_sock, "n", 1, &listener, 1);
	close(listener);
	close(notify_sock);
	return rc;
}

void enter_as_program(const struct spawn_limit *limits, size_t n_limits, uid_t uid,
		      const struct sock_fprog *seccomp, struct child_fds *f)
{
	close(f->status);
	if (f->exe >= 0) /* the init's, and a program that never execs would keep it */
		close(f->exe);
	if (set_limits(limits, n_limits) != 0)
		enter_fail(f->error, "setrlimit");
	if (drop_privileges(uid) != 0)
		enter_fail(f->error, "drop privileges");
	/* changing uid made a process that does not exec undumpable, which
	 * hides /proc/self from the program itself; an exec'd one is dumpable */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		enter_fail(f->error, "set dumpable");
	if (load_seccomp(seccomp, f->notify) != 0)
		enter_fail(f->error, "load seccomp filter");
}

_Noreturn void enter_become_init(pid_t program, struct child_fds *f, bool may_stay)
{
	char pid_arg[16], fd_arg[16];
	char *argv[] = { JAIL_INIT_NAME, pid_arg, fd_arg, NULL };
	char *envp[] = { NULL };

	for (int fd = 0; fd < FD_STATUS; fd++)
		close(fd);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	snprintf(pid_arg, sizeof(pid_arg), "%d", (int)program);
	snprintf(fd_arg, sizeof(fd_arg), "%d", f->status);
	if (fcntl(f->status, F_SETFD, 0) == 0) /* the fresh image writes to it */
		syscall(SYS_execveat, f->exe, "", argv, envp, AT_EMPTY_PATH);
	if (may_stay) /* no fresh image (the binary was replaced meanwhile?): same duty here */
		jail_init_loop(program, f->status);
	kill(program, SIGKILL);
	_exit(127);
}

/* The daemon's threads block SIGTERM, SIGPIPE, ... and it ignores SIGPIPE:
 * the program must start with the defaults (exec keeps masks and SIG_IGN). */
int enter_reset_signals(void)
{
	sigset_t none;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* fails only for signals libc reserves */
	return syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
}

/* ---- passing descriptors ---------------------------------------------------- */

union fd_control {
	char buf[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
	struct cmsghdr align;
};

int fds_send(int sock, const void *msg, size_t len, const int *fds, size_t n)
{
	union fd_control u;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n > MAX_PASSED_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (n > 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(n * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	}
	ssize_t sent;
	do
		sent = sendmsg(sock, &m, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	return sent == (ssize_t)len ? 0 : -1;
}

ssize_t fds_recv(int sock, void *msg, size_t len, int *fds, size_t *n, size_t max)
{
	union fd_control u;
	struct iovec iov = { .iov_base = msg, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	ssize_t got;

	*n = 0;
	do
		got = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*n < max)
				fds[(*n)++] = fd;
			else
				close(fd); /* more than asked for: never keep strays */
		}
	}
	if (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
		for (size_t i = 0; i < *n; i++)
			close(fds[i]);
		*n = 0;
		errno = EMSGSIZE;
		return -1;
	}
	return got;
}
