// Finding an auction in the UI: text, price bounds and phase narrow the list,
// the filter lives in the address (a reload keeps it), and a bad amount is
// explained without leaving the page.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuction, screenshot, Server, signedInUser } from './support.js';

let server;
const browsers = [];
let page;

before(async () => {
  server = await Server.start();
  page = await signedInUser(server, browsers, 'Seller Sol');
  for (const [title, startingPrice] of [
    ['Vintage camera', 5000],
    ['Camera strap', 1500],
    ['Mountain bike', 30000],
  ]) {
    await createAuction(page, { title, startingPrice, increment: 100, durationSecs: 600 });
  }
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

async function titles() {
  return page.locator('#auction-list .auction-card h2').allTextContents();
}

test('text, price bounds and phase narrow the list, and the address keeps them', async () => {
  await page.goto(`${server.url}/#/`);
  await page.waitForFunction(() => document.querySelectorAll('#auction-list .auction-card').length === 3);

  const form = page.locator('#auction-search');
  await form.getByLabel('Search').fill('camera');
  await form.getByRole('button', { name: 'Search' }).click();
  await page.waitForFunction(() => location.hash === '#/?q=camera');
  await page.waitForFunction(() => document.querySelectorAll('#auction-list .auction-card').length === 2);
  assert.deepEqual(await titles(), ['Camera strap', 'Vintage camera']);

  await form.getByLabel('Price from').fill('20.00');
  await form.getByRole('button', { name: 'Search' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#auction-list .auction-card').length === 1);
  assert.deepEqual(await titles(), ['Vintage camera']);
  await screenshot(page, '16-auction-search');

  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#auction-list .auction-card').length === 1);
  assert.equal(await page.locator('#auction-search').getByLabel('Search').inputValue(), 'camera');
  assert.equal(await page.locator('#auction-search').getByLabel('Price from').inputValue(), '20.00');

  await page.selectOption('#phase-filter', 'closed');
  await page.waitForFunction(() => location.hash.includes('phase=closed') && location.hash.includes('q=camera'));
  await page.waitForSelector('text=No auctions match this search.');

  // A bad amount is explained and the list stays as it is.
  const address = await page.evaluate(() => location.hash);
  await page.locator('#auction-search').getByLabel('Price up to').fill('ten');
  await page.locator('#auction-search').getByRole('button', { name: 'Search' }).click();
  await page.waitForSelector('#auction-search .form-status[data-kind="error"]:has-text("enter a positive amount")');
  assert.equal(await page.evaluate(() => location.hash), address);
  assert.equal(page.errors.length, 0, page.errors.join('\n'));
});
