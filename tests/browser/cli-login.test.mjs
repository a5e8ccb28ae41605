// The browser login of the real bentoml 1.4 CLI: `bentoml cloud login --endpoint URL` (no
// --api-token) runs in a tmux pseudo-terminal; its menu is answered with keys ("Create a new API
// token with a web browser", then "yes, open it"); the URL it opens (captured through $BROWSER)
// is opened in headless Chromium, which logs in (the page sends it through /login?next=...) and
// authorizes the code; the CLI then ends logged in with a working token.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as api from './lib/api.mjs';
import { Browser, Fatal, LOGS, YataiServer, randomId, screenshot, waitFor, writeLog } from './lib/harness.mjs';
import { fill, submit, text } from './lib/ui.mjs';

const admin = { name: 'admin', password: `pw-${randomId(12)}` };
const BENTOML14 = process.env.BENTOML14;

let server, browser, tmux, work;
let openedUrl, code;

class Tmux {
  constructor() {
    this.socket = `yatai-browser-${process.pid}-${randomId(6)}`;
  }
  run(...args) {
    return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' });
  }
  screen() {
    return this.run('capture-pane', '-p', '-J', '-S', '-500', '-t', 'cli');
  }
  keys(...keys) {
    this.run('send-keys', '-t', 'cli', ...keys);
  }
  async waitForText(what, re, timeoutMs = 60000) {
    const exited = path.join(work, 'exit-code');
    const check = () => {
      if (re.test(this.screen())) return true;
      if (fs.existsSync(exited)) throw new Fatal(`the CLI exited (status ${fs.readFileSync(exited, 'utf8').trim()})`);
      return false;
    };
    return waitFor(`the CLI to show ${what}`, check, { timeoutMs }).catch((e) => {
      throw new Error(`${e.message}\n--- terminal ---\n${this.safeScreen()}`);
    });
  }
  safeScreen() {
    try {
      return this.screen();
    } catch (e) {
      return `(no screen: ${e.message})`;
    }
  }
  kill() {
    try {
      this.run('kill-server');
    } catch {
      /* already gone */
    }
  }
}

before(async () => {
  assert.ok(BENTOML14, 'BENTOML14 is not set: run `eval "$(scripts/venvs.sh)"` first (it creates the bentoml 1.4 venv)');
  assert.ok(fs.existsSync(path.join(BENTOML14, 'bin', 'bentoml')), `${BENTOML14}/bin/bentoml is missing: run \`eval "$(scripts/venvs.sh)"\``);
  try {
    execFileSync('tmux', ['-V']);
  } catch {
    throw new Error('tmux is missing: run scripts/browser-deps.sh (apt-get install tmux)');
  }
  server = await new YataiServer('cli-login').start();
  await api.setupAdmin(server, admin);
  browser = await new Browser(server).launch();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'yatai-cli-login-'));
});

