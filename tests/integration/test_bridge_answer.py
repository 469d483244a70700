#!/usr/bin/env python3
"""test_bridge_answer: re-sends asked on the cloud broker, answered by the bridge.

An agent (gw1) behind the real cloud-bridge; mosquitto_pub asks on the cloud
broker's edgespool/site1/gw1/cmd/resend, mosquitto_sub records the cloud's
replies and events. Then:
- a range the inbox holds is answered from it: "ok", a second copy of each
  event on the cloud (same id, same sequence);
- a re-send the agent makes unasked (a request on the edge broker) is still
  dropped at the bridge: no second copy reaches the cloud;
- a flood of requests from one asker is bounded: at most a quarter of the
  queue waits, the rest are answered "busy" or dropped, counted;
- the bridge restarted with journal.retain_s 0 (the inbox evicted every
  forwarded event): the request is relayed to the agent and its re-published
  events, already forwarded once, pass the bridge as answers; the reply
  carries the asker's request id;
- the agent restarted with journal.retain_s 0 too: "gone" for the range;
- GET /metrics says what /api/status's cloud_resend says
  (edgespool_cloud_resend_*).
"""
import json
import re
import subprocess

import harness as h

TOTAL = 50
ROOT = "edgespool/site1/gw1"


class Listener:
    """mosquitto_sub -v on the cloud's replies and events of gw1."""

    def __init__(self, env, port):
        self.proc = env.spawn("listener", ["mosquitto_sub", "-p", str(port), "-v", "-q", "1",
                                           "-t", ROOT + "/reply/resend", "-t", ROOT + "/ev/#"])
        self.log = env.path("listener.log")

    def lines(self):
        out = []
        with open(self.log) as f:
            for line in f:
                topic, _, payload = line.rstrip("\n").partition(" ")
                if topic.startswith(ROOT):
                    out.append((topic, json.loads(payload)))
        return out

    def reply(self, request_id):
        for topic, msg in self.lines():
            if topic.endswith("/reply/resend") and msg.get("request_id") == request_id:
                return msg
        return None

    def copies(self, seq):
        return [m["id"] for t, m in self.lines() if "/ev/" in t and m.get("sequence") == str(seq)]


def ask(port, request, topic=ROOT + "/cmd/resend"):
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic,
                        "-m", json.dumps(request)], capture_output=True, text=True, timeout=10)
    h.check(r.returncode == 0, "mosquitto_pub: %s" % r.stderr)


def answer(listener, request_id):
    return h.wait_for(lambda: listener.reply(request_id), 20, "the reply to %s" % request_id)


def check_copies(listener, by_seq, first, last, n):
    for seq in range(first, last + 1):
        h.wait_for(lambda: len(listener.copies(seq)) >= n or None, 15,
                   "copy %d of sequence %d at the cloud" % (n, seq))
        ids = listener.copies(seq)
        h.check(set(ids) == {by_seq[seq]}, "sequence %d came as ids %s" % (seq, ids))


def restart(proc_owner, env):
    proc_owner.proc.signal(15)
    h.check(proc_owner.proc.wait_exit(20) == 0, "%s did not stop on SIGTERM" % proc_owner.name)
    proc_owner.extra += ["--journal.retain_s", "0"]
    proc_owner.start()
    h.wait_for(lambda: h.journal_stats(env, proc_owner.db)["count"] == 0, 20,
               "retention to remove %s's forwarded events" % proc_owner.name)


METRIC = re.compile(r'^(edgespool_cloud_resend_\w+)(?:\{(\w+)="(\w+)"\})? (\S+)$', re.M)


def resend_metrics(bridge):
    """({(name, label value): value} of /metrics, the same from /api/status)."""
    status, body = h.http_call(bridge.http_port, "GET", "/metrics")
    h.check(status == 200, "GET /metrics answered %d" % status)
    text = body.decode()
    for name in ("requests_total", "events_total", "relays_total", "replies_total",
                 "dropped_total", "waiting"):
        h.check("# HELP edgespool_cloud_resend_%s " % name in text,
                "/metrics has no HELP for edgespool_cloud_resend_%s" % name)
    got = {(m[0], m[2]): float(m[3]) for m in METRIC.findall(text)}
    st = bridge.status()["cloud_resend"]
    want = {("edgespool_cloud_resend_requests_total", ""): st["requests"],
            ("edgespool_cloud_resend_events_total", "inbox"): st["from_inbox"],
            ("edgespool_cloud_resend_events_total", "agent"): st["passed"],
            ("edgespool_cloud_resend_relays_total", ""): st["relayed"],
            ("edgespool_cloud_resend_dropped_total", ""): st["dropped"],
            ("edgespool_cloud_resend_waiting", ""): st["waiting"]}
    for k in ("ok", "partial", "gone", "busy", "invalid"):
        want[("edgespool_cloud_resend_replies_total", k)] = st[k]
    return got, want


