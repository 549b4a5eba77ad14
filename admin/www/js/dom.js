// Element builders. Text always goes in as text nodes, never as HTML, so nothing the API
// returns (payloads, reasons, names) can become markup; no style attributes either, which the
// server's Content-Security-Policy (style-src 'self') would refuse.

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'style') throw new Error('inline styles are refused by the CSP: use a class');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h('tag', {attr: value, onclick: fn, class: [...]}, ...children) -> HTMLElement */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** Replaces the children of `el` with `children`. */
export function mount(el, ...children) {
  el.replaceChildren();
  return fill(el, null, children);
}

/** A table: columns [{label, cell(row) -> node|string, class?}], rows; `empty` when none. */
export function table(columns, rows, empty = 'Nothing to show.') {
  if (!rows || rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class }, c.label)))),
      h('tbody', null, rows.map((r) =>
        h('tr', null, columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, c.cell(r))))))));
}

/** Links to the first and the next page of a list whose API cursor rides in the address
 * (`#/<route>?...&cursor=`), so that Back returns to the previous page. */
export function pager(route, query, nextCursor) {
  const next = new URLSearchParams(query);
  next.set('cursor', nextCursor || '');
  const first = new URLSearchParams(query);
  first.delete('cursor');
  return h('div', { class: 'pager' },
    query.cursor ? h('a', { href: `#/${route}?${first}` }, '« first page') : null,
    nextCursor ? h('a', { href: `#/${route}?${next}`, class: 'next-page' }, 'next page »') : null);
}
