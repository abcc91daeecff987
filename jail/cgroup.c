/* cgroups for sandboxes.
 *
 * Theory of operation
 *
 * Every slot (jail/executor.c: one sandbox that may be alive, with a uid of
 * its own) has one cgroup v2 directory, <parent>/slot-<k>, made once at
 * start-up with its limits and reused run after run, where <parent> is
 * <v2 mount><our own v2 cgroup>/<cgroup_name>. A run claims its slot's
 * cgroup (cgroup_run_create: a dup of the slot's O_DIRECTORY descriptor and
 * the base counters) and its child is created straight into it with
 * clone3(CLONE_INTO_CGROUP) through that descriptor, so there is no moment in
 * which a sandbox runs outside its cgroup. A run ends with SIGKILL to its
 * init (recorded by cgroup_run_set_init): the init is pid 1 of the run's
 * pid namespace, which every task of the run is in and cannot leave, so its
 * death kills them all and stops new forks. cgroup.events tells when the
 * last task is gone, and the directory is left for the next run of the slot:
 * a mkdir and an rmdir per run cost more than the whole claim.
 *
 * Not cgroup.kill, except as the last resort: since Linux 6.14 (seen on
 * 6.18) every cgroup.kill bumps a counter of the cgroup that clone3 with
 * CLONE_INTO_CGROUP compares against the *caller's* cgroup's, so every child
 * cloned into a cgroup that was once killed is SIGKILLed at birth. A
 * generation that took a cgroup.kill (a run that did not end by its init's
 * death, or did not empty in time) is therefore retired like a populated one. The BPF egress programs attach to <parent> and tell
 * runs apart by their cgroup id (the directory's inode): a slot's runs share
 * it one after another, and the executor takes a run's policy back before
 * the slot is free again.
 *
 * A reused cgroup must hold nothing of the run before: before every claim it
 * is checked to be empty (cgroup.events "populated 0", not frozen; no
 * descendants in cgroup.stat; pids.current 0, so a zombie is not charged to
 * the next run; on hybrid hosts the v1 slots hold no task). A cgroup that
 * failed the check, or that did not empty within EMPTY_WAIT_MS of its run's
 * kill, is never claimed again (fail closed: cgroupfs v2 cannot rename): the
 * slot moves on to a new generation, slot-<k>.<g>, made at the next claim,
 * and the retired ones are removed once they are empty (after a later run
 * of the slot, or at shutdown). Nothing else of a run stays behind: the
 * limits are written only by us (the directories and their files belong to
 * root, mode 0755/0644, and a sandbox has no capability and no cgroupfs), the
 * hit counters are compared against their value at the claim, and the
 * memory a run's processes held is uncharged when they exit (what stays
 * charged is clean page cache, which the kernel reclaims before it would
 * count against the next run's limit).
 *
 * Memory, pids and cpu limits come from one of two places:
 *
 *   - v2 controllers, where our own cgroup offers memory, pids and cpu in
 *     cgroup.controllers (a normal host, with systemd's Delegate=yes). They
 *     are enabled in our cgroup's and the parent's cgroup.subtree_control,
 *     and each slot's limits are written into its directory once. v2 forbids
 *     processes in a non-root cgroup that distributes controllers to
 *     children, so if enabling them in our own cgroup is refused with EBUSY,
 *     our processes move to the leaf <own>/daemon first.
 *
 *   - v1 hierarchies, on hybrid hosts whose v2 mount has no such controllers
 *     (like our build machines). One v1 cgroup per slot and controller,
 *     <v1 mount><own v1 cgroup>/<cgroup_name>/slot-<k> (a generation's name,
 *     as in v2), is created with the slot's v2 cgroup and its limits and
 *     reused with it (moving a pid into v1 is sometimes slow to set up, and
 *     mkdir costs too): the run's pid is moved into them while it waits
 *     before exec. Being below our own v1 cgroups,
 *     the host's limits on sandcelld still apply to the sandboxes.
 *
 * Whether a run hit a limit is told by counters that only grow
 * (memory.events / memory.oom_control `oom_kill`, pids.events `max`): they
 * are read when the run claims the cgroup and compared at the end, so a slot's
 * earlier runs never count as this run's hits.
 *
 * A leftover parent (sandcelld crashed) is killed, emptied and reused.
 *
 * Threads: the state below is written only by cgroups_init and
 * cgroups_cleanup, except each slot's own entry, which only the run holding
 * the slot touches (the executor gives a slot to one run at a time), so runs
 * of different slots proceed in parallel.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "jail/backoff.h"
#include "jail/cgroup.h"

/* How long a killed cgroup may take to empty before we give up on it. */
#define EMPTY_WAIT_MS 2000
/* CFS period for the cpu limit: 100 ms, the kernel's default. */
#define CPU_PERIOD_US 100000
/* The leaf our own processes move to when v2 controllers need enabling. */
#define DAEMON_LEAF "daemon"

