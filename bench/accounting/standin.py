#!/usr/bin/env python3
"""Scale stand-in for the accounting benchmark: Keystone v3, Nova v2.1 and
Glance v2 on one port, serving PROJECTS x SERVERS seeded servers.

Why a stand-in: the real Nova harness (tests/harness/nova) creates a server
in several seconds with the fake virt driver, so 10,000 servers would take
hours. This server answers exactly the calls cASO 5.2.2 and fedgate make
(spec A4), with the documents' shapes as the real APIs return them (the same
keys, microversion 2.1), deterministically from a seed, so both extractors
see the same data. Both are run against it by bench/accounting/run.sh.

    standin.py PORT [PROJECTS [SERVERS_PER_PROJECT]]

Credentials: any user/password is accepted (the benchmark measures the
extractors, not Keystone). Project ids are `p0000`..; their `VO` property is
`vo.bench<N % 10>.test`; every project carries the tag `caso`.
"""
import datetime as dt
import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT = int(sys.argv[1])
NPROJ = int(sys.argv[2]) if len(sys.argv) > 2 else 100
NSRV = int(sys.argv[3]) if len(sys.argv) > 3 else 100
BASE = f"http://127.0.0.1:{PORT}"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
NS = uuid.UUID("6f1b7c1e-0000-4000-8000-000000000000")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def nova_time(t):
    # Nova's `created`/`updated`: no fraction, Z; usage/launched_at: naive
    return t.strftime("%Y-%m-%dT%H:%M:%S.000000")


FLAVORS = {
    "1": {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1, "OS-FLV-EXT-DATA:ephemeral": 0, "extra": {}},
    "2": {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 2, "disk": 10, "OS-FLV-EXT-DATA:ephemeral": 0,
          "extra": {"accounting:benchmark_type": "HEPSPEC06", "accounting:benchmark_value": "10.5"}},
    "3": {"id": "3", "name": "g1.gpu", "ram": 8192, "vcpus": 4, "disk": 20, "OS-FLV-EXT-DATA:ephemeral": 0,
          "extra": {"Accelerator:Type": "GPU", "Accelerator:Vendor": "NVIDIA", "Accelerator:Model": "A100",
                    "Accelerator:Number": "1"}},
}
IMAGE_ID = str(uuid.uuid5(NS, "image"))
PROJECTS = [f"p{i:04d}" for i in range(NPROJ)]
USER = lambda p, j: f"u{p[1:]}{j % 5}"  # noqa: E731


