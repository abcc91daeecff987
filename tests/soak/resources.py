"""What the soak test counts before and after: the stack's own resources, nothing else.

On a shared host other stacks and programs come and go, so every count is limited to
what this stack made:

    fds, threads, rss_kib   sandcelld's, from /proc/<pid>/fd and /proc/<pid>/status
    cgroups                 directories below the stack's parent cgroup (v2, and the v1
                            hierarchies of a hybrid host)
    mounts                  entries of sandcelld's mount namespace (/proc/<pid>/mountinfo)
                            below the stack's prefix (run_dir is inside it)
    processes               processes with a uid of the stack's sandbox range
    netns                   distinct network namespaces of sandcelld and those processes
    bpf_pins, bpf_entries   pins in the stack's egress pin directory, and the entries of
                            its pinned maps (bpftool map dump; the ring buffer has none)

compare() says which counts grew, allowing only the documented steady-state differences.

Standard library (and bpftool, from Debian's package of the same name).
"""

import json
import os
import re
import subprocess

import stack as stackmod

# RSS may grow a little once the stack has served its first requests of every kind (malloc
# arenas of the FastCGI threads, libbpf's and libseccomp's buffers are allocated on first
# use; "before" is taken after a warm-up round of every kind, but a busy soak touches a few
# more pages of the same arenas). A leak per request grows without bound: 200 runs and
# thousands of 503s leaking even 1 KiB each would pass this slack only just, so the
# slack is a fixed 4 MiB, not a ratio.
RSS_SLACK_KIB = 4096


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _status(pid, field):
    for line in _read("/proc/%d/status" % pid).splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def descriptors(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def own_mounts(pid, prefix):
    """Mounts of pid's mount namespace at or below prefix."""
    below = os.path.join(prefix, "")
    n = 0
    for line in _read("/proc/%d/mountinfo" % pid).splitlines():
        point = line.split()[4]
        if point == prefix or point.startswith(below):
            n += 1
    return n


def cgroups(stack):
    n = 0
    for parent in [stack.cgroup_parent()] + stack.v1_parents():
        if os.path.isdir(parent):
            n += len(stackmod.cgroup_tree(parent))
    return n


def sandbox_processes(stack):
    return stackmod.processes_with_uid_in(stack.uid_base, stack.uid_base + stack.slots)


def network_namespaces(stack, pids):
    seen = set()
    for pid in [stack.sandcelld.pid] + pids:
        try:
            seen.add(os.stat("/proc/%d/ns/net" % pid).st_ino)
        except OSError:
            pass
    return len(seen)


def pin_dir(stack):
    """fcgi/config.c: /sys/fs/bpf/<cgroup_name> with dots made underscores."""
    return stack.config.get("egress_pin_dir") or \
        "/sys/fs/bpf/" + stack.config["cgroup_name"].replace(".", "_")


def bpf_counts(stack):
    """(pins, {map: entries}) of the stack's pinned maps."""
    d = pin_dir(stack)
    try:
        pins = sorted(os.listdir(d))
    except OSError:
        return 0, {}
    entries = {}
    for name in pins:
        if name.startswith("link_"):
            continue
        path = os.path.join(d, name)
        show = subprocess.run(["bpftool", "-j", "map", "show", "pinned", path],
                              capture_output=True, text=True)
        if show.returncode != 0 or json.loads(show.stdout).get("type") == "ringbuf":
            continue
        dump = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", path],
                              capture_output=True, text=True)
        entries[name] = len(json.loads(dump.stdout)) if dump.returncode == 0 else -1
    return len(pins), entries


def count(stack):
    """The counts of this moment, as a flat {name: int}."""
    pid = stack.sandcelld.pid
    procs = [p for p, _, _ in sandbox_processes(stack)]
    pins, maps = bpf_counts(stack)
    out = {
        "fds": descriptors(pid),
        "threads": _status(pid, "Threads"),
        "rss_kib": _status(pid, "VmRSS"),
        "cgroups": cgroups(stack),
        "mounts": own_mounts(pid, stack.prefix),
        "processes": len(procs),
        "netns": network_namespaces(stack, procs),
        "bpf_pins": pins,
    }
    for name, n in sorted(maps.items()):
        out["bpf_%s" % name] = n
    return out


def warm_sandboxes(stack):
    """How many warm sandboxes wait (stack.py's definition)."""
    parent = stack.cgroup_parent()
    if not os.path.isdir(parent):
        return 0
    return sum(1 for cg in stackmod.cgroup_tree(parent) if stackmod.is_warm(cg))


def only_warm(stack):
    """True if every process of the stack's uids is a warm sandbox's: no run is going on
    and none is being torn down."""
    return all(stackmod.in_warm_cgroup(pid) for pid, _, _ in sandbox_processes(stack))


def latest_policy_rules(stack):
    """The size of the egress policy sandcelld installed last (its log's `rules=N`)."""
    found = re.findall(r'msg="egress policy installed".* rules=(\d+)', stack.log(100000))
    return int(found[-1]) if found else 0


def compare(before, after, policy_rules):
    """The counts that grew: [(name, before, after)]. Exact but for two:

    rss_kib: RSS_SLACK_KIB above "before".
    bpf_rules: the policy denies the host's own addresses, so sandcelld installs it anew
    when they change (other programs on a shared host add and remove addresses); at idle
    only the newest generation is kept (jail/network.c), so the map holds at most the
    prefixes of the last policy installed, policy_rules (a prefix holds one or more of
    its rules); a generation that was never removed would add a whole policy more.

    No other allowance is needed because "before" and "after" are both taken with the
    stack idle and its warm pools full (soak.py waits for that): each warm sandbox has its
    processes, its slot cgroup and, offline, its own network namespace, the same number
    each time; slot cgroups are made once and reused, so the cgroup count is the slots'.
    A count that went down is no failure (a warm sandbox that had not been counted yet)."""
    grew = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, 0), after.get(name, 0)
        bound = b + RSS_SLACK_KIB if name == "rss_kib" else \
            max(b, policy_rules) if name == "bpf_rules" else b
        if a > bound or (a < 0) != (b < 0):
            grew.append((name, b, a))
    return grew


def idle_problems(counts):
    """What an idle stack must not hold at all, whatever it held before: a sandbox with a
    policy (a network sandbox gets it when it is taken, and loses it when it is destroyed;
    warm ones have none), and blocked-attempt counters (dropped with their sandbox: a slot's
    next run must count from 1; warm sandboxes have tried nothing)."""
    return ["%s: %d entries in an idle stack" % (name, counts[name])
            for name in ("bpf_sandboxes", "bpf_counters") if counts.get(name, 0) != 0]
