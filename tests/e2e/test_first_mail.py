# SPDX-License-Identifier: MIT
"""The first mail: swaks and curl, with the embedded defaults and with a
config file, checked byte for byte in the Maildir."""

import os
import re
import signal
import subprocess
import time

import pytest

from ternlib import (SmtpConn, check_delivered, sanitizer_env, port_is_free,
                     split_delivered, tail, wait_files, SANITIZER_MARKERS)

MSG = (b"From: a@example.org\r\n"
       b"To: demo@localhost\r\n"
       b"Subject: first mail\r\n"
       b"\r\n"
       b"Hello from the e2e suite.\r\n"
       b".a line that starts with a dot\r\n"
       b"last line")


def run(cmd, timeout=30):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


def swaks_data(port, tmp_path, to="demo@localhost"):
    """swaks --data @FILE: swaks appends CRLF to a file that lacks one."""
    f = tmp_path / "swaks.eml"
    f.write_bytes(MSG)
    r = run(["swaks", "--server", "127.0.0.1:%d" % port, "--to", to,
             "--from", "a@example.org", "--helo", "swaks.example.org",
             "--data", "@%s" % f])
    assert r.returncode == 0, "swaks failed:\n%s" % r.stdout.decode(errors="replace")
    m = re.search(rb"<-  250 2\.0\.0 Ok: queued as (\S+)", r.stdout)
    assert m, "no '250 2.0.0 Ok: queued as' in swaks output:\n%s" % r.stdout.decode(errors="replace")
    return m.group(1).decode(), MSG + b"\r\n"


def curl_upload(port, tmp_path, to="demo@localhost"):
    """curl sends the file as is (with dot-stuffing), so it must end in
    CRLF to be unambiguous."""
    f = tmp_path / "curl.eml"
    f.write_bytes(MSG + b"\r\n")
    r = run(["curl", "-sS", "--max-time", "20", "smtp://127.0.0.1:%d" % port,
             "--mail-from", "a@example.org", "--mail-rcpt", to,
             "--upload-file", str(f)])
    assert r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace"))
    return MSG + b"\r\n"


def test_swaks_config_file(srv, tmp_path):
    qid, want = swaks_data(srv.port, tmp_path)
    files = wait_files(srv.maildir("demo"), 1)
    assert len(files) == 1, "want 1 file in demo's Maildir/new, got %d" % len(files)
    check_delivered(files[0].read_bytes(), "a@example.org", want,
                    qid=qid, rcpt="demo@localhost")
    assert srv.wait_log(r"\b%s\b.*status=delivered|status=delivered.*\b%s\b"
                        % (qid, qid)), \
        "no log line with %s and status=delivered:\n%s" % (qid, tail(srv.stderr_text()))


def test_swaks_body_option(srv):
    """The plain `swaks --body` form: swaks writes its own headers."""
    r = run(["swaks", "--server", "127.0.0.1:%d" % srv.port,
             "--to", "demo@localhost", "--from", "a@example.org",
             "--body", "body-text-4711"])
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    files = wait_files(srv.maildir("demo"), 1)
    assert len(files) == 1
    _, received, rest = split_delivered(files[0].read_bytes())
    assert b"\r\nTo: demo@localhost\r\n" in b"\r\n" + rest
    assert b"\r\n\r\nbody-text-4711\r\n" in rest
    assert b"\n" not in rest.replace(b"\r\n", b""), "bare LF in the delivered message"


def test_swaks_pipelining(srv, tmp_path):
    f = tmp_path / "p.eml"
    f.write_bytes(MSG)
    r = run(["swaks", "--pipeline", "--server", "127.0.0.1:%d" % srv.port,
             "--to", "demo@localhost,alice@example.test", "--from", "a@example.org",
             "--data", "@%s" % f])
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    for user in ("demo", "alice"):
        files = wait_files(srv.maildir(user), 1)
        assert len(files) == 1, user
        check_delivered(files[0].read_bytes(), "a@example.org", MSG + b"\r\n", rcpt=None)


def test_curl_config_file(srv, tmp_path):
    want = curl_upload(srv.port, tmp_path)
    files = wait_files(srv.maildir("demo"), 1)
    assert len(files) == 1
    check_delivered(files[0].read_bytes(), "a@example.org", want, rcpt="demo@localhost")


def test_embedded_defaults(tmp_path, tern_binary):
    """`tern serve` without --config: 127.0.0.1:2525, domain localhost,
    user demo, state in ./tern-state."""
    if not port_is_free(2525):
        pytest.skip("port 2525 is in use")
    err = tmp_path / "stderr"
    with open(err, "wb") as ef:
        p = subprocess.Popen([str(tern_binary), "serve"], cwd=str(tmp_path),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=ef, env=sanitizer_env())
    try:
        deadline = time.monotonic() + 20
        conn = None
        while conn is None:
            assert p.poll() is None, "tern serve exited %s:\n%s" % (p.returncode, tail(err.read_text()))
            assert time.monotonic() < deadline, "no 220 on 127.0.0.1:2525 within 20s"
            try:
                conn = SmtpConn(2525, timeout=5)
            except OSError:
                time.sleep(0.05)
        assert conn.greeting.starts("220 "), str(conn.greeting)
        assert " ESMTP" in conn.greeting.first
        conn.expect("QUIT", "221 2.0.0")
        conn.close()

        qid, want = swaks_data(2525, tmp_path)
        want2 = curl_upload(2525, tmp_path)
        md = tmp_path / "tern-state" / "mail" / "demo" / "Maildir"
        files = wait_files(md, 2)
        assert len(files) == 2, "want 2 files in %s/new, got %d" % (md, len(files))
        bodies = sorted(split_delivered(f.read_bytes())[2] for f in files)
        assert bodies == sorted([want, want2])
        # postmaster is an alias of demo in the defaults
        conn = SmtpConn(2525)
        conn.ehlo()
        conn.expect("MAIL FROM:<>", "250")
        conn.expect("RCPT TO:<postmaster@localhost>", "250")
        conn.expect("QUIT", "221")
        conn.close()
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
                pytest.fail("tern serve did not exit within 20s of SIGTERM")
    text = err.read_text(errors="replace")
    assert p.returncode == 0, "exit status %s\n%s" % (p.returncode, tail(text))
    for m in SANITIZER_MARKERS:
        assert m not in text, tail(text)
