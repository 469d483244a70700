#!/usr/bin/env python3
"""test_api: the REST API of docs/api.md against the real agent and bridge.

An agent with a device fleet on a UNIX socket and 300 posted events, a cloud
bridge behind it; then every route and its errors:
- GET /api/events: newest first, paged by `next` until the end with every
  event exactly once; `after` pages forward; filters by type (exact and
  prefix), subject, state and time; bad parameters are 400 naming the field.
- GET /api/events/{id}: the stored CloudEvent; an unknown id is 404.
- GET /api/devices: the fleet's devices with their last reading.
- GET /api/deadletters: a malformed device record, with its reason.
- POST /api/replay: 202, and the subscriber gets the range again (same ids);
  bad bodies and ranges are refused.
- GET /api/series: a point appears within one step.
- GET /api/live: a Server-Sent Event with the status within a few seconds;
  the bridge serves the same.
"""
import json
import socket
import struct
import time
import urllib.parse

import harness as h
from test_devices import frame

POSTED = 300


def get(node, path):
    status, body = h.http_call(node.http_port, "GET", path)
    try:
        return status, json.loads(body)
    except ValueError:
        raise h.TestFailure("GET %s answered %d with a body that is not JSON: %.200r" %
                            (path, status, body))


def expect_error(node, path, status, field=None, method="GET", body=None):
    """The request is refused with status and a JSON error naming field."""
    got, text = h.http_call(node.http_port, method, path, body=body,
                            headers={"Content-Type": "application/json"} if body else None)
    err = json.loads(text)
    h.check(got == status and "error" in err and (field is None or err.get("field") == field),
            "%s %s: expected %d (field %s), got %d %s" % (method, path, status, field, got, err))


def walk(node, query, limit):
    """Every event of GET /api/events?query, following `next` to the end."""
    seen, cursor, pages = [], None, 0
    while True:
        q = dict(query, limit=limit)
        if cursor:
            q["after" if "after" in query else "before"] = cursor
        status, page = get(node, "/api/events?" + urllib.parse.urlencode(q))
        h.check(status == 200, "page %d: %d %s" % (pages, status, page))
        seen += page["events"]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            return seen, pages
        h.check(pages < 1000, "paging does not end")


