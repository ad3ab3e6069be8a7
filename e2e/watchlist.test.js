// The watchlist as a user meets it: watching from the auction page (kept
// across a reload), the "Watching" list, a notice on another page when a
// watched auction is about to end, an outbid notice away from the auction's
// page, and unwatching.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAuction, screenshot, Server, signedInUser } from './support.js';

let server;
const browsers = [];
let seller;
let ann;
let ben;
let lamp;
let clock;

async function create(page, title, durationSecs) {
  return (await createAuction(page, { title, startingPrice: 1000, increment: 100, durationSecs })).id;
}

before(async () => {
  server = await Server.start();
  [seller, ann, ben] = [
    await signedInUser(server, browsers, 'Seller Sue'),
    await signedInUser(server, browsers, 'Ann'),
    await signedInUser(server, browsers, 'Ben'),
  ];
  // Four minutes: inside the five-minute "ends soon" notice from the start.
  lamp = await create(seller, 'Ending lamp', 240);
  clock = await create(seller, 'Later clock', 3600);
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

test('watching from the auction page is kept, listed, and warns of the end on another page', async () => {
  await ann.goto(`${server.url}/#/auctions/${lamp}`);
  await ann.waitForSelector('#auction-title:has-text("Ending lamp")');
  await ann.getByRole('button', { name: '☆ Watch' }).click();
  await ann.waitForSelector('#watch-toggle[aria-pressed="true"]:has-text("★ Watching")');
  // On the auction's own page the countdown says it; no notice there.
  assert.equal(await ann.locator('.notice').count(), 0);

  await ann.reload();
  await ann.waitForSelector('#watch-toggle[aria-pressed="true"]');

  await ann.goto(`${server.url}/#/?phase=watching`);
  await ann.waitForFunction(() => document.querySelectorAll('#auction-list .auction-card').length === 1);
  assert.deepEqual(await ann.locator('#auction-list .auction-card h2').allTextContents(), ['Ending lamp']);
  const notice = ann.locator(`.notice[data-kind="ending"][data-auction-id="${lamp}"]`);
  await notice.waitFor();
  assert.match(await notice.textContent(), /Ending lamp ends in 0?[34]:\d\d/);
  await screenshot(ann, '17-watchlist-ending-soon');
  assert.equal(await ann.locator('.notice[data-kind="ending"]').count(), 1, 'once per end, not every second');
});

test('an outbid notice reaches the user on another page', async () => {
  await ann.goto(`${server.url}/#/auctions/${clock}`);
  await ann.waitForSelector('#auction-title:has-text("Later clock")');
  await ann.getByLabel('Your bid').fill('10.00');
  await ann.getByRole('button', { name: 'Place bid' }).click();
  await ann.waitForSelector('#bid-status:has-text("You are leading at $10.00")');
  await ann.goto(`${server.url}/#/`);
  await ann.waitForSelector('#auction-list .auction-card');

  const status = await ben.evaluate(async (id) => {
    const { accessToken } = JSON.parse(localStorage.getItem('bowchat.session'));
    const res = await fetch(`/api/auctions/${id}/bids`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 1500, requestId: 'ben-1' }),
    });
    return res.status;
  }, clock);
  assert.equal(status, 200);
  const notice = ann.locator(`.notice[data-kind="outbid"][data-auction-id="${clock}"]`);
  await notice.waitFor();
  assert.equal(await notice.textContent(), 'Outbid on Later clock: now $15.00×');
  await notice.getByRole('link').click();
  await ann.waitForSelector('#auction-title:has-text("Later clock")');
});

test('unwatching takes it off the list', async () => {
  await ann.goto(`${server.url}/#/auctions/${lamp}`);
  await ann.getByRole('button', { name: '★ Watching' }).click();
  await ann.waitForSelector('#watch-toggle[aria-pressed="false"]:has-text("☆ Watch")');
  await ann.goto(`${server.url}/#/?phase=watching`);
  await ann.waitForSelector('#auction-list-status:has-text("No auctions here yet.")');
  assert.equal(await ann.locator('#auction-list .auction-card').count(), 0);
  assert.equal(ann.errors.length, 0, ann.errors.join('\n'));
});
