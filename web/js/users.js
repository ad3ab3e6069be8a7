// Display names by user id, fetched once per id and shared by every view.

import { api, me } from './api.js';
import { t } from './i18n.js';
import { h } from './dom.js';

const cache = new Map();

export function userName(id) {
  if (id === null || id === undefined) return Promise.resolve('');
  if (!cache.has(id)) {
    cache.set(
      id,
      api('GET', `/api/users/${id}`)
        .then((u) => u.displayName || u.email || `#${id}`)
        .catch(() => `#${id}`),
    );
  }
  return cache.get(id);
}

/** A <span> that shows the user's name once known ("you" for the signed-in user). */
export function nameTag(id, cls = 'user') {
  const span = h('span', { class: cls, dataset: { user: String(id) } }, `#${id}`);
  if (me()?.id === id) {
    span.textContent = t('auction.you');
    span.classList.add('me');
  } else {
    userName(id).then((name) => {
      span.textContent = name;
    });
  }
  return span;
}
