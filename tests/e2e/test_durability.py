# SPDX-License-Identifier: MIT
"""SIGKILL at random moments while clients send mail.

Clients record for every message token what they were told: 250 (acked),
a 4xx/5xx (rejected), the terminating dot sent but no reply (in doubt), or
the connection lost before the dot (unsent). After the last restart every
acked token must be in the Maildir exactly once, in-doubt tokens at most
once, rejected and unsent tokens never, and the queue must be empty.
"""

import random
import re
import socket
import threading
import time
from collections import Counter

from ternlib import Closed, SmtpConn, maildir_files, split_delivered, tail

THREADS = 6
RUN_SECONDS = 35          # upper bound for the kill phase (plus <= 20 s to drain)
KILLS_MIN, KILLS_MAX = 10, 15
RCPTS = [("alice@example.test", ("alice",)),
         ("bob@example.test", ("bob",)),
         ("demo@localhost", ("demo",)),
         ("team@example.test", ("alice", "bob"))]
TOKEN_RE = re.compile(rb"^Subject: token (\S+)\r\n", re.M)


def message(token):
    return (b"Subject: token " + token.encode() + b"\r\n"
            b"Message-ID: <" + token.encode() + b"@client.example.org>\r\n"
            b"\r\n"
            b"body of " + token.encode() + b"\r\n"
            b".line with a leading dot\r\n"
            + b"filler " * 20 + b"\r\n")


class Client(threading.Thread):
    def __init__(self, idx, port, stop, seed):
        super().__init__(daemon=True)
        self.idx = idx
        self.port = port
        self.stop = stop
        self.rnd = random.Random(seed)
        self.state = {}          # token -> acked/rejected/doubt/unsent
        self.dest = {}           # token -> users it should reach
        self.seq = 0
        self.errors = []

    def connect(self):
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                c = SmtpConn(self.port, timeout=10)
                if c.greeting.code == 220:
                    c.ehlo("client%d.example.org" % self.idx)
                    return c
                c.close()
            except (OSError, Closed, AssertionError):
                pass
            time.sleep(0.02)
        return None

    def one(self, c):
        self.seq += 1
        token = "t%d-%d-%08x" % (self.idx, self.seq, self.rnd.getrandbits(32))
        rcpt, users = self.rnd.choice(RCPTS)
        self.dest[token] = users
        self.state[token] = "unsent"
        r = c.cmd("MAIL FROM:<sender%d@example.org>" % self.idx)
        if r.code != 250:
            self.state[token] = "rejected"
            c.cmd("RSET")
            return
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        if r.code != 250:
            self.state[token] = "rejected"
            c.cmd("RSET")
            return
        r = c.cmd("DATA")
        if r.code != 354:
            self.state[token] = "rejected"
            c.cmd("RSET")
            return
        body = message(token).replace(b"\r\n.", b"\r\n..")
        c.send(body)
        # from the first byte of the terminator on, the server may commit
        self.state[token] = "doubt"
        c.send(b".\r\n")
        r = c.read_reply(20)
        if r.code == 250 and r.starts("250 2.0.0"):
            self.state[token] = "acked"
        elif r.code >= 400:
            self.state[token] = "rejected"
        else:
            self.errors.append("unexpected reply to end of data: %r" % str(r))

    def run(self):
        c = None
        while not self.stop.is_set():
            if c is None:
                c = self.connect()
                if c is None:
                    continue
            try:
                self.one(c)
            except (OSError, Closed, socket.timeout):
                c.close()
                c = None
            except AssertionError as e:     # malformed reply
                self.errors.append(str(e)[:500])
                c.close()
                c = None
        if c is not None:
            try:
                c.cmd("QUIT", timeout=2)
            except (OSError, Closed, socket.timeout, AssertionError):
                pass
            c.close()


def count_tokens(srv, users):
    """user -> Counter(token -> files); also the list of malformed files."""
    counts = {}
    bad = []
    for u in users:
        cnt = Counter()
        for sub in ("new", "cur"):
            for f in maildir_files(srv.maildir(u), sub):
                data = f.read_bytes()
                m = TOKEN_RE.search(data)
                if not m:
                    bad.append("%s: no token" % f)
                    continue
                tok = m.group(1).decode()
                try:
                    _, _, rest = split_delivered(data)
                except AssertionError as e:
                    bad.append("%s: %s" % (f, e))
                    continue
                if rest != message(tok):
                    bad.append("%s: body differs from what was sent" % f)
                cnt[tok] += 1
        counts[u] = cnt
    return counts, bad


def queue_files(srv):
    q = srv.queue_dir()
    if not q.exists():
        return []
    return [p for p in q.rglob("*") if p.is_file()]


