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
      if (e.textContent.trim()) errs[e.dataset.field] = { text: e.textContent.trim(), hidden: e.hidden }; \
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

        // 1. A bad field: 0 positions. The error shows next to the field and
        // nothing is stored.
        let held_before = ok("list postings at the county", county_api.list_ids("postings").await);
        let count_before = ok("status", county_api.status().await)["records"]["postings"].clone();
        fill_post_form(&county, "装配工（浏览器测试）", "0").await;
        ok("submit the bad form", county.click("#post-form button[type=submit]").await);
        let shown = ok(
            "the positions error shows next to the field",
            county
                .wait_for(
                    ".field-error[data-field=positions] is non-empty and visible",
                    "(() => { const e = document.querySelector('#post-form .field-error[data-field=positions]'); \
                      return !!e && !e.hidden && e.textContent.trim().length > 0 && e.offsetHeight > 0; })()",
                    FORM_ANSWER,
                )
                .await,
        );
        assert_eq!(shown, Value::Bool(true));
        let state = ok("read the form", county.eval(FORM_STATE_JS).await);
        eprintln!("browser: bad form shows {state} ({:?})", t0.elapsed());
        let fe = &state["field_errors"];
        assert!(
            fe["positions"]["text"].as_str().is_some_and(|t| t.contains("positions")),
            "the positions error should name the field: {state}"
        );
        assert_eq!(fe.as_object().map(|o| o.len()), Some(1), "only the positions field is wrong: {state}");
        assert_eq!(state["form_error"], Value::Null, "the error belongs next to the field, not the form: {state}");
        assert_eq!(state["result_id"], Value::Null, "a refused form shows no result: {state}");
        assert_eq!(state["positions_invalid"], "true", "the positions input is marked aria-invalid: {state}");
        ok("screenshot", county.screenshot(&artifact_path("browser-county-post-form-error.png")).await);
        let held_after = ok("list postings at the county", county_api.list_ids("postings").await);
        assert_eq!(held_after, held_before, "a refused form stored a posting at {COUNTY}");
        let count_after = ok("status", county_api.status().await)["records"]["postings"].clone();
        assert_eq!(count_after, count_before, "{COUNTY} /v1/status records.postings changed after a refused form");

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
                      return { offices: r.dataset.offices, expected: r.dataset.expected, text: r.textContent }; })()",
                )
                .await,
        );
        eprintln!("browser: province #reporting {rep}");
        assert_eq!(rep["offices"], "7", "all 7 offices report: {rep}");
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
