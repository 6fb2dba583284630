//! The web page in a real headless Chromium, on a live 1+2+4 mesh.
//!
//! The province's dashboard is opened first and kept open. On a county's
//! page, staff fill the post-job form: with 0 positions the error shows next
//! to the positions field and nothing is stored; corrected, the new posting's
//! id shows in the result. The province's dashboard then shows the higher
//! figures by itself, without a reload. Screenshots go to `tests/artifacts/`.
//!
//! Needs Chromium (`apt-get install chromium`); without it the test prints
//! "skipped: chromium not installed", or fails when `$CI` is set.

use std::time::{Duration, Instant};

use jobmesh_tests::cdp::{artifact_path, chromium_or_skip, Browser, Page};
use jobmesh_tests::{within, Mesh};
use serde_json::Value;

const NODES: [&str; 7] = ["gz", "gz/a", "gz/b", "gz/a/x", "gz/a/y", "gz/b/z", "gz/b/w"];
const COUNTY: &str = "gz/a/x";
/// Loading a page and its first API answers.
const PAGE_LOAD: Duration = Duration::from_secs(15);
/// A form's answer.
const FORM_ANSWER: Duration = Duration::from_secs(10);
/// County → city → province, plus the dashboard's own poll period.
const ROLL_UP: Duration = Duration::from_secs(30);

fn ok<T>(what: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A figure of the overview as the page shows it: `data-value` of
/// `#total-<key>`, or `null` while the page has none.
fn figure_js(key: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector('#total-{key}'); \
         return e && e.dataset.value !== undefined ? Number(e.dataset.value) : null; }})()"
    )
}

/// A number cell of the overview's offices table: `data-value` of
/// `td[data-col=<col>]` in the row of `node`, or `null`.
fn cell_js(node: &str, col: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector('#nodes-body tr[data-node=\"{node}\"] td[data-col={col}]'); \
         return e && e.dataset.value !== undefined ? Number(e.dataset.value) : null; }})()"
    )
}

async fn figure(page: &Page, key: &str) -> Option<i64> {
    ok(&format!("read #total-{key}"), page.eval(&figure_js(key)).await).as_i64()
}

/// Fill the post-job form of the county's staff view.
async fn fill_post_form(page: &Page, title: &str, positions: &str) {
    let f = "#post-form";
    ok("title", page.type_into(&format!("{f} input[name=title]"), title).await);
    ok("employer", page.type_into(&format!("{f} input[name=employer]"), "黔东南测试制造有限公司").await);
    ok("category", page.type_into(&format!("{f} input[name=category]"), "普工/装配工").await);
    ok("work_type", page.pick(&format!("{f} select[name=work_type]"), "full_time").await);
    ok("positions", page.type_into(&format!("{f} input[name=positions]"), positions).await);
    ok("wage", page.type_into(&format!("{f} input[name=wage]"), "4000-5000元/月").await);
    ok("location", page.type_into(&format!("{f} input[name=location]"), "观山湖区").await);
    ok("valid_until", page.pick(&format!("{f} input[name=valid_until]"), "2030-12-31").await);
}

