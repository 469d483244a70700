#!/usr/bin/env python3
"""test_flash: what the journal does for flash keeps every guarantee.

1. The ack watermark reaches the file lazily (journal.ack_flush_ms): 600
   events are published and acknowledged by the broker, the agent shows
   nothing pending, yet the file still says fewer are acked (read by
   `edgespool journal stats` while the agent runs). SIGKILL, restart: the
   events acked since the last saved watermark are published again. A
   consumer (`edgespool sub`) sees duplicates -- same id, same sequence --
   and never a gap: every acknowledged id arrives, sequences 1..N each with
   one id, and the events posted after the restart continue the sequence.
2. journal.max_bytes holds for every file of the journal: with a 64 KiB cap
   and no broker, events are accepted until the cap, then a flood of
   refused POSTs (507) follows; the database, its WAL and its -shm file
   together never pass 64 KiB, and the refusals write nothing.
"""
import json
import os

import harness as h

EVENTS = 600


def files_bytes(db):
    """The journal's files on disk: database, WAL, -shm."""
    return sum(os.path.getsize(p) for p in (db, db + "-wal", db + "-shm")
               if os.path.exists(p))


def lazy_ack(env):
    broker = env.broker()
    sub = env.sub(broker.port)
    agent = env.agent(broker.port, extra=["--journal.ack_flush_ms", "10m"])
    agent.start()
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(EVENTS) == EVENTS, "a POST was refused")
    acked = poster.snapshot()
    sub.wait_all(acked, 30)
    h.wait_for(lambda: agent.pending() == 0, 30, "the agent to see every PUBACK")
    st = agent.status()["journal"]
    h.check(st["acked_seq"] == EVENTS, "the agent's watermark: %s" % st)
    in_file = h.journal_stats(env, agent.db)
    h.check(in_file["acked_seq"] < EVENTS,
            "the watermark is in the file already (%s): not lazy" % in_file)
    copies_before = len(sub.records)

    agent.kill()
    agent.start()
    h.wait_for(lambda: agent.pending() == 0, 30, "the restarted agent to publish again")
    republished = EVENTS - in_file["acked_seq"]
    h.wait_for(lambda: sub.poll() is not None and
               len(sub.records) >= copies_before + republished, 30,
               "the %d events acked since the saved watermark to come again" % republished)
    more = h.Poster(agent.http_port)
    more.next_n = EVENTS
    h.check(more.post_many(100) == 100, "a POST after the restart was refused")
    after = more.snapshot()
    h.check(sorted(after.values()) == list(range(EVENTS + 1, EVENTS + 101)),
            "sequences after the restart do not continue at %d" % (EVENTS + 1))
    acked.update(after)
    sub.wait_all(acked, 30)
    copies, dups = h.check_delivery(acked, sub)
    seqs = sorted(next(iter(s)) for s in sub.seqs.values())
    h.check(seqs == list(range(1, EVENTS + 101)), "the sequences received have a gap")
    h.check(dups >= republished, "%d duplicates, %d re-published expected" % (dups, republished))
    h.journal_verify(env, agent.db)
    return ("watermark in the file %d of %d at the SIGKILL; %d re-published as duplicates, "
            "no gap, sequences go on" % (in_file["acked_seq"], EVENTS, dups))


def cap(env):
    agent = env.agent(h.free_port(), name="capped", extra=["--journal.max_bytes", "64KiB"])
    agent.start()
    poster = h.Poster(agent.http_port)
    accepted, most = 0, 0
    for i in range(10000):
        status, body = poster.post(json.dumps(h.make_events(i, 1)))
        most = max(most, files_bytes(agent.db))
        if status == 507:
            break
        h.check(status == 202, "POST answered %d: %.200s" % (status, body))
        accepted += 1
    h.check(10 <= accepted < 10000, "%d events fit under a 64 KiB cap" % accepted)
    commits = agent.status()["journal"]["commits"]
    for i in range(300):
        n = 1 if i % 3 else 50
        status, _ = poster.post(json.dumps(h.make_events(10 ** 6 + i * 50, n)))
        h.check(status == 507, "a POST to a full journal answered %d" % status)
        most = max(most, files_bytes(agent.db))
    st = agent.status()["journal"]
    h.check(st["commits"] == commits, "refused POSTs committed: %d -> %d" %
            (commits, st["commits"]))
    h.check(st["used_bytes"] <= 65536, "used_bytes %d over the cap" % st["used_bytes"])
    h.check(most <= 65536, "the journal's files took %d bytes under a 64 KiB cap" % most)
    return "64 KiB cap: %d events, files at most %d bytes through 300 refused POSTs" % (
        accepted, most)


def scenario(env):
    return "; ".join([lazy_ack(env), cap(env)])


if __name__ == "__main__":
    h.main(scenario, "lazy ack watermark after SIGKILL: duplicates, never a gap; the cap "
           "holds for every file")
