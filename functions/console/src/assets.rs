//! The console's two assets, compiled into the binary and served under names that carry their
//! content's hash, so browsers may keep them for a year.

use std::sync::OnceLock;

use crate::oidc::sha256_hex;
use crate::web::Reply;

const JS: &str = include_str!("assets/app.js");
const CSS: &str = include_str!("assets/app.css");

fn versioned(stem: &str, ext: &str, body: &str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| format!("/console/assets/{stem}-{}.{ext}", &sha256_hex(body)[..12]))
}

pub fn js_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    versioned("app", "js", JS, &URL)
}

pub fn css_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    versioned("app", "css", CSS, &URL)
}

/// The asset at `path`, or `None` (an old or unknown name).
pub fn serve(path: &str) -> Option<Reply> {
    let (content_type, body) = if path == js_url() {
        ("text/javascript; charset=utf-8", JS)
    } else if path == css_url() {
        ("text/css; charset=utf-8", CSS)
    } else {
        return None;
    };
    Some(Reply::text(200, content_type, body.to_owned()).header("cache-control", "public, max-age=31536000, immutable"))
}
