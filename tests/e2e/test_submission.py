# SPDX-License-Identifier: MIT
"""Submission end to end (RFC 6409, RFC 8314): what each listener role
offers and refuses, accounts and their Maildirs, `tern user` with a
running server, relaying for authenticated accounts, which sender
addresses an account may use, the Received line of each kind of session,
and real mail clients (Python smtplib, swaks, curl, msmtp) verifying the
test CA.

Every server here comes from the sub_server fixture (conftest.py): an mx,
a submission and a submissions listener on 127.0.0.1, domain example.org,
accounts alice@example.org and bob@example.org (tlslib.PASSWORDS),
relay_from 192.0.2.0/24 so that the tests' 127.0.0.1 is a stranger,
auth_delay_max 0.
"""

import re
import smtplib
import time

import pytest

from relaylib import relay_config
from sinklib import free_port_on
from ternlib import maildir_files, split_delivered, wait_files
from tlslib import (ALICE, BOB, PASSWORDS, auth_plain, client_context,
                    curl, ehlo_keywords, make_message, msmtp, plain_blob,
                    send_mail, swaks, wait_subject)

DEFAULT_MECHS = {"PLAIN", "LOGIN", "SCRAM-SHA-256"}
ALL_MECHS = "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"


def received_of(path):
    """(Return-Path, unfolded Received, rest) of a delivered file."""
    return split_delivered(path.read_bytes())


def check_received(received, with_, tls=None):
    """Received has `with <with_>` (RFC 3848) and, for a TLS session, the
    comment (using <version> with cipher <cipher>) naming what the client
    negotiated; tls None: no such comment."""
    assert re.search(r"\bwith %s\b" % re.escape(with_), received), \
        "Received lacks 'with %s': %s" % (with_, received)
    if tls is None:
        assert "using TLS" not in received, \
            "a clear-text session claims TLS: %s" % received
    else:
        want = "(using %s with cipher %s)" % tls
        assert want in received, "Received lacks %r: %s" % (want, received)


def tls_of(conn):
    return conn.tls.version(), conn.tls.cipher()[0]


def one_delivered(maildir, subject, timeout=15.0):
    files = wait_subject(maildir, subject, timeout)
    assert len(files) == 1, "%d files with Subject %r in %s (want 1): %r" % (
        len(files), subject, maildir, maildir_files(maildir))
    return files[0]


# ---------------------------------------------------------------------------
# listener roles

def test_mx_offers_starttls_never_auth(sub_server):
    srv = sub_server()
    with srv.plain("mx") as c:
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kw, "mx EHLO lacks STARTTLS: %r" % kw
        assert "AUTH" not in kw, "mx offers AUTH: %r" % kw
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        if not (r.starts("502 5.5.1") or r.starts("503")):
            c.fail("AUTH on mx: want 502 5.5.1 or 503, got %r" % str(r))
        c.expect("NOOP", "250")
    c, r = srv.starttls("mx")
    with c:
        kw = ehlo_keywords(r)
        assert "AUTH" not in kw, "mx offers AUTH inside TLS: %r" % kw
        assert "STARTTLS" not in kw, "STARTTLS offered inside TLS: %r" % kw
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        if r.code not in (502, 503):
            c.fail("AUTH on mx inside TLS: want 502/503, got %r" % str(r))


@pytest.mark.parametrize("tls", [False, True])
def test_mx_accepts_local_mail_without_auth(sub_server, tls):
    srv = sub_server()
    subject = "mx-local-%s" % tls
    if tls:
        c, _ = srv.starttls("mx")
    else:
        c = srv.plain("mx")
        c.ehlo()
    with c:
        send_mail(c, "someone@elsewhere.test", [ALICE],
                  make_message("someone@elsewhere.test", ALICE, subject))
        negotiated = tls_of(c) if tls else None
        c.expect("QUIT", "221")
    f = one_delivered(srv.account_maildir(ALICE), subject)
    rp, received, _ = received_of(f)
    assert rp == b"<someone@elsewhere.test>", rp
    check_received(received, "ESMTPS" if tls else "ESMTP", negotiated)


@pytest.mark.parametrize("tls", [False, True])
def test_mx_refuses_relay_to_strangers(sub_server, tls):
    srv = sub_server()
    if tls:
        c, _ = srv.starttls("mx")
    else:
        c = srv.plain("mx")
        c.ehlo()
    with c:
        c.expect("MAIL FROM:<%s>" % ALICE, "250")
        c.expect("RCPT TO:<bob@remote.test>", "550 5.7.1")
        c.expect("RCPT TO:<%s>" % BOB, "250")


