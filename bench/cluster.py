#!/usr/bin/env python3
"""cluster.py - events/s from the agent through the bridge into a RabbitMQ
cluster and out to fleet-state, beside the same run into one mosquitto.

    bench/cluster.py [--quick] [--events N] [BUILD_DIR]     (as root)

Builds nothing: runs the programs of BUILD_DIR (default ./build). Each
target gets fresh brokers and programs on loopback:

  cluster    edge-agent -> edge mosquitto -> cloud-bridge -> three RabbitMQ
             nodes (MQTT plugin; the bridge's cloud.url lists all three) ->
             quorum queue on amq.topic -> fleet-state over AMQP
  mosquitto  edge-agent -> edge mosquitto -> cloud-bridge -> one cloud
             mosquitto -> fleet-state over MQTT (QoS 1, persistent session)

Every program runs with its defaults (journal.sync=full, fleet-state's
state.sync=full). A warm-up of 200 events goes end to end first, then
es-bench-http load posts N events of 300 B (4 keep-alive connections, POSTs
of 100) to the agent; the clock runs from the first POST until fleet-state's
event log holds every one (each id applied once). Prints events/s of both,
the ratio, and each process's peak RSS (VmHWM) and RSS at the end.

A benchmark reports, it does not judge: exit 0 whatever the figures; exit 1
when something broke (a program died, a timeout). Polls with deadlines;
nothing sleeps to synchronise. Uses tests/cluster/rabbit.py (the cluster)
and tests/integration/harness.py (programs, brokers, cleanup).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
import rabbit  # noqa: E402
from rabbit import h  # noqa: E402

QUEUE = "bench-events"
KEY = "edgespool.*.*.ev.#"
WARMUP = 200


def proc_mem(pid):
    """(VmHWM, VmRSS) of pid in MiB, or (None, None)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0]) / 1024.0
    except (OSError, ValueError):
        pass
    return out.get("VmHWM"), out.get("VmRSS")


class Fleet:
    def __init__(self, env, build, source):
        self.env, self.http_port = env, h.free_port()
        self.argv = [os.path.join(build, "fleet-state", "fleet-state"), "--node.id", "bench",
                     "--state.path", env.path("fleet.db"),
                     "--http.listen", "127.0.0.1:%d" % self.http_port] + source

    def start(self):
        self.proc = self.env.spawn("fleet-state", self.argv)

        def up():
            self.proc.check_alive()
            try:
                return self.stats()["connected_to"]
            except (OSError, ValueError, h.http.client.HTTPException):
                return False
        h.wait_for(up, 60, "fleet-state to connect")

    def stats(self):
        status, body = h.http_call(self.http_port, "GET", "/api/stats")
        return json.loads(body)

    def wait_events(self, n, timeout):
        def done():
            self.proc.check_alive()
            return self.stats()["events"] >= n
        h.wait_for(done, timeout, "fleet-state to log %d events" % n, interval=0.02)
        return time.time()


