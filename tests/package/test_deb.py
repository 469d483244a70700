#!/usr/bin/env python3
"""pkg_deb: cpack builds edgespool-agent, -bridge, -fleet-state and -tools;
each holds the expected files (dpkg -c) and control fields (dpkg-deb -I),
its hand-kept Depends covers every library dpkg-shlibdeps finds in its
binaries, its maintainer scripts parse (postrm names every other daemon
package), and lintian finds no error and no warning (every tag is printed)."""
import argparse
import os
import re
import tempfile

from pkglib import (build_debs, check, deb_fields, deb_files, main, need_tools,
                    parse_depends, run)

DOC = "/usr/share/doc/%s/"
PACKAGES = {
    "edgespool-agent": {
        "files": ["/usr/bin/edge-agent", "/etc/edgespool/agent.ini",
                  "/lib/systemd/system/edgespool-agent.service"],
        "docs": ["README.md", "configuration.md", "install.md", "link-protocol.md",
                 "security.md"],
        "conffiles": ["/etc/edgespool/agent.ini"],
        "scripts": ["postinst", "prerm", "postrm"],
        "section": "net",
        "others": ["edgespool-bridge", "edgespool-fleet-state"],
    },
    "edgespool-bridge": {
        "files": ["/usr/bin/cloud-bridge", "/etc/edgespool/bridge.ini",
                  "/lib/systemd/system/edgespool-bridge.service"],
        "docs": ["bridge.md", "configuration.md", "install.md"],
        "conffiles": ["/etc/edgespool/bridge.ini"],
        "scripts": ["postinst", "prerm", "postrm"],
        "section": "net",
        "others": ["edgespool-agent", "edgespool-fleet-state"],
    },
    "edgespool-fleet-state": {
        "files": ["/usr/bin/fleet-state", "/etc/edgespool/fleet-state.ini",
                  "/lib/systemd/system/edgespool-fleet-state.service"],
        "docs": ["README.md", "configuration.md", "consumers.md", "install.md", "security.md"],
        "conffiles": ["/etc/edgespool/fleet-state.ini"],
        "scripts": ["postinst", "prerm", "postrm"],
        "section": "net",
        # The maintainer scripts' list of the daemon packages sharing the user.
        "others": ["edgespool-agent", "edgespool-bridge"],
    },
    "edgespool-tools": {
        "files": ["/usr/bin/edgespool", "/usr/bin/firmware-host"],
        "docs": ["README.md"],
        "conffiles": [],
        "scripts": [],
        "section": "utils",
    },
}


def expected_files(pkg):
    p = PACKAGES[pkg]
    files = set(p["files"]) | {DOC % pkg + d for d in p["docs"]}
    files |= {"/usr/share/man/man1/%s.1.gz" % f[len("/usr/bin/"):] for f in p["files"]
              if f.startswith("/usr/bin/")}
    files |= {DOC % pkg + "copyright", DOC % pkg + "changelog.Debian.gz",
              "/usr/share/lintian/overrides/" + pkg}
    return files


def check_contents(pkg, deb):
    files = deb_files(deb)
    want = expected_files(pkg)
    check(set(files) == want, "%s: missing %s; unexpected %s"
          % (pkg, sorted(want - set(files)), sorted(set(files) - want)))
    for f, mode in files.items():
        want_mode = "-rwxr-xr-x" if f.startswith("/usr/bin/") else "-rw-r--r--"
        check(mode == want_mode, "%s: %s is %s, not %s" % (pkg, f, mode, want_mode))


