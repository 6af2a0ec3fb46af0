// A real OpenID provider for the single sign-on test: `oidc-provider` (the certified Node.js
// implementation, not ours) with its built-in login and consent pages. Any password signs in;
// the login name picks the account:
//   alice  groups [llmscope-admins]          email verified
//   bob    groups [eu-team], sites [eu]      email verified
//   carol  groups [contractors] (unmapped)   email not verified
// Scope claims (email, groups, sites) are only given at the userinfo endpoint, as the
// specification asks for the code flow, so the collector's userinfo path is exercised too.
//
//   OIDC_PORT=9000 OIDC_REDIRECT=http://127.0.0.1:8080/api/v1/auth/oidc/callback \
//     node web/tests/oidc-provider.mjs
// Prints `oidc-provider ready issuer=http://127.0.0.1:9000` when it listens.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 9000);
const redirect = process.env.OIDC_REDIRECT;
if (!redirect) {
  console.error('oidc-provider: OIDC_REDIRECT (the collector callback URL) is required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Admin', groups: ['llmscope-admins', 'staff'] },
  bob: { email: 'bob@example.com', email_verified: true, name: 'Bob Viewer', groups: ['eu-team'], sites: ['eu'] },
  carol: { email: 'carol@example.com', email_verified: false, name: 'Carol Contractor', groups: ['contractors'] },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID || 'llmscope',
    client_secret: process.env.OIDC_CLIENT_SECRET || 'e2e-client-secret',
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups', 'sites'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const a = ACCOUNTS[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...a };
      },
    };
  },
});
provider.proxy = false;
provider.on('server_error', (_ctx, err) => console.error('oidc-provider: server error', err));
provider.on('grant.error', (_ctx, err) => console.error('oidc-provider: grant error', err.message, err.error_description ?? ''));

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready issuer=${issuer}`);
});
