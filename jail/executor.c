/* The executor: slots, languages and the life of a sandbox.
 *
 * Theory of operation
 *
 * executor_init prepares, once, everything a sandbox of each language needs
 * (jail/prepare.c), creates the cgroups (jail/cgroup.c), loads the network
 * egress programs (jail/network.c), starts the seccomp supervisor
 * (jail/supervisor.c) and the pool (jail/pool.c), and makes a mount point
 * for the jails' roots.
 *
 * A slot is one sandbox that may be alive: slot k runs as uid and gid
 * uid_base + k, so no two live sandboxes share an identity, and has its own
 * v1 cgroups on hybrid hosts. A kind is a language in a network mode (own
 * empty namespace, or network under the egress policy); the pool keeps warm
 * sandboxes of each kind.
 *
 * sandbox_take takes a warm sandbox of the kind or, if none is ready, waits
 * for a free slot and starts one (jail/spawn.c); a network sandbox is then
 * given the egress policy, before any code is sent. sandbox_collect feeds
 * and watches it (jail/collect.c); sandbox_release hands it to the pool's
 * threads, one of which kills what is left, takes the policy back, removes the
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/capabilities.h"
#include "jail/cgroup.h"
#include "jail/collect.h"
#include "jail/executor.h"
#include "jail/languages.h"
#include "jail/netns_pool.h"
#include "jail/network.h"
#include "jail/pool.h"
#include "jail/prepare.h"
#include "jail/supervisor.h"
#include "jail/zygote.h"

#define MAX_LANGUAGES 8

struct sandbox {
	unsigned slot;
	size_t kind;
	struct cgroup_run cg;
	uint64_t cgroup_id;
	struct spawned proc;
	bool running;
	bool admitted;          /* holds an egress policy: */
	uint32_t policy;        /* which one */
	int netns;              /* the private network namespace lent to it, or -1 */
	char tag[64];           /* the request it serves, for logs */
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
	int exe_fd;             /* this program's binary: the jails' init */
	int zygote_fd;          /* sandcell-zygote's binary, or -1 */
	bool zygotes_started;
} ex = { .lock = PTHREAD_MUTEX_INITIALIZER, .slot_freed = PTHREAD_COND_INITIALIZER, .lock_fd = -1,
	 .exe_fd = -1, .zygote_fd = -1 };

/* ---- kinds: a language in a network mode ------------------------------------ */

static size_t kind_of(const struct lang_state *ls, bool network)
{
	return (size_t)(ls - ex.langs) * MODE_COUNT + (network ? MODE_NETWORK : MODE_OFFLINE);
}

static struct lang_state *language_of_kind(size_t k)
{
	return &ex.langs[k / MODE_COUNT];
}

static bool kind_has_network(size_t k)
{
	return k % MODE_COUNT == MODE_NETWORK;
}

size_t executor_kinds(void)
{
	return ex.n_langs * MODE_COUNT;
}

/* The most warm sandboxes of one kind: warm_sandboxes_max, never below the floor. */
static unsigned warm_ceiling(const struct jail_config *cfg)
{
	return cfg->warm_sandboxes_max > cfg->warm_sandboxes ? cfg->warm_sandboxes_max
							     : cfg->warm_sandboxes;
}

void executor_kind_warm_range(size_t k, unsigned *floor, unsigned *ceiling)
{
	bool refused = kind_has_network(k) && network_refusal();
	*floor = refused ? 0 : ex.cfg->warm_sandboxes;
	*ceiling = refused ? 0 : warm_ceiling(ex.cfg);
}

uint64_t executor_memory_limit(void)
{
	return ex.cfg->memory_limit;
}

const char *executor_kind_name(size_t k)
{
	return k < executor_kinds() ? language_of_kind(k)->lang->name : "?";
}

static struct lang_state *state_of(const struct language *lang)
{
	for (size_t i = 0; i < ex.n_langs; i++)
		if (ex.langs[i].lang == lang)
			return &ex.langs[i];
	return NULL;
}

unsigned executor_slots(void)
{
	return ex.n_slots;
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
		close(ex.lock_fd); /* not ours: leave the file alone */
		ex.lock_fd = -1;
		return -1;
	}
	return 0;
}

/* Removes what make_root_mountpoint made, if this process holds the lock. */
static void unlock_run_dir(void)
{
	char path[4200];

	if (ex.lock_fd < 0)
		return;
	rmdir(ex.root);
	snprintf(path, sizeof(path), "%s/executor.lock", ex.cfg->run_dir);
	unlink(path);
	close(ex.lock_fd);
	ex.lock_fd = -1;
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
		unlock_run_dir();
		return -1;
	}
	return 0;
}

