# SPDX-License-Identifier: MIT
"""TLS end to end: STARTTLS (RFC 3207) replies and state, the clear-text
injection of commands pipelined after STARTTLS (CVE-2011-0411 and kin),
protocol versions, the certificate chain, SNI (tls_sni), reloading the
certificate on SIGHUP, and the TLS comment in Received.

Servers come from the sub_server fixture (conftest.py); clients verify
the test CA (tlslib.TestCA) unless a test says otherwise.
"""

import os
import re
import signal
import socket
import ssl
import struct
import time

import pytest

from ternlib import split_delivered
from tlslib import (ALICE, BOB, PASSWORDS, SNI_NAMES, auth_plain,
                    client_context, ehlo_keywords, install_cert, make_message,
                    open_conn, peer_cert_info, plain_blob, send_mail,
                    tls_connect, wait_subject, wrap)

TLS_ROLES = ["mx", "submission"]          # the ones with STARTTLS


# ---------------------------------------------------------------------------
# STARTTLS replies

@pytest.mark.parametrize("role", TLS_ROLES)
def test_starttls_handshake(sub_server, test_ca, role):
    srv = sub_server()
    with srv.plain(role) as c:
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kw, kw
        r = c.expect("STARTTLS", "220 2.0.0")
        assert c.buf == b"", "bytes after 220: %r" % c.buf
        wrap(c, client_context(test_ca.ca_pem))
        assert c.tls.version() in ("TLSv1.2", "TLSv1.3"), c.tls.version()
        cn, names, serial = peer_cert_info(c.tls)
        assert serial == test_ca.server.serial, (cn, serial)
        # RFC 3207 §4.2: the client must EHLO again; the state is new
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        if not r.starts("503 5.5.1"):
            c.fail("MAIL without EHLO after STARTTLS: want 503 5.5.1, got %r"
                   % str(r))
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" not in kw, "STARTTLS offered inside TLS: %r" % kw
        c.expect("NOOP", "250")


@pytest.mark.parametrize("role", TLS_ROLES)
def test_starttls_with_argument(sub_server, test_ca, role):
    srv = sub_server()
    with srv.plain(role) as c:
        c.ehlo()
        c.expect("STARTTLS now", "501")
        c.expect("NOOP", "250")      # still in clear, still in sync
        c.expect("STARTTLS", "220")
        wrap(c, client_context(test_ca.ca_pem))
        c.ehlo()
        c.expect("NOOP", "250")


@pytest.mark.parametrize("role", TLS_ROLES + ["submissions"])
def test_second_starttls_is_refused(sub_server, role):
    srv = sub_server()
    if role == "submissions":
        c, _ = srv.implicit()
    else:
        c, _ = srv.starttls(role)
    with c:
        c.expect("STARTTLS", "503")
        c.expect("NOOP", "250")
        c.ehlo()


def test_starttls_before_ehlo_then_ehlo(sub_server, test_ca):
    """STARTTLS right after the greeting works too (RFC 3207 does not need
    EHLO first); the EHLO inside TLS is the session's first."""
    srv = sub_server()
    with srv.plain("submission") as c:
        r = c.cmd("STARTTLS")
        if r.starts("220"):
            wrap(c, client_context(test_ca.ca_pem))
            kw = ehlo_keywords(c.ehlo())
            assert "AUTH" in kw, kw
        elif not r.starts("503"):
            c.fail("STARTTLS before EHLO: want 220 (or 503), got %r" % str(r))


# ---------------------------------------------------------------------------
# commands pipelined behind STARTTLS are discarded, never run

def starttls_with_tail(srv, role, tail, ctx):
    """Sends STARTTLS and tail in one write, reads the 220, checks that
    nothing else came in clear, and goes into TLS."""
    c = srv.plain(role)
    c.ehlo()
    c.send(b"STARTTLS\r\n" + tail)
    c.expect(None, "220")
    time.sleep(0.3)          # a server that answers the tail answers now
    if c.buf:
        c.fail("clear-text reply to commands pipelined after STARTTLS: %r"
               % c.buf)
    wrap(c, ctx)
    return c


@pytest.mark.parametrize("tail", [
    b"MAIL FROM:<a@b>\r\n",
    b"AUTH PLAIN %s\r\n" % plain_blob(ALICE, PASSWORDS[ALICE]).encode(),
    b"EHLO evil.example\r\nAUTH PLAIN %s\r\nMAIL FROM:<%s>\r\n"
    % (plain_blob(ALICE, PASSWORDS[ALICE]).encode(), ALICE.encode()),
], ids=["mail", "auth", "ehlo-auth-mail"])
def test_pipelined_after_starttls_on_submission(sub_server, test_ca, tail):
    srv = sub_server()
    c = starttls_with_tail(srv, "submission", tail, client_context(test_ca.ca_pem))
    with c:
        c.send_line("EHLO client.example.org")
        r = c.read_reply()
        if not (r.code == 250 and len(r.lines) > 1
                and r.lines[0].startswith("250-")):
            c.fail("first reply inside TLS is not the EHLO reply: %r" % str(r))
        c.expect_nothing_more(0.5)
        # neither the AUTH nor the MAIL of the tail happened
        c.expect("MAIL FROM:<%s>" % ALICE, "530 5.7.0")
        r = auth_plain(c, ALICE, PASSWORDS[ALICE])
        if not r.starts("235"):
            c.fail("AUTH inside TLS: %r" % str(r))
        c.expect("MAIL FROM:<%s>" % ALICE, "250")


