"""harness.py - a small library for edgespool's integration tests.

Every test starts real programs: a mosquitto on a free loopback port with a
generated config, the real edge-agent, SQLite journals in a temporary folder,
and the real `edgespool` CLI as the consumer. The bridge tests (--bridge) run
the real cloud-bridge between two brokers: an edge broker the agents publish
to, and a cloud broker where the consumer listens. Waits poll a condition with a
deadline (wait_for), never a fixed sleep. Everything started is killed at the
end, also on failure, and the tail of each program's log is printed when a
test fails.

A test script is a function taking an Env and returning a summary line:

    import harness as h
    def scenario(env):
        broker = env.broker()
        ...
        return "10000 events delivered"
    h.main(scenario, "what the test checks")

Python 3 standard library only.
"""
import argparse
import atexit
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback


class TestFailure(Exception):
    """A check failed: the message says what was expected and what was seen."""


def check(cond, message):
    """Raises TestFailure(message) unless cond holds."""
    if not cond:
        raise TestFailure(message)


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns a true value (which is returned) or
    timeout seconds pass (TestFailure naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def hold(seconds, still_ok=None):
    """Keeps the current state (a fault, or normal running between faults)
    for `seconds`: the fault-injection schedule, not a wait for anything to
    happen. still_ok() is polled meanwhile and may raise (a thread failed)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if still_ok is not None:
            still_ok()
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def _below_ephemeral():
    """(lo, hi): the ports free_port picks from, below the kernel's ephemeral
    range (net.ipv4.ip_local_port_range, 32768-60999 by default)."""
    lo, hi = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
        hi = min(hi, first - 1)
        lo = min(lo, hi - 1000)
    except (OSError, ValueError, IndexError):
        pass
    return lo, hi


_picked = set()


def free_port():
    """A loopback TCP port for a program a test starts (and may restart on
    the same port): free now, and below the kernel's ephemeral range. A port
    bind(0) handed out would be in that range, where the kernel gives the
    next outgoing connection (or bind(0)) of any process on a busy machine a
    port of its own choosing: it could take ours between this check and the
    program's bind, or while the program is down for a restart. Ports are
    picked at random, never twice in one test, and checked free by binding."""
    lo, hi = _below_ephemeral()
    rng = random.Random()  # not the scenario's seeded one: runs must not agree
    for _ in range(500):
        port = rng.randint(lo, hi)
        if port in _picked:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _picked.add(port)
        return port
    raise TestFailure("no free loopback port in %d..%d" % (lo, hi))


def port_open(port):
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def ready(port, timeout=2):
    """GET /readyz on 127.0.0.1:port answered 200: the program has what it
    needs in place (docs/api.md). False on 503 or while it does not answer."""
    try:
        return http_call(port, "GET", "/readyz", timeout=timeout)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def exit_text(rc):
    """"exited with 2" or "was killed by SIGSEGV" for a Popen returncode."""
    if rc is not None and rc < 0:
        try:
            return "was killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "was killed by signal %d" % -rc
    return "exited with %s" % rc


def rss_kib(pid):
    """The resident set of process pid in KiB (VmRSS), or None once gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def tail(path, lines=40):
    """The last `lines` lines of a text file ("" if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ---- processes -------------------------------------------------------------


class Proc:
    """One started program: its own process group, output in a log file."""

    def __init__(self, name, argv, log, env=None):
        self.name, self.argv, self.log = name, argv, log
        with open(log, "ab") as out:
            out.write(("\n==== %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
            out.flush()
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=out, env=env, start_new_session=True)

    def alive(self):
        """True while the process has not exited."""
        return self.popen.poll() is None

    def signal(self, sig):
        """Sends sig to the process group (nothing if it already exited)."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        """SIGKILLs the process group and reaps the process."""
        self.signal(signal.SIGKILL)
        self.popen.wait()

    def wait_exit(self, timeout):
        """Waits up to timeout s for the exit; returns the exit code, or None if
        it is still running."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def check_alive(self):
        """Raises TestFailure if the program exited (for readiness waits)."""
        rc = self.popen.poll()
        if rc is not None:
            raise TestFailure("%s %s while it should be running" %
                              (self.name, exit_text(rc)))


class Env:
    """Everything one test makes: a temporary folder, programs, logs. close()
    (also run at exit and on SIGTERM) kills every program it started."""

    def __init__(self, args):
        self.args = args
        if args.keep:  # for debugging: a folder nobody removes
            self._tmp, self.dir = None, tempfile.mkdtemp(prefix="es-it-")
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="es-it-")
            self.dir = self._tmp.name
        self.procs = []
        self.logs = []
        self._closed = False
        atexit.register(self.close)

    def path(self, name):
        """A path inside the test's temporary folder."""
        return os.path.join(self.dir, name)

    def spawn(self, name, argv, env=None):
        """Starts argv in its own process group, output appended to <name>.log."""
        log = self.path(name + ".log")
        if log not in self.logs:
            self.logs.append(log)
        proc = Proc(name, argv, log, env)
        self.procs.append(proc)
        return proc

    def broker(self, port=None, **kw):
        """Makes (and starts) a mosquitto broker (keywords: see Broker)."""
        b = Broker(self, port, **kw)
        b.start()
        return b

    def bridge(self, edge_port, cloud_port, **kw):
        """Makes a Bridge (not started) from 127.0.0.1:edge_port to cloud_port."""
        check(self.args.bridge, "this test needs --bridge (the cloud-bridge binary)")
        return Bridge(self, edge_port, cloud_port, **kw)

    def agent(self, broker_port, **kw):
        """Makes an Agent (not started) publishing to 127.0.0.1:broker_port."""
        return Agent(self, broker_port, **kw)

    def sub(self, broker_port, **kw):
        """Makes and starts an `edgespool sub` consumer."""
        s = Sub(self, broker_port, **kw)
        s.start()
        return s

    def cli(self, *cmd, timeout=60):
        """Runs `edgespool CMD...` to completion; returns the CompletedProcess."""
        argv = [self.args.cli] + [str(c) for c in cmd]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def dump_logs(self):
        """Prints the tail of every program's log (on failure)."""
        for log in self.logs:
            print("---- tail of %s ----" % os.path.basename(log))
            print(tail(log))
        sys.stdout.flush()

    def close(self):
        """Kills every program started, then removes the folder (unless --keep)."""
        if self._closed:
            return
        self._closed = True
        for p in self.procs:
            p.kill()
        if self.args.keep:
            print("kept %s" % self.dir)
        else:
            self._tmp.cleanup()


