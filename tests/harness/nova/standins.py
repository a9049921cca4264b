#!/usr/bin/env python3
"""Stand-ins for Neutron and Cinder in fedgate's Nova harness (stdlib only).

Real neutron-server and cinder-api are too heavy for CI on one 2-core box
(and their migrations want MySQL/PostgreSQL); these follow the public API
references for exactly the calls the harness needs, and nothing else:

neutron  GET /v2.0/floatingips (filters project_id / tenant_id, repeated
         values OR-ed, as Neutron does; limit/marker paging with
         floatingips_links; a non-admin token sees only its project's IPs);
         every other collection GET (ports, networks, ...) answers an empty
         list: Nova asks for the ports of a server on delete and show.
cinder   GET /v3/{project_id}/volumes/detail (the URL's project must be the
         token's unless admin, else 400 "Malformed request url";
         limit/marker paging with volumes_links; changes-since is ignored).

Tokens are validated with Keystone (GET /v3/auth/tokens) as the service
user, as keystonemiddleware does; no or a bad token is 401. The answers are
seeded from the shapes of the API reference examples, per project from the
harness's objects-identity.json (STANDIN_SEED).

Usage: standins.py neutron|cinder PORT
Environment: STANDIN_KEYSTONE (.../v3), STANDIN_USER, STANDIN_PASSWORD, STANDIN_SEED.
"""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KS = os.environ["STANDIN_KEYSTONE"].rstrip("/")
SEED = json.load(open(os.environ["STANDIN_SEED"]))
_lock = threading.Lock()
_service_token = {"id": None, "at": 0.0}
_tokens = {}


