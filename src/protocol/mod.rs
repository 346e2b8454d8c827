//! The Redis protocol: request parsing (RESP2 multibulk and inline commands) and reply
//! encoding (RESP2 and RESP3).

pub mod encode;
pub mod parse;

pub use encode::{Proto, ReplyWriter};
pub use parse::{parse_frame, parse_frame_resumable, Limits, ProtocolError, Resume};
