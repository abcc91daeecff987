/* Entering a sandbox: the steps every jailed process takes, shared by the
 * cold start (jail/spawn.c) and the Python zygote (zygote/).
 *
 * Everything here is async-signal-safe: it runs right after clone() in a copy
 * of a multi-threaded daemon, where malloc and locks are unsafe. */
#ifndef SANDCELL_ENTER_H
#define SANDCELL_ENTER_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#define JAIL_HOSTNAME "sandbox"

struct spawn_limit {
	int resource;       /* RLIMIT_* */
	rlim_t soft, hard;
};

/* The descriptors a jail's first process gets from its parent. */
struct child_fds {
	int go;        /* read end: one byte once the parent has put the child in its v1 cgroups */
	int result;    /* write end, the program's fd 3 */
	int error;     /* write end: a struct child_error if a step failed; EOF if all went well */
	int notify;    /* our end of the socketpair the seccomp listener is sent on */
	int status;    /* write end: the init writes the program's wait status */
	int exe;       /* sandcelld's own binary, for the init (-1: none) */
	int stdio[3];  /* the program's stdin, stdout and stderr */
};

/* Where enter_arrange_fds puts the descriptors in the jail. */
enum { FD_RESULT = 3, FD_ERROR, FD_NOTIFY, FD_STATUS, FD_EXE, FD_COUNT };

struct child_error {
	int err;
	char what[200];
};

/* Writes errno and what to the error pipe and exits 127. */
_Noreturn void enter_fail(int error_fd, const char *what);

/* Waits for the go byte, then joins netns_fd (if >= 0): the step every
 * jail takes before it builds anything. *what names a failed step. */
int enter_wait_for_go(struct child_fds *f, int netns_fd, const char **what);

/* Puts the stdio pipes at 0-2 and the channels at FD_RESULT..FD_EXE, then
 * closes every other descriptor: the daemon's listen socket and other
 * requests' connections must never reach a sandbox. */
int enter_arrange_fds(struct child_fds *f);

/* The program's rlimits, then: no capabilities (bounding set emptied), the
 * sandbox's uid and gid, no_new_privs, the seccomp filter, whose listener goes
 * to the parent over f->notify. On failure reports on f->error and exits. */
void enter_as_program(const struct spawn_limit *limits, size_t n_limits, uid_t uid,
		      const struct sock_fprog *seccomp, struct child_fds *f);

/* pid 1, once the program is forked: closes the program's descriptors,
 * becomes undumpable and replaces itself with a fresh image of sandcelld's
 * binary (f->exe) that only waits (jail/init.c), so that nothing of the
 * parent's memory stays in the sandbox. If that exec fails: may_stay, wait
 * here instead; else kill the program and exit. */
_Noreturn void enter_become_init(pid_t program, struct child_fds *f, bool may_stay);

/* The jail's init: waits for the program (pid in the jail), writes its wait
 * status to status_fd, exits. */
#define JAIL_INIT_NAME "sandcell-init"
_Noreturn void jail_init_loop(pid_t program, int status_fd);

/* Default dispositions and an empty mask for every signal. */
int enter_reset_signals(void);

/* SCM_RIGHTS: n descriptors with one message of len bytes. send: 0 or -1;
 * recv: the bytes received (fds[0..*n) filled, *n set), or -1. */
int fds_send(int sock, const void *msg, size_t len, const int *fds, size_t n);
ssize_t fds_recv(int sock, void *msg, size_t len, int *fds, size_t *n, size_t max);

#endif
