/* Admission: a counter of requests in flight, and a ticket queue in front
 * of the worker slots. A waiter takes the next ticket; it may start when
 * its ticket is the oldest unserved one and a slot is free, which keeps the
 * order of arrival (a plain semaphore would not). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdint.h>

#include "fcgi/admission.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn = PTHREAD_COND_INITIALIZER;
static unsigned max_in_flight = 1, max_running = 1;
static unsigned in_flight, running;
static uint64_t next_ticket, now_serving;

void admission_init(unsigned max_requests, unsigned max_workers)
{
	pthread_mutex_lock(&lock);
	max_in_flight = max_requests;
	max_running = max_workers;
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

void admission_start(void)
{
	uint64_t ticket;

	pthread_mutex_lock(&lock);
	ticket = next_ticket++;
	while (ticket != now_serving || running >= max_running)
		pthread_cond_wait(&turn, &lock);
	now_serving++;
	running++;
	/* the next ticket may be able to start too */
	pthread_cond_broadcast(&turn);
	pthread_mutex_unlock(&lock);
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
	/* tickets taken but not yet served */
	*waiting = (unsigned)(next_ticket - now_serving);
	*running_now = running;
	pthread_mutex_unlock(&lock);
}
