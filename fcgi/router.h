/* Routing of one FastCGI request: authentication, the endpoints of API.md,
 * the per-request log line. */
#ifndef SANDCELL_FCGI_ROUTER_H
#define SANDCELL_FCGI_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <fcgiapp.h>

#include "fcgi/config.h"

/* cfg must outlive every request. */
void router_init(const struct sandcell_config *cfg);

/* Handles one accepted request completely: answers it and logs one line.
 * Never fails: whatever goes wrong becomes an HTTP answer. */
void router_handle(FCGX_Request *req);

/* Constant-time comparison of a presented key with the configured one. */
bool router_key_matches(const char *given, const char *expected);

#endif