def run_target(args, target):
    """One measured run; returns a dict of figures and memory."""
    b = args.build
    ns = argparse.Namespace(keep=False, agent=os.path.join(b, "edge-agent", "edge-agent"),
                            cli=os.path.join(b, "cli", "edgespool"),
                            bridge=os.path.join(b, "cloud-bridge", "cloud-bridge"), fw=None)
    env = h.Env(ns)
    try:
        edge = env.broker(name="edge")
        mem_procs = [("edge mosquitto", lambda: edge.proc.popen.pid)]
        if target == "cluster":
            cluster = rabbit.Cluster(env, 3)
            cluster.start()
            urls = [n.mqtt_url() for n in cluster.nodes]
            source = ["--source.amqp", ",".join(n.amqp_url() for n in cluster.nodes),
                      "--source.queue", QUEUE, "--source.bind", KEY]
            for n in cluster.nodes:
                mem_procs.append(("RabbitMQ " + n.label, n.vm_pid))
        else:
            cloud = env.broker(name="cloud")
            urls = ["mqtt://127.0.0.1:%d" % cloud.port]
            source = ["--source.mqtt", urls[0], "--source.topic", "edgespool/+/+/ev/#"]
            mem_procs.append(("cloud mosquitto", lambda: cloud.proc.popen.pid))
        fleet = Fleet(env, b, source)
        fleet.start()
        agent = env.agent(edge.port, name="gw1", node="gw1")
        agent.start()
        bridge = env.bridge(edge.port, 0, cloud_url=",".join(urls))
        bridge.start(timeout=30)
        mem_procs += [("edge-agent", lambda: agent.proc.popen.pid),
                      ("cloud-bridge", lambda: bridge.proc.popen.pid),
                      ("fleet-state", lambda: fleet.proc.popen.pid)]
        poster = h.Poster(agent.http_port)
        h.check(poster.post_many(WARMUP) == WARMUP, "warm-up not acknowledged")
        fleet.wait_events(WARMUP, 60)
        t0 = time.time()
        r = subprocess.run([os.path.join(b, "bench", "es-bench-http"), "load", "--url",
                            "http://127.0.0.1:%d" % agent.http_port, "-n", str(args.events),
                            "-t", "4", "-b", "100", "-s", "300", "--pid",
                            str(agent.proc.popen.pid), "--timeout", "600"],
                           capture_output=True, text=True, timeout=700)
        h.check(r.returncode == 0, "es-bench-http load: exit %d: %s" % (r.returncode, r.stderr))
        line = r.stdout.strip().splitlines()[-1]
        fields = dict(x.split("=", 1) for x in line.split() if "=" in x)
        t0 = float(fields.get("start_wall", t0))
        t1 = fleet.wait_events(WARMUP + args.events, 600)
        st = fleet.stats()
        mem = [(name, proc_mem(pid())) for name, pid in mem_procs if pid()]
        return {"target": target, "events": args.events, "seconds": t1 - t0,
                "rate": args.events / (t1 - t0), "posted_rate": float(fields["posted_rate"]),
                "duplicates": st["duplicates"], "mem": mem}
    except h.TestFailure:
        env.dump_logs()
        raise
    finally:
        env.close()


def report(results):
    print()
    print("%-10s %9s %9s %12s %12s %11s" % ("target", "events", "seconds", "events/s",
                                            "POSTs ev/s", "duplicates"))
    for r in results:
        print("%-10s %9d %9.2f %12.0f %12.0f %11d" % (r["target"], r["events"], r["seconds"],
                                                      r["rate"], r["posted_rate"],
                                                      r["duplicates"]))
    c, m = results
    print("ratio cluster / mosquitto: %.2fx" % (c["rate"] / m["rate"]))
    for r in results:
        print()
        print("memory, %s run (MiB)      peak RSS   RSS at end" % r["target"])
        for name, (hwm, rss) in r["mem"]:
            print("  %-24s %8.1f %12.1f" % (name, hwm or 0, rss or 0))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3,000 events: a smoke run")
    p.add_argument("--events", type=int, default=None, help="events to time (20,000)")
    p.add_argument("build", nargs="?", default="./build")
    args = p.parse_args()
    args.events = args.events or (3000 if args.quick else 20000)
    args.build = os.path.abspath(args.build)
    if not rabbit.installed() or os.geteuid() != 0:
        print("cluster.py: needs root and rabbitmq-server (scripts/deps.sh)", file=sys.stderr)
        return 1
    results = []
    try:
        for target in ("cluster", "mosquitto"):
            print("cluster.py: %s: %d events..." % (target, args.events))
            sys.stdout.flush()
            results.append(run_target(args, target))
    except (h.TestFailure, subprocess.TimeoutExpired) as e:
        print("cluster.py: FAILED: %s" % e, file=sys.stderr)
        return 1
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
