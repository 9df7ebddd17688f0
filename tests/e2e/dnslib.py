# SPDX-License-Identifier: MIT
"""A private DNS server for the end-to-end suite: dnsmasq on 127.0.0.1.

DnsServer(workdir) collects records (MX, A/AAAA, CNAME, TXT, null MX and
raw resource records), then start() runs /usr/sbin/dnsmasq in the
foreground on a free UDP+TCP port with no configuration file, no
resolv.conf, no /etc/hosts and no upstream server: every name it was not
given answers NXDOMAIN, and nothing is forwarded anywhere (unanswered()
makes names time out, as behind a dead upstream). stop() ends the process
it started, by PID. Every wait is bounded.

StubServer(rcode) is a UDP server that answers every query with one
response code (SERVFAIL, REFUSED, ...), or never answers (rcode None).

    dns = DnsServer(tmp_path / "dns")
    dns.mx("example.test", "mx1.example.test", 10)
    dns.host("mx1.example.test", "127.0.0.1", "::1")
    dns.start()
    ... tern route example.test --dns dns.server ...
    dns.stop()
"""

import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

DNSMASQ = "/usr/sbin/dnsmasq"

T_A, T_MX, T_TXT, T_AAAA = 1, 15, 16, 28


def free_udp_tcp_port(tries=50):
    """A 127.0.0.1 port free for both UDP and TCP a moment ago."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port on 127.0.0.1")


def dns_name(name):
    """A name in DNS wire form (uncompressed)."""
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("ascii")
            out += bytes([len(b)]) + b
    return out + b"\0"


def query(port, name, qtype, timeout=1.0, host="127.0.0.1"):
    """One UDP query; returns (rcode, answer count) or None on timeout."""
    qid = random.randint(0, 0xFFFF)
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    msg += dns_name(name) + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, (host, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(4096)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                flags, _, ancount = struct.unpack(">HHH", data[2:8])
                return flags & 0xF, ancount
    return None


class DnsServer:
    """One dnsmasq process serving the records given before start()."""

    def __init__(self, workdir, port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.args = []
        self.proc = None
        self.runs = 0
        self.log_path = self.workdir / "dnsmasq.log"

    # ---- records ----------------------------------------------------
    def mx(self, domain, host, pref):
        """An MX record: domain -> host with preference pref."""
        self.args.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        return self

    def host(self, name, *addrs):
        """A and/or AAAA records for name (at most one of each family);
        other types for name answer NODATA."""
        self.args.append("--host-record=%s" % ",".join((name,) + addrs))
        return self

    def address(self, name, addr):
        """An A or AAAA record by --address (repeatable for several
        addresses of one name; it also covers subdomains)."""
        self.args.append("--address=/%s/%s" % (name, addr))
        return self

    def cname(self, alias, target):
        """alias is a CNAME of target (target must be a local name)."""
        self.args.append("--cname=%s,%s" % (alias, target))
        return self

    def txt(self, name, text):
        """A TXT record."""
        self.args.append("--txt-record=%s,%s" % (name, text))
        return self

    def rr(self, name, rrtype, rdata):
        """A raw record: rdata are the RDATA bytes."""
        self.args.append("--dns-rr=%s,%d,%s" % (name, rrtype, rdata.hex()))
        return self

    def null_mx(self, domain, pref=0):
        """RFC 7505 null MX: preference 0 (unless told) and the root as
        exchange, written as raw RDATA since --mx-host cannot say '.'."""
        return self.rr(domain, T_MX, struct.pack(">H", pref) + b"\0")

    def unanswered(self, name):
        """Queries for name (and below) are forwarded to an upstream on a
        free 127.0.0.1 port where nobody listens; dnsmasq then never
        answers them, so the client times out."""
        self.args.append("--server=/%s/127.0.0.1#%d"
                         % (name, free_udp_tcp_port()))
        return self

    # ---- process ----------------------------------------------------
    @property
    def server(self):
        """The address for `tern route --dns`."""
        return "127.0.0.1:%d" % self.port

    def command(self):
        return [
            DNSMASQ,
            "-k",                          # stay in the foreground
            "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--no-poll",
            "--pid-file=",                 # no pid file
            "--listen-address=127.0.0.1", "--bind-interfaces",
            "--port=%d" % self.port,
            # everything not configured here is NXDOMAIN, never
            # forwarded (more specific --server/--address win)
            "--local=/#/",
            "--cache-size=0",
            "--log-facility=-", "--log-queries",
        ] + self.args

    def start(self, timeout=10.0):
        if self.port is None:
            self.port = free_udp_tcp_port()
        self.runs += 1
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                self._log.close()
                raise RuntimeError("dnsmasq exited with %d:\n%s"
                                   % (rc, self.log_text()))
            # any answer at all means it is serving
            if query(self.port, "ready.probe.invalid", T_A,
                     timeout=0.2) is not None:
                return self
        self.stop()
        raise RuntimeError("dnsmasq did not answer within %.0fs:\n%s"
                           % (timeout, self.log_text()))

    def stop(self, timeout=10.0):
        """Ends our own dnsmasq by its PID: SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None
        self._log.close()

    def restart(self):
        """Applies records added since start() (same port)."""
        self.stop()
        return self.start()

    def query(self, name, qtype=T_A, timeout=1.0):
        return query(self.port, name, qtype, timeout)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_REFUSED = 2, 3, 5


class StubServer:
    """A UDP DNS server on 127.0.0.1 that answers every query with the
    header of a reply carrying `rcode` and no records, or drops every
    query when rcode is None. A thread serves it until stop()."""

    def __init__(self, rcode):
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            self.queries += 1
            if self.rcode is None:
                continue
            qid, flags = struct.unpack(">HH", data[:4])
            # QR, the query's opcode and RD, RA, then the rcode; the
            # question is echoed (resolvers check it)
            rflags = 0x8000 | (flags & 0x7900) | 0x0080 | self.rcode
            qdcount = struct.unpack(">H", data[4:6])[0]
            reply = struct.pack(">HHHHHH", qid, rflags, qdcount, 0, 0, 0)
            self.sock.sendto(reply + data[12:], peer)

    def stop(self):
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()
