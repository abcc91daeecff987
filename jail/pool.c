/* Warm sandboxes and background destruction.
 *
 * Theory of operation
 *
 * Starting a sandbox costs about 10 ms before the interpreter even begins
 * (namespaces, mounts, moving into v1 cgroups on hybrid hosts) plus the
 * interpreter's own start-up; tearing it down costs another millisecond.
 * Neither depends on the request, so one background thread does both ahead
 * of time and after the fact:
 *
 *   - it keeps warm sandboxes of each kind (a language with or without
 *     network; see executor_kind_warm) fully jailed, their
 *     interpreter started and blocked reading the program from stdin. The
 *     wall clock of a run starts only when its code is sent. Every warm
 *     sandbox serves exactly one run and is destroyed afterwards: nothing is
 *     ever reused across runs.
 *   - it destroys retired sandboxes (kill the cgroup, wait until empty,
 *     remove it, free the slot), so a request is answered first.
 *
 * Retiring comes before refilling: it frees the slots that refilling needs.
 * A failure to start a warm sandbox (for example memory pressure) is retried
 * after a pause that doubles with each failure in a row of that kind, up to
 * MAX_RETRY_PAUSE_MS, so a fault that lasts (a host that cannot build jails)
 * costs a log line every half minute, not every second; other kinds are
 * refilled meanwhile, and requests start their own sandbox, as with warm = 0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jail/executor.h"
#include "jail/pool.h"

#define MAX_WARM 64
#define RETRY_PAUSE_MS 1000
#define MAX_RETRY_PAUSE_MS 32000

struct warm_list {
	struct sandbox *ready[MAX_WARM];
	unsigned n;
	unsigned wanted;
	unsigned failures;           /* in a row */
	long long retry_at;          /* monotonic ms; 0: now */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stopping;
	struct warm_list *kinds;     /* one per kind of sandbox */
	size_t n_kinds;
	struct sandbox **retired;    /* a stack of sandboxes to destroy */
	size_t n_retired, cap_retired;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The kind most in need of a warm sandbox and not pausing after failures,
 * or -1. Called locked. */
static long kind_to_refill(long long now)
{
	long best = -1;
	for (size_t i = 0; i < pool.n_kinds; i++) {
		pool.kinds[i].wanted = executor_kind_warm(i);
		if (pool.kinds[i].wanted > MAX_WARM)
			pool.kinds[i].wanted = MAX_WARM;
		if (pool.kinds[i].retry_at > now)
			continue;
		if (pool.kinds[i].n < pool.kinds[i].wanted &&
		    (best < 0 || pool.kinds[i].n < pool.kinds[best].n))
			best = (long)i;
	}
	return best;
}

static void wait_ms(unsigned ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
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
		if (pool.kinds[i].retry_at > now && (next < 0 || pool.kinds[i].retry_at - now < next))
			next = pool.kinds[i].retry_at - now;
	return next;
}

static void note_failure(size_t i, const char *err)
{
	struct warm_list *k = &pool.kinds[i];
	unsigned shift = k->failures < 5 ? k->failures : 5;
	long long pause = (long long)RETRY_PAUSE_MS << shift;

	if (pause > MAX_RETRY_PAUSE_MS)
		pause = MAX_RETRY_PAUSE_MS;
	k->failures++;
	k->retry_at = now_ms() + pause;
	fprintf(stderr, "level=warn msg=\"warm sandbox failed\" language=%s failures=%u "
		"retry_in_ms=%lld error=\"%s\"\n", executor_kind_name(i), k->failures, pause, err);
}

enum refill { REFILLED, NO_SLOT, FAILED };

/* Starts one warm sandbox of kind i. Called locked; unlocks meanwhile. */
static enum refill refill_one(size_t i)
{
	struct sandbox *sb = NULL;
	char err[512] = "";

	pthread_mutex_unlock(&pool.lock);
	int rc = sandbox_spawn(i, "warm", false, &sb, err, sizeof(err));
	pthread_mutex_lock(&pool.lock);
	if (rc < 0) {
		note_failure(i, err);
		return FAILED;
	}
	if (rc > 0)
		return NO_SLOT;
	pool.kinds[i].failures = 0;
	pool.kinds[i].retry_at = 0;
	if (pool.stopping || pool.kinds[i].n >= pool.kinds[i].wanted) {
		pool.retired[pool.n_retired++] = sb; /* room: see pool_retire's reservation */
		return REFILLED;
	}
	pool.kinds[i].ready[pool.kinds[i].n++] = sb;
	return REFILLED;
}

static void destroy_retired(void)
{
	while (pool.n_retired > 0) {
		struct sandbox *sb = pool.retired[--pool.n_retired];
		pthread_mutex_unlock(&pool.lock);
		sandbox_destroy(sb);
		pthread_mutex_lock(&pool.lock);
	}
}

static void *pool_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stopping) {
		if (pool.n_retired > 0) {
			destroy_retired();
			continue;
		}
		long long now = now_ms(), retry;
		long i = kind_to_refill(now);
		enum refill r = i >= 0 ? refill_one((size_t)i) : NO_SLOT;
		if (r != NO_SLOT)
			continue; /* a failed kind pauses; the others go on */
		retry = next_retry_in(now);
		if (i >= 0 || retry >= 0) /* no slot, or kinds pausing: later, or when woken */
			wait_ms(i >= 0 || retry > RETRY_PAUSE_MS ? RETRY_PAUSE_MS : (unsigned)retry);
		else
			pthread_cond_wait(&pool.wake, &pool.lock);
	}
	destroy_retired();
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

int pool_start(char *err, size_t errlen)
{
	pool.n_kinds = executor_kinds();
	pool.kinds = calloc(pool.n_kinds, sizeof(*pool.kinds));
	/* every sandbox may be retired at once: reserve room for all of them */
	pool.cap_retired = executor_slots();
	pool.retired = calloc(pool.cap_retired, sizeof(*pool.retired));
	if (!pool.kinds || !pool.retired) {
		snprintf(err, errlen, "starting the pool: out of memory");
		return -1;
	}
	pool.stopping = false;
	int rc = pthread_create(&pool.thread, NULL, pool_main, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "starting the pool thread: %s", strerror(rc));
		return -1;
	}
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
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
	pthread_join(pool.thread, NULL);
	pool.started = false;
	free(pool.kinds);
	free(pool.retired);
	pool.kinds = NULL;
	pool.retired = NULL;
}

struct sandbox *pool_take(size_t k)
{
	struct sandbox *sb = NULL;

	pthread_mutex_lock(&pool.lock);
	if (pool.started && k < pool.n_kinds && pool.kinds[k].n > 0) {
		sb = pool.kinds[k].ready[--pool.kinds[k].n];
		pthread_cond_signal(&pool.wake);
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
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}

void pool_retire(struct sandbox *sb)
{
	pthread_mutex_lock(&pool.lock);
	if (!pool.started) {
		pthread_mutex_unlock(&pool.lock);
		sandbox_destroy(sb);
		return;
	}
	/* a sandbox holds a slot until destroyed, so this never overflows */
	pool.retired[pool.n_retired++] = sb;
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}
