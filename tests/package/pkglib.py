"""Shared helpers of the package tests (tests/package): running commands,
building the .debs with cpack, and reading them with dpkg-deb."""
import os
import subprocess
import sys
import time


class Fail(Exception):
    """A check that failed: the message says what and where."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run(cmd, env=None, cwd=None, ok=(0,), **kw):
    """Runs cmd; returns its CompletedProcess (text). Fails on another code."""
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, **kw)
    if p.returncode not in ok:
        raise Fail("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def need_tools(*tools):
    """Fails (not skips) when a tool scripts/deps.sh installs is missing."""
    import shutil
    for t in tools:
        check(shutil.which(t), "%s not found (scripts/deps.sh installs it)" % t)


def build_debs(cpack, build, out):
    """cpack's packages of the build tree, made in out; {package: path}."""
    run([cpack, "--config", os.path.join(build, "CPackConfig.cmake"), "-B", out])
    debs = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".deb"):
            debs[name.split("_")[0]] = os.path.join(out, name)
    return debs


def deb_fields(deb):
    """The control fields of a .deb, as a dict."""
    text = run(["dpkg-deb", "-f", deb]).stdout
    fields, key = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def deb_files(deb):
    """Regular files and symlinks of a .deb: {path: mode string}."""
    files = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        parts = line.split()
        if parts[0].startswith("d"):
            continue
        files[parts[5].lstrip(".")] = parts[0]
    return files


def parse_depends(text):
    """'a (>= 1), b' -> {'a': '>= 1', 'b': None}. Alternatives are not used."""
    deps = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        check("|" not in item, "unexpected alternative in Depends: " + item)
        name, _, rest = item.partition(" ")
        deps[name] = rest.strip().strip("()").strip() or None
    return deps


def wait_for(what, seconds, fn):
    """Polls fn() until it returns a true value, which it returns."""
    deadline = time.monotonic() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail("timed out after %ds waiting for %s" % (seconds, what))
        time.sleep(0.1)


def main(fn):
    """Runs the test fn(); exit 0 on success, 1 on a failed check, 77 to skip."""
    try:
        fn()
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
    print("PASS")
