# SPDX-License-Identifier: MIT
"""The session log: every refusal carries the reply the client got
(result="550 5.1.1 ..."), the accepted line names the client, HELO,
sender, size, every recipient (with ORCPT= where it names another
address), TLS and the account, each session's disconnect line says why it
ended, log_format = json writes one JSON object a line, and the README's
example lines have the shape of the real ones."""

import json
import re
import time

from ternlib import REPO_ROOT, tail, wire_data
from tlslib import ALICE, BOB, PASSWORDS, auth_plain


def local_port(c):
    return c.sock.getsockname()[1]


def log_line(srv, pattern, timeout=10.0):
    line = srv.wait_log(pattern, timeout=timeout)
    assert line is not None, "no log line matching %r:\n%s" % (
        pattern, tail(srv.stderr_text()))
    return line


def result_of(line):
    m = re.search(r' result="([^"]*)"', line)
    assert m, "no result= in %r" % line
    return m.group(1)


def refused(c, srv, line, want_code, pattern):
    """Sends line, checks the reply code, and that the log line matching
    pattern carries exactly that reply as result=."""
    r = c.cmd(line)
    if r.code != want_code:
        c.fail("%s: want %d, got %r" % (line, want_code, str(r)))
    got = log_line(srv, pattern + r'.* result="%s"' % re.escape(r.last))
    assert result_of(got) == r.last
    return got


def disconnect(srv, c_port, reason, timeout=10.0):
    return log_line(srv, r"event=disconnect client=127\.0\.0\.1:%d "
                    r"messages=\d+ reason=%s$" % (c_port, reason),
                    timeout=timeout)


def sess_of(line):
    return re.search(r"\bsess=([0-9a-f]{8})\b", line).group(1)


def session_lines(srv, c_port):
    """The log lines of the session from 127.0.0.1:c_port."""
    text = srv.stderr_text()
    m = re.search(r"sess=([0-9a-f]{8}) event=connect client=127\.0\.0\.1:%d "
                  % c_port, text)
    assert m, "no connect line for port %d:\n%s" % (c_port, tail(text))
    return [l for l in text.splitlines() if "sess=%s " % m.group(1) in l]


# ---------------------------------------------------------------------------
# refusals

def test_refused_rcpt_logs_the_reply(tern_server):
    srv = tern_server()
    with srv.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.net>", "250")
        line = refused(c, srv, "RCPT TO:<nobody@example.test>", 550,
                       r"info smtp sess=\w+ event=rcpt "
                       r"rcpt=<nobody@example\.test> reason=no_such_user")
        assert result_of(line).startswith("550 5.1.1 ")
        # relaying: 5.7.1, and the reason for it
        line = refused(c, srv, "RCPT TO:<x@elsewhere.test>", 550,
                       r"event=rcpt rcpt=<x@elsewhere\.test> "
                       r"reason=relay_denied")
        assert result_of(line) == "550 5.7.1 Relay access denied"
        refused(c, srv, "RCPT TO:<x%elsewhere.test@example.test>", 550,
                r"event=rcpt rcpt=<x%elsewhere\.test@example\.test> "
                r"reason=local_part_route")
        c.expect("QUIT", "221")


def test_refused_commands_log_the_reply(tern_server):
    srv = tern_server()
    with srv.connect() as c:
        c.ehlo()
        # the engine's own refusals: syntax, order
        refused(c, srv, "MAIL FROM:bad", 501, r"info smtp sess=\w+ "
                r"event=refused")
        refused(c, srv, "RCPT TO:<alice@example.test>", 503,
                r"event=refused")
        refused(c, srv, "XYZZY", 500, r"event=refused")
        c.expect("QUIT", "221")


def test_refused_message_logs_the_reply(tern_server):
    """A message over size_max: 552 5.3.4 at the end of DATA, logged as a
    warning (a limit) with the sender."""
    srv = tern_server(size_max="1K")
    with srv.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<big@example.net>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(wire_data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 40
                         + b"y" * 3000 + b"\r\n"))
        r = c.read_reply()
        assert r.code == 552, str(r)
        line = log_line(srv, r"warn smtp sess=\w+ event=data "
                        r"from=<big@example\.net> result=")
        assert result_of(line) == r.last
        c.expect("QUIT", "221")


