/* Where the `sandcell` command runs on a host booted with systemd.
 *
 * Theory of operation. `sandcell run` and `sandcell check` build a private
 * executor, and on pure cgroup v2 the executor's set-up moves the processes
 * of its own cgroup to a leaf so that it may hand controllers to sandboxes.
 * That is right for sandcelld, whose unit delegates its cgroup to it, and
 * wrong for an operator's login shell: the session's scope is not ours. So
 * on a systemd host the command re-executes itself in a transient unit of
 * its own (systemd-run), with a delegated cgroup that holds only itself:
 *
 *   run    a scope (--scope): same terminal, environment and exit status;
 *   check  a service (--pipe --wait) with the settings of sandcell.service
 *          that decide what a jail can do there (capability bounding set,
 *          umask, no_new_privs, file-system protection, environment), so
 *          that it reports what the service will be able to do, not what a
 *          root shell can. Without an installed sandcell.service it runs in
 *          a scope and says so.
 *
 * SANDCELL_CLI_UNIT in the environment marks the re-executed command and
 * names the unit whose settings it has ("scope" for none).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

#define SYSTEMD_RUN "/usr/bin/systemd-run"
#define SYSTEMCTL "/usr/bin/systemctl"
#define SERVICE "sandcell.service"
#define MAX_ARGS 64

/* What of the service decides what a jail can do (systemctl show names). */
static const char *const service_settings[] = {
	"CapabilityBoundingSet", "AmbientCapabilities", "UMask", "NoNewPrivileges",
	"ProtectSystem", "ProtectHome", "PrivateTmp", "Delegate", "Environment", NULL,
};

static bool systemd_booted(void)
{
	return access("/run/systemd/system", F_OK) == 0; /* sd_booted()'s test */
}

const char *cli_unit(void)
{
	return getenv("SANDCELL_CLI_UNIT");
}

struct argv_builder {
	char *argv[MAX_ARGS + 1];
	int n;
};

static void push(struct argv_builder *b, char *arg)
{
	if (b->n < MAX_ARGS)
		b->argv[b->n++] = arg;
	b->argv[b->n] = NULL;
}

/* The output of `systemctl show -p LoadState -p <settings>... sandcell.service`
 * ("Key=value" lines), or NULL. */
static char *show_service(void)
{
	struct argv_builder b = { .n = 0 };
	char *out = NULL;
	size_t size = 0;
	FILE *mem, *pipe_in;
	int fds[2], status;
	pid_t pid;

	push(&b, "systemctl");
	push(&b, "show");
	push(&b, "-p");
	push(&b, "LoadState");
	for (size_t i = 0; service_settings[i]; i++) {
		push(&b, "-p");
		push(&b, (char *)service_settings[i]);
	}
	push(&b, SERVICE);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execv(SYSTEMCTL, b.argv);
		_exit(127);
	}
	close(fds[1]);
	mem = open_memstream(&out, &size);
	pipe_in = fdopen(fds[0], "r");
	for (int c; mem && pipe_in && (c = fgetc(pipe_in)) != EOF;)
		fputc(c, mem);
	if (pipe_in)
		fclose(pipe_in);
	else
		close(fds[0]);
	if (mem)
		fclose(mem);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static bool service_loaded(const char *shown)
{
	return strstr(shown, "LoadState=loaded\n") != NULL;
}

/* "-p" "<line>" for every setting line of shown (modified in place). */
static void push_settings(struct argv_builder *b, char *shown)
{
	for (char *save = NULL, *line = strtok_r(shown, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "LoadState=", 10))
			continue;
		push(b, "-p");
		push(b, line);
	}
}

int cli_enter_own_unit(int argc, char **argv, bool service_view, char *err, size_t errlen)
{
	struct argv_builder b = { .n = 0 };
	char exe[PATH_MAX], unit_name[64];
	char *shown = NULL;
	ssize_t n;

	if (cli_unit() || !systemd_booted())
		return 0;
	if (access(SYSTEMD_RUN, X_OK) != 0) {
		snprintf(err, errlen, "this host runs systemd but %s is missing: %s", SYSTEMD_RUN,
			 strerror(errno));
		return -1;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(err, errlen, "readlink /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	exe[n] = '\0';
	if (service_view) {
		shown = show_service();
		if (shown && !service_loaded(shown)) {
			free(shown);
			shown = NULL;
		}
	}
	snprintf(unit_name, sizeof(unit_name), "sandcell-cli-%ld", (long)getpid());
	push(&b, "systemd-run");
	push(&b, "--quiet");
	push(&b, "--collect");
	push(&b, "--unit");
	push(&b, unit_name);
	if (shown) {
		push(&b, "--pipe");
		push(&b, "--wait");
		push(&b, "--service-type=exec");
		push(&b, "--setenv=SANDCELL_CLI_UNIT=" SERVICE);
		push_settings(&b, shown); /* Delegate= among them */
	} else {
		push(&b, "--scope");
		push(&b, "-p");
		push(&b, "Delegate=yes");
		setenv("SANDCELL_CLI_UNIT", "scope", 1); /* a scope keeps our environment */
	}
	push(&b, "--");
	push(&b, exe);
	for (int i = 1; i < argc; i++)
		push(&b, argv[i]);
	if (b.n >= MAX_ARGS) {
		snprintf(err, errlen, "too many arguments");
		free(shown);
		return -1;
	}
	fflush(NULL);
	execv(SYSTEMD_RUN, b.argv);
	snprintf(err, errlen, "exec %s: %s", SYSTEMD_RUN, strerror(errno));
	free(shown);
	return -1;
}
