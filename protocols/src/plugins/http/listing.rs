//! The directory listing page, for a directory without `index.html`:
//! names sorted, HTML-escaped in the text and percent-encoded in the
//! links, directories marked with a trailing `/`.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attributes.
///
/// ```
/// assert_eq!(twirl_protocols::plugins::http::listing::escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986 §2.3),
/// for one path segment in a link.
///
/// ```
/// assert_eq!(twirl_protocols::plugins::http::listing::encode_segment(b"a b/%.txt"), "a%20b%2F%25.txt");
/// ```
pub fn encode_segment(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The listing of `dir`, titled with `shown` (the decoded request path).
pub fn page(dir: &Path, shown: &str) -> io::Result<String> {
    let mut entries: Vec<(Vec<u8>, String, bool)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        // Not followed: a symlink is listed as a name (whether it leads to a
        // directory, maybe outside the root, is not told); asked for, it is
        // checked, and a directory's link redirects to its `/` form.
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        entries.push((name.as_bytes().to_vec(), name.to_string_lossy().into_owned(), is_dir));
    }
    entries.sort();
    let title = escape(&format!("Directory listing for {shown}"));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<hr>\n<ul>\n"
    );
    for (raw, name, is_dir) in entries {
        let slash = if is_dir { "/" } else { "" };
        html.push_str(&format!("<li><a href=\"{}{slash}\">{}{slash}</a></li>\n", encode_segment(&raw), escape(&name)));
    }
    html.push_str("</ul>\n<hr>\n</body></html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_encoded() {
        let dir = std::env::temp_dir().join(format!("twirl-listing-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("<b>&\"x\".txt"), b"").unwrap();
        let html = page(&dir, "/<d>/").unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert!(html.contains("Directory listing for /&lt;d&gt;/"), "{html}");
        assert!(html.contains("<a href=\"%3Cb%3E%26%22x%22.txt\">&lt;b&gt;&amp;&quot;x&quot;.txt</a>"), "{html}");
        assert!(html.contains("<a href=\"sub/\">sub/</a>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }
}
