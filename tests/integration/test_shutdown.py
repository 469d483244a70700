#!/usr/bin/env python3
"""test_shutdown: SIGTERM while events flow loses nothing acknowledged.

Two rounds. In each, a background thread posts events as fast as it can and
the agent gets SIGTERM once 3,000 more are acknowledged:
 1. with the broker running normally;
 2. with the broker frozen (SIGSTOP) a moment before, so no PUBACK can come
    and events stay pending: the agent must give up draining after
    shutdown.drain_ms and still exit cleanly.
Each time the agent must exit 0 within 10 s (answering 503 or closing
connections meanwhile). Then, with the agent stopped:
- every id it answered 202 for is in the journal with that sequence
  (`journal ls`), `journal stats` counts at least that many, and `journal
  verify` passes;
- a new agent on the same journal and port publishes the rest: the sub
  (--sub.resend --sub.from_start) receives every acknowledged id, no hole
  stays open, nothing is lost, and pending drops to 0.
"""
import signal
import threading
import time

import harness as h

BATCH = 3000


def journal_ids(env, path):
    """The ids in the journal, from `edgespool journal ls` (seq, state, id, ...)."""
    r = env.cli("journal", "ls", path)
    h.check(r.returncode == 0, "journal ls: exit %d: %s" % (r.returncode, r.stderr))
    ids = {}
    for line in r.stdout.splitlines():
        cols = line.split("\t")
        h.check(len(cols) >= 3 and cols[0].isdigit(), "journal ls line %r" % line)
        ids[cols[2]] = int(cols[0])
    return ids


def post_then_sigterm(env, agent, poster, broker, freeze):
    """Posts in the background; after BATCH more acknowledgements (and, with
    freeze, after the broker was SIGSTOPped and 500 more), SIGTERMs the agent
    and checks it exits 0 within 10 s. Returns the seconds it took."""
    stop = threading.Event()
    thread = h.PosterThread(poster, 10 ** 6, stop=stop, timeout=60)
    start = len(poster.snapshot())
    thread.start()
    h.wait_for(lambda: thread.check() or len(poster.snapshot()) >= start + BATCH, 60,
               "%d events to be acknowledged" % BATCH)
    if freeze:
        broker.proc.signal(signal.SIGSTOP)
        frozen_at = len(poster.snapshot())
        h.wait_for(lambda: thread.check() or len(poster.snapshot()) >= frozen_at + 500, 30,
                   "500 events acknowledged with the broker frozen")
    t0 = time.monotonic()
    agent.proc.signal(signal.SIGTERM)
    rc = agent.proc.wait_exit(10)
    took = time.monotonic() - t0
    h.check(rc is not None, "the agent did not exit within 10 s of SIGTERM")
    h.check(rc == 0, "the agent %s after SIGTERM (expected exit 0)" % h.exit_text(rc))
    stop.set()
    thread.finish(30)
    if freeze:
        broker.proc.signal(signal.SIGCONT)
    return took


def check_journal(env, agent, acked):
    """Every acknowledged id is in the stopped agent's journal with its
    sequence; the journal verifies. Returns `journal stats`."""
    ids = journal_ids(env, agent.db)
    absent = [i for i in acked if i not in ids]
    h.check(not absent, "%d events answered 202 are not in the journal, e.g. %s" %
            (len(absent), absent[:5]))
    wrong = [i for i in acked if ids[i] != acked[i]]
    h.check(not wrong, "journal sequences differ from the 202 answers for %s" % wrong[:5])
    js = h.journal_stats(env, agent.db)
    h.check(js["count"] >= len(acked), "journal count %d < %d acknowledged" %
            (js["count"], len(acked)))
    h.journal_verify(env, agent.db)
    return js


def scenario(env):
    broker = env.broker()
    sub = env.sub(broker.port, resend=True, from_start=True)
    agent = env.agent(broker.port)
    agent.start()
    poster = h.Poster(agent.http_port)
    lines = []
    for freeze in (False, True):
        took = post_then_sigterm(env, agent, poster, broker, freeze)
        acked = poster.snapshot()
        js = check_journal(env, agent, acked)
        if freeze:
            h.check(js["pending"] > 0, "broker frozen, yet nothing pending: %s" % js)
        agent.start()
        h.wait_for(lambda: sub.missing(acked) == 0 and agent.pending() == 0, 60,
                   "the restarted agent to deliver everything")
        lines.append("%s: SIGTERM after %d acknowledged, exit 0 in %.2f s, journal %d events "
                     "(%d pending, delivered by the next agent)" %
                     ("broker frozen" if freeze else "broker up", len(acked), took,
                      js["count"], js["pending"]))
    stats, copies, dups = h.settle(agent, sub, poster.snapshot(), 60)
    return "; ".join(lines) + "; %s; sub got %d copies (%d duplicates)" % (
        h.describe_repair(stats), copies, dups)


if __name__ == "__main__":
    h.main(scenario, "SIGTERM while events flow: clean exit, nothing acknowledged lost")
