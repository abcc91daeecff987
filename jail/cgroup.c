/* cgroups for sandboxes.
 *
 * Theory of operation
 *
 * Every run gets a fresh cgroup v2 directory, <parent>/run-<slot>-<n> (warm-...
 * for one started ahead of its request), where
 * <parent> is <v2 mount><our own v2 cgroup>/<cgroup_name>. The child is
 * created straight into it with clone3(CLONE_INTO_CGROUP) through the
 * O_DIRECTORY descriptor kept in struct cgroup_run, so there is no moment in
 * which a sandbox runs outside its cgroup. cgroup.kill ends the whole run at
 * once, cgroup.events tells when the last task is gone, and the directory is
 * then removed. The BPF egress programs attach to <parent> and tell runs
 * apart by their cgroup id.
 *
 * Memory, pids and cpu limits come from one of two places:
 *
 *   - v2 controllers, where our own cgroup offers memory, pids and cpu in
 *     cgroup.controllers (a normal host, with systemd's Delegate=yes). They
 *     are enabled in our cgroup's and the parent's cgroup.subtree_control,
 *     and each run's limits are written into its own directory. v2 forbids
 *     processes in a non-root cgroup that distributes controllers to
 *     children, so if enabling them in our own cgroup is refused with EBUSY,
 *     our processes move to the leaf <own>/daemon first.
 *
 *   - v1 hierarchies, on hybrid hosts whose v2 mount has no such controllers
 *     (like our build machines). One v1 cgroup per slot and controller,
 *     <v1 mount><own v1 cgroup>/<cgroup_name>/slot<N>, is created at start-up
 *     with the limits and reused run after run (moving a pid into v1 is
 *     sometimes slow to set up, and mkdir costs too): the run's pid is moved
 *     into them while it waits before exec. Being below our own v1 cgroups,
 *     the host's limits on sandcelld still apply to the sandboxes.
 *
 * Whether a run hit a limit is told by counters that only grow
 * (memory.events / memory.oom_control `oom_kill`, pids.events `max`): they
 * are read when the run begins and compared at the end, which also works for
 * the reused v1 slots.
 *
 * A leftover parent (sandcelld crashed) is killed, emptied and reused.
 *
 * Threads: the state below is written only by cgroups_init and
 * cgroups_cleanup; afterwards run functions only read it, and each slot is
 * used by one run at a time, so runs of different slots proceed in parallel.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "jail/cgroup.h"

/* How long a killed cgroup may take to empty before we give up on it. */
#define EMPTY_WAIT_MS 2000
/* CFS period for the cpu limit: 100 ms, the kernel's default. */
#define CPU_PERIOD_US 100000
/* The leaf our own processes move to when v2 controllers need enabling. */
#define DAEMON_LEAF "daemon"

enum v1_controller { V1_MEMORY, V1_PIDS, V1_CPU, V1_COUNT };
static const char *const v1_names[V1_COUNT] = {"memory", "pids", "cpu"};

static struct {
	const struct jail_config *cfg;
	unsigned nslots;
	bool ready;
	bool v2_controllers;
	char parent[PATH_MAX];               /* the v2 parent of all runs */
	/* hybrid: <v1 mount><own>/<cgroup_name>, short enough for "/slot<N>" */
	char v1_parent[V1_COUNT][PATH_MAX - 64];
	atomic_uint runs;                    /* names runs uniquely */
} cgs;

