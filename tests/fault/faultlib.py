"""faultlib.py - a whole edgespool site on one machine, for the fault scenarios.

System starts: the edge mosquitto and the cloud mosquitto from the shipped
configs (deploy/mosquitto/edge.conf and cloud.conf, rewritten only as
render_conf() says), N agents (gw1, gw2, ...) on the edge broker's loopback
listener, a cloud-bridge that logs in to the cloud broker with its own user
and password (the shipped ACL lets it write only its site's topics), an
optional simulated device fleet on a pty into gw1, the checker's Recorder
(mosquitto_sub as the `consumer` user, started before any traffic), and
producers (checker.IdPoster + checker.Load per agent, ids of their own).

Each part can be killed (SIGKILL) and restarted. settle() waits until every
acknowledged id and device record reached the recorder and nothing is pending
anywhere; finish() counts (checker.count), prints checker.report's RESULT line
and raises TestFailure unless the scenario passed.

Scenario scripts use harness.main with extra flags: parse_args() adds
`--long` to harness's own (--agent --cli --bridge --fw --seed --budget --keep).
"""
import atexit
import http.client
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import harness as h  # noqa: E402
import checker  # noqa: E402

DEPLOY = os.path.join(REPO, "deploy", "mosquitto")
SITE = "site1"               # harness.Agent and harness.Bridge use this site
SKIP = 77                    # exit code of a skipped scenario (ctest SKIP_RETURN_CODE)


def stable_port():
    """A free loopback port for a program the scenario restarts many times;
    harness.free_port picks below the kernel's ephemeral range, so nobody's
    bind(0) or outgoing connection takes it while the program is down."""
    return h.free_port()


# ---- the shipped broker configs ----------------------------------------------------


def render_conf(text, port, tls_port, etc, data):
    """The shipped config with the test's ports and folders: `listener 1883`
    -> port, `listener 8883` -> tls_port (bound to 127.0.0.1),
    /etc/mosquitto/edgespool/ -> etc, /var/lib/mosquitto/ -> data, log_dest
    -> stderr, plus `user root` when running as root. Everything else is used
    as shipped. Raises if a line it expects is missing (the file changed)."""
    subs = [(r"(?m)^listener 1883 127\.0\.0\.1$", "listener %d 127.0.0.1" % port),
            (r"(?m)^listener 8883$", "listener %d 127.0.0.1" % tls_port),
            (r"/etc/mosquitto/edgespool/", etc.rstrip("/") + "/"),
            (r"(?m)^persistence_location /var/lib/mosquitto/$",
             "persistence_location %s/" % data.rstrip("/")),
            (r"(?m)^log_dest syslog$", "log_dest stderr")]
    for pattern, repl in subs:
        text, n = re.subn(pattern, lambda m, r=repl: r, text)
        h.check(n > 0, "the shipped mosquitto config has no line matching %r" % pattern)
    if os.geteuid() == 0:
        text += "\n# added by tests/fault: mosquitto runs as root here\nuser root\n"
    return text


def render_acl(text):
    """The shipped ACL with the example site (site-1) as the tests' site."""
    h.check("site-1" in text or "%u" in text, "unexpected ACL file")
    return text.replace("site-1", SITE)


