"""Federation objects for the temporary test Keystone, through the REST API
(one admin token, stdlib only, idempotent): project + group fedcloud.egi.eu
with role member, IdP egi.eu (remote_ids = issuers), mapping egi-mapping,
protocol openid."""
import json
import sys
import time
import urllib.error
import urllib.request

URL, ISSUERS = sys.argv[1].rstrip('/'), sys.argv[2].split(',')
TOKEN = None


def call(method, path, body=None):
    for attempt in range(5):
        req = urllib.request.Request(URL + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header('Content-Type', 'application/json')
        if TOKEN:
            req.add_header('X-Auth-Token', TOKEN)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None, r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors='replace'), e.headers
        except (ConnectionError, urllib.error.URLError):
            time.sleep(1 + attempt)
    sys.exit(f'{method} {path}: Keystone unreachable')


def need(ok, what, res):
    if res[0] not in ok:
        sys.exit(f'{what}: HTTP {res[0]} {res[1]}')
    return res[1]


TOKEN = call('POST', '/v3/auth/tokens', {'auth': {
    'identity': {'methods': ['password'], 'password': {'user': {
        'name': 'admin', 'domain': {'id': 'default'}, 'password': 'admin-pw'}}},
    'scope': {'system': {'all': True}}}})[2]['X-Subject-Token']


def ensure(kind, name):
    body = need((200,), f'list {kind}', call('GET', f'/v3/{kind}?name={name}&domain_id=default'))
    if body[kind]:
        return body[kind][0]['id']
    one = kind[:-1]
    return need((201,), f'create {one}', call('POST', f'/v3/{kind}', {one: {'name': name, 'domain_id': 'default'}}))[one]['id']


pid, gid = ensure('projects', 'fedcloud.egi.eu'), ensure('groups', 'fedcloud.egi.eu')
member = need((200,), 'roles', call('GET', '/v3/roles?name=member'))['roles'][0]['id']
need((204,), 'role assignment', call('PUT', f'/v3/projects/{pid}/groups/{gid}/roles/{member}'))
rules = [{
    'local': [{'user': {'name': '{0}'}, 'group': {'id': gid}}],
    'remote': [
        {'type': 'HTTP_OIDC_SUB'},
        {'type': 'HTTP_OIDC_ISS', 'any_one_of': ISSUERS},
        {'type': 'OIDC-eduperson_entitlement', 'regex': True,
         'any_one_of': ['^urn:mace:egi.eu:group:fedcloud.egi.eu:role=vm_operator#aai.egi.eu$']},
    ]}]
base = '/v3/OS-FEDERATION'
for path, key, body in [
        (f'{base}/identity_providers/egi.eu', 'identity_provider', {'remote_ids': ISSUERS, 'enabled': True}),
        (f'{base}/mappings/egi-mapping', 'mapping', {'rules': rules}),
        (f'{base}/identity_providers/egi.eu/protocols/openid', 'protocol', {'mapping_id': 'egi-mapping'})]:
    res = call('PUT', path, {key: body})
    if res[0] == 409:
        res = call('PATCH', path, {key: body})
    need((200, 201), f'PUT {path}', res)
print(json.dumps({'project': pid, 'group': gid}), file=sys.stderr)
