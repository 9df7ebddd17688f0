# SPDX-License-Identifier: MIT
"""Fixtures for the end-to-end suite.

`tern_server(**config)` writes a config (hostname mx.test, domains
example.test and localhost, users alice bob demo, alias team: alice, bob,
state_dir in tmp_path, a free 127.0.0.1 port), starts $TERN_BIN (default
build/debug/tern) and waits for the 220 greeting. At teardown every server
still running gets SIGTERM; then each run is checked: exit status 0 after
SIGTERM and no sanitizer report on stderr.
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
