# SPDX-License-Identifier: MIT
"""A handle on one smtpsink.py process (the peer that tern relays to).

Sink(workdir, addr, port, script, mode, extensions, tls=..., auth=...)
writes the script, starts the sink on addr:port (127.0.0.0/8 or ::1 only;
on Linux every 127.x.y.z address is on the loopback interface without
setup), waits until it accepts connections, and reads back what it stored:
messages(), stats() and conns(). It stops only its own process, by PID, and
every wait is bounded.

tls: None, or a dict of smtpsink.py's TLS options {"cert": PEM, "key": PEM,
"starttls_reply": "454 ...", "break": True, "hang": True}; auth: None, or {"mechanisms":
"PLAIN,LOGIN", "user": U, "password": P, "clear": True}. See smtpsink.py.
"""

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ternlib import tail

SINK_SCRIPT = Path(__file__).resolve().parent / "smtpsink.py"
SINK_LIFETIME = 300.0       # seconds; a sink never outlives a stuck test by more


def free_port_on(*addrs, tries=50):
    """A port that was free a moment ago on every one of addrs: the MX hosts
    of a test share one port (tern's relay_port) on different 127.x
    addresses."""
    addrs = addrs or ("127.0.0.1",)
    for _ in range(tries):
        with socket.socket(family(addrs[0]), socket.SOCK_STREAM) as s:
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
        if all(port_free_on(a, port) for a in addrs):
            return port
    raise AssertionError("no port free on all of %s after %d tries"
                         % (", ".join(addrs), tries))


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def port_free_on(addr, port):
    with socket.socket(family(addr), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        return True


def ext_arg(extensions):
    """None: the sink's default set; [] : none; else a list such as
    ["PIPELINING", "8BITMIME", "SIZE 1000"] or "SIZE=1000"."""
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    items = [e.strip().replace(" ", "=") for e in extensions]
    return ",".join(items) if items else "none"


class SinkMessage:
    """One stored message: the envelope fields of the .json and the bytes
    of the .eml."""

    def __init__(self, meta, data, path):
        self.meta = meta
        self.data = data
        self.path = path
        self.mail_from = meta["mail_from"]
        self.rcpt_tos = meta["rcpt_tos"]
        self.mail_options = meta["mail_options"]
        self.rcpt_options = meta["rcpt_options"]
        self.peer = meta["peer"]
        self.helo = meta["helo"]
        self.conn = meta["conn"]
        self.seq = meta["seq"]
        self.has_8bit = meta["has_8bit"]

    def email(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)

    def rcpt_option(self, rcpt, keyword):
        """The value of a RCPT parameter (e.g. "ORCPT") for one recipient;
        None when absent, True for a parameter without a value."""
        i = self.rcpt_tos.index(rcpt)
        return find_param(self.rcpt_options[i], keyword)

    def mail_option(self, keyword):
        return find_param(self.mail_options, keyword)

    def __repr__(self):
        return "<SinkMessage from=<%s> to=%s conn=%d seq=%d size=%d>" % (
            self.mail_from, self.rcpt_tos, self.conn, self.seq, len(self.data))


def find_param(params, keyword):
    for p in params:
        k, eq, v = p.partition("=")
        if k.upper() == keyword.upper():
            return v if eq else True
    return None


class Sink:
    def __init__(self, workdir, addr="127.0.0.2", port=None, script=None,
                 mode="normal", extensions=None, hostname="sink.test",
                 lifetime=SINK_LIFETIME, idle_timeout=60.0, cut_bytes=None,
                 tls=None, auth=None):
        if not addr.startswith("127.") and addr != "::1":
            raise ValueError("sinks listen on 127.0.0.0/8 or ::1 only, not %r"
                             % addr)
        self.workdir = Path(workdir)
        self.store = self.workdir / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.addr = addr
        self.port = port or free_port_on(addr)
        self.mode = mode
        self.extensions = extensions
        self.hostname = hostname
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        self.cut_bytes = cut_bytes
        self.tls = dict(tls or {})
        self.auth = dict(auth or {})
        self.script_path = self.workdir / "script.json"
        self.set_script(script or {})
        self.proc = None
        self.ended = None       # "term", "hung", "self"
        self.stderr_path = self.workdir / "sink.stderr"

    @property
    def hostport(self):
        if ":" in self.addr:
            return "[%s]:%d" % (self.addr, self.port)
        return "%s:%d" % (self.addr, self.port)

    def set_script(self, script):
        """Replaces the reply script; the sink reads it again at its next
        connection. Attempt counters carry on."""
        tmp = self.script_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(script))
        os.replace(tmp, self.script_path)

    # -- process control -----------------------------------------------------
    def argv(self):
        a = [sys.executable, str(SINK_SCRIPT), "--listen", self.hostport,
             "--dir", str(self.store), "--mode", self.mode,
             "--script", str(self.script_path), "--hostname", self.hostname,
             "--lifetime", str(self.lifetime),
             "--idle-timeout", str(self.idle_timeout)]
        e = ext_arg(self.extensions)
        if e is not None:
            a += ["--ext", e]
        if self.cut_bytes is not None:
            a += ["--cut-bytes", str(self.cut_bytes)]
        for key, opt in (("cert", "--tls-cert"), ("key", "--tls-key"),
                         ("starttls_reply", "--starttls-reply")):
            if self.tls.get(key):
                a += [opt, str(self.tls[key])]
        if self.tls.get("break"):
            a.append("--tls-break")
        if self.tls.get("hang"):
            a.append("--tls-hang")
        for key, opt in (("mechanisms", "--auth"), ("user", "--auth-user"),
                         ("password", "--auth-password")):
            if self.auth.get(key) is not None:
                a += [opt, str(self.auth[key])]
        if self.auth.get("clear"):
            a.append("--auth-clear")
        return a

    def start(self, wait=True):
        assert self.proc is None, "already running"
        with open(self.stderr_path, "ab") as ef:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=ef, stderr=ef,
                                         cwd=str(self.workdir))
        self.ended = None
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        """Until a TCP connect succeeds. The probe sends nothing, so it is
        counted in stats()["accepted"] but not in ["connections"]."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("sink on %s exited with %s before "
                                     "listening\n%s" % (self.hostport,
                                     self.proc.returncode, tail(self.stderr_text())))
            try:
                with socket.create_connection((self.addr, self.port), timeout=1.0):
                    return self
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("sink on %s not accepting after %.0fs (%s)\n%s"
                             % (self.hostport, timeout, last,
                                tail(self.stderr_text())))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM our process and wait; SIGKILL it if it hangs."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            self.ended = "term"
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
                self.ended = "hung"
        else:
            self.ended = "self"
        self.proc = None
        self.last_rc = p.returncode
        return p.returncode

    # -- inspection ------------------------------------------------------------
    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stats(self):
        """The sink's stats.json (see smtpsink.py); {} before it exists."""
        try:
            return json.loads((self.store / "stats.json").read_text())
        except FileNotFoundError:
            return {}

    def conns(self):
        """Per connection that sent bytes: peer, helo, commands, tls,
        tls_error, auth (see smtpsink.py)."""
        return [c for c in self.stats().get("conns", []) if c["sent_bytes"]]

    def messages(self):
        """Every stored message, in arrival order."""
        out = []
        for j in sorted(self.store.glob("msg-*.json")):
            meta = json.loads(j.read_text())
            data = j.with_suffix(".eml").read_bytes()
            out.append(SinkMessage(meta, data, j))
        return out

    def wait_messages(self, n, timeout=10.0):
        """Polls until at least n messages are stored; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if len(msgs) >= n or time.monotonic() > deadline:
                return msgs
            time.sleep(0.05)

    def wait_stat(self, key, at_least, timeout=10.0):
        """Polls until stats()[key] >= at_least; returns the stats."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if st.get(key, 0) >= at_least or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def problems(self):
        """What is wrong with the sink itself: it exited by itself, hung on
        SIGTERM, failed, or recorded an exception."""
        probs = []
        rc = getattr(self, "last_rc", None)
        if self.ended == "self":
            probs.append("sink %s exited by itself with %s" % (self.hostport, rc))
        elif self.ended == "hung":
            probs.append("sink %s did not exit within 10s of SIGTERM" % self.hostport)
        elif self.ended == "term" and rc != 0:
            probs.append("sink %s: exit status %s after SIGTERM" % (self.hostport, rc))
        errs = self.stats().get("errors") or []
        probs.extend("sink %s: %s" % (self.hostport, e) for e in errs)
        if "Traceback" in self.stderr_text():
            probs.append("sink %s stderr:\n%s" % (self.hostport,
                                                  tail(self.stderr_text())))
        return probs
