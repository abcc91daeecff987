/* Parsing of `listen` and `allow_clients`, and the client check.
 *
 * Addresses are compared in the IPv6 space: an IPv4 network a.b.c.d/n is
 * stored as ::ffff:a.b.c.d/(96+n), and an IPv4 peer (or an IPv4-mapped peer
 * of a dual-stack socket) is mapped the same way before the comparison, so
 * "127.0.0.1" in the list admits both forms of the same client.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/netaddr.h"

static void map_ipv4(const struct in_addr *a4, uint8_t out[16])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, &a4->s_addr, 4);
}

static bool parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;

	if (!*s || strlen(s) > 5)
		return false;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

const char *netaddr_parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[64];
	const char *colon;
	uint16_t port;
	size_t hl;

	memset(sa, 0, sizeof(*sa));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':')
			return "expected [IPv6 address]:port";
		hl = (size_t)(close - text - 1);
		if (hl == 0 || hl >= sizeof(host))
			return "expected [IPv6 address]:port";
		memcpy(host, text + 1, hl);
		host[hl] = '\0';
		if (!parse_port(close + 2, &port))
			return "port must be a number from 1 to 65535";
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return "not an IPv6 address";
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return NULL;
	}
	colon = strrchr(text, ':');
	if (!colon || strchr(text, ':') != colon)
		return "expected IPv4address:port or [IPv6address]:port";
	hl = (size_t)(colon - text);
	if (hl == 0 || hl >= sizeof(host))
		return "expected IPv4address:port or [IPv6address]:port";
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (!parse_port(colon + 1, &port))
		return "port must be a number from 1 to 65535";
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;

	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return "not an IPv4 address (names are not accepted)";
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	*len = sizeof(*s4);
	return NULL;
}

/* Zero outside the prefix? */
static bool host_bits_zero(const uint8_t a[16], unsigned prefixlen)
{
	for (unsigned bit = prefixlen; bit < 128; bit++)
		if (a[bit / 8] & (0x80 >> (bit % 8)))
			return false;
	return true;
}

static const char *parse_one_net(char *s, struct net_prefix *out)
{
	char *slash = strchr(s, '/');
	unsigned long plen = ~0UL;
	bool v4;

	if (slash) {
		char *end;

		*slash = '\0';
		if (!isdigit((unsigned char)slash[1]))
			return "bad prefix length";
		plen = strtoul(slash + 1, &end, 10);
		if (*end || plen > 128)
			return "bad prefix length";
	}
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		v4 = true;
		map_ipv4(&a4, out->addr);
	} else if (inet_pton(AF_INET6, s, &a6) == 1) {
		v4 = false;
		memcpy(out->addr, &a6, 16);
	} else {
		return "not an IPv4 or IPv6 address";
	}
	if (plen == ~0UL)
		plen = v4 ? 32 : 128;
	if (v4 && plen > 32)
		return "IPv4 prefix length above 32";
	out->prefixlen = (uint8_t)(v4 ? 96 + plen : plen);
	if (!host_bits_zero(out->addr, out->prefixlen))
		return "address has bits set beyond the prefix length";
	return NULL;
}

static char *trim_spaces(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

const char *netaddr_parse_nets(const char *text, struct net_prefix *out, size_t max,
			       size_t *n, char *msg, size_t msglen)
{
	char *copy = strdup(text), *save = NULL, *item;
	const char *bad = NULL;

	*n = 0;
	if (!copy)
		return "out of memory";
	if (!*trim_spaces(copy)) {
		free(copy);
		return NULL;
	}
	/* strtok_r would silently merge ",," into one separator */
	for (item = copy; item; item = save) {
		save = strchr(item, ',');
		if (save)
			*save++ = '\0';
		item = trim_spaces(item);
		if (!*item) {
			bad = "empty entry in the list";
			break;
		}
		if (*n == max) {
			bad = "too many entries";
			break;
		}
		bad = parse_one_net(item, &out[*n]);
		if (bad) {
			snprintf(msg, msglen, "'%.60s': %s", item, bad);
			bad = msg;
			break;
		}
		(*n)++;
	}
	free(copy);
	return bad;
}

static bool prefix_contains(const struct net_prefix *net, const uint8_t a[16])
{
	unsigned full = net->prefixlen / 8, rest = net->prefixlen % 8;

	if (memcmp(net->addr, a, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));

	return (net->addr[full] & mask) == (a[full] & mask);
}

bool netaddr_allowed(const struct sockaddr *sa, socklen_t len,
		     const struct net_prefix *nets, size_t n)
{
	uint8_t a[16];

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
		map_ipv4(&((const struct sockaddr_in *)sa)->sin_addr, a);
	else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return false;
	for (size_t i = 0; i < n; i++)
		if (prefix_contains(&nets[i], a))
			return true;
	return false;
}

void netaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, buflen, "%s:%u", host, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, buflen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		snprintf(buf, buflen, "(family %d)", sa->sa_family);
	}
}
