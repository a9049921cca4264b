#!/usr/bin/env python3
"""A compute (Nova API v2.1) stand-in for the harness Horizon (test tooling).

Used only when the Keystone catalog has no real Nova (tests/harness/nova not
running). It answers, for an empty project, the calls Horizon's project
overview makes: version discovery (GET /v2.1), absolute limits
(GET /v2.1/limits?reserved=1) and the project's usage
(GET /v2.1/os-simple-tenant-usage/<project>), plus empty lists and quotas
for the other pages a click may reach. Each request is logged with whether
it carried a token.

usage: compute_standin.py PORT LOGFILE
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
LOG = open(sys.argv[2], 'a', buffering=1)
ROOT = f'http://127.0.0.1:{PORT}'
LIMITS = {'maxTotalCores': 20, 'maxTotalInstances': 10, 'maxTotalRAMSize': 51200,
          'maxTotalKeypairs': 100, 'maxServerMeta': 128, 'maxServerGroups': 10,
          'maxServerGroupMembers': 10, 'maxImageMeta': 128, 'maxPersonality': 5,
          'maxPersonalitySize': 10240, 'totalCoresUsed': 0, 'totalInstancesUsed': 0,
          'totalRAMUsed': 0, 'totalServerGroupsUsed': 0}
QUOTAS = {'cores': 20, 'instances': 10, 'ram': 51200, 'key_pairs': 100,
          'metadata_items': 128, 'server_groups': 10, 'server_group_members': 10}
LISTS = {'servers': 'servers', 'servers/detail': 'servers', 'flavors': 'flavors',
         'flavors/detail': 'flavors', 'os-keypairs': 'keypairs', 'extensions': 'extensions',
         'os-services': 'services', 'os-hypervisors': 'hypervisors',
         'os-simple-tenant-usage': 'tenant_usages'}


def version_doc(detail):
    v = {'id': 'v2.1', 'status': 'CURRENT', 'version': '2.96', 'min_version': '2.1',
         'updated': '2013-07-23T11:33:21Z', 'links': [{'rel': 'self', 'href': f'{ROOT}/v2.1/'}]}
    if detail:
        v['media-types'] = [{'base': 'application/json',
                             'type': 'application/vnd.openstack.compute+json;version=2.1'}]
    return v


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *_):
        pass

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('OpenStack-API-Version', 'compute 2.1')
        self.end_headers()
        self.wfile.write(body)
        token = 'token' if self.headers.get('X-Auth-Token') else 'no token'
        LOG.write(f'{time.strftime("%H:%M:%S")} {self.command} {self.path} {status} {token}\n')

    def do_GET(self):
        path = self.path.split('?', 1)[0].rstrip('/')
        rest = path[len('/v2.1/'):] if path.startswith('/v2.1/') else None
        if path == '':
            return self.reply(300, {'versions': [version_doc(False)]})
        if path == '/v2.1':
            return self.reply(200, {'version': version_doc(True)})
        if rest in LISTS:
            return self.reply(200, {LISTS[rest]: []})
        if rest == 'limits':
            return self.reply(200, {'limits': {'rate': [], 'absolute': LIMITS}})
        if rest is not None and rest.startswith('os-simple-tenant-usage/'):
            project = rest.split('/')[1]
            return self.reply(200, {'tenant_usage': {
                'tenant_id': project, 'server_usages': [], 'total_hours': 0.0,
                'total_local_gb_usage': 0.0, 'total_memory_mb_usage': 0.0,
                'total_vcpus_usage': 0.0, 'start': '2026-01-01T00:00:00',
                'stop': '2026-01-01T00:00:00'}})
        if rest is not None and rest.startswith('os-quota-sets/'):
            project = rest.split('/')[1]
            q = dict(QUOTAS)
            if rest.endswith('/detail'):
                q = {k: {'limit': v, 'in_use': 0, 'reserved': 0} for k, v in q.items()}
            return self.reply(200, {'quota_set': dict(q, id=project)})
        if rest == 'os-availability-zone':
            return self.reply(200, {'availabilityZoneInfo': []})
        return self.reply(404, {'itemNotFound': {'code': 404, 'message': f'stand-in: no {path}'}})


ThreadingHTTPServer(('127.0.0.1', PORT), Handler).serve_forever()
