#!/usr/bin/env python3
"""test_fleet_state: fleet-state over MQTT keeps the projection the events imply.

Two agents (gw1, gw2) -> edge mosquitto -> cloud-bridge -> cloud mosquitto ->
fleet-state (MQTT, QoS 1, persistent session) and `edgespool tail`.
1. 300 mixed events per agent (readings, alarms raised and cleared,
   registrations; 8 devices each): fleet-state applies 600, and
   GET /api/devices equals the projection computed here from the events the
   agents journaled (`edgespool journal cat`); `edgespool tail --mqtt ...
   --count 5 'sensor.*'` printed 5 lines, each a sensor.* CloudEvent, and
   exited 0; --table prints a header and rows.
2. Bad input published to the cloud broker (not JSON; JSON but not a
   CloudEvent) is counted as invalid, kept as a dead letter, and the service
   goes on.
3. 1,500 more events per agent while fleet-state is SIGKILLed mid-stream and
   restarted on the same file and client id: no id is applied twice (the
   log, the counts and `applied` agree, each id once), every event is either
   applied or counted as a missing sequence (gaps.missing: what paho had
   acknowledged before the kill and the commit, the MQTT hop's known gap),
   and the projection equals the one computed from what it applied. (Up to
   here fleet-state runs with repair.ask off, so the holes stay for 4 to
   close; asking on the broker is it_bridge_answer's and the fault suite's.)
4. Restarted with `repair.node` naming both agents' HTTP APIs, fleet-state
   fetches the missing sequences from their journals by itself: nothing
   missing, each id applied once, the projection equals the one computed
   from every event sent. Then `fleet-state --rebuild-from http://<agent>`
   for each agent reads its 1,800 journaled events and applies none (all
   there).
5. SIGTERM: exit 0. The projection tables are emptied, `fleet-state
   --rebuild` re-applies its event log (prints the count it applied), and
   the restarted service serves exactly the same devices.
6. The store stays bounded: restarted with state.snapshot_every 500 and
   state.log_keep 300, 1,200 more events per agent leave at most
   500 + 300 + one batch events in the log, a snapshot whose checkpoint
   (position, applied) matches; `--rebuild` starts from the snapshot and
   re-applies only the log after it, serving exactly the same devices even
   with the tables emptied; `--rebuild --from-scratch` says how many events
   the log no longer holds and builds only what it holds; `--rebuild` puts
   everything back.
7. `edgespool tail` hides an id it printed already (the same event
   published three times shows once, and it says at its end that it hid 2);
   with --no-dedup every copy shows.
/metrics passes `promtool check metrics` and agrees with /api/stats.
"""
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import harness as h

PER_AGENT_1 = 300
PER_AGENT_2 = 1500
NODES = ("gw1", "gw2")
TYPES = ("sensor.reading", "sensor.reading", "sensor.reading", "alarm.raised",
         "alarm.cleared", "device.registered")


def make_events(start, n):
    """n short-form events of mixed types over 8 devices."""
    return [{"type": TYPES[k % len(TYPES)], "subject": "dev-%d" % (k % 8),
             "data": {"n": k, "temp": 20 + (k % 50) / 10.0}}
            for k in range(start, start + n)]


def post_mixed(poster, total, stop=None, rate=None):
    """post_many with our mixed events (the harness's are all readings)."""
    done, t0 = 0, time.monotonic()
    while done < total and not (stop is not None and stop.is_set()):
        n = min(poster.batch, total - done)
        if not poster.post_acked(make_events(poster.next_n, n), 30, stop):
            break
        poster.next_n += n
        done += n
        if rate:
            time.sleep(max(0.0, t0 + done / rate - time.monotonic()))
    return done


class MixedPoster(threading.Thread):
    """post_mixed in the background; finish() re-raises what went wrong."""

    def __init__(self, poster, total, rate=None):
        super().__init__(daemon=True)
        self.poster, self.total, self.rate = poster, total, rate
        self.error = None

    def run(self):
        try:
            post_mixed(self.poster, self.total, rate=self.rate)
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, timeout):
        h.wait_for(lambda: self.error or not self.is_alive(), timeout, "the poster to finish")
        if self.error is not None:
            raise h.TestFailure("poster thread failed: %s" % (self.error,))


