#!/usr/bin/env python3
"""test_hostile_http: the HTTP server of the agent (and the bridge's
parameters) under the attacks of issue 14, items 3, 4 and 8, each bounded in
count and time, on loopback, while events are posted and delivered.

1. Query parameters: a value longer than its buffer, given twice, without
   '=', with a bad %-escape or a %00, out of range, or until=0, is a 400
   naming the parameter, never an unfiltered answer (agent and bridge); a
   type of the longest legal length filters; a route that reads no parameter
   refuses one. /metrics counts exactly those 400s.
2. Framing and status codes: Content-Length twice, or with
   Transfer-Encoding, is 400 and closes the connection (the request smuggled
   behind it is never answered nor journaled); a head over 16 KiB is 413,
   64 header fields 431, OPTIONS * 204 with Allow.
3. Slow clients: 200 connections trickling their heads (reconnecting when
   cut) and 50 /api/live clients for a fixed window: /healthz answers every
   probe within 1 s; at most 32 streams run, the others get "busy" and
   their connection ends; a trickled head and a trickled body are 408 within
   the request timeout. The agent's RSS and its log's growth over the
   window stay bounded.
4. Nothing lost or damaged: every event posted through it all is delivered
   with its sequence, the journal verifies, and the agent serves as before.
"""
import json
import os
import select
import socket
import threading
import time
import urllib.parse

import harness as h

SLOW, LIVE, LIVE_CAP = 200, 50, 32
WINDOW = 15.0              # seconds of slow clients
REQUEST_TIMEOUT = 10.0     # http.request_timeout_ms's default
PROBE_MAX = 1.0            # /healthz must answer within this
RSS_MAX_KB = 64 * 1024     # the agent's resident memory, at the end of the window
LOG_GROWTH_MAX = 64 * 1024  # bytes the agent's log may grow over the window
EVENTS = 3000              # posted during the run


