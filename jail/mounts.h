/* The jail's file system: a tmpfs root holding read-only binds of only what
 * the interpreter needs, a fresh /proc, a minimal /dev and a private /tmp.
 *
 * The plan is computed once per language in the parent (globbing, realpath,
 * allocation); the child only replays it with system calls, because it runs
 * right after clone3() in a multi-threaded daemon where malloc is unsafe. */
#ifndef SANDCELL_MOUNTS_H
#define SANDCELL_MOUNTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plan_bind {
	char *source;   /* host path */
	char *target;   /* path under the new root, absolute (root + source) */
	bool directory;
};

struct plan_link {
	char *path;     /* e.g. <root>/lib */
	char *target;   /* e.g. usr/lib */
};

struct mount_plan {
	char root[PATH_MAX];      /* where the tmpfs root is mounted (inside the child's mount ns) */
	struct plan_bind *binds;
	size_t n_binds;
	struct plan_link *links;
	size_t n_links;
	char tmp_options[96];     /* mount options of /tmp */
};

/* Builds the plan: interpreter (its real path) plus the language's bind
 * patterns, the merged-/usr symlinks (/lib -> usr/lib, ...) of the host, and
 * files: pairs of host file and path in the jail (NULL-terminated; may be
 * NULL), e.g. a generated resolv.conf at /etc/resolv.conf. */
int mount_plan_build(struct mount_plan *plan, const char *root, const char *interpreter,
		     const char *const *patterns, const char *const *files, uint64_t tmp_size,
		     char *err, size_t errlen);
void mount_plan_free(struct mount_plan *plan);

/* Child side, after clone3 into a new mount namespace: builds the root and
 * pivots into it, then mounts the fresh parts. Async-signal-safe. Returns 0,
 * or -1 with errno set and *what naming the step that failed. */
int mount_plan_apply(const struct mount_plan *plan, const char **what);

/* The same in two halves: the read-only root alone (the zygote builds it once
 * and its children inherit it), and the parts every sandbox gets fresh, in
 * its own mount namespace after the pivot: /proc of its pid namespace and
 * its private /tmp (tmp_options: the plan's). */
int mount_plan_apply_root(const struct mount_plan *plan, const char **what);
int mount_fresh_parts(const char *tmp_options, const char **what);

/* The zygote's own small /tmp, after the root: modules that want a temporary
 * directory while they are imported (matplotlib's font cache) can then be
 * preloaded. Its children detach it (mount_detach_scratch_tmp) before they
 * mount their own: no sandbox sees what the zygote wrote. */
int mount_scratch_tmp(const char **what);
int mount_detach_scratch_tmp(const char **what);

#endif
