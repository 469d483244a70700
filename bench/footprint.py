#!/usr/bin/env python3
"""footprint.py - the edge agent's footprint: memory idle and under load,
binary size, journal bytes per event. bench/footprint.sh runs it natively and
under qemu-user; see bench/README.md ("Footprint").

    footprint.py --agent PATH --cli PATH [--strip STRIP] [--rate N]
                 [--seconds S] [--baseline PROG] [--budget S]

It starts a mosquitto on a free loopback port and the real edge-agent
(through $ES_TEST_WRAP when set: qemu-aarch64, say) with the integration
tests' settings (tests/integration/harness.py), then:
- idle: holds 5 s after /healthz answers and reads VmRSS and VmHWM of the
  agent's process (under qemu, of qemu: the emulator's own memory and its
  translated code are counted too);
- load: posts --rate events/s (100 a POST, ~300 B each as stored) for
  --seconds from one keep-alive connection, sampling VmRSS every 100 ms; the
  sustained rate is what the 202 answers came back at (lower than --rate
  when the agent cannot keep up), then waits until nothing is pending;
- journal: (size of the journal file after the load, checkpointed by the
  agent's clean stop, minus its size when idle) / events;
- binary: the agent stripped with --strip into a temporary copy;
- with --baseline PROG (a program that only waits, for the same
  architecture): its RSS through $ES_TEST_WRAP, i.e. the emulator's own
  share, to read the agent's RSS under qemu against.
Prints one `key=value` line per figure. Exits 1 if something broke (a
non-202, the agent died, a timeout, a non-zero exit on SIGTERM).
"""
import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import harness as h  # noqa: E402


def proc_kib(pid, key):
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM), or 0."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS of pid every 100 ms until stopped; keeps the largest."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.1):
            self.peak = max(self.peak, proc_kib(self.pid, "VmRSS"))


def stripped_size(strip, path):
    """Bytes of path once stripped (a temporary copy)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "stripped")
        subprocess.run([strip, "-o", out, path], check=True)
        return os.path.getsize(out)


def db_bytes(path):
    """The journal's bytes on disk (main file and WAL)."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def baseline_kib(env, prog):
    """VmRSS of prog (a program that only waits) run through $ES_TEST_WRAP:
    what the emulator itself takes, to read the agent's figures against."""
    wrap = shlex.split(os.environ.get("ES_TEST_WRAP", ""))
    p = env.spawn("baseline", wrap + [prog])
    h.hold(2, p.check_alive)  # the idle period being measured
    kib = proc_kib(p.popen.pid, "VmRSS")
    p.kill()
    return kib


def measure(env, args):
    """The figures, as (key, value) pairs in print order."""
    out = [("wrap", shlex.quote(os.environ.get("ES_TEST_WRAP") or "none")),
           ("agent_stripped_bytes", stripped_size(args.strip, args.agent))]
    if args.baseline:
        out.append(("emulator_baseline_rss_kib", baseline_kib(env, args.baseline)))
    broker = env.broker()
    agent = env.agent(broker.port)
    agent.start(timeout=60)
    pid = agent.proc.popen.pid
    h.wait_for(lambda: agent.status()["broker"]["state"] == "connected", 60,
               "the agent to connect to the broker")
    h.hold(5, agent.proc.check_alive)  # the idle period being measured
    out += [("idle_rss_kib", proc_kib(pid, "VmRSS")), ("idle_hwm_kib", proc_kib(pid, "VmHWM"))]
    empty = db_bytes(agent.db)
    total = args.rate * args.seconds
    sampler = RssSampler(pid)
    sampler.start()
    poster = h.Poster(agent.http_port)
    t0 = time.monotonic()
    h.check(poster.post_many(total, rate=args.rate, timeout=60) == total, "a batch was refused")
    post_s = time.monotonic() - t0
    h.wait_for(lambda: agent.pending() == 0, 300, "the agent to publish every event")
    e2e_s = time.monotonic() - t0
    sampler.stop_ev.set()
    sampler.join()
    out += [("offered_rate", args.rate), ("events", total),
            ("sustained_rate", round(total / post_s)), ("end_to_end_rate", round(total / e2e_s)),
            ("load_peak_rss_kib", sampler.peak), ("load_hwm_kib", proc_kib(pid, "VmHWM"))]
    agent.proc.signal(signal.SIGTERM)
    rc = agent.proc.wait_exit(60)
    h.check(rc == 0, "the agent %s after SIGTERM" % h.exit_text(rc))
    out.append(("journal_bytes_per_event", round((db_bytes(agent.db) - empty) / total, 1)))
    return out


def on_alarm(signum, frame):
    raise h.TestFailure("out of its time budget")


def main():
    p = argparse.ArgumentParser(description="the edge agent's footprint")
    p.add_argument("--agent", required=True, help="the edge-agent binary")
    p.add_argument("--cli", required=True, help="the edgespool binary (harness)")
    p.add_argument("--strip", default="strip", help="strip for the agent's architecture")
    p.add_argument("--rate", type=int, default=5000, help="events/s offered")
    p.add_argument("--seconds", type=int, default=20, help="seconds of load offered")
    p.add_argument("--budget", type=int, default=600, help="give up after this many seconds")
    p.add_argument("--baseline", help="a program that only waits (pause()), built for the "
                   "agent's architecture: its RSS under $ES_TEST_WRAP is reported")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()
    args.bridge = args.fw = args.seed = None
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.budget)
    env = h.Env(args)
    try:
        for key, value in measure(env, args):
            print("%s=%s" % (key, value))
        return 0
    except Exception as e:  # noqa: BLE001 - reported, with the logs
        print("footprint: FAIL: %s" % e)
        env.dump_logs()
        return 1
    finally:
        signal.alarm(0)
        env.close()


if __name__ == "__main__":
    sys.exit(main())
