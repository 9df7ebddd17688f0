#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An SMTP sink for the end-to-end suite, run as its own process.

    smtpsink.py --listen 127.0.0.2:2526 --dir DIR [--mode normal]
                [--script FILE] [--ext PIPELINING,8BITMIME,SIZE=1000]
                [--hostname sink.test] [--lifetime 120] [--cut-bytes 64]
                [--tls-cert PEM --tls-key PEM] [--starttls-reply TEXT]
                [--tls-break | --tls-hang] [--auth PLAIN,LOGIN --auth-user U
                --auth-password P] [--auth-clear]

It listens on one address (127.0.0.0/8 only), records what it sees in DIR
and exits 0 on SIGTERM or when --lifetime seconds have passed.

DIR/msg-NNNNNN.eml     the message bytes as received (dot-stuffing undone)
DIR/msg-NNNNNN.json    its envelope: mail_from, rcpt_tos, mail_options,
                       rcpt_options (one list per recipient), peer, helo,
                       conn (connection number), seq (message number on
                       that connection), size, has_8bit, tls (as in conns
                       below, or null), auth_user (or null). Written after
                       the .eml, each by rename, so a .json means both are
                       complete.
DIR/stats.json         accepted (TCP connections), connections (those on
                       which the client sent at least one byte: a readiness
                       probe is not one), messages, per_connection (messages
                       accepted on each connection that sent bytes),
                       rcpt_attempts {address: n}, mail_attempts,
                       data_attempts, pipelining_violations (commands that
                       arrived before the previous reply while PIPELINING
                       was not advertised, RFC 2920 §3.1), conns (per
                       connection: peer, helo, commands, messages, tls,
                       tls_error, auth), errors (exceptions inside the
                       sink: always a sink bug).

Modes. "normal" is aiosmtpd with scripted replies. The script (JSON, read
again at every new connection when it changed) is

    {"rcpt": {"bob@remote.test": ["451 4.3.0 try later", "250 2.1.5 ok"],
              "*": ["250 2.1.5 ok"]},
     "mail": {"*": ["250 2.1.0 ok"]},
     "data": {"carol@remote.test": ["554 5.6.0 no"], "*": [...]}}

Each list holds the replies for successive attempts; the last one repeats.
Attempts are counted per address for "rcpt" (the recipient), "mail" (the
sender), each address on its own (a "*" list applies to every address
separately), and for "data" per matched key (the first accepted recipient
that has an entry, else "*"), all across connections. A reply may be a
string ("\\n" separates the lines of a multi-line reply; a line without
a code takes the first line's) or
{"reply": str, "delay": seconds, "close": true} (wait before replying;
close the connection after it).
Keys are compared without regard to case.

--ext lists the extensions to advertise (default: PIPELINING, 8BITMIME,
SMTPUTF8, DSN, ENHANCEDSTATUSCODES, SIZE=10485760; "none" for none). A
MAIL or RCPT parameter of an extension that was not advertised gets 555
(RFC 5321 §4.1.1.11), so a client that ignores the EHLO reply is caught.

TLS and AUTH (normal mode only). --tls-cert/--tls-key offer STARTTLS
(RFC 3207) with that certificate chain; a connection's "tls" is then
{"version", "cipher", "sni", "after": commands before the handshake}, and
"tls_error" says why a handshake failed (the client refused the
certificate, say). --starttls-reply "454 4.7.0 ..." offers STARTTLS but
answers it with that reply; --tls-break answers 220 and then sends bytes
that are not TLS and closes (a broken TLS stack); --tls-hang answers 220
and then sends nothing (a handshake that never ends). --auth PLAIN,LOGIN
offers those mechanisms once TLS is up (--auth-clear: also before, to
catch a client that would send credentials in the clear); with
--auth-user and --auth-password, MAIL needs a successful AUTH (530
otherwise) and a connection's "auth" lists every attempt: {"mechanism",
"user", "password", "ok", "tls"}.

