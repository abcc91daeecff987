/* sandcell: the operator's command line.
 *
 *   sandcell run [--language L] [--network] [--config FILE] [FILE|-]
 *   sandcell check [--config FILE]
 *   sandcell version
 *
 * `run` reads the same configuration file as sandcelld (limits, seccomp
 * additions, interpreters) and runs one program through the same executor
 * (jail/jail.h), so what it shows is what the service would do. It never
 * touches a running daemon's state: it uses its own run_dir, cgroup and
 * uid (cli_private_config), and removes them when done, also after Ctrl-C
 * (a signal thread kills the sandbox; the normal clean-up then runs).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "fcgi/egress_policy.h"
#include "fcgi/log.h"
#include "jail/jail.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* The CLI's sandbox uid is uid_base + CLI_UID_OFFSET + (pid mod 65536):
 * above the daemon's uid_base + max_workers (max_workers <= 256). */
#define CLI_UID_OFFSET 65536u
#define MAX_PROGRAM (64u << 20)

static bool created_run_parent;

/* The signal thread may kill sandboxes only while the executor exists. */
static pthread_mutex_t executor_lock = PTHREAD_MUTEX_INITIALIZER;
static bool executor_live, stop_requested;

/* ---- configuration ------------------------------------------------------ */

/* The API key is sandcelld's business; the CLI must not need one. */
static const char *cli_env(const char *name, void *ctx)
{
	(void)ctx;
	if (!strcmp(name, "API_KEY"))
		return "(not used by the sandcell command)";
	return getenv(name);
}

/* *slot = "<*slot><sep><pid>" */
static int append_pid(char **slot, const char *sep, long pid)
{
	char *s;

	if (asprintf(&s, "%s%s%ld", *slot, sep, pid) < 0)
		return -1;
	free(*slot);
	*slot = s;
	return 0;
}

int cli_private_config(struct sandcell_config *cfg, char *err, size_t errlen)
{
	long pid = (long)getpid();
	uint64_t uid = cfg->uid_base + CLI_UID_OFFSET + (uint64_t)(pid % 65536);

	if (uid > UINT32_MAX - 2) {
		snprintf(err, errlen, "uid_base %llu leaves no room for the CLI's uids",
			 (unsigned long long)cfg->uid_base);
		return -1;
	}
	/* its own egress pins too: adopting the daemon's would detach them at exit */
	if (append_pid(&cfg->run_dir, "/cli-", pid) || append_pid(&cfg->cgroup_name, "-cli-", pid) ||
	    append_pid(&cfg->egress_pin_dir, "-cli-", pid)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cfg->jail.run_dir = cfg->run_dir;
	cfg->jail.cgroup_name = cfg->cgroup_name;
	cfg->jail.egress_pin_dir = cfg->egress_pin_dir;
	cfg->jail.uid_base = (uid_t)uid;
	cfg->jail.max_sandboxes = 1;
	/* one run, started cold: a warm pool or a zygote would only cost start-up time */
	cfg->jail.warm_sandboxes = 0;
	cfg->jail.warm_sandboxes_max = 0;
	cfg->jail.zygote_path = NULL;
	return 0;
}

static int load_config(const struct cli_options *o, struct sandcell_config *cfg)
{
	const char *path = o->config ? o->config : CONFIG_DEFAULT_PATH;
	char err[512] = "";

	if (config_load_env(cfg, path, o->config != NULL, cli_env, NULL, err, sizeof(err)) < 0 ||
	    cli_private_config(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "sandcell: configuration: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---- the private executor ------------------------------------------------ */

/* The parent of our run_dir (the daemon's run_dir) may not exist when no
 * daemon runs; made as sandcelld would make it, and removed afterwards. */
static int make_run_parent(const char *run_dir, char *err, size_t errlen)
{
	char parent[4096];
	char *slash;

	snprintf(parent, sizeof(parent), "%s", run_dir);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return 0;
	*slash = '\0';
	created_run_parent = false;
	if (mkdir(parent, 0711) == 0) {
		created_run_parent = true;
		chmod(parent, 0711);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	snprintf(err, errlen, "mkdir %s: %s", parent, strerror(errno));
	return -1;
}

int cli_executor_start(struct sandcell_config *cfg, char *err, size_t errlen)
{
	if (geteuid() != 0) {
		snprintf(err, errlen, "sandcell must run as root to build jails");
		return -1;
	}
	if (make_run_parent(cfg->run_dir, err, errlen) < 0)
		return -1;
	/* the name files network sandboxes bind are written before the executor */
	if ((mkdir(cfg->run_dir, 0700) != 0 && errno != EEXIST) ||
	    egress_policy_prepare(cfg, err, errlen) < 0) {
		if (!err[0])
			snprintf(err, errlen, "mkdir %s: %s", cfg->run_dir, strerror(errno));
		cli_executor_stop(cfg);
		return -1;
	}
	pthread_mutex_lock(&executor_lock);
	if (stop_requested) {
		snprintf(err, errlen, "interrupted");
	} else if (executor_init(&cfg->jail, err, errlen) == 0) {
		executor_live = true;
	}
	pthread_mutex_unlock(&executor_lock);
	if (!executor_live) {
		cli_executor_stop(cfg);
		return -1;
	}
	/* network runs are refused (fail closed) until the policy is installed */
	egress_policy_start(cfg);
	return 0;
}

void cli_executor_stop(const struct sandcell_config *cfg)
{
	egress_policy_stop();
	pthread_mutex_lock(&executor_lock);
	executor_shutdown();
	executor_live = false;
	pthread_mutex_unlock(&executor_lock);
	rmdir(cfg->run_dir);
	if (created_run_parent) {
		char parent[4096], *slash;

		snprintf(parent, sizeof(parent), "%s", cfg->run_dir);
		slash = strrchr(parent, '/');
		if (slash) {
			*slash = '\0';
			rmdir(parent); /* only if still empty: a daemon may have started since */
		}
		created_run_parent = false;
	}
}

/* ---- run ----------------------------------------------------------------- */

static char *read_program(const char *file, size_t *len)
{
	int fd = (!file || !strcmp(file, "-")) ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
	size_t cap = 64 * 1024, n = 0;
	char *buf;

	if (fd < 0) {
		fprintf(stderr, "sandcell: %s: %s\n", file, strerror(errno));
		return NULL;
	}
	buf = malloc(cap);
	while (buf) {
		if (n == cap) {
			char *grown = cap < MAX_PROGRAM ? realloc(buf, cap * 2) : NULL;

			if (!grown) {
				fprintf(stderr, "sandcell: the program is too large\n");
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
		ssize_t got = read(fd, buf + n, cap - n);

		if (got == 0)
			break;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "sandcell: reading %s: %s\n", file ? file : "stdin",
				strerror(errno));
			free(buf);
			buf = NULL;
			break;
		}
		n += (size_t)got;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	*len = n;
	return buf;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* The head of the API's "error" text (exit line and markers; the stderr it
 * repeats was already printed), each line prefixed with "sandcell: ". */
static void print_reasons(const struct run_result *res)
{
	size_t len = 0;
	char *text = run_result_error_text(res, &len);

	if (!text)
		return;
	if (len) {
		size_t head = len - res->err_len;
		char *line = text;

		text[head] = '\0';
		for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
			*nl = '\0';
			fprintf(stderr, "sandcell: %s\n", line);
		}
	}
	free(text);
}

/* Ctrl-C or SIGTERM: kill the sandbox, so that the run ends and clean-up
 * runs in the main thread as usual. */
static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) == 0) {
			fprintf(stderr, "sandcell: %s: stopping the program\n", strsignal(sig));
			pthread_mutex_lock(&executor_lock);
			stop_requested = true;
			if (executor_live)
				executor_kill_all();
			pthread_mutex_unlock(&executor_lock);
		}
	}
	return NULL;
}

static void start_signal_thread(void)
{
	static sigset_t set;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&t, NULL, signal_thread, &set) == 0)
		pthread_detach(t);
}

