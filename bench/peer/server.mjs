#!/usr/bin/env node
// Benchmark peer: node-oidc-provider (pinned in package.json) serving token introspection and
// the refresh-token grant over HTTPS, for bench/run.sh to compare against dotgit.
//
//   node bench/peer/server.mjs --port 4443 --cert cert.pem --key key.pem --out DIR --tokens 1000
//
// Before listening it mints N opaque access tokens and N refresh tokens (one grant per token)
// and writes DIR/access_tokens.txt, DIR/refresh_tokens.txt and DIR/peer.env; then prints
// `ready` on stdout. stdout carries nothing else. Errors are counted, never logged per request;
// the counts go to stderr when the process gets SIGTERM/SIGINT.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { parseArgs } from 'node:util';

// oidc-provider prints start-up NOTICEs with console.info (stdout): keep stdout for `ready`.
console.info = (...a) => console.error(...a);

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    out: { type: 'string' },
    tokens: { type: 'string', default: '1000' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
for (const k of ['port', 'cert', 'key', 'out']) {
  if (!opt[k]) {
    console.error(`usage: node server.mjs --port PORT --cert CERT.pem --key KEY.pem --out DIR [--tokens N]\nmissing --${k}`);
    process.exit(2);
  }
}
const PORT = Number(opt.port);
const N = Number(opt.tokens);
if (!Number.isInteger(PORT) || PORT <= 0 || !Number.isInteger(N) || N < 1) {
  console.error('--port and --tokens must be positive integers');
  process.exit(2);
}

const errors = Object.create(null);
const count = (name) => { errors[name] = (errors[name] || 0) + 1; };
process.on('unhandledRejection', () => count('unhandledRejection'));
process.on('uncaughtException', () => count('uncaughtException'));

const { default: Provider } = await import('oidc-provider');
// The default in-memory adapter keeps its data in a QuickLRU of maxSize 1000: with N grants,
// 2N tokens and a new refresh + access token per refresh grant it would evict live tokens
// mid-run. Keep the same adapter code but hand it a store that never evicts during a bench.
const { setStorage } = await import('oidc-provider/lib/adapters/memory_adapter.js');
const { default: QuickLRU } = await import('quick-lru');
setStorage(new QuickLRU({ maxSize: 50_000_000 }));

const ISSUER = `https://${opt.host}:${PORT}`;
const CLIENT_ID = 'bench-client';
const CLIENT_SECRET = crypto.randomBytes(32).toString('hex');
const ACCOUNT_ID = 'bench-user';
const SCOPE = 'offline_access repo:read';

const jwk = (type, o) => ({
  ...crypto.generateKeyPairSync(type, o).privateKey.export({ format: 'jwk' }),
  kid: crypto.randomUUID(),
});

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: ['https://client.example/cb'],
    scope: `openid ${SCOPE}`,
  }],
  scopes: ['openid', 'offline_access', 'repo:read'],
  responseTypes: ['code'],
  features: {
    devInteractions: { enabled: false },
    // like dotgit: a client learns only about its own tokens (others introspect as inactive)
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, caller, token) => token.clientId === caller.clientId,
    },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
  },
  // access tokens stay opaque: no resource indicators, so v8's default 'opaque' format applies
  rotateRefreshToken: true, // strict rotation, as dotgit does
  ttl: {
    AccessToken: 2 * 60 * 60,
    ClientCredentials: 2 * 60 * 60,
    RefreshToken: 30 * 24 * 60 * 60,
    Grant: 30 * 24 * 60 * 60,
    AuthorizationCode: 60,
    IdToken: 60 * 60,
    Interaction: 60 * 60,
    Session: 24 * 60 * 60,
  },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  jwks: { keys: [jwk('ec', { namedCurve: 'P-256' }), jwk('rsa', { modulusLength: 2048 })] },
});
for (const ev of ['server_error', 'grant.error', 'introspection.error', 'revocation.error']) {
  provider.on(ev, () => count(ev));
}
provider.app.on('error', () => count('koa'));

// Mint the tokens with the provider's own models, one grant (family) per token.
const client = await provider.Client.find(CLIENT_ID);
async function newGrant() {
  const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: CLIENT_ID });
  grant.addOIDCScope(SCOPE);
  return grant.save();
}
const common = { accountId: ACCOUNT_ID, client, gty: 'authorization_code', scope: SCOPE };
const access = [];
const refresh = [];
for (let i = 0; i < N; i += 1) {
  access.push(await new provider.AccessToken({ ...common, grantId: await newGrant() }).save());
  refresh.push(await new provider.RefreshToken({ ...common, grantId: await newGrant() }).save());
}

const route = (r) => r; // default routes, issuer has no path component
fs.mkdirSync(opt.out, { recursive: true });
fs.writeFileSync(path.join(opt.out, 'access_tokens.txt'), `${access.join('\n')}\n`);
fs.writeFileSync(path.join(opt.out, 'refresh_tokens.txt'), `${refresh.join('\n')}\n`);
fs.writeFileSync(path.join(opt.out, 'peer.env'), [
  `CLIENT_ID=${CLIENT_ID}`,
  `CLIENT_SECRET=${CLIENT_SECRET}`,
  `INTROSPECT_PATH=${route('/token/introspection')}`,
  `TOKEN_PATH=${route('/token')}`,
  `REVOKE_PATH=${route('/token/revocation')}`,
  '',
].join('\n'));

const server = https.createServer({
  cert: fs.readFileSync(opt.cert),
  key: fs.readFileSync(opt.key),
  keepAlive: true,
}, provider.callback());
server.keepAliveTimeout = 75_000;
server.headersTimeout = 80_000;
server.on('tlsClientError', () => count('tlsClientError'));
server.on('clientError', (err, socket) => { count('clientError'); socket.destroy(); });

const stop = () => {
  console.error(`oidc-provider peer: errors ${JSON.stringify(errors)}`);
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(PORT, opt.host, () => { process.stdout.write('ready\n'); });
