// A run (``/runs/{run_id}``): header (status, job, times, tags, driver, lineage), Cancel and
// Re-execute, the step timeline, the steps with their wait reasons, and the event log. Mapped
// steps are grouped by op (``process[*]``), open on demand. The detail is re-fetched on live
// events (at most every 500 ms), never on a timer; a timer only moves "now" for a run still
// going.

import {
  api, enc, h, fill, flash, errorMessage, throttle, statusBadge, stateBadge, runLink, tagChips,
  timeEl, fmtDuration, shortId, parseSelection, FINISHED,
} from './lib.js';
import { createTimeline } from './timeline.js';
import { createEventLog } from './eventlog.js';
import { createSteps } from './steps.js';
import { groupLabel } from './groups.js';

export async function render(root, runId) {
  let detail = await api('GET', `/api/runs/${enc(runId)}`);
  const title = h('h1', {}, 'Run ', h('span', { class: 'mono', title: runId }, shortId(runId)));
  const statusSlot = h('span', { class: 'status-slot' });
  const facts = h('dl', { class: 'facts run-facts' });
  const driverNote = h('p', { class: 'driver-note', testid: 'driver-note', role: 'status' });
  const counts = h('div', { class: 'chips step-counts', testid: 'step-counts' });

  const cancelButton = h('button', { type: 'button', class: 'danger', testid: 'cancel-button', onclick: cancel }, 'Cancel run');
  const strategy = h('select', { id: 'rx-strategy', testid: 'reexecute-strategy', onchange: syncStrategy },
    h('option', { value: 'all' }, 'all steps'),
    h('option', { value: 'from_failure' }, 'from failure'),
    h('option', { value: 'selected' }, 'selected steps'));
  const stepsInput = h('input', {
    id: 'rx-steps', type: 'text', testid: 'reexecute-steps', placeholder: 'step queries, e.g. load_orders+, *summarize',
    autocomplete: 'off', spellcheck: 'false',
    oninput: () => { if (stepsInput.value.trim()) strategy.value = 'selected'; },
  });
  const reexecuteButton = h('button', { type: 'button', class: 'primary', testid: 'reexecute-button', onclick: reexecute }, 'Re-execute');
  const actionNote = h('span', { class: 'muted small', role: 'status' });

  const timeline = createTimeline();
  const expanded = new Set(); // handles of the mapped op groups shown open
  const limits = new Map(); // per open group, how many of its steps are shown
  const toggleGroup = (handle) => {
    if (expanded.has(handle)) expanded.delete(handle); else expanded.add(handle);
    renderSteps(Date.now() / 1000);
  };
  const showMore = (handle, shown) => {
    limits.set(handle, shown);
    renderSteps(Date.now() / 1000);
  };
  const steps = createSteps({
    onCheck: (keys) => {
      stepsInput.value = keys.join(', ');
      if (keys.length) strategy.value = 'selected';
      syncStrategy();
    },
    onToggle: toggleGroup,
    onMore: showMore,
  });
  const refreshSoon = throttle(refresh, 500);
  const log = createEventLog(runId, { onEvent: refreshSoon, onEnd: () => refresh() });

  fill(root,
    h('div', { class: 'page-head run-head' }, title, statusSlot),
    h('section', { class: 'run-summary', 'aria-label': 'Run' }, facts, driverNote, counts,
      h('form', { class: 'actions', 'aria-label': 'Run actions', onsubmit: (e) => e.preventDefault() },
        cancelButton,
        h('span', { class: 'sep', 'aria-hidden': 'true' }),
        h('label', { for: 'rx-strategy' }, 'Re-execute'),
        strategy,
        h('label', { for: 'rx-steps', class: 'visually-hidden' }, 'Steps to re-execute'),
        stepsInput,
        reexecuteButton,
        actionNote)),
    h('section', { 'aria-labelledby': 'h-timeline' }, h('h2', { id: 'h-timeline' }, 'Timeline'), timeline.element),
    h('section', { 'aria-labelledby': 'h-steps' }, h('h2', { id: 'h-steps' }, 'Steps'), steps.element),
    h('section', { 'aria-labelledby': 'h-events' }, h('h2', { id: 'h-events' }, 'Events'), log.element));

  function syncStrategy() {
    stepsInput.disabled = strategy.value !== 'selected';
  }

  function renderDetail() {
    const { run } = detail;
    const now = Date.now() / 1000;
    const finished = FINISHED.has(run.status);
    document.title = `${run.job_name} ${shortId(run.run_id)} ${run.status} · orchestrator`;
    fill(statusSlot, statusBadge(run.status));
    const fact = (label, ...value) => h('div', {}, h('dt', {}, label), h('dd', {}, ...value));
    const duration = run.start_time ? (run.end_time ?? now) - run.start_time : null;
    fill(facts,
      fact('Job', h('a', { href: `/?job=${enc(run.job_name)}`, testid: 'run-job' }, run.job_name)),
      run.partition_key ? fact('Partition', run.partition_key) : null,
      fact('Created', timeEl(run.created_at)),
      fact('Started', timeEl(run.start_time)),
      fact('Ended', timeEl(run.end_time)),
      fact('Duration', h('span', { data: !finished && run.start_time ? { since: String(run.start_time) } : {} },
        fmtDuration(duration))),
      run.op_selection ? fact('Op selection', h('code', {}, run.op_selection.join(', '))) : null,
      run.code_location ? fact('Code location', run.code_location) : null,
      fact('Tags', tagChips(run.tags)),
      detail.parent_run_id ? fact('Re-execution of', runLink(detail.parent_run_id)) : null,
      detail.child_run_ids.length ? fact('Re-executed as', h('span', { class: 'chips' },
        detail.child_run_ids.map((id) => runLink(id)))) : null,
      fact('Run id', h('code', { class: 'small' }, run.run_id)),
      fact('Events', String(detail.event_count)));
    driverNote.textContent = detail.driver ? `Driver: ${detail.driver}` : '';
    driverNote.hidden = !detail.driver;
    driverNote.classList.toggle('warn', Boolean(detail.driver) && !detail.driver.startsWith('driven by'));
    fill(counts, Object.entries(detail.step_counts).map(([state, n]) =>
      h('span', { class: 'chip', data: { state } }, stateBadge(state), ` ${n}`)));
    if (finished && actionNote.textContent.startsWith('Cancel requested')) actionNote.textContent = '';
    cancelButton.disabled = finished;
    cancelButton.title = finished ? `The run is ${run.status}` : 'Stop the run';
    reexecuteButton.disabled = !finished;
    reexecuteButton.title = finished ? 'Launch a new run of this job' : 'Wait for the run to end to re-execute it';
    renderSteps(now);
    // the step filter offers a mapped op's group (process[*]), not each of its steps
    log.knowSteps([...new Set(detail.steps.map((s) => (s.group ? groupLabel(s.step_key) : s.step_key)))]);
  }

  function renderSteps(now) {
    const groups = detail.groups || [];
    timeline.update(detail.steps, groups, detail.run, now,
      { expanded, limits, onToggle: toggleGroup, onMore: showMore });
    steps.update(detail.steps, groups, runId, expanded, limits);
  }

  async function refresh() {
    try {
      detail = await api('GET', `/api/runs/${enc(runId)}`);
      renderDetail();
    } catch (err) {
      flash(errorMessage(err));
    }
  }

  async function cancel() {
    cancelButton.disabled = true;
    try {
      const result = await api('POST', `/api/runs/${enc(runId)}/cancel`);
      actionNote.textContent = `Cancel requested: the run is ${result.status}.`;
    } catch (err) {
      flash(errorMessage(err));
    }
    await refresh();
  }

  async function reexecute() {
    const body = { strategy: strategy.value, step_selection: null };
    if (body.strategy === 'selected') {
      body.step_selection = parseSelection(stepsInput.value);
      if (!body.step_selection) {
        flash('Name the steps to re-execute (or check them in the steps table).');
        stepsInput.focus();
        return;
      }
    }
    reexecuteButton.disabled = true;
    try {
      const result = await api('POST', `/api/runs/${enc(runId)}/reexecute`, body);
      window.location.assign(`/runs/${enc(result.run_id)}`);
    } catch (err) {
      flash(`Re-execute failed: ${errorMessage(err)}`);
      reexecuteButton.disabled = false;
    }
  }

  // "Now" moves for a run still going: open timeline bars and running durations (no request).
  setInterval(() => {
    if (document.visibilityState !== 'visible' || FINISHED.has(detail.run.status)) return;
    const now = Date.now() / 1000;
    timeline.tick(now);
    for (const el of root.querySelectorAll('[data-since]')) {
      el.textContent = fmtDuration(now - parseFloat(el.dataset.since));
    }
  }, 1000);

  syncStrategy();
  renderDetail();
  await log.start();
  // Events stored between the detail's fetch and the log's load come on no stream (and if the
  // run ended meanwhile, no stream opens at all): the detail is stale, fetch it again.
  if (log.count > detail.event_count) await refresh();
}