static void cgroup_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cgroup_warn(const char *fmt, ...)
{
	char msg[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "level=warn msg=\"cgroup: %s\"\n", msg);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* ---- small file helpers --------------------------------------------------- */

/* Writes value to dir/name (dirfd-relative when dirfd >= 0). */
static int write_file(int dirfd, const char *dir, const char *name, const char *value, char *err,
		      size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = dirfd >= 0 ? openat(dirfd, name, O_WRONLY | O_CLOEXEC)
			    : open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %m", path);
		return -1;
	}
	size_t len = strlen(value);
	ssize_t n = write(fd, value, len);
	if (n < 0 || (size_t)n != len) {
		if (n >= 0)
			errno = EIO;
		int saved = errno;
		snprintf(err, errlen, "write \"%s\" to %s: %m", value, path);
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

/* Reads dir/name into buf (NUL-terminated). Returns the length or -1. */
static ssize_t read_file(int dirfd, const char *dir, const char *name, char *buf, size_t size)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = dirfd >= 0 ? openat(dirfd, name, O_RDONLY | O_CLOEXEC)
			    : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* The value of "key value" in a flat keyed file (memory.events, ...); 0 if
 * the file or the key is missing. */
static uint64_t read_counter(int dirfd, const char *dir, const char *name, const char *key)
{
	char buf[4096];
	if (read_file(dirfd, dir, name, buf, sizeof buf) < 0)
		return 0;
	size_t klen = strlen(key);
	for (char *line = buf; *line;) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return strtoull(line + klen + 1, NULL, 10);
		line += strcspn(line, "\n");
		line += *line == '\n';
	}
	return 0;
}

static bool word_in_list(const char *list, const char *word, const char *seps)
{
	size_t wlen = strlen(word);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, seps);
		if (n == wlen && strncmp(p, word, wlen) == 0)
			return true;
		p += n;
		p += strspn(p, seps);
	}
	return false;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %m", path);
		return -1;
	}
	return 0;
}

/* ---- where our cgroups are -------------------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s)
{
	char *out = s;
	for (char *in = s; *in; out++) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out = *in++;
		}
	}
	*out = '\0';
}

/* Finds a cgroup mount in /proc/self/mountinfo: the cgroup2 one when
 * controller is NULL, else the v1 hierarchy carrying that controller.
 * Fills its mount point and its root inside the hierarchy. */
static int find_mount(const char *controller, char *mnt, char *root)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int found = -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		char r[PATH_MAX], m[PATH_MAX], fstype[64], superopts[1024];
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %*s %1023s", fstype, superopts) != 2)
			continue;
		if (controller ? strcmp(fstype, "cgroup") == 0 && word_in_list(superopts, controller, ",")
			       : strcmp(fstype, "cgroup2") == 0) {
			unescape_octal(r);
			unescape_octal(m);
			strcpy(root, r);
			strcpy(mnt, m);
			found = 0;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* Our own cgroup path in /proc/self/cgroup: the "0::" line for v2 when
 * controller is NULL, else the v1 line listing controller. */
static int find_own_path(const char *controller, char *path)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int found = -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1;
		bool match = controller ? word_in_list(ctrls, controller, ",")
					: strcmp(line, "0:") == 0 && *ctrls == '\0';
		if (match && strlen(c2 + 1) < PATH_MAX) {
			strcpy(path, c2 + 1);
			found = 0;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* <mount><own path> for the hierarchy, with the mount's own root taken off
 * the path (a bind-mounted subtree) and no trailing slash. */
static int own_cgroup_dir(const char *controller, char *dir, char *err, size_t errlen)
{
	char mnt[PATH_MAX], root[PATH_MAX], own[PATH_MAX];
	const char *what = controller ? controller : "cgroup2";

	if (find_mount(controller, mnt, root) < 0) {
		snprintf(err, errlen, "no %s mount in /proc/self/mountinfo", what);
		return -1;
	}
	if (find_own_path(controller, own) < 0) {
		snprintf(err, errlen, "no %s line in /proc/self/cgroup", what);
		return -1;
	}
	const char *rel = own;
	size_t rlen = strlen(root);
	if (strcmp(root, "/") != 0 && strncmp(own, root, rlen) == 0 &&
	    (own[rlen] == '/' || own[rlen] == '\0'))
		rel = own + rlen;
	if (strcmp(rel, "/") == 0)
		rel = "";
	if ((size_t)snprintf(dir, PATH_MAX, "%s%s", mnt, rel) >= PATH_MAX) {
		snprintf(err, errlen, "%s cgroup path too long", what);
		return -1;
	}
	return 0;
}

/* ---- emptying and removing ----------------------------------------------------- */

/* Waits (bounded) until cgroup.events of a v2 cgroup says "populated 0". */
static bool wait_v2_empty(int dirfd, const char *dir, long long deadline)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/cgroup.events", dir);
	int fd = dirfd >= 0 ? openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC)
			    : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT; /* already gone */
	bool empty = false;
	for (;;) {
		char buf[256];
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		if (n < 0)
			break;
		buf[n] = '\0';
		if (strstr(buf, "populated 0")) {
			empty = true;
			break;
		}
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		/* cgroup.events signals every change with POLLPRI. */
		struct pollfd pfd = {.fd = fd, .events = POLLPRI};
		poll(&pfd, 1, left > 50 ? 50 : (int)left);
	}
	close(fd);
	return empty;
}

