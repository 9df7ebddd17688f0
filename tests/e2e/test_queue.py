# SPDX-License-Identifier: MIT
"""End-to-end `tern queue` (and `mailq`): list, show (with the delivery
history), flush, hold, release and delete over the control socket, the
client's exit codes, and clients that misbehave on the socket.

Messages stay queued because they relay through a smarthost,
[127.0.0.2]:PORT, where nothing listens at first: each attempt fails with
"Connection refused" and is deferred for retry_min = 1h. A test that wants
a delivery starts an smtp_sink on that address and port.
"""

import json
import os
import re
import socket
import stat
import subprocess
import time

import pytest

from sinklib import free_port_on
from ternlib import SmtpConn, send_message, show

SENDER = "sender@example.org"
RCPTS = ["bob@remote.test", "carol@remote.test"]
BODY = (b"From: sender@example.org\r\nTo: bob@remote.test\r\n"
        b"Subject: queue test\r\nX-Queue-Test: yes\r\n\r\nhello\r\n")
CONTROL_TIMEOUT = 10        # serve_control.c CONTROL_TIMEOUT_SECONDS
GONE = "AAAAAAAAAAAAAAAAAAAA"   # a well-formed id that is not queued


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture
def qsrv(tern_server):
    """A server whose relay recipients stay deferred (see the module
    doc); .relay_port is the smarthost's port on 127.0.0.2."""
    port = free_port_on("127.0.0.2")
    srv = tern_server(smarthost="[127.0.0.2]:%d" % port, relay_from="127.0.0.1", retry_min="1h",
                      retry_max="2h", relay_timeout_connect="2s")
    srv.relay_port = port
    return srv


