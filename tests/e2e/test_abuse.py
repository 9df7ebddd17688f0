# SPDX-License-Identifier: MIT
"""Abusive clients: the per-session limits (junk_max, errors_max with
refused recipients), the clocks (timeout_command against a client that
trickles a command, timeout_data with data_rate_min), the per-address
limits (client_sessions_max, client_rate_max, relay_from exempt), and bad
input around TLS and AUTH (garbage records, stalled and truncated
handshakes, malformed SASL in a loop). The server answers or closes, never
crashes (the fixture checks exit status and sanitizer output), and other
sessions keep working meanwhile.

Tests that need to be a different client connect from other 127.x
addresses (tlslib.open_conn(source=...)).
"""

import base64
import os
import random
import socket
import ssl
import struct
import time

import pytest

from ternlib import Closed, maildir_files
from tlslib import (ALICE, BOB, PASSWORDS, ScramSha256, b64, client_hello,
                    make_message, open_conn, plain_blob, send_mail,
                    wait_subject)

STRANGER = "x@elsewhere.test"


def still_serves(srv, role="mx"):
    """A new session on role works (EHLO, NOOP)."""
    srv.assert_alive()
    if role == "submissions":
        c, _ = srv.implicit()
    else:
        c = srv.plain(role)
        c.ehlo()
    with c:
        c.expect("NOOP", "250")


def replies_within(c, wait=1.0):
    data = c.pending(wait)
    return [l.decode("utf-8", "replace") for l in data.split(b"\r\n") if l]


# ---------------------------------------------------------------------------
# junk_max

JUNK = ["NOOP", "RSET", "HELP", "VRFY alice", "NOOP x"]


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_junk_max(sub_server, limit):
    srv = sub_server(junk_max=limit)
    other = srv.plain("mx")
    with srv.plain("mx") as c, other:
        c.ehlo()
        for i in range(limit):              # limit-1 and limit: answered
            line = JUNK[i % len(JUNK)]
            r = c.cmd(line)
            if r.code >= 400:
                c.fail("junk command %d of junk_max=%d (%s): %r"
                       % (i + 1, limit, line, str(r)))
        c.send_line("NOOP")                  # limit+1
        r = c.read_reply()
        if not r.starts("421 4.7.0"):
            c.fail("junk command %d of junk_max=%d: want 421 4.7.0, got %r"
                   % (limit + 1, limit, str(r)))
        c.wait_closed(5)
        other.ehlo()
        other.expect("NOOP", "250")


def test_junk_max_counts_per_message(sub_server):
    """junk_max counts junk commands per message: a delivered message
    starts the count again."""
    srv = sub_server(junk_max=3)
    with srv.plain("mx") as c:
        c.ehlo()
        for _ in range(3):
            c.expect("NOOP", "250")
        send_mail(c, STRANGER, [ALICE], make_message(STRANGER, ALICE, "junk"))
        for _ in range(3):
            c.expect("NOOP", "250")
        c.expect("NOOP", "421 4.7.0")
        c.wait_closed(5)


# ---------------------------------------------------------------------------
# errors_max with refused recipients

@pytest.mark.parametrize("limit", [2, 5])
def test_errors_max_refused_recipients(sub_server, limit):
    srv = sub_server(errors_max=limit)
    with srv.plain("mx") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % STRANGER, "250")
        for i in range(1, limit):            # up to limit-1: session goes on
            c.expect("RCPT TO:<nosuch%d@example.org>" % i, "550 5.1.1")
        c.expect("RCPT TO:<%s>" % ALICE, "250")
        c.send_line("RCPT TO:<nosuch%d@example.org>" % limit)   # the limit
        r = c.read_reply()
        if not r.starts("550 5.1.1"):
            c.fail("error %d: want 550 5.1.1, got %r" % (limit, str(r)))
        try:
            r = c.read_reply(5)
        except Closed:
            c.fail("closed without 421 after error %d of errors_max=%d"
                   % (limit, limit))
        if not r.starts("421 4.7.0"):
            c.fail("after error %d of errors_max=%d: want 421 4.7.0, got %r"
                   % (limit, limit, str(r)))
        c.wait_closed(5)
    time.sleep(0.5)
    assert maildir_files(srv.account_maildir(ALICE)) == []


