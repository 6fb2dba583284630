/*
 * jobmesh — the web page every node serves at `/`.
 * Plain ES2017, no libraries, no build step. Served next to index.html as
 * /app.js and /app.css.
 *
 * ─── Selector contract (headless-browser tests rely on these) ───────────────
 *
 * URL
 *   ?token=XYZ        every fetch sends `Authorization: Bearer XYZ`
 *   ?screen=1         screen mode only (no header, no tabs)
 *   #overview (default) | #board | #staff | #mesh | #screen
 *   #overview?node=<id>   drill-down (re-queries /v1/summary?node=<id>&depth=1&in_flight=true)
 *
 * Global
 *   a[data-tab="overview|board|staff|mesh|screen"]   tabs (.active on the current one)
 *   section#view-<tab>        one per tab; inactive ones carry [hidden]
 *   #node-id                  this node's id (from /v1/status)
 *   #updated-at               "更新 hh:mm:ss" / "updated hh:mm:ss" (UTC+8); data-time = ms of last success
 *   #conn-error               banner, [hidden] while every fetch succeeds
 *   #lang-toggle              switches 中文 ⇄ English (kept in localStorage "jobmesh.lang");
 *                             <html lang> is "zh-CN" or "en"
 *
 * Overview (#view-overview)
 *   #overview-node            id of the office whose subtree is shown
 *   #breadcrumb a[data-node]  back up towards this node
 *   #total-postings_open #total-positions_open #total-positions_filled
 *   #total-workers_registered #total-workers_seeking #total-placements
 *                             text is grouped ("12,345"); data-value = the exact integer
 *   #reporting                "报送 N/M" / "N of M offices reporting"; data-offices, data-expected
 *   #all-levels               checkbox: all descendants instead of depth=1
 *   table#nodes-table th[data-sort=<key>]   click to sort (aria-sort="ascending|descending")
 *       keys: node_id, the six totals, reported_at, age_s, state, link, backlog, in_flight
 *   #nodes-body tr[data-node=<id>][data-state="ok|stale|missing"]   ([data-self="true"] = the shown office itself)
 *       td[data-col=<key>] (number cells have data-value)
 *       a.drill[data-node]   drills down
 *       .badge-stale (过期/stale) .badge-missing (未报送/missing) .badge-ok
 *       .badge-link-up / .badge-link-down   (direct children: from /v1/status, with how long down;
 *                                            deeper offices: .badge-link-down when the row says link_down)
 *       .office-name (topology name in the page's language, else the id's last segment), .office-path (id)
 *   #group-city               checkbox: group the table by the next level (cities, for the province);
 *                             on by default above 60 offices. Group rows: tr[data-group=<id>][data-expanded]
 *                             [data-members][data-matching] with button.group-toggle[data-group]; rows inside a
 *                             group: tr[data-in-group=<id>]. #row-filter and #row-search apply inside groups
 *                             (a search opens the groups it finds offices in); #rows-shown[data-shown][data-total]
 *   #city-chart .cmp-row[data-node][data-level][data-fresh][data-stale][data-missing]
 *                             the next level compared: completeness (.seg-fresh/.seg-stale/.seg-missing) and
 *                             [data-col=positions_open|placements|matters][data-value] bars
 *   table#by-category, #by-work-type, #by-key-group   tbody tr[data-key=<raw name>]
 *   #trend-chart svg[data-days][width][height] polyline.series-postings, polyline.series-placements
 *                             (drawn at the box's width, 280 px high; redrawn on resize)
 *
 * Job board (#view-board)
 *   form#board-filters  input[name=category], select[name=work_type], input[name=open] (checked by default)
 *   #board-list article.posting[data-id]  .remaining[data-value]
 *   #board-count, #board-empty, #board-more (button, [hidden] when there is no next page)
 *   own open postings: button[data-act=withdrawn|closed|edit]; #board-message says what was done
 *   form#edit-form[data-id]   every field PATCH takes (not the audience), prefilled; sends only changed
 *                             fields; errors: .field-error[data-field=...], #edit-error
 *
 * Staff forms (#view-staff); all forms are novalidate, submit with button[type=submit].
 *   Errors from the API go to `.field-error[data-field=<field>]` inside the form (field = text before
 *   the first ':' of the message, or its first word); otherwise to the form-level error element.
 *   Success: the result element shows the new id, has data-id=<id>, and contains #<form>-result-id.
 *   form#post-form       title, employer, category (datalist #category-list), work_type (select),
 *                        positions, wage, location, valid_until (type=date, YYYY-MM-DD), audience
 *                        (text; prefilled with this node's id; select#audience-scope fills it with
 *                        this node or an ancestor)
 *                        errors: .field-error[data-field=...], #post-error   success: #post-result (#post-result-id)
 *   form#worker-form     name, key_group (select), phone, skills (comma separated), wanted_work_type (select)
 *                        errors: .field-error[data-field=...], #worker-error  success: #worker-result (#worker-result-id)
 *   form#placement-form  worker_id, posting_id (text; select#worker-pick / select#posting-pick fill them)
 *                        errors: .field-error[data-field=...], #placement-error success: #placement-result (#placement-result-id)
 *
 * Mesh (#view-mesh)
 *   #mesh-parent[data-connected]   #mesh-children tbody tr[data-node][data-connected]
 *   #records-postings #records-workers #records-placements #records-fills #records-summaries (data-value)
 *
 * Screen (#view-screen; body.screen-mode)
 *   #screen-posts (positions_open + positions_filled) #screen-registered (workers_registered)
 *   #screen-placements (placements)  — data-value
 *   #screen-postings li[data-id]   newest open postings
 * ────────────────────────────────────────────────────────────────────────────
 */
'use strict';

/* ── Constants ─────────────────────────────────────────────────────────── */

const SUMMARY_POLL_MS = 2000; // summary and status: never more often than this
const BOARD_POLL_MS = 5000; // job board and screen list
const BOARD_PAGE = 30;
const MAX_LIMIT = 5000; // the API's page limit
const PICK_LIMIT = 500; // workers/postings offered in the placement form
const SCREEN_PAGE_MS = 10000; // the wall screen turns its page
const TREND_DAYS = 30;
const TREND_HEIGHT_PX = 280;
const TREND_PAD_PX = 10; // .trend's padding
const GROUP_AUTO_ROWS = 60; // offices below beyond which the table starts grouped
const CST_OFFSET_MS = 8 * 3600 * 1000; // offices keep China Standard Time
const LANG_KEY = 'jobmesh.lang';
const TOTAL_KEYS = ['postings_open', 'positions_open', 'positions_filled',
  'workers_registered', 'workers_seeking', 'placements'];
const RECORD_KINDS = ['postings', 'workers', 'placements', 'fills'];
const HELD_KINDS = RECORD_KINDS.concat('summaries'); // /v1/status also counts summary records
const WORK_TYPES = ['full_time', 'part_time', 'odd_job', 'temporary'];
const KEY_GROUPS = ['college_graduate', 'migrant_worker', 'ex_serviceman', 'rural_labor', 'disabled', 'other'];
const CATEGORIES = [
  ['餐饮服务员', 'waiter'], ['普工/装配工', 'assembler'], ['分拣员', 'sorter'],
  ['快递员', 'courier'], ['家政服务', 'domestic service'], ['养老护理', 'elderly care'],
  ['技术工', 'technician'], ['建筑工', 'construction'], ['保安', 'security guard'], ['司机', 'driver'],
];

/* ── i18n ──────────────────────────────────────────────────────────────── */

