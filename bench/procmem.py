"""Memory of sandcelld and of its sandboxes, from /proc.

Which processes count as sandboxes: every process in a cgroup below sandcelld's v2 parent
cgroup (jail/cgroup.c: warm-<slot>-<n> for a sandbox started ahead of its request, run-...
for one taken), plus any process of sandcelld's process tree whose comm or argv[0] contains
"zygote" (a fork-server and its children, wherever their cgroups are). They are grouped by
what they are, not by how sandcell starts them: where (the cgroup's kind), comm and exe.

Unique memory (USS) is Private_Clean + Private_Dirty of /proc/PID/smaps_rollup: what the
system would get back if that process alone ended. PSS shares the shared pages out among the
processes that map them.
"""
import os
import statistics


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def rss_kib(pid):
    for line in _read("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def uss_pss_kib(pid):
    """(USS, PSS) in KiB, or None if the process is gone."""
    fields = {}
    for line in _read("/proc/%d/smaps_rollup" % pid).splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    if "Pss" not in fields:
        return None
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields["Pss"]


def cgroup_pids(parent):
    """{pid: name of its cgroup's directory} for every process below parent."""
    found = {}
    for root, _, _ in os.walk(parent):
        for p in _read(os.path.join(root, "cgroup.procs")).split():
            found[int(p)] = os.path.basename(root)
    return found


def descendants(root_pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read("/proc/%s/stat" % entry)
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root_pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def zygote_pids(daemon_pid):
    found = []
    for pid in descendants(daemon_pid):
        comm = _read("/proc/%d/comm" % pid).strip()
        argv0 = _read("/proc/%d/cmdline" % pid).split("\0")[0]
        if "zygote" in comm or "zygote" in argv0:
            found.append(pid)
    return found


def describe(pid, cgroup):
    """(where, comm, exe): where is the cgroup's kind (warm, run, ...) or 'tree'."""
    where = cgroup.split("-")[0] if cgroup else "tree"
    comm = _read("/proc/%d/comm" % pid).strip()
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = "?"
    return where, comm, exe


def sandbox_memory(parent, daemon_pid):
    """{pid: ((where, comm, exe), (USS, PSS) KiB)} of the sandbox processes right now."""
    pids = cgroup_pids(parent) if os.path.isdir(parent) else {}
    for pid in zygote_pids(daemon_pid):
        pids.setdefault(pid, None)
    found = {}
    for pid, cgroup in pids.items():
        key = describe(pid, cgroup)
        mem = uss_pss_kib(pid)
        if mem is not None:
            found[pid] = (key, mem)
    return found


def by_kind(found):
    """{(where, comm, exe): (count, median USS MiB, median PSS MiB)} of sandbox_memory()'s
    processes (or of several samples merged: each pid once, as last seen)."""
    groups = {}
    for key, mem in found.values():
        groups.setdefault(key, []).append(mem)
    return {key: (len(mems), statistics.median(m[0] for m in mems) / 1024,
                  statistics.median(m[1] for m in mems) / 1024)
            for key, mems in groups.items()}
