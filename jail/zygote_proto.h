/* The messages between sandcelld (jail/zygote.c) and a zygote (zygote/), over
 * a SOCK_SEQPACKET socketpair that only the two hold: one message each. */
#ifndef SANDCELL_ZYGOTE_PROTO_H
#define SANDCELL_ZYGOTE_PROTO_H

#include <linux/filter.h>
#include <stdint.h>

#include "jail/enter.h"

#define ZYGOTE_FD 3               /* the zygote's end of the socketpair */
#define ZYGOTE_INIT_FD 5          /* sandcelld's binary, which its children's inits exec */
#define ZYGOTE_MAX_FILTER 4096    /* instructions of the seccomp program */
#define ZYGOTE_MAX_LIMITS 8
#define ZYGOTE_NAME "sandcell-zygote"

/* sandcelld -> zygote, once, right after exec: how every child is jailed. */
struct zygote_hello {
	uint32_t n_limits;
	struct spawn_limit limits[ZYGOTE_MAX_LIMITS];
	char tmp_options[96];          /* the private /tmp's mount options */
	char preload[1024];            /* modules to import, separated by spaces */
	uint32_t n_filter;
	struct sock_filter filter[ZYGOTE_MAX_FILTER];
};

/* zygote -> sandcelld, once: ready (err 0) or why not. */
struct zygote_ready {
	int32_t err;
	char message[480];
};

/* sandcelld -> zygote, per sandbox; with the descriptors in this order:
 * the channels, then the cgroup.procs files the child moves itself into
 * (the run's v2 cgroup, then its v1 slot cgroups on hybrid hosts), then the
 * network namespace to join if has_netns. */
enum { ZREQ_ERROR, ZREQ_NOTIFY, ZREQ_STATUS, ZREQ_RESULT, ZREQ_STDIN, ZREQ_STDOUT, ZREQ_STDERR,
       ZREQ_CHANNELS };
#define ZREQ_MAX_PROCS 4
#define ZREQ_MAX_FDS (ZREQ_CHANNELS + ZREQ_MAX_PROCS + 1)

struct zygote_request {
	uint32_t uid;
	uint32_t n_procs;              /* cgroup.procs files, 1..ZREQ_MAX_PROCS */
	uint32_t has_netns;            /* join the last descriptor, else a new empty namespace */
};

/* zygote -> sandcelld: the child's pid, with its pidfd; or err (errno) and what. */
struct zygote_reply {
	int32_t err;
	int32_t pid;
	char what[200];
};

#endif
