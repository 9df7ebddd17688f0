# SPDX-License-Identifier: MIT
"""Self-tests of the relay peers: smtpsink.py (through the smtp_sink
fixture) and the private Postfix instances (postfix_peer), with Python's
smtplib or a raw socket as the client. They check the peers, not tern."""

import smtplib
import socket
import time

import pytest

from sinklib import Sink
from ternlib import SmtpConn

MSG = b"From: a@client.test\r\nTo: bob@remote.test\r\nSubject: hi\r\n\r\nbody\r\n.dot line\r\n"


def smtp(sink, timeout=10):
    return smtplib.SMTP(sink.addr, sink.port, local_hostname="client.test",
                        timeout=timeout)


def read_for(sock, seconds, until=None, limit=1 << 22):
    """Bytes received within `seconds` (stops early at EOF, when `until`
    is in them, or past `limit` bytes)."""
    got = b""
    deadline = time.monotonic() + seconds
    while len(got) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
        if until is not None and until in got:
            break
    return got


def raw(sink, timeout=5):
    return socket.create_connection((sink.addr, sink.port), timeout=timeout)


# ---------------------------------------------------------------------------
# normal mode

def test_sink_stores_message_with_options(smtp_sink):
    sink = smtp_sink()
    with smtp(sink) as c:
        c.ehlo()
        c.sendmail("alice@client.test", ["bob@remote.test", '"x y"@remote.test'],
                   MSG, mail_options=["BODY=8BITMIME", "RET=HDRS", "ENVID=Q+2Bx"],
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                                 "ORCPT=rfc822;Bob@Remote.test"])
        c.sendmail("", ["carol@remote.test"], MSG)
    msgs = sink.wait_messages(2)
    assert len(msgs) == 2, "got %d messages, want 2" % len(msgs)
    m = msgs[0]
    assert m.mail_from == "alice@client.test", "got %r" % m.mail_from
    assert m.rcpt_tos == ["bob@remote.test", '"x y"@remote.test'], "got %r" % m.rcpt_tos
    assert m.mail_option("ENVID") == "Q+2Bx", "got %r" % m.mail_option("ENVID")
    assert m.mail_option("RET") == "HDRS"
    assert m.rcpt_option("bob@remote.test", "ORCPT") == "rfc822;Bob@Remote.test"
    assert m.rcpt_option("bob@remote.test", "NOTIFY") == "SUCCESS,FAILURE"
    # dot-stuffing undone, bytes as sent
    assert m.data == MSG, "got %r, want %r" % (m.data, MSG)
    assert m.email()["Subject"] == "hi"
    assert m.helo == "client.test" and m.peer.startswith("127.0.0.1:")
    assert (m.conn, m.seq) == (msgs[1].conn, 1) and msgs[1].seq == 2
    assert msgs[1].mail_from == "", "null sender: got %r" % msgs[1].mail_from
    st = sink.stats()
    # the readiness probe is accepted but sends nothing: not a connection
    assert st["connections"] == 1 and st["per_connection"] == [2], st
    assert st["accepted"] == 2, st
    assert st["conns"][-1]["commands"][0] == "EHLO client.test", st["conns"][-1]


def test_sink_messages_per_connection(smtp_sink):
    sink = smtp_sink()
    for n in (3, 1):
        with smtp(sink) as c:
            for _ in range(n):
                c.sendmail("a@client.test", ["bob@remote.test"], MSG)
    sink.wait_messages(4)
    st = sink.stats()
    assert st["per_connection"] == [3, 1], "got %r, want [3, 1]" % st["per_connection"]
    assert st["messages"] == 4


