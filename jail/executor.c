/* The executor: slots, languages and the life of a sandbox.
 *
 * Theory of operation
 *
 * executor_init prepares, once, everything a sandbox of each language needs:
 * the mount plan, argv and environment, the exported seccomp program and the
 * rlimits; it creates the cgroups (jail/cgroup.c) and a mount point for the
 * jails' roots. A slot is one sandbox that may be alive: slot k runs as uid
 * and gid uid_base + k, so no two live sandboxes share an identity, and has
 * its own v1 cgroups on hybrid hosts. sandbox_take takes a warm sandbox
 * (jail/pool.c) or, if none is ready, waits for a free slot, creates the
 * run's cgroup and starts the jailed interpreter (jail/spawn.c);
 * sandbox_collect feeds and watches it (jail/collect.c); sandbox_release
 * hands it to the pool's thread, which kills what is left, removes the
 * cgroup and frees the slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/cgroup.h"
#include "jail/collect.h"
#include "jail/executor.h"
#include "jail/languages.h"
#include "jail/mounts.h"
#include "jail/pool.h"
#include "jail/seccomp_policy.h"
#include "jail/spawn.h"
#include "jail/supervisor.h"

#define MAX_LANGUAGES 8
#define MAX_LIMITS 8

struct lang_state {
	const struct language *lang;
	struct mount_plan mounts;
	char **argv;
	char **envp;
	struct sock_fprog *seccomp;
	struct spawn_limit limits[MAX_LIMITS];
	struct spawn_plan plan;
};

struct sandbox {
	unsigned slot;
	struct lang_state *ls;
	struct cgroup_run cg;
	struct spawned proc;
	bool running;
	char header[32];
	struct collect_input input;
};

static struct {
	const struct jail_config *cfg;
	struct lang_state langs[MAX_LANGUAGES];
	size_t n_langs;
	char root[4096];
	pthread_mutex_t lock;
	pthread_cond_t slot_freed;
	struct sandbox **slots; /* the sandbox holding each slot, or NULL */
	unsigned n_slots;
	int lock_fd;            /* flock on run_dir/executor.lock */
} ex = { .lock = PTHREAD_MUTEX_INITIALIZER, .slot_freed = PTHREAD_COND_INITIALIZER, .lock_fd = -1 };

const struct jail_config *executor_config(void)
{
	return ex.cfg;
}

/* ---- preparing the languages -------------------------------------------------- */

/* argv with @RUNNER@ and @HEAP_MB@ filled in. */
static char **build_argv(const struct language *lang, const char *executable)
{
	size_t n = 0;
	while (lang->args[n])
		n++;
	char **argv = calloc(n + 2, sizeof(char *));
	if (!argv)
		return NULL;
	argv[0] = strdup(executable);
	unsigned long long heap_mb = ex.cfg->memory_limit * 3 / 4 / (1024 * 1024);
	for (size_t i = 0; i < n; i++) {
		const char *a = lang->args[i];
		if (strcmp(a, "@RUNNER@") == 0)
			argv[i + 1] = strdup(lang->runner);
		else if (strstr(a, "@HEAP_MB@")) {
			int prefix = (int)(strstr(a, "@HEAP_MB@") - a);
			if (asprintf(&argv[i + 1], "%.*s%llu", prefix, a, heap_mb) < 0)
				argv[i + 1] = NULL;
		} else
			argv[i + 1] = strdup(a);
	}
	for (size_t i = 0; i <= n; i++)
		if (!argv[i])
			return NULL; /* out of memory at start-up; the caller fails */
	return argv;
}

static char **build_envp(const struct language *lang)
{
	const struct jail_config *cfg = ex.cfg;
	size_t n = 0;
	while (lang->env[n])
		n++;
	char **envp = calloc(n + 5, sizeof(char *));
	if (!envp)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		envp[k++] = strdup(lang->env[i]);
	/* both spellings: Python's urllib reads either, Node libraries the lower case */
	if (cfg->http_proxy && *cfg->http_proxy) {
		if (asprintf(&envp[k++], "HTTP_PROXY=%s", cfg->http_proxy) < 0 ||
		    asprintf(&envp[k++], "http_proxy=%s", cfg->http_proxy) < 0)
			return NULL;
	}
	if (cfg->https_proxy && *cfg->https_proxy) {
		if (asprintf(&envp[k++], "HTTPS_PROXY=%s", cfg->https_proxy) < 0 ||
		    asprintf(&envp[k++], "https_proxy=%s", cfg->https_proxy) < 0)
			return NULL;
	}
	return envp;
}

