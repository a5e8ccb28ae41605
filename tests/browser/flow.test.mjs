// The dashboard's main flow in headless Chromium: setup → login → create an API token → the
// token works with the REST API → push a bento (and its model) through the API → it is listed,
// its detail shows its model → events show the push → deploy it through the form (a field error
// first), edit, roll back, terminate → add a Kubernetes cluster → revoke the token in the UI → 401.
// The steps share one server and one browser and run in order.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import * as api from './lib/api.mjs';
import { Browser, YataiServer, randomId, screenshot, writeLog } from './lib/harness.mjs';
import { clickNav, fieldError, fieldErrors, fill, fillAndSubmit, here, login, open, submit, text } from './lib/ui.mjs';

const admin = { name: 'ada', email: 'ada@example.com', password: `pw-${randomId(12)}`, first_name: 'Ada', last_name: 'Lovelace' };
const bento = { name: `iris-service-${randomId(4)}`, version: `b${randomId(12)}` };
const model = { name: `iris_clf_${randomId(4)}`, version: `m${randomId(12)}` };
const tokenName = 'ci-token';

let server, browser, ctx, page;
let secret, tags;

before(async () => {
  server = await new YataiServer('flow').start();
  browser = await new Browser(server).launch();
  ctx = await browser.newContext('admin');
  page = await ctx.newPage();
});

after(async () => {
  if (browser) writeLog('flow-requests.json', browser.requests);
  await browser?.close();
  await server?.cleanup();
});

test('setup: an unknown token gets a clear page', async () => {
  await page.goto(`${server.url}/setup?token=not-the-token`);
  assert.equal(await page.locator('#setup-invalid, #setup-closed').count(), 1, `/setup?token=wrong shows neither #setup-invalid nor #setup-closed: ${await page.content()}`);
  assert.equal(await page.locator('form#setup').count(), 0, 'a wrong token still gets the setup form');
  await screenshot(page, 'setup-invalid-token');
});

test('setup: the form validates server side, then creates the admin, logs in and goes to /', async () => {
  await open(page, server, `/setup?token=${encodeURIComponent(server.initToken)}`);
  const form = page.locator('form#setup');
  assert.equal(await form.count(), 1, 'no form#setup');
  assert.equal(await form.locator('input[type=hidden][name=token]').getAttribute('value'), server.initToken, 'the token is not carried in a hidden input');
  await screenshot(page, 'setup');

  // Invalid input comes back with an error next to the field (the browser's own checks are bypassed).
  await form.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(page, form, { name: '', email: admin.email, password: admin.password, first_name: '', last_name: '' });
  const again = page.locator('form#setup');
  assert.equal(await again.count(), 1, `an invalid setup did not show the form again (at ${page.url()})`);
  assert.ok(await fieldError(again, 'name'), `no .field-error next to the empty name; errors: ${JSON.stringify(await fieldErrors(again))}`);
  await screenshot(page, 'setup-errors');

  await again.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(page, again, { name: admin.name, email: admin.email, password: admin.password, first_name: admin.first_name, last_name: admin.last_name });
  assert.equal(here(page), '/', `after setup: at ${page.url()}`);
  assert.equal(await page.locator('nav').count(), 1, 'the overview has no <nav>');
  assert.ok((await page.locator('form[action$="/logout"] button, form[action$="/logout"] input[type=submit]').count()) >= 1, 'no "Log out" button after setup: not logged in?');
});

test('setup: a used token gets the setup-closed page', async () => {
  const other = await browser.newContext('anonymous');
  const p = await other.newPage();
  await p.goto(`${server.url}/setup?token=${encodeURIComponent(server.initToken)}`);
  assert.equal(await p.locator('#setup-closed, #setup-invalid').count(), 1, `a used setup token shows neither #setup-closed nor #setup-invalid`);
  assert.equal(await p.locator('form#setup').count(), 0, 'a used token still gets the setup form');
  await screenshot(p, 'setup-closed');
  await other.close();
});

