# SPDX-License-Identifier: MIT
"""`tern route` against a private dnsmasq: the delivery route to a domain
as tern resolves it (RFC 5321 §5.1 MX order and implicit MX, RFC 7505 null
MX, NXDOMAIN, hosts with IPv6 and/or IPv4, unresolvable hosts, dead and
failing DNS servers, host and address limits, address literals).

Output of an OK route: "PREF NAME ADDR..." per host ("-" when a host has
no address, then "tempfail" when its lookup failed temporarily), after a
"# implicit MX" line for a domain without MX records. A failed route
prints "STATUS: error". Exit 0 OK, 1 permanent failure, 75 temporary.
"""

import subprocess
import time

import pytest

from dnslib import StubServer, RCODE_SERVFAIL, RCODE_REFUSED, free_udp_tcp_port
from ternlib import SANITIZER_MARKERS, sanitizer_env

EX_TEMPFAIL = 75


class Route:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed
        self.implicit = False
        self.hosts = []   # (pref, name, [addrs], tempfail)
        self.status = None
        for line in self.out.splitlines():
            if line.startswith("# implicit MX"):
                self.implicit = True
                continue
            if ":" in line.split(" ", 1)[0]:
                self.status, _, self.error = line.partition(": ")
                continue
            f = line.split()
            tempfail = f[-1] == "tempfail"
            if tempfail:
                f = f[:-1]
            addrs = [] if f[2:] == ["-"] else f[2:]
            self.hosts.append((int(f[0]), f[1], addrs, tempfail))

    def names(self):
        return [h[1] for h in self.hosts]

    def __str__(self):
        return "rc=%d stdout=%r stderr=%r" % (self.rc, self.out,
                                              self.err[-2000:])


def route(tern_binary, dns, domain, *args, timeout=60):
    """Runs `tern route`; dns is a server object or "HOST:PORT"."""
    server = dns if isinstance(dns, str) else dns.server
    t0 = time.monotonic()
    proc = subprocess.run([str(tern_binary), "route", domain, "--dns",
                           server] + list(args),
                          capture_output=True, text=True, timeout=timeout,
                          env=sanitizer_env())
    r = Route(proc, time.monotonic() - t0)
    for m in SANITIZER_MARKERS:
        assert m not in r.err, "sanitizer report: %s" % r
    return r


def test_mx_preference_order(tern_binary, dns_server):
    # listed out of order on purpose
    dns_server.mx("pref.test", "mx30.pref.test", 30)
    dns_server.mx("pref.test", "mx10.pref.test", 10)
    dns_server.mx("pref.test", "mx20.pref.test", 20)
    for n in (10, 20, 30):
        dns_server.host("mx%d.pref.test" % n, "127.0.0.%d" % n)
    dns_server.start()
    r = route(tern_binary, dns_server, "pref.test")
    assert r.rc == 0, r
    assert not r.implicit, r
    want = [(10, "mx10.pref.test", ["127.0.0.10"], False),
            (20, "mx20.pref.test", ["127.0.0.20"], False),
            (30, "mx30.pref.test", ["127.0.0.30"], False)]
    assert r.hosts == want, "got %s, want %s" % (r.hosts, want)


def test_equal_preferences_shuffled(tern_binary, dns_server):
    dns_server.mx("eq.test", "first.eq.test", 5)
    dns_server.mx("eq.test", "a.eq.test", 10)
    dns_server.mx("eq.test", "b.eq.test", 10)
    dns_server.mx("eq.test", "last.eq.test", 20)
    for h in ("first", "a", "b", "last"):
        dns_server.host("%s.eq.test" % h, "127.0.0.1")
    dns_server.start()
    seen = set()
    # bounded: a fair shuffle shows one order only 40 times in a row
    # with probability 2^-39
    for _ in range(40):
        r = route(tern_binary, dns_server, "eq.test")
        assert r.rc == 0, r
        names = r.names()
        assert names[0] == "first.eq.test" and names[3] == "last.eq.test", \
            "got %s, want first.eq.test first and last.eq.test last" % names
        assert sorted(names[1:3]) == ["a.eq.test", "b.eq.test"], names
        seen.add(tuple(names[1:3]))
        if len(seen) == 2:
            break
    assert len(seen) == 2, "got only the order %s in 40 runs" % seen


def test_implicit_mx(tern_binary, dns_server):
    dns_server.host("plain.test", "127.0.0.7", "::1")
    dns_server.start()
    r = route(tern_binary, dns_server, "plain.test")
    assert r.rc == 0, r
    assert r.implicit, r
    # RFC 5321 §5.1: the domain itself, IPv6 first
    want = [(0, "plain.test", ["::1", "127.0.0.7"], False)]
    assert r.hosts == want, "got %s, want %s" % (r.hosts, want)


def test_implicit_mx_through_cname(tern_binary, dns_server):
    dns_server.host("real.test", "127.0.0.8")
    dns_server.cname("alias.test", "real.test")
    dns_server.start()
    r = route(tern_binary, dns_server, "alias.test")
    assert r.rc == 0, r
    assert r.implicit and r.hosts == [(0, "alias.test", ["127.0.0.8"],
                                       False)], r


