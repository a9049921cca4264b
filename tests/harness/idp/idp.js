#!/usr/bin/env node
// fedgate test harness: one Node process serving one or more real OpenID
// providers (panva's oidc-provider, OpenID Certified), one per port.
//
//   node idp.js NAME=PORT[:ACCOUNTSET] ...      e.g.  node idp.js a=18760 b=18761:b
//
// Everything protocol-related is oidc-provider's code. This launcher adds
// what a deployment supplies (accounts, clients, keys, resource servers)
// and test conveniences:
//   * POST /token grant_type=password (client "cli"), optional id_token=1 (adds
//     the ID token a login would return), optional resource=
//     urn:fedgate:opaque | urn:fedgate:jwt (RFC 8707 / RFC 9068), optional
//     harness parameter ttl=<seconds> for short-lived tokens
//   * GET /_harness/stats -> {"counts":{"introspection":N,...}}; DELETE resets
//   * POST /_harness/fault?down=1|0 -> while down every protocol endpoint
//     answers 503 (the "IdP is down" switch)
// Env: IDP_REDIRECT_URIS and IDP_POST_LOGOUT_REDIRECT_URIS (comma lists:
// client "gateway"'s redirect URIs and the post_logout_redirect_uri values
// RP-initiated logout may return to); IDP_TLS_CERT + IDP_TLS_KEY serve https; IDP_STATE_DIR (keys,
// default /tmp/fedgate-test-idp); IDP_QUIET=1 turns off the request log.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

import Provider, { errors } from 'oidc-provider';

import { accountSets } from './accounts.js';
import { interactions } from './interactions.js';

const env = process.env;
const STATE = env.IDP_STATE_DIR ?? '/tmp/fedgate-test-idp';
const TLS = env.IDP_TLS_CERT && env.IDP_TLS_KEY
  ? { cert: fs.readFileSync(env.IDP_TLS_CERT), key: fs.readFileSync(env.IDP_TLS_KEY) }
  : null;
const QUIET = env.IDP_QUIET === '1';
const SCOPES = ['openid', 'profile', 'email', 'eduperson_entitlement', 'offline_access'];
const BY_SCOPE = {
  profile: ['name', 'preferred_username'],
  email: ['email', 'email_verified'],
  eduperson_entitlement: ['eduperson_entitlement'],
};
const RESOURCES = {
  'urn:fedgate:opaque': { format: 'opaque' },
  'urn:fedgate:jwt': { format: 'jwt' },
};

// Keeps every token until it expires (oidc-provider's default memory
// adapter is an LRU of 1000 entries, too small for the burst tests).
function storage() {
  const data = new Map();
  const live = (k) => {
    const e = data.get(k);
    if (e && e.until && e.until < Date.now()) { data.delete(k); return undefined; }
    return e?.v;
  };
  return class Store {
    constructor(kind) { this.kind = kind; }
    k(id) { return `${this.kind}/${id}`; }
    async upsert(id, v, ttl) {
      const until = ttl ? Date.now() + ttl * 1000 : 0;
      data.set(this.k(id), { v, until });
      // Sessions are also looked up by uid (interactions after login).
      if (v.uid) data.set(`${this.kind}-uid/${v.uid}`, { v: id, until });
      if (v.grantId) {
        const g = `grant/${v.grantId}`;
        (live(g) ?? data.set(g, { v: new Set(), until: 0 }).get(g).v).add(this.k(id));
      }
    }
    async find(id) { return live(this.k(id)); }
    async findByUid(uid) { const id = live(`${this.kind}-uid/${uid}`); return id ? this.find(id) : undefined; }
    async findByUserCode() { return undefined; }
    async consume(id) { const v = live(this.k(id)); if (v) v.consumed = Math.floor(Date.now() / 1000); }
    async destroy(id) { data.delete(this.k(id)); }
    async revokeByGrantId(grantId) {
      for (const k of live(`grant/${grantId}`) ?? []) data.delete(k);
      data.delete(`grant/${grantId}`);
    }
  };
}