def check_events(agent, acked):
    everything, pages = walk(agent, {}, 37)
    seqs = [e["seq"] for e in everything]
    h.check(seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs),
            "newest-first paging is not strictly descending: %s" % seqs[:10])
    ids = {e["id"] for e in everything}
    h.check(set(acked) <= ids, "%d posted events missing from the pages" %
            len(set(acked) - ids))
    forward, _ = walk(agent, {"after": 0}, 50)
    h.check([e["seq"] for e in forward] == sorted(seqs), "after=0 paging differs")
    posted, _ = walk(agent, {"type": "api.test"}, 100)
    h.check({e["id"] for e in posted} == set(acked), "type filter: %d of %d" %
            (len(posted), len(acked)))
    sensors, _ = walk(agent, {"type": "sensor.*"}, 100)
    h.check(sensors and all(e["type"].startswith("sensor.") for e in sensors),
            "type prefix filter")
    one, _ = walk(agent, {"subject": "api-7"}, 10)
    h.check(len(one) == POSTED // 10 and all(e["subject"] == "api-7" for e in one),
            "subject filter: %d" % len(one))
    acked_rows, _ = walk(agent, {"state": "acked", "type": "api.test"}, 500)
    h.check(len(acked_rows) == POSTED, "state filter: %d" % len(acked_rows))
    t = everything[len(everything) // 2]["journaled_ms"]
    newer, _ = walk(agent, {"since": t}, 500)
    h.check(newer and all(e["journaled_ms"] >= t for e in newer), "since filter")
    older, _ = walk(agent, {"until": everything[0]["journaled"]}, 500)
    h.check(all(e["journaled_ms"] < everything[0]["journaled_ms"] for e in older),
            "until filter (RFC 3339)")
    for path, field in (("/api/events?limit=0", "limit"), ("/api/events?limit=501", "limit"),
                        ("/api/events?limit=x", "limit"), ("/api/events?before=-1", "before"),
                        ("/api/events?state=done", "state"), ("/api/events?since=yesterday",
                                                             "since"),
                        ("/api/events?type=a*b", "type"), ("/api/events?colour=red", "colour"),
                        ("/api/events?after=1&before=5", "after")):
        expect_error(agent, path, 400, field)
    return everything, pages


def check_one(agent, some_id):
    status, body = get(agent, "/api/events/" + some_id)
    h.check(status == 200 and body["event"]["id"] == some_id and body["state"] == "acked",
            "GET /api/events/%s: %d %s" % (some_id, status, body))
    expect_error(agent, "/api/events/01a21b2d-0000-7000-8000-000000000000", 404)
    expect_error(agent, "/api/events/" + "x" * 300, 404)


def make_dead_letter(sock_path):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    conn.sendall(frame(1, 777, 1, struct.pack("<IIIBBB", 1, 5, 1, 1, 0, 1)))
    conn.sendall(frame(2, 777, 1, struct.pack("<IBBi", 5, 99, 0, 1)))  # kind 99
    conn.settimeout(10)
    data = b""
    while data.count(b"\x00") < 3:  # TIME, then the ACKs
        chunk = conn.recv(4096)
        h.check(chunk, "the agent closed the device link")
        data += chunk
    conn.close()


def check_replay(agent, sub, acked):
    lo = min(acked.values())
    ids = {i for i, seq in acked.items() if lo <= seq <= lo + 9}
    sub.wait_all(acked, 30)
    status, text = h.http_call(agent.http_port, "POST", "/api/replay",
                               body=json.dumps({"from": lo, "to": lo + 9}),
                               headers={"Content-Type": "application/json"})
    body = json.loads(text)
    h.check(status == 202 and body["replaying"]["events"] == 10, "replay: %d %s" %
            (status, body))
    def twice():
        sub.poll()
        return all(sum(1 for r in sub.records if r["id"] == i) >= 2 for i in ids)
    h.wait_for(twice, 20, "a second copy of each replayed event at the subscriber")
    for body, field in (("{}", "from"), ('{"from":5,"to":2}', "to"), ("[", "from"),
                        ('{"from":1.5,"to":2}', "to")):
        expect_error(agent, "/api/replay", 400, field, method="POST", body=body)
    expect_error(agent, "/api/replay", 400, None, method="POST",
                 body=json.dumps({"from": 10 ** 9, "to": 10 ** 9 + 1}))
    return len(ids)


def first_sse(port, timeout=10):
    """The first `status` event of GET /api/live, parsed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    data, deadline = b"", time.monotonic() + timeout
    while b"\ndata: " not in data or not data.split(b"\ndata: ", 1)[1].count(b"\n"):
        h.check(time.monotonic() < deadline, "no event from /api/live: %.300r" % data)
        chunk = s.recv(65536)
        h.check(chunk, "/api/live closed: %.300r" % data)
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    h.check(head.startswith("HTTP/1.1 200") and "text/event-stream" in head,
            "/api/live headers: %s" % head)
    line = data.split(b"\ndata: ", 1)[1].split(b"\n", 1)[0]
    return json.loads(line)


def readyz(port):
    """(status, body) of GET /readyz."""
    status, body = h.http_call(port, "GET", "/readyz")
    return status, json.loads(body)


def check_readiness(env, agent, edge, cloud):
    """/readyz: the agent's names its checks; a bridge whose edge broker is
    away is alive (/healthz 200) but not ready (503, edge false), and ready
    once the broker is there and acknowledged its subscriptions."""
    status, body = readyz(agent.http_port)
    h.check(status == 200 and body == {"ready": True, "checks": {"running": True,
                                                                "journal": True}},
            "the agent's GET /readyz: %d %s" % (status, body))
    away = h.Broker(env, name="edge-later")
    bridge = env.bridge(away.port, cloud.port, name="br-wait", node="br-wait")
    bridge.start(connected=False)  # alive: /healthz 200, which comes before it runs
    h.wait_for(lambda: readyz(bridge.http_port)[1]["checks"]["running"], 10,
               "br-wait to run (its /readyz check running true)")
    status, body = readyz(bridge.http_port)
    h.check(status == 503 and body == {"ready": False, "checks": {
        "running": True, "inbox": True, "edge": False}},
            "GET /readyz of a bridge without its edge broker: %d %s" % (status, body))
    h.check(h.http_call(bridge.http_port, "GET", "/healthz")[0] == 200,
            "a bridge without its edge broker is alive: /healthz should be 200")
    away.start()
    h.wait_for(lambda: h.ready(bridge.http_port), 15, "br-wait to be ready once its edge is up")
    st = bridge.status()
    h.check(st["edge"][0]["subscribed"] is True, "subscribed not shown: %s" % st["edge"])
    bridge.stop()


def scenario(env):
    edge, cloud = env.broker(name="edge"), env.broker(name="cloud")
    sub = env.sub(edge.port)
    sock = env.path("devices.sock")
    agent = env.agent(edge.port, extra=["--link.listen", "unix:" + sock])
    agent.start()
    fleet = h.Fleet(env, "unix:" + sock, 3, 20, count=20, seed=5)
    fleet.start()
    poster = h.Poster(agent.http_port)
    poster.post_acked([{"type": "api.test", "subject": "api-%d" % (i % 10),
                        "data": {"i": i}} for i in range(POSTED)])
    acked = poster.snapshot()
    fleet.finish(60)
    make_dead_letter(sock)
    h.wait_for(lambda: agent.pending() == 0, 30, "nothing pending at the agent")

    everything, pages = check_events(agent, acked)
    check_one(agent, next(iter(acked)))

    status, devs = get(agent, "/api/devices")
    fleet_devs = [d for d in devs["devices"] if d["device"] in (1, 2, 3)]
    h.check(status == 200 and len(fleet_devs) == 3 and
            all(d["records"] == 20 and "last_reading" in d for d in fleet_devs),
            "GET /api/devices: %s" % devs)

    # A dead letter is committed with the journal's next commit, up to
    # journal.linger_ms after the last one.
    def dead_letter():
        status, dead = get(agent, "/api/deadletters?limit=5")
        h.check(status == 200, "GET /api/deadletters: %d %s" % (status, dead))
        return dead if any("777" in d["reason"] for d in dead["deadletters"]) else None
    h.wait_for(dead_letter, 10, "GET /api/deadletters to show the malformed record (777)")
    expect_error(agent, "/api/deadletters?limit=9999", 400, "limit")

    replayed = check_replay(agent, sub, acked)

    h.wait_for(lambda: get(agent, "/api/series")[1]["points"], 25, "a point in /api/series")
    status, series = get(agent, "/api/series")
    h.check(series["step_s"] == 10 and all(k in series["points"][-1]
                                           for k in ("t", "in", "out", "pending")),
            "GET /api/series: %s" % series)

    live = first_sse(agent.http_port)
    h.check(live.get("kind") == "agent" and "journal" in live and "series_last" in live,
            "the live event lacks the status: %.300s" % live)

    check_readiness(env, agent, edge, cloud)
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    blive = first_sse(bridge.http_port)
    h.check(blive.get("kind") == "bridge" and "cloud" in blive, "bridge live: %.300s" % blive)
    poster.post_acked([{"type": "api.late", "subject": "api-late", "data": {}}] * 5)
    h.wait_for(lambda: len(get(bridge, "/api/events?type=api.late")[1]["events"]) == 5, 30,
               "the bridge's inbox to hold the events posted after it started")
    status, page = get(bridge, "/api/events?type=api.late&state=forwarded")
    h.wait_for(lambda: len(get(bridge, "/api/events?type=api.late&state=forwarded")[1]
                           ["events"]) == 5, 30, "the bridge to forward them")
    return ("%d events paged newest first in %d pages, filters and errors checked; "
            "devices, dead letters, a replay of %d events, series and live streams of agent "
            "and bridge" % (len(everything), pages, replayed))


if __name__ == "__main__":
    h.main(scenario, "the REST API: every route and its errors")
