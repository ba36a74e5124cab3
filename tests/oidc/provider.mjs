// A real OpenID Connect provider (npm oidc-provider) on loopback, for FactoryLab's tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"issuer": "http://127.0.0.1:9400", "client": {"client_id", "client_secret",
// "redirect_uris": [...]}, "users": [{"login", "password", "claims": {...}}]}.
// Users log in on its own HTML form (checked passwords); consent is implied for the one
// client, as a site's IdP does for its own services. Prints "ready" when it listens.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((user) => [user.login, user]));
const scopes = ['openid', 'profile', 'email', 'groups'];

const provider = new Provider(config.issuer, {
  clients: [{
    ...config.client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  scopes,
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [config.cookie_key || 'factorylab-test-provider'] },
  async findAccount(ctx, sub) {
    const user = users.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(scopes.join(' '));
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  return `<!doctype html><html><head><title>Test IdP: sign in</title></head><body>
<h1>Test identity provider</h1>
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label>Username <input name="login" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(loginPage(uid));
    return;
  }
  const form = await readForm(req);
  const user = users.get(form.get('login'));
  if (!user || user.password !== form.get('password')) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(loginPage(uid, 'Wrong username or password.'));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.login } }, {
    mergeWithLastSubmission: false,
  });
}

const handler = provider.callback();
const url = new URL(config.issuer);
http.createServer(async (req, res) => {
  const match = /^\/interaction\/([^/?]+)/.exec(req.url);
  if (!match) return handler(req, res);
  try {
    await interaction(req, res, match[1]);
  } catch (error) {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    res.end(`interaction failed: ${error.message}`);
  }
}).listen(Number(url.port), url.hostname, () => console.log('ready'));
