"""The Python zygote (zygote/main.c): Python sandboxes fork from one
pre-initialised interpreter, each jailed exactly like a cold start, none
sharing random state; a zygote that dies is restarted and, meanwhile,
sandboxes start cold (never in a weaker jail).

How a test tells a zygote child from a cold start: the zygote has imported
the preload modules, so they are in sys.modules before the program imports
anything; a cold start has only what the runner itself imports.
"""

import json
import os
import signal
import time

import pytest

from conftest import assert_alive, builddir, http, run_ok

BOUND = 60  # seconds: catches "never restarted", measures nothing

# What a sandbox can see of itself: everything a jail sets, one line each.
SELF_PORTRAIT = r"""
import os, socket, sys
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "pid": os.getpid(), "ppid": os.getppid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "caps": [status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")],
    "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
    "hostname": socket.gethostname(), "tmp": os.listdir("/tmp"), "cwd": os.getcwd(),
    "fds": sorted(os.listdir("/proc/self/fd")), "root": sorted(os.listdir("/")),
    "mounts": sorted(l.split()[4] for l in open("/proc/self/mountinfo")),
    "env": sorted(os.environ), "executable": sys.executable, "path": sys.path,
    "flags": [sys.flags.isolated, sys.flags.dont_write_bytecode, sys.flags.ignore_environment],
    "rlimits": [__import__("resource").getrlimit(r) for r in range(16)],
    "umask": os.umask(0o22), "dumpable_proc_self": os.stat("/proc/self/fd").st_uid,
    "ifaces": sorted(l.split(":")[0].strip() for l in open("/proc/self/net/dev").readlines()[2:]),
}))
""".replace("print(json", "import json\nprint(json")


def is_zygote_child(stack):
    data = run_ok(stack, "python3", "import sys; print('jinja2' in sys.modules)")
    return data["stdout"] == "True\n"


def wait_for_zygote_child(stack):
    deadline = time.monotonic() + BOUND
    while not is_zygote_child(stack):
        assert time.monotonic() < deadline, "no run came from a zygote:\n" + stack.log()
        time.sleep(0.2)


def zygote_pids(stack):
    """The zygotes of this stack: sandcelld's children running sandcell-zygote
    in sandcelld's own cgroup (its other such children are sandboxes)."""
    daemon = stack.sandcelld.pid
    own = open("/proc/%d/cgroup" % daemon).read()
    binary = os.path.join(builddir(), "sandcell-zygote")
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            ppid = int(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1])
            if ppid == daemon and os.readlink("/proc/%s/exe" % p) == binary and \
                    open("/proc/%s/cgroup" % p).read() == own:
                pids.append(int(p))
        except OSError:
            continue
    return pids


def status_of(pid):
    return dict(l.split(":\t", 1) for l in open("/proc/%d/status" % pid).read().splitlines()
                if ":\t" in l)


@pytest.fixture(scope="module")
def zstack(make_stack):
    s = make_stack(enable_network=False, max_workers=2, warm_sandboxes=1)
    wait_for_zygote_child(s)
    return s


@pytest.fixture(scope="module")
def cold(make_stack):
    return make_stack(enable_network=False, max_workers=2, warm_sandboxes=1, zygote_path="")


def portrait(stack):
    return json.loads(run_ok(stack, "python3", SELF_PORTRAIT)["stdout"])


def test_python_sandboxes_fork_from_the_zygote(zstack, cold):
    # not every run: one the zygote is too slow to answer (5 s, a loaded
    # host) starts cold, as documented, while the zygote is restarted
    wait_for_zygote_child(zstack)
    assert not is_zygote_child(cold)
    assert len(zygote_pids(zstack)) == 1  # offline only: network is off
    assert zygote_pids(cold) == []
    metrics = http("GET", zstack, "/metrics", key=False).text
    assert 'sandcell_zygotes_running{language="python3"} 1\n' in metrics, metrics
    assert 'sandcell_zygotes_running{language="nodejs"} 0\n' in metrics, metrics
    forks = [l for l in metrics.splitlines() if l.startswith('sandcell_zygote_forks_total{language="python3"}')]
    assert forks and int(forks[0].split()[1]) >= 1, metrics
    assert 'sandcell_zygotes_running{language="python3"} 0\n' in http("GET", cold, "/metrics", key=False).text