def chaos(srv, rnd, signal_name, cycles, interval):
    """Clients send while the server gets `cycles` signals (kill or term)
    at random intervals and is restarted each time; returns the report
    (acked tokens, problems)."""
    stop = threading.Event()
    clients = [Client(i, srv.port, stop, rnd.getrandbits(32)) for i in range(THREADS)]
    for cl in clients:
        cl.start()

    kills = 0
    t0 = time.monotonic()
    try:
        while kills < cycles and time.monotonic() - t0 < RUN_SECONDS:
            time.sleep(rnd.uniform(*interval))
            if signal_name == "kill":
                srv.kill()
            else:
                rc = srv.stop()
                assert rc == 0, "exit status %s after SIGTERM under load" % rc
            kills += 1
            srv.start()             # same state dir, same port; waits for 220
        time.sleep(1.0)             # let the clients finish a few after the last restart
    finally:
        stop.set()
        for cl in clients:
            cl.join(40)
    alive = [cl.idx for cl in clients if cl.is_alive()]
    assert not alive, "client threads %s did not stop" % alive

    # one more crash and restart, then wait for every acked token
    srv.kill()
    srv.start()

    state = {}
    dest = {}
    errors = []
    for cl in clients:
        state.update(cl.state)
        dest.update(cl.dest)
        errors.extend(cl.errors)
    acked = [t for t, s in state.items() if s == "acked"]
    doubt = [t for t, s in state.items() if s == "doubt"]
    never = [t for t, s in state.items() if s in ("rejected", "unsent")]
    users = ("alice", "bob", "demo")

    deadline = time.monotonic() + 20
    while True:
        counts, bad = count_tokens(srv, users)
        missing = [(t, u) for t in acked for u in dest[t] if counts[u][t] == 0]
        if (not missing and not queue_files(srv)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(0.5)
    counts, bad = count_tokens(srv, users)
    q_before_term = queue_files(srv)
    rc = srv.stop()

    print("%s: signals=%d messages=%d acked=%d in_doubt=%d rejected=%d unsent=%d"
          % (signal_name, kills, len(state), len(acked), len(doubt),
             sum(s == "rejected" for s in state.values()),
             sum(s == "unsent" for s in state.values())))

    problems = []
    problems += ["client: %s" % e for e in errors[:10]]
    problems += bad[:10]
    for t in acked:
        for u in dest[t]:
            if counts[u][t] != 1:
                problems.append("acked %s in %s: %d copies" % (t, u, counts[u][t]))
    for t in doubt:
        for u in dest[t]:
            if counts[u][t] > 1:
                problems.append("in-doubt %s in %s: %d copies" % (t, u, counts[u][t]))
        if len({counts[u][t] for u in dest[t]}) > 1:
            problems.append("in-doubt %s reached only some of %s" % (t, dest[t]))
    for t in never:
        for u in users:
            if counts[u][t]:
                problems.append("%s token %s delivered to %s" % (state[t], t, u))
    for u in users:
        for t, n in counts[u].items():
            if t not in state:
                problems.append("unknown token %s in %s" % (t, u))
            elif u not in dest[t]:
                problems.append("token %s for %s delivered to %s" % (t, dest[t], u))
    if q_before_term:
        problems.append("queue not empty before SIGTERM: %s"
                        % [str(p.relative_to(srv.state_dir)) for p in q_before_term[:5]])
    left = queue_files(srv)
    if left:
        problems.append("queue not empty after SIGTERM: %d files" % len(left))
    if rc != 0:
        problems.append("final SIGTERM exit status %s" % rc)
    return acked, problems


def test_sigkill_durability(tern_server):
    srv = tern_server()
    rnd = random.Random(20240601)
    acked, problems = chaos(srv, rnd, "kill", rnd.randint(KILLS_MIN, KILLS_MAX), (0.05, 0.5))
    assert acked, "no message was acked at all\n%s" % tail(srv.stderr_text())
    assert not problems, "\n".join(problems[:40]) + "\n--- stderr tail ---\n" + \
        tail(srv.stderr_text())


def test_sigterm_under_load(tern_server):
    """The same with SIGTERM: each stop exits 0; what got 250 is delivered
    once, what got 421 (or another refusal) never."""
    srv = tern_server()
    rnd = random.Random(20240602)
    acked, problems = chaos(srv, rnd, "term", 4, (0.3, 0.8))
    assert acked, "no message was acked at all\n%s" % tail(srv.stderr_text())
    assert not problems, "\n".join(problems[:40]) + "\n--- stderr tail ---\n" + \
        tail(srv.stderr_text())
