// Dead letters: a filtered list a page at a time and, for operators, bulk replay by the same
// filter, confirmed with the count a dry run returns.

import { get, post } from '../api.js';
import { h, mount, pager, table } from '../dom.js';
import { stateClass, time } from '../format.js';

const FIELDS = ['source', 'stage', 'destination', 'status', 'since'];
const STATUSES = ['', 'new', 'replayed', 'discarded'];
const STAGES = ['', 'validate', 'transform', 'route', 'deliver'];

function filterForm(ctx) {
  const q = ctx.query;
  const select = (name, values, any) => h('select', { name, 'aria-label': name },
    values.map((v) => h('option', { value: v, selected: (q[name] || '') === v }, v || any)));
  const form = h('form', { class: 'filters', id: 'dl-filters' },
    h('input', { name: 'source', placeholder: 'source', value: q.source || '', 'aria-label': 'source' }),
    select('stage', STAGES, 'any stage'),
    h('input', { name: 'destination', placeholder: 'destination', value: q.destination || '', 'aria-label': 'destination' }),
    select('status', STATUSES, 'any status'),
    h('label', null, 'since ', h('input', { name: 'since', type: 'datetime-local', value: q.since ? q.since.slice(0, 16) : '' })),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of FIELDS) {
      let v = form.elements[f].value.trim();
      if (v && f === 'since') v = `${v}:00Z`;
      if (v) p.set(f, v);
    }
    ctx.go(`#/dead-letters?${p}`);
  });
  return form;
}

// What bulk replay filters by (the API's body); the list's other filters do not narrow it.
const BULK_FIELDS = ['source', 'stage', 'since'];

/** The bulk replay panel: dry run first, then a confirmation naming the count. */
function bulkReplay(ctx, query) {
  const filter = {};
  for (const f of BULK_FIELDS) if (query[f]) filter[f] = query[f];
  const out = h('div', { class: 'bulk-result', role: 'status' });
  const panel = h('div', { class: 'card bulk', id: 'bulk-replay' });
  const start = h('button', { type: 'button', class: 'action', id: 'bulk-dry-run' }, 'Replay all that match…');
  const countOf = (doc) => doc.matched ?? 0;
  const scope = Object.entries(filter).map(([k, v]) => `${k} ${v}`).join(', ') || 'every source and stage';
  start.addEventListener('click', async () => {
    mount(out, 'Counting (dry run)…');
    try {
      const dry = await post('/dead-letters/replay', { ...filter, dry_run: true });
      const n = countOf(dry);
      if (!n) {
        mount(out, 'No dead letter matches this filter.');
        return;
      }
      const confirm = h('button', { type: 'button', class: 'action danger', id: 'bulk-confirm' }, `Replay ${n} dead letters`);
      const cancel = h('button', { type: 'button' }, 'Cancel');
      cancel.addEventListener('click', () => mount(out));
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try {
          const done = await post('/dead-letters/replay', { ...filter, dry_run: false });
          const failed = done.failed || [];
          mount(out, `Replayed ${done.replayed ?? 0} of ${countOf(done)} dead letters.`,
            failed.length ? h('ul', { class: 'errors' }, failed.map((f) => h('li', null, `#${f.id}: ${f.error}`))) : null);
        } catch (e) {
          ctx.fail(e);
          mount(out);
        }
      });
      mount(out, h('p', { id: 'bulk-count' }, `${n} dead letters match this filter. Replay them all?`), confirm, ' ', cancel);
    } catch (e) {
      ctx.fail(e);
      mount(out);
    }
  });
  return mount(panel, h('span', { class: 'muted' }, `Bulk replay (${scope}): `), start, out);
}

export async function render(main, ctx) {
  const results = h('div', { id: 'dl-results' });
  const filter = {};
  for (const f of FIELDS) if (ctx.query[f]) filter[f] = ctx.query[f];
  const operator = ctx.user && ctx.user.role === 'operator';
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Dead letters')), filterForm(ctx),
    operator ? bulkReplay(ctx, ctx.query) : null, results);
  const doc = await get('/dead-letters', { ...filter, limit: 50, cursor: ctx.query.cursor });
  if (!ctx.current()) return;
  mount(results,
    table([
      { label: '#', cell: (r) => h('a', { href: `#/dead-letters/${r.id}`, class: 'dl-link' }, `#${r.id}`) },
      { label: 'received', cell: (r) => time(r.received_at) },
      { label: 'event', cell: (r) => (r.event_id ? h('a', { class: 'mono', href: `#/events/${encodeURIComponent(r.event_id)}` }, r.event_id) : '–') },
      { label: 'source', cell: (r) => r.source || '–' },
      { label: 'stage', cell: (r) => `${r.stage}${r.destination ? ` → ${r.destination}` : ''}` },
      { label: 'reason', cell: (r) => r.reason },
      { label: 'status', cell: (r) => h('span', { class: ['pill', stateClass(r.status)], 'data-status': r.status }, r.status) },
    ], doc.items || [], 'No dead letter matches.'),
    pager('dead-letters', ctx.query, doc.next_cursor));
  return null;
}
