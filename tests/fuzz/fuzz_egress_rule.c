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
 * parser on address rules; failures carry a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void fuzz_netaddr(const char *text)
{
	struct sockaddr_storage sa;
	socklen_t len = 0;
	struct net_prefix nets[NETADDR_MAX_NETS];
	size_t n = 0;
	char msg[256], buf[128];

	if (!netaddr_parse_listen(text, &sa, &len)) {
		if (len == 0 || len > sizeof(sa))
			fail("a listen address without a length", text);
		netaddr_format((struct sockaddr *)&sa, len, buf, sizeof(buf));
		netaddr_allowed((struct sockaddr *)&sa, len, nets, 0);
	}
	if (!netaddr_parse_nets(text, nets, NETADDR_MAX_NETS, &n, msg, sizeof(msg))) {
		if (n > NETADDR_MAX_NETS)
			fail("more networks than room", text);
		for (size_t i = 0; i < n; i++)
			if (nets[i].prefixlen > 128)
				fail("a network with a prefix beyond 128", text);
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
