# SPDX-License-Identifier: MIT
"""Delivery status notifications and forwarding, end to end: NOTIFY
(SUCCESS for a local delivery and for a relay to a server without DSN,
passed on to one with DSN, NEVER), RET=HDRS, ENVID and ORCPT returned,
delay notices, null MX and unknown domains, a peer without 8BITMIME,
expiry, alias fan-out to local and remote recipients with an SRS sender
and the SRS bounce coming back, reports never sent to <>, smarthost and
per-domain routes.

Reports land in alice's Maildir (alice@example.test is the sender) and
are parsed with Python's email package (RFC 3464 fields checked).
"""

import re
import time

from sinklib import free_port_on
from ternlib import SmtpConn, maildir_files, wait_files, wire_data

from relaylib import (BODY, SENDER, deliver_lines, rcpt_blocks, read_bounce,
                      relay_config, submit, wait_deliver)


def mx_setup(smtp_sink, relay_dns, script=None, extensions=None,
             domain="remote.test", addr="127.0.0.2"):
    port = free_port_on(addr)
    sink = smtp_sink(addr=addr, port=port, script=script,
                     extensions=extensions)
    dns = relay_dns({"mx": [(domain, "mx1." + domain, 10)],
                     "a": [("mx1." + domain, addr)]})
    return sink, dns, port


def transaction(srv, mail, rcpts, data=BODY, untrusted_ok=False):
    """One transaction with ESMTP parameters: mail is the whole MAIL
    argument, rcpts the whole RCPT arguments."""
    with srv.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:%s" % mail, "250")
        for r in rcpts:
            c.expect("RCPT TO:%s" % r, "250")
        c.expect("DATA", "354")
        c.send(wire_data(data))
        r = c.read_reply(30)
        assert r.code == 250, r.lines
        c.expect("QUIT", "221")


def no_more_files(maildir, n, wait=1.5):
    time.sleep(wait)
    got = len(maildir_files(maildir))
    assert got == n, "got %d messages in %s, want %d" % (got, maildir, n)


# ---------------------------------------------------------------------------
# NOTIFY

def test_notify_success_local_delivery(tern_server):
    # RFC 3461 §4.1, RFC 3464 §2.3.3: Action: delivered
    srv = tern_server()
    transaction(srv, "<%s>" % SENDER,
                ["<bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;bob@example.test"])
    assert len(wait_files(srv.maildir("bob"), 1)) == 1
    msg, per_msg, per_rcpt = read_bounce(srv)
    blocks = rcpt_blocks(per_rcpt)
    b = blocks["bob@example.test"]
    assert b["Action"].lower() == "delivered", b["Action"]
    assert b["Status"] == "2.0.0", b["Status"]
    assert "Successful" in msg["Subject"], msg["Subject"]
    assert b["Original-Recipient"].replace(" ", "") == "rfc822;bob@example.test"


def test_notify_success_relayed_to_server_without_dsn(tern_server, smtp_sink,
                                                      relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns,
                               extensions=["PIPELINING", "8BITMIME"])
    srv = tern_server(**relay_config(dns, port))
    transaction(srv, "<%s>" % SENDER, ["<bob@remote.test> NOTIFY=SUCCESS"])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1
    assert msgs[0].rcpt_options == [[]] or msgs[0].rcpt_options == [], \
        "NOTIFY sent to a server without DSN: %r" % msgs[0].rcpt_options
    _, _, per_rcpt = read_bounce(srv)
    b = rcpt_blocks(per_rcpt)["bob@remote.test"]
    # RFC 3461 §6.2.1: the server had no DSN, so we say "relayed"
    assert b["Action"].lower() == "relayed", b["Action"]


def test_notify_passed_to_server_with_dsn(tern_server, smtp_sink, relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns)
    srv = tern_server(**relay_config(dns, port))
    transaction(srv, "<%s> RET=HDRS ENVID=QQ314159" % SENDER,
                ["<bob@remote.test> NOTIFY=SUCCESS,FAILURE "
                 "ORCPT=rfc822;bob+2Borig@remote.test"])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1
    m = msgs[0]
    opts = " ".join(o for os_ in m.rcpt_options for o in os_).upper()
    assert "NOTIFY=SUCCESS,FAILURE" in opts, m.rcpt_options
    assert "ORCPT=RFC822;BOB+2BORIG@REMOTE.TEST" in opts, m.rcpt_options
    mopts = " ".join(m.mail_options).upper()
    assert "RET=HDRS" in mopts and "ENVID=QQ314159" in mopts, m.mail_options
    # the server owes the success report now, not us
    wait_deliver(srv, "bob@remote.test", "sent")
    no_more_files(srv.maildir("alice"), 0)


