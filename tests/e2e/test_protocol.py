# SPDX-License-Identifier: MIT
"""SMTP replies, command by command, over raw sockets.

Each case is {state, line sent, wanted reply prefix}; after it the session
must still answer HELP with 214 (so a command that produced two replies, or
swallowed the next one, shows up) and NOOP with 250 2.0.0.
"""

import re

import pytest

from ternlib import (QUEUED_RE, SmtpConn, check_delivered, check_enhanced,
                     maildir_files, split_delivered, wait_files)

SETUP = {
    "greet": [],
    "ehlo": [("EHLO client.example.org", "250")],
    "mail": [("EHLO client.example.org", "250"),
             ("MAIL FROM:<a@example.org>", "250")],
    "rcpt": [("EHLO client.example.org", "250"),
             ("MAIL FROM:<a@example.org>", "250"),
             ("RCPT TO:<alice@example.test>", "250")],
    "rcpt-refused": [("EHLO client.example.org", "250"),
                     ("MAIL FROM:<a@example.org>", "250"),
                     ("RCPT TO:<nosuch@example.test>", "550")],
}

CASES = [
    # sequence (RFC 5321 4.1.4; 503 5.5.1)
    ("greet", "MAIL FROM:<a@example.org>", "503 5.5.1"),
    ("greet", "RCPT TO:<alice@example.test>", "503 5.5.1"),
    ("greet", "DATA", "503 5.5.1"),
    ("ehlo", "RCPT TO:<alice@example.test>", "503 5.5.1"),
    ("ehlo", "DATA", "503 5.5.1"),
    ("mail", "DATA", "503 5.5.1"),
    ("mail", "MAIL FROM:<b@example.org>", "503 5.5.1"),
    ("rcpt", "MAIL FROM:<b@example.org>", "503 5.5.1"),
    ("rcpt-refused", "DATA", "554 5.5.1"),
    # unknown and unimplemented commands
    ("greet", "FOOBAR", "500 5.5.2"),
    ("ehlo", "XYZZY plugh", "500 5.5.2"),
    ("greet", "", "500 5.5.2"),
    ("rcpt", "MAILFROM:<a@example.org>", "500 5.5.2"),
    ("greet", "TURN", "502 5.5.1"),
    ("ehlo", "EXPN team", "502 5.5.1"),
    ("ehlo", "EXPN demo", "502 5.5.1"),
    # VRFY disabled by default: 252 (RFC 5321 3.5.3)
    ("greet", "VRFY demo", "252 2."),
    ("ehlo", "VRFY nosuch", "252 2."),
    ("greet", "HELP", "214"),
    ("greet", "NOOP", "250 2.0.0"),
    ("rcpt", "NOOP", "250 2.0.0"),
    ("greet", "NOOP anything at all", "250 2.0.0"),
    ("greet", "RSET", "250 2.0.0"),
    ("rcpt", "RSET", "250 2.0.0"),
    # syntax (501)
    # RFC 2034 3: replies to HELO/EHLO carry no enhanced code
    ("greet", "HELO", "501"),
    ("greet", "EHLO", "501"),
    ("ehlo", "MAIL FROM:a@example.org", "501 5."),
    ("ehlo", "MAIL FROM:", "501 5."),
    ("ehlo", "MAIL", "501 5."),
    ("ehlo", "MAIL TO:<a@example.org>", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=abc", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=-1", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=99999999999999999999999999", "5"),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=10 SIZE=11", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=10 SIZE=10", "250 2."),
    ("ehlo", "MAIL FROM:<a@example.org> BODY=8BITMIME BODY=7BIT", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> BODY=9BIT", "501 5."),
    ("ehlo", "MAIL FROM:<a@example.org> RET=ALL", "501 5."),
    ("mail", "RCPT TO:alice@example.test", "501 5."),
    ("mail", "RCPT TO:", "501 5."),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=SOMETIMES", "501 5."),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS", "501 5."),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=SUCCESS NOTIFY=FAILURE", "501 5."),
    ("rcpt", "DATA now", "501 5."),
    # unknown parameters (RFC 5321 4.2.3: 555 5.5.4)
    ("ehlo", "MAIL FROM:<a@example.org> FOO=bar", "555 5.5.4"),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=10 XFORWARD", "555 5.5.4"),
    ("mail", "RCPT TO:<alice@example.test> FOO=bar", "555 5.5.4"),
    # recipients
    ("mail", "RCPT TO:<nosuch@example.test>", "550 5.1.1"),
    ("mail", "RCPT TO:<nosuch@localhost>", "550 5.1.1"),
    ("mail", "RCPT TO:<someone@example.org>", "550 5.7."),
    ("mail", "RCPT TO:<alice@example.test.evil.example>", "550 5.7."),
    ("mail", "RCPT TO:<alice@example.org>", "550 5.7."),
    ("mail", "RCPT TO:<alice@example.test>", "250 2.1.5"),
    ("mail", "RCPT TO:<team@example.test>", "250 2.1.5"),
    ("mail", "RCPT TO:<demo@localhost>", "250 2.1.5"),
    ("mail", "RCPT TO:<postmaster>", "250 2.1.5"),
    ("mail", "RCPT TO:<Postmaster>", "250 2.1.5"),
    ("mail", "RCPT TO:<POSTMASTER>", "250 2.1.5"),
    ("mail", "RCPT TO:<pOsTmAsTeR>", "250 2.1.5"),
    ("mail", "RCPT TO:<postmaster@example.test>", "250 2.1.5"),
    # domains compare case-insensitively (RFC 5321 2.4)
    ("mail", "RCPT TO:<alice@EXAMPLE.Test>", "250 2.1.5"),
    ("mail", "RCPT TO:<demo@LOCALHOST>", "250 2.1.5"),
    # accepted parameters (SIZE, 8BITMIME, SMTPUTF8, DSN)
    ("ehlo", "MAIL FROM:<a@example.org>", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<>", "250 2.1.0"),
    ("ehlo", "mail from:<a@example.org>", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=100", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=0", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> BODY=7BIT", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> BODY=8BITMIME", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> body=8bitmime", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> SMTPUTF8", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> RET=FULL", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> RET=HDRS", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> ENVID=QQ314159", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> ENVID=a+2Bb", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x1",
     "250 2.1.0"),
    ("ehlo", "MAIL FROM:<jörg@example.org> SMTPUTF8", "250 2.1.0"),
    ("ehlo", "MAIL FROM:<jörg@example.org>", "553 5."),
    ("ehlo", "MAIL FROM:<用户@例子.广告> SMTPUTF8", "250 2.1.0"),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE", "250 2.1.5"),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=NEVER", "250 2.1.5"),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=DELAY", "250 2.1.5"),
    ("mail", "RCPT TO:<alice@example.test> ORCPT=rfc822;alice@example.test", "250 2.1.5"),
    ("mail", "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.example",
     "250 2.1.5"),
    ("mail", "rcpt to:<alice@example.test>", "250 2.1.5"),
]


def case_id(c):
    state, line, want = c
    return "%s|%s|%s" % (state, line[:50] or "<empty>", want)


def setup_conn(port, state):
    c = SmtpConn(port)
    for line, want in SETUP[state]:
        c.expect(line, want)
    return c


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_reply(srv, case):
    state, line, want = case
    with setup_conn(srv.port, state) as c:
        r = c.expect(line, want)
        if not re.match(r"(?i)(HELO|EHLO)\b", line):
            check_enhanced(c, r)
        # exactly one reply, and the session goes on
        c.expect_nothing_more(0.2)
        r = c.expect("HELP", "214")
        check_enhanced(c, r)
        c.expect("NOOP", "250 2.0.0")
        c.expect("QUIT", "221 2.0.0")
        c.wait_closed(5)


def test_greeting(srv):
    with SmtpConn(srv.port) as c:
        assert c.greeting.first.startswith("220 mx.test ESMTP"), str(c.greeting)


def test_ehlo_keywords(srv):
    with SmtpConn(srv.port) as c:
        r = c.expect("EHLO client.example.org", "250")
        assert r.lines[0].startswith("250-mx.test") or r.lines[0].startswith("250 mx.test"), r
        kw = {t.split()[0].upper(): t.split()[1:] for t in r.texts()[1:] if t.split()}
        for k in ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                  "CHUNKING", "DSN", "SIZE"):
            assert k in kw, "EHLO lacks %s: %s" % (k, r)
        assert len(kw["SIZE"]) == 1 and kw["SIZE"][0].isdigit() and int(kw["SIZE"][0]) > 0, \
            "SIZE: %s" % kw["SIZE"]
        for t in r.texts()[1:]:
            assert not re.match(r"[245]\.\d+\.\d+ ", t), "EHLO line with a status code: %r" % t


