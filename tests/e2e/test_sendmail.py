# SPDX-License-Identifier: MIT
"""`tern sendmail`: the sendmail(1) interface, end to end. The message goes
over <state_dir>/public/sendmail.sock into a running tern and lands in a
Maildir (or at an SMTP sink, relayed through a smarthost). Checked: every
option (-t -f -r -F -i -oi -bm -odi), the header completion (From:, Date:,
Message-ID:, Bcc: removed), LF to CRLF, dot-stuffing, the sysexits
statuses with their messages, the `sendmail` symlink, and that local
submission works while every TCP session is taken."""

import os
import re
import subprocess

import pytest

from sinklib import free_port_on
from ternlib import (SANITIZER_MARKERS, maildir_files, sanitizer_env, show,
                     split_delivered, tail, wait_files)

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 64, 65, 67, 69

UID = os.getuid()


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout.decode(errors="replace")
        self.err = proc.stderr.decode(errors="replace")

    def __str__(self):
        return "rc=%d stdout=%r stderr=%r" % (self.rc, self.out, self.err)


def sendmail(srv, args, data, argv=None, config=True):
    """Runs `tern sendmail -C CONFIG ARGS` (or argv as given) with data on
    stdin; fails on a sanitizer report."""
    if argv is None:
        argv = [str(srv.binary), "sendmail"]
    if config:
        argv = argv + ["-C", str(srv.config_path)]
    p = subprocess.run(argv + list(args), input=data, capture_output=True,
                       timeout=30, env=sanitizer_env(), cwd=str(srv.workdir))
    r = Run(p)
    for m in SANITIZER_MARKERS:
        assert m not in r.err, "sanitizer report:\n%s" % r.err
    return r


def ok(srv, args, data, **kw):
    r = sendmail(srv, args, data, **kw)
    assert r.rc == 0 and r.err == "", "want rc=0 and no stderr, got %s" % r
    return r


def delivered(srv, user, n=1):
    """The n messages in user's Maildir: (return_path, received, rest)."""
    files = wait_files(srv.maildir(user), n)
    assert len(files) == n, "%s: got %d messages, want %d" % (user, len(files), n)
    return [split_delivered(f.read_bytes()) for f in files]


def header(rest, name):
    """The unfolded values of every `name:` field of the header block."""
    head = rest.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    head = re.sub(r"\r\n[ \t]", " ", head)
    out = []
    for line in head.split("\r\n"):
        k, _, v = line.partition(":")
        if k.lower() == name.lower():
            out.append(v.strip())
    return out


def body(rest):
    return rest.split(b"\r\n\r\n", 1)[1]


def nothing_for(srv, *users):
    for u in users:
        files = maildir_files(srv.maildir(u))
        assert files == [], "%s got mail it should not: %s" % (u, files)


# ---------------------------------------------------------------------------
# recipients

def test_recipients_as_arguments(srv):
    """Arguments are recipients; a bare name gets the first local domain,
    and so does the login name of the default sender. The session is the
    local one: "from local (uid N)" and client=local uid=N."""
    ok(srv, ["alice@example.test", "bob"], b"Subject: args\n\nhello\n")
    for user in ("alice", "bob"):
        (rp, received, rest), = delivered(srv, user)
        assert re.fullmatch(rb"<[^@<>]+@example\.test>", rp), \
            "Return-Path: got %s, want <login@example.test>" % show(rp)
        assert received.startswith("Received: from local (uid %d) by mx.test" % UID), \
            "Received: got %r" % received
        assert body(rest) == b"hello\r\n"
    nothing_for(srv, "demo")
    assert srv.wait_log(r"event=accepted .*client=local uid=%d " % UID), \
        "no 'client=local uid=%d' in the log:\n%s" % (UID, tail(srv.stderr_text()))


T_MSG = (b"From: Sender <sender@example.org>\n"
         b"To: \"Alice, A.\" <alice@example.test> (first),\n"
         b"\tfriends: Bob <bob@example.test>;\n"
         b"Cc: (nobody) , \n"
         b"Bcc: undisclosed:;, demo@example.test\n"
         b"Subject: -t\n"
         b"\n"
         b"To: nobody@example.test\n"
         b"body\n")


