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
    rawpop: Optional[str] = None
    rawpop_tls: bool = False

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
                   popfetch_auth=popfetch_auth)

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
    return {
        "S1": Scenario("S1", f"{n1} msgs, plain POP3, MDA sh -c 'cat >/dev/null'", [main]),
        "S2": Scenario("S2", f"{n1} msgs, POP3S (implicit TLS, verified)", [main], tls=True),
        "S3": Scenario("S3", f"{n3} msgs, SMTP to smtp-sink", [Mailbox("s3", n3)], smtp=True),
        "S4": Scenario("S4", f"nothing new, {n4} msgs already seen", [Mailbox("s4", n4, "small")], nothing_new=True),
        "S5": Scenario("S5", f"{n5} accounts x 5 msgs, one invocation",
                       [Mailbox(f"s5-{i:03d}", 5) for i in range(1, n5 + 1)]),
        "S6": Scenario("S6", f"one {n6} MB message", [Mailbox("s6", n6, "big")]),
        "S7": Scenario("S7", f"{n7} accounts x 2 msgs, one invocation",
                       [Mailbox(f"s7-{i:04d}", 2, "small") for i in range(1, n7 + 1)], peer_timeout=240,
                       peer_reps=1),
    }


ALL_SCENARIOS = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "VER"]


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
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
                try:
                    d.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(d.pid, signal.SIGKILL)
                    d.wait()
            Children.remove(d.pid)
        rec["exit_status"] = d.returncode
        self.done_with(rec, job.dir)
        self.record(rec)
        print(f"   popfetch daemon, {len(scn.boxes)} accounts idle: VmRSS {(rec.get('vmrss_kb') or 0) / 1024:.1f} MB "
              f"(peak {(rec.get('vmhwm_kb') or 0) / 1024:.1f} MB), settled after {rec.get('settle_s')} s, "
              f"{rec.get('sessions_at_start')} sessions at start" + ("" if rec["ok"] else f"  FAILED: {rec['error']}")
              + (f"  (it logged: {rec['stderr']})" if rec.get("stderr") else ""), flush=True)

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
        for rep in range(1, self.args.reps + 1):
            for label, delivery in variants.items():
                job = Job(self.lab, scn, self.fresh_dir(f"extra-{rep}"))
                if delivery is None:
                    delivery = [f'maildir = "{job.dir}/Maildir"']
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
    return notes


def failures(records):
    out = []
    for r in records:
        if r.get("type") in ("run", "extra", "daemon") and not r.get("ok"):
            what = r.get("variant") or f"rep {r.get('rep', 1)}"
            out.append(f"- FAILED {r['scenario']} {r['tool']} {what}: {r.get('error')}")
    return out


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
    args = ap.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)  # from scripts/bench's trap
    signal.signal(signal.SIGINT, stop)   # Ctrl-C (ignored by default in a background job)

    lab = Lab.load(args.work, args.timeout, args.popfetch_auth)
    Children.path = os.path.join(lab.work, "driver.pids")
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
