// The OpenID provider bastion's OAuth tests sign in against: oauth2-mock-server (from npm),
// made strict where a real provider is strict and given a control endpoint that spoils the
// NEXT ID token in a chosen way.
//
//   node server.mjs [--port N] [--client-id ID] [--client-secret SECRET] [--redirect-uri URI]...
//
// Prints `oidc mock listening on http://127.0.0.1:PORT` (the issuer) once ready.
//
// Strictness added on top of the library (which accepts any code, and checks PKCE only when
// the client volunteers a verifier):
// - /authorize needs client_id (when --client-id is given), response_type=code, a state,
//   method S256 for any code_challenge, and a redirect_uri among --redirect-uri (exact
//   match) when any are given; otherwise 400, no redirect.
// - /token needs a code this server issued, once; the same client and the exact
//   redirect_uri of the authorization request; client authentication with --client-secret
//   when given; and a code_verifier (whose match the library checks).
//
// Control endpoints (JSON):
// - POST /__control/identity        {sub, email, email_verified}: who signs in from now on
// - POST /__control/next-id-token   spoils the next ID token only; any of
//     {aud, azp, iss, nonce, sub, email, email_verified, exp_in, iat_in, drop: [claim…],
//      sign: "valid" | "other-key" | "unknown-kid" | "corrupt" | "hs256-public-key" | "none",
//      omit: true (no id_token at all)}
//   exp_in / iat_in are seconds relative to now (negative for the past).
// - POST /__control/rotate-key      adds a new signing key (new kid) and signs with it
// - GET  /__control/last-authorize  the query of the last /authorize request
// - GET  /__control/last-token      what the last /token request carried
// - GitHub stand-in: GET /github/login/oauth/authorize, POST /github/login/oauth/access_token,
//   GET /github/api/user, GET /github/api/user/emails (identity from /__control/identity).

import { createServer } from 'node:http';
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, createHash } from 'node:crypto';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

