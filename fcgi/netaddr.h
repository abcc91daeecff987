/* TCP addresses for scale-out: the `listen` address (host:port) and the
 * `allow_clients` list (addresses and CIDR networks) of sandcelld's
 * configuration. Pure parsing and matching, no sockets opened here. */
#ifndef SANDCELL_FCGI_NETADDR_H
#define SANDCELL_FCGI_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* At most this many entries in allow_clients. */
#define NETADDR_MAX_NETS 64

/* One allowed network; IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d,
 * prefix 96 + n), so one comparison covers both families and IPv4 clients
 * of a dual-stack socket. */
struct net_prefix {
	uint8_t addr[16];
	uint8_t prefixlen; /* 0..128 */
};

/* "127.0.0.1:9000", "[::1]:9000". The host must be a literal address (no
 * names, no wildcard-by-omission); port 1..65535. Fills sa/len; returns
 * NULL or what is wrong. */
const char *netaddr_parse_listen(const char *text, struct sockaddr_storage *sa,
				 socklen_t *len);

/* "127.0.0.1, ::1, 10.0.0.0/8": a comma list of addresses and networks.
 * Host bits beyond the prefix must be zero. Writes up to max entries;
 * *n is the count. Returns NULL or what is wrong (msg may be used). */
const char *netaddr_parse_nets(const char *text, struct net_prefix *out, size_t max,
			       size_t *n, char *msg, size_t msglen);

/* True if the peer address sa is inside one of the networks. Unix-domain
 * peers are never "inside" (the allowlist is for TCP only). */
bool netaddr_allowed(const struct sockaddr *sa, socklen_t len,
		     const struct net_prefix *nets, size_t n);

/* "127.0.0.1:9000" / "[::1]:9000" of a socket address, for logs. */
void netaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen);

#endif