The other modes are plain asyncio, a minimal accepting server with one
fault each:
  huge-reply          the EHLO reply is one 100 KB line
  huge-multiline      the EHLO reply is 100 KB in 70-byte 250- lines
  endless-multiline   the EHLO reply is 250- lines that never end
  bare-lf             every reply ends in LF alone; mail is accepted
  disconnect-mid-data 354, then close after --cut-bytes body bytes (or the
                      end of data, if sooner) without a reply
  slow                every reply byte is sent one second apart
  greeting-554        554 greeting, then 503 to all but QUIT (RFC 5321
                      §3.1)
  tempfail-421        421 to EHLO/HELO, then close
"""

import argparse
import asyncio
import collections
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time
import traceback

RAW_MODES = ("huge-reply", "huge-multiline", "endless-multiline", "bare-lf",
             "disconnect-mid-data", "slow", "greeting-554", "tempfail-421")
MODES = ("normal",) + RAW_MODES

DEFAULT_EXT = "PIPELINING,8BITMIME,SMTPUTF8,DSN,ENHANCEDSTATUSCODES,SIZE=10485760"
KNOWN_EXT = ("PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES",
             "SIZE")

COMMANDS_PER_CONN_MAX = 200     # recorded commands per connection
CONNS_RECORDED_MAX = 500        # connections with details in stats.json
LINE_MAX = 1000                 # RFC 5321 §4.5.3.1.4-6: 512 and 1000 octets


# ---------------------------------------------------------------------------
# shared recording

class Recorder:
    """Counters, stats.json and the message files; one per process."""

    def __init__(self, directory, script_path):
        self.dir = directory
        self.script_path = script_path
        self.script = {}
        self.script_mtime = None
        self.accepted = 0
        self.nmsg = 0
        self.conns = []             # dicts, in accept order
        self.attempts = {"rcpt": collections.Counter(),
                         "mail": collections.Counter(),
                         "data": collections.Counter()}
        self.pipelining_violations = []
        self.errors = []
        self.load_script()
        self.write_stats()

    # -- script ----------------------------------------------------------------
    def load_script(self):
        if not self.script_path:
            return
        try:
            mtime = os.stat(self.script_path).st_mtime_ns
        except FileNotFoundError:
            self.script = {}
            return
        if mtime == self.script_mtime:
            return
        with open(self.script_path) as f:
            script = json.load(f)
        for kind in script:
            if kind not in ("rcpt", "mail", "data"):
                raise ValueError("script: unknown key %r" % kind)
        self.script = {kind: {k.lower(): v for k, v in table.items()}
                       for kind, table in script.items()}
        self.script_mtime = mtime

    def reply(self, kind, keys, default):
        """The scripted reply for this attempt: (lines, delay, close).
        keys: candidate addresses, the first with an entry wins, else "*".
        "rcpt" and "mail" count attempts per address (so a "*" list applies
        to each address on its own); "data" counts per matched key."""
        table = self.script.get(kind, {})
        key = next((k.lower() for k in keys if k.lower() in table), "*")
        counted = key if kind == "data" else keys[0].lower()
        n = self.attempts[kind][counted]
        self.attempts[kind][counted] += 1
        seq = table.get(key)
        if not seq:
            entry = default
        else:
            entry = seq[min(n, len(seq) - 1)]
        if isinstance(entry, str):
            entry = {"reply": entry}
        lines = entry["reply"].split("\n")
        # "421 4.3.2 bye\nmore": later lines take the first line's code,
        # and all but the last get the "ddd-" form (RFC 5321 §4.2.1)
        code = lines[0][:3]
        lines = [l if l[:3].isdigit() else code + " " + l for l in lines]
        lines = [l[:3] + "-" + l[4:] for l in lines[:-1]] + lines[-1:]
        return lines, float(entry.get("delay", 0)), bool(entry.get("close"))

    # -- connections -----------------------------------------------------------
    def new_conn(self, peer):
        self.accepted += 1
        c = {"id": self.accepted, "peer": "%s:%d" % peer[:2], "helo": None,
             "commands": [], "messages": 0, "sent_bytes": False,
             "open": True, "tls": None, "tls_error": None, "auth": [],
             "auth_user": None}
        self.conns.append(c)
        if len(self.conns) > CONNS_RECORDED_MAX:
            # keep the counts right: drop only the details
            old = self.conns[-CONNS_RECORDED_MAX - 1]
            old["commands"] = []
        self.write_stats()
        return c

    def command(self, conn, line):
        if len(conn["commands"]) < COMMANDS_PER_CONN_MAX:
            conn["commands"].append(line)
        self.write_stats()

    def error(self, where):
        self.errors.append("%s: %s" % (where, traceback.format_exc()))
        self.write_stats()

    # -- messages --------------------------------------------------------------
    def store(self, conn, envelope, data):
        self.nmsg += 1
        conn["messages"] += 1
        base = os.path.join(self.dir, "msg-%06d" % self.nmsg)
        rec = dict(envelope)
        rec.update({"peer": conn["peer"], "helo": conn["helo"],
                    "tls": conn.get("tls"), "auth_user": conn.get("auth_user"),
                    "conn": conn["id"], "seq": conn["messages"],
                    "size": len(data),
                    "has_8bit": any(b > 127 for b in data),
                    "time": time.time()})
        atomic_write(base + ".eml", data)
        atomic_write(base + ".json", json.dumps(rec, indent=1).encode())
        self.write_stats()
        return "%06d" % self.nmsg

    def write_stats(self):
        live = [c for c in self.conns if c["sent_bytes"]]
        st = {"accepted": self.accepted,
              "connections": len(live),
              "messages": self.nmsg,
              "per_connection": [c["messages"] for c in live],
              "rcpt_attempts": dict(self.attempts["rcpt"]),
              "mail_attempts": sum(self.attempts["mail"].values()),
              "data_attempts": sum(self.attempts["data"].values()),
              "pipelining_violations": self.pipelining_violations,
              "conns": self.conns,
              "errors": self.errors}
        atomic_write(os.path.join(self.dir, "stats.json"),
                     json.dumps(st, indent=1).encode())


def atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def split_path(arg, keyword):
    """'FROM:<a@b> SIZE=5' -> ('a@b', ['SIZE=5']); None when malformed.

    The path is kept exactly as sent (source routes, quotes, trailing dots
    included) so that tests see what the client wrote."""
    if arg is None or arg[:len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword):].lstrip(" ")
    if not rest.startswith("<"):
        # RFC 5321 §4.1.2 requires the brackets; record what came
        parts = rest.split()
        return (parts[0], parts[1:]) if parts else None
    quoted = False
    for i, ch in enumerate(rest[1:], 1):
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and quoted:
            continue
        elif ch == ">" and not quoted:
            return rest[1:i], rest[i + 1:].split()
    return None


def bad_params(params, allowed):
    """The first parameter whose keyword is not in allowed, or None."""
    for p in params:
        kw = p.partition("=")[0].upper()
        if kw not in allowed:
            return p
    return None


# ---------------------------------------------------------------------------
# normal mode: aiosmtpd

def make_tls_context(args):
    """The server side of STARTTLS, or None; SNI names the client sent are
    kept per SSL object until the handshake is recorded."""
    if not args.tls_cert:
        return None, {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key or args.tls_cert)
    snis = {}

    def sni(sslobj, name, _ctx):
        snis[id(sslobj)] = name
    ctx.sni_callback = sni
    return ctx, snis


def make_normal_server(args, rec, ext):
    from aiosmtpd.smtp import SMTP, AuthResult

    size_limit = ext.get("SIZE")
    tls_context, snis = make_tls_context(args)
    offer_tls = bool(tls_context or args.starttls_reply or args.tls_break or
                     args.tls_hang)
    mechs = [m.strip().upper() for m in (args.auth or "").split(",")
             if m.strip()]
    need_auth = bool(mechs and args.auth_user is not None)

    def authenticator(server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = (user == args.auth_user and password == args.auth_password)
        server.conn["auth"].append({
            "mechanism": mechanism, "user": user, "password": password,
            "ok": ok, "tls": server._tls_protocol is not None})
        if ok:
            server.conn["auth_user"] = user
        rec.write_stats()
        return AuthResult(success=ok, handled=False)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return await server.end_of_data(envelope)

    class SinkSMTP(SMTP):
        def __init__(self):
            super().__init__(Handler(), hostname=args.hostname,
                             data_size_limit=size_limit or None,
                             enable_SMTPUTF8="SMTPUTF8" in ext,
                             decode_data=False, timeout=args.idle_timeout,
                             tls_context=tls_context,
                             require_starttls=False,
                             authenticator=authenticator,
                             auth_require_tls=not args.auth_clear,
                             auth_exclude_mechanism=[
                                 m for m in ("PLAIN", "LOGIN")
                                 if m not in mechs])
            # per instance: the class-level table is shared and mutated by
            # aiosmtpd's own EHLO
            self.command_size_limits = collections.defaultdict(lambda: LINE_MAX)
            self.command_size_limit = LINE_MAX
            self.conn = None
            for name, method in list(self._smtp_methods.items()):
                self._smtp_methods[name] = self._recording(name, method)

        def _recording(self, name, method):
            async def run(arg):
                self.check_pipelining(name)
                rec.command(self.conn, name if arg is None else
                            "%s %s" % (name, arg))
                try:
                    await method(arg)
                except (asyncio.CancelledError, ConnectionError):
                    raise
                except Exception:
                    rec.error("command %s" % name)
                    raise
            return run

        def connection_made(self, transport):
            super().connection_made(transport)
            if self.conn is None:
                try:
                    rec.load_script()
                except Exception:
                    rec.error("script")
                self.conn = rec.new_conn(transport.get_extra_info("peername"))

        def connection_lost(self, error):
            if self.conn is not None:
                self.conn["open"] = False
                rec.write_stats()
            super().connection_lost(error)

        def data_received(self, data):
            if data and not self.conn["sent_bytes"]:
                self.conn["sent_bytes"] = True
                rec.write_stats()
            super().data_received(data)

        def check_pipelining(self, name):
            # the command line was just consumed; bytes already buffered
            # were sent before our reply (RFC 2920 §3.1 allows that only
            # after PIPELINING was advertised)
            buffered = getattr(self._reader, "_buffer", b"")
            if not buffered or name == "QUIT":
                return
            # message bytes before the 354 are wrong even with PIPELINING
            # (RFC 2920 §3.1: DATA ends a group, the client waits for 354)
            if "PIPELINING" not in ext or name == "DATA":
                rec.pipelining_violations.append(
                    {"conn": self.conn["id"], "command": name})

        async def push_reply(self, lines, delay, close):
            if delay:
                await asyncio.sleep(delay)
            for line in lines:
                await self.push(line)
            if close and self.transport is not None:
                self.transport.close()
            return lines[-1][:1] == "2"

        async def smtp_EHLO(self, hostname):
            if not hostname:
                await self.push("501 5.5.4 Syntax: EHLO hostname")
                return
            self._set_rset_state()
            self.session.extended_smtp = True
            self.session.host_name = hostname
            self.conn["helo"] = hostname
            lines = [self.hostname]
            for k in KNOWN_EXT:
                if k in ext:
                    lines.append(k if k != "SIZE" or not ext[k]
                                 else "SIZE %d" % ext[k])
            in_tls = self._tls_protocol is not None
            if offer_tls and not in_tls:
                lines.append("STARTTLS")
            if mechs and (in_tls or args.auth_clear):
                lines.append("AUTH " + " ".join(mechs))
            for i, l in enumerate(lines):
                await self.push(("250 " if i == len(lines) - 1 else "250-") + l)

        async def smtp_STARTTLS(self, arg):
            if args.starttls_reply:
                await self.push(args.starttls_reply)
                return
            if args.tls_break:
                await self.push("220 2.0.0 Ready to start TLS")
                self.transport.write(b"this is not a TLS record\r\n" * 4)
                self.transport.close()
                return
            if args.tls_hang:
                await self.push("220 2.0.0 Ready to start TLS")
                await asyncio.sleep(args.idle_timeout)
                if self.transport is not None:
                    self.transport.close()
                return
            before = len(self.conn["commands"])   # STARTTLS included
            try:
                await super().smtp_STARTTLS(arg)
            except Exception as e:
                # the client gave up on the handshake (a certificate it
                # does not trust): record it, not a sink error
                cause = e.__cause__ or e
                self.conn["tls_error"] = "%s: %s" % (
                    type(cause).__name__, cause)
                rec.write_stats()
                if self.transport is not None:
                    self.transport.close()
                return
            info = self.session.ssl or {}
            obj = info.get("ssl_object")
            if obj is not None:
                self.conn["tls"] = {"version": obj.version(),
                                    "cipher": obj.cipher()[0],
                                    "sni": snis.pop(id(obj), None),
                                    "after": before}
                rec.write_stats()

        async def smtp_HELO(self, hostname):
            if hostname:
                self.conn["helo"] = hostname
            await super().smtp_HELO(hostname)

        async def smtp_MAIL(self, arg):
            if not self.session.host_name:
                await self.push("503 5.5.1 Error: send HELO first")
                return
            if need_auth and not self.session.authenticated:
                await self.push("530 5.7.0 Authentication required")
                return
            if self.envelope.mail_from is not None:
                await self.push("503 5.5.1 Error: nested MAIL command")
                return
            got = split_path(arg, "FROM:")
            if got is None:
                await self.push("501 5.5.4 Syntax: MAIL FROM:<address>")
                return
            path, params = got
            allowed = set()
            if self.session.extended_smtp:
                if "8BITMIME" in ext:
                    allowed.add("BODY")
                if "SIZE" in ext:
                    allowed.add("SIZE")
                if "SMTPUTF8" in ext:
                    allowed.add("SMTPUTF8")
                if "DSN" in ext:
                    allowed.update(("RET", "ENVID"))
            bad = bad_params(params, allowed)
            if bad is not None:
                await self.push("555 5.5.4 unsupported parameter %s" % bad)
                return
            for p in params:
                kw, _, val = p.partition("=")
                if kw.upper() == "SIZE" and size_limit and val.isdigit() \
                        and int(val) > size_limit:
                    await self.push("552 5.3.4 message size exceeds fixed limit")
                    return
            lines, delay, close = rec.reply("mail", [path], "250 2.1.0 Ok")
            if await self.push_reply(lines, delay, close):
                self.envelope.mail_from = path
                self.envelope.mail_options = list(params)
                self.envelope.sink_rcpt_options = []

        async def smtp_RCPT(self, arg):
            if self.envelope.mail_from is None:
                await self.push("503 5.5.1 Error: need MAIL command")
                return
            got = split_path(arg, "TO:")
            if got is None:
                await self.push("501 5.5.4 Syntax: RCPT TO:<address>")
                return
            path, params = got
            allowed = {"NOTIFY", "ORCPT"} if "DSN" in ext else set()
            bad = bad_params(params, allowed)
            if bad is not None:
                await self.push("555 5.5.4 unsupported parameter %s" % bad)
                return
            lines, delay, close = rec.reply("rcpt", [path], "250 2.1.5 Ok")
            if await self.push_reply(lines, delay, close):
                self.envelope.rcpt_tos.append(path)
                self.envelope.sink_rcpt_options.append(list(params))

        async def end_of_data(self, envelope):
            data = envelope.original_content
            lines, delay, close = rec.reply("data", envelope.rcpt_tos,
                                            "250 2.0.0 Ok: queued")
            ok = lines[-1][:1] == "2"
            if ok:
                qid = rec.store(self.conn, {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "mail_options": envelope.mail_options,
                    "rcpt_options": envelope.sink_rcpt_options}, data)
                if len(lines) == 1 and lines[0] == "250 2.0.0 Ok: queued":
                    lines = ["250 2.0.0 Ok: queued as %s" % qid]
            # aiosmtpd pushes the returned status itself: send all but the
            # last line here
            if delay:
                await asyncio.sleep(delay)
            for line in lines[:-1]:
                await self.push(line)
            if close:
                asyncio.get_running_loop().call_soon(self._close_later)
            return lines[-1]

        def _close_later(self):
            if self.transport is not None:
                self.transport.close()

    return SinkSMTP


# ---------------------------------------------------------------------------
# raw modes: plain asyncio

class RawSession:
    def __init__(self, args, rec, reader, writer):
        self.args = args
        self.mode = args.mode
        self.rec = rec
        self.reader = reader
        self.writer = writer
        self.eol = b"\n" if self.mode == "bare-lf" else b"\r\n"
        self.conn = rec.new_conn(writer.get_extra_info("peername"))

    async def send(self, lines):
        data = b"".join(l.encode() + self.eol for l in lines)
        if self.mode == "slow":
            for i in range(len(data)):
                self.writer.write(data[i:i + 1])
                await self.writer.drain()
                await asyncio.sleep(1.0)
            return
        self.writer.write(data)
        await self.writer.drain()

    async def readline(self):
        line = await asyncio.wait_for(self.reader.readline(),
                                      self.args.idle_timeout)
        if line and not self.conn["sent_bytes"]:
            self.conn["sent_bytes"] = True
            self.rec.write_stats()
        return line

    async def run(self):
        h = self.args.hostname
        if self.mode == "greeting-554":
            await self.send(["554 5.3.2 %s no SMTP service here" % h])
        else:
            await self.send(["220 %s ESMTP sink" % h])
        mail_from, rcpts = None, []
        while True:
            line = await self.readline()
            if not line:
                return
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            self.rec.command(self.conn, text)
            verb = text.split(" ", 1)[0].upper()
            if verb == "QUIT":
                await self.send(["221 2.0.0 Bye"])
                return
            if self.mode == "greeting-554":
                await self.send(["503 5.5.1 no service: only QUIT"])
                continue
            if verb in ("EHLO", "HELO"):
                self.conn["helo"] = text[5:]
                if self.mode == "tempfail-421":
                    await self.send(["421 4.3.2 %s service not available, "
                                     "closing channel" % h])
                    return
                if verb == "HELO":
                    await self.send(["250 %s" % h])
                elif self.mode == "huge-reply":
                    await self.send(["250 %s %s" % (h, "x" * 100000)])
                elif self.mode == "huge-multiline":
                    await self.send(["250-%s" % h] + ["250-" + "x" * 66] * 1500
                                    + ["250 8BITMIME"])
                elif self.mode == "endless-multiline":
                    await self.endless()
                    return
                else:
                    await self.send(["250-%s" % h, "250-PIPELINING",
                                     "250 8BITMIME"])
            elif verb == "MAIL":
                got = split_path(text[5:], "FROM:")
                mail_from, rcpts = (got or ("", []))[0], []
                await self.send(["250 2.1.0 Ok"])
            elif verb == "RCPT":
                got = split_path(text[5:], "TO:")
                rcpts.append((got or ("", []))[0])
                await self.send(["250 2.1.5 Ok"])
            elif verb == "DATA":
                await self.send(["354 End data with <CR><LF>.<CR><LF>"])
                if self.mode == "disconnect-mid-data":
                    await self.cut()
                    return
                data = await self.read_data()
                if data is None:
                    return
                qid = self.rec.store(self.conn, {
                    "mail_from": mail_from, "rcpt_tos": rcpts,
                    "mail_options": [], "rcpt_options": [[] for _ in rcpts]},
                    data)
                mail_from, rcpts = None, []
                await self.send(["250 2.0.0 Ok: queued as %s" % qid])
            elif verb in ("RSET", "NOOP"):
                await self.send(["250 2.0.0 Ok"])
            else:
                await self.send(["502 5.5.2 command not implemented"])

    async def endless(self):
        """250- lines until the client goes away or the sink's lifetime
        ends; paced so that a client that keeps reading costs little CPU."""
        line = ("250-%s\r\n" % ("y" * 60)).encode()
        for n in itertools.count():
            self.writer.write(line)
            await self.writer.drain()
            if n % 100 == 99:
                await asyncio.sleep(0.01)

    async def cut(self):
        """Reads --cut-bytes body bytes (or up to the end of data), then
        closes without a reply."""
        got = b""
        while len(got) < self.args.cut_bytes and b"\r\n.\r\n" not in got:
            chunk = await asyncio.wait_for(self.reader.read(4096),
                                           self.args.idle_timeout)
            if not chunk:
                return
            got += chunk

    async def read_data(self):
        out = []
        while True:
            line = await self.readline()
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(out)
            if line.startswith(b"."):
                line = line[1:]
            out.append(line)


# ---------------------------------------------------------------------------

def parse_ext(text):
    """'PIPELINING,SIZE=100' -> {"PIPELINING": None, "SIZE": 100}."""
    ext = {}
    if text.strip().lower() == "none":
        return ext
    for item in filter(None, (s.strip() for s in text.split(","))):
        k, _, v = item.partition("=")
        k = k.upper()
        if k not in KNOWN_EXT:
            raise SystemExit("smtpsink: unknown extension %r" % k)
        ext[k] = int(v) if v else None
    return ext


async def amain(args):
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    if not host.startswith("127.") and host != "::1":
        raise SystemExit("smtpsink: listen on 127.0.0.0/8 or ::1 only, not %r"
                         % host)
    rec = Recorder(args.dir, args.script)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.call_later(args.lifetime, done.set)
    sessions = set()

    if args.mode == "normal":
        proto = make_normal_server(args, rec, parse_ext(args.ext))
        server = await loop.create_server(proto, host, int(port))
    else:
        async def on_conn(reader, writer):
            task = asyncio.current_task()
            sessions.add(task)
            try:
                await RawSession(args, rec, reader, writer).run()
            except (ConnectionError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError):
                pass        # the client went away or sent a huge line
            except asyncio.CancelledError:
                pass
            except Exception:
                rec.error("raw session")
            finally:
                writer.close()
                rec.conns and rec.write_stats()
                sessions.discard(task)
        server = await asyncio.start_server(on_conn, host, int(port),
                                            limit=LINE_MAX * 4)
    await done.wait()
    server.close()
    for t in list(sessions):
        t.cancel()
    if sessions:
        await asyncio.wait(list(sessions), timeout=2.0)
    rec.write_stats()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="127.x.y.z:port")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mode", default="normal", choices=MODES)
    ap.add_argument("--script")
    ap.add_argument("--ext", default=DEFAULT_EXT)
    ap.add_argument("--hostname", default="sink.test")
    ap.add_argument("--lifetime", type=float, default=120.0)
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    ap.add_argument("--cut-bytes", type=int, default=64)
    ap.add_argument("--tls-cert", help="offer STARTTLS with this PEM chain")
    ap.add_argument("--tls-key", help="its key (default: in --tls-cert)")
    ap.add_argument("--starttls-reply", help="offer STARTTLS, answer this")
    ap.add_argument("--tls-break", action="store_true",
                    help="answer STARTTLS with 220, then garbage")
    ap.add_argument("--tls-hang", action="store_true",
                    help="answer STARTTLS with 220, then nothing")
    ap.add_argument("--auth", help="SASL mechanisms offered: PLAIN,LOGIN")
    ap.add_argument("--auth-user")
    ap.add_argument("--auth-password")
    ap.add_argument("--auth-clear", action="store_true",
                    help="offer AUTH before TLS too")
    args = ap.parse_args()
    if args.mode != "normal" and (args.tls_cert or args.starttls_reply or
                                  args.tls_break or args.tls_hang or
                                  args.auth):
        raise SystemExit("smtpsink: TLS and AUTH need --mode normal")
    os.makedirs(args.dir, exist_ok=True)
    # aiosmtpd logs every client mistake with a traceback; keep that out of
    # stderr, which the fixture checks for the sink's own failures
    logging.basicConfig(filename=os.path.join(args.dir, "sink.log"),
                        level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
