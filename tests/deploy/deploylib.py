"""Shared helpers of the deploy tests (tests/deploy): a debootstrapped
Debian tree cached between runs, a systemd-nspawn container booted from a
copy of it (systemd as PID 1) and driven through nsenter, and podman set up
for this machine. Each helper cleans up what it started, also on failure,
and a run that was killed (a ctest time-out) is cleaned up by the next."""
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "package"))
from pkglib import Fail, check, run, wait_for  # noqa: E402

SUITE = "bookworm"
CACHE = "/var/cache/edgespool-test"
# A cached tree older than this is made again (Debian's point releases).
MAX_AGE_S = 14 * 86400
RUNS = "/var/tmp/edgespool-test"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
       "DEBIAN_FRONTEND": "noninteractive"}


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def skip(why):
    print("SKIP: " + why, flush=True)
    sys.exit(77)


def need_root_and(*tools):
    """Skips (77, with the reason) where the machine cannot: not root, or a
    tool scripts/deps.sh installs is missing (it does on CI)."""
    if os.geteuid() != 0:
        skip("needs root (debootstrap, systemd-nspawn, podman)")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        skip("%s not installed (scripts/deps.sh installs it)" % ", ".join(missing))


def mirror():
    """The Debian mirror apt uses for SUITE (sources.list or deb822 files)."""
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in files:
        if not os.path.isfile(path):
            continue
        text = open(path).read()
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if m.group(2) == SUITE:
                return m.group(1)
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    raise Fail("no apt source for %s in /etc/apt" % SUITE)


def _mounts_under(path):
    found = []
    for line in open("/proc/self/mountinfo"):
        point = line.split()[4].replace("\\040", " ")
        if point == path or point.startswith(path + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path):
    """rm -rf that first unmounts what a killed debootstrap left mounted in
    it (its /proc, /sys), and never crosses into another file system."""
    if not os.path.lexists(path):
        return
    for point in _mounts_under(os.path.realpath(path)):
        subprocess.run(["umount", "-l", point], capture_output=True)
    run(["rm", "-rf", "--one-file-system", path])


class Locked:
    """An exclusive flock on a file, held for a with block."""
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def rootfs(include):
    """A debootstrapped SUITE (minbase plus the packages `include`), cached
    in CACHE under a key of its recipe. Made fresh when absent or stale: in
    a temporary folder, renamed into place only when complete, so a
    half-made one (a killed run) is never used, and removed by the next run.
    A tree with packages is the minbase tree (itself cached) plus an apt-get
    install in a chroot: one debootstrap for both trees."""
    with Locked(os.path.join(CACHE, "lock")):
        return _rootfs(sorted(include))


def _rootfs(include):
    recipe = {"suite": SUITE, "variant": "minbase", "include": include}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    final = os.path.join(CACHE, "rootfs-" + key)
    stamp = os.path.join(final, ".edgespool-test")
    for stale in glob.glob(final + ".tmp.*"):
        remove_tree(stale)
    if os.path.isfile(stamp) and time.time() - os.stat(stamp).st_mtime < MAX_AGE_S:
        log("rootfs: cached %s (%s)" % (final, ", ".join(include) or "minbase"))
        return final
    base = _rootfs([]) if include else None
    tmp = "%s.tmp.%d" % (final, os.getpid())
    try:
        start = time.monotonic()
        if base:
            copy_tree(base, tmp)
            os.unlink(os.path.join(tmp, ".edgespool-test"))
            # Its own mount namespace: the chroot's /proc goes with it.
            run(["unshare", "--mount", "--fork", "sh", "-c",
                 'mount -t proc proc "$0/proc" && chroot "$0" sh -c "apt-get update -qq && '
                 'apt-get install -y -qq --no-install-recommends $1"', tmp, " ".join(include)],
                env=ENV, timeout=900)
            run(["chroot", tmp, "sh", "-c", "rm -rf /var/lib/apt/lists/*"], env=ENV)
        else:
            run(["debootstrap", "--variant=minbase", SUITE, tmp, mirror()], env=ENV,
                timeout=1200)
        # What apt downloaded is not part of an installed system.
        run(["chroot", tmp, "apt-get", "clean"], env=ENV)
        with open(os.path.join(tmp, ".edgespool-test"), "w") as f:
            json.dump(recipe, f)
        remove_tree(final)
        os.rename(tmp, final)
        log("rootfs: made %s (%s) in %.0f s" % (final, ", ".join(include) or "minbase",
                                                time.monotonic() - start))
    finally:
        remove_tree(tmp)
    return final


def copy_tree(src, dst):
    """A private copy of a cached tree (reflinks where the file system can)."""
    remove_tree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    run(["cp", "-a", "--reflink=auto", src, dst])