def test_mx_host_through_cname(tern_binary, dns_server):
    dns_server.mx("cn.test", "alias.cn.test", 10)
    dns_server.host("real.cn.test", "127.0.0.9")
    dns_server.cname("alias.cn.test", "real.cn.test")
    dns_server.start()
    r = route(tern_binary, dns_server, "cn.test")
    assert r.rc == 0, r
    assert r.hosts == [(10, "alias.cn.test", ["127.0.0.9"], False)], r


def test_null_mx(tern_binary, dns_server):
    dns_server.null_mx("nomail.test")
    dns_server.host("nomail.test", "127.0.0.1")  # must not be used
    dns_server.start()
    r = route(tern_binary, dns_server, "nomail.test")
    assert r.rc == 1, r
    assert r.status == "NULL_MX", r
    assert "nomail.test" in r.error, r


def test_null_mx_among_others_is_ignored(tern_binary, dns_server):
    # RFC 7505 §3: "." with other MX records is a misconfiguration; the
    # real MX host is used
    dns_server.null_mx("mixed.test")
    dns_server.mx("mixed.test", "mx.mixed.test", 10)
    dns_server.host("mx.mixed.test", "127.0.0.1")
    dns_server.start()
    r = route(tern_binary, dns_server, "mixed.test")
    assert r.rc == 0, r
    assert r.hosts == [(10, "mx.mixed.test", ["127.0.0.1"], False)], r


def test_nxdomain(tern_binary, dns_server):
    dns_server.host("other.test", "127.0.0.1")
    dns_server.start()
    r = route(tern_binary, dns_server, "nonexistent.test")
    assert r.rc == 1, r
    assert r.status == "NO_DOMAIN", r
    assert "name=nonexistent.test type=MX" in r.error, r


@pytest.mark.parametrize("addrs,want", [
    (("::1",), ["::1"]),
    (("127.0.0.1",), ["127.0.0.1"]),
    (("127.0.0.1", "::1"), ["::1", "127.0.0.1"]),
])
def test_mx_host_families(tern_binary, dns_server, addrs, want):
    dns_server.mx("fam.test", "mx.fam.test", 10)
    dns_server.host("mx.fam.test", *addrs)
    dns_server.start()
    r = route(tern_binary, dns_server, "fam.test")
    assert r.rc == 0, r
    assert r.hosts == [(10, "mx.fam.test", want, False)], \
        "got %s, want addresses %s" % (r.hosts, want)


def test_mx_host_does_not_resolve(tern_binary, dns_server):
    dns_server.mx("lame.test", "nowhere.lame.test", 10)
    dns_server.start()
    r = route(tern_binary, dns_server, "lame.test")
    assert r.rc == 1, r
    assert r.status == "NO_DOMAIN", r
    assert "have no address" in r.error, r


def test_one_mx_host_does_not_resolve(tern_binary, dns_server):
    dns_server.mx("half.test", "nowhere.half.test", 10)
    dns_server.mx("half.test", "mx.half.test", 20)
    dns_server.host("mx.half.test", "127.0.0.1")
    dns_server.start()
    r = route(tern_binary, dns_server, "half.test")
    assert r.rc == 0, r
    want = [(10, "nowhere.half.test", [], False),
            (20, "mx.half.test", ["127.0.0.1"], False)]
    assert r.hosts == want, "got %s, want %s" % (r.hosts, want)


def test_mx_host_lookup_times_out(tern_binary, dns_server):
    # one MX host behind a dead upstream: tempfail for it, and the
    # route still has the other host
    dns_server.mx("slow.test", "mx.dead.test", 10)
    dns_server.mx("slow.test", "mx.slow.test", 20)
    dns_server.host("mx.slow.test", "127.0.0.1")
    dns_server.unanswered("dead.test")
    dns_server.start()
    r = route(tern_binary, dns_server, "slow.test", "--timeout", "200")
    assert r.rc == 0, r
    want = [(10, "mx.dead.test", [], True),
            (20, "mx.slow.test", ["127.0.0.1"], False)]
    assert r.hosts == want, "got %s, want %s" % (r.hosts, want)


def test_only_mx_host_times_out(tern_binary, dns_server):
    dns_server.mx("slow.test", "mx.dead.test", 10)
    dns_server.unanswered("dead.test")
    dns_server.start()
    r = route(tern_binary, dns_server, "slow.test", "--timeout", "200")
    assert r.rc == EX_TEMPFAIL, r
    assert r.status == "TEMPFAIL", r
    assert "name=mx.dead.test" in r.error and "try again" in r.error, r


def test_dead_dns_server(tern_binary):
    # nobody listens on the port: refused at once or a timeout, both
    # temporary; the wait is bounded by timeout and tries
    port = free_udp_tcp_port()
    r = route(tern_binary, "127.0.0.1:%d" % port, "example.test",
              "--timeout", "500", timeout=30)
    assert r.rc == EX_TEMPFAIL, r
    assert r.status == "TEMPFAIL", r
    assert "name=example.test type=MX" in r.error, r
    assert r.elapsed < 10, "took %.1fs" % r.elapsed


