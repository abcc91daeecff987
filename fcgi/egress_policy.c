/* The egress policy of network sandboxes; see egress_policy.h.
 *
 * Theory of operation
 *
 * The configuration becomes a list of "lines": one per egress_rule, or, in
 * proxy-only mode, one per proxy. A line names either addresses (its rules
 * are complete) or a host name (its rules are templates whose address is
 * filled in with each address of the name's last DNS answer, as /32 or
 * /128). The policy is, in this order: every line's rules, "allow tcp+udp 53"
 * to each resolver sandboxes may use, then egress_default_rules(); in
 * proxy-only mode the proxy lines alone. Order matters only among rules of
 * the same prefix (bpf/egress.h), and the operator's come first.
 *
 * Between the resolvers and the defaults: "deny" for each of the host's own
 * addresses (host_addrs.c: every interface of sandcelld's namespace and of
 * `netns`), so that a sandbox cannot reach what the host serves on its public
 * address; an operator's egress_rule can still allow one. A second thread
 * waits for address change notifications and installs the policy again
 * when the set changes. If the addresses cannot be read or followed, network
 * runs are refused, never run without that deny.
 *
 * A name that does not resolve contributes no rule (the destination stays
 * denied, never opened) and is logged. sandcelld resolves the names itself
 * (dns_client.c) with the configured resolvers, and one thread re-resolves
 * each name when its records' TTL runs out (clamped to EGRESS_POLICY_MIN_TTL
 * .. EGRESS_POLICY_MAX_TTL); when an answer changes, the whole policy is
 * rebuilt and installed again with executor_set_egress_policy().
 *
 * Resolvers: dns_servers if set; else the nameservers of the host's
 * /etc/resolv.conf. Sandboxes can use only those that are not on loopback
 * (a sandbox may never reach the host's loopback: systemd-resolved's
 * 127.0.0.53 or Docker's 127.0.0.11 are out of reach), and those are the
 * ones written to run_dir/resolv.conf; sandcelld itself, not being jailed,
 * uses the loopback ones too when no dns_servers are set.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <time.h>
#include <unistd.h>

#include "bpf/egress.h"
#include "fcgi/config.h"
#include "fcgi/dns_client.h"
#include "fcgi/egress_policy.h"
#include "fcgi/host_addrs.h"
#include "fcgi/log.h"
#include "jail/jail.h"

#define HOST_RESOLV_CONF "/etc/resolv.conf"
#define MAX_RANGES 16        /* port ranges of one line */
#define MAX_HOST 254

struct line {
	char host[MAX_HOST];            /* "" for an address line */
	char text[600];                 /* as configured, for logs */
	struct egress_rule rules[MAX_RANGES];
	size_t n_rules;
	struct dns_result answer;       /* host lines: the addresses in use */
	long long due_ms;               /* host lines: when to ask again */
	bool resolved;                  /* host lines: asked at least once */
};

static struct {
	struct line *lines;
	size_t n_lines;
	bool proxy_only, loaded;
	struct sockaddr_storage own[EGRESS_POLICY_MAX_DNS]; /* what sandcelld asks */
	size_t n_own;
	char sandbox_dns[EGRESS_POLICY_MAX_DNS][INET6_ADDRSTRLEN]; /* what sandboxes may ask */
	size_t n_sandbox_dns;
	char resolv_path[4200], hosts_path[4200];
	/* the refresh thread */
	pthread_t thread;
	bool running, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* the host's own addresses, and the thread that keeps them current */
	struct host_addrs host;
	pthread_t addrs_thread;
	bool addrs_running;
	atomic_bool addrs_lost;      /* they cannot be followed: no policy may be installed */
	int addrs_stop[2];
} st = { .lock = PTHREAD_MUTEX_INITIALIZER, .addrs_stop = { -1, -1 } };

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- lines ------------------------------------------------------------- */

/* A host name, not an address: no ':' or '/', a letter somewhere, and only
 * the characters of DNS names. */
