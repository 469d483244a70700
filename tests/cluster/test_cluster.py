"""test_cluster.py - the site forwarding into a real RabbitMQ cluster, and
fleet-state consuming from it.

Two agents -> edge mosquitto -> cloud-bridge (cloud.url: the three nodes'
MQTT listeners) -> a cluster of three RabbitMQ nodes (MQTT plugin, amq.topic)
-> the durable quorum queue that fleet-state declares and binds with the
pattern edgespool.*.*.ev.# -> fleet-state over AMQP; and `edgespool sub`, an
MQTT consumer, on another node. One cluster boot for every phase:

  1. flow: every acknowledged event is applied exactly once; the projection
     (/api/devices) equals the one computed here from the events sent.
  2. failover: fleet-state stopped (the queue fills), the node the bridge
     and fleet-state use (and where the queue was declared) is SIGKILLed
     mid-stream; the bridge fails over (status and /metrics say to where);
     the quorum queue, a majority of three still up, holds every event.
  3. consumer kill: fleet-state is started again (it moves to a living
     node), SIGKILLed while it works through the backlog and live events,
     and started again: nothing applied twice, nothing missed.
  4. rebuild: `fleet-state --rebuild` empties the projection and replays
     its own event log: the same state again.
  5. MQTT consumers on the nodes that stay up receive the same events by
     their patterns: on the third node every event (edgespool/+/+/ev/#), on
     the second only the alarms (edgespool/+/+/ev/alarm/#: RabbitMQ turned
     the dot of `alarm.raised` into a level), all of them and nothing else;
     and `edgespool tail --amqp` on the second, a queue of its own bound
     to the alarms' routing keys, prints every alarm and nothing else.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rabbit  # noqa: E402
from rabbit import h  # noqa: E402

QUEUE = "es-events"
KEY = "edgespool.*.*.ev.#"  # every event of every site and node
DEVICES = 12


class AmqpTail:
    """`edgespool tail --amqp` on one node: a queue of its own (exclusive,
    auto-delete) bound to the alarms' keys; JSON lines into a file."""

    KEY = "edgespool.*.*.ev.alarm.#"

    def __init__(self, env, node):
        self.env, self.out = env, env.path("tail-amqp.jsonl")
        argv = [env.args.cli, "tail", "--amqp", node.amqp_url(), "--bind", self.KEY, "alarm.*"]
        self.proc = env.spawn("tail-amqp", ["sh", "-c", 'exec "$@" >"$0"', self.out] + argv)

        def bound():  # its queue is bound: no alarm published from now on is missed
            self.proc.check_alive()
            return self.KEY in node.ctl("list_bindings", "-q", "routing_key")
        h.wait_for(bound, 60, "edgespool tail --amqp to bind its queue", interval=0.5)

    def ids(self):
        """The ids printed so far (each line must be a whole CloudEvent)."""
        seen = []
        with open(self.out) as f:
            for line in f.read().splitlines():
                ev = json.loads(line)
                h.check(ev.get("specversion") == "1.0" and ev["type"].startswith("alarm."),
                        "edgespool tail printed a line that is not an alarm: %.200s" % line)
                seen.append(ev["id"])
        return seen


# ---- events and the projection expected from them ----------------------------


