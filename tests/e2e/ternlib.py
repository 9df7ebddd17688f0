# SPDX-License-Identifier: MIT
"""Helpers for the end-to-end suite: a raw SMTP client, a handle on one
running `tern serve` process, and Maildir readers.

Everything here talks to 127.0.0.1 only, stops only the processes it
started (by PID), and bounds every wait in time.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error")

# "250 2.1.0 Ok" / "250-..." ; the enhanced code is x.y.z (RFC 3463)
ENHANCED_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")
QUEUED_RE = re.compile(r"queued as (\S+)")


def tern_bin():
    """The binary under test: $TERN_BIN, else build/debug/tern."""
    p = os.environ.get("TERN_BIN")
    if p:
        return Path(p).resolve()
    return REPO_ROOT / "build" / "debug" / "tern"


def free_port():
    """A 127.0.0.1 port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


ASAN_DEFAULT = "detect_leaks=1:abort_on_error=0"


def sanitizer_env():
    """The environment for the server: sanitizers report and fail."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", ASAN_DEFAULT)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def vm_hwm_kib(pid):
    """Peak resident set size of a process, KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def capped_quarantine_env(mb):
    """ASAN_OPTIONS with ASan's quarantine of freed memory capped, so that
    peak RSS measures live memory."""
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", ASAN_DEFAULT)
            + ":quarantine_size_mb=%d" % mb}


def tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def show(b, limit=300):
    """Printable form of wire bytes for transcripts."""
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    r = repr(b)[2:-1]
    if len(r) > limit:
        r = r[:limit] + "...(%d bytes)" % len(b)
    return r


# ---------------------------------------------------------------------------
# raw SMTP client

class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Reply:
    """One complete (possibly multi-line) SMTP reply."""

    def __init__(self, raw_lines):
        self.raw_lines = raw_lines          # bytes, without CRLF
        self.lines = [l.decode("utf-8", "replace") for l in raw_lines]
        self.code = int(self.lines[0][:3])

    @property
    def first(self):
        return self.lines[0]

    @property
    def last(self):
        return self.lines[-1]

    def texts(self):
        """The text after 'ddd-'/'ddd ' on each line."""
        return [l[4:] for l in self.lines]

    def starts(self, prefix):
        return self.first.startswith(prefix)

    def __str__(self):
        return " | ".join(self.lines)

    __repr__ = __str__


LINE_RE = re.compile(rb"^(\d{3})([ -]|$)")


