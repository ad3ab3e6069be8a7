// Shared pieces of the end-to-end tests: the test environment's Chromium, the
// real `bowchat` debug binary on a free loopback port, and screenshots.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SCREENSHOTS = path.join(ROOT, 'target', 'e2e-screenshots');

/** A value from scripts/testenv's env file; a missing one fails with how to start it. */
export function requireEnv(key, component) {
  const file = process.env.BOWCHAT_TESTENV || '/tmp/bowchat-testenv/env';
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file} (${e.code}); start it with \`scripts/testenv up ${component}\``);
  }
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0 && !line.trim().startsWith('#') && line.slice(0, i).trim() === key) return line.slice(i + 1).trim();
  }
  throw new Error(`${key} is not in ${file}; start it with \`scripts/testenv up ${component}\``);
}

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * A browser of its own with a fresh profile directory (--user-data-dir), so two
 * users share nothing: no storage, no cookies, no cache.
 */
export async function newBrowser() {
  const executablePath = requireEnv('BOWCHAT_TEST_CHROMIUM', 'chromium');
  const state = process.env.TESTENV_STATE || '/tmp/bowchat-testenv';
  const base = path.join(state, 'chromium');
  mkdirSync(base, { recursive: true });
  const profile = mkdtempSync(path.join(base, 'profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 860 },
    locale: 'en-US',
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The real server: target/debug/bowchat serve on 127.0.0.1:port with its own data dir. */
export class Server {
  constructor({ port, dataDir, env = {}, args = [] }) {
    this.port = port;
    this.extraEnv = env;
    this.extraArgs = args;
    this.dataDir = dataDir || mkdtempSync(path.join(os.tmpdir(), 'bowchat-e2e-'));
    this.url = `http://127.0.0.1:${port}`;
    this.child = null;
  }

  /** `env`: extra settings, e.g. BOWCHAT_AUTH__SOCIAL__PROVIDERS__…; `args`: extra `serve` flags, e.g. --demo. */
  static async start(env = {}, { args = [] } = {}) {
    const server = new Server({ port: await freePort(), env, args });
    await server.launch();
    return server;
  }

  async launch() {
    const binary = path.join(ROOT, 'target', 'debug', 'bowchat');
    if (!existsSync(binary)) throw new Error(`${binary} is missing; run \`cargo build -p bowchat\` first`);
    const env = {
      ...process.env,
      // Cheap password hashing keeps the tests fast; production uses the defaults.
      BOWCHAT_AUTH__ARGON2_MEMORY_KIB: '1024',
      BOWCHAT_AUTH__ARGON2_ITERATIONS: '1',
      BOWCHAT_GATEWAY__USER_RATE_PER_SEC: '10000',
      BOWCHAT_GATEWAY__USER_RATE_BURST: '10000',
      // Every test user comes from 127.0.0.1: per-IP auth throttles off.
      BOWCHAT_AUTH__THROTTLE__IP__FREE_ATTEMPTS: '0',
      BOWCHAT_AUTH__THROTTLE__REGISTER__FREE_ATTEMPTS: '0',
      ...this.extraEnv,
    };
    delete env.RUST_LOG;
    const child = spawn(binary, ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...this.extraArgs], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    const lines = readline.createInterface({ input: child.stdout });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bowchat did not report listening within 30 s')), 30_000);
      child.once('exit', (code) => reject(new Error(`bowchat exited early with ${code}`)));
      lines.on('line', (line) => {
        try {
          if (JSON.parse(line)?.fields?.message === 'listening') {
            clearTimeout(timer);
            resolve();
          }
        } catch {
          /* not JSON */
        }
      });
    });
  }

  /** SIGKILL: no shutdown code runs, like a crash. */
  async kill() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  async restart() {
    await this.kill();
    await this.launch();
  }

  async stop() {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export async function screenshot(page, name, { fullPage = false } = {}) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/**
 * A page of a new user in a browser of its own, registered through the UI's
 * form; it records script errors and dialogs. `browsers` collects what to close.
 */
export async function signedInUser(server, browsers, name) {
  const browser = await newBrowser();
  browsers.push(browser);
  const page = await browser.context.newPage();
  page.errors = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(m.text());
  });
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.goto(`${server.url}/`);
  await page.waitForSelector('#register-form');
  const form = page.locator('#register-form');
  await form.getByLabel('Email').fill(`${name.toLowerCase().replace(/\W+/g, "-")}-${Date.now()}@e2e.test`);
  await form.getByLabel('Display name').fill(name);
  await form.getByLabel('Password').fill('e2e-password-1');
  await form.getByRole('button', { name: 'Register' }).click();
  await page.waitForSelector('#auction-list', { state: 'attached' });
  await page.waitForFunction(() => document.body.dataset.connection === 'open');
  return page;
}

/** Creates an auction as the signed-in user of `page` (REST from the page); returns its view. */
export async function createAuction(page, body) {
  return page.evaluate(async (body) => {
    const { accessToken } = JSON.parse(localStorage.getItem('bowchat.session'));
    const res = await fetch('/api/auctions', {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`create auction: ${res.status} ${await res.text()}`);
    return res.json();
  }, body);
}
