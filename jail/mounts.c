/* The jail's file system; see mounts.h.
 *
 * Inside the child's own mount namespace:
 *   1. make every mount private, so nothing propagates back to the host;
 *   2. mount a small tmpfs at plan->root and create the mount points;
 *   3. bind the host paths read-only, nosuid, nodev (one bind + one remount each:
 *      the kernel ignores MS_RDONLY on the first bind call);
 *   4. /dev: a tmpfs with binds of null, zero, random and urandom only;
 *      /proc: a fresh procfs of the new pid namespace, subset=pid (the sandbox's
 *      processes only: nothing host-wide such as /proc/stat, /proc/meminfo or
 *      /proc/sys; Python and Node need none of it); /tmp: a size-limited tmpfs,
 *      noexec like every other writable place: nothing the program writes can be
 *      executed, mapped executable or loaded as a shared object (the kernel
 *      refuses PROT_EXEC mappings of files on noexec mounts; memfd_create is
 *      outside the seccomp allowlist);
 *   5. pivot_root into it, detach the old root, remount the new root read-only.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/mounts.h"

/* full paths: what a failed bind reports points into this table, never into
 * a stack frame that is gone by the time the child reports it */
static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/random", "/dev/urandom", NULL };
static const char *const usr_links[] = { "bin", "sbin", "lib", "lib64", NULL };

/* ---- parent side ---------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
	char *s;
	if (asprintf(&s, "%s%s", a, b) < 0)
		return NULL;
	return s;
}

/* Binds host path at inside (NULL: at its real path) in the jail. */
static int plan_add_bind_at(struct mount_plan *plan, const char *path, const char *inside)
{
	char real[PATH_MAX];
	struct stat st;

	if (!realpath(path, real) || stat(real, &st) != 0)
		return 0; /* optional: absent on this host */
	if (!inside)
		inside = real;
	for (size_t i = 0; i < plan->n_binds; i++)
		if (strcmp(plan->binds[i].target + strlen(plan->root), inside) == 0)
			return 0;
	struct plan_bind *binds = realloc(plan->binds, (plan->n_binds + 1) * sizeof(*binds));
	if (!binds)
		return -1;
	plan->binds = binds;
	struct plan_bind *b = &binds[plan->n_binds];
	b->source = strdup(real);
	b->target = join(plan->root, inside);
	b->directory = S_ISDIR(st.st_mode);
	if (!b->source || !b->target) {
		/* not counted in n_binds: mount_plan_free would not see the one that was made */
		free(b->source);
		free(b->target);
		return -1;
	}
	plan->n_binds++;
	return 0;
}

static int plan_add_bind(struct mount_plan *plan, const char *path)
{
	return plan_add_bind_at(plan, path, NULL);
}

static int plan_add_pattern(struct mount_plan *plan, const char *pattern)
{
	glob_t g;
	int rc = 0;

	if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
		rc = plan_add_bind(plan, g.gl_pathv[i]);
	globfree(&g);
	return rc;
}

/* Merged-/usr hosts have /lib -> usr/lib etc.; the jail mirrors them. */
static int plan_add_usr_links(struct mount_plan *plan)
{
	for (size_t i = 0; usr_links[i]; i++) {
		char host[64], target[PATH_MAX];
		snprintf(host, sizeof(host), "/%s", usr_links[i]);
		ssize_t n = readlink(host, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		struct plan_link *links = realloc(plan->links, (plan->n_links + 1) * sizeof(*links));
		if (!links)
			return -1;
		plan->links = links;
		links[plan->n_links].path = join(plan->root, host);
		links[plan->n_links].target = strdup(target);
		if (!links[plan->n_links].path || !links[plan->n_links].target) {
			free(links[plan->n_links].path);
			free(links[plan->n_links].target);
			return -1;
		}
		plan->n_links++;
	}
	return 0;
}

int mount_plan_build(struct mount_plan *plan, const char *root, const char *interpreter,
		     const char *const *patterns, const char *const *files, uint64_t tmp_size,
		     char *err, size_t errlen)
{
	char real[PATH_MAX];

	memset(plan, 0, sizeof(*plan));
	snprintf(plan->root, sizeof(plan->root), "%s", root);
	snprintf(plan->tmp_options, sizeof(plan->tmp_options), "size=%llu,nr_inodes=16384,mode=1777",
		 (unsigned long long)tmp_size);
	if (!realpath(interpreter, real)) {
		snprintf(err, errlen, "interpreter %s: %s", interpreter, strerror(errno));
		return -1;
	}
	if (access(real, X_OK) != 0) {
		snprintf(err, errlen, "interpreter %s is not executable: %s", real, strerror(errno));
		return -1;
	}
	if (plan_add_bind(plan, real) < 0)
		goto nomem;
	for (size_t i = 0; patterns && patterns[i]; i++)
		if (plan_add_pattern(plan, patterns[i]) < 0)
			goto nomem;
	for (size_t i = 0; files && files[i] && files[i + 1]; i += 2) {
		if (access(files[i], R_OK) != 0) {
			snprintf(err, errlen, "%s: %s", files[i], strerror(errno));
			mount_plan_free(plan);
			return -1;
		}
		if (plan_add_bind_at(plan, files[i], files[i + 1]) < 0)
			goto nomem;
	}
	if (plan_add_usr_links(plan) < 0)
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "building the mount plan: out of memory");
	mount_plan_free(plan);
	return -1;
}

