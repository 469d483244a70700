#!/usr/bin/env python3
"""test_amqp_tls.py - AMQP over TLS to a real RabbitMQ node: fleet-state and
`edgespool tail` over amqps://, with credentials out of the URL.

One RabbitMQ node (rabbit.py) with a TLS listener configured by the test
(verify_peer, fail_if_no_peer_cert), with certificates the test makes with
openssl: a CA, the node's (CN and SAN localhost), a client's, and another
CA nobody uses. A user `fleet` whose password only a file holds.

  1. fleet-state over amqps://fleet@localhost (source.password_file, source.ca,
     source.cert, source.key) connects, declares its quorum queue and
     applies the 40 events published through the node's MQTT plugin;
     `edgespool tail --amqp amqps://... --password-file --ca --cert --key
     --queue` prints them from a queue bound beforehand, and exits 0.
  2. Verification is on by default: a fleet-state given the other CA never
     connects and logs why (the broker's certificate does not verify); its
     URL holds the password, which it warns about. Another, with the right
     CA but no client certificate, is refused by the broker.
  3. source.tls_verify false with the other CA connects (the setting does
     what it says).
  4. The AMQP source asks for holes (repair.ask, the default): events 41, 43
     and 45 leave holes at 42 and 44; the test, as the site's bridge,
     takes fleet-state's requests from the MQTT plugin
     (edgespool/site1/gw1/cmd/resend: published on amq.topic as
     edgespool.site1.gw1.cmd.resend by the source's asker connection,
     over TLS too), answers 42 with the event and "ok" and 44 with "gone"
     on reply/resend: 42 is applied, 44 counted lost once, no hole left;
     the requests and answers its queue's binding (edgespool.#) brings in
     are not taken for events (none invalid).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rabbit  # noqa: E402
from rabbit import h  # noqa: E402

EVENTS = 40
PASSWORD = "tls-test-secret"


def event(seq):
    return {"specversion": "1.0", "id": "tls-%d" % seq, "source": "/site1/gw1",
            "type": "sensor.reading", "subject": "dev-%d" % (seq % 4), "sequence": str(seq),
            "time": "2026-11-27T07:00:00.000Z", "data": {"n": seq}}


class Fleet:
    """One fleet-state over AMQP, its own file, port and log."""

    def __init__(self, env, name, url, *extra):
        self.env, self.name = env, name
        self.http_port = h.free_port()
        self.proc = env.spawn(name, [
            rabbit.OPTS.fleet, "--node.id", name, "--source.amqp", url,
            "--source.queue", name, "--source.bind", "edgespool.#",
            "--state.path", env.path(name + ".db"), "--state.sync", "normal",
            "--http.listen", "127.0.0.1:%d" % self.http_port,
            "--source.backoff_base_ms", "100", "--source.backoff_max_ms", "1000"] + list(extra))

    def stats(self):
        status, body = h.http_call(self.http_port, "GET", "/api/stats")
        h.check(status == 200, "%s: GET /api/stats answered %d" % (self.name, status))
        return json.loads(body)

    def up(self):
        """The stats once the HTTP side answers (None before)."""
        self.proc.check_alive()
        try:
            return self.stats()
        except (OSError, ValueError, h.TestFailure):
            return None

    def log(self):
        with open(self.env.path(self.name + ".log"), errors="replace") as f:
            return f.read()

    def amqp_warnings(self):
        return [x for x in self.log().splitlines() if " amqp: " in x and "warn" in x]


def make_tls(env):
    """The certificates: (ca, node, client, other CA), readable by rabbitmq."""
    ca = h.make_ca(env, "es-test-ca")
    node = h.make_cert(env, "localhost", ca, san="DNS:localhost,IP:127.0.0.1")
    client = h.make_cert(env, "fleet", ca)
    other = h.make_ca(env, "other-ca")
    for path in ca + node + client + other:
        os.chmod(path, 0o644)
    return ca, node, client, other


def phase_flow(env, cluster, node, url, files):
    cluster.declare_quorum_queue("tail-tls", ["edgespool.#"])
    fleet = Fleet(env, "fleet-tls", url, *files)
    st = h.wait_for(lambda: (lambda s: s and s["connected_to"] and s)(fleet.up()), 60,
                    "fleet-state to connect over amqps://")
    h.check(st["connected_to"].startswith("amqps://fleet@localhost:"),
            "fleet-state says it is connected to %r" % st["connected_to"])
    h.check(not any("holds a password" in x for x in fleet.amqp_warnings()),
            "a password warning without a password in the URL")
    lines = "\n".join(json.dumps(event(k)) for k in range(1, EVENTS + 1)) + "\n"
    subprocess.run(["mosquitto_pub", "-p", str(node.mqtt_port), "-q", "1", "-l",
                    "-t", "edgespool/site1/gw1/ev/sensor.reading"],
                   input=lines, text=True, check=True, timeout=30)
    h.wait_for(lambda: fleet.stats()["applied"] == EVENTS, 60,
               "fleet-state to apply %d events over TLS" % EVENTS)
    tail = subprocess.run([env.args.cli, "tail", "--amqp", url, "--queue", "tail-tls",
                           "--count", str(EVENTS), "--password-file", files[1]] +
                          ["--ca", files[3], "--cert", files[5], "--key", files[7], "sensor.*"],
                          capture_output=True, text=True, timeout=60)
    h.check(tail.returncode == 0, "tail over amqps exited %d: %s" % (tail.returncode, tail.stderr))
    ids = [json.loads(x)["id"] for x in tail.stdout.splitlines()]
    h.check(sorted(ids) == sorted("tls-%d" % k for k in range(1, EVENTS + 1)),
            "tail over amqps printed %d events, expected the %d published" % (len(ids), EVENTS))
    return fleet


def resend_requests(node, want, timeout=30):
    """fleet-state's requests for the ranges in want, as a bridge sees them
    on the MQTT plugin ({(from, to): request}); a hole unanswered is asked
    again 5 s later, so one missed while subscribing comes again."""
    proc = subprocess.Popen(["mosquitto_sub", "-p", str(node.mqtt_port), "-q", "1",
                             "-t", "edgespool/site1/gw1/cmd/resend", "-W", str(timeout)],
                            stdout=subprocess.PIPE, text=True)
    got = {}
    try:
        for line in proc.stdout:
            req = json.loads(line)
            got[(req["from"], req["to"])] = req
            if want <= set(got):
                break
    finally:
        proc.kill()
        proc.wait()
    h.check(want <= set(got), "fleet-state asked for %s, not %s" % (sorted(got), sorted(want)))
    return got


def publish(node, topic, messages):
    lines = "\n".join(json.dumps(m) for m in messages) + "\n"
    subprocess.run(["mosquitto_pub", "-p", str(node.mqtt_port), "-q", "1", "-l", "-t", topic],
                   input=lines, text=True, check=True, timeout=30)


def phase_ask(node, fleet):
    """Holes at 42 and 44, asked for through the AMQP source: one answered
    with its event, one gone."""
    ev = "edgespool/site1/gw1/ev/sensor.reading"
    publish(node, ev, [event(41), event(43), event(45)])
    h.wait_for(lambda: fleet.stats()["gaps"]["missing"] == 2, 30, "holes at 42 and 44")
    asked = resend_requests(node, {(42, 42), (44, 44)})
    for req in asked.values():
        h.check(req["request_id"].startswith("fleet-tls-"),
                "request id %r is not the asker's" % req["request_id"])
    publish(node, ev, [event(42)])
    ok = {"request_id": asked[(42, 42)]["request_id"], "from": 42, "to": 42, "status": "ok",
          "sent_from": 42, "sent_to": 42, "latest_seq": 45}
    gone = {"request_id": asked[(44, 44)]["request_id"], "from": 44, "to": 44,
            "status": "gone", "gone_from": 44, "gone_to": 44, "latest_seq": 45}
    publish(node, "edgespool/site1/gw1/reply/resend", [ok, gone])

    def closed():
        g = fleet.stats()["gaps"]
        return g["missing"] == 0 and g["lost"] >= 1 and g
    g = h.wait_for(closed, 30, "fleet-state to take the answers")
    st = fleet.stats()
    h.check(st["applied"] == EVENTS + 4 and g["lost"] == 1 and g["holes_open"] == 0,
            "after the answers: applied %d, gaps %s" % (st["applied"], g))
    h.check(st["invalid"] == 0, "requests or answers taken for events: %d invalid" %
            st["invalid"])
    return "a hole answered with its event, one answered gone (lost 1)"


def phase_refused(env, node, url, pwfile, ca, client, other):
    """The other CA: not verified (and the URL's password warned about); no
    client certificate: refused by the broker. Neither connects."""
    inline = url.replace("amqps://fleet@", "amqps://fleet:%s@" % PASSWORD)
    wrong_ca = Fleet(env, "fleet-wrong-ca", inline, "--source.ca", other[0],
                     "--source.cert", client[0], "--source.key", client[1])
    no_cert = Fleet(env, "fleet-no-cert", url, "--source.password_file", pwfile,
                    "--source.ca", ca[0])
    for f in (wrong_ca, no_cert):
        h.wait_for(lambda: f.up() and len(f.amqp_warnings()) >= 2, 60,
                   "%s to fail to connect twice" % f.name, interval=0.2)
        h.check(f.stats()["connected_to"] == "", "%s connected" % f.name)
    bad = [x for x in wrong_ca.amqp_warnings() if "connect:" in x]
    h.check(bad and "verif" in bad[0].lower(),
            "the wrong CA's failure does not say the certificate did not verify: %r" %
            wrong_ca.amqp_warnings()[:2])
    h.check(any("holds a password" in x for x in wrong_ca.amqp_warnings()),
            "no warning for the password in the URL")
    own = [x for x in wrong_ca.log().splitlines() if not x.startswith("====")]  # not argv
    h.check(not any(PASSWORD in x for x in own), "fleet-state logged the password")
    for f in (wrong_ca, no_cert):
        f.proc.kill()
    return bad[0].split("connect:")[-1].strip()


def scenario(env):
    h.check(rabbit.OPTS.fleet, "this test needs --fleet (the fleet-state binary)")
    ca, node_cert, client, other = make_tls(env)
    tls_port = h.free_port()
    cluster = rabbit.Cluster(env, 1, conf_extra=lambda node: [
        "listeners.ssl.default = 127.0.0.1:%d" % tls_port,
        "ssl_options.cacertfile = %s" % ca[0],
        "ssl_options.certfile = %s" % node_cert[0],
        "ssl_options.keyfile = %s" % node_cert[1],
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = true",
    ])
    cluster.start()
    node = cluster.nodes[0]
    h.wait_for(lambda: h.port_open(tls_port), 60, "the node's TLS listener")
    node.ctl("add_user", "fleet", PASSWORD)
    node.ctl("set_permissions", "-p", "/", "fleet", ".*", ".*", ".*")
    pwfile = env.path("fleet.password")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    url = "amqps://fleet@localhost:%d/%%2f" % tls_port
    files = ["--source.password_file", pwfile, "--source.ca", ca[0],
             "--source.cert", client[0], "--source.key", client[1]]
    fleet = phase_flow(env, cluster, node, url, files)
    asked = phase_ask(node, fleet)
    why = phase_refused(env, node, url, pwfile, ca, client, other)
    insecure = Fleet(env, "fleet-insecure", url, "--source.password_file", pwfile,
                     "--source.ca", other[0], "--source.cert", client[0],
                     "--source.key", client[1], "--source.tls_verify", "false")
    h.wait_for(lambda: (lambda s: s and s["connected_to"])(insecure.up()), 60,
               "fleet-state with tls_verify false to connect")
    return ("fleet-state and tail over amqps:// with a client certificate and a password "
            "file: %d events; the other CA refused (%s), no client certificate refused, "
            "tls_verify false connects; asking: %s" % (EVENTS, why, asked))


if __name__ == "__main__":
    rabbit.main(scenario, "AMQP over TLS: amqps://, CA, client certificate, password file")
