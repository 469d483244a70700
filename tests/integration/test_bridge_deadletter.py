#!/usr/bin/env python3
"""test_bridge_deadletter: what is not a forwardable event never reaches the
cloud; it is counted and kept as a dead letter, and forwarding goes on.

Two agents post 200 events each; then mosquitto_pub (QoS 1) puts bad
messages on the edge broker:
- on an agent-like event topic (edgespool/site1/gw7/ev/sensor.reading), which
  the bridge br1 subscribes to: not JSON, an empty payload, a JSON array,
  JSON that is not a CloudEvent, a CloudEvent without id, one without the
  sequence extension, one with a sequence that is not a number, one larger
  than event.max_bytes;
- on topics outside the <root>/<site>/<node>/ev/<type> layout
  (edgespool/site1/gw9, edgespool/site1/gw9/xx/yy, edgespool/site1/gw9/ev):
  br1's event filter (edgespool/+/+/ev/#) matches only the last ('#' matches
  its parent level), so a second bridge br9 subscribes with --edge.filter
  edgespool/site1/gw9/# to see them all; plus edgespool/site1 alone, which no
  bridge matches.
Then each agent posts 500 more. Asserted:
- br1 counts exactly the bad messages its filter matches in inbox.invalid and
  inbox.deadletters (kept in its journal), br9 exactly its own; br9 journals and forwards none;
- the cloud sub receives exactly the acknowledged ids (nothing else, nothing
  invalid), every one of them, also those posted after the bad messages;
- br1 journaled and forwarded exactly the 1,400 valid events, keeps running,
  and its inbox (with the dead letters) verifies.
"""
import json
import shutil
import subprocess

import harness as h

BEFORE, AFTER = 200, 500  # per agent


def mosquitto_pub(port, topic, payload):
    """Publishes one QoS 1 message with mosquitto_pub; payload None sends an
    empty message. Waits for it to complete (PUBACK)."""
    argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
            "-i", "it-pub"]
    argv += ["-n"] if payload is None else ["-s"]
    r = subprocess.run(argv, input=None if payload is None else payload, capture_output=True,
                       timeout=20)
    h.check(r.returncode == 0, "mosquitto_pub to %s failed: %s" % (topic, r.stderr))


def cloudevent(**kw):
    ev = {"specversion": "1.0", "id": "0190f0e4-5b1a-7c3e-8d2f-1234567890ab",
          "source": "/site1/gw7", "type": "sensor.reading", "subject": "dev-1",
          "time": "2026-11-27T00:44:12.763Z", "datacontenttype": "application/json",
          "data": {"celsius": 21.5}, "sequence": "5"}
    for k, v in kw.items():
        if v is None:
            ev.pop(k)
        else:
            ev[k] = v
    return json.dumps(ev).encode()


def bad_events():
    """(what, payload) for br1's event topic."""
    return [
        ("not JSON", b"this is {not json"),
        ("empty payload", None),
        ("a JSON array", b"[1, 2, 3]"),
        ("JSON, not a CloudEvent", b'{"hello": "world", "n": 1}'),
        ("a CloudEvent without id", cloudevent(id=None)),
        ("a CloudEvent without the sequence extension", cloudevent(sequence=None)),
        ("a sequence that is not a number", cloudevent(sequence="twelve")),
        ("larger than event.max_bytes", cloudevent(data={"pad": "x" * (80 * 1024)})),
    ]


def outside_topics():
    """Topics outside the layout that br9's filter edgespool/site1/gw9/# matches."""
    return ["edgespool/site1/gw9", "edgespool/site1/gw9/xx/yy", "edgespool/site1/gw9/ev"]


def matches(filt, topic):
    """MQTT topic filter matching ('+' one level, '#' this level and below)."""
    f, t = filt.split("/"), topic.split("/")
    for k, level in enumerate(f):
        if level == "#":
            return True
        if k >= len(t) or (level != "+" and level != t[k]):
            return False
    return len(f) == len(t)


def post_all(agents, posters, n):
    threads = [h.PosterThread(p, n, timeout=30) for p in posters]
    for t in threads:
        t.start()
    for t in threads:
        t.finish(60)


def exact(bridge, key, want, what):
    """Waits for the bridge's inbox[key] to reach want, then checks it is
    exactly want."""
    h.wait_for(lambda: bridge.status()["inbox"][key] >= want, 15,
               "%s inbox.%s to reach %d" % (bridge.name, key, want))
    got = bridge.status()["inbox"][key]
    h.check(got == want, "%s inbox.%s is %d, expected exactly %d (%s)" %
            (bridge.name, key, got, want, what))


