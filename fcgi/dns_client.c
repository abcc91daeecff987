/* A minimal stub resolver; see dns_client.h.
 *
 * Both queries (A and AAAA) go out at once on one connected UDP socket per
 * server, with random ids; answers are matched by id and question type and
 * parsed with explicit bounds (RFC 1035 section 4). Names in the answer are
 * skipped, never followed: a recursive resolver puts the CNAME chain and the
 * final address records in the answer section, and every A/AAAA record
 * there is taken (its owner is the name or an alias of it).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "fcgi/dns_client.h"

#define DNS_PORT 53
#define QTYPE_A 1
#define QTYPE_AAAA 28
#define QCLASS_IN 1
#define HEADER_LEN 12
#define MAX_MESSAGE 1232 /* what we ask for and read (no EDNS: 512 is what comes) */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int dns_build_query(const char *name, uint16_t id, uint16_t qtype, uint8_t *buf, size_t len)
{
	size_t pos = HEADER_LEN, namelen = strlen(name);

	if (namelen && name[namelen - 1] == '.')
		namelen--;
	if (namelen == 0 || namelen > 253 || len < HEADER_LEN + namelen + 2 + 4)
		return -1;
	memset(buf, 0, HEADER_LEN);
	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	buf[2] = 0x01; /* RD: recursion desired */
	buf[5] = 1;    /* one question */
	for (size_t start = 0; start < namelen;) {
		const char *dot = memchr(name + start, '.', namelen - start);
		size_t label = (dot ? (size_t)(dot - name) : namelen) - start;

		if (label == 0 || label > 63)
			return -1;
		buf[pos++] = (uint8_t)label;
		memcpy(buf + pos, name + start, label);
		pos += label;
		start += label + 1;
	}
	buf[pos++] = 0;
	buf[pos++] = (uint8_t)(qtype >> 8);
	buf[pos++] = (uint8_t)qtype;
	buf[pos++] = 0;
	buf[pos++] = QCLASS_IN;
	return (int)pos;
}

/* Skips a (possibly compressed) name at *pos. -1 if it runs off the end. */
static int skip_name(const uint8_t *msg, size_t len, size_t *pos)
{
	for (unsigned labels = 0; labels < 128; labels++) {
		if (*pos >= len)
			return -1;
		uint8_t c = msg[*pos];
		if (c == 0) {
			(*pos)++;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) { /* a pointer ends the name here */
			if (*pos + 2 > len)
				return -1;
			*pos += 2;
			return 0;
		}
		if (c & 0xc0)
			return -1; /* reserved label types */
		*pos += 1 + c;
	}
	return -1;
}

static void add_address(struct dns_result *res, const uint8_t addr[16], uint32_t ttl)
{
	for (size_t i = 0; i < res->n; i++)
		if (!memcmp(res->addrs[i], addr, 16))
			goto ttl;
	if (res->n == DNS_MAX_ADDRS)
		return;
	/* sorted, so that two answers with the same set compare equal */
	size_t at = 0;
	while (at < res->n && memcmp(res->addrs[at], addr, 16) < 0)
		at++;
	memmove(res->addrs[at + 1], res->addrs[at], (res->n - at) * 16);
	memcpy(res->addrs[at], addr, 16);
	res->n++;
ttl:
	if (res->ttl == 0 || ttl < res->ttl)
		res->ttl = ttl;
}

int dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, uint16_t qtype,
		       struct dns_result *res)
{
	size_t pos = HEADER_LEN;