class SmtpConn:
    """A raw SMTP connection that keeps a transcript of both directions.

    send() writes bytes as given; read_reply() returns one complete reply
    and handles multi-line replies; every failed expectation shows the
    transcript.
    """

    def __init__(self, port, timeout=10.0, greet=True, host="127.0.0.1"):
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.log = []
        self.eof = False
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.greeting = None
        if greet:
            self.greeting = self.read_reply()

    # -- transcript --------------------------------------------------------
    def transcript(self, limit=60):
        out = []
        for d, b in self.log[-limit:]:
            out.append("%s: %s" % (d, show(b)))
        return "\n".join(out)

    def fail(self, msg):
        raise AssertionError("%s\n--- transcript ---\n%s" % (msg, self.transcript()))

    # -- output ------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.log.append(("C", data))
        self.sock.sendall(data)

    def send_line(self, line):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")

    # -- input -------------------------------------------------------------
    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed("connection closed by server")
        self.log.append(("S", chunk))
        self.buf += chunk

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if self.eof:
                raise Closed("connection closed by server")
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_reply(self, timeout=None):
        """One complete reply; raises Closed on EOF, socket.timeout on
        timeout, AssertionError on a malformed reply line."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        code = None
        while True:
            line = self.read_line(max(0.001, deadline - time.monotonic()))
            m = LINE_RE.match(line)
            if not m or (code is not None and m.group(1) != code):
                self.fail("malformed reply line %s" % show(line))
            code = m.group(1)
            lines.append(line)
            if m.group(2) != b"-":
                return Reply(lines)

    def try_reply(self, timeout=None):
        """A reply, or None on EOF/timeout."""
        try:
            return self.read_reply(timeout)
        except (Closed, socket.timeout, OSError):
            return None

    def cmd(self, line, timeout=None):
        self.send_line(line)
        return self.read_reply(timeout)

    def expect(self, line, prefix, timeout=None):
        """Sends a command line (None: send nothing) and checks that the
        reply's first line starts with prefix."""
        if line is not None:
            self.send_line(line)
        try:
            r = self.read_reply(timeout)
        except Closed:
            self.fail("want %r, got connection closed" % prefix)
        except socket.timeout:
            self.fail("want %r, got no reply (timeout)" % prefix)
        if not r.starts(prefix):
            self.fail("want %r, got %r" % (prefix, r.first))
        return r

    def pending(self, wait=0.3):
        """Bytes that arrive within `wait` seconds (b"" when none)."""
        got = self.buf
        self.buf = b""
        if self.eof:
            return got
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return got
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                return got
            self.log.append(("S", chunk))
            got += chunk

    def expect_nothing_more(self, wait=0.3):
        got = self.pending(wait)
        if got:
            self.fail("unexpected extra server output %s" % show(got))

    def wait_closed(self, timeout=10.0):
        """Reads until EOF; returns the bytes read before it. Fails if the
        connection is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        got = self.buf
        self.buf = b""
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail("connection still open after %.1fs" % timeout)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.log.append(("S", chunk))
            got += chunk
        return got

    def ehlo(self, name="client.example.org"):
        return self.expect("EHLO " + name, "250")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def check_enhanced(conn, reply):
    """Every line of a non-greeting, non-EHLO reply carries an enhanced
    status code whose class matches the reply code."""
    for line in reply.lines:
        text = line[4:]
        if not ENHANCED_RE.match(text) or text[0] != line[0]:
            conn.fail("reply %r lacks a matching enhanced status code" % line)


def queue_id(conn, reply):
    m = QUEUED_RE.search(reply.last)
    if not (reply.starts("250 2.0.0") and m):
        conn.fail("want '250 2.0.0 Ok: queued as <id>', got %r" % str(reply))
    return m.group(1)


def send_message(conn, sender, rcpts, data, ehlo=True, stuff=True,
                 terminator=b"\r\n.\r\n"):
    """One complete transaction on conn. `data` are the message bytes as
    the recipient should see them; they are dot-stuffed here when `stuff`.
    Returns the queue id."""
    if ehlo:
        conn.ehlo()
    conn.expect("MAIL FROM:<%s>" % sender, "250")
    for r in rcpts:
        conn.expect("RCPT TO:<%s>" % r, "250")
    conn.expect("DATA", "354")
    conn.send(wire_data(data, stuff, terminator))
    r = conn.read_reply(30)
    return queue_id(conn, r)


def wire_data(data, stuff=True, terminator=b"\r\n.\r\n"):
    """Message bytes -> DATA bytes: dot-stuffing and the terminator."""
    if stuff:
        if data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
    if data == b"":
        return b".\r\n"
    if data.endswith(b"\r\n"):
        return data + terminator[2:]
    return data + terminator


# ---------------------------------------------------------------------------
# Maildir

def maildir_files(maildir, sub="new"):
    d = Path(maildir) / sub
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file())


def wait_files(maildir, n, timeout=10.0, sub="new"):
    """Polls until maildir/new holds at least n files; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        files = maildir_files(maildir, sub)
        if len(files) >= n or time.monotonic() > deadline:
            return files
        time.sleep(0.05)


