/* Warm sandboxes and background destruction.
 *
 * Theory of operation
 *
 * Starting a sandbox costs about 10 ms before the interpreter even begins
 * (namespaces, mounts, moving into v1 cgroups on hybrid hosts) plus the
 * interpreter's own start-up (Node: about 110 ms of CPU, see below); tearing
 * it down costs another millisecond. Neither depends on the request, so
 * background threads, the starters, do both ahead of time and after the
 * fact: one per online core (at most MAX_STARTERS). Building one jail up
 * to the interpreter's exec (sandbox_spawn) took 110-600 ms for Node on a
 * loaded 2-core host, so one thread could not keep up with back-to-back or
 * concurrent requests; the interpreter then starts inside its sandbox on
 * whatever core is free. Every starter runs the same loop,
 * holding the pool's lock except while it starts or destroys a sandbox:
 *
 *   1. destroy one retired sandbox (kill the cgroup, wait until empty,
 *      remove it, free the slot), so a request is answered first. This
 *      comes before starting: it frees the slots that starting needs.
 *   2. retire warm sandboxes that their kind no longer wants (demand fell).
 *   3. start one warm sandbox of the kind most in need (below its floor
 *      first, then fewest ready or starting): fully jailed, its
 *      interpreter started and blocked reading the program from stdin. The
 *      wall clock of a run starts only when its code is sent. Every warm
 *      sandbox serves exactly one run and is destroyed afterwards: nothing
 *      is ever reused across runs.
 *   4. otherwise sleep until woken (a take, a retirement, a new egress
 *      policy) or until something changes by itself: a pause after
 *      failures ends, a slot or memory may be free, demand decays.
 *
 * How many: a kind is a language with or without network; each has a
 * floor and a ceiling (executor_kind_warm_range: warm_sandboxes and
 * warm_sandboxes_max; both 0 while the kind cannot be served) and wants
 * what recent demand calls for, within them (jail/demand.c: the most takes
 * within one second, held and then halved every 10 s). A sandbox above
 * the floor is started only if all of those above the floors fit in
 * memory at memory_limit each (demand.c's rule) and a slot is free (the
 * executor has slots for every kind's ceiling). `starting` counts the
 * sandboxes being started, so that two starters never fill the same place;
 * one that is no longer wanted when it is ready is retired at once.
 *
 * A failure to start a warm sandbox (for example memory pressure) is retried
 * after a pause that doubles with each failure in a row of that kind, up to
 * BACKOFF_MAX_MS (jail/backoff.h), so a fault that lasts (a host that cannot build jails)
 * costs a log line every half minute, not every second; other kinds are
 * refilled meanwhile, and requests start their own sandbox, as with warm = 0.
 *
 * The retired stack has room for every slot (executor_slots): a sandbox
 * holds its slot until destroyed and is pushed once, so it never overflows.
 *
 * What a Node start costs, and what was tried to cut it (Node 20.20, 2-core
 * build machine; CPU = user + system ms of the process and its threads,
 * wall = until exit; medians of 20-30 interleaved starts per variant; the
 * runner with --max-old-space-size=384 and a clean environment, as the jail
 * starts it; "quiet" at load 1, "loaded" two sittings at load 12-16):
 *
 *                                            quiet CPU/wall  loaded CPU
 *   node -e 'console.log(1)'                   82 /  81       118, 114
 *   the runner, console.log(1) (as shipped)    94 /  93       134, 143
 *   user-land V8 snapshot of the runner       120 / 118       153, 171
 *   --v8-pool-size=0                           93 /  92       142, 140
 *   --single-threaded                          95 /  93       136, 141
 *   --no-opt                                   94 /  92       134, 140
 *   --jitless                                  92 /  91       134, 146
 *   --max-semi-space-size=1                    94 /  92       132, 150
 *   --disable-proto=throw                      94 /  92       133, 139
 *   --no-node-snapshot (for scale)            157 / 151       222, 227
 *   a 3e7-step loop: as shipped               147 / 142       186, 201
 *     --jitless                               471 / 470       556, 558
 *     --no-opt                                325 / 324       398, 401
 *
 * Node already starts from its built-in snapshot (without it: +63 ms). A
 * snapshot of the runner (--build-snapshot, supported by this Node) is 4 MB
 * and costs 20-30 ms more CPU per start than it saves, must be built with
 * the same V8 flags as it is run with (--max-old-space-size, so one blob
 * per memory_limit), and Node warns that `vm` is not verified in it. No
 * flag moves the start beyond the noise between sittings (1-3 ms, the sign
 * changing), and --jitless or --no-opt make real code 2-3 times slower;
 * --disable-proto would also change what programs may do. So Node starts
 * as before, and the pool hides the start instead.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jail/demand.h"
#include "jail/backoff.h"
#include "jail/executor.h"
#include "jail/pool.h"

#define MAX_WARM DEMAND_TAKES
#define MAX_STARTERS 16
#define RECHECK_MS 1000

struct warm_list {
	struct sandbox *ready[MAX_WARM];
	unsigned n;
	unsigned starting;           /* being started by a starter right now */
	unsigned floor, ceiling;     /* executor_kind_warm_range */
	unsigned wanted;             /* recent demand, within floor and ceiling */
	struct backoff retry;        /* after failures in a row */
	bool short_of_memory;        /* held at its size by demand.c's rule (logged once) */
	struct demand demand;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t starters[MAX_STARTERS];
	unsigned n_starters;
	bool started, stopping;
	struct warm_list *kinds;     /* one per kind of sandbox */
	size_t n_kinds;
	struct sandbox **retired;    /* a stack of sandboxes to destroy */
	size_t n_retired, cap_retired;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* ---- how many of each kind ---------------------------------------------------- */