def test_ehlo_size_follows_config(tern_server):
    srv = tern_server(size_max="3M")
    with SmtpConn(srv.port) as c:
        r = c.ehlo()
        sizes = [t for t in r.texts() if t.upper().startswith("SIZE")]
        assert sizes == ["SIZE %d" % (3 * 1024 * 1024)], r


def test_helo(srv):
    with SmtpConn(srv.port) as c:
        r = c.expect("HELO client.example.org", "250")
        assert "mx.test" in r.first, r
        c.expect("MAIL FROM:<a@example.org>", "250")


def test_ehlo_resets_transaction(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.ehlo()
        c.expect("DATA", "503 5.5.1")
        c.expect("MAIL FROM:<a@example.org>", "250")


def test_rset_resets_transaction(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("RSET", "250 2.0.0")
        c.expect("RCPT TO:<alice@example.test>", "503 5.5.1")
        c.expect("DATA", "503 5.5.1")
        c.expect("MAIL FROM:<a@example.org>", "250")
    assert maildir_files(srv.maildir("alice")) == []


def test_quit_closes(srv):
    with SmtpConn(srv.port) as c:
        r = c.expect("QUIT", "221 2.0.0")
        check_enhanced(c, r)
        rest = c.wait_closed(5)
        assert rest == b"", "bytes after 221: %r" % rest


def test_help_lists_commands(srv):
    with SmtpConn(srv.port) as c:
        r = c.expect("HELP", "214")
        text = " ".join(r.texts()).upper()
        for cmd in ("EHLO", "MAIL", "RCPT", "DATA", "QUIT"):
            assert cmd in text, "HELP does not list %s: %s" % (cmd, r)


VRFY_EXPN = [
    ("VRFY demo", "250 2.", None),
    ("VRFY demo@localhost", "250 2.", None),
    ("VRFY alice@example.test", "250 2.", None),
    ("VRFY nosuch", "550 5.1.1", None),
    ("VRFY nosuch@example.test", "550 5.1.1", None),
    ("EXPN team", "250", ("alice", "bob")),
    ("EXPN team@example.test", "250", ("alice", "bob")),
    ("EXPN nosuch", "550 5.1.1", None),
]


@pytest.mark.parametrize("line,want,members", VRFY_EXPN, ids=[v[0] for v in VRFY_EXPN])
def test_vrfy_expn_enabled(tern_server, line, want, members):
    srv = tern_server(vrfy="yes", expn="yes")
    with SmtpConn(srv.port) as c:
        c.ehlo()
        r = c.expect(line, want)
        check_enhanced(c, r)
        if members:
            assert len(r.lines) == len(members), "%s: want %d lines, got %s" % (
                line, len(members), r)
            text = " ".join(r.texts())
            for m in members:
                assert m in text, "%s: %s missing from %s" % (line, m, r)
        c.expect("NOOP", "250 2.0.0")


def test_data_after_rejected_and_accepted_rcpt(srv):
    """Refused recipients do not spoil the accepted ones."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<nosuch@example.test>", "550 5.1.1")
        c.expect("RCPT TO:<x@example.org>", "550 5.7.")
        c.expect("RCPT TO:<bob@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        c.expect(None, "250 2.0.0")
    files = wait_files(srv.maildir("bob"), 1)
    assert len(files) == 1


# ---------------------------------------------------------------------------
# pipelining (RFC 2920)

def test_pipelined_transaction(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<p@example.org>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nosuch@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        for want in ("250", "250", "550 5.1.1", "250", "354"):
            c.expect(None, want)
        msg = b"Subject: pipelined\r\n\r\nbody\r\n"
        c.send(msg + b".\r\nQUIT\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
        c.expect(None, "221 2.0.0")
        c.wait_closed(5)
    for u in ("alice", "bob"):
        files = wait_files(srv.maildir(u), 1)
        assert len(files) == 1, u
        check_delivered(files[0].read_bytes(), "p@example.org", msg, qid=qid, rcpt=None)


def test_pipelined_two_transactions(srv):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<p@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        for want in ("250", "250", "354"):
            c.expect(None, want)
        c.send(b"Subject: one\r\n\r\n1\r\n.\r\n"
               b"RSET\r\nMAIL FROM:<q@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        for want in ("250 2.0.0", "250 2.0.0", "250", "250", "354"):
            c.expect(None, want)
        c.send(b"Subject: two\r\n\r\n2\r\n.\r\nQUIT\r\n")
        c.expect(None, "250 2.0.0")
        c.expect(None, "221")
    files = wait_files(srv.maildir("alice"), 2)
    assert len(files) == 2
    bodies = sorted(split_delivered(f.read_bytes())[2] for f in files)
    assert bodies == [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"]


def test_pipelined_commands_in_tiny_writes(srv):
    """The same commands split into one-byte writes."""
    with SmtpConn(srv.port) as c:
        data = (b"EHLO x.example.org\r\nMAIL FROM:<p@example.org>\r\n"
                b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        for i in range(len(data)):
            c.send(data[i:i + 1])
        for want in ("250", "250", "250", "354"):
            c.expect(None, want)
        msg = b"Subject: tiny\r\n\r\n.dot\r\nend\r\n"
        wire = msg.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        for i in range(len(wire)):
            c.send(wire[i:i + 1])
        c.expect(None, "250 2.0.0")
    files = wait_files(srv.maildir("bob"), 1)
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[2] == msg


# ---------------------------------------------------------------------------
# BDAT (RFC 3030)

def bdat_setup(c, rcpt="alice@example.test"):
    c.ehlo()
    c.expect("MAIL FROM:<c@example.org>", "250")
    c.expect("RCPT TO:<%s>" % rcpt, "250")


def test_bdat_chunks(srv):
    # BDAT bodies are not dot-stuffed: "..x" and "\r\n.\r\n" are content
    chunks = [b"Subject: chunked\r\n\r\n", b"..two dots\r\n.\r\n", b"QUIT\r\n", b"end\r\n"]
    with SmtpConn(srv.port) as c:
        bdat_setup(c)
        for ch in chunks[:-1]:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            r = c.expect(None, "250")
            check_enhanced(c, r)
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last)
        assert qid, r
        c.expect("NOOP", "250 2.0.0")
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1
    check_delivered(files[0].read_bytes(), "c@example.org", b"".join(chunks),
                    qid=qid.group(1), rcpt="alice@example.test")


def test_bdat_zero_last(srv):
    body = b"Subject: z\r\n\r\nzero last\r\n"
    with SmtpConn(srv.port) as c:
        bdat_setup(c)
        c.send(b"BDAT %d\r\n" % len(body) + body)
        c.expect(None, "250")
        c.send(b"BDAT 0 LAST\r\n")
        c.expect(None, "250 2.0.0")
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[2] == body


def test_bdat_pipelined_single_write(srv):
    body = b"Subject: one write\r\n\r\nall at once\r\n"
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<c@example.org>\r\nRCPT TO:<bob@example.test>\r\n"
               + b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
        for want in ("250", "250", "250 2.0.0", "221 2.0.0"):
            c.expect(None, want)
    files = wait_files(srv.maildir("bob"), 1)
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[2] == body


@pytest.mark.parametrize("bad", [b"bare\nLF\r\n", b"bare\rCR\r\n", b"nul\x00byte\r\n"],
                         ids=["LF", "CR", "NUL"])
def test_bdat_bare_lf_refused(srv, bad):
    head = b"Subject: bad\r\n\r\n"
    with SmtpConn(srv.port) as c:
        bdat_setup(c)
        c.send(b"BDAT %d\r\n" % len(head) + head)
        c.expect(None, "250")
        c.send(b"BDAT %d LAST\r\n" % len(bad) + bad)
        r = c.expect(None, "550 5.6.2")
        check_enhanced(c, r)
        c.expect("RSET", "250 2.0.0")
        c.expect("NOOP", "250 2.0.0")
    wait_files(srv.maildir("alice"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("alice")) == []


def test_bdat_before_mail_discards_chunk(srv):
    """A refused BDAT's chunk is still read (RFC 3030 2): its bytes must
    not run as commands."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(b"BDAT 6 LAST\r\nRSET\r\n")
        c.expect(None, "503 5.5.1")
        c.expect("HELP", "214")
        c.expect("NOOP", "250 2.0.0")


def test_data_after_bdat_refused(srv):
    with SmtpConn(srv.port) as c:
        bdat_setup(c)
        c.send(b"BDAT 4\r\nabcd")
        c.expect(None, "250")
        c.expect("DATA", "503 5.5.1")
        c.expect("RSET", "250 2.0.0")
        c.expect("NOOP", "250 2.0.0")
    wait_files(srv.maildir("alice"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("alice")) == []


# ---------------------------------------------------------------------------
# DATA: bare LF/CR/NUL and smuggling

BAD_DATA = {
    "bare-LF": b"Subject: x\r\n\r\nbare\nLF\r\n",
    "bare-CR": b"Subject: x\r\n\r\nbare\rCR\r\n",
    "NUL": b"Subject: x\r\n\r\nnul\x00byte\r\n",
    "LF-in-header": b"Subject: x\nX-Evil: y\r\n\r\nbody\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_data_bare_lf_cr_nul_refused(srv, name):
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(BAD_DATA[name] + b".\r\n")
        r = c.expect(None, "550 5.6.2")
        check_enhanced(c, r)
        c.expect_nothing_more(0.2)
        c.expect("HELP", "214")
        c.expect("NOOP", "250 2.0.0")
        # the session can send a good message afterwards
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<bob@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: good\r\n\r\nok\r\n.\r\n")
        c.expect(None, "250 2.0.0")
    assert len(wait_files(srv.maildir("bob"), 1)) == 1
    assert maildir_files(srv.maildir("alice")) == []


SMUGGLE_ENDS = {
    "LF.CRLF": b"\n.\r\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.LF": b"\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.CR": b"\r.\r",
}


@pytest.mark.parametrize("name", sorted(SMUGGLE_ENDS))
def test_smuggling_fake_end_of_data(srv, name):
    """A fake end-of-data followed by a second transaction: the whole
    thing is one message with a bare CR/LF (550 5.6.2), the smuggled
    commands never run, and nothing is delivered."""
    fake = SMUGGLE_ENDS[name]
    payload = (b"Subject: first\r\n\r\nfirst body" + fake +
               b"MAIL FROM:<smuggler@example.org>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n"
               b"Subject: smuggled\r\n\r\nsmuggled body\r\n"
               b".\r\n")
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(payload)
        c.expect(None, "550 5.6.2")
        c.expect_nothing_more(0.3)
        c.expect("HELP", "214")
        c.expect("NOOP", "250 2.0.0")
    wait_files(srv.maildir("bob"), 1, timeout=1.5)
    assert maildir_files(srv.maildir("alice")) == []
    assert maildir_files(srv.maildir("bob")) == [], "smuggled message delivered"


def test_bdat_after_refused_rcpt_discards_chunk(srv):
    """Pipelined MAIL, refused RCPT, BDAT LAST: the BDAT is refused and its
    chunk (which looks like commands) is read and dropped."""
    chunk = b"RCPT TO:<bob@example.test>\r\nRSET\r\n"
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<c@example.org>\r\nRCPT TO:<nosuch@example.test>\r\n"
               + b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        c.expect(None, "250")
        c.expect(None, "550 5.1.1")
        r = c.read_reply()
        if r.code not in (503, 554):
            c.fail("BDAT without valid recipients: want 503/554, got %r" % r.first)
        check_enhanced(c, r)
        c.expect_nothing_more(0.3)
        c.expect("HELP", "214")
        c.expect("RSET", "250 2.0.0")
    wait_files(srv.maildir("bob"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("bob")) == []


def test_rset_between_bdat_chunks(srv):
    with SmtpConn(srv.port) as c:
        bdat_setup(c)
        c.send(b"BDAT 7\r\npartial")
        c.expect(None, "250")
        c.expect("RSET", "250 2.0.0")
        c.send(b"BDAT 3 LAST\r\nxyz")
        c.expect(None, "503 5.5.1")
        c.expect("NOOP", "250 2.0.0")
        c.expect("MAIL FROM:<c@example.org>", "250")
        c.expect("RCPT TO:<bob@example.test>", "250")
        body = b"Subject: after rset\r\n\r\nok\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        c.expect(None, "250 2.0.0")
    files = wait_files(srv.maildir("bob"), 1)
    assert len(files) == 1
    assert split_delivered(files[0].read_bytes())[2] == body
    assert maildir_files(srv.maildir("alice")) == []


@pytest.mark.parametrize("line", ["BDAT", "BDAT abc", "BDAT -1 LAST", "BDAT 1x LAST"])
def test_bdat_bad_size(srv, line):
    """A BDAT whose chunk size cannot be read: 501, after which the server
    may close (421) since it cannot find the next command; if it does not,
    the session must go on normally."""
    with setup_conn(srv.port, "rcpt") as c:
        r = c.expect(line, "501 5.")
        check_enhanced(c, r)
        more = c.pending(0.3)
        if more:
            if not more.startswith(b"421 4."):
                c.fail("after 501: %r" % more)
            c.wait_closed(5)
        else:
            c.expect("HELP", "214")
            c.expect("NOOP", "250 2.0.0")
