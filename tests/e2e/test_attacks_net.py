"""The default egress deny list as the kernel applies it: every class, every way to send;
a host-address list too long to hold; pasta's confinement and its gateway.

SECURITY.md 2.7 lists the ranges the defaults deny (loopback, RFC 1918, CGNAT,
link-local and metadata, reserved, documentation, multicast, ULA, 6to4, Teredo,
local NAT64) and says IPv4-mapped and NAT64 addresses are judged as the IPv4
address they carry. tests/unit/test_egress.c checks that list as text; here a
sandbox tries each class with TCP connect, TCP fast open, UDP sendto, UDP
connect and UDP sendmsg, and the test looks at what left the sandbox.

Like test_network.py everything runs inside a namespace of this module's own
(netns.py: lo and a veth pair h0/h1 whose ends both stay inside, no route
out), and the network sandboxes share it (`netns`). The targets are NOT
addresses of the namespace (those would be denied as the host's own, which
would hide a missing class rule): each has a route through h0 and a permanent
neighbour entry with h1's MAC, so a packet whose block failed goes out h0 and
arrives at h1, where a packet socket records it and the namespace drops it
(it forwards nothing). A control address that an egress_rule allows proves the
path: its SYN and datagram are seen on h1.

The stack also allows "0.0.0.0/0 udp 443" and "::/0 udp 443": an operator's
broad allow must not open a denied class (the class prefixes are longer, so
they win), and it makes the class rules, not the absence of any UDP allow, the
thing that refuses UDP here.
"""

import os
import socket
import struct
import subprocess
import time

import pytest

import conftest
import netns as netnsmod
import stack as stackmod
import test_network as tn
import test_private_netns as tpn

CONTROL4 = "198.51.100.9"          # allowed by an egress_rule (TEST-NET-2 is denied by default)
CONTROL6 = "2001:db8:77::1"        # likewise (documentation range)
SOURCE6 = "2001:db8:5::2"          # h0's IPv6 address, so that the kernel has a source

# class -> an address of it that no interface has (routed to h1)
ROUTED = {
    "rfc1918_10": "10.9.8.7",
    "rfc1918_172": "172.16.9.8",
    "rfc1918_192": "192.168.9.8",
    "cgnat": "100.64.9.8",
    "link_local": "169.254.9.8",
    "benchmarking": "198.18.9.8",
    "test_net_2": "198.51.100.99",
    "test_net_3": "203.0.113.9",
    "ietf_192_0_0": "192.0.0.9",
    "multicast": "224.1.2.3",
    "reserved": "240.1.2.3",
    "ula": "fd00::9",
    "site_local": "fec0::9",
    "six_to_four": "2002:a09:807::1",
    "teredo": "2001:0:a09:807::1",
    "ietf_2001": "2001:1::9",
    "documentation6": "2001:db8:9::9",
    "documentation6_3fff": "3fff::9",
    "discard_only": "100::9",
    "nat64_local": "64:ff9b:1::a09:807",
    "srv6": "5f00::9",
}
# judged as the IPv4 address they carry: 10.9.8.7 (routed above)
CARRIERS = {
    "mapped_private": "::ffff:10.9.8.7",
    "nat64_private": "64:ff9b::a09:807",
}
# addresses that need no route: loopback, the namespace's own (metadata plays a
# local host, as in test_network.py), link-local with a scope, multicast v6
LOCAL = {
    "loopback_127_5": "127.5.6.7",
    "loopback6": "::1",
    "metadata": netnsmod.HOSTS["metadata"],
    "link_local6": "fe80::9",
    "multicast6": "ff0e::9",
}
PORT = 443


def _ip(ns, *args):
    netnsmod._ip("-n", ns.name, *args)


class Sniffer(netnsmod.Served):
    """Every IPv4/IPv6 packet that arrives at h1, but ICMPv6 and IGMP (neighbour
    and group chatter of the kernel): (destination, protocol, destination port)."""

    def __init__(self, ifname="h1"):
        self.got = []
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sock.bind((ifname, 0))
        self.serve(sock)

    def serve_one(self):
        got = self._parse(self.sock.recv(65535))
        if got:
            self.got.append(got)

    @staticmethod
    def _parse(frame):
        ethertype, = struct.unpack("!H", frame[12:14])
        ip = frame[14:]
        if ethertype == 0x0800 and len(ip) >= 24:
            proto, ihl = ip[9], (ip[0] & 15) * 4
            if proto == 2:
                return None
            port, = struct.unpack("!H", ip[ihl + 2:ihl + 4])
            return socket.inet_ntop(socket.AF_INET, ip[16:20]), proto, port
        if ethertype == 0x86DD and len(ip) >= 44:
            proto = ip[6]
            if proto == 58:
                return None
            port, = struct.unpack("!H", ip[42:44])
            return socket.inet_ntop(socket.AF_INET6, ip[24:40]), proto, port
        return None

    def to(self, addr):
        time.sleep(0.2)  # a frame in flight on the veth is counted too
        want = socket.inet_ntop(*_family_and_bytes(addr))
        return [g for g in self.got if g[0] == want]


