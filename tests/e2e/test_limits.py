# SPDX-License-Identifier: MIT
"""Every input limit at limit-1, limit and limit+1: command line length
(512 octets with CRLF), rcpt_max, size_max (SIZE= and real data),
errors_max."""

import socket
import struct
import time

import pytest

from ternlib import (QUEUED_RE, SmtpConn, capped_quarantine_env, free_port,
                     check_delivered, check_enhanced, maildir_files,
                     split_delivered, vm_hwm_kib, wait_files)

LINE_MAX = 512


# ---------------------------------------------------------------------------
# command line length

def noop_line(total):
    """A NOOP command line of `total` octets including CRLF."""
    return b"NOOP " + b"a" * (total - 2 - 5) + b"\r\n"


@pytest.mark.parametrize("total,want", [(LINE_MAX - 1, "250 2.0.0"),
                                        (LINE_MAX, "250 2.0.0"),
                                        (LINE_MAX + 1, "500 5.5.2"),
                                        (LINE_MAX + 2, "500 5.5.2")])
def test_command_line_length(srv, total, want):
    line = noop_line(total)
    assert len(line) == total
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(line)
        r = c.expect(None, want)
        check_enhanced(c, r)
        c.expect_nothing_more(0.3)
        c.expect("HELP", "214")
        c.expect("NOOP", "250 2.0.0")


def test_mail_line_one_over_limit(srv):
    """A MAIL line of 513 octets is refused as too long (500 5.5.2), not
    parsed (ENVID may be at most 100 characters, so a 512-octet MAIL with
    valid parameters is not possible; the NOOP cases cover 512)."""
    head = b"MAIL FROM:<a@example.org> ENVID="
    line = head + b"e" * (LINE_MAX + 1 - 2 - len(head)) + b"\r\n"
    assert len(line) == LINE_MAX + 1
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(line)
        c.expect(None, "500 5.5.2")
        c.expect_nothing_more(0.3)
        c.expect("RCPT TO:<alice@example.test>", "503 5.5.1")