def tern_queue(srv, *args, binary=None, config=True):
    """Runs `tern queue ARGS --config FILE`; returns the CompletedProcess
    (text)."""
    argv = [str(binary or srv.binary)]
    if binary is None:
        argv.append("queue")
    argv += list(args)
    if config:
        argv += ["--config", str(srv.config_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          cwd=str(srv.workdir))


def ok(srv, *args, **kw):
    """tern queue ARGS, which must exit 0; returns stdout."""
    p = tern_queue(srv, *args, **kw)
    assert p.returncode == 0, "tern queue %s: exit %d, want 0\nstderr: %s" % (
        " ".join(args), p.returncode, p.stderr)
    return p.stdout


def listing(srv):
    """`tern queue list --json` as a dict id -> message."""
    out = ok(srv, "list", "--json")
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise AssertionError("list --json is not JSON (%s): %s" % (e, out))
    assert isinstance(doc, list), "list --json: got %s, want an array" % (
        type(doc).__name__)
    return {m["id"]: m for m in doc}


def submit(srv, rcpts=RCPTS, data=BODY, sender=SENDER):
    with SmtpConn(srv.port) as c:
        qid = send_message(c, sender, rcpts, data)
        c.expect("QUIT", "221")
    return qid


def wait_attempts(srv, qid, n, timeout=15.0):
    """Until every recipient of qid is deferred with >= n attempts;
    returns the message."""
    deadline = time.monotonic() + timeout
    while True:
        m = listing(srv).get(qid)
        if m is not None and all(r["state"] == "deferred" and
                                 r["attempts"] >= n
                                 for r in m["recipients"]):
            return m
        if time.monotonic() > deadline:
            raise AssertionError("%s: want every recipient deferred with "
                                 "%d attempts, got %r\n%s" % (
                                     qid, n, m, srv.stderr_text()[-2000:]))
        time.sleep(0.1)


def control_path(srv):
    return srv.state_dir / "control.sock"


def raw(srv, data, shut=False, timeout=15.0):
    """Sends data to the control socket and reads until EOF; returns what
    came back."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(control_path(srv)))
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return read_all(s, timeout)
    finally:
        s.close()


def read_all(s, timeout):
    got = b""
    deadline = time.monotonic() + timeout
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError("no EOF within %.0fs; got %s" % (
                timeout, show(got)))
        if not chunk:
            return got
        got += chunk


def assert_serves(srv):
    """The server still answers a control request and SMTP."""
    out = raw(srv, b"list json\n")
    assert out.startswith(b"ok\n["), "list json: got %s" % show(out)
    with SmtpConn(srv.port) as c:
        c.expect("NOOP", "250")


# ---------------------------------------------------------------------------
# list and show

def test_list_text_and_json(qsrv):
    qid = submit(qsrv)
    t0 = time.time()
    wait_attempts(qsrv, qid, 1)
    m = listing(qsrv)[qid]
    assert m["sender"] == SENDER, "sender: got %r, want %r" % (
        m["sender"], SENDER)
    assert [r["address"] for r in m["recipients"]] == RCPTS, \
        "recipients: got %r, want %r" % (m["recipients"], RCPTS)
    assert m["held"] is False and m["busy"] is False, \
        "held/busy: got %r/%r" % (m["held"], m["busy"])
    assert abs(m["received_at"] - t0) < 30, \
        "received_at: got %r, want about %d" % (m["received_at"], t0)
    assert 0 <= m["age"] < 30, "age: got %r" % m["age"]
    for r in m["recipients"]:
        assert r["dest"] == r["address"], "dest: got %r" % r
        assert r["state"] == "deferred" and r["attempts"] == 1, \
            "state: got %r, want deferred after 1 attempt" % r
        assert "refused" in (r["reply"] or ""), \
            "reply: got %r, want the connection failure" % r["reply"]
        assert (r["status"] or "").startswith("4."), \
            "status: got %r, want 4.x.x" % r["status"]
        assert r["remote_mta"] is None, "remote_mta: got %r" % r
        assert abs(r["last_try"] - t0) < 30, "last_try: got %r" % r
        assert 3000 < r["next_try"] - r["last_try"] <= 3600, \
            "next_try: got %r, want about last_try + 1h" % r

    # size: the spooled message is our Received header and what we sent
    s = json.loads(ok(qsrv, "show", qid, "--json"))
    received = s["headers"][:s["headers"].index("From: sender@")]
    assert received.startswith("Received: "), "headers: got %r" % received
    want = len(received.encode()) + len(BODY)
    assert m["size"] == want, "size: got %d, want %d" % (m["size"], want)

    text = ok(qsrv, "list")
    lines = text.splitlines()
    head = [l for l in lines if l.startswith(qid)]
    assert len(head) == 1, "list: no line for %s in\n%s" % (qid, text)
    f = head[0].split()
    assert f[2] == str(want) and f[3] == "<%s>" % SENDER, \
        "list line: got %r, want id age %d <%s>" % (head[0], want, SENDER)
    for rc in RCPTS:
        rl = [l for l in lines if l.startswith("    <%s>" % rc)]
        assert len(rl) == 1, "list: no line for <%s> in\n%s" % (rc, text)
        for want_re in (r"  deferred  attempts=1  ", r"next_try=in (59m|1h00m)",
                        r"last_reply=\"[^\"]*refused\""):
            assert re.search(want_re, rl[0]), "recipient line %r lacks %r" % (
                rl[0], want_re)
    assert lines[-1] == "-- 1 message, %d octets" % want, \
        "summary: got %r" % lines[-1]


def test_list_empty(qsrv):
    assert ok(qsrv, "list") == "Mail queue is empty\n"
    assert listing(qsrv) == {}


def test_show_text_and_json(qsrv):
    # ENVID (RFC 3461 §4.4) and header bytes a terminal or a JSON parser
    # must not get raw: Latin-1 é, a control character, an escape
    data = (b"From: sender@example.org\r\nSubject: queue test\r\n"
            b"X-Bytes: caf\xe9 \x01 \x1b[2J \"q\" \\ end\r\n\r\nbody\r\n")
    with SmtpConn(qsrv.port) as c:
        c.ehlo("client.example.org")
        c.expect("MAIL FROM:<%s> ENVID=qtest-1" % SENDER, "250")
        c.expect("RCPT TO:<bob@remote.test>", "250")
        c.expect("DATA", "354")
        c.send(data + b".\r\n")
        r = c.read_reply(30)
        qid = r.last.split()[-1]
        c.expect("QUIT", "221")
    wait_attempts(qsrv, qid, 1)

    s = json.loads(ok(qsrv, "show", qid, "--json"))
    for k, want in (("id", qid), ("sender", SENDER), ("envid", "qtest-1"),
                    ("helo", "client.example.org"),
                    ("client_address", "127.0.0.1"),
                    ("headers_truncated", False)):
        assert s[k] == want, "show --json %s: got %r, want %r" % (
            k, s[k], want)
    h = s["headers"]
    assert "\r\nSubject: queue test\r\n" in h, "headers: got %r" % h
    assert "X-Bytes: caf\ufffd \x01 \x1b[2J \"q\" \\ end\r\n" in h, \
        "X-Bytes: got %r" % h
    assert not h.endswith("\r\n\r\n") and "body" not in h, \
        "headers run into the body: %r" % h
    assert s["recipients"][0]["state"] == "deferred", "got %r" % s

    text = ok(qsrv, "show", qid)
    for want in ("id: %s\n" % qid, "sender: <%s>\n" % SENDER,
                 "envid: qtest-1\n", "helo: client.example.org\n",
                 "client: 127.0.0.1\n", "held: no\n",
                 "\nSubject: queue test\n",
                 "X-Bytes: caf\\xe9 \\x01 \\x1b[2J \"q\" \\ end\n"):
        assert want in text, "show lacks %r:\n%s" % (want, text)
    assert "\x1b" not in text and "\r" not in text, \
        "show passes raw control bytes: %r" % text
    rl = [l for l in text.splitlines() if l.startswith("    <bob@")]
    assert rl and "deferred" in rl[0] and "attempts=1" in rl[0], \
        "show recipient line: got %r" % rl

    # the one attempt so far, where nothing listens: no remote MTA
    hist = s["history"]
    assert len(hist) == 1 and s["history_omitted"] == 0, \
        "history: got %r, want one entry" % hist
    h = hist[0]
    assert (h["type"], h["recipient"], h["address"], h["state"],
            h["attempts"], h["remote_mta"]) == (
                "recipient", 0, "bob@remote.test", "deferred", 1, None) \
        and "refused" in h["reply"], "history entry: got %r" % h
    want = "  %s bob@remote.test deferred %s - %s" % (
        time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(h["last_try"])),
        h["status"], h["reply"])
    assert history_lines(text) == [want], "history: got %r, want %r" % (
        history_lines(text), [want])


def history_lines(text):
    """The lines of the history section of `show`'s text."""
    lines = text.splitlines()
    assert "history:" in lines, "show has no history section:\n%s" % text
    i = lines.index("history:") + 1
    got = []
    while i < len(lines) and lines[i].startswith("  "):
        got.append(lines[i])
        i += 1
    return got


def gmt(t):
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def test_show_history(tern_server, smtp_sink):
    """`show` lists the records of a message in order: each attempt with
    its time, outcome, server and reply, and hold and release as message
    entries. The sink greylists bob on every attempt."""
    port = free_port_on("127.0.0.2")
    replies = ["451 4.2.0 greylisted", "451 4.2.1 still greylisted",
               "451 4.2.2 greylisted again"]
    smtp_sink(addr="127.0.0.2", port=port,
              script={"rcpt": {"bob@remote.test": replies}})
    srv = tern_server(smarthost="[127.0.0.2]:%d" % port,
                      relay_from="127.0.0.1", retry_min="1s", retry_max="1h",
                      relay_timeout_connect="2s")
    t0 = int(time.time())
    qid = submit(srv, rcpts=["bob@remote.test"])

    # two deferrals (1s apart, then 2s: the hold comes between)
    wait_attempts(srv, qid, 2)
    assert ok(srv, "hold", qid) == "%s held\n" % qid
    s = json.loads(ok(srv, "show", qid, "--json"))
    text = ok(srv, "show", qid)
    hist = s["history"]
    assert s["history_omitted"] == 0 and len(hist) >= 3, \
        "history: got %r" % hist
    tries = [h for h in hist if h["type"] == "recipient"]
    assert hist[-1] == {"type": "message", "held": True} and \
        len(tries) == len(hist) - 1, \
        "history: got %r, want the attempts, then the hold" % hist
    now = time.time()
    for i, h in enumerate(tries[:2]):
        code = replies[i].split()[1]
        assert (h["recipient"], h["address"], h["state"], h["attempts"],
                h["status"], h["reply"]) == (
                    0, "bob@remote.test", "deferred", i + 1, code,
                    replies[i]), \
            "attempt %d: got %r, want deferred with %r" % (i + 1, h,
                                                           replies[i])
        assert "[127.0.0.2]:%d" % port in h["remote_mta"], \
            "attempt %d: remote_mta %r" % (i + 1, h["remote_mta"])
        assert t0 <= h["last_try"] <= now, \
            "attempt %d: last_try %r not within [%d, %d]" % (
                i + 1, h["last_try"], t0, now)
        assert h["next_try"] - h["last_try"] == 2 ** i, \
            "attempt %d: next_try %r after last_try %r, want +%ds" % (
                i + 1, h["next_try"], h["last_try"], 2 ** i)
    assert tries[1]["last_try"] - tries[0]["last_try"] >= 1, \
        "attempts not in order: %r" % tries
    want = ["  %s bob@remote.test deferred %s %s %s" % (
        gmt(h["last_try"]), h["status"], h["remote_mta"], h["reply"])
        for h in tries] + ["  - message held"]
    got = history_lines(text)
    assert got == want, "history text:\ngot  %r\nwant %r" % (got, want)
    # the recipient line shows the last of them
    rl = [l for l in text.splitlines() if l.startswith("    <bob@")]
    assert rl and replies[len(tries) - 1] in rl[0], \
        "recipient line: got %r" % rl

    # a release is recorded, and the attempt it makes due follows it
    assert ok(srv, "release", qid) == "%s released\n" % qid
    wait_attempts(srv, qid, len(tries) + 1)
    s = json.loads(ok(srv, "show", qid, "--json"))
    text = ok(srv, "show", qid)
    hist = s["history"]
    n = len(tries)
    assert hist[n + 1] == {"type": "message", "held": False}, \
        "after release: got %r" % hist
    h = hist[n + 2]
    assert (h["type"], h["state"], h["attempts"], h["reply"]) == (
        "recipient", "deferred", n + 1, replies[-1]), \
        "attempt after release: got %r" % h
    got = history_lines(text)
    assert got[:n + 3] == want + ["  - message released",
                                  "  %s bob@remote.test deferred %s %s %s" % (
                                      gmt(h["last_try"]), h["status"],
                                      h["remote_mta"], h["reply"])], \
        "history text after release:\n%s" % "\n".join(got)


def test_show_history_report(tern_server, smtp_sink):
    """A record that notes a delay report, without a new attempt, shows
    as such, after the attempt it follows."""
    port = free_port_on("127.0.0.2")
    smtp_sink(addr="127.0.0.2", port=port,
              script={"rcpt": {"bob@remote.test": ["451 4.2.0 later"],
                               "*": ["250 2.1.5 ok"]}})
    srv = tern_server(smarthost="[127.0.0.2]:%d" % port,
                      relay_from="127.0.0.1", retry_min="1s", retry_max="1s",
                      delay_warning="2s", relay_timeout_connect="2s")
    qid = submit(srv, rcpts=["bob@remote.test"])
    deadline = time.monotonic() + 20
    while True:
        hist = json.loads(ok(srv, "show", qid, "--json"))["history"]
        noted = [i for i, h in enumerate(hist) if h["delay_report_sent"]]
        if noted:
            break
        assert time.monotonic() < deadline, \
            "no delay report in the history: %r" % hist
        time.sleep(0.2)
    i = noted[0]
    assert i > 0 and hist[i]["attempts"] == hist[i - 1]["attempts"] and \
        not hist[i - 1]["delay_report_sent"], \
        "the report's record: got %r after %r" % (hist[i], hist[i - 1])
    text = ok(srv, "show", qid)
    got = history_lines(text)
    want = "  %s bob@remote.test noted: delay report sent" % gmt(
        hist[i]["last_try"])
    assert got[i] == want and "deferred" in got[i - 1], \
        "history text: got\n%s\nwant line %d %r" % ("\n".join(got), i, want)


def test_show_long_header_block(qsrv):
    """The header block is read up to CONTROL_HEADERS_MAX (64 KiB) and cut
    at its last whole line; a message that is all headers shows whole."""
    big = b"".join(b"X-Big-%03d: %s\r\n" % (i, b"b" * 900) for i in range(90))
    qid = submit(qsrv, data=b"Subject: big\r\n" + big + b"\r\nbody\r\n")
    nobody = submit(qsrv, data=b"Subject: no body\r\nX-Last: 1\r\n")
    wait_attempts(qsrv, qid, 1)
    s = json.loads(ok(qsrv, "show", qid, "--json"))
    h = s["headers"]
    assert s["headers_truncated"] is True, "truncated: got %r" % (
        s["headers_truncated"])
    assert len(h.encode()) <= 65536 and h.endswith("\r\n") and \
        "\r\nSubject: big\r\nX-Big-000: " in h, \
        "long block: got %d octets ending %r" % (len(h), h[-60:])
    assert "X-Big-089" not in h, "more than 64 KiB shown"
    text = ok(qsrv, "show", qid)
    assert "(header block cut at 65536 octets)" in text, "no cut note"
    s = json.loads(ok(qsrv, "show", nobody, "--json"))
    assert s["headers_truncated"] is False and \
        s["headers"].endswith("\r\nSubject: no body\r\nX-Last: 1\r\n"), \
        "all headers: got %r" % s["headers"]


def test_mailq_symlink(qsrv, tmp_path):
    qid = submit(qsrv)
    wait_attempts(qsrv, qid, 1)
    mailq = tmp_path / "mailq"
    mailq.symlink_to(qsrv.binary)
    out = ok(qsrv, binary=mailq)
    assert out.startswith("Queue ID") and ("\n%s " % qid) in out, \
        "mailq: got\n%s" % out
    doc = json.loads(ok(qsrv, "--json", binary=mailq))
    assert [m["id"] for m in doc] == [qid], "mailq --json: got %r" % doc


# ---------------------------------------------------------------------------
# flush, hold, release, delete

def test_flush_retries_then_delivers(qsrv, smtp_sink):
    qid = submit(qsrv)
    wait_attempts(qsrv, qid, 1)
    out = ok(qsrv, "flush", qid)
    assert out == "%s is due now\n" % qid, "flush ID: got %r" % out
    wait_attempts(qsrv, qid, 2)

    sink = smtp_sink(addr="127.0.0.2", port=qsrv.relay_port)
    out = ok(qsrv, "flush")
    assert out == "1 message due now\n", "flush: got %r" % out
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1 and sorted(msgs[0].rcpt_tos) == sorted(RCPTS), \
        "sink: got %r, want one message to %r" % (msgs, RCPTS)
    deadline = time.monotonic() + 10
    while listing(qsrv) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listing(qsrv) == {}, "the delivered message is still listed"


def test_hold_survives_restart_and_release_delivers(qsrv, smtp_sink):
    qid = submit(qsrv)
    wait_attempts(qsrv, qid, 1)
    assert ok(qsrv, "hold", qid) == "%s held\n" % qid
    assert listing(qsrv)[qid]["held"] is True, "not held after hold"
    assert "(held)" in [l for l in ok(qsrv, "list").splitlines()
                        if l.startswith(qid)][0]

    # a held message is not retried, flushed or not
    out = ok(qsrv, "flush", qid)
    assert "held" in out, "flush of a held message: got %r" % out
    time.sleep(1.5)
    m = listing(qsrv)[qid]
    assert [r["attempts"] for r in m["recipients"]] == [1, 1], \
        "a held message was retried: %r" % m

    qsrv.restart()
    m = listing(qsrv).get(qid)
    assert m is not None and m["held"] is True, \
        "after a restart: got %r, want %s held" % (m, qid)

    sink = smtp_sink(addr="127.0.0.2", port=qsrv.relay_port)
    time.sleep(1.0)
    assert sink.messages() == [], "a held message was delivered"
    assert ok(qsrv, "release", qid) == "%s released\n" % qid
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "after release: got %d messages, want 1" % len(msgs)
    assert qsrv.wait_log(r"control event=release id=%s result=ok" % qid), \
        "no log line for the release"


def test_delete(qsrv, smtp_sink):
    qid = submit(qsrv)
    keep = submit(qsrv, rcpts=["dave@remote.test"])
    wait_attempts(qsrv, qid, 1)
    assert (qsrv.queue_dir() / qid).exists(), "no queue file for %s" % qid
    assert ok(qsrv, "delete", qid) == "%s deleted\n" % qid
    assert qid not in listing(qsrv), "%s still listed after delete" % qid
    assert not (qsrv.queue_dir() / qid).exists(), \
        "%s still in spool/queue/ after delete" % qid
    assert qsrv.wait_log(r"control event=delete id=%s result=ok" % qid)

    qsrv.restart()
    assert set(listing(qsrv)) == {keep}, "after a restart: got %r, want " \
        "only %s" % (sorted(listing(qsrv)), keep)
    sink = smtp_sink(addr="127.0.0.2", port=qsrv.relay_port)
    ok(qsrv, "flush")
    msgs = sink.wait_messages(1, timeout=15)
    time.sleep(0.5)
    msgs = sink.messages()
    assert [m.rcpt_tos for m in msgs] == [["dave@remote.test"]], \
        "delivered: got %r, want only the kept message" % msgs


def test_delete_during_delivery(tern_server):
    """A delete of a message whose relay attempt is in flight answers once
    that attempt has ended, and nothing of it is left."""
    port = free_port_on("127.0.0.2")
    mute = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    mute.bind(("127.0.0.2", port))
    mute.listen(4)
    peers = []
    try:
        srv = tern_server(smarthost="[127.0.0.2]:%d" % port, relay_from="127.0.0.1",
                          retry_min="1h", relay_timeout_connect="2s",
                          relay_timeout_greeting="3s")
        qid = submit(srv)
        mute.settimeout(10)
        peers.append(mute.accept()[0])     # the attempt waits for a 220
        m = listing(srv)[qid]
        assert [r["state"] for r in m["recipients"]] == ["pending"] * 2, \
            "in flight: got %r" % m
        t0 = time.monotonic()
        out = ok(srv, "delete", qid)
        waited = time.monotonic() - t0
        assert out == "%s deleted\n" % qid, "delete: got %r" % out
        assert waited > 1, "delete answered after %.1fs, before the " \
            "attempt ended" % waited
        assert listing(srv) == {}, "still listed: %r" % listing(srv)
        assert not (srv.queue_dir() / qid).exists(), "queue file left"
        srv.restart()
        assert listing(srv) == {}, "back after a restart: %r" % listing(srv)
    finally:
        for p in peers:
            p.close()
        mute.close()


# ---------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("args", [["show", GONE], ["flush", GONE],
                                  ["hold", GONE], ["release", GONE],
                                  ["delete", GONE]])