class ShippedBroker(h.Broker):
    """A mosquitto started from deploy/mosquitto/<kind>.conf (kind: edge or
    cloud), with its ACL, a password file of `users` (name -> password) and a
    throw-away CA and server certificate for its TLS listener. Same start(),
    kill() and stop() as harness.Broker; `port` is the loopback listener,
    `tls_port` the TLS one."""

    def __init__(self, env, kind, name=None, users=None):
        self.env, self.name, self.kind = env, name or kind, kind
        self.port, self.tls_port = stable_port(), stable_port()
        self.proc = None
        self.data = env.path(self.name)
        self.etc = env.path(self.name + "-etc")
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.etc, exist_ok=True)
        with open(os.path.join(DEPLOY, kind + ".conf")) as f:
            text = render_conf(f.read(), self.port, self.tls_port, self.etc, self.data)
        self.conf = env.path(self.name + ".conf")
        with open(self.conf, "w") as f:
            f.write(text)
        with open(os.path.join(DEPLOY, kind + ".acl")) as f:
            acl = render_acl(f.read())
        with open(os.path.join(self.etc, kind + ".acl"), "w") as f:
            f.write(acl)
        self.users = dict(users or {})
        pw = os.path.join(self.etc, kind + ".passwd")
        open(pw, "w").close()
        for user, password in self.users.items():
            r = subprocess.run(["mosquitto_passwd", "-b", pw, user, password],
                               capture_output=True, text=True)
            h.check(r.returncode == 0, "mosquitto_passwd: %s" % r.stderr)
        ca = h.make_ca(env, self.name + "-ca")
        srv = h.make_cert(env, self.name + "-server", ca, san="IP:127.0.0.1")
        for src, dst in ((ca[0], "ca.crt"), (srv[0], "server.crt"), (srv[1], "server.key")):
            shutil.copy(src, os.path.join(self.etc, dst))
        self.ca = os.path.join(self.etc, "ca.crt")

    def start(self, timeout=10):
        super().start(timeout)
        h.wait_for(lambda: h.port_open(self.tls_port), timeout,
                   "%s's TLS listener on port %d" % (self.name, self.tls_port))
        # Only the listeners the file declares: no default listener on 1883.
        with open(self.proc.log, errors="replace") as f:
            text = f.read().rsplit("\n==== ", 1)[-1]
        ports = {int(p) for p in re.findall(r"Opening ipv[46] listen socket on port (\d+)", text)}
        h.check(ports == {self.port, self.tls_port}, "%s listens on ports %s, its config declares "
                "%s" % (self.name, sorted(ports), sorted({self.port, self.tls_port})))

    def password_file(self, user):
        """A file holding user's password (for --*.password_file)."""
        path = self.env.path("%s-%s.pw" % (self.name, user))
        with open(path, "w") as f:
            f.write(self.users[user] + "\n")
        return path


# ---- the parts ---------------------------------------------------------------------------


def _pub(broker, topic, user=None, tls=False):
    """mosquitto_pub (MQTT 5, QoS 1, so a refusal comes back): (exit code, output)."""
    argv = ["mosquitto_pub", "-V", "5", "-h", "127.0.0.1", "-q", "1", "-t", topic, "-m",
            '{"probe":true}', "-i", "es-fault-acl-probe",
            "-p", str(broker.tls_port if tls else broker.port)]
    if user:
        argv += ["-u", user, "-P", broker.users[user]]
    if tls:
        argv += ["--cafile", broker.ca]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    return r.returncode, (r.stdout + r.stderr).strip()


def check_broker_policy(edge, cloud, node, bridge_user, consumer):
    """The shipped configs do what they say, on the running brokers: the
    edge's TLS listener takes a node's password and lets it write only its
    own topics (never a command topic, its own or another's) and refuses
    anonymous clients; loopback is anonymous but only
    on edgespool/...; the cloud refuses anonymous clients, and its bridge
    user writes only its site and the consumer only re-send requests.
    Returns a summary."""
    cases = [
        (edge, "edgespool/%s/%s/ev/probe" % (SITE, node), node, True, "ok"),
        (edge, "edgespool/%s/other-node/ev/probe" % SITE, node, True, "denied"),
        (edge, "edgespool/%s/%s/cmd/resend" % (SITE, node), node, True, "denied"),
        (edge, "edgespool/%s/other-node/cmd/resend" % SITE, node, True, "denied"),
        (edge, "edgespool/%s/%s/ev/probe" % (SITE, node), None, True, "refused"),
        (edge, "other/probe", None, False, "denied"),
        (cloud, "edgespool/%s/_probe/ev/probe" % SITE, None, False, "refused"),
        (cloud, "edgespool/other-site/x/ev/probe", bridge_user, False, "denied"),
        (cloud, "edgespool/%s/_probe/ev/probe" % SITE, consumer, False, "denied"),
        (cloud, "edgespool/%s/_probe/cmd/resend" % SITE, consumer, False, "ok"),
    ]
    for broker, topic, user, tls, want in cases:
        rc, out = _pub(broker, topic, user, tls)
        got = ("refused" if "Connection error: Not authorized" in out else
               "denied" if "Not authorized" in out else "ok" if rc == 0 else "error")
        h.check(got == want, "%s broker%s, user %s, publish to %s: expected %s, got %s (exit %d: "
                "%s)" % (broker.name, " (TLS)" if tls else "", user or "anonymous", topic, want,
                         got, rc, out))
    return "%d ACL/auth checks on the shipped configs passed" % len(cases)


