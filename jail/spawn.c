/* Starting one jailed interpreter.
 *
 * Theory of operation
 *
 * sandcelld is multi-threaded, so the child of clone3() must not allocate or
 * take locks: everything it needs (mount plan, argv, environment, seccomp
 * program, limits) was prepared in the parent, and the child only makes
 * system calls. The parent and the child talk over four descriptors:
 *
 *   go pipe      parent -> child   one byte once the parent has put the child
 *                                  in its v1 cgroups (hybrid hosts): nothing
 *                                  of the jail is built before its limits apply
 *   error pipe   child -> parent   close-on-exec; the child writes what failed
 *                                  and exits; EOF without data means exec worked
 *   notify pair  child -> parent   the seccomp listener descriptor, sent once
 *   stdio pipes                    the program's stdin, stdout and stderr
 *
 *   status pipe  init -> parent    the program's wait status, 4 bytes
 *   result pipe  program -> parent its fd 3: the runner writes "<status>\n"
 *                                  there once the program is done, so the
 *                                  answer need not wait for the interpreter's
 *                                  teardown (see jail/collect.c)
 *
 * clone3() creates the child with new mount, pid, ipc, uts and (unless it
 * is a network sandbox, which joins the private namespace the executor lent
 * it, jail/netns_pool.c, or the operator's) network namespaces, directly inside its v2 cgroup (CLONE_INTO_CGROUP), and
 * returns a pidfd. The child is the init (pid 1) of its pid namespace: it waits for go,
 * builds and pivots into the jail's root, sets the hostname, moves the stdio
 * pipes to 0-2 and closes everything else, then forks the program (pid 2).
 *
 * The program must not be pid 1: the kernel drops signals with default action
 * that a namespace's init sends itself, so RLIMIT_FSIZE's SIGXFSZ, alarm() or
 * kill(getpid(), SIGTERM) would not end it. The program, in order: set
 * rlimits; drop every capability from the bounding set and become the
 * sandbox's uid/gid (which clears the others); no_new_privs; load the seccomp
 * filter, hand its listener to the parent; exec.
 *
 * The init closes the program's descriptors, makes itself undumpable (it stays
 * uid 0, so the program can neither signal it nor read its memory), reaps
 * orphans, and when the program ends writes its wait status to the parent and
 * exits: the kernel then kills whatever else the program started.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/spawn.h"

#define HOSTNAME "sandbox"

struct child_fds {
	int go;        /* read end */
	int result;    /* write end, the program's fd 3 */
	int error;     /* write end */
	int notify;    /* our end of the socketpair */
	int status;    /* write end */
	int exe;       /* sandcelld's own binary, for the init */
	int stdio[3];  /* child's ends */
};

/* Where arrange_fds puts the descriptors in the jail. */
enum { FD_RESULT = 3, FD_ERROR, FD_NOTIFY, FD_STATUS, FD_EXE, FD_COUNT };

struct child_error {
	int err;
	char what[200];
};

/* ---- child side ------------------------------------------------------------- */

static _Noreturn void report_and_exit(int fd, const char *what)
{
	struct child_error ce = { .err = errno };
	size_t n = strlen(what);
	if (n >= sizeof(ce.what))
		n = sizeof(ce.what) - 1;
	memcpy(ce.what, what, n);
	ce.what[n] = '\0';
	(void)!write(fd, &ce, sizeof(ce));
	_exit(127);
}

/* One byte that carries one descriptor (SCM_RIGHTS). */
struct fd_message {
	char byte;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
};

static void fd_message_init(struct fd_message *m)
{
	memset(m, 0, sizeof(*m));
	m->byte = 'n';
	m->iov = (struct iovec){ .iov_base = &m->byte, .iov_len = 1 };
	m->msg = (struct msghdr){ .msg_iov = &m->iov, .msg_iovlen = 1,
				  .msg_control = m->u.buf, .msg_controllen = sizeof(m->u.buf) };
}

