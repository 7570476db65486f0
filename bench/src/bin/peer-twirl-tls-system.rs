//! twirl's TLS echo peer on the system allocator (glibc's malloc), for
//! `tls-bench`'s allocator rows: [`twirl_bench::tls_peer::twirl_echo`].
//!
//! `peer-twirl-tls-system --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::twirl_echo()
}
