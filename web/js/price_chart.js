// The auction page's price chart: the price over time as an SVG step line,
// drawn by the page from the stored steps and redrawn as live steps arrive.
// Steps a maximum bid placed by itself are marked (a hollow point). No chart
// library: a step line over at most a few hundred points is a few lines here.

import { t } from './i18n.js';
import { clockTime, money } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 640;
const HEIGHT = 180;
const PAD = { left: 64, right: 12, top: 12, bottom: 24 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child);
  return el;
}

/**
 * A chart element and its `draw(steps, auction)`: `steps` are the auction's
 * steps in any order ({seq, amount, at, proxy, bidder}), `auction` its view
 * (currency, starting price, start and end).
 */
export function priceChart() {
  const plot = svg('svg', {
    id: 'price-chart',
    class: 'price-chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
  });
  const label = svg('title');
  plot.append(label);

  function draw(steps, auction) {
    const points = [...steps].sort((a, b) => a.seq - b.seq);
    plot.replaceChildren(label);
    plot.dataset.points = String(points.length);
    const currency = auction.currency;
    if (points.length === 0) {
      label.textContent = t('auction.chart.empty');
      plot.append(svg('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'chart-empty' }, t('auction.chart.empty')));
      return;
    }
    const last = points[points.length - 1];
    label.textContent = t('auction.chart.summary', {
      count: points.length,
      from: money(points[0].amount, currency),
      to: money(last.amount, currency),
    });

    // Time runs from the first step (or the start, if earlier) to now, or to
    // the end once the auction is over; price from the starting price up.
    const start = Math.min(points[0].at, auction.startsAt ?? points[0].at);
    const over = auction.phase === 'closed' || auction.phase === 'cancelled';
    const end = Math.max(last.at, over ? Math.min(auction.endsAt ?? last.at, Date.now()) : Date.now());
    const low = Math.min(auction.startingPrice ?? points[0].amount, points[0].amount);
    const high = Math.max(last.amount, ...points.map((p) => p.amount));
    const x = (at) => PAD.left + ((at - start) / Math.max(end - start, 1)) * (WIDTH - PAD.left - PAD.right);
    const y = (amount) => HEIGHT - PAD.bottom - ((amount - low) / Math.max(high - low, 1)) * (HEIGHT - PAD.top - PAD.bottom);

    // A price holds until the next step: horizontal, then up.
    let path = `M${x(points[0].at)},${y(points[0].amount)}`;
    for (const p of points.slice(1)) path += ` H${x(p.at)} V${y(p.amount)}`;
    path += ` H${x(end)}`;

    plot.append(
      svg('line', { class: 'chart-axis', x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom }),
      svg('text', { class: 'chart-label', x: PAD.left - 6, y: y(high) + 4, 'text-anchor': 'end' }, money(high, currency)),
      svg('text', { class: 'chart-label', x: PAD.left - 6, y: y(low) + 4, 'text-anchor': 'end' }, money(low, currency)),
      svg('text', { class: 'chart-label', x: PAD.left, y: HEIGHT - 6 }, clockTime(start)),
      svg('text', { class: 'chart-label', x: WIDTH - PAD.right, y: HEIGHT - 6, 'text-anchor': 'end' }, clockTime(end)),
      svg('path', { class: 'chart-line', d: path }),
    );
    for (const p of points) {
      const title = svg('title');
      title.textContent = `${money(p.amount, currency)} · ${clockTime(p.at)}${p.proxy ? ` · ${t('auction.proxy')}` : ''}`;
      plot.append(
        svg(
          'circle',
          {
            class: p.proxy ? 'point proxy' : 'point',
            cx: x(p.at),
            cy: y(p.amount),
            r: 4,
            'data-seq': p.seq,
            'data-amount': p.amount,
          },
          title,
        ),
      );
    }
  }

  return { element: plot, draw };
}
