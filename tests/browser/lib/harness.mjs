// The harness of the browser tests: a Yatai server on the embedded default (SQLite + a local
// directory) in a fresh data directory, Debian's headless Chromium driven by playwright-core,
// and a record of every request the pages make.
//
// Environment:
//   YATAI_BIN           the server binary (default <repo>/target/debug/yatai)
//   YATAI_NODE_MODULES  where playwright-core is installed (printed by scripts/browser-deps.sh)
//   YATAI_TEST_OUTPUT   output directory (default <repo>/test-output): screenshots/, logs/
//   CHROMIUM            the browser (default /usr/bin/chromium)
//   BENTOML14           the bentoml 1.4 venv (printed by scripts/venvs.sh), for cli-login.test.mjs

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const OUTPUT = path.resolve(process.env.YATAI_TEST_OUTPUT || path.join(REPO, 'test-output'));
export const SCREENSHOTS = path.join(OUTPUT, 'screenshots');
export const LOGS = path.join(OUTPUT, 'logs');
export const YATAI_BIN = process.env.YATAI_BIN || path.join(REPO, 'target', 'debug', 'yatai');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** The flags Chromium runs with: headless, no sandbox (root in CI), nothing fetched from outside. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const HOW_TO_DEPS = 'run scripts/browser-deps.sh (it installs Debian chromium and tmux with apt-get and the npm packages)';

/** A random string usable in names and passwords. */
export function randomId(n = 8) {
  return randomBytes(n).toString('hex').slice(0, n);
}