def test_errors_below_max_deliver(sub_server):
    srv = sub_server(errors_max=4)
    with srv.plain("mx") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % STRANGER, "250")
        for i in range(3):
            c.expect("RCPT TO:<nosuch%d@example.org>" % i, "550 5.1.1")
        c.expect("RCPT TO:<%s>" % ALICE, "250")
        c.expect("DATA", "354")
        c.send(make_message(STRANGER, ALICE, "three errors") + b".\r\n")
        c.expect(None, "250")
    assert len(wait_subject(srv.account_maildir(ALICE), "three errors")) == 1


# ---------------------------------------------------------------------------
# timeout_command against a trickling client

def test_timeout_command_trickle(sub_server):
    """timeout_command=2 bounds a whole command: a client sending a NOOP
    line one byte a second is cut off with 421 4.4.2 within about 4 s,
    although it never stops sending. Another session, active meanwhile,
    is served throughout."""
    srv = sub_server(timeout_command=2)
    other = srv.plain("mx")
    c = srv.plain("mx")
    with c, other:
        c.ehlo()
        other.ehlo()
        line = b"NOOP " + b"z" * 30 + b"\r\n"
        t0 = time.monotonic()
        got, cut = b"", None
        for i in range(len(line)):
            try:
                c.sock.sendall(line[i:i + 1])
            except OSError:
                break
            got += c.pending(0.5)
            other.send_line("NOOP")
            other.read_reply(2)
            got += c.pending(0.5)
            if b"421" in got and cut is None:
                cut = time.monotonic() - t0
            if c.eof:
                break
        if cut is None:
            c.fail("no 421 while trickling a command for %.0fs (got %r)"
                   % (time.monotonic() - t0, got))
        assert got.startswith(b"421 4.4.2"), got
        assert cut <= 5.0, "cut off after %.1fs, want about 4 s" % cut
        c.wait_closed(5)
        other.expect("NOOP", "250")


def test_timeout_command_idle(sub_server):
    srv = sub_server(timeout_command=2)
    with srv.plain("mx") as c:
        c.ehlo()
        t0 = time.monotonic()
        got = c.wait_closed(10)
        took = time.monotonic() - t0
        assert got.startswith(b"421 4.4.2"), got
        assert 1.5 <= took <= 5.0, "idle session closed after %.1fs" % took


# ---------------------------------------------------------------------------
# timeout_data and data_rate_min

def test_data_trickle_cut_off(sub_server):
    """timeout_data=2, data_rate_min=1000: a message trickled at ~20
    octets/s is cut off with 421 4.4.2 within a few seconds and nothing is
    delivered; another session sends 200 KB at full speed meanwhile."""
    srv = sub_server(timeout_data=2, data_rate_min=1000)
    with srv.plain("mx") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % STRANGER, "250")
        c.expect("RCPT TO:<%s>" % ALICE, "250")
        c.expect("DATA", "354")
        t0 = time.monotonic()
        got, sent = b"", 0
        body = make_message(STRANGER, ALICE, "trickled") + b"y" * 400
        while time.monotonic() - t0 < 10 and not c.eof:
            try:
                c.sock.sendall(body[sent:sent + 10])
            except OSError:
                break
            sent += 10
            got += c.pending(0.5)
            if b"421" in got:
                break
        took = time.monotonic() - t0
        got += c.pending(0.5)
        if b"421" not in got:
            c.fail("no 421 after %.1fs of DATA at 20 octets/s (%d octets)"
                   % (took, sent))
        assert got.startswith(b"421 4.4.2"), got
        assert took <= 6.0, "cut off after %.1fs, want a few seconds" % took
        # the fast one, in another session
        with srv.plain("mx") as f:
            f.ehlo()
            big = make_message(STRANGER, BOB, "fast 200K",
                               body=("b" * 98 + "\r\n") * 2048)
            assert len(big) > 200000
            send_mail(f, STRANGER, [BOB], big)
    assert len(wait_subject(srv.account_maildir(BOB), "fast 200K")) == 1
    time.sleep(0.5)
    assert wait_subject(srv.account_maildir(ALICE), "trickled", 0.5) == []


