# SPDX-License-Identifier: MIT
"""IPv6 listeners and clients: `listen = *:PORT` takes 127.0.0.1 and ::1,
`[::1]:PORT` takes ::1, `[::]:PORT` takes no IPv4; a mail from ::1 is
delivered with `[IPv6:::1]` in Received, relay_from ::1/128 trusts a ::1
client (it relays through a smarthost; 127.0.0.1 may not), and
client_sessions_max counts ::1 sessions.

Skipped only when the test machine has no ::1 (a socket cannot be bound
to it); everything else is a failure.
"""

import socket
import time

import pytest

from sinklib import free_port_on
from ternlib import (Closed, SmtpConn, send_message, split_delivered, tail,
                     wait_files)

BODY = b"From: alice@example.test\r\nSubject: over IPv6\r\n\r\nhello\r\n"


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not have_ipv6_loopback(),
                                reason="no ::1 on this machine")


def port_free(family, addr, port):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        return True


def free_port_both(tries=50):
    """A port free a moment ago on 0.0.0.0 and on [::]."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::", 0))
            port = s.getsockname()[1]
        if port_free(socket.AF_INET, "0.0.0.0", port):
            return port
    raise AssertionError("no port free on both 0.0.0.0 and [::]")


def free_port6():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def greeted(host, port, timeout=5.0):
    """A session greeted with 220 by the server at host:port."""
    c = SmtpConn(port, host=host, timeout=timeout, greet=False)
    r = c.read_reply()
    if r.code != 220:
        c.fail("want 220 greeting from [%s]:%d, got %s" % (host, port, r))
    return c


def refused(host, port):
    """True when nothing listens at host:port (connection refused)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def with_listen(tern_server, listen, port=None, **config):
    """A server whose listen lines are `listen` (a list); the test port
    (srv.port, which wait_ready uses) stays a 127.0.0.1 listener unless
    `port` names another IPv4-reachable one."""
    srv = tern_server(start=False, **config)
    if port is not None:
        srv.port = port
    srv.config["listen"] = listen
    srv.config_path.write_text(srv.render())
    return srv.start()


def ipv6_server(tern_server, **config):
    p6 = free_port6()
    srv = tern_server(start=False, **config)
    srv.config["listen"] = ["127.0.0.1:%d mx" % srv.port, "[::1]:%d mx" % p6]
    srv.config_path.write_text(srv.render())
    srv.start()
    srv.port6 = p6
    return srv


def listen_line(srv, pattern):
    line = srv.wait_log(r"event=listen address=%s " % pattern, 5)
    assert line, "no listen line matching %r\n%s" % (pattern,
                                                     tail(srv.stderr_text()))
    return line


# ---------------------------------------------------------------------------
# listeners

def test_any_takes_ipv4_and_ipv6(tern_server):
    port = free_port_both()
    srv = with_listen(tern_server, ["*:%d mx" % port], port=port)
    listen_line(srv, r"0\.0\.0\.0:%d,\[::\]:%d" % (port, port))
    for host in ("127.0.0.1", "::1", "127.0.0.1", "::1"):
        with greeted(host, port) as c:
            c.ehlo()
            c.expect("QUIT", "221")
    # the session log names the client by its own family
    assert srv.wait_log(r"smtp sess=\S+ event=connect client=\[::1\]:\d+ "
                        r"listener=\[::1\]:%d" % port, 5), \
        tail(srv.stderr_text())


def test_ipv6_loopback_only(tern_server):
    srv = ipv6_server(tern_server)
    listen_line(srv, r"\[::1\]:%d" % srv.port6)
    with greeted("::1", srv.port6) as c:
        c.ehlo()
        c.expect("QUIT", "221")
    assert refused("127.0.0.1", srv.port6), \
        "[::1]:%d took an IPv4 connection" % srv.port6


