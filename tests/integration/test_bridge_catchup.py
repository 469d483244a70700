#!/usr/bin/env python3
"""test_bridge_catchup: a bridge that starts for the first time does not
skip what the agents published before it ever ran (issue 19).

The agent journals and publishes 500 events while no bridge exists (the
edge broker drops them: nobody subscribed). A bridge then starts with an
empty inbox: it hears of the node from its retained status, asks for what
the node holds that it never received, and every one of the 500 reaches the
cloud, then the events that follow. A second bridge, with --gap.catchup 100,
asks for the newest 100 only: those arrive at its cloud, and nothing older
is asked for or counted lost.
"""
import json
import subprocess

import harness as h

BEFORE, AFTER = 500, 100


def retained_acked(port):
    """acked_seq of gw1's retained status on the broker (0 if none yet)."""
    r = subprocess.run(["mosquitto_sub", "-p", str(port), "-C", "1", "-W", "5", "-t",
                        "edgespool/site1/gw1/status"], capture_output=True, text=True)
    try:
        return json.loads(r.stdout)["acked_seq"]
    except (ValueError, KeyError):
        return 0


def scenario(env):
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    cloud2 = env.broker(name="cloud2")
    agent = env.agent(edge.port, name="gw1", node="gw1")
    agent.start()
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(BEFORE) == BEFORE, "not every batch was acknowledged")
    h.wait_for(lambda: agent.pending() == 0, 30, "the agent to publish to nobody")
    early = poster.snapshot()

    csub = env.sub(cloud.port, name="cloudsub", from_start=True)
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    csub.wait_all(early, 60)
    h.check(poster.post_many(AFTER) == AFTER, "not every batch was acknowledged")
    every = poster.snapshot()
    csub.wait_all(every, 30)
    h.wait_for(bridge.quiet, 30, "the bridge to be quiet")
    h.check_nodes_delivery({"site1/gw1": every}, csub)
    st = bridge.status()
    h.check(st["gaps"]["lost"] == 0 and st["gaps"]["filled"] >= BEFORE and
            st["inbox"]["journaled"] == BEFORE + AFTER, "bridge: %s" % st)

    # The catch-up's bound counts from what the status a bridge first hears
    # says: let it say everything was acknowledged.
    h.wait_for(lambda: retained_acked(edge.port) == BEFORE + AFTER, 15,
               "gw1's retained status to say %d acknowledged" % (BEFORE + AFTER))
    c2sub = env.sub(cloud2.port, name="cloud2sub", from_start=True)
    bounded = env.bridge(edge.port, cloud2.port, name="bridge2", node="br2",
                         extra=["--gap.catchup", "100"])
    bounded.start()
    newest = {i: s for i, s in every.items() if s > BEFORE + AFTER - 100}
    c2sub.wait_all(newest, 30)
    h.wait_for(bounded.quiet, 30, "bridge2 to be quiet")
    got = {next(iter(c2sub.seqs[i])) for i in c2sub.seqs}
    h.check(got == set(newest.values()), "bridge2 forwarded sequences %d..%d (%d), expected "
            "the newest 100" % (min(got), max(got), len(got)))
    s2 = bounded.status()
    h.check(s2["gaps"]["lost"] == 0 and s2["gaps"]["missing"] == 0, "bridge2: %s" % s2)
    return ("%d events published before any bridge ran arrived through a new bridge (%d "
            "re-send requests), then %d more; with gap.catchup 100 another new bridge asked "
            "for the newest 100 only" % (BEFORE, st["gaps"]["requests"], AFTER))


if __name__ == "__main__":
    h.main(scenario, "a new bridge catches up with what the agents already published")
