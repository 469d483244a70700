#!/usr/bin/env python3
"""test_bridge_lanes: the uplink's priority lanes (lanes.*, docs/protocol.md
"Lanes", decision 69): after an outage alarms go before the backlog, and a
lane's time to live keeps stale readings from the cloud.

Each part is a site of its own: an edge broker, a cloud broker (persistence),
`edgespool sub` on the cloud broker (--sub.from_start, no re-send; it writes
each event as it arrives, a batch's events in the batch's order, so its
output is the arrival order), the real cloud-bridge between them, and real
agents on the edge broker. Run once per cloud.format (--bridge-format events
or batch: the bridge then sends compressed batches over MQTT 5, which the sub
reads).

1. Alarms first. The bridge runs with the default lanes (lanes.high
   alarm.#, no low lane) and reaches the cloud broker through a slow link
   (SlowLink below, LINK_RATE: the backlog takes seconds to cross, as on a
   site's uplink, so an alarm has a backlog to pass). The cloud broker is
   stopped (SIGTERM: the sub's session and subscriptions survive it);
   10,000 `reading.temperature` events are posted to each of two agents
   (gw1, gw2), and the bridge journals all 20,000 in its inbox while the
   cloud is down. The cloud broker comes back; once the drain has begun
   (readings arrive at the sub), alarms (`alarm.raised`) are posted to both
   agents, one at a time. Asserted: every one of the 20,000 readings and the
   alarms arrives (de-duplicated by id: exactly those ids, each with the
   sequence of its 202 answer), each alarm arrives before the last reading
   of its own node does (the backlog is not done when it lands), and per
   node the readings' first arrivals come in sequence order, and so do the
   alarms'.
2. Time to live. The bridge runs with --lanes.low reading.# and
   --lanes.low_ttl_s 1. With the cloud broker stopped, readings are posted
   and journaled by the bridge; once more than 1 s has passed (by the wall
   clock) since the last of them was journaled, the cloud broker comes back
   and one alarm is posted. Asserted: the alarm arrives, no reading does,
   the bridge counts every reading expired in the low lane (and none in the
   high lane), and keeps them in its inbox (none pending).
"""
import re
import socket
import threading
import time

import harness as h

NODES = ("gw1", "gw2")
PER_NODE = 10000      # readings per agent in part 1: 20,000 in all
ALARM_ROUNDS = 3      # part 1: one alarm per agent per round
TTL_READINGS = 2000   # part 2
BATCH = 500           # events per POST
TTL_S = 1
# Part 1's uplink in bytes/s, by cloud.format: the backlog takes 4-7 s to
# cross (events: ~340 B an event on the wire; batch: ~25 B an event, zstd
# with its dictionary), longer than an alarm takes from a POST to the
# bridge's inbox (two commits of journal.linger_ms, 250 ms each). Unthrottled
# on loopback the bridge hands all 20,000 batched readings to the kernel in
# ~0.2 s of its reconnect: no backlog is left for an alarm to pass.
LINK_RATE = {"events": 2000000, "batch": 120000}


def readings(start, n):
    """n short-form reading.temperature events numbered from start."""
    return [{"type": "reading.temperature", "subject": "dev-%d" % (k % 20),
             "data": {"n": k, "temp": 20.0 + (k % 100) / 10.0, "unit": "C",
                      "pad": h.PAD[: 60 + k % 17]}}
            for k in range(start, start + n)]


def alarm(k):
    """One short-form alarm.raised event."""
    return {"type": "alarm.raised", "subject": "dev-%d" % (k % 20),
            "data": {"n": k, "level": "high", "what": "temperature over limit"}}


class ReadingsThread(threading.Thread):
    """Posts `total` readings to one agent in batches of BATCH; join with
    finish()."""

    def __init__(self, poster, total):
        super().__init__(daemon=True)
        self.poster, self.total, self.error = poster, total, None

    def run(self):
        try:
            for start in range(0, self.total, BATCH):
                self.poster.post_acked(readings(start, min(BATCH, self.total - start)), 60)
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, timeout):
        h.wait_for(lambda: not self.is_alive(), timeout, "the poster to finish")
        if self.error is not None:
            raise h.TestFailure("posting readings failed: %s" % (self.error,))


