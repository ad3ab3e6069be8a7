// The seed's bidding scenario in k6's shape, for people who use k6 (the
// project's own generator is `bowchat-loadtest seed`; this file is not run by
// the project's tests). Each virtual user registers, opens a WebSocket and
// bids at its last known minimum, waiting for each BID_RESULT before the next.
//
//   k6 run -e BASE=http://127.0.0.1:8080 -e AUCTION=1 loadtest/k6/seed.js
//
// AUCTION must be an open auction (create one with POST /api/auctions).
import http from 'k6/http';
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const BASE = __ENV.BASE || 'http://127.0.0.1:8080';
const AUCTION = Number(__ENV.AUCTION || 1);
const PASSWORD = 'load-test-password';

const bidLatency = new Trend('bid_latency', true);
const accepted = new Counter('bids_accepted');
const rejected = new Counter('bids_rejected');
const failed = new Counter('bids_failed');

export const options = {
  stages: [
    { duration: '5s', target: 100 },
    { duration: '10s', target: 500 },
    { duration: '10s', target: 1000 },
    { duration: '20s', target: 1000 },
    { duration: '5s', target: 0 },
  ],
  thresholds: {
    bids_failed: ['count==0'],
    bid_latency: ['p(99)<50'],
  },
};

function session() {
  const email = `k6-${__VU}@load.bowchat`;
  const body = JSON.stringify({ email, password: PASSWORD });
  const params = { headers: { 'content-type': 'application/json' } };
  let res = http.post(`${BASE}/api/auth/register`, body, params);
  if (res.status !== 201) {
    res = http.post(`${BASE}/api/auth/login`, body, params);
  }
  check(res, { 'signed in': (r) => r.status === 200 || r.status === 201 });
  return res.json('accessToken');
}

export default function () {
  const token = session();
  const url = `${BASE.replace(/^http/, 'ws')}/ws?access_token=${token}`;
  let amount = 100;
  let n = 0;
  let sentAt = 0;
  let waiting = null;

  ws.connect(url, {}, (socket) => {
    const bid = () => {
      n += 1;
      waiting = `${__VU}-${__ITER}-${n}`;
      sentAt = Date.now();
      socket.send(JSON.stringify({ type: 'AUCTION_BID', requestId: waiting, auctionId: AUCTION, amount }));
      socket.setTimeout(() => {
        if (waiting !== null) {
          failed.add(1);
          socket.close();
        }
      }, 10000);
    };
    socket.on('open', bid);
    socket.on('message', (text) => {
      const frame = JSON.parse(text);
      if (frame.requestId !== waiting) return;
      waiting = null;
      bidLatency.add(Date.now() - sentAt);
      if (frame.accepted) accepted.add(1); else rejected.add(1);
      if (frame.minimum) amount = Math.max(amount, frame.minimum);
      bid();
    });
    socket.on('error', () => failed.add(1));
    // Each iteration holds its socket for a while, as the seed's users did.
    socket.setTimeout(() => socket.close(), 30000);
  });
}
