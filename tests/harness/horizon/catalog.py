#!/usr/bin/env python3
"""The harness Horizon's view of the Keystone catalog (test tooling).

  catalog.py KEYSTONE_URL STANDIN_URL check     prints "standin" when the
      catalog has no compute endpoint, or only ours; else the public URL of
      the compute service already there (the Nova harness's real Nova)
  catalog.py KEYSTONE_URL STANDIN_URL register  puts the stand-in in as
      service `compute` (public + internal, RegionOne); idempotent

Horizon's landing page (Project > Compute > Overview) is only offered when
the user's token has a compute service. The identity endpoints are never
touched: other tests use this Keystone's catalog as it is.
Standard library only; admin credentials from OS_USERNAME / OS_PASSWORD.
"""
import json
import os
import sys
import urllib.request

ks, standin, action = sys.argv[1].rstrip('/'), sys.argv[2], sys.argv[3]
if ks.endswith('/v3'):
    ks = ks[:-3]


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ks + path, method=method, data=data)
    req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return r.headers, (json.loads(raw) if raw else None)


h, _ = call('POST', '/v3/auth/tokens', {'auth': {
    'identity': {'methods': ['password'], 'password': {'user': {
        'name': os.environ.get('OS_USERNAME', 'admin'), 'domain': {'id': 'default'},
        'password': os.environ.get('OS_PASSWORD', 'admin-pw')}}},
    'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}})
tok = h['X-Subject-Token']
_, svcs = call('GET', '/v3/services?type=compute', token=tok)
urls = []
for s in svcs['services']:
    _, eps = call('GET', f"/v3/endpoints?service_id={s['id']}&interface=public", token=tok)
    urls += [e['url'] for e in eps['endpoints']]

if action == 'check':
    others = [u for u in urls if u.rstrip('/') != standin.rstrip('/')]
    print(others[0] if others else 'standin')
    sys.exit(0)
if action != 'register':
    sys.exit(f'unknown action {action}')
if svcs['services']:
    sid = svcs['services'][0]['id']
else:
    _, s = call('POST', '/v3/services', {'service': {
        'type': 'compute', 'name': 'nova', 'description': 'Horizon harness compute stand-in'}}, tok)
    sid = s['service']['id']
for iface in ('public', 'internal'):
    _, eps = call('GET', f'/v3/endpoints?service_id={sid}&interface={iface}', token=tok)
    if eps['endpoints']:
        for e in eps['endpoints']:
            if e['url'] != standin:
                call('PATCH', f"/v3/endpoints/{e['id']}", {'endpoint': {'url': standin}}, tok)
    else:
        call('POST', '/v3/endpoints', {'endpoint': {'service_id': sid, 'interface': iface,
                                                    'url': standin, 'region_id': 'RegionOne'}}, tok)
print('registered')
