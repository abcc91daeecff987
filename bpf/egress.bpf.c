/* Network egress policy for sandboxes, enforced in the kernel.
 *
 * Theory of operation. These programs are attached once to the parent v2
 * cgroup of all sandboxes and so run for every socket created below it. Each
 * decides by the cgroup id of the sandbox that is calling:
 *
 *   sandboxes   cgroup id -> policy id. No entry: everything is denied.
 *   rules       LPM trie (policy id, address) -> ordered entries
 *               {protocols, port range, allow/deny}; the first entry that
 *               matches decides, no match denies. User space flattens, so the
 *               entries of the longest matching prefix are followed by those
 *               of every prefix enclosing it.
 *
 * Addresses live in one IPv6 space: IPv4 as ::ffff:a.b.c.d, so an
 * IPv4-mapped IPv6 destination given to connect6/sendmsg6 is judged exactly
 * as the IPv4 address it carries. NAT64 addresses of the well-known prefix
 * 64:ff9b::/96 are judged as the IPv4 address they embed too (a NAT64 gateway
 * would deliver them there).
 *
 *   sock_create       only TCP stream and UDP datagram sockets of AF_INET/6
 *   connect4/6        TCP connect (also TCP fast open) and UDP connect
 *   sendmsg4/6        UDP sendto/sendmsg/sendmmsg with a destination
 *   bind4/6           port 0 only: a sandbox may not take a port
 *   cgroup_skb/egress backstop: drops packets of sandbox sockets whose
 *                     destination the policy denies now (paths that bypass
 *                     the hooks above, policies changed under a connection)
 *   cgroup_skb/ingress drops packets for a sandbox's listening socket:
 *                     listen() on an unbound socket takes an ephemeral port
 *                     without any bind hook, so bind4/6 alone cannot stop a
 *                     sandbox from serving (seccomp also refuses listen()).
 *
 * A sock_addr or sock program returning 0 makes the system call fail with
 * EPERM at once; a cgroup_skb program returning 0 drops the packet.
 *
 * Every refusal is counted per {cgroup, destination, port, protocol, hook}
 * in an LRU hash, and announced on a ring buffer when its count reaches a
 * power of two (1, 2, 4, ...): a program hammering one address cannot flood
 * the ring, the counters stay exact.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "egress_maps.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPV6_FRAGMENT_HDR 44

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EGRESS_MAX_SANDBOXES);
	__type(key, __u64);
	__type(value, __u32);
} sandboxes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESS_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egress_rule_key);
	__type(value, struct egress_rule_value);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EGRESS_MAX_COUNTERS);
	__type(key, struct egress_block_key);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EGRESS_RINGBUF_BYTES);
} events SEC(".maps");

/* ---- judging ------------------------------------------------------------ */

static __always_inline __u8 protocol_bit(__u8 protocol)
{
	if (protocol == IPPROTO_TCP)
		return EGRESS_PROTO_TCP;
	if (protocol == IPPROTO_UDP)
		return EGRESS_PROTO_UDP;
	return 0; /* matches no entry: other protocols are denied */
}

static __always_inline void set_mapped_v4(__u8 addr[16], __u32 ip4_be)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(addr + 12, &ip4_be, 4);
}

static __always_inline int is_nat64_wkp(const __u8 a[16])
{
	return a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b &&
	       !(a[4] | a[5] | a[6] | a[7] | a[8] | a[9] | a[10] | a[11]);
}

static __always_inline __u32 *policy_of(__u64 cgroup_id)
{
	return bpf_map_lookup_elem(&sandboxes, &cgroup_id);
}

/* port_known is false for IP fragments after the first: they are judged
 * by address and protocol alone (their datagram's first fragment carried the
 * port and was judged with it). */
static __always_inline int policy_allows(__u32 policy_id, const __u8 addr[16], __u8 protocol,
					 __u16 port, int port_known)
{
	struct egress_rule_key key = { .prefixlen = 32 + 128, .policy_id = policy_id };
	struct egress_rule_value *v;
	__u8 bit = protocol_bit(protocol);

	__builtin_memcpy(key.addr, addr, 16);
	if (is_nat64_wkp(key.addr)) {
		__u32 ip4;

		__builtin_memcpy(&ip4, key.addr + 12, 4);
		set_mapped_v4(key.addr, ip4);
	}
	v = bpf_map_lookup_elem(&rules, &key);
	if (!v)
		return 0;
	for (__u32 i = 0; i < EGRESS_MAX_ENTRIES; i++) {
		const struct egress_rule_entry *e;

		if (i >= v->n)
			break;
		e = &v->e[i];
		if (!(e->protocols & bit))
			continue;
		if (port_known && (port < e->port_lo || port > e->port_hi))
			continue;
		return e->action == EGRESS_ACTION_ALLOW;
	}
	return 0;
}

/* ---- visibility --------------------------------------------------------- */

static __always_inline void record_block(struct egress_block_key *k)
{
	__u64 one = 1, n = 1, *count;
	struct egress_block_record *r;

	count = bpf_map_lookup_elem(&counters, k);
	if (count)
		n = __sync_fetch_and_add(count, 1) + 1;
	else
		bpf_map_update_elem(&counters, k, &one, BPF_NOEXIST);
	if (n & (n - 1))
		return;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return; /* ring full: the counter still has it */
	r->key = *k;
	r->count = n;
	bpf_ringbuf_submit(r, 0);
}

static __always_inline int refuse(__u64 cgroup_id, const __u8 addr[16], __u16 port,
				  __u8 protocol, __u8 hook)
{
	struct egress_block_key k = {
		.cgroup_id = cgroup_id, .port = port, .protocol = protocol, .hook = hook,
	};

	if (addr)
		__builtin_memcpy(k.addr, addr, 16);
	record_block(&k);
	return 0;
}

