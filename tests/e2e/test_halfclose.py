# SPDX-License-Identifier: MIT
"""A client that pipelines a whole session and then closes its sending side
(shutdown(SHUT_WR)) still gets every reply, and its message is delivered."""

import socket
import time

from ternlib import check_delivered, wait_files


def read_all(sock, timeout=10.0):
    sock.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def test_pipelined_session_then_half_close(srv):
    body = b"Subject: half-close\r\n\r\nsent before FIN\r\n"
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(b"EHLO client.example.org\r\n"
                  b"MAIL FROM:<a@example.org>\r\n"
                  b"RCPT TO:<alice@example.test>\r\n"
                  b"DATA\r\n" + body + b".\r\n"
                  b"QUIT\r\n")
        s.shutdown(socket.SHUT_WR)
        replies = read_all(s)
    finally:
        s.close()
    lines = replies.split(b"\r\n")
    assert any(l.startswith(b"250 2.0.0 Ok: queued as ") for l in lines), replies
    assert lines[-2].startswith(b"221 2.0.0"), replies
    files = wait_files(srv.maildir("alice"), 1)
    assert len(files) == 1
    check_delivered(files[0].read_bytes(), "a@example.org", body,
                    rcpt="alice@example.test")


def test_half_close_mid_command_gets_no_reply_and_server_lives(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.recv(1024)
        s.sendall(b"NOOP\r\nNOO")   # an unfinished line, then FIN
        s.shutdown(socket.SHUT_WR)
        replies = read_all(s)
    finally:
        s.close()
    assert replies == b"250 2.0.0 Ok\r\n", replies
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s2:
        assert s2.recv(1024).startswith(b"220 ")
