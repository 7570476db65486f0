//! twirl's TLS layer in a program of its own, on the system allocator
//! (glibc's malloc), as a plugin writer's own binary is unless it picks
//! another: [`twirl_bench::tls_peer::twirl_echo`]. `tls-bench` runs it
//! beside tokio on the same allocator; its main rows run `twirl serve`,
//! which is on jemalloc.
//!
//! `peer-twirl-tls --addr 127.0.0.1:0 --cert cert.pem --key key.pem`

fn main() -> std::io::Result<()> {
    twirl_bench::tls_peer::twirl_echo()
}
