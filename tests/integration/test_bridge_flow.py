#!/usr/bin/env python3
"""test_bridge_flow: 20,000 events from two agents cross the cloud bridge intact.

Two agents (gw1, gw2) publish to the edge broker; the real cloud-bridge
journals what it receives and forwards it to a second (cloud) broker, where
`edgespool sub` (no --sub.resend: it cannot reach the agents) records it. An
edge-side sub records what the agents published. 10,000 events are posted to
each agent at the same time. Then:
- every acknowledged id arrives at the cloud sub, from its node, with the
  sequence of its 202 answer; no id with two sequences, no sequence with two
  ids, nothing that was not acknowledged;
- per node, the first arrivals come in strictly increasing sequence order
  (the bridge kept each node's order), and undisturbed, each id arrives at
  the cloud once;
- every event arrives byte-identical to what the agent published (the edge
  sub's copy), and is a valid CloudEvent with the posted type/subject/data;
- bridge /api/status: backlog 0, nothing in flight or held, no hole open,
  nothing invalid, lost or out of order; journaled = forwarded = acked =
  20,000; duplicates_dropped equals the duplicate copies the edge sub saw
  (what the agents published twice, e.g. re-sends), none reaching the cloud;
  cloud.lanes: high, normal and low, every reading acked in the normal lane,
  no backlog, nothing expired, and (batches) the lanes' bytes are the
  batches' bytes;
- the bridge's inbox holds 20,000 events, none pending, and verifies; on
  SIGTERM the bridge exits 0 and the inbox still verifies.
With --agent-format batch the agents send batches to the edge broker
(mqtt.format batch, MQTT 5): the site bridge reads them (its default
subscription takes both forms) and everything above holds as for events;
what the agents sent were batches of more than one event, the bridge read
every one, and the edge sub (the consumer library) read them too.
"""
import time

import harness as h

PER_AGENT = 10000
NODES = ("gw1", "gw2")


