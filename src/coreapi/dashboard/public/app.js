// The fastcontainer dashboard: no framework, no build. Everything shown comes from the CoreAPI:
// one Server-Sent Events stream (a snapshot, then every CMDB change, then stats every few
// seconds) and the /v1 routes for actions and events. Text from the server is only ever set
// with textContent, never parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  access: null, offset: 0, hostTimeout: 10000,
  apps: new Map(), containers: new Map(), hosts: new Map(), stats: new Map(), series: {},
  selected: null, events: [], source: null,
};

// --- small helpers --------------------------------------------------------------------------------
/** An element with text (never HTML) and attributes. */
function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function row(cells, attrs) {
  const tr = el('tr', null, attrs);
  for (const c of cells) tr.append(c instanceof Node ? wrap(c) : el('td', c));
  return tr;
}
function wrap(node) { const td = el('td'); td.append(node); return td; }
const serverNow = () => Date.now() + state.offset;
function dur(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm' + String(s % 60).padStart(2, '0') + 's';
  const h = Math.floor(m / 60);
  return h < 48 ? h + 'h' + String(m % 60).padStart(2, '0') + 'm' : Math.floor(h / 24) + 'd' + String(h % 24).padStart(2, '0') + 'h';
}
function bytes(n) {
  for (const [u, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]]) if (n >= size && n % size === 0) return n / size + u;
  return String(n);
}
const num = (n) => (n === null || n === undefined ? '-' : String(Math.round(n * 100) / 100));

/** A CoreAPI call with the session cookie; writes carry the CSRF header. Throws the problem+json. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method, credentials: 'same-origin',
    headers: { 'x-fc-csrf': '1', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text === '' ? null : JSON.parse(text);
  if (!res.ok) {
    if (res.status === 401) showLogin();
    throw Object.assign(new Error((data && data.detail) || 'HTTP ' + res.status), { problem: data || {} });
  }
  return data;
}

/** Puts a problem's field errors beside their fields in `form`; the rest in the `fallback` slot. */
function showErrors(form, err, fallback) {
  clearErrors(form);
  const p = err.problem || {};
  const list = Array.isArray(p.errors) ? p.errors : Array.isArray(p.invalid) ? p.invalid : [];
  let shown = false;
  for (const e of list) {
    const top = String(e.field).split('.')[0];
    const slot = form.querySelector('[data-error-for="' + CSS.escape(top) + '"]');
    if (slot) { slot.textContent = 'not allowed: ' + e.allowed; shown = true; }
  }
  if (!shown) {
    const slot = form.querySelector('[data-error-for="' + fallback + '"]');
    if (slot) slot.textContent = (p.code ? p.code + ': ' : '') + (p.detail || err.message);
  }
}
function clearErrors(form) { for (const s of form.querySelectorAll('[data-error-for]')) s.textContent = ''; }

// --- login ----------------------------------------------------------------------------------------
function showLogin() {
  if (state.source) { state.source.close(); state.source = null; }
  $('main').hidden = true; $('logout').hidden = true; $('login').hidden = false;
  $('access').textContent = '';
  setLive(false, 'logged out');
  $('token').focus();
}
$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    await api('POST', '/dashboard/login', { token: $('token').value });
    $('token').value = '';
    start();
  } catch (err) {
    $('login-error').textContent = err.message;
  }
});
$('logout').addEventListener('click', async () => {
  await api('POST', '/dashboard/logout').catch(() => undefined);
  showLogin();
});

