#!/usr/bin/env python3
"""test_flow: 10,000 events posted to the agent reach the consumer, in order.

A broker, `edgespool sub` and the agent run undisturbed. 10,000 short-form
events are posted (100 per request, one keep-alive connection). Then:
- every acknowledged id is received by the sub, with the sequence of its 202
  answer (no id ever with two sequences, no sequence with two ids);
- each is a valid CloudEvent 1.0 carrying the posted type, subject and data;
- per node, the "new" verdicts come in strictly increasing sequence order,
  and in this undisturbed run every event arrives once, in journal order;
- the sub's stats agree (10,000 valid and new, no holes, nothing lost);
- GET /api/status reports pending 0, acked_seq = latest_seq = 10,000, the
  agent exits 0 on SIGTERM, and the journal verifies.
"""
import signal
import time

import harness as h

TOTAL = 10000


def check_order(sub):
    """Per node: new verdicts strictly increasing; undisturbed, every line is
    new and the lines come in journal order."""
    last_new, last_any = {}, {}
    for rec in sub.records:
        node, seq = rec["node"], rec["seq"]
        if rec["verdict"] == "new":
            h.check(seq > last_new.get(node, 0), "%s: new verdict for %d after %d" %
                    (node, seq, last_new.get(node, 0)))
            last_new[node] = seq
        h.check(rec["verdict"] == "new", "%s: verdict %s for %d in an undisturbed run" %
                (node, rec["verdict"], seq))
        h.check(seq == last_any.get(node, 0) + 1, "%s: sequence %d arrived after %d" %
                (node, seq, last_any.get(node, 0)))
        last_any[node] = seq
    return sorted(last_new)


def scenario(env):
    broker = env.broker()
    sub = env.sub(broker.port, from_start=True)
    agent = env.agent(broker.port)
    agent.start()
    poster = h.Poster(agent.http_port)
    t0 = time.monotonic()
    h.check(poster.post_many(TOTAL) == TOTAL, "not every batch was acknowledged")
    post_s = time.monotonic() - t0
    acked = poster.snapshot()
    h.check(len(acked) == TOTAL, "%d ids acknowledged, expected %d" % (len(acked), TOTAL))
    h.check(sorted(acked.values()) == list(range(1, TOTAL + 1)),
            "the 202 answers did not hand out sequences 1..%d" % TOTAL)
    sub.wait_all(acked, 60)
    deliver_s = time.monotonic() - t0
    h.wait_for(lambda: agent.pending() == 0, 30, "/api/status to report pending 0")
    st = agent.status()
    j = st["journal"]
    h.check(j["latest_seq"] == TOTAL and j["acked_seq"] == TOTAL,
            "journal latest_seq %s acked_seq %s, expected %d" % (j["latest_seq"], j["acked_seq"],
                                                                 TOTAL))
    h.check(st["broker"]["state"] == "connected", "broker state %s" % st["broker"]["state"])
    copies, dups = h.check_delivery(acked, sub)
    for rec in sub.records:
        h.check_cloudevent(rec, acked[rec["id"]], poster.posted[rec["id"]])
    nodes = check_order(sub)
    h.check(nodes == ["site1/gw1"], "events from unexpected nodes: %s" % nodes)
    stats = sub.stop()
    for key, want in (("valid", TOTAL), ("new", TOTAL), ("invalid", 0), ("duplicates", 0),
                      ("filled", 0), ("holes_open", 0), ("missing", 0), ("lost", 0),
                      ("nodes", 1)):
        h.check(stats.get(key) == want, "sub stats %s = %s, expected %s (%s)" %
                (key, stats.get(key), want, stats))
    # A clean stop, its exit code checked: under valgrind (it_flow_valgrind)
    # that is where a leak or an earlier error shows, as exit 99.
    agent.proc.signal(signal.SIGTERM)
    rc = agent.proc.wait_exit(60)
    h.check(rc == 0, "the agent %s after SIGTERM (expected exit 0%s)" %
            (h.exit_text(rc), "; 99: valgrind found errors, see its log" if rc == 99 else ""))
    h.journal_verify(env, agent.db)
    js = h.journal_stats(env, agent.db)
    h.check(js["count"] == TOTAL and js["pending"] == 0, "journal stats %s" % js)
    return ("%d events posted in %.1f s (%.0f ev/s, %.1f ms per 100-event request), all "
            "delivered in order after %.1f s; %d copies, %d duplicates" %
            (TOTAL, post_s, TOTAL / post_s, post_s * 1000 / (TOTAL / 100), deliver_s, copies,
             dups))


if __name__ == "__main__":
    h.main(scenario, "10,000 events flow from the agent to the consumer, in order")