void mount_plan_free(struct mount_plan *plan)
{
	for (size_t i = 0; i < plan->n_binds; i++) {
		free(plan->binds[i].source);
		free(plan->binds[i].target);
	}
	for (size_t i = 0; i < plan->n_links; i++) {
		free(plan->links[i].path);
		free(plan->links[i].target);
	}
	free(plan->binds);
	free(plan->links);
	plan->binds = NULL;
	plan->links = NULL;
	plan->n_binds = plan->n_links = 0;
}

/* ---- child side: system calls only, no allocation --------------------------- */

/* mkdir -p for the parents of path (and path itself if last is true). */
static int make_dirs(const char *path, bool last)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i] == '\0' && !last)
			break;
		char saved = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		buf[i] = saved;
	}
	return 0;
}

static int make_file(const char *path)
{
	if (make_dirs(path, false) != 0)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int bind_readonly(const char *source, const char *target, unsigned long extra)
{
	if (mount(source, target, NULL, MS_BIND, NULL) != 0)
		return -1;
	return mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | extra, NULL);
}

static int apply_binds(const struct mount_plan *plan, const char **what)
{
	for (size_t i = 0; i < plan->n_binds; i++) {
		const struct plan_bind *b = &plan->binds[i];
		*what = b->source;
		if ((b->directory ? make_dirs(b->target, true) : make_file(b->target)) != 0)
			return -1;
		if (bind_readonly(b->source, b->target, MS_NODEV) != 0)
			return -1;
	}
	for (size_t i = 0; i < plan->n_links; i++) {
		*what = plan->links[i].path;
		if (symlink(plan->links[i].target, plan->links[i].path) != 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

/* Writes root + suffix into buf (both short, fixed strings). */
static const char *under_root(char *buf, size_t size, const char *root, const char *suffix)
{
	size_t a = strlen(root), b = strlen(suffix);
	if (a + b + 1 > size)
		return root; /* cannot happen: root is a short configured path */
	memcpy(buf, root, a);
	memcpy(buf + a, suffix, b + 1);
	return buf;
}

static int apply_dev(const struct mount_plan *plan, const char **what)
{
	char dev[PATH_MAX], node[PATH_MAX];

	*what = "/dev";
	under_root(dev, sizeof(dev), plan->root, "/dev");
	if (make_dirs(dev, true) != 0 ||
	    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") != 0)
		return -1;
	for (size_t i = 0; devices[i]; i++) {
		*what = devices[i];
		under_root(node, sizeof(node), plan->root, devices[i]);
		if (make_file(node) != 0 || bind_readonly(devices[i], node, MS_NOEXEC) != 0)
			return -1;
	}
	*what = "/dev/fd";
	under_root(node, sizeof(node), plan->root, "/dev/fd");
	if (symlink("/proc/self/fd", node) != 0)
		return -1;
	return mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755");
}

/* The mount points of the fresh parts; they are mounted after the pivot. */
static int make_fresh_mountpoints(const struct mount_plan *plan, const char **what)
{
	char path[PATH_MAX];

	*what = "/proc";
	if (make_dirs(under_root(path, sizeof(path), plan->root, "/proc"), true) != 0)
		return -1;
	*what = "/tmp";
	return make_dirs(under_root(path, sizeof(path), plan->root, "/tmp"), true);
}

int mount_fresh_parts(const char *tmp_options, const char **what)
{
	*what = "/proc";
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") != 0)
		return -1;
	*what = "/tmp";
	return mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, tmp_options);
}

int mount_scratch_tmp(const char **what)
{
	*what = "the zygote's /tmp";
	return mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		     "size=16m,nr_inodes=1024,mode=0700");
}

int mount_detach_scratch_tmp(const char **what)
{
	*what = "detach the zygote's /tmp";
	return umount2("/tmp", MNT_DETACH);
}

static int pivot_into(const struct mount_plan *plan, const char **what)
{
	*what = "pivot_root";
	if (chdir(plan->root) != 0 || syscall(SYS_pivot_root, ".", ".") != 0)
		return -1;
	/* the old root now sits on top of the new one: detach it */
	*what = "detach old root";
	if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
		return -1;
	*what = "read-only root";
	return mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

int mount_plan_apply_root(const struct mount_plan *plan, const char **what)
{
	*what = "make mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -1;
	*what = "root tmpfs";
	if (mount("tmpfs", plan->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") != 0)
		return -1;
	if (apply_binds(plan, what) != 0 || apply_dev(plan, what) != 0 ||
	    make_fresh_mountpoints(plan, what) != 0)
		return -1;
	return pivot_into(plan, what);
}

int mount_plan_apply(const struct mount_plan *plan, const char **what)
{
	if (mount_plan_apply_root(plan, what) != 0)
		return -1;
	return mount_fresh_parts(plan->tmp_options, what);
}
