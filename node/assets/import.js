/*
 * jobmesh — spreadsheets in and out on the page.
 *
 * A contained addition to app.js (loaded after it, sharing its globals: t,
 * I18N, el, $, state, headers, apiUrl, boardFilters, lang, fmtNum):
 *   #import-form (staff tab)   pick a kind and a .csv/.xlsx file → "check" uploads it with
 *                              dry_run=true (POST /v1/import/{kind}/file, JSON lines) and shows
 *                              the first rows with their problems → "import" uploads it again
 *                              and shows the progress, then the report (#import-report)
 *                              templates in Chinese and English (GET /v1/import/{kind}/template.csv)
 *   #export-summary (overview) the shown subtree's figures as .xlsx / .csv (GET /v1/summary.xlsx|csv)
 *   #export-postings (board)   the board's postings with its filters (GET /v1/postings.xlsx|csv)
 * Downloads go through fetch (the token is a header, never in the address)
 * and carry the page's language as `lang=`, so headers are Chinese on a
 * Chinese page.
 */
(function () {
  const KINDS = ['postings', 'workers', 'matters'];
  Object.assign(I18N.zh, {
    'imp.title': '批量导入（表格）', 'imp.kind': '导入内容', 'imp.file': '选择文件（.csv 或 .xlsx）',
    'imp.k.postings': '招聘岗位', 'imp.k.workers': '求职登记', 'imp.k.matters': '服务事项',
    'imp.templates': '下载模板：', 'imp.tpl_zh': '中文表头', 'imp.tpl_en': '英文表头',
    'imp.check': '检查文件', 'imp.confirm': '确认导入', 'imp.checking': '正在检查…', 'imp.importing': '正在导入…',
    'imp.progress': '已处理 {rows} / {total} 行', 'imp.progress_n': '已处理 {rows} 行',
    'imp.counts': '共 {rows} 行：正确 {good} 行，有误 {bad} 行',
    'imp.would': '将新建 {n} 条，已存在 {existing} 条（不会重复导入）',
    'imp.done': '导入完成：新建 {created} 条，已存在 {existing} 条，跳过有误的 {bad} 行',
    'imp.preview': '前几行预览', 'imp.problems': '问题（{n} 个）', 'imp.more': '另有 {n} 个问题未列出',
    'imp.line': '行', 'imp.problem': '问题', 'imp.ok': '正确', 'imp.no_file': '请先选择文件',
    'imp.failed': '无法读取文件：{e}', 'imp.net': '上传失败（网络或服务器错误）',
    'exp.summary': '导出统计', 'exp.postings': '导出岗位',
  });
  Object.assign(I18N.en, {
    'imp.title': 'Import a spreadsheet', 'imp.kind': 'What the file holds', 'imp.file': 'File (.csv or .xlsx)',
    'imp.k.postings': 'Postings', 'imp.k.workers': 'Job seekers', 'imp.k.matters': 'Service matters',
    'imp.templates': 'Templates:', 'imp.tpl_zh': 'Chinese headers', 'imp.tpl_en': 'English headers',
    'imp.check': 'Check file', 'imp.confirm': 'Import', 'imp.checking': 'Checking…', 'imp.importing': 'Importing…',
    'imp.progress': '{rows} of {total} rows done', 'imp.progress_n': '{rows} rows done',
    'imp.counts': '{rows} rows: {good} good, {bad} with problems',
    'imp.would': '{n} would be created, {existing} already here (never imported twice)',
    'imp.done': 'Imported: {created} created, {existing} already here, {bad} bad rows skipped',
    'imp.preview': 'First rows', 'imp.problems': 'Problems ({n})', 'imp.more': '{n} more problems not listed',
    'imp.line': 'Line', 'imp.problem': 'Problem', 'imp.ok': 'OK', 'imp.no_file': 'Choose a file first',
    'imp.failed': 'Cannot read the file: {e}', 'imp.net': 'The upload failed (network or server error)',
    'exp.summary': 'Export figures', 'exp.postings': 'Export postings',
  });

  /** Fetch `path` with the token and save the answer as a file. */
  async function download(path, params, fallbackName) {
    const res = await fetch(apiUrl(path, Object.assign({ lang }, params || {})), { headers: headers({ Accept: '*/*' }) });
    if (!res.ok) return;
    const cd = res.headers.get('Content-Disposition') || '';
    const m = /filename="([^"]+)"/.exec(cd);
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: (m && m[1]) || fallbackName, hidden: '' });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function problemLine(p) {
    const text = lang === 'en' ? `${p.field ? p.field + ' ' : ''}${p.en}` : p.zh;
    return p.column ? `${p.column}: ${text}` : text;
  }

  /**
   * Upload the file; `onProgress` gets each progress line. Resolves with
   * the report, or null when the upload failed.
   */
  async function upload(kind, file, dryRun, onProgress) {
    let res;
    try {
      res = await fetch(apiUrl(`/v1/import/${kind}/file`, { dry_run: dryRun ? 'true' : 'false', name: file.name }), {
        method: 'POST', headers: headers({ 'Content-Type': 'application/octet-stream' }), body: file,
      });
    } catch (e) {
      return null;
    }
    if (!res.ok || !res.body) return null;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let report = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const msg = JSON.parse(line);
        if (msg.progress) onProgress(msg.progress);
        if (msg.report) report = msg.report;
      }
      if (done) break;
    }
    return report;
  }

  function setProgress(p) {
    const bar = $('#import-progress');
    bar.hidden = false;
    const total = p.rows_total || 0;
    $('progress', bar).max = total || 1;
    $('progress', bar).value = total ? Math.min(p.rows, total) : 0;
    $('span', bar).textContent = total
      ? t('imp.progress', { rows: fmtNum(p.rows), total: fmtNum(total) })
      : t('imp.progress_n', { rows: fmtNum(p.rows) });
  }

  function renderReport(r) {
    const out = $('#import-report');
    out.hidden = false;
    if (r.error) {
      replaceChildren(out, [el('p', { class: 'form-error', 'data-testid': 'import-error' }, t('imp.failed', { e: r.error }))]);
      return;
    }
    const parts = [el('p', { 'data-testid': 'import-counts' }, t('imp.counts', { rows: fmtNum(r.rows), good: fmtNum(r.good), bad: fmtNum(r.bad) }))];
    parts.push(el('p', { 'data-testid': 'import-outcome', class: 'import-outcome' }, r.dry_run
      ? t('imp.would', { n: fmtNum(r.good - r.existing), existing: fmtNum(r.existing) })
      : t('imp.done', { created: fmtNum(r.created), existing: fmtNum(r.existing), bad: fmtNum(r.bad) })));
    if (r.dry_run && r.preview && r.preview.length) {
      const head = el('tr', {}, [el('th', {}, t('imp.line')), ...r.headers.map((h) => el('th', {}, h)), el('th', {}, t('imp.problem'))]);
      const rows = r.preview.map((row) => el('tr', { class: row.problems.length ? 'bad-row' : '' }, [
        el('td', {}, String(row.line)),
        ...r.headers.map((_, i) => el('td', {}, row.cells[i] || '')),
        el('td', {}, row.problems.length ? row.problems.map(problemLine).join('；') : t('imp.ok')),
      ]));
      parts.push(el('h3', {}, t('imp.preview')), el('div', { class: 'table-wrap' },
        el('table', { class: 'data-table small', 'data-testid': 'import-preview' }, [el('thead', {}, head), el('tbody', {}, rows)])));
    }
    if (r.problems && r.problems.length) {
      parts.push(el('h3', {}, t('imp.problems', { n: fmtNum(r.problems_total) })));
      parts.push(el('ul', { class: 'import-problems', 'data-testid': 'import-problems' },
        r.problems.map((p) => el('li', {}, `${lang === 'en' ? 'line ' + p.line : '第 ' + p.line + ' 行'} ${problemLine(p)}`))));
      if (r.problems_total > r.problems.length) {
        parts.push(el('p', { class: 'muted' }, t('imp.more', { n: fmtNum(r.problems_total - r.problems.length) })));
      }
    }
    replaceChildren(out, parts);
  }

  function buildImport() {
    const anchor = $('#placement-form');
    if (!anchor || $('#import-form')) return;
    const kind = el('select', { name: 'kind', 'data-testid': 'import-kind' });
    const file = el('input', { type: 'file', name: 'file', accept: '.csv,.xlsx', 'data-testid': 'import-file' });
    const templates = el('p', { class: 'import-templates', id: 'import-templates' });
    const check = el('button', { type: 'submit', class: 'big-button', 'data-testid': 'import-check', 'data-i18n': 'imp.check' }, t('imp.check'));
    const confirm = el('button', { type: 'button', class: 'big-button', 'data-testid': 'import-confirm', 'data-i18n': 'imp.confirm', hidden: '' }, t('imp.confirm'));
    const form = el('form', { id: 'import-form', class: 'card form', novalidate: '', autocomplete: 'off' }, [
      el('h2', { 'data-i18n': 'imp.title' }, t('imp.title')),
      el('label', {}, [el('span', { 'data-i18n': 'imp.kind' }, t('imp.kind')), kind]),
      templates,
      el('label', {}, [el('span', { 'data-i18n': 'imp.file' }, t('imp.file')), file]),
      check,
      confirm,
      el('div', { id: 'import-status', class: 'form-result', role: 'status', hidden: '' }),
      el('div', { id: 'import-progress', class: 'import-progress', 'data-testid': 'import-progress', hidden: '' },
        [el('progress', { max: '1', value: '0' }), el('span')]),
      el('div', { id: 'import-report', class: 'import-report', 'data-testid': 'import-report', hidden: '' }),
    ]);
    anchor.parentNode.appendChild(form);
    fillImport();
    kind.addEventListener('change', () => { renderTemplates(); confirm.hidden = true; });
    file.addEventListener('change', () => { confirm.hidden = true; $('#import-report').hidden = true; });
    const run = async (dryRun) => {
      const f = file.files && file.files[0];
      const status = $('#import-status');
      if (!f) { status.hidden = false; status.textContent = t('imp.no_file'); return; }
      check.disabled = true;
      confirm.disabled = true;
      status.hidden = false;
      status.textContent = t(dryRun ? 'imp.checking' : 'imp.importing');
      $('#import-report').hidden = true;
      setProgress({ rows: 0, rows_total: 0 });
      const report = await upload(kind.value, f, dryRun, setProgress);
      check.disabled = false;
      confirm.disabled = false;
      status.hidden = true;
      if (!report) { status.hidden = false; status.textContent = t('imp.net'); return; }
      renderReport(report);
      confirm.hidden = !(dryRun && !report.error && report.good > 0);
      if (!dryRun) fastPoll.kick();
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); run(true); });
    confirm.addEventListener('click', () => run(false));
  }

  function renderTemplates() {
    const p = $('#import-templates');
    const form = $('#import-form');
    if (!p || !form) return;
    const kind = form.elements.kind.value;
    const link = (l) => {
      const a = el('a', { href: '#', 'data-testid': `template-${l}` }, t(`imp.tpl_${l}`));
      a.addEventListener('click', (ev) => { ev.preventDefault(); download(`/v1/import/${kind}/template.csv`, { lang: l }, `jobmesh-${kind}-${l}.csv`); });
      return a;
    };
    replaceChildren(p, [t('imp.templates'), ' ', link('zh'), ' · ', link('en')]);
  }

  function fillImport() {
    const form = $('#import-form');
    if (!form) return;
    const keep = form.elements.kind.value;
    replaceChildren(form.elements.kind, KINDS.map((k) => el('option', { value: k }, t('imp.k.' + k))));
    if (keep) form.elements.kind.value = keep;
    renderTemplates();
  }

  function exportButtons(id, label, path, params) {
    const b = (ext) => {
      const button = el('button', { type: 'button', class: 'lang-toggle', 'data-testid': `${id}-${ext}` }, `${t(label)} .${ext}`);
      button.addEventListener('click', () => download(`${path}.${ext}`, params(), `export.${ext}`));
      return button;
    };
    return el('span', { id, class: 'export-buttons' }, [b('xlsx'), ' ', b('csv')]);
  }

  function buildExports() {
    const headline = $('#view-overview .headline');
    if (headline && !$('#export-summary')) {
      headline.appendChild(exportButtons('export-summary', 'exp.summary', '/v1/summary',
        () => (state.drill ? { node: state.drill } : {})));
    }
    const filters = $('#board-filters');
    if (filters && !$('#export-postings')) {
      filters.appendChild(exportButtons('export-postings', 'exp.postings', '/v1/postings', () => boardFilters()));
    }
  }

  function relabelExports() {
    for (const [id, label] of [['export-summary', 'exp.summary'], ['export-postings', 'exp.postings']]) {
      for (const ext of ['xlsx', 'csv']) {
        const b = $(`[data-testid="${id}-${ext}"]`);
        if (b) b.textContent = `${t(label)} .${ext}`;
      }
    }
  }

  const baseStatic = applyStaticText;
  applyStaticText = function () { baseStatic(); fillImport(); relabelExports(); };

  buildImport();
  buildExports();
})();
