#!/usr/bin/env python3
"""test_fleet_repair: fleet-state's repair of holes from the nodes' HTTP APIs
(repair.node) counts a range the node no longer holds as lost once, and a
slow node never stalls applying.

fleet-state consumes a cloud mosquitto over MQTT; the test publishes the
CloudEvents itself, and serves fake nodes' APIs (`GET /api/events?after=N`,
`GET /api/events/{id}`, as the agent answers them) from this process.
1. Source /site9/old: fleet-state gets sequences 1-3 and 12 (4..11 missing).
   The node holds 1-3 and 8-12, and its event 9 answers 404 (removed after
   it was listed). fleet-state applies 8, 10 and 11, counts 4..7 and 9 lost
   (5), logs each gone range once, and has no hole left; restarted, it
   still says 5 lost, and the node is not asked again.
2. Source /site9/slow: its node holds the answer to a hole until the test
   lets it go. Meanwhile 300 events of another source are applied (the
   repair waits on a thread of its own); once let go, the hole is filled.
3. A hole of the slow node asked for again and held: SIGTERM still stops
   fleet-state within a few seconds (the request under way is cancelled),
   exit 0.
"""
import json
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import harness as h


def event(source, seq):
    return {"specversion": "1.0", "id": "%s-%d" % (source.replace("/", "_"), seq),
            "source": source, "type": "sensor.reading", "subject": "dev-1",
            "sequence": str(seq), "time": "2026-11-27T07:00:00.000Z", "data": {"n": seq}}


class Nodes:
    """Fake nodes' APIs under /<name>/api/...: journals by name, events that
    answer 404, names whose listing waits for `release`."""

    def __init__(self):
        self.journals, self.missing, self.slow = {}, set(), set()
        self.release = threading.Event()
        self.listings = {}
        self.lock = threading.Lock()
        nodes = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                nodes.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def reply(self, req, status, body):
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def serve(self, req):
        u = urlparse(req.path)
        parts = u.path.strip("/").split("/")
        name, rest = parts[0], parts[1:]
        journal = self.journals.get(name, {})
        if rest == ["api", "events"]:
            with self.lock:
                self.listings[name] = self.listings.get(name, 0) + 1
            if name in self.slow:
                self.release.wait(60)
            q = parse_qs(u.query)
            after, limit = int(q["after"][0]), int(q["limit"][0])
            rows = [{"seq": s, "id": ev["id"]} for s, ev in sorted(journal.items()) if s > after]
            rows = rows[:limit]
            self.reply(req, 200, {"events": rows,
                                  "next": rows[-1]["seq"] if len(rows) == limit else None})
        elif rest[:2] == ["api", "events"] and len(rest) == 3:
            for s, ev in journal.items():
                if ev["id"] == rest[2] and s not in self.missing:
                    return self.reply(req, 200, {"seq": s, "event": ev})
            self.reply(req, 404, {"error": "not found"})
        else:
            self.reply(req, 404, {"error": "no such path"})

    def listed(self, name):
        with self.lock:
            return self.listings.get(name, 0)


def publish(port, events):
    """The events in order on one connection (mosquitto_pub -l)."""
    lines = "\n".join(json.dumps(ev) for ev in events) + "\n"
    subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-l",
                    "-t", "edgespool/site9/x/ev/sensor.reading"],
                   input=lines, text=True, check=True, timeout=30)


class Fleet:
    def __init__(self, env, broker_port, nodes):
        self.env, self.broker_port = env, broker_port
        self.http_port = h.free_port()
        self.db = env.path("fleet.db")
        self.repair = ",".join("/site9/%s=%s" % (n, nodes.url(n)) for n in ("old", "slow"))
        self.proc = None

    def start(self):
        self.proc = self.env.spawn("fleet", [
            self.env.args.fleet, "--node.id", "it-repair",
            "--source.mqtt", "mqtt://127.0.0.1:%d" % self.broker_port,
            "--source.topic", "edgespool/#", "--state.path", self.db, "--state.sync", "normal",
            "--http.listen", "127.0.0.1:%d" % self.http_port, "--repair.node", self.repair,
            "--source.backoff_base_ms", "50", "--source.backoff_max_ms", "500"])

        def ready():
            self.proc.check_alive()
            try:
                return self.stats()["connected_to"] != ""
            except (OSError, ValueError, h.TestFailure):
                return False
        h.wait_for(ready, 15, "fleet-state to connect")

    def stats(self):
        status, body = h.http_call(self.http_port, "GET", "/api/stats")
        h.check(status == 200, "GET /api/stats answered %d" % status)
        return json.loads(body)

    def stop(self, within):
        self.proc.signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = self.proc.wait_exit(within)
        h.check(rc == 0, "fleet-state %s after SIGTERM" % h.exit_text(rc))
        return time.monotonic() - t0