def test_unknown_id(qsrv, args):
    p = tern_queue(qsrv, *args)
    assert p.returncode == 1 and p.stderr == "tern queue: no such message\n" \
        and p.stdout == "", "tern queue %s: got exit %d, %r, want 1 and " \
        "'no such message'" % (" ".join(args), p.returncode, p.stderr)


def test_bad_id(qsrv):
    for bad in ("short", "A" * 21, "AAAAAAAAAAAAAAAAAAA!", "../../etc"):
        p = tern_queue(qsrv, "show", bad)
        assert p.returncode == 1 and p.stderr == "tern queue: bad id\n", \
            "show %r: got exit %d, %r, want 1 and 'bad id'" % (
                bad, p.returncode, p.stderr)


# raw requests and the first line of the answer
RAW_CASES = [
    (b"frob\n", b"error: unknown command"),
    (b"LIST\n", b"error: unknown command"),
    (b"\n", b"error: empty request"),
    (b"show\n", b"error: usage: show ID [json]"),
    (b"list extra\n", b"error: usage: list [json]"),
    (b"hold %s json\n" % GONE.encode(), b"error: usage: hold ID"),
    (b"flush a b\n", b"error: usage: flush [ID]"),
    (b"show abc\n", b"error: bad id"),
    (b"show %s\n" % GONE.encode(), b"error: no such message"),
    (b"list a b c d e\n", b"error: bad request: too many words"),
    (b"list\x00\n", b"error: bad request"),
    (b"li\xc3\xa9st\n", b"error: bad request"),
    (b"list\n", b"ok"),
    (b"list\r\n", b"ok"),
    (b"list json\n", b"ok"),
    (b"  list \t json  \n", b"ok"),
    (b"flush\n", b"ok"),
    # CONTROL_LINE_MAX (256) octets before the LF, a CR counted
    (b"list" + b" " * 251 + b"\n", b"ok"),
    (b"list" + b" " * 252 + b"\n", b"ok"),
    (b"list" + b" " * 251 + b"\r\n", b"ok"),
    (b"list" + b" " * 253 + b"\n", b"error: request line too long"),
    (b"list" + b" " * 252 + b"\r\n", b"error: request line too long"),
]


