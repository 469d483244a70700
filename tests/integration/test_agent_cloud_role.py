#!/usr/bin/env python3
"""test_agent_cloud_role: agents that publish straight to the cloud, batching.

Two agents (gw1, gw2) with mqtt.format batch (MQTT 5) publish to the cloud
broker themselves (no site bridge). A cloud-bridge with --bridge.role cloud
reads their batches and statuses there and republishes each event on its
per-event topic at an "out" broker, where a plain `edgespool sub` records
them. A sub on the cloud broker (the consumer library, which reads both
forms) records what the agents sent.
- 2,000 events posted to each agent arrive at the out broker, each once,
  byte-identical to what the agent published, in order per node;
- the agents sent batches (more than one event each, on the whole), the
  cloud role read every one of them and journaled every event, nothing
  invalid, no hole lost; the cloud role stops cleanly.
"""
import harness as h

PER_AGENT = 2000
NODES = ("gw1", "gw2")


def scenario(env):
    cloud = env.broker(name="cloud")
    out = env.broker(name="out")
    csub = env.sub(cloud.port, name="cloudsub", from_start=True, keep_raw=True)
    osub = env.sub(out.port, name="outsub", from_start=True, keep_raw=True)
    role = h.Bridge(env, cloud.port, out.port, name="cloudrole", node="cr1",
                    extra=["--bridge.role", "cloud", "--cloud.format", "events",
                           "--cloud.version", "3.1.1", "--edge.version", "5"])
    role.start()
    agents = []
    for node in NODES:
        a = env.agent(cloud.port, name=node, node=node,
                      extra=["--mqtt.format", "batch", "--mqtt.version", "5"])
        a.start()
        agents.append(a)
    posters = [h.Poster(a.http_port) for a in agents]
    threads = [h.PosterThread(p, PER_AGENT, timeout=30) for p in posters]
    for t in threads:
        t.start()
    for t in threads:
        t.finish(90)
    acked = {"site1/" + a.node: p.snapshot() for a, p in zip(agents, posters)}
    every = h.merge_acked(acked)
    osub.wait_all(every, 90)
    csub.wait_all(every, 30)
    f = h.check_nodes_delivery(acked, osub)
    for node, n in f["inversions"].items():
        h.check(n == 0, "%s: %d events reached the out broker after a higher sequence" %
                (node, n))
    h.check(f["dups"] == 0, "undisturbed, the out broker received %d copies" % f["dups"])
    differ = [i for i in every if osub.raw[i] != csub.raw.get(i)]
    h.check(not differ, "%d events differ from what the agent published, e.g. %s" %
            (len(differ), differ[:3]))
    h.wait_for(lambda: all(a.pending() == 0 for a in agents), 30, "the agents to drain")
    h.wait_for(role.quiet, 30, "the cloud role to be quiet")
    st = role.status()
    sent = sum(a.status()["broker"]["batches"] for a in agents)
    h.check(0 < sent < len(every) and st["inbox"]["batches_received"] == sent and
            st["inbox"]["journaled"] == len(every) and st["inbox"]["invalid"] == 0 and
            st["cloud"]["acked"] == len(every),
            "agents sent %d batches; cloud role read %d for %d events: %s" %
            (sent, st["inbox"]["batches_received"], len(every), st))
    h.check(st["gaps"]["nodes"] == len(NODES) and st["gaps"]["lost"] == 0,
            "cloud role's tracker: %s" % st["gaps"])
    cs = csub.stop()
    h.check(cs.get("batches") == sent, "the cloud sub read %s batches of %d" %
            (cs.get("batches"), sent))
    role.stop()
    return ("%d events from %d batching agents straight to the cloud, in %d batches, "
            "republished by the cloud role each once, byte-identical, in order" %
            (len(every), len(NODES), sent))


if __name__ == "__main__":
    h.main(scenario, "agents batching straight to the cloud, read by a cloud-role bridge")
