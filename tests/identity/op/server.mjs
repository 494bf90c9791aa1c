// A real OpenID provider (node-oidc-provider) for the SSO tests, on 127.0.0.1 at a port chosen
// at run time. Arguments come from the environment:
//   RP_REDIRECT_URI, RP_POST_LOGOUT_URI  the relying party's callback and signed-out pages
//   CLIENT_ID, CLIENT_SECRET             the relying party's credentials
//   ACCOUNTS_FILE                        JSON {sub: {email, groups, ...}}, read at each
//                                        sign-in so a test can change a person's groups
//   SIGNING_JWK                          the provider's private RSA signing key, as a JWK
//                                        (made by the test: Node 20's generateKeyPairSync
//                                        then export() can deadlock in a garbage collection)
// Prints one JSON line {"issuer": "..."} once it is listening.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const env = process.env;
const accounts = () => JSON.parse(readFileSync(env.ACCOUNTS_FILE, 'utf8'));

const jwk = JSON.parse(env.SIGNING_JWK);

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: env.CLIENT_ID,
      client_secret: env.CLIENT_SECRET,
      redirect_uris: [env.RP_REDIRECT_URI],
      post_logout_redirect_uris: [env.RP_POST_LOGOUT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    // The login typed into the provider's form is the account's sub.
    async findAccount(ctx, id) {
      if (!accounts()[id]) return undefined;
      return { accountId: id, async claims() { return { ...accounts()[id], sub: id }; } };
    },
    // First-party client: the consent screen is skipped by granting what it asks for.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.account.accountId,
      });
      grant.addOIDCScope('openid email profile groups');
      await grant.save();
      return grant;
    },
  });
  for (const event of ['server_error', 'authorization.error', 'grant.error']) {
    provider.on(event, (ctx, error) => console.error(event, error));
  }
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