def test_raw_requests(qsrv):
    for req, want in RAW_CASES:
        out = raw(qsrv, req)
        first = out.split(b"\n", 1)[0]
        assert first.startswith(want), "request %s: got %s, want %s" % (
            show(req), show(first), show(want))
        assert out.endswith(b"\n"), "request %s: answer %s lacks its " \
            "final LF" % (show(req), show(out))
    # a request cut by the client's EOF still counts
    out = raw(qsrv, b"list json", shut=True)
    assert out == b"ok\n[]\n", "list json + EOF: got %s" % show(out)
    assert qsrv.wait_log(r"control event=error result=error "
                         r"error=\"unknown command"), "no log line"


def test_request_split(qsrv):
    """A request line gives the same answer whole, split at every point,
    and byte by byte."""
    qid = submit(qsrv, rcpts=["bob@remote.test"])
    wait_attempts(qsrv, qid, 1)
    req = b"show %s json\r\n" % qid.encode()

    def answer(parts):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        try:
            s.connect(str(control_path(qsrv)))
            for p in parts:
                s.sendall(p)
                time.sleep(0.01)
            out = read_all(s, 15)
        finally:
            s.close()
        doc = json.loads(out[3:])
        return out[:3], doc["id"], doc["headers"]

    want = answer([req])
    assert want[0] == b"ok\n" and want[1] == qid, "whole: got %r" % (want,)
    for cut in range(1, len(req)):
        got = answer([req[:cut], req[cut:]])
        assert got == want, "split at %d: got %r, want %r" % (cut, got, want)
    got = answer([req[i:i + 1] for i in range(len(req))])
    assert got == want, "byte by byte: got %r, want %r" % (got, want)