class Piped:
    """A program whose output the test reads (edgespool tail), killed by the
    Env's clean-up if the test fails before it ends."""

    def __init__(self, env, argv):
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      start_new_session=True)
        env.procs.append(self)

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


def project(events):
    """The projection fleet-state must serve for these CloudEvents (dicts),
    by the rules in docs/consumers.md."""
    devs, seen = {}, set()
    for ev in events:
        if ev["id"] in seen or "subject" not in ev:
            seen.add(ev["id"])
            continue
        seen.add(ev["id"])
        key = (ev["source"], ev["subject"])
        d = devs.setdefault(key, {"source": key[0], "subject": key[1], "last_seen": "",
                                  "last_type": "", "last_sequence": -1, "reading": None,
                                  "alarm": False, "counts": {}, "_r": -1, "_a": -1})
        seq, t = int(ev.get("sequence", "0")), ev["type"]
        if seq >= d["last_sequence"]:
            d["last_sequence"], d["last_type"], d["last_seen"] = seq, t, ev.get("time", "")
        if t == "sensor.reading" and seq >= d["_r"]:
            d["_r"], d["reading"] = seq, ev.get("data")
        if t.startswith("alarm.") and seq >= d["_a"]:
            d["_a"], d["alarm"] = seq, t == "alarm.raised"
        d["counts"][t] = d["counts"].get(t, 0) + 1
    out = []
    for key in sorted(devs):
        d = devs[key]
        del d["_r"], d["_a"]
        out.append(d)
    return out


def journal_events(env, agent):
    """Every CloudEvent the agent journaled (`edgespool journal cat`)."""
    r = env.cli("journal", "cat", agent.db)
    h.check(r.returncode == 0, "journal cat %s: exit %d: %s" % (agent.db, r.returncode, r.stderr))
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def diff(got, want):
    """The first difference between two device lists, for a failure message."""
    if len(got) != len(want):
        return "%d devices served, %d expected" % (len(got), len(want))
    for g, w in zip(got, want):
        if g != w:
            return "served %s\nexpected %s" % (json.dumps(g), json.dumps(w))
    return "none"


class Fleet:
    """The real fleet-state on the cloud broker, with a fixed HTTP port and
    state file so restarts keep both."""

    def __init__(self, env, broker_port):
        self.env, self.broker_port = env, broker_port
        self.http_port = h.free_port()
        self.db = env.path("fleet.db")
        self.proc = None
        self.extra = ["--repair.ask", "false"]

    def argv(self, *extra):
        return [self.env.args.fleet, "--node.id", "it-fleet",
                "--source.mqtt", "mqtt://127.0.0.1:%d" % self.broker_port,
                "--source.topic", "edgespool/+/+/ev/#", "--state.path", self.db,
                "--state.sync", "normal",
                "--http.listen", "127.0.0.1:%d" % self.http_port,
                "--source.backoff_base_ms", "50", "--source.backoff_max_ms", "500"] + \
            self.extra + list(extra)

    def start(self, timeout=15):
        """Starts it; waits until GET /readyz answers 200 (consuming, its
        subscriptions acknowledged by the broker)."""
        self.proc = self.env.spawn("fleet", self.argv())

        def ready():
            self.proc.check_alive()
            return h.ready(self.http_port)
        h.wait_for(ready, timeout, "fleet-state to be ready (GET /readyz 200)")

    def get(self, path):
        status, body = h.http_call(self.http_port, "GET", path)
        h.check(status == 200, "fleet-state GET %s answered %d: %s" % (path, status, body))
        return json.loads(body)

    def stats(self):
        return self.get("/api/stats")

    def devices(self):
        return self.get("/api/devices")["devices"]


def mosquitto_pub(port, topic, payload):
    subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-m", payload],
                   check=True, timeout=10)


def phase_initial(env, fleet, agents, posters, cloud):
    # The tails subscribe while the events flow; what they miss of this
    # phase, the next one gives them.
    url = "mqtt://127.0.0.1:%d" % cloud.port
    tail = Piped(env, [env.args.cli, "tail", "--mqtt", url, "--count", "5", "sensor.*"])
    table = Piped(env, [env.args.cli, "tail", "--mqtt", url, "--table", "--count", "3",
                        "alarm.*"])
    for p in posters:
        post_mixed(p, PER_AGENT_1)
    h.wait_for(lambda: fleet.stats()["applied"] == 2 * PER_AGENT_1, 60,
               "fleet-state to apply %d events" % (2 * PER_AGENT_1))
    want = project(ev for a in agents for ev in journal_events(env, a))
    got = fleet.devices()
    h.check(got == want, "projection differs: %s" % diff(got, want))
    return tail, table


