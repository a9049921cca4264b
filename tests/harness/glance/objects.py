#!/usr/bin/env python3
"""Keystone objects of the Glance harness (stdlib only, idempotent).

Creates, in the Keystone whose admin credentials are in the environment
(OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME; the env.sh of
tests/harness/keystone/setup.sh):
  * role `service` (keystonemiddleware's user validates tokens with it);
  * project `fedgate-images`: owns the synced images (cloudkeeper-os model);
  * projects vo-a-1, vo-a-2 (VO A) and vo-b-1 (VO B);
  * user `fedgate-glance-svc` (admin + service on fedgate-images): Glance's
    keystonemiddleware service user;
  * user `fedgate-sync` (member on fedgate-images and on each VO project):
    creates the images, adds the VO projects as members and accepts them
    with a token scoped to each member project.
Nothing is registered in the catalog: the tests give the Glance URL.
Prints the ids as JSON.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

AUTH = os.environ["OS_AUTH_URL"].rstrip("/")
if not AUTH.endswith("/v3"):
    AUTH += "/v3"
PASSWORDS = {"fedgate-glance-svc": sys.argv[1], "fedgate-sync": sys.argv[2]}


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(AUTH + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None), r.headers
    except urllib.error.HTTPError as e:
        return e.code, None, e.headers


status, _, headers = call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": os.environ.get("OS_USERNAME", "admin"), "domain": {"id": "default"},
        "password": os.environ["OS_PASSWORD"]}}},
    "scope": {"project": {"name": os.environ.get("OS_PROJECT_NAME", "admin"),
                          "domain": {"id": "default"}}}}})
if status != 201:
    sys.exit(f"admin login failed: {status}")
TOKEN = headers["X-Subject-Token"]


def find(kind, name):
    _, body, _ = call("GET", f"/{kind}?name={urllib.parse.quote(name)}", token=TOKEN)
    items = body[kind] if body else []
    return items[0]["id"] if items else None


def ensure(kind, name, extra):
    one = kind[:-1]
    found = find(kind, name)
    if found:
        return found
    status, body, _ = call("POST", f"/{kind}", {one: dict(name=name, **extra)}, TOKEN)
    if status != 201:
        sys.exit(f"cannot create {one} {name}: {status}")
    return body[one]["id"]


def grant(project, user, role):
    status, _, _ = call("PUT", f"/projects/{project}/users/{user}/roles/{role}", token=TOKEN)
    if status not in (200, 204):
        sys.exit(f"cannot grant {role}: {status}")


roles = {r: ensure("roles", r, {}) for r in ("admin", "member", "reader", "service")}
projects = {p: ensure("projects", p, {"domain_id": "default", "description": "fedgate Glance harness"})
            for p in ("fedgate-images", "vo-a-1", "vo-a-2", "vo-b-1")}
users = {}
for name, pw in PASSWORDS.items():
    uid = find("users", name)
    if uid:
        # the password may have changed between runs: set it
        call("PATCH", f"/users/{uid}", {"user": {"password": pw}}, TOKEN)
    else:
        uid = ensure("users", name, {"domain_id": "default", "password": pw})
    users[name] = uid
grant(projects["fedgate-images"], users["fedgate-glance-svc"], roles["admin"])
grant(projects["fedgate-images"], users["fedgate-glance-svc"], roles["service"])
for p in projects.values():
    grant(p, users["fedgate-sync"], roles["member"])
print(json.dumps({"projects": projects, "users": users}, indent=1))
