"""Network egress of sandboxes: the eBPF policy with real nginx, sandcelld, BPF and jails.

Everything here runs inside a private network namespace this module creates
(netns.py: lo plus a veth pair whose both ends stay inside, no route out),
and it runs the whole stack there: the test thread enters the namespace
(setns) before it starts listeners, nginx and sandcelld, so all of them and
the network sandboxes (which share sandcelld's namespace, `netns` pointing
at it) live in it. A packet whose block failed could reach only our own
listeners, and "the sandcell endpoint on 127.0.0.1" is the real nginx of
the stack, in the very namespace the sandbox is in.

Addresses on h0 play hosts: 10.1.2.3 private, 169.254.169.254 cloud
metadata, 198.51.100.7 and .8 "public" (TEST-NET-2, denied by the defaults,
so the stack allows them with egress_rule: an operator's hole in the
defaults), 198.51.100.53 a DNS server, 198.51.100.80 a proxy.

Every test looks at what the listeners received, not only at the client's
error.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import conftest
import netns as netnsmod
import stack as stackmod
from conftest import http, run, run_ok

H = netnsmod.HOSTS
DNS_NAME = "svc.sandcell.test"
MISSING_NAME = "nowhere.sandcell.test"


# ---- listeners that play hosts ---------------------------------------------------

class Listener(netnsmod.Served):
    """A TCP (or abstract unix) listener that records every connection and the
    first bytes it got, or a UDP socket that records every datagram."""

    def __init__(self, host, port=0, kind="tcp", reply=b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"):
        self.kind, self.reply = kind, reply
        self.got = []  # (peer, first bytes)
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(host)
        else:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            typ = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
            sock = socket.socket(fam, typ)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        if kind != "udp":
            sock.listen(64)
        self.port = port if kind == "unix" else sock.getsockname()[1]
        self.serve(sock)

    def serve_one(self):
        if self.kind == "udp":
            data, peer = self.sock.recvfrom(4096)
            self.got.append((peer, data))
            return
        conn, peer = self.sock.accept()
        data = b""
        try:
            conn.settimeout(1)
            data = conn.recv(4096)
            if self.reply:
                conn.sendall(self.reply)
        except OSError:
            pass
        finally:
            conn.close()
        self.got.append((peer, data))

    def count(self):
        time.sleep(0.1)  # a connection in the accept queue is counted too
        return len(self.got)


class DnsServer(netnsmod.Served):
    """Answers A queries for the names in self.records with TTL 1 (sandcelld
    clamps to its minimum); AAAA: no data; other names: NXDOMAIN."""

    def __init__(self, host):
        self.records = {}
        self.queries = []
        self.datagrams = []  # everything that arrived, parseable or not
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 53))
        self.serve(sock)

    def serve_one(self):
        msg, peer = self.sock.recvfrom(1500)
        self.datagrams.append(msg)
        try:
            self.sock.sendto(self._answer(msg), peer)
        except (ValueError, struct.error, OSError):
            pass

    def _answer(self, msg):
        qid, = struct.unpack("!H", msg[:2])
        pos, labels = 12, []
        while msg[pos]:
            labels.append(msg[pos + 1:pos + 1 + msg[pos]].decode())
            pos += 1 + msg[pos]
        question = msg[12:pos + 5]
        qtype, = struct.unpack("!H", msg[pos + 1:pos + 3])
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        addr = self.records.get(name)
        rcode = 0 if addr else 3
        answers = b""
        if addr and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + socket.inet_aton(addr)
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        return header + question + answers


# ---- the module's namespace and stacks ------------------------------------------

class Net:
    """The namespace (entered), its listeners, and the stacks started in it."""

    def __init__(self, ns):
        self.ns = ns
        self.stacks = []
        self.listeners = []
        self.public = self.listen(H["public"], 80)
        self.public_8080 = self.listen(H["public"], 8080)
        self.public2_8080 = self.listen(H["public2"], 8080)
        self.private = self.listen(H["private"], 80)
        self.metadata = self.listen(H["metadata"], 80)
        self.loopback6 = self.listen("::1", 0)
        self.udp_private = self.listen(H["private"], 5353, "udp")
        self.proxy = self.listen(H["proxy"], 3128, reply=b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nvia proxy")
        self.dns = DnsServer(H["dns"])
        self.dns.records[DNS_NAME] = H["public"]

    def listen(self, *a, **kw):
        l = Listener(*a, **kw)
        self.listeners.append(l)
        return l

    def stack(self, **config):
        """A stack whose network sandboxes share sandcelld's namespace (this one)."""
        config.setdefault("netns", self.ns.path)
        config.setdefault("dns_servers", H["dns"])
        s = stackmod.Stack(conftest.builddir(), srcdir=conftest.srcdir(), **config)
        self.stacks.append(s)
        s.start()
        assert self.ns.contains(s.sandcelld.pid) and self.ns.contains(s.nginx.pid)
        return s

    def close(self):
        problems = []
        for s in self.stacks:
            s.stop()
            problems += s.stop_problems
        for l in self.listeners:
            l.close()
        self.dns.close()
        return problems


