// Users, members and permissions in the dashboard: an admin creates users and manages members
// through the forms; a guest sees no create or manage controls and gets 403 on forged POSTs
// (with a valid CSRF token of their own); a POST without the CSRF token is refused.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import * as api from './lib/api.mjs';
import { Browser, YataiServer, randomId, screenshot, writeLog } from './lib/harness.mjs';
import { clickNav, csrfOf, fieldError, fieldErrors, fill, fillAndSubmit, forgePost, login, open, submit, text } from './lib/ui.mjs';

const admin = { name: 'root-admin', password: `pw-${randomId(12)}` };
const guest = { name: 'gina-guest', email: 'gina@example.com', password: `pw-${randomId(12)}` };
const dev = { name: 'dev-dora', email: 'dora@example.com', password: `pw-${randomId(12)}` };

let server, browser, adminCtx, adminPage, guestCtx, guestPage;
let adminToken;
const actions = {};

before(async () => {
  server = await new YataiServer('access').start();
  await api.setupAdmin(server, admin);
  adminToken = await api.createToken(server, await api.loginCookie(server, admin));
  await api.pushBentoWithModel(server, adminToken, { bento: { name: 'shared-bento', version: 'v1' }, model: { name: 'shared_model', version: 'v1' } });
  browser = await new Browser(server).launch();
  adminCtx = await browser.newContext('admin');
  adminPage = await adminCtx.newPage();
  await login(adminPage, server, admin);
});

after(async () => {
  if (browser) writeLog('access-requests.json', browser.requests);
  await browser?.close();
  await server?.cleanup();
});

async function members() {
  const list = await api.ok(server, 'GET', '/api/v1/members', { token: adminToken });
  return Object.fromEntries((list.items ?? list).map((m) => [m.user.name, m.role]));
}

test('admin creates users through /users; invalid input shows an error next to the field', async () => {
  await clickNav(adminPage, 'Users');
  const form = adminPage.locator('form#create-user');
  assert.equal(await form.count(), 1, 'no form#create-user on /users');
  actions.createUser = await formOf(form);
  await screenshot(adminPage, 'users');

  await form.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(adminPage, form, { name: 'Not A Valid Name!', email: 'valid@example.com', password: guest.password, role: 'guest' });
  const invalid = adminPage.locator('form#create-user');
  assert.ok(await fieldError(invalid, 'name'), `no .field-error next to an invalid user name; errors: ${JSON.stringify(await fieldErrors(invalid))}`);
  await screenshot(adminPage, 'users-errors');
  await invalid.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(adminPage, invalid, { name: 'valid-name', email: 'not-an-email', password: guest.password, role: 'guest' });
  const badEmail = adminPage.locator('form#create-user');
  assert.ok(await fieldError(badEmail, 'email'), `no .field-error next to the invalid email "not-an-email"; errors: ${JSON.stringify(await fieldErrors(badEmail))}`);

  for (const [user, role] of [[guest, 'guest'], [dev, 'developer']]) {
    await open(adminPage, server, '/users');
    await fillAndSubmit(adminPage, adminPage.locator('form#create-user'), { name: user.name, email: user.email, password: user.password, role });
    assert.ok((await text(adminPage.locator('body'))).includes(user.name), `/users does not list ${user.name} after creating it`);
  }
  const m = await members();
  assert.equal(m[guest.name], 'guest', `members after creating users: ${JSON.stringify(m)}`);
  assert.equal(m[dev.name], 'developer', `members after creating users: ${JSON.stringify(m)}`);

  await open(adminPage, server, '/users');
  await fillAndSubmit(adminPage, adminPage.locator('form#create-user'), { name: guest.name, email: 'other@example.com', password: guest.password, role: 'guest' });
  const taken = adminPage.locator('form#create-user');
  assert.ok((await fieldError(taken, 'name')) || (await fieldError(taken, 'email')), `creating a user with a taken name shows no .field-error next to the name (or e-mail); errors: ${JSON.stringify(await fieldErrors(taken))}`);
});