def _family_and_bytes(addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return fam, socket.inet_pton(fam, addr)


class AttackNet(tn.Net):
    """test_network's namespace and listeners, plus routes to h1 and a sniffer there."""

    def __init__(self, ns):
        super().__init__(ns)
        link = netnsmod._ip("-n", ns.name, "-o", "link", "show", "h1").stdout
        mac = link.split("link/ether ")[1].split()[0]
        _ip(ns, "addr", "add", SOURCE6 + "/128", "dev", "h0", "nodad")
        for addr in list(ROUTED.values()) + [CONTROL4, CONTROL6]:
            plen = "/128" if ":" in addr else "/32"
            _ip(ns, "route", "add", addr + plen, "dev", "h0")
            if addr not in (ROUTED["multicast"],):
                _ip(ns, "neigh", "replace", addr, "lladdr", mac, "dev", "h0", "nud", "permanent")
        _ip(ns, "neigh", "replace", LOCAL["link_local6"], "lladdr", mac, "dev", "h0", "nud", "permanent")
        ns.check_isolated()
        self.sniffer = Sniffer()
        # loopback and local targets: listeners (nothing of them crosses h1)
        self.local = {k: self.listen(a, PORT) for k, a in LOCAL.items()
                      if k in ("loopback_127_5", "loopback6", "metadata")}
        self.local_udp = {k: self.listen(a, PORT, "udp") for k, a in LOCAL.items()
                          if k in ("loopback_127_5", "loopback6", "metadata")}

    def close(self):
        self.sniffer.close()
        return super().close()


@pytest.fixture(scope="module")
def anet():
    yield from tn.net_in(netnsmod.Netns("sc-anet").create(), AttackNet)


@pytest.fixture(scope="module")
def astack(anet):
    return anet.stack(egress_rule=["allow %s tcp+udp %d" % (CONTROL4, PORT),
                                   "allow %s tcp+udp %d" % (CONTROL6, PORT),
                                   "allow 0.0.0.0/0 udp %d" % PORT,
                                   "allow ::/0 udp %d" % PORT],
                      max_workers=2)


# Every way of sending to one address; 'EPERM' is the eBPF hook's answer, a
# timeout or a kernel error would mean the packet was let through (or routed).
ATTEMPTS = r"""
import errno, json, socket
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else type(e).__name__
def fam_of(h):
    return socket.AF_INET6 if ':' in h else socket.AF_INET
def addr_of(h, port):
    if h.startswith('fe80:'):
        return (h, port, 0, H0)  # h0's index: if_nametoindex's ioctl is refused
    return (h, port)
def attempt(fn):
    try:
        fn()
        return 'sent'
    except Exception as e:
        return err(e)
def tcp_connect(h, port):
    s = socket.socket(fam_of(h), socket.SOCK_STREAM); s.settimeout(1)
    try: s.connect(addr_of(h, port))
    finally: s.close()
def tcp_fastopen(h, port):
    s = socket.socket(fam_of(h), socket.SOCK_STREAM); s.settimeout(1)
    try: s.sendto(b'tfo', socket.MSG_FASTOPEN, addr_of(h, port))
    finally: s.close()
def udp_sendto(h, port):
    s = socket.socket(fam_of(h), socket.SOCK_DGRAM)
    try: s.sendto(b'sendto', addr_of(h, port))
    finally: s.close()
def udp_connect(h, port):
    s = socket.socket(fam_of(h), socket.SOCK_DGRAM)
    try: s.connect(addr_of(h, port)); s.send(b'connect')
    finally: s.close()
def udp_sendmsg(h, port):
    s = socket.socket(fam_of(h), socket.SOCK_DGRAM)
    try: s.sendmsg([b'sendmsg'], [], 0, addr_of(h, port))
    finally: s.close()
WAYS = {'tcp_connect': tcp_connect, 'tcp_fastopen': tcp_fastopen, 'udp_sendto': udp_sendto,
        'udp_connect': udp_connect, 'udp_sendmsg': udp_sendmsg}
print(json.dumps({k: {w: attempt(lambda: f(h, %d)) for w, f in WAYS.items()}
                  for k, h in TARGETS.items()}))
""" % PORT


def attack(anet, stack, targets):
    h0 = int(netnsmod._ip("-n", anet.ns.name, "-o", "link", "show", "h0").stdout.split(":")[0])
    out, _ = tn.report(stack, "TARGETS = %r\nH0 = %d\n" % (targets, h0) + ATTEMPTS)
    return out


def test_the_control_addresses_do_leave_the_sandbox(anet, astack):
    """The path works: what the rules allow reaches h1 (so silence there means a block)."""
    out = attack(anet, astack, {"control4": CONTROL4, "control6": CONTROL6,
                          "control_mapped": "::ffff:" + CONTROL4})
    for k in out:
        # TCP: the SYN leaves and nobody answers; UDP: the datagram leaves
        assert out[k]["tcp_connect"] in ("TimeoutError", "ETIMEDOUT"), out
        assert all(out[k][w] == "sent" for w in ("udp_sendto", "udp_connect", "udp_sendmsg")), out
    for addr in (CONTROL4, CONTROL6):
        protos = {(p, port) for _, p, port in anet.sniffer.to(addr)}
        assert protos == {(6, PORT), (17, PORT)}, anet.sniffer.to(addr)


@pytest.mark.parametrize("cls", sorted(ROUTED) + sorted(CARRIERS))
def test_a_denied_class_is_refused_every_way_and_nothing_leaves(anet, astack, cls):
    addr = ROUTED.get(cls) or CARRIERS[cls]
    carried = "10.9.8.7" if cls in CARRIERS else addr
    before = len(anet.sniffer.to(carried))
    out = attack(anet, astack, {cls: addr})
    assert out == {cls: {w: "EPERM" for w in
                         ("tcp_connect", "tcp_fastopen", "udp_sendto", "udp_connect", "udp_sendmsg")}}, out
    assert len(anet.sniffer.to(carried)) == before, anet.sniffer.to(carried)


def test_loopback_metadata_and_link_local6_are_refused_and_their_listeners_get_nothing(anet, astack):
    counts = {k: l.count() for k, l in list(anet.local.items()) + [("u_" + k, l) for k, l in anet.local_udp.items()]}
    out = attack(anet, astack, LOCAL)
    assert out == {k: {w: "EPERM" for w in
                       ("tcp_connect", "tcp_fastopen", "udp_sendto", "udp_connect", "udp_sendmsg")}
                   for k in LOCAL}, out
    after = {k: l.count() for k, l in list(anet.local.items()) + [("u_" + k, l) for k, l in anet.local_udp.items()]}
    assert after == counts, (counts, after)
    assert anet.sniffer.to(LOCAL["link_local6"]) == [] and anet.sniffer.to(LOCAL["multicast6"]) == []
    conftest.assert_alive(astack)


# ---- more host addresses than the deny list holds ----------------------------------------

MANY = 1100  # > HOST_ADDRS_MAX (1024): the own-address deny list cannot hold them all


def _add_many(ns, verb):
    """Adds (or deletes) MANY /32s in 10.77.0.0/16 on h0 in one `ip -batch`."""
    batch = "".join("addr %s 10.77.%d.%d/32 dev h0\n" % (verb, i // 250, 1 + i % 250)
                    for i in range(MANY))
    r = subprocess.run(["ip", "-n", ns.name, "-force", "-batch", "-"], input=batch,
                       capture_output=True, text=True)
    assert r.returncode == 0 or verb == "del", r.stderr[-500:]


def _stack_in(ns, **config):
    config.setdefault("netns", ns.path)
    return stackmod.Stack(conftest.builddir(), srcdir=conftest.srcdir(), **config)


def test_more_host_addresses_than_the_list_holds_refuses_the_start():
    """A partial own-address list would leave the rest open: sandcelld refuses to start."""
    ns = netnsmod.Netns("sc-many").create()
    try:
        _add_many(ns, "add")
        with ns.entered():
            s = _stack_in(ns)
            with pytest.raises(stackmod.StackError) as e:
                s.start()
        assert "more than 1024" in str(e.value), str(e.value)[-2000:]
    finally:
        ns.delete()


def test_more_host_addresses_than_the_list_holds_refuses_network_runs():
    """Addresses that appear while sandcelld runs: past the limit network runs are refused."""
    ns = netnsmod.Netns("sc-many").create()
    try:
        with ns.entered():
            s = _stack_in(ns).start()
            try:
                probe = "import socket\ntry:\n socket.create_connection(('10.77.0.1', 443), 1)\n" \
                        " print('connected')\nexcept OSError as e:\n print(e.errno)\n"
                # a network run is accepted, and the address is denied as the host's (EPERM)
                assert conftest.run_ok(s, "python3", probe, enable_network=True)["stdout"] == "1\n"
                _add_many(ns, "add")
                deadline = time.monotonic() + 60
                while "cannot follow the host's addresses" not in s.log(100000):
                    assert time.monotonic() < deadline, s.log(40)
                    time.sleep(0.2)
                assert "more than 1024" in s.log(100000), s.log(40)
                status, body = conftest.run(s, "python3", probe, enable_network=True)
                assert status == 500 and body["data"] is None, (status, body)
                # offline runs go on
                assert conftest.run_ok(s, "python3", "print(6 * 7)")["stdout"] == "42\n"
            finally:
                s.stop()
            assert not s.stop_problems, s.stop_problems
    finally:
        ns.delete()


# ---- pasta: confined, forwarding nothing in, the gateway not the host's loopback -----------

GW_PORT = 8099


class PastaNet(tpn.PrivateNet):
    """test_private_netns's namespace (a default route via the gateway, pasta per run) with
    listeners on the host's loopback that pasta's gateway mapping would lead to."""

    def __init__(self, ns):
        super().__init__(ns)
        self.loop4 = self.listen("127.0.0.1", GW_PORT)
        self.loop6 = self.listen("::1", GW_PORT)


@pytest.fixture(scope="module")
def pasta_net():
    yield from tn.net_in(netnsmod.Netns("sc-apns").create(with_gateway=True), PastaNet)


def pastas_of(stack):
    """pid -> /proc/PID/status of sandcelld's pasta children."""
    found = {}
    for pid, comm in tpn.children(stack.sandcelld.pid).items():
        if comm in ("pasta", "passt", "pasta.avx2", "passt.avx2"):
            found[pid] = open("/proc/%d/status" % pid).read()
    return found


def _fields(status):
    return dict(l.split(":\t", 1) for l in status.splitlines() if ":\t" in l)


def test_pasta_is_confined_and_forwards_nothing_in(pasta_net):
    """pasta confines itself once it has set the namespace up (until then it holds
    CAP_NET_ADMIN too and has no filter yet): the pool's pastas are waited for."""
    s = pasta_net.stack(max_workers=2)
    tn.report(s, "import json; print(json.dumps(1))")  # a network run: namespaces and pastas exist
    deadline = time.monotonic() + 60
    while True:
        pastas = {pid: _fields(st) for pid, st in pastas_of(s).items()}
        if pastas and all(st["Seccomp"].strip() == "2" for st in pastas.values()):
            break
        assert time.monotonic() < deadline, pastas
        time.sleep(0.1)
    for pid, st in pastas.items():
        caps = "%016x" % ((1 << 21) | (1 << 10))  # CAP_SYS_ADMIN, CAP_NET_BIND_SERVICE
        assert st["CapEff"].strip() == caps and st["CapPrm"].strip() == caps, st
        assert st["CapInh"].strip() == "0" * 16 and st["CapAmb"].strip() == "0" * 16, st
        assert st["NoNewPrivs"].strip() == "1", st
        assert os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt")
        argv = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
        for flag in (b"-t", b"-u", b"-T", b"-U"):
            assert argv[argv.index(flag) + 1] == b"none", argv
        assert b"--no-map-gw" in argv, argv


def test_the_gateway_address_does_not_lead_to_the_hosts_loopback(pasta_net):
    """Without --no-map-gw pasta would hand a connection to the gateway to the host's
    loopback. The egress_rule opens the gateway so that only pasta decides."""
    s = pasta_net.stack(max_workers=2, egress_rule=[
        "allow %s tcp 80" % netnsmod.HOSTS["public"],
        "allow %s tcp %d" % (netnsmod.Netns.GATEWAY, GW_PORT)])
    counts = (pasta_net.loop4.count(), pasta_net.loop6.count(), pasta_net.public.count())
    code = ("import json, socket\ndef tcp(h, p):\n"
            "    s = socket.socket(); s.settimeout(3)\n"
            "    try:\n"
            "        s.connect((h, p)); s.sendall(b'GET /gw HTTP/1.0\\r\\n\\r\\n')\n"
            "        return s.recv(100).decode().split('\\r\\n\\r\\n')[-1] or 'closed'\n"
            "    except OSError as e:\n"
            "        return type(e).__name__\n"
            "print(json.dumps([tcp(%r, %d), tcp(%r, 80)]))\n"
            % (netnsmod.Netns.GATEWAY, GW_PORT, netnsmod.HOSTS["public"]))
    out, _ = tn.report(s, code)
    assert out[1] == "hello", out  # the control: pasta does carry an allowed connection
    assert out[0] != "hello", out
    assert (pasta_net.loop4.count(), pasta_net.loop6.count()) == counts[:2], out
    assert pasta_net.public.count() == counts[2] + 1