def test_a_zygote_child_is_jailed_exactly_like_a_cold_start(zstack, cold):
    """Same uid range, no capabilities, no_new_privs, seccomp, pid 2 alone in
    its pid namespace, empty /tmp, only fds 0-3, the same root, mounts,
    environment, interpreter flags and rlimits, no network interface but lo."""
    wait_for_zygote_child(zstack)
    z, c = portrait(zstack), portrait(cold)
    for key in ("uid", "gid"):
        assert zstack.uid_base <= z[key] < zstack.uid_base + zstack.slots, z
        z[key] = c[key] = None
    assert z["caps"] == ["0000000000000000"] * 5, z
    assert z["no_new_privs"] == "1" and z["seccomp"] == "2", z
    assert z["pid"] == 2 and z["pids"] == [1, 2] and z["ppid"] == 1, z
    assert z["fds"] == ["0", "1", "2", "3", "4"], z  # 4: listdir's own
    assert z["tmp"] == [] and z["hostname"] == "sandbox", z
    assert z["ifaces"] == ["lo"], z
    assert z["dumpable_proc_self"] == os.getuid() or z["dumpable_proc_self"] >= zstack.uid_base
    z["dumpable_proc_self"] = c["dumpable_proc_self"] = None
    assert z == c


def test_zygote_children_share_no_random_state(zstack):
    code = ("import os, random, secrets, ssl, tempfile, uuid\n"
            "print(random.random(), random.getrandbits(64), secrets.token_hex(8),"
            " ssl.RAND_bytes(8).hex(), uuid.uuid4(), uuid.uuid1().clock_seq, os.urandom(8).hex(),"
            " next(tempfile._get_candidate_names()))")
    wait_for_zygote_child(zstack)
    seen = [run_ok(zstack, "python3", code)["stdout"].split() for _ in range(4)]
    for column in zip(*seen):
        assert len(set(column)) == len(column), seen


def test_the_zygote_holds_no_secret_and_only_the_capabilities_it_needs(zstack):
    (pid,) = zygote_pids(zstack)
    environ = open("/proc/%d/environ" % pid, "rb").read()
    assert zstack.secret.encode() not in environ
    assert zstack.key.encode() not in environ
    st = status_of(pid)
    # CAP_SETGID 6, CAP_SETUID 7, CAP_SETPCAP 8, CAP_SYS_ADMIN 21
    wanted = "%016x" % ((1 << 6) | (1 << 7) | (1 << 8) | (1 << 21))
    assert st["CapEff"].strip() == wanted and st["CapBnd"].strip() == wanted, st
    # its own mount and network namespaces: not the host's
    for ns in ("mnt", "net"):
        assert os.readlink("/proc/%d/ns/%s" % (pid, ns)) != os.readlink("/proc/self/ns/" + ns)
    # and a sandbox cannot see it
    data = run_ok(zstack, "python3", "import os; print(sorted(p for p in os.listdir('/proc') if p.isdigit()))")
    assert data["stdout"] == "['1', '2']\n", data


def test_a_killed_zygote_is_restarted_and_runs_meanwhile_start_cold(make_stack):
    s = make_stack(enable_network=False, max_workers=2, warm_sandboxes=0)
    wait_for_zygote_child(s)
    (old,) = zygote_pids(s)
    # a run in flight is sandcelld's child, not the zygote's: it lives on
    import threading
    result = {}
    t = threading.Thread(target=lambda: result.update(
        run_ok(s, "python3", "import time; time.sleep(2); print('survived')")))
    t.start()
    time.sleep(0.5)
    os.kill(old, signal.SIGKILL)
    data = run_ok(s, "python3", "print(6 * 7)")
    assert data["stdout"] == "42\n", data
    t.join()
    assert result.get("stdout") == "survived\n", result
    wait_for_zygote_child(s)
    (new,) = zygote_pids(s)
    assert new != old
    assert "zygote exited" in s.log(200)
    assert_alive(s)


@pytest.mark.parametrize("path", ["/bin/false", "/nonexistent/sandcell-zygote"])
def test_without_a_working_zygote_python_starts_cold(make_stack, path):
    s = make_stack(enable_network=False, max_workers=2, zygote_path=path)
    for _ in range(3):
        assert not is_zygote_child(s)
    assert "start cold" in s.log(200) or "starting cold" in s.log(200), s.log(200)
    assert_alive(s)


def test_the_preload_list_is_the_operators(make_stack):
    s = make_stack(enable_network=False, max_workers=2,
                   python_preload="colorsys, no_such_module_sandcell")
    deadline = time.monotonic() + BOUND
    code = "import sys; print('colorsys' in sys.modules, 'jinja2' in sys.modules)"
    while run_ok(s, "python3", code)["stdout"] != "True False\n":
        assert time.monotonic() < deadline, s.log()
        time.sleep(0.2)
    assert "no_such_module_sandcell" in s.log(200)
