//! Frame Streams (`fstrm`), the transport of dnstap: length-prefixed data frames
//! and escaped control frames, with the bidirectional handshake of a writer
//! talking to a collector over a socket.
//!
//! A data frame is a big-endian `u32` length (not zero) and that many bytes. A
//! control frame is a zero `u32` (the escape), the `u32` length of the control
//! frame, its `u32` type and fields (`u32` field type, `u32` length, bytes; the
//! only field is the content type). A writer sends READY (with the content types
//! it can send), the collector answers ACCEPT (with the one it takes), the writer
//! sends START (with that type), then data frames, and at the end STOP, which the
//! collector acknowledges with FINISH. A file written by a collector holds START,
//! the data frames and STOP.

use std::io::{self, Read, Write};

/// The content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Control frame types.
pub const ACCEPT: u32 = 0x01;
/// Control frame: the writer begins.
pub const START: u32 = 0x02;
/// Control frame: the writer stops.
pub const STOP: u32 = 0x03;
/// Control frame: the writer is ready (bidirectional only).
pub const READY: u32 = 0x04;
/// Control frame: the collector acknowledges STOP (bidirectional only).
pub const FINISH: u32 = 0x05;
/// The field of a control frame that carries a content type.
pub const FIELD_CONTENT_TYPE: u32 = 0x01;
/// Largest control frame accepted.
pub const MAX_CONTROL: usize = 512;

/// A control frame: its type and content types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// [`ACCEPT`], [`START`], [`STOP`], [`READY`] or [`FINISH`].
    pub kind: u32,
    /// Content types it names.
    pub types: Vec<Vec<u8>>,
}

/// Write one control frame (escape, length, type, content-type fields).
pub fn write_control<W: Write>(w: &mut W, kind: u32, types: &[&[u8]]) -> io::Result<()> {
    let len: usize = 4 + types.iter().map(|t| 8 + t.len()).sum::<usize>();
    let mut f = Vec::with_capacity(8 + len);
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    for t in types {
        f.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        f.extend_from_slice(&(t.len() as u32).to_be_bytes());
        f.extend_from_slice(t);
    }
    w.write_all(&f)
}

/// One frame read from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A data frame's payload.
    Data(Vec<u8>),
    /// A control frame.
    Control(Control),
}

fn read_u32<R: Read>(r: &mut R) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn bad(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

/// Read one frame (data or control); `max_data` bounds a data frame.
pub fn read_frame<R: Read>(r: &mut R, max_data: usize) -> io::Result<Frame> {
    let len = read_u32(r)? as usize;
    if len != 0 {
        if len > max_data {
            return Err(bad(format!("data frame of {len} bytes")));
        }
        let mut d = vec![0u8; len];
        r.read_exact(&mut d)?;
        return Ok(Frame::Data(d));
    }
    let clen = read_u32(r)? as usize;
    if !(4..=MAX_CONTROL).contains(&clen) {
        return Err(bad(format!("control frame of {clen} bytes")));
    }
    let mut c = vec![0u8; clen];
    r.read_exact(&mut c)?;
    parse_control(&c).map(Frame::Control)
}

fn parse_control(c: &[u8]) -> io::Result<Control> {
    let u32_at = |i: usize| -> io::Result<u32> {
        c.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("truncated control frame"))
    };
    let kind = u32_at(0)?;
    let mut types = Vec::new();
    let mut i = 4;
    while i < c.len() {
        let field = u32_at(i)?;
        let n = u32_at(i + 4)? as usize;
        let v = c
            .get(i + 8..i + 8 + n)
            .ok_or_else(|| bad("truncated control field"))?;
        if field == FIELD_CONTENT_TYPE {
            types.push(v.to_vec());
        }
        i += 8 + n;
    }
    Ok(Control { kind, types })
}

fn expect_control<R: Read>(r: &mut R, kind: u32) -> io::Result<Control> {
    match read_frame(r, 0)? {
        Frame::Control(c) if c.kind == kind => Ok(c),
        Frame::Control(c) => Err(bad(format!(
            "control frame {:#x} where {kind:#x} was expected",
            c.kind
        ))),
        Frame::Data(_) => Err(bad("a data frame where a control frame was expected")),
    }
}