def test_line_just_over_limit_then_command(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(noop_line(LINE_MAX + 1) + b"RSET\r\n")
        c.expect(None, "500 5.5.2")
        c.expect(None, "250 2.0.0")        # the RSET on its own line runs
        c.expect_nothing_more(0.3)


# ---------------------------------------------------------------------------
# rcpt_max

def many_users(n):
    return ["alice", "bob", "demo"] + ["u%03d" % i for i in range(n)]


@pytest.mark.parametrize("rcpt_max", [100, 130])
def test_rcpt_max(tern_server, rcpt_max):
    srv = tern_server(rcpt_max=rcpt_max, user=many_users(rcpt_max + 10))
    users = ["u%03d" % i for i in range(rcpt_max + 3)]
    with SmtpConn(srv.port, timeout=30) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.send(b"".join(b"RCPT TO:<%s@example.test>\r\n" % u.encode() for u in users))
        for i, u in enumerate(users, 1):
            r = c.read_reply(30)
            if i <= rcpt_max:
                if not r.starts("250"):
                    c.fail("RCPT %d of rcpt_max=%d: want 250, got %r" % (i, rcpt_max, r.first))
            elif not r.starts("452 4.5.3"):
                c.fail("RCPT %d of rcpt_max=%d: want 452 4.5.3, got %r" % (i, rcpt_max, r.first))
        c.expect("DATA", "354")
        msg = b"Subject: many\r\n\r\nto many\r\n"
        c.send(msg + b".\r\n")
        c.expect(None, "250 2.0.0", timeout=30)
    for i, u in enumerate(users):
        md = srv.maildir(u)
        if i < rcpt_max:
            files = wait_files(md, 1, timeout=20)
            assert len(files) == 1, "%s: want 1 file, got %d" % (u, len(files))
            assert split_delivered(files[0].read_bytes())[2] == msg
        else:
            assert maildir_files(md) == [], "%s was over rcpt_max but got mail" % u


def test_rcpt_max_refused_rcpt_does_not_count(tern_server):
    """Only accepted recipients count towards rcpt_max."""
    srv = tern_server(rcpt_max=100, user=many_users(110))
    with SmtpConn(srv.port, timeout=30) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        for i in range(5):
            c.expect("RCPT TO:<nosuch%d@example.test>" % i, "550 5.1.1")
        c.send(b"".join(b"RCPT TO:<u%03d@example.test>\r\n" % i for i in range(100)))
        for i in range(100):
            c.expect(None, "250")
        c.expect("RCPT TO:<u100@example.test>", "452 4.5.3")


# ---------------------------------------------------------------------------
# size_max

SIZE_MAX = 1 << 20


def message_of(size, tag=b"size"):
    """A message of exactly `size` octets (CRLF endings, no leading dots)."""
    head = b"Subject: " + tag + b"\r\n\r\n"
    out = [head]
    n = len(head)
    line = b"x" * 78 + b"\r\n"
    while size - n > 2 * len(line):
        out.append(line)
        n += len(line)
    rest = size - n
    assert rest >= 2
    out.append(b"y" * (rest - 2) + b"\r\n")
    m = b"".join(out)
    assert len(m) == size
    return m


@pytest.mark.parametrize("size,want", [(SIZE_MAX - 1, "250"), (SIZE_MAX, "250"),
                                       (SIZE_MAX + 1, "552 5.3.4")])
def test_size_param(tern_server, size, want):
    srv = tern_server(size_max="1M")
    with SmtpConn(srv.port) as c:
        c.ehlo()
        r = c.expect("MAIL FROM:<a@example.org> SIZE=%d" % size, want)
        check_enhanced(c, r)
        c.expect("NOOP", "250 2.0.0")


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_size_data(tern_server, delta):
    srv = tern_server(size_max="1M")
    msg = message_of(SIZE_MAX + delta)
    with SmtpConn(srv.port, timeout=30) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(msg + b".\r\n")
        if delta <= 0:
            r = c.expect(None, "250 2.0.0", timeout=30)
            qid = QUEUED_RE.search(r.last).group(1)
        else:
            r = c.expect(None, "552 5.3.4", timeout=30)
        check_enhanced(c, r)
        c.expect("NOOP", "250 2.0.0")
    if delta <= 0:
        files = wait_files(srv.maildir("alice"), 1)
        assert len(files) == 1
        check_delivered(files[0].read_bytes(), "a@example.org", msg, qid=qid,
                        rcpt="alice@example.test")
    else:
        wait_files(srv.maildir("alice"), 1, timeout=1.0)
        assert maildir_files(srv.maildir("alice")) == []


def send_big_data(c, total, chunk=1 << 16):
    line = b"z" * 1022 + b"\r\n"
    block = line * (chunk // len(line))
    sent = 0
    while sent < total:
        c.sock.sendall(block)
        sent += len(block)
    return sent


def test_size_data_far_over_limit_then_next_message(tern_server):
    """size_max + 1 MiB of data: 552 5.3.4 at the end of data, the session
    stays in sync and the next message in it is accepted."""
    srv = tern_server(size_max="1M")
    with SmtpConn(srv.port, timeout=60) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: too big\r\n\r\n")
        c.sock.settimeout(60)
        send_big_data(c, SIZE_MAX + (1 << 20))
        c.send(b"MAIL FROM:<smuggled@example.org>\r\n.\r\n")
        c.expect(None, "552 5.3.4", timeout=60)
        c.expect_nothing_more(0.3)
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<bob@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: small\r\n\r\nfits\r\n.\r\n")
        c.expect(None, "250 2.0.0")
    assert len(wait_files(srv.maildir("bob"), 1)) == 1
    assert maildir_files(srv.maildir("alice")) == []


def test_size_data_not_buffered(tern_server):
    """64 MiB over a 1 MiB limit must not grow the server by anything like
    64 MiB: the excess is discarded as it arrives. (ASan's quarantine is
    capped for this server so that freed buffers do not count.)"""
    srv = tern_server(size_max="1M", env=capped_quarantine_env(4))
    pid = srv.proc.pid
    with SmtpConn(srv.port, timeout=60) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        before = vm_hwm_kib(pid)
        c.sock.settimeout(60)
        total = 64 << 20
        send_big_data(c, total)
        c.send(b".\r\n")
        c.expect(None, "552 5.3.4", timeout=60)
        after = vm_hwm_kib(pid)
        grown = (after - before) * 1024
        assert grown < total // 2, \
            "peak RSS grew by %d MiB while discarding %d MiB" % (grown >> 20, total >> 20)
        c.expect("NOOP", "250 2.0.0")
    state_bytes = sum(p.stat().st_size for p in srv.state_dir.rglob("*") if p.is_file())
    assert state_bytes < total // 2, "state_dir holds %d MiB after a refused message" % (
        state_bytes >> 20)


def test_bdat_over_size(tern_server):
    srv = tern_server(size_max="1M")
    with SmtpConn(srv.port, timeout=60) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        n = SIZE_MAX + 4096
        c.send(b"BDAT %d LAST\r\n" % n)
        body = (b"RSET\r\n" * (n // 6 + 1))[:n]
        c.sock.sendall(body)
        c.expect(None, "552 5.3.4", timeout=60)
        c.expect_nothing_more(0.3)
        c.expect("RSET", "250 2.0.0")
        c.expect("NOOP", "250 2.0.0")
    wait_files(srv.maildir("alice"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("alice")) == []


def test_bdat_at_size_limit(tern_server):
    srv = tern_server(size_max="1M")
    msg = message_of(SIZE_MAX)
    with SmtpConn(srv.port, timeout=60) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        half = len(msg) // 2
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        c.expect(None, "250")
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        c.expect(None, "250 2.0.0", timeout=60)
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[2] == msg


# ---------------------------------------------------------------------------
# errors_max

ERRORS_MAX = 5


def test_errors_below_limit_keep_session(tern_server):
    srv = tern_server(errors_max=ERRORS_MAX)
    with SmtpConn(srv.port) as c:
        c.ehlo()
        for i in range(ERRORS_MAX - 1):
            c.expect("BOGUS%d" % i, "500 5.5.2")
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: ok\r\n\r\nstill here\r\n.\r\n")
        c.expect(None, "250 2.0.0")
        c.expect("QUIT", "221 2.0.0")
    assert len(wait_files(srv.maildir("alice"), 1)) == 1


def lines_within(c, wait=1.0):
    """Reply lines that arrive within `wait` seconds (or until EOF)."""
    data = c.pending(wait)
    return [l.decode("utf-8", "replace") for l in data.split(b"\r\n") if l]


def error_until_421(c, line, want, first, last):
    """Sends `line` as error number first..last; returns the number of the
    error that brought 421 4.7.0 (all other replies must start with want)."""
    for n in range(first, last + 1):
        try:
            c.send_line(line)
        except OSError:
            c.fail("connection gone before error %d" % n)
        lines = lines_within(c, 1.0)
        if not lines:
            c.fail("no reply to error %d" % n)
        for l in lines:
            if not (l.startswith(want) or l.startswith("421 4.7.0")):
                c.fail("error %d: want %r or 421 4.7.0, got %r" % (n, want, l))
        if any(l.startswith("421") for l in lines):
            if not lines[-1].startswith("421 4.7.0"):
                c.fail("421 is not the last reply")
            return n
    return None


def test_errors_max_closes(tern_server):
    """After errors_max errors: 421 4.7.0 and close. The error that
    reaches the limit (or at the latest the one past it) ends the session;
    none before it does."""
    srv = tern_server(errors_max=ERRORS_MAX)
    with SmtpConn(srv.port) as c:
        c.ehlo()
        for i in range(ERRORS_MAX - 1):
            c.expect("BOGUS%d" % i, "500 5.5.2")
        n = error_until_421(c, "BOGUS", "500 5.5.2", ERRORS_MAX, ERRORS_MAX + 1)
        if n is None:
            c.fail("no 421 after %d errors (errors_max = %d)" % (ERRORS_MAX + 1, ERRORS_MAX))
        rest = c.wait_closed(5)
        assert rest == b"", c.fail("bytes after 421: %r" % rest)
    # a new session starts with a fresh count
    with SmtpConn(srv.port) as c:
        c.ehlo()
        for i in range(ERRORS_MAX - 1):
            c.expect("BOGUS%d" % i, "500 5.5.2")
        c.expect("NOOP", "250 2.0.0")


def test_errors_counted_per_session(tern_server):
    srv = tern_server(errors_max=ERRORS_MAX)
    a = SmtpConn(srv.port)
    b = SmtpConn(srv.port)
    try:
        for i in range(ERRORS_MAX - 1):
            a.expect("BOGUS", "500 5.5.2")
            b.expect("BOGUS", "500 5.5.2")
        a.expect("NOOP", "250 2.0.0")
        b.expect("NOOP", "250 2.0.0")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("kind", ["sequence", "syntax", "parameter"])
def test_errors_max_counts_other_errors(tern_server, kind):
    """Refused commands of any kind count as errors."""
    srv = tern_server(errors_max=ERRORS_MAX)
    line, want = {
        "sequence": ("RCPT TO:<alice@example.test>", "503 5.5.1"),
        "syntax": ("MAIL FROM:broken", "501 5."),
        "parameter": ("MAIL FROM:<a@example.org> FOO=bar", "555 5.5.4"),
    }[kind]
    with SmtpConn(srv.port) as c:
        c.ehlo()
        n = error_until_421(c, line, want, 1, ERRORS_MAX + 1)
        if n is None or n < ERRORS_MAX:
            c.fail("421 after error %s, errors_max = %d" % (n, ERRORS_MAX))
        c.wait_closed(5)


# ---------------------------------------------------------------------------
# sessions_max: clients beyond it get 421

def test_sessions_max(tern_server):
    srv = tern_server(sessions_max=3)
    conns = []
    try:
        for i in range(2):                  # limit-1
            conns.append(SmtpConn(srv.port))
            conns[-1].expect("NOOP", "250 2.0.0")
        conns.append(SmtpConn(srv.port))    # limit
        assert conns[-1].greeting.starts("220 "), str(conns[-1].greeting)
        conns[-1].expect("NOOP", "250 2.0.0")
        extra = SmtpConn(srv.port, greet=False)   # limit+1
        data = extra.wait_closed(10)
        if not data.startswith(b"421 4."):
            extra.fail("session beyond sessions_max: want 421, got %r" % data)
        extra.close()
        # the sessions within the limit are unaffected
        for c in conns:
            c.expect("NOOP", "250 2.0.0")
        # a slot that frees up can be used again
        conns[0].expect("QUIT", "221")
        conns[0].wait_closed(5)
        conns[0].close()
        deadline = time.monotonic() + 5
        while True:
            c = SmtpConn(srv.port, greet=False)
            r = c.read_reply(5)
            if r.starts("220 ") or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.1)
        assert r.starts("220 "), "freed slot not reused: %s" % r
        conns[0] = c
        c.expect("NOOP", "250 2.0.0")
    finally:
        for c in conns:
            c.close()


def test_size_counts_unstuffed_octets(tern_server):
    """A message of exactly size_max octets whose lines start with dots is
    larger than size_max on the wire (dot-stuffing) but fits."""
    srv = tern_server(size_max="1M")
    head = b"Subject: dots\r\n\r\n"
    line = b"." + b"d" * 77 + b"\r\n"
    n = (SIZE_MAX - len(head)) // len(line) - 1
    rest = SIZE_MAX - len(head) - n * len(line)     # 80..159 octets
    msg = head + line * n + b"." + b"e" * (rest - 3) + b"\r\n"
    assert len(msg) == SIZE_MAX
    wire = msg.replace(b"\r\n.", b"\r\n..")
    assert len(wire) > SIZE_MAX
    with SmtpConn(srv.port, timeout=60) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org> SIZE=%d" % SIZE_MAX, "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(wire + b".\r\n")
        c.expect(None, "250 2.0.0", timeout=60)
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[2] == msg


def test_sessions_max_slots_freed_after_resets(tern_server):
    """Sessions that end by a reset, mid-transaction, give their slot back."""
    srv = tern_server(sessions_max=2)
    for _ in range(10):
        c = SmtpConn(srv.port)
        c.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
               b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: cut\r\n")
        time.sleep(0.05)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    deadline = time.monotonic() + 5
    while True:
        a = SmtpConn(srv.port)
        b = SmtpConn(srv.port, greet=False)
        r = b.try_reply(5)
        if (r and r.starts("220 ")) or time.monotonic() > deadline:
            break
        a.close()
        b.close()
        time.sleep(0.2)
    try:
        assert r is not None and r.starts("220 "), \
            "second session refused after 10 reset sessions: %s" % r
        a.expect("NOOP", "250 2.0.0")
        b.expect("NOOP", "250 2.0.0")
    finally:
        a.close()
        b.close()
    assert maildir_files(srv.maildir("alice")) == []


@pytest.mark.parametrize("limit", [1, 3])
def test_listener_sessions_limit(tern_server, limit):
    """listen = ... sessions=N: N sessions on that listener get 220, the
    next one 421 4.7.0, while another listener still greets; a closed
    session frees its place."""
    other = free_port()
    srv = tern_server(start=False,
                      extra=["listen = 127.0.0.1:%d mx" % other])
    srv.config["listen"] = "127.0.0.1:%d mx sessions=%d" % (srv.port, limit)
    srv.config_path.write_text(srv.render())
    srv.start()
    held = []
    try:
        for _ in range(limit):
            c = SmtpConn(srv.port)
            held.append(c)
            assert c.greeting.starts("220 "), str(c.greeting)
        c = SmtpConn(srv.port, greet=False)
        r = c.read_reply()
        c.close()
        assert r.starts("421 4.7.0"), str(r)
        with SmtpConn(other) as o:
            assert o.greeting.starts("220 "), str(o.greeting)
        held[0].expect("QUIT", "221")
        held[0].wait_closed(5)
        held.pop(0).close()
        deadline = time.monotonic() + 5
        while True:
            c = SmtpConn(srv.port, greet=False)
            r = c.read_reply()
            if r.starts("220 ") or time.monotonic() > deadline:
                held.append(c)
                break
            c.close()
            time.sleep(0.2)
        assert r.starts("220 "), "freed place not reused: %s" % r
    finally:
        for h in held:
            h.close()
    assert srv.wait_log(r"event=refused .*reason=listener_sessions",
                        timeout=5) is not None
