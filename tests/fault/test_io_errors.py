#!/usr/bin/env python3
"""test_io_errors: scenario 7, a failing disk under the real agent.

The agent runs with the test-only VFS shim (vfs_shim.c, LD_PRELOAD) set to
fail the Nth write (ES_SHIM_FAIL_WRITE=N) or the Nth fsync
(ES_SHIM_FAIL_SYNC=N) of its database and WAL, once (transient) or from
then on (ES_SHIM_FAIL_PERSIST=1: a dead disk). N is stepped 1, 2, 3, ...
for each of the four kinds, as SQLite's own I/O-error tests do, until a run
ends without the fault having fired (N is past the writes or syncs a run
makes) or --max-n.

Each run: the agent starts under the shim on the journal of the previous
runs, BATCHES batches of events (ids of our own) are posted one at a time,
and every answer is recorded: 202 = acknowledged; anything else must be a
5xx or 507 with a JSON error body (refused). Checked:
  - the agent never crashes: it stays up, or exits with a code and a log
    line saying why (e.g. it cannot open the journal), never by a signal;
  - a refusal is counted (journal.errors in /api/status) and /healthz says
    503 "failing" while the journal cannot commit; a dead disk keeps it so,
    after a transient error the next commit brings back 200 and 202s;
  - after SIGTERM (it must exit, with a code) the agent starts WITHOUT the
    shim, comes up healthy and stops cleanly; `edgespool journal verify`
    passes, and every acknowledged id is in the journal with the sequence
    of its 202 (never told "accepted" for an event that was not committed).
Refused events may be in the journal too (an fsync that failed after the
frames were written: after a restart SQLite finds that commit whole); they
were attempted, so they count as received-not-acknowledged, not unexpected.

Extra options (before the harness's): --shim PATH, --max-n N (default 60),
--long (max-n 200 and twice the batches).
"""
import argparse
import json
import os
import random
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_power_cut as pc  # noqa: E402  (the shared helpers live there)
from test_power_cut import h  # noqa: E402

KINDS = (("WRITE", False), ("WRITE", True), ("SYNC", False), ("SYNC", True))


def own_args():
    """Parses this test's options and leaves the harness's in sys.argv."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--shim", required=True)
    p.add_argument("--max-n", type=int, default=60)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--long", action="store_true")
    mine, rest = p.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    if mine.long:
        mine.max_n, mine.batches = 200, mine.batches * 2
    return mine


def log_since(path, offset):
    """The text a log got after offset."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def healthz(agent):
    """(status, body dict) of GET /healthz."""
    status, body = h.http_call(agent.http_port, "GET", "/healthz", timeout=5)
    return status, json.loads(body)


def check_refusal(status, body, what):
    """A refused batch: a 5xx or 507 carrying a JSON error body."""
    h.check(status >= 500, "%s: POST answered %d (expected 202, or a 5xx/507 refusal): %.300s"
            % (what, status, body))
    try:
        reply = json.loads(body)
    except ValueError:
        raise h.TestFailure("%s: refusal %d without a JSON body: %.300r" % (what, status, body))
    h.check(isinstance(reply, dict) and reply.get("error"),
            "%s: refusal %d without an error message: %.300s" % (what, status, body))


class Run:
    """One agent run under one fault: what was posted and answered."""

    def __init__(self, kind, persist, n):
        self.kind, self.persist, self.n = kind, persist, n
        self.tag = "%s%s-%d" % (kind.lower(), "-p" if persist else "-t", n)
        self.attempted, self.acked, self.order = [], {}, []
        self.refused = 0
        self.statuses = {}
        self.unhealthy_seen = False

    def what(self):
        return "FAIL_%s=%d (%s)" % (self.kind, self.n,
                                    "persistent" if self.persist else "transient")


def post_batches(agent, run, batches, rng):
    """Posts the batches one at a time; records each answer. Stops early if
    the agent went away (it must then have exited with a code)."""
    conn, k = [None], 0
    for b in range(batches):
        events = pc.make_events(run.tag, k, rng.randint(1, 8))
        k += len(events)
        run.attempted += [e["id"] for e in events]
        status, body = pc.post(conn, agent.http_port, events)
        run.statuses[status] = run.statuses.get(status, 0) + 1
        if status is None:
            return False
        if status == 202:
            got = pc.accepted_ids(events, body)
            run.acked.update(got)
            run.order += list(got)
            continue
        check_refusal(status, body, run.what())
        run.refused += 1
        hs, hb = healthz(agent)
        h.check(hs == 503 and hb.get("status") == "failing" and
                hb.get("journal_writable") is False,
                "%s: after a refused batch /healthz answered %d %s (expected 503 failing)" %
                (run.what(), hs, hb))
        run.unhealthy_seen = True
    if conn[0] is not None:
        conn[0].close()
    return True


