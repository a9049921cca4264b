#!/usr/bin/env python3
"""Steady mixed load through fedgate to the real Keystone, checking every
identity Keystone answers with (bench/soak.sh, bench/faults.sh). Standard
library only.

Kinds of request, each at its own fixed rate (open loop: a slow answer does
not slow the schedule; latency counts from the scheduled time):
  none           GET /v3 (route auth = "none")
  bearer_jwt     POST .../protocols/openid/auth, RFC 9068 JWT access token
                 (checked locally with the JWKS), re-minted every 10 min
  bearer_opaque  same path, opaque token (introspection), a fresh token
                 every --opaque-uses requests (30), so introspection and cache
                 inserts go on; when no fresh token is left (the IdP is down),
                 the last one is used again
  x509           POST .../protocols/mapped/auth with a VOMS proxy
                 (voms-proxy-fake; three users, one behind an intermediate CA)
  websso         GET the WebSSO URL with a session cookie (one login per user
                 at start, again whenever the session is gone)
Every request opens a new TLS connection, as the openstack CLI does.

Identity check: a 201 from a federated login carries Keystone's user name,
identity provider, protocol and groups; each must be what the credential
that was sent gives (the sub of the token's user, "dn:" + the proxy's user
DN). The WebSSO answer carries a token id, which is validated at Keystone
directly (admin token) for the same check. Any mismatch is a
"wrong_identity": the number that must stay 0.

Output: --csv (one row per kind per sample), --events (one JSON line per
request, for the fault runs), --summary (JSON at the end). SIGUSR1: the
IdP was restarted (its tokens are in memory: forget them and mint new ones;
a 401 for a token minted before is counted as "stale", not as an error).
SIGTERM/SIGINT: stop and write the summary.
"""
import argparse
import concurrent.futures
import csv
import http.client
import http.cookiejar
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ORIGIN = "https://horizon.test/dashboard/auth/websso/"
OPENID = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth"
MAPPED = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth"
WEBSSO = "/v3/auth/OS-FEDERATION/websso/openid?origin=" + urllib.parse.quote(ORIGIN, safe="")
# The harness IdP's users (tests/harness/idp/accounts.js) that Keystone's
# openid mapping accepts (vm_operator of fedcloud.egi.eu): their subjects.
SUBS = {"alice": "a11ce0000000000000000000000000001@egi.test", "dave": "da4e0000000000000000000000000004@egi.test"}
# VOMS proxies of tests/fixtures/pki/mkpki.sh (FQANs of fedcloud.egi.eu) and their users.
PROXIES = {"rfc_voms.pem": "alice.pem", "intermediate_voms.pem": "dave.pem", "sha1_user_voms.pem": "erin.pem"}
KINDS = ("none", "bearer_jwt", "bearer_opaque", "x509", "websso")


def now():
    return time.time()


def text(body, n=300):
    """An answer's text for the record: HTML pages without their markup and style."""
    body = re.sub(r"(?s)<(style|script)[^>]*>.*?</\1>", " ", body)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()[:n]


def mild_encode(s):
    """gridsite's GRSThttpUrlMildencode, which makes GRST_CONN_AURI_0 (Keystone's
    user name under the mapped protocol) from the DN: A-Za-z0-9 . = - _ @ /
    kept, a space written as +, any other byte as %HH."""
    keep = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.=-_@/")
    return "".join(chr(b) if b in keep else "+" if b == 0x20 else f"%{b:02X}" for b in s.encode())


def insecure_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Token:
    def __init__(self, value, user, minted):
        self.value, self.user, self.minted, self.uses = value, user, minted, 0