def check_control(pkg, deb, version, arch, tmp):
    f = deb_fields(deb)
    for key, want in (("Package", pkg), ("Version", version + "-1"), ("Architecture", arch),
                      ("Section", PACKAGES[pkg]["section"]), ("Priority", "optional")):
        check(f.get(key) == want, "%s: %s is %r, not %r" % (pkg, key, f.get(key), want))
    check(re.match(r"^[^<>]+ <[^@<>\s]+@[^@<>\s]+>$", f.get("Maintainer", "")),
          "%s: Maintainer %r is not 'Name <address>'" % (pkg, f.get("Maintainer")))
    check("\n" in f.get("Description", ""), "%s: Description has no long part" % pkg)
    ctrl = os.path.join(tmp, "control-" + pkg)
    run(["dpkg-deb", "-e", deb, ctrl])
    conffiles = []
    if os.path.exists(os.path.join(ctrl, "conffiles")):
        conffiles = open(os.path.join(ctrl, "conffiles")).read().split()
    check(conffiles == PACKAGES[pkg]["conffiles"],
          "%s: conffiles %s, not %s" % (pkg, conffiles, PACKAGES[pkg]["conffiles"]))
    for script in PACKAGES[pkg]["scripts"]:
        path = os.path.join(ctrl, script)
        check(os.path.exists(path), "%s: no %s" % (pkg, script))
        check(os.stat(path).st_mode & 0o777 == 0o755, "%s: %s is not mode 0755" % (pkg, script))
        run(["sh", "-n", path])
        text = open(path).read()
        check(not re.search(r"@[A-Z_]+@", text), "%s: %s: a placeholder was not replaced"
              % (pkg, script))
    if "others" in PACKAGES[pkg]:
        # postrm keeps the user and the state folder while any other daemon
        # package is still on the machine: it must name every one of them.
        m = re.search(r"^\s*for other in (.*); do$", open(os.path.join(ctrl, "postrm")).read(),
                      re.M)
        check(m and sorted(m.group(1).split()) == PACKAGES[pkg]["others"],
              "%s: postrm checks %s, not the other daemon packages %s"
              % (pkg, m and m.group(1), PACKAGES[pkg]["others"]))
    return parse_depends(f.get("Depends", ""))


def shlibdeps(pkg, deb, tmp):
    """What dpkg-shlibdeps finds in the package's programs: {name: version}."""
    root = os.path.join(tmp, "root-" + pkg)
    run(["dpkg-deb", "-x", deb, root])
    work = os.path.join(tmp, "shl-" + pkg)
    os.makedirs(os.path.join(work, "debian"))
    with open(os.path.join(work, "debian", "control"), "w") as f:
        f.write("Source: edgespool\n\nPackage: %s\nArchitecture: any\n" % pkg)
    bins = [os.path.join(root, p.lstrip("/")) for p in PACKAGES[pkg]["files"]
            if p.startswith("/usr/bin/")]
    out = run(["dpkg-shlibdeps", "-O"] + bins, cwd=work).stdout
    line = [l for l in out.splitlines() if l.startswith("shlibs:Depends=")]
    check(line, "%s: dpkg-shlibdeps printed no shlibs:Depends" % pkg)
    return parse_depends(line[0].split("=", 1)[1])


def check_depends(pkg, ours, found):
    for name, version in found.items():
        check(name in ours, "%s: dpkg-shlibdeps needs %s, which Depends lacks "
              "(packaging/deb.cmake)" % (pkg, name))
        if version:
            op, _, v = version.partition(" ")
            mine = ours[name] or ""
            check(mine.startswith(">= ") and run(
                ["dpkg", "--compare-versions", mine[3:], "ge", v], ok=(0, 1)).returncode == 0,
                "%s: Depends has %s (%s); dpkg-shlibdeps says (%s)" % (pkg, name, mine, version))
    print("%s: Depends covers dpkg-shlibdeps: %s" % (pkg, ", ".join(sorted(found))))


def lintian(debs):
    p = run(["lintian", "--no-tag-display-limit"] + sorted(debs.values()), ok=(0, 1))
    tags = [l for l in p.stdout.splitlines() if re.match(r"^[EWIXPO]: ", l)]
    errors = [l for l in tags if l.startswith("E: ")]
    warnings = [l for l in tags if l.startswith("W: ")]
    for l in tags:
        print("lintian: " + l)
    print("lintian: %d errors, %d warnings" % (len(errors), len(warnings)))
    check(not errors and p.returncode == 0, "lintian: exit %d, errors:\n%s%s"
          % (p.returncode, "\n".join(errors), p.stderr))
    check(not warnings, "lintian: warnings:\n%s" % "\n".join(warnings))


def test():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpack", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--version", required=True)
    a = ap.parse_args()
    need_tools("dpkg-deb", "dpkg-shlibdeps", "lintian")
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="es-pkg-deb-") as tmp:
        debs = build_debs(a.cpack, a.build, os.path.join(tmp, "out"))
        check(sorted(debs) == sorted(PACKAGES), "cpack made %s" % sorted(debs))
        for pkg, deb in debs.items():
            want = "%s_%s-1_%s.deb" % (pkg, a.version, arch)
            check(os.path.basename(deb) == want, "%s is not named %s" % (deb, want))
            check_contents(pkg, deb)
            ours = check_control(pkg, deb, a.version, arch, tmp)
            check_depends(pkg, ours, shlibdeps(pkg, deb, tmp))
        lintian(debs)


if __name__ == "__main__":
    main(test)
