"""checker.py - what the fault scenarios count, and the producers they count.

Producers make their events' ids themselves (UUIDv7, full CloudEvents), so
they know every id they ever tried, answered or not, and a retry after a
lost answer sends the same id again (the agent answers it as a duplicate:
the journal keeps one). A cloud-side recorder (mosquitto_sub with a
persistent QoS 1 session) writes every message it gets, one payload a line.

The checker then compares:
  attempted     ids the producers tried to post (and device records made)
  acknowledged  those a 202 answered (device records: acknowledged by the
                gateway, i.e. journaled)
  received      acknowledged ones the recorder got at least once
  lost          acknowledged and never received: must be 0
  dup_raw       messages received minus distinct ids
  dup_dedup     events received twice under different ids (the same node
                and sequence, or the same device record): a real duplicate
  out_of_order  per node and lane, after de-duplication by id, events that
                arrived after a later sequence of the same node and lane
                (the bridge's default lanes: alarm.* high, the rest normal;
                an alarm passes the node's queued readings by design)
  unexpected    ids received that no producer tried: must be 0
"""
import atexit
import http.client
import json
import os
import random
import subprocess
import threading
import time
import uuid

import harness as h


def uuid7():
    """A UUIDv7 (RFC 9562): 48 bits of Unix ms, then random bits."""
    ms = int(time.time() * 1000)
    rand = random.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & (2**62 - 1))
    return str(uuid.UUID(int=value))


