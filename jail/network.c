/* Network sandboxes; see network.h.
 *
 * Theory of operation
 *
 * A network sandbox runs in a network namespace of its own (jail/netns_pool.c:
 * pasta connects it to the host's network) or in the operator's netns_path,
 * and what it may reach is decided by the eBPF programs of bpf/,
 * attached once to the parent cgroup of all sandboxes: a sandbox cgroup
 * without a policy is denied every inet socket; network_admit gives a
 * network sandbox the policy right before its code is sent, network_release
 * takes it away, and network_forget_blocked drops the cgroup's counts of
 * blocked attempts (slot cgroups are reused). Everything here fails closed:
 * if the programs cannot be loaded or attached, or no policy has been installed, network_refusal()
 * says why and the executor refuses network runs; runs without network are
 * unaffected (they have their own empty namespace, and no policy).
 *
 * The links and maps are pinned on bpffs, so a sandcelld that crashes leaves
 * its running sandboxes under their policy; the next one adopts the pins. A
 * clean shutdown (every sandbox killed first) removes them.
 *
 * One thread reads the programs' ring buffer of blocked attempts and hands
 * each, with the tag of the sandbox (the request id), to the daemon's
 * callback for logging and metrics.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bpf/egress.h"
#include "jail/netns_pool.h"
#include "jail/network.h"

/* Policies are installed under a new id each time (a generation), so that a
 * running sandbox keeps the rules it started with; an id is deleted once no
 * sandbox holds it. With more generations alive than this, the newest is
 * replaced in place instead. */
#define MAX_GENERATIONS 16

struct generation {
	uint32_t id;
	unsigned holders;   /* sandboxes admitted under it */
};

static struct {
	pthread_mutex_t lock;   /* everything below but the callback fields */
	bool open, policy_ready;
	struct generation gens[MAX_GENERATIONS];
	size_t n_gens;          /* gens[n_gens - 1] is the current policy */
	uint32_t next_id;
	char refusal[1200];
	int netns_fd;
	pthread_t events;
	atomic_bool events_running;
	executor_blocked_fn blocked;
	void *blocked_ctx;
	bool (*lookup)(uint64_t, char *, size_t, char *, size_t);
} net = { .lock = PTHREAD_MUTEX_INITIALIZER, .netns_fd = -1, .next_id = 1 };

static void refuse(const char *why, const char *detail)
{
	snprintf(net.refusal, sizeof(net.refusal), "%s%s%s", why, detail ? ": " : "", detail ? detail : "");
}

static void report_event(const struct egress_event *ev, void *ctx)
{
	char tag[128], language[32];
	(void)ctx;
	if (!net.blocked)
		return;
	bool known = net.lookup && net.lookup(ev->cgroup_id, tag, sizeof(tag), language, sizeof(language));
	net.blocked(known ? tag : NULL, known ? language : NULL, ev, net.blocked_ctx);
}

static void *events_main(void *arg)
{
	(void)arg;
	while (atomic_load(&net.events_running))
		if (egress_poll_events(200, report_event, NULL) < 0)
			usleep(200 * 1000);
	return NULL;
}

/* A sandcelld that died left policies for cgroups that are gone now (its
 * sandboxes were removed as leftovers before this runs). */
static void forget_stale(uint64_t cgroup_id, uint32_t policy_id, void *ctx)
{
	(void)policy_id;
	(void)ctx;
	egress_unassign(cgroup_id);
}

void network_init(const struct jail_config *cfg, const char *cgroup_parent, unsigned max_sandboxes)
{
	char err[512];

	refuse("network is disabled in the configuration", NULL);
	if (!cfg->network)
		return;
	if (cfg->netns_path) {
		net.netns_fd = open(cfg->netns_path, O_RDONLY | O_CLOEXEC);
		if (net.netns_fd < 0) {
			snprintf(err, sizeof(err), "%s: %s", cfg->netns_path, strerror(errno));
			refuse("network namespace unavailable", err);
			return;
		}
	} else if (netns_pool_init(max_sandboxes, cfg->pasta_path, err, sizeof(err)) != 0) {
		refuse("private network namespaces cannot be made", err);
		return;
	}
	if (egress_open(cgroup_parent, cfg->egress_pin_dir, err, sizeof(err)) != 0) {
		refuse("the egress policy cannot be enforced on this host", err);
		return;
	}
	net.open = true;
	egress_for_each_assigned(forget_stale, NULL);
	/* policies an earlier sandcelld left: their sandboxes are gone */
	for (uint32_t id = 1; id <= 1024; id++)
		egress_delete_policy(id);
	atomic_store(&net.events_running, true);
	if (pthread_create(&net.events, NULL, events_main, NULL) != 0)
		atomic_store(&net.events_running, false);
	refuse("no egress policy is installed", NULL);
}

