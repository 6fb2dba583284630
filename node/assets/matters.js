/*
 * jobmesh — service matters and protocol versions on the page.
 *
 * A contained addition to app.js (loaded after it, sharing its globals: t,
 * I18N, el, $, state, bindForm, apiGet, setFigure, fmtNum, isNum):
 *   #matter-form (staff tab)        POST /v1/matters: category, channel, key_group?, summary, status
 *   #matters-figures (overview)     the subtree's matters: opened, resolved, open now,
 *                                   median days to resolve, by category and channel
 *   #screen-matters (screen)        matters open now and resolved, for the market screen
 *   mesh view                       each link's negotiated protocol and the records
 *                                   held for an older peer ([data-protocol], [data-held])
 */
(function () {
  const MATTER_CATEGORIES = ['rights_protection', 'policy_consultation', 'job_search', 'return_to_work',
    'enterprise_visit', 'training_referral', 'other'];
  const CHANNELS = ['walk_in', 'hotline_12333', 'online', 'outreach'];
  Object.assign(I18N.zh, {
    'mform.title': '服务事项登记', 'mfld.category': '事项类别', 'mfld.channel': '受理渠道',
    'mfld.key_group': '人员类别（可选）', 'mfld.summary': '事项摘要', 'mfld.status': '办理状态',
    'mbtn.save': '登记事项', 'ok.matter': '已登记服务事项',
    'mc.rights_protection': '劳动维权', 'mc.policy_consultation': '政策咨询', 'mc.job_search': '求职帮扶',
    'mc.return_to_work': '返岗帮扶', 'mc.enterprise_visit': '走访企业', 'mc.training_referral': '培训推荐',
    'mc.other': '其他',
    'ch.walk_in': '现场窗口', 'ch.hotline_12333': '12333热线', 'ch.online': '网上办理', 'ch.outreach': '上门服务',
    'ms.open': '办理中', 'ms.resolved': '已办结',
    'mfig.title': '服务事项', 'mfig.opened': '受理事项', 'mfig.resolved': '已办结', 'mfig.open_now': '办理中',
    'mfig.median': '办结天数（中位数）', 'mfig.by_category': '按事项类别', 'mfig.by_channel': '按受理渠道',
    'mfig.none': '暂无服务事项', 'mfig.days': '{n} 天',
    'mesh.protocol': '协议版本', 'mesh.held': '待对方升级',
    'mesh.held_note': '{n} 条记录等待该节点升级后发送',
  });
  Object.assign(I18N.en, {
    'mform.title': 'Service matter', 'mfld.category': 'Category', 'mfld.channel': 'Channel',
    'mfld.key_group': 'Key group (optional)', 'mfld.summary': 'Summary', 'mfld.status': 'Status',
    'mbtn.save': 'Record matter', 'ok.matter': 'Matter recorded',
    'mc.rights_protection': 'Rights protection', 'mc.policy_consultation': 'Policy consultation',
    'mc.job_search': 'Job-search help', 'mc.return_to_work': 'Return to work', 'mc.enterprise_visit': 'Enterprise visit',
    'mc.training_referral': 'Training referral', 'mc.other': 'Other',
    'ch.walk_in': 'Walk-in', 'ch.hotline_12333': '12333 hotline', 'ch.online': 'Online', 'ch.outreach': 'Outreach',
    'ms.open': 'Open', 'ms.resolved': 'Resolved',
    'mfig.title': 'Service matters', 'mfig.opened': 'Opened', 'mfig.resolved': 'Resolved', 'mfig.open_now': 'Open now',
    'mfig.median': 'Median days to resolve', 'mfig.by_category': 'By category', 'mfig.by_channel': 'By channel',
    'mfig.none': 'No service matters yet', 'mfig.days': '{n} days', 'mfig.days.one': '1 day',
    'mesh.protocol': 'Protocol', 'mesh.held': 'Held for upgrade',
    'mesh.held_note': '{n} records wait for this office to upgrade',
    'mesh.held_note.one': '1 record waits for this office to upgrade',
  });

  function options(select, values, prefix, empty) {
    const opts = values.map((v) => el('option', { value: v }, t(prefix + v)));
    if (empty) opts.unshift(el('option', { value: '' }, t(empty)));
    replaceChildren(select, opts);
  }

  function field(name, label, control, required) {
    return [el('label', { class: required ? 'req' : null }, [el('span', { 'data-i18n': label }, t(label)), control]),
      el('div', { class: 'field-error', 'data-field': name, hidden: '' })];
  }

  function buildForm() {
    const anchor = $('#placement-form');
    if (!anchor || $('#matter-form')) return;
    const form = el('form', { id: 'matter-form', class: 'card form', novalidate: '', autocomplete: 'off' });
    const category = el('select', { name: 'category', 'data-testid': 'matter-category' });
    const channel = el('select', { name: 'channel', 'data-testid': 'matter-channel' });
    const group = el('select', { name: 'key_group' });
    const status = el('select', { name: 'status' });
    appendAll(form, [
      el('h2', { 'data-i18n': 'mform.title' }, t('mform.title')),
      el('div', { id: 'matter-error', class: 'form-error', role: 'alert', hidden: '' }),
      ...field('category', 'mfld.category', category, true),
      ...field('channel', 'mfld.channel', channel, true),
      ...field('key_group', 'mfld.key_group', group),
      ...field('summary', 'mfld.summary', el('input', { name: 'summary' }), true),
      ...field('status', 'mfld.status', status, true),
      el('button', { type: 'submit', class: 'big-button', 'data-i18n': 'mbtn.save' }, t('mbtn.save')),
      el('div', { id: 'matter-result', class: 'form-result', role: 'status', hidden: '' }),
    ]);
    anchor.parentNode.appendChild(form);
    fillMatterOptions();
    bindForm(form, 'matter', '/v1/matters', (f) => {
      const body = {
        category: f.elements.category.value,
        channel: f.elements.channel.value,
        summary: f.elements.summary.value.trim(),
        status: f.elements.status.value,
      };
      if (f.elements.key_group.value) body.key_group = f.elements.key_group.value;
      return body;
    }, 'ok.matter', (f) => { f.elements.summary.value = ''; fastPoll.kick(); });
  }

  function fillMatterOptions() {
    const form = $('#matter-form');
    if (!form) return;
    const keep = ['category', 'channel', 'key_group', 'status'].map((n) => [n, form.elements[n].value]);
    options(form.elements.category, MATTER_CATEGORIES, 'mc.', 'opt.choose');
    options(form.elements.channel, CHANNELS, 'ch.', 'opt.choose');
    options(form.elements.key_group, KEY_GROUPS, 'kg.', 'opt.any');
    options(form.elements.status, ['open', 'resolved'], 'ms.');
    for (const [n, v] of keep) if (v) form.elements[n].value = v;
  }

  function breakdown(titleKey, map, prefix) {
    const rows = Object.entries(map || {}).sort((a, b) => b[1].opened - a[1].opened)
      .map(([k, v]) => el('tr', { 'data-key': k }, [el('td', {}, t(prefix + k)), el('td', { class: 'num' }, fmtNum(v.opened)),
        el('td', { class: 'num' }, fmtNum(v.open_now))]));
    return el('div', { class: 'card' }, [el('h3', {}, t(titleKey)), el('table', { class: 'data-table small' }, [
      el('thead', {}, el('tr', {}, [el('th', {}, ''), el('th', {}, t('mfig.opened')), el('th', {}, t('mfig.open_now'))])),
      el('tbody', {}, rows)])]);
  }

  function renderMatters() {
    const s = state.summary;
    let box = $('#matters-figures');
    if (!box) {
      const anchor = $('#trend-chart');
      if (!anchor) return;
      box = el('div', { id: 'matters-figures', class: 'matters-figures', 'data-testid': 'matters-figures' });
      anchor.parentNode.insertBefore(box, anchor.nextSibling);
    }
    const m = s && s.matters;
    if (!m) { replaceChildren(box, []); return; }
    const fig = (key, id, v) => el('div', { class: 'figure' }, [el('div', { class: 'figure-label' }, t(key)),
      el('div', { class: 'figure-value', id, 'data-value': isNum(v) ? v : null }, fmtNum(v))]);
    const median = isNum(m.median_days_to_resolve) ? t('mfig.days', { n: m.median_days_to_resolve }) : '—';
    replaceChildren(box, [
      el('h2', {}, t('mfig.title')),
      m.opened ? null : el('p', { class: 'muted' }, t('mfig.none')),
      el('div', { class: 'figures' }, [
        fig('mfig.opened', 'matters-opened', m.opened), fig('mfig.resolved', 'matters-resolved', m.resolved),
        fig('mfig.open_now', 'matters-open_now', m.open_now),
        el('div', { class: 'figure' }, [el('div', { class: 'figure-label' }, t('mfig.median')),
          el('div', { class: 'figure-value', id: 'matters-median' }, median)]),
      ]),
      el('div', { class: 'breakdowns' }, [breakdown('mfig.by_category', m.by_category, 'mc.'),
        breakdown('mfig.by_channel', m.by_channel, 'ch.')]),
    ].filter(Boolean));
  }

  function renderScreenMatters() {
    const wrap = $('#view-screen .screen-figures');
    if (!wrap) return;
    let open = $('#screen-matters');
    if (!open) {
      open = el('div', { class: 'screen-figure' }, [el('div', { class: 'screen-label', id: 'screen-matters-label' }),
        el('div', { class: 'screen-value', id: 'screen-matters' }, '—')]);
      wrap.appendChild(open);
      open = $('#screen-matters');
    }
    $('#screen-matters-label').textContent = t('mfig.title') + ' · ' + t('mfig.open_now');
    const m = !state.drill && state.summary && state.summary.matters;
    if (m) setFigure(open, m.open_now);
  }

  /** Protocol and held-back count next to each link of the mesh view. */
  function renderVersions() {
    const s = state.status;
    if (!s) return;
    const note = (l) => el('span', { class: 'link-version', 'data-protocol': l.protocol == null ? '' : String(l.protocol),
      'data-held': String(l.held_for_older_peer || 0) }, [
      `${t('mesh.protocol')} ${l.protocol == null ? '—' : 'v' + l.protocol}`,
      l.held_for_older_peer ? el('strong', { class: 'held' }, ' · ' + t('mesh.held_note', { n: fmtNum(l.held_for_older_peer) })) : null,
    ].filter(Boolean));
    const parent = $('#mesh-parent dl');
    if (s.parent && parent) appendAll(parent, [el('dt', {}, t('mesh.protocol')), el('dd', {}, note(s.parent))]);
    for (const c of Array.isArray(s.children) ? s.children : []) {
      const row = $(`#mesh-children tbody tr[data-node="${CSS.escape(c.node_id)}"] td`);
      if (row) row.appendChild(note(c));
    }
  }

  const baseMesh = renderMesh;
  renderMesh = function () { baseMesh(); renderVersions(); };
  const baseSummary = renderSummary;
  renderSummary = function () { baseSummary(); renderMatters(); };
  const baseScreen = renderScreen;
  renderScreen = function () { baseScreen(); renderScreenMatters(); };
  const baseStatic = applyStaticText;
  applyStaticText = function () { baseStatic(); fillMatterOptions(); };

  buildForm();
  renderAll();
})();