static bool is_host_name(const char *s)
{
	bool letter = false;

	if (!*s || strlen(s) >= MAX_HOST)
		return false;
	for (; *s; s++) {
		if (isalpha((unsigned char)*s))
			letter = true;
		else if (!isdigit((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
			return false;
	}
	return letter;
}

/* Parses one egress_rule value into l (host lines get "::" as a placeholder
 * address). Returns 0, or -1 with msg. */
static int parse_line(const char *text, struct line *l, char *msg, size_t msglen)
{
	char buf[512], *save = NULL, *tok[2], rest[512] = "";

	memset(l, 0, sizeof(*l));
	snprintf(l->text, sizeof(l->text), "%s", text);
	if (strlen(text) >= sizeof(buf)) {
		snprintf(msg, msglen, "rule too long");
		return -1;
	}
	strcpy(buf, text);
	/* the words egress_parse_rule() sees: with blanks of its own here, a '\r' was a
	 * separator in one place of a rule and part of a word in another */
	tok[0] = strtok_r(buf, EGRESS_RULE_BLANKS, &save);
	tok[1] = tok[0] ? strtok_r(NULL, EGRESS_RULE_BLANKS, &save) : NULL;
	if (!tok[1] || !is_host_name(tok[1]))
	{
		int n = egress_parse_rule(text, l->rules, MAX_RANGES, msg, msglen);
		if (n < 0)
			return -1;
		l->n_rules = (size_t)n;
		return 0;
	}
	snprintf(l->host, sizeof(l->host), "%s", tok[1]);
	for (char *t = strtok_r(NULL, EGRESS_RULE_BLANKS, &save); t;
	     t = strtok_r(NULL, EGRESS_RULE_BLANKS, &save)) {
		strncat(rest, " ", sizeof(rest) - strlen(rest) - 1);
		strncat(rest, t, sizeof(rest) - strlen(rest) - 1);
	}
	char templ[600];
	snprintf(templ, sizeof(templ), "%s ::%s", tok[0], rest);
	int n = egress_parse_rule(templ, l->rules, MAX_RANGES, msg, msglen);
	if (n < 0)
		return -1;
	l->n_rules = (size_t)n;
	return 0;
}

const char *egress_policy_check_line(const char *text, char *msg, size_t msglen)
{
	struct line *l = malloc(sizeof(*l));

	if (!l)
		return "out of memory";
	int rc = parse_line(text, l, msg, msglen);
	free(l);
	return rc ? msg : NULL;
}

/* "http://user:pw@host:3128/" -> host, port (default by scheme: 80, 443). */
static int parse_proxy(const char *url, char *host, size_t hostlen, unsigned *port)
{
	const char *p = url, *end;
	unsigned long v;

	*port = 80;
	if (!strncasecmp(p, "https://", 8)) {
		p += 8;
		*port = 443;
	} else if (!strncasecmp(p, "http://", 7)) {
		p += 7;
	} else if (strstr(p, "://")) {
		return -1; /* socks5:// and friends: not an HTTP proxy we know how to reach */
	}
	end = p + strcspn(p, "/?#");
	const char *at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	const char *hend, *colon;
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			return -1;
		p++;
		colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hend = colon ? colon : end;
	}
	if (hend == p || (size_t)(hend - p) >= hostlen)
		return -1;
	memcpy(host, p, (size_t)(hend - p));
	host[hend - p] = '\0';
	if (colon) {
		char digits[8] = "";
		size_t n = (size_t)(end - colon - 1);
		if (n == 0 || n >= sizeof(digits))
			return -1;
		memcpy(digits, colon + 1, n);
		char *e;
		v = strtoul(digits, &e, 10);
		if (*e || v == 0 || v > 65535)
			return -1;
		*port = (unsigned)v;
	}
	return 0;
}

static int add_proxy_line(struct line *l, const char *url, char *err, size_t errlen)
{
	char host[MAX_HOST], text[600];
	unsigned port;

	if (parse_proxy(url, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "egress_proxy_only: cannot read the proxy address of %s", url);
		return -1;
	}
	snprintf(text, sizeof(text), "allow %s tcp %u", host, port);
	if (parse_line(text, l, err, errlen) != 0)
		return -1;
	return 0;
}

static void free_lines(void)
{
	free(st.lines);
	st.lines = NULL;
	st.n_lines = 0;
}

static int load_lines(const struct sandcell_config *cfg, char *err, size_t errlen)
{
	const char *proxies[2] = { cfg->http_proxy, cfg->https_proxy };
	size_t max = cfg->n_egress_rules + 2;

	free_lines();
	st.lines = calloc(max, sizeof(*st.lines));
	if (!st.lines) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st.proxy_only = cfg->egress_proxy_only;
	if (st.proxy_only) {
		for (int i = 0; i < 2; i++) {
			if (!proxies[i] || (i == 1 && proxies[0] && !strcmp(proxies[0], proxies[1])))
				continue;
			if (add_proxy_line(&st.lines[st.n_lines], proxies[i], err, errlen) != 0)
				return -1;
			st.n_lines++;
		}
		return 0;
	}
	for (size_t i = 0; i < cfg->n_egress_rules; i++) {
		if (parse_line(cfg->egress_rules[i], &st.lines[st.n_lines], err, errlen) != 0)
			return -1;
		st.n_lines++;
	}
	return 0;
}

/* ---- resolvers ----------------------------------------------------------- */

static bool to_sockaddr(const char *text, struct sockaddr_storage *ss, bool *loopback)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		*loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
		return true;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
		return true;
	}
	return false;
}

