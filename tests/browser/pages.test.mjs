// Every page of the dashboard: reachable from the navigation bar (Deployments and Clusters
// included, with their forms and detail pages), an empty state before anything is pushed, lists
// with search / label filter / sort / pagination, event filters, read-only pages without
// JavaScript, labelled inputs, keyboard navigation, no horizontal scrolling on a laptop screen,
// and not one request to a host other than the server. Screenshots of each page.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';

import * as api from './lib/api.mjs';
import { Browser, YataiServer, randomId, screenshot, writeLog } from './lib/harness.mjs';
import { NAV, clickNav, here, login, open, text } from './lib/ui.mjs';

const admin = { name: 'admin', password: `pw-${randomId(12)}` };
const EXTRA = 27; // more bento repositories than one page shows (Yatai pages by 20)

let server, browser, ctx, page, token;

before(async () => {
  server = await new YataiServer('pages').start();
  await api.setupAdmin(server, admin);
  token = await api.createToken(server, await api.loginCookie(server, admin));
  browser = await new Browser(server).launch();
  ctx = await browser.newContext('admin');
  page = await ctx.newPage();
  await login(page, server, admin);
});

// A fresh tab for each test, so that one failing page does not break the next test.
beforeEach(async () => {
  if (!ctx) return;
  const old = page;
  page = await ctx.newPage();
  await old?.close();
});

after(async () => {
  if (browser) writeLog('pages-requests.json', browser.requests);
  await browser?.close();
  await server?.cleanup();
});

test('the nav bar has every entry (Deployments and Clusters included) and a Log out button', async () => {
  await open(page, server, '/');
  const nav = page.locator('nav');
  assert.equal(await nav.count(), 1, 'not exactly one <nav>');
  for (const [label, path] of NAV) {
    if (path) {
      const link = nav.getByRole('link', { name: label, exact: true });
      assert.equal(await link.count(), 1, `the nav has no link "${label}"`);
      assert.equal(new URL(await link.evaluate((a) => a.href)).pathname, path, `nav link "${label}"`);
    } else {
      const item = nav.getByText(label, { exact: true });
      assert.equal(await item.count(), 1, `the nav has no (disabled) item "${label}"`);
      const enabled = await item.evaluate((el) => {
        const a = el.closest('a');
        return !!(a && a.getAttribute('href') && a.getAttribute('aria-disabled') !== 'true');
      });
      assert.ok(!enabled, `nav item "${label}" is a working link; it should be disabled`);
    }
  }
  const logout = page.locator('form[action$="/logout"]');
  assert.equal(await logout.count(), 1, 'no logout form');
  assert.match(await text(logout.locator('button, input[type=submit]')), /log out/i, 'the logout button');
});

test('empty states say what to do next', async () => {
  for (const [path, shot] of [['/bentos', 'bentos-empty'], ['/models', 'models-empty'], ['/', 'overview-empty']]) {
    await open(page, server, path);
    assert.equal(await page.locator('tr[data-repository]').count(), 0, `${path} lists something on a new server`);
    assert.match(await text(page.locator('main, body')), /bentoml|push/i, `the empty ${path} does not say how to push (e.g. "bentoml push")`);
    await screenshot(page, shot);
  }
});

test('every nav page is reachable by clicking the nav and renders without errors', async () => {
  await api.pushBentoWithModel(server, token, {
    bento: { name: 'fraud-detector', version: 'v20240101' },
    model: { name: 'fraud_xgb', version: 'v20240101' },
    bentoLabels: [{ key: 'team', value: 'risk' }],
  });
  await open(page, server, '/');
  for (const [label, path] of NAV.filter(([, p]) => p)) {
    const resp = await clickNav(page, label);
    assert.ok(resp && resp.status() === 200, `nav "${label}" answered ${resp?.status()}`);
    assert.equal(new URL(page.url()).pathname, path, `nav "${label}" led to ${page.url()}`);
    assert.equal(await page.locator('nav').count(), 1, `${path} has no <nav>`);
    assert.ok((await page.title()).trim(), `${path} has no <title>`);
    const untitled = await page.locator('time').evaluateAll((ts) => ts.filter((t) => !t.title).map((t) => t.textContent.trim()));
    assert.deepEqual(untitled, [], `${path}: relative times without the exact time on hover (title)`);
    await screenshot(page, `nav-${label.toLowerCase().replace(/\s+/g, '-')}`);
  }
});

