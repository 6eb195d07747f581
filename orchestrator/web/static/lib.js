// Shared helpers of every page: building DOM nodes (text only, never HTML), calling the
// JSON API, formatting times, and the live-update primitives (throttle, polling while the
// page is visible, server-sent event streams).

/** An element: h('a', {href, testid: 'run-link', onclick}, 'text', child, [more]).
 * Strings become text nodes (so data is never parsed as HTML); null/false are skipped. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'testid') el.dataset.testid = value;
    else if (key === 'class') el.className = value;
    else if (key === 'data') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key in PROPS) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

const PROPS = { value: 1, checked: 1, disabled: 1, selected: 1, open: 1, hidden: 1 };

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of ``el``. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// -- the API -------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message, errors) {
    super(message);
    this.status = status;
    this.errors = errors || [];
  }
}

/** Call the JSON API; returns the parsed body, throws ApiError with the server's message. */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_err) {
    data = null;
  }
  if (response.status === 401) {
    // The token cookie is gone or no longer valid: the page itself now shows the login form.
    window.location.reload();
    throw new ApiError(401, (data && data.message) || 'this server asks for a token');
  }
  if (!response.ok) {
    const message = (data && data.message) || `${method} ${path}: HTTP ${response.status}`;
    throw new ApiError(response.status, message, data && data.errors);
  }
  return data;
}

export const enc = encodeURIComponent;

// -- messages ------------------------------------------------------------------------------

let flashTimer = null;

/** Show a message in the banner under the nav (errors stay until closed or replaced). */
export function flash(message, kind = 'error') {
  const box = document.getElementById('flash');
  if (!box) return;
  clearTimeout(flashTimer);
  box.className = `flash flash-${kind}`;
  fill(box, h('span', {}, message),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: clearFlash }, '×'));
  box.hidden = false;
  if (kind !== 'error') flashTimer = setTimeout(clearFlash, 4000);
}

export function clearFlash() {
  const box = document.getElementById('flash');
  if (box) { box.hidden = true; box.replaceChildren(); }
}

export function errorMessage(err) {
  return err instanceof ApiError ? err.message : `unexpected error: ${err && err.message}`;
}

// -- formatting ----------------------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Seconds since the epoch -> local "YYYY-MM-DD HH:MM:SS" ("HH:MM:SS" when today). */
export function fmtTime(t, withDate) {
  if (t === null || t === undefined) return '—';
  const d = new Date(t * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  if (sameDay && !withDate) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** "HH:MM:SS.mmm" local, for event log lines. */
export function fmtClock(t) {
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A <time> element: local time shown, full date-time in its title. */
export function timeEl(t) {
  if (t === null || t === undefined) return h('span', { class: 'muted' }, '—');
  const iso = new Date(t * 1000).toISOString();
  return h('time', { datetime: iso, title: fmtTime(t, true) }, fmtTime(t));
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${pad(m % 60)}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '');

export const FINISHED = new Set(['SUCCESS', 'FAILURE', 'CANCELED']);
export const STATUSES = ['QUEUED', 'STARTING', 'STARTED', 'SUCCESS', 'FAILURE', 'CANCELING', 'CANCELED'];

/** A run status badge (``run-status``: its text is the status). */
export function statusBadge(status) {
  return h('span', { class: `badge status-${status}`, testid: 'run-status', data: { status } }, status);
}

/** A step state badge ("waiting for slot" -> class state-waiting-for-slot). */
export function stateBadge(state) {
  return h('span', { class: `badge state-${String(state).replace(/\s+/g, '-')}` }, state);
}

export function runLink(runId, text) {
  return h('a', { href: `/runs/${enc(runId)}`, title: runId, class: 'mono' }, text || shortId(runId));
}

export function tagChips(tags, onclick) {
  const entries = Object.entries(tags || {});
  if (!entries.length) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'chips' }, entries.map(([k, v]) => onclick
    ? h('button', { type: 'button', class: 'chip tag', title: `Filter by ${k}=${v}`, onclick: () => onclick(k, v) }, `${k}=${v}`)
    : h('span', { class: 'chip tag' }, `${k}=${v}`)));
}

export function emptyState(...children) {
  return h('p', { class: 'empty', testid: 'empty-state' }, ...children);
}

// -- live updates --------------------------------------------------------------------------

/** ``fn`` at most once per ``ms`` (the first call runs at once, the last one always runs). */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return function throttled() {
    const wait = last + ms - Date.now();
    if (wait <= 0 && timer === null) {
      last = Date.now();
      fn();
    } else if (timer === null) {
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, Math.max(0, wait));
    }
  };
}

export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  debounced.pending = () => timer !== null;
  debounced.cancel = () => { clearTimeout(timer); timer = null; };
  return debounced;
}

/** Run async ``fn`` now and then every ``ms`` while the page is visible (never two at once);
 * when the page becomes visible again it runs at once. */
export function whileVisible(fn, ms) {
  let timer = null;
  let running = false;
  const tick = async () => {
    clearTimeout(timer);
    timer = null;
    if (document.visibilityState !== 'visible' || running) return;
    running = true;
    try { await fn(); } finally { running = false; }
    if (document.visibilityState === 'visible') timer = setTimeout(tick, ms);
  };
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') tick();
    else { clearTimeout(timer); timer = null; }
  });
  tick();
  return tick;
}

/** An EventSource on ``url`` whose named events call ``handlers[name](data)``; the live
 * indicator in the nav shows whether it is connected. ``onopen`` runs on each (re)connect. */
export function openStream(url, handlers, onopen) {
  const source = new EventSource(url);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch (_err) { return; }
      handler(data, message);
    });
  }
  source.addEventListener('open', () => { setLive('live'); if (onopen) onopen(); });
  source.addEventListener('error', () => {
    setLive(source.readyState === EventSource.CLOSED ? 'off' : 'reconnecting');
  });
  window.addEventListener('pagehide', () => source.close());
  return source;
}

/** The indicator in the nav: 'live', 'reconnecting', 'off', 'ended' or 'polling'. */
export function setLive(state) {
  const el = document.getElementById('live');
  if (!el) return;
  const text = { live: 'live', reconnecting: 'reconnecting…', off: 'not live', ended: 'run ended', polling: 'auto-refresh' }[state] || '';
  el.dataset.state = state;
  el.textContent = text;
  el.hidden = !text;
}

/** Op (or step) selection queries from "*load, a+ b" (commas or spaces between them). */
export function parseSelection(text) {
  const queries = text.split(/[\s,]+/).filter(Boolean);
  return queries.length ? queries : null;
}

/** The query string of the page as an object of arrays. */
export function queryParams() {
  const out = {};
  for (const [k, v] of new URLSearchParams(window.location.search)) (out[k] = out[k] || []).push(v);
  return out;
}
