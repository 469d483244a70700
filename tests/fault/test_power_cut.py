#!/usr/bin/env python3
"""test_power_cut: scenario 6, power cuts under the real agent.

The agent runs with the test-only VFS shim (vfs_shim.c, LD_PRELOAD), which
keeps an undo log of every write since each file's last fsync. A few
threads post events with ids of their own; 50-500 ms into the stream the
shim "cuts the power": it undoes every unsynced write of the database and
its WAL and ends the process (exit 137). Cuts come by SIGUSR2, and every
third cycle by the shim's own timer (ES_SHIM_CUT_AFTER_MS) instead.

After each cut: `edgespool journal verify` on the files as the cut left
them, a restart of the agent WITHOUT the shim (it must come up healthy and
stop cleanly), verify again, and `edgespool journal ls`. Counted over all
cycles (the journal is kept from cycle to cycle):
  attempted     ids posted
  acknowledged  ids a 202 named
  received      acknowledged ids found in the journal after the restart
  lost          acknowledged ids missing from it (also ids of earlier cycles)
  dup_raw       journal rows beyond one per id (the UNIQUE index forbids it)
  dup_dedup     sequences held by more than one row
  out_of_order  per producer thread, acknowledged ids whose journal sequence
                is not above that of the id it acknowledged before
  unexpected    ids in the journal that were never posted
and the ids whose journal sequence differs from their 202's.

--sync full (default): passes only with lost = 0, unexpected = 0, no order
or sequence fault. --sync normal is the negative control: SQLite in WAL mode
with synchronous=NORMAL commits without an fsync, so a cut must lose the
last commits, and the test passes only if the checker found losses in at
least one cycle (nothing unexpected, and the journal still verifies).

Extra options (before the harness's): --shim PATH (the shim .so), --cycles N
(default 30), --long (100 cycles), --sync full|normal, --threads N.
"""
import argparse
import http.client
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import harness as h  # noqa: E402

CUT_EXIT = 137  # the shim's _exit code after a cut
PAD = "p" * 200


def own_args():
    """Parses this test's options and leaves the harness's in sys.argv."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--shim", required=True)
    p.add_argument("--cycles", type=int, default=30)
    p.add_argument("--long", action="store_true")
    p.add_argument("--sync", choices=("full", "normal"), default="full")
    p.add_argument("--threads", type=int, default=3)
    mine, rest = p.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    if mine.long:
        mine.cycles = 100
    return mine


# ---- shared with test_io_errors.py ---------------------------------------------


def shim_env(shim, **settings):
    """The environment for an agent under the shim: LD_PRELOAD plus the
    ES_SHIM_* settings given (keyword FAIL_WRITE=3 -> ES_SHIM_FAIL_WRITE=3).
    An ASan-built agent would refuse a library preloaded before its runtime:
    verify_asan_link_order=0 lets it run."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = os.path.abspath(shim)
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    for key, value in settings.items():
        env["ES_SHIM_" + key] = str(value)
    return env


def spawn_until_ready(agent, env, timeout=15):
    """Starts agent.argv() with env; waits until /healthz answers at all (any
    status) or the process exits. Returns the /healthz status, or None if it
    exited first (agent.proc.popen.returncode then says how)."""
    agent.proc = agent.env.spawn(agent.name, agent.argv(), env=env)

    def answered():
        if not agent.proc.alive():
            return "exited"
        try:
            return h.http_call(agent.http_port, "GET", "/healthz", timeout=2)[0]
        except (OSError, http.client.HTTPException):
            return False
    got = h.wait_for(answered, timeout, "%s to answer /healthz or exit" % agent.name)
    return None if got == "exited" else got


def make_events(prefix, first, n):
    """n short-form events with ids prefix-first .. prefix-(first+n-1)."""
    return [{"id": "%s-%d" % (prefix, k), "type": "fault.disk", "subject": prefix,
             "data": {"k": k, "pad": PAD}} for k in range(first, first + n)]


