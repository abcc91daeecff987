#!/usr/bin/python3
"""sandcell's benchmark: runs per second, latency, CPU and memory under load, side by side
with the bare interpreter and bubblewrap, in one sitting. `./dev bench` builds and runs it:

    ./dev bench [--seconds 5] [--max-workers 8] [--max-requests 100] [--warm 2] [--warm-max 8]
                [--zygote on|off] [--network on|off] [--only SUBSTRING]
                [--data] [--preload "MODULES"]
    (or, built already: /usr/bin/python3 bench/bench.py --builddir build ...)

What runs (bench/programs.py): python3 `print(1)`, Dify's python3 runner template with
json/base64, a Dify jinja2 template, python3 `import requests`, nodejs `console.log(1)`;
with --data also `import numpy`, `import pandas` and a Dify code node drawing a chart with
numpy, pandas and matplotlib (Debian's packages; --preload sets the zygote's python_preload,
e.g. "json base64 jinja2 requests httpx numpy pandas matplotlib.pyplot").
For each program, one row each of:
  bare      c client threads each spawning `python3 -I -c PROGRAM` / `node -e PROGRAM`
            (fork + exec + wait) back to back, c = 1 and 8
  bwrap     the same under `bwrap --unshare-all --ro-bind /usr /usr ...` at c = 8, when
            /usr/bin/bwrap exists (Debian's bubblewrap; ./dev bench installs it)
  sandcell  c client threads each POSTing /v1/sandbox/run through a real nginx with the
            shipped nginx files (rate limits included) to a real sandcelld, one kept-alive
            HTTP connection per thread: c = 1 back to back, c = 1 with 100 ms before each
            request, c = 8 and c = 64; enable_network as Dify sends it (true), each
            network sandbox in a namespace of its own connected by pasta to the bench's
            namespace, which plays the host and has no route out (tests/e2e/netns.py)
Every row lasts --seconds (requests in flight at the end are finished and counted, so a
c=64 row lasts about one p50 longer). A line per row goes to stderr as it ends; the table
comes at the end, on stdout.

Columns: ok / refused (HTTP 429 or 503 with the API's envelope) / failed (anything else,
a run whose stdout or exit status is wrong included); p50/p95/p99 of the ok runs; ok runs
per second; machine-wide CPU per ok run (the delta of /proc/stat over the row: nginx,
sandcelld, jails, interpreters and this client, on a shared machine the steadiest
figure); sandcelld's largest RSS during the row; and ratios against the baselines of the
same sitting: p50 and CPU against bare at the same concurrency (c=64 against bare c=8,
the 100 ms row against bare c=1), runs/s against bare sequential (c=1) and against bwrap
(c=8; c=64 against it too; none for the rows whose rate the 100 ms pause sets). Below the
table: sandcelld's RSS idle, and the unique memory (USS) and PSS of the sandbox processes
(bench/procmem.py) idle (the warm pools full) and under load (sampled once a second during an
untimed c=8 pass after each program's rows, as reading smaps would inflate the rows' CPU;
each process as last seen), per kind of process.

sandcelld runs with the test suite's configuration (tests/e2e/stack.py) but
--max-workers (8) and --max-requests (100), so that c=64 is queued rather than refused by
sandcelld; refusals beyond max_workers are allowed (and counted), none at c <= max_workers
are expected. Timing is measured here, never asserted in tests.
"""
import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import clients  # noqa: E402
import load  # noqa: E402
import netns as netnsmod  # noqa: E402
import procmem  # noqa: E402
from programs import PROGRAMS  # noqa: E402
from stack import Stack, is_warm  # noqa: E402

BARE_LEVELS = (1, 8)
BWRAP_LEVELS = (8,)
SANDCELL_ROWS = ((1, 0), (1, 100), (8, 0), (64, 0))   # (concurrency, ms before each request)
MEMORY_PASS_SECONDS = 3
UID_BASE = 1800000   # below ./dev run's 1900000 and the test suite's 2000000+


class Sampler(threading.Thread):
    """During a sandcell row: sandcelld's largest RSS; with memory (a dict to fill), the
    sandbox processes' memory too, which costs CPU enough to be kept out of timed rows."""

    def __init__(self, stack, memory=None):
        super().__init__(daemon=True)
        self.stack, self.memory = stack, memory
        self.rss_max = 0
        self.done = threading.Event()

    def run(self):
        n = 0
        while not self.done.wait(0.25):
            self.rss_max = max(self.rss_max, procmem.rss_kib(self.stack.sandcelld.pid) or 0)
            n += 1
            if self.memory is not None and n % 4 == 0:
                self.memory.update(procmem.sandbox_memory(
                    self.stack.cgroup_parent(), self.stack.sandcelld.pid))

    def stop(self):
        self.done.set()
        self.join()
        return self.rss_max


