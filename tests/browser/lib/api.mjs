// The REST API side of the browser tests: bootstrap an admin without a browser, call the API
// with a token, and push a model and a bento the way the bentoml client does (proxy upload).

import assert from 'node:assert/strict';
import zlib from 'node:zlib';

/** Build time in the format the clients send. */
export const BUILD_AT = '2024-01-02 03:04:05.000000';

/** Every scope an API token can have. */
export const ALL_SCOPES = ['api', 'read_organization', 'write_organization', 'read_cluster', 'write_cluster'];

/**
 * One HTTP call to the server. `token` sends X-YATAI-API-TOKEN, `cookie` a Cookie header,
 * `json` a JSON body, `body` raw bytes. Returns {status, headers, text, json}.
 */
export async function call(server, method, path, { token, cookie, json, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h['X-YATAI-API-TOKEN'] = token;
  if (cookie) h.Cookie = cookie;
  let payload = body;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  }
  const r = await fetch(`${server.url}${path}`, { method, headers: h, body: payload, redirect: 'manual' });
  const text = await r.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: r.status, headers: r.headers, text, json: parsed };
}

/** Like `call`, but the answer must be 200; returns its JSON. */
export async function ok(server, method, path, options = {}) {
  const r = await call(server, method, path, options);
  assert.equal(r.status, 200, `${method} ${path} answered ${r.status}: ${r.text.slice(0, 500)}`);
  return r.json;
}

/** First admin through POST /api/v1/setup (what scripts do without a browser). */
export async function setupAdmin(server, { name = 'admin', password = 'correct-horse-42', email } = {}) {
  await ok(server, 'POST', '/api/v1/setup', {
    json: { token: server.initToken, name, email: email || `${name}@example.com`, password, first_name: 'Ada', last_name: 'Admin' },
  });
  return { name, password, email: email || `${name}@example.com` };
}

/** A session cookie header for `user` through POST /api/v1/auth/login. */
export async function loginCookie(server, user) {
  const r = await call(server, 'POST', '/api/v1/auth/login', { json: { name_or_email: user.name, password: user.password } });
  assert.equal(r.status, 200, `login as ${user.name}: ${r.status} ${r.text}`);
  const cookies = r.headers.getSetCookie().map((c) => c.split(';')[0]);
  assert.ok(cookies.length, 'the login answer sets no cookie');
  return cookies.join('; ');
}

/** An API token with every scope for the user of `cookie`; returns its secret. */
export async function createToken(server, cookie, name = 'browser-tests') {
  const t = await ok(server, 'POST', '/api/v1/api_tokens', {
    cookie,
    json: { name, description: '', scopes: ALL_SCOPES, expired_at: null },
  });
  assert.ok(t.token, `the created token has no secret: ${JSON.stringify(t)}`);
  return t.token;
}

/**
 * A whole (ustar) tar of `files` {path: string|Buffer}, gzip-compressed unless `gzip` is false:
 * what the server accepts as an archive.
 */
export function tarball(files, { gzip = true } = {}) {
  const blocks = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
    const header = Buffer.alloc(512);
    const field = (offset, length, value) => header.write(value, offset, length, 'utf8');
    const octal = (offset, length, n) => field(offset, length, n.toString(8).padStart(length - 1, '0') + '\0');
    assert.ok(Buffer.byteLength(name) <= 100, `tar entry name too long: ${name}`);
    field(0, 100, name);
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, data.length);
    octal(136, 12, Math.floor(Date.now() / 1000));
    header.fill(' ', 148, 156);
    field(156, 1, '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    field(265, 32, 'root');
    field(297, 32, 'root');
    let sum = 0;
    for (const b of header) sum += b;
    field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const tar = Buffer.concat(blocks);
  return gzip ? zlib.gzipSync(tar) : tar;
}