def net_in(ns, cls):
    """Yields cls(ns) made inside the namespace ns; closes it, then deletes ns."""
    try:
        with ns.entered():
            n = cls(ns)
            try:
                yield n
            finally:
                problems = n.close()
        assert not problems, problems
    finally:
        ns.delete()


@pytest.fixture(scope="module")
def net():
    yield from net_in(netnsmod.Netns("sc-net").create(), Net)


@pytest.fixture(scope="module")
def stack(net):
    """Operator rules: the "public" host over HTTP, a host name on 8080; the
    defaults for everything else."""
    return net.stack(egress_rule=["allow %s tcp 80" % H["public"],
                                  "allow %s tcp 8080" % DNS_NAME,
                                  "allow %s tcp 9090" % MISSING_NAME],
                     max_workers=4)


def report(stack, code, language="python3", network=True):
    data = run_ok(stack, language, code, enable_network=network)
    try:
        return json.loads(data["stdout"].strip().splitlines()[-1]), data
    except (ValueError, IndexError):
        raise AssertionError("no JSON report: %r" % data)


PY_HELPERS = r"""
import errno, json, socket
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno))
def tcp(host, port, fam=None, payload=b'GET / HTTP/1.0\r\n\r\n', timeout=3):
    fam = fam or (socket.AF_INET6 if ':' in host else socket.AF_INET)
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
    except OSError as e:
        return 'socket ' + err(e)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        if payload:
            s.sendall(payload)
        return 'connected ' + s.recv(100).decode('latin-1').split('\r\n\r\n')[-1]
    except OSError as e:
        return err(e)
    finally:
        s.close()
"""


def py(body):
    return PY_HELPERS + body


# ---- allowed -------------------------------------------------------------------------

def test_sandboxes_join_the_namespace(net, stack):
    out, _ = report(stack, py("print(json.dumps({'ifaces': sorted(l.split(':')[0].strip() for l in "
                              "open('/proc/self/net/dev').readlines()[2:])}))"))
    assert out["ifaces"] == ["h0", "h1", "lo"], out


def test_allowed_public_host_python_requests(net, stack):
    before = net.public.count()
    code = ("import requests, json\n"
            "r = requests.get('http://%s/from-python', timeout=5)\n"
            "print(json.dumps({'status': r.status_code, 'body': r.text}))" % H["public"])
    out, _ = report(stack, code)
    assert out == {"status": 200, "body": "hello"}, out
    assert net.public.count() == before + 1
    assert b"GET /from-python" in net.public.got[-1][1]


@pytest.mark.parametrize("api", ["http", "fetch"])
def test_allowed_public_host_node(net, stack, api):
    before = net.public.count()
    url = "http://%s/from-node-%s" % (H["public"], api)
    if api == "http":
        code = ("require('http').get(%r, r => { let b = ''; r.on('data', d => b += d);\n"
                "  r.on('end', () => console.log(JSON.stringify({status: r.statusCode, body: b}))) })\n"
                ".on('error', e => console.log(JSON.stringify({error: e.code})))" % url)
    else:
        code = ("fetch(%r).then(async r => console.log(JSON.stringify({status: r.status, body: await r.text()})))\n"
                ".catch(e => console.log(JSON.stringify({error: String(e.cause && e.cause.code || e)})))" % url)
    out, _ = report(stack, code, "nodejs")
    assert out == {"status": 200, "body": "hello"}, out
    assert net.public.count() == before + 1
    assert ("GET /from-node-%s" % api).encode() in net.public.got[-1][1]


