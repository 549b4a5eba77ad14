// The console's checks in headless chromium, run by test_browser_console (which starts the
// pipeline and sluice-admin and passes what it made through the environment):
//   SLUICE_ADMIN_URL, SLUICE_OPERATOR_TOKEN, SLUICE_VIEWER_TOKEN, SLUICE_EVENT_ID (delivered),
//   SLUICE_DEAD_LETTER_ID and SLUICE_DEAD_EVENT_ID (a dead letter at deliver -> warehouse, whose
//   destination answers 200 again), SLUICE_SCREENSHOT_DIR, SLUICE_OVERVIEW_SEEN_FILE (created
//   once the overview was checked: the test's sender stops then), SLUICE_CHROMIUM (default
//   /usr/bin/chromium), SLUICE_BROWSER_NODE_DIR (where `npm ci` installed package.json's packages).
// Checked: a wrong token is refused; the overview shows non-zero rates, both destinations and
// today's counters; searching the event id finds it and its timeline shows every stage and each
// delivery's status and latency; the operator pauses and resumes a destination; bulk replay
// asks for confirmation with the dry run's count; a viewer sees no action; a dry-run replay
// changes nothing, a replay turns the dead letter `replayed` and the event is then delivered;
// the books balance; the overview fits a phone.
// Each page is loaded with no console error, no uncaught exception and no CSP violation (which
// chromium reports as console errors). Prints one line per check and a screenshot's path per
// page; exits 1 when a check failed.

import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`console.mjs: ${name} is not set (run through ctest)`);
    process.exit(2);
  }
  return v;
};
// playwright-core as `npm ci` installed it in the build tree (the fixture browser_npm).
const { chromium } = createRequire(join(env('SLUICE_BROWSER_NODE_DIR'), 'package.json'))('playwright-core');
const base = env('SLUICE_ADMIN_URL');
const operatorToken = env('SLUICE_OPERATOR_TOKEN');
const viewerToken = env('SLUICE_VIEWER_TOKEN');
const eventId = env('SLUICE_EVENT_ID');
const deadEventId = env('SLUICE_DEAD_EVENT_ID');
const deadLetterId = env('SLUICE_DEAD_LETTER_ID');
const shots = env('SLUICE_SCREENSHOT_DIR');
const overviewSeen = env('SLUICE_OVERVIEW_SEEN_FILE');
const WAIT_MS = 90000; // an upper bound for what the pipeline has to do, not a timing check

let failures = 0;
let passes = 0;
function check(ok, what) {
  if (ok) passes++;
  else failures++;
  console.log(`${ok ? 'ok' : 'FAIL'} - ${what}`);
}

/** Runs `step`; an exception (a selector that never appeared) is a failed check, not a crash. */
async function step(what, fn) {
  try {
    await fn();
  } catch (e) {
    check(false, `${what}: ${e.message.split('\n')[0]}`);
  }
}

mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.SLUICE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking'],
});

/** A fresh tab (its own sessionStorage) that records console errors (but those matching
 * `expected`, such as the 401 a refused token gets) and page errors. */
async function newTab(name, viewport = { width: 1280, height: 900 }, expected = null) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !(expected && expected.test(m.text()))) page.problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.tabName = name;
  return page;
}