def scenario(env):
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    esub = env.sub(edge.port, name="edgesub", from_start=True, keep_raw=True)
    csub = env.sub(cloud.port, name="cloudsub", from_start=True, keep_raw=True)
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    agents = []
    for node in NODES:
        a = env.agent(edge.port, name=node, node=node)
        a.start()
        agents.append(a)
    posters = [h.Poster(a.http_port) for a in agents]
    threads = [h.PosterThread(p, PER_AGENT, timeout=30) for p in posters]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.finish(90)
    post_s = time.monotonic() - t0
    acked = {"site1/" + a.node: p.snapshot() for a, p in zip(agents, posters)}
    for node, ack in acked.items():
        h.check(sorted(ack.values()) == list(range(1, PER_AGENT + 1)),
                "%s: the 202 answers did not hand out sequences 1..%d" % (node, PER_AGENT))
    every = h.merge_acked(acked)
    csub.wait_all(every, 60)
    deliver_s = time.monotonic() - t0
    esub.wait_all(every, 30)
    h.wait_for(lambda: all(a.pending() == 0 for a in agents), 30, "the agents to drain")
    h.wait_for(bridge.quiet, 30, "the bridge to be quiet (backlog 0, no hole, nothing held)")
    h.wait_for(lambda: all(entry["backlog"] == 0 for entry in bridge.status()["cloud"]["lanes"]),
               10, "the lanes' backlogs (counted every 2 s) to be 0")

    # What the cloud received.
    f = h.check_nodes_delivery(acked, csub)
    for node, n in f["inversions"].items():
        h.check(n == 0, "%s: %d first arrivals at the cloud came after a higher sequence: "
                "the bridge did not keep the node's order" % (node, n))
    h.check(f["dups"] == 0, "undisturbed, the cloud received %d duplicate copies" % f["dups"])
    h.check(len(csub.raw) == len(every), "cloud sub kept %d raw events" % len(csub.raw))
    for rec in csub.records:
        node = rec["node"]
        h.check_cloudevent(rec, acked[node][rec["id"]],
                           next(p for a, p in zip(agents, posters)
                                if "site1/" + a.node == node).posted[rec["id"]],
                           source="/" + node)
    differ = [i for i in every if csub.raw[i] != esub.raw.get(i)]
    h.check(not differ, "%d events differ from what the agent published, e.g. %s:\n"
            "edge:  %.300r\ncloud: %.300r" % (len(differ), differ[:3], esub.raw.get(differ[0]),
                                              csub.raw[differ[0]]) if differ else "")

    # The bridge's own account.
    ef = h.check_nodes_delivery(acked, esub)

    def dups_agree():
        esub.poll()
        return bridge.status()["inbox"]["duplicates_dropped"] == \
            len(esub.records) - len(esub.seqs)
    try:
        h.wait_for(dups_agree, 10, "duplicates_dropped to match the edge's duplicate copies")
    except h.TestFailure:
        raise h.TestFailure("bridge duplicates_dropped %d, edge sub saw %d duplicate copies" %
                            (bridge.status()["inbox"]["duplicates_dropped"],
                             len(esub.records) - len(esub.seqs)))
    st = bridge.status()
    total = len(every)
    i, c, g = st["inbox"], st["cloud"], st["gaps"]
    h.check(i["journaled"] == total and c["forwarded"] == total and c["acked"] == total,
            "journaled %d, forwarded %d, acked %d; expected %d each" %
            (i["journaled"], c["forwarded"], c["acked"], total))
    h.check(i["backlog"] == 0 and c["inflight"] == 0 and st["order"]["held"] == 0,
            "bridge not drained: %s" % st)
    h.check(g["holes_open"] == 0 and g["missing"] == 0 and g["lost"] == 0,
            "bridge gaps: %s" % g)
    h.check(st["order"]["out_of_order"] == 0, "bridge out_of_order %d in an undisturbed run" %
            st["order"]["out_of_order"])
    h.check(i["invalid"] == 0 and i["deadletters"] == 0 and i["overload_dropped"] == 0 and
            i["errors"] == 0 and i["refused_full"] == 0 and c["refused"] == 0,
            "bridge counted problems: %s" % st)
    h.check(c["failures"] == 0 and all(e["failures"] == 0 for e in st["edge"]),
            "bridge links failed in an undisturbed run: %s" % st)
    lanes = {entry["lane"]: entry for entry in c["lanes"]}
    h.check(list(lanes) == ["high", "normal", "low"], "bridge cloud.lanes: %s" % c["lanes"])
    h.check(lanes["normal"]["acked"] == total and lanes["normal"]["sent"] >= total and
            all(lanes[k]["sent"] == lanes[k]["acked"] == 0 for k in ("high", "low")),
            "readings are the normal lane's, yet cloud.lanes says %s" % c["lanes"])
    h.check(all(entry["expired"] == 0 and entry["held"] == 0 for entry in c["lanes"]),
            "bridge lanes expired or held events: %s" % c["lanes"])
    if env.args.bridge_format == "batch":
        h.check(sum(entry["bytes"] for entry in c["lanes"]) == c["batch_bytes"],
                "the lanes' bytes %s are not the batches' %d" %
                ([entry["bytes"] for entry in c["lanes"]], c["batch_bytes"]))
    h.check(g["nodes"] == len(NODES), "bridge tracks %d nodes, expected %d" %
            (g["nodes"], len(NODES)))
    js = h.journal_settled(env, bridge.db)
    h.check(js["count"] == total and js["pending"] == 0,
            "bridge inbox: count %s pending %s, expected %d and 0" %
            (js["count"], js["pending"], total))
    h.journal_verify(env, bridge.db)
    cs = csub.stop()
    h.check(cs.get("holes_open") == 0 and cs.get("invalid") == 0 and cs.get("filled") == 0 and
            cs.get("duplicates") == 0 and cs.get("new") == total,
            "cloud sub stats: %s" % cs)
    batch = env.args.bridge_format == "batch"
    if batch:
        # What crossed to the cloud were batches, and more than one event each
        # while the agents posted faster than one at a time.
        h.check(0 < c["batches"] < total and cs.get("batches") == c["batches"],
                "bridge published %d batches, the cloud sub read %s, for %d events" %
                (c["batches"], cs.get("batches"), total))
    else:
        h.check(c["batches"] == 0 and cs.get("batches") == 0,
                "cloud.format events, yet %d batches" % c["batches"])
    if env.args.agent_format == "batch":
        sent = sum(a.status()["broker"]["batches"] for a in agents)
        es = esub.stop()
        h.check(0 < sent < total and i["batches_received"] == sent and
                es.get("batches") == sent,
                "the agents sent %d batches, the bridge read %d, the edge sub %s, for %d "
                "events" % (sent, i["batches_received"], es.get("batches"), total))
        print("  edge: the agents sent %d batches, %.1f events each" % (sent, total / sent))
    else:
        h.check(i["batches_received"] == 0, "agents sent events, yet the bridge read %d "
                "batches" % i["batches_received"])
    resent = sum(a.status()["broker"]["resent"] for a in agents)
    bridge.stop()  # SIGTERM: drains and exits 0
    h.journal_verify(env, bridge.db)
    print("  %s" % h.bridge_figures(st))
    if batch:
        print("  cloud: %d batches, %.1f events and %.0f bytes each (%.1f B an event)" %
              (c["batches"], total / c["batches"], c["batch_bytes"] / c["batches"],
               c["batch_bytes"] / total))
    print("  cloud: %d copies of %d ids (%d duplicates), order kept per node; edge sub saw "
          "%d duplicate copies; agents re-sent %d" % (f["copies"], total, f["dups"], ef["dups"],
                                                      resent))
    return ("%d events from %d agents (posted in %.1f s, at the cloud in %.1f s), "
            "byte-identical, order kept; holes detected %d / filled %d, duplicates dropped "
            "%d, out_of_order %d" % (total, len(NODES), post_s, deliver_s,
                                      g["holes_detected"], g["filled"],
                                      i["duplicates_dropped"], st["order"]["out_of_order"]))


if __name__ == "__main__":
    h.main(scenario, "20,000 events from two agents through the bridge: complete, in "
           "order, byte-identical")
