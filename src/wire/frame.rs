//! Kafka framing: a big-endian `int32` size, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// One whole frame, size prefix included, so that it can be forwarded as it
/// came without copying.
#[derive(Debug, Clone)]
pub struct Frame(pub Bytes);

impl Frame {
    pub const PREFIX: usize = 4;

    /// The frame's contents after the size prefix.
    pub fn body(&self) -> &[u8] {
        &self.0[Self::PREFIX..]
    }

    /// The api key of a request frame (its first field), -1 when the
    /// frame is too short to hold one.
    pub fn request_api_key(frame: &[u8]) -> i16 {
        frame
            .get(Self::PREFIX..Self::PREFIX + 2)
            .map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]))
    }

    /// The api version a request frame names (-1 when it is too short).
    pub fn request_api_version(frame: &[u8]) -> i16 {
        frame
            .get(Self::PREFIX + 2..Self::PREFIX + 4)
            .map_or(-1, |v| i16::from_be_bytes([v[0], v[1]]))
    }

    /// The correlation id of a response frame (its first field).
    pub fn response_correlation_id(&self) -> Option<i32> {
        let b = self.body().get(..4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: i64, max: usize },
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("connection closed in the middle of a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The largest read the frame reader does at once. A frame's buffer takes
/// this much first, and the rest of the frame only once that much has
/// arrived: a size prefix that lies costs at most a chunk, and a frame that
/// comes is copied into its buffer once (growing it step by step copied a
/// 1 MiB Produce about twice over).
const CHUNK: usize = 64 * 1024;

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut prefix = [0u8; Frame::PREFIX];
    let mut got = 0;
    while got < prefix.len() {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { got, want: 4 })
            };
        }
        got += n;
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    let total = Frame::PREFIX + size;
    let mut buf = BytesMut::with_capacity(total.min(CHUNK));
    buf.extend_from_slice(&prefix);
    while buf.len() < total {
        if buf.len() >= CHUNK && buf.capacity() < total {
            buf.reserve(total - buf.len());
        }
        let want = (total - buf.len()).min(CHUNK);
        buf.reserve(want);
        let n = (&mut *r).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: buf.len() - Frame::PREFIX,
                want: size,
            });
        }
    }
    Ok(Some(Frame(buf.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn reads_whole_frame_with_prefix() {
        let f = read(&[0, 0, 0, 3, 7, 8, 9, 1], 100).await.unwrap().unwrap();
        assert_eq!(&f.0[..], &[0, 0, 0, 3, 7, 8, 9]);
        assert_eq!(f.body(), &[7, 8, 9]);
    }

    #[tokio::test]
    async fn clean_eof_is_none_and_partial_is_truncated() {
        assert!(read(&[], 100).await.unwrap().is_none());
        assert!(matches!(
            read(&[0, 0], 100).await,
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        assert!(matches!(
            read(&[0, 0, 0, 9, 1], 100).await,
            Err(FrameError::Truncated { got: 1, want: 9 })
        ));
    }

    #[tokio::test]
    async fn oversized_and_negative_sizes_are_refused() {
        assert!(matches!(
            read(&[0x7f, 0xff, 0xff, 0xff], 100).await,
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            read(&[0xff, 0xff, 0xff, 0xff], 100).await,
            Err(FrameError::Negative(-1))
        ));
    }
}
