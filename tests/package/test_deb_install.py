#!/usr/bin/env python3
"""pkg_deb_install (root only, else skipped with 77): the amd64 (native)
edgespool-agent package really installs with dpkg -i; systemd-analyze verify
accepts its unit (systemd need not be PID 1); the edgespool system user and
/var/lib/edgespool (0750, edgespool:edgespool) exist; the installed agent,
run as that user with the default config, validates it, starts, and journals
an event in the state folder. Then the bridge's package beside it (its unit,
its journal in the same folder), and fleet-state's (its unit; with its
default config and no broker it serves /healthz and keeps retrying). Purge
order with three daemon packages: purging the agent leaves the others'
files, the folder and the user; removing, then purging the bridge while
fleet-state is installed (with no file of its own in the folder) still
leaves the folder and the user; purging fleet-state last (always, at the
end) removes them too, and the units' enablement."""
import argparse
import grp
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from pkglib import Fail, build_debs, check, main, need_tools, run, wait_for

PKG = "edgespool-agent"
BRIDGE = "edgespool-bridge"
FLEET = "edgespool-fleet-state"
PACKAGES = (PKG, BRIDGE, FLEET)
UNITS = ("edgespool-agent.service", "edgespool-bridge.service", "edgespool-fleet-state.service")
UNITDIR = "/lib/systemd/system/"
UNIT = UNITDIR + "edgespool-agent.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/"
STATE = "/var/lib/edgespool"


