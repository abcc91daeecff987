/* Private network namespaces for network sandboxes; see netns_pool.c. */
#ifndef SANDCELL_NETNS_POOL_H
#define SANDCELL_NETNS_POOL_H

#include <stddef.h>

/* Up to capacity namespaces, made on demand; pasta is the program that
 * connects each to the outside. 0, or -1 with err (pasta cannot run). */
int netns_pool_init(unsigned capacity, const char *pasta, char *err, size_t errlen);

/* Kills every pasta and drops every namespace (no sandbox may be in one). */
void netns_pool_shutdown(void);

/* A namespace no live sandbox is in: its index (>= 0) and *fd, or -1 with
 * err. The fd stays the pool's. */
int netns_lease(int *fd, char *err, size_t errlen);

/* Gives it back once every process of its sandbox is gone. A namespace
 * that still holds a socket is dropped instead, never lent again. */
void netns_return(int index);

#endif
