#!/usr/bin/env python3
"""test_broker_restart: nothing acknowledged is lost when the broker crashes.

20,000 events are posted by a background thread while mosquitto is SIGKILLed
and restarted 3 times (same port and persistence folder, 1-3 s apart, down
0.5-2 s each). A SIGKILLed mosquitto loses what it held in memory (PUBACKed
messages queued for the sub, the sub's session, the retained status), so the
sub (--sub.resend --sub.from_start) must find the holes and have the agent
re-send them. At the end:
- every acknowledged id was received at least once, always with the sequence
  of its 202 answer (duplicates only ever as the same id+seq pair);
- the sub lost nothing (stats lost == 0) and no hole is open;
- the agent has nothing pending.
Prints how many holes were found and filled and how many re-sends were asked.
"""
import random
import time

import harness as h

TOTAL = 20000
RESTARTS = 3
RATE = 1500  # events/s: spreads the posting over the restarts


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
    for k in range(RESTARTS):
        h.hold(rng.uniform(1.0, 3.0), thread.check)
        acked_before = len(poster.snapshot())
        broker.kill()
        down = rng.uniform(0.5, 2.0)
        h.hold(down, thread.check)
        broker.start()
        during += thread.is_alive()
        print("  restart %d: broker killed after %d acknowledged events, down %.1f s" %
              (k + 1, acked_before, down))
    thread.finish(60)
    post_s = time.monotonic() - t0
    acked = poster.snapshot()
    h.check(len(acked) == TOTAL, "%d events acknowledged, expected %d" % (len(acked), TOTAL))
    stats, copies, dups = h.settle(agent, sub, acked, 120)
    b = agent.status()["broker"]
    return ("%d events, %d broker restarts (%d while posting, %.1f s); all received; %s; "
            "sub got %d copies (%d duplicates); agent connects %d, re-sent %d" %
            (TOTAL, RESTARTS, during, post_s, h.describe_repair(stats), copies, dups,
             b["connects"], b["resent"]))


if __name__ == "__main__":
    h.main(scenario, "broker SIGKILLed 3 times while events flow: nothing acknowledged lost")
