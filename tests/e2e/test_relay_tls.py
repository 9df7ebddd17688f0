# SPDX-License-Identifier: MIT
"""End-to-end TLS and AUTH on the way out: the relay agent's STARTTLS
policies (relay_tls, smarthost_tls, a route's tls=) and its login to a
smarthost, against the test sink (smtpsink.py) with certificates from a
test CA made here with the openssl CLI.

Every test looks at both ends: what the sink saw (STARTTLS or not, the
protocol, cipher and SNI of the handshake, the commands sent before it,
the credentials and the mechanism, mail or no mail) and what tern did
(its "event=ready ... tls=" line, and the queue: `tern queue list --json`
shows a deferred recipient with its status and reason).
"""

import base64
import json
import re
import subprocess
import time

import pytest

from sinklib import free_port_on
from ternlib import wait_files
from relaylib import (BODY, deliver_lines, relay_config, submit, tern_queue,
                      wait_deliver)

MX = "mx1.remote.test"
SMARTHOST = "smtp.remote.test"
SINK_ADDR = "127.0.0.2"
POSTFIX_MX = "mx.postfix.test"
RCPT = "bob@remote.test"


# ---------------------------------------------------------------------------
# certificates: two CAs and three server certificates

def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=str(cwd), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, "openssl %s: %s" % (" ".join(args), p.stderr)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=%s" % name, "-keyout", "%s.key" % name,
            "-out", "%s.pem" % name, cwd=d)
    return d / ("%s.pem" % name)


def make_cert(d, name, ca, sans):
    """A server certificate (and its key, in the same file after the
    chain) signed by ca for the subjectAltNames sans."""
    ext = d / ("%s.ext" % name)
    ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n" % ",".join(sans))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=%s" % sans[0].split(":", 1)[1],
            "-keyout", "%s.key" % name, "-out", "%s.csr" % name, cwd=d)
    openssl("x509", "-req", "-in", "%s.csr" % name, "-CA", "%s.pem" % ca,
            "-CAkey", "%s.key" % ca, "-CAcreateserial", "-days", "2",
            "-extfile", ext.name, "-out", "%s.crt" % name, cwd=d)
    return {"cert": d / ("%s.crt" % name), "key": d / ("%s.key" % name)}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca = make_ca(d, "ca")
    make_ca(d, "otherca")
    names = ["DNS:" + MX, "DNS:" + SMARTHOST, "DNS:" + POSTFIX_MX,
             "IP:127.0.0.1", "IP:" + SINK_ADDR]
    return {
        "ca": ca,
        "good": make_cert(d, "good", "ca", names),
        # the right names, the wrong issuer
        "other_ca": make_cert(d, "otherca-signed", "otherca", names),
        # the right issuer, the wrong names
        "wrong_name": make_cert(d, "wrong-name", "ca", ["DNS:other.test"]),
    }


# ---------------------------------------------------------------------------
# helpers

def mx_setup(tern_server, smtp_sink, relay_dns, tls=None, auth=None,
             extensions=None, **cfg):
    port = free_port_on(SINK_ADDR)
    sink = smtp_sink(addr=SINK_ADDR, port=port, tls=tls, auth=auth,
                     extensions=extensions)
    dns = relay_dns({"mx": [("remote.test", MX, 10)],
                     "a": [(MX, SINK_ADDR), (SMARTHOST, SINK_ADDR)]})
    srv = tern_server(**relay_config(dns, port, **cfg))
    return srv, sink, port


def ready_lines(srv):
    return [l for l in srv.stderr_text().splitlines()
            if "event=ready" in l and re.search(r"\brelay dest=", l)]