def warm_count(stack):
    parent = stack.cgroup_parent()
    if not os.path.isdir(parent):
        return 0
    return sum(1 for d in os.listdir(parent) if is_warm(os.path.join(parent, d)))


def settle(stack, warm, timeout=20):
    """Waits until the warm pools are full again (2 languages x with/without network)."""
    deadline = time.monotonic() + timeout
    while warm_count(stack) < 4 * warm and time.monotonic() < deadline:
        time.sleep(0.1)


class Row:
    def __init__(self, program, how, concurrency, gap_ms, result, rss_kib=None):
        self.program, self.how = program, how
        self.c, self.gap_ms = concurrency, gap_ms
        self.r = result
        self.rss_kib = rss_kib


def baseline_rows(program, seconds):
    rows = []
    wrappers = [("bare", (), BARE_LEVELS)]
    if clients.have_bwrap():
        wrappers.append(("bwrap", clients.BWRAP, BWRAP_LEVELS))
    for how, wrapper, levels in wrappers:
        spawn = clients.Spawner(program, wrapper)
        spawn()   # the page cache
        for c in levels:
            rows.append(progress(Row(program, how, c, 0, load.run(lambda: spawn, c, seconds))))
    return rows


def sandcell_rows(stack, program, args, memory):
    def make_client():
        return clients.SandcellClient(*_hostport(stack), stack.key, program, args.network == "on")

    rows = []
    for c, gap in SANDCELL_ROWS:
        one_run(make_client())   # the interpreter's files in the page cache
        settle(stack, args.warm)
        sampler = Sampler(stack)
        sampler.start()
        result = load.run(make_client, c, args.seconds, gap)
        rows.append(progress(Row(program, "sandcell", c, gap, result, sampler.stop())))
    # memory under load: an untimed c=8 pass of its own (reading smaps costs CPU)
    sampler = Sampler(stack, memory)
    sampler.start()
    load.run(make_client, 8, MEMORY_PASS_SECONDS)
    sampler.stop()
    return rows


def progress(row):
    """One line per row on stderr while the bench runs (the table comes at the end)."""
    print("bench: %-36s %-8s c=%-2d gap=%-3d %4d ok %5d refused %3d failed %6.1f runs/s"
          % (row.program.name, row.how, row.c, row.gap_ms, row.r.ok, row.r.refused,
             row.r.failed, row.r.runs_per_s), file=sys.stderr, flush=True)
    return row


def measure(stack, args, programs):
    """The idle figures, then every program's rows."""
    for program in programs:
        one_run(clients.SandcellClient(*_hostport(stack), stack.key, program, args.network == "on"))
    settle(stack, args.warm)
    time.sleep(1)
    idle = {"rss_kib": procmem.rss_kib(stack.sandcelld.pid),
            "memory": procmem.sandbox_memory(stack.cgroup_parent(), stack.sandcelld.pid)}
    rows, loaded = [], {}
    for program in programs:
        rows += baseline_rows(program, args.seconds)
        rows += sandcell_rows(stack, program, args, loaded)
    return idle, loaded, rows


def one_run(client):
    client()
    client.close()


def _hostport(stack):
    host, port = stack.listen.rsplit(":", 1)
    return host, int(port)


# ---- the table --------------------------------------------------------------------------
def fmt(x, spec="%.1f"):
    return "–" if x is None else spec % x


def ratio(a, b):
    return "–" if a is None or not b else "%.2f" % (a / b)


def baseline_for(rows, row, how, concurrency):
    for b in rows:
        if b.program is row.program and b.how == how and b.c == concurrency:
            return b
    return None


