//! The dashboard (Settings → API Keys, JWT Configuration, OAuth apps, Security, `/admin`):
//! its security properties over plain HTTPS with a cookie-keeping client (`http`), each page's
//! function against the real API (`pages`), and the whole journey in a real headless Chromium
//! (`browser`).

mod browser;
mod http;
mod pages;

use crate::oauth::{form, unescape, Browser};
use dotgit_testkit::{read, Account, Resp, TestServer};

/// A browser signed in as `a`.
pub async fn signed_in(s: &TestServer, a: &Account) -> Browser {
    let b = Browser::new(s);
    b.login(a).await;
    b
}

/// The session's CSRF token, read from any dashboard page (the sign-out form carries it).
pub async fn csrf(b: &Browser) -> String {
    let page = b.get("/settings/api-keys").await;
    assert_eq!(page.status, 200, "{}", page.text);
    crate::oauth::csrf_of(&page.text, "/logout")
}

/// Posts a dashboard form with the session's CSRF token added.
pub async fn submit(b: &Browser, path: &str, pairs: &[(&str, &str)]) -> Resp {
    let token = csrf(b).await;
    let mut all = pairs.to_vec();
    all.push(("csrf_token", &token));
    b.post_form(path, &all).await
}

/// Posts a form with extra request headers (what another site's page would send).
pub async fn post_with_headers(
    b: &Browser,
    s: &TestServer,
    path: &str,
    pairs: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Resp {
    let mut rb = b
        .client
        .post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    read(rb.send().await.unwrap()).await
}

/// The `value` of the input with `id` in a page.
pub fn input_value(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let i = tag.find("value=\"")? + 7;
    Some(unescape(&tag[i..i + tag[i..].find('"')?]))
}

/// The text of the first element with `class="{class}"` (no nested tags).
pub fn text_of_class(html: &str, class: &str) -> Option<String> {
    let at = html.find(&format!("class=\"{class}\""))?;
    let start = at + html[at..].find('>')? + 1;
    let end = start + html[start..].find('<')?;
    Some(unescape(&html[start..end]))
}

/// Every GET page of the dashboard a signed-in operator can open.
pub const PAGES: [&str; 5] = [
    "/settings/api-keys",
    "/settings/jwt",
    "/settings/oauth-apps",
    "/settings/security",
    "/admin",
];
