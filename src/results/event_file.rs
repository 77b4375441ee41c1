//! TensorBoard event files: the TFRecord framing of `tensorflow.Event` protos that TensorBoard's
//! reader (`EventAccumulator`) reads, written by hand over `prost` (the five messages we need, derived
//! here; no `protoc` at build time) and `crc32c`.
//!
//! A record is `u64 len (LE) · u32 masked_crc32c(len) · data · u32 masked_crc32c(data)`, with
//! masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. A file is named
//! `events.out.tfevents.<unix secs>.<host>.<pid>.<n>` and begins with an event whose `file_version` is
//! `brain.Event:2` (which tells TensorBoard to purge on `SessionLog.START`). TensorBoard reads the
//! files of a folder in name order, so a new file's seconds are kept above every existing file's.
//!
//! Each [`EventFile`] is a file of its own: a resumed run opens a new one and begins it with a
//! `SessionLog.START` at its resume step, which makes TensorBoard drop every point at or after that
//! step that the killed process had written. Records are buffered and written by [`EventFile::flush`];
//! the file is only ever appended to (a kill can at worst cut its last record, which the reader
//! skips).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use prost::Message;

/// File names begin with this (TensorBoard lists a folder's event files by it).
pub(crate) const PREFIX: &str = "events.out.tfevents.";
/// The first event's `file_version`.
pub(crate) const FILE_VERSION: &str = "brain.Event:2";
/// `TensorProto.dtype` of a string tensor (`DT_STRING`).
const DT_STRING: i32 = 7;
/// The text plugin's name in `SummaryMetadata.plugin_data`.
const TEXT_PLUGIN: &str = "text";