void network_shutdown(void)
{
	if (atomic_exchange(&net.events_running, false))
		pthread_join(net.events, NULL);
	pthread_mutex_lock(&net.lock);
	if (net.open)
		egress_detach_and_unpin();
	net.open = net.policy_ready = false;
	net.n_gens = 0;
	if (net.netns_fd >= 0)
		close(net.netns_fd);
	net.netns_fd = -1;
	pthread_mutex_unlock(&net.lock);
	netns_pool_shutdown();
}

/* Called locked. */
static const char *refusal_locked(void)
{
	return net.open && net.policy_ready ? NULL : net.refusal;
}

/* Copies the reason network runs are refused into the caller's buffer (the
 * text may change under another thread), or returns NULL. */
const char *network_refusal(void)
{
	static __thread char copy[sizeof(net.refusal)];
	const char *why;

	pthread_mutex_lock(&net.lock);
	why = refusal_locked();
	if (why) {
		snprintf(copy, sizeof(copy), "%s", why);
		why = copy;
	}
	pthread_mutex_unlock(&net.lock);
	return why;
}

int network_netns_fd(void)
{
	return net.netns_fd;
}

/* Drops generations no sandbox holds, but the current one. Called locked. */
static void forget_unheld_generations(void)
{
	size_t kept = 0;
	for (size_t i = 0; i < net.n_gens; i++) {
		if (net.gens[i].holders == 0 && i + 1 < net.n_gens)
			egress_delete_policy(net.gens[i].id);
		else
			net.gens[kept++] = net.gens[i];
	}
	net.n_gens = kept;
}

void network_refuse(const char *why)
{
	pthread_mutex_lock(&net.lock);
	net.policy_ready = false;
	refuse(why, NULL);
	pthread_mutex_unlock(&net.lock);
}

int network_set_policy(const struct egress_rule *rules, size_t n, char *err, size_t errlen)
{
	int rc = -1;

	pthread_mutex_lock(&net.lock);
	if (!net.open) {
		snprintf(err, errlen, "%s", net.refusal);
		goto out;
	}
	forget_unheld_generations();
	bool in_place = net.n_gens == MAX_GENERATIONS;
	uint32_t id = in_place ? net.gens[net.n_gens - 1].id : net.next_id;
	if (egress_set_policy(id, rules, n, err, errlen) != 0) {
		net.policy_ready = false;
		refuse("installing the egress policy failed", err);
		goto out;
	}
	if (!in_place) {
		net.gens[net.n_gens++] = (struct generation){ .id = id };
		net.next_id++;
		forget_unheld_generations();
	}
	net.policy_ready = true;
	rc = 0;
out:
	pthread_mutex_unlock(&net.lock);
	return rc;
}

int network_admit(uint64_t cgroup_id, uint32_t *policy, char *err, size_t errlen)
{
	int rc = -1;

	pthread_mutex_lock(&net.lock);
	const char *why = refusal_locked();
	if (why) {
		snprintf(err, errlen, "network is not available: %s", why);
		goto out;
	}
	struct generation *g = &net.gens[net.n_gens - 1];
	int e = egress_assign(cgroup_id, g->id);
	if (e < 0) {
		snprintf(err, errlen, "could not give the sandbox its egress policy: %s", strerror(-e));
		goto out;
	}
	g->holders++;
	*policy = g->id;
	rc = 0;
out:
	pthread_mutex_unlock(&net.lock);
	return rc;
}

void network_release(uint64_t cgroup_id, uint32_t policy)
{
	pthread_mutex_lock(&net.lock);
	if (net.open) {
		egress_unassign(cgroup_id);
		for (size_t i = 0; i < net.n_gens; i++)
			if (net.gens[i].id == policy && net.gens[i].holders > 0)
				net.gens[i].holders--;
		forget_unheld_generations();
	}
	pthread_mutex_unlock(&net.lock);
}

void network_forget_blocked(uint64_t cgroup_id)
{
	pthread_mutex_lock(&net.lock);
	if (net.open)
		egress_forget_blocked(cgroup_id);
	pthread_mutex_unlock(&net.lock);
}

void network_on_blocked(executor_blocked_fn fn, void *ctx,
			bool (*lookup)(uint64_t cgroup_id, char *tag, size_t tag_len, char *language,
				       size_t language_len))
{
	net.blocked_ctx = ctx;
	net.lookup = lookup;
	net.blocked = fn;
}
