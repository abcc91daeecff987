/* Admission: a counter of requests in flight, and a queue in front of the
 * worker slots. A waiter may start when it is the oldest in the queue and a
 * slot is free, which keeps the order of arrival (a plain semaphore would
 * not). A waiter that is not started within its timeout leaves the queue:
 * its client gets 503 instead of a run after nginx has long given up; one
 * whose client has left (nginx closed the connection) leaves at once and
 * never takes a slot. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "fcgi/admission.h"

/* How often a waiter looks at its client's connection. */
#define CLIENT_CHECK_MS 200

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn; /* on CLOCK_MONOTONIC, set up by admission_init */
static unsigned max_in_flight = 1, max_running = 1, queue_timeout = 30;
static unsigned in_flight, running;

/* Requests waiting for a worker slot, in arrival order. */
struct waiter {
	struct waiter *next;
};
static struct waiter *queue_head, **queue_tail = &queue_head;
static unsigned queued;

void admission_init(unsigned max_requests, unsigned max_workers, unsigned queue_timeout_s)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&turn, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_lock(&lock);
	max_in_flight = max_requests;
	max_running = max_workers;
	queue_timeout = queue_timeout_s;
	pthread_mutex_unlock(&lock);
}

bool admission_enter(void)
{
	bool admitted;

	pthread_mutex_lock(&lock);
	admitted = in_flight < max_in_flight;
	if (admitted)
		in_flight++;
	pthread_mutex_unlock(&lock);
	return admitted;
}

static void dequeue(struct waiter *w)
{
	struct waiter **p = &queue_head;
	while (*p && *p != w)
		p = &(*p)->next;
	if (!*p)
		return;
	*p = w->next;
	if (queue_tail == &w->next)
		queue_tail = p;
	queued--;
}

static void deadline_in(struct timespec *ts, unsigned seconds)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += seconds;
}

bool admission_client_gone(int client_fd)
{
	struct pollfd p = { .fd = client_fd, .events = POLLRDHUP };

	return client_fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* The earlier of the deadline and the next look at the client. */
static struct timespec next_wake(const struct timespec *deadline, int client_fd)
{
	struct timespec t;

	if (client_fd < 0)
		return *deadline;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_nsec += CLIENT_CHECK_MS * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	if (t.tv_sec > deadline->tv_sec ||
	    (t.tv_sec == deadline->tv_sec && t.tv_nsec > deadline->tv_nsec))
		return *deadline;
	return t;
}

static bool past(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

enum admission_start admission_start(int client_fd)
{
	struct waiter self = { NULL };
	struct timespec deadline;
	enum admission_start result = ADMISSION_STARTED;

	deadline_in(&deadline, queue_timeout);
	pthread_mutex_lock(&lock);
	*queue_tail = &self;
	queue_tail = &self.next;
	queued++;
	for (;;) {
		if (admission_client_gone(client_fd)) {
			result = ADMISSION_CLIENT_GONE;
			break;
		}
		if (queue_head == &self && running < max_running)
			break;
		if (past(&deadline)) {
			result = ADMISSION_TIMED_OUT;
			break;
		}
		struct timespec wake = next_wake(&deadline, client_fd);
		pthread_cond_timedwait(&turn, &lock, &wake);
	}
	dequeue(&self);
	if (result == ADMISSION_STARTED)
		running++;
	/* the next in line may be able to start now (or now that we gave up) */
	pthread_cond_broadcast(&turn);
	pthread_mutex_unlock(&lock);
	return result;
}

void admission_finish(void)
{
	pthread_mutex_lock(&lock);
	running--;
	pthread_cond_broadcast(&turn);
	pthread_mutex_unlock(&lock);
}

void admission_leave(void)
{
	pthread_mutex_lock(&lock);
	in_flight--;
	pthread_mutex_unlock(&lock);
}

void admission_snapshot(unsigned *in_flight_now, unsigned *waiting, unsigned *running_now)
{
	pthread_mutex_lock(&lock);
	*in_flight_now = in_flight;
	*waiting = queued;
	*running_now = running;
	pthread_mutex_unlock(&lock);
}