def test_name_resolution_inside_the_jail(net, stack):
    code = py("print(json.dumps({'resolv': open('/etc/resolv.conf').read(),\n"
              " 'hosts': open('/etc/hosts').read(),\n"
              " 'addr': socket.getaddrinfo(%r, 8080, socket.AF_INET)[0][4][0],\n"
              " 'by_name': tcp(%r, 8080)}))" % (DNS_NAME, DNS_NAME))
    before = net.public_8080.count()
    out, _ = report(stack, code)
    assert re.findall(r"^nameserver (\S+)$", out["resolv"], re.M) == [H["dns"]], out
    assert "localhost" in out["hosts"] and H["public"] not in out["hosts"], out
    assert out["addr"] == H["public"] and out["by_name"] == "connected hello", out
    assert net.public_8080.count() == before + 1


# ---- denied ------------------------------------------------------------------------

def test_denied_destinations(net, stack):
    probe = "sandbox-probe-%s" % os.urandom(6).hex()
    targets = {
        "private": (H["private"], 80),
        "metadata": (H["metadata"], 80),
        "endpoint": ("127.0.0.1", stack.port),
        "loopback6": ("::1", net.loopback6.port),
        "mapped": ("::ffff:" + H["private"], 80),
        "public_other_port": (H["public"], 8080 + 1),
    }
    counts = {l: l.count() for l in net.listeners}
    code = py("payload = b'GET /%s HTTP/1.0\\r\\n\\r\\n'\n"
              "print(json.dumps({k: tcp(h, p, payload=payload) for k, (h, p) in %r.items()}))"
              % (probe, targets))
    out, _ = report(stack, code)
    assert out == {k: "EPERM" for k in targets}, out
    for l in net.listeners:
        assert l.count() == counts[l], (l.sock, l.got[counts[l]:])
    # the sandcell endpoint is nginx in this very namespace: it never saw the probe
    assert probe not in stackmod._read(os.path.join(stack.prefix, "logs", "access.log"))


def test_udp_sendto_and_sendmmsg_denied(net, stack):
    before = net.udp_private.count()
    code = py(r"""
import ctypes, ctypes.util
out = {}
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b'sendto', (%(host)r, 5353))
    out['sendto'] = 'sent'
except OSError as e:
    out['sendto'] = err(e)
try:
    u.connect((%(host)r, 5353))
    out['connect'] = 'connected'
except OSError as e:
    out['connect'] = err(e)
# sendmmsg(2) on an unconnected socket, each message with its own address
class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32), ('iov', ctypes.POINTER(iovec)),
                ('iovlen', ctypes.c_size_t), ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t),
                ('flags', ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [('hdr', msghdr), ('len', ctypes.c_uint)]
libc = ctypes.CDLL(None, use_errno=True)
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
addr = ctypes.create_string_buffer(struct.pack('=H', socket.AF_INET) + struct.pack('!H', 5353)
                                   + socket.inet_aton(%(host)r) + bytes(8))
data = ctypes.create_string_buffer(b'sendmmsg')
iov = iovec(ctypes.cast(data, ctypes.c_void_p), 8)
msgs = (mmsghdr * 2)()
for m in msgs:
    m.hdr = msghdr(ctypes.cast(addr, ctypes.c_void_p), 16, ctypes.pointer(iov), 1, None, 0, 0)
n = libc.sendmmsg(v.fileno(), msgs, 2, 0)
out['sendmmsg'] = 'sent %%d' %% n if n > 0 else errno.errorcode.get(ctypes.get_errno(), '?')
print(json.dumps(out))
""".replace("import ctypes", "import struct, ctypes") % {"host": H["private"]})
    out, data = report(stack, code)
    assert out == {"sendto": "EPERM", "connect": "EPERM", "sendmmsg": "EPERM"}, (out, data)
    assert net.udp_private.count() == before


