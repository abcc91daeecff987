"""The shipped rate-limit files (nginx/sandcell-limits.conf, nginx/sandcell-snippet.conf).

They are sized so that one busy client (a Dify: one address, one key) is limited by what the
host can run, not by nginx (the sizing rule is in sandcell-limits.conf): a batch of up to the
burst, at up to the in-flight bound, is never refused. A client over its rate and burst, or
over its in-flight bound, gets 429 with the API's JSON envelope and sandcelld never sees it.
The shipped rates are too high for a test to outrun on a shared machine without asserting on
speed, so the flood test lowers them (rate only; zones, bursts, bounds and statuses stay as
shipped). Every number is read from the shipped files: the files are the one place for them.
"""

import concurrent.futures
import json
import os
import re
import socket
import time

import pytest

from conftest import http, post_raw, run_ok, srcdir

ENVELOPE_429 = {"code": -429, "message": "Too many requests, slow down", "data": None}


def _read(*path):
    with open(os.path.join(srcdir(), *path)) as f:
        return f.read()


def run_location():
    """The snippet's `location /v1/sandbox/ { ... }` (the /health location shares a zone)."""
    text = _read("nginx", "sandcell-snippet.conf")
    return text[text.index("location /v1/sandbox/ {"):]


def burst(zone):
    return int(re.search(r"limit_req zone=%s burst=(\d+)" % zone, run_location()).group(1))


def in_flight_bound(zone):
    return int(re.search(r"limit_conn %s (\d+);" % zone, run_location()).group(1))


def packaged_max_requests():
    return int(re.search(r"^max_requests = (\d+)", _read("debian", "sandcell.conf"), re.M).group(1))


def test_shipped_limits_follow_the_sizing_rule():
    # a batch that fills the in-flight bound passes the rate limit; the in-flight bound lets a
    # client fill the packaged sandcelld's queue (sandcelld's 503, not nginx's 429, says "full")
    for zone, conn in (("sandcell_addr", "sandcell_conn_addr"), ("sandcell_key", "sandcell_conn_key")):
        assert burst(zone) >= in_flight_bound(conn), zone
        assert in_flight_bound(conn) >= packaged_max_requests(), conn


def wrong_key_requests(stack, n, concurrency):
    """n POSTs with a wrong key from this one address, `concurrency` at a time: sandcelld
    answers 401 without running anything, and limit_req counts them all the same (it runs
    before the request reaches sandcelld). [(status, content type, body)]"""
    def one(_):
        r = post_raw(stack, "/v1/sandbox/run", b'{"language":"python3","code":"1"}',
                     key="wrong-key")
        return r.status_code, r.headers.get("Content-Type"), r.content

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture(scope="module")
def shipped(make_stack):
    return make_stack(shipped_rates=True)


def test_a_batch_from_one_client_is_never_limited(shipped):
    # `burst` requests, 64 at a time (below the in-flight bound): however fast they arrive,
    # the bucket never holds more than the burst, so none is refused
    n = min(burst("sandcell_addr"), burst("sandcell_key"))
    concurrency = min(64, in_flight_bound("sandcell_conn_addr"), in_flight_bound("sandcell_conn_key"))
    statuses = [a[0] for a in wrong_key_requests(shipped, n, concurrency)]
    assert statuses == [401] * n, sorted(set(statuses))


@pytest.fixture(scope="module")
def lowered(make_stack):
    """The shipped files with every rate lowered to 1 r/s, its buckets empty: the stack's own
    /health polls at start went through the same per-address zone, and at 1 r/s each takes a
    second to drain (else the flood below finds the bucket already that much fuller)."""
    s = make_stack(rate="1r/s")
    with open(os.path.join(s.prefix, "logs", "access.log")) as f:
        made = len(f.readlines())
    time.sleep(made + 1)
    return s


def test_over_the_rate_gets_429_envelope(lowered):
    # the burst plus 150: at 1 r/s, only a flood slower than 150 s would pass entirely
    n = burst("sandcell_addr") + 150
    answers = wrong_key_requests(lowered, n, 8)
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) >= burst("sandcell_addr"), statuses     # the burst passed
    limited = [a for a in answers if a[0] == 429]
    assert limited, "%d requests at once were never limited" % n
    for status, ctype, body in limited:
        assert ctype == "application/json", ctype
        assert json.loads(body) == ENVELOPE_429
    # 429s are nginx's: sandcelld logged only the requests that reached it (its log line is
    # written just after the answer, so give the last ones a moment)
    deadline = time.monotonic() + 10
    while lowered.log(100000).count("outcome=unauthorized") < statuses.count(401):
        assert time.monotonic() < deadline, lowered.log(20)
        time.sleep(0.1)
    assert lowered.log(100000).count("outcome=unauthorized") == statuses.count(401)


def test_service_recovers_once_the_rate_allows(lowered):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = http("GET", lowered, "/health", key=False)
        if r.status_code == 200:
            break
        time.sleep(0.5)
    time.sleep(3)   # let the bucket drain below the burst
    data = run_ok(lowered, "python3", "print('after the flood')")
    assert data["stdout"] == "after the flood\n"


@pytest.fixture(scope="module")
def shipped_unflooded(make_stack):
    """The shipped limits with buckets no other test has filled."""
    return make_stack(shipped_rates=True)


def test_requests_in_flight_per_client_are_bounded(shipped_unflooded):
    # limit_conn: `bound` requests in flight per address and per key. A request whose body is
    # still being sent is in flight (nginx reads the body before passing it on), so bound + 1
    # of them, none of which costs a sandbox, exceed it: nginx answers one of them (whichever
    # it counts last) 429 at once and keeps the others waiting for their bodies. They stay
    # within the burst, so it is limit_conn that answers.
    stack = shipped_unflooded
    bound = in_flight_bound("sandcell_conn_addr")
    assert bound < burst("sandcell_addr")
    assert run_ok(stack, "python3", "print(4)")["stdout"] == "4\n"
    held, answers = [], {}
    try:
        for _ in range(bound + 1):
            s = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
            s.sendall(b"POST /v1/sandbox/run HTTP/1.1\r\nHost: sandcell\r\nX-Api-Key: %s\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                      % stack.key.encode())
            s.setblocking(False)
            held.append(s)
        deadline = time.monotonic() + 20
        while not answers and time.monotonic() < deadline:
            time.sleep(0.1)
            for i, s in enumerate(held):
                try:
                    answers[i] = s.recv(4096)
                except BlockingIOError:
                    pass
    finally:
        for s in held:
            s.close()
    assert answers, "%d requests in flight from one client were never limited" % (bound + 1)
    for raw in answers.values():
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429 "), raw
        assert b"Content-Type: application/json" in head, raw
        assert json.loads(body) == ENVELOPE_429
    deadline = time.monotonic() + 30
    while True:
        r = post_raw(stack, "/v1/sandbox/run", b'{"language":"python3","code":"print(5)"}')
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["data"]["stdout"] == "5\n", r.content
