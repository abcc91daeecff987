/* Preparing a language; see prepare.h. Nothing here runs per request. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "jail/prepare.h"
#include "jail/seccomp_policy.h"

static void free_strings(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* v[(*k)++] = s; false if s is NULL (out of memory). v stays NULL-terminated
 * and without gaps, so free_strings frees all of it either way. */
static bool append(char **v, size_t *k, char *s)
{
	if (!s)
		return false;
	v[(*k)++] = s;
	return true;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	return rc < 0 ? NULL : s;
}

/* argv with @RUNNER@ and @HEAP_MB@ filled in; NULL if memory ran out.
 * argv[0] is the program's name: the interpreter's real path, or a venv's
 * own path to it. */
static char **build_argv(const struct language *lang, const struct jail_config *cfg,
			 const char *name)
{
	size_t n = 0, k = 0;
	while (lang->args[n])
		n++;
	char **argv = calloc(n + 2, sizeof(char *));
	unsigned long long heap_mb = cfg->memory_limit * 3 / 4 / (1024 * 1024);
	bool ok = argv && append(argv, &k, strdup(name));

	for (size_t i = 0; ok && i < n; i++) {
		const char *a = lang->args[i];
		const char *heap = strstr(a, "@HEAP_MB@");
		if (strcmp(a, "@RUNNER@") == 0)
			ok = append(argv, &k, strdup(lang->runner));
		else if (heap)
			ok = append(argv, &k, format("%.*s%llu", (int)(heap - a), a, heap_mb));
		else
			ok = append(argv, &k, strdup(a));
	}
	if (!ok) {
		free_strings(argv);
		return NULL;
	}
	return argv;
}

/* Worker threads for libraries that start one per core: the CPU share in
 * whole cores, and at most half of pids_limit. */
static unsigned library_threads(const struct jail_config *cfg)
{
	unsigned threads = (cfg->cpu_percent + 99) / 100;
	if (threads > cfg->pids_limit / 2)
		threads = cfg->pids_limit / 2;
	return threads ? threads : 1;
}

/* One entry of the language's environment with its placeholders filled in;
 * *skip if it names a modules directory there is none of. */
static char *fill_env(const char *entry, const struct jail_config *cfg, const char *modules, bool *skip)
{
	const char *threads = strstr(entry, "@THREADS@"), *dir = strstr(entry, "@MODULES@");
	*skip = false;
	if (threads)
		return format("%.*s%u", (int)(threads - entry), entry, library_threads(cfg));
	if (dir && !modules) {
		*skip = true;
		return NULL;
	}
	if (dir)
		return format("%.*s%s", (int)(dir - entry), entry, modules);
	return strdup(entry);
}

/* The language's environment and the proxies; NULL if memory ran out. */
static char **build_envp(const struct language *lang, const struct jail_config *cfg, const char *modules)
{
	size_t n = 0, k = 0;
	while (lang->env[n])
		n++;
	char **envp = calloc(n + 5, sizeof(char *));
	bool ok = envp != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		bool skip;
		char *e = fill_env(lang->env[i], cfg, modules, &skip);
		if (!skip)
			ok = append(envp, &k, e);
	}
	/* both spellings: Python's urllib reads either, Node libraries the lower case */
	if (ok && cfg->http_proxy && *cfg->http_proxy)
		ok = append(envp, &k, format("HTTP_PROXY=%s", cfg->http_proxy)) &&
		     append(envp, &k, format("http_proxy=%s", cfg->http_proxy));
	if (ok && cfg->https_proxy && *cfg->https_proxy)
		ok = append(envp, &k, format("HTTPS_PROXY=%s", cfg->https_proxy)) &&
		     append(envp, &k, format("https_proxy=%s", cfg->https_proxy));
	if (!ok) {
		free_strings(envp);
		return NULL;
	}
	return envp;
}

/* The venv an interpreter path belongs to: the directory with pyvenv.cfg
 * next to the path's directory or above it (bin/), as Python itself looks;
 * the path is taken as configured, since a venv's python is a link out of it.
 * An empty prefix when it is no venv's. */
