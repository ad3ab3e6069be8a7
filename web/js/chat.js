// The chat panel beside every page: the rooms list with unread badges, the
// open room (history scroll-back, typing indicator, presence) and the composer.
// Member rooms stay subscribed so their badges count live; the room on screen
// is ordered by seq, and a hole in the seq (a missed message) is filled from
// the history endpoint before anything is shown out of order.

import { api, me } from './api.js';
import { field, h, replace, text } from './dom.js';
import { t } from './i18n.js';
import { clockTime } from './format.js';
import { live } from './socket.js';
import { nameTag, userName } from './users.js';

const PAGE = 50;
const TYPING_SHOW_MS = 4000;
const TYPING_SEND_MS = 2500;
const ROOMS_REFRESH_MS = 10000;

export class ChatPanel {
  constructor(root) {
    this.root = root;
    this.rooms = new Map(); // id -> { room, unread }
    this.labels = new Map(); // id -> Promise<string>
    this.active = null; // { id, member, seqs:Set, first, last, pending:Map }
    this.typing = new Map(); // userId -> timer
    this.online = new Set();
    this.lastTypingSent = 0;
    this.offs = [
      live.on('CHAT_MESSAGE', (f) => this.onMessage(f.message)),
      live.on('CHAT_RESULT', (f) => this.onResult(f)),
      live.on('TYPING', (f) => this.onTyping(f)),
      live.on('PRESENCE', (f) => this.onPresence(f)),
      live.on('PRESENCE_LIST', (f) => {
        if (f.roomId !== this.active?.id) return;
        this.online = new Set(f.userIds);
        this.renderPresence();
      }),
      live.on('SUBSCRIBED', (f) => {
        if (f.roomId && f.roomId === this.active?.id) live.send({ type: 'PRESENCE', roomId: f.roomId });
      }),
      live.on('AUCTION_CLOSED', () => this.loadRooms()),
    ];
    this.timer = setInterval(() => this.loadRooms(), ROOMS_REFRESH_MS);
    this.render();
    this.loadRooms();
  }

  destroy() {
    clearInterval(this.timer);
    this.offs.forEach((off) => off());
    for (const id of this.rooms.keys()) live.unwatchRoom(id);
    if (this.active && !this.active.member) live.unwatchRoom(this.active.id);
    replace(this.root);
  }

  /** Builds the panel's frame; the room list and the open room fill it. */
  render() {
    this.list = h('ul', { class: 'room-list', id: 'room-list' });
    const name = h('input', { type: 'text', name: 'roomName', maxlength: 100, required: true });
    const create = h('form', { class: 'new-room' }, field(t('chat.newRoom'), name), h('button', { type: 'submit' }, t('chat.create')));
    create.addEventListener('submit', async (e) => {
      e.preventDefault();
      const room = await api('POST', '/api/rooms', { name: name.value.trim(), members: [] }).catch(() => null);
      if (room) {
        name.value = '';
        this.addRoom({ ...room, unread: 0 });
        this.openRoom(room.id);
      }
    });
    this.roomTitle = h('h3', { id: 'room-title' });
    this.presence = h('p', { class: 'presence muted', id: 'presence' });
    this.older = h('button', { type: 'button', class: 'older', id: 'load-older', hidden: true }, t('chat.older'));
    this.older.addEventListener('click', () => this.loadOlder());
    this.messages = h('ol', { class: 'messages', id: 'messages', 'aria-live': 'polite', 'aria-relevant': 'additions', tabindex: 0, 'aria-labelledby': 'room-title' });
    this.messages.addEventListener('scroll', () => {
      if (this.messages.scrollTop < 8 && !this.older.hidden) this.loadOlder();
    });
    this.typingLine = h('p', { class: 'typing muted', id: 'typing', 'aria-live': 'polite' });
    this.input = h('input', { type: 'text', id: 'composer', name: 'message', autocomplete: 'off', maxlength: 4000 });
    this.input.addEventListener('input', () => this.sendTyping());
    this.composer = h('form', { class: 'composer', id: 'composer-form' }, h('label', { for: 'composer', class: 'visually-hidden' }, t('chat.message')), this.input, h('button', { type: 'submit', class: 'primary' }, t('chat.send')));
    this.composer.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.status = h('p', { class: 'form-status', role: 'status' });
    this.roomView = h(
      'section',
      { class: 'room', 'aria-labelledby': 'room-title' },
      h('header', {}, this.roomTitle, this.presence),
      this.older,
      this.messages,
      this.typingLine,
      this.status,
      this.composer,
    );
    replace(
      this.root,
      h('h2', { class: 'panel-title' }, t('chat.title')),
      h('nav', { 'aria-label': t('chat.rooms') }, this.list),
      h('details', { class: 'new-room-box' }, h('summary', {}, t('chat.create')), create),
      this.roomView,
    );
    this.renderRooms();
    if (this.active) {
      const id = this.active.id;
      const member = this.active.member;
      this.active = null;
      this.openRoom(id, { member, watched: true });
    } else this.renderEmpty();
  }