/** playwright-core, from YATAI_NODE_MODULES or a node_modules next to the tests. */
export function playwright() {
  const bases = [];
  if (process.env.YATAI_NODE_MODULES) bases.push(path.join(process.env.YATAI_NODE_MODULES, '..', 'x.js'));
  bases.push(fileURLToPath(import.meta.url));
  for (const base of bases) {
    try {
      return createRequire(base)('playwright-core');
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  throw new Error(
    `playwright-core is not installed: ${HOW_TO_DEPS}, then set YATAI_NODE_MODULES to the path it prints` +
      (process.env.YATAI_NODE_MODULES ? ` (YATAI_NODE_MODULES=${process.env.YATAI_NODE_MODULES} has no playwright-core)` : ''),
  );
}

/** Fails with how to fix it when Chromium or the server binary is missing. */
export function checkPrerequisites() {
  if (!isExecutable(CHROMIUM)) {
    throw new Error(`Chromium is missing: ${CHROMIUM} is not an executable file; ${HOW_TO_DEPS} (or apt-get install chromium)`);
  }
  if (!isExecutable(YATAI_BIN)) {
    throw new Error(`the yatai binary is missing: ${YATAI_BIN} is not an executable file; build it with \`cargo build\` in ${REPO} (or set YATAI_BIN)`);
  }
  playwright();
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Thrown inside a `waitFor` callback: stop waiting now (other errors are retried). */
export class Fatal extends Error {}

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor(what, fn, { timeoutMs = 20000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e instanceof Fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * A Yatai server on a free port in a fresh data directory, with YATAI_INITIALIZATION_TOKEN set.
 * Its output goes to <output>/logs/<name>-server.log.
 */
export class YataiServer {
  constructor(name) {
    this.name = name;
    this.initToken = `init-${randomId(16)}`;
    this.child = null;
    this.url = null;
  }

  async start() {
    checkPrerequisites();
    fs.mkdirSync(LOGS, { recursive: true });
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `yatai-browser-${this.name}-`));
    this.logPath = path.join(LOGS, `${this.name}-server.log`);
    let lastError;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      try {
        await this.#spawn(port);
        return this;
      } catch (e) {
        lastError = e;
        await this.stop();
      }
    }
    throw lastError;
  }

  async #spawn(port) {
    const log = fs.openSync(this.logPath, 'a');
    this.output = '';
    const child = spawn(
      YATAI_BIN,
      ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', this.dataDir],
      {
        env: { ...process.env, YATAI_INITIALIZATION_TOKEN: this.initToken, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    let exited = null;
    child.on('exit', (code, signal) => {
      exited = { code, signal };
    });
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        fs.writeSync(log, chunk);
        this.output += chunk.toString();
      });
    }
    child.on('close', () => fs.closeSync(log));
    const plain = () => this.output.replace(/\x1b\[[0-9;]*m/g, '');
    await waitFor(
      `the server to print "Yatai is listening on URL" (log: ${this.logPath})`,
      () => {
        if (exited) throw new Fatal(`the server exited (${JSON.stringify(exited)}): ${plain().slice(-2000)}`);
        return /Yatai is listening on (http:\/\/\S+)/.exec(plain());
      },
      { timeoutMs: 30000 },
    );
    this.url = /Yatai is listening on (http:\/\/\S+)/.exec(plain())[1].replace(/\/$/, '');
    this.origin = new URL(this.url).origin;
    await waitFor(`GET ${this.url}/healthz to answer 200`, async () => {
      if (exited) throw new Fatal(`the server exited (${JSON.stringify(exited)}): ${plain().slice(-2000)}`);
      const r = await fetch(`${this.url}/healthz`);
      return r.status === 200;
    });
  }

  async stop() {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await closed;
    clearTimeout(timer);
  }

  async cleanup() {
    await this.stop();
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * Headless Chromium plus the record of every request its pages make. Each `newContext()` is a
 * separate cookie jar (one per user); requests to any other host than the server are recorded
 * as violations and aborted (so that an offline machine never waits on them).
 */
export class Browser {
  constructor(server) {
    this.server = server;
    this.requests = [];
    this.foreign = [];
    this.pageErrors = [];
    this.contexts = [];
  }

  async launch() {
    checkPrerequisites();
    const { chromium } = playwright();
    // Playwright gives every launch a fresh temporary --user-data-dir of its own.
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60000,
    });
    return this;
  }

  /** A fresh context (own cookies) with a laptop-sized viewport; `options` go to newContext. */
  async newContext(label, options = {}) {
    const ctx = await this.browser.newContext({ viewport: { width: 1366, height: 768 }, ...options });
    ctx.setDefaultTimeout(15000);
    ctx.setDefaultNavigationTimeout(20000);
    const allowed = (u) => {
      if (/^(data|blob|about):/.test(u)) return true;
      try {
        return new URL(u).origin === this.server.origin;
      } catch {
        return false;
      }
    };
    ctx.on('request', (req) => {
      const entry = { context: label, method: req.method(), url: req.url(), from: req.frame()?.url?.() ?? '' };
      this.requests.push(entry);
      if (!allowed(entry.url)) this.foreign.push(entry);
    });
    await ctx.route((u) => !allowed(u.href), (route) => route.abort('blockedbyclient'));
    ctx.on('page', (page) => this.#watch(page, label));
    this.contexts.push(ctx);
    return ctx;
  }

  #watch(page, label) {
    page.on('pageerror', (err) => this.pageErrors.push({ context: label, url: page.url(), error: String(err) }));
    page.on('console', (msg) => {
      // Chromium logs every 4xx/5xx answer, pages with a validation error (400) and refused ones
      // (403) included: failed subresources are caught below instead.
      if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) {
        this.pageErrors.push({ context: label, url: page.url(), error: `console: ${msg.text()}` });
      }
    });
    page.on('response', (resp) => {
      const req = resp.request();
      if (!req.isNavigationRequest() && resp.status() >= 400) {
        this.pageErrors.push({ context: label, url: page.url(), error: `${req.method()} ${resp.url()} answered ${resp.status()}` });
      }
    });
    page.on('requestfailed', (req) => {
      if (!this.foreign.some((f) => f.url === req.url())) {
        this.pageErrors.push({ context: label, url: page.url(), error: `${req.method()} ${req.url()} failed: ${req.failure()?.errorText}` });
      }
    });
  }

  async close() {
    for (const ctx of this.contexts) await ctx.close().catch(() => {});
    if (this.browser) await this.browser.close().catch(() => {});
  }
}

/** Saves a full-page screenshot as <output>/screenshots/<name>.png and returns its path. */
export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Writes a JSON report (e.g. every request URL) under <output>/logs/. */
export function writeLog(name, data) {
  fs.mkdirSync(LOGS, { recursive: true });
  const file = path.join(LOGS, name);
  fs.writeFileSync(file, typeof data === 'string' ? data : JSON.stringify(data, null, 2));
  return file;
}
