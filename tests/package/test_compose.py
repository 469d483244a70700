#!/usr/bin/env python3
"""pkg_compose: what can be checked of deploy/docker-compose.yml without a
container engine (tests/deploy/test_compose_up.py brings it up under
podman-compose): every file it names exists (Dockerfile, its build targets, mounted configs); each port a
service publishes is the port its mounted config listens on; the agent's and
the bridge's broker URLs and the fleet's device link point at a service and
the port that service's config listens on; the compose broker configs keep
the shipped ones' limits; the mounted configs pass the programs' validation
(--print-config); and each mounted mosquitto config starts a real broker."""
import argparse
import configparser
import os
import re
import shutil
import socket
import subprocess
import tempfile

import yaml

from pkglib import Fail, check, main, run, wait_for

# The settings a compose broker config must share with the shipped one.
SAME_AS_SHIPPED = ["persistence", "autosave_interval", "persistent_client_expiration",
                   "max_queued_messages", "max_queued_bytes", "max_inflight_messages",
                   "message_size_limit"]
SHIPPED = {"compose-edge.conf": "edge.conf", "compose-cloud.conf": "cloud.conf"}


def mosquitto_conf(path):
    """{key: first value} and the listener ports of a mosquitto config."""
    keys, ports = {}, set()
    for line in open(path):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            ports.add(int(words[1]))
        keys.setdefault(words[0], " ".join(words[1:]))
    return keys, ports


def ini(path):
    # strict=False: link.serial and the like may repeat a key.
    c = configparser.ConfigParser(strict=False, interpolation=None)
    c.read(path)
    return c


def port_of(address):
    m = re.search(r":(\d+)$", address)
    check(m, "no port in %r" % address)
    return int(m.group(1))


class Site:
    def __init__(self, deploy):
        self.deploy = deploy
        with open(os.path.join(deploy, "docker-compose.yml")) as f:
            self.doc = yaml.safe_load(f)
        self.services = self.doc.get("services") or {}
        check(set(self.services) >= {"edge-broker", "cloud-broker", "agent", "bridge", "fleet"},
              "services: %s" % sorted(self.services))

    def path(self, rel):
        return os.path.normpath(os.path.join(self.deploy, rel))

    def mounts(self, name):
        """{container path: host path} of a service's bind mounts."""
        out = {}
        for v in self.services[name].get("volumes") or []:
            parts = v.split(":")
            if parts[0].startswith((".", "/")):
                out[parts[1]] = self.path(parts[0])
        return out

    def listen_ports(self, name):
        """The ports a service's mounted config listens on."""
        m = self.mounts(name)
        if "/etc/mosquitto/mosquitto.conf" in m:
            return mosquitto_conf(m["/etc/mosquitto/mosquitto.conf"])[1]
        for conf in ("/etc/edgespool/agent.ini", "/etc/edgespool/bridge.ini"):
            if conf in m:
                c = ini(m[conf])
                ports = {port_of(c["http"]["listen"])}
                if c.has_option("link", "listen"):
                    ports |= {port_of(x.strip()) for x in c["link"]["listen"].split(",")}
                return ports
        return set()


def check_files(site):
    targets = {}
    for name, svc in site.services.items():
        b = svc.get("build")
        check(isinstance(b, dict), "%s: no build section" % name)
        context = site.path(b.get("context", "."))
        dockerfile = os.path.join(context, b.get("dockerfile", "Dockerfile"))
        check(os.path.isfile(dockerfile), "%s: no Dockerfile %s" % (name, dockerfile))
        stages = targets.setdefault(dockerfile, set(re.findall(
            r"^FROM\s+\S+\s+AS\s+(\S+)", open(dockerfile).read(), re.M | re.I)))
        check(b.get("target") in stages, "%s: target %r is not a stage of %s (%s)"
              % (name, b.get("target"), dockerfile, sorted(stages)))
        for dest, src in site.mounts(name).items():
            check(os.path.isfile(src), "%s: mounted file %s does not exist" % (name, src))
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0]
            if not src.startswith((".", "/")):
                check(src in (site.doc.get("volumes") or {}), "%s: volume %s undeclared"
                      % (name, src))
    print("compose: every Dockerfile, target and mounted file exists")


def check_ports(site):
    for name, svc in site.services.items():
        for p in svc.get("ports") or []:
            container = int(str(p).split(":")[-1].split("/")[0])
            listens = site.listen_ports(name)
            check(container in listens, "%s publishes %s, but its config listens on %s"
                  % (name, p, sorted(listens)))
            print("compose: %s publishes %s = its config's port" % (name, p))