def test_sink_script_tempfail_then_accept(smtp_sink):
    sink = smtp_sink(script={
        "rcpt": {"bob@remote.test": ["451 4.3.0 try later", "250 2.1.5 ok"],
                 "dave@remote.test": ["550 5.1.1 no such user"]},
        "data": {"carol@remote.test": ["452 4.3.1 full", "250 2.0.0 fine"]},
        "mail": {"late@client.test": ["421 4.3.2 bye\nmore text"]}})
    got = []
    for attempt in range(3):
        with smtp(sink) as c:
            c.ehlo()
            c.mail("a@client.test")
            got.append(c.rcpt("BOB@remote.test")[0])
            got.append(c.rcpt("dave@remote.test")[0])
            got.append(c.rcpt("eve@remote.test")[0])
    assert got == [451, 550, 250, 250, 550, 250, 250, 550, 250], "got %r" % got
    # end-of-data script, keyed by an accepted recipient
    codes = []
    for attempt in range(2):
        with smtp(sink) as c:
            c.ehlo()
            c.mail("a@client.test")
            c.rcpt("carol@remote.test")
            codes.append(c.data(MSG)[0])
    assert codes == [452, 250], "got %r" % codes
    # a multi-line scripted reply, and "close"-free 421 handling by smtplib
    with SmtpConn(sink.port, host=sink.addr) as c:
        c.ehlo()
        r = c.expect("MAIL FROM:<late@client.test>", "421")
        assert r.lines == ["421-4.3.2 bye", "421 more text"], "got %r" % r.lines
    st = sink.stats()
    assert st["rcpt_attempts"]["bob@remote.test"] == 3, st["rcpt_attempts"]
    assert len(sink.messages()) == 1, "only the 250 end-of-data stores"


def test_sink_script_delay_and_close(smtp_sink):
    sink = smtp_sink(script={"rcpt": {"*": [{"reply": "421 4.4.2 gone",
                                             "delay": 0.5, "close": True}]}})
    with SmtpConn(sink.port, host=sink.addr) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@client.test>", "250")
        t = time.monotonic()
        c.expect("RCPT TO:<bob@remote.test>", "421")
        took = time.monotonic() - t
        assert 0.4 < took < 5, "reply after %.2fs, want about 0.5s" % took
        c.wait_closed(5)


def test_sink_script_reread_between_connections(smtp_sink):
    sink = smtp_sink(script={"rcpt": {"*": ["450 4.2.0 later"]}})
    with smtp(sink) as c:
        c.ehlo()
        c.mail("a@client.test")
        assert c.rcpt("bob@remote.test")[0] == 450
    sink.set_script({})
    with smtp(sink) as c:
        c.sendmail("a@client.test", ["bob@remote.test"], MSG)
    assert len(sink.wait_messages(1)) == 1


@pytest.mark.parametrize("exts, want", [
    (None, ["PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES",
            "SIZE 10485760"]),
    (["8BITMIME"], ["8BITMIME"]),
    (["SIZE 1000", "PIPELINING"], ["PIPELINING", "SIZE 1000"]),
    ([], []),
])
def test_sink_extensions_advertised(smtp_sink, exts, want):
    sink = smtp_sink(extensions=exts)
    with SmtpConn(sink.port, host=sink.addr) as c:
        r = c.ehlo()
    got = r.texts()[1:]
    assert r.texts()[0] == "sink.test", "got %r" % r.texts()[0]
    assert got == want, "got %r, want %r" % (got, want)


@pytest.mark.parametrize("exts, mail, rcpt, want_mail, want_rcpt", [
    # parameters of extensions that were not advertised are refused
    (["PIPELINING"], "MAIL FROM:<a@c.test> BODY=8BITMIME", None, "555", None),
    (["PIPELINING"], "MAIL FROM:<a@c.test> SIZE=10", None, "555", None),
    (["8BITMIME"], "MAIL FROM:<a@c.test> RET=FULL", None, "555", None),
    (["8BITMIME"], "MAIL FROM:<a@c.test>", "RCPT TO:<b@r.test> NOTIFY=NEVER",
     "250", "555"),
    (["DSN"], "MAIL FROM:<a@c.test> ENVID=x RET=HDRS",
     "RCPT TO:<b@r.test> NOTIFY=NEVER ORCPT=rfc822;b@r.test", "250", "250"),
    (["SIZE 1000"], "MAIL FROM:<a@c.test> SIZE=1000", None, "250", None),
    (["SIZE 1000"], "MAIL FROM:<a@c.test> SIZE=1001", None, "552", None),
    ([], "MAIL FROM:<a@c.test> SMTPUTF8", None, "555", None),
])
def test_sink_extension_parameters(smtp_sink, exts, mail, rcpt, want_mail, want_rcpt):
    sink = smtp_sink(extensions=exts)
    with SmtpConn(sink.port, host=sink.addr) as c:
        c.ehlo()
        c.expect(mail, want_mail)
        if rcpt:
            c.expect(rcpt, want_rcpt)