def test_pipelined_after_starttls_on_mx(sub_server, test_ca):
    srv = sub_server()
    c = starttls_with_tail(srv, "mx", b"RSET\r\nMAIL FROM:<a@b>\r\n",
                           client_context(test_ca.ca_pem))
    with c:
        c.send_line("EHLO client.example.org")
        r = c.read_reply()
        if not (r.code == 250 and r.lines[0].startswith("250-")):
            c.fail("first reply inside TLS is not the EHLO reply: %r" % str(r))
        c.expect_nothing_more(0.5)
        # no transaction was opened by the injected MAIL
        c.expect("RCPT TO:<%s>" % ALICE, "503 5.5.1")
        c.expect("MAIL FROM:<x@elsewhere.test>", "250")


# ---------------------------------------------------------------------------
# protocol versions

VERSIONS = [("TLSv1.3", ssl.TLSVersion.TLSv1_3, True),
            ("TLSv1.2", ssl.TLSVersion.TLSv1_2, True),
            ("TLSv1.1", ssl.TLSVersion.TLSv1_1, False),
            ("TLSv1", ssl.TLSVersion.TLSv1, False)]


def handshake(srv, role, ctx):
    if role == "submissions":
        return tls_connect(srv.ports["submissions"], ctx)
    c = open_conn(srv.ports[role])
    c.ehlo()
    c.expect("STARTTLS", "220")
    return wrap(c, ctx)


@pytest.mark.parametrize("role", ["mx", "submission", "submissions"])
def test_tls_versions(sub_server, test_ca, role):
    """1.2 and 1.3 are accepted, 1.0 and 1.1 refused by the server (the
    client allows them: SECLEVEL=0, so a failure is the server's)."""
    srv = sub_server()
    wrong = []
    for name, version, ok in VERSIONS:
        ctx = client_context(test_ca.ca_pem, minimum=version, maximum=version,
                             legacy=True)
        try:
            c = handshake(srv, role, ctx)
        except (ssl.SSLError, OSError) as e:
            if ok:
                wrong.append("%s refused: %r" % (name, e))
            continue
        with c:
            if not ok:
                wrong.append("%s accepted" % name)
                continue
            if c.tls.version() != name:
                wrong.append("asked for %s, got %s" % (name, c.tls.version()))
            c.ehlo()
            c.expect("NOOP", "250")
    srv.assert_alive()
    assert not wrong, "; ".join(wrong)
    c = handshake(srv, role, client_context(test_ca.ca_pem))
    with c:
        c.ehlo()
        c.expect("NOOP", "250")


def test_server_sends_its_chain(sub_server, test_ca):
    """The server's certificate is signed by an intermediate that the
    client does not have: verification needs the chain from tls_cert."""
    srv = sub_server()
    c, _ = srv.implicit()
    with c:
        assert peer_cert_info(c.tls)[2] == test_ca.server.serial
        assert test_ca.server.chain.read_text().count("BEGIN CERTIFICATE") == 2


@pytest.mark.parametrize("role", ["submission", "submissions"])
def test_unverifiable_with_other_ca(sub_server, test_ca, role):
    srv = sub_server()
    with pytest.raises(ssl.SSLCertVerificationError):
        c = handshake(srv, role, client_context(test_ca.ca2_pem))
        c.close()
    srv.assert_alive()


# ---------------------------------------------------------------------------
# SNI

def sni_config(test_ca):
    return ["%s %s %s" % (name, test_ca.sni[name].chain, test_ca.sni[name].key)
            for name in SNI_NAMES]


SNI_CASES = [("a.sni.test", "a.sni.test"), ("b.sni.test", "b.sni.test"),
             ("x.w.sni.test", "*.w.sni.test"), ("y.w.sni.test", "*.w.sni.test"),
             (None, None), ("unknown.test", None), ("w.sni.test", None),
             ("mx.test", None)]


@pytest.mark.parametrize("role", ["submission", "submissions"])
def test_sni_picks_the_certificate(sub_server, test_ca, role):
    """tls_sni: the certificate follows the name the client asks for
    (a wildcard covers one label); no SNI or an unknown name gets
    tls_cert."""
    srv = sub_server(tls_sni=sni_config(test_ca))
    wrong = []
    for name, want in SNI_CASES:
        cert = test_ca.sni[want] if want else test_ca.server
        # a name the chosen certificate covers is verified in full
        covered = want is not None or name == "mx.test"
        ctx = client_context(test_ca.ca_pem, check_hostname=covered)
        try:
            if role == "submissions":
                c = tls_connect(srv.ports["submissions"], ctx,
                                server_hostname=name)
            else:
                c = open_conn(srv.ports["submission"])
                c.ehlo()
                c.expect("STARTTLS", "220")
                wrap(c, ctx, server_hostname=name)
        except (ssl.SSLError, OSError) as e:
            wrong.append("SNI %r: handshake failed: %r" % (name, e))
            continue
        with c:
            cn, dns, serial = peer_cert_info(c.tls)
            if serial != cert.serial:
                wrong.append("SNI %r: got CN=%s %r, want CN=%s"
                             % (name, cn, dns, cert.cn))
            c.ehlo()
            c.expect("NOOP", "250")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------