@pytest.mark.parametrize("rcode", [RCODE_SERVFAIL, RCODE_REFUSED, None],
                         ids=["servfail", "refused", "silent"])
def test_failing_dns_server(tern_binary, rcode):
    stub = StubServer(rcode)
    try:
        r = route(tern_binary, stub, "example.test", "--timeout", "300",
                  timeout=30)
    finally:
        stub.stop()
    assert stub.queries >= 1, "the server got no query"
    assert r.rc == EX_TEMPFAIL, r
    assert r.status == "TEMPFAIL", r
    # 300 ms, then 600 ms for the second try
    assert r.elapsed < 10, "took %.1fs" % r.elapsed


def test_max_hosts(tern_binary, dns_server):
    for n in (50, 10, 40, 20, 30):
        dns_server.mx("many.test", "mx%d.many.test" % n, n)
        dns_server.host("mx%d.many.test" % n, "127.0.0.%d" % n)
    dns_server.start()
    r = route(tern_binary, dns_server, "many.test", "--max-hosts", "2")
    assert r.rc == 0, r
    assert r.names() == ["mx10.many.test", "mx20.many.test"], r
    r = route(tern_binary, dns_server, "many.test", "--max-hosts", "5")
    assert [h[0] for h in r.hosts] == [10, 20, 30, 40, 50], r


def test_max_addrs(tern_binary, dns_server):
    dns_server.mx("addrs.test", "mx.addrs.test", 10)
    for a in ("127.0.0.5", "127.0.0.6", "::5", "::6"):
        dns_server.host("mx.addrs.test", a)
    dns_server.start()
    r = route(tern_binary, dns_server, "addrs.test")
    assert r.rc == 0, r
    assert len(r.hosts) == 1 and sorted(r.hosts[0][2][:2]) == ["::5", "::6"] \
        and sorted(r.hosts[0][2][2:]) == ["127.0.0.5", "127.0.0.6"], r
    # IPv6 first, so a limit of 3 keeps both IPv6 addresses
    r = route(tern_binary, dns_server, "addrs.test", "--max-addrs", "3")
    addrs = r.hosts[0][2]
    assert len(addrs) == 3 and sorted(addrs[:2]) == ["::5", "::6"] \
        and addrs[2] in ("127.0.0.5", "127.0.0.6"), r


@pytest.mark.parametrize("name,want", [
    ("[127.0.0.9]", "127.0.0.9"),
    ("[IPv6:::1]", "::1"),
    ("127.0.0.9", "127.0.0.9"),
])
def test_address_literal(tern_binary, name, want):
    # no DNS at all: the server address is never used
    r = route(tern_binary, "127.0.0.1:%d" % free_udp_tcp_port(), name,
              "--no-mx")
    assert r.rc == 0, r
    assert len(r.hosts) == 1 and r.hosts[0][2] == [want], r


def test_no_mx_host_name(tern_binary, dns_server):
    # a smarthost: its own addresses, its MX records ignored
    dns_server.mx("relay.test", "elsewhere.test", 10)
    dns_server.host("elsewhere.test", "127.0.0.3")
    dns_server.host("relay.test", "127.0.0.4")
    dns_server.start()
    for name in ("relay.test", "[relay.test]"):
        r = route(tern_binary, dns_server, name, "--no-mx")
        assert r.rc == 0, r
        assert not r.implicit and r.hosts == [(0, "relay.test",
                                               ["127.0.0.4"], False)], r
    r = route(tern_binary, dns_server, "missing.test", "--no-mx")
    assert r.rc == 1 and r.status == "NO_DOMAIN", r


def test_usage(tern_binary):
    for args in ([], ["--max-hosts", "0", "x.test"], ["a.test", "b.test"]):
        proc = subprocess.run([str(tern_binary), "route"] + args,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, (args, proc.stderr)


def test_config_is_checked(tern_binary, tmp_path):
    good = tmp_path / "good.conf"
    good.write_text(subprocess.run([str(tern_binary), "dump-config"],
                                   capture_output=True, text=True,
                                   timeout=30, check=True).stdout)
    bad = tmp_path / "bad.conf"
    bad.write_text("no_such_key = 1\n")
    dead = "127.0.0.1:%d" % free_udp_tcp_port()
    r = route(tern_binary, dead, "[127.0.0.1]", "--config", str(good))
    assert r.rc == 0 and r.hosts == [(0, "[127.0.0.1]", ["127.0.0.1"],
                                      False)], r
    r = route(tern_binary, dead, "[127.0.0.1]", "--config", str(bad))
    assert r.rc == 1 and "no_such_key" in r.err, r
    # a server list c-ares cannot read is a usage error
    r = route(tern_binary, "not-an-address", "example.test")
    assert r.rc == 2 and "bad DNS server list" in r.err, r