test('every input is labelled, and the nav is keyboard reachable', async () => {
  const unlabelled = [];
  for (const [, path] of NAV.filter(([, p]) => p)) {
    await open(page, server, path);
    const bad = await page.locator('input, select, textarea').evaluateAll((els) =>
      els
        .filter((e) => !['hidden', 'submit', 'button'].includes(e.type) && e.offsetParent !== null)
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
        .map((e) => `${e.tagName.toLowerCase()}[name=${e.name}]`),
    );
    unlabelled.push(...bad.map((b) => `${path}: ${b}`));
  }
  assert.deepEqual(unlabelled, [], 'inputs without a label');

  await open(page, server, '/');
  let reached = false;
  for (let i = 0; i < 20 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.closest('nav') && document.activeElement.textContent.trim() === 'Bentos');
  }
  assert.ok(reached, 'Tab does not reach the "Bentos" nav link within 20 presses');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  assert.equal(new URL(page.url()).pathname, '/bentos', 'Enter on the focused nav link');
});

test('no page scrolls sideways on a 1280x800 laptop screen', async () => {
  const narrow = await browser.newContext('laptop', { viewport: { width: 1280, height: 800 } });
  await narrow.addCookies(await ctx.cookies(server.url));
  const p = await narrow.newPage();
  const wide = [];
  for (const path of ['/', '/bentos', '/bentos/fraud-detector', '/bentos/fraud-detector/v20240101', '/models', '/models/fraud_xgb/v20240101', '/deployments', '/deployments/new', '/clusters', '/clusters/new', '/clusters/default', '/api_tokens', '/members', '/events', '/users']) {
    await open(p, server, path);
    const [sw, cw] = await p.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    if (sw > cw + 1) wide.push(`${path}: ${sw}px wide in a ${cw}px window`);
  }
  await narrow.close();
  assert.deepEqual(wide, [], 'pages wider than the window');
});