test('admin resets a password through /users; the user logs in with the new one', async () => {
  await open(adminPage, server, '/users');
  const adminReset = resetFormOf(adminPage, admin.name);
  assert.equal(await adminReset.count(), 1, `no form.reset-password for ${admin.name}`);
  actions.resetPassword = await formOf(adminReset);
  const form = resetFormOf(adminPage, guest.name);
  assert.equal(await form.count(), 1, `no form.reset-password for ${guest.name}`);
  guest.password = `new-${randomId(12)}`;
  const passwordField = form.locator('input[type=password]');
  assert.equal(await passwordField.count(), 1, 'form.reset-password has no (single) password input');
  await fill(form, { [await passwordField.getAttribute('name')]: guest.password });
  await submit(adminPage, form);
  const r = await api.call(server, 'POST', '/api/v1/auth/login', { json: { name_or_email: guest.name, password: guest.password } });
  assert.equal(r.status, 200, `the reset password does not log in: ${r.status} ${r.text}`);
});

test('admin manages members: change role, remove, add back', async () => {
  await clickNav(adminPage, 'Members');
  const row = () => adminPage.locator(`tr[data-member="${dev.name}"]`);
  assert.equal(await row().count(), 1, `/members has no tr[data-member="${dev.name}"]`);
  assert.equal(await adminPage.locator('form#add-member').count(), 1, 'no form#add-member for the admin');
  await screenshot(adminPage, 'members');

  const change = row().locator('form.change-role');
  assert.equal(await change.count(), 1, `the row of ${dev.name} has no form.change-role`);
  actions.changeRole = await formOf(change);
  await fillAndSubmit(adminPage, change, { role: 'admin' });
  assert.equal((await members())[dev.name], 'admin', 'form.change-role did not make the member an admin');
  await fillAndSubmit(adminPage, row().locator('form.change-role'), { role: 'developer' });
  assert.equal((await members())[dev.name], 'developer', 'form.change-role did not make the member a developer again');

  const remove = row().locator('form.remove-member');
  assert.equal(await remove.count(), 1, `the row of ${dev.name} has no form.remove-member`);
  actions.removeMember = await formOf(remove);
  await submit(adminPage, remove);
  assert.equal(await row().count(), 0, `${dev.name} is still listed after form.remove-member`);
  assert.equal((await members())[dev.name], undefined, 'form.remove-member did not remove the member');

  const add = adminPage.locator('form#add-member');
  actions.addMember = await formOf(add);
  await fillAndSubmit(adminPage, add, { username: dev.name, role: 'developer' });
  assert.equal(await row().count(), 1, `${dev.name} is not listed after form#add-member`);
  assert.equal((await members())[dev.name], 'developer');

  const again = adminPage.locator('form#add-member');
  await again.evaluate((f) => (f.noValidate = true));
  await fillAndSubmit(adminPage, again, { username: 'nobody-by-this-name', role: 'developer' });
  const unknown = adminPage.locator('form#add-member');
  assert.ok(
    await fieldError(unknown, 'username'),
    `adding an unknown user shows no .field-error next to the username field; .field-error on the page: ${JSON.stringify(await adminPage.locator('.field-error').allTextContents())}`,
  );
});

test('a guest sees the registry but no create or manage controls', async () => {
  guestCtx = await browser.newContext('guest');
  guestPage = await guestCtx.newPage();
  await login(guestPage, server, guest);
  for (const path of ['/', '/bentos', '/bentos/shared-bento', '/bentos/shared-bento/v1', '/models', '/models/shared_model/v1', '/members', '/events']) {
    await open(guestPage, server, path);
    const posts = await guestPage.locator('form').evaluateAll((fs) =>
      fs.filter((f) => f.method === 'post' && !new URL(f.action).pathname.endsWith('/logout')).map((f) => f.id || f.className || f.action),
    );
    assert.deepEqual(posts, [], `a guest gets POST forms on ${path}`);
  }
  await open(guestPage, server, '/members');
  assert.equal(await guestPage.locator(`tr[data-member="${admin.name}"]`).count(), 1, 'a guest does not see the member list');
  await screenshot(guestPage, 'members-as-guest');
  await open(guestPage, server, '/bentos');
  assert.equal(await guestPage.locator('tr[data-repository="shared-bento"]').count(), 1, 'a guest does not see the bentos');

  const users = await guestPage.goto(`${server.url}/users`);
  assert.equal(await guestPage.locator('form#create-user, form.reset-password').count(), 0, 'a guest gets the user management forms');
  assert.ok(users.status() === 403 || users.status() === 404, `/users as a guest answered ${users.status()}`);
  await screenshot(guestPage, 'users-as-guest');
});