/* No RLIMIT_AS: address space is not memory. glibc reserves 64 MiB per
 * thread arena and V8 reserves gigabytes it never touches, so any useful
 * RLIMIT_AS breaks threads before the memory cgroup (which counts its OOM
 * kills and so gives the right error) is reached. */
static size_t build_limits(const struct language *lang, struct spawn_limit *l)
{
	const struct jail_config *cfg = ex.cfg;
	size_t n = 0;
	rlim_t cpu_seconds = cfg->timeout_ms / 1000 + 2;

	l[n++] = (struct spawn_limit){ RLIMIT_NOFILE, 1024 };
	l[n++] = (struct spawn_limit){ RLIMIT_FSIZE, cfg->file_size_limit };
	l[n++] = (struct spawn_limit){ RLIMIT_CORE, 0 };
	/* counts the uid's tasks (safe: each live sandbox has its own uid); above
	 * pids_limit so that the cgroup, which counts hits, is what stops a bomb */
	l[n++] = (struct spawn_limit){ RLIMIT_NPROC, cfg->pids_limit * 2 };
	/* second line behind the wall-clock timeout */
	l[n++] = (struct spawn_limit){ RLIMIT_CPU, cpu_seconds };
	l[n++] = (struct spawn_limit){ RLIMIT_MEMLOCK, 64 * 1024 };
	return n;
}

static int prepare_language(struct lang_state *ls, const struct language *lang, char *err, size_t errlen)
{
	const struct jail_config *cfg = ex.cfg;
	char root[sizeof(ex.root)];

	ls->lang = lang;
	snprintf(root, sizeof(root), "%s", ex.root);
	if (mount_plan_build(&ls->mounts, root, lang->interpreter(cfg), lang->binds, cfg->tmp_size,
			     err, errlen) != 0)
		return -1;
	const char *executable = ls->mounts.binds[0].source;
	ls->argv = build_argv(lang, executable);
	ls->envp = build_envp(lang);
	if (!ls->argv || !ls->envp) {
		snprintf(err, errlen, "preparing %s: out of memory", lang->name);
		return -1;
	}
	struct policy_options opt = {
		.language_syscalls = lang->syscalls,
		.extra_syscalls = cfg->extra_syscalls,
		.n_extra_syscalls = cfg->n_extra_syscalls,
		.allow_processes = cfg->allow_processes,
		.network = false,
		.notify = true,
	};
	ls->seccomp = seccomp_policy_build(&opt, err, errlen);
	if (!ls->seccomp)
		return -1;
	ls->plan = (struct spawn_plan){
		.mounts = &ls->mounts,
		.executable = executable,
		.argv = ls->argv,
		.envp = ls->envp,
		.seccomp = ls->seccomp,
		.limits = ls->limits,
		.n_limits = build_limits(lang, ls->limits),
	};
	return 0;
}