def check_tail(tail, table):
    for piped, n in ((tail, 5), (table, 3)):
        p = piped.popen
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            raise h.TestFailure("edgespool tail did not exit after its --count")
        h.check(p.returncode == 0, "edgespool tail exited %d: %s" % (p.returncode, err))
        lines = out.splitlines()
        if piped is tail:
            h.check(len(lines) == n, "tail printed %d lines, expected %d" % (len(lines), n))
            for line in lines:
                ev = json.loads(line)
                h.check(ev["type"].startswith("sensor.") and ev["specversion"] == "1.0",
                        "tail printed a non-matching event: %s" % line)
        else:
            h.check(len(lines) == n + 1 and lines[0].split()[:4] ==
                    ["TIME", "SOURCE", "SUBJECT", "TYPE"],
                    "tail --table printed: %r" % lines)
            for line in lines[1:]:
                h.check(line.split()[3].startswith("alarm."), "table row %r" % line)


def phase_bad_input(fleet, cloud):
    before = fleet.stats()["invalid"]
    mosquitto_pub(cloud.port, "edgespool/site1/gw1/ev/sensor.reading", "not a cloud event")
    mosquitto_pub(cloud.port, "edgespool/site1/gw1/ev/sensor.reading", '{"specversion":"1.0"}')
    h.wait_for(lambda: fleet.stats()["invalid"] == before + 2, 20,
               "fleet-state to count 2 invalid deliveries")
    fleet.proc.check_alive()
    with sqlite3.connect("file:%s?mode=ro" % fleet.db, uri=True) as db:
        n = db.execute("SELECT count(*) FROM deadletters WHERE origin LIKE "
                       "'edgespool/site1/gw1/ev/%'").fetchone()[0]
    h.check(n == 2, "%d dead letters kept, expected 2" % n)


def applied_log(fleet):
    """The events fleet-state applied, from its own log, in order."""
    with sqlite3.connect("file:%s?mode=ro" % fleet.db, uri=True) as db:
        rows = db.execute("SELECT body FROM events ORDER BY n").fetchall()
    return [json.loads(r[0]) for r in rows]


def phase_kill(env, fleet, agents, posters, bridge):
    threads = [MixedPoster(p, PER_AGENT_2) for p in posters]
    for t in threads:
        t.start()
    start = fleet.stats()["applied"]
    h.wait_for(lambda: fleet.stats()["applied"] >= start + 600, 60,
               "fleet-state to apply events of the second phase")
    fleet.proc.kill()
    fleet.start()
    for t in threads:
        t.finish(90)
    total = 2 * (PER_AGENT_1 + PER_AGENT_2)
    h.wait_for(lambda: all(a.pending() == 0 for a in agents), 60, "the agents to drain")
    h.wait_for(bridge.quiet, 60, "the bridge to forward everything")

    def settled():
        st = fleet.stats()
        return st["applied"] + st["gaps"]["missing"] >= total
    h.wait_for(settled, 60, "every event applied or counted missing")
    st = fleet.stats()
    log = applied_log(fleet)
    ids = [ev["id"] for ev in log]
    h.check(len(ids) == len(set(ids)), "an id was applied twice")
    h.check(st["applied"] == len(ids) == st["events"],
            "applied %d, log %d, events %d" % (st["applied"], len(ids), st["events"]))
    sent = {ev["id"]: ev for a in agents for ev in journal_events(env, a)}
    h.check(len(sent) == total, "the agents journaled %d events, expected %d" % (len(sent), total))
    h.check(set(ids) <= set(sent), "fleet-state applied an id nobody sent")
    lost = len(sent) - len(ids)
    h.check(lost == st["gaps"]["missing"],
            "%d events not applied but %d counted missing" % (lost, st["gaps"]["missing"]))
    devices = fleet.devices()
    want = project(log)
    h.check(devices == want, "projection differs from the applied events: %s" %
            diff(devices, want))
    counted = sum(n for d in devices for n in d["counts"].values())
    h.check(counted == len(ids), "counts add up to %d, %d applied" % (counted, len(ids)))
    if lost == 0:
        full = project(list(sent.values()))
        h.check(devices == full, "projection differs from the events sent: %s" %
                diff(devices, full))
    return st, lost