test('bentos: search, label filter, sort and pagination', async () => {
  const names = [];
  for (let i = 0; i < EXTRA; i++) {
    const name = `batch-${String(i).padStart(2, '0')}-${i % 3 === 0 ? 'alpha' : 'beta'}`;
    names.push(name);
    await api.push(server, token, 'bento', name, 'v1', {
      manifest: api.bentoManifest(name, 'v1', 100, []),
      labels: [{ key: 'parity', value: i % 2 ? 'odd' : 'even' }],
      archive: api.tarball({ 'bento.yaml': `name: ${name}\n` }),
    });
  }
  const all = new Set([...names, 'fraud-detector']);

  // Each row shows its own repository's latest version.
  await open(page, server, '/bentos?search=fraud');
  const fraudRow = await text(page.locator('tr[data-repository="fraud-detector"]'));
  assert.ok(fraudRow.includes('v20240101'), `the row of fraud-detector does not show its latest version v20240101: "${fraudRow}"`);

  // Pagination: follow a[rel=next] to the end; every repository exactly once; rel=prev goes back.
  await open(page, server, '/bentos');
  await screenshot(page, 'bentos-page-1');
  const seen = [];
  for (let n = 1; ; n++) {
    seen.push(...(await repos(page)));
    const next = page.locator('a[rel=next]');
    if ((await next.count()) === 0) break;
    assert.ok(n < 20, 'more than 20 pages');
    await Promise.all([page.waitForNavigation(), next.first().click()]);
    if (n === 1) {
      assert.ok((await page.locator('a[rel=prev]').count()) >= 1, 'page 2 has no a[rel=prev]');
    }
  }
  assert.ok(seen.length < all.size || (await page.locator('a[rel=prev]').count()) > 0, `${all.size} repositories fit on one page: no pagination to test`);
  assert.deepEqual([...seen].sort(), [...all].sort(), 'the pages together do not list every repository exactly once');

  // Search.
  await open(page, server, '/bentos');
  await fillAndSubmitGet(page, 'search', 'alpha');
  const found = await repos(page);
  assert.deepEqual(found.sort(), names.filter((n) => n.includes('alpha')).sort(), `search "alpha" (at ${here(page)})`);
  await screenshot(page, 'bentos-search');

  // Label filter.
  await open(page, server, '/bentos');
  await fillAndSubmitGet(page, 'label', 'team=risk');
  assert.deepEqual(await repos(page), ['fraud-detector'], `label filter team=risk (at ${here(page)})`);
  await open(page, server, '/bentos');
  await fillAndSubmitGet(page, 'label', 'parity=odd');
  const odd = await repos(page);
  assert.ok(odd.length > 0 && odd.every((n) => names.indexOf(n) % 2 === 1), `label filter parity=odd lists ${odd}`);

  // Sort: every option lists the same repositories (within a search that fits one page); a
  // name sort orders them by name.
  await open(page, server, '/bentos');
  const sort = page.locator('select[name=sort]');
  assert.equal(await sort.count(), 1, 'no select[name=sort] on /bentos');
  const options = await sort.locator('option').evaluateAll((os) => os.map((o) => ({ value: o.value, label: o.textContent.trim() })));
  assert.ok(options.length >= 2, `the sort select has ${options.length} option(s)`);
  const orders = {};
  for (const o of options) {
    await open(page, server, '/bentos?search=alpha');
    await page.locator('select[name=sort]').evaluate((s, v) => {
      s.value = v;
    }, o.value);
    await Promise.all([page.waitForNavigation(), page.locator('select[name=sort]').evaluate((s) => s.form.requestSubmit())]);
    const listed = await repos(page);
    assert.deepEqual([...listed].sort(), names.filter((n) => n.includes('alpha')).sort(), `sort "${o.label}" with search alpha (at ${here(page)})`);
    orders[o.label] = listed;
    if (/name/i.test(`${o.value} ${o.label}`)) {
      const asc = [...listed].sort();
      assert.ok(JSON.stringify(listed) === JSON.stringify(asc) || JSON.stringify(listed) === JSON.stringify(asc.reverse()), `sort "${o.label}" is not by name: ${listed}`);
    }
  }
  assert.ok(new Set(Object.values(orders).map((o) => JSON.stringify(o))).size >= 2, `every sort option gives the same order: ${JSON.stringify(orders)}`);
});

test('events: filters by resource type, operation and user', async () => {
  await open(page, server, '/events');
  const rows = () => page.locator('tr[data-operation]').evaluateAll((rs) => rs.map((r) => ({ op: r.dataset.operation, resource: r.dataset.resource, text: r.textContent })));
  assert.ok((await rows()).length > 0, '/events lists nothing');
  for (const name of ['resource_type', 'operation_name', 'user']) {
    assert.equal(await page.locator(`[name=${name}]`).count(), 1, `/events has no filter "${name}"`);
  }
  await fillAndSubmitGet(page, 'operation_name', 'push');
  const pushes = await rows();
  assert.ok(pushes.length > 0 && pushes.every((r) => r.op === 'push'), `operation_name=push lists ${JSON.stringify(pushes.map((r) => r.op))}`);
  await screenshot(page, 'events-filtered');

  await open(page, server, '/events');
  await fillAndSubmitGet(page, 'resource_type', 'model');
  const models = await rows();
  assert.ok(models.length > 0 && models.every((r) => r.resource.startsWith('fraud_xgb')), `resource_type=model lists ${JSON.stringify(models.map((r) => r.resource))}`);

  await open(page, server, '/events');
  await fillAndSubmitGet(page, 'user', 'nobody-at-all');
  assert.equal((await rows()).length, 0, 'user=nobody-at-all still lists events');
  await open(page, server, '/events');
  await fillAndSubmitGet(page, 'user', admin.name);
  assert.ok((await rows()).length > 0, `user=${admin.name} lists nothing`);
});