static unsigned clamp(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Each kind's bounds (they change with the egress policy) and what recent
 * demand wants within them. Called locked. */
static void size_kinds(long long now)
{
	for (size_t i = 0; i < pool.n_kinds; i++) {
		struct warm_list *k = &pool.kinds[i];
		executor_kind_warm_range(i, &k->floor, &k->ceiling);
		k->ceiling = clamp(k->ceiling, 0, MAX_WARM);
		k->floor = clamp(k->floor, 0, k->ceiling);
		k->wanted = clamp(demand_wanted(&k->demand, now), k->floor, k->ceiling);
	}
}

static unsigned held(const struct warm_list *k)
{
	return k->n + k->starting;
}

/* Warm sandboxes, ready or starting, above their kind's floor. */
static unsigned above_floors(void)
{
	unsigned n = 0;
	for (size_t i = 0; i < pool.n_kinds; i++)
		if (held(&pool.kinds[i]) > pool.kinds[i].floor)
			n += held(&pool.kinds[i]) - pool.kinds[i].floor;
	return n;
}

/* Whether some kind wants more than its floor for now: that wears off. */
static bool any_wants_above_floor(void)
{
	for (size_t i = 0; i < pool.n_kinds; i++)
		if (pool.kinds[i].wanted > pool.kinds[i].floor)
			return true;
	return false;
}

/* Kinds below their floor first, then the one with fewest. */
static bool needs_more(const struct warm_list *a, const struct warm_list *b)
{
	bool a_low = held(a) < a->floor, b_low = held(b) < b->floor;
	if (a_low != b_low)
		return a_low;
	return held(a) < held(b);
}

/* The kind most in need of a warm sandbox and not pausing after failures,
 * or -1. Called locked. */
static long kind_to_refill(long long now)
{
	long best = -1;
	for (size_t i = 0; i < pool.n_kinds; i++) {
		const struct warm_list *k = &pool.kinds[i];
		if (k->retry.retry_at > now || held(k) >= k->wanted)
			continue;
		if (best < 0 || needs_more(k, &pool.kinds[best]))
			best = (long)i;
	}
	return best;
}

/* Hands warm sandboxes that demand no longer calls for to the retired
 * stack; false if there were none. Called locked. */
static bool retire_surplus(void)
{
	bool any = false;
	for (size_t i = 0; i < pool.n_kinds; i++) {
		struct warm_list *k = &pool.kinds[i];
		while (k->n > k->wanted) {
			pool.retired[pool.n_retired++] = k->ready[--k->n];
			any = true;
		}
	}
	return any;
}

/* ---- starting and destroying ---------------------------------------------------- */

static void note_failure(size_t i, const char *err)
{
	struct warm_list *k = &pool.kinds[i];
	long long pause = backoff_failed(&k->retry);

	fprintf(stderr, "level=warn msg=\"warm sandbox failed\" language=%s failures=%u "
		"retry_in_ms=%lld error=\"%s\"\n", executor_kind_name(i), k->retry.failures, pause, err);
}

static void note_memory(size_t i, bool short_of_memory)
{
	struct warm_list *k = &pool.kinds[i];
	if (short_of_memory && !k->short_of_memory)
		fprintf(stderr, "level=info msg=\"warm pool not grown: memory_limit times the warm "
			"sandboxes above the floor would not fit in available memory\" language=%s "
			"warm=%u\n", executor_kind_name(i), k->n);
	k->short_of_memory = short_of_memory;
}

/* A started sandbox joins the ready ones, unless it is no longer wanted. */
static void park(size_t i, struct sandbox *sb)
{
	struct warm_list *k = &pool.kinds[i];
	if (pool.stopping || k->n >= k->wanted)
		pool.retired[pool.n_retired++] = sb; /* room: see pool_retire's reservation */
	else
		k->ready[k->n++] = sb;
}

enum refill { REFILLED, NO_SLOT, NO_MEMORY, FAILED, NOTHING_TO_DO };

/* Starts one warm sandbox of kind i. Called locked; unlocks meanwhile. */
static enum refill refill_one(size_t i)
{
	struct warm_list *k = &pool.kinds[i];
	/* this one and every other above a floor, at memory_limit each */
	unsigned must_fit = held(k) >= k->floor ? above_floors() + 1 : 0;
	struct sandbox *sb = NULL;
	char err[512] = "";
	int rc = 1;

	k->starting++;
	pthread_mutex_unlock(&pool.lock);
	bool fits = must_fit == 0 || demand_memory_affords(executor_memory_limit()) >= must_fit;
	if (fits)
		rc = sandbox_spawn(i, "warm", false, &sb, err, sizeof(err));
	pthread_mutex_lock(&pool.lock);
	k->starting--;
	note_memory(i, !fits);
	if (!fits)
		return NO_MEMORY;
	if (rc < 0) {
		note_failure(i, err);
		return FAILED;
	}
	if (rc > 0)
		return NO_SLOT;
	backoff_reset(&k->retry);
	park(i, sb);
	return REFILLED;
}

/* Destroys one retired sandbox; false if there was none. Called locked;
 * unlocks meanwhile. */
static bool destroy_one_retired(void)
{
	if (pool.n_retired == 0)
		return false;
	struct sandbox *sb = pool.retired[--pool.n_retired];
	pthread_mutex_unlock(&pool.lock);
	sandbox_destroy(sb);
	pthread_mutex_lock(&pool.lock);
	return true;
}

/* ---- the starters ------------------------------------------------------------- */

static void wait_ms(long long ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&pool.wake, &pool.lock, &until);
}

