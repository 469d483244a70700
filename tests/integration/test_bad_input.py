#!/usr/bin/env python3
"""test_bad_input: POST /api/events refuses bad input clearly, counts it, and
stores nothing of it.

Each bad request gets the documented status and a JSON body {"error": "..."}
(with "field" where one attribute is at fault): malformed JSON, missing type,
a type with '/', non-object data, a batch with one bad element (nothing of it
journaled), a body over http.max_body (declared and chunked), one event over
event.max_bytes, a wrong content type, PUT and DELETE on /api/events, an unknown path,
invalid UTF-8, then 1,000 random byte strings (4xx with a JSON error each)
and 500 random mutations of valid bodies (202 or 4xx, never 5xx). Afterwards
the agent still answers /healthz and accepts a valid event; `edgespool
journal stats` counts exactly the events answered 202; the ingest.rejected
counters of /api/status add up to the requests refused. Last come bodies that
are legal JSON but hostile: deep nesting must be refused without harming the
agent, and an escaped NUL (\\u0000) must not be stored altered.
"""
import http.client
import json
import random
import socket

import harness as h

MAX_BODY = 256 * 1024
MAX_EVENT = 8 * 1024
MAX_BATCH = 200


class Tally:
    """What the test sent: events acknowledged, requests refused by reason."""

    def __init__(self):
        self.accepted = 0      # events answered 202 (not duplicates)
        self.refused = {}      # reason counter name -> requests
        self.statuses = {}     # status -> requests

    def note(self, status, answer, reason=None):
        """Records one answer to POST /api/events."""
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 202:
            self.accepted += sum(1 for e in json.loads(answer)["events"] if not e["duplicate"])
        elif reason:
            self.refused[reason] = self.refused.get(reason, 0) + 1


def error_of(status, answer, what):
    """The parsed JSON error body of a 4xx answer (checked)."""
    h.check(400 <= status < 500, "%s: expected a 4xx, got %d: %.200r" % (what, status, answer))
    try:
        body = json.loads(answer)
    except ValueError:
        raise h.TestFailure("%s: %d answer is not JSON: %.200r" % (what, status, answer))
    h.check(isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"],
            "%s: error body lacks an \"error\" string: %.200r" % (what, answer))
    return body


def reason_of(status, body):
    """The ingest.rejected counter a refused POST should have moved."""
    if status == 415:
        return "content_type"
    if status == 413:
        return "too_big"
    if status == 507:
        return "journal_full"
    return "invalid" if body.get("field") else "malformed"


def expect(poster, tally, what, body, status, field=None, mention=None,
           content_type="application/json"):
    """POSTs body and checks the status, the error's field and text."""
    got, answer = poster.post(body, content_type)
    err = error_of(got, answer, what)
    h.check(got == status, "%s: expected %d, got %d: %s" % (what, status, got, answer))
    if field is not None:
        h.check(err.get("field") == field, "%s: field %r, expected %r (%s)" %
                (what, err.get("field"), field, answer))
    if mention:
        h.check(mention.lower() in err["error"].lower(), "%s: error %r does not mention %r" %
                (what, err["error"], mention))
    tally.note(got, answer, reason_of(got, err))


def short(type_="sensor.reading", subject="dev-1", data=None):
    """One short-form event as a dict."""
    return {"type": type_, "subject": subject, "data": {"v": 1} if data is None else data}


