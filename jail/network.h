/* Network sandboxes seen from the executor: the egress programs of bpf/,
 * the policy network sandboxes get, and the report of blocked attempts. */
#ifndef SANDCELL_NETWORK_H
#define SANDCELL_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jail/jail.h"

/* Loads and attaches the egress programs to the sandboxes' parent cgroup
 * (adopting the pins of an earlier sandcelld) and opens netns_path or,
 * without one, readies a pool of private namespaces for up to
 * max_sandboxes. A failure is not fatal: it becomes network_refusal(). */
void network_init(const struct jail_config *cfg, const char *cgroup_parent, unsigned max_sandboxes);

/* Stops the event thread and removes the programs (every sandbox is gone). */
void network_shutdown(void);

/* NULL if network sandboxes can run, else why not. */
const char *network_refusal(void);

/* The operator's namespace network sandboxes join (-1: each its own). */
int network_netns_fd(void);

/* Refuses network runs with why until the next network_set_policy. */
void network_refuse(const char *why);
int network_set_policy(const struct egress_rule *rules, size_t n, char *err, size_t errlen);

/* Gives a network sandbox's cgroup the current policy, before its code
 * runs; *policy tells which, for network_release. */
int network_admit(uint64_t cgroup_id, uint32_t *policy, char *err, size_t errlen);

/* Takes it away again (the cgroup is gone or going). */
void network_release(uint64_t cgroup_id, uint32_t policy);

/* Forgets the blocked-attempt counts of a sandbox's cgroup, network or not
 * (an offline one is counted too: its inet sockets are refused), once it
 * is empty: the slot's next run reuses the cgroup id and counts anew. */
void network_forget_blocked(uint64_t cgroup_id);

/* Where blocked attempts go; lookup fills the tag and language of the live
 * sandbox with a cgroup id (false: none). */
void network_on_blocked(executor_blocked_fn fn, void *ctx,
			bool (*lookup)(uint64_t cgroup_id, char *tag, size_t tag_len, char *language,
				       size_t language_len));

#endif
