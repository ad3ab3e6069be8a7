// The signed-in user's watchlist and the notices it raises. Watched auctions
// stay subscribed on every page, so the user hears that one ends soon (five
// minutes before, and again after a soft-close extension) wherever they are.
// An OUTBID reaches every connection of the outbid user; the notices show it
// unless the user is looking at that auction, whose page says it itself.

import { api } from './api.js';
import { h, text } from './dom.js';
import { t } from './i18n.js';
import { duration, money, tick } from './format.js';
import { live } from './socket.js';

const ENDING_SOON_MS = 5 * 60 * 1000;
const NOTICE_MS = 15000;

export class Watchlist {
  /** `region`: the live region notices go into. */
  constructor(region) {
    this.region = region;
    this.views = new Map(); // id -> auction view
    this.warned = new Map(); // id -> the endsAt an "ending soon" notice was shown for
    this.listeners = new Set();
    this.offs = [
      live.on('AUCTION_UPDATE', (f) => this.refresh(f.auction)),
      live.on('AUCTION_CLOSED', (f) => this.refresh(f.auction)),
      live.on('AUCTION_EXTENDED', (f) => {
        const view = this.views.get(f.auctionId);
        if (view) this.views.set(f.auctionId, { ...view, endsAt: f.endsAt });
      }),
      live.on('OUTBID', (f) => this.outbid(f)),
    ];
    this.clock = h('span', { hidden: true });
    region.append(this.clock);
    tick(this.clock, () => this.checkEnding());
    this.ready = this.load();
  }

  async load() {
    try {
      const { items } = await api('GET', '/api/me/watchlist');
      for (const view of items) {
        if (this.views.has(view.id)) continue;
        this.views.set(view.id, view);
        live.watchAuction(view.id);
      }
      this.changed();
    } catch {
      /* the list shows nothing until the next sign-in; pages still work */
    }
  }

  has(id) {
    return this.views.has(id);
  }

  /** Calls `fn` whenever the list changes; returns its removal. */
  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    for (const fn of this.listeners) fn();
  }

  /** Watches `view` (an auction view) or stops; throws the API's error. */
  async toggle(view) {
    if (this.views.has(view.id)) {
      await api('DELETE', `/api/auctions/${view.id}/watch`);
      if (this.views.delete(view.id)) live.unwatchAuction(view.id);
    } else {
      await api('PUT', `/api/auctions/${view.id}/watch`);
      if (!this.views.has(view.id)) {
        this.views.set(view.id, view);
        live.watchAuction(view.id);
      }
    }
    this.changed();
  }

  refresh(view) {
    if (this.views.has(view.id)) this.views.set(view.id, view);
  }

  async outbid(frame) {
    if (location.hash === `#/auctions/${frame.auctionId}`) return;
    let view = this.views.get(frame.auctionId);
    if (!view) view = await api('GET', `/api/auctions/${frame.auctionId}`).catch(() => null);
    if (!view) return;
    this.notice('outbid', view, t('notice.outbid', { title: view.title, amount: money(frame.price, view.currency) }));
  }

  checkEnding(now = Date.now()) {
    for (const view of this.views.values()) {
      const left = view.endsAt - now;
      if (view.phase !== 'open' || left <= 0 || left > ENDING_SOON_MS) continue;
      if (this.warned.get(view.id) === view.endsAt) continue;
      // Its own page shows the countdown; the notice waits until the user leaves.
      if (location.hash === `#/auctions/${view.id}`) continue;
      this.warned.set(view.id, view.endsAt);
      this.notice('ending', view, t('notice.endingSoon', { title: view.title, time: duration(left) }));
    }
  }

  notice(kind, view, message) {
    const el = h(
      'div',
      { class: 'notice', dataset: { kind, auctionId: String(view.id) } },
      h('a', { href: `#/auctions/${view.id}` }, message),
      h('button', { type: 'button', class: 'link', 'aria-label': t('notice.dismiss'), onclick: () => el.remove() }, '×'),
    );
    this.region.append(el);
    setTimeout(() => el.remove(), NOTICE_MS);
  }

  destroy() {
    this.offs.forEach((off) => off());
    for (const id of this.views.keys()) live.unwatchAuction(id);
    this.views.clear();
    this.clock.remove();
    for (const el of this.region.querySelectorAll('.notice')) el.remove();
  }
}

/** The watch toggle of an auction page; `getView` returns the current view. */
export function watchButton(watchlist, getView, onError) {
  const button = h('button', { type: 'button', id: 'watch-toggle' });
  const show = () => {
    const view = getView();
    const on = !!view && watchlist.has(view.id);
    button.setAttribute('aria-pressed', String(on));
    text(button, on ? t('watch.on') : t('watch.off'));
  };
  button.addEventListener('click', async () => {
    const view = getView();
    if (!view) return;
    button.disabled = true;
    try {
      await watchlist.toggle(view);
    } catch (e) {
      onError(e);
    } finally {
      button.disabled = false;
    }
  });
  const off = watchlist.onChange(show);
  watchlist.ready.then(show);
  show();
  return { button, show, off };
}
