// Social login in the browser against the real OpenID Connect provider of the
// test environment (`scripts/testenv up oidc`): the login page lists the
// configured providers, a click goes through the provider's own login page and
// comes back signed in; a provider that is down comes back with an error shown.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { newBrowser, requireEnv, screenshot, Server } from './support.js';

let server;
const browsers = [];

before(async () => {
  const issuer = requireEnv('BOWCHAT_TEST_OIDC_ISSUER', 'oidc');
  server = await Server.start({
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__KIND: 'oidc',
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__DISPLAY_NAME: 'Test IdP',
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__ISSUER: issuer,
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__CLIENT_ID: requireEnv('BOWCHAT_TEST_OIDC_CLIENT_ID', 'oidc'),
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__CLIENT_SECRET: requireEnv('BOWCHAT_TEST_OIDC_CLIENT_SECRET', 'oidc'),
    // Nothing listens on the discard port: discovery fails.
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__KIND: 'oidc',
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__DISPLAY_NAME: 'Down IdP',
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__ISSUER: 'http://127.0.0.1:9',
    BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__CLIENT_ID: 'nobody',
  });
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

async function loginPage() {
  const browser = await newBrowser();
  browsers.push(browser);
  const page = await browser.context.newPage();
  await page.goto(`${server.url}/`);
  await page.waitForSelector('.social-button[data-provider="test"]');
  return page;
}

test('a social button goes through the provider and comes back signed in', async () => {
  const page = await loginPage();
  await screenshot(page, '10-login-social');
  await page.getByRole('link', { name: 'Continue with Test IdP' }).click();
  // The provider's own login page.
  await page.waitForURL((url) => url.origin !== server.url);
  await page.getByLabel('Login').fill(requireEnv('BOWCHAT_TEST_OIDC_USER', 'oidc'));
  await page.getByLabel('Password').fill(requireEnv('BOWCHAT_TEST_OIDC_PASSWORD', 'oidc'));
  await page.getByRole('button', { name: 'Sign in and allow' }).click();
  await page.waitForURL((url) => url.origin === server.url);
  await page.waitForSelector('#who:has-text("Signed in as")', { timeout: 10000 });
  assert.ok(!page.url().includes('login_code'), 'the one-time code is taken out of the address bar');
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('bowchat.session')));
  assert.equal(session.user.email, requireEnv('BOWCHAT_TEST_OIDC_EMAIL', 'oidc'));
  await page.waitForFunction(() => document.body.dataset.connection === 'open');
});

test('a provider that is down comes back to the login page with the error', async () => {
  const page = await loginPage();
  await page.getByRole('link', { name: 'Continue with Down IdP' }).click();
  await page.waitForSelector('.form-status[data-kind="error"]:has-text("Login failed")', { timeout: 15000 });
  assert.ok(!page.url().includes('login_error'));
  assert.equal(await page.locator('#register-form').isVisible(), true);
});
