#!/usr/bin/python3
"""The load-and-soak test: a real stack under 64 keep-alive clients for SECONDS, then the
same stack idle again must hold no more than it held before.

    ./dev soak [SECONDS]        (default 120; `./dev soak 3600` for the long one)
    /usr/bin/python3 tests/soak/soak.py --builddir build [SECONDS] [--clients N] [--seed N]

Theory of operation
-------------------
1. A private network namespace (tests/e2e/netns.py, no route out) for the network
   sandboxes, and listeners on 127.0.0.1:PORT in it and on the host: the refused kinds
   connect there, and no connection may arrive.
2. A Stack (tests/e2e/stack.py: real nginx with the shipped files, real sandcelld) with
   small limits: 4 workers, max_requests 16 (so 64 clients overrun it and most requests
   get the 503 envelope), worker_timeout mix.TIMEOUT, 128 MiB of memory, 64 KiB of output.
3. Warm-up: each kind of mix.py once, one after another (first use of every code path),
   then the load of step 4 for a tenth of SECONDS (5 to 60 s: every FastCGI thread and
   malloc arena has served). Then, idle with the warm pools full, the "before" counts
   (resources.py). The warm-up's answers are checked and counted like the soak's.
4. The soak: CLIENTS threads, each with one persistent http.client connection, draw kinds
   by weight and POST them until the time is up; a client waits a little after a 503, as a
   polite client would. Every answer is checked: a 200 with the right data for its kind
   (mix.py), its own token in it and no other token; or exactly the 503 envelope of
   API.md. Anything else (another status, another body, a lost connection, a foreign or
   missing token, a wrong marker) is a failure.
5. When every client has its last answer: wait (bounded) until the stack is idle with its
   warm pools full again, then the "after" counts; any growth is a failure.
6. Stop the stack (what it had to clean up is a failure too), print the summary, exit 1 on
   any failure.

Nothing here asserts a time: latencies are printed, not judged. The only bound is the HTTP
timeout against a hung service.

Standard library only; root (the stack's jails, nginx's master).
"""

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))
sys.path.insert(0, HERE)

import mix  # noqa: E402
import netns as netnsmod  # noqa: E402
import resources  # noqa: E402
import stack as stackmod  # noqa: E402

CLIENTS = 64
MAX_WORKERS = 4
MAX_REQUESTS = 16
WARM = 2                  # warm sandboxes per pool: python3 and nodejs, with and without network
HTTP_TIMEOUT = 90         # against a hung service only
BACKOFF_503 = 0.2         # seconds a client waits after a 503
SETTLE_TIMEOUT = 120      # how long the stack may take to be idle with full pools again
ENVELOPE_503 = b'{"code":-503,"message":"Too many requests","data":null}'
MAX_SHOWN = 20            # failures printed in full


class Listener(netnsmod.Served):
    """A TCP listener on 127.0.0.1:port (in the namespace of the calling thread) that
    counts the connections it accepts."""

    def __init__(self, port):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        self.accepted = 0
        self.serve(sock)

    def serve_one(self):
        c, _ = self.sock.accept()
        self.accepted += 1
        c.close()