test('read-only pages work with JavaScript disabled', async () => {
  const nojs = await browser.newContext('no-javascript', { javaScriptEnabled: false });
  const p = await nojs.newPage();
  await login(p, server, admin);
  await open(p, server, '/bentos?search=fraud');
  assert.equal(await p.locator('tr[data-repository="fraud-detector"]').count(), 1, '/bentos?search=fraud without JavaScript');
  await open(p, server, '/bentos/fraud-detector/v20240101');
  assert.equal(await p.locator('#models a[data-model="fraud_xgb:v20240101"]').count(), 1, 'bento detail without JavaScript');
  await open(p, server, '/bentos?search=fraud');
  assert.deepEqual(await repos(p), ['fraud-detector'], 'search without JavaScript');
  for (const path of ['/', '/models', '/events', '/members', '/api_tokens', '/users', '/deployments', '/clusters', '/clusters/default']) {
    await open(p, server, path);
    assert.equal(await p.locator('nav').count(), 1, `${path} without JavaScript`);
  }
  await screenshot(p, 'bento-detail-no-javascript');
  await nojs.close();
});

test('deployments and clusters: an empty list says what to do, the forms render with labelled inputs, every link works', async () => {
  await open(page, server, '/deployments');
  assert.equal(await page.locator('tr[data-deployment]').count(), 0, '/deployments lists something on a new server');
  assert.match(await text(page.locator('main')), /push a bento|bentoml deployment/i, 'the empty /deployments does not say what to do');
  assert.equal(await page.locator('#new-deployment').count(), 1, 'no "New deployment" button for an admin');
  await screenshot(page, 'deployments-empty');
  await open(page, server, '/clusters');
  const local = page.locator('tr[data-cluster="default"]');
  assert.equal(await local.count(), 1, '/clusters does not list the local default cluster');
  assert.match(await text(local), /processes on the server's machine/, 'the default cluster has no note on what it is');
  await screenshot(page, 'clusters');
  const unlabelled = [];
  for (const path of ['/deployments/new', '/clusters/new', '/clusters/default']) {
    await open(page, server, path);
    const bad = await page.locator('input, select, textarea').evaluateAll((els) =>
      els
        .filter((e) => !['hidden', 'submit', 'button'].includes(e.type) && e.offsetParent !== null)
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
        .map((e) => `${e.tagName.toLowerCase()}[name=${e.name}]`),
    );
    unlabelled.push(...bad.map((b) => `${path}: ${b}`));
    const links = await page.locator('main a[href^="/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    for (const href of new Set(links)) {
      const r = await page.request.get(`${server.url}${href}`);
      assert.ok(r.status() < 400, `${path}: the link ${href} answered ${r.status()}`);
    }
    await screenshot(page, `page-${path.slice(1).replace(/\//g, '-')}`);
  }
  assert.deepEqual(unlabelled, [], 'inputs without a label');
  await open(page, server, '/deployments/new');
  const picked = await page.locator('#pick-bento-select option').evaluateAll((os) => os.map((o) => o.value));
  assert.ok(picked.includes('fraud-detector:v20240101'), `the bento picker does not offer the uploaded bento: ${picked}`);
});

test('no page requested another host, and no page had a script error', () => {
  assert.ok(browser.requests.length > 20, 'the request log is (nearly) empty');
  assert.deepEqual(browser.foreign, [], 'requests to hosts other than the server');
  assert.deepEqual(browser.pageErrors, [], 'script errors in the pages');
});

/**
 * Names of the repositories listed on the page, in order: rows tr[data-repository], or, where
 * the page lists bento versions instead (the label filter), the repositories of their
 * tr[data-tag] rows, each once.
 */
async function repos(p) {
  return p.locator('tr[data-repository], tr[data-tag]').evaluateAll((rs) => [
    ...new Set(rs.map((r) => r.dataset.repository ?? r.dataset.tag.split(':')[0])),
  ]);
}

/** Sets the GET filter field `name` to `value` and submits its form (as Enter would). */
async function fillAndSubmitGet(p, name, value) {
  const field = p.locator(`[name="${name}"]`).first();
  assert.equal(await p.locator(`[name="${name}"]`).count(), 1, `no field "${name}" on ${here(p)}`);
  const tag = await field.evaluate((e) => e.tagName.toLowerCase());
  if (tag === 'select') {
    await field.evaluate((s, v) => {
      s.value = v;
    }, value);
    assert.equal(await field.inputValue(), value, `"${name}" has no option "${value}"`);
  } else {
    await field.fill(value);
  }
  await Promise.all([p.waitForNavigation(), field.evaluate((e) => e.form.requestSubmit())]);
}
