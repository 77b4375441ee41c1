//! `unas data fetch cifar10|cifar100`: download the official archive, verify it, extract it atomically.
//!
//! 1. The archive is downloaded to `<root>/.unas-fetch/<archive>.part` with a progress bar; an
//!    interrupted transfer resumes from there with an HTTP `Range` request (a server that answers 200
//!    instead of 206 restarts it); a read that stalls for `stall_timeout` aborts with a clear error.
//! 2. Its size and MD5 must match the official ones (a mismatch deletes the partial file).
//! 3. It is extracted into `<root>/.unas-fetch/extract-<pid>/`, refusing absolute paths, `..`, links and
//!    members outside the expected top folder; the extracted folder is read with the strict CIFAR reader.
//! 4. Only then is it renamed to `<root>/<folder>` (atomic on one file system). So the dataset folder
//!    appears complete and verified, or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use crate::data::cifar::{self, Format, Variant};

/// A dataset archive: where it is, what it must be, and what it holds.
#[derive(Clone, Debug)]
pub struct Archive {
    pub url: String,
    pub bytes: u64,
    /// Lower-case hex MD5 of the whole archive.
    pub md5: String,
    pub format: Format,
}

impl Archive {
    /// The archives of the dataset authors' page.
    pub fn official(variant: Variant) -> Archive {
        let (file, bytes, md5) = match variant {
            Variant::Cifar10 => (
                "cifar-10-binary.tar.gz",
                170_052_171,
                "c32a1d4ab5d03f1284b67883e8d87530",
            ),
            Variant::Cifar100 => (
                "cifar-100-binary.tar.gz",
                168_513_733,
                "03b5dce01913d631647c71ecec9e9cb8",
            ),
        };
        Archive {
            url: format!("https://www.cs.toronto.edu/~kriz/{file}"),
            bytes,
            md5: md5.into(),
            format: Format::official(variant),
        }
    }

    fn file_name(&self) -> String {
        self.url
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("archive.tar.gz")
            .to_owned()
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FetchOptions {
    /// Abort when connecting or a single read waits this long.
    pub stall_timeout: Duration,
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            stall_timeout: Duration::from_secs(60),
            progress: true,
        }
    }
}

/// Fetches `archive` into `root`; returns the dataset folder. A valid folder already there is kept.
pub fn fetch(archive: &Archive, root: &Path, opts: &FetchOptions) -> Result<PathBuf> {
    let variant = archive.format.variant;
    let target = root.join(variant.folder());
    if target.exists() {
        return match cifar::load(&target, &archive.format) {
            Ok(_) => Ok(target),
            Err(e) => bail!(
                "{} exists but is not a complete dataset ({e:#}); remove it and run the fetch again",
                target.display()
            ),
        };
    }
    let work = root.join(".unas-fetch");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let partial = work.join(format!("{}.part", archive.file_name()));
    download(archive, &partial, opts)?;
    verify_md5(&partial, &archive.md5)?;
    let scratch = work.join(format!("extract-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let result = extract(&partial, &scratch, variant.folder()).and_then(|()| {
        let extracted = scratch.join(variant.folder());
        cifar::load(&extracted, &archive.format)
            .with_context(|| format!("the archive {} is not the expected dataset", archive.url))?;
        fs::rename(&extracted, &target)
            .with_context(|| format!("moving {} to {}", extracted.display(), target.display()))
    });
    let _ = fs::remove_dir_all(&scratch);
    result?;
    let _ = fs::remove_file(&partial);
    let _ = fs::remove_dir(&work);
    Ok(target)
}

fn download(archive: &Archive, partial: &Path, opts: &FetchOptions) -> Result<()> {
    let url = &archive.url;
    let mut have = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if have > archive.bytes {
        fs::remove_file(partial).with_context(|| format!("removing {}", partial.display()))?;
        have = 0;
    }
    if have == archive.bytes {
        return Ok(());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(opts.stall_timeout))
        .timeout_recv_response(Some(opts.stall_timeout))
        .timeout_per_read(Some(opts.stall_timeout))
        .build()
        .into();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().with_context(|| {
        format!("requesting {url}; check the network (or pass --url with a mirror) and run again")
    })?;
    let status = response.status().as_u16();
    let start = match status {
        206 => have,
        200 => 0,
        s => bail!(
            "{url} answered HTTP {s} (expected 200, or 206 when resuming); try again later or pass --url with a mirror"
        ),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(partial)
        .with_context(|| format!("opening {}", partial.display()))?;
    let bar = if opts.progress {
        let bar = ProgressBar::new(archive.bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(start);
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut reader = response.into_body().into_reader();
    let mut got = start;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().ok();
                let what = if e.kind() == io::ErrorKind::TimedOut {
                    format!("stalled: no data for {:?}", opts.stall_timeout)
                } else {
                    format!("broke off: {e}")
                };
                bail!(
                    "downloading {url} {what} after {got} of {} bytes; run the same command again to resume",
                    archive.bytes
                );
            }
        };
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", partial.display()))?;
        got += n as u64;
        bar.set_position(got);
    }
    file.sync_all().ok();
    bar.finish_and_clear();
    if got < archive.bytes {
        bail!(
            "downloading {url}: the transfer ended after {got} of {} bytes (truncated); run the same command again to resume",
            archive.bytes
        );
    }
    if got > archive.bytes {
        let _ = fs::remove_file(partial);
        bail!(
            "{url} sent {got} bytes, expected {}; this is not the official archive (pass --url with a mirror of it)",
            archive.bytes
        );
    }
    Ok(())
}

fn verify_md5(path: &Path, expected: &str) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Md5::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !got.eq_ignore_ascii_case(expected) {
        let _ = fs::remove_file(path);
        bail!(
            "{}: MD5 {got}, expected {expected}; the download was removed, run the fetch again (or pass --url with a trusted mirror)",
            path.display()
        );
    }
    Ok(())
}

/// Whether a tar member path is relative, free of `..`, and under `top`.
fn member_is_safe(path: &Path, top: &str) -> bool {
    let mut comps = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    comps.next() == Some(Component::Normal(top.as_ref()))
        && comps.all(|c| matches!(c, Component::Normal(_)))
}

/// Extracts a .tar.gz into `dest`, refusing any member that is not a file or folder under `top`.
pub fn extract(archive: &Path, dest: &Path, top: &str) -> Result<()> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for entry in tar
        .entries()
        .with_context(|| format!("reading {}", archive.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", archive.display()))?;
        let path = entry.path()?.into_owned();
        if !member_is_safe(&path, top) {
            bail!(
                "{}: refusing member `{}` (expected only relative paths under {top}/, without `..`)",
                archive.display(),
                path.display()
            );
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            bail!(
                "{}: refusing member `{}` of type {kind:?} (expected only files and folders)",
                archive.display(),
                path.display()
            );
        }
        let out = dest.join(&path);
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        entry.unpack(&out).with_context(|| {
            format!("extracting `{}` from {}", path.display(), archive.display())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_members_outside_the_top_folder_are_unsafe() {
        let top = "cifar-10-batches-bin";
        assert!(member_is_safe(
            Path::new("cifar-10-batches-bin/data_batch_1.bin"),
            top
        ));
        assert!(member_is_safe(Path::new("./cifar-10-batches-bin/"), top));
        assert!(!member_is_safe(Path::new("/etc/passwd"), top));
        assert!(!member_is_safe(
            Path::new("cifar-10-batches-bin/../../x"),
            top
        ));
        assert!(!member_is_safe(Path::new("other/x"), top));
    }
}
