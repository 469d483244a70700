#!/usr/bin/env python3
"""test_bridge_edge_restart: the edge broker crashes 3 times mid-stream; the
bridge's gap tracker has the agents re-send what the broker lost.

Two agents post 8,000 events each at a steady rate while the edge mosquitto
is SIGKILLed and restarted 3 times (same port and persistence folder, 1-3 s
apart, down 0.5-2 s). A SIGKILLed mosquitto loses what it held in memory:
events it had PUBACKed to an agent but not yet delivered to the bridge, the
bridge's queued session, the retained status messages. The bridge must see
the holes (in the sequences it journals, and against the agents' status
acked_seq) and ask the agents to re-send them. Asserted:
- every acknowledged id reaches the cloud sub with the sequence of its 202
  answer; duplicates only as the same id; nothing never acknowledged;
- the bridge ends drained: backlog 0, no hole open, nothing lost, nothing
  invalid; its inbox holds each id once and verifies;
- the cloud sub's first-arrival order inversions are no more than the
  bridge's out_of_order count (the bridge and the cloud broker are not
  restarted here, so every inversion must have been counted).
Prints how many holes the bridge detected and filled through re-sends.
"""
import random
import time

import harness as h

PER_AGENT = 8000
RATE = 700
RESTARTS = 3


def scenario(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 32)
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    rng = random.Random(seed)
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    csub = env.sub(cloud.port, name="cloudsub", from_start=True)
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    agents = h.start_agents(env, edge.port)
    posters = [h.Poster(a.http_port) for a in agents]
    threads = [h.PosterThread(p, PER_AGENT, timeout=30, rate=RATE) for p in posters]
    t0 = time.monotonic()
    for t in threads:
        t.start()

    def still_ok():
        for t in threads:
            t.check()
        bridge.proc.check_alive()
    during = 0
    for k in range(RESTARTS):
        h.hold(rng.uniform(1.0, 3.0), still_ok)
        acked_now = sum(len(p.snapshot()) for p in posters)
        edge.kill()
        down = rng.uniform(0.5, 2.0)
        h.hold(down, still_ok)
        edge.start()
        during += any(t.is_alive() for t in threads)
        print("  restart %d: edge broker killed after %d acknowledged events, down %.1f s" %
              (k + 1, acked_now, down))
    for t in threads:
        t.finish(90)
    post_s = time.monotonic() - t0
    acked = h.acked_by_node(agents, posters)
    every = h.merge_acked(acked)
    h.check(len(every) == 2 * PER_AGENT, "%d acknowledged, expected %d" %
            (len(every), 2 * PER_AGENT))
    t1 = time.monotonic()
    csub.wait_all(every, 60)
    h.wait_for(lambda: bridge.quiet() and all(a.pending() == 0 for a in agents), 30,
               "the bridge and the agents to drain")
    settle_s = time.monotonic() - t1
    f = h.check_nodes_delivery(acked, csub)
    st = bridge.status()
    g, i = st["gaps"], st["inbox"]
    h.check(g["holes_open"] == 0 and g["missing"] == 0 and g["lost"] == 0 and
            i["invalid"] == 0 and i["backlog"] == 0 and i["errors"] == 0,
            "bridge at the end: %s" % st)
    h.check(g["holes_detected"] > 0 or g["filled"] == 0,
            "the bridge counted %d filled sequences but no hole" % g["filled"])
    inv = sum(f["inversions"].values())
    h.check(inv <= st["order"]["out_of_order"],
            "the cloud saw %d first arrivals out of order, the bridge counted only %d "
            "out_of_order" % (inv, st["order"]["out_of_order"]))
    js = h.journal_settled(env, bridge.db)
    h.check(js["count"] == len(every) and js["pending"] == 0,
            "bridge inbox: count %s pending %s, expected %d and 0" %
            (js["count"], js["pending"], len(every)))
    h.journal_verify(env, bridge.db)
    cs = csub.stop()
    h.check(cs.get("invalid") == 0 and cs.get("holes_open") == 0, "cloud sub stats: %s" % cs)
    resent = sum(a.status()["broker"]["resent"] for a in agents)
    print("  %s" % h.bridge_figures(st))
    print("  settled %.1f s after the last post; agents re-sent %d events on request; cloud "
          "%d copies (%d duplicates), %d order inversions" %
          (settle_s, resent, f["copies"], f["dups"], inv))
    return ("%d events, %d edge broker kills (%d while posting, %.1f s): all at the cloud; "
            "the bridge detected %d holes, %d sequences filled, %d re-send requests (agents "
            "re-sent %d); duplicates dropped %d, out_of_order %d" %
            (len(every), RESTARTS, during, post_s, g["holes_detected"], g["filled"],
             g["requests"], resent, i["duplicates_dropped"], st["order"]["out_of_order"]))


if __name__ == "__main__":
    h.main(scenario, "edge broker SIGKILLed 3 times mid-stream: the bridge has the holes "
           "re-sent, nothing lost")