/* The address of a sock_addr hook in IPv6 space (IPv4 as ::ffff:a.b.c.d). */
static __always_inline void read_address(struct bpf_sock_addr *ctx, int v6, __u8 addr[16])
{
	if (v6) {
		__u32 ip6[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2],
				 ctx->user_ip6[3] };

		__builtin_memcpy(addr, ip6, 16);
	} else {
		set_mapped_v4(addr, ctx->user_ip4);
	}
}

/* ---- connect and sendmsg ------------------------------------------------ */

static __always_inline int judge_sock_addr(struct bpf_sock_addr *ctx, int v6, __u8 hook)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	__u32 *policy = policy_of(cgid);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 protocol = (__u8)ctx->protocol;
	__u8 addr[16];

	read_address(ctx, v6, addr);
	if (policy && policy_allows(*policy, addr, protocol, port, 1))
		return 1;
	return refuse(cgid, addr, port, protocol, hook);
}

SEC("cgroup/connect4")
int egress_connect4(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr(ctx, 0, EGRESS_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int egress_connect6(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr(ctx, 1, EGRESS_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int egress_sendmsg4(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr(ctx, 0, EGRESS_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int egress_sendmsg6(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr(ctx, 1, EGRESS_HOOK_SENDMSG6);
}

/* ---- bind: port 0 only -------------------------------------------------- */

static __always_inline int judge_bind(struct bpf_sock_addr *ctx, int v6, __u8 hook)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];

	/* Port 0 is what a UDP client or an explicit source address needs;
	 * any other port is a service. */
	if (port == 0 && policy_of(cgid))
		return 1;
	read_address(ctx, v6, addr);
	return refuse(cgid, addr, port, (__u8)ctx->protocol, hook);
}

SEC("cgroup/bind4")
int egress_bind4(struct bpf_sock_addr *ctx)
{
	return judge_bind(ctx, 0, EGRESS_HOOK_BIND4);
}

SEC("cgroup/bind6")
int egress_bind6(struct bpf_sock_addr *ctx)
{
	return judge_bind(ctx, 1, EGRESS_HOOK_BIND6);
}

/* ---- socket creation ---------------------------------------------------- */

SEC("cgroup/sock_create")
int egress_sock_create(struct bpf_sock *sk)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	int inet = sk->family == AF_INET || sk->family == AF_INET6;
	int tcp = sk->type == SOCK_STREAM && sk->protocol == IPPROTO_TCP;
	int udp = sk->type == SOCK_DGRAM && sk->protocol == IPPROTO_UDP;
	struct egress_block_key k = {
		.cgroup_id = cgid, .protocol = (__u8)sk->protocol,
		.hook = EGRESS_HOOK_SOCK_CREATE, .family = (__u16)sk->family, .type = (__u16)sk->type,
	};

	if (inet && (tcp || udp) && policy_of(cgid))
		return 1;
	record_block(&k);
	return 0;
}

/* ---- backstop on packets ------------------------------------------------ */

struct l3_info {
	__u8 daddr[16];
	__u8 protocol;
	__u16 dport;
	int port_known;
};

static __always_inline __u16 load_dport(struct __sk_buff *skb, __u32 l4_off, __u8 protocol,
					int *known)
{
	__u16 ports[2]; /* source, destination: the same place in TCP and UDP */

	*known = 0;
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) < 0)
		return 0;
	*known = 1;
	return bpf_ntohs(ports[1]);
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct l3_info *info)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return -1;
	set_mapped_v4(info->daddr, ip.daddr);
	info->protocol = ip.protocol;
	if (bpf_ntohs(ip.frag_off) & 0x1fff)
		return 0; /* a later fragment: no L4 header */
	info->dport = load_dport(skb, ip.ihl * 4, ip.protocol, &info->port_known);
	return 0;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct l3_info *info)
{
	struct ipv6hdr ip6;
	__u32 l4_off = sizeof(ip6);
	__u8 next;

	if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
		return -1;
	__builtin_memcpy(info->daddr, &ip6.daddr, 16);
	next = ip6.nexthdr;
	if (next == IPV6_FRAGMENT_HDR) {
		__u8 frag[4]; /* next header, reserved, offset and flags */

		if (bpf_skb_load_bytes(skb, l4_off, frag, sizeof(frag)) < 0)
			return -1;
		next = frag[0];
		l4_off += 8;
		if (((frag[2] << 8) | frag[3]) & 0xfff8) {
			info->protocol = next;
			return 0;
		}
	}
	/* Other extension headers leave the protocol unknown: denied. */
	info->protocol = next;
	info->dport = load_dport(skb, l4_off, next, &info->port_known);
	return 0;
}

SEC("cgroup_skb/egress")
int egress_skb(struct __sk_buff *skb)
{
	__u64 cgid = bpf_skb_cgroup_id(skb);
	__u32 *policy = policy_of(cgid);
	struct l3_info info = {};
	int err;

	if (skb->protocol == bpf_htons(ETH_P_IP))
		err = parse_ipv4(skb, &info);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		err = parse_ipv6(skb, &info);
	else
		err = -1;
	if (!err && policy &&
	    policy_allows(*policy, info.daddr, info.protocol, info.dport, info.port_known))
		return 1;
	return refuse(cgid, err ? 0 : info.daddr, info.dport, info.protocol,
		      EGRESS_HOOK_SKB_EGRESS);
}

SEC("cgroup_skb/ingress")
int egress_skb_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->state != BPF_TCP_LISTEN)
		return 1;
	return refuse(bpf_skb_cgroup_id(skb), 0, (__u16)sk->src_port, IPPROTO_TCP,
		      EGRESS_HOOK_SKB_INGRESS);
}
