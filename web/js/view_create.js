// The seller's form: title, prices (typed as decimals, sent as minor units),
// duration and the optional soft-close rule.

import { api } from './api.js';
import { field, h, replace, text } from './dom.js';
import { t } from './i18n.js';
import { parseMoney } from './format.js';

const CURRENCIES = ['USD', 'KRW', 'EUR', 'JPY'];

export function renderCreate(main) {
  const status = h('p', { class: 'form-status', role: 'alert' });
  const title = h('input', { type: 'text', name: 'title', required: true, maxlength: 200 });
  const description = h('textarea', { name: 'description', rows: 4, maxlength: 10000 });
  const currency = h('select', { name: 'currency' }, CURRENCIES.map((c) => h('option', { value: c }, c)));
  const starting = h('input', { type: 'text', inputmode: 'decimal', name: 'startingPrice', required: true, value: '10.00' });
  const increment = h('input', { type: 'text', inputmode: 'decimal', name: 'increment', required: true, value: '1.00' });
  const reserve = h('input', { type: 'text', inputmode: 'decimal', name: 'reserve' });
  const buyNow = h('input', { type: 'text', inputmode: 'decimal', name: 'buyNow' });
  const minutes = h('input', { type: 'number', name: 'duration', min: 1, max: 525600, required: true, value: 60 });
  const soft = h('input', { type: 'checkbox', name: 'softClose', checked: true });
  const softWindow = h('input', { type: 'number', name: 'softWindow', min: 1, value: 60 });
  const softExtension = h('input', { type: 'number', name: 'softExtension', min: 1, value: 60 });

  const syncSoft = () => {
    softWindow.disabled = !soft.checked;
    softExtension.disabled = !soft.checked;
  };
  soft.addEventListener('change', syncSoft);

  const form = h(
    'form',
    { class: 'card create-form', id: 'create-form', 'aria-labelledby': 'create-title' },
    h('h1', { id: 'create-title' }, t('create.title')),
    field(t('create.itemTitle'), title),
    field(t('create.description'), description),
    h('div', { class: 'row' }, field(t('create.currency'), currency), field(t('create.startingPrice'), starting), field(t('create.increment'), increment)),
    h('div', { class: 'row' }, field(t('create.reserve'), reserve), field(t('create.buyNow'), buyNow)),
    field(t('create.duration'), minutes),
    h('div', { class: 'check' }, soft, h('label', { for: (soft.id = 'soft-close') }, t('create.softClose'))),
    h('div', { class: 'row' }, field(t('create.softWindow'), softWindow), field(t('create.softExtension'), softExtension)),
    status,
    h('button', { type: 'submit', class: 'primary' }, t('create.submit')),
  );

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const cur = currency.value;
    const money = (input, optional) => {
      if (optional && !input.value.trim()) return undefined;
      const value = parseMoney(input.value, cur);
      if (value === null) throw new Error(`${input.name}: ${t('code.INVALID_AMOUNT')}`);
      return value;
    };
    let body;
    try {
      body = {
        title: title.value.trim(),
        description: description.value,
        currency: cur,
        startingPrice: money(starting),
        increment: money(increment),
        reserve: money(reserve, true),
        buyNow: money(buyNow, true),
        durationSecs: Number(minutes.value) * 60,
      };
      if (soft.checked) {
        body.softClose = { windowMs: Number(softWindow.value) * 1000, extensionMs: Number(softExtension.value) * 1000, mode: 'extend' };
      }
    } catch (err) {
      text(status, t('create.failed', { message: err.message }));
      return;
    }
    try {
      const created = await api('POST', '/api/auctions', body);
      location.hash = `#/auctions/${created.id}`;
    } catch (err) {
      text(status, t('create.failed', { message: err.message || err.code }));
    }
  });

  replace(main, form);
  title.focus();
  return () => {};
}