def mixed_events(start, n):
    """n short-form events numbered from start over DEVICES devices: mostly
    sensor.reading, some alarm.raised / alarm.cleared / device.heartbeat."""
    out = []
    for k in range(start, start + n):
        dev = "dev-%08x" % (0xabcd + k % DEVICES)
        r = (k // DEVICES) % 10
        if r < 6:
            ev = {"type": "sensor.reading", "data": {"n": k, "temp": 20 + k % 50 / 10.0}}
        elif r < 8:
            ev = {"type": "alarm.raised", "data": {"n": k, "level": "high"}}
        elif r == 8:
            ev = {"type": "alarm.cleared", "data": {"n": k}}
        else:
            ev = {"type": "device.heartbeat", "data": {"n": k}}
        ev["subject"] = dev
        out.append(ev)
    return out


class Feeder(threading.Thread):
    """Posts `total` mixed events to one agent in batches (at most `rate`
    events/s), recording what the agent acknowledged (a harness Poster)."""

    def __init__(self, poster, total, rate=None, batch=50):
        super().__init__(daemon=True)
        self.poster, self.total, self.rate, self.batch = poster, total, rate, batch
        self.error = None

    def run(self):
        try:
            done, t0 = 0, time.monotonic()
            while done < self.total:
                n = min(self.batch, self.total - done)
                self.poster.post_acked(mixed_events(self.poster.next_n, n), 60)
                self.poster.next_n += n
                done += n
                if self.rate:
                    time.sleep(max(0.0, t0 + done / self.rate - time.monotonic()))
        except BaseException as e:  # reported by check()
            self.error = e

    def check(self):
        if self.error is not None:
            raise h.TestFailure("feeder failed: %s" % (self.error,))

    def finish(self, timeout):
        h.wait_for(lambda: self.check() or not self.is_alive(), timeout, "a feeder to finish")
        self.check()


def feed(posters, total, rate=None):
    """Starts one Feeder per poster; returns them."""
    feeders = [Feeder(p, total, rate) for p in posters]
    for f in feeders:
        f.start()
    return feeders


def expected_devices(agents, posters, sub):
    """/api/devices as the contract defines it, from the acknowledged events
    (their sequences from the 202 answers) and, for last_seen, the time each
    event carried as the MQTT consumer received it."""
    devs = {}
    for a, p in zip(agents, posters):
        source = "/site1/" + a.node
        for i, seq in p.snapshot().items():
            ev = p.posted[i]
            d = devs.setdefault((source, ev["subject"]), {
                "source": source, "subject": ev["subject"], "counts": {}, "alarm": False,
                "_top": 0, "_reading": 0, "_alarm": 0})
            d["counts"][ev["type"]] = d["counts"].get(ev["type"], 0) + 1
            if seq > d["_top"]:
                d.update(_top=seq, last_type=ev["type"], last_sequence=seq, _id=i)
            if ev["type"] == "sensor.reading" and seq > d["_reading"]:
                d.update(_reading=seq, reading=ev["data"])
            if ev["type"].startswith("alarm.") and seq > d["_alarm"]:
                d.update(_alarm=seq, alarm=ev["type"] == "alarm.raised")
    out = []
    for key in sorted(devs):
        d = devs[key]
        rec = [r for r in sub.records if r["id"] == d["_id"]]
        d["last_seen"] = rec[0]["event"]["time"] if rec else None
        out.append({k: v for k, v in d.items() if not k.startswith("_")})
    return out


def compare_devices(got, want, what):
    """The projection equals the expected one, device by device."""
    h.check(isinstance(got, list), "%s: devices is not a list" % what)
    h.check([(d.get("source"), d.get("subject")) for d in got] ==
            [(d["source"], d["subject"]) for d in want],
            "%s: devices %s, expected %s" % (what, [(d.get("source"), d.get("subject"))
                                                   for d in got][:20],
                                            [(d["source"], d["subject"]) for d in want][:20]))
    for g, w in zip(got, want):
        for k in ("last_type", "last_sequence", "reading", "alarm", "counts", "last_seen"):
            if k == "last_seen" and w[k] is None:
                continue
            h.check(g.get(k) == w.get(k), "%s: %s %s: %s is %r, expected %r" %
                    (what, w["source"], w["subject"], k, g.get(k), w.get(k)))


def distinct_acked(posters):
    return sum(len(p.snapshot()) for p in posters)


# ---- fleet-state ---------------------------------------------------------------


class Fleet:
    """The real fleet-state over AMQP: a fixed HTTP port and state file, so
    restarts keep both."""

    def __init__(self, env, urls):
        h.check(rabbit.OPTS.fleet, "this test needs --fleet (the fleet-state binary)")
        self.env, self.urls = env, urls
        self.http_port = h.free_port()
        self.db = env.path("fleet.db")
        self.proc = None

    def argv(self):
        return [rabbit.OPTS.fleet, "--node.id", "it-fleet",
                "--source.amqp", ",".join(self.urls), "--source.queue", QUEUE,
                "--source.bind", KEY, "--source.prefetch", "100",
                "--source.backoff_base_ms", "50", "--source.backoff_max_ms", "500",
                "--state.path", self.db, "--http.listen", "127.0.0.1:%d" % self.http_port]

    def start(self, timeout=30):
        """Starts it; waits until GET /readyz answers 200 (consuming the
        quorum queue)."""
        self.proc = self.env.spawn("fleet-state", self.argv())

        def up():
            self.proc.check_alive()
            return h.ready(self.http_port)
        h.wait_for(up, timeout, "fleet-state to be ready (GET /readyz 200)")

    def get(self, path):
        status, body = h.http_call(self.http_port, "GET", path)
        h.check(status == 200, "fleet-state GET %s answered %d: %.300s" % (path, status, body))
        return json.loads(body)

    def stats(self):
        return self.get("/api/stats")

    def devices(self):
        return self.get("/api/devices")["devices"]

    def wait_events(self, n, timeout, what):
        """Waits until its event log holds n events (each id once)."""
        def done():
            self.proc.check_alive()
            st = self.stats()
            h.check(st["events"] <= n, "fleet-state logged %d events, only %d ids were "
                    "acknowledged (applied twice?): %s" % (st["events"], n, st))
            return st["events"] == n and st
        return h.wait_for(done, timeout, what, interval=0.1)

    def stop(self):
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait_exit(30)
        h.check(rc == 0, "fleet-state %s after SIGTERM (expected 0)" % h.exit_text(rc))

    def rebuild(self):
        """fleet-state --rebuild with the same settings; returns the count."""
        r = subprocess.run(self.argv() + ["--rebuild"], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        h.check(r.returncode == 0, "fleet-state --rebuild: exit %d: %s%s" %
                (r.returncode, r.stdout, r.stderr))
        words = r.stdout.split()
        h.check("rebuilt:" in words, "fleet-state --rebuild printed %r" % r.stdout)
        return int(words[words.index("rebuilt:") + 1])


# ---- the phases ------------------------------------------------------------------


def phase_flow(fleet, agents, posters, sub):
    """1: events flow into the cluster and are applied exactly once."""
    for f in feed(posters, 600):
        f.finish(120)
    n = distinct_acked(posters)
    sub.wait_all(h.merge_acked(h.acked_by_node(agents, posters)), 60)
    st = fleet.wait_events(n, 60, "fleet-state to apply the %d events of phase 1" % n)
    h.check(st["invalid"] == 0 and st["transport"] == "amqp", "fleet-state stats %s" % st)
    compare_devices(fleet.devices(), expected_devices(agents, posters, sub), "phase 1")
    print("  1. %d events applied once each; the projection of %d devices as expected" %
          (n, DEVICES * len(agents)))
    return n


def kill_bridge_node(cluster, bridge):
    """Kills the node the bridge uses; waits for the fail-over; checks its
    status and /metrics."""
    st = bridge.status()["cloud"]
    victim = cluster.nodes[st["node"]]
    h.check(st["state"] == "connected" and st["url"] == victim.mqtt_url(),
            "bridge status before the kill: %s" % st)
    victim.kill()

    def moved():
        c = bridge.status()["cloud"]
        return (c["state"] == "connected" and c["url"] != victim.mqtt_url() and
                c["failovers"] > st["failovers"]) and c
    # More than one fail-over is normal: RabbitMQ 3.10's MQTT plugin closes
    # a connection whose publish a quorum queue refuses (basic.nack) while it
    # elects a new leader; the bridge then moves on and re-sends.
    h.wait_for(moved, 60, "the bridge to fail over to another node")

    # /metrics against the status: the bridge may fail over again between
    # two reads (see above), so a pair of reads counts only when the status
    # is the same before and after the scrape.
    def agreed():
        before = moved()
        metrics = h.http_call(bridge.http_port, "GET", "/metrics")[1].decode()
        after = moved()
        if not before or not after or before["url"] != after["url"]:
            return None
        return (metrics, after)
    metrics, c = h.wait_for(agreed, 30, "a steady cloud node to compare /metrics with")
    h.check("edgespool_cloud_failovers_total" in metrics,
            "/metrics lacks edgespool_cloud_failovers_total")
    h.check('edgespool_cloud_node{url="%s"} 1' % c["url"] in metrics,
            "/metrics does not mark %s as the node in use" % c["url"])
    return victim, c


def phase_failover(cluster, bridge, fleet, posters, before):
    """2: with fleet-state stopped, the bridge's node dies mid-stream."""
    fleet.stop()
    feeders = feed(posters, 2000, rate=800)
    h.wait_for(lambda: [f.check() for f in feeders] and
               bridge.status()["cloud"]["acked"] >= before + 1000, 60,
               "the bridge to forward 1000 events of phase 2")
    victim, c = kill_bridge_node(cluster, bridge)
    for f in feeders:
        f.finish(120)
    n = distinct_acked(posters)
    h.wait_for(bridge.quiet, 60, "the bridge to have nothing left to forward")

    def held():
        q = cluster.queue_info(QUEUE)
        return q["messages"] >= n - before and q
    q = h.wait_for(held, 60, "the quorum queue to hold the %d events of phase 2" % (n - before),
                   interval=0.5)
    h.check(q["type"] == "quorum", "queue %s is %s" % (QUEUE, q["type"]))
    print("  2. %s killed mid-stream; the bridge failed over to %s (%d fail-overs); the "
          "quorum queue holds %d messages for %d new events" %
          (victim.label, c["url"], c["failovers"], q["messages"], n - before))
    return n, victim


def phase_consumer_kill(fleet, agents, posters, sub, before):
    """3: fleet-state SIGKILLed while it applies, then started again."""
    fleet.start()
    feeders = feed(posters, 1000, rate=500)

    def working():
        st = fleet.stats()
        return st["events"] >= before + 500 and st
    st = h.wait_for(working, 60, "fleet-state to work through the backlog", interval=0.02)
    fleet.proc.kill()
    killed_at = st["events"]
    for f in feeders:
        f.finish(120)
    fleet.start()
    n = distinct_acked(posters)
    sub.wait_all(h.merge_acked(h.acked_by_node(agents, posters)), 60)
    st = fleet.wait_events(n, 90, "fleet-state to apply all %d events after its restart" % n)
    h.check(st["invalid"] == 0, "fleet-state counted invalid events: %s" % st)
    want = expected_devices(agents, posters, sub)
    compare_devices(fleet.devices(), want, "phase 3")
    print("  3. fleet-state killed at %d events, restarted on %s: %d events, each applied "
          "once (%d duplicate deliveries dropped), projection as expected" %
          (killed_at, st["connected_to"], n, st["duplicates"]))
    return n, want


def phase_rebuild(fleet, want, n):
    """4: --rebuild from an empty projection gives the same state."""
    before = fleet.devices()
    fleet.stop()
    applied = fleet.rebuild()
    h.check(applied == n, "--rebuild applied %d events, the log holds %d" % (applied, n))
    fleet.start()
    after = fleet.devices()
    h.check(after == before, "the projection after --rebuild differs from before")
    compare_devices(after, want, "after --rebuild")
    print("  4. --rebuild re-applied %d events: the same projection" % applied)


def scenario(env):
    cluster = rabbit.Cluster(env, 3)
    edge = env.broker(name="edge")
    cluster.start()
    a, b, c = cluster.nodes
    fleet = Fleet(env, [n.amqp_url() for n in cluster.nodes])
    fleet.start()  # declares and binds the quorum queue (on node a)
    sub = env.sub(c.mqtt_port, name="sub-c")
    tail = AmqpTail(env, b)
    alarms_sub = env.sub(b.mqtt_port, name="sub-b-alarms",
                         extra=["--sub.filter", "edgespool/+/+/ev/alarm/#"])
    agents = h.start_agents(env, edge.port)
    bridge = env.bridge(edge.port, 0, cloud_url=",".join(n.mqtt_url() for n in cluster.nodes))
    bridge.start(timeout=30)
    h.check(bridge.status()["cloud"]["nodes"] == 3, "status cloud.nodes is not 3")
    posters = [h.Poster(ag.http_port) for ag in agents]

    n1 = phase_flow(fleet, agents, posters, sub)
    n2, victim = phase_failover(cluster, bridge, fleet, posters, n1)
    n3, want = phase_consumer_kill(fleet, agents, posters, sub, n2)
    phase_rebuild(fleet, want, n3)

    fig = h.check_nodes_delivery(h.acked_by_node(agents, posters), sub)
    posted = {}
    for p in posters:
        posted.update(p.posted)
    alarms = {i: s for i, s in h.merge_acked(h.acked_by_node(agents, posters)).items()
              if posted[i]["type"].startswith("alarm.")}
    alarms_sub.wait_all(alarms, 60)
    other = [i for i in alarms_sub.seqs if i not in alarms]
    h.check(not other, "%s received %d events that are not alarms, e.g. %s" %
            (alarms_sub.name, len(other), other[:3]))
    wrong = [i for i in alarms if alarms_sub.seqs[i] != {alarms[i]}]
    h.check(not wrong, "alarms with the wrong sequence at %s: %s" % (alarms_sub.name, wrong[:3]))
    print("  5. the MQTT consumer on %s received all %d events by pattern (%d copies); the "
          "one on %s all %d alarms and nothing else" %
          (c.label, n3, fig["copies"], b.label, len(alarms)))
    h.wait_for(lambda: set(tail.ids()) >= set(alarms), 60, "edgespool tail to print every alarm")
    printed = tail.ids()
    h.check(set(printed) == set(alarms), "edgespool tail --amqp printed ids that are not alarms")
    h.check(len(printed) == len(set(printed)), "edgespool tail --amqp printed %d lines for "
            "%d ids: a copy was not hidden" % (len(printed), len(set(printed))))
    print("     `edgespool tail --amqp` on %s printed all %d alarms, each once (%d lines: the "
          "bridge's re-sends after the fail-over hidden by tail)" %
          (b.label, len(alarms), len(printed)))
    bridge.stop()  # clean exits (under the sanitizers: no leak either)
    fleet.stop()
    return "%d events through a 3-node RabbitMQ cluster, one node killed, fleet-state " \
           "killed once: every event applied exactly once" % n3


if __name__ == "__main__":
    rabbit.main(scenario, "agents -> bridge -> RabbitMQ cluster -> fleet-state, with kills")