// --- the live stream ------------------------------------------------------------------------------
function setLive(on, text) {
  const b = $('live');
  b.textContent = text;
  b.className = 'badge ' + (on ? 'on' : 'off');
}
function start() {
  $('login').hidden = true;
  if (state.source) state.source.close();
  const source = new EventSource('/v1/events/stream');
  state.source = source;
  source.addEventListener('snapshot', (ev) => {
    const s = JSON.parse(ev.data);
    state.offset = s.now - Date.now();
    state.access = s.access;
    state.hostTimeout = s.hostTimeout;
    state.apps = new Map(s.apps.map((a) => [a.name, a]));
    state.containers = new Map(s.containers.map((c) => [c.id, c]));
    state.hosts = new Map(s.hosts.map((h) => [h.id, h]));
    state.stats = new Map(s.stats.map((x) => [x.id, x]));
    state.series = s.series;
    document.body.classList.toggle('readonly', s.access !== 'write');
    $('access').textContent = s.access === 'write' ? 'admin' : 'read-only';
    $('main').hidden = false; $('logout').hidden = false;
    setLive(true, 'live');
    if (state.selected !== null && !state.apps.has(state.selected)) state.selected = null;
    if (state.selected === null && state.apps.size > 0) state.selected = [...state.apps.keys()][0];
    selectApp(state.selected);
    render();
  });
  source.addEventListener('change', (ev) => {
    const c = JSON.parse(ev.data);
    const map = c.kind === 'app' ? state.apps : c.kind === 'container' ? state.containers : state.hosts;
    const held = map.get(c.id);
    // Changes may repeat what the snapshot already had: only newer ones apply (as CmdbCache does).
    if (held && held.rev >= c.rev) return;
    const appOf = c.kind === 'app' ? c.id : (c.value || held || {}).app;
    if (c.op === 'put') map.set(c.id, c.value); else map.delete(c.id);
    if (c.kind === 'app' && c.op === 'delete' && state.selected === c.id) selectApp(null);
    if (c.kind === 'app' && c.op === 'put' && state.selected === null) selectApp(c.id);
    if (c.kind !== 'host' && state.selected !== null && appOf === state.selected) refreshEvents();
    scheduleRender();
  });
  source.addEventListener('stats', (ev) => {
    const s = JSON.parse(ev.data);
    state.offset = s.now - Date.now();
    state.stats = new Map(s.stats.map((x) => [x.id, x]));
    for (const [app, sample] of Object.entries(s.series)) {
      const ring = state.series[app] || (state.series[app] = []);
      if (ring.length === 0 || ring[ring.length - 1].at < sample.at) ring.push(sample);
      if (ring.length > 180) ring.shift();
    }
    refreshEvents();
    scheduleRender();
  });
  source.addEventListener('error', async () => {
    setLive(false, 'reconnecting');
    if (source.readyState === EventSource.CLOSED) {
      // Refused (not a dropped connection): the session may have ended.
      try { await api('GET', '/dashboard/session'); setTimeout(start, 2000); } catch { /* showLogin ran */ }
    }
  });
}

// --- rendering ------------------------------------------------------------------------------------
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}
/** Containers grouped by app, built once per render (thousands of containers stay cheap). */
let byApp = null;
function containersOf(app) {
  if (byApp === null) {
    byApp = new Map();
    for (const c of state.containers.values()) {
      if (!byApp.has(c.app)) byApp.set(c.app, []);
      byApp.get(c.app).push(c);
    }
    for (const list of byApp.values()) list.sort((a, b) => a.createdAt - b.createdAt);
  }
  return byApp.get(app) || [];
}
function stateWord(c) { return c.state === 'ready' && c.frozenAt != null ? 'frozen' : c.state; }
function appState(name) {
  const counts = {};
  for (const c of containersOf(name)) counts[stateWord(c)] = (counts[stateWord(c)] || 0) + 1;
  const parts = Object.entries(counts).map(([s, n]) => n + ' ' + s);
  return parts.length === 0 ? 'idle' : parts.join(', ');
}
function latest(app) { const r = state.series[app]; return r && r.length ? r[r.length - 1] : null; }

