#!/usr/bin/env python3
"""Browser-free WebSSO logins through fedgate, for the benchmark.

Each login is what a browser does, with its own cookie jar: the WebSSO URL
(302 to the IdP), the IdP's login and consent forms, the redirect back to
fedgate (code exchange, ID token check, userinfo, session) and the replayed
request to the upstream. Prints one JSON line: logins, seconds, logins/s,
p50/p99 ms, failures. Test tooling, stdlib only.
"""
import argparse
import concurrent.futures
import http.cookiejar
import json
import re
import ssl
import statistics
import time
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def login(url, user):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    jar = http.cookiejar.CookieJar()
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), urllib.request.HTTPSHandler(context=ctx), NoRedirect)
    headers = {"Accept": "text/html"}

    def go(u, data=None):
        req = urllib.request.Request(u, data=data, headers=headers)
        try:
            r = op.open(req, timeout=30)
            return r.status, r.headers, r.read().decode("utf-8", "replace"), u
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8", "replace"), u

    status, hdrs, body, cur = go(url)
    for _ in range(20):
        if status in (301, 302, 303):
            cur = urllib.parse.urljoin(cur, hdrs["Location"])
            status, hdrs, body, cur = go(cur)
            continue
        if 'id="login"' in body:
            action = urllib.parse.urljoin(cur, re.search(r'action="([^"]+)"', body).group(1))
            status, hdrs, body, cur = go(action, urllib.parse.urlencode({"username": user, "password": f"{user}-pw"}).encode())
            continue
        if 'id="consent"' in body:
            action = urllib.parse.urljoin(cur, re.search(r'id="consent" method="post" action="([^"]+)"', body).group(1))
            status, hdrs, body, cur = go(action, b"")
            continue
        return status == 200
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--logins", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--user", default="alice")
    a = p.parse_args()
    times, fails = [], 0

    def one(_):
        t = time.perf_counter()
        ok = login(a.url, a.user)
        return ok, (time.perf_counter() - t) * 1000

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(a.concurrency) as ex:
        for ok, ms in ex.map(one, range(a.logins)):
            times.append(ms)
            fails += 0 if ok else 1
    secs = time.perf_counter() - t0
    times.sort()
    print(json.dumps({"logins": a.logins, "failures": fails, "seconds": round(secs, 2), "logins_per_s": round(a.logins / secs, 1),
                      "p50_ms": round(statistics.median(times), 1), "p99_ms": round(times[int(len(times) * 0.99) - 1], 1)}))


if __name__ == "__main__":
    main()