def split_delivered(data):
    """A delivered file -> (return_path, received_unfolded, rest).

    Raises AssertionError when the file does not start with
    "Return-Path: <...>\\r\\n" and a Received header (folded lines start
    with SP or HTAB)."""
    if not data.startswith(b"Return-Path: <"):
        raise AssertionError("file does not start with Return-Path: %s" % show(data[:200]))
    end = data.find(b"\r\n")
    if end < 0:
        raise AssertionError("Return-Path line has no CRLF: %s" % show(data[:200]))
    rp = data[len(b"Return-Path: "):end]
    pos = end + 2
    if not data[pos:].startswith(b"Received:"):
        raise AssertionError("second header is not Received: %s" % show(data[pos:pos + 200]))
    parts = []
    while True:
        e = data.find(b"\r\n", pos)
        if e < 0:
            raise AssertionError("Received header has no CRLF: %s" % show(data[pos:pos + 300]))
        parts.append(data[pos:e])
        pos = e + 2
        if not data[pos:pos + 1] in (b" ", b"\t"):
            break
    received = b" ".join(p.strip() for p in parts)
    return rp, received.decode("utf-8", "replace"), data[pos:]


def check_delivered(data, sender, body, hostname="mx.test", qid=None,
                    rcpt=None, with_="ESMTP"):
    """Asserts the delivered file is Return-Path + Received + exactly body.
    rcpt: the single recipient ("for <rcpt>"), or None when the message
    had several recipients (then no "for" clause)."""
    rp, received, rest = split_delivered(data)
    assert rp == b"<" + sender.encode() + b">", \
        "Return-Path: got %s, want <%s>" % (show(rp), sender)
    assert re.search(r"\bby %s\b" % re.escape(hostname), received), \
        "Received lacks 'by %s': %s" % (hostname, received)
    assert re.search(r"\bwith %s\b" % with_, received), \
        "Received lacks 'with %s': %s" % (with_, received)
    if qid is not None:
        assert re.search(r"\bid <?%s>?(?=[;\s]|$)" % re.escape(qid), received), \
            "Received lacks 'id %s': %s" % (qid, received)
    if rcpt is not None:
        assert re.search(r"\bfor <%s>" % re.escape(rcpt), received, re.I), \
            "Received lacks 'for <%s>': %s" % (rcpt, received)
    elif rcpt is None:
        assert not re.search(r"\bfor <", received), \
            "Received has a 'for' clause with several recipients: %s" % received
    assert rest == body, "body differs: got %s\nwant %s" % (show(rest, 600), show(body, 600))
    return received


# ---------------------------------------------------------------------------
# one tern process

DEFAULT_CONFIG = {
    "hostname": "mx.test",
    "log": "stderr",
    "log_level": "info",
    "domain": ["example.test", "localhost"],
    "user": ["alice", "bob", "demo"],
    "alias": ["team: alice, bob"],
    # the tests' client (127.0.0.1) is a stranger unless a test says so:
    # it may only send to the local domains
    "relay_from": "192.0.2.0/24",
    # many tests open sessions in bursts from 127.0.0.1; the per-address
    # limits have their own tests (test_abuse.py)
    "client_sessions_max": "0",
    "auth_delay_max": "0",
}


