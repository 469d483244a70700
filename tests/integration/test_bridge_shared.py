#!/usr/bin/env python3
"""test_bridge_shared: two bridges share the edge subscription (MQTT 5 shared
subscription, --edge.share_group g1) and forward to the same cloud broker.

Each bridge (br1, br2: own inbox, own client ids) gets only part of every
node's sequence; they tell each other what they stored on
edgespool/_bridge/g1/seen, so neither should take its partner's events for
holes. Two agents post 5,000 events each, at the same time. Asserted:
- the set of ids at the cloud equals the acknowledged set: every id at least
  once, nothing else; each with its node and the sequence of its 202 answer
  (no sequence with two ids). Raw duplicate copies are counted and reported;
- both bridges forwarded a share (each > 0), and between them journaled
  every id (an id in neither inbox would be a loss); each forwarded its own
  rows once, so the cloud's duplicate copies are exactly the ids both
  journaled (a re-sent event that reached the other bridge);
- both end quiet: no backlog, no hole open, nothing lost or invalid;
- the peer reports work: a mosquitto_sub on edgespool/_bridge/g1/seen sees
  each bridge report exactly the (node, sequence) pairs it journaled, under
  its own edge client id;
- re-send requests: each bridge's requests and filled counters are printed
  (the peer reports are what keeps them rare; how many there are depends on
  how far one bridge's inbox lags behind its partner's beyond gap.grace_ms).
"""
import subprocess
import time

import harness as h

PER_AGENT = 5000
PEER_TOPIC = "edgespool/_bridge/g1/seen"


class PeerWatch:
    """mosquitto_sub -d on the share group's report topic: who reported what."""

    def __init__(self, env, port):
        self.proc = env.spawn("peers", ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                                        "-t", PEER_TOPIC, "-d", "-i", "it-peers"])
        self.log = env.path("peers.log")
        self.port = port

        def probed():
            # mosquitto_sub flushes its output after each message: a probe it
            # prints shows it is subscribed (bridges ignore a report of nothing).
            self.proc.check_alive()
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t",
                            PEER_TOPIC, "-m", "from it-probe", "-i", "it-probe"],
                           capture_output=True, timeout=10)
            return "\nfrom it-probe" in self._text()
        h.wait_for(probed, 10, "mosquitto_sub to subscribe to %s" % PEER_TOPIC, interval=0.2)

    def _text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def reports(self):
        """client id -> set of (node, seq) it reported."""
        out, who = {}, None
        for line in self._text().splitlines():
            if line.startswith(("==== ", "Client ", "Subscribed ")) or not line.strip():
                continue
            if line.startswith("from "):
                who = line[5:]
                if who != "it-probe":
                    out.setdefault(who, set())
                continue
            node, _, seq = line.partition(" ")
            h.check(who is not None and seq.isdigit(), "bad peer report line %r" % line)
            out[who].add((node, int(seq)))
        return out