class Tally:
    """What the clients saw, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.runs = self.busy = 0
        self.failures = []
        self.latency = {}        # outcome -> [seconds]
        self.issued = set()      # every token sent so far

    def issue(self, token):
        with self.lock:
            self.issued.add(token)

    def record(self, outcome, seconds, status, failure=None):
        with self.lock:
            self.requests += 1
            self.busy += status == 503
            self.runs += status == 200
            self.latency.setdefault(outcome, []).append(seconds)
            if failure:
                self.failures.append(failure)

    def fail(self, text):
        with self.lock:
            self.failures.append(text)

    def is_issued(self, token):
        with self.lock:
            return token in self.issued


def judge_run(kind, token, status, ctype, raw, tally):
    """None if the answer is right for kind, else why not."""
    if status == 503:
        if raw != ENVELOPE_503 or ctype != "application/json":
            return "503 with another body: %r (%s)" % (raw[:200], ctype)
        return None
    if status != 200:
        return "HTTP %d: %r" % (status, raw[:300])
    try:
        body = json.loads(raw)
    except ValueError:
        return "200 whose body is not JSON: %r" % raw[:300]
    if body.get("code") != 0 or body.get("message") != "success" or ctype != "application/json":
        return "200 without the success envelope: %r" % raw[:300]
    data = body["data"]
    seen = set(mix.TOKEN.findall(data["stdout"] + data["stderr"] + data["error"]))
    foreign = seen - {token}
    if foreign:
        known = sum(1 for t in foreign if tally.is_issued(t))
        return "foreign tokens in the answer (%d of %d sent to other runs): %s" % (
            known, len(foreign), sorted(foreign)[:3])
    if token not in data["stdout"]:
        return "own token missing from stdout: %r" % data["stdout"][:200]
    return kind.check(data, token)


def one_request(conn, key, kind, port, tally):
    """Sends one run; returns (the row it counts in, seconds, HTTP status or None if the
    answer was lost, failure or None)."""
    token = mix.new_token()
    tally.issue(token)
    payload = json.dumps(kind.body(token, port)).encode()
    t0 = time.monotonic()
    try:
        conn.request("POST", "/v1/sandbox/run", payload,
                     {"X-Api-Key": key, "Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
    except (OSError, http.client.HTTPException) as e:
        return kind.outcome, time.monotonic() - t0, None, "lost answer: %s: %s" % (type(e).__name__, e)
    elapsed = time.monotonic() - t0
    failure = judge_run(kind, token, r.status, r.getheader("Content-Type"), raw, tally)
    row = "503" if r.status == 503 and failure is None else kind.outcome
    return row, elapsed, r.status, failure


def client(stack, draw, port, deadline, tally):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=HTTP_TIMEOUT)
    try:
        while time.monotonic() < deadline:
            kind = draw()
            row, elapsed, status, failure = one_request(conn, stack.key, kind, port, tally)
            tally.record(row, elapsed, status, failure and "%s: %s" % (kind.name, failure))
            if status is None:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=HTTP_TIMEOUT)
            if row == "503":
                time.sleep(BACKOFF_503)
    except Exception as e:  # a bug here must show, not end the thread silently
        tally.fail("client crashed: %s: %s" % (type(e).__name__, e))
    finally:
        conn.close()


def warm_up_seconds(seconds):
    """The burst before "before": a tenth of the soak, 5 to 60 s."""
    return max(5, min(60, seconds // 10))


def load(stack, args, port, seconds, tally):
    """args.clients clients for seconds; returns once each has its last answer."""
    print("soak: %d clients for %d s" % (args.clients, seconds), file=sys.stderr, flush=True)
    deadline = time.monotonic() + seconds
    draw = mix.chooser(args.seed)
    draw_lock = threading.Lock()

    def locked_draw():
        with draw_lock:
            return draw()

    threads = [threading.Thread(target=client, args=(stack, locked_draw, port, deadline, tally))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def warm_up(stack, port, tally):
    """Each kind once, one after another: every code path has run before "before"."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=HTTP_TIMEOUT)
    for kind in mix.kinds():
        for _ in range(20):  # a 503 cannot happen with one client; retry it if it does
            row, _, _, failure = one_request(conn, stack.key, kind, port, tally)
            if row != "503":
                break
        if failure:
            tally.fail("warm-up %s: %s" % (kind.name, failure))
    conn.close()


def settled(stack, before=None, timeout=SETTLE_TIMEOUT):
    """The counts once the stack is idle with its warm pools full (and, given before,
    once nothing has grown; the last counts if that does not happen within timeout)."""
    deadline = time.monotonic() + timeout
    want = 4 * WARM
    while True:
        now = resources.count(stack)
        full = resources.warm_sandboxes(stack) >= want and resources.only_warm(stack)
        if full and (before is None or not grown(stack, before, now)):
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def grown(stack, before, after):
    return resources.compare(before, after, resources.latest_policy_rules(stack)) + \
        [(p, "", "") for p in resources.idle_problems(after)]


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))] if v else float("nan")


