# SPDX-License-Identifier: MIT
"""Process life cycle: SIGTERM with open sessions, timeouts, restart after a
crash, check-config and dump-config."""

import re
import socket
import subprocess
import time

import pytest

from ternlib import (QUEUED_RE, SANITIZER_MARKERS, SmtpConn, check_delivered,
                     free_port, maildir_files, sanitizer_env, tail, wait_files)

KEYS = ["hostname", "state_dir", "log", "log_level", "listen", "domain", "user",
        "alias", "size_max", "rcpt_max", "errors_max", "sessions_max", "vrfy",
        "expn", "timeout_command", "timeout_data", "delivery_workers"]


def tern(binary, *args, cwd=None):
    r = subprocess.run([str(binary)] + [str(a) for a in args], cwd=cwd,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                       env=sanitizer_env())
    for m in SANITIZER_MARKERS:
        assert m.encode() not in r.stderr, r.stderr.decode(errors="replace")
    return r


# ---------------------------------------------------------------------------
# SIGTERM

def test_sigterm_with_open_sessions(srv):
    # a message accepted just before the signal
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        msg = b"Subject: before term\r\n\r\naccepted\r\n"
        c.send(msg + b".\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
        c.expect("QUIT", "221")

    idle = SmtpConn(srv.port)
    in_mail = SmtpConn(srv.port)
    in_mail.ehlo()
    in_mail.expect("MAIL FROM:<a@example.org>", "250")
    in_data = SmtpConn(srv.port)
    in_data.ehlo()
    in_data.expect("MAIL FROM:<a@example.org>", "250")
    in_data.expect("RCPT TO:<bob@example.test>", "250")
    in_data.expect("DATA", "354")
    in_data.send(b"Subject: cut by term\r\n\r\nhalf a message\r\n")
    time.sleep(0.2)

    rc = srv.stop()
    for c in (idle, in_mail, in_data):
        data = c.wait_closed(10)
        if not data.startswith(b"421 4.3.2"):
            c.fail("want 421 4.3.2 on shutdown, got %r" % data)
        c.close()
    assert rc == 0, "exit status %s after SIGTERM\n%s" % (rc, tail(srv.stderr_text()))

    # the accepted message is delivered (now or after a restart); the cut one never
    if not maildir_files(srv.maildir("alice")):
        srv.start()
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1, "accepted message lost over SIGTERM"
    check_delivered(files[0].read_bytes(), "a@example.org", msg, qid=qid,
                    rcpt="alice@example.test")
    if srv.proc is None:
        srv.start()
    time.sleep(1.0)
    assert maildir_files(srv.maildir("bob")) == [], "message cut by SIGTERM was delivered"


def test_sigterm_idle_server_exits_fast(srv):
    t = time.monotonic()
    rc = srv.stop()
    took = time.monotonic() - t
    assert rc == 0
    assert took < 10, "SIGTERM took %.1fs" % took
    # the port is free again and a restart works on the same state
    srv.start()


def test_restart_after_sigkill_keeps_accepted_mail(srv):
    """A message acked with 250 survives SIGKILL right after the ack and is
    delivered exactly once (it may or may not have been delivered before
    the kill)."""
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<team@example.test>", "250")
        c.expect("DATA", "354")
        msg = b"Subject: kill\r\n\r\nsurvives\r\n"
        c.send(msg + b".\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
        srv.kill()
    srv.start()
    for u in ("alice", "bob"):
        files = wait_files(srv.maildir(u), 1)
        assert len(files) == 1, "%s: acked message lost over SIGKILL" % u
        check_delivered(files[0].read_bytes(), "a@example.org", msg, qid=qid,
                        rcpt="team@example.test")
    time.sleep(1.0)
    for u in ("alice", "bob"):
        assert len(maildir_files(srv.maildir(u))) == 1, "%s: delivered twice" % u


def test_restart_keeps_undelivered_mail(tern_server, tmp_path):
    """A message that cannot be delivered yet (its Maildir path runs through
    a plain file, so delivery fails temporarily) stays queued over a
    SIGTERM and a restart."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    srv = tern_server(user=["alice", "bob", "demo", "carol %s/Maildir" % blocker])
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<carol@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: held\r\n\r\nheld in the queue\r\n.\r\n")
        c.expect(None, "250 2.0.0")
    time.sleep(1.5)                      # the first attempt fails
    queued = [p for p in srv.queue_dir().rglob("*") if p.is_file()]
    assert queued, "undeliverable message is not in %s" % srv.queue_dir()
    assert srv.stop() == 0
    assert [p for p in srv.queue_dir().rglob("*") if p.is_file()] == queued, \
        "queue changed over SIGTERM"
    srv.start()
    time.sleep(1.0)
    assert [p for p in srv.queue_dir().rglob("*") if p.is_file()] == queued, \
        "queue changed over restart"


# ---------------------------------------------------------------------------
# timeouts (RFC 5321 4.5.3.2)

def test_command_timeout(tern_server):
    srv = tern_server(timeout_command="2s")
    with SmtpConn(srv.port) as c:
        t0 = time.monotonic()
        data = c.wait_closed(15)
        took = time.monotonic() - t0
        if not data.startswith(b"421 4.4.2"):
            c.fail("want 421 4.4.2 on idle timeout, got %r" % data)
        assert 1.5 <= took <= 8, "closed after %.1fs with timeout_command = 2s" % took


def test_command_timeout_after_ehlo_mid_transaction(tern_server):
    srv = tern_server(timeout_command="2s")
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.send(b"RCPT TO:<ali")        # half a command, then silence
        data = c.wait_closed(15)
        if not data.startswith(b"421 4.4.2"):
            c.fail("want 421 4.4.2, got %r" % data)


def test_activity_resets_command_timeout(tern_server):
    srv = tern_server(timeout_command="2s")
    with SmtpConn(srv.port) as c:
        for _ in range(5):
            time.sleep(1.0)
            c.expect("NOOP", "250 2.0.0")     # 5 s in total, never 2 s idle
        c.expect("QUIT", "221")


def test_peer_that_stops_reading_is_dropped(tern_server):
    """A client that pipelines commands but never reads the replies fills
    the server's output; the timeout bounds that too: the session is
    closed, and the server keeps serving others. (junk_max would end the
    session after 100 NOOPs: it is raised so that the output fills.)"""
    srv = tern_server(timeout_command="2s", junk_max="1000000000")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    sock.setblocking(False)
    chunk = b"NOOP\r\n" * 1000
    sent, blocked_since = 0, None
    deadline = time.monotonic() + 20
    try:
        # push whole commands until the server has stopped taking input
        # for a while
        while time.monotonic() < deadline and sent < 64 << 20:
            try:
                sent += sock.send(chunk[sent % len(chunk):])
                blocked_since = None
            except BlockingIOError:
                if blocked_since is None:
                    blocked_since = time.monotonic()
                elif time.monotonic() - blocked_since > 0.5:
                    break
                time.sleep(0.05)
        assert blocked_since is not None, "the server never pushed back"
        line = srv.wait_log(r"event=timeout .*state=closing", timeout=15)
        assert line is not None, "a peer that reads nothing was never dropped"
        assert srv.wait_log(r"event=disconnect", timeout=5) is not None
        with SmtpConn(srv.port) as c:
            c.expect("NOOP", "250 2.0.0")
    finally:
        sock.close()
    srv.assert_alive()


def test_timeout_minutes_syntax(tern_server):
    srv = tern_server(timeout_command="5m", timeout_data="1m")
    with SmtpConn(srv.port) as c:
        c.expect("NOOP", "250 2.0.0")


def test_data_timeout(tern_server):
    srv = tern_server(timeout_data="2s", timeout_command="30s")
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: stalled\r\n\r\npart")
        t0 = time.monotonic()
        data = c.wait_closed(15)
        took = time.monotonic() - t0
        if not data.startswith(b"421 4.4.2"):
            c.fail("want 421 4.4.2 on data timeout, got %r" % data)
        assert took <= 8, "closed after %.1fs with timeout_data = 2s" % took
    wait_files(srv.maildir("alice"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("alice")) == []


# ---------------------------------------------------------------------------
# check-config and dump-config

def write_config(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def good_config(tmp_path):
    return [
        "# a comment",
        "hostname = mx.test",
        "state_dir = %s" % (tmp_path / "state"),
        "log = stderr",
        "log_level = info",
        "listen = 127.0.0.1:2599 mx",
        "domain = example.test",
        "domain = localhost",
        "",
        "user = alice",
        "user = bob %s" % (tmp_path / "bob" / "Maildir"),
        "alias = team: alice, bob",
        "alias = outside: alice, someone@example.org",
        "size_max = 10M",
        "rcpt_max = 150",
        "errors_max = 7",
        "sessions_max = 50",
        "vrfy = yes",
        "expn = no",
        "timeout_command = 5m",
        "timeout_data = 90",
        "delivery_workers = 3   # trailing comment",
    ]


def test_check_config_ok(tmp_path, tern_binary):
    f = write_config(tmp_path / "good.conf", good_config(tmp_path))
    r = tern(tern_binary, "check-config", f)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout.decode().strip() == "%s: configuration OK" % f, r.stdout


BAD_LINE3 = [
    "rcpt_max = 5",
    "rcpt_max = 99",
    "no_such_key = 1",
    "hostname = again.test",          # duplicate (line 1 has hostname)
    "size_max = abc",
    "size_max = 10X",
    "timeout_command = 0s",
    "timeout_data = 0",
    "timeout_command = soon",
    "vrfy = maybe",
    "expn = 1x",
    "log_level = loud",
    "listen = 127.0.0.1:notaport mx",
    "user = carol relative/Maildir",
    "alias = nocolon",
    "just some words",
    "errors_max = -1",
]


@pytest.mark.parametrize("bad", BAD_LINE3)
def test_check_config_bad(tmp_path, tern_binary, bad):
    f = write_config(tmp_path / "bad.conf", [
        "hostname = mx.test",
        "state_dir = %s" % (tmp_path / "state"),
        bad,
        "domain = example.test",
        "user = alice",
    ])
    r = tern(tern_binary, "check-config", f)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, "exit %d for %r; stderr %r" % (r.returncode, bad, err)
    assert err.startswith("%s:3: " % f), "want '%s:3: ...' on stderr, got %r" % (f, err)
    assert "configuration OK" not in r.stdout.decode(errors="replace")


def test_check_config_line_numbers_count_comments(tmp_path, tern_binary):
    f = write_config(tmp_path / "bad.conf", [
        "# comment", "", "hostname = mx.test", "   # indented comment",
        "domain = example.test", "user = alice", "rcpt_max = 5"])
    r = tern(tern_binary, "check-config", f)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("%s:7: " % f), r.stderr


def test_check_config_missing_file(tmp_path, tern_binary):
    r = tern(tern_binary, "check-config", tmp_path / "nope.conf")
    assert r.returncode != 0
    assert r.stderr.strip(), "no message for a missing config file"


def test_serve_refuses_bad_config(tmp_path, tern_binary):
    f = write_config(tmp_path / "bad.conf", ["hostname = mx.test", "x", "rcpt_max = 5"])
    p = subprocess.run([str(tern_binary), "serve", "--config", str(f)], cwd=tmp_path,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                       env=sanitizer_env())
    assert p.returncode != 0, "serve started with a bad config"
    err = p.stderr.decode(errors="replace")
    assert re.search(r"%s:\d+: " % re.escape(str(f)), err), err
    for m in SANITIZER_MARKERS:
        assert m not in err, err


def dump_values(text):
    vals = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        k, _, v = line.partition("=")
        vals.setdefault(k.strip(), []).append(v.strip())
    return vals


def size_bytes(v):
    m = re.fullmatch(r"(\d+)\s*([KMG]?)", v)
    assert m, "size %r" % v
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def seconds(v):
    m = re.fullmatch(r"(\d+)\s*([smh]?)", v)
    assert m, "duration %r" % v
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def test_dump_config_roundtrip(tmp_path, tern_binary):
    f = write_config(tmp_path / "good.conf", good_config(tmp_path))
    r = tern(tern_binary, "dump-config", "--config", f)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    vals = dump_values(text)
    for k in KEYS:
        assert k in vals, "dump-config lacks %s:\n%s" % (k, text)
    assert vals["hostname"] == ["mx.test"]
    assert vals["rcpt_max"] == ["150"]
    assert vals["errors_max"] == ["7"]
    assert vals["sessions_max"] == ["50"]
    assert vals["delivery_workers"] == ["3"]
    assert vals["vrfy"] == ["yes"] and vals["expn"] == ["no"]
    assert size_bytes(vals["size_max"][0]) == 10 << 20
    assert seconds(vals["timeout_command"][0]) == 300
    assert seconds(vals["timeout_data"][0]) == 90
    assert sorted(vals["domain"]) == ["example.test", "localhost"]
    assert len(vals["user"]) == 2 and len(vals["alias"]) == 2
    assert any(u.split()[0] == "bob" and str(tmp_path / "bob" / "Maildir") in u
               for u in vals["user"]), vals["user"]
    assert any(re.fullmatch(r"127\.0\.0\.1:2599(\s+mx)?", l) for l in vals["listen"])
    # the dump is a config check-config accepts, and dumping it again is stable
    d1 = write_config(tmp_path / "dump1.conf", [text.rstrip("\n")])
    r = tern(tern_binary, "check-config", d1)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    r2 = tern(tern_binary, "dump-config", "--config", d1)
    assert r2.returncode == 0
    assert r2.stdout.decode() == text.replace(str(f), str(d1)), \
        "dump of the dump differs"


def test_dump_config_embedded_defaults(tmp_path, tern_binary):
    r = tern(tern_binary, "dump-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    vals = dump_values(text)
    for k in KEYS:
        assert k in vals, "dump-config lacks %s:\n%s" % (k, text)
    assert any(re.fullmatch(r"127\.0\.0\.1:2525(\s+mx)?", l) for l in vals["listen"]), vals
    assert "localhost" in vals["domain"]
    assert any(u.split()[0] == "demo" for u in vals["user"])
    assert any(re.fullmatch(r"postmaster\s*:\s*demo", a) for a in vals["alias"]), vals["alias"]
    assert int(vals["rcpt_max"][0]) >= 100
    f = write_config(tmp_path / "defaults.conf", [text.rstrip("\n")])
    r = tern(tern_binary, "check-config", f, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


def test_dump_config_used_by_serve(tern_server, tern_binary):
    """What dump-config prints for the running config is what serve does."""
    srv = tern_server(size_max="2M", rcpt_max=120)
    r = tern(tern_binary, "dump-config", "--config", srv.config_path)
    vals = dump_values(r.stdout.decode())
    with SmtpConn(srv.port) as c:
        ehlo = c.ehlo()
        size = [t for t in ehlo.texts() if t.upper().startswith("SIZE")]
        assert size == ["SIZE %d" % size_bytes(vals["size_max"][0])], (size, vals["size_max"])


# ---------------------------------------------------------------------------
# listeners and logging

def test_two_listeners(tern_server):
    second = free_port()
    srv = tern_server(start=False)
    srv.config["listen"] = [srv.config["listen"], "127.0.0.1:%d mx" % second]
    srv.config_path.write_text(srv.render())
    srv.start()
    for port in (srv.port, second):
        with SmtpConn(port) as c:
            assert c.greeting.starts("220 mx.test"), str(c.greeting)
            c.ehlo()
            c.expect("MAIL FROM:<a@example.org>", "250")
            c.expect("RCPT TO:<alice@example.test>", "250")
            c.expect("DATA", "354")
            c.send(b"Subject: port %d\r\n\r\nx\r\n.\r\n" % port)
            c.expect(None, "250 2.0.0")
    assert len(wait_files(srv.maildir("alice"), 2)) == 2


def test_port_in_use_fails_start(tern_server):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        srv = tern_server(start=False)
        srv.config["listen"] = "127.0.0.1:%d mx" % holder.getsockname()[1]
        srv.config_path.write_text(srv.render())
        srv.start(wait=False)
        try:
            rc = srv.proc.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("tern kept running although its port is taken")
        srv.runs[-1]["ended"] = "expected-exit"
        srv.proc = None
        err = srv.stderr_text()
        assert rc != 0, "exit status 0 although the port is taken"
        assert err.strip(), "no message on stderr"
        for m in SANITIZER_MARKERS:
            assert m not in err, tail(err)
    finally:
        holder.close()


def test_log_to_file(tern_server, tmp_path):
    logf = tmp_path / "tern.log"
    srv = tern_server(log=str(logf))
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.expect("DATA", "354")
        c.send(b"Subject: log\r\n\r\nx\r\n.\r\n")
        r = c.expect(None, "250 2.0.0")
        qid = QUEUED_RE.search(r.last).group(1)
    assert len(wait_files(srv.maildir("alice"), 1)) == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = logf.read_text(errors="replace") if logf.exists() else ""
        if any(qid in l and "status=delivered" in l for l in text.splitlines()):
            break
        time.sleep(0.1)
    else:
        pytest.fail("no line with %s and status=delivered in %s:\n%s" % (qid, logf, tail(text)))


def test_data_timeout_inside_bdat_chunk(tern_server):
    srv = tern_server(timeout_data="2s", timeout_command="30s")
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.org>", "250")
        c.expect("RCPT TO:<alice@example.test>", "250")
        c.send(b"BDAT 100 LAST\r\nonly a few bytes")
        data = c.wait_closed(15)
        if not data.startswith(b"421 4.4.2"):
            c.fail("want 421 4.4.2 on a stalled BDAT chunk, got %r" % data)
    wait_files(srv.maildir("alice"), 1, timeout=1.0)
    assert maildir_files(srv.maildir("alice")) == []
