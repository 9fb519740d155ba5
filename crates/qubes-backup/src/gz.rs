//! Parallel gzip, the way pigz does it: the stream is cut into blocks, each deflated on its
//! own and ended with a sync flush (the last one with a final block), so the concatenation
//! is one valid deflate stream in one gzip member that `gzip -d` reads. The CRC and length
//! are kept by whoever cuts the blocks.

use flate2::{Compress, Compression, FlushCompress, Status};

/// A gzip member header: deflate, no name, no time, Unix.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// gzip's default level, which `--use-compress-program=gzip` gets.
pub const LEVEL: u32 = 6;

/// A fresh raw-deflate compressor at [`LEVEL`].
pub fn compressor() -> Compress {
    Compress::new(Compression::new(LEVEL), false)
}

/// Deflates `input` on its own into `out`: a sync flush at the end, or the final block
/// when `last`.
pub fn deflate_block(c: &mut Compress, input: &[u8], last: bool, out: &mut Vec<u8>) {
    c.reset();
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    out.reserve(input.len() + input.len() / 512 + 64);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], out, flush)
            .expect("deflate of in-memory data cannot fail");
        if status == Status::StreamEnd {
            return;
        }
        // A sync flush is complete once it left room in the output.
        if !last && c.total_in() as usize == input.len() && out.capacity() > out.len() {
            return;
        }
        out.reserve(64 << 10);
    }
}

/// The gzip trailer for data with this CRC-32 and length.
pub fn trailer(crc: u32, len: u64) -> [u8; 8] {
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&crc.to_le_bytes());
    t[4..].copy_from_slice(&(len as u32).to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn blocks_make_one_gzip_stream() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| {
                if i % 1000 < 500 {
                    0
                } else {
                    (i * 31 % 253) as u8
                }
            })
            .collect();
        let mut out = HEADER.to_vec();
        let mut c = compressor();
        let blocks: Vec<&[u8]> = data.chunks(1 << 20).collect();
        for (i, b) in blocks.iter().enumerate() {
            deflate_block(&mut c, b, i + 1 == blocks.len(), &mut out);
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&data);
        out.extend_from_slice(&trailer(h.finalize(), data.len() as u64));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        if let Ok(mut child) = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            let mut stdin = child.stdin.take().unwrap();
            let input = out.clone();
            let t = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
            let o = child.wait_with_output().unwrap();
            t.join().unwrap().unwrap();
            assert!(o.status.success());
            assert_eq!(o.stdout, data, "gzip -d reads it");
        }
        // An empty last block still ends the stream.
        let mut out = HEADER.to_vec();
        deflate_block(&mut c, b"abc", false, &mut out);
        deflate_block(&mut c, b"", true, &mut out);
        let mut h = crc32fast::Hasher::new();
        h.update(b"abc");
        out.extend_from_slice(&trailer(h.finalize(), 3));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, b"abc");
    }
}
