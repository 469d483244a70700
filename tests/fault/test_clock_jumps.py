#!/usr/bin/env python3
"""test_clock_jumps (fault scenario 8): the agent's wall clock is stepped
back 1 h, forward 1 h and forward 1 day mid-stream; nothing is lost, ids
stay unique, sequences strictly increasing, and the MQTT link does not flap.

gw1 runs under libfaketime (Debian's faketime package: LD_PRELOAD of
libfaketimeMT.so.1, FAKETIME_TIMESTAMP_FILE rewritten mid-stream with
FAKETIME_NO_CACHE=1; FAKETIME_DONT_FAKE_MONOTONIC=1 keeps CLOCK_MONOTONIC
real, as it is when an NTP daemon or an operator steps a clock). Its wall
clock goes +0 -> -1 h -> +0 (a +1 h step) -> +1 day while two producers post
to it (one with ids of its own, one in the short form so the agent makes the
ids from its stepped clock) and 10 devices stream over a pty (the agent also
sends them its time). gw2 runs beside it on the real clock. Each step is
confirmed by the time the agent stamps on a short-form event. Asserted:
- checker.count/report: lost = 0, unexpected = 0, per-node order after
  de-dup, no duplicate under another id, no id with two sequences;
- gw1's journal: every id once, sequences strictly increasing;
- no reconnect storm: gw1's broker.connects grows by at most 1 over the run.
--long repeats the steps 3 times with longer holds. Without libfaketime the
scenario prints SKIP and exits 77.
"""
import glob
import json
import os
import sys
import time

import faultlib as f

h = f.h
LONG = f.parse_long()
ROUNDS = 3 if LONG else 1
HOLD = (8.0, 15.0) if LONG else (4.0, 6.0)
STEPS = [("-1 h", -3600), ("+1 h", 0), ("+1 day", 86400)]


def libfaketime():
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1") +
                  glob.glob("/usr/lib/faketime/libfaketimeMT.so.1") +
                  glob.glob("/usr/local/lib/faketime/libfaketimeMT.so.1"))
    return libs[0] if libs else None


def agent_offset_s(agent):
    """How far the agent's wall clock is from ours: posts a short-form event
    and compares the time the agent stamped on it with the real time."""
    status, body = h.http_call(agent.http_port, "POST", "/api/events",
                               json.dumps({"type": "clock.probe", "subject": "clock",
                                           "data": {}}).encode(),
                               {"Content-Type": "application/json"})
    h.check(status == 202, "clock probe answered %d" % status)
    now = time.time()
    ev_id = json.loads(body)["events"][0]["id"]
    st, ev = agent.get("/api/events/" + ev_id)
    h.check(st == 200, "GET /api/events/%s answered %d" % (ev_id, st))
    return h_rfc3339(ev["event"]["time"]) - now, ev_id, json.loads(body)["events"][0]["sequence"]


def h_rfc3339(text):
    import datetime
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def journal_rows(env, path):
    """(sequence, id) of every row, in `edgespool journal ls` order."""
    r = env.cli("journal", "ls", path, timeout=120)
    h.check(r.returncode == 0, "journal ls: %s" % r.stderr)
    out = []
    for line in r.stdout.splitlines():
        p = line.split("\t")
        if len(p) >= 3 and p[0].isdigit():
            out.append((int(p[0]), p[2]))
    return out


def scenario(env):
    rng = f.seed_of(env)
    lib = libfaketime()
    rc_file = env.path("faketime.rc")
    with open(rc_file, "w") as fr:
        fr.write("+0\n")
    fenv = dict(os.environ, LD_PRELOAD=lib, FAKETIME_TIMESTAMP_FILE=rc_file,
                FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
    span = ROUNDS * len(STEPS) * sum(HOLD) / 2 + 6
    s = f.System(env, agents=2, devices=(10, 10, int(10 * span)), agent_env={"gw1": fenv})
    s.start()
    gw1 = s.agents["gw1"]
    short = h.Poster(gw1.http_port, batch=50)
    s.other_posters.append(short)
    pt = h.PosterThread(short, int(100 * span) // 50 * 50, timeout=60, rate=100)
    pt.start()
    for n in s.nodes:
        s.load(n, int(300 * span) // 50 * 50, 300)
    h.wait_for(lambda: gw1.status()["broker"]["state"] == "connected", 15,
               "gw1 to connect to the edge broker")
    connects0 = gw1.status()["broker"]["connects"]
    off, probe_id, probe_seq = agent_offset_s(gw1)
    with short.lock:   # the probes are acknowledged events too
        short.acked[probe_id] = probe_seq
    print("  gw1 under libfaketime (%s): clock offset %+.1f s, broker connects %d" %
          (os.path.basename(lib), off, connects0))
    h.check(abs(off) < 5, "gw1's clock is %.1f s off before any step" % off)
    h.hold(rng.uniform(*HOLD), s.still_ok)
    for r in range(ROUNDS):
        for name, offset in STEPS:
            with open(rc_file + ".tmp", "w") as fr:
                fr.write("%+d\n" % offset)
            os.replace(rc_file + ".tmp", rc_file)
            off, probe_id, probe_seq = agent_offset_s(gw1)
            with short.lock:
                short.acked[probe_id] = probe_seq
            print("  round %d: step %s: gw1's clock now %+.0f s off" % (r + 1, name, off))
            h.check(abs(off - offset) < 5, "after the %s step gw1's clock is %+.0f s off, "
                    "expected %+d" % (name, off, offset))
            h.hold(rng.uniform(*HOLD), lambda: (s.still_ok(), pt.check()))
    for ld in s.loads:
        ld.finish(120)
    pt.finish(120)
    s.fleet.finish(120)
    records = f.fleet_records(s.fleet)
    settled = s.settle(120, records)
    st = gw1.status()["broker"]
    rows = journal_rows(env, gw1.db)
    seqs = [q for q, _ in rows]
    ids = [i for _, i in rows]
    h.journal_verify(env, gw1.db)
    s.finish("clock_jumps", records=records, settled=settled)
    h.check(len(set(ids)) == len(ids), "gw1's journal holds %d rows but %d distinct ids" %
            (len(ids), len(set(ids))))
    inc = all(a < b for a, b in zip(seqs, seqs[1:]))
    dec = all(a > b for a, b in zip(seqs, seqs[1:]))
    h.check(inc or dec, "gw1's journal sequences are not strictly monotonic")
    print("  gw1 journal: %d rows, ids unique, sequences %d..%d strictly increasing; broker "
          "connects %d -> %d, failures %d" % (len(rows), min(seqs), max(seqs), connects0,
                                              st["connects"], st["failures"]))
    h.check(st["connects"] - connects0 <= 1, "reconnect storm: gw1 connected %d times over "
            "the clock steps" % (st["connects"] - connects0))
    return ("%d rounds of clock steps (-1 h, +1 h, +1 day): %d events + %d device records "
            "acknowledged, all received; gw1 reconnected %d times" %
            (ROUNDS, len(s.acked()), len(records), st["connects"] - connects0))


if __name__ == "__main__":
    if not libfaketime():
        print("SKIP test_clock_jumps.py: libfaketime not found (Debian: apt-get install "
              "faketime; scripts/deps.sh installs it)")
        sys.exit(f.SKIP)
    h.main(scenario, "scenario 8: the agent's wall clock steps -1 h, +1 h, +1 day mid-stream")
