#!/usr/bin/env python3
"""flash.py - what the journals cost a flash card: bytes written per event,
commits and fsyncs per second, arrival-to-commit latency, and memory (RSS and
USS) of the agent, the bridge and fleet-state. bench/flash.sh runs it; see
bench/README.md ("Flash and memory").

    flash.py --agent PATH --cli PATH --bridge PATH --fw PATH --fleet PATH
             [--seconds S] [--only NAME,...] [--agent-arg ARG]... [--budget S]

Each scenario starts a whole site afresh in a temporary folder: an edge and a
cloud mosquitto, the real edge-agent, cloud-bridge (edge -> cloud) and
fleet-state (an MQTT consumer of the cloud broker, its store with
state.sync=full), each with its default settings but for ports and paths.
Then the load runs for a warm-up of 5 s and a measured window of --seconds:
  dev20    firmware-host: 20 devices at 1 record/s on a pty (link.serial)
  dev200   firmware-host: 200 devices at 1 record/s
  http1    HTTP, single events at 10/s: 10 producers, each one event a
           second on its own keep-alive connection (a gateway with a few
           devices or apps at 1 Hz)
  http100  HTTP, batches of 100 at 10 POSTs/s (1,000 events/s)
For the window, per process: write_bytes of /proc/PID/io per event it
journaled (the agent: events committed; the bridge: events in its inbox;
fleet-state: events applied), over the mean size of the agent's stored
events ("x"); the growth of the database file and the size of its WAL;
commits/s (the journal's counter); fsyncs/s (perf stat on the fsync and
fdatasync tracepoints, "n/a" without perf); the journal's arrival-to-commit
time, p50 and p99, from its edgespool_journal_commit_wait_seconds histogram
(and, for HTTP, the producers' own POST round trips); RSS and USS
(Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) idle, before the
load, and the largest under it; threads. Targets are marked met or MISSED.
Exits 1 only if something broke.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import harness as h  # noqa: E402
import walstat  # noqa: E402

SCENARIOS = {
    "dev20": {"kind": "dev", "devices": 20, "rate": 1},
    "dev200": {"kind": "dev", "devices": 200, "rate": 1},
    "http1": {"kind": "http", "batch": 1, "producers": 10, "posts_per_s": 1},
    "http100": {"kind": "http", "batch": 100, "producers": 1, "posts_per_s": 10},
}
# Bytes written per event, in events' sizes, at most (the agent's; issue 17).
TARGETS = {"dev20": 4.0, "http100": 2.0, "http1": 8.0}
# The agent's own memory (USS), bytes at most; the bridge's the same.
USS_IDLE_MAX, USS_LOAD_MAX = 1.5e6, 4e6
WARMUP_S = 5
PAD = "x" * 42


# ---- /proc ---------------------------------------------------------------------


def proc_io(pid, key="write_bytes"):
    """A field of /proc/PID/io, or 0."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == key:
                    return int(v)
    except OSError:
        pass
    return 0


def memory(pid):
    """(RSS, USS, threads) in bytes, bytes, count; zeros if it is gone."""
    rss = uss = threads = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Rss":
                    rss = int(v.split()[0]) * 1024
                elif k in ("Private_Clean", "Private_Dirty"):
                    uss += int(v.split()[0]) * 1024
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    return rss, uss, threads


