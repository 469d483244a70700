#!/usr/bin/env python3
"""test_full: a journal at its cap, under both policies.

refuse (the default): with no broker, events are journaled until the cap;
then POSTs get 507 with a clear error, nothing of a refused batch is
journaled, the refusals are counted (ingest.rejected.journal_full,
journal.refused_full), /healthz stays 200 (the journal is still
writable), and once a broker comes and the backlog drains... the pending
events were never dropped: every acknowledged event is delivered.

evict-oldest-acked: with a broker, the journal stays near its cap while
many times its size flows through, the evictions are counted, and no
event is refused.
"""
import json

import harness as h

CAP = "256KiB"


def fill_until_refused(poster):
    """POSTs batches of 50 until one gets 507; returns (accepted, answer)."""
    accepted = 0
    for i in range(10000):
        events = h.make_events(accepted, 50)
        status, body = poster.post(json.dumps(events))
        if status == 507:
            return accepted, json.loads(body)
        h.check(status == 202, "POST %d answered %d: %r" % (i, status, body[:200]))
        poster.record(events, body)
        accepted += 50
    raise h.TestFailure("the journal never filled up")


def refuse(env):
    """The refuse policy, broker absent then present."""
    broker_port = h.free_port()
    agent = env.agent(broker_port, extra=["--journal.max_bytes", CAP])
    agent.start()
    poster = h.Poster(agent.http_port)
    accepted, answer = fill_until_refused(poster)
    h.check("journal full" in answer.get("error", ""), "507 body: %r" % answer)
    for _ in range(3):
        status, _ = poster.post(json.dumps(h.make_events(10 ** 6, 50)))
        h.check(status == 507, "a POST to a full journal answered %d" % status)
    st = agent.status()
    h.check(st["ingest"]["rejected"]["journal_full"] == 4 and
            st["journal"]["refused_full"] == 200,
            "refusals counted: %s / %s" % (st["ingest"]["rejected"], st["journal"]))
    h.check(st["journal"]["pending"] == accepted, "pending %s, accepted %d" %
            (st["journal"]["pending"], accepted))
    h.check(h.http_call(agent.http_port, "GET", "/healthz")[0] == 200,
            "/healthz is not 200 with a full (but writable) journal")
    js = h.journal_stats(env, agent.db)
    h.check(js["count"] == accepted, "journal holds %s, accepted %d" % (js["count"], accepted))
    broker = h.Broker(env, broker_port)
    broker.start()
    sub = env.sub(broker.port, resend=True, from_start=True)
    h.settle(agent, sub, poster.snapshot(), 60)
    return accepted


def evict(env):
    """The evict policy with a broker: many times the cap flows through."""
    broker = env.broker()
    agent = env.agent(broker.port, name="evict",
                      extra=["--journal.max_bytes", CAP, "--journal.on_full",
                             "evict-oldest-acked"])
    agent.start()
    # Batches of 50: the cap holds for the database, its WAL and -shm file
    # together, and a batch of 100 writes about 100 KiB of pages to each
    # (1 KiB pages): with nothing yet acked to evict, it would not fit.
    poster = h.Poster(agent.http_port, batch=50)
    total = 5000
    # Paced by the agent: each batch waits until the one before is published.
    # What is pending is never evicted, and a cap full of pending events
    # refuses under either policy; a fixed rate (2,000/s) outran an agent
    # on a busy machine, which then refused, correctly, with 507.
    for k in range(0, total, poster.batch):
        h.check(poster.post_many(poster.batch) == poster.batch,
                "a POST was refused under the evict policy")
        h.wait_for(lambda: agent.pending() == 0, 30,
                   "the evict agent to publish events %d..%d" % (k, k + poster.batch - 1))
    st = agent.status()["journal"]
    h.check(st["evicted"] > 0 and st["refused_full"] == 0, "evict policy: %s" % st)
    h.check(st["used_bytes"] <= 1.25 * 256 * 1024,
            "the journal grew to %d bytes over a 256 KiB cap" % st["used_bytes"])
    r = env.cli("journal", "verify", agent.db)
    h.check(r.returncode == 0, "journal verify after evictions: %s" % r.stdout)
    return total, st["evicted"], st["used_bytes"]


def scenario(env):
    accepted = refuse(env)
    total, evicted, used = evict(env)
    return ("refuse: %d events fit in %s, then 507s, all delivered later; evict: %d events "
            "through, %d evicted, %d bytes used" % (accepted, CAP, total, evicted, used))


if __name__ == "__main__":
    h.main(scenario, "a full journal refuses with 507 or evicts acked events; nothing lost")