def wait_ready_line(srv, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        lines = ready_lines(srv)
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def queued(srv, qid):
    p = tern_queue(srv, "list", "--json")
    assert p.returncode == 0, "tern queue list: %s" % p.stderr
    return {m["id"]: m for m in json.loads(p.stdout)}.get(qid)


def wait_deferred(srv, qid, timeout=20.0):
    """The recipient once deferred (after one attempt), from `tern queue`."""
    deadline = time.monotonic() + timeout
    while True:
        m = queued(srv, qid)
        if m is not None and all(r["state"] == "deferred" and
                                 r["attempts"] >= 1
                                 for r in m["recipients"]):
            return m["recipients"][0]
        if time.monotonic() > deadline:
            raise AssertionError("%s: want the recipient deferred, got %r\n%s"
                                 % (qid, m, srv.stderr_text()[-3000:]))
        time.sleep(0.1)


def assert_deferred(srv, qid, status, *reason_parts):
    r = wait_deferred(srv, qid)
    assert r["status"] == status, "status: got %r, want %s (%r)" % (
        r["status"], status, r)
    for part in reason_parts:
        assert part in (r["reply"] or ""), "reason: got %r, want %r in it" % (
            r["reply"], part)
    return r


def commands(conn):
    return [c.split(" ", 1)[0].upper() for c in conn["commands"]]


def assert_no_mail_command(sink):
    for c in sink.conns():
        for verb in ("MAIL", "RCPT", "DATA", "AUTH"):
            assert verb not in commands(c), \
                "%s sent on connection %d: %r" % (verb, c["id"], c["commands"])
    assert sink.messages() == [], "the sink got mail"


def assert_tls_message(sink):
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "got %d messages" % len(msgs)
    tls = msgs[0].meta["tls"]
    assert tls is not None, "the message came in the clear"
    assert tls["version"] in ("TLSv1.2", "TLSv1.3"), tls
    # only EHLO and STARTTLS in the clear (RFC 3207 §4.2: EHLO again after)
    c = [x for x in sink.conns() if x["id"] == msgs[0].conn][0]
    assert commands(c)[:tls["after"]] == ["EHLO", "STARTTLS"], c["commands"]
    assert commands(c)[tls["after"]] == "EHLO", c["commands"]
    return msgs[0], tls


# ---------------------------------------------------------------------------
# relay_tls = may (the default)

def test_may_starttls_offered(tern_server, smtp_sink, relay_dns, certs):
    srv, sink, port = mx_setup(tern_server, smtp_sink, relay_dns,
                               tls=certs["good"])
    submit(srv, [RCPT])
    msg, tls = assert_tls_message(sink)
    assert tls["sni"] == MX, "SNI: got %r, want the MX host" % tls["sni"]
    assert msg.rcpt_tos == [RCPT]
    assert msg.data.endswith(BODY)
    line = wait_ready_line(srv)[0]
    assert "peer=%s[%s]:%d" % (MX, SINK_ADDR, port) in line, line
    assert re.search(r"\btls=%s cipher=%s verified=no\b" % (
        re.escape(tls["version"]), re.escape(tls["cipher"])), line), line
    assert wait_deliver(srv, RCPT, "sent"), deliver_lines(srv)


def test_may_without_starttls(tern_server, smtp_sink, relay_dns):
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns)
    submit(srv, [RCPT])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1 and msgs[0].meta["tls"] is None, msgs
    assert "STARTTLS" not in commands(sink.conns()[0])
    line = wait_ready_line(srv)[0]
    assert re.search(r"\btls=none auth=none\b", line), line


def test_may_454_goes_on_in_clear(tern_server, smtp_sink, relay_dns):
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns, tls={
        "starttls_reply": "454 4.7.0 TLS not available due to temporary "
                          "reason"})
    submit(srv, [RCPT])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1 and msgs[0].meta["tls"] is None, msgs
    # RFC 3207 §4: after 454 the session goes on as before, no new EHLO
    assert commands(sink.conns()[0])[:3] == ["EHLO", "STARTTLS", "MAIL"], \
        sink.conns()[0]["commands"]