class SlowLink:
    """A TCP proxy on 127.0.0.1:port to 127.0.0.1:upstream that carries what
    its clients send upstream at `rate` bytes/s at most (what comes back, the
    PUBACKs, is not slowed): an uplink slower than the site's backlog, as in
    the field. A client is connected upstream when accepted; if that fails
    (the broker is down) it is closed at once, as a refused connect would be.
    An end or error on either side closes both. Threads, no process."""

    CHUNK = 4096

    def __init__(self, upstream, rate):
        self.upstream, self.rate = upstream, rate
        self.port = h.free_port()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(8)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return  # closed
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
                up.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            for src, dst, rate in ((client, up, self.rate), (up, client, None)):
                threading.Thread(target=self._pump, args=(src, dst, rate), daemon=True).start()

    def _pump(self, src, dst, rate):
        due = time.monotonic()
        try:
            while True:
                data = src.recv(self.CHUNK)
                if not data:
                    break
                dst.sendall(data)
                if rate:  # pacing the link, not waiting for anything to happen
                    due = max(due, time.monotonic()) + len(data) / rate
                    time.sleep(max(0.0, due - time.monotonic()))
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.lsock.close()


def make_site(env, tag, nodes, extra, link_rate=None):
    """Edge and cloud brokers, a cloud sub, the bridge (extra settings;
    through a SlowLink of link_rate bytes/s to the cloud broker if given) and
    one agent per node, all started and connected; names prefixed by tag."""
    edge = env.broker(name=tag + "-edge")
    cloud = env.broker(name=tag + "-cloud")
    csub = env.sub(cloud.port, name=tag + "-cloudsub", from_start=True)
    uplink = SlowLink(cloud.port, link_rate).port if link_rate else cloud.port
    bridge = env.bridge(edge.port, uplink, name=tag + "-bridge", extra=extra)
    bridge.start()
    agents = []
    for node in nodes:
        a = env.agent(edge.port, name="%s-%s" % (tag, node), node=node)
        a.start()
        agents.append(a)
    return edge, cloud, csub, bridge, agents


def take_cloud_down(cloud, bridge):
    """Stops the cloud broker (SIGTERM) and waits for the bridge to see it."""
    cloud.stop()
    h.wait_for(lambda: bridge.status()["cloud"]["state"] == "disconnected", 15,
               "the bridge to report the cloud disconnected")


def post_readings(posters, per_node):
    """Posts per_node readings to each poster's agent at once; checks each
    agent handed out sequences 1..per_node."""
    threads = [ReadingsThread(p, per_node) for p in posters]
    for t in threads:
        t.start()
    for t in threads:
        t.finish(120)
    for p in posters:
        seqs = sorted(p.snapshot().values())
        h.check(seqs == list(range(1, per_node + 1)),
                "agent on port %d: the 202 answers did not hand out sequences 1..%d" %
                (p.port, per_node))


def wait_inbox(bridge, agents, total):
    """Waits until the bridge's inbox holds `total` events, all pending (the
    cloud is down), and the agents have nothing left to publish."""
    def held():
        st = bridge.status()
        i = st["inbox"]
        h.check(i["journaled"] <= total, "the bridge journaled %d events, only %d were posted"
                % (i["journaled"], total))
        return i["journaled"] == total and i["backlog"] == total and \
            all(a.pending() == 0 for a in agents) and st
    try:
        return h.wait_for(held, 60, "the bridge's inbox to hold all %d events" % total,
                          interval=0.1)
    except h.TestFailure as e:
        raise h.TestFailure("%s; bridge inbox %s" % (e, bridge.status()["inbox"]))


def first_arrivals(csub):
    """id -> index of its first copy among the cloud sub's records."""
    csub.poll()
    first = {}
    for k, rec in enumerate(csub.records):
        first.setdefault(rec["id"], k)
    return first


