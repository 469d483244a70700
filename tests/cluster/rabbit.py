"""rabbit.py - a real RabbitMQ cluster for edgespool's cluster tests.

Debian's rabbitmq-server (3.10, with its MQTT plugin) started by the test:
two or three nodes on loopback, each with its own node name
(es<pid><letter>@localhost), Erlang distribution port, AMQP and MQTT
listener ports in a generated rabbitmq.conf, an enabled_plugins file with
rabbitmq_mqtt, and data and log folders under the test's temporary folder
owned by the `rabbitmq` user (Debian's wrapper script drops to it). One
Erlang cookie, made per test, is given to the nodes (-setcookie) and to every
rabbitmqctl call (--erlang-cookie), so nothing depends on a cookie file. The
nodes boot in parallel, then the others join the first with rabbitmqctl
stop_app / join_cluster / start_app.

Readiness is polled (the AMQP and MQTT ports accept connections), never
slept for. Every node is SIGKILLed when the test ends (the harness's Env
kills each process group it spawned), also on failure; epmd is stopped too
when this test started it and no other node uses it; the data folders go
with the temporary folder.

Needs root (the wrapper switches to the rabbitmq user). Skips (exit 77)
only when rabbitmq-server is not installed.

Python 3 standard library only; reuses tests/integration/harness.py.
"""
import argparse
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402

# The scripts behind Debian's /usr/sbin wrappers: the wrappers switch user
# with su, which starts a new session, so the node would escape the process
# group the harness kills. setpriv changes user in place (no fork, no setsid).
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
# The nodes and the CLI run as the rabbitmq user, in the node's own folder:
# Erlang's code server looks in the working directory first, and one the
# user cannot read (a root-only checkout, say) fills every rabbitmqctl
# answer with eacces reports.
AS_RABBITMQ = ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups"]
EPMD_PORT = 4369

# Extra command-line options of the cluster tests, taken off sys.argv before
# harness.parse_args sees the rest (see main()).
OPTS = argparse.Namespace(fleet=None, nodes=3)


def installed():
    """True when rabbitmq-server and rabbitmqctl are there, and the rabbitmq
    user exists."""
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return False
    return (os.access(SERVER, os.X_OK) and os.access(CTL, os.X_OK) and
            shutil.which("setpriv") is not None)


def epmd_running():
    """True when something listens on epmd's port."""
    return h.port_open(EPMD_PORT)


