#!/usr/bin/env node
// One Horizon-style WebSSO login through fedgate in headless Chromium.
// Test tooling for fedgate's end-to-end tests, not product code.
//
//   node login.mjs --url https://localhost:PORT/v3/auth/OS-FEDERATION/websso/openid?origin=... \
//        [--user alice] [--password alice-pw] [--abort] [--cookies-in FILE] [--cookies-out FILE]
//        [--header 'Name: value']... [--record-redirect FILE] [--pause-before-return FILE]
//
// The browser opens --url, logs in at the IdP (#username, #password,
// #submit, then #allow on the consent page; --abort clicks #abort instead),
// and ends either on Keystone's callback form, which auto-POSTs `token` to
// the origin (intercepted here: nothing leaves the machine), or on an error
// page. Prints one JSON object: {outcome, token?, status?, text?, url?, hops}.
// outcome: "token" | "error_page" | "timeout". Exit 0 unless the browser failed.
// --pause-before-return FILE: when the user confirms at the IdP (the last
// step before the IdP sends the browser back to fedgate), write FILE and
// wait for FILE.go before letting the request through (a test reloads
// fedgate while the login is in progress).
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'alice' },
    password: { type: 'string' },
    abort: { type: 'boolean', default: false },
    'cookies-in': { type: 'string' },
    'cookies-out': { type: 'string' },
    header: { type: 'string', multiple: true, default: [] },
    'record-redirect': { type: 'string' },
    'pause-before-return': { type: 'string' },
    timeout: { type: 'string', default: '30000' },
  },
});
if (!a.url) { console.error('--url is required'); process.exit(3); }
const password = a.password ?? `${a.user}-pw`;
const origin = new URL(new URL(a.url).searchParams.get('origin') ?? 'https://horizon.test/');
const deadline = Date.now() + Number(a.timeout);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
let result = { outcome: 'timeout', hops: [] };
try {
  const extraHTTPHeaders = Object.fromEntries(a.header.map((h) => { const i = h.indexOf(':'); return [h.slice(0, i).trim(), h.slice(i + 1).trim()]; }));
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders });
  if (a['cookies-in']) await ctx.addCookies(JSON.parse(fs.readFileSync(a['cookies-in'], 'utf8')));
  const page = await ctx.newPage();
  let token = null;
  // The dashboard: capture the POSTed token, answer locally.
  await page.route(`${origin.protocol}//${origin.host}/**`, async (route) => {
    const req = route.request();
    if (req.method() === 'POST') token = new URLSearchParams(req.postData() ?? '').get('token');
    await route.fulfill({ status: 200, contentType: 'text/html', body: '<p id="dashboard">dashboard</p>' });
  });
  // Only loopback hosts (fedgate, the IdP) may be reached.
  await page.route(/^https?:\/\/(?!127\.0\.0\.1|localhost|\[::1\])/, (route) => {
    if (route.request().url().startsWith(`${origin.protocol}//${origin.host}`)) return route.fallback();
    return route.abort();
  });
  if (a['pause-before-return']) {
    const marker = a['pause-before-return'];
    let paused = false;
    await page.route((u) => !paused && u.pathname.endsWith('/confirm'), async (route) => {
      paused = true;
      fs.writeFileSync(marker, 'paused');
      while (!fs.existsSync(`${marker}.go`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await route.continue();
    });
  }
  page.on('response', (r) => {
    // The full login-return URL (code and state) for replay tests; written
    // to a file the test owns, never printed.
    if (a['record-redirect'] && r.url().includes('code=')) fs.writeFileSync(a['record-redirect'], r.url());
    if (r.request().isNavigationRequest()) result.hops.push({ status: r.status(), url: r.url().replace(/([?&](code|state)=)[^&]{6}[^&]*/g, '$1…') });
  });
  let lastResp = await page.goto(a.url, { waitUntil: 'domcontentloaded' });
  while (Date.now() < deadline && !token) {
    if (await page.locator('#username').count()) {
      await page.fill('#username', a.user);
      await page.fill('#password', password);
      await Promise.all([page.waitForLoadState('domcontentloaded'), page.click('#submit')]);
      continue;
    }
    if (await page.locator('#allow').count()) {
      await Promise.all([page.waitForLoadState('domcontentloaded'), page.click(a.abort ? '#abort' : '#allow')]);
      continue;
    }
    // Keystone's callback page submits itself; fedgate's own pages do not.
    await page.waitForTimeout(200);
    if (token) break;
    const onDashboard = page.url().startsWith(`${origin.protocol}//${origin.host}`);
    const hasForm = await page.locator('form#sso').count().catch(() => 0);
    if (!onDashboard && !hasForm && (await page.locator('body').count())) {
      const last = result.hops.at(-1);
      if (last && last.status >= 400) {
        result = { ...result, outcome: 'error_page', status: last.status, url: page.url(),
                   text: (await page.locator('body').innerText()).slice(0, 400) };
        break;
      }
    }
  }
  if (token) result = { ...result, outcome: 'token', token };
  if (a['cookies-out']) fs.writeFileSync(a['cookies-out'], JSON.stringify(await ctx.cookies()));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