test('the session cookie is HttpOnly and SameSite', async () => {
  const cookies = await ctx.cookies(server.url);
  const session = cookies.filter((c) => !/csrf/i.test(c.name));
  assert.ok(session.length >= 1, `no session cookie: ${JSON.stringify(cookies)}`);
  for (const c of session) {
    assert.ok(c.httpOnly, `cookie ${c.name} is not HttpOnly`);
    assert.ok(['Lax', 'Strict'].includes(c.sameSite), `cookie ${c.name} has SameSite=${c.sameSite}`);
  }
});

test('log out, then a wrong password shows an error next to the field and the right one logs in', async () => {
  const logout = page.locator('form[action$="/logout"]').first();
  assert.equal(await logout.count(), 1, 'no logout form (POST /logout)');
  assert.equal((await logout.getAttribute('method'))?.toLowerCase(), 'post', 'the logout form does not POST');
  const oldCookies = await ctx.cookies(server.url);
  await submit(page, logout);
  // The old session cookie must be dead on the server, not only forgotten by the browser.
  const replay = await browser.newContext('replayed-session');
  await replay.addCookies(oldCookies);
  const p = await replay.newPage();
  await p.goto(`${server.url}/`);
  assert.equal(new URL(p.url()).pathname, '/login', `the session cookie still works after logging out (at ${p.url()})`);
  await replay.close();
  await page.goto(`${server.url}/`);
  assert.equal(new URL(page.url()).pathname, '/login', `/ when logged out should go to /login, is at ${page.url()}`);

  const form = page.locator('form#login');
  assert.equal(await form.count(), 1, 'no form#login');
  await screenshot(page, 'login');
  await fillAndSubmit(page, form, { name_or_email: admin.name, password: 'wrong-password' });
  const errors = await fieldErrors(page.locator('form#login'));
  assert.ok(errors.length >= 1, `a wrong password shows no .field-error (at ${page.url()})`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await screenshot(page, 'login-error');

  await login(page, server, { name: admin.email, password: admin.password });
  assert.equal(here(page), '/');
});

test('create an API token: validation, then the secret once with the exact login commands', async () => {
  await clickNav(page, 'API tokens');
  assert.equal(new URL(page.url()).pathname, '/api_tokens');
  await screenshot(page, 'api-tokens-empty');
  const form = page.locator('form#create-token');
  assert.equal(await form.count(), 1, 'no form#create-token');
  const scopes = await form.locator('input[type=checkbox][name=scopes]').evaluateAll((els) => els.map((e) => e.value));
  assert.deepEqual([...scopes].sort(), [...api.ALL_SCOPES].sort(), 'the scope checkboxes');

  await form.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(page, form, { name: '', description: 'no name', scopes: ['api'] });
  const invalid = page.locator('form#create-token');
  assert.ok(await fieldError(invalid, 'name'), `no .field-error next to the empty token name; errors: ${JSON.stringify(await fieldErrors(invalid))}`);
  assert.equal(await page.locator('#token-secret').count(), 0, 'an invalid form still shows a secret');

  const expiry = new Date(Date.now() + 30 * 86400e3).toISOString().slice(0, 10);
  await fillAndSubmit(page, page.locator('form#create-token'), {
    name: tokenName,
    description: 'used by CI',
    scopes: api.ALL_SCOPES,
    expired_at: expiry,
  });
  secret = (await text(page.locator('#token-secret'))).trim();
  assert.ok(secret.length >= 16, `#token-secret is "${secret}"`);
  const commands = await text(page.locator('#login-commands'));
  for (const cmd of [`bentoml cloud login --endpoint ${server.url} --api-token ${secret}`, `bentoml yatai login --endpoint ${server.url} --api-token ${secret}`]) {
    assert.ok(commands.includes(cmd), `#login-commands lacks "${cmd}": "${commands}"`);
  }
  assert.equal(await page.locator(`tr[data-token-name="${tokenName}"]`).count(), 1, `no row tr[data-token-name="${tokenName}"]`);
  await screenshot(page, 'api-token-created');

  await open(page, server, '/api_tokens');
  assert.equal(await page.locator('#token-secret').count(), 0, 'the secret is shown again on a later visit');
  assert.ok(!(await page.content()).includes(secret), 'the secret appears in a later page');
  assert.equal(await page.locator(`tr[data-token-name="${tokenName}"]`).count(), 1);
});

test('the token works with the REST API', async () => {
  assert.ok(secret, 'no token secret: creating the token failed');
  const me = await api.ok(server, 'GET', '/api/v1/auth/current', { token: secret });
  assert.equal(me.name, admin.name);
  const tokens = await api.ok(server, 'GET', '/api/v1/api_tokens', { token: secret });
  const mine = tokens.items.find((t) => t.name === tokenName);
  assert.ok(mine, `token ${tokenName} not listed by the API`);
  assert.deepEqual([...mine.scopes].sort(), [...api.ALL_SCOPES].sort());
  assert.equal(mine.description, 'used by CI');
  assert.ok(mine.expired_at, 'the expiry chosen in the form was not stored');
});

test('push a model and a bento that uses it through the REST API', async () => {
  assert.ok(secret, 'no token secret: creating the token failed');
  tags = await api.pushBentoWithModel(server, secret, {
    bento,
    model,
    bentoLabels: [{ key: 'stage', value: 'production' }],
    modelLabels: [{ key: 'framework', value: 'sklearn' }],
  });
});

test('the bento is listed and its detail page shows its model', async () => {
  assert.ok(tags, 'nothing was pushed');
  await clickNav(page, 'Bentos');
  const row = page.locator(`tr[data-repository="${bento.name}"]`);
  assert.equal(await row.count(), 1, `/bentos has no row tr[data-repository="${bento.name}"]`);
  await screenshot(page, 'bentos');

  await Promise.all([page.waitForNavigation(), row.locator(`a[href$="/bentos/${bento.name}"]`).first().click()]);
  assert.equal(new URL(page.url()).pathname, `/bentos/${bento.name}`);
  const vrow = page.locator(`tr[data-version="${bento.version}"]`);
  assert.equal(await vrow.count(), 1, `/bentos/${bento.name} has no row tr[data-version="${bento.version}"]`);
  await screenshot(page, 'bento-repository');

  await Promise.all([page.waitForNavigation(), vrow.locator(`a[href$="/bentos/${bento.name}/${bento.version}"]`).first().click()]);
  assert.equal(new URL(page.url()).pathname, `/bentos/${bento.name}/${bento.version}`);
  assert.match(await text(page.locator('#upload-status')), /success/i, '#upload-status');
  const labels = await text(page.locator('#labels'));
  assert.ok(labels.includes('stage') && labels.includes('production'), `#labels: "${labels}"`);
  const manifest = await text(page.locator('#manifest'));
  assert.ok(manifest.includes('IrisClassifier') && manifest.includes('classify'), `#manifest lacks the service and its API: "${manifest.slice(0, 300)}"`);
  assert.ok(manifest.includes('3.11'), `#manifest does not show the python version: "${manifest.slice(0, 300)}"`);
  assert.ok((await text(page.locator('#pull-command'))).includes(`bentoml pull ${tags.bentoTag}`), '#pull-command');
  assert.match(await text(page.locator('main, body')), /\b\d+(\.\d+)?\s?(B|bytes|kB|KB|KiB)\b/, 'the bento size is not shown in human units');
  const modelLink = page.locator(`#models a[data-model="${tags.modelTag}"]`);
  assert.equal(await modelLink.count(), 1, `#models has no a[data-model="${tags.modelTag}"]`);
  await screenshot(page, 'bento-detail');

  await Promise.all([page.waitForNavigation(), modelLink.click()]);
  assert.equal(new URL(page.url()).pathname, `/models/${model.name}/${model.version}`);
  const usedBy = await text(page.locator('#used-by'));
  assert.ok(usedBy.includes(bento.name), `#used-by of the model does not list ${tags.bentoTag}: "${usedBy}"`);
  assert.ok((await text(page.locator('main, body'))).includes('bentoml.sklearn'), 'the model detail does not show its module');
  await screenshot(page, 'model-detail');

  await clickNav(page, 'Models');
  assert.equal(await page.locator(`tr[data-repository="${model.name}"]`).count(), 1, `/models has no row for ${model.name}`);
  await screenshot(page, 'models');
  await open(page, server, `/models/${model.name}`);
  assert.equal(await page.locator(`tr[data-version="${model.version}"]`).count(), 1, `/models/${model.name} has no row for ${model.version}`);
});

test('the overview counts the bento and the model and shows the latest ones', async () => {
  await clickNav(page, 'Overview');
  assert.equal(here(page), '/');
  assert.match(await text(page.locator('#count-bentos')), /\b1\b/, '#count-bentos');
  assert.match(await text(page.locator('#count-models')), /\b1\b/, '#count-models');
  const body = await text(page.locator('body'));
  assert.ok(body.includes(bento.name) && body.includes(model.name), 'the overview does not list the latest bento and model');
  await screenshot(page, 'overview');
});

test('events show the push', async () => {
  assert.ok(tags, 'nothing was pushed');
  await clickNav(page, 'Events');
  const pushes = page.locator(`tr[data-operation="push"][data-resource="${tags.bentoTag}"], tr[data-operation="push"][data-resource="${bento.name}"]`);
  assert.ok((await pushes.count()) >= 1, `/events has no tr[data-operation="push"][data-resource="${bento.name}" or "${tags.bentoTag}"]; rows: ${JSON.stringify(await page.locator('tr[data-operation]').evaluateAll((rs) => rs.map((r) => [r.dataset.operation, r.dataset.resource])))}`);
  assert.ok((await text(pushes.first())).includes(admin.name), 'the push event does not name its user');
  await screenshot(page, 'events');
});

test('deploy the bento through the form: a field error first, then its page; edit, roll back, terminate', async () => {
  assert.ok(tags, 'nothing was pushed');
  await clickNav(page, 'Deployments');
  await Promise.all([page.waitForNavigation(), page.locator('#new-deployment').click()]);
  assert.equal(new URL(page.url()).pathname, '/deployments/new');
  const options = await page.locator('#pick-bento-select option').evaluateAll((os) => os.map((o) => [o.value, o.selected]));
  assert.deepEqual(options[0], [tags.bentoTag, true], `the newest uploaded bento is not picked first: ${JSON.stringify(options)}`);
  await screenshot(page, 'deployment-new');

  let form = page.locator('form#deployment-form');
  await form.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(page, form, { name: 'Bad_Name', min_replicas: '1', max_replicas: '2', envs: 'GREETING=hello' });
  form = page.locator('form#deployment-form');
  assert.equal(await form.count(), 1, `an invalid name did not show the form again (at ${page.url()})`);
  assert.ok(await fieldError(form, 'name'), `no .field-error next to the name; errors: ${JSON.stringify(await fieldErrors(form))}`);
  assert.equal(await form.locator('[name=envs]').inputValue(), 'GREETING=hello', 'what was typed is lost');
  await screenshot(page, 'deployment-new-error');

  await fillAndSubmit(page, form, { name: 'iris-web' });
  const at = '/clusters/default/namespaces/default/deployments/iris-web';
  assert.equal(here(page), at, `after creating: at ${page.url()}`);
  assert.ok((await text(page.locator('#deployment-status'))).length > 0, 'no #deployment-status');
  assert.ok((await text(page.locator('#curl-example'))).includes('/classify'), `the curl example does not call the bento's API: ${await text(page.locator('#curl-example'))}`);
  assert.equal(await page.locator('#deployment-bento').getAttribute('href'), `/bentos/${bento.name}/${bento.version}`);
  assert.equal(await page.locator('#revisions tr[data-revision="1"]').count(), 1, 'no revision 1');
  assert.ok((await page.locator('#logs, #logs-note').count()) === 1, 'neither logs nor a note on why there are none');
  assert.equal(await page.locator('#events tr[data-operation="create"]').count(), 1, 'the create event is not shown');
  for (const href of new Set(await page.locator('main a[href^="/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href'))))) {
    const r = await page.request.get(`${server.url}${href}`);
    assert.ok(r.status() < 400, `the link ${href} answered ${r.status()}`);
  }
  await screenshot(page, 'deployment');

  await clickNav(page, 'Deployments');
  const row = page.locator('tr[data-deployment="iris-web"]');
  assert.equal(await row.count(), 1, '/deployments does not list iris-web');
  assert.ok((await text(row)).includes(tags.bentoTag), 'the row does not show the bento');
  await screenshot(page, 'deployments');
  await Promise.all([page.waitForNavigation(), row.locator('a', { hasText: 'iris-web' }).click()]);

  await Promise.all([page.waitForNavigation(), page.locator('#edit-deployment').click()]);
  form = page.locator('form#deployment-form');
  assert.equal(await form.locator('[name=max_replicas]').inputValue(), '2', 'the edit form does not start from the active revision');
  await fillAndSubmit(page, form, { max_replicas: '3' });
  assert.equal(here(page), at);
  assert.equal(await page.locator('#revisions tr[data-revision="2"]').count(), 1, 'the edit made no revision 2');

  await submit(page, page.locator('#revisions tr[data-revision="1"] form.rollback'));
  assert.equal(here(page), at);
  assert.match(await text(page.locator('#revisions tr[data-revision="3"]')), /rollback to #1/, 'the rollback made no revision 3 of revision 1');

  await submit(page, page.locator('form#terminate'));
  assert.equal(here(page), at);
  assert.equal(await page.locator('form#terminate').count(), 0, 'Terminate is still offered');
  await screenshot(page, 'deployment-terminated');
});

