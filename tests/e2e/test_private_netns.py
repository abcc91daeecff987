"""Every network sandbox in a network namespace of its own (jail/netns_pool.c).

The whole stack runs inside a private namespace this module creates
(netns.py, no route out: its default route leads to h1, inside it), with no
`netns` option: sandcelld gives each network sandbox its own namespace, and
pasta connects it to this one, which plays "the host". 198.51.100.2, the
first address of h0, plays the host's public address; pasta copies it into
each sandbox's namespace.

The attacks: from the host's namespace a network sandbox could list the
host's and other tenants' sockets in /proc/net, and bind (squat) the host's
abstract unix names; two concurrent runs shared one namespace; a run could
find the previous run's connections. Each test checks the outcome on the
host side, not only what the sandbox says.
"""

import json
import os
import signal
import socket
import threading
import time

import pytest

import netns as netnsmod
from conftest import run, run_ok
from test_network import H, Net, net_in, report

HOST = netnsmod.Netns.HOST


class PrivateNet(Net):
    """test_network's hosts and listeners, plus one on the host's own address
    and a peer that accepts and never answers; stacks without `netns`."""

    def __init__(self, ns):
        super().__init__(ns)
        self.own = self.listen(HOST, 80)
        self.silent = socket.create_server((H["public2"], 8081))

    def stack(self, **config):
        config.setdefault("netns", "")  # none: every network sandbox gets its own
        config.setdefault("egress_rule", ["allow %s tcp 80" % H["public"],
                                          "allow %s tcp 8081" % H["public2"]])
        return super().stack(**config)

    def close(self):
        self.silent.close()
        return super().close()


@pytest.fixture(scope="module")
def pnet():
    ns = netnsmod.Netns("sc-pns").create(with_gateway=True)
    yield from net_in(ns, PrivateNet)


@pytest.fixture(scope="module")
def stack(pnet):
    return pnet.stack(max_workers=4)


def helpers_of(s, timeout=30):
    """sandcelld's children once the last run's jail init is gone: it is reaped off the
    answer's path, later still on a loaded host or a sanitized build."""
    deadline = time.monotonic() + timeout
    while len(children(s.sandcelld.pid)) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return children(s.sandcelld.pid)


def children(pid):
    """pid -> command name of the processes whose parent is pid, but for the
    Python zygotes (test_zygote.py covers those)."""
    found = {}
    for stat in os.listdir("/proc"):
        try:
            fields = open("/proc/%s/stat" % stat).read().rsplit(")", 1)[1].split()
            comm = open("/proc/%s/comm" % stat).read().strip()
            if stat.isdigit() and int(fields[1]) == pid and not comm.startswith("sandcell-zygot"):
                found[int(stat)] = comm
        except (OSError, IndexError, ValueError):
            continue
    return found


def gone(pids, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if os.path.exists("/proc/%d" % p)]:
            return True
        time.sleep(0.05)
    return False


def ns_inode(pid):
    return os.stat("/proc/%d/ns/net" % pid).st_ino


PY_LOOK = r"""
import json, os, time
def entries(kind):
    return [l.split()[1:3] for l in open('/proc/self/net/' + kind).readlines()[1:]]
time.sleep(%s)
print(json.dumps({'ns': os.stat('/proc/self/ns/net').st_ino,
                  'ifaces': sorted(l.split(':')[0].strip() for l in open('/proc/self/net/dev').readlines()[2:]),
                  'tcp': entries('tcp') + entries('tcp6'), 'unix': [l.split()[-1] for l in
                  open('/proc/self/net/unix').readlines()[1:]]}))
"""

NODE_LOOK = r"""
const fs = require('fs');
const rows = k => fs.readFileSync('/proc/self/net/' + k, 'utf8').trim().split('\n').slice(1);
setTimeout(() => console.log(JSON.stringify({ns: fs.statSync('/proc/self/ns/net').ino,
  ifaces: rows('dev').slice(1).map(l => l.split(':')[0].trim()).sort(),
  tcp: rows('tcp').concat(rows('tcp6')), unix: rows('unix')})), %s);
"""


def look(stack, language, delay=0):
    code = PY_LOOK % delay if language == "python3" else NODE_LOOK % int(delay * 1000)
    return report(stack, code, language)[0]


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_host_sockets_are_not_listed(pnet, stack, language):
    """/proc/net of a sandbox lists nothing of the host: not its listeners
    (nginx, ours), not its unix sockets (sandcelld's)."""
    host_unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = "\0sc-host-%s" % os.urandom(4).hex()
    host_unix.bind(name)
    host_unix.listen(1)
    try:
        out = look(stack, language)
    finally:
        host_unix.close()
    assert out["ns"] not in (ns_inode(stack.sandcelld.pid), pnet.ns.inode()), out
    assert out["ifaces"] == ["h0", "lo"], out   # pasta's tap, named like the host's interface
    assert out["tcp"] == [] and out["unix"] == [], out


