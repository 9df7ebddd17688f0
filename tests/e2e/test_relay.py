# SPDX-License-Identifier: MIT
"""End-to-end relaying: MX delivery, retries, bounces, open-relay
refusal, misbehaving peers, Postfix on either side.

They use the smtp_sink and postfix_peer fixtures and relay_dns, a private
dnsmasq with the records a test gives (relay_dns(records) -> the server,
.addr "127.0.0.1:PORT"; records like
{"mx": [("remote.test", "mx1.remote.test", 10)],
 "a": [("mx1.remote.test", "127.0.0.2")], "null_mx": ["none.test"]}).

Every MX host gets its own 127.0.0.x address and all of them listen on one
port, tern's relay_port (RFC 5321 §5.1: the port is not in DNS).
"""

import re
import time

import pytest

from sinklib import free_port_on
from ternlib import SmtpConn, send_message, wait_files, wire_data

from relaylib import (BODY, SENDER, all_sink_messages, deliver_lines,
                      log_field, rcpt_blocks, read_bounce, relay_config,
                      submit, tern_queue, wait_deliver)


# ---------------------------------------------------------------------------
# delivery through MX

def test_relay_through_mx_to_sink(tern_server, smtp_sink, relay_dns):
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port))
    qid = submit(srv, ["bob@remote.test"])
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "got %d messages at the MX, want 1\n%s" % (
        len(msgs), srv.stderr_text()[-3000:])
    m = msgs[0]
    assert m.mail_from == SENDER, "MAIL FROM: got %r" % m.mail_from
    assert m.rcpt_tos == ["bob@remote.test"], "RCPT TO: got %r" % m.rcpt_tos
    assert m.helo == "mx.test", "EHLO name: got %r, want hostname" % m.helo
    # tern adds its Received line and keeps the rest as it came
    assert m.data.endswith(BODY), "body: got %r" % m.data[-200:]
    assert re.match(rb"Received: from .*\bby mx\.test\b", m.data, re.S), m.data[:300]
    lines = wait_deliver(srv, "bob@remote.test", "sent")
    assert len(lines) == 1, "want one status=sent line, got %r" % deliver_lines(srv)
    line = lines[0]
    assert log_field(line, "id") == qid, line
    assert log_field(line, "relay") == "mx1.remote.test[127.0.0.2]:%d" % port, line
    assert log_field(line, "dsn") == "2.0.0", line
    assert log_field(line, "reply").startswith("250"), line


def test_relay_mx_preference(tern_server, smtp_sink, relay_dns):
    # RFC 5321 §5.1: lower preference value first
    port = free_port_on("127.0.0.2", "127.0.0.3")
    near = smtp_sink(addr="127.0.0.2", port=port)
    far = smtp_sink(addr="127.0.0.3", port=port)
    dns = relay_dns({"mx": [("remote.test", "far.remote.test", 20),
                             ("remote.test", "near.remote.test", 10)],
                      "a": [("near.remote.test", "127.0.0.2"),
                            ("far.remote.test", "127.0.0.3")]})
    srv = tern_server(**relay_config(dns, port))
    submit(srv, ["bob@remote.test"])
    assert len(near.wait_messages(1, timeout=15)) == 1, srv.stderr_text()[-3000:]
    time.sleep(0.5)
    assert far.messages() == [], "the less preferred MX got mail"
    assert far.stats()["connections"] == 0, "tern talked to the less preferred MX"


