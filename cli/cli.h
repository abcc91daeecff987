/* What the parts of the `sandcell` command share. */
#ifndef SANDCELL_CLI_H
#define SANDCELL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "fcgi/config.h"

/* Exit statuses of sandcell itself (a program's own status passes through). */
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_FAILED 125   /* sandcell could not run the program */

/* Gives cfg the CLI's own executor identity, so that a running sandcelld
 * with the same configuration is not disturbed: run_dir <run_dir>/cli-<pid>,
 * cgroup <cgroup_name>-cli-<pid>, one sandbox (no warm pool) with a uid
 * above every uid the daemon may use. Returns 0, or -1 with err. */
int cli_private_config(struct sandcell_config *cfg, char *err, size_t errlen);

/* executor_init() for that identity (creating the parent run_dir if it is
 * missing); cli_executor_stop() undoes all of it. */
int cli_executor_start(struct sandcell_config *cfg, char *err, size_t errlen);
void cli_executor_stop(const struct sandcell_config *cfg);

/* On a host booted with systemd, re-executes the command (argv) in a
 * transient unit of its own with a delegated cgroup (cli/unit.c): a scope,
 * or with service_view a service with sandcell.service's settings. Returns
 * 0 when that is not needed (no systemd, or already there), -1 with err if
 * it cannot be done; does not return otherwise. */
int cli_enter_own_unit(int argc, char **argv, bool service_view, char *err, size_t errlen);

/* The unit cli_enter_own_unit() re-executed us in: "sandcell.service" (its
 * settings), "scope", or NULL (not re-executed). */
const char *cli_unit(void);

/* `sandcell check`: prints the report, returns the exit status. */
int cli_check(struct sandcell_config *cfg, const char *config_path);

#endif
