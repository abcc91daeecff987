/* The host's own addresses, for the egress policy to deny. */
#ifndef SANDCELL_FCGI_HOST_ADDRS_H
#define SANDCELL_FCGI_HOST_ADDRS_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>

#define HOST_ADDRS_MAX 1024
#define HOST_ADDRS_TEXT_(n) #n
#define HOST_ADDRS_TEXT(n) HOST_ADDRS_TEXT_(n) /* the number as a string literal */

struct host_addrs {
	char text[HOST_ADDRS_MAX][INET6_ADDRSTRLEN]; /* sorted, no duplicates */
	size_t n;
	bool too_many; /* more than HOST_ADDRS_MAX: the read failed (E2BIG) */
};

/* Opens one rtnetlink socket subscribed to address changes in sandcelld's own
 * network namespace and one in netns_path's (if not NULL). 0, or -1 with err. */
int host_addrs_open(const char *netns_path, char *err, size_t errlen);

/* Every address of every interface of those namespaces, now. 0, or -1 with
 * errno (E2BIG: more than HOST_ADDRS_MAX; never a partial set). */
int host_addrs_read(struct host_addrs *out);

/* Waits up to timeout_ms (or until stop_fd is readable) for a change
 * notification; returns 1 if one came (pending ones are consumed), 0 on
 * timeout or stop, -1 on error. */
int host_addrs_wait(int stop_fd, int timeout_ms);

/* What host_addrs_read's errno means, for a log line or a start-up error. */
const char *host_addrs_error(int error);

void host_addrs_close(void);

#endif