def lane_inversions(csub, ids):
    """node -> how many first arrivals of ids came after a higher sequence of
    the same node among ids (0: order kept)."""
    seen, top, inv = set(), {}, {}
    for rec in csub.records:
        i, node = rec["id"], rec["node"]
        if i not in ids or i in seen:
            continue
        seen.add(i)
        if rec["seq"] < top.get(node, 0):
            inv[node] = inv.get(node, 0) + 1
        top[node] = max(top.get(node, 0), rec["seq"])
    return inv


def check_format(env, bridge, cs):
    """What crossed to the cloud was what cloud.format says (cs: the cloud
    sub's final stats, once it stopped: its stats file lags up to 500 ms
    while it runs). Returns a line."""
    c = bridge.status()["cloud"]
    if env.args.bridge_format == "batch":
        h.check(c["batches"] > 0 and cs.get("batches", 0) > 0,
                "cloud.format batch, yet the bridge published %d batches and the cloud sub "
                "read %s" % (c["batches"], cs.get("batches")))
        return "%d batches" % c["batches"]
    h.check(c["batches"] == 0 and cs.get("batches") == 0,
            "cloud.format events, yet %d batches (sub read %s)" % (c["batches"],
                                                                   cs.get("batches")))
    return "one message an event"


# ---- the bridge's own account of its lanes -------------------------------------


def metrics_lane(bridge, name, lane):
    """The sum of `name`{lane="<lane>",...} samples on the bridge's /metrics,
    or None when it has no such sample (or /metrics is not served)."""
    status, body = h.http_call(bridge.http_port, "GET", "/metrics")
    if status != 200:
        return None
    total, found = 0.0, False
    pat = re.compile(r'^%s\{([^}]*)\}\s+(\S+)' % re.escape(name))
    for line in body.decode("utf-8", "replace").splitlines():
        m = pat.match(line)
        if m and re.search(r'(^|,)lane="%s"' % re.escape(lane), m.group(1)):
            total += float(m.group(2))
            found = True
    return int(total) if found else None


def api_lane(bridge, lane):
    """The lane's entry of cloud.lanes in the bridge's /api/status."""
    lanes = bridge.status()["cloud"].get("lanes")
    h.check(isinstance(lanes, list), "the bridge's /api/status has no cloud.lanes list")
    entry = next((x for x in lanes if x.get("lane") == lane), None)
    h.check(entry is not None, "/api/status cloud.lanes has no lane %r: %s" % (lane, lanes))
    return entry


def check_expired(bridge, lane, want):
    """The bridge reports `want` events of the lane expired, in /metrics
    (edgespool_lane_expired_total) and in /api/status (cloud.lanes[].expired).
    Returns the metric's value."""
    name = "edgespool_lane_expired_total"
    n = metrics_lane(bridge, name, lane)
    h.check(n is not None, "/metrics has no %s{lane=\"%s\"}" % (name, lane))
    h.check(n == want, "%s{lane=\"%s\"} is %d, expected %d" % (name, lane, n, want))
    api = api_lane(bridge, lane).get("expired")
    h.check(api == want, "/api/status cloud.lanes[%s].expired is %r, expected %d" %
            (lane, api, want))
    return n


# ---- 1. alarms first after an outage ---------------------------------------------


