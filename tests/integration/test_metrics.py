#!/usr/bin/env python3
"""test_metrics: GET /metrics of the agent and the bridge is valid Prometheus
text and agrees with /api/status.

An agent publishes to an edge broker; the real cloud-bridge forwards to a
cloud broker. 500 events are posted, 50 of them alarms (and one malformed
request). Then, on both programs:
- /metrics answers 200 with the text format's Content-Type, and Prometheus's
  own parser and linter (`promtool check metrics`, from Debian's prometheus
  package) accept it without a single remark;
- the numbers agree with /api/status: events journaled, acked and pending,
  the latency histogram's count equals the acked events, the refused
  counter has the malformed request, a GET /api/status adds exactly one to
  edgespool_http_requests_total{route="/api/status"}, every link is up;
- the bridge's priority lanes: every edgespool_lane_* series for high,
  normal and low; the ALARMS alarm.x events (lanes.high's default alarm.#)
  went in the high lane, the readings in the normal one, none in low; each
  lane's counters agree with /api/status's cloud.lanes, whose entries are
  sane (bytes_per_event = bytes / sent, at rest: no backlog, eta_s 0);
  nothing in flight (edgespool_cloud_inflight_bytes 0);
- the edge broker stopped: edgespool_link_up of the agent's broker link and
  of the bridge's edge link go to 0; started again: back to 1, and their
  edgespool_reconnects_total grew by one;
- both exit 0 on SIGTERM.
"""
import re
import shutil
import signal
import subprocess

import harness as h

EVENTS = 500
ALARMS = 50  # of the EVENTS: alarm.x, the high lane by default
LANES = ("high", "normal", "low")
LANE_FIELDS = {"lane", "backlog", "oldest_age_s", "held", "sent", "acked", "expired", "bytes",
               "bytes_per_event", "drain_per_s", "eta_s"}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def promtool():
    path = shutil.which("promtool")
    h.check(path, "promtool not found: install Debian's prometheus package (scripts/deps.sh)")
    return path


def scrape(port):
    """GET /metrics: checks status and type, returns the text."""
    conn = h.http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        ctype = resp.getheader("Content-Type", "")
    finally:
        conn.close()
    h.check(resp.status == 200, "GET /metrics answered %d: %.200s" % (resp.status, body))
    h.check(ctype.startswith("text/plain; version=0.0.4"),
            "GET /metrics Content-Type is %r" % ctype)
    return body


def lint(text, who):
    """promtool check metrics: parses the text and lints the names; any
    remark fails the test."""
    r = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    h.check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
            "%s: promtool check metrics (exit %d):\n%s%s" % (who, r.returncode, r.stdout,
                                                              r.stderr))


