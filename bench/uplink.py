#!/usr/bin/env python3
"""uplink.py - the work of bench/uplink.sh: ours (cloud-bridge, cloud.format
batch) against mosquitto's own bridge over a shaped link, one after the
other, each with fresh brokers, programs and journals.

Runs inside the site network namespace (uplink.sh makes it, the cloud one
and the shaped veth between them, and removes them). Site programs are
started here directly; the cloud broker and the subscriber through
`ip netns exec CLOUD_NS`. Per set-up:

  1. bytes: N readings from the firmware-host fleet (8 devices, on the
     agent's link.listen socket) with the link up; the veth's tx+rx bytes
     from before the first reading until the cloud subscriber has them all,
     per event.
  2. backlog: the link down (ip link set IF down), B readings from the
     fleet, journaled by the agent and queued by the bridge; the link up,
     and the time until the subscriber has every one of them.
  3. alarms: during that drain, K alarm.raised events POSTed to the agent,
     one every 0.5 s from the restore; per alarm, its POST to its arrival.

The subscriber is `edgespool sub` (it reads per-event and batch topics) with
its stdout on a pty: C's stdio then writes each line at once (to a pipe it
would flush every 200 ms), and a reader thread stamps every line when it
reads it.

Exit 0 with the report whatever the figures; 1 when something broke (a
program failed, a timeout passed, an event never arrived).
"""

import argparse
import http.client
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty

CLOUD_IP = "10.77.0.2"
# The cloud namespace is fresh and holds only what this script starts, so
# a fixed port there cannot collide; site ports are picked free.
CLOUD_PORT = 1883
SITE, NODE = "demo", "gw-1"
DEVICES = 8          # the demo's fleet (scripts/run.sh)
FLEET_RATE = 250     # readings/s per device: 2,000/s, so a backlog builds in seconds
# Records in flight per device: the agent acknowledges a record once its
# journal committed it (group commits that linger up to 250 ms at low
# rates), so the fleet's default of 16 holds 8 devices to ~600 readings/s.
FLEET_WINDOW = 64
ALARM_EVERY_S = 0.5


class Broken(Exception):
    """Something broke: the run ends with exit status 1."""


def log(msg):
    print("uplink: " + msg, file=sys.stderr, flush=True)


def wait_until(what, cond, timeout, procs=None):
    """Polls cond() every 20 ms until true; Broken after timeout seconds or
    when one of procs has died."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise Broken("timed out (%.0f s) waiting for %s" % (timeout, what))
        if procs:
            procs.check()
        time.sleep(0.02)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pct(values, q):
    """Nearest-rank percentile of values (q in 0..100)."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(1, -(-len(v) * q // 100))
    return v[int(k) - 1]


# ---- processes -------------------------------------------------------------