def check_metrics(fleet, applied):
    """GET /metrics passes promtool's lint and says what /api/stats says."""
    status, body = h.http_call(fleet.http_port, "GET", "/metrics")
    h.check(status == 200, "GET /metrics answered %d" % status)
    text = body.decode()
    promtool = shutil.which("promtool")
    h.check(promtool, "promtool not found: install Debian's prometheus package (scripts/deps.sh)")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    h.check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
            "promtool check metrics (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    h.check("fleet_state_events_applied_total %d\n" % applied in text,
            "/metrics does not say %d applied:\n%s" % (applied, text))
    h.check("fleet_state_connected 1\n" in text, "/metrics does not say connected")


def phase_auto_repair(env, fleet, agents):
    """Restarted with repair.node for both agents, fleet-state fetches its
    holes from their journals by itself: nothing missing, every event
    applied once, the projection of every event sent."""
    fleet.proc.signal(signal.SIGTERM)
    rc = fleet.proc.wait_exit(20)
    h.check(rc == 0, "fleet-state %s after SIGTERM" % h.exit_text(rc))
    fleet.extra = ["--repair.node", ",".join("/site1/%s=http://127.0.0.1:%d" %
                                             (a.node, a.http_port) for a in agents)]
    fleet.start()
    total = 2 * (PER_AGENT_1 + PER_AGENT_2)

    def repaired():
        st = fleet.stats()
        return st["gaps"]["missing"] == 0 and st["applied"] == total and st
    st = h.wait_for(repaired, 60, "fleet-state to repair its holes from the agents")
    ids = [ev["id"] for ev in applied_log(fleet)]
    h.check(len(ids) == len(set(ids)) == total == st["events"],
            "after the repair: %d logged, %d distinct, %d events" %
            (len(ids), len(set(ids)), st["events"]))
    devices = fleet.devices()
    want = project(ev for a in agents for ev in journal_events(env, a))
    h.check(devices == want, "projection after the repair differs from the events sent: %s"
            % diff(devices, want))


def phase_repair(env, fleet, agents, lost):
    """--rebuild-from each agent's HTTP API: exactly the lost events are
    applied (the others are duplicates); then nothing is missing and the
    projection is the one of every event sent."""
    fleet.proc.signal(signal.SIGTERM)
    rc = fleet.proc.wait_exit(20)
    h.check(rc == 0, "fleet-state %s after SIGTERM" % h.exit_text(rc))
    new = 0
    for a in agents:
        url = "http://127.0.0.1:%d" % a.http_port
        r = subprocess.run(fleet.argv("--rebuild-from", url), capture_output=True, text=True,
                           timeout=120)
        h.check(r.returncode == 0, "--rebuild-from %s exited %d: %s" % (url, r.returncode,
                                                                        r.stderr))
        m = re.match(r"rebuilt from \S+: (\d+) events read, (\d+) applied$", r.stdout.strip())
        h.check(m and int(m.group(1)) == PER_AGENT_1 + PER_AGENT_2,
                "--rebuild-from %s printed %r" % (url, r.stdout))
        new += int(m.group(2))
    h.check(new == lost, "--rebuild-from applied %d events, %d were missing" % (new, lost))
    fleet.start()
    st = fleet.stats()
    total = 2 * (PER_AGENT_1 + PER_AGENT_2)
    h.check(st["applied"] == total and st["gaps"]["missing"] == 0,
            "after --rebuild-from: applied %d, missing %d" % (st["applied"],
                                                           st["gaps"]["missing"]))
    devices = fleet.devices()
    want = project(ev for a in agents for ev in journal_events(env, a))
    h.check(devices == want, "projection after --rebuild-from differs from the events sent: %s"
            % diff(devices, want))
    return new


