/* The FastCGI server: listen socket, request threads, signals, drain. */
#ifndef SANDCELL_FCGI_SERVER_H
#define SANDCELL_FCGI_SERVER_H

#include "fcgi/config.h"

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread. Call
 * first thing in main(), before any thread exists (the executor's
 * included), so that every thread inherits the mask and only the signal
 * thread sees them. */
void server_block_signals(void);

/* Opens the socket, serves until SIGTERM/SIGINT, drains, shuts the
 * executor down. Returns the process exit status. */
int server_run(const struct sandcell_config *cfg);

#endif
