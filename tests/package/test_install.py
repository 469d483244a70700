#!/usr/bin/env python3
"""pkg_install: `cmake --install` into a DESTDIR puts every file where it
belongs, for the prefixes /usr (a distribution's), /usr/local (the default)
and /opt/edgespool; the units name the installed programs and configs, and
the installed programs accept the installed default configs."""
import argparse
import os
import re
import tempfile

from pkglib import check, main, run

PROGRAMS = ["cloud-bridge", "edge-agent", "edgespool", "firmware-host", "fleet-state"]
DOCS = {
    "edgespool-agent": ["README.md", "changelog.Debian.gz", "configuration.md", "copyright",
                        "install.md", "link-protocol.md", "security.md"],
    "edgespool-bridge": ["bridge.md", "changelog.Debian.gz", "configuration.md", "copyright",
                         "install.md"],
    "edgespool-fleet-state": ["README.md", "changelog.Debian.gz", "configuration.md",
                              "consumers.md", "copyright", "install.md", "security.md"],
    "edgespool-tools": ["README.md", "changelog.Debian.gz", "copyright"],
}
# prefix -> (sysconfdir, systemd unit folder), as packaging/install_system.cmake says.
PREFIXES = {
    "/usr": ("/etc", "/lib/systemd/system"),
    "/usr/local": ("/usr/local/etc", "/usr/local/lib/systemd/system"),
    "/opt/edgespool": ("/etc/opt/edgespool", "/opt/edgespool/lib/systemd/system"),
}
# unit -> (program, config, a line its --print-config must show)
UNITS = {"edgespool-agent.service": ("edge-agent", "agent.ini", "site = site-1"),
         "edgespool-bridge.service": ("cloud-bridge", "bridge.ini", "site = site-1"),
         "edgespool-fleet-state.service": ("fleet-state", "fleet-state.ini",
                                           "path = /var/lib/edgespool/fleet-state.db")}


def expected(prefix):
    etc, unitdir = PREFIXES[prefix]
    files = {"%s/bin/%s" % (prefix, p) for p in PROGRAMS}
    files |= {"%s/share/man/man1/%s.1.gz" % (prefix, p) for p in PROGRAMS}
    files |= {"%s/edgespool/%s" % (etc, u[1]) for u in UNITS.values()}
    files |= {"%s/%s" % (unitdir, u) for u in UNITS}
    for pkg, docs in DOCS.items():
        files |= {"%s/share/doc/%s/%s" % (prefix, pkg, d) for d in docs}
        files.add("%s/share/lintian/overrides/%s" % (prefix, pkg))
    return files


def installed(root):
    found = set()
    for d, _, names in os.walk(root):
        found |= {os.path.join(d, n)[len(root):] for n in names}
    return found


def check_unit(root, prefix, unit):
    etc, unitdir = PREFIXES[prefix]
    program, config, _ = UNITS[unit]
    with open(root + unitdir + "/" + unit) as f:
        lines = [l.strip() for l in f]
    want = "ExecStart=%s/bin/%s --config %s/edgespool/%s" % (prefix, program, etc, config)
    check(want in lines, "%s%s/%s: no line %r" % (root, unitdir, unit, want))
    check(not any(re.search(r"@[A-Z_]+@", l) for l in lines),
          "%s: a placeholder was not replaced" % unit)


def check_prefix(cmake, build, tmp, prefix):
    root = os.path.join(tmp, prefix.strip("/").replace("/", "_"))
    env = dict(os.environ, DESTDIR=root)
    run([cmake, "--install", build, "--prefix", prefix], env=env)
    got, want = installed(root), expected(prefix)
    check(got == want, "prefix %s: missing %s; unexpected %s"
          % (prefix, sorted(want - got), sorted(got - want)))
    for p in PROGRAMS:
        check(os.stat("%s%s/bin/%s" % (root, prefix, p)).st_mode & 0o777 == 0o755,
              "%s/bin/%s is not mode 0755" % (prefix, p))
    for unit in UNITS:
        check_unit(root, prefix, unit)
    # The installed programs accept the installed default configs.
    etc = PREFIXES[prefix][0]
    for program, config, line in UNITS.values():
        out = run(["%s%s/bin/%s" % (root, prefix, program), "--print-config",
                   "--config", "%s%s/edgespool/%s" % (root, etc, config)]).stdout
        check(re.search(r"^%s  ; from " % re.escape(line), out, re.M),
              "%s --print-config: no %r from %s:\n%s" % (program, line, config, out))
    print("prefix %s: %d files where expected" % (prefix, len(got)))


def test():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmake", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="es-pkg-install-") as tmp:
        for prefix in PREFIXES:
            check_prefix(a.cmake, a.build, tmp, prefix)


if __name__ == "__main__":
    main(test)