def test_tcp_fast_open_denied(net, stack):
    before = net.private.count()
    code = py("""
out = {}
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.sendto(b'GET /tfo HTTP/1.0\\r\\n\\r\\n', socket.MSG_FASTOPEN, (%r, 80))
    out['tfo'] = 'sent'
except OSError as e:
    out['tfo'] = err(e)
print(json.dumps(out))
""" % H["private"])
    out, _ = report(stack, code)
    assert out == {"tfo": "EPERM"}, out
    assert net.private.count() == before


def ipv4_udp_packet(src, dst, dport, payload):
    """An IPv4 + UDP packet (UDP checksum 0: allowed in IPv4)."""
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xffff) + hdr[12:] + udp


def test_raw_and_packet_sockets_denied(net, stack):
    """A raw UDP socket and a packet socket on h0, each sending a datagram that
    the UDP listener on 10.1.2.3:5353 would receive; neither may even exist."""
    before = net.udp_private.count()
    packet = ipv4_udp_packet("10.9.9.9", H["private"], 5353, b"packet")
    udp_only = packet[20:]
    code = py("""
out = {}
try:
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    r.sendto(%r, (%r, 0))
    out['raw'] = 'sent'
except OSError as e:
    out['raw'] = err(e)
try:
    p = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    p.sendto(%r, ('h0', 0x0800, 0, 0, b'\\xff' * 6))
    out['packet'] = 'sent'
except OSError as e:
    out['packet'] = err(e)
print(json.dumps(out))
""" % (udp_only, H["private"], packet))
    out, _ = report(stack, code)
    assert out["raw"] in ("EPERM", "EACCES") and out["packet"] in ("EPERM", "EACCES"), out
    assert net.udp_private.count() == before


def test_abstract_datagram_names_of_the_host_unreachable(net, stack):
    # A datagram socketpair, disconnected with connect(AF_UNSPEC), could send to any abstract
    # name in the namespace (host daemons, other tenants) and receive from them.
    name = b"\0sandcell-test-dgram-" + os.urandom(6).hex().encode()
    host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    host.bind(name)
    host.settimeout(0.5)
    code = py("""
import ctypes
try:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    unspec = ctypes.c_ushort(socket.AF_UNSPEC)
    ctypes.CDLL(None).connect(a.fileno(), ctypes.byref(unspec), 2)  # disconnect the pair
    a.sendto(b'from the sandbox', %r)
    r = 'sent'
except OSError as e:
    r = err(e)
print(json.dumps(r))
""" % name)
    try:
        out, _ = report(stack, code)
        try:
            got = host.recv(100)
        except socket.timeout:
            got = None
    finally:
        host.close()
    assert out == "EPERM" and got is None, (out, got)


def test_abstract_unix_socket_of_the_host_denied(net, stack):
    name = b"\0sandcell-test-" + os.urandom(6).hex().encode()
    l = net.listen(name, kind="unix")
    code = py("""
try:
    x = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    x.connect(%r)
    r = 'connected'
except OSError as e:
    r = err(e)
a, b = socket.socketpair()
a.sendall(b'pair')
print(json.dumps({'unix': r, 'socketpair': b.recv(4).decode()}))
""" % name)
    out, _ = report(stack, code)
    assert out == {"unix": "EPERM", "socketpair": "pair"}, out
    assert l.count() == 0
    # the listener is reachable from this namespace: the block is the jail's doing
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(name)
    assert l.count() == 1


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::"])
def test_bind_and_listen_denied(net, stack, host):
    port = 47000 + os.getpid() % 1000
    code = py("""
out = {}
s = socket.socket(socket.AF_INET6 if ':' in %(h)r else socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind((%(h)r, %(p)d))
    out['bind'] = 'bound'
except OSError as e:
    out['bind'] = err(e)
try:
    s.listen(5)
    out['listen'] = 'listening'
    import time; time.sleep(1.5)
except OSError as e:
    out['listen'] = err(e)
print(json.dumps(out))
""" % {"h": host, "p": port})
    result = {}

    def go():
        result["out"] = report(stack, code)[0]

    t = threading.Thread(target=go)
    t.start()
    time.sleep(0.8)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as c:
        c.settimeout(2)
        reached = c.connect_ex(("::1" if ":" in host else "127.0.0.1", port)) == 0
    t.join(60)
    out = result["out"]
    assert out["bind"] == "EPERM" and out["listen"] != "listening", out
    assert not reached


