// Headless-browser test of the Modelgate dashboard (/ui).
//
// Run by scripts/ui-tests.sh, which starts the gateway (mock provider, master
// key, the models below) and sets:
//   GATEWAY_URL, MASTER_KEY, CHROMIUM, UI_ARTIFACTS, SCREENSHOT_DIR (optional)
//
// 1. Drives real traffic through /v1/chat/completions: virtual keys in teams
//    with budgets, successes, streams, failovers, upstream errors and a stream
//    that breaks; waits (bounded) until the log writer has flushed it.
// 2. In Chromium at 1366x768: logs in (a wrong key first), checks the
//    overview's cards and SVG charts against that traffic, the breakdowns,
//    the request log and one request's attempts and routing decision, keys and
//    budgets, the time range, a revoked session, and that the page logged no
//    console error and threw nothing.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const GW = required('GATEWAY_URL');
const MASTER = required('MASTER_KEY');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.UI_ARTIFACTS || '';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const TIMEOUT_MS = 15000;

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`dashboard.test: ${name} is not set (run scripts/ui-tests.sh)`);
    process.exit(2);
  }
  return v;
}

let step = '';
function log(msg) {
  step = msg;
  console.log(`ui-test: ${msg}`);
}

function check(cond, msg) {
  if (!cond) throw new Error(`check failed (${step}): ${msg}`);
}

