# SPDX-License-Identifier: MIT
"""SMTP AUTH (RFC 4954) end to end: every mechanism (PLAIN RFC 4616,
LOGIN, CRAM-MD5 RFC 2195, SCRAM-SHA-256 RFC 5802/7677 with the client in
tlslib checking the server's signature), every refusal and its code, the
12,288-octet AUTH line, auth_failures_max, the log line fail2ban reads,
and auth_delay_max.

Servers come from the sub_server fixture (conftest.py) with all four
mechanisms enabled unless a test says otherwise.
"""

import re
import socket
import time

import pytest

from ternlib import Closed, split_delivered
from tlslib import (ALICE, BOB, PASSWORDS, ScramSha256, auth, auth_login,
                    auth_plain, auth_scram, b64, client_context,
                    make_message, plain_blob, send_mail, tls_connect, unb64,
                    wait_subject)

ALL_MECHS = "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"
MECHS = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
CLIENT_RE = re.compile(r"\bclient=127\.0\.0\.1(?::\d+)?(?=\s|$|[,;\]])")


def session(srv, role):
    if role == "submissions":
        c, _ = srv.implicit()
    else:
        c, _ = srv.starttls(role)
    return c


def want(c, r, prefix, what):
    if not r.starts(prefix):
        c.fail("%s: want %r, got %r" % (what, prefix, str(r)))


# ---------------------------------------------------------------------------
# success

MECH_WAYS = ["PLAIN", "PLAIN-challenge", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256",
             "SCRAM-SHA-256-challenge"]


def do_auth(c, way, user, password):
    if way == "PLAIN-challenge":
        return auth_plain(c, user, password, initial=False)
    if way == "SCRAM-SHA-256-challenge":
        return auth_scram(c, user, password, initial=False)
    return auth(c, way, user, password)


