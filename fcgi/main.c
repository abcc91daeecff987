/* sandcelld: the FastCGI responder of sandcell.
 *
 *   sandcelld [--config FILE] [--check] [--version]
 *
 * Start-up: block the stop signals (before any thread exists), load the
 * configuration, create run_dir, log "config init success", open the
 * listen socket (before the executor touches cgroups: a second daemon must
 * stop there), write the name-resolution files of network sandboxes, set up
 * the executor, install the egress policy (fcgi/egress_policy.c), then serve
 * until SIGTERM/SIGINT.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fcgi/config.h"
#include "fcgi/egress_log.h"
#include "fcgi/egress_policy.h"
#include "fcgi/log.h"
#include "fcgi/server.h"
#include "bpf/egress.h"
#include "jail/capabilities.h"
#include "jail/jail.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fprintf(out, "usage: sandcelld [--config FILE] [--check] [--version]\n"
		     "  --config FILE  configuration file (default %s)\n"
		     "  --check        load the configuration, check the host, print, exit\n"
		     "  --version      print the version and exit\n",
		CONFIG_DEFAULT_PATH);
}

/* True if path's directory is dir (the socket lives directly in run_dir). */
static bool is_inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return !strncmp(path, dir, n) && path[n] == '/' && !strchr(path + n + 1, '/');
}

/* run_dir is created 0700; 0711 when the socket lives in it, or nginx's
 * workers could not reach the socket (they may pass, never list). An
 * existing directory is left as the operator made it. */