@pytest.mark.parametrize("fault", ["break", "hang"])
def test_may_broken_tls_falls_back_to_clear(tern_server, smtp_sink,
                                            relay_dns, fault):
    """A server whose TLS handshake fails (or never ends: the 3s command
    timeout of relay_config) gets the mail in the clear on a new
    connection at once, and the next connections skip STARTTLS."""
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns,
                            tls={fault: True}, relay_conn_idle="0")
    submit(srv, [RCPT])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "got %d messages\n%s" % (
        len(msgs), srv.stderr_text()[-3000:])
    conns = sink.conns()
    assert commands(conns[0])[-1] == "STARTTLS", conns[0]["commands"]
    assert "STARTTLS" not in commands(conns[1]), conns[1]["commands"]
    assert msgs[0].conn == conns[1]["id"] and msgs[0].meta["tls"] is None
    assert any("event=tls_failed" in l and "next=plain" in l
               for l in srv.stderr_text().splitlines()), \
        srv.stderr_text()[-3000:]
    # the next message goes straight in the clear
    submit(srv, [RCPT])
    assert len(sink.wait_messages(2, timeout=15)) == 2
    last = sink.conns()[-1]
    assert "STARTTLS" not in commands(last), last["commands"]


# ---------------------------------------------------------------------------
# relay_tls = none, encrypt

def test_none_with_starttls_offered(tern_server, smtp_sink, relay_dns, certs):
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns,
                            tls=certs["good"], relay_tls="none")
    submit(srv, [RCPT])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1 and msgs[0].meta["tls"] is None, msgs
    assert "STARTTLS" not in commands(sink.conns()[0])
    assert "tls=none" in wait_ready_line(srv)[0]


@pytest.mark.parametrize("offer", ["not offered", "454"])
def test_encrypt_without_starttls_defers(tern_server, smtp_sink, relay_dns,
                                         offer):
    tls = None if offer == "not offered" else {
        "starttls_reply": "454 4.7.0 TLS not available"}
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns, tls=tls,
                            relay_tls="encrypt")
    qid = submit(srv, [RCPT])
    want = "does not offer STARTTLS" if tls is None else \
        "STARTTLS was refused: 454 4.7.0"
    assert_deferred(srv, qid, "4.7.4", "TLS is required (tls=encrypt)", want)
    # nothing but EHLO (and the refused STARTTLS) went in the clear
    assert_no_mail_command(sink)
    want_cmds = ["EHLO"] if tls is None else ["EHLO", "STARTTLS"]
    assert [commands(c) for c in sink.conns()] == [want_cmds], sink.conns()


def test_encrypt_takes_any_certificate(tern_server, smtp_sink, relay_dns,
                                       certs):
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns,
                            tls=certs["other_ca"], relay_tls="encrypt")
    submit(srv, [RCPT])
    assert_tls_message(sink)
    assert "verified=no" in wait_ready_line(srv)[0]


# ---------------------------------------------------------------------------
# relay_tls = verify

def test_verify_with_test_ca(tern_server, smtp_sink, relay_dns, certs):
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns,
                            tls=certs["good"], relay_tls="verify",
                            relay_tls_ca_file=certs["ca"])
    submit(srv, [RCPT])
    _, tls = assert_tls_message(sink)
    assert tls["sni"] == MX
    line = wait_ready_line(srv)[0]
    assert re.search(r"\btls=TLSv1\.[23] cipher=\S+ verified=yes\b", line), line


@pytest.mark.parametrize("cert,why", [
    ("other_ca", "unable to get local issuer certificate"),
    ("wrong_name", "hostname mismatch"),
])
def test_verify_bad_certificate_defers(tern_server, smtp_sink, relay_dns,
                                       certs, cert, why):
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns,
                            tls=certs[cert], relay_tls="verify",
                            relay_tls_ca_file=certs["ca"])
    qid = submit(srv, [RCPT])
    r = assert_deferred(srv, qid, "4.7.5", "certificate verify failed", why)
    assert "%s[%s]" % (MX, SINK_ADDR) in r["reply"], r
    assert_no_mail_command(sink)
    c = sink.conns()[0]
    assert commands(c) == ["EHLO", "STARTTLS"] and c["tls"] is None, c
    assert any("event=tls_failed" in l and "tls=verify" in l
               for l in srv.stderr_text().splitlines())


def test_verify_system_store_refuses_test_ca(tern_server, smtp_sink,
                                             relay_dns, certs):
    """Without relay_tls_ca_file the system's CAs decide: the test CA is
    not among them."""
    srv, sink, _ = mx_setup(tern_server, smtp_sink, relay_dns,
                            tls=certs["good"], relay_tls="verify")
    qid = submit(srv, [RCPT])
    assert_deferred(srv, qid, "4.7.5", "certificate verify failed")
    assert_no_mail_command(sink)


