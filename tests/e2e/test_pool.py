"""The warm pool follows demand (jail/pool.c, jail/demand.c).

A burst of concurrent nodejs runs grows that kind's pool above its floor (warm_sandboxes),
never above its ceiling (warm_sandboxes_max); once idle it shrinks back to the floor; other
kinds keep theirs. Observed through the sandcell_warm_sandboxes gauge of /metrics. No timing
is asserted: every wait polls until its condition, bounded generously (the host is shared).
"""

import concurrent.futures
import threading
import time

import pytest

from conftest import run
from test_metrics import scrape, value

FLOOR, CEILING, BURST = 1, 4, 8
WAIT = 120  # seconds: a peak of BURST halves every 10 s, then the starters need their time


@pytest.fixture(scope="module")
def elastic(make_stack):
    # without network the gauge counts one kind per language: the pool of nodejs alone
    return make_stack(warm_sandboxes=FLOOR, warm_sandboxes_max=CEILING, max_workers=4,
                      enable_network=False)


def warm(stack, language):
    return value(scrape(stack), 'sandcell_warm_sandboxes{language="%s"}' % language)


class Watcher(threading.Thread):
    """Samples both gauges until stopped: every sample must stay within the bounds."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack, self.samples, self.halt = stack, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.samples.append((warm(self.stack, "nodejs"), warm(self.stack, "python3")))
            self.halt.wait(0.05)


def wait_until(cond, what):
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "not within %d s: %s" % (WAIT, what)
        time.sleep(0.2)


def burst(stack, n):
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        answers = list(ex.map(lambda i: run(stack, "nodejs", "console.log(%d)" % i), range(n)))
    for i, (status, body) in enumerate(answers):
        assert status == 200 and body["code"] == 0, (status, body)
        assert body["data"]["stdout"] == "%d\n" % i and body["data"]["error"] == "", body


def test_a_burst_grows_the_pool_within_its_ceiling_and_idle_shrinks_it(elastic):
    wait_until(lambda: warm(elastic, "nodejs") == FLOOR, "the floor filled at start")
    watcher = Watcher(elastic)
    watcher.start()
    try:
        burst(elastic, BURST)
        wait_until(lambda: warm(elastic, "nodejs") > FLOOR, "the nodejs pool grew after a burst")
        wait_until(lambda: warm(elastic, "nodejs") == FLOOR, "the idle pool shrank to its floor")
    finally:
        watcher.halt.set()
        watcher.join()
    nodejs = [n for n, _ in watcher.samples]
    assert max(nodejs) <= CEILING, nodejs
    # python3 saw no demand: its pool never grew
    assert all(p <= FLOOR for _, p in watcher.samples), watcher.samples
    assert elastic.wait_no_leftovers() == []


def test_a_fixed_pool_does_not_follow_demand(make_stack):
    """warm_sandboxes_max = warm_sandboxes: the pool is exactly as configured."""
    s = make_stack(warm_sandboxes=1, warm_sandboxes_max=1, max_workers=4, enable_network=False)
    wait_until(lambda: warm(s, "nodejs") == 1, "the floor filled at start")
    watcher = Watcher(s)
    watcher.start()
    try:
        burst(s, BURST)
        wait_until(lambda: warm(s, "nodejs") == 1, "the pool refilled")
    finally:
        watcher.halt.set()
        watcher.join()
    assert max(n for n, _ in watcher.samples) <= 1, watcher.samples
