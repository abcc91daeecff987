/* The threaded FastCGI server.
 *
 * Theory of operation. main() opens the listen socket first of all, before
 * the executor touches any cgroup, so that a second daemon started by
 * mistake stops at the live socket without disturbing the first one's
 * sandboxes. The socket is opened here, not with FCGX_OpenSocket
 * (which exit()s the process on a bind error and leaves the socket
 * inheritable): close-on-exec, created under a tight umask, then chmod and
 * chgrp. With `listen` set, a TCP socket is opened too (or instead), bound
 * to that address only.
 *
 * server_run() starts, per listen socket, max_requests + 4 request threads
 * (a few more threads than admissible requests so that the ones over the
 * limit still get their 503 promptly), then becomes the signal thread:
 * SIGTERM/SIGINT/SIGHUP/SIGPIPE are blocked in every thread and taken with
 * sigwait() here only.
 *
 * A request thread accepts connections itself (accept4 with close-on-exec)
 * rather than letting libfcgi do it: a TCP client outside allow_clients is
 * then closed before a single byte of it is read, and logged. The accepted
 * descriptor is handed to FCGX_Accept_r() through FCGX_Request.ipcFd (with
 * keepConnection set, so that its leading FCGX_Finish_r() keeps it open);
 * the request's own listen_sock is -1, so libfcgi never accepts anything. A
 * connection nginx keeps open (fastcgi_keep_conn) stays with its thread,
 * which polls it between requests so that it notices a stop within a second.
 *
 * Stopping: shutdown() of the listen sockets makes every blocked accept()
 * fail, so no new connection is taken; a request thread leaves its loop
 * after finishing the request it has. The signal thread waits for all
 * request threads to be gone, at most drain_timeout seconds; if the deadline
 * passes it kills every live sandbox (the runs then end and answer) and
 * waits a little longer. Then the executor is shut down and the socket
 * removed.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fcgi/admission.h"
#include "fcgi/dependencies.h"
#include "fcgi/import_check.h"
#include "fcgi/log.h"
#include "fcgi/netaddr.h"
#include "fcgi/router.h"
#include "fcgi/server.h"
#include "jail/jail.h"

#define EXTRA_THREADS 4
#define KILL_GRACE_SECONDS 5

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_changed = PTHREAD_COND_INITIALIZER;
static unsigned live_threads;
static volatile int stopping;

/* The unix socket and/or the TCP socket. */
struct listener {
	int fd;
	bool tcp;
	char name[96];  /* for logs: the path or host:port */
};
static struct listener listeners[2];
static unsigned n_listeners;
static const struct sandcell_config *server_cfg;

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGPIPE);
}