/* rmdir, retrying while the kernel still holds the cgroup (EBUSY). */
static int remove_dir(const char *dir, long long deadline)
{
	while (rmdir(dir) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || now_ms() >= deadline)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

/* SIGKILLs every process listed in a v1 cgroup. The pidfd pins the process
 * before we check that it is still listed, so a recycled pid is never hit. */
static void kill_v1_procs(const char *dir)
{
	char buf[8192];
	if (read_file(-1, dir, "cgroup.procs", buf, sizeof buf) <= 0)
		return;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		p = end + strspn(end, "\n");
		int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		if (pidfd < 0)
			continue;
		char again[8192], needle[32];
		snprintf(needle, sizeof needle, "%ld", pid);
		if (read_file(-1, dir, "cgroup.procs", again, sizeof again) > 0 &&
		    word_in_list(again, needle, "\n"))
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		close(pidfd);
	}
}

/* Kills and waits (bounded) until a v1 cgroup has no process left. */
static bool empty_v1(const char *dir, long long deadline)
{
	for (;;) {
		char buf[64];
		ssize_t n = read_file(-1, dir, "cgroup.procs", buf, sizeof buf);
		if (n <= 0)
			return true;
		if (now_ms() >= deadline)
			return false;
		kill_v1_procs(dir);
		sleep_ms(2);
	}
}

static void slot_dir(enum v1_controller c, unsigned slot, char *dir)
{
	snprintf(dir, PATH_MAX, "%s/slot%u", cgs.v1_parent[c], slot);
}

/* Removes every cgroup below dir, deepest first, once empty() says it has
 * emptied: v2 (its tasks are already killed) or v1 slots (empty_v1 kills). */
static void remove_children(const char *dir, long long deadline,
			    bool (*empty)(const char *dir, long long deadline))
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		char sub[PATH_MAX];
		if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= sizeof sub)
			continue;
		remove_children(sub, deadline, empty);
		if (!empty(sub, deadline))
			cgroup_warn("%s did not empty in time", sub);
		if (remove_dir(sub, deadline) < 0)
			cgroup_warn("rmdir %s: %m", sub);
	}
	closedir(d);
}

static bool empty_v2(const char *dir, long long deadline)
{
	return wait_v2_empty(-1, dir, deadline);
}

/* ---- start-up ------------------------------------------------------------------- */

static const char v2_wanted[] = "+memory +pids +cpu";

static bool has_v2_controllers(const char *dir, const char *file)
{
	char buf[512];
	if (read_file(-1, dir, file, buf, sizeof buf) < 0)
		return false;
	return word_in_list(buf, "memory", " \n") && word_in_list(buf, "pids", " \n") &&
	       word_in_list(buf, "cpu", " \n");
}

/* Only our own process may be moved: a cgroup that holds others (a login
 * shell's session scope, say) is not ours to rearrange. */
