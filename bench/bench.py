#!/usr/bin/python3
"""sandcell benchmark: time per run, side by side with the bare interpreter.

Runs, in one process and one sitting, for each language:
  bare      the interpreter started directly (fork + exec + wait), clean environment
  sandcell  POST /v1/sandbox/run through a real nginx and sandcelld (a fresh jail per
            run, taken from the warm pool)
and prints median / p90 / mean milliseconds and the ratio sandcell / bare.

    sudo bench/bench.py --builddir build [--runs 200]

Timing is measured here, never asserted in tests: the machines are shared and noisy.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from stack import Stack  # noqa: E402

PROGRAMS = {
    "python3": ("print(1)", ["/usr/bin/python3", "-I", "-c", "print(1)"]),
    "nodejs": ("console.log(1)", ["/usr/bin/node", "-e", "console.log(1)"]),
}
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def time_ms(fn, runs, gap_ms):
    fn()  # warm the page cache
    samples = []
    for _ in range(runs):
        time.sleep(gap_ms / 1000)
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def bare(argv):
    return lambda: subprocess.run(argv, env=CLEAN_ENV, stdout=subprocess.DEVNULL, check=True)


def through_sandcell(stack, language, code):
    body = json.dumps({"language": language, "code": code}).encode()

    def run():
        req = urllib.request.Request(stack.url + "/v1/sandbox/run", data=body, method="POST",
                                     headers={"X-Api-Key": stack.key,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.load(resp)
        if answer["code"] != 0 or answer["data"]["stdout"] != "1\n":
            raise RuntimeError("unexpected answer: %r" % answer)
    return run


def summary(samples):
    s = sorted(samples)
    return statistics.median(s), s[int(len(s) * 0.9) - 1], statistics.fmean(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default="build")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warm", type=int, default=2,
                    help="warm_sandboxes of the stack (0: every run starts its jail cold)")
    ap.add_argument("--gap-ms", type=int, default=100,
                    help="pause before each request: latency at a steady request rate, "
                         "with time for warm sandboxes to be replaced")
    args = ap.parse_args()

    stack = Stack(args.builddir, name="bench", warm_sandboxes=args.warm)
    stack.start()
    try:
        print("%-8s %-9s %9s %9s %9s %7s" % ("language", "how", "median", "p90", "mean", "ratio"))
        for language, (code, argv) in PROGRAMS.items():
            base = summary(time_ms(bare(argv), args.runs, args.gap_ms))
            ours = summary(time_ms(through_sandcell(stack, language, code), args.runs, args.gap_ms))
            print("%-8s %-9s %8.1fms %8.1fms %8.1fms %7s" % ((language, "bare") + base + ("1.00",)))
            print("%-8s %-9s %8.1fms %8.1fms %8.1fms %7.2f" %
                  ((language, "sandcell") + ours + (ours[0] / base[0],)))
        print("(%d runs each, one at a time, %d ms apart, warm_sandboxes = %d; "
              "ratio = median sandcell / median bare)" % (args.runs, args.gap_ms, args.warm))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
