#!/usr/bin/env python3
"""test_no_broker: the agent accepts events while no broker runs, and
delivers them all once one comes up.

The agent starts with nothing listening on its broker port: it must still
answer /healthz 200 and 202 for 2,000 events (journaled: `journal stats`
counts them, all pending), while /api/status shows them pending and the
broker disconnected (with failed attempts counted). Then the broker and the
sub (--sub.from_start --sub.resend) start: every acknowledged id arrives
(valid CloudEvents with the sequence of their 202 answer), no hole stays
open, nothing is lost, and pending drops to 0.
"""
import time

import harness as h

TOTAL = 2000


def scenario(env):
    broker_port = h.free_port()
    agent = env.agent(broker_port)
    agent.start()
    h.wait_for(lambda: agent.status()["broker"]["failures"] >= 2, 15,
               "the agent to fail connecting to the absent broker twice")
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(TOTAL) == TOTAL, "not every batch was acknowledged")
    acked = poster.snapshot()
    st = agent.status()
    h.check(st["broker"]["state"] == "disconnected" and st["broker"]["connects"] == 0,
            "broker state %s, connects %s with no broker running" %
            (st["broker"]["state"], st["broker"]["connects"]))
    h.check(st["journal"]["pending"] == TOTAL and st["ingest"]["accepted"] == TOTAL,
            "with no broker: pending %s, accepted %s, expected %d" %
            (st["journal"]["pending"], st["ingest"]["accepted"], TOTAL))
    h.check(h.http_call(agent.http_port, "GET", "/healthz")[0] == 200,
            "/healthz is not 200 while the broker is away")
    js = h.journal_stats(env, agent.db)
    h.check(js["count"] == TOTAL and js["pending"] == TOTAL, "journal stats %s" % js)
    failures = st["broker"]["failures"]
    t0 = time.monotonic()
    broker = h.Broker(env, broker_port)
    broker.start()
    sub = env.sub(broker.port, resend=True, from_start=True)
    stats, copies, dups = h.settle(agent, sub, acked, 60)
    for rec in sub.records:
        h.check_cloudevent(rec, acked[rec["id"]], poster.posted[rec["id"]])
    st = agent.status()
    h.check(st["broker"]["state"] == "connected", "broker state %s" % st["broker"]["state"])
    return ("%d events journaled with no broker (%d failed connects); delivered %.1f s after "
            "the broker started; %s; sub got %d copies (%d duplicates)" %
            (TOTAL, failures, time.monotonic() - t0, h.describe_repair(stats), copies, dups))


if __name__ == "__main__":
    h.main(scenario, "events accepted with no broker are delivered when it comes")
