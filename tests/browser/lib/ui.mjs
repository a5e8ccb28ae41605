// Page helpers: navigate, fill and submit server-side forms like a user, read field errors.

import assert from 'node:assert/strict';

/** Every nav entry of the dashboard contract: [label, path]; path null = disabled item. */
export const NAV = [
  ['Overview', '/'],
  ['Bentos', '/bentos'],
  ['Models', '/models'],
  ['Deployments', '/deployments'],
  ['Clusters', '/clusters'],
  ['API tokens', '/api_tokens'],
  ['Members', '/members'],
  ['Events', '/events'],
  ['Users', '/users'],
];

/** Opens `path` on the server; the final answer must have a status below 400 unless `status` says otherwise. */
export async function open(page, server, path, { status } = {}) {
  const resp = await page.goto(`${server.url}${path}`);
  assert.ok(resp, `no answer for ${path}`);
  if (status === undefined) {
    assert.ok(resp.status() < 400, `GET ${path} answered ${resp.status()} (now at ${page.url()})`);
  } else {
    assert.equal(resp.status(), status, `GET ${path} answered ${resp.status()}, expected ${status}`);
  }
  return resp;
}

/** The path + query of the page's URL. */
export function here(page) {
  const u = new URL(page.url());
  return u.pathname + u.search;
}

/**
 * Fills the fields of `form` (a Locator) from `values` {name: value}: selects get selectOption,
 * checkboxes get an array of the values to check (the others are unchecked), the rest fill().
 */
export async function fill(form, values) {
  for (const [name, value] of Object.entries(values)) {
    const fields = form.locator(`[name="${name}"]`);
    const n = await fields.count();
    assert.ok(n > 0, `the form has no field named "${name}"`);
    const first = fields.first();
    const tag = await first.evaluate((el) => el.tagName.toLowerCase());
    const type = (await first.getAttribute('type')) || '';
    if (tag === 'select') {
      await first.selectOption(String(value));
    } else if (type === 'checkbox' || type === 'radio') {
      const wanted = new Set([].concat(value).map(String));
      for (let i = 0; i < n; i++) {
        const box = fields.nth(i);
        const v = await box.getAttribute('value');
        if (wanted.has(v)) await box.check();
        else if (type === 'checkbox') await box.uncheck();
        wanted.delete(v);
      }
      assert.equal(wanted.size, 0, `the form has no "${name}" option(s) ${[...wanted].join(', ')}`);
    } else if (type === 'hidden') {
      throw new Error(`field "${name}" is hidden: not something a user fills`);
    } else {
      await first.fill(String(value));
    }
  }
}

/**
 * Submits `form` by clicking its submit button (as a user does) and waits for the page that
 * follows. Returns the answer of the last navigation (after redirects). `dialog` answers confirm().
 */
export async function submit(page, form) {
  const button = form.locator('button[type=submit], input[type=submit], button:not([type])').first();
  assert.ok((await button.count()) > 0, 'the form has no submit button');
  const onDialog = (d) => d.accept();
  page.on('dialog', onDialog);
  try {
    const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
    return resp;
  } finally {
    page.off('dialog', onDialog);
  }
}

/** Fills and submits; see `fill` and `submit`. */
export async function fillAndSubmit(page, form, values) {
  await fill(form, values);
  return submit(page, form);
}

/** The value of the hidden `csrf` input of `form`; asserts it exists and is not empty. */
export async function csrfOf(form) {
  const input = form.locator('input[type=hidden][name=csrf]');
  assert.equal(await input.count(), 1, 'the form has no hidden input "csrf"');
  const v = await input.getAttribute('value');
  assert.ok(v, 'the csrf input is empty');
  return v;
}

/** The absolute URL a form posts to (its action, resolved against the page). */
export async function actionOf(form) {
  return form.evaluate((f) => f.action);
}

/**
 * The text of the `.field-error` that belongs to the field `name` of `form`, or null: one
 * referenced by the field's aria-describedby, or one inside the field's own box (the largest
 * ancestor holding no other field), or one among the siblings that follow that box up to the
 * next field or label.
 */
export async function fieldError(form, name) {
  return form.evaluate((f, name) => {
    const field = f.querySelector(`[name="${name}"]:not([type=hidden])`);
    if (!field) return `(no field named ${name})`;
    const errorText = (el) => (el.classList.contains('field-error') && el.textContent.trim()) || [...el.querySelectorAll('.field-error')].map((e) => e.textContent.trim()).filter(Boolean).join(' ');
    for (const id of (field.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean)) {
      const el = document.getElementById(id);
      if (el && errorText(el)) return errorText(el);
    }
    const others = (el) => [...el.querySelectorAll('[name]'), ...(el.matches('[name]') ? [el] : [])].some((x) => x.type !== 'hidden' && x.name !== name);
    let box = field;
    while (box.parentElement && box.parentElement !== f && !others(box.parentElement)) box = box.parentElement;
    if (errorText(box)) return errorText(box);
    for (let el = box.nextElementSibling; el; el = el.nextElementSibling) {
      if (others(el) || el.tagName === 'LABEL' || el.querySelector('label')) break;
      if (errorText(el)) return errorText(el);
    }
    return null;
  }, name);
}

/** All `.field-error` texts in `form`. */
export async function fieldErrors(form) {
  return form.locator('.field-error').evaluateAll((els) => els.map((e) => e.textContent.trim()).filter(Boolean));
}

/** Logs in through /login (the form, submitted with Enter in the password field). */
export async function login(page, server, user, { next } = {}) {
  await open(page, server, next ? `/login?next=${encodeURIComponent(next)}` : '/login');
  const form = page.locator('form#login');
  await fill(form, { name_or_email: user.name, password: user.password });
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), form.locator('[name=password]').press('Enter')]);
  assert.equal(new URL(page.url()).pathname, next ? new URL(next, server.url).pathname : '/', `after logging in as ${user.name}: at ${page.url()}`);
}

/** Clicks the nav link `label` and waits for its page. */
export async function clickNav(page, label) {
  const link = page.locator('nav').getByRole('link', { name: label, exact: true });
  assert.equal(await link.count(), 1, `the nav has ${await link.count()} links named "${label}"`);
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), link.click()]);
  return resp;
}

/** Texts of the matched elements, trimmed, whitespace collapsed. */
export async function texts(locator) {
  return locator.evaluateAll((els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
}

/** The element's text with whitespace collapsed. */
export async function text(locator) {
  return (await locator.first().textContent()).replace(/\s+/g, ' ').trim();
}

/** Values of `attr` on every element matched by `selector`. */
export async function attrs(page, selector, attr) {
  return page.locator(selector).evaluateAll((els, a) => els.map((e) => e.getAttribute(a)), attr);
}

/**
 * Posts a form as a page script cannot but an attacker could: the fields `values` go to
 * `action` through the context's own request client, which sends the context's cookies.
 */
export async function forgePost(context, action, values) {
  const resp = await context.request.post(action, { form: values, maxRedirects: 0, failOnStatusCode: false });
  return { status: resp.status(), text: await resp.text(), location: resp.headers().location };
}
