// The books: per hour and per source/destination, what was accepted and where it ended up
// (reconcile's hourly table), as a chart and a table, with the headline leadership reads
// ("books balance" or "N unexplained") and the stuck events.

import { get } from '../api.js';
import { h, mount, table } from '../dom.js';
import { num, time } from '../format.js';
import { timeChart } from '../chart.js';

const COLS = ['accepted', 'delivered', 'dead_lettered', 'filtered', 'duplicate', 'pending', 'stuck', 'unexplained'];

function rowsOf(doc) {
  return (doc && doc.items) || [];
}

function filters(ctx) {
  const q = ctx.query;
  const dayAgo = new Date(Date.now() - 24 * 3600 * 1000).toISOString().slice(0, 16);
  const since = h('input', { name: 'since', type: 'datetime-local', value: q.since ? q.since.slice(0, 16) : dayAgo });
  const source = h('input', { name: 'source', placeholder: 'source', value: q.source || '' });
  const destination = h('input', { name: 'destination', placeholder: 'destination', value: q.destination || '' });
  const form = h('form', { class: 'filters' },
    h('label', null, 'since (UTC) ', since), source, destination, h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (since.value) p.set('since', `${since.value}:00Z`);
    if (source.value) p.set('source', source.value);
    if (destination.value) p.set('destination', destination.value);
    ctx.go(`#/books?${p}`);
  });
  return { form, params: { since: q.since || `${dayAgo}:00Z`, source: q.source, destination: q.destination } };
}

function headline(totals) {
  const n = totals.unexplained || 0;
  const stuck = totals.stuck || 0;
  return h('div', { id: 'books-headline', class: ['headline', 'big', n ? 'bad' : 'good'] },
    n ? `${num(n)} unexplained` : 'Books balance',
    h('span', { class: 'sub' },
      `${num(totals.accepted || 0)} accepted, ${num(totals.delivered || 0)} delivered, `
      + `${num(totals.dead_lettered || 0)} dead-lettered, ${num(totals.pending || 0)} pending`
      + (stuck ? `, ${num(stuck)} stuck` : '')));
}

export async function render(main, ctx) {
  const { form, params } = filters(ctx);
  const body = h('div', { id: 'books' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Books')), form, body);
  const [hourly, stuck] = await Promise.all([get('/reconcile/hourly', params), get('/reconcile/stuck')]);
  if (!ctx.current()) return;
  const rows = rowsOf(hourly);
  const totals = Object.fromEntries(COLS.map((c) => [c, rows.reduce((a, r) => a + (r[c] || 0), 0)]));
  const byHour = new Map();
  for (const r of rows) {
    const t = Math.floor(new Date(r.hour).getTime() / 1000);
    const sum = byHour.get(t) || Object.fromEntries(COLS.map((c) => [c, 0]));
    for (const c of COLS) sum[c] += r[c] || 0;
    byHour.set(t, sum);
  }
  const xs = [...byHour.keys()].sort((a, b) => a - b);
  const chart = timeChart('Per hour', xs,
    ['accepted', 'delivered', 'dead_lettered', 'filtered', 'duplicate', 'pending', 'unexplained']
      .map((c) => ({ label: c.replace('_', ' '), values: xs.map((x) => byHour.get(x)[c]) })),
    { bars: xs.length < 4, pad: 1800 });
  const stuckRows = rowsOf(stuck);
  mount(body,
    headline(totals),
    chart,
    h('h2', null, 'Per hour, source and destination'),
    table([
      { label: 'hour', cell: (r) => time(r.hour) },
      { label: 'source', cell: (r) => r.source },
      { label: 'destination', cell: (r) => r.destination || '(event)' },
      ...COLS.map((c) => ({
        label: c.replace('_', ' '), class: 'n',
        cell: (r) => (c === 'unexplained' && r[c] ? h('span', { class: 'bad' }, num(r[c])) : num(r[c] || 0)),
      })),
    ], rows, 'No events in this range.'),
    h('h2', null, 'Stuck events'),
    table([
      { label: 'event', cell: (r) => h('a', { href: `#/events/${encodeURIComponent(r.event_id)}` }, r.event_id) },
      { label: 'source', cell: (r) => r.source },
      { label: 'destination', cell: (r) => r.destination || '(event)' },
      { label: 'accepted', cell: (r) => time(r.accepted_at) },
      { label: 'stuck since', cell: (r) => time(r.stuck_at) },
    ], stuckRows, 'No stuck events.'));
  return null;
}
