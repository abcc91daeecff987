"""`sandcell run`: one program in the service's jail from the command line.

It reads the same configuration file as sandcelld, prints the program's stdout and stderr,
then the reasons it failed ("sandcell: ..." lines), and exits with the program's status. It
uses its own run_dir, cgroup and uids, so it must leave none of them behind and must not
disturb a running sandcelld with the same configuration (the session's stack).
"""

import os
import re
import subprocess
import tempfile

import pytest

from conftest import assert_alive, builddir
import stack as stackmod

UID_BASE = 6000000 + (os.getpid() % 1000) * 1024
CLI_UIDS = (UID_BASE + 65536, UID_BASE + 65536 + 65536)


@pytest.fixture(scope="module")
def cli_conf():
    d = tempfile.mkdtemp(prefix="sandcell-cli-")
    os.chmod(d, 0o755)
    name = "sandcell-cli-test-%d" % os.getpid()
    path = os.path.join(d, "sandcell.conf")
    with open(path, "w") as f:
        f.write("# no api_key: the command does not need one\n"
                "run_dir = %s/run\n"
                "cgroup_name = %s\n"
                "uid_base = %d\n"
                "worker_timeout = 5\n" % (d, name, UID_BASE))
    yield {"path": path, "dir": d, "cgroup_name": name}
    subprocess.run(["rm", "-rf", d], check=False)


def _operator_umask():
    """An operator's shell with a strict umask: the CLI's jails must not depend on it."""
    os.umask(0o077)


def sandcell(conf, *args, stdin=None, env=None):
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    e.update(env or {})
    return subprocess.run([os.path.join(builddir(), "sandcell")] + list(args)
                          + ["--config", conf["path"]],
                          input=stdin, capture_output=True, timeout=60, env=e,
                          preexec_fn=_operator_umask)


def assert_nothing_left(conf):
    """No cli-* run_dir, no <name>-cli-* cgroup (v2 or v1), no process with a CLI uid."""
    run = os.path.join(conf["dir"], "run")
    assert not os.path.exists(run) or os.listdir(run) == [], os.listdir(run)
    v2 = stackmod.cgroup2_mount()
    for root in [v2] + ["/sys/fs/cgroup/%s" % c for c in ("memory", "pids", "cpu")]:
        for d, dirs, _ in os.walk(root):
            for n in dirs:
                assert not n.startswith(conf["cgroup_name"]), os.path.join(d, n)
            # the tree is deep only where systemd or other stacks put things; enough to look
            # at the level sandcelld's own cgroup lives at (the root here) and one below
            if d.count("/") - root.count("/") >= 1:
                dirs[:] = []
    assert stackmod.processes_with_uid_in(*CLI_UIDS) == []


def test_python_output_and_status(cli_conf):
    code = b"import sys\nprint('out', 6 * 7)\nprint('warn', file=sys.stderr)\nsys.exit(3)\n"
    r = sandcell(cli_conf, "run", "-", stdin=code)
    assert r.returncode == 3, r
    assert r.stdout == b"out 42\n"
    assert r.stderr == b"warn\nsandcell: process exited with code 3\n"
    assert_nothing_left(cli_conf)


def test_nodejs_from_a_file(cli_conf):
    path = os.path.join(cli_conf["dir"], "prog.js")
    with open(path, "w") as f:
        f.write("console.log([1, 2, 3].map(x => x * 2).join(','));\n"
                "console.error('to stderr');\n")
    # the language comes from the .js extension
    r = sandcell(cli_conf, "run", path)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"2,4,6\n", b"to stderr\n"), r
    r = sandcell(cli_conf, "run", "--language", "nodejs", stdin=b"process.exit(7)")
    assert r.returncode == 7, r
    assert r.stderr == b"sandcell: process exited with code 7\n"
    assert_nothing_left(cli_conf)