after(async () => {
  if (tmux) {
    writeLog('cli-login-terminal.txt', tmux.safeScreen());
    tmux.kill();
  }
  if (browser) writeLog('cli-login-requests.json', browser.requests);
  await browser?.close();
  await server?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function cliEnv() {
  return {
    BENTOML_HOME: path.join(work, 'bentoml-home'),
    BENTOML_DO_NOT_TRACK: 'True',
    BROWSER: path.join(work, 'open-url.sh'),
    TERM: 'xterm-256color',
    NO_COLOR: '1',
  };
}

test('bentoml cloud login without --api-token shows the menu and opens the code URL', async () => {
  fs.mkdirSync(cliEnv().BENTOML_HOME, { recursive: true });
  // $BROWSER: what Python's webbrowser runs with the URL; it only writes the URL down.
  fs.writeFileSync(cliEnv().BROWSER, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${work}/opened-urls'\n`, { mode: 0o755 });
  const exports = Object.entries(cliEnv()).map(([k, v]) => `export ${k}='${v}'`).join('\n');
  fs.writeFileSync(
    path.join(work, 'login.sh'),
    `#!/bin/sh\n${exports}\n'${BENTOML14}/bin/bentoml' cloud login --endpoint '${server.url}'\necho $? > '${work}/exit-code'\nexec sleep 600\n`,
    { mode: 0o755 },
  );
  tmux = new Tmux();
  tmux.run('new-session', '-d', '-s', 'cli', '-x', '200', '-y', '50', path.join(work, 'login.sh'));

  await tmux.waitForText('its menu', /How would you like to authenticate BentoML CLI\?/);
  await tmux.waitForText('the browser option', /Create a new API token with a web browser/);
  const selected = tmux.screen().split('\n').find((l) => l.includes('●'));
  assert.ok(selected?.includes('Create a new API token with a web browser'), `the selected menu entry is not the browser one: "${selected}"`);
  tmux.keys('Enter');

  await tmux.waitForText('the question to open the browser', /Would you like to open/);
  tmux.keys('y', 'Enter');
  openedUrl = await waitFor('the CLI to open a URL through $BROWSER', () => {
    const f = path.join(work, 'opened-urls');
    return fs.existsSync(f) && fs.readFileSync(f, 'utf8').trim().split('\n')[0];
  }, { timeoutMs: 30000 }).catch((e) => {
    throw new Error(`${e.message}\n--- terminal ---\n${tmux.safeScreen()}`);
  });
  const u = new URL(openedUrl);
  assert.equal(`${u.origin}${u.pathname}`, `${server.url}/api_tokens`, `the CLI opened ${openedUrl}`);
  code = u.searchParams.get('code');
  assert.ok(code, `no code in ${openedUrl}`);
  await tmux.waitForText('that it waits', /Waiting for authentication/);
  const pending = await api.call(server, 'GET', `/api/v1/auth/token?code=${encodeURIComponent(code)}`);
  assert.notEqual(pending.status, 200, 'the token poll answers 200 before anyone authorized the code');
});

test('Chromium logs in through /login?next= and authorizes the code', async () => {
  assert.ok(openedUrl, 'the CLI opened no URL (previous test)');
  const ctx = await browser.newContext('cli-login');
  const page = await ctx.newPage();
  await page.goto(openedUrl);
  const atLogin = new URL(page.url());
  assert.equal(atLogin.pathname, '/login', `not logged in, ${openedUrl} should go to /login, went to ${page.url()}`);
  const next = atLogin.searchParams.get('next') || '';
  assert.ok(next.includes('/api_tokens') && next.includes(code), `/login?next= does not lead back to the code page: next="${next}"`);

  const form = page.locator('form#login');
  await fill(form, { name_or_email: admin.name, password: admin.password });
  await submit(page, form);
  const back = new URL(page.url());
  assert.equal(back.pathname, '/api_tokens', `after logging in: at ${page.url()}`);
  assert.equal(back.searchParams.get('code'), code, `after logging in the code is lost: ${page.url()}`);

  assert.equal(await page.locator('#cli-login').count(), 1, 'no #cli-login on /api_tokens?code=');
  const authorize = page.locator('form#authorize-cli');
  assert.equal(await authorize.count(), 1, 'no form#authorize-cli');
  assert.match(await text(authorize.locator('button, input[type=submit]')), /authorize/i, 'the Authorize button');
  await screenshot(page, 'cli-login');
  await submit(page, authorize);
  assert.equal(await page.locator('#cli-login-done').count(), 1, `no #cli-login-done after authorizing (at ${page.url()})`);
  await screenshot(page, 'cli-login-done');
  await ctx.close();
});

test('the CLI ends logged in with a working token; the code is single-use', async () => {
  const exitFile = path.join(work, 'exit-code');
  await waitFor('bentoml cloud login to exit', () => fs.existsSync(exitFile) && fs.readFileSync(exitFile, 'utf8').trim(), { timeoutMs: 60000 }).catch((e) => {
    throw new Error(`${e.message}\n--- terminal ---\n${tmux.safeScreen()}`);
  });
  const screen = tmux.screen();
  assert.equal(fs.readFileSync(exitFile, 'utf8').trim(), '0', `bentoml cloud login failed:\n${screen}`);
  assert.match(screen, /Logged in as/, `the CLI does not say it is logged in:\n${screen}`);

  const out = execFileSync(path.join(BENTOML14, 'bin', 'bentoml'), ['cloud', 'current-context'], {
    encoding: 'utf8',
    env: { ...process.env, ...cliEnv() },
  });
  fs.writeFileSync(path.join(LOGS, 'cli-login-current-context.json'), out.replace(/"api_token": "[^"]*"/, '"api_token": "(hidden)"'));
  const context = JSON.parse(out);
  assert.equal(context.endpoint, server.url, `current-context endpoint: ${out}`);
  assert.ok(context.api_token, `current-context has no token: ${out}`);
  const yaml = fs.readFileSync(path.join(cliEnv().BENTOML_HOME, '.yatai.yaml'), 'utf8');
  assert.ok(yaml.includes(context.api_token), '.yatai.yaml does not hold the token');

  const me = await api.ok(server, 'GET', '/api/v1/auth/current', { token: context.api_token });
  assert.equal(me.name, admin.name, 'the CLI token belongs to someone else');
  const again = await api.call(server, 'GET', `/api/v1/auth/token?code=${encodeURIComponent(code)}`);
  assert.notEqual(again.status, 200, 'the code gave out its token a second time');
  const unknown = await api.call(server, 'GET', '/api/v1/auth/token?code=no-such-code');
  assert.ok(unknown.status >= 400 && unknown.status < 500, `an unknown code answered ${unknown.status}`);
});

test('no page requested another host, and no page had a script error', () => {
  assert.deepEqual(browser.foreign, [], 'requests to hosts other than the server');
  assert.deepEqual(browser.pageErrors, [], 'script errors in the pages');
});
