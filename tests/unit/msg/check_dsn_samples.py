#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Parses the notifications that test_msg_dsn writes when TERN_DSN_SAMPLES
is set, with Python's email package (stdlib only), and checks that each is
a multipart/report (RFC 6522) of exactly three parts with the RFC 3464
fields, RFC 3834 Auto-Submitted and CRLF lines within 998 octets.

    mkdir -p /tmp/dsn && TERN_DSN_SAMPLES=/tmp/dsn \
        build/debug/unit/msg/test_msg_dsn
    /usr/bin/python3 tests/unit/msg/check_dsn_samples.py /tmp/dsn
"""
import email
import email.parser
import email.policy
import email.utils
import os
import sys

SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "success": "Successful Mail Delivery Report",
}

# sample name -> what it must hold
EXPECT = {
    "failed": dict(actions=["failed"], orig="message/rfc822"),
    "delayed": dict(actions=["delayed"], orig="message/rfc822"),
    "delivered": dict(actions=["delivered"], orig="message/rfc822"),
    "relayed": dict(actions=["relayed"], orig="message/rfc822"),
    "expanded": dict(actions=["expanded"], orig="message/rfc822"),
    "several": dict(actions=["failed", "failed", "failed", "delayed"],
                    orig="message/rfc822"),
    "hdrs": dict(actions=["failed"], orig="text/rfc822-headers"),
    "toolarge": dict(actions=["failed"], orig="text/rfc822-headers"),
    "envid": dict(actions=["failed"] * 3, orig="message/rfc822",
                  envid="QQ314159+2Bx",
                  orcpt=["rfc822;Bob+2BTag@Remote.test", None, None]),
    "hostile": dict(actions=["failed"], orig="message/rfc822"),
    "clash": dict(actions=["failed"], orig="message/rfc822"),
    "utf8": dict(actions=["failed"], orig="message/global", utf8=True),
}

PER_MESSAGE = {"reporting-mta", "original-envelope-id",
               "received-from-mta", "arrival-date"}
PER_RCPT = {"original-recipient", "final-recipient", "action", "status",
            "remote-mta", "diagnostic-code", "last-attempt-date",
            "will-retry-until"}


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


def check_lines(raw):
    for n, line in enumerate(raw.split(b"\r\n")[:-1], 1):
        need(b"\r" not in line and b"\n" not in line,
             f"line {n}: bare CR or LF")
        need(len(line) <= 998, f"line {n}: {len(line)} octets, max 998")
    need(raw.endswith(b"\r\n"), "does not end in CRLF")


def status_blocks(part):
    """The delivery-status blocks as lists of (name, value)."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status":
        # the email package parses each block into a Message
        need(isinstance(payload, list), "delivery-status not parsed")
        return [[(k.lower(), str(v)) for k, v in m.items()] for m in payload]
    # message/global-delivery-status: the email package treats it as one
    # message; parse the raw blocks ourselves
    raw = part.as_bytes(policy=email.policy.SMTPUTF8)
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else \
        raw.split(b"\n\n", 1)[1]
    blocks = []
    for text in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not text.strip():
            continue
        m = email.parser.BytesParser(policy=email.policy.SMTPUTF8) \
            .parsebytes(text + b"\n\n")
        blocks.append([(k.lower(), str(v)) for k, v in m.items()])
    return blocks