def test_submission_in_clear(sub_server):
    """Before STARTTLS: STARTTLS offered, AUTH neither offered nor
    accepted (538 5.7.11, RFC 4954 §6), MAIL refused (530 5.7.0)."""
    srv = sub_server()
    with srv.plain("submission") as c:
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kw, "submission EHLO lacks STARTTLS: %r" % kw
        assert "AUTH" not in kw, "AUTH advertised in clear: %r" % kw
        c.expect("AUTH PLAIN " + "AGFsaWNlQGV4YW1wbGUub3JnAHg=", "538 5.7.11")
        c.expect("AUTH LOGIN", "538 5.7.11")
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        c.expect("NOOP", "250")
        # and the password did not get anywhere in clear: still unknown
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")


@pytest.mark.parametrize("mechs", [None, ALL_MECHS, "PLAIN", "SCRAM-SHA-256 PLAIN"])
def test_submission_after_starttls(sub_server, mechs):
    cfg = {} if mechs is None else {"auth_mechanisms": mechs}
    srv = sub_server(**cfg)
    want = DEFAULT_MECHS if mechs is None else set(mechs.split())
    c, r = srv.starttls("submission")
    with c:
        kw = ehlo_keywords(r)
        assert "STARTTLS" not in kw, "STARTTLS offered inside TLS: %r" % kw
        assert "AUTH" in kw, "no AUTH after STARTTLS: %r" % kw
        got = {m.upper() for m in kw["AUTH"]}
        assert got == want, "AUTH %r, want %r" % (sorted(got), sorted(want))
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        r = c.cmd("RCPT TO:<%s>" % BOB)
        if r.code not in (503, 530):
            c.fail("RCPT without MAIL: want 503 or 530, got %r" % str(r))
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        if not r.starts("235 2.7.0"):
            c.fail("AUTH PLAIN: want 235 2.7.0, got %r" % str(r))
        c.expect("MAIL FROM:<%s>" % ALICE, "250")
        c.expect("RCPT TO:<%s>" % BOB, "250")


def test_submissions_is_tls_from_the_first_byte(sub_server):
    srv = sub_server()
    c, r = srv.implicit()
    with c:
        assert c.greeting.starts("220 "), str(c.greeting)
        kw = ehlo_keywords(r)
        assert "STARTTLS" not in kw, "STARTTLS offered on submissions: %r" % kw
        assert {m.upper() for m in kw.get("AUTH", [])} == DEFAULT_MECHS, kw
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        c.expect("STARTTLS", "503")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        if not r.starts("235 2.7.0"):
            c.fail("AUTH PLAIN: want 235 2.7.0, got %r" % str(r))
        c.expect("MAIL FROM:<%s>" % ALICE, "250")


def test_submissions_does_not_speak_clear_text(sub_server):
    """A clear-text client on the submissions port gets no greeting, and
    its EHLO is never answered with SMTP."""
    srv = sub_server()
    c = srv.plain("submissions", greet=False, timeout=5)
    with c:
        early = c.pending(1.0)
        assert not early.startswith(b"220"), \
            "clear-text greeting on submissions: %r" % early
        try:
            c.send_line("EHLO client.example.org")
        except OSError:
            return
        got = c.wait_closed(15)
        assert b"250" not in got and b"220" not in got, \
            "SMTP in clear on submissions: %r" % got[:200]
    srv.assert_alive()


# ---------------------------------------------------------------------------
# accounts: where mail goes

def test_account_maildir_layout_and_delimiter(sub_server):
    srv = sub_server()
    with srv.plain("mx") as c:
        c.ehlo()
        for i, rcpt in enumerate([ALICE, "alice+tag@example.org",
                                  "alice+a+b@example.org",
                                  "alice@EXAMPLE.ORG"]):
            send_mail(c, "x@elsewhere.test", [rcpt],
                      make_message("x@elsewhere.test", rcpt, "layout-%d" % i))
        c.expect("MAIL FROM:<x@elsewhere.test>", "250")
        c.expect("RCPT TO:<nosuch@example.org>", "550 5.1.1")
        c.expect("RCPT TO:<nosuch+tag@example.org>", "550 5.1.1")
        c.expect("RCPT TO:<bob+x@example.org>", "250")
        c.expect("RSET", "250")
    md = srv.state_dir / "mail" / "example.org" / "alice" / "Maildir"
    assert md == srv.account_maildir(ALICE)
    files = wait_files(md, 4)
    assert len(files) == 4, "alice's Maildir %s has %d files, want 4" % (
        md, len(files))
    for i in range(4):
        assert len(wait_subject(md, "layout-%d" % i, 1)) == 1, i
    assert maildir_files(srv.account_maildir(BOB)) == []


