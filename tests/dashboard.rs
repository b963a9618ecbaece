//! The dashboard of a real `taskflow serve` on a loopback port, read as a browser reads it
//! (HTML, a cookie, forms): text a model or tool wrote is text on every page; every page runs
//! only serve's own script and may not be framed; a button works only with its session's CSRF
//! token and never from another site; with tokens, a login gives a cookie that is not the
//! token; the list filters, pages and acts on what it matches; schedules are paused, resumed
//! and triggered from their page and over the JSON API.

#[path = "support/serve.rs"]
mod serve_process;

use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use serve_process::{BIN, Serve, call, client, folder, wait_until};

/// A browser's view of serve: its cookie, no redirect followed.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// An answer: status, headers, body.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The CSRF token of the page's first form that changes something.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.body.find(marker).unwrap_or_else(|| panic!("no form: {}", self.body));
        let rest = &self.body[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|value| value.to_str().ok()).unwrap_or("")
    }
}

impl Browser {
    fn new(serve: &Serve) -> Browser {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { http, base: serve.url.clone(), cookie: None }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        if let Some(set) = headers.get(SET_COOKIE).and_then(|value| value.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        Page { status, headers, body: response.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }
}

/// A mirrored flow `id` named `name`, reported to `status` with `steps`.
async fn mirrored(serve: &Serve, id: &str, name: &str, status: &str, steps: Value) {
    let http = client();
    let body = json!({"id": id, "name": name, "sync_mode": "mirrored"});
    let (code, created) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!(code, 201, "{created}");
    let report = json!({"status": status, "steps": steps});
    let (code, reported) =
        call(http.post(serve.url(&format!("/v1/flows/{id}/report"))).json(&report)).await;
    assert_eq!(code, 200, "{reported}");
}

const SCRIPT: &str = "<script>alert('x')</script>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_a_model_or_tool_wrote_is_text_on_every_page() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let long = format!("{SCRIPT}{}", "y".repeat(5000));
    let steps = json!([
        {"name": format!("step {SCRIPT}"), "status": "succeeded", "output": long},
        {"name": "judge", "status": "failed", "error": format!("bad \"quote\" {SCRIPT}")},
    ]);
    mirrored(&serve, "evil", &format!("name {SCRIPT}"), "running", steps).await;
    let mut browser = Browser::new(&serve);
    for path in ["/", "/?part=rows", "/flows/evil", "/flows/evil?part=live"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(!page.body.contains("<script>alert"), "{path}: {}", page.body);
        assert!(page.body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{path}");
        assert!(page.body.contains("data-flow-id=\"evil\""), "{path}");
    }
    let flow = browser.get("/flows/evil").await.body;
    assert!(flow.contains("bad &quot;quote&quot;"), "{flow}");
    assert!(flow.contains("data-step=\"step &lt;script&gt;"), "the graph's nodes: {flow}");
    // The long output is cut, with a link to the whole of it, served as text that runs nothing.
    assert!(flow.contains("whole output (5027 characters)"), "{flow}");
    let whole = browser.get("/flows/evil/steps/1/output").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, long);
    assert_eq!(whole.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(whole.headers[CONTENT_SECURITY_POLICY], "default-src 'none'; sandbox");
    assert_eq!(whole.headers["x-content-type-options"], "nosniff");
    assert_eq!(browser.get("/flows/evil/steps/9/output").await.status, 404);
    assert_eq!(browser.get("/flows/evil/steps/1/secret").await.status, 404);
    assert_eq!(browser.get("/flows/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_runs_only_serves_own_script_and_may_not_be_framed() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    mirrored(&serve, "m1", "one", "running", json!([{"name": "a", "status": "running"}])).await;
    let mut browser = Browser::new(&serve);
    for path in ["/", "/flows/m1", "/schedules", "/flows/m1?part=live"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        let policy = page.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("script-src 'self'") && policy.contains("style-src 'self'"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"));
        assert!(!policy.contains("unsafe-inline") && !policy.contains("http"), "{policy}");
        assert_eq!(page.headers["x-content-type-options"], "nosniff");
        assert_eq!(page.headers["x-frame-options"], "DENY");
        // Nothing inline that the policy would have to allow, nothing from elsewhere.
        let body = &page.body;
        assert_eq!(body.matches("<script").count(), body.matches("<script src=\"/assets/").count());
        assert!(!body.contains(" style=") && !body.contains("<style"), "{path}: {body}");
        assert!(!body.contains(" onclick=") && !body.contains(" onload="), "{path}");
        assert!(!body.contains("src=\"http") && !body.contains("href=\"http"), "{path}");
    }
    for (path, kind) in [("/assets/app.js", "text/javascript"), ("/assets/app.css", "text/css")] {
        let asset = browser.get(path).await;
        assert_eq!(asset.status, 200);
        assert!(asset.headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(!asset.body.contains("http://") && !asset.body.contains("https://"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_works_only_with_its_sessions_csrf_token_and_never_from_another_site() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    mirrored(&serve, "m1", "one", "running", json!([])).await;
    let mut browser = Browser::new(&serve);
    let page = browser.get("/flows/m1").await;
    let cookie = page.headers[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let csrf = page.csrf();
    let mut stranger = Browser::new(&serve);
    let strangers_csrf = stranger.get("/").await.csrf();
    assert_ne!(csrf, strangers_csrf);

    for (form, why) in [
        (vec![], "no token"),
        (vec![("csrf", "0".repeat(64))], "a wrong token"),
        (vec![("csrf", strangers_csrf.clone())], "another session's token"),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = browser.post("/flows/m1/cancel", &form).await;
        assert_eq!(refused.status, 403, "{why}");
        assert!(refused.body.contains("reload the page"), "{why}: {}", refused.body);
    }
    // So on the forms of the list and of the login.
    for route in ["/flows/bulk", "/logout"] {
        assert_eq!(browser.post(route, &[("action", "cancel")]).await.status, 403, "{route}");
    }
    let without_cookie = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = without_cookie
        .post(serve.url("/flows/m1/cancel"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "the token without its session's cookie");
    // A page of another site: its browser says so, whatever the route.
    for (header, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let request = browser.http.post(serve.url("/flows/m1/cancel")).header(header, value);
        let refused = browser.send(request.form(&[("csrf", csrf.as_str())])).await;
        assert_eq!(refused.status, 403, "{header}");
        let request = client().post(serve.url("/v1/flows/m1/cancel")).header(header, value);
        let (status, body) = call(request).await;
        assert_eq!((status, body["error"]["code"].clone()), (403, json!("forbidden")));
    }
    // A name pointed at this host by someone else (DNS rebinding) reaches nothing.
    let (status, _) =
        call(client().get(serve.url("/v1/flows")).header("host", "evil.example")).await;
    assert_eq!(status, 421);
    let (_, flow) = call(client().get(serve.url("/v1/flows/m1"))).await;
    assert_eq!(flow["flow"]["cancel_requested_at"], Value::Null, "nothing was cancelled");

    let done = browser.post("/flows/m1/cancel", &[("csrf", &csrf)]).await;
    assert_eq!((done.status.as_u16(), done.location()), (303, "/flows/m1"));
    let (_, flow) = call(client().get(serve.url("/v1/flows/m1"))).await;
    assert!(flow["flow"]["cancel_requested_at"].is_string(), "{flow}");
    let shown = browser.get("/flows/m1").await.body;
    assert!(shown.contains("Cancel asked for"), "the outcome is shown once: {shown}");
    assert!(!browser.get("/flows/m1").await.body.contains("Cancel asked for"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_a_login_gives_a_cookie_that_is_not_the_token() {
    let (dir, db) = folder();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[serve.tokens]\nalice = { owner = \"alice\", token_env = \"T_ALICE\" }\n\
         bob = { owner = \"bob\", token_env = \"T_BOB\" }\n",
    )
    .unwrap();
    let (alice, bob) = ("alice-token-0123456789", "bob-token-0123456789xx");
    let config = config.to_str().unwrap();
    let serve =
        Serve::start(&db, &[], &[("TASKFLOW_CONFIG", config), ("T_ALICE", alice), ("T_BOB", bob)]);
    for (token, id) in [(alice, "alices"), (bob, "bobs")] {
        let body = json!({"id": id, "name": id, "sync_mode": "mirrored"});
        let (status, _) =
            call(client().post(serve.url("/v1/flows")).bearer_auth(token).json(&body)).await;
        assert_eq!(status, 201);
    }
    let mut browser = Browser::new(&serve);
    let away = browser.get("/flows/alices?part=live").await;
    assert_eq!(
        (away.status.as_u16(), away.location()),
        (303, "/login?next=%2Fflows%2Falices%3Fpart%3Dlive")
    );
    let form = browser.get("/login?next=/flows/alices").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("type=\"password\""), "{}", form.body);
    let csrf = form.csrf();
    let before = browser.cookie.clone().unwrap();

    let refused =
        browser.post("/login", &[("csrf", "nope"), ("token", alice), ("next", "/")]).await;
    assert_eq!(refused.status, 403, "a login form without its session's token");
    let wrong = browser
        .post("/login", &[("csrf", &csrf), ("token", "guess-0123456789abc"), ("next", "/")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not a token of this server"));

    let logged_in = browser
        .post("/login", &[("csrf", &csrf), ("token", alice), ("next", "//evil.example/")])
        .await;
    assert_eq!((logged_in.status.as_u16(), logged_in.location()), (303, "/"));
    let cookie = logged_in.headers[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(alice) && !cookie.contains("alice"), "{cookie}");
    assert_ne!(browser.cookie.clone().unwrap(), before, "a login makes a new session");

    let list = browser.get("/").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("data-flow-id=\"alices\"") && !list.body.contains("bobs"));
    assert_eq!(browser.get("/flows/bobs").await.status, 404, "bob's flow is not there for alice");
    // The cookie reads the API (the page's event stream does), and changes nothing through it.
    let cookie = browser.cookie.clone().unwrap();
    let (status, _) =
        call(client().get(serve.url("/v1/flows/alices")).header("cookie", &cookie)).await;
    assert_eq!(status, 200);
    let cancel = client().post(serve.url("/v1/flows/alices/cancel")).header("cookie", &cookie);
    assert_eq!(call(cancel).await.0, 401);

    let csrf = list.csrf();
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status.as_u16(), out.location()), (303, "/login"));
    let (status, _) =
        call(client().get(serve.url("/v1/flows/alices")).header("cookie", &cookie)).await;
    assert_eq!(status, 401, "the session ended with the logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_pages_newest_first_and_acts_on_every_matching_flow() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    for at in 0..55 {
        let (name, status) = if at % 5 == 0 { ("deploy", "failed") } else { ("build", "running") };
        mirrored(&serve, &format!("f{at:02}"), name, status, json!([])).await;
    }
    let mut browser = Browser::new(&serve);
    let ids = |body: &str| -> Vec<String> {
        body.split("<tr data-flow-id=\"")
            .skip(1)
            .map(|row| row[..row.find('"').unwrap()].to_owned())
            .collect()
    };
    let first = browser.get("/").await.body;
    let shown = ids(&first);
    assert_eq!(shown.len(), 50);
    assert_eq!(shown[0], "f54", "newest first");
    let older = first.split("rel=\"next\" href=\"").nth(1).unwrap();
    let older = older[..older.find('"').unwrap()].replace("&amp;", "&");
    let second = browser.get(&older).await.body;
    assert_eq!(ids(&second), ["f04", "f03", "f02", "f01", "f00"]);

    let failed =
        ids(&browser.get("/?status=failed&name=deploy&since=1h&until=&schedule=").await.body);
    assert_eq!(
        failed,
        ["f50", "f45", "f40", "f35", "f30", "f25", "f20", "f15", "f10", "f05", "f00"]
    );
    assert!(ids(&browser.get("/?since=2099-01-01T00:00:00Z").await.body).is_empty());
    let bad = browser.get("/?since=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("`since`") && bad.body.contains("role=\"alert\""), "{}", bad.body);
    let bad = browser.get("/?status=asleep").await;
    assert!(bad.body.contains("unknown flow status `asleep`"), "{}", bad.body);

    let csrf = browser.get("/").await.csrf();
    let bulk = [("csrf", csrf.as_str()), ("action", "cancel"), ("name", "build"), ("status", "")];
    let done = browser.post("/flows/bulk", &bulk).await;
    assert_eq!((done.status.as_u16(), done.location()), (303, "/?name=build"));
    let (_, listed) = call(client().get(serve.url("/v1/flows?limit=100"))).await;
    for flow in listed["flows"].as_array().unwrap() {
        let asked = flow["cancel_requested_at"].is_string();
        assert_eq!(asked, flow["name"] == "build", "{flow}");
    }
    let shown = browser.get("/?name=build").await.body;
    assert!(shown.contains("Cancel asked for 44 flow(s)."), "{shown}");

    // What matched but did not apply is counted and said, not passed over in silence.
    let bulk = [("csrf", csrf.as_str()), ("action", "resume"), ("name", "build"), ("status", "")];
    browser.post("/flows/bulk", &bulk).await;
    let shown = browser.get("/?name=build").await.body;
    assert!(
        shown.contains("Resumed 0 flow(s). 44 other matching flow(s) had nothing to resume"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_shown_with_their_slots_and_paused_resumed_and_triggered() {
    let (dir, db) = folder();
    let pipeline = dir.path().join("nightly.toml");
    std::fs::write(
        &pipeline,
        "name = \"nightly\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = \"x\" }\n",
    )
    .unwrap();
    let added = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "schedules", "add", "nightly", "--pipeline"])
        .arg(&pipeline)
        .args(["--cron", "0 3 * * *"])
        .env_remove("TASKFLOW_OWNER")
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let serve = Serve::start(&db, &[], &[]);
    let mut browser = Browser::new(&serve);
    let list = browser.get("/schedules").await;
    assert!(list.body.contains("data-schedule=\"nightly\"") && list.body.contains("0 3 * * *"));
    assert!(!list.body.contains("class=\"graph gates\""), "no gate, no picture: {}", list.body);
    let csrf = list.csrf();

    // A schedule that runs after another: the picture of the gates, an arrow from one to the
    // other, each box with its hooks.
    let gated = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "schedules", "add", "report", "--pipeline"])
        .arg(&pipeline)
        .args(["--cron", "0 4 * * *", "--after", "nightly", "--within", "2h"])
        .env_remove("TASKFLOW_OWNER")
        .output()
        .unwrap();
    assert!(gated.status.success(), "{}", String::from_utf8_lossy(&gated.stderr));
    let list = browser.get("/schedules").await.body;
    let picture = &list[list.find("<figure class=\"graph gates\">").expect("the gates' picture")..];
    let picture = &picture[..picture.find("</figure>").unwrap()];
    for hook in ["data-schedule=\"nightly\"", "data-schedule=\"report\"", "no slot yet"] {
        assert!(picture.contains(hook), "{hook} in {picture}");
    }
    assert!(picture.contains("<path") || picture.contains("<line"), "an arrow: {picture}");

    let fired = browser.post("/schedules/nightly/trigger", &[("csrf", &csrf)]).await;
    assert_eq!((fired.status.as_u16(), fired.location()), (303, "/schedules/nightly"));
    let page = browser.get("/schedules/nightly").await.body;
    assert!(page.contains("fired slot") && page.contains("triggered by hand"), "{page}");
    let (_, shown) = call(client().get(serve.url("/v1/schedules/nightly"))).await;
    let flow = shown["slots"][0]["flow_id"].as_str().unwrap().to_owned();
    assert!(flow.starts_with("nightly@"), "{shown}");
    wait_until("the fired slot's flow to succeed", async || {
        let (_, flow) = call(client().get(serve.url(&format!("/v1/flows/{flow}")))).await;
        flow["flow"]["status"] == "succeeded"
    })
    .await;
    let by_schedule = browser.get("/?schedule=nightly").await.body;
    assert!(by_schedule.contains(&format!("data-flow-id=\"{flow}\"")), "{by_schedule}");

    browser.post("/schedules/nightly/pause", &[("csrf", &csrf)]).await;
    let (_, listed) = call(client().get(serve.url("/v1/schedules"))).await;
    assert_eq!(listed["schedules"][0]["paused"], true, "{listed}");
    assert!(browser.get("/schedules").await.body.contains("data-paused=\"true\""));
    let (status, resumed) = call(client().post(serve.url("/v1/schedules/nightly/resume"))).await;
    assert_eq!((status, resumed["schedule"]["paused"].clone()), (200, json!(false)));
    // Two triggers within one second fire one slot: the second finds it, with its flow.
    let trigger = || call(client().post(serve.url("/v1/schedules/nightly/trigger")));
    let mut tries = 0;
    let ((first, fired), (second, found)) = loop {
        let (first, second) = (trigger().await, trigger().await);
        // Not across a second's end, nor in the second of the trigger before.
        if first.1["slot"]["at"] == second.1["slot"]["at"] && first.0 == 201 || tries == 5 {
            break (first, second);
        }
        tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!((first, second), (201, 200), "{fired} {found}");
    assert_eq!(fired["slot"]["flow_id"], found["slot"]["flow_id"]);
    let (status, missing) = call(client().post(serve.url("/v1/schedules/nope/trigger"))).await;
    assert_eq!((status, missing["error"]["code"].clone()), (404, json!("not_found")));
    assert_eq!(browser.get("/schedules/nope").await.status, 404);
}