def test_sink_size_limit_on_data(smtp_sink):
    sink = smtp_sink(extensions=["SIZE 100"])
    with smtp(sink) as c:
        c.ehlo()
        c.mail("a@client.test")
        c.rcpt("bob@remote.test")
        code = c.data(b"x" * 200 + b"\r\n")[0]
    assert code == 552, "got %d, want 552" % code
    assert sink.messages() == []


@pytest.mark.parametrize("exts, wire, want", [
    # MAIL and RCPT in one write without PIPELINING (RFC 2920 §3.1)
    (["8BITMIME"], b"MAIL FROM:<a@c.test>\r\nRCPT TO:<b@r.test>\r\n", ["MAIL"]),
    (None, b"MAIL FROM:<a@c.test>\r\nRCPT TO:<b@r.test>\r\n", []),
    # message bytes before the 354, even with PIPELINING
    (None, b"MAIL FROM:<a@c.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\nx\r\n.\r\n",
     ["DATA"]),
])
def test_sink_pipelining_violations(smtp_sink, exts, wire, want):
    sink = smtp_sink(extensions=exts)
    with SmtpConn(sink.port, host=sink.addr) as c:
        c.ehlo()
        c.send(wire)
        c.pending(0.5)
        c.send_line("QUIT")
        c.wait_closed(5)
    got = [v["command"] for v in sink.stats()["pipelining_violations"]]
    assert got == want, "got %r, want %r" % (got, want)


