# SPDX-License-Identifier: MIT
"""tern as a system service: `make install` into a DESTDIR (files, modes,
an edited tern.conf kept on a second run, the sendmail/mailq links), the
systemd unit (`systemd-analyze verify`), the manual pages (groff without
warnings, every configuration key and every command in them), the
sd_notify protocol (READY=1 and STOPPING=1 on a datagram socket of the
test's own, as systemd's Type=notify uses it), and the server run as an
unprivileged user with only CAP_NET_BIND_SERVICE, as the unit runs it.

`make install` builds build/release/tern when it is missing or stale; the
server tests use $TERN_BIN (the ASan build)."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ternlib import (REPO_ROOT, SANITIZER_MARKERS, SmtpConn, sanitizer_env,
                     send_message, tail, wait_files)

SBIN = "usr/local/sbin/tern"
MAN8 = "usr/local/share/man/man8/tern.8"
MAN5 = "usr/local/share/man/man5/tern.conf.5"
UNIT = "usr/local/lib/systemd/system/tern.service"
CONF = "etc/tern/tern.conf"


def make_env():
    """The environment for a make of our own: without the jobserver of a
    make that may have started pytest."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def make(*args, check=True):
    p = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT)]
                       + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=make_env(), timeout=900)
    out = p.stdout.decode(errors="replace")
    if check:
        assert p.returncode == 0, "make %s: rc=%d\n%s" % (
            " ".join(args), p.returncode, tail(out))
    return p.returncode, out


