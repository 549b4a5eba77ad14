// The console's shell: hash routes (#/page/arg?query), the sign-in gate and the error banner.
// Each page module exports render(main, ctx) and may return a function that stops what it
// started (polling); ctx has params, query, user, fail(err) and go(hash).

import { ApiError, get, token } from './api.js';
import { mount } from './dom.js';
import * as login from './pages/login.js';
import * as overview from './pages/overview.js';
import * as books from './pages/books.js';
import * as events from './pages/events.js';
import * as event from './pages/event.js';
import * as deadLetters from './pages/deadletters.js';
import * as deadLetter from './pages/deadletter.js';
import * as destinations from './pages/destinations.js';

const routes = [
  [/^login$/, login, 'login'],
  [/^overview$/, overview, 'overview'],
  [/^books$/, books, 'books'],
  [/^events$/, events, 'events'],
  [/^events\/(.+)$/, event, 'events'],
  [/^dead-letters$/, deadLetters, 'dead-letters'],
  [/^dead-letters\/(.+)$/, deadLetter, 'dead-letters'],
  [/^destinations$/, destinations, 'destinations'],
];

let user = null;
let stop = null;
let generation = 0;

const $ = (id) => document.getElementById(id);

function showError(message) {
  const banner = $('error');
  banner.textContent = message || '';
  banner.hidden = !message;
}

/** Parses location.hash into {path, query}. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, q = ''] = raw.split('?');
  return { path: path || 'overview', query: Object.fromEntries(new URLSearchParams(q)) };
}

function showUser() {
  $('nav').hidden = !user;
  $('who').hidden = !user;
  $('who-name').textContent = user ? `${user.name} (${user.role})` : '';
  document.body.classList.toggle('operator', !!user && user.role === 'operator');
}

/** Who the tab's token belongs to; null (and the token forgotten) when there is none or it is refused. */
async function whoami() {
  if (!token.get()) return null;
  try {
    return await get('/whoami');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      token.clear();
      return null;
    }
    throw e;
  }
}

async function route() {
  const mine = ++generation;
  if (stop) stop();
  stop = null;
  showError('');
  const { path, query } = parseHash();
  const main = $('main');
  if (!user && path !== 'login') {
    try {
      user = await whoami();
    } catch (e) {
      mount(main);
      showError(e.message);
      return;
    }
    if (mine !== generation) return;
    if (!user) {
      location.hash = `#/login?next=${encodeURIComponent(path)}`;
      return;
    }
  }
  showUser();
  let found = routes.find(([re]) => re.test(path));
  if (!found) found = [/^/, null, ''];
  const [re, page, nav] = found;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.route === nav);
  if (!page) {
    mount(main);
    showError(`No page "${path}".`);
    return;
  }
  const ctx = {
    params: path.match(re).slice(1).map(decodeURIComponent),
    query,
    user,
    go: (hash) => { location.hash = hash; },
    fail: (e) => {
      if (mine !== generation) return;
      if (e instanceof ApiError && e.status === 401) {
        token.clear();
        user = null;
        location.hash = `#/login?expired=1&next=${encodeURIComponent(path)}`;
        return;
      }
      showError(e instanceof ApiError ? `${e.message} (${e.code}, HTTP ${e.status})` : e.message);
    },
    signedIn: (u) => { user = u; showUser(); },
    current: () => mine === generation,
  };
  mount(main);
  try {
    stop = (await page.render(main, ctx)) || null;
    if (mine !== generation && stop) stop();
  } catch (e) {
    ctx.fail(e);
  }
}

$('logout').addEventListener('click', () => {
  token.clear();
  user = null;
  showUser();
  location.hash = '#/login';
});
window.addEventListener('hashchange', route);
route();