/// What the post form shows: field errors (non-empty ones), the form-level
/// error, and the result's `data-id`.
const FORM_STATE_JS: &str = "(() => { const f = document.querySelector('#post-form'); \
    const errs = {}; for (const e of f.querySelectorAll('.field-error[data-field]')) \
      if (e.textContent.trim()) errs[e.dataset.field] = { text: e.textContent.trim(), hidden: e.hidden, code: e.dataset.code || null }; \
    const fe = document.querySelector('#post-error'); const r = document.querySelector('#post-result'); \
    const rid = document.querySelector('#post-result-id'); \
    return { field_errors: errs, form_error: fe.hidden ? null : fe.textContent.trim(), \
      result_id: r.hidden ? null : (r.dataset.id || null), result_text: r.hidden ? null : r.textContent.trim(), \
      result_code: rid ? rid.textContent.trim() : null, \
      positions_invalid: f.elements.positions.getAttribute('aria-invalid') }; })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_posts_through_its_page_and_the_province_dashboard_updates_live() {
    let Some(chromium) = chromium_or_skip("browser") else { return };
    within(Duration::from_secs(60), "browser", async {
        let t0 = Instant::now();
        let mesh = Mesh::start(&NODES).await;
        eprintln!("browser: mesh of {} up after {:?}", NODES.len(), t0.elapsed());
        let browser = ok("launch Chromium", Browser::launch(&chromium).await);
        eprintln!(
            "browser: {} (pid {:?}) at {} after {:?}",
            chromium.display(),
            browser.pid(),
            browser.devtools_url,
            t0.elapsed()
        );
        let county_api = mesh.api(COUNTY);

        // The province's dashboard, open from the start.
        let province = ok("open the province page", browser.open(&format!("{}/#overview", mesh.url("gz"))).await);
        ok(
            "the province page shows node gz and its figures",
            province
                .wait_for(
                    "#node-id is gz, #total-postings_open and city a's row have a data-value",
                    &format!(
                        "document.querySelector('#node-id').textContent.trim() === 'gz' && {} !== null && {} !== null",
                        figure_js("postings_open"),
                        cell_js("gz/a", "postings_open")
                    ),
                    PAGE_LOAD,
                )
                .await,
        );
        let before_open = figure(&province, "postings_open").await.unwrap_or_else(|| panic!("no figure"));
        let before_positions = figure(&province, "positions_open").await.unwrap_or_else(|| panic!("no figure"));
        let before_row = ok("read city a's row", province.eval(&cell_js("gz/a", "postings_open")).await);
        let before_row = before_row.as_i64().unwrap_or_else(|| panic!("city a's row: {before_row}"));
        let api_before = ok("GET gz /v1/summary", mesh.api("gz").summary().await);
        assert_eq!(
            api_before["subtree"]["postings_open"].as_i64(),
            Some(before_open),
            "the dashboard's postings_open disagrees with the API's subtree total: {}",
            api_before["subtree"]
        );
        // Marks this document: still there later means the page was not reloaded.
        ok("mark the province page", province.eval("window.__jobmeshNoReload = 'kept'; true").await);

        // The county's staff forms.
        let county = ok("open the county page", browser.open(&format!("{}/#staff", mesh.url(COUNTY))).await);
        ok(
            "the county's staff view is shown with the post form ready",
            county
                .wait_for(
                    "#view-staff shown, #node-id is the county, audience prefilled",
                    &format!(
                        "!document.querySelector('#view-staff').hidden && \
                         document.querySelector('#node-id').textContent.trim() === '{COUNTY}' && \
                         document.querySelector('#post-form').elements.audience.value === '{COUNTY}' && \
                         document.querySelector('#post-form select[name=work_type]').options.length > 1"
                    ),
                    PAGE_LOAD,
                )
                .await,
        );

        // 1. Two bad fields: 0 positions and a date in the past. Both
        // errors show at once, in Chinese, each under its field, and
        // nothing is stored.
        let held_before = ok("list postings at the county", county_api.list_ids("postings").await);
        let count_before = ok("status", county_api.status().await)["records"]["postings"].clone();
        fill_post_form(&county, "装配工（浏览器测试）", "0").await;
        ok("valid_until", county.pick("#post-form input[name=valid_until]", "2020-01-01").await);
        ok("submit the bad form", county.click("#post-form button[type=submit]").await);
        let shown = ok(
            "the positions and valid_until errors show under their fields",
            county
                .wait_for(
                    ".field-error[data-field=positions] and [data-field=valid_until] non-empty and visible",
                    "['positions', 'valid_until'].every((f) => { \
                      const e = document.querySelector(`#post-form .field-error[data-field=${f}]`); \
                      return !!e && !e.hidden && e.textContent.trim().length > 0 && e.offsetHeight > 0; })",
                    FORM_ANSWER,
                )
                .await,
        );
        assert_eq!(shown, Value::Bool(true));
        let state = ok("read the form", county.eval(FORM_STATE_JS).await);
        eprintln!("browser: bad form shows {state} ({:?})", t0.elapsed());
        let fe = &state["field_errors"];
        let chinese = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        for f in ["positions", "valid_until"] {
            let text = fe[f]["text"].as_str().unwrap_or("");
            assert!(chinese(text), "the {f} error is in Chinese: {state}");
            assert!(!text.contains(f), "the {f} error is for people, not the field name: {state}");
        }
        assert_eq!(fe["positions"]["code"], "out_of_range", "{state}");
        assert_eq!(fe["valid_until"]["code"], "date_in_past", "{state}");
        assert_eq!(fe.as_object().map(|o| o.len()), Some(2), "only those two fields are wrong: {state}");
        assert_eq!(state["form_error"], Value::Null, "the errors belong next to the fields, not the form: {state}");
        assert_eq!(state["result_id"], Value::Null, "a refused form shows no result: {state}");
        assert_eq!(state["positions_invalid"], "true", "the positions input is marked aria-invalid: {state}");
        ok("screenshot", county.screenshot(&artifact_path("browser-county-post-form-error-zh.png")).await);
        let held_after = ok("list postings at the county", county_api.list_ids("postings").await);
        assert_eq!(held_after, held_before, "a refused form stored a posting at {COUNTY}");
        let count_after = ok("status", county_api.status().await)["records"]["postings"].clone();
        assert_eq!(count_after, count_before, "{COUNTY} /v1/status records.postings changed after a refused form");
        ok("valid_until", county.pick("#post-form input[name=valid_until]", "2030-12-31").await);

        // 2. Corrected: 3 positions. The new id shows in the result.
        ok("positions", county.type_into("#post-form input[name=positions]", "3").await);
        ok("submit the corrected form", county.click("#post-form button[type=submit]").await);
        let id = ok(
            "the new posting's id shows in the result",
            county
                .wait_for(
                    "#post-result[data-id] shown",
                    "(() => { const r = document.querySelector('#post-result'); \
                 return !r.hidden && r.dataset.id ? r.dataset.id : null; })()",
                    FORM_ANSWER,
                )
                .await,
        );
        let id = id.as_str().unwrap_or_else(|| panic!("data-id is not a string: {id}")).to_string();
        let state = ok("read the form", county.eval(FORM_STATE_JS).await);
        eprintln!("browser: posted {id}; form shows {state}");
        assert_eq!(state["result_code"].as_str(), Some(id.as_str()), "#post-result-id shows the id: {state}");
        assert!(state["result_text"].as_str().is_some_and(|t| t.contains(&id)), "the result shows the id: {state}");
        assert_eq!(state["field_errors"], serde_json::json!({}), "errors are cleared after success: {state}");
        let stored = ok("GET the new posting", county_api.get_posting(&id).await)
            .unwrap_or_else(|| panic!("{COUNTY} answers 404 for the posting {id} its page just showed"));
        assert_eq!(stored["origin"], COUNTY, "{stored}");
        assert_eq!(stored["positions"], 3, "{stored}");
        assert_eq!(stored["remaining"], 3, "{stored}");
        assert_eq!(stored["title"], "装配工（浏览器测试）", "{stored}");
        assert_eq!(stored["audience"], COUNTY, "the prefilled audience is the county's own subtree: {stored}");
        assert_eq!(stored["valid_until"], "2030-12-31", "{stored}");
        let held_now = ok("list postings at the county", county_api.list_ids("postings").await);
        assert_eq!(held_now.len(), held_before.len() + 1, "exactly one posting was stored");
        ok("screenshot", county.screenshot(&artifact_path("browser-county-post-form.png")).await);

        // 3. The province's dashboard, never reloaded, shows it.
        let posted = Instant::now();
        let want = format!(
            "(() => {{ const o = {}; const p = {}; const r = {}; \
             return o === {} && p === {} && r === {} ? [o, p, r] : null; }})()",
            figure_js("postings_open"),
            figure_js("positions_open"),
            cell_js("gz/a", "postings_open"),
            before_open + 1,
            before_positions + 3,
            before_row + 1
        );
        let seen = province
            .wait_for(
                "the province's totals rise by 1 posting and 3 positions, and city a's row by 1 posting",
                &want,
                ROLL_UP,
            )
            .await;
        if let Err(e) = seen {
            let api_now = mesh.api("gz").summary().await;
            let vis = province.eval("document.visibilityState").await;
            panic!(
                "{e}\nprovince page visibility: {vis:?}\nGET gz /v1/summary now: {}",
                api_now.map(|s| s["subtree"].to_string()).unwrap_or_else(|e| e)
            );
        }
        eprintln!("browser: the province dashboard showed the new figures {:?} after posting", posted.elapsed());
        let kept = ok("read the mark", province.eval("window.__jobmeshNoReload || null").await);
        assert_eq!(kept, "kept", "the province page was reloaded (its mark is gone)");
        let rep = ok(
            "read #reporting",
            province
                .eval(
                    "(() => { const r = document.querySelector('#reporting'); \
                      return { offices: r.dataset.offices, expected: r.dataset.expected, level: r.dataset.level, \
                      text: r.textContent }; })()",
                )
                .await,
        );
        eprintln!("browser: province #reporting {rep}");
        assert_eq!(rep["offices"], "7", "all 7 offices report: {rep}");
        assert_eq!(rep["level"], "green", "all fresh: {rep}");
        assert_eq!(rep["expected"], "7", "7 offices known (no topology given): {rep}");
        let shot = artifact_path("browser-province-dashboard.png");
        ok("screenshot", province.screenshot(&shot).await);
        println!("browser: screenshots in {}", shot.parent().map(|p| p.display().to_string()).unwrap_or_default());
        eprintln!("browser: screenshot {}", shot.display());

        for (name, page) in [("province", &province), ("county", &county)] {
            let errors = page.errors();
            assert!(errors.is_empty(), "the {name} page reported errors:\n{}", errors.join("\n"));
        }
        eprintln!("browser: checks done after {:?}", t0.elapsed());
        browser.close().await;
        eprintln!("browser: Chromium closed after {:?}", t0.elapsed());
        mesh.finish().await;
        eprintln!("browser: mesh stopped after {:?}", t0.elapsed());
    })
    .await;
}

