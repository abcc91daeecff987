#!/usr/bin/python3
"""sandcell under load: runs per second and machine-wide CPU per run, side by side with the
bare interpreter, back to back (c=1) and concurrent (c=N).

    sudo bench/bench_load.py --builddir build [--seconds 10] [--concurrency 1,4]

For each language and concurrency, in one sitting:
  bare      c threads each spawning the interpreter (fork + exec + wait) back to back
  sandcell  c threads each POSTing /v1/sandbox/run back to back through a real nginx and
            sandcelld (enable_network as Dify sends it: true; each network sandbox in a
            namespace of its own that pasta connects to the bench's namespace, which has no
            route out)
CPU per run is the delta of /proc/stat (all CPUs, user + system + ...) over the interval
divided by the runs: the steadiest figure on a shared machine. Ratios are sandcell / bare.
Timing is measured here, never asserted in tests.
"""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from stack import Stack  # noqa: E402
import netns as netnsmod  # noqa: E402

PROGRAMS = {
    "python3": ("print(1)", ["/usr/bin/python3", "-I", "-c", "print(1)"]),
    "nodejs": ("console.log(1)", ["/usr/bin/node", "-e", "console.log(1)"]),
}
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / TICK


def load(fn, concurrency, seconds):
    """Runs fn back to back in `concurrency` threads for `seconds`; returns
    (runs, runs/s, median ms, p90 ms, CPU ms per run)."""
    stop = time.monotonic() + seconds
    samples, lock = [], threading.Lock()

    def worker():
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            fn()
            with lock:
                samples.append((time.perf_counter() - t0) * 1000)

    fn()  # warm caches and pools
    cpu0, t0 = busy_seconds(), time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - t0, busy_seconds() - cpu0
    samples.sort()
    n = len(samples)
    return n, n / wall, statistics.median(samples), samples[int(n * 0.9) - 1], cpu * 1000 / n


def bare(argv):
    def run():
        subprocess.run(argv, env=CLEAN_ENV, stdout=subprocess.DEVNULL, check=True)
    return run


def sandcell(stack, language, code, network):
    body = json.dumps({"language": language, "code": code, "enable_network": network}).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def run():
        req = urllib.request.Request(stack.url + "/v1/sandbox/run", data=body, method="POST",
                                     headers={"X-Api-Key": stack.key,
                                              "Content-Type": "application/json"})
        try:
            with opener.open(req, timeout=60) as r:
                out = json.loads(r.read())
        except urllib.error.HTTPError as e:  # say why, not only the status
            raise RuntimeError("HTTP %d: %s" % (e.code, e.read()[:500])) from None
        if out.get("code") != 0 or out["data"]["exit_code"] != 0:
            raise RuntimeError(out)
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default="build")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--max-workers", type=int, default=4)
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    # everything runs inside a namespace with no route out (its default route leads to
    # h1, inside it), which plays the host: network sandboxes get namespaces of their own
    # that pasta connects to it, as in a shipped installation
    ns = netnsmod.Netns("sc-bench").create(with_gateway=True)
    rows = []
    try:
        with ns.entered():
            stack = Stack(args.builddir, netns="", max_workers=args.max_workers,
                          max_requests=100).start()
            try:
                for language, (code, argv) in PROGRAMS.items():
                    for c in levels:
                        b = load(bare(argv), c, args.seconds)
                        for network in (True, False):
                            s = load(sandcell(stack, language, code, network), c, args.seconds)
                            rows.append((language, c, network, b, s))
            finally:
                stack.stop()
    finally:
        ns.delete()
    print("| program | c | network | bare runs/s | sandcell runs/s | ratio | bare median ms |"
          " sandcell median (p90) ms | bare CPU ms/run | sandcell CPU ms/run | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for language, c, network, b, s in rows:
        print("| %s `%s` | %d | %s | %.1f | %.1f | %.2f | %.1f | %.1f (%.1f) | %.1f | %.1f | %.2f |" % (
            language, PROGRAMS[language][0], c, "on" if network else "off", b[1], s[1],
            s[1] / b[1], b[2], s[2], s[3], b[4], s[4], s[4] / b[4]))


if __name__ == "__main__":
    main()