@pytest.mark.parametrize("first", ["down", "tempfail-421", "greeting-554"])
def test_relay_mx_fallback(tern_server, smtp_sink, relay_dns, first):
    """The most preferred MX refuses connections (nothing listens on
    127.0.0.4), or answers 421, or greets with 554: the next MX gets the
    message in the same attempt (RFC 5321 §5.1, §3.1)."""
    port = free_port_on("127.0.0.2", "127.0.0.4")
    bad = None if first == "down" else smtp_sink(addr="127.0.0.4", port=port, mode=first)
    good = smtp_sink(addr="127.0.0.2", port=port)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10),
                             ("remote.test", "mx2.remote.test", 20)],
                      "a": [("mx1.remote.test", "127.0.0.4"),
                            ("mx2.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port))
    submit(srv, ["bob@remote.test"])
    msgs = good.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "fallback MX got %d messages\n%s" % (
        len(msgs), srv.stderr_text()[-3000:])
    line = wait_deliver(srv, "bob@remote.test", "sent")[0]
    assert "[127.0.0.2]" in log_field(line, "relay"), line
    if bad is not None:
        # a 554 greeting gets no command from tern: count TCP connections
        assert bad.stats()["accepted"] >= 2, "the first MX was not tried"
    assert deliver_lines(srv, "bob@remote.test", "bounced") == []


def test_relay_implicit_mx(tern_server, smtp_sink, relay_dns):
    # RFC 5321 §5.1: no MX records, the domain's own address is the MX
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    dns = relay_dns({"mx": [], "a": [("remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port))
    submit(srv, ["bob@remote.test"])
    assert len(sink.wait_messages(1, timeout=15)) == 1, srv.stderr_text()[-3000:]
    line = wait_deliver(srv, "bob@remote.test", "sent")[0]
    assert log_field(line, "relay") == "remote.test[127.0.0.2]:%d" % port, line


# ---------------------------------------------------------------------------
# retries and bounces

def test_relay_tempfail_then_retry(tern_server, smtp_sink, relay_dns):
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port, script={
        "rcpt": {"bob@remote.test": ["451 4.3.0 try later", "250 2.1.5 ok"]}})
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port, retry_min="1s", retry_max="2s"))
    submit(srv, ["bob@remote.test"])
    msgs = sink.wait_messages(1, timeout=20)
    assert len(msgs) == 1, "got %d messages after the retry\n%s" % (
        len(msgs), "\n".join(deliver_lines(srv)))
    deferred = deliver_lines(srv, "bob@remote.test", "deferred")
    assert len(deferred) == 1, "want one deferred line, got %r" % deliver_lines(srv)
    assert log_field(deferred[0], "dsn") == "4.3.0", deferred[0]
    assert log_field(deferred[0], "reply").startswith("451 4.3.0"), deferred[0]
    assert len(wait_deliver(srv, "bob@remote.test", "sent")) == 1
    assert sink.stats()["rcpt_attempts"]["bob@remote.test"] == 2
    # a deferral is not a bounce: nothing for the sender (delay_warning 4h)
    assert wait_files(srv.maildir("alice"), 1, timeout=1) == []


def test_relay_permfail_bounces_to_local_sender(tern_server, smtp_sink, relay_dns):
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port, script={
        "rcpt": {"bob@remote.test": ["550 5.1.1 no such user here"]}})
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port))
    submit(srv, ["bob@remote.test"])
    msg, per_msg, per_rcpt = read_bounce(srv)
    assert msg["To"] and "alice@example.test" in msg["To"], "To: got %r" % msg["To"]
    assert per_msg["Reporting-MTA"].replace(" ", "").lower() == "dns;mx.test", \
        "Reporting-MTA: got %r" % per_msg["Reporting-MTA"]
    blocks = rcpt_blocks(per_rcpt)
    assert list(blocks) == ["bob@remote.test"], "got %r" % list(blocks)
    b = blocks["bob@remote.test"]
    assert b["Action"].lower() == "failed", "Action: got %r" % b["Action"]
    assert b["Status"] == "5.1.1", "Status: got %r" % b["Status"]
    assert b["Remote-MTA"].replace(" ", "").lower() == "dns;mx1.remote.test", b["Remote-MTA"]
    diag = b["Diagnostic-Code"]
    assert diag.lower().startswith("smtp;") and "550 5.1.1 no such user here" in diag, diag
    # the returned content carries the original Subject
    last = list(msg.iter_parts())[-1]
    assert b"Subject: relay" in last.as_bytes(), "original headers missing"
    assert sink.messages() == []
    line = wait_deliver(srv, "bob@remote.test", "bounced")
    assert len(line) == 1 and log_field(line[0], "dsn") == "5.1.1", deliver_lines(srv)


