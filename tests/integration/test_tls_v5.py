#!/usr/bin/env python3
"""test_tls_v5: MQTT 5 over mutual TLS, and the refusals that must happen.

A CA, a server certificate (SAN IP:127.0.0.1) and a client certificate are
made with openssl; mosquitto listens with TLS only and
`require_certificate true`. An agent and a sub, both MQTT 5 with the CA and
their client certificates, move 500 events end to end. Then two agents that
must not get in: one that trusts another CA (server verification), one with
no client certificate (the broker refuses it). Both keep accepting events
into their journals (pending), report the broker disconnected with failed
attempts and a last error, and keep serving.
"""
import os
import subprocess

import harness as h

TOTAL = 500


def openssl(*args):
    """Runs openssl; raises with its output on failure."""
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    h.check(r.returncode == 0, "openssl %s failed: %s" % (" ".join(args), r.stderr))


def make_ca(env, name):
    """A self-signed CA: (cert path, key path)."""
    cert, key = env.path(name + ".pem"), env.path(name + ".key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=%s" % name, "-keyout", key, "-out", cert)
    return cert, key


def make_cert(env, name, ca, san=None):
    """A certificate for CN=name signed by ca, with an optional SAN."""
    cert, key, csr = env.path(name + ".pem"), env.path(name + ".key"), env.path(name + ".csr")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
            "-keyout", key, "-out", csr)
    ext = env.path(name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", cert)
    return cert, key


def tls_broker(env, ca, server):
    """mosquitto with one TLS listener that requires client certificates."""
    port = h.free_port()
    conf = env.path("mosquitto-tls.conf")
    lines = ["listener %d 127.0.0.1" % port, "cafile %s" % ca[0], "certfile %s" % server[0],
             "keyfile %s" % server[1], "require_certificate true", "allow_anonymous true",
             "max_queued_messages 0", "log_dest stderr", "log_type error",
             "log_type warning", "log_type notice"]
    if os.geteuid() == 0:
        lines.append("user root")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = env.spawn("mosquitto-tls", [h.mosquitto_path(), "-c", conf])

    def up():
        proc.check_alive()
        return h.port_open(port)
    h.wait_for(up, 10, "the TLS broker to listen")
    return port


def tls_flags(port, ca, client):
    """Settings for MQTT 5 over TLS to port (client may be None)."""
    flags = ["--mqtt.url", "mqtts://127.0.0.1:%d" % port, "--mqtt.version", "5",
             "--mqtt.ca", ca]
    if client:
        flags += ["--mqtt.cert", client[0], "--mqtt.key", client[1]]
    return flags


def refused(env, port, name, ca, client):
    """An agent that must not get through: it still journals, reports why."""
    agent = env.agent(port, name=name, extra=tls_flags(port, ca, client))
    agent.start()
    h.wait_for(lambda: agent.status()["broker"]["failures"] >= 2, 20,
               "%s to fail connecting twice" % name)
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(100) == 100, "%s did not accept events while refused" % name)
    st = agent.status()
    h.check(st["broker"]["state"] == "disconnected" and st["broker"]["connects"] == 0,
            "%s got connected: %s" % (name, st["broker"]))
    h.check(st["broker"]["last_error"] != "", "%s reports no last error" % name)
    h.check(st["journal"]["pending"] == 100, "%s pending %s" % (name, st["journal"]["pending"]))
    return st["broker"]["last_error"]


def scenario(env):
    ca = make_ca(env, "ca")
    server = make_cert(env, "server", ca, san="IP:127.0.0.1")
    client = make_cert(env, "gw1", ca)
    port = tls_broker(env, ca, server)
    agent = env.agent(port, extra=tls_flags(port, ca[0], client))
    agent.start()
    sub = env.sub(port, resend=True, from_start=True, extra=tls_flags(port, ca[0], client))
    h.wait_for(lambda: agent.status()["broker"]["state"] == "connected", 20,
               "the agent to connect over TLS")
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(TOTAL) == TOTAL, "not every batch was acknowledged")
    acked = poster.snapshot()
    h.settle(agent, sub, acked, 60)
    other_ca = make_ca(env, "other-ca")
    wrong_ca = refused(env, port, "wrong-ca", other_ca[0], client)
    no_cert = refused(env, port, "no-cert", ca[0], None)
    return ("%d events over MQTT 5 + mutual TLS; refused as expected: wrong CA (%s), "
            "no client certificate (%s)" % (TOTAL, wrong_ca, no_cert))


if __name__ == "__main__":
    h.main(scenario, "MQTT 5 over mutual TLS works; wrong CA and missing cert are refused")