function eq(actual, expected, msg) {
  check(actual === expected, `${msg}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

// ------------------------------------------------------------------ traffic

async function call(method, path, key, body) {
  const headers = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(GW + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) {
    json = null;
  }
  return { status: r.status, json, text };
}

async function admin(path, body) {
  const r = await call('POST', path, MASTER, body);
  check(r.status === 201, `POST ${path}: ${r.status} ${r.text}`);
  return r.json;
}

function chat(model, { stream = false, words = 'Summarise the incident report.' } = {}) {
  const body = { model, max_tokens: 300, messages: [{ role: 'user', content: words }] };
  if (stream) body.stream = true;
  return body;
}

async function completion(key, model, want, opts) {
  const r = await call('POST', '/v1/chat/completions', key, chat(model, opts));
  check(r.status === want, `${model}: HTTP ${r.status}, want ${want}: ${r.text.slice(0, 300)}`);
  if (opts && opts.stream) check(r.text.includes('data: '), `${model}: not a stream`);
  return r;
}

/** Runs `jobs` (functions returning promises) at most `n` at a time. */
async function pool(n, jobs) {
  const queue = jobs.slice();
  const worker = async () => {
    while (queue.length) await queue.shift()();
  };
  await Promise.all(Array.from({ length: n }, worker));
}

async function driveTraffic() {
  log('creating teams and keys');
  const platform = await admin('/admin/teams', { name: 'platform', max_budget_usd: 0.05, soft_budget_usd: 0.04, budget_period: 'monthly' });
  const research = await admin('/admin/teams', { name: 'research', max_budget_usd: 1, budget_period: 'monthly' });
  const checkout = await admin('/admin/keys', { name: 'checkout-service', team: 'platform', rpm: 600, tpm: 200000, max_budget_usd: 0.01, soft_budget_usd: 0.005, budget_period: 'daily' });
  const evals = await admin('/admin/keys', { name: 'nightly-evals', team: 'research', models: ['claude-sonnet', 'mock/*'], max_budget_usd: 0.5, budget_period: 'weekly' });
  const notebook = await admin('/admin/keys', { name: 'notebook' });
  await admin('/admin/keys', { name: 'ops-admin', role: 'admin' });

  log('driving traffic through /v1/chat/completions');
  const jobs = [];
  const add = (times, fn) => {
    for (let i = 0; i < times; i++) jobs.push(fn);
  };
  add(12, () => completion(checkout.key, 'gpt-4o-mini', 200));
  add(6, () => completion(checkout.key, 'gpt-4o-mini-stream', 200, { stream: true }));
  add(4, () => completion(evals.key, 'claude-sonnet', 200));
  add(4, () => completion(evals.key, 'claude-sonnet', 200, { stream: true }));
  add(4, () => completion(evals.key, 'mock/error-500', 502));
  add(2, () => completion(MASTER, 'mock/echo', 200));
  await pool(4, jobs);
  // Failovers one at a time (the first deployment always fails).
  for (let i = 0; i < 3; i++) await completion(notebook.key, 'support-bot', 200);
  // A stream that breaks after its first content: 200, then an error event.
  const broken = await completion(notebook.key, 'mock/stream-error', 200, { stream: true });
  check(broken.text.includes('"error"'), 'the broken stream ends with an error event');
  const total = 12 + 6 + 4 + 4 + 4 + 2 + 3 + 1;
  const errors = 4 + 1;

  log(`waiting until the log writer has flushed ${total} requests`);
  const deadline = Date.now() + 20000;
  for (;;) {
    const r = await call('GET', '/admin/stats', MASTER);
    check(r.status === 200, `GET /admin/stats: ${r.status} ${r.text}`);
    if (r.json.totals.requests === total) break;
    check(Date.now() < deadline, `the log holds ${r.json.totals.requests} of ${total} requests after 20 s`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return { total, errors, platform, research, checkout, evals, notebook };
}

// ------------------------------------------------------------------ browser

async function main() {
  log(`launching ${CHROMIUM}`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const problems = [];
  let expectAuthErrors = false;
  try {
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    const expected = (text) => expectAuthErrors && /status of 40[13]/.test(text);
    page.on('console', (m) => {
      if (m.type() === 'error' && !expected(m.text())) problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure() ? r.failure().errorText : ''}`));
    page.on('response', (r) => {
      if (r.status() >= 400 && !(expectAuthErrors && [401, 403].includes(r.status()))) {
        problems.push(`HTTP ${r.status()} for ${r.url()}`);
      }
    });
    const shot = async (name) => {
      if (ARTIFACTS) {
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
      }
    };
    const text = (sel) => page.locator(sel).first().innerText();
    const noBrokenText = async () => {
      // Captured payloads (<pre>) are the API's own JSON and may hold a null.
      const body = await page.evaluate(() => {
        const c = document.body.cloneNode(true);
        c.querySelectorAll('pre, script, noscript').forEach((e) => e.remove());
        return c.textContent;
      });
      for (const bad of ['NaN', 'undefined', 'null', '[object Object]', 'Infinity']) {
        check(!new RegExp(`\\b${bad.replace(/[[\]]/g, '\\$&')}\\b`).test(body), `"${bad}" is shown on the page`);
      }
    };

    // --- login ---------------------------------------------------------------
    log('the page without a key shows only the login form');
    await page.goto(`${GW}/ui`);
    await page.waitForSelector('#login-form', { state: 'visible' });
    check(await page.locator('#app').isHidden(), 'the dashboard is hidden before login');

    log('a wrong key is refused with a message');
    expectAuthErrors = true;
    await page.fill('#login-key', 'sk-mg-not-a-real-key');
    await page.click('#login-submit');
    await page.waitForSelector('#login-error', { state: 'visible' });
    check((await text('#login-error')).includes('rejected'), `login error says the key was rejected: ${await text('#login-error')}`);
    expectAuthErrors = false;

    // --- empty states, before any traffic -----------------------------------
    log('a gateway without traffic: empty states, no errors');
    await page.fill('#login-key', MASTER);
    await page.click('#login-submit');
    await page.waitForSelector('[data-card="requests"]');
    eq(await text('[data-card="requests"] .value'), '0', 'no requests yet');
    eq(await text('[data-card="p50"] .value'), '—', 'no latency yet');
    for (const chartName of ['requests', 'latency', 'spend', 'tokens']) {
      check(await page.locator(`[data-empty-chart="${chartName}"]`).isVisible(), `empty ${chartName} chart says so`);
    }
    check(await page.locator('[data-empty="top-models"]').isVisible(), 'no top models yet');
    await noBrokenText();
    await shot('empty-overview');
    await page.click('nav a[data-view="requests"]');
    await page.waitForSelector('[data-empty="requests"]');
    await page.click('nav a[data-view="keys"]');
    await page.waitForSelector('[data-empty="keys"]');
    check(await page.locator('[data-empty="teams"]').isVisible(), 'no teams yet');
    await noBrokenText();
    await page.click('#signout');
    await page.waitForSelector('#login-form', { state: 'visible' });

    const t = await driveTraffic();

    log('a key without the admin role is refused with a message');
    expectAuthErrors = true;
    await page.fill('#login-key', t.notebook.key);
    await page.click('#login-submit');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.includes('no admin rights'));
    expectAuthErrors = false;

    log('logging in with the master key');
    await page.fill('#login-key', MASTER);
    await page.click('#login-submit');
    // Back on the view it was signed out from.
    await page.waitForSelector('table[data-table="keys"]');
    await page.click('nav a[data-view="overview"]');
    await page.waitForSelector('svg[data-chart="requests"]');

    // --- overview ------------------------------------------------------------
    log('overview: cards and charts from the traffic');
    eq(await text('[data-card="requests"] .value'), String(t.total), 'requests card');
    eq(await text('[data-card="errors"] .value'), String(t.errors), 'errors card');
    check((await text('[data-card="errors"] .sub')).includes('%'), 'error rate shown');
    check(/ms|s$/.test(await text('[data-card="p50"] .value')), 'p50 shown');
    check(/ms|s$/.test(await text('[data-card="p95"] .value')), 'p95 shown');
    check((await text('[data-card="spend"] .value')).startsWith('$0.'), 'spend shown');
    const bars = await page.$$eval('svg[data-chart="requests"] rect.bar', (els) => els.map((e) => [e.dataset.series, Number(e.dataset.value)]));
    check(bars.length >= 2, `request bars drawn (${bars.length})`);
    const sum = (series) => bars.filter(([s]) => s === series).reduce((a, [, v]) => a + v, 0);
    eq(sum('ok') + sum('errors'), t.total, 'request bars add up to the traffic');
    eq(sum('errors'), t.errors, 'error bars');
    for (const series of ['p50', 'p95']) {
      const d = await page.getAttribute(`svg[data-chart="latency"] path.line[data-series="${series}"]`, 'd');
      check(d && d.startsWith('M'), `latency ${series} line drawn`);
      check(await page.locator(`svg[data-chart="latency"] circle[data-series="${series}"]`).count() >= 1, `latency ${series} points`);
    }
    check(await page.locator('svg[data-chart="spend"] rect.bar').count() >= 1, 'spend bars drawn');
    check(await page.locator('svg[data-chart="tokens"] rect.bar').count() >= 2, 'token bars drawn');
    check(await page.locator('svg[data-chart] text').count() > 10, 'axes are labelled');
    const tooltip = await page.locator('svg[data-chart="requests"] rect.hit title').last().textContent();
    check(/Succeeded: \d+/.test(tooltip) && /Errors: \d+/.test(tooltip), `bucket tooltip: ${tooltip}`);
    const topModels = await page.$$eval('table[data-table="top-models"] tbody tr td:first-child', (els) => els.map((e) => e.textContent));
    check(topModels.includes('claude-sonnet') && topModels.includes('gpt-4o-mini'), `top models: ${topModels}`);
    eq(topModels[0], 'claude-sonnet', 'dearest model first');
    const deployments = await page.$$eval('table[data-table="deployments"] tbody tr td:first-child', (els) => els.map((e) => e.textContent));
    check(deployments.includes('primary-east') && deployments.includes('backup-west'), `live deployments: ${deployments}`);
    // Laid out for a laptop: nothing wider than the window.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page is ${overflow}px wider than a 1366px window`);
    await noBrokenText();
    await page.mouse.move(0, 0); // no hover highlight in the screenshots
    await shot('overview');
    if (SCREENSHOT_DIR) {
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard.png'), fullPage: true });
      log(`wrote ${join(SCREENSHOT_DIR, 'dashboard.png')}`);
    }

    // --- breakdowns ----------------------------------------------------------
    log('breakdowns by model, provider, team and key');
    await page.click('nav a[data-view="breakdowns"]');
    await page.waitForSelector('svg[data-chart="breakdown"]');
    const modelRows = await page.$$eval('table[data-table="breakdown"] tbody tr td:first-child', (els) => els.map((e) => e.textContent));
    for (const m of ['gpt-4o-mini', 'gpt-4o-mini-stream', 'claude-sonnet', 'support-bot', 'mock/error-500', 'mock/echo', 'mock/stream-error']) {
      check(modelRows.includes(m), `model breakdown has ${m}: ${modelRows}`);
    }
    check(await page.locator('svg[data-chart="breakdown"] rect.bar').count() >= 5, 'breakdown bars');
    const rowOf = async (label) => page.locator('table[data-table="breakdown"] tbody tr', { has: page.locator(`td:first-child:text-is("${label}")`) });
    const failing = await rowOf('mock/error-500');
    const cells = await failing.locator('td').allInnerTexts();
    eq(cells[1], '4', 'mock/error-500 requests');
    eq(cells[3], '100%', 'mock/error-500 error rate');
    for (const [dim, want] of [['provider', ['mock']], ['team', ['platform', 'research', '(no team)']], ['key', ['checkout-service', 'nightly-evals', 'notebook', '(master key / no key)']]]) {
      await page.click(`.tabs button[data-dim="${dim}"]`);
      await page.waitForSelector(`.tabs button[data-dim="${dim}"][aria-selected="true"]`);
      const rows = await page.$$eval('table[data-table="breakdown"] tbody tr td:first-child', (els) => els.map((e) => e.textContent));
      for (const w of want) check(rows.includes(w), `${dim} breakdown has ${w}: ${rows}`);
    }
    await page.click('.seg button[data-metric="spend"]');
    await page.waitForSelector('.seg button[data-metric="spend"][aria-pressed="true"]');
    check(await page.locator('svg[data-chart="breakdown"] rect.bar').count() >= 3, 'spend-by-key bars');
    await noBrokenText();
    await shot('breakdowns');
    // Drill down: a team's requests.
    await page.click('.tabs button[data-dim="team"]');
    await (await rowOf('platform')).click();
    await page.waitForSelector('table[data-table="requests"]');
    check(page.url().includes('team='), `drill-down filters the request log: ${page.url()}`);
    eq(await page.locator('table[data-table="requests"] tbody tr').count(), 18, "the platform team's requests");

    // --- request log and detail ---------------------------------------------
    log('request log: filters and pages');
    await page.click('nav a[data-view="requests"]');
    await page.waitForFunction(() => !location.hash.includes('team='));
    await page.waitForSelector('table[data-table="requests"]');
    await page.click('button:text-is("Clear")');
    await page.waitForFunction((n) => document.querySelectorAll('table[data-table="requests"] tbody tr').length === n, t.total);
    await page.fill('input[name="status"]', '502');
    await page.click('button:text-is("Apply")');
    await page.waitForFunction(() => location.hash.includes('status=502'));
    await page.waitForFunction(() => document.querySelectorAll('table[data-table="requests"] tbody tr').length === 4);
    check((await text('table[data-table="requests"] tbody tr .badge')).startsWith('502'), 'status badge');
    await page.fill('input[name="status"]', '');
    await page.fill('input[name="model"]', 'mock/stream-error');
    await page.click('button:text-is("Apply")');
    await page.waitForFunction(() => document.querySelectorAll('table[data-table="requests"] tbody tr').length === 1);
    const brokenBadge = await text('table[data-table="requests"] tbody tr .badge');
    check(brokenBadge.startsWith('200 · '), `a broken stream keeps its 200 and is flagged: ${brokenBadge}`);
    check(await page.locator('table[data-table="requests"] tbody tr .badge.warn').count() === 1, 'flagged as a warning');
    await page.fill('input[name="model"]', 'support-bot');
    await page.click('button:text-is("Apply")');
    await page.waitForFunction(() => document.querySelectorAll('table[data-table="requests"] tbody tr').length === 3);
    await noBrokenText();
    await shot('requests');

    log("a request's detail: attempts and routing decision");
    const failover = page.locator('table[data-table="requests"] tbody tr', { has: page.locator('td:last-child:text-is("2")') }).first();
    const id = await failover.getAttribute('data-id');
    await failover.click();
    await page.waitForSelector('[data-section="routing"]');
    eq(await text('[data-request-id]'), id, 'detail of the clicked request');
    const attempts = await page.$$eval('table[data-table="attempts"] tbody tr', (rows) => rows.map((r) => Array.from(r.cells).map((c) => c.textContent)));
    eq(attempts.length, 2, 'two attempts');
    eq(attempts[0][1], 'primary-east', 'first attempt deployment');
    eq(attempts[0][2], 'error', 'first attempt outcome');
    eq(attempts[0][3], 'upstream_error', 'first attempt error class');
    eq(attempts[1][1], 'backup-west', 'second attempt deployment');
    eq(attempts[1][2], 'ok', 'second attempt outcome');
    const routing = await text('[data-routing="summary"]');
    check(routing.includes('Served by backup-west on attempt 2 of 2'), `routing summary: ${routing}`);
    check(await page.locator('svg[data-chart="attempts"] rect.bar').count() === 2, 'attempt timeline');
    const detail = await page.locator('#view').innerText();
    for (const want of ['support-bot', 'backup-west', 'notebook', 'Time to first token', 'Input tokens']) {
      check(detail.includes(want), `detail shows ${want}`);
    }
    await noBrokenText();
    await page.mouse.move(0, 0);
    await shot('request');
    if (SCREENSHOT_DIR) {
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard-request.png'), fullPage: true });
      log(`wrote ${join(SCREENSHOT_DIR, 'dashboard-request.png')}`);
    }
    await page.click('a.back');
    await page.waitForSelector('table[data-table="requests"]');

    // --- keys and budgets ----------------------------------------------------
    log('keys and budgets with their usage');
    await page.click('nav a[data-view="keys"]');
    await page.waitForSelector('table[data-table="keys"]');
    eq(await page.locator('table[data-table="keys"] tbody tr').count(), 4, 'every key listed');
    const checkoutRow = page.locator(`table[data-table="keys"] tbody tr[data-key-id="${t.checkout.id}"]`);
    const meter = await checkoutRow.locator('.meter .txt').innerText();
    check(/^\$0\.\d+ \/ \$0\.01 daily \(\d+(\.\d)?%\)$/.test(meter), `checkout-service budget meter: ${meter}`);
    const width = await checkoutRow.locator('.meter .fill').evaluate((e) => e.getBoundingClientRect().width);
    check(width > 0, 'the budget bar is filled');
    const adminRow = await page.locator('table[data-table="keys"] tbody tr', { hasText: 'ops-admin' }).innerText();
    check(adminRow.includes('admin') && adminRow.includes('no budget'), `admin key row: ${adminRow}`);
    const teams = await page.$$eval('table[data-table="teams"] tbody tr', (rows) => rows.map((r) => r.innerText));
    check(teams.length === 2 && teams.some((r) => r.includes('platform') && r.includes('monthly')), `teams: ${teams}`);
    eq(await text('[data-card="keys"] .value'), '4', 'active keys card');
    await noBrokenText();
    await shot('keys');

    // --- time range ---------------------------------------------------------
    log('time range: 7 days by hour, 30 days by day');
    await page.click('nav a[data-view="overview"]');
    await page.waitForSelector('svg[data-chart="requests"]');
    await page.selectOption('#range', '7d');
    await page.waitForFunction(() => document.querySelectorAll('svg[data-chart="requests"] rect.hit').length >= 168);
    eq(await text('[data-card="requests"] .value'), String(t.total), 'requests over 7 days');
    await page.selectOption('#range', '30d');
    await page.waitForFunction(() => {
      const n = document.querySelectorAll('svg[data-chart="requests"] rect.hit').length;
      return n >= 30 && n <= 32;
    });
    eq(await text('[data-card="requests"] .value'), String(t.total), 'requests over 30 days');
    await page.selectOption('#range', '24h');
    await page.waitForFunction(() => {
      const n = document.querySelectorAll('svg[data-chart="requests"] rect.hit').length;
      return n >= 24 && n <= 25;
    });
    // Charts follow the window width.
    await page.setViewportSize({ width: 1000, height: 768 });
    await page.waitForFunction(() => {
      const svg = document.querySelector('svg[data-chart="requests"]');
      return svg != null && Number(svg.getAttribute('width')) < 500;
    });
    await page.setViewportSize({ width: 1366, height: 768 });

    // --- the session ---------------------------------------------------------
    log('a reload keeps the session; sign out forgets the key');
    await page.reload();
    await page.waitForSelector('[data-card="requests"]');
    await page.click('#signout');
    await page.waitForSelector('#login-form', { state: 'visible' });
    await page.reload();
    await page.waitForSelector('#login-form', { state: 'visible' });
    check(await page.evaluate(() => sessionStorage.getItem('modelgate.adminKey')) === null, 'the key is gone after sign out');

    log('a key that stops working sends the operator back to the login form');
    expectAuthErrors = true;
    await page.evaluate(() => sessionStorage.setItem('modelgate.adminKey', 'sk-mg-revoked-or-rotated'));
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.includes('no longer accepts'));
    expectAuthErrors = false;

    check(problems.length === 0, `the browser reported problems:\n  ${problems.join('\n  ')}`);
    await context.close();
  } catch (e) {
    if (problems.length) console.error(`ui-test: browser problems so far:\n  ${problems.join('\n  ')}`);
    throw e;
  } finally {
    await browser.close();
  }
  log('all checks passed');
}

main().catch((e) => {
  console.error(`ui-test: FAILED: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