function signingKeys(name) {
  const file = path.join(STATE, name, 'jwks.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: `${name}-${crypto.randomBytes(4).toString('hex')}` };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }), { mode: 0o600 });
  return { keys: [jwk] };
}

function start(name, port, setName) {
  const users = accountSets[setName];
  if (!users) throw new Error(`unknown account set ${setName}`);
  const bySub = new Map(Object.entries(users).map(([u, a]) => [a.sub, { ...a, preferred_username: u }]));
  const issuer = `${TLS ? 'https' : 'http'}://127.0.0.1:${port}`;
  const counts = {};
  let down = false;

  const claimsFor = (sub, scope) => {
    const a = bySub.get(sub);
    if (!a) return {};
    const out = {};
    for (const s of (scope ?? '').split(' ')) for (const c of BY_SCOPE[s] ?? []) out[c] = a[c];
    return out;
  };

  const provider = new Provider(issuer, {
    adapter: storage(),
    jwks: signingKeys(name),
    cookies: { keys: [crypto.randomBytes(16).toString('hex')], long: { sameSite: 'lax' }, short: { sameSite: 'lax' } },
    scopes: SCOPES,
    claims: { openid: ['sub'], ...BY_SCOPE },
    clients: [
      { client_id: 'gateway', client_secret: 'gateway-secret', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: (env.IDP_REDIRECT_URIS ?? 'https://127.0.0.1:18770/redirect_uri').split(','), post_logout_redirect_uris: (env.IDP_POST_LOGOUT_REDIRECT_URIS ?? '').split(',').filter(Boolean) },
      { client_id: 'cli', client_secret: 'cli-secret', grant_types: ['password', 'client_credentials'], response_types: [], redirect_uris: [] },
    ],
    findAccount: async (ctx, sub) => (bySub.has(sub) ? { accountId: sub, claims: async () => ({ sub, ...claimsFor(sub, SCOPES.join(' ')) }) } : undefined),
    extraTokenClaims: async (ctx, token) => (token.accountId ? claimsFor(token.accountId, token.scope) : undefined),
    ttl: { AccessToken: (ctx, token) => token.harnessTtl ?? 3600 },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async (ctx, client) => client.clientAuthMethod !== 'none' },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, indicator) => {
          const rs = RESOURCES[indicator];
          if (!rs) throw new errors.InvalidTarget();
          return { scope: 'openid profile email eduperson_entitlement', audience: indicator, accessTokenFormat: rs.format, jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
  });

  // Password grant (harness only): one request mints a user's token.
  provider.registerGrantType('password', async (ctx) => {
    const { client, params } = ctx.oidc;
    const user = users[params.username];
    if (!user || params.password !== `${params.username}-pw`) throw new errors.InvalidGrant('wrong username or password');
    const scope = (params.scope ?? 'openid profile email eduperson_entitlement').split(' ').filter((s) => SCOPES.includes(s)).join(' ');
    const grant = new provider.Grant({ accountId: user.sub, clientId: client.clientId });
    grant.addOIDCScope(scope);
    const at = new provider.AccessToken({ accountId: user.sub, client, grantId: await grant.save(), gty: 'password', scope });
    if (params.resource) {
      const rs = RESOURCES[params.resource];
      if (!rs) throw new errors.InvalidTarget();
      at.resourceServer = new provider.ResourceServer(params.resource, {
        scope, audience: params.resource, accessTokenFormat: rs.format, jwt: { sign: { alg: 'RS256' } },
      });
    }
    const ttl = Number(params.ttl);
    if (Number.isInteger(ttl) && ttl > 0) at.harnessTtl = ttl;
    ctx.oidc.entity('AccessToken', at);
    const accessToken = await at.save();
    ctx.body = { access_token: accessToken, token_type: 'Bearer', expires_in: at.expiration, scope };
    // id_token=1: also the ID token a login would have returned, signed by
    // the provider itself (nonce and at_hash as in a code-flow answer).
    if (params.id_token === '1') {
      const idt = new provider.IdToken({ sub: user.sub, ...claimsFor(user.sub, scope) }, { ctx });
      idt.scope = scope;
      idt.set('nonce', 'harness-nonce');
      idt.set('at_hash', accessToken);
      ctx.body.id_token = await idt.issue({ use: 'idtoken' });
    }
  }, ['username', 'password', 'scope', 'resource', 'ttl', 'id_token']);

  provider.use(async (ctx, next) => {
    if (ctx.path === '/_harness/stats') {
      if (ctx.method === 'DELETE') for (const k of Object.keys(counts)) delete counts[k];
      ctx.body = { issuer, counts, down };
      return;
    }
    if (ctx.path === '/_harness/fault' && ctx.method === 'POST') {
      down = ctx.query.down === '1';
      ctx.body = { down };
      return;
    }
    const key = ctx.path === '/token/introspection' ? 'introspection'
      : ctx.path === '/token/revocation' ? 'revocation' : ctx.path.split('/')[1] || 'root';
    counts[key] = (counts[key] ?? 0) + 1;
    if (down) {
      ctx.status = 503;
      ctx.body = { error: 'temporarily_unavailable' };
      return;
    }
    await next();
    if (!QUIET) console.log(`${new Date().toISOString()} [${name}] ${ctx.method} ${ctx.path} ${ctx.status}`);
  });

  provider.use(interactions(provider, users));

  const server = TLS ? https.createServer(TLS, provider.callback()) : http.createServer(provider.callback());
  server.keepAliveTimeout = 65000;
  server.listen(port, '127.0.0.1', () => console.log(`${name} ready ${issuer} (accounts ${setName})`));
}

const specs = process.argv.slice(2);
if (specs.length === 0) {
  console.error('usage: node idp.js NAME=PORT[:ACCOUNTSET] ...');
  process.exit(2);
}
for (const s of specs) {
  const m = /^([a-z0-9-]+)=(\d+)(?::([a-z]+))?$/.exec(s);
  if (!m) throw new Error(`bad spec ${s}`);
  start(m[1], Number(m[2]), m[3] ?? 'a');
}
