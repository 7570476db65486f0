//! The `Range` header (RFC 9110 §14): one byte range is served as 206;
//! a range past the end is 416; several ranges, or a unit other than
//! bytes, are ignored (the whole file, 200), as the RFC allows.

/// What a `Range` header asks of a file of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file (no header, or one this server ignores).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// The first byte.
        start: u64,
        /// The last byte, included.
        end: u64,
    },
    /// Nothing in the file matches the range: 416.
    Unsatisfiable,
}

/// Reads `header` against a file of `len` bytes.
///
/// ```
/// use twirl_protocols::plugins::http::range::{wanted, Wanted};
/// assert_eq!(wanted(Some("bytes=0-9"), 100), Wanted::Part { start: 0, end: 9 });
/// assert_eq!(wanted(Some("bytes=-10"), 100), Wanted::Part { start: 90, end: 99 });
/// assert_eq!(wanted(Some("bytes=95-"), 100), Wanted::Part { start: 95, end: 99 });
/// assert_eq!(wanted(Some("bytes=90-500"), 100), Wanted::Part { start: 90, end: 99 });
/// assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
/// assert_eq!(wanted(Some("bytes=0-1,5-6"), 100), Wanted::Whole);
/// assert_eq!(wanted(None, 100), Wanted::Whole);
/// ```
pub fn wanted(header: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part { start: len.saturating_sub(n), end: len - 1 },
            None => Wanted::Whole,
        },
        (a, b) => {
            let Some(start) = number(a) else { return Wanted::Whole };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match number(b) {
                    Some(e) if e >= start => e,
                    _ => return Wanted::Whole, // invalid: ignored (RFC 9110 §14.1.1)
                }
            };
            if start >= len { Wanted::Unsatisfiable } else { Wanted::Part { start, end: end.min(len - 1) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_headers_are_ignored_or_refused() {
        assert_eq!(wanted(Some("items=0-1"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=5-2"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=x-2"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=-0"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-5"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-50"), 10), Wanted::Part { start: 0, end: 9 });
        assert_eq!(wanted(Some("bytes=18446744073709551615-"), 10), Wanted::Unsatisfiable);
    }
}