const I18N = {
  zh: {
    'app.title': '公共就业服务网络',
    'tab.overview': '总览', 'tab.board': '招聘信息', 'tab.staff': '业务办理', 'tab.mesh': '网络', 'tab.screen': '大屏',
    'lang.switch': 'English',
    'updated': '更新 {t}',
    'conn.error': '连接失败：{msg}。页面显示的是最后一次获取的数据。',
    'conn.auth': '需要访问令牌（在地址后加 ?token=…）',
    'conn.network': '无法连接本站服务',
    'f.postings_open': '在招岗位信息', 'f.positions_open': '空缺岗位数', 'f.positions_filled': '已招岗位数',
    'f.workers_registered': '登记求职人数', 'f.workers_seeking': '求职中人数', 'f.placements': '已就业人数',
    'reporting': '报送 {n}/{m}', 'reporting.n': '报送 {n}', 'as_of': '截至 {t}',
    'ov.offices': '下级单位', 'ov.all_levels': '显示全部层级',
    'ov.by_category': '按职业类别', 'ov.by_work_type': '按用工形式', 'ov.by_key_group': '按重点群体',
    'ov.trend': '近 30 天趋势', 'ov.self': '本级', 'ov.no_data': '暂无数据', 'ov.no_nodes': '暂无下级单位数据',
    'col.office': '单位', 'col.postings_open': '在招信息', 'col.positions_open': '空缺岗位',
    'col.positions_filled': '已招岗位', 'col.workers_registered': '登记人数', 'col.workers_seeking': '求职中',
    'col.placements': '已就业', 'col.reported_at': '报送时间', 'col.age': '距今', 'col.state': '状态',
    'col.link': '连接', 'col.backlog': '待发送', 'col.in_flight': '传输中', 'col.last_contact': '最近联系',
    'col.name': '名称', 'col.count': '数量',
    'state.ok': '正常', 'state.stale': '过期', 'state.missing': '未报送',
    'link.up': '已连接', 'link.down': '断开', 'link.down_for': '断开 {age}',
    'inflight.title': '信息 {postings} · 求职者 {workers} · 就业 {placements} · 计数 {fills}',
    'age.s': '{n} 秒', 'age.m': '{n} 分钟', 'age.h': '{n} 小时', 'age.d': '{n} 天', 'ago': '{age}前',
    'trend.postings': '发布招聘信息', 'trend.placements': '实现就业', 'trend.empty': '近 30 天暂无数据',
    'fld.category': '职业类别', 'fld.work_type': '用工形式', 'fld.title': '岗位名称', 'fld.employer': '用人单位',
    'fld.positions': '招聘人数', 'fld.wage': '薪资待遇', 'fld.location': '工作地点', 'fld.valid_until': '有效期至',
    'fld.audience': '发布范围', 'fld.audience_id': '范围节点编号', 'fld.name': '姓名', 'fld.key_group': '人员类别',
    'fld.phone': '联系电话', 'fld.skills': '技能（用逗号分隔）', 'fld.wanted_work_type': '求职意向',
    'fld.pick_worker': '选择求职者', 'fld.worker_id': '求职者编号', 'fld.pick_posting': '选择岗位', 'fld.posting_id': '岗位编号',
    'ph.any': '全部', 'ph.wage': '如：4000-5000元/月', 'ph.node_id': '如 gz/guiyang',
    'opt.any': '不限', 'opt.choose': '— 请选择 —', 'opt.pick': '— 从列表选择 —',
    'scope.own': '本站及下级（{id}）', 'scope.ancestor': '上级 {id} 及其下级', 'scope.other': '其他节点（手动填写）',
    'form.post': '发布招聘信息', 'form.worker': '求职登记', 'form.placement': '登记就业',
    'btn.post': '发布', 'btn.register': '登记', 'btn.place': '确认就业',
    'ok.post': '已发布，编号', 'ok.worker': '已登记，编号', 'ok.placement': '已登记就业，编号',
    'err.network': '无法连接本站服务，请稍后重试', 'err.http': '提交失败（{status}）',
    'board.open_only': '只看在招', 'board.more': '更多', 'board.empty': '暂无招聘信息',
    'board.count': '已显示 {n} 条', 'board.remaining': '剩余 {r} 个岗位', 'board.of': '共 {p} 个',
    'board.wage': '薪资', 'board.location': '地点', 'board.valid_until': '有效期至', 'board.origin': '发布单位',
    'board.employer': '用人单位',
    'status.open': '在招', 'status.withdrawn': '已撤回', 'status.closed': '已结束',
    'worker.seeking': '求职中', 'worker.placed': '已就业',
    'mesh.parent': '上级连接', 'mesh.children': '下级连接', 'mesh.records': '本站持有记录',
    'mesh.root': '本站是根节点，没有上级。', 'mesh.no_children': '没有下级连接',
    'mesh.sink': 'PostgreSQL 镜像（{target}，模式 {schema}）：落后 {n} 条日志、{s} 秒',
    'mesh.sink.down': 'PostgreSQL 镜像（{target}，模式 {schema}）未连接：落后 {n} 条日志、{s} 秒。{error}',
    'mesh.addr': '地址', 'mesh.last_contact': '最近联系', 'mesh.backlog': '待发送', 'mesh.never': '从未',
    'rec.postings': '招聘信息', 'rec.workers': '求职者', 'rec.placements': '就业登记', 'rec.fills': '招用计数', 'rec.summaries': '汇总报表',
    'screen.posts': '岗位数', 'screen.registered': '登记人数', 'screen.placements': '已就业',
    'screen.newest': '最新招聘', 'screen.exit': '退出大屏', 'screen.remaining': '招 {r} 人',
    'wt.full_time': '全职', 'wt.part_time': '兼职', 'wt.odd_job': '零工', 'wt.temporary': '临时工',
    'kg.college_graduate': '高校毕业生', 'kg.migrant_worker': '农民工', 'kg.ex_serviceman': '退役军人',
    'kg.rural_labor': '农村劳动力', 'kg.disabled': '残疾人', 'kg.other': '其他',
    'rep.full': '报送 {fresh}/{m}', 'rep.stale': '过期 {s}', 'rep.missing': '未报送 {x}',
    'col.reporting': '报送情况', 'sub.count': '{f}/{n}',
    'uplink.down': '本站与上级 {name} 的连接已中断{age}（最近联系 {t}），{n} 条记录等待上报；上级看到的是本站的旧数据。',
    'uplink.fallback': '上级 {name} 连接中断（自 {t}），本站现经备用上级 {via} 直接连接，记录照常上报。',
    'mesh.via_fallback': '现经备用上级 {via} 连接（自 {t}）', 'mesh.attached': '{id} 直接连接（其上级 {parent} 自 {t} 中断）',
    'uplink.never': '本站尚未连上上级 {name}，{n} 条记录等待上报。',
    'clock.behind': '时钟慢 {n} 分钟', 'clock.ahead': '时钟快 {n} 分钟', 'clock.title': '时钟',
    'clock.banner': '本站{what}（与上级 {name} 相比）。记录按省级时间记载，工作照常；请校准本机时间。',
    'filter.all': '全部单位', 'filter.problems': '只看过期或未报送', 'filter.search': '按名称或编号搜索',
    'rows.more': '再显示 {n} 个', 'rows.shown': '显示 {n}/{m} 个单位',
    'signin.title': '登录', 'signin.token': '访问令牌', 'signin.go': '登录', 'signin.out': '退出登录',
    'signin.hint': '本站需要访问令牌。令牌只保存在本浏览器标签页中，关闭后需重新登录。',
    'conn.auth2': '需要登录',
    'req': '必填',
    'ok.post2': '已发布：{title}（{n} 人），编号', 'ok.worker2': '已登记：{name}，编号',
    'ok.placement2': '已登记就业：{worker} → {title}，{office}，编号',
    'ok.withdrawn': '已撤下：{title}', 'ok.closed': '已结束招聘：{title}', 'ok.edited': '已修改：{title}',
    'btn.withdraw': '撤下', 'btn.close': '结束招聘', 'btn.edit': '修改',
    'fld.search_worker': '查找求职者（姓名或电话）', 'search.none': '没有找到', 'search.count': '找到 {n} 人',
    'screen.posts2': '在招空缺岗位', 'screen.registered2': '登记求职人数', 'screen.placements2': '实现就业人数',
    'screen.note': '空缺岗位数为下方 {n} 条在招信息的剩余名额之和；登记与就业人数为本站及下级合计。',
    'screen.list': '在招岗位', 'screen.page': '第 {i}/{n} 页', 'screen.contact': '咨询：{office}',
    'screen.empty': '暂无在招岗位',
    'weekday': '星期{d}', 'wd': '日一二三四五六',
    'col.share': '占比',
    'ov.group_city': '按市州分组', 'ov.group_below': '按下一级分组',
    'group.members': '{n} 个下属单位', 'group.expand': '展开', 'group.collapse': '收起',
    'ov.compare': '下级单位对比', 'cmp.office': '单位', 'cmp.complete': '报送完整度',
    'cmp.fresh': '按时', 'cmp.stale': '过期', 'cmp.missing': '未报送', 'cmp.none': '没有下级单位',
    'cmp.complete_title': '{name}：按时 {f}，过期 {s}，未报送 {x}',
    'form.edit': '修改招聘信息', 'btn.save': '保存修改', 'btn.cancel': '取消',
    'edit.audience_note': '发布范围发布后不能更改；要换范围，请撤下后重新发布。', 'edit.nothing': '没有改动：{title}',
    'uplink.never.one': '本站尚未连上上级 {name}，1 条记录等待上报。',
  },
  en: {
    'app.title': 'Public Employment Service',
    'tab.overview': 'Overview', 'tab.board': 'Job board', 'tab.staff': 'Staff', 'tab.mesh': 'Mesh', 'tab.screen': 'Screen',
    'lang.switch': '中文',
    'updated': 'updated {t}',
    'conn.error': 'Connection problem: {msg}. Showing the last figures received.',
    'conn.auth': 'an access token is needed (add ?token=… to the address)',
    'conn.network': 'cannot reach this node',
    'f.postings_open': 'Open postings', 'f.positions_open': 'Open positions', 'f.positions_filled': 'Positions filled',
    'f.workers_registered': 'Workers registered', 'f.workers_seeking': 'Workers seeking', 'f.placements': 'Placements',
    'reporting': '{n} of {m} offices reporting', 'reporting.n': '{n} offices reporting', 'as_of': 'as of {t}',
    'ov.offices': 'Offices', 'ov.all_levels': 'Show all levels',
    'ov.by_category': 'By category', 'ov.by_work_type': 'By work type', 'ov.by_key_group': 'By key group',
    'ov.trend': 'Last 30 days', 'ov.self': 'own', 'ov.no_data': 'No data', 'ov.no_nodes': 'No office figures yet',
    'col.office': 'Office', 'col.postings_open': 'Open postings', 'col.positions_open': 'Open positions',
    'col.positions_filled': 'Filled', 'col.workers_registered': 'Registered', 'col.workers_seeking': 'Seeking',
    'col.placements': 'Placements', 'col.reported_at': 'Last report', 'col.age': 'Age', 'col.state': 'State',
    'col.link': 'Link', 'col.backlog': 'Backlog', 'col.in_flight': 'In flight', 'col.last_contact': 'Last contact',
    'col.name': 'Name', 'col.count': 'Count',
    'state.ok': 'ok', 'state.stale': 'stale', 'state.missing': 'missing',
    'link.up': 'up', 'link.down': 'down', 'link.down_for': 'down {age}',
    'inflight.title': 'postings {postings} · workers {workers} · placements {placements} · fills {fills}',
    'age.s': '{n} s', 'age.m': '{n} min', 'age.h': '{n} h', 'age.d': '{n} d', 'ago': '{age} ago',
    'trend.postings': 'Postings published', 'trend.placements': 'Placements', 'trend.empty': 'No activity in the last 30 days',
    'fld.category': 'Category', 'fld.work_type': 'Work type', 'fld.title': 'Job title', 'fld.employer': 'Employer',
    'fld.positions': 'Positions', 'fld.wage': 'Wage', 'fld.location': 'Location', 'fld.valid_until': 'Valid until',
    'fld.audience': 'Audience', 'fld.audience_id': 'Audience node id', 'fld.name': 'Name', 'fld.key_group': 'Key group',
    'fld.phone': 'Phone', 'fld.skills': 'Skills (comma separated)', 'fld.wanted_work_type': 'Wanted work type',
    'fld.pick_worker': 'Pick a worker', 'fld.worker_id': 'Worker id', 'fld.pick_posting': 'Pick a posting', 'fld.posting_id': 'Posting id',
    'ph.any': 'any', 'ph.wage': 'e.g. 4000-5000 CNY/month', 'ph.node_id': 'e.g. gz/guiyang',
    'opt.any': 'any', 'opt.choose': '— choose —', 'opt.pick': '— pick from the list —',
    'scope.own': 'This office and below ({id})', 'scope.ancestor': '{id} and below', 'scope.other': 'Another node (type its id)',
    'form.post': 'Post a job', 'form.worker': 'Register a worker', 'form.placement': 'Record a placement',
    'btn.post': 'Post', 'btn.register': 'Register', 'btn.place': 'Record placement',
    'ok.post': 'Posted, id', 'ok.worker': 'Registered, id', 'ok.placement': 'Placement recorded, id',
    'err.network': 'Cannot reach this node; try again shortly', 'err.http': 'Request failed ({status})',
    'board.open_only': 'Open only', 'board.more': 'More', 'board.empty': 'No postings',
    'board.count': '{n} shown', 'board.remaining': '{r} positions left', 'board.of': 'of {p}',
    'board.wage': 'Wage', 'board.location': 'Location', 'board.valid_until': 'Valid until', 'board.origin': 'Posted by',
    'board.employer': 'Employer',
    'status.open': 'open', 'status.withdrawn': 'withdrawn', 'status.closed': 'closed',
    'worker.seeking': 'seeking', 'worker.placed': 'placed',
    'mesh.parent': 'Parent link', 'mesh.children': 'Child links', 'mesh.records': 'Records held here',
    'mesh.root': 'This node is the root: it has no parent.', 'mesh.no_children': 'No child links',
    'mesh.sink': 'PostgreSQL mirror ({target}, schema {schema}): {n} journal entries, {s} s behind',
    'mesh.sink.down': 'PostgreSQL mirror ({target}, schema {schema}) not connected: {n} journal entries, {s} s behind. {error}',
    'mesh.addr': 'Address', 'mesh.last_contact': 'Last contact', 'mesh.backlog': 'Backlog', 'mesh.never': 'never',
    'rec.postings': 'Postings', 'rec.workers': 'Workers', 'rec.placements': 'Placements', 'rec.fills': 'Fills', 'rec.summaries': 'Summaries',
    'screen.posts': 'Jobs offered', 'screen.registered': 'People registered', 'screen.placements': 'Jobs achieved',
    'screen.newest': 'Newest jobs', 'screen.exit': 'Exit screen', 'screen.remaining': '{r} wanted',
    'wt.full_time': 'Full-time', 'wt.part_time': 'Part-time', 'wt.odd_job': 'Odd job', 'wt.temporary': 'Temporary',
    'kg.college_graduate': 'College graduate', 'kg.migrant_worker': 'Migrant worker', 'kg.ex_serviceman': 'Ex-serviceman',
    'kg.rural_labor': 'Rural labor', 'kg.disabled': 'Disabled', 'kg.other': 'Other',
    'rep.full': '{fresh} of {m} offices fresh', 'rep.stale': '{s} stale', 'rep.missing': '{x} missing',
    'col.reporting': 'Reporting', 'sub.count': '{f}/{n}',
    'uplink.down': 'The link up to {name} has been down for {age} (last contact {t}); {n} records wait to go up, so the offices above see old figures from here.',
    'uplink.fallback': 'The link up to {name} is down (since {t}); this office reaches the tree through its fallback {via} directly, and its records go up as usual.',
    'mesh.via_fallback': 'Using fallback {via} now (since {t})', 'mesh.attached': '{id} attached directly (parent {parent} down since {t})',
    'uplink.down.one': 'The link up to {name} has been down for {age} (last contact {t}); 1 record waits to go up, so the offices above see old figures from here.',
    'uplink.never': 'This office has not reached {name} yet; {n} records wait to go up.',
    'clock.behind': 'clock {n} min behind', 'clock.ahead': 'clock {n} min ahead', 'clock.title': 'Clock',
    'clock.banner': "This office's {what} (against {name}). Records are stamped with the province's time and work goes on; please set this PC's clock.",
    'filter.all': 'All offices', 'filter.problems': 'Only stale or missing', 'filter.search': 'Search by name or id',
    'rows.more': 'Show {n} more', 'rows.shown': '{n} of {m} offices shown',
    'signin.title': 'Sign in', 'signin.token': 'Access token', 'signin.go': 'Sign in', 'signin.out': 'Sign out',
    'signin.hint': 'This office needs an access token. It is kept in this browser tab only; sign in again after closing it.',
    'conn.auth2': 'sign-in needed',
    'req': 'required',
    'ok.post2': 'Posted: {title} ({n} positions), id', 'ok.post2.one': 'Posted: {title} (1 position), id',
    'ok.worker2': 'Registered: {name}, id',
    'ok.placement2': 'Placement recorded: {worker} → {title}, {office}, id',
    'ok.withdrawn': 'Withdrawn: {title}', 'ok.closed': 'Closed: {title}', 'ok.edited': 'Changed: {title}',
    'btn.withdraw': 'Withdraw', 'btn.close': 'Close', 'btn.edit': 'Edit',
    'fld.search_worker': 'Find a worker (name or phone)', 'search.none': 'No match', 'search.count': '{n} found',
    'screen.posts2': 'Open positions', 'screen.registered2': 'People registered', 'screen.placements2': 'Jobs achieved',
    'screen.note': 'Open positions add up what is left on the {n} open postings below; people and jobs count this office and those under it.',
    'screen.note.one': 'Open positions add up what is left on the 1 open posting below; people and jobs count this office and those under it.',
    'screen.list': 'Open jobs', 'screen.page': 'page {i} of {n}', 'screen.contact': 'Ask at {office}',
    'screen.empty': 'No open jobs',
    'weekday': '{d}', 'wd': 'Sun,Mon,Tue,Wed,Thu,Fri,Sat',
    'board.remaining.one': '1 position left', 'screen.remaining.one': '1 wanted',
    'age.m.one': '1 min', 'age.h.one': '1 h', 'age.d.one': '1 d',
    'board.count.one': '1 shown', 'search.count.one': '1 found',
    'col.share': 'Share',
    'ov.group_city': 'Group by city', 'ov.group_below': 'Group by office below',
    'group.members': '{n} offices below', 'group.members.one': '1 office below', 'group.expand': 'Expand', 'group.collapse': 'Collapse',
    'ov.compare': 'Offices below compared', 'cmp.office': 'Office', 'cmp.complete': 'Reporting',
    'cmp.fresh': 'fresh', 'cmp.stale': 'stale', 'cmp.missing': 'missing', 'cmp.none': 'No offices below',
    'cmp.complete_title': '{name}: {f} fresh, {s} stale, {x} missing',
    'form.edit': 'Change a posting', 'btn.save': 'Save changes', 'btn.cancel': 'Cancel',
    'edit.audience_note': 'The audience cannot change once published; to change it, withdraw the posting and publish it again.',
    'edit.nothing': 'Nothing changed: {title}',
    'uplink.never.one': 'This office has not reached {name} yet; 1 record waits to go up.',
    'rep.full.one': '{fresh} of 1 office fresh', 'rows.shown.one': '{n} of 1 office shown',
    'reporting.one': '{n} of 1 office reporting',
  },
};