# ---- mosquitto -------------------------------------------------------------


def mosquitto_path():
    """The mosquitto binary (PATH, else /usr/sbin/mosquitto)."""
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """A real mosquitto on 127.0.0.1:port with persistence in the temp folder.
    Restarts keep the port and the persistence folder. `name` keeps several
    brokers of one test apart (their folder, config and log); `autosave` is
    mosquitto's autosave_interval in seconds; `message_size_limit` (bytes)
    makes it refuse larger publishes, as the shipped configs do (none by
    default: the tests see what a permissive broker lets through); `extra`
    lines are appended to the config (they apply to its one listener: TLS
    files, for instance)."""

    def __init__(self, env, port=None, name="mosquitto", autosave=60, extra=(),
                 message_size_limit=None):
        self.env, self.name = env, name
        self.port = port or free_port()
        self.proc = None
        self.data = env.path(name)
        os.makedirs(self.data, exist_ok=True)
        self.conf = env.path(name + ".conf")
        lines = ["listener %d 127.0.0.1" % self.port, "allow_anonymous true",
                 "persistence true", "persistence_location %s/" % self.data,
                 "autosave_interval %d" % autosave, "max_queued_messages 0",
                 "log_dest stderr", "log_type error", "log_type warning",
                 "log_type notice", "log_timestamp_format %H:%M:%S"] + list(extra)
        if message_size_limit is not None:
            lines.append("message_size_limit %d" % message_size_limit)
        if os.geteuid() == 0:
            lines.append("user root")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        """Starts mosquitto and waits until it accepts TCP connections."""
        self.proc = self.env.spawn(self.name, [mosquitto_path(), "-c", self.conf])

        def up():
            self.proc.check_alive()
            return port_open(self.port)
        wait_for(up, timeout, "%s to listen on port %d" % (self.name, self.port))

    def kill(self):
        """SIGKILLs the broker (it loses whatever it had not saved)."""
        self.proc.kill()

    def stop(self, timeout=15):
        """SIGTERM: mosquitto saves its persistence file and exits 0."""
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait_exit(timeout)
        check(rc == 0, "%s %s after SIGTERM (expected exit 0)" % (self.name, exit_text(rc)))


# ---- the agent ---------------------------------------------------------------


