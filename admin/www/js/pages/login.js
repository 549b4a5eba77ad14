// Sign in with a token: it is checked with GET /whoami before it is kept for the tab.

import { ApiError, get, token } from '../api.js';
import { h } from '../dom.js';

export function render(main, ctx) {
  const field = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true,
    placeholder: 'token', 'aria-label': 'Token',
  });
  const message = h('p', { id: 'login-message', class: 'error-text', role: 'alert' });
  if (ctx.query.expired) message.textContent = 'Your token was refused; sign in again.';
  const form = h('form', { class: 'card login', id: 'login-form' },
    h('h1', null, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste your sluice-admin token. It is kept only for this tab.'),
    field,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    message);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    message.textContent = '';
    const t = field.value.trim();
    if (!t) return;
    try {
      token.set(t);
      const who = await get('/whoami');
      ctx.signedIn(who);
      ctx.go(`#/${ctx.query.next && ctx.query.next !== 'login' ? ctx.query.next : 'overview'}`);
    } catch (e) {
      token.clear();
      message.textContent = e instanceof ApiError && e.status === 401
        ? 'This token is not valid.' : `Sign-in failed: ${e.message}`;
    }
  });
  main.append(form);
  field.focus();
}