/** Saves a full-page screenshot as <dir>/<name>.png and prints its path. */
async function shoot(page, name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

/** Checks that the tab met no console error, page error or CSP violation so far. */
function clean(page, where) {
  check(page.problems.length === 0, `${where}: no console errors, page errors or CSP violations`
    + (page.problems.length ? ` (${page.problems.join(' | ')})` : ''));
  page.problems.length = 0;
}

async function signIn(page, token) {
  await page.goto(base);
  await page.waitForSelector('#token');
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
}

/** Reloads `hash` until `pred(page)` holds (WAIT_MS at most). */
async function until(page, hash, pred, what) {
  const end = Date.now() + WAIT_MS;
  const url = `${base}#/${hash}`;
  for (;;) {
    if (page.url() === url) await page.reload();
    else await page.goto(url);
    await page.waitForLoadState('networkidle');
    if (await pred(page)) return true;
    if (Date.now() > end) throw new Error(`${what}: not within ${WAIT_MS / 1000} s`);
    await page.waitForTimeout(1000);
  }
}

// ---- a wrong token is refused ----
const stranger = await newTab('stranger', undefined, /status of 401 \(Unauthorized\)/);
await step('wrong token', async () => {
  await signIn(stranger, 'not-a-token-of-this-console');
  await stranger.waitForFunction(() => document.getElementById('login-message').textContent !== '');
  const message = await stranger.textContent('#login-message');
  check(/not valid/.test(message), `a wrong token is refused ("${message}")`);
  check(await stranger.isHidden('#nav'), 'after a refused token no page is reachable (no navigation)');
  await stranger.goto(`${base}#/overview`);
  await stranger.waitForSelector('#login-form');
  check(stranger.url().includes('#/login'), 'without a token the overview sends to the sign-in');
  await shoot(stranger, 'login-refused');
  clean(stranger, 'sign-in page');
});

// ---- the operator ----
const op = await newTab('operator');
await step('operator sign-in', async () => {
  await signIn(op, operatorToken);
  await op.waitForSelector('#who:not([hidden])');
  check((await op.textContent('#who-name')).includes('operator'), 'the operator is signed in as operator');
});

await step('overview', async () => {
  await op.waitForSelector('#overview .node');
  // Rates come from two scrapes while the test's sender posts charges: wait for one above 0.
  await op.waitForFunction(() => [...document.querySelectorAll('#overview .rate-in, #overview .rate-out')]
    .some((el) => parseFloat(el.textContent) > 0), null, { timeout: WAIT_MS, polling: 500 });
  const rates = await op.$$eval('#overview [data-stage]', (nodes) => nodes.map((n) =>
    `${n.dataset.stage} ${n.querySelector('.rate-in') ? n.querySelector('.rate-in').textContent : '-'}`));
  check(true, `the overview shows non-zero rates (${rates.join(', ')})`);
  const ingress = await op.textContent('#overview [data-stage="ingress"]');
  check(!/not reported/.test(ingress), 'the overview reports the ingress');
  check((await op.$$('#overview [data-destination]')).length === 2, 'the overview shows both destinations');
  check(Number((await op.textContent('[data-counter="accepted"] .tile-value')).replace(/,/g, '')) > 0,
    'today\'s counters show accepted events');
  await shoot(op, 'overview');
  clean(op, 'overview');
});
writeFileSync(overviewSeen, 'seen\n'); // the sender stops: the books can settle

await step('event search and timeline', async () => {
  await op.goto(`${base}#/events`);
  await op.waitForSelector('#event-search');
  await op.fill('#event-search input[name=q]', eventId);
  await op.click('#event-search button[type=submit]');
  await op.waitForSelector(`#event-results a.event-link`);
  const ids = await op.$$eval('#event-results a.event-link', (as) => as.map((a) => a.textContent));
  check(ids.length > 0 && ids.every((id) => id === eventId), `searching ${eventId} finds only that event`);
  await shoot(op, 'events-search');
  await op.click('#event-results a.event-link');
  await op.waitForSelector('#timeline li');
  const stagesSeen = await op.$$eval('#timeline li[data-kind=stage]', (lis) => lis.map((li) => li.dataset.stage));
  for (const st of ['validate', 'transform', 'route', 'deliver'])
    check(stagesSeen.includes(st), `the timeline shows ${st}`);
  const deliveries = await op.$$eval('#timeline li[data-stage=deliver]', (lis) => lis.map((li) => li.textContent));
  check(deliveries.length >= 2 && deliveries.every((t) => /HTTP 2\d\d/.test(t) && / ms/.test(t)),
    'each delivery attempt shows its status and latency');
  await shoot(op, 'event');
  clean(op, 'events');
});

await step('books', async () => {
  await op.goto(`${base}#/books`);
  await op.waitForSelector('#books-headline');
  await shoot(op, 'books');
  clean(op, 'books');
});

await step('destinations', async () => {
  await op.goto(`${base}#/destinations`);
  await op.waitForSelector('#destinations [data-action]');
  check((await op.$$('#destinations [data-action=pause]')).length === 2, 'an operator can pause each destination');
  await shoot(op, 'destinations');
  await op.click('#destinations [data-action=pause][data-destination=crm]');
  await op.waitForSelector('#destinations [data-action=resume][data-destination=crm]', { timeout: WAIT_MS });
  const row = await op.textContent('#destinations tr:has([data-destination=crm])');
  check(/by olivia/.test(row), `a paused destination says who paused it (${row.replace(/\s+/g, ' ').trim()})`);
  await shoot(op, 'destinations-paused');
  await op.click('#destinations [data-action=resume][data-destination=crm]');
  await op.waitForSelector('#destinations [data-action=pause][data-destination=crm]', { timeout: WAIT_MS });
  check(true, 'a paused destination is resumed');
  clean(op, 'destinations');
});

// ---- the viewer: the same pages, no action ----
const viewer = await newTab('viewer');
await step('viewer', async () => {
  await signIn(viewer, viewerToken);
  await viewer.waitForSelector('#who:not([hidden])');
  check((await viewer.textContent('#who-name')).includes('viewer'), 'the viewer is signed in as viewer');
  await viewer.goto(`${base}#/dead-letters/${deadLetterId}`);
  await viewer.waitForSelector('#dl-status');
  check(await viewer.$('#replay') === null && await viewer.$('#discard') === null,
    'a viewer sees no replay or discard button');
  await shoot(viewer, 'dead-letter-viewer');
  await viewer.goto(`${base}#/dead-letters`);
  await viewer.waitForSelector('#dl-results');
  check(await viewer.$('#bulk-dry-run') === null, 'a viewer sees no bulk replay');
  await viewer.goto(`${base}#/destinations`);
  await viewer.waitForSelector('#destinations table');
  check(await viewer.$('#destinations [data-action]') === null, 'a viewer sees no pause or resume');
  clean(viewer, 'viewer pages');
});

// ---- the operator replays the dead letter ----
await step('dead letter replay', async () => {
  await op.goto(`${base}#/dead-letters?status=new`);
  await op.waitForSelector('#dl-results');
  check(await op.$(`#dl-results a[href="#/dead-letters/${deadLetterId}"]`) !== null,
    'the dead letter is listed as new');
  await op.click('#bulk-dry-run');
  await op.waitForSelector('#bulk-count', { timeout: WAIT_MS });
  const count = await op.textContent('#bulk-count');
  check(/^1 dead letters match/.test(count), `bulk replay asks for confirmation with the dry run's count ("${count}")`);
  await shoot(op, 'dead-letters');
  await op.click('#bulk-replay button:has-text("Cancel")');
  await op.goto(`${base}#/dead-letters/${deadLetterId}`);
  await op.waitForSelector('#replay');
  check((await op.textContent('#dl-status')) === 'new', 'the dead letter is new');
  check((await op.textContent('#dl-reason')).length > 0, 'the dead letter shows its reason');
  await shoot(op, 'dead-letter');
  await op.check('#dry-run');
  await op.click('#replay');
  await op.waitForSelector('#action-result code');
  check((await op.textContent('#dl-status')) === 'new', 'a dry run leaves the dead letter new');
  await op.uncheck('#dry-run');
  await op.click('#replay');
  await op.waitForFunction(() => document.getElementById('dl-status').textContent === 'replayed',
    null, { timeout: WAIT_MS });
  check(true, 'the replayed dead letter turns replayed');
  await shoot(op, 'dead-letter-replayed');
  await until(op, `events/${encodeURIComponent(deadEventId)}`,
    async (p) => (await p.$$eval('#timeline li[data-stage=deliver]', (lis) => lis.map((li) => li.textContent)))
      .some((t) => /warehouse/.test(t) && /delivered/.test(t)), 'delivery after the replay');
  const kinds = await op.$$eval('#timeline li', (lis) => lis.map((li) => li.dataset.kind));
  check(kinds.includes('dead_letter') && kinds.includes('replay'),
    'the event\'s timeline shows the dead letter and the replay');
  check(true, 'the replayed event is then delivered to the warehouse');
  await shoot(op, 'event-replayed');
  clean(op, 'dead letters');
});

// ---- the books balance once reconcile has counted the replay's delivery ----
await step('books balance', async () => {
  await until(op, 'books', async (p) => {
    const text = await p.textContent('#books-headline');
    return /^Books balance/.test(text) && / 0 dead-lettered, 0 pending/.test(text);
  }, 'the books balance with nothing dead-lettered or pending');
  check(true, `the books balance (${(await op.textContent('#books-headline')).trim()})`);
  await shoot(op, 'books-balance');
  clean(op, 'books');
});

// ---- a phone ----
const phone = await newTab('phone', { width: 390, height: 844 });
await step('phone', async () => {
  await signIn(phone, viewerToken);
  await phone.waitForSelector('#overview .node');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  check(!overflow, 'the overview fits a phone\'s width');
  await shoot(phone, 'overview-phone');
  clean(phone, 'phone');
});

await browser.close();
console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
