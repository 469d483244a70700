"""test_fleet_batches: the uplink's batches, read by fleet-state and `edgespool tail`.

A real mosquitto as the cloud broker; batches published on batch topics
(`<root>/<site>/<node>/batch/ce=<coding>`, docs/protocol.md) with
mosquitto_pub, their payloads made here with Python's zlib (the d1
dictionary read from common/batch_dict_d1.inc):

1. fleet-state (MQTT 3.1.1: the topic says what each message is) reads:
   - a deflate batch with dictionary d1 and its MQTT 5 properties: 5 events;
   - an identity batch without properties (as an MQTT 3.1.1 sender sends it)
     whose third event has no type: its 4 good events are applied, the bad
     one is dead-lettered alone with reason "[2].type: ...";
   - a deflate batch whose payload is not deflate data, and a truncated
     one: one dead letter each, with the reason; counted invalid;
   and serves the projection the 9 good events imply (each applied once).
2. `edgespool tail --mqtt` (MQTT 3.1.1: the topic alone says what it is)
   prints a batch's events one JSON line each, as they were sent.
"""
import json
import os
import re
import sqlite3
import subprocess
import zlib

import harness as h
import test_fleet_state as fs

CT = "application/cloudevents-batch+json"
HERE = os.path.dirname(os.path.abspath(__file__))


def d1():
    path = os.path.join(HERE, "..", "..", "common", "batch_dict_d1.inc")
    with open(path) as f:
        text = f.read()
    body = text[text.index("*/") + 2:]
    return bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", body))


def event(site, node, seq, typ="sensor.reading"):
    ev = {"specversion": "1.0", "id": "0193a0b2-7c3e-7d21-9a4b-%012d" % seq,
          "source": "/%s/%s" % (site, node), "type": typ, "subject": "dev-%d" % (seq % 3),
          "time": "2026-12-07T05:00:%02d.000Z" % seq, "sequence": "%d" % seq,
          "datacontenttype": "application/json",
          "data": {"kind": "temperature", "value": 20 + seq / 10, "unit": "C"}}
    if typ is None:
        del ev["type"]
    return ev


def batch_json(events):
    return "[" + ",".join(json.dumps(e, separators=(",", ":")) for e in events) + "]"


def deflate(data, zdict=None):
    c = zlib.compressobj(6, zlib.DEFLATED, 15, zdict=zdict) if zdict else zlib.compressobj(6)
    return c.compress(data) + c.flush()


def publish(env, port, topic, payload, props=(), name="batch"):
    path = env.path("%s.bin" % name)
    with open(path, "wb") as f:
        f.write(payload)
    argv = ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-f", path]
    if props:
        argv += ["-V", "mqttv5"]
        for p in props:
            argv += ["-D", "publish"] + list(p)
    subprocess.run(argv, check=True, timeout=10)


def deadletters(fleet):
    with sqlite3.connect("file:%s?mode=ro" % fleet.db, uri=True) as db:
        return db.execute("SELECT origin, reason FROM deadletters ORDER BY n").fetchall()


def phase_fleet(env, cloud, fleet):
    root = "edgespool/site1/gw1/batch/"
    a = [event("site1", "gw1", s) for s in range(1, 6)]
    b = [event("site1", "gw1", s) for s in range(6, 11)]
    b[2] = event("site1", "gw1", 8, typ=None)
    good = a + b[:2] + b[3:]
    publish(env, cloud.port, root + "ce=deflate,d1", deflate(batch_json(a).encode(), d1()),
            props=[("content-type", CT), ("user-property", "content-encoding", "deflate"),
                   ("user-property", "dictionary", "d1")], name="a")
    publish(env, cloud.port, root + "ce=identity", batch_json(b).encode(), name="b")
    publish(env, cloud.port, root + "ce=deflate", b"\x78\x9c not deflate at all", name="c")
    cut = deflate(batch_json(a).encode())
    publish(env, cloud.port, root + "ce=deflate", cut[:len(cut) // 2], name="d")
    h.wait_for(lambda: fleet.stats()["applied"] == 9 and fleet.stats()["invalid"] == 3, 30,
               "fleet-state to apply 9 events and count 3 invalid")
    st = fleet.stats()
    h.check(st["duplicates"] == 0, "duplicates: %s" % st)
    dead = deadletters(fleet)
    reasons = [r for _, r in dead]
    h.check(len(dead) == 3, "dead letters: %r" % dead)
    h.check(all(o.startswith(root) for o, _ in dead), "dead letters' origins: %r" % dead)
    h.check(reasons[0].startswith("[2].type"), "the bad event's reason: %r" % reasons[0])
    h.check(reasons[1].startswith("bad deflate data"), "the bad batch's reason: %r" % reasons[1])
    h.check(reasons[2].startswith("truncated"), "the truncated batch's reason: %r" % reasons[2])
    got, want = fleet.devices(), fs.project(good)
    h.check(got == want, "projection differs: %s" % fs.diff(got, want))
    fleet.proc.check_alive()
    return reasons


def phase_tail(env, cloud):
    """tail has no readiness signal: the batch is published again until tail
    has printed its --count events (tail reads only this site)."""
    url = "mqtt://127.0.0.1:%d" % cloud.port
    tail = fs.Piped(env, [env.args.cli, "tail", "--mqtt", url, "--topic",
                          "edgespool/tailsite/+/batch/+", "--count", "4", "sensor.*"])
    evs = [event("tailsite", "gw9", 1), event("tailsite", "gw9", 2, "alarm.raised"),
           event("tailsite", "gw9", 3), event("tailsite", "gw9", 4),
           event("tailsite", "gw9", 5)]
    payload = deflate(batch_json(evs).encode())

    def done():
        if tail.popen.poll() is not None:
            return True
        publish(env, cloud.port, "edgespool/tailsite/gw9/batch/ce=deflate", payload, name="t")
        return False
    h.wait_for(done, 30, "edgespool tail to print 4 events of a batch", interval=0.5)
    out, err = tail.popen.communicate(timeout=10)
    h.check(tail.popen.returncode == 0, "tail exited %d: %s" % (tail.popen.returncode, err))
    lines = out.splitlines()
    want = [e for e in evs if e["type"] == "sensor.reading"]
    h.check([json.loads(x) for x in lines] == want, "tail printed %r" % lines)
    return len(lines)


def scenario(env):
    cloud = env.broker()
    fleet = fs.Fleet(env, cloud.port)
    fleet.extra = ["--source.topic",
                   "edgespool/site1/+/ev/#,edgespool/site1/+/batch/+"]
    fleet.start()
    reasons = phase_fleet(env, cloud, fleet)
    n = phase_tail(env, cloud)
    return ("fleet-state: 9 events of 2 batches applied, 3 dead letters (%s); tail: %d events "
            "of a batch" % ("; ".join(reasons), n))


if __name__ == "__main__":
    h.main(scenario, "uplink batches read by fleet-state and edgespool tail")
