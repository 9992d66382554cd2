// A local OpenID Provider for tests/integration/oauth.rs: the npm package `oidc-provider`
// (a certified implementation), installed by scripts/install-client-tools.sh, configured for
// the client-credentials grant with resource indicators (RFC 8707), JWT access tokens (opaque
// ones for one client) and token introspection (RFC 7662).
//
//   OIDC_MODULES=.../node_modules PORT=9000 RESOURCE=http://127.0.0.1:8000/mcp \
//     node tests/clients/oidc_provider.mjs
//
// Clients (secret = `<client_id>-secret`), each a store manager's assistant or an operator:
//   seattle-writer   tenant SEATTLE, scopes pgmcp:read pgmcp:write
//   seattle-reader   tenant SEATTLE, scope pgmcp:read
//   redmond-reader   tenant REDMOND, scope pgmcp:read
//   no-scope         tenant SEATTLE, no scope
//   short-lived      tenant SEATTLE, pgmcp:read, tokens live 1 s
//   dba              no tenant, pgmcp:read pgmcp:operator
//   seattle-opaque   tenant SEATTLE, pgmcp:read, opaque access tokens (not JWTs)
//   pg-mcp           no tenant, no scope: the resource server's own client, for introspection
//
// Introspection (RFC 7662) is at /token/introspection, named in the metadata.
//
// Test hooks, beside the provider: SIGHUP rotates the signing key (a new ES256 key signs, the
// old one stays published), SIGUSR2 drops every key but the newest, and GET /test/jwks-hits
// counts the JWKS requests served. It prints `READY <issuer>` once listening.
import http from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.OIDC_MODULES;
const port = Number(process.env.PORT);
const resource = process.env.RESOURCE;
const tenants = { SEATTLE: process.env.SEATTLE, REDMOND: process.env.REDMOND };
if (!modules || !port || !resource || !tenants.SEATTLE || !tenants.REDMOND) {
  console.error('set OIDC_MODULES, PORT, RESOURCE, SEATTLE and REDMOND');
  process.exit(2);
}
const load = (pkg, file) => import(pathToFileURL(join(modules, pkg, file)).href);
const { default: Provider, errors } = await load('oidc-provider', 'lib/index.js');
const jose = await load('jose', 'dist/webapi/index.js');

const issuer = `http://127.0.0.1:${port}`;
const scopes = ['pgmcp:read', 'pgmcp:write', 'pgmcp:operator'];
const clients = [
  ['seattle-writer', 'SEATTLE', 'pgmcp:read pgmcp:write'],
  ['seattle-reader', 'SEATTLE', 'pgmcp:read'],
  ['redmond-reader', 'REDMOND', 'pgmcp:read'],
  ['no-scope', 'SEATTLE', ''],
  ['short-lived', 'SEATTLE', 'pgmcp:read'],
  ['dba', null, 'pgmcp:read pgmcp:operator'],
  ['seattle-opaque', 'SEATTLE', 'pgmcp:read'],
  ['pg-mcp', null, ''],
].map(([id, tenant, scope]) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  // Only ES256 keys are published; every token this provider signs uses them.
  id_token_signed_response_alg: 'ES256',
  scope: scope || undefined,
  tenant: tenant ? tenants[tenant] : undefined,
}));

let generation = 0;
async function newKey() {
  generation += 1;
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid: `key-${generation}`, alg: 'ES256', use: 'sig' };
}

function build(keys) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    scopes,
    extraClientMetadata: { properties: ['tenant'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        // Any https resource, or this test's: the token's audience is what was asked for.
        getResourceServerInfo: (ctx, indicator, client) => {
          if (!indicator.startsWith('http')) throw new errors.InvalidTarget();
          return {
            scope: scopes.join(' '),
            audience: indicator,
            accessTokenTTL: client.clientId === 'short-lived' ? 1 : 600,
            accessTokenFormat: client.clientId === 'seattle-opaque' ? 'opaque' : 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx) => {
      const tenant = ctx.oidc.client?.tenant;
      return tenant ? { rls_user_id: tenant } : {};
    },
  });
  provider.proxy = false;
  return provider;
}

let keys = [await newKey()];
let provider = build(keys);
let jwksHits = 0;
let introspections = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/test/jwks-hits') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ hits: jwksHits, kids: keys.map((k) => k.kid), introspections }));
    return;
  }
  if (req.url.startsWith('/jwks')) jwksHits += 1;
  if (req.url.startsWith('/token/introspection')) introspections += 1;
  provider.callback()(req, res);
});

process.on('SIGHUP', async () => {
  keys = [await newKey(), ...keys];
  provider = build(keys);
  console.log(`ROTATED ${keys.map((k) => k.kid).join(',')}`);
});
process.on('SIGUSR2', () => {
  keys = keys.slice(0, 1);
  provider = build(keys);
  console.log(`DROPPED ${keys.map((k) => k.kid).join(',')}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

server.listen(port, '127.0.0.1', () => console.log(`READY ${issuer}`));
