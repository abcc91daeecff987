/* `listen` and `allow_clients`: parsing and the client check. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi/netaddr.h"

static void listen_addresses(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char buf[80];

	assert_null(netaddr_parse_listen("127.0.0.1:9000", &ss, &len));
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	netaddr_format((struct sockaddr *)&ss, len, buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:9000");
	assert_null(netaddr_parse_listen("[::1]:65535", &ss, &len));
	assert_int_equal(ss.ss_family, AF_INET6);
	netaddr_format((struct sockaddr *)&ss, len, buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:65535");
	assert_null(netaddr_parse_listen("0.0.0.0:1", &ss, &len));
}

static void bad_listen_addresses(void **state)
{
	static const char *const bad[] = {
		"", "9000", ":9000", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:9x", "localhost:9000", "::1:9000", "[::1]9000", "[::1]:", "[]:80",
		"[127.0.0.1]:80", "1.2.3.4.5:80", "127.0.0.1:+80",
	};
	struct sockaddr_storage ss;
	socklen_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!netaddr_parse_listen(bad[i], &ss, &len))
			fail_msg("accepted '%s'", bad[i]);
}

static struct sockaddr_storage peer(const char *addr)
{
	struct sockaddr_storage ss = { 0 };

	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
	return ss;
}

static bool allowed(const char *list, const char *addr)
{
	struct net_prefix nets[NETADDR_MAX_NETS];
	struct sockaddr_storage ss = peer(addr);
	char msg[128];
	size_t n;

	assert_null(netaddr_parse_nets(list, nets, NETADDR_MAX_NETS, &n, msg, sizeof(msg)));
	return netaddr_allowed((struct sockaddr *)&ss, sizeof(ss), nets, n);
}

static void client_check(void **state)
{
	const char *list = "127.0.0.1, ::1, 10.0.0.0/8,192.168.4.0/22, fd00::/8";

	assert_true(allowed(list, "127.0.0.1"));
	assert_false(allowed(list, "127.0.0.2"));
	assert_true(allowed(list, "::1"));
	assert_true(allowed(list, "10.255.1.2"));
	assert_false(allowed(list, "11.0.0.1"));
	assert_true(allowed(list, "192.168.7.255"));
	assert_false(allowed(list, "192.168.8.0"));
	assert_true(allowed(list, "fd12::1"));
	assert_false(allowed(list, "fe80::1"));
	/* an IPv4 client of a dual-stack socket arrives IPv4-mapped */
	assert_true(allowed(list, "::ffff:10.1.2.3"));
	assert_false(allowed(list, "::ffff:11.1.2.3"));
	/* empty list: nobody; /0 lists: everyone of the family */
	assert_false(allowed("", "127.0.0.1"));
	assert_true(allowed("0.0.0.0/0", "8.8.8.8"));
	assert_false(allowed("0.0.0.0/0", "2001:db8::1"));
	assert_true(allowed("::/0", "2001:db8::1"));
}

static void unix_peers_are_not_in_any_list(void **state)
{
	struct net_prefix nets[1];
	struct sockaddr sa = { .sa_family = AF_UNIX };
	char msg[64];
	size_t n;

	assert_null(netaddr_parse_nets("::/0", nets, 1, &n, msg, sizeof(msg)));
	assert_false(netaddr_allowed(&sa, sizeof(sa), nets, n));
}

static void bad_lists(void **state)
{
	static const struct {
		const char *list, *message;
	} bad[] = {
		{ "127.0.0.1,", "empty entry in the list" },
		{ "127.0.0.1,,::1", "empty entry in the list" },
		{ "localhost", "'localhost': not an IPv4 or IPv6 address" },
		{ "10.0.0.0/33", "'10.0.0.0': IPv4 prefix length above 32" },
		{ "10.0.0.1/8", "'10.0.0.1': address has bits set beyond the prefix length" },
		{ "::1/129", "'::1': bad prefix length" },
		{ "10.0.0.0/", "'10.0.0.0': bad prefix length" },
		{ "10.0.0.0/x", "'10.0.0.0': bad prefix length" },
	};
	struct net_prefix nets[4];
	char msg[128];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got = netaddr_parse_nets(bad[i].list, nets, 4, &n, msg, sizeof(msg));

		if (!got || strcmp(got, bad[i].message))
			fail_msg("'%s': got '%s', want '%s'", bad[i].list, got ? got : "(ok)",
				 bad[i].message);
	}
	assert_string_equal(netaddr_parse_nets("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5", nets, 4,
					       &n, msg, sizeof(msg)), "too many entries");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listen_addresses),
		cmocka_unit_test(bad_listen_addresses),
		cmocka_unit_test(client_check),
		cmocka_unit_test(unix_peers_are_not_in_any_list),
		cmocka_unit_test(bad_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