/* The ms until the first kind pausing after failures may be tried, or -1. */
static long long next_retry_in(long long now)
{
	long long next = -1;
	for (size_t i = 0; i < pool.n_kinds; i++)
		if (pool.kinds[i].retry.retry_at > now &&
		    (next < 0 || pool.kinds[i].retry.retry_at - now < next))
			next = pool.kinds[i].retry.retry_at - now;
	return next;
}

/* Sleeps until woken (a take, a retirement, a new egress policy) or until
 * something may have changed by itself: a pause ends, a slot or memory
 * becomes free, demand falls. */
static void wait_for_work(long long now, enum refill last)
{
	long long in = next_retry_in(now);
	if (last == NO_SLOT || last == NO_MEMORY || any_wants_above_floor())
		in = in < 0 || in > RECHECK_MS ? RECHECK_MS : in;
	if (in < 0)
		pthread_cond_wait(&pool.wake, &pool.lock);
	else
		wait_ms(in);
}

static void *starter_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stopping) {
		if (destroy_one_retired())
			continue; /* destroying first: it frees slots */
		long long now = monotonic_ms();
		size_kinds(now);
		if (retire_surplus())
			continue;
		long i = kind_to_refill(now);
		enum refill r = i >= 0 ? refill_one((size_t)i) : NOTHING_TO_DO;
		if (r == REFILLED || r == FAILED)
			continue; /* a failed kind pauses; the others go on */
		wait_for_work(now, r);
	}
	while (destroy_one_retired())
		;
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/* One starter per online core: starting a sandbox is mostly the
 * interpreter's CPU time. */
