//! The tokio + tokio-rustls TLS echo peer on mimalloc, for `tls-bench`'s
//! allocator rows: [`twirl_bench::tls_peer::tokio_echo`].
//!
//! `peer-tokio-tls-mimalloc --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::tokio_echo()
}
