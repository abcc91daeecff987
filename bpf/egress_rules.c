/* Egress rules as text: the parser, the formatter and the SSRF-safe defaults.
 * Pure functions, no kernel involved (see egress.h for the syntax). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/egress.h"

#define FULL_PORTS_LO 0
#define FULL_PORTS_HI 65535

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int parse_action(const char *tok, bool *allow)
{
	if (strcmp(tok, "allow") == 0)
		*allow = true;
	else if (strcmp(tok, "deny") == 0)
		*allow = false;
	else
		return -1;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end || *out > max)
		return -1;
	return 0;
}

static bool host_bits_zero(const uint8_t addr[16], unsigned prefixlen)
{
	for (unsigned bit = prefixlen; bit < 128; bit++)
		if (addr[bit / 8] & (0x80 >> (bit % 8)))
			return false;
	return true;
}

/* "10.0.0.0/8", "::1", "fe80::/10" into the IPv6 space. */
static int parse_prefix(char *tok, struct egress_rule *r, char *err, size_t errlen)
{
	char *slash = strchr(tok, '/');
	struct in_addr v4;
	unsigned long len, max;
	bool is_v4;

	if (slash)
		*slash = '\0';
	is_v4 = inet_pton(AF_INET, tok, &v4) == 1;
	if (is_v4) {
		memset(r->addr, 0, 10);
		r->addr[10] = r->addr[11] = 0xff;
		memcpy(r->addr + 12, &v4, 4);
	} else if (inet_pton(AF_INET6, tok, r->addr) != 1) {
		set_err(err, errlen, "not an IP address: %s", tok);
		return -1;
	}
	max = is_v4 ? 32 : 128;
	len = max;
	if (slash && parse_uint(slash + 1, max, &len) < 0) {
		set_err(err, errlen, "bad prefix length: /%s", slash + 1);
		return -1;
	}
	r->prefixlen = (uint8_t)(is_v4 ? 96 + len : len);
	if (!host_bits_zero(r->addr, r->prefixlen)) {
		set_err(err, errlen, "address has bits set beyond its prefix length: %s", tok);
		return -1;
	}
	return 0;
}

static int parse_protocols(const char *tok, uint8_t *protocols)
{
	if (strcmp(tok, "tcp") == 0)
		*protocols = EGRESS_PROTO_TCP;
	else if (strcmp(tok, "udp") == 0)
		*protocols = EGRESS_PROTO_UDP;
	else if (strcmp(tok, "tcp+udp") == 0 || strcmp(tok, "udp+tcp") == 0 ||
		 strcmp(tok, "any") == 0)
		*protocols = EGRESS_PROTO_TCP | EGRESS_PROTO_UDP;
	else
		return -1;
	return 0;
}

