// A local OpenID Connect provider for the console under `make dev` (scripts/dev.sh): it stands in
// for the Cognito user pool of template.yaml, so the console signs its users in locally exactly
// as it does in AWS (authorization code + PKCE, ID token verified against this issuer's JWKS).
// Not deployed; never expose it beyond loopback (every demo user shares one published password).
//
// Environment (scripts/dev.sh sets them):
//   OIDC_PORT           port, and part of the issuer http://127.0.0.1:$OIDC_PORT      (3001)
//   OIDC_HOST           interface to listen on                                        (127.0.0.1)
//   OIDC_CLIENT_ID      the console's client id                                       (kiro-console-local)
//   CONSOLE_BASE_URL    the console's origin; redirect URI <base>/console/auth/callback (http://127.0.0.1:3000)
//   OIDC_USERS_FILE     the demo directory's users: `scripts/local_stack.py demo-users` (<repo>/.local/demo-users.json)
//   OIDC_DEMO_PASSWORD  the one password every demo user signs in with               (demo)
//
// The ID token itself carries preferred_username (the Identity Center userName), email and name:
// the console reads its user from the ID token, not from the userinfo endpoint.

import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

const HERE = dirname(fileURLToPath(import.meta.url));
const PORT = Number(process.env.OIDC_PORT || 3001);
const HOST = process.env.OIDC_HOST || '127.0.0.1';
// The issuer names 127.0.0.1 whatever interface is listened on: the console and the browser
// both reach it there, and the ID token's `iss` must equal the URL the console was given.
const ISSUER = `http://127.0.0.1:${PORT}`;
const CLIENT_ID = process.env.OIDC_CLIENT_ID || 'kiro-console-local';
const CONSOLE_BASE_URL = (process.env.CONSOLE_BASE_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const USERS_FILE = process.env.OIDC_USERS_FILE || join(HERE, '..', '..', '.local', 'demo-users.json');
const DEMO_PASSWORD = process.env.OIDC_DEMO_PASSWORD || 'demo';

function log(message) {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

// ------------------------------------------------------------------------------------ accounts

function loadUsers(file) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    process.stderr.write(`cannot read the demo users from ${file} (${err.message}); `
      + 'write them with: scripts/local_stack.py demo-users > FILE, and set OIDC_USERS_FILE=FILE\n');
    process.exit(2);
  }
  const users = new Map();
  for (const u of doc.users || []) {
    users.set(u.userName, u);
  }
  if (users.size === 0) {
    process.stderr.write(`${file} lists no users\n`);
    process.exit(2);
  }
  return users;
}

const USERS = loadUsers(USERS_FILE);

// The subject is the userName: stable across restarts (the directory's ids are not: moto picks
// them anew each run), and the console keys nothing on `sub` anyway.
async function findAccount(_ctx, sub) {
  const user = USERS.get(sub);
  if (!user) {
    return undefined;
  }
  return {
    accountId: sub,
    // Only the claims of the granted scopes leave the provider (see `claims` below).
    async claims() {
      return {
        sub,
        preferred_username: user.userName,
        email: user.email,
        email_verified: true,
        name: user.displayName,
        given_name: user.givenName,
        family_name: user.familyName,
      };
    },
  };
}

function passwordMatches(given) {
  const a = Buffer.from(String(given ?? ''));
  const b = Buffer.from(DEMO_PASSWORD);
  return a.length === b.length && timingSafeEqual(a, b);
}

// ------------------------------------------------------------------------------------- pages

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