def check_metrics(bridge):
    """The cloud_resend counters of /api/status, read again from /metrics
    (polled: a counter may move between the two reads)."""
    seen = []

    def agree():
        seen.append(resend_metrics(bridge))
        return seen[-1][0] == seen[-1][1] and seen[-1][0]
    try:
        got = h.wait_for(agree, 10, "/metrics to agree with /api/status")
    except h.TestFailure:
        h.check(False, "/metrics says %s, /api/status %s" % seen[-1])
    h.check(got[("edgespool_cloud_resend_replies_total", "gone")] >= 1 and
            got[("edgespool_cloud_resend_events_total", "agent")] >= 6 and
            got[("edgespool_cloud_resend_relays_total", "")] >= 1,
            "/metrics does not show the relay, its copies and the gone answer: %s" % got)


def scenario(env):
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    bridge = env.bridge(edge.port, cloud.port, extra=["--cloud.resend_rate", "200",
                                                      "--cloud.resend_queue", "16"])
    bridge.start()
    agent = env.agent(edge.port)
    agent.start()
    listener = Listener(env, cloud.port)

    def probed():  # subscribed: what is published from now on reaches it
        ask(cloud.port, {"request_id": "probe"}, ROOT + "/reply/resend")
        return listener.reply("probe")
    h.wait_for(probed, 10, "the listener to subscribe", interval=0.2)
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(TOTAL) == TOTAL, "not every batch was acknowledged")
    by_seq = {seq: i for i, seq in poster.snapshot().items()}
    h.wait_for(lambda: all(listener.copies(s) for s in range(1, TOTAL + 1)), 30,
               "every event at the cloud")
    h.wait_for(bridge.quiet, 20, "the bridge to be quiet")

    # From the inbox.
    ask(cloud.port, {"from": 10, "to": 20, "request_id": "c-1"})
    r = answer(listener, "c-1")
    h.check(r["status"] == "ok" and (r["sent_from"], r["sent_to"]) == (10, 20), "c-1: %s" % r)
    check_copies(listener, by_seq, 10, 20, 2)

    # An unsolicited re-send still stops at the bridge.
    dups = bridge.status()["inbox"]["duplicates_dropped"]
    ask(edge.port, {"from": 21, "to": 25, "request_id": "edge-1"})
    h.wait_for(lambda: bridge.status()["inbox"]["duplicates_dropped"] >= dups + 5, 15,
               "the bridge to drop the agent's unasked copies")
    h.hold(1.0)
    for seq in range(21, 26):
        h.check(len(listener.copies(seq)) == 1, "an unasked copy of %d reached the cloud" % seq)

    # A flood from one asker: a quarter of the queue waits, the rest is refused.
    before = bridge.status()["cloud_resend"]
    flood = "\n".join(json.dumps({"from": 1, "to": TOTAL, "request_id": "flood-%d" % i})
                      for i in range(200))
    r = subprocess.run(["mosquitto_pub", "-p", str(cloud.port), "-q", "1", "-t",
                        ROOT + "/cmd/resend", "-l"], input=flood + "\n", capture_output=True,
                       text=True, timeout=20)
    h.check(r.returncode == 0, "mosquitto_pub -l: %s" % r.stderr)

    def flood_done():
        st = bridge.status()["cloud_resend"]
        return st if st["requests"] >= before["requests"] + 200 and st["waiting"] == 0 else None
    st = h.wait_for(flood_done, 60, "the flood to be dealt with")
    answered = sum(st[k] - before[k] for k in ("ok", "busy"))
    h.check(st["busy"] - before["busy"] + st["dropped"] - before["dropped"] > 0,
            "200 requests at once were all taken: %s" % st)
    h.check(st["ok"] - before["ok"] <= 200 and answered + st["dropped"] - before["dropped"] >= 200,
            "the flood's requests were not all answered or counted: %s" % st)
    h.check(st["from_inbox"] - before["from_inbox"] <= (st["ok"] - before["ok"]) * TOTAL,
            "more events re-published than the ok replies cover: %s" % st)

    # Evicted from the inbox: relayed to the agent, its copies pass as answers.
    restart(bridge, env)
    ask(cloud.port, {"from": 30, "to": 35, "request_id": "c-2"})
    r = answer(listener, "c-2")
    h.check(r["status"] == "ok" and (r["sent_from"], r["sent_to"]) == (30, 35), "c-2: %s" % r)
    check_copies(listener, by_seq, 30, 35, 2)
    h.check(bridge.status()["cloud_resend"]["relayed"] >= 1, "nothing was relayed")

    # Evicted from both: gone.
    restart(agent, env)
    ask(cloud.port, {"from": 1, "to": 5, "request_id": "c-3"})
    r = answer(listener, "c-3")
    h.check(r["status"] == "gone" and (r["gone_from"], r["gone_to"]) == (1, 5), "c-3: %s" % r)
    h.wait_for(lambda: bridge.status()["cloud_resend"]["waiting"] == 0, 10,
               "no request to wait")
    check_metrics(bridge)
    return ("inbox answers, relayed answers, gone, unasked copies dropped, a flood bounded: %s"
            % bridge.status()["cloud_resend"])


if __name__ == "__main__":
    h.main(scenario, "the bridge answers re-sends asked on the cloud broker")
