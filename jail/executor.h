/* Internal to jail/: the executor's state shared by its parts. */
#ifndef SANDCELL_EXECUTOR_H
#define SANDCELL_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "jail/jail.h"

struct lang_state;
struct sandbox;

/* The configuration executor_init was given (NULL before). */
const struct jail_config *executor_config(void);

/* The prepared languages, by index. */
size_t executor_languages(void);
struct lang_state *executor_language(size_t i);
const char *executor_language_name(size_t i);

/* Sandboxes that may be alive at once (each holds a slot: a uid, v1 cgroups). */
unsigned executor_slots(void);

/* Starts a sandbox of ls in a "run" or "warm" cgroup. Without wait_for_slot
 * it returns 1 at once if no slot is free. 0 on success, -1 with err. */
int sandbox_spawn(struct lang_state *ls, const char *kind, bool wait_for_slot,
		  struct sandbox **out, char *err, size_t errlen);

/* Kills what is left of sb, removes its cgroup, frees its slot and sb. */
void sandbox_destroy(struct sandbox *sb);

#endif