def test_relay_mixed_outcomes_in_one_message(tern_server, smtp_sink, relay_dns):
    """bob 250, carol 550, dave 451 then 250: bob and dave get the message
    once each, alice gets one DSN naming carol alone."""
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port, script={"rcpt": {
        "carol@remote.test": ["550 5.1.1 unknown"],
        "dave@remote.test": ["451 4.2.0 busy", "250 2.1.5 ok"]}})
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port, retry_min="1s", retry_max="2s"))
    submit(srv, ["bob@remote.test", "carol@remote.test", "dave@remote.test"])
    wait_deliver(srv, "dave@remote.test", "sent", timeout=20)
    got = sorted(r for m in sink.messages() for r in m.rcpt_tos)
    assert got == ["bob@remote.test", "dave@remote.test"], \
        "recipients at the MX: got %r\n%s" % (got, "\n".join(deliver_lines(srv)))
    msg, _, per_rcpt = read_bounce(srv)
    blocks = rcpt_blocks(per_rcpt)
    assert list(blocks) == ["carol@remote.test"], "DSN names %r" % list(blocks)
    assert blocks["carol@remote.test"]["Status"] == "5.1.1"
    time.sleep(1.0)
    assert len(wait_files(srv.maildir("alice"), 2, timeout=0.5)) == 1, "a second DSN"
    assert [len(deliver_lines(srv, r, "sent")) for r in
            ("bob@remote.test", "carol@remote.test", "dave@remote.test")] == [1, 0, 1]


def test_relay_several_messages_on_one_connection(tern_server, smtp_sink, relay_dns):
    """Messages queued for one destination go out over one connection
    when they are ready together: the MX is down while they queue, then a
    flush sends all three (RSET-free MAIL after each end of data)."""
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port, start=False)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port, retry_min="1h"))
    with srv.connect() as c:
        c.ehlo()
        for i in range(3):
            submit(srv, ["u%d@remote.test" % i], conn=c)
        c.expect("QUIT", "221")
    for i in range(3):
        assert wait_deliver(srv, "u%d@remote.test" % i, "deferred"), deliver_lines(srv)
    sink.start()
    r = tern_queue(srv, "flush")
    assert r.returncode == 0, "tern queue flush: %d %s" % (r.returncode, r.stderr)
    msgs = sink.wait_messages(3, timeout=15)
    assert len(msgs) == 3, "got %d messages" % len(msgs)
    st = sink.stats()
    assert st["per_connection"] == [3], \
        "messages per connection: got %r, want [3]" % st["per_connection"]


# ---------------------------------------------------------------------------
# open relay

# (RCPT form, why it must not relay). relay_from = 10.0.0.0/8 makes
# 127.0.0.1 untrusted; example.test is local, remote.test and other.test
# have MX hosts with sinks. Each must be refused at RCPT (5xx) and nothing
# may reach a sink; the exact code is 550 5.7.1 for non-local domains.
OPEN_RELAY_FORMS = [
    ("bob@remote.test", "plain non-local"),
    ("bob%remote.test@example.test", "percent hack through a local domain"),
    ("bob%other.test@remote.test", "percent hack"),
    ("remote.test!bob@example.test", "bang path through a local domain"),
    ("remote.test!bob", "bang path without a domain"),
    ("@example.test,@mx.test:bob@remote.test", "source route (RFC 5321 §4.1.1.3)"),
    ("@example.test:bob@remote.test", "one-hop source route"),
    ('"bob@remote.test"@example.test', "quoted local part with @"),
    ('"bob%remote.test"@example.test', "quoted local part with %"),
    ('"remote.test!bob"@example.test', "quoted bang path"),
    ("bob@remote.test.", "trailing dot"),
    ("bob@remote.test..", "two trailing dots"),
    ("bob@[127.0.0.2]", "IPv4 literal (RFC 5321 §4.1.3)"),
    ("bob@[IPv6:::1]", "IPv6 literal"),
    ("bob@[127.0.0.2].", "literal with a trailing dot"),
    ("bob@REMOTE.TEST", "upper case"),
]
NON_LOCAL = {"bob@remote.test", "bob%other.test@remote.test",
             "@example.test,@mx.test:bob@remote.test",
             "@example.test:bob@remote.test", "bob@remote.test.",
             "bob@[127.0.0.2]", "bob@[IPv6:::1]", "bob@REMOTE.TEST"}


