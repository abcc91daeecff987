/* Everything a sandbox of one language needs, prepared once at start-up:
 * argv, environment, rlimits, and per network mode the mount plan, the
 * seccomp program and the spawn plan. */
#ifndef SANDCELL_PREPARE_H
#define SANDCELL_PREPARE_H

#include <linux/filter.h>

#include "jail/jail.h"
#include "jail/languages.h"
#include "jail/mounts.h"
#include "jail/spawn.h"

#define MAX_LIMITS 8
#define MAX_LINKS 4

enum { MODE_OFFLINE, MODE_NETWORK, MODE_COUNT };

struct mode_state {
	struct mount_plan mounts;
	struct sock_fprog *seccomp;
	struct spawn_plan plan;     /* plan.zygote: set by the executor */
};

struct lang_state {
	const struct language *lang;
	char **argv;                /* argv[0]: the program's name (a venv's path) */
	char **envp;
	char venv[4096];            /* the interpreter's venv, bound read-only ("": none) */
	const char *modules;        /* the modules directory, bound read-only (NULL: none) */
	char links[MAX_LINKS][4096]; /* the interpreter's links, the binary bound at each */
	size_t n_links;
	struct spawn_limit limits[MAX_LIMITS];
	struct mode_state modes[MODE_COUNT];
};

/* root: where jails' roots are mounted; netns_fd: the namespace network
 * sandboxes join (-1: the host's); exe_fd: the daemon's binary, which the
 * jail's init execs. Returns 0, or -1 with err. */
int prepare_language(struct lang_state *ls, const struct language *lang, const struct jail_config *cfg,
		     const char *root, int netns_fd, int exe_fd, char *err, size_t errlen);
void forget_language(struct lang_state *ls);

#endif