def test_account_with_its_own_maildir(sub_server, tmp_path):
    """`tern user add --maildir DIR`: the account's mail goes to DIR, with
    and without an extension, and nothing to the default place."""
    srv = sub_server()
    own = tmp_path / "carol-mail" / "Maildir"
    r = srv.user_cmd("add", "carol@example.org", "--maildir", str(own),
                     "--password-stdin", password="carol-pw-1")
    assert r.returncode == 0, r.out + r.err
    deadline = time.monotonic() + 5
    with srv.plain("mx") as c:
        c.ehlo()
        # the server reads the accounts file again within a second
        while True:
            c.cmd("MAIL FROM:<x@elsewhere.test>")
            r = c.cmd("RCPT TO:<carol@example.org>")
            c.expect("RSET", "250")
            if r.starts("250") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.starts("250"), str(r)
        for i, rcpt in enumerate(["carol@example.org",
                                  "carol+x@example.org"]):
            send_mail(c, "x@elsewhere.test", [rcpt],
                      make_message("x@elsewhere.test", rcpt, "own-%d" % i))
    for i in range(2):
        assert len(wait_subject(own, "own-%d" % i)) == 1, i
    assert maildir_files(srv.account_maildir("carol@example.org")) == []


def test_same_local_part_in_two_domains(sub_server):
    accounts = {"alice@a.example": "pw-a-111111", "alice@b.example": "pw-b-222222"}
    srv = sub_server(accounts=accounts, domain=["a.example", "b.example"])
    with srv.plain("mx") as c:
        c.ehlo()
        for addr in accounts:
            send_mail(c, "x@elsewhere.test", [addr],
                      make_message("x@elsewhere.test", addr, "to " + addr))
    for addr in accounts:
        md = srv.account_maildir(addr)
        assert len(wait_subject(md, "to " + addr)) == 1, addr
        assert len(wait_files(md, 2, timeout=0.5)) == 1, \
            "%s got the other domain's mail" % addr
    assert srv.account_maildir("alice@a.example") != \
        srv.account_maildir("alice@b.example")
    for addr, pw in accounts.items():
        other = [p for a, p in accounts.items() if a != addr][0]
        c, _ = srv.implicit()
        with c:
            c.expect("AUTH PLAIN " + plain_blob(addr, other),
                     "535 5.7.8")
            r = auth_plain(c, addr, pw)
            if not r.starts("235"):
                c.fail("AUTH as %s: %r" % (addr, str(r)))


# ---------------------------------------------------------------------------
# tern user, and a running server picking up changes

def test_user_command_list_and_storage(sub_server):
    srv = sub_server(start=False)
    r = srv.user_cmd("list")
    assert r.returncode == 0, r.err
    for addr in (ALICE, BOB):
        assert addr in r.out, "`tern user list` lacks %s:\n%s" % (addr, r.out)
    path = srv.accounts_path()
    assert path.is_file(), "no accounts file at %s" % path
    data = path.read_bytes()
    for addr, pw in PASSWORDS.items():
        assert pw.encode() not in data, "the accounts file holds a password"
        assert pw not in r.out + r.err, "`tern user list` shows a password"
    r = srv.user_cmd("del", BOB)
    assert r.returncode == 0, r.err
    r = srv.user_cmd("list")
    assert BOB not in r.out and ALICE in r.out, r.out
    srv.start()
    c, _ = srv.implicit()
    with c:
        c.expect("AUTH PLAIN " + plain_blob(BOB, PASSWORDS[BOB]),
                 "535 5.7.8")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        if not r.starts("235 2.7.0"):
            c.fail("AUTH as alice: %r" % str(r))


def auth_code(srv, addr, pw):
    c, _ = srv.implicit()
    with c:
        return auth_plain(c, addr, pw).code


def rcpt_code(srv, addr):
    with srv.plain("mx") as c:
        c.ehlo()
        c.expect("MAIL FROM:<x@elsewhere.test>", "250")
        return c.cmd("RCPT TO:<%s>" % addr).code


def poll(fn, want, timeout=5.0):
    """Calls fn() until it returns want or timeout; returns the last value
    and the seconds it took."""
    t0 = time.monotonic()
    while True:
        got = fn()
        if got == want or time.monotonic() - t0 > timeout:
            return got, time.monotonic() - t0
        time.sleep(0.2)