def print_table(rows):
    print("| program | how | c | gap ms | ok | refused | failed | p50 ms | p95 ms | p99 ms |"
          " runs/s | CPU ms/run | sandcelld RSS MiB | p50 ÷ bare | runs/s ÷ bare c=1 |"
          " CPU ÷ bare | runs/s ÷ bwrap |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        r = row.r
        same_c = 1 if row.gap_ms else min(row.c, max(BARE_LEVELS))
        bare = baseline_for(rows, row, "bare", same_c)
        seq = baseline_for(rows, row, "bare", 1)
        bwrap = baseline_for(rows, row, "bwrap", same_c)
        mine = row.how == "bare"
        print("| %s | %s | %d | %d | %d | %d | %d | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |"
              % (row.program.name, row.how, row.c, row.gap_ms, r.ok, r.refused, r.failed,
                 fmt(r.p(50)), fmt(r.p(95)), fmt(r.p(99)), r.runs_per_s,
                 fmt(r.cpu_ms_per_run), fmt(row.rss_kib and row.rss_kib / 1024),
                 "" if mine else ratio(r.p(50), bare and bare.r.p(50)),
                 "" if mine else "–" if row.gap_ms else
                 ratio(r.runs_per_s, seq and seq.r.runs_per_s),
                 "" if mine else ratio(r.cpu_ms_per_run, bare and bare.r.cpu_ms_per_run),
                 "" if row.how != "sandcell" else "–" if row.gap_ms else
                 ratio(r.runs_per_s, bwrap and bwrap.r.runs_per_s)))


def print_memory(title, found):
    print()
    print("%s: | where | comm | exe | processes | median USS MiB | median PSS MiB |" % title)
    groups = procmem.by_kind(found)
    for (where, comm, exe), (n, uss, pss) in sorted(groups.items()):
        print("    | %s | %s | %s | %d | %.1f | %.1f |" % (where, comm, exe, n, uss, pss))
    if not groups:
        print("    (no sandbox processes found)")


def print_notes(rows, args, idle):
    print()
    print("sandcelld RSS idle: %s MiB" % fmt(idle["rss_kib"] and idle["rss_kib"] / 1024))
    for row in rows:
        if row.how == "sandcell" and row.r.refused and row.c <= args.max_workers:
            print("NOTE: %s c=%d: %d refused at c <= max_workers (%d)"
                  % (row.program.name, row.c, row.r.refused, args.max_workers))
        for why, n in sorted(row.r.why_failed.items()):
            print("FAILED %s %s c=%d: %d x %s" % (row.program.name, row.how, row.c, n, why))


def main():
    ap = argparse.ArgumentParser(description="sandcell under load, next to the bare interpreter")
    ap.add_argument("--builddir", default="build")
    ap.add_argument("--seconds", type=float, default=5, help="length of each row [5]")
    ap.add_argument("--max-workers", type=int, default=8, help="sandcelld's max_workers [8]")
    ap.add_argument("--max-requests", type=int, default=100, help="sandcelld's max_requests [100]")
    ap.add_argument("--warm", type=int, default=2,
                    help="warm_sandboxes (0: every run builds its jail first) [2]")
    ap.add_argument("--warm-max", type=int, default=8,
                    help="warm_sandboxes_max, as the package's configuration sets it [8]")
    ap.add_argument("--zygote", choices=("on", "off"), default="on",
                    help="Python sandboxes fork from the zygote, or start cold [on]")
    ap.add_argument("--network", choices=("on", "off"), default="on",
                    help="enable_network in the requests [on, as Dify sends them]")
    ap.add_argument("--only", help="only the programs whose name contains this")
    ap.add_argument("--data", action="store_true",
                    help="also the programs that use Debian's numpy, pandas and matplotlib")
    ap.add_argument("--preload", help="python_preload for the zygote [sandcelld's default]")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.py needs root (nginx master, sandcelld jails, a network namespace)")
    programs = [p for p in PROGRAMS if (not args.only or args.only in p.name) and
                (args.data or not p.data)]

    print("sandcell bench: %d CPUs, Linux %s; %g s per row; max_workers %d, max_requests %d, "
          "warm_sandboxes %d..%d, zygote %s, enable_network %s; the shipped nginx files; "
          "load average %.1f"
          % (os.cpu_count(), os.uname().release, args.seconds, args.max_workers,
             args.max_requests, args.warm, max(args.warm, args.warm_max), args.zygote,
             args.network, os.getloadavg()[0]), flush=True)
    started = time.monotonic()
    ns = netnsmod.Netns("sc-bench").create(with_gateway=True)
    try:
        with ns.entered():
            stack = Stack(args.builddir, name="bench", netns="", shipped_rates=True,
                          uid_base=UID_BASE, max_workers=args.max_workers,
                          max_requests=args.max_requests, warm_sandboxes=args.warm,
                          warm_sandboxes_max=max(args.warm, args.warm_max),
                          **({} if args.zygote == "on" else {"zygote_path": ""}),
                          **({} if args.preload is None else {"python_preload": args.preload}))
            stack.start()
            try:
                idle, loaded, rows = measure(stack, args, programs)
            finally:
                stack.stop()
    finally:
        ns.delete()
    print()
    print_table(rows)
    print_memory("sandbox processes, idle", idle["memory"])
    print_memory("sandbox processes, under load", loaded)
    print_notes(rows, args, idle)
    print("%.0f s in all; load average at the end %.1f (other work on the machine inflates "
          "the CPU figures)" % (time.monotonic() - started, os.getloadavg()[0]))
    for p in stack.stop_problems:
        print("warning: %s" % p)


if __name__ == "__main__":
    main()
