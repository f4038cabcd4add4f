#!/usr/bin/env python3
"""The driver behind scripts/bench (run that: it starts the servers this expects; usage is in its header).

Given a work dir holding servers.env (Dovecot's ports, CA, Maildir root and log; smtp-sink's port; the popfetch
binary), it generates seeded corpora into Dovecot's Maildirs, runs every scenario for every selected tool under
GNU time, checks each run against Dovecot's log, and prints one Markdown table.

How each tool is set up, so that they all do the same work:
  every tool keeps the mail on the server and polls once from a fresh state dir; peers run the MDA through /bin/sh as
  they do (`cat >/dev/null`), popfetch runs `/bin/sh -c 'cat >/dev/null'` (it never adds a shell of its own);
  POP3S certificates are verified against the instance CA by every tool; in S3, popfetch, fetchmail and fdm speak
  SMTP to the sink themselves, mpop and getmail6 hand each message to msmtp; in S4, popfetch records the mailbox
  through its own flood protection (a poll that pauses, `mark-seen`, a poll that records) and the peers get their
  UIDL state files written from the server's UIDL list, in each tool's own format (checked: a wrong file would
  make the timed poll fetch, and the run fail).
"""
import argparse
import base64
import datetime
import email.utils
import hashlib
import json
import math
import os
import platform
import poplib
import pwd
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

HOST = "127.0.0.1"
DISCARD_MDA = "cat >/dev/null"
SMTP_FROM = "bench@localhost"
SMTP_RCPT = "root@localhost"
GNU_TIME = "/usr/bin/time"
HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------------------------------------------
# The lab: servers started by scripts/bench, and this run's work dir
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Lab:
    work: str
    pop3_port: int
    pop3s_port: int
    lmtp_port: int
    ca_file: str
    mail_dir: str
    dovecot_log: str
    sink_port: int
    popfetch: str
    mta_port: Optional[int]
    timeout: float
    popfetch_auth: str = "user"
    imap_port: Optional[int] = None
    rawpop: Optional[str] = None
    rawpop_tls: bool = False
    delay_ports: Dict[int, int] = field(default_factory=dict)

    @staticmethod
    def load(work, timeout, popfetch_auth):
        env = {}
        with open(os.path.join(work, "servers.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env[k] = v
        return Lab(work=work, pop3_port=int(env["POP3_PORT"]), pop3s_port=int(env["POP3S_PORT"]),
                   lmtp_port=int(env["LMTP_PORT"]), ca_file=env["CA_FILE"], mail_dir=env["MAIL_DIR"],
                   dovecot_log=env["DOVECOT_LOG"], sink_port=int(env["SINK_PORT"]), popfetch=env["POPFETCH_BIN"],
                   mta_port=int(env["MTA_SMTP_PORT"]) if "MTA_SMTP_PORT" in env else None, timeout=timeout,
                   popfetch_auth=popfetch_auth,
                   imap_port=int(env["IMAP_PORT"]) if env.get("IMAP_PORT") else None)

    def delayed_port(self, delay_ms):
        """The port of a proxy to Dovecot's plain POP3 port that delays each direction by `delay_ms` (S8), started
        on first use and stopped with the other children."""
        if delay_ms not in self.delay_ports:
            portfile = os.path.join(self.work, f"delay-{delay_ms}.port")
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-delay-proxy.py")
            p = subprocess.Popen([sys.executable, script, portfile, str(self.pop3_port), str(delay_ms)],
                                 start_new_session=True, stdin=subprocess.DEVNULL)
            Children.add(p.pid)
            deadline = time.monotonic() + 10
            while not os.path.exists(portfile):
                if time.monotonic() > deadline or p.poll() is not None:
                    sys.exit("bench: the delaying proxy of S8 did not start")
                time.sleep(0.05)
            with open(portfile) as f:
                self.delay_ports[delay_ms] = int(f.read())
        return self.delay_ports[delay_ms]

    def password(self, user):
        return f"secret-{user}"  # the instance's static passdb: any user name, password "secret-USER"

    def msmtp_mda(self):
        return (f"msmtp --host={HOST} --port={self.sink_port} --tls=off --auth=off "
                f"--from={SMTP_FROM} -- {SMTP_RCPT}")


# Processes we start and must stop; scripts/bench kills what is left in driver.pids if we die.
class Children:
    pids: Dict[int, bool] = {}
    path = ""

    @classmethod
    def add(cls, pid):
        cls.pids[pid] = True
        cls._save()

    @classmethod
    def remove(cls, pid):
        cls.pids.pop(pid, None)
        cls._save()

    @classmethod
    def _save(cls):
        if cls.path:
            with open(cls.path, "w") as f:
                f.writelines(f"{p}\n" for p in cls.pids)

    @classmethod
    def stop_all(cls):
        for pid in list(cls.pids):
            try:
                os.killpg(pid, signal.SIGKILL)  # each child leads its own process group (start_new_session)
            except OSError:
                pass
            cls.remove(pid)


# ----------------------------------------------------------------------------------------------------------------
# Corpus: seeded, realistic RFC 5322 messages written straight into Dovecot's Maildirs
# ----------------------------------------------------------------------------------------------------------------

WORDS = ("the of and to in is that for it as was with be by on not this are or from at which but have an they you "
         "were one all we their can has been if more when will would who so no out up into do any about time them "
         "may other then than its only could new some what like our two first after over mail server client message "
         "queue delivery retry timeout header body folder index account password session protocol network socket "
         "buffer latency report invoice meeting schedule project release version build test review budget quarter "
         "customer support ticket update status deadline draft agenda").split()
UTF8_WORDS = "Grüße Straße Größe naïve café résumé Zürich Łódź Kraków Ελλάδα Москва привет 東京 数据 서울 ✓ € —".split()
NAMES = "alice bob carol dave erin frank grace heidi ivan judy mallory oscar peggy trent victor walter".split()
DOMAINS = "example.com example.org example.net mail.example lists.example.org".split()
BASE_TIME = 1_700_000_000


def prose_line(rng, words):
    n, out = rng.randint(40, 76), []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(words))
    line = " ".join(out)
    if line.startswith("from "):  # "From " at the start of a line comes only where it is put on purpose
        line = "for " + line[5:]
    return line[0].upper() + line[1:] + rng.choice(".,;.")


class MessageFactory:
    """Builds messages; the same (user, index) always gives the same bytes."""

    def __init__(self):
        pool = random.Random(7)
        self.ascii = [prose_line(pool, WORDS) for _ in range(4000)]
        self.utf8 = [prose_line(pool, WORDS + UTF8_WORDS * 3) for _ in range(1000)]

    def _text(self, rng, nbytes, utf8=False, dots=False, froms=False):
        pool = self.utf8 if utf8 else self.ascii
        lines, size = [], 0
        while size < nbytes:
            line = "" if rng.random() < 0.08 else rng.choice(pool)
            lines.append(line)
            size += len(line.encode()) + 1
        if dots:  # dot-stuffing on the wire, including lines that are exactly "." and ".."
            for special in (".", "..", ".leading dot " + rng.choice(pool), "...and so on", ". "):
                lines.insert(rng.randrange(len(lines) + 1), special)
        if froms:
            lines.insert(rng.randrange(len(lines) + 1), "From the desk of " + rng.choice(NAMES))
        return "\n".join(lines) + "\n"

    def _headers(self, rng, user, index):
        sender = f"{rng.choice(NAMES)}.{rng.choice(NAMES)}@{rng.choice(DOMAINS)}"
        to = f"{user}@example.net"
        date = email.utils.formatdate(BASE_TIME + index * 37, usegmt=True)
        subject = " ".join(prose_line(rng, WORDS).split()[:rng.randint(3, 9)])
        if rng.random() < 0.1:
            subject = "=?UTF-8?B?" + base64.b64encode(("Grüße: " + subject).encode()).decode() + "?="
        signature = base64.b64encode(rng.randbytes(192)).decode()
        headers = [
            f"Return-Path: <{sender}>",
            f"Delivered-To: {to}",
            f"Received: from mx{rng.randint(1, 9)}.{rng.choice(DOMAINS)} (mx.{rng.choice(DOMAINS)} "
            f"[192.0.2.{rng.randint(1, 254)}])\n\tby mail.example.net (Postfix) with ESMTPS id "
            f"{rng.getrandbits(40):010X}\n\tfor <{to}>; {date}",
            f"Received: from [198.51.100.{rng.randint(1, 254)}] by mx.{rng.choice(DOMAINS)} with ESMTPSA id "
            f"{rng.getrandbits(32):08x};\n\t{date}",
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={rng.choice(DOMAINS)}; s=sel1;\n"
            f"\th=from:to:subject:date:message-id; bh={base64.b64encode(rng.randbytes(32)).decode()};\n"
            "\tb=" + "\n\t  ".join(signature[i:i + 64] for i in range(0, len(signature), 64)),
            f"From: {sender}",
            f"To: {to}",
        ]
        if rng.random() < 0.3:
            headers.append(f"Cc: {rng.choice(NAMES)}@{rng.choice(DOMAINS)}, {rng.choice(NAMES)}@{rng.choice(DOMAINS)}")
        headers += [f"Subject: {subject}", f"Date: {date}", f"Message-ID: <{index}.{user}@bench.invalid>",
                    "MIME-Version: 1.0"]
        return headers

    def realistic(self, user, index):
        """Body log-normal around 14 KB; every 33rd message carries a base64 attachment (100 KB - 1.4 MB), 15 % are
        text + HTML, 10 % 8-bit UTF-8, 5 % have dot-leading lines, 2 % a "From " line: about 54 KB on average."""
        shape = random.Random(f"shape:{user}:{index}")  # the message's make-up, apart from its text
        size = int(min(400_000, max(600, shape.lognormvariate(math.log(14_000), 0.9))))
        utf8, dots, froms, alternative = (shape.random() < p for p in (0.10, 0.05, 0.02, 0.15))
        attach = shape.randint(100_000, 1_400_000) if index % 33 == 17 else 0
        rng = random.Random(f"realistic:{user}:{index}")
        headers = self._headers(rng, user, index)
        charset, cte = ("utf-8", "8bit") if utf8 else ("us-ascii", "7bit")
        if not attach and not alternative:
            headers += [f"Content-Type: text/plain; charset={charset}; format=flowed",
                        f"Content-Transfer-Encoding: {cte}"]
            return self._join(headers, self._text(rng, size, utf8, dots, froms))
        boundary = f"=_bench_{index}_{rng.getrandbits(32):08x}"
        headers.append(f"Content-Type: multipart/{'mixed' if attach else 'alternative'};\n\tboundary=\"{boundary}\"")
        parts = [f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: {cte}\n\n"
                 + self._text(rng, min(size, 8000) if attach else size, utf8, dots, froms)]
        if alternative:
            html = "".join(f"<p>{line}</p>\n" for line in self._text(rng, min(size, 20_000)).split("\n") if line)
            parts.append("Content-Type: text/html; charset=us-ascii\nContent-Transfer-Encoding: quoted-printable\n\n"
                         + "<html><body>\n" + html.replace("=", "=3D") + "</body></html>\n")
        if attach:
            parts.append(self._attachment(rng, f"report-{index}.pdf", attach))
        body = "This is a multi-part message in MIME format.\n" + "".join(f"--{boundary}\n{p}" for p in parts)
        return self._join(headers, body + f"--{boundary}--\n")

    def small(self, user, index):
        """About 2 KB: the headers and a few lines."""
        rng = random.Random(f"small:{user}:{index}")
        headers = self._headers(rng, user, index) + ["Content-Type: text/plain; charset=us-ascii"]
        return self._join(headers, self._text(rng, rng.randint(200, 1000)))

    def big(self, user, megabytes):
        """One message of about `megabytes` MB: a short text and a base64 attachment."""
        rng = random.Random(f"big:{user}")
        boundary = "=_bench_big"
        headers = self._headers(rng, user, 1) + [f"Content-Type: multipart/mixed; boundary=\"{boundary}\""]
        raw = int(megabytes * 1_000_000 * 3 / 4 * 76 / 77)
        body = (f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n{self._text(rng, 2000)}"
                f"--{boundary}\n{self._attachment(rng, 'big.bin', raw)}--{boundary}--\n")
        return self._join(headers, body)

    @staticmethod
    def _attachment(rng, name, nbytes):
        b64 = base64.b64encode(rng.randbytes(nbytes)).decode()
        lines = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
        return (f"Content-Type: application/octet-stream; name=\"{name}\"\nContent-Transfer-Encoding: base64\n"
                f"Content-Disposition: attachment; filename=\"{name}\"\n\n{lines}\n")

    @staticmethod
    def _join(headers, body):
        return ("\n".join(headers) + "\n\n" + body).encode()


@dataclass(frozen=True)
class Mailbox:
    user: str
    count: int
    kind: str = "realistic"  # realistic | small | big (one message of `count` MB)

    @property
    def messages(self):
        return 1 if self.kind == "big" else self.count


def fill_mailbox(lab: Lab, factory: MessageFactory, box: Mailbox):
    """Writes the mailbox (once per run) as Dovecot's mail owner; returns its size in bytes."""
    root = os.path.join(lab.mail_dir, box.user)
    owner = os.stat(lab.mail_dir)
    for sub in ("", "new", "cur", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chown(os.path.join(root, sub), owner.st_uid, owner.st_gid)
    total = 0
    for i in range(1, box.messages + 1):
        if box.kind == "big":
            data = factory.big(box.user, box.count)
        elif box.kind == "small":
            data = factory.small(box.user, i)
        else:
            data = factory.realistic(box.user, i)
        # Maildir name with Dovecot's S= (size on disk) and W= (size with CRLF line ends, as sent)
        wire_size = len(data) + data.count(b"\n")
        name = f"{BASE_TIME + i}.M{i}.bench,S={len(data)},W={wire_size}"
        path = os.path.join(root, "new", name)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, owner.st_uid, owner.st_gid)
        total += len(data)
    return total


def corpus_messages(lab: Lab, box: Mailbox):
    """{Message-ID: bytes} of a mailbox as stored."""
    out = {}
    d = os.path.join(lab.mail_dir, box.user, "new")
    for name in os.listdir(d):
        data = open(os.path.join(d, name), "rb").read()
        out[message_id(data)] = data
    return out


def message_id(data):
    m = re.search(rb"^Message-ID: (<[^>]*>)", data, re.M | re.I)
    return m.group(1).decode() if m else None


# ----------------------------------------------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    key: str
    title: str
    boxes: List[Mailbox]
    tls: bool = False
    smtp: bool = False           # deliver over SMTP to smtp-sink instead of an MDA
    nothing_new: bool = False    # S4: time only the poll that finds nothing
    delay_ms: int = 0            # S8: through a proxy delaying each direction this long (a long link)
    peer_timeout: Optional[float] = None  # other tools slower than this are stopped and skipped for later reps
    peer_reps: Optional[int] = None       # other tools than popfetch run at most this many times

    @property
    def users(self):
        return [b.user for b in self.boxes]

    @property
    def messages(self):
        return sum(b.messages for b in self.boxes)


def scenarios(quick):
    n1, n3, n4, n5, n6, n7 = (200, 50, 5000, 20, 10, 100) if quick else (1000, 200, 20000, 100, 50, 1000)
    main = Mailbox("s1", n1)
    s3 = Mailbox("s3", n3)
    return {
        "S1": Scenario("S1", f"{n1} msgs, plain POP3, MDA sh -c 'cat >/dev/null'", [main]),
        "S2": Scenario("S2", f"{n1} msgs, POP3S (implicit TLS, verified)", [main], tls=True),
        "S3": Scenario("S3", f"{n3} msgs, SMTP to smtp-sink", [s3], smtp=True),
        "S4": Scenario("S4", f"nothing new, {n4} msgs already seen", [Mailbox("s4", n4, "small")], nothing_new=True),
        "S5": Scenario("S5", f"{n5} accounts x 5 msgs, one invocation",
                       [Mailbox(f"s5-{i:03d}", 5) for i in range(1, n5 + 1)]),
        "S6": Scenario("S6", f"one {n6} MB message", [Mailbox("s6", n6, "big")]),
        "S7": Scenario("S7", f"{n7} accounts x 2 msgs, one invocation",
                       [Mailbox(f"s7-{i:04d}", 2, "small") for i in range(1, n7 + 1)], peer_timeout=240,
                       peer_reps=1),
        "S8": Scenario("S8", f"{n3} msgs over a 10 ms round-trip link, MDA", [s3], delay_ms=5),
    }


ALL_SCENARIOS = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "VER"]


