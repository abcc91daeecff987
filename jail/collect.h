/* Feeding a sandbox its program and collecting what it does. */
#ifndef SANDCELL_COLLECT_H
#define SANDCELL_COLLECT_H

#include <stddef.h>

#include "jail/cgroup.h"
#include "jail/jail.h"
#include "jail/spawn.h"

struct collect_input {
	const char *parts[3];   /* header, preload, code */
	size_t lens[3];
};

/* Writes the input to the program's stdin, reads stdout and stderr (each
 * kept up to output_limit), and waits for the program to end, or kills it at the deadline, when an
 * output limit is passed or when client_fd (the client's connection; -1:
 * none) hangs up, which sets res->client_gone. Fills res (output, exit status, hits except the
 * cgroup's). Returns 0, or -1 with a message on a host fault. */
int collect_run(struct spawned *s, struct cgroup_run *cg, const struct collect_input *in,
		size_t output_limit, unsigned timeout_ms, int client_fd, struct run_result *res,
		char *err, size_t errlen);

#endif