def test_notify_never_sends_no_report(tern_server, smtp_sink, relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns, script={
        "rcpt": {"bob@remote.test": ["550 5.1.1 no such user"]}})
    srv = tern_server(**relay_config(dns, port))
    transaction(srv, "<%s>" % SENDER, ["<bob@remote.test> NOTIFY=NEVER"])
    assert wait_deliver(srv, "bob@remote.test", "bounced")
    no_more_files(srv.maildir("alice"), 0)


def test_ret_hdrs_envid_orcpt(tern_server, smtp_sink, relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns, script={
        "rcpt": {"bob@remote.test": ["550 5.1.1 no such user"]}})
    srv = tern_server(**relay_config(dns, port))
    transaction(srv, "<%s> RET=HDRS ENVID=env+2Bid" % SENDER,
                ["<bob@remote.test> ORCPT=rfc822;Bob@Remote.test"])
    msg, per_msg, per_rcpt = read_bounce(srv)
    parts = list(msg.iter_parts())
    assert parts[2].get_content_type() == "text/rfc822-headers", \
        parts[2].get_content_type()
    returned = parts[2].as_bytes()
    assert b"Subject: relay" in returned and b"hello" not in returned
    assert per_msg["Original-Envelope-Id"].strip() == "env+2Bid"
    b = rcpt_blocks(per_rcpt)["bob@remote.test"]
    assert b["Original-Recipient"].replace(" ", "") == "rfc822;Bob@Remote.test"


# ---------------------------------------------------------------------------
# delays, expiry, routes that fail

def test_delay_notice_once(tern_server, smtp_sink, relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns, script={
        "rcpt": {"bob@remote.test": ["451 4.2.0 greylisted"]}})
    srv = tern_server(**relay_config(dns, port, retry_min="1s",
                                     retry_max="1s", delay_warning="2s",
                                     queue_lifetime="1h"))
    submit(srv, ["bob@remote.test"])
    msg, _, per_rcpt = read_bounce(srv, timeout=20)
    b = rcpt_blocks(per_rcpt)["bob@remote.test"]
    assert b["Action"].lower() == "delayed", b["Action"]
    assert b["Will-Retry-Until"], "no Will-Retry-Until"
    assert "Delayed" in msg["Subject"]
    # it keeps retrying, and no second notice comes
    n = len(deliver_lines(srv, "bob@remote.test", "deferred"))
    assert len(wait_deliver(srv, "bob@remote.test", "deferred",
                            count=n + 2, timeout=10)) >= n + 2
    assert len(maildir_files(srv.maildir("alice"))) == 1


def test_expiry_bounces_with_5_4_7(tern_server, smtp_sink, relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns, script={
        "rcpt": {"bob@remote.test": ["451 4.2.0 try later"]}})
    srv = tern_server(**relay_config(dns, port, retry_min="1s",
                                     retry_max="1s", delay_warning="0",
                                     queue_lifetime="3s"))
    submit(srv, ["bob@remote.test"])
    lines = wait_deliver(srv, "bob@remote.test", "expired", timeout=20)
    assert lines, deliver_lines(srv)
    _, _, per_rcpt = read_bounce(srv)
    b = rcpt_blocks(per_rcpt)["bob@remote.test"]
    assert b["Action"].lower() == "failed" and b["Status"] == "5.4.7", \
        (b["Action"], b["Status"])
    assert "451 4.2.0 try later" in b["Diagnostic-Code"], b["Diagnostic-Code"]
    assert not list(srv.queue_dir().iterdir()), "still queued after expiry"


def test_null_mx_bounces_at_once(tern_server, relay_dns):
    # RFC 7505 §4.1: 5.1.10, without connecting anywhere
    dns = relay_dns({"null_mx": ["nomail.test"]})
    srv = tern_server(**relay_config(dns, free_port_on("127.0.0.2")))
    submit(srv, ["bob@nomail.test"])
    _, _, per_rcpt = read_bounce(srv)
    b = rcpt_blocks(per_rcpt)["bob@nomail.test"]
    assert b["Status"] == "5.1.10", b["Status"]


def test_unknown_domain_bounces(tern_server, relay_dns):
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                     "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, free_port_on("127.0.0.2")))
    submit(srv, ["bob@nowhere.test"])
    _, _, per_rcpt = read_bounce(srv)
    assert rcpt_blocks(per_rcpt)["bob@nowhere.test"]["Status"] == "5.1.2"


