// Mapped steps grouped by their op (the run detail's ``groups``): what the steps table and the
// timeline list, in order. A group (``process[*]``) stands where its first step would be (a
// group with no step yet follows the op it is mapped over); its steps follow it only while it
// is expanded, at most ``limit`` of them, then a "show more" item. Steps of a collapsed group
// are never turned into DOM nodes: a run of 10,000 mapped steps renders a few rows.

import { h, stateBadge } from './lib.js';

// Steps of an expanded group shown at first, and added by each "show more".
export const PAGE = 200;

/** ``process[a][b]`` -> ``process[*][*]``; a key that is not mapped is returned as is. */
export function groupLabel(key) {
  const at = key.indexOf('[');
  if (at < 0) return key;
  return key.slice(0, at) + '[*]'.repeat((key.match(/\[/g) || []).length);
}

/** A placeholder or template (``process[?]``), not a step that runs. */
export const isPlaceholder = (key) => key.includes('[?]');

/**
 * The rows to show, in order: ``{kind: 'step', key, step}``, ``{kind: 'group', key, group}``,
 * ``{kind: 'more', key, group, shown}`` (key: the step key, ``group:<handle>``,
 * ``more:<handle>``).
 * @param {object[]} steps the run detail's steps
 * @param {object[]} groups the run detail's groups
 * @param {Set<string>} expanded handles of the groups shown open
 * @param {Map<string, number>} limits per open group, how many of its steps to show
 */
export function displayItems(steps, groups, expanded, limits) {
  const byHandle = new Map(groups.map((g) => [g.group, g]));
  const members = new Map(groups.map((g) => [g.group, []]));
  for (const step of steps) {
    if (step.group && !isPlaceholder(step.step_key)) {
      if (!members.has(step.group)) members.set(step.group, []);
      members.get(step.group).push(step);
    }
  }
  const anchored = new Map(); // producer -> groups with no step, shown after it
  for (const g of groups) {
    if (!g.step_count && g.producer) {
      if (!anchored.has(g.producer)) anchored.set(g.producer, []);
      anchored.get(g.producer).push(g);
    }
  }
  const isAnchored = (handle) => {
    const g = byHandle.get(handle);
    return Boolean(g && !g.step_count && g.producer);
  };
  const items = [];
  const placed = new Set();
  const placeGroup = (g) => {
    placed.add(g.group);
    items.push({ kind: 'group', key: `group:${g.group}`, group: g });
    if (expanded.has(g.group)) {
      const all = members.get(g.group) || [];
      const shown = Math.min(all.length, limits.get(g.group) || PAGE);
      for (const step of all.slice(0, shown)) items.push({ kind: 'step', key: step.step_key, step, member: true });
      if (shown < all.length) items.push({ kind: 'more', key: `more:${g.group}`, group: g, shown, total: all.length });
    }
    followers(g.group);
  };
  function followers(name) {
    for (const g of anchored.get(name) || []) if (!placed.has(g.group)) placeGroup(g);
    anchored.delete(name);
  }
  for (const step of steps) {
    if (!step.group) {
      items.push({ kind: 'step', key: step.step_key, step });
      followers(step.step_key);
    } else if (!placed.has(step.group) && !isAnchored(step.group)) {
      placeGroup(byHandle.get(step.group) || syntheticGroup(step));
    }
  }
  for (const g of groups) if (!placed.has(g.group)) placeGroup(g);
  return items;
}

function syntheticGroup(step) {
  // a mapped step of an op the detail has no group for (not expected: every mapped step's op
  // has one); shown as its own group so that nothing is hidden
  return { group: step.group, label: groupLabel(step.step_key), state: step.state, step_count: 1, counts: { [step.state]: 1 } };
}

/** ``5 steps`` and one badge per state with steps (``4 succeeded``, ``1 failed``). */
export function countBadges(group) {
  const parts = Object.entries(group.counts || {}).filter(([, n]) => n > 0);
  return h('span', { class: 'group-counts', testid: 'group-counts' },
    h('span', { class: 'muted' }, `${group.step_count} step${group.step_count === 1 ? '' : 's'}`),
    parts.map(([state, n]) => h('span', { class: 'chip group-count', data: { state, count: String(n) } }, stateBadge(state), ` ${n}`)));
}

/** The ▸/▾ button that opens or closes a group (its label alone while it has no step). */
export function toggleButton(group, open, onToggle) {
  if (!group.step_count) return h('span', { class: 'group-toggle', title: group.label }, group.label);
  return h('button', {
    type: 'button', class: 'link group-toggle', 'aria-expanded': String(open),
    title: open ? `Hide the steps of ${group.label}` : `Show the steps of ${group.label}`,
    onclick: () => onToggle(group.group),
  }, h('span', { class: 'caret', 'aria-hidden': 'true' }, open ? '▾' : '▸'), ` ${group.label}`);
}