@pytest.mark.parametrize("role", ["submission", "submissions"])
@pytest.mark.parametrize("way", MECH_WAYS)
def test_auth_succeeds(sub_server, role, way):
    srv = sub_server(auth_mechanisms=ALL_MECHS)
    subject = "auth-%s-%s" % (role, way)
    c = session(srv, role)
    with c:
        r = do_auth(c, way, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH " + way)
        send_mail(c, ALICE, [BOB], make_message(ALICE, BOB, subject))
        c.expect("QUIT", "221")
    files = wait_subject(srv.account_maildir(BOB), subject)
    assert len(files) == 1
    _, received, _ = split_delivered(files[0].read_bytes())
    assert re.search(r"\bwith ESMTPSA\b", received), received


def test_auth_default_mechanisms_exclude_cram_md5(sub_server):
    srv = sub_server()
    c = session(srv, "submissions")
    with c:
        c.expect("AUTH CRAM-MD5", "504 5.5.4")
        r = auth_scram(c, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH SCRAM-SHA-256")


# ---------------------------------------------------------------------------
# refusals

@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_auth_bad_credentials(sub_server, mech, who):
    srv = sub_server(auth_mechanisms=ALL_MECHS)
    user, pw = (ALICE, "not-" + PASSWORDS[ALICE]) if who == "wrong-password" \
        else ("nobody@example.org", PASSWORDS[ALICE])
    c = session(srv, "submissions")
    with c:
        r = auth(c, mech, user, pw)
        want(c, r, "535 5.7.8", "AUTH %s %s" % (mech, who))
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        r = auth(c, mech, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH %s after a failure" % mech)


UNKNOWN_MECHS = ["AUTH FOO", "AUTH DIGEST-MD5", "AUTH GSSAPI",
                 "AUTH XOAUTH2 dXNlcj1h", "AUTH CRAM-MD5", "AUTH PLAINX",
                 "AUTH PLAI"]


def test_auth_unknown_mechanism(sub_server):
    """504 5.5.4 for a mechanism tern lacks or does not offer (CRAM-MD5
    here)."""
    srv = sub_server(auth_mechanisms="PLAIN LOGIN SCRAM-SHA-256", errors_max=50)
    c = session(srv, "submissions")
    with c:
        for line in UNKNOWN_MECHS:
            c.expect(line, "504 5.5.4")
            c.expect("NOOP", "250")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH PLAIN after 504")


def test_auth_without_mechanism(sub_server):
    srv = sub_server()
    c = session(srv, "submissions")
    with c:
        c.expect("AUTH", "501")
        c.expect("NOOP", "250")


BAD_BASE64 = ["!!!!", "YWJj=ZGVm", "a", "====", "Zm9v\x01"]


@pytest.mark.parametrize("how", ["initial", "plain-response", "login-user",
                                 "login-password", "scram-first"])
def test_auth_bad_base64(sub_server, how):
    srv = sub_server(auth_mechanisms=ALL_MECHS, auth_failures_max=20,
                     errors_max=50)
    c = session(srv, "submissions")
    with c:
        for junk in BAD_BASE64:
            if how == "initial":
                c.send_line("AUTH PLAIN " + junk)
            elif how == "plain-response":
                c.expect("AUTH PLAIN", "334")
                c.send_line(junk)
            elif how == "login-user":
                c.expect("AUTH LOGIN", "334")
                c.send_line(junk)
            elif how == "login-password":
                c.expect("AUTH LOGIN", "334")
                c.expect(b64(ALICE), "334")
                c.send_line(junk)
            else:
                c.send_line("AUTH SCRAM-SHA-256 " + junk)
            r = c.read_reply()
            want(c, r, "501 5.5.2", "bad base64 %r (%s)" % (junk, how))
            c.expect_nothing_more(0.3)
            c.expect("NOOP", "250")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH after bad base64")


CANCEL_AT = ["plain", "login-user", "login-password", "cram-md5",
             "scram-first", "scram-final"]


def test_auth_cancelled_with_star(sub_server):
    """RFC 4954 §4: "*" cancels the exchange at any step: 501."""
    srv = sub_server(auth_mechanisms=ALL_MECHS, errors_max=50,
                     auth_failures_max=20)
    c = session(srv, "submissions")
    with c:
        for at in CANCEL_AT:
            if at == "plain":
                c.expect("AUTH PLAIN", "334")
            elif at == "login-user":
                c.expect("AUTH LOGIN", "334")
            elif at == "login-password":
                c.expect("AUTH LOGIN", "334")
                c.expect(b64(ALICE), "334")
            elif at == "cram-md5":
                c.expect("AUTH CRAM-MD5", "334")
            elif at == "scram-first":
                c.expect("AUTH SCRAM-SHA-256", "334")
            else:
                sc = ScramSha256(ALICE, PASSWORDS[ALICE])
                r = c.expect("AUTH SCRAM-SHA-256 " + b64(sc.first()), "334")
                sc.final(unb64(r.first[4:].strip()).decode())
            r = c.cmd("*")
            if not (r.starts("501 5.0.0") or r.starts("501 5.5.2")):
                c.fail("'*' at %s: want 501 5.0.0 or 501 5.5.2, got %r"
                       % (at, str(r)))
            c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH after cancelled ones")


def test_auth_twice(sub_server):
    """503 5.5.1 for any AUTH once authenticated."""
    srv = sub_server()
    c = srv.login(ALICE)
    with c:
        for second in ["AUTH PLAIN %s" % plain_blob(ALICE, PASSWORDS[ALICE]),
                       "AUTH LOGIN", "AUTH SCRAM-SHA-256", "AUTH FOO"]:
            c.expect(second, "503 5.5.1")
        c.expect("MAIL FROM:<%s>" % ALICE, "250")


def test_auth_state_ends_with_session(sub_server):
    """A new session is not authenticated."""
    srv = sub_server()
    c = srv.login(ALICE)
    c.expect("QUIT", "221")
    c.close()
    c = session(srv, "submissions")
    with c:
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")


# ---------------------------------------------------------------------------
# the AUTH line: up to 12,288 octets (RFC 4954 §4)

AUTH_LINE_MAX = 12288


def long_plain_line(total, garbage=False):
    """An AUTH PLAIN line with an initial response, `total` octets with
    CRLF (total - 13 must be a multiple of 4): a well-formed PLAIN message
    with a long wrong password, or (garbage) random octets."""
    head = "AUTH PLAIN "
    n64 = total - len(head) - 2
    assert n64 % 4 == 0, total
    raw = n64 // 4 * 3
    if garbage:
        blob = b64(bytes((i * 7 + 1) % 251 + 1 for i in range(raw)))
    else:
        prefix = "\0%s\0" % ALICE
        blob = b64(prefix + "p" * (raw - len(prefix)))
    assert len(blob) == n64
    line = head + blob
    assert len(line) + 2 == total
    return line


@pytest.mark.parametrize("garbage", [False, True], ids=["plain", "garbage"])
def test_auth_long_line_within_limit(sub_server, garbage):
    """AUTH lines of 1,025, 4,097 and 12,285 octets (the longest a base64
    initial response can make within 12,288): a reply (535 for a
    well-formed PLAIN with a wrong password, or 501), never a cut."""
    srv = sub_server(auth_failures_max=10)
    c = session(srv, "submissions")
    with c:
        for total in (1025, 4097, AUTH_LINE_MAX - 3):
            c.send_line(long_plain_line(total, garbage))
            try:
                r = c.read_reply(15)
            except Exception:
                c.fail("no reply to a %d-octet AUTH line" % total)
            if not (r.starts("535 5.7.8") or r.starts("501")):
                c.fail("%d-octet AUTH PLAIN: want 535 5.7.8 or 501, got %r"
                       % (total, str(r)))
            c.expect_nothing_more(0.3)
            c.expect("NOOP", "250")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH after long lines")


def test_auth_line_over_limit(sub_server):
    """Longer AUTH lines: 500 or 501, the rest of the line is dropped and
    the session goes on in step."""
    srv = sub_server(auth_failures_max=10)
    c = session(srv, "submissions")
    with c:
        for total in (AUTH_LINE_MAX + 1, AUTH_LINE_MAX + 5, 65537, 200001):
            c.send_line(long_plain_line(total))
            r = c.read_reply(15)
            if r.code not in (500, 501):
                c.fail("%d-octet AUTH line: want 500 or 501, got %r"
                       % (total, str(r)))
            c.expect_nothing_more(0.5)
            c.expect("NOOP", "250")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        want(c, r, "235 2.7.0", "AUTH after over-long lines")


@pytest.mark.parametrize("n64,ok", [(AUTH_LINE_MAX - 4, True),
                                    (AUTH_LINE_MAX + 4, False)])
def test_auth_long_response_line(sub_server, n64, ok):
    """The response to a 334 may be as long as the AUTH line."""
    srv = sub_server(auth_failures_max=10)
    c = session(srv, "submissions")
    with c:
        c.expect("AUTH LOGIN", "334")
        c.expect(b64(ALICE), "334")
        c.send_line(b64("q" * (n64 // 4 * 3)))
        r = c.read_reply(15)
        if ok and not r.starts("535 5.7.8") and not r.starts("501"):
            c.fail("%d-octet response: want 535 5.7.8, got %r" % (n64 + 2, str(r)))
        if not ok and r.code not in (500, 501):
            c.fail("%d-octet response: want 500/501, got %r" % (n64 + 2, str(r)))
        c.expect_nothing_more(0.3)
        c.expect("NOOP", "250")


# ---------------------------------------------------------------------------
# auth_failures_max and the log

def read_failure_end(c, n, limit):
    """After failure n of limit: 535 5.7.8 before the limit; at it 421
    4.7.0 (alone or after a 535) and the connection closes."""
    r = c.read_reply(10)
    if n < limit:
        want(c, r, "535 5.7.8", "failure %d of %d" % (n, limit))
        return
    if r.starts("535"):
        try:
            r = c.read_reply(10)
        except (socket.timeout, Closed):
            c.fail("failure %d of auth_failures_max %d: 535 and then no "
                   "421 4.7.0" % (n, limit))
    want(c, r, "421 4.7.0", "failure %d of %d" % (n, limit))
    rest = c.wait_closed(5)
    if rest:
        c.fail("bytes after 421: %r" % rest)


@pytest.mark.parametrize("limit", [None, 1, 2, 5])
def test_auth_failures_max(sub_server, limit):
    cfg = {} if limit is None else {"auth_failures_max": limit}
    n_max = 3 if limit is None else limit
    srv = sub_server(**cfg)
    bad = ["Wrong-%d-qz%d" % (i, 7 * i + 3) for i in range(1, n_max + 1)]
    c = session(srv, "submissions")
    with c:
        for i, pw in enumerate(bad, 1):
            c.send_line("AUTH PLAIN " + plain_blob(ALICE, pw))
            read_failure_end(c, i, n_max)
    # each failure is one log line with the client's address, and no
    # password (nor its base64) anywhere in the log
    deadline = time.monotonic() + 5
    while len(srv.auth_failed_lines()) < n_max and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = srv.auth_failed_lines()
    assert len(lines) == n_max, "want %d event=auth_failed lines, got:\n%s" % (
        n_max, "\n".join(lines) or srv.stderr_text()[-3000:])
    for l in lines:
        assert CLIENT_RE.search(l), "no client=127.0.0.1 in %r" % l
    text = srv.stderr_text()
    for pw in bad + [PASSWORDS[ALICE]]:
        assert pw not in text, "password %r in the log" % pw
        assert plain_blob(ALICE, pw) not in text, "AUTH blob in the log"
    # the limit is per session
    c = session(srv, "submissions")
    with c:
        want(c, auth_plain(c, ALICE, PASSWORDS[ALICE]), "235 2.7.0",
             "AUTH in a new session")


def test_auth_failures_max_counts_every_mechanism(sub_server):
    srv = sub_server(auth_mechanisms=ALL_MECHS, auth_failures_max=4)
    c = session(srv, "submissions")
    with c:
        want(c, auth_login(c, ALICE, "bad-1-x"), "535 5.7.8", "LOGIN failure")
        want(c, auth(c, "CRAM-MD5", ALICE, "bad-2-x"), "535 5.7.8", "CRAM failure")
        want(c, auth_scram(c, ALICE, "bad-3-x"), "535 5.7.8", "SCRAM failure")
        c.send_line("AUTH PLAIN " + plain_blob("nobody@example.org", "bad-4-x"))
        read_failure_end(c, 4, 4)
    assert len(srv.auth_failed_lines()) >= 4


def test_auth_failures_max_on_submission_port(sub_server):
    srv = sub_server(auth_failures_max=2)
    c, _ = srv.starttls("submission")
    with c:
        c.send_line("AUTH PLAIN " + plain_blob(ALICE, "nope-1"))
        read_failure_end(c, 1, 2)
        c.send_line("AUTH PLAIN " + plain_blob(ALICE, "nope-2"))
        read_failure_end(c, 2, 2)


# ---------------------------------------------------------------------------
# auth_delay_max

def timed_failure(c, pw):
    t0 = time.monotonic()
    c.send_line("AUTH PLAIN " + plain_blob(ALICE, pw))
    r = c.read_reply(15)
    return r, time.monotonic() - t0


def test_auth_delay(sub_server, test_ca):
    """auth_delay_max=2: the second failure from an address (another
    session) is answered after >= 1 s, later ones after at most 2 s (plus
    slack); meanwhile other sessions are served at once; another address
    is not delayed."""
    srv = sub_server(auth_delay_max=2, auth_failures_max=10)
    a = session(srv, "submissions")
    with a:
        r, took = timed_failure(a, "bad-a-1")
        want(a, r, "535 5.7.8", "first failure")
        assert took < 3.5, "first failure answered after %.2fs" % took
    other = session(srv, "submissions")
    b = session(srv, "submissions")
    with b, other:
        t0 = time.monotonic()
        b.send_line("AUTH PLAIN " + plain_blob(ALICE, "bad-b-2"))
        time.sleep(0.1)
        t1 = time.monotonic()
        other.expect("NOOP", "250")
        noop = time.monotonic() - t1
        r = b.read_reply(15)
        took = time.monotonic() - t0
        want(b, r, "535 5.7.8", "second failure")
        assert took >= 0.95, "second failure from the address answered " \
            "after %.2fs, want >= 1 s" % took
        assert took <= 2 + 1.5, "second failure took %.2fs (auth_delay_max " \
            "is 2)" % took
        assert noop < 0.7, "another session waited %.2fs for NOOP during " \
            "the delay" % noop
        r, took = timed_failure(b, "bad-b-3")
        want(b, r, "535 5.7.8", "third failure")
        assert 0.95 <= took <= 2 + 1.5, "third failure took %.2fs" % took
        # the right password still works
        r = auth_plain(b, ALICE, PASSWORDS[ALICE])
        want(b, r, "235 2.7.0", "AUTH after delayed failures")
    # a different client address has no failures yet: answered at once
    c = tls_connect(srv.ports["submissions"], client_context(test_ca.ca_pem),
                    source="127.0.0.7")
    with c:
        c.ehlo()
        r, took = timed_failure(c, "bad-c-1")
        want(c, r, "535 5.7.8", "failure from 127.0.0.7")
        assert took < 0.9, "first failure from a new address took %.2fs" % took


def test_auth_delay_zero(sub_server):
    srv = sub_server(auth_delay_max=0, auth_failures_max=10)
    c = session(srv, "submissions")
    with c:
        for i in range(5):
            r, took = timed_failure(c, "bad-%d" % i)
            want(c, r, "535 5.7.8", "failure %d" % i)
            assert took < 0.9, "failure %d took %.2fs with auth_delay_max 0" % (
                i, took)
