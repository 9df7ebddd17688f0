# SPDX-License-Identifier: MIT
"""End-to-end `tern user`: add, list, passwd and del through the real
binary with --password-stdin, against the standard test configuration
(local domains example.test and localhost; the server is not started:
the command edits the accounts file itself).

Checked from outside tern: the file is mode 0600 in a 0700 state_dir and
never holds the password; the yescrypt hash verifies with Python's own
crypt module (libxcrypt); the SCRAM-SHA-256 StoredKey and ServerKey are
what RFC 5802 §3 gives for the stored salt and iteration count
(hashlib.pbkdf2_hmac + hmac). Refusals: a domain that is not local, an
address added twice, a missing account, bad usage, a broken file. Two
`add`s at once both survive (the file lock).
"""

import base64
import hashlib
import hmac
import os
import stat
import subprocess
import warnings

import pytest

from ternlib import SANITIZER_MARKERS, sanitizer_env

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402  (deprecated in 3.11, still there)

EX_USAGE = 64
EX_DATAERR = 65
EX_CONFIG = 78

PW = "c0rrect horse:battery staple"


@pytest.fixture
def conf(tern_server):
    """The standard test configuration, not started; .accounts is the
    default accounts file, <state_dir>/accounts."""
    srv = tern_server(start=False)
    srv.accounts = srv.state_dir / "accounts"
    return srv


def user(srv, *args, password=None, config=True, stdin=None):
    """Runs `tern user ARGS --config FILE` with password (a line) on
    stdin; returns the CompletedProcess (text). Fails on a sanitizer
    report."""
    argv = [str(srv.binary), "user"] + list(args)
    if config:
        argv += ["--config", str(srv.config_path)]
    if password is not None:
        stdin = password + "\n"
    p = subprocess.run(argv, input=stdin if stdin is not None else "",
                       capture_output=True, text=True, timeout=120,
                       cwd=str(srv.workdir), env=sanitizer_env())
    for m in SANITIZER_MARKERS:
        assert m not in p.stderr, "tern user %s: %s\n%s" % (
            " ".join(args), m, p.stderr)
    return p


def ok(srv, *args, **kw):
    p = user(srv, *args, **kw)
    assert p.returncode == 0, "tern user %s: exit %d, want 0\nstderr: %s" % (
        " ".join(args), p.returncode, p.stderr)
    return p.stdout


def refused(srv, rc, text, *args, **kw):
    """tern user ARGS must exit rc with text in its stderr."""
    p = user(srv, *args, **kw)
    assert p.returncode == rc, "tern user %s: exit %d, want %d\nstderr: %s" % (
        " ".join(args), p.returncode, rc, p.stderr)
    assert text in p.stderr, "tern user %s: stderr %r lacks %r" % (
        " ".join(args), p.stderr, text)
    return p


def listing(srv):
    return ok(srv, "list").splitlines()


def accounts(path):
    """The account lines of the file as dicts."""
    out = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split(" ")
        assert len(f) in (4, 5), "bad line %r" % line
        out[f[0]] = {"hash": f[1], "scram": f[2], "cram": f[3],
                     "maildir": f[4] if len(f) == 5 else None}
    return out


def b64(s):
    return base64.b64decode(s, validate=True)


def check_scram(field, password):
    """RFC 5802 §3: the stored keys of password, from the stored salt and
    iteration count."""
    tag, it, salt, stored, server = field.split(":")
    assert tag == "SCRAM-SHA-256", field
    it = int(it)
    assert it >= 4096, "iteration count %d below RFC 7677's 4096" % it
    salt = b64(salt)
    assert len(salt) == 16, "salt of %d octets, want 16" % len(salt)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, it)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    want_stored = hashlib.sha256(client_key).digest()
    want_server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert b64(stored) == want_stored, "StoredKey differs"
    assert b64(server) == want_server, "ServerKey differs"


def check_hash(h, password):
    assert h.startswith("$y$"), "hash %r is not yescrypt" % h
    assert crypt.crypt(password, h) == h, "the hash does not verify"


# ---------------------------------------------------------------------------

