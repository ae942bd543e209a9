// A real OpenID Connect provider (panva/oidc-provider) for bastion's OIDC tests.
//
//   node provider.mjs PORT
//
// Issuer http://127.0.0.1:PORT. One confidential client for the client_credentials grant
// ("bastion-test" / "bastion-test-secret", HTTP Basic), issuing RFC 9068 JWT access tokens for
// these resource indicators (audiences), one per signing algorithm:
//
//   https://api.bastion.test/es256   ES256 (the default resource)
//   https://api.bastion.test/eddsa   EdDSA (Ed25519)
//   https://api.bastion.test/rs256   RS256
//   https://api.bastion.test/ps256   PS256
//
// Test-only control routes (loopback only, never part of a real provider):
//
//   POST /__test/rotate   a new key per algorithm becomes the signing key, published first; the
//                         previous signing keys stay published (tokens they signed are still
//                         valid); older ones are dropped. Answers {"kids": [...current]}.
//   GET  /__test/stats    {"jwks_requests": N, "discovery_requests": N}
//
// Rotation re-runs the provider's own keystore initialisation on the new JWKS, which is what a
// restart with a rotated "jwks" configuration does, without the restart's downtime.
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';
import initializeKeystore from 'oidc-provider/lib/helpers/initialize_keystore.js';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: node provider.mjs PORT\n');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const RESOURCES = {
  'https://api.bastion.test/es256': 'ES256',
  'https://api.bastion.test/eddsa': 'EdDSA',
  'https://api.bastion.test/rs256': 'RS256',
  'https://api.bastion.test/ps256': 'PS256',
};
const DEFAULT_RESOURCE = 'https://api.bastion.test/es256';

function newKey(alg) {
  let pair;
  if (alg === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else if (alg === 'EdDSA') pair = generateKeyPairSync('ed25519');
  else pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = pair.privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `${alg.toLowerCase()}-${randomUUID()}`, alg, use: 'sig' };
}

const ALGS = [...new Set(Object.values(RESOURCES))];
let current = ALGS.map(newKey);
let previous = [];

function signingKid(alg) {
  return current.find((key) => key.alg === alg).kid;
}

const provider = new Provider(issuer, {
  jwks: { keys: [...current] },
  clients: [
    {
      client_id: 'bastion-test',
      client_secret: 'bastion-test-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => DEFAULT_RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        const alg = RESOURCES[resourceIndicator];
        if (alg === undefined) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: 'read write admin',
          audience: resourceIndicator,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg, kid: signingKid(alg) } },
        };
      },
    },
  },
  scopes: ['read', 'write', 'admin'],
});

const stats = { jwks_requests: 0, discovery_requests: 0 };

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/rotate' && ctx.method === 'POST') {
    previous = current;
    current = ALGS.map(newKey);
    initializeKeystore.call(provider, { keys: [...current, ...previous] });
    ctx.type = 'application/json';
    ctx.body = { kids: current.map((key) => key.kid) };
    return;
  }
  if (ctx.path === '/__test/stats' && ctx.method === 'GET') {
    ctx.type = 'application/json';
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/jwks') stats.jwks_requests += 1;
  if (ctx.path === '/.well-known/openid-configuration') stats.discovery_requests += 1;
  await next();
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