class MemSampler(threading.Thread):
    """Samples memory() of each pid every 250 ms; keeps the largest."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = {p: (0, 0, 0) for p in pids}
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.25):
            for p in self.pids:
                m = memory(p)
                self.peak[p] = tuple(max(a, b) for a, b in zip(self.peak[p], m))


def file_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


# ---- fsyncs: perf stat on the tracepoints ------------------------------------


def perf_ok():
    """True when perf can count the fsync tracepoints here."""
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_fdatasync", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "not supported" not in r.stderr


class SyncCounter:
    """perf stat counting fsync + fdatasync of one pid until stop()."""

    def __init__(self, env, pid, name):
        self.out = env.path("perf-%s.csv" % name)
        self.p = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", self.out, "-e",
             "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "-p", str(pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(10)
        n = 0
        with open(self.out) as f:
            for line in f:
                cols = line.split(",")
                if len(cols) > 2 and cols[2].startswith("syscalls:") and cols[0].isdigit():
                    n += int(cols[0])
        return n


# ---- /metrics ----------------------------------------------------------------------


def metrics(port):
    """GET /metrics as {name{labels}: value}; {} if it fails."""
    try:
        status, body = h.http_call(port, "GET", "/metrics")
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def histogram_delta(before, after, name):
    """[(le, count)] of the histogram `name` over the window."""
    pat = re.compile(re.escape(name) + r'_bucket\{le="([^"]+)"\}$')
    buckets = []
    for key, v in after.items():
        m = pat.match(key)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((le, v - before.get(key, 0.0)))
    return sorted(buckets)


def quantile(buckets, q):
    """The q-quantile of cumulative buckets [(le, count)], interpolated
    linearly inside its bucket; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    want, lo, prev = q * buckets[-1][1], 0.0, 0.0
    for le, c in buckets:
        if c >= want:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * ((want - prev) / (c - prev) if c > prev else 1.0)
        lo, prev = le, c
    return lo


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# ---- the site ----------------------------------------------------------------------


class Site:
    """Brokers, agent, bridge, fleet-state: everything at its defaults but
    for ports and paths (the agent's extra settings come from --agent-arg)."""

    def __init__(self, env, args, sc):
        self.env, self.args, self.sc = env, args, sc
        self.edge = env.broker(name="edge")
        self.cloud = env.broker(name="cloud")
        self.fleet = None
        extra = ["--status.interval_s", "10"]
        if sc["kind"] == "dev":
            self.tty = env.path("fleet.tty")
            self.fleet = h.Fleet(env, "pty:" + self.tty, sc["devices"], sc["rate"],
                                 extra=["--resend-ms", "1000"])
            self.fleet.start()
            extra += ["--link.serial", self.tty]
        self.agent = env.agent(self.edge.port, extra=extra + args.agent_arg)
        self.agent.argv = self._agent_argv
        self.bridge = env.bridge(self.edge.port, self.cloud.port,
                                 extra=["--gap.grace_ms", "500", "--gap.retry_ms", "5000"] +
                                 args.bridge_arg)
        self.fs_port = h.free_port()
        self.fs_db = env.path("fleet-state.db")

    def _agent_argv(self):
        a = self.agent
        return [self.env.args.agent, "--node.id", a.node, "--node.site", "site1",
                "--mqtt.url", "mqtt://127.0.0.1:%d" % a.broker_port,
                "--journal.path", a.db, "--http.listen", "127.0.0.1:%d" % a.http_port] + a.extra

    def start(self):
        self.agent.start(timeout=30)
        self.bridge.start(timeout=30)
        self.fs = self.env.spawn("fleet-state", [
            self.args.fleet, "--node.id", "bench-fleet",
            "--source.mqtt", "mqtt://127.0.0.1:%d" % self.cloud.port,
            "--source.topic", "edgespool/+/+/ev/#", "--state.path", self.fs_db,
            "--http.listen", "127.0.0.1:%d" % self.fs_port])
        h.wait_for(lambda: self.fs.check_alive() or self._fs_stats().get("connected_to"),
                   30, "fleet-state to connect")
        h.wait_for(lambda: self.agent.status()["broker"]["state"] == "connected", 30,
                   "the agent to connect")
        self.procs = {"agent": (self.agent.proc.popen.pid, self.agent.http_port),
                      "bridge": (self.bridge.proc.popen.pid, self.bridge.http_port),
                      "fleet-state": (self.fs.popen.pid, self.fs_port)}

    def _fs_stats(self):
        try:
            status, body = h.http_call(self.fs_port, "GET", "/api/stats")
            return json.loads(body) if status == 200 else {}
        except (OSError, http.client.HTTPException, ValueError):
            return {}

    def counts(self):
        """Events each process journaled so far, and commits (None: unknown)."""
        a = self.agent.status()["journal"]
        b = metrics(self.bridge.http_port)
        f = self._fs_stats()
        return {"agent": (a["appended"], a["commits"]),
                "bridge": (b.get("edgespool_events_journaled_total", 0),
                           b.get("edgespool_journal_commits_total")),
                "fleet-state": (f.get("applied", 0), None)}

    def files(self):
        return {"agent": self.agent.db, "bridge": self.bridge.db, "fleet-state": self.fs_db}