def test_not_running(tern_server):
    srv = tern_server(start=False)
    p = tern_queue(srv, "list")
    want = ("tern queue: the server is not running (no control socket at "
            "%s)\n" % control_path(srv))
    assert p.returncode == 69 and p.stderr == want, \
        "got exit %d, %r, want 69 and %r" % (p.returncode, p.stderr, want)
    # a stopped server leaves no socket behind
    srv.start()
    ok(srv, "list")
    srv.stop()
    assert not control_path(srv).exists(), "control.sock left after stop"
    p = tern_queue(srv, "list")
    assert p.returncode == 69 and "not running" in p.stderr, \
        "after stop: got exit %d, %r" % (p.returncode, p.stderr)


def test_socket_mode(qsrv):
    st = os.stat(control_path(qsrv))
    assert stat.S_ISSOCK(st.st_mode), "control.sock is not a socket"
    assert stat.S_IMODE(st.st_mode) == 0o600, "mode: got %o, want 600" % (
        stat.S_IMODE(st.st_mode))


@pytest.mark.parametrize("args", [[], ["bogus"], ["show"], ["hold"],
                                  ["list", "extra"], ["hold", "--json", GONE],
                                  ["list", "--bogus"], ["show", "a b"],
                                  ["flush", "a", "b"]])