void server_block_signals(void)
{
	sigset_t set;

	signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void log_errno(const char *msg, const char *path, int errnum)
{
	log_event(LOG_LEVEL_ERROR, msg, "path", path, "error", strerror(errnum), NULL);
}

/* ---- the listen socket ------------------------------------------------- */

static int fill_address(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -1;
	strcpy(sa->sun_path, path);
	return 0;
}

bool server_socket_in_use(const char *path)
{
	struct sockaddr_un sa;
	int probe;
	bool live;

	if (fill_address(&sa, path) < 0)
		return false;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live = probe >= 0 && connect(probe, (const struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (probe >= 0)
		close(probe);
	return live;
}

/* A socket file left by a previous run is removed; one that still answers
 * belongs to a live daemon and is left alone (refusing to start). */
static int remove_stale_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (log_errno("cannot inspect socket path", path, errno), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_event(LOG_LEVEL_ERROR, "socket path exists and is not a socket",
			  "path", path, NULL);
		return -1;
	}
	if (server_socket_in_use(path)) {
		log_event(LOG_LEVEL_ERROR, "another process is listening on the socket",
			  "path", path, NULL);
		return -1;
	}
	if (unlink(path) < 0) {
		log_errno("cannot remove stale socket", path, errno);
		return -1;
	}
	return 0;
}

static int set_socket_owner(const struct sandcell_config *cfg)
{
	struct group grp, *found = NULL;
	char buf[4096];
	int rc;

	if (chmod(cfg->socket_path, (mode_t)cfg->socket_mode) < 0) {
		log_errno("cannot chmod socket", cfg->socket_path, errno);
		return -1;
	}
	if (!cfg->socket_group)
		return 0;
	rc = getgrnam_r(cfg->socket_group, &grp, buf, sizeof(buf), &found);
	if (rc || !found) {
		log_event(LOG_LEVEL_ERROR, "socket_group: no such group",
			  "group", cfg->socket_group, NULL);
		return -1;
	}
	if (chown(cfg->socket_path, (uid_t)-1, grp.gr_gid) < 0) {
		log_errno("cannot chgrp socket", cfg->socket_path, errno);
		return -1;
	}
	return 0;
}

static int open_listen_socket(const struct sandcell_config *cfg)
{
	struct sockaddr_un sa;
	mode_t old_mask;
	int fd, rc;

	if (fill_address(&sa, cfg->socket_path) < 0 || remove_stale_socket(cfg->socket_path))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_errno("cannot create socket", cfg->socket_path, errno);
		return -1;
	}
	/* nobody may connect in the moment between bind() and chmod() */
	old_mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (rc < 0) {
		log_errno("cannot bind socket", cfg->socket_path, errno);
		close(fd);
		return -1;
	}
	if (set_socket_owner(cfg) < 0)
		goto fail;
	if (listen(fd, SOMAXCONN) < 0) {
		log_errno("cannot listen on socket", cfg->socket_path, errno);
		goto fail;
	}
	return fd;
fail:
	unlink(cfg->socket_path);
	close(fd);
	return -1;
}

/* Bound to the configured address only (never the wildcard by accident). */
static int open_tcp_socket(const struct sandcell_config *cfg)
{
	const struct sockaddr *sa = (const struct sockaddr *)&cfg->listen_addr;
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_errno("cannot create TCP socket", cfg->listen, errno);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:port must not also take IPv4: the operator writes what they mean */
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, cfg->listen_addrlen) < 0) {
		log_errno("cannot bind TCP address", cfg->listen, errno);
		close(fd);
		return -1;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		log_errno("cannot listen on TCP address", cfg->listen, errno);
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- request threads --------------------------------------------------- */

static bool client_allowed(const struct listener *l, int fd, struct sockaddr_storage *peer,
			   socklen_t len)
{
	char who[80];

	if (!l->tcp)
		return true;
	if (netaddr_allowed((struct sockaddr *)peer, len, server_cfg->client_nets,
			    server_cfg->n_client_nets)) {
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return true;
	}
	netaddr_format((struct sockaddr *)peer, len, who, sizeof(who));
	log_event(LOG_LEVEL_WARN, "client refused: not in allow_clients", "client", who,
		  "listen", l->name, NULL);
	return false;
}

/* The next allowed connection, or -1 once stopping. */
static int accept_client(const struct listener *l)
{
	while (!stopping) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);

		if (fd < 0) {
			if (stopping)
				break;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* e.g. EMFILE: do not spin, do not die */
			log_event(LOG_LEVEL_WARN, "accept failed", "listen", l->name,
				  "error", strerror(errno), NULL);
			usleep(100 * 1000);
			continue;
		}
		if (client_allowed(l, fd, &peer, len))
			return fd;
		close(fd);
	}
	return -1;
}

/* Between two requests on a kept connection: true when the next one (or
 * the close) arrives, false when sandcelld is stopping. */
static bool wait_next_request(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (!stopping) {
		int n = poll(&p, 1, 1000);

		if (n > 0 || (n < 0 && errno != EINTR))
			return true;
	}
	return false;
}

static void *request_loop(void *arg)
{
	const struct listener *l = arg;
	FCGX_Request req;

	/* listen_sock -1: libfcgi never accepts; the connections come from us */
	if (FCGX_InitRequest(&req, -1, 0) != 0) {
		log_event(LOG_LEVEL_ERROR, "FCGX_InitRequest failed", NULL);
		goto out;
	}
	while (!stopping) {
		if (req.ipcFd < 0) {
			req.ipcFd = accept_client(l);
			if (req.ipcFd < 0)
				break;
			/* or FCGX_Accept_r's leading FCGX_Finish_r closes it */
			req.keepConnection = 1;
		} else if (!wait_next_request(req.ipcFd)) {
			break;
		}
		/* < 0: the connection ended or broke; libfcgi closed it */
		if (FCGX_Accept_r(&req) < 0)
			continue;
		router_handle(&req);
		FCGX_Finish_r(&req);
	}
	FCGX_Free(&req, 1);
out:
	pthread_mutex_lock(&live_lock);
	live_threads--;
	pthread_cond_broadcast(&live_changed);
	pthread_mutex_unlock(&live_lock);
	return NULL;
}

