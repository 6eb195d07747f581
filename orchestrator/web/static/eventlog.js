// A run's event log: every stored event (paged GETs), then live ones from the run's
// server-sent event stream (the browser resends Last-Event-ID itself when it reconnects;
// ids already shown are ignored). Filters by step, type, level and text; only matching
// rows are rendered, at most the last MAX_ROWS of them, appended in one batch per frame. The
// step filter offers a mapped op as one group (``process[*]``: the events of all its steps),
// not each of its thousands of steps; a click on a step key in a row filters that one step.

import { api, enc, h, fill, fmtClock, fmtTime, openStream, setLive } from './lib.js';
import { groupLabel } from './groups.js';

const PAGE = 1000;
const MAX_ROWS = 2000;
const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];
const RUN_LEVEL = '\u0000run'; // the step filter's value for events of no step
const RUN_END = new Set(['RUN_SUCCESS', 'RUN_FAILURE', 'RUN_CANCELED']);

/**
 * @param {string} runId
 * @param {object} hooks
 * @param {(event: object) => void} hooks.onEvent a live event arrived
 * @param {(end: {run_id: string, status: string}) => void} hooks.onEnd the run ended
 */
export function createEventLog(runId, { onEvent, onEnd }) {
  const events = [];
  const ids = new Set();
  const seen = { step: new Set(), type: new Set(), level: new Set() };
  const filters = { step: '', type: '', level: '', text: '' };
  let pending = [];
  let frame = null;
  let shownRows = 0;
  let matching = 0;
  let source = null;
  let optionsStale = true; // a new step, type or level was seen since the selects were filled

  const stepSelect = h('select', { id: 'ev-step', testid: 'event-filter-step', onchange: () => setFilter('step', stepSelect.value) });
  const typeSelect = h('select', { id: 'ev-type', testid: 'event-filter-type', onchange: () => setFilter('type', typeSelect.value) });
  const levelSelect = h('select', { id: 'ev-level', testid: 'event-filter-level', onchange: () => setFilter('level', levelSelect.value) });
  let searchTimer = null;
  const search = h('input', {
    id: 'ev-search', type: 'search', placeholder: 'text in message, step, type, error', testid: 'event-search',
    oninput: () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => setFilter('text', search.value.trim().toLowerCase()), 150); },
  });
  const follow = h('input', { id: 'ev-follow', type: 'checkbox', checked: true });
  const note = h('p', { class: 'muted small', role: 'status', testid: 'event-note' }, 'Loading events…');
  const tbody = h('tbody');
  const scroller = h('div', { class: 'log-scroll' },
    h('table', { class: 'grid log', testid: 'event-log' },
      h('thead', {}, h('tr', {}, ['Time', 'Level', 'Type', 'Step', 'Message'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  const status = h('span', { class: 'muted small', testid: 'event-stream-status' });

  const element = h('div', { class: 'event-log' },
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter events', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'ev-step' }, 'Step'), stepSelect),
      h('div', { class: 'field' }, h('label', { for: 'ev-type' }, 'Type'), typeSelect),
      h('div', { class: 'field' }, h('label', { for: 'ev-level' }, 'Level'), levelSelect),
      h('div', { class: 'field grow' }, h('label', { for: 'ev-search' }, 'Search'), search),
      h('div', { class: 'field check' }, follow, h('label', { for: 'ev-follow' }, 'Follow new events'))),
    h('div', { class: 'log-head' }, note, status),
    scroller);

  function ingest(ev) {
    if (ids.has(ev.id)) return false;
    ids.add(ev.id);
    const err = ev.error ? `${ev.error.type} ${ev.error.message}` : '';
    ev._text = `${ev.message || ''}\n${ev.type}\n${ev.step_key || ''}\n${err}`.toLowerCase();
    ev._group = ev.step_key ? groupLabel(ev.step_key) : ''; // the step key if not mapped
    events.push(ev);
    let grown = false;
    for (const [name, value] of [['step', ev._group], ['type', ev.type], ['level', ev.level]]) {
      if (value && !seen[name].has(value)) { seen[name].add(value); grown = true; }
    }
    if (grown) optionsStale = true;
    return true;
  }

  function matches(ev) {
    if (filters.step === RUN_LEVEL ? ev.step_key
      : (filters.step && ev.step_key !== filters.step && ev._group !== filters.step)) return false;
    if (filters.type && ev.type !== filters.type) return false;
    if (filters.level) {
      if (filters.level.startsWith('>=')) {
        if (LEVELS.indexOf(ev.level) < LEVELS.indexOf(filters.level.slice(2))) return false;
      } else if (ev.level !== filters.level) return false;
    }
    return !filters.text || ev._text.includes(filters.text);
  }

  function options(select, values, allLabel, extra) {
    const current = select.value;
    fill(select, h('option', { value: '' }, allLabel), extra || null, values.map((v) => h('option', { value: v }, v)));
    select.value = [...select.options].some((o) => o.value === current) ? current : '';
  }

  function renderOptions() {
    optionsStale = false;
    const steps = [...seen.step];
    // one mapped step picked from the log (a click on its key) is offered while it is the filter
    if (filters.step && filters.step !== RUN_LEVEL && !seen.step.has(filters.step)) steps.push(filters.step);
    options(stepSelect, steps, 'all steps', h('option', { value: RUN_LEVEL }, '(run events, no step)'));
    options(typeSelect, [...seen.type].sort(), 'all types');
    const levels = [...seen.level].sort((a, b) => LEVELS.indexOf(a) - LEVELS.indexOf(b));
    options(levelSelect, levels, 'all levels',
      [h('option', { value: '>=WARNING' }, 'WARNING and worse'), h('option', { value: '>=ERROR' }, 'ERROR and worse')]);
  }

  function row(ev) {
    const details = [];
    if (ev.error) details.push(errorDetails(ev.error));
    if (ev.data && Object.keys(ev.data).length) details.push(dataDetails(ev.data));
    return h('tr', { testid: 'event-row', class: `lvl-${ev.level}`, data: { eventId: ev.id, type: ev.type, level: ev.level } },
      h('td', { class: 'mono nowrap' }, h('time', { title: fmtTime(ev.timestamp, true) }, fmtClock(ev.timestamp))),
      h('td', {}, h('span', { class: `lvl lvl-${ev.level}` }, ev.level)),
      h('td', { class: 'mono small' }, ev.type),
      h('td', { class: 'mono small' }, ev.step_key
        ? h('button', { type: 'button', class: 'link', title: `Only events of ${ev.step_key}`, onclick: () => filterStep(ev.step_key) }, ev.step_key)
        : ''),
      h('td', { class: 'msg' }, h('span', {}, ev.message || ''), details));
  }

  function setFilter(name, value) {
    filters[name] = value;
    renderAll();
  }

  function filterStep(key) {
    filters.step = key;
    renderOptions();
    stepSelect.value = key;
    renderAll();
  }

  function renderNote() {
    const filtered = filters.step || filters.type || filters.level || filters.text;
    let text = `${events.length} event${events.length === 1 ? '' : 's'}`;
    if (filtered) text = `${matching} of ${text} match`;
    if (matching > shownRows) text += ` — showing the last ${shownRows}; narrow the filters to see older ones`;
    note.textContent = text;
  }

  function renderAll() {
    if (optionsStale) renderOptions();
    const found = events.filter(matches);
    matching = found.length;
    const shown = found.slice(-MAX_ROWS);
    const frag = document.createDocumentFragment();
    for (const ev of shown) frag.append(row(ev));
    tbody.replaceChildren(frag);
    shownRows = shown.length;
    renderNote();
    if (follow.checked) scroller.scrollTop = scroller.scrollHeight;
  }

  function flush() {
    frame = null;
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 30;
    const frag = document.createDocumentFragment();
    for (const ev of pending) {
      if (!matches(ev)) continue;
      frag.append(row(ev));
      matching += 1;
      shownRows += 1;
    }
    pending = [];
    if (optionsStale) renderOptions();
    tbody.append(frag);
    while (shownRows > MAX_ROWS && tbody.firstChild) {
      tbody.firstChild.remove();
      shownRows -= 1;
    }
    renderNote();
    if (follow.checked && atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  function receive(ev) {
    if (!ingest(ev)) return;
    pending.push(ev);
    if (frame === null) frame = requestAnimationFrame(flush);
    onEvent(ev);
  }

  async function loadAll() {
    let after = null;
    for (;;) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (after) q.set('after', after);
      const page = await api('GET', `/api/runs/${enc(runId)}/events?${q}`);
      for (const ev of page.events) ingest(ev);
      after = page.cursor || after;
      note.textContent = `Loading events… ${events.length}`;
      if (!page.has_more || !page.events.length) return after;
    }
  }

  return {
    element,
    /** Load the stored events, then follow the live ones. */
    async start() {
      renderOptions();
      let after = null;
      try {
        after = await loadAll();
      } finally {
        renderAll();
      }
      if (events.some((ev) => RUN_END.has(ev.type))) {
        // Ended before the page opened: nothing more will come, no stream to hold open.
        status.textContent = 'run ended';
        return;
      }
      const url = `/api/runs/${enc(runId)}/events/stream${after ? `?after=${enc(after)}` : ''}`;
      status.textContent = 'live';
      source = openStream(url, {
        event: receive,
        end: (end) => {
          source.close();
          setLive('ended');
          status.textContent = `run ended: ${end.status}`;
          onEnd(end);
        },
      });
      source.addEventListener('error', () => {
        if (source.readyState === EventSource.CLOSED) status.textContent = 'live updates stopped (reload the page)';
        else status.textContent = 'reconnecting…';
      });
      source.addEventListener('open', () => { status.textContent = 'live'; });
    },
    /** How many events are known: the stored ones loaded, then the live ones. */
    get count() { return events.length; },
    /** Step keys of the run (from its detail; a mapped op's group label, ``process[*]``),
     * listed first in the step filter. */
    knowSteps(keys) {
      let grown = false;
      for (const key of keys) if (!seen.step.has(key)) { seen.step.add(key); grown = true; }
      if (grown) renderOptions();
    },
  };
}

function errorDetails(error) {
  const parts = [];
  for (let e = error, depth = 0; e && depth < 10; e = e.cause, depth += 1) {
    parts.push(h('div', { class: 'err-block' },
      depth ? h('p', { class: 'muted small' }, 'caused by') : null,
      h('p', { class: 'err-title' }, `${e.type}: ${e.message}`),
      e.stack ? h('pre', { class: 'code stack' }, e.stack) : null));
  }
  return h('details', { class: 'ev-details error' },
    h('summary', {}, `${error.type}: ${error.message}`.slice(0, 200)), parts);
}

function dataDetails(data) {
  const pre = h('pre', { class: 'code' });
  const details = h('details', { class: 'ev-details' }, h('summary', {}, 'data'), pre);
  // Built on first open: most rows are never opened, and 10,000 JSON dumps cost time.
  details.addEventListener('toggle', () => {
    if (details.open && !pre.textContent) pre.textContent = JSON.stringify(data, null, 2);
  });
  return details;
}
