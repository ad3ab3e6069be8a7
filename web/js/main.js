// Boot and routing. Pages are addressed by the URL hash (#/auctions/7), so the
// server only ever serves `/`; social login comes back as `/?login_code=…`.

import { currentSession, exchangeLoginCode, logout, me, onSession } from './api.js';
import { h, replace, text } from './dom.js';
import { language, onLanguage, setLanguage, t, translateStatic } from './i18n.js';
import { live } from './socket.js';
import { renderLogin } from './view_login.js';
import { renderAuctions } from './view_auctions.js';
import { renderAuction } from './view_auction.js';
import { renderCreate } from './view_create.js';
import { ChatPanel } from './chat.js';
import { Watchlist } from './watchlist.js';

const main = document.getElementById('main');
const aside = document.getElementById('chat');
const banner = document.getElementById('banner');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const logoutButton = document.getElementById('logout');
const langSelect = document.getElementById('lang');
const notices = document.getElementById('notices');

let cleanup = null;
let chat = null;
let watchlist = null;
let notice = null; // one-off message for the login page (?login_error=…)

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const parts = hash.split('/').filter(Boolean);
  if (parts[0] === 'auctions' && parts[1] === 'new') return { page: 'create' };
  if (parts[0] === 'auctions' && /^\d+$/.test(parts[1] || '')) return { page: 'auction', id: Number(parts[1]) };
  if (parts[0] === 'rooms' && /^\d+$/.test(parts[1] || '')) return { page: 'auctions', room: Number(parts[1]) };
  const query = new URLSearchParams(hash.split('?')[1] || '');
  const filter = Object.fromEntries(['phase', 'q', 'minPrice', 'maxPrice'].map((k) => [k, query.get(k)]));
  return { page: 'auctions', filter };
}

function renderNav() {
  const user = me();
  document.body.classList.toggle('signed-in', !!user);
  if (!user) {
    replace(nav);
    text(who, '');
    logoutButton.hidden = true;
    return;
  }
  const current = route().page;
  replace(
    nav,
    h('a', { href: '#/', 'aria-current': current === 'auctions' ? 'page' : null }, t('nav.auctions')),
    h('a', { href: '#/auctions/new', 'aria-current': current === 'create' ? 'page' : null }, t('nav.create')),
  );
  text(who, t('nav.signedInAs', { name: user.displayName || user.email }));
  logoutButton.hidden = false;
  text(logoutButton, t('nav.logout'));
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  translateStatic();
  renderNav();
  if (!currentSession()) {
    aside.hidden = true;
    if (chat) chat.destroy();
    chat = null;
    watchlist?.destroy();
    watchlist = null;
    cleanup = renderLogin(main, { notice });
    notice = null;
    return;
  }
  live.start();
  aside.hidden = false;
  if (!chat) chat = new ChatPanel(aside);
  if (!watchlist) watchlist = new Watchlist(notices);
  const r = route();
  const ctx = { chat, watchlist };
  if (r.page === 'create') cleanup = renderCreate(main, ctx);
  else if (r.page === 'auction') cleanup = renderAuction(main, r.id, ctx);
  else {
    cleanup = renderAuctions(main, r.filter, ctx);
    if (r.room) chat.openRoom(r.room);
    else chat.leaveAuctionRoom();
  }
}

function showBanner({ state }) {
  if (state === 'reconnecting') {
    text(banner, t('banner.reconnecting'));
    banner.hidden = false;
  } else if (state === 'open') {
    banner.hidden = true;
  }
  document.body.dataset.connection = state;
}

async function handleRedirectParams() {
  const params = new URLSearchParams(location.search);
  if (![...params.keys()].some((k) => ['login_code', 'login_error', 'linked'].includes(k))) return;
  // Take the one-time values out of the address bar (and the history) at once.
  history.replaceState(null, '', `/${location.hash}`);
  if (params.has('login_code')) {
    try {
      await exchangeLoginCode(params.get('login_code'));
    } catch (e) {
      notice = { kind: 'error', text: t('error.login', { code: e.code || 'NETWORK' }) };
    }
  } else if (params.has('login_error')) {
    notice = { kind: 'error', text: t('error.login', { code: params.get('login_error') }) };
  } else if (params.has('linked')) {
    notice = { kind: 'info', text: t('login.linked', { provider: params.get('linked') }) };
  }
}

async function boot() {
  langSelect.value = language();
  langSelect.addEventListener('change', () => setLanguage(langSelect.value));
  onLanguage(() => {
    chat?.render();
    render();
  });
  logoutButton.addEventListener('click', async () => {
    live.stop();
    await logout();
  });
  live.on('status', showBanner);
  onSession((s) => {
    // Sign-in and sign-out change the whole page; token refreshes do not.
    const signedIn = !!s;
    if (signedIn !== document.body.classList.contains('signed-in')) {
      if (!signedIn) live.stop();
      render();
    }
  });
  window.addEventListener('hashchange', render);
  await handleRedirectParams();
  render();
  document.body.dataset.ready = 'true';
}

boot();
