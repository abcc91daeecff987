/* Starting one jailed interpreter; see spawn.c for the theory of operation. */
#ifndef SANDCELL_SPAWN_H
#define SANDCELL_SPAWN_H

#include <linux/filter.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "jail/cgroup.h"
#include "jail/enter.h"
#include "jail/mounts.h"

/* Everything the child needs, prepared in the parent per language. */
struct spawn_plan {
	const struct mount_plan *mounts;
	const char *executable;          /* the interpreter's path inside the jail */
	char *const *argv;
	char *const *envp;
	const struct sock_fprog *seccomp;
	const struct spawn_limit *limits;
	size_t n_limits;
	int exe_fd;                      /* O_PATH of the daemon's binary: the jail's init */
	bool own_network;                /* a new, empty network namespace */
	int netns_fd;                    /* else join this one (-1: stay in the host's) */
	struct zygote *zygote;           /* forks the sandbox if running (NULL: always cold) */
};

/* A running sandbox process seen from the parent. */
struct spawned {
	pid_t pid;
	int pidfd;       /* readable when the process has exited */
	int stdin_fd;    /* write end of the program's stdin */
	int stdout_fd;   /* read ends of its stdout and stderr */
	int stderr_fd;
	int notify_fd;   /* seccomp user-notification listener */
	int status_fd;   /* the program's wait status, written by the jail's init */
	int result_fd;   /* the runner's "<status>\n" once the program is done */
};

/* Starts the sandbox as uid/gid in cg. Returns when the interpreter has been
 * exec'd (0), or with -1 and a message if any step of the jail failed (and
 * nothing of it left running). */
int spawn_sandbox(const struct spawn_plan *plan, uid_t uid, struct cgroup_run *cg,
		  struct spawned *out, char *err, size_t errlen);

/* Closes every descriptor of s (not the pidfd's process: kill it first). */
void spawned_close(struct spawned *s);

#endif
