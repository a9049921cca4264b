// Login and consent pages for the harness IdP's browser flow (fedgate's
// WebSSO tests). The element ids are what the browser script looks for:
// #username, #password, #submit, #login-error, #allow, #abort.
// The password of every test user is "<user>-pw".

const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function form(ctx) {
  const chunks = [];
  for await (const c of ctx.req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

// Koa middleware for /interaction/<uid>[/login|/confirm|/abort].
export function interactions(provider, users) {
  // Like provider.interactionFinished(), but lets Koa write the 303 (and
  // the cookies set on ctx).
  async function finish(ctx, result, mergeWithLastSubmission) {
    const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission });
    ctx.redirect(to);
    ctx.status = 303;
  }
  return async (ctx, next) => {
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(ctx.path);
    if (!m) return next();
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (e) {
      console.error(`interaction ${ctx.path}: ${e.message} ${e.error_description ?? ''}`);
      throw e;
    }
    const [, uid, action] = m;
    ctx.type = 'html';
    if (ctx.method === 'GET' && details.prompt.name === 'login') {
      ctx.body = page('Sign in', `<form id="login" method="post" action="/interaction/${uid}/login">
<input id="username" name="username"><input id="password" name="password" type="password">
<button id="submit" type="submit">Sign in</button></form>`);
      return;
    }
    if (ctx.method === 'GET') {
      ctx.body = page('Authorize', `<p id="scopes">${esc(details.params.scope)}</p>
<form id="consent" method="post" action="/interaction/${uid}/confirm"><button id="allow" type="submit">Allow</button></form>
<form method="post" action="/interaction/${uid}/abort"><button id="abort" type="submit">Deny</button></form>`);
      return;
    }
    if (action === 'login') {
      const f = await form(ctx);
      const user = users[f.get('username')];
      if (!user || f.get('password') !== `${f.get('username')}-pw`) {
        ctx.body = page('Sign in', `<p id="login-error">Invalid username or password.</p><a href="/interaction/${uid}">retry</a>`);
        return;
      }
      return finish(ctx, { login: { accountId: user.sub } }, false);
    }
    if (action === 'confirm') {
      const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      return finish(ctx, { consent: { grantId } }, true);
    }
    return finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  };
}