def check_url(site, who, url):
    m = re.match(r"^mqtts?://([^:/]+):(\d+)$", url) or re.match(r"^tcp:([^:/]+):(\d+)$", url)
    check(m, "%s: cannot read %r" % (who, url))
    host, port = m.group(1), int(m.group(2))
    check(host in site.services, "%s: %s is not a service" % (who, host))
    check(port in site.listen_ports(host), "%s: %s, but %s listens on %s"
          % (who, url, host, sorted(site.listen_ports(host))))


def check_links(site):
    agent = ini(site.mounts("agent")["/etc/edgespool/agent.ini"])
    bridge = ini(site.mounts("bridge")["/etc/edgespool/bridge.ini"])
    check_url(site, "agent mqtt.url", agent["mqtt"]["url"])
    check_url(site, "bridge edge.url", bridge["edge"]["url"])
    check_url(site, "bridge cloud.url", bridge["cloud"]["url"])
    check(bridge["edge"]["url"] != bridge["cloud"]["url"], "the bridge would forward in a loop")
    cmd = site.services["fleet"].get("command") or []
    check("--link" in cmd, "fleet: no --link")
    check_url(site, "fleet --link", cmd[cmd.index("--link") + 1])
    print("compose: broker URLs and the device link point at the right services and ports")


def check_brokers(site):
    for name in ("edge-broker", "cloud-broker"):
        conf = site.mounts(name)["/etc/mosquitto/mosquitto.conf"]
        shipped = os.path.join(site.deploy, "mosquitto", SHIPPED[os.path.basename(conf)])
        mine, theirs = mosquitto_conf(conf)[0], mosquitto_conf(shipped)[0]
        for k in SAME_AS_SHIPPED:
            check(mine.get(k) == theirs.get(k), "%s: %s is %r, %s has %r"
                  % (conf, k, mine.get(k), shipped, theirs.get(k)))
    print("compose: broker configs keep the shipped configs' limits")


def check_programs(site, agent, bridge, tmp):
    """The mounted configs pass validation; the token file is the mounted one."""
    for prog, svc, conf in ((agent, "agent", "agent.ini"), (bridge, "bridge", "bridge.ini")):
        m = site.mounts(svc)
        run([prog, "--config", m["/etc/edgespool/" + conf], "--print-config",
             "--http.token_file", m["/etc/edgespool/http.token"]])
    print("compose: agent.ini and bridge.ini pass the programs' validation")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto():
    """The mosquitto binary (PATH, else /usr/sbin/mosquitto)."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    check(os.path.exists(found), "mosquitto not found (scripts/deps.sh installs it)")
    return found


def start_broker(conf, tmp):
    """Starts mosquitto on the config, on a free loopback port, and stops it."""
    port = free_port()
    text = open(conf).read()
    check(re.search(r"^listener 1883 0\.0\.0\.0$", text, re.M), "%s: listener line" % conf)
    text = re.sub(r"^listener 1883 0\.0\.0\.0$", "listener %d 127.0.0.1" % port, text, flags=re.M)
    text = text.replace("/var/lib/mosquitto/", tmp + "/")
    if os.geteuid() == 0:
        text += "\nuser root\n"
    path = os.path.join(tmp, os.path.basename(conf))
    with open(path, "w") as f:
        f.write(text)
    log = path + ".log"
    with open(log, "w") as out:
        p = subprocess.Popen([mosquitto(), "-c", path], stdout=out, stderr=out)

    def up():
        if p.poll() is not None:
            raise Fail("mosquitto -c %s exited:\n%s" % (conf, open(log).read()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    try:
        wait_for("mosquitto on %s" % conf, 20, up)
    finally:
        p.terminate()
        p.wait(timeout=20)
    print("compose: mosquitto starts with %s" % os.path.basename(conf))


def test():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--bridge", required=True)
    a = ap.parse_args()
    site = Site(os.path.join(a.source, "deploy"))
    check_files(site)
    check_ports(site)
    check_links(site)
    check_brokers(site)
    with tempfile.TemporaryDirectory(prefix="es-pkg-compose-") as tmp:
        check_programs(site, a.agent, a.bridge, tmp)
        for name in ("edge-broker", "cloud-broker"):
            start_broker(site.mounts(name)["/etc/mosquitto/mosquitto.conf"], tmp)


if __name__ == "__main__":
    main(test)
