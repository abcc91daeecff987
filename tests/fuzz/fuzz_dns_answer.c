/* Fuzzes the DNS answer parser of sandcelld's stub resolver:
 * dns_parse_response() (fcgi/dns_client.c), which reads the UDP answers of
 * the servers that resolve egress_rule host names, bytes from the network.
 *
 * Input: one DNS message. As ask_server() does with every datagram, it is
 * parsed as the answer to the A query and to the AAAA query into one
 * result; the id expected is the message's own (a spoofer can match ids,
 * so every check after that is what protects the parser). Checked: the
 * rcode is -1 or 0..15; the result holds at most DNS_MAX_ADDRS addresses,
 * sorted without duplicates; an empty result has TTL 0; an answer to an A
 * query adds only IPv4 (::ffff:a.b.c.d) addresses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/dns_client.h"

#define QTYPE_A 1
#define QTYPE_AAAA 28

static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_dns_answer: %s\n", what);
	abort();
}

static void check_result(const struct dns_result *res)
{
	if (res->n > DNS_MAX_ADDRS)
		fail("more addresses than room");
	if (res->n == 0 && res->ttl != 0)
		fail("a TTL without addresses");
	for (size_t i = 1; i < res->n; i++)
		if (memcmp(res->addrs[i - 1], res->addrs[i], 16) >= 0)
			fail("addresses not sorted or not unique");
}

static int parse(const uint8_t *msg, size_t len, uint16_t qtype, struct dns_result *res)
{
	uint16_t id = len >= 2 ? (uint16_t)(msg[0] << 8 | msg[1]) : 0;
	int rc = dns_parse_response(msg, len, id, qtype, res);

	if (rc < -1 || rc > 15)
		fail("an rcode out of range");
	check_result(res);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_result res;
	/* a copy of exactly size bytes: a read past the end is an ASan report */
	uint8_t *msg = malloc(size ? size : 1);

	if (!msg)
		abort();
	memcpy(msg, data, size);
	memset(&res, 0, sizeof(res));
	parse(msg, size, QTYPE_A, &res);
	for (size_t i = 0; i < res.n; i++)
		if (memcmp(res.addrs[i], v4_mapped, sizeof(v4_mapped)))
			fail("an A answer gave an address that is not IPv4");
	parse(msg, size, QTYPE_AAAA, &res);
	free(msg);
	return 0;
}
