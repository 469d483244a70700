#!/usr/bin/env python3
"""test_agent_kill: nothing acknowledged is lost when the agent crashes.

Events are posted by a background thread while the agent is SIGKILLed and
restarted 3 times on the same journal and HTTP port (1-3 s apart). While the
agent is down, `edgespool journal verify` must pass on its journal (the crash
left a sound SQLite file with no hole in its sequences). Batches that got no
answer count as not acknowledged and are posted again. At the end:
- every acknowledged id was received at least once by the resend-enabled sub,
  always with the sequence of its 202 answer;
- the sub lost nothing and no hole is open; the agent has nothing pending;
- the journal holds at least every acknowledged event, and verifies.
"""
import random
import time

import harness as h

TOTAL = 20000
KILLS = 3
RATE = 1500


def scenario(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 32)
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    rng = random.Random(seed)
    broker = env.broker()
    sub = env.sub(broker.port, resend=True, from_start=True)
    agent = env.agent(broker.port)
    agent.start()
    poster = h.Poster(agent.http_port)
    thread = h.PosterThread(poster, TOTAL, timeout=30, rate=RATE)
    t0 = time.monotonic()
    thread.start()
    during = 0
    for k in range(KILLS):
        h.hold(rng.uniform(1.0, 3.0), thread.check)
        agent.kill()
        acked_before = len(poster.snapshot())
        t_kill = time.monotonic()
        h.journal_verify(env, agent.db)
        js = h.journal_stats(env, agent.db)
        h.check(js["count"] >= acked_before, "after kill %d the journal holds %d events, %d were "
                "acknowledged" % (k + 1, js["count"], acked_before))
        agent.start()
        during += thread.is_alive()
        print("  kill %d: %d acknowledged, journal %d events (%d pending), verify ok, "
              "back in %.1f s" % (k + 1, acked_before, js["count"], js.get("pending", -1),
                                  time.monotonic() - t_kill))
    thread.finish(60)
    post_s = time.monotonic() - t0
    acked = poster.snapshot()
    h.check(len(acked) == TOTAL, "%d events acknowledged, expected %d" % (len(acked), TOTAL))
    stats, copies, dups = h.settle(agent, sub, acked, 120)
    js = h.journal_settled(env, agent.db)
    h.check(js["count"] >= TOTAL and js["pending"] == 0, "journal at the end: %s" % js)
    h.journal_verify(env, agent.db)
    return ("%d events acknowledged over %d agent kills (%d while posting, %.1f s, %d post "
            "retries); journal %d events; all received; %s; sub got %d copies (%d duplicates)"
            % (TOTAL, KILLS, during, post_s, poster.retries, js["count"],
               h.describe_repair(stats), copies, dups))


if __name__ == "__main__":
    h.main(scenario, "agent SIGKILLed 3 times while events flow: nothing acknowledged lost")
