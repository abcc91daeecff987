/* The host's own addresses; see host_addrs.h.
 *
 * A network sandbox must not reach what the host itself serves on its own
 * addresses (on an all-in-one Dify host: Dify's web and API behind its
 * nginx, and sandcell's site if it listens beyond loopback). These are the
 * addresses of every interface of the network namespaces a sandbox's traffic
 * can reach: sandcelld's own and, when `netns` is set, that one (where the
 * network sandboxes live). One rtnetlink socket per namespace, subscribed to
 * IPv4 and IPv6 address changes: a dump (RTM_GETADDR) reads the set, and a
 * change notification is the signal to read it again. The socket of `netns`
 * is made by a short-lived thread that enters it: a socket stays in the
 * namespace it was created in.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fcgi/host_addrs.h"

#define N_NAMESPACES 2

static int socks[N_NAMESPACES] = { -1, -1 };
static unsigned seq;

static int open_socket(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct in_netns {
	const char *path;
	int fd, error;
};

static void *open_in_netns(void *arg)
{
	struct in_netns *a = arg;
	int ns = open(a->path, O_RDONLY | O_CLOEXEC);

	a->fd = -1;
	if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) /* this thread only, and it ends here */
		a->error = errno;
	else if ((a->fd = open_socket()) < 0)
		a->error = errno;
	if (ns >= 0)
		close(ns);
	return NULL;
}

int host_addrs_open(const char *netns_path, char *err, size_t errlen)
{
	struct in_netns a = { .path = netns_path, .fd = -1 };
	pthread_t t;

	host_addrs_close();
	socks[0] = open_socket();
	if (socks[0] < 0) {
		snprintf(err, errlen, "rtnetlink socket: %s", strerror(errno));
		return -1;
	}
	if (!netns_path)
		return 0;
	if (pthread_create(&t, NULL, open_in_netns, &a) != 0 || pthread_join(t, NULL) != 0 ||
	    a.fd < 0) {
		snprintf(err, errlen, "rtnetlink socket in %s: %s", netns_path,
			 strerror(a.error ? a.error : EAGAIN));
		host_addrs_close();
		return -1;
	}
	socks[1] = a.fd;
	return 0;
}

void host_addrs_close(void)
{
	for (int i = 0; i < N_NAMESPACES; i++) {
		if (socks[i] >= 0)
			close(socks[i]);
		socks[i] = -1;
	}
}

static int compare_text(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* An address that does not fit marks the set too big: a partial list would
 * leave the rest of the host's addresses open (host_addrs_read fails). */
static void add(struct host_addrs *out, int family, const void *addr)
{
	char text[INET6_ADDRSTRLEN];

	if (!inet_ntop(family, addr, text, sizeof(text)))
		return;
	for (size_t i = 0; i < out->n; i++)
		if (!strcmp(out->text[i], text))
			return;
	if (out->n >= HOST_ADDRS_MAX) {
		out->too_many = true;
		return;
	}
	memcpy(out->text[out->n++], text, sizeof(text));
}

/* IFA_LOCAL is the address itself (IFA_ADDRESS is the peer's on a
 * point-to-point link); IPv6 has only IFA_ADDRESS. */
static void add_message(struct host_addrs *out, struct nlmsghdr *nh)
{
	struct ifaddrmsg *ifa = NLMSG_DATA(nh);
	int len = (int)IFA_PAYLOAD(nh);
	const void *local = NULL, *address = NULL;

	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return;
	for (struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type == IFA_LOCAL)
			local = RTA_DATA(rta);
		else if (rta->rta_type == IFA_ADDRESS)
			address = RTA_DATA(rta);
	}
	if (local || address)
		add(out, ifa->ifa_family, local ? local : address);
}

static int dump(int fd, struct host_addrs *out)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETADDR,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = ++seq },
		.ifa = { .ifa_family = AF_UNSPEC },
	};
	static char buf[32768];

	if (send(fd, &req, sizeof(req), 0) < 0)
		return -1;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == ENOBUFS))
			continue; /* ENOBUFS: notifications were lost; the dump goes on */
		if (n <= 0)
			return -1;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n);
		     nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_seq != req.nh.nlmsg_seq)
				continue; /* a change notification: this dump sees it anyway */
			if (nh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nh->nlmsg_type == NLMSG_ERROR)
				return -1;
			if (nh->nlmsg_type == RTM_NEWADDR)
				add_message(out, nh);
		}
	}
}

int host_addrs_read(struct host_addrs *out)
{
	out->n = 0;
	out->too_many = false;
	for (int i = 0; i < N_NAMESPACES; i++)
		if (socks[i] >= 0 && dump(socks[i], out) < 0)
			return -1;
	if (out->too_many) {
		errno = E2BIG;
		return -1;
	}
	qsort(out->text, out->n, sizeof(out->text[0]), compare_text);
	return 0;
}

const char *host_addrs_error(int error)
{
	if (error == E2BIG)
		return "the host has more than " HOST_ADDRS_TEXT(HOST_ADDRS_MAX) " addresses: its own-address "
		       "deny list cannot hold them all";
	return strerror(error);
}

/* Reads what is pending on fd without waiting. */
static void drain(int fd)
{
	char buf[8192];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 || errno == ENOBUFS)
		;
}

int host_addrs_wait(int stop_fd, int timeout_ms)
{
	struct pollfd p[N_NAMESPACES + 1] = { { .fd = stop_fd, .events = POLLIN } };
	int n = 1, rc;

	for (int i = 0; i < N_NAMESPACES; i++)
		if (socks[i] >= 0)
			p[n++] = (struct pollfd){ .fd = socks[i], .events = POLLIN };
	rc = poll(p, (nfds_t)n, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -1;
	if (rc == 0 || p[0].revents)
		return 0;
	for (int i = 1; i < n; i++)
		if (p[i].revents)
			drain(p[i].fd);
	return 1;
}