/* One resolver: sandcelld asks it; sandboxes may too unless it is on loopback. */
static void add_resolver(const char *text, bool from_host)
{
	struct sockaddr_storage ss;
	bool loopback = false;

	if (!to_sockaddr(text, &ss, &loopback) || st.n_own == EGRESS_POLICY_MAX_DNS)
		return;
	if (loopback) {
		log_event(LOG_LEVEL_WARN, "DNS server on loopback: network sandboxes cannot reach it; "
			  "set dns_servers to resolvers they may use", "server", text,
			  "from", from_host ? HOST_RESOLV_CONF : "dns_servers", NULL);
		if (!from_host)
			return; /* an explicit list is what sandboxes get: loopback is useless there */
	} else {
		snprintf(st.sandbox_dns[st.n_sandbox_dns++], INET6_ADDRSTRLEN, "%s", text);
	}
	st.own[st.n_own++] = ss;
}

static void load_resolvers(const struct sandcell_config *cfg)
{
	char buf[1024], *save = NULL;

	st.n_own = st.n_sandbox_dns = 0;
	if (cfg->dns_servers) {
		snprintf(buf, sizeof(buf), "%s", cfg->dns_servers);
		for (char *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
			add_resolver(t, false);
		return;
	}
	FILE *f = fopen(HOST_RESOLV_CONF, "re");
	if (!f) {
		log_event(LOG_LEVEL_WARN, "no DNS servers: cannot read " HOST_RESOLV_CONF,
			  "error", strerror(errno), NULL);
		return;
	}
	while (fgets(buf, sizeof(buf), f)) {
		char word[32], addr[INET6_ADDRSTRLEN + 16];

		if (sscanf(buf, "%31s %61s", word, addr) == 2 && !strcmp(word, "nameserver")) {
			addr[strcspn(addr, "%")] = '\0'; /* drop a scope id */
			add_resolver(addr, true);
		}
	}
	fclose(f);
}

/* ---- files the network sandboxes see --------------------------------------- */

static int write_file(const char *path, const char *text, char *err, size_t errlen)
{
	char tmp[4300];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, 0644) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int write_name_files(struct sandcell_config *cfg, char *err, size_t errlen)
{
	char text[1024];
	size_t off;

	snprintf(st.resolv_path, sizeof(st.resolv_path), "%s/resolv.conf", cfg->run_dir);
	snprintf(st.hosts_path, sizeof(st.hosts_path), "%s/hosts", cfg->run_dir);
	off = (size_t)snprintf(text, sizeof(text), "# written by sandcelld: the resolvers network "
			       "sandboxes may query\n");
	if (st.proxy_only)
		off += (size_t)snprintf(text + off, sizeof(text) - off,
					"# none: egress_proxy_only, the proxy resolves names\n");
	for (size_t i = 0; !st.proxy_only && i < st.n_sandbox_dns; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "nameserver %s\n",
					st.sandbox_dns[i]);
	if (write_file(st.resolv_path, text, err, errlen) != 0 ||
	    write_file(st.hosts_path, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
		       "ip6-loopback\n", err, errlen) != 0)
		return -1;
	cfg->jail.resolv_conf = st.resolv_path;
	cfg->jail.hosts_file = st.hosts_path;
	return 0;
}

static int load_host_addrs(const struct sandcell_config *cfg, char *err, size_t errlen)
{
	if (host_addrs_open(cfg->netns, err, errlen) != 0)
		return -1;
	if (host_addrs_read(&st.host) != 0) {
		snprintf(err, errlen, "reading the host's addresses: %s", host_addrs_error(errno));
		host_addrs_close();
		return -1;
	}
	return 0;
}

static int load(const struct sandcell_config *cfg, char *err, size_t errlen)
{
	if (load_lines(cfg, err, errlen) != 0)
		return -1;
	if (!st.proxy_only && load_host_addrs(cfg, err, errlen) != 0)
		return -1;
	load_resolvers(cfg);
	st.loaded = true;
	return 0;
}

int egress_policy_prepare(struct sandcell_config *cfg, char *err, size_t errlen)
{
	if (!cfg->enable_network)
		return 0;
	if (load(cfg, err, errlen) != 0)
		return -1;
	if (!st.proxy_only && st.n_sandbox_dns == 0)
		log_event(LOG_LEVEL_WARN, "network sandboxes have no DNS server they may use: "
			  "set dns_servers", NULL);
	return write_name_files(cfg, err, errlen);
}

/* ---- resolving and building -------------------------------------------------- */

static void format_addrs(const struct dns_result *r, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n && off < len; i++) {
		char a[INET6_ADDRSTRLEN];
		bool v4 = IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)r->addrs[i]);

		inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? r->addrs[i] + 12 : r->addrs[i], a, sizeof(a));
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", a);
	}
}