# ----------------------------------------------------------------------------------------------------------------
# Dovecot's log: what the server really sent
# ----------------------------------------------------------------------------------------------------------------

LOGIN_RE = re.compile(r"pop3-login: Info: Login: user=<")
LOGOUT_RE = re.compile(r"pop3\([^)]*\)<\d+><[^>]*>: Info: (?P<how>[^\n]*?)top=(?P<top>\d+)/(?P<topb>\d+), "
                       r"retr=(?P<retr>\d+)/(?P<retrb>\d+), del=\d+/\d+, size=\d+")


def log_offset(lab):
    return os.path.getsize(lab.dovecot_log)


def server_sent(lab, offset, settle=5.0):
    """Sessions since `offset` and the messages and bytes Dovecot sent in them (RETR + TOP), once every session
    that logged in has logged out (or `settle` seconds passed)."""
    deadline = time.monotonic() + settle
    previous = None
    while True:
        with open(lab.dovecot_log, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        logins, ends = len(LOGIN_RE.findall(text)), list(LOGOUT_RE.finditer(text))
        # Dovecot logs a session's login and logout from other processes than the one that served the client, so
        # the last lines can trail the client's exit: done once every login has its logout and the log stood
        # still for a moment.
        if time.monotonic() > deadline or (len(ends) >= logins and previous == len(text)):
            break
        previous = len(text) if len(ends) >= logins else None
        time.sleep(0.05 if previous is None else 0.3)
    return {"logins": logins, "sessions": len(ends),
            "messages": sum(int(m["retr"]) + int(m["top"]) for m in ends),
            "bytes": sum(int(m["retrb"]) + int(m["topb"]) for m in ends),
            "unclean": sum(1 for m in ends if "Logged out" not in m["how"])}


def warm_up(lab, scn: Scenario):
    """Retrieves every message once, untimed: Dovecot builds its indexes and the mail goes into the page cache."""
    offset = log_offset(lab)
    accounts = [f"{u}:{lab.password(u)}" for u in scn.users]
    if lab.rawpop:
        subprocess.run([lab.rawpop, "-q", "-p", str(lab.pop3_port)] + accounts, check=True)
    else:
        for user in scn.users:
            p = poplib.POP3(HOST, lab.pop3_port, timeout=120)
            p.user(user)
            p.pass_(lab.password(user))
            for i in range(1, p.stat()[0] + 1):
                p.retr(i)
            p.quit()
    sent = server_sent(lab, offset)["messages"]
    if sent != scn.messages:
        sys.exit(f"bench: the warm-up of {scn.key} got {sent} messages from Dovecot, not {scn.messages}")


def server_uidls(lab, users):
    out = {}
    for user in users:
        p = poplib.POP3(HOST, lab.pop3_port, timeout=120)
        p.user(user)
        p.pass_(lab.password(user))
        out[user] = [line.split()[1].decode() for line in p.uidl()[1]]
        p.quit()
    return out


# ----------------------------------------------------------------------------------------------------------------
# Running one command under GNU time
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Cmd:
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)


