/* sandcell-zygote: a Python interpreter, initialised once, that forks one
 * sandbox per run.
 *
 * Theory of operation
 *
 * Starting python3 and importing the runner's modules costs about 30 ms of
 * CPU before a program's first line; jinja2 or requests as much again. The
 * zygote pays that once: sandcelld (jail/zygote.c) starts it in a mount
 * namespace already pivoted into the language's read-only root, in an empty
 * network namespace, as root with only CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID
 * and CAP_SETPCAP, non-dumpable. It initialises the interpreter as `python3
 * -I -B` would, runs the runner (jail/runners/python3.py) as a module,
 * imports the preload list, freezes the heap for the garbage collector (so
 * children do not copy pages just to scan them), and says ready. Then it
 * serves requests, one message each, from sandcelld only (a socketpair).
 *
 * Per request it clones, with CLONE_PARENT (the child is sandcelld's: the
 * daemon waits for it and it dies with the daemon, not with the zygote), new
 * mount, pid, ipc, uts and (offline) network namespaces, straight into the
 * run's cgroup. That child does what a cold sandbox's init does (jail/spawn.c),
 * except building the root: waits for go (v1 cgroups), joins the network
 * namespace it was given, mounts a fresh /proc and /tmp, sets the hostname,
 * keeps exactly stdin, stdout, stderr, the result pipe and its channels, and
 * forks the program (pid 2), then waits as the namespace's init. The program
 * takes the same steps as a cold one before exec: rlimits, no capabilities,
 * the sandbox's uid and gid, no_new_privs, the seccomp filter; only then does
 * it tell Python it was forked (reseeding `random`; OpenSSL reseeds itself on
 * a new pid) and call the runner, which reads the code from stdin.
 *
 * Why this is as strong as a cold start: the zygote never runs user code and
 * holds nothing secret (it is a fresh exec of this binary, not a copy of
 * sandcelld); a child is jailed by the same steps in the same order before it
 * reads a byte of code, and sandcelld checks the same things of it (the
 * seccomp listener, the go/error handshake). What children share with the
 * zygote and with each other: the address-space layout (ASLR is per exec)
 * and the str hash secret. Both only help an attack that already runs code
 * in a sandbox, against nothing but that sandbox: no other run's data is in
 * any of them. The code that reads sandcelld's messages checks every count.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "jail/enter.h"
#include "jail/mounts.h"
#include "jail/spawn.h"
#include "jail/zygote_proto.h"
#include "zygote/python.h"

static struct zygote_hello hello;

/* ---- the zygote itself -------------------------------------------------------- */

/* What the zygote needs to make children: namespaces and mounts, uid and gid
 * changes, emptying the children's bounding sets. */
static int keep_only_needed_capabilities(void)
{
	const int keep[] = { CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID, CAP_SETPCAP };
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };

	for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
		bool kept = false;
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			kept |= keep[i] == cap;
		if (!kept && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
			return -1;
	}
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		d[keep[i] / 32].effective |= 1u << (keep[i] % 32);
		d[keep[i] / 32].permitted |= 1u << (keep[i] % 32);
	}
	if (syscall(SYS_capset, &h, d) != 0)
		return -1;
	/* sandboxes run as other uids, but they must never read or trace this */
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static int say_ready(int err, const char *message)
{
	struct zygote_ready r = { .err = err };
	snprintf(r.message, sizeof(r.message), "%s", message);
	return fds_send(ZYGOTE_FD, &r, sizeof(r), NULL, 0);
}

static int read_hello(char *err, size_t errlen)
{
	size_t n;
	int fds[1];
	ssize_t got = fds_recv(ZYGOTE_FD, &hello, sizeof(hello), fds, &n, 0);

	if (got != (ssize_t)sizeof(hello)) {
		snprintf(err, errlen, "no setup message from sandcelld");
		return -1;
	}
	if (hello.n_limits > ZYGOTE_MAX_LIMITS || hello.n_filter == 0 ||
	    hello.n_filter > ZYGOTE_MAX_FILTER || !memchr(hello.tmp_options, 0, sizeof(hello.tmp_options)) ||
	    !memchr(hello.preload, 0, sizeof(hello.preload))) {
		snprintf(err, errlen, "malformed setup message");
		return -1;
	}
	return 0;
}

/* ---- a child: the init of a new sandbox, then its program ------------------------ */

struct child_request {
	const struct zygote_request *req;
	const int *fds;
};

/* The init runs on this stack, in the zygote's memory, until it execs (the
 * zygote waits meanwhile: CLONE_VFORK), so one is enough. */
static char init_stack[256 * 1024] __attribute__((aligned(16)));

static _Noreturn void program_main(uid_t uid, struct child_fds *f)
{
	struct sock_fprog prog = { .len = (unsigned short)hello.n_filter, .filter = hello.filter };

	enter_as_program(hello.limits, hello.n_limits, uid, &prog, f);
	close(f->error); /* all is set: what a cold start's exec tells */
	python_run_child();
}

/* Into the run's cgroups before anything else: nothing of the jail is
 * built before its limits apply. */