static int start_threads(struct listener *l, unsigned n)
{
	pthread_attr_t attr;
	unsigned started = 0;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (; started < n; started++) {
		pthread_t t;

		pthread_mutex_lock(&live_lock);
		live_threads++;
		pthread_mutex_unlock(&live_lock);
		if (pthread_create(&t, &attr, request_loop, l) != 0) {
			pthread_mutex_lock(&live_lock);
			live_threads--;
			pthread_mutex_unlock(&live_lock);
			break;
		}
	}
	pthread_attr_destroy(&attr);
	return started == n ? 0 : -1;
}

/* Waits until no request thread is left or the deadline passes. */
static bool wait_for_threads(unsigned seconds)
{
	struct timespec deadline;
	bool done;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += seconds;
	pthread_mutex_lock(&live_lock);
	while (live_threads > 0)
		if (pthread_cond_timedwait(&live_changed, &live_lock, &deadline) == ETIMEDOUT)
			break;
	done = live_threads == 0;
	pthread_mutex_unlock(&live_lock);
	return done;
}

/* ---- signals and the drain --------------------------------------------- */

static int wait_for_stop_signal(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			return sig;
		log_event(LOG_LEVEL_INFO, "SIGHUP ignored: restart to load a new configuration",
			  NULL);
	}
}

static void shutdown_listeners(void)
{
	for (unsigned i = 0; i < n_listeners; i++)
		shutdown(listeners[i].fd, SHUT_RDWR);
}

static void drain_and_stop(const struct sandcell_config *cfg, int sig)
{
	char seconds[24];

	snprintf(seconds, sizeof(seconds), "%llu", (unsigned long long)cfg->drain_timeout);
	log_event(LOG_LEVEL_INFO, "stopping", "signal", strsignal(sig),
		  "drain_timeout", seconds, NULL);
	stopping = 1;
	shutdown_listeners();
	if (!wait_for_threads((unsigned)cfg->drain_timeout)) {
		log_event(LOG_LEVEL_WARN, "drain deadline passed: killing live sandboxes", NULL);
		executor_kill_all();
		if (!wait_for_threads(KILL_GRACE_SECONDS))
			log_event(LOG_LEVEL_WARN, "requests still running at exit", NULL);
	}
	import_check_stop();
	executor_shutdown();
	dependencies_clear();
	server_unlisten(cfg);
	log_event(LOG_LEVEL_INFO, "stopped", NULL);
}

int server_listen(const struct sandcell_config *cfg)
{
	server_cfg = cfg;
	n_listeners = 0;
	if (cfg->socket_path) {
		struct listener *l = &listeners[n_listeners];

		l->fd = open_listen_socket(cfg);
		if (l->fd < 0)
			return -1;
		l->tcp = false;
		snprintf(l->name, sizeof(l->name), "%s", cfg->socket_path);
		n_listeners++;
	}
	if (cfg->listen_addrlen) {
		struct listener *l = &listeners[n_listeners];

		l->fd = open_tcp_socket(cfg);
		if (l->fd < 0) {
			server_unlisten(cfg);
			return -1;
		}
		l->tcp = true;
		snprintf(l->name, sizeof(l->name), "%s", cfg->listen);
		n_listeners++;
	}
	return 0;
}

void server_unlisten(const struct sandcell_config *cfg)
{
	for (unsigned i = 0; i < n_listeners; i++) {
		close(listeners[i].fd);
		if (!listeners[i].tcp)
			unlink(cfg->socket_path);
	}
	n_listeners = 0;
}

int server_run(const struct sandcell_config *cfg)
{
	unsigned threads = (unsigned)cfg->max_requests + EXTRA_THREADS;
	int sig;

	if (FCGX_Init() != 0) {
		log_event(LOG_LEVEL_ERROR, "FCGX_Init failed", NULL);
		goto fail;
	}
	router_init(cfg);
	admission_init((unsigned)cfg->max_requests, (unsigned)cfg->max_workers,
		       (unsigned)cfg->queue_timeout);
	for (unsigned i = 0; i < n_listeners; i++) {
		if (start_threads(&listeners[i], threads) < 0) {
			log_event(LOG_LEVEL_ERROR, "cannot start request threads", NULL);
			stopping = 1;
			shutdown_listeners();
			wait_for_threads(KILL_GRACE_SECONDS);
			goto fail;
		}
	}
	log_event(LOG_LEVEL_INFO, "listening", "socket", cfg->socket_path, "listen", cfg->listen,
		  cfg->listen ? "allow_clients" : NULL, cfg->allow_clients, NULL);
	if (cfg->check_imports)
		import_check_start();
	sig = wait_for_stop_signal();
	drain_and_stop(cfg, sig);
	return 0;
fail:
	executor_shutdown();
	server_unlisten(cfg);
	return 1;
}