def test_the_jail_and_its_markers(cli_conf):
    # the same policy as the service: no processes, the run ends with the marker
    r = sandcell(cli_conf, "run", stdin=b"import os\nos.fork()\n")
    assert r.returncode == 255, r
    assert b"PermissionError" in r.stderr
    assert r.stderr.endswith(b"sandcell: process exited with code 255\n"
                             b"sandcell: error: operation not permitted\n"), r.stderr
    # the uid is the CLI's own, far from the daemon's uid_base + slot
    r = sandcell(cli_conf, "run", stdin=b"import os\nprint(os.getuid())\n")
    assert r.returncode == 0, r
    assert CLI_UIDS[0] <= int(r.stdout) < CLI_UIDS[1]
    # WORKER_TIMEOUT overrides the file, as for sandcelld
    r = sandcell(cli_conf, "run", stdin=b"while True: pass\n", env={"WORKER_TIMEOUT": "1"})
    assert r.returncode == 137, r
    assert r.stderr.endswith(b"sandcell: error: timeout\n"), r.stderr
    assert_nothing_left(cli_conf)


def test_usage_and_refusals(cli_conf):
    r = sandcell(cli_conf, "run", "--language", "cobol", stdin=b"x")
    assert r.returncode == 2 and b"unsupported language 'cobol'" in r.stderr, r
    r = sandcell(cli_conf, "run", stdin=b"")
    assert r.returncode == 2 and b"the program is empty" in r.stderr, r
    r = sandcell(cli_conf, "run", "--network", stdin=b"print(1)", env={"ENABLE_NETWORK": "false"})
    assert r.returncode == 125 and b"network is disabled" in r.stderr, r
    r = subprocess.run([os.path.join(builddir(), "sandcell"), "frobnicate"], capture_output=True)
    assert r.returncode == 2 and r.stderr.startswith(b"sandcell: unknown command"), r
    r = subprocess.run([os.path.join(builddir(), "sandcell"), "version"], capture_output=True)
    assert r.returncode == 0 and r.stdout.startswith(b"sandcell "), r
    assert_nothing_left(cli_conf)


def test_check_reports_the_host(cli_conf):
    r = sandcell(cli_conf, "check")
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    for what in ("cgroup v2", "seccomp", "pid namespace", "network namespace", "python3",
                 "nodejs", "executor", "network egress (eBPF)"):
        assert any(line.startswith(what) for line in out.splitlines()), (what, out)
    # the eBPF programs load and attach here, and the policy is listed rule by rule
    assert any(l.startswith("network egress (eBPF)") and " ok " in l for l in out.splitlines()), out
    assert "rule deny 169.254.0.0/16 any" in out, out
    assert out.rstrip().endswith("this host can run sandcell")
    assert_nothing_left(cli_conf)


@pytest.mark.parametrize("extra,want", [
    ("zygote_path = %(zygote)s\n", r"ok +%(zygote)s \(python3\.11\): Python sandboxes fork from it"),
    ("zygote_path = %(zygote)s\npython_path = /usr/bin/node\n",
     r"no +%(zygote)s embeds python3\.11, python_path is node: Python sandboxes start cold"),
    ("zygote_path = /nonexistent/z\n", r"no +/nonexistent/z: No such file or directory"),
    ("zygote_path =\n", r"ok +off \(zygote_path is empty\)"),
])
def test_check_reports_the_zygote(cli_conf, extra, want):
    zygote = os.path.join(builddir(), "sandcell-zygote")
    conf = dict(cli_conf, path=os.path.join(cli_conf["dir"], "zygote.conf"))
    with open(cli_conf["path"]) as base, open(conf["path"], "w") as f:
        f.write(base.read() + extra % {"zygote": zygote})
    r = sandcell(conf, "check")
    out = r.stdout.decode()
    line = [l for l in out.splitlines() if l.startswith("python3 zygote")]
    assert line and re.match(r"python3 zygote +" + want % {"zygote": re.escape(zygote)}, line[0]), \
        out + r.stderr.decode()


def test_does_not_disturb_a_running_daemon(stack, tmp_path):
    """The CLI with the daemon's own run_dir and cgroup_name: both keep working."""
    conf = tmp_path / "same.conf"
    conf.write_text("run_dir = %s\ncgroup_name = %s\nuid_base = %d\n" % (
        stack.run_dir, stack.config["cgroup_name"], stack.uid_base))
    r = subprocess.run([os.path.join(builddir(), "sandcell"), "run", "--config", str(conf)],
                       input=b"print('from the cli')", capture_output=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, b"from the cli\n"), r
    assert_alive(stack)
    problems = stack.wait_no_leftovers()
    assert not problems, problems