def check_after(agent, run, rng):
    """The agent's state at the end of a run that stayed up."""
    st = agent.status()["journal"]
    if run.refused:
        h.check(st["errors"] >= 1 and st["last_error"],
                "%s: %d batches refused but journal.errors=%s last_error=%r" %
                (run.what(), run.refused, st["errors"], st["last_error"]))
    hs, hb = healthz(agent)
    if run.persist and run.refused:
        h.check(hs == 503, "%s: the disk is dead but /healthz answered %d %s" %
                (run.what(), hs, hb))
        return
    if run.refused:  # transient: one more batch must be accepted
        events = pc.make_events(run.tag + "-after", 0, 3)
        run.attempted += [e["id"] for e in events]
        status, body = pc.post([None], agent.http_port, events)
        h.check(status == 202, "%s: after a transient error a batch got %s: %.300s" %
                (run.what(), status, body))
        got = pc.accepted_ids(events, body)
        run.acked.update(got)
        run.order += list(got)
        hs, hb = healthz(agent)
    h.check(hs == 200, "%s: /healthz answered %d %s at the end (expected a recovery)" %
            (run.what(), hs, hb))


def stop(agent, run):
    """SIGTERM; the agent must exit with a code (not a signal) in time."""
    agent.proc.signal(signal.SIGTERM)
    rc = agent.proc.wait_exit(30)
    h.check(rc is not None and rc >= 0, "%s: the agent %s after SIGTERM" %
            (run.what(), "did not exit" if rc is None else h.exit_text(rc)))
    return rc


def one_run(env, agent, args, run, tally, rng):
    """Runs the agent under one fault and checks it. Returns True if the
    fault fired (False: N is past what a run does)."""
    log = env.path(agent.name + ".log")
    offset = log_size(log)
    settings = {"FAIL_" + run.kind: run.n}
    if run.persist:
        settings["FAIL_PERSIST"] = 1
    status = pc.spawn_until_ready(agent, pc.shim_env(args.shim, **settings))
    up = status is not None
    if up:
        up = post_batches(agent, run, args.batches, rng)
    if up:
        check_after(agent, run, rng)
        rc = stop(agent, run)
    else:
        rc = agent.proc.wait_exit(30)
    text = log_since(log, offset)
    fired = "es-shim: FAULT injected" in text
    h.check(rc is not None and rc >= 0, "%s: the agent %s" %
            (run.what(), "hangs" if rc is None else h.exit_text(rc)))
    if rc != 0:  # it gave up: it must have said why
        h.check(re.search(r"\berror\b", text),
                "%s: the agent exited %d without an error line in its log" % (run.what(), rc))
    tally.attempted.update(run.attempted)
    tally.c["attempted"] += len(run.attempted)
    pc.restart_clean(agent)
    pc.verify(env, agent.db, "after %s" % run.what())
    lost = tally.check_journal(pc.journal_rows(env, agent.db), run.acked, [run.order])
    h.check(not lost, "%s: acknowledged ids missing from the journal: %s" %
            (run.what(), lost[:5]))
    return fired, rc, up


def scenario(env, args):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 32)
    print("seed %d (rerun with --seed %d); N up to %d, %d batches a run" %
          (seed, seed, args.max_n, args.batches))
    rng = random.Random(seed)
    agent = env.agent(h.free_port())  # no broker: events stay pending
    pc.restart_clean(agent)  # the journal exists before the first fault
    tally, summary = pc.Tally(), []
    for kind, persist in KINDS:
        runs = exits = refused = 0
        for n in range(1, args.max_n + 1):
            run = Run(kind, persist, n)
            fired, rc, up = one_run(env, agent, args, run, tally, rng)
            if not fired:
                break
            runs += 1
            exits += not up
            refused += run.refused
        label = "%s %s" % (kind.lower(), "persistent" if persist else "transient")
        summary.append("%s: N=1..%d (%d refused batches, %d start-up exits)" %
                       (label, runs, refused, exits))
        print("  %s" % summary[-1])
        sys.stdout.flush()
    ok = tally.c["lost"] == 0 and tally.sound()
    tally.line("7-io-errors", "PASS" if ok else "FAIL")
    h.check(ok, "I/O errors: %s" % tally.c)
    return "; ".join(summary)


if __name__ == "__main__":
    ARGS = own_args()
    h.main(lambda env: scenario(env, ARGS),
           "the Nth write/fsync of the journal fails (transient, persistent)")