def test_submission_refusals_log_the_reply(sub_server):
    srv = sub_server(auth_failures_max="2")
    # MAIL before AUTH on submission: 530 5.7.0
    c = srv.plain("submission")
    with c:
        c.ehlo()
        line = refused(c, srv, "MAIL FROM:<%s>" % ALICE, 530,
                       r"event=refused")
        assert result_of(line).startswith("530 5.7.0 ")
        c.expect("QUIT", "221")
    # a sender the account does not own: 553 5.7.1
    c = srv.login(ALICE)
    with c:
        line = refused(c, srv, "MAIL FROM:<%s>" % BOB, 553,
                       r"event=mail from=<bob@example\.org> "
                       r"account=alice@example\.org")
        assert result_of(line).startswith("553 5.7.1 ")
        c.expect("QUIT", "221")
    # failed AUTH: the 535 on the auth_failed line (fail2ban's shape
    # kept); the last one is a 421 of its own, and the session ends at
    # the limit
    c, _ = srv.starttls("submission")
    port = local_port(c)
    with c:
        r = auth_plain(c, ALICE, "wrong-1")
        assert r.code == 535, str(r)
        line = log_line(srv, r"warn smtp sess=\w+ event=auth_failed "
                        r"client=127\.0\.0\.1 .* result=")
        assert result_of(line) == r.last
        r = auth_plain(c, ALICE, "wrong-2")
        assert r.code == 421, str(r)
        line = log_line(srv, r"warn smtp sess=%s event=refused result="
                        % sess_of(line))
        assert result_of(line) == r.last
        c.wait_closed()
    failed = [l for l in session_lines(srv, port) if "auth_failed" in l]
    assert len(failed) == 2 and "result=" not in failed[1], failed
    disconnect(srv, port, "limit")
    for pw in ("wrong-1", "wrong-2", PASSWORDS[ALICE]):
        assert pw not in srv.stderr_text()


# ---------------------------------------------------------------------------
# the accepted message

def test_accepted_line(tern_server):
    srv = tern_server()
    with srv.connect() as c:
        c.ehlo("helo.example.net")
        c.expect("MAIL FROM:<sender@example.net>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("RCPT TO:<bob@example.test> "
                 "ORCPT=rfc822;Bob+2BOld@example.org", "250")
        # an ORCPT that names the same address is not repeated
        c.expect("RCPT TO:<demo@example.test> "
                 "ORCPT=rfc822;demo@EXAMPLE.test", "250")
        # an alias: one RCPT, two deliveries
        c.expect("RCPT TO:<team@example.test>", "250")
        c.expect("DATA", "354")
        c.send(wire_data(b"Subject: log\r\n\r\nhello\r\n"))
        r = c.read_reply()
        qid = re.search(r"queued as (\S+)", r.last).group(1)
        c.expect("QUIT", "221")
    line = log_line(srv, r"queue id=%s event=accepted" % qid)
    m = re.search(r"info queue id=%s event=accepted sess=[0-9a-f]{8} "
                  r"client=127\.0\.0\.1:\d+ helo=helo\.example\.net "
                  r"from=<sender@example\.net> size=(\d+) nrcpt=(\d+) "
                  r"to=(\S+) orcpt=(\S+) tls=none$" % qid, line)
    assert m, line
    assert int(m.group(1)) > len("Subject: log\r\n\r\nhello\r\n")
    assert m.group(3) == ("<alice@example.test>,<bob@example.test>,"
                          "<demo@example.test>,<team@example.test>"), line
    assert m.group(4) == "<bob@example.test>:rfc822;Bob+2BOld@example.org"
    # every RCPT accepted, team (alice and bob again) too
    assert m.group(2) == "4", line


