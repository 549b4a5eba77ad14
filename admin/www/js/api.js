// The admin API client: every call carries the tab's token (sessionStorage, so it dies with
// the tab); an error reply ({"error":{"code","message"}}) becomes an ApiError with the
// server's words, which the page shows as they are.

const TOKEN_KEY = 'sluice.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** GET or POST `path` (under /api/v1) and return the parsed JSON; throws ApiError. */
export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const tok = token.get();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'unavailable', `sluice-admin cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (!res.ok) {
    const err = doc && doc.error;
    throw new ApiError(res.status, (err && err.code) || `http_${res.status}`,
      (err && err.message) || `${method} ${path}: HTTP ${res.status}${text && !doc ? `: ${text.slice(0, 200)}` : ''}`);
  }
  if (doc === null && text) throw new ApiError(res.status, 'internal', `${method} ${path}: the reply is not JSON`);
  return doc;
}

export const get = (path, params) => call('GET', path + query(params));
export const post = (path, body = {}) => call('POST', path, body);