def epmd_pids():
    """Pids of processes named epmd (from /proc)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                if f.read().strip() == "epmd":
                    pids.append(int(d))
        except OSError:
            pass
    return pids


class Node:
    """One RabbitMQ node: ports, folders, config; start() spawns it."""

    def __init__(self, cluster, letter):
        self.cluster, self.env = cluster, cluster.env
        self.name = "es%d%s@localhost" % (os.getpid(), letter)
        self.label = "rabbit-" + letter
        self.amqp_port, self.mqtt_port = h.free_port(), h.free_port()
        self.dist_port = h.free_port()
        self.dir = os.path.join(cluster.base, letter)
        self.proc = None
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "log"))
        self.conf = os.path.join(self.dir, "rabbitmq.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "listeners.tcp.default = 127.0.0.1:%d" % self.amqp_port,
                "mqtt.listeners.tcp.default = 127.0.0.1:%d" % self.mqtt_port,
                "mqtt.allow_anonymous = true",
                "mqtt.vhost = /",
                "mqtt.exchange = amq.topic",
                "loopback_users = none",
                # a small tmpfs must not stop publishers (a disk alarm)
                "disk_free_limit.absolute = 1MB",
                "vm_memory_high_watermark.relative = 0.8",
                "log.console = true",
                "log.console.level = warning",
                "log.file = false",
            ] + list(cluster.conf_extra(self))) + "\n")
        self.plugins = os.path.join(self.dir, "enabled_plugins")
        with open(self.plugins, "w") as f:
            f.write("[rabbitmq_mqtt].\n")

    def amqp_url(self):
        return "amqp://guest:guest@127.0.0.1:%d/%%2f" % self.amqp_port

    def mqtt_url(self):
        return "mqtt://127.0.0.1:%d" % self.mqtt_port

    def environ(self):
        e = dict(os.environ)
        e.update({
            "HOME": self.dir,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": self.conf,
            "RABBITMQ_ENABLED_PLUGINS_FILE": self.plugins,
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "data"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-setcookie %s" % self.cluster.cookie,
        })
        return e

    def start(self):
        """Spawns the node (its own process group, log in <label>.log)."""
        self.proc = self.env.spawn(self.label, AS_RABBITMQ + ["env", "-C", self.dir, SERVER],
                                   env=self.environ())

    def ready(self):
        """True when both listeners accept connections (raises if it died)."""
        self.proc.check_alive()
        return h.port_open(self.amqp_port) and h.port_open(self.mqtt_port)

    def wait_ready(self, timeout):
        h.wait_for(self.ready, timeout, "%s (%s) to open its AMQP and MQTT ports" %
                   (self.label, self.name), interval=0.25)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def vm_pid(self):
        """The Erlang VM's pid from the node's pid file (None if none)."""
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def kill(self):
        """SIGKILLs the node's whole process group, and the Erlang VM named
        by its pid file should it have left the group."""
        if self.proc is None:
            return
        pid = self.vm_pid()
        self.proc.kill()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.unlink(os.path.join(self.dir, "pid"))
        except OSError:
            pass

    def ctl(self, *args, timeout=120, check=True):
        """rabbitmqctl -n NODE ARGS; returns stdout (TestFailure if it fails
        and check)."""
        argv = AS_RABBITMQ + [CTL, "-n", self.name, "--erlang-cookie", self.cluster.cookie] + list(args)
        # Not the node's RABBITMQ_DIST_PORT: the CLI would take its own
        # distribution port from DIST_PORT + 10000 (past 65535 for a high
        # free port); without it, the CLI's default range.
        e = self.environ()
        del e["RABBITMQ_DIST_PORT"]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, env=e, cwd=self.dir)
        if check:
            h.check(r.returncode == 0, "rabbitmqctl %s on %s: exit %d: %s%s" %
                    (" ".join(args), self.name, r.returncode, r.stdout[-800:], r.stderr[-800:]))
        return r.stdout


class Cluster:
    """n nodes (letters a, b, c...) joined into one cluster. close() is
    registered with the Env: the nodes die with the test in every case."""

    def __init__(self, env, n=3, conf_extra=lambda node: ()):
        """conf_extra(node): more rabbitmq.conf lines for that node (a TLS
        listener, say), called once the node has its ports and folder."""
        h.check(os.geteuid() == 0, "the cluster tests need root (rabbitmq-server's "
                "wrapper switches to the rabbitmq user)")
        self.env = env
        self.conf_extra = conf_extra
        self.cookie = "ES" + secrets.token_hex(16).upper()
        self.epmd_before = epmd_running()
        # The rabbitmq user must reach its folders inside the test's own.
        os.chmod(env.dir, 0o755)
        self.base = env.path("rabbit")
        os.makedirs(self.base)
        self.nodes = [Node(self, chr(ord("a") + i)) for i in range(n)]
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for node in self.nodes:
            for root, dirs, files in os.walk(node.dir):
                for name in [root] + [os.path.join(root, x) for x in files]:
                    shutil.chown(name, "rabbitmq", "rabbitmq")
        env_close = env.close

        def close():
            for node in self.nodes:
                node.kill()
            env_close()
            self.stop_epmd()
        env.close = close

    def start(self, timeout=120):
        """Boots every node at once, then joins the others to the first and
        checks that the cluster has them all running."""
        t0 = time.monotonic()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready(timeout)
        booted = time.monotonic() - t0
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        for node in self.nodes:
            node.wait_ready(timeout)
        running = self.running_nodes(first)
        h.check(running == sorted(n.name for n in self.nodes),
                "cluster_status on %s lists running nodes %s" % (first.name, running))
        print("  cluster of %d RabbitMQ nodes up: booted in %.1f s, joined in %.1f s" %
              (len(self.nodes), booted, time.monotonic() - t0 - booted))
        sys.stdout.flush()

    def running_nodes(self, via):
        """The names of the running nodes, as `via` sees them."""
        out = via.ctl("eval", "rabbit_nodes:all_running().")
        return sorted(x.strip(" []'\n") for x in out.replace("\n", "").split(",") if x.strip(" []\n"))

    def alive_node(self):
        """A node that is running (for rabbitmqctl calls)."""
        for node in self.nodes:
            if node.alive():
                return node
        raise h.TestFailure("no RabbitMQ node is running")

    def declare_quorum_queue(self, queue, keys):
        """Declares a durable quorum queue and binds it to amq.topic with each
        routing-key pattern of keys (through rabbitmqctl eval: no AMQP client
        needed)."""
        via = self.alive_node()
        via.ctl("eval", "rabbit_amqqueue:declare(rabbit_misc:r(<<\"/\">>, queue, <<\"%s\">>), "
                "true, false, [{<<\"x-queue-type\">>, longstr, <<\"quorum\">>}], none, "
                "<<\"es-test\">>)." % queue)
        for key in keys:
            out = via.ctl("eval", "rabbit_binding:add({binding, rabbit_misc:r(<<\"/\">>, "
                          "exchange, <<\"amq.topic\">>), <<\"%s\">>, rabbit_misc:r(<<\"/\">>, "
                          "queue, <<\"%s\">>), []}, <<\"es-test\">>)." % (key, queue))
            h.check(out.strip() == "ok", "binding %s to %s: %s" % (key, queue, out))

    def queue_info(self, queue):
        """{"messages": N, "type": T, "leader": NODE, "members": [...]} of a
        queue, from a running node."""
        out = self.alive_node().ctl("list_queues", "-q", "--no-table-headers", "name", "type",
                                    "messages", "leader", "members")
        for line in out.splitlines():
            f = line.split("\t")
            if f and f[0] == queue:
                return {"type": f[1], "messages": int(f[2]) if f[2].isdigit() else -1,
                        "leader": f[3] if len(f) > 3 else "",
                        "members": f[4] if len(f) > 4 else ""}
        raise h.TestFailure("queue %s not listed: %s" % (queue, out))

    def stop_epmd(self):
        """Stops epmd if this test started it and no node is registered with
        it any more (another program's node keeps it running)."""
        if self.epmd_before:
            return
        try:
            r = subprocess.run(["epmd", "-names"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return
        if "name " in r.stdout:
            return
        for pid in epmd_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main(scenario, about):
    """harness.main with the cluster tests' own options taken off the command
    line first: --fleet PATH (the fleet-state binary), --nodes N. Exits 77
    (skipped) when rabbitmq-server is not installed."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--fleet", default=None)
    p.add_argument("--nodes", type=int, default=3)
    opts, rest = p.parse_known_args(sys.argv[1:])
    OPTS.fleet, OPTS.nodes = opts.fleet, opts.nodes
    sys.argv[1:] = rest
    if not installed():
        print("SKIP %s: rabbitmq-server is not installed (scripts/deps.sh installs it)" %
              os.path.basename(sys.argv[0]))
        sys.exit(77)
    h.main(scenario, about)
