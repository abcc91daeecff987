"""Load: `concurrency` client threads, each sending one request after another for a while,
optionally pausing before each; what came back, how long it took, and what the whole
machine spent on it.

A client is made per thread (make_client()) and called once per request; it returns an
outcome, "ok", "refused" or "failed: <why>". Latencies are those of ok runs. CPU is the
delta of /proc/stat's busy time (all CPUs, every state but idle and iowait) over the
interval, divided by the ok runs: the steadiest figure on a shared machine, and it counts
everything a run costs (nginx, sandcelld, the jail, the interpreter, this client).
"""
import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / TICK


def percentile(sorted_ms, q):
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not sorted_ms:
        return None
    rank = max(1, -(-len(sorted_ms) * q // 100))  # ceil(n * q / 100)
    return sorted_ms[int(rank) - 1]


class Result:
    def __init__(self):
        self.ok = 0
        self.refused = 0
        self.failed = 0
        self.why_failed = {}   # reason -> count
        self.latencies_ms = []
        self.wall = 0.0
        self.cpu = 0.0

    def add(self, outcome, ms):
        if outcome == "ok":
            self.ok += 1
            self.latencies_ms.append(ms)
        elif outcome == "refused":
            self.refused += 1
        else:
            self.failed += 1
            self.why_failed[outcome] = self.why_failed.get(outcome, 0) + 1

    def p(self, q):
        return percentile(sorted(self.latencies_ms), q)

    @property
    def runs_per_s(self):
        return self.ok / self.wall if self.wall else 0.0

    @property
    def cpu_ms_per_run(self):
        return self.cpu * 1000 / self.ok if self.ok else None


def run(make_client, concurrency, seconds, gap_ms=0):
    """Runs the load and returns a Result. Requests in flight at the deadline are finished
    and counted; the interval ends when the last one is answered."""
    result, lock = Result(), threading.Lock()
    deadline = [0.0]

    def worker(client):
        while time.monotonic() < deadline[0]:
            if gap_ms:
                time.sleep(gap_ms / 1000)
            t0 = time.perf_counter()
            outcome = client()
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                result.add(outcome, ms)

    clients = [make_client() for _ in range(concurrency)]
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    cpu0, t0 = busy_seconds(), time.monotonic()
    deadline[0] = t0 + seconds
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall = time.monotonic() - t0
    result.cpu = busy_seconds() - cpu0
    for c in clients:
        getattr(c, "close", lambda: None)()
    return result