def test_t_to_cc_bcc_groups_display_names(srv):
    """-t: To, Cc and Bcc (folded, with display names, a group, comments
    and empty elements) name the recipients; Bcc: is removed, everything
    else is kept as written; the body's "To:" line is not a header."""
    ok(srv, ["-t"], T_MSG)
    for user in ("alice", "bob", "demo"):
        (rp, _, rest), = delivered(srv, user)
        assert header(rest, "Bcc") == [], "%s: Bcc: kept: %s" % (user, show(rest))
        assert b"\r\nTo: \"Alice, A.\" <alice@example.test> (first),\r\n" \
               b"\tfriends: Bob <bob@example.test>;\r\n" in b"\r\n" + rest, \
            "To: not kept as written: %s" % show(rest)
        assert header(rest, "From") == ["Sender <sender@example.org>"]
        assert body(rest) == b"To: nobody@example.test\r\nbody\r\n"
    assert not srv.wait_log(r"nobody@example\.test", timeout=0.2)


@pytest.mark.parametrize("value, users", [
    (b"Alice <alice@example.test>, bob@example.test", ("alice", "bob")),
    (b"team: alice@example.test, \"bob\"@example.test;", ("alice", "bob")),
    (b"alice (comment) , <@route.test:bob@example.test>", ("alice", "bob")),
    (b"\"Doe, J.\" <demo@example.test>", ("demo",)),
])
def test_t_address_forms(srv, value, users):
    ok(srv, ["-t"], b"To: " + value + b"\nSubject: x\n\nx\n")
    for u in users:
        assert len(delivered(srv, u)) == 1
    nothing_for(srv, *({"alice", "bob", "demo"} - set(users)))


def test_t_plus_arguments(srv):
    """-t with arguments: both are recipients (as Postfix does)."""
    ok(srv, ["-t", "bob@example.test"], b"To: alice@example.test\n\nx\n")
    assert len(delivered(srv, "alice")) == 1
    assert len(delivered(srv, "bob")) == 1


def test_t_bad_header_is_a_data_error(srv):
    r = sendmail(srv, ["-t"], b"To: alice@example.test, \"unterminated\n\nx\n")
    assert r.rc == EX_DATAERR and "To:" in r.err and "quoted" in r.err, \
        "want %d and a message naming To:, got %s" % (EX_DATAERR, r)
    nothing_for(srv, "alice")


# ---------------------------------------------------------------------------
# sender and header completion

@pytest.mark.parametrize("args", [
    ["-f", "owner@example.org"], ["-fowner@example.org"],
    ["-r", "owner@example.org"], ["-f", "<owner@example.org>"],
])
def test_f_sets_envelope_sender(srv, args):
    ok(srv, args + ["alice@example.test"], b"Subject: f\n\nx\n")
    (rp, _, rest), = delivered(srv, "alice")
    assert rp == b"<owner@example.org>", "Return-Path: got %s" % show(rp)
    assert header(rest, "From") == ["owner@example.org"]


def test_F_adds_from_with_full_name(srv):
    ok(srv, ["-F", "Jane Q. Doe", "-f", "jane@example.org",
             "alice@example.test"], b"Subject: F\n\nx\n")
    (_, _, rest), = delivered(srv, "alice")
    assert header(rest, "From") == ['"Jane Q. Doe" <jane@example.org>'], \
        "From: got %r" % header(rest, "From")


def test_existing_headers_kept(srv):
    """From:, Date: and Message-ID: already there: nothing added (-F is
    for a From: that is missing)."""
    msg = (b"From: me@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
           b"Message-ID: <fixed@example.org>\n\nx\n")
    ok(srv, ["-F", "Other Name", "alice@example.test"], msg)
    (_, _, rest), = delivered(srv, "alice")
    assert rest == msg.replace(b"\n", b"\r\n"), "got %s" % show(rest)


def test_date_and_message_id_added(srv):
    ok(srv, ["alice@example.test"], b"Subject: bare\n\nx\n")
    (_, _, rest), = delivered(srv, "alice")
    date = header(rest, "Date")
    assert len(date) == 1 and re.fullmatch(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}",
        date[0]), "Date: got %r" % date
    mid = header(rest, "Message-ID")
    assert len(mid) == 1 and re.fullmatch(r"<[^<>@\s]+@mx\.test>", mid[0]), \
        "Message-ID: got %r" % mid


def test_message_without_header(srv):
    """`echo hi | sendmail bob`: no header at all; the text is the body."""
    ok(srv, ["bob@example.test"], b"hi there\nsecond: line\n")
    (_, _, rest), = delivered(srv, "bob")
    assert body(rest) == b"hi there\r\nsecond: line\r\n", "got %s" % show(rest)
    assert header(rest, "Date") and header(rest, "From")