  renderEmpty() {
    text(this.roomTitle, '');
    text(this.presence, '');
    replace(this.messages, h('li', { class: 'muted hint' }, t('chat.pick')));
    this.composer.hidden = true;
    this.older.hidden = true;
  }

  async loadRooms() {
    try {
      const { items } = await api('GET', '/api/rooms');
      for (const room of items) this.addRoom(room);
      this.renderRooms();
    } catch {
      /* the next refresh tries again */
    }
  }

  addRoom(summary) {
    const known = this.rooms.get(summary.id);
    if (known) return;
    this.rooms.set(summary.id, { room: summary, unread: summary.id === this.active?.id ? 0 : summary.unread || 0 });
    if (this.active?.id === summary.id) this.active.member = true;
    // Watching from the room's last seq: anything newer arrives and counts as unread.
    if (this.active?.id !== summary.id || !live.watchesRoom(summary.id)) live.watchRoom(summary.id, summary.lastSeq);
    else live.watchRoom(summary.id); // the open room's watch becomes a member watch too
  }

  label(room) {
    if (!this.labels.has(room.id)) {
      let promise;
      if (room.kind === 'direct') {
        promise = api('GET', `/api/rooms/${room.id}/members`)
          .then(({ items }) => items.find((m) => m.userId !== me()?.id))
          .then((other) => (other ? userName(other.userId) : room.name))
          .then((name) => ({ key: 'chat.direct', vars: { name } }))
          .catch(() => ({ text: room.name }));
      } else if (room.kind === 'auction') promise = Promise.resolve({ key: 'chat.auctionRoom', vars: { title: room.name } });
      else promise = Promise.resolve({ text: room.name });
      this.labels.set(room.id, promise);
    }
    return this.labels.get(room.id).then((l) => (l.key ? t(l.key, l.vars) : l.text));
  }

  renderRooms() {
    if (!this.list) return;
    const entries = [...this.rooms.values()].sort((a, b) => b.room.lastSeq - a.room.lastSeq || b.room.id - a.room.id);
    if (!entries.length) {
      replace(this.list, h('li', { class: 'muted' }, t('chat.noRooms')));
      return;
    }
    replace(
      this.list,
      entries.map(({ room, unread }) => {
        const name = h('span', { class: 'room-name' }, room.name);
        this.label(room).then((l) => text(name, l));
        const badge = unread ? h('span', { class: 'badge unread', 'aria-label': t('chat.unread', { n: unread }) }, String(unread)) : null;
        return h(
          'li',
          {},
          h(
            'button',
            { type: 'button', class: 'room-button', dataset: { roomId: String(room.id), kind: room.kind }, 'aria-current': room.id === this.active?.id ? 'true' : null, onclick: () => this.openRoom(room.id) },
            name,
            badge,
          ),
        );
      }),
    );
  }

  /** Shows an auction's public room next to the auction. */
  openAuctionRoom(roomId, title) {
    if (!this.rooms.has(roomId)) this.labels.set(roomId, Promise.resolve({ key: 'chat.auctionRoom', vars: { title } }));
    this.openRoom(roomId);
  }

  /** Leaving an auction page closes its room unless the user is a member. */
  leaveAuctionRoom() {
    if (this.active && !this.rooms.has(this.active.id)) {
      live.unwatchRoom(this.active.id);
      this.active = null;
      this.renderEmpty();
      this.renderRooms();
    }
  }