def test_8bit_message_to_server_without_8bitmime(tern_server, smtp_sink,
                                                 relay_dns):
    # RFC 6152 §3: no conversion here, so the message bounces and says why
    sink, dns, port = mx_setup(smtp_sink, relay_dns,
                               extensions=["PIPELINING", "DSN"])
    srv = tern_server(**relay_config(dns, port))
    body = BODY.replace(b"hello", "h\u00e9llo".encode())
    transaction(srv, "<%s> BODY=8BITMIME" % SENDER, ["<bob@remote.test>"],
                data=body)
    _, _, per_rcpt = read_bounce(srv)
    b = rcpt_blocks(per_rcpt)["bob@remote.test"]
    assert b["Status"] == "5.6.3", b["Status"]
    assert "8BITMIME" in b["Diagnostic-Code"], b["Diagnostic-Code"]
    assert sink.messages() == []


# ---------------------------------------------------------------------------
# forwarding and SRS

def test_alias_fans_out_to_local_and_remote_with_srs(tern_server, smtp_sink,
                                                     relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns)
    srv = tern_server(**relay_config(dns, port, srs_secret="t0p-secret"),
                      alias=["team: alice, bob", "fwd: bob, carol@remote.test"])
    with srv.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<x@outside.test>", "250")
        c.expect("RCPT TO:<fwd@example.test>", "250")
        c.expect("DATA", "354")
        c.send(wire_data(BODY))
        assert c.read_reply(30).code == 250
    assert len(wait_files(srv.maildir("bob"), 1)) == 1
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1 and msgs[0].rcpt_tos == ["carol@remote.test"]
    # the SRS0 form of x@outside.test at our first domain
    assert re.match(r"^SRS0[=+-][^=]{4}=[^=]{2}=outside\.test=x@example\.test$",
                    msgs[0].mail_from, re.I), msgs[0].mail_from
    # the log names both deliveries of the one RCPT
    assert wait_deliver(srv, "carol@remote.test", "sent")


def test_srs_bounce_comes_back(tern_server, smtp_sink, relay_dns):
    """A bounce to the SRS address, from a server we do not trust, is
    accepted and goes back to the original sender; a forged one is
    refused."""
    port = free_port_on("127.0.0.2", "127.0.0.3")
    remote = smtp_sink(addr="127.0.0.2", port=port)
    outside = smtp_sink(addr="127.0.0.3", port=port)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10),
                            ("outside.test", "mx1.outside.test", 10)],
                     "a": [("mx1.remote.test", "127.0.0.2"),
                           ("mx1.outside.test", "127.0.0.3")]})
    # no srs_secret: the server makes one and keeps it in srs.key, so
    # addresses it gave out stay valid after the restart below
    srv = tern_server(**relay_config(dns, port),
                      alias=["team: alice, bob", "fwd: carol@remote.test"])
    key = srv.state_dir / "srs.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", key.read_text())
    transaction(srv, "<x@outside.test>", ["<fwd@example.test>"])
    srs = remote.wait_messages(1, timeout=15)[0].mail_from
    assert srs.upper().startswith("SRS0"), srs
    srv.stop()
    srv.config["relay_from"] = "10.0.0.0/8"   # 127.0.0.1 untrusted now
    srv.config_path.write_text(srv.render())
    srv.start()
    with srv.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<>", "250")
        c.send_line("RCPT TO:<%s>" % srs)
        r = c.read_reply()
        assert r.code == 250, "SRS bounce refused: %r" % r.lines
        c.expect("DATA", "354")
        c.send(wire_data(b"Subject: bounce\r\n\r\nreturned\r\n"))
        assert c.read_reply(30).code == 250
        # a forged hash is refused, and so is plain relaying
        forged = re.sub(r"^(SRS0.)(....)", r"\1ZZZZ", srs)
        c.expect("MAIL FROM:<>", "250")
        c.send_line("RCPT TO:<%s>" % forged)
        assert c.read_reply().code == 550
        c.send_line("RCPT TO:<x@outside.test>")
        r = c.read_reply()
        assert r.starts("550 5.7.1"), r.lines
        c.expect("QUIT", "221")
    msgs = outside.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "the bounce did not reach the original sender"
    assert msgs[0].rcpt_tos == ["x@outside.test"] and msgs[0].mail_from == ""


# ---------------------------------------------------------------------------
# no report to <>, ever

