# SPDX-License-Identifier: MIT
"""One process holds thousands of concurrent sessions: 2,000 connections
are greeted and stay open, and the server still takes mail meanwhile."""

import resource
import selectors
import socket
import time

import pytest

from ternlib import SmtpConn, check_delivered, send_message, wait_files

N = 2000


@pytest.fixture
def fd_room():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = N + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip("RLIMIT_NOFILE hard limit %d is below %d" % (hard, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_thousands_of_idle_sessions(tern_server, fd_room):
    srv = tern_server()
    socks = []
    sel = selectors.DefaultSelector()
    try:
        for _ in range(N):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks.append(s)
            sel.register(s, selectors.EVENT_READ)
        greeted = set()
        deadline = time.monotonic() + 60
        while len(greeted) < N and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(512)
                assert data.startswith(b"220 "), data
                greeted.add(key.fileobj.fileno())
                sel.unregister(key.fileobj)
        assert len(greeted) == N, "only %d of %d sessions greeted" % (len(greeted), N)

        # with every one of them open, a new session still delivers
        body = b"Subject: busy\r\n\r\nwhile 2000 sessions wait\r\n"
        with SmtpConn(srv.port) as c:
            send_message(c, "a@example.org", ["bob@example.test"], body)
        files = wait_files(srv.maildir("bob"), 1)
        assert len(files) == 1
        check_delivered(files[0].read_bytes(), "a@example.org", body,
                        rcpt="bob@example.test")
        # and the idle ones are still being served
        for s in socks[:: N // 20]:
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(b"NOOP\r\n")
            assert s.recv(512).startswith(b"250 2.0.0"), "NOOP on an idle session"
    finally:
        sel.close()
        for s in socks:
            s.close()
