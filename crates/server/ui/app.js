// Modelgate dashboard: plain JavaScript, no dependencies, no build step,
// served from the gateway binary. It reads the admin API with the key the
// operator typed (kept in sessionStorage for this tab only).
//
// Safety rule: every value from the API reaches the DOM as text (text nodes,
// textContent, attributes), never as HTML.
'use strict';

const KEY_STORAGE = 'modelgate.adminKey';
const RANGE_STORAGE = 'modelgate.range';
const AUTO_REFRESH_MS = 30000;
const DAY = 86400000;
const RANGES = {
  '24h': { ms: DAY, bucket: 'hour', label: 'last 24 hours' },
  '7d': { ms: 7 * DAY, bucket: 'hour', label: 'last 7 days' },
  '30d': { ms: 30 * DAY, bucket: 'day', label: 'last 30 days' },
  '90d': { ms: 90 * DAY, bucket: 'day', label: 'last 90 days' },
};
const VIEWS = {
  overview: 'Overview',
  breakdowns: 'Breakdowns',
  requests: 'Requests',
  request: 'Request',
  keys: 'Keys & budgets',
};
const DIMENSIONS = [
  ['model', 'Model'],
  ['provider', 'Provider'],
  ['team', 'Team'],
  ['key', 'Key'],
  ['user', 'User'],
];
const NONE_LABEL = {
  model: '(none)',
  provider: '(none)',
  team: '(no team)',
  key: '(master key / no key)',
  user: '(no user)',
};

const state = {
  key: null,
  range: '24h',
  gen: 0,
  charts: [],
  people: null,
  breakdownDim: 'model',
  breakdownMetric: 'requests',
  timer: null,
};

// ---------------------------------------------------------------- DOM helpers

const $ = (id) => document.getElementById(id);

