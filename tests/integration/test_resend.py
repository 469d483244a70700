#!/usr/bin/env python3
"""test_resend: the re-send service, spoken to directly over MQTT.

mosquitto_pub sends requests to edgespool/site1/gw1/cmd/resend and
mosquitto_sub records the replies and the events. Every request is
answered: "ok" with the range re-published (same ids, same sequences, on
the events' topics), "partial" for a range reaching past the newest event,
"invalid" with a reason for a request that makes no sense, and "gone" for
a range that retention removed (the agent restarted with journal.retain_s
0). The status message tells the held range.
"""
import json
import subprocess

import harness as h

TOTAL = 50
ROOT = "edgespool/site1/gw1"


class Listener:
    """mosquitto_sub -v on the node's replies, events and status."""

    def __init__(self, env, port):
        self.path = env.path("listener.txt")
        self.proc = env.spawn("listener", ["mosquitto_sub", "-p", str(port), "-v", "-q", "1",
                                           "-t", ROOT + "/reply/resend", "-t", ROOT + "/ev/#",
                                           "-t", ROOT + "/status"])
        self.log = env.path("listener.log")

    def lines(self):
        """(topic, payload dict) for every line mosquitto_sub printed."""
        out = []
        with open(self.log) as f:
            for line in f:
                topic, _, payload = line.rstrip("\n").partition(" ")
                if topic.startswith(ROOT):
                    out.append((topic, json.loads(payload)))
        return out

    def reply(self, request_id):
        """The reply with request_id, or None."""
        for topic, msg in self.lines():
            if topic.endswith("/reply/resend") and msg.get("request_id") == request_id:
                return msg
        return None


def ask(port, request, what):
    """Publishes a re-send request (a dict, or raw text)."""
    payload = request if isinstance(request, str) else json.dumps(request)
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", ROOT + "/cmd/resend",
                        "-m", payload], capture_output=True, text=True, timeout=10)
    h.check(r.returncode == 0, "mosquitto_pub (%s): %s" % (what, r.stderr))


def answer(listener, request_id):
    """Waits for the reply to request_id."""
    return h.wait_for(lambda: listener.reply(request_id), 15, "the reply to %s" % request_id)


def event_copies(listener, seq):
    """The ids of every copy of sequence seq seen on event topics."""
    return [m["id"] for t, m in listener.lines() if "/ev/" in t and m.get("sequence") == str(seq)]


def scenario(env):
    broker = env.broker()
    agent = env.agent(broker.port)
    agent.start()
    listener = Listener(env, broker.port)
    h.wait_for(lambda: any(t.endswith("/status") for t, _ in listener.lines()), 10,
               "the listener to see the retained status")
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(TOTAL) == TOTAL, "not every batch was acknowledged")
    acked = poster.snapshot()
    h.wait_for(lambda: agent.pending() == 0, 20, "everything to be published")
    by_seq = {seq: i for i, seq in acked.items()}

    ask(broker.port, {"from": 10, "to": 20, "request_id": "t1"}, "ok")
    r = answer(listener, "t1")
    h.check(r["status"] == "ok" and (r["sent_from"], r["sent_to"]) == (10, 20), "t1: %s" % r)
    for seq in range(10, 21):
        copies = h.wait_for(lambda: len(event_copies(listener, seq)) >= 2 or None, 10,
                            "a second copy of sequence %d" % seq)
        ids = event_copies(listener, seq)
        h.check(set(ids) == {by_seq[seq]}, "sequence %d came as ids %s" % (seq, ids))

    ask(broker.port, {"from": 45, "to": 80, "request_id": "t2"}, "partial")
    r = answer(listener, "t2")
    h.check(r["status"] == "partial" and (r["sent_from"], r["sent_to"]) == (45, TOTAL),
            "t2: %s" % r)
    ask(broker.port, {"from": 0, "to": 3, "request_id": "t3"}, "invalid")
    h.wait_for(lambda: any(t.endswith("/reply/resend") and m["status"] == "invalid" and
                           m.get("reason") for t, m in listener.lines()), 10,
               "an 'invalid' reply with a reason")
    ask(broker.port, "not json at all", "garbage")
    h.wait_for(lambda: sum(1 for t, m in listener.lines() if t.endswith("/reply/resend") and
                           m["status"] == "invalid") >= 2, 10, "a second 'invalid' reply")

    agent.proc.signal(15)
    h.check(agent.proc.wait_exit(10) == 0, "the agent did not stop on SIGTERM")
    agent.extra += ["--journal.retain_s", "0"]
    agent.start()
    h.wait_for(lambda: h.journal_stats(env, agent.db)["count"] == 0, 15,
               "retention to remove the acked events")
    ask(broker.port, {"from": 1, "to": 5, "request_id": "t4"}, "gone")
    r = answer(listener, "t4")
    h.check(r["status"] == "gone" and (r["gone_from"], r["gone_to"]) == (1, 5), "t4: %s" % r)
    st = [m for t, m in listener.lines() if t.endswith("/status")][-1]
    h.check(st["latest_seq"] == TOTAL, "status after retention: %s" % st)
    return "ok, partial, invalid (twice) and gone replies, re-sent copies keep id and sequence"


if __name__ == "__main__":
    h.main(scenario, "the re-send service answers every request, and re-sends faithfully")