def alarms_first(env):
    rate = LINK_RATE[env.args.bridge_format]
    _edge, cloud, csub, bridge, agents = make_site(env, "first", NODES, [], rate)
    posters = [h.Poster(a.http_port, batch=BATCH) for a in agents]
    take_cloud_down(cloud, bridge)

    t0 = time.monotonic()
    post_readings(posters, PER_NODE)
    total = PER_NODE * len(NODES)
    wait_inbox(bridge, agents, total)
    journal_s = time.monotonic() - t0
    reading_ids = set(h.merge_acked(h.acked_by_node(agents, posters)))
    csub.poll()
    h.check(not csub.records, "%d events reached the cloud sub while the cloud broker was "
            "down" % len(csub.records))

    cloud.start()
    t_up = time.monotonic()

    def drain_begun():
        csub.poll()
        return len(csub.records) > 0
    h.wait_for(drain_begun, 30, "the first readings to reach the cloud after it came back")
    begun_at = len(csub.records)
    h.check(begun_at < total, "all %d readings arrived before an alarm could be posted" % total)
    alarm_ids = set()
    for r in range(ALARM_ROUNDS):
        for p in posters:
            before = set(p.snapshot())
            p.post_acked([alarm(r)], 30)
            alarm_ids |= set(p.snapshot()) - before
    h.check(len(alarm_ids) == ALARM_ROUNDS * len(NODES), "%d alarms acknowledged, expected %d"
            % (len(alarm_ids), ALARM_ROUNDS * len(NODES)))

    acked = h.acked_by_node(agents, posters)
    every = h.merge_acked(acked)
    csub.wait_all(every, 90)
    drain_s = time.monotonic() - t_up
    h.wait_for(bridge.quiet, 30, "the bridge to be quiet (backlog 0, nothing in flight)")

    # Everything, each id with its sequence, nothing else: exactly the
    # readings and the alarms once de-duplicated by id.
    f = h.check_nodes_delivery(acked, csub)
    got = set(csub.seqs)
    h.check(got == reading_ids | alarm_ids and len(got & reading_ids) == total,
            "de-duplicated by id the cloud got %d readings and %d alarms, expected %d and %d"
            % (len(got & reading_ids), len(got & alarm_ids), total, len(alarm_ids)))

    # Each alarm before the last reading, and before the last of its own
    # node's readings (the backlog of the alarm's own node was not done).
    first = first_arrivals(csub)
    last_reading = max(first[i] for i in reading_ids)
    after, late = [], []
    for node, ack in acked.items():
        last_own = max(first[i] for i in ack if i in reading_ids)
        for i in (i for i in ack if i in alarm_ids):
            after.append(sum(1 for r in reading_ids if first[r] > first[i]))
            if first[i] > last_own:
                late.append("%s seq %d at arrival %d (%s's last reading at %d)" %
                            (node, ack[i], first[i], node, last_own))
    h.check(not late, "%d of %d alarms arrived after the last reading of their node: %s; "
            "the last reading of all at arrival %d of %d distinct events, the drain had "
            "begun at arrival %d" % (len(late), len(alarm_ids), "; ".join(late),
                                     last_reading, len(first), begun_at))

    # Order per node within each lane; the alarms did pass readings.
    for ids, what in ((reading_ids, "readings"), (alarm_ids, "alarms")):
        inv = lane_inversions(csub, ids)
        h.check(not any(inv.values()), "%s: first arrivals out of sequence order per node: %s"
                % (what, inv))
    for node, ack in acked.items():
        top_reading = max(ack[i] for i in ack if i in reading_ids)
        h.check(all(ack[i] > top_reading for i in ack if i in alarm_ids),
                "%s: an alarm was journaled below the last reading" % node)

    cs = csub.stop()
    h.check(cs.get("invalid") == 0, "cloud sub stats: %s" % cs)
    fmt = check_format(env, bridge, cs)
    st = bridge.status()
    h.check(st["gaps"]["lost"] == 0 and st["inbox"]["invalid"] == 0 and
            st["cloud"]["acked"] >= total + len(alarm_ids),
            "bridge after the drain: %s" % h.bridge_figures(st))
    print("  1. %s: %d readings journaled by the bridge in %.1f s with the cloud down; after "
          "it came back the drain began (arrival %d), %d alarms were posted and each arrived "
          "with %d..%d readings still to come; all %d + %d arrived in %.1f s (%d copies), "
          "order kept per node and lane; bridge out_of_order %d" %
          (fmt, total, journal_s, begun_at, len(alarm_ids), min(after), max(after), total,
           len(alarm_ids), drain_s, f["copies"], st["order"]["out_of_order"]))
    bridge.stop()
    return min(after)


# ---- 2. a lane's time to live -----------------------------------------------------