def test_data_slow_but_above_rate(sub_server):
    """200 KB sent over ~3 s (about 70 KB/s, far above data_rate_min) is
    accepted although the transfer lasts longer than timeout_data."""
    srv = sub_server(timeout_data=2, data_rate_min=1000)
    big = make_message(STRANGER, ALICE, "steady", body=("s" * 98 + "\r\n") * 2048)
    with srv.plain("mx") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % STRANGER, "250")
        c.expect("RCPT TO:<%s>" % ALICE, "250")
        c.expect("DATA", "354")
        step = len(big) // 10 + 1
        for i in range(0, len(big), step):
            c.sock.sendall(big[i:i + step])
            time.sleep(0.3)
        c.send(b".\r\n")
        c.expect(None, "250", timeout=30)
    assert len(wait_subject(srv.account_maildir(ALICE), "steady")) == 1


# ---------------------------------------------------------------------------
# client_sessions_max and client_rate_max

def greeting_of(port, source):
    """The first reply of a new session from source (None if it closed
    without one) and the connection."""
    c = open_conn(port, source=source, greet=False, timeout=10)
    try:
        return c.read_reply(10), c
    except (Closed, socket.timeout):
        return None, c


@pytest.mark.parametrize("limit", [1, 3])
def test_client_sessions_max(sub_server, limit):
    srv = sub_server(client_sessions_max=limit)
    port = srv.ports["mx"]
    held = []
    try:
        for i in range(limit):
            r, c = greeting_of(port, "127.0.0.3")
            held.append(c)
            assert r is not None and r.starts("220 "), \
                "session %d of %d from 127.0.0.3: %s" % (i + 1, limit, r)
        r, c = greeting_of(port, "127.0.0.3")
        with c:
            if r is None or not r.starts("421 4.7.0"):
                c.fail("session %d from one address (limit %d): want 421 "
                       "4.7.0, got %s" % (limit + 1, limit, r))
            c.wait_closed(5)
        # another address is not affected; the held sessions still work
        r, c = greeting_of(port, "127.0.0.4")
        with c:
            assert r is not None and r.starts("220 "), r
        for h in held:
            h.expect("NOOP", "250")
        # one slot frees up: a new session is greeted again
        held[0].expect("QUIT", "221")
        held[0].wait_closed(5)
        held[0].close()
        deadline = time.monotonic() + 5
        while True:
            r, c = greeting_of(port, "127.0.0.3")
            if (r is not None and r.starts("220 ")) or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.2)
        held[0] = c
        assert r is not None and r.starts("220 "), "freed slot not reused: %s" % r
    finally:
        for h in held:
            h.close()


def test_client_sessions_max_exempts_relay_from(sub_server):
    srv = sub_server(client_sessions_max=2, relay_from="127.0.0.3/32")
    port = srv.ports["mx"]
    held = []
    try:
        for i in range(4):
            r, c = greeting_of(port, "127.0.0.3")
            held.append(c)
            assert r is not None and r.starts("220 "), \
                "relay_from client, session %d: %s" % (i + 1, r)
        for i in range(2):
            r, c = greeting_of(port, "127.0.0.4")
            held.append(c)
            assert r is not None and r.starts("220 "), r
        r, c = greeting_of(port, "127.0.0.4")
        held.append(c)
        assert r is not None and r.starts("421 4.7.0"), \
            "third session from a stranger: %s" % r
    finally:
        for h in held:
            h.close()


@pytest.mark.parametrize("limit", [2, 5])
def test_client_rate_max(sub_server, limit):
    srv = sub_server(client_rate_max=limit)
    port = srv.ports["mx"]
    for i in range(limit):
        r, c = greeting_of(port, "127.0.0.5")
        with c:
            assert r is not None and r.starts("220 "), \
                "connection %d of %d in a minute: %s" % (i + 1, limit, r)
            c.expect("QUIT", "221")
    r, c = greeting_of(port, "127.0.0.5")
    with c:
        if r is None or not r.starts("421 4.7.0"):
            c.fail("connection %d in a minute (limit %d): want 421 4.7.0, "
                   "got %s" % (limit + 1, limit, r))
        c.wait_closed(5)
    r, c = greeting_of(port, "127.0.0.6")
    with c:
        assert r is not None and r.starts("220 "), \
            "another address is limited too: %s" % r