def server(p, j):
    sid = str(uuid.uuid5(NS, f"{p}/{j}"))
    created = T0 + dt.timedelta(minutes=7 * j + int(p[1:]))
    flavor = FLAVORS[str(1 + j % 3)]
    kind = j % 10
    status, vm_state, terminated = "ACTIVE", "active", None
    if kind == 7:
        status, vm_state = "SHUTOFF", "stopped"
    elif kind >= 8:
        status, vm_state = "DELETED", "deleted"
        terminated = created + dt.timedelta(hours=5)
    updated = (terminated or created + dt.timedelta(minutes=2))
    addrs = {"private": [{"version": 4, "addr": f"10.0.{j % 250}.{int(p[1:]) % 250}",
                          "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]}
    if j % 4 == 0:
        addrs["private"].append({"version": 4, "addr": f"172.24.{j % 250}.{int(p[1:]) % 250}",
                                 "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"})
    return {
        "id": sid, "name": f"vm-{p}-{j}", "status": status, "tenant_id": p, "user_id": USER(p, j),
        "metadata": {}, "hostId": "h" * 56, "image": {"id": IMAGE_ID, "links": []},
        "flavor": {"id": flavor["id"], "links": []},
        "created": iso(created), "updated": iso(updated), "addresses": addrs, "accessIPv4": "", "accessIPv6": "",
        "links": [{"rel": "self", "href": f"{BASE}/v2.1/servers/{sid}"}],
        "OS-DCF:diskConfig": "MANUAL", "progress": 0, "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "", "key_name": None, "OS-SRV-USG:launched_at": nova_time(created + dt.timedelta(seconds=20)),
        "OS-SRV-USG:terminated_at": nova_time(terminated) if terminated else None,
        "OS-EXT-STS:task_state": None, "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:power_state": 1,
        "os-extended-volumes:volumes_attached": [], "security_groups": [{"name": "default"}],
    }


SERVERS = {p: [server(p, j) for j in range(NSRV)] for p in PROJECTS}
BY_ID = {s["id"]: s for p in PROJECTS for s in SERVERS[p]}


def usage(p, start, end):
    out = []
    for s in SERVERS[p]:
        f = FLAVORS[s["flavor"]["id"]]
        out.append({
            "instance_id": s["id"], "name": s["name"], "hours": 1.0, "memory_mb": f["ram"], "local_gb": f["disk"],
            "vcpus": f["vcpus"], "tenant_id": p, "flavor": f["name"],
            "started_at": s["OS-SRV-USG:launched_at"], "ended_at": s["OS-SRV-USG:terminated_at"],
            "state": "terminated" if s["status"] == "DELETED" else "active", "uptime": 3600,
        })
    return {"tenant_usage": {"tenant_id": p, "server_usages": out, "total_local_gb_usage": 1.0,
                             "total_vcpus_usage": 1.0, "total_memory_mb_usage": 1.0, "total_hours": 1.0,
                             "start": start, "stop": end}}


def catalog():
    def svc(t, name, url):
        return {"type": t, "name": name, "id": uuid.uuid5(NS, t).hex, "endpoints": [
            {"id": uuid.uuid5(NS, t + i).hex, "interface": i, "region_id": "RegionOne", "region": "RegionOne",
             "url": url} for i in ("public", "internal", "admin")]}
    return [svc("identity", "keystone", f"{BASE}/v3"), svc("compute", "nova", f"{BASE}/v2.1"),
            svc("image", "glance", f"{BASE}/image")]


def version_doc(vid, url, **extra):
    return dict({"id": vid, "status": "CURRENT", "links": [{"rel": "self", "href": url}]}, **extra)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, doc, headers=()):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        if urlparse(self.path).path.rstrip("/") != "/v3/auth/tokens":
            return self.send(404, {"error": {"code": 404, "message": "not found"}})
        scope = req.get("auth", {}).get("scope", {})
        now = dt.datetime.now(dt.timezone.utc)
        tok = {"methods": ["password"], "user": {"id": "acct", "name": "accounting", "domain": {"id": "default", "name": "Default"}},
               "audit_ids": ["a"], "issued_at": iso(now), "expires_at": iso(now + dt.timedelta(hours=1)),
               "roles": [{"id": "r", "name": "reader"}], "catalog": catalog()}
        proj = scope.get("project")
        if proj:
            pid = proj.get("id") or proj.get("name")
            if pid not in SERVERS:
                return self.send(401, {"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})
            tok["project"] = {"id": pid, "name": pid, "domain": {"id": "default", "name": "Default"}}
        elif "system" in scope:
            tok["system"] = {"all": True}
        self.send(201, {"token": tok}, [("X-Subject-Token", uuid.uuid4().hex)])

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        path = u.path.rstrip("/")
        parts = path.split("/")[1:]
        if path in ("", "/v3"):
            v3 = version_doc("v3.14", f"{BASE}/v3/", updated="2020-04-07T00:00:00Z",
                             **{"media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]})
            return self.send(200, {"version": v3} if path == "/v3" else {"versions": {"values": [v3]}}, )
        if parts[0] == "v3":
            if parts[1:] == ["projects"]:
                return self.send(200, {"projects": [self.project(p) for p in PROJECTS], "links": {"self": None, "next": None, "previous": None}})
            if parts[1] == "projects" and len(parts) == 3:
                if parts[2] not in SERVERS:
                    return self.send(404, {"error": {"code": 404, "message": "Could not find project."}})
                return self.send(200, {"project": self.project(parts[2])})
            if parts[1] == "users" and len(parts) == 3:
                return self.send(200, {"user": {"id": parts[2], "name": f"name-{parts[2]}", "domain_id": "default", "enabled": True}})
        if parts[0] == "v2.1":
            if len(parts) == 1:
                return self.send(200, {"version": version_doc("v2.1", f"{BASE}/v2.1/", version="2.79", min_version="2.1", updated="2013-07-23T11:33:21Z")})
            pid = self.headers.get("X-Auth-Token") and None
            rest = parts[1:]
            if rest[:1] == [""] or not rest:
                rest = []
            if rest == ["flavors", "detail"]:
                return self.send(200, {"flavors": [{k: v for k, v in f.items() if k != "extra"} | {"links": [], "os-flavor-access:is_public": True, "swap": "", "rxtx_factor": 1.0} for f in FLAVORS.values()]})
            if len(rest) == 3 and rest[0] == "flavors" and rest[2] == "os-extra_specs":
                return self.send(200, {"extra_specs": FLAVORS[rest[1]]["extra"]})
            if rest == ["servers", "detail"]:
                proj = self.scoped_project()
                srv = [s for s in SERVERS.get(proj, []) if s["updated"] >= self.norm(q.get("changes-since", "1970-01-01"))]
                marker, limit = q.get("marker"), int(q.get("limit", 1000))
                if marker:
                    ids = [s["id"] for s in srv]
                    srv = srv[ids.index(marker) + 1:] if marker in ids else []
                return self.send(200, {"servers": srv[:limit]})
            if len(rest) == 2 and rest[0] == "servers":
                s = BY_ID.get(rest[1])
                return self.send(200, {"server": s}) if s else self.send(404, {"itemNotFound": {"code": 404, "message": "Instance could not be found."}})
            if len(rest) == 2 and rest[0] == "os-simple-tenant-usage":
                return self.send(200, usage(rest[1], q.get("start"), q.get("end")))
        if parts[0] == "image":
            if len(parts) == 1 or parts[1:] == ["versions"]:
                return self.send(200, {"versions": [version_doc("v2.9", f"{BASE}/image/v2/")]})
            if parts[1:] == ["v2", "schemas", "image"]:
                # The subset of Glance's image schema that glanceclient's
                # model needs; extra properties are strings, as in Glance.
                props = {k: {"type": ["null", "string"]} for k in ("id", "name", "status", "visibility", "disk_format",
                                                                    "container_format", "self", "file", "schema", "owner",
                                                                    "checksum", "os_hash_algo", "os_hash_value")}
                props.update({"size": {"type": ["null", "integer"]}, "tags": {"type": "array", "items": {"type": "string"}},
                              "min_ram": {"type": "integer"}, "min_disk": {"type": "integer"}, "protected": {"type": "boolean"}})
                return self.send(200, {"name": "image", "properties": props, "additionalProperties": {"type": "string"},
                                       "links": [{"rel": "self", "href": "{self}"}]})
            if parts[1:] == ["v2", "images"]:
                return self.send(200, {"images": [{"id": IMAGE_ID, "name": "bench", "status": "active", "visibility": "public",
                                                   "vmcatcher_event_ad_mpuri": "https://appdb.egi.eu/store/vo/image/bench:1/",
                                                   "disk_format": "raw", "container_format": "bare", "size": 1048576,
                                                   "self": f"/v2/images/{IMAGE_ID}", "file": f"/v2/images/{IMAGE_ID}/file",
                                                   "schema": "/v2/schemas/image", "tags": []}],
                                       "first": "/v2/images", "schema": "/v2/schemas/images"})
        self.send(404, {"error": {"code": 404, "message": f"not found: {path}"}})

    @staticmethod
    def norm(t):
        # changes-since as cASO ("2026-11-01 00:00:00") or RFC 3339 sends it
        return t.replace(" ", "T").replace("+00:00", "Z").rstrip("Z") + "Z" if "T" in t.replace(" ", "T") else t

    def scoped_project(self):
        # The stand-in does not keep tokens: the project is the one of the
        # servers asked for. cASO and fedgate both use a project-scoped
        # token per project, which they get just before; keep a map.
        return TOKENS.get(self.headers.get("X-Auth-Token"), "")

    @staticmethod
    def project(p):
        return {"id": p, "name": p, "domain_id": "default", "enabled": True, "parent_id": "default",
                "is_domain": False, "description": "", "tags": ["caso"], "VO": f"vo.bench{int(p[1:]) % 10}.test",
                "links": {"self": f"{BASE}/v3/projects/{p}"}}


TOKENS = {}
_orig_post = H.do_POST


def do_post(self):
    # Remember which project each token is scoped to (see scoped_project).
    real_send = self.send

    def send(code, doc, headers=()):
        for k, v in headers:
            if k == "X-Subject-Token" and "project" in doc.get("token", {}):
                TOKENS[v] = doc["token"]["project"]["id"]
        real_send(code, doc, headers)

    self.send = send
    _orig_post(self)


H.do_POST = do_post

if __name__ == "__main__":
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
    print(f"standin: {NPROJ} projects x {NSRV} servers on {BASE}", flush=True)
    srv.serve_forever()