static int only_us_in(const char *own, const char *procs, char *err, size_t errlen)
{
	for (char *end; *procs; procs = end) {
		long pid = strtol(procs, &end, 10);
		if (end == procs)
			break;
		if (pid == (long)getpid())
			continue;
		snprintf(err, errlen, "cgroup %s holds other processes (pid %ld), so its controllers "
			 "cannot be handed to sandboxes without moving them: run in a cgroup of its "
			 "own (the sandcell.service unit, or systemd-run --scope -p Delegate=yes)",
			 own, pid);
		return -1;
	}
	return 0;
}

/* Moves our process into the leaf <own>/daemon, so that our cgroup may hand
 * controllers to its children (no internal processes). */
static int move_to_leaf(const char *own, char *err, size_t errlen)
{
	char leaf[PATH_MAX], procs[65536];
	if ((size_t)snprintf(leaf, sizeof leaf, "%s/%s", own, DAEMON_LEAF) >= sizeof leaf) {
		snprintf(err, errlen, "cgroup path too long: %s", own);
		return -1;
	}
	if (read_file(-1, own, "cgroup.procs", procs, sizeof procs) < 0) {
		snprintf(err, errlen, "read %s/cgroup.procs: %m", own);
		return -1;
	}
	if (only_us_in(own, procs, err, errlen) < 0 || make_dir(leaf, err, errlen) < 0)
		return -1;
	char *save = NULL;
	for (char *line = strtok_r(procs, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (write_file(-1, leaf, "cgroup.procs", line, err, errlen) < 0 && errno != ESRCH)
			return -1;
	return 0;
}

/* Enables memory, pids and cpu for the children of dir. */
static int enable_v2_controllers(const char *dir, bool may_move, char *err, size_t errlen)
{
	if (has_v2_controllers(dir, "cgroup.subtree_control"))
		return 0;
	if (write_file(-1, dir, "cgroup.subtree_control", v2_wanted, err, errlen) == 0)
		return 0;
	if (errno != EBUSY || !may_move)
		return -1;
	if (move_to_leaf(dir, err, errlen) < 0)
		return -1;
	return write_file(-1, dir, "cgroup.subtree_control", v2_wanted, err, errlen);
}

/* Creates the v2 parent, or kills and empties what an earlier sandcelld left. */
static int prepare_v2_parent(char *err, size_t errlen)
{
	if (mkdir(cgs.parent, 0755) == 0)
		return 0;
	if (errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %m", cgs.parent);
		return -1;
	}
	cgroup_warn("reusing leftover %s: killing and removing its children", cgs.parent);
	char ignored[256];
	write_file(-1, cgs.parent, "cgroup.kill", "1", ignored, sizeof ignored);
	remove_children(cgs.parent, now_ms() + EMPTY_WAIT_MS, empty_v2);
	return 0;
}

static int write_u64(const char *dir, const char *name, uint64_t v, char *err, size_t errlen)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	return write_file(-1, dir, name, buf, err, errlen);
}

/* The limits of one v1 slot cgroup, written once and kept for every run. */
static int set_v1_limits(enum v1_controller c, const char *dir, char *err, size_t errlen)
{
	const struct jail_config *cfg = cgs.cfg;
	char path[PATH_MAX + 32];

	switch (c) {
	case V1_MEMORY:
		if (!cfg->memory_limit)
			return 0;
		if (write_u64(dir, "memory.limit_in_bytes", cfg->memory_limit, err, errlen) < 0)
			return -1;
		/* memory+swap = memory: no swapping around the limit. */
		snprintf(path, sizeof path, "%s/memory.memsw.limit_in_bytes", dir);
		if (access(path, F_OK) < 0)
			return 0;
		return write_u64(dir, "memory.memsw.limit_in_bytes", cfg->memory_limit, err, errlen);
	case V1_PIDS:
		if (!cfg->pids_limit)
			return write_file(-1, dir, "pids.max", "max", err, errlen);
		return write_u64(dir, "pids.max", cfg->pids_limit, err, errlen);
	case V1_CPU:
		if (write_u64(dir, "cpu.cfs_period_us", CPU_PERIOD_US, err, errlen) < 0)
			return -1;
		if (!cfg->cpu_percent)
			return write_file(-1, dir, "cpu.cfs_quota_us", "-1", err, errlen);
		return write_u64(dir, "cpu.cfs_quota_us",
				 (uint64_t)cfg->cpu_percent * CPU_PERIOD_US / 100, err, errlen);
	default:
		return 0;
	}
}

/* Hybrid hosts: <v1 mount><own>/<cgroup_name>/slot<N> for each controller. */
static int create_v1_slots(char *err, size_t errlen)
{
	for (int c = 0; c < V1_COUNT; c++) {
		char own[PATH_MAX];
		if (own_cgroup_dir(v1_names[c], own, err, errlen) < 0)
			return -1;
		if ((size_t)snprintf(cgs.v1_parent[c], sizeof cgs.v1_parent[c], "%s/%s", own,
				     cgs.cfg->cgroup_name) >= sizeof cgs.v1_parent[c]) {
			snprintf(err, errlen, "v1 %s cgroup path too long", v1_names[c]);
			return -1;
		}
		if (make_dir(cgs.v1_parent[c], err, errlen) < 0)
			return -1;
		/* Slots of an earlier sandcelld may hold other limits. */
		remove_children(cgs.v1_parent[c], now_ms() + EMPTY_WAIT_MS, empty_v1);
		for (unsigned s = 0; s < cgs.nslots; s++) {
			char dir[PATH_MAX];
			slot_dir(c, s, dir);
			if (make_dir(dir, err, errlen) < 0 || set_v1_limits(c, dir, err, errlen) < 0)
				return -1;
		}
	}
	return 0;
}

static int check_name(const char *name, char *err, size_t errlen)
{
	if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strcmp(name, DAEMON_LEAF) == 0) {
		snprintf(err, errlen, "bad cgroup_name \"%s\"", name ? name : "");
		return -1;
	}
	return 0;
}

