# SPDX-License-Identifier: MIT
"""Delivery with Python's smtplib: users, aliases, several recipients, and
message bytes that must arrive unchanged."""

import email.message
import smtplib
import time

import pytest

from ternlib import (QUEUED_RE, SmtpConn, check_delivered, maildir_files,
                     send_message, split_delivered, tail, wait_files)


def smtp(srv):
    return smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.example.org",
                        timeout=30)


def data_qid(srv, sender, rcpts, msg, mail_options=(), helo=False):
    """Like sendmail but via smtplib's lower-level calls so that the
    queue id from "250 2.0.0 Ok: queued as <id>" is visible."""
    with smtp(srv) as s:
        if helo:
            code, _ = s.helo("client.example.org")
        else:
            code, _ = s.ehlo("client.example.org")
        assert code == 250
        code, resp = s.mail(sender, list(mail_options))
        assert code == 250, resp
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, resp)
        code, resp = s.data(msg)
        assert code == 250, resp
        m = QUEUED_RE.search(resp.decode())
        assert resp.startswith(b"2.0.0 Ok: queued as ") and m, resp
        return m.group(1)


def one_file(srv, user, timeout=10):
    files = wait_files(srv.maildir(user), 1, timeout)
    assert len(files) >= 1, "nothing delivered to %s within %ds\n%s" % (
        user, timeout, tail(srv.stderr_text()))
    time.sleep(0.3)
    files = maildir_files(srv.maildir(user))
    assert len(files) == 1, "want exactly 1 file for %s, got %d" % (user, len(files))
    return files[0].read_bytes()


BASIC = (b"From: Sender <sender@example.org>\r\n"
         b"To: alice@example.test\r\n"
         b"Subject: basic\r\n"
         b"Message-ID: <basic@example.org>\r\n"
         b"\r\n"
         b"Line one.\r\n"
         b"Line two.\r\n")


def test_to_user(srv):
    qid = data_qid(srv, "sender@example.org", ["alice@example.test"], BASIC)
    check_delivered(one_file(srv, "alice"), "sender@example.org", BASIC,
                    qid=qid, rcpt="alice@example.test")
    assert maildir_files(srv.maildir("bob")) == []
    line = srv.wait_log(r"(?=.*\b%s\b)(?=.*status=delivered)" % qid)
    assert line, "no log line with id %s and status=delivered\n%s" % (qid, tail(srv.stderr_text()))


def test_sendmail_and_send_message(srv):
    m = email.message.EmailMessage()
    m["From"] = "x@example.org"
    m["To"] = "bob@example.test"
    m["Subject"] = "send_message"
    m.set_content("hello bob\n")
    with smtp(srv) as s:
        s.send_message(m)
        s.sendmail("y@example.org", ["demo@localhost"], BASIC)
    got = one_file(srv, "bob")
    _, _, rest = split_delivered(got)
    assert b"Subject: send_message\r\n" in rest and rest.endswith(b"hello bob\r\n")
    check_delivered(one_file(srv, "demo"), "y@example.org", BASIC, rcpt="demo@localhost")


def test_helo_gives_with_smtp(srv):
    qid = data_qid(srv, "s@example.org", ["bob@example.test"], BASIC, helo=True)
    check_delivered(one_file(srv, "bob"), "s@example.org", BASIC, qid=qid,
                    rcpt="bob@example.test", with_="SMTP")


def test_null_sender(srv):
    qid = data_qid(srv, "", ["alice@example.test"], BASIC)
    check_delivered(one_file(srv, "alice"), "", BASIC, qid=qid, rcpt="alice@example.test")


def test_alias_fans_out(srv):
    qid = data_qid(srv, "s@example.org", ["team@example.test"], BASIC)
    for u in ("alice", "bob"):
        check_delivered(one_file(srv, u), "s@example.org", BASIC, qid=qid,
                        rcpt="team@example.test")
    assert maildir_files(srv.maildir("demo")) == []


def test_user_and_alias_with_that_user_deliver_once(srv):
    qid = data_qid(srv, "s@example.org", ["alice@example.test", "team@example.test"], BASIC)
    for u in ("alice", "bob"):
        check_delivered(one_file(srv, u), "s@example.org", BASIC, qid=qid, rcpt=None)


