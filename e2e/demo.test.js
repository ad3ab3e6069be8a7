// `serve --demo` as a newcomer meets it: the login page names the demo
// accounts and signs in with one click, the seeded auctions are open, and the
// auction page shows the bots' bids on its price chart. This test also makes
// the README's screenshot of the auction page (written to docs/images when
// UPDATE_README_SCREENSHOT=1, otherwise with the other screenshots).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { newBrowser, ROOT, screenshot, Server } from './support.js';

let server;
const browsers = [];

before(async () => {
  server = await Server.start({}, { args: ['--demo'] });
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

test('the login page offers each demo account, and one click signs in', async () => {
  const browser = await newBrowser();
  browsers.push(browser);
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/`);
  await page.waitForSelector('#demo-accounts button');
  const names = await page.locator('#demo-accounts button').allTextContents();
  assert.deepEqual(names, [
    'Sign in as alice (seller)',
    'Sign in as bob (bidder)',
    'Sign in as carol (bidder)',
    'Sign in as dave (bidder)',
  ]);
  await screenshot(page, '14-login-demo');

  await page.getByRole('button', { name: 'Sign in as bob (bidder)' }).click();
  await page.waitForSelector('#auction-list a');
  await page.waitForFunction(() => document.body.dataset.connection === 'open');
  const me = await page.evaluate(() => JSON.parse(localStorage.getItem('bowchat.session')).user);
  assert.equal(me.displayName, 'bob');

  // The seeded auctions are open and the bots bid on them: the chart of one
  // that has steps draws them.
  await page.locator('#auction-list a').first().click();
  await page.waitForSelector('#auction-title');
  await page.getByRole('button', { name: 'Place bid' }).click();
  await page.waitForSelector('#bid-status[data-kind="ok"]');
  // Bob leads, so a bot outbids him within seconds: a second point, live.
  // The README's picture waits for a few more.
  const wanted = process.env.UPDATE_README_SCREENSHOT === '1' ? 6 : 2;
  await page.waitForFunction((n) => Number(document.querySelector('#price-chart')?.dataset.points) >= n, wanted, { timeout: 120_000 });
  const points = await page.locator('#price-chart circle.point').count();
  assert.ok(points >= wanted, `${points} points`);
  const file = await screenshot(page, '15-demo-auction', { fullPage: true });
  if (process.env.UPDATE_README_SCREENSHOT === '1') {
    mkdirSync(path.join(ROOT, 'docs', 'images'), { recursive: true });
    copyFileSync(file, path.join(ROOT, 'docs', 'images', 'auction-page.png'));
  }
  assert.deepEqual(errors, []);
});
