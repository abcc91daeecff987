/* Blocked network attempts; see egress_log.h.
 *
 * The eBPF side sends an event when the count of one (sandbox, destination,
 * hook) reaches 1, 2, 4, 8, ..., so one destination hammered a million times
 * yields about twenty events. What can still flood the log is many
 * destinations (a port scan): per request id the first
 * EGRESS_LOG_LINES_PER_REQUEST events are logged in full, later ones only
 * counted, with a summary line when that count reaches 1, 10, 100, ...
 * Requests are remembered in a small table, the least recently seen evicted.
 *
 * The metric counts attempts from the events: an event with count c adds
 * what the destination gained since its previous event (c - c/2, or 1), so
 * the counter is exact at each power of two and lags by less than half a
 * burst in between. It never goes down (the kernel's counters are an LRU
 * map and may be evicted; these are not).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bpf/egress.h"
#include "fcgi/egress_log.h"
#include "fcgi/log.h"
#include "fcgi/metrics.h"
#include "jail/jail.h"

#define TRACKED_REQUESTS 64

static struct {
	pthread_mutex_t lock;
	struct tracked {
		char id[65];
		unsigned logged;
		unsigned long long suppressed;
		unsigned long long last_seen;
	} req[TRACKED_REQUESTS];
	unsigned long long clock;
} lg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct tracked *track(const char *id)
{
	struct tracked *oldest = &lg.req[0];

	lg.clock++;
	for (size_t i = 0; i < TRACKED_REQUESTS; i++) {
		struct tracked *t = &lg.req[i];
		if (t->last_seen && !strcmp(t->id, id)) {
			t->last_seen = lg.clock;
			return t;
		}
		if (t->last_seen < oldest->last_seen)
			oldest = t;
	}
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->id, sizeof(oldest->id), "%s", id);
	oldest->last_seen = lg.clock;
	return oldest;
}

static const char *protocol_name(unsigned p)
{
	return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : p == IPPROTO_ICMP ? "icmp"
	       : p == IPPROTO_ICMPV6 ? "icmpv6" : p == 0 ? "-" : "other";
}

static void format_destination(const struct egress_event *ev, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	bool v4 = IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)ev->addr);

	if (ev->hook == EGRESS_HOOK_SOCK_CREATE) {
		snprintf(buf, len, "socket(family=%u, type=%u)", ev->family, ev->type);
		return;
	}
	inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? ev->addr + 12 : ev->addr, a, sizeof(a));
	snprintf(buf, len, v4 ? "%s:%u" : "[%s]:%u", a, ev->port);
}

static bool is_power_of_ten(unsigned long long n)
{
	while (n >= 10 && n % 10 == 0)
		n /= 10;
	return n == 1;
}

static void log_blocked(const char *id, const char *language, const struct egress_event *ev)
{
	struct log_line l;
	char dest[96];

	format_destination(ev, dest, sizeof(dest));
	log_begin(&l, LOG_LEVEL_WARN, "network attempt blocked");
	log_str(&l, "id", id);
	if (language)
		log_str(&l, "language", language);
	log_str(&l, "destination", dest);
	log_str(&l, "protocol", protocol_name(ev->protocol));
	log_str(&l, "hook", egress_hook_name(ev->hook));
	log_int(&l, "count", (long long)ev->count);
	log_end(&l);
}

void egress_log_event(const char *tag, const char *language, const struct egress_event *ev)
{
	const char *id = tag && *tag ? tag : "-";
	uint64_t c = ev->count, added = c <= 1 ? 1 : c - c / 2;

	metrics_count_blocked(egress_hook_name(ev->hook), added);
	pthread_mutex_lock(&lg.lock);
	struct tracked *t = track(id);
	bool full = t->logged < EGRESS_LOG_LINES_PER_REQUEST;
	unsigned long long suppressed = full ? 0 : ++t->suppressed;
	if (full)
		t->logged++;
	pthread_mutex_unlock(&lg.lock);
	if (full) {
		log_blocked(id, language, ev);
	} else if (is_power_of_ten(suppressed)) {
		char n[24];
		snprintf(n, sizeof(n), "%llu", suppressed);
		log_event(LOG_LEVEL_WARN, "network attempts blocked: further lines suppressed",
			  "id", id, "suppressed_events", n, NULL);
	}
}

static void on_blocked(const char *tag, const char *language, const struct egress_event *ev,
		       void *ctx)
{
	(void)ctx;
	egress_log_event(tag, language, ev);
}

void egress_log_start(void)
{
	metrics_count_blocked(NULL, 0);
	executor_on_blocked(on_blocked, NULL);
}