def test_add_list_passwd_del(conf):
    assert not conf.state_dir.exists()
    out = ok(conf, "add", "alice@example.test", "--password-stdin",
             password=PW)
    assert "alice@example.test" in out
    # state_dir made 0700, the file 0600
    assert stat.S_IMODE(conf.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(conf.accounts.stat().st_mode) == 0o600
    assert listing(conf) == ["alice@example.test"]

    # stored lower-cased; listed sorted
    ok(conf, "add", "Bob@Example.TEST", "--password-stdin", password="pw-bob")
    ok(conf, "add", "Aaron@LOCALHOST", "--password-stdin", password="pw-aa")
    assert listing(conf) == ["aaron@localhost", "alice@example.test",
                             "bob@example.test"]

    raw = conf.accounts.read_bytes()
    first = raw.split(b"\n", 1)[0]
    assert first.startswith(b"#") and b"tern user" in first, first
    for pw in (PW, "pw-bob", "pw-aa", "c0rrect"):
        assert pw.encode() not in raw, "the password %r is in the file" % pw
    acc = accounts(conf.accounts)
    assert set(acc) == {"aaron@localhost", "alice@example.test",
                        "bob@example.test"}
    check_hash(acc["alice@example.test"]["hash"], PW)
    check_scram(acc["alice@example.test"]["scram"], PW)
    check_hash(acc["bob@example.test"]["hash"], "pw-bob")
    check_scram(acc["bob@example.test"]["scram"], "pw-bob")
    assert crypt.crypt("pw-bob", acc["alice@example.test"]["hash"]) != \
        acc["alice@example.test"]["hash"]
    cram = acc["alice@example.test"]["cram"]
    assert cram.startswith("CRAM-MD5:") and len(cram) == 9 + 64, cram
    assert acc["alice@example.test"]["maildir"] is None

    # passwd: a new hash and new SCRAM salt; the old password is gone
    old = acc["alice@example.test"]
    p = user(conf, "passwd", "ALICE@example.TEST", "--password-stdin",
             password="n3w pass")
    assert p.returncode == 0, p.stderr
    for stream in (p.stdout, p.stderr):
        assert "n3w pass" not in stream
    new = accounts(conf.accounts)["alice@example.test"]
    assert new["hash"] != old["hash"]
    assert new["scram"].split(":")[2] != old["scram"].split(":")[2]
    check_hash(new["hash"], "n3w pass")
    check_scram(new["scram"], "n3w pass")
    assert crypt.crypt(PW, new["hash"]) != new["hash"]
    assert stat.S_IMODE(conf.accounts.stat().st_mode) == 0o600
    assert b"n3w pass" not in conf.accounts.read_bytes()

    # del, case-insensitively
    out = ok(conf, "del", "BOB@example.test")
    assert "bob@example.test" in out
    assert listing(conf) == ["aaron@localhost", "alice@example.test"]
    ok(conf, "del", "aaron@localhost")
    ok(conf, "del", "alice@example.test")
    assert listing(conf) == []
    assert stat.S_IMODE(conf.accounts.stat().st_mode) == 0o600
    # no temporary file left beside it
    assert sorted(os.listdir(conf.state_dir)) == ["accounts", "accounts.lock"]


def test_refusals(conf):
    # a domain that is not local: the message names the line to add
    p = refused(conf, EX_DATAERR, "domain = other.test", "add",
                "alice@Other.Test", "--password-stdin", password=PW)
    assert str(conf.config_path) in p.stderr
    assert not conf.accounts.exists()

    ok(conf, "add", "alice@example.test", "--password-stdin", password=PW)
    before = conf.accounts.read_bytes()
    refused(conf, EX_DATAERR, "exists", "add", "ALICE@example.test",
            "--password-stdin", password="other")
    refused(conf, EX_DATAERR, "no such account", "del", "nobody@example.test")
    refused(conf, EX_DATAERR, "no such account", "passwd",
            "nobody@example.test", "--password-stdin", password="x")
    # the same name in another local domain is another account
    refused(conf, EX_DATAERR, "no such account", "del", "alice@localhost")
    refused(conf, EX_DATAERR, "not a valid address", "add",
            "a..b@example.test", "--password-stdin", password="x")
    refused(conf, EX_DATAERR, "not a valid address", "add", "alice",
            "--password-stdin", password="x")
    # passwords: empty, missing, with a NUL, too long
    refused(conf, EX_DATAERR, "empty password", "add", "bob@example.test",
            "--password-stdin", password="")
    refused(conf, EX_DATAERR, "no password", "add", "bob@example.test",
            "--password-stdin", stdin="")
    refused(conf, EX_DATAERR, "NUL", "add", "bob@example.test",
            "--password-stdin", stdin="a\0b\n")
    refused(conf, EX_DATAERR, "longer than 511", "add", "bob@example.test",
            "--password-stdin", password="x" * 512)
    # no terminal and no --password-stdin
    refused(conf, EX_USAGE, "--password-stdin", "add", "bob@example.test")
    # usage
    refused(conf, EX_USAGE, "usage: tern user", "frobnicate")
    refused(conf, EX_USAGE, "needs an ADDRESS", "add")
    refused(conf, EX_USAGE, "usage: tern user")
    refused(conf, EX_USAGE, "too many arguments", "del", "a@example.test",
            "b@example.test")
    refused(conf, EX_USAGE, "takes no --password-stdin", "del",
            "alice@example.test", "--password-stdin")
    refused(conf, EX_USAGE, "takes no --maildir", "passwd",
            "alice@example.test", "--maildir", "/m")
    refused(conf, EX_USAGE, "absolute", "add", "bob@example.test",
            "--maildir", "rel/Maildir", "--password-stdin", password="x")
    refused(conf, EX_USAGE, "unknown option", "list", "--json")
    # nothing changed
    assert conf.accounts.read_bytes() == before
    assert listing(conf) == ["alice@example.test"]
    # a configuration that does not load
    bad = conf.workdir / "bad.conf"
    bad.write_text("no_such_key = 1\n")
    p = user(conf, "list", "--config", str(bad), config=False)
    assert p.returncode == EX_CONFIG, p.stderr
    # a password longer than 511 octets: 511 is the limit
    ok(conf, "add", "long@example.test", "--password-stdin",
       password="y" * 511)
    check_hash(accounts(conf.accounts)["long@example.test"]["hash"],
               "y" * 511)


def test_broken_file(conf):
    conf.state_dir.mkdir(mode=0o700)
    conf.accounts.write_text("# hand-edited\nalice@example.test $y$x -\n")
    p = refused(conf, EX_DATAERR, "%s:2: want 4 or 5 fields" % conf.accounts,
                "list")
    assert p.stdout == ""
    refused(conf, EX_DATAERR, ":2:", "add", "bob@example.test",
            "--password-stdin", password="x")
    assert "$y$x -" in conf.accounts.read_text()


def test_maildir_and_accounts_file(tern_server, tmp_path):
    path = tmp_path / "etc" / "tern-accounts"
    path.parent.mkdir()
    srv = tern_server(start=False, accounts_file=str(path))
    ok(srv, "add", "carol@localhost", "--maildir", "/srv/mail/carol",
       "--password-stdin", password=PW)
    acc = accounts(path)
    assert acc["carol@localhost"]["maildir"] == "/srv/mail/carol"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (srv.state_dir / "accounts").exists()
    # a new password keeps the maildir
    ok(srv, "passwd", "carol@localhost", "--password-stdin", password="2nd")
    acc = accounts(path)
    assert acc["carol@localhost"]["maildir"] == "/srv/mail/carol"
    check_hash(acc["carol@localhost"]["hash"], "2nd")


def test_concurrent_adds(conf):
    """Writers lock the file: every add survives."""
    n = 6
    argv = [str(conf.binary), "user", "add", None, "--password-stdin",
            "--config", str(conf.config_path)]
    procs = []
    for i in range(n):
        a = list(argv)
        a[3] = "user%d@example.test" % i
        procs.append(subprocess.Popen(
            a, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=str(conf.workdir),
            env=sanitizer_env()))
    for i, p in enumerate(procs):
        p.stdin.write(b"pw-%d\n" % i)
        p.stdin.close()
    for i, p in enumerate(procs):
        err = p.stderr.read().decode()
        p.stdout.read()
        rc = p.wait(120)
        p.stdout.close()
        p.stderr.close()
        assert rc == 0, "add %d: exit %d\n%s" % (i, rc, err)
    assert listing(conf) == ["user%d@example.test" % i for i in range(n)]
    acc = accounts(conf.accounts)
    for i in range(n):
        check_hash(acc["user%d@example.test" % i]["hash"], "pw-%d" % i)
