/* Admission control: at most max_requests in flight (running or waiting),
 * at most max_workers running at once; the others wait in arrival order. */
#ifndef SANDCELL_FCGI_ADMISSION_H
#define SANDCELL_FCGI_ADMISSION_H

#include <stdbool.h>

/* Once, before any request thread exists. */
void admission_init(unsigned max_requests, unsigned max_workers, unsigned queue_timeout_s);

/* Counts the request in flight; false (nothing counted) if max_requests are
 * already in flight. */
bool admission_enter(void);

enum admission_start {
	ADMISSION_STARTED,     /* a worker slot is ours: run, then admission_finish */
	ADMISSION_TIMED_OUT,   /* none came free within the queue timeout */
	ADMISSION_CLIENT_GONE, /* client_fd hung up while waiting: nobody wants the run */
};

/* Waits for a worker slot, first come first served, at most the queue
 * timeout. client_fd is the connection of the client that waits (-1:
 * none): it is looked at whenever the waiter wakes (at least every
 * CLIENT_CHECK_MS) and last of all before the slot is taken, so a request
 * whose client left is never started. Only after enter. */
enum admission_start admission_start(int client_fd);

/* The connection was closed or broken by its peer (not merely readable). */
bool admission_client_gone(int client_fd);

/* Gives the worker slot back. */
void admission_finish(void);

/* Ends the request's stay in flight. */
void admission_leave(void);

/* For metrics: requests in flight, waiting for a slot, and running. */
void admission_snapshot(unsigned *in_flight_now, unsigned *waiting, unsigned *running_now);

#endif