/* Asks for l's name now. Returns true if its addresses changed. */
static bool resolve_line(struct line *l, bool quiet)
{
	struct dns_result r;
	char err[160], addrs[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)];
	uint32_t wait_s = EGRESS_POLICY_MIN_TTL;

	/* a name that stays unresolvable is logged once, not every few seconds */
	quiet |= l->resolved && l->answer.n == 0;
	l->resolved = true;
	if (dns_resolve(st.own, st.n_own, l->host, &r, err, sizeof(err)) != 0) {
		if (!quiet)
			log_event(LOG_LEVEL_WARN, "egress host name does not resolve: no rule for it",
				  "host", l->host, "error", err, "rule", l->text, NULL);
		memset(&r, 0, sizeof(r));
	} else if (r.n == 0) {
		if (!quiet)
			log_event(LOG_LEVEL_WARN, "egress host name has no address: no rule for it",
				  "host", l->host, "rule", l->text, NULL);
	} else {
		wait_s = r.ttl;
	}
	if (wait_s < EGRESS_POLICY_MIN_TTL)
		wait_s = EGRESS_POLICY_MIN_TTL;
	if (wait_s > EGRESS_POLICY_MAX_TTL)
		wait_s = EGRESS_POLICY_MAX_TTL;
	l->due_ms = now_ms() + wait_s * 1000LL;
	bool changed = r.n != l->answer.n || memcmp(r.addrs, l->answer.addrs, r.n * 16) != 0;
	l->answer = r;
	if (changed && r.n && !quiet) {
		char ttl[16];
		format_addrs(&r, addrs, sizeof(addrs));
		snprintf(ttl, sizeof(ttl), "%u", r.ttl);
		log_event(LOG_LEVEL_INFO, "egress host name resolved", "host", l->host,
			  "addresses", addrs, "ttl", ttl, NULL);
	}
	return changed;
}

