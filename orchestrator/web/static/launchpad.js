// The Launchpad of one job: config editor, op selection with a preview of the selected ops,
// tags, partition, and Launch. The server judges validity: each change is sent (debounced)
// to POST /api/jobs/{job}/check, and Launch stays disabled until the latest check of the
// current inputs says valid.

import { api, enc, h, fill, flash, clearFlash, errorMessage, debounce, parseSelection } from './lib.js';
import { createEditor } from './editor.js';
import { toYaml } from './yaml.js';

const CHECK_DELAY_MS = 300;

/** Tags from "key=value" lines: {tags, problems}. Blank lines and "#" comments are skipped. */
export function parseTags(text) {
  const tags = {};
  const problems = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const at = line.indexOf('=');
    if (at <= 0) {
      problems.push(`tags line ${i + 1}: expected key=value, got "${line}"`);
      return;
    }
    tags[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  });
  return { tags, problems };
}

export function createLaunchpad(job) {
  const st = {
    seq: 0, // id of the latest check sent; older answers are dropped
    inFlight: false, // the latest check has not answered yet
    dirty: true, // the inputs changed since the latest check was sent
    valid: false, // what the latest answered check said
    launching: false,
    selected: null, // handles of the selected ops (null: not known yet)
    destroyed: false,
  };

  const editor = createEditor({ id: 'run-config', onInput: changed, onSubmit: () => launch() });
  const errorsList = h('ul', { class: 'config-errors', testid: 'config-errors', 'aria-live': 'polite' });
  const checkStatus = h('span', { class: 'check-status', testid: 'check-status', role: 'status' });
  const scaffoldButton = h('button', {
    type: 'button', testid: 'scaffold-button', onclick: scaffold,
    title: 'Fill in the required config fields the editor lacks (defaults or typed placeholders)',
  }, 'Scaffold missing config');
  const opSelection = h('input', {
    id: 'op-selection', type: 'text', testid: 'op-selection', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'all ops — e.g. *load, extract+, summarize', oninput: changed,
  });
  const selectedOps = h('ul', { class: 'chips op-chips', testid: 'selected-ops', 'aria-label': 'Ops of the job' });
  const selectedCount = h('p', { class: 'muted small', role: 'status' });
  const tagsInput = h('textarea', {
    id: 'run-tags', class: 'code', testid: 'tags-input', rows: 3, spellcheck: 'false',
    placeholder: 'key=value, one per line', oninput: changed,
  });
  const tagsProblems = h('p', { class: 'field-error', testid: 'tags-errors', role: 'alert' });
  let partitionSelect = null;
  if (job.partitions) {
    partitionSelect = h('select', { id: 'partition', testid: 'partition-select', onchange: changed },
      h('option', { value: '' }, '— no partition —'),
      job.partitions.map((key) => h('option', { value: key }, key)));
  }
  const launchButton = h('button', {
    type: 'button', class: 'primary', testid: 'launch-button', disabled: true, onclick: () => launch(),
  }, 'Launch run');
  const launchNote = h('span', { class: 'muted small', testid: 'launch-note' });

  const element = h('form', {
    class: 'launchpad', 'aria-label': `Launch ${job.name}`, novalidate: true,
    onsubmit: (event) => event.preventDefault(),
  },
  h('div', { class: 'lp-config' },
    h('div', { class: 'lp-toolbar' },
      h('label', { for: 'run-config' }, 'Run config (YAML)'),
      checkStatus,
      scaffoldButton),
    editor.element,
    h('p', { id: 'run-config-help', class: 'muted small' },
      'Checked by the server as you type. Ctrl+Enter launches; Esc then Tab leaves the editor.'),
    errorsList),
  h('div', { class: 'lp-side' },
    h('div', { class: 'field' },
      h('label', { for: 'op-selection' }, 'Op selection'),
      opSelection,
      selectedCount,
      selectedOps),
    partitionSelect ? h('div', { class: 'field' }, h('label', { for: 'partition' }, 'Partition'), partitionSelect) : null,
    h('div', { class: 'field' },
      h('label', { for: 'run-tags' }, 'Tags'),
      tagsInput,
      tagsProblems),
    h('div', { class: 'lp-launch' }, launchButton, launchNote)),
  h('details', { class: 'schema' },
    h('summary', {}, 'Config schema (JSON Schema)'),
    h('pre', { class: 'code' }, JSON.stringify(job.config_schema, null, 2))));

  const debouncedCheck = debounce(check, CHECK_DELAY_MS);

  function inputs() {
    const { tags, problems } = parseTags(tagsInput.value);
    return {
      problems,
      body: {
        location: job.location,
        run_config_yaml: editor.value,
        tags,
        op_selection: parseSelection(opSelection.value),
        partition_key: partitionSelect && partitionSelect.value ? partitionSelect.value : null,
      },
    };
  }

  function changed() {
    st.dirty = true;
    const { problems } = inputs();
    tagsProblems.textContent = problems.join('; ');
    update();
    debouncedCheck();
  }

  async function check() {
    const seq = ++st.seq;
    const { body } = inputs();
    st.dirty = false;
    st.inFlight = true;
    update();
    let result;
    try {
      result = await api('POST', `/api/jobs/${enc(job.name)}/check`, body);
    } catch (err) {
      result = { valid: false, errors: apiErrors(err), selected_ops: st.selected };
    }
    if (seq !== st.seq || st.destroyed) return; // a newer check is on its way
    st.inFlight = false;
    st.valid = Boolean(result.valid);
    st.selected = result.selected_ops;
    showErrors(result.errors || []);
    renderOps();
    update();
  }

  function apiErrors(err) {
    const errors = (err.errors || []).map((e) => ({ path: e.path || '', message: e.message, line: e.line }));
    return errors.length ? errors : [{ path: '', message: errorMessage(err), line: null }];
  }

  function showErrors(errors) {
    editor.mark(errors);
    fill(errorsList, errors.map((err) => {
      const line = Number.isInteger(err.line) ? err.line : null;
      return h('li', {
        class: 'config-error', testid: 'config-error', data: { path: err.path || '', line: line ?? '' },
      },
      line ? h('button', {
        type: 'button', class: 'link line-link', title: `Go to line ${line}`,
        onclick: () => editor.focusLine(line),
      }, `line ${line}`) : null,
      err.path ? h('code', { class: 'err-path' }, err.path) : null,
      err.path ? ': ' : null,
      h('span', {}, err.message));
    }));
  }

  function renderOps() {
    const selected = st.selected ? new Set(st.selected) : null;
    let count = 0;
    fill(selectedOps, job.ops.map((op) => {
      const on = selected ? selected.has(op.handle) : true;
      if (on) count += 1;
      const hint = [op.description, op.upstream.length ? `after ${op.upstream.join(', ')}` : 'no upstream ops']
        .filter(Boolean).join(' — ');
      return h('li', {
        class: on ? 'chip op on' : 'chip op off', title: hint,
        data: { op: op.handle, selected: String(on) },
      }, op.handle);
    }));
    selectedCount.textContent = `${count} of ${job.ops.length} ops selected`;
  }

  function update() {
    const { problems } = inputs();
    let note = '';
    if (st.launching) note = 'Launching…';
    else if (problems.length) note = 'Fix the tags first.';
    else if (st.dirty || st.inFlight) note = 'Checking the config…';
    else if (!st.valid) note = 'Fix the problems above to launch.';
    const ready = !note;
    launchButton.disabled = !ready;
    launchNote.textContent = note;
    checkStatus.dataset.state = st.dirty || st.inFlight ? 'checking' : (st.valid ? 'valid' : 'invalid');
    checkStatus.textContent = {
      checking: 'Checking…', valid: '✓ valid', invalid: `✗ ${errorsList.children.length || ''} problem${errorsList.children.length === 1 ? '' : 's'}`,
    }[checkStatus.dataset.state];
  }

  async function scaffold() {
    scaffoldButton.disabled = true;
    try {
      const result = await api('POST', `/api/jobs/${enc(job.name)}/scaffold`, inputs().body);
      editor.value = result.run_config_yaml || '';
      debouncedCheck.cancel();
      st.dirty = true;
      await check();
    } catch (err) {
      showErrors(apiErrors(err));
      flash(errorMessage(err));
    } finally {
      scaffoldButton.disabled = false;
    }
  }

  async function launch() {
    if (launchButton.disabled) return;
    const { body } = inputs();
    st.launching = true;
    update();
    try {
      const result = await api('POST', '/api/runs', { job: job.name, ...body });
      clearFlash();
      window.location.assign(`/runs/${enc(result.run_id)}`);
    } catch (err) {
      st.launching = false;
      showErrors(apiErrors(err));
      flash(`Launch failed: ${errorMessage(err)}`);
      update();
    }
  }

  return {
    element,
    start() {
      editor.value = toYaml(job.default_run_config || {});
      renderOps();
      check();
    },
    destroy() {
      st.destroyed = true;
      debouncedCheck.cancel();
    },
  };
}