  async openDirect(userId) {
    try {
      const room = await api('POST', '/api/rooms/direct', { userId });
      this.addRoom({ ...room, unread: 0 });
      this.renderRooms();
      this.openRoom(room.id);
    } catch (e) {
      text(this.status, t('error.generic', { code: e.code }));
    }
  }

  async openRoom(id, { member, watched = false } = {}) {
    if (this.active?.id === id && this.active.loaded) return;
    if (this.active && !this.rooms.has(this.active.id) && this.active.id !== id) live.unwatchRoom(this.active.id);
    const isMember = member ?? this.rooms.has(id);
    const active = { id, member: isMember, seqs: new Set(), first: null, last: 0, pending: new Map(), loaded: false };
    this.active = active;
    this.online = new Set();
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
    text(this.typingLine, '');
    text(this.status, '');
    replace(this.messages);
    this.composer.hidden = false;
    const entry = this.rooms.get(id);
    if (entry) entry.unread = 0;
    this.renderRooms();
    const fallback = entry?.room || { id, kind: 'auction', name: `#${id}` };
    (this.labels.has(id) || entry ? this.label(fallback) : Promise.resolve(fallback.name)).then((l) => {
      if (this.active === active) text(this.roomTitle, l);
    });
    try {
      const { items } = await api('GET', `/api/rooms/${id}/messages?limit=${PAGE}`);
      if (this.active !== active) return;
      for (const m of items) this.insert(m);
      active.loaded = true;
      this.older.hidden = !(active.first > 1);
      if (!items.length) this.messages.append(h('li', { class: 'muted hint empty' }, t('chat.empty')));
      this.scrollDown();
    } catch (e) {
      text(this.status, t('error.generic', { code: e.code }));
      return;
    }
    // Opening an auction's room may be the first sign of a membership (own auction).
    if (!this.rooms.has(id)) this.loadRooms();
    if (live.watchesRoom(id)) live.send({ type: 'PRESENCE', roomId: id });
    if (!isMember && !watched) live.watchRoom(id, active.last);
    this.markRead();
  }

  insert(m) {
    const active = this.active;
    if (!active || m.roomId !== active.id || active.seqs.has(m.seq)) return;
    active.seqs.add(m.seq);
    this.messages.querySelector('.empty')?.remove();
    const own = m.sender === me()?.id;
    const sender = own
      ? nameTag(m.sender, 'sender me')
      : h('button', { type: 'button', class: 'sender link', title: '', onclick: () => this.openDirect(m.sender) }, nameTag(m.sender, 'name'));
    if (!own) userName(m.sender).then((name) => sender.setAttribute('aria-label', t('chat.directWith', { name })));
    const li = h(
      'li',
      { class: own ? 'message own' : 'message', dataset: { seq: String(m.seq) } },
      h('div', { class: 'meta' }, sender, h('time', { datetime: new Date(m.createdAt).toISOString() }, clockTime(m.createdAt))),
      h('p', { class: 'body' }, m.body),
    );
    const after = [...this.messages.querySelectorAll('li.message')].find((el) => Number(el.dataset.seq) > m.seq);
    this.messages.insertBefore(li, after || this.messages.querySelector('li.pending'));
    active.first = active.first === null ? m.seq : Math.min(active.first, m.seq);
    active.last = Math.max(active.last, m.seq);
    const pending = active.pending.get(m.clientMsgId);
    if (pending && own) {
      pending.remove();
      active.pending.delete(m.clientMsgId);
    }
  }

  async onMessage(m) {
    const entry = this.rooms.get(m.roomId);
    if (entry) entry.room.lastSeq = Math.max(entry.room.lastSeq, m.seq);
    const active = this.active;
    if (active && active.id === m.roomId && active.loaded) {
      if (m.seq > active.last + 1) await this.fillGap(active, active.last, m.seq);
      const nearBottom = this.messages.scrollHeight - this.messages.scrollTop - this.messages.clientHeight < 80;
      this.insert(m);
      if (nearBottom || m.sender === me()?.id) this.scrollDown();
      this.typingStopped(m.sender);
      this.markRead();
      return;
    }
    if (entry && m.sender !== me()?.id && active?.id !== m.roomId) {
      entry.unread += 1;
      this.renderRooms();
    }
  }

