/* The zygotes, seen from sandcelld: started, supervised and asked for
 * sandboxes. See zygote/main.c for what a zygote is and why it is safe. */
#ifndef SANDCELL_ZYGOTE_H
#define SANDCELL_ZYGOTE_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "jail/enter.h"
#include "jail/mounts.h"
#include "jail/zygote_proto.h"

/* What one zygote is started with; everything stays the caller's. */
struct zygote_setup {
	const char *name;                /* for logs: "python3", "python3 (network)" */
	const struct mount_plan *mounts; /* its read-only root */
	int exe_fd;                      /* O_PATH of sandcell-zygote */
	int init_fd;                     /* O_PATH of sandcelld, the children's init */
	const char *program;             /* the program's name: argv[0] of a cold start */
	const char *binary;              /* the interpreter's real path */
	char *const *envp;
	const struct spawn_limit *limits;
	size_t n_limits;
	const struct sock_fprog *seccomp;
	const char *preload;             /* module names, space-separated */
};

struct zygote;

/* A zygote for setup, not yet started; NULL if out of memory. */
struct zygote *zygote_new(const struct zygote_setup *setup);

/* Starts the thread that starts the zygotes and restarts any that dies
 * (after a pause that doubles with each failure in a row). */
int zygotes_start(struct zygote *const *zs, size_t n, char *err, size_t errlen);

/* Stops the thread and the zygotes, and frees them. */
void zygotes_stop(void);

/* Forks a jailed child from z: channels as the request lists them, the
 * cgroup.procs files it moves itself into, the network namespace to join
 * (-1: a new empty one). Returns its pid (> 0) with *pidfd; 0 if z is not
 * running or said it could not fork (then start the sandbox cold); -1 if it
 * did not answer: a child may exist with these channels and in this cgroup,
 * so the channels may not be used again (z is killed and restarted). */
pid_t zygote_fork(struct zygote *z, uid_t uid, const int *channels, const int *procs, size_t n_procs,
		  int netns_fd, int *pidfd);

/* How many sandboxes each zygote made since start, and whether it runs: for
 * metrics and tests. */
bool zygote_running(struct zygote *z);
unsigned long zygote_forks(struct zygote *z);

#endif