class Procs:
    """The programs of one set-up: each with its log file, checked alive
    while waiting, stopped with SIGTERM (and required to exit 0)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.running = {}  # name -> Popen
        self.daemons = set()  # names that must stay up until stopped

    def start(self, name, argv, daemon=True, **kw):
        logf = open(os.path.join(self.tmp, name + ".log"), "ab")
        kw.setdefault("stdout", logf)
        p = subprocess.Popen(argv, stderr=logf, stdin=subprocess.DEVNULL, **kw)
        logf.close()
        self.running[name] = p
        if daemon:
            self.daemons.add(name)
        return p

    def check(self):
        for name in self.daemons:
            rc = self.running[name].poll()
            if rc is not None:
                raise Broken("%s exited with status %s" % (name, rc))

    def wait_exit(self, name, timeout):
        """A non-daemon run to its end: its exit status must be 0."""
        p = self.running[name]
        wait_until(name + " to finish", lambda: p.poll() is not None, timeout, self)
        del self.running[name]
        if p.returncode != 0:
            raise Broken("%s exited with status %s" % (name, p.returncode))

    def stop(self, name, must=True):
        p = self.running.pop(name, None)
        self.daemons.discard(name)
        if p is None or p.poll() is not None:
            if must and p is not None:
                raise Broken("%s had exited (status %s)" % (name, p.returncode))
            return
        p.terminate()
        try:
            rc = p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            if must:
                raise Broken("%s did not stop within 30 s of SIGTERM" % name)
            return
        # `ip netns exec` passes the program's status on.
        if must and rc != 0:
            raise Broken("%s exited with status %s on SIGTERM" % (name, rc))

    def stop_all(self):
        for name in list(self.running):
            self.stop(name, must=False)

    def tails(self):
        for f in sorted(os.listdir(self.tmp)):
            path = os.path.join(self.tmp, f)
            if f.endswith(".log") and os.path.getsize(path):
                print("---- tail of %s ----" % f, file=sys.stderr)
                with open(path, errors="replace") as fh:
                    sys.stderr.write("".join(fh.readlines()[-15:]))


# ---- the cloud subscriber, read as it writes ---------------------------------

class Sub:
    """`edgespool sub` in the cloud namespace, its stdout on a pty; a thread
    stamps each NDJSON line with the wall clock as it reads it."""

    def __init__(self, procs, a, tmp, tag):
        self.lock = threading.Lock()
        self.first = {}     # event id -> first arrival (time.time())
        self.copies = {}    # event id -> copies received
        self.by_seq = {}    # node sequence -> event id
        self.lines = 0
        self.stats = os.path.join(tmp, "sub-stats.json")
        # Every arrival, "time seq", for a look afterwards (UPLINK_KEEP=1).
        self.trace = open(os.path.join(tmp, "arrivals.txt"), "w")
        master, slave = pty.openpty()
        tty.setraw(slave)   # no \r added to \n, no echo
        argv = ["ip", "netns", "exec", a.cloud_ns, a.cli, "sub",
                "--mqtt.url", "mqtt://%s:%d" % (CLOUD_IP, CLOUD_PORT),
                "--mqtt.version", "5", "--mqtt.client_id", "es-uplink-sub-" + tag,
                "--sub.out", "-", "--sub.stats", self.stats, "--log.level", "warn"]
        procs.start("sub", argv, stdout=slave)
        os.close(slave)
        self.master = master
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the subscriber is gone
                break
            if not chunk:
                break
            now = time.time()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self._line(line, now)
        os.close(self.master)
        self.trace.close()

    def _line(self, line, now):
        try:
            o = json.loads(line)
            eid, seq = o["id"], int(o["seq"])
        except (ValueError, KeyError, TypeError):
            return  # not an event line
        with self.lock:
            self.lines += 1
            self.copies[eid] = self.copies.get(eid, 0) + 1
            self.first.setdefault(eid, now)
            self.by_seq.setdefault(seq, eid)
        self.trace.write("%.3f %d\n" % (now, seq))

    def subscribed(self):
        try:
            with open(self.stats) as f:
                return json.load(f).get("subscribed") is True
        except (OSError, ValueError):
            return False

    def missing(self, lo, hi):
        """Node sequences lo..hi not received yet."""
        with self.lock:
            return [s for s in range(lo, hi + 1) if s not in self.by_seq]

    def has(self, lo, hi):
        return not self.missing(lo, hi)

    def arrivals(self, lo, hi):
        """First-arrival times of sequences lo..hi (all received)."""
        with self.lock:
            return [self.first[self.by_seq[s]] for s in range(lo, hi + 1)]

    def arrival_of(self, eid):
        with self.lock:
            return self.first.get(eid)

    def duplicates(self):
        with self.lock:
            return sum(c - 1 for c in self.copies.values())


# ---- HTTP to the agent and the bridge ----------------------------------------

def http_json(port, method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdr = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=None if body is None else json.dumps(body), headers=hdr)
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)
    finally:
        c.close()


def healthy(port):
    try:
        return http_json(port, "GET", "/healthz", timeout=2)[0] == 200
    except (OSError, http.client.HTTPException, ValueError):
        return False


def post_event(port, ev):
    """POSTs one short-form event; returns its id and sequence (202 or Broken)."""
    st, body = http_json(port, "POST", "/api/events", ev)
    if st != 202:
        raise Broken("POST /api/events answered %s: %s" % (st, body))
    e = body["events"][0]
    return e["id"], int(e["sequence"])


def agent_journal(port):
    st, body = http_json(port, "GET", "/api/status")
    if st != 200:
        raise Broken("the agent's /api/status answered %s" % st)
    return body["journal"]


def bridge_inbox(port):
    st, body = http_json(port, "GET", "/api/status")
    if st != 200:
        raise Broken("cloud-bridge's /api/status answered %s" % st)
    return body["inbox"]


def alarm(i):
    """An alarm.raised shaped like the fleet's (edge-agent/link_events.c)."""
    dev = "dev-%d" % (1 + i % DEVICES)
    return {"type": "alarm.raised", "subject": dev,
            "data": {"device": dev, "link": "bench", "seq": i + 1, "kind": "temperature",
                     "celsius": 81.5, "alarm": True, "uptime_ms": 3600000 + i}}