def test_accepted_line_names_tls_and_account(sub_server):
    srv = sub_server()
    c = srv.login(ALICE, role="submission")
    with c:
        version = c.tls.version()
        c.expect("MAIL FROM:<%s>" % ALICE, "250")
        c.expect("RCPT TO:<%s>" % BOB, "250")
        c.expect("DATA", "354")
        c.send(wire_data(b"Subject: tls\r\n\r\nhello\r\n"))
        r = c.read_reply()
        assert r.code == 250, str(r)
        c.expect("QUIT", "221")
    line = log_line(srv, r"event=accepted .* from=<alice@example\.org> ")
    assert re.search(r" to=<bob@example\.org> tls=%s "
                     r"account=alice@example\.org$" % re.escape(version),
                     line), line


# ---------------------------------------------------------------------------
# why sessions end

def test_disconnect_reasons(tern_server):
    srv = tern_server(timeout_command="1s", junk_max="2")
    # quit
    with srv.connect() as c:
        port = local_port(c)
        c.ehlo()
        c.expect("QUIT", "221")
    disconnect(srv, port, "quit")
    # peer closed without QUIT
    c = srv.connect()
    port = local_port(c)
    c.ehlo()
    c.close()
    disconnect(srv, port, "peer_closed")
    # a limit: junk_max=2, the third NOOP gets 421
    with srv.connect() as c:
        port = local_port(c)
        c.ehlo()
        c.expect("NOOP", "250")
        c.expect("NOOP", "250")
        c.expect("NOOP", "421")
        c.wait_closed()
    disconnect(srv, port, "limit")
    log_line(srv, r"warn smtp sess=\w+ event=refused "
             r"result=\"421 4\.7\.0 .*junk")
    # cut in the middle of a message
    c = srv.connect()
    port = local_port(c)
    c.ehlo()
    c.expect("MAIL FROM:<a@example.net>", "250")
    c.expect("RCPT TO:<alice@example.test>", "250")
    c.expect("DATA", "354")
    c.send(b"Subject: cut\r\n\r\nhalf a mess")
    time.sleep(0.2)
    c.close()
    disconnect(srv, port, "aborted_in_data")
    # silence: timeout_command
    c = srv.connect()
    port = local_port(c)
    c.ehlo()
    c.wait_closed(15)
    c.close()
    disconnect(srv, port, "timeout", timeout=15)


def test_disconnect_at_shutdown(tern_server):
    srv = tern_server()
    c = srv.connect()
    port = local_port(c)
    c.ehlo()
    srv.stop()
    c.close()
    disconnect(srv, port, "shutdown", timeout=1)


def test_disconnect_tls_failed(sub_server):
    """Clear text on the submissions port: the handshake fails."""
    srv = sub_server()
    c = srv.plain("submissions", greet=False, timeout=5)
    port = local_port(c)
    with c:
        try:
            c.send_line("EHLO client.example.org")
            c.wait_closed(15)
        except OSError:
            pass
    disconnect(srv, port, "tls_failed")


# ---------------------------------------------------------------------------
# JSON lines

def test_json_format(tern_server):
    srv = tern_server(log_format="json")
    with srv.connect() as c:
        port = local_port(c)
        c.ehlo()
        c.expect("MAIL FROM:<a@example.net>", "250")
        # a quoted local part with a space and a key=value in it stays
        # one value: no peer can add a field
        c.expect('RCPT TO:<"x event=evil"@elsewhere.test>', "550")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(wire_data(b"Subject: json\r\n\r\nhello\r\n"))
        c.read_reply()
        c.expect("QUIT", "221")
    assert srv.wait_log(r'"event":"disconnect","client":"127\.0\.0\.1:%d"'
                        % port), tail(srv.stderr_text())
    objs = []
    for line in srv.stderr_text().splitlines():
        o = json.loads(line)
        assert isinstance(o, dict) and o["level"] in (
            "debug", "info", "warn", "error"), line
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                        o["ts"]), line
        assert all(isinstance(v, str) for v in o.values()), line
        objs.append(o)
    rcpt = [o for o in objs if o.get("subsystem") == "smtp" and
            o.get("event") == "rcpt"]
    assert len(rcpt) == 1, rcpt
    assert rcpt[0]["rcpt"] == r"<\x22x\x20event=evil\x22@elsewhere.test>"
    assert rcpt[0]["result"] == "550 5.7.1 Relay access denied"
    acc = [o for o in objs if o.get("event") == "accepted"]
    assert len(acc) == 1 and acc[0]["subsystem"] == "queue", acc
    assert acc[0]["to"] == "<alice@example.test>"
    assert acc[0]["from"] == "<a@example.net>"
    assert acc[0]["helo"] == "client.example.org"
    end = [o for o in objs if o.get("event") == "disconnect" and
           o.get("client") == "127.0.0.1:%d" % port]
    assert len(end) == 1 and end[0]["reason"] == "quit", end