static void forget_languages(void)
{
	for (size_t i = 0; i < ex.n_langs; i++)
		forget_language(&ex.langs[i]);
	ex.n_langs = 0;
}

static int prepare_languages(char *err, size_t errlen)
{
	for (size_t i = 0; i < MAX_LANGUAGES && languages[i]; i++) {
		ex.n_langs = i + 1;
		if (prepare_language(&ex.langs[i], languages[i], ex.cfg, ex.root, network_netns_fd(),
				     ex.exe_fd, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* ---- zygotes ------------------------------------------------------------------------ */

static const char *mode_name(const struct language *lang, int mode)
{
	static char names[MAX_LANGUAGES][MODE_COUNT][48];
	char *n = names[state_of(lang) - ex.langs][mode];
	snprintf(n, sizeof(names[0][0]), "%s%s", lang->name, mode == MODE_NETWORK ? " (network)" : "");
	return n;
}

/* A zygote per prepared mode of each language that has one, if the operator
 * left zygote_path set and it is there; without, sandboxes start cold. */
static int start_zygotes(char *err, size_t errlen)
{
	struct zygote *zs[MAX_LANGUAGES * MODE_COUNT];
	size_t n = 0;

	if (!ex.cfg->zygote_path)
		return 0;
	if (ex.zygote_fd < 0)
		ex.zygote_fd = open(ex.cfg->zygote_path, O_PATH | O_CLOEXEC);
	if (ex.zygote_fd < 0) {
		fprintf(stderr, "level=warn msg=\"no zygote: Python sandboxes start cold\" "
			"zygote_path=\"%s\" error=\"%s\"\n", ex.cfg->zygote_path, strerror(errno));
		return 0;
	}
	for (size_t i = 0; i < ex.n_langs; i++) {
		struct lang_state *ls = &ex.langs[i];
		for (int mode = 0; mode < MODE_COUNT && ls->lang->zygote; mode++) {
			struct mode_state *m = &ls->modes[mode];
			if (!m->seccomp)
				continue; /* network disabled */
			struct zygote_setup setup = {
				.name = mode_name(ls->lang, mode), .mounts = &m->mounts,
				.exe_fd = ex.zygote_fd, .init_fd = ex.exe_fd, .program = ls->argv[0],
				.binary = m->plan.executable, .envp = ls->envp,
				.limits = m->plan.limits, .n_limits = m->plan.n_limits,
				.seccomp = m->seccomp, .preload = ex.cfg->python_preload,
			};
			m->plan.zygote = zs[n] = zygote_new(&setup);
			if (!zs[n++]) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
		}
	}
	if (zygotes_start(zs, n, err, errlen) != 0)
		return -1;
	ex.zygotes_started = true;
	return 0;
}

/* Before the languages are forgotten: the zygotes use their plans. */
static void stop_zygotes(void)
{
	if (ex.zygotes_started)
		zygotes_stop();
	ex.zygotes_started = false;
	for (size_t i = 0; i < ex.n_langs; i++)
		for (int mode = 0; mode < MODE_COUNT; mode++)
			ex.langs[i].modes[mode].plan.zygote = NULL;
	if (ex.zygote_fd >= 0)
		close(ex.zygote_fd);
	ex.zygote_fd = -1;
}

int executor_init(const struct jail_config *cfg, char *err, size_t errlen)
{
	ex.cfg = cfg;
	if (geteuid() != 0) {
		snprintf(err, errlen, "sandcell must run as root to build jails");
		return -1;
	}
	if (jail_check_capabilities(err, errlen) != 0)
		return -1;
	/* a program that stops reading its stdin must not kill the daemon */
	signal(SIGPIPE, SIG_IGN);
	if (ex.exe_fd < 0)
		ex.exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	if (ex.exe_fd < 0) {
		snprintf(err, errlen, "open /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	if (make_root_mountpoint(err, errlen) != 0)
		return -1;
	/* runs at once, as many again being torn down in the background, and
	 * the warm sandboxes of every kind */
	unsigned running = cfg->max_sandboxes ? cfg->max_sandboxes : 1;
	unsigned kinds = 0;
	while (languages[kinds / MODE_COUNT])
		kinds += MODE_COUNT;
	ex.n_slots = 2 * running + warm_ceiling(cfg) * kinds;
	ex.slots = calloc(ex.n_slots, sizeof(*ex.slots));
	if (!ex.slots) {
		snprintf(err, errlen, "out of memory");
		unlock_run_dir();
		return -1;
	}
	if (cgroups_init(cfg, ex.n_slots, err, errlen) != 0) {
		free(ex.slots);
		ex.slots = NULL;
		unlock_run_dir();
		return -1;
	}
	network_init(cfg, cgroups_parent_path(), ex.n_slots);
	if (prepare_languages(err, errlen) != 0 || supervisor_start(ex.n_slots, err, errlen) != 0 ||
	    start_zygotes(err, errlen) != 0 || pool_start(err, errlen) != 0) {
		executor_shutdown();
		return -1;
	}
	return 0;
}

void executor_kill_all(void)
{
	pthread_mutex_lock(&ex.lock);
	for (unsigned i = 0; ex.slots && i < ex.n_slots; i++)
		if (ex.slots[i] && ex.slots[i]->running)
			cgroup_run_kill(&ex.slots[i]->cg);
	pthread_mutex_unlock(&ex.lock);
}

void executor_shutdown(void)
{
	if (!ex.slots)
		return;
	executor_kill_all();
	pool_stop();
	stop_zygotes();
	cgroups_cleanup();
	supervisor_stop();
	network_shutdown();
	free(ex.slots);
	ex.slots = NULL;
	forget_languages();
	unlock_run_dir();
}

/* ---- numbers for metrics -------------------------------------------------------- */

unsigned executor_warm(const struct language *lang)
{
	struct lang_state *ls = state_of(lang);
	if (!ls)
		return 0;
	return pool_ready(kind_of(ls, false)) + pool_ready(kind_of(ls, true));
}

unsigned executor_zygotes(const struct language *lang, unsigned long long *forks)
{
	struct lang_state *ls = state_of(lang);
	unsigned running = 0;
	*forks = 0;
	for (int mode = 0; ls && mode < MODE_COUNT; mode++) {
		struct zygote *z = ls->modes[mode].plan.zygote;
		if (z) {
			running += zygote_running(z);
			*forks += zygote_forks(z);
		}
	}
	return running;
}

/* ---- network ---------------------------------------------------------------------- */

int executor_set_egress_policy(const struct egress_rule *rules, size_t n, char *err, size_t errlen)
{
	int rc = network_set_policy(rules, n, err, errlen);
	pool_wake(); /* network kinds may be warmed now */
	return rc;
}

const char *executor_network_refusal(void)
{
	return network_refusal();
}

void executor_refuse_network(const char *why)
{
	network_refuse(why);
}

/* The tag and language of the live sandbox with this cgroup id, for
 * network.c's reports. */
static bool describe_cgroup(uint64_t cgroup_id, char *tag, size_t tag_len, char *language,
			    size_t language_len)
{
	bool found = false;
	pthread_mutex_lock(&ex.lock);
	for (unsigned i = 0; ex.slots && i < ex.n_slots && !found; i++) {
		struct sandbox *sb = ex.slots[i];
		if (sb && sb->cgroup_id == cgroup_id && sb->tag[0]) {
			snprintf(tag, tag_len, "%s", sb->tag);
			snprintf(language, language_len, "%s", executor_kind_name(sb->kind));
			found = true;
		}
	}
	pthread_mutex_unlock(&ex.lock);
	return found;
}

void executor_on_blocked(executor_blocked_fn fn, void *ctx)
{
	network_on_blocked(fn, ctx, describe_cgroup);
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

/* A network sandbox gets a namespace of its own, unless the operator
 * brought one (netns): then it joins that. */
static int join_private_network(struct sandbox *sb, struct spawn_plan *plan, char *err,
				size_t errlen)
{
	if (network_netns_fd() >= 0)
		return 0;
	char why[512];
	sb->netns = netns_lease(&plan->netns_fd, why, sizeof(why));
	if (sb->netns < 0) {
		snprintf(err, errlen, "network is not available: no network namespace for the sandbox: %s",
			 why);
		return -1;
	}
	return 0;
}

int sandbox_spawn(size_t kind, const char *cgroup_kind, bool wait_for_slot, struct sandbox **out,
		  char *err, size_t errlen)
{
	struct lang_state *ls = language_of_kind(kind);
	struct mode_state *mode = &ls->modes[kind % MODE_COUNT];
	if (!mode->seccomp) {
		snprintf(err, errlen, "network sandboxes are not prepared (network is disabled)");
		return -1;
	}
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sb->kind = kind;
	sb->netns = -1;
	int slot = take_slot(sb, wait_for_slot);
	if (slot < 0) {
		free(sb);
		return 1;
	}
	sb->slot = (unsigned)slot;
	if (cgroup_run_create(sb->slot, cgroup_kind, &sb->cg, err, errlen) != 0) {
		give_back_slot(sb->slot);
		free(sb);
		return -1;
	}
	struct stat st;
	if (fstat(sb->cg.dirfd, &st) == 0)
		sb->cgroup_id = st.st_ino; /* the cgroup id the eBPF programs see */
	uid_t uid = ex.cfg->uid_base + sb->slot;
	struct spawn_plan plan = mode->plan;
	if ((kind_has_network(kind) && join_private_network(sb, &plan, err, errlen) != 0) ||
	    spawn_sandbox(&plan, uid, &sb->cg, &sb->proc, err, errlen) != 0) {
		cgroup_run_destroy(&sb->cg);
		netns_return(sb->netns); /* -1 (none lent): nothing to do */
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
	if (sb->admitted)
		network_release(sb->cgroup_id, sb->policy);
	network_forget_blocked(sb->cgroup_id);
	/* reap the jail's init unless the run did: a zombie keeps its pid
	 * charged to the slot's pids cgroup. The cgroup empties a moment before
	 * the init becomes a zombie, so wait (bounded) for the pidfd to say so. */
	struct pollfd exited = { .fd = sb->proc.pidfd, .events = POLLIN };
	siginfo_t info;
	if (poll(&exited, 1, 2000) == 1)
		waitid(P_PIDFD, sb->proc.pidfd, &info, WEXITED | WNOHANG);
	supervisor_forget(sb->slot);
	spawned_close(&sb->proc);
	netns_return(sb->netns); /* every process that was in it is gone */
	give_back_slot(sb->slot);
	free(sb);
}

/* A warm sandbox may have died while it waited (the OOM killer, an
 * operator): then it cannot take a program. The init's exit alone says so
 * late: the interpreter dies first, and its init exits only after it has
 * reaped it and written its status, which takes a while on a loaded host.
 * So any of: the init exited, the init wrote a status (the program ended),
 * nobody reads stdin any more (the interpreter is gone). */
static bool still_waiting(const struct sandbox *sb)
{
	struct pollfd p[] = {
		{ .fd = sb->proc.pidfd, .events = POLLIN },
		{ .fd = sb->proc.status_fd, .events = POLLIN },
		{ .fd = sb->proc.stdin_fd, .events = 0 }, /* POLLERR: no reader left */
	};
	return poll(p, sizeof(p) / sizeof(p[0]), 0) == 0;
}

static void mark_running(struct sandbox *sb, bool running, const char *tag)
{
	pthread_mutex_lock(&ex.lock);
	sb->running = running;
	if (tag)
		snprintf(sb->tag, sizeof(sb->tag), "%s", tag);
	pthread_mutex_unlock(&ex.lock);
}

int sandbox_take(const struct language *lang, bool network, const char *tag, struct sandbox **out,
		 char *err, size_t errlen)
{
	struct lang_state *ls = ex.slots ? state_of(lang) : NULL;
	if (!ls) {
		snprintf(err, errlen, "the executor is not ready");
		return -1;
	}
	/* fail closed: without an enforced egress policy, no network run */
	const char *refusal = network ? network_refusal() : NULL;
	if (refusal) {
		snprintf(err, errlen, "network is not available: %s", refusal);
		return -1;
	}
	size_t kind = kind_of(ls, network);
	struct sandbox *sb;
	while ((sb = pool_take(kind)) && !still_waiting(sb))
		pool_retire(sb);
	if (!sb && sandbox_spawn(kind, "run", true, &sb, err, errlen) != 0)
		return -1;
	if (network) {
		if (network_admit(sb->cgroup_id, &sb->policy, err, errlen) != 0) {
			pool_retire(sb);
			return -1;
		}
		sb->admitted = true;
	}
	mark_running(sb, true, tag);
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

int sandbox_collect(struct sandbox *sb, int client_fd, struct run_result *res, char *err,
		    size_t errlen)
{
	memset(res, 0, sizeof(*res));
	int rc = collect_run(&sb->proc, &sb->cg, &sb->input, ex.cfg->output_limit, ex.cfg->timeout_ms,
			     client_fd, res, err, errlen);
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
	mark_running(sb, false, NULL);
	/* Nothing of the run may go on after its answer (a program can report
	 * on fd 3 and keep working): killing the cgroup is a single write; the
	 * rest of the teardown need not delay the answer. */
	cgroup_run_kill(&sb->cg);
	pool_retire(sb);
}

int jail_run(const struct language *lang, bool network, const char *tag, const char *preload,
	     size_t preload_len, const char *code, size_t code_len, int client_fd,
	     struct run_result *res, char *err, size_t errlen)
{
	struct sandbox *sb;

	if (sandbox_take(lang, network, tag, &sb, err, errlen) != 0)
		return -1;
	int rc = sandbox_send(sb, preload, preload_len, code, code_len, err, errlen);
	if (rc == 0)
		rc = sandbox_collect(sb, client_fd, res, err, errlen);
	sandbox_release(sb);
	return rc;
}
