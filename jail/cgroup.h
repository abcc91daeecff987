/* cgroups for sandboxes: one parent cgroup (v2) holding one child per slot,
 * slot-<k>, made once with its limits and reused by the slot's runs one after
 * another (checked empty before each; replaced by slot-<k>.<g> if a run left
 * it populated).
 *
 * cgroup v2 is required (cgroup.kill, CLONE_INTO_CGROUP, and the BPF egress
 * programs attach to the v2 parent). Memory, pids and cpu limits use v2
 * controllers where the v2 parent can enable them; on hybrid hosts (v2 without
 * controllers, as on our build machines) they use the v1 hierarchies instead,
 * through v1 cgroups per slot of the same names, made and reused with the v2
 * one (moving a pid into v1 is sometimes slow to set up; reusing avoids mkdir
 * cost).
 */
#ifndef SANDCELL_CGROUP_H
#define SANDCELL_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "jail/jail.h"

/* One run's claim on its slot's cgroup. */
struct cgroup_run {
	unsigned slot;
	const char *kind;         /* "run" or "warm", for logs */
	int dirfd;                /* O_DIRECTORY fd of the v2 cgroup, for CLONE_INTO_CGROUP; its
				   * inode is the cgroup id, the same for the slot's runs */
	char path[PATH_MAX];      /* the v2 cgroup's directory */
	int init_pidfd;           /* the run's init (cgroup_run_attach_v1), -1 before */
	uint64_t base_oom_kills;  /* counters when the run began, to tell what this run hit */
	uint64_t base_pids_max;
};

/* Finds the v2 mount in /proc/self/mountinfo, creates the parent cgroup
 * cfg->cgroup_name (removing leftovers of an earlier crash), enables the v2
 * controllers (or prepares the v1 parents) and creates the nslots slot
 * cgroups with cfg's limits. */
int cgroups_init(const struct jail_config *cfg, unsigned nslots, char *err, size_t errlen);

/* Removes the parent cgroup, every slot cgroup (retired ones too) and the v1
 * slots, killing anything inside. */
void cgroups_cleanup(void);

/* The v2 parent's path (where the BPF programs will attach). */
const char *cgroups_parent_path(void);

/* Claims slot's cgroup for a run (kind is "run", or "warm" for a sandbox
 * started ahead of its request; it names the run in logs): checks that
 * nothing of an earlier run is inside (else makes a new generation of the
 * slot's cgroups with the limits), dups its descriptor into cg->dirfd and
 * records the base counters. The caller holds the slot: one run at a time. */
int cgroup_run_create(unsigned slot, const char *kind, struct cgroup_run *cg, char *err, size_t errlen);

/* Records pidfd (a copy), the run's init (pid 1 of its pid namespace), as
 * the one to kill. Called for every run, as soon as its init exists. */
int cgroup_run_set_init(struct cgroup_run *cg, int pidfd, char *err, size_t errlen);

/* Hybrid hosts: moves pid into the slot's v1 memory, pids and cpu cgroups,
 * before the init lets its program start. No-op where v2 controllers are used. */
int cgroup_run_attach_v1(struct cgroup_run *cg, pid_t pid, char *err, size_t errlen);

/* For a process that moves itself (writing "0"): the run's v2 cgroup.procs
 * and, on hybrid hosts, its slot's v1 ones, opened for writing into fds.
 * Returns how many, or -1 (nothing left open). */
int cgroup_run_open_procs(const struct cgroup_run *cg, int *fds, size_t max);

/* JAIL_HIT_MEMORY and/or JAIL_HIT_PIDS if the run hit those limits. */
unsigned cgroup_run_hits(const struct cgroup_run *cg);

/* Kills every process of the run: SIGKILL to its init, which takes its pid
 * namespace with it (cgroup.kill, before cgroup_run_set_init or if that
 * fails: the slot's cgroup is then replaced at the next claim). */
void cgroup_run_kill(struct cgroup_run *cg);

/* Kills, waits until empty (bounded; then cgroup.kill and waits again) and
 * closes dirfd, leaving the cgroup to the slot's next run; one that did not
 * empty in time, or that took a cgroup.kill, is never claimed again.
 * Removes the slot's retired cgroups that have emptied since. */
void cgroup_run_destroy(struct cgroup_run *cg);

#endif