# ---- visibility --------------------------------------------------------------

def test_blocked_attempts_logged_and_counted(net, stack):
    def blocked_metric():
        r = http("GET", stack, "/metrics", key=False)
        assert r.status_code == 200, r.status_code
        m = re.search(r'^sandcell_network_blocked_total\{hook="connect4"\} (\d+)$', r.text, re.M)
        assert m, r.text[-2000:]
        return int(m.group(1))

    before = blocked_metric()
    code = py("print(json.dumps([tcp(%r, 80, timeout=1) for _ in range(40)]))" % H["metadata"])
    out, _ = report(stack, code)
    assert set(out) == {"EPERM"}, out
    deadline = time.monotonic() + 10
    while blocked_metric() < before + 32 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert blocked_metric() >= before + 32  # counted at 1, 2, 4, ..., 32 attempts
    lines = [l for l in stack.log(400).splitlines()
             if "network attempt blocked" in l and "destination=169.254.169.254:80" in l]
    # one line per event (counts 1, 2, 4, ...), never one per attempt
    assert 1 <= len(lines) <= 8, lines
    assert all(re.search(r" id=\S+", l) and "hook=connect4" in l and "protocol=tcp" in l
               for l in lines), lines
    assert net.metadata.count() == 0


def test_log_lines_are_rate_limited_per_request(net, stack):
    code = py("print(json.dumps(sorted(set(tcp(%r, p, timeout=1) for p in range(20000, 20300)))))"
              % H["private"])
    out, _ = report(stack, code)
    assert out == ["EPERM"], out
    time.sleep(1)
    lines = [l for l in stack.log(2000).splitlines() if "destination=10.1.2.3:20" in l]
    assert 1 <= len(lines) <= 8, len(lines)
    assert "further lines suppressed" in stack.log(2000)


def test_blocked_attempts_of_each_run_of_a_reused_slot_are_logged(net):
    # One run at a time, no warm sandboxes: two slots (jail/executor.c), so six runs reuse a
    # slot cgroup (the same cgroup id) at least three times. Each run makes one blocked attempt
    # to the same destination: each must be logged as the first of its run (count=1) and
    # counted. A slot that kept the previous run's counter would report 2, then nothing (an
    # event is sent at counts 1, 2, 4, ...: the third run's attempt, count 3, had none).
    s = net.stack(max_workers=1, warm_sandboxes=0)
    runs = 6
    code = py("print(json.dumps([tcp(%r, 81, timeout=1)]))" % H["metadata"])

    def lines():
        return [l for l in s.log(2000).splitlines()
                if "network attempt blocked" in l and "destination=169.254.169.254:81" in l]

    for _ in range(runs):
        conftest.assert_clean(s)  # the previous run's slot is free again
        out, _ = report(s, code)
        assert out == ["EPERM"], out
    deadline = time.monotonic() + 10
    while len(lines()) < runs and time.monotonic() < deadline:
        time.sleep(0.2)
    found = lines()
    assert len(found) == runs, found
    assert all(" count=1" in l for l in found), found
    assert net.metadata.count() == 0


# ---- host names ----------------------------------------------------------------

def test_host_name_rule_follows_dns(net, stack):
    code = py("print(json.dumps({'a': tcp(%r, 8080), 'b': tcp(%r, 8080)}))"
              % (H["public"], H["public2"]))
    a0, b0 = net.public_8080.count(), net.public2_8080.count()
    out, _ = report(stack, code)
    assert out == {"a": "connected hello", "b": "EPERM"}, out
    assert (net.public_8080.count(), net.public2_8080.count()) == (a0 + 1, b0)

    net.dns.records[DNS_NAME] = H["public2"]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if re.search(r'egress host name resolved" host=%s addresses=%s ' % (
                    re.escape(DNS_NAME), re.escape(H["public2"])), stack.log(400)):
                break
            time.sleep(0.2)
        else:
            pytest.fail("sandcelld did not pick up the new address:\n" + stack.log(40))
        time.sleep(0.3)  # the policy is installed right after the log line
        out, _ = report(stack, code)
        assert out == {"a": "EPERM", "b": "connected hello"}, out
        assert (net.public_8080.count(), net.public2_8080.count()) == (a0 + 1, b0 + 1)
    finally:
        net.dns.records[DNS_NAME] = H["public"]


