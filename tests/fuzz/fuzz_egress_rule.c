/* Fuzzes the parsers of network addresses in the configuration:
 *   egress_policy_check_line()  an egress_rule value, address or host name
 *                               (fcgi/egress_policy.c)
 *   egress_parse_rule()         the address form (bpf/egress_rules.c), and
 *                               egress_rule_format() of what it parsed
 *   netaddr_parse_listen()      the listen address (fcgi/netaddr.c)
 *   netaddr_parse_nets()        the allow_clients list
 *
 * Input: one value; a NUL ends it (configuration values are C strings).
 * Checked: a rule that parses formats to text that parses back to the same
 * rule; every rule has a prefix length of at most 128, no address bits
 * beyond it, and port_lo <= port_hi; the check of the line agrees with the
 * parser on address rules; failures carry a message; a listen address
 * formats and parses back to itself; a network admits its own address.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "bpf/egress.h"
#include "fcgi/egress_policy.h"
#include "fcgi/netaddr.h"

#define MAX_RULES 16  /* egress_policy.c's MAX_RANGES */

static void fail(const char *what, const char *text)
{
	fprintf(stderr, "fuzz_egress_rule: %s: \"%s\"\n", what, text);
	abort();
}

static bool host_bits_zero(const struct egress_rule *r)
{
	for (unsigned bit = r->prefixlen; bit < 128; bit++)
		if (r->addr[bit / 8] & (0x80 >> (bit % 8)))
			return false;
	return true;
}

static void check_rule(const struct egress_rule *r, const char *text)
{
	struct egress_rule again[2];
	char formatted[128], err[256];

	if (r->prefixlen > 128 || !host_bits_zero(r) || r->port_lo > r->port_hi)
		fail("an impossible rule parsed", text);
	egress_rule_format(r, formatted, sizeof(formatted));
	if (egress_parse_rule(formatted, again, 2, err, sizeof(err)) != 1 ||
	    memcmp(&again[0], r, sizeof(*r)))
		fail("a formatted rule does not parse back to itself", formatted);
}

static void fuzz_rules(const char *text)
{
	struct egress_rule rules[MAX_RULES];
	char err[256] = "", msg[256] = "";
	int n = egress_parse_rule(text, rules, MAX_RULES, err, sizeof(err));
	const char *bad = egress_policy_check_line(text, msg, sizeof(msg));

	if (n < 0 && !err[0])
		fail("egress_parse_rule failed without a message", text);
	for (int i = 0; i < n; i++)
		check_rule(&rules[i], text);
	if (bad && !*bad)
		fail("egress_policy_check_line failed with an empty message", text);
	/* an address rule is checked by the parser itself */
	if (n >= 0 && bad)
		fail("a rule that parses is refused by the check", text);
}

/* A network admits its own first address, whichever family it is written in. */
static void check_net(const struct net_prefix *net, const char *text)
{
	static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in s4 = { .sin_family = AF_INET };

	if (net->prefixlen > 128)
		fail("a network with a prefix beyond 128", text);
	memcpy(&s6.sin6_addr, net->addr, 16);
	if (!netaddr_allowed((struct sockaddr *)&s6, sizeof(s6), net, 1))
		fail("a network does not admit its own address", text);
	if (net->prefixlen >= 96 && !memcmp(net->addr, v4_mapped, sizeof(v4_mapped))) {
		memcpy(&s4.sin_addr, net->addr + 12, 4);
		if (!netaddr_allowed((struct sockaddr *)&s4, sizeof(s4), net, 1))
			fail("an IPv4 network does not admit its own IPv4 address", text);
	}
}

static void fuzz_netaddr(const char *text)
{
	struct sockaddr_storage sa;
	socklen_t len = 0;
	struct net_prefix nets[NETADDR_MAX_NETS];
	size_t n = 0;
	char msg[256], buf[128];

	if (!netaddr_parse_listen(text, &sa, &len)) {
		struct sockaddr_storage again;
		socklen_t again_len = 0;

		if (len == 0 || len > sizeof(sa))
			fail("a listen address without a length", text);
		netaddr_format((struct sockaddr *)&sa, len, buf, sizeof(buf));
		if (netaddr_parse_listen(buf, &again, &again_len) || again_len != len ||
		    memcmp(&again, &sa, len))
			fail("a formatted listen address does not parse back to itself", buf);
	}
	if (!netaddr_parse_nets(text, nets, NETADDR_MAX_NETS, &n, msg, sizeof(msg))) {
		if (n > NETADDR_MAX_NETS)
			fail("more networks than room", text);
		for (size_t i = 0; i < n; i++)
			check_net(&nets[i], text);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = strndup((const char *)data, size);

	if (!text)
		abort();
	fuzz_rules(text);
	fuzz_netaddr(text);
	free(text);
	return 0;
}
