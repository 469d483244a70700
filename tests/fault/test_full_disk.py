#!/usr/bin/env python3
"""test_full_disk (fault scenario 5): the agent's disk fills up while the
uplink is down; the agent refuses what it cannot journal, corrupts nothing,
and once space is back and the uplink returns, everything it accepted
arrives.

gw1's journal lives on its own 8 MiB tmpfs (needs root: mount), which also
holds a 3 MiB ballast file. The journal has no cap of its own (journal.max_bytes
1 GiB): the disk is the limit. 5 simulated devices stream into gw1 over a pty
throughout. Steps:
1. 2,000 events flow normally to the cloud recorder.
2. The edge broker is SIGKILLed (the uplink is down) and a producer posts as
   fast as it can until the agent answers 507 with its "journal full" error.
3. While full: the device link withholds its ACKs (over 3 s the devices'
   last_seq at the agent moves by at most a fifth of the records they make:
   one small commit may still find a free page), /healthz answers 503
   "failing", PRAGMA integrity_check and `edgespool journal verify` pass.
4. The ballast is deleted (space freed), the refused batch is posted again
   (same ids) with 500 more events, and the edge broker restarts.
Asserted (checker.count/report): lost = 0 (everything a 202 or a device ACK
accepted arrived), unexpected = 0, per-node order, no duplicate under
another id; the journal verifies at the end.
If not root, or tmpfs cannot be mounted, it prints SKIP and exits 77 (ctest
shows it as skipped).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import faultlib as f

h = f.h
LONG = f.parse_long()
SIZE = "8m"
BALLAST = 3 << 20


def mount_problem():
    """None if a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "not root (mounting a tmpfs needs root)"
    d = tempfile.mkdtemp(prefix="es-fault-mnt-")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return "cannot mount a tmpfs: %s" % r.stderr.strip()
        subprocess.run(["umount", d], capture_output=True)
        return None
    finally:
        os.rmdir(d)


def devices_last(agent):
    """Sum of last_seq over the devices the agent knows."""
    st, body = agent.get("/api/devices")
    h.check(st == 200, "GET /api/devices answered %d" % st)
    return sum(d["last_seq"] for d in body["devices"])


def records_made(fleet):
    """How many records the fleet wrote out (complete lines) so far."""
    with open(fleet.records_path, "rb") as fr:
        return fr.read().count(b"\n")


def fill(s, timeout=60):
    """Posts new batches to gw1 until a 507; returns (events accepted, the
    refused batch, the 507 answer)."""
    p = s.posters["gw1"]
    accepted, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = p.make(p.batch)
        with p.lock:
            p.attempted.update(e["id"] for e in events)
        status, answer = p._post(json.dumps(events).encode())
        if status == 202:
            with p.lock:
                for r in json.loads(answer)["events"]:
                    p.acked[r["id"]] = r["sequence"]
            accepted += len(events)
            continue
        h.check(status == 507, "POST while filling the disk answered %s: %.300s" %
                (status, answer))
        return accepted, events, json.loads(answer)
    raise h.TestFailure("no 507 after %d s of posting (%d events accepted)" %
                        (timeout, accepted))


def run(env, mnt):
    ballast = os.path.join(mnt, "ballast")
    with open(ballast, "wb") as fb:
        fb.write(os.urandom(BALLAST))
    db = os.path.join(mnt, "gw1.db")
    s = f.System(env, agents=1, devices=(5, 10, 300), agent_db={"gw1": db})
    s.start()
    gw1 = s.agents["gw1"]
    s.load("gw1", 2000, 1000).finish(60)
    print("  1. 2,000 events accepted with the uplink up")

    s.edge.kill()
    accepted, refused, err = fill(s)
    df = subprocess.run(["df", "-k", mnt], capture_output=True, text=True).stdout.split("\n")[1]
    st = gw1.status()
    print("  2. uplink down; %d events accepted, then 507 %s; journal pending %d, file %d "
          "bytes; df: %s" % (accepted, err, st["journal"]["pending"],
                             st["journal"]["file_bytes"], " ".join(df.split()[1:5])))
    h.check("journal full" in err.get("error", ""), "the 507 answer does not say the "
            "journal is full: %s" % err)

    made0, last0 = records_made(s.fleet), devices_last(gw1)
    h.hold(3.0, s.still_ok)
    made1, last1 = records_made(s.fleet), devices_last(gw1)
    hz = h.http_call(gw1.http_port, "GET", "/healthz")
    h.check(hz[0] == 503 and b'"journal_writable":false' in hz[1],
            "/healthz on a full disk: %d %s" % hz)
    print("  3. full for 3 s: devices made %d -> %d records, the agent's last_seq sum %d -> "
          "%d; /healthz %d %s" % (made0, made1, last0, last1, hz[0], hz[1].decode()))
    # A commit of one small record may still find a free page now and then;
    # what matters is that the link stops acknowledging what it cannot keep.
    h.check(made1 - made0 >= 20 and (last1 - last0) * 5 <= made1 - made0,
            "the device link went on acknowledging on a full disk: the devices made %d "
            "records in 3 s, the agent acknowledged %d" % (made1 - made0, last1 - last0))
    f.integrity_check(db)
    h.journal_verify(env, db)
    st = gw1.status()
    rejected = st["ingest"]["rejected"]["journal_full"]
    h.check(rejected > 0, "ingest.rejected.journal_full is 0 after a 507")
    print("     integrity_check ok, journal verify ok; ingest.rejected.journal_full %d, "
          "journal.refused_full %d, journal.errors %d, last_error %r" %
          (rejected, st["journal"]["refused_full"], st["journal"]["errors"],
           st["journal"]["last_error"]))

    os.remove(ballast)
    t0 = time.monotonic()
    h.check(s.posters["gw1"].post_batch(refused, timeout=60), "the refused batch")
    print("  4. ballast removed: the refused batch accepted after %.1f s" %
          (time.monotonic() - t0))
    h.wait_for(lambda: h.http_call(gw1.http_port, "GET", "/healthz")[0] == 200, 15,
               "/healthz 200 again")
    # A little more, not a flood: acknowledged events stay in the journal
    # (journal.retain_s), so what the ballast freed is all there is for the
    # rest of the run (the devices' backlog included).
    s.load("gw1", 500, 500)
    s.edge.start()
    for ld in s.loads:
        ld.finish(120)
    s.fleet.finish(120)
    records = f.fleet_records(s.fleet)
    settled = s.settle(120, records)
    f.integrity_check(db)
    h.journal_verify(env, db)
    s.finish("full_disk", records=records, settled=settled)
    return ("disk full after %d events with the uplink down: 507 'journal full', device "
            "acks withheld, journal sound; after freeing space all %d events + %d device "
            "records arrived" % (accepted, len(s.acked()), len(records)))


def scenario(env):
    f.seed_of(env)
    mnt = env.path("disk")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + SIZE, "tmpfs", mnt],
                       capture_output=True, text=True)
    h.check(r.returncode == 0, "mount tmpfs: %s" % r.stderr)
    try:
        return run(env, mnt)
    finally:
        for p in env.procs:   # whatever holds files there (the agent) goes first
            if any(mnt in str(a) for a in p.argv):
                p.kill()
        for _ in range(20):
            if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)
        else:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
            print("  (the tmpfs was busy: unmounted lazily)")


if __name__ == "__main__":
    why = mount_problem()
    if why:
        print("SKIP test_full_disk.py: %s" % why)
        sys.exit(f.SKIP)
    h.main(scenario, "scenario 5: the agent's disk fills while the uplink is down")
