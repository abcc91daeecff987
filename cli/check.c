/* `sandcell check`: what this host supports, one finding per line.
 *
 *   cgroup v2 mount and its controllers, the v1 hierarchies a hybrid host
 *   uses for limits instead, seccomp, the namespaces a jail needs (each
 *   tried with unshare() in a throw-away child), the configured
 *   interpreters (their --version), a private network namespace connected
 *   by pasta (made once, for real), the network egress filter (can the eBPF
 *   programs be loaded and attached here, and the policy network sandboxes
 *   would get), and finally a real executor start-up with the CLI's private
 *   identity, which is what sandcelld would do.
 *
 * Exit status 0 when everything sandcelld needs is there, 1 otherwise.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bpf/egress.h"
#include "cli/cli.h"
#include "fcgi/egress_policy.h"
#include "jail/capabilities.h"
#include "jail/netns_pool.h"

static int failures;

static void finding(bool ok, bool required, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void finding(bool ok, bool required, const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("%-22s %s  ", what, ok ? "ok  " : required ? "FAIL" : "no  ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!ok && required)
		failures++;
}

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* The mount point of fstype (with `option` among its super options, if
 * given) from /proc/self/mountinfo. */
static bool find_mount(const char *fstype, const char *option, char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - "), mnt[1024], type[64], src[256], opts[1024] = "";

		if (!sep || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s %1023s", type, src, opts) < 2)
			continue;
		if (strcmp(type, fstype))
			continue;
		if (option) {
			bool has = false;

			for (char *save = NULL, *o = strtok_r(opts, ",", &save); o;
			     o = strtok_r(NULL, ",", &save))
				has |= !strcmp(o, option);
			if (!has)
				continue;
		}
		snprintf(out, outlen, "%s", mnt);
		found = true;
	}
	fclose(f);
	return found;
}

static bool lists_all(const char *controllers, const char *const *names)
{
	for (size_t i = 0; names[i]; i++) {
		char word[32];
		const char *p = controllers;
		bool found = false;
		int n;

		while (!found && sscanf(p, "%31s%n", word, &n) == 1) {
			found = !strcmp(word, names[i]);
			p += n;
		}
		if (!found)
			return false;
	}
	return true;
}

/* A "Name:\tvalue" line of /proc/self/status, parsed with base. */
static bool status_field(const char *name, int base, uint64_t *value)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	size_t n = strlen(name);
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':') {
			*value = strtoull(line + n + 1, NULL, base);
			found = true;
		}
	fclose(f);
	return found;
}

/* Whose view this report is (cli/unit.c): the service's settings, or not. */
static void check_context(void)
{
	const char *unit = cli_unit();

	if (unit && strcmp(unit, "scope"))
		finding(true, false, "context", "%s's settings (capabilities, umask, file-system "
			"protection) in a transient unit: what the service can do", unit);
	else
		finding(true, false, "context", "%s: this shell's capabilities and umask, not the "
			"service's", unit ? "a scope of its own (no sandcell.service installed)"
					  : "as started (no systemd)");
}

/* The capabilities the jails need (jail/capabilities.c), and the umask. */
static void check_capabilities(void)
{
	size_t n;
	const struct jail_capability *caps = jail_capabilities(&n);
	uint64_t umask_value = 0;

	for (size_t i = 0; i < n; i++) {
		bool has = jail_has_capability(caps[i].bit);

		if (!has || caps[i].required)
			finding(has, caps[i].required, caps[i].name, "%s (%s)",
				has ? "present" : "missing", caps[i].use);
	}
	if (status_field("Umask", 8, &umask_value))
		finding(true, false, "umask", "%04" PRIo64 " (jails set their own modes)", umask_value);
}