def phase_rebuild(env, fleet, applied):
    before = fleet.devices()
    fleet.proc.signal(signal.SIGTERM)
    rc = fleet.proc.wait_exit(20)
    h.check(rc == 0, "fleet-state %s after SIGTERM" % h.exit_text(rc))
    with sqlite3.connect(fleet.db) as db:
        db.execute("DELETE FROM devices")
        db.execute("DELETE FROM device_counts")
    r = subprocess.run(fleet.argv("--rebuild"), capture_output=True, text=True, timeout=60)
    h.check(r.returncode == 0, "--rebuild exited %d: %s" % (r.returncode, r.stderr))
    h.check(r.stdout.strip() == "rebuilt: %d events applied" % applied,
            "--rebuild printed %r, expected %d events" % (r.stdout, applied))
    fleet.start()
    after = fleet.devices()
    h.check(after == before, "rebuilt projection differs: %s" % diff(after, before))
    return len(after)


class Lines(threading.Thread):
    """The stdout lines of a Piped program, gathered as they come."""

    def __init__(self, piped):
        super().__init__(daemon=True)
        self.piped, self.lines = piped, []
        self.start()

    def run(self):
        for line in self.piped.popen.stdout:
            self.lines.append(line.rstrip("\n"))


def dedup_event(n, id_):
    return json.dumps({"specversion": "1.0", "id": id_, "source": "/site9/dd",
                       "type": "dedup.test", "subject": "dev-d", "sequence": str(n),
                       "time": "2026-11-27T07:00:00.000Z", "data": {"n": n}})


def publish_lines(port, topic, payloads):
    """Publishes payloads in order, one connection (mosquitto_pub -l)."""
    subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-l"],
                   input="\n".join(payloads) + "\n", text=True, check=True, timeout=10)


def phase_tail_dedup(env, cloud):
    """Two tails, one de-duplicating, one with --no-dedup; warm-up events
    until both print, then A three times and B: A shows once (2 hidden,
    said at the end), or three times with --no-dedup."""
    url = "mqtt://127.0.0.1:%d" % cloud.port
    topic = "edgespool/site9/dd/ev/dedup.test"
    tails = [Piped(env, [env.args.cli, "tail", "--mqtt", url, "dedup.*"] + extra)
             for extra in ([], ["--no-dedup"])]
    lines = [Lines(t) for t in tails]
    k = 0

    def both_print():
        nonlocal k
        k += 1
        publish_lines(cloud.port, topic, [dedup_event(k, "warm-%d" % k)])
        return all(ln.lines for ln in lines)
    h.wait_for(both_print, 20, "both tails to print a warm-up event", interval=0.3)
    a, b = dedup_event(1000, "dup-a"), dedup_event(1001, "dup-b")
    publish_lines(cloud.port, topic, [a, a, a, b])
    h.wait_for(lambda: all(any('"dup-b"' in x for x in ln.lines) for ln in lines), 20,
               "both tails to print B")
    for t in tails:
        t.popen.send_signal(signal.SIGTERM)
    outs = []
    for t, ln in zip(tails, lines):
        rc = t.popen.wait(10)
        ln.join(10)
        h.check(rc == 0, "tail exited %d after SIGTERM" % rc)
        outs.append([json.loads(x)["id"] for x in ln.lines if '"dup-' in x])
    err = tails[0].popen.stderr.read()
    h.check(outs[0] == ["dup-a", "dup-b"], "tail printed %r, expected A and B once" % outs[0])
    h.check(outs[1] == ["dup-a", "dup-a", "dup-a", "dup-b"],
            "tail --no-dedup printed %r, expected every copy" % outs[1])
    h.check("2 duplicates hidden" in err, "tail did not say it hid 2: %r" % err)
    h.check("hidden" not in tails[1].popen.stderr.read(), "tail --no-dedup says it hid some")


def log_figures(db_path):
    with sqlite3.connect("file:%s?mode=ro" % db_path, uri=True) as db:
        n = db.execute("SELECT count(*), coalesce(min(n), 0), coalesce(max(n), 0) "
                       "FROM events").fetchone()
        snap = db.execute("SELECT n, applied FROM snapshot").fetchone()
    return n, snap