def test_route_tls_option(tern_server, smtp_sink, relay_dns, certs):
    """route = domain [addr]:port tls=verify: the route's policy beats
    relay_tls, and an address literal is checked against the IP SAN."""
    port = free_port_on(SINK_ADDR)
    sink = smtp_sink(addr=SINK_ADDR, port=port, tls=certs["good"])
    dns = relay_dns({"mx": [], "a": []})
    srv = tern_server(**relay_config(
        dns, port, relay_tls="none", relay_tls_ca_file=certs["ca"],
        route="remote.test [%s]:%d tls=verify" % (SINK_ADDR, port)))
    submit(srv, [RCPT])
    _, tls = assert_tls_message(sink)
    assert "verified=yes" in wait_ready_line(srv)[0]


# ---------------------------------------------------------------------------
# the smarthost's login

def smarthost_setup(tern_server, smtp_sink, relay_dns, tmp_path, certs,
                    mechanisms="PLAIN,LOGIN", password="s3cret-pw",
                    sink_password="s3cret-pw", tls="good", clear=False,
                    **cfg):
    port = free_port_on(SINK_ADDR)
    sink = smtp_sink(addr=SINK_ADDR, port=port,
                     tls=certs[tls] if tls else None,
                     auth={"mechanisms": mechanisms, "user": "relay-user",
                           "password": sink_password, "clear": clear})
    dns = relay_dns({"mx": [], "a": [(SMARTHOST, SINK_ADDR)]})
    pw = tmp_path / "smarthost.pw"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    more = {"smarthost": "[%s]:%d" % (SMARTHOST, port),
            "smarthost_user": "relay-user",
            "smarthost_password_file": str(pw)}
    more.update(cfg)
    srv = tern_server(**relay_config(dns, port, **more))
    return srv, sink