enum v1_controller { V1_MEMORY, V1_PIDS, V1_CPU, V1_COUNT };
static const char *const v1_names[V1_COUNT] = {"memory", "pids", "cpu"};

/* One slot's cgroups. Generation gen is the one runs claim (its v2
 * directory open as dirfd); [oldest, gen) were retired and may still exist. */
struct slot_cgroups {
	unsigned gen;
	unsigned oldest;
	int dirfd;    /* -1: generation gen is not made yet */
	/* files read at every claim and every end of a run, kept open: */
	int events;   /* cgroup.events of the v2 cgroup */
	int pids;     /* pids.current (v2, or the v1 pids slot) */
	int oom;      /* memory.events (v2) or memory.oom_control (v1): oom_kill */
	int pids_max; /* pids.events: max */
	const char *unfit; /* why it must never be claimed again, or NULL */
};

static struct {
	const struct jail_config *cfg;
	unsigned nslots;
	bool ready;
	bool v2_controllers;
	char parent[PATH_MAX - 64];          /* the v2 parent of all runs, room for "/slot-<k>.<g>" */
	/* hybrid: <v1 mount><own>/<cgroup_name>, short enough for "/slot-<k>.<g>" */
	char v1_parent[V1_COUNT][PATH_MAX - 64];
	struct slot_cgroups *slots;          /* nslots of them */
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

/* Reads a cgroup file through a descriptor kept open (pread from 0 reads
 * its current contents again). Returns the length or -1. */
static ssize_t pread_file(int fd, char *buf, size_t size)
{
	ssize_t n = fd >= 0 ? pread(fd, buf, size - 1, 0) : -1;
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* The value of "key value" in a flat keyed file (memory.events, ...) kept
 * open as fd; 0 if the file or the key is missing. */
static uint64_t read_counter(int fd, const char *key)
{
	char buf[4096];
	if (pread_file(fd, buf, sizeof buf) < 0)
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

/* Waits (bounded) until cgroup.events, open as fd, says "populated 0". */
static bool wait_events_empty(int fd, long long deadline)
{
	for (;;) {
		char buf[256];
		if (pread_file(fd, buf, sizeof buf) < 0)
			return false;
		if (strstr(buf, "populated 0"))
			return true;
		long long left = deadline - monotonic_ms();
		if (left <= 0)
			return false;
		/* cgroup.events signals every change with POLLPRI. */
		struct pollfd pfd = {.fd = fd, .events = POLLPRI};
		poll(&pfd, 1, left > 50 ? 50 : (int)left);
	}
}

/* Waits (bounded) until the v2 cgroup dir has no task left. */
static bool wait_v2_empty(const char *dir, long long deadline)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/cgroup.events", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT; /* already gone */
	bool empty = wait_events_empty(fd, deadline);
	close(fd);
	return empty;
}

/* rmdir, retrying while the kernel still holds the cgroup (EBUSY). */
static int remove_dir(const char *dir, long long deadline)
{
	while (rmdir(dir) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || monotonic_ms() >= deadline)
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
		if (monotonic_ms() >= deadline)
			return false;
		kill_v1_procs(dir);
		sleep_ms(2);
	}
}

/* A slot's cgroup of generation gen under base: slot-<k>, then slot-<k>.<g>. */
static void generation_dir(const char *base, unsigned slot, unsigned gen, char *dir)
{
	int n = gen == 0 ? snprintf(dir, PATH_MAX, "%s/slot-%u", base, slot)
			 : snprintf(dir, PATH_MAX, "%s/slot-%u.%u", base, slot, gen);
	if (n < 0 || n >= PATH_MAX)
		dir[0] = '\0'; /* not reached: cgroups_init leaves room after every base */
}

/* The v1 cgroup for controller c of the slot's generation in use. */
static void slot_dir(enum v1_controller c, unsigned slot, char *dir)
{
	generation_dir(cgs.v1_parent[c], slot, cgs.slots[slot].gen, dir);
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
	return wait_v2_empty(dir, deadline);
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
	remove_children(cgs.parent, monotonic_ms() + EMPTY_WAIT_MS, empty_v2);
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

/* Hybrid hosts: <v1 mount><own>/<cgroup_name> for each controller, emptied
 * of what an earlier sandcelld left (its slots may hold other limits). */
static int prepare_v1_parents(char *err, size_t errlen)
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
		remove_children(cgs.v1_parent[c], monotonic_ms() + EMPTY_WAIT_MS, empty_v1);
	}
	return 0;
}

