// The auction list: every card is subscribed over the WebSocket, so prices,
// bid counts and phases change live; countdowns tick locally from `endsAt`.
// A search form narrows it by phase, text and price; the filter lives in the
// address (#/?phase=open&q=camera&minPrice=1000), so it survives a reload.

import { api } from './api.js';
import { field, h, replace, text } from './dom.js';
import { t } from './i18n.js';
import { countdown, money, moneyInput, parseMoney, tick } from './format.js';
import { live } from './socket.js';

const FILTERS = ['all', 'open', 'scheduled', 'closed', 'watching'];
const PAGE = 50;
const NEWEST_EVERY_MS = 15000;
// Price bounds are typed with two decimals, as most currencies have them; the
// API takes minor units.
const BOUND_CURRENCY = 'USD';

/** `filter`: the address's {phase, q, minPrice, maxPrice} (strings or null). */
export function renderAuctions(main, filter = {}, _ctx) {
  const phase = FILTERS.includes(filter.phase) ? filter.phase : 'all';
  const bound = (v) => (v !== null && v !== undefined && /^\d+$/.test(v) ? Number(v) : null);
  const search = { q: (filter.q || '').trim(), minPrice: bound(filter.minPrice), maxPrice: bound(filter.maxPrice) };
  const searching = search.q !== '' || search.minPrice !== null || search.maxPrice !== null;
  const cards = new Map(); // id -> { auction, el, update }
  const list = h('ul', { class: 'auction-grid', id: 'auction-list', 'aria-live': 'off' });
  const status = h('p', { class: 'muted', role: 'status', id: 'auction-list-status' });
  const more = h('button', { type: 'button', hidden: true }, t('auctions.more'));
  const select = h(
    'select',
    { id: 'phase-filter' },
    FILTERS.map((f) => h('option', { value: f, selected: f === phase }, t(`auctions.filter.${f}`))),
  );
  const qInput = h('input', { type: 'search', name: 'q', value: search.q, maxlength: 100, autocomplete: 'off' });
  const minInput = h('input', { type: 'text', inputmode: 'decimal', name: 'minPrice', autocomplete: 'off', value: search.minPrice === null ? '' : moneyInput(search.minPrice, BOUND_CURRENCY) });
  const maxInput = h('input', { type: 'text', inputmode: 'decimal', name: 'maxPrice', autocomplete: 'off', value: search.maxPrice === null ? '' : moneyInput(search.maxPrice, BOUND_CURRENCY) });
  const searchStatus = h('p', { class: 'form-status', role: 'alert' });
  const form = h(
    'form',
    { id: 'auction-search', class: 'auction-search', role: 'search' },
    h('div', { class: 'inline-field' }, h('label', { for: 'phase-filter' }, t('auctions.filter')), select),
    field(t('auctions.search'), qInput),
    field(t('auctions.minPrice'), minInput),
    field(t('auctions.maxPrice'), maxInput),
    h('button', { type: 'submit' }, t('auctions.searchSubmit')),
    searchStatus,
  );

  /** Navigates to the list the form describes; a bad amount stays on the page with a message. */
  function go() {
    const query = new URLSearchParams();
    if (select.value !== 'all') query.set('phase', select.value);
    if (qInput.value.trim()) query.set('q', qInput.value.trim());
    for (const [name, input] of [['minPrice', minInput], ['maxPrice', maxInput]]) {
      if (!input.value.trim()) continue;
      const amount = parseMoney(input.value, BOUND_CURRENCY);
      if (amount === null) {
        text(searchStatus, t('code.INVALID_AMOUNT'));
        searchStatus.dataset.kind = 'error';
        input.focus();
        return;
      }
      query.set(name, String(amount));
    }
    const next = query.size ? `#/?${query}` : '#/';
    if (location.hash === next) return;
    location.hash = next;
  }
  select.addEventListener('change', go);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go();
  });

  /** The list's query: the filter, then paging. */
  function listQuery(limit) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (phase === 'watching') query.set('watching', 'true');
    else if (phase !== 'all') query.set('phase', phase);
    if (search.q) query.set('q', search.q);
    if (search.minPrice !== null) query.set('minPrice', String(search.minPrice));
    if (search.maxPrice !== null) query.set('maxPrice', String(search.maxPrice));
    return query;
  }

  replace(
    main,
    h(
      'section',
      { class: 'auctions-page', 'aria-labelledby': 'auctions-title' },
      h(
        'div',
        { class: 'page-head' },
        h('h1', { id: 'auctions-title' }, t('auctions.title')),
        h('a', { class: 'button primary', href: '#/auctions/new' }, t('nav.create')),
      ),
      form,
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
    text(status, cards.size ? '' : t(searching ? 'auctions.noMatch' : 'auctions.empty'));
  }

  let oldest = null;
  async function load() {
    const query = listQuery(PAGE);
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
    const query = listQuery(20);
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
