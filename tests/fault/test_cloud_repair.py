#!/usr/bin/env python3
"""test_cloud_repair: a cloud that cannot reach its site repairs through the
site's own outgoing connection.

The site (edge broker, agent gw1, cloud-bridge) runs in a network namespace
of its own (netns.py) whose nftables refuses every connection opened from
the cloud side (`ct state new` on the veth: rejected); the bridge's own
connection out to the cloud broker is the only way in. Outside: the cloud
broker and fleet-state, an MQTT-source consumer started WITHOUT repair.node
(it cannot call into the site: the test checks the site refuses it). Events
are posted inside the site while fleet-state is SIGKILLed three times
mid-stream and restarted (paho acknowledges a message before fleet-state
commits it: each kill loses what it held, a hole). Then:
  --variant inbox   (default) every acknowledged event ends applied exactly
                    once (its id once in fleet-state's log, nothing lost,
                    no hole open); holes were found and asked for on the
                    cloud broker, and the bridge answered them;
  --variant agent   the same, the bridge keeping nothing it forwarded
                    (journal.retain_s 0): what its inbox no longer holds
                    is relayed to the agent and its copies pass the bridge;
  --variant lost    the agent too keeps nothing (journal.retain_s 0): the
                    holes are answered gone, counted lost once (applied +
                    lost = acknowledged, one log line per range), and after
                    a restart of fleet-state not asked again.
Needs root, ip netns, nft: otherwise prints SKIP and exits 77.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness as h  # noqa: E402
import netns  # noqa: E402

TOTAL = 4000
RATE = 400  # events/s posted inside the site
VARIANT = "inbox"


def _extra_args():
    """--variant V is ours; harness.parse_args must not see it."""
    global VARIANT
    if "--variant" in sys.argv:
        i = sys.argv.index("--variant")
        VARIANT = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    if VARIANT not in ("inbox", "agent", "lost"):
        raise SystemExit("--variant: inbox, agent or lost")


def in_site(ns, code, timeout=10):
    """Runs python code inside the namespace; returns its stdout."""
    r = subprocess.run(ns.wrap([sys.executable, "-c", code]), capture_output=True, text=True,
                       timeout=timeout)
    return r.stdout if r.returncode == 0 else None


def site_get(ns, port, path):
    """GET path from a daemon inside the site (parsed JSON), or None."""
    out = in_site(ns, "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
                      "'http://127.0.0.1:%d%s', timeout=2).read().decode())" % (port, path))
    try:
        return json.loads(out) if out else None
    except ValueError:
        return None


def site_listens(ns, port):
    return in_site(ns, "import socket; socket.create_connection(('127.0.0.1', %d), 1)"
                   % port) is not None


def refuse_inbound(ns):
    """nftables inside the site: a connection opened from the cloud side is
    rejected; what the site opens (and its answers) passes."""
    ns.exec(["nft", "-f", "-"], stdin=(
        "table inet esrefuse {\n"
        "  chain input { type filter hook input priority -10; policy accept;\n"
        '    iifname "%s" ct state new reject with tcp reset\n'
        '    iifname "%s" ct state invalid drop\n'
        "  }\n}\n" % (ns.ns_if, ns.ns_if)))


class Fleet:
    """fleet-state on the cloud side, its MQTT source on the cloud broker;
    no repair.node: holes are asked for on the cloud broker."""

    def __init__(self, env, port):
        self.env, self.port = env, port
        self.http_port = h.free_port()
        self.db = env.path("fleet.db")
        self.proc = None

    def start(self):
        self.proc = self.env.spawn("fleet", [
            self.env.args.fleet, "--node.id", "it-cloud-repair",
            "--source.mqtt", "mqtt://127.0.0.1:%d" % self.port,
            "--state.path", self.db, "--state.sync", "normal",
            "--http.listen", "127.0.0.1:%d" % self.http_port,
            "--source.backoff_base_ms", "50", "--source.backoff_max_ms", "500",
            "--log.level", "info"])

        def ready():
            self.proc.check_alive()
            try:  # subscribed: what is published from now on reaches it
                return h.http_call(self.http_port, "GET", "/readyz", timeout=2)[0] == 200
            except (OSError, ValueError):
                return False
        h.wait_for(ready, 15, "fleet-state to be ready (subscribed)")

    def stats(self):
        status, body = h.http_call(self.http_port, "GET", "/api/stats")
        h.check(status == 200, "GET /api/stats answered %d" % status)
        return json.loads(body)

    def log(self):
        with open(self.env.path("fleet.log"), errors="replace") as f:
            return f.read()


def start_site(env, ns, cloud_port):
    """The edge broker, the agent and the bridge inside the namespace."""
    edge = h.Broker(env, name="edge")
    edge.proc = env.spawn("edge", ns.wrap([h.mosquitto_path(), "-c", edge.conf]))
    h.wait_for(lambda: edge.proc.check_alive() or site_listens(ns, edge.port), 10,
               "the edge broker to listen inside the site")
    retain = ["--journal.retain_s", "0"]
    agent = env.agent(edge.port, extra=retain if VARIANT == "lost" else [])
    agent.proc = env.spawn(agent.name, ns.wrap(agent.argv()))
    h.wait_for(lambda: agent.proc.check_alive() or site_get(ns, agent.http_port, "/readyz"),
               15, "the agent to be ready inside the site")
    bridge = env.bridge(edge.port, 0, cloud_url="mqtt://%s:%d" % (ns.host_ip, cloud_port),
                        extra=retain if VARIANT in ("agent", "lost") else [])
    bridge.proc = env.spawn(bridge.name, ns.wrap(bridge.argv()))

    def bridge_up():
        bridge.proc.check_alive()
        st = site_get(ns, bridge.http_port, "/api/status")
        return st and st["cloud"]["state"] == "connected"
    h.wait_for(bridge_up, 20, "the bridge to connect out to the cloud")
    return edge, agent, bridge


def check_refused(ns, bridge):
    """Nothing on the cloud side can open a connection into the site."""
    for port in (bridge.http_port,):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((ns.ns_ip, port))
            raise h.TestFailure("the site accepted a connection to %s:%d from the cloud side"
                                % (ns.ns_ip, port))
        except ConnectionRefusedError:
            pass
        except socket.timeout:
            raise h.TestFailure("a connection into the site timed out instead of being refused")
        finally:
            s.close()


def stream_with_kills(env, ns, agent, fleet):
    out = env.path("acked.json")
    poster = subprocess.Popen(ns.wrap([sys.executable, os.path.join(HERE, "site_poster.py"),
                                       str(agent.http_port), str(TOTAL), str(RATE), out]),
                              stdout=open(env.path("poster.log"), "w"), stderr=subprocess.STDOUT)
    kills = 0
    try:
        for pause in (1.5, 2.5, 2.5):
            time.sleep(pause)
            fleet.proc.signal(signal.SIGKILL)
            fleet.proc.wait_exit(10)
            kills += 1
            fleet.start()
        h.check(poster.wait(TOTAL / RATE + 60) == 0, "the poster inside the site failed: %s"
                % h.tail(env.path("poster.log")))
    finally:
        if poster.poll() is None:
            poster.kill()
    with open(out) as f:
        acked = json.load(f)
    h.check(len(acked) == TOTAL, "%d of %d events acknowledged" % (len(acked), TOTAL))
    return acked, kills


def fleet_ids(env, fleet):
    r = subprocess.run(["sqlite3", fleet.db, "SELECT id FROM events"], capture_output=True,
                       text=True, timeout=30)
    h.check(r.returncode == 0, "sqlite3 %s: %s" % (fleet.db, r.stderr))
    return r.stdout.split()


def scenario(env):
    ns = netns.Netns.create()
    refuse_inbound(ns)
    cport = h.free_port()
    cloud = h.Broker(env, port=cport, name="cloud",
                     extra=["listener %d %s" % (cport, ns.host_ip)])
    cloud.start()
    edge, agent, bridge = start_site(env, ns, cport)
    check_refused(ns, bridge)
    fleet = Fleet(env, cport)
    fleet.start()
    acked, kills = stream_with_kills(env, ns, agent, fleet)

    def settled():
        st = fleet.stats()
        done = st["applied"] + st["gaps"]["lost"] >= TOTAL and st["gaps"]["holes_open"] == 0
        return st if done else None
    st = h.wait_for(settled, 90, "fleet-state to apply (or count lost) every event")
    br = site_get(ns, bridge.http_port, "/api/status")["cloud_resend"]
    gaps = st["gaps"]
    figures = ("applied %d, lost %d, holes found %d, duplicates %d; bridge %s" %
               (st["applied"], gaps["lost"], gaps.get("holes_detected", -1),
                st.get("duplicates", -1), br))
    h.check(br["requests"] > 0, "no re-send request reached the bridge: %s" % figures)
    ids = fleet_ids(env, fleet)
    h.check(len(ids) == len(set(ids)), "an id was applied twice: %s" % figures)
    h.check(set(ids) <= set(acked), "fleet-state applied ids never acknowledged")
    if VARIANT == "lost":
        # Every acknowledged event applied or inside a range logged LOST
        # once. (An event of a range answered gone that still arrives later,
        # from the broker's session, is applied and stays counted lost: lost
        # may exceed what is missing.)
        lines = [ln for ln in fleet.log().splitlines() if "events LOST" in ln]
        ranges = [tuple(int(x) for x in re.search(r"holds (\d+)\.\.(\d+):", ln).groups())
                  for ln in lines]
        h.check(len(ranges) == len(set(ranges)), "a lost range was logged twice: %s" % lines)
        seqs = {acked[i] for i in ids}
        unapplied = [q for q in range(1, TOTAL + 1) if q not in seqs]
        h.check(gaps["lost"] > 0 and st["applied"] + gaps["lost"] >= TOTAL and
                all(any(a <= q <= b for a, b in ranges) for q in unapplied),
                "an acknowledged event neither applied nor counted lost: %s" % figures)
        fleet.proc.signal(signal.SIGTERM)
        h.check(fleet.proc.wait_exit(20) == 0, "fleet-state did not stop on SIGTERM")
        fleet.start()
        before = site_get(ns, bridge.http_port, "/api/status")["cloud_resend"]["requests"]
        h.hold(2.0)
        after = site_get(ns, bridge.http_port, "/api/status")["cloud_resend"]["requests"]
        h.check(after == before, "a range counted lost was asked for again")
        h.check(fleet.stats()["gaps"]["lost"] == gaps["lost"], "lost changed after a restart")
    else:
        h.check(gaps["lost"] == 0 and st["applied"] == TOTAL and set(ids) == set(acked),
                "not every acknowledged event applied exactly once: %s" % figures)
        if VARIANT == "agent":
            # Rows forwarded moments before a request may still wait for
            # retention's next pass (the inbox answers those itself, as it
            # should): what matters is that what it no longer held was
            # relayed to the agent and came back through the bridge.
            h.check(br["relayed"] > 0 and br["passed"] > 0,
                    "the requests were not relayed to the agent: %s" % figures)
        else:
            h.check(br["from_inbox"] > 0, "nothing was answered from the inbox: %s" % figures)
    check_refused(ns, bridge)
    return "%s: %d events, fleet-state SIGKILLed %d times; %s" % (VARIANT, TOTAL, kills, figures)


if __name__ == "__main__":
    _extra_args()
    netns.skip_unless_available("fault_cloud_repair")
    h.main(scenario, "repair through the site's own connection (%s)" % VARIANT)