def post(conn_box, port, events):
    """POSTs events on the keep-alive connection in conn_box[0] (opened if
    None). Returns (status, body bytes), or (None, b"") when the connection
    failed (it is dropped)."""
    try:
        if conn_box[0] is None:
            conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn_box[0].request("POST", "/api/events", body=json.dumps(events).encode(),
                            headers={"Content-Type": "application/json"})
        resp = conn_box[0].getresponse()
        body = resp.read()
        if resp.will_close:
            conn_box[0].close()
            conn_box[0] = None
        return resp.status, body
    except (OSError, http.client.HTTPException):
        if conn_box[0] is not None:
            conn_box[0].close()
        conn_box[0] = None
        return None, b""


def accepted_ids(events, body):
    """The id -> sequence of a 202 answer, checked against the batch."""
    reply = json.loads(body)
    got = reply.get("events")
    h.check(reply.get("accepted") == len(events) and isinstance(got, list) and
            [r.get("id") for r in got] == [e["id"] for e in events] and
            all(isinstance(r.get("sequence"), int) and r["sequence"] >= 1 for r in got),
            "202 answer does not match the batch: %.300s" % body)
    return {r["id"]: r["sequence"] for r in got}


def journal_rows(env, path):
    """`edgespool journal ls PATH` as a list of (sequence, id)."""
    r = env.cli("journal", "ls", path)
    h.check(r.returncode == 0, "journal ls %s: exit %d: %s" % (path, r.returncode, r.stderr))
    rows = []
    for line in r.stdout.splitlines():
        f = line.split("\t")
        h.check(len(f) >= 3 and f[0].isdigit(), "journal ls printed %r" % line)
        rows.append((int(f[0]), f[2]))
    return rows


def verify(env, path, when):
    """`edgespool journal verify` must pass (a damaged journal fails the test)."""
    r = env.cli("journal", "verify", path)
    h.check(r.returncode == 0, "journal verify %s (%s) failed (exit %d):\n%s%s" %
            (path, when, r.returncode, r.stdout, r.stderr))


def restart_clean(agent):
    """Starts the agent WITHOUT the shim (it must open the journal and come up
    healthy), then stops it with SIGTERM (it must exit 0)."""
    agent.start()
    agent.proc.signal(signal.SIGTERM)
    rc = agent.proc.wait_exit(20)
    h.check(rc == 0, "the agent without the shim %s after SIGTERM" % h.exit_text(rc))


class Tally:
    """The standard counts of a scenario, and how the journal is checked."""

    FIELDS = ("attempted", "acknowledged", "received", "lost", "dup_raw", "dup_dedup",
              "out_of_order", "unexpected")

    def __init__(self):
        self.c = {k: 0 for k in self.FIELDS}
        self.c["seq_changed"] = 0
        self.attempted = set()
        self.acked = {}          # id -> sequence, every cycle
        self.missing = set()     # acknowledged ids found missing so far
        self.unanswered = set()  # journaled ids whose post got no 202
        self.cuts = {}           # how the power was cut -> cycles
        self.lost_examples = []

    def check_journal(self, rows, new_acked, orders):
        """Counts one check of the journal: rows as journal_rows() gives them,
        new_acked the ids acknowledged since the last check, orders the
        acknowledged ids of each producer in posting order. Returns the ids
        newly found lost."""
        seq_of, by_seq = {}, {}
        for seq, i in rows:
            if i in seq_of:
                self.c["dup_raw"] += 1
            seq_of.setdefault(i, seq)
            by_seq[seq] = by_seq.get(seq, 0) + 1
            if i not in self.attempted:
                self.c["unexpected"] += 1
        self.c["dup_dedup"] += sum(n - 1 for n in by_seq.values())
        self.acked.update(new_acked)
        self.unanswered.update(i for i in seq_of if i in self.attempted and i not in self.acked)
        lost = [i for i in self.acked if i not in seq_of and i not in self.missing]
        self.missing.update(lost)
        self.lost_examples += lost[:5 - len(self.lost_examples)]
        self.c["lost"] += len(lost)
        self.c["acknowledged"] += len(new_acked)
        self.c["received"] += sum(1 for i in new_acked if i in seq_of)
        self.c["seq_changed"] += sum(1 for i, s in new_acked.items()
                                     if i in seq_of and seq_of[i] != s)
        for order in orders:
            top = 0
            for i in order:
                if i in seq_of:
                    self.c["out_of_order"] += seq_of[i] <= top
                    top = max(top, seq_of[i])
        return lost

    def line(self, scenario, verdict):
        """Prints the scenario's standard line, ending with verdict."""
        print("RESULT %s %s seq_changed=%d %s" %
              (scenario, " ".join("%s=%d" % (k, self.c[k]) for k in self.FIELDS),
               self.c["seq_changed"], verdict))
        if self.lost_examples:
            print("  lost, e.g.: %s" % self.lost_examples)
        print("  posted without a 202 but in the journal (committed, answer not sent or "
              "refused): %d" % len(self.unanswered))
        sys.stdout.flush()

    def sound(self):
        """Nothing unexpected, no order or sequence fault, no duplicate row."""
        c = self.c
        return (c["unexpected"] == 0 and c["out_of_order"] == 0 and c["seq_changed"] == 0
                and c["dup_raw"] == 0 and c["dup_dedup"] == 0)