def post_chunked(port, body):
    """POSTs body with Transfer-Encoding: chunked; returns (status, answer).
    The agent answers a body over http.max_body as soon as it is past the
    limit and closes without reading the rest (docs/security.md): sending
    then fails with EPIPE or a reset, and the answer, already received, is
    read from the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        try:
            for i in range(0, len(body), 16384):
                chunk = body[i:i + 16384]
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.read()
    finally:
        sock.close()


def deterministic_cases(agent, poster, tally):
    """One request per documented error; the batch case journals nothing."""
    enc = lambda v: json.dumps(v).encode()
    expect(poster, tally, "malformed JSON", b'{"type": "sensor.reading", "subject": ', 400,
           mention="JSON")
    expect(poster, tally, "trailing garbage", enc(short()) + b" x", 400, mention="JSON")
    expect(poster, tally, "empty body", b"", 400)
    expect(poster, tally, "a JSON number", b"42", 400)
    expect(poster, tally, "empty batch", b"[]", 400)
    expect(poster, tally, "missing type", enc({"subject": "dev-1", "data": {}}), 400, "type")
    expect(poster, tally, "type with '/'", enc(short("sensor/reading")), 400, "type")
    for t in ("a+b", "a#b", "a b", "", "x" * 129):
        expect(poster, tally, "bad type %.10r" % t, enc(short(t)), 400, "type")
    for d in (5, "text", [1, 2], None, True):
        ev = short()
        ev["data"] = d
        expect(poster, tally, "data %r" % (d,), enc(ev), 400, "data")
    expect(poster, tally, "duplicate attribute",
           b'{"type":"a","type":"b","subject":"s","data":{}}', 400, "type")
    expect(poster, tally, "bad time", enc(dict(short(), time="yesterday")), 400, "time")
    expect(poster, tally, "specversion 1.1",
           enc({"specversion": "1.1", "id": "x", "source": "/a", "type": "t"}), 400,
           "specversion")
    before = agent.status()["journal"]
    batch = [short(subject="dev-%d" % i) for i in range(5)]
    batch[1]["type"] = "bad/type"
    expect(poster, tally, "batch with one bad element", enc(batch), 400, "[1].type")
    batch[1]["type"] = "ok"
    batch[3]["data"] = 7
    expect(poster, tally, "batch with bad data", enc(batch), 400, "[3].data")
    after = agent.status()["journal"]
    h.check(after["appended"] == before["appended"] and
            after["latest_seq"] == before["latest_seq"],
            "a refused batch changed the journal: %s -> %s" % (before, after))
    big = json.dumps(h.make_events(0, 1200)).encode()
    h.check(len(big) > MAX_BODY, "test body too small")
    expect(poster, tally, "body over http.max_body", big, 413)
    got, answer = post_chunked(agent.http_port, big)
    tally.note(got, answer, reason_of(got, error_of(got, answer, "chunked body over max_body")))
    h.check(got == 413, "chunked body over http.max_body: %d %.200r" % (got, answer))
    expect(poster, tally, "event over event.max_bytes",
           enc(short(data={"pad": "x" * (MAX_EVENT + 100)})), 413)
    expect(poster, tally, "batch over http.max_batch",
           enc([short() for _ in range(MAX_BATCH + 1)]), 413)
    expect(poster, tally, "text/plain", enc(short()), 415, content_type="text/plain")
    expect(poster, tally, "no content type", enc(short()), 415, content_type=None)
    expect(poster, tally, "invalid UTF-8", b'{"type":"a","subject":"\xc3\x28","data":{}}', 400,
           mention="UTF-8")
    expect(poster, tally, "UTF-8 surrogate", b'{"type":"a","subject":"\xed\xa0\x80","data":{}}',
           400, mention="UTF-8")
    expect(poster, tally, "NUL byte", enc(short()) + b"\x00", 400)
    for method, path, status in (("DELETE", "/api/events", 405), ("PUT", "/api/events", 405),
                                 ("GET", "/api/nothing", 404), ("POST", "/nothing", 404)):
        got, answer = h.http_call(agent.http_port, method, path, body=b"{}" if method != "GET"
                                  else None, headers={"Content-Type": "application/json"})
        error_of(got, answer, "%s %s" % (method, path))
        h.check(got == status, "%s %s: expected %d, got %d" % (method, path, status, got))


def random_bytes(poster, tally, rng, n=1000):
    """n random byte strings: each a 4xx with a JSON error body."""
    for k in range(n):
        body = rng.randbytes(rng.choice((rng.randint(0, 16), rng.randint(0, 600))))
        if k % 4 == 0:  # start like JSON to get past the first byte
            body = rng.choice((b"{", b"[", b'{"type":', b'[{"')) + body
        try:
            got, answer = poster.post(body)
        except (OSError, http.client.HTTPException) as e:
            raise h.TestFailure("random body #%d (%r...) broke the connection: %r" %
                                (k, body[:40], e))
        err = error_of(got, answer, "random body #%d %.60r" % (k, body))
        tally.note(got, answer, reason_of(got, err))


def mutate(rng, body):
    """body with a few random byte flips, insertions, deletions or a cut."""
    b = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        op, at = rng.randrange(4), rng.randrange(len(b) or 1)
        if op == 0 and b:
            b[at] = rng.randrange(256)
        elif op == 1:
            b[at:at] = bytes([rng.choice(b'{}[]",:\\0-9ae \x80\xff')])
        elif op == 2 and b:
            del b[at]
        else:
            del b[at:]
    return bytes(b)


def mutations(poster, tally, rng, n=500):
    """n mutated valid bodies (short and full form): 202 or 4xx with a JSON
    error, never a 5xx or a broken connection."""
    full = {"specversion": "1.0", "id": "x", "source": "/lab/x", "type": "t.x",
            "time": "2026-01-02T03:04:05.678Z", "datacontenttype": "application/json",
            "data": {"a": [1, 2, {"b": None}]}}
    seeds = [json.dumps([short(), short(subject="dev-2")]).encode(),
             json.dumps(short(data={"k": "v", "n": 1.5})).encode()]
    for k in range(n):
        full["id"] = "mut-%d" % k
        body = mutate(rng, rng.choice(seeds + [json.dumps(full).encode()]))
        try:
            got, answer = poster.post(body)
        except (OSError, http.client.HTTPException) as e:
            raise h.TestFailure("mutated body %r broke the connection: %r" % (body[:80], e))
        if got == 202:
            tally.note(got, answer)
        else:
            err = error_of(got, answer, "mutated body %.80r" % body)
            tally.note(got, answer, reason_of(got, err))


def check_counters(agent, tally):
    """ingest.rejected adds up to the refused POSTs, reason by reason."""
    st = agent.status()["ingest"]
    rejected = st["rejected"]
    for reason, n in tally.refused.items():
        h.check(rejected.get(reason) == n, "ingest.rejected.%s is %s; the test counted %d "
                "(all: %s vs %s)" % (reason, rejected.get(reason), n, rejected, tally.refused))
    h.check(sum(rejected.values()) == sum(tally.refused.values()),
            "ingest.rejected adds up to %d, refused requests: %d (%s vs %s)" %
            (sum(rejected.values()), sum(tally.refused.values()), rejected, tally.refused))
    h.check(st["accepted"] == tally.accepted, "ingest.accepted %d, the test counted %d" %
            (st["accepted"], tally.accepted))


def hostile_cases(env, agent, poster):
    """Legal-looking bodies that must not hurt: an escaped NUL must not be
    stored altered, deep nesting must be refused and the agent live on."""
    data = {"k": "ab\u0000cd"}
    got, answer = poster.post(json.dumps(short(data=data)).encode())
    if got == 202:
        seq = json.loads(answer)["events"][0]["sequence"]
        stored = stored_data(env, agent.db, seq)
        h.check(stored == data, "event with \\u0000 in data answered 202 but stored altered: "
                "sent %r, journal holds %r" % (data, stored))
    else:
        error_of(got, answer, "escaped NUL")
    for depth in (100, 900, 5000):
        for what, body in (("array", b"[" * depth + b"]" * depth),
                           ("data", b'{"type":"a","subject":"s","data":' + b'{"a":' * depth +
                            b"1" + b"}" * depth + b"}")):
            try:
                got, answer = poster.post(body)
            except (OSError, http.client.HTTPException) as e:
                rc = agent.proc.wait_exit(1)
                raise h.TestFailure("nesting %s depth %d (%d bytes): no answer (%r); the agent %s"
                                    % (what, depth, len(body), e, "is alive" if rc is None
                                       else h.exit_text(rc)))
            if got != 202:
                error_of(got, answer, "nesting %s depth %d" % (what, depth))
    h.check(h.http_call(agent.http_port, "GET", "/healthz")[0] == 200, "no /healthz after nesting")


def stored_data(env, db, seq):
    """The data of event seq as the journal holds it (`edgespool journal cat`)."""
    r = env.cli("journal", "cat", db, "--from", seq, "--limit", 1)
    h.check(r.returncode == 0 and r.stdout.strip(), "journal cat --from %d: exit %d: %s" %
            (seq, r.returncode, r.stderr))
    ev = json.loads(r.stdout.splitlines()[0])
    h.check(ev.get("sequence") == str(seq), "journal cat --from %d gave %.200r" % (seq, ev))
    return ev.get("data")


def scenario(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 32)
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    rng = random.Random(seed)
    broker = env.broker()
    agent = env.agent(broker.port, extra=[
        "--http.max_body", str(MAX_BODY), "--event.max_bytes", str(MAX_EVENT),
        "--http.max_batch", str(MAX_BATCH)])
    agent.start()
    poster = h.Poster(agent.http_port)
    tally = Tally()
    deterministic_cases(agent, poster, tally)
    random_bytes(poster, tally, rng)
    mutations(poster, tally, rng)
    h.check(h.http_call(agent.http_port, "GET", "/healthz")[0] == 200, "/healthz not 200")
    h.check(poster.post_acked(h.make_events(0, 3)), "a valid batch was not accepted")
    tally.accepted += 3
    check_counters(agent, tally)
    stats = h.journal_stats(env, agent.db)
    h.check(stats["count"] == tally.accepted, "journal holds %d events, %d were answered 202" %
            (stats["count"], tally.accepted))
    hostile_cases(env, agent, poster)
    agent.proc.check_alive()
    return "%d requests: statuses %s; %d events accepted = journal count; rejected %s" % (
        sum(tally.statuses.values()), dict(sorted(tally.statuses.items())), tally.accepted,
        tally.refused)


if __name__ == "__main__":
    h.main(scenario, "bad input to POST /api/events is refused, counted, never stored")