static int send_fd(int sock, int fd)
{
	struct fd_message m;

	fd_message_init(&m);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m.msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &m.msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* Puts the stdio pipes at 0-2 and the channels at FD_RESULT..FD_STATUS, then
 * closes every other descriptor: libfcgi's listen socket and other requests'
 * connections must never reach a sandbox. */
static int arrange_fds(struct child_fds *f)
{
	int fixed[FD_COUNT] = { f->stdio[0], f->stdio[1], f->stdio[2], f->result, f->error, f->notify,
				f->status, f->exe };

	/* first lift them all above FD_COUNT so that dup3 below never clobbers one */
	for (int i = 0; i < FD_COUNT; i++) {
		fixed[i] = fcntl(fixed[i], F_DUPFD_CLOEXEC, FD_COUNT);
		if (fixed[i] < 0)
			return -1;
	}
	for (int i = 0; i < FD_COUNT; i++)
		if (dup3(fixed[i], i, i <= FD_RESULT ? 0 : O_CLOEXEC) != i)
			return -1;
	f->result = FD_RESULT;
	f->error = FD_ERROR;
	f->notify = FD_NOTIFY;
	f->status = FD_STATUS;
	f->exe = FD_EXE;
	return syscall(SYS_close_range, FD_COUNT, ~0U, 0) == 0 ? 0 : -1;
}

static int set_limits(const struct spawn_plan *plan)
{
	for (size_t i = 0; i < plan->n_limits; i++) {
		struct rlimit r = { plan->limits[i].soft, plan->limits[i].hard };
		if (setrlimit(plan->limits[i].resource, &r) != 0)
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

static int load_seccomp(const struct spawn_plan *plan, int notify_sock)
{
	int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			       plan->seccomp);
	if (listener < 0)
		return -1;
	/* the sandbox must not keep the listener: it could answer its own calls */
	int rc = send_fd(notify_sock, listener);
	close(listener);
	close(notify_sock);
	return rc;
}

/* The daemon's threads block SIGTERM, SIGPIPE, ... and it ignores SIGPIPE:
 * the program must start with the defaults (exec keeps masks and SIG_IGN). */
static int reset_signals(void)
{
	sigset_t none;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* fails only for signals libc reserves */
	return syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
}

/* pid 2: becomes the program. */
static _Noreturn void program_main(const struct spawn_plan *plan, uid_t uid, struct child_fds *f)
{
	close(f->status);
	if (set_limits(plan) != 0)
		report_and_exit(f->error, "setrlimit");
	if (drop_privileges(uid) != 0)
		report_and_exit(f->error, "drop privileges");
	if (load_seccomp(plan, f->notify) != 0)
		report_and_exit(f->error, "load seccomp filter");
	execve(plan->executable, plan->argv, plan->envp);
	report_and_exit(f->error, "exec the interpreter");
}

/* pid 1: waits for the program, passes its status on, and ends the
 * namespace. This child is a copy of sandcelld, with its API key and other
 * requests' code in memory: it replaces itself with a fresh image of the
 * daemon's binary that does only this (jail_init_dispatch). */
static _Noreturn void init_main(pid_t program, struct child_fds *f)
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
	/* no fresh image (the binary was replaced meanwhile?): same duty here */
	jail_init_loop(program, f->status);
}

static _Noreturn void child_main(const struct spawn_plan *plan, uid_t uid, struct child_fds *f)
{
	const char *what = "wait for the parent";
	char go;

	if (reset_signals() != 0)
		report_and_exit(f->error, "reset signals");
	/* if sandcelld dies (even by SIGKILL), so does the sandbox: nothing may
	 * outlive its timeout. The kernel sends it from outside the namespace,
	 * so the init cannot ignore it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		report_and_exit(f->error, "set the parent-death signal");

	if (read(f->go, &go, 1) != 1)
		report_and_exit(f->error, what);
	close(f->go);
	/* a network sandbox joins its own namespace (or the operator's) */
	if (!plan->own_network && plan->netns_fd >= 0 && setns(plan->netns_fd, CLONE_NEWNET) != 0)
		report_and_exit(f->error, "join the network namespace");
	/* the jail's directories get exactly the modes mount_plan_apply asks for,
	 * and the program Debian's usual umask, whatever the caller's is (the
	 * unit runs sandcelld with UMask=0077, an operator's shell may too) */
	umask(022);
	if (mount_plan_apply(plan->mounts, &what) != 0)
		report_and_exit(f->error, what);
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) != 0)
		report_and_exit(f->error, "sethostname");
	if (arrange_fds(f) != 0)
		report_and_exit(f->error, "arrange descriptors");
	/* a raw fork: glibc's fork() would take locks other threads of the
	 * daemon may have held at clone time */
	pid_t program = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	if (program < 0)
		report_and_exit(f->error, "fork the program");
	if (program == 0)
		program_main(plan, uid, f);
	init_main(program, f);
}

/* ---- parent side ------------------------------------------------------------ */

static pid_t clone_into_jail(const struct spawn_plan *plan, struct cgroup_run *cg, int *pidfd)
{
	struct clone_args args = {
		.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
			 (plan->own_network ? CLONE_NEWNET : 0) | CLONE_PIDFD | CLONE_INTO_CGROUP,
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)cg->dirfd,
	};
	return syscall(SYS_clone3, &args, sizeof(args));
}

