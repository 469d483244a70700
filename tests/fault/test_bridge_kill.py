#!/usr/bin/env python3
"""test_bridge_kill (fault scenario 3): the cloud-bridge is SIGKILLed and
restarted mid-stream; nothing acknowledged is lost.

A whole site (faultlib.System) carries a stream from two id-making producers
and 10 simulated devices while the bridge is SIGKILLed 10 times (CI) or 50
times (--long), every 1.5-3 s, down 0.3-1 s, and restarted on the same inbox.
A crash loses what paho had acknowledged to the edge broker but the inbox had
not committed, and what was in flight to the cloud: the persistent edge
session, the gap tracker saved in the inbox (re-sends from the agents) and
forwarding from the oldest unforwarded row must make up for it. While the
bridge is down its inbox must pass PRAGMA integrity_check and `edgespool
journal verify`. Asserted (checker.count/report): lost = 0, unexpected = 0,
per-node order after de-dup, no duplicate under another id.

--uplink batch: the site bridge sends batches and a cloud-role bridge in
the cloud republishes each event for the recorder; the kills alternate
between the two (the cloud role's crash loses batches paho had
acknowledged: its tracker finds them from the site bridge's node statuses
and asks the site bridge for them over the cloud broker).
"""
import time

import faultlib as f

h = f.h
LONG = f.parse_long()
UPLINK = f.parse_uplink()
KILLS = 50 if LONG else 10
GAP = (1.5, 3.0)
DOWN = (0.3, 1.0)
RATE = 300
DEVICES = (10, 10)


def scenario(env):
    rng = f.seed_of(env)
    span = KILLS * (sum(GAP) / 2 + sum(DOWN) / 2 + 0.5) + 5
    per_agent = int(RATE * span) // 50 * 50
    s = f.System(env, agents=2, devices=DEVICES + (int(DEVICES[1] * span),),
                 uplink=UPLINK).start()
    for n in s.nodes:
        s.load(n, per_agent, RATE)
    t0 = time.monotonic()
    during = 0
    for k in range(KILLS):
        h.hold(rng.uniform(*GAP), s.still_ok)
        victim = s.cloudrole if s.cloudrole is not None and k % 2 else s.bridge
        victim.kill()
        f.integrity_check(victim.db)
        h.journal_verify(env, victim.db)
        down = rng.uniform(*DOWN)
        h.hold(down, s.still_ok)
        victim.start()
        during += any(ld.is_alive() for ld in s.loads)
        print("  kill %d (%s): inbox integrity ok, verified; down %.1f s; %d acknowledged so "
              "far" % (k + 1, victim.name, down, len(s.acked())))
    for ld in s.loads:
        ld.finish(120 + span)
    s.fleet.finish(180)
    stream_s = time.monotonic() - t0
    records = f.fleet_records(s.fleet)
    settled = s.settle(120, records)
    h.journal_verify(env, s.bridge.db)
    if s.cloudrole is not None:
        h.journal_verify(env, s.cloudrole.db)
    counts = s.finish("bridge_kill" if UPLINK == "events" else "bridge_kill_batch",
                      records=records, settled=settled)
    print("  %s" % s.bridge_summary())
    return ("%d %s kills (%d while the stream ran, %.0f s); %d events + %d device records "
            "acknowledged, all received (%d raw duplicates)" %
            (KILLS, "bridge" if UPLINK == "events" else "site bridge and cloud role", during,
             stream_s, len(s.acked()), len(records), counts["dup_raw"]))


if __name__ == "__main__":
    h.main(scenario, "scenario 3: %s SIGKILLed %d times mid-stream, nothing lost" %
           ("bridge" if UPLINK == "events" else "site bridge (batches) and cloud role", KILLS))