let appsShown = '';
function render() {
  if (state.access === null) return;
  byApp = null;
  const now = serverNow();
  const apps = [...state.apps.values()].sort((a, b) => a.name.localeCompare(b.name));
  const cells = apps.map((a) => [a.name, a.hostnames.join(', '), a.image, num(a.cpus), bytes(a.memory), a.lifespan + 's', a.minContainers + '/' + a.maxContainers, appState(a.name), num(latest(a.name) ? latest(a.name).rps : 0)]);
  // Rebuilt only when something in it changed: a row replaced between a press and its release would eat the click.
  const signature = JSON.stringify([state.selected, cells]);
  if (signature !== appsShown) {
    appsShown = signature;
    $('apps').tBodies[0].replaceChildren(...cells.map((c) => {
      const tr = row(c, { 'data-app': c[0], tabindex: '0' });
      if (c[0] === state.selected) tr.className = 'selected';
      return tr;
    }));
  }
  $('apps-empty').hidden = apps.length > 0;
  renderApp(now);
  const hosts = [...state.hosts.values()].sort((a, b) => a.id.localeCompare(b.id));
  const all = [...state.containers.values()];
  const stats = [...state.stats.values()];
  $('hosts').tBodies[0].replaceChildren(...hosts.map((h) => {
    const live = now - h.heartbeatAt <= state.hostTimeout;
    const mine = all.filter((c) => c.host === h.id && c.state !== 'gone').length;
    const st = stats.filter((s) => s.host === h.id);
    return row([h.id, h.dispatcherUrl, live ? 'yes' : 'no', dur(now - h.heartbeatAt) + ' ago', String(mine), mine + '/' + h.capacity,
      String(st.reduce((n, s) => n + s.inflight, 0)), num(st.reduce((n, s) => n + (s.cpuUsage || 0), 0)) + ' cores', h.drainedAt == null ? '-' : dur(now - h.drainedAt) + ' ago'], { class: live ? '' : 'dead' });
  }));
}

function renderApp(now) {
  const a = state.selected === null ? undefined : state.apps.get(state.selected);
  $('app').hidden = a === undefined;
  if (a === undefined) return;
  $('app-title').textContent = a.name;
  const env = Object.entries(a.env || {}).map(([k, v]) => k + '=' + v);
  $('app-summary').textContent = a.hostnames.join(', ') + ' → ' + a.image + ':' + a.port + ' · ' + num(a.cpus) + '–' + num(a.maxCpus) + ' CPU · ' + bytes(a.memory) +
    ' · lifespan ' + a.lifespan + 's · ' + a.minContainers + '–' + a.maxContainers + ' containers' + (env.length ? ' · env ' + env.join(', ') : '');
  const list = containersOf(a.name);
  $('containers').tBodies[0].replaceChildren(...list.map((c) => {
    const st = state.stats.get(c.id) || null;
    const cpus = st !== null && (c.cpusSetAt || 0) <= st.at ? st.cpus : c.cpus;
    return row([c.id, stateWord(c), c.host, num(cpus), st ? String(st.inflight) : '-', st && st.p95Ms != null ? Math.round(st.p95Ms) + 'ms' : '-',
      dur(now - c.createdAt), c.expiresAt == null ? '-' : dur(c.expiresAt - now), c.lastError || ''], { 'data-container': c.id, 'data-state': stateWord(c) });
  }));
  $('containers-empty').hidden = list.length > 0;
  $('events').replaceChildren(...state.events.map((e) => {
    const li = el('li');
    li.append(el('time', new Date(e.at).toLocaleTimeString()), el('b', e.kind), el('span', e.reason));
    return li;
  }));
  updateCharts(a.name);
}

// --- charts (uPlot) -------------------------------------------------------------------------------
const charts = { app: null, rps: null, latency: null };
function chartOpts(series) {
  const width = Math.max(260, Math.min(520, ($('app').clientWidth - 48) / 2));
  return { width, height: 160, legend: { show: true }, scales: { x: { time: true } }, series: [{}, ...series], axes: [{}, { size: 50 }] };
}
function updateCharts(app) {
  if (typeof uPlot === 'undefined') return;
  const ring = state.series[app] || [];
  const xs = ring.map((s) => s.at / 1000);
  const rps = [xs, ring.map((s) => s.rps)];
  const lat = [xs, ring.map((s) => s.meanMs), ring.map((s) => s.p95Ms)];
  if (charts.app !== app) {
    for (const k of ['rps', 'latency']) if (charts[k]) charts[k].destroy();
    charts.app = app;
    charts.rps = new uPlot(chartOpts([{ label: 'req/s', stroke: '#2b6cb0', fill: 'rgba(43,108,176,0.12)' }]), rps, $('chart-rps'));
    charts.latency = new uPlot(chartOpts([{ label: 'mean', stroke: '#2f855a' }, { label: 'p95 (max)', stroke: '#c05621' }]), lat, $('chart-latency'));
  } else {
    charts.rps.setData(rps);
    charts.latency.setData(lat);
  }
}