# SIGHUP reloads the certificate

def current_serial(srv, role):
    ctx = client_context(srv.ca.ca_pem)
    c = handshake(srv, role, ctx)
    try:
        return peer_cert_info(c.tls)[2]
    finally:
        c.close()


def test_sighup_reloads_certificate(sub_server, test_ca):
    srv = sub_server()
    old = test_ca.server
    # sessions opened before the reload: mx in TLS, alice on submissions
    mx, _ = srv.starttls("mx")
    sub = srv.login(ALICE)
    try:
        assert peer_cert_info(mx.tls)[2] == old.serial
        new = test_ca.fresh()
        install_cert(new, srv.cert_path, srv.key_path)
        pid = srv.proc.pid
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            got = {r: current_serial(srv, r)
                   for r in ("mx", "submission", "submissions")}
            if all(s == new.serial for s in got.values()):
                break
            if time.monotonic() > deadline:
                raise AssertionError("10 s after SIGHUP the serials are %r, "
                                     "want %s (old %s)" % (got, new.serial,
                                                           old.serial))
            time.sleep(0.2)
        assert srv.running() and srv.proc.pid == pid, "SIGHUP restarted tern"
        # the old sessions still work, with the old certificate
        send_mail(mx, "x@elsewhere.test", [ALICE],
                  make_message("x@elsewhere.test", ALICE, "after-hup-mx"))
        send_mail(sub, ALICE, [BOB], make_message(ALICE, BOB, "after-hup-sub"))
        mx.expect("QUIT", "221")
        sub.expect("QUIT", "221")
    finally:
        mx.close()
        sub.close()
    assert len(wait_subject(srv.account_maildir(ALICE), "after-hup-mx")) == 1
    assert len(wait_subject(srv.account_maildir(BOB), "after-hup-sub")) == 1
    # and a new authenticated session with the new certificate
    c = srv.login(BOB)
    with c:
        assert peer_cert_info(c.tls)[2] == new.serial


def test_sighup_with_broken_certificate_keeps_the_old_one(sub_server, test_ca):
    """A reload that cannot read the new files must not take the server
    down; it keeps serving with the certificate it has."""
    srv = sub_server()
    srv.cert_path.write_text("-----BEGIN CERTIFICATE-----\nnot a cert\n"
                             "-----END CERTIFICATE-----\n")
    os.kill(srv.proc.pid, signal.SIGHUP)
    time.sleep(1.5)
    srv.assert_alive()
    for role in ("mx", "submission", "submissions"):
        assert current_serial(srv, role) == test_ca.server.serial, role
    c = srv.login(ALICE)
    with c:
        c.expect("MAIL FROM:<%s>" % ALICE, "250")


# ---------------------------------------------------------------------------
# Received: the TLS comment names what was negotiated

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2,
                                     ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("role", ["mx", "submissions"])
def test_received_names_version_and_cipher(sub_server, test_ca, version, role):
    srv = sub_server()
    ctx = client_context(test_ca.ca_pem, minimum=version, maximum=version)
    subject = "cipher-%s-%s" % (role, version.name)
    c = handshake(srv, role, ctx)
    with c:
        c.ehlo()
        sender = "x@elsewhere.test"
        if role == "submissions":
            r = auth_plain(c, ALICE, PASSWORDS[ALICE])
            assert r.starts("235"), str(r)
            sender = ALICE
        negotiated = (c.tls.version(), c.tls.cipher()[0])
        send_mail(c, sender, [BOB], make_message(sender, BOB, subject))
    files = wait_subject(srv.account_maildir(BOB), subject)
    assert len(files) == 1
    _, received, _ = split_delivered(files[0].read_bytes())
    want = "(using %s with cipher %s)" % negotiated
    assert want in received, "Received lacks %r: %s" % (want, received)
    proto = "ESMTPSA" if role == "submissions" else "ESMTPS"
    assert re.search(r"\bwith %s\b" % proto, received), received


# ---------------------------------------------------------------------------
# many handshakes at once

def test_parallel_handshakes(sub_server, test_ca):
    """50 TLS sessions open at once on submissions, all greeted and
    authenticated, then all closed; the server is fine."""
    srv = sub_server()
    conns = []
    try:
        for _ in range(50):
            conns.append(tls_connect(srv.ports["submissions"],
                                     client_context(test_ca.ca_pem)))
        for c in conns:
            c.ehlo()
            r = auth_plain(c, ALICE, PASSWORDS[ALICE])
            if not r.starts("235"):
                c.fail("AUTH: %r" % str(r))
    finally:
        for c in conns:
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
            except OSError:
                pass
            c.close()
    srv.assert_alive()
    c, _ = srv.implicit()
    with c:
        c.expect("NOOP", "250")