def test_accounts_change_without_restart(sub_server):
    srv = sub_server(accounts={ALICE: PASSWORDS[ALICE]})
    carol, carol_pw = "carol@example.org", "Carol-pw-55aa11"
    assert rcpt_code(srv, carol) == 550
    assert auth_code(srv, carol, carol_pw) == 535
    pid = srv.proc.pid

    r = srv.user_cmd("add", carol, "--password-stdin", password=carol_pw)
    assert r.returncode == 0, r.err
    got, took = poll(lambda: auth_code(srv, carol, carol_pw), 235)
    assert got == 235, "AUTH as a new account: %d after %.1fs" % (got, took)
    assert rcpt_code(srv, carol) == 250, "RCPT to a new account refused"

    new_pw = "Alice-new-pw-0099"
    r = srv.user_cmd("passwd", ALICE, "--password-stdin", password=new_pw)
    assert r.returncode == 0, r.err
    got, took = poll(lambda: auth_code(srv, ALICE, new_pw), 235)
    assert got == 235, "new password: %d after %.1fs" % (got, took)
    assert auth_code(srv, ALICE, PASSWORDS[ALICE]) == 535, \
        "the old password still works"

    r = srv.user_cmd("del", carol)
    assert r.returncode == 0, r.err
    got, took = poll(lambda: auth_code(srv, carol, carol_pw), 535)
    assert got == 535, "AUTH as a deleted account: %d after %.1fs" % (got, took)
    assert rcpt_code(srv, carol) == 550, "RCPT to a deleted account accepted"
    assert srv.proc.pid == pid and srv.running(), "the server restarted"
    text = srv.stderr_text()
    for pw in (carol_pw, new_pw, PASSWORDS[ALICE]):
        assert pw not in text, "a password is in the server's log"


# ---------------------------------------------------------------------------
# relaying for accounts

def test_relay_after_auth_only(sub_server, smtp_sink, relay_dns):
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                     "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = sub_server(**relay_config(dns, port, relay_from="192.0.2.0/24"))
    # a stranger: on mx, relaying is refused; on submission, MAIL needs AUTH
    with srv.plain("mx") as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % ALICE, "250")
        c.expect("RCPT TO:<carol@remote.test>", "550 5.7.1")
    c, _ = srv.starttls("submission")
    with c:
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
    # alice, authenticated
    c = srv.login(ALICE, role="submission")
    with c:
        send_mail(c, ALICE, ["bob@remote.test"],
                  make_message(ALICE, "bob@remote.test", "relayed"))
        c.expect("QUIT", "221")
    msgs = sink.wait_messages(1, timeout=20)
    assert len(msgs) == 1, "sink got %d messages\n%s" % (
        len(msgs), srv.stderr_text()[-3000:])
    m = msgs[0]
    assert m.mail_from == ALICE, m.mail_from
    assert m.rcpt_tos == ["bob@remote.test"], m.rcpt_tos
    assert b"Subject: relayed\r\n" in m.data
    time.sleep(1.0)
    assert len(sink.messages()) == 1, "the refused message reached the sink"


# ---------------------------------------------------------------------------
# sender addresses an account may use

SENDERS = [
    (ALICE, ALICE, True),
    (ALICE, "alice+x@example.org", True),
    (ALICE, "", True),
    (ALICE, "info@example.org", True),          # alias of hers
    (ALICE, "anyone@example.net", True),         # send_as @example.net
    (ALICE, "boss@example.com", True),           # send_as one address
    (ALICE, BOB, False),
    (ALICE, "bob+x@example.org", False),
    (ALICE, "other@example.com", False),
    (ALICE, "nosuch@example.org", False),
    (BOB, BOB, True),
    (BOB, "info@example.org", False),
    (BOB, "boss@example.com", False),
    (BOB, "x@example.net", False),
]