def test_client_rate_max_exempts_relay_from(sub_server):
    srv = sub_server(client_rate_max=2, relay_from="127.0.0.5/32")
    for i in range(5):
        r, c = greeting_of(srv.ports["mx"], "127.0.0.5")
        with c:
            assert r is not None and r.starts("220 "), \
                "relay_from client, connection %d: %s" % (i + 1, r)


# ---------------------------------------------------------------------------
# bad TLS input

def random_bytes(n, seed):
    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(n))


@pytest.mark.parametrize("where", ["starttls-mx", "starttls-submission",
                                   "submissions"])
def test_garbage_instead_of_handshake(sub_server, where):
    """Random octets (and a plausible record header followed by them)
    where the ClientHello belongs: the session ends, nothing in clear."""
    srv = sub_server(timeout_command=5)
    for seed in (1, 2, 3):
        if where == "submissions":
            c = srv.plain("submissions", greet=False)
        else:
            c = srv.plain(where.split("-")[1])
            c.ehlo()
            c.expect("STARTTLS", "220")
        with c:
            junk = random_bytes(4096, seed)
            if seed == 2:
                junk = b"\x16\x03\x01\x02\x00" + junk
            try:
                c.sock.sendall(junk)
            except OSError:
                pass
            got = c.wait_closed(10)
            assert b"250" not in got and b"220" not in got, got[:200]
        still_serves(srv, "mx")
        still_serves(srv, "submissions")


BAD_RECORDS = [
    ("bad-mac", b"\x17\x03\x03\x00\x20" + b"\xaa" * 32),
    ("alert", b"\x15\x03\x03\x00\x02\x02\x28"),
    ("handshake", b"\x16\x03\x03\x00\x04\x01\x00\x00\x00"),
    ("oversized", b"\x17\x03\x03\x40\x01" + b"\x00" * 16385),
    ("junk-header", b"\xff\xff\xff\xff\xff"),
]


@pytest.mark.parametrize("role", ["mx", "submissions"])
def test_bad_records_after_handshake(sub_server, role):
    """After a complete handshake, TLS records written straight to the
    socket (bypassing the TLS layer): the server ends the session, and
    serves the next one."""
    srv = sub_server(timeout_command=5)
    for what, record in BAD_RECORDS:
        if role == "submissions":
            c, _ = srv.implicit()
        else:
            c, _ = srv.starttls("mx")
        with c:
            try:
                os.write(c.tls.fileno(), record)
            except OSError:
                pass
            try:
                c.send_line("NOOP")
            except OSError:
                pass
            got = c.wait_closed(10)
            assert b"250" not in got, \
                "a session answered after a forged %s record" % what
        still_serves(srv, role)


@pytest.mark.parametrize("what", ["nothing", "half-hello", "one-byte",
                                  "starttls-nothing"])
