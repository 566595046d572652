// A real OpenID Provider for Concord's OIDC login test (crates/concord/tests/it/oidc.rs):
// npm's `oidc-provider` (panva; an OpenID Certified implementation), unchanged, with one
// client, its own login and consent pages (the interaction API the library documents), and
// an account store that knows every login name.
//
// Environment:
//   CONCORD_E2E_NODE_MODULES  the node_modules holding oidc-provider (default ./node_modules)
//   OIDC_CLIENT_ID            the client id (default "concord")
//   OIDC_CLIENT_SECRET        the client secret (required)
//   OIDC_REDIRECT_URI         Concord's callback, the client's one redirect_uri (required)
//   OIDC_HOST                 the loopback address to listen on (default 127.0.0.1; the
//                             browser test uses 127.0.0.2, another site than Concord's
//                             127.0.0.1, so that the redirects are cross-site as in real life)
//
// It listens on a free port and prints one line, `issuer http://HOST:PORT`.
//
// The login page takes `login` (any name: the account's `preferred_username`; its `sub` is
// `sub-<login>`) and `otp` (any non-empty value: the session's `amr` is ["pwd", "otp"],
// otherwise ["pwd"]). The consent page grants what the client asked.
//
// The test makes the provider misbehave, to prove that Concord refuses what a provider must
// not send, through `POST /test/mode` with a body of one word:
//   normal       answer as the library does
//   big-token    the token response padded past 1 MiB
//   slow-token   the token response held 5 s
//   other-aud    the ID token re-signed with the provider's own key for another audience
//   big-jwks     the JWKS padded past 1 MiB
// Only the answers named change; everything else is the library's.

import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createServer } from "node:http";

const MODULES = resolve(process.env.CONCORD_E2E_NODE_MODULES || "node_modules");
const load = (name, file) => import(pathToFileURL(join(MODULES, name, file)).href);
const { default: Provider } = await load("oidc-provider", "lib/index.js");
const jose = await load("jose", "dist/webapi/index.js");

const clientId = process.env.OIDC_CLIENT_ID || "concord";
const secret = process.env.OIDC_CLIENT_SECRET;
const redirect = process.env.OIDC_REDIRECT_URI;
if (!secret || !redirect) {
  console.error("provider.mjs: OIDC_CLIENT_SECRET and OIDC_REDIRECT_URI are required");
  process.exit(2);
}

// The signing key: generated here, so the script can also sign as the provider (other-aud).
const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: "k1", alg: "RS256", use: "sig" };

// Listen first: the issuer names the port.
const server = createServer();
const host = process.env.OIDC_HOST || "127.0.0.1";
await new Promise((ok) => server.listen(0, host, ok));
const issuer = `http://${host}:${server.address().port}`;

let mode = "normal";

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: secret,
      redirect_uris: [redirect],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  claims: { openid: ["sub", "amr"], profile: ["preferred_username", "name"] },
  // The profile claims in the ID token too (as Keycloak, Entra ID, Dex put them).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ["concord-test-cookie-key"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id.replace(/^sub-/, ""), name: id };
      },
    };
  },
});
provider.proxy = false;

// `rel=icon` of nothing: a browser asks for no /favicon.ico (the provider would answer 404).
const html = (body) =>
  `<!doctype html><html lang="en"><head><title>Test OP</title><link rel="icon" href="data:,"></head><body>${body}</body></html>`;

const readForm = (ctx) =>
  new Promise((ok, fail) => {
    let text = "";
    ctx.req.setEncoding("utf8");
    ctx.req.on("data", (c) => {
      text += c;
    });
    ctx.req.on("end", () => ok(new URLSearchParams(text)));
    ctx.req.on("error", fail);
  });

provider.use(async (ctx, next) => {
  // The test's switch of misbehaviour.
  if (ctx.path === "/test/mode" && ctx.method === "POST") {
    mode = (await readForm(ctx)).keys().next().value || "normal";
    ctx.body = `mode ${mode}\n`;
    return;
  }
  // Login and consent (the interaction API: interactionDetails, interactionFinished).
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (m) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (ctx.method === "GET") {
      ctx.type = "html";
      ctx.body =
        details.prompt.name === "login"
          ? html(`<form method="post" action="/interaction/${m[1]}">
<input type="hidden" name="prompt" value="login">
<input name="login"><input name="password" type="password"><input name="otp">
<button>Sign in</button></form>`)
          : html(`<form method="post" action="/interaction/${m[1]}">
<input type="hidden" name="prompt" value="consent"><button>Allow</button></form>`);
      return;
    }
    const form = await readForm(ctx);
    let result;
    if (form.get("prompt") === "login") {
      const login = form.get("login") || "";
      result = {
        login: {
          accountId: `sub-${login}`,
          amr: form.get("otp") ? ["pwd", "otp"] : ["pwd"],
        },
      };
    } else {
      const { session, params, prompt } = details;
      const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      result = { consent: { grantId: await grant.save() } };
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(to);
    return;
  }
  if (ctx.path === "/token" && mode === "slow-token") {
    await new Promise((ok) => setTimeout(ok, 5000));
  }
  await next();
  if (ctx.path === "/token" && mode === "big-token" && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, padding: "x".repeat(1100000) };
  }
  if (ctx.path === "/token" && mode === "other-aud" && ctx.body && ctx.body.id_token) {
    const claims = jose.decodeJwt(ctx.body.id_token);
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT({ ...claims, aud: "another-client", azp: "another-client" })
        .setProtectedHeader({ alg: "RS256", kid: "k1", typ: "JWT" })
        .sign(privateKey),
    };
  }
  if (ctx.path === "/jwks" && mode === "big-jwks" && ctx.body && ctx.body.keys) {
    ctx.body = { ...ctx.body, padding: "x".repeat(1100000) };
  }
});

server.on("request", provider.callback());
console.log(`issuer ${issuer}`);