# ---------------------------------------------------------------------------
# the body: line ends, dots

DOTS = b"Subject: dots\n\n.leading\n..two\nx\n.\nafter\n. \n"


@pytest.mark.parametrize("flag", ["-i", "-oi", "-ti"])
def test_i_lone_dot_is_body(srv, flag):
    # -ti: -t finds no To: here, the argument is the recipient
    ok(srv, [flag, "alice@example.test"], DOTS)
    (_, _, rest), = delivered(srv, "alice")
    assert body(rest) == b".leading\r\n..two\r\nx\r\n.\r\nafter\r\n. \r\n", \
        "got %s" % show(rest)


def test_lone_dot_ends_message_without_i(srv):
    ok(srv, ["alice@example.test"], DOTS)
    (_, _, rest), = delivered(srv, "alice")
    assert body(rest) == b".leading\r\n..two\r\nx\r\n", "got %s" % show(rest)


@pytest.mark.parametrize("data", [
    b"Subject: lf\n\nline 1\nline 2\n",
    b"Subject: lf\r\n\r\nline 1\r\nline 2\r\n",
    b"Subject: lf\n\nline 1\r\nline 2",
])
def test_line_ends_become_crlf(srv, data):
    ok(srv, ["alice@example.test"], data)
    (_, _, rest), = delivered(srv, "alice")
    assert body(rest) == b"line 1\r\nline 2\r\n", "got %s" % show(rest)
    assert b"\n" not in rest.replace(b"\r\n", b""), "bare LF: %s" % show(rest)


def test_bm_odi_oem_accepted(srv):
    ok(srv, ["-bm", "-odi", "-odb", "-oem", "-om", "--", "alice@example.test"],
       b"Subject: modes\n\nx\n")
    assert len(delivered(srv, "alice")) == 1


# ---------------------------------------------------------------------------
# relay, refusals, failures

def test_relay_from_sendmail_is_trusted(tern_server, smtp_sink):
    """Local submission may send anywhere, even when relay_from does not
    cover 127.0.0.1 (which is then refused over TCP)."""
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    srv = tern_server(smarthost="[127.0.0.2]:%d" % port,
                      relay_from="192.0.2.1/32",
                      relay_timeout_connect="2s")
    with srv.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<x@example.org>", "250")
        c.expect("RCPT TO:<far@remote.test>", "550 5.7.1")
    ok(srv, ["-f", "me@example.test", "far@remote.test"],
       b"Subject: out\n\nrelayed\n")
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1, "sink got %d messages" % len(msgs)
    assert msgs[0].rcpt_tos == ["far@remote.test"]
    assert msgs[0].mail_from == "me@example.test"
    assert msgs[0].data.endswith(b"\r\n\r\nrelayed\r\n")


def test_refused_recipient(srv):
    """A 5xx to RCPT: EX_NOUSER naming the address; the others still get
    the message (said on stderr)."""
    r = sendmail(srv, ["nobody@example.test", "alice@example.test"],
                 b"Subject: x\n\nx\n")
    assert r.rc == EX_NOUSER, "want %d, got %s" % (EX_NOUSER, r)
    assert "<nobody@example.test>" in r.err and "550" in r.err, str(r)
    assert "sent to the other 1 recipient" in r.err, str(r)
    assert len(delivered(srv, "alice")) == 1


def test_refused_only_recipient(srv):
    r = sendmail(srv, ["nobody@example.test"], b"x\n")
    assert r.rc == EX_NOUSER and "<nobody@example.test>" in r.err, str(r)


def test_server_not_running(tern_server):
    srv = tern_server(start=False)
    r = sendmail(srv, ["alice@example.test"], b"x\n")
    sock = str(srv.state_dir / "public" / "sendmail.sock")
    assert r.rc == EX_UNAVAILABLE, "want %d, got %s" % (EX_UNAVAILABLE, r)
    assert "cannot reach the server at %s" % sock in r.err, str(r)