static void find_venv(const char *interpreter, char *prefix, size_t len)
{
	char dir[4096], cfgfile[4096 + 16];
	prefix[0] = '\0';
	snprintf(dir, sizeof(dir), "%s", interpreter);
	for (int up = 0; up < 2; up++) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return;
		*slash = '\0';
		snprintf(cfgfile, sizeof(cfgfile), "%s/pyvenv.cfg", dir);
		if (access(cfgfile, R_OK) == 0) {
			snprintf(prefix, len, "%s", dir);
			return;
		}
	}
}

/* No RLIMIT_AS: address space is not memory. glibc reserves 64 MiB per
 * thread arena and V8 reserves gigabytes it never touches, so any useful
 * RLIMIT_AS breaks threads before the memory cgroup (which counts its OOM
 * kills and so gives the right error) is reached. */
static size_t build_limits(const struct jail_config *cfg, struct spawn_limit *l)
{
	size_t n = 0;
	rlim_t cpu_seconds = cfg->timeout_ms / 1000 + 2;

	l[n++] = (struct spawn_limit){ RLIMIT_NOFILE, 1024, 1024 };
	l[n++] = (struct spawn_limit){ RLIMIT_FSIZE, cfg->file_size_limit, cfg->file_size_limit };
	l[n++] = (struct spawn_limit){ RLIMIT_CORE, 0, 0 };
	/* counts the uid's tasks (safe: each live sandbox has its own uid); above
	 * pids_limit so that the cgroup, which counts hits, is what stops a bomb */
	l[n++] = (struct spawn_limit){ RLIMIT_NPROC, cfg->pids_limit * 2, cfg->pids_limit * 2 };
	/* Second line behind the wall-clock timeout. CPU time counts every thread
	 * and the warm sandbox's start-up, so it can run out first (seen under
	 * qemu): the soft limit's SIGXCPU, reported as the timeout, ends the
	 * program; the hard one (SIGKILL, unmarked) only if it ignores SIGXCPU. */
	l[n++] = (struct spawn_limit){ RLIMIT_CPU, cpu_seconds, cpu_seconds + 5 };
	l[n++] = (struct spawn_limit){ RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024 };
	return n;
}

static int prepare_mode(struct lang_state *ls, int mode, const struct jail_config *cfg,
			const char *root, int netns_fd, int exe_fd, char *err, size_t errlen)
{
	const struct language *lang = ls->lang;
	struct mode_state *m = &ls->modes[mode];
	bool network = mode == MODE_NETWORK;
	/* what the operator configured for the language, then name resolution
	 * for network sandboxes: the files the operator chose */
	const char *files[2 * (MAX_LINKS + 4) + 1] = { NULL };
	size_t k = 0;
	for (size_t i = 0; i < ls->n_links; i++) {
		files[k++] = ls->links[i];
		files[k++] = ls->links[i];
	}
	if (ls->venv[0]) {
		files[k++] = ls->venv;
		files[k++] = ls->venv;
	}
	if (ls->modules) {
		files[k++] = ls->modules;
		files[k++] = ls->modules;
	}
	if (network && cfg->resolv_conf) {
		files[k++] = cfg->resolv_conf;
		files[k++] = "/etc/resolv.conf";
	}
	if (network && cfg->hosts_file) {
		files[k++] = cfg->hosts_file;
		files[k++] = "/etc/hosts";
	}
	if (mount_plan_build(&m->mounts, root, lang->interpreter(cfg), lang->binds, files, cfg->tmp_size,
			     err, errlen) != 0)
		return -1;
	struct policy_options opt = {
		.language_syscalls = lang->syscalls,
		.extra_syscalls = cfg->extra_syscalls,
		.n_extra_syscalls = cfg->n_extra_syscalls,
		.allow_processes = cfg->allow_processes,
		.network = network,
		.notify = true,
	};
	m->seccomp = seccomp_policy_build(&opt, err, errlen);
	if (!m->seccomp)
		return -1;
	m->plan = (struct spawn_plan){
		.mounts = &m->mounts,
		.executable = m->mounts.binds[0].source,
		.argv = ls->argv,
		.envp = ls->envp,
		.seccomp = m->seccomp,
		.limits = ls->limits,
		.n_limits = build_limits(cfg, ls->limits),
		.exe_fd = exe_fd,
		.own_network = !network,
		.netns_fd = network ? netns_fd : -1,
	};
	return 0;
}

