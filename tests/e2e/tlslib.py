# SPDX-License-Identifier: MIT
"""Helpers for the submission tests: a test PKI made with the openssl CLI,
client SSL contexts that verify against it, raw SMTP connections that go
into TLS (STARTTLS or implicit, RFC 8314), SASL clients (PLAIN, LOGIN,
CRAM-MD5, SCRAM-SHA-256 written here from RFC 5802/7677), the external
clients (swaks, curl, msmtp), and SubServer: a TernServer with mx,
submission and submissions listeners, a certificate and accounts.

Everything talks to 127.0.0.0/8 only and bounds every wait in time.
"""

import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from pathlib import Path

from ternlib import (SANITIZER_MARKERS, SmtpConn, TernServer, free_port,
                     sanitizer_env, show, tail, wire_data)

OPENSSL = "/usr/bin/openssl"
SERVER_NAMES = ("mx.test", "localhost")
SERVER_IPS = ("127.0.0.1",)
SNI_NAMES = ("a.sni.test", "b.sni.test", "*.w.sni.test")

# ---------------------------------------------------------------------------
# test PKI


class Cert:
    """One certificate: cert (leaf alone), chain (leaf + intermediates, what
    tls_cert takes), key, the names in it and its serial (hex, upper case
    as Python's getpeercert() shows it)."""

    def __init__(self, cert, chain, key, cn, names, ips, serial):
        self.cert = Path(cert)
        self.chain = Path(chain)
        self.key = Path(key)
        self.cn = cn
        self.names = list(names)
        self.ips = list(ips)
        self.serial = serial

    def der(self):
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())

    def __repr__(self):
        return "<Cert CN=%s serial=%s>" % (self.cn, self.serial)


def run_openssl(args, cwd):
    r = subprocess.run([OPENSSL] + list(args), cwd=str(cwd),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed (%d):\n%s%s"
                             % (" ".join(args), r.returncode, r.stdout,
                                r.stderr))
    return r


def _new_serial():
    # positive, 64 bits, no leading zero nibble: shown the same way by
    # Python's getpeercert() ("%X") and openssl
    return "%X" % (secrets.randbits(63) | (1 << 62))