function setProps(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element; strings among the children become text nodes. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  return append(el, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element. */
function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  return append(el, children);
}

// ---------------------------------------------------------------- formatting

const intFmt = new Intl.NumberFormat(undefined);

function fmtInt(n) {
  return n == null || Number.isNaN(n) ? '—' : intFmt.format(n);
}

function fmtCompact(n) {
  if (n == null || Number.isNaN(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'B';
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  return intFmt.format(Math.round(n * 100) / 100);
}

function fmtUsd(x) {
  if (x == null || Number.isNaN(x)) return '—';
  if (x === 0) return '$0';
  const a = Math.abs(x);
  if (a >= 1000) return '$' + intFmt.format(Math.round(x));
  if (a >= 1) return '$' + x.toFixed(2);
  // Small amounts: two significant digits (LLM calls cost fractions of a cent).
  const digits = Math.min(9, Math.max(2, 1 - Math.floor(Math.log10(a))));
  return '$' + x.toFixed(digits).replace(/(\.\d\d\d*?)0+$/, '$1');
}

const nanosToUsd = (n) => (n == null ? null : n / 1e9);

function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '—';
  if (ms === 0) return '0 ms';
  if (ms >= 10000) return (ms / 1000).toFixed(1) + ' s';
  if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
  if (ms >= 100) return Math.round(ms) + ' ms';
  if (ms >= 10) return (Number.isInteger(ms) ? ms : ms.toFixed(1)) + ' ms';
  return ms.toFixed(2) + ' ms';
}

function fmtPct(r) {
  if (r == null || Number.isNaN(r)) return '—';
  const p = r * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return (p < 10 ? p.toFixed(1) : p.toFixed(0)) + '%';
}

function fmtTime(ms) {
  if (ms == null) return '—';
  return new Date(ms).toLocaleString(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

function fmtDate(ms) {
  if (ms == null) return '—';
  return new Date(ms).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** Axis label of a time bucket: hours in local time, days as UTC dates. */
function fmtBucket(ms, bucketMs, multiDay) {
  const d = new Date(ms);
  if (bucketMs >= DAY) {
    return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
  }
  if (multiDay) {
    return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' +
      d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  }
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

function fmtBucketLong(ms, bucketMs) {
  const d = new Date(ms);
  if (bucketMs >= DAY) {
    return d.toLocaleDateString(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' }) + ' (UTC)';
  }
  const end = new Date(ms + bucketMs);
  return d.toLocaleString(undefined, { weekday: 'short', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) +
    '–' + end.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

// ---------------------------------------------------------------- API

class AuthError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET an admin endpoint; errors carry the gateway's own message. */
async function api(path) {
  const headers = { Accept: 'application/json' };
  if (state.key) headers.Authorization = 'Bearer ' + state.key;
  let resp;
  try {
    resp = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch (e) {
    throw new Error('The gateway did not answer: ' + (e && e.message ? e.message : 'network error') + '.');
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (resp.ok && body) return body;
  const msg = body && body.error && body.error.message
    ? body.error.message
    : 'The gateway answered HTTP ' + resp.status + '.';
  if (resp.status === 401 || resp.status === 403) throw new AuthError(resp.status, msg);
  throw new Error(msg);
}

function rangeParams() {
  const r = RANGES[state.range] || RANGES['24h'];
  const now = Date.now();
  return { from: Math.floor((now - r.ms) / 1000), to: Math.ceil(now / 1000), bucket: r.bucket };
}

function statsUrl(top) {
  const r = rangeParams();
  const q = new URLSearchParams({ from: String(r.from), to: String(r.to), bucket: r.bucket, top: String(top || 10) });
  return '/admin/stats?' + q.toString();
}

/** Names of keys, teams and users, by id (cached until Refresh). */
async function loadPeople() {
  if (state.people) return state.people;
  const [keys, teams, users] = await Promise.all([
    api('/admin/keys'), api('/admin/teams'), api('/admin/users'),
  ]);
  const people = { keys: new Map(), teams: new Map(), users: new Map(), keyRows: keys.data, teamRows: teams.data, userRows: users.data };
  for (const k of keys.data) people.keys.set(k.id, k.name || k.key_prefix);
  for (const t of teams.data) people.teams.set(t.id, t.name);
  for (const u of users.data) people.users.set(u.id, u.name);
  state.people = people;
  return people;
}

// ---------------------------------------------------------------- charts

/** A chart slot: drawn (and redrawn on resize) at its container's width. */
function chart(draw) {
  const el = h('div', { class: 'chart' });
  state.charts.push({ el, draw });
  return el;
}

function redrawCharts() {
  state.charts = state.charts.filter((c) => c.el.isConnected);
  for (const c of state.charts) {
    const width = Math.max(280, Math.floor(c.el.clientWidth || 600));
    c.el.replaceChildren(c.draw(width));
  }
}

function niceStep(raw) {
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

/** Round axis ticks from 0 up to at least `max`. */
function niceTicks(max, count, integer) {
  if (!(max > 0)) return [0, 1];
  let step = niceStep(max / count);
  if (integer) step = Math.max(1, Math.ceil(step));
  const top = Math.ceil(max / step - 1e-9) * step;
  const out = [];
  for (let i = 0; i * step <= top + step * 1e-9; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

function legend(series) {
  return h('div', { class: 'legend' },
    series.map((sr) => h('span', null, h('span', { class: 'sw ' + sr.cls }), sr.label)));
}

/**
 * A chart over time buckets.
 * o = { name, title, points, bucketMs, kind: 'bar' | 'line', stacked, integer,
 *       fmt, series: [{ key, label, cls, get(point) -> number | null }] }
 */
function timeChart(o) {
  const hasData = o.points.some((p) => o.series.some((sr) => {
    const v = sr.get(p);
    return v != null && v > 0;
  }));
  const body = hasData
    ? chart((width) => drawTimeChart(width, o))
    : h('div', { class: 'chart' }, h('div', { class: 'empty-chart', 'data-empty-chart': o.name }, o.empty || 'No data in this range'));
  return h('div', { class: 'panel' },
    h('div', { class: 'panel-head' }, h('h2', null, o.title), legend(o.series)),
    body);
}

function drawTimeChart(width, o) {
  const H = o.height || 200;
  const m = { l: 58, r: 12, t: 10, b: 26 };
  const pw = width - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = o.points.length;
  const vals = o.points.map((p) => o.series.map((sr) => sr.get(p)));
  let max = 0;
  for (const v of vals) {
    if (o.stacked) max = Math.max(max, v.reduce((a, b) => a + (b || 0), 0));
    else for (const x of v) if (x != null) max = Math.max(max, x);
  }
  const ticks = niceTicks(max, 4, o.integer);
  const top = ticks[ticks.length - 1] || 1;
  const y = (v) => m.t + ph - (v / top) * ph;
  const bw = pw / Math.max(1, n);
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${H}`, width, height: H, role: 'img',
    'aria-label': o.title, 'data-chart': o.name,
  });
  for (const t of ticks) {
    svg.append(
      s('line', { class: 'gridline', x1: m.l, x2: width - m.r, y1: y(t), y2: y(t) }),
      s('text', { x: m.l - 6, y: y(t) + 4, 'text-anchor': 'end', text: o.fmt(t) }),
    );
  }
  // Dates on the axis only when the hours span more than a day and a bit.
  const multiDay = (n - 1) * o.bucketMs > DAY;
  const labelWidth = o.bucketMs >= DAY ? 64 : multiDay ? 120 : 56;
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(pw / labelWidth))));
  for (let i = 0; i < n; i += every) {
    svg.append(s('text', {
      x: m.l + (i + 0.5) * bw, y: H - 7, 'text-anchor': 'middle',
      text: fmtBucket(o.points[i].start_ms, o.bucketMs, multiDay),
    }));
  }
  svg.append(s('line', { class: 'axis', x1: m.l, x2: width - m.r, y1: m.t + ph, y2: m.t + ph }));
  if (o.kind === 'bar') {
    const gap = Math.min(4, bw * 0.25);
    const w = Math.max(1, bw - gap);
    vals.forEach((v, i) => {
      let acc = 0;
      o.series.forEach((sr, j) => {
        const val = v[j] || 0;
        if (val <= 0) return;
        const y0 = y(acc);
        const y1 = y(acc + val);
        acc += val;
        svg.append(s('rect', {
          class: 'bar ' + sr.cls, x: m.l + i * bw + gap / 2, y: y1, width: w,
          height: Math.max(1, y0 - y1), 'data-series': sr.key, 'data-value': val,
        }));
      });
    });
  } else {
    o.series.forEach((sr, j) => {
      let d = '';
      let pen = false;
      vals.forEach((v, i) => {
        const val = v[j];
        if (val == null) {
          pen = false;
          return;
        }
        d += (pen ? 'L' : 'M') + (m.l + (i + 0.5) * bw).toFixed(1) + ' ' + y(val).toFixed(1);
        pen = true;
      });
      if (d) svg.append(s('path', { class: 'line ' + sr.cls, d, 'data-series': sr.key }));
      vals.forEach((v, i) => {
        const val = v[j];
        if (val == null) return;
        const lonely = (i === 0 || vals[i - 1][j] == null) && (i === n - 1 || vals[i + 1][j] == null);
        if (n <= 48 || lonely) {
          svg.append(s('circle', {
            class: 'dot ' + sr.cls, cx: m.l + (i + 0.5) * bw, cy: y(val), r: 3,
            'data-series': sr.key, 'data-value': val,
          }));
        }
      });
    });
  }
  // Hover targets with a native tooltip per bucket.
  o.points.forEach((p, i) => {
    const lines = [fmtBucketLong(p.start_ms, o.bucketMs)].concat(
      o.series.map((sr, j) => sr.label + ': ' + (vals[i][j] == null ? '—' : o.fmt(vals[i][j]))));
    svg.append(s('rect', { class: 'hit', x: m.l + i * bw, y: m.t, width: bw, height: ph },
      s('title', { text: lines.join('\n') })));
  });
  return svg;
}

/** Horizontal bars: one row per item, label on the left, value on the right. */
function barList(o) {
  return chart((width) => {
    const rows = o.rows;
    const rowH = 24;
    const labelW = Math.min(240, Math.floor(width * 0.32));
    const valueW = 90;
    const H = rows.length * rowH + 4;
    const pw = Math.max(40, width - labelW - valueW - 16);
    const max = Math.max(0, ...rows.map(o.value)) || 1;
    const svg = s('svg', { viewBox: `0 0 ${width} ${H}`, width, height: H, role: 'img', 'aria-label': o.title, 'data-chart': o.name });
    rows.forEach((r, i) => {
      const yy = i * rowH + 2;
      const v = o.value(r);
      let label = o.label(r);
      const maxChars = Math.floor(labelW / 7);
      const full = label;
      if (label.length > maxChars) label = label.slice(0, Math.max(1, maxChars - 1)) + '…';
      svg.append(
        s('text', { class: 'bar-label', x: labelW - 8, y: yy + 16, 'text-anchor': 'end' }, label, s('title', { text: full })),
        s('rect', { class: 'bar ' + o.cls, x: labelW, y: yy + 4, width: Math.max(v > 0 ? 2 : 0, (v / max) * pw), height: rowH - 8, rx: 2, 'data-value': v },
          s('title', { text: full + ': ' + o.fmt(v) })),
        s('text', { class: 'bar-value', x: labelW + Math.max(2, (v / max) * pw) + 6, y: yy + 16 }, o.fmt(v)),
      );
    });
    return svg;
  });
}

// ---------------------------------------------------------------- widgets

function card(name, label, value, sub, bad) {
  return h('div', { class: 'card' + (bad ? ' bad' : ''), 'data-card': name },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value', title: value }, value),
    h('div', { class: 'sub' }, sub || ' '));
}

function panel(title, ...children) {
  return h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, title)), ...children);
}

function table(name, columns, rows, opts) {
  const o = opts || {};
  if (!rows.length) return h('div', { class: 'empty', 'data-empty': name }, o.empty || 'Nothing to show.');
  const head = h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)));
  const body = h('tbody', null, rows.map((r) => {
    const tr = h('tr', null, columns.map((c) => {
      const v = c.cell(r);
      return h('td', { class: [c.num ? 'num' : '', c.trunc ? 'trunc' : ''].join(' ').trim() || null, title: c.trunc && typeof v === 'string' ? v : null }, v);
    }));
    if (o.onRow && (!o.rowEnabled || o.rowEnabled(r))) {
      tr.classList.add('clickable');
      tr.tabIndex = 0;
      tr.addEventListener('click', () => o.onRow(r));
      tr.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') o.onRow(r);
      });
    }
    if (o.rowAttrs) setProps(tr, o.rowAttrs(r));
    return tr;
  }));
  return h('div', { class: 'table-wrap' }, h('table', { 'data-table': name }, h('thead', null, head), body));
}

function statusBadge(r) {
  if (r.status >= 400) return h('span', { class: 'badge err', title: r.error_class || '' }, String(r.status));
  if (r.error_class) return h('span', { class: 'badge warn', title: r.error_message || r.error_class }, r.status + ' · ' + r.error_class);
  return h('span', { class: 'badge ok' }, String(r.status));
}

function budgetMeter(b) {
  const spent = nanosToUsd(b.spend_nanos) || 0;
  if (b.max_budget_nanos == null) {
    return h('div', { class: 'meter' }, h('span', { class: 'txt' }, fmtUsd(spent) + ' ', h('span', { class: 'muted' }, b.budget_period === 'total' ? 'all time · no budget' : b.budget_period + ' · no budget')));
  }
  const used = b.used || 0;
  const soft = b.soft_budget_nanos != null && b.max_budget_nanos > 0 ? b.soft_budget_nanos / b.max_budget_nanos : null;
  const fill = h('div', { class: 'fill' + (used >= 1 ? ' err' : soft != null && used >= soft ? ' warn' : '') });
  fill.style.width = Math.min(100, used * 100).toFixed(1) + '%';
  const track = h('div', { class: 'track', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(used * 100), 'aria-label': 'Budget used' }, fill);
  if (soft != null && soft < 1) {
    const mark = h('div', { class: 'soft', title: 'Soft budget ' + fmtUsd(nanosToUsd(b.soft_budget_nanos)) });
    mark.style.left = (soft * 100).toFixed(1) + '%';
    track.append(mark);
  }
  return h('div', { class: 'meter', 'data-budget': b.id },
    track,
    h('span', { class: 'txt' }, fmtUsd(spent) + ' / ' + fmtUsd(nanosToUsd(b.max_budget_nanos)) + ' ' + b.budget_period + ' (' + fmtPct(used) + ')'));
}

function limitsText(x) {
  const parts = [];
  if (x.rpm != null) parts.push(fmtCompact(x.rpm) + ' rpm');
  if (x.tpm != null) parts.push(fmtCompact(x.tpm) + ' tpm');
  if (x.max_parallel != null) parts.push(x.max_parallel + ' parallel');
  return parts.length ? parts.join(' · ') : 'none';
}

function modelsText(models) {
  if (!models || !models.length) return 'all';
  return models.join(', ');
}

// ---------------------------------------------------------------- views

async function viewOverview() {
  const st = await api(statsUrl(5));
  const t = st.totals;
  const pts = st.series;
  const bms = st.bucket_ms;
  const usd = (v) => fmtUsd(v);
  const node = h('div', { class: 'stack' },
    h('div', { class: 'cards' },
      card('requests', 'Requests', fmtInt(t.requests), fmtCompact(t.input_tokens + t.output_tokens) + ' tokens'),
      card('errors', 'Errors', fmtInt(t.errors), t.requests ? fmtPct(t.error_rate) + ' of requests' : 'no requests', t.errors > 0),
      card('p50', 'Latency p50', fmtMs(t.latency_p50_ms), 'successful requests'),
      card('p95', 'Latency p95', fmtMs(t.latency_p95_ms), fmtInt(t.latency_samples) + ' samples'),
      card('spend', 'Spend', fmtUsd(nanosToUsd(t.cost_nanos)), fmtCompact(t.input_tokens) + ' in · ' + fmtCompact(t.output_tokens) + ' out')),
    h('div', { class: 'grid2' },
      timeChart({
        name: 'requests', title: 'Requests', points: pts, bucketMs: bms, kind: 'bar', stacked: true, integer: true, fmt: fmtCompact,
        empty: 'No requests in this range',
        series: [
          { key: 'ok', label: 'Succeeded', cls: 's-ok', get: (p) => p.requests - p.errors },
          { key: 'errors', label: 'Errors', cls: 's-err', get: (p) => p.errors },
        ],
      }),
      timeChart({
        name: 'latency', title: 'Latency of successful requests', points: pts, bucketMs: bms, kind: 'line', fmt: fmtMs,
        empty: 'No successful requests in this range',
        series: [
          { key: 'p50', label: 'p50', cls: 's-p50', get: (p) => p.latency_p50_ms },
          { key: 'p95', label: 'p95', cls: 's-p95', get: (p) => p.latency_p95_ms },
        ],
      }),
      timeChart({
        name: 'spend', title: 'Spend (USD)', points: pts, bucketMs: bms, kind: 'bar', fmt: usd,
        empty: 'No spend in this range (unpriced models cost $0)',
        series: [{ key: 'spend', label: 'Spend', cls: 's-spend', get: (p) => nanosToUsd(p.cost_nanos) }],
      }),
      timeChart({
        name: 'tokens', title: 'Tokens', points: pts, bucketMs: bms, kind: 'bar', stacked: true, integer: true, fmt: fmtCompact,
        empty: 'No tokens in this range',
        series: [
          { key: 'input', label: 'Input', cls: 's-in', get: (p) => p.input_tokens },
          { key: 'output', label: 'Output', cls: 's-out', get: (p) => p.output_tokens },
        ],
      })),
    h('div', { class: 'grid2' },
      panel('Top models',
        table('top-models', breakdownColumns('model').slice(0, 6), st.breakdowns.model, {
          empty: 'No requests in this range.',
          onRow: (r) => go('requests', { model: r.group }),
          rowEnabled: (r) => r.group != null,
        }),
        h('div', { class: 'more' }, h('a', { href: '#/breakdowns' }, 'All breakdowns →'))),
      panel('Live',
        h('p', { class: 'muted' }, 'In flight now: ', h('strong', { 'data-live': 'in-flight' }, fmtInt(st.live.in_flight))),
        table('deployments', [
          { label: 'Deployment', cell: (d) => d.name, trunc: true },
          { label: 'Provider', cell: (d) => d.provider },
          { label: 'Breaker', cell: (d) => h('span', { class: 'badge ' + (d.breaker === 'closed' ? 'ok' : d.breaker === 'open' ? 'err' : 'warn') }, d.breaker.replace('_', '-')) },
          { label: 'In flight', cell: (d) => fmtInt(d.in_flight), num: true },
        ], st.live.deployments, { empty: 'No configured deployments (only zero-config provider models).' }))));
  return node;
}

function groupLabel(dim, r) {
  if (r.group == null) return NONE_LABEL[dim];
  return r.name || r.group;
}

function breakdownColumns(dim) {
  const cols = [
    { label: DIMENSIONS.find((d) => d[0] === dim)[1], cell: (r) => groupLabel(dim, r), trunc: true },
    { label: 'Requests', cell: (r) => fmtInt(r.requests), num: true },
    { label: 'Errors', cell: (r) => fmtInt(r.errors), num: true },
    { label: 'Error rate', cell: (r) => fmtPct(r.error_rate), num: true },
  ];
  if (dim === 'model' || dim === 'provider') {
    cols.push({ label: 'p50', cell: (r) => fmtMs(r.latency_p50_ms), num: true });
    cols.push({ label: 'p95', cell: (r) => fmtMs(r.latency_p95_ms), num: true });
  }
  cols.push(
    { label: 'Input tokens', cell: (r) => fmtInt(r.input_tokens), num: true },
    { label: 'Output tokens', cell: (r) => fmtInt(r.output_tokens), num: true },
    { label: 'Spend', cell: (r) => fmtUsd(nanosToUsd(r.cost_nanos)), num: true },
  );
  return cols;
}

const METRICS = [
  ['requests', 'Requests', (r) => r.requests, fmtCompact, 's-ok'],
  ['errors', 'Errors', (r) => r.errors, fmtCompact, 's-err'],
  ['spend', 'Spend', (r) => nanosToUsd(r.cost_nanos), fmtUsd, 's-spend'],
  ['tokens', 'Tokens', (r) => r.input_tokens + r.output_tokens, fmtCompact, 's-in'],
];

async function viewBreakdowns() {
  const st = await api(statsUrl(50));
  const body = h('div');
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const seg = h('div', { class: 'seg', role: 'group', 'aria-label': 'Metric' });
  const render = () => {
    tabs.replaceChildren(...DIMENSIONS.map(([d, label]) => h('button', {
      type: 'button', role: 'tab', 'aria-selected': String(state.breakdownDim === d), 'data-dim': d,
      onclick: () => {
        state.breakdownDim = d;
        render();
      },
    }, label)));
    seg.replaceChildren(...METRICS.map(([m, label]) => h('button', {
      type: 'button', 'aria-pressed': String(state.breakdownMetric === m), 'data-metric': m,
      onclick: () => {
        state.breakdownMetric = m;
        render();
      },
    }, label)));
    const dim = state.breakdownDim;
    const metric = METRICS.find((m) => m[0] === state.breakdownMetric) || METRICS[0];
    const rows = st.breakdowns[dim] || [];
    const top = rows.slice().sort((a, b) => metric[2](b) - metric[2](a)).slice(0, 12);
    const filterKey = { model: 'model', provider: 'provider', team: 'team', key: 'key', user: 'user' }[dim];
    body.replaceChildren(
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, metric[1] + ' by ' + dim), seg),
        rows.length
          ? barList({ name: 'breakdown', title: metric[1] + ' by ' + dim, rows: top, label: (r) => groupLabel(dim, r), value: metric[2], fmt: metric[3], cls: metric[4] })
          : h('div', { class: 'empty' }, 'No requests in this range.')),
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, 'By ' + dim),
          h('span', { class: 'muted small' }, rows.length >= 50 ? 'Top 50 by spend, then requests. ' : '', 'Click a row to see its requests.')),
        table('breakdown', breakdownColumns(dim), rows, {
          empty: 'No requests in this range.',
          onRow: (r) => go('requests', { [filterKey]: r.group }),
          rowEnabled: (r) => r.group != null,
        })));
    // The first render happens before the view is attached; route() draws it.
    if (body.isConnected) redrawCharts();
  };
  const node = h('div', { class: 'stack' }, tabs, body);
  render();
  return node;
}

// [query name, label, input type ('key' / 'team': a list of names), placeholder]
const FILTERS = [
  ['model', 'Model', 'text', 'e.g. gpt-4o'],
  ['provider', 'Provider', 'text', 'e.g. openai'],
  ['key', 'Key', 'key', ''],
  ['team', 'Team', 'team', ''],
  ['status', 'Status', 'number', 'e.g. 500'],
  ['min_latency_ms', 'Min latency (ms)', 'number', ''],
];

/** A select over keys or teams by name (value: the id); keeps an unknown id. */
function idSelect(name, rows, labelOf, current) {
  const options = [h('option', { value: '' }, 'Any')];
  let found = false;
  for (const r of rows) {
    found = found || r.id === current;
    options.push(h('option', { value: r.id, selected: r.id === current }, labelOf(r)));
  }
  if (current && !found) options.push(h('option', { value: current, selected: true }, current));
  return h('select', { name }, options);
}

async function viewRequests(params) {
  const people = await loadPeople();
  const r = rangeParams();
  const q = new URLSearchParams({ from: String(r.from), limit: '50' });
  for (const [name] of FILTERS.concat([['user']])) {
    const v = params.get(name);
    if (v) q.set(name, v);
  }
  const page = await api('/admin/requests?' + q.toString());
  const inputs = {};
  const form = h('form', { class: 'filters', 'data-form': 'filters' },
    FILTERS.map(([name, label, type, ph]) => {
      const current = params.get(name) || '';
      let input;
      if (type === 'key') input = idSelect(name, people.keyRows, (k) => (k.name || k.key_prefix) + (k.revoked ? ' (revoked)' : ''), current);
      else if (type === 'team') input = idSelect(name, people.teamRows, (t) => t.name, current);
      else input = h('input', { name, type, placeholder: ph || null, value: current || null, min: type === 'number' ? '0' : null, spellcheck: 'false' });
      inputs[name] = input;
      return h('label', null, label, input);
    }),
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('button', { type: 'button', onclick: () => go('requests', {}) }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = {};
    for (const [name] of FILTERS) {
      const v = inputs[name].value.trim();
      if (v) next[name] = v;
    }
    if (params.get('user')) next.user = params.get('user');
    go('requests', next);
  });
  const columns = [
    { label: 'Time', cell: (x) => h('a', { href: '#/request/' + encodeURIComponent(x.id) }, fmtTime(x.started_at_ms)) },
    { label: 'Status', cell: statusBadge },
    { label: 'Model', cell: (x) => x.model, trunc: true },
    { label: 'Deployment', cell: (x) => x.deployment || x.provider || '—', trunc: true },
    { label: 'Caller', cell: (x) => (x.key_id ? people.keys.get(x.key_id) || x.key_id : x.caller), trunc: true },
    { label: 'Latency', cell: (x) => fmtMs(x.latency_ms), num: true },
    { label: 'TTFT', cell: (x) => fmtMs(x.ttft_ms), num: true },
    { label: 'Tokens in / out', cell: (x) => fmtInt(x.input_tokens) + ' / ' + fmtInt(x.output_tokens) + (x.usage_estimated ? ' *' : ''), num: true },
    { label: 'Cost', cell: (x) => (x.cost_usd == null ? '—' : fmtUsd(Number(x.cost_usd))), num: true },
    { label: 'Attempts', cell: (x) => fmtInt((x.attempts || []).length), num: true },
  ];
  const opts = {
    empty: 'No requests match in the ' + RANGES[state.range].label + '.',
    onRow: (x) => go('request/' + encodeURIComponent(x.id)),
    rowAttrs: (x) => ({ 'data-id': x.id }),
  };
  const tableSlot = h('div', null, table('requests', columns, page.data, opts));
  const more = h('div', { class: 'more' });
  let cursor = page.next_cursor;
  const rows = page.data.slice();
  const updateMore = () => {
    more.replaceChildren(cursor == null ? h('span', { class: 'muted small' }, rows.length ? rows.length + ' requests' : '')
      : h('button', {
        type: 'button', 'data-action': 'more',
        onclick: async (e) => {
          e.target.disabled = true;
          try {
            q.set('cursor', String(cursor));
            const next = await api('/admin/requests?' + q.toString());
            rows.push(...next.data);
            cursor = next.next_cursor;
            tableSlot.replaceChildren(table('requests', columns, rows, opts));
            updateMore();
          } catch (err) {
            handleError(err);
            e.target.disabled = false;
          }
        },
      }, 'Load more'));
  };
  updateMore();
  const active = Array.from(q.keys()).filter((k) => k !== 'from' && k !== 'limit');
  return h('div', { class: 'stack' },
    h('div', { class: 'panel' }, form),
    h('div', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Request log'),
        h('span', { class: 'muted small' }, 'Newest first, ' + RANGES[state.range].label + (active.length ? ', filtered by ' + active.join(', ') : '') + '. * = estimated usage.')),
      tableSlot, more));
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter((p) => p).map(([k, v]) => [h('dt', null, k), h('dd', null, v == null || v === '' ? '—' : v)]));
}

function attemptTimeline(attempts) {
  return chart((width) => {
    const rowH = 22;
    const labelW = Math.min(200, Math.floor(width * 0.3));
    const total = attempts.reduce((a, x) => a + (x.latency_us || 0), 0) || 1;
    const pw = Math.max(40, width - labelW - 90);
    const H = attempts.length * rowH + 4;
    const svg = s('svg', { viewBox: `0 0 ${width} ${H}`, width, height: H, role: 'img', 'aria-label': 'Attempt timeline', 'data-chart': 'attempts' });
    let x0 = 0;
    attempts.forEach((a, i) => {
      const w = Math.max(2, ((a.latency_us || 0) / total) * pw);
      const cls = a.outcome === 'ok' ? 's-ok' : a.outcome === 'cancelled' ? 's-p95' : 's-err';
      const yy = i * rowH + 2;
      svg.append(
        s('text', { class: 'bar-label', x: labelW - 8, y: yy + 15, 'text-anchor': 'end' }, '#' + (i + 1) + ' ' + a.deployment),
        s('rect', { class: 'bar ' + cls, x: labelW + (a.hedge ? 0 : x0), y: yy + 4, width: w, height: rowH - 8, rx: 2 },
          s('title', { text: a.deployment + ': ' + a.outcome + (a.error_class ? ' (' + a.error_class + ')' : '') + ', ' + fmtMs(a.latency_us / 1000) })),
        s('text', { class: 'bar-value', x: labelW + (a.hedge ? 0 : x0) + w + 6, y: yy + 15 }, fmtMs(a.latency_us / 1000)),
      );
      if (!a.hedge) x0 += w;
    });
    return svg;
  });
}

async function viewRequest(id) {
  const [r, people] = await Promise.all([api('/admin/requests/' + encodeURIComponent(id)), loadPeople()]);
  const attempts = Array.isArray(r.attempts) ? r.attempts : [];
  const served = attempts.findIndex((a) => a.outcome === 'ok');
  let routing;
  if (served >= 0) {
    routing = ['Served by ', h('strong', { 'data-served-by': r.deployment || attempts[served].deployment }, r.deployment || attempts[served].deployment),
      ' on attempt ' + (served + 1) + ' of ' + attempts.length + '.'];
    if (served > 0) routing.push(' Earlier attempts failed and were retried or fell back.');
  } else if (attempts.length) {
    routing = ['Failed after ' + attempts.length + ' attempt' + (attempts.length > 1 ? 's' : '') + '; last error: ', h('strong', null, r.error_class || 'unknown'), '.'];
  } else {
    routing = [r.error_class ? 'No upstream was called (' + r.error_class + ').' : 'No upstream attempts recorded.'];
  }
  const breakdown = r.cost_breakdown && typeof r.cost_breakdown === 'object'
    ? Object.entries(r.cost_breakdown).map(([k, v]) => k.replace(/_usd$/, '').replace(/_/g, ' ') + ' ' + fmtUsd(Number(v))).join(' · ')
    : null;
  const who = (map, v) => (v ? (map.get(v) ? map.get(v) + ' (' + v + ')' : v) : null);
  const sections = [
    h('a', { class: 'back', href: '#/requests' }, '← Request log'),
    h('div', { class: 'panel' },
      h('div', { class: 'detail-head' }, h('h2', { class: 'mono', 'data-request-id': r.id }, r.id), statusBadge(r),
        r.stream ? h('span', { class: 'badge' }, 'stream') : null,
        r.truncated ? h('span', { class: 'badge warn' }, 'truncated') : null)),
    h('div', { class: 'grid2' },
      panel('Request', kv([
        ['Time', fmtTime(r.started_at_ms)],
        ['Route', r.route],
        ['Requested model', r.model],
        ['Provider', r.provider],
        ['Deployment', r.deployment],
        ['Upstream model', r.upstream_model],
        ['Caller', r.caller],
        ['Key', who(people.keys, r.key_id)],
        ['Team', who(people.teams, r.team_id)],
        ['User', who(people.users, r.user_id)],
        ['End user', r.end_user],
      ])),
      panel('Performance and usage', kv([
        ['Latency', fmtMs(r.latency_ms)],
        ['Time to first token', fmtMs(r.ttft_ms)],
        ['Input tokens', fmtInt(r.input_tokens)],
        ['Output tokens', fmtInt(r.output_tokens)],
        ['Cached input tokens', fmtInt(r.cached_tokens)],
        ['Cache write tokens', fmtInt(r.cache_write_tokens)],
        ['Reasoning tokens', fmtInt(r.reasoning_tokens)],
        ['Usage', r.usage_estimated ? 'estimated by the gateway' : 'reported by the provider'],
        ['Cost', r.cost_usd == null ? 'unpriced' : fmtUsd(Number(r.cost_usd))],
        breakdown ? ['Cost breakdown', breakdown] : null,
      ]))),
    h('div', { class: 'panel', 'data-section': 'routing' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Routing and attempts')),
      h('p', { class: 'routing-summary', 'data-routing': 'summary' }, routing),
      table('attempts', [
        { label: '#', cell: (a) => String(attempts.indexOf(a) + 1), num: true },
        { label: 'Deployment', cell: (a) => a.deployment },
        { label: 'Outcome', cell: (a) => h('span', { class: 'badge ' + (a.outcome === 'ok' ? 'ok' : a.outcome === 'cancelled' ? 'warn' : 'err') }, a.outcome) },
        { label: 'Error class', cell: (a) => a.error_class || '—' },
        { label: 'Latency', cell: (a) => fmtMs(a.latency_us / 1000), num: true },
        { label: 'Hedge', cell: (a) => (a.hedge ? 'yes' : '') },
      ], attempts, { empty: 'No upstream attempts.' }),
      attempts.length ? h('div', { class: 'timeline' }, attemptTimeline(attempts)) : null),
  ];
  if (r.error_class || r.error_message) {
    sections.push(panel('Error', kv([['Class', r.error_class], ['Message', r.error_message]])));
  }
  if (r.metadata) sections.push(panel('Metadata', h('pre', { class: 'payload' }, JSON.stringify(r.metadata, null, 2))));
  if (r.request_body) sections.push(panel('Captured request (redacted)', h('pre', { class: 'payload', 'data-payload': 'request' }, prettyJson(r.request_body))));
  if (r.response_body) sections.push(panel('Captured response (redacted)', h('pre', { class: 'payload', 'data-payload': 'response' }, prettyJson(r.response_body))));
  return h('div', { class: 'stack' }, sections);
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (_) {
    return text;
  }
}

async function viewKeys() {
  state.people = null;
  const [people, budgets] = await Promise.all([loadPeople(), api('/admin/budgets')]);
  const b = new Map(budgets.data.map((x) => [x.scope + ':' + x.id, x]));
  const budgetOf = (scope, id) => b.get(scope + ':' + id);
  const status = (k) => {
    const x = budgetOf('key', k.id);
    const st = x ? x.status : k.revoked ? 'revoked' : k.enabled ? 'active' : 'disabled';
    return h('span', { class: 'badge ' + (st === 'active' ? 'ok' : st === 'revoked' || st === 'expired' ? 'err' : 'warn') }, st);
  };
  const keys = people.keyRows.slice().sort((a, c) => Number(a.revoked) - Number(c.revoked));
  const spentCell = (scope) => (x) => {
    const bx = budgetOf(scope, x.id);
    return bx ? budgetMeter(bx) : '—';
  };
  const requestsCell = (scope) => (x) => {
    const bx = budgetOf(scope, x.id);
    return bx ? fmtInt(bx.requests) : '—';
  };
  const budgeted = budgets.data.filter((x) => x.max_budget_nanos != null);
  const over = budgeted.filter((x) => (x.used || 0) >= 1).length;
  const soft = budgeted.filter((x) => x.soft_budget_nanos != null && x.spend_nanos >= x.soft_budget_nanos && (x.used || 0) < 1).length;
  return h('div', { class: 'stack' },
    h('div', { class: 'cards' },
      card('keys', 'Active keys', fmtInt(people.keyRows.filter((k) => !k.revoked && k.enabled).length), fmtInt(people.keyRows.length) + ' in total'),
      card('teams', 'Teams', fmtInt(people.teamRows.length), fmtInt(people.userRows.length) + ' users'),
      card('budgets', 'Budgets', fmtInt(budgeted.length), 'on keys, teams and users'),
      card('soft', 'Past soft budget', fmtInt(soft), 'alerts sent to the webhook', soft > 0),
      card('over', 'Budget exhausted', fmtInt(over), 'requests refused with 429', over > 0)),
    panel('Virtual keys',
      h('p', { class: 'muted small' }, 'Spend counts the current budget period (all time for keys without a budget), from the hourly rollup budgets start from.'),
      table('keys', [
        { label: 'Name', cell: (k) => h('span', null, k.name || '—', h('br'), h('span', { class: 'mono muted small nowrap' }, k.key_prefix)) },
        { label: 'Team', cell: (k) => (k.team_id ? people.teams.get(k.team_id) || k.team_id : '—'), trunc: true },
        { label: 'User', cell: (k) => (k.user_id ? people.users.get(k.user_id) || k.user_id : '—'), trunc: true },
        { label: 'Role', cell: (k) => k.role },
        { label: 'Status', cell: status },
        { label: 'Limits', cell: limitsText },
        { label: 'Models', cell: (k) => modelsText(k.models), trunc: true },
        { label: 'Budget and spend', cell: spentCell('key') },
        { label: 'Requests in period', cell: requestsCell('key'), num: true },
        { label: 'Expires', cell: (k) => (k.expires_at_ms ? fmtDate(k.expires_at_ms) : 'never') },
      ], keys, {
        empty: 'No virtual keys yet. Create one with POST /admin/keys or `modelgate keys create`.',
        onRow: (k) => go('requests', { key: k.id }),
        rowAttrs: (k) => ({ 'data-key-id': k.id }),
      })),
    h('div', { class: 'grid2' },
      panel('Teams', table('teams', [
        { label: 'Team', cell: (t) => t.name, trunc: true },
        { label: 'Limits', cell: limitsText },
        { label: 'Budget and spend', cell: spentCell('team') },
        { label: 'Requests in period', cell: requestsCell('team'), num: true },
      ], people.teamRows, {
        empty: 'No teams yet.',
        onRow: (t) => go('requests', { team: t.id }),
      })),
      panel('Users', table('users', [
        { label: 'User', cell: (u) => u.name, trunc: true },
        { label: 'Team', cell: (u) => (u.team_id ? people.teams.get(u.team_id) || u.team_id : '—'), trunc: true },
        { label: 'Budget and spend', cell: spentCell('user') },
        { label: 'Requests in period', cell: requestsCell('user'), num: true },
      ], people.userRows, {
        empty: 'No users yet.',
        onRow: (u) => go('requests', { user: u.id }),
      }))));
}

// ---------------------------------------------------------------- routing

function go(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== '')).toString() : '';
  const next = '#/' + path + (q ? '?' + q : '');
  if (location.hash === next) route();
  else location.hash = next;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const params = new URLSearchParams(i < 0 ? '' : raw.slice(i + 1));
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (_) {
      return p;
    }
  });
  return { parts, params };
}

function showBanner(msg) {
  const b = $('banner');
  b.textContent = msg;
  b.hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

function handleError(e) {
  if (e instanceof AuthError) {
    signOut(e.status === 403
      ? 'This key may not use the admin API (403): ' + e.message
      : 'The gateway no longer accepts this key (401): ' + e.message);
    return;
  }
  showBanner(e && e.message ? e.message : String(e));
}

/**
 * Renders the view the URL names. `quiet` (a refresh of the same view) keeps
 * what is on screen until the new data is in.
 */
async function route(quiet) {
  if (!state.key && state.key !== '') return;
  quiet = quiet === true;
  const { parts, params } = parseHash();
  const view = parts[0] || 'overview';
  if (!VIEWS[view]) {
    location.hash = '#/overview';
    return;
  }
  const navView = view === 'request' ? 'requests' : view;
  for (const a of document.querySelectorAll('.sidebar nav a')) {
    if (a.dataset.view === navView) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('view-title').textContent = VIEWS[view];
  document.title = VIEWS[view] + ' · Modelgate';
  $('range').disabled = view === 'keys' || view === 'request';
  const gen = ++state.gen;
  const root = $('view');
  root.setAttribute('aria-busy', 'true');
  if (!quiet) {
    root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    hideBanner();
  }
  try {
    let node;
    if (view === 'overview') node = await viewOverview();
    else if (view === 'breakdowns') node = await viewBreakdowns();
    else if (view === 'requests') node = await viewRequests(params);
    else if (view === 'request') node = await viewRequest(parts.slice(1).join('/'));
    else node = await viewKeys();
    if (gen !== state.gen) return;
    hideBanner();
    root.replaceChildren(node);
    redrawCharts();
  } catch (e) {
    if (gen !== state.gen) return;
    if (!quiet) root.replaceChildren(h('div', { class: 'panel empty', 'data-error': 'view' }, 'Could not load this view: ', e && e.message ? e.message : String(e)));
    handleError(e);
  } finally {
    if (gen === state.gen) root.setAttribute('aria-busy', 'false');
  }
}

// ---------------------------------------------------------------- session

function showLogin(message) {
  $('app').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.textContent = message || '';
  err.hidden = !message;
  $('login-key').value = '';
  $('login-key').focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  state.people = null;
  state.gen++;
  showLogin(message);
}

function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('whoami').textContent = state.key ? 'Key ' + state.key.slice(0, 6) + '…' : 'No key (loopback mode)';
  if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/overview';
  else route();
}

async function signIn(key) {
  const button = $('login-submit');
  button.disabled = true;
  state.key = key;
  try {
    // Any admin endpoint proves the key: the smallest report will do.
    await api('/admin/stats?top=1');
    sessionStorage.setItem(KEY_STORAGE, key);
    showApp();
  } catch (e) {
    state.key = null;
    const msg = e instanceof AuthError
      ? (e.status === 403 ? 'This key is valid but has no admin rights. ' : 'The gateway rejected this key. ') + e.message
      : e.message;
    showLogin(msg);
  } finally {
    button.disabled = false;
  }
}

function init() {
  const savedRange = sessionStorage.getItem(RANGE_STORAGE);
  if (savedRange && RANGES[savedRange]) state.range = savedRange;
  $('range').value = state.range;
  $('range').addEventListener('change', () => {
    state.range = $('range').value;
    sessionStorage.setItem(RANGE_STORAGE, state.range);
    route();
  });
  $('refresh').addEventListener('click', () => {
    state.people = null;
    route(true);
  });
  // Auto-refresh the charts and the log (not a request's detail or the
  // key tables, which do not move by themselves), only while the tab is seen.
  $('auto').addEventListener('change', () => {
    clearInterval(state.timer);
    state.timer = null;
    if ($('auto').checked) {
      state.timer = setInterval(() => {
        const view = parseHash().parts[0] || 'overview';
        if (document.visibilityState === 'visible' && !$('app').hidden && ['overview', 'breakdowns', 'requests'].includes(view)) route(true);
      }, AUTO_REFRESH_MS);
    }
  });
  $('signout').addEventListener('click', () => signOut('Signed out.'));
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('login-key').value.trim());
  });
  window.addEventListener('hashchange', route);
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(redrawCharts, 150);
  });
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved != null) {
    state.key = saved;
    showApp();
  } else {
    showLogin();
  }
}

document.addEventListener('DOMContentLoaded', init);