def summary(args, tally, before, after, grew):
    out = ["", "soak: %d s (after a warm-up of %d s), %d clients, max_workers %d, max_requests %d"
           % (args.seconds, warm_up_seconds(args.seconds), args.clients, MAX_WORKERS, MAX_REQUESTS),
           "requests %d   runs %d   503s %d   failures %d"
           % (tally.requests, tally.runs, tally.busy, len(tally.failures)),
           "", "%-16s %8s %9s %9s" % ("outcome", "answers", "p50 ms", "p99 ms")]
    for row in sorted(tally.latency):
        v = tally.latency[row]
        out.append("%-16s %8d %9.0f %9.0f" % (row, len(v), percentile(v, 0.5) * 1000,
                                             percentile(v, 0.99) * 1000))
    out += ["", "%-16s %10s %10s" % ("resource", "before", "after")]
    for name in sorted(set(before) | set(after)):
        mark = "  GREW" if name in {g[0] for g in grew} else ""
        out.append("%-16s %10s %10s%s" % (name, before.get(name), after.get(name), mark))
    if tally.failures:
        out += ["", "failures (first %d):" % MAX_SHOWN] + \
               ["  " + f[:600] for f in tally.failures[:MAX_SHOWN]]
    out.append("soak: %s" % ("FAILED" if tally.failures else "passed"))
    return "\n".join(out)


def soak(args):
    tally = Tally()
    ns = netnsmod.Netns("sc-soak").create()
    listeners, stack = [], None
    try:
        port = stackmod.free_loopback_port()
        listeners.append(Listener(port))
        with ns.entered():
            listeners.append(Listener(port))
        stack = stackmod.Stack(
            args.builddir, srcdir=SRCDIR, name="soak", netns=ns.path,
            worker_timeout=mix.TIMEOUT, memory_limit="128m", output_limit="64k",
            max_workers=MAX_WORKERS, max_requests=MAX_REQUESTS, warm_sandboxes=WARM)
        stack.start()
        print("soak: stack on %s, warming up" % stack.url, file=sys.stderr, flush=True)
        settled(stack)
        warm_up(stack, port, tally)
        load(stack, args, port, warm_up_seconds(args.seconds), tally)
        before = settled(stack)
        load(stack, args, port, args.seconds, tally)
        print("soak: waiting for the stack to be idle again", file=sys.stderr, flush=True)
        after = settled(stack, before)
        grew = resources.compare(before, after, resources.latest_policy_rules(stack))
        for name, b, a in grew:
            tally.fail("resource %s grew: %s before, %s after" % (name, b, a))
        for when, counts in (("before", before), ("after", after)):
            for p in resources.idle_problems(counts):
                tally.fail("idle stack %s: %s" % (when, p))
        for l in listeners:
            if l.accepted:
                tally.fail("a listener on 127.0.0.1:%d accepted %d connections" % (port, l.accepted))
    except stackmod.StackError as e:
        tally.fail("stack: %s" % e)
        before, after, grew = {}, {}, []
    finally:
        if stack:
            stack.stop()
            for p in stack.stop_problems:
                tally.fail("stop: %s" % p)
        for l in listeners:
            l.close()
        ns.delete()
    print(summary(args, tally, before, after, grew), flush=True)
    if tally.failures and stack:
        print("\nsandcelld log (last 30 lines):\n%s" % stack.log(30), file=sys.stderr)
    return 1 if tally.failures else 0


def main(argv):
    p = argparse.ArgumentParser(prog="soak.py", description=__doc__.split("\n\n")[0])
    p.add_argument("seconds", nargs="?", type=int, default=120, help="how long the load lasts")
    p.add_argument("--builddir", default=os.path.join(SRCDIR, "build"), help="where sandcelld was built")
    p.add_argument("--clients", type=int, default=CLIENTS, help="concurrent keep-alive clients")
    p.add_argument("--seed", type=int, help="seed of the mix (default: random)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("soak.py needs root (the stack's jails, nginx's master)", file=sys.stderr)
        return 2
    return soak(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