class Load:
    def __init__(self, a):
        self.a = a
        u = urllib.parse.urlsplit(a.gate)
        self.host, self.port = u.hostname, u.port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.idp_epoch = 0.0
        self.samples = {k: [] for k in KINDS}  # since the last sample: (latency ms, class)
        self.totals = {k: {} for k in KINDS}   # class -> count
        self.wrong = []                         # details of every wrong identity
        self.events = open(a.events, "a", buffering=1) if a.events else None
        self.jwt = {}                           # user -> Token
        self.opaque = {}                        # user -> Token in use
        self.pool = {u: [] for u in SUBS}       # fresh opaque tokens, never used
        self.sessions = {}                      # user -> cookie value
        self.session_lock = {u: threading.Lock() for u in SUBS}
        self.relogins = 0
        self.admin_token = None
        self.seq = {k: 0 for k in KINDS}
        fed = json.load(open(a.federation))
        self.group = fed["vo"]["fedcloud.egi.eu"]["group_id"]
        self.x509 = []
        for proxy, eec in PROXIES.items():
            ctx = insecure_ctx()
            # Security level 0: erin's certificate is signed with SHA-1, as some IGTF CAs still do.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            path = os.path.join(a.pki, "creds", proxy)
            ctx.load_cert_chain(path, path)
            subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "compat", "-in",
                                      os.path.join(a.pki, "users", eec)], capture_output=True, text=True,
                                     check=True).stdout.strip().removeprefix("subject=").strip()
            self.x509.append((proxy, ctx, "dn:" + mild_encode(subject)))
        self.plain_ctx = insecure_ctx()

    # ------------------------------------------------------------ tokens
    def mint(self, user, resource, ttl=900):
        data = urllib.parse.urlencode({"grant_type": "password", "username": user, "password": f"{user}-pw",
                                       "resource": resource, "ttl": ttl}).encode()
        req = urllib.request.Request(self.a.idp + "/token", data=data)
        req.add_header("Authorization", "Basic Y2xpOmNsaS1zZWNyZXQ=")  # cli:cli-secret
        t = now()
        with urllib.request.urlopen(req, timeout=5) as r:
            return Token(json.load(r)["access_token"], user, t)

    def minter(self):
        """Keeps a JWT per user younger than 10 min and 3 fresh opaque tokens per user."""
        while not self.stop.is_set():
            try:
                for user in SUBS:
                    with self.lock:
                        old = self.jwt.get(user)
                        need_jwt = old is None or now() - old.minted > 600 or old.minted < self.idp_epoch
                        # Tokens live 900 s: one waiting in the pool, then used for
                        # --opaque-uses requests, must not expire in use.
                        self.pool[user] = [t for t in self.pool[user] if now() - t.minted < 300]
                        need_pool = len(self.pool[user]) < 3
                    if need_jwt:
                        t = self.mint(user, "urn:fedgate:jwt")
                        with self.lock:
                            self.jwt[user] = t
                    if need_pool:
                        t = self.mint(user, "urn:fedgate:opaque")
                        with self.lock:
                            self.pool[user].append(t)
            except Exception:  # the IdP is down: keep the tokens we have
                pass
            self.stop.wait(1)

    def idp_restarted(self, *_):
        with self.lock:
            self.idp_epoch = now()
            self.pool = {u: [] for u in SUBS}
            self.opaque.clear()

    def bearer_token(self, kind, user):
        with self.lock:
            if kind == "bearer_jwt":
                return self.jwt.get(user)
            cur = self.opaque.get(user)
            worn = cur is not None and (cur.uses >= self.a.opaque_uses or now() - cur.minted > 600)
            if (cur is None or worn) and self.pool[user]:
                cur = self.pool[user].pop(0)
                self.opaque[user] = cur
            if cur:
                cur.uses += 1
            return cur

    # ------------------------------------------------------------ HTTP
    def request(self, method, path, headers, ctx=None):
        c = http.client.HTTPSConnection(self.host, self.port, context=ctx or self.plain_ctx, timeout=self.a.timeout)
        try:
            c.request(method, path, headers=headers)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def keystone_admin(self):
        body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": "admin-pw"}}},
            "scope": {"system": {"all": True}}}}).encode()
        req = urllib.request.Request(self.a.keystone + "/v3/auth/tokens", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers["X-Subject-Token"]

    def keystone_user(self, token):
        """Keystone's own view of a token: its `token` object."""
        for _ in range(2):
            if not self.admin_token:
                self.admin_token = self.keystone_admin()
            req = urllib.request.Request(self.a.keystone + "/v3/auth/tokens",
                                         headers={"X-Auth-Token": self.admin_token, "X-Subject-Token": token})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.load(r)["token"]
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    self.admin_token = None
                    continue
                raise
        raise RuntimeError("admin token refused twice")

    def check_identity(self, tok, want_name, protocol):
        """None when Keystone's token is the credential's identity, else why not."""
        user = tok.get("user", {})
        fed = user.get("OS-FEDERATION", {})
        got = (user.get("name"), fed.get("identity_provider", {}).get("id"), fed.get("protocol", {}).get("id"),
               sorted(g.get("id") for g in fed.get("groups", [])))
        want = (want_name, "egi.eu", protocol, [self.group])
        return None if got == want else f"got {got} want {want}"

    # ------------------------------------------------------------ websso
    def websso_login(self, user):
        """A browser's login, browser-free (as bench/websso_logins.py): the session cookie."""
        jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=self.plain_ctx), NoRedirect)

        def go(u, data=None):
            req = urllib.request.Request(u, data=data, headers={"Accept": "text/html"})
            try:
                r = op.open(req, timeout=self.a.timeout)
                return r.status, r.headers, r.read().decode("utf-8", "replace"), u
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read().decode("utf-8", "replace"), u

        status, hdrs, body, cur = go(self.a.gate + WEBSSO)
        for _ in range(20):
            if status in (301, 302, 303):
                cur = urllib.parse.urljoin(cur, hdrs["Location"])
                status, hdrs, body, cur = go(cur)
            elif 'id="login"' in body:
                action = urllib.parse.urljoin(cur, re.search(r'action="([^"]+)"', body).group(1))
                form = urllib.parse.urlencode({"username": user, "password": f"{user}-pw"}).encode()
                status, hdrs, body, cur = go(action, form)
            elif 'id="consent"' in body:
                action = urllib.parse.urljoin(cur, re.search(r'id="consent" method="post" action="([^"]+)"', body).group(1))
                status, hdrs, body, cur = go(action, b"")
            else:
                break
        for c in jar:
            if c.name == "fedgate_session":
                return c.value, status, body
        raise RuntimeError(f"login of {user} ended with {status} and no session cookie: {text(body)}")

    def session(self, user, fresh=False):
        with self.session_lock[user]:
            if fresh or user not in self.sessions:
                self.sessions[user] = self.websso_login(user)[0]
                if fresh:
                    self.relogins += 1
            return self.sessions[user]

    # ------------------------------------------------------------ one request
    def one(self, kind, n, scheduled):
        sent = now()
        ident = None
        note = ""
        cls = "ok"
        status = 0
        user = ""
        try:
            if kind == "none":
                status, _, body = self.request("GET", "/v3", {"Accept": "application/json"})
                if status != 200 or '"v3' not in body:
                    cls, note = "error", text(body)
            elif kind in ("bearer_jwt", "bearer_opaque"):
                user = list(SUBS)[n % len(SUBS)]
                tok = self.bearer_token(kind, user)
                if tok is None:
                    cls, note = "no_token", "the IdP has not minted a token yet"
                else:
                    status, _, body = self.request("POST", OPENID, {"Authorization": f"Bearer {tok.value}",
                                                                    "Content-Length": "0"})
                    if status == 201:
                        ident = self.check_identity(json.loads(body)["token"], SUBS[user], "openid")
                    elif status == 401 and tok.minted < self.idp_epoch:
                        cls, note = "stale", "token minted before the IdP restarted"
                    else:
                        cls, note = "error", text(body)
            elif kind == "x509":
                proxy, ctx, dn = self.x509[n % len(self.x509)]
                user = proxy
                status, _, body = self.request("POST", MAPPED, {"Content-Length": "0"}, ctx)
                if status == 201:
                    ident = self.check_identity(json.loads(body)["token"], dn, "mapped")
                else:
                    cls, note = "error", text(body)
            elif kind == "websso":
                user = list(SUBS)[n % len(SUBS)]
                cookie = self.session(user)
                status, hdrs, body = self.request("GET", WEBSSO, {"Accept": "text/html", "Cookie": f"fedgate_session={cookie}"})
                if status in (302, 303) and "/auth" in hdrs.get("Location", hdrs.get("location", "")):
                    # The session is gone (a restart of its store without its data): the
                    # browser logs in again; that login is this request's answer.
                    note = "session gone: login again"
                    cookie, status, body = self.websso_login(user)
                    with self.session_lock[user]:
                        self.sessions[user] = cookie
                        self.relogins += 1
                m = re.search(r'name="token"[^>]*value="([^"]+)"', body) if status == 200 else None
                if m:
                    try:
                        ident = self.check_identity(self.keystone_user(m.group(1)), SUBS[user], "openid")
                    except Exception as e:  # Keystone went away between the two calls
                        cls, note = "unverified", f"{type(e).__name__}: {e}"[:300]
                else:
                    cls, note = "error", (note + " " + text(body)).strip()
        except Exception as e:
            cls, note = "error", f"{type(e).__name__}: {e}"[:300]
        if ident is not None:
            cls, note = "wrong_identity", ident
        end = now()
        ms = (end - scheduled) * 1000
        with self.lock:
            self.samples[kind].append((ms, cls, status, (sent - scheduled) * 1000))
            self.totals[kind][cls] = self.totals[kind].get(cls, 0) + 1
            if cls == "wrong_identity":
                self.wrong.append({"t": scheduled, "kind": kind, "user": user, "why": note})
        if self.events:
            self.events.write(json.dumps({"t": round(scheduled, 3), "sent": round(sent, 3), "end": round(end, 3),
                                          "kind": kind, "user": user, "status": status, "ms": round(ms, 1),
                                          "class": cls, "note": note}) + "\n")

    # ------------------------------------------------------------ schedule and samples
    def schedule(self, pool, kind, rate):
        period, n, t = 1.0 / rate, 0, now()
        while not self.stop.is_set():
            try:
                pool.submit(self.one, kind, n, t)
            except RuntimeError:  # shut down
                return
            n += 1
            t += period
            self.stop.wait(max(0.0, t - now()))

    def proc(self, pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            return rss, len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, AttributeError):
            return "", ""

    def sample(self, writer, t0, idx):
        with self.lock:
            got, self.samples = self.samples, {k: [] for k in KINDS}
        procs = [(name, *self.proc(pid)) for name, pid in self.a.pid]
        rows = []
        for kind in KINDS:
            lat = sorted(ms for ms, _, _, _ in got[kind])
            queue = max((q for _, _, _, q in got[kind]), default=0)
            cls = {}
            codes = {}
            for _, c, s, _ in got[kind]:
                cls[c] = cls.get(c, 0) + 1
                if c == "error":
                    codes[s] = codes.get(s, 0) + 1
            row = {"sample": idx, "t_utc": time.strftime("%H:%M:%S", time.gmtime()),
                   "elapsed_s": round(now() - t0), "kind": kind, "requests": len(lat), "ok": cls.get("ok", 0),
                   "errors": cls.get("error", 0) + cls.get("no_token", 0), "wrong_identity": cls.get("wrong_identity", 0),
                   "stale": cls.get("stale", 0), "unverified": cls.get("unverified", 0),
                   "error_statuses": " ".join(f"{k}:{v}" for k, v in sorted(codes.items())),
                   "p50_ms": round(statistics.median(lat), 1) if lat else "",
                   "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1) if lat else "",
                   "max_ms": round(lat[-1], 1) if lat else "",
                   # How late the load generator sent a request (its own backlog): near 0
                   # when it keeps its schedule.
                   "max_queue_ms": round(queue, 1)}
            for name, rss, fds in procs:
                row[f"rss_kb_{name}"], row[f"fds_{name}"] = rss, fds
            rows.append(row)
        if writer[0] is None:
            writer[0] = csv.DictWriter(writer[1], fieldnames=list(rows[0]))
            writer[0].writeheader()
        writer[0].writerows(rows)
        writer[1].flush()
        total = sum(r["requests"] for r in rows)
        bad = sum(r["errors"] + r["wrong_identity"] for r in rows)
        print(f"[loadgen] sample {idx}: {total} requests, {bad} errors/wrong, "
              + " ".join(f"{n} rss {r} KB fds {f}" for n, r, f in procs), file=sys.stderr, flush=True)

    def run(self):
        rates = {k: float(v) for k, v in (p.split("=") for p in self.a.rates.split(","))}
        signal.signal(signal.SIGUSR1, self.idp_restarted)
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        threading.Thread(target=self.minter, daemon=True).start()
        for _ in range(100):  # first tokens
            with self.lock:
                if len(self.jwt) == len(SUBS) and all(self.pool.values()):
                    break
            time.sleep(0.1)
        for user in SUBS:
            if rates.get("websso"):
                self.session(user)
        pool = concurrent.futures.ThreadPoolExecutor(self.a.workers)
        t0 = now()
        for kind, rate in rates.items():
            if rate > 0:
                threading.Thread(target=self.schedule, args=(pool, kind, rate), daemon=True).start()
        out = open(self.a.csv, "w", newline="") if self.a.csv else open(os.devnull, "w")
        writer = [None, out]
        idx = 0
        end = t0 + self.a.duration
        while not self.stop.is_set() and now() < end:
            self.stop.wait(min(self.a.sample_secs, max(0.0, end - now())))
            idx += 1
            self.sample(writer, t0, idx)
        self.stop.set()
        pool.shutdown(wait=True)
        # What completed after the last sample.
        if any(self.samples.values()):
            idx += 1
            self.sample(writer, t0, idx)
        out.close()
        summary = {"seconds": round(now() - t0), "rates": rates, "totals": self.totals, "wrong_identity": self.wrong,
                   "websso_relogins": self.relogins}
        if self.a.summary:
            with open(self.a.summary, "w") as f:
                json.dump(summary, f, indent=1)
        print(json.dumps(summary), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gate", required=True, help="https://localhost:PORT (fedgate or haproxy)")
    p.add_argument("--keystone", required=True, help="Keystone's own HTTP URL (token validation)")
    p.add_argument("--idp", required=True, help="the harness IdP's issuer URL")
    p.add_argument("--pki", required=True, help="tests/fixtures/pki/mkpki.sh output")
    p.add_argument("--federation", required=True, help="federation.json written by the Keystone harness")
    p.add_argument("--rates", default="none=19,bearer_jwt=0.25,bearer_opaque=0.25,x509=0.25,websso=0.25")
    p.add_argument("--duration", type=float, default=3600)
    p.add_argument("--sample-secs", type=float, default=60)
    p.add_argument("--timeout", type=float, default=35, help="longer than fedgate's response_timeout_secs (30)")
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--opaque-uses", type=int, default=30, help="requests per opaque token")
    p.add_argument("--pid", action="append", default=[], type=lambda s: tuple(s.split("=", 1)),
                   help="NAME=PID of a process whose RSS and fds are sampled")
    p.add_argument("--csv")
    p.add_argument("--events")
    p.add_argument("--summary")
    Load(p.parse_args()).run()


if __name__ == "__main__":
    main()
