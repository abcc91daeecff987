/* cgroups for sandboxes: one parent cgroup (v2) holding one child per run.
 *
 * cgroup v2 is required (cgroup.kill, CLONE_INTO_CGROUP, and later the BPF
 * egress programs attach to the v2 parent). Memory, pids and cpu limits use v2
 * controllers where the v2 parent can enable them; on hybrid hosts (v2 without
 * controllers, as on our build machines) they use the v1 hierarchies instead,
 * through one pre-created v1 cgroup per slot that is reused from run to run
 * (moving a pid into v1 is sometimes slow to set up; reusing avoids mkdir cost).
 */
#ifndef SANDCELL_CGROUP_H
#define SANDCELL_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "jail/jail.h"

/* One run's cgroup. */
struct cgroup_run {
	unsigned slot;
	int dirfd;                /* O_DIRECTORY fd of the v2 cgroup, for CLONE_INTO_CGROUP */
	char path[PATH_MAX];      /* the v2 cgroup's directory */
	uint64_t base_oom_kills;  /* counters when the run began, to tell what this run hit */
	uint64_t base_pids_max;
};

/* Finds the v2 mount in /proc/self/mountinfo, creates the parent cgroup
 * cfg->cgroup_name (removing leftovers of an earlier crash), enables the v2
 * controllers or creates nslots v1 slot cgroups with cfg's limits. */
int cgroups_init(const struct jail_config *cfg, unsigned nslots, char *err, size_t errlen);

/* Removes the parent cgroup and the v1 slots (killing anything inside). */
void cgroups_cleanup(void);

/* The v2 parent's path (where the BPF programs will attach). */
const char *cgroups_parent_path(void);

/* Creates the run's v2 cgroup for slot, <parent>/<kind>-<slot>-<n> (kind is
 * "run", or "warm" for a sandbox started ahead of its request), applies the
 * limits (v2) and records the base counters. */
int cgroup_run_create(unsigned slot, const char *kind, struct cgroup_run *cg, char *err, size_t errlen);

/* Hybrid hosts: moves pid into the slot's v1 memory, pids and cpu cgroups.
 * No-op where v2 controllers are used. */
int cgroup_run_attach_v1(struct cgroup_run *cg, pid_t pid, char *err, size_t errlen);

/* For a process that moves itself (writing "0"): the run's v2 cgroup.procs
 * and, on hybrid hosts, its slot's v1 ones, opened for writing into fds.
 * Returns how many, or -1 (nothing left open). */
int cgroup_run_open_procs(const struct cgroup_run *cg, int *fds, size_t max);

/* JAIL_HIT_MEMORY and/or JAIL_HIT_PIDS if the run hit those limits. */
unsigned cgroup_run_hits(const struct cgroup_run *cg);

/* Kills every process of the run (cgroup.kill; v1 slots too). */
void cgroup_run_kill(struct cgroup_run *cg);

/* Kills, waits until empty (bounded), removes the v2 cgroup, closes dirfd. */
void cgroup_run_destroy(struct cgroup_run *cg);

#endif