int cgroups_init(const struct jail_config *cfg, unsigned nslots, char *err, size_t errlen)
{
	char own[PATH_MAX];

	if (cgs.ready) {
		snprintf(err, errlen, "cgroups already initialised");
		return -1;
	}
	if (check_name(cfg->cgroup_name, err, errlen) < 0)
		return -1;
	memset(&cgs, 0, sizeof cgs);
	cgs.cfg = cfg;
	cgs.nslots = nslots;
	if (own_cgroup_dir(NULL, own, err, errlen) < 0)
		return -1;
	if ((size_t)snprintf(cgs.parent, sizeof cgs.parent, "%s/%s", own, cfg->cgroup_name) >=
	    sizeof cgs.parent) {
		snprintf(err, errlen, "cgroup path too long: %s/%s", own, cfg->cgroup_name);
		return -1;
	}
	cgs.v2_controllers = has_v2_controllers(own, "cgroup.controllers");
	if (cgs.v2_controllers && enable_v2_controllers(own, true, err, errlen) < 0)
		return -1;
	if (prepare_v2_parent(err, errlen) < 0)
		return -1;
	/* cgroup.kill (Linux 5.14) is how every run ends. */
	char kill_path[PATH_MAX + 16];
	snprintf(kill_path, sizeof kill_path, "%s/cgroup.kill", cgs.parent);
	if (access(kill_path, W_OK) < 0) {
		snprintf(err, errlen, "%s: %m (cgroup.kill needs Linux 5.14 or later)", kill_path);
		goto fail;
	}
	int rc = cgs.v2_controllers ? enable_v2_controllers(cgs.parent, false, err, errlen)
				    : create_v1_slots(err, errlen);
	if (rc < 0)
		goto fail;
	cgs.ready = true;
	return 0;
fail:
	cgs.ready = true; /* let cleanup remove what was made */
	cgroups_cleanup();
	return -1;
}

