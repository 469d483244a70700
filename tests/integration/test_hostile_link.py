#!/usr/bin/env python3
"""test_hostile_link: the agent's device link under the attacks and the
surprises of issue 14, item 9, with the real firmware-host devices, on a
UNIX socket, each bounded in count and time.

1. A sequence that begins again: 3 devices stream from record 999,990 (boot
   5) to 999,999; then their memory is wiped (two wholly, one its sequence
   only) and they stream records 1..10 again. Every record of both lives is
   exactly one event (before: the second life's were called duplicates,
   acked and dropped); 3 sequence restarts are counted, no record lost.
2. Forged hellos while devices stream: 100 hellos for a live device claiming
   gaps up to 999,988 records, and hellos holding more than a device can
   (next before the oldest, more than a ring): all refused and counted
   (hellos_implausible), records_lost_at_devices unchanged, the device's
   expected record unmoved; every record the devices make arrives exactly
   once; the agent's log grows by a few lines, its RSS stays bounded.
3. Impossible times and records out of step, from a hand-made device: a
   wall_ms of 2^64 - 1 or 0 is journaled without a device_time (counted
   bad_time), a good one with it; a record 500 past the expected one is
   never acked: the device is asked for a hello.
"""
import os
import random
import socket
import struct
import time
import zlib

import harness as h

FORGED = 100
RSS_MAX_KB = 64 * 1024
LOG_GROWTH_MAX = 4096


def cobs(data):
    """COBS-encodes data and appends the 0x00 delimiter."""
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    out += bytes([len(block) + 1]) + block
    return bytes(out) + b"\x00"


def uncobs(data):
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        out += data[i + 1:i + code]
        i += code
        if code < 0xff and i < len(data):
            out.append(0)
    return bytes(out)


def frame(ftype, device, seq, payload):
    """A frame as docs/link-protocol.md lays it out, on the wire."""
    body = struct.pack("<BBIIB", 1, ftype, device, seq, len(payload)) + payload
    return cobs(body + struct.pack("<I", zlib.crc32(body)))


def hello(device, seq, next_seq, boot):
    return frame(1, device, seq, struct.pack("<IIIBBB", boot, 1000, next_seq, 1, 0, 1))


def record(device, seq, wall_ms=None):
    flags = 4 if wall_ms is not None else 0
    payload = struct.pack("<IBBi", 5000 + seq, 1, flags, 21500 + seq)
    if wall_ms is not None:
        payload += struct.pack("<Q", wall_ms)
    return frame(2, device, seq, payload)