def measure(cmd: Cmd, cwd, label, timeout):
    """Runs cmd in cwd; wall time from our monotonic clock, CPU (user+sys, children included) and peak RSS (of the
    largest process in the tree) from GNU time. Output goes to cwd/label.out and .err."""
    env = dict(os.environ, HOME=cwd, LC_ALL="C.UTF-8", **cmd.env)
    tfile = os.path.join(cwd, f"{label}.time")
    with open(os.path.join(cwd, f"{label}.out"), "wb") as out, open(os.path.join(cwd, f"{label}.err"), "wb") as err:
        start = time.monotonic()
        p = subprocess.Popen([GNU_TIME, "-f", "%U %S %M", "-o", tfile] + cmd.argv, cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        Children.add(p.pid)
        timed_out = []

        def kill():
            timed_out.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        timer = threading.Timer(timeout, kill)
        timer.daemon = True  # never keeps us alive when we are stopped
        timer.start()
        try:
            rc = p.wait()  # a plain wait: polling with sleeps would round short runs up
            wall = time.monotonic() - start
        finally:
            timer.cancel()
        Children.remove(p.pid)
    res = {"wall_s": round(wall, 4), "rc": rc}
    try:
        user, sys_, rss = open(tfile).read().split()[-3:]
        res.update(user_s=float(user), sys_s=float(sys_), cpu_s=round(float(user) + float(sys_), 3),
                   maxrss_kb=int(rss))
    except (OSError, ValueError):
        pass
    if timed_out:
        res["timeout"] = True
    return res


def stderr_tail(cwd, label, n=300):
    try:
        data = open(os.path.join(cwd, f"{label}.err"), "rb").read().decode("utf-8", "replace")
    except OSError:
        return ""
    data = "\n".join(line for line in data.splitlines() if not line.startswith("Command exited with"))
    return " ".join(data.split())[-n:]


# ----------------------------------------------------------------------------------------------------------------
# Tools. Each writes its configuration into the job's directory and returns the command for one poll.
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Job:
    """One tool on one scenario, in a fresh directory."""
    lab: Lab
    scn: Scenario
    dir: str

    @property
    def state(self):
        return os.path.join(self.dir, "state")

    @property
    def port(self):
        if self.scn.delay_ms:
            return self.lab.delayed_port(self.scn.delay_ms)
        return self.lab.pop3s_port if self.scn.tls else self.lab.pop3_port

    @property
    def mda(self):
        """The shell command a peer runs for each message."""
        return self.lab.msmtp_mda() if self.scn.smtp else DISCARD_MDA

    @property
    def accounts(self):
        return [(u, self.lab.password(u)) for u in self.scn.users]

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path


class SetupError(Exception):
    """A run that cannot start (its seeding failed, or the tool cannot do the scenario here)."""


@dataclass
class Tool:
    name: str
    program: str                                   # what must be installed
    command: Callable[[Job], Cmd]
    seed: Optional[Callable[[Job, Dict[str, List[str]]], None]] = None  # S4: make everything "already seen"
    ok_rc: tuple = (0,)
    reference: bool = False                        # limit / floor

    def installed(self, lab):
        if self.reference:
            return bool(lab.rawpop)
        if self.name == "popfetch":
            return os.access(lab.popfetch, os.X_OK)
        return shutil.which(self.program) is not None


# --- limit and floor: scripts/bench-rawpop.c ---

def rawpop_command(job: Job, mda: Optional[str]):
    argv = [job.lab.rawpop, "-q", "-p", str(job.port)]
    if job.scn.tls:
        if not job.lab.rawpop_tls:
            raise SetupError("bench-rawpop was built without TLS (libssl-dev missing)")
        argv += ["-t", "-C", job.lab.ca_file]
    if mda:
        argv += ["-m", mda]
    if job.scn.nothing_new:
        argv += ["-u", os.path.join(job.state, "seen")]
    return Cmd(argv + [f"{u}:{p}" for u, p in job.accounts])


def rawpop_seed(job: Job, uidls):
    with open(os.path.join(job.state, "seen"), "w") as f:
        f.writelines(u + "\n" for lst in uidls.values() for u in lst)


def limit_command(job):
    return rawpop_command(job, None)


def floor_command(job):
    return rawpop_command(job, job.mda)


# --- fetchmail: one poll statement, a `user` line per account, uidl + keep; exit 1 means "no mail" ---

def fetchmail_command(job: Job):
    if job.scn.tls:  # fetchmail matches the certificate's CN / DNS name, not its IP SAN
        tls = f'ssl sslcertck sslcertfile "{job.lab.ca_file}" sslcommonname "localhost"'
    else:  # 6.4 would otherwise upgrade to STLS because Dovecot offers it
        tls = "sslproto ''"
    if job.scn.smtp:
        deliver = f'smtphost "{HOST}/{job.lab.sink_port}" smtpname "{SMTP_RCPT}"'
    else:
        deliver = f'mda "{job.mda}"'
    lines = ["set no bouncemail", "set no spambounce", "set no syslog",
             f"poll {HOST} service {job.port} protocol POP3 uidl auth password timeout 300"]
    lines += [f'  user "{u}" there with password "{p}" is "root" here options keep {tls} {deliver}'
              for u, p in job.accounts]
    rc = job.write("fetchmailrc", "\n".join(lines) + "\n")
    return Cmd(["fetchmail", "-s", "-N", "--nosyslog", "-f", rc, "-i", os.path.join(job.state, "fetchids")],
               env={"FETCHMAILHOME": job.dir})


def fetchmail_seed(job: Job, uidls):
    path = os.path.join(job.state, "fetchids")
    with open(path, "w") as f:
        f.writelines(f"{user}@{HOST} {u}\n" for user, lst in uidls.items() for u in lst)
    os.chmod(path, 0o600)  # fetchmail refuses an id file that others can read


# --- mpop: `defaults` plus one account per user; keep on, only_new on ---

def mpop_command(job: Job):
    tls = ["tls on", "tls_starttls off", f"tls_trust_file {job.lab.ca_file}"] if job.scn.tls else ["tls off"]
    lines = ["defaults", f"host {HOST}", f"port {job.port}", *tls, "auth user", "keep on", "only_new on",
             f"uidls_file {job.state}/mpop_uidls", f'delivery mda "{job.mda}"', ""]
    for u, p in job.accounts:
        lines += [f"account {u}", f"user {u}", f"password {p}", ""]
    return Cmd(["mpop", "-q", "-C", job.write("mpoprc", "\n".join(lines)), "-a"])


def mpop_seed(job: Job, uidls):
    with open(os.path.join(job.state, "mpop_uidls"), "w") as f:
        f.write("# This file was generated by mpop version 1.4.18.\n#\n"
                "# Lines starting with a space begin a new UID list and have\n"
                "# the following format: \" number-of-uids hostname user\".\n"
                "# The list of UIDs follows in ascending order, with one UID per line.\n#\n")
        for user, lst in uidls.items():
            f.write(f" {len(lst)} {HOST} {user}\n")
            f.writelines(u + "\n" for u in sorted(lst))


# --- getmail6: one rc file per account, all in one invocation; MDA_external through /bin/sh ---

def getmail_command(job: Job):
    rcfiles = []
    for u, p in job.accounts:
        if job.scn.tls:
            retriever = f"type = SimplePOP3SSLRetriever\nca_certs = {job.lab.ca_file}\n"
        else:
            retriever = "type = SimplePOP3Retriever\n"
        rc = job.write(f"getmailrc-{u}",
                       f"[retriever]\n{retriever}server = {HOST}\nport = {job.port}\nusername = {u}\n"
                       f"password = {p}\ntimeout = 30\n\n"
                       f"[destination]\ntype = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"{job.mda}\")\n"
                       "allow_root_commands = true\n\n"
                       "[options]\nread_all = false\ndelete = false\nverbose = 0\nmessage_log_syslog = false\n")
        rcfiles.append(f"--rcfile={rc}")
    # timeout = 30: getmail 6.18 can lose the wake-up from a fast MDA and wait out the timeout (default 180 s)
    return Cmd(["getmail", f"--getmaildir={job.state}"] + rcfiles)


def getmail_seed(job: Job, uidls):
    now = int(time.time())
    for user, lst in uidls.items():
        with open(os.path.join(job.state, f"oldmail-{HOST}-{job.port}-{user}"), "w") as f:
            f.writelines(f"{u}\0{now}\n" for u in lst)


# --- fdm: an account per user with new-only + cache + keep; `pipe` action, or its native `smtp` action ---

# fdm polls all its accounts at once by default, one child process each. With S7's 1,000 accounts those children
# (about 45 MB each) exhaust the memory of the machine, so above 100 accounts fdm gets popfetch's default
# concurrency (max_concurrent_polls = 8).
FDM_MAX_PARALLEL_ABOVE = 100
FDM_PARALLEL_ACCOUNTS = 8


def fdm_user():
    try:
        pw = pwd.getpwnam("debianfdm")  # Debian's fdm drops root to this user to fetch
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


def fdm_command(job: Job):
    owner = fdm_user()
    if owner:
        os.chown(job.state, *owner)
    lines = [f'set lock-file "{job.dir}/fdm.lock"', "set maximum-size 128M"]  # the default 32M is below S6
    env = {}
    if job.scn.tls:  # fdm's config has no CA option; OpenSSL takes it from the environment
        lines.append("set verify-certificates")
        env["SSL_CERT_FILE"] = job.lab.ca_file
    if len(job.accounts) > FDM_MAX_PARALLEL_ABOVE:
        lines.append(f"set parallel-accounts {FDM_PARALLEL_ACCOUNTS}")
    kind = "pop3s" if job.scn.tls else "pop3"
    lines += [f'account "{u}" {kind} server "{HOST}" port {job.port} user "{u}" pass "{p}" '
              f'new-only cache "{job.state}/{u}.cache" keep' for u, p in job.accounts]
    if job.scn.smtp:
        lines.append(f'action "deliver" smtp server "{HOST}" port {job.lab.sink_port} '
                     f'from "{SMTP_FROM}" to "{SMTP_RCPT}"')
    else:
        lines.append(f'action "deliver" pipe "{job.mda}"')
    lines.append('match all action "deliver"')
    return Cmd(["fdm", "-q", "-f", job.write("fdm.conf", "\n".join(lines) + "\n"), "fetch"], env=env)


def fdm_seed(job: Job, uidls):
    owner = fdm_user()
    for user, lst in uidls.items():
        path = os.path.join(job.state, f"{user}.cache")
        with open(path, "w") as f:
            f.writelines(f"{len(u)} {u}\n" for u in lst)
        if owner:
            os.chown(path, *owner)


# --- popfetch ---

def popfetch_config(job: Job, delivery=None, extra=()):
    """[defaults] with everything the accounts share, then one [[account]] per user. `delivery` overrides the
    scenario's delivery lines."""
    if delivery is None:
        if job.scn.smtp:
            delivery = [f'smtp = "{HOST}:{job.lab.sink_port}"', f'recipient = "{SMTP_RCPT}"']
        else:
            delivery = ["mda = \"/bin/sh -c 'cat >/dev/null'\""]
    lines = ["[defaults]", f'host = "{HOST}"', f"port = {job.port}",
             f'tls = "{"implicit" if job.scn.tls else "none"}"', f'auth = "{job.lab.popfetch_auth}"', "keep = true"]
    if job.scn.tls:
        lines.append(f'ca_file = "{job.lab.ca_file}"')
    if not job.scn.nothing_new:
        lines.append("flood_limit = 0  # a first poll of a full mailbox is what is measured: no flood pause")
    lines += list(delivery) + list(extra) + [""]
    for u, p in job.accounts:
        lines += ["[[account]]", f'name = "{u}"', f'user = "{u}"', f'password = "{p}"', ""]
    return job.write("popfetch.toml", "\n".join(lines))


def popfetch_argv(job: Job, *command):
    return [job.lab.popfetch, "--config", os.path.join(job.dir, "popfetch.toml"),
            "--state", os.path.join(job.state, "state.sqlite"), *command]


def popfetch_command(job: Job):
    popfetch_config(job)
    return Cmd(popfetch_argv(job, "poll", "-q"))


def popfetch_seed(job: Job, uidls):
    """Its own way: a first poll pauses the account (flood protection), mark-seen answers, a poll records it."""
    popfetch_config(job)
    steps = [(["poll", "-q"], (75,))]
    steps += [(["mark-seen", "--account", u], (0,)) for u in uidls]
    steps += [(["poll", "-q"], (0,))]
    offset = log_offset(job.lab)
    for args, want in steps:
        p = subprocess.run(popfetch_argv(job, *args), capture_output=True, text=True, cwd=job.dir)
        if p.returncode not in want:
            raise SetupError(f"popfetch {' '.join(args)} exited {p.returncode}: {' '.join(p.stderr.split())[-300:]}")
    sent = server_sent(job.lab, offset)["messages"]
    if sent:
        raise SetupError(f"seeding fetched {sent} messages")


TOOLS = {
    "limit": Tool("limit", "", limit_command, seed=rawpop_seed, reference=True),
    "floor": Tool("floor", "", floor_command, seed=rawpop_seed, reference=True),
    "fetchmail": Tool("fetchmail", "fetchmail", fetchmail_command, seed=fetchmail_seed, ok_rc=(0, 1)),
    "mpop": Tool("mpop", "mpop", mpop_command, seed=mpop_seed),
    "getmail6": Tool("getmail6", "getmail", getmail_command, seed=getmail_seed),
    "fdm": Tool("fdm", "fdm", fdm_command, seed=fdm_seed),
    "popfetch": Tool("popfetch", "", popfetch_command, seed=popfetch_seed),
}


def tool_version(lab, name):
    argv = {"popfetch": [lab.popfetch, "--version"], "mpop": ["mpop", "--version"],
            "fetchmail": ["fetchmail", "--version"], "getmail6": ["getmail", "--version"],
            "fdm": ["dpkg-query", "-W", "-f=fdm ${Version}", "fdm"]}.get(name)
    if not argv:
        return "scripts/bench-rawpop.c"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# ----------------------------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, lab: Lab, args, tools: List[str], out):
        self.lab, self.args, self.tools, self.out = lab, args, tools, out
        self.factory = MessageFactory()
        self.filled: Dict[str, int] = {}
        self.records: List[dict] = []
        self.notes: List[str] = []
        self.too_slow: set = set()   # (scenario, tool) stopped by the scenario's peer_timeout
        self.job_seq = 0

    def record(self, rec):
        self.records.append(rec)
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def fresh_dir(self, label):
        self.job_seq += 1
        d = os.path.join(self.lab.work, "runs", f"{self.job_seq:04d}-{label}")
        os.makedirs(os.path.join(d, "state"))
        return d

    def done_with(self, rec, job_dir):
        """Removes a run's directory, or keeps a failed one beside the results (scripts/bench removes the rest of
        the work dir) and says where in its error."""
        if rec.get("ok"):
            shutil.rmtree(job_dir, ignore_errors=True)
            return
        kept = os.path.join(self.lab.work, "results-failed", os.path.basename(job_dir))
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        shutil.move(job_dir, kept)
        rec["error"] = f"{rec.get('error')} (files: {kept})"

    # --- set-up ---

    def prepare(self, scn: Scenario):
        new = [b for b in scn.boxes if b.user not in self.filled]
        if new:
            t = time.monotonic()
            for box in new:
                self.filled[box.user] = fill_mailbox(self.lab, self.factory, box)
            size = sum(self.filled[b.user] for b in scn.boxes)
            print(f"   corpus: {scn.messages} msgs in {len(scn.boxes)} mailbox(es), {size / 1e6:.1f} MB "
                  f"({time.monotonic() - t:.1f} s to write)", flush=True)
        warm_up(self.lab, scn)

    # --- one timed run ---

    def timed_run(self, scn: Scenario, tool: Tool, rep: int, uidls):
        job = Job(self.lab, scn, self.fresh_dir(f"{scn.key}-{tool.name}-{rep}"))
        rec = {"type": "run", "scenario": scn.key, "tool": tool.name, "rep": rep, "messages": scn.messages,
               "accounts": len(scn.boxes), "load1": float(open("/proc/loadavg").read().split()[0])}
        try:
            if scn.nothing_new:
                tool.seed(job, uidls)
            cmd = tool.command(job)
        except SetupError as e:
            rec.update(ok=False, error=str(e))
            return rec, job
        timeout = self.lab.timeout
        if scn.peer_timeout and not tool.reference and tool.name != "popfetch":
            timeout = min(timeout, scn.peer_timeout)
        rec["busy_before"] = wait_for_quiet()
        offset = log_offset(self.lab)
        rec.update(measure(cmd, job.dir, "run", timeout))
        rec["server"] = server_sent(self.lab, offset)
        expected = 0 if scn.nothing_new else scn.messages
        errors = []
        if rec.get("timeout"):
            errors.append(f"stopped after {timeout:.0f} s")
        elif rec["rc"] not in tool.ok_rc:
            errors.append(f"exit status {rec['rc']}")
        if rec["server"]["messages"] != expected:
            errors.append(f"server sent {rec['server']['messages']} msgs, expected {expected}")
        if errors:
            tail = stderr_tail(job.dir, "run")
            rec.update(ok=False, error="; ".join(errors) + (f" | {tail}" if tail else ""))
        else:
            rec["ok"] = True
        return rec, job

    def run_scenario(self, scn: Scenario):
        print(f"== {scn.key}: {scn.title}", flush=True)
        if "fdm" in self.tools and len(scn.boxes) > FDM_MAX_PARALLEL_ABOVE:
            self.notes.append(f"{scn.key}: fdm polled {FDM_PARALLEL_ACCOUNTS} accounts at a time (set parallel-accounts"
                              f" {FDM_PARALLEL_ACCOUNTS}); by default it forks one child per account, all at once, "
                              "which runs this machine out of memory.")
        if scn.peer_reps and self.args.reps > scn.peer_reps and len(self.tools) > 1:
            self.notes.append(f"{scn.key}: every tool but popfetch ran {scn.peer_reps} time(s), not "
                              f"{self.args.reps} (each takes tens of seconds at this size).")
        self.prepare(scn)
        uidls = server_uidls(self.lab, scn.users) if scn.nothing_new else {}
        if scn.key == "S1" and "popfetch" in self.tools:
            self.check_delivery(scn)
        tools = [TOOLS[t] for t in self.tools]
        for rep in range(1, self.args.reps + 1):
            shift = (rep - 1) % len(tools)  # rotate the order, so no tool always runs first
            for tool in tools[shift:] + tools[:shift]:
                if (scn.key, tool.name) in self.too_slow:
                    continue
                if scn.peer_reps and tool.name != "popfetch" and rep > scn.peer_reps:
                    continue
                rec, job = self.timed_run(scn, tool, rep, uidls)
                self.done_with(rec, job.dir)
                self.record(rec)
                self.print_run(rec)
                if rec.get("timeout") and scn.peer_timeout:
                    self.too_slow.add((scn.key, tool.name))
                    self.notes.append(f"{scn.key}: {tool.name} did not finish within {scn.peer_timeout:.0f} s "
                                      f"and was skipped for the remaining repetitions.")

    @staticmethod
    def print_run(rec):
        line = (f"   rep {rec['rep']} {rec['tool']:<9} wall {rec.get('wall_s', 0):8.3f} s  cpu "
                f"{rec.get('cpu_s', 0):7.2f} s  rss {rec.get('maxrss_kb', 0) / 1024:6.1f} MB  "
                f"sent {rec.get('server', {}).get('messages', '?')}")
        print(line + ("" if rec.get("ok") else f"  FAILED: {rec.get('error')}"), flush=True)

    # --- popfetch's delivery check (untimed): every S1 message delivered, byte for byte ---

    def check_delivery(self, scn: Scenario):
        job = Job(self.lab, scn, self.fresh_dir("S1-popfetch-check"))
        saved = os.path.join(job.dir, "delivered")
        os.makedirs(saved)
        popfetch_config(job, delivery=[f"mda = \"/bin/sh -c 'cat > \\\"$(mktemp {saved}/m.XXXXXX)\\\"'\""])
        offset = log_offset(self.lab)
        p = subprocess.run(popfetch_argv(job, "poll", "-q"), capture_output=True, text=True, cwd=job.dir)
        problems = []
        if p.returncode != 0:
            problems.append(f"exit status {p.returncode}: {' '.join(p.stderr.split())[-300:]}")
        sent = server_sent(self.lab, offset)["messages"]
        expected = corpus_messages(self.lab, scn.boxes[0])
        got: Dict[str, int] = {}
        bad = 0
        for name in os.listdir(saved):
            data = open(os.path.join(saved, name), "rb").read()
            mid = message_id(data)
            got[mid] = got.get(mid, 0) + 1
            original = expected.get(mid)
            # popfetch puts a Received: trace field on top; the rest must be the message exactly as stored
            if original is None or not data.endswith(original) or not data.startswith(b"Received: "):
                bad += 1
        missing = sum(1 for mid in expected if mid not in got)
        dupes = sum(n - 1 for n in got.values() if n > 1)
        if missing or dupes or bad:
            problems.append(f"{missing} missing, {dupes} duplicated, {bad} altered or unknown")
        rec = {"type": "check", "scenario": scn.key, "tool": "popfetch", "expected": len(expected),
               "delivered": sum(got.values()), "server_sent": sent, "ok": not problems,
               "error": "; ".join(problems) or None}
        self.done_with(rec, job.dir)
        self.record(rec)
        if problems:
            self.notes.append(f"**popfetch DELIVERY CHECK FAILED** (S1): {rec['error']}")
            print(f"   popfetch delivery check FAILED: {rec['error']}", flush=True)
        else:
            print(f"   popfetch delivery check: {rec['delivered']}/{len(expected)} delivered once, byte for byte",
                  flush=True)

    # --- S7: popfetch's daemon holding the accounts idle ---

    def daemon_rss(self, scn: Scenario):
        job = Job(self.lab, scn, self.fresh_dir("S7-popfetch-daemon"))
        popfetch_config(job, extra=['interval = "24h"'])
        offset = log_offset(self.lab)
        first = subprocess.run(popfetch_argv(job, "poll", "-q"), capture_output=True, text=True, cwd=job.dir)
        rec = {"type": "daemon", "scenario": "S7d", "tool": "popfetch", "accounts": len(scn.boxes)}
        if first.returncode != 0 or server_sent(self.lab, offset)["messages"] != scn.messages:
            rec.update(ok=False, error=f"first poll failed (exit {first.returncode})")
            self.done_with(rec, job.dir)
            self.record(rec)
            return
        offset = log_offset(self.lab)
        with open(os.path.join(job.dir, "daemon.err"), "wb") as err:
            d = subprocess.Popen(popfetch_argv(job, "daemon", "-q"), cwd=job.dir, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        Children.add(d.pid)
        try:
            settled, start = self.wait_settled(d)
            rss = proc_status(d.pid)
            rec.update(ok=d.poll() is None and rss is not None, settle_s=round(settled - start, 1),
                       sessions_at_start=server_sent(self.lab, offset, settle=0)["sessions"],
                       vmrss_kb=(rss or {}).get("VmRSS"), vmhwm_kb=(rss or {}).get("VmHWM"),
                       threads=(rss or {}).get("Threads"))
            if not rec["ok"]:
                rec["error"] = f"the daemon exited ({d.poll()}): {stderr_tail(job.dir, 'daemon')}"
            elif stderr_tail(job.dir, "daemon"):  # -q: errors only
                rec["stderr"] = stderr_tail(job.dir, "daemon")
        finally:
            stop_daemon(d)
        rec["exit_status"] = d.returncode
        self.done_with(rec, job.dir)
        self.record(rec)
        print(f"   popfetch daemon, {len(scn.boxes)} accounts idle: VmRSS {(rec.get('vmrss_kb') or 0) / 1024:.1f} MB "
              f"(peak {(rec.get('vmhwm_kb') or 0) / 1024:.1f} MB), settled after {rec.get('settle_s')} s, "
              f"{rec.get('sessions_at_start')} sessions at start" + ("" if rec["ok"] else f"  FAILED: {rec['error']}")
              + (f"  (it logged: {rec['stderr']})" if rec.get("stderr") else ""), flush=True)

    # --- S4 in the daemon: the CPU of one poll that finds nothing, without a process start ---

    def daemon_quiet_cpu(self, scn: Scenario, uidls, polls=10):
        """popfetch's daemon holding S4's seeded mailbox: `popfetch wake` `polls` times, each poll's CPU read from
        /proc/PID/stat (user+sys ticks) once Dovecot logged the session's end. The daemon pays start-up (argument
        parsing, loading the runtime, opening the state) once; this is what each of its polls costs."""
        job = Job(self.lab, scn, self.fresh_dir("S4-popfetch-daemon"))
        rec = {"type": "daemon-cpu", "scenario": "S4d", "tool": "popfetch", "polls": polls}
        try:
            TOOLS["popfetch"].seed(job, uidls)
        except SetupError as e:
            rec.update(ok=False, error=str(e))
            self.record(rec)
            return
        popfetch_config(job, extra=['interval = "24h"'])
        with open(os.path.join(job.dir, "daemon.err"), "wb") as err:
            d = subprocess.Popen(popfetch_argv(job, "daemon", "-q"), cwd=job.dir, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        Children.add(d.pid)
        tick = os.sysconf("SC_CLK_TCK")

        def cpu():
            with open(f"/proc/{d.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)

        samples = []
        try:
            self.wait_settled(d)
            start = cpu()
            for _ in range(polls):
                offset, before = log_offset(self.lab), cpu()
                subprocess.run(popfetch_argv(job, "wake"), capture_output=True, cwd=job.dir, check=True)
                deadline = time.monotonic() + 30
                while server_sent(self.lab, offset, settle=0)["sessions"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)  # the poll's records after QUIT
                samples.append(cpu() - before)
            rec.update(ok=d.poll() is None, cpu_s=samples, mean_ms=round((cpu() - start) / polls * 1000, 1))
        except (subprocess.CalledProcessError, OSError) as e:
            rec.update(ok=False, error=f"{e}: {stderr_tail(job.dir, 'daemon')}")
        finally:
            stop_daemon(d)
        self.done_with(rec, job.dir)
        self.record(rec)
        if rec.get("ok"):
            self.notes.append(f"S4 in popfetch's daemon (`popfetch wake`, {polls} polls, no process start): "
                              f"{rec['mean_ms']:.0f} ms of CPU per poll (the daemon's user+sys over the {polls} "
                              f"polls, / {polls}; target ≤ 20 ms).")
        print(f"   popfetch daemon, S4 polls: CPU per poll {[round(x * 1000) for x in samples]} ms"
              + ("" if rec.get("ok") else f"  FAILED: {rec.get('error')}"), flush=True)

    def wait_settled(self, proc, quiet_s=3.0, least_s=5.0, most_s=120.0):
        """Waits until the daemon has run for `least_s` and Dovecot's log has not moved for `quiet_s` (the
        daemon may poll every account when it starts)."""
        start = last_change = time.monotonic()
        last = None
        while proc.poll() is None:
            now = time.monotonic()
            state = os.path.getsize(self.lab.dovecot_log)
            if state != last:
                last, last_change = state, now
            if (now - start >= least_s and now - last_change >= quiet_s) or now - start >= most_s:
                break
            time.sleep(0.25)
        return time.monotonic(), start

    # --- --version ---

    def versions(self, count=20):
        print("== VER: --version", flush=True)
        cmds = {"popfetch": [self.lab.popfetch, "--version"], "mpop": ["mpop", "--version"]}
        for name, argv in cmds.items():
            if name not in self.tools or not TOOLS[name].installed(self.lab):
                continue
            d = self.fresh_dir(f"VER-{name}")
            runs = [measure(Cmd(argv), d, "run", 30) for _ in range(count)]
            ok = all(r["rc"] == 0 for r in runs)
            rec = {"type": "run", "scenario": "VER", "tool": name, "rep": 1, "ok": ok, "reps": count,
                   "wall_s": statistics.median(r["wall_s"] for r in runs),
                   "cpu_s": statistics.median(r.get("cpu_s", 0) for r in runs),
                   "maxrss_kb": statistics.median(r.get("maxrss_kb", 0) for r in runs)}
            if not ok:
                rec["error"] = f"exit status {[r['rc'] for r in runs]}"
            self.record(rec)
            print(f"   {name:<9} median of {count}: {rec['wall_s'] * 1000:.1f} ms, {rec['maxrss_kb'] / 1024:.1f} MB",
                  flush=True)
            shutil.rmtree(d, ignore_errors=True)

    # --- --extras: popfetch-only deliveries on the S1 mailbox ---

    def extras(self, scn: Scenario):
        print("== extras: popfetch deliveries on the S1 mailbox", flush=True)
        self.prepare(scn)
        variants = {
            "MDA /bin/cat (exec'd directly, no shell)": ['mda = "/bin/cat"'],
            "SMTP to a real Postfix (pipelined, one connection)":
                [f'smtp = "{HOST}:{self.lab.mta_port}"', 'recipient = "bench@mail.test"'],
            "LMTP to Dovecot": [f'lmtp = "{HOST}:{self.lab.lmtp_port}"', 'recipient = "lmtpbench"'],
            "built-in Maildir (fsync per message)": None,
        }
        imap_label = "IMAP APPEND to Dovecot (one connection, LITERAL+)"
        if self.lab.imap_port:
            variants[imap_label] = []
        for rep in range(1, self.args.reps + 1):
            for label, delivery in variants.items():
                job = Job(self.lab, scn, self.fresh_dir(f"extra-{rep}"))
                if delivery is None:
                    delivery = [f'maildir = "{job.dir}/Maildir"']
                if label == imap_label:
                    # A new, empty IMAP mailbox per repetition (the test Dovecot's password is "secret-USER").
                    user = f"imapbench{rep}x{random.randrange(1 << 30)}"
                    delivery = [f'imap = "imap://{HOST}:{self.lab.imap_port}/INBOX"', f'imap_user = "{user}"',
                                f'imap_password = "secret-{user}"']
                popfetch_config(job, delivery=delivery)
                offset = log_offset(self.lab)
                rec = {"type": "extra", "scenario": "extras", "tool": "popfetch", "variant": label, "rep": rep,
                       "messages": scn.messages}
                rec.update(measure(Cmd(popfetch_argv(job, "poll", "-q")), job.dir, "run", self.lab.timeout))
                rec["server"] = server_sent(self.lab, offset)
                rec["ok"] = rec["rc"] == 0 and rec["server"]["messages"] == scn.messages
                if not rec["ok"]:
                    rec["error"] = (f"exit status {rec['rc']}, server sent {rec['server']['messages']} | "
                                    f"{stderr_tail(job.dir, 'run')}")
                self.done_with(rec, job.dir)
                self.record(rec)
                print(f"   rep {rep} {label:<52} wall {rec['wall_s']:7.3f} s  rss "
                      f"{rec.get('maxrss_kb', 0) / 1024:6.1f} MB" + ("" if rec["ok"] else f"  FAILED: {rec['error']}"),
                      flush=True)


def stop_daemon(d):
    """SIGTERM to a daemon the bench started (SIGKILL to its group after 30 s), and forget it."""
    if d.poll() is None:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(d.pid, signal.SIGKILL)
            d.wait()
    Children.remove(d.pid)


def proc_status(pid):
    try:
        out = {}
        for line in open(f"/proc/{pid}/status"):
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
        return out
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------

def num(x):
    """About 3 significant digits, without an exponent."""
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def summarize(runs):
    good = [r for r in runs if r.get("ok")]
    if not good:
        return None
    wall = statistics.median(r["wall_s"] for r in good)
    msgs = statistics.median(r.get("server", {}).get("messages", 0) for r in good)
    return {"wall": wall, "cpu": statistics.median(r.get("cpu_s", 0) for r in good),
            "rss": statistics.median(r.get("maxrss_kb", 0) for r in good) / 1024,
            "rate": msgs / wall if msgs and wall else None, "good": len(good), "all": len(runs)}


def report(records, tools, scns, lab_info):
    runs = [r for r in records if r.get("type") == "run"]
    check_failed = any(r.get("type") == "check" and not r.get("ok") for r in records)
    lines = [f"popfetch benchmark, {lab_info}", "",
             "Each cell: wall s (median) · CPU s (user+sys, children such as the MDA included) · peak RSS MB (largest "
             "process) · msgs/s (as sent by Dovecot) · ×popfetch (tool wall / popfetch wall; above 1 = slower than "
             "popfetch).", "",
             "| scenario | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
    for key, title in scns:
        cells = []
        pf = summarize([r for r in runs if r["scenario"] == key and r["tool"] == "popfetch"])
        for tool in tools:
            rs = [r for r in runs if r["scenario"] == key and r["tool"] == tool]
            s = summarize(rs)
            if not rs:
                cells.append("–")
            elif s is None:
                cells.append(f"FAILED ({len(rs)}/{len(rs)})")
            elif key == "VER":
                cells.append(f"{s['wall'] * 1000:.1f} ms · {s['rss']:.1f} MB")
            else:
                ratio = f"×{s['wall'] / pf['wall']:.2f}" if pf else "–"
                rate = f"{num(s['rate'])}/s" if s["rate"] and key != "S4" else "–"
                failed = f" ({s['all'] - s['good']}/{s['all']} FAILED)" if s["good"] < s["all"] else ""
                if key == "S1" and tool == "popfetch" and check_failed:
                    failed += " (DELIVERY CHECK FAILED)"
                cells.append(f"{num(s['wall'])} · {s['cpu']:.2f} · {s['rss']:.1f} · {rate} · {ratio}{failed}")
        lines.append(f"| {key} {title} | " + " | ".join(cells) + " |")
        if key == "S7":
            lines.append(daemon_row(records, tools))
    return "\n".join(lines)


def daemon_row(records, tools):
    d = next((r for r in records if r.get("type") == "daemon"), None)
    if d is None:
        cell = "–"
    elif not d.get("ok"):
        cell = "FAILED"
    else:
        cell = (f"VmRSS {d['vmrss_kb'] / 1024:.1f} MB (peak {d['vmhwm_kb'] / 1024:.1f} MB; target ≤ 64 MB: "
                f"{'met' if d['vmrss_kb'] <= 64 * 1024 else 'MISSED'})")
    cells = [cell if t == "popfetch" else "" for t in tools]
    accounts = d["accounts"] if d else "the S7"
    return f"| S7d daemon, {accounts} accounts idle | " + " | ".join(cells) + " |"


def extras_report(records):
    ex = [r for r in records if r.get("type") == "extra"]
    if not ex:
        return ""
    lines = ["", "popfetch only, on the S1 mailbox (wall s · CPU s · peak RSS MB · msgs/s):", "",
             "| delivery | popfetch |", "|---|---|"]
    for variant in dict.fromkeys(r["variant"] for r in ex):
        s = summarize([r for r in ex if r["variant"] == variant])
        cell = "FAILED" if s is None else f"{num(s['wall'])} · {s['cpu']:.2f} · {s['rss']:.1f} · {num(s['rate'])}/s"
        lines.append(f"| {variant} | {cell} |")
    return "\n".join(lines)


def closing_notes(lab, records, tools):
    notes = []
    if "popfetch" in tools:
        how = {"user": "USER/PASS, as fetchmail, mpop and getmail6 do here; fdm picks APOP",
               "auto": "popfetch's default: the strongest mechanism Dovecot offers, SCRAM-SHA-256"}
        notes.append(f'popfetch logged in with auth = "{lab.popfetch_auth}" '
                     f'({how.get(lab.popfetch_auth, "set by --popfetch-auth")}).')
    loads = [r["load1"] for r in records if "load1" in r]
    if loads:
        busy = max(loads) > (os.cpu_count() or 1)
        notes.append(f"Load average (1 min) before the timed runs: {min(loads):.1f}–{max(loads):.1f} on "
                     f"{os.cpu_count()} cores" + ("; the machine was busy, so timings are noisy." if busy else "."))
    quiet = [r["busy_before"] for r in records if "busy_before" in r]
    if quiet:
        loud = sum(1 for b in quiet if b > 0.15)
        notes.append(f"Each timed run waited for a quiet machine (at most 15 % of the cores busy for 1 s, or 30 s): "
                     f"busy just before a run {100 * statistics.median(quiet):.0f} % median, "
                     f"{100 * max(quiet):.0f} % at most" + (f"; {loud} of {len(quiet)} runs started on a busy "
                                                             "machine after the 30 s wait." if loud else "."))
    return notes


def failures(records):
    out = []
    for r in records:
        if r.get("type") in ("run", "extra", "daemon") and not r.get("ok"):
            what = r.get("variant") or f"rep {r.get('rep', 1)}"
            out.append(f"- FAILED {r['scenario']} {r['tool']} {what}: {r.get('error')}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Soak (--soak MINUTES): popfetch's daemon over many accounts for a long while, some of them failing on purpose
# ----------------------------------------------------------------------------------------------------------------
#
# Healthy accounts deliver by MDA (`sh -c 'cat > mktemp'` into a directory per account) or, one in four, into the
# built-in Maildir; ~2 % log in with a wrong password; ~2 % point at a stalled server (half never answer, half send
# the greeting and then say nothing); ~1 % deliver over LMTP to Dovecot's `quotafull` user (1 KB quota: a real 552).
# Every account starts with 2 messages; while the daemon runs, new ones are written into random healthy mailboxes.
# Every 5 s the daemon's VmRSS and open descriptors are sampled; every 60 s it gets SIGHUP, and before the first one
# the config changes (one account removed, one added); at the end SIGTERM must make it exit 0 within shutdown_grace
# + 5 s. Then a final `popfetch poll` of the healthy accounts, and the checks: every message of a healthy mailbox
# delivered exactly once and none left on the server, `popfetch status` (exit and outcome per account), polls per
# account from the state database (none overlapping, none missed), descriptors not growing, memory not growing.

SOAK_SAMPLE_S = 5
SOAK_HUP_EVERY_S = 60
SOAK_GRACE_S = 10          # shutdown_grace of the soak's config
SOAK_STALL_TIMEOUT = 4     # `timeout` of the accounts on the stalled server
SOAK_QUOTA_USER = "quotafull"  # scripts/dovecot-instance's user with a 1 KB quota


class StalledServer:
    """A listener on 127.0.0.1 that accepts and then never answers (greeting=False), or sends a POP3 greeting and
    then says nothing. A connection is closed when the client closes it, so the server holds no stale sockets."""

    def __init__(self, greeting: bool):
        import selectors
        import socket
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(256)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import selectors
        while self.running:
            for key, _ in self.sel.select(timeout=0.2):
                if key.fileobj is self.sock:
                    try:
                        conn, _addr = self.sock.accept()
                    except OSError:
                        continue
                    self.accepted += 1
                    if self.greeting:
                        try:
                            conn.sendall(b"+OK stalled POP3 server ready\r\n")
                        except OSError:
                            pass
                    conn.setblocking(False)
                    self.sel.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = key.fileobj.recv(4096)  # what the client sends is read and ignored
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(key.fileobj)
                    key.fileobj.close()

    def open_connections(self):
        return len(self.sel.get_map()) - 1

    def stop(self):
        self.running = False
        self.thread.join(timeout=2)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


@dataclass
class SoakAccount:
    name: str
    kind: str              # mda | maildir | badpass | stall-silent | stall-greeting | quota
    user: str
    active: bool = True    # in the daemon's config (the removed account stops, the added one starts, at the reload)

    @property
    def healthy(self):
        return self.kind in ("mda", "maildir")

    @property
    def expected(self):
        """The outcome `popfetch status` must show, as (outcome, pattern its error must match)."""
        return {"badpass": ("error", r"auth"), "stall-silent": ("error", r"time"),
                "stall-greeting": ("error", r"time"), "quota": ("partial|ok", None)}.get(self.kind, ("ok", None))


class Soak:
    def __init__(self, lab: Lab, args, out):
        self.lab, self.args, self.out = lab, args, out
        self.factory = MessageFactory()
        self.dir = os.path.join(lab.work, "soak")
        self.deliver_dir = os.path.join(self.dir, "delivered")
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        self.interval = args.soak_interval
        self.duration = args.soak * 60.0
        self.accounts: List[SoakAccount] = []
        self.injected: Dict[str, List[str]] = {}   # account name -> Message-IDs put into its mailbox
        self.after_removal: List[str] = []        # written into the removed account's mailbox after the reload
        self.seq = 0
        self.lock = threading.Lock()
        self.samples: List[dict] = []
        self.checks: List[dict] = []
        self.events: List[dict] = []
        self.removed: Optional[SoakAccount] = None
        self.added: Optional[SoakAccount] = None
        self.owner = os.stat(lab.mail_dir)
        self.stalled = {"stall-silent": StalledServer(False), "stall-greeting": StalledServer(True)}

    def label(self, a: SoakAccount):
        """The account's row in the report: its kind, or the account changed by the reload."""
        return {id(self.removed): f"{a.kind}, removed at reload", id(self.added): f"{a.kind}, added at reload"}.get(
            id(a), a.kind)

    def record(self, rec):
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def check(self, name, ok, detail):
        rec = {"type": "check", "check": name, "ok": bool(ok), "detail": detail}
        self.checks.append(rec)
        self.record(rec)
        print(f"   {'ok    ' if ok else 'FAILED'} {name}: {detail}", flush=True)

    # --- accounts, mailboxes and the config ---

    def plan(self):
        n = self.args.soak_accounts
        share = {"badpass": 0.02, "stall-silent": 0.01, "stall-greeting": 0.01, "quota": 0.01}
        kinds = []
        for kind, fraction in share.items():
            kinds += [kind] * max(1, round(n * fraction))
        rest = n - len(kinds)
        kinds += ["maildir" if i % 4 == 3 else "mda" for i in range(rest)]
        random.Random(11).shuffle(kinds)
        for i, kind in enumerate(kinds, 1):
            name = f"soak-{i:04d}"
            self.accounts.append(SoakAccount(name, kind, name))
        # The config change at the first reload: one healthy account removed, one new account added.
        self.removed = next(a for a in self.accounts if a.kind == "mda")
        self.added = SoakAccount(f"soak-{n + 1:04d}", "mda", f"soak-{n + 1:04d}", active=False)
        self.accounts.append(self.added)

    def mailbox(self, user):
        root = os.path.join(self.lab.mail_dir, user)
        for sub in ("", "new", "cur", "tmp"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
            os.chown(os.path.join(root, sub), self.owner.st_uid, self.owner.st_gid)
        return root

    def put(self, acct: SoakAccount):
        """Writes one new message into the account's mailbox, as an MTA would: into tmp/, then renamed into new/."""
        with self.lock:
            self.seq += 1
            seq = self.seq
        data = self.factory.small(acct.user, seq)
        mid = message_id(data)
        root = os.path.join(self.lab.mail_dir, acct.user)
        wire_size = len(data) + data.count(b"\n")
        name = f"{int(time.time())}.M{seq}P{os.getpid()}.soak,S={len(data)},W={wire_size}"
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.chown(tmp, self.owner.st_uid, self.owner.st_gid)
        os.rename(tmp, os.path.join(root, "new", name))
        with self.lock:
            self.injected.setdefault(acct.name, []).append(mid)
        return mid

    def account_lines(self, a: SoakAccount):
        lines = ["[[account]]", f'name = "{a.name}"', f'user = "{a.user}"']
        if a.kind == "badpass":
            lines.append(f'password = "wrong-{a.user}"')
        else:
            lines.append(f'password = "{self.lab.password(a.user)}"')
        if a.kind.startswith("stall-"):
            lines += [f"port = {self.stalled[a.kind].port}", f'timeout = "{SOAK_STALL_TIMEOUT}s"']
        if a.kind == "maildir":
            lines.append(f'maildir = "{os.path.join(self.deliver_dir, a.name, "Maildir")}"')
        elif a.kind == "quota":
            lines += [f'lmtp = "{HOST}:{self.lab.lmtp_port}"', f'recipient = "{SOAK_QUOTA_USER}"']
        else:
            out = os.path.join(self.deliver_dir, a.name)
            lines.append(f"mda = \"/bin/sh -c 'cat > \\\"$(mktemp {out}/m.XXXXXX)\\\"'\"")
        return lines + [""]

    def write_config(self, name, accounts):
        lines = [f"max_concurrent_polls = {self.args.soak_concurrency}", f'shutdown_grace = "{SOAK_GRACE_S}s"', "",
                 "[defaults]", f'host = "{HOST}"', f"port = {self.lab.pop3_port}", 'tls = "none"',
                 f'auth = "{self.lab.popfetch_auth}"', "keep = false", f'interval = "{self.interval}s"', ""]
        for a in accounts:
            lines += self.account_lines(a)
        path = os.path.join(self.dir, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines))
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)  # the daemon never reads half a file
        return path

    @property
    def config(self):
        return os.path.join(self.dir, "popfetch.toml")

    def popfetch(self, *command, config=None):
        return [self.lab.popfetch, "--config", config or self.config, "--state",
                os.path.join(self.dir, "state", "state.sqlite"), *command]

    def setup(self):
        self.plan()
        t = time.monotonic()
        for a in self.accounts:
            self.mailbox(a.user)
            if a.kind in ("mda", "maildir"):
                os.makedirs(os.path.join(self.deliver_dir, a.name), exist_ok=True)
            if not a.kind.startswith("stall-"):
                for _ in range(2):
                    self.put(a)
        self.mailbox(SOAK_QUOTA_USER)
        self.write_config("popfetch.toml", [a for a in self.accounts if a.active])
        p = subprocess.run(self.popfetch("config", "check"), capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench: popfetch config check refused the soak's config: {p.stderr.strip()[-500:]}")
        counts = {}
        for a in self.accounts:
            counts[a.kind] = counts.get(a.kind, 0) + 1
        info = {"type": "soak-meta", "minutes": self.args.soak, "accounts": len(self.accounts) - 1,
                "interval_s": self.interval, "rate_per_s": self.args.soak_rate,
                "max_concurrent_polls": self.args.soak_concurrency, "kinds": counts,
                "removed_at_reload": self.removed.name, "added_at_reload": self.added.name,
                "stalled_ports": {k: s.port for k, s in self.stalled.items()}}
        self.record(info)
        print(f"   {len(self.accounts) - 1} accounts ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}; "
              f"{self.added.name} only after the first reload), interval {self.interval} s, "
              f"{sum(len(v) for v in self.injected.values())} messages to start with "
              f"({time.monotonic() - t:.1f} s)", flush=True)

    # --- the run ---

    def inject(self, stop: threading.Event, hup_at: float, started: float):
        """Puts messages into random healthy mailboxes at --soak-rate per second until `stop`. The account to be
        removed gets nothing in the last 3 intervals before the reload (so all of its mail is fetched before it
        goes); the added one gets mail once it is in the config."""
        rng = random.Random(23)
        period = 1.0 / self.args.soak_rate
        nxt = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now < nxt:
                stop.wait(nxt - now)
                continue
            nxt += period
            targets = [a for a in self.accounts if a.healthy and a.active]
            if now - started > hup_at - 3 * self.interval:
                targets = [a for a in targets if a is not self.removed]
            self.put(rng.choice(targets))

    def sample(self, pid, t0):
        st = proc_status(pid)
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            cpu = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)  # utime + stime
        except (OSError, IndexError, ValueError):
            fds = cpu = None
        rec = {"type": "sample", "t": round(time.monotonic() - t0, 1), "vmrss_kb": (st or {}).get("VmRSS"),
               "vmhwm_kb": (st or {}).get("VmHWM"), "threads": (st or {}).get("Threads"), "fds": fds, "cpu_s": cpu,
               "stalled_open": sum(s.open_connections() for s in self.stalled.values()),
               "injected": self.seq}
        self.samples.append(rec)
        self.record(rec)
        return rec

    def run_daemon(self):
        err_path = os.path.join(self.dir, "daemon.err")
        hups = [float(t) for t in range(SOAK_HUP_EVERY_S, int(self.duration), SOAK_HUP_EVERY_S)]
        if not hups:
            hups = [self.duration / 2]
        with open(err_path, "wb") as err:
            d = subprocess.Popen(self.popfetch("daemon", "--log-level", "notice"), cwd=self.dir,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True)
        Children.add(d.pid)
        t0 = time.monotonic()
        self.wall_start = time.time()
        stop = threading.Event()
        injector = threading.Thread(target=self.inject, args=(stop, hups[0], t0), daemon=True)
        injector.start()
        next_sample, minute, removal_mail_at = float(SOAK_SAMPLE_S), 1, None  # the first once it has started
        try:
            while True:
                now = time.monotonic() - t0
                if d.poll() is not None:
                    self.events.append({"type": "event", "t": round(now, 1), "what": f"daemon exited {d.returncode}"})
                    break
                if now >= next_sample:
                    s = self.sample(d.pid, t0)
                    next_sample += SOAK_SAMPLE_S
                    if now >= minute * 60 - 0.01:
                        print(f"   {now / 60:4.1f} min: VmRSS {(s['vmrss_kb'] or 0) / 1024:.1f} MB, {s['fds']} fds, "
                              f"{s['threads']} threads, {s['injected']} messages written", flush=True)
                        minute += 1
                if hups and now >= hups[0]:
                    first = len([e for e in self.events if e.get("what") == "SIGHUP"]) == 0
                    if first:
                        # The real change: drop one healthy account, add one with mail waiting.
                        self.removed.active, self.added.active = False, True
                        self.write_config("popfetch.toml", [a for a in self.accounts if a.active])
                    d.send_signal(signal.SIGHUP)
                    ev = {"type": "event", "t": round(now, 1), "what": "SIGHUP",
                          "config_changed": first, "wall": time.time()}
                    self.events.append(ev)
                    self.record(ev)
                    if first:  # 2 intervals later, mail for the removed account must stay on the server
                        removal_mail_at = now + 2 * self.interval
                    hups.pop(0)
                    continue
                if removal_mail_at is not None and now >= removal_mail_at:
                    self.after_removal = [self.put(self.removed) for _ in range(3)]
                    removal_mail_at = None
                if now >= self.duration:
                    break
                time.sleep(min(0.5, max(0.05, next_sample - now)))
        finally:
            stop.set()
            injector.join(timeout=10)
        self.wall_stop = time.time()
        # SIGTERM: exit 0 within shutdown_grace + a few seconds.
        stopped = None
        if d.poll() is None:
            t = time.monotonic()
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(timeout=SOAK_GRACE_S + 5)
                stopped = time.monotonic() - t
            except subprocess.TimeoutExpired:
                os.killpg(d.pid, signal.SIGKILL)
                d.wait()
        Children.remove(d.pid)
        self.record({"type": "event", "what": "SIGTERM", "exit_status": d.returncode,
                     "exit_s": round(stopped, 2) if stopped is not None else None})
        self.check("clean exit on SIGTERM", stopped is not None and d.returncode == 0,
                   f"exit status {d.returncode} after {stopped:.2f} s (limit {SOAK_GRACE_S + 5} s)" if stopped is not None
                   else f"did not exit within {SOAK_GRACE_S + 5} s (killed; status {d.returncode})")
        log = open(err_path, encoding="utf-8", errors="replace").read()
        shutil.copy(err_path, os.path.join(self.lab.work, "results-soak-daemon.log"))  # kept by scripts/bench
        reloads = log.count("SIGHUP: configuration reloaded")
        sent = len([e for e in self.events if e.get("what") == "SIGHUP"])
        added = f"now polling {self.added.name}" in log
        self.removal_logged = f"account {self.removed.name} removed or disabled" in log
        self.check("SIGHUP reloads", reloads == sent and added,
                   f"{reloads}/{sent} reloads logged; {self.added.name} added: {'yes' if added else 'NO'} (whether "
                   f"{self.removed.name} stopped is checked in the state database below)")
        crit = [line for line in log.splitlines() if " critical " in line or "fatal" in line.lower()]
        self.check("no crash lines in the daemon's log", not crit, crit[0][:200] if crit else
                   f"{len(log.splitlines())} lines at notice level and above")

    # --- afterwards ---

    def final_poll(self):
        healthy = [a for a in self.accounts if a.healthy and a.active]
        cfg = self.write_config("healthy.toml", healthy)
        before = self.delivered_counts()
        p = subprocess.run(self.popfetch("poll", "-q", config=cfg), capture_output=True, text=True, cwd=self.dir)
        after = self.delivered_counts()
        picked = sum(after.values()) - sum(before.values())
        self.record({"type": "final-poll", "rc": p.returncode, "delivered": picked})
        self.check("final `popfetch poll` of the healthy accounts", p.returncode == 0,
                   f"exit {p.returncode}, {picked} messages still pending at the end were delivered by it"
                   + (f" | {' '.join(p.stderr.split())[-300:]}" if p.returncode else ""))
        return cfg

    def delivered_counts(self):
        return {a.name: len(self.delivered_files(a)) for a in self.accounts if a.healthy}

    def delivered_files(self, a: SoakAccount):
        d = os.path.join(self.deliver_dir, a.name)
        if a.kind == "maildir":
            d = os.path.join(d, "Maildir", "new")
        try:
            return [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def on_server(self, user):
        root = os.path.join(self.lab.mail_dir, user)
        return sum(len(os.listdir(os.path.join(root, sub))) for sub in ("new", "cur"))

    def check_mail(self):
        missing = dupes = unknown = left = 0
        worst = []
        for a in self.accounts:
            if not a.healthy:
                continue
            want = set(self.injected.get(a.name, [])) - set(self.after_removal if a is self.removed else [])
            got: Dict[str, int] = {}
            for path in self.delivered_files(a):
                mid = message_id(open(path, "rb").read())
                got[mid] = got.get(mid, 0) + 1
            m = len(want - set(got))
            dd = sum(n - 1 for n in got.values() if n > 1)
            u = len(set(got) - want)
            still = self.on_server(a.user) - (len(self.after_removal) if a is self.removed else 0)
            missing, dupes, unknown, left = missing + m, dupes + dd, unknown + u, left + still
            self.record({"type": "mailbox", "account": a.name, "kind": self.label(a), "written": sorted(want),
                         "delivered": sum(got.values()), "missing": m, "duplicated": dd, "unknown": u,
                         "left_on_server": still})
            if m or dd or u or still:
                worst.append(f"{a.name}: {m} missing, {dd} duplicated, {u} unknown, {still} on the server")
        total = sum(len(v) for k, v in self.injected.items()
                    if next(a for a in self.accounts if a.name == k).healthy) - len(self.after_removal)
        self.check("healthy mail delivered exactly once", not (missing or dupes or unknown),
                   f"{total} messages written, {missing} missing, {dupes} duplicated, {unknown} unknown"
                   + (f" ({'; '.join(worst[:5])})" if worst else ""))
        self.check("nothing left on the server (healthy accounts)", left == 0, f"{left} messages left")
        kept = self.on_server(self.removed.user)
        self.check("mail of the removed account stays on the server", kept == len(self.after_removal),
                   f"{kept} on the server, {len(self.after_removal)} written after it was removed")
        failing = [a for a in self.accounts if not a.healthy]
        untouched = [a.name for a in failing if self.on_server(a.user) != len(self.injected.get(a.name, []))]
        self.check("failing accounts' mail left on the server", not untouched,
                   f"{len(failing)} accounts checked" + (f"; changed: {', '.join(untouched[:5])}" if untouched else ""))
        return {"written": total, "missing": missing, "duplicated": dupes, "unknown": unknown, "left": left}

    def check_status(self, healthy_cfg):
        p = subprocess.run(self.popfetch("status", "--json"), capture_output=True, text=True, cwd=self.dir)
        plain = subprocess.run(self.popfetch("status"), capture_output=True, text=True, cwd=self.dir)
        quiet = subprocess.run(self.popfetch("status", config=healthy_cfg), capture_output=True, text=True,
                               cwd=self.dir)
        self.check("`popfetch status` exit status", plain.returncode == 1 and quiet.returncode == 0,
                   f"{plain.returncode} with the failing accounts (expected 1), {quiet.returncode} for the healthy "
                   "ones alone (expected 0)")
        try:
            rows = {r["account"]: r for r in json.loads(p.stdout)["accounts"]}
        except (ValueError, KeyError) as e:
            self.check("`popfetch status --json`", False, f"exit {p.returncode}, unreadable: {e}")
            return {}
        wrong, seen = [], {}
        for a in self.accounts:
            r = rows.get(a.name)
            if not a.active:
                seen.setdefault(self.label(a), {}).setdefault("not in the final config" if r is None else
                                                               f"still shown: {r.get('outcome')}", 1)
                continue
            outcome, pattern = a.expected
            got = (r or {}).get("outcome")
            error = (r or {}).get("error") or ""
            error = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", re.sub(r"soak-\d+", "USER", error))
            shown = f"{got}" + (f", {r['failed']} marked failed" if (r or {}).get("failed") else "") \
                + (f": {error[:70]}" if error else "")
            if r is None:
                shown = "not shown" + (" (not in the config any more)" if not a.active else "")
            seen.setdefault(self.label(a), {}).setdefault(shown, 0)
            seen[self.label(a)][shown] += 1
            bad = r is None or not re.fullmatch(outcome, got or "")
            if pattern and not re.search(pattern, error, re.I):
                bad = True
            if a.kind == "quota" and (r or {}).get("failed", 0) < 1:
                bad = True
            if bad:
                wrong.append(f"{a.name} ({a.kind}): {got} {error[:80]!r}")
        self.record({"type": "status", "outcomes": seen})
        self.check("`popfetch status` outcome per account", not wrong,
                   f"{len(rows)} accounts shown" + (f"; unexpected: {'; '.join(wrong[:5])}" if wrong else ""))
        return seen

    def check_polls(self):
        import sqlite3
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'state', 'state.sqlite')}?mode=ro", uri=True)
        rows = db.execute("SELECT account_name, started, finished, outcome, error FROM polls "
                          "WHERE started >= ? AND started <= ? ORDER BY account_name, started",
                          (self.wall_start - 1, self.wall_stop)).fetchall()
        db.close()
        by: Dict[str, list] = {}
        for name, started, finished, outcome, error in rows:
            by.setdefault(name, []).append((started, finished, outcome, error))
        overlaps, missed, in_use, gaps = 0, [], 0, []
        per_kind: Dict[str, List[int]] = {}
        counts_off = []
        for a in self.accounts:
            polls = by.get(a.name, [])
            per_kind.setdefault(self.label(a), []).append(len(polls))
            in_use += sum(1 for p in polls if p[3] and "IN-USE" in p[3])
            for prev, cur in zip(polls, polls[1:]):
                if prev[1] is None or cur[0] < prev[1]:
                    overlaps += 1
                    continue
                gap = cur[0] - prev[1]
                if a.healthy:
                    gaps.append(gap)
                    if gap > 2 * self.interval + 2:
                        missed.append(f"{a.name} {gap:.1f} s")
            if a.healthy and a not in (self.removed, self.added):
                span = self.wall_stop - self.wall_start
                expect = span / (self.interval * 1.05)
                if not (0.8 * expect - 1 <= len(polls) <= 1.1 * expect + 2):
                    counts_off.append(f"{a.name}: {len(polls)}")
        span = self.wall_stop - self.wall_start
        expect = span / (self.interval * 1.05)
        healthy_counts = per_kind.get("mda", []) + per_kind.get("maildir", [])
        summary = {k: {"min": min(v), "median": statistics.median(v), "max": max(v)} for k, v in per_kind.items() if v}
        gaps.sort()
        gap_info = ({"median": round(statistics.median(gaps), 2), "p99": round(gaps[int(len(gaps) * 0.99)], 2),
                     "max": round(gaps[-1], 2)} if gaps else {})
        self.polls_per_s = round(len(rows) / span, 1) if span else None
        self.record({"type": "polls", "polls_per_s": self.polls_per_s, "per_kind": summary, "gaps_s": gap_info, "overlaps": overlaps,
                     "missed": len(missed), "in_use": in_use, "expected_per_healthy": round(expect, 1)})
        hup = next((e["wall"] for e in self.events if e.get("what") == "SIGHUP"), self.wall_stop)
        late = [p for p in by.get(self.removed.name, []) if p[0] > hup]
        self.check(f"the removed account ({self.removed.name}) is no longer polled", len(late) <= 1,
                   f"{len(late)} polls started after the reload (one may have been waiting for a slot); the daemon "
                   + ("logged that it stopped" if self.removal_logged else "did not log that it stopped (it logs "
                      "that only when the account was asleep, not waiting for a slot or polling, at the reload)")
                   + (f"; late polls began {', '.join(f'{p[0] - hup:.1f} s' for p in late)} after it" if late else ""))
        self.check("no overlapping polls of one account", overlaps == 0 and in_use == 0,
                   f"{overlaps} overlaps in the state database, {in_use} polls refused [IN-USE]")
        self.check("no missed polls (gap after a healthy poll ≤ 2 × interval + 2 s)", not missed,
                   f"gaps between polls: median {gap_info.get('median')} s, p99 {gap_info.get('p99')} s, max "
                   f"{gap_info.get('max')} s; {self.polls_per_s} polls/s over all accounts"
                   + (f"; {len(missed)} late: {', '.join(missed[:5])}" if missed else ""))
        self.check("polls per healthy account", healthy_counts and not counts_off,
                   f"{min(healthy_counts)}–{max(healthy_counts)} (median {statistics.median(healthy_counts)}), "
                   f"expected ~{expect:.0f} ({span:.0f} s / ({self.interval} s + ≤10 % jitter))"
                   + (f"; {len(counts_off)} outside −20 %/+10 %: {', '.join(counts_off[:5])}" if counts_off else ""))
        return summary, gap_info

    def check_resources(self):
        s = [x for x in self.samples if x["vmrss_kb"] is not None and x["fds"] is not None]
        if len(s) < 4:
            self.check("resource samples", False, f"only {len(s)} samples")
            return
        fifth = max(1, len(s) // 5)
        early, late = s[fifth:2 * fifth], s[-fifth:]  # the first fifth is the start-up (every account polled at once)
        fd_early = statistics.median(x["fds"] for x in early)
        fd_late = statistics.median(x["fds"] for x in late)
        self.check("open descriptors do not grow", fd_late <= fd_early + 2,
                   f"median {fd_early:.0f} in the second fifth of the run, {fd_late:.0f} in the last "
                   f"(min {min(x['fds'] for x in s)}, max {max(x['fds'] for x in s)})")
        rss_early = statistics.median(x["vmrss_kb"] for x in early)
        rss_late = statistics.median(x["vmrss_kb"] for x in late)
        self.check("memory does not grow", rss_late <= rss_early * 1.25 + 8 * 1024,
                   f"median VmRSS {rss_early / 1024:.1f} MB in the second fifth, {rss_late / 1024:.1f} MB in the last "
                   "(allowed: +25 % + 8 MB)")

    def report(self, mail, outcomes, polls, gaps):
        s = [x for x in self.samples if x["vmrss_kb"] is not None]
        mb = lambda kb: f"{kb / 1024:.1f}"  # noqa: E731
        lines = [f"popfetch soak: {self.args.soak} min, {len(self.accounts) - 1} accounts, interval {self.interval} s, "
                 f"{self.args.soak_rate} new messages/s, max_concurrent_polls {self.args.soak_concurrency}", ""]
        if s:
            curve = [x for x in s if x is s[0] or x["t"] % 60 < SOAK_SAMPLE_S or x is s[-1]]
            lines += ["| t (min) | " + " | ".join(f"{x['t'] / 60:.1f}" for x in curve) + " |",
                      "|---|" + "---|" * len(curve),
                      "| VmRSS MB | " + " | ".join(mb(x["vmrss_kb"]) for x in curve) + " |",
                      "| open fds | " + " | ".join(str(x["fds"]) for x in curve) + " |",
                      "| threads | " + " | ".join(str(x["threads"]) for x in curve) + " |", "",
                      f"VmRSS start {mb(s[0]['vmrss_kb'])} MB, max {mb(max(x['vmrss_kb'] for x in s))} MB, end "
                      f"{mb(s[-1]['vmrss_kb'])} MB (VmHWM {mb(s[-1]['vmhwm_kb'])} MB); fds start {s[0]['fds']}, max "
                      f"{max(x['fds'] for x in s)}, end {s[-1]['fds']}. Daemon CPU (user+sys): "
                      f"{s[-1].get('cpu_s')} s over {s[-1]['t']:.0f} s.", ""]
        lines += ["| kind | accounts | polls (min / median / max) | status outcome |", "|---|---|---|---|"]
        for kind, v in polls.items():
            acc = [a for a in self.accounts if self.label(a) == kind]
            out = "; ".join(f"{k} ×{n}" for k, n in outcomes.get(kind, {}).items())
            lines.append(f"| {kind} | {len(acc)} | {v['min']} / {v['median']:g} / {v['max']} | {out} |")
        lines += ["", f"Mail: {mail.get('written')} messages written to healthy mailboxes, {mail.get('missing')} "
                  f"missing, {mail.get('duplicated')} duplicated, {mail.get('left')} left on the server. Gaps between "
                  f"polls of a healthy account: median {gaps.get('median')} s, p99 {gaps.get('p99')} s, max "
                  f"{gaps.get('max')} s.", ""]
        lines += [f"- {'ok' if c['ok'] else '**FAILED**'} {c['check']}: {c['detail']}" for c in self.checks]
        return "\n".join(lines)

    def run(self):
        print(f"== soak: {self.args.soak} min, {self.args.soak_accounts} accounts", flush=True)
        try:
            self.setup()
            self.run_daemon()
        finally:
            for srv in self.stalled.values():
                srv.stop()
        healthy_cfg = self.final_poll()
        mail = self.check_mail()
        outcomes = self.check_status(healthy_cfg)
        polls, gaps = self.check_polls()
        self.check_resources()
        text = self.report(mail, outcomes, polls, gaps)
        self.record({"type": "report", "markdown": text})
        return text, all(c["ok"] for c in self.checks)


def soak_main(lab: Lab, args, out_path):
    started = time.monotonic()
    info = environment(lab)
    with open(out_path, "w") as out:
        out.write(json.dumps({"type": "meta", "env": info, "popfetch_binary": binary_identity(lab.popfetch)}) + "\n")
        print(f"popfetch soak: {info}\npopfetch binary: {binary_identity(lab.popfetch)}", flush=True)
        try:
            text, ok = Soak(lab, args, out).run()
        finally:
            Children.stop_all()
    print()
    print(text)
    print(f"\nsamples and results: {out_path}   ({time.monotonic() - started:.0f} s)")
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------------------------

def build_rawpop(lab: Lab):
    src = os.path.join(HERE, "bench-rawpop.c")
    exe = os.path.join(lab.work, "bench-rawpop")
    if shutil.which("gcc") is None:
        return "gcc is not installed: no limit and floor columns"
    p = subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, src, "-lssl", "-lcrypto"], capture_output=True, text=True)
    if p.returncode == 0:
        lab.rawpop, lab.rawpop_tls = exe, True
        return None
    p = subprocess.run(["gcc", "-O2", "-Wall", "-DNO_TLS", "-o", exe, src], capture_output=True, text=True)
    if p.returncode != 0:
        return f"bench-rawpop.c did not compile: no limit and floor columns ({p.stderr.strip()[:200]})"
    lab.rawpop = exe
    return "bench-rawpop built without TLS (install libssl-dev): no limit and floor in S2"


def cpu_busy(window=0.5):
    """The share of all cores' time spent busy (not idle or waiting for I/O) over `window` seconds."""
    def sample():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]
    total0, idle0 = sample()
    time.sleep(window)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(busy_at_most=0.15, most_s=30.0):
    """Waits until the machine is quiet before a timed run: the previous run's leftovers (Dovecot ending 1,000
    sessions after S7, a daemon's exit) otherwise land in the next run's time. Two half-second windows in a row
    with at most `busy_at_most` of the cores busy, or `most_s` seconds; returns the last window's share."""
    deadline = time.monotonic() + most_s
    quiet_windows, busy = 0, 1.0
    while time.monotonic() < deadline:
        busy = cpu_busy()
        quiet_windows = quiet_windows + 1 if busy <= busy_at_most else 0
        if quiet_windows >= 2:
            break
    return round(busy, 3)


def environment(lab):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
            f"kernel {platform.release()}, Dovecot {dovecot.split()[0] if dovecot else '?'}, load before "
            f"{open('/proc/loadavg').read().split()[0]}")


def binary_identity(path):
    """Which popfetch build ran: path, modification time and the start of its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    mtime = datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc)
    return f"{path} ({mtime:%Y-%m-%d %H:%M} UTC, sha256 {digest.hexdigest()[:12]})"


def main():
    ap = argparse.ArgumentParser(description="driver of scripts/bench (run that instead)")
    ap.add_argument("--work", required=True, help="the work dir prepared by scripts/bench")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--reps", type=int, default=None, help="timed runs per tool and scenario (default 3, quick 1)")
    ap.add_argument("--quick", action="store_true", help="smaller mailboxes, 1 repetition")
    ap.add_argument("--extras", action="store_true", help="also time popfetch-only deliveries")
    ap.add_argument("--out", help="raw results, JSON lines (default WORK/results.jsonl)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a run is stopped (default 600)")
    ap.add_argument("--popfetch-auth", default="user",
                    help='popfetch\'s `auth` (default "user": USER/PASS, as the peers log in here; popfetch\'s own '
                         'default "auto" picks SCRAM-SHA-256, which costs Dovecot a key derivation per login)')
    ap.add_argument("--soak", type=float, metavar="MINUTES", help="run the soak instead of the benchmark")
    ap.add_argument("--soak-accounts", type=int, default=1000, help="accounts in the soak (default 1000)")
    ap.add_argument("--soak-interval", type=int, default=None,
                    help="the accounts' interval in s (default 5, or accounts / 50 above 250 accounts: 20 s for 1,000;"
                         " on 2 cores the daemon and Dovecot manage about 100 polls/s, so 1,000 accounts at 5 s "
                         "cannot all be polled on time)")
    ap.add_argument("--soak-rate", type=float, default=3, help="new messages per second (default 3)")
    ap.add_argument("--soak-concurrency", type=int, default=8, help="max_concurrent_polls (default 8)")
    args = ap.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)  # from scripts/bench's trap
    signal.signal(signal.SIGINT, stop)   # Ctrl-C (ignored by default in a background job)

    lab = Lab.load(args.work, args.timeout, args.popfetch_auth)
    Children.path = os.path.join(lab.work, "driver.pids")
    if args.soak:
        if args.soak_accounts < 20:
            sys.exit("bench: --soak-accounts must be at least 20")
        args.soak_interval = args.soak_interval or max(5, math.ceil(args.soak_accounts / 50))
        out = args.out or "soak.jsonl"
        return soak_main(lab, args, os.path.join(os.environ.get("BENCH_CALLER_DIR", "."), out) if args.out
                         else os.path.join(lab.work, "results-" + out))
    all_scns = scenarios(args.quick)
    wanted = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    for s in wanted:
        if s not in ALL_SCENARIOS:
            sys.exit(f"bench: unknown scenario {s} (known: {' '.join(ALL_SCENARIOS)})")
    for t in names:
        if t not in TOOLS:
            sys.exit(f"bench: unknown tool {t} (known: {' '.join(TOOLS)})")

    notes = []
    problem = build_rawpop(lab) if {"limit", "floor"} & set(names) else None
    if problem:
        notes.append(problem)
    tools = []
    for name in TOOLS:  # table order: limit, floor, peers, popfetch
        if name not in names:
            continue
        if TOOLS[name].installed(lab):
            tools.append(name)
        elif not TOOLS[name].reference:
            notes.append(f"{name} is not installed ({TOOLS[name].program or lab.popfetch}): skipped")
    for n in notes:
        print(f"note: {n}", flush=True)

    if args.out:
        out_path = os.path.join(os.environ.get("BENCH_CALLER_DIR", "."), args.out)
    else:
        out_path = os.path.join(lab.work, "results.jsonl")
    info = environment(lab)
    started = time.monotonic()
    with open(out_path, "w") as out:
        bench = Bench(lab, args, tools, out)
        bench.notes += notes
        binary = binary_identity(lab.popfetch) if "popfetch" in tools else None
        bench.record({"type": "meta", "env": info, "quick": args.quick, "reps": args.reps, "tools": tools,
                      "versions": {t: tool_version(lab, t) for t in tools}, "popfetch_binary": binary})
        print(f"popfetch benchmark: {info}; {args.reps} repetition(s)", flush=True)
        if binary:
            print(f"popfetch binary: {binary}", flush=True)
            bench.notes.append(f"popfetch binary: {binary}.")
        print("versions: " + "; ".join(f"{t}: {tool_version(lab, t)}" for t in tools), flush=True)
        try:
            for key in wanted:
                if key == "VER":
                    bench.versions()
                    continue
                scn = all_scns[key]
                bench.run_scenario(scn)
                if key == "S4" and "popfetch" in tools:
                    bench.daemon_quiet_cpu(scn, server_uidls(lab, scn.users))
                    s = summarize([r for r in bench.records if r.get("scenario") == "S4" and r["tool"] == "popfetch"])
                    if s:
                        bench.notes.append(f"S4: popfetch's own CPU for the poll that finds nothing: "
                                           f"{s['cpu']:.3f} s (user+sys), wall {s['wall']:.3f} s.")
                if key == "S7" and "popfetch" in tools:
                    bench.daemon_rss(scn)
            if args.extras and "popfetch" in tools:
                if lab.mta_port is None:
                    bench.notes.append("--extras: no Postfix instance was started")
                else:
                    bench.extras(all_scns["S1"])
        finally:
            Children.stop_all()
        bench.notes += closing_notes(lab, bench.records, tools)
        table = report(bench.records, tools, [(k, all_scns[k].title if k != "VER" else "--version")
                                              for k in wanted], info)
        text = "\n".join([table, extras_report(bench.records), ""] + [f"- {n}" for n in bench.notes]
                         + failures(bench.records))
        out.write(json.dumps({"type": "report", "markdown": text}) + "\n")
    print()
    print(text)
    print(f"\nraw results: {out_path}   ({time.monotonic() - started:.0f} s)")
    broken = any(r.get("type") == "check" and not r.get("ok") for r in bench.records)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
