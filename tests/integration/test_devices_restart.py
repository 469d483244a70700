#!/usr/bin/env python3
"""test_devices_restart: the agent is SIGKILLed and restarted mid-stream
while 10 simulated devices send records over a pty. The devices keep what
was not acknowledged and send it again; the agent remembers, in the same
transaction as the events, what it journaled from each device. So every
record becomes exactly one event at the subscriber, none lost, none twice,
and the journal verifies after every crash.
"""
import random
import time

import harness as h

KILLS = 3


def scenario(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 30)
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    rng = random.Random(seed)
    broker = env.broker()
    sub = env.sub(broker.port, resend=True, from_start=True)
    tty = env.path("fleet-tty")
    agent = env.agent(broker.port, extra=["--link.serial", tty, "--link.reopen_ms", "100"])
    agent.start()
    fleet = h.Fleet(env, "pty:" + tty, 10, 100, count=600, seed=seed)
    fleet.start()
    for k in range(KILLS):
        h.hold(rng.uniform(0.8, 1.6), fleet.proc.check_alive)
        agent.kill()
        h.journal_verify(env, agent.db)
        agent.start()
        print("  kill %d: journal verified, agent back" % (k + 1))
    summary = fleet.finish(120)
    h.check(summary["acked"] == 6000 and summary["pending"] == 0, "fleet summary: %s" % summary)
    records = fleet.records()
    h.check(len(records) == 6000, "the fleet made %d records, expected 6000" % len(records))

    t0 = time.monotonic()
    h.wait_device_records(sub, records, agent, 90, "after the kills")
    n, _ = h.check_device_events(records, sub, "restarts")
    h.journal_verify(env, agent.db)
    return ("%d records from 10 devices over %d agent kills, each exactly one event "
            "(devices resent %d frames; settled in %.1f s)" %
            (n, KILLS, summary["resent"], time.monotonic() - t0))


if __name__ == "__main__":
    h.main(scenario, "agent SIGKILLed while devices stream: every record exactly once")
