/**
 * Who may call the public functions: one JWT provider, configured from the deployment's
 * environment variables (`npx convex env set NAME value`, or the self-hosted backend's env).
 *
 * - `JANGAR_AUTH_ISSUER`: the tokens' `iss` (e.g. `https://your-tenant.auth0.com/`, a Clerk
 *   issuer, `https://api.workos.com/user_management/<client id>`, your own OIDC issuer).
 * - `JANGAR_AUTH_JWKS_URL`: where its public keys are published (usually
 *   `<issuer>/.well-known/jwks.json`).
 * - `JANGAR_AUTH_AUDIENCE`: the `aud` tokens must carry (recommended: without it any token from
 *   that issuer is accepted, including ones minted for other applications).
 * - `JANGAR_AUTH_ALGORITHM`: `RS256` (default) or `ES256`.
 *
 * With `JANGAR_AUTH_ISSUER` unset there is no provider: every token is refused and every public
 * call is anonymous, so UNAUTHENTICATED. `jangar dev` and `make run` set all four to their own
 * development key pair (worker/local/dev_auth.py), whose public key the local backend serves.
 */
import type { AuthConfig } from "convex/server";

const issuer = process.env.JANGAR_AUTH_ISSUER;
const jwks = process.env.JANGAR_AUTH_JWKS_URL;
const audience = process.env.JANGAR_AUTH_AUDIENCE;
const algorithm = process.env.JANGAR_AUTH_ALGORITHM === "ES256" ? "ES256" : "RS256";

export default {
  providers:
    issuer === undefined || issuer === ""
      ? []
      : [
          {
            type: "customJwt",
            issuer,
            jwks: jwks ?? `${issuer.replace(/\/+$/, "")}/.well-known/jwks.json`,
            algorithm,
            ...(audience !== undefined && audience !== "" ? { applicationID: audience } : {}),
          },
        ],
} satisfies AuthConfig;