  async fillGap(active, after, before) {
    try {
      const { items } = await api('GET', `/api/rooms/${active.id}/messages?after=${after}&limit=${Math.min(200, before - after - 1)}`);
      for (const m of items) if (m.seq < before) this.insert(m);
    } catch {
      /* the live message still shows; a reload heals the gap */
    }
  }

  async loadOlder() {
    const active = this.active;
    if (!active || this.loadingOlder || !(active.first > 1)) return;
    this.loadingOlder = true;
    const height = this.messages.scrollHeight;
    try {
      const { items } = await api('GET', `/api/rooms/${active.id}/messages?before=${active.first}&limit=${PAGE}`);
      if (this.active !== active) return;
      for (const m of items) this.insert(m);
      this.messages.scrollTop += this.messages.scrollHeight - height;
      this.older.hidden = !(active.first > 1) || items.length === 0;
    } finally {
      this.loadingOlder = false;
    }
  }

  markRead() {
    const active = this.active;
    if (!active || !active.last || document.hidden) return;
    if (active.readSent >= active.last) return;
    active.readSent = active.last;
    if (this.rooms.has(active.id)) live.send({ type: 'CHAT_READ', roomId: active.id, seq: active.last });
  }

  send() {
    const body = this.input.value;
    const active = this.active;
    if (!active || !body.trim()) return;
    const clientMsgId = live.chat(active.id, body);
    const li = h('li', { class: 'message own pending', dataset: { clientMsgId } }, h('div', { class: 'meta' }, nameTag(me().id, 'sender me'), h('span', { class: 'muted' }, t('chat.sending'))), h('p', { class: 'body' }, body));
    this.messages.append(li);
    active.pending.set(clientMsgId, li);
    this.input.value = '';
    this.scrollDown();
  }

  onResult(f) {
    // Writing in a public room made us a member: it belongs in the list now.
    if (f.accepted && !this.rooms.has(f.roomId)) this.loadRooms();
    const pending = this.active?.pending.get(f.requestId);
    if (!pending) return;
    if (!f.accepted) {
      pending.classList.add('failed');
      text(pending.querySelector('.muted'), t('chat.failed', { code: f.code }));
      this.active.pending.delete(f.requestId);
    } else if (this.active.seqs.has(f.seq)) {
      pending.remove();
      this.active.pending.delete(f.requestId);
    }
  }

  sendTyping() {
    const now = Date.now();
    if (!this.active || now - this.lastTypingSent < TYPING_SEND_MS || !live.watchesRoom(this.active.id)) return;
    this.lastTypingSent = now;
    live.send({ type: 'TYPING', roomId: this.active.id });
  }

  onTyping(f) {
    if (f.roomId !== this.active?.id || f.userId === me()?.id) return;
    clearTimeout(this.typing.get(f.userId));
    this.typing.set(f.userId, setTimeout(() => this.typingStopped(f.userId), TYPING_SHOW_MS));
    this.renderTyping();
  }

  typingStopped(userId) {
    if (!this.typing.has(userId)) return;
    clearTimeout(this.typing.get(userId));
    this.typing.delete(userId);
    this.renderTyping();
  }

  async renderTyping() {
    const names = await Promise.all([...this.typing.keys()].map((id) => userName(id)));
    text(this.typingLine, names.length ? t('chat.typing', { names: names.join(', ') }) : '');
  }

  onPresence(f) {
    if (f.roomId !== this.active?.id) return;
    if (f.online) this.online.add(f.userId);
    else this.online.delete(f.userId);
    this.renderPresence();
  }

  async renderPresence() {
    const ids = [...this.online];
    const names = await Promise.all(ids.map((id) => (id === me()?.id ? t('auction.you') : userName(id))));
    text(this.presence, names.length ? t('chat.online', { names: names.join(', ') }) : '');
  }

  scrollDown() {
    this.messages.scrollTop = this.messages.scrollHeight;
  }
}