void cgroups_cleanup(void)
{
	if (!cgs.ready)
		return;
	long long deadline = now_ms() + EMPTY_WAIT_MS;
	char ignored[256];

	if (write_file(-1, cgs.parent, "cgroup.kill", "1", ignored, sizeof ignored) < 0 &&
	    errno != ENOENT)
		cgroup_warn("%s", ignored);
	remove_children(cgs.parent, deadline, empty_v2);
	if (!wait_v2_empty(-1, cgs.parent, deadline) || remove_dir(cgs.parent, deadline) < 0)
		cgroup_warn("could not remove %s: %m", cgs.parent);
	for (int c = 0; c < V1_COUNT; c++) {
		if (!cgs.v1_parent[c][0])
			continue;
		remove_children(cgs.v1_parent[c], deadline, empty_v1);
		if (remove_dir(cgs.v1_parent[c], deadline) < 0)
			cgroup_warn("rmdir %s: %m", cgs.v1_parent[c]);
	}
	cgs.ready = false;
}

const char *cgroups_parent_path(void)
{
	return cgs.parent;
}

/* ---- runs ------------------------------------------------------------------------- */

static int set_v2_limits(struct cgroup_run *cg, char *err, size_t errlen)
{
	const struct jail_config *cfg = cgs.cfg;
	char buf[64];

	if (cfg->memory_limit) {
		snprintf(buf, sizeof buf, "%" PRIu64, cfg->memory_limit);
		if (write_file(cg->dirfd, cg->path, "memory.max", buf, err, errlen) < 0)
			return -1;
		/* No swap: present only where swap accounting is on. */
		if (write_file(cg->dirfd, cg->path, "memory.swap.max", "0", err, errlen) < 0 &&
		    errno != ENOENT)
			return -1;
	}
	/* An OOM kill takes the whole sandbox, not one thread of it. */
	if (write_file(cg->dirfd, cg->path, "memory.oom.group", "1", err, errlen) < 0)
		return -1;
	if (cfg->pids_limit)
		snprintf(buf, sizeof buf, "%u", cfg->pids_limit);
	else
		snprintf(buf, sizeof buf, "max");
	if (write_file(cg->dirfd, cg->path, "pids.max", buf, err, errlen) < 0)
		return -1;
	if (cfg->cpu_percent)
		snprintf(buf, sizeof buf, "%llu %u",
			 (unsigned long long)cfg->cpu_percent * CPU_PERIOD_US / 100, CPU_PERIOD_US);
	else
		snprintf(buf, sizeof buf, "max %u", CPU_PERIOD_US);
	return write_file(cg->dirfd, cg->path, "cpu.max", buf, err, errlen);
}

static uint64_t oom_kills(const struct cgroup_run *cg)
{
	char dir[PATH_MAX];
	if (cgs.v2_controllers)
		return read_counter(cg->dirfd, cg->path, "memory.events", "oom_kill");
	slot_dir(V1_MEMORY, cg->slot, dir);
	return read_counter(-1, dir, "memory.oom_control", "oom_kill");
}

static uint64_t pids_max_events(const struct cgroup_run *cg)
{
	char dir[PATH_MAX];
	if (cgs.v2_controllers)
		return read_counter(cg->dirfd, cg->path, "pids.events", "max");
	slot_dir(V1_PIDS, cg->slot, dir);
	return read_counter(-1, dir, "pids.events", "max");
}

