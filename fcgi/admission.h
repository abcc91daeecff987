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

/* Waits for a worker slot, first come first served, at most the queue
 * timeout; false if none came free in time. Only after enter. */
bool admission_start(void);

/* Gives the worker slot back. */
void admission_finish(void);

/* Ends the request's stay in flight. */
void admission_leave(void);

/* For metrics: requests in flight, waiting for a slot, and running. */
void admission_snapshot(unsigned *in_flight_now, unsigned *waiting, unsigned *running_now);

#endif
