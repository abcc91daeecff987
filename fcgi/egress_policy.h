/* The egress policy of network sandboxes, built from the configuration:
 * the operator's egress_rule lines (host names resolved by sandcelld and
 * kept current with their records' TTL), DNS to the resolvers sandboxes may
 * use, then the SSRF-safe defaults of bpf/; or, with egress_proxy_only, the
 * proxies alone. Installed with executor_set_egress_policy().
 *
 *   egress_policy_prepare()   before executor_init(): resolvers, the
 *                             run_dir/resolv.conf and run_dir/hosts files
 *                             network sandboxes see
 *   egress_policy_start()     after executor_init(): resolve, install, and
 *                             (with host names) a thread that re-resolves
 *   egress_policy_stop()      at exit, with no sandbox left: stops the
 *                             thread, removes the two files
 */
#ifndef SANDCELL_FCGI_EGRESS_POLICY_H
#define SANDCELL_FCGI_EGRESS_POLICY_H

#include <stddef.h>
#include <stdio.h>

struct sandcell_config;

#define EGRESS_POLICY_MAX_DNS 8       /* dns_servers entries */
#define EGRESS_POLICY_MIN_TTL 5       /* seconds: re-resolve no more often than this */
#define EGRESS_POLICY_MAX_TTL 3600    /* ... and at least this often */

/* Checks one egress_rule value:
 *   allow|deny ADDRESS[/LEN]|HOSTNAME [tcp|udp|tcp+udp|any [PORTS]]
 * Returns NULL, or what is wrong (in msg or a constant). */
const char *egress_policy_check_line(const char *text, char *msg, size_t msglen);

/* Reads the resolvers (dns_servers, or the host's /etc/resolv.conf), writes
 * run_dir/resolv.conf and run_dir/hosts and points cfg->jail at them. Does
 * nothing when network is disabled. Returns 0, or -1 with err. */
int egress_policy_prepare(struct sandcell_config *cfg, char *err, size_t errlen);

/* Resolves the host names, installs the policy, and keeps it current while
 * host names are used. Logs what it does. Returns 0, or -1 if no policy
 * could be installed (network runs are then refused). */
int egress_policy_start(const struct sandcell_config *cfg);

void egress_policy_stop(void);

/* For --check: NULL if pin_dir can hold the programs' pins, else why not. */
const char *egress_policy_pin_dir_problem(const char *pin_dir);

/* For --check: the resolvers and the policy as it would be installed now
 * (host names resolved), one rule per line, each line starting with indent. */
void egress_policy_describe(const struct sandcell_config *cfg, FILE *out, const char *indent);

#endif