def test_network_run_is_under_the_egress_policy(cli_conf, tmp_path):
    # The listener plays a host service on loopback: the policy must refuse the connect
    # at once (EPERM) and the listener must receive nothing. Loopback only: if the block
    # failed, nothing would leave the machine.
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    prog = tmp_path / "net.py"
    prog.write_text("import socket\n"
                    "try:\n"
                    "    socket.create_connection(('127.0.0.1', %d), timeout=3)\n"
                    "    print('connected')\n"
                    "except OSError as e:\n"
                    "    print('refused', e.errno)\n" % port)
    r = sandcell(cli_conf, "run", "--network", str(prog))
    try:
        listener.accept()
        received = True
    except OSError:
        received = False
    listener.close()
    assert r.returncode == 0, r
    assert r.stdout == b"refused 1\n", r
    assert not received
    assert_nothing_left(cli_conf)
    assert not [p for p in os.listdir("/sys/fs/bpf") if p.startswith(cli_conf["cgroup_name"])]


# ---- capabilities: what the unit's bounding set must keep ------------------------------

def without_capability(cap, argv, **kw):
    """argv run with cap dropped from its bounding set (as a unit's CapabilityBoundingSet=
    would): root's effective set after exec is then everything but cap."""
    return subprocess.run(["setpriv", "--bounding-set", "-" + cap] + argv, capture_output=True,
                          timeout=60, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "API_KEY": "k"},
                          **kw)


@pytest.mark.parametrize("cap", ["sys_admin", "setuid", "setgid", "setpcap", "kill"])
def test_without_a_required_capability_nothing_starts(cli_conf, cap):
    r = without_capability(cap, [os.path.join(builddir(), "sandcell"), "run", "--config",
                                 cli_conf["path"]], input=b"print(1)\n")
    assert r.returncode == 125, r
    assert b"missing capability cap_%s" % cap.encode() in r.stderr, r
    r = without_capability(cap, [os.path.join(builddir(), "sandcell"), "check", "--config",
                                 cli_conf["path"]])
    assert r.returncode == 1, r
    assert re.search(rb"^cap_%s +FAIL +missing" % cap.encode(), r.stdout, re.M), r.stdout
    assert_nothing_left(cli_conf)


def test_sandcelld_without_a_required_capability_refuses_to_start(cli_conf):
    conf = os.path.join(cli_conf["dir"], "daemon.conf")
    with open(conf, "w") as f:
        f.write("run_dir = %s/daemon-run\nsocket = %s/daemon.sock\ncgroup_name = %s-d\n"
                "uid_base = %d\n" % (cli_conf["dir"], cli_conf["dir"], cli_conf["cgroup_name"],
                                     UID_BASE + 4096))
    r = without_capability("setuid", [os.path.join(builddir(), "sandcelld"), "--config", conf])
    assert r.returncode != 0, r
    assert b"missing capability cap_setuid (the sandbox's uid)" in r.stderr + r.stdout, r
    assert not os.path.exists(os.path.join(cli_conf["dir"], "daemon.sock"))


def test_sandcelld_check_leaves_no_run_dir(cli_conf):
    conf = os.path.join(cli_conf["dir"], "check.conf")
    run_dir = os.path.join(cli_conf["dir"], "check-run")
    with open(conf, "w") as f:
        f.write("run_dir = %s\nsocket = %s/check.sock\ncgroup_name = %s-c\nuid_base = %d\n"
                % (run_dir, cli_conf["dir"], cli_conf["cgroup_name"], UID_BASE + 8192))
    r = subprocess.run([os.path.join(builddir(), "sandcelld"), "--check", "--config", conf],
                       capture_output=True, timeout=120,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "API_KEY": "k"})
    assert r.returncode == 0, r
    assert b"executor: OK" in r.stdout and b"cap_sys_admin: OK" in r.stdout, r.stdout
    assert not os.path.exists(run_dir)