/// The writer's side of the handshake: READY, wait for ACCEPT of our content
/// type, START. The stream's read timeout bounds the wait.
pub fn writer_handshake<S: Read + Write>(s: &mut S, content_type: &[u8]) -> io::Result<()> {
    write_control(s, READY, &[content_type])?;
    s.flush()?;
    let a = expect_control(s, ACCEPT)?;
    if !a.types.is_empty() && !a.types.iter().any(|t| t == content_type) {
        return Err(bad("the collector does not accept protobuf:dnstap.Dnstap"));
    }
    write_control(s, START, &[content_type])?;
    s.flush()
}

/// The writer's side of the end: STOP, then wait for FINISH.
pub fn writer_stop<S: Read + Write>(s: &mut S) -> io::Result<()> {
    write_control(s, STOP, &[])?;
    s.flush()?;
    expect_control(s, FINISH).map(|_| ())
}

/// Append one data frame (length and payload) to a buffer.
pub fn push_data(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
}

/// The collector's side of the handshake: wait for READY, ACCEPT our content type,
/// wait for START. Returns the content type started.
pub fn reader_handshake<S: Read + Write>(s: &mut S, content_type: &[u8]) -> io::Result<Vec<u8>> {
    let r = expect_control(s, READY)?;
    if !r.types.iter().any(|t| t == content_type) {
        return Err(bad("the writer does not offer our content type"));
    }
    write_control(s, ACCEPT, &[content_type])?;
    s.flush()?;
    let st = expect_control(s, START)?;
    Ok(st.types.into_iter().next().unwrap_or_default())
}

/// Read data frames until STOP (answered with FINISH when `bidirectional`).
pub fn read_until_stop<S: Read + Write>(
    s: &mut S,
    bidirectional: bool,
    mut each: impl FnMut(Vec<u8>),
) -> io::Result<()> {
    loop {
        match read_frame(s, 1 << 20)? {
            Frame::Data(d) => each(d),
            Frame::Control(c) if c.kind == STOP => {
                if bidirectional {
                    write_control(s, FINISH, &[])?;
                    s.flush()?;
                }
                return Ok(());
            }
            Frame::Control(c) => return Err(bad(format!("unexpected control {:#x}", c.kind))),
        }
    }
}

/// The data frames of a Frame Streams file (as `fstrm_capture` writes): START with
/// our content type, data frames, STOP (a file cut short before STOP is read up
/// to its last whole frame).
pub fn read_file(bytes: &[u8], content_type: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let mut r = bytes;
    let st = expect_control(&mut r, START)?;
    if !st.types.is_empty() && !st.types.iter().any(|t| t == content_type) {
        return Err(bad("the file holds another content type"));
    }
    let mut out = Vec::new();
    while !r.is_empty() {
        match read_frame(&mut r, 1 << 20) {
            Ok(Frame::Data(d)) => out.push(d),
            Ok(Frame::Control(c)) if c.kind == STOP => break,
            Ok(Frame::Control(c)) if c.kind == START => {}
            Ok(Frame::Control(c)) => return Err(bad(format!("unexpected control {:#x}", c.kind))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_round_trip() {
        let mut b = Vec::new();
        write_control(&mut b, READY, &[CONTENT_TYPE]).unwrap();
        assert_eq!(&b[..4], &[0, 0, 0, 0], "escape");
        assert_eq!(
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize,
            4 + 8 + CONTENT_TYPE.len()
        );
        let f = read_frame(&mut &b[..], 0).unwrap();
        assert_eq!(
            f,
            Frame::Control(Control {
                kind: READY,
                types: vec![CONTENT_TYPE.to_vec()]
            })
        );
        let mut d = Vec::new();
        push_data(&mut d, b"hello");
        assert_eq!(
            read_frame(&mut &d[..], 100).unwrap(),
            Frame::Data(b"hello".to_vec())
        );
        assert!(read_frame(&mut &d[..], 4).is_err(), "bounded");
    }

    #[test]
    fn a_file_is_start_data_stop() {
        let mut b = Vec::new();
        write_control(&mut b, START, &[CONTENT_TYPE]).unwrap();
        push_data(&mut b, b"one");
        push_data(&mut b, b"two");
        write_control(&mut b, STOP, &[]).unwrap();
        assert_eq!(
            read_file(&b, CONTENT_TYPE).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
        assert!(read_file(&b, b"other").is_err());
    }
}
