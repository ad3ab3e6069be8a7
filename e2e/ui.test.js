// The web UI against the real server: two users in two browsers with fresh
// profiles. A seller creates an auction, a bidder bids and the seller sees the
// price within a second; chat goes both ways; the server is killed and
// restarted on the same port and both pages recover; an XSS payload stays text.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { newBrowser, screenshot, Server, signedInUser } from './support.js';

let server;
const browsers = [];
let seller;
let bidder;
let auctionId;

before(async () => {
  server = await Server.start();
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

test('login page renders with its forms and takes a screenshot', async () => {
  const browser = await newBrowser();
  browsers.push(browser);
  const page = await browser.context.newPage();
  await page.goto(`${server.url}/`);
  await page.waitForSelector('#login-form');
  assert.ok(await page.getByLabel('Email').first().isVisible());
  await page.waitForResponse((r) => r.url().endsWith('/api/auth/demo')).catch(() => {});
  assert.equal(await page.locator('#demo-accounts').isVisible(), false, 'no demo accounts without --demo');
  await screenshot(page, '01-login');
  await page.selectOption('#lang', 'ko');
  await page.waitForSelector('text=회원가입');
  await screenshot(page, '02-login-ko');
});

test('seller creates an auction; the bidder bids; the seller sees the price within a second', async () => {
  seller = await signedInUser(server, browsers, 'Seller Sam');
  bidder = await signedInUser(server, browsers, 'Bidder Bo');

  await seller.click('text=Sell an item');
  const form = seller.locator('#create-form');
  await form.getByLabel('Title', { exact: true }).fill('Vintage camera');
  await form.getByLabel('Description').fill('A 1970s rangefinder, works well.');
  await form.getByLabel('Starting price').fill('50.00');
  await form.getByLabel('Minimum increment').fill('1.00');
  await form.getByLabel('Reserve price (optional, kept secret)').fill('60.00');
  await form.getByLabel('Buy-now price (optional)').fill('500.00');
  await screenshot(seller, '03-create');
  await form.getByRole('button', { name: 'Start the auction' }).click();
  await seller.waitForURL(/#\/auctions\/\d+$/);
  auctionId = Number(new URL(seller.url()).hash.split('/').pop());
  await seller.waitForSelector('#auction-price:has-text("$50.00")');
  assert.equal(await seller.locator('#bid-form').isVisible(), false, 'sellers get no bid form');

  await bidder.goto(`${server.url}/#/auctions/${auctionId}`);
  await bidder.waitForSelector('#auction-price:has-text("$50.00")');
  await bidder.waitForSelector('#auction-reserve:has-text("Reserve not met")');
  await bidder.getByLabel('Your bid').fill('61.00');
  const started = Date.now();
  await bidder.getByRole('button', { name: 'Place bid' }).click();
  await seller.waitForSelector('#auction-price:has-text("$61.00")', { timeout: 1000 });
  const seen = Date.now() - started;
  console.log(`seller saw the new price ${seen} ms after the bidder clicked`);
  await bidder.waitForSelector('#bid-status:has-text("You are leading")');
  await seller.waitForSelector('#auction-reserve:has-text("Reserve met")');
  await seller.waitForSelector('#bid-history li:has-text("$61.00")');

  // The list page shows the live price too.
  await seller.goto(`${server.url}/#/`);
  const card = seller.locator(`[data-auction-id="${auctionId}"]`);
  await card.locator('.price:has-text("$61.00")').waitFor();
  await bidder.getByLabel('Your bid').fill('65.00');
  await bidder.getByRole('button', { name: 'Place bid' }).click();
  await card.locator('.price:has-text("$65.00")').waitFor({ timeout: 1000 });
  await screenshot(seller, '04-auction-list');
});

test('chat goes both ways in the auction room beside the auction', async () => {
  await seller.goto(`${server.url}/#/auctions/${auctionId}`);
  await seller.waitForSelector('#room-title:has-text("Vintage camera")');
  await bidder.waitForSelector('#room-title:has-text("Vintage camera")');

  await bidder.getByLabel('Message', { exact: true }).fill('Is the lens included?');
  await bidder.keyboard.press('Enter');
  await seller.waitForSelector('#messages .message:has-text("Is the lens included?")', { timeout: 2000 });

  await seller.getByLabel('Message', { exact: true }).fill('Yes, a 40mm f/2.');
  await seller.getByRole('button', { name: 'Send' }).click();
  await bidder.waitForSelector('#messages .message:has-text("Yes, a 40mm f/2.")', { timeout: 2000 });
  await bidder.waitForSelector('#messages .message:not(.pending):has-text("Is the lens included?")');
  await screenshot(bidder, '05-auction-detail-chat');
});

test('both pages recover when the server is killed and restarted on the same port', async () => {
  const token = await seller.evaluate(() => JSON.parse(localStorage.getItem('bowchat.session')).accessToken);
  const { roomId } = await (await fetch(`${server.url}/api/auctions/${auctionId}`)).json();
  await server.kill();
  for (const page of [seller, bidder]) {
    await page.waitForSelector('#banner:not([hidden])', { timeout: 5000 });
  }
  await screenshot(seller, '06-reconnecting');
  // Down long enough for the pages' backoff to grow, so that (usually) what is
  // written right after the start reaches them by replay on resubscribe.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await server.launch();
  for (let i = 1; i <= 3; i += 1) {
    const response = await fetch(`${server.url}/api/rooms/${roomId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ clientMsgId: `while-away-${i}`, body: `While you were away ${i}` }),
    });
    assert.equal(response.status, 201);
  }
  for (const page of [seller, bidder]) {
    await page.waitForSelector('#banner', { state: 'hidden', timeout: 15000 });
    await page.waitForSelector('#messages .message:has-text("While you were away 3")', { timeout: 3000 });
  }

  await seller.getByLabel('Message', { exact: true }).fill('Back after the restart');
  await seller.keyboard.press('Enter');
  await bidder.waitForSelector('#messages .message:has-text("Back after the restart")', { timeout: 3000 });
  await bidder.getByLabel('Message', { exact: true }).fill('Me too');
  await bidder.keyboard.press('Enter');
  await seller.waitForSelector('#messages .message:has-text("Me too")', { timeout: 3000 });

  await bidder.getByLabel('Your bid').fill('70.00');
  await bidder.getByRole('button', { name: 'Place bid' }).click();
  await seller.waitForSelector('#auction-price:has-text("$70.00")', { timeout: 3000 });

  // Nothing is shown twice: every seq once, in order.
  for (const page of [seller, bidder]) {
    const seqs = await page.$$eval('#messages .message[data-seq]', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(new Set(seqs).size, seqs.length);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7]);
  }
});

test('an XSS payload in a title and a message shows as text', async () => {
  const payload = '<img src=x onerror="window.__xss=1;alert(1)"><script>alert(2)</script>';
  await seller.click('text=Sell an item');
  const form = seller.locator('#create-form');
  await form.getByLabel('Title', { exact: true }).fill(payload);
  await form.getByLabel('Starting price').fill('5.00');
  await form.getByRole('button', { name: 'Start the auction' }).click();
  await seller.waitForURL(/#\/auctions\/\d+$/);
  const xssId = Number(new URL(seller.url()).hash.split('/').pop());
  await seller.waitForFunction((p) => document.querySelector('#auction-title')?.textContent === p, payload);

  await bidder.goto(`${server.url}/#/`);
  const card = bidder.locator(`[data-auction-id="${xssId}"] h2`);
  await card.waitFor();
  assert.equal(await card.textContent(), payload);
  await bidder.goto(`${server.url}/#/auctions/${xssId}`);
  await bidder.waitForSelector('#room-title');
  await bidder.getByLabel('Message', { exact: true }).fill(payload);
  await bidder.keyboard.press('Enter');
  await seller.waitForFunction(
    (p) => [...document.querySelectorAll('#messages .message .body')].some((b) => b.textContent === p),
    payload,
    { timeout: 3000 },
  );
  for (const page of [seller, bidder]) {
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.locator('main img, #chat img').count(), 0, 'no element was created from the payload');
    assert.deepEqual(page.dialogs, []);
  }
  await screenshot(seller, '07-xss-as-text');
});

test('no script errors on any page', () => {
  for (const page of [seller, bidder]) {
    // The browser logs the refused connections while the server was down; nothing else.
    const errors = page.errors.filter((e) => !/WebSocket connection|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e));
    assert.deepEqual(errors, []);
  }
});