def time_to_live(env):
    extra = ["--lanes.low", "reading.#", "--lanes.low_ttl_s", str(TTL_S)]
    _edge, cloud, csub, bridge, agents = make_site(env, "ttl", NODES[:1], extra)
    poster = h.Poster(agents[0].http_port, batch=BATCH)
    take_cloud_down(cloud, bridge)
    post_readings([poster], TTL_READINGS)
    wait_inbox(bridge, agents, TTL_READINGS)
    # Every reading was journaled by now (the bridge's clock is this
    # machine's): once TTL_S (plus a margin) has passed on the wall clock,
    # each is past its lane's time to live.
    all_in = time.time()

    def stale():
        bridge.proc.check_alive()
        st = bridge.status()
        h.check(st["cloud"]["state"] == "disconnected" and
                st["inbox"]["backlog"] == TTL_READINGS,
                "while the cloud is down: cloud %s, backlog %d" %
                (st["cloud"]["state"], st["inbox"]["backlog"]))
        return time.time() - all_in > TTL_S + 0.5
    h.wait_for(stale, TTL_S + 10, "the readings to be older than %d s" % TTL_S, interval=0.1)

    cloud.start()
    h.wait_for(lambda: bridge.status()["cloud"]["state"] == "connected", 15,
               "the bridge to reconnect to the cloud")
    before = set(poster.snapshot())
    poster.post_acked([alarm(0)], 30)
    alarm_ids = set(poster.snapshot()) - before
    h.check(len(alarm_ids) == 1, "the alarm's POST acknowledged %d ids" % len(alarm_ids))
    csub.wait_all({i: poster.snapshot()[i] for i in alarm_ids}, 30)
    h.wait_for(bridge.quiet, 30, "the bridge to be quiet (backlog 0, nothing in flight)")

    # Stopped, the sub has written (and we have read) all it received.
    cs = csub.stop()
    h.check(cs.get("invalid") == 0, "cloud sub stats: %s" % cs)
    came = {r["id"] for r in csub.records} - alarm_ids
    h.check(not came, "%d expired readings reached the cloud (ttl %d s), e.g. %s" %
            (len(came), TTL_S, sorted(came)[:3]))
    rec = next(r for r in csub.records if r["id"] in alarm_ids)
    h.check(rec["event"].get("type") == "alarm.raised" and
            rec["seq"] == TTL_READINGS + 1,
            "the alarm arrived as %s seq %d" % (rec["event"].get("type"), rec["seq"]))

    check_expired(bridge, "low", TTL_READINGS)   # every reading
    check_expired(bridge, "high", 0)             # the alarm was sent
    sent = api_lane(bridge, "low")["sent"]
    h.check(sent == 0, "/api/status cloud.lanes[low].sent is %r, expected 0" % sent)
    js = h.journal_settled(env, bridge.db)
    h.check(js["count"] == TTL_READINGS + 1,
            "the bridge's inbox holds %s events, expected %d (expired readings are kept)" %
            (js["count"], TTL_READINGS + 1))
    fmt = check_format(env, bridge, cs)
    print("  2. %s: %d readings older than their lane's ttl (%d s) when the cloud came back: "
          "none sent, all counted expired (/metrics and /api/status); the alarm after them "
          "arrived; the inbox keeps %d, none pending" % (fmt, TTL_READINGS, TTL_S, js["count"]))


def scenario(env):
    t0 = time.monotonic()
    ahead = alarms_first(env)
    t1 = time.monotonic()
    time_to_live(env)
    t2 = time.monotonic()
    return ("cloud.format %s: after an outage each alarm arrived ahead of >= %d of the "
            "20,000 readings, all delivered, order kept per node and lane (%.1f s); "
            "readings past a 1 s ttl expired unsent (%.1f s)" %
            (env.args.bridge_format, ahead, t1 - t0, t2 - t1))


if __name__ == "__main__":
    h.main(scenario, "lanes: alarms before the backlog after a cloud outage; a lane's time to "
           "live")
