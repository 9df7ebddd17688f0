# SPDX-License-Identifier: MIT
"""Helpers shared by the relay tests: tern's relay configuration for a
test, submitting, reading the delivery log and the DSNs that land in a
local Maildir."""

import email
import email.policy
import re
import subprocess
import time

from ternlib import send_message, split_delivered, wait_files

SENDER = "alice@example.test"          # local: bounces land in her Maildir
BODY = b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: relay\r\n\r\nhello\r\n"


def relay_config(dns, port, **more):
    cfg = {"relay_port": str(port), "dns_servers": dns.addr,
           "relay_from": "127.0.0.0/8",
           "relay_timeout_connect": "2s", "relay_timeout_greeting": "3s",
           "relay_timeout_command": "3s", "relay_timeout_data": "3s",
           "relay_timeout_block": "3s", "relay_timeout_dot": "3s"}
    cfg.update({k: str(v) for k, v in more.items()})
    return cfg


def submit(srv, rcpts, data=BODY, sender=SENDER, conn=None):
    """One message into tern from 127.0.0.1; returns its queue id."""
    if conn is not None:
        return send_message(conn, sender, rcpts, data, ehlo=False)
    with srv.connect() as c:
        qid = send_message(c, sender, rcpts, data)
        c.expect("QUIT", "221")
    return qid


def deliver_lines(srv, rcpt=None, status=None):
    """The delivery log lines (optionally for one recipient / status)."""
    out = []
    for line in srv.stderr_text().splitlines():
        if not re.search(r"\bdeliver id=", line):
            continue
        if rcpt is not None and "rcpt=<%s>" % rcpt not in line:
            continue
        if status is not None and not re.search(r"\bstatus=%s\b" % status, line):
            continue
        out.append(line)
    return out


def wait_deliver(srv, rcpt, status, timeout=15.0, count=1):
    deadline = time.monotonic() + timeout
    while True:
        lines = deliver_lines(srv, rcpt, status)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def log_field(line, key):
    m = re.search(r'\b%s=("(?:[^"\\]|\\.)*"|\S+)' % re.escape(key), line)
    return m.group(1).strip('"') if m else None


def tern_queue(srv, *args, timeout=10):
    return subprocess.run([str(srv.binary), "queue", *args, "--config",
                           str(srv.config_path)], capture_output=True, text=True,
                          timeout=timeout)


def read_bounce(srv, user="alice", n=1, timeout=20.0):
    """The n-th DSN in user's Maildir: (message, per-message fields,
    [per-recipient fields]) of the RFC 3464 report."""
    files = wait_files(srv.maildir(user), n, timeout)
    assert len(files) >= n, "got %d files in %s's Maildir, want %d\n%s" % (
        len(files), user, n, "\n".join(deliver_lines(srv)))
    data = files[n - 1].read_bytes()
    rp, _, rest = split_delivered(data)
    # RFC 3464 §2 / RFC 5321 §4.5.5: a DSN goes out with the null sender
    assert rp == b"<>", "bounce Return-Path: got %r, want <>" % rp
    msg = email.message_from_bytes(rest, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", \
        "got %s, want multipart/report" % msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", \
        "report-type: got %r" % msg.get_param("report-type")
    parts = list(msg.iter_parts())
    kinds = [p.get_content_type() for p in parts]
    assert len(parts) in (2, 3) and kinds[1] == "message/delivery-status", \
        "parts: got %r" % kinds
    if len(parts) == 3:
        assert kinds[2] in ("message/rfc822", "text/rfc822-headers",
                            "message/global", "message/global-headers"), kinds
    blocks = parts[1].get_payload()
    return msg, blocks[0], blocks[1:]


def rcpt_blocks(blocks):
    """{address: fields} from the per-recipient blocks."""
    out = {}
    for b in blocks:
        typ, _, addr = b["Final-Recipient"].partition(";")
        assert typ.strip().lower() == "rfc822", b["Final-Recipient"]
        out[addr.strip().lower()] = b
    return out


def all_sink_messages(*sinks):
    return [m for s in sinks for m in s.messages()]