static int recv_fd(int sock)
{
	struct fd_message m;
	int fd;

	fd_message_init(&m);
	if (recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m.msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Waits for the exec (EOF on the error pipe) or the child's report. */
static int await_exec(int error_fd, char *err, size_t errlen)
{
	struct child_error ce;
	ssize_t n;

	do
		n = read(error_fd, &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n == (ssize_t)sizeof(ce))
		snprintf(err, errlen, "could not set up the sandbox: %s: %s", ce.what, strerror(ce.err));
	else
		snprintf(err, errlen, "could not set up the sandbox: the jail process failed");
	return -1;
}

struct parent_fds {
	int go[2], error[2], notify[2], status[2], result[2], in[2], out[2], errout[2];
};

static void close_all(struct parent_fds *p)
{
	int *all = &p->go[0];
	for (size_t i = 0; i < sizeof(*p) / sizeof(int); i++)
		close_fd(&all[i]);
}

static int open_channels(struct parent_fds *p)
{
	memset(p, -1, sizeof(*p));
	if (pipe2(p->go, O_CLOEXEC) || pipe2(p->error, O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->notify) ||
	    pipe2(p->status, O_CLOEXEC | O_NONBLOCK) || pipe2(p->result, O_CLOEXEC) ||
	    pipe2(p->in, O_CLOEXEC) || pipe2(p->out, O_CLOEXEC) || pipe2(p->errout, O_CLOEXEC))
		return -1;
	return 0;
}

static void kill_child(pid_t pid, int pidfd, struct cgroup_run *cg)
{
	cgroup_run_kill(cg);
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	siginfo_t info;
	waitid(P_PIDFD, pidfd, &info, WEXITED);
	(void)pid;
}

int spawn_sandbox(const struct spawn_plan *plan, uid_t uid, struct cgroup_run *cg,
		  struct spawned *out, char *err, size_t errlen)
{
	struct parent_fds p;
	int pidfd = -1;

	if (open_channels(&p) != 0) {
		snprintf(err, errlen, "could not set up the sandbox: pipes: %s", strerror(errno));
		close_all(&p);
		return -1;
	}
	pid_t pid = clone_into_jail(plan, cg, &pidfd);
	if (pid < 0) {
		snprintf(err, errlen, "could not set up the sandbox: clone3: %s", strerror(errno));
		close_all(&p);
		return -1;
	}
	if (pid == 0) {
		struct child_fds f = { .go = p.go[0], .error = p.error[1], .notify = p.notify[1],
				       .status = p.status[1], .result = p.result[1], .exe = plan->exe_fd,
				       .stdio = { p.in[0], p.out[1], p.errout[1] } };
		child_main(plan, uid, &f);
	}
	/* keep only the parent's ends */
	close_fd(&p.go[0]);
	close_fd(&p.error[1]);
	close_fd(&p.notify[1]);
	close_fd(&p.status[1]);
	close_fd(&p.result[1]);
	close_fd(&p.in[0]);
	close_fd(&p.out[1]);
	close_fd(&p.errout[1]);

	int notify_fd = -1;
	if (cgroup_run_attach_v1(cg, pid, err, errlen) != 0)
		goto fail;
	if (write(p.go[1], "g", 1) != 1) {
		snprintf(err, errlen, "could not set up the sandbox: start the jail: %s", strerror(errno));
		goto fail;
	}
	notify_fd = recv_fd(p.notify[0]);
	if (await_exec(p.error[0], err, errlen) != 0)
		goto fail;
	if (notify_fd < 0) {
		snprintf(err, errlen, "could not set up the sandbox: no seccomp listener received");
		goto fail;
	}
	*out = (struct spawned){ .pid = pid, .pidfd = pidfd, .stdin_fd = p.in[1], .stdout_fd = p.out[0],
				 .stderr_fd = p.errout[0], .notify_fd = notify_fd, .status_fd = p.status[0],
				 .result_fd = p.result[0] };
	close_fd(&p.go[1]);
	close_fd(&p.error[0]);
	close_fd(&p.notify[0]);
	return 0;
fail:
	kill_child(pid, pidfd, cg);
	close_fd(&notify_fd);
	close_fd(&pidfd);
	close_all(&p);
	return -1;
}

void spawned_close(struct spawned *s)
{
	close_fd(&s->pidfd);
	close_fd(&s->stdin_fd);
	close_fd(&s->stdout_fd);
	close_fd(&s->stderr_fd);
	close_fd(&s->notify_fd);
	close_fd(&s->status_fd);
	close_fd(&s->result_fd);
}
