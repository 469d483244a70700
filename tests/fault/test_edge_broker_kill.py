#!/usr/bin/env python3
"""test_edge_broker_kill (fault scenario 2): the edge mosquitto is SIGKILLed
and restarted mid-stream; nothing acknowledged is lost.

A whole site (faultlib.System: the shipped edge and cloud broker configs, two
agents, the bridge, 10 simulated devices on gw1, the cloud recorder) carries
a stream from two id-making producers and the devices while the edge broker
is SIGKILLed and restarted on the same port and persistence folder: 10 times
every 2-3.5 s (CI), or 50 times every 2-10 s (--long). A SIGKILLed mosquitto
loses what it had PUBACKed but not saved (autosave_interval 30 s): events on
their way to the bridge, the bridge's queued session, retained status. The
bridge's gap tracker must find those holes and have the agents re-send them.
Asserted (checker.count/report): lost = 0, unexpected = 0, per-node order
after de-dup, no duplicate under another id; the bridge ends drained and
every journal verifies.
"""
import time

import faultlib as f

h = f.h
LONG = f.parse_long()
KILLS = 50 if LONG else 10
GAP = (2.0, 10.0) if LONG else (2.0, 3.5)
RATE = 300                       # events/s per agent
DEVICES = (10, 10)               # devices, records/s each


def scenario(env):
    rng = f.seed_of(env)
    span = KILLS * (sum(GAP) / 2 + 0.6) + 5      # the fault schedule, about
    per_agent = int(RATE * span) // 50 * 50
    s = f.System(env, agents=2, devices=DEVICES + (int(DEVICES[1] * span),)).start()
    for n in s.nodes:
        s.load(n, per_agent, RATE)
    t0 = time.monotonic()
    during = 0
    for k in range(KILLS):
        h.hold(rng.uniform(*GAP), s.still_ok)
        s.edge.kill()
        down = rng.uniform(0.1, 1.0)
        h.hold(down, s.still_ok)
        s.edge.start()
        during += any(ld.is_alive() for ld in s.loads)
        print("  kill %d: edge broker down %.1f s, %d acknowledged so far" %
              (k + 1, down, len(s.acked())))
    for ld in s.loads:
        ld.finish(120 + span)
    s.fleet.finish(180)
    stream_s = time.monotonic() - t0
    records = f.fleet_records(s.fleet)
    settled = s.settle(120, records)
    for a in s.agents.values():
        h.journal_verify(env, a.db)
    h.journal_verify(env, s.bridge.db)
    counts = s.finish("edge_broker_kill", records=records, settled=settled)
    print("  %s" % s.bridge_summary())
    return ("%d edge broker kills (%d while the stream ran, %.0f s); %d events + %d device "
            "records acknowledged, all received (%d raw duplicates)" %
            (KILLS, during, stream_s, len(s.acked()), len(records), counts["dup_raw"]))


if __name__ == "__main__":
    h.main(scenario, "scenario 2: edge broker SIGKILLed %d times mid-stream, nothing lost" % KILLS)
