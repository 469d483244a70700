#!/usr/bin/env python3
"""test_auth: user name and password (mqtt.username, mqtt.password_file).

mosquitto with `allow_anonymous false` and a password file made by
mosquitto_passwd. An agent and a sub with the right password move 200
events; an agent with a wrong password is refused, keeps journaling, and
says why in /api/status; a password file that does not exist stops the
agent at start with a clear error.
"""
import os
import subprocess

import harness as h

TOTAL = 200


def auth_broker(env):
    """mosquitto that takes only users of its password file."""
    port = h.free_port()
    pwfile = env.path("mosquitto.passwd")
    for user, pw in (("gw1", "s3cret-gw1"), ("reader", "s3cret-reader")):
        r = subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if user == "gw1" else []) +
                           [pwfile, user, pw], capture_output=True, text=True)
        h.check(r.returncode == 0, "mosquitto_passwd failed: %s" % r.stderr)
    conf = env.path("mosquitto-auth.conf")
    lines = ["listener %d 127.0.0.1" % port, "allow_anonymous false",
             "password_file %s" % pwfile, "max_queued_messages 0", "log_dest stderr"]
    if os.geteuid() == 0:
        lines.append("user root")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = env.spawn("mosquitto-auth", [h.mosquitto_path(), "-c", conf])

    def up():
        proc.check_alive()
        return h.port_open(port)
    h.wait_for(up, 10, "the broker to listen")
    return port


def secret(env, name, text):
    """A password file holding text."""
    path = env.path(name)
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def scenario(env):
    port = auth_broker(env)
    agent = env.agent(port, extra=["--mqtt.username", "gw1", "--mqtt.password_file",
                                   secret(env, "gw1.pw", "s3cret-gw1")])
    agent.start()
    sub = env.sub(port, resend=True, from_start=True,
                  extra=["--mqtt.username", "reader", "--mqtt.password_file",
                         secret(env, "reader.pw", "s3cret-reader")])
    poster = h.Poster(agent.http_port)
    h.check(poster.post_many(TOTAL) == TOTAL, "not every batch was acknowledged")
    h.settle(agent, sub, poster.snapshot(), 60)

    wrong = env.agent(port, name="wrong", extra=["--mqtt.username", "gw1",
                                                 "--mqtt.password_file",
                                                 secret(env, "wrong.pw", "guess")])
    wrong.start()
    h.wait_for(lambda: wrong.status()["broker"]["failures"] >= 2, 20,
               "the wrong password to be refused twice")
    st = wrong.status()
    h.check(st["broker"]["connects"] == 0 and st["broker"]["last_error"],
            "a wrong password got in: %s" % st["broker"])
    h.check(h.Poster(wrong.http_port).post_many(100) == 100,
            "the refused agent did not journal events")

    missing = env.agent(port, name="missing", extra=["--mqtt.username", "gw1",
                                                     "--mqtt.password_file",
                                                     env.path("no-such.pw")])
    proc = env.spawn("missing", missing.argv())
    rc = proc.wait_exit(10)
    log = h.tail(env.path("missing.log"))
    h.check(rc not in (0, None) and "no-such.pw" in log,
            "a missing password file: exit %s, log %r" % (rc, log))
    return ("%d events with user+password; wrong password refused (%s); missing password "
            "file stops the agent (exit %s)" % (TOTAL, st["broker"]["last_error"], rc))


if __name__ == "__main__":
    h.main(scenario, "MQTT user name and password; wrong or missing ones are refused")
