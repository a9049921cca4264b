#!/usr/bin/env node
// A user at the real Horizon, in headless Chromium, through fedgate.
// Test tooling for tests/horizon_e2e.rs, not product code.
//
//   node login.mjs --horizon https://localhost:19080/dashboard/ --fedgate https://localhost:19081
//        [--choice openid|egi_openid] [--user alice] [--expect-user SUB] [--expect-project P]
//        [--anonymous-first] [--cross-site-logout] [--logout] [--relogin] [--screens DIR]
//
// 1. (--anonymous-first) open the dashboard's root without a session: Horizon
//    sends anonymous users to LOGIN_URL (fedgate's logout path), which must
//    bring them back to Horizon's login page, not loop
// 2. Horizon's login page: pick --choice in the chooser, "Sign In"; Horizon
//    sends the browser to fedgate's WebSSO URL; fedgate to the IdP; log in
//    (#username/#password/#submit, #allow on consent); back through fedgate
//    and Keystone's callback form (auto-POST of the token to Horizon)
// 3. Horizon's project overview: title, user menu, project menu
// 4. (--cross-site-logout) a page on another site (https://evil.test, served
//    by this script) links to fedgate's logout path; the user follows it
// 5. (--logout) the user menu's "Sign Out" (a POST with Horizon's CSRF
//    token); the chain is followed, the IdP's logout question answered "yes"
// 6. (--relogin) "Sign In" with the same choice: does the IdP ask for the
//    password, or is the user logged straight back in?
// Prints one JSON object; exit 0 when it ran (the test judges), 3 when not.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    horizon: { type: 'string' },
    fedgate: { type: 'string' },
    choice: { type: 'string', default: 'openid' },
    user: { type: 'string', default: 'alice' },
    password: { type: 'string' },
    'expect-user': { type: 'string', default: '' },
    'expect-project': { type: 'string', default: 'fedcloud.egi.eu' },
    'anonymous-first': { type: 'boolean', default: false },
    'cross-site-logout': { type: 'boolean', default: false },
    logout: { type: 'boolean', default: false },
    relogin: { type: 'boolean', default: false },
    'session-cookie': { type: 'string', default: 'fedgate_session' },
    screens: { type: 'string' },
    timeout: { type: 'string', default: '90000' },
  },
});
if (!o.horizon || !o.fedgate) { console.error('--horizon and --fedgate are required'); process.exit(3); }
const req = createRequire(new URL('../websso/package.json', import.meta.url));
const { chromium } = req('playwright-core');
const horizon = new URL(o.horizon);
const fedgate = new URL(o.fedgate);
const timeout = Number(o.timeout);
const T0 = Date.now();
const out = { ok_ran: false, choice: o.choice, steps: [], hops: [] };
const step = (what, extra = {}) => out.steps.push({ ms: Date.now() - T0, what, ...extra });
const hide = (u) => u.replace(/([?&](code|state|id_token_hint|nonce)=)[^&]{6}[^&]*/g, '$1…');
const onHorizon = (u, sub) => u.startsWith(horizon.href) && new URL(u).pathname.startsWith(horizon.pathname + sub);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
let page;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  ctx.setDefaultTimeout(timeout);
  // Only loopback hosts are reached; https://evil.test is this script's own page.
  await ctx.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/]|\[::1\])/, async (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === 'evil.test') {
      const logout = new URL('/v3/auth/OS-FEDERATION/websso/logout', fedgate).href;
      await route.fulfill({ status: 200, contentType: 'text/html',
        body: `<!DOCTYPE html><title>another site</title><img src="${logout}"><a id="go" href="${logout}">win a prize</a>` });
      return;
    }
    await route.abort();
  });
  page = await ctx.newPage();
  // Every top-level navigation, with the Sec-Fetch-* headers Chromium sent.
  // (taken at the response: only then are the network stack's headers known)
  page.on('response', async (resp) => {
    const r = resp.request();
    if (!r.isNavigationRequest() || r.frame() !== page.mainFrame()) return;
    const h = await r.allHeaders().catch(() => ({}));
    out.hops.push({ ms: Date.now() - T0, method: r.method(), url: hide(r.url()),
      sec_fetch_site: h['sec-fetch-site'], sec_fetch_mode: h['sec-fetch-mode'] });
  });
  const shot = async (name) => {
    if (!o.screens) return;
    fs.mkdirSync(o.screens, { recursive: true });
    await page.screenshot({ path: path.join(o.screens, name) }).catch(() => {});
  };
  const sessionCookie = async () => (await ctx.cookies(fedgate.href)).some((c) => c.name === o['session-cookie']);
  const text = async () => (await page.locator('body').innerText().catch(() => '')).replace(/\s+/g, ' ');

  if (o['anonymous-first']) {
    await page.goto(horizon.href);
    await page.waitForSelector('#id_auth_type');
    out.anonymous = { url: page.url(), chooser: true, hops: out.hops.length };
    step('anonymous visit ends on the login page', out.anonymous);
  }

  // ---- login
  await page.goto(new URL('auth/login/', horizon).href);
  await page.waitForSelector('#id_auth_type');
  out.choices = await page.$$eval('#id_auth_type option', (os) => os.map((x) => x.value));
  await shot('horizon-login.png');
  await page.selectOption('#id_auth_type', o.choice);
  const tLogin = Date.now();
  await page.click('#loginBtn', { noWaitAfter: true });
  await page.waitForSelector('#username');
  out.idp_login_url = hide(page.url());
  step('IdP login page', { url: out.idp_login_url });
  await page.fill('#username', o.user);
  await page.fill('#password', o.password ?? `${o.user}-pw`);
  await page.click('#submit', { noWaitAfter: true });
  const after = await Promise.race([
    page.waitForSelector('#allow', { timeout: 0 }).then(() => 'consent'),
    page.waitForURL((u) => onHorizon(u.href, 'project'), { timeout: 0 }).then(() => 'horizon'),
    new Promise((r) => setTimeout(() => r('timeout'), timeout)),
  ]);
  if (after === 'consent') await page.click('#allow', { noWaitAfter: true });
  else if (after !== 'horizon') throw new Error(`after the IdP login: ${after}`);
  await page.waitForURL((u) => onHorizon(u.href, '') && !onHorizon(u.href, 'auth/'), { waitUntil: 'load' });
  out.login_ms = Date.now() - tLogin;
  await shot('overview.png');
  out.overview = await page.evaluate(() => {
    const t = (sel) => [...document.querySelectorAll(sel)].map((e) => e.innerText.trim().replace(/\s+/g, ' ')).filter(Boolean);
    return { url: location.href, title: document.title,
      user_menu: t('.user-menu .user-name, #profile_editor_switcher .user-name, li.dropdown.user-menu > a'),
      project_menu: t('.context-project, #context_switcher .context-project'),
      messages: t('.messages .alert'),
      text: document.body.innerText.replace(/\s+/g, ' ').slice(0, 800) };
  });
  out.session_cookie_after_login = await sessionCookie();
  step('landed', { url: out.overview.url, login_ms: out.login_ms });

  // ---- another site links to the logout path
  if (o['cross-site-logout']) {
    const hops = out.hops.length;
    await page.goto('https://evil.test/');
    await Promise.all([page.waitForLoadState('load'), page.click('#go')]);
    out.cross_site = { url: hide(page.url()), confirmation_page: (await page.locator('form#logout').count()) > 0,
      text: (await text()).slice(0, 200), session_cookie: await sessionCookie(),
      hops: out.hops.slice(hops) };
    step('cross-site logout link followed', { confirmation: out.cross_site.confirmation_page });
    await shot('cross-site.png');
    await page.goto(new URL('project/', horizon).href);
    out.cross_site.still_in_horizon = onHorizon(page.url(), 'project');
  }

  // ---- Horizon's Sign Out
  if (o.logout) {
    const hops = out.hops.length;
    // A person clicks Sign Out on a page that has settled. Horizon refreshes
    // its signed-cookie session on every response (SESSION_REFRESH), so an
    // XHR of the page still in flight would set the session cookie again
    // after the logout cleared it and Horizon would stay signed in: seen on
    // a loaded CI machine, a Horizon race and not fedgate's.
    await page.waitForLoadState('networkidle', { timeout: 30000 }).catch(() => {});
    const tOut = Date.now();
    await page.evaluate(() => document.querySelector('form[action$="/auth/logout/"]').submit());
    const where = await Promise.race([
      page.waitForSelector('button[name="logout"][value="yes"]', { timeout: 0 }).then(() => 'idp_question'),
      page.waitForSelector('#id_auth_type', { timeout: 0 }).then(() => 'horizon_login'),
      new Promise((r) => setTimeout(() => r('timeout'), timeout)),
    ]);
    out.logout = { first_stop: where, first_stop_url: hide(page.url()) };
    await shot('logout-question.png');
    if (where === 'idp_question') {
      await page.click('button[name="logout"][value="yes"]', { noWaitAfter: true });
      await page.waitForSelector('#id_auth_type');
    }
    out.logout.url = page.url();
    out.logout.ms = Date.now() - tOut;
    out.logout.on_login_page = onHorizon(page.url(), 'auth/login') && (await page.locator('#id_auth_type').count()) > 0;
    out.logout.session_cookie = await sessionCookie();
    out.logout.hops = out.hops.slice(hops);
    await shot('signed-out.png');
    step('signed out', { url: out.logout.url });
  }

  // ---- "Sign In" again with the same choice
  if (o.relogin) {
    await page.waitForSelector('#id_auth_type');
    await page.selectOption('#id_auth_type', o.choice);
    const t = Date.now();
    await page.click('#loginBtn', { noWaitAfter: true });
    const where = await Promise.race([
      page.waitForSelector('#username', { timeout: 0 }).then(() => 'idp_asks_password'),
      page.waitForURL((u) => onHorizon(u.href, 'project'), { timeout: 0 }).then(() => 'horizon_without_password'),
      new Promise((r) => setTimeout(() => r('timeout'), timeout)),
    ]);
    out.relogin = { outcome: where, url: hide(page.url()), ms: Date.now() - t };
    await shot('relogin.png');
    step('sign in again', out.relogin);
  }
  out.ok_ran = true;
  await ctx.close();
} catch (e) {
  out.error = e.message.split('\n')[0];
  if (page) out.error_page = { url: hide(page.url()), text: (await page.locator('body').innerText().catch(() => '')).slice(0, 400) };
} finally {
  await browser.close().catch(() => {});
}
out.ms = Date.now() - T0;
console.log(JSON.stringify(out));