def http_call(port, method, path, body=None, headers=None, timeout=10):
    """One request on a new connection; returns (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Agent:
    """The real edge-agent with the tests' settings on a fixed free HTTP port,
    so restarts keep the port (and the journal)."""

    def __init__(self, env, broker_port, name="agent", db=None, extra=(), node="gw1"):
        self.env, self.name, self.node = env, name, node
        self.broker_port = broker_port
        self.http_port = free_port()
        self.db = db or env.path(name + ".db")
        self.extra = list(extra)
        self.proc = None

    def argv(self):
        """The command line: the settings every test uses, then `extra`; run
        through $ES_TEST_WRAP (a wrapper command such as valgrind) if set."""
        return shlex.split(os.environ.get("ES_TEST_WRAP", "")) + [
                self.env.args.agent, "--node.id", self.node, "--node.site", "site1",
                "--mqtt.url", "mqtt://127.0.0.1:%d" % self.broker_port,
                "--journal.path", self.db,
                "--http.listen", "127.0.0.1:%d" % self.http_port,
                "--mqtt.backoff_base_ms", "50", "--mqtt.backoff_max_ms", "500",
                "--status.interval_s", "1"] + self.format_args() + self.extra

    def format_args(self):
        """The settings --agent-format batch asks for: batches, over MQTT 5
        (their properties)."""
        if getattr(self.env.args, "agent_format", "events") != "batch":
            return []
        return ["--mqtt.format", "batch", "--mqtt.version", "5"]

    def start(self, timeout=15, env=None):
        """Starts the agent (with env as its environment, if given) and waits
        until GET /readyz answers 200: started, journal open and committing.
        Under $ES_TEST_WRAP (valgrind, qemu: 10 to 50 times slower) the
        time-out is four times longer."""
        self.proc = self.env.spawn(self.name, self.argv(), env=env)
        if os.environ.get("ES_TEST_WRAP"):
            timeout *= 4

        def up():
            self.proc.check_alive()
            return ready(self.http_port)
        wait_for(up, timeout, "%s to be ready (GET /readyz 200)" % self.name)

    def get(self, path):
        """GET path; returns (status, parsed JSON body)."""
        status, body = http_call(self.http_port, "GET", path)
        return status, json.loads(body)

    def status(self):
        """GET /api/status as a dict (checked to be a 200)."""
        status, body = self.get("/api/status")
        check(status == 200, "GET /api/status answered %d: %s" % (status, body))
        return body

    def pending(self):
        """journal.pending from /api/status."""
        return self.status()["journal"]["pending"]

    def kill(self):
        """SIGKILLs the agent (a crash: nothing is flushed)."""
        self.proc.kill()


# ---- the cloud bridge ----------------------------------------------------------


class Bridge:
    """The real cloud-bridge: subscribes to the agents' events on the edge
    broker (127.0.0.1:edge_port), journals them in its inbox and forwards them
    to the cloud broker (127.0.0.1:cloud_port, or cloud_url). A fixed free HTTP
    port and journal path, so restarts keep both. `extra` settings come last
    (they win)."""

    def __init__(self, env, edge_port, cloud_port, name="bridge", node="br1", db=None,
                 cloud_url=None, extra=()):
        self.env, self.name, self.node = env, name, node
        self.edge_port, self.cloud_port = edge_port, cloud_port
        self.cloud_url = cloud_url or "mqtt://127.0.0.1:%d" % cloud_port
        self.http_port = free_port()
        self.db = db or env.path(name + ".db")
        self.extra = list(extra)
        self.proc = None

    def argv(self):
        """The command line: the settings every test uses, then `extra`."""
        return [self.env.args.bridge, "--node.id", self.node, "--node.site", "site1",
                "--edge.url", "mqtt://127.0.0.1:%d" % self.edge_port,
                "--cloud.url", self.cloud_url,
                "--journal.path", self.db,
                "--http.listen", "127.0.0.1:%d" % self.http_port,
                "--edge.backoff_base_ms", "50", "--edge.backoff_max_ms", "500",
                "--cloud.backoff_base_ms", "50", "--cloud.backoff_max_ms", "500",
                "--gap.grace_ms", "300", "--gap.retry_ms", "2000"] + self.format_args() + \
            self.extra

    def format_args(self):
        """The settings --bridge-format asks for: events (a message an event,
        said explicitly: the site role's default is batch) or batch."""
        if getattr(self.env.args, "bridge_format", "events") != "batch":
            return ["--cloud.format", "events"]
        return ["--cloud.format", "batch", "--cloud.version", "5"]

    def start(self, timeout=15, connected=True):
        """Starts the bridge. Unless connected is False, waits until GET
        /readyz answers 200 (every edge broker acknowledged its subscriptions:
        what an agent publishes from then on reaches the bridge) and the cloud
        link is connected; with connected=False (a side is meant to be down),
        only until GET /healthz answers 200."""
        self.proc = self.env.spawn(self.name, self.argv())

        def up():
            self.proc.check_alive()
            try:
                if not connected:
                    return http_call(self.http_port, "GET", "/healthz", timeout=2)[0] == 200
                return ready(self.http_port) and self.status()["cloud"]["state"] == "connected"
            except (OSError, http.client.HTTPException, ValueError):
                return False
        wait_for(up, timeout, "%s to %s" % (self.name, "be ready (GET /readyz 200) and connect "
                                            "to the cloud" if connected else "answer /healthz"))

    def get(self, path):
        """GET path; returns (status, parsed JSON body)."""
        status, body = http_call(self.http_port, "GET", path)
        return status, json.loads(body)

    def status(self):
        """GET /api/status as a dict (checked to be a 200)."""
        status, body = self.get("/api/status")
        check(status == 200, "%s: GET /api/status answered %d: %s" % (self.name, status, body))
        return body

    def kill(self):
        """SIGKILLs the bridge (a crash: nothing is flushed)."""
        self.proc.kill()

    def stop(self, timeout=20):
        """SIGTERM; the bridge must drain and exit 0."""
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait_exit(timeout)
        check(rc == 0, "%s %s after SIGTERM (expected exit 0)" % (self.name, exit_text(rc)))

    def quiet(self):
        """True when the bridge has nothing left to do: inbox backlog 0,
        nothing in flight or held, no hole open."""
        st = self.status()
        return (st["inbox"]["backlog"] == 0 and st["cloud"]["inflight"] == 0 and
                st["order"]["held"] == 0 and st["gaps"]["holes_open"] == 0)


def bridge_figures(st):
    """One line of a bridge's /api/status figures for the summary."""
    g, i, c = st["gaps"], st["inbox"], st["cloud"]
    return ("%s: received %d, journaled %d, duplicates dropped %d, invalid %d, "
            "forwarded %d, acked %d, out_of_order %d, holes detected %d / filled %d / "
            "lost %d, re-send requests %d, backlog %d" %
            (st["node"], i["received"], i["journaled"], i["duplicates_dropped"], i["invalid"],
             c["forwarded"], c["acked"], st["order"]["out_of_order"], g["holes_detected"],
             g["filled"], g["lost"], g["requests"], i["backlog"]))


# ---- producing events --------------------------------------------------------


PAD = "abcdefghijklmnopqrstuvwxyz0123456789" * 6


def make_events(start, n, nodes=20):
    """n short-form sensor.reading events, numbered from start, each with ~250
    bytes of data."""
    return [{"type": "sensor.reading", "subject": "dev-%d" % (k % nodes),
             "data": {"n": k, "temp": 20.0 + (k % 100) / 10.0, "humidity": 40 + k % 30,
                      "unit": "C", "pad": PAD[: 180 + k % 17]}}
            for k in range(start, start + n)]


class Poster:
    """Posts batches to POST /api/events over one keep-alive connection and
    keeps the ACKNOWLEDGED set: the ids (with their sequence and the event
    posted) that a 202 answer named. A connection error (the agent killed, or
    stopping) means "not acknowledged": the batch is posted again on a new
    connection. Safe to read `acked` from another thread under `lock`."""

    def __init__(self, port, batch=100):
        self.port, self.batch = port, batch
        self.conn = None
        self.lock = threading.Lock()
        self.acked = {}        # id -> sequence
        self.posted = {}       # id -> the event as posted
        self.requests = 0
        self.retries = 0
        self.next_n = 0

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return self.conn

    def drop(self):
        """Closes the connection (the next post opens a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, body, content_type="application/json", headers=None):
        """One POST /api/events on the keep-alive connection; returns (status,
        body bytes). Raises OSError/HTTPException on connection trouble (the
        connection is dropped first)."""
        hdrs = {"Content-Type": content_type} if content_type else {}
        hdrs.update(headers or {})
        try:
            conn = self._conn()
            conn.request("POST", "/api/events", body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            if resp.will_close:
                self.drop()
            self.requests += 1
            return resp.status, data
        except (OSError, http.client.HTTPException):
            self.drop()
            raise

    def record(self, events, answer):
        """Adds a 202 answer's ids to the acknowledged set (checks its shape)."""
        reply = json.loads(answer)
        got = reply.get("events")
        check(reply.get("accepted") == len(events) and isinstance(got, list) and
              len(got) == len(events), "202 answer does not match the batch: %.200s" % answer)
        with self.lock:
            for ev, r in zip(events, got):
                check(isinstance(r.get("id"), str) and isinstance(r.get("sequence"), int) and
                      r["sequence"] >= 1 and r.get("duplicate") is False,
                      "bad entry in a 202 answer: %r" % r)
                check(r["id"] not in self.acked, "id %s acknowledged twice" % r["id"])
                self.acked[r["id"]] = r["sequence"]
                self.posted[r["id"]] = ev

    def post_acked(self, events, timeout=30, stop=None):
        """Posts events until a 202 acknowledges them (retrying connection
        errors and 503s for up to timeout s). Returns True when acknowledged,
        False if stop (a threading.Event) was set meanwhile."""
        body = json.dumps(events).encode()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, answer = self.post(body)
                if status == 202:
                    self.record(events, answer)
                    return True
                check(status == 503, "POST answered %d: %.300s" % (status, answer))
            except (OSError, http.client.HTTPException):
                pass
            if stop is not None and stop.is_set():
                return False
            if time.monotonic() >= deadline:
                raise TestFailure("no 202 for a batch in %.0f s (agent down?)" % timeout)
            self.retries += 1
            time.sleep(0.02)

    def post_many(self, total, stop=None, timeout=30, rate=None):
        """Posts `total` events in batches, at most `rate` events/s if given
        (to spread them over a fault schedule); stops early if stop is set.
        Returns how many were acknowledged."""
        done, t0 = 0, time.monotonic()
        while done < total and not (stop is not None and stop.is_set()):
            n = min(self.batch, total - done)
            if not self.post_acked(make_events(self.next_n, n), timeout, stop):
                break
            self.next_n += n
            done += n
            if rate:
                time.sleep(max(0.0, t0 + done / rate - time.monotonic()))
        return done

    def snapshot(self):
        """A copy of the acknowledged set (id -> sequence)."""
        with self.lock:
            return dict(self.acked)


class PosterThread(threading.Thread):
    """Runs poster.post_many(total) in the background; join() then check()."""

    def __init__(self, poster, total, stop=None, timeout=30, rate=None):
        super().__init__(daemon=True)
        self.poster, self.total, self.stop_ev, self.timeout = poster, total, stop, timeout
        self.rate = rate
        self.error = None
        self.done = 0

    def run(self):
        try:
            self.done = self.poster.post_many(self.total, self.stop_ev, self.timeout, self.rate)
        except BaseException as e:  # reported by check()
            self.error = e

    def check(self):
        """Re-raises what went wrong in the thread, if anything."""
        if self.error is not None:
            raise TestFailure("poster thread failed: %s" % (self.error,))

    def finish(self, timeout):
        """Waits for the thread to end, then check()s it."""
        wait_for(lambda: self.check() or not self.is_alive(), timeout, "the poster to finish")
        self.check()


def start_agents(env, broker_port, nodes=("gw1", "gw2"), extra=()):
    """Starts one agent per node id (named after it, each with its own journal
    and HTTP port) on the broker; returns them."""
    agents = []
    for node in nodes:
        a = env.agent(broker_port, name=node, node=node, extra=extra)
        a.start()
        agents.append(a)
    return agents


def acked_by_node(agents, posters):
    """{"site1/<node>": acknowledged set} for agents and their posters."""
    return {"site1/" + a.node: p.snapshot() for a, p in zip(agents, posters)}


# ---- the consumer ------------------------------------------------------------


class Sub:
    """`edgespool sub`: reads its NDJSON output incrementally and its stats."""

    def __init__(self, env, broker_port, name="sub", resend=False, from_start=False, extra=(),
                 keep_raw=False):
        self.env, self.name, self.broker_port = env, name, broker_port
        self.keep_raw = keep_raw
        self.raw = {}          # id -> the event's bytes as received first (keep_raw)
        self.out = env.path(name + ".ndjson")
        self.stats_path = env.path(name + ".stats.json")
        self.flags = (["--sub.resend"] if resend else []) + \
                     (["--sub.from_start"] if from_start else []) + list(extra)
        self.proc = None
        self._offset, self._partial = 0, b""
        self.records = []      # every line, in order
        self.seqs = {}         # id -> set of sequences seen with it

    def start(self, timeout=15):
        """Starts the consumer; ready when its stats say subscribed (the
        broker acknowledged its subscriptions: what is published from then on
        reaches it)."""
        argv = [self.env.args.cli, "sub",
                "--mqtt.url", "mqtt://127.0.0.1:%d" % self.broker_port,
                "--mqtt.client_id", "it-" + self.name, "--sub.out", self.out,
                "--sub.stats", self.stats_path, "--mqtt.backoff_base_ms", "50",
                "--mqtt.backoff_max_ms", "500", "--log.level", "info"] + \
            (["--mqtt.version", "5"] if self.env.args.bridge_format == "batch" else []) + \
            self.flags
        self.proc = self.env.spawn(self.name, argv)

        def subscribed():
            self.proc.check_alive()
            st = self.stats()
            return st is not None and st.get("subscribed") is True
        wait_for(subscribed, timeout, "%s to subscribe (stats subscribed: true)" % self.name)

    def stats(self):
        """The stats file as a dict, or None before it exists."""
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def poll(self):
        """Reads the lines added to sub.out since the last call; returns them."""
        try:
            with open(self.out, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise TestFailure("sub.out line is not JSON: %.200r" % line)
            self._add(rec)
            if self.keep_raw and rec["id"] not in self.raw:
                self.raw[rec["id"]] = raw_event(line)
            new.append(rec)
        return new

    def _add(self, rec):
        check(isinstance(rec.get("id"), str) and isinstance(rec.get("seq"), int) and
              rec.get("verdict") in ("new", "filled", "dup") and
              isinstance(rec.get("event"), dict) and isinstance(rec.get("node"), str),
              "malformed sub.out record: %.300r" % rec)
        self.records.append(rec)
        self.seqs.setdefault(rec["id"], set()).add(rec["seq"])

    def missing(self, acked):
        """How many ids of acked (id -> seq) have not been received yet."""
        self.poll()
        return sum(1 for i in acked if i not in self.seqs)

    def wait_all(self, acked, timeout, also=None):
        """Waits until every id of acked was received (and also(stats) holds,
        if given)."""
        def done():
            if self.missing(acked):
                return False
            return also is None or also(self.stats() or {})
        try:
            wait_for(done, timeout, "the sub to receive every acknowledged id", interval=0.2)
        except TestFailure as e:
            raise TestFailure("%s: %d of %d still missing; sub stats %s" %
                              (e, self.missing(acked), len(acked), self.stats()))

    def stop(self, timeout=10):
        """SIGTERM; the sub must exit 0 and leave final stats. Returns them."""
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait_exit(timeout)
        check(rc == 0, "%s %s after SIGTERM (expected exit 0)" % (self.name, exit_text(rc)))
        self.poll()
        st = self.stats()
        check(st is not None, "%s left no stats file" % self.name)
        return st


def raw_event(line):
    """The event's own bytes in a sub.out line: the sub writes the payload
    verbatim as the last member, "event"."""
    k = line.find(b'"event":')
    check(k >= 0 and line.rstrip().endswith(b"}"), "sub.out line without event: %.200r" % line)
    return line.rstrip()[k + len(b'"event":'):-1]


# ---- checks shared by the scenarios -------------------------------------------


def check_delivery(acked, sub):
    """Every acknowledged id was received at least once, every copy with the
    sequence of its 202 answer; no id ever arrived with two sequences. Returns
    (copies received, duplicate copies)."""
    sub.poll()
    lost = [i for i in acked if i not in sub.seqs]
    check(not lost, "%d acknowledged ids never received, e.g. %s" % (len(lost), lost[:5]))
    for i, seqs in sub.seqs.items():
        check(len(seqs) == 1, "id %s received with different sequences %s" % (i, sorted(seqs)))
        if i in acked:
            got = next(iter(seqs))
            check(got == acked[i], "id %s acknowledged as sequence %d, received as %d" %
                  (i, acked[i], got))
    by_seq = {}
    for i, seqs in sub.seqs.items():
        s = next(iter(seqs))
        check(s not in by_seq, "sequence %d carried by two ids: %s, %s" % (s, by_seq.get(s), i))
        by_seq[s] = i
    return len(sub.records), len(sub.records) - len(sub.seqs)


def check_nodes_delivery(acked_by_node, sub, foreign_ok=False):
    """check_delivery for several nodes. acked_by_node maps a node key as the
    sub names it ("site1/gw1") to its acknowledged set (id -> sequence).
    Checks: every acknowledged id was received at least once, from its node,
    with the sequence of its 202 answer; no id ever arrived with two
    sequences or from two nodes; per node, no sequence carried two ids;
    nothing arrived that was never acknowledged (unless foreign_ok).
    Returns a dict of figures: copies (lines), dups (copies beyond an id's
    first), inversions (node -> first arrivals whose sequence is below an
    earlier first arrival's: 0 when the node's order was kept)."""
    sub.poll()
    owner = {}
    for node, acked in acked_by_node.items():
        for i in acked:
            owner[i] = node
    lost = [i for i in owner if i not in sub.seqs]
    check(not lost, "%d acknowledged ids never received at %s, e.g. %s" %
          (len(lost), sub.name, lost[:5]))
    nodes_of, by_seq, first = {}, {}, set()
    inversions = {n: 0 for n in acked_by_node}
    top = {}
    for rec in sub.records:
        i, node, seq = rec["id"], rec["node"], rec["seq"]
        nodes_of.setdefault(i, set()).add(node)
        check(len(nodes_of[i]) == 1, "id %s received from two nodes %s" %
              (i, sorted(nodes_of[i])))
        check(len(sub.seqs[i]) == 1, "id %s received with different sequences %s" %
              (i, sorted(sub.seqs[i])))
        other = by_seq.setdefault((node, seq), i)
        check(other == i, "%s sequence %d carried by two ids: %s, %s" % (node, seq, other, i))
        if i in owner:
            check(node == owner[i], "id %s acknowledged by %s, received from %s" %
                  (i, owner[i], node))
            want = acked_by_node[owner[i]][i]
            check(seq == want, "id %s acknowledged as sequence %d, received as %d" %
                  (i, want, seq))
        else:
            check(foreign_ok, "id %s (%s seq %d) received but never acknowledged" %
                  (i, node, seq))
        if i not in first:
            first.add(i)
            if seq < top.get(node, 0):
                inversions[node] = inversions.get(node, 0) + 1
            top[node] = max(top.get(node, 0), seq)
    return {"copies": len(sub.records), "dups": len(sub.records) - len(first),
            "inversions": inversions}


def merge_acked(acked_by_node):
    """One id -> sequence dict of every node's acknowledged set."""
    out = {}
    for acked in acked_by_node.values():
        out.update(acked)
    return out


def journal_states(env, path):
    """`edgespool journal ls PATH`: id -> (journal sequence, "acked" or
    "pending") for every event row."""
    r = env.cli("journal", "ls", path)
    check(r.returncode == 0, "journal ls %s: exit %d: %s" % (path, r.returncode, r.stderr))
    out = {}
    for line in r.stdout.splitlines():
        f = line.split("\t")
        if len(f) >= 3 and f[0].isdigit():
            out[f[2]] = (int(f[0]), f[1])
    return out


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def check_cloudevent(rec, acked_seq, posted, source="/site1/gw1"):
    """rec (a sub.out line) holds a valid CloudEvent 1.0 as journaled for the
    posted short-form event: attributes, sequence as a decimal string equal
    to acked_seq, and the posted type, subject and data unchanged."""
    ev = rec["event"]
    what = "event %s (seq %s)" % (rec["id"], rec["seq"])
    check(ev.get("specversion") == "1.0", "%s: specversion %r" % (what, ev.get("specversion")))
    check(ev.get("id") == rec["id"], "%s: id %r differs from the line's" % (what, ev.get("id")))
    check(ev.get("source") == source, "%s: source %r, expected %r" % (what, ev.get("source"),
                                                                       source))
    check(ev.get("datacontenttype") == "application/json",
          "%s: datacontenttype %r" % (what, ev.get("datacontenttype")))
    check(isinstance(ev.get("time"), str) and RFC3339.fullmatch(ev["time"]),
          "%s: time %r is not RFC 3339" % (what, ev.get("time")))
    seq = ev.get("sequence")
    check(isinstance(seq, str) and re.fullmatch(r"[1-9]\d*", seq) and int(seq) == acked_seq and
          rec["seq"] == acked_seq, "%s: sequence %r, acknowledged as %d" % (what, seq, acked_seq))
    check(isinstance(ev.get("data"), dict), "%s: data is not an object" % what)
    for key in ("type", "subject", "data"):
        check(ev.get(key) == posted[key], "%s: %s %.100r differs from the posted %.100r" %
              (what, key, ev.get(key), posted[key]))


def settle(agent, sub, acked, timeout):
    """The end of a fault scenario: waits until the sub received every
    acknowledged id, has no open hole and the agent has nothing pending; then
    stops the sub and checks delivery (check_delivery) and that the sub lost
    nothing. Returns (final sub stats, copies received, duplicate copies)."""
    def quiet(st):
        return st.get("holes_open") == 0 and st.get("missing") == 0 and agent.pending() == 0
    t0 = time.monotonic()
    sub.wait_all(acked, timeout, also=quiet)
    print("  settled in %.1f s (every id received, no hole open, nothing pending)" %
          (time.monotonic() - t0))
    copies, dups = check_delivery(acked, sub)
    stats = sub.stop()
    check(stats.get("lost") == 0, "the sub counted %s events lost: %s" % (stats.get("lost"), stats))
    check(stats.get("holes_open") == 0, "holes still open at the end: %s" % stats)
    check(stats.get("invalid") == 0, "the sub received invalid events: %s" % stats)
    return stats, copies, dups


def describe_repair(stats):
    """One line about holes and re-sends from the sub's final stats."""
    if not stats.get("holes_detected"):
        return "no hole detected this run (nothing lost on the way, no re-send needed)"
    return ("%d holes detected, %d sequences filled, %d re-send requests, %d duplicates" %
            (stats["holes_detected"], stats.get("filled", 0), stats.get("requests", 0),
             stats.get("duplicates", 0)))


def journal_stats(env, path):
    """`edgespool journal stats PATH` as a dict of ints/strings."""
    r = env.cli("journal", "stats", path)
    check(r.returncode == 0, "journal stats %s: exit %d: %s%s" % (path, r.returncode, r.stdout,
                                                                  r.stderr))
    out = {}
    for line in r.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            value = value.strip()
            out[key.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else value
    check("count" in out, "journal stats printed no count: %r" % r.stdout)
    return out


def journal_settled(env, path, timeout=30):
    """journal_stats once the file says nothing is pending: a daemon writes
    its ack watermark to the file lazily (journal.ack_flush_ms), so the file
    may lag what the daemon shows by that long."""
    def settled():
        js = journal_stats(env, path)
        return js if js.get("pending") == 0 else None
    return wait_for(settled, timeout, "the watermark in %s to show nothing pending" %
                    os.path.basename(path), interval=0.2)


def journal_deadletters(env, path):
    """The reasons of the dead letters in a journal, oldest first (read-only)."""
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return [r[0] for r in db.execute("SELECT reason FROM deadletters ORDER BY id")]
    finally:
        db.close()


def journal_verify(env, path):
    """`edgespool journal verify PATH` must exit 0; returns its output."""
    r = env.cli("journal", "verify", path)
    check(r.returncode == 0, "journal verify %s failed (exit %d):\n%s%s" %
          (path, r.returncode, r.stdout, r.stderr))
    return r.stdout + r.stderr


# ---- a simulated device fleet ------------------------------------------------------


class Fleet:
    """The real firmware-host: N simulated devices on one link (pty:PATH,
    tcp:HOST:PORT or unix:PATH). It writes every record it makes to
    <name>.records.ndjson, a summary to <name>.summary.json when it exits, and
    <name>.ready once its link is set up."""

    def __init__(self, env, link, devices, rate, name="fleet", first_id=1, count=None,
                 faults=None, seed=1, extra=()):
        check(env.args.fw, "this test needs --fw (the firmware-host binary)")
        self.env, self.name, self.link = env, name, link
        self.ready = env.path(name + ".ready")
        self.summary_path = env.path(name + ".summary.json")
        self.records_path = env.path(name + ".records.ndjson")
        self.argv = [env.args.fw, "--devices", str(devices), "--rate", str(rate),
                     "--link", link, "--first-id", str(first_id), "--seed", str(seed),
                     "--ready", self.ready, "--summary", self.summary_path,
                     "--records", self.records_path] + list(extra)
        if count is not None:
            self.argv += ["--count", str(count)]
        if faults:
            self.argv += ["--fault", faults]
        self.proc = None

    def start(self, timeout=15):
        """Starts the fleet; waits for its ready file."""
        self.proc = self.env.spawn(self.name, self.argv)

        def ready():
            self.proc.check_alive()
            return os.path.exists(self.ready)
        wait_for(ready, timeout, "%s to set up its link" % self.name)

    def finish(self, timeout):
        """Waits for the fleet to exit (--count: once every record is
        acknowledged); it must exit 0. Returns its summary."""
        rc = self.proc.wait_exit(timeout)
        check(rc == 0, "%s %s; summary %s" % (self.name, exit_text(rc), self.summary()))
        return self.summary()

    def stop(self, timeout=10):
        """SIGTERM; returns the summary."""
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_exit(timeout)
        return self.summary()

    def summary(self):
        """The summary JSON, or None."""
        try:
            with open(self.summary_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def records(self):
        """Every record the devices made: (device, seq) -> the record's dict."""
        out = {}
        with open(self.records_path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out[(r["device"], r["seq"])] = r
        return out


KIND_NAMES = {1: "temperature", 2: "humidity", 3: "vibration", 4: "door"}


def wait_device_records(sub, records, agent, timeout, where):
    """Waits until sub holds an event for every record of records ((device,
    seq) keys) and nothing is pending at the agent."""
    def arrived():
        sub.poll()
        got = set()
        for rec in sub.records:
            ev = rec["event"]
            if ev.get("type", "").startswith(("sensor.", "alarm.")):
                got.add((int(ev["subject"][4:], 16), (ev.get("data") or {}).get("seq")))
        return all(k in got for k in records) and agent.pending() == 0
    wait_for(arrived, timeout, "%s: every record at the subscriber" % where, interval=0.2)


def check_device_events(records, sub, where):
    """Every record made is exactly one event received by sub, and every
    event received from those devices is a record made, with the same values:
    nothing lost, nothing twice, nothing corrupt. Returns (records, device.*
    events) counted."""
    sub.poll()
    seen, other = {}, 0
    devices = {d for d, _ in records}
    for rec in sub.records:
        ev = rec["event"]
        data = ev.get("data") or {}
        if not ev.get("type", "").startswith(("sensor.", "alarm.")):
            other += ev.get("type", "").startswith("device.")
            continue
        dev = int(ev["subject"][4:], 16)
        if dev not in devices:
            continue
        key = (dev, data.get("seq"))
        check(key in records, "%s: event %s for device %d record %s was never made by a device: "
              "%s" % (where, ev["id"], dev, key[1], ev))
        seen.setdefault(key, set()).add(ev["id"])
        r = records[key]
        check(data.get("kind") == KIND_NAMES[r["kind"]] and data.get("uptime_ms") == r["uptime_ms"],
              "%s: event %s differs from the record made: %s vs %s" % (where, ev["id"], data, r))
        if r["kind"] == 4:
            check(data.get("open") == (r["value"] != 0), "%s: door value %s vs %s" %
                  (where, data, r))
        else:
            check(round(data.get("value") * 1000) == r["value"], "%s: value %s vs %s" %
                  (where, data, r))
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    check(not twice, "%s: %d records became more than one event, e.g. %s" %
          (where, len(twice), next(iter(twice.items()), None)))
    missing = [k for k in records if k not in seen]
    check(not missing, "%s: %d of %d records never arrived, e.g. %s" %
          (where, len(missing), len(records), sorted(missing)[:5]))
    return len(seen), other


# ---- TLS material ------------------------------------------------------------------


def openssl(*args):
    """Runs openssl; raises with its output on failure."""
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    check(r.returncode == 0, "openssl %s failed: %s" % (" ".join(args), r.stderr))


def make_ca(env, name):
    """A self-signed CA in the test folder: (cert path, key path)."""
    cert, key = env.path(name + ".pem"), env.path(name + ".key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=%s" % name, "-keyout", key, "-out", cert)
    return cert, key


def make_cert(env, name, ca, san=None):
    """A certificate for CN=name signed by ca, with an optional SAN (e.g.
    "IP:127.0.0.1" for a server): (cert path, key path)."""
    cert, key, csr = env.path(name + ".pem"), env.path(name + ".key"), env.path(name + ".csr")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
            "-keyout", key, "-out", csr)
    ext = env.path(name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", cert)
    return cert, key


def tls_listener_conf(ca, server, require_certificate=True):
    """Broker config lines (Broker extra=) making its listener TLS-only."""
    return ["cafile %s" % ca[0], "certfile %s" % server[0], "keyfile %s" % server[1],
            "require_certificate %s" % ("true" if require_certificate else "false")]


# ---- running a scenario ----------------------------------------------------------


def parse_args():
    """--agent PATH --cli PATH [--bridge PATH] [--fw PATH] [--fleet PATH] [--keep] [--seed N]
    [--budget S]"""
    p = argparse.ArgumentParser()
    p.add_argument("--agent", required=True, help="the edge-agent binary")
    p.add_argument("--cli", required=True, help="the edgespool binary")
    p.add_argument("--bridge", default=None, help="the cloud-bridge binary")
    p.add_argument("--fw", default=None, help="the firmware-host binary")
    p.add_argument("--fleet", default=None, help="the fleet-state binary")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--bridge-format", choices=("events", "batch"), default="events",
                   help="the bridges' cloud.format; batch also speaks MQTT 5 to the cloud, "
                   "and every sub reads with MQTT 5 (the batches' properties)")
    p.add_argument("--agent-format", choices=("events", "batch"), default="events",
                   help="the agents' mqtt.format (batch: over MQTT 5)")
    p.add_argument("--budget", type=int, default=150,
                   help="give up (and clean up) after this many seconds")
    return p.parse_args()


def _on_signal(signum, frame):
    raise TestFailure("interrupted by signal %d" % signum)


def _on_alarm(signum, frame):
    raise TestFailure("the test ran out of its time budget")


def main(scenario, about):
    """Runs scenario(env) and exits 0 on success; on failure prints what failed
    and the tail of every log, and exits 1. Cleans up in every case."""
    args = parse_args()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.budget)
    env = Env(args)
    name = os.path.basename(sys.argv[0])
    print("%s: %s" % (name, about))
    sys.stdout.flush()
    t0 = time.monotonic()
    rc = 1
    try:
        summary = scenario(env)
        print("PASS %s (%.1f s): %s" % (name, time.monotonic() - t0, summary))
        rc = 0
    except TestFailure as e:
        print("FAIL %s (%.1f s): %s" % (name, time.monotonic() - t0, e))
        env.dump_logs()
    except BaseException:
        print("FAIL %s (%.1f s): unexpected error" % (name, time.monotonic() - t0))
        traceback.print_exc(file=sys.stdout)
        env.dump_logs()
    finally:
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up finish
        env.close()
        sys.stdout.flush()
    sys.exit(rc)
