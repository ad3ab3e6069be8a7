// One auction: live price, countdown (soft-close extensions shown), reserve
// and buy-now, the bid and maximum-bid forms, and the live bid history. Its
// public chat room opens in the chat panel beside it.

import { api, me } from './api.js';
import { field, h, replace, text } from './dom.js';
import { t } from './i18n.js';
import { clockTime, countdown, dateTime, money, moneyInput, parseMoney, tick } from './format.js';
import { live } from './socket.js';
import { nameTag, userName } from './users.js';
import { priceChart } from './price_chart.js';
import { watchButton } from './watchlist.js';

export function renderAuction(main, id, { chat, watchlist }) {
  let auction = null;
  const steps = new Map(); // seq -> step
  const mine = new Set(); // requestIds this page sent
  const offs = [];

  const title = h('h1', { id: 'auction-title' });
  const description = h('p', { class: 'description' });
  const seller = h('span');
  const phase = h('span', { class: 'badge' });
  const price = h('strong', { class: 'big-price', id: 'auction-price', 'aria-live': 'polite' });
  const priceLabel = h('span', { class: 'muted' });
  const leader = h('span', { id: 'auction-leader' });
  const clock = h('span', { class: 'countdown', id: 'auction-countdown' });
  const extended = h('p', { class: 'extended', id: 'auction-extended', hidden: true, role: 'status' });
  const softRule = h('p', { class: 'muted small' });
  const reserve = h('span', { class: 'reserve', id: 'auction-reserve' });
  const minimum = h('p', { class: 'muted', id: 'auction-minimum' });
  const outcome = h('p', { class: 'outcome', id: 'auction-outcome', role: 'status' });
  const result = h('p', { class: 'form-status', id: 'bid-status', role: 'status', 'aria-live': 'polite' });
  const history = h('ol', { class: 'bid-history', id: 'bid-history', reversed: true });
  const chart = priceChart();
  const watch = watchButton(
    watchlist,
    () => auction,
    (e) => say(t('error.generic', { code: e.code || 'NETWORK' }), 'error'),
  );
  const actions = h('div', { class: 'auction-actions' });

  const bidInput = h('input', { type: 'text', inputmode: 'decimal', name: 'amount', autocomplete: 'off', required: true });
  const bidForm = h('form', { id: 'bid-form', class: 'bid-form' }, field(t('auction.bid'), bidInput), h('button', { type: 'submit', class: 'primary' }, t('auction.bidSubmit')));
  const maxInput = h('input', { type: 'text', inputmode: 'decimal', name: 'max', autocomplete: 'off', required: true });
  const maxForm = h('form', { id: 'max-bid-form', class: 'bid-form' }, field(t('auction.maxBid'), maxInput), h('button', { type: 'submit' }, t('auction.maxBidSubmit')));
  const buyNow = h('button', { type: 'button', id: 'buy-now', class: 'buy-now', hidden: true });
  const bidding = h('div', { class: 'bidding' }, bidForm, maxForm, buyNow, result);

  replace(
    main,
    h(
      'article',
      { class: 'auction-page', 'aria-labelledby': 'auction-title' },
      h('p', {}, h('a', { href: '#/' }, `← ${t('nav.auctions')}`)),
      h('div', { class: 'page-head' }, title, phase),
      h('p', { class: 'muted' }, `${t('auction.seller')}: `, seller),
      description,
      h(
        'section',
        { class: 'price-panel', 'aria-label': t('auction.price') },
        h('div', {}, priceLabel, h('div', {}, price)),
        h('div', {}, h('span', { class: 'muted' }, `${t('auction.leader')}: `), leader),
        h('div', {}, clock),
        extended,
        softRule,
        h('div', {}, reserve),
        minimum,
        outcome,
      ),
      bidding,
      actions,
      h('section', { class: 'chart-panel', 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, t('auction.chart.title')), chart.element),
      h('section', { 'aria-labelledby': 'history-title' }, h('h2', { id: 'history-title' }, t('auction.history')), history),
    ),
  );

  function say(message, kind) {
    text(result, message);
    result.dataset.kind = kind;
  }

  function amountOf(input) {
    const value = parseMoney(input.value, auction.currency);
    if (value === null) say(t('auction.rejected', { reason: t('code.INVALID_AMOUNT') }), 'error');
    return value;
  }

  bidForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const amount = amountOf(bidInput);
    if (amount !== null) mine.add(live.bid(id, amount, { currency: auction.currency }));
  });
  maxForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const amount = amountOf(maxInput);
    if (amount !== null) mine.add(live.bid(id, amount, { max: true, currency: auction.currency }));
  });
  buyNow.addEventListener('click', () => {
    if (auction?.buyNow) mine.add(live.bid(id, auction.buyNow, { currency: auction.currency }));
  });

  function addSteps(list) {
    for (const step of list) {
      if (steps.has(step.seq)) continue;
      steps.set(step.seq, step);
      const row = h(
        'li',
        { dataset: { seq: String(step.seq) } },
        h('span', { class: 'amount' }, money(step.amount, auction.currency)),
        ' ',
        nameTag(step.bidder),
        step.proxy ? h('span', { class: 'tag' }, t('auction.proxy')) : null,
        ' ',
        h('time', { datetime: new Date(step.at).toISOString(), class: 'muted' }, clockTime(step.at)),
      );
      // Newest first: put the row before the first one with a lower seq.
      const after = [...history.children].find((li) => Number(li.dataset.seq) < step.seq);
      history.insertBefore(row, after || null);
    }
    if (auction) chart.draw(steps.values(), auction);
  }

  function show(next) {
    const first = !auction;
    auction = next;
    const a = next;
    const isSeller = me()?.id === a.sellerId;
    text(title, a.title);
    text(clock, countdown(a));
    text(description, a.description);
    if (first) replace(seller, nameTag(a.sellerId));
    text(phase, t(`auction.phase.${a.phase}`));
    phase.dataset.phase = a.phase;
    text(priceLabel, a.price === null ? t('auction.startingPrice') : t('auction.price'));
    text(price, money(a.price ?? a.startingPrice, a.currency));
    price.dataset.amount = String(a.price ?? '');
    replace(leader, a.leaderId ? nameTag(a.leaderId) : t('auction.noBids'));
    text(reserve, t(!a.hasReserve ? 'auction.reserve.none' : a.reserveMet ? 'auction.reserve.met' : 'auction.reserve.notMet'));
    reserve.dataset.met = String(!a.hasReserve || a.reserveMet);
    text(minimum, a.phase === 'open' || a.phase === 'scheduled' ? t('auction.minimum', { amount: money(a.minimumBid, a.currency) }) : '');
    if (a.endsAt > a.scheduledEnd) {
      extended.hidden = false;
      text(extended, t('auction.extended', { time: dateTime(a.scheduledEnd) }));
    }
    if (a.softClose) {
      text(softRule, t('auction.softClose', { window: Math.round(a.softClose.windowMs / 1000), ext: Math.round(a.softClose.extensionMs / 1000) }));
    }
    buyNow.hidden = !a.buyNowAvailable || isSeller || a.phase !== 'open';
    if (a.buyNow) text(buyNow, t('auction.buyNow', { amount: money(a.buyNow, a.currency) }));
    const biddable = !isSeller && (a.phase === 'open' || a.phase === 'scheduled');
    bidding.hidden = !biddable;
    if (first || !bidInput.value || document.activeElement !== bidInput) bidInput.value = moneyInput(a.minimumBid, a.currency);
    if (a.phase === 'closed') {
      if (a.outcome === 'sold' && a.winnerId) {
        userName(a.winnerId).then((name) => text(outcome, t('auction.sold', { name: me()?.id === a.winnerId ? t('auction.you') : name, amount: money(a.price, a.currency) })));
      } else text(outcome, t('auction.unsold'));
    } else if (a.phase === 'cancelled') text(outcome, t('auction.cancelled'));
    else text(outcome, '');
    renderActions(isSeller);
    chart.draw(steps.values(), a);
  }

  function renderActions(isSeller) {
    const a = auction;
    const buttons = [watch.button];
    watch.show();
    if (isSeller) {
      buttons.push(h('p', { class: 'muted' }, t('auction.sellerView')));
      if (a.bidCount === 0 && (a.phase === 'open' || a.phase === 'scheduled')) {
        buttons.push(
          h('button', {
            type: 'button',
            class: 'danger',
            onclick: () => api('POST', `/api/auctions/${id}/cancel`).catch((e) => say(t('error.generic', { code: e.code }), 'error')),
          }, t('auction.cancel')),
        );
      }
    } else {
      buttons.push(h('button', { type: 'button', onclick: () => chat.openDirect(a.sellerId) }, t('auction.messageSeller')));
    }
    if (a.dealRoomId && (isSeller || me()?.id === a.winnerId)) {
      buttons.push(h('button', { type: 'button', class: 'primary', onclick: () => chat.openRoom(a.dealRoomId) }, t('auction.dealRoom')));
    }
    replace(actions, buttons);
  }

  tick(clock, () => {
    if (!auction) return;
    text(clock, countdown(auction));
    // The last price holds until now: the line grows while the auction runs.
    if (auction.phase === 'open') chart.draw(steps.values(), auction);
  });

  offs.push(
    live.on('AUCTION_UPDATE', (f) => {
      if (f.auction.id !== id) return;
      show(f.auction);
      addSteps(f.steps || []);
    }),
    live.on('AUCTION_EXTENDED', (f) => {
      if (f.auctionId !== id || !auction) return;
      show({ ...auction, endsAt: f.endsAt });
      extended.classList.remove('flash');
      void extended.offsetWidth;
      extended.classList.add('flash');
    }),
    live.on('AUCTION_CLOSED', (f) => {
      if (f.auction.id === id) show(f.auction);
    }),
    live.on('OUTBID', (f) => {
      if (f.auctionId === id && auction) say(t('auction.outbid', { amount: money(f.price, auction.currency) }), 'warn');
    }),
    live.on('BID_RESULT', (f) => {
      if (f.auctionId !== id || !mine.has(f.requestId)) return;
      mine.delete(f.requestId);
      if (f.accepted) {
        const amount = money(f.price, auction.currency);
        say(f.leading ? t('auction.accepted', { amount }) : t('auction.acceptedNotLeading', { amount }), f.leading ? 'ok' : 'warn');
      } else {
        const key = `code.${f.code}`;
        const translated = t(key, { minimum: f.minimum ? money(f.minimum, auction.currency) : '' });
        say(t('auction.rejected', { reason: translated === key ? f.message || f.code : translated }), 'error');
      }
    }),
    live.on('ERROR', (f) => {
      if (f.requestId && mine.has(f.requestId)) {
        mine.delete(f.requestId);
        say(t('auction.rejected', { reason: f.message || f.code }), 'error');
      }
    }),
  );

  // Current state and history over REST first (the page works before the socket
  // is up); the subscription then brings everything newer.
  Promise.all([api('GET', `/api/auctions/${id}`), api('GET', `/api/auctions/${id}/bids?limit=100`)])
    .then(([view, bids]) => {
      if (!auction || view.stepCount >= auction.stepCount) show(view);
      addSteps(bids.items);
      if (view.roomId) chat.openAuctionRoom(view.roomId, view.title);
    })
    .catch((e) => replace(main, h('p', { class: 'form-status', role: 'alert' }, e.status === 404 ? t('auction.notFound') : t('error.generic', { code: e.code }))));
  live.watchAuction(id);

  return () => {
    offs.forEach((off) => off());
    watch.off();
    live.unwatchAuction(id);
  };
}
