//! The clipping console (`GET /console`): the page where an editor signs in with
//! the API key, scrubs a stream's DVR window, marks in and out and cuts clips. It is
//! static files compiled into the binary (`crates/server/console/`: plain HTML, CSS
//! and JavaScript, and hls.js vendored unmodified), so there is no build step and no
//! second server; the page talks to the very API of `ref/api.md` from the browser.
//!
//! Not here: any API logic (the page calls `/streaming/...` with the key the editor
//! typed, kept in `sessionStorage`), any state. Every answer is an immutable file
//! served as an [`Entity`] (RFC 9110 §13 `If-None-Match` → 304, §14 ranges), with
//! the page's security policy: a strict `Content-Security-Policy` (W3C CSP Level 3:
//! only this origin's scripts, styles and connections; `blob:` for the media and the
//! worker that hls.js makes from Media Source Extensions), `Referrer-Policy:
//! no-referrer` (the page's URL never leaves it) and `nosniff`.

use std::convert::Infallible;
use std::ops::Range;
use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http_body_util::{BodyExt, Full};

use crate::http::entity::{self, Entity};
use crate::http::{HttpBody, HttpResponse};
use crate::route::ConsoleFile;

/// The page's policy. hls.js needs `blob:` twice: the `<video>`'s source is a
/// `MediaSource` object URL (`media-src`), and its transmuxing worker is made from a
/// `Blob` (`worker-src`). Playlists, segments and the API are fetched from this
/// origin (`connect-src`); no inline script or style, no frames, no forms posted.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; media-src 'self' blob:; connect-src 'self'; worker-src blob: 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One compiled-in file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
}

const PAGE: Asset = Asset {
    bytes: include_bytes!("../console/index.html"),
    content_type: "text/html; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    bytes: include_bytes!("../console/app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset = Asset {
    bytes: include_bytes!("../console/app.css"),
    content_type: "text/css; charset=utf-8",
};
const HLS_JS: Asset = Asset {
    bytes: include_bytes!("../console/hls.min.js"),
    content_type: "text/javascript; charset=utf-8",
};
const HLS_JS_LICENSE: Asset = Asset {
    bytes: include_bytes!("../console/hls.js.LICENSE"),
    content_type: "text/plain; charset=utf-8",
};

const ASSETS: [&Asset; 5] = [&PAGE, &SCRIPT, &STYLE, &HLS_JS, &HLS_JS_LICENSE];

fn index(file: ConsoleFile) -> usize {
    match file {
        ConsoleFile::Page => 0,
        ConsoleFile::Script => 1,
        ConsoleFile::Style => 2,
        ConsoleFile::HlsJs => 3,
        ConsoleFile::HlsJsLicense => 4,
    }
}

/// Each asset's strong ETag: FNV-1a (64 bits) of its bytes, made once. The files are
/// fixed for the binary's life, so the tag changes exactly when a file does.
static ETAGS: LazyLock<[String; 5]> = LazyLock::new(|| {
    ASSETS.map(|a| {
        let hash = a.bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("\"{hash:016x}\"")
    })
});

/// One console file as an [`Entity`]: served like every other immutable file.
struct ConsoleAsset {
    asset: &'static Asset,
    etag: &'static str,
}

impl Entity for ConsoleAsset {
    type Error = Infallible;

    fn len(&self) -> u64 {
        self.asset.bytes.len() as u64
    }

    fn etag(&self) -> &str {
        self.etag
    }

    fn content_type(&self) -> &str {
        self.asset.content_type
    }

    async fn body(&self, range: Range<u64>) -> Result<HttpBody, Infallible> {
        // `respond` asks only for ranges inside `len`.
        let bytes = Bytes::from_static(self.asset.bytes);
        Ok(Full::new(bytes.slice(range.start as usize..range.end as usize)).boxed())
    }
}

/// Answers a GET or HEAD of a console file.
pub async fn handle(file: ConsoleFile, parts: &Parts) -> HttpResponse {
    let i = index(file);
    let file = ConsoleAsset {
        asset: ASSETS[i],
        etag: &ETAGS[i],
    };
    let Ok(mut resp) = entity::respond(&parts.method, &parts.headers, &file).await;
    policy(resp.headers_mut());
    resp
}

/// The page's security headers, and "revalidate before use" (RFC 9111 §5.2.2.4) so
/// a new binary's files are picked up at once; the ETag makes that a 304.
fn policy(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, StatusCode};

    fn get(file: ConsoleFile, headers: &[(&str, &str)]) -> HttpResponse {
        let mut req = Request::get("/console");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(handle(file, &parts))
    }

    #[test]
    fn page_has_its_policy_and_revalidates() {
        let resp = get(ConsoleFile::Page, &[]);
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        // RFC 9110 §13.1.2: a matching If-None-Match on GET is a 304.
        let again = get(ConsoleFile::Page, &[("If-None-Match", &etag)]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    }

    #[test]
    fn every_file_is_served_with_its_type() {
        for (file, ty) in [
            (ConsoleFile::Script, "text/javascript; charset=utf-8"),
            (ConsoleFile::Style, "text/css; charset=utf-8"),
            (ConsoleFile::HlsJs, "text/javascript; charset=utf-8"),
            (ConsoleFile::HlsJsLicense, "text/plain; charset=utf-8"),
        ] {
            let resp = get(file, &[]);
            assert_eq!(resp.status(), StatusCode::OK, "{file:?}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], ty, "{file:?}");
        }
        let tags: std::collections::HashSet<_> = ETAGS.iter().collect();
        assert_eq!(tags.len(), ASSETS.len(), "distinct files, distinct tags");
    }

    #[test]
    fn the_page_names_only_its_own_assets() {
        let page = std::str::from_utf8(PAGE.bytes).unwrap();
        for name in ["console/app.js", "console/app.css", "console/hls.min.js"] {
            assert!(page.contains(name), "{name}");
            let asset = name.strip_prefix("console/").unwrap();
            assert!(ConsoleFile::asset(asset).is_some(), "{asset} is routed");
        }
        // No third-party origin, no inline handler the CSP would refuse.
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains(" onclick=") && !page.contains("<style"));
    }
}
