/* Network sandboxes; see network.h.
 *
 * Theory of operation
 *
 * A network sandbox runs in the host's network namespace (or the operator's
 * netns_path), so what it may reach is decided by the eBPF programs of bpf/,
 * attached once to the parent cgroup of all sandboxes: a sandbox cgroup
 * without a policy is denied every inet socket; network_admit gives a
 * network sandbox the policy right before its code is sent, network_release
 * takes it away. Everything here fails closed: if the programs cannot be
 * loaded or attached, or no policy has been installed, network_refusal()
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
#include "jail/network.h"

/* The one policy of network sandboxes. */
#define POLICY_ID 1

static struct {
	bool open, policy_ready;
	char refusal[1200];
	int netns_fd;
	pthread_t events;
	atomic_bool events_running;
	executor_blocked_fn blocked;
	void *blocked_ctx;
	const char *(*lookup)(uint64_t, char *, size_t);
} net = { .netns_fd = -1 };

static void refuse(const char *why, const char *detail)
{
	snprintf(net.refusal, sizeof(net.refusal), "%s%s%s", why, detail ? ": " : "", detail ? detail : "");
}

static void report_event(const struct egress_event *ev, void *ctx)
{
	char buf[128];
	(void)ctx;
	if (!net.blocked)
		return;
	const char *tag = net.lookup ? net.lookup(ev->cgroup_id, buf, sizeof(buf)) : NULL;
	net.blocked(tag, ev, net.blocked_ctx);
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

void network_init(const struct jail_config *cfg, const char *cgroup_parent)
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
	}
	if (egress_open(cgroup_parent, cfg->egress_pin_dir, err, sizeof(err)) != 0) {
		refuse("the egress policy cannot be enforced on this host", err);
		return;
	}
	net.open = true;
	egress_for_each_assigned(forget_stale, NULL);
	atomic_store(&net.events_running, true);
	if (pthread_create(&net.events, NULL, events_main, NULL) != 0)
		atomic_store(&net.events_running, false);
	refuse("no egress policy is installed", NULL);
}

void network_shutdown(void)
{
	if (atomic_exchange(&net.events_running, false))
		pthread_join(net.events, NULL);
	if (net.open)
		egress_detach_and_unpin();
	net.open = net.policy_ready = false;
	if (net.netns_fd >= 0)
		close(net.netns_fd);
	net.netns_fd = -1;
}

const char *network_refusal(void)
{
	return net.open && net.policy_ready ? NULL : net.refusal;
}

int network_netns_fd(void)
{
	return net.netns_fd;
}

int network_set_policy(const struct egress_rule *rules, size_t n, char *err, size_t errlen)
{
	if (!net.open) {
		snprintf(err, errlen, "%s", net.refusal);
		return -1;
	}
	if (egress_set_policy(POLICY_ID, rules, n, err, errlen) != 0) {
		net.policy_ready = false;
		refuse("installing the egress policy failed", err);
		return -1;
	}
	net.policy_ready = true;
	return 0;
}

int network_admit(uint64_t cgroup_id, char *err, size_t errlen)
{
	const char *why = network_refusal();
	if (why) {
		snprintf(err, errlen, "network is not available: %s", why);
		return -1;
	}
	int rc = egress_assign(cgroup_id, POLICY_ID);
	if (rc < 0) {
		snprintf(err, errlen, "could not give the sandbox its egress policy: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

void network_release(uint64_t cgroup_id)
{
	if (net.open)
		egress_unassign(cgroup_id);
}

void network_on_blocked(executor_blocked_fn fn, void *ctx,
			const char *(*lookup)(uint64_t cgroup_id, char *buf, size_t len))
{
	net.blocked_ctx = ctx;
	net.lookup = lookup;
	net.blocked = fn;
}