int cgroup_run_create(unsigned slot, const char *kind, struct cgroup_run *cg, char *err, size_t errlen)
{
	memset(cg, 0, sizeof *cg);
	cg->dirfd = -1;
	if (!cgs.ready || slot >= cgs.nslots) {
		snprintf(err, errlen, "cgroup_run_create: %s", cgs.ready ? "bad slot" : "not initialised");
		return -1;
	}
	cg->slot = slot;
	unsigned n = atomic_fetch_add(&cgs.runs, 1);
	if ((size_t)snprintf(cg->path, sizeof cg->path, "%s/%s-%u-%u", cgs.parent, kind, slot, n) >=
	    sizeof cg->path) {
		snprintf(err, errlen, "cgroup path too long under %s", cgs.parent);
		cg->path[0] = '\0';
		return -1;
	}
	if (mkdir(cg->path, 0755) < 0) {
		snprintf(err, errlen, "mkdir %s: %m", cg->path);
		cg->path[0] = '\0';
		return -1;
	}
	cg->dirfd = open(cg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg->dirfd < 0) {
		snprintf(err, errlen, "open %s: %m", cg->path);
		goto fail;
	}
	if (cgs.v2_controllers && set_v2_limits(cg, err, errlen) < 0)
		goto fail;
	cg->base_oom_kills = oom_kills(cg);
	cg->base_pids_max = pids_max_events(cg);
	return 0;
fail:
	cgroup_run_destroy(cg);
	return -1;
}

int cgroup_run_attach_v1(struct cgroup_run *cg, pid_t pid, char *err, size_t errlen)
{
	char buf[32];

	if (cgs.v2_controllers)
		return 0;
	snprintf(buf, sizeof buf, "%d", (int)pid);
	for (int c = 0; c < V1_COUNT; c++) {
		char dir[PATH_MAX];
		slot_dir(c, cg->slot, dir);
		if (write_file(-1, dir, "cgroup.procs", buf, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int cgroup_run_open_procs(const struct cgroup_run *cg, int *fds, size_t max)
{
	size_t n = 0;

	if (max < 1 + (cgs.v2_controllers ? 0 : V1_COUNT))
		return -1;
	fds[n] = openat(cg->dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (fds[n] >= 0)
		n++;
	for (int c = 0; !cgs.v2_controllers && c < V1_COUNT && n == (size_t)c + 1; c++) {
		char path[PATH_MAX + 16];
		slot_dir(c, cg->slot, path);
		strcat(path, "/cgroup.procs");
		fds[n] = open(path, O_WRONLY | O_CLOEXEC);
		if (fds[n] >= 0)
			n++;
	}
	if (n != 1 + (cgs.v2_controllers ? 0 : V1_COUNT)) {
		while (n > 0)
			close(fds[--n]);
		return -1;
	}
	return (int)n;
}

unsigned cgroup_run_hits(const struct cgroup_run *cg)
{
	unsigned hits = 0;

	if (cg->dirfd < 0)
		return 0;
	if (oom_kills(cg) > cg->base_oom_kills)
		hits |= JAIL_HIT_MEMORY;
	if (pids_max_events(cg) > cg->base_pids_max)
		hits |= JAIL_HIT_PIDS;
	return hits;
}

void cgroup_run_kill(struct cgroup_run *cg)
{
	char err[PATH_MAX + 64];

	if (cg->dirfd < 0)
		return;
	if (write_file(cg->dirfd, cg->path, "cgroup.kill", "1", err, sizeof err) < 0 &&
	    errno != ENOENT)
		cgroup_warn("%s", err);
	if (cgs.v2_controllers)
		return;
	/* Belt and braces: whatever sits in the slot's v1 cgroups is ours. */
	for (int c = 0; c < V1_COUNT; c++) {
		char dir[PATH_MAX];
		slot_dir(c, cg->slot, dir);
		kill_v1_procs(dir);
	}
}

void cgroup_run_destroy(struct cgroup_run *cg)
{
	if (cg->dirfd < 0 && !cg->path[0])
		return;
	long long deadline = now_ms() + EMPTY_WAIT_MS;
	cgroup_run_kill(cg);
	if (cg->dirfd >= 0 && !wait_v2_empty(cg->dirfd, cg->path, deadline))
		cgroup_warn("%s still populated after %d ms", cg->path, EMPTY_WAIT_MS);
	if (cg->path[0] && remove_dir(cg->path, deadline) < 0)
		cgroup_warn("rmdir %s: %m", cg->path);
	if (cg->dirfd >= 0)
		close(cg->dirfd);
	cg->dirfd = -1;
	cg->path[0] = '\0';
}