// Everything a page needs is inline, under a per-response nonce: nothing is loaded from
// elsewhere. form-action names the console's origin too, because browsers check it against
// the redirects that follow a form post (sign-in and sign-out both end at the console).
function securityHeaders(nonce) {
  return {
    'content-security-policy': [
      "default-src 'none'",
      `style-src 'nonce-${nonce}'`,
      `script-src 'nonce-${nonce}'`,
      `form-action 'self' ${new URL(CONSOLE_BASE_URL).origin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  };
}

const STYLE = `
  body { font-family: system-ui, sans-serif; margin: 0; background: #f2f3f3; color: #16191f; }
  main { max-width: 24rem; margin: 4rem auto; background: #fff; padding: 1.5rem 2rem 2rem;
         border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.2); }
  h1 { font-size: 1.4rem; margin-top: 0; }
  label { display: block; font-weight: 600; margin: 1rem 0 .25rem; }
  input { box-sizing: border-box; width: 100%; padding: .5rem; font-size: 1rem; }
  button { margin-top: 1.25rem; width: 100%; padding: .6rem; font-size: 1rem; font-weight: 600;
           color: #fff; background: #0972d3; border: 0; border-radius: 4px; cursor: pointer; }
  :focus-visible { outline: 3px solid #ff9900; outline-offset: 2px; }
  .error { color: #d91515; background: #fff7f7; border-left: 4px solid #d91515; padding: .5rem .75rem; }
  .hint { color: #5f6b7a; font-size: .9rem; }
  code { background: #f2f3f3; padding: 0 .2rem; }
`;

function page({ title, body, nonce, script = '' }) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Local identity provider</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
${script ? `<script nonce="${nonce}">${script}</script>` : ''}
</body>
</html>`;
}

function demoUsersHint() {
  const names = [...USERS.values()].map((u) => {
    const roles = (u.groups || []).filter((g) => /^Kiro/.test(g));
    return roles.length ? `<code>${escapeHtml(u.userName)}</code> (${escapeHtml(roles.join(', '))})`
      : `<code>${escapeHtml(u.userName)}</code>`;
  });
  return `<p class="hint">Local demo directory: ${names.join(', ')}. Password for all: `
    + `<code>${escapeHtml(DEMO_PASSWORD)}</code>.</p>`;
}

function signInPage({ uid, clientName, userName = '', error = '' }) {
  const nonce = randomBytes(16).toString('base64');
  const body = `
<h1>Sign in</h1>
<p>to ${escapeHtml(clientName)}</p>
${error ? `<p class="error" role="alert" id="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${encodeURIComponent(uid)}/login" autocomplete="off">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" required autofocus autocapitalize="none"
         spellcheck="false" value="${escapeHtml(userName)}"${error ? ' aria-describedby="error" aria-invalid="true"' : ''}>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required${error ? ' aria-describedby="error" aria-invalid="true"' : ''}>
  <button type="submit">Sign in</button>
</form>
${demoUsersHint()}`;
  return { html: page({ title: 'Sign in', body, nonce }), headers: securityHeaders(nonce) };
}

// ------------------------------------------------------------------------------- the provider

// A fresh RS256 key each start: the console fetches the JWKS (and would refetch on an unknown kid).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `local-${randomUUID()}`, use: 'sig', alg: 'RS256' };

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'Kiro subscriptions console (local)',
    // A public client: no secret, PKCE instead. A `web` client may register an http redirect
    // URI on a loopback host as long as it does not use the implicit flow.
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${CONSOLE_BASE_URL}/console/auth/callback`],
    post_logout_redirect_uris: [`${CONSOLE_BASE_URL}/console`],
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    // Browsers share cookies between the ports of one host: names of our own, so that this
    // provider's cookies never collide with the console's on 127.0.0.1.
    names: { session: 'local_idp_session', interaction: 'local_idp_interaction', resume: 'local_idp_resume' },
  },
  findAccount,
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  },
  // Put the scopes' claims in the ID token too (by default only userinfo has them when an
  // access token is issued alongside), as Cognito does.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false }, // our own sign-in page below
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
  },
  // The console is first party: its grant is made on sign-in, so no consent screen is shown.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) {
        return existing;
      }
    }
    if (ctx.oidc.client.clientId !== CLIENT_ID) {
      return undefined;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: CLIENT_ID, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  renderError,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 12 * 3600,
    Grant: 12 * 3600,
  },
};

// Sign-out signs out at once, as Cognito's /logout does: the page posts its confirmation form
// itself (a button remains for browsers without scripts).
async function logoutSource(ctx, form) {
  const nonce = randomBytes(16).toString('base64');
  ctx.set(securityHeaders(nonce));
  ctx.type = 'html';
  ctx.body = page({
    title: 'Signing out',
    nonce,
    body: `<h1>Signing out</h1>
${form.replace('<form ', '<form hidden ').replace('</form>', '<input type="hidden" name="logout" value="yes"></form>')}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`,
    script: "document.getElementById('op.logoutForm').submit();",
  });
}

async function postLogoutSuccessSource(ctx) {
  const nonce = randomBytes(16).toString('base64');
  ctx.set(securityHeaders(nonce));
  ctx.type = 'html';
  ctx.body = page({
    title: 'Signed out',
    nonce,
    body: `<h1>Signed out</h1>
<p>You are signed out of the local identity provider.</p>
<p><a href="${escapeHtml(CONSOLE_BASE_URL)}/console">Back to the console</a></p>`,
  });
}

async function renderError(ctx, out) {
  const nonce = randomBytes(16).toString('base64');
  ctx.set(securityHeaders(nonce));
  ctx.type = 'html';
  log(`error: ${out.error}${out.error_description ? ` (${out.error_description})` : ''}`);
  ctx.body = page({
    title: 'Sign-in error',
    nonce,
    body: `<h1>Sign-in error</h1>
<p class="error" role="alert"><strong>${escapeHtml(out.error)}</strong>${out.error_description ? `: ${escapeHtml(out.error_description)}` : ''}</p>
<p><a href="${escapeHtml(CONSOLE_BASE_URL)}/console">Back to the console</a></p>`,
  });
}

const provider = new Provider(ISSUER, configuration);

provider.on('server_error', (_ctx, err) => log(`server error: ${err.stack || err}`));
provider.on('authorization.error', (_ctx, err) => log(`authorization error: ${err.message} ${err.error_description || ''}`));
provider.on('grant.error', (_ctx, err) => log(`token error: ${err.message} ${err.error_description || ''}`));
provider.on('end_session.success', (ctx) => log(`signed out: ${ctx.oidc.session?.accountId || '(no session)'}`));

// --------------------------------------------------------------------------- interactions

function readForm(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) {
        reject(new Error('form too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function send(res, status, html, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
  res.end(html);
}

async function interaction(req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    // An expired or foreign interaction (e.g. the page was left open past its TTL).
    const nonce = randomBytes(16).toString('base64');
    send(res, 400, page({
      title: 'Sign-in expired',
      nonce,
      body: `<h1>Sign-in expired</h1><p class="error" role="alert">This sign-in request is no longer valid.</p>
<p><a href="${escapeHtml(CONSOLE_BASE_URL)}/console">Start again from the console</a></p>`,
    }), securityHeaders(nonce));
    log(`interaction ${uid}: ${err.message}`);
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, 'interaction mismatch');
    return;
  }
  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName || details.params.client_id;

  if (details.prompt.name === 'consent') {
    // Not reached for the console (its grant is made in loadExistingGrant); any other prompt
    // for consent is granted as asked: this provider has one, first-party, client.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  if (req.method === 'GET' && !action) {
    const { html, headers } = signInPage({ uid, clientName, userName: details.params.login_hint || '' });
    send(res, 200, html, headers);
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const userName = (form.get('username') || '').trim();
    const known = USERS.has(userName);
    if (!known || !passwordMatches(form.get('password'))) {
      log(`sign-in refused for ${JSON.stringify(userName)}: ${known ? 'wrong password' : 'not a demo user'}`);
      const error = known
        ? 'Wrong password. Every demo user signs in with the demo password shown below.'
        : `"${userName}" is not a user of the local demo directory. Sign in as one of the users below.`;
      const { html, headers } = signInPage({ uid, clientName, userName, error });
      send(res, 401, html, headers);
      return;
    }
    log(`signed in: ${userName}`);
    await provider.interactionFinished(req, res, { login: { accountId: userName } }, { mergeWithLastSubmission: false });
    return;
  }
  send(res, 405, 'method not allowed', { allow: 'GET, POST' });
}

// ------------------------------------------------------------------------------------ server

const callback = provider.callback();

const server = createServer(async (req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    // Never the query: it carries codes and tokens.
    log(`${req.method} ${req.url.split('?')[0]} ${res.statusCode} ${Date.now() - started}ms`);
  });
  const url = new URL(req.url, ISSUER);
  if (url.pathname.startsWith('/interaction/')) {
    try {
      await interaction(req, res, url);
    } catch (err) {
      log(`interaction failed: ${err.stack || err}`);
      if (!res.headersSent) {
        send(res, 500, 'Internal error of the local identity provider; see its log.');
      }
    }
    return;
  }
  callback(req, res);
});

server.listen(PORT, HOST, () => {
  log(`local OpenID Connect provider ${ISSUER} (discovery ${ISSUER}/.well-known/openid-configuration)`);
  log(`client ${CLIENT_ID}: redirect ${CONSOLE_BASE_URL}/console/auth/callback, sign-out back to ${CONSOLE_BASE_URL}/console`);
  log(`demo users (${USERS_FILE}): ${[...USERS.keys()].join(', ')}; password: ${DEMO_PASSWORD}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // keep-alive browsers would otherwise hold the exit up
  });
}
