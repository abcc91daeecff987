/* Internal to jail/: the executor's state shared by its parts. */
#ifndef SANDCELL_EXECUTOR_H
#define SANDCELL_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jail/jail.h"

struct sandbox;

/* Kinds of sandbox: a language in a network mode (see jail/prepare.h). */
size_t executor_kinds(void);
const char *executor_kind_name(size_t k);
/* Warm sandboxes of kind k the pool keeps at least and at most, as demand
 * calls for (both 0 while the kind cannot be served). */
void executor_kind_warm_range(size_t k, unsigned *floor, unsigned *ceiling);

/* Bytes of memory one sandbox may use. */
uint64_t executor_memory_limit(void);

/* Sandboxes that may be alive at once (each holds a slot: a uid, v1 cgroups). */
unsigned executor_slots(void);

/* Starts a sandbox of kind in a cgroup_kind ("run" or "warm") cgroup.
 * Without wait_for_slot it returns 1 at once if no slot is free. 0 on
 * success, -1 with err. */
int sandbox_spawn(size_t kind, const char *cgroup_kind, bool wait_for_slot, struct sandbox **out,
		  char *err, size_t errlen);

/* Kills what is left of sb, removes its cgroup, frees its slot and sb. */
void sandbox_destroy(struct sandbox *sb);

#endif
