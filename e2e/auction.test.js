// Auction rules as the UI shows them, against the real server: a maximum bid
// that bids by itself (tagged "auto"), the outbid notice, a soft-close
// extension, buy-now, and the seller–winner room that opens on a sale.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, Server, signedInUser } from './support.js';

let server;
const browsers = [];
let seller;
let ann;
let ben;
let auctionId;

before(async () => {
  server = await Server.start();
  [seller, ann, ben] = [
    await signedInUser(server, browsers, 'Seller Sue'),
    await signedInUser(server, browsers, 'Ann'),
    await signedInUser(server, browsers, 'Ben'),
  ];
  const created = await seller.evaluate(async () => {
    const { accessToken } = JSON.parse(localStorage.getItem('bowchat.session'));
    const res = await fetch('/api/auctions', {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'Signed guitar',
        startingPrice: 1000,
        increment: 100,
        buyNow: 5000,
        durationSecs: 600,
        // Every bid falls inside the window: each one moves the end.
        softClose: { windowMs: 3600000, extensionMs: 120000, mode: 'extend' },
      }),
    });
    return res.json();
  });
  auctionId = created.id;
  for (const page of [seller, ann, ben]) {
    await page.goto(`${server.url}/#/auctions/${auctionId}`);
    await page.waitForSelector('#auction-price:has-text("$10.00")');
  }
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

test('a maximum bid answers for its owner; the page says who leads and tags automatic steps', async () => {
  await ann.getByLabel('Maximum bid (bids for you up to this amount)').fill('30.00');
  await ann.getByRole('button', { name: 'Set maximum' }).click();
  await ann.waitForSelector('#bid-status:has-text("You are leading at $10.00")');

  await ben.getByLabel('Your bid').fill('15.00');
  await ben.getByRole('button', { name: 'Place bid' }).click();
  await ben.waitForSelector('#bid-status:has-text("another maximum bid is higher ($16.00)")');
  await ben.waitForSelector('#bid-history li:first-child:has-text("$16.00"):has(.tag:text("auto"))');
  await seller.waitForSelector('#auction-price:has-text("$16.00")');
  await seller.waitForSelector('#auction-leader:has-text("Ann")');

  await ben.getByLabel('Your bid').fill('31.00');
  await ben.getByRole('button', { name: 'Place bid' }).click();
  await ben.waitForSelector('#bid-status:has-text("You are leading at $31.00")');
  await ann.waitForSelector('#bid-status:has-text("You were outbid: now $31.00")');
  await ann.waitForSelector('#bid-form input[name="amount"]');
  assert.equal(await ann.inputValue('#bid-form input[name="amount"]'), '32.00', 'the bid field offers the new minimum');
});

test('the price chart draws every step, live, and marks the automatic ones', async () => {
  // The seller's page got every step live; a fresh page draws them from storage.
  const fresh = await seller.context().newPage();
  await fresh.goto(`${server.url}/#/auctions/${auctionId}`);
  for (const page of [seller, fresh]) {
    await page.waitForSelector('#bid-history li:first-child:has-text("$31.00")');
    const steps = await page.locator('#bid-history li').count();
    const automatic = await page.locator('#bid-history li:has(.tag)').count();
    await page.waitForFunction((n) => document.querySelector('#price-chart')?.dataset.points === String(n), steps);
    assert.equal(await page.locator('#price-chart circle.point').count(), steps, 'one point per step');
    assert.equal(await page.locator('#price-chart circle.point.proxy').count(), automatic, 'automatic steps marked');
    assert.ok(automatic >= 1, 'the maximum bid stepped by itself');
    const amounts = await page.$$eval('#price-chart circle.point', (points) => points.map((p) => Number(p.dataset.amount)));
    assert.deepEqual(amounts, [...amounts].sort((a, b) => a - b), 'the price only rises');
    assert.equal(amounts.at(-1), 3100);
    const label = await page.locator('#price-chart > title').textContent();
    assert.match(label, /\$31\.00/, label);
  }
  await fresh.locator('#price-chart').scrollIntoViewIfNeeded();
  await screenshot(fresh, '11a-price-chart');
  await fresh.close();
});

test('a bid inside the closing window extends the end, and the page says so', async () => {
  await seller.waitForSelector('#auction-extended:has-text("Extended by soft close")');
  await ann.waitForSelector('#auction-extended:has-text("Extended by soft close")');
  await screenshot(ann, '11-auction-outbid-extended');
});

test('buy-now sells at once; seller and winner get their own room', async () => {
  await ann.getByRole('button', { name: 'Buy now for $50.00' }).click();
  for (const page of [seller, ann, ben]) {
    await page.waitForSelector('#auction-outcome:has-text("Sold to")', { timeout: 5000 });
    await page.waitForSelector('.badge:has-text("Closed")');
  }
  assert.equal(await ben.locator('#bid-form').isVisible(), false, 'no bidding after the close');
  await seller.getByRole('button', { name: 'Open the seller–winner chat' }).click();
  await seller.waitForSelector('#room-title:has-text("Deal: Signed guitar")');
  await seller.getByLabel('Message', { exact: true }).fill('Thanks! Pick-up on Saturday?');
  await seller.keyboard.press('Enter');
  await ann.getByRole('button', { name: 'Open the seller–winner chat' }).click();
  await ann.waitForSelector('#messages .message:has-text("Pick-up on Saturday?")');
  assert.equal(await ben.locator('text=Open the seller–winner chat').count(), 0, 'only the two of them');
  await screenshot(ann, '12-sold-deal-room');
});
