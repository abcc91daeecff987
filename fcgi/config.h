/* sandcelld's configuration: the file format and keys documented in the
 * project notes, environment overrides with DifySandbox's names, validation.
 */
#ifndef SANDCELL_FCGI_CONFIG_H
#define SANDCELL_FCGI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fcgi/netaddr.h"
#include "jail/jail.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/sandcell/sandcell.conf"

struct sandcell_config {
	/* Handed to the executor; filled by config_finish() from the fields below. */
	struct jail_config jail;

	char *api_key;
	char *api_key_file;     /* read when api_key is unset (the package's way) */
	char *socket_path;      /* NULL: no unix socket (then `listen` must be set) */
	char *listen;           /* TCP host:port, NULL: none */
	char *allow_clients;    /* the allowlist of TCP clients, as written */
	char *socket_group;     /* NULL: keep the primary group */
	char *python_path;
	char *nodejs_path;
	char *nodejs_modules;
	char *http_proxy;       /* NULL when unset */
	char *https_proxy;
	char *run_dir;
	char *cgroup_name;

	uint64_t socket_mode;
	uint64_t max_workers;
	uint64_t warm_sandboxes;  /* per kind at least, started ahead of requests */
	uint64_t warm_sandboxes_max; /* per kind at most, as demand calls for */
	char *egress_pin_dir;     /* NULL in the file: derived from cgroup_name */
	uint64_t max_requests;
	uint64_t worker_timeout;    /* seconds */
	uint64_t queue_timeout;     /* seconds a request may wait for a worker */
	uint64_t max_body_size;     /* bytes */
	uint64_t output_limit;
	uint64_t memory_limit;
	uint64_t pids_limit;
	uint64_t cpu_percent;
	uint64_t tmp_size;
	uint64_t file_size_limit;
	uint64_t uid_base;
	uint64_t drain_timeout;     /* seconds */

	bool enable_network;
	bool enable_preload;
	bool allow_processes;
	bool check_imports;     /* import every package once at start-up, log failures */

	/* network egress (fcgi/egress_policy.c turns these into the policy) */
	char **egress_rules;        /* the egress_rule lines, in file order */
	size_t n_egress_rules;
	char *dns_servers;          /* as written; NULL: the host's /etc/resolv.conf */
	bool egress_proxy_only;     /* only http_proxy/https_proxy are reachable */
	char *netns;                /* namespace network sandboxes join; NULL: each its own */
	char *pasta_path;           /* connects each network sandbox's own namespace */
	char *zygote_path;          /* sandcell-zygote; NULL: Python sandboxes start cold */
	char *python_preload;       /* modules the Python zygote imports, blank separated */

	int *extra_syscalls;
	size_t n_extra_syscalls;

	/* parsed by config_finish() from listen and allow_clients */
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;         /* 0 when listen is unset */
	struct net_prefix client_nets[NETADDR_MAX_NETS];
	size_t n_client_nets;
};

/* Looks up an environment variable; NULL when unset. */
typedef const char *(*config_env_fn)(const char *name, void *ctx);

/* Defaults, then the text (named filename in messages; text may be NULL for
 * "no file"), then the environment, then validation. Returns 0, or -1 with a
 * message in err ("file:line: message" for file errors). On error the config
 * is left freed. */
int config_from_text(struct sandcell_config *cfg, const char *text, size_t len,
		     const char *filename, config_env_fn env, void *env_ctx,
		     char *err, size_t errlen);

/* Reads path and calls config_from_text() with the process environment.
 * A missing file is an error only when must_exist (an explicit --config). */
int config_load(struct sandcell_config *cfg, const char *path, bool must_exist,
		char *err, size_t errlen);

/* config_load() with another environment (the CLI's). */
int config_load_env(struct sandcell_config *cfg, const char *path, bool must_exist,
		    config_env_fn env, void *env_ctx, char *err, size_t errlen);

void config_free(struct sandcell_config *cfg);

/* Prints every setting but the key, one "key = value" per line. */
void config_describe(const struct sandcell_config *cfg, FILE *out);

#endif
