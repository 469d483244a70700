#!/usr/bin/env python3
"""test_agent_kill (fault scenario 1): the edge agent is SIGKILLed at random
moments mid-stream; nothing acknowledged is lost, no journal is damaged.

A whole site (faultlib.System) with two agents; gw1 takes a stream from an
id-making producer (CI: 20,000 events in about a minute; --long: 100,000)
and 10 simulated devices on a pty, and is SIGKILLed 20 times (--long: 200)
at random moments, restarted on the same journal and HTTP port. While it is
down its journal must pass PRAGMA integrity_check (read-only, Python's
sqlite3) and `edgespool journal verify`. gw2 carries a steady stream beside
it. A batch whose answer the kill swallowed is posted again with the same
ids (the agent answers it as a duplicate: one journal row). Asserted
(checker.count/report): lost = 0, unexpected = 0, per-node order after
de-dup, no duplicate under another id; every device record exactly once.
"""
import time

import faultlib as f

h = f.h
LONG = f.parse_long()
KILLS = 200 if LONG else 20
TOTAL = 100000 if LONG else 20000
GAP = (0.3, 1.5) if LONG else (1.0, 3.0)
DEVICES = (10, 10)


def scenario(env):
    rng = f.seed_of(env)
    span = KILLS * (sum(GAP) / 2 + 0.8)           # the kill schedule, about
    rate = TOTAL / span
    s = f.System(env, agents=2, devices=DEVICES + (int(DEVICES[1] * span),)).start()
    s.load("gw1", TOTAL, rate)
    s.load("gw2", int(span * 100) // 50 * 50, 100)
    print("  gw1: %d events at %.0f/s; %d kills" % (TOTAL, rate, KILLS))
    t0 = time.monotonic()
    during = 0
    for k in range(KILLS):
        h.hold(rng.uniform(*GAP), s.still_ok)
        acked_before = len(s.posters["gw1"].snapshot()[1])
        t_kill = time.monotonic()
        s.kill_agent("gw1")       # + integrity_check + journal verify
        js = h.journal_stats(env, s.agents["gw1"].db)
        s.restart_agent("gw1")
        during += s.loads[0].is_alive()
        if k < 5 or (k + 1) % (KILLS // 10) == 0:
            print("  kill %d: %d acknowledged, journal %d events (%d pending), integrity ok, "
                  "verify ok, back in %.1f s" % (k + 1, acked_before, js["count"],
                                                 js.get("pending", -1),
                                                 time.monotonic() - t_kill))
    for ld in s.loads:
        ld.finish(300)
    s.fleet.finish(300)
    stream_s = time.monotonic() - t0
    records = f.fleet_records(s.fleet)
    settled = s.settle(180, records)
    f.integrity_check(s.agents["gw1"].db)
    h.journal_verify(env, s.agents["gw1"].db)
    counts = s.finish("agent_kill", records=records, settled=settled)
    print("  gw1 retries after kills: %d; %s" % (s.posters["gw1"].retries, s.bridge_summary()))
    return ("%d agent kills (%d while posting, %.0f s); %d events + %d device records "
            "acknowledged, all received (%d raw duplicates)" %
            (KILLS, during, stream_s, len(s.acked()), len(records), counts["dup_raw"]))


if __name__ == "__main__":
    h.main(scenario, "scenario 1: agent SIGKILLed %d times mid-stream, nothing lost" % KILLS)