def install(dest, *extra):
    return make("install", "DESTDIR=%s" % dest, "PREFIX=/usr/local", *extra)[1]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One `make install` into a DESTDIR for the read-only checks."""
    dest = tmp_path_factory.mktemp("destdir")
    out = install(dest)
    return dest, out


def test_install_files_and_modes(installed):
    dest, out = installed
    want = {SBIN: 0o755, MAN8: 0o644, MAN5: 0o644, UNIT: 0o644, CONF: 0o644}
    for rel, m in want.items():
        p = dest / rel
        assert p.is_file() and not p.is_symlink(), "%s missing\n%s" % (rel, out)
        assert mode(p) == m, "%s: mode %o, want %o" % (rel, mode(p), m)
    assert (dest / CONF).read_bytes() == (REPO_ROOT / "etc/tern.conf").read_bytes()
    r = subprocess.run([str(dest / SBIN), "version"], stdout=subprocess.PIPE,
                       timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(b"tern "), r
    unit = (dest / UNIT).read_text()
    assert "\nExecStart=/usr/local/sbin/tern serve --config " \
        "/etc/tern/tern.conf\n" in unit, unit
    assert "@SBINDIR@" not in unit and "@CONFDIR@" not in unit, unit
    # with DESTDIR no system user is made, and it says so
    assert "no system user made" in out, out


def test_unit_hardening(installed):
    dest, _ = installed
    unit = (dest / UNIT).read_text()
    keys = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    want = {
        "Type": "notify", "ExecReload": "/bin/kill -HUP $MAINPID",
        "User": "tern", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces": "yes", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
        "StateDirectory": "tern", "LimitNOFILE": "65536",
    }
    for k, v in want.items():
        assert keys.get(k) == [v], "%s=%s, want %s" % (k, keys.get(k), v)
    # above the server's own 10 s grace for sessions
    m = re.fullmatch(r"(\d+)s?", keys["TimeoutStopSec"][0])
    assert m and int(m.group(1)) > 10, keys["TimeoutStopSec"]


def test_second_install_keeps_edited_config(tmp_path):
    install(tmp_path)
    conf = tmp_path / CONF
    edited = conf.read_text() + "\n# edited by the administrator\n"
    conf.write_text(edited)
    os.chmod(conf, 0o640)
    out = install(tmp_path)
    assert conf.read_text() == edited
    assert mode(conf) == 0o640
    assert "exists: kept" in out, out


def test_prefix_usr(tmp_path):
    make("install", "DESTDIR=%s" % tmp_path, "PREFIX=/usr")
    unit = (tmp_path / "usr/lib/systemd/system/tern.service").read_text()
    assert "\nExecStart=/usr/sbin/tern serve --config /etc/tern/tern.conf\n" \
        in unit
    assert (tmp_path / "usr/sbin/tern").is_file()
    assert (tmp_path / "usr/share/man/man8/tern.8").is_file()
    assert (tmp_path / CONF).is_file()


def test_install_sendmail_links(tmp_path):
    dest = tmp_path / "dest"
    make("install-sendmail", "DESTDIR=%s" % dest, "PREFIX=/usr/local")
    for link in ("usr/sbin/sendmail", "usr/bin/mailq"):
        p = dest / link
        assert p.is_symlink() and os.readlink(p) == "/usr/local/sbin/tern", link
    # again: the links are tern's already
    _, out = make("install-sendmail", "DESTDIR=%s" % dest, "PREFIX=/usr/local")
    assert "is tern already" in out, out
    # another MTA's sendmail is left alone, and make fails
    other = tmp_path / "other"
    (other / "usr/sbin").mkdir(parents=True)
    (other / "usr/sbin/sendmail").write_text("#!/bin/sh\n")
    rc, out = make("install-sendmail", "DESTDIR=%s" % other,
                   "PREFIX=/usr/local", check=False)
    assert rc != 0 and "another MTA" in out, out
    assert (other / "usr/sbin/sendmail").read_text() == "#!/bin/sh\n"
    # uninstall takes the links and the files, keeps the configuration
    make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/usr/local")
    assert not os.path.lexists(dest / "usr/sbin/sendmail")
    assert not (dest / SBIN).exists() and not (dest / UNIT).exists()
    assert (dest / CONF).is_file()


def test_systemd_analyze_verify(installed, tmp_path):
    """The unit as installed, with ExecStart pointed into DESTDIR (verify
    wants the binary to exist) and the manual pages found through MANPATH
    (verify runs man for Documentation=)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found (Debian package systemd)")
    dest, _ = installed
    unit = (dest / UNIT).read_text().replace(
        "ExecStart=/usr/local/sbin/tern", "ExecStart=%s" % (dest / SBIN))
    copy = tmp_path / "tern.service"
    copy.write_text(unit)
    env = dict(os.environ, MANPATH=str(dest / "usr/local/share/man"))
    p = subprocess.run([analyze, "verify", str(copy)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert "tern.service" not in out, out


def groff(page):
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p
    assert p.stderr == b"", "%s: %s" % (page, p.stderr.decode())
    return p.stdout.decode("utf-8")


def plain(text):
    """groff's terminal output without bold/underline overstrikes and
    with the hyphens it prints as U+2010 as ASCII."""
    text = re.sub(r".\x08|\x1b\[[0-9;]*m", "", text)
    return text.replace("\u2010", "-").replace("\u2212", "-")


def test_man_pages(installed):
    if shutil.which("groff") is None:
        pytest.fail("groff not found (Debian package groff-base)")
    dest, _ = installed
    conf5 = plain(groff(dest / MAN5))
    tern8 = plain(groff(dest / MAN8))
    # every key the program knows, from `tern dump-config`
    dump = subprocess.run([str(dest / SBIN), "dump-config"],
                          stdout=subprocess.PIPE, timeout=10, check=True)
    keys = set(re.findall(r"^([a-z_]+) =", dump.stdout.decode(), re.M))
    keys |= set(re.findall(r"^# \(no ([a-z_]+)\)$", dump.stdout.decode(), re.M))
    assert len(keys) > 40, keys
    headings = set(re.findall(r"^       ([a-z_]+)\b", conf5, re.M))
    missing = sorted(k for k in keys if k not in headings)
    assert not missing, "tern.conf(5) lacks keys: %s" % missing
    # every command of `tern help`
    h = subprocess.run([str(dest / SBIN), "help"], stdout=subprocess.PIPE,
                       timeout=10, check=True).stdout.decode()
    cmds = re.findall(r"^(?:usage:)?\s+tern ([a-z-]+)", h, re.M)
    assert "serve" in cmds and "queue" in cmds, h
    for c in cmds:
        assert re.search(r"^       tern %s\b" % re.escape(c), tern8, re.M), \
            "tern(8) lacks the command %s" % c
    for section in ("SYNOPSIS", "DESCRIPTION", "COMMANDS", "SIGNALS", "FILES"):
        assert re.search(r"^%s$" % section, tern8, re.M), section
    # man-db reads them too
    if shutil.which("man"):
        for page in (MAN8, MAN5):
            p = subprocess.run(["man", "-l", str(dest / page)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, MANWIDTH="80",
                                        MAN_KEEP_FORMATTING="0"),
                               timeout=60)
            assert p.returncode == 0 and p.stderr == b"", p


def test_gen_man_is_quiet(tmp_path):
    """Every command `tern help` lists has its text in doc/tern.8.in."""
    make("build/release/tern")
    p = subprocess.run([str(REPO_ROOT / "tools/gen-man"), "--bin",
                        str(REPO_ROOT / "build/release/tern"), "--out",
                        str(tmp_path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    assert (tmp_path / "tern.8").is_file() and (tmp_path / "tern.conf.5").is_file()


# ---- sd_notify ---------------------------------------------------------------

def notify_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    return s


def receive_until(sock, want, timeout):
    """Datagrams until one has the line `want`; returns them all."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %s within %.0fs; got %r"
                                 % (want, timeout, got))
        sock.settimeout(left)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            continue
        got.append(msg)
        if want in msg.split("\n"):
            return got


def test_sd_notify_ready_and_stopping(tern_server, tmp_path):
    path = tmp_path / "notify.sock"
    with notify_socket(path) as sock:
        srv = tern_server(start=False, env={"NOTIFY_SOCKET": str(path)})
        srv.start(wait=False)
        got = receive_until(sock, "READY=1", 30)
        ready = [m for m in got if "READY=1" in m.split("\n")][0]
        assert re.search(r"^STATUS=accepting mail: 1 listeners", ready, re.M), \
            ready
        # READY=1 comes once the listener takes connections
        with SmtpConn(srv.port) as c:
            assert c.greeting.code == 220
        assert srv.stop() == 0
        got = receive_until(sock, "STOPPING=1", 5)
        assert not any("READY=1" in m for m in got), got


def test_no_notify_socket_is_fine(srv):
    """Without $NOTIFY_SOCKET (not under systemd) nothing changes."""
    with SmtpConn(srv.port) as c:
        assert c.greeting.code == 220
    assert srv.stop() == 0
    assert "event=notify" not in srv.stderr_text()


# ---- as the unit runs it: a user of its own, CAP_NET_BIND_SERVICE only ---------

def privileged_port():
    """A free 127.0.0.1 port below 1024."""
    for port in range(1023, 600, -1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port below 1024 on 127.0.0.1")


def test_runs_unprivileged_with_net_bind_capability(tern_binary):
    """`setpriv` does what the unit's User= and AmbientCapabilities= do:
    tern runs as nobody, owns its state_dir, listens on a port below 1024
    and delivers; without the capability it cannot listen there."""
    if os.getuid() != 0:
        pytest.skip("needs root to change user")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv not found (Debian package util-linux)")
    work = Path(tempfile.mkdtemp(prefix="tern-unpriv-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        state = work / "state"
        state.mkdir()
        shutil.chown(state, "nobody", "nogroup")
        port = privileged_port()
        conf = work / "tern.conf"
        conf.write_text("hostname = mx.test\nstate_dir = %s\n"
                        "listen = 127.0.0.1:%d mx\ndomain = localhost\n"
                        "user = alice\nlog = stderr\n" % (state, port))
        base = [setpriv, "--reuid=nobody", "--regid=nogroup",
                "--clear-groups", "--no-new-privs"]
        caps = ["--inh-caps=+net_bind_service",
                "--ambient-caps=+net_bind_service"]
        env = sanitizer_env()
        probe = subprocess.run(base + [str(tern_binary), "version"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, timeout=30)
        if probe.returncode != 0:
            pytest.skip("nobody cannot run %s: %s"
                        % (tern_binary, probe.stdout.decode()[-200:]))
        # without the capability: no port 25-like listener
        p = subprocess.run(base + [str(tern_binary), "serve", "--config",
                                   str(conf)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=60)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 1 and "cannot listen" in out, out
        # with it
        err = work / "serve.stderr"
        with open(err, "wb") as ef:
            proc = subprocess.Popen(base + caps + [str(tern_binary), "serve",
                                                   "--config", str(conf)],
                                    stdin=subprocess.DEVNULL, stdout=ef,
                                    stderr=ef, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, err.read_text()
                try:
                    c = SmtpConn(port, timeout=5)
                    break
                except OSError:
                    assert time.monotonic() < deadline, err.read_text()
                    time.sleep(0.1)
            with c:
                assert c.greeting.code == 220
                send_message(c, "someone@example.org", ["alice@localhost"],
                             b"Subject: unprivileged\r\n\r\nhello\r\n")
                c.expect("QUIT", "221")
            files = wait_files(state / "mail/alice/Maildir", 1)
            assert len(files) == 1
            nobody = subprocess.run(["id", "-u", "nobody"],
                                    stdout=subprocess.PIPE, check=True)
            assert files[0].stat().st_uid == int(nobody.stdout)
            # root steers the queue of a server that runs as another user
            q = subprocess.run([str(tern_binary), "queue", "list", "--config",
                                str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, timeout=30)
            assert q.returncode == 0, q.stdout.decode(errors="replace")
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        text = err.read_text(errors="replace")
        assert proc.returncode == 0, tail(text)
        assert not any(m in text for m in SANITIZER_MARKERS), tail(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