def test_sender_ownership(sub_server):
    """An authenticated account may send as itself (with an extension),
    as <>, as an alias that points to it and as what send_as grants it;
    any other sender gets 553 5.7.1. Every allowed case delivers."""
    srv = sub_server(alias=["info: alice@example.org"],
                     send_as=["alice@example.org @example.net",
                              "alice@example.org boss@example.com"])
    wrong = []
    for who, sender, ok in SENDERS:
        c = srv.login(who)
        with c:
            negotiated = tls_of(c)
            r = c.cmd("MAIL FROM:<%s>" % sender)
            if ok != r.starts("250") or (not ok and not r.starts("553 5.7.1")):
                wrong.append("%s as MAIL FROM:<%s>: want %s, got %r"
                             % (who, sender, "250" if ok else "553 5.7.1",
                                str(r)))
                continue
            if not ok:
                continue
            subject = "from %s as <%s>" % (who, sender)
            c.expect("RCPT TO:<%s>" % BOB, "250")
            c.expect("DATA", "354")
            c.send(make_message(sender or "mailer-daemon@example.org", BOB,
                                subject) + b".\r\n")
            c.expect(None, "250")
        f = one_delivered(srv.account_maildir(BOB), subject)
        rp, received, _ = received_of(f)
        assert rp == ("<%s>" % sender).encode(), rp
        check_received(received, "ESMTPSA", negotiated)
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------
# Received: the kind of session

@pytest.mark.parametrize("kind", ["mx-clear", "mx-starttls", "submission",
                                  "submissions"])
def test_received_with_protocol(sub_server, kind):
    srv = sub_server()
    subject = "received-" + kind
    sender = ALICE
    if kind == "mx-clear":
        c = srv.plain("mx")
        c.ehlo()
        sender = "x@elsewhere.test"
    elif kind == "mx-starttls":
        c, _ = srv.starttls("mx")
        sender = "x@elsewhere.test"
    else:
        c = srv.login(ALICE, role=kind)
    with c:
        send_mail(c, sender, [BOB], make_message(sender, BOB, subject))
        tls = None if kind == "mx-clear" else tls_of(c)
    f = one_delivered(srv.account_maildir(BOB), subject)
    _, received, _ = received_of(f)
    want = {"mx-clear": "ESMTP", "mx-starttls": "ESMTPS"}.get(kind, "ESMTPSA")
    check_received(received, want, tls)
    assert re.search(r"\bby mx\.test\b", received), received


# ---------------------------------------------------------------------------
# real clients

def delivered_from_client(srv, subject, r):
    files = wait_subject(srv.account_maildir(BOB), subject)
    assert len(files) == 1, "nothing delivered (exit %d):\n%s\n--- server ---\n%s" % (
        r.returncode, r.text[-3000:], srv.stderr_text()[-2000:])
    rp, received, _ = received_of(files[0])
    assert rp == ("<%s>" % ALICE).encode(), rp
    assert re.search(r"\bwith ESMTPSA\b", received), received
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+\)", received), received


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
@pytest.mark.parametrize("mech", [None, "PLAIN", "LOGIN", "CRAM-MD5"])
def test_client_smtplib(sub_server, test_ca, mode, mech):
    srv = sub_server(auth_mechanisms=ALL_MECHS)
    ctx = client_context(test_ca.ca_pem)
    subject = "smtplib-%s-%s" % (mode, mech)
    if mode == "starttls":
        s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=20)
        s.starttls(context=ctx)
    else:
        s = smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"],
                             timeout=20, context=ctx)
    try:
        s.ehlo("client.example.org")
        if mech is None:
            s.login(ALICE, PASSWORDS[ALICE])       # smtplib's own choice
        else:
            s.user, s.password = ALICE, PASSWORDS[ALICE]
            fn = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login,
                  "CRAM-MD5": s.auth_cram_md5}[mech]
            code, msg = s.auth(mech, fn, initial_response_ok=(mech != "LOGIN"))
            assert code == 235, (code, msg)
        refused = s.sendmail(ALICE, [BOB], make_message(ALICE, BOB, subject))
        assert refused == {}, refused
        s.quit()
    finally:
        s.close()
    files = wait_subject(srv.account_maildir(BOB), subject)
    assert len(files) == 1
    _, received, _ = received_of(files[0])
    assert re.search(r"\bwith ESMTPSA\b", received), received


def test_client_smtplib_wrong_password(sub_server, test_ca):
    srv = sub_server()
    s = smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], timeout=20,
                         context=client_context(test_ca.ca_pem))
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "not-the-password")
        assert e.value.smtp_code == 535, e.value
    finally:
        s.close()


@pytest.mark.parametrize("mode", ["tls", "tlsc"])
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_client_swaks(sub_server, test_ca, mode, mech):
    srv = sub_server(auth_mechanisms=ALL_MECHS)
    port = srv.ports["submission" if mode == "tls" else "submissions"]
    subject = "swaks-%s-%s" % (mode, mech)
    r = swaks(port, ALICE, PASSWORDS[ALICE], ALICE, BOB, subject,
              test_ca.ca_pem, mode=mode, mech=mech)
    assert r.returncode == 0, "swaks exit %d:\n%s" % (r.returncode, r.text[-3000:])
    assert re.search(r"<~ +235 2\.7\.0", r.text), r.text[-3000:]
    delivered_from_client(srv, subject, r)