def _service():
    with _lock:
        if _service_token["id"] and time.time() - _service_token["at"] < 3000:
            return _service_token["id"]
    body = json.dumps({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": os.environ["STANDIN_USER"], "domain": {"id": "default"},
            "password": os.environ["STANDIN_PASSWORD"]}}},
        "scope": {"project": {"name": "service", "domain": {"id": "default"}}}}}).encode()
    req = urllib.request.Request(KS + "/auth/tokens", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        tok = r.headers["X-Subject-Token"]
    with _lock:
        _service_token.update(id=tok, at=time.time())
    return tok


def validate(token):
    """(project_id, is_admin) of a token, or None."""
    if not token:
        return None
    with _lock:
        if token in _tokens:
            return _tokens[token]
    req = urllib.request.Request(KS + "/auth/tokens", headers={
        "X-Auth-Token": _service(), "X-Subject-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            t = json.load(r)["token"]
    except urllib.error.HTTPError:
        return None
    roles = {r["name"] for r in t.get("roles", [])}
    info = ((t.get("project") or {}).get("id"), "admin" in roles)
    with _lock:
        _tokens[token] = info
    return info


def _uuid(n):
    return "%08x-0000-4000-8000-%012x" % (0xfed6a7e0 + n // 4096, n)


def floating_ips():
    """Per the Networking API reference 'List floating IPs' example."""
    p = SEED["projects"]
    rows = [  # (project, address, associated)
        (p["acct-a"], "203.0.113.10", True),
        (p["acct-a"], "203.0.113.11", False),
        (p["acct-a"], "2001:db8::10", True),
        (p["acct-b"], "203.0.113.20", True),
    ]
    out = []
    for n, (proj, addr, assoc) in enumerate(rows):
        out.append({
            "id": _uuid(0x100 + n), "router_id": _uuid(0x200) if assoc else None,
            "description": "for test", "dns_domain": "", "dns_name": "",
            "created_at": "2016-12-21T10:55:50Z", "updated_at": "2016-12-21T10:55:53Z",
            "revision_number": 1, "project_id": proj, "tenant_id": proj,
            "floating_network_id": _uuid(0x300),
            "fixed_ip_address": ("10.0.0.%d" % (3 + n)) if assoc else None,
            "floating_ip_address": addr,
            "port_id": _uuid(0x400 + n) if assoc else None,
            "status": "ACTIVE" if assoc else "DOWN",
            "port_details": None, "tags": [], "port_forwardings": [], "qos_policy_id": None,
        })
    return out


def volumes():
    """Per the Block Storage v3 API reference 'List volumes with details' example."""
    p, u = SEED["projects"], SEED["users"]
    rows = [  # (project, user, name, size GiB, status)
        (p["acct-a"], u["user-a"], "data-a", 10, "in-use"),
        (p["acct-a"], u["user-a"], None, 1, "available"),  # name null (A14 #3)
        (p["acct-b"], u["user-b"], "scratch-b", 2, "available"),
    ]
    out = []
    for n, (proj, user, name, size, status) in enumerate(rows):
        vid = _uuid(0x500 + n)
        out.append({
            "attachments": [{
                "server_id": _uuid(0x600 + n), "attachment_id": _uuid(0x700 + n),
                "attached_at": "2018-11-29T06:51:07.000000", "host_name": None,
                "volume_id": vid, "device": "/dev/vdb", "id": vid}] if status == "in-use" else [],
            "availability_zone": "nova", "bootable": "false", "consistencygroup_id": None,
            "created_at": "2018-11-29T06:50:07.770785", "description": None,
            "encrypted": False, "id": vid,
            "links": [{"href": "http://127.0.0.1/v3/%s/volumes/%s" % (proj, vid), "rel": "self"}],
            "metadata": {}, "migration_status": None, "multiattach": False, "name": name,
            "os-vol-host-attr:host": "aio@lvmdriver-1#lvmdriver-1",
            "os-vol-mig-status-attr:migstat": None, "os-vol-mig-status-attr:name_id": None,
            "os-vol-tenant-attr:tenant_id": proj, "replication_status": None,
            "size": size, "snapshot_id": None, "source_volid": None, "status": status,
            "updated_at": "2018-11-29T06:50:09.413000", "user_id": user,
            "volume_type": "lvmdriver-1", "group_id": None, "provider_id": None,
            "service_uuid": None, "shared_targets": True, "cluster_name": None,
            "volume_type_id": _uuid(0x800), "consumes_quota": True,
        })
    return out


def page(items, query, base, key):
    """limit/marker paging with a `<key>_links` next link, as both services do."""
    marker = (query.get("marker") or [None])[0]
    if marker is not None:
        ids = [i["id"] for i in items]
        if marker not in ids:
            return None
        items = items[ids.index(marker) + 1:]
    body = {}
    limit = (query.get("limit") or [None])[0]
    if limit is not None:
        n = int(limit)
        if len(items) > n:
            q = {k: v for k, v in query.items() if k != "marker"}
            q["marker"] = [items[n - 1]["id"]]
            body[key + "_links"] = [{"rel": "next",
                                     "href": base + "?" + urllib.parse.urlencode(q, doseq=True)}]
            items = items[:n]
    body[key] = items
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = "neutron"

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/")
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        host = "http://%s" % self.headers.get("Host", "127.0.0.1")
        if path == "":
            if self.kind == "neutron":
                return self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                  "links": [{"rel": "self", "href": host + "/v2.0/"}]}]})
            return self._send(300, {"versions": [{"id": "v3.0", "status": "CURRENT",
                              "version": "3.0", "min_version": "3.0",
                              "links": [{"rel": "self", "href": host + "/v3/"}]}]})
        who = validate(self.headers.get("X-Auth-Token"))
        if who is None:
            return self._send(401, {"error": {"code": 401, "title": "Unauthorized",
                                              "message": "The request you have made requires authentication."}})
        project, admin = who
        if self.kind == "neutron":
            return self.neutron(path, query, host, project, admin)
        return self.cinder(path, query, host, project, admin)

    def neutron(self, path, query, host, project, admin):
        if path == "/v2.0":
            return self._send(200, {"resources": []})
        if path == "/v2.0/floatingips":
            items = [f for f in floating_ips() if admin or f["project_id"] == project]
            for key in ("project_id", "tenant_id"):
                if key in query:
                    items = [f for f in items if f[key] in query[key]]
            body = page(items, query, host + path, "floatingips")
            if body is None:
                return self._send(404, {"NeutronError": {"type": "FloatingIPNotFound",
                                  "message": "marker not found", "detail": ""}})
            return self._send(200, body)
        name = path[len("/v2.0/"):] if path.startswith("/v2.0/") else ""
        if name and "/" not in name:
            name = name[:-5] if name.endswith(".json") else name
            return self._send(200, {name.replace("-", "_"): []})
        return self._send(404, {"NeutronError": {"type": "HTTPNotFound",
                          "message": "The resource could not be found.", "detail": ""}})

    def cinder(self, path, query, host, project, admin):
        parts = path.split("/")
        if len(parts) == 5 and parts[1] == "v3" and parts[3:] == ["volumes", "detail"]:
            if parts[2] != project and not admin:
                return self._send(400, {"badRequest": {"code": 400,
                                  "message": "Malformed request url"}})
            items = [v for v in volumes() if v["os-vol-tenant-attr:tenant_id"] == parts[2]]
            body = page(items, query, host + path, "volumes")
            if body is None:
                return self._send(400, {"badRequest": {"code": 400,
                                  "message": "Invalid input received: marker not found"}})
            return self._send(200, body)
        return self._send(404, {"itemNotFound": {"code": 404,
                          "message": "The resource could not be found."}})

    def _refuse(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(404, {"NeutronError": {"type": "HTTPNotFound", "message": self.path, "detail": ""}})

    do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("neutron", "cinder"):
        sys.exit(__doc__)
    Handler.kind = sys.argv[1]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
