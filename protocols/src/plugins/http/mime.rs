//! `Content-Type` from a file name's extension, for the types a lab
//! serves; anything else is `application/octet-stream`.

/// The media type for `name`, by its extension (case ignored).
///
/// ```
/// use twirl_protocols::plugins::http::mime::content_type;
/// assert_eq!(content_type("index.HTML"), "text/html; charset=utf-8");
/// assert_eq!(content_type("data.bin"), "application/octet-stream");
/// assert_eq!(content_type("README"), "application/octet-stream");
/// ```
pub fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return "application/octet-stream",
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "text" | "log" | "md" | "rs" | "py" | "c" | "h" | "toml" | "sh" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