def scenario(env):
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    csub = env.sub(cloud.port, name="cloudsub", from_start=True)
    shared = ["--edge.share_group", "g1", "--edge.version", "5"]
    bridges = []
    for k in (1, 2):
        b = env.bridge(edge.port, cloud.port, name="bridge%d" % k, node="br%d" % k,
                       extra=shared)
        b.start()
        h.check(b.status()["filter"] == "$share/g1/edgespool/+/+/ev/#",
                "br%d subscribes to %s" % (k, b.status()["filter"]))
        bridges.append(b)
    watch = PeerWatch(env, edge.port)
    agents = h.start_agents(env, edge.port)
    posters = [h.Poster(a.http_port) for a in agents]
    threads = [h.PosterThread(p, PER_AGENT, timeout=30) for p in posters]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.finish(90)
    post_s = time.monotonic() - t0
    acked = h.acked_by_node(agents, posters)
    every = h.merge_acked(acked)
    h.check(len(every) == 2 * PER_AGENT, "%d acknowledged" % len(every))
    csub.wait_all(every, 60)
    deliver_s = time.monotonic() - t0
    try:
        h.wait_for(lambda: all(b.quiet() for b in bridges) and
                   all(a.pending() == 0 for a in agents), 30,
                   "both bridges and the agents to drain")
    except h.TestFailure as e:
        raise h.TestFailure("%s: %s; held %s; agents pending %s" % (
            e, "; ".join(h.bridge_figures(b.status()) for b in bridges),
            [b.status()["order"]["held"] for b in bridges], [a.pending() for a in agents]))

    # Quiet bridges may still get re-sent copies their partner asked for (the
    # shared subscription hands each to either bridge), and the cloud
    # broker's deliveries to the subscriber may be on the way. Settled: the
    # subscriber holds one line per inbox row (each id once, plus once more
    # for each id journaled by both) while both bridges are quiet.
    state = {}

    def settled():
        csub.poll()
        state["inboxes"] = [h.journal_states(env, b.db) for b in bridges]
        state["both"] = len(set(state["inboxes"][0]) & set(state["inboxes"][1]))
        return (len(csub.records) == len(every) + state["both"] and
                all(b.quiet() for b in bridges))
    try:
        h.wait_for(settled, 15, "the cloud subscriber to receive every forwarded copy",
                   interval=0.2)
    except h.TestFailure as e:
        raise h.TestFailure("%s: %d lines, %d ids + %d journaled twice" % (
            e, len(csub.records), len(every), state["both"]))
    inboxes, both = state["inboxes"], state["both"]
    f = h.check_nodes_delivery(acked, csub)
    h.check(set(csub.seqs) == set(every), "the cloud's ids differ from the acknowledged set")
    sts = [b.status() for b in bridges]
    for st in sts:
        h.check(st["cloud"]["forwarded"] > 0 and st["inbox"]["journaled"] > 0,
                "%s forwarded nothing: the subscription was not shared (%s)" %
                (st["node"], h.bridge_figures(st)))
        g, i = st["gaps"], st["inbox"]
        h.check(g["holes_open"] == 0 and g["missing"] == 0 and g["lost"] == 0 and
                i["backlog"] == 0 and i["invalid"] == 0 and i["errors"] == 0,
                "%s at the end: %s" % (st["node"], st))
        # the cloud is undisturbed: each inbox row goes out once
        h.check(st["cloud"]["acked"] == st["cloud"]["forwarded"] == i["journaled"] and
                st["cloud"]["failures"] == 0,
                "%s forwarded %d, acked %d, journaled %d, cloud failures %d" %
                (st["node"], st["cloud"]["forwarded"], st["cloud"]["acked"], i["journaled"],
                 st["cloud"]["failures"]))
    stored = set(inboxes[0]) | set(inboxes[1])
    h.check(stored == set(every), "the two inboxes hold %d ids, %d acknowledged" %
            (len(stored), len(every)))
    h.check(f["dups"] == both, "the cloud got %d duplicate copies, but only %d ids are in both "
            "inboxes (each bridge forwards its own rows once)" % (f["dups"], both))
    where = {i: (node, seq) for node, ack in acked.items() for i, seq in ack.items()}
    wanted = {"edgespool-bridge-site1-br%d" % (k + 1): {where[i] for i in inboxes[k]}
              for k in range(2)}

    def reported():
        got = watch.reports()
        return all(want <= got.get(who, set()) for who, want in wanted.items())
    try:
        h.wait_for(reported, 10, "each bridge to report every event it journaled")
    except h.TestFailure:
        got = watch.reports()
        raise h.TestFailure("peer reports incomplete: %s" % {
            who: "%d of %d journaled reported" % (len(want & got.get(who, set())), len(want))
            for who, want in wanted.items()})
    got = watch.reports()
    h.check(set(got) == set(wanted), "reports came from %s" % sorted(got))
    for who, want in wanted.items():
        h.check(got[who] == want, "%s reported %d pairs it never journaled, e.g. %s" %
                (who, len(got[who] - want), sorted(got[who] - want)[:5]))
    for st in sts:
        print("  %s" % h.bridge_figures(st))
    reqs = [st["gaps"]["requests"] for st in sts]
    cs = csub.stop()
    h.check(cs.get("invalid") == 0, "cloud sub: %s" % cs)
    print("  cloud: %d copies of %d ids (%d raw duplicates); %d ids journaled by both "
          "bridges; peer reports matched both inboxes (%d + %d pairs); posted in %.1f s, at "
          "the cloud in %.1f s" % (f["copies"], len(every), f["dups"], both,
                                   len(wanted["edgespool-bridge-site1-br1"]),
                                   len(wanted["edgespool-bridge-site1-br2"]), post_s,
                                   deliver_s))
    return ("%d events via 2 bridges sharing g1: shares %d / %d journaled (%d in both), "
            "forwarded %d / %d; cloud ids = acknowledged ids, %d raw duplicates; re-send "
            "requests %d / %d, filled %d / %d, holes detected %d / %d, duplicates dropped "
            "%d / %d, out_of_order %d / %d" %
            (len(every), sts[0]["inbox"]["journaled"], sts[1]["inbox"]["journaled"], both,
             sts[0]["cloud"]["forwarded"], sts[1]["cloud"]["forwarded"], f["dups"],
             reqs[0], reqs[1], sts[0]["gaps"]["filled"], sts[1]["gaps"]["filled"],
             sts[0]["gaps"]["holes_detected"], sts[1]["gaps"]["holes_detected"],
             sts[0]["inbox"]["duplicates_dropped"], sts[1]["inbox"]["duplicates_dropped"],
             sts[0]["order"]["out_of_order"], sts[1]["order"]["out_of_order"]))


if __name__ == "__main__":
    h.main(scenario, "two bridges sharing the edge subscription: every id at the cloud, "
           "re-sends rare")