def phase_bounded(env, fleet, agents, posters, bridge, total):
    """Snapshots every 500 events, 300 kept before the latest: the log
    stays bounded; --rebuild starts from the snapshot; --from-scratch
    builds what the log holds; --rebuild puts it all back."""
    fleet.proc.signal(signal.SIGTERM)
    h.check(fleet.proc.wait_exit(20) == 0, "fleet-state did not stop on SIGTERM")
    fleet.extra += ["--state.snapshot_every", "500", "--state.log_keep", "300"]
    fleet.start()
    more = 1200
    for p in posters:
        post_mixed(p, more)
    total += 2 * more
    h.wait_for(lambda: fleet.stats()["applied"] == total, 60,
               "fleet-state to apply %d events" % total)
    (count, first, last), snap = log_figures(fleet.db)
    st = fleet.stats()
    h.check(snap is not None and st["snapshot"] == snap[0], "no snapshot taken: %r" % (snap,))
    h.check(count == last - first + 1 == st["events"] and first == snap[0] - 300 + 1,
            "log %d events (%d..%d), %d in stats, snapshot at %d" %
            (count, first, last, st["events"], snap[0]))
    h.check(count <= 500 + 300 + 256, "the log holds %d events: not bounded" % count)
    h.check(snap[1] == total - (last - snap[0]), "the snapshot's checkpoint says %d applied, "
            "%d applied up to it" % (snap[1], total - (last - snap[0])))
    before = fleet.devices()
    want = project(ev for a in agents for ev in journal_events(env, a))
    h.check(before == want, "projection differs: %s" % diff(before, want))
    fleet.proc.signal(signal.SIGTERM)
    h.check(fleet.proc.wait_exit(20) == 0, "fleet-state did not stop on SIGTERM")
    with sqlite3.connect(fleet.db) as db:
        db.execute("DELETE FROM devices")
        db.execute("DELETE FROM device_counts")

    def rebuild(*flags):
        r = subprocess.run(fleet.argv("--rebuild", *flags), capture_output=True, text=True,
                           timeout=60)
        h.check(r.returncode == 0, "--rebuild %s exited %d: %s" % (flags, r.returncode, r.stderr))
        return r.stdout.strip()
    out = rebuild()
    h.check(out == "rebuilt from the snapshot at event %d: %d events applied after it" %
            (snap[0], last - snap[0]), "--rebuild printed %r" % out)
    fleet.start()
    h.check(fleet.devices() == before, "the projection rebuilt from the snapshot differs: %s" %
            diff(fleet.devices(), before))
    fleet.proc.signal(signal.SIGTERM)
    h.check(fleet.proc.wait_exit(20) == 0, "fleet-state did not stop on SIGTERM")
    out = rebuild("--from-scratch")
    h.check(out == "rebuilt: %d events applied (from scratch: the log's first %d events were "
            "trimmed, see state.log_keep)" % (count, first - 1), "--from-scratch printed %r" % out)
    fleet.start()
    partial = sum(n for d in fleet.devices() for n in d["counts"].values())
    h.check(partial == count, "from scratch: counts add up to %d, the log holds %d" %
            (partial, count))
    fleet.proc.signal(signal.SIGTERM)
    h.check(fleet.proc.wait_exit(20) == 0, "fleet-state did not stop on SIGTERM")
    rebuild()
    fleet.start()
    h.check(fleet.devices() == before, "the projection rebuilt again differs: %s" %
            diff(fleet.devices(), before))
    return total, count


def scenario(env):
    h.check(env.args.fleet, "this test needs --fleet (the fleet-state binary)")
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    agents = h.start_agents(env, edge.port, NODES)
    posters = [h.Poster(a.http_port) for a in agents]
    fleet = Fleet(env, cloud.port)
    fleet.start()
    tail, table = phase_initial(env, fleet, agents, posters, cloud)
    phase_bad_input(fleet, cloud)
    st, lost = phase_kill(env, fleet, agents, posters, bridge)
    check_metrics(fleet, st["applied"])
    check_tail(tail, table)
    phase_auto_repair(env, fleet, agents)
    phase_repair(env, fleet, agents, 0)
    total = 2 * (PER_AGENT_1 + PER_AGENT_2)
    ndev = phase_rebuild(env, fleet, total)
    total, kept = phase_bounded(env, fleet, agents, posters, bridge, total)
    phase_tail_dedup(env, cloud)
    return ("%d events: %d applied once, %d duplicates dropped, %d lost at the MQTT hop "
            "(counted missing, then fetched from the agents), %d invalid; %d devices "
            "rebuilt identically; log bounded to %d events by snapshots; tail hid duplicates" %
            (total, st["applied"], st["duplicates"], lost, st["invalid"], ndev, kept))


if __name__ == "__main__":
    h.main(scenario, "fleet-state over MQTT: projection, kill, bad input, rebuild, tail")