def test_concurrent_runs_have_different_namespaces(pnet, stack):
    results = []

    def one(language):
        results.append(look(stack, language, delay=1.0)["ns"])

    threads = [threading.Thread(target=one, args=(l,)) for l in ("python3", "python3", "nodejs")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 3, results


def test_abstract_names_are_not_the_hosts(pnet, stack):
    """A sandbox that binds an abstract name (a stream socketpair can) holds
    it only in its own namespace: the host's daemon still gets the name."""
    name = "sc-squat-%s" % os.urandom(4).hex()
    code = ("import socket, time\n"
            "a, b = socket.socketpair()\n"
            "a.bind('\\0%s')\n"
            "print('bound', flush=True)\n"
            "time.sleep(2)\n" % name)
    done = []
    t = threading.Thread(target=lambda: done.append(run_ok(stack, "python3", code)))
    t.start()
    time.sleep(1.2)
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        host.bind("\0" + name)   # EADDRINUSE if the sandbox had taken the host's name
    finally:
        host.close()
        t.join()
    assert done and done[0]["stdout"] == "bound\n", done


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_traffic_leaves_through_pasta_under_the_policy(pnet, stack, language):
    """Allowed: the public listener gets the request. Denied: private, and
    the host's own address (pasta copies it into the namespace)."""
    counts = {l: l.count() for l in pnet.listeners}
    if language == "python3":
        code = ("import json, socket\n"
                "def tcp(h):\n"
                "    s = socket.socket()\n"
                "    s.settimeout(3)\n"
                "    try:\n"
                "        s.connect((h, 80)); s.sendall(b'GET /via-pasta HTTP/1.0\\r\\n\\r\\n')\n"
                "        return s.recv(100).decode().split('\\r\\n\\r\\n')[-1]\n"
                "    except OSError as e:\n"
                "        return e.errno\n"
                "print(json.dumps([tcp(h) for h in %r]))" % [H["public"], H["private"], HOST])
        out, _ = report(stack, code)
    else:
        code = ("const net = require('net');\n"
                "const tcp = h => new Promise(ok => { const s = net.connect(80, h, () => s.write('GET /via-pasta HTTP/1.0\\r\\n\\r\\n'));\n"
                "  let b = ''; s.on('data', d => b += d); s.on('end', () => ok(b.split('\\r\\n\\r\\n').pop()));\n"
                "  s.on('error', e => ok(e.code === 'EPERM' ? 1 : e.code)); });\n"
                "Promise.all(%s.map(tcp)).then(r => console.log(JSON.stringify(r)));" % json.dumps(
                    [H["public"], H["private"], HOST]))
        out, _ = report(stack, code, "nodejs")
    assert out == ["hello", 1, 1], out   # 1: EPERM from the egress policy
    assert pnet.public.count() == counts[pnet.public] + 1
    assert b"GET /via-pasta" in pnet.public.got[-1][1]
    assert pnet.private.count() == counts[pnet.private] and pnet.own.count() == counts[pnet.own]


def test_no_run_finds_the_previous_runs_connections(pnet):
    """The pool lends a namespace again to the next run: that run must not
    list the previous run's connections. The previous run closes first on a
    peer that never answers, which would leave its socket listed for a
    minute (FIN_WAIT2, then TIME_WAIT) but for the namespace's
    tcp_max_tw_buckets=0. (A namespace that still held a socket would be
    dropped, not lent; nothing a sandbox can do leaves one here.)"""
    s = pnet.stack(max_workers=1, warm_sandboxes=0)
    first = look(s, "python3")
    soil = ("import socket\n"
            "c = socket.create_connection((%r, 8081))\n"
            "c.sendall(b'x')\n"
            "c.close()\n"
            "print('closed')\n" % H["public2"])
    for _ in range(2):
        time.sleep(1.0)  # the sandbox is torn down and its namespace back in the pool
        assert run_ok(s, "python3", soil, enable_network=True)["stdout"] == "closed\n"
    time.sleep(1.0)
    after = look(s, "python3")
    assert after["ns"] == first["ns"], (first, after)   # lent again: the pool works
    assert after["tcp"] == [] and after["unix"] == [], after
    helpers = helpers_of(s)   # the namespace's holder and its pasta
    assert len(helpers) == 2 and [c for c in helpers.values() if c.startswith("pas")], helpers
    s.stop()
    assert not s.stop_problems, s.stop_problems
    assert gone(helpers), helpers   # nothing of it outlives the service


def test_nothing_outlives_a_killed_service(pnet):
    """SIGKILL leaves no time to clean up: pasta and the holder die with
    sandcelld all the same (their parent-death signal)."""
    s = pnet.stack(max_workers=1, warm_sandboxes=0)
    look(s, "nodejs")
    helpers = helpers_of(s)
    assert len(helpers) == 2, helpers
    s.restart_sandcelld(signal.SIGKILL)   # the new one removes the old one's cgroups
    assert gone(helpers), helpers
    assert look(s, "python3")["tcp"] == []   # and makes namespaces of its own
    s.stop()
    assert not s.stop_problems, s.stop_problems


@pytest.mark.parametrize("pasta", ["/nonexistent/pasta", "/bin/false"])
def test_without_pasta_network_runs_are_refused(pnet, pasta):
    """Fail closed: no private namespace, no network run (and a clear
    error); runs without network are unaffected."""
    s = pnet.stack(pasta_path=pasta, max_workers=1, warm_sandboxes=0)
    status, body = run(s, "python3", "print(1)", enable_network=True)
    assert status == 500 and body["code"] == -500, body   # what any refused setup answers
    assert "network is not available" in body["message"] and pasta in body["message"], body
    assert run_ok(s, "python3", "print(1)", enable_network=False)["stdout"] == "1\n"
    s.stop()
    assert not s.stop_problems, s.stop_problems