def test_ipv6_any_takes_no_ipv4(tern_server):
    p6 = free_port_both()
    srv = tern_server(start=False)
    srv.config["listen"] = ["127.0.0.1:%d mx" % srv.port, "[::]:%d mx" % p6]
    srv.config_path.write_text(srv.render())
    srv.start()
    listen_line(srv, r"\[::\]:%d" % p6)
    with greeted("::1", p6) as c:
        c.expect("QUIT", "221")
    assert refused("127.0.0.1", p6), "[::]:%d took an IPv4 connection" % p6
    # and the port's IPv4 side is free for another program
    assert port_free(socket.AF_INET, "0.0.0.0", p6), \
        "[::]:%d holds 0.0.0.0:%d too" % (p6, p6)


def test_any_port_taken_on_ipv6_fails_start(tern_server):
    """`*` means both: when [::]:PORT is taken the server does not start
    half-way on IPv4 alone."""
    port = free_port_both()
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as hold:
        hold.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        hold.bind(("::", port))
        hold.listen(1)
        srv = tern_server(start=False)
        srv.config["listen"] = "*:%d mx" % port
        srv.config_path.write_text(srv.render())
        srv.start(wait=False)
        rc = srv.proc.wait(20)
    srv.runs[-1]["ended"] = "refused to start"
    srv.proc = None
    assert rc == 1, "exit status %s, want 1" % rc
    assert "cannot listen on [::]:%d: Address already in use" % port in \
        srv.stderr_text(), tail(srv.stderr_text())


# ---------------------------------------------------------------------------
# a client on ::1

def test_mail_over_ipv6_delivered(tern_server):
    srv = ipv6_server(tern_server)
    with greeted("::1", srv.port6) as c:
        qid = send_message(c, "someone@example.org", ["alice@example.test"],
                           BODY)
        c.expect("QUIT", "221")
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1, tail(srv.stderr_text())
    _, received, rest = split_delivered(files[0].read_bytes())
    assert "from client.example.org ([IPv6:::1])" in received, received
    assert "id %s" % qid in received, received
    assert rest == BODY


def test_relay_from_ipv6_loopback(tern_server, smtp_sink):
    port = free_port_on("127.0.0.2")
    sink = smtp_sink(addr="127.0.0.2", port=port)
    srv = ipv6_server(tern_server, relay_from="::1/128",
                      smarthost="[127.0.0.2]:%d" % port)
    # 127.0.0.1 is not in relay_from: no relaying
    with SmtpConn(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<alice@example.test>", "250")
        c.expect("RCPT TO:<bob@remote.test>", "550 5.7.1")
        c.expect("QUIT", "221")
    # ::1 is: the message goes out through the smarthost
    with greeted("::1", srv.port6) as c:
        send_message(c, "alice@example.test", ["bob@remote.test"], BODY)
        c.expect("QUIT", "221")
    msgs = sink.wait_messages(1, timeout=15)
    assert len(msgs) == 1, tail(srv.stderr_text())
    assert msgs[0].rcpt_tos == ["bob@remote.test"]
    assert b"([IPv6:::1])" in msgs[0].data, msgs[0].data[:400]


def test_client_sessions_max_counts_ipv6(tern_server):
    srv = ipv6_server(tern_server, client_sessions_max="2")
    held = [greeted("::1", srv.port6), greeted("::1", srv.port6)]
    try:
        c = SmtpConn(srv.port6, host="::1", greet=False)
        with c:
            try:
                r = c.read_reply(10)
            except Closed:
                r = None
            if r is None or not r.starts("421 4.7.0"):
                c.fail("third session from ::1 (limit 2): want 421 4.7.0, "
                       "got %s" % r)
        # IPv4 is another client
        with greeted("127.0.0.1", srv.port) as c4:
            c4.expect("QUIT", "221")
        held[0].expect("QUIT", "221")
        held[0].wait_closed(5)
        deadline = time.monotonic() + 5
        while True:
            c = SmtpConn(srv.port6, host="::1", greet=False)
            r = c.try_reply(5)
            c.close()
            if (r is not None and r.starts("220")) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r is not None and r.starts("220"), "freed slot: %s" % r
    finally:
        for h in held:
            h.close()