// --- the selected app: events, scale, delete ------------------------------------------------------
function selectApp(name) {
  state.selected = name;
  state.events = [];
  clearErrors($('scale-form'));
  const a = name === null ? undefined : state.apps.get(name);
  if (a) {
    byApp = null;
    const f = $('scale-form').elements;
    f.containers.value = f.containers.dataset.initial = containersOf(name).filter((c) => c.state !== 'draining').length;
    f.cpus.value = f.cpus.dataset.initial = a.cpus;
  }
  refreshEvents();
  scheduleRender();
}
$('apps').addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr[data-app]');
  if (tr) selectApp(tr.getAttribute('data-app'));
});
$('apps').addEventListener('keydown', (ev) => {
  const tr = ev.target.closest('tr[data-app]');
  if (tr && ev.key === 'Enter') selectApp(tr.getAttribute('data-app'));
});

let eventsBusy = false;
let eventsAgain = false;
/** Events are not in the change stream: fetched again when the app changes and with each stats tick. */
async function refreshEvents() {
  const app = state.selected;
  if (app === null) return;
  if (eventsBusy) { eventsAgain = true; return; }
  eventsBusy = true;
  try {
    const { events } = await api('GET', '/v1/apps/' + encodeURIComponent(app) + '/events?limit=20');
    if (state.selected === app) { state.events = events; scheduleRender(); }
  } catch { /* the app may just have gone */ } finally {
    eventsBusy = false;
    if (eventsAgain) { eventsAgain = false; refreshEvents(); }
  }
}

$('scale-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  // Only what was changed: sending the shown quota back would undo the autoscaler's.
  const body = {};
  for (const n of ['containers', 'cpus']) {
    const input = f.elements[n];
    if (input.value !== '' && input.value !== input.dataset.initial) body[n] = Number(input.value);
  }
  if (Object.keys(body).length === 0 && f.elements.containers.value !== '') body.containers = Number(f.elements.containers.value);
  try { await api('POST', '/v1/apps/' + encodeURIComponent(state.selected) + '/scale', body); refreshEvents(); } catch (err) { showErrors(f, err, '(body)'); }
});

$('delete').addEventListener('click', () => {
  const name = state.selected;
  if (name === null) return;
  $('confirm-text').textContent = 'Delete the app "' + name + '"? Its containers drain and its hostnames stop answering.';
  const dlg = $('confirm');
  dlg.returnValue = '';
  dlg.onclose = async () => {
    if (dlg.returnValue !== 'ok') return;
    try { await api('DELETE', '/v1/apps/' + encodeURIComponent(name)); } catch (err) { alertProblem(err); }
  };
  dlg.showModal();
});
function alertProblem(err) { $('app-summary').textContent = err.message; }

// --- create ---------------------------------------------------------------------------------------
/** The spec from the form: only the fields filled in, as the API takes them (it validates). */
function specFromForm(f) {
  const spec = {};
  const v = (n) => f.elements[n].value.trim();
  spec.name = v('name');
  spec.hostnames = v('hostnames') === '' ? [] : v('hostnames').split(/[\s,]+/).filter(Boolean);
  spec.image = v('image');
  for (const n of ['port', 'cpus', 'lifespan', 'minContainers', 'maxContainers']) if (v(n) !== '') spec[n] = Number(v(n));
  if (v('memory') !== '') spec.memory = v('memory');
  if (v('env') !== '') {
    spec.env = {};
    for (const line of v('env').split('\n')) {
      const t = line.trim();
      if (t === '') continue;
      const eq = t.indexOf('=');
      spec.env[eq < 0 ? t : t.slice(0, eq)] = eq < 0 ? '' : t.slice(eq + 1);
    }
  }
  return spec;
}
$('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  try {
    const app = await api('POST', '/v1/apps', specFromForm(f));
    f.reset();
    selectApp(app.name);
  } catch (err) { showErrors(f, err, '(form)'); }
});

setInterval(() => { if (!$('main').hidden) render(); }, 1000);
api('GET', '/dashboard/session').then(start, () => undefined);
