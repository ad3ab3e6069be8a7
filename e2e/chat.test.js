// Chat features of the web UI against the real server: a direct room opened
// from an auction, unread badges, history scroll-back, typing indicator,
// presence, and the Korean strings.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, Server, signedInUser } from './support.js';

let server;
const browsers = [];
let alice;
let bob;

/** A REST call with the page's own session (test setup only). */
async function rest(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const { accessToken } = JSON.parse(localStorage.getItem('bowchat.session'));
      const res = await fetch(path, {
        method,
        headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    },
    { method, path, body },
  );
}

before(async () => {
  server = await Server.start();
  alice = await signedInUser(server, browsers, 'Alice');
  bob = await signedInUser(server, browsers, 'Bob');
});

after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

test('a direct room from an auction: unread badge, history scroll-back, typing, presence', async () => {
  const created = await rest(bob, 'POST', '/api/auctions', { title: 'Bob’s bicycle', startingPrice: 10000, durationSecs: 3600 });
  assert.equal(created.status, 201);

  await alice.goto(`${server.url}/#/auctions/${created.body.id}`);
  await alice.getByRole('button', { name: 'Message the seller' }).click();
  await alice.waitForSelector('#room-title:has-text("Direct: Bob")');
  await alice.getByLabel('Message', { exact: true }).fill('m1: hello Bob');
  await alice.keyboard.press('Enter');
  await alice.waitForSelector('#messages .message[data-seq="1"]');
  const roomId = Number(await alice.$eval('.room-button[aria-current="true"]', (b) => b.dataset.roomId));
  for (let i = 2; i <= 60; i += 1) {
    const sent = await rest(alice, 'POST', `/api/rooms/${roomId}/messages`, { clientMsgId: `m${i}`, body: `m${i}: more` });
    assert.equal(sent.status, 201);
  }

  // Bob learns of the new room from the room list's refresh and counts what he has not read.
  const badge = bob.locator(`.room-button[data-room-id="${roomId}"] .unread`);
  await badge.waitFor({ timeout: 15000 });
  assert.equal(await badge.textContent(), '60');
  await screenshot(bob, '08-unread-badge');
  await bob.locator(`.room-button[data-room-id="${roomId}"]`).click();
  await bob.waitForSelector('#messages .message[data-seq="60"]');
  assert.equal(await badge.count(), 0, 'opening the room clears its badge');
  assert.equal(await bob.locator('#messages .message[data-seq="1"]').count(), 0, 'only the newest page at first');

  await bob.getByRole('button', { name: 'Load older messages' }).click();
  await bob.waitForSelector('#messages .message[data-seq="1"]:has-text("m1: hello Bob")');
  const seqs = await bob.$$eval('#messages .message', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: 60 }, (_, i) => i + 1));

  // Presence and typing, both directions of the room.
  await alice.waitForSelector('#presence:has-text("Bob")', { timeout: 5000 });
  await bob.getByLabel('Message', { exact: true }).type('typing…');
  await alice.waitForSelector('#typing:has-text("Bob is typing")', { timeout: 3000 });
  await bob.keyboard.press('Enter');
  await alice.waitForSelector('#messages .message[data-seq="61"]:has-text("typing…")');
  await alice.waitForSelector('#typing:has-text("Bob is typing")', { state: 'detached', timeout: 5000 }).catch(() => {});
  assert.equal((await alice.textContent('#typing')).trim(), '', 'a message ends the typing indicator');

  // The read marker moved: a reload shows no badge for the room Bob read.
  await bob.reload();
  await bob.waitForSelector(`.room-button[data-room-id="${roomId}"]`);
  assert.equal(await bob.locator(`.room-button[data-room-id="${roomId}"] .unread`).count(), 0);
});

test('the UI switches to Korean and back, keyboard first', async () => {
  await bob.goto(`${server.url}/#/`);
  await bob.focus('#lang');
  await bob.selectOption('#lang', 'ko');
  await bob.waitForSelector('#auctions-title:has-text("경매")');
  await bob.waitForSelector('#nav a:has-text("물품 등록")');
  await bob.goto(`${server.url}/#/auctions/1`);
  await bob.waitForSelector('#auction-price');
  await screenshot(bob, '09-auction-ko');
  await bob.selectOption('#lang', 'en');
  await bob.waitForSelector('#nav a:has-text("Sell an item")');
  // Every form control on the page has an accessible name.
  const unlabelled = await bob.$$eval('input, select, textarea, button', (els) =>
    els
      .filter((el) => el.offsetParent !== null)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unlabelled, []);
});

test('logging out returns to the login page and revokes the refresh token', async () => {
  const { refreshToken } = await bob.evaluate(() => JSON.parse(localStorage.getItem('bowchat.session')));
  await bob.getByRole('button', { name: 'Log out' }).click();
  await bob.waitForSelector('#login-form');
  assert.equal(await bob.evaluate(() => localStorage.getItem('bowchat.session')), null);
  assert.equal(await bob.locator('#chat').isVisible(), false);
  const response = await fetch(`${server.url}/api/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refreshToken }),
  });
  assert.equal(response.status, 401);
});

test('no script errors on any page', () => {
  for (const page of [alice, bob]) assert.deepEqual(page.errors, []);
  for (const page of [alice, bob]) assert.deepEqual(page.dialogs, []);
});
