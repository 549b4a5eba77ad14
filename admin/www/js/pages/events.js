// Event search: by event id or the provider's own id (q), source, type, state, destination and
// a time range, a page at a time (the API's cursor rides in the address, so Back works).

import { get } from '../api.js';
import { h, mount, pager, table } from '../dom.js';
import { stateClass, time } from '../format.js';

const STATES = ['', 'pending', 'stuck', 'delivered', 'dead_lettered', 'filtered', 'duplicate'];
const FIELDS = ['q', 'source', 'type', 'state', 'destination', 'since', 'until'];

function searchForm(ctx) {
  const q = ctx.query;
  const input = (name, placeholder) => h('input', { name, placeholder, value: q[name] || '', 'aria-label': placeholder });
  const state = h('select', { name: 'state', 'aria-label': 'state' },
    STATES.map((st) => h('option', { value: st, selected: (q.state || '') === st }, st || 'any state')));
  const dt = (name) => h('input', { name, type: 'datetime-local', value: q[name] ? q[name].slice(0, 16) : '', 'aria-label': name });
  const form = h('form', { class: 'filters', id: 'event-search' },
    input('q', 'event id or provider id'), input('source', 'source'), input('type', 'type'), state,
    input('destination', 'destination'),
    h('label', null, 'from ', dt('since')), h('label', null, 'to ', dt('until')),
    h('button', { type: 'submit', class: 'primary' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of FIELDS) {
      let v = form.elements[f].value.trim();
      if (v && (f === 'since' || f === 'until')) v = `${v}:00Z`;
      if (v) p.set(f, v);
    }
    ctx.go(`#/events?${p}`);
  });
  return form;
}

export async function render(main, ctx) {
  const results = h('div', { id: 'event-results' });
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Events')), searchForm(ctx), results);
  const params = { limit: 50 };
  for (const f of [...FIELDS, 'cursor']) if (ctx.query[f]) params[f] = ctx.query[f];
  const doc = await get('/events', params);
  if (!ctx.current()) return;
  const rows = doc.items || [];
  mount(results,
    table([
      { label: 'event', cell: (r) => h('a', { class: 'event-link mono', href: `#/events/${encodeURIComponent(r.event_id)}` }, r.event_id) },
      { label: 'accepted', cell: (r) => time(r.accepted_at) },
      { label: 'source', cell: (r) => r.source },
      { label: 'type', cell: (r) => r.type || '–' },
      { label: 'destination', cell: (r) => r.destination || '(event)' },
      { label: 'state', cell: (r) => h('span', { class: ['pill', stateClass(r.state)] }, r.state) },
    ], rows, 'No event matches.'),
    pager('events', ctx.query, doc.next_cursor));
  return null;
}
