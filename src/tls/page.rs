//! The thread-wide buffers the TLS layer copies records through, placed
//! within their 4 KiB page on purpose.
//!
//! glibc copies 16 KiB with `rep movsb`, which on AMD Zen runs ~25x slower
//! when the destination is 1 to 15 bytes past the source, modulo 4 KiB
//! (glibc bug 30994). A buffer whose records start at a chosen offset in
//! their page keeps the copies into and out of it clear of that band,
//! wherever the allocator put the buffer.

/// A thread-wide buffer (the layer's plaintext, the outbox) this large is
/// not kept for the next use.
pub(crate) const KEEP_BELOW: usize = 256 * 1024;

/// Where in a page the layer's plaintext buffer starts: away from the
/// blocks rustls copies records out of, which allocators start at a
/// multiple of 16 (glibc), 64 (jemalloc) or 4096 bytes (mimalloc) within a
/// page, so that the copy never falls 1 to 15 bytes on.
pub(crate) const PLAIN_PAGE_OFFSET: usize = 2080;

/// A page, as the copies' slow band counts.
pub(crate) const PAGE: usize = 4096;

/// `len` bytes of `buf` that start `page_offset` bytes into a 4 KiB page
/// (`buf` grows to hold them).
pub(crate) fn page_window(buf: &mut Vec<u8>, len: usize, page_offset: usize) -> &mut [u8] {
    if buf.len() < len + PAGE {
        buf.resize(len + PAGE, 0);
    }
    let skip = (PAGE + page_offset - buf.as_ptr() as usize % PAGE) % PAGE;
    &mut buf[skip..skip + len]
}
