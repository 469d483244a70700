#!/usr/bin/env python3
"""test_dashboard.py - the web dashboard in headless Chromium, against the
real system.

Starts a broker, the edge-agent with an auth file (made by `edgespool
passwd`), a simulated device fleet on the agent's unix socket link and a
steady trickle of posted events; then runs dashboard.test.js (node,
playwright-core, Debian's /usr/bin/chromium), which drives the browser and
asks this script, one line at a time on its standard output, for what only
the test can do:

    REQ stop_broker | REQ start_broker   stop (SIGTERM) / restart the broker
    REQ deadletter                       a malformed device record -> dead letter
    REQ bridge                           a cloud broker and a cloud-bridge

Each request is answered on node's standard input with "OK [detail]" or
"ERR reason". Every wait on either side polls with a deadline.

playwright-core is installed at test time (npm ci, the committed
package-lock.json) into $ES_BROWSER_DIR, never into the source tree.
Screenshots go to $ES_ARTEFACTS.
"""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402
from test_devices import frame  # noqa: E402  (a device link frame on the wire)

USER, PASSWORD = "admin", "dashboard-test-secret"


def ensure_playwright(dest):
    """npm ci into dest unless dest already holds the locked playwright-core."""
    os.makedirs(dest, exist_ok=True)
    lock_src = os.path.join(HERE, "package-lock.json")
    with open(lock_src) as f:
        want = json.load(f)["packages"]["node_modules/playwright-core"]["version"]
    try:
        with open(os.path.join(dest, "node_modules", "playwright-core", "package.json")) as f:
            if json.load(f).get("version") == want:
                return
    except (OSError, ValueError):
        pass
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(dest, name))
    print("installing playwright-core %s into %s" % (want, dest))
    sys.stdout.flush()
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--cache",
                        os.path.join(dest, ".npm-cache")], cwd=dest, capture_output=True,
                       text=True, timeout=300)
    h.check(r.returncode == 0, "npm ci failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))


def make_auth_file(env):
    """USER:hash in a file, written by the real `edgespool passwd`."""
    path = env.path("users")
    r = subprocess.run([env.args.cli, "passwd", path, USER, "--stdin"], input=PASSWORD + "\n",
                       capture_output=True, text=True, timeout=30)
    h.check(r.returncode == 0, "edgespool passwd failed (%d): %s%s" %
            (r.returncode, r.stdout, r.stderr))
    return path


AUTH = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()


def get_json(port, path):
    """GET path with the test's credentials: the parsed body of a 200."""
    status, body = h.http_call(port, "GET", path, headers={"Authorization": AUTH})
    h.check(status == 200, "GET %s answered %d: %.300r" % (path, status, body))
    return json.loads(body)


class AuthPoster(h.Poster):
    """harness.Poster with the test's credentials on every request."""

    def post(self, body, content_type="application/json", headers=None):
        hdrs = {"Authorization": AUTH}
        hdrs.update(headers or {})
        return super().post(body, content_type, hdrs)


class Trickle:
    """Posts a few events every quarter of a second (readings, now and then
    an alarm) until stopped: the live figures move while the browser looks."""

    def __init__(self, port):
        self.poster = AuthPoster(port, batch=4)
        self.stop_flag = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def events(self, n):
        k = self.poster.next_n
        out = []
        for i in range(k, k + n):
            kind = "alarm.raised" if i % 10 == 0 else "sensor.reading"
            out.append({"type": kind, "subject": "dev-%d" % (i % 6),
                        "data": {"n": i, "celsius": 20.0 + (i % 50) / 10.0}})
        self.poster.next_n += n
        return out

    def run(self):
        try:
            while not self.stop_flag.is_set():
                if not self.poster.post_acked(self.events(2), 60, self.stop_flag):
                    return
                self.stop_flag.wait(0.25)
        except BaseException as e:  # reported by check()
            self.error = e

    def check(self):
        """Raises what went wrong in the posting thread, if anything."""
        if self.error is not None:
            raise h.TestFailure("posting events failed: %s" % self.error)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)
        self.poster.drop()


