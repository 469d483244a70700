#!/usr/bin/env python3
"""deploy_systemd: the .deb packages under a real systemd. A debootstrapped
bookworm (cached) boots under systemd-nspawn with systemd as PID 1 and a
network namespace of its own; there, as a user would:

  apt-get install ./edgespool-{agent,bridge,fleet-state,tools}_*.deb mosquitto

(dependencies resolved from Debian's mirror; apt's downloads go through the
host's network, everything else stays in the container). Then, through
nsenter: each unit enabled and active with the shipped configs; each
daemon's start line in `journalctl -u`; the configs changed as an admin
would (the bridge's and fleet-state's cloud broker: a second mosquitto in
the container; the agent's serial link: a device fleet on a pty, run as a
transient unit); the fleet's records acknowledged through a `systemctl
restart` of the agent and of mosquitto; every journaled event at the cloud
broker's subscriber (`edgespool sub`, sequences 1..N) and at fleet-state;
the sandbox in force in the agent's own namespaces; `systemctl stop`
draining within TimeoutStopSec; `apt-get purge` leaving nothing behind."""
import argparse
import glob
import json
import os
import re
import shutil
import tempfile
import time

from deploylib import Machine, check_sequences, log, ndjson, need_root_and, rootfs
from pkglib import Fail, build_debs, check, main, run, wait_for

UNITS = ("edgespool-agent", "edgespool-bridge", "edgespool-fleet-state")
START_LINES = {
    "edgespool-agent": r"agent: node /site-1/gw-1 serving HTTP on port 8080",
    "edgespool-bridge": r"bridge: bridging 1 edge broker\(s\) .* HTTP on port 8081",
    "edgespool-fleet-state": r"fleet: HTTP on port 8083",
}
NODE = "site-1/gw-1"
DEVICES, RATE, COUNT = 8, 5, 150
CLOUD_PORT = 1884
SUB_OUT = "/var/tmp/es-test/sub.ndjson"
FLEET_DIR = "/run/es-test-fleet"

CLOUD_UNIT = """[Unit]
Description=the deploy test's cloud broker (a second mosquitto, port %d)
[Service]
ExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/es-test-cloud.conf
User=mosquitto
StateDirectory=es-test-cloud
[Install]
WantedBy=multi-user.target
""" % CLOUD_PORT
CLOUD_CONF = """listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location /var/lib/es-test-cloud/
log_dest stderr
""" % CLOUD_PORT


def install(m, debs):
    """apt-get install of the four packages and Debian's mosquitto."""
    os.makedirs(m.path("/root/debs"))
    names = []
    for pkg in ("edgespool-agent", "edgespool-bridge", "edgespool-fleet-state",
                "edgespool-tools"):
        shutil.copy(debs[pkg], m.path("/root/debs"))
        names.append("./" + os.path.basename(debs[pkg]))
    start = time.monotonic()
    m.cmd(["apt-get", "update", "-qq"], host_net=True)
    p = m.sh("cd /root/debs && apt-get install -y %s mosquitto" % " ".join(names),
             host_net=True, timeout=600)
    n = re.search(r"(\d+) newly installed", p.stdout)
    log("apt-get install ./*.deb mosquitto: %s packages newly installed in %.0f s"
        % (n.group(1) if n else "?", time.monotonic() - start))
    for pkg in ("edgespool-agent", "edgespool-bridge", "edgespool-fleet-state",
                "edgespool-tools", "mosquitto"):
        st = m.cmd(["dpkg-query", "-W", "-f", "${db:Status-Status}", pkg]).stdout
        check(st == "installed", "%s is %s after apt-get install" % (pkg, st))


def active(m, unit):
    return m.cmd(["systemctl", "is-active", unit], ok=(0, 3)).stdout.strip()


