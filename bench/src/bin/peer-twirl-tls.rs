//! twirl's TLS echo peer for `tls-bench`, on mimalloc as the `twirl`
//! command is: [`twirl_bench::tls_peer::twirl_echo`].
//!
//! `peer-twirl-tls --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::twirl_echo()
}