# ---- the power cut -----------------------------------------------------------


class Producer(threading.Thread):
    """Posts batches of 1-10 events with ids tag-0, tag-1, ... until stop is
    set or the agent stops answering. attempted: ids sent; acked: id ->
    sequence; order: acknowledged ids in posting order."""

    def __init__(self, port, tag, rng, stop):
        super().__init__(daemon=True)
        self.port, self.tag, self.rng, self.stop_ev = port, tag, rng, stop
        self.attempted, self.acked, self.order = [], {}, []
        self.error = None

    def run(self):
        conn, k = [None], 0
        try:
            while not self.stop_ev.is_set():
                events = make_events(self.tag, k, self.rng.randint(1, 10))
                k += len(events)
                self.attempted += [e["id"] for e in events]
                status, body = post(conn, self.port, events)
                if status is None:
                    return  # the power is off
                h.check(status == 202, "POST answered %d: %.300s" % (status, body))
                got = accepted_ids(events, body)
                self.acked.update(got)
                self.order += list(got)
        except BaseException as e:  # reported by the main thread
            self.error = e


def start_cycle(agent, args, env_fn, cycle, timer_ms):
    """Starts the agent under the shim. Returns True once it is healthy;
    False if the timer cut it during start-up (a valid, empty cycle)."""
    settings = {"CUT_AFTER_MS": timer_ms} if timer_ms else {}
    status = spawn_until_ready(agent, env_fn(**settings))
    if status is None:
        rc = agent.proc.popen.returncode
        h.check(timer_ms and rc == CUT_EXIT, "cycle %d: the agent under the shim %s before "
                "answering /healthz" % (cycle, h.exit_text(rc)))
        return False
    h.check(status == 200, "cycle %d: /healthz answered %d under the shim" % (cycle, status))
    return True


