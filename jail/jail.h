/* The executor's interface: everything fcgi/ (and later the CLI) may use of jail/.
 *
 * A run goes through four steps, so that warm pools can slot in later without
 * the caller noticing:
 *
 *   sandbox_take()     get a sandbox for a language: jailed, limited, waiting for code
 *   sandbox_send()     give it the program (and the optional preload)
 *   sandbox_collect()  wait for the end (exit, timeout or limit) and gather the output
 *   sandbox_release()  kill whatever is left and remove every trace of it
 *
 * jail_run() does the four in a row. Every function is thread-safe: sandcelld
 * calls them from its request threads. Errors are returned, never fatal; a
 * failure to set up any protection refuses the run (fail closed) with a
 * message an operator can act on.
 */
#ifndef SANDCELL_JAIL_H
#define SANDCELL_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the operator configures for every sandbox. Filled by fcgi/config.c. */
struct jail_config {
	const char *python_path;      /* interpreter for "python3" (default /usr/bin/python3) */
	const char *nodejs_path;      /* interpreter for "nodejs" (default /usr/bin/node) */
	const char *nodejs_modules;   /* directory on Node's module path, bound read-only (NULL: none) */
	const char *run_dir;          /* private state directory, e.g. /run/sandcell */
	const char *cgroup_name;      /* name of the parent cgroup of all sandboxes, e.g. "sandcell" */
	unsigned timeout_ms;          /* wall clock per run (WORKER_TIMEOUT) */
	size_t output_limit;          /* bytes kept of stdout, and of stderr, each */
	uint64_t memory_limit;        /* bytes of memory per sandbox */
	unsigned pids_limit;          /* tasks (processes + threads) per sandbox */
	unsigned cpu_percent;         /* CPU share: 100 = one core */
	uint64_t tmp_size;            /* bytes of the private /tmp */
	uint64_t file_size_limit;     /* largest file a program may write (RLIMIT_FSIZE) */
	unsigned max_sandboxes;       /* sandboxes running at once (= max_workers) */
	unsigned warm_sandboxes;      /* per kind (language, network mode) at least, started ahead */
	unsigned warm_sandboxes_max;  /* per kind at most, as recent demand calls for */
	uid_t uid_base;               /* sandbox k runs as uid/gid uid_base + k */
	const int *extra_syscalls;    /* ALLOWED_SYSCALLS: added to every language's allowlist */
	size_t n_extra_syscalls;
	bool allow_processes;         /* let programs fork (default: threads only) */
	const char *http_proxy;       /* HTTP_PROXY, handed to programs (may be NULL) */
	const char *https_proxy;      /* HTTPS_PROXY, handed to programs (may be NULL) */
	const char *zygote_path;      /* sandcell-zygote, which forks Python sandboxes (NULL: none) */
	const char *python_preload;   /* modules the Python zygote imports, space-separated */

	/* Network sandboxes (enable_network). Each has a network namespace of
	 * its own that pasta connects to the host's network (or all join
	 * netns_path's), under the egress policy that the eBPF programs of bpf/
	 * enforce per sandbox; without those programs or pasta, or before
	 * executor_set_egress_policy, network runs are refused. */
	bool network;                 /* runs may ask for network */
	const char *netns_path;       /* namespace network sandboxes join; NULL: each its own */
	const char *pasta_path;       /* pasta, which connects the private ones (/usr/bin/pasta) */
	const char *egress_pin_dir;   /* bpffs directory of the egress programs' pins */
	const char *resolv_conf;      /* file shown at /etc/resolv.conf in network sandboxes (NULL: none) */
	const char *hosts_file;       /* file shown at /etc/hosts in network sandboxes (NULL: none) */
};

/* Why a run ended early or was judged an error; several may be set. */
enum jail_hit {
	JAIL_HIT_TIMEOUT = 1 << 0, /* wall clock ran out */
	JAIL_HIT_SECCOMP = 1 << 1, /* stopped by the system-call policy */
	JAIL_HIT_MEMORY = 1 << 2,  /* memory limit (OOM kill) */
	JAIL_HIT_OUTPUT = 1 << 3,  /* stdout or stderr over the output limit */
	JAIL_HIT_PIDS = 1 << 4,    /* task limit reached */
	JAIL_HIT_FSIZE = 1 << 5,   /* file size limit (SIGXFSZ) */
};