struct rule_list {
	struct egress_rule *v;
	size_t n, cap;
};

static int push(struct rule_list *rl, const struct egress_rule *r)
{
	if (rl->n == rl->cap) {
		size_t cap = rl->cap ? 2 * rl->cap : 64;
		struct egress_rule *v = realloc(rl->v, cap * sizeof(*v));
		if (!v)
			return -1;
		rl->v = v;
		rl->cap = cap;
	}
	rl->v[rl->n++] = *r;
	return 0;
}

static int push_line(struct rule_list *rl, const struct line *l)
{
	if (!l->host[0]) {
		for (size_t i = 0; i < l->n_rules; i++)
			if (push(rl, &l->rules[i]) != 0)
				return -1;
		return 0;
	}
	for (size_t a = 0; a < l->answer.n; a++) {
		for (size_t i = 0; i < l->n_rules; i++) {
			struct egress_rule r = l->rules[i];
			memcpy(r.addr, l->answer.addrs[a], 16);
			r.prefixlen = 128; /* one address; an IPv4 one is ::ffff:a.b.c.d/128 = /32 */
			if (push(rl, &r) != 0)
				return -1;
		}
	}
	return 0;
}

/* The whole policy from the lines' current state. */
static int build(struct rule_list *rl)
{
	size_t n_defaults;
	const struct egress_rule *defaults = egress_default_rules(&n_defaults);
	char text[96], err[128];

	rl->n = 0;
	for (size_t i = 0; i < st.n_lines; i++)
		if (push_line(rl, &st.lines[i]) != 0)
			return -1;
	if (st.proxy_only)
		return 0;
	for (size_t i = 0; i < st.n_sandbox_dns; i++) {
		struct egress_rule r[2];
		snprintf(text, sizeof(text), "allow %s tcp+udp 53", st.sandbox_dns[i]);
		int n = egress_parse_rule(text, r, 2, err, sizeof(err));
		for (int k = 0; k < n; k++)
			if (push(rl, &r[k]) != 0)
				return -1;
	}
	for (size_t i = 0; i < st.host.n; i++) {
		struct egress_rule r[2];
		snprintf(text, sizeof(text), "deny %s", st.host.text[i]);
		int n = egress_parse_rule(text, r, 2, err, sizeof(err));
		for (int k = 0; k < n; k++)
			if (push(rl, &r[k]) != 0)
				return -1;
	}
	for (size_t i = 0; i < n_defaults; i++)
		if (push(rl, &defaults[i]) != 0)
			return -1;
	return 0;
}

static int install(const char *why)
{
	struct rule_list rl = { 0 };
	char err[512], count[16];
	int rc = -1;

	if (atomic_load(&st.addrs_lost))
		return -1; /* network runs stay refused */
	if (build(&rl) != 0) {
		log_event(LOG_LEVEL_ERROR, "egress policy: out of memory; network runs keep the "
			  "previous policy", NULL);
		goto out;
	}
	if (executor_set_egress_policy(rl.v, rl.n, err, sizeof(err)) != 0) {
		log_event(LOG_LEVEL_ERROR, "egress policy not installed: network runs will be refused",
			  "error", err, NULL);
		goto out;
	}
	snprintf(count, sizeof(count), "%zu", rl.n);
	log_event(LOG_LEVEL_INFO, "egress policy installed", "why", why, "rules", count,
		  "mode", st.proxy_only ? "proxy_only" : "rules+defaults", NULL);
	rc = 0;
out:
	free(rl.v);
	return rc;
}

/* ---- keeping it current --------------------------------------------------- */