static unsigned starters_for_this_host(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return cores < 1 ? 1 : cores > MAX_STARTERS ? MAX_STARTERS : (unsigned)cores;
}

static void free_lists(void)
{
	free(pool.kinds);
	free(pool.retired);
	pool.kinds = NULL;
	pool.retired = NULL;
}

int pool_start(char *err, size_t errlen)
{
	pool.n_kinds = executor_kinds();
	pool.kinds = calloc(pool.n_kinds, sizeof(*pool.kinds));
	/* every sandbox may be retired at once: reserve room for all of them */
	pool.cap_retired = executor_slots();
	pool.retired = calloc(pool.cap_retired, sizeof(*pool.retired));
	if (!pool.kinds || !pool.retired) {
		free_lists();
		snprintf(err, errlen, "starting the pool: out of memory");
		return -1;
	}
	for (size_t i = 0; i < pool.n_kinds; i++)
		demand_init(&pool.kinds[i].demand);
	pool.stopping = false;
	unsigned wanted = starters_for_this_host(), n = 0;
	int rc = 0;
	while (n < wanted && (rc = pthread_create(&pool.starters[n], NULL, starter_main, NULL)) == 0)
		n++;
	if (n == 0) {
		free_lists();
		snprintf(err, errlen, "starting the pool's threads: %s", strerror(rc));
		return -1;
	}
	if (n < wanted) /* fewer starters refill more slowly; still correct */
		fprintf(stderr, "level=warn msg=\"warm pool started with fewer threads\" threads=%u "
			"wanted=%u error=\"%s\"\n", n, wanted, strerror(rc));
	pool.n_starters = n;
	pool.started = true;
	return 0;
}

void pool_stop(void)
{
	if (!pool.started)
		return;
	pthread_mutex_lock(&pool.lock);
	pool.stopping = true;
	for (size_t i = 0; i < pool.n_kinds; i++)
		while (pool.kinds[i].n > 0)
			pool.retired[pool.n_retired++] = pool.kinds[i].ready[--pool.kinds[i].n];
	pthread_cond_broadcast(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
	for (unsigned i = 0; i < pool.n_starters; i++)
		pthread_join(pool.starters[i], NULL);
	pool.n_starters = 0;
	pool.started = false;
	free_lists();
}

struct sandbox *pool_take(size_t k)
{
	struct sandbox *sb = NULL;

	pthread_mutex_lock(&pool.lock);
	if (pool.started && k < pool.n_kinds) {
		demand_note_take(&pool.kinds[k].demand, monotonic_ms());
		if (pool.kinds[k].n > 0)
			sb = pool.kinds[k].ready[--pool.kinds[k].n];
		pthread_cond_broadcast(&pool.wake); /* demand may now call for several */
	}
	pthread_mutex_unlock(&pool.lock);
	return sb;
}

unsigned pool_ready(size_t k)
{
	pthread_mutex_lock(&pool.lock);
	unsigned n = k < pool.n_kinds ? pool.kinds[k].n : 0;
	pthread_mutex_unlock(&pool.lock);
	return n;
}

void pool_wake(void)
{
	pthread_mutex_lock(&pool.lock);
	pthread_cond_broadcast(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}

void pool_retire(struct sandbox *sb)
{
	pthread_mutex_lock(&pool.lock);
	if (!pool.started || pool.stopping) {
		/* the starters may be gone already: nobody else would destroy it */
		pthread_mutex_unlock(&pool.lock);
		sandbox_destroy(sb);
		return;
	}
	/* a sandbox holds a slot until destroyed, so this never overflows */
	pool.retired[pool.n_retired++] = sb;
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}