static void check_cgroups(void)
{
	static const char *const needed[] = { "memory", "pids", "cpu", NULL };
	char v2[1024], own[4096], path[4096 + 1024 + 32], ctl[512] = "";
	bool v1_all = true;

	if (!find_mount("cgroup2", NULL, v2, sizeof(v2))) {
		finding(false, true, "cgroup v2", "not mounted (required: runs, cgroup.kill, BPF)");
		return;
	}
	if (egress_own_cgroup(own, sizeof(own)) < 0)
		snprintf(own, sizeof(own), "(path too long)");
	snprintf(path, sizeof(path), "%s%s/cgroup.controllers", v2, strcmp(own, "/") ? own : "");
	read_line(path, ctl, sizeof(ctl));
	finding(true, true, "cgroup v2", "%s (our cgroup %s; controllers: %s)", v2, own,
		ctl[0] ? ctl : "none");
	if (lists_all(ctl, needed)) {
		finding(true, true, "limits", "cgroup v2 controllers memory, pids, cpu");
		return;
	}
	for (size_t i = 0; needed[i]; i++) {
		char mnt[1024];
		bool ok = find_mount("cgroup", needed[i], mnt, sizeof(mnt));

		finding(ok, false, needed[i], ok ? "v1 hierarchy at %s" : "no v1 hierarchy%s",
			ok ? mnt : "");
		v1_all &= ok;
	}
	finding(v1_all, true, "limits", v1_all ?
		"v1 hierarchies (hybrid host: v2 lacks memory/pids/cpu)" :
		"neither v2 controllers nor v1 hierarchies for memory, pids and cpu");
}

static void check_seccomp(void)
{
	char actions[256] = "";
	bool ok = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;

	read_line("/proc/sys/kernel/seccomp/actions_avail", actions, sizeof(actions));
	finding(ok, true, "seccomp", ok ? "filters available (actions: %s)" : "not available%s",
		ok ? actions : "");
}

/* unshare(flag) in a child that exits at once: 0, or the errno. */
static int try_unshare(int flag)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(unshare(flag) == 0 ? 0 : (errno & 0x7f));
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return EINVAL;
	return WEXITSTATUS(status);
}

static void check_namespaces(void)
{
	static const struct {
		int flag;
		const char *name;
		bool required;
	} ns[] = {
		{ CLONE_NEWNS, "mount namespace", true },
		{ CLONE_NEWPID, "pid namespace", true },
		{ CLONE_NEWNET, "network namespace", true },
		{ CLONE_NEWIPC, "ipc namespace", true },
		{ CLONE_NEWUTS, "uts namespace", true },
		{ CLONE_NEWUSER, "user namespace", false },
	};

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		int e = try_unshare(ns[i].flag);

		finding(e == 0, ns[i].required, ns[i].name, e == 0 ? "can be created%s" : "%s",
			e == 0 ? (ns[i].required ? "" : " (not used: sandcelld runs as root)")
			       : strerror(e));
	}
}