static bool has_hosts(void)
{
	for (size_t i = 0; i < st.n_lines; i++)
		if (st.lines[i].host[0])
			return true;
	return false;
}

static void *refresh_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&st.lock);
	while (!st.stop) {
		long long due = 0;
		for (size_t i = 0; i < st.n_lines; i++)
			if (st.lines[i].host[0] && (!due || st.lines[i].due_ms < due))
				due = st.lines[i].due_ms;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		long long wait = due - now_ms();
		if (wait > 0) {
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&st.wake, &st.lock, &ts);
			continue;
		}
		/* resolving takes seconds at worst: not under the lock */
		pthread_mutex_unlock(&st.lock);
		bool changed = false;
		for (size_t i = 0; i < st.n_lines; i++)
			if (st.lines[i].host[0] && st.lines[i].due_ms <= now_ms())
				changed |= resolve_line(&st.lines[i], false);
		if (changed)
			install("a host name's addresses changed");
		pthread_mutex_lock(&st.lock);
	}
	pthread_mutex_unlock(&st.lock);
	return NULL;
}

/* Installs the policy again whenever the host's set of addresses changes. */
static void *addrs_main(void *arg)
{
	static struct host_addrs now;

	(void)arg;
	for (;;) {
		int rc = host_addrs_wait(st.addrs_stop[0], -1);
		if (rc == 0)
			break; /* stopped */
		if (rc < 0 || host_addrs_read(&now) != 0) {
			/* a new address would be open: fail closed */
			log_event(LOG_LEVEL_ERROR, "egress policy: cannot follow the host's addresses: "
				  "network runs are refused", "error", host_addrs_error(errno), NULL);
			atomic_store(&st.addrs_lost, true);
			executor_refuse_network("the host's addresses can no longer be followed");
			break;
		}
		pthread_mutex_lock(&st.lock);
		bool changed = now.n != st.host.n ||
			       memcmp(now.text, st.host.text, now.n * sizeof(now.text[0]));
		if (changed)
			memcpy(&st.host, &now, sizeof(now));
		pthread_mutex_unlock(&st.lock);
		if (changed)
			install("the host's addresses changed");
	}
	return NULL;
}

static int start_addrs_thread(void)
{
	if (pipe2(st.addrs_stop, O_CLOEXEC) != 0)
		return -1;
	if (pthread_create(&st.addrs_thread, NULL, addrs_main, NULL) != 0) {
		close(st.addrs_stop[0]);
		close(st.addrs_stop[1]);
		st.addrs_stop[0] = st.addrs_stop[1] = -1;
		return -1;
	}
	st.addrs_running = true;
	return 0;
}

static void stop_addrs_thread(void)
{
	if (st.addrs_running) {
		if (write(st.addrs_stop[1], "x", 1) != 1)
			log_event(LOG_LEVEL_WARN, "egress policy: cannot stop the address thread", NULL);
		pthread_join(st.addrs_thread, NULL);
		close(st.addrs_stop[0]);
		close(st.addrs_stop[1]);
		st.addrs_stop[0] = st.addrs_stop[1] = -1;
		st.addrs_running = false;
	}
	host_addrs_close();
	st.host.n = 0;
	atomic_store(&st.addrs_lost, false);
}

static int start_refresh(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st.wake, &ca);
	pthread_condattr_destroy(&ca);
	st.stop = false;
	if (pthread_create(&st.thread, NULL, refresh_main, NULL) != 0)
		return -1;
	st.running = true;
	return 0;
}