class FaultAgent(h.Agent):
    """harness.Agent with an environment of its own (libfaketime)."""

    def __init__(self, env, broker_port, proc_env=None, **kw):
        super().__init__(env, broker_port, **kw)
        self.proc_env = proc_env

    def start(self, timeout=15):
        super().start(timeout, env=self.proc_env)


def integrity_check(path):
    """PRAGMA integrity_check on a journal (read-only); returns "ok" or raises."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        rows = [r[0] for r in db.execute("PRAGMA integrity_check")]
    finally:
        db.close()
    h.check(rows == ["ok"], "PRAGMA integrity_check on %s: %s" % (path, rows[:10]))
    return "ok"


class System:
    """A whole site (see the module's doc). Parameters:
    agents       how many agents (gw1..gwN)
    devices      (devices, rate per device, records per device) of a fleet on
                 a pty into gw1, or None
    agent_db     {node: journal path} for agents whose journal lives elsewhere
    agent_extra  {node: [settings]}; agent_env {node: environment}
    hole_wait_ms the bridge's order.hole_wait_ms: long, so that a node's events
                 wait for a hole to be re-sent rather than go out of order.
    uplink       "events": the bridge publishes each event on its topic, where
                 the recorder reads it; "batch": the site bridge sends batches
                 (cloud.format batch, MQTT 5) and a second cloud-bridge in the
                 cloud role (self.cloudrole, the shipped ACL's cloud-role user)
                 republishes each event on its topic on the same broker."""

    def __init__(self, env, agents=2, devices=None, agent_db=None, agent_extra=None,
                 agent_env=None, hole_wait_ms=60000, batch=50, uplink="events"):
        self.env = env
        self.nodes = ["gw%d" % (k + 1) for k in range(agents)]
        self.devices, self.batch = devices, batch
        self.agent_db = agent_db or {}
        self.agent_extra = agent_extra or {}
        self.agent_env = agent_env or {}
        self.hole_wait_ms = hole_wait_ms
        self.uplink = uplink
        self.edge = self.cloud = self.bridge = self.recorder = self.fleet = None
        self.cloudrole = None
        self.agents, self.posters, self.loads = {}, {}, []
        self.other_posters = []   # harness.Poster (short form: the agent makes the ids)
        self._rec_offset, self._rec_partial, self.received = 0, b"", set()
        self._rec_devices = set()

    # -- starting ------------------------------------------------------------------------

    def start(self):
        env = self.env
        self.edge = ShippedBroker(env, "edge", users={n: "pw-" + n for n in self.nodes})
        self.edge.start()
        self.cloud = ShippedBroker(env, "cloud", users={"bridge-" + SITE: "bridge-secret",
                                                        "consumer": "consumer-secret",
                                                        "cloud-role": "role-secret"})
        self.cloud.start()
        print("  " + check_broker_policy(self.edge, self.cloud, self.nodes[0],
                                         "bridge-" + SITE, "consumer"))
        self.recorder = checker.Recorder(env, "127.0.0.1", self.cloud.port)
        self.recorder.argv += ["-u", "consumer", "-P", "consumer-secret"]
        self.recorder.start()
        atexit.register(self.recorder.stop)   # it is not one of env's processes
        self._probe_recorder()
        if self.uplink == "batch":
            role_pw = self.cloud.password_file("cloud-role")
            self.cloudrole = h.Bridge(env, self.cloud.port, self.cloud.port, name="cloudrole",
                                      node="cr1", extra=[
                                          "--bridge.role", "cloud", "--cloud.format", "events",
                                          "--edge.username", "cloud-role",
                                          "--edge.password_file", role_pw,
                                          "--cloud.username", "cloud-role",
                                          "--cloud.password_file", role_pw,
                                          "--order.hole_wait_ms", str(self.hole_wait_ms)])
            self.cloudrole.http_port = stable_port()
            self.cloudrole.start()
        self.bridge = env.bridge(self.edge.port, self.cloud.port, extra=[
            "--cloud.username", "bridge-" + SITE,
            "--cloud.password_file", self.cloud.password_file("bridge-" + SITE),
            "--order.hole_wait_ms", str(self.hole_wait_ms)] +
            (["--cloud.format", "batch", "--cloud.version", "5"]
             if self.uplink == "batch" else []))
        self.bridge.http_port = stable_port()
        self.bridge.start()
        self.tty = env.path("fleet-tty")
        for node in self.nodes:
            extra = list(self.agent_extra.get(node, []))
            if self.devices and node == self.nodes[0]:
                extra += ["--link.serial", self.tty, "--link.reopen_ms", "100"]
            a = FaultAgent(env, self.edge.port, proc_env=self.agent_env.get(node), name=node,
                           node=node, db=self.agent_db.get(node), extra=extra)
            a.http_port = stable_port()
            a.start()
            self.agents[node] = a
            self.posters[node] = checker.IdPoster(a.http_port, "/%s/%s" % (SITE, node),
                                                  batch=self.batch)
        if self.devices:
            n, rate, count = self.devices
            self.fleet = h.Fleet(env, "pty:" + self.tty, n, rate, count=count,
                                 seed=getattr(env, "seed", 1), extra=["--timeout", "600"])
            self.fleet.start()
        return self

    def _probe_recorder(self):
        """Waits until the recorder's subscription is in place: a probe
        published (as the bridge's user) on this site's topics arrives."""
        topic = "edgespool/%s/_probe/ev/probe" % SITE

        def seen():
            subprocess.run(["mosquitto_pub", "-p", str(self.cloud.port), "-i", "es-fault-probe",
                            "-u", "bridge-" + SITE,
                            "-P", "bridge-secret", "-q", "1", "-t", topic, "-m",
                            '{"probe":true}'], capture_output=True, timeout=10)
            return any(isinstance(m, dict) and m.get("probe") for m in self.recorder.messages())
        h.wait_for(seen, 15, "the recorder to receive a probe", interval=0.3)

    def load(self, node, total, rate):
        """Starts a Load of `total` events at `rate`/s into node; returns it."""
        ld = checker.Load(self.posters[node], total, rate)
        ld.start()
        self.loads.append(ld)
        return ld

    # -- faults --------------------------------------------------------------------------

    def still_ok(self):
        """Raises if a producer failed or a part that must run died."""
        for ld in self.loads:
            ld.check()
        if self.fleet is not None:
            rc = self.fleet.proc.popen.poll()
            h.check(rc in (None, 0), "the fleet %s" % h.exit_text(rc))

    def kill_agent(self, node, checks=True):
        """SIGKILLs an agent; with checks, runs PRAGMA integrity_check and
        `edgespool journal verify` on its journal while it is down."""
        a = self.agents[node]
        a.kill()
        if checks:
            integrity_check(a.db)
            h.journal_verify(self.env, a.db)

    def restart_agent(self, node):
        self.agents[node].start()

    # -- the end -------------------------------------------------------------------------

    def poll_recorder(self):
        """Reads what the recorder wrote since the last call: received ids
        and device records."""
        try:
            with open(self.recorder.path, "rb") as f:
                f.seek(self._rec_offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._rec_offset += len(chunk)
        lines = (self._rec_partial + chunk).split(b"\n")
        self._rec_partial = lines.pop()
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and isinstance(ev.get("id"), str):
                self.received.add(ev["id"])
                key = checker.device_key(ev)
                if key is not None:
                    self._rec_devices.add(key)

    def acked(self):
        """Every acknowledged id (id -> sequence) of every poster."""
        out = dict(self.extra_acked())
        for p in self.posters.values():
            out.update(p.snapshot()[1])
        return out

    def extra_acked(self):
        """Acknowledged ids of other producers (harness.Poster): id -> seq."""
        out = {}
        for p in self.other_posters:
            out.update(p.snapshot())
        return out

    def attempted(self):
        out = set()
        for p in self.posters.values():
            out |= p.snapshot()[0]
        return out | set(self.extra_acked())

    def missing(self, records=None):
        self.poll_recorder()
        n = sum(1 for i in self.acked() if i not in self.received)
        if records:
            n += sum(1 for k in records if k not in self._rec_devices)
        return n

    def quiet(self):
        """Nothing pending at any running agent, the bridge drained."""
        try:
            return (all(a.pending() == 0 for a in self.agents.values()) and self.bridge.quiet()
                    and (self.cloudrole is None or self.cloudrole.quiet()))
        except (OSError, http.client.HTTPException, ValueError, h.TestFailure):
            return False

    def settle(self, timeout, records=None):
        """Waits until every acknowledged id (and device record) was received
        and nothing is pending; returns the seconds it took. On time-out the
        failure says how much is missing (the counts are still printed by
        finish())."""
        t0 = time.monotonic()
        try:
            h.wait_for(lambda: self.missing(records) == 0 and self.quiet(), timeout,
                       "every acknowledged event at the cloud recorder", interval=0.5)
        except h.TestFailure as e:
            self.settle_error = "%s (%d missing)" % (e, self.missing(records))
            return None
        self.settle_error = None
        return time.monotonic() - t0

    def finish(self, scenario, records=None, order_required=True, settled=None):
        """Stops the recorder, counts, prints the RESULT line and extra
        consistency checks; raises TestFailure unless the scenario passed.
        Returns the counts."""
        time.sleep(0.5)  # late duplicates still on the way count too
        self.recorder.stop()
        msgs = [m for m in self.recorder.messages()
                if not (isinstance(m, dict) and m.get("probe"))]
        counts = checker.count(self.attempted(), self.acked(), msgs,
                               records=records)
        # extra: one id never carries two sequences or two sources
        seen, twice = {}, 0
        for m in msgs:
            if isinstance(m, dict) and "id" in m:
                k = (m.get("source"), m.get("sequence"))
                if seen.setdefault(m["id"], k) != k:
                    twice += 1
        counts["id_two_places"] = twice
        ok = checker.report(scenario, counts, order_required)
        if settled is not None:
            print("  settled in %.1f s" % settled)
        if not ok:
            print("  %s" % self.bridge_summary())
        problems = []
        if not ok:
            problems.append("the checker's counts fail")
        if twice:
            problems.append("%d copies of an id with another source/sequence" % twice)
        if counts["dup_dedup"]:
            problems.append("%d duplicates under different ids" % counts["dup_dedup"])
        if getattr(self, "settle_error", None):
            problems.append(self.settle_error)
        h.check(not problems, "; ".join(problems))
        return counts

    def bridge_summary(self):
        try:
            line = h.bridge_figures(self.bridge.status())
            if self.cloudrole is not None:
                line += "\n  cloud role " + h.bridge_figures(self.cloudrole.status())
            return line
        except Exception as e:  # a summary line only
            return "bridge status unavailable: %s" % e


def parse_uplink():
    """Strips --uplink events|batch from sys.argv; returns it (events)."""
    if "--uplink" not in sys.argv:
        return "events"
    i = sys.argv.index("--uplink")
    value = sys.argv[i + 1] if i + 1 < len(sys.argv) else ""
    if value not in ("events", "batch"):
        raise SystemExit("--uplink: events or batch")
    del sys.argv[i:i + 2]
    return value


def parse_long():
    """Strips --long from sys.argv (harness.parse_args does not know it);
    returns whether it was given."""
    if "--long" in sys.argv:
        sys.argv.remove("--long")
        return True
    return False


def seed_of(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 30)
    env.seed = seed
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    sys.stdout.flush()
    return random.Random(seed)


def fleet_records(fleet):
    """(device, seq) of every record the fleet made."""
    return set(fleet.records().keys())

