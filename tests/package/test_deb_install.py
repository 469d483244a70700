#!/usr/bin/env python3
"""pkg_deb_install (root only, else skipped with 77): the amd64 (native)
edgespool-agent package really installs with dpkg -i; systemd-analyze verify
accepts its unit (systemd need not be PID 1); the edgespool system user and
/var/lib/edgespool (0750, edgespool:edgespool) exist; the installed agent,
run as that user with the default config, validates it, starts, and journals
an event in the state folder; dpkg --purge (always, at the end) removes the
package, its journal, the folder, the user and the unit's enablement."""
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
UNIT = "/lib/systemd/system/edgespool-agent.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/edgespool-agent.service"
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
    conf = run(["dpkg-query", "-W", "-f", "${Conffiles}", PKG]).stdout
    check("/etc/edgespool/agent.ini" in conf, "agent.ini is not a conffile: %r" % conf)
    check(os.path.islink(WANTS) and os.readlink(WANTS) == UNIT, "the unit is not enabled (%s)" % WANTS)
    print("installed: user edgespool (uid %d), %s 0750, unit enabled" % (u.pw_uid, STATE))


def check_verify():
    """systemd-analyze verify: fails on any complaint about our unit, warnings too."""
    p = run(["systemd-analyze", "verify", UNIT], ok=(0, 1))
    ours = [l for l in (p.stdout + p.stderr).splitlines() if "edgespool" in l]
    check(p.returncode == 0 and not ours,
          "systemd-analyze verify %s: exit %d\n%s" % (UNIT, p.returncode, "\n".join(ours)))
    print("systemd-analyze verify: no complaint about the unit")


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


def check_agent_runs(tmp):
    """The installed agent, as the service runs it: user edgespool, the default
    config. Only the HTTP port (a free one) and the broker (a closed port:
    none needed) are overridden, through the environment."""
    cfg = ["/usr/bin/edge-agent", "--config", "/etc/edgespool/agent.ini"]
    p = as_edgespool(cfg + ["--print-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 0, "edge-agent --print-config of the default config: exit %d\n%s"
          % (p.returncode, err))
    check(re.search(r"^path = /var/lib/edgespool/agent.db", out, re.M), "journal.path: " + out)
    log_path = os.path.join(tmp, "agent.log")
    env = {"ES_HTTP_LISTEN": "127.0.0.1:0", "ES_MQTT_URL": "mqtt://127.0.0.1:%d" % free_port()}
    with open(log_path, "w") as log:
        agent = as_edgespool(cfg, env=env, stdout=log, stderr=log)
    try:
        def port():
            m = re.search(r"serving HTTP on port (\d+)", open(log_path).read())
            check(agent.poll() is None, "the agent exited (%s):\n%s"
                  % (agent.returncode, open(log_path).read()))
            return m and int(m.group(1))
        http = wait_for("the agent's HTTP port in its log", 30, port)
        check(post_event(http) == 202, "POST /api/events did not answer 202")
        db = os.stat(os.path.join(STATE, "agent.db"))
        check(db.st_uid == pwd.getpwnam("edgespool").pw_uid, "agent.db is not edgespool's")
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=60)
    check(rc == 0, "the agent exited %d on SIGTERM:\n%s" % (rc, open(log_path).read()))
    print("the installed agent validated its default config, journaled an event, stopped")


def purge_and_check():
    dpkg(["--purge", PKG])
    left = [p for p in (STATE, "/etc/edgespool/agent.ini", UNIT, WANTS) if os.path.lexists(p)]
    check(not left, "left after dpkg --purge: %s" % left)
    check(not user_exists("edgespool"), "the edgespool user is left after dpkg --purge")
    print("purged: no state folder, config, unit, enablement or user left")


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
    for pkg in (PKG, "edgespool-bridge"):
        check(status(pkg) == "not-installed", "%s is already %s on this machine: "
              "dpkg --purge it first" % (pkg, status(pkg)))
    check(not user_exists("edgespool"), "a user edgespool exists already; not touching it")
    with tempfile.TemporaryDirectory(prefix="es-pkg-dpkg-") as tmp:
        os.chmod(tmp, 0o755)
        debs = build_debs(a.cpack, a.build, os.path.join(tmp, "out"))
        try:
            dpkg(["-i", debs[PKG]])
            check_installed()
            check_verify()
            check_agent_runs(tmp)
        finally:
            if status(PKG) != "not-installed":
                purge_and_check()


if __name__ == "__main__":
    main(test)