def _set_pdeathsig():
    """In the child: SIGTERM when the test process dies (nspawn then powers
    the container off)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pid_alive(pid, word):
    try:
        return word in open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace")
    except OSError:
        return False


class Machine:
    """A tree booted with systemd-nspawn (systemd 252 as PID 1), its own
    network namespace (loopback only), commands run in it through nsenter.
    --register=no --keep-unit: this machine's PID 1 is not systemd, so there
    is no machined to register with (machinectl and systemd-run --machine do
    not work; nsenter does)."""

    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(RUNS, name)
        self.root = os.path.join(self.dir, "root")
        self.pidfile = os.path.join(RUNS, name + ".pids")
        self.proc = None
        self.pid = None
        self.lock = Locked(os.path.join(RUNS, name + ".lock"))

    def kill_stale(self):
        """A container a killed run left: its init dies with SIGKILL, which
        ends everything in its PID namespace."""
        try:
            pids = [int(x) for x in open(self.pidfile).read().split()]
        except (OSError, ValueError):
            pids = []
        for pid, word in zip(pids, ("systemd-nspawn", "systemd")):
            if _pid_alive(pid, word):
                log("killing %s (pid %d) left by an earlier run" % (word, pid))
                os.kill(pid, signal.SIGKILL)
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)

    def boot(self, tree):
        self.lock.__enter__()
        self.kill_stale()
        copy_tree(tree, self.root)
        # The private network has no resolver of its own; apt's downloads go
        # through the host's network (install()), its names through this.
        shutil.copy("/etc/resolv.conf", os.path.join(self.root, "etc/resolv.conf"))
        self.console = open(os.path.join(self.dir, "console.log"), "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", self.root, "-b", "--register=no", "--keep-unit",
             "--private-network", "-M", self.name, "--console=passive"],
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_set_pdeathsig)
        self.pid = wait_for("the container's systemd", 60, self._find_init)
        with open(self.pidfile, "w") as f:
            f.write("%d %d\n" % (self.proc.pid, self.pid))
        state = wait_for("systemctl is-system-running", 120, self._booted)
        log("booted %s: systemd PID %d, system %s" % (self.name, self.pid, state))
        return state

    def _find_init(self):
        if self.proc.poll() is not None:
            raise Fail("systemd-nspawn exited %d:\n%s" % (self.proc.returncode, self.console_log()))
        for child in open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)).read().split():
            # nspawn's child execs systemd once the container is set up.
            if open("/proc/%s/comm" % child).read().strip() == "systemd":
                return int(child)
        return None

    def _booted(self):
        p = self.sh("systemctl is-system-running", ok=(0, 1))
        state = p.stdout.strip()
        # offline: systemd has not yet made /run/systemd/system (early boot).
        if state in ("offline", "initializing", "starting", ""):
            return None
        check(state in ("running", "degraded"), "system %s:\n%s" % (state, self.sh(
            "systemctl --failed --no-pager", ok=(0, 1)).stdout))
        return state

    def console_log(self):
        return open(os.path.join(self.dir, "console.log"), errors="replace").read()[-4000:]

    def cmd(self, argv, ok=(0,), host_net=False, timeout=300):
        """argv in the container (every namespace; with host_net, all but
        the network one: the host's network for apt's downloads)."""
        ns = ["-m", "-u", "-i", "-p", "-C"] if host_net else ["-a"]
        return run(["nsenter", "-t", str(self.pid)] + ns + ["--", "env", "-i"] +
                   ["%s=%s" % kv for kv in ENV.items()] + argv, ok=ok, timeout=timeout)

    def sh(self, script, ok=(0,), **kw):
        return self.cmd(["sh", "-c", script], ok=ok, **kw)

    def net(self, argv, ok=(0,), timeout=60):
        """A host program in the container's network namespace only."""
        return run(["nsenter", "-t", str(self.pid), "-n", "--"] + argv, ok=ok, timeout=timeout)

    def path(self, p):
        """A container path as the host sees it: through its systemd's root
        once booted (/run, /tmp are the container's own mounts there)."""
        base = "/proc/%d/root" % self.pid if self.pid else self.root
        return os.path.join(base, p.lstrip("/"))

    def write(self, p, text, mode=0o644):
        with open(self.path(p), "w") as f:
            f.write(text)
        os.chmod(self.path(p), mode)

    def shutdown(self):
        """Powers off (SIGTERM to nspawn: the container's systemd stops every
        unit), else kills; removes the copy. Safe to call more than once."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                log("the container did not power off in 90 s: killing it")
                if self.pid and _pid_alive(self.pid, "systemd"):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        if self.pid and _pid_alive(self.pid, "systemd"):
            os.kill(self.pid, signal.SIGKILL)
        self.proc = None
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        remove_tree(self.dir)
        try:
            self.lock.__exit__(None, None, None)
        except (AttributeError, ValueError):
            pass


def ndjson(path):
    """The complete lines of an NDJSON file, parsed."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def check_sequences(lines, node, last_seq, where):
    """Every event 1..last_seq of `node` arrived (new, or filled by the
    repair), and nothing above it; returns (new, filled, dup) counts."""
    seen, counts = set(), {"new": 0, "filled": 0, "dup": 0}
    for l in lines:
        if l.get("node") != node:
            continue
        counts[l["verdict"]] = counts.get(l["verdict"], 0) + 1
        if l["verdict"] in ("new", "filled"):
            seen.add(l["seq"])
    missing = sorted(set(range(1, last_seq + 1)) - seen)
    check(not missing, "%s: %d of %d events of %s missing: %s" % (
        where, len(missing), last_seq, node, missing[:20]))
    check(max(seen) == last_seq, "%s: sequences above the agent's %d: %s" % (
        where, last_seq, sorted(s for s in seen if s > last_seq)[:10]))
    return counts
