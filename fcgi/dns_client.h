/* A minimal stub resolver for sandcelld's host-name egress rules: A and
 * AAAA over UDP to the configured servers, with the records' TTL. Bounded:
 * one UDP socket per server tried, a fixed timeout, a fixed number of
 * addresses. No search domains, no /etc/hosts, no TCP fallback (a truncated
 * answer is used as far as it goes). */
#ifndef SANDCELL_FCGI_DNS_CLIENT_H
#define SANDCELL_FCGI_DNS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_MAX_ADDRS 16        /* addresses kept per name (A and AAAA together) */
#define DNS_TIMEOUT_MS 1500     /* per server, for both queries */

struct dns_result {
	uint8_t addrs[DNS_MAX_ADDRS][16]; /* IPv6 space; IPv4 as ::ffff:a.b.c.d, sorted */
	size_t n;                         /* 0: the name has no A/AAAA record */
	uint32_t ttl;                     /* smallest TTL of the records kept (0 if n == 0) */
};

/* Asks the servers in turn until one answers both queries. Returns 0 with
 * res filled (n may be 0: NXDOMAIN or no address records), or -1 with why in
 * err (no server answered, or the name is not a valid host name). */
int dns_resolve(const struct sockaddr_storage *servers, size_t n_servers, const char *name,
		struct dns_result *res, char *err, size_t errlen);

/* Parses one response to query id/qtype into res (appending, deduplicated).
 * Returns the DNS rcode (0 = NOERROR, 3 = NXDOMAIN, ...), or -1 if the
 * message is malformed or not the answer to that query. For unit tests. */
int dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, uint16_t qtype,
		       struct dns_result *res);

/* Builds a query for name/qtype with this id into buf. Returns its length,
 * or -1 if the name is not a valid host name or buf is too small. */
int dns_build_query(const char *name, uint16_t id, uint16_t qtype, uint8_t *buf, size_t len);

#endif
