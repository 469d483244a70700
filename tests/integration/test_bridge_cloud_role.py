#!/usr/bin/env python3
"""test_bridge_cloud_role: the uplink's two roles end to end.

Site: two agents (gw1, gw2) on an edge broker, the site bridge sending
batches (cloud.format batch, MQTT 5) to the cloud broker, where it also
keeps each node's status (retained, acked_seq = what the cloud broker
acknowledged). Cloud: a second cloud-bridge with --bridge.role cloud reads
the batches and statuses on the cloud broker and republishes each event on
its per-event topic at an "out" broker, where a plain `edgespool sub`
(which reads ev topics; nothing else is published there) records them.
1. 2,000 events posted to each agent arrive at the out broker, each once,
   byte-identical to what the agent published, in order per node; the cloud
   role read them as batches, the site bridge published node statuses.
2. While 2,000 more go up, the cloud role is SIGKILLed mid-stream and
   started again: every event still arrives (copies allowed, dropped by
   id); what the kill lost (paho acknowledges a batch before the bridge
   journals it) is asked for from the site bridge over the cloud broker.
3. Hostile batches on the cloud broker: bad compression, a truncated
   frame, an unknown coding, not a JSON array, and a readable batch whose
   second event is not a CloudEvent. Each unreadable batch is one dead
   letter, the bad event another, and the batch's good event (the agent's
   next one, taken from the edge while the site bridge is stopped) arrives
   at the out broker. Nothing crashes; the cloud role stops cleanly.
"""
import subprocess
import time

import harness as h

PER_AGENT = 2000
NODES = ("gw1", "gw2")


def pub(port, topic, payload):
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-s"],
                       input=payload, capture_output=True, timeout=20)
    h.check(r.returncode == 0, "mosquitto_pub %s: %s" % (topic, r.stderr))


def post_all(posters, n):
    threads = [h.PosterThread(p, n, timeout=30) for p in posters]
    for t in threads:
        t.start()
    return threads


def scenario(env):
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    out = env.broker(name="out")
    esub = env.sub(edge.port, name="edgesub", from_start=True, keep_raw=True)
    osub = env.sub(out.port, name="outsub", from_start=True, keep_raw=True)
    site = env.bridge(edge.port, cloud.port, name="site", node="br1")
    site.start()
    role = h.Bridge(env, cloud.port, out.port, name="cloudrole", node="cr1",
                    extra=["--bridge.role", "cloud", "--cloud.format", "events",
                           "--cloud.version", "3.1.1"])
    role.start()
    agents = []
    for node in NODES:
        a = env.agent(edge.port, name=node, node=node)
        a.start()
        agents.append(a)
    posters = [h.Poster(a.http_port) for a in agents]

    # 1. Undisturbed.
    for t in post_all(posters, PER_AGENT):
        t.finish(90)
    acked = {"site1/" + a.node: p.snapshot() for a, p in zip(agents, posters)}
    every = h.merge_acked(acked)
    osub.wait_all(every, 90)
    esub.wait_all(every, 30)
    f = h.check_nodes_delivery(acked, osub)
    for node, n in f["inversions"].items():
        h.check(n == 0, "%s: %d events reached the out broker after a higher sequence" %
                (node, n))
    h.check(f["dups"] == 0, "undisturbed, the out broker received %d copies" % f["dups"])
    differ = [i for i in every if osub.raw[i] != esub.raw.get(i)]
    h.check(not differ, "%d events differ from what the agent published, e.g. %s" %
            (len(differ), differ[:3]))
    h.wait_for(role.quiet, 30, "the cloud role to be quiet")
    st, sst = role.status(), site.status()
    h.check(0 < st["inbox"]["batches_received"] < len(every) and
            st["inbox"]["journaled"] == len(every) and st["inbox"]["invalid"] == 0 and
            st["cloud"]["acked"] == len(every) and st["cloud"]["batches"] == 0,
            "cloud role: read %d batches for %d events; %s" %
            (st["inbox"]["batches_received"], len(every), st))
    h.check(st["gaps"]["nodes"] == len(NODES) and st["gaps"]["lost"] == 0,
            "cloud role's tracker: %s" % st["gaps"])
    h.check(sst["cloud"]["batches"] > 0, "the site bridge sent no batch: %s" % sst["cloud"])
    print("  1. %d events through both roles in %d batches, each once, byte-identical, "
          "in order" % (len(every), st["inbox"]["batches_received"]))

    # 2. The cloud role SIGKILLed mid-stream.
    base = st["inbox"]["journaled"]
    threads = post_all(posters, PER_AGENT)
    h.wait_for(lambda: role.status()["inbox"]["journaled"] >= base + PER_AGENT // 2, 60,
               "the cloud role to journal half of phase 2")
    role.kill()
    role.start()
    for t in threads:
        t.finish(90)
    acked = {"site1/" + a.node: p.snapshot() for a, p in zip(agents, posters)}
    every = h.merge_acked(acked)
    osub.wait_all(every, 120)
    f2 = h.check_nodes_delivery(acked, osub)
    h.wait_for(role.quiet, 60, "the cloud role to be quiet after its restart")
    g = role.status()["gaps"]
    h.check(g["lost"] == 0 and g["holes_open"] == 0, "cloud role's gaps: %s" % g)
    ans = site.status()["cloud_resend"]
    print("  2. cloud role SIGKILLed mid-stream: all %d events arrived (%d copies dropped by "
          "id downstream); holes it found %d, filled %d; the site bridge answered %d "
          "request(s)" % (len(every), f2["dups"], g["holes_detected"], g["filled"],
                          ans["requests"]))

    # 3. Hostile batches. The agent's next event, kept from the site bridge
    # (stopped), is the good event of a batch with a bad one.
    site.stop()
    poster = posters[0]
    poster.post_many(1)
    esub.wait_all(poster.snapshot(), 30)
    good_id = next(i for i in poster.snapshot() if i not in every)
    good = esub.raw[good_id]
    before = role.status()["inbox"]
    t = "edgespool/site1/gw1/batch/"
    pub(cloud.port, t + "ce=zstd,d1", b"not zstd at all")
    pub(cloud.port, t + "ce=zstd,d1", b"\x28\xb5\x2f\xfd\x00\x58")  # a frame that stops
    pub(cloud.port, t + "ce=lz4", b"[]")
    pub(cloud.port, t + "ce=identity", b'{"not": "an array"}')
    pub(cloud.port, t + "ce=identity", b"[" + good + b', {"specversion": "1.0"}]')
    osub.wait_all({good_id: poster.snapshot()[good_id]}, 30)

    def counted():
        i = role.status()["inbox"]
        return i["invalid"] - before["invalid"] >= 5 and i["deadletters"] >= 5 and i
    i = h.wait_for(counted, 20, "the cloud role to keep 5 dead letters")
    h.check(i["invalid"] - before["invalid"] == 5 and
            i["batches_received"] - before["batches_received"] == 1,
            "cloud role inbox after the hostile batches: %s (before %s)" % (i, before))
    role.stop()
    print("  3. 4 unreadable batches and 1 bad event kept as dead letters; the good event "
          "of the mixed batch arrived")
    return ("two roles: %d events site -> batches -> cloud role -> per-event topics, each "
            "once; a SIGKILLed cloud role lost nothing; hostile batches dead-lettered" %
            len(every))


if __name__ == "__main__":
    h.main(scenario, "the site bridge's batches through a cloud-role bridge to plain "
           "per-event topics, with a kill and hostile batches")