def test_stalled_handshake_closed(sub_server, what):
    """A handshake that stalls is closed within timeout_command (2 s,
    checked with slack) while another session is served."""
    srv = sub_server(timeout_command=2)
    if what == "starttls-nothing":
        c = srv.plain("submission")
        c.ehlo()
        c.expect("STARTTLS", "220")
    else:
        c = srv.plain("submissions", greet=False)
        hello = client_hello()
        if what == "half-hello":
            c.sock.sendall(hello[:len(hello) // 2])
        elif what == "one-byte":
            c.sock.sendall(hello[:1])
    with c:
        t0 = time.monotonic()
        other, _ = srv.implicit()
        with other:
            other.expect("NOOP", "250")
        c.wait_closed(10)
        took = time.monotonic() - t0
        assert took <= 6.0, "stalled handshake open for %.1fs" % took
    still_serves(srv, "submissions")


def test_abandoned_handshakes(sub_server):
    """100 connections that send part of a ClientHello and reset."""
    srv = sub_server()
    hello = client_hello()
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", srv.ports["submissions"]),
                                     timeout=5)
        try:
            s.sendall(hello[: (i * 37) % len(hello) + 1])
        except OSError:
            pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    still_serves(srv, "submissions")
    still_serves(srv, "submission")


def test_client_closes_during_starttls(sub_server):
    """STARTTLS, 220, then the client resets instead of a ClientHello;
    also a client that closes right after its ClientHello."""
    srv = sub_server()
    for i in range(20):
        c = srv.plain("submission")
        c.ehlo()
        c.expect("STARTTLS", "220")
        if i % 2:
            c.sock.sendall(client_hello())
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    still_serves(srv, "submission")


def test_tls_close_notify_mid_transaction(sub_server, test_ca):
    """The client ends TLS (close_notify) in the middle of DATA: nothing is
    delivered and the server is fine."""
    srv = sub_server()
    c = srv.login(ALICE)
    c.expect("MAIL FROM:<%s>" % ALICE, "250")
    c.expect("RCPT TO:<%s>" % BOB, "250")
    c.expect("DATA", "354")
    c.send(b"Subject: cut\r\n\r\npartial")
    try:
        c.tls.unwrap()
    except (ssl.SSLError, OSError):
        pass
    c.close()
    time.sleep(1.0)
    assert maildir_files(srv.account_maildir(BOB)) == []
    still_serves(srv, "submissions")


# ---------------------------------------------------------------------------
# bad AUTH input, in a loop

def bad_auth_inputs():
    """(command line, responses to any 334) pairs: bad base64, malformed
    SASL messages of every mechanism, wrong mechanisms."""
    sc = ScramSha256(ALICE, PASSWORDS[ALICE], nonce="fixednonce0123")
    cases = [
        ("AUTH PLAIN =", []),
        ("AUTH PLAIN ====", []),
        ("AUTH PLAIN " + b64("no nuls at all"), []),
        ("AUTH PLAIN " + b64("\0\0"), []),
        ("AUTH PLAIN " + b64("\0%s" % ALICE), []),
        ("AUTH PLAIN " + b64("a\0b\0c\0d"), []),
        ("AUTH PLAIN " + b64("\0%s\0%s\0" % (ALICE, "x" * 300)), []),
        ("AUTH PLAIN " + b64(b"\0\xff\xfe\0\xc3\x28"), []),
        ("AUTH PLAIN " + b64("bob@example.org\0%s\0%s" % (ALICE, PASSWORDS[ALICE])), []),
        ("AUTH PLAIN", ["", "*"]),
        ("AUTH LOGIN", ["", "", "*"]),
        ("AUTH LOGIN " + b64(ALICE), [b64(""), "*"]),
        ("AUTH LOGIN", [b64("\0" * 10), b64("x"), "*"]),
        ("AUTH CRAM-MD5", ["", "*"]),
        ("AUTH CRAM-MD5", [b64("alice"), "*"]),
        ("AUTH CRAM-MD5", [b64(ALICE + " " + "z" * 32), "*"]),
        ("AUTH CRAM-MD5", [b64(ALICE + " " + "0" * 31), "*"]),
        ("AUTH CRAM-MD5 " + b64("initial"), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("garbage"), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("p=tls-unique,,n=alice,r=abc"), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("y,,n=%s,r=abc" % ALICE), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("n,,n=,r="), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("n,,n=%s" % ALICE), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("n,a=bob,n=%s,r=abc" % ALICE), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("n,,m=ext,n=%s,r=abc" % ALICE), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64(sc.first()),
         [b64("c=biws,r=wrongnonce,p=" + b64(b"\0" * 32)), "", "*"]),
        ("AUTH SCRAM-SHA-256 " + b64(sc.first()),
         [b64("c=biws"), "", "*"]),
        ("AUTH SCRAM-SHA-256 " + b64(sc.first()),
         ["SERVER-FIRST-NONCE", "", "*"]),
        ("AUTH SCRAM-SHA-256 " + b64("n,,n=%s,r=%s" % (ALICE, "r" * 3000)), ["*"]),
        ("AUTH SCRAM-SHA-256 " + b64("n,,n=%s,r=x" % ("=2C=3D=ZZ" * 50)), ["*"]),
        ("AUTH", []),
        ("AUTH  PLAIN", ["*"]),
        ("AUTH plain " + plain_blob(ALICE, "wrong"), []),
        ("AUTH FOO " + "A" * 400, []),
        ("AUTH PLAIN " + "A" * 12000 + "!", []),
        ("AUTH LOGIN", ["A" * 12000 + "=", "*"]),
        ("AUTH PLAIN " + b64("\0" + ALICE + "\0" + "\0" * 50), []),
    ]
    return cases


def run_auth_case(c, line, responses):
    """Sends one bad exchange; the reply codes seen, None when closed."""
    codes = []
    try:
        c.send_line(line)
    except OSError:
        c.eof = True
        return None
    todo = list(responses)
    while True:
        try:
            r = c.read_reply(10)
        except Closed:
            return None
        codes.append(r.code)
        if r.code != 334:
            return codes
        if not todo:
            todo = ["*"]
        resp = todo.pop(0)
        if resp == "SERVER-FIRST-NONCE":
            # a client-final whose proof is all zeros, for the nonce the
            # server chose
            try:
                sf = base64.b64decode(r.first[4:].strip()).decode()
                nonce = dict(a.split("=", 1) for a in sf.split(",") if "=" in a)["r"]
            except Exception:
                nonce = "x"
            resp = b64("c=biws,r=%s,p=%s" % (nonce, b64(b"\0" * 32)))
        try:
            c.send_line(resp)
        except OSError:
            c.eof = True
            return None


ALLOWED = {334, 421, 500, 501, 502, 503, 504, 535, 538}


@pytest.mark.parametrize("role", ["submissions", "submission"])
def test_bad_auth_in_a_loop(sub_server, role):
    srv = sub_server(auth_mechanisms="PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
                     auth_failures_max=5, errors_max=10)
    cases = bad_auth_inputs() * 3
    c = None
    served = 0
    try:
        for i, (line, responses) in enumerate(cases):
            if c is None or c.eof:
                if c is not None:
                    c.close()
                if role == "submissions":
                    c, _ = srv.implicit()
                else:
                    c, _ = srv.starttls("submission")
            codes = run_auth_case(c, line, responses)
            if codes is None:
                continue
            bad = [x for x in codes if x not in ALLOWED]
            if bad:
                c.fail("case %d %r: unexpected reply codes %r"
                       % (i, line[:60], codes))
            if 235 in codes:
                c.fail("case %d %r authenticated" % (i, line[:60]))
            served += 1
            if 421 in codes:
                c.wait_closed(5)
    finally:
        if c is not None:
            c.close()
    assert served > len(cases) // 4, "too few cases got a reply"
    # and the real thing still works
    c = srv.login(ALICE, role=role)
    with c:
        c.expect("MAIL FROM:<%s>" % ALICE, "250")


def test_random_lines_in_auth_exchange(sub_server):
    """Random printable and binary lines as responses to 334 challenges
    of every mechanism."""
    srv = sub_server(auth_mechanisms="PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
                     auth_failures_max=100, errors_max=1000)
    rnd = random.Random(7)
    c = None
    try:
        for i in range(150):
            if c is None or c.eof:
                if c is not None:
                    c.close()
                c, _ = srv.implicit()
            mech = rnd.choice(["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
            try:
                c.send_line("AUTH " + mech)
                r = c.read_reply(10)
                for _ in range(rnd.randint(1, 3)):
                    if r.code != 334:
                        break
                    n = rnd.randint(0, 200)
                    if rnd.random() < 0.5:
                        resp = bytes(rnd.getrandbits(8) for _ in range(n))
                        resp = resp.replace(b"\r", b"").replace(b"\n", b"")
                    else:
                        resp = b64(bytes(rnd.getrandbits(8) for _ in range(n))).encode()
                    c.send(resp + b"\r\n")
                    r = c.read_reply(10)
                if r.code == 334:
                    c.send_line("*")
                    r = c.read_reply(10)
                if r.code not in ALLOWED or r.code == 334:
                    c.fail("unexpected reply %r" % str(r))
            except (Closed, OSError):
                c.eof = True
                continue
    finally:
        if c is not None:
            c.close()
    still_serves(srv, "submissions")