def check_units(m):
    """Enabled and started by the packages' postinst, with the shipped configs."""
    for unit in UNITS + ("mosquitto",):
        wait_for("%s active" % unit, 30, lambda: active(m, unit) == "active")
        en = m.cmd(["systemctl", "is-enabled", unit], ok=(0, 1)).stdout.strip()
        check(en == "enabled", "%s is %s, not enabled" % (unit, en))
        log("systemctl is-active %s: active (enabled)" % unit)
    for unit, line in START_LINES.items():
        def seen():
            return re.search(line, m.cmd(["journalctl", "-u", unit, "-o", "cat",
                                          "--no-pager"]).stdout)
        found = wait_for("%s's start line in journalctl -u" % unit, 30, seen)
        log("journalctl -u %s: %s" % (unit, found.group(0)))
    state = m.cmd(["systemctl", "is-system-running"], ok=(0, 1)).stdout.strip()
    failed = m.cmd(["systemctl", "--failed", "--plain", "--no-legend"]).stdout.strip()
    check(state == "running" and not failed, "system %s; failed: %s" % (state, failed))


def edit(m, path, old, new):
    text = open(m.path(path)).read()
    check(re.search(old, text, re.M), "%s: no %r in the shipped config" % (path, old))
    with open(m.path(path), "w") as f:
        f.write(re.sub(old, new, text, count=1, flags=re.M))


def configure(m):
    """As an admin would: a cloud broker (here a second mosquitto), the
    bridge and fleet-state pointed at it, the agent at a serial device."""
    m.write("/etc/mosquitto/es-test-cloud.conf", CLOUD_CONF)
    m.write("/etc/systemd/system/es-test-cloud-broker.service", CLOUD_UNIT)
    m.cmd(["systemctl", "daemon-reload"])
    m.cmd(["systemctl", "enable", "--now", "es-test-cloud-broker"])
    edit(m, "/etc/edgespool/bridge.ini", r"^url = mqtts://cloud\.example:8883$",
         "url = mqtt://127.0.0.1:%d" % CLOUD_PORT)
    edit(m, "/etc/edgespool/fleet-state.ini", r"^amqp = ", "#amqp = ")
    edit(m, "/etc/edgespool/fleet-state.ini", r"^#mqtt = mqtt://cloud\.example:1883$",
         "mqtt = mqtt://127.0.0.1:%d" % CLOUD_PORT)
    edit(m, "/etc/edgespool/agent.ini", r"^\[link\]$",
         "[link]\nserial = %s/tty:115200" % FLEET_DIR)
    for prog, conf in (("edge-agent", "agent"), ("cloud-bridge", "bridge"),
                       ("fleet-state", "fleet-state")):
        m.cmd(["runuser", "-u", "edgespool", "--", "/usr/bin/" + prog, "--config",
               "/etc/edgespool/%s.ini" % conf, "--print-config"])
    log("configs edited; each passes --print-config as the edgespool user")


def start_subscriber(m):
    """edgespool sub (the tools package) on the cloud broker, from sequence
    1, as a transient unit."""
    os.makedirs(os.path.dirname(m.path(SUB_OUT)), exist_ok=True)
    m.cmd(["systemd-run", "--unit=es-test-sub", "-p", "RemainAfterExit=yes",
           "/usr/bin/edgespool", "sub", "--mqtt.url", "mqtt://127.0.0.1:%d" % CLOUD_PORT,
           "--mqtt.client_id", "es-test-sub", "--sub.out", SUB_OUT,
           "--sub.stats", SUB_OUT + ".stats", "--sub.from_start"])

    def connected():
        try:
            return json.load(open(m.path(SUB_OUT + ".stats"))).get("connected")
        except (OSError, ValueError):
            return False
    # Before anything is forwarded: it sees only what arrives once it is there.
    wait_for("the subscriber connected to the cloud broker", 30, connected)


def start_fleet(m):
    """firmware-host as edgespool (so the pty it makes is the agent's to
    open), COUNT records per device, exit 0 only if all are acknowledged."""
    m.cmd(["systemd-run", "--unit=es-test-fleet", "-p", "User=edgespool", "-p",
           "Group=edgespool", "-p", "RuntimeDirectory=es-test-fleet", "-p",
           "RemainAfterExit=yes", "/usr/bin/firmware-host", "--link",
           "pty:%s/tty" % FLEET_DIR, "--devices", str(DEVICES), "--rate", str(RATE),
           "--count", str(COUNT), "--timeout", "120", "--state", FLEET_DIR + "/state",
           "--summary", FLEET_DIR + "/summary.json", "--ready", FLEET_DIR + "/ready"])
    wait_for("the fleet's pty", 20, lambda: os.path.exists(m.path(FLEET_DIR + "/ready")))


