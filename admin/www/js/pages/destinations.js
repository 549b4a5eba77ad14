// Destinations: each one's attempts, success ratio, latency, circuit and hold, with pause and
// resume for operators. Over time: the success ratio per hour from the books (delivered over
// delivered + dead-lettered), and latency p50/p95 as sampled from the overview while the
// console is open (the API keeps no latency history).

import { get, post } from '../api.js';
import { h, mount, table } from '../dom.js';
import { ms, num, pct, stateClass, time } from '../format.js';
import { timeChart } from '../chart.js';
import { poll } from '../poll.js';

const SAMPLES_MAX = 720; // an hour at one look every 5 s
const samples = new Map(); // destination -> [{t, p50, p95}]

function remember(dests) {
  const t = Math.floor(Date.now() / 1000);
  for (const d of dests) {
    const list = samples.get(d.name) || [];
    list.push({ t, p50: d.latency_ms ? d.latency_ms.p50 : null, p95: d.latency_ms ? d.latency_ms.p95 : null });
    if (list.length > SAMPLES_MAX) list.shift();
    samples.set(d.name, list);
  }
}

function attempts(d) {
  const a = d.attempts || {};
  const parts = Object.entries(a).map(([k, v]) => `${k} ${num(v)}`);
  return parts.length ? parts.join(', ') : '–';
}

function holdButton(ctx, d, refresh) {
  const paused = !!d.paused;
  const b = h('button', { type: 'button', class: ['action', paused ? 'primary' : 'danger'], 'data-action': paused ? 'resume' : 'pause', 'data-destination': d.name },
    paused ? 'Resume' : 'Pause');
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await post(`/destinations/${encodeURIComponent(d.name)}/${paused ? 'resume' : 'pause'}`,
        paused ? {} : { reason: 'paused from the console' });
      await refresh();
    } catch (e) {
      ctx.fail(e);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function ratioChart(hourly, names) {
  const byHour = new Map();
  for (const r of (hourly && hourly.items) || []) {
    if (!names.includes(r.destination)) continue;
    const t = Math.floor(new Date(r.hour).getTime() / 1000);
    const m = byHour.get(t) || {};
    const cur = m[r.destination] || { ok: 0, bad: 0 };
    cur.ok += r.delivered || 0;
    cur.bad += r.dead_lettered || 0;
    m[r.destination] = cur;
    byHour.set(t, m);
  }
  const xs = [...byHour.keys()].sort((a, b) => a - b);
  return timeChart('Success ratio per hour (last 24 h)', xs, names.map((n) => ({
    label: n,
    scale: 'ratio',
    values: xs.map((x) => {
      const c = byHour.get(x)[n];
      return c && c.ok + c.bad ? c.ok / (c.ok + c.bad) : null;
    }),
  })), { scales: { ratio: { range: [0, 1] } }, pad: 1800 });
}

function latencyChart(names) {
  const ts = [...new Set(names.flatMap((n) => (samples.get(n) || []).map((p) => p.t)))].sort((a, b) => a - b);
  const series = [];
  for (const n of names) {
    const at = new Map((samples.get(n) || []).map((p) => [p.t, p]));
    series.push({ label: `${n} p50`, values: ts.map((t) => (at.get(t) ? at.get(t).p50 : null)) });
    series.push({ label: `${n} p95`, values: ts.map((t) => (at.get(t) ? at.get(t).p95 : null)) });
  }
  return timeChart('Latency (ms), sampled while this console is open', ts.length > 1 ? ts : [], series, { pad: 30 });
}

export function render(main, ctx) {
  const operator = ctx.user && ctx.user.role === 'operator';
  const body = h('div', { id: 'destinations' });
  const charts = h('div', { class: 'charts' });
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Destinations')), body, charts);
  let hourly = null;
  let hourlyAt = 0;
  const refresh = async () => {
    const ov = await get('/overview');
    if (!ctx.current()) return;
    if (Date.now() - hourlyAt > 60000) {
      hourly = await get('/reconcile/hourly', { since: new Date(Date.now() - 24 * 3600 * 1000).toISOString() });
      hourlyAt = Date.now();
    }
    const dests = ov.destinations || [];
    remember(dests);
    mount(body, table([
      { label: 'destination', cell: (d) => h('strong', null, d.name) },
      { label: 'attempts', cell: attempts },
      { label: 'success', class: 'n', cell: (d) => pct(d.success_ratio) },
      { label: 'p50', class: 'n', cell: (d) => ms(d.latency_ms && d.latency_ms.p50) },
      { label: 'p95', class: 'n', cell: (d) => ms(d.latency_ms && d.latency_ms.p95) },
      { label: 'circuit', cell: (d) => h('span', { class: ['pill', stateClass(d.circuit)] }, d.circuit || '–') },
      { label: 'held', class: 'n', cell: (d) => num(d.held) },
      { label: 'paused', cell: (d) => (d.paused ? `by ${d.paused.by} at ${time(d.paused.at)}${d.paused.reason ? ` (${d.paused.reason})` : ''}` : 'no') },
      ...(operator ? [{ label: '', cell: (d) => holdButton(ctx, d, refresh) }] : []),
    ], dests, 'No destination is configured.'));
    const names = dests.map((d) => d.name);
    mount(charts, ratioChart(hourly, names), latencyChart(names));
  };
  return poll(ctx, 5, refresh);
}
