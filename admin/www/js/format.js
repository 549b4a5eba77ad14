// How numbers, times and states read on the page.

export function num(v) {
  if (v === undefined || v === null) return '–';
  if (typeof v !== 'number') return String(v);
  return Number.isInteger(v) ? v.toLocaleString('en') : v.toLocaleString('en', { maximumFractionDigits: 2 });
}

export function rate(v) {
  return v === undefined || v === null ? '–' : `${num(v)}/s`;
}

export function pct(v) {
  return v === undefined || v === null ? '–' : `${(v * 100).toFixed(1)} %`;
}

export function ms(v) {
  return v === undefined || v === null ? '–' : `${num(v)} ms`;
}

/** RFC 3339 -> "2026-12-08 02:14:03Z" (UTC, as the API speaks). */
export function time(v) {
  if (!v) return '–';
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** The CSS class of a state word: good, bad, warn or neutral. */
export function stateClass(state) {
  switch (state) {
    case 'delivered': case 'passed': case 'closed': case 'ready': case 'balanced': return 'good';
    case 'dead_lettered': case 'stuck': case 'failed': case 'open': case 'new': case 'unbalanced': case 'error': return 'bad';
    case 'pending': case 'retrying': case 'retry': case 'half-open': case 'half_open': case 'replayed': case 'paused': return 'warn';
    default: return 'neutral';
  }
}