def test_unresolvable_name_gives_no_rule(net, stack):
    assert re.search(r'egress host name has no address: no rule for it" host=%s' 
                     % re.escape(MISSING_NAME), stack.log(2000)), stack.log(40)
    code = py("print(json.dumps([tcp(h, 9090) for h in %r]))" % [H["public"], H["private"]])
    out, _ = report(stack, code)
    assert out == ["EPERM", "EPERM"], out


# ---- isolation between sandboxes -----------------------------------------------

LOOP = py("""
import time
res = []
end = time.time() + %(secs)s
while time.time() < end:
    res.append(tcp(%(host)r, 80, timeout=1))
    time.sleep(0.1)
print(json.dumps(sorted(set(res)) + [sum(1 for r in res if r.startswith('connected'))]))
""")


def test_policy_of_one_sandbox_never_applies_to_another(net, stack):
    before = net.public.count()
    results = {}

    def go(name, network):
        results[name] = report(stack, LOOP % {"secs": 3, "host": H["public"]}, network=network)[0]

    threads = [threading.Thread(target=go, args=("net", True)),
               threading.Thread(target=go, args=("offline", False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    *kinds, connected = results["net"]
    assert kinds == ["connected hello"] and connected >= 10, results
    # an offline sandbox has no policy: it may not even create an inet socket
    *kinds, connected = results["offline"]
    assert kinds == ["socket EPERM"] and connected == 0, results
    assert net.public.count() == before + results["net"][-1]


# ---- restart -------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "stop"])
def test_restart_never_leaves_a_sandbox_without_policy(net, sig):
    s = net.stack(egress_rule="allow %s tcp 80" % H["public"], drain_timeout=1,
                  worker_timeout=30)
    private0, public0 = net.private.count(), net.public.count()
    code = py("""
import time
end = time.time() + 8
while time.time() < end:
    for h in (%r, %r):
        tcp(h, 80, timeout=1)
    time.sleep(0.05)
""" % (H["public"], H["private"]))
    runs = []

    def go():
        try:
            runs.append(run(s, "python3", code, enable_network=True))
        except Exception as e:  # the connection to a killed sandcelld
            runs.append(e)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while net.public.count() < public0 + 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert net.public.count() >= public0 + 4, "the sandboxes never ran"
    s.restart_sandcelld(sig)
    for t in threads:
        t.join(60)
    # nothing of the old sandboxes survives the new sandcelld's start
    hi = s.uid_base + s.slots
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        survivors = [p for p in stackmod.processes_with_uid_in(s.uid_base, hi)
                     if not stackmod.in_warm_cgroup(p[0])]
        if not survivors:
            break
        time.sleep(0.1)
    assert not survivors, survivors
    # the new sandcelld enforces the policy
    out, _ = report(s, py("print(json.dumps([tcp(%r, 80), tcp(%r, 80)]))" % (H["public"], H["private"])))
    assert out == ["connected hello", "EPERM"], out
    assert net.private.count() == private0, net.private.got[private0:]


# ---- failure to load ---------------------------------------------------------------

def test_load_failure_refuses_network_runs(net, tmp_path):
    pin_dir = tmp_path / "not-bpffs"
    pin_dir.mkdir()
    s = net.stack(egress_pin_dir=str(pin_dir), egress_rule="allow %s tcp 80" % H["public"])
    public0 = net.public.count()
    code = py("print(json.dumps([tcp(%r, 80)]))" % H["public"])
    status, body = run(s, "python3", code, enable_network=True)
    assert status == 500 and body["code"] == -500 and body["data"] is None, (status, body)
    assert "egress" in body["message"] and "cannot be enforced" in body["message"], body
    status, body = run(s, "nodejs", "console.log(1)", enable_network=True)
    assert status == 500, (status, body)
    assert net.public.count() == public0
    # runs without network are unaffected
    assert run_ok(s, "python3", "print(6 * 7)")["stdout"] == "42\n"
    assert run_ok(s, "nodejs", "console.log(6 * 7)")["stdout"] == "42\n"
    assert "network runs will be refused" in s.log(200)
    r = subprocess.run([s.sandcelld_bin, "--config", s.conf_path, "--check"],
                       capture_output=True, text=True, timeout=120)
    assert "pin directory: %s: FAILED: not on a bpf filesystem" % pin_dir in r.stdout, r.stdout


def test_check_reports_egress(net, stack):
    r = subprocess.run([stack.sandcelld_bin, "--config", stack.conf_path, "--check"],
                       capture_output=True, text=True, timeout=120)
    assert "egress: OK" in r.stdout, r.stdout
    assert "rule allow %s/32 tcp 80" % H["public"] in r.stdout
    assert "%s -> %s" % (DNS_NAME, H["public"]) in r.stdout
    assert "rule allow %s/32 any 53" % H["dns"] in r.stdout
    assert "rule deny 10.0.0.0/8 any" in r.stdout


# ---- proxy only ------------------------------------------------------------------

def test_proxy_only_reaches_only_the_proxy(net):
    proxy = "http://%s:3128" % H["proxy"]
    s = net.stack(http_proxy=proxy, https_proxy=proxy, egress_proxy_only=True)
    counts = {l: l.count() for l in net.listeners}
    datagrams = len(net.dns.datagrams)
    code = py("""
import requests
out = {'env': __import__('os').environ.get('HTTP_PROXY') or __import__('os').environ.get('http_proxy')}
out['via_proxy'] = requests.get('http://%(pub)s/x', timeout=5).text
out['direct'] = tcp(%(pub)r, 80)
out['private'] = tcp(%(priv)r, 80)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b'q', (%(dns)r, 53)); out['dns'] = 'sent'
except OSError as e:
    out['dns'] = err(e)
out['resolv'] = [l for l in open('/etc/resolv.conf') if l.startswith('nameserver')]
print(json.dumps(out))
""" % {"pub": H["public"], "priv": H["private"], "dns": H["dns"]})
    out, _ = report(s, code)
    assert out == {"env": proxy, "via_proxy": "via proxy", "direct": "EPERM", "private": "EPERM",
                   "dns": "EPERM", "resolv": []}, out
    for l in net.listeners:
        assert l.count() == counts[l] + (1 if l is net.proxy else 0), (l.sock, l.got[counts[l]:])
    assert b"GET http://%s/x" % H["public"].encode() in net.proxy.got[-1][1]
    # (the module's other stack keeps asking for its host name: only the sandbox's b'q' counts)
    assert b"q" not in net.dns.datagrams[datagrams:]


def test_proxy_only_without_proxy_refuses_to_start(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("api_key = k\negress_proxy_only = true\nrun_dir = %s\n" % tmp_path)
    r = subprocess.run([os.path.join(conftest.builddir(), "sandcelld"), "--config", str(conf)],
                       capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "egress_proxy_only" in r.stderr, r


# ---- the host's own addresses -------------------------------------------------------------

# Addresses that play the host's public ones: in space the defaults open on 80 and 443, on
# an interface of the namespace sandcelld runs in (this one). Nothing here routes anywhere.
HOST_PUBLIC = ["93.184.216.34", "2606:4700:4700::1111"]
HOST_PUBLIC_LATER = "93.184.216.35"


def _ns_addr(net, verb, addr):
    args = ["-n", net.ns.name, "addr", verb, addr + ("/128" if ":" in addr else "/32"), "dev", "h0"]
    if ":" in addr and verb == "add":
        args.append("nodad")
    netnsmod._ip(*args)


def _policy_installs(stack):
    return stack.log(100000).count('msg="egress policy installed"')


def test_the_hosts_own_addresses_are_denied(net):
    for a in HOST_PUBLIC:
        _ns_addr(net, "add", a)
    listeners = [net.listen(a, 443) for a in HOST_PUBLIC]
    try:
        s = net.stack()
        allowed = net.stack(egress_rule=["allow %s tcp 443" % a for a in HOST_PUBLIC])
        code = py("print(json.dumps([tcp(h, 443) for h in %r]))" % HOST_PUBLIC)
        for language_code in [code]:
            out, _ = report(s, language_code)
            assert out == ["EPERM", "EPERM"], out
            assert [l.count() for l in listeners] == [0, 0]
        node = ("const net = require('net'); const out = [];\n"
                "for (const h of %s) { const c = net.connect(443, h);\n"
                "  c.on('connect', () => { out.push('connected'); c.destroy(); done(); });\n"
                "  c.on('error', e => { out.push(e.code); done(); }); }\n"
                "function done() { if (out.length === 2) console.log(JSON.stringify(out.sort())); }\n"
                % json.dumps(HOST_PUBLIC))
        out, _ = report(s, node, "nodejs")
        assert out == ["EPERM", "EPERM"], out
        assert [l.count() for l in listeners] == [0, 0]
        # an operator's egress_rule still opens one: the listeners do receive then
        out, _ = report(allowed, code)
        assert out == ["connected hello", "connected hello"], out
        assert [l.count() for l in listeners] == [1, 1]

        # an address the host gets later is denied as soon as it appears
        installs = _policy_installs(s)
        _ns_addr(net, "add", HOST_PUBLIC_LATER)
        later = net.listen(HOST_PUBLIC_LATER, 443)
        deadline = time.monotonic() + 20
        while _policy_installs(s) == installs:
            assert time.monotonic() < deadline, s.log(20)
            time.sleep(0.1)
        assert "the host's addresses changed" in s.log(20)
        out, _ = report(s, py("print(json.dumps(tcp(%r, 443)))" % HOST_PUBLIC_LATER))
        assert out == "EPERM" and later.count() == 0, out
        conftest.assert_alive(s)
    finally:
        for a in HOST_PUBLIC + [HOST_PUBLIC_LATER]:
            netnsmod._ip("-n", net.ns.name, "addr", "del", a + ("/128" if ":" in a else "/32"),
                         "dev", "h0", check=False)


# ---- socket options that reach rarely used kernel code ------------------------------------

SOCKOPTS = py(r"""
import socket
out = {}
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
def attempt(name, s, level, opt, val):
    try:
        s.setsockopt(level, opt, val)
        out[name] = 'set'
    except OSError as e:
        out[name] = err(e)
attempt('UDP_ENCAP', u, socket.IPPROTO_UDP, 100, 1)
attempt('TCP_ULP', t, socket.IPPROTO_TCP, 31, b'tls')
attempt('SO_ATTACH_FILTER', u, socket.SOL_SOCKET, 26, b'\0' * 16)
attempt('IP_XFRM_POLICY', u, socket.IPPROTO_IP, 17, b'\0' * 64)
attempt('IPV6_ADDRFORM', t, socket.IPPROTO_IPV6, 1, 2)
# what the runtimes and their HTTP clients do set
attempt('TCP_NODELAY', t, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
attempt('SO_KEEPALIVE', t, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
attempt('SO_REUSEADDR', t, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
attempt('IPV6_V6ONLY', t, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
print(json.dumps(out))
raise SystemExit(3)  # a refused call explains a failure: the marker must say so
""")


def test_rare_socket_options_are_refused(net, stack):
    out, data = report(stack, SOCKOPTS)
    assert out == {"UDP_ENCAP": "EPERM", "TCP_ULP": "EPERM", "SO_ATTACH_FILTER": "EPERM",
                   "IP_XFRM_POLICY": "EPERM", "IPV6_ADDRFORM": "EPERM",
                   "TCP_NODELAY": "set", "SO_KEEPALIVE": "set", "SO_REUSEADDR": "set",
                   "IPV6_V6ONLY": "set"}, out
    assert data["exit_code"] == 3, data
    assert "error: operation not permitted" in conftest.error_lines(data), data
    conftest.assert_alive(stack)
