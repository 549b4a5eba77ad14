// The pipeline as a picture: ingress -> validate -> transform -> route -> deliver -> each
// destination, with audit, deadletter and reconcile beside it; each node shows its rate,
// lag and errors and turns red when it is not ready or its errors or lag grew between two
// looks (every 5 s); a destination, when its circuit is open or under 99 % of attempts succeed. Below: today's counters and what needs attention (dead letters, stuck events).

import { get } from '../api.js';
import { h, mount } from '../dom.js';
import { num, pct, rate, ms } from '../format.js';
import { poll } from '../poll.js';

const CHAIN = ['ingress', 'validate', 'transform', 'route', 'deliver'];
const SIDE = ['audit', 'deadletter', 'reconcile'];
const TODAY = ['accepted', 'delivered', 'dead_lettered', 'filtered', 'duplicate', 'pending', 'unexplained'];

// What each stage had at the previous look (lag, and errors: a count since the stage started),
// kept across visits of the page: growth between two looks is what turns a node red.
const lastLag = new Map();
const lastErrors = new Map();

/** Whether `value` is above what `map` had for `name`, remembering `value`. */
function grew(map, name, value) {
  const prev = map.get(name);
  map.set(name, value);
  return typeof value === 'number' && typeof prev === 'number' && value > prev;
}

function stageNode(name, st) {
  if (!st) {
    return h('div', { class: 'node unknown', 'data-stage': name },
      h('div', { class: 'node-name' }, name), h('div', { class: 'muted' }, 'not reported'));
  }
  const problems = [];
  if (st.ready === false) problems.push(st.reason ? `not ready: ${st.reason}` : 'not ready');
  if (grew(lastErrors, name, st.errors)) problems.push('new errors');
  if (grew(lastLag, name, st.lag)) problems.push('lag growing');
  return h('div', { class: ['node', problems.length ? 'bad' : 'good'], 'data-stage': name },
    h('div', { class: 'node-name' }, name),
    h('dl', { class: 'node-stats' },
      h('dt', null, 'in'), h('dd', { class: 'rate-in' }, rate(st.rate_in)),
      h('dt', null, 'out'), h('dd', { class: 'rate-out' }, rate(st.rate_out)),
      h('dt', null, 'lag'), h('dd', null, st.lag === undefined || st.lag === null ? '–' : num(st.lag)),
      h('dt', null, 'errors'), h('dd', null, num(st.errors))),
    problems.length ? h('div', { class: 'node-problem' }, problems.join('; ')) : null);
}

function destinationNode(d) {
  const bad = d.circuit === 'open' || (typeof d.success_ratio === 'number' && d.success_ratio < 0.99);
  const paused = d.paused ? `paused by ${d.paused.by}` : null;
  return h('div', { class: ['node', 'dest', bad ? 'bad' : paused ? 'warn' : 'good'], 'data-destination': d.name },
    h('div', { class: 'node-name' }, d.name),
    h('dl', { class: 'node-stats' },
      h('dt', null, 'success'), h('dd', null, pct(d.success_ratio)),
      h('dt', null, 'p95'), h('dd', null, ms(d.latency_ms && d.latency_ms.p95)),
      h('dt', null, 'circuit'), h('dd', null, d.circuit || '–'),
      h('dt', null, 'held'), h('dd', null, num(d.held))),
    paused ? h('div', { class: 'node-problem' }, paused) : null);
}

function picture(ov) {
  const byName = new Map((ov.stages || []).map((st) => [st.name, st]));
  const extra = (ov.stages || []).map((st) => st.name).filter((n) => !CHAIN.includes(n) && !SIDE.includes(n));
  const chain = [];
  CHAIN.forEach((name, i) => {
    if (i) chain.push(h('div', { class: 'arrow', 'aria-hidden': 'true' }, '→'));
    chain.push(stageNode(name, byName.get(name)));
  });
  chain.push(h('div', { class: 'arrow', 'aria-hidden': 'true' }, '→'));
  const dests = ov.destinations || [];
  chain.push(h('div', { class: 'dests' },
    dests.length ? dests.map(destinationNode) : h('div', { class: 'node unknown' }, 'no destinations')));
  return h('section', { class: 'pipeline', 'aria-label': 'Pipeline' },
    h('div', { class: 'chain' }, chain),
    h('div', { class: 'side' },
      h('span', { class: 'muted side-label' }, 'beside the pipeline:'),
      [...SIDE, ...extra].map((name) => stageNode(name, byName.get(name)))));
}

function counters(ov) {
  const today = ov.today || {};
  const unexplained = today.unexplained || 0;
  return h('section', { class: 'counters', 'aria-label': 'Today' },
    h('h2', null, 'Today (UTC)'),
    h('div', { class: 'tiles' },
      TODAY.map((k) => h('div', { class: ['tile', k === 'unexplained' && unexplained ? 'bad' : null], 'data-counter': k },
        h('div', { class: 'tile-value' }, num(today[k] ?? 0)),
        h('div', { class: 'tile-label' }, k.replace('_', ' '))))),
    h('p', { id: 'books-headline', class: ['headline', unexplained ? 'bad' : 'good'] },
      unexplained ? `${num(unexplained)} unexplained today` : 'Books balance today'));
}

function attention(ov) {
  const dl = ov.dead_letters || {};
  return h('section', { class: 'tiles attention' },
    h('a', { class: ['tile', dl.new ? 'bad' : null], href: '#/dead-letters?status=new' },
      h('div', { class: 'tile-value' }, num(dl.new ?? 0)), h('div', { class: 'tile-label' }, 'new dead letters')),
    h('a', { class: 'tile', href: '#/dead-letters' },
      h('div', { class: 'tile-value' }, num(dl.total ?? 0)), h('div', { class: 'tile-label' }, 'dead letters in all')),
    h('a', { class: ['tile', ov.stuck ? 'bad' : null], href: '#/books' },
      h('div', { class: 'tile-value' }, num(ov.stuck ?? 0)), h('div', { class: 'tile-label' }, 'stuck events')));
}

export function render(main, ctx) {
  const body = h('div', { id: 'overview' });
  const stamp = h('span', { class: 'muted' });
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Overview'), stamp), body);
  return poll(ctx, 5, async () => {
    const ov = await get('/overview');
    if (!ctx.current()) return;
    mount(body, picture(ov), counters(ov), attention(ov));
    stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  });
}
