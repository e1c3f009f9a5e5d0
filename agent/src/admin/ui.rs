//! The lane map's page and scripts (`/ui`), embedded in the binary: no CDN, works offline.
//! Cytoscape.js and cytoscape-dagre are vendored, minified, in `agent/ui/vendor/` (versions
//! in `agent/ui/package.json`); a build needs no npm.

/// An asset by its path under `/ui`: (content type, body).
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/ui" | "/ui/" | "/ui/index.html" => {
            ("text/html; charset=utf-8", include_str!("../../ui/index.html"))
        }
        "/ui/app.js" => ("text/javascript; charset=utf-8", include_str!("../../ui/app.js")),
        "/ui/app.css" => ("text/css; charset=utf-8", include_str!("../../ui/app.css")),
        "/ui/vendor/cytoscape.min.js" => {
            ("text/javascript; charset=utf-8", include_str!("../../ui/vendor/cytoscape.min.js"))
        }
        "/ui/vendor/cytoscape-dagre.min.js" => {
            ("text/javascript; charset=utf-8", include_str!("../../ui/vendor/cytoscape-dagre.min.js"))
        }
        _ => return None,
    })
}

/// The page may load only its own scripts and styles and fetch only its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