# ---- the load ----------------------------------------------------------------------


class HttpProducer(threading.Thread):
    """Posts `batch` events posts_per_s times a second on one keep-alive
    connection until stopped; keeps each POST's round trip."""

    def __init__(self, port, batch, posts_per_s, phase, stop, tag):
        super().__init__(daemon=True)
        self.port, self.batch, self.period = port, batch, 1.0 / posts_per_s
        self.phase, self.stop_ev, self.tag = phase, stop, tag
        self.rtts, self.error, self.n, self.conn = [], None, 0, None

    def events(self):
        evs = [{"type": "sensor.reading", "subject": "dev-%s" % self.tag,
                "data": {"n": self.n + k, "temp": 21.5, "humidity": 40, "unit": "C",
                         "pad": PAD}} for k in range(self.batch)]
        self.n += self.batch
        return json.dumps(evs if self.batch > 1 else evs[0]).encode()

    def run(self):
        t = time.monotonic() + self.phase
        try:
            while not self.stop_ev.is_set():
                time.sleep(max(0.0, t - time.monotonic()))
                self.post_one()
                t += self.period
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = e

    def post_one(self):
        """One POST: single events on a connection of their own (as a device
        posting once a second does; keep-alive connections would each hold
        one of the agent's HTTP workers), batches on a kept one."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = self.events()
        t0 = time.monotonic()
        self.conn.request("POST", "/api/events", body=body, headers={
            "Content-Type": "application/json",
            "Connection": "close" if self.batch == 1 else "keep-alive"})
        resp = self.conn.getresponse()
        resp.read()
        h.check(resp.status == 202, "POST answered %d" % resp.status)
        self.rtts.append(time.monotonic() - t0)
        if self.batch == 1 or resp.will_close:
            self.conn.close()
            self.conn = None


def stored_event_bytes(db):
    """The mean size of the events in the agent's journal, as stored."""
    with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
        v = c.execute("SELECT avg(length(body)) FROM events").fetchone()[0]
    return v or 0.0


# ---- one scenario ----------------------------------------------------------------


CHECKPOINT = r"""
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
c.close()
for line in open("/proc/self/io"):
    if line.startswith("write_bytes:"):
        print(line.split()[1])
"""


def checkpoint(path):
    """Folds the WAL of the database at path into it from a process of our
    own (a PASSIVE checkpoint, what its owner does once its WAL is half
    full) and returns the bytes that process wrote: what the owner still
    owed the flash for what its WAL holds. Counted at both ends of the
    window, a window too short for the owner's own checkpoints is charged
    its share of them."""
    r = subprocess.run([sys.executable, "-c", CHECKPOINT, path], capture_output=True,
                       text=True, timeout=60)
    h.check(r.returncode == 0, "checkpoint of %s: %s" % (path, r.stderr))
    return int(r.stdout.split()[-1])


def snapshot(site):
    m = {name: metrics(port) for name, (pid, port) in site.procs.items()}
    return {"io": {n: proc_io(pid) for n, (pid, _) in site.procs.items()},
            "counts": site.counts(), "metrics": m, "t": time.monotonic(),
            "sizes": {n: (file_size(p), file_size(p + "-wal"))
                      for n, p in site.files().items()}}


