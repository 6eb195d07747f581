// Runs (``/runs``): newest first, filtered by status, job and tags (kept in the URL so a
// link shares the view), counts per status, "Load more" by cursor, and live: the runs feed
// (server-sent events) triggers a re-fetch of the first page, at most once per second.

import {
  api, enc, h, fill, flash, errorMessage, emptyState, queryParams, throttle, openStream,
  statusBadge, runLink, tagChips, timeEl, fmtDuration, STATUSES, FINISHED,
} from './lib.js';

const PAGE = 50;
const MAX_PAGE = 500;

export async function render(root) {
  const params = queryParams();
  const filters = {
    status: (params.status || []).map((s) => s.toUpperCase()).filter((s) => STATUSES.includes(s)),
    job: (params.job || [])[0] || '',
    tags: (params.tag || []).filter((t) => t.includes('=')),
  };
  const pageSize = Math.min(MAX_PAGE, Math.max(1, parseInt((params.limit || [])[0], 10) || PAGE));
  const st = { runs: [], cursor: null, counts: {}, seq: 0, loaded: false };

  const countsBar = h('div', { class: 'chips status-counts', role: 'group', 'aria-label': 'Runs per status' });
  const statusSelect = h('select', { id: 'f-status', onchange: () => setFilter('status', statusSelect.value ? [statusSelect.value] : []) },
    h('option', { value: '' }, 'any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const jobInput = h('input', {
    id: 'f-job', type: 'search', list: 'job-names', placeholder: 'any job', autocomplete: 'off',
    testid: 'filter-job', onchange: () => setFilter('job', jobInput.value.trim()),
  });
  const jobNames = h('datalist', { id: 'job-names' });
  const tagInput = h('input', {
    id: 'f-tag', type: 'text', placeholder: 'key=value', autocomplete: 'off', testid: 'filter-tag',
    onkeydown: (event) => { if (event.key === 'Enter') { event.preventDefault(); addTag(); } },
  });
  const tagError = h('span', { class: 'field-error', role: 'alert' });
  const activeTags = h('span', { class: 'chips' });
  const tbody = h('tbody');
  const table = h('table', { class: 'grid runs', testid: 'runs-table' },
    h('thead', {}, h('tr', {},
      ['Run', 'Job', 'Status', 'Created', 'Started', 'Duration', 'Tags'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const empty = h('div');
  const moreButton = h('button', { type: 'button', testid: 'load-more', onclick: loadMore }, 'Load more');
  const footer = h('div', { class: 'table-foot' }, moreButton);

  fill(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Runs'), h('a', { class: 'button', href: '/' }, 'Launch a run')),
    countsBar,
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), statusSelect),
      h('div', { class: 'field' }, h('label', { for: 'f-job' }, 'Job'), jobInput, jobNames),
      h('div', { class: 'field' }, h('label', { for: 'f-tag' }, 'Tag'),
        h('span', { class: 'inline' }, tagInput, h('button', { type: 'button', onclick: addTag }, 'Add')), tagError),
      h('div', { class: 'field' }, h('span', { class: 'label' }, 'Tag filters'), activeTags),
      h('button', { type: 'button', class: 'link', onclick: clearFilters }, 'Clear filters')),
    h('div', { class: 'table-wrap' }, table),
    empty,
    footer);

  api('GET', '/api/jobs').then((data) => {
    const names = [...new Set((data.jobs || []).map((j) => j.name))].sort();
    fill(jobNames, names.map((n) => h('option', { value: n })));
  }).catch(() => {});

  function syncInputs() {
    statusSelect.value = filters.status.length === 1 ? filters.status[0] : '';
    jobInput.value = filters.job;
    fill(activeTags, filters.tags.length ? filters.tags.map((t) => h('span', { class: 'chip tag' }, t,
      h('button', { type: 'button', class: 'link', 'aria-label': `Remove tag filter ${t}`, onclick: () => removeTag(t) }, '×')))
      : h('span', { class: 'muted' }, 'none'));
  }

  function query(extra) {
    const q = new URLSearchParams();
    for (const s of filters.status) q.append('status', s);
    if (filters.job) q.set('job', filters.job);
    for (const t of filters.tags) q.append('tag', t);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q;
  }

  function setFilter(name, value) {
    filters[name] = value;
    const q = query(pageSize !== PAGE ? { limit: pageSize } : {});
    window.history.replaceState({}, '', `/runs${q.toString() ? `?${q}` : ''}`);
    syncInputs();
    st.runs = [];
    st.cursor = null;
    refresh();
  }

  function addTag() {
    const value = tagInput.value.trim();
    if (!value) return;
    if (value.indexOf('=') <= 0) {
      tagError.textContent = 'expected key=value';
      return;
    }
    tagError.textContent = '';
    tagInput.value = '';
    if (!filters.tags.includes(value)) setFilter('tags', [...filters.tags, value]);
  }

  function removeTag(tag) { setFilter('tags', filters.tags.filter((t) => t !== tag)); }

  function clearFilters() {
    filters.status = [];
    filters.job = '';
    setFilter('tags', []);
  }

  /** Fetch the first page again (as many rows as are shown, up to MAX_PAGE). */
  async function refresh() {
    const seq = ++st.seq;
    const limit = Math.min(MAX_PAGE, Math.max(pageSize, st.runs.length));
    try {
      const data = await api('GET', `/api/runs?${query({ limit })}`);
      if (seq !== st.seq) return;
      st.runs = data.runs;
      st.cursor = data.cursor;
      st.counts = data.counts || {};
      st.loaded = true;
      renderAll();
    } catch (err) {
      if (seq === st.seq) flash(errorMessage(err));
    }
  }

  async function loadMore() {
    if (!st.cursor) return;
    const seq = st.seq;
    moreButton.disabled = true;
    try {
      const data = await api('GET', `/api/runs?${query({ limit: pageSize, cursor: st.cursor })}`);
      if (seq !== st.seq) return; // the list was re-fetched meanwhile
      const known = new Set(st.runs.map((r) => r.run_id));
      st.runs.push(...data.runs.filter((r) => !known.has(r.run_id)));
      st.cursor = data.cursor;
      renderAll();
    } catch (err) {
      flash(errorMessage(err));
    } finally {
      moreButton.disabled = false;
    }
  }

  function renderCounts() {
    const total = Object.values(st.counts).reduce((a, b) => a + b, 0);
    const chip = (status, label, n) => {
      const active = status ? filters.status.length === 1 && filters.status[0] === status : !filters.status.length;
      return h('button', {
        type: 'button', class: `chip count ${status ? `status-${status}` : ''}`, testid: 'status-count',
        data: { status: status || 'ALL', count: String(n) }, 'aria-pressed': String(active),
        onclick: () => setFilter('status', status && !active ? [status] : []),
      }, h('span', {}, label), h('b', {}, String(n)));
    };
    fill(countsBar, chip('', 'All', total), STATUSES.map((s) => chip(s, s, st.counts[s] || 0)));
  }

  function renderRows() {
    const frag = document.createDocumentFragment();
    for (const run of st.runs) {
      const live = !FINISHED.has(run.status) && run.start_time;
      frag.append(h('tr', { testid: 'run-row', data: { runId: run.run_id, status: run.status } },
        h('td', {}, runLink(run.run_id)),
        h('td', {}, h('a', { href: `/runs?job=${enc(run.job_name)}`, title: `Runs of ${run.job_name}`,
          onclick: (e) => {
            if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
            e.preventDefault();
            setFilter('job', run.job_name);
          } }, run.job_name),
        run.partition_key ? h('span', { class: 'muted small' }, ` · ${run.partition_key}`) : null),
        h('td', {}, statusBadge(run.status)),
        h('td', {}, timeEl(run.created_at)),
        h('td', {}, timeEl(run.start_time)),
        h('td', { class: 'num', data: live ? { since: String(run.start_time) } : {} },
          live ? fmtDuration(Date.now() / 1000 - run.start_time) : fmtDuration(run.duration_seconds)),
        h('td', {}, tagChips(run.tags, (k, v) => {
          if (!filters.tags.includes(`${k}=${v}`)) setFilter('tags', [...filters.tags, `${k}=${v}`]);
        }))));
    }
    tbody.replaceChildren(frag);
  }

  function renderAll() {
    renderCounts();
    renderRows();
    const filtered = filters.status.length || filters.job || filters.tags.length;
    table.hidden = !st.runs.length;
    fill(empty, !st.runs.length && st.loaded ? (filtered
      ? emptyState('No runs match these filters. ', h('button', { type: 'button', class: 'link', onclick: clearFilters }, 'Clear filters'))
      : emptyState('No runs yet — launch one from ', h('a', { href: '/' }, 'Jobs'), '.')) : null);
    footer.hidden = !st.cursor;
  }

  // Running runs' durations tick locally (no request).
  setInterval(() => {
    if (document.visibilityState !== 'visible') return;
    const now = Date.now() / 1000;
    for (const cell of tbody.querySelectorAll('td[data-since]')) {
      cell.textContent = fmtDuration(now - parseFloat(cell.dataset.since));
    }
  }, 1000);

  syncInputs();
  renderAll();
  await refresh();
  const refreshSoon = throttle(refresh, 1000);
  openStream('/api/stream/runs', { run: refreshSoon }, refreshSoon);
}
