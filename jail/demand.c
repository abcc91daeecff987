/* Recent demand for warm sandboxes, and what memory allows.
 *
 * Theory of operation
 *
 * A warm sandbox helps only if it is there when a request takes it. A take
 * empties one place in the pool, and a starter fills it again once a new
 * sandbox is ready: its jail built (sandbox_spawn: measured 110-600 ms for
 * Node on a loaded 2-core host, 10-30 ms idle) and then its interpreter
 * started (another 40 ms to seconds, which the pool cannot observe). So
 * serving every take warm needs as many warm sandboxes as there are takes
 * within that time: for a steady stream that is rate x refill time
 * (Little's law), for a burst of N requests at once it is N. The refill time
 * is taken as DEMAND_WINDOW_MS, one second: what it is on a busy host;
 * on an idle one it overestimates a stream's need, which costs only idle
 * memory within the ceiling. demand_note_take counts, at each take, the
 * takes of the last window (from a ring of the latest DEMAND_TAKES take
 * times) and keeps the highest count seen: the peak.
 *
 * A peak is held, then halves every DEMAND_HALF_LIFE_MS without a take that
 * beats it, so the pool grown for a burst is still there for the next burst
 * a few seconds later, and shrinks back to its floor some half-lives after
 * the last one (a peak of 8: 4 after 10 s, 1 after 30 s, 0 after 40 s).
 * jail/pool.c clamps the result to the configured floor and ceiling.
 *
 * Memory: a warm sandbox waits small (10-45 MB), but once taken it may grow
 * to memory_limit. The pool therefore starts a warm sandbox above the floor
 * only while all of those above the floor, at memory_limit each, fit in the
 * host's MemAvailable less a headroom of MemTotal / 8 (for sandcelld,
 * nginx, the page cache and what the running sandboxes grow into). The floor
 * itself is the operator's explicit choice and is not second-guessed.
 */
#include <stdio.h>
#include <string.h>

#include "jail/demand.h"

void demand_init(struct demand *d)
{
	memset(d, 0, sizeof(*d));
	for (unsigned i = 0; i < DEMAND_TAKES; i++)
		d->takes[i] = -1;
}

/* The peak as it stands at now: halved once per half-life since it was set. */
static unsigned decayed_peak(const struct demand *d, long long now)
{
	long long halvings = (now - d->peak_at) / DEMAND_HALF_LIFE_MS;
	if (halvings <= 0)
		return d->peak;
	return halvings >= 32 ? 0 : d->peak >> halvings;
}

/* Takes within the window before now, the one at now included. */
static unsigned takes_within_window(const struct demand *d, long long now)
{
	unsigned n = 0;
	for (unsigned i = 0; i < DEMAND_TAKES; i++)
		if (d->takes[i] >= 0 && now - d->takes[i] < DEMAND_WINDOW_MS)
			n++;
	return n;
}

void demand_note_take(struct demand *d, long long now)
{
	d->takes[d->next] = now;
	d->next = (d->next + 1) % DEMAND_TAKES;
	unsigned held = decayed_peak(d, now), recent = takes_within_window(d, now);
	d->peak = recent > held ? recent : held;
	d->peak_at = now;
}

unsigned demand_wanted(const struct demand *d, long long now)
{
	return decayed_peak(d, now);
}

static const char *next_line(const char *s)
{
	const char *nl = strchr(s, '\n');
	return nl ? nl + 1 : NULL;
}

/* The value in kB of the line "<key>: <n> kB", in bytes; 0 if missing. */
static uint64_t meminfo_bytes(const char *text, const char *key)
{
	size_t len = strlen(key);
	for (const char *line = text; line; line = next_line(line)) {
		unsigned long long kb;
		if (strncmp(line, key, len) == 0 && line[len] == ':' &&
		    sscanf(line + len + 1, "%llu", &kb) == 1)
			return (uint64_t)kb * 1024;
	}
	return 0;
}

unsigned demand_memory_affords_text(const char *meminfo, uint64_t per_sandbox)
{
	uint64_t available = meminfo_bytes(meminfo, "MemAvailable");
	uint64_t headroom = meminfo_bytes(meminfo, "MemTotal") / 8;
	if (per_sandbox == 0 || available <= headroom)
		return 0;
	uint64_t n = (available - headroom) / per_sandbox;
	return n > DEMAND_TAKES ? DEMAND_TAKES : (unsigned)n;
}

unsigned demand_memory_affords(uint64_t per_sandbox)
{
	char text[8192];
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return demand_memory_affords_text(text, per_sandbox);
}
