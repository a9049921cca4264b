#!/usr/bin/env python3
"""Puts the EGI federation objects into a test Keystone (idempotent).

IdP egi.eu (remote_ids = the OIDC issuers), groups and projects ops and
fedcloud.egi.eu (group has role member on its project), mapping
`egi-mapping` for protocol openid (HTTP_OIDC_SUB, HTTP_OIDC_ISS,
OIDC-eduperson_entitlement) and mapping `voms` for protocol mapped
(GRST_CONN_AURI_0, GRST_VOMS_FQANS). These are the environ names Apache
with mod_auth_openidc / gridsite produces, which fedgate must reproduce.
Standard library only; prints the ids as JSON.
"""
import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

VOS = ("ops", "fedcloud.egi.eu")


class Keystone:
    def __init__(self, url):
        self.base = url.rstrip("/")
        self.token = None

    def request(self, method, path, doc=None):
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("X-Auth-Token", self.token)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None, resp.headers
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw), err.headers
            except ValueError:
                return err.code, raw.decode(errors="replace"), err.headers

    def must(self, method, path, doc=None, ok=(200, 201, 204)):
        status, body, headers = self.request(method, path, doc)
        if status not in ok:
            sys.exit(f"federation.py: {method} {path} -> {status} {body}")
        return body, headers

    def upsert(self, path, key, doc):
        """PUT creates; an existing object (409) is PATCHed to the same content."""
        status, body, _ = self.request("PUT", path, {key: doc})
        if status == 409:
            body, _ = self.must("PATCH", path, {key: doc})
        elif status != 201:
            sys.exit(f"federation.py: PUT {path} -> {status} {body}")
        return body[key]


def named(ks, kind, name, extra):
    q = urllib.parse.urlencode({"name": name, "domain_id": "default"})
    body, _ = ks.must("GET", f"/v3/{kind}?{q}")
    if body[kind]:
        return body[kind][0]["id"]
    one = kind[:-1]
    body, _ = ks.must("POST", f"/v3/{kind}", {one: dict(name=name, domain_id="default", **extra)})
    return body[one]["id"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--admin-password", required=True)
    ap.add_argument("--issuers", required=True, help="comma-separated OIDC issuer URLs")
    args = ap.parse_args()
    issuers = [i for i in args.issuers.split(",") if i]

    ks = Keystone(args.url)
    _, headers = ks.must("POST", "/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": args.admin_password}}},
        "scope": {"system": {"all": True}}}})
    ks.token = headers["X-Subject-Token"]

    body, _ = ks.must("GET", "/v3/roles?name=member")
    member = body["roles"][0]["id"]
    ids = {}
    for vo in VOS:
        project = named(ks, "projects", vo, {"description": f"VO {vo}"})
        group = named(ks, "groups", vo, {"description": f"members of VO {vo}"})
        ks.must("PUT", f"/v3/projects/{project}/groups/{group}/roles/{member}")
        ids[vo] = {"project_id": project, "group_id": group}

    ks.upsert("/v3/OS-FEDERATION/identity_providers/egi.eu", "identity_provider",
              {"remote_ids": issuers, "enabled": True, "description": "EGI Check-in (test)"})

    openid_rules = [{
        "local": [{"user": {"name": "{0}"}, "group": {"id": ids[vo]["group_id"]}}],
        "remote": [
            {"type": "HTTP_OIDC_SUB"},
            {"type": "HTTP_OIDC_ISS", "any_one_of": issuers},
            {"type": "OIDC-eduperson_entitlement", "regex": True,
             "any_one_of": [f"^urn:mace:egi.eu:group:{vo}:role=vm_operator#aai.egi.eu$"]},
        ],
    } for vo in VOS]
    voms_rules = [{
        "local": [{"user": {"name": "{0}", "type": "ephemeral"},
                   "group": {"id": ids[vo]["group_id"]}}],
        "remote": [
            {"type": "GRST_CONN_AURI_0"},
            {"type": "GRST_VOMS_FQANS", "regex": True, "any_one_of": [f"^/{vo}/.*"]},
        ],
    } for vo in VOS]
    ks.upsert("/v3/OS-FEDERATION/mappings/egi-mapping", "mapping", {"rules": openid_rules})
    ks.upsert("/v3/OS-FEDERATION/mappings/voms", "mapping", {"rules": voms_rules})
    protocols = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols"
    ks.upsert(f"{protocols}/openid", "protocol", {"mapping_id": "egi-mapping"})
    ks.upsert(f"{protocols}/mapped", "protocol", {"mapping_id": "voms"})

    json.dump({"identity_provider": "egi.eu", "remote_ids": issuers, "vo": ids}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