# ---- the link ------------------------------------------------------------------

class Link:
    def __init__(self, ifname):
        self.ifname = ifname

    def counters(self):
        d = "/sys/class/net/%s/statistics/" % self.ifname
        total = 0
        for k in ("tx_bytes", "rx_bytes"):
            with open(d + k) as f:
                total += int(f.read())
        return total

    def set(self, state):
        subprocess.run(["ip", "link", "set", "dev", self.ifname, state], check=True)


# ---- one set-up ------------------------------------------------------------------

def broker_conf(path, listen, port, bridge):
    lines = ["listener %d %s" % (port, listen), "allow_anonymous true", "persistence false",
             # The default of 1,000 drops QoS 1 messages beyond it, silently.
             "max_queued_messages 1000000", "log_dest stderr"]
    if os.geteuid() == 0:
        lines.append("user root")
    if bridge:
        # mosquitto's own bridge, as in bridge.sh, with room to queue the whole
        # backlog and a window as wide as it likes (it is not held back).
        lines += ["max_inflight_messages 1000",
                  "connection cloud", "address %s:%d" % (CLOUD_IP, CLOUD_PORT),
                  "remote_clientid es-uplink-mosquitto-bridge",
                  "bridge_protocol_version mqttv311", "try_private true",
                  "cleansession false", "start_type automatic", "topic edgespool/# out 1"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class Setup:
    def __init__(self, a, kind, root_tmp):
        self.a, self.kind = a, kind
        self.tmp = tempfile.mkdtemp(prefix=kind + ".", dir=root_tmp)
        self.procs = Procs(self.tmp)
        self.link = Link(a.site_if)
        self.fleet_runs = 0

    def start(self):
        a, tmp, P = self.a, self.tmp, self.procs
        conf = os.path.join(tmp, "cloud.conf")
        broker_conf(conf, CLOUD_IP, CLOUD_PORT, False)
        P.start("mosquitto-cloud", ["ip", "netns", "exec", a.cloud_ns, a.mosquitto, "-c", conf])
        wait_until("the cloud broker", lambda: port_open(CLOUD_IP, CLOUD_PORT), 20, P)
        self.edge_port = free_port()
        conf = os.path.join(tmp, "edge.conf")
        broker_conf(conf, "127.0.0.1", self.edge_port, self.kind == "mosquitto")
        P.start("mosquitto-edge", [a.mosquitto, "-c", conf])
        wait_until("the edge broker", lambda: port_open("127.0.0.1", self.edge_port), 20, P)
        if self.kind == "ours":
            self.bridge_port = free_port()
            P.start("cloud-bridge", [
                a.bridge, "--node.id", "bridge-1", "--node.site", SITE,
                "--edge.url", "mqtt://127.0.0.1:%d" % self.edge_port,
                "--cloud.url", "mqtt://%s:%d" % (CLOUD_IP, CLOUD_PORT),
                "--cloud.version", "5", "--cloud.format", "batch",
                "--journal.path", os.path.join(tmp, "bridge.db"),
                "--http.listen", "127.0.0.1:%d" % self.bridge_port,
                "--log.level", os.environ.get("UPLINK_LOG_LEVEL", "warn")])
            wait_until("cloud-bridge's /healthz", lambda: healthy(self.bridge_port), 30, P)
        self.sub = Sub(P, a, tmp, self.kind)
        wait_until("the subscriber's subscription", self.sub.subscribed, 30, P)
        self.agent_port = free_port()
        self.sock = os.path.join(tmp, "link.sock")
        P.start("edge-agent", [
            a.agent, "--node.site", SITE, "--node.id", NODE,
            "--mqtt.url", "mqtt://127.0.0.1:%d" % self.edge_port,
            "--journal.path", os.path.join(tmp, "agent.db"),
            "--http.listen", "127.0.0.1:%d" % self.agent_port,
            "--link.listen", "unix:" + self.sock,
            "--log.level", os.environ.get("UPLINK_LOG_LEVEL", "warn")])
        wait_until("the agent's /healthz", lambda: healthy(self.agent_port), 30, P)
        # One event end to end: the bridge's subscriptions and its cloud
        # connection (either bridge's) are up before anything is measured.
        _, seq = post_event(self.agent_port, alarm(0) | {"type": "bench.probe"})
        wait_until("a probe event through the bridge", lambda: self.sub.has(seq, seq), 60, P)

    def latest(self):
        return int(agent_journal(self.agent_port)["latest_seq"])

    def fleet(self, per_device):
        """The firmware-host fleet sends per_device readings from each device
        and exits once the agent acknowledged them all (journaled)."""
        self.fleet_runs += 1
        name = "fleet-%d" % self.fleet_runs
        self.procs.start(name, [
            self.a.fw, "--devices", str(DEVICES), "--rate", str(FLEET_RATE),
            "--count", str(per_device), "--window", str(FLEET_WINDOW), "--timeout", "300",
            "--seed", str(self.fleet_runs),
            "--link", "unix:" + self.sock, "--state", os.path.join(self.tmp, "fw.state")],
            daemon=False)
        self.procs.wait_exit(name, 600)

    def measure_bytes(self, n):
        P = self.procs
        s0, b0, t0 = self.latest(), self.link.counters(), time.time()
        self.fleet(n // DEVICES)
        s1 = self.latest()
        wait_until("the readings at the cloud", lambda: self.sub.has(s0 + 1, s1), 600, P)
        b1, t1 = self.link.counters(), max(self.sub.arrivals(s0 + 1, s1))
        return {"events": s1 - s0, "bytes": b1 - b0, "live_rate": (s1 - s0) / (t1 - t0)}

    def backlog(self, n):
        """The link down, n readings journaled and queued behind it."""
        P = self.procs
        s0 = self.latest()
        self.t_down = time.time()
        self.link.set("down")
        self.fleet(n // DEVICES)
        s1 = self.latest()
        wait_until("the agent to hand the backlog to the edge broker",
                   lambda: agent_journal(self.agent_port)["pending"] == 0, 120, P)
        if self.kind == "ours":
            # The bridge's inbox holds every event (the probe's too).
            wait_until("cloud-bridge to journal the backlog",
                       lambda: bridge_inbox(self.bridge_port)["journaled"] >= s1, 120, P)
        return s0, s1

    def drain(self, s0, s1, alarms):
        """The link up; alarms posted during the drain; waits for them all."""
        P = self.procs
        posted = []  # (id, POST time)
        t_up = time.time()
        self.link.set("up")
        with open(os.path.join(self.tmp, "link-up.txt"), "w") as f:
            f.write("%.3f %d %d\n" % (t_up, s0, s1))
        for i in range(alarms):
            # Pacing the posts, not waiting for anything.
            due = t_up + ALARM_EVERY_S * (i + 1)
            while time.time() < due:
                time.sleep(min(0.01, max(0.0, due - time.time())))
                P.check()
            t = time.time()
            eid, _ = post_event(self.agent_port, alarm(i))
            posted.append((eid, t))
        last = self.latest()
        limit = 120 + 0.05 * (s1 - s0)  # ~20 s a 1,000 events for mosquitto, with room
        try:
            wait_until("every event at the cloud", lambda: self.sub.has(s0 + 1, last), limit, P)
        except Broken:
            miss = self.sub.missing(s0 + 1, last)
            raise Broken("%d events never reached the cloud subscriber within %.0f s "
                         "(sequences %s...)" % (len(miss), limit, miss[:5]))
        arr = self.sub.arrivals(s0 + 1, s1)
        lat = [self.sub.arrival_of(eid) - t for eid, t in posted]
        return {"events": s1 - s0, "outage": t_up - self.t_down,
                "first": min(arr) - t_up, "done": max(arr) - t_up,
                "rate": (s1 - s0) / (max(arr) - t_up), "alarms": lat,
                "alarm_at": [self.sub.arrival_of(eid) - t_up for eid, _ in posted]}

    def finish(self):
        """Every sequence the agent journaled arrived; stops cleanly."""
        last = self.latest()
        miss = self.sub.missing(1, last)
        if miss:
            raise Broken("%d events missing at the cloud: %s..." % (len(miss), miss[:5]))
        dups = self.sub.duplicates()
        for name in ("edge-agent", "cloud-bridge", "sub", "mosquitto-edge", "mosquitto-cloud"):
            self.procs.stop(name, must=name in self.procs.running)
        return {"duplicates": dups, "journaled": last}


def run_setup(a, kind, root_tmp):
    s = Setup(a, kind, root_tmp)
    try:
        log("%s: starting brokers, bridge, subscriber, agent" % kind)
        s.start()
        log("%s: bytes on the wire, %d readings" % (kind, a.n))
        r = {"bytes": s.measure_bytes(a.n)}
        log("%s: link down, backlog of %d readings" % (kind, a.backlog))
        s0, s1 = s.backlog(a.backlog)
        log("%s: link up, draining, %d alarms" % (kind, a.alarms))
        r["drain"] = s.drain(s0, s1, a.alarms)
        r.update(s.finish())
        return r
    except Broken:
        s.procs.tails()
        raise
    finally:
        s.link.set("up")
        s.procs.stop_all()


# ---- the report ----------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "MISSED"


def row(label, ours="", mosq="", ratio="", note=""):
    print("  %-46s %10s %10s %9s   %s" % (label, ours, mosq, ratio, note))


def report(a, res):
    o, m = res["ours"], res["mosquitto"]
    ver = subprocess.run([a.mosquitto, "-h"], capture_output=True, text=True).stdout
    ver = next((ln.split()[-1] for ln in ver.splitlines() if "version" in ln), "?")
    print()
    print("edgespool uplink benchmark, %s, nproc %d, %s, mosquitto %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(),
        os.uname().release, ver))
    print("link: veth, the site's egress shaped by tbf rate 1mbit burst 16kb latency 400ms;"
          " fleet: firmware-host, %d devices, %d readings/s" % (DEVICES, DEVICES * FLEET_RATE))
    print("ours: cloud-bridge, cloud.format batch (zstd,d1), MQTT 5, inflight 100;"
          " mosquitto's: bridge mqttv311, topic edgespool/# out 1, max_inflight_messages 1000")
    row("", "ours", "mosquitto", "ours/mosq", "target")
    ob = o["bytes"]["bytes"] / o["bytes"]["events"]
    mb = m["bytes"]["bytes"] / m["bytes"]["events"]
    r = ob / mb
    print("bytes on the wire: the veth's tx+rx bytes until the cloud has %d readings" % a.n)
    row("bytes per event", "%.1f" % ob, "%.1f" % mb, "%.3fx" % r,
        "<= 0.15x: %s" % verdict(r <= 0.15))
    row("  events (readings and the fleet's hellos)", o["bytes"]["events"],
        m["bytes"]["events"])
    row("  live rate, first reading to the cloud (ev/s)", "%.0f" % o["bytes"]["live_rate"],
        "%.0f" % m["bytes"]["live_rate"])
    od, md = o["drain"], m["drain"]
    r = od["rate"] / md["rate"]
    print("backlog drain: %d readings journaled with the link down, then the link up"
          % a.backlog)
    row("events/s, link up -> the last at the cloud", "%.0f" % od["rate"], "%.0f" % md["rate"],
        "%.2fx" % r, ">= 6x: %s" % verdict(r >= 6))
    row("  events (readings and the fleet's hellos)", od["events"], md["events"])
    row("  link down for (s: the fleet, journaling)", "%.1f" % od["outage"],
        "%.1f" % md["outage"])
    row("  link up -> first backlog event at cloud (s)", "%.2f" % od["first"],
        "%.2f" % md["first"])
    row("  link up -> last backlog event at cloud (s)", "%.2f" % od["done"], "%.2f" % md["done"])
    ot = od["events"] / (od["done"] - od["first"])
    mt = md["events"] / (md["done"] - md["first"])
    row("  events/s, first -> last at the cloud", "%.0f" % ot, "%.0f" % mt, "%.2fx" % (ot / mt))
    print("alarms: %d alarm.raised POSTed during the drain, one every %.1f s from link up;"
          " POST -> cloud" % (a.alarms, ALARM_EVERY_S))
    for q in (50, 99):
        ol, ml = pct(od["alarms"], q), pct(md["alarms"], q)
        note = "< 2 s: ours %s, mosquitto %s" % (verdict(ol < 2), verdict(ml < 2)) \
            if q == 99 else ""
        row("latency p%d (s)" % q, "%.2f" % ol, "%.2f" % ml, "", note)
    print("  each, ours (s):      " + " ".join("%.2f" % x for x in od["alarms"]))
    print("  each, mosquitto (s): " + " ".join("%.2f" % x for x in md["alarms"]))
    print("delivery")
    row("events journaled by the agent, all received", o["journaled"], m["journaled"])
    row("duplicates at the cloud subscriber", o["duplicates"], m["duplicates"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="the ctest scenario: ours only, behaviour asserted, no figures")
    ap.add_argument("--build", required=True)
    ap.add_argument("--mosquitto", required=True)
    ap.add_argument("--cloud-ns", required=True)
    ap.add_argument("--site-if", required=True)
    a = ap.parse_args()
    a.agent = os.path.join(a.build, "edge-agent/edge-agent")
    a.bridge = os.path.join(a.build, "cloud-bridge/cloud-bridge")
    a.cli = os.path.join(a.build, "cli/edgespool")
    a.fw = os.path.join(a.build, "firmware-host/firmware-host")
    a.n, a.backlog, a.alarms = (2000, 2000, 5) if a.quick else \
        (1000, 20000, 3) if a.check else (5000, 20000, 20)
    # SIGTERM as an exception, so that the finally clauses stop everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root_tmp = tempfile.mkdtemp(prefix="es-uplink.")
    res = {}
    try:
        for kind in ("ours",) if a.check else ("ours", "mosquitto"):
            res[kind] = run_setup(a, kind, root_tmp)
    except Broken as e:
        print("uplink.sh: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        if os.environ.get("UPLINK_KEEP"):  # the logs, for a look afterwards
            log("kept " + root_tmp)
        else:
            subprocess.run(["rm", "-rf", root_tmp])
    if a.check:
        return check(res["ours"])
    report(a, res)
    return 0


def check(o):
    """The scenario's verdict: every event arrived (finish() raised
    otherwise; copies after a reconnect are allowed, and shown), and the
    first alarm, posted 0.5 s after link up, at the cloud before
    the backlog's last event (it takes seconds to drain over 1 mbit)."""
    d = o["drain"]
    first_alarm = d["alarm_at"][0]
    print("uplink check: %d events journaled, all at the cloud, %d duplicates; backlog of %d "
          "drained %.2f s after link up; alarms at %s s" %
          (o["journaled"], o["duplicates"], d["events"], d["done"],
           " ".join("%.2f" % x for x in d["alarm_at"])))
    if first_alarm >= d["done"]:
        print("uplink.sh: FAILED: the first alarm arrived %.2f s after link up, behind the "
              "backlog (its last event at %.2f s)" % (first_alarm, d["done"]), file=sys.stderr)
        return 1
    print("uplink.sh: PASS: over the shaped link nothing was lost, and the alarm passed the "
          "backlog")
    return 0


if __name__ == "__main__":
    sys.exit(main())