test('a guest gets 403 on forged POSTs carrying their own valid CSRF token', async () => {
  await open(guestPage, server, '/');
  const csrf = await csrfOf(guestPage.locator('form[action$="/logout"]').first());
  const before = await members();
  // The admin's own forms, replayed by the guest with the guest's CSRF token.
  const forged = [
    ['add member', actions.addMember, { username: guest.name, role: 'admin' }],
    ['change role', actions.changeRole, { role: 'admin' }],
    ['remove member', actions.removeMember, {}],
    ['create user', actions.createUser, { name: 'sneaky', email: 'sneaky@example.com', password: 'sneaky-password-1', role: 'admin' }],
    ['reset password', actions.resetPassword, { password: 'taken-over-1234', new_password: 'taken-over-1234' }],
  ];
  const wrong = [];
  for (const [what, recorded, values] of forged) {
    assert.ok(recorded, `the admin's "${what}" form was not recorded (an earlier test failed)`);
    const r = await forgePost(guestCtx, recorded.action, { ...recorded.fields, ...values, csrf });
    if (r.status !== 403) wrong.push(`${what}: POST ${new URL(recorded.action).pathname} answered ${r.status} ${r.location ?? ''}`);
  }
  assert.deepEqual(wrong, [], 'forged POSTs by a guest that did not get 403');
  assert.deepEqual(await members(), before, 'forged POSTs changed the members');
  const sneaky = await api.call(server, 'POST', '/api/v1/auth/login', { json: { name_or_email: 'sneaky', password: 'sneaky-password-1' } });
  assert.notEqual(sneaky.status, 200, 'a forged POST created a user');
  const victim = await api.call(server, 'POST', '/api/v1/auth/login', { json: { name_or_email: admin.name, password: admin.password } });
  assert.equal(victim.status, 200, "a forged POST reset the admin's password");
});

test('a POST without the CSRF token (or with a wrong one) is refused and changes nothing', async () => {
  await open(adminPage, server, '/api_tokens');
  const { action } = await formOf(adminPage.locator('form#create-token'));
  const values = { name: 'csrf-forged', description: '', scopes: 'api' };
  for (const [what, form] of [['no csrf', values], ['wrong csrf', { ...values, csrf: 'forged-value' }]]) {
    const r = await forgePost(adminCtx, action, form);
    assert.ok(r.status >= 400 && r.status < 500, `create token with ${what} answered ${r.status}`);
  }
  const tokens = await api.ok(server, 'GET', '/api/v1/api_tokens', { token: adminToken });
  assert.ok(!tokens.items.some((t) => t.name === 'csrf-forged'), 'a POST without a valid CSRF token created a token');
});

test('no page requested another host, and no page had a script error', () => {
  assert.deepEqual(browser.foreign, [], 'requests to hosts other than the server');
  assert.deepEqual(browser.pageErrors, [], 'script errors in the pages');
});

/** The form.reset-password that belongs to the user `name` on /users. */
function resetFormOf(page, name) {
  const byData = page.locator(`[data-user="${name}"] form.reset-password`);
  const byRow = page.locator('tr').filter({ hasText: new RegExp(`(^|\\s)${name}(\\s|$)`) }).locator('form.reset-password');
  return byData.or(byRow).first();
}

/** A form's absolute action and its current fields (all but checkboxes left unchecked). */
async function formOf(form) {
  return form.evaluate((f) => ({ action: f.action, fields: Object.fromEntries(new FormData(f)) }));
}