/* The first line of `path --version`, run directly (no shell). */
static bool interpreter_version(const char *path, char *out, size_t outlen)
{
	int fds[2];
	pid_t pid;
	ssize_t n;
	int status;

	out[0] = '\0';
	if (access(path, X_OK) != 0 || pipe2(fds, O_CLOEXEC) != 0)
		return false;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return false;
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execl(path, path, "--version", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], out, outlen - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void check_interpreters(const struct sandcell_config *cfg)
{
	const struct { const char *lang, *path; } in[] = {
		{ "python3", cfg->python_path },
		{ "nodejs", cfg->nodejs_path },
	};

	for (size_t i = 0; i < 2; i++) {
		char version[128], what[32];
		bool ok = interpreter_version(in[i].path, version, sizeof(version));

		snprintf(what, sizeof(what), "%s", in[i].lang);
		finding(ok, true, what, "%s%s%s", in[i].path, ok ? ": " : ": not runnable",
			ok ? version : "");
	}
}

/* Not required: without a zygote Python sandboxes start cold, equally jailed. */
static void check_zygote(const struct sandcell_config *cfg)
{
	const char *what = "python3 zygote";
	char real[PATH_MAX];

	if (!cfg->zygote_path || !*cfg->zygote_path) {
		finding(true, false, what, "off (zygote_path is empty): Python sandboxes start cold");
		return;
	}
	if (access(cfg->zygote_path, X_OK) != 0) {
		finding(false, false, what, "%s: %s: Python sandboxes start cold", cfg->zygote_path,
			strerror(errno));
		return;
	}
	const char *base = realpath(cfg->python_path, real) ? strrchr(real, '/') + 1 : "(not found)";
	if (strcmp(base, ZYGOTE_PYTHON) != 0) {
		finding(false, false, what, "%s embeds %s, python_path is %s: Python sandboxes start cold",
			cfg->zygote_path, ZYGOTE_PYTHON, base);
		return;
	}
	finding(true, false, what, "%s (%s): Python sandboxes fork from it", cfg->zygote_path,
		ZYGOTE_PYTHON);
}

/* Not required: without it sandcelld still serves runs without network and
 * refuses (never runs open) those that ask for it. */
static void check_egress(const struct sandcell_config *cfg)
{
	char report[4096];

	if (!cfg->enable_network) {
		finding(true, false, "network egress (eBPF)", "not used: enable_network is off");
		return;
	}
	bool ok = egress_check(report, sizeof(report)) == 0;
	finding(ok, false, "network egress (eBPF)", ok ?
		"the programs load and attach; pins in %s" :
		"cannot be enforced: network runs will be refused (runs without network work); "
		"pins would be in %s", cfg->egress_pin_dir);
	for (char *save = NULL, *l = strtok_r(report, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		printf("%-22s       %s\n", "", l);
	const char *pin_problem = egress_policy_pin_dir_problem(cfg->egress_pin_dir);
	if (pin_problem)
		finding(false, false, "egress pin directory", "%s: %s", cfg->egress_pin_dir, pin_problem);
	printf("egress policy\n");
	fflush(stdout);
	egress_policy_describe(cfg, stdout, "                             ");
}

/* Not required either: without pasta, network runs are refused. Made for
 * real: one namespace, connected, then dropped. */
static void check_private_netns(const struct sandcell_config *cfg)
{
	char err[512] = "";
	int fd;

	if (!cfg->enable_network) {
		finding(true, false, "network namespaces", "not used: enable_network is off");
		return;
	}
	if (cfg->netns) {
		finding(true, false, "network namespaces", "not made: every network sandbox joins %s "
			"(they share it)", cfg->netns);
		return;
	}
	bool ok = netns_pool_init(1, cfg->pasta_path, err, sizeof(err)) == 0 &&
		  netns_lease(&fd, err, sizeof(err)) >= 0;
	netns_pool_shutdown();
	finding(ok, false, "network namespaces", ok ?
		"one per network sandbox, connected by %s" :
		"cannot be made: network runs will be refused (runs without network work): %s",
		ok ? cfg->pasta_path : err);
}

static void check_executor(struct sandcell_config *cfg)
{
	char err[512] = "";

	if (cli_executor_start(cfg, err, sizeof(err)) == 0) {
		cli_executor_stop(cfg);
		finding(true, true, "executor", "starts (cgroups, seccomp policies, jail roots)");
	} else {
		finding(false, true, "executor", "%s", err);
	}
}

int cli_check(struct sandcell_config *cfg, const char *config_path)
{
	struct utsname u;

	failures = 0;
	printf("configuration          %s\n", config_path);
	if (uname(&u) == 0)
		printf("kernel                 %s %s\n", u.release, u.machine);
	check_context();
	check_capabilities();
	check_cgroups();
	check_seccomp();
	check_namespaces();
	check_interpreters(cfg);
	check_zygote(cfg);
	check_egress(cfg);
	check_private_netns(cfg);
	check_executor(cfg);
	printf("%s\n", failures ? "result                 this host cannot run sandcell (see FAIL)"
				: "result                 this host can run sandcell");
	return failures ? 1 : 0;
}