/* Certificates needing attention (the province's list, from /v1/summary). */
Object.assign(I18N.zh, {
  'ov.certs': '证书需要处理的单位', 'cert.revoked': '已吊销', 'cert.expired': '已过期',
  'cert.expiring': '{n} 天后到期', 'cert.serial': '序列号', 'cert.not_after': '有效期至', 'cert.office': '单位', 'cert.state': '状态',
});
Object.assign(I18N.en, {
  'ov.certs': 'Offices whose certificate needs attention', 'cert.revoked': 'revoked', 'cert.expired': 'expired',
  'cert.expiring': 'expires in {n} days', 'cert.expiring.one': 'expires in 1 day', 'cert.serial': 'Serial',
  'cert.not_after': 'Valid until', 'cert.office': 'Office', 'cert.state': 'State',
});

let lang = loadLang();

function loadLang() {
  try {
    return localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';
  } catch (e) {
    return 'zh';
  }
}

/** Translate `key`, filling `{name}` placeholders from `vars`. */
function t(key, vars) {
  // English plurals: a `.one` variant when the count is 1: `{m}` where the
  // noun follows a total ("3 of 1 office"), else `{n}` or `{r}`.
  const count = vars && (vars.m !== undefined ? vars.m : vars.n !== undefined ? vars.n : vars.r);
  const one = (count === 1 || count === '1') && I18N[lang] && I18N[lang][key + '.one'];
  const text = one || (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key;
  return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : text;
}

function workTypeLabel(v) { return WORK_TYPES.includes(v) ? t('wt.' + v) : String(v); }
function keyGroupLabel(v) { return KEY_GROUPS.includes(v) ? t('kg.' + v) : String(v); }
function workerStatusLabel(v) { return ['seeking', 'placed'].includes(v) ? t('worker.' + v) : String(v); }
function statusLabel(v) { return ['open', 'withdrawn', 'closed'].includes(v) ? t('status.' + v) : String(v); }

/** A category is free text; the common ones are shown in the page's language. */
function categoryLabel(name) {
  const hit = CATEGORIES.find(([zh, en]) => zh === name || en === name);
  if (!hit) return String(name);
  return lang === 'en' ? hit[1] : hit[0];
}

/* ── Small helpers ─────────────────────────────────────────────────────── */

const $ = (sel, root) => (root || document).querySelector(sel);
const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

/** Create an element: attrs (class, dataset via data-*, on* handlers) and children (strings or nodes). */
function el(tag, attrs, children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  appendAll(node, children);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  appendAll(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
}

function appendAll(node, children) {
  for (const c of [].concat(children === undefined ? [] : children)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

function replaceChildren(node, children) {
  node.textContent = '';
  appendAll(node, children);
}

function isNum(v) { return typeof v === 'number' && isFinite(v); }

function fmtNum(v) { return isNum(v) ? v.toLocaleString('en-US') : '—'; }

/** Put a number in an element: grouped text, exact data-value. */
function setFigure(node, value) {
  if (!node) return;
  node.textContent = fmtNum(value);
  if (isNum(value)) node.dataset.value = String(value);
  else delete node.dataset.value;
}

/** Unix ms from what the API gives: ms or s as a number, or an ISO string. */
function toMs(v) {
  if (isNum(v)) return v < 1e11 ? v * 1000 : v;
  if (typeof v === 'string' && v) {
    const ms = Date.parse(v);
    return isNaN(ms) ? null : ms;
  }
  return null;
}

const pad2 = (n) => String(n).padStart(2, '0');

/** Parts of a time in China Standard Time, whatever the browser's zone. */
function cstParts(ms) {
  const d = new Date(ms + CST_OFFSET_MS);
  return {
    y: d.getUTCFullYear(), mo: pad2(d.getUTCMonth() + 1), d: pad2(d.getUTCDate()),
    h: pad2(d.getUTCHours()), mi: pad2(d.getUTCMinutes()), s: pad2(d.getUTCSeconds()),
  };
}

function cstDay(ms) {
  const p = cstParts(ms);
  return `${p.y}-${p.mo}-${p.d}`;
}

/** "14:02" today, "03-18 14:02" on another day. */
function fmtClock(ms) {
  if (ms === null || ms === undefined) return '—';
  const p = cstParts(ms);
  const hm = `${p.h}:${p.mi}`;
  return cstDay(ms) === cstDay(Date.now()) ? hm : `${p.mo}-${p.d} ${hm}`;
}

function fmtClockSeconds(ms) {
  const p = cstParts(ms);
  return `${p.h}:${p.mi}:${p.s}`;
}

function fmtAge(seconds) {
  if (!isNum(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t('age.s', { n: s });
  if (s < 3600) return t('age.m', { n: Math.floor(s / 60) });
  if (s < 86400) return t('age.h', { n: Math.floor(s / 3600) });
  return t('age.d', { n: Math.floor(s / 86400) });
}

function sinceMs(ms) { return ms === null ? null : (Date.now() - ms) / 1000; }

function parentOf(id) {
  const i = id.lastIndexOf('/');
  return i < 0 ? null : id.slice(0, i);
}

/** `gz/guiyang/nanming` → [gz/guiyang, gz] */
function ancestorsOf(id) {
  const out = [];
  for (let p = parentOf(id); p; p = parentOf(p)) out.push(p);
  return out;
}

function lastSegment(id) { return String(id).split('/').pop(); }

/* ── API access ────────────────────────────────────────────────────────── */

const PAGE_PARAMS = new URLSearchParams(location.search);
const TOKEN_KEY = 'jobmesh.token';
/**
 * The access token lives in this tab's sessionStorage, never in the
 * address: an old `?token=` link is moved there and removed from the
 * address (and so from the history and the wall screen).
 */
let TOKEN = (() => {
  let tok = null;
  try { tok = sessionStorage.getItem(TOKEN_KEY); } catch (e) { /* storage off: sign in each time */ }
  const fromUrl = PAGE_PARAMS.get('token');
  if (fromUrl) {
    tok = fromUrl;
    try { sessionStorage.setItem(TOKEN_KEY, tok); } catch (e) { /* kept in memory only */ }
    PAGE_PARAMS.delete('token');
    const qs = PAGE_PARAMS.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : '') + location.hash);
  }
  return tok;
})();

function signIn(tok) {
  TOKEN = tok || null;
  try {
    if (TOKEN) sessionStorage.setItem(TOKEN_KEY, TOKEN); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* kept in memory only */ }
  state.needToken = false;
  renderSignIn();
  fastPoll.kick();
  slowPoll.kick();
}

function renderSignIn() {
  $('#signin').hidden = !state.needToken;
  $('#signout').hidden = !TOKEN;
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The catalogue of error messages by code (`/errors.json`), loaded at start. */
let CATALOGUE = { zh: {}, en: {} };

/** A problem of a 4xx body in the page's language: the catalogue's text with its parameters. */
function problemText(p) {
  const text = p && p.code && CATALOGUE[lang] && CATALOGUE[lang][p.code];
  if (!text) return String((p && p.error) || '');
  const params = (p && p.params) || {};
  return text.replace(/\{(\w+)\}/g, (m, k) => {
    const v = params[k];
    if (v === undefined || v === null) return m;
    return Array.isArray(v) ? v.join(', ') : String(v);
  });
}

function apiUrl(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

function headers(extra) {
  const h = Object.assign({ Accept: 'application/json' }, extra || {});
  if (TOKEN) h.Authorization = `Bearer ${TOKEN}`;
  return h;
}

async function readJson(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    return { error: text.slice(0, 200) };
  }
}

/** GET → parsed JSON; throws ApiError on HTTP errors, TypeError on network errors. */
async function apiGet(path, params) {
  const res = await fetch(apiUrl(path, params), { headers: headers(), cache: 'no-store' });
  const data = await readJson(res);
  if (!res.ok) {
    const msg = (data && (problemText(data) || data.error)) || res.statusText || String(res.status);
    if (res.status === 401) { state.needToken = true; renderSignIn(); }
    throw new ApiError(`${res.status} ${msg}`, res.status);
  }
  return data || {};
}

/** PATCH → {ok, status, data}. */
async function apiPatch(path, body) {
  try {
    const res = await fetch(path, {
      method: 'PATCH',
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
    });
    return { ok: res.ok, status: res.status, data: (await readJson(res)) || {} };
  } catch (e) {
    return { ok: false, status: 0, data: {} };
  }
}

/** POST → {ok, status, data}; network errors give status 0. */
async function apiPost(path, body) {
  try {
    const res = await fetch(path, {
      method: 'POST',
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
    });
    const data = (await readJson(res)) || {};
    if (res.status === 401) { state.needToken = true; renderSignIn(); }
    return { ok: res.ok, status: res.status, data };
  } catch (e) {
    return { ok: false, status: 0, data: {} };
  }
}

function describeFailure(err) {
  if (err instanceof ApiError) return err.status === 401 ? t('conn.auth2') : err.message;
  return t('conn.network');
}

/* ── State ─────────────────────────────────────────────────────────────── */

const state = {
  view: 'overview',
  screenOnly: PAGE_PARAMS.get('screen') === '1',
  drill: null, // node id shown in the overview; null = this node
  allLevels: false,
  summary: null,
  status: null,
  sort: { key: 'node_id', dir: 1 },
  board: { items: [], next: null, busy: false, generation: 0, loaded: false },
  screenPostings: [],
  screenKey: '',
  errors: {}, // source → message, for the banner
  lastOk: null,
  categories: '', // the datalist's current content, to avoid rebuilding it every poll
  audienceFor: null, // node id the audience choices were built for
  needToken: false,
  rowFilter: 'all', // 'all' or 'problems'
  rowSearch: '',
  rowLimit: 100, // rows of the offices table shown; "more" adds a page
  groupCity: null, // group the offices table by the next level: null = when the tree is large
  expanded: new Set(), // groups of the offices table shown open
  screenAll: [], // every open posting with positions left, for the wall screen
  screenPage: 0,
  pickWorkers: [],
  pickPostings: [],
};

function homeId() {
  return (state.status && state.status.node_id) || (state.summary && !state.drill && state.summary.node_id) || null;
}

/* ── Connection banner and "updated" stamp ─────────────────────────────── */

function markOk(source) {
  delete state.errors[source];
  state.lastOk = Date.now();
  renderConnection();
}

function markFailed(source, err) {
  state.errors[source] = describeFailure(err);
  renderConnection();
}

function renderConnection() {
  const banner = $('#conn-error');
  const msgs = Array.from(new Set(Object.values(state.errors)));
  banner.hidden = msgs.length === 0;
  banner.textContent = msgs.length ? t('conn.error', { msg: msgs.join('; ') }) : '';
  const stamp = $('#updated-at');
  if (state.lastOk) {
    stamp.textContent = t('updated', { t: fmtClockSeconds(state.lastOk) });
    stamp.dataset.time = String(state.lastOk);
  }
}

/* ── Polling ───────────────────────────────────────────────────────────── */

/**
 * Run `task` again `periodMs` after each run ends (so never more often than
 * that, however slow the node answers), never two at once. `kick()` runs it
 * at once (or right after the current run) for user actions.
 */
function poller(periodMs, task) {
  let timer = null;
  let running = false;
  let again = false;
  let started = false;
  async function run() {
    if (!started) return;
    clearTimeout(timer);
    if (running) { again = true; return; }
    running = true;
    try {
      if (!document.hidden) await task();
    } catch (e) {
      console.error(e); // tasks report their own failures; this is a bug guard
    }
    running = false;
    if (again) { again = false; run(); return; }
    timer = setTimeout(run, periodMs);
  }
  return {
    start() { if (!started) { started = true; run(); } },
    kick: run,
  };
}

async function pollSummary() {
  const node = state.drill;
  const allLevels = state.allLevels;
  try {
    // Every level, so that each row can say how many offices below it
    // report fresh, stale or not at all; in-flight counts cost a key scan
    // per row, so only for small trees.
    const small = !state.summary || (Array.isArray(state.summary.nodes) && state.summary.nodes.length <= 64);
    const data = await apiGet('/v1/summary', {
      node: node || undefined,
      in_flight: small && !allLevels ? 'true' : undefined,
    });
    // A drill-down or level change while this was in flight makes it obsolete.
    if (node !== state.drill || allLevels !== state.allLevels) return;
    state.summary = data;
    markOk('summary');
    renderSummary();
  } catch (e) {
    markFailed('summary', e);
  }
}

async function pollStatus() {
  try {
    state.status = await apiGet('/v1/status');
    markOk('status');
    renderStatus();
  } catch (e) {
    markFailed('status', e);
  }
}

const fastPoll = poller(SUMMARY_POLL_MS, () => Promise.all([pollSummary(), pollStatus()]));

const slowPoll = poller(BOARD_POLL_MS, async () => {
  if (state.view === 'board') await refreshBoard();
  if (state.view === 'screen') await refreshScreenPostings();
});

/* ── Routing ───────────────────────────────────────────────────────────── */

const VIEWS = ['overview', 'board', 'staff', 'mesh', 'screen'];

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const q = raw.indexOf('?');
  const name = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { view: VIEWS.includes(name) ? name : 'overview', node: params.get('node') || null };
}

function route() {
  const { view, node } = parseHash();
  const newView = state.screenOnly ? 'screen' : view;
  const drill = newView === 'overview' && node && node !== homeId() ? node : null;
  const drillChanged = drill !== state.drill;
  state.view = newView;
  state.drill = drill;
  document.body.classList.toggle('screen-mode', newView === 'screen');
  for (const v of VIEWS) $('#view-' + v).hidden = v !== newView;
  for (const a of $$('a[data-tab]')) a.classList.toggle('active', a.dataset.tab === newView);
  if (drillChanged) {
    state.summary = null;
    renderSummary();
    fastPoll.kick();
  }
  onViewShown(newView);
}

function onViewShown(view) {
  if (view === 'board' && !state.board.loaded) reloadBoard();
  else if (view === 'board' || view === 'screen') slowPoll.kick();
  if (view === 'staff') loadPickLists();
  if (view === 'screen') renderScreen();
  if (view === 'overview') renderTrend(); // drawn at the width it has now that it shows
}

/* ── Overview ──────────────────────────────────────────────────────────── */

function renderSummary() {
  renderTotals();
  renderHeadline();
  renderNodesTable();
  renderBreakdowns();
  renderTrend();
  renderScreen();
  updateCategoryList();
  renderCertificates();
}

/** The subtree's revoked, expired and expiring certificates; hidden when there are none. */
function renderCertificates() {
  const box = $('#cert-alerts');
  if (!box) return;
  const list = (state.summary && state.summary.certificates) || [];
  box.hidden = list.length === 0;
  $('#cert-table').replaceChildren(
    el('thead', {}, [el('tr', {}, ['cert.office', 'cert.state', 'cert.not_after', 'cert.serial'].map((k) => el('th', {}, t(k))))]),
    el('tbody', {}, list.map((c) => {
      const name = (lang === 'en' ? c.name || c.name_zh : c.name_zh || c.name) || c.node_id;
      const stateText = c.state === 'expiring' ? t('cert.expiring', { n: c.days_left }) : t('cert.' + c.state);
      return el('tr', { 'data-node': c.node_id, 'data-state': c.state, class: c.state === 'expiring' ? 'warn' : 'bad' }, [
        el('td', {}, [name, el('small', { class: 'node-id' }, ' ' + c.node_id)]),
        el('td', {}, stateText),
        el('td', {}, c.not_after ? c.not_after.slice(0, 10) : '—'),
        el('td', {}, c.serial || '—'),
      ]);
    })),
  );
}

function renderTotals() {
  const sub = (state.summary && state.summary.subtree) || {};
  for (const k of TOTAL_KEYS) setFigure($('#total-' + k), sub[k]);
}

/** The office whose subtree the summary describes (`root`; older answers only had node_id). */
function shownId(s) {
  return (s && (s.root || s.node_id)) || null;
}

function renderHeadline() {
  const s = state.summary;
  const shown = state.drill || shownId(s) || homeId() || '';
  const row = s && Array.isArray(s.nodes) ? s.nodes.find((n) => n.node_id === shown) : null;
  replaceChildren($('#overview-node'), [
    el('span', { class: 'office-name', 'data-testid': 'overview-name' }, row ? officeName(row) : lastSegment(shown)),
    el('span', { class: 'office-path' }, shown),
  ]);
  renderBreadcrumb(shown);
  renderBrand();
  const rep = $('#reporting');
  const r = (s && s.reporting) || {};
  rep.dataset.offices = isNum(r.offices) ? String(r.offices) : '';
  rep.dataset.expected = isNum(r.expected) ? String(r.expected) : '';
  // `stale` counts every office whose figures are old, missing ones too.
  const missing = isNum(r.missing) ? r.missing : 0;
  const staleOnly = isNum(r.stale) ? Math.max(0, r.stale - missing) : 0;
  const expected = isNum(r.expected) ? r.expected : r.offices;
  const fresh = isNum(expected) ? expected - staleOnly - missing : null;
  rep.dataset.fresh = isNum(fresh) ? String(fresh) : '';
  rep.dataset.stale = String(staleOnly);
  rep.dataset.missing = String(missing);
  const level = missing > 0 ? 'red' : staleOnly > 0 ? 'amber' : 'green';
  rep.dataset.level = isNum(r.offices) ? level : '';
  if (!isNum(r.offices)) rep.textContent = '';
  else {
    const parts = [t('rep.full', { fresh, m: expected })];
    if (staleOnly) parts.push(t('rep.stale', { s: staleOnly }));
    if (missing) parts.push(t('rep.missing', { x: missing }));
    rep.textContent = parts.join(' · ');
  }
  rep.classList.toggle('incomplete', level !== 'green');
  rep.classList.toggle('rep-amber', level === 'amber');
  rep.classList.toggle('rep-red', level === 'red');
  const gen = s && toMs(s.generated_at);
  $('#generated-at').textContent = gen ? t('as_of', { t: fmtClock(gen) }) : '';
}

/** Links from this node down to the shown one. */
function renderBreadcrumb(shown) {
  const home = homeId();
  const nav = $('#breadcrumb');
  if (!home || !shown || shown === home || !shown.startsWith(home + '/')) {
    replaceChildren(nav, home && shown && shown !== home ? [crumb(home)] : []);
    return;
  }
  const parts = [];
  for (let id = shown; id && id !== home; id = parentOf(id)) parts.unshift(id);
  parts.unshift(home);
  const items = [];
  parts.forEach((id, i) => {
    if (i > 0) items.push(el('span', { class: 'crumb-sep' }, '›'));
    items.push(i === parts.length - 1 ? el('span', { class: 'crumb-current' }, lastSegment(id)) : crumb(id));
  });
  replaceChildren(nav, items);
}

function crumb(id) {
  const href = id === homeId() ? '#overview' : '#overview?node=' + encodeURIComponent(id);
  return el('a', { href, 'data-node': id }, id === homeId() ? id : lastSegment(id));
}

/** The row's state: missing, stale or ok. */
function rowState(n) {
  if (n.missing || (!n.totals && !n.subtree && n.reported_at == null)) return 'missing';
  return n.stale ? 'stale' : 'ok';
}

const STATE_ORDER = { ok: 0, stale: 1, missing: 2 };

function childLink(id) {
  const kids = (state.status && state.status.children) || [];
  return kids.find((c) => c.node_id === id) || null;
}

function inFlightTotal(n) {
  const f = n.in_flight;
  if (!f) return null;
  return RECORD_KINDS.reduce((sum, k) => sum + (isNum(f[k]) ? f[k] : 0), 0);
}

/** The figures a row shows: a node's whole subtree, or its own for the shown node itself. */
function rowFigures(n, isSelf) {
  return (isSelf ? n.totals || n.subtree : n.subtree || n.totals) || {};
}

function sortValue(n, key, isSelf) {
  if (key === 'node_id') return n.node_id; // ids sort by place in the tree, names would not
  if (TOTAL_KEYS.includes(key)) return rowFigures(n, isSelf)[key];
  if (key === 'reported_at') return toMs(n.reported_at);
  if (key === 'age_s') return n.age_s;
  if (key === 'state') return STATE_ORDER[rowState(n)];
  const link = childLink(n.node_id);
  if (key === 'link') return link ? (link.connected ? 1 : 0) : n.link_down ? 0 : null;
  if (key === 'backlog') return link ? link.backlog : null;
  if (key === 'in_flight') return inFlightTotal(n);
  return null;
}

function compareRows(a, b, shown) {
  const { key, dir } = state.sort;
  const va = sortValue(a, key, a.node_id === shown);
  const vb = sortValue(b, key, b.node_id === shown);
  // Unknown values sort last whatever the direction.
  if (va == null || vb == null) return va == null ? (vb == null ? 0 : 1) : -1;
  const c = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
  return c !== 0 ? c * dir : a.node_id.localeCompare(b.node_id);
}

/** For every row, how many offices of its subtree report fresh, stale or not at all. */
function subtreeCounts(nodes) {
  const counts = new Map();
  for (const n of nodes) counts.set(n.node_id, { fresh: 0, stale: 0, missing: 0 });
  for (const n of nodes) {
    const st = rowState(n);
    const key = st === 'ok' ? 'fresh' : st;
    for (let id = n.node_id; id; id = parentOf(id)) {
      const c = counts.get(id);
      if (c) c[key]++;
    }
  }
  return counts;
}

/**
 * Grouping is on by default when the tree below is large (the province's
 * 381 offices, or 2,800): one collapsed row per office of the next level
 * (the cities, for the province), each expandable. The row filter and the
 * name search work inside the groups: a group shows while it or an office
 * in it matches, and a search opens the groups it finds offices in.
 */
function groupingOn(s) {
  if (state.groupCity !== null) return state.groupCity;
  return Array.isArray(s.nodes) && s.nodes.length > GROUP_AUTO_ROWS;
}

function renderNodesTable() {
  const s = state.summary;
  const body = $('#nodes-body');
  renderSortHeaders();
  if (!s || !Array.isArray(s.nodes) || s.nodes.length === 0) {
    replaceChildren(body, s ? el('tr', {}, el('td', { colspan: 14, class: 'empty' }, t('ov.no_nodes'))) : []);
    $('#rows-more').hidden = true;
    $('#rows-shown').textContent = '';
    renderCityChart(null);
    return;
  }
  const shown = shownId(s);
  const counts = subtreeCounts(s.nodes);
  const depth = String(shown).split('/').length;
  const search = state.rowSearch.trim().toLowerCase();
  const grouped = groupingOn(s);
  const groupBox = $('#group-city');
  groupBox.checked = grouped;
  const groupLabel = groupBox.parentNode.querySelector('span');
  groupLabel.textContent = t(depth === 1 ? 'ov.group_city' : 'ov.group_below');
  const matches = (n) => {
    const c = counts.get(n.node_id);
    if (state.rowFilter === 'problems' && !(c && (c.stale || c.missing))) return false;
    if (search) {
      const hay = [n.node_id, n.name, n.name_zh].filter(Boolean).join(' ').toLowerCase();
      if (!hay.includes(search)) return false;
    }
    return true;
  };
  const self = s.nodes.filter((n) => n.node_id === shown);
  const byOrder = (a, b) => compareRows(a, b, shown);
  const isChild = (n) => String(n.node_id).split('/').length === depth + 1;
  renderCityChart(s.nodes.filter(isChild).sort((a, b) => a.node_id.localeCompare(b.node_id)), counts);
  let rows;
  let shownCount;
  let total;
  let more;
  if (!grouped) {
    const keep = (n) => (state.allLevels || search || isChild(n)) && matches(n);
    const others = s.nodes.filter((n) => n.node_id !== shown && keep(n)).sort(byOrder);
    const page = others.slice(0, state.rowLimit);
    rows = self.concat(page).map((n) => nodeRow(n, n.node_id === shown, counts.get(n.node_id)));
    shownCount = page.length;
    total = others.length;
    more = others.length - page.length;
  } else {
    // One group per office of the next level; the offices below it inside.
    const members = new Map();
    for (const n of s.nodes) {
      if (n.node_id === shown || isChild(n)) continue;
      const g = String(n.node_id).split('/').slice(0, depth + 1).join('/');
      if (!members.has(g)) members.set(g, []);
      members.get(g).push(n);
    }
    rows = self.map((n) => nodeRow(n, true, counts.get(n.node_id)));
    shownCount = 0;
    total = 0;
    let budget = state.rowLimit;
    more = 0;
    for (const g of s.nodes.filter(isChild).sort(byOrder)) {
      const inside = (members.get(g.node_id) || []).filter(matches).sort(byOrder);
      if (!matches(g) && inside.length === 0) continue;
      const open = state.expanded.has(g.node_id) || (!!search && inside.length > 0);
      rows.push(nodeRow(g, false, counts.get(g.node_id), {
        group: g.node_id, open, members: (members.get(g.node_id) || []).length, matching: inside.length,
      }));
      shownCount++;
      total += 1 + inside.length;
      if (!open) continue;
      const page = inside.slice(0, Math.max(0, budget));
      budget -= page.length;
      more += inside.length - page.length;
      shownCount += page.length;
      for (const n of page) rows.push(nodeRow(n, false, counts.get(n.node_id), { inGroup: g.node_id }));
    }
  }
  replaceChildren(body, rows);
  $('#rows-more').hidden = more <= 0;
  $('#rows-more').textContent = t('rows.more', { n: Math.min(more, 100) });
  $('#rows-shown').textContent = t('rows.shown', { n: shownCount, m: total });
  $('#rows-shown').dataset.shown = String(shownCount);
  $('#rows-shown').dataset.total = String(total);
}

/** Open or close a group of the offices table. */
function onGroupToggle(ev) {
  const b = ev.target.closest('button[data-group]');
  if (!b) return;
  ev.preventDefault();
  const g = b.dataset.group;
  if (state.expanded.has(g)) state.expanded.delete(g); else state.expanded.add(g);
  renderNodesTable();
}

/**
 * The offices of the next level side by side: how completely each
 * reports (fresh, stale, missing: a stacked bar), then bars of its open
 * positions, placements and service matters, each scaled to the largest.
 */
function renderCityChart(children, counts) {
  const box = $('#city-chart');
  if (!children) { replaceChildren(box, []); return; }
  if (children.length === 0) { replaceChildren(box, el('p', { class: 'empty' }, t('cmp.none'))); return; }
  const metrics = [['positions_open', 'col.positions_open'], ['placements', 'col.placements'], ['matters', 'mfig.title']];
  const valueOf = (n, key, known) => {
    if (!known) return null;
    if (key === 'matters') return n.matters_subtree && isNum(n.matters_subtree.opened) ? n.matters_subtree.opened : null;
    return (n.subtree || {})[key];
  };
  const rows = children.map((n) => {
    const c = counts.get(n.node_id) || { fresh: 0, stale: 0, missing: 0 };
    return { n, c, known: c.fresh + c.stale > 0 };
  });
  const tops = metrics.map(([key]) => Math.max(1, ...rows.map((r) => valueOf(r.n, key, r.known) || 0)));
  const head = el('div', { class: 'cmp-row cmp-head' }, [
    el('span', {}, t('cmp.office')),
    el('span', {}, [t('cmp.complete'), ' ', el('span', { class: 'cmp-legend' }, [
      el('i', { class: 'seg-fresh' }), t('cmp.fresh'), el('i', { class: 'seg-stale' }), t('cmp.stale'),
      el('i', { class: 'seg-missing' }), t('cmp.missing')])]),
  ].concat(metrics.map(([, label]) => el('span', {}, t(label)))));
  const pct = (v, top) => Math.round((1000 * v) / top) / 10;
  const lines = rows.map(({ n, c, known }) => {
    const all = Math.max(1, c.fresh + c.stale + c.missing);
    const segs = ['fresh', 'stale', 'missing'].filter((k) => c[k] > 0)
      .map((k) => el('span', { class: 'seg seg-' + k, style: `width:${pct(c[k], all)}%` }));
    const level = c.missing ? 'red' : c.stale ? 'amber' : 'green';
    const bars = metrics.map(([key], i) => {
      const v = valueOf(n, key, known);
      return el('span', { class: 'cmp-metric', 'data-col': key, 'data-value': isNum(v) ? v : null }, [
        el('span', { class: 'track' }, el('span', {
          class: 'hbar hbar-' + key + (isNum(v) && v > 0 ? '' : ' hbar-none'), style: `width:${isNum(v) ? pct(v, tops[i]) : 0}%`,
        })),
        el('span', { class: 'hbar-value' }, fmtNum(v)),
      ]);
    });
    return el('div', {
      class: 'cmp-row', 'data-node': n.node_id, 'data-level': level,
      'data-fresh': c.fresh, 'data-stale': c.stale, 'data-missing': c.missing,
    }, [
      el('a', { class: 'cmp-name', href: '#overview?node=' + encodeURIComponent(n.node_id), title: n.node_id }, officeName(n)),
      el('span', { class: 'cmp-complete', title: t('cmp.complete_title', { name: officeName(n), f: c.fresh, s: c.stale, x: c.missing }) }, [
        el('span', { class: 'stack' }, segs),
        el('span', { class: 'stack-text sub-' + level }, `${c.fresh}/${c.fresh + c.stale + c.missing}`),
      ]),
    ].concat(bars));
  });
  replaceChildren(box, [head].concat(lines));
}

function renderSortHeaders() {
  for (const th of $$('#nodes-table th[data-sort]')) {
    const active = th.dataset.sort === state.sort.key;
    if (active) th.setAttribute('aria-sort', state.sort.dir > 0 ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function nodeRow(n, isSelf, counts, group) {
  const st = rowState(n);
  const c = counts || { fresh: st === 'ok' ? 1 : 0, stale: st === 'stale' ? 1 : 0, missing: st === 'missing' ? 1 : 0 };
  // Figures of a subtree where nothing ever reported are unknown, not 0.
  const known = isSelf ? st !== 'missing' : c.fresh + c.stale > 0;
  const figs = known ? rowFigures(n, isSelf) : {};
  const cells = [officeCell(n, isSelf, group)];
  for (const k of TOTAL_KEYS) cells.push(numCell(k, figs[k]));
  const total = c.fresh + c.stale + c.missing;
  const sub = c.missing ? 'red' : c.stale ? 'amber' : 'green';
  const parts = [t('sub.count', { f: c.fresh, n: total })];
  if (c.stale) parts.push(t('rep.stale', { s: c.stale }));
  if (c.missing) parts.push(t('rep.missing', { x: c.missing }));
  cells.push(el('td', {
    'data-col': 'reporting', class: 'sub-' + sub, 'data-fresh': c.fresh, 'data-stale': c.stale, 'data-missing': c.missing,
  }, parts.join(' · ')));
  const reported = toMs(n.reported_at);
  cells.push(el('td', { 'data-col': 'reported_at' }, reported ? t('as_of', { t: fmtClock(reported) }) : '—'));
  cells.push(el('td', { 'data-col': 'age_s', class: 'num', 'data-value': isNum(n.age_s) ? n.age_s : null }, fmtAge(n.age_s)));
  cells.push(el('td', { 'data-col': 'state' }, stateBadge(st)));
  const link = childLink(n.node_id);
  cells.push(el('td', { 'data-col': 'link' }, link ? linkBadge(link) : n.link_down ? linkBadge({ connected: false }) : ''));
  cells.push(numCell('backlog', link ? link.backlog : null));
  const flight = inFlightTotal(n);
  const flightCell = numCell('in_flight', flight);
  if (n.in_flight) flightCell.title = t('inflight.title', inFlightVars(n.in_flight));
  cells.push(flightCell);
  const g = group || {};
  return el('tr', {
    'data-node': n.node_id, 'data-state': st, 'data-subtree': sub, 'data-self': isSelf ? 'true' : null,
    'data-group': g.group || null, 'data-expanded': g.group ? String(!!g.open) : null,
    'data-members': g.group ? g.members : null, 'data-matching': g.group ? g.matching : null,
    'data-in-group': g.inGroup || null,
    class: 'row-' + st + ' subtree-' + sub + (g.group ? ' group-row' : '') + (g.inGroup ? ' in-group' : ''),
  }, cells);
}

function inFlightVars(f) {
  const v = {};
  for (const k of RECORD_KINDS) v[k] = isNum(f[k]) ? f[k] : 0;
  return v;
}

/** The office's name from the topology in the page's language, else the last segment of its id. */
function officeName(n) {
  const name = lang === 'en' ? n.name || n.name_zh : n.name_zh || n.name;
  return name || lastSegment(n.node_id);
}

function officeCell(n, isSelf, group) {
  const label = [el('span', { class: 'office-name' }, officeName(n)), el('span', { class: 'office-path' }, n.node_id)];
  if (isSelf) {
    return el('td', { 'data-col': 'node_id', class: 'office' }, label.concat(el('span', { class: 'self-tag' }, t('ov.self'))));
  }
  const href = '#overview?node=' + encodeURIComponent(n.node_id);
  const link = el('a', { href, class: 'drill', 'data-node': n.node_id }, label);
  const g = group || {};
  if (!g.group) return el('td', { 'data-col': 'node_id', class: 'office' + (g.inGroup ? ' office-in-group' : '') }, link);
  const toggle = el('button', {
    type: 'button', class: 'group-toggle', 'data-group': g.group, 'aria-expanded': String(!!g.open),
    title: t(g.open ? 'group.collapse' : 'group.expand'),
  }, [el('span', { class: 'group-arrow' }, g.open ? '▾' : '▸'), ' ', t('group.members', { n: g.members })]);
  return el('td', { 'data-col': 'node_id', class: 'office office-group' }, [link, toggle]);
}

function numCell(col, value) {
  return el('td', { 'data-col': col, class: 'num', 'data-value': isNum(value) ? value : null }, fmtNum(value));
}

function stateBadge(st) {
  return el('span', { class: 'badge badge-' + st, 'data-testid': 'badge-' + st }, t('state.' + st));
}

function linkBadge(link) {
  if (link.connected) return el('span', { class: 'badge badge-link-up' }, t('link.up'));
  const since = sinceMs(toMs(link.last_contact));
  const text = since === null ? t('link.down') : t('link.down_for', { age: fmtAge(since) });
  return el('span', { class: 'badge badge-link-down' }, text);
}

function onSortClick(ev) {
  const th = ev.target.closest('th[data-sort]');
  if (!th) return;
  const key = th.dataset.sort;
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
  renderNodesTable();
}

/* Breakdowns */

function renderBreakdowns() {
  const s = state.summary || {};
  const flowCols = ['postings_open', 'positions_open', 'placements'];
  breakdownTable($('#by-category'), s.by_category, categoryLabel, flowCols);
  breakdownTable($('#by-work-type'), s.by_work_type, workTypeLabel, flowCols);
  breakdownTable($('#by-key-group'), s.by_key_group, keyGroupLabel, ['workers_registered', 'workers_seeking', 'placements']);
}

function breakdownTable(table, data, label, cols) {
  const rows = Object.entries(data && typeof data === 'object' ? data : {})
    .sort((a, b) => (b[1][cols[0]] || 0) - (a[1][cols[0]] || 0) || a[0].localeCompare(b[0]));
  const head = el('thead', {}, el('tr', {}, [el('th', {}, t('col.name'))].concat(
    cols.map((c) => el('th', { class: 'num' }, t('col.' + c))))));
  const top = Math.max(1, ...rows.map(([, v]) => (v && v[cols[0]]) || 0));
  const bar = (v) => el('div', { class: 'bar', style: `width:${Math.round((100 * ((v && v[cols[0]]) || 0)) / top)}%` });
  const body = rows.length
    ? rows.map(([name, v]) => el('tr', { 'data-key': name }, [el('td', { title: name, class: 'bar-cell' }, [label(name), bar(v)])].concat(
      cols.map((c) => numCell(c, v && v[c])))))
    : [el('tr', {}, el('td', { colspan: cols.length + 1, class: 'empty' }, t('ov.no_data')))];
  replaceChildren(table, [head, el('tbody', {}, body)]);
}

/* Trend chart: inline SVG, two polylines over the last 30 days. */

function trendSeries(daily, endMs) {
  const byDay = new Map();
  for (const d of Array.isArray(daily) ? daily : []) if (d && d.day) byDay.set(d.day, d);
  const days = [];
  for (let i = TREND_DAYS - 1; i >= 0; i--) days.push(cstDay(endMs - i * 86400000));
  return days.map((day) => {
    const d = byDay.get(day) || {};
    return { day, postings: isNum(d.postings_published) ? d.postings_published : 0, placements: isNum(d.placements) ? d.placements : 0 };
  });
}

/** A round axis maximum ≥ v with four whole-number steps of 1, 2 or 5 × 10^k. */
function niceMax(v) {
  const raw = Math.max(1, v / 4);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  return step * 4;
}

function renderTrend() {
  const box = $('#trend-chart');
  const s = state.summary;
  if (!s) { replaceChildren(box, []); return; }
  const end = toMs(s.generated_at) || Date.now();
  const series = trendSeries(s.daily, end);
  // Drawn at the box's own width in CSS pixels (and so redrawn when the
  // window changes), at a fixed height: text and lines keep their size
  // instead of growing or shrinking with a scaled viewBox.
  const inner = box.clientWidth - 2 * TREND_PAD_PX;
  const W = Math.max(320, Math.round(inner > 0 ? inner : 760)), H = TREND_HEIGHT_PX, L = 48, R = 16, T = 36, B = 34;
  state.trendWidth = W;
  const max = niceMax(Math.max(1, ...series.map((d) => Math.max(d.postings, d.placements))));
  const x = (i) => L + (i * (W - L - R)) / (TREND_DAYS - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    parts.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    parts.push(svg('text', { x: L - 6, y: y(v) + 5, class: 'axis', 'text-anchor': 'end' }, fmtNum(v)));
  }
  series.forEach((d, i) => {
    const every = W >= 900 ? 2 : W >= 560 ? 5 : 10;
    if (i % every === (every - 1) % every || i === 0) {
      parts.push(svg('text', { x: x(i), y: H - 10, class: 'axis', 'text-anchor': 'middle' }, d.day.slice(5)));
    }
  });
  parts.push(seriesLine(series, 'postings', 'series-postings', x, y));
  parts.push(seriesLine(series, 'placements', 'series-placements', x, y));
  parts.push(legend(L));
  const total = series.reduce((a, d) => a + d.postings + d.placements, 0);
  if (total === 0) parts.push(svg('text', { x: W / 2, y: H / 2, class: 'axis', 'text-anchor': 'middle' }, t('trend.empty')));
  const chart = svg('svg', {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'trend-svg', role: 'img', 'aria-label': t('ov.trend'),
    'data-days': TREND_DAYS,
  }, parts);
  replaceChildren(box, chart);
}

function seriesLine(series, key, cls, x, y) {
  const points = series.map((d, i) => `${x(i).toFixed(1)},${y(d[key]).toFixed(1)}`).join(' ');
  const dots = series.map((d, i) => svg('circle', { cx: x(i), cy: y(d[key]), r: 3.5, class: cls + '-dot' },
    svg('title', {}, `${d.day}: ${t('trend.' + key)} ${d[key]}`)));
  return svg('g', {}, [svg('polyline', { points, class: 'series ' + cls, fill: 'none' })].concat(dots));
}

function legend(left) {
  const item = (dx, cls, key) => svg('g', { transform: `translate(${left + dx},14)` }, [
    svg('rect', { x: 0, y: -8, width: 22, height: 6, class: cls + '-swatch' }),
    svg('text', { x: 28, y: 0, class: 'legend' }, t(key)),
  ]);
  return svg('g', {}, [item(0, 'series-postings', 'trend.postings'), item(220, 'series-placements', 'trend.placements')]);
}

/* Category datalist: common categories plus those seen in the figures. */

function updateCategoryList() {
  const seen = Object.keys((state.summary && state.summary.by_category) || {});
  const common = CATEGORIES.map((c) => c[0]);
  const names = common.concat(seen.filter((n) => !common.includes(n) && !CATEGORIES.some((c) => c[1] === n)));
  const key = lang + '|' + names.join('\u0001');
  if (key === state.categories) return;
  state.categories = key;
  replaceChildren($('#category-list'), names.map((n) => {
    const hit = CATEGORIES.find((c) => c[0] === n);
    return el('option', { value: n, label: hit && lang === 'en' ? hit[1] : null });
  }));
}

/* ── Status: mesh view, header, audience choices ───────────────────────── */

/** This office's own row of the summary (names come from its topology). */
function selfRow() {
  const s = state.summary;
  const id = homeId();
  return s && !state.drill && Array.isArray(s.nodes) ? s.nodes.find((n) => n.node_id === id) || null : null;
}

/** Every tab says so when this office's own link up is down. */
function renderUplink() {
  const p = state.status && state.status.parent;
  const box = $('#uplink-banner');
  if (!p || p.connected) { box.hidden = true; box.textContent = ''; return; }
  const name = lang === 'en' ? p.name || p.name_zh || p.node_id : p.name_zh || p.name || p.node_id;
  if (p.via_fallback && p.fallback) {
    const ms = toMs(p.down_since);
    box.textContent = t('uplink.fallback', { name, via: p.fallback.node_id, t: ms === null ? '—' : fmtClock(ms) });
    box.dataset.fallback = p.fallback.node_id;
    box.hidden = false;
    return;
  }
  delete box.dataset.fallback;
  const since = sinceMs(toMs(p.last_contact));
  const n = isNum(p.backlog) ? p.backlog : 0;
  box.textContent = since === null
    ? t('uplink.never', { name, n: fmtNum(n) })
    : t('uplink.down', { name, age: fmtAge(since), t: fmtClock(toMs(p.last_contact)), n: n === 1 ? 1 : fmtNum(n) });
  box.dataset.backlog = String(n);
  box.hidden = false;
}

/** The top bar: this office's name (from its own summary row) and id. */
function renderBrand() {
  const id = homeId() || '';
  $('#node-id').textContent = id;
  const me = selfRow();
  // A drill-down's rows do not hold this office's own: keep the name shown.
  if (me || !state.drill) $('#node-name').textContent = me ? officeName(me) : '';
  if (id) document.title = `${$('#node-name').textContent ? $('#node-name').textContent + ' · ' : ''}${id}`;
}

/** "clock N min behind/ahead" for an offset in seconds (peer minus here,
 *  or here minus parent), or null while within the threshold. */
function clockNote(offsetS, skewed) {
  if (!skewed || !isNum(offsetS)) return null;
  const n = Math.max(1, Math.round(Math.abs(offsetS) / 60));
  return t(offsetS < 0 ? 'clock.behind' : 'clock.ahead', { n: fmtNum(n) });
}

/** The office's banner when its own clock is off from its parent's, and a
 *  note on every link of the mesh view whose peer's clock is off. */
function renderClocks() {
  const s = state.status || {};
  const box = $('#clock-banner');
  const c = s.clock || {};
  const own = clockNote(c.offset_to_parent_s, c.skewed);
  if (box) {
    const p = s.parent || {};
    const name = lang === 'en' ? p.name || p.name_zh || p.node_id : p.name_zh || p.name || p.node_id;
    box.hidden = !own;
    box.textContent = own ? t('clock.banner', { what: own, name: name || '' }) : '';
    box.dataset.offset = own ? String(c.offset_to_parent_s) : '';
  }
  const note = (l) => {
    // The parent link's offset is the parent's clock minus this office's:
    // the page speaks of the peer's clock on each link.
    const text = clockNote(l.clock_offset_s, l.clock_skewed);
    return text ? el('strong', { class: 'link-clock', 'data-offset': String(l.clock_offset_s) }, ' · ' + text) : null;
  };
  const parent = $('#mesh-parent dl');
  const pn = s.parent && note(s.parent);
  if (parent && pn) appendAll(parent, [el('dt', {}, t('clock.title')), el('dd', {}, pn)]);
  for (const ch of Array.isArray(s.children) ? s.children : []) {
    const row = $(`#mesh-children tbody tr[data-node="${CSS.escape(ch.node_id)}"] td`);
    const n = note(ch);
    if (row && n) row.appendChild(n);
  }
}

function renderStatus() {
  const s = state.status || {};
  renderBrand();
  renderUplink();
  renderMesh();
  renderClocks();
  renderAudienceChoices();
  if (state.summary) {
    renderNodesTable(); // link state lives in the status
    renderHeadline();
  }
}

function renderMesh() {
  const s = state.status;
  if (!s) return;
  renderParent(s.parent);
  renderSink(s.sink);
  const body = $('#mesh-children tbody');
  const kids = Array.isArray(s.children) ? s.children : [];
  replaceChildren(body, kids.length
    ? kids.map(childRow)
    : el('tr', {}, el('td', { colspan: 4, class: 'empty' }, t('mesh.no_children'))));
  const rec = s.records || {};
  for (const k of HELD_KINDS) setFigure($('#records-' + k), rec[k]);
}

/** One line on the `[sink.postgres]` mirror's lag, when the node has one. */
function renderSink(k) {
  const box = $('#mesh-sink');
  if (!k) { box.hidden = true; box.textContent = ''; return; }
  const args = {
    target: k.target, schema: k.schema, n: fmtNum(k.lag_entries),
    s: isNum(k.lag_s) ? k.lag_s.toFixed(1) : '—', error: k.error || '',
  };
  box.textContent = t(k.connected ? 'mesh.sink' : 'mesh.sink.down', args);
  box.dataset.lagEntries = String(k.lag_entries);
  box.dataset.connected = String(!!k.connected);
  box.classList.toggle('banner-warn', !k.connected);
  box.hidden = false;
}

function renderParent(p) {
  const box = $('#mesh-parent');
  if (!p) {
    delete box.dataset.connected;
    replaceChildren(box, el('p', {}, t('mesh.root')));
    return;
  }
  box.dataset.connected = String(!!p.connected);
  replaceChildren(box, el('dl', { class: 'kv' }, [
    el('dt', {}, t('col.office')), el('dd', {}, [el('span', { class: 'office-name' }, officeName(p)), el('span', { class: 'office-path' }, p.node_id)]),
    el('dt', {}, t('mesh.addr')), el('dd', { class: 'mono' }, p.addr || '—'),
    el('dt', {}, t('col.link')), el('dd', {}, linkBadge(p)),
    el('dt', {}, t('mesh.last_contact')), el('dd', {}, lastContactText(p.last_contact)),
    el('dt', {}, t('mesh.backlog')), el('dd', { 'data-value': isNum(p.backlog) ? p.backlog : null }, fmtNum(p.backlog)),
  ].concat(p.via_fallback && p.fallback ? [
    el('dt', {}, t('col.link')),
    el('dd', { id: 'mesh-via-fallback', 'data-node': p.fallback.node_id },
      t('mesh.via_fallback', { via: p.fallback.node_id, t: fmtStamp(p.fallback.since) })),
  ] : [])));
}

/** An ISO time as a clock reading, or a dash. */
function fmtStamp(v) {
  const ms = toMs(v);
  return ms === null ? '—' : fmtClock(ms);
}

function lastContactText(v) {
  const ms = toMs(v);
  if (ms === null) return t('mesh.never');
  return `${fmtClock(ms)} (${t('ago', { age: fmtAge(sinceMs(ms)) })})`;
}

function childRow(c) {
  const attrs = { 'data-node': c.node_id, 'data-connected': String(!!c.connected) };
  if (c.attached_directly) attrs['data-attached'] = 'true';
  return el('tr', attrs, [
    el('td', { class: 'office' }, [el('span', { class: 'office-name' }, officeName(c)),
      el('span', { class: 'office-path' }, c.node_id)].concat(c.attached_directly ? [
      el('span', { class: 'office-attached' },
        t('mesh.attached', { id: c.node_id, parent: c.parent_id || '', t: fmtStamp(c.parent_down_since) })),
    ] : [])),
    el('td', {}, linkBadge(c)),
    el('td', {}, lastContactText(c.last_contact)),
    numCell('backlog', c.backlog),
  ]);
}

/* ── Job board ─────────────────────────────────────────────────────────── */

function boardFilters() {
  const f = $('#board-filters');
  return {
    category: f.elements.category.value.trim(),
    work_type: f.elements.work_type.value,
    open: f.elements.open.checked ? 'true' : undefined,
  };
}

/** Fetch one page of the board; drops the answer if the filters changed meanwhile. */
async function fetchBoard(params, apply) {
  const b = state.board;
  const gen = b.generation;
  b.busy = true;
  try {
    const data = await apiGet('/v1/postings', Object.assign(boardFilters(), params));
    if (gen !== b.generation) return;
    apply(Array.isArray(data.postings) ? data.postings : [], data.next == null ? null : data.next);
    b.loaded = true;
    markOk('board');
    renderBoard();
  } catch (e) {
    if (gen === b.generation) markFailed('board', e);
  } finally {
    if (gen === b.generation) b.busy = false;
  }
}

function reloadBoard() {
  const b = state.board;
  b.generation++;
  b.items = [];
  b.next = null;
  renderBoard();
  return fetchBoard({ limit: BOARD_PAGE }, (items, next) => { b.items = items; b.next = next; });
}

/** Poll: re-read as many postings as are shown, so remaining counts stay live. */
function refreshBoard() {
  const b = state.board;
  if (b.busy) return Promise.resolve();
  const limit = Math.min(MAX_LIMIT, Math.max(BOARD_PAGE, b.items.length));
  return fetchBoard({ limit }, (items, next) => { b.items = items; b.next = next; });
}

function loadMoreBoard() {
  const b = state.board;
  if (b.busy || b.next == null) return;
  fetchBoard({ limit: BOARD_PAGE, after: b.next }, (items, next) => {
    const have = new Set(b.items.map((p) => p.id));
    b.items = b.items.concat(items.filter((p) => !have.has(p.id)));
    b.next = next;
  });
}

function renderBoard() {
  const b = state.board;
  replaceChildren($('#board-list'), b.items.map(postingCard));
  $('#board-empty').hidden = !(b.loaded && b.items.length === 0);
  $('#board-more').hidden = b.next == null;
  $('#board-count').textContent = b.loaded ? t('board.count', { n: b.items.length }) : '';
}

function remainingOf(p) {
  if (isNum(p.remaining)) return p.remaining;
  return isNum(p.positions) ? p.positions - (isNum(p.filled) ? p.filled : 0) : null;
}

function postingCard(p) {
  const rem = remainingOf(p);
  const badges = [el('span', { class: 'badge badge-wt' }, workTypeLabel(p.work_type))];
  if (p.category) badges.push(el('span', { class: 'badge badge-cat', title: p.category }, categoryLabel(p.category)));
  if (p.status && p.status !== 'open') badges.push(el('span', { class: 'badge badge-status-' + p.status }, statusLabel(p.status)));
  const details = [
    detail('board.employer', p.employer), detail('board.wage', p.wage), detail('board.location', p.location),
    detail('board.valid_until', p.valid_until), detail('board.origin', nameOf(p.origin)),
  ];
  const actions = p.own && p.status === 'open' ? el('div', { class: 'posting-actions' }, [
    el('button', { type: 'button', class: 'small-button', 'data-act': 'withdrawn', 'data-id': p.id }, t('btn.withdraw')),
    el('button', { type: 'button', class: 'small-button', 'data-act': 'closed', 'data-id': p.id }, t('btn.close')),
    el('button', { type: 'button', class: 'small-button', 'data-act': 'edit', 'data-id': p.id }, t('btn.edit')),
  ]) : null;
  return el('article', { class: 'posting' + (rem === 0 ? ' posting-full' : ''), 'data-id': p.id, 'data-testid': 'posting' }, [
    el('div', { class: 'posting-main' }, [
      el('h3', { class: 'posting-title' }, p.title || '—'),
      el('div', { class: 'posting-badges' }, badges),
      el('dl', { class: 'posting-details' }, details),
      actions,
    ]),
    el('div', { class: 'posting-side' }, [
      el('div', { class: 'remaining', 'data-value': isNum(rem) ? rem : null }, t('board.remaining', { r: fmtNum(rem) })),
      el('div', { class: 'muted' }, t('board.of', { p: fmtNum(p.positions) })),
      el('div', { class: 'posting-id mono' }, p.id),
    ]),
  ]);
}

/** An office's name from the summary rows or links this page holds, else its id. */
function nameOf(id) {
  const rows = (state.summary && Array.isArray(state.summary.nodes) && state.summary.nodes) || [];
  const st = state.status || {};
  const links = [].concat(st.parent ? [st.parent] : [], Array.isArray(st.children) ? st.children : []);
  const hit = rows.find((n) => n.node_id === id) || links.find((l) => l.node_id === id);
  return hit && (hit.name || hit.name_zh) ? officeName(hit) : String(id || '');
}

/** Withdraw, close or change a posting published here (the origin). */
async function onPostingAction(ev) {
  const b = ev.target.closest('button[data-act]');
  if (!b) return;
  const p = state.board.items.find((x) => x.id === b.dataset.id);
  if (b.dataset.act === 'edit') { if (p) openEditForm(p); return; }
  const body = { status: b.dataset.act };
  b.disabled = true;
  const res = await apiPatch('/v1/postings/' + encodeURIComponent(b.dataset.id), body);
  b.disabled = false;
  const box = $('#board-message');
  box.hidden = false;
  if (res.ok) {
    const key = body.status === 'withdrawn' ? 'ok.withdrawn' : body.status === 'closed' ? 'ok.closed' : 'ok.edited';
    box.className = 'form-result';
    box.textContent = t(key, { title: (res.data && res.data.title) || (p && p.title) || b.dataset.id });
    refreshBoard();
    fastPoll.kick();
  } else {
    box.className = 'form-error';
    box.textContent = res.data && res.data.code ? problemText(res.data) : failureMessage(res);
  }
}

/* Changing a posting: a form over the board (the board's own cards are
   redrawn by every poll), sending only the fields that changed. */

const EDIT_TEXT = ['title', 'employer', 'category', 'wage', 'location', 'valid_until'];
const EDIT_OPTIONAL = ['wage', 'location', 'valid_until']; // emptied = cleared (null)

function openEditForm(p) {
  const form = $('#edit-form');
  clearFormMessages(form, 'edit');
  state.editing = p;
  for (const n of EDIT_TEXT) form.elements[n].value = p[n] == null ? '' : String(p[n]);
  form.elements.work_type.value = p.work_type || '';
  form.elements.positions.value = isNum(p.positions) ? String(p.positions) : '';
  form.dataset.id = p.id;
  $('#edit-id').textContent = p.id;
  form.hidden = false;
  form.scrollIntoView({ block: 'start' });
  form.elements.title.focus();
}

function closeEditForm() {
  const form = $('#edit-form');
  form.hidden = true;
  delete form.dataset.id;
  state.editing = null;
}

/** The PATCH body: each field whose value differs from the posting as shown. */
function editBody(form, p) {
  const body = {};
  for (const n of EDIT_TEXT) {
    const v = textValue(form, n);
    const was = p[n] == null ? '' : String(p[n]);
    if (v === was) continue;
    body[n] = v === '' && EDIT_OPTIONAL.includes(n) ? null : v;
  }
  if (form.elements.work_type.value !== (p.work_type || '')) body.work_type = form.elements.work_type.value;
  const pos = textValue(form, 'positions');
  if (pos !== (isNum(p.positions) ? String(p.positions) : '')) body.positions = positionsValue(pos);
  return body;
}

async function onEditSubmit(ev) {
  ev.preventDefault();
  const form = $('#edit-form');
  const p = state.editing;
  if (!p) return;
  clearFormMessages(form, 'edit');
  const body = editBody(form, p);
  const box = $('#board-message');
  if (Object.keys(body).length === 0) {
    closeEditForm();
    box.className = 'form-result';
    box.textContent = t('edit.nothing', { title: p.title || p.id });
    box.hidden = false;
    return;
  }
  const button = $('button[type=submit]', form);
  button.disabled = true;
  try {
    const res = await apiPatch('/v1/postings/' + encodeURIComponent(p.id), body);
    if (!res.ok) { showFormProblems(form, 'edit', res); return; }
    closeEditForm();
    box.className = 'form-result';
    box.dataset.id = p.id;
    box.textContent = t('ok.edited', { title: (res.data && res.data.title) || p.title || p.id });
    box.hidden = false;
    // Show the new version at once; the poll confirms it.
    if (res.data && res.data.id) state.board.items = state.board.items.map((x) => (x.id === res.data.id ? res.data : x));
    renderBoard();
    refreshBoard();
    fastPoll.kick();
  } finally {
    button.disabled = false;
  }
}

function detail(key, value) {
  if (value === undefined || value === null || value === '') return null;
  return el('div', { class: 'detail' }, [el('dt', {}, t(key)), el('dd', {}, String(value))]);
}

/* ── Screen mode ───────────────────────────────────────────────────────── */

/** Rows of the wall screen's list per page, from the height left for it. */
function screenRowsPerPage() {
  const wrap = $('.screen-list-wrap');
  const probe = $('#screen-postings li');
  const h = wrap ? wrap.clientHeight : 0;
  const row = probe ? probe.offsetHeight : 0;
  return h > 0 && row > 0 ? Math.max(1, Math.floor(h / row)) : 8;
}

function screenDate(ms) {
  const { y, mo, d } = cstParts(ms);
  const wd = new Date(ms + CST_OFFSET_MS).getUTCDay();
  const names = lang === 'en' ? t('wd').split(',') : Array.from(t('wd'));
  return `${y}-${mo}-${d} ${t('weekday', { d: names[wd] })}`;
}

/**
 * The wall screen: this office's name and date; open positions summed over
 * exactly the postings listed below (so the figure and the list agree),
 * and the subtree's registered people and placements; then the list, a
 * page at a time.
 */
function renderScreen() {
  const me = selfRow();
  $('#screen-node').textContent = me ? officeName(me) : homeId() || '';
  $('#screen-date').textContent = screenDate(Date.now());
  $('#screen-clock').textContent = fmtClockSeconds(Date.now()).slice(0, 5);
  const sub = (!state.drill && state.summary && state.summary.subtree) || null;
  const all = state.screenAll;
  const posts = all.reduce((a, p) => a + (remainingOf(p) || 0), 0);
  setFigure($('#screen-posts'), state.screenLoaded ? posts : null);
  $('#screen-posts').dataset.postings = String(all.length);
  setFigure($('#screen-registered'), sub ? sub.workers_registered : null);
  setFigure($('#screen-placements'), sub ? sub.placements : null);
  $('#screen-note').textContent = t('screen.note', { n: all.length });
  const per = screenRowsPerPage();
  const pages = Math.max(1, Math.ceil(all.length / per));
  if (state.screenPage >= pages) state.screenPage = 0;
  const shown = all.slice(state.screenPage * per, state.screenPage * per + per);
  $('#screen-pageno').textContent = pages > 1 ? t('screen.page', { i: state.screenPage + 1, n: pages }) : '';
  const key = lang + '|' + per + '|' + JSON.stringify(shown.map((p) => [p.id, p.version, remainingOf(p)]));
  if (key !== state.screenKey) {
    state.screenKey = key;
    replaceChildren($('#screen-postings'), shown.length
      ? shown.map(screenItem)
      : [el('li', { class: 'screen-empty' }, t('screen.empty'))]);
  }
}

function screenItem(p) {
  const rem = remainingOf(p);
  return el('li', { 'data-id': p.id, 'data-remaining': isNum(rem) ? rem : null }, [
    el('span', { class: 'screen-title', title: p.title || '' }, p.title || '—'),
    el('span', { class: 'screen-employer', title: p.employer || '' }, p.employer || ''),
    el('span', { class: 'screen-rem' }, t('screen.remaining', { r: isNum(rem) ? rem : '—' })),
    el('span', { class: 'screen-wage' }, p.wage || ''),
    el('span', { class: 'screen-place' }, p.location || ''),
    el('span', { class: 'screen-contact' }, t('screen.contact', { office: nameOf(p.origin) })),
  ]);
}

/** Turn the page of the list. */
function advanceScreenList() {
  const per = screenRowsPerPage();
  const pages = Math.max(1, Math.ceil(state.screenAll.length / per));
  state.screenPage = (state.screenPage + 1) % pages;
  renderScreen();
}

async function refreshScreenPostings() {
  try {
    const data = await apiGet('/v1/postings', { open: 'true', limit: MAX_LIMIT });
    const list = (Array.isArray(data.postings) ? data.postings : []).filter((p) => remainingOf(p) > 0 && !p.expired);
    list.sort((a, b) => (toMs(b.created_at) || 0) - (toMs(a.created_at) || 0));
    state.screenAll = list;
    state.screenLoaded = true;
    markOk('screen');
    renderScreen();
  } catch (e) {
    markFailed('screen', e);
  }
}

/* ── Staff forms ───────────────────────────────────────────────────────── */

function fillOptionSelects(root) {
  for (const sel of $$('select[data-options]', root)) {
    const values = sel.dataset.options === 'key_group' ? KEY_GROUPS : WORK_TYPES;
    const label = sel.dataset.options === 'key_group' ? keyGroupLabel : workTypeLabel;
    const current = sel.value;
    replaceChildren(sel, [el('option', { value: '' }, t(sel.dataset.empty || 'opt.any'))]
      .concat(values.map((v) => el('option', { value: v }, label(v)))));
    sel.value = current;
  }
}

/** The audience select offers this node and its ancestors; it fills input[name=audience]. */
function renderAudienceChoices() {
  const id = state.status && state.status.node_id;
  if (!id) return;
  const select = $('#audience-scope');
  const input = $('#post-form').elements.audience;
  const rebuild = state.audienceFor !== id + '|' + lang;
  if (rebuild) {
    const opts = [el('option', { value: id }, t('scope.own', { id }))]
      .concat(ancestorsOf(id).map((a) => el('option', { value: a }, t('scope.ancestor', { id: a }))))
      .concat(el('option', { value: '' }, t('scope.other')));
    replaceChildren(select, opts);
    if (state.audienceFor === null && !input.value) input.value = id;
    state.audienceFor = id + '|' + lang;
  }
  syncAudienceSelect();
}

function syncAudienceSelect() {
  const select = $('#audience-scope');
  const value = $('#post-form').elements.audience.value.trim();
  const match = Array.from(select.options).some((o) => o.value && o.value === value);
  select.value = match ? value : '';
}

function onAudienceScope() {
  const select = $('#audience-scope');
  const input = $('#post-form').elements.audience;
  if (select.value) input.value = select.value;
  else { input.value = ''; input.focus(); }
}

/** Helper selects that copy their value into an id input. */
function bindPick(selectSel, inputName, form) {
  const select = $(selectSel);
  const input = form.elements[inputName];
  select.addEventListener('change', () => { if (select.value) input.value = select.value; });
  input.addEventListener('input', () => {
    select.value = Array.from(select.options).some((o) => o.value === input.value.trim()) ? input.value.trim() : '';
  });
}

async function loadPickLists() {
  const [workers, postings] = await Promise.all([
    apiGet('/v1/workers', { limit: PICK_LIMIT }).catch((e) => { markFailed('workers', e); return null; }),
    apiGet('/v1/postings', { open: 'true', limit: PICK_LIMIT }).catch((e) => { markFailed('postings', e); return null; }),
  ]);
  if (workers) { markOk('workers'); fillWorkerPick(Array.isArray(workers.workers) ? workers.workers : []); }
  if (postings) { markOk('postings'); fillPostingPick(Array.isArray(postings.postings) ? postings.postings : []); }
}

async function searchWorkers(q) {
  try {
    const data = await apiGet('/v1/workers', { q: q || undefined, limit: q ? 50 : PICK_LIMIT });
    const list = Array.isArray(data.workers) ? data.workers : [];
    fillWorkerPick(list);
    $('#worker-search-count').textContent = q ? (list.length ? t('search.count', { n: list.length }) : t('search.none')) : '';
    const input = $('#placement-form').elements.worker_id;
    if (q && list.length === 1) { input.value = list[0].id; $('#worker-pick').value = list[0].id; }
  } catch (e) {
    markFailed('workers', e);
  }
}

function fillWorkerPick(workers) {
  state.pickWorkers = workers;
  const seekingFirst = workers.slice().sort((a, b) => (a.status === 'placed') - (b.status === 'placed'));
  fillPick($('#worker-pick'), $('#placement-form').elements.worker_id, seekingFirst.map((w) => ({
    value: w.id,
    text: `${w.name || '—'}${w.phone ? ' · ' + w.phone : ''} · ${keyGroupLabel(w.key_group)}${w.status ? ' · ' + workerStatusLabel(w.status) : ''}`,
  })));
}

function fillPostingPick(postings) {
  state.pickPostings = postings;
  fillPick($('#posting-pick'), $('#placement-form').elements.posting_id, postings.filter((p) => remainingOf(p) !== 0).map((p) => ({
    value: p.id,
    text: `${p.title || '—'} · ${p.employer || ''} · ${t('board.remaining', { r: fmtNum(remainingOf(p)) })} · ${p.id}`,
  })));
}

function fillPick(select, input, items) {
  replaceChildren(select, [el('option', { value: '' }, t('opt.pick'))]
    .concat(items.map((i) => el('option', { value: i.value }, i.text))));
  select.value = items.some((i) => i.value === input.value.trim()) ? input.value.trim() : '';
}

/* Reading form values */

function textValue(form, name) {
  const f = form.elements[name];
  return f ? f.value.trim() : '';
}

/** Put optional fields in only when filled in. */
function withOptional(body, form, names) {
  for (const n of names) {
    const v = textValue(form, n);
    if (v) body[n] = v;
  }
  return body;
}

/** positions: a number when it looks like one, else the raw text so the API names the problem. */
function positionsValue(raw) {
  return /^-?\d+$/.test(raw) ? Number(raw) : raw;
}

function postBody(form) {
  const body = {
    title: textValue(form, 'title'),
    employer: textValue(form, 'employer'),
    category: textValue(form, 'category'),
    work_type: textValue(form, 'work_type'),
    positions: positionsValue(textValue(form, 'positions')),
  };
  return withOptional(body, form, ['audience', 'wage', 'location', 'valid_until']);
}

function workerBody(form) {
  const body = { name: textValue(form, 'name'), key_group: textValue(form, 'key_group') };
  withOptional(body, form, ['phone', 'wanted_work_type']);
  const skills = textValue(form, 'skills').split(/[,，、;；\n]+/).map((s) => s.trim()).filter(Boolean);
  if (skills.length) body.skills = skills;
  return body;
}

function placementBody(form) {
  return { worker_id: textValue(form, 'worker_id'), posting_id: textValue(form, 'posting_id') };
}

/* Showing results and errors */

function formFieldNames(form) {
  return $$('.field-error[data-field]', form).map((e) => e.dataset.field);
}

/** The field an API error message names: text before the first ':', or its first word. */
function fieldOfMessage(message, names) {
  const m = String(message || '');
  const colon = m.indexOf(':');
  const candidates = [];
  if (colon > 0) candidates.push(m.slice(0, colon).trim().replace(/\[.*$/, ''));
  const word = /^\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(m);
  if (word) candidates.push(word[1]);
  return candidates.find((c) => names.includes(c)) || null;
}

function clearFormMessages(form, prefix) {
  for (const e of $$('.field-error', form)) { e.textContent = ''; e.hidden = true; }
  for (const i of $$('[aria-invalid]', form)) i.removeAttribute('aria-invalid');
  const err = $('#' + prefix + '-error');
  err.hidden = true;
  err.textContent = '';
  const ok = $('#' + prefix + '-result');
  ok.hidden = true;
  ok.textContent = '';
  delete ok.dataset.id;
}

/** Show every problem of a 4xx body: each under its field, in the page's language. */
function showFormProblems(form, prefix, res) {
  const data = res.data || {};
  const problems = Array.isArray(data.errors) && data.errors.length ? data.errors : data.code ? [data] : null;
  if (!problems) { showFormError(form, prefix, failureMessage(res)); return; }
  const names = formFieldNames(form);
  const general = [];
  let first = null;
  for (const p of problems) {
    const slot = p.field && names.includes(p.field) ? $(`.field-error[data-field="${p.field}"]`, form) : null;
    if (!slot) { general.push(problemText(p)); continue; }
    slot.textContent = slot.textContent ? slot.textContent + '；' + problemText(p) : problemText(p);
    slot.dataset.code = p.code || '';
    slot.hidden = false;
    const input = form.elements[p.field];
    if (input) { input.setAttribute('aria-invalid', 'true'); if (!first) first = input; }
  }
  if (first) first.focus();
  if (general.length) {
    const err = $('#' + prefix + '-error');
    err.textContent = general.join('；');
    err.hidden = false;
  }
}

function showFormError(form, prefix, message) {
  const field = fieldOfMessage(message, formFieldNames(form));
  if (field) {
    const slot = $(`.field-error[data-field="${field}"]`, form);
    slot.textContent = message;
    slot.hidden = false;
    const input = form.elements[field];
    if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
    return;
  }
  const err = $('#' + prefix + '-error');
  err.textContent = message;
  err.hidden = false;
}

function showFormResult(prefix, okKey, id, vars) {
  const box = $('#' + prefix + '-result');
  box.dataset.id = id;
  replaceChildren(box, [t(okKey, vars) + ' ', el('code', { id: prefix + '-result-id', class: 'mono' }, id)]);
  box.hidden = false;
}

function failureMessage(res) {
  if (res.data && res.data.error) return String(res.data.error);
  return res.status === 0 ? t('err.network') : t('err.http', { status: res.status });
}

/**
 * Wire a form: build the body, POST it, show the new id or the error next to
 * its field, then `after` (resetting, refreshing lists).
 */
function bindForm(form, prefix, path, build, okKey, after, echo) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = $('button[type=submit]', form);
    clearFormMessages(form, prefix);
    button.disabled = true;
    try {
      const body = build(form);
      const res = await apiPost(path, body);
      if (res.ok) {
        const id = (res.data && res.data.id) || '';
        const vars = echo ? echo(res.data || {}, body) : null;
        after(form);
        showFormResult(prefix, vars ? okKey + '2' : okKey, id, vars);
      } else {
        showFormProblems(form, prefix, res);
      }
    } finally {
      button.disabled = false;
    }
  });
}

function resetKeeping(form, keep) {
  const saved = keep.map((n) => [n, form.elements[n].value]);
  form.reset();
  for (const [n, v] of saved) form.elements[n].value = v;
}

function afterPost(form) {
  resetKeeping(form, ['audience', 'work_type']);
  syncAudienceSelect();
  state.board.loaded = false; // the new posting belongs on the board
  loadPickLists();
  fastPoll.kick();
}

function afterWorker(form) {
  form.reset();
  loadPickLists();
  fastPoll.kick();
}

function afterPlacement(form) {
  form.reset();
  $('#worker-pick').value = '';
  $('#posting-pick').value = '';
  state.board.loaded = false;
  loadPickLists();
  fastPoll.kick();
}

function setupForms() {
  fillOptionSelects(document);
  const post = $('#post-form');
  bindForm(post, 'post', '/v1/postings', postBody, 'ok.post', afterPost,
    (d) => ({ title: d.title || '', n: d.positions }));
  bindForm($('#worker-form'), 'worker', '/v1/workers', workerBody, 'ok.worker', afterWorker, (d) => ({ name: d.name || '' }));
  bindForm($('#placement-form'), 'placement', '/v1/placements', placementBody, 'ok.placement', afterPlacement, (d, body) => {
    const w = state.pickWorkers.find((x) => x.id === body.worker_id);
    const p = state.pickPostings.find((x) => x.id === body.posting_id);
    return { worker: w ? w.name : body.worker_id, title: p ? p.title : body.posting_id, office: nameOf(homeId()) };
  });
  const search = $('#worker-search');
  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => searchWorkers(search.value.trim()), 250);
  });
  $('#audience-scope').addEventListener('change', onAudienceScope);
  post.elements.audience.addEventListener('input', syncAudienceSelect);
  const placement = $('#placement-form');
  bindPick('#worker-pick', 'worker_id', placement);
  bindPick('#posting-pick', 'posting_id', placement);
  for (const e of $$('.field-error')) e.hidden = true;
}

/* ── Language ──────────────────────────────────────────────────────────── */

function applyStaticText() {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  for (const node of $$('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of $$('[data-i18n-placeholder]')) node.placeholder = t(node.dataset.i18nPlaceholder);
  $('#lang-toggle').textContent = t('lang.switch');
}

function setLang(next) {
  lang = next;
  try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode: not remembered */ }
  applyStaticText();
  fillOptionSelects(document);
  renderAll();
  if (state.view === 'staff') loadPickLists();
}

function renderAll() {
  renderConnection();
  renderUplink();
  renderSummary();
  renderStatus();
  renderBoard();
  renderScreen();
}

/* ── Start ─────────────────────────────────────────────────────────────── */

function setupEvents() {
  window.addEventListener('hashchange', route);
  $('#lang-toggle').addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh'));
  $('#nodes-table thead').addEventListener('click', onSortClick);
  $('#all-levels').addEventListener('change', (ev) => {
    state.allLevels = ev.target.checked;
    state.rowLimit = 100;
    renderNodesTable();
  });
  const filters = $('#board-filters');
  filters.addEventListener('submit', (ev) => ev.preventDefault()); // Enter also fires 'change'
  filters.addEventListener('change', () => reloadBoard());
  $('#board-more').addEventListener('click', loadMoreBoard);
  $('#board-list').addEventListener('click', onPostingAction);
  $('#edit-form').addEventListener('submit', onEditSubmit);
  $('#edit-cancel').addEventListener('click', closeEditForm);
  $('#row-filter').addEventListener('change', (ev) => { state.rowFilter = ev.target.value; state.rowLimit = 100; renderNodesTable(); });
  $('#row-search').addEventListener('input', (ev) => { state.rowSearch = ev.target.value; state.rowLimit = 100; renderNodesTable(); });
  $('#rows-more').addEventListener('click', () => { state.rowLimit += 100; renderNodesTable(); });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const box = $('#trend-chart');
      if (box && Math.abs(box.clientWidth - 2 * TREND_PAD_PX - (state.trendWidth || 0)) > 2) renderTrend();
    }, 100);
  });
  $('#group-city').addEventListener('change', (ev) => { state.groupCity = ev.target.checked; state.rowLimit = 100; renderNodesTable(); });
  $('#nodes-body').addEventListener('click', onGroupToggle);
  $('#signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    signIn($('#signin-form').elements.token.value.trim());
    $('#signin-form').reset();
  });
  $('#signout').addEventListener('click', () => { signIn(null); });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { fastPoll.kick(); slowPoll.kick(); }
  });
  setInterval(() => { if (state.view === 'screen') $('#screen-clock').textContent = fmtClockSeconds(Date.now()).slice(0, 5); }, 1000);
  setInterval(() => { if (state.view === 'screen') advanceScreenList(); }, SCREEN_PAGE_MS);
}

async function loadCatalogue() {
  try {
    const res = await fetch('/errors.json', { cache: 'no-store' });
    if (res.ok) CATALOGUE = await res.json();
  } catch (e) { /* the English `error` of each answer is shown instead */ }
}

function start() {
  loadCatalogue();
  renderSignIn();
  if (state.screenOnly) document.body.classList.add('screen-only');
  applyStaticText();
  setupForms();
  setupEvents();
  route();
  renderAll();
  fastPoll.start();
  slowPoll.start();
}

start();
