//! The tokio + tokio-rustls TLS echo peer for `tls-bench`, on the system
//! allocator (a tokio program's default): [`twirl_bench::tls_peer::tokio_echo`].
//!
//! `peer-tokio-tls --addr 127.0.0.1:0 --cert cert.pem --key key.pem [--workers N]`

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::tokio_echo()
}