static void free_strings(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void forget_languages(void)
{
	for (size_t i = 0; i < ex.n_langs; i++) {
		struct lang_state *ls = &ex.langs[i];
		mount_plan_free(&ls->mounts);
		free_strings(ls->argv);
		free_strings(ls->envp);
		seccomp_policy_free(ls->seccomp);
		memset(ls, 0, sizeof(*ls));
	}
	ex.n_langs = 0;
}

static struct lang_state *state_of(const struct language *lang)
{
	for (size_t i = 0; i < ex.n_langs; i++)
		if (ex.langs[i].lang == lang)
			return &ex.langs[i];
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

/* One executor per run_dir: a second daemon with the same settings would
 * otherwise take the first one's cgroups for leftovers of a crash and kill
 * its sandboxes. The lock lives as long as the process. */
static int lock_run_dir(char *err, size_t errlen)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/executor.lock", ex.cfg->run_dir);
	if (ex.lock_fd < 0)
		ex.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ex.lock_fd < 0) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(ex.lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "%s is in use by another sandcelld (%s)", ex.cfg->run_dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int make_root_mountpoint(char *err, size_t errlen)
{
	snprintf(ex.root, sizeof(ex.root), "%s/root", ex.cfg->run_dir);
	if (mkdir(ex.cfg->run_dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", ex.cfg->run_dir, strerror(errno));
		return -1;
	}
	if (lock_run_dir(err, errlen) != 0)
		return -1;
	if (mkdir(ex.root, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", ex.root, strerror(errno));
		return -1;
	}
	return 0;
}

int executor_init(const struct jail_config *cfg, char *err, size_t errlen)
{
	ex.cfg = cfg;
	if (geteuid() != 0) {
		snprintf(err, errlen, "sandcell must run as root to build jails");
		return -1;
	}
	/* a program that stops reading its stdin must not kill the daemon */
	signal(SIGPIPE, SIG_IGN);
	if (make_root_mountpoint(err, errlen) != 0)
		return -1;
	for (size_t i = 0; languages[i]; i++) {
		if (prepare_language(&ex.langs[i], languages[i], err, errlen) != 0) {
			ex.n_langs = i + 1;
			forget_languages();
			return -1;
		}
		ex.n_langs = i + 1;
	}
	/* runs at once, as many again being torn down in the background, and
	 * the warm sandboxes */
	unsigned running = cfg->max_sandboxes ? cfg->max_sandboxes : 1;
	ex.n_slots = 2 * running + cfg->warm_sandboxes * (unsigned)ex.n_langs;
	ex.slots = calloc(ex.n_slots, sizeof(*ex.slots));
	if (!ex.slots || cgroups_init(cfg, ex.n_slots, err, errlen) != 0) {
		free(ex.slots);
		ex.slots = NULL;
		forget_languages();
		return -1;
	}
	if (supervisor_start(ex.n_slots, err, errlen) != 0 ||
	    pool_start(cfg->warm_sandboxes, err, errlen) != 0) {
		executor_shutdown();
		return -1;
	}
	return 0;
}

void executor_kill_all(void)
{
	pthread_mutex_lock(&ex.lock);
	for (unsigned i = 0; i < ex.n_slots; i++)
		if (ex.slots[i] && ex.slots[i]->running)
			cgroup_run_kill(&ex.slots[i]->cg);
	pthread_mutex_unlock(&ex.lock);
}

unsigned executor_running(void)
{
	unsigned n = 0;
	pthread_mutex_lock(&ex.lock);
	for (unsigned i = 0; ex.slots && i < ex.n_slots; i++)
		if (ex.slots[i] && ex.slots[i]->running)
			n++;
	pthread_mutex_unlock(&ex.lock);
	return n;
}

unsigned executor_warm(const struct language *lang)
{
	struct lang_state *ls = state_of(lang);
	return ls ? pool_ready((size_t)(ls - ex.langs)) : 0;
}

size_t executor_languages(void)
{
	return ex.n_langs;
}

struct lang_state *executor_language(size_t i)
{
	return i < ex.n_langs ? &ex.langs[i] : NULL;
}

const char *executor_language_name(size_t i)
{
	return i < ex.n_langs ? ex.langs[i].lang->name : "?";
}

unsigned executor_slots(void)
{
	return ex.n_slots;
}

void executor_shutdown(void)
{
	if (!ex.slots)
		return;
	executor_kill_all();
	pool_stop();
	cgroups_cleanup();
	supervisor_stop();
	free(ex.slots);
	ex.slots = NULL;
	forget_languages();
	rmdir(ex.root);
	if (ex.lock_fd >= 0) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/executor.lock", ex.cfg->run_dir);
		unlink(path);
		close(ex.lock_fd);
		ex.lock_fd = -1;
	}
}

/* ---- one sandbox ----------------------------------------------------------------- */

/* A free slot for sb, or -1 if none and !wait. */
static int take_slot(struct sandbox *sb, bool wait)
{
	pthread_mutex_lock(&ex.lock);
	for (;;) {
		for (unsigned i = 0; i < ex.n_slots; i++) {
			if (!ex.slots[i]) {
				ex.slots[i] = sb;
				pthread_mutex_unlock(&ex.lock);
				return (int)i;
			}
		}
		if (!wait) {
			pthread_mutex_unlock(&ex.lock);
			return -1;
		}
		pthread_cond_wait(&ex.slot_freed, &ex.lock);
	}
}

static void give_back_slot(unsigned slot)
{
	pthread_mutex_lock(&ex.lock);
	ex.slots[slot] = NULL;
	pthread_cond_signal(&ex.slot_freed);
	pthread_mutex_unlock(&ex.lock);
}

int sandbox_spawn(struct lang_state *ls, const char *kind, bool wait_for_slot,
		  struct sandbox **out, char *err, size_t errlen)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sb->ls = ls;
	int slot = take_slot(sb, wait_for_slot);
	if (slot < 0) {
		free(sb);
		return 1;
	}
	sb->slot = (unsigned)slot;
	if (cgroup_run_create(sb->slot, kind, &sb->cg, err, errlen) != 0) {
		give_back_slot(sb->slot);
		free(sb);
		return -1;
	}
	uid_t uid = ex.cfg->uid_base + sb->slot;
	if (spawn_sandbox(&ls->plan, uid, &sb->cg, &sb->proc, err, errlen) != 0) {
		cgroup_run_destroy(&sb->cg);
		give_back_slot(sb->slot);
		free(sb);
		return -1;
	}
	/* the supervisor owns the seccomp listener from now on */
	int notify_fd = sb->proc.notify_fd;
	sb->proc.notify_fd = -1;
	if (supervisor_watch(sb->slot, notify_fd, err, errlen) != 0) {
		sandbox_destroy(sb);
		return -1;
	}
	*out = sb;
	return 0;
}

void sandbox_destroy(struct sandbox *sb)
{
	cgroup_run_destroy(&sb->cg);
	/* reap the jail's init unless the run did: a zombie keeps its pid
	 * charged to the slot's pids cgroup */
	siginfo_t info;
	waitid(P_PIDFD, sb->proc.pidfd, &info, WEXITED | WNOHANG);
	supervisor_forget(sb->slot);
	spawned_close(&sb->proc);
	give_back_slot(sb->slot);
	free(sb);
}

/* A warm sandbox may have died while it waited (the OOM killer, an
 * operator): then it cannot take a program. */
static bool still_waiting(const struct sandbox *sb)
{
	struct pollfd p = { .fd = sb->proc.pidfd, .events = POLLIN };
	return poll(&p, 1, 0) == 0;
}

static void mark_running(struct sandbox *sb, bool running)
{
	pthread_mutex_lock(&ex.lock);
	sb->running = running;
	pthread_mutex_unlock(&ex.lock);
}

int sandbox_take(const struct language *lang, bool network, struct sandbox **out,
		 char *err, size_t errlen)
{
	struct lang_state *ls = ex.slots ? state_of(lang) : NULL;
	if (!ls) {
		snprintf(err, errlen, "the executor is not ready");
		return -1;
	}
	/* Until the egress policy exists, a network run gets the same empty
	 * network namespace as any other: closed, never open. */
	(void)network;
	struct sandbox *sb;
	while ((sb = pool_take((size_t)(ls - ex.langs))) && !still_waiting(sb))
		pool_retire(sb);
	if (!sb && sandbox_spawn(ls, "run", true, &sb, err, errlen) != 0)
		return -1;
	mark_running(sb, true);
	*out = sb;
	return 0;
}

int sandbox_send(struct sandbox *sb, const char *preload, size_t preload_len,
		 const char *code, size_t code_len, char *err, size_t errlen)
{
	/* the runner's framing: "<preload length>\n<preload><code>" */
	int n = snprintf(sb->header, sizeof(sb->header), "%zu\n", preload ? preload_len : 0);
	sb->input = (struct collect_input){
		.parts = { sb->header, preload, code },
		.lens = { (size_t)n, preload ? preload_len : 0, code_len },
	};
	(void)err;
	(void)errlen;
	return 0;
}

int sandbox_collect(struct sandbox *sb, struct run_result *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	int rc = collect_run(&sb->proc, &sb->cg, &sb->input, ex.cfg->output_limit, ex.cfg->timeout_ms,
			     res, err, errlen);
	res->hits |= cgroup_run_hits(&sb->cg);
	/* a refused call only explains a failure, not a success */
	if (supervisor_refused(sb->slot) && res->exit_code != 0)
		res->hits |= JAIL_HIT_SECCOMP;
	if (res->hits & (JAIL_HIT_MEMORY | JAIL_HIT_PIDS) && res->signal)
		res->exit_code = -1;
	return rc;
}

void sandbox_release(struct sandbox *sb)
{
	if (!sb)
		return;
	mark_running(sb, false);
	/* the answer need not wait for the teardown */
	pool_retire(sb);
}

int jail_run(const struct language *lang, bool network, const char *preload, size_t preload_len,
	     const char *code, size_t code_len, struct run_result *res, char *err, size_t errlen)
{
	struct sandbox *sb;

	if (sandbox_take(lang, network, &sb, err, errlen) != 0)
		return -1;
	int rc = sandbox_send(sb, preload, preload_len, code, code_len, err, errlen);
	if (rc == 0)
		rc = sandbox_collect(sb, res, err, errlen);
	sandbox_release(sb);
	return rc;
}