int egress_policy_start(const struct sandcell_config *cfg)
{
	char err[512];

	if (!cfg->enable_network)
		return 0;
	if (!st.loaded && load(cfg, err, sizeof(err)) != 0) {
		log_event(LOG_LEVEL_ERROR, "egress policy: network runs will be refused", "error", err,
			  NULL);
		return -1;
	}
	for (size_t i = 0; i < st.n_lines; i++)
		if (st.lines[i].host[0])
			resolve_line(&st.lines[i], false);
	if (install("start-up") != 0)
		return -1;
	if (!st.proxy_only && start_addrs_thread() != 0) {
		log_event(LOG_LEVEL_ERROR, "egress policy: cannot start the thread that follows the "
			  "host's addresses: network runs are refused", NULL);
		executor_refuse_network("the host's addresses cannot be followed");
		return -1;
	}
	if (has_hosts() && start_refresh() != 0) {
		log_event(LOG_LEVEL_ERROR, "egress policy: cannot start the thread that re-resolves "
			  "host names; their addresses stay as resolved now", NULL);
	}
	return 0;
}

void egress_policy_stop(void)
{
	if (st.running) {
		pthread_mutex_lock(&st.lock);
		st.stop = true;
		pthread_cond_signal(&st.wake);
		pthread_mutex_unlock(&st.lock);
		pthread_join(st.thread, NULL);
		pthread_cond_destroy(&st.wake);
		st.running = false;
	}
	stop_addrs_thread();
	free_lines();
	st.loaded = false;
	/* run_dir is left as it was found (no sandbox binds them any more) */
	if (st.resolv_path[0])
		unlink(st.resolv_path);
	if (st.hosts_path[0])
		unlink(st.hosts_path);
	st.resolv_path[0] = st.hosts_path[0] = '\0';
}

/* ---- --check ----------------------------------------------------------------- */

const char *egress_policy_pin_dir_problem(const char *pin_dir)
{
	char path[4096];
	struct statfs sf;

	/* egress_open() mounts bpffs on /sys/fs/bpf when nothing is there */
	if (!strncmp(pin_dir, "/sys/fs/bpf/", 12))
		return NULL;
	snprintf(path, sizeof(path), "%s", pin_dir);
	for (;;) {
		if (statfs(path, &sf) == 0)
			return sf.f_type == BPF_FS_MAGIC ? NULL :
			       "not on a bpf filesystem: network runs will be refused";
		char *slash = strrchr(path, '/');
		if (!slash || slash == path)
			return "cannot be checked";
		*slash = '\0';
	}
}

void egress_policy_describe(const struct sandcell_config *cfg, FILE *out, const char *indent)
{
	struct rule_list rl = { 0 };
	char err[512], addrs[DNS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)];

	if (!cfg->enable_network) {
		fprintf(out, "%snetwork is disabled: no policy\n", indent);
		return;
	}
	if (load(cfg, err, sizeof(err)) != 0) {
		fprintf(out, "%sFAILED: %s\n", indent, err);
		return;
	}
	fprintf(out, "%smode: %s\n", indent, st.proxy_only ? "proxy only (no defaults, no DNS)"
		: "operator rules, then DNS to the resolvers, then the SSRF-safe defaults");
	fprintf(out, "%ssandboxes' resolvers:", indent);
	for (size_t i = 0; i < st.n_sandbox_dns; i++)
		fprintf(out, " %s", st.sandbox_dns[i]);
	fprintf(out, "%s\n", st.n_sandbox_dns ? "" : " none");
	fprintf(out, "%snetwork namespace: %s\n", indent, cfg->netns ? cfg->netns :
		"one of its own per sandbox, connected by pasta");
	for (size_t i = 0; i < st.n_lines; i++) {
		struct line *l = &st.lines[i];
		if (!l->host[0])
			continue;
		resolve_line(l, true);
		format_addrs(&l->answer, addrs, sizeof(addrs));
		fprintf(out, "%s%s -> %s\n", indent, l->host,
			l->answer.n ? addrs : "does not resolve (no rule)");
	}
	if (build(&rl) == 0) {
		for (size_t i = 0; i < rl.n; i++) {
			char text[96];
			egress_rule_format(&rl.v[i], text, sizeof(text));
			fprintf(out, "%srule %s\n", indent, text);
		}
	}
	free(rl.v);
	free_lines();
	host_addrs_close();
	st.host.n = 0;
	st.loaded = false;
}