/// The county's topology: its ancestors, itself and a station that never
/// reports, with the names the page must show.
const COUNTY_TOPOLOGY: &str = "id\tparent\ttier\tname\tname_zh\n\
    gz\t\tprovince\tGuizhou Provincial Employment Service HQ\t贵州省就业服务总站\n\
    gz/a\tgz\tcity\tCity A sub-station\t甲市分站\n\
    gz/a/x\tgz/a\tcounty\tXiuwen county workstation\t修文县工作站\n\
    gz/a/x/s9\tgz/a/x\tstation\tXiuwen odd-jobs market (Renmin Road)\t修文县人民路零工市场\n";

async fn viewport(page: &Page, width: u32, height: u32) {
    ok(
        "set the viewport",
        page.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await,
    );
}

async fn english(page: &Page) {
    // The wall screen hides the top bar with its button: switch as the button does.
    ok("switch to English", page.eval("setLang('en'); true").await);
    ok("English", page.wait_for("lang is en", "document.documentElement.lang === 'en'", FORM_ANSWER).await);
}

/// Completeness, names, withdrawal and the wall screen, in Chinese and
/// English: a missing station shows "—" and turns its county red; a city
/// cut off turns the province's headline amber with the right counts; a
/// posting withdrawn at its origin leaves the board at its audience; the
/// wall screen at 1920×1080 shows the office's name and three figures that
/// agree with the list below them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_names_withdrawal_and_wall_screen() {
    let Some(chromium) = chromium_or_skip("browser") else { return };
    within(Duration::from_secs(120), "browser page", async {
        let topo_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let topo = topo_dir.path().join("offices.tsv");
        std::fs::write(&topo, COUNTY_TOPOLOGY).unwrap_or_else(|e| panic!("write {}: {e}", topo.display()));
        let mut mesh = jobmesh_tests::Mesh::new_with(&NODES, |cfg| {
            if cfg.node_id == COUNTY {
                cfg.extra.push(format!("topology = {:?}", topo.display().to_string()));
            }
        });
        mesh.start_all().await;
        let browser = ok("launch Chromium", Browser::launch(&chromium).await);
        let county_api = mesh.api(COUNTY);

        // 1. The county: its name first, the missing station red with "—".
        let county = ok("open the county page", browser.open(&format!("{}/#overview", mesh.url(COUNTY))).await);
        viewport(&county, 1400, 1000).await;
        let row = "#nodes-body tr[data-node=\"gz/a/x/s9\"]";
        ok(
            "the county's page names it and shows its missing station",
            county
                .wait_for(
                    "#node-name is the county's Chinese name and the s9 row is missing",
                    &format!(
                        "document.querySelector('#node-name').textContent === '修文县工作站' && \
                         !!document.querySelector('{row}') && \
                         document.querySelector('{row}').dataset.state === 'missing' && \
                         document.querySelector('#reporting').dataset.level === 'red'"
                    ),
                    PAGE_LOAD,
                )
                .await,
        );
        let cells = ok(
            "read the missing row",
            county
                .eval(&format!(
                    "(() => {{ const r = document.querySelector('{row}'); \
                      return {{ name: r.querySelector('.office-name').textContent, \
                        values: Array.from(r.querySelectorAll('td.num[data-col=postings_open], td.num[data-col=placements]')).map((c) => c.textContent), \
                        rep: Object.assign({{}}, document.querySelector('#reporting').dataset) }}; }})()"
                ))
                .await,
        );
        assert_eq!(cells["name"], "修文县人民路零工市场", "the station's name from the topology: {cells}");
        assert_eq!(cells["values"], serde_json::json!(["—", "—"]), "a missing office shows —, not 0: {cells}");
        assert_eq!(cells["rep"]["missing"], "1", "{cells}");
        assert_eq!(cells["rep"]["fresh"], "1", "{cells}");
        ok("screenshot", county.screenshot(&artifact_path("page-county-missing-zh.png")).await);

        // 2. Withdrawal: a posting for city a, withdrawn on the county's board,
        // leaves the board of county y (in its audience).
        let body = serde_json::json!({"title": "保洁员（撤下测试）", "employer": "观山湖物业", "category": "保洁",
            "work_type": "odd_job", "positions": 2, "audience": "gz/a", "wage": "150元/天", "location": "修文县"});
        let posted = ok("POST the posting", county_api.post_json("/v1/postings", &body).await);
        assert_eq!(posted.status, 201, "{}", posted.text);
        let id = posted.json.as_ref().and_then(|v| v["id"].as_str()).unwrap_or_default().to_string();
        mesh.wait_held("postings", &id, &["gz/a/y"], ROLL_UP).await;
        let other = ok("open county y's board", browser.open(&format!("{}/#board", mesh.url("gz/a/y"))).await);
        let card = format!("#board-list article[data-id=\"{id}\"]");
        ok("the posting is on y's board", other.wait_for("the card shows", &format!("!!document.querySelector('{card}')"), ROLL_UP).await);
        ok("go to the county's board", county.navigate(&format!("{}/#board", mesh.url(COUNTY))).await);
        let button = format!("{card} button[data-act=withdrawn]");
        ok("the withdraw button", county.wait_for("the button shows", &format!("!!document.querySelector('{button}')"), PAGE_LOAD).await);
        ok("screenshot", county.screenshot(&artifact_path("page-county-board-zh.png")).await);
        ok("withdraw", county.click(&button).await);
        let said = ok(
            "the county says what was done",
            county
                .wait_for(
                    "#board-message echoes the title",
                    "(() => { const m = document.querySelector('#board-message'); \
                      return !m.hidden && m.textContent.includes('保洁员（撤下测试）') ? m.textContent : null; })()",
                    FORM_ANSWER,
                )
                .await,
        );
        eprintln!("browser: {said}");
        ok(
            "the posting leaves y's board",
            other.wait_for("the card is gone", &format!("!document.querySelector('{card}')"), ROLL_UP).await,
        );
        let at_y = ok("GET at y", mesh.api("gz/a/y").get_posting(&id).await).unwrap_or_default();
        assert_eq!(at_y["status"], "withdrawn", "{at_y}");

        // 3. The wall screen at 1920×1080, read-only, no token in the address.
        let mut first = None;
        for (title, positions) in [("装配工", 3), ("仓库搬运工（长期稳定，包吃住，月休四天）", 5)] {
            let body = serde_json::json!({"title": title, "employer": "贵州黔程精密制造有限责任公司第二分公司",
                "category": "普工", "work_type": "full_time", "positions": positions, "wage": "4500元/月",
                "location": "修文县扎佐工业园"});
            let r = ok("POST a posting", county_api.post_json("/v1/postings", &body).await);
            assert_eq!(r.status, 201, "{}", r.text);
            first = first.or_else(|| r.json.as_ref().and_then(|v| v["id"].as_str()).map(str::to_owned));
        }
        let w = ok(
            "POST a worker",
            county_api.post_json("/v1/workers", &serde_json::json!({"name": "王小花", "key_group": "rural_labor", "phone": "13812345678"})).await,
        );
        assert_eq!(w.status, 201, "{}", w.text);
        let wid = w.json.as_ref().and_then(|v| v["id"].as_str()).unwrap_or_default().to_string();
        let l = ok(
            "POST a placement",
            county_api.post_json("/v1/placements", &serde_json::json!({"worker_id": wid, "posting_id": first})).await,
        );
        assert_eq!(l.status, 201, "{}", l.text);
        let screen = ok("open the wall screen", browser.open(&format!("{}/?screen=1", mesh.url(COUNTY))).await);
        viewport(&screen, 1920, 1080).await;
        let shown = ok(
            "the screen shows the name, the date and three figures",
            screen
                .wait_for(
                    "#screen-node named, #screen-posts has a value",
                    "(() => { const v = (s) => document.querySelector(s).dataset.value; \
                      const n = document.querySelector('#screen-node').textContent; \
                      return n === '修文县工作站' && v('#screen-posts') === '7' && v('#screen-registered') === '1' \
                        && v('#screen-placements') === '1' \
                        ? { name: n, date: document.querySelector('#screen-date').textContent, posts: Number(v('#screen-posts')), \
                            listed: Number(document.querySelector('#screen-posts').dataset.postings), \
                            registered: Number(v('#screen-registered')), placements: Number(v('#screen-placements')), \
                            note: document.querySelector('#screen-note').textContent, \
                            rows: document.querySelectorAll('#screen-postings li[data-id]').length } : null; })()",
                    PAGE_LOAD,
                )
                .await,
        );
        eprintln!("browser: wall screen {shown}");
        let open = ok("open postings at the county", county_api.get_json("/v1/postings?open=true&limit=5000").await);
        let open: Vec<&Value> = open["postings"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        let live: Vec<&&Value> = open.iter().filter(|p| p["remaining"].as_i64().unwrap_or(0) > 0).collect();
        let remaining: i64 = live.iter().map(|p| p["remaining"].as_i64().unwrap_or(0)).sum();
        assert_eq!(shown["posts"].as_i64(), Some(remaining), "the posts figure sums the listed postings: {shown}");
        assert_eq!(shown["listed"].as_u64(), Some(live.len() as u64), "{shown}");
        let summary = ok("GET the county's summary", county_api.summary().await);
        assert_eq!(shown["registered"], summary["subtree"]["workers_registered"], "{shown}");
        assert_eq!(shown["placements"], summary["subtree"]["placements"], "{shown}");
        assert!(shown["date"].as_str().is_some_and(|d| d.len() >= 10), "{shown}");
        assert!(shown["note"].as_str().is_some_and(|n| n.contains(&live.len().to_string())), "the screen says what it counts: {shown}");
        let url = ok("the address", screen.eval("location.href").await);
        assert!(!url.as_str().unwrap_or("").contains("token"), "no token in the screen's address: {url}");
        ok("screenshot", screen.screenshot(&artifact_path("page-wall-screen-zh.png")).await);
        english(&screen).await;
        ok("screenshot", screen.screenshot(&artifact_path("page-wall-screen-en.png")).await);

        // 4. City b cut off: the province's headline turns amber, with counts.
        let province = ok("open the province page", browser.open(&format!("{}/#overview", mesh.url("gz"))).await);
        viewport(&province, 1400, 1000).await;
        ok(
            "the province starts green",
            province
                .wait_for("#reporting green", "document.querySelector('#reporting').dataset.level === 'green'", PAGE_LOAD)
                .await,
        );
        mesh.stop("gz/b").await;
        let rep = ok(
            "the headline turns amber with 4 fresh and 3 stale",
            province
                .wait_for(
                    "#reporting amber",
                    "(() => { const r = document.querySelector('#reporting'); \
                      return r.dataset.level === 'amber' ? Object.assign({ text: r.textContent }, r.dataset) : null; })()",
                    ROLL_UP,
                )
                .await,
        );
        eprintln!("browser: province headline {rep}");
        assert_eq!(rep["fresh"], "4", "{rep}");
        assert_eq!(rep["stale"], "3", "{rep}");
        assert_eq!(rep["missing"], "0", "{rep}");
        assert!(rep["text"].as_str().is_some_and(|t| t.contains("过期 3")), "the headline says so: {rep}");
        let row = ok(
            "city b's row",
            province.eval("document.querySelector('#nodes-body tr[data-node=\"gz/b\"]').dataset.subtree").await,
        );
        assert_eq!(row, "amber", "city b's row turns amber");
        ok("screenshot", province.screenshot(&artifact_path("page-province-stale-zh.png")).await);
        english(&province).await;
        let text = ok("the English headline", province.eval("document.querySelector('#reporting').textContent").await);
        assert!(text.as_str().is_some_and(|t| t.contains("3 stale")), "{text}");
        let fits = ok("the page fits 1400 px", province.eval("document.documentElement.scrollWidth").await);
        assert!(fits.as_i64().is_some_and(|w| w <= 1400), "the English page is wider than 1400 px: {fits}");
        ok("screenshot", province.screenshot(&artifact_path("page-province-stale-en.png")).await);

        for (name, page) in [("county", &county), ("other", &other), ("screen", &screen), ("province", &province)] {
            let errors = page.errors();
            assert!(errors.is_empty(), "the {name} page reported errors:\n{}", errors.join("\n"));
        }
        browser.close().await;
        mesh.finish().await;
    })
    .await;
}

