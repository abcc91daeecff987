/* The egress configuration keys, the egress_rule syntax with host names,
 * and the DNS client's message building and parsing (no network used). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include "fcgi/config.h"
#include "fcgi/dns_client.h"
#include "fcgi/egress_policy.h"
#include "fcgi/host_addrs.h"

static const char *no_env(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return NULL;
}

static int load(struct sandcell_config *cfg, const char *text, char *err, size_t errlen)
{
	return config_from_text(cfg, text, strlen(text), "t.conf", no_env, NULL, err, errlen);
}

static void rule_lines_keep_their_order(void **state)
{
	struct sandcell_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(load(&cfg, "api_key = k\n"
			      "egress_rule = allow 10.1.2.3 tcp 5432\n"
			      "egress_rule = allow api.example.com tcp 443\n"
			      "egress_rule = deny ::/0 udp\n"
			      "dns_servers = 1.1.1.1, 2606:4700::1111\n"
			      "netns = /run/netns/x\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_egress_rules, 3);
	assert_string_equal(cfg.egress_rules[1], "allow api.example.com tcp 443");
	assert_string_equal(cfg.jail.netns_path, "/run/netns/x");
	assert_string_equal(cfg.jail.egress_pin_dir, "/sys/fs/bpf/sandcell");
	config_free(&cfg);
}

static void bad_egress_values_are_refused(void **state)
{
	static const char *const bad[] = {
		"egress_rule = allow\n",
		"egress_rule = permit 10.0.0.1\n",
		"egress_rule = allow 10.0.0.1/8\n",            /* host bits beyond the prefix */
		"egress_rule = allow api.example.com sctp 1\n",
		"egress_rule = allow api.example.com tcp 99999\n",
		"egress_rule = allow api/example tcp 443\n",
		"dns_servers = resolver.example\n",
		"egress_proxy_only = true\n",                  /* without a proxy */
		"http_proxy = http://p:3128\negress_proxy_only = true\negress_rule = allow 10.0.0.1\n",
		"netns = relative/path\n",
	};
	char text[512], err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sandcell_config cfg;

		snprintf(text, sizeof(text), "api_key = k\n%s", bad[i]);
		err[0] = '\0';
		assert_int_equal(load(&cfg, text, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
}

static void proxy_only_with_a_proxy_loads(void **state)
{
	struct sandcell_config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(load(&cfg, "api_key = k\nhttps_proxy = http://ssrf_proxy:3128\n"
			      "egress_proxy_only = yes\negress_pin_dir = /sys/fs/bpf/other\n",
			      err, sizeof(err)), 0);
	assert_true(cfg.egress_proxy_only);
	assert_string_equal(cfg.jail.egress_pin_dir, "/sys/fs/bpf/other");
	config_free(&cfg);
}

static void host_names_and_addresses(void **state)
{
	char msg[256];

	(void)state;
	assert_null(egress_policy_check_line("allow api.example.com", msg, sizeof(msg)));
	assert_null(egress_policy_check_line("deny metadata.internal any", msg, sizeof(msg)));
	assert_null(egress_policy_check_line("allow 2001:db8::/32 tcp 80,443", msg, sizeof(msg)));
	assert_null(egress_policy_check_line("allow ssrf_proxy tcp 3128", msg, sizeof(msg)));
	assert_non_null(egress_policy_check_line("allow 1.2.3 tcp", msg, sizeof(msg)));
	assert_non_null(egress_policy_check_line("allow a.example tcp 80 extra", msg, sizeof(msg)));
}

/* Found by tests/fuzz (corpus/egress_rule/crash-2f8b4db2...): the check split a rule's
 * words at blanks and tabs only, the rule parser at '\r' too, so "\r\tdeny ::5" took "deny"
 * for a host name and was refused while "deny\r::5" was accepted. */
static void rule_words_split_as_the_parser_splits(void **state)
{
	char msg[256];

	(void)state;
	assert_null(egress_policy_check_line("\r\tdeny ::5", msg, sizeof(msg)));
	assert_null(egress_policy_check_line("deny\r::5", msg, sizeof(msg)));
	assert_null(egress_policy_check_line("allow\rapi.example.com\rtcp 443", msg, sizeof(msg)));
	assert_non_null(egress_policy_check_line("allow\rapi.example.com\rtcp 443\rx", msg,
						 sizeof(msg)));
}

/* ---- DNS messages ------------------------------------------------------------ */

static size_t put_answer(uint8_t *m, size_t pos, uint16_t type, uint32_t ttl, const void *rd,
			 uint16_t rdlen)
{
	m[pos++] = 0xc0; /* pointer to the question's name */
	m[pos++] = 12;
	m[pos++] = (uint8_t)(type >> 8);
	m[pos++] = (uint8_t)type;
	m[pos++] = 0;
	m[pos++] = 1;
	m[pos++] = (uint8_t)(ttl >> 24);
	m[pos++] = (uint8_t)(ttl >> 16);
	m[pos++] = (uint8_t)(ttl >> 8);
	m[pos++] = (uint8_t)ttl;
	m[pos++] = (uint8_t)(rdlen >> 8);
	m[pos++] = (uint8_t)rdlen;
	memcpy(m + pos, rd, rdlen);
	return pos + rdlen;
}

/* A response to query (len qlen) with a CNAME and two A records. */
static size_t response(uint8_t *m, const uint8_t *query, int qlen, unsigned an)
{
	static const uint8_t cname[] = { 3, 'w', 'w', 'w', 0xc0, 12 };
	uint8_t a1[4] = { 198, 51, 100, 7 }, a2[4] = { 198, 51, 100, 8 };
	size_t pos = (size_t)qlen;

	memcpy(m, query, (size_t)qlen);
	m[2] |= 0x80;
	m[7] = (uint8_t)an;
	pos = put_answer(m, pos, 5, 30, cname, sizeof(cname));
	pos = put_answer(m, pos, 1, 300, a2, 4);
	pos = put_answer(m, pos, 1, 60, a1, 4);
	return pos;
}

static void dns_answer_parsed(void **state)
{
	uint8_t q[300], m[600];
	struct dns_result r = { 0 };
	int qlen = dns_build_query("svc.example.", 0x1234, 1, q, sizeof(q));

	(void)state;
	assert_int_equal(qlen, 12 + 13 + 4);
	size_t len = response(m, q, qlen, 3);
	assert_int_equal(dns_parse_response(m, len, 0x1234, 1, &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.ttl, 60);
	/* sorted, IPv4 as ::ffff:a.b.c.d */
	assert_int_equal(r.addrs[0][10], 0xff);
	assert_int_equal(r.addrs[0][15], 7);
	assert_int_equal(r.addrs[1][15], 8);
	/* another id, another type: not ours */
	assert_int_equal(dns_parse_response(m, len, 0x1235, 1, &r), -1);
	assert_int_equal(dns_parse_response(m, len, 0x1234, 28, &r), -1);
}

static void dns_malformed_refused(void **state)
{
	uint8_t q[300], m[600];
	struct dns_result r = { 0 };
	int qlen = dns_build_query("svc.example", 7, 1, q, sizeof(q));
	size_t len = response(m, q, qlen, 3);

	(void)state;
	/* every truncation is malformed or short, never read beyond len */
	for (size_t cut = 0; cut < len; cut++) {
		memset(&r, 0, sizeof(r));
		int rc = dns_parse_response(m, cut, 7, 1, &r);
		assert_true(rc == -1 || r.n <= 2);
	}
	/* claims more answers than there are */
	m[7] = 9;
	assert_int_equal(dns_parse_response(m, len, 7, 1, &r), -1);
	/* bad names are not queried */
	assert_int_equal(dns_build_query("", 1, 1, q, sizeof(q)), -1);
	assert_int_equal(dns_build_query("a..b", 1, 1, q, sizeof(q)), -1);
	char long_label[80];
	memset(long_label, 'a', 70);
	long_label[70] = '\0';
	assert_int_equal(dns_build_query(long_label, 1, 1, q, sizeof(q)), -1);
}

static void nxdomain_is_an_answer(void **state)
{
	uint8_t q[300];
	struct dns_result r = { 0 };
	int qlen = dns_build_query("nowhere.example", 9, 28, q, sizeof(q));

	(void)state;
	q[2] |= 0x80;
	q[3] = 3; /* NXDOMAIN */
	assert_int_equal(dns_parse_response(q, (size_t)qlen, 9, 28, &r), 3);
	assert_int_equal(r.n, 0);
}

static bool has_addr(const struct host_addrs *a, const char *text)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->text[i], text))
			return true;
	return false;
}

/* Every address of this namespace's interfaces, sorted; a bad netns path is an error. */
static void host_addresses_read(void **state)
{
	static struct host_addrs a;
	char err[256];

	(void)state;
	assert_int_equal(host_addrs_open(NULL, err, sizeof(err)), 0);
	assert_int_equal(host_addrs_read(&a), 0);
	assert_true(has_addr(&a, "127.0.0.1"));
	for (size_t i = 1; i < a.n; i++)
		assert_true(strcmp(a.text[i - 1], a.text[i]) < 0);
	/* nothing changed: no notification within 50 ms */
	assert_int_equal(host_addrs_wait(-1, 50), 0);
	host_addrs_close();
	assert_int_equal(host_addrs_open("/nonexistent/netns", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/netns"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rule_lines_keep_their_order),
		cmocka_unit_test(bad_egress_values_are_refused),
		cmocka_unit_test(proxy_only_with_a_proxy_loads),
		cmocka_unit_test(host_names_and_addresses),
		cmocka_unit_test(rule_words_split_as_the_parser_splits),
		cmocka_unit_test(dns_answer_parsed),
		cmocka_unit_test(dns_malformed_refused),
		cmocka_unit_test(nxdomain_is_an_answer),
		cmocka_unit_test(host_addresses_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
