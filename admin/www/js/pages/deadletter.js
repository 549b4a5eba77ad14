// One dead letter: why (reason, errors), what (payload, ce_* headers), its replays and, for
// operators, replay (optionally as a dry run, to a chosen stage) and discard.

import { get, post } from '../api.js';
import { h, mount, table } from '../dom.js';
import { stateClass, time } from '../format.js';

const STAGES = ['', 'validate', 'transform', 'route', 'deliver'];

/** `b64` decoded as UTF-8 text; null when it is not base64 of valid UTF-8. */
function utf8(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** The payload as text (the API's payload_text, else its base64 payload decoded), pretty-printed
 * when it is JSON; base64 when it is not text. */
function payloadText(dl) {
  const text = dl.payload_text ?? (typeof dl.payload === 'string' ? utf8(dl.payload) : null);
  if (text === null) return `(not text; base64) ${dl.payload || ''}`;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function actions(ctx, dl, reload) {
  const out = h('div', { class: 'action-result', id: 'action-result', role: 'status' });
  const dry = h('input', { type: 'checkbox', id: 'dry-run', name: 'dry_run' });
  const force = h('input', { type: 'checkbox', id: 'force', name: 'force' });
  const stage = h('select', { id: 'to-stage', 'aria-label': 'to stage' },
    STAGES.map((st) => h('option', { value: st }, st || `its own stage (${dl.stage})`)));
  const replay = h('button', { type: 'button', class: 'action primary', id: 'replay' }, 'Replay');
  const discard = h('button', { type: 'button', class: 'action danger', id: 'discard' }, 'Discard');
  const act = async (what, body) => {
    replay.disabled = discard.disabled = true;
    mount(out, `${what}…`);
    try {
      const res = await post(`/dead-letters/${encodeURIComponent(dl.id)}/${what}`, body);
      mount(out, h('p', null, body.dry_run ? 'Dry run: ' : 'Done: ', h('code', null, JSON.stringify(res))));
      if (!body.dry_run) await reload();
    } catch (e) {
      mount(out);
      ctx.fail(e);
    } finally {
      replay.disabled = discard.disabled = false;
    }
  };
  replay.addEventListener('click', () => {
    const body = { dry_run: dry.checked };
    if (stage.value) body.to_stage = stage.value;
    if (force.checked) body.force = true;
    act('replay', body);
  });
  discard.addEventListener('click', () => act('discard', {}));
  return h('section', { class: 'card actions', id: 'dl-actions' },
    h('h2', null, 'Actions'),
    h('div', { class: 'filters' },
      h('label', null, 'to ', stage),
      h('label', null, dry, ' dry run'),
      h('label', { title: 'replay even if it was replayed or discarded before' }, force, ' force'),
      replay, discard),
    out);
}

function detail(ctx, dl, reload) {
  const operator = ctx.user && ctx.user.role === 'operator';
  // A dead letter at deliver names its destination in its ce_sluicedestination header.
  const destination = dl.destination || (dl.headers && dl.headers.ce_sluicedestination);
  const headers = Object.entries(dl.headers || {});
  return [
    h('div', { class: 'page-head' }, h('h1', null, `Dead letter #${dl.id}`),
      h('span', { class: ['pill', stateClass(dl.status)], id: 'dl-status' }, dl.status)),
    h('dl', { class: 'facts' },
      h('dt', null, 'event'), h('dd', null, dl.event_id ? h('a', { class: 'mono', href: `#/events/${encodeURIComponent(dl.event_id)}` }, dl.event_id) : '–'),
      h('dt', null, 'source / type'), h('dd', null, `${dl.source || '–'} / ${dl.type || '–'}`),
      h('dt', null, 'stage'), h('dd', null, `${dl.stage}${destination ? ` → ${destination}` : ''}`),
      h('dt', null, 'reason'), h('dd', { id: 'dl-reason' }, dl.reason),
      h('dt', null, 'attempt'), h('dd', null, String(dl.attempt ?? '–')),
      h('dt', null, 'received'), h('dd', null, time(dl.received_at)),
      dl.status_at ? [h('dt', null, 'status changed'), h('dd', null, `${time(dl.status_at)} by ${dl.status_by || '–'}`)] : null),
    Array.isArray(dl.errors) && dl.errors.length
      ? [h('h2', null, 'Errors'), h('ul', { class: 'errors' }, dl.errors.map((e) => h('li', null, String(e))))] : null,
    operator ? actions(ctx, dl, reload) : null,
    h('h2', null, 'Payload'),
    h('pre', { class: 'payload' }, payloadText(dl)),
    headers.length ? [h('h2', null, 'Headers'),
      table([{ label: 'name', cell: (r) => r[0] }, { label: 'value', cell: (r) => h('span', { class: 'mono' }, r[1]) }], headers)] : null,
    h('h2', null, 'Replays'),
    table([
      { label: 'at', cell: (r) => time(r.replayed_at) },
      { label: 'by', cell: (r) => r.replayed_by },
      { label: 'to stage', cell: (r) => r.to_stage },
      { label: 'topic', cell: (r) => r.to_topic },
      { label: 'attempt', class: 'n', cell: (r) => r.attempt },
    ], dl.replays || [], 'Never replayed.'),
  ];
}

export async function render(main, ctx) {
  const id = ctx.params[0];
  const box = h('div', { id: 'dead-letter' });
  main.append(box);
  const load = async () => {
    const dl = await get(`/dead-letters/${encodeURIComponent(id)}`);
    if (ctx.current()) mount(box, detail(ctx, dl, load));
  };
  await load();
  return null;
}