def test_several_recipients(srv):
    qid = data_qid(srv, "s@example.org",
                   ["alice@example.test", "bob@example.test", "demo@localhost"], BASIC)
    for u in ("alice", "bob", "demo"):
        check_delivered(one_file(srv, u), "s@example.org", BASIC, qid=qid, rcpt=None)


def test_two_messages_one_session(srv):
    with SmtpConn(srv.port) as c:
        q1 = send_message(c, "a@example.org", ["alice@example.test"], BASIC)
        q2 = send_message(c, "b@example.org", ["alice@example.test"], BASIC + b"second\r\n",
                          ehlo=False)
        c.expect("QUIT", "221 2.0.0")
    assert q1 != q2, "two messages got the same queue id %s" % q1
    files = wait_files(srv.maildir("alice"), 2)
    assert len(files) == 2
    got = {split_delivered(f.read_bytes())[2]: f.read_bytes() for f in files}
    check_delivered(got[BASIC], "a@example.org", BASIC, qid=q1, rcpt="alice@example.test")
    check_delivered(got[BASIC + b"second\r\n"], "b@example.org", BASIC + b"second\r\n",
                    qid=q2, rcpt="alice@example.test")


def long_line(n, ch=b"x"):
    return ch * n


BODIES = {
    "leading-dots": (b"Subject: dots\r\n\r\n.\r\n..\r\n...three\r\n.one\r\n"
                     b"middle . dot\r\n. \r\n.\r\n"),
    "dot-first-header": b".Subject: odd\r\n\r\nx\r\n",
    # 998 octets + CRLF is the longest text line (RFC 5321 4.5.3.1.6); the
    # dotted line stays within it after dot-stuffing too
    "line-998": (b"Subject: long\r\n\r\n" + long_line(998) + b"\r\n"
                 + b"." + long_line(996) + b"\r\n"),
    "8bit": ("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n"
             "Grüße, ½ € ☃ — ünïcödé\r\n").encode("utf-8") + bytes(range(0x80, 0x100)) + b"\r\n",
    "headers-only": b"Subject: no body\r\nFrom: a@example.org\r\n\r\n",
    "no-blank-line": b"Subject: only a header\r\n",
    "crlf-only": b"\r\n",
    "whitespace": b"Subject: ws\r\n\r\n \t \r\n\t\r\n  trailing  \r\n",
    "no-final-crlf": b"Subject: x\r\n\r\nno newline at end",
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_exact_bytes_smtplib(srv, name):
    body = BODIES[name]
    opts = ["BODY=8BITMIME"] if name == "8bit" else []
    qid = data_qid(srv, "s@example.org", ["alice@example.test"], body, mail_options=opts)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"  # smtplib completes the last line
    check_delivered(one_file(srv, "alice"), "s@example.org", body, qid=qid,
                    rcpt="alice@example.test")


@pytest.mark.parametrize("name", sorted(BODIES))
def test_exact_bytes_raw(srv, name):
    """The same bodies with our own dot-stuffing; a body that does not end
    in CRLF is sent with the terminator CRLF.CRLF, whose first CRLF belongs
    to the message."""
    body = BODIES[name]
    with SmtpConn(srv.port) as c:
        c.ehlo()
        opt = " BODY=8BITMIME" if name == "8bit" else ""
        c.expect("MAIL FROM:<s@example.org>%s" % opt, "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        stuffed = body
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        stuffed = stuffed.replace(b"\r\n.", b"\r\n..")
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        c.send(stuffed + b".\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
        c.expect("QUIT", "221")
    want = body if body.endswith(b"\r\n") else body + b"\r\n"
    check_delivered(one_file(srv, "alice"), "s@example.org", want, qid=qid,
                    rcpt="alice@example.test")


def test_empty_message(srv):
    """DATA immediately followed by "." is a message of zero octets."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b".\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
    check_delivered(one_file(srv, "alice"), "s@example.org", b"", qid=qid,
                    rcpt="alice@example.test")


def test_one_mebibyte(srv):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.0123456789"
    lines = [b"Subject: big\r\n", b"\r\n"]
    size = sum(map(len, lines))
    i = 0
    while size < 1 << 20:
        l = b"%07d " % i + line + (b"." if i % 7 == 0 else b"") + b"\r\n"
        if i % 5 == 0:
            l = b"." + l
        lines.append(l)
        size += len(l)
        i += 1
    body = b"".join(lines)
    assert len(body) >= 1 << 20
    qid = data_qid(srv, "s@example.org", ["bob@example.test"], body)
    check_delivered(one_file(srv, "bob"), "s@example.org", body, qid=qid,
                    rcpt="bob@example.test")


def test_postmaster_delivers(srv):
    """"postmaster" without a user of that name reaches the first user."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<>", "250")
        c.expect("RCPT TO:<Postmaster>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: pm\r\n\r\nhi\r\n.\r\n")
        c.expect(None, "250 2.0.0")
    deadline = time.monotonic() + 10
    total = 0
    while time.monotonic() < deadline:
        total = sum(len(maildir_files(srv.maildir(u))) for u in ("alice", "bob", "demo"))
        if total:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    total = sum(len(maildir_files(srv.maildir(u))) for u in ("alice", "bob", "demo"))
    assert total == 1, "postmaster mail: want 1 delivered file, got %d" % total


def test_user_with_explicit_maildir(tern_server, tmp_path):
    md = tmp_path / "elsewhere" / "carol" / "Maildir"
    srv = tern_server(user=["alice", "bob", "demo", "carol %s" % md])
    qid = data_qid(srv, "s@example.org", ["carol@example.test"], BASIC)
    files = wait_files(md, 1)
    assert len(files) == 1, "nothing in %s/new" % md
    check_delivered(files[0].read_bytes(), "s@example.org", BASIC, qid=qid,
                    rcpt="carol@example.test")
    for sub in ("tmp", "new", "cur"):
        assert (md / sub).is_dir(), "Maildir/%s missing" % sub


def test_same_user_twice_delivers_once(srv):
    """Two RCPTs that reach the same user (two local domains, and the same
    address twice) give one copy."""
    qid = data_qid(srv, "s@example.org",
                   ["alice@example.test", "alice@localhost", "alice@example.test"], BASIC)
    check_delivered(one_file(srv, "alice"), "s@example.org", BASIC, qid=qid, rcpt=None)


ALIASES = ["team: alice, bob", "all: team, demo", "ext: bob@localhost",
           "loop1: loop2, alice", "loop2: loop1"]


@pytest.mark.parametrize("rcpt,users", [
    ("all@example.test", ("alice", "bob", "demo")),
    ("ext@example.test", ("bob",)),
    ("loop1@example.test", ("alice",)),
    ("loop2@localhost", ("alice",)),
])
def test_nested_aliases(tern_server, rcpt, users):
    srv = tern_server(alias=ALIASES)
    qid = data_qid(srv, "s@example.org", [rcpt], BASIC)
    for u in users:
        check_delivered(one_file(srv, u), "s@example.org", BASIC, qid=qid, rcpt=rcpt)
    for u in {"alice", "bob", "demo"} - set(users):
        assert maildir_files(srv.maildir(u)) == [], "%s got mail for %s" % (u, rcpt)


def test_received_for_with_one_accepted_of_two(srv):
    """One RCPT accepted and one refused: the message has one recipient,
    so the Received header names it."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.org>", "250")
        c.expect("RCPT TO:<nosuch@example.test>", "550 5.1.1")
        c.expect("RCPT TO:<bob@example.test>", "250")
        c.expect("DATA", "354")
        c.send(BASIC + b".\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
    check_delivered(one_file(srv, "bob"), "s@example.org", BASIC, qid=qid,
                    rcpt="bob@example.test")


# -- delivery before the 250 ------------------------------------------------

def log_index(lines, *needles):
    """The index of the first line holding every needle, or None."""
    for i, line in enumerate(lines):
        if all(n in line for n in needles):
            return i
    return None


def body_of(size):
    """BASIC's headers and a body of text lines, about size octets."""
    line = b"x" * 76 + b"\r\n"
    return BASIC + line * max(0, (size - len(BASIC)) // len(line))


@pytest.mark.parametrize("size", [0, 300 * 1024], ids=["small", "300KiB"])
def test_message_in_memory_is_in_the_maildirs_at_its_250(srv, size):
    """A message for local users that fits in memory (up to 1 MiB) is
    delivered before the 250: both copies are in new/ the moment the reply
    arrives (no waiting), it never reaches the queue, and its deliveries
    are logged before its acceptance."""
    rcpts = ["alice@example.test", "bob@example.test"]
    msg = body_of(size)
    qid = data_qid(srv, "s@example.org", rcpts, msg)
    for user in ("alice", "bob"):
        files = maildir_files(srv.maildir(user))
        assert len(files) == 1, "%s: %d copies at the 250" % (user, len(files))
        check_delivered(files[0].read_bytes(), "s@example.org", msg, qid=qid)
    assert not (srv.queue_dir() / qid).exists()
    lines = srv.stderr_text().splitlines()
    acc = log_index(lines, "queue id=%s event=accepted" % qid)
    assert acc is not None, tail(srv.stderr_text())
    for r in rcpts:
        d = log_index(lines, "deliver id=%s rcpt=<%s>" % (qid, r),
                      "status=delivered")
        assert d is not None and d < acc, \
            "delivery of %s not logged before the acceptance\n%s" % (
                r, "\n".join(lines[-10:]))


def test_message_over_one_mebibyte_goes_through_the_queue(srv):
    """A body past 1 MiB is not held in memory: it is committed to the
    queue, answered, and delivered after its acceptance."""
    msg = body_of(1536 * 1024)
    qid = data_qid(srv, "s@example.org", ["alice@example.test"], msg)
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1, tail(srv.stderr_text())
    check_delivered(files[0].read_bytes(), "s@example.org", msg, qid=qid,
                    rcpt="alice@example.test")
    assert srv.wait_log(r"deliver id=%s .*status=delivered" % qid)
    lines = srv.stderr_text().splitlines()
    acc = log_index(lines, "queue id=%s event=accepted" % qid)
    d = log_index(lines, "deliver id=%s rcpt=<alice@example.test>" % qid)
    assert acc is not None and d is not None and acc < d, \
        "\n".join(lines[-10:])


def test_failed_recipient_is_queued_the_others_delivered_once(tern_server):
    """When one recipient's Maildir cannot take the message before the
    250, the message is committed to the queue with the outcomes of that
    first attempt: the client still gets 250, alice has her copy at once
    and is never delivered again, and bob, deferred, gets his once his
    Maildir is repaired, at the first retry (retry_min) later."""
    srv = tern_server(retry_min="3s")
    bad = srv.maildir("bob")
    bad.mkdir(parents=True)
    (bad / "new").write_bytes(b"a file where new/ should be\n")
    rcpts = ["alice@example.test", "bob@example.test"]
    qid = data_qid(srv, "s@example.org", rcpts, BASIC)
    alice = maildir_files(srv.maildir("alice"))
    assert len(alice) == 1, "alice: %d copies at the 250" % len(alice)
    assert (srv.queue_dir() / qid).exists(), "not queued for bob"
    # attempt 1 was before the 250; the queue retries retry_min later
    line = srv.wait_log(r"deliver id=%s rcpt=<bob@example.test> .*status="
                        r"deferred .*attempts=1" % qid)
    assert line is not None, tail(srv.stderr_text())
    (bad / "new").unlink()
    files = wait_files(bad, 1, timeout=30)
    assert len(files) == 1, "bob: no copy after the retry\n%s" % tail(
        srv.stderr_text())
    check_delivered(files[0].read_bytes(), "s@example.org", BASIC, qid=qid)
    deadline = time.monotonic() + 10
    while (srv.queue_dir() / qid).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (srv.queue_dir() / qid).exists(), "still queued when done"
    assert len(maildir_files(srv.maildir("alice"))) == 1
    assert len(maildir_files(bad)) == 1
    delivered_alice = [l for l in srv.stderr_text().splitlines()
                       if "deliver id=%s rcpt=<alice@example.test>" % qid in l
                       and "status=delivered" in l]
    assert len(delivered_alice) == 1, delivered_alice
    assert srv.wait_log(r"deliver id=%s rcpt=<bob@example.test> .*status="
                        r"delivered .*attempts=2" % qid, timeout=1)
