//! The dashboard's HTTP side: `GET /` is the page, `GET /stats.json` the
//! latest snapshot; anything else 404. Requests are parsed by the `http`
//! plugin's parser, and answered in order on a kept-alive connection.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use twirl::bytes::Bytes;
use twirl::{Protocol, Transport};

use crate::plugins::http::request::{Method, Parsed, parse};
use crate::plugins::http::response::{Head, Status, page};

/// The page: HTML, CSS and script in one file, nothing fetched from
/// elsewhere.
pub const PAGE: &str = include_str!("page.html");

/// The latest snapshot, as JSON bytes, shared with the sampling timer.
pub type Latest = Rc<RefCell<Bytes>>;

/// One connection to the dashboard.
pub struct DashboardConn {
    page: &'static str,
    latest: Latest,
    buf: Vec<u8>,
}

impl DashboardConn {
    /// A connection serving the reactor's page and `latest`.
    pub fn new(latest: Latest) -> DashboardConn {
        DashboardConn::with_page(PAGE, latest)
    }

    /// A connection serving another page (the deadlock lab's) at `/`, and
    /// `latest` at `/stats.json`.
    pub fn with_page(page: &'static str, latest: Latest) -> DashboardConn {
        DashboardConn { page, latest, buf: Vec::new() }
    }
}

impl Protocol for DashboardConn {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.progress();
    }

    fn data_received(&mut self, data: &[u8], t: &mut dyn Transport) {
        if t.is_closing() {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        while pos < self.buf.len() {
            let now = SystemTime::now();
            match parse(&self.buf[pos..]) {
                Parsed::Partial => break,
                Parsed::Refused(status, why) => {
                    t.write(&page(1, status, why, now, false, true));
                    t.lose_connection();
                    return;
                }
                Parsed::Request(r, n) => {
                    // A request body is not expected here: refuse it.
                    if r.body > 0 {
                        t.write(&page(r.minor, Status::ContentTooLarge, "no body here", now, false, true));
                        t.lose_connection();
                        return;
                    }
                    pos += n;
                    t.progress();
                    let path = r.target.split('?').next().unwrap_or("");
                    let (body, kind) = match path {
                        "/" | "/index.html" => (Bytes::from_static(self.page.as_bytes()), "text/html; charset=utf-8"),
                        "/stats.json" => (self.latest.borrow().clone(), "application/json"),
                        _ => {
                            let get = r.method == Method::Get;
                            t.write(&page(
                                r.minor,
                                Status::NotFound,
                                "the dashboard has / and /stats.json",
                                now,
                                r.keep_alive,
                                get,
                            ));
                            if !r.keep_alive {
                                t.lose_connection();
                                return;
                            }
                            continue;
                        }
                    };
                    let mut head = Head::new(r.minor, Status::Ok, now);
                    head.header("Content-Type", kind)
                        .header("Content-Length", body.len())
                        .header("Cache-Control", "no-store");
                    t.write(&head.finish(r.keep_alive));
                    if r.method == Method::Get {
                        t.write_bytes(body);
                    }
                    if !r.keep_alive {
                        t.lose_connection();
                        return;
                    }
                }
            }
        }
        self.buf.drain(..pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twirl::testing::Harness;

    #[test]
    fn page_json_and_404_in_order() {
        let latest: Latest = Rc::new(RefCell::new(Bytes::from_static(b"{\"x\":1}")));
        let mut h = Harness::new(DashboardConn::new(latest.clone()));
        h.connect();
        h.feed(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /stats.json HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let out = h.take_text();
        let page_at = out.find("<!DOCTYPE html>").unwrap();
        let json_at = out.find("{\"x\":1}").unwrap();
        let missing_at = out.find("HTTP/1.1 404").unwrap();
        assert!(page_at < json_at && json_at < missing_at, "{out}");
        assert!(!h.is_closed());
        *latest.borrow_mut() = Bytes::from_static(b"{\"x\":2}");
        h.feed(b"GET /stats.json HTTP/1.0\r\n\r\n");
        assert!(h.take_text().ends_with("{\"x\":2}"));
        assert!(h.is_closed(), "HTTP/1.0 closes");
    }

    #[test]
    fn the_page_fetches_nothing_from_elsewhere() {
        for needle in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!PAGE.contains(needle), "the page refers to {needle}");
        }
    }
}