def make_deadletter(port, sock_path):
    """A device (9001) says hello and sends a record of an unknown kind (77):
    the agent keeps it as a dead letter. Returns its reason."""
    before = len(get_json(port, "/api/deadletters").get("deadletters", []))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(sock_path)
    conn.sendall(frame(1, 9001, 1, struct.pack("<IIIBBB", 1, 5, 1, 1, 0, 1)))
    conn.sendall(frame(2, 9001, 1, struct.pack("<IBBi", 5, 77, 0, 1)))

    def stored():
        return len(get_json(port, "/api/deadletters").get("deadletters", [])) > before
    try:
        h.wait_for(stored, 20, "the malformed record to become a dead letter", interval=0.2)
    finally:
        conn.close()
    return get_json(port, "/api/deadletters")["deadletters"][0]["reason"]


class Orchestra:
    """Answers the node script's requests."""

    def __init__(self, env, broker, agent, sock, auth_file, trickle):
        self.env, self.broker, self.agent, self.sock = env, broker, agent, sock
        self.auth_file, self.trickle = auth_file, trickle
        self.bridge = None

    def stop_broker(self):
        self.broker.stop()
        return ""

    def start_broker(self):
        self.broker.start()
        return ""

    def deadletter(self):
        return make_deadletter(self.agent.http_port, self.sock)

    def start_bridge(self):
        h.check(self.env.args.bridge, "no --bridge binary")
        cloud = self.env.broker(name="cloud")
        b = self.env.bridge(self.broker.port, cloud.port,
                            extra=["--http.auth_file", self.auth_file])
        b.start(connected=False)

        def linked():  # /readyz needs no credentials; /api/status does
            b.proc.check_alive()
            st = get_json(b.http_port, "/api/status")
            return st["cloud"]["state"] == "connected" and h.ready(b.http_port)
        h.wait_for(linked, 20, "the bridge to be ready and connect to the cloud", interval=0.2)
        self.bridge = b
        return "http://127.0.0.1:%d" % b.http_port

    def answer(self, what):
        fn = {"stop_broker": self.stop_broker, "start_broker": self.start_broker,
              "deadletter": self.deadletter, "bridge": self.start_bridge}.get(what)
        if fn is None:
            return "ERR unknown request %r" % what
        self.trickle.check()
        try:
            return ("OK " + fn()).rstrip()
        except h.TestFailure as e:
            return "ERR %s" % e


def run_node(env, orchestra, agent_url, browser_dir, artefacts):
    """Runs dashboard.test.js, answering its requests; its exit code must be
    0. Returns the artefact lines it printed."""
    node_env = dict(os.environ, ES_NODE_MODULES=os.path.join(browser_dir, "node_modules"),
                    ES_AGENT_URL=agent_url, ES_USER=USER, ES_PASSWORD=PASSWORD,
                    ES_ARTEFACTS=artefacts)
    proc = subprocess.Popen(["node", os.path.join(HERE, "dashboard.test.js")], env=node_env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                            start_new_session=True)
    shots = []
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("REQ "):
                print("  [test] asks: %s" % line[4:])
                reply = orchestra.answer(line[4:].strip())
                print("  [test] answer: %s" % reply)
                proc.stdin.write(reply + "\n")
                proc.stdin.flush()
            else:
                print("  " + line)
                if line.startswith("artefact: "):
                    shots.append(line[len("artefact: "):])
            sys.stdout.flush()
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    h.check(rc == 0, "dashboard.test.js %s" % h.exit_text(rc))
    return shots


def scenario(env):
    h.check(env.args.fw, "this test needs --fw (the firmware-host binary)")
    browser_dir = os.environ.get("ES_BROWSER_DIR") or env.path("browser")
    artefacts = os.environ.get("ES_ARTEFACTS") or env.path("artefacts")
    os.makedirs(artefacts, exist_ok=True)
    ensure_playwright(browser_dir)
    auth_file = make_auth_file(env)
    broker = env.broker()
    sock = env.path("devices.sock")
    agent = env.agent(broker.port, extra=["--http.auth_file", auth_file,
                                          "--link.listen", "unix:" + sock])
    agent.start()
    fleet = h.Fleet(env, "unix:" + sock, 4, 1, name="fleet")
    fleet.start()
    trickle = Trickle(agent.http_port)
    try:
        orchestra = Orchestra(env, broker, agent, sock, auth_file, trickle)
        shots = run_node(env, orchestra, "http://127.0.0.1:%d" % agent.http_port, browser_dir,
                         artefacts)
        trickle.check()
    finally:
        trickle.stop()
    return "%d screenshots in %s" % (len(shots), artefacts)


if __name__ == "__main__":
    h.main(scenario, "the dashboard in headless Chromium: login, live overview, backlog, "
           "events, devices, dead letters, phone layout, the bridge")
