"""Private network namespaces for the network tests (TESTING.md's recipe).

A Netns is created with `ip netns add`, has `lo` up and a veth pair h0/h1
whose both ends stay inside it, with the addresses that play remote hosts
on h0. It has no route out: `check_isolated()` insists that no interface but
lo, h0 and h1 exists in it and that it has no default route, so a packet
whose block failed can only reach the namespace's own listeners.

    ns = Netns("sc-test").create()
    with ns.entered():       # this thread (and what it starts) runs inside
        ...
    ns.delete()              # also on failure: callers use try/finally or a fixture

`entered()` moves only the calling thread (setns(2) on it); subprocesses
and threads started from that thread meanwhile inherit the namespace, which
is how the network tests run nginx, sandcelld and the listeners inside it
without `ip netns exec` (which would remount /sys and hide the cgroups).

Served is the thread that serves a socket of a host the tests play (a listener,
a DNS server, a sniffer) until close().

Standard library only.
"""

import atexit
import contextlib
import ctypes
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000

# name -> address on h0 (IPv4 /32s; nothing here is routable outside)
HOSTS = {
    "private": "10.1.2.3",
    "metadata": "169.254.169.254",
    "public": "198.51.100.7",
    "public2": "198.51.100.8",
    "dns": "198.51.100.53",
    "proxy": "198.51.100.80",
}

_libc = ctypes.CDLL(None, use_errno=True)
_live = []


@atexit.register
def _delete_live():
    for ns in list(_live):
        ns.delete()


def _ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), check=check, capture_output=True, text=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


class Netns:
    def __init__(self, prefix="sc-e2e"):
        self.name = "%s-%d-%s" % (prefix, os.getpid(), os.urandom(3).hex())
        self.path = "/run/netns/" + self.name
        self.created = False

    # with_gateway: a default route via this address on h0 (pasta needs one to
    # copy); packets to it go out h0 and arrive at h1, in this namespace,
    # which forwards nothing: still no route out
    GATEWAY = "198.51.100.1"
    # and then, first on h0, the address that plays the host's own public one (pasta copies
    # the first address of the interface with the default route; it needs the gateway
    # within reach of it)
    HOST = "198.51.100.2"

    def create(self, hosts=HOSTS, with_gateway=False):
        self.with_gateway = with_gateway
        _ip("netns", "add", self.name)
        self.created = True
        _live.append(self)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "add", "h0", "type", "veth", "peer", "name", "h1")
            for addr in ([self.HOST] if with_gateway else []) + list(hosts.values()):
                _ip("-n", self.name, "addr", "add", addr + "/32", "dev", "h0")
            _ip("-n", self.name, "link", "set", "h0", "up")
            _ip("-n", self.name, "link", "set", "h1", "up")
            if with_gateway:
                _ip("-n", self.name, "route", "add", "default", "via", self.GATEWAY, "dev", "h0", "onlink")
            self.check_isolated()
        except BaseException:
            self.delete()
            raise
        return self

    def check_isolated(self):
        """Raises unless the namespace has only lo/h0/h1 and no default route
        (but the one via GATEWAY on h0, if it asked for it) and forwards nothing."""
        links = _ip("-n", self.name, "-o", "link", "show").stdout
        names = sorted(l.split(":")[1].strip().split("@")[0] for l in links.splitlines())
        if names != ["h0", "h1", "lo"]:
            raise RuntimeError("namespace %s has interfaces %s" % (self.name, names))
        for fam in ("-4", "-6"):
            r = _ip(fam, "-n", self.name, "route", "show", "default").stdout.strip()
            expected = "default via %s dev h0 onlink" % self.GATEWAY if fam == "-4" and self.with_gateway else ""
            if r != expected:
                raise RuntimeError("namespace %s has a default route: %s" % (self.name, r))
        forwarding = _ip("netns", "exec", self.name, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
        if forwarding != "0":
            raise RuntimeError("namespace %s forwards packets" % self.name)

    def inode(self):
        return os.stat(self.path).st_ino

    def contains(self, pid="self"):
        """True if the process (or this thread, for "self"/"thread-self") is inside."""
        return os.stat("/proc/%s/ns/net" % pid).st_ino == self.inode()

    @contextlib.contextmanager
    def entered(self):
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                if not self.contains("thread-self"):
                    raise RuntimeError("setns did not move this thread into %s" % self.name)
                yield self
            finally:
                _setns(own)
        finally:
            os.close(own)
            os.close(target)

    def delete(self):
        if self.created:
            _ip("netns", "del", self.name, check=False)
            self.created = False
        if self in _live:
            _live.remove(self)


class Served:
    """A socket served by a daemon thread until close(): serve_one() again and again;
    its timeout (0.2 s) lets the thread see close(). The thread is started from the test
    thread, so it lives in the test namespace."""

    def serve(self, sock):
        self.sock = sock
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                self.serve_one()
            except (socket.timeout, OSError):
                continue

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()