def assert_secret_hidden(srv, secret):
    text = srv.stderr_text()
    for form in (secret, base64.b64encode(secret.encode()).decode(),
                 base64.b64encode(b"\0relay-user\0" +
                                  secret.encode()).decode()):
        assert form not in text, "the password shows in tern's log"
    p = subprocess.run([str(srv.binary), "dump-config", "--config",
                        str(srv.config_path)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert secret not in p.stdout, "dump-config shows the password"
    assert "smarthost_user = relay-user" in p.stdout, p.stdout


@pytest.mark.parametrize("mechanisms,want", [
    ("PLAIN,LOGIN", "PLAIN"),    # PLAIN when offered
    ("LOGIN", "LOGIN"),
])
def test_smarthost_auth(tern_server, smtp_sink, relay_dns, tmp_path, certs,
                        mechanisms, want):
    srv, sink = smarthost_setup(tern_server, smtp_sink, relay_dns, tmp_path,
                                certs, mechanisms=mechanisms,
                                smarthost_tls="verify",
                                relay_tls_ca_file=certs["ca"])
    submit(srv, [RCPT])
    msg, tls = assert_tls_message(sink)
    assert tls["sni"] == SMARTHOST, tls
    assert msg.meta["auth_user"] == "relay-user", msg.meta
    c = [x for x in sink.conns() if x["id"] == msg.conn][0]
    assert c["auth"] == [{"mechanism": want, "user": "relay-user",
                          "password": "s3cret-pw", "ok": True,
                          "tls": True}], c["auth"]
    line = wait_ready_line(srv)[0]
    assert re.search(r"\bverified=yes auth=%s\b" % want, line), line
    assert wait_deliver(srv, RCPT, "sent")
    assert_secret_hidden(srv, "s3cret-pw")


def test_smarthost_wrong_password(tern_server, smtp_sink, relay_dns,
                                  tmp_path, certs):
    srv, sink = smarthost_setup(tern_server, smtp_sink, relay_dns, tmp_path,
                                certs, password="wrong-Pa55word")
    qid = submit(srv, [RCPT])
    r = assert_deferred(srv, qid, "4.7.8",
                        "authentication to smarthost failed: 535 5.7.8")
    auth = [a for c in sink.conns() for a in c["auth"]]
    assert auth and all(a["password"] == "wrong-Pa55word" and not a["ok"] and
                        a["tls"] for a in auth), auth
    assert sink.messages() == []
    assert all("MAIL" not in commands(c) for c in sink.conns())
    warn = [l for l in srv.stderr_text().splitlines()
            if "event=auth" in l and "status=4.7.8" in l]
    assert warn and 'user="relay-user"' in warn[0], srv.stderr_text()[-2000:]
    assert_secret_hidden(srv, "wrong-Pa55word")
    assert "wrong-Pa55word" not in r["reply"]


@pytest.mark.parametrize("policy,tls", [
    ("may", None),       # no STARTTLS offered
    ("none", "good"),    # offered, and the policy says no
])
def test_smarthost_credentials_never_in_clear(tern_server, smtp_sink,
                                              relay_dns, tmp_path, certs,
                                              policy, tls):
    """AUTH is offered before TLS too (clear=True): tern still withholds
    the credentials and defers the mail."""
    srv, sink = smarthost_setup(tern_server, smtp_sink, relay_dns, tmp_path,
                                certs, tls=tls, clear=True,
                                smarthost_tls=policy)
    qid = submit(srv, [RCPT])
    assert_deferred(srv, qid, "4.7.10", "credentials are never sent without "
                    "TLS", "smarthost_tls=%s" % policy)
    for c in sink.conns():
        assert commands(c) == ["EHLO"], c["commands"]
        assert c["auth"] == [] and c["tls"] is None, c
    assert sink.messages() == []
    assert_secret_hidden(srv, "s3cret-pw")


def test_smarthost_password_file_missing(tern_server, smtp_sink, relay_dns,
                                         tmp_path, certs):
    srv, sink = smarthost_setup(tern_server, smtp_sink, relay_dns, tmp_path,
                                certs, smarthost_password_file=str(
                                    tmp_path / "no-such-file"))
    qid = submit(srv, [RCPT])
    assert_deferred(srv, qid, "4.3.5", "cannot open smarthost_password_file")
    assert sink.stats()["connections"] == 0, "tern connected without a password"


# ---------------------------------------------------------------------------
# Postfix as the receiving MX, with smtpd_tls

def test_verify_to_postfix(tern_server, postfix_peer, relay_dns, certs):
    """tern's STARTTLS against another implementation: Postfix's smtpd
    with the test CA's certificate (read by the master as root), verified
    by name."""
    good = certs["good"]
    pf = postfix_peer("mx", addr="127.0.0.3", domain="postfix.test",
                      start=False, extra={
                          "smtpd_tls_security_level": "may",
                          "smtpd_tls_cert_file": str(good["cert"]),
                          "smtpd_tls_key_file": str(good["key"]),
                          "smtpd_tls_loglevel": "1"})
    # smtpd gets its TLS entropy and session cache from tlsmgr(8)
    with open(pf.etc / "master.cf", "a") as f:
        f.write("tlsmgr    unix  -       -       n       1000?   1       "
                "tlsmgr\n")
    pf.start()
    dns = relay_dns({"mx": [("postfix.test", POSTFIX_MX, 10)],
                     "a": [(POSTFIX_MX, "127.0.0.3")]})
    srv = tern_server(**relay_config(dns, pf.port, relay_tls="verify",
                                     relay_tls_ca_file=certs["ca"]))
    submit(srv, ["bob@postfix.test"])
    files = wait_files(pf.maildir("bob"), 1, timeout=20)
    assert len(files) == 1, "Postfix Maildir: %d files\n%s\n%s" % (
        len(files), pf.log_text()[-2000:], srv.stderr_text()[-2000:])
    line = wait_ready_line(srv)[0]
    m = re.search(r"\btls=(TLSv1\.[23]) cipher=(\S+) verified=yes\b", line)
    assert m, line
    # Postfix saw the same protocol and cipher
    assert pf.wait_log("TLS connection established from", timeout=10), \
        pf.log_text()[-2000:]
    est = [l for l in pf.log_text().splitlines()
           if "TLS connection established from" in l]
    assert "%s with cipher %s" % (m.group(1), m.group(2)) in est[-1], est
