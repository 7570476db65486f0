//! The tokio + tokio-rustls TLS echo peer on jemalloc, the `twirl`
//! command's allocator, for `tls-bench`'s allocator rows:
//! [`twirl_bench::tls_peer::tokio_echo`].
//!
//! `peer-tokio-tls-jemalloc --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::tokio_echo()
}