def test_sink_8bit_without_8bitmime_is_flagged(smtp_sink):
    sink = smtp_sink(extensions=["PIPELINING"])
    with smtp(sink) as c:
        c.sendmail("a@client.test", ["bob@remote.test"],
                   b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n")
        c.sendmail("a@client.test", ["bob@remote.test"], MSG)
    got = [m.has_8bit for m in sink.wait_messages(2)]
    assert got == [True, False], "got %r" % got


def test_sink_exits_after_lifetime(tmp_path):
    sink = Sink(tmp_path / "s", lifetime=1.0).start()
    t = time.monotonic()
    try:
        rc = sink.proc.wait(10)
    finally:
        if sink.running():
            sink.stop()
    took = time.monotonic() - t
    assert rc == 0, "exit status %s, want 0" % rc
    assert took < 5, "exited after %.1fs, want about 1s" % took


# ---------------------------------------------------------------------------
# misbehaviour modes

def test_mode_huge_reply(smtp_sink):
    sink = smtp_sink(mode="huge-reply")
    with raw(sink) as s:
        read_for(s, 5, until=b"\r\n")
        s.sendall(b"EHLO client.test\r\n")
        got = read_for(s, 10, until=b"\r\n")
    assert got.endswith(b"\r\n") and got.count(b"\r\n") == 1, \
        "want one line, got %d lines" % got.count(b"\r\n")
    assert got.startswith(b"250 ") and len(got) >= 100000, "got %d bytes" % len(got)


def test_mode_huge_multiline(smtp_sink):
    sink = smtp_sink(mode="huge-multiline")
    with SmtpConn(sink.port, host=sink.addr) as c:
        r = c.ehlo()
    total = sum(len(l) + 2 for l in r.raw_lines)
    assert len(r.lines) > 1000 and total >= 100000, \
        "got %d lines, %d bytes" % (len(r.lines), total)


def test_mode_endless_multiline(smtp_sink):
    sink = smtp_sink(mode="endless-multiline")
    with raw(sink) as s:
        read_for(s, 5, until=b"\r\n")
        s.sendall(b"EHLO client.test\r\n")
        got = read_for(s, 1.0, limit=1 << 20)
    lines = got.split(b"\r\n")[:-1]
    assert len(lines) > 500, "got %d lines in 1s" % len(lines)
    assert all(l.startswith(b"250-") for l in lines), "a line ends the reply"
    # the sink survives the client's going away
    with raw(sink) as s:
        assert read_for(s, 5, until=b"\r\n").startswith(b"220 ")


def test_mode_bare_lf(smtp_sink):
    sink = smtp_sink(mode="bare-lf")
    with raw(sink) as s:
        g = read_for(s, 5, until=b"\n")
        s.sendall(b"EHLO client.test\r\n")
        e = read_for(s, 5, until=b"250 ")
        e += read_for(s, 5, until=b"\n") if not e.endswith(b"\n") else b""
    assert g.startswith(b"220 ") and g.endswith(b"\n") and b"\r" not in g, "got %r" % g
    assert e.endswith(b"\n") and b"\r" not in e, "got %r" % e
    # otherwise valid: smtplib accepts LF-only lines and the mail is stored
    with smtp(sink) as c:
        c.sendmail("a@client.test", ["bob@remote.test"], MSG)
    msgs = sink.wait_messages(1)
    assert [m.data for m in msgs] == [MSG]
    assert msgs[0].rcpt_tos == ["bob@remote.test"]


def test_mode_disconnect_mid_data(smtp_sink):
    sink = smtp_sink(mode="disconnect-mid-data")
    with SmtpConn(sink.port, host=sink.addr) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@client.test>", "250")
        c.expect("RCPT TO:<bob@remote.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: x\r\n\r\n" + b"y" * 100 + b"\r\n")
        extra = c.wait_closed(5)
    assert extra == b"", "got a reply %r, want a bare close" % extra
    assert sink.messages() == []


def test_mode_slow(smtp_sink):
    sink = smtp_sink(mode="slow")
    with raw(sink) as s:
        got = read_for(s, 2.5)
    assert 2 <= len(got) <= 4 and b"220 sink.test"[:len(got)] == got, \
        "got %r in 2.5s, want 2-4 bytes of the greeting" % got


def test_mode_greeting_554(smtp_sink):
    sink = smtp_sink(mode="greeting-554")
    with SmtpConn(sink.port, host=sink.addr, greet=False) as c:
        c.expect(None, "554")
        c.expect("EHLO client.test", "503")
        c.expect("MAIL FROM:<a@client.test>", "503")
        c.expect("QUIT", "221")
        c.wait_closed(5)


def test_mode_tempfail_421(smtp_sink):
    sink = smtp_sink(mode="tempfail-421")
    with SmtpConn(sink.port, host=sink.addr) as c:
        assert c.greeting.code == 220
        c.expect("EHLO client.test", "421")
        c.wait_closed(5)


# ---------------------------------------------------------------------------
# Postfix

def test_postfix_mx_delivers_to_maildir(postfix_peer):
    pf = postfix_peer("mx", addr="127.0.0.3", domain="postfix.test")
    with smtplib.SMTP(pf.addr, pf.port, local_hostname="client.test", timeout=10) as c:
        c.sendmail("a@client.test", ["bob@postfix.test"], MSG)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
            c.sendmail("a@client.test", ["nosuch@postfix.test"], MSG)
        code = ei.value.recipients["nosuch@postfix.test"][0]
        assert code == 550, "unknown user: got %d, want 550" % code
    new = pf.maildir("bob") / "new"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (new.is_dir() and any(new.iterdir())):
        time.sleep(0.1)
    files = list(new.iterdir()) if new.is_dir() else []
    assert len(files) == 1, "got %d files in %s\n%s" % (len(files), new, pf.log_text())
    data = files[0].read_bytes()
    assert b"Subject: hi" in data and b"\n.dot line" in data, data


def test_postfix_relay_into_forwards_to_sink(postfix_peer, smtp_sink):
    sink = smtp_sink(addr="127.0.0.2")
    pf = postfix_peer("relay-into", relay_to=sink.hostport)
    with smtplib.SMTP(pf.addr, pf.port, local_hostname="client.test", timeout=10) as c:
        c.sendmail("a@client.test", ["bob@remote.test", "carol@else.test"], MSG)
    msgs = sink.wait_messages(1, timeout=20)
    assert len(msgs) == 1, "got %d messages at the sink\n%s" % (len(msgs), pf.log_text())
    m = msgs[0]
    assert m.mail_from == "a@client.test", m
    assert sorted(m.rcpt_tos) == ["bob@remote.test", "carol@else.test"], m
    assert m.helo == pf.myhostname, "got %r" % m.helo
    assert b"Subject: hi" in m.data