class TernServer:
    """One `tern serve --config FILE` in its own directory.

    Each start writes the server's stderr to its own file (run-N.stderr)
    so that every run can be checked for sanitizer reports.
    """

    def __init__(self, workdir, config=None, extra=(), binary=None, env=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = Path(binary or tern_bin())
        self.state_dir = self.workdir / "state"
        self.port = free_port()
        cfg = dict(DEFAULT_CONFIG)
        cfg["state_dir"] = str(self.state_dir)
        cfg["listen"] = "127.0.0.1:%d mx" % self.port
        for k, v in (config or {}).items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        self.config = cfg
        self.extra = list(extra)
        self.env = dict(env or {})
        self.config_path = self.workdir / "tern.conf"
        self.config_path.write_text(self.render())
        self.proc = None
        self.runs = []      # dicts: proc, stderr, ended ("term"/"kill"/"self")
        self.hostname = cfg.get("hostname", "mx.test")

    def render(self):
        out = []
        for k, v in self.config.items():
            for item in (v if isinstance(v, list) else [v]):
                out.append("%s = %s" % (k, item))
        out.extend(self.extra)
        return "\n".join(out) + "\n"

    # -- process control -----------------------------------------------------
    def start(self, wait=True):
        assert self.proc is None, "already running"
        n = len(self.runs)
        err = self.workdir / ("run-%d.stderr" % n)
        out = self.workdir / ("run-%d.stdout" % n)
        with open(err, "wb") as ef, open(out, "wb") as of:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=of, stderr=ef,
                cwd=str(self.workdir), env=dict(sanitizer_env(), **self.env))
        self.runs.append({"proc": self.proc, "stderr": err, "stdout": out,
                          "ended": None})
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20.0):
        """Until a TCP connect succeeds and the 220 greeting arrives."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "tern exited with %s before accepting connections\n%s"
                    % (self.proc.returncode, tail(self.stderr_text())))
            try:
                c = SmtpConn(self.port, timeout=2.0, greet=False)
            except OSError as e:
                last = e
                time.sleep(0.05)
                continue
            try:
                r = c.read_reply(5.0)
                if r.code == 220:
                    try:
                        c.send_line("QUIT")
                        c.try_reply(2.0)
                    except OSError:
                        pass
                    return
                last = "greeting %r" % str(r)
            except (Closed, socket.timeout, OSError, AssertionError) as e:
                last = e
            finally:
                c.close()
            time.sleep(0.05)
        raise AssertionError("tern not ready after %.0fs (%s)\n%s"
                             % (timeout, last, tail(self.stderr_text())))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20.0):
        """SIGTERM our process, wait for it; returns its exit status."""
        p = self.proc
        assert p is not None, "not running"
        run = self.runs[-1]
        if p.poll() is None:
            run["ended"] = "term"
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
                run["ended"] = "hung"
        else:
            run["ended"] = "self"
        self.proc = None
        return p.returncode

    def kill(self):
        """SIGKILL our process and reap it."""
        p = self.proc
        assert p is not None, "not running"
        run = self.runs[-1]
        if p.poll() is None:
            run["ended"] = "kill"
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
        else:
            run["ended"] = "self"
        self.proc = None

    def restart(self, wait=True):
        if self.proc is not None:
            self.stop()
        return self.start(wait)

    # -- inspection ------------------------------------------------------------
    def stderr_text(self, run=None):
        runs = self.runs if run is None else [run]
        out = []
        for r in runs:
            try:
                out.append(r["stderr"].read_text(errors="replace"))
            except FileNotFoundError:
                pass
        return "".join(out)

    def problems(self):
        """Everything wrong with the runs so far: a SIGTERMed run that did
        not exit 0, a run that exited by itself, sanitizer reports."""
        probs = []
        for i, r in enumerate(self.runs):
            text = self.stderr_text(r)
            rc = r["proc"].returncode
            if r["ended"] == "term" and rc != 0:
                probs.append("run %d: exit status %s after SIGTERM" % (i, rc))
            elif r["ended"] == "hung":
                probs.append("run %d: did not exit within 20s of SIGTERM" % i)
            elif r["ended"] == "self":
                probs.append("run %d: exited by itself with status %s" % (i, rc))
            for m in SANITIZER_MARKERS:
                if m in text:
                    probs.append("run %d: stderr contains %r" % (i, m))
                    break
            if probs and probs[-1].startswith("run %d" % i):
                probs.append("--- run %d stderr tail ---\n%s" % (i, tail(text)))
        return probs

    def assert_clean(self):
        probs = self.problems()
        if probs:
            raise AssertionError("\n".join(probs))

    def assert_alive(self):
        if not self.running():
            rc = self.proc.returncode if self.proc else None
            raise AssertionError("tern is not running (status %s)\n%s"
                                 % (rc, tail(self.stderr_text())))

    def maildir(self, user):
        return self.state_dir / "mail" / user / "Maildir"

    def queue_dir(self):
        return self.state_dir / "spool" / "queue"

    def connect(self, **kw):
        return SmtpConn(self.port, **kw)

    def wait_log(self, pattern, timeout=10.0):
        """Polls stderr for a line matching the regex; returns it or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr_text().splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