class Link:
    """A hand-made device's connection: frames out, the agent's frames in."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(10)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def next_frame(self):
        while b"\x00" not in self.buf:
            chunk = self.s.recv(4096)
            h.check(chunk, "the agent closed the device link")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\x00", 1)
        f = uncobs(raw)
        _, ftype, device, seq, n = struct.unpack("<BBIIB", f[:11])
        return ftype, device, seq, f[11:11 + n]

    def ack(self, device):
        """The next ACK to device (TIMEs are skipped): (seq, flags)."""
        while True:
            ftype, dev, seq, payload = self.next_frame()
            if ftype == 3 and dev == device:
                return seq, payload[0]

    def close(self):
        self.s.close()


def devices_status(agent):
    return agent.status()["devices"]


def listener(st):
    return next(x for x in st["links"] if x["kind"] == "listen")


def device(agent, dev_id):
    status, body = agent.get("/api/devices")
    h.check(status == 200, "GET /api/devices: %d" % status)
    return next((d for d in body["devices"] if d["device"] == dev_id), None)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- 1. a sequence that begins again -----------------------------------------------


def restarts(env, agent, sock, sub, seed):
    s1 = env.path("nv-first")
    with open(s1, "w") as f:
        f.write("1 4 999990\n2 4 999990\n3 4 999990\n")
    first = h.Fleet(env, "unix:" + sock, 3, 20, name="life1", count=10, seed=seed,
                    extra=["--state", s1])
    first.start()
    first.finish(60)
    r1 = first.records()
    h.check(sorted({s for _, s in r1}) == list(range(999990, 1000000)),
            "the first life made %s" % sorted({s for _, s in r1})[:12])
    h.wait_device_records(sub, r1, agent, 60, "first life")
    for d in (1, 2, 3):
        h.check(device(agent, d)["last_seq"] == 999999, "device %d: %s" % (d, device(agent, d)))
    s2 = env.path("nv-wiped")
    with open(s2, "w") as f:
        f.write("3 5 0\n")  # 1 and 2 wiped wholly; 3 keeps its boot count
    second = h.Fleet(env, "unix:" + sock, 3, 20, name="life2", count=10, seed=seed + 1,
                     extra=["--state", s2])
    second.start()
    summary = second.finish(60)
    r2 = second.records()
    h.check(sorted({s for _, s in r2}) == list(range(1, 11)),
            "the second life made %s" % sorted({s for _, s in r2}))
    h.wait_device_records(sub, r2, agent, 60, "second life")
    both = {**r1, **r2}
    n, _ = h.check_device_events(both, sub, "two lives")
    st = devices_status(agent)
    h.check(st["sequence_restarts"] == 3 and st["records_lost_at_devices"] == 0,
            "after the wipes: %d restarts, %d lost" % (st["sequence_restarts"],
                                                        st["records_lost_at_devices"]))
    for d in (1, 2, 3):
        h.check(device(agent, d)["last_seq"] == 10, "device %d: %s" % (d, device(agent, d)))
    return n, summary


# ---- 2. forged hellos --------------------------------------------------------------


def forged_hellos(env, agent, sock, sub, seed):
    rng = random.Random(seed)
    fleet = h.Fleet(env, "unix:" + sock, 3, 20, name="live", first_id=11, count=300, seed=seed)
    fleet.start()
    h.wait_for(lambda: (device(agent, 11) or {}).get("last_seq", 0) >= 10, 30,
               "device 11 to stream")
    before = devices_status(agent)
    log0 = os.path.getsize(agent.proc.log)
    victim = device(agent, 11)
    link = Link(sock)
    t0 = time.monotonic()
    for k in range(FORGED):
        gap = 999988 if k == 0 else rng.randrange(DEVICES_GAP_MIN, 999988)
        seq = (victim["last_seq"] + 1 + gap) & 0xffffffff
        link.send(hello(11, seq, seq, victim["boot"] + 1))
    link.send(hello(12, 100, 99, 1))    # holds records past its next one
    link.send(hello(13, 100, 200, 1))   # holds more than a ring
    h.wait_for(lambda: devices_status(agent)["hellos_implausible"] -
               before["hellos_implausible"] >= FORGED + 2, 10, "the forged hellos to be counted")
    burst = time.monotonic() - t0
    after = devices_status(agent)
    h.check(after["hellos_implausible"] - before["hellos_implausible"] == FORGED + 2,
            "%d hellos counted implausible, %d forged" %
            (after["hellos_implausible"] - before["hellos_implausible"], FORGED + 2))
    h.check(after["records_lost_at_devices"] == before["records_lost_at_devices"],
            "the forged hellos moved records_lost_at_devices %d -> %d" %
            (before["records_lost_at_devices"], after["records_lost_at_devices"]))
    h.check(listener(after)["hellos_implausible"] >= FORGED + 2, "per link: %s" % listener(after))
    summary = fleet.finish(90)
    records = fleet.records()
    h.wait_device_records(sub, records, agent, 60, "forged hellos")
    n, _ = h.check_device_events(records, sub, "forged hellos")
    h.check(device(agent, 11)["last_seq"] == 300, "device 11: %s" % device(agent, 11))
    grown = os.path.getsize(agent.proc.log) - log0
    rss = rss_kb(agent.proc.popen.pid)
    link.close()
    h.check(grown < LOG_GROWTH_MAX, "the agent's log grew %d bytes for %d forged hellos" %
            (grown, FORGED + 2))
    h.check(rss < RSS_MAX_KB, "the agent's RSS reached %d KiB" % rss)
    return n, burst, grown, rss, summary


DEVICES_GAP_MIN = 2 * (256 + 64) + 1  # beyond what one boot (and one more) can skip


# ---- 3. impossible times, records out of step --------------------------------------


def hand_made(agent, sock, sub):
    dev_id, now = 900, int(time.time() * 1000)
    link = Link(sock)
    link.send(hello(dev_id, 1, 1, 1))
    h.check(link.ack(dev_id) == (0, 0), "no ACK 0 for the hand-made device's hello")
    walls = {1: (1 << 64) - 1, 2: 0, 3: now}
    for seq, wall in walls.items():
        link.send(record(dev_id, seq, wall))
        got = link.ack(dev_id)
        h.check(got == (seq, 0), "record %d: ACK %s" % (seq, got))
    before = listener(devices_status(agent))["out_of_step"]
    link.send(record(dev_id, 500))
    got = link.ack(dev_id)
    h.check(got[1] == 1, "a record out of step was answered %s, not SEND_HELLO" % (got,))
    h.check(listener(devices_status(agent))["out_of_step"] == before + 1, "out_of_step not counted")
    link.close()

    def arrived():
        sub.poll()
        got = {}
        for rec in sub.records:
            ev = rec["event"]
            if ev.get("subject") == "dev-%08x" % dev_id and ev["type"] == "sensor.reading":
                got[ev["data"]["seq"]] = ev["data"]
        return got if len(got) == 3 else None
    events = h.wait_for(arrived, 30, "the hand-made device's 3 events")
    h.check("device_time" not in events[1] and "device_time" not in events[2],
            "an impossible device time was journaled: %s" % events)
    h.check(events[3].get("device_time", "").startswith(time.strftime("%Y-", time.gmtime())),
            "a good device time was left out: %s" % events[3])
    h.check(500 not in events, "the record out of step was journaled")
    h.check(listener(devices_status(agent))["bad_time"] == 2,
            "bad_time: %s" % listener(devices_status(agent)))
    return len(events)


def scenario(env):
    seed = env.args.seed if env.args.seed is not None else random.randrange(1 << 30)
    print("seed %d (rerun with --seed %d)" % (seed, seed))
    broker = env.broker()
    sub = env.sub(broker.port, resend=True, from_start=True)
    sock = env.path("devices.sock")
    agent = env.agent(broker.port, extra=["--link.listen", "unix:" + sock])
    agent.start()
    n1, s1 = restarts(env, agent, sock, sub, seed)
    print("  1. two lives of 3 devices: %d records, each exactly one event (resent %d)" %
          (n1, s1["resent"]))
    n2, burst, grown, rss, s2 = forged_hellos(env, agent, sock, sub, seed + 2)
    print("  2. %d forged hellos in %.2f s refused; %d records of 3 live devices exact; log "
          "+%d B, RSS %d KiB" % (FORGED + 2, burst, n2, grown, rss))
    n3 = hand_made(agent, sock, sub)
    print("  3. a hand-made device: %d records, impossible times left out" % n3)
    h.journal_verify(env, agent.db)
    st = devices_status(agent)
    return ("restarted sequences taken (%d restarts), %d forged hellos refused (records lost "
            "%d), impossible device times dropped (%d), the agent healthy" %
            (st["sequence_restarts"], st["hellos_implausible"], st["records_lost_at_devices"],
             listener(st)["bad_time"]))


if __name__ == "__main__":
    h.main(scenario, "hostile device link: forged hellos, restarted sequences, impossible times")
