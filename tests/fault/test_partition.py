#!/usr/bin/env python3
"""test_partition (fault scenario 4): the bridge's uplink to the cloud broker
partitioned for real, then lossy, then slow; nothing acknowledged may be lost.

Topology: the edge mosquitto, two edge agents and the cloud-bridge run on the
host (loopback). The cloud mosquitto runs in a network namespace of its own
(netns.py), joined to the host by a veth pair, listening on the namespace's
address; the recorder (checker.Recorder, mosquitto_sub) runs inside the
namespace too, so the faults, nftables rules on the veth, cut only the
bridge's path to the cloud (the uplink), never the recorder's view. The
bridge's cloud keepalive is 5 s, so a black hole is noticed (after 2-3
keepalives: paho sends a PINGREQ once nothing came back for one keepalive and
gives up when no PINGRESP came within the next); its reconnect backoff is
250 ms doubling to 2 s, its connect timeout the built-in 10 s.

Phases, each with producers of its own (checker.IdPoster/Load, one per agent,
RATE events/s each, ids of their own) posting throughout:
  normal      the path whole
  partition   every packet on the veth dropped both ways, silently (no
              reset) for PARTITION s (30 s here, --long: 10 min); the bridge
              must report the cloud link down and a growing backlog
  restore     the rules removed: the bridge must reconnect (backoff) and
              drain; printed: time to reconnect and to drain (every event
              acknowledged during the partition at the recorder)
  loss-1, loss-5, loss-20
              1 %, 5 %, 20 % of the packets dropped each way at random
              (nftables `numgen random mod 100 < N drop`)
  latency     the bridge's connection moved through delay_proxy.py (each
              chunk delayed 100 +/- 50 ms each way, order kept): a redirect
              rule sends new connections to the proxy, and one TCP reset
              (nftables `reject with tcp reset`) makes the bridge reconnect
              through it
Then it waits until settled: every acknowledged id at the recorder, nothing
pending at the agents, nothing left to do at the bridge. checker.count and
checker.report for each phase (RESULT <phase> ...) and for the whole run
(RESULT uplink ...): lost, unexpected, malformed must be 0, per-node order
must hold after de-duplication, and no event may arrive twice under
different ids.

Needs root, ip netns, nft: otherwise prints SKIP and exits 77 (ctest:
Skipped).
"""
import argparse
import os
import random
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness as h  # noqa: E402
import checker  # noqa: E402
import netns  # noqa: E402
from delay_proxy import DelayProxy  # noqa: E402

RATE = 100           # events/s per agent (two agents)
CLOUD_PORT = 1883    # inside the namespace: nothing else listens there
KEEPALIVE = 5        # the bridge's cloud keepalive (s)

SHORT = {"normal": 8, "partition": 30, "loss": 15, "latency": 20}
LONG = {"normal": 30, "partition": 600, "loss": 60, "latency": 60}


def _extra_args():
    """--long is ours; harness.parse_args must not see it."""
    long_run = "--long" in sys.argv
    if long_run:
        sys.argv.remove("--long")
        if not any(a == "--budget" or a.startswith("--budget=") for a in sys.argv):
            sys.argv += ["--budget", "1500"]
    return long_run


LONG_RUN = False


