//! The web page in a real headless Chromium, on a live 1+2+4 mesh.
//!
//! The province's dashboard is opened first and kept open. On a county's
//! page, staff fill the post-job form: with 0 positions the error shows next
//! to the positions field and nothing is stored; corrected, the new posting's
//! id shows in the result. The province's dashboard then shows the higher
//! figures by itself, without a reload. Screenshots go to `target/screenshots/`.
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

/// The offices of the Guizhou topology (`deploy/topology/guizhou-offices.tsv`):
/// id and parent of each, in file order.
fn guizhou_offices() -> (String, Vec<(String, String)>) {
    let path = jobmesh_tests::bin::workspace_root().join("deploy/topology/guizhou-offices.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let rows = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("id\t") && !l.trim().is_empty())
        .map(|l| {
            let mut c = l.split('\t');
            (c.next().unwrap_or("").to_owned(), c.next().unwrap_or("").to_owned())
        })
        .collect();
    (text, rows)
}

/// How many elements match `selector`.
async fn count(page: &Page, selector: &str) -> u64 {
    let sel = serde_json::json!(selector).to_string();
    let v = ok(&format!("count {selector}"), page.eval(&format!("document.querySelectorAll({sel}).length")).await);
    v.as_u64().unwrap_or_else(|| panic!("count {selector}: {v}"))
}

/// What the offices table shows: the group rows (id → expanded, fresh,
/// stale, missing, members) and the rows inside each group.
const TABLE_JS: &str = "(() => { const groups = {}; const inside = {}; \
    for (const r of document.querySelectorAll('#nodes-body tr[data-group]')) { \
      const c = r.querySelector('td[data-col=reporting]').dataset; \
      groups[r.dataset.group] = { expanded: r.dataset.expanded, members: Number(r.dataset.members), \
        matching: Number(r.dataset.matching), fresh: Number(c.fresh), stale: Number(c.stale), missing: Number(c.missing) }; } \
    for (const r of document.querySelectorAll('#nodes-body tr[data-in-group]')) \
      (inside[r.dataset.inGroup] = inside[r.dataset.inGroup] || []).push(r.dataset.node); \
    const s = document.querySelector('#rows-shown').dataset; \
    return { groups, inside, rows: document.querySelectorAll('#nodes-body tr').length, \
      shown: Number(s.shown), total: Number(s.total), grouped: document.querySelector('#group-city').checked, \
      more: !document.querySelector('#rows-more').hidden }; })()";

/// The province of the real Guizhou tree (381 offices, 4 of them running):
/// the offices table starts grouped by city and collapsed; a city opens and
/// closes; the name search opens the group it finds offices in and works
/// with the "only stale or missing" filter; the per-city comparison shows
/// each city's completeness. Then a province of 2,800 offices: the table
/// still shows one row per city, and an opened city is paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_trees_group_by_city_with_filters_and_a_city_comparison() {
    let Some(chromium) = chromium_or_skip("browser") else { return };
    within(Duration::from_secs(120), "browser large trees", async {
        let (tsv, offices) = guizhou_offices();
        assert_eq!(offices.len(), 381, "the Guizhou topology lists 381 offices");
        let cities: Vec<&str> =
            offices.iter().filter(|(_, p)| p == "gz").map(|(id, _)| id.as_str()).collect();
        let under = |city: &str| offices.iter().filter(|(id, _)| id.starts_with(&format!("{city}/"))).count();
        const RUNNING: [&str; 4] =
            ["gz", "gz/guiyang", "gz/guiyang/guanshanhu", "gz/guiyang/guanshanhu/oddjobs-danfeng"];
        let topo = jobmesh_tests::bin::workspace_root().join("deploy/topology/guizhou-offices.tsv");
        let mut mesh = jobmesh_tests::Mesh::new_with(&RUNNING, |cfg| {
            if cfg.node_id == "gz" {
                cfg.extra.push(format!("topology = {:?}", topo.display().to_string()));
            }
        });
        mesh.start_all().await;
        let browser = ok("launch Chromium", Browser::launch(&chromium).await);
        let province = ok("open the province page", browser.open(&format!("{}/#overview", mesh.url("gz"))).await);
        viewport(&province, 1400, 1000).await;

        // 1. Grouped by city, collapsed: one row per city, the station's
        // report counted fresh in Guiyang's row.
        let guiyang_all = under("gz/guiyang") + 1;
        let table = ok(
            "the table shows the cities, grouped and collapsed",
            province
                .wait_for(
                    "a group row per city, Guiyang with 3 fresh offices",
                    &format!(
                        "(() => {{ const t = {TABLE_JS}; const g = t.groups['gz/guiyang']; \
                          return Object.keys(t.groups).length === {} && g && g.fresh === 3 ? t : null; }})()",
                        cities.len()
                    ),
                    ROLL_UP,
                )
                .await,
        );
        eprintln!("browser: grouped table {}", table["groups"]["gz/guiyang"]);
        assert_eq!(table["grouped"], true, "381 offices: grouped by default: {table}");
        assert_eq!(table["rows"].as_u64(), Some(cities.len() as u64 + 1), "the province and one row per city: {table}");
        assert_eq!(table["total"].as_u64(), Some(380), "every office below the province matches: {table}");
        assert_eq!(table["more"], false, "{table}");
        for city in &cities {
            let g = &table["groups"][*city];
            assert_eq!(g["expanded"], "false", "{city} starts collapsed: {table}");
            assert_eq!(g["members"].as_u64(), Some(under(city) as u64), "{city}'s offices: {g}");
            if *city != "gz/guiyang" {
                assert_eq!(g["fresh"], 0, "{city}: {g}");
                assert_eq!(g["missing"].as_u64(), Some(under(city) as u64 + 1), "{city}: {g}");
            }
        }
        let g = &table["groups"]["gz/guiyang"];
        assert_eq!(g["missing"].as_u64(), Some(guiyang_all as u64 - 3), "{g}");
        let brand = ok("the top bar's name", province.eval("document.querySelector('#node-name').textContent").await);
        assert_eq!(brand, "贵州省就业服务总站", "the top bar names the province");
        let rep = ok("the headline", province.eval("Object.assign({}, document.querySelector('#reporting').dataset)").await);
        assert_eq!((rep["fresh"].as_str(), rep["missing"].as_str(), rep["level"].as_str()), (Some("4"), Some("377"), Some("red")), "{rep}");

        // 2. The comparison: one line per city, Guiyang's bar partly fresh.
        let cmp = ok(
            "read the comparison",
            province
                .eval(
                    "Array.from(document.querySelectorAll('#city-chart .cmp-row[data-node]')).map((r) => ({ \
                      node: r.dataset.node, level: r.dataset.level, fresh: Number(r.dataset.fresh), \
                      missing: Number(r.dataset.missing), name: r.querySelector('.cmp-name').textContent, \
                      fresh_width: (r.querySelector('.seg-fresh') || { style: { width: '0%' } }).style.width, \
                      positions: r.querySelector('[data-col=positions_open]').textContent }))",
                )
                .await,
        );
        let cmp = cmp.as_array().cloned().unwrap_or_default();
        assert_eq!(cmp.len(), cities.len(), "one comparison line per city: {cmp:?}");
        let gy = cmp.iter().find(|r| r["node"] == "gz/guiyang").unwrap_or_else(|| panic!("no Guiyang line: {cmp:?}"));
        assert_eq!(gy["name"], "贵阳市分站", "{gy}");
        assert_eq!(gy["fresh"], 3, "{gy}");
        assert_eq!(gy["level"], "red", "{gy}");
        let want_width = format!("{}%", (1000.0 * 3.0 / guiyang_all as f64).round() / 10.0);
        assert_eq!(gy["fresh_width"].as_str(), Some(want_width.as_str()), "the fresh part is 3 of {guiyang_all}: {gy}");
        let zunyi = cmp.iter().find(|r| r["node"] == "gz/zunyi").unwrap_or_else(|| panic!("no Zunyi line: {cmp:?}"));
        assert_eq!((zunyi["fresh"].as_i64(), zunyi["positions"].as_str()), (Some(0), Some("—")), "nothing from Zunyi: {zunyi}");
        ok("screenshot", province.screenshot(&artifact_path("page-province-381-grouped-zh.png")).await);

        // 3. Guiyang opens and closes.
        let toggle = "#nodes-body button.group-toggle[data-group=\"gz/guiyang\"]";
        ok("open Guiyang", province.click(toggle).await);
        let opened = ok(
            "Guiyang's offices show",
            province
                .wait_for(
                    "rows inside Guiyang",
                    &format!(
                        "(() => {{ const t = {TABLE_JS}; return (t.inside['gz/guiyang'] || []).length === {} ? t : null; }})()",
                        under("gz/guiyang")
                    ),
                    FORM_ANSWER,
                )
                .await,
        );
        assert_eq!(opened["groups"]["gz/guiyang"]["expanded"], "true", "{opened}");
        assert_eq!(opened["inside"].as_object().map(|o| o.len()), Some(1), "only Guiyang is open: {opened}");
        ok("screenshot", province.screenshot(&artifact_path("page-province-381-guiyang-open-zh.png")).await);
        ok("close Guiyang", province.click(toggle).await);
        ok(
            "Guiyang closes",
            province
                .wait_for("no rows inside groups", "document.querySelectorAll('#nodes-body tr[data-in-group]').length === 0", FORM_ANSWER)
                .await,
        );

        // 4. Search and filter together: "观山湖" finds the county and its two
        // stations and opens their group; "only stale or missing" then drops
        // the station that reports (the county stays: a station below it is
        // missing).
        ok("search", province.type_into("#row-search", "观山湖").await);
        let found = ok(
            "the search opens Guiyang with the three offices",
            province
                .wait_for(
                    "Guiyang alone, with 3 rows inside",
                    &format!("(() => {{ const t = {TABLE_JS}; return (t.inside['gz/guiyang'] || []).length === 3 ? t : null; }})()"),
                    FORM_ANSWER,
                )
                .await,
        );
        assert_eq!(found["groups"].as_object().map(|o| o.len()), Some(1), "no other city matches: {found}");
        let mut ids: Vec<&str> = found["inside"]["gz/guiyang"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            ["gz/guiyang/guanshanhu", "gz/guiyang/guanshanhu/coop-dongguan", "gz/guiyang/guanshanhu/oddjobs-danfeng"],
            "{found}"
        );
        ok("only problems", province.pick("#row-filter", "problems").await);
        let problems = ok(
            "the reporting station drops out",
            province
                .wait_for(
                    "2 rows inside Guiyang",
                    &format!("(() => {{ const t = {TABLE_JS}; return (t.inside['gz/guiyang'] || []).length === 2 ? t : null; }})()"),
                    FORM_ANSWER,
                )
                .await,
        );
        let mut ids: Vec<&str> =
            problems["inside"]["gz/guiyang"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["gz/guiyang/guanshanhu", "gz/guiyang/guanshanhu/coop-dongguan"], "{problems}");
        ok("screenshot", province.screenshot(&artifact_path("page-province-381-search-problems-zh.png")).await);
        english(&province).await;
        let label = ok("the grouping's label", province.eval("document.querySelector('#group-city').parentNode.textContent.trim()").await);
        assert_eq!(label, "Group by city", "{label}");
        let width = ok("page width", province.eval("document.documentElement.scrollWidth").await);
        assert!(width.as_i64().is_some_and(|w| w <= 1400), "the English page is wider than 1400 px: {width}");
        let table_fit = ok(
            "the offices table's width",
            province
                .eval(
                    "(() => { const w = document.querySelector('#nodes-table').parentNode; return { scroll: w.scrollWidth, client: w.clientWidth, \
                      columns: Array.from(document.querySelectorAll('#nodes-table th')).map((th) => [th.dataset.sort, Math.round(th.getBoundingClientRect().width)]) }; })()",
                )
                .await,
        );
        assert!(
            table_fit["scroll"].as_i64() <= table_fit["client"].as_i64(),
            "every column of the English offices table shows at 1400 px, without scrolling sideways: {table_fit}"
        );
        ok("screenshot", province.screenshot(&artifact_path("page-province-381-search-problems-en.png")).await);
        let errors = province.errors();
        assert!(errors.is_empty(), "the province page reported errors:\n{}", errors.join("\n"));
        mesh.finish().await;

        // 5. 2,800 offices: the tree above plus synthetic stations under
        // Zunyi's counties. Still one row per city; an opened city is paged.
        let zunyi_counties: Vec<&str> =
            offices.iter().filter(|(_, p)| p == "gz/zunyi").map(|(id, _)| id.as_str()).collect();
        let mut big = tsv.clone();
        let extra = 2_800 - offices.len();
        for i in 0..extra {
            let county = zunyi_counties[i % zunyi_counties.len()];
            big += &format!("{county}/syn-{i:04}\t{county}\tstation\tTest station {i}\t测试站{i}号\tsynthetic\n");
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let big_path = dir.path().join("offices-2800.tsv");
        std::fs::write(&big_path, big).unwrap_or_else(|e| panic!("write {}: {e}", big_path.display()));
        let mut mesh = jobmesh_tests::Mesh::new_with(&["gz"], |cfg| {
            cfg.extra.push(format!("topology = {:?}", big_path.display().to_string()));
        });
        mesh.start_all().await;
        let province = ok("open the big province's page", browser.open(&format!("{}/#overview", mesh.url("gz"))).await);
        viewport(&province, 1400, 1000).await;
        let t0 = Instant::now();
        let big_table = ok(
            "2,800 offices grouped",
            province
                .wait_for(
                    "one row per city over 2,799 offices",
                    &format!("(() => {{ const t = {TABLE_JS}; return t.total === 2799 ? t : null; }})()"),
                    PAGE_LOAD,
                )
                .await,
        );
        eprintln!("browser: 2,800 offices shown grouped {:?} after navigating", t0.elapsed());
        assert_eq!(big_table["rows"].as_u64(), Some(cities.len() as u64 + 1), "{big_table}");
        ok("open Zunyi", province.click("#nodes-body button.group-toggle[data-group=\"gz/zunyi\"]").await);
        let paged = ok(
            "Zunyi opens a page at a time",
            province
                .wait_for(
                    "100 rows inside Zunyi and a 'more' button",
                    &format!("(() => {{ const t = {TABLE_JS}; return (t.inside['gz/zunyi'] || []).length === 100 && t.more ? t : null; }})()"),
                    FORM_ANSWER,
                )
                .await,
        );
        assert_eq!(paged["groups"]["gz/zunyi"]["members"].as_u64(), Some((under("gz/zunyi") + extra) as u64), "{}", paged["groups"]["gz/zunyi"]);
        let render_ms = ok(
            "time a render",
            province.eval("(() => { const t = performance.now(); renderNodesTable(); return performance.now() - t; })()").await,
        );
        eprintln!("browser: one render of the 2,800-office table took {render_ms} ms; {} rows in the DOM", count(&province, "#nodes-body tr").await);
        ok("screenshot", province.screenshot(&artifact_path("page-province-2800-zunyi-open-zh.png")).await);
        let errors = province.errors();
        assert!(errors.is_empty(), "the province page reported errors:\n{}", errors.join("\n"));
        browser.close().await;
        mesh.finish().await;
    })
    .await;
}

/// Where the trend chart is drawn: the svg's own width and height and the
/// width its box leaves it.
const TREND_JS: &str = "(() => { const box = document.querySelector('#trend-chart'); const s = box && box.querySelector('svg'); \
    if (!s) return null; const r = s.getBoundingClientRect(); \
    return { attr_width: Number(s.getAttribute('width')), width: r.width, height: r.height, room: box.clientWidth - 20 }; })()";

/// What a form shows under its fields: field → {text, code}, for the
/// non-empty visible ones.
fn field_errors_js(form: &str) -> String {
    format!(
        "(() => {{ const out = {{}}; for (const e of document.querySelectorAll('{form} .field-error[data-field]')) \
          if (e.textContent.trim() && !e.hidden && e.offsetHeight > 0) out[e.dataset.field] = {{ text: e.textContent.trim(), code: e.dataset.code || null }}; \
          return out; }})()"
    )
}

fn chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// A posting changed in full at its origin through the board's edit form
/// (every bad field named at once in Chinese, nothing stored; then every
/// field changed, the new version reaching the city); the trend chart
/// drawn at the width the page gives it; a service matter recorded through
/// the staff form (#11), counted in the county's figures, the province's
/// figures and its comparison line, and on the county's wall screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_edited_at_origin_trend_sized_and_matters_counted_up_the_tree() {
    let Some(chromium) = chromium_or_skip("browser") else { return };
    within(Duration::from_secs(120), "browser edit and matters", async {
        const IDS: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
        let mesh = Mesh::start(&IDS).await;
        let browser = ok("launch Chromium", Browser::launch(&chromium).await);
        let county_api = mesh.api(COUNTY);
        let province = ok("open the province page", browser.open(&format!("{}/#overview", mesh.url("gz"))).await);
        viewport(&province, 1400, 1000).await;

        // 1. The edit form, prefilled from the posting.
        let body = serde_json::json!({"title": "保洁员", "employer": "修文物业", "category": "保洁", "work_type": "odd_job",
            "positions": 2, "audience": "gz/a", "wage": "150元/天", "location": "修文县", "valid_until": "2030-06-30"});
        let posted = ok("POST the posting", county_api.post_json("/v1/postings", &body).await);
        assert_eq!(posted.status, 201, "{}", posted.text);
        let id = posted.json.as_ref().and_then(|v| v["id"].as_str()).unwrap_or_default().to_string();
        let county = ok("open the county's board", browser.open(&format!("{}/#board", mesh.url(COUNTY))).await);
        viewport(&county, 1400, 1000).await;
        let edit = format!("#board-list article[data-id=\"{id}\"] button[data-act=edit]");
        ok("the edit button", county.wait_for("the button shows", &format!("!!document.querySelector('{edit}')"), PAGE_LOAD).await);
        ok("edit", county.click(&edit).await);
        let pre = ok(
            "the edit form opens with the posting's values",
            county
                .wait_for(
                    "#edit-form shown, prefilled",
                    "(() => { const f = document.querySelector('#edit-form'); if (f.hidden) return null; \
                      const v = (n) => f.elements[n].value; \
                      return { title: v('title'), employer: v('employer'), category: v('category'), work_type: v('work_type'), \
                        positions: v('positions'), wage: v('wage'), location: v('location'), valid_until: v('valid_until'), id: f.dataset.id }; })()",
                    FORM_ANSWER,
                )
                .await,
        );
        assert_eq!(
            pre,
            serde_json::json!({"title": "保洁员", "employer": "修文物业", "category": "保洁", "work_type": "odd_job",
                "positions": "2", "wage": "150元/天", "location": "修文县", "valid_until": "2030-06-30", "id": id}),
        );

        // 2. Two bad fields: both named at once, in Chinese; nothing stored.
        ok("title", county.type_into("#edit-form input[name=title]", "").await);
        ok("positions", county.type_into("#edit-form input[name=positions]", "0").await);
        ok("save", county.click("#edit-form button[type=submit]").await);
        let errs = ok(
            "both errors show",
            county
                .wait_for(
                    "title and positions errors",
                    &format!("(() => {{ const e = {}; return e.title && e.positions ? e : null; }})()", field_errors_js("#edit-form")),
                    FORM_ANSWER,
                )
                .await,
        );
        eprintln!("browser: edit form errors {errs}");
        assert_eq!(errs.as_object().map(|o| o.len()), Some(2), "{errs}");
        assert_eq!((errs["title"]["code"].as_str(), errs["positions"]["code"].as_str()), (Some("required"), Some("out_of_range")), "{errs}");
        for f in ["title", "positions"] {
            let text = errs[f]["text"].as_str().unwrap_or("");
            assert!(chinese(text) && !text.contains(f), "the {f} error is Chinese, for people: {errs}");
        }
        ok("screenshot", county.screenshot(&artifact_path("page-county-edit-errors-zh.png")).await);
        let held = ok("GET the posting", county_api.get_posting(&id).await).unwrap_or_default();
        assert_eq!((held["version"].as_u64(), held["title"].as_str()), (Some(1), Some("保洁员")), "a refused edit stored nothing: {held}");

        // 3. Every field changed.
        for (name, value) in [
            ("title", "保洁员（修改后）"),
            ("employer", "修文县物业管理有限公司"),
            ("category", "家政服务"),
            ("positions", "5"),
            ("wage", "160元/天"),
            ("location", "修文县龙场镇"),
        ] {
            ok(name, county.type_into(&format!("#edit-form input[name={name}]"), value).await);
        }
        ok("work_type", county.pick("#edit-form select[name=work_type]", "part_time").await);
        ok("valid_until", county.pick("#edit-form input[name=valid_until]", "2031-01-31").await);
        ok("save", county.click("#edit-form button[type=submit]").await);
        let said = ok(
            "the board says what was changed",
            county
                .wait_for(
                    "#board-message names the new title, the form closes",
                    "(() => { const m = document.querySelector('#board-message'); \
                      return !m.hidden && document.querySelector('#edit-form').hidden && m.textContent.includes('保洁员（修改后）') ? m.textContent : null; })()",
                    FORM_ANSWER,
                )
                .await,
        );
        eprintln!("browser: {said}");
        let held = ok("GET the posting", county_api.get_posting(&id).await).unwrap_or_default();
        for (k, v) in [
            ("title", serde_json::json!("保洁员（修改后）")),
            ("employer", serde_json::json!("修文县物业管理有限公司")),
            ("category", serde_json::json!("家政服务")),
            ("work_type", serde_json::json!("part_time")),
            ("positions", serde_json::json!(5)),
            ("wage", serde_json::json!("160元/天")),
            ("location", serde_json::json!("修文县龙场镇")),
            ("valid_until", serde_json::json!("2031-01-31")),
            ("audience", serde_json::json!("gz/a")),
            ("version", serde_json::json!(2)),
        ] {
            assert_eq!(held[k], v, "{k} after the edit: {held}");
        }
        ok(
            "the card shows the new title",
            county
                .wait_for(
                    "the card's title",
                    &format!("document.querySelector('#board-list article[data-id=\"{id}\"] .posting-title').textContent === '保洁员（修改后）'"),
                    FORM_ANSWER,
                )
                .await,
        );
        ok("screenshot", county.screenshot(&artifact_path("page-county-board-edited-zh.png")).await);
        let start = Instant::now();
        loop {
            let at_city = ok("GET at the city", mesh.api("gz/a").get_posting(&id).await).unwrap_or_default();
            if at_city["version"] == 2 {
                assert_eq!(at_city["title"], "保洁员（修改后）", "{at_city}");
                break;
            }
            assert!(start.elapsed() < ROLL_UP, "the new version did not reach gz/a: {at_city}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // 4. The trend chart takes the width the page gives it, at a fixed height.
        ok("the county's overview", county.navigate(&format!("{}/#overview", mesh.url(COUNTY))).await);
        let wide = ok("the trend chart at 1400 px", county.wait_for("the svg", TREND_JS, PAGE_LOAD).await);
        eprintln!("browser: trend at 1400 px {wide}");
        let near = |a: &Value, b: &Value| (a.as_f64().unwrap_or(-1.0) - b.as_f64().unwrap_or(1e9)).abs() <= 2.0;
        assert!(near(&wide["attr_width"], &wide["room"]) && near(&wide["width"], &wide["room"]), "drawn at its box's width: {wide}");
        assert!(near(&wide["height"], &serde_json::json!(280)), "a fixed height: {wide}");
        viewport(&county, 900, 1000).await;
        let narrow = ok(
            "the trend chart at 900 px",
            county
                .wait_for(
                    "the svg redrawn narrower",
                    &format!("(() => {{ const t = {TREND_JS}; return t && t.room < 880 && Math.abs(t.attr_width - t.room) <= 2 ? t : null; }})()"),
                    FORM_ANSWER,
                )
                .await,
        );
        eprintln!("browser: trend at 900 px {narrow}");
        assert!(near(&narrow["height"], &serde_json::json!(280)), "the same height: {narrow}");
        viewport(&county, 1400, 1000).await;

        // 5. A service matter: all missing fields named at once, then recorded.
        ok("the staff tab", county.navigate(&format!("{}/#staff", mesh.url(COUNTY))).await);
        ok(
            "the matter form",
            county
                .wait_for("#matter-form with its choices", "!!document.querySelector('#matter-form select[name=channel] option[value=hotline_12333]')", PAGE_LOAD)
                .await,
        );
        let before = ok("matters at the county", county_api.get_json("/v1/matters").await)["matters"].as_array().map(Vec::len);
        ok("record an empty matter", county.click("#matter-form button[type=submit]").await);
        let errs = ok(
            "the missing fields are named",
            county
                .wait_for(
                    "category, channel and summary errors",
                    &format!("(() => {{ const e = {}; return e.category && e.channel && e.summary ? e : null; }})()", field_errors_js("#matter-form")),
                    FORM_ANSWER,
                )
                .await,
        );
        eprintln!("browser: matter form errors {errs}");
        for f in ["category", "channel", "summary"] {
            assert_eq!(errs[f]["code"], "required", "{errs}");
            assert!(errs[f]["text"].as_str().is_some_and(chinese), "{errs}");
        }
        let after = ok("matters at the county", county_api.get_json("/v1/matters").await)["matters"].as_array().map(Vec::len);
        assert_eq!(after, before, "a refused matter stored nothing");
        ok("category", county.pick("#matter-form select[name=category]", "rights_protection").await);
        ok("channel", county.pick("#matter-form select[name=channel]", "hotline_12333").await);
        ok("key_group", county.pick("#matter-form select[name=key_group]", "migrant_worker").await);
        ok("summary", county.type_into("#matter-form input[name=summary]", "拖欠工资两个月（浏览器测试）").await);
        ok("record the matter", county.click("#matter-form button[type=submit]").await);
        let mid = ok(
            "the matter's id shows",
            county
                .wait_for(
                    "#matter-result[data-id]",
                    "(() => { const r = document.querySelector('#matter-result'); return !r.hidden && r.dataset.id ? r.dataset.id : null; })()",
                    FORM_ANSWER,
                )
                .await,
        );
        let mid = mid.as_str().unwrap_or_default().to_string();
        let stored = ok("GET the matter", county_api.get_json(&format!("/v1/matters/{mid}")).await);
        assert_eq!(
            (stored["category"].as_str(), stored["channel"].as_str(), stored["key_group"].as_str(), stored["status"].as_str()),
            (Some("rights_protection"), Some("hotline_12333"), Some("migrant_worker"), Some("open")),
            "{stored}"
        );
        ok("screenshot", county.screenshot(&artifact_path("page-county-matter-form-zh.png")).await);

        // 6. Counted in the county's figures, then the province's.
        let matters_js = "(() => { const v = (s) => { const e = document.querySelector(s); return e && e.dataset.value !== undefined ? Number(e.dataset.value) : null; }; \
            return { opened: v('#matters-opened'), open_now: v('#matters-open_now'), \
              row: v('#city-chart .cmp-row[data-node=\"gz/a\"] [data-col=matters]') }; })()";
        ok("the county's overview", county.navigate(&format!("{}/#overview", mesh.url(COUNTY))).await);
        let at_county = ok(
            "the county counts the matter",
            county
                .wait_for("#matters-opened is 1", &format!("(() => {{ const m = {matters_js}; return m.opened === 1 && m.open_now === 1 ? m : null; }})()"), ROLL_UP)
                .await,
        );
        eprintln!("browser: county matters {at_county}");
        let at_province = ok(
            "the province counts the matter, in its total and city a's line",
            province
                .wait_for(
                    "#matters-opened is 1 and gz/a's line has 1",
                    &format!("(() => {{ const m = {matters_js}; return m.opened === 1 && m.open_now === 1 && m.row === 1 ? m : null; }})()"),
                    ROLL_UP,
                )
                .await,
        );
        eprintln!("browser: province matters {at_province}");
        ok("show the matters", province.eval("document.querySelector('#city-chart').scrollIntoView(); true").await);
        ok("screenshot", province.screenshot(&artifact_path("page-province-matters-zh.png")).await);
        english(&province).await;
        ok("show the matters", province.eval("document.querySelector('#city-chart').scrollIntoView(); true").await);
        ok("screenshot", province.screenshot(&artifact_path("page-province-matters-en.png")).await);

        // 7. The county's wall screen shows the matter open.
        let screen = ok("open the wall screen", browser.open(&format!("{}/?screen=1", mesh.url(COUNTY))).await);
        viewport(&screen, 1920, 1080).await;
        ok(
            "the screen counts the open matter",
            screen.wait_for("#screen-matters is 1", "document.querySelector('#screen-matters').dataset.value === '1'", PAGE_LOAD).await,
        );
        let fits = ok(
            "the four figures share one row",
            screen
                .eval(
                    "(() => { const f = Array.from(document.querySelectorAll('#view-screen .screen-figure')).map((e) => e.getBoundingClientRect().top); \
                      return { n: f.length, rows: new Set(f.map(Math.round)).size, width: document.documentElement.scrollWidth }; })()",
                )
                .await,
        );
        assert_eq!((fits["n"].as_u64(), fits["rows"].as_u64()), (Some(4), Some(1)), "{fits}");
        assert!(fits["width"].as_i64().is_some_and(|w| w <= 1920), "{fits}");
        ok("screenshot", screen.screenshot(&artifact_path("page-wall-screen-matters-zh.png")).await);

        for (name, page) in [("county", &county), ("province", &province), ("screen", &screen)] {
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