def one_cycle(env, agent, args, tally, cycle, rng, start_ms):
    """Start under the shim, load, cut, check. Returns (acknowledged, lost)
    of this cycle and the agent's start-up time in ms."""
    timer = cycle % 3 == 2
    delay_ms = rng.randint(50, 500)
    t0 = time.monotonic()
    up = start_cycle(agent, args, lambda **kw: shim_env(args.shim, **kw), cycle,
                     int(start_ms * 1.5) + 30 + delay_ms if timer else 0)
    started_ms = (time.monotonic() - t0) * 1000
    how = "signal" if not timer else "timer" if up else "timer during start-up"
    tally.cuts[how] = tally.cuts.get(how, 0) + 1
    stop = threading.Event()
    producers = [Producer(agent.http_port, "c%d-t%d" % (cycle, t), random.Random(rng.random()),
                          stop) for t in range(args.threads if up else 0)]
    for p in producers:
        p.start()
    if up and not timer:
        h.hold(delay_ms / 1000.0)
        agent.proc.signal(signal.SIGUSR2)
    rc = agent.proc.wait_exit(15)
    stop.set()
    h.check(rc == CUT_EXIT, "cycle %d: the agent %s (expected the shim's cut, exit %d)" %
            (cycle, h.exit_text(rc) if rc is not None else "did not stop", CUT_EXIT))
    for p in producers:
        p.join(30)
        if p.error:
            raise h.TestFailure("cycle %d: producer %s: %s" % (cycle, p.tag, p.error))
    for p in producers:
        tally.attempted.update(p.attempted)
        tally.c["attempted"] += len(p.attempted)
    verify(env, agent.db, "cycle %d, as the cut left it" % cycle)
    restart_clean(agent)
    verify(env, agent.db, "cycle %d, after a restart" % cycle)
    acked = {}
    for p in producers:
        acked.update(p.acked)
    lost = tally.check_journal(journal_rows(env, agent.db), acked, [p.order for p in producers])
    return len(acked), len(lost), started_ms


def scenario(env, args):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 32)
    print("seed %d (rerun with --seed %d); %d cycles, journal.sync=%s, %d producer threads" %
          (seed, seed, args.cycles, args.sync, args.threads))
    rng = random.Random(seed)
    # No broker: events stay pending, which is all this check needs.
    agent = env.agent(h.free_port(), extra=["--journal.sync", args.sync])
    if args.sync == "normal":
        # Under NORMAL nothing is synced before the first checkpoint, so a
        # cut in the first cycle would take the schema itself (an empty
        # SQLite file, "not an edgespool journal"): start from a journal
        # made and closed (checkpointed) first, as on a node in service.
        # With sync=full the first cycle creates it under the shim.
        restart_clean(agent)
    tally, cycles_with_loss, start_ms = Tally(), 0, 200.0
    for cycle in range(args.cycles):
        acked, lost, started = one_cycle(env, agent, args, tally, cycle, rng, start_ms)
        start_ms = max(start_ms * 0.5, started)
        cycles_with_loss += lost > 0
        if lost or cycle % 10 == 9 or cycle == args.cycles - 1:
            print("  cycle %d: %d acknowledged, %d lost; totals %s" %
                  (cycle + 1, acked, lost, tally.c))
            sys.stdout.flush()
    print("cuts: %s" % ", ".join("%d by %s" % (n, how) for how, n in sorted(tally.cuts.items())))
    if args.sync == "full":
        ok = tally.c["lost"] == 0 and tally.sound()
        tally.line("6-power-cut-sync-full", "PASS" if ok else "FAIL")
        h.check(ok, "power cuts with journal.sync=full: %s" % tally.c)
        return "%d cycles, %d events acknowledged, none lost" % (args.cycles,
                                                                 tally.c["acknowledged"])
    ok = tally.sound()
    # A control: finding losses is its success.
    tally.line("6-power-cut-sync-normal", "CONTROL-OK (losses seen)" if ok and cycles_with_loss
               else "CONTROL-FAIL")
    print("negative control: losses found in %d of %d cycles (%d events)" %
          (cycles_with_loss, args.cycles, tally.c["lost"]))
    h.check(ok, "journal.sync=normal: the journal is not sound: %s" % tally.c)
    h.check(cycles_with_loss > 0, "negative control: journal.sync=normal lost nothing in %d "
            "cycles: the checker (or the shim) cannot see a loss" % args.cycles)
    return ("negative control: with journal.sync=normal the checker found %d acknowledged "
            "events lost in %d of %d cycles, as expected" %
            (tally.c["lost"], cycles_with_loss, args.cycles))


if __name__ == "__main__":
    ARGS = own_args()
    h.main(lambda env: scenario(env, ARGS),
           "power cuts (unsynced writes undone) under the agent, journal.sync=%s" % ARGS.sync)