def agent_status(m):
    p = m.net(["curl", "-sf", "http://127.0.0.1:8080/api/status"], ok=(0, 7, 22, 52, 56))
    return json.loads(p.stdout) if p.returncode == 0 else None


def latest_seq(m):
    s = agent_status(m)
    return s["journal"]["latest_seq"] if s else 0


def main_pid(m, unit):
    return int(m.cmd(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout)


def restart_under_load(m, unit):
    """systemctl restart while the fleet sends; events flow again after."""
    before_pid, before = main_pid(m, unit), latest_seq(m)
    m.cmd(["systemctl", "restart", unit])
    check(active(m, unit) == "active" and main_pid(m, unit) != before_pid,
          "%s: not active with a new process after systemctl restart" % unit)
    after = wait_for("events after restarting %s" % unit, 30,
                     lambda: latest_seq(m) > before + 20 and latest_seq(m))
    check(active(m, "es-test-fleet") == "active" and not os.path.exists(
        m.path(FLEET_DIR + "/summary.json")), "the fleet finished before %s was restarted: "
        "the restart was not under load" % unit)
    log("systemctl restart %s at sequence %d: active again (pid %d -> %d), sequence %d"
        % (unit, before, before_pid, main_pid(m, unit), after))


def fleet_done(m):
    """The fleet's summary once it exited: every record acknowledged."""
    path = m.path(FLEET_DIR + "/summary.json")
    exited = m.cmd(["systemctl", "show", "-p", "ExecMainCode", "--value",
                    "es-test-fleet"]).stdout.strip()
    if exited == "0" or not os.path.exists(path):
        return None
    status = m.cmd(["systemctl", "show", "-p", "ExecMainStatus", "--value",
                    "es-test-fleet"]).stdout.strip()
    summary = json.load(open(path))
    check(status == "0", "firmware-host exited %s: %s" % (status, summary))
    return summary


def run_fleet(m):
    start_subscriber(m)
    start_fleet(m)
    for unit in UNITS:
        m.cmd(["systemctl", "restart", unit])
    wait_for("the agent journaling the fleet's records", 60, lambda: latest_seq(m) >= 100)
    journal = m.cmd(["journalctl", "-u", "edgespool-agent", "-o", "cat", "--no-pager"]).stdout
    check("/run/es-test-fleet/tty" in journal, "the agent's journal does not name the serial "
          "link:\n" + journal[-2000:])
    log("the agent journals the fleet's records from %s/tty (sequence %d)"
        % (FLEET_DIR, latest_seq(m)))
    restart_under_load(m, "edgespool-agent")
    restart_under_load(m, "mosquitto")
    summary = wait_for("every record acknowledged (firmware-host --count)", 180,
                       lambda: fleet_done(m))
    check(summary["acked"] == DEVICES * COUNT and summary["pending"] == 0,
          "the fleet's summary: %s" % summary)
    log("firmware-host: %d devices x %d records, all acknowledged by the agent (%s)"
        % (DEVICES, COUNT, {k: summary[k] for k in ("sent", "resent", "acked")}))
    return summary


def check_cloud(m):
    """Every journaled event reached the cloud broker through the bridge."""
    def drained():
        s = agent_status(m)
        return s and s["journal"]["pending"] == 0 and s["journal"]["latest_seq"]
    last = wait_for("the agent's journal drained", 60, drained)
    counts = wait_for("events 1..%d at the cloud subscriber" % last, 90, lambda: (
        check_sequences(ndjson(m.path(SUB_OUT)), NODE, last, "cloud") if any(
            l.get("node") == NODE and l["seq"] == last for l in ndjson(m.path(SUB_OUT)))
        else None))
    log("cloud broker: events 1..%d of %s all arrived through the bridge (%s)"
        % (last, NODE, counts))
    p = m.net(["curl", "-sf", "http://127.0.0.1:8083/api/devices"])
    devices = json.loads(p.stdout)
    items = devices.get("devices", devices.get("items", []))
    check(len(items) >= DEVICES, "fleet-state knows %d devices: %s" % (len(items), p.stdout[:500]))
    log("fleet-state (MQTT source, the cloud broker): %d devices" % len(items))
    return last


def in_agent(m, pid, script, setuid=None):
    """A shell in the running agent's own namespaces (mount, pid, ...)."""
    ids = ["--setuid", str(setuid[0]), "--setgid", str(setuid[1])] if setuid else []
    return run(["nsenter", "-t", str(pid), "-a"] + ids + ["--", "/bin/sh", "-c", script],
               ok=(0, 1, 2))


def check_sandbox(m):
    """The hardening in force: the process's credentials and filter, and
    writes tried in its own mount namespace (as root and as edgespool)."""
    pid = main_pid(m, "edgespool-agent")
    status = m.cmd(["cat", "/proc/%d/status" % pid]).stdout
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    f = {k: fields[k].split()[0] for k in ("Uid", "NoNewPrivs", "Seccomp", "CapEff",
                                           "CapPrm", "CapBnd", "CapAmb")}
    uid = int(m.cmd(["id", "-u", "edgespool"]).stdout)
    gid = int(m.cmd(["id", "-g", "edgespool"]).stdout)
    check(f["Uid"] == str(uid) and f["NoNewPrivs"] == "1" and f["Seccomp"] == "2" and
          all(f[c] == "0000000000000000" for c in ("CapEff", "CapPrm", "CapBnd", "CapAmb")),
          "the agent's /proc/PID/status: %s" % f)
    log("agent /proc/%d/status: uid %s, NoNewPrivs 1, Seccomp 2 (filter), no capabilities"
        % (pid, f["Uid"]))
    host_pid = host_pid_of(m, pid)
    probes = ["/etc/es-probe", "/usr/es-probe", "/var/lib/es-probe", "/var/log/es-probe",
              "/root/es-probe", "/home/es-probe", "/opt/es-probe"]
    for who, ids in (("root", None), ("edgespool", (uid, gid))):
        for path in probes:
            p = in_agent(m, host_pid, "echo x > %s" % path, ids)
            check(p.returncode != 0, "as %s in the agent's namespace, %s was writable" % (
                who, path))
            if who == "root":
                check(re.search(r"Read-only file system|Permission denied", p.stderr),
                      "writing %s: %s" % (path, p.stderr))
        p = in_agent(m, host_pid, "echo x > /var/lib/edgespool/es-probe && rm "
                     "/var/lib/edgespool/es-probe && echo x > /tmp/es-probe-%s" % who, ids)
        check(p.returncode == 0, "as %s, the state folder or the private /tmp: %s"
              % (who, p.stderr))
        check(not os.path.exists(m.path("/tmp/es-probe-" + who)),
              "the agent's /tmp is the system's")
    log("agent's mount namespace: %s not writable (root or edgespool); "
        "/var/lib/edgespool writable; /tmp private" % ", ".join(p for p in probes))
    score = m.cmd(["systemd-analyze", "security", "--no-pager", "edgespool-agent"]).stdout
    level = re.search(r"Overall exposure level for edgespool-agent\.service: (.*)", score)
    log("systemd-analyze security edgespool-agent: %s" % (level.group(1) if level else "?"))


def host_pid_of(m, pid):
    """The host's PID of a process the container's PID namespace calls pid."""
    want = os.readlink("/proc/%d/ns/pid" % m.pid)
    for st in glob.glob("/proc/[0-9]*/status"):
        try:
            text = open(st).read()
            ns = re.search(r"^NSpid:\s+(.*)$", text, re.M).group(1).split()
            hp = int(st.split("/")[2])
            if len(ns) >= 2 and int(ns[-1]) == pid and os.readlink(
                    "/proc/%d/ns/pid" % hp) == want:
                return hp
        except (OSError, AttributeError, ValueError):
            continue
    raise Fail("no host PID for the container's PID %d" % pid)


def check_stop(m):
    """systemctl stop: SIGTERM, drain, exit 0, well within TimeoutStopSec."""
    timeout = m.cmd(["systemctl", "show", "-p", "TimeoutStopUSec", "--value",
                     "edgespool-agent"]).stdout.strip()
    for unit in UNITS:
        start = time.monotonic()
        m.cmd(["systemctl", "stop", unit], timeout=120)
        took = time.monotonic() - start
        show = m.cmd(["systemctl", "show", "-p", "Result", "-p", "ExecMainCode", "-p",
                      "ExecMainStatus", unit]).stdout
        props = dict(l.split("=", 1) for l in show.split())
        check(props == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"},
              "%s after systemctl stop: %s" % (unit, props))
        check(took < 60, "%s took %.1f s to stop (TimeoutStopSec %s)" % (unit, took, timeout))
        last = m.cmd(["journalctl", "-u", unit, "-o", "cat", "-n", "3", "--no-pager"]).stdout
        check("stopped (exit 0)" in last or "fleet" in unit, "%s's last lines: %s" % (unit, last))
        log("systemctl stop %s: exit 0 in %.1f s (TimeoutStopSec %s)" % (unit, took, timeout))


def check_purge(m):
    for unit in ("es-test-fleet", "es-test-sub"):
        m.cmd(["systemctl", "stop", unit], ok=(0, 5))
    m.cmd(["apt-get", "purge", "-y", "edgespool-agent", "edgespool-bridge",
           "edgespool-fleet-state", "edgespool-tools"], host_net=True)
    left = m.sh("ls -d /etc/edgespool /var/lib/edgespool /lib/systemd/system/edgespool* "
                "/etc/systemd/system/*/edgespool* /var/lib/systemd/deb-systemd-helper-*/"
                "*edgespool* /var/lib/systemd/deb-systemd-helper-*/*/*edgespool* "
                "/usr/bin/edge-agent /usr/bin/cloud-bridge /usr/bin/fleet-state "
                "/usr/bin/edgespool /usr/bin/firmware-host /usr/share/doc/edgespool* "
                "2>/dev/null", ok=(0, 1, 2)).stdout.split()
    check(not left, "left after apt-get purge: %s" % left)
    for db in ("passwd", "group"):
        p = m.cmd(["getent", db, "edgespool"], ok=(0, 2))
        check(p.returncode == 2, "edgespool is still in %s: %s" % (db, p.stdout))
    units = m.cmd(["systemctl", "list-units", "--all", "--plain", "--no-legend",
                   "edgespool*"]).stdout.strip()
    check(not units, "systemd still lists: %s" % units)
    procs = m.sh("cat /proc/[0-9]*/comm", ok=(0, 1)).stdout.split()
    left = [p for p in procs if p in ("edge-agent", "cloud-bridge", "fleet-state",
                                      "firmware-host")]
    check(not left, "still running after the purge: %s" % left)
    log("apt-get purge: no config, state, unit, enablement, program, user or group left")


def test():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpack", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    need_root_and("debootstrap", "systemd-nspawn", "nsenter", "curl")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="es-deploy-debs-") as tmp:
        debs = build_debs(a.cpack, a.build, tmp)
        log("cpack: %s" % ", ".join(os.path.basename(d) for d in debs.values()))
        tree = rootfs(["systemd", "systemd-sysv", "dbus"])
        m = Machine("es-deploy-systemd")
        try:
            systemd = m.boot(tree)
            version = m.cmd(["systemctl", "--version"]).stdout.split("\n")[0]
            log("PID 1 in the container: %s (%s)" % (version, systemd))
            install(m, debs)
            check_units(m)
            configure(m)
            run_fleet(m)
            check_cloud(m)
            check_sandbox(m)
            check_stop(m)
            check_purge(m)
        except Fail:
            if m.pid:
                print(m.sh("systemctl --no-pager status 'edgespool*' es-test-* mosquitto; "
                           "journalctl --no-pager -n 150", ok=(0, 1, 3, 4)).stdout[-12000:])
            raise
        finally:
            m.shutdown()
    log("deploy_systemd passed in %.0f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main(test)
