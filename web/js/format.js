// Money, times and countdowns. Amounts are integers of minor units (never
// floats): parsing splits the typed text at the decimal point instead of
// multiplying a float.

import { language, t } from './i18n.js';

const digitsCache = new Map();

/** Fraction digits of a currency (USD 2, KRW 0, ...). */
export function fractionDigits(currency) {
  if (!digitsCache.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
        .maximumFractionDigits;
    } catch {
      /* unknown code: assume cents */
    }
    digitsCache.set(currency, digits);
  }
  return digitsCache.get(currency);
}

/** 123456, 'USD' -> '$1,234.56' (in the UI language). */
export function money(amount, currency) {
  if (amount === null || amount === undefined) return '–';
  const digits = fractionDigits(currency);
  const negative = amount < 0;
  const abs = BigInt(Math.abs(amount));
  const scale = 10n ** BigInt(digits);
  const whole = abs / scale;
  const frac = abs % scale;
  const locale = language() === 'ko' ? 'ko-KR' : 'en-US';
  let formatted;
  try {
    const parts = new Intl.NumberFormat(locale, {
      style: 'currency',
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).formatToParts(0);
    const symbol = parts.filter((p) => p.type === 'currency').map((p) => p.value).join('');
    const symbolFirst = parts.findIndex((p) => p.type === 'currency') < parts.findIndex((p) => p.type === 'integer');
    const number = new Intl.NumberFormat(locale).format(whole) + (digits ? '.' + frac.toString().padStart(digits, '0') : '');
    formatted = symbolFirst ? `${symbol}${number}` : `${number} ${symbol}`;
  } catch {
    formatted = `${whole}${digits ? '.' + frac.toString().padStart(digits, '0') : ''} ${currency}`;
  }
  return negative ? `-${formatted}` : formatted;
}

/** '12.5', 'USD' -> 1250; null when the text is not a positive amount. */
export function parseMoney(text, currency) {
  const digits = fractionDigits(currency);
  const clean = String(text).trim().replace(/[,\s]/g, '');
  const match = /^(\d+)(?:\.(\d*))?$/.exec(clean);
  if (!match) return null;
  // '10.00' is a fine amount of won: extra fraction digits may only be zeros.
  const frac = (match[2] || '').replace(/0+$/, '');
  if (frac.length > digits) return null;
  const value = BigInt(match[1]) * 10n ** BigInt(digits) + BigInt(frac.padEnd(digits, '0') || '0');
  if (value <= 0n || value > 10n ** 15n) return null;
  return Number(value);
}

/** Minor units -> the text a user would type ('12.50'). */
export function moneyInput(amount, currency) {
  const digits = fractionDigits(currency);
  if (!digits) return String(amount);
  const s = String(amount).padStart(digits + 1, '0');
  return `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

/** Milliseconds -> '2d 03:04:05' / '03:04:05' / '04:05'. */
export function duration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86400);
  const hh = Math.floor((total % 86400) / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  const clock = hh || d ? `${two(hh)}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
  return d ? `${d}d ${clock}` : clock;
}

export function clockTime(ms) {
  const locale = language() === 'ko' ? 'ko-KR' : 'en-US';
  return new Date(ms).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(ms) {
  const locale = language() === 'ko' ? 'ko-KR' : 'en-US';
  return new Date(ms).toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
}

/** The countdown text of an auction view at `now`. */
export function countdown(auction, now = Date.now()) {
  if (auction.phase === 'cancelled') return t('auction.cancelled');
  if (auction.phase === 'closed') return t('auction.ended');
  if (now < auction.startsAt) return t('auction.startsIn', { time: duration(auction.startsAt - now) });
  if (now >= auction.endsAt) return t('auction.ended');
  return t('auction.endsIn', { time: duration(auction.endsAt - now) });
}

// One ticker refreshes every element that shows a countdown.
const ticking = new Set();
setInterval(() => {
  for (const entry of [...ticking]) {
    if (!entry[0].isConnected) ticking.delete(entry);
    else entry[1]();
  }
}, 1000);

/** Calls `update` every second while `el` is in the document. */
export function tick(el, update) {
  update();
  ticking.add([el, update]);
}
