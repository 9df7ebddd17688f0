# SPDX-License-Identifier: MIT
"""Fixtures for the end-to-end suite.

`tern_server(**config)` writes a config (hostname mx.test, domains
example.test and localhost, users alice bob demo, alias team: alice, bob,
state_dir in tmp_path, a free 127.0.0.1 port), starts $TERN_BIN (default
build/debug/tern) and waits for the 220 greeting. At teardown every server
still running gets SIGTERM; then each run is checked: exit status 0 after
SIGTERM and no sanitizer report on stderr.

`smtp_sink(...)` and `postfix_peer(role, ...)` start peers for relay
tests (sinklib.py, smtpsink.py, postfixlib.py); see the block at the end.
"""

import os

import pytest

from ternlib import TernServer, tern_bin


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session")
def tern_binary():
    b = tern_bin()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail("tern binary not found at %s (set TERN_BIN or "
                    "`make build/debug/tern`)" % b)
    return b


@pytest.fixture
def tern_server(tmp_path, tern_binary):
    """Factory: tern_server(start=True, extra=[...], env={...}, **config)
    -> TernServer.

    A config value of None drops the key; a list repeats it."""
    servers = []

    def make(start=True, extra=(), env=None, **config):
        srv = TernServer(tmp_path / ("srv%d" % len(servers)), config, extra,
                         binary=tern_binary, env=env)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    probs = []
    for srv in servers:
        if srv.proc is not None:
            srv.stop()
        probs.extend(srv.problems())
    if probs:
        pytest.fail("server problems:\n" + "\n".join(probs), pytrace=False)


@pytest.fixture
def srv(tern_server):
    """A server with the standard test config."""
    return tern_server()


# ---- DNS: a private dnsmasq for route and relay tests ----------------------
# `dns_server` is a dnslib.DnsServer on 127.0.0.1 and a free port, not yet
# started: add records, then start(). It is stopped (by its PID) at
# teardown, even when the test failed.

from dnslib import DnsServer  # noqa: E402


@pytest.fixture
def dns_server(tmp_path):
    if not os.access("/usr/sbin/dnsmasq", os.X_OK):
        pytest.fail("/usr/sbin/dnsmasq not found (Debian package "
                    "dnsmasq-base)")
    dns = DnsServer(tmp_path / "dns")
    yield dns
    dns.stop()


@pytest.fixture
def relay_dns(dns_server):
    """Factory: relay_dns(records) starts dns_server with records like
    {"mx": [(domain, host, pref)], "a": [(host, addr)], "null_mx":
    [domain]} and returns it (.addr is "127.0.0.1:PORT")."""
    def make(records):
        for domain, host, pref in records.get("mx", []):
            dns_server.mx(domain, host, pref)
        names = {}
        for name, addr in records.get("a", []):
            names.setdefault(name, []).append(addr)
        for name, addrs in names.items():
            dns_server.host(name, *addrs)
        for domain in records.get("null_mx", []):
            dns_server.null_mx(domain)
        dns_server.start()
        dns_server.addr = dns_server.server
        return dns_server
    return make


# ---------------------------------------------------------------------------
# Relay peers: SMTP sinks (smtpsink.py) and private Postfix instances
# (postfixlib.py) for tern to deliver to or receive from. Both stop only
# their own processes; teardown fails the test if a peer misbehaved.

from sinklib import Sink  # noqa: E402
from postfixlib import PostfixPeer, postfix_missing  # noqa: E402


@pytest.fixture
def smtp_sink(tmp_path):
    """Factory: smtp_sink(addr="127.0.0.2", port=None, script=None,
    mode="normal", extensions=None, start=True, **kw) -> Sink.

    port None picks a free one; script is the reply script (see
    smtpsink.py); extensions None advertises the default set, a list such
    as ["PIPELINING", "SIZE 1000"] exactly those, [] none."""
    sinks = []

    def make(addr="127.0.0.2", port=None, script=None, mode="normal",
             extensions=None, start=True, **kw):
        s = Sink(tmp_path / ("sink%d" % len(sinks)), addr=addr, port=port,
                 script=script, mode=mode, extensions=extensions, **kw)
        sinks.append(s)
        if start:
            s.start()
        return s

    yield make

    probs = []
    for s in sinks:
        s.stop()
        probs.extend(s.problems())
    if probs:
        pytest.fail("sink problems:\n" + "\n".join(probs), pytrace=False)


@pytest.fixture
def postfix_peer(tmp_path):
    """Factory: postfix_peer(role, port=None, addr="127.0.0.1",
    domain="postfix.test", users=(...), relay_to=None, start=True, **kw)
    -> PostfixPeer. role "mx" or "relay-into" (see postfixlib.py)."""
    why = postfix_missing()
    if why:
        pytest.fail("postfix_peer: " + why, pytrace=False)
    peers = []

    def make(role, port=None, addr="127.0.0.1", start=True, **kw):
        from sinklib import free_port_on
        p = PostfixPeer(tmp_path / ("postfix-%d" % len(peers)), role,
                        port or free_port_on(addr), addr=addr, **kw)
        peers.append(p)
        if start:
            p.start()
        return p

    yield make

    probs = []
    for p in peers:
        probs.extend(p.stop())
        p.cleanup()
    if probs:
        pytest.fail("postfix problems:\n" + "\n".join(probs), pytrace=False)


# ---------------------------------------------------------------------------
# Submission: a test PKI (tlslib.TestCA, made once per session with the
# openssl CLI) and servers with mx, submission and submissions listeners,
# a certificate from it and accounts added with `tern user add`.

from tlslib import PASSWORDS, ROLES, SubServer, TestCA  # noqa: E402


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    if not os.access("/usr/bin/openssl", os.X_OK):
        pytest.fail("/usr/bin/openssl not found (Debian package openssl)")
    return TestCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def sub_server(tmp_path, tern_binary, test_ca):
    """Factory: sub_server(accounts=None, roles=("mx", "submission",
    "submissions"), start=True, extra=(), env=None, cert=None, **config)
    -> tlslib.SubServer.

    accounts: {address: password}; None adds alice@example.org and
    bob@example.org (tlslib.PASSWORDS). Config as for tern_server: None
    drops a key, a list repeats it; the defaults are domain example.org,
    user demo, no alias, tls_cert/tls_key (copies in the server's
    directory: srv.cert_path, srv.key_path) and auth_delay_max 0.
    Teardown as tern_server's, plus sanitizer reports of `tern user`."""
    servers = []

    def make(accounts=None, roles=ROLES, start=True, extra=(), env=None,
             cert=None, **config):
        srv = SubServer(tmp_path / ("sub%d" % len(servers)), test_ca,
                        roles=tuple(roles), config=config, extra=extra,
                        binary=tern_binary, env=env, cert=cert)
        servers.append(srv)
        for address, password in (PASSWORDS if accounts is None
                                  else accounts).items():
            srv.add_account(address, password)
        if start:
            srv.start()
        return srv

    yield make

    probs = []
    for srv in servers:
        if srv.proc is not None:
            srv.stop()
        probs.extend(srv.problems())
    if probs:
        pytest.fail("server problems:\n" + "\n".join(probs), pytrace=False)