def test_failure_of_a_bounce_goes_to_postmaster_once(tern_server, smtp_sink,
                                                     relay_dns):
    sink, dns, port = mx_setup(smtp_sink, relay_dns, script={
        "rcpt": {"*": ["550 5.1.1 nobody"]}})
    srv = tern_server(**relay_config(dns, port),
                      alias=["team: alice, bob", "postmaster: demo"])
    transaction(srv, "<>", ["<bob@remote.test>"])
    files = wait_files(srv.maildir("demo"), 1, timeout=15)
    assert len(files) == 1, "no report to postmaster\n%s" % "\n".join(
        deliver_lines(srv))
    assert b"Final-Recipient: rfc822; bob@remote.test" in files[0].read_bytes()
    no_more_files(srv.maildir("demo"), 1)
    # nothing was ever sent to <>, and the sink saw one attempt only
    assert not re.search(r"rcpt=<> ", srv.stderr_text())
    assert sink.stats()["connections"] == 1


def test_report_about_a_report_is_dropped(tern_server, smtp_sink, relay_dns):
    """postmaster forwards to a remote address that refuses everything:
    the report about the failed bounce fails too, and is only logged."""
    sink, dns, port = mx_setup(smtp_sink, relay_dns, script={
        "rcpt": {"*": ["550 5.1.1 nobody"]}})
    srv = tern_server(**relay_config(dns, port),
                      alias=["team: alice, bob", "postmaster: pm@remote.test"])
    transaction(srv, "<>", ["<bob@remote.test>"])
    assert srv.wait_log(r"event=dsn status=dropped", timeout=20), \
        srv.stderr_text()[-3000:]
    time.sleep(1.0)
    # bob (the bounce), then pm (the report about it): two transactions,
    # no third (the second may reuse the first's connection)
    assert sink.stats()["mail_attempts"] == 2, sink.stats()
    assert not list(srv.queue_dir().iterdir())


# ---------------------------------------------------------------------------
# smarthost and routes

def test_smarthost_without_dns(tern_server, smtp_sink):
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    srv = tern_server(smarthost="[127.0.0.2]:%d" % port, relay_from="127.0.0.1",
                      dns_servers="127.0.0.1:%d" % free_port_on("127.0.0.1"))
    submit(srv, ["bob@anywhere.test", "carol@elsewhere.test"])
    msgs = sink.wait_messages(1, timeout=15)
    got = sorted(r for m in msgs for r in m.rcpt_tos)
    assert got == ["bob@anywhere.test", "carol@elsewhere.test"], got
    line = wait_deliver(srv, "bob@anywhere.test", "sent")[0]
    assert "relay=127.0.0.2[127.0.0.2]:%d" % port in line, line


def test_route_per_domain_before_smarthost(tern_server, smtp_sink):
    port = free_port_on("127.0.0.2", "127.0.0.3")
    smart = smtp_sink(addr="127.0.0.2", port=port)
    routed = smtp_sink(addr="127.0.0.3", port=port)
    srv = tern_server(smarthost="[127.0.0.2]:%d" % port, relay_from="127.0.0.1",
                      route="special.test [127.0.0.3]:%d" % port)
    submit(srv, ["bob@special.test", "carol@other.test"])
    assert [r for m in routed.wait_messages(1, 15) for r in m.rcpt_tos] == \
        ["bob@special.test"]
    assert [r for m in smart.wait_messages(1, 15) for r in m.rcpt_tos] == \
        ["carol@other.test"]


def test_repeated_size_parameter_with_smtplib(tern_server):
    """smtplib sends "size=N SIZE=N" when its caller passes SIZE; the
    same value twice is accepted (a different one is refused)."""
    import smtplib
    srv = tern_server()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        refused = s.sendmail(SENDER, ["bob@example.test"], BODY,
                             mail_options=["SIZE=%d" % len(BODY)])
        assert refused == {}
    assert len(wait_files(srv.maildir("bob"), 1)) == 1
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.send_line("MAIL FROM:<%s> SIZE=10 SIZE=11" % SENDER)
        assert c.read_reply().starts("501 5.5.4")


def test_relay_to_an_ipv6_only_mx(tern_server, smtp_sink, relay_dns):
    """An MX host with only an AAAA record (::1) is reached over IPv6, and
    the log names its address in brackets."""
    port = free_port_on("::1")
    sink = smtp_sink(addr="::1", port=port)
    dns = relay_dns({"mx": [("six.test", "mx1.six.test", 10)],
                     "a": [("mx1.six.test", "::1")]})
    srv = tern_server(**relay_config(dns, port))
    submit(srv, ["bob@six.test"])
    assert len(sink.wait_messages(1, timeout=15)) == 1
    line = wait_deliver(srv, "bob@six.test", "sent")[0]
    assert "relay=mx1.six.test[::1]:%d" % port in line, line