def dpkg(args, seconds=180):
    """dpkg ARGS, waiting (polling) while another dpkg holds its lock."""
    deadline = time.monotonic() + seconds
    while True:
        p = subprocess.run(["dpkg"] + args, capture_output=True, text=True)
        if p.returncode == 0:
            return p
        if "lock" not in p.stderr or time.monotonic() > deadline:
            raise Fail("dpkg %s: exit %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        time.sleep(1)


def status(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", pkg],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "not-installed"


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False

def check_installed():
    check(status(PKG) == "installed", "%s is %s after dpkg -i" % (PKG, status(PKG)))
    u = pwd.getpwnam("edgespool")
    check(u.pw_uid < 1000 and u.pw_shell.endswith("nologin"),
          "edgespool is not a system user: %s" % (u,))
    check(grp.getgrgid(u.pw_gid).gr_name == "edgespool", "edgespool's group is not edgespool")
    st = os.stat(STATE)
    check(st.st_mode & 0o7777 == 0o750, "%s is mode %o, not 0750" % (STATE, st.st_mode & 0o7777))
    check(st.st_uid == u.pw_uid and st.st_gid == u.pw_gid, "%s is not edgespool's" % STATE)
    print("installed: user edgespool (uid %d), %s 0750" % (u.pw_uid, STATE))


def check_unit(pkg, unit, config):
    """The conffile is registered, the unit enabled, and systemd-analyze
    verify has no complaint about it (warnings count too)."""
    conf = run(["dpkg-query", "-W", "-f", "${Conffiles}", pkg]).stdout
    check("/etc/edgespool/" + config in conf, "%s is not a conffile: %r" % (config, conf))
    check(os.path.islink(WANTS + unit) and os.readlink(WANTS + unit) == UNITDIR + unit,
          "%s is not enabled (%s)" % (unit, WANTS + unit))
    p = run(["systemd-analyze", "verify", UNITDIR + unit], ok=(0, 1))
    ours = [l for l in (p.stdout + p.stderr).splitlines() if "edgespool" in l]
    check(p.returncode == 0 and not ours, "systemd-analyze verify %s: exit %d\n%s"
          % (unit, p.returncode, "\n".join(ours)))
    print("%s: enabled; systemd-analyze verify has no complaint" % unit)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_edgespool(cmd, **kw):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    env.update(kw.pop("env", {}))
    return subprocess.Popen(cmd, user="edgespool", group="edgespool", env=env, cwd="/", **kw)


def post_event(port):
    body = json.dumps({"type": "sensor.reading", "subject": "dev-1", "data": {"t": 21.5}})
    req = urllib.request.Request("http://127.0.0.1:%d/api/events" % port, data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def start_daemon(tmp, program, config, env, port_re):
    """Runs the installed program as the service does (user edgespool, the
    default config, validated first with --print-config), with only the
    HTTP port (a free one) and the brokers (closed ports: none is needed)
    overridden through the environment. Returns (process, log, HTTP port)."""
    cfg = ["/usr/bin/" + program, "--config", "/etc/edgespool/" + config]
    p = as_edgespool(cfg + ["--print-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 0, "%s --print-config of the default config: exit %d\n%s"
          % (program, p.returncode, err))
    check(re.search(r"^path = /var/lib/edgespool/", out, re.M), "journal.path: " + out)
    log_path = os.path.join(tmp, program + ".log")
    env = dict(env, ES_HTTP_LISTEN="127.0.0.1:0")
    with open(log_path, "w") as log:
        proc = as_edgespool(cfg, env=env, stdout=log, stderr=log)

    def port():
        if proc.poll() is not None:
            raise Fail("%s exited (%s):\n%s" % (program, proc.returncode, open(log_path).read()))
        m = re.search(port_re, open(log_path).read())
        return m and int(m.group(1))
    try:
        return proc, log_path, wait_for(program + "'s HTTP port in its log", 30, port)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def stop_daemon(proc, log_path):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    check(rc == 0, "exit %d on SIGTERM:\n%s" % (rc, open(log_path).read()))


def check_owned(path):
    check(os.stat(path).st_uid == pwd.getpwnam("edgespool").pw_uid, "%s is not edgespool's" % path)


def check_agent_runs(tmp):
    env = {"ES_MQTT_URL": "mqtt://127.0.0.1:%d" % free_port()}
    proc, log, port = start_daemon(tmp, "edge-agent", "agent.ini", env,
                                   r"serving HTTP on port (\d+)")
    try:
        check(post_event(port) == 202, "POST /api/events did not answer 202")
        check_owned(os.path.join(STATE, "agent.db"))
    finally:
        stop_daemon(proc, log)
    print("the installed agent validated its default config, journaled an event, stopped")


def check_bridge_runs(tmp):
    closed = "mqtt://127.0.0.1:%d" % free_port()
    proc, log, _ = start_daemon(tmp, "cloud-bridge", "bridge.ini",
                                {"ES_EDGE_URL": closed, "ES_CLOUD_URL": closed},
                                r"HTTP on port (\d+)")
    try:
        check_owned(os.path.join(STATE, "bridge.db"))
    finally:
        stop_daemon(proc, log)
    print("the installed bridge validated its default config, opened its inbox, stopped")


def http_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.status, json.loads(r.read())


def check_fleet_runs(tmp):
    """No broker anywhere: the source is a closed loopback port. fleet-state
    serves anyway and keeps retrying the connection."""
    closed = "amqp://fleet-state:pw@127.0.0.1:%d/%%2f" % free_port()
    proc, log, port = start_daemon(tmp, "fleet-state", "fleet-state.ini",
                                   {"ES_SOURCE_AMQP": closed}, r"HTTP on port (\d+)")
    try:
        check(http_get(port, "/healthz") == (200, {"status": "ok"}), "GET /healthz is not ok")
        tries = lambda: len(re.findall(r"amqp: .*connect", open(log).read())) >= 3 and 1
        wait_for("fleet-state to retry its source 3 times", 60, tries)
        status_, stats = http_get(port, "/api/stats")
        check(status_ == 200 and stats.get("connected_to") == "" and stats.get("transport") ==
              "amqp", "GET /api/stats while the broker is away: %r" % (stats,))
        check(proc.poll() is None, "fleet-state exited while retrying")
        check_owned(os.path.join(STATE, "fleet-state.db"))
    finally:
        stop_daemon(proc, log)
    print("the installed fleet-state validated its default config, served /healthz while "
          "retrying its source, stopped")


def left_of(unit, config, db):
    """What a purged package must not leave."""
    left = [p for p in (UNITDIR + unit, "/etc/edgespool/" + config, WANTS + unit)
            if os.path.lexists(p)]
    if os.path.isdir(STATE):
        left += [os.path.join(STATE, f) for f in os.listdir(STATE) if f.startswith(db)]
    return left


def check_shared_stay(why, dbs):
    check(os.path.isdir(STATE) and user_exists("edgespool"),
          "%s took %s or the edgespool user" % (why, STATE))
    gone = [d for d in dbs if not os.path.exists(os.path.join(STATE, d))]
    check(not gone, "%s took %s" % (why, gone))


def purge_agent_keeps_others():
    dpkg(["--purge", PKG])
    left = left_of("edgespool-agent.service", "agent.ini", "agent.db")
    check(not left, "left after dpkg --purge %s: %s" % (PKG, left))
    check_shared_stay("purging the agent (bridge and fleet-state installed)",
                      ["bridge.db", "fleet-state.db"])
    print("purged the agent: the bridge's and fleet-state's files, %s and the user stay" % STATE)


def purge_bridge_keeps_fleet():
    """The bridge removed (config-files: its config and journal kept), then
    purged, while fleet-state is installed but has written nothing yet (its
    file deleted here): the empty folder and the user must stay for it, which
    only postrm's list of the other daemon packages can tell."""
    dpkg(["--remove", BRIDGE])
    check(status(BRIDGE) == "config-files", "%s is %s after dpkg --remove"
          % (BRIDGE, status(BRIDGE)))
    check(os.path.exists(os.path.join(STATE, "bridge.db")), "dpkg --remove took bridge.db")
    for f in os.listdir(STATE):
        if f.startswith("fleet-state.db"):
            os.unlink(os.path.join(STATE, f))
    dpkg(["--purge", BRIDGE])
    left = left_of("edgespool-bridge.service", "bridge.ini", "bridge.db")
    check(not left, "left after dpkg --purge %s: %s" % (BRIDGE, left))
    check_shared_stay("purging the bridge (fleet-state installed, no file of its own yet)", [])
    print("removed, then purged the bridge with fleet-state installed: %s (empty) and the user "
          "stay" % STATE)


def purge_and_check():
    for pkg in PACKAGES:
        if status(pkg) != "not-installed":
            dpkg(["--purge", pkg])
    left = [p for p in [STATE, "/etc/edgespool"] + [UNITDIR + u for u in UNITS] +
            [WANTS + u for u in UNITS] if os.path.lexists(p)]
    check(not left, "left after dpkg --purge: %s" % left)
    check(not user_exists("edgespool"), "the edgespool user is left after dpkg --purge")
    print("purged all three: no state folder, config, unit, enablement or user left")


def test():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpack", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: dpkg -i needs root")
        sys.exit(77)
    need_tools("dpkg", "systemd-analyze", "adduser")
    # Never touch an installation or a user this test did not make.
    for pkg in PACKAGES:
        check(status(pkg) == "not-installed", "%s is already %s on this machine: "
              "dpkg --purge it first" % (pkg, status(pkg)))
    check(not user_exists("edgespool"), "a user edgespool exists already; not touching it")
    with tempfile.TemporaryDirectory(prefix="es-pkg-dpkg-") as tmp:
        os.chmod(tmp, 0o755)
        debs = build_debs(a.cpack, a.build, os.path.join(tmp, "out"))
        try:
            dpkg(["-i", debs[PKG]])
            check_installed()
            check_unit(PKG, "edgespool-agent.service", "agent.ini")
            check_agent_runs(tmp)
            dpkg(["-i", debs[BRIDGE]])
            check_unit(BRIDGE, "edgespool-bridge.service", "bridge.ini")
            check_bridge_runs(tmp)
            dpkg(["-i", debs[FLEET]])
            check_unit(FLEET, "edgespool-fleet-state.service", "fleet-state.ini")
            check_fleet_runs(tmp)
            purge_agent_keeps_others()
            purge_bridge_keeps_fleet()
        finally:
            purge_and_check()


if __name__ == "__main__":
    main(test)