class NsBroker:
    """The cloud mosquitto inside the namespace, listening on ns_ip:port.

    Like the other fault scenarios, it runs the shipped
    deploy/mosquitto/cloud.conf (with its ACL, a password file and throw-away
    TLS files: faultlib.ShippedBroker), its plain listener moved from
    127.0.0.1 to the namespace's address; the bridge and the recorder log in
    as the shipped users. If that cannot be had (no faultlib, no shipped
    file), a minimal generated config like harness.Broker's, anonymous."""

    BRIDGE_USER, CONSUMER = "bridge-site1", "consumer"

    def __init__(self, env, ns, name="cloud"):
        self.env, self.ns, self.name = env, ns, name
        self.host = ns.ns_ip
        self.users = None
        self.proc = None
        try:
            import faultlib
            b = faultlib.ShippedBroker(env, "cloud", name=name, users={
                self.BRIDGE_USER: "bridge-secret", self.CONSUMER: "consumer-secret"})
            with open(b.conf) as f:
                text = f.read()
            text, n = re.subn(r"(?m)^listener %d 127\.0\.0\.1$" % b.port,
                              "listener %d %s" % (b.port, self.host), text)
            h.check(n == 1, "the rendered cloud.conf has no loopback listener on %d" % b.port)
            with open(b.conf, "w") as f:
                f.write(text)
            self.port, self.conf, self.shipped = b.port, b.conf, b
            self.users = dict(b.users)
            self.origin = ("the shipped deploy/mosquitto/cloud.conf (faultlib.ShippedBroker), "
                           "its loopback listener moved to %s:%d" % (self.host, self.port))
        except Exception as e:  # noqa: BLE001 - anything: say so and fall back
            self.port, self.shipped = CLOUD_PORT, None
            data = env.path(name)
            os.makedirs(data, exist_ok=True)
            self.conf = env.path(name + ".conf")
            lines = ["listener %d %s" % (self.port, self.host), "allow_anonymous true",
                     "persistence true", "persistence_location %s/" % data,
                     "autosave_interval 1", "max_queued_messages 0",
                     "max_inflight_messages 100", "log_dest stderr", "log_type error",
                     "log_type warning", "log_type notice", "log_timestamp_format %H:%M:%S"]
            if os.geteuid() == 0:
                lines.append("user root")
            with open(self.conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            self.origin = ("a generated minimal config (anonymous; the shipped cloud.conf could "
                           "not be used: %s)" % (e,))

    def login(self, user):
        """mosquitto_sub/pub flags to log in as user ([] when anonymous)."""
        return ["-u", user, "-P", self.users[user]] if self.users else []

    def bridge_login(self):
        """The bridge's --cloud.username/--cloud.password_file ([] when anonymous)."""
        if not self.users:
            return []
        return ["--cloud.username", self.BRIDGE_USER,
                "--cloud.password_file", self.shipped.password_file(self.BRIDGE_USER)]

    def start(self, timeout=10):
        self.proc = self.env.spawn(self.name, self.ns.wrap([h.mosquitto_path(), "-c", self.conf]))

        def up():
            self.proc.check_alive()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        h.wait_for(up, timeout, "the cloud broker to listen on %s:%d in %s" %
                   (self.host, self.port, self.ns.name))

    def probe_recorder(self, rec, timeout=15):
        """Waits until the recorder's subscription is in place: a probe
        published (as the bridge's user, from inside the namespace) arrives."""
        argv = self.ns.wrap(["mosquitto_pub", "-h", self.host, "-p", str(self.port),
                             "-i", "es-fault-probe", "-q", "1",
                             "-t", "edgespool/site1/_probe/ev/probe", "-m", '{"probe":true}'] +
                            self.login(self.BRIDGE_USER))

        def seen():
            subprocess.run(argv, capture_output=True, timeout=10)
            return any(isinstance(m, dict) and m.get("probe") for m in rec.messages())
        h.wait_for(seen, timeout, "the recorder to receive a probe", interval=0.3)


class Phase:
    """One phase's producers (an IdPoster and a Load per agent)."""

    def __init__(self, name, agents, seconds):
        self.name, self.seconds = name, seconds
        self.posters = [checker.IdPoster(a.http_port, "/site1/" + a.node) for a in agents]
        self.loads = [checker.Load(p, int(RATE * seconds), RATE) for p in self.posters]
        self.t0 = self.t1 = None

    def start(self):
        self.t0 = time.monotonic()
        for ld in self.loads:
            ld.start()

    def still_ok(self):
        for ld in self.loads:
            ld.check()

    def finish(self, timeout=120):
        for ld in self.loads:
            ld.finish(timeout)
        self.t1 = time.monotonic()

    def ids(self):
        """(attempted set, acknowledged id -> sequence)"""
        attempted, acked = set(), {}
        for p in self.posters:
            a, k = p.snapshot()
            attempted |= a
            acked.update(k)
        return attempted, acked


def metric(bridge, name, link="cloud"):
    """A value of the bridge's /metrics for link="..." (None if unreadable)."""
    try:
        status, body = h.http_call(bridge.http_port, "GET", "/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    m = re.search(r'^%s\{[^}]*link="%s"[^}]*\} ([0-9.e+]+)$' % (name, re.escape(link)),
                  body.decode(), re.M)
    return int(float(m.group(1))) if m else None


def scenario(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 32)
    print("seed %d (rerun with --seed %d)%s" % (seed, seed, " --long" if LONG_RUN else ""))
    rng = random.Random(seed)
    random.seed(rng.randrange(1 << 32))  # checker.uuid7's random bits
    dur = LONG if LONG_RUN else SHORT

    ns = netns.Netns.create()
    print("  namespace %s: host %s (%s) <-> %s (%s)" % (ns.name, ns.host_ip, ns.host_if,
                                                      ns.ns_ip, ns.ns_if))
    try:
        import faultlib
        edge = faultlib.ShippedBroker(env, "edge")
        edge.start()
        print("  edge broker: the shipped deploy/mosquitto/edge.conf (faultlib.ShippedBroker)")
    except Exception as e:  # noqa: BLE001 - anything: say so and fall back
        print("  edge broker: a generated config (the shipped edge.conf could not be used: %s)"
              % (e,))
        edge = env.broker(name="edge")
    cloud = NsBroker(env, ns)
    print("  cloud broker: %s" % cloud.origin)
    cloud.start()
    rec = checker.Recorder(env, ns.ns_ip, cloud.port)
    rec.argv = ns.wrap(rec.argv + cloud.login(NsBroker.CONSUMER))
    rec.start()
    proxy = None
    try:
        cloud.probe_recorder(rec)
        proxy = DelayProxy((ns.ns_ip, cloud.port), 100, 50, seed=rng.randrange(1 << 32)).start()
        bridge = env.bridge(edge.port, 0, cloud_url="mqtt://%s:%d" % (ns.ns_ip, cloud.port),
                            extra=cloud.bridge_login() + ["--cloud.keepalive_s", str(KEEPALIVE),
                                   "--cloud.backoff_base_ms", "250",
                                   "--cloud.backoff_max_ms", "2000",
                                   # as faultlib.System: a node's events wait
                                   # for a hole rather than go out of order
                                   "--order.hole_wait_ms", "60000"])
        bridge.start()
        agents = h.start_agents(env, edge.port)
        phases, notes = [], []

        def run(name, seconds, during=None):
            ph = Phase(name, agents, seconds)
            phases.append(ph)
            ph.start()
            out = during(ph) if during else h.hold(seconds, ph.still_ok)
            ph.finish()
            return ph, out

        # (a) normal flow
        run("normal", dur["normal"])
        print("  normal: %d s, %s" % (dur["normal"], h.bridge_figures(bridge.status())))

        # (b) partition: a silent black hole on the veth
        def partitioned(ph):
            st0 = bridge.status()
            ns.partition()
            t_cut = time.monotonic()

            def down():
                ph.still_ok()
                return bridge.status()["cloud"]["state"] == "disconnected"
            h.wait_for(down, 3 * KEEPALIVE + 5, "the bridge to notice the partition "
                       "(cloud keepalive %d s)" % KEEPALIVE)
            noticed = time.monotonic() - t_cut
            b1 = bridge.status()["inbox"]["backlog"]
            h.hold(max(0.0, ph.seconds - (time.monotonic() - ph.t0)), ph.still_ok)
            st = bridge.status()
            h.check(st["cloud"]["state"] == "disconnected",
                    "the bridge reports the cloud %s during the partition" % st["cloud"]["state"])
            h.check(all(e["state"] == "connected" for e in st["edge"]),
                    "the bridge's edge side suffered from the partition: %s" % st["edge"])
            b2 = st["inbox"]["backlog"]
            h.check(b2 > b1, "the bridge's backlog did not grow during the partition: %d then %d"
                    % (b1, b2))
            ns.heal()
            t_heal = time.monotonic()
            line = ("partition %.0f s: noticed after %.1f s (keepalive %d s), backlog %d -> %d, "
                    "oldest unforwarded %.1f s, failed attempts during it %d, last error %r" %
                    (t_heal - t_cut, noticed, KEEPALIVE, b1, b2,
                     st["inbox"]["oldest_unforwarded_age_s"],
                     st["cloud"]["failures"] - st0["cloud"]["failures"], st["cloud"]["last_error"]))
            return t_heal, b2, line
        part, (t_heal, backlog, line) = run("partition", dur["partition"], partitioned)
        print("  " + line)

        # (c) restore: reconnect, drain (while the load goes on)
        _, part_acked = part.ids()

        def restoring(ph):
            def up():
                ph.still_ok()
                return bridge.status()["cloud"]["state"] == "connected"
            h.wait_for(up, 30, "the bridge to reconnect after the partition")
            reconnect = time.monotonic() - t_heal

            def drained():
                ph.still_ok()
                got = {m.get("id") for m in rec.messages() if isinstance(m, dict)}
                return all(i in got for i in part_acked)
            h.wait_for(drained, 60 if not LONG_RUN else 300, "every event acknowledged during "
                       "the partition at the recorder", interval=0.5 if not LONG_RUN else 1.0)
            drain = time.monotonic() - t_heal
            h.hold(max(0.0, ph.seconds - (time.monotonic() - ph.t0)), ph.still_ok)
            return reconnect, drain
        _, (reconnect, drain) = run("restore", 10, restoring)
        notes.append("after the partition: reconnected in %.1f s, drained %d backlogged events "
                     "(%d acknowledged during the partition) in %.1f s" %
                     (reconnect, backlog, len(part_acked), drain))
        print("  restore: " + notes[-1])

        # (d) packet loss
        for pct in (1, 5, 20):
            f0 = bridge.status()["cloud"]["failures"]
            ns.loss(pct)
            run("loss-%d" % pct, dur["loss"])
            ns.heal()
            st = bridge.status()
            notes.append("loss %d%%: %d failed attempts / lost connections, cloud %s, backlog %d "
                         "at its end" % (pct, st["cloud"]["failures"] - f0, st["cloud"]["state"],
                                         st["inbox"]["backlog"]))
            print("  " + notes[-1])

        # (e) latency: through the delaying proxy
        def slow(ph):
            f0 = bridge.status()["cloud"]["failures"]
            ns.redirect(cloud.port, proxy.port)
            ns.reset(cloud.port)  # the direct connection ends; new ones go to the proxy

            def moved():
                ph.still_ok()
                return bridge.status()["cloud"]["failures"] > f0
            h.wait_for(moved, 10, "the bridge to lose its direct connection to a TCP reset")
            ns.heal()

            def through():
                ph.still_ok()
                return bridge.status()["cloud"]["state"] == "connected" and \
                    proxy.stats()["open"] >= 1
            h.wait_for(through, 30, "the bridge to reconnect through the delay proxy")
            h.hold(max(0.0, ph.seconds - (time.monotonic() - ph.t0)), ph.still_ok)
            return proxy.stats()
        _, pst = run("latency", dur["latency"], slow)
        notes.append("latency 100 +/- 50 ms each way through the proxy: %d connection(s), "
                     "%d bytes up, %d down" % (pst["connections"], pst["bytes_up"],
                                               pst["bytes_down"]))
        print("  " + notes[-1])

        # settle
        every_att, every_acked = set(), {}
        for ph in phases:
            a, k = ph.ids()
            every_att |= a
            every_acked.update(k)
        t_settle = time.monotonic()

        def settled():
            got = {m.get("id") for m in rec.messages() if isinstance(m, dict)}
            return all(i in got for i in every_acked) and \
                all(a.pending() == 0 for a in agents) and bridge.quiet()
        h.wait_for(settled, 90, "every acknowledged id at the recorder, agents and bridge with "
                   "nothing pending", interval=0.5)
        print("  settled in %.1f s" % (time.monotonic() - t_settle))
        time.sleep(1.0)  # a late duplicate still counts
        st = bridge.status()
        reconnects = metric(bridge, "edgespool_reconnects_total")
        print("  bridge: %d reconnects to the cloud, %d failed attempts / lost connections; %s" %
              ((-1 if reconnects is None else reconnects), st["cloud"]["failures"],
               h.bridge_figures(st)))
    finally:
        rec.stop()
        if proxy is not None:
            proxy.close()

    # count
    messages = [m for m in rec.messages() if not (isinstance(m, dict) and m.get("probe"))]
    ok, findings = True, []
    for ph in phases:
        attempted, acked = ph.ids()
        mine = [m for m in messages if isinstance(m, dict) and m.get("id") in attempted]
        c = checker.count(attempted, acked, mine)
        ok = checker.report(ph.name, c) and ok
        if c["dup_dedup"]:
            findings.append("%s: %d events arrived twice under different ids" %
                            (ph.name, c["dup_dedup"]))
    c = checker.count(every_att, every_acked, messages)
    ok = checker.report("uplink", c) and ok
    if c["dup_dedup"]:
        findings.append("whole run: %d events arrived twice under different ids" % c["dup_dedup"])
    h.check(st["gaps"]["lost"] == 0, "the bridge counted %d events lost" % st["gaps"]["lost"])
    h.check(ok and not findings, "the uplink scenario failed: %s" %
            ("; ".join(findings) or "see the RESULT lines"))
    return ("%d acknowledged, all at the cloud once de-duplicated, in order; %s; bridge %d "
            "reconnects" % (c["acknowledged"], notes[0],
                            -1 if reconnects is None else reconnects))


if __name__ == "__main__":
    LONG_RUN = _extra_args()
    netns.skip_unless_available("fault_partition")
    h.main(scenario, "the cloud uplink partitioned (black hole), lossy (1/5/20 %%) and slow "
           "(100 +/- 50 ms): nothing acknowledged is lost%s" % (" [long]" if LONG_RUN else ""))
