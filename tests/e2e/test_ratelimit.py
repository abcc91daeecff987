"""The shipped rate-limit snippet, with the shipped rates: once a client is over its rate
and burst, nginx answers 429 with the API's JSON envelope and sandcelld never sees it."""

import concurrent.futures
import json
import time

import pytest

from conftest import http, post_raw, run_ok


@pytest.fixture(scope="module")
def shipped(make_stack):
    return make_stack(shipped_rates=True)


def test_over_the_rate_gets_429_envelope(shipped):
    # the per-address zone: 20 r/s with a burst of 50 (nodelay). A wrong key is answered 401
    # by sandcelld without running anything, so the flood costs no sandboxes; limit_req
    # counts it all the same (it runs before the request reaches sandcelld).
    def one(_):
        r = post_raw(shipped, "/v1/sandbox/run", b'{"language":"python3","code":"1"}',
                     key="wrong-key")
        return r.status_code, r.headers.get("Content-Type"), r.content

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(150)))
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) >= 50, statuses     # the burst passed
    limited = [a for a in answers if a[0] == 429]
    assert limited, "150 requests at once were never limited"
    for status, ctype, body in limited:
        assert ctype == "application/json", ctype
        assert json.loads(body) == {"code": -429, "message": "Too many requests, slow down",
                                    "data": None}
    # 429s are nginx's: sandcelld logged only the requests that reached it (its log line is
    # written just after the answer, so give the last ones a moment)
    deadline = time.monotonic() + 10
    while shipped.log(100000).count("outcome=unauthorized") < statuses.count(401):
        assert time.monotonic() < deadline, shipped.log(20)
        time.sleep(0.1)
    assert shipped.log(100000).count("outcome=unauthorized") == statuses.count(401)


def test_service_recovers_once_the_rate_allows(shipped):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = http("GET", shipped, "/health", key=False)
        if r.status_code == 200:
            break
        time.sleep(0.5)
    time.sleep(3)   # let the bucket drain well below the burst
    data = run_ok(shipped, "python3", "print('after the flood')")
    assert data["stdout"] == "after the flood\n"


@pytest.fixture(scope="module")
def shipped_unflooded(make_stack):
    """The shipped limits with buckets no other test has filled."""
    return make_stack(shipped_rates=True)


def test_requests_in_flight_per_client_are_bounded(shipped_unflooded):
    # limit_conn: 25 requests in flight per address and per key. A request whose body is still
    # being sent is in flight (nginx reads the body before passing it on), so 26 of them, none
    # of which costs a sandbox, exceed the bound: nginx answers one of them (whichever it
    # counts last) 429 at once and keeps the others waiting for their bodies.
    import socket
    stack = shipped_unflooded
    assert run_ok(stack, "python3", "print(4)")["stdout"] == "4\n"
    held, answers = [], {}
    try:
        for _ in range(26):
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
    assert answers, "26 requests in flight from one client were never limited"
    for raw in answers.values():
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429 "), raw
        assert b"Content-Type: application/json" in head, raw
        assert json.loads(body) == {"code": -429, "message": "Too many requests, slow down",
                                    "data": None}
    deadline = time.monotonic() + 30
    while True:
        r = post_raw(stack, "/v1/sandbox/run", b'{"language":"python3","code":"print(5)"}')
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["data"]["stdout"] == "5\n", r.content