def test_open_relay_forms_refused(tern_server, smtp_sink, relay_dns):
    port = free_port_on("127.0.0.2", "127.0.0.3")
    sinks = [smtp_sink(addr="127.0.0.2", port=port),
             smtp_sink(addr="127.0.0.3", port=port)]
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10),
                             ("other.test", "mx1.other.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2"),
                            ("mx1.other.test", "127.0.0.3")]})
    srv = tern_server(**relay_config(dns, port, relay_from="10.0.0.0/8"))
    bad = []
    with srv.connect() as c:
        c.ehlo()
        for rcpt, why in OPEN_RELAY_FORMS:
            c.expect("MAIL FROM:<%s>" % SENDER, "250")
            c.send_line("RCPT TO:<%s>" % rcpt)
            r = c.read_reply()
            want = "550 5.7.1" if rcpt in NON_LOCAL else "5"
            if not r.starts(want):
                bad.append("%s (%s): got %r, want %s" % (rcpt, why, r.first, want))
                if r.code == 250:
                    # see whether it would really go out
                    c.expect("DATA", "354")
                    c.send(wire_data(BODY))
                    c.read_reply(30)
                    continue
            c.expect("RSET", "250")
        # the same untrusted client may still send to a local user
        send_message(c, SENDER, ["bob@example.test"], BODY, ehlo=False)
        c.expect("QUIT", "221")
    time.sleep(2.0)
    leaked = all_sink_messages(*sinks)
    assert not bad and not leaked, "open relay:\n%s\nat sinks: %r" % (
        "\n".join(bad), leaked)
    assert [s.stats()["connections"] for s in sinks] == [0, 0], \
        "tern connected to a sink"
    assert len(wait_files(srv.maildir("bob"), 1)) == 1, "local mail lost"


def test_trusted_client_may_relay(tern_server, smtp_sink, relay_dns):
    """The control for the test above: from a relay_from address the plain
    form goes out."""
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port, relay_from="127.0.0.1/32"))
    submit(srv, ["bob@remote.test"])
    assert len(sink.wait_messages(1, timeout=15)) == 1


# ---------------------------------------------------------------------------
# misbehaving peers: tern defers (or, for bare LF, delivers) and lives on

@pytest.mark.parametrize("mode, want", [
    ("huge-reply", "deferred"),
    ("huge-multiline", "deferred"),
    ("endless-multiline", "deferred"),
    ("disconnect-mid-data", "deferred"),
    ("slow", "deferred"),
    ("tempfail-421", "deferred"),
    ("greeting-554", "deferred"),
    # a lenient reading of RFC 5321 §2.3.8; the integrator may want deferred
    ("bare-lf", "sent"),
])
def test_relay_misbehaving_peer(tern_server, smtp_sink, relay_dns, mode, want):
    port = free_port_on("127.0.0.2")
    smtp_sink(addr="127.0.0.2", port=port, mode=mode, lifetime=60)
    dns = relay_dns({"mx": [("remote.test", "mx1.remote.test", 10)],
                      "a": [("mx1.remote.test", "127.0.0.2")]})
    srv = tern_server(**relay_config(dns, port, retry_min="1h"))
    submit(srv, ["bob@remote.test"])
    lines = wait_deliver(srv, "bob@remote.test", want, timeout=20)
    assert lines, "want status=%s, got %r" % (want, deliver_lines(srv))
    srv.assert_alive()
    with srv.connect() as c:
        c.ehlo()


# ---------------------------------------------------------------------------
# against a real MTA

def test_relay_to_postfix_mx(tern_server, postfix_peer, relay_dns):
    pf = postfix_peer("mx", addr="127.0.0.3", domain="postfix.test")
    dns = relay_dns({"mx": [("postfix.test", "mx.postfix.test", 10)],
                      "a": [("mx.postfix.test", "127.0.0.3")]})
    srv = tern_server(**relay_config(dns, pf.port))
    submit(srv, ["bob@postfix.test", "nosuch@postfix.test"])
    files = wait_files(pf.maildir("bob"), 1, timeout=20)
    assert len(files) == 1, "Postfix Maildir: %d files\n%s" % (len(files), pf.log_text())
    _, _, per_rcpt = read_bounce(srv)
    assert list(rcpt_blocks(per_rcpt)) == ["nosuch@postfix.test"]


def test_postfix_relays_into_tern(tern_server, postfix_peer):
    srv = tern_server()
    pf = postfix_peer("relay-into", relay_to="127.0.0.1:%d" % srv.port)
    with SmtpConn(pf.port, host=pf.addr) as c:
        send_message_any(c, "someone@client.test", ["bob@example.test"], BODY)
    assert len(wait_files(srv.maildir("bob"), 1, timeout=20)) == 1, pf.log_text()


def send_message_any(conn, sender, rcpts, data):
    """send_message for a peer that is not tern (any 250 after the dot)."""
    conn.ehlo()
    conn.expect("MAIL FROM:<%s>" % sender, "250")
    for r in rcpts:
        conn.expect("RCPT TO:<%s>" % r, "250")
    conn.expect("DATA", "354")
    conn.send(wire_data(data))
    conn.expect(None, "250", timeout=30)
