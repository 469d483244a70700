"""netns.py - a network namespace joined to the host by a veth pair, with
nftables faults inside it (the fault harness's uplink partition, scenario 4).

    ns = netns.Netns.create()          # or netns.skip_unless_available() first
    ns.run(["mosquitto", "-c", conf])   # argv to run inside: ns.wrap(argv)
    ns.partition()                      # silent black hole on the veth
    ns.loss(5)                          # 5 % of packets dropped each way
    ns.heal()                           # no rule: the link is whole again
    ns.close()                          # also at exit and on SIGTERM/SIGINT/SIGHUP

The namespace is named es-<pid> (unique per run); its veth pair has the host
end `esh<pid>` in the root namespace and the peer `esn<pid>` moved inside.
Addresses come from a private /30, 10.231.<n>.0/30 with n picked from the pid
and moved on while any address of that /30 is already in use on the host:
the host end is .1, the namespace end .2. Test traffic goes only to those
addresses (and to the namespace's own loopback).

Faults are nftables rules in a table `inet esfault` inside the namespace,
matched on the veth only (the namespace's loopback stays whole, so a
process run inside, like a recorder, keeps its view of a broker there):
  partition  drop on input and output: the peer sees nothing, not even a
             reset (a silent black hole)
  loss N     `numgen random mod 100 < N drop` on input and output
  reset      `reject with tcp reset` for a TCP port: every packet to it is
             answered with a reset (used to force a reconnect)
Each call replaces the table's rules; heal() leaves the table empty.

Also Redirect: an nftables nat rule in the ROOT namespace (a table of its
own, esfault-<pid>) sending new connections to <ns address>:<port> to a
local port instead (a delaying proxy), except those of sockets marked with
SO_MARK = MARK (the proxy's own upstream connections). Only connections
opened after it is added are redirected (NAT is decided per connection).

Python 3 standard library only; needs root, `ip` (iproute2) and `nft`
(Debian package nftables) and a kernel with network namespaces, veth and
nf_tables.
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys

# ctest's SKIP_RETURN_CODE for the scenarios that need this (see CMakeLists.txt).
SKIP_CODE = 77

MARK = 0x5e5f  # SO_MARK of the proxy's upstream sockets: not redirected


def _run(argv, stdin=None, check=True):
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                (r.stderr or r.stdout).strip()))
    return r


def unavailable():
    """Why namespaces + nftables cannot be used here, or None when they can.
    Probes for real: creates a throw-away namespace, a veth pair and a table."""
    if os.geteuid() != 0:
        return "needs root (ip netns, nftables)"
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if not shutil.which(tool):
            return "`%s` not found (Debian package %s; scripts/deps.sh installs it)" % (tool, pkg)
    name = "es-probe-%d" % os.getpid()
    try:
        r = _run(["ip", "netns", "add", name], check=False)
        if r.returncode != 0:
            return "cannot create a network namespace: %s" % r.stderr.strip()
        try:
            r = _run(["ip", "link", "add", "esp%d" % os.getpid(), "type", "veth", "peer",
                      "name", "esq%d" % os.getpid(), "netns", name], check=False)
            if r.returncode != 0:
                return "cannot create a veth pair: %s" % r.stderr.strip()
            r = _run(["ip", "netns", "exec", name, "nft", "-f", "-"], check=False,
                     stdin="table inet esprobe {\n  chain c {\n    type filter hook input "
                           "priority 0; policy accept;\n    numgen random mod 100 < 1 drop\n"
                           "  }\n}\n")
            if r.returncode != 0:
                return "nftables does not work in a namespace (kernel nf_tables?): %s" % \
                    r.stderr.strip()
            r = _run(["ip", "netns", "exec", name, "nft", "-f", "-"], check=False,
                     stdin="table ip esprobe {\n  chain o {\n    type nat hook output "
                           "priority -100; policy accept;\n    tcp dport 1 redirect to :2\n"
                           "  }\n}\n")
            if r.returncode != 0:
                return "nftables nat (redirect) does not work (kernel nft_nat/nft_redir?): %s" \
                    % r.stderr.strip()
        finally:
            _run(["ip", "link", "del", "esp%d" % os.getpid()], check=False)
            _run(["ip", "netns", "del", name], check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return "probing namespaces failed: %s" % e
    return None


def skip_unless_available(what):
    """Prints "SKIP: <why>" and exits with SKIP_CODE unless namespaces and
    nftables work here (so ctest shows the test Skipped, never Passed)."""
    why = unavailable()
    if why:
        print("SKIP: %s: %s" % (what, why))
        sys.stdout.flush()
        sys.exit(SKIP_CODE)


def _subnet_in_use(octet):
    r = _run(["ip", "-4", "-o", "addr", "show"], check=False)
    return ("10.231.%d." % octet) in r.stdout


class Netns:
    """One namespace with a veth pair to the host; see the module's text."""

    _open = []

    def __init__(self, name, host_if, ns_if, host_ip, ns_ip):
        self.name, self.host_if, self.ns_if = name, host_if, ns_if
        self.host_ip, self.ns_ip = host_ip, ns_ip
        self.fault = "none"
        self.redirects = []
        self._closed = False

    @classmethod
    def create(cls):
        pid = os.getpid()
        octet = pid % 250
        for _ in range(250):
            if not _subnet_in_use(octet):
                break
            octet = (octet + 1) % 250
        ns = cls("es-%d" % pid, "esh%d" % pid, "esn%d" % pid,
                 "10.231.%d.1" % octet, "10.231.%d.2" % octet)
        cls._install_cleanup()
        cls._open.append(ns)
        try:
            ns._setup()
        except BaseException:
            ns.close()
            raise
        return ns

    def _setup(self):
        _run(["ip", "netns", "add", self.name])
        _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
              "netns", self.name])
        _run(["ip", "addr", "add", self.host_ip + "/30", "dev", self.host_if])
        _run(["ip", "link", "set", self.host_if, "up"])
        self.exec(["ip", "link", "set", "lo", "up"])
        self.exec(["ip", "addr", "add", self.ns_ip + "/30", "dev", self.ns_if])
        self.exec(["ip", "link", "set", self.ns_if, "up"])
        self.heal()

    # ---- running things inside ---------------------------------------------

    def wrap(self, argv):
        """argv run inside the namespace (ip netns exec execs it: same pid)."""
        return ["ip", "netns", "exec", self.name] + list(argv)

    def exec(self, argv, stdin=None):
        """Runs argv inside to completion (raises on failure)."""
        return _run(self.wrap(argv), stdin=stdin)

    # ---- faults ------------------------------------------------------------

    def _rules(self, body, fault):
        text = ("table inet esfault {}\nflush table inet esfault\n"
                "table inet esfault {\n"
                "  chain input { type filter hook input priority 0; policy accept;\n%s  }\n"
                "  chain output { type filter hook output priority 0; policy accept;\n%s  }\n"
                "}\n" % (body("iifname"), body("oifname")))
        self.exec(["nft", "-f", "-"], stdin=text)
        self.fault = fault

    def partition(self):
        """Drops every packet on the veth, both ways, silently."""
        self._rules(lambda d: '    %s "%s" drop\n' % (d, self.ns_if), "partition")

    def loss(self, percent):
        """Drops percent % of the packets on the veth, each way, at random."""
        self._rules(lambda d: '    %s "%s" numgen random mod 100 < %d drop\n' %
                    (d, self.ns_if, percent), "loss %d%%" % percent)

    def reset(self, port):
        """Answers every TCP packet arriving for port with a reset."""
        self._rules(lambda d: '    iifname "%s" tcp dport %d reject with tcp reset\n' %
                    (self.ns_if, port) if d == "iifname" else "", "reset :%d" % port)

    def heal(self):
        """No rule: the link is whole again."""
        self._rules(lambda d: "", "none")

    def ruleset(self):
        """The namespace's nftables ruleset as text (for logs)."""
        return self.exec(["nft", "list", "ruleset"]).stdout

    # ---- a redirect in the root namespace (to a local proxy) --------------

    def redirect(self, port, to_port):
        """New connections from this host to ns_ip:port go to 127.0.0.1:to_port,
        except those of sockets marked MARK."""
        table = "esfault-%d" % os.getpid()
        _run(["nft", "-f", "-"], stdin=(
            "table ip %s {\n"
            "  chain out { type nat hook output priority -100; policy accept;\n"
            "    ip daddr %s tcp dport %d meta mark != 0x%x redirect to :%d\n  }\n}\n" %
            (table, self.ns_ip, port, MARK, to_port)))
        if table not in self.redirects:
            self.redirects.append(table)

    def unredirect(self):
        for table in self.redirects:
            _run(["nft", "delete", "table", "ip", table], check=False)
        self.redirects = []

    # ---- clean-up --------------------------------------------------------------

    def close(self):
        """Removes the redirect, the namespace and the veth (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.unredirect()
        # Whatever still runs inside would keep nothing alive (the namespace
        # goes when its last process does), but kill it: it is ours.
        r = _run(["ip", "netns", "pids", self.name], check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        _run(["ip", "link", "del", self.host_if], check=False)
        _run(["ip", "netns", "del", self.name], check=False)

    @classmethod
    def _close_all(cls):
        for ns in cls._open:
            ns.close()

    _cleanup_installed = False

    @classmethod
    def _install_cleanup(cls):
        if cls._cleanup_installed:
            return
        cls._cleanup_installed = True
        atexit.register(cls._close_all)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous = signal.getsignal(sig)

            def handler(signum, frame, previous=previous):
                # harness.main raises from its own handler and cleans up on the
                # way out (atexit); without one, clean up here and die.
                if callable(previous):
                    previous(signum, frame)
                    return
                cls._close_all()
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            signal.signal(sig, handler)