static bool is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return n && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The paths by which the configured interpreter reaches its binary
 * (/usr/bin/python3 -> python3.11; a venv's bin/python3 -> python ->
 * /usr/bin/python3): the binary is bound at each of them outside the venv, so
 * that they resolve in the jail as on the host (sys.executable, a venv's
 * home). */
static void find_links(struct lang_state *ls, const char *path, const char *real)
{
	char cur[4096], target[4096];
	snprintf(cur, sizeof(cur), "%s", path);
	for (int hops = 0; hops < 8 && strcmp(cur, real) != 0; hops++) {
		if (!is_under(cur, ls->venv) && ls->n_links < MAX_LINKS)
			snprintf(ls->links[ls->n_links++], sizeof(ls->links[0]), "%s", cur);
		ssize_t n = readlink(cur, target, sizeof(target) - 1);
		if (n <= 0)
			return;
		target[n] = '\0';
		char *slash = strrchr(cur, '/');
		if (target[0] == '/' || !slash)
			snprintf(cur, sizeof(cur), "%s", target);
		else
			snprintf(slash + 1, sizeof(cur) - (size_t)(slash + 1 - cur), "%s", target);
	}
}

/* A directory the operator has bound into the jail must not lie where each
 * sandbox gets fresh mounts of its own: they would hide it. */
static int check_bindable(const char *what, const char *path, char *err, size_t errlen)
{
	static const char *const fresh[] = { "/tmp", "/dev", "/proc", NULL };
	for (size_t i = 0; fresh[i]; i++) {
		if (is_under(path, fresh[i])) {
			snprintf(err, errlen, "%s %s is under %s, which each sandbox has a fresh one of: "
				 "move it elsewhere (e.g. /opt/sandcell)", what, path, fresh[i]);
			return -1;
		}
	}
	return 0;
}

int prepare_language(struct lang_state *ls, const struct language *lang, const struct jail_config *cfg,
		     const char *root, int netns_fd, int exe_fd, char *err, size_t errlen)
{
	char real[4096];

	memset(ls, 0, sizeof(*ls));
	ls->lang = lang;
	if (!realpath(lang->interpreter(cfg), real)) {
		snprintf(err, errlen, "interpreter %s of %s: not found", lang->interpreter(cfg), lang->name);
		return -1;
	}
	if (lang->venv)
		find_venv(lang->interpreter(cfg), ls->venv, sizeof(ls->venv));
	const char *modules = lang->modules ? lang->modules(cfg) : NULL;
	ls->modules = modules && *modules ? modules : NULL;
	if ((ls->venv[0] && check_bindable("the venv", ls->venv, err, errlen) != 0) ||
	    (ls->modules && check_bindable("the modules directory", ls->modules, err, errlen) != 0))
		return -1;
	find_links(ls, lang->interpreter(cfg), real);
	ls->argv = build_argv(lang, cfg, ls->venv[0] ? lang->interpreter(cfg) : real);
	ls->envp = build_envp(lang, cfg, ls->modules);
	if (!ls->argv || !ls->envp) {
		snprintf(err, errlen, "preparing %s: out of memory", lang->name);
		return -1;
	}
	/* network sandboxes only where the operator enabled network */
	int modes = cfg->network ? MODE_COUNT : MODE_NETWORK;
	for (int mode = 0; mode < modes; mode++)
		if (prepare_mode(ls, mode, cfg, root, netns_fd, exe_fd, err, errlen) != 0)
			return -1;
	return 0;
}

void forget_language(struct lang_state *ls)
{
	for (int mode = 0; mode < MODE_COUNT; mode++) {
		mount_plan_free(&ls->modes[mode].mounts);
		seccomp_policy_free(ls->modes[mode].seccomp);
	}
	free_strings(ls->argv);
	free_strings(ls->envp);
	memset(ls, 0, sizeof(*ls));
}
