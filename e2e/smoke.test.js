// Chromium from the test environment renders a page this test serves itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { newBrowser } from './support.js';

test('headless chromium renders a page and runs its module script', async () => {
  const server = http.createServer((req, res) => {
    if (req.url === '/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end("document.querySelector('#out').textContent = 'ran ' + (6 * 7);");
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>smoke</title><h1>Hello</h1><p id="out">not yet</p><script type="module" src="/app.js"></script>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const browser = await newBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    assert.equal(await page.title(), 'smoke');
    await page.waitForFunction(() => document.querySelector('#out').textContent === 'ran 42', null, { timeout: 5000 });
    assert.equal(await page.textContent('h1'), 'Hello');
  } finally {
    await browser.close();
    server.close();
  }
});
