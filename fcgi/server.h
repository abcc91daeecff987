/* The FastCGI server: listen socket, request threads, signals, drain. */
#ifndef SANDCELL_FCGI_SERVER_H
#define SANDCELL_FCGI_SERVER_H

#include <stdbool.h>

#include "fcgi/config.h"

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread. Call
 * first thing in main(), before any thread exists (the executor's
 * included), so that every thread inherits the mask and only the signal
 * thread sees them. */
void server_block_signals(void);

/* Opens the listen socket: removes a stale socket file, refuses a live
 * one, applies socket_mode and socket_group. Returns 0, or -1 (logged). */
int server_listen(const struct sandcell_config *cfg);

/* True if a process accepts connections on the socket at path. */
bool server_socket_in_use(const char *path);

/* Closes the listen socket and removes its file. */
void server_unlisten(const struct sandcell_config *cfg);

/* After server_listen() and executor_init(): serves until SIGTERM/SIGINT,
 * drains, shuts the executor down. Returns the process exit status. */
int server_run(const struct sandcell_config *cfg);

#endif
