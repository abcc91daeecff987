/* The layout of the egress maps and ring-buffer records, shared by the kernel
 * programs (egress.bpf.c) and the loader (egress.c). Only <linux/types.h>
 * types here: this header is compiled both by clang -target bpf and by the
 * host compiler. Changing a layout changes the pinned maps' key or value
 * size, and egress_open() then refuses the old pins (see egress.h). */
#ifndef SANDCELL_EGRESS_MAPS_H
#define SANDCELL_EGRESS_MAPS_H

#include <linux/types.h>

#define EGRESS_MAX_SANDBOXES 16384  /* cgroups with a policy at once */
#define EGRESS_MAX_PREFIXES 65536   /* LPM entries over all policies */
#define EGRESS_MAX_ENTRIES 32       /* entries per prefix, after flattening */
#define EGRESS_MAX_COUNTERS 16384   /* distinct blocked destinations remembered (LRU) */
#define EGRESS_RINGBUF_BYTES (256 * 1024)

#define EGRESS_PROTO_TCP 0x1
#define EGRESS_PROTO_UDP 0x2

/* Where an attempt was blocked (egress_block_key.hook). */
enum egress_hook {
	EGRESS_HOOK_CONNECT4 = 1,
	EGRESS_HOOK_CONNECT6,
	EGRESS_HOOK_SENDMSG4,
	EGRESS_HOOK_SENDMSG6,
	EGRESS_HOOK_BIND4,
	EGRESS_HOOK_BIND6,
	EGRESS_HOOK_SOCK_CREATE,
	EGRESS_HOOK_SKB_EGRESS,   /* backstop: a packet to a denied destination */
	EGRESS_HOOK_SKB_INGRESS,  /* a packet for a sandbox's listening socket */
};

#define EGRESS_ACTION_DENY 0
#define EGRESS_ACTION_ALLOW 1

/* rules: an LPM trie. The first 32 bits of the matched data are the policy
 * id, always matched whole, then the address in IPv6 space (IPv4 as
 * ::ffff:a.b.c.d), so prefixlen = 32 + the address prefix length. */
struct egress_rule_key {
	__u32 prefixlen;
	__u32 policy_id;
	__u8 addr[16];
};

struct egress_rule_entry {
	__u8 protocols;  /* EGRESS_PROTO_* bits */
	__u8 action;     /* EGRESS_ACTION_* */
	__u16 port_lo;   /* host order, inclusive */
	__u16 port_hi;
	__u16 pad;
};

/* The entries of one prefix followed by those of the prefixes enclosing it
 * (user space flattens), checked in order: the first match decides. */
struct egress_rule_value {
	__u32 n;
	__u32 pad;
	struct egress_rule_entry e[EGRESS_MAX_ENTRIES];
};

/* counters: key of one blocked destination (or socket kind) per cgroup. */
struct egress_block_key {
	__u64 cgroup_id;
	__u8 addr[16];
	__u16 port;     /* host order */
	__u8 protocol;  /* IPPROTO_* */
	__u8 hook;      /* enum egress_hook in egress.h */
	__u16 family;   /* sock_create: the socket asked for */
	__u16 type;
};

/* One ring-buffer record: the key and the count it reached. */
struct egress_block_record {
	struct egress_block_key key;
	__u64 count;
};

#endif