def raw(port, data, timeout=15):
    """Sends bytes as they are; returns everything received until the server
    closes (or timeout: then the bytes so far and False). The server may
    answer and close before all is sent (a body past http.max_body): the
    failed send is ignored and the answer, already received, still read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except ConnectionResetError:
            return out, True
        except socket.timeout:
            return out, False


def statuses(response):
    """The status codes of every response in the bytes."""
    out = []
    for part in response.split(b"HTTP/1.1 ")[1:]:
        code = part[:3]
        if code.isdigit():
            out.append(int(code))
    return out


def body_of(response):
    return response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in response else b""


def get(port, path, timeout=10):
    status, body = h.http_call(port, "GET", path, timeout=timeout)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def http_400s(port, route):
    """edgespool_http_requests_total of GET route with status 400."""
    status, text = h.http_call(port, "GET", "/metrics")
    h.check(status == 200, "GET /metrics: %d" % status)
    want = 'edgespool_http_requests_total{method="GET",route="%s",status="400"} ' % route
    for line in text.decode().splitlines():
        if line.startswith(want):
            return int(float(line[len(want):]))
    return 0


# ---- 1. query parameters -----------------------------------------------------------


def bad_queries():
    """(query, the parameter the 400 must name)."""
    t129, s257 = "t" * 129, "s" * 257
    return [
        ("type=" + t129, "type"), ("type=" + "t" * 600, "type"),
        ("subject=" + s257, "subject"), ("subject=" + "s" * 300, "subject"),
        ("subject=" + "s" * 5000, "subject"),
        ("limit=" + "0" * 30 + "5", "limit"), ("before=" + "9" * 40, "before"),
        ("after=" + "1" * 40, "after"), ("state=" + "pending" * 10, "state"),
        ("since=" + "2026" * 20, "since"), ("until=" + "1" * 60, "until"),
        ("until=0", "until"), ("limit=0", "limit"), ("limit=501", "limit"),
        ("before=0", "before"), ("type", "type"), ("type=a.x&type=b.y", "type"),
        ("subject=%zz", "subject"), ("subject=a%00b", "subject"), ("type=a%2", "type"),
        ("limit=5&limit=6", "limit"), ("state=lost", "state"), ("colour=red", "colour"),
    ]


def check_queries(port, name, long_type):
    """Every bad query is a 400 naming its parameter, and /metrics counted
    each; a type of 128 characters filters. Returns how many were sent."""
    before = http_400s(port, "/api/events")
    cases = bad_queries()
    for query, field in cases:
        status, body = get(port, "/api/events?" + query)
        h.check(status == 400, "%s: GET /api/events?%.80s answered %d (an unfiltered answer?): "
                "%.200r" % (name, query, status, body))
        h.check(isinstance(body, dict) and body.get("field") == field,
                "%s: ?%.60s: the 400 names %r, not %r" % (name, query, body, field))
    got = http_400s(port, "/api/events")
    h.check(got - before == len(cases), "%s: /metrics counted %d 400s on /api/events, %d were "
            "sent" % (name, got - before, len(cases)))
    status, body = get(port, "/api/events?type=" + urllib.parse.quote(long_type))
    h.check(status == 200, "%s: a 128-character type: %d %.200r" % (name, status, body))
    types = {e["type"] for e in body["events"]}
    h.check(types <= {long_type}, "%s: a 128-character type filter answered other types: %s" %
            (name, sorted(types)[:3]))
    for path in ("/api/status?x=1", "/api/devices?id=dev-00000001", "/api/series?step=60"):
        if name == "bridge" and path.startswith("/api/devices"):
            continue
        status, body = get(port, path)
        h.check(status == 400 and body.get("field") == path.split("?")[1].split("=")[0],
                "%s: %s answered %d %.200r (a parameter nobody reads)" % (name, path, status,
                                                                          body))
    return len(cases) + 3


# ---- 2. framing and status codes ---------------------------------------------------


SMUGGLED = json.dumps({"type": "hostile.smuggled", "subject": "s", "data": {}}).encode()


def smuggle(port, head):
    """A POST framed by head, with a second request (a POST of a
    hostile.smuggled event) behind a body that one reading of head ends
    early: answered once, with 400, and closed."""
    inner = (b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
    body = b"0\r\n\r\n" + inner
    req = (b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
           head % {b"n": len(body)} + b"\r\n" + body)
    out, closed = raw(port, req)
    h.check(statuses(out) == [400], "%r: answers %s, want one 400: %.300r" % (head, statuses(out),
                                                                           out))
    h.check(closed, "%r: the connection stayed open after the 400" % head)
    h.check(b"Connection: close" in out, "%r: no Connection: close on the 400" % head)
    return json.loads(body_of(out))


def check_framing(port):
    heads = [b"Content-Length: 5\r\nContent-Length: %(n)d\r\n",
             b"Content-Length: %(n)d\r\nContent-Length: 5\r\n",
             b"Content-Length: %(n)d, 5\r\n",
             b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
             b"Transfer-Encoding: chunked\r\nContent-Length: %(n)d\r\n",
             b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
             b"Transfer-Encoding: identity\r\nContent-Length: %(n)d\r\n"]
    for head in heads:
        err = smuggle(port, head)
        h.check(err.get("field") in ("Content-Length", "Transfer-Encoding"),
                "%r: the 400 names %r" % (head, err))
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n"
    out, _ = raw(port, big)
    h.check(statuses(out) == [413], "a 17 KB head: %s %.200r" % (statuses(out), out))
    many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-F%d: 1\r\n" % i for i in range(64)) + b"\r\n"
    out, _ = raw(port, many)
    h.check(statuses(out) == [431], "64 header fields: %s %.200r" % (statuses(out), out))
    out, closed = raw(port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    h.check(statuses(out) == [204] and b"Allow: GET, HEAD, POST" in out and closed,
            "OPTIONS *: %.300r" % out)
    return len(heads) + 3


# ---- 3. slow clients ---------------------------------------------------------------


class Slow(threading.Thread):
    """n connections that send a head's line a second and never end it;
    each one cut is opened again. Counts the answers they got."""

    def __init__(self, port, n, until):
        super().__init__(daemon=True)
        self.port, self.n, self.until = port, n, until
        self.socks, self.answers, self.opened, self.error = [], {}, 0, None

    def open(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        self.opened += 1
        return s

    def cut(self, s):
        try:
            data = s.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        for st in statuses(data):
            self.answers[st] = self.answers.get(st, 0) + 1
        return True

    def run(self):
        try:
            self.socks = [self.open() for _ in range(self.n)]
            while time.monotonic() < self.until:
                for i, s in enumerate(self.socks):
                    try:
                        s.send(b"X-Slow: 1\r\n")
                    except (BlockingIOError, OSError):
                        pass
                    if self.cut(s):
                        s.close()
                        self.socks[i] = self.open()
                time.sleep(1.0)
        except BaseException as e:
            self.error = e
        finally:
            for s in self.socks:
                s.close()


def open_lives(port, n):
    """n GET /api/live; returns (streaming sockets, answered busy, busy ones
    whose connection ended)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    streaming, busy, ended = [], 0, 0
    for s in socks:
        data = b""
        while b"event: " not in data:
            chunk = s.recv(65536)
            h.check(chunk, "a /api/live connection closed before any event")
            data += chunk
        if b"event: busy" in data:
            busy += 1
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
                ended += 1
            except socket.timeout:
                pass
            s.close()
        else:
            h.check(b"event: status" in data, "/api/live sent %.200r" % data)
            streaming.append(s)
    return streaming, busy, ended


