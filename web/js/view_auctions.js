// The auction list: every card is subscribed over the WebSocket, so prices,
// bid counts and phases change live; countdowns tick locally from `endsAt`.

import { api } from './api.js';
import { h, replace, text } from './dom.js';
import { t } from './i18n.js';
import { countdown, money, tick } from './format.js';
import { live } from './socket.js';

const FILTERS = ['all', 'open', 'scheduled', 'closed'];
const PAGE = 50;
const NEWEST_EVERY_MS = 15000;

export function renderAuctions(main, filter, _ctx) {
  const phase = FILTERS.includes(filter) ? filter : 'all';
  const cards = new Map(); // id -> { auction, el, update }
  const list = h('ul', { class: 'auction-grid', id: 'auction-list', 'aria-live': 'off' });
  const status = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', hidden: true }, t('auctions.more'));
  const select = h(
    'select',
    { id: 'phase-filter' },
    FILTERS.map((f) => h('option', { value: f, selected: f === phase }, t(`auctions.filter.${f}`))),
  );
  select.addEventListener('change', () => {
    location.hash = select.value === 'all' ? '#/' : `#/?phase=${select.value}`;
  });

  replace(
    main,
    h(
      'section',
      { class: 'auctions-page', 'aria-labelledby': 'auctions-title' },
      h(
        'div',
        { class: 'page-head' },
        h('h1', { id: 'auctions-title' }, t('auctions.title')),
        h('div', { class: 'inline-field' }, h('label', { for: 'phase-filter' }, t('auctions.filter')), select),
        h('a', { class: 'button primary', href: '#/auctions/new' }, t('nav.create')),
      ),
      status,
      list,
      more,
    ),
  );

  function card(auction) {
    const price = h('strong', { class: 'price', dataset: { role: 'price' } });
    const bids = h('span', { class: 'bids' });
    const clock = h('span', { class: 'countdown' });
    const badge = h('span', { class: 'badge' });
    const reserve = h('span', { class: 'reserve' });
    const el = h(
      'li',
      { class: 'auction-card', dataset: { auctionId: String(auction.id) } },
      h('h2', {}, h('a', { href: `#/auctions/${auction.id}` }, auction.title)),
      h('div', { class: 'card-row' }, price, badge),
      h('div', { class: 'card-row muted' }, bids, clock),
      reserve,
    );
    const entry = { auction, el };
    entry.update = (next) => {
      entry.auction = next;
      const a = next;
      text(price, a.price === null ? money(a.startingPrice, a.currency) : money(a.price, a.currency));
      price.title = a.price === null ? t('auction.startingPrice') : t('auction.price');
      text(bids, a.bidCount === 1 ? t('auction.oneBid') : a.bidCount ? t('auction.bids', { n: a.bidCount }) : t('auction.noBids'));
      text(badge, t(`auction.phase.${a.phase}`));
      badge.dataset.phase = a.phase;
      text(reserve, a.hasReserve ? t(a.reserveMet ? 'auction.reserve.met' : 'auction.reserve.notMet') : '');
      el.dataset.price = String(a.price ?? '');
    };
    entry.update(auction);
    tick(clock, () => text(clock, countdown(entry.auction)));
    return entry;
  }

  function add(auctions, { atTop = false } = {}) {
    for (const auction of atTop ? [...auctions].reverse() : auctions) {
      if (cards.has(auction.id)) continue;
      const entry = card(auction);
      cards.set(auction.id, entry);
      if (atTop) list.prepend(entry.el);
      else list.append(entry.el);
      live.watchAuction(auction.id);
    }
    text(status, cards.size ? '' : t('auctions.empty'));
  }

  let oldest = null;
  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (phase !== 'all') query.set('phase', phase);
    if (oldest) query.set('before', String(oldest));
    try {
      const { items } = await api('GET', `/api/auctions?${query}`);
      add(items);
      if (items.length) oldest = items[items.length - 1].id;
      more.hidden = items.length < PAGE;
    } catch (e) {
      text(status, t('error.generic', { code: e.code || 'NETWORK' }));
    }
  }
  more.addEventListener('click', load);
  load();

  // New auctions have no live event of their own: look for them now and then.
  async function newest() {
    const query = new URLSearchParams({ limit: '20' });
    if (phase !== 'all') query.set('phase', phase);
    try {
      const { items } = await api('GET', `/api/auctions?${query}`);
      add(items.filter((a) => !cards.has(a.id) && (oldest === null || a.id > oldest)), { atTop: true });
    } catch {
      /* the next round tries again */
    }
  }
  const poll = setInterval(newest, NEWEST_EVERY_MS);

  const offs = [
    live.on('AUCTION_UPDATE', (f) => cards.get(f.auction.id)?.update(f.auction)),
    live.on('AUCTION_CLOSED', (f) => cards.get(f.auction.id)?.update(f.auction)),
    live.on('AUCTION_EXTENDED', (f) => {
      const entry = cards.get(f.auctionId);
      if (entry) entry.update({ ...entry.auction, endsAt: f.endsAt });
    }),
  ];
  return () => {
    clearInterval(poll);
    offs.forEach((off) => off());
    for (const id of cards.keys()) live.unwatchAuction(id);
  };
}