static int make_run_dir(const struct sandcell_config *cfg, char *err, size_t errlen)
{
	mode_t mode = cfg->socket_path && is_inside(cfg->socket_path, cfg->run_dir) ? 0711 : 0700;

	if (mkdir(cfg->run_dir, mode) == 0) {
		/* mkdir applies the umask; the mode must be exactly this */
		if (chmod(cfg->run_dir, mode) < 0) {
			snprintf(err, errlen, "%s: %s", cfg->run_dir, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	snprintf(err, errlen, "cannot create run_dir %s: %s", cfg->run_dir, strerror(errno));
	return -1;
}

/* Can the eBPF programs be loaded and attached here, and what policy would
 * network sandboxes get? Network runs are refused, not run open, when not. */
static void check_egress(const struct sandcell_config *cfg)
{
	char report[4096];

	if (!cfg->enable_network) {
		printf("egress: not used: enable_network is off\n");
		return;
	}
	bool ok = egress_check(report, sizeof(report)) == 0;
	printf("egress: %s\n", ok ? "OK: the eBPF programs load and attach"
	       : "FAILED: network runs will be refused (runs without network work)");
	for (char *save = NULL, *l = strtok_r(report, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		printf("  %s\n", l);
	const char *pin_problem = egress_policy_pin_dir_problem(cfg->egress_pin_dir);
	printf("  pin directory: %s%s%s\n", cfg->egress_pin_dir, pin_problem ? ": FAILED: " : "",
	       pin_problem ? pin_problem : "");
	printf("egress policy:\n");
	egress_policy_describe(cfg, stdout, "  ");
}

/* This process's capabilities and umask: the service's when the unit runs
 * it; `sandcell check` shows the service's from a shell. */
static void check_context(void)
{
	size_t n;
	const struct jail_capability *caps = jail_capabilities(&n);
	mode_t mask = umask(0);

	umask(mask);
	printf("context: this process (for sandcell.service's view from a shell: sandcell check)\n");
	for (size_t i = 0; i < n; i++)
		printf("  %s: %s%s (%s)\n", caps[i].name,
		       jail_has_capability(caps[i].bit) ? "OK" : caps[i].required ? "FAILED: " : "",
		       jail_has_capability(caps[i].bit) ? "" : "missing", caps[i].use);
	printf("  umask: %04o (jails set their own modes)\n", (unsigned)mask);
}

static int check_executor(struct sandcell_config *cfg);

static int check(struct sandcell_config *cfg, const char *path)
{
	char err[512] = "";
	bool made = access(cfg->run_dir, F_OK) != 0;
	int rc;

	printf("configuration: %s\n", path);
	config_describe(cfg, stdout);
	check_context();
	check_egress(cfg);
	if (make_run_dir(cfg, err, sizeof(err)) < 0) {
		printf("run_dir: FAILED: %s\n", err);
		return 1;
	}
	rc = check_executor(cfg);
	if (made)
		rmdir(cfg->run_dir); /* a check leaves the host as it found it */
	return rc;
}

static int check_executor(struct sandcell_config *cfg)
{
	char err[512] = "";
	int rc;

	/* the executor's set-up would clean up the live daemon's cgroups */
	if (cfg->socket_path && server_socket_in_use(cfg->socket_path)) {
		printf("executor: not checked: a sandcelld is running on %s\n", cfg->socket_path);
		return 0;
	}
	if (egress_policy_prepare(cfg, err, sizeof(err)) != 0) {
		printf("network name resolution files: FAILED: %s\n", err);
		return 1;
	}
	rc = executor_init(&cfg->jail, err, sizeof(err));
	if (rc == 0) {
		executor_shutdown();
		egress_policy_stop();
		printf("executor: OK\n");
		return 0;
	}
	egress_policy_stop();
	printf("executor: FAILED: %s\n", err);
	return 1;
}

static void log_config(const struct sandcell_config *cfg, const char *path)
{
	struct log_line l;

	log_begin(&l, LOG_LEVEL_INFO, "config init success");
	log_str(&l, "config", path);
	log_str(&l, "socket", cfg->socket_path);
	log_str(&l, "listen", cfg->listen);
	log_int(&l, "max_workers", (long long)cfg->max_workers);
	log_int(&l, "max_requests", (long long)cfg->max_requests);
	log_int(&l, "worker_timeout", (long long)cfg->worker_timeout);
	log_str(&l, "enable_network", cfg->enable_network ? "true" : "false");
	log_str(&l, "enable_preload", cfg->enable_preload ? "true" : "false");
	log_end(&l);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* static: it lives until exit, request threads may outlive a drain */
	static struct sandcell_config cfg;
	const char *path = CONFIG_DEFAULT_PATH;
	bool explicit_path = false, check_only = false;
	char err[512] = "";
	int opt;

	if (jail_init_dispatch(argc, argv))
		return 0; /* not reached: a sandbox's init */
	server_block_signals();
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			explicit_path = true;
			break;
		case 'k':
			check_only = true;
			break;
		case 'V':
			printf("sandcelld %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	if (config_load(&cfg, path, explicit_path, err, sizeof(err)) < 0) {
		if (check_only)
			printf("configuration: FAILED: %s\n", err);
		log_event(LOG_LEVEL_ERROR, "configuration error", "error", err, NULL);
		return 1;
	}
	if (check_only) {
		int rc = check(&cfg, path);

		config_free(&cfg);
		return rc;
	}
	if (make_run_dir(&cfg, err, sizeof(err)) < 0) {
		log_event(LOG_LEVEL_ERROR, "cannot start", "error", err, NULL);
		return 1;
	}
	log_config(&cfg, path);
	if (server_listen(&cfg) < 0)
		return 1;
	/* before executor_init: the jails bind these files */
	if (egress_policy_prepare(&cfg, err, sizeof(err)) < 0) {
		log_event(LOG_LEVEL_ERROR, "cannot start", "error", err, NULL);
		server_unlisten(&cfg);
		return 1;
	}
	if (executor_init(&cfg.jail, err, sizeof(err)) < 0) {
		log_event(LOG_LEVEL_ERROR, "executor init failed", "error", err, NULL);
		egress_policy_stop();
		server_unlisten(&cfg);
		return 1;
	}
	/* network runs are refused (fail closed) until a policy is installed */
	if (cfg.enable_network) {
		egress_log_start();
		egress_policy_start(&cfg);
	}
	int rc = server_run(&cfg);
	egress_policy_stop();
	return rc;
}