	if (len < HEADER_LEN || get16(msg) != id || !(msg[2] & 0x80))
		return -1; /* not a response to our query */
	unsigned rcode = msg[3] & 0x0f, qd = get16(msg + 4), an = get16(msg + 6);
	if (qd != 1)
		return -1;
	if (skip_name(msg, len, &pos) < 0 || pos + 4 > len || get16(msg + pos) != qtype)
		return -1;
	pos += 4;
	for (unsigned i = 0; i < an && rcode == 0; i++) {
		if (skip_name(msg, len, &pos) < 0 || pos + 10 > len)
			return -1;
		uint16_t type = get16(msg + pos), class = get16(msg + pos + 2);
		uint32_t ttl = get32(msg + pos + 4);
		uint16_t rdlen = get16(msg + pos + 8);
		pos += 10;
		if (pos + rdlen > len)
			return -1;
		uint8_t addr[16] = { [10] = 0xff, [11] = 0xff };
		if (class == QCLASS_IN && type == QTYPE_A && qtype == QTYPE_A && rdlen == 4) {
			memcpy(addr + 12, msg + pos, 4);
			add_address(res, addr, ttl);
		} else if (class == QCLASS_IN && type == QTYPE_AAAA && qtype == QTYPE_AAAA &&
			   rdlen == 16) {
			add_address(res, msg + pos, ttl);
		}
		pos += rdlen;
	}
	return (int)rcode;
}

static int connect_udp(const struct sockaddr_storage *server)
{
	struct sockaddr_storage ss = *server;
	socklen_t sl;

	if (ss.ss_family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons(DNS_PORT);
		sl = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(DNS_PORT);
		sl = sizeof(struct sockaddr_in6);
	}
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Both queries to one server. 0: answered (res filled); -1: no usable answer. */
static int ask_server(const struct sockaddr_storage *server, const char *name,
		      struct dns_result *res, char *err, size_t errlen)
{
	static const uint16_t qtypes[2] = { QTYPE_A, QTYPE_AAAA };
	uint8_t query[300], answer[MAX_MESSAGE];
	uint16_t ids[2];
	bool done[2] = { false, false };
	int rcodes[2] = { 0, 0 };
	int fd = connect_udp(server);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (getrandom(ids, sizeof(ids), 0) != sizeof(ids))
		ids[0] = (uint16_t)now_ms(), ids[1] = ids[0] ^ 0x5a5a;
	for (int q = 0; q < 2; q++) {
		int n = dns_build_query(name, ids[q], qtypes[q], query, sizeof(query));
		if (n < 0 || send(fd, query, (size_t)n, 0) != n) {
			snprintf(err, errlen, "send: %s", n < 0 ? "bad name" : strerror(errno));
			close(fd);
			return -1;
		}
	}
	long long deadline = now_ms() + DNS_TIMEOUT_MS;
	while (!(done[0] && done[1])) {
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t got = recv(fd, answer, sizeof(answer), 0);
		if (got < 0)
			continue; /* e.g. ECONNREFUSED from an ICMP error: wait for the deadline */
		for (int q = 0; q < 2; q++) {
			if (done[q])
				continue;
			int rc = dns_parse_response(answer, (size_t)got, ids[q], qtypes[q], res);
			if (rc >= 0) {
				done[q] = true;
				rcodes[q] = rc;
			}
		}
	}
	close(fd);
	if (!(done[0] && done[1])) {
		snprintf(err, errlen, "no answer within %d ms", DNS_TIMEOUT_MS);
		return -1;
	}
	/* NOERROR and NXDOMAIN are answers; SERVFAIL, REFUSED, ... are not */
	for (int q = 0; q < 2; q++) {
		if (rcodes[q] != 0 && rcodes[q] != 3) {
			snprintf(err, errlen, "server answered rcode %d", rcodes[q]);
			return -1;
		}
	}
	return 0;
}

int dns_resolve(const struct sockaddr_storage *servers, size_t n_servers, const char *name,
		struct dns_result *res, char *err, size_t errlen)
{
	uint8_t probe[300];

	memset(res, 0, sizeof(*res));
	if (dns_build_query(name, 0, QTYPE_A, probe, sizeof(probe)) < 0) {
		snprintf(err, errlen, "not a valid host name");
		return -1;
	}
	if (n_servers == 0) {
		snprintf(err, errlen, "no DNS server configured");
		return -1;
	}
	for (size_t i = 0; i < n_servers; i++) {
		memset(res, 0, sizeof(*res));
		if (ask_server(&servers[i], name, res, err, errlen) == 0)
			return 0;
	}
	memset(res, 0, sizeof(*res));
	return -1;
}