def test_usage(qsrv, args):
    p = tern_queue(qsrv, *args)
    assert p.returncode == 64 and p.stdout == "", \
        "tern queue %r: got exit %d, want 64" % (args, p.returncode)
    assert "usage" in p.stderr or "bad id" in p.stderr, \
        "tern queue %r: stderr %r" % (args, p.stderr)


def test_help(qsrv):
    out = ok(qsrv, "--help", config=False)
    for cmd in ("list", "show", "flush", "hold", "release", "delete",
                "--config"):
        assert cmd in out, "--help lacks %r:\n%s" % (cmd, out)


# ---------------------------------------------------------------------------
# hostile clients

def test_hostile_clients(qsrv):
    qid = submit(qsrv)
    wait_attempts(qsrv, qid, 1)
    path = str(control_path(qsrv))

    # silence: the answer is an error once CONTROL_TIMEOUT has passed;
    # meanwhile everything else goes on
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(path)
    t0 = time.monotonic()

    # a long line without LF: cut off at the limit, not buffered
    out = raw(qsrv, b"x" * 200000)
    assert out == b"error: request line too long\n", "long line: got %s" % (
        show(out))
    out = raw(qsrv, b"list " + b"a" * 300 + b"\n")
    assert out == b"error: request line too long\n", "long: got %s" % show(out)
    # binary junk
    junk = bytes((i * 37 + 11) % 256 for i in range(4096))
    out = raw(qsrv, junk)
    assert out.startswith(b"error: ") and out.count(b"\n") == 1, \
        "junk: got %s" % show(out)
    # one request per connection: what follows is read and dropped
    out = raw(qsrv, b"list json\n" + b"delete " + qid.encode() + b"\n" +
              b"z" * 300000)
    doc = json.loads(out[3:])
    assert out.startswith(b"ok\n") and [m["id"] for m in doc] == [qid], \
        "list + trailing junk: got %s" % show(out)
    # a client that goes away at once, with and without a request
    for data in (b"", b"list\n", b"show " + qid.encode() + b"\n"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        if data:
            s.sendall(data)
        s.close()
    # more clients at once than the server serves: the rest are refused
    many = []
    for _ in range(24):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        many.append(s)
    time.sleep(0.3)
    refused = 0
    for s in many:
        s.settimeout(0.05)
        try:
            if s.recv(100).startswith(b"error: too many"):
                refused += 1
        except socket.timeout:
            pass
        s.close()
    assert refused > 0, "24 idle clients at once: none was refused"
    assert_serves(qsrv)
    assert qid in listing(qsrv), "%s gone after the junk" % qid

    out = read_all(silent, CONTROL_TIMEOUT + 10)
    waited = time.monotonic() - t0
    silent.close()
    assert out == b"error: timeout: no request\n", "silence: got %s" % (
        show(out))
    assert CONTROL_TIMEOUT - 1 <= waited <= CONTROL_TIMEOUT + 5, \
        "silence: answered after %.1fs, want about %ds" % (
            waited, CONTROL_TIMEOUT)
    assert_serves(qsrv)
    qsrv.assert_alive()