static int exit_status_of(const struct run_result *res)
{
	if (res->exit_code >= 0)
		return res->exit_code & 0xff;
	if (res->signal > 0)
		return 128 + res->signal;
	return 137; /* killed for a limit or the timeout */
}

static int run_program(struct sandcell_config *cfg, const struct cli_options *o)
{
	const char *name = cli_language(o);
	const struct language *lang = language_find(name);
	struct run_result res = { 0 };
	char err[512] = "";
	size_t len = 0;
	char *code;
	int rc;

	if (!lang) {
		fprintf(stderr, "sandcell: unsupported language '%s'\n", name);
		return CLI_EXIT_USAGE;
	}
	if (o->network && !cfg->enable_network) {
		fprintf(stderr, "sandcell: network is disabled, please enable it in the configuration\n");
		return CLI_EXIT_FAILED;
	}
	code = read_program(o->file, &len);
	if (!code)
		return CLI_EXIT_FAILED;
	if (len == 0) {
		fprintf(stderr, "sandcell: the program is empty\n");
		free(code);
		return CLI_EXIT_USAGE;
	}
	start_signal_thread();
	if (cli_executor_start(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "sandcell: cannot set up the executor: %s\n", err);
		free(code);
		return CLI_EXIT_FAILED;
	}
	rc = jail_run(lang, o->network, "cli", NULL, 0, code, len, -1, &res, err, sizeof(err));
	cli_executor_stop(cfg);
	free(code);
	if (rc != 0) {
		fprintf(stderr, "sandcell: could not run the program: %s\n", err);
		return CLI_EXIT_FAILED;
	}
	write_all(STDOUT_FILENO, res.out, res.out_len);
	write_all(STDERR_FILENO, res.err, res.err_len);
	print_reasons(&res);
	rc = exit_status_of(&res);
	run_result_free(&res);
	return rc;
}

int main(int argc, char **argv)
{
	static struct sandcell_config cfg;
	struct cli_options o;
	char err[256];
	int rc;

	if (jail_init_dispatch(argc, argv))
		return 0; /* not reached: a sandbox's init */
	log_set_min_level(LOG_LEVEL_WARN);
	if (cli_parse(argc, argv, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "sandcell: %s\n%s", err, cli_usage);
		return CLI_EXIT_USAGE;
	}
	switch (o.command) {
	case CLI_HELP:
		fputs(cli_usage, stdout);
		return 0;
	case CLI_VERSION:
		printf("sandcell %s\n", PACKAGE_VERSION);
		return 0;
	case CLI_RUN:
	case CLI_CHECK:
		break;
	}
	if (cli_enter_own_unit(argc, argv, o.command == CLI_CHECK, err, sizeof(err)) < 0) {
		fprintf(stderr, "sandcell: %s\n", err);
		return CLI_EXIT_FAILED;
	}
	if (load_config(&o, &cfg) < 0)
		return CLI_EXIT_FAILED;
	if (o.command == CLI_CHECK)
		rc = cli_check(&cfg, o.config ? o.config : CONFIG_DEFAULT_PATH);
	else
		rc = run_program(&cfg, &o);
	config_free(&cfg);
	return rc;
}
