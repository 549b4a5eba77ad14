// One event's story: every stage's decision, every delivery attempt (status, latency), its
// dead letters and their replays, and where it stands per destination; the same document as
// `sluicectl events show --json`.

import { get } from '../api.js';
import { h, table } from '../dom.js';
import { ms, stateClass, time } from '../format.js';

function detailText(row) {
  const parts = [];
  const d = row.detail || {};
  if (Array.isArray(d.destinations) && d.destinations.length) parts.push(`to ${d.destinations.join(', ')}`);
  if (Array.isArray(d.routes) && d.routes.length) parts.push(`routes ${d.routes.join(', ')}`);
  if (row.reason) parts.push(row.reason);
  if (d.error && d.error !== row.reason) parts.push(d.error);
  if (Array.isArray(row.errors)) parts.push(...row.errors.map(String));
  return parts.join('; ');
}

function timeline(doc) {
  const items = [];
  for (const r of doc.timeline || []) {
    items.push({ at: r.at, kind: 'stage', row: r });
  }
  for (const dl of doc.dead_letters || []) {
    items.push({ at: dl.received_at, kind: 'dead_letter', row: dl });
    for (const rp of dl.replays || []) items.push({ at: rp.replayed_at, kind: 'replay', row: rp, dl });
  }
  items.sort((a, b) => String(a.at).localeCompare(String(b.at)));
  return h('ol', { class: 'timeline', id: 'timeline' }, items.map((it) => {
    const r = it.row;
    if (it.kind === 'dead_letter') {
      return h('li', { class: 'bad', 'data-kind': 'dead_letter' },
        h('span', { class: 'when' }, time(it.at)),
        h('span', { class: 'what' }, h('a', { href: `#/dead-letters/${r.id}` }, `dead letter #${r.id}`),
          ` at ${r.stage}${r.destination ? ` → ${r.destination}` : ''}`),
        h('span', { class: ['pill', stateClass(r.status)] }, r.status),
        h('span', { class: 'detail' }, r.reason || ''));
    }
    if (it.kind === 'replay') {
      return h('li', { class: 'warn', 'data-kind': 'replay' },
        h('span', { class: 'when' }, time(it.at)),
        h('span', { class: 'what' }, `replayed by ${r.replayed_by} to ${r.to_stage}`),
        h('span', { class: 'pill warn' }, `attempt ${r.attempt}`),
        h('span', { class: 'detail' }, `dead letter #${it.dl.id} → ${r.to_topic}`));
    }
    if (r.stage === 'admin') {
      // An operator's action through sluice-admin (its audit record's detail says who and how).
      const d = r.detail || {};
      const p = d.parameters || {};
      return h('li', { class: 'neutral', 'data-kind': 'admin' },
        h('span', { class: 'when' }, time(it.at)),
        h('span', { class: 'what' }, `${d.who || 'someone'} (${d.role || 'admin'}) in the console`),
        h('span', { class: 'pill' }, r.outcome),
        h('span', { class: 'detail' }, [p.dry_run ? 'dry run' : '', p.to_stage ? `to ${p.to_stage}` : '',
          d.target || '', d.result ? `→ ${d.result}` : ''].filter(Boolean).join(' ')));
    }
    const deliver = r.stage === 'deliver';
    return h('li', { class: stateClass(r.outcome), 'data-kind': 'stage', 'data-stage': r.stage },
      h('span', { class: 'when' }, time(it.at)),
      h('span', { class: 'what' }, r.stage, deliver && r.destination ? ` → ${r.destination}` : '',
        deliver && r.attempt ? ` (attempt ${r.attempt})` : ''),
      h('span', { class: ['pill', stateClass(r.outcome)] }, r.outcome),
      h('span', { class: 'detail' },
        deliver && r.status !== undefined && r.status !== null ? `HTTP ${r.status}` : '',
        deliver && r.latency_ms !== undefined && r.latency_ms !== null ? ` in ${ms(r.latency_ms)}` : '',
        deliver ? ' ' : '', detailText(r)));
  }));
}

export async function render(main, ctx) {
  const id = ctx.params[0];
  const doc = await get(`/events/${encodeURIComponent(id)}`);
  if (!ctx.current()) return;
  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Event'), h('code', { class: 'mono', id: 'event-id' }, doc.event_id)),
    h('p', null, `source ${doc.source || '–'} · type ${doc.type || '–'}`),
    h('h2', null, 'Where it stands'),
    table([
      { label: 'destination', cell: (r) => r.destination || '(event)' },
      { label: 'outcome', cell: (r) => h('span', { class: ['pill', stateClass(r.outcome)] }, r.outcome) },
      { label: 'attempts', class: 'n', cell: (r) => r.attempts ?? '–' },
      { label: 'last status', class: 'n', cell: (r) => r.last_status ?? '–' },
      { label: 'at', cell: (r) => time(r.at) },
      { label: 'event_status', cell: (r) => (r.state ? h('span', { class: ['pill', stateClass(r.state)] }, r.state) : '–') },
    ], doc.destinations || [], 'No destination yet.'),
    h('h2', null, 'Timeline'),
    timeline(doc));
  return null;
}
