#!/usr/bin/env python3
"""deploy_compose: deploy/docker-compose.yml really up, with podman-compose.
The base images are a debootstrapped bookworm (cached) imported into podman
(the Dockerfile's BUILD_IMAGE and RUNTIME_IMAGE build arguments); the .debs
are this build's, taken by the Dockerfile's prebuilt path (DEBS=prebuilt,
deploy/packages/ of the build context), and installed in the images with
apt from Debian's mirror. The build context is a copy of deploy/ with the
.debs in it (the compose file and its neighbours unchanged), so nothing is
written to the source tree.

Then: the simulated fleet sends, every journaled event reaches a
subscriber of the cloud broker's published port (`edgespool sub`, from
sequence 1, started on the cloud broker before the rest of the site); the
agent's process is killed and its restart policy brings it back, losing
nothing; `podman-compose down -v` leaves no container, volume or network.
podman's own settings (runc, cgroupfs, ulimits this machine allows) live in
a containers.conf of the test's, never in the compose file."""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from deploylib import Locked, RUNS, check_sequences, log, ndjson, need_root_and, rootfs
from pkglib import Fail, build_debs, check, main, run, wait_for

PROJECT = "edgespool-test"
NODE = "site-1/gw-1"
LABEL = "io.podman.compose.project=" + PROJECT
CONTAINERS_CONF = """# The deploy test's podman settings (CONTAINERS_CONF): crun refuses this
# machine's hybrid cgroups, there is no systemd to manage cgroups, and the
# default ulimits exceed the hard limits here.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Podman:
    def __init__(self, tmp):
        conf = os.path.join(tmp, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=conf)

    def __call__(self, *args, ok=(0,), timeout=600):
        return run(["podman"] + list(args), env=self.env, ok=ok, timeout=timeout)

    def lines(self, *args):
        return [l for l in self(*args).stdout.splitlines() if l.strip()]

    def leftovers(self):
        """What the project has in podman: containers, volumes, networks, pods."""
        return {
            "containers": self.lines("ps", "-a", "--filter", "label=" + LABEL, "--format",
                                     "{{.Names}}"),
            "volumes": self.lines("volume", "ls", "--filter", "label=" + LABEL, "--format",
                                  "{{.Name}}"),
            "networks": [n for n in self.lines("network", "ls", "--format", "{{.Name}}")
                         if n.startswith(PROJECT + "_")],
            "pods": self.lines("pod", "ps", "--filter", "name=" + PROJECT, "--format",
                               "{{.Name}}"),
        }

    def remove_project(self):
        """Everything of the project, whatever state a run left it in."""
        left = self.leftovers()
        if left["containers"]:
            self("rm", "-f", "-t", "5", *left["containers"], ok=(0, 1))
        for pod in left["pods"]:
            self("pod", "rm", "-f", pod, ok=(0, 1))
        if left["volumes"]:
            self("volume", "rm", "-f", *left["volumes"], ok=(0, 1))
        for net in left["networks"]:
            self("network", "rm", "-f", net, ok=(0, 1))
        # The images podman-compose built (named after the project).
        images = self.lines("images", "--format", "{{.Repository}}",
                            "--filter", "reference=localhost/%s_*" % PROJECT)
        if images:
            self("rmi", "-f", *images, ok=(0, 1, 2))


def base_image(podman, tree):
    """The debootstrapped minbase tree as a podman image, imported once per
    tree (its tag names the tree and when it was made)."""
    stamp = os.path.join(tree, ".edgespool-test")
    tag = "localhost/edgespool-test/bookworm:%s-%d" % (os.path.basename(tree)[7:],
                                                       int(os.stat(stamp).st_mtime))
    if podman("image", "exists", tag, ok=(0, 1)).returncode == 0:
        log("base image: %s (cached)" % tag)
        return tag
    for old in podman.lines("images", "--format", "{{.Repository}}:{{.Tag}}",
                            "localhost/edgespool-test/bookworm"):
        podman("rmi", old, ok=(0, 1, 2))
    start = time.monotonic()
    tar = subprocess.Popen(["tar", "-C", tree, "--exclude=./.edgespool-test", "-c", "."],
                           stdout=subprocess.PIPE)
    p = subprocess.run(["podman", "import", "-", tag], stdin=tar.stdout, env=podman.env,
                       capture_output=True, text=True)
    tar.stdout.close()
    check(tar.wait() == 0 and p.returncode == 0, "podman import: %s" % p.stderr)
    log("base image: %s imported from %s in %.0f s" % (tag, tree, time.monotonic() - start))
    return tag


def make_context(source, debs, ctx):
    """ctx/deploy: the repository's deploy/ as it is, plus ctx/deploy/packages/
    with this build's .debs (the Dockerfile's DEBS=prebuilt)."""
    shutil.copytree(os.path.join(source, "deploy"), os.path.join(ctx, "deploy"),
                    ignore=shutil.ignore_patterns("packages"))
    pkgs = os.path.join(ctx, "deploy", "packages")
    os.makedirs(pkgs)
    for deb in debs.values():
        shutil.copy(deb, pkgs)
    return os.path.join(ctx, "deploy", "docker-compose.yml")


class Site:
    def __init__(self, podman, compose_file, base, out):
        self.podman, self.file, self.out = podman, compose_file, out
        self.ports = {k: free_port() for k in ("EDGE", "CLOUD", "AGENT", "BRIDGE")}
        self.env = dict(podman.env, EDGESPOOL_DEBS="prebuilt", EDGESPOOL_BUILD_IMAGE=base,
                        EDGESPOOL_RUNTIME_IMAGE=base, BUILDAH_LAYERS="false",
                        **{"EDGESPOOL_%s_PORT" % k: str(v) for k, v in self.ports.items()})
        self.token = open(os.path.join(os.path.dirname(compose_file), "compose",
                                       "http.token")).read().strip()

    def compose(self, *args, timeout=900):
        """podman-compose; its output (it echoes each podman command) is kept."""
        p = subprocess.run(["podman-compose", "-p", PROJECT, "-f", self.file] + list(args),
                           env=self.env, capture_output=True, text=True, timeout=timeout)
        with open(os.path.join(self.out, "podman-compose.log"), "a") as f:
            f.write("$ podman-compose %s\n%s%s\n" % (" ".join(args), p.stdout, p.stderr))
        check(p.returncode == 0, "podman-compose %s: exit %d\n%s%s" % (
            " ".join(args), p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
        return p

    def container(self, service):
        return "%s_%s_1" % (PROJECT, service)

    def inspect(self, service, fmt):
        return self.podman("inspect", "-f", fmt, self.container(service)).stdout.strip()

    def logs(self, service):
        p = self.podman("logs", self.container(service))
        return p.stdout + p.stderr

    def api(self, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.ports["AGENT"], path),
                                     headers={"Authorization": "Bearer " + self.token})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def latest_seq(self):
        s = self.api("/api/status")
        return s["journal"]["latest_seq"] if s else 0


def running(site, svc):
    wait_for("%s running" % svc, 60, lambda: site.inspect(svc, "{{.State.Status}}") == "running")


def build_and_up(site, cli):
    """The images built; the cloud broker up first and the subscriber on it,
    then the bridge, then the rest of the site. A subscriber (and a new
    bridge) tracks each node from the first event it sees, and an MQTT
    re-send request does not cross the bridge (docs/consumers.md): started
    in another order, the first events would reach only the journals."""
    start = time.monotonic()
    site.compose("build")
    built = time.monotonic() - start
    site.compose("up", "-d", "cloud-broker")
    running(site, "cloud-broker")
    sub = start_subscriber(site, cli)
    # What depends_on orders (the bridge before the agent), made certain:
    # podman-compose starts containers in order but waits for nothing.
    site.compose("up", "-d", "bridge")
    wait_for("the bridge subscribed on the edge broker", 60, lambda: "connected to tcp://"
             "edge-broker" in site.logs("bridge"))
    site.compose("up", "-d")
    for svc in ("edge-broker", "cloud-broker", "agent", "fleet", "bridge"):
        running(site, svc)
    log("podman-compose build: %.0f s; up -d: %.0f s; 5 containers running"
        % (built, time.monotonic() - start - built))
    return sub


def start_subscriber(site, cli):
    """edgespool sub on the cloud broker's published port (from sequence 1;
    a persistent session)."""
    path = os.path.join(site.out, "sub.ndjson")
    log_f = open(os.path.join(site.out, "sub.log"), "w")
    proc = subprocess.Popen([cli, "sub", "--mqtt.url", "mqtt://127.0.0.1:%d" %
                             site.ports["CLOUD"], "--mqtt.client_id", "es-deploy-test-sub",
                             "--sub.out", path, "--sub.stats", path + ".stats",
                             "--sub.from_start"], stdout=log_f, stderr=log_f)
    site.sub_path = path

    def connected():
        check(proc.poll() is None, "edgespool sub exited: " + open(log_f.name).read())
        try:
            return json.load(open(path + ".stats")).get("connected")
        except (OSError, ValueError):
            return False
    wait_for("the subscriber connected", 30, connected)
    return proc


def kill_and_restart(site):
    """SIGKILL to the agent's process (a crash): the restart policy
    (unless-stopped) starts it again; events flow again after."""
    pid = int(site.inspect("agent", "{{.State.Pid}}"))
    count = int(site.inspect("agent", "{{.RestartCount}}"))
    before = site.latest_seq()
    os.kill(pid, signal.SIGKILL)

    def back():
        st = site.inspect("agent", "{{.State.Status}} {{.State.Pid}} {{.RestartCount}}").split()
        return st[0] == "running" and int(st[1]) not in (0, pid) and int(st[2]) > count
    wait_for("the agent restarted by its restart policy", 60, back)
    after = wait_for("events after the agent's restart", 60,
                     lambda: site.latest_seq() > before + 20 and site.latest_seq())
    log("killed the agent (pid %d, SIGKILL) at sequence %d: restarted by podman (restart: "
        "unless-stopped), sequence %d" % (pid, before, after))


def check_devices(site):
    """Device to agent: each device's records are its sequence 1..last (no
    record lost when the link dropped with the agent)."""
    d = site.api("/api/devices") or {}
    items = d.get("devices", d.get("items", []))
    check(len(items) == 8, "the agent knows %d devices: %s" % (len(items), d))
    bad = [x for x in items if x.get("records") != x.get("last_seq")]
    check(not bad, "devices with holes: %s" % bad)
    log("agent: 8 devices, each with records == its last sequence (%s)"
        % ", ".join(str(x["records"]) for x in items))


def check_delivered(site, sub_path):
    site.podman("stop", "-t", "10", site.container("fleet"))

    def drained():
        s = site.api("/api/status")
        return s and s["journal"]["pending"] == 0 and s["journal"]["latest_seq"]
    last = wait_for("the agent's journal drained", 60, drained)
    counts = wait_for("events 1..%d at the cloud subscriber" % last, 120, lambda: (
        check_sequences(ndjson(sub_path), NODE, last, "cloud") if {
            l["seq"] for l in ndjson(sub_path) if l.get("node") == NODE} >= set(
                range(1, last + 1)) else None))
    log("cloud broker (published port %d): events 1..%d of %s all arrived (%s)"
        % (site.ports["CLOUD"], last, NODE, counts))


def down(site):
    site.compose("down", "-v")
    left = site.podman.leftovers()
    check(not left["containers"] and not left["volumes"] and not left["pods"],
          "left after podman-compose down -v: %s" % left)
    if left["networks"]:
        # podman-compose 1.0.3's down removes containers, pods and (-v)
        # volumes, not the project's network (Docker Compose's does).
        for net in left["networks"]:
            site.podman("network", "rm", net)
        log("podman-compose down -v: no container, volume or pod left; its network %s "
            "(podman-compose 1.0.3 leaves it, Docker Compose does not) removed by the test"
            % ", ".join(left["networks"]))
    else:
        log("podman-compose down -v: no container, volume, pod or network left")
    left = site.podman.leftovers()
    check(not any(left.values()), "left: %s" % left)


def remove_images(podman, before):
    """The images this run built (the base image stays cached)."""
    now = podman.lines("images", "-a", "-q", "--no-trunc")
    new = [i for i in now if i not in before]
    if new:
        podman("rmi", "-f", *new, ok=(0, 1, 2))


def test():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpack", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--cli", required=True)
    a = ap.parse_args()
    need_root_and("debootstrap", "podman", "podman-compose", "runc")
    t0 = time.monotonic()
    with Locked(os.path.join(RUNS, "compose.lock")), \
            tempfile.TemporaryDirectory(prefix="es-deploy-compose-") as tmp:
        podman = Podman(tmp)
        podman.remove_project()  # what a killed run left
        debs = build_debs(a.cpack, a.build, os.path.join(tmp, "debs"))
        base = base_image(podman, rootfs([]))
        compose_file = make_context(a.source, debs, os.path.join(tmp, "ctx"))
        site = Site(podman, compose_file, base, tmp)
        before = podman.lines("images", "-a", "-q", "--no-trunc")
        sub = None
        try:
            sub = build_and_up(site, a.cli)
            sub_path = site.sub_path
            wait_for("events at the cloud subscriber", 90, lambda: sum(
                1 for l in ndjson(sub_path) if l.get("node") == NODE) >= 50)
            log("the fleet's events reach the cloud subscriber")
            kill_and_restart(site)
            check_delivered(site, sub_path)
            check_devices(site)
            down(site)
        except Fail:
            for svc in ("agent", "bridge", "fleet", "edge-broker", "cloud-broker"):
                p = podman("logs", "--tail", "30", site.container(svc), ok=(0, 125))
                print("--- %s\n%s%s" % (svc, p.stdout, p.stderr))
            for name in ("podman-compose.log", "sub.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    print("--- %s\n%s" % (name, open(path).read()[-6000:]))
            raise
        finally:
            if sub:
                sub.terminate()
                sub.wait(timeout=30)
            podman.remove_project()
            remove_images(podman, before)
    log("deploy_compose passed in %.0f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main(test)
