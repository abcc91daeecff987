/* The capabilities sandcelld needs to build jails; see capabilities.h.
 *
 * One table for the three places that need it: executor_init refuses to
 * start without a required one (fail closed, with a reason, instead of
 * failing every run), and `sandcell check` / `sandcelld --check` report
 * them. The unit's bounding set (debian/sandcell.service) is this table.
 */
#include <linux/capability.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/capabilities.h"

static const struct jail_capability caps[] = {
	{ CAP_SYS_ADMIN, "cap_sys_admin", "namespaces, mounts, pivot_root, bpf()", true },
	{ CAP_SETUID, "cap_setuid", "the sandbox's uid", true },
	{ CAP_SETGID, "cap_setgid", "the sandbox's gid and groups", true },
	{ CAP_SETPCAP, "cap_setpcap", "emptying the sandbox's bounding set", true },
	{ CAP_KILL, "cap_kill", "signalling sandbox processes (other uids)", true },
	{ CAP_NET_ADMIN, "cap_net_admin",
	  "network runs: attaching the cgroup_skb egress programs (Linux 6.1 asks for it)", false },
	{ CAP_CHOWN, "cap_chown", "giving the socket to socket_group", false },
};

const struct jail_capability *jail_capabilities(size_t *n)
{
	*n = sizeof(caps) / sizeof(caps[0]);
	return caps;
}

bool jail_has_capability(int bit)
{
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };

	if (syscall(SYS_capget, &head, data) != 0)
		return false;
	return data[bit / 32].effective >> (bit % 32) & 1;
}

int jail_check_capabilities(char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (!caps[i].required || jail_has_capability(caps[i].bit))
			continue;
		snprintf(err, errlen, "missing capability %s (%s): keep it in the unit's "
			 "CapabilityBoundingSet", caps[i].name, caps[i].use);
		return -1;
	}
	return 0;
}
