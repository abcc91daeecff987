/* The seccomp supervisor.
 *
 * Theory of operation
 *
 * Every sandbox loads its policy with a listener (see jail/spawn.c), and
 * every call outside the allowlist stops its caller until the listener
 * answers. One thread answers them all, for warm sandboxes still starting
 * (CPython and Node call rt_sigaction(SIGXFSZ) at start-up) as for running
 * ones, so no two threads ever read one listener. The answers:
 *
 *   - rt_sigaction(SIGXFSZ, act, NULL), which Node makes at start-up to
 *     ignore the signal: "done", without doing it, so the file size limit
 *     stays visible (see jail/seccomp_policy.c); an rt_sigaction(SIGXFSZ)
 *     that asks for the old action goes ahead unchanged. (Reading act itself
 *     would need CAP_SYS_PTRACE in the daemon.)
 *   - anything else: EPERM, counted per slot so the run can be reported as
 *     stopped by the policy ("error: operation not permitted").
 *
 * Listeners are registered in an epoll set with the slot and a generation
 * number; an event of a slot that was forgotten (or reused) since epoll
 * returned it is dropped, because reading an idle listener would block.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/supervisor.h"

#define STOP_TAG UINT64_MAX

struct watched {
	int fd;
	uint32_t generation;
	atomic_ulong refused;
};

static struct {
	pthread_mutex_t lock;
	pthread_t thread;
	bool started;
	int epoll_fd, stop_fd;
	struct watched *slots;
	unsigned n_slots;
} sv = { .lock = PTHREAD_MUTEX_INITIALIZER, .epoll_fd = -1, .stop_fd = -1 };

static uint64_t tag(unsigned slot, uint32_t generation)
{
	return (uint64_t)generation << 32 | slot;
}

static void answer(struct watched *w)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;

	memset(&req, 0, sizeof(req));
	if (ioctl(w->fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
		return; /* the caller died meanwhile */
	memset(&resp, 0, sizeof(resp));
	resp.id = req.id;
	bool sigxfsz = req.data.nr == __NR_rt_sigaction && req.data.args[0] == SIGXFSZ;
	if (sigxfsz) {
		/* the runtimes' start-up call passes no old action: answered as
		 * done, undone; a call that asks for the old action (CPython's
		 * signal.signal, the Python runner's reset) goes ahead */
		if (req.data.args[2] != 0)
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	} else {
		resp.error = -EPERM;
	}
	/* counted before the answer: the program may be done the moment it gets it */
	if (!sigxfsz)
		atomic_fetch_add(&w->refused, 1);
	ioctl(w->fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static void handle(const struct epoll_event *ev)
{
	unsigned slot = (unsigned)(ev->data.u64 & 0xffffffffu);
	uint32_t generation = (uint32_t)(ev->data.u64 >> 32);

	pthread_mutex_lock(&sv.lock);
	struct watched *w = slot < sv.n_slots ? &sv.slots[slot] : NULL;
	if (w && w->fd >= 0 && w->generation == generation) {
		if (ev->events & EPOLLIN)
			answer(w);
		else /* no task uses the filter any more: stop hearing about it */
			epoll_ctl(sv.epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	}
	pthread_mutex_unlock(&sv.lock);
}

static void *supervisor_main(void *arg)
{
	struct epoll_event events[32];

	(void)arg;
	for (;;) {
		int n = epoll_wait(sv.epoll_fd, events, 32, -1);
		if (n < 0 && errno != EINTR)
			return NULL;
		for (int i = 0; i < n; i++) {
			if (events[i].data.u64 == STOP_TAG)
				return NULL;
			handle(&events[i]);
		}
	}
}

int supervisor_start(unsigned nslots, char *err, size_t errlen)
{
	sv.slots = calloc(nslots, sizeof(*sv.slots));
	sv.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	sv.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!sv.slots || sv.epoll_fd < 0 || sv.stop_fd < 0) {
		snprintf(err, errlen, "starting the seccomp supervisor: %s", strerror(errno ? errno : ENOMEM));
		supervisor_stop();
		return -1;
	}
	sv.n_slots = nslots;
	for (unsigned i = 0; i < nslots; i++)
		sv.slots[i].fd = -1;
	struct epoll_event stop = { .events = EPOLLIN, .data.u64 = STOP_TAG };
	epoll_ctl(sv.epoll_fd, EPOLL_CTL_ADD, sv.stop_fd, &stop);
	int rc = pthread_create(&sv.thread, NULL, supervisor_main, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "starting the seccomp supervisor: %s", strerror(rc));
		supervisor_stop();
		return -1;
	}
	sv.started = true;
	return 0;
}

void supervisor_stop(void)
{
	if (sv.started) {
		uint64_t one = 1;
		(void)!write(sv.stop_fd, &one, sizeof(one));
		pthread_join(sv.thread, NULL);
		sv.started = false;
	}
	for (unsigned i = 0; i < sv.n_slots; i++)
		supervisor_forget(i);
	if (sv.epoll_fd >= 0)
		close(sv.epoll_fd);
	if (sv.stop_fd >= 0)
		close(sv.stop_fd);
	sv.epoll_fd = sv.stop_fd = -1;
	free(sv.slots);
	sv.slots = NULL;
	sv.n_slots = 0;
}

int supervisor_watch(unsigned slot, int notify_fd, char *err, size_t errlen)
{
	pthread_mutex_lock(&sv.lock);
	struct watched *w = &sv.slots[slot];
	w->fd = notify_fd;
	w->generation++;
	atomic_store(&w->refused, 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag(slot, w->generation) };
	int rc = epoll_ctl(sv.epoll_fd, EPOLL_CTL_ADD, notify_fd, &ev);
	if (rc != 0) {
		snprintf(err, errlen, "watching the seccomp listener: %s", strerror(errno));
		close(notify_fd);
		w->fd = -1;
	}
	pthread_mutex_unlock(&sv.lock);
	return rc;
}

void supervisor_forget(unsigned slot)
{
	pthread_mutex_lock(&sv.lock);
	if (slot < sv.n_slots && sv.slots[slot].fd >= 0) {
		epoll_ctl(sv.epoll_fd, EPOLL_CTL_DEL, sv.slots[slot].fd, NULL);
		close(sv.slots[slot].fd);
		sv.slots[slot].fd = -1;
	}
	pthread_mutex_unlock(&sv.lock);
}

unsigned long supervisor_refused(unsigned slot)
{
	return slot < sv.n_slots ? atomic_load(&sv.slots[slot].refused) : 0;
}