/** Manifest of a model version as bentoml 1.4 sends it. */
export function modelManifest(sizeBytes) {
  return {
    module: 'bentoml.sklearn',
    api_version: 'v1',
    bentoml_version: '1.4.40',
    size_bytes: sizeBytes,
    metadata: { accuracy: 0.97 },
    context: { framework_name: 'sklearn', framework_versions: { 'scikit-learn': '1.5.0' }, bentoml_version: '1.4.40', python_version: '3.11.9' },
    options: {},
  };
}

/** Manifest of a bento version as bentoml 1.4 sends it, using the models `modelTags`. */
export function bentoManifest(name, version, sizeBytes, modelTags) {
  return {
    service: 'service:IrisClassifier',
    bentoml_version: '1.4.40',
    size_bytes: sizeBytes,
    entry_service: 'IrisClassifier',
    name,
    apis: { classify: { route: '/classify', doc: 'Classify an iris', input: { type: 'object' }, output: { type: 'object' } } },
    models: modelTags,
    runners: [],
    services: [{ name: 'IrisClassifier', service: '', models: modelTags, dependencies: [], config: {} }],
    envs: [],
    schema: {},
    version,
    dev: false,
    image: { base_image: 'python:3.11-slim', python_version: '3.11' },
    spec: 2,
  };
}

/**
 * Creates the repository (if needed) and version `name:version` of `kind` (bento or model),
 * then uploads `archive` through the proxy path (start_upload + PUT upload), as the 1.4 client
 * does with the default transmission strategy. Returns the version as the server reports it.
 */
export async function push(server, token, kind, name, version, { manifest, labels = [], archive, description = '' }) {
  const repos = `/api/v1/${kind}_repositories`;
  const existing = await call(server, 'GET', `${repos}/${name}`, { token });
  if (existing.status === 404) {
    await ok(server, 'POST', repos, { token, json: { name, description: `${kind} repository ${name}` } });
  } else {
    assert.equal(existing.status, 200, `GET ${repos}/${name}: ${existing.status} ${existing.text}`);
  }
  await ok(server, 'POST', `${repos}/${name}/${kind}s`, {
    token,
    json: { description, version, manifest, build_at: BUILD_AT, labels },
  });
  const path = `${repos}/${name}/${kind}s/${version}`;
  await ok(server, 'PATCH', `${path}/start_upload`, { token });
  await ok(server, 'PUT', `${path}/upload`, {
    token,
    body: archive,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  const v = await ok(server, 'GET', path, { token });
  assert.equal(v.upload_status, 'success', `${kind} ${name}:${version} after upload: ${JSON.stringify(v)}`);
  return v;
}

/** Pushes a model and a bento whose manifest lists that model; returns their tags. */
export async function pushBentoWithModel(server, token, { bento, model, bentoLabels = [], modelLabels = [] }) {
  const modelArchive = tarball({ 'model.yaml': `name: ${model.name}\nversion: ${model.version}\nmodule: bentoml.sklearn\n`, 'saved_model.pkl': Buffer.alloc(3000, 7) });
  await push(server, token, 'model', model.name, model.version, {
    manifest: modelManifest(modelArchive.length),
    labels: modelLabels,
    archive: modelArchive,
    description: 'iris classifier weights',
  });
  const modelTag = `${model.name}:${model.version}`;
  const bentoArchive = tarball({
    'bento.yaml': `service: service:IrisClassifier\nname: ${bento.name}\nversion: ${bento.version}\nmodels:\n- tag: ${modelTag}\n`,
    'src/service.py': 'import bentoml\n\n@bentoml.service\nclass IrisClassifier:\n    pass\n',
  });
  await push(server, token, 'bento', bento.name, bento.version, {
    manifest: bentoManifest(bento.name, bento.version, bentoArchive.length, [modelTag]),
    labels: bentoLabels,
    archive: bentoArchive,
    description: 'iris classifier service',
  });
  return { bentoTag: `${bento.name}:${bento.version}`, modelTag };
}
