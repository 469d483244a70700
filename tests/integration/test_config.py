#!/usr/bin/env python3
"""test_config: edge-agent's settings from the file, the environment and flags.

- `edge-agent --help` lists exactly the agent's settings as its reference in
  docs/configuration.md names them (parsed out of the document, which
  docs_agent_reference keeps equal to the table), each as a flag and an ES_
  variable;
- a bad value at a known line of a config file makes edge-agent exit 2 with
  "FILE:LINE" and the key on stderr (several kinds of bad value);
- bad values from the environment and from flags name their source;
- precedence file < ES_ environment < flag, as shown by --print-config,
  which also says where each value came from;
- --print-config output is itself a valid config file that prints the same;
- a missing node.id (and node.site) is reported and exits 2.
"""
import os
import re
import subprocess

import harness as h

REFERENCE_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                            "configuration.md")


def run(env, *argv, extra_env=None, timeout=10):
    """Runs edge-agent with argv (and only extra_env as ES_ variables)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("ES_")}
    e.update(extra_env or {})
    return subprocess.run([env.args.agent] + list(argv), capture_output=True, text=True,
                          env=e, timeout=timeout, stdin=subprocess.DEVNULL)


def setting_names():
    """The setting names of the agent's reference, parsed from configuration.md
    (the agent's table is made of its own rows and shared ones from common/,
    so no one source file names them all)."""
    with open(REFERENCE_MD) as f:
        text = f.read()
    m = re.search(r"<!-- BEGIN edge-agent reference -->(.*?)<!-- END edge-agent reference -->",
                  text, re.S)
    h.check(m is not None, "no edge-agent reference in %s" % REFERENCE_MD)
    names = re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|", m.group(1), re.M)
    h.check(len(names) >= 20, "parsed only %d setting names from %s" % (len(names), REFERENCE_MD))
    return names


def env_name(name):
    """mqtt.backoff_base_ms -> ES_MQTT_BACKOFF_BASE_MS"""
    return "ES_" + re.sub(r"[.-]", "_", name).upper()


def check_help(env, names):
    """--help exits 0 and lists every setting, and no other."""
    r = run(env, "--help")
    h.check(r.returncode == 0, "--help exit %d: %s" % (r.returncode, r.stderr))
    # each setting: "  --mqtt.url TEXT  (env ES_MQTT_URL)"
    rows = re.findall(r"^\s*--([a-z0-9_]+\.[a-z0-9_]+) \S+\s+\(env (ES_\w+)\)", r.stdout, re.M)
    listed = {name for name, _ in rows}
    wrong = [(name, var) for name, var in rows if var != env_name(name)]
    h.check(not wrong, "--help gives unexpected environment names: %s" % wrong)
    missing = [n for n in names if n not in listed]
    h.check(not missing, "--help does not list %s" % missing)
    extra = sorted(listed - set(names))
    h.check(not extra, "--help lists settings not in the reference: %s" % extra)
    return len(names)


BAD_FILE_VALUES = [
    # (section, key, bad value) -> the full key name is section.key
    ("mqtt", "inflight", "0"),
    ("mqtt", "inflight", "many"),
    ("journal", "sync", "sometimes"),
    ("journal", "max_bytes", "12zz"),
    ("mqtt", "keepalive_s", "-5"),
    ("mqtt", "backoff_base_ms", "1h"),
    ("http", "threads", "100000"),
    ("mqtt", "tls_verify", "perhaps"),
    ("mqtt", "no_such_key", "1"),
]


def check_bad_file_value(env, k, section, key, value):
    """A config file with one bad value at a known line: exit 2, FILE:LINE and
    the key on stderr."""
    path = env.path("bad%d.ini" % k)
    lines = ["; a comment", "[node]", "id = gw1", "site = site1", "", "[%s]" % section]
    lines.append("%s = %s" % (key, value))
    lineno = len(lines)
    lines += ["", "[log]", "level = info"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run(env, "--config", path, "--print-config")
    where = "%s:%d" % (path, lineno)
    full = "%s.%s" % (section, key)
    h.check(r.returncode == 2, "bad value %s = %s: exit %d (expected 2); stderr %r" %
            (full, value, r.returncode, r.stderr))
    h.check(where in r.stderr and full in r.stderr,
            "bad value %s = %s: stderr %r lacks %r and %r" % (full, value, r.stderr, where, full))
    h.check(r.stdout == "", "bad config still printed a config: %r" % r.stdout[:200])


def check_bad_env_and_flag(env):
    """Bad values from the environment and from a flag name where they came from."""
    r = run(env, "--node.id", "gw1", "--node.site", "site1", "--print-config",
            extra_env={"ES_MQTT_INFLIGHT": "0"})
    h.check(r.returncode == 2 and "ES_MQTT_INFLIGHT" in r.stderr,
            "bad ES_MQTT_INFLIGHT: exit %d, stderr %r" % (r.returncode, r.stderr))
    r = run(env, "--node.id", "gw1", "--node.site", "site1", "--mqtt.inflight", "0",
            "--print-config")
    h.check(r.returncode == 2 and "--mqtt.inflight" in r.stderr,
            "bad --mqtt.inflight: exit %d, stderr %r" % (r.returncode, r.stderr))
    r = run(env, "--node.id", "gw/1", "--node.site", "site1", "--print-config")
    h.check(r.returncode == 2 and "node.id" in r.stderr,
            "node.id with '/': exit %d, stderr %r" % (r.returncode, r.stderr))


def printed_values(text):
    """--print-config output as {"section.key": (value, comment)}."""
    out, section = {}, None
    for line in text.splitlines():
        m = re.fullmatch(r"\[([a-z0-9_]+)\]", line.strip())
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"([a-z0-9_]+) =\s?(.*?)\s*(?:;\s*(.*))?", line)
        if m and section:
            out["%s.%s" % (section, m.group(1))] = (m.group(2), m.group(3) or "")
    return out


def check_precedence(env, names):
    """file < ES_ environment < flag, shown by --print-config with the source."""
    path = env.path("prec.ini")
    with open(path, "w") as f:
        f.write("[node]\nid = gw1\nsite = site1\n\n[mqtt]\ninflight = 10\n"
                "keepalive_s = 40\nconnect_timeout_s = 7\n\n[http]\nthreads = 3\n")
    r = run(env, "--config", path, "--mqtt.inflight", "30", "--http.threads=5",
            "--print-config",
            extra_env={"ES_MQTT_INFLIGHT": "20", "ES_MQTT_KEEPALIVE_S": "50",
                       "ES_RESEND_RATE": "77"})
    h.check(r.returncode == 0, "--print-config exit %d: %s" % (r.returncode, r.stderr))
    v = printed_values(r.stdout)
    missing = [n for n in names if n not in v]
    h.check(not missing, "--print-config does not print %s" % missing)
    expect = {
        "mqtt.inflight": ("30", "--mqtt.inflight"),          # file, env and flag: flag
        "http.threads": ("5", "--http.threads"),             # file and flag (=form): flag
        "mqtt.keepalive_s": ("50s", "ES_MQTT_KEEPALIVE_S"),  # file and env: env
        "resend.rate": ("77", "ES_RESEND_RATE"),             # env only
        "mqtt.connect_timeout_s": ("7s", "%s:8" % path),     # file only, line 8
        "node.id": ("gw1", "%s:2" % path),
        "mqtt.backoff_base_ms": ("250ms", "default"),
    }
    for key, (value, source) in expect.items():
        got_value, comment = v[key]
        h.check(got_value == value, "%s printed as %r, expected %r" % (key, got_value, value))
        h.check(source in comment, "%s: source comment %r lacks %r" % (key, comment, source))
    return r.stdout


def check_round_trip(env, printed):
    """--print-config output read back as a config file prints the same values."""
    path = env.path("printed.ini")
    with open(path, "w") as f:
        f.write(printed)
    r = run(env, "--config", path, "--print-config")
    h.check(r.returncode == 0, "printed config rejected as a config file: exit %d: %s" %
            (r.returncode, r.stderr))
    a = {k: v for k, (v, _) in printed_values(printed).items()}
    b = {k: v for k, (v, _) in printed_values(r.stdout).items()}
    diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    h.check(not diff, "values changed when the printed config was read back: %s" % diff)


def check_required(env):
    """A missing node.id or node.site is reported; exit 2."""
    r = run(env, "--node.site", "site1", "--print-config")
    h.check(r.returncode == 2 and "node.id" in r.stderr,
            "missing node.id: exit %d, stderr %r" % (r.returncode, r.stderr))
    r = run(env, "--node.site", "site1", "--journal.path", env.path("never.db"))
    h.check(r.returncode == 2 and "node.id" in r.stderr,
            "missing node.id (run): exit %d, stderr %r" % (r.returncode, r.stderr))
    h.check(not os.path.exists(env.path("never.db")), "a journal was created without node.id")
    r = run(env, "--print-config", extra_env={"ES_NODE_ID": "gw1"})
    h.check(r.returncode == 2 and "node.site" in r.stderr,
            "missing node.site: exit %d, stderr %r" % (r.returncode, r.stderr))
    r = run(env, "--config", env.path("absent.ini"), "--node.id", "a", "--node.site", "b")
    h.check(r.returncode == 2 and "absent.ini" in r.stderr,
            "missing --config file: exit %d, stderr %r" % (r.returncode, r.stderr))


def scenario(env):
    names = setting_names()
    n = check_help(env, names)
    for k, (section, key, value) in enumerate(BAD_FILE_VALUES):
        check_bad_file_value(env, k, section, key, value)
    check_bad_env_and_flag(env)
    printed = check_precedence(env, names)
    check_round_trip(env, printed)
    check_required(env)
    r = run(env, "--version")
    h.check(r.returncode == 0 and r.stdout.startswith("edge-agent "),
            "--version: exit %d, %r" % (r.returncode, r.stdout))
    return "%d settings in --help; %d bad file values rejected with FILE:LINE; precedence, " \
           "round trip and required settings ok" % (n, len(BAD_FILE_VALUES))


if __name__ == "__main__":
    h.main(scenario, "edge-agent configuration: help, errors, precedence")
