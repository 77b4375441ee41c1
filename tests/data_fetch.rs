//! `unas data fetch` against a real HTTP server on 127.0.0.1 serving archives built here in the exact
//! official layout (small record counts). No test touches the internet.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use unas::data::cifar::{self, Format, Variant};
use unas::data::fetch::{fetch, Archive, FetchOptions};

#[derive(Clone, Copy)]
enum Behaviour {
    /// Serve the body, honouring `Range: bytes=N-` with 206.
    Serve,
    /// Announce the full length but close after this many bytes.
    Truncate(usize),
    Status500,
    /// Send headers and half the body, then stall.
    Stall,
}

struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<String>>>,
}

fn serve(body: Vec<u8>, behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/cifar-10-binary.tar.gz",
        listener.local_addr().unwrap()
    );
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            let seen = seen.clone();
            thread::spawn(move || handle(stream, &body, behaviour, &seen));
        }
    });
    Server { url, ranges }
}

fn handle(mut stream: TcpStream, body: &[u8], behaviour: Behaviour, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut start = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let v = v.trim().trim_end_matches('-').to_owned();
            seen.lock().unwrap().push(v.clone());
            start = v.parse().unwrap();
        }
    }
    let _ = match behaviour {
        Behaviour::Status500 => {
            stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        }
        Behaviour::Serve => {
            let part = &body[start..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
                    part.len(),
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
            };
            stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(part))
        }
        Behaviour::Truncate(n) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body[..n]))
        }
        Behaviour::Stall => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body[..body.len() / 2]));
            let _ = stream.flush();
            thread::sleep(Duration::from_secs(8));
            Ok(())
        }
    };
    let _ = stream.flush();
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A .tar.gz of a CIFAR-10 folder in the official layout (3 records per file).
fn archive_bytes() -> (Vec<u8>, Format) {
    let tmp = tempfile::tempdir().unwrap();
    let format = Format::with_records(Variant::Cifar10, 3);
    cifar::write_folder(&tmp.path().join(Variant::Cifar10.folder()), &format).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        tar.append_dir_all(
            Variant::Cifar10.folder(),
            tmp.path().join(Variant::Cifar10.folder()),
        )
        .unwrap();
        tar.finish().unwrap();
    }
    (gz.finish().unwrap(), format)
}

fn archive_for(url: &str, body: &[u8], format: &Format) -> Archive {
    Archive {
        url: url.to_owned(),
        bytes: body.len() as u64,
        md5: md5_hex(body),
        format: format.clone(),
    }
}

fn opts() -> FetchOptions {
    FetchOptions {
        stall_timeout: Duration::from_secs(1),
        progress: false,
    }
}

fn dataset_absent(root: &Path) -> bool {
    !root.join(Variant::Cifar10.folder()).exists()
}

#[test]
fn fetch_downloads_verifies_and_extracts_a_loadable_folder() {
    let (body, format) = archive_bytes();
    let server = serve(body.clone(), Behaviour::Serve);
    let root = tempfile::tempdir().unwrap();
    let dir = fetch(
        &archive_for(&server.url, &body, &format),
        root.path(),
        &opts(),
    )
    .unwrap();
    let (train, test) = cifar::load(&dir, &format).unwrap();
    assert_eq!((train.len(), test.len()), (15, 3));
    assert!(
        !root.path().join(".unas-fetch").exists(),
        "temporary files left behind"
    );
}

#[test]
fn truncated_body_leaves_no_dataset_and_says_so() {
    let (body, format) = archive_bytes();
    let server = serve(body.clone(), Behaviour::Truncate(body.len() / 3));
    let root = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        fetch(
            &archive_for(&server.url, &body, &format),
            root.path(),
            &opts()
        )
        .unwrap_err()
    );
    assert!(err.contains("resume"), "{err}");
    assert!(dataset_absent(root.path()));
}

#[test]
fn wrong_checksum_is_refused_and_the_download_removed() {
    let (body, format) = archive_bytes();
    let server = serve(body.clone(), Behaviour::Serve);
    let root = tempfile::tempdir().unwrap();
    let mut archive = archive_for(&server.url, &body, &format);
    archive.md5 = "0".repeat(32);
    let err = format!("{:#}", fetch(&archive, root.path(), &opts()).unwrap_err());
    assert!(
        err.contains("MD5") && err.contains(&md5_hex(&body)),
        "{err}"
    );
    assert!(dataset_absent(root.path()));
    assert!(!root
        .path()
        .join(".unas-fetch/cifar-10-binary.tar.gz.part")
        .exists());
}

#[test]
fn http_500_is_a_clear_error() {
    let (body, format) = archive_bytes();
    let server = serve(body.clone(), Behaviour::Status500);
    let root = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        fetch(
            &archive_for(&server.url, &body, &format),
            root.path(),
            &opts()
        )
        .unwrap_err()
    );
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(dataset_absent(root.path()));
}

#[test]
fn stalled_server_times_out_with_a_clear_error() {
    let (body, format) = archive_bytes();
    let server = serve(body.clone(), Behaviour::Stall);
    let root = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let err = format!(
        "{:#}",
        fetch(
            &archive_for(&server.url, &body, &format),
            root.path(),
            &opts()
        )
        .unwrap_err()
    );
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        err.contains("stalled") || err.contains("timed out") || err.contains("imeout"),
        "{err}"
    );
    assert!(dataset_absent(root.path()));
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let (body, format) = archive_bytes();
    let cut = body.len() / 2;
    let broken = serve(body.clone(), Behaviour::Truncate(cut));
    let root = tempfile::tempdir().unwrap();
    assert!(fetch(
        &archive_for(&broken.url, &body, &format),
        root.path(),
        &opts()
    )
    .is_err());
    assert!(dataset_absent(root.path()));
    let good = serve(body.clone(), Behaviour::Serve);
    let dir = fetch(
        &archive_for(&good.url, &body, &format),
        root.path(),
        &opts(),
    )
    .unwrap();
    assert_eq!(*good.ranges.lock().unwrap(), vec![cut.to_string()]);
    assert!(cifar::load(&dir, &format).is_ok());
}

#[test]
fn archive_with_path_traversal_is_refused() {
    let (_, format) = archive_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        let data = b"evil";
        let mut header = tar::Header::new_gnu();
        let name = b"cifar-10-batches-bin/../../evil.bin";
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append(&header, &data[..]).unwrap();
        tar.finish().unwrap();
    }
    let body = gz.finish().unwrap();
    let server = serve(body.clone(), Behaviour::Serve);
    let root = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        fetch(
            &archive_for(&server.url, &body, &format),
            root.path(),
            &opts()
        )
        .unwrap_err()
    );
    assert!(
        err.contains("refusing member") && err.contains(".."),
        "{err}"
    );
    assert!(dataset_absent(root.path()));
    assert!(!root.path().parent().unwrap().join("evil.bin").exists());
}