test('clusters: the local default cluster, and adding a Kubernetes cluster with a field error first', async () => {
  await clickNav(page, 'Clusters');
  assert.equal(await page.locator('tr[data-cluster="default"] .local-note').count(), 1, 'the default cluster has no note');
  await Promise.all([page.waitForNavigation(), page.locator('#add-cluster').click()]);
  let form = page.locator('form#create-cluster');
  await form.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(page, form, { name: 'Not A Label', description: 'edge', default_namespace: 'serving' });
  form = page.locator('form#create-cluster');
  assert.ok(await fieldError(form, 'name'), `no .field-error next to the name; errors: ${JSON.stringify(await fieldErrors(form))}`);
  await fillAndSubmit(page, form, { name: 'edge' });
  assert.equal(here(page), '/clusters/edge');
  assert.match(await text(page.locator('#kube-config')), /runs in/, 'an empty kubeconfig is not explained');
  await screenshot(page, 'cluster');
});

test('revoke the token in the UI: the API then answers 401', async () => {
  assert.ok(secret, 'no token secret: creating the token failed');
  await clickNav(page, 'API tokens');
  const row = page.locator(`tr[data-token-name="${tokenName}"]`);
  const revoke = row.locator('form.revoke-token');
  assert.equal(await revoke.count(), 1, `the row of ${tokenName} has no form.revoke-token`);
  await submit(page, revoke);
  const gone = await page.locator(`tr[data-token-name="${tokenName}"] form.revoke-token`).count();
  assert.equal(gone, 0, 'the revoked token can still be revoked (its row is unchanged)');
  const r = await api.call(server, 'GET', '/api/v1/auth/current', { token: secret });
  assert.equal(r.status, 401, `a revoked token answered ${r.status}`);
  await screenshot(page, 'api-token-revoked');
});

test('no page requested another host, and no page had a script error', () => {
  assert.ok(browser.requests.length > 10, 'the request log is (nearly) empty');
  assert.deepEqual(browser.foreign, [], 'requests to hosts other than the server');
  assert.deepEqual(browser.pageErrors, [], 'script errors in the pages');
});