class Authority:
    """A CA (root or intermediate) in a directory: key.pem, cert.pem."""

    def __init__(self, directory, cn, parent=None, key_type="rsa"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cn = cn
        self.parent = parent
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        _genkey(self.key, key_type, self.dir)
        if parent is None:
            run_openssl(["req", "-x509", "-new", "-key", str(self.key),
                         "-sha256", "-days", "30", "-subj", "/CN=" + cn,
                         "-set_serial", "0x" + _new_serial(),
                         "-addext", "basicConstraints=critical,CA:TRUE",
                         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                         "-addext", "subjectKeyIdentifier=hash",
                         "-out", str(self.cert)], self.dir)
        else:
            csr = self.dir / "ca.csr"
            run_openssl(["req", "-new", "-key", str(self.key), "-subj",
                         "/CN=" + cn, "-out", str(csr)], self.dir)
            ext = self.dir / "ca.ext"
            ext.write_text("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                           "keyUsage=critical,keyCertSign,cRLSign\n"
                           "subjectKeyIdentifier=hash\n"
                           "authorityKeyIdentifier=keyid:always\n")
            run_openssl(["x509", "-req", "-in", str(csr), "-CA",
                         str(parent.cert), "-CAkey", str(parent.key),
                         "-set_serial", "0x" + _new_serial(), "-days", "30",
                         "-sha256", "-extfile", str(ext), "-out",
                         str(self.cert)], self.dir)

    def chain_pems(self):
        """This CA's certificate and its parents' up to (not including) the
        root: what a server sends after its leaf."""
        out = []
        ca = self
        while ca.parent is not None:
            out.append(ca.cert.read_text())
            ca = ca.parent
        return out

    def issue(self, directory, stem, names=(), ips=(), cn=None,
              key_type="rsa"):
        """A server certificate for names/ips signed by this CA, in
        directory/stem.{key,crt,pem}: .pem is the chain (leaf first)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cn = cn or (names[0] if names else ips[0])
        key = d / (stem + ".key")
        crt = d / (stem + ".crt")
        chain = d / (stem + ".pem")
        csr = d / (stem + ".csr")
        ext = d / (stem + ".ext")
        _genkey(key, key_type, d)
        run_openssl(["req", "-new", "-key", str(key), "-subj",
                     "/CN=%s/O=tern tests" % cn, "-out", str(csr)], d)
        san = ["DNS:" + n for n in names] + ["IP:" + i for i in ips]
        ext.write_text("basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       "subjectKeyIdentifier=hash\n"
                       "authorityKeyIdentifier=keyid:always\n"
                       "subjectAltName=%s\n" % ",".join(san))
        serial = _new_serial()
        run_openssl(["x509", "-req", "-in", str(csr), "-CA", str(self.cert),
                     "-CAkey", str(self.key), "-set_serial", "0x" + serial,
                     "-days", "30", "-sha256", "-extfile", str(ext),
                     "-out", str(crt)], d)
        chain.write_text(crt.read_text() + "".join(self.chain_pems()))
        os.chmod(key, 0o600)
        return Cert(crt, chain, key, cn, names, ips, serial)


def _genkey(path, key_type, cwd):
    if key_type == "ec":
        run_openssl(["genpkey", "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-out", str(path)], cwd)
    else:
        run_openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt",
                     "rsa_keygen_bits:2048", "-out", str(path)], cwd)


class TestCA:
    """The tests' PKI, made once per test session in directory:

    root (ca_pem): "tern test root CA"; intermediate signed by it;
    server: mx.test, localhost, IP 127.0.0.1, signed by the intermediate
      (its .chain holds leaf + intermediate: a client that trusts only the
      root verifies it only when the server sends the whole chain);
    sni["a.sni.test"], sni["b.sni.test"], sni["*.w.sni.test"]: signed by
      the intermediate too;
    ca2_pem: an unrelated second root, and other_server: a certificate
      for the same names signed by it.
    fresh(...) makes a new server certificate (reload tests)."""

    __test__ = False        # not a pytest test class

    def __init__(self, directory, key_type="rsa"):
        self.dir = Path(directory)
        self.key_type = key_type
        self.root = Authority(self.dir / "root", "tern test root CA",
                              key_type=key_type)
        self.inter = Authority(self.dir / "inter", "tern test intermediate CA",
                               parent=self.root, key_type=key_type)
        self.ca_pem = self.root.cert
        self.server = self.inter.issue(self.dir / "server", "server",
                                       SERVER_NAMES, SERVER_IPS,
                                       key_type=key_type)
        self.sni = {}
        for i, name in enumerate(SNI_NAMES):
            stem = "sni%d" % i
            self.sni[name] = self.inter.issue(self.dir / "sni", stem, [name],
                                              key_type=key_type)
        self.root2 = Authority(self.dir / "root2", "tern test other CA",
                               key_type=key_type)
        self.ca2_pem = self.root2.cert
        self.other_server = self.root2.issue(self.dir / "other", "server",
                                             SERVER_NAMES, SERVER_IPS,
                                             key_type=key_type)
        self._n = 0

    def fresh(self, directory=None, names=SERVER_NAMES, ips=SERVER_IPS):
        """A new certificate for the server's names (new key, new serial),
        signed by the intermediate."""
        self._n += 1
        d = Path(directory) if directory else self.dir / ("fresh%d" % self._n)
        return self.inter.issue(d, "server", names, ips,
                                key_type=self.key_type)


def install_cert(cert, chain_path, key_path):
    """Replaces the files a server reads (tls_cert, tls_key) with cert's,
    each by an atomic rename."""
    for src, dst in ((cert.chain, chain_path), (cert.key, key_path)):
        dst = Path(dst)
        tmp = dst.with_name(dst.name + ".new")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)


# ---------------------------------------------------------------------------
# client SSL contexts

def client_context(cafile, minimum=None, maximum=None, check_hostname=True,
                   legacy=False):
    """A TLS client context that verifies the server against cafile.

    minimum/maximum: ssl.TLSVersion bounds. legacy: allow what OpenSSL's
    default security level refuses (TLS 1.0/1.1, SHA-1 signatures), so
    that a refusal is the server's, not the client's own."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(cafile))
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if legacy:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        # TLSVersion.TLSv1/TLSv1_1 are deprecated: that is what we test
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    return ctx


def insecure_context():
    """No verification at all: for probes and garbage tests only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_cert_info(ssock):
    """(commonName, [DNS names], serial) of the verified peer certificate;
    needs a context with verify_mode CERT_REQUIRED."""
    c = ssock.getpeercert()
    if not c:
        raise AssertionError("no verified peer certificate")
    cn = None
    for rdn in c.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    dns = [v for k, v in c.get("subjectAltName", ()) if k == "DNS"]
    return cn, dns, c.get("serialNumber")


# ---------------------------------------------------------------------------
# SMTP over TLS, on ternlib's SmtpConn

class TlsSock:
    """An SSLSocket as SmtpConn wants a socket: the end of the TLS stream
    (close_notify, or an EOF without it) reads as b"", a TLS error from the
    server as a reset."""

    def __init__(self, ssock):
        self.ssock = ssock

    def recv(self, n):
        try:
            return self.ssock.recv(n)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as e:
            raise ConnectionResetError("TLS error: %s" % e) from e

    def sendall(self, data):
        return self.ssock.sendall(data)

    def settimeout(self, t):
        return self.ssock.settimeout(t)

    def setsockopt(self, *a):
        return self.ssock.setsockopt(*a)

    def close(self):
        try:
            self.ssock.close()
        except OSError:
            pass

    def __getattr__(self, name):
        return getattr(self.ssock, name)


def open_conn(port, source=None, greet=True, timeout=10.0):
    """A plain SmtpConn to 127.0.0.1:port, from source (another 127.x
    address: every 127.0.0.0/8 address is on Linux's loopback, which lets a
    test be a different client) when given."""
    if source is None:
        return SmtpConn(port, timeout=timeout, greet=greet)
    c = SmtpConn.__new__(SmtpConn)
    c.port = port
    c.timeout = timeout
    c.buf = b""
    c.log = []
    c.eof = False
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                      source_address=(source, 0))
    c.greeting = None
    if greet:
        c.greeting = c.read_reply()
    return c


def wrap(conn, ctx, server_hostname="mx.test"):
    """Runs the TLS handshake on conn's socket; conn then reads and writes
    through TLS. conn.tls is the SSLSocket (version(), cipher(),
    getpeercert())."""
    conn.sock.settimeout(conn.timeout)
    raw = conn.sock
    try:
        ss = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise
    conn.sock = TlsSock(ss)
    conn.tls = ss
    conn.log.append(("C", ("<TLS %s %s>" % (ss.version(), ss.cipher()[0]))
                     .encode()))
    return conn


def starttls(conn, ctx, server_hostname="mx.test", ehlo=True):
    """STARTTLS on an open session (EHLO first when ehlo), checks 220 and
    that nothing else came in clear, then the handshake and, when ehlo, a
    new EHLO (returned)."""
    if ehlo:
        conn.ehlo()
    conn.expect("STARTTLS", "220")
    if conn.buf:
        conn.fail("clear-text bytes after the 220 to STARTTLS: %s"
                  % show(conn.buf))
    wrap(conn, ctx, server_hostname)
    if ehlo:
        return conn.ehlo()
    return None


def tls_connect(port, ctx, server_hostname="mx.test", greet=True,
                source=None, timeout=10.0):
    """Implicit TLS (RFC 8314): the handshake first, then the greeting."""
    c = open_conn(port, source=source, greet=False, timeout=timeout)
    c.tls = None
    wrap(c, ctx, server_hostname)
    if greet:
        c.greeting = c.read_reply()
    return c


def ehlo_keywords(reply):
    """{KEYWORD: [params]} of an EHLO reply (the first line is the
    greeting name)."""
    out = {}
    for text in reply.texts()[1:]:
        parts = text.split()
        if parts:
            out[parts[0].upper()] = parts[1:]
    return out


def client_hello(server_hostname="mx.test"):
    """The bytes of a real TLS ClientHello (made with a memory BIO)."""
    ctx = insecure_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16", "not a handshake record: %r" % data[:8]
    return data


# ---------------------------------------------------------------------------
# SASL

def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text, validate=True)


def plain_blob(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def auth_plain(conn, user, password, initial=True, authzid=""):
    """AUTH PLAIN (RFC 4616) with the initial response on the AUTH line,
    or after an empty 334; returns the final reply."""
    blob = plain_blob(user, password, authzid)
    if initial:
        return conn.cmd("AUTH PLAIN " + blob)
    r = conn.cmd("AUTH PLAIN")
    if r.code != 334:
        return r
    if r.first.strip() not in ("334", "334 ") and r.first[4:].strip():
        conn.fail("PLAIN challenge should be empty, got %r" % r.first)
    return conn.cmd(blob)


def auth_login(conn, user, password):
    """AUTH LOGIN: two 334 prompts (conventionally "Username:" and
    "Password:"; clients ignore the text, so only its base64 is checked)."""
    r = conn.cmd("AUTH LOGIN")
    if r.code != 334:
        return r
    _prompt(conn, r)
    r = conn.cmd(b64(user))
    if r.code != 334:
        return r
    _prompt(conn, r)
    return conn.cmd(b64(password))


def _prompt(conn, reply):
    try:
        return unb64(reply.first[4:].strip())
    except ValueError:
        conn.fail("334 text is not base64: %r" % reply.first)


def cram_md5_response(user, password, challenge):
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    return b64("%s %s" % (user, digest))


def auth_cram_md5(conn, user, password):
    """AUTH CRAM-MD5 (RFC 2195)."""
    r = conn.cmd("AUTH CRAM-MD5")
    if r.code != 334:
        return r
    challenge = unb64(r.first[4:].strip())
    if not re.match(rb"^<[^<>@]+@[^<>]+>$", challenge):
        conn.fail("CRAM-MD5 challenge is not <id@host>: %r" % challenge)
    return conn.cmd(cram_md5_response(user, password, challenge))


def _saslname(name):
    return name.replace("=", "=3D").replace(",", "=2C")


def _hmac256(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg,
                    hashlib.sha256).digest()


class ScramSha256:
    """The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), no channel
    binding ("n,,"). Passwords are taken as given (ASCII: SASLprep is the
    identity)."""

    def __init__(self, user, password, nonce=None):
        self.user = user
        self.password = password
        self.cnonce = nonce or b64(os.urandom(18)).rstrip("=")
        self.bare = "n=%s,r=%s" % (_saslname(user), self.cnonce)
        self.server_signature = None

    def first(self):
        return "n,," + self.bare

    def final(self, server_first):
        attrs = dict(a.split("=", 1) for a in server_first.split(",")
                     if "=" in a)
        if "m" in attrs:
            raise ValueError("mandatory extension m= in %r" % server_first)
        r, s, i = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if not (r and s and i):
            raise ValueError("server-first lacks r/s/i: %r" % server_first)
        if not r.startswith(self.cnonce) or len(r) <= len(self.cnonce):
            raise ValueError("server nonce does not extend ours: %r" % r)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(),
                                     base64.b64decode(s), int(i))
        client_key = _hmac256(salted, "Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + r
        auth_message = "%s,%s,%s" % (self.bare, server_first, without_proof)
        signature = _hmac256(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = _hmac256(salted, "Server Key")
        self.server_signature = b64(_hmac256(server_key, auth_message))
        return without_proof + ",p=" + b64(proof)

    def verify(self, server_final):
        """True when the server proved it knows the password."""
        return server_final == "v=" + self.server_signature


def auth_scram(conn, user, password, initial=True):
    """AUTH SCRAM-SHA-256 over SMTP: client-first (as initial response or
    after an empty 334), server-first, client-final, server-final (334
    v=...), an empty response, then the verdict. A server-final with a
    wrong signature fails the test."""
    sc = ScramSha256(user, password)
    if initial:
        r = conn.cmd("AUTH SCRAM-SHA-256 " + b64(sc.first()))
    else:
        r = conn.cmd("AUTH SCRAM-SHA-256")
        if r.code != 334:
            return r
        r = conn.cmd(b64(sc.first()))
    if r.code != 334:
        return r
    server_first = unb64(r.first[4:].strip()).decode()
    r = conn.cmd(b64(sc.final(server_first)))
    if r.code != 334:
        return r
    server_final = unb64(r.first[4:].strip()).decode()
    if server_final.startswith("e="):
        conn.fail("SCRAM server-error in a 334: %r" % server_final)
    if not sc.verify(server_final):
        conn.fail("SCRAM server signature is wrong: %r" % server_final)
    return conn.cmd("")


def auth(conn, mech, user, password):
    """One AUTH exchange with the given mechanism; the final reply."""
    m = mech.upper()
    if m == "PLAIN":
        return auth_plain(conn, user, password)
    if m == "LOGIN":
        return auth_login(conn, user, password)
    if m == "CRAM-MD5":
        return auth_cram_md5(conn, user, password)
    if m == "SCRAM-SHA-256":
        return auth_scram(conn, user, password)
    raise ValueError(mech)


# ---------------------------------------------------------------------------
# messages

def make_message(sender, rcpt, subject, body="hello\r\n"):
    """A small RFC 5322 message with CRLF line ends."""
    mid = "<%s@tests.tern>" % secrets.token_hex(8)
    text = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n"
            "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n%s"
            % (sender, rcpt, subject, mid, body))
    return text.encode()


def send_mail(conn, sender, rcpts, data, want="250"):
    """MAIL, RCPT..., DATA on an open (EHLOed) session; returns the reply
    to the end of data, which must start with want."""
    conn.expect("MAIL FROM:<%s>" % sender, "250")
    for r in rcpts:
        conn.expect("RCPT TO:<%s>" % r, "250")
    conn.expect("DATA", "354")
    conn.send(wire_data(data))
    return conn.expect(None, want, timeout=30)


def find_with_subject(files, subject):
    """The delivered files whose content holds 'Subject: <subject>'."""
    key = ("Subject: %s\r\n" % subject).encode()
    return [f for f in files if key in f.read_bytes()]


def wait_subject(maildir, subject, timeout=15.0):
    """Polls maildir/new until a file with that Subject is there."""
    deadline = time.monotonic() + timeout
    while True:
        d = Path(maildir) / "new"
        files = sorted(d.iterdir()) if d.is_dir() else []
        got = find_with_subject(files, subject)
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# external clients: each fails loudly when it is missing

def need(tool):
    path = shutil.which(tool) or ("/usr/bin/" + tool
                                  if os.access("/usr/bin/" + tool, os.X_OK)
                                  else None)
    if not path:
        raise AssertionError("%s is not installed (tools/debian-packages, "
                             "group test)" % tool)
    return path


def run_client(argv, input=None, timeout=60):
    r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    r.text = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r


def swaks(port, user, password, sender, rcpt, subject, cafile, mode="tls",
          mech="PLAIN", extra=()):
    """swaks (Net::SSLeay) with certificate verification against cafile.
    mode "tls": STARTTLS required; "tlsc": TLS on connect."""
    argv = [need("swaks"), "--server", "127.0.0.1", "--port", str(port),
            "--from", sender, "--to", rcpt, "--ehlo", "client.example.org",
            "--header", "Subject: %s" % subject,
            "--body", "sent by swaks\n",
            "--tls-verify", "--tls-ca-path", str(cafile),
            "--timeout", "20"]
    argv.append("--tls" if mode == "tls" else "--tls-on-connect")
    if mech:
        argv += ["--auth", mech, "--auth-user", user,
                 "--auth-password", password]
    return run_client(argv + list(extra))


def curl(url, user, password, sender, rcpt, message_path, cafile,
         extra=()):
    """curl: url smtps://127.0.0.1:P (implicit TLS) or smtp://... with
    --ssl-reqd (STARTTLS)."""
    argv = [need("curl"), "--silent", "--show-error", "--max-time", "30",
            "--url", url, "--cacert", str(cafile),
            "--mail-from", sender, "--mail-rcpt", rcpt,
            "--upload-file", str(message_path)]
    if url.startswith("smtp://"):
        argv.append("--ssl-reqd")
    if user is not None:
        argv += ["--user", "%s:%s" % (user, password)]
    return run_client(argv + list(extra))


def msmtp(workdir, port, user, password, sender, rcpt, message, cafile,
          starttls=True, mech="scram-sha-256"):
    """msmtp as a mail client: a msmtprc with the test CA as trust file;
    the message on stdin."""
    rc = Path(workdir) / ("msmtprc-%s" % secrets.token_hex(4))
    rc.write_text("\n".join([
        "defaults",
        "tls on",
        "tls_starttls %s" % ("on" if starttls else "off"),
        "tls_trust_file %s" % cafile,
        "timeout 20",
        "",
        "account test",
        "host 127.0.0.1",
        "port %d" % port,
        "domain client.example.org",
        "auth %s" % mech,
        "user %s" % user,
        "password %s" % password,
        "from %s" % sender,
        "",
    ]))
    os.chmod(rc, 0o600)
    argv = [need("msmtp"), "-C", str(rc), "-a", "test", "-d", rcpt]
    return run_client(argv, input=message)


# ---------------------------------------------------------------------------
# a tern server with submission listeners, a certificate and accounts

ROLES = ("mx", "submission", "submissions")
DOMAIN = "example.org"
ALICE = "alice@example.org"
BOB = "bob@example.org"
PASSWORDS = {ALICE: "Alice-pw-7e1f0c", BOB: "Bob-pw-93a2d4"}


class SubServer(TernServer):
    """TernServer with one listener per role (ports["mx"] ...), tls_cert
    and tls_key from the test CA (copied into the server's directory, so a
    test may replace them), domain example.org, auth_delay_max 0.

    Accounts are added with the `tern user` command (add_account) before
    or while the server runs."""

    def __init__(self, workdir, ca, roles=ROLES, config=None, extra=(),
                 binary=None, env=None, cert=None):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        ports = {}
        while len(ports) < len(roles):
            p = free_port()
            if p not in ports.values():
                ports[roles[len(ports)]] = p
        tls_dir = workdir / "tls"
        tls_dir.mkdir(exist_ok=True)
        cert = cert or ca.server
        self.cert_path = tls_dir / "chain.pem"
        self.key_path = tls_dir / "key.pem"
        install_cert(cert, self.cert_path, self.key_path)
        cfg = {
            "domain": [DOMAIN],
            # one legacy user so that the file needs nothing else; the
            # accounts come from the accounts file
            "user": ["demo"],
            "alias": None,
            "listen": ["127.0.0.1:%d %s" % (ports[r], r) for r in roles],
            "tls_cert": str(self.cert_path),
            "tls_key": str(self.key_path),
            "auth_delay_max": "0",
        }
        for k, v in (config or {}).items():
            cfg[k] = v
        super().__init__(workdir, cfg, extra, binary=binary, env=env)
        self.ca = ca
        self.cert = cert
        self.ports = ports
        plain = [r for r in roles if r != "submissions"]
        self.port = ports[plain[0]] if plain else ports[roles[0]]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.passwords = {}
        self.cli_runs = []

    # -- accounts ------------------------------------------------------------
    def user_cmd(self, *args, password=None, timeout=60):
        """`tern user ARGS --config FILE`, the password (if any) on stdin."""
        argv = [str(self.binary), "user"] + list(args) + \
            ["--config", str(self.config_path)]
        r = subprocess.run(argv, input=(password + "\n").encode()
                           if password is not None else None,
                           capture_output=True, timeout=timeout,
                           cwd=str(self.workdir), env=sanitizer_env())
        r.out = r.stdout.decode("utf-8", "replace")
        r.err = r.stderr.decode("utf-8", "replace")
        self.cli_runs.append((argv, r))
        return r

    def add_account(self, address, password):
        r = self.user_cmd("add", address, "--password-stdin",
                          password=password)
        if r.returncode != 0:
            raise AssertionError("tern user add %s: exit %d\n%s%s"
                                 % (address, r.returncode, r.out, r.err))
        self.passwords[address] = password
        return r

    def accounts_path(self):
        v = self.config.get("accounts_file")
        return Path(v) if v else self.state_dir / "accounts"

    def account_maildir(self, address):
        local, domain = address.split("@", 1)
        return self.state_dir / "mail" / domain.lower() / local / "Maildir"

    # -- connections -----------------------------------------------------------
    def context(self, **kw):
        return client_context(self.ca.ca_pem, **kw)

    def plain(self, role="mx", **kw):
        return open_conn(self.ports[role], **kw)

    def starttls(self, role="submission", ctx=None, server_hostname="mx.test",
                 **kw):
        """A session on role's port, EHLO, STARTTLS, EHLO: the connection
        and the EHLO reply inside TLS."""
        c = open_conn(self.ports[role], **kw)
        try:
            r = starttls(c, ctx or self.context(),
                         server_hostname=server_hostname)
        except BaseException:
            c.close()
            raise
        return c, r

    def implicit(self, ctx=None, server_hostname="mx.test", **kw):
        """A session on the submissions port (TLS first) and its EHLO."""
        c = tls_connect(self.ports["submissions"], ctx or self.context(),
                        server_hostname=server_hostname, **kw)
        try:
            r = c.ehlo()
        except BaseException:
            c.close()
            raise
        return c, r

    def login(self, address=ALICE, password=None, role="submissions",
              mech="PLAIN"):
        """A TLS session authenticated as address (235 checked)."""
        if role == "submissions":
            c, _ = self.implicit()
        else:
            c, _ = self.starttls(role)
        pw = password if password is not None else self.passwords[address]
        r = auth(c, mech, address, pw)
        if not r.starts("235 2.7.0"):
            c.fail("AUTH %s as %s: want 235 2.7.0, got %r"
                   % (mech, address, str(r)))
        return c

    # -- process -------------------------------------------------------------
    def wait_ready(self, timeout=20.0):
        if set(self.ports) == {"submissions"}:
            deadline = time.monotonic() + timeout
            last = None
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        "tern exited with %s before accepting connections\n%s"
                        % (self.proc.returncode, tail(self.stderr_text())))
                try:
                    c = tls_connect(self.port, insecure_context(),
                                    timeout=2.0)
                    c.close()
                    return
                except (OSError, AssertionError) as e:
                    last = e
                    time.sleep(0.05)
            raise AssertionError("tern not ready after %.0fs (%s)\n%s"
                                 % (timeout, last,
                                    tail(self.stderr_text())))
        return super().wait_ready(timeout)

    def problems(self):
        probs = super().problems()
        for argv, r in self.cli_runs:
            for m in SANITIZER_MARKERS:
                if m in r.err:
                    probs.append("%s: stderr contains %r\n%s"
                                 % (" ".join(argv[1:3]), m, tail(r.err)))
                    break
        return probs

    def auth_failed_lines(self):
        return [l for l in self.stderr_text().splitlines()
                if "event=auth_failed" in l]