# ---------------------------------------------------------------------------
# the README shows what tern prints

def keys_of(line):
    return re.findall(r"(?:^| )([a-z_]+)=", line)


def test_readme_log_examples_match(tern_server):
    """The log lines of "Your first mail" have the keys, in order, of
    the lines tern prints for that session."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("## Your first mail", 1)[1].split("```", 4)[3]
    examples = [l for l in block.splitlines() if l.startswith("... ")]
    assert len(examples) >= 3, block
    srv = tern_server()
    with srv.connect() as c:
        port = local_port(c)
        c.ehlo("client.example.org")
        c.expect("MAIL FROM:<you@example.org>", "250")
        c.expect("RCPT TO:<demo@localhost>", "250")
        c.expect("DATA", "354")
        c.send(wire_data(b"Subject: first mail\r\n\r\nHello from swaks\r\n"))
        c.read_reply()
        c.expect("QUIT", "221")
    disconnect(srv, port, "quit")
    real = srv.stderr_text().splitlines()
    for ex in examples:
        level, rest = ex.split(" ", 2)[1:]
        subsystem = rest.split(" ")[0]
        event = re.search(r"\b(event|status)=(\S+)", rest).group(0)
        same = [l for l in real if " %s %s " % (level, subsystem) in l and
                re.search(r"\b%s\b" % re.escape(event), l)]
        assert same, "no real line like %r:\n%s" % (ex, "\n".join(real))
        assert keys_of(rest) == keys_of(same[-1].split(" ", 2)[2]), \
            "README %r\nreal   %r" % (ex, same[-1])


def test_readme_logs_paragraph_matches(tern_server):
    """The session examples of the Operations "Logs." paragraph have the
    keys of the real lines."""
    readme = (REPO_ROOT / "README.md").read_text()
    para = readme.split("**Logs.**", 1)[1].split("\n**", 1)[0]
    examples = [l for l in para.splitlines()
                if l.startswith(("smtp sess=", "queue id="))]
    assert len(examples) >= 3, para
    srv = tern_server()
    with srv.connect() as c:
        port = local_port(c)
        c.ehlo()
        c.expect("MAIL FROM:<a@example.net>", "250")
        c.expect("RCPT TO:<x@example.net>", "550")
        c.expect("RSET", "250")
        c.expect("MAIL FROM:bad", "501")
        c.expect("QUIT", "221")
    disconnect(srv, port, "quit")
    real = [l.split(" ", 2)[2] for l in session_lines(srv, port)]
    for ex in examples:
        if ex.startswith("queue id="):
            # the real line with TLS and AUTH: test_accepted_line_names_
            # tls_and_account
            assert keys_of(ex) == ["id", "event", "sess", "client", "helo",
                                   "from", "size", "nrcpt", "to", "tls",
                                   "account"], ex
            continue
        event = re.search(r"\bevent=\S+", ex).group(0)
        same = [l for l in real if re.search(r"\b%s\b" % event, l)]
        assert same, "no real line like %r:\n%s" % (ex, "\n".join(real))
        assert keys_of(ex) == keys_of(same[0]), \
            "README %r\nreal   %r" % (ex, same[0])
