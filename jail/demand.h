/* How many warm sandboxes of one kind recent demand calls for, and how many
 * more the host's memory allows. Pure bookkeeping for jail/pool.c: no
 * locking (the pool's lock covers it), times are monotonic milliseconds
 * passed in by the caller. */
#ifndef SANDCELL_DEMAND_H
#define SANDCELL_DEMAND_H

#include <stdint.h>

#define DEMAND_TAKES 64              /* takes remembered per kind: the most ever wanted */
#define DEMAND_HALF_LIFE_MS 10000    /* a peak of demand halves after this long without a new one */
#define DEMAND_WINDOW_MS 1000        /* takes this close together count as needed at once */

struct demand {
	long long takes[DEMAND_TAKES]; /* when the latest takes happened (a ring) */
	unsigned next;                 /* where the next take goes */
	unsigned peak;                 /* most takes within one window... */
	long long peak_at;             /* ...as of this moment */
};

void demand_init(struct demand *d);

/* A request asked for a sandbox of this kind at now (served warm or not). */
void demand_note_take(struct demand *d, long long now);

/* Warm sandboxes that recent demand calls for at now, before any bounds. */
unsigned demand_wanted(const struct demand *d, long long now);

/* How many sandboxes of per_sandbox bytes fit in the host's available
 * memory, headroom kept (0 if /proc/meminfo cannot be read). */
unsigned demand_memory_affords(uint64_t per_sandbox);

/* The same from the text of /proc/meminfo (for tests). */
unsigned demand_memory_affords_text(const char *meminfo, uint64_t per_sandbox);

#endif