def run_scenario(env, args, name):
    sc = SCENARIOS[name]
    site = Site(env, args, sc)
    site.start()
    h.hold(3, site.agent.proc.check_alive)
    idle = {n: memory(pid) for n, (pid, _) in site.procs.items()}
    stop, producers = threading.Event(), []
    if sc["kind"] == "http":
        for k in range(sc["producers"]):
            p = HttpProducer(site.agent.http_port, sc["batch"], sc["posts_per_s"],
                             k / sc["producers"] / sc["posts_per_s"], stop, "%d" % k)
            p.start()
            producers.append(p)
    h.hold(WARMUP_S, site.agent.proc.check_alive)
    for p in producers:
        p.rtts.clear()
    sampler = MemSampler([pid for pid, _ in site.procs.values()])
    sampler.start()
    syncs = ({n: SyncCounter(env, pid, n) for n, (pid, _) in site.procs.items()}
             if args.perf else {})
    for path in site.files().values():
        checkpoint(path)
    wal = walstat.Watcher(site.agent.db)
    wal.start()
    a = snapshot(site)
    h.hold(args.seconds, lambda: [p.check_alive() for p in
                                  (site.agent.proc, site.bridge.proc, site.fs)])
    b = snapshot(site)
    wal.stop()
    frames, wal_commits = walstat.breakdown(site.agent.db, wal.follower)
    owed = {n: checkpoint(path) for n, path in site.files().items()}
    nsync = {n: s.stop() for n, s in syncs.items()}
    sampler.stop_ev.set()
    stop.set()
    for p in producers:
        p.join(30)
        if p.error:
            raise h.TestFailure("producer: %s" % p.error)
    rtts = [r for p in producers for r in p.rtts]
    ev_bytes = stored_event_bytes(site.agent.db)
    dt = b["t"] - a["t"]
    rows = []
    for n, (pid, _) in site.procs.items():
        ev = b["counts"][n][0] - a["counts"][n][0]
        c0, c1 = a["counts"][n][1], b["counts"][n][1]
        wb = b["io"][n] - a["io"][n] + owed[n]
        hist = histogram_delta(a["metrics"][n], b["metrics"][n],
                               "edgespool_journal_commit_wait_seconds")
        rows.append({
            "process": n, "events": int(ev), "events_per_s": ev / dt,
            "write_bytes": wb, "bytes_per_event": wb / ev if ev else None,
            "x": wb / ev / ev_bytes if ev and ev_bytes else None,
            "owed_per_event": owed[n] / ev if ev else None,
            "db_growth_per_event": (file_size(site.files()[n]) - a["sizes"][n][0]) / ev
            if ev else None,
            "wal_bytes": b["sizes"][n][1],
            "commits_per_s": (c1 - c0) / dt if c0 is not None and c1 is not None else None,
            "fsyncs_per_s": nsync[n] / dt if n in nsync else None,
            "commit_p50_ms": q_ms(hist, 0.5), "commit_p99_ms": q_ms(hist, 0.99),
            "rss_idle": idle[n][0], "uss_idle": idle[n][1],
            "rss_load": sampler.peak[pid][0], "uss_load": sampler.peak[pid][1],
            "threads": sampler.peak[pid][2]})
    return {"scenario": name, "seconds": dt, "event_bytes": ev_bytes, "rows": rows,
            "post_p50_ms": ms(pct(rtts, 0.5)), "post_p99_ms": ms(pct(rtts, 0.99)),
            "posts": len(rtts), "wal_frames": frames, "wal_commits": wal_commits,
            "frame_bytes": wal.follower.page + walstat.FRAME_HEADER}


def q_ms(hist, q):
    v = quantile(hist, q)
    return None if v is None else v * 1000


def ms(v):
    return None if v is None else v * 1000


# ---- the report -------------------------------------------------------------------


def fmt(v, spec="%.0f"):
    return "n/a" if v is None else spec % v


def verdict(ok):
    return "met" if ok else "MISSED"


