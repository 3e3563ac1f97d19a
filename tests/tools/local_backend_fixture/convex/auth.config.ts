/**
 * Auth providers for the local backend's own tests, read from environment variables as a
 * deployment's auth.config.ts reads its environment. The defaults let the fixture start when no
 * test set them: the JWKS then comes from the server's own /.well-known/jwks.json
 * (LOCAL_BACKEND_JWKS_FILE), and CONVEX_SITE_URL is set by the server to its origin.
 */
export default {
  providers: [
    {
      type: "customJwt",
      issuer: process.env.FIXTURE_JWT_ISSUER ?? "https://issuer.fixture.test",
      jwks: process.env.FIXTURE_JWKS_URL ?? `${process.env.CONVEX_SITE_URL}/.well-known/jwks.json`,
      algorithm: "RS256",
      applicationID: process.env.FIXTURE_JWT_AUDIENCE ?? "fixture-app",
    },
    {
      // The OIDC form, as Convex Auth writes it: discovery at the deployment's own site URL.
      domain: process.env.CONVEX_SITE_URL,
      applicationID: "convex",
    },
  ],
};