/* ---- slot generations ------------------------------------------------------------ */

/* The limits of a slot's v2 cgroup (v2 controllers), written once and kept
 * for every run of the generation. */
static int set_v2_limits(int dirfd, const char *dir, char *err, size_t errlen)
{
	const struct jail_config *cfg = cgs.cfg;
	char buf[64];

	if (cfg->memory_limit) {
		snprintf(buf, sizeof buf, "%" PRIu64, cfg->memory_limit);
		if (write_file(dirfd, dir, "memory.max", buf, err, errlen) < 0)
			return -1;
		/* No swap: present only where swap accounting is on. */
		if (write_file(dirfd, dir, "memory.swap.max", "0", err, errlen) < 0 && errno != ENOENT)
			return -1;
	}
	/* An OOM kill takes the whole sandbox, not one thread of it. */
	if (write_file(dirfd, dir, "memory.oom.group", "1", err, errlen) < 0)
		return -1;
	if (cfg->pids_limit)
		snprintf(buf, sizeof buf, "%u", cfg->pids_limit);
	else
		snprintf(buf, sizeof buf, "max");
	if (write_file(dirfd, dir, "pids.max", buf, err, errlen) < 0)
		return -1;
	if (cfg->cpu_percent)
		snprintf(buf, sizeof buf, "%llu %u",
			 (unsigned long long)cfg->cpu_percent * CPU_PERIOD_US / 100, CPU_PERIOD_US);
	else
		snprintf(buf, sizeof buf, "max %u", CPU_PERIOD_US);
	return write_file(dirfd, dir, "cpu.max", buf, err, errlen);
}

/* A directory made now, never one that already existed: what is inside an
 * old one (tasks, limits) is not known. */
static int make_fresh_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0755) < 0) {
		snprintf(err, errlen, "mkdir %s: %m", path);
		return -1;
	}
	return 0;
}

