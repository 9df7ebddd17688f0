# SPDX-License-Identifier: MIT
"""Malformed input: every case gets its exact reply (or 421 and a close),
and afterwards a new connection still gets 220 and NOOP 250 from the same
process. The fixture checks the sanitizer-clean exit at the end."""

import random
import socket
import struct
import threading
import time

import pytest

from ternlib import (Closed, SmtpConn, capped_quarantine_env, maildir_files,
                     vm_hwm_kib, wait_files)


def assert_healthy(srv):
    srv.assert_alive()
    with SmtpConn(srv.port) as c:
        assert c.greeting.starts("220 "), str(c.greeting)
        c.expect("NOOP", "250 2.0.0")
        c.expect("QUIT", "221 2.0.0")


def drain_replies(c, limit=100000, timeout=15.0, until=None):
    """Reads replies until EOF, a reply starting with `until`, or 2 s of
    nothing; returns (replies, closed)."""
    replies = []
    deadline = time.monotonic() + timeout
    while len(replies) < limit and time.monotonic() < deadline:
        try:
            replies.append(c.read_reply(timeout=2.0))
            if until and replies[-1].starts(until):
                return replies, False
        except Closed:
            return replies, True
        except socket.timeout:
            return replies, False
        except OSError:
            return replies, True
    return replies, c.eof


def send_quietly(c, data):
    """Sends, tolerating a server that already closed."""
    try:
        c.send(data)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# command lines with bare LF / CR / NUL: one 500 5.5.2, nothing executed

BAD_LINES = [
    b"NOOP\nRSET\r\n",
    b"NOOP\nQUIT\r\n",
    b"\nQUIT\r\n",
    b"QUIT\n\r\n",
    b"NO\rOP\r\n",
    b"RSET\rQUIT\r\n",
    b"NOOP\r\r\n",
    b"NOOP\x00\r\n",
    b"\x00QUIT\r\n",
    b"QU\x00IT\r\n",
    b"\x00\r\n",
    b"MAIL FROM:<a@example.org>\nRCPT TO:<alice@example.test>\r\n",
    b"MAIL FROM:<a@exa\x00mple.org>\r\n",
]


@pytest.mark.parametrize("line", BAD_LINES, ids=[repr(l)[2:-1][:40] for l in BAD_LINES])
def test_bad_bytes_in_command(srv, line):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(line)
        c.expect(None, "500 5.5.2")
        c.expect_nothing_more(0.3)
        c.expect("HELP", "214")
        # no MAIL ran: RCPT is out of sequence
        c.expect("RCPT TO:<alice@example.test>", "503 5.5.1")
        c.expect("NOOP", "250 2.0.0")
    assert_healthy(srv)


# ---------------------------------------------------------------------------
# overlong lines: exactly one 500 5.5.2, the tail never runs

TAILS = [b"RSET\r\n", b"QUIT\r\n", b"MAIL FROM:<a@example.org>\r\n", b"\r\n"]