/* "443" or "8000-8100". */
static int parse_port_range(char *tok, uint16_t *lo, uint16_t *hi)
{
	char *dash = strchr(tok, '-');
	unsigned long a, b;

	if (dash)
		*dash = '\0';
	if (parse_uint(tok, 65535, &a) < 0)
		return -1;
	b = a;
	if (dash && parse_uint(dash + 1, 65535, &b) < 0)
		return -1;
	if (b < a)
		return -1;
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

/* Writes one rule per port range of ports_tok (NULL: every port). */
static int expand_ports(const struct egress_rule *base, char *ports_tok, struct egress_rule *out,
			size_t max, char *err, size_t errlen)
{
	char *range = ports_tok, *comma;
	size_t n = 0;

	if (!ports_tok) {
		if (max < 1)
			goto too_many;
		out[0] = *base;
		out[0].port_lo = FULL_PORTS_LO;
		out[0].port_hi = FULL_PORTS_HI;
		return 1;
	}
	/* Not strtok: "80,,443" and "80," are typos, not lists. */
	for (; range; range = comma ? comma + 1 : NULL) {
		comma = strchr(range, ',');
		if (comma)
			*comma = '\0';
		if (n == max)
			goto too_many;
		out[n] = *base;
		if (parse_port_range(range, &out[n].port_lo, &out[n].port_hi) < 0) {
			set_err(err, errlen, "bad port or port range: \"%s\"", range);
			return -1;
		}
		n++;
	}
	return (int)n;
too_many:
	set_err(err, errlen, "too many port ranges in one rule");
	return -1;
}

int egress_parse_rule(const char *text, struct egress_rule *out, size_t max, char *err,
		      size_t errlen)
{
	char buf[512], *tok[5], *save = NULL;
	struct egress_rule base = { .protocols = EGRESS_PROTO_TCP | EGRESS_PROTO_UDP };
	size_t ntok = 0;

	if (strlen(text) >= sizeof(buf)) {
		set_err(err, errlen, "rule too long");
		return -1;
	}
	strcpy(buf, text);
	for (char *t = strtok_r(buf, EGRESS_RULE_BLANKS, &save); t;
	     t = strtok_r(NULL, EGRESS_RULE_BLANKS, &save)) {
		if (ntok == 4) {
			set_err(err, errlen, "unexpected text after the ports: %s", t);
			return -1;
		}
		tok[ntok++] = t;
	}
	if (ntok < 2) {
		set_err(err, errlen, "expected \"allow|deny ADDRESS[/LEN] [tcp|udp|any [PORTS]]\": %s",
			text);
		return -1;
	}
	if (parse_action(tok[0], &base.allow) < 0) {
		set_err(err, errlen, "expected allow or deny, not %s", tok[0]);
		return -1;
	}
	if (parse_prefix(tok[1], &base, err, errlen) < 0)
		return -1;
	if (ntok > 2 && parse_protocols(tok[2], &base.protocols) < 0) {
		set_err(err, errlen, "expected tcp, udp, tcp+udp or any, not %s", tok[2]);
		return -1;
	}
	return expand_ports(&base, ntok > 3 ? tok[3] : NULL, out, max, err, errlen);
}

static bool is_mapped_v4(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

void egress_rule_format(const struct egress_rule *r, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN] = "?", ports[16] = "";
	const char *proto = "any";
	unsigned plen = r->prefixlen;

	if (plen >= 96 && is_mapped_v4(r->addr)) {
		inet_ntop(AF_INET, r->addr + 12, addr, sizeof(addr));
		plen -= 96;
	} else {
		inet_ntop(AF_INET6, r->addr, addr, sizeof(addr));
	}
	if (r->protocols == EGRESS_PROTO_TCP)
		proto = "tcp";
	else if (r->protocols == EGRESS_PROTO_UDP)
		proto = "udp";
	if (r->port_lo == r->port_hi)
		snprintf(ports, sizeof(ports), " %u", r->port_lo);
	else if (r->port_lo != FULL_PORTS_LO || r->port_hi != FULL_PORTS_HI)
		snprintf(ports, sizeof(ports), " %u-%u", r->port_lo, r->port_hi);
	snprintf(buf, len, "%s %s/%u %s%s", r->allow ? "allow" : "deny", addr, plen, proto, ports);
}

/* The SSRF-safe defaults, in IANA's special-purpose registries' terms. The
 * allows cover only what is public (all IPv4, global unicast IPv6); the denies
 * cut the special ranges out of them. Ranges outside 2000::/3 are denied
 * anyway (no allow covers them) but are listed so that an operator's broad
 * allow (e.g. "allow ::/0 udp 53") still does not open them. */
static const char *const default_rule_text[] = {
	"allow 0.0.0.0/0 tcp 80,443",
	"allow 2000::/3 tcp 80,443",
	/* IPv4 */
	"deny 0.0.0.0/8",        /* "this network", incl. the unspecified 0.0.0.0 */
	"deny 10.0.0.0/8",       /* RFC 1918 */
	"deny 100.64.0.0/10",    /* CGNAT shared space */
	"deny 127.0.0.0/8",      /* loopback */
	"deny 169.254.0.0/16",   /* link-local, cloud metadata 169.254.169.254 */
	"deny 172.16.0.0/12",    /* RFC 1918 */
	"deny 192.0.0.0/24",     /* IETF protocol assignments (DS-Lite, NAT64 discovery) */
	"deny 192.0.2.0/24",     /* TEST-NET-1 */
	"deny 192.88.99.0/24",   /* 6to4 relay anycast (deprecated) */
	"deny 192.168.0.0/16",   /* RFC 1918 */
	"deny 198.18.0.0/15",    /* benchmarking */
	"deny 198.51.100.0/24",  /* TEST-NET-2 */
	"deny 203.0.113.0/24",   /* TEST-NET-3 */
	"deny 224.0.0.0/4",      /* multicast */
	"deny 240.0.0.0/4",      /* reserved, incl. broadcast 255.255.255.255 */
	/* IPv6. IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 are judged as
	 * the IPv4 address they carry, by the rules above. */
	"deny ::/128",           /* unspecified */
	"deny ::1/128",          /* loopback */
	"deny ::/96",            /* IPv4-compatible (deprecated) */
	"deny ::ffff:0:0:0/96",  /* IPv4-translated (SIIT) */
	"deny 64:ff9b:1::/48",   /* local-use NAT64: may translate to private IPv4 */
	"deny 100::/64",         /* discard-only */
	"deny 2001::/23",        /* IETF protocol assignments, incl. Teredo 2001::/32 */
	"deny 2001:db8::/32",    /* documentation */
	"deny 2002::/16",        /* 6to4: embeds an IPv4 address */
	"deny 3fff::/20",        /* documentation */
	"deny 5f00::/16",        /* SRv6 SIDs */
	"deny fc00::/7",         /* unique local */
	"deny fe80::/10",        /* link-local */
	"deny fec0::/10",        /* site-local (deprecated) */
	"deny ff00::/8",         /* multicast */
};

#define MAX_DEFAULT_RULES 64
static struct egress_rule default_rules[MAX_DEFAULT_RULES];
static size_t n_default_rules;
static pthread_once_t default_rules_once = PTHREAD_ONCE_INIT;

static void build_default_rules(void)
{
	char err[128];

	for (size_t i = 0; i < sizeof(default_rule_text) / sizeof(default_rule_text[0]); i++) {
		int n = egress_parse_rule(default_rule_text[i], default_rules + n_default_rules,
					  MAX_DEFAULT_RULES - n_default_rules, err, sizeof(err));

		if (n < 0)
			abort(); /* a typo in the table above: a build-time bug */
		n_default_rules += (size_t)n;
	}
}

const struct egress_rule *egress_default_rules(size_t *n)
{
	pthread_once(&default_rules_once, build_default_rules);
	*n = n_default_rules;
	return default_rules;
}

const char *egress_hook_name(unsigned hook)
{
	static const char *const names[] = {
		[EGRESS_HOOK_CONNECT4] = "connect4",
		[EGRESS_HOOK_CONNECT6] = "connect6",
		[EGRESS_HOOK_SENDMSG4] = "sendmsg4",
		[EGRESS_HOOK_SENDMSG6] = "sendmsg6",
		[EGRESS_HOOK_BIND4] = "bind4",
		[EGRESS_HOOK_BIND6] = "bind6",
		[EGRESS_HOOK_SOCK_CREATE] = "sock_create",
		[EGRESS_HOOK_SKB_EGRESS] = "skb_egress",
		[EGRESS_HOOK_SKB_INGRESS] = "skb_ingress_listen",
	};

	if (hook < sizeof(names) / sizeof(names[0]) && names[hook])
		return names[hook];
	return "unknown";
}