function parseArgs(argv) {
  const opts = { port: 0, clientId: undefined, clientSecret: undefined, redirectUris: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--port') { opts.port = Number(v); i++; }
    else if (a === '--client-id') { opts.clientId = v; i++; }
    else if (a === '--client-secret') { opts.clientSecret = v; i++; }
    else if (a === '--redirect-uri') { opts.redirectUris.push(v); i++; }
    else { console.error(`unknown argument ${a}`); process.exit(2); }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const issuer = new OAuth2Issuer();
const service = new OAuth2Service(issuer);

let keyCount = 0;
let current = await issuer.keys.generate('RS256', { kid: `key-${++keyCount}` });

let identity = { sub: 'johndoe', email: 'john.doe@idp.test', email_verified: true };
let nextSpoil = null;
let lastAuthorize = null;
let lastToken = null;
const codes = new Map(); // code -> { clientId, redirectUri, nonce, used }
const githubTokens = new Map(); // access token -> identity snapshot

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const b64json = (obj) => b64url(JSON.stringify(obj));

function signJwt(header, payload, mode) {
  const input = `${b64json(header)}.${b64json(payload)}`;
  switch (mode) {
    case 'none':
      return `${b64json({ ...header, alg: 'none' })}.${b64json(payload)}.`;
    case 'hs256-public-key': {
      // The classic confusion: HMAC keyed with the RSA public key (PEM) that the JWKS shows.
      const pem = createPublicKey({ key: current, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const h = { ...header, alg: 'HS256' };
      const data = `${b64json(h)}.${b64json(payload)}`;
      return `${data}.${b64url(createHmac('sha256', pem).update(data).digest())}`;
    }
    case 'other-key': {
      // Same kid, but signed by a key the JWKS does not hold.
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
    }
    case 'unknown-kid': {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const h = { ...header, kid: `unknown-${randomUUID()}` };
      const data = `${b64json(h)}.${b64json(payload)}`;
      return `${data}.${b64url(sign('sha256', Buffer.from(data), privateKey))}`;
    }
    case 'corrupt': {
      const sig = sign('sha256', Buffer.from(input), createPrivateKey({ key: current, format: 'jwk' }));
      sig[sig.length - 1] ^= 0x01;
      return `${input}.${b64url(sig)}`;
    }
    case 'valid':
    case undefined: {
      const sig = sign('sha256', Buffer.from(input), createPrivateKey({ key: current, format: 'jwk' }));
      return `${input}.${b64url(sig)}`;
    }
    default:
      throw new Error(`unknown sign mode ${mode}`);
  }
}

function decodePayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

function clientOf(req) {
  const auth = req.headers.authorization;
  if (auth && auth.startsWith('Basic ')) {
    const raw = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    const i = raw.indexOf(':');
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    const dec = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { id: dec(raw.slice(0, i)), secret: dec(raw.slice(i + 1)), method: 'client_secret_basic' };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret, method: req.body?.client_secret ? 'client_secret_post' : 'none' };
}

function refuse(response, error, description) {
  response.statusCode = 400;
  response.body = { error, error_description: description };
}

// Every /authorize that passed the strict checks below issues a code: remember its request.
service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  if (code) {
    codes.set(code, {
      clientId: req.query.client_id,
      redirectUri: req.query.redirect_uri,
      used: false,
    });
  }
});

service.on('beforeResponse', (response, req) => {
  const body = req.body ?? {};
  const client = clientOf(req);
  if (response.statusCode !== 200) return;
  if (body.grant_type !== 'authorization_code') return refuse(response, 'unsupported_grant_type', 'only authorization_code here');
  const entry = codes.get(body.code);
  if (!entry) return refuse(response, 'invalid_grant', 'unknown authorization code');
  if (entry.used) return refuse(response, 'invalid_grant', 'authorization code already used');
  entry.used = true;
  if (opts.clientId !== undefined && client.id !== opts.clientId) return refuse(response, 'invalid_client', 'unknown client');
  if (client.id !== entry.clientId) return refuse(response, 'invalid_grant', 'code issued to another client');
  if (opts.clientSecret !== undefined && client.secret !== opts.clientSecret) return refuse(response, 'invalid_client', 'client authentication failed');
  if (body.redirect_uri !== entry.redirectUri) return refuse(response, 'invalid_grant', 'redirect_uri differs from the authorization request');
  if (typeof body.code_verifier !== 'string') return refuse(response, 'invalid_grant', 'code_verifier required (PKCE)');

  const spoil = nextSpoil ?? {};
  nextSpoil = null;
  if (spoil.omit) {
    delete response.body.id_token;
    return;
  }
  const payload = decodePayload(response.body.id_token);
  const now = Math.floor(Date.now() / 1000);
  Object.assign(payload, { sub: identity.sub });
  if (identity.email !== undefined && identity.email !== null) payload.email = identity.email;
  if (identity.email_verified !== undefined) payload.email_verified = identity.email_verified;
  for (const k of ['aud', 'azp', 'iss', 'nonce', 'sub', 'email', 'email_verified']) {
    if (k in spoil) payload[k] = spoil[k];
  }
  if ('exp_in' in spoil) payload.exp = now + spoil.exp_in;
  if ('iat_in' in spoil) payload.iat = now + spoil.iat_in;
  for (const k of spoil.drop ?? []) delete payload[k];
  const header = { typ: 'JWT', alg: 'RS256', kid: current.kid };
  response.body.id_token = signJwt(header, payload, spoil.sign);
});

// What a /token request carried, read beside the library's own body parser (a second
// 'data' listener), so that it is known even when the library refuses the request early
// (a PKCE mismatch is refused before any of its events fire).
function recordTokenRequest(req) {
  lastToken = null;
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    const client = clientOf({ headers: req.headers, body });
    lastToken = {
      grant_type: body.grant_type,
      redirect_uri: body.redirect_uri ?? null,
      client_id: client.id ?? null,
      client_auth: client.method,
      code_verifier_present: typeof body.code_verifier === 'string',
    };
  });
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function control(req, res, path) {
  if (req.method === 'POST' && path === '/__control/identity') {
    identity = { ...(await readJson(req)) };
    return sendJson(res, 200, identity);
  }
  if (req.method === 'POST' && path === '/__control/next-id-token') {
    nextSpoil = await readJson(req);
    return sendJson(res, 200, nextSpoil);
  }
  if (req.method === 'POST' && path === '/__control/rotate-key') {
    current = await issuer.keys.generate('RS256', { kid: `key-${++keyCount}` });
    return sendJson(res, 200, { kid: current.kid });
  }
  if (req.method === 'GET' && path === '/__control/last-authorize') return sendJson(res, 200, lastAuthorize);
  if (req.method === 'GET' && path === '/__control/last-token') return sendJson(res, 200, lastToken);
  return sendJson(res, 404, { error: 'unknown control endpoint' });
}

// Checks a real provider makes before it shows a login page; failing them answers 400
// without redirecting anywhere.
function authorizeProblem(q) {
  if (opts.clientId !== undefined && q.get('client_id') !== opts.clientId) return 'unknown client_id';
  if (q.get('response_type') !== 'code') return 'response_type must be code';
  // Like most providers, PKCE is optional here; but a challenge must be S256, and a code
  // issued with one is only redeemed with its verifier (a code issued without one, after a
  // downgrade, is refused when the client then sends a verifier).
  if (q.get('code_challenge') && q.get('code_challenge_method') !== 'S256') return 'code_challenge_method must be S256';
  if (!q.get('state')) return 'state required';
  const uri = q.get('redirect_uri');
  if (!uri) return 'redirect_uri required';
  if (opts.redirectUris.length > 0 && !opts.redirectUris.includes(uri)) return 'redirect_uri is not registered (exact match)';
  return null;
}

// A GitHub stand-in speaking its wire format: 200 with {error} for a refused code.
async function github(req, res, url) {
  const path = url.pathname.slice('/github'.length);
  if (req.method === 'GET' && path === '/login/oauth/authorize') {
    const q = url.searchParams;
    lastAuthorize = Object.fromEntries(q);
    const problem = authorizeProblem(new URLSearchParams({ ...lastAuthorize, response_type: 'code' }));
    if (problem) return sendJson(res, 400, { error: 'invalid_request', error_description: problem });
    const code = randomUUID();
    codes.set(code, { clientId: q.get('client_id'), redirectUri: q.get('redirect_uri'), challenge: q.get('code_challenge'), used: false });
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state'));
    res.writeHead(302, { location: back.href });
    return res.end();
  }
  if (req.method === 'POST' && path === '/login/oauth/access_token') {
    const body = await readForm(req);
    lastToken = { redirect_uri: body.redirect_uri ?? null, client_id: body.client_id ?? null, code_verifier_present: !!body.code_verifier };
    const entry = codes.get(body.code);
    const fail = (error) => sendJson(res, 200, { error });
    if (!entry || entry.used) return fail('bad_verification_code');
    entry.used = true;
    if (body.client_id !== entry.clientId || (opts.clientSecret !== undefined && body.client_secret !== opts.clientSecret)) return fail('incorrect_client_credentials');
    if (body.redirect_uri !== entry.redirectUri) return fail('redirect_uri_mismatch');
    const expected = createHash('sha256').update(body.code_verifier ?? '').digest('base64url');
    if (!body.code_verifier || expected !== entry.challenge) return fail('bad_verification_code');
    const token = `gho_${randomUUID().replace(/-/g, '')}`;
    githubTokens.set(token, { ...identity });
    return sendJson(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
  }
  const auth = req.headers.authorization ?? '';
  const who = githubTokens.get(auth.replace(/^(Bearer|token) /, ''));
  if (!who) return sendJson(res, 401, { message: 'Bad credentials' });
  if (req.method === 'GET' && path === '/api/user') {
    return sendJson(res, 200, { id: Number(who.sub) || 4242, login: 'octo', email: null });
  }
  if (req.method === 'GET' && path === '/api/user/emails') {
    const emails = [{ email: 'secondary@idp.test', primary: false, verified: true, visibility: null }];
    if (who.email) emails.push({ email: who.email, primary: true, verified: !!who.email_verified, visibility: 'private' });
    return sendJson(res, 200, emails);
  }
  return sendJson(res, 404, { message: 'Not Found' });
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname.startsWith('/__control/')) return await control(req, res, url.pathname);
    if (url.pathname.startsWith('/github/')) return await github(req, res, url);
    if (req.method === 'POST' && url.pathname === '/token') recordTokenRequest(req);
    if (req.method === 'GET' && url.pathname === '/authorize') {
      lastAuthorize = Object.fromEntries(url.searchParams);
      const problem = authorizeProblem(url.searchParams);
      if (problem) return sendJson(res, 400, { error: 'invalid_request', error_description: problem });
    }
    return service.requestHandler(req, res);
  } catch (e) {
    console.error(e);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
  }
});

server.listen(opts.port, '127.0.0.1', () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  console.log(`oidc mock listening on ${issuer.url}`);
});

// Stop with the test that started us: when our stdin closes, or on a signal.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
