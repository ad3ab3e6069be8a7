// The one WebSocket of the page (docs/protocol.md): reconnects with backoff,
// re-subscribes with the last seen sequence (`since`) so nothing is missed or
// doubled, and re-sends commands that got no answer (bids by requestId, chat
// sends by clientMsgId: the server's idempotency keys make that safe).

import { accessToken, onSession, currentSession, refresh, ApiError } from './api.js';
import { uid } from './dom.js';

const PING_EVERY_MS = 20_000;
const SILENCE_LIMIT_MS = 50_000;

class Live {
  constructor() {
    this.ws = null;
    this.state = 'idle'; // idle | connecting | open | reconnecting
    this.attempt = 0;
    this.auctions = new Map(); // id -> { refs, since }
    this.rooms = new Map(); // id -> { refs, since }
    this.pending = new Map(); // requestId -> frame awaiting its result
    this.handlers = new Map(); // type -> Set<fn>
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    this.retryAt = 0;
    this.userId = null;
    onSession((s) => {
      if (!s) this.stop();
      else if (this.state === 'open') this.send({ type: 'AUTH', token: s.accessToken });
    });
  }

  /** fn(frame) for frames of `type` ('*' for all, 'status' for connection changes). */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  emit(type, payload) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(payload);
      } catch (e) {
        console.error(e);
      }
    }
  }

  setState(state) {
    this.state = state;
    this.emit('status', { state, retryAt: this.retryAt });
  }

  start() {
    if (this.state !== 'idle') return;
    this.connect();
  }

  stop() {
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'bye');
    this.auctions.clear();
    this.rooms.clear();
    this.pending.clear();
    this.state = 'idle';
  }

  async connect() {
    this.setState(this.attempt === 0 && this.state === 'idle' ? 'connecting' : 'reconnecting');
    let token;
    try {
      // A refused upgrade (say, a revoked session) looks like any other failed
      // connect from here; every third attempt refreshes, which settles it.
      token = this.attempt >= 3 && this.attempt % 3 === 0 ? (await refresh()).accessToken : await accessToken();
    } catch (e) {
      // No session any more (refresh refused): nothing to reconnect for.
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && !currentSession()) {
        this.stop();
        return;
      }
      this.retry();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws?access_token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.receive(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      this.retry();
    };
  }

  retry() {
    if (this.state === 'idle') return;
    const delay = Math.min(5_000, 250 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  receive(frame) {
    switch (frame.type) {
      case 'WELCOME':
        this.userId = frame.userId;
        this.attempt = 0;
        this.resume();
        this.setState('open');
        this.startPings();
        break;
      case 'AUCTION_UPDATE': {
        const sub = this.auctions.get(frame.auction.id);
        if (sub) sub.since = Math.max(sub.since ?? 0, frame.auction.stepCount);
        break;
      }
      case 'CHAT_MESSAGE': {
        const sub = this.rooms.get(frame.message.roomId);
        if (sub) sub.since = Math.max(sub.since ?? 0, frame.message.seq);
        break;
      }
      case 'BID_RESULT':
        this.pending.delete(frame.requestId);
        break;
      case 'CHAT_RESULT':
        this.pending.delete(frame.requestId);
        break;
      case 'ERROR':
        // TIMEOUT: the server gave up waiting for the result; the same
        // requestId again returns the outcome (the first answer), so the
        // command stays pending and goes again instead of failing.
        if (frame.code === 'TIMEOUT' && this.pending.has(frame.requestId)) {
          this.send(this.pending.get(frame.requestId));
          return;
        }
        if (frame.requestId) this.pending.delete(frame.requestId);
        if (frame.code === 'TOKEN_EXPIRED') {
          accessToken()
            .then((token) => this.send({ type: 'AUTH', token }))
            .catch(() => {});
        }
        break;
      default:
    }
    this.emit(frame.type, frame);
    this.emit('*', frame);
  }

  /** After (re)connecting: subscribe again from the last seen sequence, re-send unanswered commands. */
  resume() {
    for (const [auctionId, sub] of this.auctions) {
      this.send({ type: 'SUBSCRIBE', auctionId, since: sub.since ?? undefined });
    }
    for (const [roomId, sub] of this.rooms) {
      this.send({ type: 'SUBSCRIBE', roomId, since: sub.since ?? undefined });
    }
    for (const frame of this.pending.values()) this.send(frame);
  }

  startPings() {
    clearInterval(this.pingTimer);
    this.lastFrameAt = Date.now();
    this.pingTimer = setInterval(() => {
      // A half-open connection (server gone without a FIN) shows up as silence.
      if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
        this.ws?.close();
        return;
      }
      this.send({ type: 'PING' });
    }, PING_EVERY_MS);
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === 'open') {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    if (this.ws && this.ws.readyState === WebSocket.OPEN && (frame.type === 'SUBSCRIBE' || this.pending.has(frame.requestId))) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Watches an auction (reference-counted); `AUCTION_UPDATE`s follow. */
  watchAuction(auctionId) {
    const sub = this.auctions.get(auctionId);
    if (sub) {
      sub.refs += 1;
      // A second viewer wants the current state now.
      this.send({ type: 'SUBSCRIBE', auctionId, since: sub.since ?? undefined });
      return;
    }
    this.auctions.set(auctionId, { refs: 1, since: null });
    this.send({ type: 'SUBSCRIBE', auctionId });
  }

  unwatchAuction(auctionId) {
    const sub = this.auctions.get(auctionId);
    if (!sub) return;
    sub.refs -= 1;
    if (sub.refs <= 0) {
      this.auctions.delete(auctionId);
      this.send({ type: 'UNSUBSCRIBE', auctionId });
    }
  }

  /** Watches a room from `since` (the last seq the caller has). */
  watchRoom(roomId, since) {
    const sub = this.rooms.get(roomId);
    if (sub) {
      sub.refs += 1;
      return;
    }
    this.rooms.set(roomId, { refs: 1, since: since ?? null });
    this.send({ type: 'SUBSCRIBE', roomId, since: since ?? undefined });
  }

  unwatchRoom(roomId) {
    const sub = this.rooms.get(roomId);
    if (!sub) return;
    sub.refs -= 1;
    if (sub.refs <= 0) {
      this.rooms.delete(roomId);
      this.send({ type: 'UNSUBSCRIBE', roomId });
    }
  }

  watchesRoom(roomId) {
    return this.rooms.has(roomId);
  }

  /** Sends a command that must get an answer; re-sent after a reconnect until it does. */
  command(frame) {
    const requestId = frame.requestId || uid();
    const full = { ...frame, requestId };
    this.pending.set(requestId, full);
    this.send(full);
    return requestId;
  }

  bid(auctionId, amount, { max = false, currency } = {}) {
    return this.command(
      max
        ? { type: 'AUCTION_MAX_BID', auctionId, max: amount, currency }
        : { type: 'AUCTION_BID', auctionId, amount, currency },
    );
  }

  chat(roomId, body) {
    const clientMsgId = uid();
    return this.command({ type: 'CHAT_SEND', roomId, body, clientMsgId, requestId: clientMsgId });
  }
}

export const live = new Live();