struct run_result {
	char *out;          /* stdout, at most output_limit bytes, not NUL-terminated */
	size_t out_len;
	char *err;          /* stderr, likewise */
	size_t err_len;
	int exit_code;      /* exit status; -1 if killed (timeout, signal, limit) */
	int signal;         /* the signal that killed it, 0 if it exited */
	unsigned hits;      /* enum jail_hit bits */
	double duration_ms; /* from sandbox_send to the end of the program */
	bool client_gone;   /* killed because the client's connection hung up */
};

struct language;
struct sandbox;

/* Every program that links the executor calls this first in main(): the
 * jail's init runs as a fresh image of the program's own binary (so that no
 * copy of the daemon's memory stays in a sandbox). Returns false unless this
 * process is such an init; if it is, it never returns. */
bool jail_init_dispatch(int argc, char **argv);

/* Sets up the executor: checks the host, creates the parent cgroup(s) and the
 * per-slot resources, builds the seccomp policies. Returns 0, or -1 with a
 * message in err. cfg must outlive the executor. */
int executor_init(const struct jail_config *cfg, char *err, size_t errlen);

/* Kills every live sandbox and removes everything executor_init created. */
void executor_shutdown(void);

/* Kills every live sandbox now (used when a drain deadline passes). */
void executor_kill_all(void);

/* The language named so, or NULL if sandcell does not run it. */
const struct language *language_find(const char *name);
const char *language_name(const struct language *lang);

/* The i-th language sandcell runs (for listings and metrics); NULL past the end. */
const struct language *language_at(size_t i);

/* For metrics: warm sandboxes of a language ready to take a program (0
 * where warm pools are off). */
unsigned executor_warm(const struct language *lang);

/* How many of the language's zygotes run now, and (*forks) how many
 * sandboxes they made since start. */
unsigned executor_zygotes(const struct language *lang, unsigned long long *forks);

/* Takes a ready sandbox. network asks for network access under the egress
 * policy (refused, -1, if it cannot be enforced); otherwise the sandbox has
 * its own empty network namespace. tag names the run in logs (the request
 * id; may be NULL). Blocks while max_sandboxes are running. Returns 0, or -1
 * with a message in err. */
int sandbox_take(const struct language *lang, bool network, const char *tag, struct sandbox **out,
		 char *err, size_t errlen);

/* Sends the program. preload (may be NULL/0) runs first, inside the sandbox. */
int sandbox_send(struct sandbox *sb, const char *preload, size_t preload_len,
		 const char *code, size_t code_len, char *err, size_t errlen);

/* Waits for the program to end within the timeout, fills res. client_fd is
 * the connection of the client that waits for the answer (-1: none); if it
 * hangs up the program is killed (res->client_gone). */
int sandbox_collect(struct sandbox *sb, int client_fd, struct run_result *res, char *err,
		    size_t errlen);

/* Kills what is left of the sandbox and removes it. Always safe to call. */
void sandbox_release(struct sandbox *sb);

/* take + send + collect + release. Returns 0 (res filled), or -1 with err. */
int jail_run(const struct language *lang, bool network, const char *tag, const char *preload,
	     size_t preload_len, const char *code, size_t code_len, int client_fd,
	     struct run_result *res, char *err, size_t errlen);

/* ---- network --------------------------------------------------------------- */

struct egress_rule;   /* bpf/egress.h */
struct egress_event;

/* Installs the egress policy that network sandboxes get from now on (in
 * place: a sandbox running meanwhile sees each rule old, new, or absent,
 * which denies). Returns 0, or -1 with err (network runs are then refused). */
int executor_set_egress_policy(const struct egress_rule *rules, size_t n, char *err, size_t errlen);

/* NULL if network runs can be served; else why they are refused. */
const char *executor_network_refusal(void);

/* From now on network runs are refused with why, until the next
 * executor_set_egress_policy (a protection that can no longer be kept). */
void executor_refuse_network(const char *why);

/* Calls fn (from a background thread) for every blocked network attempt of
 * a sandbox, with the tag it was taken with and its language (both NULL if
 * it is gone). */
typedef void (*executor_blocked_fn)(const char *tag, const char *language,
				    const struct egress_event *ev, void *ctx);
void executor_on_blocked(executor_blocked_fn fn, void *ctx);

void run_result_free(struct run_result *res);

/* The API's "error" text for a result: "" if it exited 0 with no hit, else
 * "process exited with code N\n", one "error: ..." line per hit, then stderr.
 * Returns a malloc'd string (length in *len), NULL on allocation failure. */
char *run_result_error_text(const struct run_result *res, size_t *len);

#endif