static int make_v1_slots(unsigned slot, char *err, size_t errlen)
{
	for (int c = 0; c < V1_COUNT; c++) {
		char dir[PATH_MAX];
		slot_dir(c, slot, dir);
		if (make_fresh_dir(dir, err, errlen) < 0 || set_v1_limits(c, dir, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* Kills what is left in a generation and removes its cgroups, without
 * waiting. True once none of them exists any more. */
static bool remove_generation(unsigned slot, unsigned gen)
{
	char dir[PATH_MAX], ignored[PATH_MAX + 64];
	bool gone = true;

	generation_dir(cgs.parent, slot, gen, dir);
	write_file(-1, dir, "cgroup.kill", "1", ignored, sizeof ignored);
	if (rmdir(dir) < 0 && errno != ENOENT)
		gone = false;
	for (int c = 0; c < V1_COUNT && !cgs.v2_controllers; c++) {
		generation_dir(cgs.v1_parent[c], slot, gen, dir);
		kill_v1_procs(dir);
		if (rmdir(dir) < 0 && errno != ENOENT)
			gone = false;
	}
	return gone;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void close_generation(struct slot_cgroups *sc)
{
	close_fd(&sc->dirfd);
	close_fd(&sc->events);
	close_fd(&sc->pids);
	close_fd(&sc->oom);
	close_fd(&sc->pids_max);
	sc->unfit = NULL;
}

/* Opens the files of the slot's generation in use that every run reads. */
static int open_generation_files(unsigned slot, char *err, size_t errlen)
{
	struct slot_cgroups *sc = &cgs.slots[slot];
	char mem[PATH_MAX], pids[PATH_MAX];

	generation_dir(cgs.parent, slot, sc->gen, mem);
	strcpy(pids, mem);
	if (!cgs.v2_controllers) {
		slot_dir(V1_MEMORY, slot, mem);
		slot_dir(V1_PIDS, slot, pids);
	}
	char path[2][PATH_MAX + 32];
	snprintf(path[0], sizeof path[0], "%s/%s", mem, cgs.v2_controllers ? "memory.events"
									    : "memory.oom_control");
	snprintf(path[1], sizeof path[1], "%s/pids.events", pids);
	/* the counters may be missing (read as 0), the emptiness checks may not */
	sc->oom = open(path[0], O_RDONLY | O_CLOEXEC);
	sc->pids_max = open(path[1], O_RDONLY | O_CLOEXEC);
	snprintf(path[1], sizeof path[1], "%s/pids.current", pids);
	sc->events = openat(sc->dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
	sc->pids = open(path[1], O_RDONLY | O_CLOEXEC);
	if (sc->events < 0 || sc->pids < 0) {
		snprintf(err, errlen, "open %s/cgroup.events or %s: %m", mem, path[1]);
		return -1;
	}
	return 0;
}

/* Gives up the slot's generation in use: the next claim makes a new one. */
static void retire_generation(unsigned slot, const char *why)
{
	struct slot_cgroups *sc = &cgs.slots[slot];
	char dir[PATH_MAX];

	generation_dir(cgs.parent, slot, sc->gen, dir);
	cgroup_warn("%s %s: not reused, a new cgroup replaces it", dir, why);
	close_generation(sc);
	sc->gen++;
}

/* Removes the slot's retired generations that have emptied, oldest first. */
static void remove_retired(unsigned slot)
{
	struct slot_cgroups *sc = &cgs.slots[slot];
	while (sc->oldest < sc->gen && remove_generation(slot, sc->oldest))
		sc->oldest++;
}

/* Makes the slot's cgroups of its generation in use, with their limits. */
static int make_generation(unsigned slot, char *err, size_t errlen)
{
	struct slot_cgroups *sc = &cgs.slots[slot];
	char dir[PATH_MAX];

	generation_dir(cgs.parent, slot, sc->gen, dir);
	if (make_fresh_dir(dir, err, errlen) < 0)
		goto fail;
	sc->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sc->dirfd < 0) {
		snprintf(err, errlen, "open %s: %m", dir);
		goto fail;
	}
	int rc = cgs.v2_controllers ? set_v2_limits(sc->dirfd, dir, err, errlen)
				    : make_v1_slots(slot, err, errlen);
	if (rc < 0 || open_generation_files(slot, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	close_generation(sc);
	remove_generation(slot, sc->gen);
	sc->gen++; /* never reuse a name that may still exist */
	return -1;
}

static bool has_line(const char *buf, const char *line)
{
	return word_in_list(buf, line, "\n");
}

/* Nothing of an earlier run is in the slot's cgroups: no task in the v2
 * cgroup or below it, not frozen, and no task charged to pids (not even a
 * zombie; on hybrid hosts every task of a run is in the v1 pids slot too). */
static bool generation_is_empty(const struct slot_cgroups *sc)
{
	char buf[256];

	if (pread_file(sc->events, buf, sizeof buf) < 0 || !has_line(buf, "populated 0") ||
	    has_line(buf, "frozen 1"))
		return false;
	return pread_file(sc->pids, buf, sizeof buf) > 0 && strcmp(buf, "0\n") == 0;
}

/* The slot's cgroup for the next run: the generation in use if it is
 * clean, else a new one. Returns its directory descriptor (not a dup). */
static int claim_generation(unsigned slot, char *err, size_t errlen)
{
	struct slot_cgroups *sc = &cgs.slots[slot];

	if (sc->dirfd >= 0 && sc->unfit)
		retire_generation(slot, sc->unfit);
	else if (sc->dirfd >= 0 && !generation_is_empty(sc))
		retire_generation(slot, "is not empty");
	if (sc->dirfd < 0 && make_generation(slot, err, errlen) < 0)
		return -1;
	return sc->dirfd;
}

static int make_all_generations(char *err, size_t errlen)
{
	cgs.slots = calloc(cgs.nslots, sizeof *cgs.slots);
	if (!cgs.slots) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned k = 0; k < cgs.nslots; k++)
		cgs.slots[k] = (struct slot_cgroups){
			.dirfd = -1, .events = -1, .pids = -1, .oom = -1, .pids_max = -1};
	for (unsigned k = 0; k < cgs.nslots; k++)
		if (make_generation(k, err, errlen) < 0)
			return -1;
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
				    : prepare_v1_parents(err, errlen);
	if (rc < 0 || make_all_generations(err, errlen) < 0)
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
	long long deadline = monotonic_ms() + EMPTY_WAIT_MS;
	char ignored[256];

	if (write_file(-1, cgs.parent, "cgroup.kill", "1", ignored, sizeof ignored) < 0 &&
	    errno != ENOENT)
		cgroup_warn("%s", ignored);
	remove_children(cgs.parent, deadline, empty_v2);
	if (!wait_v2_empty(cgs.parent, deadline) || remove_dir(cgs.parent, deadline) < 0)
		cgroup_warn("could not remove %s: %m", cgs.parent);
	for (int c = 0; c < V1_COUNT; c++) {
		if (!cgs.v1_parent[c][0])
			continue;
		remove_children(cgs.v1_parent[c], deadline, empty_v1);
		if (remove_dir(cgs.v1_parent[c], deadline) < 0)
			cgroup_warn("rmdir %s: %m", cgs.v1_parent[c]);
	}
	for (unsigned k = 0; cgs.slots && k < cgs.nslots; k++)
		close_generation(&cgs.slots[k]);
	free(cgs.slots);
	cgs.slots = NULL;
	cgs.ready = false;
}

const char *cgroups_parent_path(void)
{
	return cgs.parent;
}

/* ---- runs ------------------------------------------------------------------------- */

static uint64_t oom_kills(const struct cgroup_run *cg)
{
	return read_counter(cgs.slots[cg->slot].oom, "oom_kill");
}

static uint64_t pids_max_events(const struct cgroup_run *cg)
{
	return read_counter(cgs.slots[cg->slot].pids_max, "max");
}

int cgroup_run_create(unsigned slot, const char *kind, struct cgroup_run *cg, char *err, size_t errlen)
{
	memset(cg, 0, sizeof *cg);
	cg->dirfd = -1;
	cg->init_pidfd = -1;
	if (!cgs.ready || slot >= cgs.nslots) {
		snprintf(err, errlen, "cgroup_run_create: %s", cgs.ready ? "bad slot" : "not initialised");
		return -1;
	}
	cg->slot = slot;
	cg->kind = kind;
	int dirfd = claim_generation(slot, err, errlen);
	if (dirfd < 0)
		return -1;
	generation_dir(cgs.parent, slot, cgs.slots[slot].gen, cg->path);
	cg->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (cg->dirfd < 0) {
		snprintf(err, errlen, "dup %s: %m", cg->path);
		return -1;
	}
	cg->base_oom_kills = oom_kills(cg);
	cg->base_pids_max = pids_max_events(cg);
	return 0;
}

int cgroup_run_set_init(struct cgroup_run *cg, int pidfd, char *err, size_t errlen)
{
	close_fd(&cg->init_pidfd);
	cg->init_pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
	if (cg->init_pidfd < 0) {
		snprintf(err, errlen, "could not set up the sandbox: dup pidfd: %m");
		return -1;
	}
	return 0;
}

int cgroup_run_attach_v1(struct cgroup_run *cg, pid_t pid, char *err, size_t errlen)
{
	char buf[32], why[PATH_MAX + 96];

	if (cgs.v2_controllers)
		return 0;
	snprintf(buf, sizeof buf, "%d", (int)pid);
	for (int c = 0; c < V1_COUNT; c++) {
		char dir[PATH_MAX];
		slot_dir(c, cg->slot, dir);
		if (write_file(-1, dir, "cgroup.procs", buf, why, sizeof why) < 0) {
			/* the caller kills the child: it never runs outside its limits */
			snprintf(err, errlen, "could not set up the sandbox: its %s limit: %s",
				 v1_names[c], why);
			return -1;
		}
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

/* cgroup.kill, which leaves the generation unfit for new runs (see the
 * theory of operation): the next claim makes a new one. */
static void kill_whole_cgroup(struct cgroup_run *cg)
{
	char err[PATH_MAX + 64];

	cgs.slots[cg->slot].unfit = "took a cgroup.kill";
	if (write_file(cg->dirfd, cg->path, "cgroup.kill", "1", err, sizeof err) == 0 ||
	    cgs.v2_controllers)
		return;
	cgroup_warn("%s", err);
	for (int c = 0; c < V1_COUNT; c++) {
		char dir[PATH_MAX];
		slot_dir(c, cg->slot, dir);
		kill_v1_procs(dir);
	}
}

void cgroup_run_kill(struct cgroup_run *cg)
{
	if (cg->dirfd < 0)
		return;
	/* The run's init is pid 1 of the run's pid namespace, which holds every
	 * task of the run: its death kills them all and stops new forks (a
	 * reaped init, ESRCH, has already outlived them all). */
	if (cg->init_pidfd >= 0 &&
	    (syscall(SYS_pidfd_send_signal, cg->init_pidfd, SIGKILL, NULL, 0) == 0 || errno == ESRCH))
		return;
	char events[256];
	if (pread_file(cgs.slots[cg->slot].events, events, sizeof events) > 0 &&
	    has_line(events, "populated 0"))
		return; /* no task was ever started in it, or all are gone */
	kill_whole_cgroup(cg);
}

void cgroup_run_destroy(struct cgroup_run *cg)
{
	if (cg->dirfd < 0)
		return;
	long long deadline = monotonic_ms() + EMPTY_WAIT_MS;
	cgroup_run_kill(cg);
	bool empty = wait_events_empty(cgs.slots[cg->slot].events, deadline);
	if (!empty) {
		kill_whole_cgroup(cg);
		empty = wait_events_empty(cgs.slots[cg->slot].events, monotonic_ms() + EMPTY_WAIT_MS);
	}
	if (empty) {
		remove_retired(cg->slot);
	} else {
		cgroup_warn("%s (%s run) still populated after %d ms", cg->path,
			    cg->kind ? cg->kind : "a", EMPTY_WAIT_MS);
		cgs.slots[cg->slot].unfit = "was still populated after its run";
	}
	close(cg->dirfd);
	close_fd(&cg->init_pidfd);
	cg->dirfd = -1;
	cg->path[0] = '\0';
}