@pytest.mark.parametrize("url", ["smtps", "smtp"])
def test_client_curl(sub_server, test_ca, tmp_path, url):
    srv = sub_server()
    port = srv.ports["submissions" if url == "smtps" else "submission"]
    subject = "curl-" + url
    path = tmp_path / "msg.eml"
    path.write_bytes(make_message(ALICE, BOB, subject))
    r = curl("%s://127.0.0.1:%d" % (url, port), ALICE, PASSWORDS[ALICE],
             ALICE, BOB, path, test_ca.ca_pem)
    assert r.returncode == 0, "curl exit %d:\n%s" % (r.returncode, r.text)
    delivered_from_client(srv, subject, r)


@pytest.mark.parametrize("starttls", [True, False])
@pytest.mark.parametrize("mech", ["scram-sha-256", "plain", "login"])
def test_client_msmtp(sub_server, test_ca, tmp_path, starttls, mech):
    srv = sub_server()
    port = srv.ports["submission" if starttls else "submissions"]
    subject = "msmtp-%s-%s" % (starttls, mech)
    r = msmtp(tmp_path, port, ALICE, PASSWORDS[ALICE], ALICE, BOB,
              make_message(ALICE, BOB, subject), test_ca.ca_pem,
              starttls=starttls, mech=mech)
    assert r.returncode == 0, "msmtp exit %d:\n%s" % (r.returncode, r.text[-3000:])
    assert "--> AUTH %s" % mech.upper() in r.text, r.text[-3000:]
    delivered_from_client(srv, subject, r)


def test_clients_wrong_password_deliver_nothing(sub_server, test_ca, tmp_path):
    srv = sub_server()
    bad = "wrong-" + PASSWORDS[ALICE]
    path = tmp_path / "msg.eml"
    path.write_bytes(make_message(ALICE, BOB, "never"))
    runs = {
        "swaks": swaks(srv.ports["submissions"], ALICE, bad, ALICE, BOB,
                       "never", test_ca.ca_pem, mode="tlsc"),
        "curl": curl("smtps://127.0.0.1:%d" % srv.ports["submissions"], ALICE,
                     bad, ALICE, BOB, path, test_ca.ca_pem),
        "msmtp": msmtp(tmp_path, srv.ports["submission"], ALICE, bad, ALICE,
                       BOB, make_message(ALICE, BOB, "never"), test_ca.ca_pem),
    }
    for name, r in runs.items():
        assert r.returncode != 0, "%s with a wrong password exited 0:\n%s" % (
            name, r.text[-2000:])
        assert "535" in r.text or name == "curl", "%s: no 535:\n%s" % (
            name, r.text[-2000:])
    time.sleep(1.0)
    assert maildir_files(srv.account_maildir(BOB)) == []
    assert len(srv.auth_failed_lines()) >= 3, srv.stderr_text()[-3000:]


@pytest.mark.parametrize("client", ["swaks", "curl", "msmtp"])
def test_clients_refuse_a_certificate_they_cannot_verify(sub_server, test_ca,
                                                         tmp_path, client):
    """The clients really verify: trusting only the other CA, each one
    refuses the server (so their passing runs above mean a verified
    certificate)."""
    srv = sub_server()
    path = tmp_path / "msg.eml"
    path.write_bytes(make_message(ALICE, BOB, "unverified"))
    if client == "swaks":
        r = swaks(srv.ports["submissions"], ALICE, PASSWORDS[ALICE], ALICE,
                  BOB, "unverified", test_ca.ca2_pem, mode="tlsc")
    elif client == "curl":
        r = curl("smtps://127.0.0.1:%d" % srv.ports["submissions"], ALICE,
                 PASSWORDS[ALICE], ALICE, BOB, path, test_ca.ca2_pem)
    else:
        r = msmtp(tmp_path, srv.ports["submission"], ALICE, PASSWORDS[ALICE],
                  ALICE, BOB, make_message(ALICE, BOB, "unverified"),
                  test_ca.ca2_pem)
    assert r.returncode != 0, "%s accepted an unverifiable certificate" % client
    assert maildir_files(srv.account_maildir(BOB)) == []