def phase_gone(env, fleet, nodes, cloud):
    old = {s: event("/site9/old", s) for s in range(1, 13)}
    nodes.journals["old"] = {s: ev for s, ev in old.items() if s <= 3 or s >= 8}
    nodes.missing.add(9)
    publish(cloud.port, [old[s] for s in (1, 2, 3, 12)])

    def repaired():
        st = fleet.stats()
        return st["gaps"]["holes_open"] == 0 and st["applied"] == 7 and st
    st = h.wait_for(repaired, 30, "the hole of /site9/old to be repaired or lost")
    h.check(st["gaps"]["lost"] == 5 and st["gaps"]["missing"] == 0,
            "lost %d, missing %d; expected 5 and 0" % (st["gaps"]["lost"],
                                                       st["gaps"]["missing"]))
    log = open(env.path("fleet.log"), errors="replace").read()
    for rng in ("4..7", "9..9"):
        n = log.count("repair of /site9/old %s: the node no longer holds them" % rng)
        h.check(n == 1, "the loss of %s was logged %d times" % (rng, n))
    fleet.stop(20)
    fleet.start()
    st = fleet.stats()
    h.check(st["gaps"]["lost"] == 5 and st["gaps"]["holes_open"] == 0,
            "after a restart: lost %d, holes %d" % (st["gaps"]["lost"],
                                                     st["gaps"]["holes_open"]))
    asked = nodes.listed("old")
    # Longer than the gap tracker's grace period: nothing is asked.
    h.hold(1.5, lambda: h.check(nodes.listed("old") == asked, "the node was asked again"))
    return st


def phase_slow(fleet, nodes, cloud, applied):
    slow = {s: event("/site9/slow", s) for s in range(1, 9)}
    nodes.journals["slow"] = slow
    nodes.slow.add("slow")
    publish(cloud.port, [slow[1], slow[4]])
    h.wait_for(lambda: nodes.listed("slow") >= 1, 20, "fleet-state to ask the slow node")
    live = [event("/site9/live", s) for s in range(1, 301)]
    t0 = time.monotonic()
    publish(cloud.port, live)
    h.wait_for(lambda: fleet.stats()["applied"] == applied + 2 + 300, 20,
               "300 events applied while the slow node holds its answer")
    took = time.monotonic() - t0
    h.check(not nodes.release.is_set(), "the slow node let go too early")
    nodes.release.set()
    st = h.wait_for(lambda: (lambda s: s["gaps"]["holes_open"] == 0 and s)(fleet.stats()), 30,
                    "the slow node's hole to be filled once it answers")
    h.check(st["applied"] == applied + 304 and st["gaps"]["lost"] == 5,
            "applied %d, lost %d" % (st["applied"], st["gaps"]["lost"]))
    return took, slow


def phase_stop_while_asking(fleet, nodes, cloud, slow):
    nodes.release.clear()
    asked = nodes.listed("slow")
    publish(cloud.port, [slow[8]])  # 5..7 missing
    h.wait_for(lambda: nodes.listed("slow") > asked, 20, "fleet-state to ask the slow node again")
    took = fleet.stop(10)
    h.check(took < 5, "fleet-state took %.1f s to stop with a request held" % took)
    nodes.release.set()
    return took


def scenario(env):
    h.check(env.args.fleet, "this test needs --fleet (the fleet-state binary)")
    cloud = env.broker(name="cloud")
    nodes = Nodes()
    fleet = Fleet(env, cloud.port, nodes)
    fleet.start()
    st = phase_gone(env, fleet, nodes, cloud)
    took, slow = phase_slow(fleet, nodes, cloud, st["applied"])
    stopped = phase_stop_while_asking(fleet, nodes, cloud, slow)
    nodes.server.shutdown()
    return ("5 sequences the node no longer held counted lost once, never asked again; 300 "
            "events applied in %.1f s while a node held its answer; stopped in %.1f s with a "
            "request held" % (took, stopped))


if __name__ == "__main__":
    h.main(scenario, "fleet-state repair: gone ranges lost once, a slow node never stalls")
