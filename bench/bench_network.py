#!/usr/bin/python3
"""sandcell network benchmark: what the eBPF egress policy costs, side by side.

  policy       egress_assign() + egress_unassign() per run (bench_egress.c, built here
               against the build's libegress.a), in µs, next to a whole network run
  connect      N TCP connects (socket + connect + close) to a listener, timed inside
               the program: the program run bare vs the same program in a network
               sandbox under the policy (seccomp and the eBPF hooks on every call)
  run          POST /v1/sandbox/run of print(1) with enable_network true vs false

Everything runs inside a private network namespace this script creates (no route
out; the listener plays 198.51.100.7, allowed by an egress_rule) and deletes.

    sudo bench/bench_network.py --builddir build [--connects 2000] [--runs 100]

Timing is measured here, never asserted in tests: the machines are shared and noisy.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import netns as netnsmod  # noqa: E402
from stack import Stack, cgroup2_mount, proc_cgroups  # noqa: E402

PUBLIC = netnsmod.HOSTS["public"]

CONNECTS = """
import json, socket, time
n = %(n)d
total, conn = [], []
for i in range(n):
    t0 = time.perf_counter_ns()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t1 = time.perf_counter_ns()
    s.connect((%(host)r, 80))
    t2 = time.perf_counter_ns()
    s.close()
    total.append((t2 - t0) / 1000)
    conn.append((t2 - t1) / 1000)
total.sort(); conn.sort()
print(json.dumps({'socket_connect_median_us': total[n // 2], 'connect_median_us': conn[n // 2],
                  'connect_p90_us': conn[int(n * 0.9)]}))
"""


def build_bench_egress(builddir, srcdir, out):
    libs = subprocess.run(["pkg-config", "--libs", "libbpf"], capture_output=True,
                          text=True).stdout.split() or ["-lbpf"]
    subprocess.run(["cc", "-O2", "-I", srcdir, "-I", builddir,
                    os.path.join(srcdir, "bench", "bench_egress.c"),
                    os.path.join(builddir, "libegress.a")] + libs + ["-o", out], check=True)


def policy_cost(builddir, srcdir, n, tmp):
    exe = os.path.join(tmp, "bench_egress")
    build_bench_egress(builddir, srcdir, exe)
    own = proc_cgroups(os.getpid()).get("", "/")
    parent = os.path.normpath("%s/%s/bench-egress-%d" % (cgroup2_mount(), own, os.getpid()))
    pins = "/sys/fs/bpf/bench_egress_%d" % os.getpid()
    os.mkdir(parent)
    try:
        r = subprocess.run([exe, parent, pins, str(n)], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)
    finally:
        os.rmdir(parent)


class Listener(threading.Thread):
    def __init__(self, host, port):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1024)
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
                c.close()
            except OSError:
                return


def post_run(stack, code, network):
    body = json.dumps({"language": "python3", "code": code, "enable_network": network}).encode()
    req = urllib.request.Request(stack.url + "/v1/sandbox/run", data=body, method="POST",
                                 headers={"X-Api-Key": stack.key, "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=120) as r:
        data = json.loads(r.read())
    assert data["code"] == 0, data
    return data["data"]


def median_ms(fn, runs):
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--builddir", required=True)
    p.add_argument("--srcdir", default=os.path.join(HERE, ".."))
    p.add_argument("--connects", type=int, default=2000)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--assigns", type=int, default=20000)
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_network.py needs root")
    builddir, srcdir = os.path.abspath(a.builddir), os.path.abspath(a.srcdir)
    tmp = tempfile.mkdtemp(prefix="sandcell-bench-net-")
    ns = netnsmod.Netns("sc-bench").create()
    stack = None
    try:
        policy = policy_cost(builddir, srcdir, a.assigns, tmp)
        with ns.entered():
            Listener(PUBLIC, 80)
            stack = Stack(builddir, srcdir=srcdir, name="bench", netns=ns.path,
                          egress_rule="allow %s tcp 80" % PUBLIC, dns_servers=PUBLIC,
                          max_workers=2).start()
            code = CONNECTS % {"n": a.connects, "host": PUBLIC}
            bare = json.loads(subprocess.run(["/usr/bin/python3", "-I", "-c", code], check=True,
                                             capture_output=True, text=True,
                                             env={"PATH": "/usr/bin:/bin"}).stdout)
            jailed = json.loads(post_run(stack, code, True)["stdout"])
            run_net = median_ms(lambda: post_run(stack, "print(1)", True), a.runs)
            run_off = median_ms(lambda: post_run(stack, "print(1)", False), a.runs)
    finally:
        if stack:
            stack.stop()
        ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)

    print("policy per run (n=%d)           median      p90" % policy["n"])
    print("  egress_assign              %8.2f µs %8.2f µs" % (policy["assign_median_us"], policy["assign_p90_us"]))
    print("  egress_unassign            %8.2f µs %8.2f µs" % (policy["unassign_median_us"], policy["unassign_p90_us"]))
    both = policy["assign_median_us"] + policy["unassign_median_us"]
    print("  both, vs a network run     %8.2f µs of %.2f ms = %.2f%%" % (both, run_net, both / run_net / 10))
    print()
    print("connect (n=%d, median)          bare   sandboxed   ratio" % a.connects)
    for k, label in (("connect_median_us", "connect"), ("connect_p90_us", "connect p90"),
                     ("socket_connect_median_us", "socket + connect")):
        print("  %-24s %8.1f µs %8.1f µs  %5.2fx" % (label, bare[k], jailed[k], jailed[k] / bare[k]))
    print()
    print("run print(1) (n=%d, median)     offline   network   ratio" % a.runs)
    print("  POST /v1/sandbox/run       %8.2f ms %8.2f ms  %5.2fx" % (run_off, run_net, run_net / run_off))


if __name__ == "__main__":
    main()
