#!/usr/bin/env python3
"""test_bridge_kill: the bridge crashes 5 times mid-stream; nothing is lost.

Two agents post 8,000 events each at a steady rate while the cloud-bridge is
SIGKILLed 5 times (0.8-1.8 s apart, down 0.3-1 s each) and restarted on the
same inbox and HTTP port. A crash loses what paho had acknowledged to the
edge broker but the inbox had not committed, and what was in flight to the
cloud: the persistent edge session, the gap tracker (saved in the inbox) with
re-send requests to the agents, and forwarding from the oldest unforwarded
row must make up for it. Asserted:
- after each kill, `edgespool journal verify` passes on the bridge's inbox;
- every acknowledged id reaches the cloud sub, with the sequence of its 202
  answer; duplicates only as the same id (no sequence with two ids, no id
  with two sequences), nothing that was never acknowledged;
- at the end the bridge is drained (backlog 0, no hole open, nothing lost),
  its inbox holds each id once and verifies.
"""
import random
import time

import harness as h

PER_AGENT = 8000
RATE = 700
KILLS = 5


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
    during = 0
    before = []  # each lifetime's figures, read just before its kill
    for k in range(KILLS):
        h.hold(rng.uniform(0.8, 1.8), still_ok)
        before.append(bridge.status())
        acked_now = sum(len(p.snapshot()) for p in posters)
        bridge.kill()
        h.journal_verify(env, bridge.db)
        js = h.journal_stats(env, bridge.db)
        down = rng.uniform(0.3, 1.0)
        h.hold(down, still_ok)
        bridge.start()
        during += any(t.is_alive() for t in threads)
        print("  kill %d after %d acknowledged events: inbox verified (%d events, %d "
              "pending), down %.1f s" % (k + 1, acked_now, js["count"], js["pending"], down))
    for t in threads:
        t.finish(90)
    post_s = time.monotonic() - t0
    acked = h.acked_by_node(agents, posters)
    every = h.merge_acked(acked)
    h.check(len(every) == 2 * PER_AGENT, "%d acknowledged, expected %d" %
            (len(every), 2 * PER_AGENT))
    csub.wait_all(every, 60)
    h.wait_for(lambda: bridge.quiet() and all(a.pending() == 0 for a in agents), 30,
               "the bridge and the agents to drain")
    f = h.check_nodes_delivery(acked, csub)
    st = bridge.status()
    g = st["gaps"]
    h.check(g["holes_open"] == 0 and g["missing"] == 0 and g["lost"] == 0 and
            st["inbox"]["invalid"] == 0, "bridge at the end: %s" % st)
    h.check(st["inbox"]["backlog"] == 0, "bridge backlog %d" % st["inbox"]["backlog"])
    js = h.journal_settled(env, bridge.db)
    h.check(js["count"] == len(every) and js["pending"] == 0,
            "bridge inbox: count %s pending %s, expected %d and 0 (each id once)" %
            (js["count"], js["pending"], len(every)))
    h.journal_verify(env, bridge.db)
    cs = csub.stop()
    h.check(cs.get("invalid") == 0 and cs.get("holes_open") == 0,
            "cloud sub stats: %s" % cs)
    lives = before + [st]
    tot = {k: sum(x["gaps"][k] for x in lives) for k in ("holes_detected", "filled", "requests")}
    tot["dups"] = sum(x["inbox"]["duplicates_dropped"] for x in lives)
    tot["ooo"] = sum(x["order"]["out_of_order"] for x in lives)
    resent = sum(a.status()["broker"]["resent"] for a in agents)
    inv = sum(f["inversions"].values())
    print("  last lifetime: %s" % h.bridge_figures(st))
    print("  over the %d lifetimes (each read just before its kill): holes detected %d / "
          "filled %d, re-send requests %d, duplicates dropped %d, out_of_order %d; agents "
          "re-sent %d" % (len(lives), tot["holes_detected"], tot["filled"], tot["requests"],
                          tot["dups"], tot["ooo"], resent))
    return ("%d events, %d bridge kills (%d while posting, %.1f s): all at the cloud, %d "
            "copies (%d duplicates, same id and sequence each), %d order inversions; holes "
            "detected %d / filled %d, duplicates dropped %d, out_of_order %d" %
            (len(every), KILLS, during, post_s, f["copies"], f["dups"], inv,
             tot["holes_detected"], tot["filled"], tot["dups"], tot["ooo"]))


if __name__ == "__main__":
    h.main(scenario, "bridge SIGKILLed 5 times mid-stream: nothing acknowledged lost")