static int move_into_cgroups(const int *procs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (write(procs[i], "0", 1) != 1)
			return -1;
	return 0;
}

/* pid 1 of the new namespaces. Shares the zygote's memory: only system
 * calls and fork until the exec at the end. */
static int init_main(void *arg)
{
	const struct child_request *c = arg;
	const int *fds = c->fds;
	const int *procs = fds + ZREQ_CHANNELS;
	struct child_fds f = { .go = -1, .error = fds[ZREQ_ERROR], .notify = fds[ZREQ_NOTIFY],
			       .status = fds[ZREQ_STATUS], .result = fds[ZREQ_RESULT], .exe = ZYGOTE_INIT_FD,
			       .stdio = { fds[ZREQ_STDIN], fds[ZREQ_STDOUT], fds[ZREQ_STDERR] } };
	const char *what;

	if (move_into_cgroups(procs, c->req->n_procs) != 0)
		enter_fail(f.error, "move into the run's cgroups");
	/* the parent is sandcelld (CLONE_PARENT): if it dies, so does the sandbox */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		enter_fail(f.error, "set the parent-death signal");
	what = "join the network namespace";
	if (c->req->has_netns && setns(procs[c->req->n_procs], CLONE_NEWNET) != 0)
		enter_fail(f.error, what);
	umask(022);
	if (mount_detach_scratch_tmp(&what) != 0 || mount_fresh_parts(hello.tmp_options, &what) != 0)
		enter_fail(f.error, what);
	if (sethostname(JAIL_HOSTNAME, strlen(JAIL_HOSTNAME)) != 0)
		enter_fail(f.error, "sethostname");
	if (enter_arrange_fds(&f) != 0)
		enter_fail(f.error, "arrange descriptors");
	/* the program gets a copy of the zygote's memory; the zygote is stopped
	 * in clone() meanwhile, so that memory is in a consistent state */
	pid_t program = fork();
	if (program < 0)
		enter_fail(f.error, "fork the program");
	if (program == 0)
		program_main(c->req->uid, &f);
	enter_become_init(program, &f, false);
}

static pid_t clone_child(const int *fds, const struct zygote_request *req, int *pidfd)
{
	struct child_request c = { .req = req, .fds = fds };
	int flags = CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
		    CLONE_NEWUTS | (req->has_netns ? 0 : CLONE_NEWNET) | CLONE_PIDFD;

	python_before_fork();
	pid_t pid = clone(init_main, init_stack + sizeof(init_stack), flags, &c, pidfd);
	python_after_fork_parent();
	return pid;
}

static bool request_is_valid(const struct zygote_request *req, size_t n_fds)
{
	return req->uid != 0 && req->n_procs >= 1 && req->n_procs <= ZREQ_MAX_PROCS &&
	       req->has_netns <= 1 && n_fds == ZREQ_CHANNELS + req->n_procs + req->has_netns;
}

static void serve(const struct zygote_request *req, int *fds, size_t n)
{
	struct zygote_reply reply = { .err = 0 };
	int pidfd = -1;

	if (!request_is_valid(req, n)) {
		reply.err = EINVAL;
		snprintf(reply.what, sizeof(reply.what), "malformed request");
	} else {
		reply.pid = clone_child(fds, req, &pidfd);
		if (reply.pid < 0) {
			reply.err = errno;
			snprintf(reply.what, sizeof(reply.what), "clone");
		}
	}
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	fds_send(ZYGOTE_FD, &reply, sizeof(reply), &pidfd, pidfd >= 0 ? 1 : 0);
	if (pidfd >= 0)
		close(pidfd);
}

int main(int argc, char **argv)
{
	char err[480] = "";

	if (argc != 3 || strcmp(argv[0], ZYGOTE_NAME) != 0) {
		fprintf(stderr, "%s is started by sandcelld, not by hand\n", ZYGOTE_NAME);
		return 2;
	}
	if (keep_only_needed_capabilities() != 0) {
		snprintf(err, sizeof(err), "dropping capabilities: %s", strerror(errno));
		say_ready(errno, err);
		return 1;
	}
	if (read_hello(err, sizeof(err)) != 0 || python_start(argv[1], argv[2], hello.preload, err, sizeof(err)) != 0) {
		say_ready(EINVAL, err);
		return 1;
	}
	if (say_ready(0, "ready") != 0)
		return 1;
	for (;;) {
		struct zygote_request req;
		int fds[ZREQ_MAX_FDS];
		size_t n;
		ssize_t got = fds_recv(ZYGOTE_FD, &req, sizeof(req), fds, &n, ZREQ_MAX_FDS);
		if (got == 0)
			return 0; /* sandcelld closed its end */
		if (got < 0 && errno != EMSGSIZE)
			return 1;
		if (got != (ssize_t)sizeof(req)) {
			for (size_t i = 0; got > 0 && i < n; i++)
				close(fds[i]);
			struct zygote_reply bad = { .err = EINVAL, .what = "malformed request" };
			fds_send(ZYGOTE_FD, &bad, sizeof(bad), NULL, 0);
			continue;
		}
		serve(&req, fds, n);
	}
}