class IdPoster:
    """Posts full CloudEvents with ids of its own to one agent, in batches;
    retries a batch (same ids) until a 202 names every id. Thread-safe
    counters: attempted (ids ever sent), acked (id -> sequence)."""

    def __init__(self, port, source, batch=50):
        self.port, self.source, self.batch = port, source, batch
        self.conn, self.lock = None, threading.Lock()
        self.attempted, self.acked = set(), {}
        self.requests = self.retries = 0

    def _post(self, body):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            self.conn.request("POST", "/api/events", body=body,
                              headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.will_close:
                self.conn.close()
                self.conn = None
            self.requests += 1
            return resp.status, data
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None, b""

    def make(self, n):
        """n new events (full form, ids of ours)."""
        return [{"specversion": "1.0", "id": uuid7(), "source": self.source,
                 "type": "fault.test", "subject": "load", "data": {"pad": "x" * 120}}
                for _ in range(n)]

    def post_batch(self, events, stop=None, timeout=120):
        """Posts events until acknowledged; False if stop was set first.
        A 503 (stopping) or 507 (full) or no answer: try again."""
        body = json.dumps(events).encode()
        with self.lock:
            self.attempted.update(e["id"] for e in events)
        deadline = time.monotonic() + timeout
        while True:
            status, answer = self._post(body)
            if status == 202:
                reply = json.loads(answer)
                with self.lock:
                    for r in reply["events"]:
                        self.acked[r["id"]] = r["sequence"]
                return True
            h.check(status in (None, 503, 507, 500),
                    "POST answered %s: %.300s" % (status, answer))
            if stop is not None and stop.is_set():
                return False
            if time.monotonic() >= deadline:
                raise h.TestFailure("no 202 for a batch in %d s" % timeout)
            self.retries += 1
            time.sleep(0.05)

    def snapshot(self):
        with self.lock:
            return set(self.attempted), dict(self.acked)


class Load(threading.Thread):
    """Posts `total` events through an IdPoster at about `rate` events/s."""

    def __init__(self, poster, total, rate, stop=None):
        super().__init__(daemon=True)
        self.poster, self.total, self.rate = poster, total, rate
        self.stop_ev = stop or threading.Event()
        self.error, self.done = None, 0

    def run(self):
        try:
            t0 = time.monotonic()
            while self.done < self.total and not self.stop_ev.is_set():
                n = min(self.poster.batch, self.total - self.done)
                if not self.poster.post_batch(self.poster.make(n), self.stop_ev):
                    break
                self.done += n
                time.sleep(max(0.0, t0 + self.done / self.rate - time.monotonic()))
        except BaseException as e:
            self.error = e

    def check(self):
        if self.error is not None:
            raise h.TestFailure("load thread failed: %s" % (self.error,))

    def finish(self, timeout):
        h.wait_for(lambda: self.check() or not self.is_alive(), timeout, "the load to finish")
        self.check()


class Recorder:
    """mosquitto_sub on the cloud broker: a persistent session at QoS 1 on
    the event topics, each payload a line in <name>.ndjson."""

    def __init__(self, env, host, port, topic="edgespool/+/+/ev/#", name="recorder"):
        self.env, self.path = env, env.path(name + ".ndjson")
        self.argv = ["mosquitto_sub", "-h", host, "-p", str(port), "-i", "es-fault-" + name,
                     "-c", "-q", "1", "-t", topic, "-F", "%p"]
        self.name, self.proc, self.out = name, None, None

    def start(self):
        self.out = open(self.path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.out, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        atexit.register(self.stop)  # also when the scenario fails

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.out and not self.out.closed:
            self.out.close()

    def messages(self):
        """Every payload received so far, parsed (unparsable ones as None)."""
        out = []
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            out.append(None)
        except FileNotFoundError:
            pass
        return out


def device_key(ev):
    """(device, record seq) of a device reading event, else None."""
    data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    if ev.get("type", "").startswith(("sensor.", "alarm.")) and "seq" in data and \
            str(ev.get("subject", "")).startswith("dev-"):
        return (int(ev["subject"][4:], 16), data["seq"])
    return None


def count(attempted, acked, messages, records=None, records_acked=None):
    """The counts of one scenario. attempted: set of ids; acked: ids
    acknowledged (a set or dict); messages: the recorder's payloads;
    records: device records made (set of (device, seq)), records_acked: those
    acknowledged by the gateway (default: all of records)."""
    records = set(records or ())
    records_acked = set(records if records_acked is None else records_acked)
    first, dev_ids, node_ids = {}, {}, {}
    raw = unexpected = bad = 0
    for ev in messages:
        raw += 1
        if not isinstance(ev, dict) or not isinstance(ev.get("id"), str):
            bad += 1
            continue
        if ev["id"] in first:
            continue
        first[ev["id"]] = ev
        key = device_key(ev)
        if key is not None:
            dev_ids.setdefault(key, set()).add(ev["id"])
            unexpected += key not in records
        elif ev.get("type") == "fault.test":
            unexpected += ev["id"] not in attempted
        node_ids.setdefault((ev.get("source"), ev.get("sequence")), set()).add(ev["id"])
    out_of_order, top = 0, {}
    for ev in first.values():  # insertion order = first arrival
        lane = str(ev.get("type", "")).startswith("alarm.")
        src, seq = (ev.get("source"), lane), int(ev.get("sequence", 0))
        if seq < top.get(src, 0):
            out_of_order += 1
        top[src] = max(top.get(src, 0), seq)
    got_ids = set(first)
    lost = [i for i in acked if i not in got_ids] + \
           [k for k in records_acked if k not in dev_ids]
    return {
        "attempted": len(attempted) + len(records),
        "acknowledged": len(acked) + len(records_acked),
        "received": len(acked) + len(records_acked) - len(lost),
        "lost": len(lost),
        "dup_raw": raw - len(first) - bad,
        "dup_dedup": sum(len(v) - 1 for v in dev_ids.values()) +
                     sum(len(v) - 1 for v in node_ids.values()),
        "out_of_order": out_of_order,
        "unexpected": unexpected,
        "malformed": bad,
        "lost_examples": lost[:5],
    }


FIELDS = ("attempted", "acknowledged", "received", "lost", "dup_raw", "dup_dedup",
          "out_of_order", "unexpected")


def report(scenario, counts, order_required=True):
    """Prints the scenario's line; returns True when it passes: nothing lost,
    nothing unexpected, nothing malformed, and (if order_required) per-node
    order kept after de-duplication."""
    line = " ".join("%s=%d" % (k, counts[k]) for k in FIELDS)
    ok = counts["lost"] == 0 and counts["unexpected"] == 0 and counts["malformed"] == 0 and \
        (not order_required or counts["out_of_order"] == 0)
    print("RESULT %s %s %s" % (scenario, line, "PASS" if ok else "FAIL"))
    if counts["lost"]:
        print("  lost, e.g.: %s" % counts["lost_examples"])
    return ok