@pytest.mark.parametrize("garbage", [600, 4096, 100000])
@pytest.mark.parametrize("tail_", TAILS, ids=["RSET", "QUIT", "MAIL", "CRLF"])
def test_overlong_line_tail_not_executed(srv, garbage, tail_):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        pad = (b"x" * 37 + b" ") * (garbage // 38 + 1)
        c.send(pad[:garbage] + tail_)
        c.expect(None, "500 5.5.2", timeout=20)
        c.expect_nothing_more(0.3)
        c.expect("HELP", "214")
        c.expect("RCPT TO:<alice@example.test>", "503 5.5.1")
        c.expect("NOOP", "250 2.0.0")
    assert_healthy(srv)


def test_overlong_line_in_small_writes(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        for _ in range(100):
            c.send(b"y" * 97)
        c.send(b"QUIT\r\n")
        c.expect(None, "500 5.5.2")
        c.expect_nothing_more(0.3)
        c.expect("NOOP", "250 2.0.0")
    assert_healthy(srv)


def test_huge_parameter_list(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.org>" + b" X=Y" * 5000 + b"\r\n")
        c.expect(None, "500 5.5.2")
        c.expect_nothing_more(0.3)
        # within 512 octets: many unknown parameters
        line = b"MAIL FROM:<a@example.org>" + b" FOO=1" * 80
        assert len(line) + 2 <= 512
        c.send(line + b"\r\n")
        c.expect(None, "555 5.5.4")
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.send(b"RCPT TO:<alice@example.test>" + b" NOTIFY=NEVER" * 40 + b"\r\n")
        c.expect(None, "500 5.5.2")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("RSET", "250 2.0.0")
    assert_healthy(srv)


# ---------------------------------------------------------------------------
# random bytes

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_binary(srv, seed):
    """64 KiB of random bytes: only 500 5.5.2 replies (perhaps a final
    421 4.7.0 and a close); if the session lives, CRLF NOOP gets 250."""
    rnd = random.Random(seed)
    junk = bytes(rnd.getrandbits(8) for _ in range(65536))
    with SmtpConn(srv.port) as c:
        ok = send_quietly(c, junk) and send_quietly(c, b"\r\nNOOP\r\n")
        replies, closed = drain_replies(c, timeout=20, until="250")
        codes = [r.first[:9] for r in replies]
        if replies and replies[-1].starts("250 2.0.0"):
            bad = [r for r in replies[:-1] if not r.starts("500 5.5.2")]
            assert not bad, c.fail("unexpected replies to garbage: %s" % bad)
        else:
            assert closed, c.fail("no NOOP reply and no close: %s" % codes)
            bad = [r for r in replies if not (r.starts("500 5.5.2") or r.starts("421 4.7.0"))]
            assert not bad, c.fail("unexpected replies to garbage: %s" % bad)
            assert not ok or not replies or replies[-1].starts("421 4.7.0"), \
                c.fail("closed without 421: %s" % codes)
    assert_healthy(srv)


@pytest.mark.parametrize("seed", [11, 12])
def test_random_short_lines_hit_errors_max(srv, seed):
    """Many short garbage lines (no command can form from this alphabet):
    each is refused with 500 5.5.2 until errors_max, then 421 and close."""
    rnd = random.Random(seed)
    alphabet = b"0123456789#$%&*+ \r\n\x00\t"
    junk = bytes(rnd.choice(alphabet) for _ in range(20000)) + b"\r\n" * 30
    with SmtpConn(srv.port) as c:
        send_quietly(c, junk)
        replies, closed = drain_replies(c, timeout=20)
        assert closed, c.fail("session still open after %d errors" % len(replies))
        bad = [r for r in replies if not (r.starts("500 5.5.2") or r.starts("421 4.7.0"))]
        assert not bad, c.fail("unexpected replies: %s" % bad[:5])
        assert sum(r.starts("421") for r in replies) <= 1
        assert all(r.starts("500") for r in replies[:-1])
    assert_healthy(srv)


# ---------------------------------------------------------------------------
# volume

def test_10k_pipelined_noops(srv):
    n = 10000
    with SmtpConn(srv.port, timeout=30) as c:
        c.ehlo()
        payload = b"NOOP\r\n" * n
        err = []

        def writer():
            try:
                c.sock.sendall(payload)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        got = 0
        deadline = time.monotonic() + 60
        closed = False
        while got < n and time.monotonic() < deadline:
            try:
                r = c.read_reply(timeout=20)
            except Closed:
                closed = True
                break
            if r.starts("421 4.7.0"):
                closed = True
                break
            if not r.starts("250 2.0.0"):
                c.fail("reply %d to NOOP: %r" % (got + 1, r.first))
            got += 1
        t.join(30)
        if not closed:
            assert got == n, "only %d of %d NOOP replies within 60s" % (got, n)
            c.expect("QUIT", "221 2.0.0")
        else:
            c.wait_closed(10)
    assert_healthy(srv)


def test_client_not_reading_replies(tern_server):
    """A client that pipelines NOOPs and never reads a reply: the server
    must stop reading (backpressure) or drop the client, not queue the
    replies in memory without bound. ASan's quarantine is capped for this
    server so that freed buffers do not count."""
    srv = tern_server(env=capped_quarantine_env(1))
    pid = srv.proc.pid
    before = vm_hwm_kib(pid)
    total = 20 << 20                 # 3.5M NOOPs, about 50 MiB of replies
    chunk = b"NOOP\r\n" * 10000
    sent = 0
    with SmtpConn(srv.port) as c:
        c.sock.settimeout(3)
        t0 = time.monotonic()
        try:
            while sent < total and time.monotonic() - t0 < 30:
                c.sock.sendall(chunk)
                sent += len(chunk)
        except (socket.timeout, OSError):
            pass                     # blocked: the server stopped reading
        time.sleep(0.5)
        grown_mib = (vm_hwm_kib(pid) - before) >> 10
        replies_pending = sent // 6 * len(b"250 2.0.0 Ok\r\n")
        assert grown_mib < 16, (
            "server grew by %d MiB holding replies for a client that does not "
            "read (%d MiB of NOOPs accepted, about %d MiB of replies queued)"
            % (grown_mib, sent >> 20, replies_pending >> 20))
    assert_healthy(srv)


def test_commands_after_quit_not_run(srv):
    with SmtpConn(srv.port) as c:
        c.send(b"QUIT\r\nNOOP\r\nNOOP\r\nEHLO x\r\n")
        c.expect(None, "221 2.0.0")
        rest = c.wait_closed(10)
        assert rest == b"", c.fail("replies after 221: %r" % rest)
    assert_healthy(srv)


def test_many_connections(srv):
    conns = []
    try:
        for _ in range(30):
            c = SmtpConn(srv.port, greet=False)
            conns.append(c)
        for c in conns:
            r = c.read_reply(10)
            assert r.starts("220 ") or r.starts("421 4."), str(r)
    finally:
        for c in conns:
            c.close()
    assert_healthy(srv)


def test_connect_and_close_without_reading(srv):
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.close()
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n")
        s.close()
    assert_healthy(srv)


# ---------------------------------------------------------------------------
# half-open and aborted connections

def test_half_open_after_commands(srv):
    """The client shuts down its write side: the server answers what it
    got and closes."""
    with SmtpConn(srv.port) as c:
        c.send(b"EHLO x.example.org\r\nMAIL FROM:<a@example.org>\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        c.expect(None, "250")
        c.expect(None, "250")
        rest = c.wait_closed(10)
        assert not rest or rest.startswith(b"421"), c.fail("after EOF: %r" % rest)
    assert_healthy(srv)


@pytest.mark.parametrize("partial", [b"NOO", b"EHLO x\r\nMAIL FROM:<a@exam",
                                     b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
                                     b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: cut"])
def test_half_open_partial(srv, partial):
    with SmtpConn(srv.port) as c:
        c.send(partial)
        c.sock.shutdown(socket.SHUT_WR)
        c.wait_closed(10)
    wait_files(srv.maildir("alice"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("alice")) == []
    assert_healthy(srv)


def test_reset_mid_data(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: cut\r\n\r\n" + b"data line\r\n" * 1000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_files(srv.maildir("alice"), 1, timeout=1.5)
    assert maildir_files(srv.maildir("alice")) == []
    assert_healthy(srv)


def test_idle_connection_does_not_block_others(srv):
    idle = SmtpConn(srv.port)
    idle.send(b"EHLO idle\r\nMAIL FROM:<a@exa")   # partial line, then silence
    try:
        with SmtpConn(srv.port) as c:
            c.ehlo()
            c.expect("MAIL FROM:<a@example.org>", "250")
            c.expect("RCPT TO:<bob@example.test>", "250")
            c.expect("DATA", "354")
            c.send(b"Subject: while idle\r\n\r\nx\r\n.\r\n")
            c.expect(None, "250 2.0.0")
        assert len(wait_files(srv.maildir("bob"), 1)) == 1
    finally:
        idle.close()
    assert_healthy(srv)


def test_long_text_line_in_data(srv):
    """A 100 KB text line inside DATA (beyond RFC 5321's 1000): the server
    answers with one reply (accept or refuse) and stays in sync."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: long\r\n\r\n" + b"z" * 100000 + b"\r\n.\r\n")
        r = c.read_reply(20)
        assert r.code in (250, 500, 550, 552, 554), c.fail("reply %r" % r.first)
        c.expect_nothing_more(0.3)
        c.expect("NOOP", "250 2.0.0")
    assert_healthy(srv)