/// `tensorflow.Event` (tensorflow/core/util/event.proto): the fields we write.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// `SessionStatus`: 1 = START.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `SessionLog.SessionStatus.START`.
pub(crate) const SESSION_START: i32 = 1;

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value`: a scalar (`simple_value`) or a text tensor with the text plugin's
/// metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// `tensorflow.TensorProto`: a 0-d string tensor (shape left empty = scalar).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `tensorflow.TensorShapeProto` with no dims: a scalar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 of c = crc32c(bytes).
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, the data, its masked CRC.
pub(crate) fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The records of `bytes`, each checked against its CRCs; a cut last record ends the list.
pub fn records(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into()?) as usize;
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into()?);
        anyhow::ensure!(crc == masked_crc(len_bytes), "bad length CRC at byte {at}");
        let (start, end) = (at + 12, at + 12 + len);
        if end + 4 > bytes.len() {
            break;
        }
        let crc = u32::from_le_bytes(bytes[end..end + 4].try_into()?);
        anyhow::ensure!(
            crc == masked_crc(&bytes[start..end]),
            "bad data CRC at byte {start}"
        );
        out.push(&bytes[start..end]);
        at = end + 4;
    }
    Ok(out)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The seconds field of an event file's name.
fn name_secs(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.split('.').next()?.parse().ok()
}

/// The event files in `dir`, in the order TensorBoard reads them (by name).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| name_secs(n).is_some())
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    v.sort();
    Ok(v)
}

/// An event file being written.
pub(crate) struct EventFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl EventFile {
    /// A new event file in `dir`, named after every existing one (TensorBoard reads them in name
    /// order), beginning with the `file_version` event.
    pub fn create(dir: &Path, host: &str) -> Result<EventFile> {
        let existing = list(dir)?;
        let last = existing
            .iter()
            .filter_map(|p| name_secs(p.file_name()?.to_str()?))
            .max();
        let now = unix_now() as u64;
        // all names share one digit count until the year 2286, so name order is time order
        let secs = last.map_or(now, |l| now.max(l + 1));
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{PREFIX}{secs}.{host}.{}.0", std::process::id()));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating the TensorBoard event file {}", path.display()))?;
        let mut f = EventFile {
            path,
            file,
            buf: Vec::new(),
        };
        f.push(0, What::FileVersion(FILE_VERSION.into()));
        Ok(f)
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    fn push(&mut self, step: u64, what: What) {
        let ev = Event {
            wall_time: unix_now(),
            step: i64::try_from(step).unwrap_or(i64::MAX),
            what: Some(what),
        };
        frame(&ev.encode_to_vec(), &mut self.buf);
    }

    /// `SessionLog.START` at `step`: TensorBoard drops every earlier-written point at or after it.
    pub fn session_start(&mut self, step: u64) {
        self.push(
            step,
            What::SessionLog(SessionLog {
                status: SESSION_START,
            }),
        );
    }

    /// Scalars at `step`, one event.
    pub fn scalars(&mut self, step: u64, values: &[(String, f32)]) {
        if values.is_empty() {
            return;
        }
        let value = values
            .iter()
            .map(|(tag, v)| Value {
                tag: tag.clone(),
                simple_value: Some(*v),
                ..Value::default()
            })
            .collect();
        self.push(step, What::Summary(Summary { value }));
    }

    /// A text summary (the text plugin renders it as Markdown) at `step`.
    pub fn text(&mut self, step: u64, tag: &str, markdown: &str) {
        let value = Value {
            tag: tag.into(),
            simple_value: None,
            tensor: Some(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShape {}),
                string_val: vec![markdown.as_bytes().to_vec()],
            }),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: TEXT_PLUGIN.into(),
                    content: Vec::new(),
                }),
            }),
        };
        self.push(step, What::Summary(Summary { value: vec![value] }));
    }

    /// Writes the buffered records (one `write`, appended), so a reader sees them now.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_the_masked_castagnoli_crc_of_the_tfrecord_format() {
        // crc32c("123456789") = 0xe3069283 (the CRC-32C check value)
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // ((c >> 15) | (c << 17)) + 0xa282ead8 of it, worked out by hand (mod 2^32)
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn events_written_read_back_in_order_with_their_steps_tags_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = EventFile::create(dir.path(), "my host").unwrap();
        f.scalars(3, &[("train/loss".into(), 2.5), ("train/lr".into(), 0.1)]);
        f.text(3, "config", "    a: 1");
        f.flush().unwrap();
        f.session_start(2);
        f.flush().unwrap();
        let second = EventFile::create(dir.path(), "my host").unwrap();
        let files = list(dir.path()).unwrap();
        assert_eq!(files, vec![f.path().to_owned(), second.path().to_owned()]);
        assert!(files[0]
            .to_string_lossy()
            .contains(&format!(".my_host.{}.0", std::process::id())));

        let bytes = std::fs::read(f.path()).unwrap();
        let evs: Vec<Event> = records(&bytes)
            .unwrap()
            .into_iter()
            .map(|r| Event::decode(r).unwrap())
            .collect();
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        let Some(What::Summary(s)) = &evs[1].what else {
            panic!("{:?}", evs[1])
        };
        assert_eq!(evs[1].step, 3);
        assert_eq!(
            s.value
                .iter()
                .map(|v| (v.tag.as_str(), v.simple_value))
                .collect::<Vec<_>>(),
            vec![("train/loss", Some(2.5)), ("train/lr", Some(0.1))]
        );
        let Some(What::Summary(t)) = &evs[2].what else {
            panic!("{:?}", evs[2])
        };
        let tensor = t.value[0].tensor.as_ref().unwrap();
        assert_eq!(tensor.string_val, vec![b"    a: 1".to_vec()]);
        assert_eq!(
            (evs[3].step, &evs[3].what),
            (
                2,
                &Some(What::SessionLog(SessionLog {
                    status: SESSION_START
                }))
            )
        );

        // a record cut by a kill ends the list; a flipped byte is an error
        assert_eq!(records(&bytes[..bytes.len() - 3]).unwrap().len(), 3);
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(records(&bad).is_err());
    }
}