def report(res):
    name = res["scenario"]
    print("\n== %s: %.0f s measured, events of %.0f B as stored by the agent" %
          (name, res["seconds"], res["event_bytes"]))
    if res["posts"]:
        print("   POST round trip (arrival to 202, the producers' clock): p50 %s ms, p99 %s ms "
              "(%d POSTs)" % (fmt(res["post_p50_ms"], "%.1f"), fmt(res["post_p99_ms"], "%.1f"),
                              res["posts"]))
    print("   %-11s %8s %8s %6s %7s %7s %8s %8s %7s %8s %8s %6s %6s %6s %6s %3s" %
          ("process", "events/s", "B/event", "x", "ckpt/ev", "db B/ev", "WAL B", "commit/s",
           "fsync/s", "commit50", "commit99", "RSS", "USS", "RSS*", "USS*", "thr"))
    for r in res["rows"]:
        print("   %-11s %8.1f %8s %6s %7s %7s %8d %8s %7s %8s %8s %6.2f %6.2f %6.2f %6.2f %3d" % (
            r["process"], r["events_per_s"], fmt(r["bytes_per_event"]),
            fmt(r["x"], "%.1fx"), fmt(r["owed_per_event"]), fmt(r["db_growth_per_event"]),
            r["wal_bytes"],
            fmt(r["commits_per_s"], "%.1f"), fmt(r["fsyncs_per_s"], "%.1f"),
            fmt(r["commit_p50_ms"], "%.0fms"), fmt(r["commit_p99_ms"], "%.0fms"),
            r["rss_idle"] / 1e6, r["uss_idle"] / 1e6, r["rss_load"] / 1e6,
            r["uss_load"] / 1e6, r["threads"]))
    print("   (RSS, USS: MB idle, before the load; RSS*, USS*: the largest under it)")
    if res["wal_frames"]:
        print("   agent WAL frames (%d B) a commit, by b-tree (%d commits seen): %s; %.1f in all" % (
            res["frame_bytes"], res["wal_commits"],
            ", ".join("%s %.2f" % kv for kv in res["wal_frames"]),
            sum(v for _, v in res["wal_frames"])))
    verdicts = []
    agent = res["rows"][0]
    if name in TARGETS and agent["x"] is not None:
        ok = agent["x"] <= TARGETS[name]
        verdicts.append("agent bytes written per event %.1fx <= %.0fx: %s" %
                        (agent["x"], TARGETS[name], verdict(ok)))
    for r in res["rows"][:2]:
        verdicts.append("%s USS idle %.2f MB <= %.1f MB: %s; under load %.2f MB <= %.0f MB: %s" %
                        (r["process"], r["uss_idle"] / 1e6, USS_IDLE_MAX / 1e6,
                         verdict(r["uss_idle"] <= USS_IDLE_MAX), r["uss_load"] / 1e6,
                         USS_LOAD_MAX / 1e6, verdict(r["uss_load"] <= USS_LOAD_MAX)))
    for v in verdicts:
        print("   target: " + v)
    sys.stdout.flush()


def on_alarm(signum, frame):
    raise h.TestFailure("out of its time budget" if signum == signal.SIGALRM
                        else "stopped by signal %d" % signum)


def main():
    p = argparse.ArgumentParser(description="flash wear and memory of the journals")
    for prog in ("agent", "cli", "bridge", "fw", "fleet"):
        p.add_argument("--" + prog, required=True)
    p.add_argument("--seconds", type=int, default=60, help="the measured window")
    p.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    p.add_argument("--agent-arg", action="append", default=[],
                   help="an extra agent argument (repeat: --agent-arg=--journal.sync ...)")
    p.add_argument("--bridge-arg", action="append", default=[])
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--budget", type=int, default=1800)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    args.seed = None
    args.perf = perf_ok()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_alarm)  # raise, so that everything started is stopped
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.budget)
    print("flash: %s; fsyncs counted %s" %
          (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "with perf" if args.perf else "not (perf unavailable)"))
    results = []
    for name in args.only.split(","):
        env = h.Env(args)
        try:
            res = run_scenario(env, args, name)
            results.append(res)
            report(res)
        except Exception as e:  # noqa: BLE001 - reported, with the logs
            print("flash: %s: FAIL: %s" % (name, e))
            traceback.print_exc(file=sys.stdout)
            env.dump_logs()
            return 1
        finally:
            env.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    signal.alarm(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