def trickle(port, start, request, result, key):
    """Sends start, then request a byte every 0.5 s until the server
    answers; keeps the answer's status and how long it took."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = b""
    try:
        s.sendall(start)
        for i in range(len(request)):
            s.sendall(request[i:i + 1])
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                break
        s.settimeout(REQUEST_TIMEOUT + 10)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        s.close()
    result[key] = (statuses(data), time.monotonic() - t0)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def check_slow_clients(agent):
    port, log = agent.http_port, agent.proc.log
    log0 = os.path.getsize(log)
    until = time.monotonic() + WINDOW
    slow = Slow(port, SLOW, until)
    slow.start()
    h.wait_for(lambda: slow.error or len(slow.socks) == SLOW, 30, "the slow clients to connect")
    h.check(slow.error is None, "slow clients: %s" % slow.error)
    streaming, busy, ended = open_lives(port, LIVE)
    h.check(len(streaming) == LIVE_CAP and busy == LIVE - LIVE_CAP and ended == busy,
            "/api/live: %d streaming, %d busy (%d ended); want %d, %d" %
            (len(streaming), busy, ended, LIVE_CAP, LIVE - LIVE_CAP))
    trickled = {}
    threads = [threading.Thread(target=trickle, daemon=True, args=(
        port, b"GET /api/status HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"y" * 200, trickled,
        "head")),
        threading.Thread(target=trickle, daemon=True, args=(
            port, b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 400\r\n\r\n", b" " * 400, trickled, "body"))]
    for t in threads:
        t.start()
    probes, worst = 0, 0.0
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            status, _ = h.http_call(port, "GET", "/healthz", timeout=3)
        except OSError as e:
            status = repr(e)
        took = time.monotonic() - t0
        h.check(status == 200 and took < PROBE_MAX,
                "/healthz during the slow clients: %s after %.2f s (probe %d)" %
                (status, took, probes + 1))
        probes, worst = probes + 1, max(worst, took)
        time.sleep(0.25)
    rss = rss_kb(agent.proc.popen.pid)
    grown = os.path.getsize(log) - log0
    slow.join(10)
    h.check(slow.error is None, "slow clients: %s" % slow.error)
    for t in threads:
        t.join(REQUEST_TIMEOUT + 15)
    for s in streaming:
        s.close()
    for key in ("head", "body"):
        got, took = trickled.get(key, ([], 0))
        h.check(got == [408] and REQUEST_TIMEOUT - 1 <= took <= REQUEST_TIMEOUT + 4,
                "a trickled %s: %s after %.1f s, want 408 after ~%.0f s" %
                (key, got, took, REQUEST_TIMEOUT))
    h.check(slow.answers.get(408, 0) >= SLOW and set(slow.answers) == {408},
            "the slow heads were answered %s, want 408 for each one cut" % slow.answers)
    h.check(rss < RSS_MAX_KB, "the agent's RSS reached %d KiB (bound %d)" % (rss, RSS_MAX_KB))
    h.check(grown < LOG_GROWTH_MAX, "the agent's log grew %d bytes in %.0f s" % (grown, WINDOW))
    return probes, worst, slow.opened, slow.answers.get(408, 0), rss, grown


# ---- the scenario ------------------------------------------------------------------


def scenario(env):
    broker = env.broker()
    cloud = env.broker(name="cloud") if env.args.bridge else None
    agent = env.agent(broker.port)
    agent.start()
    sub = env.sub(broker.port)
    bridge = env.bridge(broker.port, cloud.port) if cloud else None
    if bridge:
        bridge.start()
    poster = h.Poster(agent.http_port)
    long_type = "t" * 128
    h.check(poster.post_acked([{"type": long_type, "subject": "s", "data": {}}]), "post")
    feed = h.PosterThread(poster, EVENTS, rate=EVENTS / (WINDOW + 10))
    feed.start()

    sent = check_queries(agent.http_port, "agent", long_type)
    if bridge:
        h.wait_for(lambda: get(bridge.http_port, "/api/events?type=" + long_type)[1]["events"],
                   30, "the bridge to hold the long-typed event")
        sent += check_queries(bridge.http_port, "bridge", long_type)
    framed = check_framing(agent.http_port)
    probes, worst, opened, cut, rss, grown = check_slow_clients(agent)

    status, body = get(agent.http_port, "/api/events?type=hostile.smuggled")
    h.check(status == 200 and body["events"] == [], "a smuggled request was journaled: %s" % body)
    feed.finish(120)
    acked = poster.snapshot()
    stats, copies, dups = h.settle(agent, sub, acked, 60)
    h.journal_verify(env, agent.db)
    h.check(get(agent.http_port, "/healthz")[0] == 200, "the agent stopped serving")
    return ("%d bad queries 400, %d framings refused; %d slow heads (%d cut with 408) and %d "
            "live clients for %.0f s: %d /healthz probes, worst %.2f s; RSS %d KiB, log +%d B; "
            "%d events delivered" % (sent, framed, opened, cut, LIVE, WINDOW, probes, worst,
                                     rss, grown, len(acked)))


if __name__ == "__main__":
    h.main(scenario, "hostile HTTP: unfiltered answers, slow clients, smuggling (issue 14)")
