//! twirl's TLS layer in a program of its own, on the system allocator as
//! the `twirl` command is: [`twirl_bench::tls_peer::twirl_echo`].
//! `tls-bench` runs `twirl serve` itself; this peer is the twin of
//! `peer-twirl-tls-mimalloc`, so that the two differ only in allocator.
//!
//! `peer-twirl-tls --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::twirl_echo()
}