/// Staff upload a CSV on the county's page: the check shows the first rows
/// with the bad one's problem, confirming imports the good rows with a
/// progress bar, and the report says what was created; the province then
/// holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_import_a_file_through_the_page_and_see_the_report() {
    let Some(chromium) = chromium_or_skip("browser") else { return };
    within(Duration::from_secs(90), "browser import", async {
        let nodes = ["gz", "gz/a", COUNTY];
        let mesh = Mesh::start(&nodes).await;
        let browser = ok("launch Chromium", Browser::launch(&chromium).await);
        let page = ok("open the county page", browser.open(&format!("{}/#staff", mesh.url(COUNTY))).await);
        ok(
            "the import form is there",
            page.wait_for(
                "#import-form with its kinds",
                "!document.querySelector('#view-staff').hidden && \
                 document.querySelector('#import-form select[name=kind]').options.length === 3",
                PAGE_LOAD,
            )
            .await,
        );
        // 20 rows, the 4th (line 5) with a bad positions cell.
        let mut csv = String::from("岗位名称,招聘单位,职业类别,用工类型,岗位数,外部编号\n");
        for i in 0..20 {
            let positions = if i == 3 { "三".to_string() } else { (i % 4 + 1).to_string() };
            csv.push_str(&format!("页面导入岗位 {i},贵州测试企业,制造业,全职,{positions},page-{i}\n"));
        }
        let set_file = format!(
            "(() => {{ const input = document.querySelector('[data-testid=import-file]'); \
             const dt = new DataTransfer(); \
             dt.items.add(new File([{}], 'fair.csv', {{ type: 'text/csv' }})); \
             input.files = dt.files; input.dispatchEvent(new Event('change')); return input.files.length; }})()",
            serde_json::to_string(&csv).unwrap()
        );
        assert_eq!(ok("set the file", page.eval(&set_file).await), Value::from(1));
        ok("pick postings", page.pick("[data-testid=import-kind]", "postings").await);
        ok("check the file", page.click("[data-testid=import-check]").await);
        let preview = ok(
            "the preview shows the bad row and the counts",
            page.wait_for(
                "#import-report with a preview and the problem of line 5",
                "(() => { const r = document.querySelector('#import-report'); \
                 const p = document.querySelector('[data-testid=import-problems]'); \
                 return !r.hidden && p && document.querySelector('[data-testid=import-preview]') && \
                   !document.querySelector('[data-testid=import-confirm]').hidden ? \
                   { problems: p.textContent, counts: document.querySelector('[data-testid=import-counts]').textContent, \
                     outcome: document.querySelector('[data-testid=import-outcome]').textContent, \
                     bad_rows: document.querySelectorAll('[data-testid=import-preview] tr.bad-row').length } : null; })()",
                FORM_ANSWER,
            )
            .await,
        );
        assert!(
            preview["problems"].as_str().unwrap().contains("第 5 行 岗位数: 必须是正整数"),
            "the problem names line and column: {preview}"
        );
        assert_eq!(preview["counts"], "共 20 行：正确 19 行，有误 1 行", "{preview}");
        assert_eq!(preview["bad_rows"], 1, "{preview}");
        assert_eq!(
            ok("nothing is written by the check", mesh.api(COUNTY).list_all("postings").await).len(),
            0,
            "a check writes nothing"
        );
        ok("confirm", page.click("[data-testid=import-confirm]").await);
        let done = ok(
            "the report says what was created",
            page.wait_for(
                "the outcome line after the import",
                "(() => { const o = document.querySelector('[data-testid=import-outcome]'); \
                 const bar = document.querySelector('#import-progress progress'); \
                 return o && o.textContent.startsWith('导入完成') ? \
                   { outcome: o.textContent, value: bar.value, max: bar.max } : null; })()",
                FORM_ANSWER,
            )
            .await,
        );
        assert_eq!(done["outcome"], "导入完成：新建 19 条，已存在 0 条，跳过有误的 1 行", "{done}");
        assert_eq!((done["value"].as_f64(), done["max"].as_f64()), (Some(20.0), Some(20.0)), "{done}");
        let shot = artifact_path("browser-import-report.png");
        ok("screenshot", page.screenshot(&shot).await);
        let held = ok("the county's postings", mesh.api(COUNTY).list_all("postings").await);
        assert_eq!(held.len(), 19);
        jobmesh_tests::eventually("the province holds the imported postings", ROLL_UP, || async {
            let n = mesh.api("gz").list_all("postings").await?.len();
            if n == 19 {
                Ok(())
            } else {
                Err(format!("{n} of 19"))
            }
        })
        .await;
        let errors = page.errors();
        assert!(errors.is_empty(), "the page reported errors:\n{}", errors.join("\n"));
        browser.close().await;
        mesh.finish().await;
    })
    .await;
}
