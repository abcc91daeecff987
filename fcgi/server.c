/* The threaded FastCGI server.
 *
 * Theory of operation. main() opens the listen socket first of all, before
 * the executor touches any cgroup, so that a second daemon started by
 * mistake stops at the live socket without disturbing the first one's
 * sandboxes. The socket is opened here, not with FCGX_OpenSocket
 * (which exit()s the process on a bind error and leaves the socket
 * inheritable): close-on-exec, created under a tight umask, then chmod and
 * chgrp. server_run() starts max_requests + 4 request threads that each
 * loop on FCGX_Accept_r() (a few more threads than admissible requests so
 * that the ones over the limit still get their 503 promptly), then becomes
 * the signal thread: SIGTERM/SIGINT/SIGHUP/SIGPIPE are blocked in every
 * thread and taken with sigwait() here only.
 *
 * Stopping: shutdown() of the listen socket makes every blocked accept()
 * fail, so no new request is taken; a request thread leaves its loop after
 * finishing the request it has. The signal thread waits for all request
 * threads to be gone, at most drain_timeout seconds; if the deadline passes
 * it kills every live sandbox (the runs then end and answer) and waits a
 * little longer. Then the executor is shut down and the socket removed.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
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
#include "fcgi/log.h"
#include "fcgi/router.h"
#include "fcgi/server.h"
#include "jail/jail.h"

#define EXTRA_THREADS 4
#define KILL_GRACE_SECONDS 5

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_changed = PTHREAD_COND_INITIALIZER;
static unsigned live_threads;
static volatile int stopping;
static int listen_fd = -1;

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

/* ---- request threads --------------------------------------------------- */

static void *request_loop(void *arg)
{
	FCGX_Request req;

	(void)arg;
	if (FCGX_InitRequest(&req, listen_fd, 0) != 0) {
		log_event(LOG_LEVEL_ERROR, "FCGX_InitRequest failed", NULL);
		goto out;
	}
	while (!stopping) {
		int rc = FCGX_Accept_r(&req);

		if (rc < 0) {
			if (stopping)
				break;
			/* e.g. EMFILE: do not spin, do not die */
			log_event(LOG_LEVEL_WARN, "accept failed", "error", strerror(-rc), NULL);
			usleep(100 * 1000);
			continue;
		}
		/* libfcgi does not set close-on-exec; a sandbox must never inherit
		 * another request's connection */
		fcntl(req.ipcFd, F_SETFD, FD_CLOEXEC);
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

static int start_threads(unsigned n)
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
		if (pthread_create(&t, &attr, request_loop, NULL) != 0) {
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

static void drain_and_stop(const struct sandcell_config *cfg, int sig)
{
	char seconds[24];

	snprintf(seconds, sizeof(seconds), "%llu", (unsigned long long)cfg->drain_timeout);
	log_event(LOG_LEVEL_INFO, "stopping", "signal", strsignal(sig),
		  "drain_timeout", seconds, NULL);
	stopping = 1;
	shutdown(listen_fd, SHUT_RDWR);
	if (!wait_for_threads((unsigned)cfg->drain_timeout)) {
		log_event(LOG_LEVEL_WARN, "drain deadline passed: killing live sandboxes", NULL);
		executor_kill_all();
		if (!wait_for_threads(KILL_GRACE_SECONDS))
			log_event(LOG_LEVEL_WARN, "requests still running at exit", NULL);
	}
	executor_shutdown();
	dependencies_clear();
	server_unlisten(cfg);
	log_event(LOG_LEVEL_INFO, "stopped", NULL);
}

int server_listen(const struct sandcell_config *cfg)
{
	listen_fd = open_listen_socket(cfg);
	return listen_fd < 0 ? -1 : 0;
}

void server_unlisten(const struct sandcell_config *cfg)
{
	if (listen_fd < 0)
		return;
	close(listen_fd);
	listen_fd = -1;
	unlink(cfg->socket_path);
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
	admission_init((unsigned)cfg->max_requests, (unsigned)cfg->max_workers);
	if (start_threads(threads) < 0) {
		log_event(LOG_LEVEL_ERROR, "cannot start request threads", NULL);
		stopping = 1;
		shutdown(listen_fd, SHUT_RDWR);
		wait_for_threads(KILL_GRACE_SECONDS);
		goto fail;
	}
	log_event(LOG_LEVEL_INFO, "listening", "socket", cfg->socket_path, NULL);
	sig = wait_for_stop_signal();
	drain_and_stop(cfg, sig);
	return 0;
fail:
	executor_shutdown();
	server_unlisten(cfg);
	return 1;
}