def check(path):
    name = os.path.basename(path)[:-4]
    want = EXPECT.get(name, {})
    raw = open(path, "rb").read()
    check_lines(raw)
    if not want.get("utf8"):
        need(all(b < 0x80 for b in raw), "8-bit octets in a 7-bit sample")
    msg = email.parser.BytesParser(policy=email.policy.default) \
        .parsebytes(raw)
    defects = list(msg.defects)
    for p in msg.walk():
        defects += p.defects
    need(not defects, f"parser defects: {defects}")

    need(msg["From"].addresses[0].display_name == "Mail Delivery System",
         "From display name")
    need(msg["To"] is not None, "no To")
    need(msg["Message-ID"] is not None, "no Message-ID")
    need(msg["MIME-Version"] == "1.0", "MIME-Version")
    need(msg["Auto-Submitted"] == "auto-replied", "Auto-Submitted")
    need(email.utils.parsedate_to_datetime(msg["Date"]) is not None, "Date")
    need(msg.get_content_type() == "multipart/report", "not multipart/report")
    need(msg.get_param("report-type") == "delivery-status", "report-type")
    parts = msg.get_payload()
    need(isinstance(parts, list) and len(parts) == 3,
         f"want 3 parts, got {len(parts) if isinstance(parts, list) else 1}")

    text, report, orig = parts
    need(text.get_content_type() == "text/plain", "part 1 not text/plain")
    need(text.get_content_charset() in ("us-ascii", "utf-8"), "charset")
    body = text.get_content()
    need(len(body.strip()) > 0, "empty explanation")

    utf8 = want.get("utf8", False)
    need(report.get_content_type() == ("message/global-delivery-status"
                                       if utf8 else "message/delivery-status"),
         f"part 2 is {report.get_content_type()}")
    blocks = status_blocks(report)
    need(len(blocks) >= 2, "no per-recipient block")
    first = dict(blocks[0])
    need(set(first) <= PER_MESSAGE, f"per-message fields: {sorted(first)}")
    need(first.get("reporting-mta", "").startswith("dns;"), "Reporting-MTA")
    need(first.get("original-envelope-id") == want.get("envid"),
         f"Original-Envelope-Id: got {first.get('original-envelope-id')}")
    need("arrival-date" in first, "no Arrival-Date")

    actions = []
    for i, block in enumerate(blocks[1:]):
        names = [k for k, _ in block]
        need(len(names) == len(set(names)), f"block {i}: repeated field")
        f = dict(block)
        need(set(f) <= PER_RCPT, f"block {i}: fields {sorted(f)}")
        for k in ("final-recipient", "action", "status"):
            need(k in f, f"block {i}: no {k}")
        need(f["final-recipient"].split(";")[0] in ("rfc822", "utf-8"),
             "Final-Recipient type")
        a = f["action"]
        actions.append(a)
        # RFC 3464 §2.3.4: a failure may carry a 4.x.x that expired
        classes = {"failed": "45", "delayed": "4"}.get(a, "2")
        need(f["status"][0] in classes, f"block {i}: Status {f['status']}"
             f" for {a}")
        need(("will-retry-until" in f) <= (a == "delayed"),
             f"block {i}: Will-Retry-Until on {a}")
        if "diagnostic-code" in f:
            need(f["diagnostic-code"].split(";")[0] in ("smtp", "X-tern"),
                 "Diagnostic-Code type")
        if "orcpt" in want:
            need(f.get("original-recipient") == want["orcpt"][i],
                 f"block {i}: Original-Recipient {f.get('original-recipient')}")
        # the explanation names every recipient
        addr = f["final-recipient"].split(";", 1)[1].strip()
        if f["final-recipient"].startswith("rfc822"):
            need("<" + addr + ">" in body, f"explanation misses {addr}")
    if "actions" in want:
        need(actions == want["actions"],
             f"actions: got {actions}, want {want['actions']}")

    kinds = ["failed" if a == "failed" else "delayed" if a == "delayed"
             else "success" for a in actions]
    gravest = min(kinds, key=["failed", "delayed", "success"].index)
    need(msg["Subject"] == SUBJECTS[gravest],
         f"Subject: got {msg['Subject']!r}")

    ot = orig.get_content_type()
    if "orig" in want:
        need(ot == want["orig"], f"part 3: got {ot}, want {want['orig']}")
    if ot in ("message/rfc822", "message/global"):
        inner = orig.get_payload()
        inner = inner[0] if isinstance(inner, list) else inner
        need(len(inner.keys()) > 0, "returned message has no header")
    else:
        need(ot in ("text/rfc822-headers", "message/global-headers"),
             f"part 3 is {ot}")
        hdrs = orig.get_payload(decode=True)
        need(b"Message-ID:" in hdrs, "returned headers lost Message-ID")
        need(not hdrs.endswith(b"\r\n\r\n"), "headers end in an empty line")
        need(b"BODY-MARKER" not in hdrs, "body in a headers-only return")
    return name


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_dsn_samples.py DIR")
    d = sys.argv[1]
    files = sorted(f for f in os.listdir(d) if f.endswith(".eml"))
    if not files:
        sys.exit(f"{d}: no samples (run test_msg_dsn with TERN_DSN_SAMPLES)")
    bad = 0
    for f in files:
        try:
            check(os.path.join(d, f))
        except Bad as e:
            print(f"{f}: {e}")
            bad += 1
    missing = sorted(set(EXPECT) - {f[:-4] for f in files})
    for m in missing:
        print(f"{m}.eml: missing")
    print(f"dsn samples: {len(files) - bad} ok, {bad + len(missing)} bad")
    sys.exit(1 if bad or missing else 0)


if __name__ == "__main__":
    main()
