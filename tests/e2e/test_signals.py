# SPDX-License-Identifier: MIT
"""Signals a service manager or an admin sends, each handled and logged:
USR1 reopens a log file (logrotate renames it first; the old file keeps
the old lines, new lines go to a new file at the old path) and is harmless
with log = stderr; HUP reloads and the server goes on serving; TERM and
INT stop gracefully with exit status 0."""

import os
import re
import signal
import time

import pytest

from ternlib import SmtpConn, send_message, tail, wait_files

BODY = b"From: someone@example.org\r\nSubject: signals\r\n\r\nhello\r\n"


def read(path):
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_in_file(path, pattern, timeout=10.0):
    """Polls path for a line matching pattern; returns it or None."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in read(path).splitlines():
            if rx.search(line):
                return line
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def one_session(srv):
    """A short session; returns what its connect line says of the client
    ("client=127.0.0.1:PORT "), to find it in a log."""
    with srv.connect() as c:
        mark = "client=127.0.0.1:%d " % c.sock.getsockname()[1]
        c.ehlo()
        c.expect("QUIT", "221")
    return mark


def deliver_one(srv, user="alice", n=1):
    with srv.connect() as c:
        send_message(c, "someone@example.org", ["%s@example.test" % user],
                     BODY)
        c.expect("QUIT", "221")
    files = wait_files(srv.maildir(user), n)
    assert len(files) == n, "message %d for %s not delivered" % (n, user)


def kill(srv, sig):
    srv.assert_alive()
    os.kill(srv.proc.pid, sig)


# ---------------------------------------------------------------------------
# USR1: log rotation

def test_usr1_reopens_renamed_log_file(tern_server, tmp_path):
    log = tmp_path / "tern.log"
    rotated = tmp_path / "tern.log.1"
    srv = tern_server(log=str(log))
    assert wait_in_file(log, r"tern event=ready "), read(log)
    before = one_session(srv)
    assert wait_in_file(log, r"event=connect " + before), read(log)

    os.rename(log, rotated)
    # still the renamed file until the signal
    between = one_session(srv)
    assert wait_in_file(rotated, r"event=connect " + between), read(rotated)
    assert not log.exists()

    kill(srv, signal.SIGUSR1)
    line = wait_in_file(log, r"tern event=reopen_log log=%s$" % re.escape(
        str(log)))
    assert line, "no reopen line in the new file:\n%s" % read(log)
    assert wait_in_file(rotated, r"tern event=signal signal=USR1 "
                        r"action=reopen_log log="), read(rotated)

    # the server still serves, and logs into the new file only
    after = one_session(srv)
    deliver_one(srv)
    assert wait_in_file(log, r"event=connect " + after), read(log)
    assert wait_in_file(log, r"deliver id=\S+ rcpt=<alice@example\.test> "
                        r".*status=delivered"), read(log)
    old, new = read(rotated), read(log)
    assert before in old and between in old
    assert after not in old and "status=delivered" not in old, \
        "lines after USR1 in the rotated file:\n%s" % tail(old)
    assert before not in new and "event=ready" not in new

    # a second rotation works the same
    os.rename(log, tmp_path / "tern.log.2")
    kill(srv, signal.SIGUSR1)
    assert wait_in_file(log, r"tern event=reopen_log "), read(log)
    deliver_one(srv, n=2)
    assert wait_in_file(log, r"status=delivered"), read(log)

    assert srv.stop() == 0
    assert wait_in_file(log, r"tern event=stopped", 2), read(log)
    # the file's mode: the server's lines are not for everyone
    assert (log.stat().st_mode & 0o777) & 0o007 == 0


def test_usr1_reopen_failure_keeps_old_file(tern_server, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "tern.log"
    srv = tern_server(log=str(log))
    assert wait_in_file(log, r"tern event=ready "), read(log)
    # the directory moves away and a file takes its name: the path cannot
    # be opened again
    moved = tmp_path / "logs.old"
    os.rename(logs, moved)
    logs.write_text("")
    kill(srv, signal.SIGUSR1)
    old = moved / "tern.log"
    line = wait_in_file(old, r"tern event=reopen_log log=%s error=" %
                        re.escape(str(log)))
    assert line and "Not a directory" in line, read(old)
    # logging goes on into the old file, the server serves
    deliver_one(srv)
    assert wait_in_file(old, r"status=delivered"), read(old)
    assert srv.stop() == 0


def test_usr1_with_stderr_log(srv):
    idle = SmtpConn(srv.port)
    idle.ehlo()
    kill(srv, signal.SIGUSR1)
    assert srv.wait_log(r"tern event=signal signal=USR1 action=reopen_log "
                        r"log=stderr$"), tail(srv.stderr_text())
    time.sleep(0.2)
    srv.assert_alive()
    assert "event=reopen_log" not in srv.stderr_text()
    idle.expect("NOOP", "250")
    idle.expect("QUIT", "221")
    idle.close()
    deliver_one(srv)
    assert srv.stop() == 0


# ---------------------------------------------------------------------------
# HUP: reload, keep serving

def test_sighup_logged_and_keeps_serving(srv):
    idle = SmtpConn(srv.port)
    idle.ehlo()
    idle.expect("MAIL FROM:<someone@example.org>", "250")
    for i in range(2):
        kill(srv, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while srv.stderr_text().count("tern event=signal signal=HUP "
                                      "action=reload") < i + 1:
            assert time.monotonic() < deadline, tail(srv.stderr_text())
            time.sleep(0.05)
    srv.assert_alive()
    # the session that was open goes on with its transaction
    idle.expect("RCPT TO:<bob@example.test>", "250")
    idle.expect("DATA", "354")
    idle.send(BODY + b".\r\n")
    idle.expect(None, "250 2.0.0")
    idle.expect("QUIT", "221")
    idle.close()
    assert len(wait_files(srv.maildir("bob"), 1)) == 1
    deliver_one(srv)
    assert srv.stop() == 0


# ---------------------------------------------------------------------------
# TERM and INT: graceful stop, exit status 0

@pytest.mark.parametrize("sig,name", [(signal.SIGTERM, "TERM"),
                                      (signal.SIGINT, "INT")])
def test_stop_signals_exit_zero(srv, sig, name):
    deliver_one(srv)
    p = srv.proc
    run = srv.runs[-1]
    kill(srv, sig)
    rc = p.wait(20)
    run["ended"] = "term"       # the fixture checks the status and stderr
    srv.proc = None
    assert rc == 0, "exit status %s after SIG%s\n%s" % (
        rc, name, tail(srv.stderr_text()))
    text = srv.stderr_text()
    assert "tern event=signal signal=%s action=stop" % name in text, tail(text)
    assert "tern event=stopped" in text, tail(text)