@pytest.mark.parametrize("args, data, want", [
    ([], b"x\n", "no recipients"),
    (["-t"], b"Subject: nobody\n\nx\n", "no recipients"),
    (["-t"], b"To: undisclosed-recipients:;\n\nx\n", "no recipients"),
    (["-X", "alice@example.test"], b"x\n", "unknown option -X"),
    (["-bp"], b"", "-bp"),
    (["-f"], b"", "needs a value"),
])
def test_usage_errors(srv, args, data, want):
    r = sendmail(srv, args, data)
    assert r.rc == EX_USAGE and want in r.err, \
        "want %d and %r, got %s" % (EX_USAGE, want, r)


def test_too_large_is_a_data_error(tern_server):
    srv = tern_server(size_max="2000")
    r = sendmail(srv, ["alice@example.test"], b"Subject: big\n\n" + b"y" * 3000 + b"\n")
    assert r.rc == EX_DATAERR and "size_max" in r.err, str(r)
    nothing_for(srv, "alice")


def test_invoked_as_sendmail(srv, tmp_path):
    link = tmp_path / "bin" / "sendmail"
    link.parent.mkdir()
    link.symlink_to(srv.binary)
    ok(srv, ["-t"], b"To: bob@example.test\n\nvia link\n", argv=[str(link)])
    (_, _, rest), = delivered(srv, "bob")
    assert body(rest) == b"via link\r\n"


def test_tern_config_env(srv, monkeypatch):
    """Without -C, $TERN_CONFIG names the configuration."""
    monkeypatch.setenv("TERN_CONFIG", str(srv.config_path))
    ok(srv, ["alice@example.test"], b"x\n", config=False)
    assert len(delivered(srv, "alice")) == 1


def test_works_while_tcp_sessions_are_full(tern_server):
    """sessions_max = 1 and one TCP session held open: TCP is refused, the
    local socket is not (its sessions have their own reserve)."""
    srv = tern_server(sessions_max="1")
    with srv.connect() as held:
        held.ehlo()
        with srv.connect(greet=False) as second:
            r = second.read_reply()
            assert r.code == 421, "want 421 for a second TCP session, got %s" % r
        ok(srv, ["alice@example.test"], b"Subject: busy\n\nstill works\n")
        (_, _, rest), = delivered(srv, "alice")
        assert body(rest) == b"still works\r\n"
        held.expect("NOOP", "250")


def test_local_sessions_do_not_take_tcp_slots(tern_server):
    """The other way round: a local session held open does not count
    against sessions_max."""
    import socket
    srv = tern_server(sessions_max="1")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
        u.settimeout(10)
        u.connect(str(srv.state_dir / "public" / "sendmail.sock"))
        assert u.recv(512).startswith(b"220 "), "no greeting on the socket"
        with srv.connect(greet=False) as c:
            r = c.read_reply()
            assert r.code == 220, "want 220 over TCP, got %s" % r


def test_socket_path_too_long(tern_server, tmp_path):
    """A state_dir too long for a socket path: the server refuses to
    start and says why (it would otherwise fail its local users
    quietly), and sendmail fails loudly."""
    state = tmp_path / ("d" * 110) / "state"
    srv = tern_server(state_dir=str(state), start=False)
    srv.start(wait=False)
    assert srv.proc.wait(timeout=20) == 1
    srv.proc = None
    assert re.search(r"event=start error=.*sendmail\.sock is longer than",
                     srv.stderr_text()), tail(srv.stderr_text())
    r = sendmail(srv, ["alice@example.test"], b"x\n")
    assert r.rc == EX_UNAVAILABLE and "cannot reach the server at %s" % (
        state / "public" / "sendmail.sock") in r.err, str(r)


LOCAL_SESSIONS_MAX = 32     # SERVE_LOCAL_SESSIONS_MAX


def test_local_reserve_full_is_a_tempfail(srv):
    """Every local session taken: the server says 421, sendmail exits
    EX_TEMPFAIL with the reply, and works again once one is free."""
    import socket
    held = []
    try:
        for _ in range(LOCAL_SESSIONS_MAX):
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(u)
            u.settimeout(10)
            u.connect(str(srv.state_dir / "public" / "sendmail.sock"))
            assert u.recv(512).startswith(b"220 ")
        r = sendmail(srv, ["alice@example.test"], b"x\n")
        assert r.rc == 75 and "421" in r.err, "want 75 and the 421, got %s" % r
        nothing_for(srv, "alice")
    finally:
        for u in held:
            u.close()
    assert srv.wait_log(r"event=disconnect client=local uid=\d+ messages=0")
    ok(srv, ["alice@example.test"], b"x\n")
    assert len(delivered(srv, "alice")) == 1