def scenario(env):
    h.check(shutil.which("mosquitto_pub"), "mosquitto_pub is not installed (mosquitto-clients)")
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    csub = env.sub(cloud.port, name="cloudsub", from_start=True)
    br1 = env.bridge(edge.port, cloud.port)
    br1.start()
    br9 = env.bridge(edge.port, cloud.port, name="bridge9", node="br9",
                     extra=["--edge.filter", "edgespool/site1/gw9/#"])
    br9.start()
    agents = h.start_agents(env, edge.port)
    posters = [h.Poster(a.http_port) for a in agents]
    post_all(agents, posters, BEFORE)
    csub.wait_all(h.merge_acked(h.acked_by_node(agents, posters)), 30)

    bad = bad_events()
    for what, payload in bad:
        mosquitto_pub(edge.port, "edgespool/site1/gw7/ev/sensor.reading", payload)
    outside = outside_topics()
    for topic in outside:
        mosquitto_pub(edge.port, topic, cloudevent(source="/site1/gw9"))
    mosquitto_pub(edge.port, "edgespool/site1", cloudevent())  # matches no bridge

    post_all(agents, posters, AFTER)
    acked = h.acked_by_node(agents, posters)
    every = h.merge_acked(acked)
    h.check(len(every) == 2 * (BEFORE + AFTER), "%d acknowledged" % len(every))
    csub.wait_all(every, 30)
    h.wait_for(br1.quiet, 20, "br1 to be quiet")

    # br1's edgespool/+/+/ev/# also matches edgespool/site1/gw9/ev ('#' matches the
    # parent level): that one is br1's too.
    n1 = len(bad) + sum(matches("edgespool/+/+/ev/#", t) for t in outside)
    n9 = sum(matches("edgespool/site1/gw9/#", t) for t in outside)
    h.check(n9 == len(outside) and not matches("edgespool/+/+/ev/#", "edgespool/site1"),
            "the test's topic matcher is wrong")
    exact(br1, "invalid", n1, "one per bad message matching its event filter")
    exact(br1, "deadletters", n1, "each bad message kept in the journal")
    exact(br9, "invalid", n9, "one per message on a topic outside the layout")
    exact(br9, "deadletters", n9, "each kept in the journal")
    s9 = br9.status()
    h.check(s9["inbox"]["journaled"] == 0 and s9["cloud"]["forwarded"] == 0,
            "br9 journaled %d and forwarded %d, expected none" %
            (s9["inbox"]["journaled"], s9["cloud"]["forwarded"]))
    h.check(br1.proc.alive() and br9.proc.alive(), "a bridge died")

    f = h.check_nodes_delivery(acked, csub)  # also: nothing that was not acknowledged
    h.check(set(csub.seqs) == set(every), "the cloud received ids beyond the acknowledged set")
    s1 = br1.status()
    total = len(every)
    h.check(s1["inbox"]["journaled"] == total and s1["cloud"]["forwarded"] == total and
            s1["cloud"]["acked"] == total,
            "br1 journaled %d, forwarded %d, acked %d; expected %d valid events" %
            (s1["inbox"]["journaled"], s1["cloud"]["forwarded"], s1["cloud"]["acked"], total))
    h.check(s1["gaps"]["lost"] == 0 and s1["inbox"]["errors"] == 0, "br1: %s" % s1)
    js = h.journal_settled(env, br1.db)
    h.check(js["count"] == total and js["pending"] == 0,
            "br1 inbox: count %s pending %s" % (js["count"], js["pending"]))
    h.journal_verify(env, br1.db)
    cs = csub.stop()
    h.check(cs.get("invalid") == 0 and cs.get("valid") == f["copies"],
            "the cloud sub saw invalid messages: %s" % cs)
    print("  %s" % h.bridge_figures(s1))
    print("  %s" % h.bridge_figures(s9))
    print("  bad messages: %s" % "; ".join(w for w, _ in bad))
    return ("%d bad messages dead-lettered by br1 (invalid %d, deadletters %d), %d outside "
            "the layout by br9 (invalid %d, deadletters %d), 1 matching no bridge, none at "
            "the cloud; all %d valid "
            "events forwarded, %d of them after the bad ones; holes detected %d / filled %d, "
            "duplicates dropped %d, out_of_order %d" %
            (n1, s1["inbox"]["invalid"], s1["inbox"]["deadletters"], n9,
             s9["inbox"]["invalid"], s9["inbox"]["deadletters"], total, 2 * AFTER,
             s1["gaps"]["holes_detected"], s1["gaps"]["filled"],
             s1["inbox"]["duplicates_dropped"], s1["order"]["out_of_order"]))


if __name__ == "__main__":
    h.main(scenario, "bad messages on the edge broker are dead-lettered, never forwarded")