def parse(text):
    """{(name, frozenset(labels)): value} from a scrape (already validated by
    promtool; this only reads the numbers back)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        h.check(m, "cannot read the sample line %r" % line)
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    h.check(key in samples, "no sample %s%r" % (name, labels))
    return samples[key]


def scrape_checked(port, who):
    text = scrape(port)
    lint(text, who)
    return parse(text)


def check_agent(agent):
    def settled():
        st = agent.status()
        m = scrape_checked(agent.http_port, "agent")
        ok = (st["broker"]["acked"] == EVENTS and st["journal"]["pending"] == 0 and
              value(m, "edgespool_events_acked_total") == EVENTS)
        return ok and (st, m)
    st, m = h.wait_for(settled, 30, "the agent's acks to show")
    j = st["journal"]
    pairs = [
        ("edgespool_events_journaled_total", {}, j["appended"]),
        ("edgespool_events_acked_total", {}, st["broker"]["acked"]),
        ("edgespool_events_published_total", {}, st["broker"]["published"]),
        ("edgespool_events_pending", {}, j["pending"]),
        ("edgespool_journal_cap_bytes", {}, j["max_bytes"]),
        ("edgespool_events_ingested_total", {"via": "http"}, st["ingest"]["accepted"]),
        ("edgespool_events_refused_total", {"reason": "malformed"},
         st["ingest"]["rejected"]["malformed"]),
        ("edgespool_publish_latency_seconds_count", {}, EVENTS),
        ("edgespool_publish_latency_seconds_bucket", {"le": "+Inf"}, EVENTS),
        ("edgespool_link_up", {"link": "broker"}, 1),
    ]
    for name, labels, want in pairs:
        got = value(m, name, **labels)
        h.check(got == want, "agent: %s%r is %s, /api/status says %s" %
                (name, labels, got, want))
    h.check(j["acked_seq"] == EVENTS, "agent: journal acked_seq %d" % j["acked_seq"])
    h.check(value(m, "edgespool_events_refused_total", reason="malformed") == 1,
            "agent: the malformed request was not counted")


def check_http_counter(port, who):
    def count():
        m = scrape_checked(port, who)
        key = ("edgespool_http_requests_total",
               frozenset({"method": "GET", "route": "/api/status", "status": "200"}.items()))
        return m.get(key, 0)
    # A request is counted when its handler returns, just after the answer
    # is sent: the count can lag the answer by a moment (seen under load), so
    # it is polled, both before (the harness's own last /api/status) and after.
    seen = [count()]

    def steady():
        seen.append(count())
        return seen[-1] == seen[-2] and (seen[-1],)
    before, = h.wait_for(steady, 10, "%s: the request count to settle" % who)
    h.check(h.http_call(port, "GET", "/api/status")[0] == 200, "GET /api/status")
    h.wait_for(lambda: count() >= before + 1, 10, "%s: GET /api/status counted" % who)
    after = count()
    h.check(after == before + 1, "%s: GET /api/status counted %s -> %s" % (who, before, after))


def check_lanes(st, m):
    """The lanes' series and /api/status's cloud.lanes, at rest after the
    ALARMS alarms and EVENTS - ALARMS readings went."""
    lanes = st["cloud"]["lanes"]
    h.check([entry.get("lane") for entry in lanes] == list(LANES),
            "bridge: cloud.lanes names %s" % lanes)
    want_acked = {"high": ALARMS, "normal": EVENTS - ALARMS, "low": 0}
    for entry in lanes:
        lane = entry["lane"]
        h.check(set(entry) == LANE_FIELDS, "bridge: cloud.lanes %s has %s" %
                (lane, sorted(entry)))
        h.check(entry["sent"] >= want_acked[lane] and entry["acked"] == want_acked[lane] and
                entry["expired"] == 0 and entry["backlog"] == 0 and entry["held"] == 0 and
                entry["oldest_age_s"] == 0 and entry["eta_s"] == 0 and
                entry["drain_per_s"] >= 0 and (entry["bytes"] > 0) == (lane != "low"),
                "bridge: lane %s at rest: %s" % (lane, entry))
        per = entry["bytes"] / entry["sent"] if entry["sent"] else 0
        h.check(abs(entry["bytes_per_event"] - per) < 1e-6,
                "bridge: lane %s bytes_per_event %s, bytes / sent %s" %
                (lane, entry["bytes_per_event"], per))
        pairs = [("edgespool_lane_sent_total", entry["sent"]),
                 ("edgespool_lane_acked_total", entry["acked"]),
                 ("edgespool_lane_expired_total", entry["expired"]),
                 ("edgespool_lane_bytes_total", entry["bytes"]),
                 ("edgespool_lane_backlog_events", 0),
                 ("edgespool_lane_held_events", 0),
                 ("edgespool_lane_oldest_age_seconds", 0),
                 ("edgespool_lane_drain_eta_seconds", 0)]
        for name, want in pairs:
            got = value(m, name, lane=lane)
            h.check(got == want, "bridge: %s{lane=%r} is %s, expected %s" %
                    (name, lane, got, want))
        h.check(value(m, "edgespool_lane_drain_rate", lane=lane) >= 0,
                "bridge: edgespool_lane_drain_rate{lane=%r} < 0" % lane)
    h.check(value(m, "edgespool_cloud_inflight_bytes") == st["cloud"]["inflight_bytes"] == 0,
            "bridge: batch bytes in flight at rest: %s" % st["cloud"]["inflight_bytes"])
    h.check(value(m, "edgespool_cloud_inflight_cap_bytes") == st["cloud"]["inflight_cap"] >= 0,
            "bridge: edgespool_cloud_inflight_cap_bytes %s, cloud.inflight_cap %s" %
            (value(m, "edgespool_cloud_inflight_cap_bytes"), st["cloud"]["inflight_cap"]))


def check_bridge(bridge, edge_link):
    def settled():
        st = bridge.status()
        m = scrape_checked(bridge.http_port, "bridge")
        # the lanes' backlogs are counted every 2 s: they may lag the acks
        ok = (st["cloud"]["acked"] == EVENTS and bridge.quiet() and
              value(m, "edgespool_events_acked_total") == EVENTS and
              all(entry["backlog"] == 0 for entry in st["cloud"]["lanes"]) and
              all(value(m, "edgespool_lane_backlog_events", lane=lane) == 0 for lane in LANES))
        return ok and (st, m)
    st, m = h.wait_for(settled, 30, "the bridge's acks to show")
    pairs = [
        ("edgespool_events_journaled_total", {}, st["inbox"]["journaled"]),
        ("edgespool_events_acked_total", {}, st["cloud"]["acked"]),
        ("edgespool_events_forwarded_total", {}, st["cloud"]["forwarded"]),
        ("edgespool_events_pending", {}, st["inbox"]["backlog"]),
        ("edgespool_duplicates_dropped_total", {}, st["inbox"]["duplicates_dropped"]),
        ("edgespool_holes_open", {}, st["gaps"]["holes_open"]),
        ("edgespool_forward_latency_seconds_count", {}, EVENTS),
        ("edgespool_link_up", {"link": "cloud"}, 1),
        ("edgespool_link_up", {"link": edge_link}, 1),
    ]
    for name, labels, want in pairs:
        got = value(m, name, **labels)
        h.check(got == want, "bridge: %s%r is %s, /api/status says %s" %
                (name, labels, got, want))
    check_lanes(st, m)


def link_state(port, who, link):
    m = scrape_checked(port, who)
    return (value(m, "edgespool_link_up", link=link),
            value(m, "edgespool_reconnects_total", link=link))


def broker_restart(edge, agent, bridge, edge_link):
    a0 = link_state(agent.http_port, "agent", "broker")
    b0 = link_state(bridge.http_port, "bridge", edge_link)
    edge.stop()
    h.wait_for(lambda: link_state(agent.http_port, "agent", "broker")[0] == 0, 15,
               "the agent's edgespool_link_up to go to 0")
    h.wait_for(lambda: link_state(bridge.http_port, "bridge", edge_link)[0] == 0, 15,
               "the bridge's edge edgespool_link_up to go to 0")
    edge.start()
    h.wait_for(lambda: link_state(agent.http_port, "agent", "broker") == (1, a0[1] + 1), 20,
               "the agent to reconnect (link_up 1, reconnects + 1)")
    h.wait_for(lambda: link_state(bridge.http_port, "bridge", edge_link) == (1, b0[1] + 1), 20,
               "the bridge to reconnect (link_up 1, reconnects + 1)")


def scenario(env):
    promtool()
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    agent = env.agent(edge.port)
    agent.start()
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(EVENTS - ALARMS) == EVENTS - ALARMS,
            "not every event was acknowledged")
    alarms = [{"type": "alarm.x", "subject": "dev-%d" % (k % 5), "data": {"n": k}}
              for k in range(ALARMS)]
    h.check(poster.post_acked(alarms), "the alarms were not acknowledged")
    status, _ = poster.post(b"{not json")
    h.check(status == 400, "a malformed body answered %d" % status)
    check_agent(agent)
    edge_link = "edge:mqtt://127.0.0.1:%d" % edge.port
    check_bridge(bridge, edge_link)
    check_http_counter(agent.http_port, "agent")
    check_http_counter(bridge.http_port, "bridge")
    broker_restart(edge, agent, bridge, edge_link)
    agent.proc.signal(signal.SIGTERM)
    rc = agent.proc.wait_exit(20)
    h.check(rc == 0, "the agent %s after SIGTERM (expected exit 0)" % h.exit_text(rc))
    bridge.stop()
    return ("%d events (%d alarms); both /metrics pass promtool and agree with /api/status, "
            "the bridge's lanes too" % (EVENTS, ALARMS))


if __name__ == "__main__":
    h.main(scenario, "the agent's and the bridge's /metrics")
