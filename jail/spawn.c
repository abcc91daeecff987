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

#include "jail/enter.h"
#include "jail/spawn.h"
#include "jail/zygote.h"

/* The step whose failure the parent completes with the interpreter's path
 * (the child cannot format it: it must not allocate). */
#define EXEC_STEP "exec the interpreter"

/* pid 2: becomes the program. */
static _Noreturn void program_main(const struct spawn_plan *plan, uid_t uid, struct child_fds *f)
{
	enter_as_program(plan->limits, plan->n_limits, uid, plan->seccomp, f);
	execve(plan->executable, plan->argv, plan->envp);
	enter_fail(f->error, EXEC_STEP);
}

static _Noreturn void child_main(const struct spawn_plan *plan, uid_t uid, struct child_fds *f)
{
	const char *what;

	if (enter_reset_signals() != 0)
		enter_fail(f->error, "reset signals");
	/* if sandcelld dies (even by SIGKILL), so does the sandbox: nothing may
	 * outlive its timeout. The kernel sends it from outside the namespace,
	 * so the init cannot ignore it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		enter_fail(f->error, "set the parent-death signal");
	/* a network sandbox joins its own namespace (or the operator's) */
	if (enter_wait_for_go(f, plan->own_network ? -1 : plan->netns_fd, &what) != 0)
		enter_fail(f->error, what);
	/* the jail's directories get exactly the modes mount_plan_apply asks for,
	 * and the program Debian's usual umask, whatever the caller's is (the
	 * unit runs sandcelld with UMask=0077, an operator's shell may too) */
	umask(022);
	if (mount_plan_apply(plan->mounts, &what) != 0)
		enter_fail(f->error, what);
	if (sethostname(JAIL_HOSTNAME, strlen(JAIL_HOSTNAME)) != 0)
		enter_fail(f->error, "sethostname");
	if (enter_arrange_fds(f) != 0)
		enter_fail(f->error, "arrange descriptors");
	/* a raw fork: glibc's fork() would take locks other threads of the
	 * daemon may have held at clone time */
	pid_t program = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	if (program < 0)
		enter_fail(f->error, "fork the program");
	if (program == 0)
		program_main(plan, uid, f);
	/* this child is a copy of sandcelld, with its API key and other
	 * requests' code in memory: it must not stay */
	enter_become_init(program, f, true);
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
	char byte;
	int fd;
	size_t n;

	if (fds_recv(sock, &byte, 1, &fd, &n, 1) != 1 || n != 1)
		return -1;
	return fd;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Waits for the exec (EOF on the error pipe) or the child's report; a
 * failed exec names the interpreter (removed, or made non-executable). */
static int await_exec(int error_fd, const char *executable, char *err, size_t errlen)
{
	struct child_error ce;
	ssize_t n;

	do
		n = read(error_fd, &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n == (ssize_t)sizeof(ce) && !strcmp(ce.what, EXEC_STEP))
		snprintf(err, errlen, "could not set up the sandbox: %s %s: %s", ce.what, executable,
			 strerror(ce.err));
	else if (n == (ssize_t)sizeof(ce))
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

/* Asks the language's zygote for the child: its pid (> 0); 0 if the zygote
 * is not there (then the caller starts the sandbox cold); -1 if it did not
 * answer (see zygote_fork). */
static pid_t fork_from_zygote(const struct spawn_plan *plan, uid_t uid, struct cgroup_run *cg,
			      struct parent_fds *p, int *pidfd)
{
	int channels[ZREQ_CHANNELS] = {
		[ZREQ_ERROR] = p->error[1], [ZREQ_NOTIFY] = p->notify[1], [ZREQ_STATUS] = p->status[1],
		[ZREQ_RESULT] = p->result[1], [ZREQ_STDIN] = p->in[0], [ZREQ_STDOUT] = p->out[1],
		[ZREQ_STDERR] = p->errout[1],
	};
	int procs[ZREQ_MAX_PROCS];
	int n = cgroup_run_open_procs(cg, procs, ZREQ_MAX_PROCS);
	if (n < 0)
		return 0;
	pid_t pid = zygote_fork(plan->zygote, uid, channels, procs, (size_t)n,
				plan->own_network ? -1 : plan->netns_fd, pidfd);
	while (n > 0)
		close(procs[--n]);
	return pid;
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
	pid_t pid = plan->zygote ? fork_from_zygote(plan, uid, cg, &p, &pidfd) : 0;
	if (pid < 0) {
		/* a child of it may hold these channels: start cold with fresh ones
		 * (such a child, in the cgroup, ends with the sandbox's teardown) */
		close_all(&p);
		if (open_channels(&p) != 0) {
			snprintf(err, errlen, "could not set up the sandbox: pipes: %s", strerror(errno));
			close_all(&p);
			return -1;
		}
		pid = 0;
	}
	/* a zygote's child moved itself into its cgroups and started at once */
	bool started = pid > 0;
	if (pid == 0)
		pid = clone_into_jail(plan, cg, &pidfd);
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
	if (cgroup_run_set_init(cg, pidfd, err, errlen) != 0 ||
	    (!started && cgroup_run_attach_v1(cg, pid, err, errlen) != 0))
		goto fail;
	if (!started && write(p.go[1], "g", 1) != 1) {
		snprintf(err, errlen, "could not set up the sandbox: start the jail: %s", strerror(errno));
		goto fail;
	}
	notify_fd = recv_fd(p.notify[0]);
	if (await_exec(p.error[0], plan->executable, err, errlen) != 0)
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
